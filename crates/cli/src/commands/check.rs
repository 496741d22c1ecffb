//! `edgenet check`: every finding at once; exit 0 clean, 1 with errors, 2 unreadable.

use edgenet_core::validate::{check, Severity};

use crate::cli::{CheckArgs, Cli, Output};
use crate::exit::{CliError, Exit};
use crate::output::{finding_text, summary, Style};

/// Deploy refuses an adapter that a network manager or DHCP client configures (see
/// `edgenet_deploy::switch::adapter_owner`); check reports the same refusal with the same fix.
fn adapter_owner_finding(
    config: &edgenet_core::config::Config,
    ctx: &edgenet_core::validate::Context<'_>,
) -> Option<edgenet_core::validate::Finding> {
    if !config.is_scalable() {
        return None;
    }
    let i = ctx.this_machine(config)?;
    let adapter = ctx.adapter_now(config.machines[i].adapter_name.as_deref()?);
    let mut nl = edgenet_host::netlink::Netlink::open().ok()?;
    let paths = edgenet_deploy::switch::adapter_owner::paths_from_env();
    match edgenet_deploy::switch::adapter_owner::ensure_sole_owner(
        &mut nl,
        adapter,
        config.switch_name(),
        &paths,
    ) {
        Err(edgenet_deploy::DeployError::AdapterManaged { message, fix }) => Some(
            edgenet_core::validate::Finding::error(
                edgenet_core::validate::Code::AdapterManaged,
                format!("Machines[{i}].NetworkConnection.AdapterName"),
                message,
            )
            .hint(fix),
        ),
        _ => None,
    }
}

/// Objects of another deployment in this network namespace that nothing records any more
/// (the deployment's state directory was deleted): named, with their cleanup, never touched.
fn leftover_findings(cli: &Cli) -> Vec<edgenet_core::validate::Finding> {
    let Ok(mut nl) = edgenet_host::netlink::Netlink::open() else {
        return Vec::new();
    };
    let own = edgenet_deploy::state::StateDir::new(&cli.state_dir)
        .peek()
        .ok()
        .flatten()
        .map(|s| s.deployment_id.to_string());
    edgenet_deploy::leftovers::leftovers(&mut nl, own.as_deref())
        .iter()
        .map(other_deployment_finding)
        .collect()
}

/// Another deployment's objects, as `check` and `deploy` report them: a whole one beside this
/// one is a notice (`another-deployment`), leftovers a warning (`leftover-objects`).
pub fn other_deployment_finding(
    found: &edgenet_deploy::leftovers::Found,
) -> edgenet_core::validate::Finding {
    use edgenet_core::validate::{Code, Finding};
    if found.beside {
        Finding::notice(Code::AnotherDeployment, "", found.text.clone())
    } else {
        Finding::warning(Code::LeftoverObjects, "", found.text.clone())
    }
}

pub fn run(cli: &Cli, args: &CheckArgs) -> Result<Exit, CliError> {
    let loaded = match super::load_config(cli) {
        Ok(loaded) => loaded,
        // The report still says which config it could not read.
        Err(e) if cli.output == Output::Json => {
            crate::envelope::print_error(
                &crate::envelope::CHECK,
                &e,
                &serde_json::json!({ "source": super::config_source(cli) }),
            );
            return Ok(e.exit_code());
        }
        Err(e) => return Err(e),
    };
    super::machine_in_range(args, loaded.config.machines.len())?;
    let facts = super::host_facts(cli, args);
    let mut ctx = super::context(cli, &facts, args);
    let state = edgenet_deploy::state::StateDir::new(&cli.state_dir)
        .peek()
        .ok()
        .flatten();
    let own_macs = state
        .map(|s| s.macs.into_values().collect())
        .unwrap_or_default();
    ctx.probe = super::probe_view(&loaded, &ctx, own_macs);
    // The host's CPUs, memory and image files matter to `vm` nodes only (as in deploy).
    if !args.offline_check && loaded.config.any_vm() {
        ctx.vm_host = Some(super::vm_host(cli, &loaded.config));
    }
    let mut findings = check(&loaded, &ctx);
    if !args.offline_check {
        findings.extend(adapter_owner_finding(&loaded.config, &ctx));
        findings.extend(leftover_findings(cli));
        // The plan says which DNS servers the nodes get (and whether the check is off).
        if !findings.iter().any(|f| f.severity == Severity::Error) {
            if let Ok(plan) = edgenet_core::plan::build(&loaded.config, &ctx) {
                findings.extend(super::dns_findings(&plan));
            }
        }
    }
    let failed = findings.iter().any(|f| f.severity == Severity::Error);
    let exit = if failed { Exit::Findings } else { Exit::Ok };
    match cli.output {
        Output::Json => {
            let count = |s| findings.iter().filter(|f| f.severity == s).count();
            let result = match exit {
                Exit::Ok => Ok(()),
                _ => Err(CliError::new(
                    exit,
                    "config-has-errors",
                    format!(
                        "{} fails: {}",
                        super::config_source(cli),
                        summary(&findings)
                    ),
                )
                .hint("fix the findings of severity error")),
            };
            crate::envelope::print_result(
                &crate::envelope::CHECK,
                result,
                &serde_json::json!({
                    "source": super::config_source(cli),
                    "findings": findings,
                    "summary": {
                        "errors": count(Severity::Error),
                        "warnings": count(Severity::Warning),
                        "notices": count(Severity::Notice),
                    },
                }),
            );
        }
        _ => {
            let style = Style::for_stdout();
            for f in &findings {
                crate::output::outln!("{}", finding_text(f, style));
            }
            let verdict = if failed { "fails" } else { "passes" };
            crate::output::outln!(
                "{} {verdict}: {}",
                super::config_source(cli),
                summary(&findings)
            );
        }
    }
    Ok(exit)
}
