//! RFC 5227 ARP probes against the real kernel, only inside namespaces these tests create:
//! a "prober" namespace and a "lan" peer namespace joined by a veth pair (prober `enp0` ↔
//! peer `enl0`). IPv6 is disabled in both so the only frames on the wire are ARP.

use std::collections::BTreeSet;
use std::io::Write;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use edgenet_core::mac::MacAddr;
use edgenet_host::arp::{self, ArpPacket, ProbeAnswer, ProbeOptions, ARP_REQUEST};

mod common;

use common::{root_or_skip, TestNs};

const PROBER_IF: &str = "enp0";
const PEER_IF: &str = "enl0";

/// Raw stderr: shows even though the harness captures the test's prints.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A namespace named `enarp-<test>-<pid>` (a [`TestNs`]: deleted on drop, also when the test
/// panics) with IPv6 off.
struct Ns(TestNs);

impl std::ops::Deref for Ns {
    type Target = TestNs;

    fn deref(&self) -> &TestNs {
        &self.0
    }
}

impl Ns {
    fn new(test: &str) -> Self {
        let ns = Ns(TestNs::named(format!(
            "enarp-{test}-{}",
            std::process::id()
        )));
        // Nothing but ARP on the wire: no IPv6 DAD, router solicitations or MLD reports.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    fn mac_of(&self, link: &str) -> MacAddr {
        let v = self.ip_json(&["link", "show", link]);
        v[0]["address"].as_str().unwrap().parse().unwrap()
    }

    /// `ip -j neigh show` entries (IPv4 only), as (dst, lladdr, state) strings.
    fn neigh(&self) -> Vec<String> {
        let v = self.ip_json(&["-4", "neigh", "show"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| format!("{} {} {}", n["dst"], n["lladdr"], n["state"]))
            .collect()
    }
}

/// Prober and LAN peer joined by a veth, both ends up; the peer holds `peer_addrs` (/24).
struct Lan {
    prober: Ns,
    peer: Ns,
}

fn lan(test: &str, peer_addrs: &[&str]) -> Lan {
    let prober = Ns::new(&format!("{test}-p"));
    let peer = Ns::new(&format!("{test}-l"));
    prober.ip(&[
        "link", "add", PROBER_IF, "type", "veth", "peer", "name", PEER_IF, "netns", &peer.name,
    ]);
    for a in peer_addrs {
        peer.ip(&["addr", "add", &format!("{a}/24"), "dev", PEER_IF]);
    }
    prober.ip(&["link", "set", PROBER_IF, "up"]);
    peer.ip(&["link", "set", PEER_IF, "up"]);
    Lan { prober, peer }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn answers(addrs: &[&str], mac: MacAddr) -> Vec<ProbeAnswer> {
    let mut v: Vec<ProbeAnswer> = addrs
        .iter()
        .map(|a| ProbeAnswer {
            address: ip(a),
            mac,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn probe_returns_exactly_the_addresses_the_peer_holds_and_changes_nothing() {
    let test = "probe_returns_exactly_the_addresses_the_peer_holds_and_changes_nothing";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("held", &["10.77.0.10", "10.77.0.20"]);
    // The prober has an address of its own on the link; the probe must not reveal it.
    lan.prober
        .ip(&["addr", "add", "10.77.0.1/24", "dev", PROBER_IF]);
    let peer_mac = lan.peer.mac_of(PEER_IF);
    let prober_before = (
        lan.prober.ip_json(&["addr", "show"]),
        lan.prober.ip_json(&["route", "show", "table", "all"]),
        lan.prober.neigh(),
        lan.prober.mac_of(PROBER_IF),
    );
    assert!(lan.peer.neigh().is_empty(), "{:?}", lan.peer.neigh());

    let targets = [
        ip("10.77.0.10"),
        ip("10.77.0.20"),
        ip("10.77.0.30"),
        ip("10.77.0.40"),
    ];
    let got = lan
        .prober
        .run(|| arp::probe(PROBER_IF, &targets, &ProbeOptions::default()))
        .unwrap();

    assert_eq!(got, answers(&["10.77.0.10", "10.77.0.20"], peer_mac));
    assert!(!got.iter().any(|a| a.address == ip("10.77.0.30")));

    // Sender IP 0.0.0.0: the peer learned nothing about the prober.
    let peer_neigh = lan.peer.neigh();
    say(&format!("peer neighbours after probe: {peer_neigh:?}"));
    assert!(
        !peer_neigh.iter().any(|n| n.contains("10.77.0.1\"")),
        "peer learned the prober: {peer_neigh:?}"
    );
    assert!(peer_neigh.is_empty(), "{peer_neigh:?}");
    // And the prober's own addresses, routes, ARP cache and MAC are as they were.
    let prober_after = (
        lan.prober.ip_json(&["addr", "show"]),
        lan.prober.ip_json(&["route", "show", "table", "all"]),
        lan.prober.neigh(),
        lan.prober.mac_of(PROBER_IF),
    );
    say(&format!(
        "prober neighbours after probe: {:?}",
        prober_after.2
    ));
    assert_eq!(prober_before, prober_after);
}

#[test]
fn probing_a_whole_slash_24_is_parallel_and_bounded() {
    let test = "probing_a_whole_slash_24_is_parallel_and_bounded";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("slash24", &["10.77.0.10", "10.77.0.200"]);
    let peer_mac = lan.peer.mac_of(PEER_IF);
    let targets: Vec<Ipv4Addr> = (1..=254).map(|i| Ipv4Addr::new(10, 77, 0, i)).collect();
    let opts = ProbeOptions::default();

    let (got, elapsed) = lan.prober.run(|| {
        let t = Instant::now();
        let r = arp::probe(PROBER_IF, &targets, &opts);
        (r, t.elapsed())
    });
    let got = got.unwrap();
    say(&format!(
        "ARP probe of 254 addresses ({} rounds, {:?} apart, {:?} wait): {elapsed:?}",
        opts.count, opts.interval, opts.wait
    ));
    assert_eq!(got, answers(&["10.77.0.10", "10.77.0.200"], peer_mac));
    // It listens for the whole configured time, and does not take one interval per address.
    assert!(elapsed >= opts.duration(), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// Captures every frame the peer receives from the prober while it probes: all must be ARP
/// probes (broadcast, request, sender IP 0.0.0.0, sender MAC = the prober's), one per target
/// and round, except that a target which answered is not asked again (every request is a
/// broadcast all hosts of the LAN handle), and nothing else.
#[test]
fn only_arp_probes_leave_the_prober() {
    let test = "only_arp_probes_leave_the_prober";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("wire", &["10.77.0.10"]);
    let prober_mac = lan.prober.mac_of(PROBER_IF);
    let targets = [ip("10.77.0.10"), ip("10.77.0.11"), ip("10.77.0.12")];
    let opts = ProbeOptions {
        count: 3,
        interval: Duration::from_millis(50),
        wait: Duration::from_millis(100),
    };

    let (ready_tx, ready_rx) = mpsc::channel();
    let frames = std::thread::scope(|s| {
        let capture = s.spawn(|| {
            lan.peer
                .run(move || capture_from(PEER_IF, prober_mac, ready_tx, Duration::from_secs(1)))
        });
        ready_rx.recv().expect("capture ready");
        let got = lan.prober.run(|| arp::probe(PROBER_IF, &targets, &opts));
        assert_eq!(got.unwrap().len(), 1);
        capture.join().unwrap()
    });

    let mut per_target = std::collections::BTreeMap::new();
    for (ethertype, dst, payload) in &frames {
        assert_eq!(
            *ethertype, 0x0806,
            "non-ARP frame from the prober: {payload:02x?}"
        );
        assert_eq!(*dst, [0xff; 6], "not broadcast");
        let p = ArpPacket::parse(payload).unwrap();
        assert_eq!(p.operation, ARP_REQUEST);
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.sender_mac, prober_mac);
        assert_eq!(p.target_mac, MacAddr([0; 6]));
        *per_target.entry(p.target_ip).or_insert(0u32) += 1;
    }
    // 10.77.0.10 (the peer's) answered the first round.
    let expected: std::collections::BTreeMap<Ipv4Addr, u32> = targets
        .iter()
        .map(|t| {
            (
                *t,
                if *t == ip("10.77.0.10") {
                    1
                } else {
                    opts.count
                },
            )
        })
        .collect();
    assert_eq!(per_target, expected, "{} frames", frames.len());
}

/// A target whose MAC the host already knows (the gateway's entry in its ARP cache) is asked
/// by unicast to that MAC in the first round, and no broadcast follows once it answered; with a
/// stale MAC (the router was replaced) nobody answers the unicast and the next rounds
/// broadcast, so the target is still found. Targets without a known MAC (and every target of a
/// plain probe) are broadcast, three rounds.
#[test]
fn a_known_mac_is_asked_by_unicast_and_a_stale_one_falls_back_to_broadcast() {
    let test = "a_known_mac_is_asked_by_unicast_and_a_stale_one_falls_back_to_broadcast";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("known", &["10.77.0.1"]);
    let (prober_mac, peer_mac) = (lan.prober.mac_of(PROBER_IF), lan.peer.mac_of(PEER_IF));
    let stale: MacAddr = "02:00:5e:00:53:99".parse().unwrap();
    let (gateway, free) = (ip("10.77.0.1"), ip("10.77.0.11"));
    let opts = ProbeOptions {
        count: 3,
        interval: Duration::from_millis(50),
        wait: Duration::from_millis(100),
    };
    // (answers, [(destination MAC, target)] of every probe the peer's link carried)
    let run = |known: &[(Ipv4Addr, MacAddr)]| {
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let capture = s.spawn(|| {
                lan.peer.run(move || {
                    capture_from(PEER_IF, prober_mac, ready_tx, Duration::from_millis(700))
                })
            });
            ready_rx.recv().expect("capture ready");
            let got = lan
                .prober
                .run(|| arp::probe_known(PROBER_IF, &[gateway, free], known, &opts))
                .unwrap();
            let sent: Vec<(MacAddr, Ipv4Addr)> = capture
                .join()
                .unwrap()
                .into_iter()
                .map(|(ethertype, dst, payload)| {
                    assert_eq!(ethertype, 0x0806, "non-ARP frame: {payload:02x?}");
                    let p = ArpPacket::parse(&payload).unwrap();
                    assert_eq!(
                        (p.operation, p.sender_ip, p.target_mac),
                        (ARP_REQUEST, Ipv4Addr::UNSPECIFIED, MacAddr([0; 6])),
                        "an RFC 5227 probe"
                    );
                    (MacAddr(dst), p.target_ip)
                })
                .collect();
            (got, sent)
        })
    };
    let broadcast = MacAddr([0xff; 6]);
    let to = |mac: MacAddr, target: Ipv4Addr, n: usize| vec![(mac, target); n];
    let of = |sent: &[(MacAddr, Ipv4Addr)], target: Ipv4Addr| -> Vec<(MacAddr, Ipv4Addr)> {
        sent.iter().copied().filter(|(_, t)| *t == target).collect()
    };

    // The gateway's MAC known: one request, to it alone; it answers, so nothing is broadcast
    // for it. The free address is broadcast every round, as ever.
    let (got, sent) = run(&[(gateway, peer_mac)]);
    assert_eq!(got, answers(&["10.77.0.1"], peer_mac));
    assert_eq!(of(&sent, gateway), to(peer_mac, gateway, 1), "{sent:?}");
    assert_eq!(of(&sent, free), to(broadcast, free, 3), "{sent:?}");

    // A stale MAC: the unicast goes unanswered, the next two rounds broadcast and find it.
    let (got, sent) = run(&[(gateway, stale)]);
    assert_eq!(got, answers(&["10.77.0.1"], peer_mac));
    assert_eq!(
        of(&sent, gateway),
        [to(stale, gateway, 1), to(broadcast, gateway, 1)].concat(),
        "{sent:?}"
    );

    // No MAC known: broadcast, as a plain probe does.
    let (got, sent) = run(&[]);
    assert_eq!(got, answers(&["10.77.0.1"], peer_mac));
    assert_eq!(of(&sent, gateway), to(broadcast, gateway, 1), "{sent:?}");

    // One round only: nothing would be left to broadcast in, so the known MAC is not used.
    let one = ProbeOptions {
        count: 1,
        ..opts.clone()
    };
    let got = lan
        .prober
        .run(|| arp::probe_known(PROBER_IF, &[gateway], &[(gateway, stale)], &one))
        .unwrap();
    assert_eq!(got, answers(&["10.77.0.1"], peer_mac));
}

/// Frames received on `ifname` whose Ethernet source is `from`, for `time`:
/// (ethertype, destination MAC, payload).
fn capture_from(
    ifname: &str,
    from: MacAddr,
    ready: mpsc::Sender<()>,
    time: Duration,
) -> Vec<(u16, [u8; 6], Vec<u8>)> {
    let cname = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    assert_ne!(index, 0, "{ifname}: {}", std::io::Error::last_os_error());
    let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2); the descriptor is checked and owned by one OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, eth_p_all as i32) };
    assert!(raw >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = eth_p_all;
    addr.sll_ifindex = index as i32;
    // SAFETY: valid sockaddr_ll and its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: valid timeval and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as u32,
        )
    };
    ready.send(()).unwrap();

    let end = Instant::now() + time;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 14 {
            continue;
        }
        let f = &buf[..n as usize];
        if f[6..12] != from.0 {
            continue;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&f[0..6]);
        out.push((u16::from_be_bytes([f[12], f[13]]), dst, f[14..].to_vec()));
    }
    out
}

/// A host that does not answer probes (arp_ignore=8) but uses a target as its own sender
/// address in an ARP request of its own is still reported (RFC 5227 conflict).
#[test]
fn a_host_claiming_a_target_in_its_own_request_is_reported() {
    let test = "a_host_claiming_a_target_in_its_own_request_is_reported";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("claim", &["10.77.0.50"]);
    lan.peer.exec(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.conf.{PEER_IF}.arp_ignore=8"),
    ]);
    let peer_mac = lan.peer.mac_of(PEER_IF);
    let opts = ProbeOptions {
        count: 2,
        interval: Duration::from_millis(100),
        wait: Duration::from_millis(900),
    };
    let targets = [ip("10.77.0.50")];

    // Without the claim, the silenced peer is not seen.
    let quiet = lan
        .prober
        .run(|| arp::probe(PROBER_IF, &targets, &ProbeOptions::default()))
        .unwrap();
    assert_eq!(quiet, vec![]);

    let got = std::thread::scope(|s| {
        let probe = s.spawn(|| lan.prober.run(|| arp::probe(PROBER_IF, &targets, &opts)));
        std::thread::sleep(Duration::from_millis(150));
        // The peer looks for an absent neighbour from 10.77.0.50: "who-has .99 tell .50".
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lan.peer.name,
                "ping",
                "-c1",
                "-W1",
                "-I",
                "10.77.0.50",
                "10.77.0.99",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        probe.join().unwrap()
    });
    assert_eq!(got.unwrap(), answers(&["10.77.0.50"], peer_mac));
}

#[test]
fn missing_down_and_carrierless_interfaces_are_clear_errors() {
    let test = "missing_down_and_carrierless_interfaces_are_clear_errors";
    if !root_or_skip(test) {
        return;
    }
    let ns = Ns::new("errors");
    // (This kernel has no dummy driver; a veth pair left down serves.)
    ns.ip(&[
        "link", "add", "endown0", "type", "veth", "peer", "name", "endown1",
    ]);
    // A veth whose peer is down: administratively up, no carrier.
    ns.ip(&[
        "link", "add", "ennc0", "type", "veth", "peer", "name", "ennc1",
    ]);
    ns.ip(&["link", "set", "ennc0", "up"]);
    ns.ip(&["link", "set", "lo", "up"]);
    let t = [ip("10.77.0.10")];
    let o = ProbeOptions::default();

    let (missing, down, no_carrier, lo) = ns.run(|| {
        (
            arp::probe("nosuch0", &t, &o).unwrap_err(),
            arp::probe("endown0", &t, &o).unwrap_err(),
            arp::probe("ennc0", &t, &o).unwrap_err(),
            arp::probe("lo", &t, &o).unwrap_err(),
        )
    });
    say(&format!("{missing}\n{down}\n{no_carrier}\n{lo}"));
    assert!(missing.is_not_found(), "{missing}");
    assert!(missing.to_string().contains("nosuch0"), "{missing}");
    assert_eq!(down.errno(), Some(libc::ENETDOWN), "{down}");
    assert!(down.to_string().contains("endown0"), "{down}");
    assert!(no_carrier.to_string().contains("ennc0"), "{no_carrier}");
    assert!(
        no_carrier.to_string().contains("no carrier"),
        "{no_carrier}"
    );
    assert!(lo.to_string().contains("no Ethernet MAC"), "{lo}");

    // Empty target list: fine even on a missing interface.
    assert_eq!(ns.run(|| arp::probe("nosuch0", &[], &o)).unwrap(), vec![]);
}

#[test]
fn duplicate_targets_and_several_answerers_are_deduplicated_per_address_and_mac() {
    let test = "duplicate_targets_and_several_answerers_are_deduplicated_per_address_and_mac";
    if !root_or_skip(test) {
        return;
    }
    // Two peers on a bridge in a third namespace, both holding 10.77.0.10 (a conflict);
    // one of them also holds .20.
    let prober = Ns::new("dup-p");
    let sw = Ns::new("dup-s");
    let a = Ns::new("dup-a");
    let b = Ns::new("dup-b");
    sw.ip(&["link", "add", "enbr0", "type", "bridge"]);
    sw.ip(&["link", "set", "enbr0", "up"]);
    for (i, ns) in [&prober, &a, &b].into_iter().enumerate() {
        let port = format!("enport{i}");
        sw.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", PEER_IF, "netns", &ns.name,
        ]);
        sw.ip(&["link", "set", &port, "master", "enbr0", "up"]);
        ns.ip(&["link", "set", PEER_IF, "up"]);
    }
    a.ip(&["addr", "add", "10.77.0.10/24", "dev", PEER_IF]);
    a.ip(&["addr", "add", "10.77.0.20/24", "dev", PEER_IF]);
    b.ip(&["addr", "add", "10.77.0.10/24", "dev", PEER_IF]);
    let (mac_a, mac_b) = (a.mac_of(PEER_IF), b.mac_of(PEER_IF));

    let targets = [
        ip("10.77.0.20"),
        ip("10.77.0.10"),
        ip("10.77.0.10"),
        ip("10.77.0.20"),
    ];
    let got = prober
        .run(|| arp::probe(PEER_IF, &targets, &ProbeOptions::default()))
        .unwrap();
    let want: BTreeSet<ProbeAnswer> = [
        ProbeAnswer {
            address: ip("10.77.0.10"),
            mac: mac_a,
        },
        ProbeAnswer {
            address: ip("10.77.0.10"),
            mac: mac_b,
        },
        ProbeAnswer {
            address: ip("10.77.0.20"),
            mac: mac_a,
        },
    ]
    .into();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
}

/// The prober's interface is a port of a bridge (as the adapter is once edgenet's external
/// switch exists): frames it receives are consumed by the bridge, yet the probe still sees
/// the replies.
#[test]
fn probing_on_a_bridge_port_sees_the_replies() {
    let test = "probing_on_a_bridge_port_sees_the_replies";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("port", &["10.77.0.10"]);
    lan.prober.ip(&["link", "add", "enbr0", "type", "bridge"]);
    lan.prober
        .ip(&["link", "set", PROBER_IF, "master", "enbr0"]);
    lan.prober.ip(&["link", "set", "enbr0", "up"]);
    let peer_mac = lan.peer.mac_of(PEER_IF);
    let t = [ip("10.77.0.10"), ip("10.77.0.11")];
    let (on_port, on_bridge) = lan.prober.run(|| {
        (
            arp::probe(PROBER_IF, &t, &ProbeOptions::default()),
            arp::probe("enbr0", &t, &ProbeOptions::default()),
        )
    });
    assert_eq!(on_port.unwrap(), answers(&["10.77.0.10"], peer_mac));
    assert_eq!(on_bridge.unwrap(), answers(&["10.77.0.10"], peer_mac));
}

#[test]
fn an_announcement_moves_the_peers_entry_to_the_announced_mac() {
    let test = "an_announcement_moves_the_peers_entry_to_the_announced_mac";
    if !root_or_skip(test) {
        return;
    }
    let lan = lan("announce", &["10.77.0.10"]);
    let (old, new): (MacAddr, MacAddr) = (
        "02:00:5e:00:53:01".parse().unwrap(),
        "02:00:5e:00:53:02".parse().unwrap(),
    );
    // The peer still has the address at its old MAC (a node that came back with a new one).
    lan.peer.ip(&[
        "neigh",
        "add",
        "10.77.0.5",
        "lladdr",
        &old.to_string(),
        "dev",
        PEER_IF,
        "nud",
        "stale",
    ]);
    lan.prober
        .run(|| arp::announce(PROBER_IF, new, ip("10.77.0.5")))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let entry = loop {
        let entry: Vec<String> = lan
            .peer
            .neigh()
            .into_iter()
            .filter(|n| n.contains("\"10.77.0.5\""))
            .collect();
        if entry.iter().any(|n| n.contains(&new.to_string())) || Instant::now() > deadline {
            break entry;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        entry.len() == 1 && entry[0].contains(&new.to_string()),
        "{entry:?}"
    );
    // Nothing on the prober changed: the announcement names a MAC that is not its own.
    assert!(lan.prober.neigh().is_empty(), "{:?}", lan.prober.neigh());
}
