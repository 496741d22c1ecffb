//! `plan` reads the real kernel: inside a namespace whose routes take 192.168.0.0/24, the
//! automatic subnet moves to the next free /24. Needs root; runs only inside its own namespace.

mod support;

use std::process::Command;

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        if !support::is_root() {
            eprintln!("skipped: needs root to create a network namespace");
            return None;
        }
        let name = format!("enc-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Some(Netns(name))
    }

    fn ip(&self, args: &str) {
        let status = Command::new("ip")
            .args(["-n", &self.0])
            .args(args.split_whitespace())
            .status()
            .unwrap();
        assert!(status.success(), "ip -n {} {args}", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn plan_in(ns: &Netns) -> serde_json::Value {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_edgenet"),
            "plan",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn automatic_subnet_skips_routes_of_the_live_host() {
    let Some(ns) = Netns::new("subnet") else {
        return;
    };
    ns.ip("link set lo up");
    assert_eq!(plan_in(&ns)["switch"]["subnet"], "192.168.0.0/24");

    ns.ip("link add up0 type veth peer name up1");
    ns.ip("addr add 192.168.0.10/24 dev up0");
    ns.ip("link set up1 up");
    ns.ip("link set up0 up");
    ns.ip("route add 192.168.1.128/25 via 192.168.0.1");
    let p = plan_in(&ns);
    assert_eq!(
        p["switch"]["subnet"], "192.168.2.0/24",
        "192.168.0.0/24 is up0's, 192.168.1.128/25 is routed"
    );
    assert_eq!(p["switch"]["host_address"], "192.168.2.1/24");
    assert_eq!(p["nodes"][0]["address"], "192.168.2.2/24");
    assert_eq!(p["switch"]["subnet_source"], "automatic");

    // A configured subnet that overlaps is named with its interface.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        r#"{"Network": {"Ip4AddressPrefix": "192.168.0.0/24"}}"#,
    )
    .unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_edgenet"),
            "check",
            "-c",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("overlaps 192.168.0.0/24 on up0"), "{text}");
}
