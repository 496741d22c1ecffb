//! `edgenet-bench lab`: `edgenet lab up --scalable N` (the lab, then one real deploy per
//! machine), `lab status` and `lab down` for 1, 10 and 50 machines; time per machine must stay
//! flat.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn edgenet(bin: &Path, dir: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .args(["--name", "bench", "--lab-dir"])
        .arg(dir)
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

pub fn bench() {
    let bin = std::env::current_exe().unwrap().with_file_name("edgenet");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p edgenet"
    );
    let dir = std::env::temp_dir().join(format!("edgenet-bench-lab-{}", std::process::id()));
    println!("edgenet lab with a generated ScalableCluster (release build)");
    println!(
        "{:>9} {:>10} {:>14} {:>10} {:>10} {:>14}",
        "machines", "up", "up/machine", "status", "down", "down/machine"
    );
    for n in [1u8, 10, 50] {
        let count = n.to_string();
        let up = edgenet(
            &bin,
            &dir,
            &["lab", "up", "--scalable", &count, "--no-status"],
        );
        let status = edgenet(&bin, &dir, &["lab", "status"]);
        let down = edgenet(&bin, &dir, &["lab", "down"]);
        let per = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(n);
        println!(
            "{n:>9} {:>8.0}ms {:>12.1}ms {:>8.0}ms {:>8.0}ms {:>12.1}ms",
            up.as_secs_f64() * 1e3,
            per(up),
            status.as_secs_f64() * 1e3,
            down.as_secs_f64() * 1e3,
            per(down)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
