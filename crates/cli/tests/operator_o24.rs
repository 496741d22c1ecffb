//! Loose ends an operator runs into (step fourteen, O24): `node exec` of a command that is not
//! there or not runnable, and the others named at each test. Namespaces are named `o24-…`.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

/// `node exec` of a command that does not exist exits 127, of one that is there but cannot be
/// run 126 — as shells, `env`, `nsenter` and `ip netns exec` do — naming the command.
#[test]
fn node_exec_of_a_missing_or_unrunnable_command_exits_127_or_126() {
    let Some(m) = machine_prefixed("o24", "exec") else {
        return;
    };
    m.deploy(None);
    let out = m.edgenet(&["node", "exec", "--", "o24-no-such-command", "-x"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(
        err.contains("o24-no-such-command: command not found"),
        "{err}"
    );
    assert!(
        err.contains("linux-ledge") || err.contains("-ledge"),
        "{err}"
    );

    let script = m.dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = m.edgenet(&["node", "exec", "--", script.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(126), "{err}");
    assert!(
        err.contains(&format!("{}: Permission denied", script.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");

    // An empty command name is not found (127), as `env ''` says, and no PATH directory is
    // named (B24 F4: it was 126 "(/root/.cargo/bin/): Is a directory").
    let out = m.edgenet(&["node", "exec", "--", ""]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.contains("'': command not found"), "{err}");
    assert!(!err.contains("directory"), "{err}");

    // The command's own status still passes through.
    let out = m.edgenet(&["node", "exec", "--", "sh", "-c", "exit 127"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A host name longer than a machine name may be is shortened with the notice
/// `machine-name-shortened` (check and deploy), which names it, what it became and the fix.
#[test]
fn a_deploy_on_a_host_with_a_too_long_name_says_it_shortened_it() {
    let Some(m) = machine_prefixed("o24", "longname") else {
        return;
    };
    let long = "o24-build-agent-0123456789-0123456789-0123456789-abcdefghij";
    let short = &long[..57];
    // The host name in a UTS namespace of its own, the network in the machine's.
    let deploy = std::process::Command::new("unshare")
        .args([
            "--uts",
            "sh",
            "-c",
            "hostname \"$1\" && shift && exec \"$@\"",
            "sh",
            long,
        ])
        .arg("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(["deploy", "-o", "json"])
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env_remove("EDGENET_MACHINE_NAME")
        .env_remove("EDGENET_CONFIG")
        .output()
        .unwrap();
    let report = stdout_json(&deploy);
    assert_eq!(deploy.status.code(), Some(0), "{report}");
    let notice = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "machine-name-shortened")
        .unwrap_or_else(|| panic!("no notice: {report}"));
    assert_eq!(notice["severity"], "notice");
    let message = notice["message"].as_str().unwrap();
    assert!(
        message.contains(long) && message.contains(&format!("{short:?}")),
        "{message}"
    );
    assert!(
        notice["hint"].as_str().unwrap().contains("--machine-name"),
        "{notice}"
    );
    let err = String::from_utf8_lossy(&deploy.stderr);
    assert!(err.contains("machine-name-shortened"), "{err}");
    // What the kernel got: the node's namespace is named after the shortened name.
    assert_eq!(report["plan"]["machine"]["name"], short, "{report}");
    let id = m.state_id().unwrap();
    m.edgenet(&["status"]); // records the id, so that the guard's drop sweeps its namespaces
    let nodes = m.node_namespaces();
    assert!(nodes.contains(&format!("{short}-ledge-{id}")), "{nodes:?}");
}

/// The node's resolv.conf carries the host's `search` list and the options that mean the same
/// in a node (not `trust-ad`, which trusts only the host's own stub), whether its servers are
/// the host's or the config's; a short name then resolves in the node through a real dnsmasq
/// (in an upstream namespace of the test's own) as on the host.
#[test]
fn a_node_resolves_short_names_with_the_hosts_search_list() {
    let Some(m) = machine_prefixed("o24", "search") else {
        return;
    };
    if std::process::Command::new("dnsmasq")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: needs dnsmasq");
        return;
    }
    let up = uplink(&m, "up");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _dnsmasq = Kill(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                up.name(),
                "dnsmasq",
                "--conf-file=/dev/null",
            ])
            .args([
                "--no-hosts",
                "--no-resolv",
                "--no-daemon",
                "--bind-interfaces",
            ])
            .args(["--pid-file=", "--listen-address=203.0.113.1"])
            .arg("--address=/web.o24.example/192.0.2.80")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::fs::write(
        &m.resolv,
        "# the host's\nsearch o24.example lab.o24.example\nnameserver 203.0.113.1\n\
         options ndots:1 trust-ad timeout:2\noptions attempts:3\n",
    )
    .unwrap();
    m.deploy(None);
    let inside = m.ok(&["node", "exec", "--", "cat", "/etc/resolv.conf"]);
    let lines: Vec<&str> = inside.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "nameserver 203.0.113.1",
            "search o24.example lab.o24.example",
            "options ndots:1 timeout:2 attempts:3"
        ],
        "{inside}"
    );
    // A real lookup of a short name: glibc in the node tries web.o24.example first.
    let mut answer = String::new();
    for _ in 0..30 {
        let out = m.edgenet(&["node", "exec", "--", "getent", "hosts", "web"]);
        answer = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(answer.starts_with("192.0.2.80"), "{answer:?}");
    assert!(answer.contains("web.o24.example"), "{answer:?}");

    // The config's own servers: the same search list and options with them.
    let cfg = m.write_config(
        "own.json",
        &serde_json::json!({"Network": {"DnsServers": ["203.0.113.1"], "SkipDnsCheck": true}, "Machines": [{"LinuxNode": {}}]}),
    );
    m.deploy(Some(&cfg));
    let inside = m.ok(&["node", "exec", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        inside.contains(
            "\nsearch o24.example lab.o24.example\noptions ndots:1 timeout:2 attempts:3\n"
        ),
        "{inside}"
    );
}

/// `remove --orphan` names the processes still running in a node namespace it removed, as
/// plain `remove` does (with the fix), and completes.
#[test]
fn remove_orphan_names_the_processes_left_in_a_node_namespace() {
    let Some(m) = machine_prefixed("o24", "orphproc") else {
        return;
    };
    let id = m.deploy(None)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ns = m.linux_node_namespace();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(["sleep", "300"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    // Until its exec is done the process is `nsenter`: wait until it is `sleep` in the node.
    let inode = |p: &str| std::fs::read_link(p).map(|l| l.display().to_string()).ok();
    let node_ns = sh_out(&format!("ip netns exec {ns} readlink /proc/self/ns/net"));
    for _ in 0..200 {
        if inode(&format!("/proc/{pid}/ns/net")).as_deref() == Some(node_ns.trim())
            && std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
                == b"sleep\x00300\x00"
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::remove_dir_all(&m.state).unwrap();

    let out = m.edgenet(&["remove", "--orphan", &id, "-o", "json"]);
    let report = stdout_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["orphan"], true, "{report:#}");
    let said = format!("sleep 300 (pid {pid})");
    let line = report["left"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.contains(&said))
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(
        line.contains(&format!("network namespace {ns}: its name is gone"))
            && line.contains(&format!("kill {pid}")),
        "{line}"
    );
    // What the kernel shows: the name is gone, the namespace lives on with the process.
    assert!(!netns_exists(&ns));
    assert_eq!(
        inode(&format!("/proc/{pid}/ns/net")).as_deref(),
        Some(node_ns.trim())
    );
    drop(child);
}

/// The error envelope of a run refused before it read the state names the state directory
/// (`state_dir`) when one is known — an unsafe one, bad arguments, an unreadable config —, and
/// leaves it `null` only when there is none: `--state-dir` naming a file.
#[test]
fn refusals_before_the_state_is_read_name_the_state_directory() {
    let Some(m) = machine_prefixed("o24", "statedir") else {
        return;
    };
    let unsafe_dir = m.dir.path().join("unsafe");
    std::fs::create_dir(&unsafe_dir).unwrap();
    std::fs::set_permissions(&unsafe_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let a_file = m.dir.path().join("a-file");
    std::fs::write(&a_file, "{}").unwrap();
    let fine = m.dir.path().join("fine");
    let missing = m.dir.path().join("missing.json");
    let (unsafe_dir, a_file, fine, missing) = (
        unsafe_dir.to_str().unwrap(),
        a_file.to_str().unwrap(),
        fine.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    for (args, code, state_dir) in [
        (vec!["status"], "unsafe-state-dir", Some(unsafe_dir)),
        (vec!["deploy"], "unsafe-state-dir", Some(unsafe_dir)),
        (vec!["status"], "invalid-arguments", None),
        (
            vec!["deploy", "--machine", "3"],
            "invalid-arguments",
            Some(fine),
        ),
        (
            vec!["deploy", "-c", missing],
            "unreadable-config",
            Some(fine),
        ),
    ] {
        let dir = match (code, state_dir) {
            ("invalid-arguments", None) => a_file,
            (_, Some(d)) => d,
            _ => unreachable!(),
        };
        let mut all = vec!["-o", "json", "--state-dir", dir];
        all.extend(&args);
        let out = m.edgenet(&all);
        let report = stdout_json(&out);
        assert_eq!(report["error"]["code"], code, "{all:?}: {report:#}");
        assert_eq!(
            report["state_dir"],
            state_dir.map_or(serde_json::Value::Null, serde_json::Value::from),
            "{all:?}: {report:#}"
        );
    }
    // Nothing was made: the directory deploy would have made is not there.
    assert!(!std::path::Path::new(fine).exists());
}
