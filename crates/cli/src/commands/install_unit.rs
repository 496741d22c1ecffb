//! `edgenet install-unit`: the systemd unit that runs the same deploy at every boot.

use std::path::{Path, PathBuf};

use edgenet_deploy::boot_unit::{is_ours, BootUnit, MARK, UNIT_NAME};

use crate::cli::{CheckArgs, Cli, InstallUnitArgs};
use crate::exit::{CliError, Exit};

pub fn run(cli: &Cli, args: &InstallUnitArgs) -> Result<Exit, CliError> {
    // As `install-unit -o json` (a usage error) and `completions`/`man`: text only, said.
    if cli.output != crate::cli::Output::Text {
        return Err(CliError::new(
            Exit::Unreadable,
            "unsupported-format",
            format!(
                "install-unit writes text only (the unit file); -o {} is not supported",
                format!("{:?}", cli.output).to_lowercase()
            ),
        )
        .hint("leave out -o"));
    }
    let path = args.unit_dir.join(UNIT_NAME);
    if !args.print {
        refuse_foreign_unit(&path, args)?;
    }
    if args.uninstall {
        if args.enable {
            systemctl(&["disable", UNIT_NAME])?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => crate::output::outln!("Removed {}.", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::output::outln!("Nothing to remove: {} does not exist.", path.display())
            }
            Err(e) => return Err(io_error("delete", &path, e)),
        }
        if args.enable {
            systemctl(&["daemon-reload"])?;
        }
        return Ok(Exit::Ok);
    }
    let unit = if args.packaged {
        BootUnit::packaged()
    } else {
        boot_unit(cli, args)?
    };
    let text = unit.render();
    if !args.packaged {
        for warning in boot_warnings(cli, &unit) {
            crate::output::errln!("warning: {warning}");
        }
    }
    if args.print {
        crate::output::out!("{text}");
        return Ok(Exit::Ok);
    }
    std::fs::create_dir_all(&args.unit_dir).map_err(|e| io_error("create", &args.unit_dir, e))?;
    let tmp = args.unit_dir.join(format!(".{UNIT_NAME}.tmp"));
    std::fs::write(&tmp, &text).map_err(|e| io_error("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error("write", &path, e))?;
    crate::output::outln!("Wrote {}: at boot it runs", path.display());
    // Each word as a shell would take it (the unit holds the same words in systemd's quoting).
    let words: Vec<String> = unit.command().iter().map(|w| shell_quote(w)).collect();
    crate::output::outln!("  {}", words.join(" "));
    if args.enable {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", UNIT_NAME])?;
        crate::output::outln!("Enabled {UNIT_NAME}.");
    } else {
        crate::output::outln!(
            "Enable it with: systemctl daemon-reload && systemctl enable {UNIT_NAME}"
        );
    }
    Ok(Exit::Ok)
}

/// A unit file at `path` that edgenet did not write (no [`MARK`] line) is someone else's: it
/// is neither overwritten nor deleted without `--force`.
fn refuse_foreign_unit(path: &Path, args: &InstallUnitArgs) -> Result<(), CliError> {
    if args.force {
        return Ok(());
    }
    // A unit file is a few hundred bytes; something else in its place is named, not read.
    let text = match edgenet_host::small_file::read(path, 1 << 20) {
        Ok(t) => t,
        Err(edgenet_host::small_file::SmallFileError::Missing) => return Ok(()),
        Err(e) => return Err(io_error("read", path, e.into_io())),
    };
    if is_ours(&text) {
        return Ok(());
    }
    let what = if args.uninstall {
        "delete"
    } else {
        "overwrite"
    };
    // A foreign object in the way: exit 3, as README's exit table and json-output.md say.
    Err(CliError::new(
        Exit::Host,
        "foreign-unit",
        format!(
            "{} was not written by edgenet (it has no `{MARK}` line); not going to {what} it. Nothing was changed",
            path.display()
        ),
    )
    .hint(format!(
        "look at it first (`systemctl cat {UNIT_NAME}`); to {what} it anyway, add --force"
    )))
}

/// The unit for this command line: its config (absolute), machine, machine name and state
/// directory, and the adapter of an external switch to wait for.
fn boot_unit(cli: &Cli, args: &InstallUnitArgs) -> Result<BootUnit, CliError> {
    // The unit reads its config at every boot: standard input is not there then (B27 F9).
    if cli.config.as_deref().is_some_and(super::is_stdin) {
        return Err(CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            "install-unit cannot use -c - (standard input): the unit reads its config at every boot",
        )
        .hint("write the config to a file that survives a reboot (e.g. /etc/edgenet/site.json) and give -c FILE; nothing was written"));
    }
    // Without `-c` the unit deploys the recorded config again (see `deploy`): its adapter is
    // the one to wait for, not the built-in default's (which has none).
    let recorded = match cli.config {
        None => super::recorded_deployment_config(
            cli,
            "name the config with -c FILE, or deploy again with -c FILE to record it",
        )?,
        Some(_) => None,
    };
    let source = match (&cli.config, &recorded) {
        (None, Some(_)) => "the recorded config".to_string(),
        _ => super::config_source(cli),
    };
    let (loaded, machine) = match recorded {
        Some((loaded, index)) => (loaded, args.machine.or(Some(index))),
        None => (super::load_config(cli)?, args.machine),
    };
    // The same refusal, code and exit as deploy's (`invalid-arguments`, 2).
    super::machine_index_in_range(machine, loaded.config.machines.len())?;
    let binary = match &args.binary {
        Some(b) => checked_binary(b)?,
        None => std::env::current_exe().map_err(|e| io_error("find", Path::new("edgenet"), e))?,
    };
    let check = CheckArgs {
        machine,
        offline_check: false,
    };
    let facts = super::host_facts(cli, &check);
    let ctx = super::context(cli, &facts, &check);
    refuse_config_errors(&source, &loaded, &ctx)?;
    let plan = edgenet_core::plan::build(&loaded.config, &ctx).map_err(|e| match e {
        edgenet_core::plan::PlanError::Invalid(_) => {
            CliError::new(Exit::Findings, "no-plan", e.to_string())
                .hint("`edgenet check` lists every problem; fix the config, then install the unit")
        }
        other => super::plan_error(other),
    })?;
    let config = match &cli.config {
        Some(p) => Some(std::fs::canonicalize(p).map_err(|e| io_error("find", p, e))?),
        None => None,
    };
    let absolute =
        |p: &Path| -> PathBuf { std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()) };
    let mut environment = vec![(
        "EDGENET_STATE_DIR".to_string(),
        absolute(&cli.state_dir).display().to_string(),
    )];
    // Only what differs from the defaults, so a unit of a default install stays short.
    for (key, value, default) in [
        ("EDGENET_RESOLV_CONF", &cli.resolv_conf, "/etc/resolv.conf"),
        (
            "EDGENET_UPSTREAM_RESOLV_CONF",
            &cli.upstream_resolv_conf,
            "/run/systemd/resolve/resolv.conf",
        ),
    ] {
        if value.as_path() != Path::new(default) {
            environment.push((key.to_string(), absolute(value).display().to_string()));
        }
    }
    // A check the operator switched off for the deploy stays off at boot.
    let ignore = edgenet_deploy::switch::adapter_owner::IGNORE_ENV;
    if std::env::var(ignore).is_ok_and(|v| v == "1") {
        environment.push((ignore.to_string(), "1".to_string()));
    }
    // The adapter's MAC, so the unit finds it renamed at boot: as the deployment recorded it,
    // else as the adapter has it now.
    let recorded = edgenet_deploy::state::StateDir::new(&cli.state_dir)
        .peek()
        .ok()
        .flatten()
        .and_then(|state| {
            state
                .objects
                .iter()
                .filter_map(edgenet_deploy::switch::AdapterRecord::of)
                .find(|r| r.bridge == plan.switch.name)
                .and_then(|r| r.adapter.mac)
        })
        .map(|m| m.to_string());
    let adapter_mac = plan.switch.adapter.as_deref().and_then(|a| {
        recorded.or_else(|| {
            facts
                .as_ref()
                .ok()
                .and_then(|f| f.link(a))
                .and_then(|l| l.mac.clone())
        })
    });
    Ok(BootUnit {
        binary,
        config,
        machine: args.machine,
        machine_name: cli.machine_name.clone(),
        adapter: plan.switch.adapter.clone(),
        adapter_mac,
        environment,
        packaged: false,
    })
}

/// What makes the unit fail or deploy something else at boot, said before it is written (the
/// unit is still written: the operator may know better, e.g. a /tmp that is kept).
fn boot_warnings(cli: &Cli, unit: &BootUnit) -> Vec<String> {
    let mut warnings = Vec::new();
    let state = resolved(&cli.state_dir);
    if let Some(why) = gone_at_boot(&state) {
        warnings.push(format!(
            "the state directory {} {why}: at boot the unit would find no deployment and make \
             a new one beside what is left; use one that survives a reboot (the default {})",
            state.display(),
            edgenet_deploy::state::DEFAULT_STATE_DIR
        ));
    }
    if let Some(config) = &unit.config {
        if let Some(why) = gone_at_boot(config) {
            warnings.push(format!(
                "the config {} {why}: the unit's deploy would fail at boot; keep it somewhere \
                 that survives a reboot (e.g. /etc/edgenet/)",
                config.display()
            ));
        }
    }
    if let Some(namespace) = other_network_namespace() {
        warnings.push(format!(
            "this command runs in {namespace}, not the host's: systemd runs the unit in the \
             host's network namespace, so at boot it deploys there, not in this one"
        ));
    }
    warnings
}

/// `path` as the file system resolves it (links followed, B27 F8: a link into /tmp is /tmp),
/// as far as it exists; the part that does not exist yet kept as given.
fn resolved(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    for existing in path.ancestors() {
        if let Ok(real) = std::fs::canonicalize(existing) {
            let rest = path.strip_prefix(existing).unwrap_or(Path::new(""));
            return if rest.as_os_str().is_empty() {
                real
            } else {
                real.join(rest)
            };
        }
    }
    path
}

/// Why `path` does not outlive a reboot, if it does not: under /tmp (systemd-tmpfiles empties
/// it at boot), or on a tmpfs (its nearest existing directory).
fn gone_at_boot(path: &Path) -> Option<&'static str> {
    if path.starts_with("/tmp") {
        return Some("is under /tmp, which is emptied at boot");
    }
    let existing = path.ancestors().find(|p| p.exists())?;
    let fs = nix::sys::statfs::statfs(existing).ok()?;
    (fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .then_some("is on a tmpfs, which is empty after a reboot")
}

/// The network namespace this process runs in when it is not PID 1's: said by PID 1's when it
/// can be read, else only a named one (`ip netns add`, /run/netns) is recognised. `None` when
/// it is PID 1's or cannot be told.
fn other_network_namespace() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let own = id(std::fs::metadata("/proc/self/ns/net").ok()?);
    if let Ok(init) = std::fs::metadata("/proc/1/ns/net") {
        return (id(init) != own).then(|| "a network namespace other than PID 1's".to_string());
    }
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find(|e| std::fs::metadata(e.path()).is_ok_and(|m| id(m) == own))
        .map(|e| format!("the network namespace {}", e.file_name().to_string_lossy()))
}

/// The unit runs this deploy at every boot: a config it refuses (exit 1, which the unit's
/// `RestartPreventExitStatus=` does not retry) is refused now, with deploy's words, and no
/// unit is written. The checks are deploy's on the host as it is now, without the ARP and DNS
/// probes (they describe the moment, not the config); an adapter that is missing is not
/// refused: the unit waits for it at boot.
fn refuse_config_errors(
    source: &str,
    loaded: &edgenet_core::config::Loaded,
    ctx: &edgenet_core::validate::Context<'_>,
) -> Result<(), CliError> {
    use edgenet_core::validate::Code;
    let findings: Vec<_> = edgenet_core::validate::check(loaded, ctx)
        .into_iter()
        .filter(|f| f.code != Code::AdapterMissing)
        .collect();
    super::refuse_errors_from(source, &findings, "no unit was written").map_err(|e| {
        e.hint("`edgenet check` lists every problem; fix the config, then install the unit")
    })
}

/// `--binary`: systemd runs `ExecStart=` only from an absolute path, and the unit is useless
/// if nothing executable is there (exit 2, nothing written).
fn checked_binary(path: &Path) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |problem: String| {
        CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            format!("--binary {}: {problem}; no unit was written", path.display()),
        )
        .hint("give the absolute path of the edgenet to run at boot, e.g. --binary /usr/local/bin/edgenet (`command -v edgenet` prints it), or leave --binary out to use this one")
    };
    if !path.is_absolute() {
        return Err(refuse(
            "not an absolute path (systemd runs ExecStart= only from one)".into(),
        ));
    }
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(refuse("does not exist".into())),
        Err(e) => Err(refuse(format!("cannot be read: {e}"))),
        Ok(meta) if !meta.is_file() => Err(refuse("is not a regular file".into())),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            Err(refuse("is not executable".into()))
        }
        // Root runs it at every boot: one another user could replace is refused (B23b F3).
        Ok(_) => match edgenet_deploy::state::untrusted_executable(path) {
            Some((message, hint)) => {
                Err(CliError::new(Exit::Unreadable, "unsafe-binary", message).hint(hint))
            }
            None => Ok(path.to_path_buf()),
        },
    }
}

/// `word` as a POSIX shell reads it back: as it is when it has nothing the shell would take
/// apart, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn systemctl(args: &[&str]) -> Result<(), CliError> {
    let status = std::process::Command::new("systemctl").args(args).status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(CliError::new(
            Exit::Host,
            "systemctl",
            format!("systemctl {} failed ({s})", args.join(" ")),
        )),
        Err(e) => Err(CliError::new(
            Exit::Host,
            "systemctl",
            format!("cannot run systemctl {}: {e}", args.join(" ")),
        )
        .hint("without systemd, run the deploy from the host's own boot scripts instead")),
    }
}

fn io_error(op: &str, path: &Path, e: std::io::Error) -> CliError {
    CliError::new(
        Exit::Host,
        "host",
        format!("cannot {op} {}: {e}", path.display()),
    )
}
