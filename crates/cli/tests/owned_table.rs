//! A table under the deployment's name that another process holds with the nf_tables `owner`
//! flag (only the netlink socket that made it may change or delete it; it goes when that socket
//! closes). Operator test of round 14: the deploy's write failed with "Operation not permitted"
//! twenty times, labelled as `nft -j -f -`, naming no rule. It is refused before anything
//! changes now, naming the table, its owner and what to do.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::*;

/// An `nft -i` in the machine holding `table FAMILY NAME { flags owner; }` while it runs; killed
/// (by its own pid) on drop, which releases the table.
struct Holder(Child);

impl Holder {
    fn new(ns: &str, family: &str, table: &str) -> Holder {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nft -i");
        writeln!(
            child.stdin.as_mut().unwrap(),
            "add table {family} {table} {{ flags owner; }}"
        )
        .unwrap();
        child.stdin.as_mut().unwrap().flush().unwrap();
        let holder = Holder(child);
        // `nft -i` reads the line when it gets to it: wait until the kernel holds the table.
        for _ in 0..100 {
            if owned(ns, family, table) {
                return holder;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("nft -i did not make the owned table {family} {table}");
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `nft list table` (text: nft 1.0.6's JSON of an owned table is broken) says `flags owner`.
fn owned(ns: &str, family: &str, table: &str) -> bool {
    sh_out(&format!(
        "ip netns exec {ns} nft list table {family} {table} 2>/dev/null || true"
    ))
    .contains("flags owner")
}

fn listing(m: &Machine, table: &str) -> String {
    sh_out(&format!(
        "ip netns exec {} nft list table {table} 2>/dev/null || true",
        m.ns
    ))
}

/// The refusal says what the operator needs: the table, that another process owns it (with its
/// port id and pid), and what to do; not the raw kernel error of a write.
fn assert_refused(t: &str, family: &str, table: &str, pid: u32, what: &str) {
    assert!(
        t.contains(&format!("{family} {table}")),
        "{what}: no table named: {t}"
    );
    assert!(t.contains("owner"), "{what}: {t}");
    assert!(
        t.contains(&format!("port id {pid}")) && t.contains(&format!("pid {pid}")),
        "{what}: the owner is not named: {t}"
    );
    assert!(
        t.contains("nft"),
        "{what}: the owner's program is not named: {t}"
    );
    assert!(
        !t.contains("Operation not permitted") && !t.contains("-j -f -"),
        "{what}: the write was tried: {t}"
    );
    assert!(
        !t.contains("rolled back"),
        "{what}: nothing to roll back: {t}"
    );
}

#[test]
fn a_table_another_process_owns_is_refused_before_a_first_deploy_changes_anything() {
    let Some(m) = machine("d14own1") else { return };
    let id = forged_id(0);
    m.forge_identity(&id);
    let table = format!("edgenet_{id}");
    for family in ["ip", "bridge"] {
        let holder = Holder::new(&m.ns, family, &table);
        let before = listing(&m, &format!("{family} {table}"));
        let links_before = m.ip_json("link show");
        let out = m.edgenet(&["deploy"]);
        assert_eq!(out.status.code(), Some(3), "{family}: {}", text(&out));
        assert_refused(&text(&out), family, &table, holder.pid(), family);
        // Nothing was made: no link, no node namespace, the table as it was, no other table.
        assert_eq!(m.ip_json("link show"), links_before, "{family}");
        assert!(
            !sh_out("ip netns list").contains(&format!("-{id}")),
            "{family}: a node namespace was made"
        );
        assert_eq!(listing(&m, &format!("{family} {table}")), before);
        let tables = sh_out(&format!("ip netns exec {} nft list tables", m.ns));
        assert_eq!(tables.lines().count(), 1, "{family}: {tables}");
        drop(holder);
        assert!(listing(&m, &format!("{family} {table}")).is_empty());
    }
    // With the owner gone, the same deploy goes through.
    let out = m.edgenet(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A deployed machine whose table was deleted and made again by another process with the owner
/// flag (empty: the state records the table as made, so an empty one would pass as flushed).
#[test]
fn a_deployed_table_taken_over_by_an_owner_is_refused_and_status_says_why() {
    let Some(m) = machine("d14own2") else { return };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let table = format!("edgenet_{id}");
    sh(&format!(
        "ip netns exec {} nft delete table ip {table}",
        m.ns
    ));
    let holder = Holder::new(&m.ns, "ip", &table);
    let links_before = m.ip_json("link show");
    let out = m.edgenet(&["deploy"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_refused(&text(&out), "ip", &table, holder.pid(), "redeploy");
    assert_eq!(m.ip_json("link show"), links_before);
    assert!(owned(&m.ns, "ip", &table));
    let rules = sh_out(&format!("ip netns exec {} nft list table ip {table}", m.ns));
    assert!(!rules.contains("edgenet:"), "{rules}");
    // status names the owner flag as drift.
    let out = m.edgenet(&["status", "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift = v["drift"].as_array().unwrap();
    let owned: Vec<_> = drift
        .iter()
        .filter(|d| d.to_string().contains("owned by another process"))
        .collect();
    assert_eq!(owned.len(), 1, "said once: {v}");
    assert!(
        owned[0]
            .to_string()
            .contains(&format!("pid {}", holder.pid())),
        "{v}"
    );
    // doctor's edgenet-firewall check says it too.
    let out = m.edgenet(&["--output", "json", "doctor", "--timeout", "1"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor JSON: {e}: {}", text(&out)));
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "edgenet-firewall")
        .unwrap_or_else(|| panic!("no edgenet-firewall check: {v}"))
        .clone();
    assert_eq!(check["status"], "FAIL", "{check}");
    assert!(
        check["detail"]
            .to_string()
            .contains("owned by another process"),
        "{check}"
    );
    drop(holder);
    let out = m.edgenet(&["deploy"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(listing(&m, &format!("ip {table}")).contains("edgenet:"));
}
