//! `edgenet-bench deploy`: `edgenet deploy` / `remove` of the default (Linux node) and of a
//! Linux + Windows config inside a throwaway machine namespace, against the kernel floor — the
//! same objects made by one `ip -batch` and one `nft -f` — and the peak RSS of `edgenet deploy`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{del_netns, feed};

const RUNS: usize = 15;

pub(crate) struct Ns(pub(crate) String);

impl Ns {
    pub(crate) fn new(name: &str) -> Ns {
        del_netns(name);
        run("ip", &["netns", "add", name]);
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        Ns(name.to_string())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        del_netns(&self.0);
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?}");
}

pub(crate) fn edgenet_bin() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let bin = me.with_file_name("edgenet");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p edgenet ({} missing)",
        bin.display()
    );
    bin
}

/// Runs `edgenet ARGS` in `ns`; returns the wall time.
fn edgenet(ns: &str, state: &Path, resolv: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(edgenet_bin())
        .args(args)
        .env("EDGENET_STATE_DIR", state)
        .env("EDGENET_RESOLV_CONF", resolv)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "edgenet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The floor: the objects of a deploy, made by one `ip -batch` in the machine (plus one per
/// node namespace, since a batch cannot address two namespaces) and one `nft -f`.
fn floor_batch(ns: &str, windows: bool) -> (String, Vec<(String, String)>, String) {
    let mut ip = String::new();
    ip.push_str("link add aksedgesw-int type bridge\nlink set aksedgesw-int up\naddr add 192.168.0.1/24 dev aksedgesw-int\n");
    let mut nodes = vec![("l", "192.168.0.2/24")];
    if windows {
        nodes.push(("w", "192.168.0.3/24"));
    }
    let mut inner = Vec::new();
    for (tag, addr) in &nodes {
        let node_ns = format!("{ns}-floor{tag}");
        ip.push_str(&format!("netns add {node_ns}\n"));
        ip.push_str(&format!("link add fl{tag} type veth peer name eth0 netns {node_ns}\nlink set fl{tag} master aksedgesw-int\nlink set fl{tag} up\n"));
        inner.push((node_ns.clone(), format!("link set lo up\nlink set eth0 up\naddr add {addr} dev eth0\nroute add default via 192.168.0.1\n")));
    }
    let nft = "table ip floor {\n chain postrouting { type nat hook postrouting priority srcnat; ip saddr 192.168.0.0/24 ip daddr != 192.168.0.0/24 masquerade; }\n chain forward { type filter hook forward priority filter; iifname \"aksedgesw-int\" oifname \"aksedgesw-int\" accept; oifname \"aksedgesw-int\" ct state established,related accept; oifname \"aksedgesw-int\" drop; iifname \"aksedgesw-int\" accept; }\n}\n".to_string();
    (ip, inner, nft)
}

/// Deletes the floor's objects even when a step panics.
struct FloorCleanup<'a>(&'a str);

impl Drop for FloorCleanup<'_> {
    fn drop(&mut self) {
        for tag in ["l", "w"] {
            del_netns(&format!("{}-floor{tag}", self.0));
        }
        let _ = Command::new("nsenter")
            .args([
                &format!("--net=/run/netns/{}", self.0),
                "sh",
                "-c",
                "ip link del aksedgesw-int; nft delete table ip floor",
            ])
            .stderr(Stdio::null())
            .status();
    }
}

fn timed_floor(ns: &str, windows: bool) -> Duration {
    let (ip, inner, nft) = floor_batch(ns, windows);
    let _cleanup = FloorCleanup(ns);
    let start = Instant::now();
    feed(
        &[
            "nsenter",
            &format!("--net=/run/netns/{ns}"),
            "ip",
            "-batch",
            "-",
        ],
        &ip,
    );
    for (node_ns, batch) in &inner {
        feed(&["ip", "-n", node_ns, "-batch", "-"], batch);
    }
    feed(
        &[
            "nsenter",
            &format!("--net=/run/netns/{ns}"),
            "nft",
            "-f",
            "-",
        ],
        &nft,
    );
    start.elapsed()
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_rss_kib_of_children() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss
}

pub fn bench() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("edgenet-bench deploy: needs root (it creates network namespaces)");
        std::process::exit(2);
    }
    let dir = std::env::temp_dir().join(format!("edgenet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 198.51.100.53\n").unwrap();
    let both = dir.join("linux-windows.json");
    std::fs::write(
        &both,
        r#"{"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}"#,
    )
    .unwrap();

    println!(
        "deploy / remove inside a machine namespace, {RUNS} runs each, median (release build)"
    );
    println!(
        "{:<16} {:>10} {:>10} {:>14} {:>8} {:>12}",
        "config", "deploy", "remove", "floor (ip+nft)", "ratio", "2nd deploy"
    );
    for (label, config, windows) in [
        ("linux", None, false),
        ("linux+windows", Some(both.as_path()), true),
    ] {
        let ns = Ns::new(&format!(
            "enb-{}-{}",
            &label[..5.min(label.len())],
            std::process::id()
        ));
        let state = dir.join(format!("state-{label}"));
        let mut args_deploy = vec!["deploy"];
        let cfg;
        if let Some(c) = config {
            cfg = c.display().to_string();
            args_deploy.extend(["-c", &cfg]);
        }
        let (mut deploys, mut removes, mut noops, mut floors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            deploys.push(edgenet(&ns.0, &state, &resolv, &args_deploy));
            noops.push(edgenet(&ns.0, &state, &resolv, &args_deploy));
            removes.push(edgenet(&ns.0, &state, &resolv, &["remove"]));
            floors.push(timed_floor(&ns.0, windows));
        }
        let (d, r, f, n) = (
            median(deploys),
            median(removes),
            median(floors),
            median(noops),
        );
        println!(
            "{label:<16} {:>8.1}ms {:>8.1}ms {:>12.1}ms {:>7.2}× {:>10.1}ms",
            ms(d),
            ms(r),
            ms(f),
            d.as_secs_f64() / f.as_secs_f64(),
            ms(n)
        );
    }
    println!(
        "peak RSS of any edgenet run: {:.1} MiB",
        peak_rss_kib_of_children() as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
