//! The host's upstream DNS servers, as nodes should get them.
//!
//! A node cannot use a resolver on the host's loopback (its 127.0.0.1 is its own), so
//! loopback servers — above all systemd-resolved's stub 127.0.0.53 — are set aside, and when
//! the host uses such a local resolver, systemd-resolved's own upstream list is followed
//! instead (kubeadm does the same). IPv6 servers are ignored: edgenet is IPv4 only.
//!
//! Nodes also get the host's `search` list (short names resolve in a node as on the host) and
//! the `options` of the file their servers come from, less those that mean something only for
//! the host's own resolver (see [`node_options`]).
//!
//! [`discover`] is pure (texts in, [`HostDns`] out) so every case is unit-tested;
//! [`read_host_dns`] only reads the two files.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use edgenet_core::host_facts::HostDns;

use crate::small_file::{self, SmallFileError};

/// The resolver configuration the host's own programs use.
pub const ETC_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of its upstream servers (the stub's forwarders).
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// [`discover_from`] with the standard file names (used in `source` and messages).
pub fn discover(resolv_conf_text: &str, systemd_upstream_text: Option<&str>) -> HostDns {
    discover_from(
        resolv_conf_text,
        Path::new(ETC_RESOLV_CONF),
        systemd_upstream_text,
        Path::new(SYSTEMD_RESOLV_CONF),
    )
}

/// Decides the servers for nodes from the host's resolv.conf text and, when it exists,
/// systemd-resolved's upstream list. The paths only name the files in `source` and in
/// `problem`.
///
/// Rules: IPv4 `nameserver` lines count, in order, without duplicates. Loopback servers
/// (127.0.0.0/8) and 0.0.0.0 (glibc reads it as "this host") go to `loopback_skipped`. When
/// resolv.conf has such a local server and the upstream list has usable servers, those are
/// the answer (the local resolver forwards to them); otherwise resolv.conf's usable servers
/// are. With none, `problem` says why.
pub fn discover_from(
    resolv_conf_text: &str,
    resolv_conf_path: &Path,
    systemd_upstream_text: Option<&str>,
    systemd_upstream_path: &Path,
) -> HostDns {
    let main = Nameservers::parse(resolv_conf_text);
    let (usable, local) = split_local(&main.ipv4);
    let mut dns = HostDns {
        loopback_skipped: local.clone(),
        search: main.search.clone(),
        options: node_options(&main.options),
        ..HostDns::default()
    };

    let mut upstream_state = None;
    if !local.is_empty() {
        if let Some(text) = systemd_upstream_text {
            let upstream = Nameservers::parse(text);
            let (up_usable, up_local) = split_local(&upstream.ipv4);
            for ip in up_local {
                if !dns.loopback_skipped.contains(&ip) {
                    dns.loopback_skipped.push(ip);
                }
            }
            if !up_usable.is_empty() {
                dns.servers = up_usable;
                dns.source = Some(systemd_upstream_path.display().to_string());
                // resolv.conf's options are the local stub's (systemd-resolved writes `edns0
                // trust-ad` for 127.0.0.53); the servers' own file has the ones for them.
                dns.options = node_options(&upstream.options);
                return dns;
            }
            upstream_state = Some(upstream);
        }
    }
    if !usable.is_empty() {
        dns.servers = usable;
        dns.source = Some(resolv_conf_path.display().to_string());
        return dns;
    }

    let resolv = resolv_conf_path.display();
    let upstream = systemd_upstream_path.display();
    dns.problem = Some(if !local.is_empty() {
        let locals = list(&local);
        let why = match upstream_state {
            None => format!("systemd-resolved's upstream list {upstream} does not exist"),
            Some(up) if up.ipv6 > 0 && up.ipv4.is_empty() => {
                format!("{upstream} lists only IPv6 servers (edgenet is IPv4 only)")
            }
            Some(_) => format!("{upstream} lists no IPv4 server that nodes can reach"),
        };
        format!(
            "{resolv} names only the local resolver {locals}, which nodes cannot reach, and {why}"
        )
    } else if main.ipv6 > 0 {
        format!("{resolv} lists only IPv6 nameservers (edgenet is IPv4 only)")
    } else {
        format!("{resolv} lists no nameserver")
    });
    dns
}

/// The most of a resolver file that is read: a resolv.conf is a few hundred bytes (glibc uses
/// three `nameserver` lines); 1 MiB leaves room for any comments and refuses `/dev/zero` or a
/// huge file before it costs memory.
pub const MAX_RESOLV_CONF_BYTES: u64 = 1 << 20;

/// Reads one resolver file: a regular file of at most [`MAX_RESOLV_CONF_BYTES`]
/// ([`small_file::read`]: a FIFO or device is named, never read).
pub fn read_resolver_file(path: &Path) -> Result<String, SmallFileError> {
    small_file::read(path, MAX_RESOLV_CONF_BYTES)
}

/// Reads `etc_resolv` and, if present, `upstream` and applies [`discover_from`]. An
/// unreadable resolv.conf is reported in `problem`, not as an error: missing DNS is a
/// finding for `check`, not a reason to stop gathering facts. Both files are read with
/// [`read_resolver_file`] (capped, regular files only).
pub fn read_host_dns(etc_resolv: &Path, upstream: &Path) -> HostDns {
    let text = match read_resolver_file(etc_resolv) {
        Ok(t) => t,
        Err(e) => {
            return HostDns {
                problem: Some(format!("{} {e}", etc_resolv.display())),
                ..HostDns::default()
            }
        }
    };
    let (upstream_text, upstream_err) = match read_resolver_file(upstream) {
        Ok(t) => (Some(t), None),
        Err(SmallFileError::Missing) => (None, None),
        Err(e) => {
            tracing::debug!("{} {e}", upstream.display());
            (None, Some(e))
        }
    };
    let mut dns = discover_from(&text, etc_resolv, upstream_text.as_deref(), upstream);
    // The upstream list was needed (the problem names it as missing) but is there and could
    // not be read: say that, not "does not exist".
    if let (Some(e), Some(problem)) = (upstream_err, dns.problem.as_mut()) {
        let missing = format!("{} does not exist", upstream.display());
        if problem.contains(&missing) {
            *problem = problem.replace(&missing, &format!("{} {e}", upstream.display()));
        }
    }
    dns
}

/// Options that do not go to nodes: `trust-ad` makes glibc trust the AD ("authenticated
/// data") bit of the answers, which is sound only for a resolver on a trusted path — the
/// host's own stub on loopback, for which systemd-resolved writes it —, not for servers the
/// node reaches across the network; `inet6`, `ip6-bytestring` and `ip6-dotint` were removed
/// from glibc (2.25/2.26) and edgenet's nodes are IPv4 only.
const HOST_ONLY_OPTIONS: [&str; 4] = ["trust-ad", "inet6", "ip6-bytestring", "ip6-dotint"];

/// The `options` a node gets: each once (the last of one name wins, as glibc reads them),
/// without the host-only ones (`trust-ad`, and the IPv6 ones glibc removed).
pub fn node_options(options: &[String]) -> Vec<String> {
    let name = |o: &str| o.split(':').next().unwrap_or(o).to_string();
    let mut out: Vec<String> = Vec::new();
    for option in options {
        if HOST_ONLY_OPTIONS.contains(&option.as_str()) {
            continue;
        }
        out.retain(|o| name(o) != name(option));
        out.push(option.clone());
    }
    out
}

/// The `nameserver`, `search`/`domain` and `options` lines of one file.
struct Nameservers {
    ipv4: Vec<Ipv4Addr>,
    ipv6: usize,
    /// The last `search` or `domain` line's names (glibc: the last of them wins).
    search: Vec<String>,
    /// Every `options` line's words, in order.
    options: Vec<String>,
}

impl Nameservers {
    fn parse(text: &str) -> Self {
        let mut out = Nameservers {
            ipv4: Vec::new(),
            ipv6: 0,
            search: Vec::new(),
            options: Vec::new(),
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {}
                Some("search" | "domain") => {
                    out.search = words.map(str::to_string).collect();
                    continue;
                }
                Some("options") => {
                    out.options.extend(words.map(str::to_string));
                    continue;
                }
                _ => continue,
            }
            let Some(addr) = words.next() else {
                continue;
            };
            if let Ok(ip) = addr.parse::<Ipv4Addr>() {
                if !out.ipv4.contains(&ip) {
                    out.ipv4.push(ip);
                }
            } else if addr
                .split('%')
                .next()
                .is_some_and(|a| a.parse::<Ipv6Addr>().is_ok())
            {
                out.ipv6 += 1;
            }
        }
        out
    }
}

/// (usable by nodes, local to the host).
fn split_local(servers: &[Ipv4Addr]) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    servers
        .iter()
        .copied()
        .partition(|ip| !(ip.is_loopback() || ip.is_unspecified()))
}

fn list(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const STUB: &str =
        "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
                        nameserver 127.0.0.53\n\
                        options edns0 trust-ad\n\
                        search lan\n";
    const UPSTREAM: &str =
        "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\n\
                            nameserver 198.51.100.53\n\
                            nameserver 2001:db8::53\n\
                            nameserver 203.0.113.53\n\
                            search lan\n";

    #[test]
    fn plain_resolv_conf_servers_are_used_in_order() {
        let dns = discover(
            "search example.org\nnameserver 198.51.100.1\nnameserver 198.51.100.2\n",
            None,
        );
        assert_eq!(dns.servers, vec![ip("198.51.100.1"), ip("198.51.100.2")]);
        assert_eq!(dns.source.as_deref(), Some(ETC_RESOLV_CONF));
        assert!(dns.loopback_skipped.is_empty());
        assert_eq!(dns.problem, None);
    }

    #[test]
    fn systemd_stub_is_skipped_and_upstream_list_followed() {
        let dns = discover(STUB, Some(UPSTREAM));
        assert_eq!(dns.servers, vec![ip("198.51.100.53"), ip("203.0.113.53")]);
        assert_eq!(dns.source.as_deref(), Some(SYSTEMD_RESOLV_CONF));
        assert_eq!(dns.loopback_skipped, vec![ip("127.0.0.53")]);
        assert_eq!(dns.problem, None);
    }

    #[test]
    fn stub_without_upstream_file_is_a_problem_naming_both_files() {
        let dns = discover(STUB, None);
        assert!(dns.servers.is_empty());
        assert_eq!(dns.source, None);
        assert_eq!(dns.loopback_skipped, vec![ip("127.0.0.53")]);
        let problem = dns.problem.unwrap();
        assert!(problem.contains("/etc/resolv.conf"), "{problem}");
        assert!(problem.contains("127.0.0.53"), "{problem}");
        assert!(problem.contains(SYSTEMD_RESOLV_CONF), "{problem}");
        assert!(problem.contains("does not exist"), "{problem}");
    }

    #[test]
    fn stub_with_empty_or_loopback_upstream_is_a_problem() {
        let dns = discover(STUB, Some("# nothing\n"));
        assert!(dns.servers.is_empty());
        assert!(dns
            .problem
            .as_deref()
            .unwrap()
            .contains("lists no IPv4 server"));

        let dns = discover(STUB, Some("nameserver 127.0.0.1\n"));
        assert!(dns.servers.is_empty());
        assert_eq!(
            dns.loopback_skipped,
            vec![ip("127.0.0.53"), ip("127.0.0.1")]
        );
        assert!(dns.problem.is_some());

        let dns = discover(STUB, Some("nameserver 2001:db8::1\n"));
        assert!(dns.problem.as_deref().unwrap().contains("only IPv6"));
    }

    #[test]
    fn upstream_is_ignored_when_the_host_does_not_use_a_local_resolver() {
        let dns = discover("nameserver 198.18.0.53\n", Some(UPSTREAM));
        assert_eq!(dns.servers, vec![ip("198.18.0.53")]);
        assert_eq!(dns.source.as_deref(), Some(ETC_RESOLV_CONF));
    }

    #[test]
    fn local_resolver_without_upstream_falls_back_to_remaining_servers() {
        // e.g. a host-local dnsmasq first, then a real server.
        let dns = discover("nameserver 127.0.1.1\nnameserver 198.18.0.53\n", None);
        assert_eq!(dns.servers, vec![ip("198.18.0.53")]);
        assert_eq!(dns.loopback_skipped, vec![ip("127.0.1.1")]);
        assert_eq!(dns.source.as_deref(), Some(ETC_RESOLV_CONF));
        assert_eq!(dns.problem, None);
    }

    #[test]
    fn ipv6_only_resolv_conf_is_a_problem() {
        let dns = discover("nameserver 2001:db8::53\nnameserver fe80::1%eth0\n", None);
        assert!(dns.servers.is_empty());
        assert!(dns.loopback_skipped.is_empty());
        assert!(dns.problem.as_deref().unwrap().contains("only IPv6"));
    }

    #[test]
    fn empty_resolv_conf_is_a_problem() {
        let dns = discover("# generated\nsearch lan\n", None);
        assert_eq!(
            dns.problem.as_deref(),
            Some("/etc/resolv.conf lists no nameserver")
        );
    }

    #[test]
    fn comments_duplicates_garbage_and_unspecified_are_handled() {
        let text = "#nameserver 198.51.100.9\n\
                    ; nameserver 198.51.100.8\n\
                    nameserver 198.51.100.1 # office\n\
                    nameserver\tnot-an-ip\n\
                    nameserver 198.51.100.1\n\
                    nameserver 0.0.0.0\n\
                    nameservers 198.51.100.7\n";
        let dns = discover(text, None);
        assert_eq!(dns.servers, vec![ip("198.51.100.1")]);
        assert_eq!(dns.loopback_skipped, vec![ip("0.0.0.0")]);
    }

    #[test]
    fn search_and_the_options_that_mean_the_same_in_a_node_are_carried() {
        // Plain resolv.conf: its search list (the last of search/domain) and options, less
        // trust-ad and glibc's removed IPv6 ones; the last of one name wins.
        let dns = discover(
            "domain old.example\nsearch corp.example lab.corp.example\nnameserver 198.51.100.1\n\
             options ndots:2 trust-ad timeout:1\noptions rotate inet6 timeout:3 edns0\n",
            None,
        );
        assert_eq!(dns.search, vec!["corp.example", "lab.corp.example"]);
        assert_eq!(dns.options, vec!["ndots:2", "rotate", "timeout:3", "edns0"]);
        let dns = discover(
            "search a.example\ndomain b.example\nnameserver 198.51.100.1\n",
            None,
        );
        assert_eq!(dns.search, vec!["b.example"]);

        // The stub: its options are the stub's (edns0 trust-ad for 127.0.0.53); the servers
        // come from the upstream list, and so do the options (none here).
        let dns = discover(STUB, Some(UPSTREAM));
        assert_eq!(dns.search, vec!["lan"]);
        assert!(dns.options.is_empty(), "{:?}", dns.options);
        let dns = discover(
            STUB,
            Some(&format!("{UPSTREAM}options attempts:4 trust-ad\n")),
        );
        assert_eq!(dns.options, vec!["attempts:4"]);
        // The stub without usable upstream servers: the stub's own options, filtered.
        let dns = discover(
            "nameserver 127.0.1.1\nnameserver 198.18.0.53\noptions edns0 trust-ad\n",
            None,
        );
        assert_eq!(dns.options, vec!["edns0"]);
        assert!(dns.search.is_empty());
    }

    #[test]
    fn read_host_dns_reads_files_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        let upstream = dir.path().join("upstream.conf");
        std::fs::write(&resolv, STUB).unwrap();

        let dns = read_host_dns(&resolv, &upstream);
        assert!(dns
            .problem
            .unwrap()
            .contains(&upstream.display().to_string()));

        std::fs::write(&upstream, UPSTREAM).unwrap();
        let dns = read_host_dns(&resolv, &upstream);
        assert_eq!(dns.servers, vec![ip("198.51.100.53"), ip("203.0.113.53")]);
        assert_eq!(dns.source, Some(upstream.display().to_string()));

        let missing = dir.path().join("missing.conf");
        let dns = read_host_dns(&missing, &upstream);
        assert!(dns.servers.is_empty());
        let problem = dns.problem.unwrap();
        assert!(
            problem.ends_with("missing.conf does not exist"),
            "{problem}"
        );
    }
}
