//! `edgenet check`: every finding at once; exit 0 clean, 1 with errors, 2 unreadable.

use edgenet_core::validate::{check, Severity};

use crate::cli::{CheckArgs, Cli, Output};
use crate::exit::{CliError, Exit};
use crate::output::{finding_text, print_json, summary, Style};

pub fn run(cli: &Cli, args: &CheckArgs) -> Result<Exit, CliError> {
    let loaded = match super::load_config(cli) {
        Ok(loaded) => loaded,
        // Scripts always get an array of findings from `check --output json`.
        Err(e) if cli.output == Output::Json => {
            print_json(&[serde_json::json!({
                "code": e.code, "rule": 1, "severity": "error", "path": "", "message": e.message, "hint": e.hint
            })]);
            return Ok(Exit::Unreadable);
        }
        Err(e) => return Err(e),
    };
    let facts = super::host_facts(cli, args);
    let mut ctx = super::context(cli, &facts, args);
    let own_macs = edgenet_deploy::state::StateDir::new(&cli.state_dir)
        .peek()
        .ok()
        .flatten()
        .map(|s| s.macs.into_values().collect())
        .unwrap_or_default();
    ctx.probe = super::probe_view(&loaded, &ctx, own_macs);
    let mut findings = check(&loaded, &ctx);
    findings.extend(super::machine_out_of_range(
        args,
        loaded.config.machines.len(),
    ));
    let failed = findings.iter().any(|f| f.severity == Severity::Error);

    match cli.output {
        Output::Json => print_json(&findings),
        _ => {
            let style = Style::for_stdout();
            for f in &findings {
                println!("{}", finding_text(f, style));
            }
            let verdict = if failed { "fails" } else { "passes" };
            println!(
                "{} {verdict}: {}",
                super::config_source(cli),
                summary(&findings)
            );
        }
    }
    Ok(if failed { Exit::Findings } else { Exit::Ok })
}
