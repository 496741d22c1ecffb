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

    /// Output format of reports (`json` is stable, for scripts).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

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
