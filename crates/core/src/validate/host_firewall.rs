//! Rule group 11 (host): another firewall on this host drops the switch's forwarded traffic.
//! Docker's is handled by deploy (rules in `DOCKER-USER`, as Docker documents), so it is a
//! warning; any other is an error whose hint is the exact command that lets the traffic through.

use super::{Code, Context, Finding};
use crate::config::Config;
use crate::host_firewall::{forward_drops, switch_flows, FirewallTool};

/// edgenet's own tables, never judged here.
pub const OWN_TABLE_PREFIX: &str = "edgenet_";

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let Some(facts) = ctx.facts() else { return };
    let Some(ruleset) = &facts.firewall.ruleset else {
        return;
    };
    let bridge = config.switch_name();
    let nat = !config.is_scalable() && !config.network.internet_disabled;
    let flows = switch_flows(bridge, nat, facts.firewall.bridge_nf_call_iptables);
    let mut seen = Vec::new();
    for drop in forward_drops(ruleset, &flows, OWN_TABLE_PREFIX) {
        let chain = (drop.family.clone(), drop.table.clone(), drop.chain.clone());
        if seen.contains(&chain) {
            continue;
        }
        seen.push(chain);
        let path = "Edgenet.SwitchName";
        if drop.tool == FirewallTool::Docker {
            out.push(
                Finding::warning(
                    Code::HostFirewallDrops,
                    path,
                    format!("{drop}: deploy lets the switch {bridge} through in Docker's DOCKER-USER chain"),
                )
                .hint(drop.fix(bridge)),
            );
        } else {
            out.push(
                Finding::error(
                    Code::HostFirewallDrops,
                    path,
                    format!("{drop}: the nodes on {bridge} would be cut off"),
                )
                .hint(format!(
                    "let the switch through first: {}",
                    drop.fix(bridge)
                )),
            );
        }
    }
}
