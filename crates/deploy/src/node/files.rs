//! The files a node reads: resolv.conf, hosts and its proxy environment. Rendering is pure;
//! writing is atomic and only when the content changed (so a second deploy reports nothing).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use edgenet_core::plan::{NodePlan, Plan};

use crate::error::{io_err, DeployError};

pub const RESOLV_CONF: &str = "resolv.conf";
pub const HOSTS: &str = "hosts";
pub const PROXY_ENV: &str = "proxy.env";

/// Where a node's files live: `<state dir>/nodes/<node name>/`.
pub fn node_dir(state_dir: &Path, node_name: &str) -> PathBuf {
    state_dir.join("nodes").join(node_name)
}

pub fn resolv_conf(node: &NodePlan) -> String {
    let mut s = String::from("# Written by edgenet: the node's DNS servers (Network.DnsServers, else the host's upstream ones); the host's search list and options that mean the same in a node.\n");
    for server in &node.dns_servers {
        s.push_str(&format!("nameserver {server}\n"));
    }
    s.push_str(&node.resolver_lines());
    if node.dns_servers.is_empty() {
        s.push_str("# no DNS server: the cluster is offline and none was configured\n");
    }
    s
}

/// localhost, then every node of the machine and the host itself on the switch.
pub fn hosts(plan: &Plan, node: &NodePlan) -> String {
    let mut s = String::from(
        "# Written by edgenet.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    s.push_str(&format!("{}\t{}\n", node.address.addr(), node.name));
    for other in plan.nodes.iter().filter(|n| n.name != node.name) {
        s.push_str(&format!("{}\t{}\n", other.address.addr(), other.name));
    }
    if let Some(host) = plan.switch.host_address {
        s.push_str(&format!("{}\t{}\n", host.addr(), plan.machine.name));
    }
    s
}

/// `NAME=value` lines, lower- and upper-case forms, for `node exec` and for humans.
pub fn proxy_env(node: &NodePlan) -> String {
    node.proxy
        .variables()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

/// Reads back `proxy.env` for `node exec`.
pub fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The largest node file read back: what deploy writes is a few hundred bytes.
const MAX_NODE_FILE: u64 = 1 << 20;

/// The text of a file edgenet wrote (a node's file, a VM's seed file), read back to compare:
/// `Err` when it is missing, not a regular file (a FIFO would hang the read, a link to a
/// device never end it), larger than anything edgenet writes, or unreadable — each "not what
/// deploy wrote", which deploy replaces.
pub fn read_back(path: &Path) -> std::io::Result<String> {
    let bytes = crate::own_files::read(path, MAX_NODE_FILE)?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Writes all three files of `node`; returns what changed, in words (`wrote vm-ledge/hosts`,
/// `set mode 0700 on …`), so that a deploy that only tightened a mode says so.
pub fn write_node_files(
    state_dir: &Path,
    plan: &Plan,
    node: &NodePlan,
) -> Result<Vec<String>, DeployError> {
    let dir = node_dir(state_dir, &node.name);
    // Modes of directories an earlier run made (one just made is not a fix to report).
    let mode_of = |d: &Path| std::fs::metadata(d).map(|m| m.permissions().mode() & 0o777);
    let before = [
        mode_of(&dir).ok(),
        mode_of(dir.parent().unwrap_or(&dir)).ok(),
    ];
    std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    // Only root lists the node directories: proxy.env may hold credentials. The node's
    // processes still read resolv.conf and hosts, which `node exec` bind-mounts by root.
    let mut changed = Vec::new();
    for (d, was) in [dir.as_path(), dir.parent().unwrap_or(&dir)]
        .into_iter()
        .zip(before)
    {
        if mode_of(d).ok() != Some(0o700) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("protect", d))?;
            if let Some(was) = was {
                changed.push(format!("set mode 0700 on {} (was {was:04o})", d.display()));
            }
        }
    }
    for (name, content, mode) in [
        (RESOLV_CONF, resolv_conf(node), 0o644),
        (HOSTS, hosts(plan, node), 0o644),
        // `http://user:password@proxy`: readable by root only, like the state file.
        (PROXY_ENV, proxy_env(node), 0o600),
    ] {
        let path = dir.join(name);
        if read_back(&path).ok().as_deref() == Some(content.as_str()) {
            // Same content, but an older edgenet wrote proxy.env world-readable.
            let live = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            if let Some(was) = live.ok().filter(|m| *m != mode) {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(io_err("protect", &path))?;
                changed.push(format!(
                    "set mode {mode:04o} on {}/{name} (was {was:04o})",
                    node.name
                ));
            }
            continue;
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err("write", &path))?;
        tmp.write_all(content.as_bytes())
            .map_err(io_err("write", &path))?;
        // Atomic (rename) but not fsynced, like the state journal: after a power cut the node's
        // namespace is gone too, and the next deploy compares each file and rewrites a lost one.
        // An fsync per file cost 1–3 ms each on a busy disk.
        // resolv.conf and hosts are readable by the node's processes (node exec mounts them
        // over /etc); the mode is set before the file appears under its name.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(io_err("write", &path))?;
        tracing::debug!("write {}", path.display());
        tmp.persist(&path).map_err(|e| DeployError::Io {
            op: "write",
            path: path.display().to_string(),
            source: e.error,
        })?;
        changed.push(format!("wrote {}/{name}", node.name));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgenet_core::plan::{DnsSource, MacAssignment, NodeKind, NodeRole, ProxyEnv};

    fn node(dns: &[&str], http: Option<&str>) -> NodePlan {
        NodePlan {
            name: "m-ledge".into(),
            kind: NodeKind::Linux,
            role: NodeRole::ControlPlane,
            address: "192.168.0.2/24".parse().unwrap(),
            gateway: "192.168.0.1".parse().unwrap(),
            mac: MacAssignment::GeneratedAtDeploy,
            mtu: Some(1500),
            dns_servers: dns.iter().map(|s| s.parse().unwrap()).collect(),
            dns_source: DnsSource::Configured,
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            skip_dns_check: false,
            proxy: ProxyEnv {
                http_proxy: http.map(String::from),
                https_proxy: None,
                no_proxy: "localhost".into(),
            },
            size: Default::default(),
        }
    }

    #[test]
    fn resolv_conf_lists_exactly_the_servers() {
        let text = resolv_conf(&node(&["1.1.1.1", "9.9.9.9"], None));
        let servers: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver "))
            .collect();
        assert_eq!(servers, ["1.1.1.1", "9.9.9.9"]);
        assert!(
            !text.contains("\nsearch") && !text.contains("\noptions"),
            "{text}"
        );
        let mut n = node(&["1.1.1.1"], None);
        n.dns_search = vec!["corp.example".into(), "lab.example".into()];
        n.dns_options = vec!["ndots:2".into(), "rotate".into()];
        let text = resolv_conf(&n);
        assert!(
            text.ends_with(
                "nameserver 1.1.1.1\nsearch corp.example lab.example\noptions ndots:2 rotate\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn proxy_env_round_trips_and_is_empty_without_proxy() {
        let n = node(&[], Some("http://p:3128"));
        let vars = parse_env(&proxy_env(&n));
        assert!(vars.contains(&("http_proxy".into(), "http://p:3128".into())));
        assert!(vars.contains(&("HTTP_PROXY".into(), "http://p:3128".into())));
        assert!(vars.contains(&("no_proxy".into(), "localhost".into())));
        assert!(proxy_env(&node(&[], None)).is_empty());
    }
}
