//! The cloud-init NoCloud seed of a `vm` node (pure): `meta-data` (instance id and host
//! name), `network-config` version 2 (the NIC matched on its MAC and named `eth0`, with the
//! static address, default route, DNS servers and MTU) and `user-data` (`#cloud-config`
//! whose `write_files` carry the proxy environment, the hosts file, resolv.conf and the files
//! `edgenet render` makes for the node). Real cloud images apply it unchanged; cloudbase-init
//! reads the same volume on Windows.

use base64::Engine;
use edgenet_core::mac::MacAddr;
use edgenet_core::plan::{NodeKind, NodePlan, Plan};

use super::files;

/// One file the guest gets through `write_files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
    /// Appended to what the image has (e.g. `/etc/environment`).
    pub append: bool,
}

/// The three files of the seed volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub meta_data: String,
    pub network_config: String,
    pub user_data: String,
}

impl Seed {
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            ("meta-data", self.meta_data.as_str()),
            ("network-config", self.network_config.as_str()),
            ("user-data", self.user_data.as_str()),
        ]
    }
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The `PATH` line of the guest's `/etc/environment` (Debian's and Ubuntu's default), which
/// edgenet writes whole.
pub const GUEST_PATH: &str =
    "PATH=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin\"";

/// The files the node's guest gets: its proxy environment, hosts and resolv.conf (as the
/// `netns` runtime gives them to `node exec`), then `extra` (rendered files).
pub fn guest_files(plan: &Plan, node: &NodePlan, extra: Vec<SeedFile>) -> Vec<SeedFile> {
    let mut out = Vec::new();
    if node.kind == NodeKind::Linux {
        // Written whole, never appended: a changed or removed proxy replaces what an earlier
        // seed wrote. 0600 when a URL carries a password (pam_env reads it as root at login).
        let env = files::proxy_env(node);
        let mode = if edgenet_core::redact::has_credentials(&env) {
            0o600
        } else {
            0o644
        };
        out.push(SeedFile {
            path: "/etc/environment".into(),
            content: format!("{GUEST_PATH}\n{env}"),
            mode,
            append: false,
        });
        out.push(SeedFile {
            path: "/etc/hosts".into(),
            content: files::hosts(plan, node),
            mode: 0o644,
            append: false,
        });
        out.push(SeedFile {
            path: "/etc/resolv.conf".into(),
            content: files::resolv_conf(node),
            mode: 0o644,
            append: false,
        });
    }
    out.extend(extra);
    out
}

pub fn build(node: &NodePlan, mac: MacAddr, mtu: u32, files: &[SeedFile]) -> Seed {
    let mut net = String::from("version: 2\nethernets:\n  eth0:\n    match:\n");
    net.push_str(&format!("      macaddress: {}\n", q(&mac.to_string())));
    net.push_str("    set-name: eth0\n");
    net.push_str(&format!("    mtu: {mtu}\n"));
    net.push_str(&format!("    addresses:\n      - {}\n", node.address));
    net.push_str(&format!(
        "    routes:\n      - to: 0.0.0.0/0\n        via: {}\n",
        node.gateway
    ));
    if !node.dns_servers.is_empty() {
        net.push_str("    nameservers:\n      addresses:\n");
        for s in &node.dns_servers {
            net.push_str(&format!("        - {s}\n"));
        }
        if !node.dns_search.is_empty() {
            net.push_str("      search:\n");
            for d in &node.dns_search {
                net.push_str(&format!("        - {}\n", q(d)));
            }
        }
    }

    let mut user = String::from("#cloud-config\n");
    user.push_str(&format!("hostname: {}\n", q(&node.name)));
    // edgenet's hosts file and resolv.conf are written below: cloud-init must not rewrite them.
    user.push_str("manage_etc_hosts: false\n");
    if !files.is_empty() {
        user.push_str("write_files:\n");
        for f in files {
            user.push_str(&format!("  - path: {}\n", q(&f.path)));
            user.push_str("    encoding: b64\n");
            user.push_str(&format!(
                "    content: {}\n",
                base64::engine::general_purpose::STANDARD.encode(f.content.as_bytes())
            ));
            user.push_str(&format!("    permissions: '{:04o}'\n", f.mode));
            if f.append {
                user.push_str("    append: true\n");
            }
        }
    }

    // A new instance id whenever the seed changes: cloud-init applies a changed seed at the
    // next boot instead of keeping the first one.
    let instance = fnv1a(&[net.as_bytes(), user.as_bytes()]);
    let meta = format!(
        "instance-id: {}-{instance:016x}\nlocal-hostname: {}\n",
        node.name, node.name
    );
    Seed {
        meta_data: meta,
        network_config: net,
        user_data: user,
    }
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::plan::{DnsSource, MacAssignment, NodeRole, ProxyEnv};

    fn node() -> NodePlan {
        NodePlan {
            name: "m-ledge".into(),
            kind: NodeKind::Linux,
            role: NodeRole::ControlPlane,
            address: "192.168.0.2/24".parse().unwrap(),
            gateway: "192.168.0.1".parse().unwrap(),
            mac: MacAssignment::GeneratedAtDeploy,
            mtu: Some(1400),
            dns_servers: vec!["192.168.0.1".parse().unwrap()],
            dns_source: DnsSource::Configured,
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            skip_dns_check: false,
            proxy: ProxyEnv {
                http_proxy: Some("http://proxy:3128".into()),
                https_proxy: None,
                no_proxy: "localhost".into(),
            },
            size: Default::default(),
        }
    }

    #[test]
    fn network_config_matches_the_mac_and_carries_address_route_dns_mtu() {
        let mac: MacAddr = "02:15:5d:00:00:02".parse().unwrap();
        let seed = build(&node(), mac, 1400, &[]);
        let n = &seed.network_config;
        assert!(n.contains("macaddress: \"02:15:5d:00:00:02\""), "{n}");
        assert!(n.contains("- 192.168.0.2/24"), "{n}");
        assert!(n.contains("via: 192.168.0.1"), "{n}");
        assert!(n.contains("mtu: 1400"), "{n}");
        assert!(seed.meta_data.contains("local-hostname: m-ledge"));
    }

    #[test]
    fn user_data_writes_the_files_base64_and_the_instance_follows_the_content() {
        let mac: MacAddr = "02:15:5d:00:00:02".parse().unwrap();
        let f = SeedFile {
            path: "/etc/x".into(),
            content: "a: 'b'\n".into(),
            mode: 0o600,
            append: false,
        };
        let a = build(&node(), mac, 1400, std::slice::from_ref(&f));
        assert!(a.user_data.starts_with("#cloud-config\n"));
        assert!(
            a.user_data.contains("content: YTogJ2InCg=="),
            "{}",
            a.user_data
        );
        assert!(a.user_data.contains("permissions: '0600'"));
        let b = build(&node(), mac, 1500, &[f]);
        assert_ne!(a.meta_data, b.meta_data);
    }

    #[test]
    fn the_proxy_environment_is_written_whole_and_private_when_it_has_a_password() {
        let plan = crate::firewall::tests::sample_plan();
        let mut n = node();
        let env = |n: &NodePlan| {
            guest_files(&plan, n, Vec::new())
                .into_iter()
                .find(|f| f.path == "/etc/environment")
                .expect("/etc/environment is always written")
        };
        let f = env(&n);
        assert!(!f.append, "appending piles up old proxies");
        assert_eq!(f.mode, 0o644);
        assert!(
            f.content.contains("http_proxy=http://proxy:3128"),
            "{}",
            f.content
        );
        n.proxy.http_proxy = Some("http://bob:s3cret@proxy:3128".into());
        let f = env(&n);
        assert_eq!(f.mode, 0o600, "a password is not world-readable");
        // A removed proxy: the file still replaces the old one, without proxy lines.
        n.proxy = ProxyEnv {
            http_proxy: None,
            https_proxy: None,
            no_proxy: String::new(),
        };
        let f = env(&n);
        assert!(!f.append);
        assert!(!f.content.contains("proxy"), "{}", f.content);
        assert!(f.content.starts_with("PATH="), "{}", f.content);
    }
}
