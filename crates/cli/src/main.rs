//! `edgenet`: the command-line front end. Parsing, reporting and exit codes live here; the work
//! is done by edgenet-core (pure), edgenet-host (kernel) and edgenet-deploy (drivers).

mod cli;
mod commands;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand, LabCommand, NodeCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = commands::picture::check_format(&cli) {
        e.report(cli.output);
        return e.exit_code().into();
    }
    let result = match &cli.command {
        Command::Check(args) => commands::check::run(&cli, args),
        Command::Plan(args) => commands::plan::run(&cli, args),
        Command::Config(ConfigCommand::New(args)) => commands::config_new::run(&cli, args),
        Command::Deploy(args) => commands::deploy::run_deploy(&cli, args),
        Command::Remove(args) => commands::deploy::run_remove(&cli, args),
        Command::Status => commands::status::run_status(&cli),
        Command::Node(NodeCommand::Addr(args)) => commands::status::run_addr(&cli, args),
        Command::Node(NodeCommand::Exec(args)) => commands::status::run_exec(&cli, args),
        Command::ScaleConfig(args) => commands::scale_config::run(&cli, args),
        Command::Lab(LabCommand::Up(args)) => commands::lab::up(&cli, args),
        Command::Lab(LabCommand::Status(args)) => commands::lab::status(&cli, args),
        Command::Lab(LabCommand::Down(args)) => commands::lab::down(&cli, args),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            e.report(cli.output);
            e.exit_code().into()
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGENET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!no_color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
