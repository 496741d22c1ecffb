//! Policy rules (`ip rule`): only read here; the link-configuration move (`link_config`) takes
//! the rules that name a link along with its addresses and routes.

use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Failure, Netlink};

impl Netlink {
    /// The kernel's rule messages of every family.
    pub(crate) fn rule_messages(&mut self) -> Result<Vec<RuleMessage>, Failure> {
        let mut msg = RuleMessage::default();
        msg.header.family = AddressFamily::Unspec;
        let replies = self.dump(RouteNetlinkMessage::GetRule(msg))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => Some(r),
                _ => None,
            })
            .collect())
    }
}
