//! `edgenet config new`: a starting config that passes `check` as written.

use std::io::Write;

use edgenet_core::config::template::{new_config, template_problem, NodeSelection};
use edgenet_core::config::{DeploymentType, Distribution};

use crate::cli::{Cli, ConfigNewArgs, DeploymentKind, Distro, NodeType};
use crate::exit::{CliError, Exit};

pub fn run(cli: &Cli, args: &ConfigNewArgs) -> Result<Exit, CliError> {
    let nodes = match args.node_type {
        NodeType::Linux => NodeSelection::Linux,
        NodeType::Windows => NodeSelection::Windows,
        NodeType::LinuxAndWindows => NodeSelection::LinuxAndWindows,
    };
    if let Some(problem) = template_problem(nodes) {
        return Err(CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            format!("--node-type windows: {problem}"),
        ));
    }
    let deployment = match args.deployment_type {
        DeploymentKind::Single => DeploymentType::SingleMachineCluster,
        DeploymentKind::Scalable => DeploymentType::ScalableCluster,
    };
    let distro = match args.distro {
        Distro::K3s => Distribution::K3s,
        Distro::K8s => Distribution::K8s,
    };
    let config = new_config(deployment, nodes, distro);
    let mut text = serde_json::to_string_pretty(&config).expect("serializes");
    text.push('\n');
    let next = if deployment == DeploymentType::ScalableCluster {
        "fill in the <…> placeholders, then run"
    } else {
        "check it with"
    };
    report_written(
        cli,
        args.out.as_deref(),
        args.force,
        &text,
        next,
        false,
        &config,
    )?;
    Ok(Exit::Ok)
}

/// Writes the config: with `-o json` to `out` (if given) and reported in the
/// `edgenet.config/v1` envelope; else as [`write_out`] does.
pub fn report_written(
    cli: &Cli,
    out: Option<&std::path::Path>,
    force: bool,
    text: &str,
    next: &str,
    private: bool,
    config: &serde_json::Value,
) -> Result<(), CliError> {
    if cli.output != crate::cli::Output::Json {
        return write_out(out, force, text, next, private);
    }
    if out.is_some() {
        write_out(out, force, text, next, private)?;
    }
    crate::envelope::print(
        &crate::envelope::CONFIG,
        &serde_json::json!({"file": out.map(|p| p.display().to_string()), "config": config}),
    );
    Ok(())
}

/// Writes `text` to `out` (kept if it exists, unless `force`) or to standard output.
pub fn write_out(
    out: Option<&std::path::Path>,
    force: bool,
    text: &str,
    next: &str,
    private: bool,
) -> Result<(), CliError> {
    let Some(path) = out else {
        crate::output::out!("{text}");
        return Ok(());
    };
    // A config holding a proxy password or a join secret is for root's eyes only (like the
    // node's proxy.env).
    let private = private || edgenet_core::redact::has_credentials(text);
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if private {
        // Secrets (join tokens, Arc's ClientSecret): readable by the owner only.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        let err = CliError::new(
            Exit::Unreadable,
            "cannot-write",
            format!("cannot write {}: {e}", path.display()),
        );
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            err.hint("pass --force to overwrite it")
        } else {
            err
        }
    })?;
    if private {
        // `--force` over an existing file keeps its mode: narrow it too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| {
                CliError::new(
                    Exit::Host,
                    "cannot-write",
                    format!("cannot restrict {} to its owner: {e}", path.display()),
                )
            })?;
    }
    file.write_all(text.as_bytes()).map_err(|e| {
        CliError::new(
            Exit::Host,
            "cannot-write",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    eprintln!(
        "wrote {}; {next} `edgenet check -c {}`",
        path.display(),
        path.display()
    );
    Ok(())
}
