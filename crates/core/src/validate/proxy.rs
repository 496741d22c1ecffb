//! Rule group 9: proxy URLs and `no_proxy` entries that every tool in a node understands.

use std::net::Ipv4Addr;

use super::{Code, Finding};
use crate::config::Config;

pub(super) fn check(config: &Config, out: &mut Vec<Finding>) {
    let proxy = &config.network.proxy;
    for (key, value) in [("Http", &proxy.http), ("Https", &proxy.https)] {
        let Some(url) = value else { continue };
        let path = format!("Network.Proxy.{key}");
        if let Err(why) = proxy_url_problem(url) {
            out.push(
                Finding::error(
                    Code::ProxyUrl,
                    &path,
                    format!("{path} is {}: {why}", super::excerpt(url)),
                )
                .hint("write it as http://HOST:PORT, e.g. \"http://proxy.example.com:3128\""),
            );
        }
    }
    if let Some(list) = &proxy.no {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some(suffix) = entry.strip_prefix("*.") {
                out.push(
                    Finding::warning(
                        Code::NoProxyEntry,
                        "Network.Proxy.No",
                        format!(
                            "no_proxy entry {} is not understood by every tool",
                            super::excerpt(entry)
                        ),
                    )
                    .hint(format!(
                        "write \".{suffix}\" to match the domain and its subdomains"
                    )),
                );
            } else if let Err(why) = no_proxy_entry_problem(entry) {
                out.push(
                    Finding::error(
                        Code::NoProxyEntry,
                        "Network.Proxy.No",
                        format!("no_proxy entry {} {why}", super::excerpt(entry)),
                    )
                    .hint(
                        "each comma-separated entry is a host name, .domain, IP address, CIDR or *",
                    ),
                );
            }
        }
    }
    if config.network.internet_disabled && (proxy.http.is_some() || proxy.https.is_some()) {
        out.push(
            Finding::warning(Code::ProxyWhileOffline, "Network.Proxy", "a proxy is set but Network.InternetDisabled is true: nodes cannot reach anything past the host")
                .hint("remove the proxy, or set InternetDisabled to false"),
        );
    }
}

/// `http://` or `https://`, a host, and an explicit port (curl's default proxy port is 1080, not
/// 80, so a missing port is a trap).
fn proxy_url_problem(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is {:?}; proxies are http:// or https://",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    let authority = raw.split_once("://").map_or("", |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let explicit_port = host_port.rsplit_once(':').is_some_and(|(host, port)| {
        !host.ends_with(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
    });
    if !explicit_port {
        return Err("it has no port".into());
    }
    Ok(())
}

fn no_proxy_entry_problem(entry: &str) -> Result<(), String> {
    if entry == "*"
        || entry.parse::<std::net::IpAddr>().is_ok()
        || entry.parse::<ipnet::IpNet>().is_ok()
    {
        return Ok(());
    }
    if entry.contains('/') {
        return Err("is not a valid CIDR".into());
    }
    if entry.parse::<Ipv4Addr>().is_err()
        && entry
            .split('.')
            .all(|p| p.chars().all(|c| c.is_ascii_digit()))
        && entry.contains('.')
    {
        return Err("is not a valid IP address".into());
    }
    let name = entry.strip_prefix('.').unwrap_or(entry);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err("is not a host name, .domain, IP, CIDR or *".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert!(proxy_url_problem("http://proxy.example.com:3128").is_ok());
        assert!(proxy_url_problem("https://user:pw@10.0.0.1:8443/").is_ok());
        assert!(proxy_url_problem("http://proxy:80").is_ok());
        assert!(proxy_url_problem("http://proxy.example.com").is_err());
        assert!(proxy_url_problem("socks5://proxy:1080").is_err());
        assert!(proxy_url_problem("proxy:3128").is_err());
        assert!(proxy_url_problem("http://:3128").is_err());
    }

    #[test]
    fn no_proxy_entries() {
        for ok in [
            "*",
            "localhost",
            ".svc",
            "example.com",
            "10.0.0.0/8",
            "192.168.1.5",
            "fd00::1",
            "my_host",
        ] {
            assert!(no_proxy_entry_problem(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://x",
            "10.0.0.0/33",
            "a b",
            "300.1.1.1",
            ".",
            "-bad.com",
        ] {
            assert!(no_proxy_entry_problem(bad).is_err(), "{bad}");
        }
    }
}
