//! A node runs Kubernetes: K3s, flannel or Calico make links of their own inside the node's
//! namespace (`cni0`, `flannel.1`, the pods' veths). The namespace stays the deployment's as
//! long as its `eth0` carries the deployment's mark: `status` sees no drift in them, `deploy`
//! repairs the node around them, `remove` deletes the namespace (the kernel dismantles the
//! pods' links with it). A namespace under the node's name whose `eth0` lacks the mark stays
//! someone else's, pods or not.

mod support;

use serde_json::Value;
use support::*;

fn netns_listed(name: &str) -> bool {
    sh_out("ip netns list")
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// `status --output json`: its exit code and drift.
fn status(m: &Machine) -> (Option<i32>, Vec<String>) {
    let out = m.edgenet(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status json ({e}): {}", text(&out)));
    let drift = v["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (out.status.code(), drift)
}

fn link_names(ns: &str) -> Vec<String> {
    Machine::ip_json_in(ns, "link show")
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// What a CNI (flannel over the bridge plugin) makes inside node namespace `node`: the bridge
/// `cni0` with the pod subnet's gateway, the VXLAN `flannel.1` over `eth0` with a route to
/// another node's pods, and a pod whose veth is a port of `cni0`, its other end in `pod`.
fn run_pods(node: &str, pod: &str) {
    sh(&format!(
        "ip -n {node} link add cni0 type bridge && \
         ip -n {node} addr add 10.42.0.1/24 dev cni0 && ip -n {node} link set cni0 up && \
         ip -n {node} link add flannel.1 type vxlan id 1 dev eth0 dstport 8472 nolearning && \
         ip -n {node} link set flannel.1 up && \
         ip -n {node} addr add 10.42.0.0/32 dev flannel.1 && \
         ip -n {node} route add 10.42.1.0/24 via 10.42.1.0 dev flannel.1 onlink && \
         ip netns add {pod} && \
         ip -n {node} link add vethf1pod type veth peer name eth0 netns {pod} && \
         ip -n {node} link set vethf1pod master cni0 up && \
         ip -n {pod} addr add 10.42.0.5/24 dev eth0 && ip -n {pod} link set eth0 up"
    ));
}

#[test]
fn a_node_running_pods_stays_the_deployments_through_status_deploy_and_remove() {
    let Some(m) = machine("f1-pods") else { return };
    m.deploy(None);
    let node = m.node_namespaces().into_iter().next().unwrap();
    let pod = NsGuard(run_name("f1", "pod"));
    run_pods(&node, &pod.0);
    let inside = link_names(&node);
    for l in ["cni0", "flannel.1", "vethf1pod", "eth0"] {
        assert!(inside.contains(&l.to_string()), "{l} in {inside:?}");
    }

    // No drift for what the node made itself.
    let (code, drift) = status(&m);
    assert_eq!((code, &drift), (Some(0), &Vec::new()), "status with pods");

    // Another drift beside them is seen, and deploy repairs it without touching the pods.
    sh(&format!("ip -n {node} link set eth0 mtu 1400"));
    let (code, drift) = status(&m);
    assert_eq!(code, Some(1), "{drift:?}");
    assert!(
        drift.iter().any(|d| d.contains("MTU")) && !drift.iter().any(|d| d.contains("mark")),
        "{drift:?}"
    );
    let out = m.edgenet(&["deploy", "--output", "json"]);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c.as_str().unwrap().contains("set MTU")),
        "{report}"
    );
    let eth0 = Machine::ip_json_in(&node, "link show eth0");
    assert_ne!(eth0[0]["mtu"], 1400, "MTU repaired: {eth0}");
    assert_eq!(link_names(&node), inside, "the pods' links are untouched");
    assert_eq!(
        ipv4_of(&Machine::ip_json_in(&node, "addr show"), "cni0"),
        vec!["10.42.0.1/24".to_string()]
    );
    let (code, drift) = status(&m);
    assert_eq!(
        (code, &drift),
        (Some(0), &Vec::new()),
        "status after deploy"
    );
    // A redeploy changes nothing.
    assert_eq!(m.deploy(None)["changes"], serde_json::json!([]));

    // remove deletes the node, pods and all, and forgets nothing.
    let out = m.edgenet(&["remove", "--output", "json"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["left"], serde_json::json!([]), "{report}");
    assert!(
        report["removed"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains(&format!("network namespace {node}"))),
        "{report}"
    );
    assert!(!netns_listed(&node), "{node} deleted");
    assert!(!m.state.exists(), "state directory gone");
    // The kernel dismantles the pods' links with the node (in the background).
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        link_names(&pod.0) == ["lo"]
    });
    assert!(
        gone,
        "the pod's veth went with the node: {:?}",
        link_names(&pod.0)
    );
}

#[test]
fn a_namespace_under_the_node_name_with_pods_but_an_unmarked_eth0_stays_foreign() {
    let Some(m) = machine("f1-podf") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let node = m.node_namespaces().into_iter().next().unwrap();
    // Someone else's namespace under the node's name: an eth0 whose peer merely has our
    // veth's name, and a CNI's links beside it.
    sh(&format!(
        "ip -n {ns} link del en{id}l && ip netns del {node} && ip netns add {node} && \
         ip -n {node} link add eth0 type veth peer name en{id}l && \
         ip -n {node} link set en{id}l netns {ns} && ip -n {node} link set eth0 up",
        ns = m.ns
    ));
    let _node_guard = NsGuard(node.clone());
    let pod = NsGuard(run_name("f1", "podf"));
    run_pods(&node, &pod.0);
    let before = link_names(&node);

    let (code, drift) = status(&m);
    assert_eq!(code, Some(1), "{drift:?}");
    assert!(
        drift
            .iter()
            .any(|d| d.contains(&node) && d.contains("does not carry this deployment's mark")),
        "{drift:?}"
    );
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // Refused for the first foreign object it meets: the namespace, or (since B19 D5, in the
    // pre-flight) the unmarked veth under the node link's name beside it.
    let words = text(&out);
    assert!(
        words.contains(&node) || words.contains(&format!("en{id}l")),
        "{words}"
    );
    assert_eq!(link_names(&node), before, "deploy touched it");

    let out = m.edgenet(&["remove", "--output", "json"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["left"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains(&format!("network namespace {node}"))),
        "{report}"
    );
    assert!(netns_listed(&node), "the foreign namespace was deleted");
    assert_eq!(link_names(&node), before);
    sh(&format!("ip -n {} link del en{id}l", m.ns));
}

/// With `state.json` lost, the records are rebuilt from the marks: the node running pods is
/// among them, and remove deletes it.
#[test]
fn a_node_running_pods_is_found_again_when_the_records_are_lost() {
    let Some(m) = machine("f1-podl") else { return };
    m.deploy(None);
    let node = m.node_namespaces().into_iter().next().unwrap();
    let pod = NsGuard(run_name("f1", "podl"));
    run_pods(&node, &pod.0);
    std::fs::remove_file(m.state.join("state.json")).unwrap();
    let out = m.edgenet(&["remove", "--output", "json"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["removed"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains(&format!("network namespace {node}"))),
        "{report}"
    );
    assert!(!report["left"].to_string().contains(&node), "{report}");
    assert!(!netns_listed(&node), "{node} deleted");
}

/// Someone deletes the host end of a node's veth while pods run inside: `eth0` goes with it,
/// leaving the node's marked `lo` beside the pods' links. Still the deployment's node: status
/// says what is missing, deploy gives it a new veth, remove deletes it.
#[test]
fn a_node_running_pods_whose_veth_was_deleted_gets_a_new_one() {
    let Some(m) = machine("f14-podveth") else {
        return;
    };
    m.deploy(None);
    let node = m.node_namespaces().into_iter().next().unwrap();
    let pod = NsGuard(run_name("f14", "pod"));
    run_pods(&node, &pod.0);
    let links = m.ip_json("link show");
    let veth = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["master"] == "aksedgesw-int")
        .expect("the node's veth on the switch")["ifname"]
        .as_str()
        .unwrap()
        .to_string();
    sh(&format!("ip -n {} link del {veth}", m.ns));
    assert!(!link_names(&node).contains(&"eth0".to_string()));

    let (code, drift) = status(&m);
    assert_eq!(code, Some(1), "{drift:?}");
    assert!(!drift.iter().any(|d| d.contains("mark")), "{drift:?}");
    let out = m.edgenet(&["deploy"]);
    assert!(out.status.success(), "deploy: {}", text(&out));
    let eth0 = Machine::ip_json_in(&node, "-d link show eth0");
    assert!(
        eth0[0]["ifalias"]
            .as_str()
            .is_some_and(|a| a.starts_with("edgenet:")),
        "a new, marked eth0: {eth0}"
    );
    assert!(link_names(&node).contains(&"cni0".to_string()));
    assert_eq!(status(&m), (Some(0), Vec::new()));

    let out = m.edgenet(&["remove", "--output", "json"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["left"], serde_json::json!([]), "{report}");
    assert!(!netns_listed(&node), "{node} deleted");
}
