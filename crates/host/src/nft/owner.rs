//! Tables another process holds with the nf_tables `owner` flag (`NFT_TABLE_F_OWNER`): only the
//! netlink socket that made such a table may change or delete it (everyone else gets EPERM), and
//! the kernel deletes it when that socket closes. libnftables 1.0.6 cannot list one (its JSON
//! printer breaks, in-process it aborts), so they are found over netlink first, with the owner's
//! port id and, where /proc tells it, the process holding that socket.

use std::fmt;

use super::native;

/// An owned table and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOwner {
    pub family: String,
    pub table: String,
    /// The owning socket's netlink port id (`NFTA_TABLE_OWNER`), when the kernel says it.
    pub port_id: Option<u32>,
    /// The process holding that socket: pid and command name.
    pub process: Option<(u32, String)>,
}

impl TableOwner {
    /// Who holds it, in words: `owner: netlink port id N, held by pid P `comm``.
    pub fn who(&self) -> String {
        match (self.port_id, &self.process) {
            (Some(port), Some((pid, comm))) => {
                format!("owner: netlink port id {port}, held by pid {pid} `{comm}`")
            }
            (Some(port), None) => format!("owner: netlink port id {port}"),
            (None, _) => "the kernel does not say which socket owns it".to_string(),
        }
    }
}

impl fmt::Display for TableOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (family, table, who) = (&self.family, &self.table, self.who());
        if !table.starts_with("edgenet_") {
            // Not one of edgenet's names: a host firewall's (firewalld may own its table).
            return write!(
                f,
                "nftables table `{family} {table}` is owned by another process (nf_tables table \
                 flag `owner`; {who}), and the nftables library here (1.0.6) cannot list a \
                 ruleset holding such a table as JSON, so edgenet cannot read the host's \
                 firewall and stopped there; run edgenet again once that table is gone or with \
                 an nftables that lists it"
            );
        }
        write!(
            f,
            "nftables table `{family} {table}` is owned by another process (nf_tables table flag \
             `owner`; {who}): only that process may change or delete it (and nft 1.0.6 cannot list \
             it as JSON), so edgenet does not touch it. Stop that process or have it delete the \
             table (the kernel deletes an owned table when its owner closes the socket; \
             `nft delete table {family} {table}` from anywhere else is refused), then run edgenet \
             again"
        )
    }
}

/// nf_tables family names, by `NFPROTO_*` number.
fn family_name(id: u8) -> String {
    match id {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        other => format!("family {other}"),
    }
}

/// The first owned table of the calling thread's namespace (`only`: that table, if owned).
pub fn owned_table(only: Option<(&str, &str)>) -> std::io::Result<Option<TableOwner>> {
    let found = native::owned_tables()?
        .into_iter()
        .find_map(|(f, name, port)| {
            let family = family_name(f);
            let wanted = only.is_none_or(|(wf, wn)| wf == family && wn == name);
            wanted.then_some((family, name, port))
        });
    Ok(found.map(|(family, table, port_id)| TableOwner {
        family,
        table,
        port_id,
        process: port_id.and_then(process_of_port),
    }))
}

/// The process holding the NETLINK_NETFILTER socket bound to `port`: its inode from this
/// namespace's `/proc/thread-self/net/netlink`, then the process with an fd on that socket.
fn process_of_port(port: u32) -> Option<(u32, String)> {
    let table = std::fs::read_to_string("/proc/thread-self/net/netlink").ok()?;
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() >= 10 && cols[1] == "12" && cols[2] == port.to_string())
            .then(|| cols[9].to_string())
    })?;
    let target = format!("socket:[{inode}]");
    crate::procfs::pids().find_map(|pid| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
        });
        holds.then(|| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (pid, comm.trim().to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_table_the_owner_and_the_way_out() {
        let o = TableOwner {
            family: "ip".into(),
            table: "edgenet_c0ffee".into(),
            port_id: Some(1466),
            process: Some((1466, "nft".into())),
        };
        let t = o.to_string();
        for want in [
            "`ip edgenet_c0ffee`",
            "owned by another process",
            "port id 1466",
            "pid 1466 `nft`",
            "edgenet does not touch it",
            "Stop that process",
        ] {
            assert!(t.contains(want), "{want}: {t}");
        }
        let unknown = TableOwner {
            process: None,
            port_id: None,
            ..o
        };
        assert!(unknown.to_string().contains("does not say"));
        let foreign = TableOwner {
            family: "inet".into(),
            table: "firewalld".into(),
            ..unknown
        };
        let t = foreign.to_string();
        assert!(
            t.contains("`inet firewalld`") && !t.contains("Stop that process"),
            "{t}"
        );
    }
}
