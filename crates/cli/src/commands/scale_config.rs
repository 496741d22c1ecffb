//! `edgenet scale-config`: the config of a machine that joins this scalable cluster.

use edgenet_core::config::load;
use edgenet_core::config::scale::{cluster_with, scale_config, NewMachine};
use edgenet_core::validate::{check, Context, Severity};
use edgenet_deploy::state::StateDir;
use serde_json::Value;

use crate::cli::{Cli, ScaleConfigArgs};
use crate::commands::config_new::report_written;
use crate::exit::{CliError, Exit};
use crate::output::{finding_text, Style};

/// The cluster's config and this machine's index: `-c FILE` (machine `--machine`-less: 0), or
/// the config of the deployment in the state directory.
fn cluster(cli: &Cli) -> Result<(Value, usize), CliError> {
    if cli.config.is_some() {
        return Ok((super::load_config(cli)?.source, 0));
    }
    let state = StateDir::new(&cli.state_dir)
        .peek()
        .map_err(|e| CliError::new(Exit::Host, "state", e.to_string()))?;
    let Some(plan) = state.as_ref().and_then(|s| s.applied_plan.as_ref()) else {
        return Err(not_deployed(cli));
    };
    let hint = "name the cluster's config with -c FILE, or run `edgenet deploy -c FILE` on this machine again, which writes it back";
    let Some(loaded) = super::recorded_config::recorded(
        cli,
        state.as_ref().and_then(|s| s.config.as_deref()),
        Some(plan),
        hint,
    )?
    else {
        return Err(not_deployed(cli));
    };
    Ok((loaded.source, plan.machine.index))
}

fn not_deployed(cli: &Cli) -> CliError {
    CliError::new(
        Exit::Findings,
        "not-deployed",
        format!("no deployment in {}", cli.state_dir.display()),
    )
    .hint("run it on a machine of the cluster, or name the cluster's config with -c FILE")
}

fn refuse(what: &str, findings: Vec<edgenet_core::validate::Finding>) -> CliError {
    let style = Style::for_stdout();
    let listing: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| finding_text(f, style))
        .collect();
    CliError::new(
        Exit::Findings,
        "scale-config-invalid",
        format!("{what}:\n{}", listing.join("\n")),
    )
    .hint("choose addresses that are free in the cluster and inside its LAN")
}

pub fn run(cli: &Cli, args: &ScaleConfigArgs) -> Result<Exit, CliError> {
    if let Some(name) = &args.new_machine_name {
        if let Some(problem) = edgenet_core::validate::machine_name_problem(name) {
            return Err(CliError::new(
                Exit::Unreadable,
                "invalid-arguments",
                format!("--new-machine-name {name:?}: {problem}"),
            ));
        }
    }
    // Arguments missing from the command line are usage errors (exit 2), said before the
    // cluster is looked for.
    let missing = if args.linux_node_ip.is_none() && args.windows_node_ip.is_none() {
        Some("scale-config needs the new machine's node: --linux-node-ip and/or --windows-node-ip")
    } else if args.control_plane && args.linux_node_ip.is_none() {
        Some("--control-plane needs a Linux node (--linux-node-ip)")
    } else {
        None
    };
    if let Some(missing) = missing {
        return Err(
            CliError::new(Exit::Unreadable, "invalid-arguments", missing)
                .hint("e.g. `edgenet scale-config --linux-node-ip 192.168.1.172`"),
        );
    }
    // `--machine-name` (EDGENET_MACHINE_NAME) is this machine's: one given on the command line
    // was most likely meant for the new machine, as an earlier edgenet took it.
    let from_env = std::env::var("EDGENET_MACHINE_NAME").ok();
    if cli.machine_name.is_some() && cli.machine_name != from_env {
        tracing::warn!(
            "--machine-name names this machine and is not used by scale-config; the new machine's name is --new-machine-name NAME"
        );
    }
    let (cluster, template) = cluster(cli)?;
    // The new config is written in the schema's spelling whatever case the cluster's used.
    let cluster = edgenet_core::config::with_canonical_keys(&cluster);
    let new = NewMachine {
        linux_ip: args.linux_node_ip,
        windows_ip: args.windows_node_ip,
        control_plane: args.control_plane,
        machine_name: args.new_machine_name.clone(),
        adapter: args.adapter_name.clone(),
    };
    // The new machine's nodes cannot have an address of this machine (check's address-is-host).
    if let Ok(facts) = edgenet_host::facts::gather_with(&super::facts_paths(cli)) {
        for (flag, ip) in [
            ("--linux-node-ip", args.linux_node_ip),
            ("--windows-node-ip", args.windows_node_ip),
        ] {
            let Some(ip) = ip else { continue };
            if let Some(a) = facts.addresses.iter().find(|a| a.address.addr() == ip) {
                return Err(CliError::new(
                    Exit::Findings,
                    "address-is-host",
                    format!("{flag} is {ip}, an address of this machine (on {})", a.link),
                )
                .hint("choose an address that is free in the cluster's LAN"));
            }
        }
    }
    let scale = scale_config(&cluster, template, &new)
        .map_err(|e| CliError::new(Exit::Findings, "scale-config-invalid", e))?;
    // Checked without this host: the config is for another machine.
    let ctx = Context::offline("the config is for another machine", "new-machine");
    let errors = |v: &Value| {
        let loaded = load(v.to_string().as_bytes()).expect("a JSON object loads");
        check(&loaded, &ctx)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect::<Vec<_>>()
    };
    let whole = errors(&cluster_with(&cluster, &scale));
    if !whole.is_empty() {
        return Err(refuse("the new machine does not fit the cluster", whole));
    }
    let alone = errors(&scale);
    if !alone.is_empty() {
        return Err(refuse(
            "the new machine's config does not pass check",
            alone,
        ));
    }
    let mut text = serde_json::to_string_pretty(&scale).expect("serializes");
    text.push('\n');
    report_written(
        cli,
        args.out.as_deref(),
        args.force,
        &text,
        "check it on the new machine with",
        true,
        &scale,
    )?;
    Ok(Exit::Ok)
}
