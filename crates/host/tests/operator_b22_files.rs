//! B22 finding 4: the host's resolver files are read only when they are regular files, and
//! only up to a cap; one that cannot be read is named as what it is.

use std::path::Path;

use edgenet_host::resolv::read_host_dns;

#[test]
fn a_fifo_as_resolv_conf_is_named_and_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("resolv.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Without the fix the open blocks for ever: run it on a thread and give up after a while.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(read_host_dns(&path, Path::new("/nonexistent-g22")));
    });
    let dns = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("reading a FIFO as resolv.conf must not block");
    assert!(dns.servers.is_empty());
    assert_eq!(
        dns.problem.as_deref(),
        Some(format!("{} is not a regular file (it is a FIFO)", fifo.display()).as_str())
    );
}

#[test]
fn a_device_as_resolv_conf_is_not_read() {
    // /dev/zero would be read until memory ends without the cap: only call it with a cap on
    // this process's address space ... which a test cannot set for itself safely; /dev/null is
    // the same kind of file and ends at once, so it shows the refusal without the risk.
    let dns = read_host_dns(Path::new("/dev/null"), Path::new("/nonexistent-g22"));
    assert_eq!(
        dns.problem.as_deref(),
        Some("/dev/null is not a regular file (it is a character device)")
    );
}

#[test]
fn an_oversized_resolv_conf_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("resolv.conf");
    let mut text = "nameserver 192.0.2.53\n".to_string();
    text.push_str(&"#".repeat(1 << 20));
    std::fs::write(&big, text).unwrap();
    let dns = read_host_dns(&big, Path::new("/nonexistent-g22"));
    assert!(dns.servers.is_empty(), "{dns:?}");
    let problem = dns.problem.unwrap();
    assert!(problem.contains("is more than 1048576 bytes"), "{problem}");
}

#[test]
fn an_upstream_list_that_is_not_a_file_is_not_called_missing() {
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("resolv.conf");
    std::fs::write(&stub, "nameserver 127.0.0.53\n").unwrap();
    let dns = read_host_dns(&stub, Path::new("/dev/null"));
    let problem = dns.problem.unwrap();
    assert!(
        problem.contains("/dev/null is not a regular file (it is a character device)"),
        "{problem}"
    );
    assert!(!problem.contains("does not exist"), "{problem}");
    // A missing one is still called missing.
    let dns = read_host_dns(&stub, &dir.path().join("none"));
    assert!(dns.problem.unwrap().contains("does not exist"));
}
