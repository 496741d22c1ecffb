//! `delete_group_detached` against the real kernel, inside throwaway namespaces only: it
//! returns once the links are out of the kernel's view, while the kernel's final freeing still
//! runs in a child of its own; what the kernel holds is read back with `ip -j`.

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{root_or_skip, TestNs};
use edgenet_host::netlink::{
    deletions_finishing, BridgeSpec, Netlink, VethSpec, DELETING_PROCESS_NAME,
};
use edgenet_host::netns::NetNs;

/// Waits (at most a few seconds) for every deleting child to exit; returns whether they did.
fn children_exit() -> bool {
    let start = Instant::now();
    while deletions_finishing() > 0 {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The command names of this process's children (of every thread), from the kernel.
fn child_names() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                names.push(comm.trim().to_string());
            }
        }
    }
    names
}

#[test]
fn the_group_is_gone_and_its_names_free_before_the_kernel_has_finished_freeing_it() {
    if !root_or_skip(
        "the_group_is_gone_and_its_names_free_before_the_kernel_has_finished_freeing_it",
    ) {
        return;
    }
    let ns = TestNs::new("m19det");
    let peer_ns = TestNs::new("m19detp");
    let peer = NetNs::open(&peer_ns.name).unwrap();
    let (deleted, finishing, children, remade, again) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let mut spec = BridgeSpec::new("m19br");
        spec.group = Some(78);
        nl.create_bridge(&spec).unwrap();
        nl.create_bridge(&BridgeSpec::new("m19keep")).unwrap();
        for name in ["m19v0", "m19v1"] {
            let peer_name = format!("{name}p");
            let mut veth = VethSpec::new(name, &peer_name);
            veth.group = Some(78);
            veth.peer_netns = Some(peer.as_fd());
            nl.create_veth(&veth).unwrap();
            nl.set_master(name, Some("m19br")).unwrap();
            nl.set_up(name, true).unwrap();
        }
        nl.set_up("m19br", true).unwrap();
        let deleted = nl.delete_group_detached(78).unwrap();
        // The kernel's rcu_barrier and wait for the last references (tens of milliseconds)
        // are still running in the child when the call returns.
        let finishing = deletions_finishing();
        let children = child_names();
        // The names are free at once: a deploy right after makes them again.
        let remade = nl.create_bridge(&spec);
        let again = nl.delete_group_detached(78).unwrap();
        (deleted, finishing, children, remade, again)
    });
    assert!(deleted);
    assert!(
        finishing >= 1,
        "the call waited for the kernel's final freeing (no deleting child left running)"
    );
    // Named, so that `ps` says what it is and the lab's teardown knows to wait for it.
    assert!(
        children.iter().any(|c| c == DELETING_PROCESS_NAME),
        "no child named {DELETING_PROCESS_NAME}: {children:?}"
    );
    remade.expect("a link of a deleted one's name can be made right away");
    assert!(again, "the remade bridge was in the group and went too");
    assert_eq!(
        ns.link_names(),
        vec!["lo".to_string(), "m19keep".to_string()]
    );
    // The veths' peers went with them.
    assert_eq!(peer_ns.link_names(), vec!["lo".to_string()]);
    assert!(children_exit(), "a deleting child did not exit");
}

#[test]
fn a_refused_group_deletion_reports_the_kernels_error_and_deletes_nothing() {
    if !root_or_skip("a_refused_group_deletion_reports_the_kernels_error_and_deletes_nothing") {
        return;
    }
    let ns = TestNs::new("m19detno");
    // lo cannot be deleted: the kernel refuses the whole group, before deleting any of it.
    ns.ip(&["link", "set", "lo", "group", "79"]);
    let (result, empty) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let mut spec = BridgeSpec::new("m19br");
        spec.group = Some(79);
        nl.create_bridge(&spec).unwrap();
        let result = nl.delete_group_detached(79);
        let empty = nl.delete_group_detached(80);
        (result, empty)
    });
    let e = result.unwrap_err();
    assert!(e.to_string().contains("group 79"), "{e}");
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
    assert!(!empty.unwrap(), "an empty group is no deletion");
    assert_eq!(ns.link_names(), vec!["lo".to_string(), "m19br".to_string()]);
    assert!(children_exit(), "a deleting child did not exit");
}
