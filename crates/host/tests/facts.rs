//! Facts gathered in a fresh namespace set up with `ip`, compared with what was set up.

mod common;

use common::{root_or_skip, TestNs};
use edgenet_host::facts::{self, FactsPaths};

#[test]
fn gather_reports_the_links_addresses_routes_and_dns_that_were_set_up() {
    if !root_or_skip("gather_reports_the_links_addresses_routes_and_dns_that_were_set_up") {
        return;
    }
    let ns = TestNs::new("facts");
    ns.ip(&[
        "link",
        "add",
        "enf0",
        "mtu",
        "1400",
        "address",
        "02:00:5e:30:00:01",
        "type",
        "bridge",
    ]);
    ns.ip(&[
        "link", "add", "enfa", "mtu", "1400", "type", "veth", "peer", "name", "enfb", "mtu", "1400",
    ]);
    ns.ip(&["link", "set", "enfa", "master", "enf0"]);
    for l in ["enf0", "enfa", "enfb", "lo"] {
        ns.ip(&["link", "set", l, "up"]);
    }
    ns.ip(&["addr", "add", "198.18.3.1/24", "dev", "enf0"]);
    ns.ip(&["route", "add", "198.18.60.0/24", "via", "198.18.3.254"]);
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.18.3.254",
        "dev",
        "enf0",
    ]);

    let dir = tempfile::tempdir().unwrap();
    let paths = FactsPaths {
        resolv_conf: dir.path().join("resolv.conf"),
        systemd_resolv_conf: dir.path().join("upstream.conf"),
        sysfs_net: dir.path().join("sysfs"),
    };
    std::fs::write(&paths.resolv_conf, "nameserver 127.0.0.53\n").unwrap();
    std::fs::write(&paths.systemd_resolv_conf, "nameserver 198.51.100.53\n").unwrap();
    std::fs::create_dir_all(paths.sysfs_net.join("enfb/wireless")).unwrap();

    // A bridge gets its carrier from its up port asynchronously (the kernel's link watch):
    // wait for it as the kernel reports it, so the gather below sees a settled namespace.
    let settled = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !ns.ip_json(&["link", "show", "enf0"])[0]["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == "LOWER_UP"))
    {
        assert!(
            std::time::Instant::now() < settled,
            "enf0 never got carrier"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let facts = ns.run(|| facts::gather_with(&paths)).unwrap();

    assert!(!facts.hostname.is_empty());
    let mut names: Vec<&str> = facts.links.iter().map(|l| l.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["enf0", "enfa", "enfb", "lo"]);

    let br = facts.link("enf0").unwrap();
    assert_eq!(br.mtu, 1400);
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(br.mac.as_deref(), Some("02:00:5e:30:00:01"));
    assert!(br.up);
    assert!(br.lower_up, "bridge with an up port has carrier");
    assert_eq!(br.master, None);
    let port = facts.link("enfa").unwrap();
    assert_eq!(port.master.as_deref(), Some("enf0"));
    assert_eq!(port.kind.as_deref(), Some("veth"));
    // Only a device without a kind (a NIC) is looked up in sysfs: a veth is never a radio,
    // whatever the directory says (the mapping of a kindless one: facts.rs's unit tests).
    assert!(!facts.link("enfb").unwrap().wireless);
    assert!(!port.wireless);
    let lo = facts.link("lo").unwrap();
    assert_eq!(lo.mac, None);
    assert_eq!(lo.kind, None);

    let mut addrs: Vec<String> = facts
        .addresses
        .iter()
        .map(|a| format!("{} {}", a.link, a.address))
        .collect();
    addrs.sort();
    assert_eq!(addrs, vec!["enf0 198.18.3.1/24", "lo 127.0.0.1/8"]);

    let mut routes: Vec<String> = facts
        .routes
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.destination,
                r.link.as_deref().unwrap_or("-"),
                r.gateway.map(|g| g.to_string()).unwrap_or("-".into())
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        vec![
            "0.0.0.0/0 enf0 198.18.3.254",
            "198.18.3.0/24 enf0 -",
            "198.18.60.0/24 enf0 198.18.3.254",
        ]
    );

    assert_eq!(
        facts.dns.servers,
        vec!["198.51.100.53".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        facts.dns.loopback_skipped,
        vec!["127.0.0.53".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        facts.dns.source,
        Some(paths.systemd_resolv_conf.display().to_string())
    );
}
