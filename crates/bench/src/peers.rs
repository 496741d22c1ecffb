//! `edgenet-bench peers`: "one machine" — a bridge with the host address, outbound NAT and K node
//! namespaces on it — built and torn down by edgenet and by its peers, interleaved in one run so
//! that the machine's noise hits every row alike:
//!
//! - `floor`: one `ip -batch` in the machine (bridge, address, node namespaces, veths), one
//!   `ip -n NODE -batch` per node, one `nft -f`; removed link by link, then the namespaces.
//! - `floor_grp`: the same with every link in one link group, removed by one `link del group`.
//! - `netavark`: Podman's network stack (Debian's 1.4), one `netavark setup` per node.
//! - `cni-bridge`: the CNI bridge plugin (Debian's containernetworking-plugins) with host-local
//!   IPAM and `ipMasq`, one `ADD` per node.
//! - `edgenet`: `edgenet deploy` / `remove` (K = 1: Linux node; K = 2: Linux + Windows), nftables
//!   in-process through libnftables.
//! - `edgenet/nft`: the same binary with `EDGENET_NFT=process`, which spawns the `nft` program
//!   for every nftables command as edgenet did before (the in-process gain, side by side).
//!
//! The peers need their node namespaces made first (Podman makes them); that `ip netns add` is
//! counted in their time, since edgenet and the floor make theirs too. Every tool runs in its own
//! throwaway machine namespace; nothing touches the host's own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::deploy::{edgenet_bin, median, ms, Ns};
use crate::sys::{del_netns, feed, forget_notes};

/// What one build or teardown cost in work rather than time, summed over every process the tool
/// ran (the kernel adds a reaped child's usage, its own reaped children's included, to its
/// parent's): CPU time, minor page faults and voluntary context switches. Counts, not clock
/// readings between two events, so they move far less with the machine's phase than wall time
/// does (a page fault here costs ~1 µs when the machine is warm and ~9 µs after a quarter
/// second idle, which wall time and CPU time both pay, but the count of faults does not).
#[derive(Clone, Copy, Default)]
struct Work {
    cpu: Duration,
    minor_faults: i64,
    voluntary_switches: i64,
}

impl Work {
    /// The usage of every child reaped so far.
    fn children() -> Work {
        // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct we own.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Work {
            cpu: tv(u.ru_utime) + tv(u.ru_stime),
            minor_faults: u.ru_minflt,
            voluntary_switches: u.ru_nvcsw,
        }
    }

    fn since(self, before: Work) -> Work {
        Work {
            cpu: self.cpu.saturating_sub(before.cpu),
            minor_faults: self.minor_faults - before.minor_faults,
            voluntary_switches: self.voluntary_switches - before.voluntary_switches,
        }
    }

    /// Each field's median over the rounds.
    fn median(v: &[Work]) -> Work {
        let mid = |mut x: Vec<i64>| {
            x.sort_unstable();
            x[x.len() / 2]
        };
        Work {
            cpu: median(v.iter().map(|w| w.cpu).collect()),
            minor_faults: mid(v.iter().map(|w| w.minor_faults).collect()),
            voluntary_switches: mid(v.iter().map(|w| w.voluntary_switches).collect()),
        }
    }
}

const NETAVARK: &str = "/usr/lib/podman/netavark";
const CNI_DIR: &str = "/usr/lib/cni";
const SUBNET: &str = "192.168.0.0/24";
const GATEWAY: &str = "192.168.0.1";
const BRIDGE: &str = "aksedgesw-int";
/// Link group of the `floor_grp` row: any number no tool here uses.
const FLOOR_GROUP: u32 = 4242;

/// One tool that can build "one machine" with `k` nodes inside machine namespace `ns`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Floor,
    FloorGroup,
    Netavark,
    CniBridge,
    Edgenet,
    /// edgenet with `EDGENET_NFT=library`: libnftables in-process instead of native netlink.
    EdgenetLibrary,
    /// edgenet with `EDGENET_NFT=process`: the `nft` program for every nftables command.
    EdgenetNftProgram,
}

impl Tool {
    pub fn label(self) -> &'static str {
        match self {
            Tool::Floor => "floor",
            Tool::FloorGroup => "floor_grp",
            Tool::Netavark => "netavark 1.4",
            Tool::CniBridge => "CNI bridge 1.1",
            Tool::Edgenet => "edgenet",
            Tool::EdgenetLibrary => "edgenet/libnft",
            Tool::EdgenetNftProgram => "edgenet/nft",
        }
    }

    fn is_edgenet(self) -> bool {
        matches!(
            self,
            Tool::Edgenet | Tool::EdgenetLibrary | Tool::EdgenetNftProgram
        )
    }
}

/// Everything a run needs to find its files.
pub struct Bench {
    dir: PathBuf,
    resolv: PathBuf,
    both: PathBuf,
    peak_rss_kib: std::cell::Cell<i64>,
}

fn node_ns(machine: &str, i: usize) -> String {
    format!("{machine}-n{i}")
}

fn node_ip(i: usize) -> String {
    format!("192.168.0.{}", i + 2)
}

fn in_machine<'a>(ns: &'a str, argv: &[&'a str]) -> Vec<String> {
    let mut v = vec!["nsenter".to_string(), format!("--net=/run/netns/{ns}")];
    v.extend(argv.iter().map(|s| s.to_string()));
    v
}

fn run_quiet(argv: &[String], stdin: Option<&str>, env: &[(&str, String)]) -> bool {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// Runs `argv` (which must succeed) and returns its peak RSS in KiB. `nsenter` execs the
/// program in its own process, so this is the program's peak. The child is reaped here with
/// `wait4` for its own rusage (`RUSAGE_CHILDREN` would mix in every peer's).
#[allow(clippy::zombie_processes)] // reaped by the wait4 below
fn run_measured(argv: &[String], env: &[(&str, String)]) -> i64 {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our own unreaped child; status and usage are ours to fill. The
    // `Child` is not waited for afterwards (dropping it does not wait).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 {argv:?}");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{argv:?} failed (run it by hand to see why)"
    );
    usage.ru_maxrss
}

fn must(argv: &[String], stdin: Option<&str>, env: &[(&str, String)]) {
    assert!(run_quiet(argv, stdin, env), "{argv:?} failed");
}

/// `ip netns add` for the peers' node namespaces, in one process.
fn add_node_namespaces(machine: &str, k: usize) {
    let batch: String = (0..k)
        .map(|i| format!("netns add {}\n", node_ns(machine, i)))
        .collect();
    feed(&["ip", "-batch", "-"], &batch);
}

fn del_node_namespaces(machine: &str, k: usize) {
    let batch: String = (0..k)
        .map(|i| {
            forget_notes(&node_ns(machine, i));
            format!("netns del {}\n", node_ns(machine, i))
        })
        .collect();
    feed(&["ip", "-force", "-batch", "-"], &batch);
}

fn floor_nft() -> String {
    format!(
        "table ip floor {{\n chain postrouting {{ type nat hook postrouting priority srcnat; ip saddr {SUBNET} ip daddr != {SUBNET} masquerade; }}\n chain forward {{ type filter hook forward priority filter; iifname \"{BRIDGE}\" oifname \"{BRIDGE}\" accept; oifname \"{BRIDGE}\" ct state established,related accept; oifname \"{BRIDGE}\" drop; iifname \"{BRIDGE}\" accept; }}\n}}\n"
    )
}

fn floor_up(machine: &str, k: usize, group: bool) {
    // `group` must come before `type` in `ip link add`.
    let grp = |s: &str| {
        if group {
            s.replacen(" type ", &format!(" group {FLOOR_GROUP} type "), 1)
        } else {
            s.to_string()
        }
    };
    let mut ip = format!(
        "{}\nlink set {BRIDGE} up\naddr add {GATEWAY}/24 dev {BRIDGE}\n",
        grp(&format!("link add {BRIDGE} type bridge"))
    );
    for i in 0..k {
        let ns = node_ns(machine, i);
        ip.push_str(&format!(
            "netns add {ns}\n{}\nlink set fl{i} master {BRIDGE}\nlink set fl{i} up\n",
            grp(&format!(
                "link add fl{i} type veth peer name eth0 netns {ns}"
            ))
        ));
    }
    feed(
        &[
            "nsenter",
            &format!("--net=/run/netns/{machine}"),
            "ip",
            "-batch",
            "-",
        ],
        &ip,
    );
    for i in 0..k {
        feed(
            &["ip", "-n", &node_ns(machine, i), "-batch", "-"],
            &format!(
                "link set lo up\nlink set eth0 up\naddr add {}/24 dev eth0\nroute add default via {GATEWAY}\n",
                node_ip(i)
            ),
        );
    }
    feed(
        &[
            "nsenter",
            &format!("--net=/run/netns/{machine}"),
            "nft",
            "-f",
            "-",
        ],
        &floor_nft(),
    );
}

fn floor_down(machine: &str, k: usize, group: bool) {
    let mut ip = String::new();
    if group {
        ip.push_str(&format!("link del group {FLOOR_GROUP}\n"));
    } else {
        for i in 0..k {
            ip.push_str(&format!("link del fl{i}\n"));
        }
        ip.push_str(&format!("link del {BRIDGE}\n"));
    }
    feed(
        &[
            "nsenter",
            &format!("--net=/run/netns/{machine}"),
            "ip",
            "-batch",
            "-",
        ],
        &ip,
    );
    feed(
        &[
            "nsenter",
            &format!("--net=/run/netns/{machine}"),
            "nft",
            "delete",
            "table",
            "ip",
            "floor",
        ],
        "",
    );
    del_node_namespaces(machine, k);
}

fn netavark_options(i: usize) -> String {
    serde_json::json!({
        "container_id": format!("{:0>64}", i),
        "container_name": format!("n{i}"),
        "networks": {"edge": {"static_ips": [node_ip(i)], "interface_name": "eth0"}},
        "network_info": {"edge": {
            "name": "edge",
            "id": "e".repeat(64),
            "driver": "bridge",
            "network_interface": BRIDGE,
            "subnets": [{"subnet": SUBNET, "gateway": GATEWAY}],
            "ipv6_enabled": false,
            "internal": false,
            "dns_enabled": false,
            "ipam_options": {"driver": "host-local"}
        }}
    })
    .to_string()
}

fn netavark(machine: &str, dir: &Path, k: usize, verb: &str) {
    let config = dir.join(format!("netavark-{machine}"));
    for i in 0..k {
        let argv = in_machine(
            machine,
            &[
                NETAVARK,
                "--config",
                config.to_str().unwrap(),
                verb,
                &format!("/run/netns/{}", node_ns(machine, i)),
            ],
        );
        must(&argv, Some(&netavark_options(i)), &[]);
    }
}

fn cni_config(dir: &Path, machine: &str) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "edge",
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
            "dataDir": dir.join(format!("cni-ipam-{machine}")),
        }
    })
    .to_string()
}

fn cni(machine: &str, dir: &Path, k: usize, command: &str) {
    let conf = cni_config(dir, machine);
    for i in 0..k {
        let argv = in_machine(machine, &[&format!("{CNI_DIR}/bridge")]);
        let env = [
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", format!("{machine}-{i}")),
            ("CNI_NETNS", format!("/run/netns/{}", node_ns(machine, i))),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", CNI_DIR.to_string()),
        ];
        must(&argv, Some(&conf), &env);
    }
}

impl Bench {
    pub fn new() -> Bench {
        let dir = std::env::temp_dir().join(format!("edgenet-bench-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 198.51.100.53\n").unwrap();
        let both = dir.join("linux-windows.json");
        std::fs::write(
            &both,
            r#"{"Machines": [{"LinuxNode": {}, "WindowsNode": {}}]}"#,
        )
        .unwrap();
        Bench {
            dir,
            resolv,
            both,
            peak_rss_kib: std::cell::Cell::new(0),
        }
    }

    fn edgenet(&self, tool: Tool, machine: &str, args: &[&str]) {
        let argv = in_machine(machine, &[edgenet_bin().to_str().unwrap()]);
        let mut argv = argv;
        argv.extend(args.iter().map(|s| s.to_string()));
        let backend = match tool {
            Tool::EdgenetNftProgram => "process",
            Tool::EdgenetLibrary => "library",
            _ => "auto",
        };
        let env = [
            ("EDGENET_NFT", backend.to_string()),
            (
                "EDGENET_STATE_DIR",
                self.dir
                    .join(format!("state-{machine}"))
                    .display()
                    .to_string(),
            ),
            ("EDGENET_RESOLV_CONF", self.resolv.display().to_string()),
        ];
        let rss = run_measured(&argv, &env);
        let peak = &self.peak_rss_kib;
        peak.set(peak.get().max(rss));
    }

    /// The largest peak RSS of any edgenet run so far, in KiB.
    pub fn edgenet_peak_rss_kib(&self) -> i64 {
        self.peak_rss_kib.get()
    }

    fn edgenet_deploy_args(&self, k: usize) -> Vec<String> {
        match k {
            1 => vec!["deploy".into()],
            2 => vec![
                "deploy".into(),
                "-c".into(),
                self.both.display().to_string(),
            ],
            _ => panic!("edgenet runs one Linux and one Windows node per machine"),
        }
    }

    /// Builds "one machine" with `k` nodes; returns the wall time.
    pub fn up(&self, tool: Tool, machine: &str, k: usize) -> Duration {
        let start = Instant::now();
        match tool {
            Tool::Floor => floor_up(machine, k, false),
            Tool::FloorGroup => floor_up(machine, k, true),
            Tool::Netavark => {
                add_node_namespaces(machine, k);
                netavark(machine, &self.dir, k, "setup");
            }
            Tool::CniBridge => {
                add_node_namespaces(machine, k);
                cni(machine, &self.dir, k, "ADD");
            }
            Tool::Edgenet | Tool::EdgenetLibrary | Tool::EdgenetNftProgram => {
                let args = self.edgenet_deploy_args(k);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.edgenet(tool, machine, &args);
            }
        }
        start.elapsed()
    }

    /// A second `deploy` with nothing to change (edgenet only).
    pub fn redeploy(&self, tool: Tool, machine: &str, k: usize) -> Duration {
        self.up(tool, machine, k)
    }

    /// Tears "one machine" down completely; returns the wall time.
    pub fn down(&self, tool: Tool, machine: &str, k: usize) -> Duration {
        let start = Instant::now();
        match tool {
            Tool::Floor => floor_down(machine, k, false),
            Tool::FloorGroup => floor_down(machine, k, true),
            Tool::Netavark => {
                // netavark deletes the bridge with its last container.
                netavark(machine, &self.dir, k, "teardown");
                del_node_namespaces(machine, k);
            }
            Tool::CniBridge => {
                cni(machine, &self.dir, k, "DEL");
                del_node_namespaces(machine, k);
                // The plugin leaves the bridge; Podman's CNI era deleted it by hand.
                must(
                    &in_machine(machine, &["ip", "link", "del", BRIDGE]),
                    None,
                    &[],
                );
            }
            Tool::Edgenet | Tool::EdgenetLibrary | Tool::EdgenetNftProgram => {
                self.edgenet(tool, machine, &["remove"])
            }
        }
        start.elapsed()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The peers' binaries, or why this benchmark cannot run.
pub fn peers_present() -> Result<(), String> {
    for path in [NETAVARK, &format!("{CNI_DIR}/bridge"), "/usr/sbin/iptables"] {
        if !Path::new(path).exists() {
            return Err(format!(
                "{path} is missing: apt-get install netavark containernetworking-plugins iptables"
            ));
        }
    }
    Ok(())
}

fn version_of(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
        })
        .unwrap_or_default()
}

/// The 1, 5 and 15 minute load averages: the run's noise, printed with its results.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Removes whatever a failed run left in a machine namespace by deleting the namespace and its
/// node namespaces.
struct MachineGuard {
    ns: Option<Ns>,
    name: String,
    k: usize,
}

impl Drop for MachineGuard {
    fn drop(&mut self) {
        for i in 0..self.k {
            del_netns(&node_ns(&self.name, i));
        }
        drop(self.ns.take());
    }
}

/// The order of the tools in each round: a small xorshift generator, seeded with K so that
/// a run can be repeated.
struct Shuffle(u64);

impl Shuffle {
    fn new(seed: u64) -> Shuffle {
        Shuffle(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `0..n` in a random order (Fisher-Yates).
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }
}

/// Lets the kernel finish what the previous operation deferred (namespace dismantling, RCU
/// callbacks) before the next one is timed.
fn settle() {
    std::thread::sleep(SETTLE);
}

/// Long enough for the kernel to dismantle the namespaces of one teardown on this machine
/// (tens of milliseconds each when idle).
const SETTLE: Duration = Duration::from_millis(250);

pub fn bench(runs: usize) {
    if let Err(why) = peers_present() {
        eprintln!("edgenet-bench peers: {why}");
        std::process::exit(2);
    }
    let bench = Bench::new();
    println!(
        "one machine (bridge + NAT + K node namespaces): build and tear down, {runs} runs each, \
         interleaved, median (release build)"
    );
    println!(
        "versions: {} | {} | CNI plugins {} | {}",
        version_of(&[NETAVARK, "--version"]),
        version_of(&["ip", "-V"]),
        version_of(&[
            "dpkg-query",
            "-W",
            "-f=${Version}",
            "containernetworking-plugins"
        ]),
        version_of(&["nft", "--version"]),
    );
    println!("load average at the start: {}", load_average());
    let all = [
        Tool::Floor,
        Tool::FloorGroup,
        Tool::Edgenet,
        Tool::EdgenetLibrary,
        Tool::EdgenetNftProgram,
        Tool::Netavark,
        Tool::CniBridge,
    ];
    let pid = std::process::id();
    // Every operation's time on stderr as it is measured, for a look behind the medians.
    let raw = std::env::var_os("EDGENET_BENCH_RAW").is_some();
    for k in [1usize, 2, 20] {
        let tools: Vec<Tool> = all
            .iter()
            .copied()
            .filter(|t| k <= 2 || !t.is_edgenet())
            .collect();
        let machines: Vec<MachineGuard> = tools
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let name = format!("enp{i}k{k}-{pid}");
                MachineGuard {
                    ns: Some(Ns::new(&name)),
                    name,
                    k,
                }
            })
            .collect();
        let mut ups = vec![Vec::new(); tools.len()];
        let mut downs = vec![Vec::new(); tools.len()];
        let mut redeploys = vec![Vec::new(); tools.len()];
        let mut up_work = vec![Vec::new(); tools.len()];
        let mut down_work = vec![Vec::new(); tools.len()];
        let rounds = if k == 20 {
            runs.div_ceil(3).max(3)
        } else {
            runs
        };
        let mut order = Shuffle::new(k as u64);
        let mut cold_starts = Vec::new();
        for round in 0..rounds {
            // What any tool's first process pays after the settle, for reading the rows.
            settle();
            let start = Instant::now();
            must(&in_machine(&machines[0].name, &["true"]), None, &[]);
            cold_starts.push(start.elapsed());
            // Every operation starts on a settled kernel (a teardown leaves work behind: a
            // deleted namespace is dismantled later by a kernel worker), and the tools run in
            // a new random order every round: with a fixed rotation (even reversed every other
            // round) a tool has the same two neighbours all along, and whatever one neighbour's
            // teardown leaves to the kernel is billed to it in half the rounds.
            for t in order.permutation(tools.len()) {
                let tool = &tools[t];
                let m = &machines[t].name;
                settle();
                let before = Work::children();
                ups[t].push(bench.up(*tool, m, k));
                up_work[t].push(Work::children().since(before));
                if tool.is_edgenet() {
                    settle();
                    redeploys[t].push(bench.redeploy(*tool, m, k));
                }
                settle();
                let before = Work::children();
                downs[t].push(bench.down(*tool, m, k));
                down_work[t].push(Work::children().since(before));
                if raw {
                    let last = |v: &Vec<Duration>| v.last().map(|d| ms(*d)).unwrap_or(0.0);
                    eprintln!(
                        "raw K={k} round {round} {:<16} deploy {:.1} ms redeploy {:.1} ms remove {:.1} ms",
                        tool.label(),
                        last(&ups[t]),
                        if tool.is_edgenet() { last(&redeploys[t]) } else { 0.0 },
                        last(&downs[t]),
                    );
                }
            }
        }
        println!();
        println!("K = {k} node(s), {rounds} rounds");
        println!(
            "(one process started after the same settle, `nsenter … true`: {:.1} ms)",
            ms(median(cold_starts))
        );
        println!(
            "{:<16} {:>10} {:>10} {:>14} {:>16}",
            "tool", "deploy", "remove", "deploy/floor", "remove/floor_grp"
        );
        let med_up: Vec<Duration> = ups.into_iter().map(median).collect();
        let med_down: Vec<Duration> = downs.into_iter().map(median).collect();
        let floor_up = med_up[0];
        let grp_down = med_down[1];
        for (t, tool) in tools.iter().enumerate() {
            println!(
                "{:<16} {:>8.1}ms {:>8.1}ms {:>13.2}× {:>15.2}×",
                tool.label(),
                ms(med_up[t]),
                ms(med_down[t]),
                med_up[t].as_secs_f64() / floor_up.as_secs_f64(),
                med_down[t].as_secs_f64() / grp_down.as_secs_f64(),
            );
        }
        println!(
            "work, summed over the tool's processes (median): CPU time, minor page faults, voluntary waits"
        );
        println!(
            "{:<16} {:>10} {:>7} {:>6} {:>10} {:>7} {:>6}",
            "tool", "deploy CPU", "faults", "waits", "remove CPU", "faults", "waits"
        );
        for (t, tool) in tools.iter().enumerate() {
            let (u, d) = (Work::median(&up_work[t]), Work::median(&down_work[t]));
            println!(
                "{:<16} {:>8.1}ms {:>7} {:>6} {:>8.1}ms {:>7} {:>6}",
                tool.label(),
                ms(u.cpu),
                u.minor_faults,
                u.voluntary_switches,
                ms(d.cpu),
                d.minor_faults,
                d.voluntary_switches,
            );
        }
        for (t, tool) in tools.iter().enumerate() {
            if tool.is_edgenet() {
                let r = median(std::mem::take(&mut redeploys[t]));
                println!(
                    "{} redeploy with no change: {:.1} ms = {:.2}× floor",
                    tool.label(),
                    ms(r),
                    r.as_secs_f64() / floor_up.as_secs_f64()
                );
            }
        }
        if let Some(e) = tools.iter().position(|t| *t == Tool::Edgenet) {
            let n = tools.iter().position(|t| *t == Tool::Netavark).unwrap();
            println!(
                "netavark / edgenet deploy: {:.1}×",
                med_up[n].as_secs_f64() / med_up[e].as_secs_f64()
            );
        } else {
            for (t, tool) in tools.iter().enumerate() {
                println!(
                    "{:<16} per node: {:.1} ms deploy, {:.1} ms remove",
                    tool.label(),
                    ms(med_up[t]) / k as f64,
                    ms(med_down[t]) / k as f64
                );
            }
        }
    }
    println!();
    println!(
        "peak RSS of any edgenet run: {:.1} MiB; load average at the end: {}",
        bench.edgenet_peak_rss_kib() as f64 / 1024.0,
        load_average()
    );
    let _ = bench.dir();
}
