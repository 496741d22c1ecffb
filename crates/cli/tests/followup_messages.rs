//! Issue 8 follow-ups, the smaller ones: files holding a secret are root's only, scale-config
//! refuses this machine's own address, check warns about repeated DNS servers and keeps long
//! names short, deploy reports the modes it fixes, hints never say to delete another tool's
//! interface.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use support::*;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn cluster() -> Value {
    json!({
        "DeploymentType": "ScalableCluster",
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1",
            "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"],
            "Proxy": {"Http": "http://bob:f8aPw0rd@198.18.0.9:3128"}},
        "Machines": [{"MachineName": "m0", "NetworkConnection": {"AdapterName": "eth0"},
            "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true}}],
    })
}

#[test]
fn scale_config_refuses_this_machines_address_and_keeps_a_proxy_password_private() {
    let Some(lan) = lan("f8asc", 1) else { return };
    let m = &lan.machines[0];
    let cfg = m.write_config("c.json", &cluster());
    let own = Lan::machine_address(0);
    let out = m.edgenet(&["scale-config", "-c", &cfg, "--linux-node-ip", &own]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("an address of this machine") && text(&out).contains(&own),
        "{}",
        text(&out)
    );
    let file = m.dir.path().join("new.json");
    let f = file.display().to_string();
    let out = m.edgenet(&[
        "scale-config",
        "-c",
        &cfg,
        "--linux-node-ip",
        "198.18.0.102",
        "-f",
        &f,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::read_to_string(&file).unwrap().contains("f8aPw0rd"));
    assert_eq!(mode(&file), 0o600);
    // Overwritten with --force: still private.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = m.edgenet(&[
        "scale-config",
        "-c",
        &cfg,
        "--linux-node-ip",
        "198.18.0.102",
        "-f",
        &f,
        "--force",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&file), 0o600);
    // Without a password the file is an ordinary config.
    let mut plain = cluster();
    plain["Network"]["Proxy"] = json!({"Http": "http://198.18.0.9:3128"});
    let plain = m.write_config("p.json", &plain);
    let file2 = m.dir.path().join("plain.json");
    let out = m.edgenet(&[
        "scale-config",
        "-c",
        &plain,
        "--linux-node-ip",
        "198.18.0.102",
        "-f",
        &file2.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // A joining machine's config is always private: its Join section is where the join
    // token goes.
    assert_eq!(mode(&file2), 0o600);
}

#[test]
fn check_warns_about_a_repeated_dns_server_and_shortens_a_long_adapter_name() {
    let Some(m) = machine("f8adns") else { return };
    let cfg = m.write_config(
        "c.json",
        &json!({"Network": {"DnsServers": ["198.51.100.7", "198.51.100.8", "198.51.100.7"]},
                "Machines": [{"LinuxNode": {}}]}),
    );
    let out = m.edgenet(&["check", "-c", &cfg]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("warning[dns-duplicate] Network.DnsServers[2]")
            && t.contains("Network.DnsServers[0]"),
        "{t}"
    );
    let long = "x".repeat(5000);
    let mut c = cluster();
    c["Network"]["Proxy"] = json!({});
    c["Machines"][0]["NetworkConnection"]["AdapterName"] = json!(long);
    let cfg = m.write_config("long.json", &c);
    let out = m.edgenet(&["check", "-c", &cfg, "--machine", "0"]);
    let t = text(&out);
    assert!(
        !t.contains(&"x".repeat(200)),
        "a 5000-character name printed in full: {} chars",
        t.len()
    );
}

#[test]
fn deploy_reports_the_modes_it_tightens() {
    let Some(m) = machine("f8amode") else { return };
    let cfg = m.write_config(
        "c.json",
        &json!({"Network": {"DnsServers": ["198.51.100.7"], "Proxy": {"Http": "http://bob:pw@198.51.100.9:3128"}},
                "Machines": [{"LinuxNode": {}}]}),
    );
    m.deploy(Some(&cfg));
    let node_dir = std::fs::read_dir(m.state.join("nodes"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let again = m.deploy(Some(&cfg));
    assert_eq!(again["changes"], json!([]));
    std::fs::set_permissions(
        node_dir.join("proxy.env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&node_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fixed = m.deploy(Some(&cfg));
    let changes = fixed["changes"].to_string();
    assert!(
        changes.contains("set mode 0600") && changes.contains("proxy.env"),
        "{changes}"
    );
    assert!(
        changes.contains("set mode 0700") && changes.contains("(was 0755)"),
        "{changes}"
    );
    assert_eq!(mode(&node_dir.join("proxy.env")), 0o600);
    assert_eq!(mode(&node_dir), 0o700);
}

#[test]
fn status_of_a_scalable_machine_has_no_ip_table_to_miss_and_names_the_bridge_table() {
    let Some(lan) = lan("f8asst", 1) else { return };
    let m = &lan.machines[0];
    let mut c = cluster();
    c["Network"]["Proxy"] = json!({});
    let cfg = m.write_config("c.json", &c);
    m.ok(&["deploy", "-c", &cfg]);
    let id = m.state_id().unwrap();
    let t = m.ok(&["status"]);
    assert!(!t.contains(&format!("ip edgenet_{id} absent")), "{t}");
    assert!(t.contains(&format!("bridge edgenet_{id} present")), "{t}");
}
