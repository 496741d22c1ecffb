//! Issue 11, lifecycle of `vm` nodes (QEMU under TCG here): what deploy does to a running VM
//! whose launch spec changed or that drifted, a rename of the machine, and remove without a
//! pidfile. One VM, checked from inside the guest through the guest agent and from /proc.
//! Takes about 1-2 minutes (each restart boots the test guest again).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::*;

fn config(image: &Path, mac: &str, cpus: u32, disk_gb: u32, dns: &str) -> Value {
    json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {"DnsServers": [dns]},
        "Machines": [{
            "LinuxNode": {"ControlPlane": true, "CpuCount": cpus, "MemoryInMB": 256,
                          "DataSizeInGB": disk_gb, "MacAddress": mac}
        }],
        "Edgenet": {
            "NodeRuntime": "vm",
            "VmImage": image.join("disk.qcow2"),
            "VmKernel": image.join("vmlinuz"),
            "VmInitrd": image.join("initrd.img")
        }
    })
}

/// `node exec` in the guest: (exit status, stdout).
fn guest(m: &Machine, env: &[(&str, &str)], script: &str) -> (i32, String) {
    let out = m.edgenet_env(
        &["node", "exec", "--wait", "90", "--", "sh", "-c", script],
        env,
    );
    eprintln!(
        "guest: {script}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn deploy(m: &Machine, cfg: &str, env: &[(&str, &str)]) -> String {
    let out = m.edgenet_env(&["deploy", "--output", "json", "-c", cfg], env);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "deploy failed: {text}");
    eprintln!("deploy: {text}");
    text
}

fn status(m: &Machine, env: &[(&str, &str)]) -> Value {
    let out = m.edgenet_env(&["status", "--output", "json"], env);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.get("result").cloned().unwrap_or(v)
}

/// The only VM directory under the state dir.
fn vm_dir(m: &Machine) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(m.state.join("vm"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// QEMU processes whose command line names `pidfile` (what `pgrep -f` sees).
fn qemus_of(pidfile: &Path) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args([
            "-f",
            &format!("qemu-system.*-pidfile {}", pidfile.display()),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// One QMP command on the VM's socket, as a second client would send it.
fn qmp(sock: &Path, command: &str) -> Value {
    let s = UnixStream::connect(sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    for cmd in ["qmp_capabilities", command] {
        writeln!(w, "{}", json!({ "execute": cmd })).unwrap();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("event").is_none() {
                if cmd == command {
                    return v;
                }
                break;
            }
        }
    }
    unreachable!()
}

#[test]
fn a_vm_restarts_for_a_new_spec_is_repaired_renamed_with_its_disk_and_removed_without_pidfile() {
    let Some(m) = machine("f11lc") else { return };
    let Some(image) = guest_image() else { return };
    let started = std::time::Instant::now();
    let a = [("EDGENET_MACHINE_NAME", "lca")];
    let cfg = m.write_config(
        "a.json",
        &config(&image, "02:11:22:33:44:55", 1, 2, "198.51.100.7"),
    );
    deploy(&m, &cfg, &a);
    let id = m.state_id().unwrap();
    let tap = format!("en{id}l");
    // A mark on the node's disk (the test guest has no filesystem on it: raw bytes).
    let (code, _) = guest(&m, &a, "echo edgenet-disk-mark > /dev/vda && sync");
    assert_eq!(code, 0);

    // Paused over QMP: status says so, deploy resumes it.
    let sock = vm_dir(&m).join("qmp.sock");
    qmp(&sock, "stop");
    assert_eq!(
        qmp(&sock, "query-status")["return"]["status"],
        "paused",
        "QMP stop"
    );
    assert!(status(&m, &a)["drift"].to_string().contains("paused"));
    let exec = m.edgenet_env(&["node", "exec", "--", "true"], &a);
    let err = String::from_utf8_lossy(&exec.stderr);
    assert!(err.contains("its VM is paused"), "{err}");
    // doctor says paused too, without waiting out --wait for an agent that cannot answer.
    let asked = std::time::Instant::now();
    let doc = m.edgenet_env(&["--output", "json", "doctor", "--wait", "60"], &a);
    let report: Value = serde_json::from_slice(&doc.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor -o json: {e}: {}",
            String::from_utf8_lossy(&doc.stderr)
        )
    });
    let agent = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["check"] == "guest-agent")
        .cloned()
        .unwrap_or_default();
    assert_eq!(agent["status"], "FAIL", "{report:#}");
    assert!(agent["detail"].to_string().contains("paused"), "{agent:#}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(50),
        "doctor waited out --wait"
    );
    let out = deploy(&m, &cfg, &a);
    assert!(out.contains("resumed VM lca-ledge"), "{out}");
    assert_eq!(qmp(&sock, "query-status")["return"]["status"], "running");

    // The tap deleted under a running QEMU: deploy makes it again and restarts the VM, whose
    // NIC is then bound to the new tap (the host answers its ping).
    sh(&format!("ip -n {} link del {tap}", m.ns));
    let out = deploy(&m, &cfg, &a);
    assert!(out.contains("restarted VM lca-ledge"), "{out}");
    assert!(
        out.contains(&format!("its tap {tap} was made again")),
        "{out}"
    );
    assert_eq!(guest(&m, &a, "ping -c1 -W3 192.168.0.1").0, 0);
    let links = m.ip_json("link show");
    let t = link(&links, &tap).expect("tap");
    assert!(
        t["flags"].to_string().contains("LOWER_UP"),
        "the tap has QEMU behind it: {t}"
    );

    // A new MAC, CPU count, disk size and DNS server: QEMU cannot change them live, so the VM
    // restarts with them; the guest has the new MAC, CPUs, disk size and seed, and its disk
    // still has the mark.
    let cfg2 = m.write_config(
        "b.json",
        &config(&image, "02:11:22:33:44:66", 2, 3, "198.51.100.8"),
    );
    let out = deploy(&m, &cfg2, &a);
    assert!(out.contains("restarted VM lca-ledge"), "{out}");
    assert!(
        out.contains("MAC changed from 02:11:22:33:44:55 to 02:11:22:33:44:66"),
        "{out}"
    );
    assert!(out.contains("CpuCount changed from 1 to 2"), "{out}");
    assert!(out.contains("grew lca-ledge's disk to 3 GB"), "{out}");
    let (code, facts) = guest(
        &m,
        &a,
        "cat /sys/class/net/eth0/address /sys/block/vda/size; grep -c ^processor /proc/cpuinfo; \
         cat /etc/resolv.conf; head -c 17 /dev/vda; echo",
    );
    assert_eq!(code, 0, "{facts}");
    assert!(facts.contains("02:11:22:33:44:66"), "{facts}");
    assert!(
        facts.lines().any(|l| l.trim() == "6291456"),
        "3 GB: {facts}"
    );
    assert!(facts.lines().any(|l| l.trim() == "2"), "2 CPUs: {facts}");
    assert!(facts.contains("nameserver 198.51.100.8"), "{facts}");
    assert!(facts.contains("edgenet-disk-mark"), "{facts}");
    let st = status(&m, &a);
    assert_eq!(st["drift"], json!([]), "{st:#}");
    // Deploying the same again changes nothing (no restart loop).
    let out = deploy(&m, &cfg2, &a);
    assert!(!out.contains("restarted VM"), "{out}");

    // A smaller disk is refused, naming the field; the VM keeps running.
    let small = m.write_config(
        "c.json",
        &config(&image, "02:11:22:33:44:66", 2, 2, "198.51.100.8"),
    );
    let refused = m.edgenet_env(&["deploy", "-c", &small], &a);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("DataSizeInGB is 2"), "{err}");

    // The machine renamed: the VM moves to its new name with its disk.
    let b = [("EDGENET_MACHINE_NAME", "lcb")];
    let out = deploy(&m, &cfg2, &b);
    assert!(out.contains("renamed node lca-ledge to lcb-ledge"), "{out}");
    assert!(vm_dir(&m).ends_with(format!("lcb-ledge-{id}")));
    let (_, mark) = guest(&m, &b, "head -c 17 /dev/vda; echo");
    assert!(mark.contains("edgenet-disk-mark"), "{mark}");

    // The pidfile deleted: remove still finds and stops this VM's QEMU.
    let pidfile = vm_dir(&m).join("qemu.pid");
    assert_eq!(qemus_of(&pidfile).len(), 1);
    std::fs::remove_file(&pidfile).unwrap();
    let st = status(&m, &b);
    assert_eq!(st["nodes"][0]["vm"]["run_state"], "running", "{st:#}");
    // Paused, the guest cannot power off: remove makes QEMU quit and says so in its JSON.
    qmp(&vm_dir(&m).join("qmp.sock"), "stop");
    let removed = m.edgenet_env(&["--output", "json", "remove"], &b);
    let report: Value = serde_json::from_slice(&removed.stdout).unwrap_or_else(|e| {
        panic!(
            "remove -o json: {e}: {}",
            String::from_utf8_lossy(&removed.stderr)
        )
    });
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["forced"], true, "{report:#}");
    assert_eq!(qemus_of(&pidfile), Vec::<u32>::new(), "QEMU left running");
    assert!(!m.state.exists());
    eprintln!("vm lifecycle test took {:?}", started.elapsed());
}

/// QEMU processes whose command line names `path` anywhere (`pgrep -f`).
fn qemus_naming(path: &Path) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", &format!("qemu-system.*{}", path.display())])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn a_killed_deploy_leaves_no_kvm_probe_and_leftovers_of_a_lost_state_dir_are_named() {
    let Some(m) = machine("f11lo") else { return };
    let Some(image) = guest_image() else { return };
    let env = [("EDGENET_MACHINE_NAME", "lo")];
    let cfg = m.write_config(
        "a.json",
        &config(&image, "02:11:22:33:44:77", 1, 2, "198.51.100.7"),
    );
    // edgenet killed (SIGKILL) while its KVM probe runs: the probe's QEMU dies with it.
    let probe = m.state.join("vm/kvm-probe.pid");
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
    {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(["deploy", "-c", &cfg])
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env("EDGENET_MACHINE_NAME", "lo")
            .env_remove("EDGENET_VM_ACCEL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while qemus_naming(&probe).is_empty() && std::time::Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if qemus_naming(&probe).is_empty() {
            eprintln!("(the KVM probe ended before it was seen: its part is not checked)");
        } else {
            // nsenter execs edgenet: the child is edgenet itself.
            child.kill().unwrap();
            child.wait().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
            assert_eq!(
                qemus_naming(&probe),
                Vec::<u32>::new(),
                "the KVM probe outlived edgenet"
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    } else {
        eprintln!("(no usable /dev/kvm: no KVM probe runs, its part is not checked)");
    }
    deploy(&m, &cfg, &env);
    let id = m.state_id().unwrap();
    let vm = vm_dir(&m);
    assert_eq!(qemus_of(&vm.join("qemu.pid")).len(), 1);

    // The state directory gone (moved away here, to clean up after): check names what is
    // left, with the commands that delete it, and touches nothing.
    let away = m.dir.path().join("away");
    std::fs::rename(&m.state, &away).unwrap();
    let out = m.edgenet_env(&["check", "-c", &cfg], &env);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&format!("`ip link del en{id}l`")),
        "the tap: {text}"
    );
    assert!(
        text.contains(&format!("`nft delete table ip edgenet_{id}`")),
        "the table: {text}"
    );
    assert!(
        text.contains(&format!("runs VM lo-ledge-{id}")),
        "the QEMU: {text}"
    );
    assert_eq!(qemus_naming(&m.state).len(), 1, "nothing was stopped");
    std::fs::rename(&away, &m.state).unwrap();
    m.ok(&["remove"]);
    assert_eq!(qemus_naming(&m.state), Vec::<u32>::new());
}

/// The accelerator the VM's QEMU runs with, from its command line in /proc.
fn accel_in_proc(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).to_string())
        .collect();
    let machine = args
        .windows(2)
        .find(|w| w[0] == "-machine")
        .map(|w| w[1].clone())
        .unwrap_or_default();
    machine
        .split(',')
        .find_map(|o| o.strip_prefix("accel="))
        .unwrap_or("")
        .to_string()
}

fn the_qemu(m: &Machine) -> u32 {
    let q = qemus_of(&vm_dir(m).join("qemu.pid"));
    assert_eq!(q.len(), 1, "one QEMU: {q:?}");
    q[0]
}

/// The launch spec without its `accel` field, as the build before it wrote it.
fn strip_accel(m: &Machine) {
    let path = vm_dir(m).join("launch.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec.as_object_mut().unwrap().remove("accel");
    std::fs::write(&path, spec.to_string()).unwrap();
}

/// B26 F2, F10, F7: a first deploy killed right after QEMU started leaves a VM the next deploy
/// adopts (same QEMU); the accelerator is in the launch spec (a spec of the previous build,
/// without it, is read, the accelerator taken from QEMU's command line); a deploy under another
/// accelerator restarts the VM and says so, and `status` calls the difference drift and shows
/// the accelerator; a deleted tap is "missing", not "no carrier".
#[test]
fn an_interrupted_first_deploy_s_vm_is_adopted_and_a_new_accelerator_restarts_it() {
    let Some(m) = machine("v26ac") else { return };
    let Some(image) = guest_image() else { return };
    if !failpoints() {
        return;
    }
    let tcg = [
        ("EDGENET_MACHINE_NAME", "acc"),
        ("EDGENET_VM_ACCEL", "tcg"),
        ("EDGENET_VM_STOP_TIMEOUT", "3"),
    ];
    let cfg = m.write_config(
        "a.json",
        &config(&image, "02:11:22:33:44:88", 1, 2, "198.51.100.7"),
    );
    // Killed (abort) right after QEMU daemonized, before the run recorded anything more.
    let mut crash = tcg.to_vec();
    crash.push(("EDGENET_FAILPOINT", "node-vm-started:crash"));
    let out = m.edgenet_env(&["deploy", "-c", &cfg], &crash);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(6), "{out:?}");
    let first = the_qemu(&m);
    let out = deploy(&m, &cfg, &tcg);
    assert!(!out.contains("restarted VM"), "{out}");
    assert_eq!(the_qemu(&m), first, "the interrupted deploy's QEMU adopted");

    // status shows the accelerator (JSON and text).
    let st = status(&m, &tcg);
    assert_eq!(st["nodes"][0]["vm"]["accel"], "tcg", "{st:#}");
    let text = m.edgenet_env(&["status"], &tcg);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains(&format!("running (QEMU {first}, TCG)")),
        "{text}"
    );

    // A launch spec of the previous build (no accelerator): read, the accelerator taken from
    // QEMU's command line, no restart, and the spec recorded whole.
    strip_accel(&m);
    let out = deploy(&m, &cfg, &tcg);
    assert!(!out.contains("restarted VM"), "{out}");
    assert_eq!(the_qemu(&m), first);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(vm_dir(&m).join("launch.json")).unwrap())
            .unwrap();
    assert_eq!(spec["accel"], "tcg", "{spec}");

    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
    {
        // Another accelerator (the old spec again, without the field): the VM restarts under it.
        strip_accel(&m);
        let kvm = [
            ("EDGENET_MACHINE_NAME", "acc"),
            ("EDGENET_VM_ACCEL", "kvm"),
            ("EDGENET_VM_STOP_TIMEOUT", "3"),
        ];
        let out = deploy(&m, &cfg, &kvm);
        assert!(out.contains("accelerator changed from TCG to KVM"), "{out}");
        let second = the_qemu(&m);
        assert_ne!(second, first);
        assert_eq!(accel_in_proc(second), "kvm");
        // status under the other choice: drift, as deploy would restart it.
        let st = status(&m, &tcg);
        assert_eq!(st["nodes"][0]["vm"]["accel"], "kvm", "{st:#}");
        assert!(
            st["drift"]
                .to_string()
                .contains("runs under KVM, but deploy starts it under TCG"),
            "{st:#}"
        );
        let out = deploy(&m, &cfg, &tcg);
        assert!(out.contains("accelerator changed from KVM to TCG"), "{out}");
        let third = the_qemu(&m);
        assert_eq!(accel_in_proc(third), "tcg");
        assert_eq!(
            guest(&m, &tcg, "true").0,
            0,
            "the guest boots again under TCG"
        );
        let st = status(&m, &tcg);
        assert_eq!(st["drift"], json!([]), "{st:#}");
    } else {
        eprintln!("(no usable /dev/kvm: the KVM restart is not checked)");
    }

    // The tap deleted: status says it is missing (not "no carrier").
    let id = m.state_id().unwrap();
    sh(&format!("ip -n {} link del en{id}l", m.ns));
    let st = status(&m, &tcg);
    let drift = st["drift"].to_string();
    assert!(
        drift.contains(&format!("its tap en{id}l is missing")),
        "{st:#}"
    );
    assert!(!drift.contains("no carrier"), "{st:#}");
    m.ok(&["remove"]);
    assert!(qemus_naming(&m.state).is_empty());
}
