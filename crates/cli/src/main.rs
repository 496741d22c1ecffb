//! `edgenet`: the command-line front end. Parsing, reporting and exit codes live here; the work
//! is done by edgenet-core (pure), edgenet-host (kernel) and edgenet-deploy (drivers).

mod cli;
mod commands;
mod envelope;
mod exit;
mod logging;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command, ConfigCommand, LabCommand, NodeCommand};
use exit::{CliError, Exit};

fn main() -> ExitCode {
    // A reader that goes away (`edgenet check | head -1`) ends edgenet quietly, as it ends
    // `ls`, instead of a panic in println!. Children get SIGPIPE's default anyway.
    // SAFETY: called before any thread exists; SIG_DFL has no handler to race with.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let mut cli = Cli::parse();
    cli.merge_command_options();
    output::set_color(cli.color);
    let schema = report_schema(&cli.command);
    if let Err(e) = logging::init(cli.verbose, cli.quiet) {
        return fail(&cli, &schema, e);
    }
    if let Err(e) = commands::picture::check_format(&cli) {
        return fail(&cli, &schema, e);
    }
    let result = match &cli.command {
        Command::Check(c) => commands::check::run(&cli, &c.args),
        Command::Plan(c) => commands::plan::run(&cli, &c.args),
        Command::Config(ConfigCommand::New(args)) => commands::config_new::run(&cli, args),
        Command::Deploy(args) => commands::deploy::run_deploy(&cli, args),
        Command::Remove(args) => commands::deploy::run_remove(&cli, &args.lock, args.force),
        Command::Status(_) => commands::status::run_status(&cli),
        Command::Node(NodeCommand::Addr(args)) => commands::status::run_addr(&cli, args),
        Command::Node(NodeCommand::Exec(args)) => commands::status::run_exec(&cli, args),
        Command::ScaleConfig(args) => commands::scale_config::run(&cli, args),
        Command::InstallUnit(args) => commands::install_unit::run(&cli, args),
        Command::Lab(LabCommand::Up(args)) => commands::lab::up(&cli, args),
        Command::Lab(LabCommand::Status(args)) => commands::lab::status(&cli, &args.lab),
        Command::Lab(LabCommand::Down(args)) => commands::lab::down(&cli, &args.lab),
        Command::Render(args) => commands::render::run(&cli, args),
        Command::Doctor(args) => commands::doctor::run(&cli, args),
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "edgenet",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map(|()| Exit::Ok)
            .map_err(|e| CliError::new(Exit::Host, "write", e.to_string())),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => fail(&cli, &schema, e),
    }
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
        _ => envelope::ERROR,
    }
}
