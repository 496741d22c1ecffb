//! `edgenet doctor`: checks from inside each deployed node, and on the host, that the network
//! works as planned. Exit 1 on any FAIL.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use edgenet_core::config::NodeRuntime;
use edgenet_core::plan::MacAssignment;
use edgenet_deploy::names;
use edgenet_deploy::node::files;
use edgenet_deploy::state::StateDir;
use edgenet_doctor::{doctor, DoctorOptions, NodeHandle, Report};

use crate::cli::{Cli, Output};
use crate::exit::{CliError, Exit};

/// A DNS name: dot-separated labels of letters, digits, '-' and '_' (1–63 each, 253 in all).
fn parse_probe_name(s: &str) -> Result<String, String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a DNS name (labels of letters, digits and '-', separated by dots), e.g. www.example.com"
        ))
    }
}

/// An http(s) URL with a host and a non-zero port.
fn parse_probe_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s)
        .map_err(|e| format!("{s:?} is not a URL ({e}), e.g. http://example.com/"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{s:?}: the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if url.port() == Some(0) {
        return Err(format!("{s:?}: port 0 is not a port"));
    }
    Ok(s.to_string())
}

#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    /// A name every DNS server of the nodes must resolve (default: any answer to a query for
    /// the root counts).
    #[arg(long, value_name = "NAME", value_parser = parse_probe_name)]
    pub probe_name: Option<String>,

    /// A URL the nodes must reach directly (NAT egress), or must not reach when offline.
    /// Without it the egress check is skipped.
    #[arg(long, value_name = "URL", value_parser = parse_probe_url)]
    pub probe_url: Option<String>,

    /// Compare the files of `edgenet render --out DIR` with the plan, instead of the node's own.
    #[arg(long, value_name = "DIR")]
    pub rendered: Option<PathBuf>,

    /// Seconds to wait for each probe's answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,

    /// Seconds to wait for the guest agent of a VM node that does not answer yet (a guest
    /// still booting); without it such a node is one FAIL (`guest-agent`).
    #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub wait: u64,

    #[command(flatten)]
    pub output: crate::cli::OutputOpt,
    #[command(flatten)]
    pub state: crate::cli::StateOpt,
}

/// The doctor's report for the deployment in the state directory.
pub fn report(cli: &Cli, args: &DoctorArgs) -> Result<Report, CliError> {
    let state = StateDir::new(&cli.state_dir)
        .peek()
        .map_err(|e| CliError::new(Exit::Host, "state", e.to_string()))?
        .and_then(|s| s.applied_plan.clone().map(|p| (s, p)));
    let Some((state, plan)) = state else {
        return Err(CliError::new(
            Exit::Findings,
            "not-deployed",
            format!("nothing is deployed in {}", cli.state_dir.display()),
        )
        .hint("run `edgenet deploy` first"));
    };
    let nodes: Vec<NodeHandle> = plan
        .nodes
        .iter()
        .map(|n| {
            let dir = files::node_dir(&cli.state_dir, &n.name);
            let guest = names::node_netns(&n.name, &state.deployment_id);
            // A VM node is checked inside its guest, through its agent.
            let guest_agent = (plan.node_runtime == NodeRuntime::Vm).then(|| {
                edgenet_host::qemu::VmFiles::new(edgenet_deploy::node::vm::vm_dir(
                    &cli.state_dir,
                    &guest,
                ))
                .agent()
            });
            NodeHandle {
                plan: n.clone(),
                netns: guest,
                guest_agent,
                resolv_conf: dir.join(files::RESOLV_CONF),
                proxy_env: dir.join(files::PROXY_ENV),
                mac: match n.mac {
                    MacAssignment::Static { address } => Some(address),
                    MacAssignment::GeneratedAtDeploy => state.macs.get(&n.name).copied(),
                },
            }
        })
        .collect();
    let opts = DoctorOptions {
        probe_name: args.probe_name.clone(),
        probe_url: args.probe_url.clone(),
        rendered_root: args.rendered.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
        edgenet_table: Some(edgenet_deploy::firewall::table_name(&state.deployment_id)),
        guest_agent_wait: Duration::from_secs(args.wait),
        edgenet_table_drift: edgenet_deploy::status::table_differences(&state, &plan)
            .unwrap_or_default(),
        host_config_missing: edgenet_deploy::status::host_config_missing(&state, &plan)
            .unwrap_or_default(),
        adapter_without_carrier: edgenet_deploy::status::adapter_without_carrier(&state, &plan)
            .unwrap_or_default(),
    };
    Ok(doctor(&plan, &nodes, &opts))
}

pub fn run(cli: &Cli, args: &DoctorArgs) -> Result<Exit, CliError> {
    let report = report(cli, args)?;
    match cli.output {
        Output::Json => {
            let result = if report.failed() {
                Err(CliError::new(
                    Exit::Findings,
                    "doctor-failed",
                    format!("{} check(s) failed", report.fail),
                ))
            } else {
                Ok(())
            };
            crate::envelope::print_result(&crate::envelope::DOCTOR, result, &report)
        }
        _ => crate::output::out!("{}", report.text()),
    }
    Ok(if report.failed() {
        Exit::Findings
    } else {
        Exit::Ok
    })
}

/// `edgenet doctor` on every deployed lab machine (through `run`, which runs this edgenet
/// inside the machine), as each one's JSON report; a machine whose doctor could not run gets
/// `{"fail": 1, "error": …}`.
pub fn lab_doctor(
    lab: &edgenet_lab::Lab,
    run: impl Fn(&edgenet_lab::LabMachine, &[&std::ffi::OsStr]) -> Result<std::process::Output, CliError>
        + Sync,
) -> Vec<(String, serde_json::Value)> {
    let url = edgenet_lab::topology::http_url_by_address();
    let name = edgenet_lab::topology::TEST_NAME;
    let words = [
        "--output",
        "json",
        "doctor",
        "--probe-url",
        url.as_str(),
        "--probe-name",
        name,
        // `lab status` measured VM nodes through their agents just before: they are up.
        "--wait",
        "30",
    ];
    let args: Vec<&std::ffi::OsStr> = words.iter().map(|a| a.as_ref()).collect();
    let machines: Vec<_> = lab
        .machines()
        .into_iter()
        .filter(|m| m.state_dir.join("state.json").exists())
        .collect();
    let doctor = |m: &edgenet_lab::LabMachine| {
        let report = match run(m, &args) {
            Ok(out) => serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                serde_json::json!({"fail": 1, "error": String::from_utf8_lossy(&out.stderr).trim()})
            }),
            Err(e) => serde_json::json!({"fail": 1, "error": e.message}),
        };
        (m.name.clone(), report)
    };
    // One doctor per machine, a few at a time (each is a process that mostly waits on probes):
    // one after another, a 255-machine lab took minutes.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut reports: Vec<(usize, (String, serde_json::Value))> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..LAB_DOCTOR_WORKERS.min(machines.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(m) = machines.get(i) else { break };
                        done.push((i, doctor(m)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// Doctors run side by side by `lab status`.
const LAB_DOCTOR_WORKERS: usize = 8;

/// The lab's doctor results for people: every line that is not PASS, and a summary per machine.
pub fn lab_doctor_text(reports: &[(String, serde_json::Value)]) -> String {
    let mut out = String::new();
    for (lab_machine, r) in reports {
        // The machine's own name (its config's), not the lab's slot name.
        let machine = r["machine"].as_str().unwrap_or(lab_machine);
        if r["checks"].is_null() {
            let e = r["error"]
                .as_str()
                .or(r["error"]["message"].as_str())
                .unwrap_or("no report");
            out.push_str(&format!("doctor on {machine}: could not run: {e}\n"));
            continue;
        }
        for c in r["checks"].as_array().into_iter().flatten() {
            if matches!(c["status"].as_str(), Some("FAIL") | Some("WARN")) {
                let check = match c["address"].as_str() {
                    Some(a) => format!("{} {a}", c["check"].as_str().unwrap_or("?")),
                    None => c["check"].as_str().unwrap_or("?").to_string(),
                };
                out.push_str(&format!(
                    "{} {} {check}: {}\n",
                    c["status"].as_str().unwrap_or("?"),
                    c["scope"].as_str().unwrap_or("?"),
                    c["detail"].as_str().unwrap_or("")
                ));
                if let Some(fix) = c["fix"].as_str() {
                    out.push_str(&format!("     fix: {fix}\n"));
                }
            }
        }
        out.push_str(&format!(
            "doctor on {machine}: {} PASS, {} WARN, {} FAIL\n",
            r["pass"], r["warn"], r["fail"]
        ));
    }
    out
}

#[cfg(test)]
mod lab_text_tests {
    #[test]
    fn lab_status_names_the_machine_by_its_own_name() {
        let report = serde_json::json!({
            "machine": "s1", "pass": 3, "warn": 0, "fail": 1,
            "checks": [{"scope": "s1-ledge", "check": "dns", "address": "192.0.2.53",
                        "status": "FAIL", "detail": "no answer"}]
        });
        let text = super::lab_doctor_text(&[("m1".to_string(), report)]);
        assert!(text.contains("doctor on s1:"), "{text}");
        assert!(!text.contains("doctor on m1"), "{text}");
        assert!(text.contains("dns 192.0.2.53: no answer"), "{text}");
    }
}
