//! `edgenet`: the command-line front end. Parsing, reporting and exit codes live here; the work
//! is done by edgenet-core (pure), edgenet-host (kernel) and edgenet-deploy (drivers).

mod cli;
mod commands;
mod envelope;
mod exit;
mod interrupt;
mod lab_child;
mod logging;
mod output;

use std::process::ExitCode;

use clap::CommandFactory;

use cli::{Cli, Command, ConfigCommand, LabCommand, NodeCommand};
use exit::{CliError, Exit};

fn main() -> ExitCode {
    // One malloc arena for the whole process. edgenet's threads are few and short-lived (the
    // firewall's side of a deploy or remove, the node steps, the identity's fsync); glibc gives
    // each its own arena, which costs a 64 MiB reservation and then grows one page per
    // `mprotect`, each taking the address-space lock the other threads' page faults need.
    // SAFETY: mallopt is called before any thread exists and changes only a tunable.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // A reader that goes away (`edgenet check | head -1`) ends edgenet quietly, as it ends
    // `ls`, instead of a panic in println! (deploy and remove: see below). Children get
    // SIGPIPE's default anyway.
    // SAFETY: called before any thread exists; SIG_DFL has no handler to race with.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    // `EDGENET_CONFIG=` (empty) means unset, as for other variables; clap would refuse it.
    if std::env::var_os("EDGENET_CONFIG").is_some_and(|v| v.is_empty()) {
        std::env::remove_var("EDGENET_CONFIG");
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = parse(&args).map(|mut cli| {
        cli.merge_command_options();
        cli
    });
    // SIGINT/SIGTERM/SIGHUP have been held since the process started (see `interrupt`): a run
    // that changes the host gets its handler before they are let through, so one sent at
    // once is said too. Ctrl-C during it: said, not silent.
    if let Ok(cli) = &parsed {
        // Before the interrupt handler's envelopes are made: they name it too.
        envelope::know_state_dir(&cli.state_dir);
        let run = match cli.command {
            Command::Deploy(_) => Some("deploy"),
            Command::Remove(_) => Some("remove"),
            _ => None,
        };
        if let Some(command) = run {
            let schema = report_schema(&cli.command);
            interrupt::install(command, &schema, cli.output == cli::Output::Json);
            // Its report may go to a reader that stops early (`| head`, `| :`): the host is
            // changed by then, so a closed pipe must not turn the run into a death by SIGPIPE
            // (exit 141); the report's write fails quietly and the exit status stays the run's.
            // SAFETY: no other thread exists yet; SIG_IGN installs no code.
            unsafe {
                let _ = nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGPIPE,
                    nix::sys::signal::SigHandler::SigIgn,
                );
            }
        }
    }
    interrupt::release();
    let mut cli = match parsed {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if cli
        .config
        .as_ref()
        .is_some_and(|c| c.as_os_str().is_empty())
    {
        // `EDGENET_CONFIG=` (empty) means unset, as for other variables.
        cli.config = None;
    }
    output::set_color(cli.color);
    let schema = report_schema(&cli.command);
    // Still one thread: a run the lab started enters its machine's namespace here.
    if let Err(e) = lab_child::enter_from_env() {
        return fail(&cli, &schema, e);
    }
    if let Err(e) = logging::init(cli.verbose, cli.quiet) {
        return fail(&cli, &schema, e);
    }
    if let Some(note) = cli.lower_machine_name() {
        if !cli.quiet {
            eprintln!("{note}");
        }
    }
    if let Err(e) = commands::picture::check_format(&cli) {
        return fail(&cli, &schema, e);
    }
    if let Err(e) = commands::check_nft_env() {
        return fail(&cli, &schema, e);
    }
    if matches!(
        cli.command,
        Command::Check(_)
            | Command::Deploy(_)
            | Command::Remove(_)
            | Command::Status(_)
            | Command::Node(_)
            | Command::ScaleConfig(_)
            | Command::InstallUnit(_)
            | Command::Render(_)
            | Command::Doctor(_)
    ) {
        if let Err(e) = commands::check_state_dir(&cli) {
            return fail(&cli, &schema, e);
        }
    }
    if matches!(
        cli.command,
        Command::Deploy(_)
            | Command::Remove(_)
            | Command::Lab(LabCommand::Up(_) | LabCommand::Down(_))
    ) {
        if let Err(e) = commands::check_vm_env() {
            return fail(&cli, &schema, e);
        }
    }
    if matches!(
        cli.command,
        Command::Deploy(_) | Command::Lab(LabCommand::Up(_))
    ) {
        if let Err(e) = commands::check_netns_mounts() {
            return fail(&cli, &schema, e);
        }
    }
    // A deploy keeps the ruleset it ends with in the state directory, proven current by the
    // kernel's nf_tables generation when the next one reads it; a remove takes it away (with
    // the tables, and here already: the directory must end up empty).
    if matches!(cli.command, Command::Deploy(_) | Command::Remove(_)) {
        edgenet_host::nft::use_ruleset_cache(cli.state_dir.join(edgenet_host::nft::CACHE_FILE));
    }
    // A deploy's ruleset session (begun first thing in `run_deploy`) nests inside this one,
    // which is never ended: the ruleset read (hundreds of JSON maps) goes with the process at
    // its `_exit` below instead of being freed piece by piece when the command returns (~3.5 %
    // of a no-change redeploy's instructions).
    if matches!(cli.command, Command::Deploy(_)) {
        std::mem::forget(edgenet_host::nft::RulesetSession::begin());
    }
    // What a remove deletes is decided on the kernel's listing: a file that says the tables
    // are gone must not leave them behind.
    if matches!(cli.command, Command::Remove(_)) {
        edgenet_host::nft::never_read_ruleset_cache();
    }
    let result = match &cli.command {
        Command::Check(c) => commands::check::run(&cli, &c.args),
        Command::Plan(c) => commands::plan::run(&cli, &c.args),
        Command::Config(ConfigCommand::New(args)) => commands::config_new::run(&cli, args),
        Command::Deploy(args) => commands::deploy::run_deploy(&cli, args),
        Command::Remove(args) => match &args.orphan {
            Some(id) => commands::deploy::run_remove_orphan(&cli, &args.lock, id),
            None => commands::deploy::run_remove(&cli, &args.lock, args.force),
        },
        Command::Status(_) => commands::status::run_status(&cli),
        Command::Node(NodeCommand::Addr(args)) => commands::status::run_addr(&cli, args),
        Command::Node(NodeCommand::Exec(args)) => commands::status::run_exec(&cli, args),
        Command::ScaleConfig(args) => commands::scale_config::run(&cli, args),
        Command::InstallUnit(args) => commands::install_unit::run(&cli, args),
        Command::Lab(LabCommand::Up(args)) => commands::lab::up(&cli, args),
        Command::Lab(LabCommand::Status(args)) => commands::lab::status(&cli, &args.lab),
        Command::Lab(LabCommand::Down(args)) => commands::lab::down(&cli, args),
        Command::Render(args) => commands::render::run(&cli, args),
        Command::Doctor(args) => commands::doctor::run(&cli, args),
        Command::Completions(_) | Command::Man(_) if cli.output != cli::Output::Text => {
            Err(CliError::new(
                Exit::Unreadable,
                "unsupported-format",
                format!(
                    "{} writes text only; -o {} is not supported",
                    if matches!(cli.command, Command::Man(_)) {
                        "man"
                    } else {
                        "completions"
                    },
                    format!("{:?}", cli.output).to_lowercase()
                ),
            )
            .hint("leave out -o"))
        }
        Command::Completions(args) => {
            // Into memory first: clap_complete panics on a write that fails.
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "edgenet", &mut script);
            output::out_bytes(&script);
            Ok(Exit::Ok)
        }
        // Into memory first, then out as every report (a failed write is said once, below).
        Command::Man(_) => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map(|()| {
                    output::out_bytes(&page);
                    Exit::Ok
                })
                .map_err(|e| CliError::new(Exit::Host, "write", e.to_string()))
        }
    };
    // The run is over (what it changed is said or about to be): a signal from here on is not
    // an interruption.
    interrupt::reporting();
    // A complete remove whose tables were gone already left the cache (deleting the tables
    // takes it): it goes now, and the directory with it when nothing else is left there.
    if matches!((&cli.command, &result), (Command::Remove(_), Ok(Exit::Ok)))
        && edgenet_host::nft::forget_ruleset_cache()
        && !edgenet_deploy::state::keeps_dir(&cli.state_dir)
    {
        let _ = std::fs::remove_dir(&cli.state_dir);
    }
    // A deploy that failed or was refused may have decided on the cache: the next run reads
    // the kernel (a wrong file with a matching stamp made every deploy fail alike, B20 D2).
    if matches!(cli.command, Command::Deploy(_)) && !matches!(result, Ok(Exit::Ok)) {
        edgenet_host::nft::forget_ruleset_cache();
    }
    let already_said = matches!(&result, Err(e) if e.code == "write");
    let exit = match result {
        Ok(code) => code,
        Err(e) => {
            e.report(cli.output, &schema);
            e.exit_code()
        }
    };
    // A report that could not be written (a full disk behind `> file`) is an error of its
    // own, said on stderr: never a panic, never exit 0 (B23 F15).
    let exit = match output::stdout_failed() {
        Some(e) if !already_said => {
            let err = CliError::new(
                Exit::Host,
                "write",
                format!(
                    "cannot write the report to standard output: {e}; the report is lost (the command itself ended with exit status {})",
                    exit as u8
                ),
            )
            .hint("make room where standard output goes (or send it elsewhere) and run the command again; `edgenet status` shows what is deployed");
            match cli.output {
                cli::Output::Json => envelope::print_error_to_stderr(&schema, &err),
                _ => {
                    output::errln!("edgenet: {}", err.message);
                    if let Some(hint) = &err.hint {
                        output::errln!("  hint: {hint}");
                    }
                }
            }
            Exit::Host
        }
        _ => exit,
    };
    // A deploy, redeploy or remove is over once its report is out: what is still allocated (the
    // ruleset and the tables parsed from it, the host facts, the plan) is handed back with the
    // process instead of being freed piece by piece first (~6 % of a no-change redeploy's
    // instructions went to those destructors).
    if matches!(cli.command, Command::Deploy(_) | Command::Remove(_)) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: _exit ends the process at once; the report is flushed above, every lock is a
        // file descriptor the kernel releases, and every thread of the run has been joined.
        unsafe { libc::_exit(exit as i32) }
    }
    exit.into()
}

/// Parses the command line with clap's colours following --color, NO_COLOR and TERM (so
/// `--help` and usage errors honour them too). A usage error is reported as the error envelope
/// (code `usage`, exit 2) on standard output as well when JSON output is asked for anywhere.
fn parse(args: &[std::ffi::OsString]) -> Result<Cli, ExitCode> {
    use clap::FromArgMatches;
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let value_of = |long: &str, short: Option<&str>| -> Option<String> {
        let mut found = None;
        for (i, w) in words.iter().enumerate().skip(1) {
            if w == "--" {
                break;
            }
            if let Some(v) = w.strip_prefix(&format!("{long}=")) {
                found = Some(v.to_string());
            } else if w == long || short == Some(w.as_str()) {
                found = words.get(i + 1).cloned();
            } else if let Some(v) = short
                .and_then(|s| w.strip_prefix(s))
                .filter(|v| !v.is_empty() && !w.starts_with("--"))
            {
                found = Some(v.trim_start_matches('=').to_string());
            }
        }
        found
    };
    let color = match value_of("--color", None)
        .map(|c| c.to_ascii_lowercase())
        .as_deref()
    {
        Some("never") => clap::ColorChoice::Never,
        Some("always") => clap::ColorChoice::Always,
        _ if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb") =>
        {
            clap::ColorChoice::Never
        }
        _ => clap::ColorChoice::Auto,
    };
    // clap's `help` takes only command names: `help --help` (or `-h`) asks for the help of
    // `help` itself, as `help help` does, not for a usage error.
    let help_of_help: Vec<std::ffi::OsString>;
    let args = match words.get(1..).unwrap_or_default() {
        [help, flag] if help == "help" && (flag == "--help" || flag == "-h") => {
            help_of_help = vec![args[0].clone(), "help".into(), "help".into()];
            &help_of_help[..]
        }
        _ => args,
    };
    // The command tree is freed here, not left to `_exit`: the run's allocations reuse its
    // ~200 KB (left alone, a redeploy took ~18 more page faults than it saved in frees).
    let matches = Cli::command().color(color).try_get_matches_from(args);
    // The matches are taken apart, not copied first (`from_arg_matches` would clone them).
    let err = match matches.and_then(|mut m| Cli::from_arg_matches_mut(&mut m)) {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    use clap::error::ErrorKind;
    let usage = !matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let json = value_of("--output", Some("-o")).is_some_and(|o| o.eq_ignore_ascii_case("json"));
    // `edgenet node` without a subcommand shows its help (exit 0), but a script that asked for
    // JSON gets a usage error it can read, as for `edgenet -o json` alone.
    if json && err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let command: Vec<&str> = words
            .iter()
            .skip(1)
            .filter(|w| !w.starts_with('-') && !w.eq_ignore_ascii_case("json"))
            .map(String::as_str)
            .collect();
        let command = format!("edgenet {}", command.join(" "));
        CliError::new(
            Exit::Unreadable,
            "usage",
            format!("`{}` needs a subcommand", command.trim_end()),
        )
        .hint(format!("see {} --help", command.trim_end()))
        .report(cli::Output::Json, &envelope::ERROR);
        return Err(Exit::Unreadable.into());
    }
    if usage && json {
        let message = err.render().to_string();
        // The first paragraph, joined: clap puts what is missing on the lines after "the
        // following required arguments were not provided:".
        let first = message
            .split("\n\n")
            .next()
            .unwrap_or("invalid command line")
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
            .trim_start_matches("error: ")
            .to_string();
        CliError::new(Exit::Unreadable, "usage", first)
            .hint("see edgenet --help")
            .report(cli::Output::Json, &envelope::ERROR);
    }
    if !err.use_stderr() {
        // `--help` and `--version` are reports on standard output like any other: one that
        // cannot be written (`> /dev/full`) is a write error (exit 3), not exit 0 with the
        // text lost (B23b F1). clap's own `print` ignores the failure, so the text is written
        // here, styled as clap would (colour only on a terminal, or asked for).
        use std::io::IsTerminal as _;
        let styled = err.render();
        let coloured = match color {
            clap::ColorChoice::Always => true,
            clap::ColorChoice::Never => false,
            clap::ColorChoice::Auto => std::io::stdout().is_terminal(),
        };
        let text = if coloured {
            styled.ansi().to_string()
        } else {
            styled.to_string()
        };
        output::out_bytes(text.as_bytes());
        if let Some(e) = output::stdout_failed() {
            let what = if err.kind() == ErrorKind::DisplayVersion {
                "version"
            } else {
                "help"
            };
            let err = CliError::new(
                Exit::Host,
                "write",
                format!("cannot write the {what} to standard output: {e}; the text is lost"),
            )
            .hint("make room where standard output goes (or send it elsewhere) and run the command again");
            if json {
                envelope::print_error_to_stderr(&envelope::ERROR, &err);
            } else {
                output::errln!("edgenet: {}", err.message);
                if let Some(hint) = &err.hint {
                    output::errln!("  hint: {hint}");
                }
            }
            return Err(Exit::Host.into());
        }
        return Err(Exit::Ok.into());
    }
    let _ = err.print();
    Err(if usage {
        Exit::Unreadable.into()
    } else {
        Exit::Ok.into()
    })
}

fn fail(cli: &Cli, schema: &envelope::Schema, e: CliError) -> ExitCode {
    e.report(cli.output, schema);
    e.exit_code().into()
}

/// The JSON schema a command's failure is reported in.
fn report_schema(command: &Command) -> envelope::Schema {
    match command {
        Command::Check(_) => envelope::CHECK,
        Command::Plan(_) => envelope::PLAN,
        Command::Deploy(_) => envelope::DEPLOY,
        Command::Remove(_) => envelope::REMOVE,
        Command::Status(_) => envelope::STATUS,
        Command::Node(NodeCommand::Addr(_)) => envelope::NODE_ADDR,
        Command::Lab(LabCommand::Up(_) | LabCommand::Status(_)) => envelope::LAB_STATUS,
        Command::Lab(LabCommand::Down(_)) => envelope::LAB_DOWN,
        Command::Render(_) => envelope::RENDER,
        Command::Doctor(_) => envelope::DOCTOR,
        Command::Config(ConfigCommand::New(_)) | Command::ScaleConfig(_) => envelope::CONFIG,
        _ => envelope::ERROR,
    }
}
