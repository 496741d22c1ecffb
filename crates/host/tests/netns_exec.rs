//! Named namespaces, running code and commands inside them, and sysctls — against the real
//! kernel, in namespaces the tests create.

mod common;

use std::process::{Command, Stdio};

use common::{ip_netns_list, ns_id, root_or_skip, run_ok, unique_name, TestNs};
use edgenet_host::exec::{self, BindMount, ExecOptions};
use edgenet_host::netlink::{BridgeSpec, Netlink};
use edgenet_host::netns::{self, NetNs};
use edgenet_host::sysctl;

/// Deletes a namespace made by the code under test, even when the test panics.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn created_namespace_is_visible_to_ip_netns_and_deleted_idempotently() {
    if !root_or_skip("created_namespace_is_visible_to_ip_netns_and_deleted_idempotently") {
        return;
    }
    let name = unique_name("nsadd");
    let _cleanup = Cleanup(name.clone());
    let _ = netns::delete(&name);

    netns::create(&name).unwrap();
    assert!(ip_netns_list().contains(&name));
    assert!(netns::exists(&name));
    assert!(netns::list().unwrap().contains(&name));
    let e = netns::create(&name).unwrap_err();
    assert!(e.is_exists(), "{e}");
    assert!(e.to_string().contains(&name), "{e}");

    // It is a real namespace that `ip -n` reaches, and not the host's.
    netns::run_in(&name, || {
        Netlink::open()
            .unwrap()
            .create_bridge(&BridgeSpec::new("enmark0"))
            .unwrap()
    })
    .unwrap();
    let links = run_ok("ip", &["-n", &name, "-o", "link", "show"]);
    assert!(links.contains("enmark0"), "{links}");
    assert_ne!(
        ns_id(&format!("/run/netns/{name}")),
        ns_id("/proc/self/ns/net")
    );

    assert!(netns::delete(&name).unwrap());
    assert!(!ip_netns_list().contains(&name));
    assert!(!netns::exists(&name));
    assert!(!netns::delete(&name).unwrap());
    assert!(NetNs::open(&name).unwrap_err().is_not_found());
}

#[test]
fn a_stale_placeholder_file_is_replaced_on_create() {
    if !root_or_skip("a_stale_placeholder_file_is_replaced_on_create") {
        return;
    }
    let name = unique_name("nsstale");
    let _cleanup = Cleanup(name.clone());
    let _ = netns::delete(&name);
    // What an interrupted create (or a namespace made under `ip netns exec`) leaves behind.
    std::fs::write(format!("/run/netns/{name}"), b"").unwrap();
    assert!(!netns::exists(&name));
    netns::create(&name).unwrap();
    assert!(netns::exists(&name));
    run_ok("ip", &["-n", &name, "link", "show", "lo"]);
    assert!(netns::delete(&name).unwrap());
}

#[test]
fn run_in_runs_inside_the_namespace_and_brings_the_thread_back() {
    if !root_or_skip("run_in_runs_inside_the_namespace_and_brings_the_thread_back") {
        return;
    }
    let ns = TestNs::new("runin");
    let outside = ns_id("/proc/thread-self/ns/net");
    let inside = netns::run_in(&ns.name, || ns_id("/proc/thread-self/ns/net")).unwrap();
    assert_eq!(inside, ns_id(&format!("/run/netns/{}", ns.name)));
    assert_eq!(NetNs::open(&ns.name).unwrap().id().unwrap(), inside);
    assert_ne!(inside, outside);
    // The calling thread is back in its own namespace.
    assert_eq!(ns_id("/proc/thread-self/ns/net"), outside);
    // Nested visits come back one level at a time.
    let other = TestNs::new("runin2");
    let (deeper, back) = netns::run_in(&ns.name, || {
        let deeper = netns::run_in(&other.name, || ns_id("/proc/thread-self/ns/net")).unwrap();
        (deeper, ns_id("/proc/thread-self/ns/net"))
    })
    .unwrap();
    assert_eq!(deeper, ns_id(&format!("/run/netns/{}", other.name)));
    assert_eq!(back, inside);

    let borrowed = String::from("borrowed value");
    let len = netns::run_in(&ns.name, || borrowed.len()).unwrap();
    assert_eq!(len, borrowed.len());

    let panicked = std::panic::catch_unwind(|| {
        netns::run_in(&ns.name, || panic!("inside")).unwrap();
    });
    assert!(panicked.is_err());
    // A panic inside still brings the thread back.
    assert_eq!(ns_id("/proc/thread-self/ns/net"), outside);

    let e = netns::run_in("enh-does-not-exist", || ()).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(e.to_string().contains("enh-does-not-exist"), "{e}");
}

/// The identity of the calling thread's namespace is kept per thread (no walk of
/// `/proc/thread-self/ns/net` on every ask): it must follow every move the thread makes,
/// checked against the kernel's own answer each time.
#[test]
fn the_thread_namespace_identity_follows_every_move() {
    if !root_or_skip("the_thread_namespace_identity_follows_every_move") {
        return;
    }
    let own = || ns_id("/proc/thread-self/ns/net");
    let ns = TestNs::new("idmove");
    let other = TestNs::new("idmove2");
    let home = own();
    assert_eq!(netns::current_id().unwrap(), home);
    assert_eq!(NetNs::current().unwrap().id().unwrap(), home);
    let (inside, deeper, back) = netns::run_in(&ns.name, || {
        let inside = (netns::current_id().unwrap(), own());
        let deeper = netns::run_in(&other.name, || (netns::current_id().unwrap(), own())).unwrap();
        (inside, deeper, (netns::current_id().unwrap(), own()))
    })
    .unwrap();
    assert_eq!(inside.0, inside.1);
    assert_eq!(inside.0, ns_id(&format!("/run/netns/{}", ns.name)));
    assert_eq!(deeper.0, deeper.1);
    assert_eq!(deeper.0, ns_id(&format!("/run/netns/{}", other.name)));
    assert_eq!(back, inside);
    assert_eq!((netns::current_id().unwrap(), own()), (home, home));
    // After a panic inside a visit.
    let _ = std::panic::catch_unwind(|| netns::run_in(&ns.name, || panic!("inside")));
    assert_eq!((netns::current_id().unwrap(), own()), (home, home));
    // Creating a namespace moves the thread into it and back.
    let made = unique_name("idmade");
    let _cleanup = Cleanup(made.clone());
    netns::create(&made).unwrap();
    assert_eq!((netns::current_id().unwrap(), own()), (home, home));
    // A handle on the thread's own namespace, taken inside a visit, is the visited one.
    let handle = netns::run_in(&ns.name, || NetNs::current().unwrap()).unwrap();
    assert_eq!(handle.id().unwrap(), inside.0);
    // Moves for good, on threads of their own.
    let target = NetNs::open(&other.name).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(netns::current_id().unwrap(), home);
            netns::enter_for_good(&target).unwrap();
            assert_eq!((netns::current_id().unwrap(), own()), (deeper.0, deeper.0));
            netns::unshare_thread().unwrap();
            let fresh = own();
            assert_ne!(fresh, deeper.0);
            assert_eq!(netns::current_id().unwrap(), fresh);
        })
        .join()
        .unwrap();
    });
    assert_eq!((netns::current_id().unwrap(), own()), (home, home));
}

/// A thread moved behind the module's back (a bare `setns`/`unshare`) would leave a wrong
/// identity kept: debug builds check every answer and stop there.
#[cfg(debug_assertions)]
#[test]
fn a_move_behind_the_module_s_back_is_caught_in_debug_builds() {
    if !root_or_skip("a_move_behind_the_module_s_back_is_caught_in_debug_builds") {
        return;
    }
    let caught = std::thread::spawn(|| {
        netns::current_id().unwrap();
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        netns::current_id()
    })
    .join();
    assert!(caught.is_err(), "{caught:?}");
}

#[test]
fn namespace_of_a_process_is_opened_by_path() {
    if !root_or_skip("namespace_of_a_process_is_opened_by_path") {
        return;
    }
    // A process in its own network namespace, like a lab machine.
    let mut child = Command::new("unshare")
        .args(["--net", "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let path = format!("/proc/{pid}/ns/net");
    // unshare execs sleep once the namespace exists; wait for that.
    let start = std::time::Instant::now();
    while ns_id(&path) == ns_id("/proc/self/ns/net") {
        assert!(
            start.elapsed().as_secs() < 5,
            "child never left our namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("unshare exited: {status}");
        }
    }
    let child = Kill(child);
    let ns = NetNs::open_path(std::path::Path::new(&path)).unwrap();
    let mut nl = Netlink::open_in(&ns).unwrap();
    nl.create_bridge(&BridgeSpec::new("enmach0")).unwrap();
    let links = run_ok(
        "nsenter",
        &[&format!("--net={path}"), "ip", "-o", "link", "show"],
    );
    assert!(links.contains("enmach0"), "{links}");
    drop(child);
}

#[test]
fn exec_runs_in_the_namespace_with_the_node_resolv_conf_mounted() {
    if !root_or_skip("exec_runs_in_the_namespace_with_the_node_resolv_conf_mounted") {
        return;
    }
    let ns = TestNs::new("exec");
    ns.ip(&["link", "add", "enexec0", "type", "bridge"]);
    let dir = tempfile::tempdir().unwrap();
    let node_resolv = dir.path().join("resolv.conf");
    let content = "nameserver 198.51.100.53\nsearch edgenet.test\n";
    std::fs::write(&node_resolv, content).unwrap();
    let host_before = std::fs::read("/etc/resolv.conf").unwrap();

    let opts = ExecOptions {
        binds: vec![BindMount::new(&node_resolv, "/etc/resolv.conf")],
        env: vec![("HTTP_PROXY".into(), "http://198.51.100.8:3128".into())],
        mount_sysfs: true,
    };
    let out = exec::output_in(&ns.name, &["cat", "/etc/resolv.conf"], &opts).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), content);

    let out = exec::output_in(
        &ns.name,
        &[
            "sh",
            "-c",
            "echo $HTTP_PROXY; readlink /proc/self/ns/net; ls /sys/class/net",
        ],
        &opts,
    )
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("http://198.51.100.8:3128"));
    let (_, ino) = ns_id(&format!("/run/netns/{}", ns.name));
    assert_eq!(lines.next(), Some(format!("net:[{ino}]").as_str()));
    let mut sys_links: Vec<&str> = lines.collect();
    sys_links.sort();
    assert_eq!(sys_links, vec!["enexec0", "lo"]);

    // Nothing leaked to the host's mount namespace.
    assert_eq!(std::fs::read("/etc/resolv.conf").unwrap(), host_before);

    // A failing command is a status, not an error.
    let out = exec::output_in(&ns.name, &["sh", "-c", "exit 3"], &ExecOptions::default()).unwrap();
    assert_eq!(out.status.code(), Some(3));

    // Without binds no mount namespace is needed; the network namespace still is entered.
    let out = exec::output_in(
        &ns.name,
        &["ip", "-o", "link", "show"],
        &ExecOptions::default(),
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("enexec0"));

    let missing = ExecOptions {
        binds: vec![BindMount::new(dir.path().join("nope"), "/etc/resolv.conf")],
        ..ExecOptions::default()
    };
    let e = exec::output_in(&ns.name, &["true"], &missing).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn sysctl_reads_and_writes_the_namespace_value_only() {
    if !root_or_skip("sysctl_reads_and_writes_the_namespace_value_only") {
        return;
    }
    let ns = TestNs::new("sysctl");
    let host_before = sysctl::read("net.ipv4.ip_forward").unwrap();
    let (previous, now, unchanged) = ns.run(|| {
        let previous = sysctl::set("net.ipv4.ip_forward", "1").unwrap();
        let now = sysctl::read("net.ipv4.ip_forward").unwrap();
        let unchanged = sysctl::set("net.ipv4.ip_forward", "1").unwrap();
        (previous, now, unchanged)
    });
    assert_eq!(previous, "0", "a fresh namespace does not forward");
    assert_eq!(now, "1");
    assert_eq!(unchanged, "1");
    let kernel = run_ok(
        "nsenter",
        &[
            &format!("--net=/run/netns/{}", ns.name),
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    );
    assert_eq!(kernel.trim(), "1");
    assert_eq!(sysctl::read("net.ipv4.ip_forward").unwrap(), host_before);
}
