//! `edgenet lab up|status|down`: the sandbox of SPEC §6.3, with the normal `deploy` run inside
//! each lab machine (a child `edgenet` that switched only its network namespace, with the
//! machine's own state directory and resolv.conf).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Output;

use edgenet_core::plan::Outbound;
use edgenet_deploy::names;
use edgenet_deploy::node::files;
use edgenet_deploy::state::StateDir;
use edgenet_lab::{Expectations, Lab, LabMachine, LabSpec, NodeInfo};

use crate::cli::{Cli, LabArgs, LabUpArgs, Output as Format};
use crate::exit::{CliError, Exit};
use crate::output::print_json;

fn lab_dir(args: &LabArgs) -> PathBuf {
    args.lab_dir.join(&args.name)
}

fn lab_error(e: impl std::fmt::Display) -> CliError {
    CliError::new(Exit::Host, "lab", e.to_string())
}

fn progress(cli: &Cli, message: &str) {
    if cli.output == Format::Text && std::io::stderr().is_terminal() {
        eprintln!("edgenet: {message}");
    }
}

/// Runs this same `edgenet` inside a lab machine.
fn edgenet_in(m: &LabMachine, args: &[&std::ffi::OsStr]) -> Result<Output, CliError> {
    let exe = std::env::current_exe().map_err(lab_error)?;
    let mut cmd = m.command(exe).map_err(lab_error)?;
    cmd.arg("--state-dir")
        .arg(&m.state_dir)
        .arg("--resolv-conf")
        .arg(&m.resolv_conf)
        .arg("--machine-name")
        .arg(&m.name)
        .args(args)
        .env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_STATE_DIR")
        .env_remove("EDGENET_RESOLV_CONF");
    cmd.output().map_err(lab_error)
}

fn failed(what: &str, m: &LabMachine, out: &Output) -> String {
    format!(
        "{what} on lab machine {} failed ({}): {}{}",
        m.name,
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )
}

pub fn up(cli: &Cli, args: &LabUpArgs) -> Result<Exit, CliError> {
    // The config is checked here first (offline: the lab machine's host facts are its own),
    // so a bad one is refused before any namespace exists.
    let config: Option<PathBuf> = match &args.lab_config {
        Some(p) => Some(std::fs::canonicalize(p).map_err(|e| {
            CliError::new(
                Exit::Unreadable,
                "unreadable-config",
                format!("cannot read {}: {e}", p.display()),
            )
        })?),
        None => None,
    };
    let probe = Cli {
        config: config.clone(),
        ..clone_cli(cli)
    };
    let loaded = super::load_config(&probe)?;
    if loaded.config.is_scalable() {
        return Err(CliError::new(
            Exit::Findings,
            "unsupported",
            "the lab runs SingleMachineCluster configs in this edgenet version (scalable labs come with the external switch)",
        ));
    }
    let dir = lab_dir(&args.lab);
    let spec = LabSpec::new(&args.lab.name, &dir);
    progress(
        cli,
        &format!("building lab {} in {} …", args.lab.name, dir.display()),
    );
    let deploy = |m: &LabMachine| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        progress(
            cli,
            &format!("deploying on lab machine {} ({}) …", m.name, m.address),
        );
        let mut a: Vec<&std::ffi::OsStr> = vec!["deploy".as_ref()];
        if let Some(c) = &config {
            a.extend(["-c".as_ref(), c.as_os_str()]);
        }
        let out = edgenet_in(m, &a).map_err(|e| e.message)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed("deploy", m, &out).into())
        }
    };
    match Lab::up(&spec, deploy) {
        Ok(lab) => {
            let dir = lab.detach();
            progress(cli, "lab is up; measuring reachability …");
            let lab = Lab::open(&dir).map_err(lab_error)?;
            report_matrix(cli, &lab)
        }
        Err(e) => {
            let message = e.error.to_string();
            if let Some(lab) = e.lab {
                lab.detach();
            }
            Err(lab_error(format!("lab up failed: {message}")).hint(format!(
                "`edgenet lab down --name {}` removes what was built",
                args.lab.name
            )))
        }
    }
}

fn clone_cli(cli: &Cli) -> Cli {
    Cli {
        config: cli.config.clone(),
        output: cli.output,
        state_dir: cli.state_dir.clone(),
        resolv_conf: cli.resolv_conf.clone(),
        upstream_resolv_conf: cli.upstream_resolv_conf.clone(),
        machine_name: cli.machine_name.clone(),
        verbose: cli.verbose,
        command: crate::cli::Command::Status,
    }
}

/// The nodes each lab machine's deployment made, read from the machine's state.
fn lab_nodes(lab: &Lab) -> Result<(Vec<NodeInfo>, Expectations), CliError> {
    let mut nodes = Vec::new();
    let mut expect = Expectations::NAT;
    for m in lab.machines() {
        let Some(state) = StateDir::new(&m.state_dir).peek().map_err(lab_error)? else {
            continue;
        };
        let Some(plan) = state.applied_plan.clone() else {
            continue;
        };
        if plan.switch.outbound == Outbound::Offline {
            expect = Expectations::OFFLINE;
        }
        for n in &plan.nodes {
            nodes.push(NodeInfo {
                name: n.name.clone(),
                machine: m.name.clone(),
                netns: names::node_netns(&n.name, &state.deployment_id),
                address: n.address.addr(),
                host: plan.switch.gateway,
                kind: n.kind,
                resolv_conf: Some(files::node_dir(&m.state_dir, &n.name).join(files::RESOLV_CONF)),
            });
        }
    }
    Ok((nodes, expect))
}

fn report_matrix(cli: &Cli, lab: &Lab) -> Result<Exit, CliError> {
    let (nodes, expect) = lab_nodes(lab)?;
    let matrix = lab.status(&nodes, &expect).map_err(lab_error)?;
    match cli.output {
        Format::Json => print_json(&matrix),
        Format::Text => print!("{}", matrix.render_table()),
    }
    Ok(if matrix.all_ok() {
        Exit::Ok
    } else {
        Exit::Findings
    })
}

pub fn status(cli: &Cli, args: &LabArgs) -> Result<Exit, CliError> {
    let lab = open(&lab_dir(args), &args.name)?;
    report_matrix(cli, &lab)
}

fn open(dir: &Path, name: &str) -> Result<Lab, CliError> {
    Lab::open(dir)
        .map_err(|e| lab_error(e).hint(format!("`edgenet lab up --name {name}` builds it")))
}

pub fn down(cli: &Cli, args: &LabArgs) -> Result<Exit, CliError> {
    let dir = lab_dir(args);
    if !dir.join("lab.json").exists() {
        if cli.output == Format::Json {
            print_json(&serde_json::json!({"lab": args.name, "removed": false}));
        } else {
            println!("No lab {} in {}.", args.name, dir.display());
        }
        return Ok(Exit::Ok);
    }
    let lab = open(&dir, &args.name)?;
    progress(cli, &format!("removing lab {} …", args.name));
    let undeploy = |m: &LabMachine| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let out = edgenet_in(m, &["remove".as_ref()]).map_err(|e| e.message)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed("remove", m, &out).into())
        }
    };
    match lab.down(undeploy) {
        Ok(()) => {
            // The lab keeps its logs for a post-mortem of a failed run; a clean down leaves
            // nothing.
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir(&args.lab_dir);
            if cli.output == Format::Json {
                print_json(&serde_json::json!({"lab": args.name, "removed": true}));
            } else {
                println!("Lab {} removed.", args.name);
            }
            Ok(Exit::Ok)
        }
        Err(e) => Err(lab_error(format!("lab down: {e}"))
            .hint("run `edgenet lab down` again; it carries on from what is left")),
    }
}
