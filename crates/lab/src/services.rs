//! The lab's peers, all Debian-packaged programs run in the foreground:
//!
//! - HTTP server: `busybox httpd -f -v` (package `busybox`). Chosen over
//!   `python3 -m http.server` because it starts in milliseconds, has no interpreter to find
//!   (a pyenv shim may shadow Debian's python3), and `-v` logs one line per request that
//!   starts with the client address (`198.18.0.11:40312: response:200`), which is what the
//!   NAT test checks.
//! - DNS: two `dnsmasq` (package `dnsmasq-base`): the upstream in the internet namespace is
//!   authoritative-only for [`TEST_DOMAIN`] (`--local`, so AAAA gets an empty answer, not
//!   REFUSED, and glibc's parallel A/AAAA lookup succeeds); the LAN DNS on the router only
//!   forwards to it. Both log every query with its client (`--log-queries`).
//! - HTTP proxy: `tinyproxy` (package `tinyproxy`) on the router, config in the lab dir,
//!   logging every request with its client to a file.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::probe;
use crate::topology::*;

/// A service the lab runs: its name, namespace role and command line.
pub(crate) struct ServiceSpec {
    pub name: &'static str,
    pub argv: Vec<String>,
    pub log: PathBuf,
    /// Mounted over `/etc/resolv.conf` for the service alone (the proxy resolves the names it
    /// is asked for through the LAN DNS, never through the host's resolver).
    pub resolv_conf: Option<PathBuf>,
}

pub(crate) const HTTP: &str = "http";
pub(crate) const DNS_UPSTREAM_SVC: &str = "dns-upstream";
pub(crate) const DNS_LAN_SVC: &str = "dns-lan";
pub(crate) const PROXY: &str = "proxy";

/// Connections this process opens to the lab's HTTP server at once (all labs of the process
/// together). busybox httpd listens with a backlog of 9 and accepts one connection per fork:
/// a burst of more clients than that overflows its accept queue, the kernel drops their
/// SYNs, and each of them then waits a whole second for the retransmission. The matrix's
/// HTTP probes take a place here first.
pub(crate) static HTTP_CLIENTS: crate::pool::Gate = crate::pool::Gate::new(HTTP_CLIENTS_MAX);
pub(crate) const HTTP_CLIENTS_MAX: usize = 8;

/// The page the HTTP server serves; probes check for it, so an answer from anything else
/// (a proxy's error page, another server) does not count.
pub(crate) fn page(lab: &str) -> String {
    format!("edgenet lab {lab}: hello from the internet\n")
}

pub(crate) fn log_path(dir: &Path, service: &str) -> PathBuf {
    dir.join("logs").join(format!("{service}.log"))
}

pub(crate) fn http(dir: &Path, www: &Path) -> ServiceSpec {
    ServiceSpec {
        name: HTTP,
        argv: strings(&[
            "busybox",
            "httpd",
            "-f",
            "-v",
            "-p",
            &format!("{HTTP_SERVER}:80"),
            "-h",
            &www.display().to_string(),
        ]),
        log: log_path(dir, HTTP),
        resolv_conf: None,
    }
}

fn dnsmasq(listen: Ipv4Addr, extra: &[String]) -> Vec<String> {
    let mut argv = strings(&[
        "dnsmasq",
        // Never read /etc/dnsmasq.conf or /etc/hosts or /etc/resolv.conf of the host.
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        "--no-daemon",
        "--bind-interfaces",
        &format!("--listen-address={listen}"),
        "--pid-file=",
        "--log-queries",
        "--cache-size=0",
    ]);
    argv.extend_from_slice(extra);
    argv
}

pub(crate) fn dns_upstream(dir: &Path) -> ServiceSpec {
    ServiceSpec {
        name: DNS_UPSTREAM_SVC,
        argv: dnsmasq(
            DNS_UPSTREAM,
            &[
                format!("--local=/{TEST_DOMAIN}/"),
                format!("--host-record={TEST_NAME},{HTTP_SERVER}"),
            ],
        ),
        log: log_path(dir, DNS_UPSTREAM_SVC),
        resolv_conf: None,
    }
}

pub(crate) fn dns_lan(dir: &Path) -> ServiceSpec {
    ServiceSpec {
        name: DNS_LAN_SVC,
        argv: dnsmasq(LAN_ROUTER, &[format!("--server={DNS_UPSTREAM}")]),
        log: log_path(dir, DNS_LAN_SVC),
        resolv_conf: None,
    }
}

/// tinyproxy's config, allowing the whole lab address range (machines' masqueraded node
/// traffic arrives from their LAN addresses).
pub(crate) fn proxy_config(log: &Path) -> String {
    format!(
        "# written by edgenet lab\n\
         Port {PROXY_PORT}\n\
         Listen {LAN_ROUTER}\n\
         Timeout 30\n\
         MaxClients 50\n\
         LogFile \"{}\"\n\
         LogLevel Connect\n\
         Allow 198.18.0.0/15\n\
         Allow 203.0.113.0/24\n",
        log.display()
    )
}

pub(crate) fn proxy(dir: &Path, config: &Path, resolv_conf: &Path) -> ServiceSpec {
    ServiceSpec {
        name: PROXY,
        argv: strings(&["tinyproxy", "-d", "-c", &config.display().to_string()]),
        log: log_path(dir, PROXY),
        resolv_conf: Some(resolv_conf.to_path_buf()),
    }
}

/// The resolver file of services on the LAN router: the LAN DNS next to them.
pub(crate) fn lan_resolv_conf() -> String {
    format!("# written by edgenet lab\nnameserver {LAN_ROUTER}\n")
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// One readiness check: `Ok` when the service gave the right answer.
pub(crate) fn check(service: &str, lab: &str, timeout: Duration) -> Result<(), String> {
    let expect_page = |r: probe::HttpResponse| {
        if r.status == 200 && r.body == page(lab) {
            Ok(())
        } else {
            Err(format!("HTTP {} with an unexpected page", r.status))
        }
    };
    let expect_server = |addrs: Vec<Ipv4Addr>| {
        if addrs == [HTTP_SERVER] {
            Ok(())
        } else {
            Err(format!("{TEST_NAME} resolved to {addrs:?}"))
        }
    };
    match service {
        HTTP => probe::http_get(
            SocketAddrV4::new(HTTP_SERVER, 80),
            "/",
            &HTTP_SERVER.to_string(),
            timeout,
        )
        .map_err(|e| e.to_string())
        .and_then(expect_page),
        DNS_UPSTREAM_SVC => probe::dns_a(SocketAddrV4::new(DNS_UPSTREAM, 53), TEST_NAME, timeout)
            .map_err(|e| e.to_string())
            .and_then(expect_server),
        DNS_LAN_SVC => probe::dns_a(SocketAddrV4::new(LAN_ROUTER, 53), TEST_NAME, timeout)
            .map_err(|e| e.to_string())
            .and_then(expect_server),
        PROXY => probe::http_get(
            SocketAddrV4::new(LAN_ROUTER, PROXY_PORT),
            &http_url_by_address(),
            &HTTP_SERVER.to_string(),
            timeout,
        )
        .map_err(|e| e.to_string())
        .and_then(expect_page),
        other => Err(format!("no readiness check for {other}")),
    }
}

/// How a [`check_machine`] failure of the LAN DNS starts (the one its log can explain).
pub(crate) const MACHINE_DNS_FAILURE: &str = "LAN DNS";

/// A machine's own wiring, checked before its deploy: what differs from one machine to the
/// next, and what its deploy and its nodes rely on.
///
/// - Its DNS through the router: the LAN DNS (on the router's LAN address, the machine's
///   resolv.conf) resolves the test name to the HTTP server. The answer reaching the machine
///   proves its address, its adapter and LAN port up, and the router and the machine knowing
///   each other's MAC; the answer itself proves the router's forwarder and its upstream.
/// - Its way out: an ICMP echo to the HTTP server's address is answered. The server is off
///   the LAN, so only the machine's default route via the router gets the request there, and
///   the router's forwarding both ways brings the reply back.
///
/// What is the same for every machine — the HTTP server serving the lab's page, the proxy —
/// was proven once, before the first machine's check, by the services' own readiness wait
/// (from the LAN router). Asking it again from each machine cost a TCP connection and a
/// forked busybox child per machine.
pub(crate) fn check_machine(timeout: Duration) -> Result<(), String> {
    let addrs = probe::dns_a(SocketAddrV4::new(LAN_ROUTER, 53), TEST_NAME, timeout)
        .map_err(|e| format!("{MACHINE_DNS_FAILURE} {LAN_ROUTER}: {e}"))?;
    if addrs != [HTTP_SERVER] {
        return Err(format!(
            "{MACHINE_DNS_FAILURE} resolved {TEST_NAME} to {addrs:?}"
        ));
    }
    let way_out = |reason: String| {
        format!("no way out through the router {LAN_ROUTER}: ICMP echo to {HTTP_SERVER}: {reason}")
    };
    match probe::ping_many(&[HTTP_SERVER], timeout)
        .map_err(|e| way_out(e.to_string()))?
        .pop()
    {
        Some(probe::PingResult::Reply(_)) => Ok(()),
        Some(probe::PingResult::NoReply(reason)) => Err(way_out(
            reason.unwrap_or_else(|| format!("no reply within {timeout:?}")),
        )),
        None => Err(way_out("no result".into())),
    }
}

/// Why a service never became ready.
#[derive(Debug)]
pub(crate) enum NotReady {
    /// Still failing at the deadline; the last failure.
    TimedOut(String),
    /// The process died meanwhile.
    Exited(Box<LabError>),
}

/// Retries `attempt` until it succeeds or `timeout` passes; `exited` is asked between
/// attempts so a service that died is reported at once with its log, not after the timeout.
pub(crate) fn wait_ready(
    timeout: Duration,
    mut attempt: impl FnMut(Duration) -> Result<(), String>,
    mut exited: impl FnMut() -> Option<LabError>,
) -> Result<(), NotReady> {
    /// Pause between attempts that failed fast (connection refused: not listening yet).
    const RETRY: Duration = Duration::from_millis(20);
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let per_try = left.clamp(Duration::from_millis(50), Duration::from_secs(1));
        let last = match attempt(per_try) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let Some(dead) = exited() {
            return Err(NotReady::Exited(Box::new(dead)));
        }
        if Instant::now() + RETRY >= deadline {
            return Err(NotReady::TimedOut(last));
        }
        std::thread::sleep(RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_never_reads_host_files_and_binds_only_its_address() {
        let spec = dns_upstream(Path::new("/lab"));
        for flag in [
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            "--bind-interfaces",
        ] {
            assert!(spec.argv.iter().any(|a| a == flag), "{flag}");
        }
        assert!(spec
            .argv
            .contains(&format!("--listen-address={DNS_UPSTREAM}")));
        assert!(spec
            .argv
            .contains(&format!("--host-record={TEST_NAME},{HTTP_SERVER}")));
        let lan = dns_lan(Path::new("/lab"));
        assert!(lan.argv.contains(&format!("--server={DNS_UPSTREAM}")));
    }

    #[test]
    fn a_wait_gives_up_at_its_deadline_and_reports_the_last_failure() {
        let started = Instant::now();
        let mut tries = 0;
        let e = wait_ready(
            Duration::from_millis(150),
            |_| {
                tries += 1;
                Err(format!("try {tries}"))
            },
            || None,
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(tries > 1);
        match e {
            NotReady::TimedOut(last) => assert_eq!(last, format!("try {tries}")),
            other => panic!("{other:?}"),
        }
    }
}
