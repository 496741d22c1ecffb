//! Dynamic (DHCP) addresses in the record of the host's configuration on the bridge (B19 D1).
//!
//! The record is put back when the bridge lacks it (deleted by hand, set down). A static
//! address goes back as it was; a dynamic one is the DHCP client's: it goes back only while
//! its lease still runs, with what is left of it, never with the lifetime it had when
//! recorded. Expired, or recorded before the last reboot (a lease from then may be another
//! machine's by now, and the client asks again), it is not put back: it is said instead.
//!
//! Every store of the record stamps it with the boot and the wall-clock second its lifetimes
//! were read at (`lease_stamp` beside the record in the state), so the expiry is absolute.

use std::time::{SystemTime, UNIX_EPOCH};

use edgenet_host::link_config::{LinkConfig, SavedLinkConfig};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use serde_json::{json, Value};

const STAMP: &str = "lease_stamp";
/// `INFINITY_LIFE_TIME`: a static address.
const FOREVER: u32 = u32::MAX;

/// When a record's lifetimes were read: the kernel's boot id and seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub boot_id: String,
    pub at: u64,
}

impl Stamp {
    pub fn now() -> Option<Stamp> {
        Some(Stamp {
            boot_id: edgenet_host::sysctl::boot_id()?.to_string(),
            at: SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs(),
        })
    }
}

/// Adds the stamp of now to a record's JSON (called as it is stored).
pub fn stamp(restore: &mut Value) {
    if let (Some(s), Value::Object(map)) = (Stamp::now(), restore) {
        map.insert(STAMP.into(), json!({"boot_id": s.boot_id, "at": s.at}));
    }
}

fn stamp_of(restore: &Value) -> Option<Stamp> {
    let s = &restore[STAMP];
    Some(Stamp {
        boot_id: s["boot_id"].as_str()?.to_string(),
        at: s["at"].as_u64()?,
    })
}

/// The recorded configuration as it may be put back now, and the dynamic addresses left out,
/// each with why.
#[derive(Debug, Default)]
pub struct Current {
    pub config: SavedLinkConfig,
    pub lapsed: Vec<String>,
}

fn lifetimes(a: &mut AddressMessage) -> Option<&mut netlink_packet_route::address::CacheInfo> {
    a.attributes.iter_mut().find_map(|x| match x {
        AddressAttribute::CacheInfo(ci) => Some(ci),
        _ => None,
    })
}

/// [`Current`] of `saved`, recorded at `stamp` (`None`: a record of an earlier edgenet, when
/// is unknown), as of `now`.
pub fn current(saved: &SavedLinkConfig, stamp: Option<&Stamp>, now: Option<&Stamp>) -> Current {
    let mut config = saved.load();
    let mut lapsed = Vec::new();
    let mut any_dynamic = false;
    let mut lapsed_nets: Vec<ipnet::Ipv4Net> = Vec::new();
    config.addresses.retain_mut(|a| {
        let name = LinkConfig {
            addresses: vec![a.clone()],
            ..LinkConfig::default()
        }
        .address_strings()
        .join("");
        let Some(ci) = lifetimes(a).filter(|ci| ci.ifa_valid != FOREVER) else {
            return true;
        };
        any_dynamic = true;
        let why = match (stamp, now) {
            (Some(s), Some(n)) if s.boot_id != n.boot_id => {
                "its DHCP lease was recorded before the last reboot".to_string()
            }
            (Some(s), Some(n)) => {
                let expiry = s.at + u64::from(ci.ifa_valid);
                if expiry > n.at {
                    let left = |lft: u32| {
                        if lft == FOREVER {
                            lft
                        } else {
                            (s.at + u64::from(lft)).saturating_sub(n.at) as u32
                        }
                    };
                    ci.ifa_valid = left(ci.ifa_valid);
                    ci.ifa_preferred = left(ci.ifa_preferred);
                    return true;
                }
                format!("its DHCP lease expired {} s ago", n.at - expiry)
            }
            _ => {
                "it is a DHCP lease recorded with no time to tell whether it still runs".to_string()
            }
        };
        if let Ok(net) = name.parse::<ipnet::Ipv4Net>() {
            lapsed_nets.push(net.trunc());
        }
        lapsed.push(format!("{name} ({why})"));
        false
    });
    // Routes through a lapsed lease's gateway, or a DHCP client's own (`proto dhcp`), went
    // with it: the client puts them back with the next lease.
    if !lapsed_nets.is_empty() {
        config.routes.retain(|r| {
            let gateway = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                _ => None,
            });
            let through_lapsed =
                gateway.is_some_and(|g| lapsed_nets.iter().any(|n| n.contains(&g)));
            !(through_lapsed || r.header.protocol == RouteProtocol::Dhcp)
        });
    }
    if !any_dynamic {
        return Current {
            config: saved.clone(),
            lapsed,
        };
    }
    Current {
        config: SavedLinkConfig::save(&config, &saved.link, saved.index),
        lapsed,
    }
}

/// [`current`] of the record in `restore` (an `Adapter` object's JSON) as of now.
pub fn current_in(restore: &Value, saved: &SavedLinkConfig) -> Current {
    current(saved, stamp_of(restore).as_ref(), Stamp::now().as_ref())
}

/// The dynamic addresses of the record of `adapter` in `state` that are not put back now.
pub fn lapsed_in_state(state: &crate::state::DeploymentState, adapter: &str) -> Vec<String> {
    let Some(restore) = state
        .object(crate::state::ObjectKind::Adapter, adapter, None)
        .and_then(|o| o.restore.as_ref())
    else {
        return Vec::new();
    };
    match serde_json::from_value::<SavedLinkConfig>(restore["moved"].clone()) {
        Ok(saved) => current_in(restore, &saved).lapsed,
        Err(_) => Vec::new(),
    }
}

/// The line `status` and `deploy` give for lapsed leases of `adapter`'s record on `bridge`.
pub fn lapsed_line(lapsed: &[String], adapter: &str, bridge: &str) -> String {
    format!(
        "the host's dynamic address recorded when {adapter}'s configuration moved to {bridge}, {}, is not put back: a lease is the DHCP client's to renew; is the DHCP client running on {bridge}?",
        lapsed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::CacheInfo;
    use netlink_packet_route::AddressFamily;

    fn saved(valid: u32, preferred: u32) -> SavedLinkConfig {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = 24;
        a.header.index = 7;
        let ip = std::net::IpAddr::V4("198.18.0.11".parse().unwrap());
        a.attributes.push(AddressAttribute::Address(ip));
        a.attributes.push(AddressAttribute::Local(ip));
        let mut ci = CacheInfo::default();
        ci.ifa_preferred = preferred;
        ci.ifa_valid = valid;
        a.attributes.push(AddressAttribute::CacheInfo(ci));
        SavedLinkConfig::save(
            &LinkConfig {
                addresses: vec![a],
                ..LinkConfig::default()
            },
            "br0",
            7,
        )
    }

    fn at(boot: &str, at: u64) -> Stamp {
        Stamp {
            boot_id: boot.into(),
            at,
        }
    }

    fn valid_of(c: &Current) -> Vec<u32> {
        c.config
            .load()
            .addresses
            .iter_mut()
            .filter_map(|a| lifetimes(a).map(|ci| ci.ifa_valid))
            .collect()
    }

    #[test]
    fn a_running_lease_goes_back_with_what_is_left_of_it() {
        let c = current(&saved(40, 30), Some(&at("b", 1000)), Some(&at("b", 1010)));
        assert!(c.lapsed.is_empty());
        assert_eq!(valid_of(&c), vec![30]);
    }

    #[test]
    fn an_expired_lease_or_one_from_before_a_reboot_or_of_unknown_time_is_not_put_back() {
        let c = current(&saved(40, 40), Some(&at("b", 1000)), Some(&at("b", 1042)));
        assert!(c.config.addresses.is_empty());
        assert_eq!(
            c.lapsed,
            vec!["198.18.0.11/24 (its DHCP lease expired 2 s ago)"]
        );
        // The default route through its gateway went with it (the client makes it again).
        let mut with_route = saved(40, 40).load();
        let mut r = netlink_packet_route::route::RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(
                "198.18.0.1".parse().unwrap(),
            )));
        with_route.routes.push(r);
        let with_route = SavedLinkConfig::save(&with_route, "br0", 7);
        let c = current(&with_route, Some(&at("b", 1000)), Some(&at("b", 1042)));
        assert!(c.config.routes.is_empty() && c.config.addresses.is_empty());
        let c = current(&with_route, Some(&at("b", 1000)), Some(&at("b", 1010)));
        assert_eq!(c.config.routes.len(), 1);
        let c = current(
            &saved(4000, 4000),
            Some(&at("a", 1000)),
            Some(&at("b", 1010)),
        );
        assert!(c.config.addresses.is_empty());
        assert!(
            c.lapsed[0].contains("before the last reboot"),
            "{:?}",
            c.lapsed
        );
        let c = current(&saved(4000, 4000), None, Some(&at("b", 1010)));
        assert!(c.config.addresses.is_empty());
    }

    #[test]
    fn a_static_address_always_goes_back_as_recorded() {
        let s = saved(FOREVER, FOREVER);
        let c = current(&s, None, Some(&at("b", 1010)));
        assert!(c.lapsed.is_empty());
        assert_eq!(c.config, s);
    }
}
