//! Scalable clusters on a simulated LAN: the external switch bound to each machine's adapter,
//! nodes directly on the LAN, and the adapter given back exactly as it was.

mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

fn config(machines: usize) -> Value {
    let list: Vec<Value> = (0..machines)
        .map(|i| {
            json!({
                "MachineName": format!("m{i}"),
                "NetworkConnection": {"AdapterName": "eth0", "Mtu": 0},
                "LinuxNode": {"Ip4Address": format!("198.18.0.{}", 101 + i), "ControlPlane": i == 0},
                "WindowsNode": {"Ip4Address": format!("198.18.0.{}", 151 + i)},
            })
        })
        .collect();
    json!({
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 10},
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
        "Machines": list,
    })
}

fn deploy(m: &Machine, cfg: &str, machine: usize) -> Value {
    serde_json::from_str(&m.ok(&[
        "deploy",
        "-c",
        cfg,
        "--machine",
        &machine.to_string(),
        "--output",
        "json",
    ]))
    .unwrap()
}

#[test]
fn three_machines_every_node_reaches_every_node_the_gateway_and_the_lan() {
    let Some(lan) = lan("three", 3) else { return };
    let cfg = lan.machines[0].write_config("c.json", &config(3));
    for (i, m) in lan.machines.iter().enumerate() {
        deploy(m, &cfg, i);
    }
    let mut nodes = Vec::new();
    for m in &lan.machines {
        let status: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
        assert_eq!(status["drift"], json!([]), "{status:#}");
        for n in status["nodes"].as_array().unwrap() {
            nodes.push((
                n["netns"].as_str().unwrap().to_string(),
                n["addresses"][0]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_string(),
            ));
        }
    }
    assert_eq!(nodes.len(), 6);
    for (ns, _) in &nodes {
        assert!(ping_from(ns, "198.18.0.1"), "{ns} → gateway");
        for (_, other) in &nodes {
            assert!(ping_from(ns, other), "{ns} → {other}");
        }
    }
    for (_, ip) in &nodes {
        assert!(ping_from(&lan.peer_ns(), ip), "LAN host → {ip}");
    }
    // Drift is seen in the kernel: an adapter taken out of the switch by hand.
    let m0 = &lan.machines[0];
    sh(&format!("ip -n {} link set eth0 nomaster", m0.ns));
    let status: Value =
        serde_json::from_slice(&m0.edgenet(&["status", "--output", "json"]).stdout).unwrap();
    assert!(
        status["drift"]
            .to_string()
            .contains("adapter eth0 is not a port of aksedgesw-ext"),
        "{status:#}"
    );
    sh(&format!(
        "ip -n {} link set eth0 master aksedgesw-ext",
        m0.ns
    ));
    // Each machine itself stays reachable on its own address, now on the bridge.
    for (i, m) in lan.machines.iter().enumerate() {
        assert!(ping_from(&lan.peer_ns(), &Lan::machine_address(i)));
        assert_eq!(
            ipv4_of(&m.ip_json("addr show"), "aksedgesw-ext"),
            vec![format!("{}/24", Lan::machine_address(i))]
        );
        assert_eq!(
            link(&m.ip_json("link show"), "eth0").unwrap()["master"],
            "aksedgesw-ext"
        );
    }
}

/// Pings `target` from `ns` every 50 ms while `during` runs; returns (sent, lost).
fn ping_during(ns: &str, target: &str, during: impl FnOnce()) -> (usize, usize) {
    let child = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-i", "0.05", "-W", "1", "-c", "60", target,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    during();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("{text}"));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[0], nums[0] - nums[1])
}

#[test]
fn the_machine_stays_reachable_during_deploy_and_remove_and_gets_its_adapter_back() {
    let Some(lan) = lan("ping", 1) else { return };
    let m = &lan.machines[0];
    let before = adapter_snapshot(&m.ns, "eth0");
    let cfg = m.write_config("c.json", &config(1));
    let (sent, lost) = ping_during(&lan.peer_ns(), &Lan::machine_address(0), || {
        deploy(m, &cfg, 0);
    });
    assert!(lost <= 1, "deploy: {lost} of {sent} replies lost");
    let (sent, lost) = ping_during(&lan.peer_ns(), &Lan::machine_address(0), || {
        m.ok(&["remove"]);
    });
    assert!(lost <= 1, "remove: {lost} of {sent} replies lost");
    assert_eq!(
        adapter_snapshot(&m.ns, "eth0"),
        before,
        "the adapter is as it was"
    );
    assert!(bridges(&m.ns).is_empty(), "no bridge left");
}

#[test]
fn a_failure_after_any_external_step_leaves_the_adapter_as_it_was() {
    if !failpoints() {
        return;
    }
    let Some(lan) = lan("fault", 1) else { return };
    let m = &lan.machines[0];
    let before = adapter_snapshot(&m.ns, "eth0");
    let dump = m.dump();
    let cfg = m.write_config("c.json", &config(1));
    for step in edgenet_deploy::failpoint::steps(true) {
        let out = m.edgenet_env(
            &["deploy", "-c", &cfg, "--machine", "0"],
            &[("EDGENET_FAILPOINT", step)],
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            adapter_snapshot(&m.ns, "eth0"),
            before,
            "after a failure at {step}"
        );
        assert!(
            bridges(&m.ns).is_empty(),
            "{step}: the half-built bridge is gone"
        );
        assert!(
            ping_from(&lan.peer_ns(), &Lan::machine_address(0)),
            "{step}: still reachable"
        );
        // And after a crash at that step, the next deploy converges and remove restores.
        let out = m.edgenet_env(
            &["deploy", "-c", &cfg, "--machine", "0"],
            &[("EDGENET_FAILPOINT", &format!("{step}:crash"))],
        );
        assert!(!out.status.success());
        deploy(m, &cfg, 0);
        // A LAN host that knew 198.18.0.101 from the previous round (another MAC) was told at
        // once by the node's announcement: its neighbour entry already has the new MAC.
        let status: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
        let node_mac = status["nodes"][0]["mac"].as_str().unwrap().to_string();
        let neigh = Machine::ip_json_in(&lan.peer_ns(), "neigh show 198.18.0.101");
        if let Some(entry) = neigh.as_array().and_then(|a| a.first()) {
            assert_eq!(
                entry["lladdr"],
                node_mac.as_str(),
                "{step}: the LAN host's cache was updated"
            );
        }
        let reachable = ping_from(&lan.peer_ns(), "198.18.0.101");
        assert!(reachable, "{step}: node reachable after converging");
        m.ok(&["remove"]);
        assert_eq!(
            adapter_snapshot(&m.ns, "eth0"),
            before,
            "remove after a crash at {step}"
        );
        assert_eq!(m.dump(), dump, "zero residue after a crash at {step}");
    }
}

#[test]
fn a_bridge_the_user_made_is_used_and_never_deleted() {
    let Some(lan) = lan("userbr", 1) else { return };
    let m = &lan.machines[0];
    let ns = &m.ns;
    sh(&format!(
        "ip -n {ns} link add aksedgesw-ext type bridge && ip -n {ns} link set aksedgesw-ext up && \
         ip -n {ns} addr del 198.18.0.11/24 dev eth0 && ip -n {ns} link set eth0 master aksedgesw-ext && \
         ip -n {ns} addr add 198.18.0.11/24 dev aksedgesw-ext && ip -n {ns} route add default via 198.18.0.1"
    ));
    let before = m.dump();
    let cfg = m.write_config("c.json", &config(1));
    deploy(m, &cfg, 0);
    assert!(ping_from(&lan.peer_ns(), "198.18.0.101"));
    // Used as it is: no bridge of edgenet's, and the user's bridge carries no edgenet mark.
    assert_eq!(bridges(ns), vec!["aksedgesw-ext"]);
    assert_eq!(
        link(&m.ip_json("link show"), "aksedgesw-ext").unwrap()["ifalias"],
        Value::Null
    );
    m.ok(&["remove"]);
    assert_eq!(
        bridges(ns),
        vec!["aksedgesw-ext"],
        "the user's bridge stays"
    );
    assert_eq!(m.dump(), before, "and nothing else is left");
}

#[test]
fn adapter_problems_are_clear_errors_and_change_nothing() {
    let Some(lan) = lan("adapter", 1) else { return };
    let m = &lan.machines[0];
    let ns = &m.ns;
    let before = m.dump();
    let run = |v: &Value| {
        let cfg = m.write_config("bad.json", v);
        let out = m.edgenet(&["deploy", "-c", &cfg, "--machine", "0"]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut missing = config(1);
    missing["Machines"][0]["NetworkConnection"]["AdapterName"] = json!("enp9s0");
    let (code, err) = run(&missing);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("adapter-missing") && err.contains("enp9s0"),
        "{err}"
    );

    sh(&format!(
        "ip -n {ns} link add other0 type bridge && ip -n {ns} link set eth0 master other0"
    ));
    let (code, err) = run(&config(1));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("adapter-enslaved") && err.contains("other0"),
        "{err}"
    );
    sh(&format!("ip -n {ns} link set eth0 nomaster && ip -n {ns} link del other0 && ip -n {ns} route replace default via 198.18.0.1"));

    sh(&format!("ip -n {ns} link set eth0 down"));
    let (code, err) = run(&config(1));
    assert_eq!(code, Some(1));
    assert!(err.contains("adapter-down"), "{err}");
    sh(&format!(
        "ip -n {ns} link set eth0 up && ip -n {ns} route replace default via 198.18.0.1"
    ));

    let mut mtu = config(1);
    mtu["Machines"][0]["NetworkConnection"]["Mtu"] = json!(9000);
    let (code, err) = run(&mtu);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("mtu-above-adapter") && err.contains("1500"),
        "{err}"
    );
    assert_eq!(m.dump(), before, "nothing changed");
}

#[test]
fn the_default_mtu_is_the_adapters() {
    let Some(lan) = lan("mtu", 1) else { return };
    let m = &lan.machines[0];
    sh(&format!("ip -n {} link set eth0 mtu 1400", m.ns));
    let cfg = m.write_config("c.json", &config(1));
    deploy(m, &cfg, 0);
    let links = m.ip_json("link show");
    assert_eq!(link(&links, "aksedgesw-ext").unwrap()["mtu"], 1400);
    for veth in links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["master"] == "aksedgesw-ext")
    {
        assert_eq!(veth["mtu"], 1400, "{}", veth["ifname"]);
    }
    let status: Value = serde_json::from_str(&m.ok(&["status", "--output", "json"])).unwrap();
    for n in status["nodes"].as_array().unwrap() {
        assert_eq!(n["mtu"], 1400);
    }
}

#[test]
fn an_address_someone_on_the_lan_answers_for_is_refused_naming_the_mac() {
    let Some(lan) = lan("probe", 1) else { return };
    let m = &lan.machines[0];
    let peer = lan.peer_ns();
    let peer_mac = link(&Machine::ip_json_in(&peer, "link show"), "eth0").unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let before = m.dump();
    let cfg = m.write_config("c.json", &config(1));
    for (taken, path) in [
        ("198.18.0.101", "Machines[0].LinuxNode.Ip4Address"),
        ("198.18.0.100", "Network.ControlPlaneEndpointIp"),
        ("198.18.0.205", "Init.ServiceIPRangeStart"),
    ] {
        sh(&format!("ip -n {peer} addr add {taken}/32 dev eth0"));
        let checked = m.edgenet(&["check", "-c", &cfg, "--machine", "0", "--output", "json"]);
        assert_eq!(checked.status.code(), Some(1), "{taken}");
        let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
        let findings = &report["findings"];
        let hit = findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "address-in-use" && f["path"] == path);
        let hit = hit.unwrap_or_else(|| panic!("{taken}: {findings:#}"));
        assert!(
            hit["message"].as_str().unwrap().contains(&peer_mac)
                && hit["message"].as_str().unwrap().contains(taken)
        );
        let out = m.edgenet(&["deploy", "-c", &cfg, "--machine", "0"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("address-in-use"));
        assert_eq!(m.dump(), before, "nothing changed ({taken})");
        sh(&format!("ip -n {peer} addr del {taken}/32 dev eth0"));
    }
    // With the check skipped, deploy proceeds (the node then shares the address: the user's call).
    sh(&format!("ip -n {peer} addr add 198.18.0.205/32 dev eth0"));
    let mut skip = config(1);
    skip["Network"]["SkipAddressFreeCheck"] = json!(true);
    let cfg = m.write_config("skip.json", &skip);
    deploy(m, &cfg, 0);
    // And a second deploy of the clean config is not refused by the machine's own nodes.
    sh(&format!("ip -n {peer} addr del 198.18.0.205/32 dev eth0"));
    let cfg = m.write_config("c.json", &config(1));
    let again = deploy(m, &cfg, 0);
    assert_eq!(
        again["changes"],
        json!([]),
        "the node already matched: nothing to change"
    );
}

/// `deploy` without `-c` on a machine whose deployment is recorded applies that deployment
/// again (its config from the state directory, its machine index and name), as an operator
/// re-running `edgenet deploy` after a reboot expects — not the built-in single-machine
/// default, which took the adapter back from the external switch and made an internal one.
/// It says so (`source` "recorded" in JSON, the file in text); `-c` always wins, and becomes
/// the recorded config; with the config gone it refuses (`no-config`) and changes nothing;
/// after `remove` (nothing recorded) the built-in default is deployed.
#[test]
fn deploy_without_c_applies_the_recorded_deployment_again() {
    let Some(lan) = lan("x17rc", 1) else { return };
    let m = &lan.machines[0];
    let adapter_before = adapter_snapshot(&m.ns, "eth0");
    let cfg = m.write_config("c.json", &config(2));
    let first = deploy(m, &cfg, 1);
    assert_eq!(first["source"], cfg.as_str(), "{first:#}");
    let switch = first["plan"]["switch"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let on_switch =
        |m: &Machine| link(&m.ip_json("link show"), "eth0").unwrap()["master"] == switch.as_str();
    assert!(on_switch(m));

    // Again, without -c: the same plan (machine 1 of 2, the external switch), nothing to do.
    let again = m.deploy(None);
    assert_eq!(again["source"], "recorded", "{again:#}");
    assert_eq!(again["plan"], first["plan"], "{again:#}");
    assert_eq!(again["changes"], json!([]), "{again:#}");
    assert!(on_switch(m));
    let text = m.ok(&["deploy"]);
    let file = m.state.join("config.json");
    assert!(
        text.contains(&format!(
            "config: the deployment's, recorded in {}",
            file.display()
        )),
        "{text}"
    );

    // `render` without -c renders the recorded deployment, machine 1 included, with no notice
    // that "the config" (once the built-in default) differs or that --from-config would help
    // (B18a D8); --from-config renders the same.
    for extra in [&[][..], &["--from-config"][..]] {
        let mut args = vec!["render", "k3s-config", "--node", "linux"];
        args.extend(extra);
        let out = m.edgenet(&args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("198.18.0.102"), "{extra:?}: {stdout}");
        assert!(
            !stderr.contains("differs") && !stderr.contains("from-config"),
            "{extra:?}: {stderr}"
        );
    }

    // As after a reboot: the node namespaces gone. Made again from the recorded deployment.
    for ns in m.node_namespaces() {
        sh(&format!("ip netns del {ns}"));
    }
    let rebuilt = m.deploy(None);
    assert_eq!(rebuilt["plan"], first["plan"], "{rebuilt:#}");
    assert_ne!(rebuilt["changes"], json!([]), "{rebuilt:#}");
    assert!(on_switch(m));
    assert_eq!(m.edgenet(&["status"]).status.code(), Some(0));
    assert!(ping_from(&lan.peer_ns(), "198.18.0.102"));

    // -c wins (machine 1 without its Windows node), and is what is recorded from then on.
    let mut changed = config(2);
    changed["Machines"][1]
        .as_object_mut()
        .unwrap()
        .remove("WindowsNode");
    let changed_cfg = m.write_config("changed.json", &changed);
    let v = deploy(m, &changed_cfg, 1);
    assert_eq!(v["source"], changed_cfg.as_str());
    assert_eq!(v["plan"]["nodes"].as_array().unwrap().len(), 1, "{v:#}");
    let v = m.deploy(None);
    assert_eq!(v["source"], "recorded");
    assert_eq!(v["changes"], json!([]), "{v:#}");
    assert_eq!(v["plan"]["nodes"].as_array().unwrap().len(), 1, "{v:#}");

    // The recorded config gone: refused, naming the file and the fix; nothing changed.
    let kept = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let dump = m.dump();
    let out = m.edgenet(&["deploy", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{v:#}");
    assert_eq!(v["error"]["code"], "no-config", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&file.display().to_string()),
        "{v:#}"
    );
    assert!(
        v["error"]["hint"].as_str().unwrap().contains("-c FILE"),
        "{v:#}"
    );
    assert_eq!(m.dump(), dump, "a refused deploy changes nothing");
    // render refuses too, rather than render the built-in default (a single machine creating
    // a cluster) for this scalable machine (B18b 2).
    let out = m.edgenet(&["render", "k3s-config", "--node", "linux", "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no-config"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(&file, kept).unwrap();

    // Nothing recorded: the built-in default.
    m.ok(&["remove"]);
    assert_eq!(adapter_snapshot(&m.ns, "eth0"), adapter_before);
    let v = m.deploy(None);
    assert_eq!(v["source"], "built-in default", "{v:#}");
    assert_eq!(v["plan"]["switch"]["kind"], "internal", "{v:#}");
    m.ok(&["remove"]);
}

/// The names in directory `dir`.
fn listing(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// B24 F7: a first deploy records the config it is about to apply (`config.json`) before it
/// probes the LAN, the longest wait before its first record. Killed there, a plain `deploy`
/// applies that config — the external switch — not the built-in default. Refused there (the
/// probe's failpoint as an error; an address another device answers for) it leaves nothing:
/// no state directory, or the `config.json` an earlier killed run left, byte for byte.
#[test]
fn a_first_deploy_killed_during_the_probe_has_recorded_its_config() {
    if !failpoints() {
        return;
    }
    let Some(lan) = lan("f25pk", 1) else { return };
    let m = &lan.machines[0];
    let peer = lan.peer_ns();
    let before = m.dump();
    let cfg = m.write_config("c.json", &config(1));
    let args = ["deploy", "-c", &cfg, "--machine", "0"];

    // Refused: at the probe, and by what the probe found. Nothing left.
    let out = m.edgenet_env(&args, &[("EDGENET_FAILPOINT", "probe")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!m.state.exists(), "{:?}", listing(&m.state));
    sh(&format!("ip -n {peer} addr add 198.18.0.101/32 dev eth0"));
    let out = m.edgenet(&args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("address-in-use"));
    assert!(!m.state.exists(), "{:?}", listing(&m.state));
    assert_eq!(m.dump(), before);
    sh(&format!("ip -n {peer} addr del 198.18.0.101/32 dev eth0"));

    // Killed at the probe: nothing in the kernel, the config recorded.
    let out = m.edgenet_env(&args, &[("EDGENET_FAILPOINT", "probe:crash")]);
    assert!(!out.status.success(), "{out:?}");
    let recorded = std::fs::read(m.state.join("config.json")).expect("config.json recorded");
    assert_eq!(
        serde_json::from_slice::<Value>(&recorded).unwrap(),
        config(1)
    );
    let killed = m.dump();
    assert_eq!(killed["links"], before["links"]);
    assert_eq!(killed["netns"], before["netns"]);

    // Another config refused over it leaves it as it was.
    let mut other = config(1);
    other["Machines"][0]["LinuxNode"]["Ip4Address"] = json!("198.18.0.121");
    let other_cfg = m.write_config("other.json", &other);
    sh(&format!("ip -n {peer} addr add 198.18.0.121/32 dev eth0"));
    let out = m.edgenet(&["deploy", "-c", &other_cfg, "--machine", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    sh(&format!("ip -n {peer} addr del 198.18.0.121/32 dev eth0"));
    assert_eq!(m.dump(), killed);
    assert_eq!(
        std::fs::read(m.state.join("config.json")).unwrap(),
        recorded
    );

    // The plain re-run applies the recorded config: the external switch on eth0.
    let again = m.deploy(None);
    assert_eq!(again["source"], "recorded", "{again:#}");
    let switch = again["plan"]["switch"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        link(&m.ip_json("link show"), "eth0").unwrap()["master"],
        switch.as_str()
    );
    assert!(
        again["plan"]["nodes"]
            .to_string()
            .contains("\"198.18.0.101"),
        "{again:#}"
    );
    m.ok(&["remove"]);
    assert!(!m.state.exists());
}

/// B25 F1: the machine choice of a first deploy killed during the probe goes with its early
/// record (`machine.json` beside `config.json`): a plain `deploy` then deploys the same machine
/// of a multi-machine config, under the same machine name, instead of refusing ("choose this
/// host's with --machine N"). A refusal over it leaves both files byte for byte.
#[test]
fn a_first_deploy_killed_during_the_probe_keeps_its_machine_choice() {
    if !failpoints() {
        return;
    }
    let Some(lan) = lan("x25mc", 1) else { return };
    let m = &lan.machines[0];
    let peer = lan.peer_ns();
    let cfg = m.write_config("c.json", &config(3));
    let args = [
        "deploy",
        "-c",
        &cfg,
        "--machine",
        "1",
        "--machine-name",
        "x25mc",
    ];

    // Refused at the probe: nothing left.
    let out = m.edgenet_env(&args, &[("EDGENET_FAILPOINT", "probe")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!m.state.exists(), "{:?}", listing(&m.state));

    // Killed at the probe: the config and the machine choice recorded.
    let out = m.edgenet_env(&args, &[("EDGENET_FAILPOINT", "probe:crash")]);
    assert!(!out.status.success(), "{out:?}");
    let config_bytes = std::fs::read(m.state.join("config.json")).expect("config.json");
    // (Read as an option: without it, the plain re-run below is what fails, refused.)
    let machine_bytes = std::fs::read(m.state.join("machine.json")).ok();
    assert!(machine_bytes.is_some(), "{:?}", listing(&m.state));

    // Another machine refused over it (its address is taken) leaves both as they were.
    sh(&format!("ip -n {peer} addr add 198.18.0.103/32 dev eth0"));
    let out = m.edgenet(&["deploy", "-c", &cfg, "--machine", "2"]);
    sh(&format!("ip -n {peer} addr del 198.18.0.103/32 dev eth0"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        std::fs::read(m.state.join("config.json")).unwrap(),
        config_bytes
    );
    assert_eq!(
        std::fs::read(m.state.join("machine.json")).ok(),
        machine_bytes
    );

    // The plain re-run deploys machine 1, named x25mc: its Linux node has machine 1's address.
    let again = m.deploy(None);
    assert_eq!(again["source"], "recorded", "{again:#}");
    let node = m.linux_node_namespace();
    assert!(node.starts_with("x25mc-"), "{node}");
    assert_eq!(
        ipv4_of(&Machine::ip_json_in(&node, "addr show"), "eth0"),
        vec!["198.18.0.102/24".to_string()]
    );
    // The records name the machine from here: `machine.json` is gone.
    assert!(!m.state.join("machine.json").exists());
    m.ok(&["remove"]);
    assert!(!m.state.exists(), "{:?}", listing(&m.state));
}
