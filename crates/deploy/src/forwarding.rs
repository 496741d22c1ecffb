//! IPv4 forwarding: deploy turns it on for a routing switch, and remove (or a plan that no
//! longer routes) puts it back, unless another user of it forwards through the host.

pub const IP_FORWARD: &str = "net.ipv4.ip_forward";

/// The kernel's id of this boot: what a sysctl record is valid for (see
/// [`crate::state::SysctlChange::boot_id`]).
pub use edgenet_host::sysctl::boot_id;

/// How [`other_forwarding_user`] names another edgenet deployment.
pub const ANOTHER_DEPLOYMENT: &str = "another edgenet deployment";

/// Where a deployment removed while another one in the same network namespace still routes
/// leaves the value forwarding had before edgenet (that one's state directory is unknown to
/// it): in /run, keyed by the namespace (gone at reboot, as the sysctl is) and headed by its
/// cookie (see [`edgenet_host::lock::read_namespace_note`]).
fn handover_path() -> Option<std::path::PathBuf> {
    edgenet_host::lock::namespace_note_path("ip_forward").ok()
}

/// Where deploy notes which deployments turned forwarding on, and its value before, outside
/// the state directory (in /run, one file per network namespace: gone at reboot, as the sysctl
/// is), so `remove --orphan` of such a deployment has evidence once its state directory is
/// lost. One line per deployment: `ID VALUE`, after the namespace's cookie: a note that a
/// deleted namespace of the same inode left is not this namespace's evidence (see
/// [`edgenet_host::lock::read_namespace_note`]).
fn enabled_by_path() -> Option<std::path::PathBuf> {
    edgenet_host::lock::namespace_note_path("ip_forward.by").ok()
}

/// The notes but `id`'s, and `id`'s value, if any.
fn notes_without(path: &std::path::Path, id: &str) -> (Vec<String>, Option<String>) {
    let text = edgenet_host::lock::read_namespace_note(path).unwrap_or_default();
    let mut others = Vec::new();
    let mut mine = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some((who, value)) if who == id => mine = Some(value.trim().to_string()),
            Some(_) => others.push(line.to_string()),
            None => {}
        }
    }
    (others, mine.filter(|v| !v.is_empty()))
}

fn write_notes(path: &std::path::Path, lines: &[String]) {
    let done = if lines.is_empty() {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    } else {
        edgenet_host::lock::write_namespace_note(path, &format!("{}\n", lines.join("\n")))
    };
    if let Err(e) = done {
        tracing::debug!("{}: {e}", path.display());
    }
}

/// Deploy of `id` turned forwarding on; it was `previous`. (Runs hold the namespace lock.)
pub fn note_enabled_by(id: &str, previous: &str) {
    let Some(path) = enabled_by_path() else {
        return;
    };
    let (mut lines, _) = notes_without(&path, id);
    lines.push(format!("{id} {previous}"));
    write_notes(&path, &lines);
}

/// The value forwarding had before deployment `id` turned it on, when [`note_enabled_by`]
/// noted it (since the last boot); the note is used up.
pub fn take_enabled_by(id: &str) -> Option<String> {
    let path = enabled_by_path()?;
    let (lines, mine) = notes_without(&path, id);
    if mine.is_some() {
        write_notes(&path, &lines);
    }
    mine
}

/// The note of [`note_enabled_by`] goes (the deployment is removed, or set forwarding back).
pub fn forget_enabled_by(id: &str) {
    let _ = take_enabled_by(id);
}

/// Leaves `previous` for the last deployment of this namespace (the first hand-over wins:
/// it holds the value from before any edgenet deployment).
pub fn hand_over(previous: &str) {
    let Some(path) = handover_path() else { return };
    if edgenet_host::lock::read_namespace_note(&path).is_some() {
        return;
    }
    let written = edgenet_host::lock::write_namespace_note(&path, previous);
    if let Err(e) = written {
        tracing::debug!("{}: {e}", path.display());
    }
}

/// At remove, in a deployment that did not turn forwarding on itself: the value handed over
/// by one removed before, put back when nobody else forwards any more and forwarding is still
/// on. What it did, in words.
pub fn restore_handed_over(own_table: &str) -> Option<String> {
    let path = handover_path()?;
    let previous = edgenet_host::lock::read_namespace_note(&path)?;
    let previous = previous.trim();
    if other_forwarding_user(own_table).is_some() {
        return None;
    }
    let live = edgenet_host::sysctl::read(IP_FORWARD).ok()?;
    let _ = std::fs::remove_file(&path);
    if live.trim() != "1" || edgenet_host::sysctl::write(IP_FORWARD, previous).is_err() {
        return None;
    }
    Some(format!(
        "{IP_FORWARD} to {previous} (its value before the first edgenet deployment in this network namespace)"
    ))
}

/// Another user of IPv4 forwarding on the host, in words: Docker, a non-empty forward or NAT
/// chain of a table that is not edgenet's, or another edgenet deployment's table (one beside
/// this one in the same namespace; its state directory is unknown here, its table is not).
/// `own_table` is this deployment's table, never counted. `None` when the ruleset cannot be
/// read.
pub fn other_forwarding_user(own_table: &str) -> Option<String> {
    other_forwarding_user_besides(own_table, &[])
}

/// [`other_forwarding_user`], not counting `idle`: the users that were there while forwarding
/// was off when this deployment turned it on ([`forwarding_users_now`], recorded with the
/// change): with forwarding off they forwarded nothing, so they do not need it now (B23 F3,
/// F5). One that came after still counts.
pub fn other_forwarding_user_besides(own_table: &str, idle: &[String]) -> Option<String> {
    let ruleset = edgenet_host::facts::host_ruleset()?;
    // Asked when forwarding is about to be put back (remove, or a plan that no longer
    // routes): the note is used up (a later deploy that turns forwarding on notes again).
    let docker_counts = docker_idle_path(own_table).is_none_or(|p| {
        let noted = edgenet_host::lock::read_namespace_note(&p).is_some();
        let _ = std::fs::remove_file(p);
        !noted
    });
    forwarding_users_in(&ruleset, own_table, docker_counts)
        .into_iter()
        .find(|user| !idle.contains(user))
}

/// Every user of forwarding [`other_forwarding_user`] would name, as it names them: asked by
/// deploy as it turns forwarding on (it was off), so remove can tell them from later ones.
pub fn forwarding_users_now(own_table: &str) -> Vec<String> {
    edgenet_host::facts::host_ruleset()
        .map(|r| forwarding_users_in(&r, own_table, true))
        .unwrap_or_default()
        .into_iter()
        // Another deployment beside this one keeps its own part (the hand-over, see
        // `hand_over`): never taken for idle.
        .filter(|u| !u.starts_with(ANOTHER_DEPLOYMENT))
        .collect()
}

/// Where deploy notes that Docker's chains were there while forwarding was off when it turned
/// forwarding on: in /run, keyed by the namespace and the deployment (gone at reboot, as the
/// sysctl is), headed by the namespace's cookie.
fn docker_idle_path(own_table: &str) -> Option<std::path::PathBuf> {
    edgenet_host::lock::namespace_note_path(&format!("{own_table}.docker-not-forwarding")).ok()
}

/// Docker's own chains (not `DOCKER-USER`, which edgenet prepares itself when Docker is only
/// installed): Docker has started in this namespace.
pub fn docker_started(ruleset: &serde_json::Value) -> bool {
    ruleset["nftables"].as_array().is_some_and(|items| {
        items.iter().any(|i| {
            let c = &i["chain"];
            c["family"] == "ip"
                && c["table"] == "filter"
                && matches!(
                    c["name"].as_str(),
                    Some("DOCKER" | "DOCKER-FORWARD" | "DOCKER-ISOLATION-STAGE-1")
                )
        })
    })
}

/// Called when deploy turns forwarding on (it was off). Docker turns forwarding on itself
/// when it starts and needs it, so a Docker already started while it was off was not
/// forwarding (B19 D11): `remove` then puts back the value from before, Docker or not. A
/// Docker that starts after this deploy (at boot it often does) is not noted, and remove
/// leaves forwarding on for it.
pub fn note_docker_at_enable(own_table: &str) {
    let Some(path) = docker_idle_path(own_table) else {
        return;
    };
    let started = edgenet_host::facts::host_ruleset().is_some_and(|r| docker_started(&r));
    let result = if started {
        edgenet_host::lock::write_namespace_note(&path, "0\n")
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    };
    if let Err(e) = result {
        tracing::debug!("{}: {e}", path.display());
    }
}

pub fn forwarding_user_of(ruleset: &serde_json::Value, own_table: &str) -> Option<String> {
    forwarding_user_in(ruleset, own_table, true)
}

/// `docker_counts`: `false` when Docker was not forwarding when this deployment turned
/// forwarding on (see [`note_docker_at_enable`]).
fn forwarding_user_in(
    ruleset: &serde_json::Value,
    own_table: &str,
    docker_counts: bool,
) -> Option<String> {
    forwarding_users_in(ruleset, own_table, docker_counts)
        .into_iter()
        .next()
}

/// Whether a rule (of `nft -j`) can let a packet through or translate it: a verdict that
/// accepts or hands it on (`accept`, `jump`, `goto`), a NAT statement, or a statement nft
/// cannot show (`xt`: an iptables target). A rule that only counts, logs, drops or returns is
/// accounting or filtering, not routing (B23 F3). A rule shown without its statements counts.
fn rule_passes(rule: &serde_json::Value) -> bool {
    let Some(exprs) = rule["expr"].as_array() else {
        return true;
    };
    exprs.iter().any(|e| {
        e.as_object().is_some_and(|o| {
            o.keys().any(|k| {
                matches!(
                    k.as_str(),
                    "accept" | "jump" | "goto" | "masquerade" | "snat" | "dnat" | "redirect" | "xt"
                )
            })
        })
    })
}

/// Every user of forwarding in `ruleset`, in words (see [`other_forwarding_user`]).
fn forwarding_users_in(
    ruleset: &serde_json::Value,
    own_table: &str,
    docker_counts: bool,
) -> Vec<String> {
    let mut users = Vec::new();
    // Docker that has started (its own chains are there): `DOCKER-USER` alone is a chain an
    // admin or edgenet prepared for an installed Docker that is not running (B23 F5).
    if docker_counts && docker_started(ruleset) {
        users.push("Docker (chain DOCKER-USER in table ip filter)".into());
    }
    let Some(items) = ruleset["nftables"].as_array() else {
        return users;
    };
    let has_rules = |family: &str, table: &str, chain: &str| {
        items.iter().any(|i| {
            let r = &i["rule"];
            r["family"] == family && r["table"] == table && r["chain"] == chain && rule_passes(r)
        })
    };
    users.extend(items.iter().filter_map(|i| {
        let c = &i["chain"];
        let (family, table, name) = (
            c["family"].as_str()?,
            c["table"].as_str()?,
            c["name"].as_str()?,
        );
        if table == own_table || !matches!(family, "ip" | "inet") {
            return None;
        }
        // Docker's own tables (iptables-nft's `ip filter` and `ip nat`) were there, started,
        // while forwarding was off: they were not forwarding either.
        if !docker_counts && family == "ip" && matches!(table, "filter" | "nat") {
            return None;
        }
        let forwards = c["hook"] == "forward" || (c["type"] == "nat" && c["hook"] == "postrouting");
        if !(forwards && has_rules(family, table, name)) {
            return None;
        }
        Some(if table.starts_with(crate::firewall::TABLE_PREFIX) {
            format!("{ANOTHER_DEPLOYMENT} (nftables table {family} {table})")
        } else {
            format!("chain {name} of table {family} {table}")
        })
    }));
    users
}

#[cfg(test)]
mod tests {
    use super::forwarding_user_of;
    use serde_json::json;

    fn chain(family: &str, table: &str, name: &str, hook: &str, kind: &str) -> serde_json::Value {
        json!({"chain": {"family": family, "table": table, "name": name, "hook": hook, "type": kind}})
    }

    fn rule(family: &str, table: &str, chain: &str) -> serde_json::Value {
        json!({"rule": {"family": family, "table": table, "chain": chain}})
    }

    #[test]
    fn only_another_tables_forward_or_nat_rules_count_as_a_forwarding_user() {
        let ours = json!({"nftables": [
            chain("ip", "edgenet_0a1b2c", "forward", "forward", "filter"),
            rule("ip", "edgenet_0a1b2c", "forward"),
        ]});
        assert_eq!(forwarding_user_of(&ours, "edgenet_0a1b2c"), None);
        // Another deployment beside this one in the same namespace routes through it too.
        assert_eq!(
            forwarding_user_of(&ours, "edgenet_ffffff").as_deref(),
            Some("another edgenet deployment (nftables table ip edgenet_0a1b2c)")
        );
        let empty = json!({"nftables": [chain("inet", "fw", "fwd", "forward", "filter")]});
        assert_eq!(forwarding_user_of(&empty, "edgenet_0a1b2c"), None);
        let input_only = json!({"nftables": [
            chain("inet", "fw", "in", "input", "filter"),
            rule("inet", "fw", "in"),
        ]});
        assert_eq!(forwarding_user_of(&input_only, "edgenet_0a1b2c"), None);
        let router = json!({"nftables": [
            chain("ip", "nat", "POSTROUTING", "postrouting", "nat"),
            rule("ip", "nat", "POSTROUTING"),
        ]});
        assert!(forwarding_user_of(&router, "edgenet_0a1b2c")
            .unwrap()
            .contains("ip nat"));
        let docker = json!({"nftables": [
            chain("ip", "filter", "DOCKER", "", ""),
            chain("ip", "filter", "DOCKER-USER", "", ""),
        ]});
        assert!(forwarding_user_of(&docker, "edgenet_0a1b2c")
            .unwrap()
            .contains("Docker"));
        // DOCKER-USER alone: a chain prepared for a Docker that has not started (B23 F5).
        let prepared = json!({"nftables": [chain("ip", "filter", "DOCKER-USER", "", "")]});
        assert_eq!(forwarding_user_of(&prepared, "edgenet_0a1b2c"), None);
    }

    /// B23 F3: a forward chain whose rules only count, log or drop routes nothing.
    #[test]
    fn a_chain_that_only_counts_or_drops_is_not_a_forwarding_user() {
        let with = |expr: serde_json::Value| {
            json!({"nftables": [
                chain("inet", "admin", "fw", "forward", "filter"),
                {"rule": {"family": "inet", "table": "admin", "chain": "fw", "expr": expr}},
            ]})
        };
        for expr in [
            json!([{"counter": {"packets": 0, "bytes": 0}}]),
            json!([{"log": {"prefix": "fwd "}}, {"counter": null}]),
            json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth9"}}, {"drop": null}]),
            json!([{"return": null}]),
        ] {
            assert_eq!(
                forwarding_user_of(&with(expr.clone()), "edgenet_0a1b2c"),
                None,
                "{expr}"
            );
        }
        for expr in [
            json!([{"counter": null}, {"accept": null}]),
            json!([{"jump": {"target": "other"}}]),
            json!([{"masquerade": null}]),
            json!([{"xt": {"type": "target", "name": "TCPMSS"}}]),
        ] {
            assert_eq!(
                forwarding_user_of(&with(expr.clone()), "edgenet_0a1b2c").as_deref(),
                Some("chain fw of table inet admin"),
                "{expr}"
            );
        }
    }

    #[test]
    fn a_docker_that_was_not_forwarding_at_deploy_does_not_keep_forwarding_on() {
        let docker = json!({"nftables": [
            chain("ip", "filter", "DOCKER", "", ""),
            chain("ip", "filter", "DOCKER-USER", "", ""),
            chain("ip", "filter", "FORWARD", "forward", "filter"),
            rule("ip", "filter", "FORWARD"),
            chain("ip", "nat", "POSTROUTING", "postrouting", "nat"),
            rule("ip", "nat", "POSTROUTING"),
        ]});
        assert!(super::docker_started(&docker));
        assert_eq!(
            super::forwarding_user_in(&docker, "edgenet_0a1b2c", false),
            None
        );
        assert!(super::forwarding_user_in(&docker, "edgenet_0a1b2c", true).is_some());
        // Only DOCKER-USER (edgenet prepares it for an installed Docker): not started.
        let prepared = json!({"nftables": [chain("ip", "filter", "DOCKER-USER", "", "")]});
        assert!(!super::docker_started(&prepared));
    }
}
