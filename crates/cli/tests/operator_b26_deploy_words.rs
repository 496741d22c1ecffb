//! B26 F1 and F8: what `deploy` says on stderr. An interrupted run lists what it changed so
//! far (its report, which lists the changes, is never printed), and a warning is said once
//! however many times the run checks the config.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

/// `edgenet deploy` in `m`'s namespace stopped (`EDGENET_FAILPOINT=<step>:wait`) at `step`,
/// then sent SIGTERM: (its stderr, its stdout). It must end by the signal.
fn deploy_terminated_at(m: &Machine, step: &str) -> (String, String) {
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .arg("deploy")
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env("NO_COLOR", "1")
        .env("EDGENET_FAILPOINT", format!("{step}:wait"))
        .env_remove("EDGENET_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    // Until it waits at the step (it says so first).
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended before the failpoint: {said}"
        );
        said.push_str(&line);
        if line.contains(&format!("failpoint {step}: waiting")) {
            break;
        }
    }
    // nsenter execs edgenet in the same process: the child's pid is edgenet's.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    stderr.read_to_string(&mut said).unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(15), "{status:?}: {said}");
    (said, out)
}

#[test]
fn an_interrupted_deploy_lists_what_it_changed_so_far() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine_prefixed("p26", "int") else {
        return;
    };
    let (said, out) = deploy_terminated_at(&m, "node-netns");
    assert!(
        said.contains("deploy interrupted by SIGTERM part-way"),
        "{said}"
    );
    assert!(out.is_empty(), "{out}");
    // The switch was made before the nodes: said, and there in the kernel.
    let changed: Vec<&str> = said
        .lines()
        .filter_map(|l| l.strip_prefix("  changed: "))
        .collect();
    let bridge = changed
        .iter()
        .find_map(|c| c.strip_prefix("created bridge "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no bridge said: {said}"));
    let links = m.ip_json("link show");
    assert!(link(&links, bridge).is_some(), "{bridge}: {links:#}");
    // Each change once, after the message.
    let mut unique = changed.clone();
    unique.dedup();
    assert_eq!(unique, changed, "{said}");
    let at = said.find("deploy interrupted").unwrap();
    assert!(said.find("  changed: ").unwrap() > at, "{said}");
    // The next deploy converges; remove cleans (the machine's drop).
    m.deploy(None);
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
}

#[test]
fn a_deploy_interrupted_before_its_first_change_says_it_told_none() {
    if !failpoints() {
        return;
    }
    let Some(m) = machine_prefixed("p26", "int0") else {
        return;
    };
    let before = m.ip_json("link show");
    let (said, _) = deploy_terminated_at(&m, "state");
    assert!(
        said.contains("deploy interrupted by SIGTERM part-way"),
        "{said}"
    );
    assert!(
        said.contains("  changed: nothing it could tell yet"),
        "{said}"
    );
    assert!(said.contains("edgenet status"), "{said}");
    assert_eq!(said.matches("  changed: ").count(), 1, "{said}");
    // Indeed nothing in the kernel.
    assert_eq!(m.ip_json("link show"), before);
}

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
