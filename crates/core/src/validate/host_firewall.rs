//! Rule group 11 (host): another firewall on this host drops the switch's forwarded traffic.
//! Docker's is handled by deploy (rules in `DOCKER-USER`, as Docker documents), so it is a
//! warning; any other is an error whose hint is the exact command that lets the traffic through.

use super::{Code, Context, Finding};
use crate::config::Config;
use crate::host_firewall::{fix_subnet, forward_drops, plan_traffic, switch_flows, FirewallTool};

/// edgenet's own tables, never judged here.
pub const OWN_TABLE_PREFIX: &str = "edgenet_";

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    // The walk and its fix name the switch's subnet: not one the config must not have.
    if super::refused(config, "Network.Ip4AddressPrefix")
        || super::refused(config, "Network.Ip4PrefixLength")
    {
        return;
    }
    let Some(facts) = ctx.facts() else { return };
    let Some(ruleset) = &facts.firewall.ruleset else {
        return;
    };
    let bridge = config.switch_name();
    // The walk needs the plan's addresses; a config that does not plan is reported elsewhere.
    let Ok(plan) = crate::plan::build(config, ctx) else {
        return;
    };
    let subnet = fix_subnet(&plan);
    let flows = switch_flows(&plan_traffic(&plan, &facts.firewall));
    let mut seen = Vec::new();
    for drop in forward_drops(ruleset, &flows, OWN_TABLE_PREFIX) {
        let chain = (drop.family.clone(), drop.table.clone(), drop.chain.clone());
        if seen.contains(&chain) {
            continue;
        }
        seen.push(chain);
        let path = "Edgenet.SwitchName";
        if !drop.certain {
            out.push(
                Finding::warning(
                    Code::HostFirewallDrops,
                    path,
                    format!("{drop}: if it does, the nodes on {bridge} are cut off"),
                )
                .hint(format!(
                    "make sure that rule does not match the switch's traffic, or let the switch through first: {}",
                    drop.fix(bridge, subnet.as_deref())
                )),
            );
        } else if let Some(below) =
            crate::host_firewall::docker_user_below(&facts.firewall, &drop, bridge)
        {
            // edgenet's accepts are there already: adding them again (the plain fix) would
            // not help; the same words as status and deploy. A rule above them that applies
            // to the switch's traffic too (it names the switch, no interface or a negated one)
            // is the admin's decision about the switch: deploy does not move its accepts above
            // it, and the nodes would be cut off, so deploy refuses it before changing
            // anything (an error, exit 1), as it refuses ufw's or firewalld's drops. Any other
            // is moved below edgenet's accepts by deploy: a warning.
            let aimed = facts
                .firewall
                .docker_user
                .as_deref()
                .and_then(|lines| crate::host_firewall::foreign_above_own(lines, None, bridge))
                .is_some_and(|(_, rule)| crate::host_firewall::aimed_at_switch(&rule, bridge));
            out.push(if aimed {
                Finding::error(
                    Code::HostFirewallDrops,
                    path,
                    format!("{drop}: the nodes on {bridge} would be cut off; {below}"),
                )
                .hint(format!(
                    "delete that rule from {} (or insert it again below edgenet's rules) if the nodes should get through; deploy refuses while it drops the switch's traffic",
                    crate::host_firewall::DOCKER_USER
                ))
            } else {
                Finding::warning(Code::HostFirewallDrops, path, format!("{drop}: {below}"))
                    .hint(below)
            });
        } else if let Some((pos, rule)) = crate::host_firewall::docker_user_drop_before_first_deploy(
            &facts.firewall,
            &drop,
            bridge,
        ) {
            // None of edgenet's accepts is there yet: deploy would insert them above a rule
            // that applies to the switch's traffic, a decision a later deploy leaves above
            // its accepts and refuses. The first deploy refuses it alike (exit 1).
            out.push(
                Finding::error(
                    Code::HostFirewallDrops,
                    path,
                    format!(
                        "{drop}: the nodes on {bridge} would be cut off; {}",
                        crate::host_firewall::docker_user_drop_words(pos, &rule, bridge)
                    ),
                )
                .hint(format!(
                    "delete that rule from {} if the nodes should get through; deploy refuses while it drops the switch's traffic",
                    crate::host_firewall::DOCKER_USER
                )),
            );
        } else if drop.tool == FirewallTool::Docker
            && drop.hook == "forward"
            && drop.family != "bridge"
        {
            out.push(
                Finding::warning(
                    Code::HostFirewallDrops,
                    path,
                    format!("{drop}: deploy lets the switch {bridge} through in Docker's DOCKER-USER chain"),
                )
                .hint(drop.fix(bridge, subnet.as_deref())),
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
                    drop.fix(bridge, subnet.as_deref())
                )),
            );
        }
    }
}
