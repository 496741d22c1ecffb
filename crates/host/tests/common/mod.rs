//! Shared helpers for the kernel tests: throwaway namespaces and `ip -j` readers.
//!
//! Every test works only inside namespaces it creates here. They are made and removed with
//! `ip netns` (not with the code under test), and [`TestNs::run`] checks that the thread
//! really is inside the namespace before the test body touches anything, so a bug in the
//! code under test can never change the machine's own network namespace.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use serde_json::Value;

/// True when the tests can create namespaces; otherwise prints the skip line.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        // Written to the raw stderr so the line shows even though the harness captures
        // the test's own prints.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped: needs root ({test})");
        false
    }
}

/// A namespace name unique to this test and process, within `ip netns`'s limits.
pub fn unique_name(test: &str) -> String {
    format!("enh-{test}-{}", std::process::id())
}

/// A network namespace that exists for the life of the value and is deleted on drop, even
/// when the test panics.
pub struct TestNs {
    pub name: String,
}

impl TestNs {
    pub fn new(test: &str) -> Self {
        Self::named(unique_name(test))
    }

    /// A namespace with exactly this name (unique to the test and process).
    pub fn named(name: String) -> Self {
        // Left over from an earlier, killed run with the same pid: start clean.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        run_ok("ip", &["netns", "add", &name]);
        TestNs { name }
    }

    /// Runs `f` inside the namespace through the code under test, after checking that the
    /// thread really entered it.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let expected = ns_id(&format!("/run/netns/{}", self.name));
        let caller = ns_id("/proc/thread-self/ns/net");
        edgenet_host::netns::run_in(&self.name, move || {
            let actual = ns_id("/proc/thread-self/ns/net");
            assert_eq!(actual, expected, "run_in did not enter the test namespace");
            assert_ne!(actual, caller, "refusing to run in the caller's namespace");
            f()
        })
        .expect("enter test namespace")
    }

    /// `ip -j -n NAME ARGS...` parsed as JSON.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j", "-n", &self.name];
        full.extend_from_slice(args);
        let out = run_ok("ip", &full);
        if out.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip {full:?}: {e}: {out}"))
    }

    /// The kernel's view of one link (`ip -j -d link show NAME`), `None` when absent.
    pub fn link(&self, name: &str) -> Option<Value> {
        let links = self.ip_json(&["-d", "link", "show"]);
        links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ifname"] == name)
            .cloned()
    }

    pub fn link_names(&self) -> Vec<String> {
        let links = self.ip_json(&["link", "show"]);
        let mut names: Vec<String> = links
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    /// `ip` command inside the namespace, for setting up what the code under test reads.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// Any command inside the namespace (`ip netns exec`).
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        run_ok("ip", &full)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Names in `ip -j netns list`.
pub fn ip_netns_list() -> Vec<String> {
    let out = run_ok("ip", &["-j", "netns", "list"]);
    if out.trim().is_empty() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// (device, inode) of a namespace file.
pub fn ns_id(path: &str) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    (meta.dev(), meta.ino())
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The IPv4 addresses of a link as `ip -j addr` reports them: (local, prefixlen, broadcast).
pub fn ipv4_of(ns: &TestNs, link: &str) -> Vec<(String, u64, Option<String>)> {
    let v = ns.ip_json(&["-4", "addr", "show", "dev", link]);
    let mut out = Vec::new();
    for l in v.as_array().unwrap() {
        for a in l["addr_info"].as_array().unwrap() {
            out.push((
                a["local"].as_str().unwrap().to_string(),
                a["prefixlen"].as_u64().unwrap(),
                a["broadcast"].as_str().map(str::to_string),
            ));
        }
    }
    out
}
