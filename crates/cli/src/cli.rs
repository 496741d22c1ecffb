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
Without -c FILE every command uses the built-in single-machine default (a Linux node, K3s).",
    after_help = "Exit status: 0 success; 1 the config has errors (or an operation found problems); \
2 the config cannot be read or parsed, or the command line is wrong; 3 the host could not be changed as asked."
)]
pub struct Cli {
    /// Deployment config (AKS Edge Essentials JSON). Default: the built-in single-machine config.
    #[arg(
        short,
        long,
        global = true,
        env = "EDGENET_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Output format of reports (`json` is stable, for scripts). Pictures: `svg` and `dot` for
    /// plan and status, `html` (and `svg`, `dot`) for lab status.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Directory of the deployment state (one deployment per directory).
    #[arg(
        long,
        global = true,
        env = "EDGENET_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/edgenet"
    )]
    pub state_dir: PathBuf,

    /// The host's resolver file, read for the nodes' DNS when Network.DnsServers is not set.
    #[arg(
        long,
        global = true,
        env = "EDGENET_RESOLV_CONF",
        value_name = "FILE",
        default_value = "/etc/resolv.conf"
    )]
    pub resolv_conf: PathBuf,

    /// systemd-resolved's list of upstream servers, followed when the resolver file names the
    /// local stub (127.0.0.53).
    #[arg(
        long,
        global = true,
        env = "EDGENET_UPSTREAM_RESOLV_CONF",
        value_name = "FILE",
        default_value = "/run/systemd/resolve/resolv.conf"
    )]
    pub upstream_resolv_conf: PathBuf,

    /// This machine's name (nodes are <name>-ledge, <name>-wedge); overrides the config.
    #[arg(long, global = true, env = "EDGENET_MACHINE_NAME", value_name = "NAME")]
    pub machine_name: Option<String>,

    /// More log output on stderr (-v info, -vv debug); EDGENET_LOG takes tracing filters.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
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
    Check(CheckArgs),
    /// Print the resolved network plan of this machine.
    Plan(CheckArgs),
    /// Write a starting config (like New-AksEdgeConfig).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Build (or update in place) this machine's switch, nodes, NAT, DNS and proxy settings.
    Deploy(DeployArgs),
    /// Delete everything the deployment created and restore what it changed.
    Remove(LockArgs),
    /// Show the deployment, the live kernel state and any drift between them.
    Status,
    /// Commands that act on one node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Write the config of a new machine joining this scalable cluster (like
    /// New-AksEdgeScaleConfig), checked against the whole cluster.
    ScaleConfig(ScaleConfigArgs),
    /// A sandbox on this host made only of network namespaces: an "internet", a LAN and a
    /// machine running the normal deploy. Never changes the host's own network.
    #[command(subcommand)]
    Lab(LabCommand),
}

#[derive(Debug, Args, Clone)]
pub struct DeployArgs {
    /// Which entry of Machines[] this host is (needed when the config lists several).
    #[arg(long, value_name = "N")]
    pub machine: Option<usize>,

    #[command(flatten)]
    pub lock: LockArgs,
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

    /// Write to FILE instead of standard output (an existing file is kept unless --force).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
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
    #[arg(long, value_enum, default_value_t = NodeKindArg::Linux)]
    pub node_type: NodeKindArg,
}

#[derive(Debug, Args, Clone)]
pub struct NodeExecArgs {
    #[arg(long, value_enum, default_value_t = NodeKindArg::Linux)]
    pub node_type: NodeKindArg,

    /// Exit 0 even when the command fails (its status is still printed on stderr).
    #[arg(long)]
    pub ignore_error: bool,

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
    Status(LabArgs),
    /// Remove the sandbox and everything in it.
    Down(LabArgs),
}

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
        default_value = "/var/lib/edgenet-lab"
    )]
    pub lab_dir: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct LabUpArgs {
    /// Deployment config to deploy in the lab (default: the built-in single-machine config). A
    /// ScalableCluster config gets one lab machine per Machines[] entry; its LAN must be the
    /// lab's (198.18.0.1 gateway) and its adapters `eth0`.
    #[arg(value_name = "CONFIG", conflicts_with = "scalable")]
    pub lab_config: Option<PathBuf>,

    /// Instead of CONFIG: a generated ScalableCluster of N machines on the lab's LAN.
    #[arg(long, value_name = "N")]
    pub scalable: Option<u8>,

    /// Do not measure the reachability matrix after building (`lab status` does it later).
    #[arg(long)]
    pub no_status: bool,

    #[command(flatten)]
    pub lab: LabArgs,
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
    #[arg(long, value_enum, default_value_t = DeploymentKind::Single)]
    pub deployment_type: DeploymentKind,

    #[arg(long, value_enum, default_value_t = NodeType::Linux)]
    pub node_type: NodeType,

    #[arg(long, value_enum, default_value_t = Distro::K3s)]
    pub distro: Distro,

    /// Write to FILE instead of standard output (an existing file is kept unless --force).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeploymentKind {
    Single,
    Scalable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeType {
    Linux,
    Windows,
    LinuxAndWindows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Distro {
    K3s,
    K8s,
}
