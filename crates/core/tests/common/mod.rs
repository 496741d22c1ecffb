//! Shared helpers for the core's tests: fixtures, a typical host, and JSON edits.
#![allow(dead_code)]

use edgenet_core::config::load;
use edgenet_core::host_facts::{HostAddress, HostDns, HostFacts, HostLink, HostRoute};
use edgenet_core::validate::{check, Context, Finding, Severity};
use serde_json::Value;

pub fn fixture_text(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

fn link(name: &str, index: u32, mac: &str) -> HostLink {
    HostLink {
        name: name.into(),
        index,
        mtu: 1500,
        up: true,
        lower_up: true,
        mac: Some(mac.into()),
        kind: None,
        master: None,
        wireless: false,
        alias: None,
    }
}

/// A machine on the 192.168.1.0/24 LAN of the scalable fixtures, with one wired adapter.
pub fn host() -> HostFacts {
    HostFacts {
        hostname: "Edge01.example".into(),
        links: vec![
            HostLink {
                mac: None,
                ..link("lo", 1, "00:00:00:00:00:00")
            },
            link("eth0", 2, "52:54:00:12:34:56"),
        ],
        addresses: vec![HostAddress {
            link: "eth0".into(),
            address: "192.168.1.50/24".parse().unwrap(),
        }],
        routes: vec![
            HostRoute {
                destination: "0.0.0.0/0".parse().unwrap(),
                link: Some("eth0".into()),
                gateway: Some("192.168.1.1".parse().unwrap()),
            },
            HostRoute {
                destination: "192.168.1.0/24".parse().unwrap(),
                link: Some("eth0".into()),
                gateway: None,
            },
        ],
        dns: HostDns {
            servers: vec!["192.168.1.1".parse().unwrap()],
            source: Some("/etc/resolv.conf".into()),
            ..HostDns::default()
        },
        firewall: Default::default(),
    }
}

pub fn run_with(json: &Value, ctx: &Context<'_>) -> Vec<Finding> {
    let loaded = load(json.to_string().as_bytes()).expect("loads");
    check(&loaded, ctx)
}

/// `check` against [`host`], as machine 0.
pub fn run(json: &Value) -> Vec<Finding> {
    let facts = host();
    let mut ctx = Context::live(&facts);
    ctx.machine = Some(0);
    run_with(json, &ctx)
}

pub fn run_host(json: &Value, facts: &HostFacts) -> Vec<Finding> {
    let mut ctx = Context::live(facts);
    ctx.machine = Some(0);
    run_with(json, &ctx)
}

pub fn run_offline(json: &Value) -> Vec<Finding> {
    run_with(json, &Context::offline("--offline-check", "edge01"))
}

pub fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

pub fn assert_clean(findings: &[Finding]) {
    let e = errors(findings);
    assert!(e.is_empty(), "expected no errors, got {e:#?}");
}

pub fn find<'a>(findings: &'a [Finding], code: &str, path: &str) -> Option<&'a Finding> {
    findings
        .iter()
        .find(|f| f.code.as_str() == code && f.path == path)
}

pub fn assert_has(findings: &[Finding], code: &str, path: &str, severity: Severity) -> Finding {
    let f = find(findings, code, path)
        .unwrap_or_else(|| panic!("no {code} at {path:?} in {findings:#?}"));
    assert_eq!(f.severity, severity, "{f:#?}");
    f.clone()
}

/// Sets the value at a `/`-separated path (numbers index arrays), creating objects on the way.
pub fn set(mut v: Value, path: &str, value: Value) -> Value {
    let mut cur = &mut v;
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        cur = match part.parse::<usize>() {
            Ok(idx) if cur.is_array() => &mut cur[idx],
            _ => {
                let obj = cur.as_object_mut().expect("object on the path");
                if last {
                    obj.insert(part.to_string(), value);
                    return v;
                }
                obj.entry(part.to_string())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
        };
        if last {
            *cur = value;
            return v;
        }
    }
    v
}

/// Removes the key at a `/`-separated path.
pub fn remove(mut v: Value, path: &str) -> Value {
    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
    let mut cur = &mut v;
    if !parent.is_empty() {
        for part in parent.split('/') {
            cur = match part.parse::<usize>() {
                Ok(i) if cur.is_array() => &mut cur[i],
                _ => &mut cur[part],
            };
        }
    }
    cur.as_object_mut().unwrap().remove(key);
    v
}
