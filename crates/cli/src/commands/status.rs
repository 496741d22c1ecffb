//! `edgenet status`, `edgenet node addr`, `edgenet node exec`.

use std::os::unix::process::ExitStatusExt;

use edgenet_core::plan::{NodeKind, NodePlan};
use edgenet_deploy::names;
use edgenet_deploy::node::files;
use edgenet_deploy::state::{DeploymentState, StateDir};
use edgenet_host::exec::{BindMount, ExecOptions};

use crate::cli::{Cli, NodeArgs, NodeExecArgs, NodeKindArg, Output};
use crate::commands::deploy::host_error;
use crate::exit::{CliError, Exit};
use crate::output::{table, Style};

pub fn run_status(cli: &Cli) -> Result<Exit, CliError> {
    let dir = StateDir::new(&cli.state_dir);
    super::refuse_other_netns(dir.peek().ok().flatten().as_ref(), "status")?;
    let mut report = edgenet_deploy::status(&StateDir::new(&cli.state_dir)).map_err(host_error)?;
    report.notices.extend(lan_notice(&report));
    let drift = !report.drift.is_empty();
    match cli.output {
        Output::Json => crate::envelope::print_result(
            &crate::envelope::STATUS,
            if drift {
                Err(CliError::new(
                    Exit::Findings,
                    "drift",
                    format!(
                        "the host differs from the deployment: {}",
                        report.drift.join("; ")
                    ),
                )
                .hint("`edgenet deploy` puts it back"))
            } else {
                Ok(())
            },
            &report,
        ),
        Output::Svg | Output::Dot | Output::Html => {
            super::picture::print(cli, &edgenet_viz::from_status(&report))?
        }
        Output::Text => {
            let style = Style::for_stdout();
            let Some(plan) = &report.plan else {
                match &report.deployment_id {
                    // Records rebuilt without a plan, or a run stopped before it had one.
                    Some(id) if !report.drift.is_empty() || !report.notices.is_empty() => {
                        crate::output::outln!(
                            "{}",
                            style.bold(&format!(
                                "Deployment {id} ({:?}), no plan recorded — state in {}",
                                report.phase.unwrap_or(edgenet_deploy::state::Phase::New),
                                report.state_dir.display()
                            ))
                        );
                    }
                    _ => crate::output::outln!(
                        "Nothing deployed (state directory {}).",
                        cli.state_dir.display()
                    ),
                }
                for n in &report.notices {
                    crate::output::outln!("Notice: {n}");
                }
                if drift {
                    crate::output::outln!("Drift:");
                    for d in &report.drift {
                        crate::output::outln!("  {d}");
                    }
                }
                return Ok(if drift { Exit::Findings } else { Exit::Ok });
            };
            crate::output::outln!(
                "{}",
                style.bold(&format!(
                    "Deployment {} ({:?}) of machine {} — state in {}",
                    report.deployment_id.as_deref().unwrap_or("?"),
                    report.phase.unwrap_or(edgenet_deploy::state::Phase::New),
                    plan.machine.name,
                    report.state_dir.display()
                ))
            );
            if let Some(sw) = &report.switch {
                let outbound = match plan.switch.outbound {
                    edgenet_core::plan::Outbound::Nat => "NAT",
                    edgenet_core::plan::Outbound::Offline => "offline",
                    edgenet_core::plan::Outbound::Direct => "direct",
                };
                let carrier = match (&sw.adapter, sw.adapter_carrier) {
                    (Some(a), Some(false)) => {
                        format!(", adapter {a}: NO CARRIER (link down on the wire)")
                    }
                    (Some(a), Some(true)) => format!(", adapter {a}: carrier"),
                    _ => String::new(),
                };
                crate::output::outln!(
                    "Switch {}: {}, {}, subnet {}, MTU {}, address {}{carrier}",
                    sw.name,
                    if sw.present {
                        if sw.up {
                            "up"
                        } else {
                            "down"
                        }
                    } else {
                        "missing"
                    },
                    outbound,
                    plan.switch.subnet,
                    sw.mtu.map_or("-".into(), |m| m.to_string()),
                    if sw.addresses.is_empty() {
                        "-".into()
                    } else {
                        sw.addresses.join(", ")
                    }
                );
            }
            let presence = |present: bool, foreign: bool| match (present, foreign) {
                (false, _) => "absent",
                (true, true) => "present but not this deployment's",
                (true, false) => "present",
            };
            let ip_table = if report.firewall_wanted || report.firewall_present {
                format!(
                    "nftables table {} {}",
                    report.firewall_table.as_deref().unwrap_or("-"),
                    presence(report.firewall_present, report.firewall_foreign)
                )
            } else {
                "no ip table (an external switch routes nothing)".to_string()
            };
            crate::output::outln!(
                "Firewall: {ip_table}; nftables table {} {}; IPv4 forwarding {}",
                report.bridge_table.as_deref().unwrap_or("-"),
                presence(report.bridge_table_present, report.bridge_table_foreign),
                report.ip_forward.as_deref().unwrap_or("?")
            );
            crate::output::outln!(
                "Control plane {}; service IPs {}",
                plan.control_plane_endpoint,
                plan.service_range.map_or("none".into(), |r| format!(
                    "{} – {} ({})",
                    r.start, r.end, r.size
                ))
            );
            let rows: Vec<Vec<String>> = report
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        // A vm node has no namespace on the host.
                        if n.vm.is_some() {
                            "-".into()
                        } else {
                            n.netns.clone()
                        },
                        match &n.vm {
                            // QMP's run state, then the guest's (its agent, its eth0).
                            Some(vm) if !n.present => vm.run_state.clone(),
                            Some(vm) => format!(
                                "running (QEMU {}{}), {}",
                                vm.pid.map_or("?".into(), |p| p.to_string()),
                                vm.accel
                                    .map_or(String::new(), |a| format!(", {}", a.label())),
                                if !vm.agent {
                                    format!("agent {}", vm.agent_state)
                                } else if n.up {
                                    "up".into()
                                } else {
                                    "down".into()
                                }
                            ),
                            None if !n.present => "missing".into(),
                            None if n.up => "up".into(),
                            None => "down".into(),
                        },
                        n.addresses.join(", "),
                        n.mac.clone().unwrap_or_default(),
                        n.mtu.map_or(String::new(), |m| m.to_string()),
                        n.gateway.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            crate::output::outln!(
                "{}",
                table(
                    &["NODE", "NETNS", "STATE", "ADDRESS", "MAC", "MTU", "GATEWAY"],
                    &rows,
                    style
                )
            );
            for n in &report.notices {
                crate::output::outln!("Notice: {n}");
            }
            if drift {
                crate::output::outln!("Drift:");
                for d in &report.drift {
                    crate::output::outln!("  {d}");
                }
            } else {
                crate::output::outln!("No drift: the kernel matches the plan.");
            }
        }
    }
    Ok(if drift { Exit::Findings } else { Exit::Ok })
}

/// An external switch whose adapter (or the switch, its addresses moved there) holds addresses
/// none of which is on the deployment's LAN: a site renumbered by DHCP, or a config copied from
/// another site. Not drift: deploy cannot repair it, the config must change.
fn lan_notice(report: &edgenet_deploy::StatusReport) -> Option<String> {
    let plan = report.plan.as_ref()?;
    if plan.switch.kind != edgenet_core::plan::SwitchKind::External {
        return None;
    }
    let adapter = plan.switch.adapter.as_deref()?;
    let switch = plan.switch.name.as_str();
    let mut nl = edgenet_host::netlink::Netlink::open().ok()?;
    let link = nl.link(adapter).ok()??;
    let mut held = Vec::new();
    let mut on = vec![adapter];
    if link.master.as_deref() == Some(switch) {
        on.push(switch);
    }
    for name in on {
        held.extend(nl.addresses_of(name).ok()?.into_iter().map(|a| a.address));
    }
    let what = edgenet_core::validate::lan_mismatch(adapter, &held, plan.switch.subnet)?;
    Some(format!(
        "{what}, but the deployment's LAN is {} (gateway {}): the nodes are on a LAN this host is no longer on (a site renumbered by DHCP?); put the new LAN's addresses in the config and run `edgenet deploy -c FILE`",
        plan.switch.subnet, plan.switch.gateway
    ))
}

/// The deployed plan's node of `kind`, with the deployment state.
fn deployed_node(cli: &Cli, kind: NodeKindArg) -> Result<(DeploymentState, NodePlan), CliError> {
    let state = StateDir::new(&cli.state_dir)
        .peek()
        .map_err(|e| host_error(e.into()))?
        .ok_or_else(|| {
            CliError::new(
                Exit::Findings,
                "not-deployed",
                format!(
                    "nothing is deployed (state directory {})",
                    cli.state_dir.display()
                ),
            )
            .hint("run `edgenet deploy` first")
        })?;
    let kind = match kind {
        NodeKindArg::Linux => NodeKind::Linux,
        NodeKindArg::Windows => NodeKind::Windows,
    };
    let plan = state
        .applied_plan
        .clone()
        .or_else(|| state.pending_plan.clone());
    let node = plan
        .and_then(|p| p.nodes.into_iter().find(|n| n.kind == kind))
        .ok_or_else(|| {
            CliError::new(
                Exit::Findings,
                "no-such-node",
                format!("the deployment has no {} node", kind.as_str()),
            )
        })?;
    Ok((state, node))
}

/// A `vm` node's guest agent, waited for as `--wait` says.
fn vm_agent(
    cli: &Cli,
    node: &NodePlan,
    guest: &str,
    wait: Option<u64>,
) -> Result<edgenet_host::guest_agent::GuestAgent, CliError> {
    edgenet_deploy::node::vm::agent(
        &cli.state_dir,
        guest,
        std::time::Duration::from_secs(wait.unwrap_or(0)),
    )
    .map_err(|why| {
        let code = if why.starts_with("its VM is not running") {
            "vm-not-running"
        } else if why.contains("socket is busy") {
            "agent-busy"
        } else {
            "agent-not-up"
        };
        CliError::new(
            Exit::Host,
            code,
            format!("cannot reach node {}: {why}", node.name),
        )
    })
}

fn is_vm(state: &DeploymentState) -> bool {
    state
        .applied_plan
        .as_ref()
        .or(state.pending_plan.as_ref())
        .is_some_and(|p| p.node_runtime == edgenet_core::config::NodeRuntime::Vm)
}

pub fn run_addr(cli: &Cli, args: &NodeArgs) -> Result<Exit, CliError> {
    let (state, node) = deployed_node(cli, args.node_type)?;
    let id = &state.deployment_id;
    let netns = names::node_netns(&node.name, id);
    let live = if is_vm(&state) {
        let mut ga = vm_agent(cli, &node, &netns, args.wait)?;
        let ifaces = ga
            .interfaces()
            .map_err(|e| CliError::new(Exit::Host, "host", e.to_string()))?;
        let eth0 = ifaces.into_iter().find(|i| i.name == names::NODE_IFNAME);
        Ok((
            eth0.as_ref()
                .and_then(|i| i.mac.as_deref())
                .and_then(|m| m.parse::<edgenet_core::mac::MacAddr>().ok()),
            eth0.map(|i| {
                i.ipv4
                    .iter()
                    .map(|a| a.split('/').next().unwrap_or(a).to_string())
                    .collect()
            })
            .unwrap_or_default(),
        ))
    } else {
        edgenet_host::netns::NetNs::open(&netns)
            .map_err(|e| {
                CliError::new(
                    Exit::Host,
                    "node-missing",
                    format!("node {} is not running: {e}", node.name),
                )
                .hint("run `edgenet deploy` to repair it")
            })?
            .run(|| -> Result<_, edgenet_host::HostError> {
                let mut nl = edgenet_host::netlink::Netlink::open()?;
                let link = nl.link(names::NODE_IFNAME)?;
                let addrs: Vec<String> = nl
                    .addresses_of(names::NODE_IFNAME)?
                    .into_iter()
                    .map(|a| a.address.addr().to_string())
                    .collect();
                Ok((link.and_then(|l| l.mac), addrs))
            })
            .and_then(|r| r)
    }
    .map_err(|e| CliError::new(Exit::Host, "host", e.to_string()))?;
    let (mac, addrs) = live;
    let ip = addrs.first().cloned();
    match cli.output {
        Output::Json => crate::envelope::print_result(
            &crate::envelope::NODE_ADDR,
            match ip {
                Some(_) => Ok(()),
                None => Err(CliError::new(
                    Exit::Findings,
                    "no-address",
                    format!("node {} has no IPv4 address on its interface", node.name),
                )
                .hint("`edgenet status` shows the drift; `edgenet deploy` repairs it")),
            },
            &serde_json::json!({
                "node": node.name, "netns": netns, "ip": ip, "addresses": addrs, "mac": mac.map(|m| m.to_string()),
            }),
        ),
        _ => crate::output::outln!(
            "{} {}",
            ip.as_deref().unwrap_or("-"),
            mac.map_or("-".into(), |m| m.to_string())
        ),
    }
    Ok(if ip.is_some() {
        Exit::Ok
    } else {
        Exit::Findings
    })
}

/// The signal that asked `node exec` to stop (SIGINT, SIGTERM), 0 while none did.
static STOP_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop(sig: nix::libc::c_int) {
    STOP_SIGNAL.store(sig, std::sync::atomic::Ordering::Relaxed);
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Commands that end the guest's agent connection once they have done their job.
fn powers_off(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(name, "poweroff" | "reboot" | "halt" | "shutdown")
}

/// `node exec` in a `vm` node: through the guest agent (guest-exec), with the node's proxy
/// environment; the guest's own resolv.conf and hosts come from the seed. Stdin that is not a
/// terminal is read to its end and given to the command; SIGINT/SIGTERM send the command
/// SIGTERM in the guest (`kill`, since guest-exec has no way to signal it).
fn exec_in_vm(
    cli: &Cli,
    args: &NodeExecArgs,
    node: &NodePlan,
    guest: &str,
    env_text: &str,
) -> Result<Exit, CliError> {
    use std::io::{IsTerminal, Read, Write};
    let input = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| CliError::new(Exit::Host, "exec", format!("cannot read stdin: {e}")))?;
        (!data.is_empty()).then_some(data)
    };
    let mut ga = vm_agent(cli, node, guest, args.wait)?;
    let mut words = args.command.iter().map(|a| a.to_string_lossy().to_string());
    let path = words.next().unwrap_or_default();
    let rest: Vec<String> = words.collect();
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    env.extend(
        files::parse_env(env_text)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}")),
    );
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        // SAFETY: the handler only stores into atomics.
        let _ = unsafe {
            nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::Handler(on_stop))
        };
    }
    let run = ga.exec_with(
        &path,
        &rest,
        &env,
        input.as_deref(),
        std::time::Duration::from_secs(600),
        Some(&STOP),
    );
    let out = match run {
        Ok(out) => out,
        Err(f) if STOP.load(std::sync::atomic::Ordering::Relaxed) => {
            let sig = STOP_SIGNAL.load(std::sync::atomic::Ordering::Relaxed);
            if let Some(pid) = f.pid {
                // Its children first (a shell's `sleep` would outlive it), then the command.
                let killed = ga.exec(
                    "/bin/sh",
                    &[
                        "-c".into(),
                        format!("pkill -TERM -P {pid} 2>/dev/null; kill -TERM {pid}"),
                    ],
                    &env,
                    std::time::Duration::from_secs(10),
                );
                if !killed.is_ok_and(|o| o.code == 0) {
                    eprintln!("edgenet: could not stop the command (guest PID {pid}) in node {}; it may still run", node.name);
                }
            }
            std::process::exit(128 + sig);
        }
        Err(f) => {
            let kind = f.error.io_error().kind();
            let cut = matches!(
                kind,
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
            );
            // After a reboot the guest's new agent answers but no longer knows the PID.
            let forgotten = f.error.to_string().contains("Invalid parameter 'pid'");
            if f.pid.is_some() && (cut || forgotten) && powers_off(&path) {
                // The guest took the command and went down before it could report its status.
                eprintln!("edgenet: node {}: {path} was started; the guest agent went away with the guest", node.name);
                return Ok(Exit::Ok);
            }
            let text = f.error.to_string();
            if f.pid.is_none() {
                // g_spawn's message for a command the guest cannot run: the shell's codes.
                for (what, code) in [
                    ("No such file or directory", 127),
                    ("Permission denied", 126),
                ] {
                    if text.contains(what) {
                        eprintln!(
                            "edgenet: node {}: {path}: {what} (in the guest: {text})",
                            node.name
                        );
                        std::process::exit(code);
                    }
                }
            }
            return Err(CliError::new(
                Exit::Host,
                "exec",
                format!("cannot run the command in node {}: {text}", node.name),
            ));
        }
    };
    crate::output::out_bytes(&out.stdout);
    let _ = std::io::stderr().write_all(&out.stderr);
    if out.truncated {
        eprintln!("edgenet: the output was cut at 16 MiB per stream by the guest agent (qemu-guest-agent keeps no more); redirect it to a file in the guest for more");
    }
    if out.code == 0 {
        return Ok(Exit::Ok);
    }
    if args.ignore_error {
        eprintln!(
            "edgenet: the command exited with status {} (ignored)",
            out.code
        );
        return Ok(Exit::Ok);
    }
    std::process::exit(out.code);
}

pub fn run_exec(cli: &Cli, args: &NodeExecArgs) -> Result<Exit, CliError> {
    let (state, node) = deployed_node(cli, args.node_type)?;
    let netns = names::node_netns(&node.name, &state.deployment_id);
    let dir = files::node_dir(&cli.state_dir, &node.name);
    let env_text = std::fs::read_to_string(dir.join(files::PROXY_ENV)).unwrap_or_default();
    if is_vm(&state) {
        return exec_in_vm(cli, args, &node, &netns, &env_text);
    }
    let opts = ExecOptions {
        binds: vec![
            BindMount::new(dir.join(files::RESOLV_CONF), "/etc/resolv.conf"),
            BindMount::new(dir.join(files::HOSTS), "/etc/hosts"),
        ],
        env: files::parse_env(&env_text)
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        mount_sysfs: false,
    };
    let path = opts
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"));
    let status = edgenet_host::exec::status_in(&netns, &args.command, &opts).map_err(|e| {
        // Only the spawn itself ("run"): not opening the namespace or finding a bind source.
        let program = args.command.first().filter(|_| e.op() == "run");
        if let Some(ns) =
            program.and_then(|p| edgenet_host::exec::not_started(p, path.as_deref(), e.io_error()))
        {
            // The shell's codes (as `ip netns exec`, `nsenter`, `env` give them): 127 not
            // found, 126 found but not runnable; the command's own status is passed through
            // the same way, so no envelope either.
            eprintln!("edgenet: node {}: {}", node.name, ns.message);
            std::process::exit(ns.code);
        }
        CliError::new(
            Exit::Host,
            "exec",
            format!("cannot run the command in node {}: {e}", node.name),
        )
    })?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if code == 0 {
        return Ok(Exit::Ok);
    }
    if args.ignore_error {
        eprintln!("edgenet: the command exited with status {code} (ignored)");
        return Ok(Exit::Ok);
    }
    std::process::exit(code);
}
