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
            let hint = match why {
                UrlProblem::Userinfo(_) => "percent-encode the user name and password (`/` as %2F, `#` as %23, `?` as %3F, space as %20, `@` as %40), e.g. \"http://user:p%2Fw@proxy.example.com:3128\"",
                UrlProblem::Other(_) => "write it as http://HOST:PORT, e.g. \"http://proxy.example.com:3128\"",
                UrlProblem::Control(_) => "remove the control character, or percent-encode it if the proxy needs it (a newline as %0A, a carriage return as %0D, ESC as %1B), e.g. \"http://proxy.example.com:3128\"",
                // B24 F6: the hint the other fields get for ConvertTo-Json's `@{…}` text.
                UrlProblem::Depth(_) => "{path} is a PowerShell object written as text: ConvertTo-Json stopped at its -Depth; write the file with ConvertTo-Json -Depth 8",
            };
            let hint = hint.replace("{path}", &path);
            out.push(
                Finding::error(
                    Code::ProxyUrl,
                    &path,
                    format!("{path} is {}: {why}", super::excerpt(&safe_display(url))),
                )
                .hint(hint),
            );
        }
    }
    if let Some(list) = &proxy.no {
        if list.contains(';') {
            // Windows writes bypass lists with `;`; every Linux tool splits no_proxy on commas
            // only (AKS EE hands the value to its Linux node as it is), so one `;` list would
            // be a single entry that matches nothing.
            let rewritten: Vec<String> = list
                .split([',', ';'])
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("<local>"))
                .map(|e| match e.strip_prefix("*.") {
                    Some(domain) => format!(".{domain}"),
                    None => e.to_string(),
                })
                .collect();
            out.push(
                Finding::error(
                    Code::NoProxyEntry,
                    "Network.Proxy.No",
                    format!(
                        "Network.Proxy.No is {}, separated by ';' as Windows writes bypass lists; no_proxy entries are separated by commas",
                        super::excerpt(&safe_display(list))
                    ),
                )
                .hint(format!(
                    "separate the entries with commas: {}",
                    super::excerpt(&safe_display(&rewritten.join(",")))
                )),
            );
        }
        for entry in list
            .split([',', ';'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry.eq_ignore_ascii_case("<local>") {
                out.push(
                    Finding::error(
                        Code::NoProxyEntry,
                        "Network.Proxy.No",
                        format!("no_proxy entry {entry} is the Windows (WinINet) bypass token for host names without a dot; no_proxy has no such token"),
                    )
                    .hint("remove <local> and list those host names (e.g. \"fileserver,printer\") or their .domain (e.g. \".corp.example\")"),
                );
            } else if let Some(suffix) = entry.strip_prefix("*.") {
                out.push(
                    Finding::warning(
                        Code::NoProxyEntry,
                        "Network.Proxy.No",
                        format!(
                            "no_proxy entry {} is not understood by every tool",
                            super::excerpt(&safe_display(entry))
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
                        format!(
                            "no_proxy entry {} {why}",
                            super::excerpt(&safe_display(entry))
                        ),
                    )
                    .hint(
                        "each comma-separated entry is a host name, .domain, IP address, CIDR or *",
                    ),
                );
            }
        }
    }
    if config.network.internet_disabled && (proxy.http.is_some() || proxy.https.is_some()) {
        // Offline means: an internal switch forwards nothing past the host; an external
        // (scalable) switch keeps the nodes on the LAN, so a proxy on the LAN still works.
        let (message, hint) = if config.deployment_type
            == crate::config::DeploymentType::ScalableCluster
        {
            (
                "a proxy is set but Network.InternetDisabled is true: nodes reach only the LAN, so the proxy works only if it is on the LAN and itself reaches the internet",
                "keep the proxy if it is on the LAN; otherwise remove it, or set InternetDisabled to false",
            )
        } else {
            (
                "a proxy is set but Network.InternetDisabled is true: nodes cannot reach anything past the host",
                "remove the proxy, or set InternetDisabled to false",
            )
        };
        out.push(Finding::warning(Code::ProxyWhileOffline, "Network.Proxy", message).hint(hint));
    }
}

/// Why a proxy URL is refused; `Userinfo` gets the percent-encoding hint.
#[derive(Debug)]
enum UrlProblem {
    Userinfo(String),
    /// PowerShell's ConvertTo-Json `@{…}` text of an object deeper than its -Depth.
    Depth(String),
    Control(String),
    Other(String),
}

impl std::fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlProblem::Userinfo(s)
            | UrlProblem::Control(s)
            | UrlProblem::Depth(s)
            | UrlProblem::Other(s) => f.write_str(s),
        }
    }
}

impl From<String> for UrlProblem {
    fn from(s: String) -> Self {
        UrlProblem::Other(s)
    }
}

impl From<&str> for UrlProblem {
    fn from(s: &str) -> Self {
        UrlProblem::Other(s.to_string())
    }
}

/// The value for messages: everything before the last `@` is shown as `***` (after the scheme,
/// if any), so no part of a user name or password is echoed whatever it contains.
fn safe_display(raw: &str) -> String {
    match raw.rsplit_once('@') {
        None => raw.to_string(),
        // Nothing before the `@` (PowerShell's `@{…}` text): no user name or password to hide.
        Some(("", _)) => raw.to_string(),
        Some((before, host)) => match before.find("://") {
            Some(i) => format!("{}://***@{host}", &before[..i]),
            None => format!("***@{host}"),
        },
    }
}

/// A DNS name as resolvers accept it: at most 253 characters, labels of at most 63.
fn host_name_problem(host: &str) -> Option<String> {
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    if host.len() > 253 {
        return Some(format!(
            "the host name is {} characters long; DNS names have at most 253",
            host.len()
        ));
    }
    host.split('.').find(|l| l.len() > 63).map(|l| {
        format!(
            "a label of the host name is {} characters long; DNS labels have at most 63",
            l.len()
        )
    })
}

/// `http://` or `https://`, a host, and an explicit port (curl's default proxy port is 1080, not
/// 80, so a missing port is a trap). A user name or password must be percent-encoded: an
/// unencoded `/`, `#`, `?` or space splits the URL differently in every tool (and would end up
/// in the host or path, i.e. in logs).
///
/// No control character anywhere (C0, DEL, C1): the URL parser drops tabs and newlines and
/// percent-encodes the rest, so the parsed URL looks fine, but the raw value is what goes into
/// the node's `proxy.env` and the rendered environment files (a newline would start a variable
/// of its own there, e.g. `LD_PRELOAD=`) and what `plan` prints.
fn proxy_url_problem(raw: &str) -> Result<(), UrlProblem> {
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(UrlProblem::Control(format!(
            "it contains the control character {:?} (U+{:04X}); it would be written as it is into the nodes' proxy environment files",
            c, c as u32
        )));
    }
    if raw.trim_start().starts_with("@{") {
        return Err(UrlProblem::Depth(
            "not a URL but a PowerShell object written as text".to_string(),
        ));
    }
    let Some((_, rest)) = raw.split_once("://") else {
        return Err("it has no scheme; proxies are http:// or https://".into());
    };
    if let Some((userinfo, _)) = rest.rsplit_once('@') {
        if let Some(c) = userinfo
            .chars()
            .find(|c| matches!(c, '/' | '#' | '?' | '@') || c.is_whitespace() || c.is_control())
        {
            let what = match c {
                ' ' => "a space".to_string(),
                c if c.is_whitespace() || c.is_control() => {
                    "a whitespace or control character".to_string()
                }
                c => format!("an unencoded `{c}`"),
            };
            return Err(UrlProblem::Userinfo(format!(
                "its user name or password contains {what}"
            )));
        }
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is {:?}; proxies are http:// or https://",
            url.scheme()
        )
        .into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if let Some(why) = url.host_str().and_then(host_name_problem) {
        return Err(why.into());
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
    if entry.contains('@') {
        return Err("holds a user name or password; no_proxy entries are host names".into());
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

    /// B24 F6: ConvertTo-Json's `@{…}` text in a proxy URL field is quoted as written (no
    /// `***` in front of its `@`) and gets the -Depth hint the other fields get.
    #[test]
    fn a_powershell_object_as_a_proxy_url_gets_the_depth_hint() {
        let loaded = crate::config::load(
            br#"{"DeploymentType": "SingleMachineCluster", "Network": {"Proxy": {"Http": "@{Uri=http://p:3128}", "Https": "@{Uri=http://u:secret@p:3128}"}}}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        check(&loaded.config, &mut out);
        let http = out.iter().find(|f| f.path == "Network.Proxy.Http").unwrap();
        assert_eq!(http.code, Code::ProxyUrl);
        assert_eq!(
            http.message,
            "Network.Proxy.Http is \"@{Uri=http://p:3128}\": not a URL but a PowerShell object written as text"
        );
        assert_eq!(
            http.hint.as_deref(),
            Some("Network.Proxy.Http is a PowerShell object written as text: ConvertTo-Json stopped at its -Depth; write the file with ConvertTo-Json -Depth 8")
        );
        // A password inside it is still hidden.
        let https = out
            .iter()
            .find(|f| f.path == "Network.Proxy.Https")
            .unwrap();
        assert!(!https.message.contains("secret"), "{}", https.message);
        assert!(
            https.message.contains("@{Uri=http://***@p:3128}"),
            "{}",
            https.message
        );
        assert!(https.hint.as_deref().unwrap().contains("-Depth 8"));
    }

    #[test]
    fn proxy_urls() {
        assert!(proxy_url_problem("http://proxy.example.com:3128").is_ok());
        assert!(proxy_url_problem("https://user:pw@10.0.0.1:8443/").is_ok());
        assert!(proxy_url_problem("http://proxy:80").is_ok());
        assert!(proxy_url_problem("http://proxy.example.com").is_err());
        assert!(proxy_url_problem("socks5://proxy:1080").is_err());
        assert!(proxy_url_problem("proxy:3128").is_err());
        assert!(proxy_url_problem("http://:3128").is_err());
        // Issue 8 retest: no scheme, unencoded separators or a space in the password, a host
        // longer than DNS allows.
        for bad in [
            "user:secretA@198.18.0.1:3128",
            "http://user:sec/retP@proxy:3128",
            "http://user:sec#retP@proxy:3128",
            "http://user:sec?retP@proxy:3128",
            "http://user:sec retP@proxy:3128",
        ] {
            assert!(proxy_url_problem(bad).is_err(), "{bad}");
            assert!(!safe_display(bad).contains("sec"), "{}", safe_display(bad));
        }
        assert!(matches!(
            proxy_url_problem("http://user:sec/retP@proxy:3128"),
            Err(UrlProblem::Userinfo(_))
        ));
        assert!(proxy_url_problem("http://user:sec%2FretP@proxy:3128").is_ok());
        let long = format!("http://{}.example:3128", "a".repeat(5000));
        assert!(proxy_url_problem(&long).is_err());
        let label = format!("http://{}.example:3128", "a".repeat(64));
        assert!(proxy_url_problem(&label).is_err());
        let ok = format!("http://{}.example:3128", "a".repeat(63));
        assert!(proxy_url_problem(&ok).is_ok());
        // B23b F8: control characters anywhere (path and query too), which the URL parser
        // drops or encodes but the env files would get raw.
        for bad in [
            "http://proxy.example.com:3128/\nLD_PRELOAD=/tmp/x.so\n",
            "http://proxy.example.com:3128/x\rY",
            "http://proxy.example.com:3128/\u{1b}[2J",
            "http://proxy.example.com:3128/?q=\u{0}",
            "http://proxy.example.com:3128/\t",
            "http://proxy.example.com:3128/\u{7f}",
            "http://proxy.example.com:3128/\u{85}",
            "http://proxy.example.com:3128\n",
        ] {
            assert!(
                matches!(proxy_url_problem(bad), Err(UrlProblem::Control(_))),
                "{bad:?}"
            );
        }
        assert!(proxy_url_problem("http://proxy.example.com:3128/a%0Ab").is_ok());
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
