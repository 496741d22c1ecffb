//! Rule group 12: the on-link address-free probe. The probe itself belongs to the scalable
//! deploy work; until it exists, `check` says plainly that it did not run.

use super::{Code, Finding};
use crate::config::Config;

pub(super) fn check(config: &Config, out: &mut Vec<Finding>) {
    if !config.is_scalable() {
        return;
    }
    let message = if config.network.skip_address_free_check {
        "the address-free probe (rule 12) was skipped: Network.SkipAddressFreeCheck is true"
    } else {
        "the address-free probe (rule 12) did not run: this edgenet version cannot probe the LAN yet, so node addresses, the control-plane endpoint and service IPs were not checked for other users"
    };
    out.push(Finding::notice(
        Code::ProbeNotRun,
        "Network.SkipAddressFreeCheck",
        message,
    ));
}
