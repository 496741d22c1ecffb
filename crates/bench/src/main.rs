//! `edgenet-bench`: the figures in BENCHMARKS.md, printed by a command (never a timed test).
//!
//! `cargo run --release -p edgenet-bench -- core` times `check` + `plan` of generated scalable
//! configs of 100, 1,000 and 10,000 machines, parse included, with the host rules running on a
//! synthetic host.

mod busy_host;
mod dataplane;
mod deploy;
mod lab;
mod peers;
mod sys;
mod vm;

use std::hint::black_box;
use std::time::{Duration, Instant};

use edgenet_core::config::load;
use edgenet_core::host_facts::{HostAddress, HostDns, HostFacts, HostLink};
use edgenet_core::plan;
use edgenet_core::validate::{check, Context, Severity};
use serde_json::json;

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "core".into());
    match what.as_str() {
        "core" => bench_core(),
        "deploy" => deploy::bench(),
        "busy-host" => busy_host::bench(runs_arg(7)),
        "lab" => lab::bench(),
        "peers" => peers::bench(runs_arg(15)),
        "dataplane" => dataplane::bench(runs_arg(5)),
        "vm" => vm::bench(),
        "--help" | "-h" => println!(
            "usage: edgenet-bench core|deploy|busy-host [RUNS]|lab|vm|peers [RUNS]|dataplane [RUNS]\n\
             peers and dataplane need root and the peers' packages \
             (scripts/bench-deps.sh installs them)"
        ),
        other => {
            eprintln!("edgenet-bench: unknown benchmark {other:?}; try `--help`");
            std::process::exit(2);
        }
    }
}

/// The optional run count after the benchmark's name.
fn runs_arg(default: usize) -> usize {
    std::env::args()
        .nth(2)
        .map(|n| n.parse().expect("RUNS is a number"))
        .unwrap_or(default)
        .max(1)
}

/// A scalable config with `machines` machines on 172.20.0.0/16, each with one Linux node.
pub fn scalable_config(machines: usize) -> Vec<u8> {
    let list: Vec<_> = (0..machines)
        .map(|i| {
            json!({
                "MachineName": format!("m{i}"),
                "NetworkConnection": {"AdapterName": "eth0", "Mtu": 0},
                "LinuxNode": {"ControlPlane": i == 0, "Ip4Address": format!("172.20.{}.{}", 1 + i / 250, 1 + i % 250)}
            })
        })
        .collect();
    json!({
        "SchemaVersion": "1.14",
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "172.20.0.10", "ServiceIPRangeSize": 10},
        "Network": {
            "ControlPlaneEndpointIp": "172.20.0.2",
            "Ip4GatewayAddress": "172.20.0.1",
            "Ip4PrefixLength": 16,
            "DnsServers": ["172.20.0.1"],
            "Proxy": {"Http": "http://172.20.0.5:3128", "No": "localhost,.site.example"}
        },
        "Machines": list
    })
    .to_string()
    .into_bytes()
}

fn host() -> HostFacts {
    HostFacts {
        hostname: "bench".into(),
        links: vec![HostLink {
            name: "eth0".into(),
            index: 2,
            mtu: 1500,
            up: true,
            lower_up: true,
            mac: Some("52:54:00:00:00:01".into()),
            kind: None,
            master: None,
            wireless: false,
            alias: None,
        }],
        addresses: vec![HostAddress {
            link: "eth0".into(),
            address: "172.20.200.1/16".parse().unwrap(),
        }],
        routes: vec![],
        dns: HostDns {
            servers: vec!["172.20.0.1".parse().unwrap()],
            ..HostDns::default()
        },
        firewall: Default::default(),
    }
}

fn bench_core() {
    let facts = host();
    println!("check + plan of a generated ScalableCluster config (parse included), release build");
    println!(
        "{:>9} {:>10} {:>12} {:>12} {:>14}",
        "machines", "bytes", "median", "min", "per machine"
    );
    for machines in [100usize, 1_000, 10_000] {
        let bytes = scalable_config(machines);
        let runs = if machines >= 10_000 { 15 } else { 51 };
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                let loaded = load(black_box(&bytes)).expect("generated config loads");
                let mut ctx = Context::live(&facts);
                ctx.machine = Some(0);
                let findings = check(&loaded, &ctx);
                assert!(
                    !findings.iter().any(|f| f.severity == Severity::Error),
                    "{findings:#?}"
                );
                black_box(plan::build(&loaded.config, &ctx).expect("plans"));
                start.elapsed()
            })
            .collect();
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{machines:>9} {:>10} {:>10.2}ms {:>10.2}ms {:>12.2}µs",
            bytes.len(),
            ms(median),
            ms(times[0]),
            median.as_secs_f64() * 1e6 / machines as f64
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
