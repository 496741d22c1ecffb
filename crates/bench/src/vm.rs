//! `edgenet-bench vm`: time from the start of `edgenet deploy` of a single-machine cluster
//! with one `vm` node (edgenet's test guest) to the guest answering ping from the machine,
//! with the accelerator picked by edgenet (a KVM probe, then TCG here), TCG forced, and KVM
//! forced; and the time of `remove` (power button over QMP, guest powers off).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn guest_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("EDGENET_GUEST_DIR").unwrap_or_else(|_| "/var/cache/edgenet/guest".into()),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-guest-image.sh");
    let ok = Command::new(&script)
        .arg(&dir)
        .stdout(Stdio::null())
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "{} failed", script.display());
    dir
}

fn pings(ns: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c1", "-W0.2", "192.168.0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn edgenet(ns: &str, state: &Path, args: &[&str], accel: Option<&str>) -> bool {
    let bin = std::env::current_exe().unwrap().with_file_name("edgenet");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{ns}"))
        .arg(bin)
        .args(args)
        .env("EDGENET_STATE_DIR", state)
        .env_remove("EDGENET_VM_ACCEL");
    if let Some(a) = accel {
        cmd.env("EDGENET_VM_ACCEL", a);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        eprintln!("edgenet {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

pub fn bench() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("edgenet-bench vm: needs root (it creates network namespaces)");
        std::process::exit(2);
    }
    let image = guest_dir();
    let dir = std::env::temp_dir().join(format!("edgenet-bench-vm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("vm.json");
    let config = serde_json::json!({
        "Machines": [{"LinuxNode": {"CpuCount": 1, "MemoryInMB": 256, "DataSizeInGB": 2}}],
        "Edgenet": {
            "NodeRuntime": "vm",
            "VmImage": image.join("disk.qcow2"),
            "VmKernel": image.join("vmlinuz"),
            "VmInitrd": image.join("initrd.img")
        }
    });
    std::fs::write(&cfg, config.to_string()).unwrap();
    let cfg = cfg.display().to_string();
    println!("deploy → guest answers ping, {RUNS} runs each, median (edgenet's test guest, 1 vCPU, 256 MB)");
    println!(
        "{:<22} {:>10} {:>14} {:>10}",
        "accelerator", "deploy", "deploy→ping", "remove"
    );
    for (label, accel) in [
        ("auto (probe, then)", None),
        ("tcg", Some("tcg")),
        ("kvm", Some("kvm")),
    ] {
        let ns = format!("enb-vm-{}", std::process::id());
        let state = dir.join("state");
        let (mut deploys, mut answers, mut removes) = (Vec::new(), Vec::new(), Vec::new());
        let mut failed = false;
        for _ in 0..RUNS {
            crate::sys::del_netns(&ns);
            Command::new("ip")
                .args(["netns", "add", &ns])
                .status()
                .unwrap();
            Command::new("ip")
                .args(["-n", &ns, "link", "set", "lo", "up"])
                .status()
                .unwrap();
            let start = Instant::now();
            if !edgenet(&ns, &state, &["deploy", "-c", &cfg], accel) {
                failed = true;
            }
            deploys.push(start.elapsed());
            let deadline = start + Duration::from_secs(60);
            let mut answered = None;
            while !failed && Instant::now() < deadline {
                if pings(&ns) {
                    answered = Some(start.elapsed());
                    break;
                }
            }
            let r = Instant::now();
            edgenet(&ns, &state, &["remove"], None);
            removes.push(r.elapsed());
            crate::sys::del_netns(&ns);
            match answered {
                Some(t) => answers.push(t),
                None => {
                    failed = true;
                    break;
                }
            }
        }
        let med = |mut v: Vec<Duration>| {
            v.sort();
            v.get(v.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64())
        };
        if failed {
            println!(
                "{label:<22} {:>9.2}s {:>14} {:>9.2}s",
                med(deploys),
                "no answer in 60 s",
                med(removes)
            );
        } else {
            println!(
                "{label:<22} {:>9.2}s {:>13.2}s {:>9.2}s",
                med(deploys),
                med(answers),
                med(removes)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
