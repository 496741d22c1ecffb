//! Issue 11: the cloud-init NoCloud seed a `vm` node gets, checked by cloud-init itself
//! (Debian's `cloud-init` package): `user-data` by its schema checker (`cloud-init schema
//! --config-file`), `network-config` by cloud-init's own v2 parser (the one a cloud image runs
//! at boot), which must find the MAC, name, MTU, address, default route and DNS servers.
//! edgenet's test guest applies the seed with busybox, not cloud-init: this is what shows a
//! real cloud image would read the same. Without cloud-init installed the test says it skipped.

use std::process::Command;

use edgenet_core::config::load;
use edgenet_core::plan;
use edgenet_core::validate::Context;
use edgenet_deploy::node::seed;
use serde_json::json;

fn have_cloud_init() -> bool {
    Command::new("cloud-init")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn cloud_init_accepts_the_seed_and_reads_the_network_edgenet_planned() {
    if !have_cloud_init() {
        eprintln!("skipped: needs cloud-init (Debian package cloud-init; scripts/deps.sh)");
        return;
    }
    let config = json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {
            "DnsServers": ["198.51.100.7", "198.51.100.8"],
            "Proxy": {"Http": "http://user:pw@198.51.100.9:3128", "Https": "http://198.51.100.9:3128"}
        },
        "Machines": [{"NetworkConnection": {"Mtu": 1400}, "LinuxNode": {"ControlPlane": true}}],
        "Edgenet": {"NodeRuntime": "vm", "VmImage": "/var/lib/images/debian.qcow2"}
    });
    let loaded = load(config.to_string().as_bytes()).expect("config loads");
    let plan = plan::build(&loaded.config, &Context::offline("test", "edge01")).expect("plan");
    let node = &plan.nodes[0];
    let mac = "02:15:5d:0a:0b:0c".parse().unwrap();
    let extra = vec![seed::SeedFile {
        path: "/etc/rancher/k3s/config.yaml".into(),
        content: "node-ip: 192.168.0.2\n".into(),
        mode: 0o600,
        append: false,
    }];
    let s = seed::build(node, mac, 1400, &seed::guest_files(&plan, node, extra));
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in s.files() {
        std::fs::write(dir.path().join(name), content).unwrap();
    }

    let out = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(dir.path().join("user-data"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", s.user_data);
    assert!(text.contains("Valid cloud-config"), "{text}");

    // cloud-init's parser of network-config v2, as the NoCloud datasource hands it over.
    let script = r#"
import json, sys, yaml
from cloudinit.net import network_state
cfg = yaml.safe_load(open(sys.argv[1]))
ns = network_state.parse_net_config_data(cfg, skip_broken=False)
print(json.dumps({"interfaces": list(ns.iter_interfaces()), "dns": ns.dns_nameservers,
                  "routes": list(ns.iter_routes())}, default=str))
"#;
    // Debian's python, the one the cloud-init package installs into.
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(dir.path().join("network-config"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.network_config
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let eth0 = &v["interfaces"][0];
    assert_eq!(eth0["name"], "eth0", "{v:#}");
    assert_eq!(eth0["mac_address"], "02:15:5d:0a:0b:0c", "{v:#}");
    assert_eq!(eth0["mtu"], 1400, "{v:#}");
    let subnet = &eth0["subnets"][0];
    assert_eq!(subnet["type"], "static", "{v:#}");
    assert_eq!(subnet["address"], "192.168.0.2", "{v:#}");
    assert_eq!(subnet["prefix"], 24, "{v:#}");
    let text = v.to_string();
    assert!(text.contains("\"gateway\":\"192.168.0.1\""), "{v:#}");
    assert!(
        text.contains("198.51.100.7") && text.contains("198.51.100.8"),
        "{v:#}"
    );
}
