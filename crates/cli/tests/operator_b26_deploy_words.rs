//! B26 F1 and F8: what `deploy` says on stderr. An interrupted run lists what it changed so
//! far (its report, which lists the changes, is never printed), and a warning is said once
//! however many times the run checks the config.

mod support;

use serde_json::{json, Value};
use support::*;

/// A scalable VM config whose gateway does not answer ARP: a `vm` deploy checks the config
/// twice (again under the lock), and said `gateway-silent` twice.
#[test]
fn a_warning_is_said_once_by_a_deploy_that_checks_twice() {
    if !failpoints() {
        return;
    }
    let Some(image) = guest_image() else { return };
    let Some(m) = machine_prefixed("p26", "warn") else {
        return;
    };
    // The adapter on a LAN where nothing answers (no gateway there).
    let lan = NsGuard::create(&format!("{}-lan", m.ns));
    sh(&format!(
        "ip -n {l} link add lan0 type bridge && ip -n {l} link set lan0 up && \
         ip -n {l} link add m0 type veth peer name up0 netns {ns} && ip -n {l} link set m0 master lan0 up && \
         ip -n {ns} link set up0 up && ip -n {ns} addr add 198.18.0.11/24 dev up0",
        l = lan.name(),
        ns = m.ns
    ));
    let mut config = site_config("up0");
    config["Machines"][0]["LinuxNode"]["CpuCount"] = json!(1);
    config["Machines"][0]["LinuxNode"]["MemoryInMB"] = json!(256);
    config["Machines"][0]["LinuxNode"]["DataSizeInGB"] = json!(3);
    config["Edgenet"] = json!({
        "NodeRuntime": "vm",
        "VmImage": image.join("disk.qcow2"),
        "VmKernel": image.join("vmlinuz"),
        "VmInitrd": image.join("initrd.img"),
    });
    let cfg = m.write_config("site.json", &config);
    let before = (m.ip_json("link show"), m.node_namespaces());
    // Stopped at its first step (rolled back): the checks have run, nothing stays.
    let out = m.edgenet_env(&["deploy", "-c", &cfg], &[("EDGENET_FAILPOINT", "state")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("failpoint state was hit"), "{stderr}");
    assert_eq!(
        stderr.matches("warning[gateway-silent]").count(),
        1,
        "{stderr}"
    );
    assert_eq!((m.ip_json("link show"), m.node_namespaces()), before);
    // JSON lists it once too.
    let out = m.edgenet_env(
        &["deploy", "-c", &cfg, "-o", "json"],
        &[("EDGENET_FAILPOINT", "state")],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warned = v["result"]["warnings"]
        .as_array()
        .or_else(|| v["warnings"].as_array())
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        warned
            .iter()
            .filter(|w| w["code"] == "gateway-silent")
            .count(),
        1,
        "{v:#}"
    );
}
