//! A node's links set down by hand (the host end of its veth, its `lo`, its `eth0`): `status`
//! calls each drift (exit 1) naming the link, `deploy` brings it up and says so in a change
//! line, and the deploy after that has nothing to do.

mod support;

use serde_json::{json, Value};
use support::*;

fn is_up(links: &Value, name: &str) -> bool {
    link(links, name).unwrap()["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP")
}

#[test]
fn a_node_link_set_down_is_drift_and_deploy_says_it_brought_it_up() {
    let Some(m) = machine("f2ld") else { return };
    m.deploy(None);
    let (_, st) = m.status();
    let node = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"].as_str().unwrap().ends_with("-ledge"))
        .unwrap()["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let veth = m
        .ip_json("link show")
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["master"] == "aksedgesw-int" && l["ifname"].as_str().unwrap().ends_with('l'))
        .unwrap()["ifname"]
        .as_str()
        .unwrap()
        .to_string();
    // (Where the link is set down, and where deploy must have brought it up again.)
    let cases = [
        (m.ns.clone(), veth.clone(), veth.clone()),
        (node.clone(), "lo".to_string(), format!("{node}:lo")),
        (node.clone(), "eth0".to_string(), format!("{node}:eth0")),
    ];
    for (ns, dev, named) in &cases {
        sh(&format!("ip -n {ns} link set {dev} down"));
        assert!(!is_up(&Machine::ip_json_in(ns, "link show"), dev));
        let (code, st) = m.status();
        let drift = st["drift"].to_string();
        assert_eq!(code, Some(1), "{dev} down: {st:#}");
        assert!(drift.contains(&format!("{dev} ")), "{dev} down: {drift}");
        assert!(drift.contains("is down"), "{dev} down: {drift}");
        let changes = m.deploy(None)["changes"].clone();
        assert!(
            changes
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == &json!(format!("brought {named} up"))),
            "{dev} down: {changes}"
        );
        assert!(is_up(&Machine::ip_json_in(ns, "link show"), dev), "{dev}");
        assert_eq!(m.deploy(None)["changes"], json!([]), "{dev}: then nothing");
        let (code, st) = m.status();
        assert_eq!(code, Some(0), "{dev}: {st:#}");
    }
}
