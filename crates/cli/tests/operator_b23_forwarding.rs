//! B23 F3, F5: remove puts back forwarding's value from before the deploy (0) when nothing on
//! the host routes: a forward chain that only counts is not a router (F3), nor is a chain that
//! was there while forwarding was off when edgenet turned it on, nor a `DOCKER-USER` chain with
//! no Docker started (F5). Something that does route (an accepting chain that came after, a
//! started Docker) still keeps forwarding on.

mod support;

use support::*;

fn set_forwarding(m: &Machine, value: &str) {
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv4.ip_forward={value}",
        m.ns
    ));
}

/// F3: the admin's accounting chain (policy accept, one `counter` rule), there before the
/// deploy or added after it: remove restores 0.
#[test]
fn a_counting_forward_chain_does_not_keep_forwarding_on() {
    let Some(m) = machine_prefixed("e3", "cnt") else {
        return;
    };
    set_forwarding(&m, "0");
    let admin = |table: &str| {
        sh(&format!(
            "ip netns exec {ns} nft add table inet {table} && \
             ip netns exec {ns} nft add chain inet {table} fw '{{ type filter hook forward priority 10; policy accept; }}' && \
             ip netns exec {ns} nft add rule inet {table} fw counter",
            ns = m.ns
        ))
    };
    admin("e3before");
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    admin("e3after");
    let out = m.ok(&["remove"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "{out}");
    assert!(out.contains("net.ipv4.ip_forward to 0"), "{out}");

    // A chain that accepts, added after the deploy (forwarding on), is a router: left on.
    m.deploy(None);
    sh(&format!(
        "ip netns exec {} nft add rule inet e3after fw iifname lo accept",
        m.ns
    ));
    let out = m.ok(&["remove"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1", "{out}");
    assert!(out.contains("chain fw of table inet e3after"), "{out}");
    set_forwarding(&m, "0");
}

/// F3: a chain that accepts but was there while forwarding was off when the deploy turned it
/// on forwarded nothing: remove restores 0.
#[test]
fn a_forward_chain_that_was_there_while_forwarding_was_off_does_not_keep_it_on() {
    let Some(m) = machine_prefixed("e3", "idle") else {
        return;
    };
    set_forwarding(&m, "0");
    sh(&format!(
        "ip netns exec {ns} nft add table inet e3fw && \
         ip netns exec {ns} nft add chain inet e3fw fw '{{ type filter hook forward priority 10; policy drop; }}' && \
         ip netns exec {ns} nft add rule inet e3fw fw iifname lo accept",
        ns = m.ns
    ));
    // The admin's drop policy is in the way of the switch: the admin lets it through.
    sh(&format!(
        "ip netns exec {ns} nft insert rule inet e3fw fw iifname aksedgesw-int accept && \
         ip netns exec {ns} nft insert rule inet e3fw fw oifname aksedgesw-int accept",
        ns = m.ns
    ));
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    let out = m.ok(&["remove"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "{out}");
}

/// F5: an admin's DOCKER-USER (and FORWARD jumping to it) on a host where Docker has not
/// started, forwarding off: remove restores 0.
#[test]
fn a_docker_user_chain_without_docker_does_not_keep_forwarding_on() {
    let Some(m) = machine_prefixed("e3", "dku") else {
        return;
    };
    if !has_iptables() {
        eprintln!("skipped: needs iptables-nft (scripts/deps.sh installs it)");
        return;
    }
    set_forwarding(&m, "0");
    sh(&format!(
        "ip netns exec {ns} iptables-nft -N DOCKER-USER && \
         ip netns exec {ns} iptables-nft -P FORWARD DROP && \
         ip netns exec {ns} iptables-nft -A FORWARD -j DOCKER-USER && \
         ip netns exec {ns} iptables-nft -A DOCKER-USER -j RETURN",
        ns = m.ns
    ));
    m.deploy(None);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
    let out = m.ok(&["remove"]);
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "0", "{out}");
    assert!(!out.contains("Docker"), "{out}");
}
