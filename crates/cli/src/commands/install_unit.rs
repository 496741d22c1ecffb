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
            Ok(()) => println!("Removed {}.", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("Nothing to remove: {} does not exist.", path.display())
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
    if args.print {
        print!("{text}");
        return Ok(Exit::Ok);
    }
    std::fs::create_dir_all(&args.unit_dir).map_err(|e| io_error("create", &args.unit_dir, e))?;
    let tmp = args.unit_dir.join(format!(".{UNIT_NAME}.tmp"));
    std::fs::write(&tmp, &text).map_err(|e| io_error("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error("write", &path, e))?;
    println!("Wrote {}: at boot it runs", path.display());
    println!("  {}", unit.command().join(" "));
    if args.enable {
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", UNIT_NAME])?;
        println!("Enabled {UNIT_NAME}.");
    } else {
        println!("Enable it with: systemctl daemon-reload && systemctl enable {UNIT_NAME}");
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
    Err(CliError::new(
        Exit::Findings,
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
    // Without `-c` the unit deploys the recorded config again (see `deploy`): its adapter is
    // the one to wait for, not the built-in default's (which has none).
    let recorded = match cli.config {
        None => super::recorded_deployment_config(
            cli,
            "name the config with -c FILE, or deploy again with -c FILE to record it",
        )?,
        Some(_) => None,
    };
    let (loaded, machine) = match recorded {
        Some((loaded, index)) => (loaded, args.machine.or(Some(index))),
        None => (super::load_config(cli)?, args.machine),
    };
    let check = CheckArgs {
        machine,
        offline_check: false,
    };
    let facts = super::host_facts(cli, &check);
    let ctx = super::context(cli, &facts, &check);
    let plan = edgenet_core::plan::build(&loaded.config, &ctx).map_err(|e| {
        CliError::new(Exit::Findings, "no-plan", e.to_string())
            .hint("`edgenet check` lists every problem; fix the config, then install the unit")
    })?;
    let config = match &cli.config {
        Some(p) => Some(std::fs::canonicalize(p).map_err(|e| io_error("find", p, e))?),
        None => None,
    };
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| io_error("find", Path::new("edgenet"), e))?,
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
