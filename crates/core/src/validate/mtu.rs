//! Rule group 7: MTU in range, and an external switch never above its adapter's MTU.

use super::{Code, Context, Finding};
use crate::config::Config;

pub const MIN_MTU: u32 = 1280;
pub const MAX_MTU: u32 = 9216;

pub(super) fn check(config: &Config, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    for (i, m) in config.machines.iter().enumerate() {
        let Some(mtu) = m.mtu else { continue };
        let path = format!("Machines[{i}].NetworkConnection.Mtu");
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            out.push(
                Finding::error(
                    Code::MtuRange,
                    &path,
                    format!("{path} is {mtu}; expected 0 (default) or {MIN_MTU} to {MAX_MTU}"),
                )
                .hint("use 0 for the default (1500 internal, the adapter's MTU external)"),
            );
            continue;
        }
        if !config.is_scalable() || ctx.this_machine(config) != Some(i) {
            continue;
        }
        let (Some(facts), Some(adapter)) = (ctx.facts(), m.adapter_name.as_deref()) else {
            continue;
        };
        let adapter = ctx.adapter_now(adapter);
        if let Some(link) = facts.link(adapter) {
            if mtu > link.mtu {
                out.push(
                    Finding::error(
                        Code::MtuAboveAdapter,
                        &path,
                        format!(
                            "{path} is {mtu}, above the MTU {} of adapter {adapter}",
                            link.mtu
                        ),
                    )
                    .hint(format!(
                        "use at most {} or 0 for the adapter's MTU",
                        link.mtu
                    )),
                );
            }
        }
    }
}
