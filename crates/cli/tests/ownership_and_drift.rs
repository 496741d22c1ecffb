//! Issue 8 follow-ups: `remove` never deletes what is not this deployment's and always
//! finishes; it leaves forwarding on for other users; `check` predicts what `deploy` refuses;
//! a refused deploy never leaves the state stuck; `status` sees foreign look-alikes.

mod support;

use serde_json::Value;
use support::*;

fn phase(m: &Machine) -> Option<String> {
    let text = std::fs::read_to_string(m.state.join("state.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["phase"].as_str().map(String::from)
}

#[test]
fn remove_leaves_a_node_namespace_whose_eth0_lacks_the_mark() {
    let Some(m) = machine("f8anet") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let node = m.node_namespaces().into_iter().next().unwrap();
    // Same name, an eth0 whose peer merely has our veth's name: not ours.
    // The veth goes first, synchronously (a deleted namespace frees its links later).
    sh(&format!(
        "ip -n {ns} link del en{id}l && ip netns del {node} && ip netns add {node} && \
         ip -n {node} link add eth0 type veth peer name en{id}l && \
         ip -n {node} link set en{id}l netns {ns}",
        ns = m.ns
    ));
    let _guard = NsGuard(node.clone());
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        !t.contains(&format!("removed network namespace {node}")),
        "{t}"
    );
    assert_eq!(
        t.matches(&format!("left network namespace {node}")).count(),
        1,
        "{t}"
    );
    assert!(netns_exists(&node), "the foreign namespace was deleted");
    let links = Machine::ip_json_in(&node, "link show");
    assert!(link(&links, "eth0").is_some());
    // A deploy refuses it likewise.
    sh(&format!("ip -n {} link del en{id}l", m.ns));
}

#[test]
fn remove_finishes_when_a_foreign_bridge_holds_the_switch_name() {
    let Some(m) = machine("f8abr") else { return };
    m.deploy(None);
    sh(&format!(
        "ip -n {ns} link del aksedgesw-int && ip -n {ns} link add aksedgesw-int type bridge",
        ns = m.ns
    ));
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("left bridge aksedgesw-int"), "{t}");
    assert!(!m.state.join("state.json").exists(), "state kept: {t}");
    assert!(bridges(&m.ns).contains(&"aksedgesw-int".to_string()));
    // Another deployment's bridge: left, and said whose.
    m.deploy(Some(&m.write_config(
        "other.json",
        &serde_json::json!({"Machines": [{"LinuxNode": {}}], "Edgenet": {"SwitchName": "f8aother"}}),
    )));
    sh(&format!(
        "ip -n {ns} link del f8aother && ip -n {ns} link add f8aother type bridge && \
         ip -n {ns} link set f8aother alias edgenet:abcdef",
        ns = m.ns
    ));
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("left bridge f8aother") && t.contains("another edgenet deployment"),
        "{t}"
    );
    assert!(!t.contains("removed bridge"), "{t}");
    sh(&format!(
        "ip -n {ns} link del f8aother && ip -n {ns} link del aksedgesw-int",
        ns = m.ns
    ));
    // What was already gone is said so, not "removed".
    m.deploy(None);
    let id = m.state_id().unwrap();
    sh(&format!("ip -n {} link del en{id}l", m.ns));
    let t = text(&m.edgenet(&["remove"]));
    assert!(t.contains(&format!("already gone: veth en{id}l")), "{t}");
    assert!(!t.contains(&format!("removed veth en{id}l")), "{t}");
    assert!(t.contains("removed nftables table ip edgenet_"), "{t}");
}

#[test]
fn remove_leaves_forwarding_on_while_another_router_uses_it() {
    let Some(m) = machine("f8afwd") else { return };
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0");
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    // Another router's forward chain (a table that is not edgenet's).
    sh(&format!(
        "ip netns exec {} nft 'add table inet f8arouter; add chain inet f8arouter routing {{ type filter hook forward priority 0; policy accept; }}; add rule inet f8arouter routing iifname \"f8a0\" accept'",
        m.ns
    ));
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1", "{t}");
    assert!(
        t.contains("left net.ipv4.ip_forward at 1") && t.contains("f8arouter"),
        "{t}"
    );
    assert!(!t.contains("restored net.ipv4.ip_forward"), "{t}");
    sh(&format!(
        "ip netns exec {} nft delete table inet f8arouter && ip netns exec {} sysctl -qw net.ipv4.ip_forward=0",
        m.ns, m.ns
    ));
    // Docker's rules (a started Docker: its own DOCKER chain is there; DOCKER-USER alone is
    // not a running Docker, B23 F5): likewise.
    if has_iptables() {
        m.deploy(None);
        sh(&format!(
            "printf '*filter\\n:FORWARD DROP [0:0]\\n:DOCKER - [0:0]\\n:DOCKER-USER - [0:0]\\n-A FORWARD -j DOCKER-USER\\n-A DOCKER-USER -j RETURN\\nCOMMIT\\n' | ip netns exec {} iptables-nft-restore",
            m.ns
        ));
        let t = text(&m.edgenet(&["remove"]));
        assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1", "{t}");
        assert!(t.contains("Docker"), "{t}");
    }
}

#[test]
fn check_refuses_a_bridge_left_by_another_deployment_and_deploy_leaves_no_stuck_state() {
    let Some(m) = machine("f8achk") else { return };
    sh(&format!(
        "ip -n {ns} link add aksedgesw-int type bridge && ip -n {ns} link set aksedgesw-int alias edgenet:abcdef",
        ns = m.ns
    ));
    for cmd in ["check", "deploy"] {
        let out = m.edgenet(&[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains("another edgenet deployment") && t.contains("edgenet:abcdef"),
            "{cmd}: {t}"
        );
    }
    assert!(!m.state.join("state.json").exists());
    assert!(m.node_namespaces().is_empty());
    // A first deploy that fails midway and is fully undone leaves no deployment "deploying".
    sh(&format!("ip -n {} link del aksedgesw-int", m.ns));
    if failpoints() {
        let out = m.edgenet_env(&["deploy"], &[("EDGENET_FAILPOINT", "node-link")]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert_eq!(phase(&m), None, "{}", text(&out));
        assert!(bridges(&m.ns).is_empty() && m.node_namespaces().is_empty());
    }
    // docker0 as the switch name: never "delete docker0".
    sh(&format!("ip -n {} link add docker0 type bridge", m.ns));
    let cfg = m.write_config(
        "d.json",
        &serde_json::json!({"Machines": [{"LinuxNode": {}}], "Edgenet": {"SwitchName": "docker0"}}),
    );
    let out = m.edgenet(&["check", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !text(&out).contains("ip link del docker0"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_redeploy_refused_by_a_docker_user_drop_names_the_drop_and_keeps_the_deployment() {
    let Some(m) = machine("f8adrop") else { return };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft");
        return;
    }
    sh(&format!(
        "printf '*filter\\n:FORWARD DROP [0:0]\\n:DOCKER-USER - [0:0]\\n-A FORWARD -j DOCKER-USER\\n-A DOCKER-USER -j RETURN\\nCOMMIT\\n' | ip netns exec {} iptables-nft-restore",
        m.ns
    ));
    m.deploy(None);
    // The user's drop above edgenet's accepts.
    sh(&format!(
        "ip netns exec {} iptables-nft -I DOCKER-USER -j DROP",
        m.ns
    ));
    let out = m.edgenet(&["deploy"]);
    let t = text(&out);
    // B22 finding 9: refused by the checks before anything changes (exit 1), as check says.
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("nothing was changed"), "{t}");
    assert!(!t.contains("already exists and was not made"), "{t}");
    assert!(t.contains("ip filter chain FORWARD"), "{t}");
    assert!(!t.contains("rollback error"), "{t}");
    // B19 D3: a rule aimed at every packet stays above edgenet's (the user's decision), and
    // the fix does not ask for the accepts that are already there.
    assert!(
        t.contains(
            "edgenet's ACCEPT rules for aksedgesw-int are present in DOCKER-USER but below `-A DOCKER-USER -j DROP` (rule 1 of the chain)"
        ),
        "{t}"
    );
    assert_eq!(phase(&m).as_deref(), Some("deployed"), "{t}");
    // check says the same (it hinted adding the accepts that are there).
    let out = m.edgenet(&["check"]);
    let c = text(&out);
    assert!(
        c.contains("are present in DOCKER-USER but below `-A DOCKER-USER -j DROP`")
            && !c.contains("iptables -I DOCKER-USER"),
        "{c}"
    );
    // status says why the nodes are cut off; remove takes edgenet's accepts out.
    assert!(m.drift().join("\n").contains("FORWARD"), "{:?}", m.drift());
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!sh_out(&format!("ip netns exec {} iptables-nft -S", m.ns)).contains("edgenet:"));
}

#[test]
fn status_sees_foreign_tables_and_host_addresses_that_are_the_nodes() {
    let Some(m) = machine("f8ast") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    assert!(m.drift().is_empty(), "{:?}", m.drift());
    // Look-alikes holding a rule that is not edgenet's (an empty one could be ours, flushed).
    sh(&format!(
        "ip netns exec {ns} nft delete table ip edgenet_{id} && ip netns exec {ns} nft 'add table ip edgenet_{id}; add chain ip edgenet_{id} c; add rule ip edgenet_{id} c counter' && \
         ip netns exec {ns} nft delete table bridge edgenet_{id} && ip netns exec {ns} nft 'add table bridge edgenet_{id}; add chain bridge edgenet_{id} c; add rule bridge edgenet_{id} c counter'",
        ns = m.ns
    ));
    let d = m.drift().join("\n");
    assert!(
        d.contains(&format!("ip edgenet_{id}")) && d.contains("not this deployment's"),
        "{d}"
    );
    assert!(d.contains(&format!("bridge edgenet_{id}")), "{d}");
    let out = m.edgenet(&["status"]);
    assert!(!text(&out).contains("present;"), "{}", text(&out));
    // Deploy names the family of the foreign table it refuses.
    sh(&format!(
        "ip netns exec {} nft delete table ip edgenet_{id}",
        m.ns
    ));
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("nft delete table bridge edgenet_{id}")),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains(&format!("nft delete table ip edgenet_{id}")),
        "{}",
        text(&out)
    );
    sh(&format!(
        "ip netns exec {} nft delete table bridge edgenet_{id}",
        m.ns
    ));
    m.deploy(None);
    assert!(m.drift().is_empty(), "{:?}", m.drift());
    // The host takes a node's address.
    sh(&format!("ip -n {} addr add 192.168.0.2/32 dev lo", m.ns));
    let d = m.drift().join("\n");
    assert!(d.contains("192.168.0.2") && d.contains("lo"), "{d}");
    sh(&format!("ip -n {} addr del 192.168.0.2/32 dev lo", m.ns));
    // The node's MAC changed.
    let node = m.node_namespaces().into_iter().next().unwrap();
    sh(&format!(
        "ip -n {node} link set eth0 address 02:f8:a0:00:00:01"
    ));
    let d = m.drift().join("\n");
    assert!(d.contains("02:f8:a0:00:00:01"), "{d}");
}
