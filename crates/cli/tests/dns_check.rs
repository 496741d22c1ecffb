//! `Network.SkipDnsCheck` (B21 N4), as in AKS EE: `check` and a changing `deploy` warn
//! (`dns-silent`, never refuse) when a configured DNS server does not answer a query; the
//! setting turns that off, and `doctor` then reports the node's DNS as SKIP, not FAIL. The
//! servers are a real dnsmasq and a silent address, both in an "upstream" namespace of the
//! test's own; nothing is sent anywhere else.

mod support;

use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use support::*;

/// The upstream namespace: 203.0.113.1 (dnsmasq) on a veth to the machine's `up0`.
struct Upstream {
    ns: NsGuard,
    dnsmasq: Option<Child>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(c) = &mut self.dnsmasq {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

const DNSMASQ: &str = "203.0.113.1";
/// In the upstream's subnet, on no interface: nothing answers (not even ARP).
const SILENT: &str = "203.0.113.9";

fn upstream(m: &Machine) -> Option<Upstream> {
    let ns = uplink(m, "up");
    let mut up = Upstream { ns, dnsmasq: None };
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            up.ns.name(),
            "dnsmasq",
            "--conf-file=/dev/null",
            "--no-hosts",
        ])
        .args([
            "--no-resolv",
            "--no-daemon",
            "--bind-interfaces",
            "--pid-file=",
        ])
        .arg(format!("--listen-address={DNSMASQ}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    up.dnsmasq = Some(child);
    // Until it answers (a query from the machine).
    for _ in 0..50 {
        let ok = Command::new("ip")
            .args(["netns", "exec", &m.ns, "busybox", "nslookup", "-timeout=1"])
            .args(["localhost", DNSMASQ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.code().is_some());
        if ok {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Some(up)
}

fn config(m: &Machine, name: &str, server: &str, skip: bool) -> String {
    m.write_config(
        name,
        &json!({
            "Network": {"DnsServers": [server], "SkipDnsCheck": skip},
            "Machines": [{"LinuxNode": {}}],
            "Edgenet": {"MachineName": "s21dns"}
        }),
    )
}

fn dns_silent(findings: &Value) -> Vec<Value> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "dns-silent")
        .cloned()
        .collect()
}

fn check(m: &Machine, cfg: &str) -> (bool, Value) {
    let out = m.edgenet(&["check", "--output", "json", "-c", cfg]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.success(), v["findings"].clone())
}

#[test]
fn a_silent_dns_server_is_a_warning_unless_skip_dns_check_and_doctor_skips_it() {
    let Some(m) = machine_prefixed("s21", "dns") else {
        return;
    };
    if Command::new("dnsmasq").arg("--version").output().is_err() {
        eprintln!("skipped: needs dnsmasq");
        return;
    }
    let Some(_up) = upstream(&m) else {
        eprintln!("skipped: dnsmasq did not start");
        return;
    };
    let answered = config(&m, "answered.json", DNSMASQ, false);
    let silent = config(&m, "silent.json", SILENT, false);
    let skipped = config(&m, "skipped.json", SILENT, true);

    let (ok, f) = check(&m, &answered);
    assert!(ok && dns_silent(&f).is_empty(), "{f:#}");
    let started = std::time::Instant::now();
    let (ok, f) = check(&m, &silent);
    assert!(ok, "a silent server must not fail check: {f:#}");
    let found = dns_silent(&f);
    assert_eq!(found.len(), 1, "{f:#}");
    assert_eq!(found[0]["severity"], "warning");
    assert_eq!(found[0]["path"], "Network.DnsServers[0]");
    assert!(
        found[0]["message"].as_str().unwrap().contains(SILENT),
        "{f:#}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "not bounded"
    );
    let (ok, f) = check(&m, &skipped);
    assert!(ok && dns_silent(&f).is_empty(), "{f:#}");

    // deploy warns (and deploys); a redeploy that changes nothing asks nobody.
    let d = m.deploy(Some(&silent));
    assert_eq!(dns_silent(&d["warnings"]).len(), 1, "{d:#}");
    let again = m.deploy(Some(&silent));
    assert!(again["changes"].as_array().unwrap().is_empty(), "{again:#}");
    assert!(dns_silent(&again["warnings"]).is_empty(), "{again:#}");
    let d = m.deploy(Some(&skipped));
    assert!(dns_silent(&d["warnings"]).is_empty(), "{d:#}");

    // doctor: SKIP, not FAIL, for a server declared unreachable.
    let out = m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dns: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "dns")
        .collect();
    assert!(!dns.is_empty(), "{report:#}");
    assert!(
        dns.iter().all(|c| c["status"] == "SKIP"),
        "{:#}",
        Value::Array(dns.into_iter().cloned().collect())
    );
}
