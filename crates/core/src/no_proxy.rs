//! The effective `no_proxy` list a node gets (SPEC §5.3).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The user's `Network.Proxy.No` entries, in their order, followed by what the cluster needs
/// and the user did not list. Entries are compared case-insensitively; blanks are dropped.
pub fn effective_no_proxy(
    user: Option<&str>,
    switch_subnet: Ipv4Net,
    pod_cidr: Ipv4Net,
    service_cidr: Ipv4Net,
    control_plane_endpoint: Ipv4Addr,
) -> String {
    let mut entries: Vec<String> = Vec::new();
    let mut push = |entry: &str| {
        let entry = entry.trim();
        if !entry.is_empty() && !entries.iter().any(|e| e.eq_ignore_ascii_case(entry)) {
            entries.push(entry.to_string());
        }
    };
    for entry in user.unwrap_or("").split(',') {
        push(entry);
    }
    for needed in [
        "localhost".to_string(),
        "127.0.0.0/8".to_string(),
        switch_subnet.trunc().to_string(),
        pod_cidr.to_string(),
        service_cidr.to_string(),
        control_plane_endpoint.to_string(),
        ".svc".to_string(),
        ".cluster.local".to_string(),
    ] {
        push(&needed);
    }
    entries.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(user: Option<&str>) -> String {
        effective_no_proxy(
            user,
            "192.168.0.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
            "10.43.0.0/16".parse().unwrap(),
            "192.168.0.2".parse().unwrap(),
        )
    }

    #[test]
    fn no_user_list_gives_cluster_needs_in_spec_order() {
        assert_eq!(
            eff(None),
            "localhost,127.0.0.0/8,192.168.0.0/24,10.42.0.0/16,10.43.0.0/16,192.168.0.2,.svc,.cluster.local"
        );
    }

    #[test]
    fn user_entries_first_and_not_repeated() {
        assert_eq!(
            eff(Some(" corp.example , LOCALHOST,,10.43.0.0/16")),
            "corp.example,LOCALHOST,10.43.0.0/16,127.0.0.0/8,192.168.0.0/24,10.42.0.0/16,192.168.0.2,.svc,.cluster.local"
        );
    }
}
