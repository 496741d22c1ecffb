//! The native reader on other tools' tables (issue 10): real-world rulesets (Docker's and ufw's
//! iptables-nft rules (ufw's IPv6 ones too), Debian's default `nftables.conf`, a firewalld-like `inet firewalld`
//! table, a router's hand-written tables, 5,000 rules) loaded with their own tools into a
//! throwaway namespace, listed natively and through libnftables. Where the native reader
//! decodes a ruleset, its listing must be libnftables' item for item; where it does not, it
//! must say so (`None`) and libnftables lists it. The host-firewall walk must find the same
//! drops on both listings.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{root_or_skip, TestNs};
use edgenet_core::host_firewall::{forward_drops, switch_flows, SwitchTraffic, INTERNET};
use edgenet_host::nft::{library, Nft};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/foreign_rulesets")
        .join(name)
}

fn ns(test: &str) -> TestNs {
    TestNs::named(format!("n17-{}-{test}", std::process::id()))
}

/// `program < input` inside the namespace.
fn load(ns: &TestNs, program: &str, args: &[&str], input: &[u8]) {
    let mut full = vec!["netns", "exec", &ns.name, program];
    full.extend_from_slice(args);
    let mut child = Command::new("ip")
        .args(&full)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn load_fixture(ns: &TestNs, name: &str) {
    let text = std::fs::read(fixture(name)).unwrap();
    if name.ends_with(".iptables") {
        load(ns, "iptables-nft-restore", &[], &text);
    } else if name.ends_with(".ip6tables") {
        load(ns, "ip6tables-nft-restore", &[], &text);
    } else {
        load(ns, "nft", &["-f", "-"], &text);
    }
}

fn without_metainfo(mut v: Value) -> Value {
    if let Some(items) = v["nftables"].as_array_mut() {
        items.retain(|i| i.get("metainfo").is_none());
    }
    v
}

/// The flows edgenet checks for a NAT switch (bridged frames too) and an external one.
fn flows() -> Vec<edgenet_core::host_firewall::Flow> {
    let mut all = switch_flows(&SwitchTraffic {
        bridge: "aksedgesw-int".into(),
        nat: true,
        bridged: true,
        node: Some("192.168.0.2".parse().unwrap()),
        host: Some("192.168.0.1".parse().unwrap()),
        uplink: Some("eth0".into()),
        outside: vec!["198.18.0.1".parse().unwrap(), INTERNET],
        ..Default::default()
    });
    all.extend(switch_flows(&SwitchTraffic {
        bridge: "aksedgesw-ext".into(),
        external: true,
        bridged: true,
        node: Some("10.1.0.20".parse().unwrap()),
        uplink: Some("eth0".into()),
        outside: vec!["10.1.0.1".parse().unwrap()],
        ..Default::default()
    }));
    all
}

/// Lists the namespace both ways; `true` when the native reader decoded it (and then its
/// listing is libnftables'), `false` when it left it to libnftables. The walk's findings are
/// compared either way (on the listing each path gives).
fn compare(ns: &TestNs, what: &str) -> (bool, usize) {
    library::load().expect("libnftables.so.1 loads where nftables is installed");
    let (native, lib, shared) = ns.run(|| {
        let native = Nft::new().list_ruleset_native().unwrap();
        let lib = Nft::new().without_native().list_ruleset().unwrap();
        // What `list_ruleset_shared` (the host facts' read) gives, native or not.
        let shared = Nft::new().list_ruleset().unwrap();
        (native, lib, shared)
    });
    let lib = without_metainfo(lib);
    assert_eq!(
        without_metainfo(shared.clone()),
        lib,
        "{what}: the listing callers get differs from libnftables'"
    );
    let flows = flows();
    let by_lib = forward_drops(&lib, &flows, "edgenet_");
    assert_eq!(
        forward_drops(&shared, &flows, "edgenet_"),
        by_lib,
        "{what}: the walk differs"
    );
    let Some(native) = native else {
        return (false, by_lib.len());
    };
    let native = without_metainfo(native);
    let (a, b) = (
        native["nftables"].as_array().unwrap(),
        lib["nftables"].as_array().unwrap(),
    );
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x, y, "{what}: item {i} differs (native, libnftables)");
    }
    assert_eq!(a.len(), b.len(), "{what}: item count");
    assert_eq!(forward_drops(&native, &flows, "edgenet_"), by_lib, "{what}");
    (true, by_lib.len())
}

#[test]
fn docker_ufw_debian_and_router_rulesets_are_listed_natively_as_libnftables_lists_them() {
    if !root_or_skip("docker_ufw_debian_and_router_rulesets_are_listed_natively") {
        return;
    }
    // (what, files, decoded natively, the walk finds drops)
    for (what, files, expect_native, drops) in [
        ("docker", &["docker.iptables"][..], true, true),
        ("ufw", &["ufw.iptables", "ufw6.ip6tables"][..], true, true),
        ("debian", &["debian.nft"][..], true, false),
        ("router", &["dnat_masq.nft"][..], true, true),
        (
            "docker + debian",
            &["docker.iptables", "debian.nft"][..],
            true,
            true,
        ),
        // Named sets, vmaps, ip6, fib and reject: left to libnftables.
        ("firewalld", &["firewalld.nft"][..], false, true),
        (
            "docker + firewalld",
            &["docker.iptables", "firewalld.nft"][..],
            false,
            true,
        ),
    ] {
        let n = ns(&what.replace([' ', '+'], ""));
        for f in files {
            load_fixture(&n, f);
        }
        let (native, found) = compare(&n, what);
        assert_eq!(native, expect_native, "{what}: decoded natively");
        // The walk's comparison means something only where it finds drops.
        assert_eq!(found > 0, drops, "{what}: {found} drops found");
    }
}

/// 5,000 rules in one table of the forms a large hand-written or generated firewall uses.
pub fn big_ruleset(rules: usize) -> String {
    let mut s = String::from(
        "table inet big {\n chain forward { type filter hook forward priority filter; policy accept;\n  ct state established,related accept\n  jump blocklist\n  jump services\n }\n chain input { type filter hook input priority filter; policy accept;\n  iifname \"lo\" accept\n  jump services\n }\n chain blocklist {\n",
    );
    let mut n = 0;
    while n < rules / 2 {
        s += &format!(
            "  ip saddr 10.{}.{}.0/24 counter drop\n",
            n / 256 % 256,
            n % 256
        );
        n += 1;
    }
    s += " }\n chain services {\n";
    while n < rules {
        s += &format!(
            "  iifname \"eth{}\" tcp dport {} ct state new counter accept\n",
            n % 8,
            1024 + n
        );
        n += 1;
    }
    s += " }\n}\n";
    s
}

#[test]
fn five_thousand_rules_are_listed_natively_as_libnftables_lists_them() {
    if !root_or_skip("five_thousand_rules_are_listed_natively") {
        return;
    }
    let n = ns("big");
    load(&n, "nft", &["-f", "-"], big_ruleset(5000).as_bytes());
    load_fixture(&n, "docker.iptables");
    assert!(compare(&n, "5,000 rules").0);
}

/// The same listings, checked without root: what the fixtures are must not drift silently.
#[test]
fn fixtures_are_present() {
    for f in [
        "docker.iptables",
        "ufw.iptables",
        "ufw6.ip6tables",
        "debian.nft",
        "firewalld.nft",
        "dnat_masq.nft",
    ] {
        assert!(fixture(f).is_file(), "{f}");
    }
}

/// B17b D5: the walk's read leaves out the elements of other tools' plain port sets (reading
/// each costs the kernel a lookup among all the table's sets: seconds for thousands of
/// `tcp dport { … }` rules). It says so in its metainfo, the walk finds on it what it finds on
/// libnftables' whole listing, and a whole-ruleset reader in the same session reads again.
#[test]
fn the_walks_read_leaves_out_port_set_elements_and_finds_the_same_drops() {
    if !root_or_skip("the_walks_read_leaves_out_port_set_elements") {
        return;
    }
    let n = ns("ports");
    let mut text = String::from(
        "table inet portsets {\n chain forward { type filter hook forward priority 0; policy accept;\n  jump svc\n  tcp dport != { 22, 443 } drop\n }\n chain svc {\n",
    );
    for i in 0..300 {
        text += &format!(
            "  iifname \"eth{}\" tcp dport {{ {}, {} }} accept\n",
            i % 4,
            1000 + i,
            20000 + i
        );
    }
    text += "  udp dport { 53, 67 } iifname { \"eth0\", \"eth1\" } accept\n }\n}\n";
    load(&n, "nft", &["-f", "-"], text.as_bytes());
    library::load().expect("libnftables.so.1 loads where nftables is installed");
    let (walk, lib, whole_after) = n.run(|| {
        let _session = edgenet_host::nft::RulesetSession::begin();
        let walk = Nft::new().list_ruleset_for_walk().unwrap();
        let lib = Nft::new().without_native().list_ruleset().unwrap();
        let whole = Nft::new().list_ruleset_shared().unwrap();
        (walk, lib, whole)
    });
    assert_eq!(
        walk["nftables"][0]["metainfo"]["edgenet_scope"], "walk",
        "the walk's read is not marked"
    );
    let shown = walk.to_string();
    assert_eq!(shown.matches('…').count(), 302, "port sets left out");
    // Interface sets are read.
    assert!(
        shown.contains("\"eth1\"]"),
        "{}",
        &shown[shown.len() - 600..]
    );
    // The session's whole-ruleset reader does not get the walk's listing.
    assert_eq!(
        without_metainfo((*whole_after).clone()),
        without_metainfo(lib.clone())
    );
    let key = |d: &edgenet_core::host_firewall::ForwardDrop| {
        (
            d.family.clone(),
            d.table.clone(),
            d.chain.clone(),
            d.flow.clone(),
            d.certain,
        )
    };
    let flows = flows();
    let on_walk: Vec<_> = forward_drops(&walk, &flows, "edgenet_")
        .iter()
        .map(key)
        .collect();
    let on_lib: Vec<_> = forward_drops(&lib, &flows, "edgenet_")
        .iter()
        .map(key)
        .collect();
    assert!(
        on_lib.iter().any(|d| d.3.contains("tcp only") && d.4),
        "{on_lib:#?}"
    );
    assert_eq!(on_walk, on_lib);
}

/// B17b D5: the walk's read decodes only the rules of chains a base chain reaches (a jump, a
/// goto, a verdict map): an unreferenced chain's rules are left out (the chain is listed), and
/// the walk finds what it finds on libnftables' whole listing.
#[test]
fn the_walks_read_leaves_out_rules_no_base_chain_reaches() {
    if !root_or_skip("the_walks_read_leaves_out_rules_no_base_chain_reaches") {
        return;
    }
    let n = ns("reach");
    let mut ipt = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:reached - [0:0]\n:deeper - [0:0]\n:unused - [0:0]\n-A FORWARD -j reached\n-A reached -i aksedgesw-int -g deeper\n-A deeper -o eth0 -j ACCEPT\n",
    );
    for i in 0..200 {
        ipt += &format!("-A unused -s 10.9.{i}.0/24 -j DROP\n");
    }
    ipt += "COMMIT\n";
    load(&n, "iptables-nft-restore", &[], ipt.as_bytes());
    load(
        &n,
        "nft",
        &["-f", "-"],
        b"table inet vm {\n chain vmfwd { type filter hook forward priority 10; policy accept;\n  iifname vmap { \"eth7\" : jump a, \"eth8\" : jump b }\n }\n chain a {\n  ip saddr 192.168.0.0/16 drop\n }\n chain b {\n  drop\n }\n chain lonely {\n  drop\n }\n}\n",
    );
    library::load().expect("libnftables.so.1 loads where nftables is installed");
    let (walk, lib) = n.run(|| {
        (
            Nft::new().list_ruleset_for_walk().unwrap(),
            Nft::new().without_native().list_ruleset().unwrap(),
        )
    });
    assert_eq!(walk["nftables"][0]["metainfo"]["edgenet_scope"], "walk");
    let rules_in = |v: &Value, table: &str, chain: &str| {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["rule"]["table"] == table && i["rule"]["chain"] == chain)
            .count()
    };
    let chain_listed = |v: &Value, table: &str, chain: &str| {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["chain"]["table"] == table && i["chain"]["name"] == chain)
    };
    assert_eq!(rules_in(&lib, "filter", "unused"), 200);
    assert_eq!(
        rules_in(&walk, "filter", "unused"),
        0,
        "unreached rules decoded"
    );
    assert!(chain_listed(&walk, "filter", "unused"));
    assert_eq!(rules_in(&walk, "vm", "lonely"), 0);
    for (table, chain) in [
        ("filter", "FORWARD"),
        ("filter", "reached"),
        ("filter", "deeper"),
        ("vm", "vmfwd"),
        ("vm", "a"),
        ("vm", "b"),
    ] {
        assert_eq!(
            rules_in(&walk, table, chain),
            rules_in(&lib, table, chain),
            "{table} {chain}"
        );
    }
    let flows = flows();
    let on_walk = forward_drops(&walk, &flows, "edgenet_");
    let on_lib = forward_drops(&lib, &flows, "edgenet_");
    assert!(!on_lib.is_empty());
    assert_eq!(on_walk, on_lib);
}
