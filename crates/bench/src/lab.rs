//! `edgenet-bench lab [N …]`: `edgenet lab up --scalable N` (the lab, then one real deploy per
//! machine), `lab status` and `lab down` (a real `edgenet remove` per machine, then the
//! sandbox) for each machine count N (default 1, 10, 50, 100 and 255); targets: 255 machines
//! up in < 3 s and down in < 3 s, time per machine flat or falling as the lab grows.
//!
//! `EDGENET_BENCH_LAB_RUNS` (default 1) repeats every count and prints the median of each
//! column; `EDGENET_BENCH_LAB_STATUS=0` skips `lab status` (minutes at 255 machines on a
//! small host).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Machine counts measured when none are given.
const DEFAULT_COUNTS: [u8; 5] = [1, 10, 50, 100, 255];

fn edgenet(bin: &Path, name: &str, dir: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .args(["--name", name, "--lab-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let took = start.elapsed();
    // `lab status` exits 3 when a cell is not as expected: still a measurement, but said.
    let findings = args.get(1) == Some(&"status") && out.status.code() == Some(3);
    assert!(
        out.status.success() || findings,
        "edgenet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if findings {
        eprintln!("edgenet-bench: `lab status` found cells that are not as expected");
    }
    took
}

/// Machine counts from the command line (`lab 1 10 255`), else [`DEFAULT_COUNTS`].
fn counts() -> Vec<u8> {
    let given: Vec<u8> = std::env::args()
        .skip(2)
        .map(|a| match a.parse::<u8>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("edgenet-bench lab: machine counts are 1 to 255, not {a:?}");
                std::process::exit(2);
            }
        })
        .collect();
    if given.is_empty() {
        DEFAULT_COUNTS.to_vec()
    } else {
        given
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

pub fn bench() {
    let bin = std::env::current_exe().unwrap().with_file_name("edgenet");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p edgenet"
    );
    let runs = env_number("EDGENET_BENCH_LAB_RUNS", 1).max(1);
    let with_status = env_number("EDGENET_BENCH_LAB_STATUS", 1) != 0;
    // Unique per run (namespaces are `enl-<name>-…`), so benches side by side never meet.
    let name = format!("bench{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("edgenet-bench-lab-{}", std::process::id()));
    println!("edgenet lab with a generated ScalableCluster (release build), median of {runs}");
    println!(
        "{:>9} {:>10} {:>14} {:>10} {:>10} {:>14}",
        "machines", "up", "up/machine", "status", "down", "down/machine"
    );
    for n in counts() {
        let count = n.to_string();
        let (mut ups, mut statuses, mut downs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            ups.push(edgenet(
                &bin,
                &name,
                &dir,
                &["lab", "up", "--scalable", &count, "--no-status"],
            ));
            if with_status {
                statuses.push(edgenet(&bin, &name, &dir, &["lab", "status"]));
            }
            downs.push(edgenet(&bin, &name, &dir, &["lab", "down"]));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (up, down) = (median(ups), median(downs));
        let status = if with_status {
            format!("{:.0}ms", ms(median(statuses)))
        } else {
            "-".into()
        };
        println!(
            "{n:>9} {:>8.0}ms {:>12.1}ms {status:>10} {:>8.0}ms {:>12.1}ms",
            ms(up),
            ms(up) / f64::from(n),
            ms(down),
            ms(down) / f64::from(n)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
