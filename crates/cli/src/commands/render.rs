//! `edgenet render`: the files Kubernetes needs on each node, from the same plan as `deploy`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use edgenet_core::plan::{self, Plan};
use edgenet_core::validate::check;
use edgenet_deploy::names;
use edgenet_deploy::node::files;
use edgenet_deploy::state::{DeploymentId, StateDir};
use edgenet_render::{LbProvider, NodeNamespace, RenderOptions, Rendered};

use crate::cli::{CheckArgs, Cli, NodeKindArg, Output};
use crate::exit::{CliError, Exit};

#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    /// Print this one file to standard output instead of writing them all: k3s-config,
    /// k3s-token, resolv, proxy-env, kube-vip, lb, kubeadm, calico, unit, node-network,
    /// nftables, powershell, ports, readme.
    #[arg(value_name = "TARGET", required_unless_present = "out")]
    pub target: Option<String>,

    /// Write every file under DIR/<node name>/<absolute path on the node>, plus DIR/README.
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub out: Option<PathBuf>,

    /// Which entry of Machines[] this host is (needed when the config lists several).
    #[arg(long, value_name = "N")]
    pub machine: Option<usize>,

    /// The node whose file TARGET prints.
    #[arg(long, value_enum, ignore_case = true, default_value_t = NodeKindArg::Linux)]
    pub node: NodeKindArg,

    /// File holding the join token (K3s token, or kubeadm bootstrap token). Without it the
    /// files carry a marked placeholder.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// kubeadm discovery CA hash (sha256:<hex>) for joining nodes.
    #[arg(long, value_name = "HASH")]
    pub ca_cert_hash: Option<String>,

    /// Who serves the LoadBalancer service range.
    #[arg(long, value_enum, ignore_case = true, default_value_t = LbArg::KubeVip)]
    pub lb: LbArg,

    #[command(flatten)]
    pub config: crate::cli::ConfigOpt,
    #[command(flatten)]
    pub output: crate::cli::OutputOpt,
    #[command(flatten)]
    pub state: crate::cli::StateOpt,
    #[command(flatten)]
    pub host: crate::cli::HostOpts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LbArg {
    KubeVip,
    Metallb,
}

/// What `render` works from.
pub struct Source {
    pub plan: Plan,
    /// This machine creates the cluster (first machine with a Linux node, no `Join`).
    pub creates_cluster: bool,
    /// Deployed netns nodes, for the systemd units.
    pub namespaces: BTreeMap<String, NodeNamespace>,
    pub notices: Vec<String>,
}

/// The plan to render from: the deployed one when this state directory holds a deployment of
/// the same machine (it has the subnet really chosen), else the config's.
pub fn source(cli: &Cli, machine: Option<usize>) -> Result<Source, CliError> {
    let args = CheckArgs {
        machine,
        offline_check: false,
    };
    let loaded = super::load_config(cli)?;
    let facts = super::host_facts(cli, &args);
    let ctx = super::context(cli, &facts, &args);
    super::refuse_errors(cli, &check(&loaded, &ctx), "nothing was rendered")?;
    let mut plan = plan::build(&loaded.config, &ctx)
        .map_err(|e| CliError::new(Exit::Findings, "no-plan", e.to_string()))?;
    let config = &loaded.config;
    let creates_cluster = !config.join
        && config.machines.iter().position(|m| m.linux_node.is_some()) == Some(plan.machine.index);
    let mut notices = Vec::new();
    let mut namespaces = BTreeMap::new();
    let state = StateDir::new(&cli.state_dir).peek().ok().flatten();
    match state {
        Some(state) => match &state.applied_plan {
            Some(deployed) if deployed.machine.index == plan.machine.index => {
                plan = deployed.clone();
                if plan.node_runtime == edgenet_core::config::NodeRuntime::Netns {
                    namespaces = namespaces_of(cli, &plan, &state.deployment_id);
                }
            }
            _ => notices.push(format!(
                "the deployment in {} is not of this machine; rendered from the config",
                cli.state_dir.display()
            )),
        },
        None => notices.push(format!(
            "nothing is deployed in {}; rendered from the config",
            cli.state_dir.display()
        )),
    }
    Ok(Source {
        plan,
        creates_cluster,
        namespaces,
        notices,
    })
}

fn namespaces_of(cli: &Cli, plan: &Plan, id: &DeploymentId) -> BTreeMap<String, NodeNamespace> {
    plan.nodes
        .iter()
        .map(|n| {
            let dir = files::node_dir(&cli.state_dir, &n.name);
            (
                n.name.clone(),
                NodeNamespace {
                    netns: names::node_netns(&n.name, id),
                    resolv_conf: dir.join(files::RESOLV_CONF).display().to_string(),
                    proxy_env: dir.join(files::PROXY_ENV).display().to_string(),
                },
            )
        })
        .collect()
}

fn read_token(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Unreadable,
            "unreadable-token",
            format!("--token-file {}: {e}", path.display()),
        )
    })?;
    Ok(text.trim().to_string())
}

pub fn run(cli: &Cli, args: &RenderArgs) -> Result<Exit, CliError> {
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let Source {
        plan,
        creates_cluster,
        namespaces,
        mut notices,
    } = source(cli, args.machine)?;
    let opts = RenderOptions {
        lb: match args.lb {
            LbArg::KubeVip => LbProvider::KubeVip,
            LbArg::Metallb => LbProvider::Metallb,
        },
        token: token.clone(),
        ca_cert_hash: args.ca_cert_hash.clone(),
        creates_cluster,
        namespaces,
        ..Default::default()
    };
    let mut rendered = edgenet_render::render(&plan, &opts)
        .map_err(|e| CliError::new(Exit::Findings, "cannot-render", e.to_string()))?;
    notices.append(&mut rendered.notices);
    rendered.notices = notices;
    match (&args.out, &args.target) {
        (Some(dir), _) => write_all(cli, dir, &rendered),
        (None, Some(target)) => print_one(
            cli.output,
            &plan,
            &rendered,
            target,
            args.node,
            token.as_deref(),
        ),
        (None, None) => unreachable!("clap requires TARGET or --out"),
    }
}

fn write_all(cli: &Cli, dir: &Path, rendered: &Rendered) -> Result<Exit, CliError> {
    let fail = |path: &Path, e: std::io::Error| {
        CliError::new(
            Exit::Host,
            "cannot-write",
            format!("cannot write {}: {e}", path.display()),
        )
    };
    for f in &rendered.files {
        let path = dir.join(f.relative_out_path());
        write_file(&path, &f.contents, f.mode).map_err(|e| fail(&path, e))?;
    }
    let readme = dir.join("README");
    write_file(&readme, &rendered.readme, 0o644).map_err(|e| fail(&readme, e))?;
    match cli.output {
        Output::Json => crate::envelope::print(
            &crate::envelope::RENDER,
            &serde_json::json!({
                "out": dir,
                "machine": rendered.machine,
                "distribution": rendered.distribution,
                "files": rendered.files,
                "notices": rendered.notices,
            }),
        ),
        _ => {
            for f in &rendered.files {
                println!(
                    "{:<64} {}",
                    dir.join(f.relative_out_path()).display(),
                    f.consumer
                );
            }
            println!("{:<64} what goes where", readme.display());
            for n in &rendered.notices {
                eprintln!("notice: {n}");
            }
        }
    }
    Ok(Exit::Ok)
}

/// Writes atomically with the file's mode from the start (a token file is never readable by
/// others, not even for a moment).
fn write_file(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("edgenet-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn print_one(
    output: Output,
    plan: &Plan,
    rendered: &Rendered,
    target: &str,
    node: NodeKindArg,
    token: Option<&str>,
) -> Result<Exit, CliError> {
    let kind = match node {
        NodeKindArg::Linux => "linux",
        NodeKindArg::Windows => "windows",
    };
    let text = match target {
        "readme" => rendered.readme.clone(),
        "ports" => edgenet_render::firewall_ports::table(plan.distribution),
        _ => {
            let matching: Vec<_> = rendered
                .files
                .iter()
                .filter(|f| f.target == target && (f.node_kind == kind || f.node_kind == "host"))
                .collect();
            match matching.as_slice() {
                [] => {
                    let mut known: Vec<&str> = rendered
                        .files
                        .iter()
                        .filter(|f| f.node_kind == kind || f.node_kind == "host")
                        .map(|f| f.target.as_str())
                        .chain(["readme", "ports"])
                        .collect();
                    known.sort();
                    known.dedup();
                    return Err(CliError::new(
                        Exit::Findings,
                        "no-such-target",
                        format!(
                            "no file {target:?} for the {kind} node of machine {}",
                            plan.machine.name
                        ),
                    )
                    .hint(format!("targets here: {}", known.join(", "))));
                }
                [one] => one.contents.clone(),
                many => many
                    .iter()
                    .map(|f| format!("# {}\n{}", f.path, f.contents))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        }
    };
    // A token is written into files, never printed.
    let text = match token {
        Some(t) if text.contains(t) => {
            eprintln!("notice: the join token is shown as *** here; --out DIR writes it");
            text.replace(t, "***")
        }
        _ => text,
    };
    match output {
        Output::Json => crate::envelope::print(
            &crate::envelope::RENDER,
            &serde_json::json!({
                "machine": rendered.machine,
                "node": kind,
                "target": target,
                "contents": text,
            }),
        ),
        _ => print!("{text}"),
    }
    Ok(Exit::Ok)
}
