//! `edgenet plan`: the resolved plan of this machine, as a table or versioned JSON.

use edgenet_core::plan::{
    self, DnsSource, MacAssignment, Outbound, Plan, SubnetSource, SwitchKind,
};
use edgenet_core::validate::check;

use crate::cli::{CheckArgs, Cli, Output};
use crate::exit::{CliError, Exit};
use crate::output::{table, Style};

pub fn run(cli: &Cli, args: &CheckArgs) -> Result<Exit, CliError> {
    let loaded = super::load_config(cli)?;
    super::machine_in_range(args, loaded.config.machines.len())?;
    let facts = super::host_facts(cli, args);
    let ctx = super::context(cli, &facts, args);
    super::refuse_errors(cli, &check(&loaded, &ctx), "no plan was made")?;
    let plan = plan::build(&loaded.config, &ctx).map_err(super::plan_error)?;
    match cli.output {
        Output::Json => crate::envelope::print(&crate::envelope::PLAN, &plan),
        Output::Text => crate::output::outln!(
            "{}",
            edgenet_core::redact::redact_credentials(&render(&plan, Style::for_stdout()))
        ),
        _ => super::picture::print(cli, &edgenet_viz::from_plan(&plan))?,
    }
    Ok(Exit::Ok)
}

/// An adapter name as the text shows it: quoted and escaped as `check` does when it holds a
/// control character (a NUL would reach the terminal raw), else as it is.
fn shown(adapter: Option<&str>) -> String {
    match adapter {
        None => "?".into(),
        Some(a) if a.chars().any(char::is_control) => format!("{a:?}"),
        Some(a) => a.into(),
    }
}

fn render(p: &Plan, style: Style) -> String {
    let mut out = Vec::new();
    out.push(style.bold(&format!(
        "Plan for machine {} ({}): {}, {}, {} nodes",
        p.machine.index,
        p.machine.name,
        p.deployment_type.as_str(),
        p.distribution.as_str(),
        match p.node_runtime {
            edgenet_core::config::NodeRuntime::Netns => "netns",
            edgenet_core::config::NodeRuntime::Vm => "vm",
        }
    )));
    if p.joining {
        out.push("Joins a running cluster (the config has a Join section).".into());
    }
    out.push(String::new());

    let s = &p.switch;
    let kind = match (s.kind, s.outbound) {
        (SwitchKind::Internal, Outbound::Nat) => {
            "internal, outbound NAT through the host".to_string()
        }
        (SwitchKind::Internal, _) => {
            "internal, offline: nodes reach the host and each other only".to_string()
        }
        (SwitchKind::External, Outbound::Offline) => {
            format!("external on {}, offline", shown(s.adapter.as_deref()))
        }
        (SwitchKind::External, _) => {
            format!("external, bound to adapter {}", shown(s.adapter.as_deref()))
        }
    };
    let source = match s.subnet_source {
        SubnetSource::Configured => "Network.Ip4AddressPrefix",
        SubnetSource::Automatic => "automatic: first /24 free on this host",
        SubnetSource::AutomaticUnchecked => "automatic, host not read: deploy re-checks it",
        SubnetSource::Lan => "the LAN: Ip4GatewayAddress/Ip4PrefixLength",
    };
    let mut rows = vec![
        vec!["Switch".into(), format!("{} ({kind})", s.name)],
        vec!["Subnet".into(), format!("{} ({source})", s.subnet)],
    ];
    if let Some(h) = s.host_address {
        rows.push(vec!["Host address".into(), h.to_string()]);
    }
    rows.push(vec!["Gateway".into(), s.gateway.to_string()]);
    rows.push(vec![
        "MTU".into(),
        s.mtu
            .map_or("the adapter's, read at deploy".into(), |m| m.to_string()),
    ]);
    rows.push(vec![
        "Control plane".into(),
        format!("{} (Kubernetes API endpoint)", p.control_plane_endpoint),
    ]);
    rows.push(vec![
        "Service IPs".into(),
        p.service_range.map_or_else(
            || {
                if p.joining {
                    "none here (a joining machine: the cluster's first machine reserves them)"
                        .into()
                } else {
                    "none (Init.ServiceIPRangeSize is 0 or not set)".into()
                }
            },
            |r| format!("{} – {} ({} LoadBalancer IPs)", r.start, r.end, r.size),
        ),
    ]);
    let k = &p.kubernetes;
    rows.push(vec!["Pod CIDR".into(), k.pod_cidr.to_string()]);
    rows.push(vec!["Service CIDR".into(), k.service_cidr.to_string()]);
    rows.push(vec!["Cluster DNS".into(), k.cluster_dns.to_string()]);
    rows.push(vec!["CNI".into(), k.network_plugin.as_str().into()]);
    if !p.port_forwards.is_empty() {
        let forwards: Vec<String> = p
            .port_forwards
            .iter()
            .map(|f| {
                format!(
                    "{} {} → {} node :{}",
                    f.protocol.as_str(),
                    f.host_port,
                    f.node.as_str(),
                    f.node_port
                )
            })
            .collect();
        // Loopback is not forwarded (docs/config.md, B23 F10): said where the forwards are.
        rows.push(vec![
            "Port forwards".into(),
            format!(
                "{} (at the host's addresses, not at 127.0.0.1: loopback is not forwarded)",
                forwards.join(", ")
            ),
        ]);
    }
    out.push(table(&["SETTING", "VALUE"], &rows, style));
    out.push(String::new());

    let node_rows: Vec<Vec<String>> = p
        .nodes
        .iter()
        .map(|n| {
            let dns = match (n.dns_source, n.dns_servers.is_empty()) {
                (DnsSource::HostAtDeploy, _) => "host's, found at deploy".to_string(),
                (_, true) => "none".to_string(),
                (source, false) => {
                    let list: Vec<String> = n.dns_servers.iter().map(|d| d.to_string()).collect();
                    let from = if source == DnsSource::Configured {
                        "configured"
                    } else {
                        "host"
                    };
                    let search = if n.dns_search.is_empty() {
                        String::new()
                    } else {
                        format!(", search {}", n.dns_search.join(" "))
                    };
                    format!("{} ({from}){search}", list.join(", "))
                }
            };
            vec![
                n.name.clone(),
                n.kind.as_str().into(),
                match n.role {
                    edgenet_core::plan::NodeRole::ControlPlane => "control-plane".into(),
                    edgenet_core::plan::NodeRole::Worker => "worker".into(),
                },
                n.address.to_string(),
                n.gateway.to_string(),
                match n.mac {
                    MacAssignment::Static { address } => address.to_string(),
                    MacAssignment::GeneratedAtDeploy => "generated at deploy".into(),
                },
                dns,
            ]
        })
        .collect();
    out.push(table(
        &["NODE", "OS", "ROLE", "ADDRESS", "GATEWAY", "MAC", "DNS"],
        &node_rows,
        style,
    ));

    if let Some(n) = p.nodes.first() {
        out.push(String::new());
        let vars = n.proxy.variables();
        if vars.is_empty() {
            out.push(format!(
                "Proxy: none (no_proxy would be {})",
                n.proxy.no_proxy
            ));
        } else {
            out.push("Proxy environment of every node:".into());
            for (name, value) in vars
                .iter()
                .filter(|(name, _)| name.chars().all(|c| !c.is_ascii_uppercase()))
            {
                out.push(format!("  {name}={value}"));
            }
        }
    }
    out.join("\n")
}
