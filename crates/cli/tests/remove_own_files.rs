//! `remove` deletes only what edgenet can tell is its own in a state directory (B26 F6): its
//! file names with what it writes under them, its `nodes/` and `vm/` layout, directories once
//! empty — never a recursive delete. What else is there stays and is named in `left`. And
//! `remove --orphan` names the QEMU of the orphan's VM it does not stop (B26 F9).

mod support;

use std::path::Path;

use support::*;

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// B26 F6's reproduction: a directory that never held a deployment (a mistyped `--state-dir`)
/// with a `vm/` of disk images, a `nodes/` of web files and a `config.json` that is no config
/// edgenet recorded: remove deletes nothing of them, names each in `left`, exit 0 and "Nothing
/// to remove". Beside them, what edgenet does write there (the accelerator probe's cache, a
/// `machine.json` of a killed first deploy) goes and is listed in `leftover_files`.
#[test]
fn remove_without_a_deployment_leaves_what_edgenet_did_not_write() {
    let Some(m) = machine("w26f6") else { return };
    let s = &m.state;
    std::fs::create_dir_all(s.join("vm/guest1")).unwrap();
    std::fs::create_dir_all(s.join("nodes/web")).unwrap();
    std::fs::write(s.join("vm/guest1/disk.qcow2"), "data\n").unwrap();
    std::fs::write(s.join("nodes/web/index.html"), "x\n").unwrap();
    std::fs::write(s.join("config.json"), "y\n").unwrap();
    std::fs::write(s.join("mynotes.txt"), "mine\n").unwrap();
    std::fs::write(s.join("vm/accel"), "tcg").unwrap();
    std::fs::write(s.join("machine.json"), r#"{"machine":0}"#).unwrap();
    let foreign = [
        "config.json",
        "mynotes.txt",
        "nodes",
        "nodes/web",
        "nodes/web/index.html",
        "vm",
        "vm/guest1",
        "vm/guest1/disk.qcow2",
    ];

    let out = m.edgenet(&["remove", "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["found"], false, "{report:#}");
    assert_eq!(files_under(s), foreign, "{report:#}");
    assert_eq!(
        report["leftover_files"],
        serde_json::json!([
            s.join("machine.json").display().to_string(),
            s.join("vm/accel").display().to_string()
        ]),
        "{report:#}"
    );
    let left = report["left"].to_string();
    for named in [
        "config.json: not a config as a deploy records it",
        "index.html",
        "guest1/",
        "mynotes.txt",
    ] {
        assert!(left.contains(named), "{named}: {report:#}");
    }

    // In text: nothing removed, what is left named.
    let out = m.edgenet(&["remove"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("Nothing to remove"), "{said}");
    assert!(!said.contains("Removed the state files"), "{said}");
    assert!(
        said.contains("left ") && said.contains("index.html"),
        "{said}"
    );
    assert_eq!(files_under(s), foreign, "{said}");
}

/// B27 F2: without a deployment, a one-line JSON `config.json` of another tool stays (named);
/// one of deployment-config sections, as a killed first deploy records it, goes.
#[test]
fn remove_without_a_deployment_deletes_only_a_config_json_edgenet_could_have_recorded() {
    let Some(m) = machine("b27f2") else { return };
    let config = m.state.join("config.json");
    std::fs::create_dir_all(&m.state).unwrap();
    std::fs::write(
        &config,
        "{\"name\":\"my-npm-project\",\"version\":\"1.0.0\"}\n",
    )
    .unwrap();
    let out = m.edgenet(&["remove", "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(config.exists(), "{report:#}");
    assert!(
        report["left"].to_string().contains("config.json"),
        "{report:#}"
    );
    std::fs::write(
        &config,
        "{\"DeploymentType\":\"SingleMachineCluster\",\"Network\":{}}\n",
    )
    .unwrap();
    let out = m.edgenet(&["remove", "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(!config.exists(), "{report:#}");
    assert!(
        report["leftover_files"].to_string().contains("config.json"),
        "{report:#}"
    );
}

/// A real deployment's `remove`: a file someone put in a node's directory (`nodes/<node>/`)
/// and a directory beside the nodes' stay, named in `left`; the node's own files go, the
/// deployment is removed (exit 0).
#[test]
fn remove_of_a_deployment_leaves_a_foreign_file_in_its_node_directory() {
    let Some(m) = machine("w26f6d") else { return };
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let nodes = m.state.join("nodes");
    let node = std::fs::read_dir(&nodes)
        .unwrap()
        .flatten()
        .next()
        .expect("a node directory")
        .path();
    assert!(node.join("hosts").exists());
    std::fs::write(node.join("notes.txt"), "mine\n").unwrap();
    std::fs::create_dir_all(nodes.join("web")).unwrap();
    std::fs::write(nodes.join("web/index.html"), "x\n").unwrap();
    // B27 F5: and a file in the state directory itself.
    std::fs::write(m.state.join("big.bin"), "mine too\n").unwrap();

    let out = m.edgenet(&["remove", "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["deployment_id"], id.as_str(), "{report:#}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report:#}");
    let node_name = node.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        files_under(&m.state),
        vec![
            "big.bin".to_string(),
            "nodes".to_string(),
            format!("nodes/{node_name}"),
            format!("nodes/{node_name}/notes.txt"),
            "nodes/web".to_string(),
            "nodes/web/index.html".to_string(),
        ],
        "{report:#}"
    );
    let left = report["left"].to_string();
    assert!(left.contains("notes.txt"), "{report:#}");
    assert!(left.contains("index.html"), "{report:#}");
    assert!(left.contains("big.bin"), "{report:#}");
    // The deployment itself is gone: nothing in the kernel carries its mark.
    let links = m.ip_json("-d link show").to_string();
    assert!(!links.contains(&format!("edgenet:{id}")), "{links}");
    assert!(m.node_namespaces().is_empty());
}

/// B26 F9: `remove --orphan ID` of a deployment whose VM's QEMU still runs names that QEMU in
/// `left` with the `kill PID` that stops it (it does not stop it); `status` after it names the
/// QEMU without asking for the tap and tables already removed.
#[test]
fn remove_orphan_names_the_qemu_it_leaves_running() {
    let Some(m) = machine("w26f9") else { return };
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The state directory is lost while a QEMU of the deployment's VM runs: a stand-in whose
    // command line is a QEMU's (`qemu-system-x86_64 … -pidfile <state>/vm/<node>-<id>/qemu.pid`),
    // in the machine's network namespace, waiting on its stdin.
    std::fs::remove_dir_all(&m.state).unwrap();
    let pidfile = m.state.join(format!("vm/w26n-ledge-{id}/qemu.pid"));
    let mut qemu = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .args([
            "bash",
            "-c",
            "exec -a qemu-system-x86_64 bash -c 'read x' -pidfile \"$0\"",
        ])
        .arg(&pidfile)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = qemu.id();
    let seen = (0..100).any(|_| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"qemu-system-x86_64\0") {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        false
    });
    assert!(seen, "the stand-in QEMU runs");

    let out = m.edgenet(&["status", "-o", "json"]);
    let notices = stdout_json(&out)["notices"].to_string();
    assert!(notices.contains(&format!("kill {pid}")), "{notices}");

    let out = m.edgenet(&["remove", "--orphan", &id, "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let left = report["left"].to_string();
    assert!(
        left.contains(&format!("QEMU (pid {pid})")) && left.contains(&format!("`kill {pid}`")),
        "{report:#}"
    );
    assert!(
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .starts_with(b"qemu-system-x86_64\0"),
        "remove --orphan does not stop it"
    );
    let out = m.edgenet(&["status", "-o", "json"]);
    let notices = stdout_json(&out)["notices"].to_string();
    assert!(notices.contains(&format!("kill {pid}")), "{notices}");
    assert!(
        !notices.contains("tap and nftables tables") && !notices.contains("--orphan"),
        "{notices}"
    );
    let _ = qemu.kill();
    let _ = qemu.wait();
}

/// Whether a network namespace with inode `ino` is alive now: named under /run/netns, or a
/// process's.
fn netns_inode_alive(ino: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    let named = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten();
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    named
        .map(|e| e.path())
        .chain(procs.map(|e| e.path().join("ns/net")))
        .any(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == ino))
}

/// B26 N1: a remove deletes the /run/edgenet notes of network namespaces that are gone (deleted
/// without an edgenet run in them), and keeps those of live ones — named (bind-mounted) or held
/// only by a process.
#[test]
fn remove_drops_the_notes_of_network_namespaces_that_are_gone() {
    use std::os::unix::fs::MetadataExt;
    let Some(m) = machine("w26n1") else { return };
    m.deploy(None);
    let note = |dev: u64, ino: u64| {
        let path =
            std::path::PathBuf::from(format!("/run/edgenet/netns-{dev}-{ino}.ip_forward.by"));
        std::fs::create_dir_all("/run/edgenet").unwrap();
        std::fs::write(&path, "netns-cookie 1\nabcdef 0\n").unwrap();
        path
    };
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net").unwrap().dev();
    // Named, with nothing in it.
    let named_name = run_name("w26k", "n1");
    let named = NsGuard::create(&named_name);
    let named_ino = std::fs::metadata(format!("/run/netns/{named_name}"))
        .unwrap()
        .ino();
    let named_note = note(nsfs_dev, named_ino);
    // Held by a process alone.
    let mut held = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", "read x"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held_ino = (0..100)
        .find_map(|_| {
            let ino = std::fs::metadata(format!("/proc/{}/ns/net", held.id()))
                .map(|m| m.ino())
                .ok()
                .filter(|i| *i != std::fs::metadata("/proc/self/ns/net").unwrap().ino());
            if ino.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            ino
        })
        .expect("unshare made its namespace");
    let held_note = note(nsfs_dev, held_ino);

    // Gone: deleted by `ip netns del`, which leaves its notes (made last: the kernel gives a
    // new namespace the lowest free inode, so one made after would take it).
    let gone_name = run_name("w26g", "n1");
    let (dev, gone_ino) = (0..20)
        .find_map(|_| {
            let gone = NsGuard::create(&gone_name);
            let meta = std::fs::metadata(format!("/run/netns/{gone_name}")).unwrap();
            sh(&format!("ip netns del {gone_name}"));
            drop(gone);
            // Taken at once by another namespace (another test's): try again.
            (!netns_inode_alive(meta.ino())).then_some((meta.dev(), meta.ino()))
        })
        .expect("a namespace inode that stays free");
    let gone_note = note(dev, gone_ino);
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    // Gone, unless the kernel gave its inode to a namespace made since (by another test).
    assert!(
        !gone_note.exists() || netns_inode_alive(gone_ino),
        "{} survives",
        gone_note.display()
    );
    assert!(named_note.exists(), "a named namespace's note goes");
    assert!(
        held_note.exists(),
        "a namespace held by a process: its note goes"
    );
    let _ = held.kill();
    let _ = held.wait();
    let _ = std::fs::remove_file(&held_note);
    let _ = std::fs::remove_file(&gone_note);
    drop(named);
    let _ = std::fs::remove_file(&named_note);
}

/// B27 F14: without a deployment, a VM directory whose QEMU still runs is named with that
/// QEMU's pid and its `kill`, not only as a directory to delete by hand.
#[test]
fn remove_without_a_deployment_names_the_qemu_still_running_in_a_vm_directory() {
    let Some(m) = machine("b27f14") else { return };
    let vm = m.state.join("vm/k-ledge-0a1b2c");
    std::fs::create_dir_all(&vm).unwrap();
    let pidfile = vm.join("qemu.pid");
    /// The QEMU this test starts, killed by its pid however the test ends.
    struct Qemu(std::process::Child);
    impl Drop for Qemu {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let qemu = Qemu(
        std::process::Command::new("qemu-system-x86_64")
            .args(["-M", "none", "-display", "none", "-S", "-pidfile"])
            .arg(&pidfile)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 is installed"),
    );
    let pid = qemu.0.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pidfile.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = m.edgenet(&["remove", "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let left = report["left"].to_string();
    assert!(
        left.contains(&format!("QEMU (pid {pid}) still runs"))
            && left.contains(&format!("kill {pid}")),
        "{report:#}"
    );
    assert!(pidfile.exists(), "{report:#}");
    drop(qemu);
}

/// B27 F1: a `lock` that is a symbolic or hard link to a file outside the state directory is
/// never opened through nor emptied: `remove` and `deploy` refuse (exit 3, `state`) naming it,
/// the file keeps its content, the namespace gets nothing; `status` says why.
#[test]
fn a_lock_that_is_a_link_is_refused_and_what_it_points_to_kept() {
    let Some(m) = machine("z27lock") else { return };
    let s = &m.state;
    std::fs::create_dir_all(s).unwrap();
    let victim = m.dir.path().join("precious");
    std::fs::write(&victim, "precious\n").unwrap();
    let links_before = m.ip_json("link");
    for link in ["symbolic", "hard"] {
        let _ = std::fs::remove_file(s.join("lock"));
        match link {
            "symbolic" => std::os::unix::fs::symlink(&victim, s.join("lock")).unwrap(),
            _ => std::fs::hard_link(&victim, s.join("lock")).unwrap(),
        }
        for command in ["remove", "deploy"] {
            let (code, report) = m.json(&[command]);
            assert_eq!(code, Some(3), "{link} {command}: {report:#}");
            assert_eq!(report["error"]["code"], "state", "{report:#}");
            let message = report["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&s.join("lock").display().to_string())
                    && message.contains("nothing was changed"),
                "{message}"
            );
            assert_eq!(
                std::fs::read(&victim).unwrap(),
                b"precious\n",
                "{link} {command}"
            );
            assert_eq!(files_under(s), ["lock"], "{link} {command}");
        }
        let (code, report) = m.status();
        assert_eq!(code, Some(0), "{report:#}");
        assert!(
            report["notices"]
                .to_string()
                .contains("not the lock file edgenet writes"),
            "{report:#}"
        );
    }
    assert_eq!(m.ip_json("link"), links_before);
}
