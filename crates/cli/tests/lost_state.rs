//! A deployment whose records are lost while its objects are still in the kernel: `state.json`
//! emptied, deleted or zeroed beside a good `identity.json` (the records are rebuilt from the
//! objects' marks: status shows them, remove deletes them, a deploy records them again), or the
//! whole state directory gone (status names the objects as leftovers with their delete command).

mod support;

use support::*;

fn lose_state_json(m: &Machine, how: &str) {
    let path = m.state.join("state.json");
    match how {
        "empty" => std::fs::write(&path, b"").unwrap(),
        "nul" => std::fs::write(&path, vec![0u8; 512]).unwrap(),
        "missing" => std::fs::remove_file(&path).unwrap(),
        _ => unreachable!(),
    }
}

fn our_links(m: &Machine, id: &str) -> Vec<String> {
    m.ip_json("-d link show")
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["ifalias"].as_str() == Some(&format!("edgenet:{id}")))
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

fn tables(m: &Machine) -> Vec<String> {
    m.nft_json()["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("table"))
        .map(|t| {
            format!(
                "{} {}",
                t["family"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Remove after the loss deletes every object and says ip_forward is left (its value before
/// edgenet went with the records); nothing else differs from before the deploy.
fn remove_deletes_everything(m: &Machine, id: &str, before: &serde_json::Value, how: &str) {
    let out = m.ok(&["remove", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["left"]
            .to_string()
            .contains("net.ipv4.ip_forward at 1"),
        "{how}: remove says forwarding is left: {report}"
    );
    assert_eq!(our_links(m, id), Vec::<String>::new(), "{how}");
    assert!(
        !tables(m)
            .iter()
            .any(|t| t.contains(&format!("edgenet_{id}"))),
        "{how}: {:?}",
        tables(m)
    );
    assert_eq!(m.node_namespaces(), Vec::<String>::new(), "{how}");
    assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1", "{how}: left as it is");
    sh(&format!(
        "ip netns exec {} sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'",
        m.ns
    ));
    assert_eq!(&m.dump(), before, "{how}");
}

#[test]
fn lost_records_are_rebuilt_for_status_and_remove() {
    for how in ["empty", "nul", "missing"] {
        let Some(m) = machine(&format!("f12a-l{}", &how[..2])) else {
            return;
        };
        let before = m.dump();
        let id = m.deploy(None)["deployment_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(m.sysctl("net.ipv4.ip_forward"), "1");
        lose_state_json(&m, how);

        let out = m.edgenet(&["status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("Nothing deployed"), "{how}: {text}");
        assert!(text.contains(&format!("Deployment {id}")), "{how}: {text}");
        assert!(text.contains("rebuilt"), "{how}: {text}");
        assert!(text.contains("bridge aksedgesw-int"), "{how}: {text}");
        assert!(text.contains(&format!("edgenet_{id}")), "{how}: {text}");

        remove_deletes_everything(&m, &id, &before, how);
    }
}

#[test]
fn a_deploy_over_lost_records_records_what_it_finds() {
    let Some(m) = machine("f12a-ld") else { return };
    let before = m.dump();
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    lose_state_json(&m, "empty");
    let again = m.deploy(None);
    assert_eq!(again["deployment_id"], id.as_str());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.state.join("state.json")).unwrap())
            .unwrap();
    let recorded = state["objects"].to_string();
    for name in [
        "aksedgesw-int".to_string(),
        format!("edgenet_{id}"),
        format!("bridge edgenet_{id}"),
    ] {
        assert!(
            recorded.contains(&format!("\"{name}\"")),
            "{name}: {recorded}"
        );
    }
    for ns in m.node_namespaces() {
        assert!(recorded.contains(&format!("\"{ns}\"")), "{ns}: {recorded}");
    }
    remove_deletes_everything(&m, &id, &before, "deploy first");
}

/// The state directory deleted as a whole: status names what is left, with the commands.
#[test]
fn status_without_a_state_directory_lists_the_leftovers() {
    let Some(m) = machine("f12a-lg") else { return };
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let node = m.linux_node_namespace();
    std::fs::remove_dir_all(&m.state).unwrap();
    let out = m.edgenet(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("Nothing deployed"), "{text}");
    assert!(text.contains("ip link del aksedgesw-int"), "{text}");
    assert!(
        text.contains(&format!("nft delete table ip edgenet_{id}")),
        "{text}"
    );
    // B19 D4: its node namespace and the forwarding it turned on are named too.
    assert!(text.contains(&format!("ip netns del {node}")), "{text}");
    assert!(text.contains("sysctl -w net.ipv4.ip_forward=0"), "{text}");
    // The machine's namespace goes with the test, the node namespaces by their id.
}

/// What a deploy killed before its first record leaves (`config.json` and the lock, no
/// records), or what an earlier edgenet's remove leaves after a deploy by this one
/// (`config.json`): `remove` takes it and the directory, as after any complete remove (it said
/// "Nothing to remove" and kept the file, which holds the whole cluster config), and says so
/// (`-o json`: `leftover_files`); with nothing left, "Nothing to remove" as before.
#[test]
fn remove_takes_a_config_file_left_without_records() {
    let Some(m) = machine("l15cj") else { return };
    m.deploy(None);
    let config = std::fs::read(m.state.join("config.json")).expect("deploy keeps config.json");
    m.ok(&["remove"]);
    assert!(!m.state.exists());
    std::fs::create_dir_all(&m.state).unwrap();
    std::fs::write(m.state.join("config.json"), &config).unwrap();
    std::fs::write(m.state.join("lock"), b"").unwrap();
    let (code, st) = {
        let out = m.edgenet(&["status", "-o", "json"]);
        (
            out.status.code(),
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(code, Some(0), "{st:#}");
    assert_eq!(st["deployed"], false, "{st:#}");
    let said = m.ok(&["remove"]);
    // Said as what it did (it said "Nothing to remove" while it deleted them), on one line.
    assert!(!said.contains("Nothing to remove"), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("Removed the state files an interrupted deploy left")
            && said.contains(&m.state.display().to_string())
            && said.contains("config.json"),
        "{said}"
    );
    assert!(
        !m.state.exists(),
        "left: {:?}",
        std::fs::read_dir(&m.state)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    );
    // The same in JSON, exit 0; then nothing left: "Nothing to remove".
    std::fs::create_dir_all(&m.state).unwrap();
    std::fs::write(m.state.join("config.json"), &config).unwrap();
    let out = m.edgenet(&["-o", "json", "remove"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["found"], false, "{report:#}");
    assert_eq!(
        report["leftover_files"],
        serde_json::json!([m.state.join("config.json").display().to_string()]),
        "{report:#}"
    );
    assert!(!m.state.exists());
    let said = m.ok(&["remove"]);
    assert!(said.contains("Nothing to remove"), "{said}");
}

/// A `config.json` in the state directory that is valid JSON but not the deployment's config
/// (another file copied over it, an empty object, another deployment type, a bare
/// `{"DeploymentType": "ScalableCluster"}`, another cluster's config of the same type, this
/// cluster's with another address for this machine's node): `scale-config` says what a missing
/// or damaged one gets — `no-config`, naming the file, what differs and the fix — not what the
/// cluster would lack ("not a ScalableCluster") nor a config made from another cluster. The
/// cluster's config with a machine added since still serves.
#[test]
fn scale_config_over_a_config_file_that_is_not_a_config_is_no_config() {
    let Some(lan) = lan("x16sc", 1) else { return };
    let m = &lan.machines[0];
    let cfg = m.write_config("c.json", &site_config("eth0"));
    m.deploy(Some(&cfg));
    let file = m.state.join("config.json");
    let scale = || {
        let out = m.edgenet(&[
            "scale-config",
            "--linux-node-ip",
            "198.18.0.102",
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), v)
    };
    let (code, v) = scale();
    assert_eq!(code, Some(0), "the deployment's own config serves: {v:#}");
    let own = std::fs::read(&file).unwrap();
    let own_json: serde_json::Value = serde_json::from_slice(&own).unwrap();
    // Another cluster on the same LAN: its own endpoint and machines.
    let mut another = own_json.clone();
    another["Network"]["ControlPlaneEndpointIp"] = "198.18.0.150".into();
    another["Machines"][0]["LinuxNode"]["Ip4Address"] = "198.18.0.151".into();
    let another = another.to_string();
    // This cluster's config, but this machine's node elsewhere.
    let mut moved = own_json.clone();
    moved["Machines"][0]["LinuxNode"]["Ip4Address"] = "198.18.0.111".into();
    let moved = moved.to_string();
    for (other, says) in [
        (r#"{"hello": "world"}"#, ""),
        (r#"[1, 2]"#, ""),
        (r#""text""#, ""),
        (r#"{}"#, ""),
        (
            r#"{"DeploymentType": "SingleMachineCluster"}"#,
            "SingleMachineCluster config",
        ),
        (
            r#"{"DeploymentType": "ScalableCluster"}"#,
            "Network.ControlPlaneEndpointIp is missing, the deployment's control-plane endpoint is 198.18.0.100",
        ),
        (
            another.as_str(),
            "Network.ControlPlaneEndpointIp is 198.18.0.150, the deployment's control-plane endpoint 198.18.0.100",
        ),
        (
            moved.as_str(),
            "Machines[0].LinuxNode.Ip4Address is 198.18.0.111, the deployment's Linux node 198.18.0.101",
        ),
    ] {
        std::fs::write(&file, other).unwrap();
        let (code, v) = scale();
        assert_eq!(code, Some(2), "{other}: {v:#}");
        assert_eq!(v["error"]["code"], "no-config", "{other}: {v:#}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&file.display().to_string()),
            "{other}: {message}"
        );
        assert!(message.contains(says), "{other}: {message}");
        assert!(!message.contains("ScalableCluster:"), "{other}: {message}");
        assert!(
            v["error"]["hint"].as_str().unwrap().contains("-c FILE"),
            "{other}: {v:#}"
        );
    }
    // The cluster's config with a machine added since (written by hand after a scale-config):
    // still this deployment's.
    let mut grown = own_json.clone();
    grown["Machines"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "MachineName": "m1",
            "NetworkConnection": {"AdapterName": "eth0", "Mtu": 0},
            "LinuxNode": {"Ip4Address": "198.18.0.103", "ControlPlane": false},
        }));
    std::fs::write(&file, grown.to_string()).unwrap();
    let (code, v) = scale();
    assert_eq!(code, Some(0), "{v:#}");
    std::fs::write(&file, own).unwrap();
    assert_eq!(scale().0, Some(0));
}

/// What a deploy could change, without IPv6's link-local addresses and routes (the kernel adds
/// them on its own for a while after links come up): links, IPv4 addresses and routes,
/// nftables, node namespaces, forwarding, the state directory's files.
fn ipv4_dump(m: &Machine) -> serde_json::Value {
    let links: Vec<serde_json::Value> = m
        .ip_json("-d link show")
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::json!([
                l["ifname"],
                l["flags"],
                l["ifalias"],
                l["address"],
                l["mtu"]
            ])
        })
        .collect();
    serde_json::json!({
        "links": links,
        "addresses": m.ip_json("-4 addr show"),
        "routes": m.ip_json("-4 route show table all"),
        "nft": tables(m),
        "netns": m.node_namespaces(),
        "ip_forward": m.sysctl("net.ipv4.ip_forward"),
        // Without the ruleset cache, which a refused run drops (the next run reads the kernel).
        "state_files": sh_out(&format!(
            "ls -la --time-style=+ {} | grep -v -e ' ruleset-cache.json$' -e '^total '",
            m.state.display()
        )),
    })
}

/// Something that is not a regular file in the place of `config.json` or `identity.json` (a
/// directory, a FIFO, a link to an endless device; B17a 5): status still reports (a notice
/// naming it), plain deploy refuses before any change (`no-config`, exit 2, for the config;
/// `state`, exit 3, for the identity), and remove works from `state.json`: every object gone,
/// the FIFO or link deleted itself (its target untouched), a directory left and said.
#[test]
fn an_odd_config_or_identity_file_does_not_stop_status_or_remove() {
    for (i, (name, how)) in [
        ("config.json", "dir"),
        ("config.json", "fifo"),
        ("config.json", "link"),
        ("identity.json", "dir"),
        ("identity.json", "link"),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(m) = machine(&format!("o18odd{i}")) else {
            return;
        };
        let case = format!("{name} as {how}");
        m.deploy(None);
        let id = m.state_id().unwrap();
        let path = m.state.join(name);
        std::fs::remove_file(&path).unwrap();
        match how {
            "dir" => {
                std::fs::create_dir(&path).unwrap();
                std::fs::write(path.join("keep"), "x").unwrap();
            }
            "fifo" => sh(&format!("mkfifo {}", path.display())),
            _ => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
        }
        let out = m.edgenet(&["status", "-o", "json"]);
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{case}: {st:#}");
        // The odd file is warned about once per command, however often the state is read.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.matches("read as missing").count() <= 1,
            "{case}: {stderr}"
        );
        assert!(
            st["notices"]
                .to_string()
                .contains(&path.display().to_string()),
            "{case}: {st:#}"
        );
        let before = ipv4_dump(&m);
        let out = m.edgenet(&["deploy", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (exit, code) = if name == "config.json" {
            (2, "no-config")
        } else {
            (3, "state")
        };
        assert_eq!(out.status.code(), Some(exit), "{case}: {v:#}");
        assert_eq!(v["error"]["code"], code, "{case}: {v:#}");
        assert!(
            v["error"]["message"]
                .to_string()
                .contains(&path.display().to_string()),
            "{case}: {v:#}"
        );
        assert_eq!(ipv4_dump(&m), before, "{case}: nothing changed");
        // With -c the config is the operator's, but it cannot be recorded: `state`, exit 3.
        let c = m.write_config("c.json", &serde_json::json!({}));
        let out = m.edgenet(&["deploy", "-o", "json", "-c", &c]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(3), "{case}: {v:#}");
        assert_eq!(v["error"]["code"], "state", "{case}: {v:#}");
        assert_eq!(ipv4_dump(&m), before, "{case}: nothing changed");

        let out = m.edgenet(&["remove", "-o", "json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{case}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(our_links(&m, &id), Vec::<String>::new(), "{case}");
        assert!(
            !tables(&m)
                .iter()
                .any(|t| t.contains(&format!("edgenet_{id}"))),
            "{case}: {:?}",
            tables(&m)
        );
        assert_eq!(m.node_namespaces(), Vec::<String>::new(), "{case}");
        if how == "dir" {
            // Not edgenet's: left with what it holds, and said.
            assert!(path.join("keep").is_file(), "{case}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(&format!("left {}", path.display())),
                "{case}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert!(!m.state.exists(), "{case}: the state directory is gone");
        }
        assert!(
            std::fs::metadata("/dev/zero").is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_char_device()
            }),
            "{case}"
        );
    }
}

/// The recorded `config.json` edited in a Windows editor (a UTF-8 BOM and a `//` comment, or
/// saved as UTF-16 with a BOM; B17a 7) is read as `-c` reads a file: a plain deploy applies it
/// again (`source: recorded`), not `no-config`.
#[test]
fn a_recorded_config_with_a_bom_comments_or_utf16_is_applied_again() {
    let Some(m) = machine("o18bom") else { return };
    m.deploy(None);
    let file = m.state.join("config.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let bom_comment = format!(
        "\u{feff}// edited on Windows\r\n{}",
        text.replace('\n', "\r\n")
    );
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    for (case, bytes) in [
        ("BOM + comment", bom_comment.into_bytes()),
        ("UTF-16", utf16),
    ] {
        std::fs::write(&file, bytes).unwrap();
        let out = m.edgenet(&["deploy", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{case}: {v:#}");
        assert_eq!(v["source"], "recorded", "{case}: {v:#}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("WARN"),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A first deploy that never completed leaves `config.json` (written before anything else)
/// and maybe `identity.json` (B17a 8): a plain deploy then applies that config (`source:
/// recorded`), as README says, whether `identity.json` is missing, empty or valid — not the
/// built-in default in some of the cases.
#[test]
fn a_plain_deploy_after_an_interrupted_first_deploy_applies_its_config() {
    let Some(m) = machine("o18first") else { return };
    let mut c1: serde_json::Value =
        serde_json::from_str(&m.ok(&["config", "new"])).expect("config new prints JSON");
    c1["Network"]["Ip4AddressPrefix"] = "192.168.77.0/24".into();
    let c1_path = m.dir.path().join("c1.json");
    std::fs::write(&c1_path, c1.to_string()).unwrap();
    m.deploy(Some(c1_path.to_str().unwrap()));
    let config = std::fs::read(m.state.join("config.json")).unwrap();
    let identity = std::fs::read(m.state.join("identity.json")).unwrap();
    m.ok(&["remove"]);
    for (case, identity) in [
        ("lock only", None),
        ("empty identity.json", Some(&b""[..])),
        ("valid identity.json", Some(&identity[..])),
    ] {
        std::fs::create_dir_all(&m.state).unwrap();
        std::fs::write(m.state.join("config.json"), &config).unwrap();
        std::fs::write(m.state.join("lock"), b"").unwrap();
        if let Some(bytes) = identity {
            std::fs::write(m.state.join("identity.json"), bytes).unwrap();
        }
        let v = m.deploy(None);
        assert_eq!(v["source"], "recorded", "{case}: {v:#}");
        let bridge = m.ip_json("addr show");
        assert!(
            bridge.to_string().contains("\"192.168.77.1\""),
            "{case}: the switch has c1's subnet: {bridge:#}"
        );
        m.ok(&["remove"]);
    }
}
