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

// The doc comments are --help texts, where <node name> and <hex> are placeholders, not HTML.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    // The help names the same targets as the errors (one list, B21 N9).
    // Not `required_unless_present`: clap's message for it names the argument on a second
    // line, which the JSON usage error leaves out; `run` says what is missing instead.
    #[arg(value_name = "TARGET", help = TARGET_HELP)]
    pub target: Option<String>,

    /// Write every file under DIR/<node name>/<absolute path on the node>, plus DIR/README.
    #[arg(long, value_name = "DIR", conflicts_with = "target")]
    pub out: Option<PathBuf>,

    /// Render the config's plan even when this machine's deployed plan differs from it.
    #[arg(long)]
    pub from_config: bool,

    /// Write into a non-empty DIR that no earlier `render --out` wrote (nothing in it is
    /// deleted except files a render lists in its manifest).
    #[arg(long, requires = "out")]
    pub force: bool,

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
pub fn source(cli: &Cli, machine: Option<usize>, from_config: bool) -> Result<Source, CliError> {
    // Without `-c`, the deployment's recorded config (what `deploy` without `-c` applies
    // again) as its machine: the files are the deployment's, and the built-in default would
    // only differ from it. The built-in default when nothing is recorded.
    let recorded = match cli.config {
        None => super::recorded_deployment_config(
            cli,
            "name the config to render with -c FILE, or deploy again with -c FILE to record it",
        )?,
        Some(_) => None,
    };
    let (loaded, machine) = match recorded {
        Some((loaded, index)) => (loaded, machine.or(Some(index))),
        None => (super::load_config(cli)?, machine),
    };
    let args = CheckArgs {
        machine,
        offline_check: false,
    };
    if let Some(n) = machine {
        let count = loaded.config.machines.len();
        if n >= count {
            return Err(CliError::new(
                Exit::Unreadable,
                "invalid-arguments",
                format!(
                    "--machine {n}: the config lists {count} machine(s) (Machines[0..{}])",
                    count.saturating_sub(1)
                ),
            )
            .hint("give the index of this host's entry in Machines[]"));
        }
    }
    let mut secret_notices = Vec::new();
    for key in ["ClusterJoinToken", "DiscoveryTokenHash", "CertificateKey"] {
        let join = loaded
            .source
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("Join")))
            .and_then(|(_, v)| v.as_object());
        // `""` or `null` is "not set" (docs/config.md), as `scale-config` itself writes them
        // (B23 F7): nothing unused to name.
        let set = |v: &serde_json::Value| match v {
            serde_json::Value::Null => false,
            serde_json::Value::String(s) => !s.trim().is_empty(),
            _ => true,
        };
        if join.is_some_and(|j| j.iter().any(|(k, v)| k.eq_ignore_ascii_case(key) && set(v))) {
            secret_notices.push(format!(
                "Join.{key} in the config is not used: edgenet reads no secrets from the config; give the token with --token-file FILE (and the CA hash with --ca-cert-hash)"
            ));
        }
    }
    let facts = super::host_facts(cli, &args);
    let mut ctx = super::context(cli, &facts, &args);
    let state = StateDir::new(&cli.state_dir).peek().ok().flatten();
    // The automatic subnet deploy chose (the config's plan would now avoid it as taken).
    ctx.deployed_subnet = state.as_ref().and_then(|s| s.auto_subnet);
    // Without --machine-name, the machine name the deployment was made with, as `deploy`
    // keeps it (notice `machine-name-kept`), unless a `-c` file names one: the host name
    // would make the config's plan differ from the deployed one in the node names only
    // (B23b F2).
    if ctx.machine_name.is_none() {
        if let Some(deployed) = state.as_ref().and_then(|s| s.applied_plan.as_ref()) {
            let config = &loaded.config;
            let index = machine.or((config.machines.len() == 1).then_some(0));
            let written = cli.config.is_some()
                && (config.edgenet.machine_name.is_some()
                    || index
                        .and_then(|i| config.machines.get(i))
                        .is_some_and(|m| m.machine_name.is_some()));
            if index == Some(deployed.machine.index) && !written {
                ctx.machine_name = Some(deployed.machine.name.clone());
            }
        }
    }
    super::refuse_errors(cli, &check(&loaded, &ctx), "nothing was rendered")?;
    let mut plan = plan::build(&loaded.config, &ctx).map_err(super::plan_error)?;
    let config = &loaded.config;
    let creates_cluster = !config.join
        && config.machines.iter().position(|m| m.linux_node.is_some()) == Some(plan.machine.index);
    let mut notices = secret_notices;
    let mut namespaces = BTreeMap::new();
    match state {
        Some(state) => match &state.applied_plan {
            Some(deployed) if deployed.machine.index == plan.machine.index => {
                let differs = plan_differences(&plan, deployed);
                if from_config {
                    if !differs.is_empty() {
                        notices.push(format!(
                            "rendered from the config (--from-config); the deployed plan differs in {} until `edgenet deploy` runs again",
                            differs.join(", ")
                        ));
                    }
                } else {
                    if !differs.is_empty() {
                        notices.push(format!(
                            "the config's plan differs from the deployed one in {}; rendered the deployed plan (run `edgenet deploy` first, or give --from-config to render the config's plan)",
                            differs.join(", ")
                        ));
                    }
                    plan = deployed.clone();
                }
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

/// The parts of two plans that differ: top-level fields, and per node the node's fields.
pub fn plan_differences(config: &Plan, deployed: &Plan) -> Vec<String> {
    let a = serde_json::to_value(config).unwrap_or_default();
    let b = serde_json::to_value(deployed).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, va) in a {
        let vb = &b[key];
        if va == vb {
            continue;
        }
        match (key.as_str(), va.as_array(), vb.as_array()) {
            ("nodes", Some(na), Some(nb)) if na.len() == nb.len() => {
                for (x, y) in na.iter().zip(nb) {
                    let name = x["name"].as_str().unwrap_or("?");
                    if let (Some(x), Some(y)) = (x.as_object(), y.as_object()) {
                        for (field, vx) in x {
                            if vx != &y[field] {
                                out.push(format!("node {name} {field}"));
                            }
                        }
                    }
                }
            }
            ("switch", _, _) => {
                for (field, vx) in va.as_object().into_iter().flatten() {
                    if vx != &vb[field] {
                        out.push(format!("switch {field}"));
                    }
                }
            }
            _ => out.push(key.clone()),
        }
    }
    out
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
    // A token is a line; a FIFO or /dev/zero is named, not read (for ever, or until memory ends).
    let text = edgenet_host::small_file::read(path, 1 << 20).map_err(|e| {
        CliError::new(
            Exit::Unreadable,
            "unreadable-token",
            format!("--token-file {}: {e}", path.display()),
        )
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(CliError::new(
            Exit::Unreadable,
            "empty-token",
            format!("--token-file {}: the file is empty", path.display()),
        )
        .hint("put the join token in it (K3s: /var/lib/rancher/k3s/server/node-token on the first server; kubeadm: `kubeadm token create`)"));
    }
    Ok(token)
}

/// The targets `render TARGET` knows (with the node's files, more than a config may produce).
macro_rules! targets {
    () => {
        "k3s-config, k3s-token, resolv, proxy-env, kube-vip, lb, kubeadm, calico, unit, node-exec, node-network, nftables, powershell, ports, readme"
    };
}
const TARGETS: &str = targets!();
const TARGET_HELP: &str = concat!(
    "Print this one file to standard output instead of writing them all: ",
    targets!(),
    " (which exist depends on the distribution, the nodes and whether the node is deployed)"
);

pub fn run(cli: &Cli, args: &RenderArgs) -> Result<Exit, CliError> {
    if args.target.is_none() && args.out.is_none() {
        return Err(CliError::new(
            Exit::Unreadable,
            "invalid-arguments",
            format!("render needs a TARGET (the one file to print: {TARGETS}) or --out DIR (every file)"),
        )
        .hint("e.g. `edgenet render k3s-config`, or `edgenet render --out ./rendered`"));
    }
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let Source {
        plan,
        creates_cluster,
        namespaces,
        mut notices,
    } = source(cli, args.machine, args.from_config)?;
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
    let mut rendered = edgenet_render::render(&plan, &opts).map_err(|e| {
        use edgenet_render::RenderError;
        // What the command line gave (the token file, the CA hash) is not usable: exit 2,
        // as for an unreadable token file; nothing was rendered.
        let code = match e {
            RenderError::BadToken { .. } => "invalid-token",
            RenderError::BadCaCertHash { .. } => "invalid-arguments",
            _ => return CliError::new(Exit::Findings, "cannot-render", e.to_string()),
        };
        CliError::new(Exit::Unreadable, code, e.to_string())
    })?;
    notices.append(&mut rendered.notices);
    rendered.notices = notices;
    match (&args.out, &args.target) {
        (Some(dir), _) => write_all(cli, dir, &rendered, args.force),
        (None, Some(target)) => print_one(
            cli.output,
            &plan,
            &rendered,
            target,
            args.node,
            token.as_deref(),
            opts.lb,
        ),
        (None, None) => unreachable!("refused at the start of run"),
    }
}

/// `DIR/.edgenet-render.json`: the files the last `render --out` wrote, so the next one can
/// delete those it no longer produces (a stale kube-vip range would still be applied).
pub const MANIFEST: &str = ".edgenet-render.json";

/// The relative paths the previous render of `dir` wrote; `None` for a new or empty directory.
/// A non-empty directory without a manifest is refused unless `force`.
fn previous_render(dir: &Path, force: bool) -> Result<Vec<String>, CliError> {
    let manifest = dir.join(MANIFEST);
    match edgenet_host::small_file::read(&manifest, edgenet_core::config::MAX_CONFIG_BYTES as u64)
        .map_err(edgenet_host::small_file::SmallFileError::into_io)
    {
        Ok(text) => {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                CliError::new(
                    Exit::Unreadable,
                    "bad-render-manifest",
                    format!("{}: {e}", manifest.display()),
                )
                .hint(format!(
                    "delete {} or render into another directory",
                    manifest.display()
                ))
            })?;
            Ok(value["files"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                // Only plain relative paths inside DIR: a manifest never sends us elsewhere.
                .filter(|f| {
                    Path::new(f)
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                })
                .map(str::to_string)
                .collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let non_empty = std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if non_empty && !force {
                return Err(CliError::new(
                    Exit::Findings,
                    "out-dir-not-empty",
                    format!(
                        "--out {}: the directory is not empty and no earlier `edgenet render --out` wrote it (no {MANIFEST})",
                        dir.display()
                    ),
                )
                .hint("choose an empty or new directory, or add --force to write into it anyway"));
            }
            Ok(Vec::new())
        }
        Err(e) => Err(CliError::new(
            Exit::Unreadable,
            "unreadable-render-manifest",
            format!("{}: {e}", manifest.display()),
        )),
    }
}

fn write_all(cli: &Cli, dir: &Path, rendered: &Rendered, force: bool) -> Result<Exit, CliError> {
    let fail = |path: &Path, e: std::io::Error| {
        CliError::new(
            Exit::Host,
            "cannot-write",
            format!("cannot write {}: {e}", path.display()),
        )
    };
    let previous = previous_render(dir, force)?;
    let mut written: Vec<String> = Vec::new();
    for f in &rendered.files {
        let rel = f.relative_out_path();
        let path = dir.join(&rel);
        write_file(&path, &f.contents, f.mode).map_err(|e| fail(&path, e))?;
        written.push(rel);
    }
    let readme = dir.join("README");
    write_file(&readme, &rendered.readme, 0o644).map_err(|e| fail(&readme, e))?;
    written.push("README".to_string());
    let mut removed = Vec::new();
    for stale in previous.iter().filter(|p| !written.contains(p)) {
        let path = dir.join(stale);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(stale.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CliError::new(
                    Exit::Host,
                    "cannot-remove",
                    format!("cannot remove stale {}: {e}", path.display()),
                ))
            }
        }
        // Directories the stale file leaves empty go too (never DIR itself).
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| *p != dir && p.starts_with(dir)) {
            if std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
    let manifest = dir.join(MANIFEST);
    let manifest_text = serde_json::to_string_pretty(&serde_json::json!({
        "schema": edgenet_render::RENDER_SCHEMA,
        "machine": rendered.machine,
        "files": written,
    }))
    .expect("json");
    write_file(&manifest, &(manifest_text + "\n"), 0o644).map_err(|e| fail(&manifest, e))?;
    match cli.output {
        Output::Json => crate::envelope::print(
            &crate::envelope::RENDER,
            &serde_json::json!({
                "out": dir,
                "machine": rendered.machine,
                "distribution": rendered.distribution,
                "files": rendered.files,
                "removed": removed,
                "notices": rendered.notices,
            }),
        ),
        _ => {
            for f in &rendered.files {
                crate::output::outln!(
                    "{:<64} {}",
                    dir.join(f.relative_out_path()).display(),
                    f.consumer
                );
            }
            crate::output::outln!("{:<64} what goes where", readme.display());
            for r in &removed {
                crate::output::outln!("{:<64} removed (no longer rendered)", dir.join(r).display());
            }
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
    lb: LbProvider,
) -> Result<Exit, CliError> {
    let kind = match node {
        NodeKindArg::Linux => "linux",
        NodeKindArg::Windows => "windows",
    };
    let text = match target {
        "readme" => rendered.readme.clone(),
        "ports" => edgenet_render::firewall_ports::table(plan.distribution, lb),
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
                        Exit::Unreadable,
                        "no-such-target",
                        format!(
                            "no file {target:?} for the {kind} node of machine {}",
                            plan.machine.name
                        ),
                    )
                    .hint(format!(
                        "targets here: {}; every target (some only with another distribution, a Windows node or a deployed node): {TARGETS}",
                        known.join(", ")
                    )));
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
    for n in &rendered.notices {
        eprintln!("notice: {n}");
    }
    // Nor a proxy password: `user:***@` on the terminal, the real one only in --out files.
    let redacted = edgenet_core::redact::redact_credentials(&text);
    if redacted != text {
        eprintln!("notice: the proxy password is shown as *** here; --out DIR writes it");
    }
    let text = redacted;
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
        _ => crate::output::out!("{text}"),
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::validate::Context;

    fn plan_of(range: u32, dns: &str) -> Plan {
        let config = serde_json::json!({
            "DeploymentType": "SingleMachineCluster",
            "Init": {"ServiceIPRangeSize": range},
            "Network": {"DnsServers": [dns], "Ip4AddressPrefix": "192.168.77.0/24"},
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"MachineName": "edge01"}
        });
        let loaded = edgenet_core::config::load(config.to_string().as_bytes()).unwrap();
        plan::build(&loaded.config, &Context::offline("test", "edge01")).unwrap()
    }

    #[test]
    fn a_changed_config_is_named_field_by_field() {
        let deployed = plan_of(4, "192.0.2.53");
        assert!(plan_differences(&deployed, &deployed).is_empty());
        let changed = plan_of(0, "192.0.2.54");
        let d = plan_differences(&changed, &deployed);
        assert!(d.contains(&"service_range".to_string()), "{d:?}");
        assert!(
            d.iter().any(|x| x.starts_with("node edge01-ledge dns")),
            "{d:?}"
        );
    }
}
