//! What a deploy sends to the whole LAN, counted by a bystander on it (an `AF_PACKET` socket on
//! the LAN host of [`adapter_lan`]): every broadcast or multicast frame reaches every machine
//! on the LAN, so a frame the deploy need not send is one no machine should have to handle.
//!
//! - The address-free probe (rule 12) asks the gateway by unicast when the host's neighbour
//!   cache has its MAC, and by broadcast only when that goes unanswered (or no MAC is known).
//! - The switch bridge takes the adapter's IPv6 link-local address, already checked on the
//!   adapter, without a second duplicate address detection.

mod support;

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::Value;
use support::*;

const BRIDGE: &str = "aksedgesw-ext";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const BROADCAST: [u8; 6] = [0xff; 6];

/// One frame the bystander received.
#[derive(Debug, Clone)]
struct Frame {
    dst: [u8; 6],
    src: [u8; 6],
    ethertype: u16,
    /// After the Ethernet header.
    payload: Vec<u8>,
}

/// Frames arriving on one link of a namespace, counted from [`Bystander::listen`] until
/// [`Bystander::frames`].
struct Bystander {
    stop: Arc<AtomicBool>,
    heard: Arc<Mutex<Vec<Frame>>>,
    thread: JoinHandle<()>,
}

impl Bystander {
    /// Listening on `ifname` in namespace `ns` once this returns.
    fn listen(ns: &str, ifname: &str) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ns, ifname, stopped, out) = (
            ns.to_string(),
            ifname.to_string(),
            stop.clone(),
            heard.clone(),
        );
        let thread = std::thread::spawn(move || {
            let fd = edgenet_host::netns::run_in(&ns, || packet_socket(&ifname))
                .expect("enter the bystander's namespace");
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 2048];
            loop {
                // SAFETY: `buf` is writable for its length.
                let n =
                    unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n < 0 {
                    // The receive timeout: everything sent before `frames` was called is in.
                    if stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                let f = &buf[..n as usize];
                if f.len() < 14 {
                    continue;
                }
                out.lock().unwrap().push(Frame {
                    dst: f[0..6].try_into().unwrap(),
                    src: f[6..12].try_into().unwrap(),
                    ethertype: u16::from_be_bytes([f[12], f[13]]),
                    payload: f[14..].to_vec(),
                });
            }
        });
        ready_rx.recv().expect("bystander ready");
        Bystander {
            stop,
            heard,
            thread,
        }
    }

    /// Everything received so far; the bystander goes on listening.
    fn so_far(&self) -> Vec<Frame> {
        self.heard.lock().unwrap().clone()
    }

    /// Everything received, once what was sent before this call is in.
    fn frames(self) -> Vec<Frame> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

/// An `AF_PACKET` socket taking every frame that arrives on `ifname` (of the calling thread's
/// namespace), with a 50 ms receive timeout.
fn packet_socket(ifname: &str) -> OwnedFd {
    let cname = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    assert_ne!(index, 0, "{ifname}: {}", std::io::Error::last_os_error());
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2); the descriptor is checked and owned by one OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    assert!(raw >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = index as i32;
    // SAFETY: a valid sockaddr_ll and its size.
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
    // SAFETY: a valid timeval and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as u32,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    fd
}

fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let text = json_of(&format!("ip -n {ns} -j link show dev {dev}"))[0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The ARP requests from `from` for `target` among `frames`: (destination MAC, sender IP).
fn arp_requests_for(frames: &[Frame], from: [u8; 6], target: Ipv4Addr) -> Vec<([u8; 6], Ipv4Addr)> {
    frames
        .iter()
        .filter(|f| f.src == from && f.ethertype == 0x0806 && f.payload.len() >= 28)
        .filter(|f| f.payload[6..8] == [0, 1] && f.payload[24..28] == target.octets())
        .map(|f| {
            let sender: [u8; 4] = f.payload[14..18].try_into().unwrap();
            (f.dst, Ipv4Addr::from(sender))
        })
        .collect()
}

fn finding_codes(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `edgenet check` (JSON) while the bystander listens: its findings' codes, and the frames.
fn check_heard(m: &Machine, peer: &str, cfg: &str) -> (Vec<String>, Vec<Frame>) {
    let ear = Bystander::listen(peer, "eth0");
    let out = m.edgenet(&["check", "-c", cfg, "-o", "json"]);
    let frames = ear.frames();
    let report = stdout_json(&out);
    (finding_codes(&report, "findings"), frames)
}

/// With the gateway's MAC in the host's neighbour cache — on the adapter before the deploy, on
/// the bridge after (the take-over carried the entry there) — the probe asks the gateway at
/// that MAC: the LAN sees no broadcast ARP for the gateway during `check` or `deploy`, and the
/// gateway is still found (no `gateway-silent`). The node addresses are still broadcast probes,
/// three rounds.
#[test]
fn a_cached_gateway_is_asked_by_unicast_not_by_broadcast() {
    let Some(m) = machine_prefixed("q24", "gwc") else {
        return;
    };
    let net = adapter_lan(&m, true);
    let (lan, peer) = (net.lan.name(), net.peer.as_ref().unwrap().name());
    let (router, own) = (mac_of(lan, "lan0"), mac_of(&m.ns, "up0"));
    sh(&format!(
        "ip -n {} neigh replace {GATEWAY} lladdr {} dev up0 nud stale",
        m.ns,
        mac_text(router)
    ));
    let cfg = m.write_config("c.json", &site_config("up0"));
    let node: Ipv4Addr = "198.18.0.101".parse().unwrap();
    let heard = |what: &str, codes: &[String], frames: &[Frame]| {
        assert!(
            !codes.iter().any(|c| c == "gateway-silent"),
            "{what}: {codes:?}"
        );
        let to_gateway = arp_requests_for(frames, own, GATEWAY);
        assert!(
            !to_gateway.iter().any(|(dst, _)| *dst == BROADCAST),
            "{what}: broadcast ARP for the gateway: {to_gateway:?}"
        );
        // The node's address is probed as ever: three broadcasts from 0.0.0.0 (a deploy's
        // gratuitous ARP for it comes after).
        let probes: Vec<_> = arp_requests_for(frames, own, node)
            .into_iter()
            .filter(|(_, sender)| sender.is_unspecified())
            .collect();
        assert_eq!(
            probes,
            vec![(BROADCAST, Ipv4Addr::UNSPECIFIED); 3],
            "{what}"
        );
    };

    let (codes, frames) = check_heard(&m, peer, &cfg);
    heard("check on the adapter", &codes, &frames);

    let ear = Bystander::listen(peer, "eth0");
    let (code, deploy) = m.json(&["deploy", "-c", &cfg]);
    let frames = ear.frames();
    assert_eq!(code, Some(0), "{deploy:#}");
    assert!(
        !deploy["warnings"].to_string().contains("gateway-silent"),
        "{deploy:#}"
    );
    heard("deploy", &[], &frames);

    // Deployed: the host's address and the gateway's entry are on the bridge now.
    let entry = json_of(&format!(
        "ip -n {} -j neigh show {GATEWAY} dev {BRIDGE}",
        m.ns
    ));
    assert_eq!(entry[0]["lladdr"], mac_text(router), "{entry}");
    let (codes, frames) = check_heard(&m, peer, &cfg);
    heard("check on the switch", &codes, &frames);
    m.ok(&["remove"]);
}

/// A stale MAC in the cache (the router was replaced: another MAC answers for the gateway now):
/// the unicast request goes unanswered, a broadcast follows, and the gateway is found. Without
/// an entry the gateway is asked by broadcast, as without a cache.
#[test]
fn a_stale_gateway_mac_falls_back_to_broadcast_and_no_entry_broadcasts() {
    let Some(m) = machine_prefixed("q24", "gws") else {
        return;
    };
    let net = adapter_lan(&m, true);
    let peer = net.peer.as_ref().unwrap().name();
    let own = mac_of(&m.ns, "up0");
    let gone = [0x02, 0x00, 0x5e, 0x00, 0x53, 0x99];
    let cfg = m.write_config("c.json", &site_config("up0"));
    let probes = |frames: &[Frame]| -> Vec<[u8; 6]> {
        arp_requests_for(frames, own, GATEWAY)
            .into_iter()
            .filter(|(_, sender)| sender.is_unspecified())
            .map(|(dst, _)| dst)
            .collect()
    };

    sh(&format!(
        "ip -n {} neigh replace {GATEWAY} lladdr {} dev up0 nud stale",
        m.ns,
        mac_text(gone)
    ));
    let (codes, frames) = check_heard(&m, peer, &cfg);
    assert!(!codes.iter().any(|c| c == "gateway-silent"), "{codes:?}");
    // The LAN's switch floods a frame to an unknown MAC, so the bystander sees the unicast.
    assert_eq!(probes(&frames), [gone, BROADCAST], "stale MAC");

    sh(&format!("ip -n {} neigh flush dev up0", m.ns));
    let (codes, frames) = check_heard(&m, peer, &cfg);
    assert!(!codes.iter().any(|c| c == "gateway-silent"), "{codes:?}");
    assert_eq!(probes(&frames), [BROADCAST], "no entry");
}

/// The link-local IPv6 addresses of `dev` as the kernel lists them (`ip -j -6 addr`): each
/// address entry (`local`, `prefixlen`, flags such as `tentative`, `nodad`).
fn link_locals(ns: &str, dev: &str) -> Vec<Value> {
    json_of(&format!("ip -n {ns} -j -6 addr show dev {dev} scope link"))
        .as_array()
        .and_then(|l| l.first())
        .and_then(|l| l["addr_info"].as_array().cloned())
        .unwrap_or_default()
}

/// The ICMPv6 messages among `frames`: (type, source, NS target or unspecified).
fn icmp6(frames: &[Frame]) -> Vec<(u8, Ipv6Addr, Ipv6Addr)> {
    let addr = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap());
    frames
        .iter()
        .filter(|f| f.ethertype == 0x86dd && f.payload.len() >= 41 && f.payload[6] == 58)
        .map(|f| {
            let p = &f.payload;
            let target = if p[40] == 135 && p.len() >= 64 {
                addr(&p[48..64])
            } else {
                Ipv6Addr::UNSPECIFIED
            };
            (p[40], addr(&p[8..24]), target)
        })
        .collect()
}

/// Polls `cond` every 50 ms for up to `seconds`: whether it came true (the kernel's timers —
/// duplicate address detection, router solicitation — run on their own after a command).
fn eventually(seconds: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sends one router advertisement out of `dev` in namespace `ns` (from its link-local address,
/// hop limit 255, to all nodes) with the autonomous prefix `prefix`/64.
fn advertise(ns: &str, dev: &str, prefix: Ipv6Addr) {
    let dev = dev.to_string();
    edgenet_host::netns::run_in(ns, move || {
        let cname = std::ffi::CString::new(dev.as_str()).unwrap();
        // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        assert_ne!(index, 0, "{dev}");
        // SAFETY: socket(2); the descriptor is checked and owned by one OwnedFd.
        let raw = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
        assert!(raw >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        for (option, value) in [
            (libc::IPV6_MULTICAST_HOPS, 255),
            (libc::IPV6_MULTICAST_IF, index as i32),
        ] {
            // SAFETY: a valid int and its size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    option,
                    (&value as *const i32).cast(),
                    mem::size_of::<i32>() as u32,
                )
            };
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        }
        // Type 134, code 0, checksum (the kernel's), hop limit 64, no flags, router lifetime
        // 0 (not a default router), reachable and retransmit timers unset; then the prefix
        // information option: on-link and autonomous, valid 3600 s, preferred 1800 s.
        let mut ra = vec![134u8, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ra.extend([3, 4, 64, 0xc0]);
        ra.extend(3600u32.to_be_bytes());
        ra.extend(1800u32.to_be_bytes());
        ra.extend([0; 4]);
        ra.extend(prefix.octets());
        // SAFETY: sockaddr_in6 is plain data; all-zero is valid.
        let mut to: libc::sockaddr_in6 = unsafe { mem::zeroed() };
        to.sin6_family = libc::AF_INET6 as u16;
        to.sin6_addr.s6_addr = "ff02::1".parse::<Ipv6Addr>().unwrap().octets();
        to.sin6_scope_id = index;
        // SAFETY: `ra` is readable for its length; a valid sockaddr_in6 and its size.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                ra.as_ptr().cast(),
                ra.len(),
                0,
                (&to as *const libc::sockaddr_in6).cast(),
                mem::size_of::<libc::sockaddr_in6>() as u32,
            )
        };
        assert_eq!(
            sent,
            ra.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    })
    .expect("enter the advertiser's namespace");
}

/// The bridge takes the adapter's IPv6 link-local address (the kernel makes it from the MAC,
/// which the bridge takes too, and the adapter's was already found free): on the bridge at
/// once, not tentative, and no duplicate address detection for it on the LAN. The bridge still
/// sends its router solicitation, forms its SLAAC address from its MAC (the adapter's very
/// one), a redeploy changes nothing, `status` sees no drift. The bridge then makes its own
/// link-local address again (`addrgenmode eui64`), which made neither a second address nor a
/// detection: set down and up by hand, it has the same address again with no deploy, and
/// `status` and a redeploy agree that nothing is amiss. `remove` leaves the adapter with its
/// own again.
#[test]
fn the_bridge_takes_the_adapters_link_local_address_without_a_second_check() {
    let Some(m) = machine_prefixed("q24", "ll6") else {
        return;
    };
    let net = adapter_lan(&m, true);
    let peer = net.peer.as_ref().unwrap().name();
    // The adapter's address was checked before (the test machine does no detection, so it is
    // usable at once); links made from now on, the bridge among them, check theirs.
    let adapter_ll = link_locals(&m.ns, "up0");
    assert_eq!(adapter_ll.len(), 1, "{adapter_ll:?}");
    assert!(adapter_ll[0]["tentative"].is_null(), "{adapter_ll:?}");
    let address: Ipv6Addr = adapter_ll[0]["local"].as_str().unwrap().parse().unwrap();
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv6.conf.default.accept_dad=1",
        m.ns
    ));
    let cfg = m.write_config("c.json", &site_config("up0"));

    let ear = Bystander::listen(peer, "eth0");
    m.ok(&["deploy", "-c", &cfg]);
    let on_bridge = link_locals(&m.ns, BRIDGE);
    assert_eq!(on_bridge.len(), 1, "{on_bridge:?}");
    assert_eq!(on_bridge[0]["local"], address.to_string(), "{on_bridge:?}");
    assert_eq!(on_bridge[0]["prefixlen"], 64, "{on_bridge:?}");
    assert!(
        on_bridge[0]["tentative"].is_null(),
        "usable at once: {on_bridge:?}"
    );
    let mode = json_of(&format!("ip -n {} -j -d link show dev {BRIDGE}", m.ns));
    assert_eq!(mode[0]["inet6_addr_gen_mode"], "eui64", "{mode}");
    // The router solicitation comes (without the change, once detection is done: after its
    // neighbour solicitation), and no solicitation for the address ever went out.
    let solicited = |frames: &[Frame]| {
        icmp6(frames)
            .iter()
            .any(|(kind, from, _)| *kind == 133 && *from == address)
    };
    assert!(
        eventually(10, || solicited(&ear.so_far())),
        "no router solicitation from {address}: {:?}",
        icmp6(&ear.so_far())
    );
    let dad = |frames: &[Frame]| -> Vec<_> {
        icmp6(frames)
            .into_iter()
            .filter(|(kind, from, target)| {
                *kind == 135 && from.is_unspecified() && *target == address
            })
            .collect()
    };

    // SLAAC on the bridge: the address from its MAC, as the adapter would have formed it.
    let peer_ready = eventually(10, || {
        link_locals(peer, "eth0")
            .iter()
            .any(|a| a["tentative"].is_null())
    });
    assert!(peer_ready, "{:?}", link_locals(peer, "eth0"));
    advertise(peer, "eth0", "2001:db8:7::".parse().unwrap());
    let suffix = &address.segments()[4..];
    let slaac = format!(
        "2001:db8:7:0:{:x}:{:x}:{:x}:{:x}",
        suffix[0], suffix[1], suffix[2], suffix[3]
    );
    let global = || {
        json_of(&format!(
            "ip -n {} -j -6 addr show dev {BRIDGE} scope global",
            m.ns
        ))
        .to_string()
    };
    assert!(
        eventually(5, || global().contains(&slaac)),
        "{slaac} not on {BRIDGE}: {}",
        global()
    );

    // A redeploy changes nothing; status sees nothing amiss.
    let (code, again) = m.json(&["deploy", "-c", &cfg]);
    assert_eq!(
        (code, &again["changes"]),
        (Some(0), &serde_json::json!([])),
        "{again:#}"
    );
    assert!(m.drift().is_empty(), "{:?}", m.drift());
    // Seconds after the deploy (detection starts within one): setting the mode back made no
    // second address and sent no solicitation for it.
    let frames = ear.frames();
    assert!(
        dad(&frames).is_empty(),
        "duplicate address detection on the LAN: {:?}",
        dad(&frames)
    );
    // (`ip -j` lists the global address as an empty entry under `scope link`.)
    let on_bridge: Vec<_> = link_locals(&m.ns, BRIDGE)
        .into_iter()
        .filter(|a| !a["local"].is_null())
        .collect();
    assert_eq!(on_bridge.len(), 1, "{on_bridge:?}");

    // Set down and up by hand, the bridge makes the same address again itself (checked on the
    // LAN, as after any down/up); no deploy needed, and status and a redeploy agree.
    let ear = Bystander::listen(peer, "eth0");
    sh(&format!(
        "ip -n {ns} link set {BRIDGE} down && ip -n {ns} link set {BRIDGE} up",
        ns = m.ns
    ));
    assert!(
        eventually(10, || {
            let back = link_locals(&m.ns, BRIDGE);
            back.len() == 1
                && back[0]["local"] == address.to_string()
                && back[0]["tentative"].is_null()
        }),
        "{:?}",
        link_locals(&m.ns, BRIDGE)
    );
    let frames = ear.frames();
    assert_eq!(dad(&frames).len(), 1, "{:?}", icmp6(&frames));
    // (The kernel flushed the IPv4 default route too: put back by hand, as in B24's case.)
    sh(&format!(
        "ip -n {} route replace default via 198.18.0.1 dev {BRIDGE}",
        m.ns
    ));
    assert!(m.drift().is_empty(), "{:?}", m.drift());
    let (code, again) = m.json(&["deploy", "-c", &cfg]);
    assert_eq!(
        (code, &again["changes"]),
        (Some(0), &serde_json::json!([])),
        "{again:#}"
    );

    // Removed: the adapter has its own link-local address again, and the bridge is gone.
    m.ok(&["remove"]);
    assert!(eventually(5, || link_locals(&m.ns, "up0")
        .iter()
        .any(|a| a["local"] == address.to_string())));
    assert!(bridges(&m.ns).is_empty(), "{:?}", bridges(&m.ns));
}

/// `net.ipv6.conf.<dev>.<key>` in namespace `ns`, as the kernel has it (empty when it cannot
/// be read: `stable_secret` unset).
fn ipv6_conf(ns: &str, dev: &str, key: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-n"])
        .arg(format!("net.ipv6.conf.{dev}.{key}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The link-local address the kernel makes from `mac` in mode `eui64`.
fn eui64_of(mac: [u8; 6]) -> Ipv6Addr {
    let m = mac;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 2, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// B24 F3: an adapter whose addresses are made from a secret (`addrgenmode stable_secret`, as
/// RFC 7217 and NetworkManager's default ask; or `random`) hands that on: the bridge makes its
/// link-local address in the same mode, with the adapter's secret, never the EUI-64 one that
/// gives the MAC away. Between two links with no permanent hardware address (the adapter is a
/// veth, the bridge has none) the kernel's hash of the same secret is the very same address.
/// `remove` leaves the adapter's mode, secret and address as they were.
#[test]
fn a_stable_privacy_adapter_hands_its_mode_and_secret_to_the_bridge() {
    let Some(m) = machine_prefixed("f25", "sp6") else {
        return;
    };
    let _net = adapter_lan(&m, false);
    let secret = "2001:db8:1:2:3:4:5:6";
    sh(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv6.conf.up0.stable_secret={secret} && \
         ip -n {ns} link set up0 addrgenmode stable_secret && \
         ip -n {ns} link set up0 down && ip -n {ns} link set up0 up",
        ns = m.ns
    ));
    let adapter_ll = link_locals(&m.ns, "up0");
    assert_eq!(adapter_ll.len(), 1, "{adapter_ll:?}");
    assert_eq!(adapter_ll[0]["stable-privacy"], true, "{adapter_ll:?}");
    let address = adapter_ll[0]["local"].as_str().unwrap().to_string();
    let mac = mac_of(&m.ns, "up0");
    let kernels_secret = ipv6_conf(&m.ns, "up0", "stable_secret");
    assert!(!kernels_secret.is_empty());
    let cfg = m.write_config("c.json", &site_config("up0"));
    m.ok(&["deploy", "-c", &cfg]);

    let link = json_of(&format!("ip -n {} -j -d link show dev {BRIDGE}", m.ns));
    assert_eq!(link[0]["inet6_addr_gen_mode"], "stable_secret", "{link}");
    assert_eq!(ipv6_conf(&m.ns, BRIDGE, "addr_gen_mode"), "2");
    assert_eq!(ipv6_conf(&m.ns, BRIDGE, "stable_secret"), kernels_secret);
    let made = || {
        link_locals(&m.ns, BRIDGE)
            .into_iter()
            .filter(|a| !a["local"].is_null())
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(5, || made().len() == 1 && made()[0]["tentative"].is_null()),
        "{:?}",
        made()
    );
    let on_bridge = made();
    assert_eq!(on_bridge[0]["stable-privacy"], true, "{on_bridge:?}");
    assert_ne!(
        on_bridge[0]["local"],
        eui64_of(mac).to_string(),
        "the MAC's address: {on_bridge:?}"
    );
    assert_eq!(on_bridge[0]["local"], address, "{on_bridge:?}");
    // A redeploy changes nothing, status sees nothing amiss.
    let (code, again) = m.json(&["deploy", "-c", &cfg]);
    assert_eq!(
        (code, &again["changes"]),
        (Some(0), &serde_json::json!([])),
        "{again:#}"
    );
    assert!(m.drift().is_empty(), "{:?}", m.drift());

    m.ok(&["remove"]);
    let adapter = json_of(&format!("ip -n {} -j -d link show dev up0", m.ns));
    assert_eq!(
        adapter[0]["inet6_addr_gen_mode"], "stable_secret",
        "{adapter}"
    );
    assert_eq!(ipv6_conf(&m.ns, "up0", "stable_secret"), kernels_secret);
    assert!(eventually(5, || link_locals(&m.ns, "up0")
        .iter()
        .any(|a| a["local"] == address)));
    assert!(bridges(&m.ns).is_empty(), "{:?}", bridges(&m.ns));

    // Random: the bridge draws its own secret (its address is neither the adapter's nor the
    // MAC's).
    sh(&format!(
        "ip -n {ns} link set up0 addrgenmode random && \
         ip -n {ns} link set up0 down && ip -n {ns} link set up0 up",
        ns = m.ns
    ));
    m.ok(&["deploy", "-c", &cfg]);
    let link = json_of(&format!("ip -n {} -j -d link show dev {BRIDGE}", m.ns));
    assert_eq!(link[0]["inet6_addr_gen_mode"], "random", "{link}");
    assert!(eventually(5, || made().len() == 1), "{:?}", made());
    let on_bridge = made();
    assert_eq!(on_bridge[0]["stable-privacy"], true, "{on_bridge:?}");
    assert_ne!(
        on_bridge[0]["local"],
        eui64_of(mac).to_string(),
        "{on_bridge:?}"
    );
    m.ok(&["remove"]);
    let adapter = json_of(&format!("ip -n {} -j -d link show dev up0", m.ns));
    assert_eq!(adapter[0]["inet6_addr_gen_mode"], "random", "{adapter}");
}

/// Only the namespace's default secret (`net.ipv6.conf.default.stable_secret`, set after the
/// adapter was made, which puts every link in stable-privacy mode): the adapter has none of its
/// own to hand on, and the bridge, made afterwards, takes the default and its mode by itself.
#[test]
fn with_only_the_default_secret_the_bridge_is_stable_privacy_too() {
    let Some(m) = machine_prefixed("f25", "sp6d") else {
        return;
    };
    let _net = adapter_lan(&m, false);
    sh(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv6.conf.default.stable_secret=2001:db8::5ec && \
         ip -n {ns} link set up0 down && ip -n {ns} link set up0 up",
        ns = m.ns
    ));
    assert_eq!(ipv6_conf(&m.ns, "up0", "addr_gen_mode"), "2");
    assert_eq!(ipv6_conf(&m.ns, "up0", "stable_secret"), "");
    let mac = mac_of(&m.ns, "up0");
    let cfg = m.write_config("c.json", &site_config("up0"));
    m.ok(&["deploy", "-c", &cfg]);
    let link = json_of(&format!("ip -n {} -j -d link show dev {BRIDGE}", m.ns));
    assert_eq!(link[0]["inet6_addr_gen_mode"], "stable_secret", "{link}");
    let made = || {
        link_locals(&m.ns, BRIDGE)
            .into_iter()
            .filter(|a| !a["local"].is_null())
            .collect::<Vec<_>>()
    };
    assert!(eventually(5, || made().len() == 1), "{:?}", made());
    assert_eq!(made()[0]["stable-privacy"], true, "{:?}", made());
    assert_ne!(made()[0]["local"], eui64_of(mac).to_string());
    m.ok(&["remove"]);
    assert_eq!(ipv6_conf(&m.ns, "up0", "stable_secret"), "");
}

/// `net.ipv6.conf.<dev>.disable_ipv6` in namespace `ns`, as the kernel has it.
fn ipv6_disabled(ns: &str, dev: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-n"])
        .arg(format!("net.ipv6.conf.{dev}.disable_ipv6"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An adapter with IPv6 off (B24 F2) hands that on to the bridge: off before the bridge comes
/// up, so it has no IPv6 address and sends nothing over IPv6 on the LAN; turned on by hand,
/// `status` reports it and a redeploy turns it off again; `remove` leaves the adapter with
/// IPv6 off, as it was.
#[test]
fn an_adapter_with_ipv6_off_hands_that_on_to_the_bridge() {
    let Some(m) = machine_prefixed("f24", "v6off") else {
        return;
    };
    let net = adapter_lan(&m, true);
    let peer = net.peer.as_ref().unwrap().name();
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv6.conf.up0.disable_ipv6=1",
        m.ns
    ));
    let mac = mac_of(&m.ns, "up0");
    let cfg = m.write_config("c.json", &site_config("up0"));

    let ear = Bystander::listen(peer, "eth0");
    m.ok(&["deploy", "-c", &cfg]);
    assert_eq!(ipv6_disabled(&m.ns, BRIDGE), "1");
    let addrs = json_of(&format!("ip -n {} -j -6 addr show dev {BRIDGE}", m.ns));
    assert_eq!(addrs, serde_json::json!([]), "{addrs}");
    // A link coming up with IPv6 sends its router solicitation within a few seconds (and its
    // neighbour solicitation within one); a redeploy and status in between.
    let (code, again) = m.json(&["deploy", "-c", &cfg]);
    assert_eq!(
        (code, &again["changes"]),
        (Some(0), &serde_json::json!([])),
        "{again:#}"
    );
    assert!(m.drift().is_empty(), "{:?}", m.drift());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let frames = ear.frames();
    let sent: Vec<_> = frames
        .iter()
        .filter(|f| f.src == mac && f.ethertype == 0x86dd)
        .collect();
    assert!(sent.is_empty(), "IPv6 from the bridge: {sent:?}");

    // Turned on by hand: status says so, and deploy turns it off again.
    sh(&format!(
        "ip netns exec {} sysctl -qw net.ipv6.conf.{BRIDGE}.disable_ipv6=0",
        m.ns
    ));
    assert!(
        m.drift().iter().any(|d| d.contains("IPv6 is on on")),
        "{:?}",
        m.drift()
    );
    let (code, repaired) = m.json(&["deploy", "-c", &cfg]);
    assert_eq!(code, Some(0), "{repaired:#}");
    assert!(
        repaired["changes"].to_string().contains("turned IPv6 off"),
        "{repaired:#}"
    );
    assert_eq!(ipv6_disabled(&m.ns, BRIDGE), "1");
    assert!(m.drift().is_empty(), "{:?}", m.drift());

    m.ok(&["remove"]);
    assert_eq!(ipv6_disabled(&m.ns, "up0"), "1");
    assert!(bridges(&m.ns).is_empty(), "{:?}", bridges(&m.ns));
}
