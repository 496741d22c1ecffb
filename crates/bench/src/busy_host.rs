//! `edgenet-bench busy-host [RUNS]`: `edgenet deploy`, a redeploy with no change, `status` and
//! `remove` of the default config in a machine namespace that already holds other links — a
//! Docker or VM host carries hundreds (a veth per container, a tap per guest) and edgenet reads
//! every link of the host on each run. Per link count: wall time, CPU time and peak RSS of the
//! `edgenet` process (median), so the cost per foreign link shows.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::deploy::{edgenet_bin, median, ms, Ns};

/// What one `edgenet` run cost.
struct Cost {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
}

/// Runs `edgenet ARGS` inside `ns` (which must succeed) and reaps it with `wait4` for its own
/// CPU time and peak RSS (`nsenter` execs edgenet in its own process).
#[allow(clippy::zombie_processes)] // reaped by the wait4 below
fn edgenet(ns: &str, state: &std::path::Path, resolv: &std::path::Path, args: &[&str]) -> Cost {
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(edgenet_bin())
        .args(args)
        .env("EDGENET_STATE_DIR", state)
        .env("EDGENET_RESOLV_CONF", resolv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nsenter");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into values we own.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(
        std::process::ExitStatus::from_raw(status).success(),
        "edgenet {args:?} failed in {ns} (run it by hand to see why)"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cost {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss,
    }
}

/// `pairs` veth pairs that are not edgenet's, made in `ns` by one `ip -batch`.
fn foreign_links(ns: &str, pairs: usize) {
    if pairs == 0 {
        return;
    }
    let batch: String = (0..pairs)
        .map(|i| format!("link add ctr{i} type veth peer name ctp{i}\n"))
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), batch.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "ip -batch in {ns}");
}

pub fn bench(runs: usize) {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("edgenet-bench busy-host: needs root (it creates network namespaces)");
        std::process::exit(2);
    }
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("edgenet-bench-busy-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 198.51.100.53\n").unwrap();
    println!(
        "default config in a machine namespace with other links, {runs} runs each, median \
         (wall / CPU of the edgenet process; release build)"
    );
    println!(
        "{:>6} {:>18} {:>18} {:>18} {:>18} {:>9}",
        "links", "deploy", "redeploy", "status", "remove", "peak RSS"
    );
    for pairs in [0usize, 50, 300] {
        let ns = Ns::new(&format!("enbh{pairs}-{pid}"));
        foreign_links(&ns.0, pairs);
        let state = dir.join(format!("state-{pairs}"));
        let mut costs: [Vec<Cost>; 4] = Default::default();
        for _ in 0..runs {
            for (i, args) in [&["deploy"][..], &["deploy"], &["status"], &["remove"]]
                .into_iter()
                .enumerate()
            {
                costs[i].push(edgenet(&ns.0, &state, &resolv, args));
            }
        }
        let peak = costs
            .iter()
            .flatten()
            .map(|c| c.peak_rss_kib)
            .max()
            .unwrap_or(0);
        let cell = |c: &[Cost]| {
            let wall = median(c.iter().map(|c| c.wall).collect());
            let cpu = median(c.iter().map(|c| c.cpu).collect());
            format!("{:.1} / {:.1} ms", ms(wall), ms(cpu))
        };
        println!(
            "{:>6} {:>18} {:>18} {:>18} {:>18} {:>6.1} MiB",
            // lo, and both ends of every pair.
            1 + 2 * pairs,
            cell(&costs[0]),
            cell(&costs[1]),
            cell(&costs[2]),
            cell(&costs[3]),
            peak as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
