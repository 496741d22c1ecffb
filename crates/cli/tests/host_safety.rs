//! Issue 8 (host safety): proxy credentials never leave the machine's protected files, and
//! `deploy` refuses what would break the host (its own addresses, names already taken).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use serde_json::{json, Value};
use support::*;

const PASSWORD: &str = "s3cr3tPw0rd";

fn proxied() -> Value {
    json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {"DnsServers": ["198.51.100.7"], "Proxy": {
            "Http": format!("http://bob:{PASSWORD}@198.51.100.9:3128"),
            "Https": format!("http://bob:{PASSWORD}@198.51.100.9:3128/"),
            "No": "corp.example"}},
        "Machines": [{"LinuxNode": {"ControlPlane": true}}],
    })
}

fn assert_redacted(what: &str, out: &Output) {
    let t = text(out);
    assert!(
        !t.contains(PASSWORD),
        "{what} printed the proxy password:\n{t}"
    );
}

#[test]
fn no_command_prints_the_proxy_password_in_text_or_json() {
    let Some(m) = machine("h8bred") else { return };
    let cfg = m.write_config("c.json", &proxied());
    for output in ["text", "json"] {
        for args in [
            vec!["check", "-c", &cfg],
            vec!["plan", "-c", &cfg],
            vec!["deploy", "-c", &cfg],
            vec!["status"],
            vec!["deploy", "-c", &cfg],
        ] {
            let mut a = args.clone();
            a.extend(["--output", output]);
            let out = m.edgenet(&a);
            assert!(out.status.success(), "{a:?}: {}", text(&out));
            assert_redacted(&format!("{a:?}"), &out);
        }
    }
    // The plan does show the proxy, redacted.
    let plan = text(&m.edgenet(&["plan", "-c", &cfg]));
    assert!(plan.contains("http://bob:***@198.51.100.9:3128"), "{plan}");

    // Messages that echo a bad URL (check, and deploy refusing) and a deploy that fails.
    let mut bad = proxied();
    bad["Network"]["Proxy"]["Https"] =
        json!(format!("http://bob:{PASSWORD}@198.51.100.9:notaport"));
    let bad = m.write_config("bad.json", &bad);
    for output in ["text", "json"] {
        for cmd in ["check", "deploy"] {
            let out = m.edgenet(&[cmd, "-c", &bad, "--output", output]);
            assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out));
            assert!(
                text(&out).contains("***@198.51.100.9"),
                "{cmd} {output}: {}",
                text(&out)
            );
            assert_redacted(&format!("{cmd} {output} of a bad URL"), &out);
        }
    }
    // Issue 8 retest: no scheme, a no_proxy entry with credentials, unencoded `/ # ?` or a
    // space in the password, a token alone. Each is refused (or redacted) without the secret.
    for (key, value) in [
        ("Https", format!("bob:{PASSWORD}@198.51.100.9:3128")),
        ("No", format!("localhost,u2:{PASSWORD}@x.example")),
        ("Http", format!("http://bob:a/{PASSWORD}@198.51.100.9:3128")),
        ("Http", format!("http://bob:a#{PASSWORD}@198.51.100.9:3128")),
        ("Http", format!("http://bob:a?{PASSWORD}@198.51.100.9:3128")),
        ("Http", format!("http://bob:a {PASSWORD}@198.51.100.9:3128")),
        ("Http", format!("http://{PASSWORD}@198.51.100.9:3128/")),
    ] {
        let mut c = proxied();
        c["Network"]["Proxy"][key] = json!(value);
        let path = m.write_config("retest.json", &c);
        let token_only = value.starts_with(&format!("http://{PASSWORD}"));
        for output in ["text", "json"] {
            for cmd in ["check", "plan", "deploy"] {
                let out = m.edgenet(&[cmd, "-c", &path, "--output", output]);
                if !token_only {
                    assert_eq!(out.status.code(), Some(1), "{value} {cmd}: {}", text(&out));
                }
                assert_redacted(&format!("{cmd} {output} of {key}"), &out);
            }
        }
        if value.contains("a/") {
            let out = text(&m.edgenet(&["check", "-c", &path]));
            assert!(out.contains("percent-encode"), "{out}");
        }
    }
    let mut long = proxied();
    long["Network"]["Proxy"]["Http"] = json!(format!("http://{}.example:3128", "a".repeat(5000)));
    let path = m.write_config("long.json", &long);
    let out = m.edgenet(&["check", "-c", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("253"), "{}", text(&out));
    if failpoints() {
        let out = m.edgenet_env(
            &["deploy", "-c", &cfg, "--output", "json"],
            &[("EDGENET_FAILPOINT", "finish")],
        );
        assert_redacted("a failing deploy", &out);
    }
}

#[test]
fn proxy_env_is_readable_by_root_only() {
    let Some(m) = machine("h8bperm") else { return };
    let cfg = m.write_config("c.json", &proxied());
    m.ok(&["deploy", "-c", &cfg]);
    let nodes = m.state.join("nodes");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let node_dir = std::fs::read_dir(&nodes)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let env = node_dir.join("proxy.env");
    assert!(std::fs::read_to_string(&env).unwrap().contains(PASSWORD));
    assert_eq!(mode(&env), 0o600, "proxy.env");
    assert_eq!(mode(&node_dir), 0o700, "node directory");
    assert_eq!(mode(&nodes), 0o700, "nodes directory");
    assert_eq!(mode(&m.state.join("state.json")), 0o600, "state");
    // A proxy.env an older edgenet left world-readable is tightened by the next deploy.
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    m.ok(&["deploy", "-c", &cfg]);
    assert_eq!(mode(&env), 0o600);
    // resolv.conf and hosts stay readable for the node's processes.
    assert_eq!(mode(&node_dir.join("resolv.conf")), 0o644);
}

fn scalable(node_ip: &str) -> Value {
    json!({
        "DeploymentType": "ScalableCluster",
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
        "Machines": [{"MachineName": "m0", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": node_ip, "ControlPlane": true}}],
    })
}

#[test]
fn a_node_with_the_hosts_own_address_is_refused_before_anything_changes() {
    let Some(lan) = lan("h8bself", 1) else { return };
    let m = &lan.machines[0];
    // 198.18.0.11 is the machine's own address on eth0.
    let cfg = m.write_config("c.json", &scalable(&Lan::machine_address(0)));
    let before = adapter_snapshot(&m.ns, "eth0");
    for cmd in ["check", "deploy"] {
        let out = m.edgenet(&[cmd, "-c", &cfg]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains("address-is-host") && t.contains("198.18.0.11") && t.contains("eth0"),
            "{cmd}: {t}"
        );
    }
    assert_eq!(adapter_snapshot(&m.ns, "eth0"), before);
    assert!(bridges(&m.ns).is_empty());
    assert!(!m.state.join("state.json").exists());
    // The control-plane endpoint likewise.
    let mut cp = scalable("198.18.0.101");
    cp["Network"]["ControlPlaneEndpointIp"] = json!(Lan::machine_address(0));
    let cp = m.write_config("cp.json", &cp);
    let out = m.edgenet(&["deploy", "-c", &cp]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Network.ControlPlaneEndpointIp"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_switch_name_taken_by_lo_or_a_foreign_bridge_is_refused_by_check_and_deploy() {
    let Some(m) = machine("h8bname") else { return };
    let mut cfg = proxied();
    cfg["Edgenet"] = json!({"SwitchName": "lo"});
    let lo = m.write_config("lo.json", &cfg);
    for cmd in ["check", "deploy"] {
        let out = m.edgenet(&[cmd, "-c", &lo]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out));
        assert!(text(&out).contains("loopback"), "{cmd}: {}", text(&out));
    }
    sh(&format!(
        "ip -n {} link add aksedgesw-int type bridge",
        m.ns
    ));
    let plain = m.write_config("c.json", &proxied());
    for cmd in ["check", "deploy"] {
        let out = m.edgenet(&[cmd, "-c", &plain]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out));
        assert!(
            text(&out).contains("did not create"),
            "{cmd}: {}",
            text(&out)
        );
    }
    assert!(m.node_namespaces().is_empty());
    assert!(!m.state.join("state.json").exists());
}

fn remove_text(m: &Machine) -> String {
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    text(&out)
}

#[test]
fn a_namespace_that_merely_carries_the_id_is_neither_adopted_nor_deleted() {
    let Some(m) = machine("h8bownns") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    // Someone's namespace whose name ends with the deployment id (remove sweeps by that).
    let theirs = format!("h8bother-{id}");
    sh(&format!(
        "ip netns add {theirs} && ip -n {theirs} link add keep0 type veth peer name keep0p"
    ));
    let guard = NsGuard::adopt(&theirs);
    let node = m
        .node_namespaces()
        .into_iter()
        .find(|n| n != &theirs)
        .unwrap();
    // The node namespace replaced by a foreign one with the same name.
    sh(&format!("ip netns del {node} && ip netns add {node} && ip -n {node} link add keep1 type veth peer name keep1p"));
    let guard2 = NsGuard::adopt(&node);
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&node) && text(&out).contains("mark"),
        "{}",
        text(&out)
    );
    let link_names = |ns: &str| sh_out(&format!("ip -n {ns} -o link show"));
    assert!(
        link_names(&node).contains("keep1"),
        "the foreign namespace was changed"
    );
    let t = remove_text(&m);
    assert!(t.contains(&format!("left network namespace {node}")), "{t}");
    assert!(
        t.contains(&format!("left network namespace {theirs}")),
        "{t}"
    );
    assert!(netns_exists(&theirs) && netns_exists(&node));
    assert!(link_names(&theirs).contains("keep0"));
    drop((guard, guard2));
}

#[test]
fn a_veth_or_table_that_merely_has_our_name_is_neither_adopted_nor_deleted() {
    let Some(m) = machine("h8bownlk") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let veth = format!("en{id}l");
    let table = format!("edgenet_{id}");
    sh(&format!(
        "ip -n {ns} link del {veth} && ip -n {ns} link add {veth} type veth peer name h8bpeer && \
         ip netns exec {ns} nft delete table ip {table} && ip netns exec {ns} nft add table ip {table} && \
         ip netns exec {ns} nft add chain ip {table} theirs && \
         ip netns exec {ns} nft add rule ip {table} theirs counter",
        ns = m.ns
    ));
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = remove_text(&m);
    assert!(t.contains(&format!("left veth {veth}")), "{t}");
    assert!(
        t.contains(&format!("left nftables table ip {table}")),
        "{t}"
    );
    assert!(
        link(&m.ip_json("link show"), &veth).is_some(),
        "their veth was deleted"
    );
    sh(&format!(
        "ip netns exec {} nft list chain ip {table} theirs",
        m.ns
    ));
    // The run before leaves nothing of ours: the bridge and the node went.
    assert!(m.node_namespaces().is_empty());
}

#[test]
fn remove_says_restored_for_what_it_restored_and_left_for_what_it_left() {
    let Some(m) = machine("h8bwords") else { return };
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
    m.deploy(None);
    let t = remove_text(&m);
    assert!(t.contains("restored net.ipv4.ip_forward to 0"), "{t}");
    assert!(t.contains("removed bridge aksedgesw-int"), "{t}");
    assert!(!t.contains("removed net.ipv4"), "{t}");

    // Someone else changes the setting edgenet made: theirs now, left and said so.
    m.deploy(None);
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.ip_forward=0",
        m.ns
    ));
    let out = m.edgenet(&["remove", "--output", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restored"], json!([]), "{report:#}");
    assert!(
        report["left"]
            .to_string()
            .contains("net.ipv4.ip_forward at 0"),
        "{report:#}"
    );

    // A bridge the user made for the external switch is left, and said so.
    let Some(lan) = lan("h8bwordx", 1) else {
        return;
    };
    let m = &lan.machines[0];
    let ns = &m.ns;
    sh(&format!(
        "ip -n {ns} link add aksedgesw-ext type bridge && ip -n {ns} link set aksedgesw-ext up && \
         ip -n {ns} addr del 198.18.0.11/24 dev eth0 && ip -n {ns} link set eth0 master aksedgesw-ext && \
         ip -n {ns} addr add 198.18.0.11/24 dev aksedgesw-ext && ip -n {ns} route add default via 198.18.0.1"
    ));
    let cfg = m.write_config("c.json", &scalable("198.18.0.101"));
    m.ok(&["deploy", "-c", &cfg]);
    let t = remove_text(m);
    assert!(t.contains("left bridge aksedgesw-ext"), "{t}");
    assert!(!t.contains("removed bridge"), "{t}");
}
