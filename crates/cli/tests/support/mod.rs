//! A throwaway "machine" for deploy tests: a network namespace of the test's own, a state
//! directory and a resolv.conf in a temp dir, and `edgenet` run inside the namespace with
//! `nsenter --net` (never `ip netns exec`, whose private mount namespace would hide the node
//! namespaces edgenet creates). Everything is removed on drop, even when the test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether this build has failpoints (`EDGENET_FAILPOINT`, the cargo feature `failpoints`
/// that scripts/test.sh turns on); says so when not.
#[allow(dead_code)]
pub fn failpoints() -> bool {
    if !cfg!(feature = "failpoints") {
        eprintln!("skipped: needs failpoints (cargo test --features edgenet/failpoints)");
    }
    cfg!(feature = "failpoints")
}

/// The name of a namespace (or other machine-wide object) of this test run: `{prefix}-{tag}-{pid}`.
/// The process id tells runs apart (two runs of the suite at once, a run beside a killed one's
/// leftovers); `tag`, the tests of one run (they run at once in one process). Network
/// namespaces are files in /run/netns, shared by the whole machine: a name without the process
/// id meets the same test of another run.
pub fn run_name(prefix: &str, tag: &str) -> String {
    format!("{prefix}-{tag}-{}", std::process::id())
}

/// A lab name of this test run: `{prefix}{pid}` (lab names are letters and digits only, at
/// most 32 bytes). The whole process id, not a part of it: two runs whose ids share their last
/// digits must not share a lab.
pub fn lab_name(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id())
}

/// Returns `None` (after saying so) when the test cannot run here.
pub fn machine(tag: &str) -> Option<Machine> {
    if !is_root() {
        eprintln!("skipped: needs root to create network namespaces");
        return None;
    }
    Some(Machine::new(tag))
}

pub struct Machine {
    pub ns: String,
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub resolv: PathBuf,
    /// Deployment ids seen, so that drop can sweep their node namespaces.
    ids: std::cell::RefCell<Vec<String>>,
}

/// As [`machine`], in a namespace named `{prefix}-{tag}-{pid}` (a helper's own prefix).
pub fn machine_prefixed(prefix: &str, tag: &str) -> Option<Machine> {
    machine_named(&run_name(prefix, tag))
}

/// As [`machine`], with the machine namespace named `ns` exactly.
pub fn machine_named(ns: &str) -> Option<Machine> {
    if !is_root() {
        eprintln!("skipped: needs root to create network namespaces");
        return None;
    }
    Some(Machine::named(ns.to_string()))
}

impl Machine {
    fn new(tag: &str) -> Machine {
        Machine::named(run_name("enm", tag))
    }

    fn named(ns: String) -> Machine {
        // A namespace left by an earlier run of this test that was killed.
        del_netns(&ns);
        // No IPv6 duplicate address detection: its timers would make before/after dumps of
        // the namespace differ by when they were taken, not by what edgenet did.
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip netns exec {ns} sh -c 'echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad'"
        ));
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 198.51.100.53\n").unwrap();
        Machine {
            state: dir.path().join("state"),
            resolv,
            dir,
            ns,
            ids: Default::default(),
        }
    }

    /// Runs edgenet in the machine namespace with this machine's state dir and resolv.conf.
    pub fn edgenet(&self, args: &[&str]) -> Output {
        self.edgenet_env(args, &[])
    }

    pub fn edgenet_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(args)
            .env("EDGENET_STATE_DIR", &self.state)
            .env("EDGENET_RESOLV_CONF", &self.resolv)
            .env("NO_COLOR", "1")
            .env_remove("EDGENET_FAILPOINT")
            .env_remove("EDGENET_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("runs nsenter");
        if let Some(id) = self.state_id() {
            if !self.ids.borrow().contains(&id) {
                self.ids.borrow_mut().push(id);
            }
        }
        out
    }

    /// `edgenet ARGS` must exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.edgenet(args);
        assert!(
            out.status.success(),
            "edgenet {args:?} failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn write_config(&self, name: &str, v: &Value) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    }

    /// The built-in default config in a file (`edgenet config new` writes it): what a test
    /// deploys with `-c` to go back to the default over another recorded deployment (`deploy`
    /// without `-c` applies the recorded one again).
    pub fn default_config(&self) -> String {
        let p = self.dir.path().join("default.json");
        let out = Command::new(env!("CARGO_BIN_EXE_edgenet"))
            .args(["config", "new", "--force", "-f"])
            .arg(&p)
            .output()
            .expect("runs edgenet config new");
        assert!(out.status.success(), "{out:?}");
        p.display().to_string()
    }

    pub fn deploy(&self, config: Option<&str>) -> Value {
        let mut args = vec!["deploy", "--output", "json"];
        if let Some(c) = config {
            args.extend(["-c", c]);
        }
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    pub fn state_id(&self) -> Option<String> {
        // A first deploy writes state.json only at its end: a killed one has its id in
        // identity.json or in the journal's lines (each a whole state) — the guard must know
        // it to delete that deployment's node namespaces.
        let id_in = |text: &str| {
            serde_json::from_str::<Value>(text).ok().and_then(|v| {
                // A journal line is `{"base": …, "state": {…}}`.
                let state = if v.get("state").is_some() {
                    &v["state"]
                } else {
                    &v
                };
                state["deployment_id"].as_str().map(String::from)
            })
        };
        let read = |name: &str| std::fs::read_to_string(self.state.join(name)).ok();
        read("state.json")
            .and_then(|t| id_in(&t))
            .or_else(|| read("identity.json").and_then(|t| id_in(&t)))
            .or_else(|| read("state.journal").and_then(|t| t.lines().rev().find_map(id_in)))
    }

    /// `ip -j ARGS` inside the machine namespace, parsed.
    pub fn ip_json(&self, args: &str) -> Value {
        json_of(&format!("ip -n {} -j {args}", self.ns))
    }

    /// `ip -j ARGS` inside another namespace (a node's).
    pub fn ip_json_in(ns: &str, args: &str) -> Value {
        json_of(&format!("ip -n {ns} -j {args}"))
    }

    pub fn nft_json(&self) -> Value {
        json_of(&format!("ip netns exec {} nft -j list ruleset", self.ns))
    }

    pub fn sysctl(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        sh_out(&format!("ip netns exec {} cat {path}", self.ns))
            .trim()
            .to_string()
    }

    /// Namespaces that belong to this machine's deployments (node namespaces end with the id).
    pub fn node_namespaces(&self) -> Vec<String> {
        let ids = self.ids.borrow();
        let list = sh_out("ip netns list");
        let mut names: Vec<String> = list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| ids.iter().any(|id| n.ends_with(&format!("-{id}"))))
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// The namespace of the current deployment's Linux node.
    pub fn linux_node_namespace(&self) -> String {
        let id = self.state_id().expect("a deployment");
        self.node_namespaces()
            .into_iter()
            .find(|n| n.ends_with(&format!("-ledge-{id}")))
            .expect("the Linux node's namespace")
    }

    /// Everything a deployment can leave behind, for before/after comparisons, once the kernel
    /// has settled (see [`settled`]).
    pub fn dump(&self) -> Value {
        settled(|| self.dump_once())
    }

    fn dump_once(&self) -> Value {
        // The ruleset cache is a copy of the kernel's ruleset that a failed or refused run
        // drops (the next run reads the kernel): not part of what a refusal must leave as is.
        let files: Vec<String> = walk(&self.state)
            .into_iter()
            .filter(|f| !f.ends_with("/ruleset-cache.json"))
            .collect();
        serde_json::json!({
            "links": strip_volatile(self.ip_json("-d link show")),
            "addresses": strip_volatile(self.ip_json("addr show")),
            "routes": self.ip_json("route show table all"),
            "nft": strip_metainfo(self.nft_json()),
            "netns": self.node_namespaces(),
            "ip_forward": self.sysctl("net.ipv4.ip_forward"),
            "state_files": files,
        })
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(env!("CARGO_BIN_EXE_edgenet"))
            .args(["remove", "--wait", "5"])
            .env("EDGENET_STATE_DIR", &self.state)
            .env_remove("EDGENET_FAILPOINT")
            .output();
        for ns in self.node_namespaces() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        del_netns(&self.ns);
    }
}

/// Deletes the named namespace `name` (nothing there is fine) and, first, the notes edgenet
/// keeps about it in /run/edgenet (the forwarding evidence of a deploy there, keyed by the
/// namespace's inode): a test that deletes a namespace without `edgenet remove` leaves none.
pub fn del_netns(name: &str) {
    let path = format!("/run/netns/{name}");
    if let Ok(meta) = std::fs::metadata(&path) {
        use std::os::unix::fs::MetadataExt;
        edgenet_host::lock::forget_namespace_notes(meta.dev(), meta.ino());
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(std::process::Stdio::null())
        .status();
}

pub fn sh(script: &str) {
    let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success(), "{script}");
}

pub fn sh_out(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json_of(script: &str) -> Value {
    let text = sh_out(script);
    if text.trim().is_empty() {
        return Value::Array(vec![]);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{script}: {e}: {text}"))
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
    }
    if dir.exists() {
        out.push(dir.display().to_string());
    }
    out.sort();
    out
}

/// Link dumps carry counters and timers that move on their own.
fn strip_volatile(mut v: Value) -> Value {
    if let Value::Array(items) = &mut v {
        for item in items {
            if let Value::Object(m) = item {
                for key in ["stats", "stats64", "linkinfo_xstats"] {
                    m.remove(key);
                }
                if let Some(Value::Object(info)) = m.get_mut("linkinfo") {
                    if let Some(Value::Object(data)) = info.get_mut("info_data") {
                        for key in [
                            "hello_timer",
                            "tcn_timer",
                            "topology_change_timer",
                            "gc_timer",
                            "vlan_stats_per_port",
                        ] {
                            data.remove(key);
                        }
                    }
                    if let Some(Value::Object(port)) = info.get_mut("info_slave_data") {
                        for key in ["hold_timer", "message_age_timer", "forward_delay_timer"] {
                            port.remove(key);
                        }
                    }
                }
                if let Some(Value::Array(addrs)) = m.get_mut("addr_info") {
                    for a in addrs {
                        if let Value::Object(a) = a {
                            // Lifetimes count down; IPv6 duplicate address detection finishes on its own.
                            for key in ["valid_life_time", "preferred_life_time", "tentative"] {
                                a.remove(key);
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

fn strip_metainfo(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("metainfo");
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The link named `name` in an `ip -j link` dump.
pub fn link<'a>(links: &'a Value, name: &str) -> Option<&'a Value> {
    links.as_array()?.iter().find(|l| l["ifname"] == name)
}

/// IPv4 addresses (`a.b.c.d/len`) of `name` in an `ip -j addr` dump.
pub fn ipv4_of(addrs: &Value, name: &str) -> Vec<String> {
    link(addrs, name)
        .and_then(|l| l["addr_info"].as_array())
        .map(|a| {
            a.iter()
                .filter(|i| i["family"] == "inet")
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

impl Machine {
    /// The kernel state of the deployment with everything random or per-deployment (the
    /// deployment id, MACs, interface indexes, handles) taken out, so that two deployments can
    /// be compared: same objects, same addresses, same rules.
    pub fn shape(&self) -> Value {
        let id = self.state_id().unwrap_or_else(|| "no-deployment".into());
        let norm = |s: &str| s.replace(&id, "ID");
        let links: Vec<Value> = self
            .ip_json("-d link show")
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": norm(l["ifname"].as_str().unwrap()),
                    "kind": l["linkinfo"]["info_kind"],
                    "mtu": l["mtu"],
                    "master": l["master"],
                    "up": l["flags"].as_array().unwrap().contains(&Value::from("UP")),
                    "alias": l["ifalias"].as_str().map(norm),
                })
            })
            .collect();
        let addrs: Vec<(String, Vec<String>)> = self
            .ip_json("addr show")
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let name = l["ifname"].as_str().unwrap();
                (norm(name), ipv4_of(&self.ip_json("addr show"), name))
            })
            .collect();
        let routes: Vec<String> = self
            .ip_json("route show")
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {} {}", r["dst"], r["gateway"], r["dev"]))
            .collect();
        let nft = norm(&sh_out(&format!(
            "ip netns exec {} nft list ruleset",
            self.ns
        )));
        // Generated node MACs appear in the anti-spoofing rules.
        let nft = nft
            .split(' ')
            .map(|w| {
                let hex = w.split(':').collect::<Vec<_>>();
                if hex.len() == 6
                    && hex
                        .iter()
                        .all(|h| h.len() == 2 && h.chars().all(|c| c.is_ascii_hexdigit()))
                {
                    "MAC"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let nodes: Vec<Value> = self
            .node_namespaces()
            .iter()
            .map(|ns| {
                let links = Self::ip_json_in(ns, "link show");
                let eth0 = link(&links, "eth0");
                serde_json::json!({
                    "netns": norm(ns),
                    "eth0_mtu": eth0.map(|e| e["mtu"].clone()),
                    "eth0_up": eth0.map(|e| e["flags"].as_array().unwrap().contains(&Value::from("UP"))),
                    "addresses": ipv4_of(&Self::ip_json_in(ns, "addr show"), "eth0"),
                    "routes": Self::ip_json_in(ns, "route show").as_array().unwrap().iter().map(|r| format!("{} {} {}", r["dst"], r["gateway"], r["dev"])).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({"links": links, "addresses": addrs, "routes": routes, "nft": nft, "nodes": nodes, "ip_forward": self.sysctl("net.ipv4.ip_forward")})
    }
}

/// A physical LAN for scalable-cluster tests: a LAN namespace with bridge `lan0`
/// (198.18.0.1/24, the gateway), a LAN host (198.18.0.254), and machines whose adapter `eth0`
/// (198.18.0.(10+N)/24, default via .1) is a veth into the LAN. Each machine deploys with its
/// own state directory. Everything is deleted on drop.
pub struct Lan {
    pub prefix: String,
    pub machines: Vec<Machine>,
}

impl Lan {
    pub fn lan_ns(&self) -> String {
        format!("{}-lan", self.prefix)
    }

    pub fn peer_ns(&self) -> String {
        format!("{}-peer", self.prefix)
    }

    pub fn machine_address(n: usize) -> String {
        format!("198.18.0.{}", 11 + n)
    }
}

pub fn lan(tag: &str, machines: usize) -> Option<Lan> {
    if !is_root() {
        eprintln!("skipped: needs root to create network namespaces");
        return None;
    }
    let prefix = run_name("ens", tag);
    let lan = Lan {
        prefix: prefix.clone(),
        machines: Vec::new(),
    };
    let (l, p) = (lan.lan_ns(), lan.peer_ns());
    for ns in [&l, &p] {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let mut lan = lan;
    sh(&format!(
        "ip netns add {l} && ip -n {l} link set lo up && ip -n {l} link add lan0 type bridge && \
         ip -n {l} addr add 198.18.0.1/24 dev lan0 && ip -n {l} link set lan0 up && \
         ip netns add {p} && ip -n {l} link add peer type veth peer name eth0 netns {p} && \
         ip -n {l} link set peer master lan0 up && ip -n {p} addr add 198.18.0.254/24 dev eth0 && \
         ip -n {p} link set eth0 up && ip -n {p} link set lo up"
    ));
    for n in 0..machines {
        let m = Machine::new(&format!("{tag}{n}"));
        let ns = &m.ns;
        sh(&format!(
            "ip -n {l} link add m{n} type veth peer name eth0 netns {ns} && ip -n {l} link set m{n} master lan0 up && \
             ip -n {ns} addr add {}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} route add default via 198.18.0.1",
            Lan::machine_address(n)
        ));
        std::fs::write(&m.resolv, "nameserver 198.18.0.1\n").unwrap();
        lan.machines.push(m);
    }
    Some(lan)
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Machines first (their own drop runs `edgenet remove`), then the LAN.
        self.machines.clear();
        for ns in [self.peer_ns(), self.lan_ns()] {
            del_netns(&ns);
        }
    }
}

/// `snapshot()` once two readings 50 ms apart agree (at most ~3 s, then the last reading):
/// the kernel finishes some changes after the command that made them returned (a bridge's
/// carrier and operstate, IPv6 duplicate address detection and the link-local routes that
/// follow it), and a before/after comparison must not catch one of them half-way.
pub fn settled(snapshot: impl Fn() -> Value) -> Value {
    let mut last = snapshot();
    for _ in 0..60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = snapshot();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// The adapter as `ip -j` shows it: addresses, routes, MAC, MTU, master (settled).
pub fn adapter_snapshot(ns: &str, adapter: &str) -> Value {
    settled(|| adapter_snapshot_once(ns, adapter))
}

fn adapter_snapshot_once(ns: &str, adapter: &str) -> Value {
    let links = json_of(&format!("ip -n {ns} -j link show"));
    let l = link(&links, adapter).cloned().unwrap_or(Value::Null);
    let routes: Vec<Value> = json_of(&format!("ip -n {ns} -j route show"))
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["dev"] == adapter)
        .cloned()
        .collect();
    serde_json::json!({
        "addresses": ipv4_of(&json_of(&format!("ip -n {ns} -j addr show")), adapter),
        "routes": routes,
        "mac": l["address"],
        "mtu": l["mtu"],
        "master": l["master"],
        "up": l["flags"].as_array().map(|f| f.contains(&Value::from("UP"))),
    })
}

/// Bridges in a namespace.
pub fn bridges(ns: &str) -> Vec<String> {
    json_of(&format!("ip -n {ns} -j -d link show type bridge"))
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The test guest's files, built once and cached (`EDGENET_GUEST_DIR`, else
/// /var/cache/edgenet/guest); `None` (said) when QEMU is not installed.
pub fn guest_image() -> Option<PathBuf> {
    if !Path::new("/usr/bin/qemu-system-x86_64").exists()
        || !Path::new("/usr/bin/genisoimage").exists()
    {
        eprintln!("skipped: needs qemu-system-x86 and genisoimage (scripts/deps.sh installs them)");
        return None;
    }
    let dir = PathBuf::from(
        std::env::var("EDGENET_GUEST_DIR").unwrap_or_else(|_| "/var/cache/edgenet/guest".into()),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-guest-image.sh");
    let out = Command::new(&script).arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dir)
}

/// A network namespace of the test's own, deleted on drop (also when the test panics).
pub struct NsGuard(pub String);

impl NsGuard {
    /// Creates namespace `name` with `lo` up, after deleting a leftover of an earlier run that
    /// was killed.
    pub fn create(name: &str) -> NsGuard {
        del_netns(name);
        let guard = NsGuard(name.to_string());
        sh(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ));
        guard
    }

    /// Deletes `name` on drop (a namespace the test or edgenet makes itself).
    pub fn adopt(name: &str) -> NsGuard {
        NsGuard(name.to_string())
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        del_netns(&self.0);
    }
}

pub fn netns_exists(name: &str) -> bool {
    Path::new(&format!("/run/netns/{name}")).exists()
}

/// Whether `iptables-nft` is installed.
pub fn has_iptables() -> bool {
    Command::new("iptables-nft")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Everything a run printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A run for a failure message: its exit status, stdout and stderr.
pub fn described(out: &Output) -> String {
    format!(
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// stdout parsed as JSON; a failure names what the run printed.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// A file of the repository's tests/fixtures.
pub fn fixture_path(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `edgenet` outside any machine namespace (commands that change nothing on the host), with
/// no colour and no config, machine name or failpoint from the test's environment.
pub fn edgenet_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgenet"));
    cmd.env("NO_COLOR", "1")
        .env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_MACHINE_NAME")
        .env_remove("EDGENET_FAILPOINT");
    cmd
}

/// `edgenet ARGS` (see [`edgenet_cmd`]) in a temp dir of its own, which is its working
/// directory and holds its state directory `state`; the dir is returned to keep it.
pub fn run_in_temp(args: &[&str]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = edgenet_cmd()
        .args(args)
        .current_dir(dir.path())
        .env("EDGENET_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    (out, dir)
}

/// `edgenet -c FILE --state-dir DIR ARGS` (see [`edgenet_cmd`]) with `config` written to
/// `dir`/config.json, the state directory `dir`/state, and `env` set.
pub fn run_with_config(dir: &Path, config: &Value, args: &[&str], env: &[(&str, &str)]) -> Output {
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = edgenet_cmd();
    cmd.arg("-c")
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

impl Machine {
    /// `edgenet ARGS --output json`: its exit code and the JSON it printed.
    pub fn json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.edgenet(&all);
        (out.status.code(), stdout_json(&out))
    }

    /// `status --output json`: its exit code and report.
    pub fn status(&self) -> (Option<i32>, Value) {
        self.json(&["status"])
    }

    /// The drift `status` reports, as text lines.
    pub fn drift(&self) -> Vec<String> {
        self.status().1["drift"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    }
}

/// The config of a one-machine scalable site on the LAN 198.18.0.0/24 (gateway and DNS .1):
/// machine `m0` on `adapter`, its Linux node 198.18.0.101 the control plane, the endpoint .100
/// and ten service addresses from .200.
pub fn site_config(adapter: &str) -> Value {
    serde_json::json!({
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "198.18.0.200", "ServiceIPRangeSize": 10},
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
        "Machines": [{
            "MachineName": "m0",
            "NetworkConnection": {"AdapterName": adapter, "Mtu": 0},
            "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true},
        }],
    })
}

/// The machine's LAN: namespace `{machine}-lan` with the bridge `lan0` (198.18.0.1/24, the
/// gateway) and the machine's adapter `up0` (198.18.0.11/24, default via .1), a veth whose far
/// end is `m0` on `lan0`; with `peer`, a LAN host (198.18.0.254) in `{machine}-peer`. The
/// machine's resolver names the gateway. Deleted on drop.
pub struct AdapterLan {
    pub lan: NsGuard,
    pub peer: Option<NsGuard>,
}

pub fn adapter_lan(m: &Machine, peer: bool) -> AdapterLan {
    let lan = NsGuard::create(&format!("{}-lan", m.ns));
    let (l, ns) = (lan.name(), &m.ns);
    sh(&format!(
        "ip -n {l} link add lan0 type bridge && \
         ip -n {l} addr add 198.18.0.1/24 dev lan0 && ip -n {l} link set lan0 up && \
         ip -n {l} link add m0 type veth peer name up0 netns {ns} && ip -n {l} link set m0 master lan0 up && \
         ip -n {ns} link set up0 up && ip -n {ns} addr add 198.18.0.11/24 dev up0 && \
         ip -n {ns} route add default via 198.18.0.1 dev up0"
    ));
    let peer = peer.then(|| {
        let p = NsGuard::create(&format!("{}-peer", m.ns));
        sh(&format!(
            "ip -n {l} link add peer type veth peer name eth0 netns {p} && \
             ip -n {l} link set peer master lan0 up && ip -n {p} addr add 198.18.0.254/24 dev eth0 && \
             ip -n {p} link set eth0 up",
            p = p.name()
        ));
        p
    });
    std::fs::write(&m.resolv, "nameserver 198.18.0.1\n").unwrap();
    AdapterLan { lan, peer }
}

/// An "internet" beside the machine: namespace `{machine}-{suffix}` whose `wan0`
/// (203.0.113.1/24) is a veth to the machine's `up0` (203.0.113.2/24, default via .1).
/// Deleted on drop.
pub fn uplink(m: &Machine, suffix: &str) -> NsGuard {
    let wan = NsGuard::create(&format!("{}-{suffix}", m.ns));
    sh(&format!(
        "ip -n {ns} link add wan0 type veth peer name up0 netns {m} && \
         ip -n {ns} addr add 203.0.113.1/24 dev wan0 && ip -n {ns} link set wan0 up && \
         ip -n {m} addr add 203.0.113.2/24 dev up0 && ip -n {m} link set up0 up && \
         ip -n {m} route add default via 203.0.113.1",
        ns = wan.name(),
        m = m.ns
    ));
    wan
}

/// One ping from namespace `ns`, and if that is lost, three more: reachability, not a single
/// packet's luck on a loaded test machine.
pub fn ping_from(ns: &str, target: &str) -> bool {
    let ping = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", ns, "ping"])
            .args(args)
            .arg(target)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    ping(&["-c1", "-W1"]) || ping(&["-c3", "-i0.2", "-W1"])
}

/// The config of a one-machine scalable cluster on the LAN of [`lan`] (machine `m0` on
/// `eth0`, its Linux node 198.18.0.101 the control plane).
pub fn lan_config() -> Value {
    serde_json::json!({
        "DeploymentType": "ScalableCluster",
        "Network": {"ControlPlaneEndpointIp": "198.18.0.100", "Ip4GatewayAddress": "198.18.0.1", "Ip4PrefixLength": 24, "DnsServers": ["198.18.0.1"]},
        "Machines": [{"MachineName": "m0", "NetworkConnection": {"AdapterName": "eth0"}, "LinuxNode": {"Ip4Address": "198.18.0.101", "ControlPlane": true}}],
    })
}

/// A deployment id for state a test forges, unique to this run and `n` (0 to 15: tests of one
/// test binary run at once): from the process id, not a fixed one. Node namespaces carry the id
/// in their names, and /run/netns is the whole machine's: a fixed id made two runs of the suite
/// at once (two worktrees, CI beside a developer) meet each other's namespaces.
pub fn forged_id(n: u32) -> String {
    assert!(n < 16, "forged_id takes 0 to 15");
    format!("{:06x}", ((std::process::id() << 4) | n) & 0xff_ffff)
}

impl Machine {
    /// The identity a first deploy writes before anything else, forged with deployment id `id`
    /// (and no MACs yet): the next deploy is that deployment's first.
    pub fn forge_identity(&self, id: &str) {
        std::fs::create_dir_all(&self.state).unwrap();
        std::fs::write(
            self.state.join("identity.json"),
            format!(r#"{{"deployment_id":"{id}","macs":{{}},"auto_subnet":null}}"#),
        )
        .unwrap();
    }
}

/// `edgenet lab ARGS --name NAME --lab-dir DIR`, with no colour and no config or lab from the
/// test's environment.
pub fn lab_cmd(name: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgenet"));
    cmd.arg("lab")
        .args(args)
        .args(["--name", name, "--lab-dir", dir.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_CONFIG")
        .env_remove("EDGENET_LAB")
        .env_remove("EDGENET_LAB_DIR");
    cmd
}

/// Takes the lab down when the test ends, passed or failed (before its directory goes: declare
/// it after the directory).
pub struct LabDown<'a>(pub &'a str, pub &'a Path);

impl Drop for LabDown<'_> {
    fn drop(&mut self) {
        let _ = lab_cmd(self.0, self.1, &["down"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `edgenet ARGS` on a lab machine (in its namespace, with its state directory, resolver file
/// and name), and `--KEY VALUE` for each of `extra`.
pub fn edgenet_on(m: &edgenet_lab::LabMachine, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = m.command(env!("CARGO_BIN_EXE_edgenet")).unwrap();
    cmd.args([
        "--state-dir",
        m.state_dir.to_str().unwrap(),
        "--resolv-conf",
        m.resolv_conf.to_str().unwrap(),
        "--machine-name",
        &m.name,
    ])
    .args(args)
    .env("NO_COLOR", "1")
    .env_remove("EDGENET_CONFIG");
    for (k, v) in extra {
        cmd.arg(format!("--{k}")).arg(v);
    }
    cmd.output().unwrap()
}

/// `edgenet remove` on a lab machine, as `Lab::down` takes it.
pub fn lab_remove(m: &edgenet_lab::LabMachine) -> Result<(), String> {
    let out = edgenet_on(m, &["remove"], &[]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A lab of one machine on which `edgenet deploy` ran; brought down (with `edgenet remove` on
/// the machine) on drop, and the namespaces in `extra_netns` deleted.
pub struct TestLab {
    pub lab: Option<edgenet_lab::Lab>,
    /// Holds the config (`config.json`) and the lab.
    pub dir: tempfile::TempDir,
    pub machine: edgenet_lab::LabMachine,
    pub extra_netns: Vec<String>,
}

/// [`TestLab`] named `name` (see [`lab_name`]), deployed with `config` (none: edgenet's
/// default); `prepare` runs on the machine before deploy (e.g. to change its resolv.conf).
/// `None` (said) without root.
pub fn test_lab(
    name: &str,
    config: Option<Value>,
    prepare: impl Fn(&edgenet_lab::LabMachine),
) -> Option<TestLab> {
    use edgenet_lab::{Lab, LabMachine, LabSpec};
    if !is_root() {
        eprintln!("skipped: needs root to build a lab");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config_path = config.map(|c| {
        let p = dir.path().join("config.json");
        std::fs::write(&p, c.to_string()).unwrap();
        p
    });
    let spec = LabSpec::new(name, dir.path().join(name));
    let deploy = |m: &LabMachine| -> Result<(), String> {
        // The machine's own upstream resolver file, so that the host's is never read: empty
        // unless `prepare` fills it (a stub resolver's upstream). A path given explicitly must
        // name a file.
        let upstream = m.dir.join("upstream-resolv.conf");
        std::fs::write(&upstream, "").unwrap();
        prepare(m);
        let mut args = vec!["deploy"];
        let c;
        if let Some(p) = &config_path {
            c = p.display().to_string();
            args.extend(["-c", &c]);
        }
        let out = edgenet_on(
            m,
            &args,
            &[("upstream-resolv-conf", upstream.to_str().unwrap())],
        );
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("deploy: {}", String::from_utf8_lossy(&out.stderr)))
        }
    };
    let lab = match Lab::up(&spec, deploy) {
        Ok(lab) => lab,
        Err(e) => {
            if let Some(lab) = e.lab {
                let _ = lab.down(lab_remove);
            }
            panic!("lab up: {}", e.error);
        }
    };
    let machine = lab.machines().remove(0);
    Some(TestLab {
        lab: Some(lab),
        dir,
        machine,
        extra_netns: Vec::new(),
    })
}

impl Drop for TestLab {
    fn drop(&mut self) {
        for ns in &self.extra_netns {
            del_netns(ns);
        }
        if let Some(lab) = self.lab.take() {
            if let Err(e) = lab.down(lab_remove) {
                eprintln!("lab down: {e}");
            }
        }
    }
}
