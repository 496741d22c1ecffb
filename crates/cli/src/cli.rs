//! The command line: every command, flag and environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "edgenet",
    version,
    about = "Host networking for edge Kubernetes clusters on Linux",
    long_about = "edgenet builds the virtual switch, node guests, addresses, DNS, proxy and NAT of an edge \
Kubernetes cluster on a Linux host, from the deployment JSON that AKS Edge Essentials users already write.\n\n\
Without -c FILE every command uses the built-in single-machine default (a Linux node, K3s).\n\n\
The options below may also be given before the command (`edgenet -c site.json check`); each \
command's --help lists the ones it uses.",
    after_help = "Exit status: 0 success; 1 the config has errors (or an operation found problems); \
2 the config cannot be read or parsed, or the command line is wrong; 3 the host could not be changed as asked."
)]
pub struct Cli {
    /// Deployment config (AKS Edge Essentials JSON; `-` reads standard input). Default: the
    /// built-in single-machine config.
    #[arg(short, long, env = "EDGENET_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format of reports (`json`: one envelope per report, see docs/json-output.md).
    /// Pictures: `svg` and `dot` for plan and status, `html` (and `svg`, `dot`) for lab status.
    // Given twice (`-o json check -o text`, `-o json -o text`): the last one wins.
    #[arg(short, long, value_enum, ignore_case = true, default_value_t = Output::Text, overrides_with = "output")]
    pub output: Output,

    /// Directory of the deployment state (one deployment per directory).
    #[arg(
        long,
        env = "EDGENET_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/edgenet"
    )]
    pub state_dir: PathBuf,

    /// The host's resolver file, read for the nodes' DNS when Network.DnsServers is not set.
    #[arg(
        long,
        env = "EDGENET_RESOLV_CONF",
        value_name = "FILE",
        default_value = "/etc/resolv.conf"
    )]
    pub resolv_conf: PathBuf,

    /// systemd-resolved's list of upstream servers, followed when the resolver file names the
    /// local stub (127.0.0.53).
    #[arg(
        long,
        env = "EDGENET_UPSTREAM_RESOLV_CONF",
        value_name = "FILE",
        default_value = "/run/systemd/resolve/resolv.conf"
    )]
    pub upstream_resolv_conf: PathBuf,

    // The doc comment is the --help text, where <name> is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    /// This machine's name (nodes are <name>-ledge, <name>-wedge); overrides the config.
    #[arg(long, env = "EDGENET_MACHINE_NAME", value_name = "NAME")]
    pub machine_name: Option<String>,

    /// More log output on stderr: -v info, -vv debug (every netlink change and file write),
    /// -vvv trace (step timings). EDGENET_LOG takes a tracing filter instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// No progress messages, only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// When to colour text output (NO_COLOR and TERM=dumb also turn it off under `auto`).
    #[arg(long, global = true, value_enum, ignore_case = true, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Options given after the command override those before it (and the environment).
    pub fn merge_command_options(&mut self) {
        let (config, output, state, host) = match &self.command {
            Command::Check(c) => (
                Some(&c.config),
                Some(&c.output),
                Some(&c.state),
                Some(&c.host),
            ),
            Command::Plan(c) => (Some(&c.config), Some(&c.output), None, Some(&c.host)),
            Command::Deploy(c) => (
                Some(&c.config),
                Some(&c.output),
                Some(&c.state),
                Some(&c.host),
            ),
            Command::Remove(c) => (None, Some(&c.output), Some(&c.state), None),
            Command::Status(c) => (None, Some(&c.output), Some(&c.state), None),
            Command::Node(NodeCommand::Addr(c)) => (None, Some(&c.output), Some(&c.state), None),
            Command::Node(NodeCommand::Exec(c)) => (None, Some(&c.output), Some(&c.state), None),
            Command::ScaleConfig(c) => (
                Some(&c.config),
                Some(&c.output),
                Some(&c.state),
                Some(&c.host),
            ),
            Command::Config(ConfigCommand::New(c)) => (None, Some(&c.output), None, None),
            Command::Render(c) => (
                Some(&c.config),
                Some(&c.output),
                Some(&c.state),
                Some(&c.host),
            ),
            Command::Doctor(c) => (None, Some(&c.output), Some(&c.state), None),
            Command::InstallUnit(c) => (Some(&c.config), None, Some(&c.state), Some(&c.host)),
            Command::Lab(LabCommand::Up(c)) => (Some(&c.config), Some(&c.output), None, None),
            Command::Lab(LabCommand::Status(c)) => (None, Some(&c.output), None, None),
            Command::Lab(LabCommand::Down(c)) => (None, Some(&c.output), None, None),
            Command::Completions(c) => (None, Some(&c.output), None, None),
            Command::Man(c) => (None, Some(&c.output), None, None),
        };
        let (config, output, state, host) = (
            config.and_then(|c| c.config.clone()),
            output.and_then(|o| o.output),
            state.and_then(|s| s.state_dir.clone()),
            host.cloned(),
        );
        if let Some(c) = config {
            self.config = Some(c);
        }
        if let Some(o) = output {
            self.output = o;
        }
        if let Some(s) = state {
            self.state_dir = s;
        }
        if let Some(h) = host {
            if let Some(r) = h.resolv_conf {
                self.resolv_conf = r;
            }
            if let Some(u) = h.upstream_resolv_conf {
                self.upstream_resolv_conf = u;
            }
            if let Some(m) = h.machine_name {
                self.machine_name = Some(m);
            }
        }
    }

    /// A `--machine-name` (or `EDGENET_MACHINE_NAME`) in capitals, as Windows' `COMPUTERNAME`
    /// is, read in lower case as `MachineName` in a file is (B23 F7): the notice that says so.
    /// A name that is not valid in lower case either is left for the refusal.
    pub fn lower_machine_name(&mut self) -> Option<String> {
        let name = self.machine_name.as_ref()?;
        if !name.chars().any(|c| c.is_ascii_uppercase()) {
            return None;
        }
        let lower = name.to_ascii_lowercase();
        if edgenet_core::validate::machine_name_problem(&lower).is_some() {
            return None;
        }
        let note = format!(
            "notice[machine-name-case] --machine-name (or EDGENET_MACHINE_NAME) is {name:?}; read as {lower:?} (node names are lower-case: {lower}-ledge)\n  hint: give it as \"{lower}\""
        );
        self.machine_name = Some(lower);
        Some(note)
    }
}

/// `-c FILE` after the command.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigOpt {
    /// Deployment config (AKS Edge Essentials JSON; `-` reads standard input; env
    /// EDGENET_CONFIG). Default: the built-in single-machine config.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `-o FORMAT` after the command.
#[derive(Debug, Args, Clone, Default)]
pub struct OutputOpt {
    /// Output format (`json`: one envelope per report, see docs/json-output.md). Default: text.
    #[arg(
        short,
        long,
        value_enum,
        ignore_case = true,
        value_name = "FORMAT",
        overrides_with = "output"
    )]
    pub output: Option<Output>,
}

/// `--state-dir DIR` after the command.
#[derive(Debug, Args, Clone, Default)]
pub struct StateOpt {
    /// Directory of the deployment state (env EDGENET_STATE_DIR; default /var/lib/edgenet).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// What commands that read this host take after the command.
#[derive(Debug, Args, Clone, Default)]
pub struct HostOpts {
    /// The host's resolver file (env EDGENET_RESOLV_CONF; default /etc/resolv.conf), read for
    /// the nodes' DNS when Network.DnsServers is not set.
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<PathBuf>,

    /// systemd-resolved's upstream list (env EDGENET_UPSTREAM_RESOLV_CONF), followed when the
    /// resolver file names the local stub 127.0.0.53.
    #[arg(long, value_name = "FILE")]
    pub upstream_resolv_conf: Option<PathBuf>,

    // The doc comment is the --help text, where <name> is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    /// This machine's name (env EDGENET_MACHINE_NAME); nodes are <name>-ledge, <name>-wedge.
    #[arg(long, value_name = "NAME")]
    pub machine_name: Option<String>,
}

/// `--color`: `auto` colours a terminal unless NO_COLOR is set or TERM is `dumb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Every output format of every reporting command, in one place. A format added here that a
/// command cannot produce should be refused by that command with the error code
/// `unsupported-format` (exit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for people (tables, findings).
    Text,
    /// One JSON envelope (docs/json-output.md), stable for scripts.
    Json,
    /// A picture (plan, status, lab status); laid out by Graphviz when installed.
    Svg,
    /// The picture as Graphviz DOT text (plan, status, lab status).
    Dot,
    /// One self-contained page with the picture and the matrix (lab status).
    Html,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config against every rule and this host; change nothing.
    Check(CheckCmd),
    /// Print the resolved network plan of this machine.
    Plan(PlanCmd),
    /// Write a starting config (like New-AksEdgeConfig).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Build (or update in place) this machine's switch, nodes, NAT, DNS and proxy settings.
    Deploy(DeployArgs),
    /// Delete everything the deployment created and restore what it changed.
    Remove(RemoveArgs),
    /// Show the deployment, the live kernel state and any drift between them.
    Status(StatusArgs),
    /// Commands that act on one node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Write the config of a new machine joining this scalable cluster (like
    /// New-AksEdgeScaleConfig), checked against the whole cluster.
    ScaleConfig(ScaleConfigArgs),
    /// Install the systemd unit that deploys again at every boot (after the adapter is up,
    /// before K3s/kubelet), with this command's config, machine and state directory.
    InstallUnit(InstallUnitArgs),
    /// A sandbox on this host made only of network namespaces: an "internet", a LAN and a
    /// machine running the normal deploy. Never changes the host's own network.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Write the files Kubernetes needs on each node (K3s or kubeadm, kube-vip or MetalLB,
    /// Calico, proxy, DNS, systemd units), or print one of them.
    Render(crate::commands::render::RenderArgs),
    /// Check from inside each node that the network works as planned.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(mut_arg("output", |a| a.help("Output format: text only (a completion script has no JSON form)")))]
    Completions(CompletionsArgs),
    /// Print the manual page edgenet(1) in roff (`edgenet man | man -l -`).
    #[command(mut_arg("output", |a| a.help("Output format: text only (a manual page has no JSON form)")))]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// `-o` as every command takes it, here as before the command: text only (a manual page
    /// has no JSON form), so `man -o json` is refused as `-o json man` is, not as an unknown
    /// option.
    #[command(flatten)]
    pub output: OutputOpt,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for (`edgenet completions bash > /etc/bash_completion.d/edgenet`).
    #[arg(value_enum, ignore_case = true)]
    pub shell: clap_complete::Shell,
    /// `-o` as every command takes it, here as before the command: text only (a completion
    /// script has no JSON form), so `-o json` is refused saying so, not as an unknown option.
    #[command(flatten)]
    pub output: OutputOpt,
}

#[derive(Debug, Args)]
pub struct CheckCmd {
    #[command(flatten)]
    pub args: CheckArgs,
    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub state: StateOpt,
    #[command(flatten)]
    pub host: HostOpts,
}

#[derive(Debug, Args)]
pub struct PlanCmd {
    #[command(flatten)]
    pub args: CheckArgs,
    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub host: HostOpts,
}

#[derive(Debug, Args, Clone)]
pub struct RemoveArgs {
    /// Remove even while a DHCP client runs on the bridge of the external switch.
    #[arg(long)]
    pub force: bool,

    /// Remove what carries the mark of deployment ID in this network namespace (its links,
    /// nftables tables, DOCKER-USER rules and node namespaces; forwarding back when nothing
    /// else needs it) when its state directory is gone: the id `status` names in its leftover
    /// notices. Refused while a state directory edgenet can see holds that id.
    #[arg(long, value_name = "ID")]
    pub orphan: Option<String>,

    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub state: StateOpt,
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub state: StateOpt,
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// Which entry of Machines[] this host is (needed when the config lists several).
    #[arg(long, value_name = "N")]
    pub machine: Option<usize>,

    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub state: StateOpt,
    #[command(flatten)]
    pub host: HostOpts,
}

#[derive(Debug, Args, Clone)]
pub struct InstallUnitArgs {
    /// Which entry of Machines[] this host is (needed when the config lists several).
    #[arg(long, value_name = "N")]
    pub machine: Option<usize>,

    /// Where the unit file goes.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,

    /// The edgenet the unit runs (default: this one).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,

    /// Also run `systemctl daemon-reload` and `systemctl enable` (or `disable` with
    /// --uninstall).
    #[arg(long)]
    pub enable: bool,

    /// Print the unit instead of writing it.
    #[arg(long)]
    pub print: bool,

    /// Delete the unit file instead.
    #[arg(long, conflicts_with = "print")]
    pub uninstall: bool,

    /// Overwrite (or with --uninstall delete) an edgenet.service that edgenet did not write.
    #[arg(long)]
    pub force: bool,

    /// The generic unit of the Debian package (used by scripts/build-deb.sh).
    #[arg(long, hide = true, requires = "print")]
    pub packaged: bool,

    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub state: StateOpt,
    #[command(flatten)]
    pub host: HostOpts,
}

#[derive(Debug, Args, Clone)]
pub struct LockArgs {
    /// How long to wait for another edgenet run on the same state directory.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct ScaleConfigArgs {
    /// The new machine's Linux node address.
    #[arg(long, value_name = "IP")]
    pub linux_node_ip: Option<std::net::Ipv4Addr>,

    /// The new machine's Windows node address.
    #[arg(long, value_name = "IP")]
    pub windows_node_ip: Option<std::net::Ipv4Addr>,

    /// The new Linux node joins the control plane.
    #[arg(long)]
    pub control_plane: bool,

    /// The new machine's adapter (default: this machine's).
    #[arg(long, value_name = "NAME")]
    pub adapter_name: Option<String>,

    /// The new machine's name (its `MachineName`; default: none, so that it is named by its
    /// host name when it deploys). `--machine-name` and EDGENET_MACHINE_NAME name this
    /// machine, not the new one.
    #[arg(long, value_name = "NAME")]
    pub new_machine_name: Option<String>,

    /// Write to FILE instead of standard output (an existing file is kept unless --force).
    #[arg(short = 'f', long = "file", alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub state: StateOpt,
    #[command(flatten)]
    pub host: HostOpts,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// The node's current IP address and MAC, read from its live interface.
    Addr(NodeArgs),
    /// Run a command inside the node with its DNS, hosts file and proxy environment.
    Exec(NodeExecArgs),
}

#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// Which node of this machine (like Get-AksEdgeNodeAddr -NodeType).
    #[arg(long, value_enum, ignore_case = true, default_value_t = NodeKindArg::Linux)]
    pub node_type: NodeKindArg,
    /// A `vm` node: wait up to SECONDS (default 120) for its guest agent to answer.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "120")]
    pub wait: Option<u64>,
    #[command(flatten)]
    pub output: OutputOpt,
    #[command(flatten)]
    pub state: StateOpt,
}

#[derive(Debug, Args, Clone)]
pub struct NodeExecArgs {
    /// Which node of this machine (like Invoke-AksEdgeNodeCommand -NodeType).
    #[arg(long, value_enum, ignore_case = true, default_value_t = NodeKindArg::Linux)]
    pub node_type: NodeKindArg,
    #[command(flatten)]
    pub state: StateOpt,

    #[command(flatten)]
    pub output: OutputOpt,

    /// Exit 0 even when the command fails (its status is still printed on stderr).
    #[arg(long)]
    pub ignore_error: bool,

    /// A `vm` node: wait up to SECONDS (default 120) for its guest agent to answer.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "120")]
    pub wait: Option<u64>,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeKindArg {
    Linux,
    Windows,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the sandbox and deploy CONFIG (default: the built-in config) in its machine.
    Up(LabUpArgs),
    /// The reachability matrix: node→host, node→node, node→internet, LAN→node.
    Status(LabReportArgs),
    /// Remove the sandbox and everything in it.
    Down(LabDownArgs),
}

#[derive(Debug, Args, Clone)]
pub struct LabDownArgs {
    #[command(flatten)]
    pub lab: LabArgs,
    #[command(flatten)]
    pub output: OutputOpt,
    /// Run `edgenet remove` on every machine first (one bridge deletion after another in the
    /// kernel), instead of deleting the deployments of netns nodes with their machines'
    /// namespaces (machines with vm nodes always run `edgenet remove`).
    #[arg(long)]
    pub remove_each: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LabReportArgs {
    #[command(flatten)]
    pub lab: LabArgs,
    #[command(flatten)]
    pub output: OutputOpt,
}

/// Where a lab keeps its state when `--lab-dir` is not given.
pub const DEFAULT_LAB_DIR: &str = "/var/lib/edgenet-lab";

#[derive(Debug, Args, Clone)]
pub struct LabArgs {
    /// Name of the lab (several can run side by side).
    #[arg(long, default_value = "lab", env = "EDGENET_LAB")]
    pub name: String,

    /// Where the lab keeps its state, files and logs.
    #[arg(
        long,
        value_name = "DIR",
        env = "EDGENET_LAB_DIR",
        default_value = DEFAULT_LAB_DIR
    )]
    pub lab_dir: PathBuf,
}

impl LabArgs {
    /// The `lab down` that reaches this lab, for hints (`--lab-dir` too when it is not the
    /// default: followed literally, a hint without it looks in the wrong place).
    pub fn down_command(&self) -> String {
        self.command("down")
    }

    /// `edgenet lab SUB` for this lab (see [`Self::down_command`]).
    pub fn command(&self, sub: &str) -> String {
        let mut command = format!("edgenet lab {sub} --name {}", self.name);
        if self.lab_dir != std::path::Path::new(DEFAULT_LAB_DIR) {
            command.push_str(&format!(" --lab-dir {}", self.lab_dir.display()));
        }
        command
    }
}

#[derive(Debug, Args, Clone)]
pub struct LabUpArgs {
    /// Deployment config to deploy in the lab (same as -c; default: EDGENET_CONFIG, else the
    /// built-in single-machine config). A ScalableCluster config gets one lab machine per
    /// Machines[] entry; its LAN must be the lab's (198.18.0.1 gateway) and its adapters `eth0`.
    #[arg(value_name = "CONFIG", conflicts_with_all = ["scalable", "config"])]
    pub lab_config: Option<PathBuf>,

    /// Instead of CONFIG: a generated ScalableCluster of N machines on the lab's LAN (an
    /// EDGENET_CONFIG in the environment is then not used).
    #[arg(long, value_name = "N", conflicts_with = "config", value_parser = clap::value_parser!(u8).range(1..))]
    pub scalable: Option<u8>,

    /// Do not measure the reachability matrix after building (`lab status` does it later).
    #[arg(long)]
    pub no_status: bool,

    #[command(flatten)]
    pub lab: LabArgs,
    #[command(flatten)]
    pub config: ConfigOpt,
    #[command(flatten)]
    pub output: OutputOpt,
}

#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    /// Which entry of Machines[] this host is (needed when the config lists several).
    #[arg(long, value_name = "N")]
    pub machine: Option<usize>,

    /// Do not read the host: host-dependent rules are reported as skipped.
    #[arg(long)]
    pub offline_check: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a new deployment config.
    New(ConfigNewArgs),
}

#[derive(Debug, Args)]
pub struct ConfigNewArgs {
    /// One machine on an internal NAT switch, or a cluster on the LAN (also the cmdlet's
    /// SingleMachineCluster / ScalableCluster).
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeploymentKind::Single)]
    pub deployment_type: DeploymentKind,

    /// The nodes of the machine (also the cmdlet's Linux / Windows / LinuxAndWindows).
    #[arg(long, value_enum, ignore_case = true, default_value_t = NodeType::Linux)]
    pub node_type: NodeType,

    /// The Kubernetes distribution (K3s with flannel, K8s with calico).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Distro::K3s)]
    pub distro: Distro,

    /// Write to FILE instead of standard output (an existing file is kept unless --force).
    #[arg(short = 'f', long = "file", alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub output: OutputOpt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeploymentKind {
    #[value(alias = "singlemachinecluster", alias = "single-machine-cluster")]
    Single,
    #[value(alias = "scalablecluster", alias = "scalable-cluster")]
    Scalable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeType {
    Linux,
    Windows,
    #[value(alias = "linuxandwindows")]
    LinuxAndWindows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Distro {
    K3s,
    K8s,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every option and positional of every command says what it is for.
    #[test]
    fn every_option_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "edgenet", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
    }
}
