//! A user's rule in Docker's `DOCKER-USER` that names the switch and drops its traffic, there
//! *before* the first deploy: `check` says it is an error and the first deploy refuses it
//! (exit 1) before changing anything, as later deploys refuse such a rule above edgenet's
//! accepts (it used to end up below the accepts the first deploy inserted at the top).
//! Namespaces are named `c3-…`.

mod support;

use serde_json::{json, Value};
use support::*;

#[test]
fn a_docker_user_rule_naming_the_switch_is_refused_by_a_first_deploy_too() {
    if !is_root() || !has_iptables() {
        eprintln!("skipped: needs root and iptables-nft");
        return;
    }
    let Some(m) = machine_prefixed("c3", "du1") else {
        return;
    };
    let ns = m.ns.clone();
    sh(&format!(
        "ip netns exec {ns} sh -c 'iptables-nft -N DOCKER-USER && iptables-nft -P FORWARD DROP && \
         iptables-nft -A FORWARD -j DOCKER-USER && iptables-nft -A DOCKER-USER -j RETURN && \
         iptables-nft -I DOCKER-USER -i c3sw1 ! -s 10.0.0.0/8 -j DROP'"
    ));
    let cfg = m.write_config(
        "c.json",
        &json!({"Network": {"SkipDnsCheck": true}, "Edgenet": {"SwitchName": "c3sw1", "MachineName": "c3du1"}}),
    );
    let rules = || sh_out(&format!("ip netns exec {ns} iptables-nft -S DOCKER-USER"));
    let snapshot = || {
        (
            m.nft_json(),
            m.ip_json("link"),
            m.ip_json("addr"),
            m.ip_json("route"),
            m.sysctl("net.ipv4.ip_forward"),
        )
    };
    let (rules_before, before) = (rules(), snapshot());
    let user_rule = "-A DOCKER-USER ! -s 10.0.0.0/8 -i c3sw1 -j DROP";

    let check = m.edgenet(&["check", "-c", &cfg, "-o", "json"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let v: Value = serde_json::from_slice(&check.stdout).unwrap();
    let errors: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "host-firewall-drops" && f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{v}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "`{user_rule}` (rule 1 of DOCKER-USER) applies to c3sw1's traffic too"
        )),
        "{message}"
    );

    let deploy = m.edgenet(&["deploy", "-c", &cfg]);
    let err = String::from_utf8_lossy(&deploy.stderr);
    assert_eq!(deploy.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        err.contains(message),
        "deploy and check say the same:\n{err}"
    );
    // Nothing changed: the chain (no accept of edgenet's above the user's rule), the
    // ruleset, links, addresses, routes, forwarding; no deployment recorded.
    let rules_after = rules();
    assert_eq!(rules_before, rules_after);
    assert_eq!(rules_after.lines().nth(1), Some(user_rule), "{rules_after}");
    assert!(before == snapshot(), "deploy changed the namespace");
    assert!(m.state_id().is_none());

    // Deleted, the first deploy goes through and puts its accepts in.
    sh(&format!(
        "ip netns exec {ns} iptables-nft -D DOCKER-USER -i c3sw1 ! -s 10.0.0.0/8 -j DROP"
    ));
    m.ok(&["deploy", "-c", &cfg]);
    assert!(rules().contains("-i c3sw1 -m comment"), "{}", rules());
}
