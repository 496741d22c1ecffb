//! `edgenet-bench lab [N …]`: `edgenet lab up --scalable N` (the lab, then one real deploy per
//! machine), `lab status` and `lab down` (each deployment of netns nodes goes with its
//! machine's namespace; `EDGENET_BENCH_LAB_REMOVE_EACH=1`: a real `edgenet remove` per machine
//! first, `lab down --remove-each`) for each machine count N (default 1, 10, 50, 100 and 255);
//! targets: 255 machines up in < 3 s and down in < 3 s, time per machine flat or falling as
//! the lab grows.
//!
//! `down` returns once the namespaces are deleted; the kernel dismantles them afterwards (in
//! the background, holding the RTNL lock). "kernel" is the time from the start of `down`
//! until the last machine's adapter is gone from the LAN namespace (which the bench holds
//! open meanwhile), i.e. until the kernel has dismantled every machine namespace.
//!
//! The phases come from the lab's debug log (`EDGENET_LOG=edgenet_lab=debug`): for `up`, the
//! sandbox (namespaces, adapters, services answering) and the deploys (each machine's network
//! checked, then its deploy); for `down`, the undeploys and the namespaces deleted.
//!
//! The machines this bench runs on differ by 1.5–2× in kernel speed, so an absolute time says
//! little across them. Each run therefore also builds the lab's **floor**, interleaved with the
//! lab (after its `down`, in the same run): the same kernel objects an `up` makes — the machine
//! namespaces wired to a LAN bridge (a veth each, address, default route) and, in each
//! machine, what its deploy makes: the switch (a bridge with the adapter as its port and the
//! adapter's address), the node namespace with its veth, address and default route, and the
//! switch's bridge nft table (node port checks) — built by the standard tools the cheap way
//! (`ip -batch` for the namespaces and the LAN, then per machine one `ip -n M -batch`, one
//! `ip -n NODE -batch` and one `nsenter --net=… nft -f`, `2 × cores` machines at once), without
//! the lab's services, probes and state. "up/floor" is the median of the runs' up ÷ floor:
//! comparable across machines. `EDGENET_BENCH_LAB_FLOOR=0` skips it,
//! `EDGENET_BENCH_LAB_FLOOR_WORKERS` sets how many machines are built at once.
//!
//! "up cpu" and "floor cpu" split the whole machine's CPU time during an up (and a floor) by
//! kind, from /proc/stat (medians of the runs): on a machine of few cores the wall time is
//! about their sum ÷ cores, and `softirq` is mostly the frames flooded over the LAN (every
//! broadcast of one machine reaches all of them: it grows as N²). Meaningful only on an
//! otherwise quiet machine.
//!
//! Each run also brings the same lab up once more from the generated config with
//! `Network.SkipAddressFreeCheck` set ("skip-check"): the same deploys without their RFC 5227
//! address probes (SPEC §3.2; each node's announcement is still sent). At 255 machines those
//! probes are three quarters of the broadcasts every machine receives, so the two ups side
//! by side show what the check costs on this machine. `EDGENET_BENCH_LAB_SKIPCHECK=0` skips it.
//!
//! `EDGENET_BENCH_LAB_RUNS` (default 1) repeats every count and prints the median of each
//! column; `EDGENET_BENCH_LAB_STATUS=0` skips `lab status` (minutes at 255 machines on a
//! small host); `EDGENET_BENCH_LAB_NAME` names the lab (`<it><pid>`, default `bench<pid>`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::sys::{feed, CpuTimes};

/// Machine counts measured when none are given.
const DEFAULT_COUNTS: [u8; 5] = [1, 10, 50, 100, 255];

/// Lab debug messages timed as phases (each logs `took=` since the start of its step).
const UP_PHASES: [(&str, &str); 2] = [
    ("services ready", "sandbox"),
    ("machines deployed", "deploys"),
];
const DOWN_PHASES: [(&str, &str); 2] = [
    ("machines undeployed", "undeploys"),
    ("namespaces deleted", "namespaces"),
];

struct Run {
    took: Duration,
    /// `took=` of each phase message found in the debug log, by phase name.
    phases: Vec<(&'static str, Duration)>,
}

fn edgenet(
    bin: &Path,
    name: &str,
    dir: &Path,
    args: &[&str],
    phases: &[(&str, &'static str)],
) -> Run {
    let start = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .args(["--name", name, "--lab-dir"])
        .arg(dir)
        .env("EDGENET_LOG", "edgenet_lab=debug")
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
    let log = String::from_utf8_lossy(&out.stderr);
    let phases = phases
        .iter()
        .filter_map(|(message, phase)| {
            let line = log.lines().find(|l| l.contains(message))?;
            Some((*phase, parse_took(line)?))
        })
        .collect();
    Run { took, phases }
}

/// The `took=…` of a tracing line (a `Duration`'s debug form: `1.5s`, `316.3ms`, `25µs`).
fn parse_took(line: &str) -> Option<Duration> {
    let value = line.split("took=").nth(1)?.split_whitespace().next()?;
    let (number, unit) = value.split_at(value.find(|c: char| c.is_alphabetic() || c == 'µ')?);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Waits until no machine adapter (`m<i>`) is left in the LAN namespace held open by `lan`:
/// the kernel has then dismantled every machine namespace.
fn wait_machines_dismantled(lan: &File) {
    let path = format!("/proc/{}/fd/{}", std::process::id(), lan.as_raw_fd());
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let out = Command::new("nsenter")
            .arg(format!("--net={path}"))
            .args(["ip", "-o", "link", "show"])
            .output()
            .expect("nsenter and ip are installed");
        let left = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.split(": ").nth(1).is_some_and(|n| {
                    n.strip_prefix('m')
                        .and_then(|r| r.split('@').next())
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                })
            })
            .count();
        if left == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the kernel did not dismantle the lab's machines within 120 s");
}

/// The lab's floor of `n` machines, its namespaces named `<prefix>-…`: see the module doc.
struct Floor {
    prefix: String,
    n: u8,
}

/// The bridge table a lab machine's deploy makes for its node port (`enl`), as nft text.
fn floor_table(node: std::net::Ipv4Addr, mac: &str) -> String {
    format!(
        "table bridge edgenet_floor {{
  chain prerouting {{ type filter hook prerouting priority filter; policy accept;
    iifname != \"enl\" accept
    iifname \"enl\" ether type != {{ ip, arp }} drop
    iifname \"enl\" ether saddr != {mac} drop
    iifname \"enl\" arp saddr ether != {mac} drop
    iifname \"enl\" arp saddr ip != {{ 0.0.0.0, {node} }} drop
    iifname \"enl\" ip saddr != {{ 10.42.0.0/16, {node} }} drop
  }}
  chain forward {{ type filter hook forward priority filter; policy accept;
    oifname \"enl\" ether type != {{ ip, arp }} drop
  }}
}}
"
    )
}

impl Floor {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Builds it; returns how long that took.
    fn up(&self, workers: usize) -> Duration {
        let started = Instant::now();
        let lan = self.ns("lan");
        let mut batch = format!("netns add {lan}\n");
        for i in 1..=self.n {
            batch += &format!(
                "netns add {}\nnetns add {}\n",
                self.ns(&format!("m{i}")),
                self.ns(&format!("n{i}"))
            );
        }
        feed(&["ip", "-batch", "-"], &batch);
        let mut batch = String::from(
            "link set lo up\nlink add lan0 type bridge\nlink set lan0 up\naddr add 198.18.0.1/22 dev lan0\n",
        );
        for i in 1..=self.n {
            batch += &format!(
                "link add m{i} type veth peer name eth0 netns {}\nlink set m{i} master lan0 up\n",
                self.ns(&format!("m{i}"))
            );
        }
        feed(&["ip", "-n", &lan, "-batch", "-"], &batch);
        let next = std::sync::atomic::AtomicUsize::new(1);
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i > usize::from(self.n) {
                        break;
                    }
                    self.machine(i);
                });
            }
        });
        started.elapsed()
    }

    /// One machine: the lab's wiring of its adapter (its link-local address settled, as the lab
    /// makes it), then what its deploy makes.
    fn machine(&self, i: usize) {
        let (m, node) = (self.ns(&format!("m{i}")), self.ns(&format!("n{i}")));
        let ip = |host: usize| {
            let base = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0));
            std::net::Ipv4Addr::from(base + u32::try_from(host).expect("a lab address"))
        };
        let (address, node_address) = (ip(10 + i), ip(512 + i));
        let mac = format!("02:ed:9e:1c:{:02x}:{:02x}", i / 256, i % 256);
        let machine = format!(
            "link set lo up
addr add {address}/22 dev eth0
link set eth0 up
route add default via 198.18.0.1
link add aksedgesw-ext type bridge
link set eth0 master aksedgesw-ext
addr del {address}/22 dev eth0
addr add {address}/22 dev aksedgesw-ext
link set aksedgesw-ext up
route add default via 198.18.0.1
link add enl type veth peer name eth0 address {mac} netns {node}
link set enl master aksedgesw-ext up
"
        );
        // As the lab does: the adapter's link-local address settled at once (no DAD).
        let ns = edgenet_host::netns::NetNs::open(&m).expect("the machine's namespace");
        ns.run(|| edgenet_host::sysctl::write("net.ipv6.conf.eth0.accept_dad", "0"))
            .expect("a thread in the machine's namespace")
            .expect("accept_dad of the machine's adapter");
        feed(&["ip", "-n", &m, "-batch", "-"], &machine);
        let inside = format!(
            "link set lo up\nlink set eth0 up\naddr add {node_address}/22 dev eth0\nroute add default via 198.18.0.1\n"
        );
        feed(&["ip", "-n", &node, "-batch", "-"], &inside);
        let net = format!("--net=/run/netns/{m}");
        feed(
            &["nsenter", &net, "nft", "-f", "-"],
            &floor_table(node_address, &mac),
        );
    }

    /// Deletes its namespaces and waits until the kernel has dismantled the machines.
    fn down(&self) {
        let lan = File::open(format!("/run/netns/{}", self.ns("lan"))).ok();
        let _ = self.delete();
        if let Some(lan) = lan {
            wait_machines_dismantled(&lan);
        }
    }

    fn delete(&self) -> std::io::Result<std::process::Output> {
        let mut batch = String::new();
        for role in std::iter::once("lan".to_string())
            .chain((1..=self.n).flat_map(|i| [format!("m{i}"), format!("n{i}")]))
        {
            let name = self.ns(&role);
            if Path::new("/run/netns").join(&name).exists() {
                crate::sys::forget_notes(&name);
                batch += &format!("netns del {name}\n");
            }
        }
        let mut child = Command::new("ip")
            .args(["-force", "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        use std::io::Write;
        child.stdin.take().unwrap().write_all(batch.as_bytes())?;
        child.wait_with_output()
    }
}

impl Drop for Floor {
    /// Nothing of a floor outlives the bench, even when a step failed.
    fn drop(&mut self) {
        let _ = self.delete();
    }
}

/// Whether the floor can be built here (`ip`, `nft` and `nsenter` installed).
fn floor_tools() -> bool {
    ["ip", "nft", "nsenter"].iter().all(|tool| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
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

/// The config `lab up --scalable N` generated, with `Network.SkipAddressFreeCheck` set.
fn write_skip_check_config(generated: &Path, to: &Path) {
    let text = std::fs::read_to_string(generated)
        .unwrap_or_else(|e| panic!("lab up --scalable left no {}: {e}", generated.display()));
    let mut config: serde_json::Value =
        serde_json::from_str(&text).expect("a generated config is JSON");
    config["Network"]["SkipAddressFreeCheck"] = true.into();
    std::fs::write(to, serde_json::to_vec_pretty(&config).expect("serializes"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of each kind on its own (the machine's CPU during each run).
fn median_cpu(runs: &[CpuTimes]) -> CpuTimes {
    let mid = |f: fn(&CpuTimes) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    CpuTimes {
        user: mid(|c| c.user),
        system: mid(|c| c.system),
        softirq: mid(|c| c.softirq),
        idle: mid(|c| c.idle),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// `sandbox 0.4s, deploys 5.6s`: the median of each phase over the runs.
fn phases_line(runs: &[Run]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for run in runs {
        for (name, _) in &run.phases {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    names
        .iter()
        .map(|name| {
            let values: Vec<Duration> = runs
                .iter()
                .filter_map(|r| r.phases.iter().find(|(n, _)| n == name).map(|(_, d)| *d))
                .collect();
            format!("{name} {:.0}ms", median(values).as_secs_f64() * 1e3)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn bench() {
    let bin = std::env::current_exe().unwrap().with_file_name("edgenet");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p edgenet"
    );
    let runs = env_number("EDGENET_BENCH_LAB_RUNS", 1).max(1);
    let with_status = env_number("EDGENET_BENCH_LAB_STATUS", 1) != 0;
    let remove_each = env_number("EDGENET_BENCH_LAB_REMOVE_EACH", 0) != 0;
    // Unique per run (namespaces are `enl-<name>-…`), so benches side by side never meet;
    // `EDGENET_BENCH_LAB_NAME` puts a prefix of the caller's first (e.g. a helper's own).
    let name = format!(
        "{}{}",
        std::env::var("EDGENET_BENCH_LAB_NAME").unwrap_or_else(|_| "bench".into()),
        std::process::id()
    );
    let dir = std::env::temp_dir().join(format!("edgenet-bench-lab-{}", std::process::id()));
    let lab_dir = dir.join(&name);
    let down_args: &[&str] = if remove_each {
        &["lab", "down", "--remove-each"]
    } else {
        &["lab", "down"]
    };
    println!(
        "edgenet lab with a generated ScalableCluster (release build), median of {runs}{}",
        if remove_each {
            ", down with --remove-each"
        } else {
            ""
        }
    );
    let floor_workers = env_number(
        "EDGENET_BENCH_LAB_FLOOR_WORKERS",
        2 * std::thread::available_parallelism().map_or(1, usize::from),
    );
    let with_skip_check = env_number("EDGENET_BENCH_LAB_SKIPCHECK", 1) != 0;
    let with_floor = env_number("EDGENET_BENCH_LAB_FLOOR", 1) != 0 && {
        let ok = floor_tools();
        if !ok {
            eprintln!("edgenet-bench lab: no floor (it needs ip, nft and nsenter)");
        }
        ok
    };
    println!(
        "{:>9} {:>10} {:>12} {:>10} {:>10} {:>12} {:>10} {:>10} {:>9}",
        "machines",
        "up",
        "up/machine",
        "status",
        "down",
        "down/machine",
        "kernel",
        "floor",
        "up/floor"
    );
    for n in counts() {
        let count = n.to_string();
        let (mut ups, mut statuses, mut downs, mut kernel) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut floors, mut ratios) = (Vec::new(), Vec::new());
        let (mut up_cpu, mut floor_cpu) = (Vec::new(), Vec::new());
        let (mut skip_ups, mut skip_cpu) = (Vec::new(), Vec::new());
        // Outside the lab directory, which `lab down` deletes.
        let skip_config = std::env::temp_dir().join(format!(
            "edgenet-bench-skipcheck-{}-{n}.json",
            std::process::id()
        ));
        for _ in 0..runs {
            let before = CpuTimes::now();
            ups.push(edgenet(
                &bin,
                &name,
                &dir,
                &["lab", "up", "--scalable", &count, "--no-status"],
                &UP_PHASES,
            ));
            up_cpu.push(CpuTimes::now().since(before));
            if with_skip_check && !skip_config.exists() {
                write_skip_check_config(
                    &dir.join(format!("{name}-scalable-{n}.json")),
                    &skip_config,
                );
            }
            if with_status {
                statuses.push(edgenet(&bin, &name, &dir, &["lab", "status"], &[]).took);
            }
            // Held open across `down`, so the bench can see the machines' adapters go.
            let lan = File::open(format!("/run/netns/enl-{name}-lan")).unwrap();
            let started = Instant::now();
            downs.push(edgenet(&bin, &name, &dir, down_args, &DOWN_PHASES));
            wait_machines_dismantled(&lan);
            kernel.push(started.elapsed());
            assert!(
                !lab_dir.join("lab.json").exists(),
                "lab down left its state"
            );
            if with_floor {
                let floor = Floor {
                    prefix: format!("{name}f"),
                    n,
                };
                let before = CpuTimes::now();
                let took = floor.up(floor_workers);
                floor_cpu.push(CpuTimes::now().since(before));
                floor.down();
                let up = ups.last().expect("an up was measured").took;
                ratios.push(up.as_secs_f64() / took.as_secs_f64());
                floors.push(took);
            }
            if with_skip_check {
                let config = skip_config.to_str().expect("a temp path is UTF-8");
                let before = CpuTimes::now();
                skip_ups.push(
                    edgenet(
                        &bin,
                        &name,
                        &dir,
                        &["lab", "up", config, "--no-status"],
                        &UP_PHASES,
                    )
                    .took,
                );
                skip_cpu.push(CpuTimes::now().since(before));
                let lan = File::open(format!("/run/netns/enl-{name}-lan")).unwrap();
                edgenet(&bin, &name, &dir, down_args, &DOWN_PHASES);
                wait_machines_dismantled(&lan);
            }
        }
        let _ = std::fs::remove_file(&skip_config);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let up = median(ups.iter().map(|r| r.took).collect());
        let down = median(downs.iter().map(|r| r.took).collect());
        let status = if with_status {
            format!("{:.0}ms", ms(median(statuses)))
        } else {
            "-".into()
        };
        let (floor, ratio) = if floors.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            ratios.sort_by(f64::total_cmp);
            (
                format!("{:.0}ms", ms(median(floors))),
                format!("{:.2}", ratios[ratios.len() / 2]),
            )
        };
        println!(
            "{n:>9} {:>8.0}ms {:>10.1}ms {status:>10} {:>8.0}ms {:>10.1}ms {:>8.0}ms {floor:>10} {ratio:>9}",
            ms(up),
            ms(up) / f64::from(n),
            ms(down),
            ms(down) / f64::from(n),
            ms(median(kernel)),
        );
        println!(
            "{:>9} up: {}; down: {}",
            "",
            phases_line(&ups),
            phases_line(&downs)
        );
        println!("{:>9} up cpu: {}", "", median_cpu(&up_cpu).line());
        if !floor_cpu.is_empty() {
            println!("{:>9} floor cpu: {}", "", median_cpu(&floor_cpu).line());
        }
        if !skip_ups.is_empty() {
            let skip = median(skip_ups);
            println!(
                "{:>9} skip-check up: {:.0}ms ({:.2}x the up); cpu: {}",
                "",
                ms(skip),
                skip.as_secs_f64() / up.as_secs_f64(),
                median_cpu(&skip_cpu).line()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
