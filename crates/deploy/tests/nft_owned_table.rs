//! A table another process holds with the nf_tables `owner` flag, in a throwaway namespace
//! (`d14-<tag>-<pid>`, deleted on drop): reads say who owns it instead of handing it to
//! libnftables (whose 1.0.6 JSON printer breaks on it, in-process it aborts), the firewall's
//! refusal names the owner, and a native write the kernel refuses anyway (the owner came
//! between the check and the write) is reported as the native netlink write it was, one line
//! for twenty identical errnos, naming the first failing command. Needs root; skipped otherwise.

use std::fs::File;
use std::io::Write;
use std::process::{Child, Command, Stdio};

use edgenet_deploy::firewall::{FirewallError, NftablesDriver};
use edgenet_host::nft::{Nft, NftError};
use serde_json::{json, Value};

const TABLE: &str = "edgenet_d14own";

struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return None;
        }
        let name = format!("d14-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Some(Netns { name })
    }

    fn sh(&self, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-ec", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "in {}: {script}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// What the namespace holds, as the operator sees it (text: nft 1.0.6 prints an owned
    /// table's JSON broken), with the links.
    fn snapshot(&self) -> String {
        self.sh("nft list ruleset; ip -j link show")
    }

    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap();
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// An `nft -i` holding `table ip TABLE { flags owner; }` until dropped (killed by pid).
    fn hold(&self) -> Holder {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nft -i");
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "add table ip {TABLE} {{ flags owner; }}").unwrap();
        stdin.flush().unwrap();
        let holder = Holder(child);
        for _ in 0..100 {
            if self.sh("nft list tables").contains(TABLE) {
                return holder;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("nft -i did not make the owned table");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a deploy writes over a table it takes for its own: add, delete and add the table, a
/// chain, and rules (20 commands, as the operator's report counted).
fn replace_document() -> Value {
    let table = json!({"family": "ip", "name": TABLE});
    let mut cmds = vec![
        json!({"add": {"table": table}}),
        json!({"delete": {"table": table}}),
        json!({"add": {"table": table}}),
        json!({"add": {"chain": {"family": "ip", "table": TABLE, "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}),
    ];
    for i in 0..16 {
        cmds.push(
            json!({"add": {"rule": {"family": "ip", "table": TABLE, "chain": "forward",
            "comment": format!("edgenet: rule {i}"), "expr": [{"accept": null}]}}}),
        );
    }
    json!({ "nftables": cmds })
}

#[test]
fn reads_and_the_firewalls_refusal_name_the_owner() {
    let Some(ns) = Netns::new("read") else { return };
    let holder = ns.hold();
    let pid = holder.0.id();
    let before = ns.snapshot();
    let nft = Nft::new();
    let err = ns.run(|| nft.list_table("ip", TABLE)).unwrap_err();
    let NftError::Owned(owner) = &err else {
        panic!("not an owner error: {err:?}")
    };
    assert_eq!((owner.family.as_str(), owner.table.as_str()), ("ip", TABLE));
    assert_eq!(owner.port_id, Some(pid), "{err}");
    assert_eq!(owner.process, Some((pid, "nft".to_string())), "{err}");
    assert!(matches!(
        ns.run(|| nft.list_ruleset()),
        Err(NftError::Owned(_))
    ));
    // Another table of the namespace is still read (alone) inside a ruleset session.
    ns.sh("nft add table ip other");
    let other = ns.run(|| {
        let _session = edgenet_host::nft::RulesetSession::begin();
        nft.list_table("ip", "other")
    });
    assert!(other.unwrap().is_some());
    ns.sh("nft delete table ip other");
    // The refusal deploy makes before anything changes, even for a table it recorded as made.
    let driver = NftablesDriver::new(Nft::new());
    let err = ns
        .run(|| driver.refuse_foreign("ip", TABLE, true))
        .unwrap_err();
    assert!(
        matches!(err, FirewallError::Nft(NftError::Owned(_))),
        "{err:?}"
    );
    let text = err.to_string();
    for want in [
        format!("`ip {TABLE}`"),
        "owned by another process".to_string(),
        format!("port id {pid}"),
        format!("pid {pid} `nft`"),
        "Stop that process".to_string(),
    ] {
        assert!(text.contains(&want), "{want}: {text}");
    }
    assert_eq!(ns.snapshot(), before);
    // Gone with its owner: nothing of it is reported any more.
    drop(holder);
    assert_eq!(ns.run(|| nft.list_table("ip", TABLE)).unwrap(), None);
}

#[test]
fn a_native_write_the_owner_refuses_is_one_line_naming_the_native_write_and_the_first_command() {
    let Some(ns) = Netns::new("write") else {
        return;
    };
    let _holder = ns.hold();
    let before = ns.snapshot();
    let doc = replace_document();
    let err = ns
        .run(|| Nft::new().apply_native(&doc))
        .expect("the document is in the native subset")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("native nf_tables netlink write"), "{text}");
    assert!(!text.contains("-j -f -"), "{text}");
    assert_eq!(
        text.matches("Operation not permitted").count(),
        1,
        "repeated errnos not collapsed: {text}"
    );
    assert!(text.contains("all 20 commands"), "{text}");
    assert!(
        text.contains(&format!("first at command 1 of 20: add table ip {TABLE}")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(ns.snapshot(), before, "the refused write changed something");
}
