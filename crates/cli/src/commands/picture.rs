//! `--output svg|dot|html`: the pictures of `plan`, `status` and `lab status` (crates/viz).

use edgenet_viz::{graphviz, Engine, Topology};

use crate::cli::{Cli, Command, LabCommand, Output};
use crate::exit::{CliError, Exit};

/// Refuses a picture format for a command that has no picture, before anything runs.
pub fn check_format(cli: &Cli) -> Result<(), CliError> {
    let lab_matrix = matches!(
        cli.command,
        Command::Lab(LabCommand::Status(_)) | Command::Lab(LabCommand::Up(_))
    );
    let ok = match cli.output {
        Output::Text | Output::Json => true,
        Output::Svg | Output::Dot => {
            lab_matrix || matches!(cli.command, Command::Plan(_) | Command::Status(_))
        }
        Output::Html => lab_matrix,
    };
    if ok {
        return Ok(());
    }
    let name = match cli.output {
        Output::Svg => "svg",
        Output::Dot => "dot",
        _ => "html",
    };
    Err(CliError::new(
        Exit::Unreadable,
        "invalid-arguments",
        format!("--output {name} is not available for this command"),
    )
    .hint("pictures: `plan` and `status` take --output svg|dot, `lab status` takes --output html|svg|dot"))
}

/// Who lays pictures out: `EDGENET_LAYOUT` (auto, builtin, graphviz), default auto.
fn engine() -> Result<Engine, CliError> {
    let value = std::env::var("EDGENET_LAYOUT").unwrap_or_default();
    Engine::parse(&value).map_err(|e| {
        CliError::new(Exit::Unreadable, "invalid-arguments", e)
            .hint("unset EDGENET_LAYOUT to use Graphviz when it is installed")
    })
}

/// The topology as SVG, by Graphviz when it runs, by the built-in layout otherwise.
pub fn svg(topo: &Topology) -> Result<String, CliError> {
    // Graphviz asked for but not runnable is the environment's problem, not the host's:
    // nothing was changed (exit 2, as for a bad command line).
    let rendered = edgenet_viz::render_svg(topo, engine()?, &graphviz::run_dot)
        .map_err(|e| CliError::new(Exit::Unreadable, "layout", e))?;
    if let Some(why) = &rendered.fallback {
        tracing::info!("{why}");
    }
    Ok(rendered.svg)
}

/// Prints the topology as SVG or DOT, as `--output` asks.
pub fn print(cli: &Cli, topo: &Topology) -> Result<(), CliError> {
    match cli.output {
        Output::Dot => crate::output::out!("{}", edgenet_viz::dot::to_dot(topo)),
        _ => crate::output::out!("{}", svg(topo)?),
    }
    Ok(())
}
