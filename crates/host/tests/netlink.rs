//! The netlink handle against the real kernel, inside throwaway namespaces only. What the
//! kernel did is read back with `ip -j`, not (only) with our own dumps.

mod common;

use std::os::fd::AsFd;

use common::{ipv4_of, root_or_skip, TestNs};
use edgenet_core::mac::MacAddr;
use edgenet_host::netlink::{BridgeSpec, Netlink, RouteSpec, VethSpec};
use edgenet_host::netns::NetNs;

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

#[test]
fn bridge_is_created_with_mtu_mac_group_and_alias() {
    if !root_or_skip("bridge_is_created_with_mtu_mac_group_and_alias") {
        return;
    }
    let ns = TestNs::new("bridge");
    let ours = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_bridge(&BridgeSpec {
            name: "enbr0",
            mtu: Some(9000),
            mac: Some(mac("02:00:5e:10:00:01")),
            group: Some(4242),
            multicast_snooping: None,
        })
        .unwrap();
        nl.set_alias("enbr0", "edgenet:test").unwrap();
        nl.set_up("enbr0", true).unwrap();
        // A port with a smaller MTU must not pull the configured bridge MTU down.
        let mut veth = VethSpec::new("enport0", "enport1");
        veth.mtu = Some(1500);
        nl.create_veth(&veth).unwrap();
        nl.set_master("enport0", Some("enbr0")).unwrap();
        let again = nl
            .create_bridge(&BridgeSpec::new("enbr0"))
            .expect_err("second create must fail");
        (
            nl.link("enbr0").unwrap().unwrap(),
            nl.link("enport0").unwrap().unwrap(),
            again,
        )
    });

    let br = ns.link("enbr0").expect("bridge exists");
    assert_eq!(br["mtu"], 9000);
    assert_eq!(br["address"], "02:00:5e:10:00:01");
    assert_eq!(br["group"], "4242");
    assert_eq!(br["ifalias"], "edgenet:test");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert!(br["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let port = ns.link("enport0").unwrap();
    assert_eq!(port["master"], "enbr0");

    let (br_dump, port_dump, again) = ours;
    assert_eq!(br_dump.mtu, 9000);
    assert_eq!(br_dump.mac, Some(mac("02:00:5e:10:00:01")));
    assert_eq!(br_dump.group, 4242);
    assert_eq!(br_dump.alias.as_deref(), Some("edgenet:test"));
    assert_eq!(br_dump.kind.as_deref(), Some("bridge"));
    assert!(br_dump.up);
    assert_eq!(port_dump.master.as_deref(), Some("enbr0"));
    assert_eq!(port_dump.kind.as_deref(), Some("veth"));

    assert!(again.is_exists(), "{again}");
    assert!(
        again
            .to_string()
            .starts_with("create bridge enbr0: File exists"),
        "{again}"
    );
}

#[test]
fn link_settings_change_what_the_kernel_reports() {
    if !root_or_skip("link_settings_change_what_the_kernel_reports") {
        return;
    }
    let ns = TestNs::new("linkset");
    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_bridge(&BridgeSpec::new("enbr1")).unwrap();
        nl.create_veth(&VethSpec::new("enva", "envb")).unwrap();
        nl.set_mtu("enva", 1400).unwrap();
        nl.set_mac("enva", mac("02:00:5e:10:00:0a")).unwrap();
        nl.set_group("enva", 99).unwrap();
        nl.set_master("enva", Some("enbr1")).unwrap();
        nl.set_up("enva", true).unwrap();
    });
    let a = ns.link("enva").unwrap();
    assert_eq!(a["mtu"], 1400);
    assert_eq!(a["address"], "02:00:5e:10:00:0a");
    assert_eq!(a["group"], "99");
    assert_eq!(a["master"], "enbr1");
    assert!(a["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.set_master("enva", None).unwrap();
        nl.set_up("enva", false).unwrap();
        nl.set_alias("enva", "edgenet:x").unwrap();
        nl.set_alias("enva", "").unwrap();
    });
    let a = ns.link("enva").unwrap();
    assert!(a.get("master").is_none(), "{a}");
    assert!(!a["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert!(a.get("ifalias").is_none(), "{a}");
}

#[test]
fn errors_name_operation_and_object_and_expose_errno() {
    if !root_or_skip("errors_name_operation_and_object_and_expose_errno") {
        return;
    }
    let ns = TestNs::new("errors");
    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let e = nl.set_mtu("ennothere", 1400).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert!(e.to_string().contains("set mtu 1400 on ennothere"), "{e}");

        let e = nl
            .add_address("ennothere", "198.18.9.1/24".parse().unwrap())
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("ennothere"), "{e}");

        nl.create_bridge(&BridgeSpec::new("enbr2")).unwrap();
        let e = nl.set_mtu("enbr2", 10).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");

        let e = nl
            .create_bridge(&BridgeSpec::new("a-name-longer-than-15"))
            .unwrap_err();
        assert!(e.to_string().contains("a-name-longer-than-15"), "{e}");

        assert_eq!(nl.link("ennothere").unwrap(), None);
    });
}

#[test]
fn ipv4_addresses_are_added_with_broadcast_and_deleted_idempotently() {
    if !root_or_skip("ipv4_addresses_are_added_with_broadcast_and_deleted_idempotently") {
        return;
    }
    let ns = TestNs::new("addr");
    let net = "198.18.1.1/24".parse().unwrap();
    let (dump, again) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_bridge(&BridgeSpec::new("enbr3")).unwrap();
        nl.add_address("enbr3", net).unwrap();
        let again = nl.add_address("enbr3", net).unwrap_err();
        (nl.addresses().unwrap(), again)
    });
    assert_eq!(
        ipv4_of(&ns, "enbr3"),
        vec![(
            "198.18.1.1".to_string(),
            24,
            Some("198.18.1.255".to_string())
        )]
    );
    assert!(again.is_exists(), "{again}");
    let ours: Vec<_> = dump.iter().filter(|a| a.link == "enbr3").collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].address, net);

    let (first, second, dump) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let first = nl.del_address("enbr3", net).unwrap();
        let second = nl.del_address("enbr3", net).unwrap();
        (first, second, nl.addresses().unwrap())
    });
    assert!(first);
    assert!(!second);
    assert!(ipv4_of(&ns, "enbr3").is_empty());
    assert!(dump.iter().all(|a| a.link != "enbr3"));
}

#[test]
fn veth_peer_is_created_directly_in_another_namespace() {
    if !root_or_skip("veth_peer_is_created_directly_in_another_namespace") {
        return;
    }
    let host = TestNs::new("vethhost");
    let node = TestNs::new("vethnode");
    let node_ns = NetNs::open(&node.name).unwrap();
    host.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_veth(&VethSpec {
            name: "enve0",
            peer_name: "eth0",
            mtu: Some(1400),
            mac: Some(mac("02:00:5e:20:00:01")),
            peer_mac: Some(mac("02:00:5e:20:00:02")),
            peer_netns: Some(node_ns.as_fd()),
            group: Some(7),
        })
        .unwrap();
        nl.set_up("enve0", true).unwrap();
    });
    // Configure the node end through a handle opened in the node, from this thread.
    let mut node_nl = Netlink::open_in(&node_ns).unwrap();
    node_nl.set_up("eth0", true).unwrap();
    node_nl
        .add_address("eth0", "198.18.4.2/24".parse().unwrap())
        .unwrap();

    let h = host.link("enve0").unwrap();
    assert_eq!(h["mtu"], 1400);
    assert_eq!(h["address"], "02:00:5e:20:00:01");
    assert_eq!(h["group"], "7");
    assert!(
        host.link("eth0").is_none(),
        "peer must not be in the host namespace"
    );

    let n = node.link("eth0").expect("peer in node namespace");
    assert_eq!(n["mtu"], 1400);
    // One queue per end, asked for at creation (no cut after registering).
    for end in [&h, &n] {
        assert_eq!(end["num_tx_queues"], 1, "{end}");
        assert_eq!(end["num_rx_queues"], 1, "{end}");
    }
    assert_eq!(n["address"], "02:00:5e:20:00:02");
    assert_eq!(n["linkinfo"]["info_kind"], "veth");
    assert_eq!(ipv4_of(&node, "eth0")[0].0, "198.18.4.2");
    assert_eq!(
        node_nl.link("eth0").unwrap().unwrap().mac,
        Some(mac("02:00:5e:20:00:02"))
    );
}

#[test]
fn routes_are_added_replaced_and_deleted_in_the_main_table() {
    if !root_or_skip("routes_are_added_replaced_and_deleted_in_the_main_table") {
        return;
    }
    let ns = TestNs::new("route");
    // A veth pair gives carrier, so the gateway is on a live link.
    ns.ip(&[
        "link", "add", "enr0", "type", "veth", "peer", "name", "enr1",
    ]);
    ns.ip(&["link", "set", "enr0", "up"]);
    ns.ip(&["link", "set", "enr1", "up"]);
    ns.ip(&["addr", "add", "198.18.2.1/24", "dev", "enr0"]);

    let specific = RouteSpec {
        destination: "198.18.50.0/24".parse().unwrap(),
        gateway: Some("198.18.2.254".parse().unwrap()),
        link: Some("enr0"),
    };
    let default = RouteSpec {
        destination: "0.0.0.0/0".parse().unwrap(),
        gateway: Some("198.18.2.254".parse().unwrap()),
        link: None,
    };
    let onlink = RouteSpec {
        destination: "198.18.51.0/24".parse().unwrap(),
        gateway: None,
        link: Some("enr0"),
    };
    let (dump, again) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.add_route(&specific).unwrap();
        nl.add_route(&default).unwrap();
        nl.add_route(&onlink).unwrap();
        let again = nl.add_route(&specific).unwrap_err();
        (nl.routes().unwrap(), again)
    });
    assert!(again.is_exists(), "{again}");
    assert!(again
        .to_string()
        .contains("198.18.50.0/24 via 198.18.2.254 dev enr0"));

    let routes = ns.ip_json(&["-4", "route", "show", "table", "main"]);
    let find = |dst: &str| {
        routes
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dst"] == dst)
            .cloned()
            .unwrap_or_else(|| panic!("no route {dst} in {routes}"))
    };
    let r = find("198.18.50.0/24");
    assert_eq!(r["gateway"], "198.18.2.254");
    assert_eq!(r["dev"], "enr0");
    let r = find("default");
    assert_eq!(r["gateway"], "198.18.2.254");
    let r = find("198.18.51.0/24");
    assert!(r.get("gateway").is_none());
    assert_eq!(r["scope"], "link");

    let d = dump
        .iter()
        .find(|r| r.destination == specific.destination)
        .expect("our dump has the route");
    assert_eq!(d.gateway, specific.gateway);
    assert_eq!(d.link.as_deref(), Some("enr0"));
    assert!(dump
        .iter()
        .any(|r| r.destination.prefix_len() == 0 && r.gateway == default.gateway));
    // The connected route is in the main table; local/broadcast ones (local table) are not.
    assert!(dump
        .iter()
        .any(|r| r.destination.to_string() == "198.18.2.0/24" && r.gateway.is_none()));
    assert!(dump
        .iter()
        .all(|r| r.destination.to_string() != "198.18.2.1/32"));

    let replaced = RouteSpec {
        gateway: Some("198.18.2.253".parse().unwrap()),
        ..specific
    };
    let (first, second) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.replace_route(&replaced).unwrap();
        let first = nl.del_route(&onlink).unwrap();
        let second = nl.del_route(&onlink).unwrap();
        (first, second)
    });
    assert!(first);
    assert!(!second);
    let routes = ns.ip_json(&["-4", "route", "show", "table", "main"]);
    let all = routes.as_array().unwrap();
    let r = all.iter().find(|r| r["dst"] == "198.18.50.0/24").unwrap();
    assert_eq!(r["gateway"], "198.18.2.253");
    assert!(all.iter().all(|r| r["dst"] != "198.18.51.0/24"));
}

#[test]
fn links_are_deleted_by_name_and_by_group() {
    if !root_or_skip("links_are_deleted_by_name_and_by_group") {
        return;
    }
    let ns = TestNs::new("group");
    let peer_ns = TestNs::new("grouppeer");
    let peer = NetNs::open(&peer_ns.name).unwrap();
    let (by_name, missing, group, group_again, zero) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        for name in ["eng0", "eng1", "eng2"] {
            let mut spec = BridgeSpec::new(name);
            spec.group = Some(77);
            nl.create_bridge(&spec).unwrap();
        }
        nl.create_bridge(&BridgeSpec::new("enkeep")).unwrap();
        nl.create_bridge(&BridgeSpec::new("enone")).unwrap();
        let mut veth = VethSpec::new("engv", "engvpeer");
        veth.group = Some(77);
        veth.peer_netns = Some(peer.as_fd());
        nl.create_veth(&veth).unwrap();

        let by_name = nl.delete_link("enone").unwrap();
        let missing = nl.delete_link("enone").unwrap();
        let group = nl.delete_group(77).unwrap();
        let group_again = nl.delete_group(77).unwrap();
        let zero = nl.delete_group(0).unwrap_err();
        (by_name, missing, group, group_again, zero)
    });
    assert!(by_name);
    assert!(!missing);
    assert!(group);
    assert!(!group_again);
    assert!(zero.to_string().contains("group 0"), "{zero}");
    assert_eq!(
        ns.link_names(),
        vec!["enkeep".to_string(), "lo".to_string()]
    );
    // Deleting the group's veth end took its peer in the other namespace with it.
    assert_eq!(peer_ns.link_names(), vec!["lo".to_string()]);
}

#[test]
fn addresses_of_one_link_are_its_own_in_kernel_order_and_none_for_a_missing_link() {
    if !root_or_skip(
        "addresses_of_one_link_are_its_own_in_kernel_order_and_none_for_a_missing_link",
    ) {
        return;
    }
    let ns = TestNs::new("addrof");
    let (mine, other, missing) = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_bridge(&BridgeSpec::new("enbr8")).unwrap();
        nl.create_bridge(&BridgeSpec::new("enbr9")).unwrap();
        // A primary, its secondary, and an address on another link that must not show up.
        nl.add_address("enbr8", "198.18.8.1/24".parse().unwrap())
            .unwrap();
        nl.add_address("enbr8", "198.18.8.2/24".parse().unwrap())
            .unwrap();
        nl.add_address_with("enbr8", "198.18.80.1/30".parse().unwrap(), None)
            .unwrap();
        nl.add_address("enbr9", "198.18.9.1/24".parse().unwrap())
            .unwrap();
        (
            nl.addresses_of("enbr8").unwrap(),
            nl.addresses_of("enbr9").unwrap(),
            nl.addresses_of("ennothere").unwrap(),
        )
    });
    let kernel = ipv4_of(&ns, "enbr8");
    let ours: Vec<(String, u64, Option<String>)> = mine
        .iter()
        .map(|a| {
            assert_eq!(a.link, "enbr8");
            (
                a.address.addr().to_string(),
                u64::from(a.address.prefix_len()),
                a.broadcast.map(|b| b.to_string()),
            )
        })
        .collect();
    assert_eq!(ours, kernel);
    assert_eq!(kernel.len(), 3, "{kernel:?}");
    assert_eq!(
        other
            .iter()
            .map(|a| a.address.to_string())
            .collect::<Vec<_>>(),
        ["198.18.9.1/24"]
    );
    assert!(missing.is_empty());
}

#[test]
fn a_persistent_tap_is_made_with_the_kernels_own_ioctl_numbers() {
    if !root_or_skip("a_persistent_tap_is_made_with_the_kernels_own_ioctl_numbers") {
        return;
    }
    let ns = TestNs::new("tap");
    let too_long = ns.run(|| {
        edgenet_host::tap::create("entap0").unwrap();
        edgenet_host::tap::create("a-name-longer-than-15").unwrap_err()
    });
    // It outlived the file descriptor (persistent), and it is a tap without packet info.
    let tap = ns
        .ip_json(&["-d", "link", "show", "dev", "entap0"])
        .as_array()
        .unwrap()[0]
        .clone();
    assert_eq!(tap["linkinfo"]["info_kind"], "tun", "{tap}");
    assert_eq!(tap["linkinfo"]["info_data"]["type"], "tap", "{tap}");
    assert_eq!(tap["linkinfo"]["info_data"]["pi"], false, "{tap}");
    assert_eq!(tap["linkinfo"]["info_data"]["persist"], true, "{tap}");
    assert_eq!(too_long.errno(), Some(libc::EINVAL), "{too_long}");
}

#[test]
fn link_index_and_master_names_are_looked_up_in_the_sockets_namespace() {
    if !root_or_skip("link_index_and_master_names_are_looked_up_in_the_sockets_namespace") {
        return;
    }
    let here = TestNs::new("idxa");
    let there = TestNs::new("idxb");
    there.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_bridge(&BridgeSpec::new("enidx0")).unwrap();
        nl.create_veth(&VethSpec::new("enidxp0", "enidxp1"))
            .unwrap();
        nl.set_master("enidxp0", Some("enidx0")).unwrap();
    });
    let kernel_says = there.link("enidx0").expect("bridge made")["ifindex"]
        .as_u64()
        .unwrap();
    // From a thread in `here` (which has no enidx0): a socket opened in `there` finds it, one
    // opened in `here` does not.
    let (found, missing, port) = here.run(|| {
        let other = NetNs::open(&there.name).unwrap();
        let mut theirs = Netlink::open_in(&other).unwrap();
        let mut ours = Netlink::open().unwrap();
        (
            theirs.link_index("enidx0").unwrap(),
            ours.link_index("enidx0").expect_err("no such link here"),
            theirs.link("enidxp0").unwrap().expect("port there"),
        )
    });
    assert_eq!(u64::from(found), kernel_says);
    // The port's master, named from its index in the same namespace.
    assert_eq!(there.link("enidxp0").unwrap()["master"], "enidx0");
    assert_eq!(port.master.as_deref(), Some("enidx0"));
    assert_eq!(missing.errno(), Some(libc::ENODEV), "{missing}");
    assert!(
        missing.to_string().starts_with("find link enidx0"),
        "{missing}"
    );
    // Names the kernel could never have are refused the same way, without a request.
    let long = here.run(|| Netlink::open().unwrap().link_index("a-name-longer-than-15"));
    assert_eq!(long.unwrap_err().errno(), Some(libc::ENODEV));
}

/// A handle opened by moving the calling thread works on that namespace, from that thread and
/// from any other, and an alias and `up` sent together both land.
#[test]
fn a_handle_opened_by_moving_into_a_namespace_works_there_from_any_thread() {
    if !root_or_skip("a_handle_opened_by_moving_into_a_namespace_works_there_from_any_thread") {
        return;
    }
    let ns = TestNs::new("mvin");
    let name = ns.name.clone();
    // A thread of its own moves in (as the deploy lane does) and hands the socket back.
    let mut nl = std::thread::spawn(move || {
        Netlink::open_moving_into(&NetNs::open(&name).unwrap()).unwrap()
    })
    .join()
    .unwrap();
    nl.create_veth(&VethSpec::new("enmv0", "enmv1")).unwrap();
    nl.set_up_with_alias("enmv0", "edgenet:moved").unwrap();
    let link = ns.link("enmv0").expect("made in the namespace, not here");
    assert_eq!(link["ifalias"], "edgenet:moved");
    assert!(
        link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{link}"
    );
    assert!(
        Netlink::open().unwrap().link("enmv0").unwrap().is_none(),
        "nothing in the test's own namespace"
    );
}

/// B17a defect 3: a host whose links change many times a second (containers coming and
/// going) made link dumps fail ("the table kept changing") after five interrupted tries. A
/// dump is retried until it is whole; every one of many dumps beside a churning neighbour
/// succeeds and lists the links that stay.
#[test]
fn link_dumps_succeed_while_links_churn() {
    if !root_or_skip("link_dumps_succeed_while_links_churn") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let ns = TestNs::new("churn");
    // Enough links that a dump spans several datagrams.
    let batch: String = (0..300)
        .map(|i| format!("link add st{i} type veth peer name sp{i}\n"))
        .collect();
    let mut child = std::process::Command::new("ip")
        .args(["-n", &ns.name, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), batch.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    /// The churning shell and its pipeline, killed by the process group the test made when
    /// the test ends, a failed one too (it would churn on for ever, re-parented to init).
    struct Churn(std::process::Child);
    impl Drop for Churn {
        fn drop(&mut self) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.0.wait();
        }
    }
    // One `ip` process fed without end: thousands of changes a second.
    let script = format!(
        "while :; do echo 'link add ch0 type veth peer name ch1'; echo 'link del ch0'; done | ip -n {} -force -batch - 2>/dev/null",
        ns.name
    );
    let churn = Churn(
        std::process::Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let counts = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        (0..200)
            .map(|_| {
                let links = nl.links().expect("a dump beside churning links");
                links.iter().filter(|l| l.name.starts_with("st")).count()
            })
            .collect::<Vec<_>>()
    });
    drop(churn);
    assert!(counts.iter().all(|c| *c == 300), "{counts:?}");
}

/// One ARP cache entry read back by address and link: its MAC when the kernel would use it
/// without asking (reachable, stale, delay, probe, permanent), none for an entry being
/// resolved or failed, a `noarp` one, another link's, an absent one or a missing link.
#[test]
fn a_neighbours_mac_is_read_only_from_an_entry_the_kernel_would_use() {
    if !root_or_skip("a_neighbours_mac_is_read_only_from_an_entry_the_kernel_would_use") {
        return;
    }
    let ns = TestNs::new("neighmac");
    for (link, address) in [("enbr6", "198.18.6.1/24"), ("enbr7", "198.18.6.2/24")] {
        ns.ip(&["link", "add", link, "type", "bridge"]);
        ns.ip(&["addr", "add", address, "dev", link]);
        ns.ip(&["link", "set", link, "up"]);
    }
    let entries = [
        ("198.18.6.10", "02:00:00:00:06:10", "permanent"),
        ("198.18.6.11", "02:00:00:00:06:11", "stale"),
        ("198.18.6.12", "02:00:00:00:06:12", "reachable"),
        ("198.18.6.13", "02:00:00:00:06:13", "delay"),
        ("198.18.6.14", "02:00:00:00:06:14", "probe"),
        ("198.18.6.15", "02:00:00:00:06:15", "noarp"),
        ("198.18.6.16", "02:00:00:00:06:16", "failed"),
    ];
    for (address, lladdr, state) in entries {
        ns.ip(&[
            "neigh", "replace", address, "lladdr", lladdr, "dev", "enbr6", "nud", state,
        ]);
    }
    ns.ip(&[
        "neigh",
        "replace",
        "198.18.6.17",
        "dev",
        "enbr6",
        "nud",
        "incomplete",
    ]);
    ns.ip(&[
        "neigh",
        "replace",
        "198.18.6.18",
        "lladdr",
        "02:00:00:00:06:18",
        "dev",
        "enbr7",
        "nud",
        "stale",
    ]);
    let states: Vec<String> = ns
        .ip_json(&["neigh", "show", "nud", "all", "dev", "enbr6"])
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{} {}", n["dst"], n["state"]))
        .collect();
    let got: Vec<(u8, Option<MacAddr>)> = ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let mut got: Vec<_> = (10..=19)
            .map(|i| {
                let address = std::net::Ipv4Addr::new(198, 18, 6, i);
                (i, nl.neighbour_mac("enbr6", address).unwrap())
            })
            .collect();
        got.push((
            0,
            nl.neighbour_mac("ennothere", "198.18.6.10".parse().unwrap())
                .unwrap(),
        ));
        got
    });
    let want: Vec<(u8, Option<MacAddr>)> = vec![
        (10, Some(mac("02:00:00:00:06:10"))),
        (11, Some(mac("02:00:00:00:06:11"))),
        (12, Some(mac("02:00:00:00:06:12"))),
        (13, Some(mac("02:00:00:00:06:13"))),
        (14, Some(mac("02:00:00:00:06:14"))),
        (15, None),
        (16, None),
        (17, None),
        // On the other link only.
        (18, None),
        (19, None),
        (0, None),
    ];
    assert_eq!(got, want, "the kernel's entries: {states:?}");
}

/// A link's IPv6 settings read from the link itself are the values `/proc/sys` shows for it,
/// 0 and 1 each (set through `/proc/sys` in a namespace of the test's own), and there are none
/// where `/proc/sys/net/ipv6/conf/<link>` is missing too: a link without IPv6 (MTU below
/// 1280) or no link at all.
#[test]
fn ipv6_settings_read_from_the_link_are_the_sysctl_values() {
    if !root_or_skip("ipv6_settings_read_from_the_link_are_the_sysctl_values") {
        return;
    }
    use edgenet_host::sysctl;
    let ns = TestNs::new("v6set");
    ns.ip(&[
        "link", "add", "env6a", "type", "veth", "peer", "name", "env6c",
    ]);
    ns.ip(&[
        "link", "add", "env6b", "mtu", "1200", "type", "veth", "peer", "name", "env6d",
    ]);
    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let key = |k: &str| format!("net/ipv6/conf/env6a/{k}");
        for (accept_ra, autoconf, disable_ipv6) in [("0", "1", "1"), ("1", "0", "0")] {
            sysctl::write(&key("accept_ra"), accept_ra).unwrap();
            sysctl::write(&key("autoconf"), autoconf).unwrap();
            sysctl::write(&key("disable_ipv6"), disable_ipv6).unwrap();
            let read = nl.ipv6_settings("env6a").unwrap().expect("env6a has IPv6");
            let sysctl_of = |k: &str| sysctl::read(&key(k)).unwrap().trim().to_string();
            assert_eq!(
                (
                    read.accept_ra.to_string(),
                    read.autoconf.to_string(),
                    read.disable_ipv6.to_string()
                ),
                (
                    sysctl_of("accept_ra"),
                    sysctl_of("autoconf"),
                    sysctl_of("disable_ipv6")
                )
            );
            assert_eq!(sysctl_of("disable_ipv6"), disable_ipv6);
        }
        assert!(sysctl::read("net/ipv6/conf/env6b/disable_ipv6").is_err());
        assert_eq!(nl.ipv6_settings("env6b").unwrap(), None);
        assert_eq!(nl.ipv6_settings("env6-none").unwrap(), None);
    });
}
