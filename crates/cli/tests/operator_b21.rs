//! Defects of the black-box operator test B21 on a scalable site: a machine whose adapter `up0`
//! (198.18.0.11/24, default via 198.18.0.1) is a veth into a LAN namespace. Namespaces are
//! named `p21-…`.

mod support;

use serde_json::{json, Value};
use support::*;

const BRIDGE: &str = "aksedgesw-ext";

struct Site {
    m: Machine,
    lan: String,
    cfg: String,
    _lan: AdapterLan,
}

impl Site {
    fn new(tag: &str) -> Option<Site> {
        let m = machine_prefixed("p21", tag)?;
        let net = adapter_lan(&m, false);
        let lan = net.lan.0.clone();
        let cfg = m.write_config("c.json", &site_config("up0"));
        Some(Site {
            m,
            lan,
            cfg,
            _lan: net,
        })
    }

    fn ip(&self, args: &str) {
        sh(&format!("ip -n {} {args}", self.m.ns));
    }

    fn default_routes(&self) -> Vec<Value> {
        self.m
            .ip_json("route show default")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// N1: the unit written without `-c` over a recorded scalable deployment waits for its
/// adapter as the unit written with `-c` does; and the boot deploy of a deployment whose
/// adapter is not there yet exits 3, which the unit retries (exit 1 it does not).
#[test]
fn the_boot_unit_without_c_waits_for_the_adapter_and_a_late_adapter_is_retried() {
    let Some(s) = Site::new("n1") else { return };
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    let with_c = s.m.ok(&["install-unit", "--print", "-c", &s.cfg]);
    let without_c = s.m.ok(&["install-unit", "--print"]);
    let wait = |unit: &str| {
        unit.lines()
            .find(|l| l.starts_with("ExecStartPre="))
            .map(String::from)
    };
    assert!(
        wait(&with_c).is_some_and(|l| l.contains(" edgenet-adapter-wait up0 ")),
        "{with_c}"
    );
    assert_eq!(wait(&without_c), wait(&with_c), "{without_c}");
    assert!(without_c.contains("\nRestartPreventExitStatus=1 2\n"));

    // A reboot with the adapter not there yet: the switch and nodes gone, up0 elsewhere.
    for ns in s.m.node_namespaces() {
        sh(&format!("ip netns del {ns}"));
    }
    s.ip(&format!("link del {BRIDGE}"));
    sh(&format!("ip netns exec {} nft flush ruleset", s.m.ns));
    s.ip(&format!("link set up0 netns {}", s.lan));
    let out = s.m.edgenet(&["deploy", "--wait", "5"]);
    assert_eq!(out.status.code(), Some(3), "{}", described(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("adapter-missing"), "{err}");
    let json = s.m.edgenet(&["deploy", "-o", "json"]);
    assert_eq!(json.status.code(), Some(3), "{}", described(&json));
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["error"]["code"], "adapter-not-there", "{v}");
    // The adapter comes: the retry deploys.
    sh(&format!(
        "ip -n {} link set up0 netns {} && ip -n {} link set up0 up",
        s.lan, s.m.ns, s.m.ns
    ));
    s.m.ok(&["deploy", "-q"]);
    // A config naming an adapter this deployment never had is the config's mistake: exit 1.
    let mut other: Value = serde_json::from_str(&std::fs::read_to_string(&s.cfg).unwrap()).unwrap();
    other["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("Ethernet");
    let other = s.m.write_config("other.json", &other);
    let out = s.m.edgenet(&["deploy", "-c", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", described(&out));
    s.m.ok(&["remove"]);
}

/// The adapter of an exit-3 `adapter-not-there` refusal: what a boot deploy prints while the
/// adapter is late (reboot: the switch, nodes and tables gone; the adapter `name` moved into
/// the LAN namespace), then the adapter back under `name`.
fn late_adapter(s: &Site, name: &str, args: &[&str]) -> std::process::Output {
    for ns in s.m.node_namespaces() {
        sh(&format!("ip netns del {ns}"));
    }
    // (Gone already when the deploy before was refused.)
    sh(&format!(
        "ip -n {} link del {BRIDGE} 2>/dev/null; true",
        s.m.ns
    ));
    sh(&format!("ip netns exec {} nft flush ruleset", s.m.ns));
    s.ip(&format!("link set {name} netns {}", s.lan));
    let out = s.m.edgenet(args);
    sh(&format!(
        "ip -n {} link set {name} netns {} && ip -n {} link set {name} up",
        s.lan, s.m.ns, s.m.ns
    ));
    out
}

/// B21 nit: the exit-3 refusal of a late adapter says that deploy is retried until the adapter
/// is there (and how to change the config when it was renamed), not check's "name one of this
/// host's wired adapters", which is the fix of a config naming a wrong adapter.
#[test]
fn a_late_adapters_refusal_says_it_is_retried_not_to_name_another_adapter() {
    let Some(s) = Site::new("n10h") else { return };
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    let out = late_adapter(&s, "up0", &["deploy", "--wait", "5"]);
    assert_eq!(out.status.code(), Some(3), "{}", described(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("adapter-missing"), "{err}");
    assert!(!err.contains("wired adapters"), "{err}");
    assert!(err.contains("retries"), "{err}");
    assert!(err.contains("NetworkConnection.AdapterName"), "{err}");
    // JSON: the error's hint is the one fix.
    let out = late_adapter(&s, "up0", &["deploy", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "adapter-not-there", "{v}");
    assert!(!v.to_string().contains("wired adapters"), "{v}");
    assert!(
        v["error"]["hint"].as_str().unwrap().contains("retries"),
        "{v}"
    );
    s.m.ok(&["deploy", "-q"]);
    s.m.ok(&["remove"]);
}

/// B21 nit: the adapter renamed while deployed, deploy following it by its MAC (its record
/// has the new name; the recorded config still gives the old one), and then late at a boot:
/// exit 3 `adapter-not-there` like any recorded adapter not there yet (the boot unit retries),
/// not exit 1 (a config naming an adapter the deployment never had).
#[test]
fn a_followed_rename_then_a_late_adapter_is_exit_3_and_retried() {
    let Some(s) = Site::new("n10r") else { return };
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    s.ip("link set up0 down");
    s.ip("link set up0 name enp7s0");
    s.ip("link set enp7s0 up");
    s.m.ok(&["deploy", "-q"]);
    for args in [
        &["deploy", "--wait", "5"][..],
        &["deploy", "--wait", "5", "-c", &s.cfg],
    ] {
        let out = late_adapter(&s, "enp7s0", args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", described(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("adapter-missing"), "{err}");
        assert!(err.contains("enp7s0"), "the name it had last: {err}");
        let out = late_adapter(&s, "enp7s0", &["deploy", "-o", "json"]);
        assert_eq!(out.status.code(), Some(3), "{}", described(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "adapter-not-there", "{v}");
        // The adapter back: the retry deploys, on it.
        s.m.ok(&["deploy", "-q"]);
        let port = s.m.ip_json("link show enp7s0");
        assert_eq!(port[0]["master"], BRIDGE, "{port}");
    }
    // A name neither the deployment's adapter nor its recorded config ever had: exit 1.
    let mut other = site_config("eth9");
    other["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("eth9");
    let other = s.m.write_config("other.json", &other);
    let out = s.m.edgenet(&["deploy", "-c", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", described(&out));
    s.m.ok(&["remove"]);
}

/// N2: a default route on the bridge with another metric (a new router, a DHCP client's
/// `metric 100`) is the newer one: no drift, and deploy adds no second default route.
#[test]
fn a_default_route_of_another_metric_on_the_bridge_is_not_drift_nor_put_back() {
    let Some(s) = Site::new("n2") else { return };
    s.m.ok(&["deploy", "-c", &s.cfg, "-q"]);
    assert_eq!(s.default_routes().len(), 1, "{:?}", s.default_routes());
    s.ip("route del default");
    s.ip(&format!(
        "route add default via 198.18.0.254 dev {BRIDGE} metric 100"
    ));
    let out = s.m.edgenet(&["status"]);
    assert!(out.status.success(), "no drift: {}", described(&out));
    s.m.ok(&["deploy", "-q"]);
    let routes = s.default_routes();
    assert_eq!(routes.len(), 1, "no second default route: {routes:?}");
    assert_eq!(routes[0]["gateway"], "198.18.0.254", "{routes:?}");
    // A DHCP client's route via the same gateway, metric 100.
    s.ip("route del default");
    s.ip(&format!(
        "route add default via 198.18.0.1 dev {BRIDGE} proto dhcp metric 100"
    ));
    let out = s.m.edgenet(&["status"]);
    assert!(out.status.success(), "no drift: {}", described(&out));
    s.m.ok(&["deploy", "-q"]);
    assert_eq!(s.default_routes().len(), 1, "{:?}", s.default_routes());
    // No default route left on the bridge at all: that is drift, and deploy puts it back.
    s.ip("route del default");
    let out = s.m.edgenet(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", described(&out));
    s.m.ok(&["deploy", "-q"]);
    let routes = s.default_routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["gateway"], "198.18.0.1", "{routes:?}");
    s.m.ok(&["remove"]);
}

/// N5: a whole second deployment in the namespace (its own state directory) is named once as
/// beside this one, with no delete command, by check, deploy and status; once part of it is
/// gone, its parts are leftovers pointing at `remove --orphan`.
#[test]
fn a_whole_deployment_beside_is_named_once_and_its_parts_are_leftovers() {
    let Some(m) = machine_prefixed("p21", "n5") else {
        return;
    };
    m.deploy(None);
    let state_b = m.dir.path().join("state-b");
    let b_env = [("EDGENET_STATE_DIR", state_b.to_str().unwrap())];
    let cb = m.write_config("b.json", &json!({"Edgenet": {"SwitchName": "p21sw-b"}}));
    struct RemoveB<'a>(&'a Machine, [(&'a str, &'a str); 1]);
    impl Drop for RemoveB<'_> {
        fn drop(&mut self) {
            let _ = self.0.edgenet_env(&["remove", "--wait", "5"], &self.1);
        }
    }
    let out = m.edgenet_env(&["deploy", "-c", &cb], &b_env);
    assert!(out.status.success(), "{}", described(&out));
    let _b = RemoveB(&m, b_env);
    let destructive = [
        "ip link del",
        "ip netns del",
        "nft delete",
        "sysctl -w",
        "--orphan",
    ];

    let out = m.edgenet(&["check", "-o", "json"]);
    assert!(out.status.success(), "{}", described(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings: Vec<&Value> = v["findings"].as_array().unwrap().iter().collect();
    assert!(
        !findings.iter().any(|f| f["code"] == "leftover-objects"),
        "{v:#}"
    );
    let beside: Vec<&&Value> = findings
        .iter()
        .filter(|f| f["code"] == "another-deployment")
        .collect();
    assert_eq!(beside.len(), 1, "{v:#}");
    assert_eq!(beside[0]["severity"], "notice", "{v:#}");
    let said = beside[0]["message"].as_str().unwrap();
    assert!(
        said.contains("beside this one") && said.contains("p21sw-b"),
        "{said}"
    );
    assert!(!destructive.iter().any(|d| said.contains(d)), "{said}");

    let out = m.edgenet(&["deploy", "-c", &m.default_config()]);
    assert!(out.status.success(), "{}", described(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!destructive.iter().any(|d| err.contains(d)), "{err}");

    let status = |m: &Machine| -> Vec<String> {
        let out = m.edgenet(&["status", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["notices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let notices = status(&m);
    let about_b: Vec<&String> = notices.iter().filter(|n| n.contains("p21sw-b")).collect();
    assert_eq!(about_b.len(), 1, "{notices:#?}");
    assert!(
        about_b[0].contains("beside this one") && about_b[0].contains("its own `edgenet remove`"),
        "{about_b:?}"
    );
    assert!(
        !notices
            .iter()
            .any(|n| destructive.iter().any(|d| n.contains(d))),
        "{notices:#?}"
    );

    // Its tables gone: what is left of it is leftovers, pointing at `remove --orphan`.
    let id_b: Value =
        serde_json::from_str(&std::fs::read_to_string(state_b.join("state.json")).unwrap())
            .unwrap();
    let id_b = id_b["deployment_id"].as_str().unwrap().to_string();
    for line in sh_out(&format!("ip netns exec {} nft list tables", m.ns)).lines() {
        if line.ends_with(&format!("edgenet_{id_b}")) {
            sh(&format!(
                "ip netns exec {} nft delete {}",
                m.ns,
                line.trim()
            ));
        }
    }
    let notices = status(&m);
    assert!(
        notices
            .iter()
            .any(|n| n.contains("p21sw-b") && n.contains(&format!("remove --orphan {id_b}"))),
        "{notices:#?}"
    );
    assert!(
        !notices.iter().any(|n| n.contains("beside this one:")),
        "{notices:#?}"
    );
}

/// N7: command-line mistakes exit 2 (README's table), with the envelope under -o json.
#[test]
fn scale_config_without_a_node_ip_is_a_usage_error() {
    let cluster = fixture_path("aksee-scalable-first.json");
    for json in [false, true] {
        let mut args = vec!["-c", cluster.as_str(), "scale-config"];
        if json {
            args.extend(["-o", "json"]);
        }
        let (out, _dir) = run_in_temp(&args);
        assert_eq!(out.status.code(), Some(2), "{}", described(&out));
        if json {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["error"]["code"], "invalid-arguments", "{v:#}");
            assert_eq!(v["exit"], 2, "{v:#}");
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("--linux-node-ip"), "{err}");
        }
    }
    let (out, _dir) = run_in_temp(&[
        "-c",
        &cluster,
        "scale-config",
        "--windows-node-ip",
        "192.168.1.180",
        "--control-plane",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", described(&out));
}

#[test]
fn render_with_a_malformed_token_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("tok");
    // A K3s-style token where kubeadm needs `[a-z0-9]{6}.[a-z0-9]{16}`.
    std::fs::write(&token, "K10abcdef::server:0123456789abcdef\n").unwrap();
    let cfg = fixture_path("k8s-calico.json");
    let token = token.to_str().unwrap();
    for json in [false, true] {
        let mut args = vec![
            "-c",
            cfg.as_str(),
            "render",
            "--from-config",
            "--token-file",
            token,
            "kubeadm",
        ];
        if json {
            args.extend(["-o", "json"]);
        }
        let (out, _dir) = run_in_temp(&args);
        assert_eq!(out.status.code(), Some(2), "{}", described(&out));
        if json {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["error"]["code"], "invalid-token", "{v:#}");
            assert_eq!(v["exit"], 2, "{v:#}");
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("kubeadm bootstrap token"), "{err}");
        }
    }
}
