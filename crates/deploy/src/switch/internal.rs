//! Where the bridge is made: the internal switch `aksedgesw-int` with the host's `.1`.

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::SwitchPlan;
use edgenet_host::netlink::{BridgeSpec, Netlink};

use super::{SwitchDriver, SwitchLive};
use crate::error::DeployError;
use crate::journal::{Journal, Ownership};
use crate::state::ObjectKind;

pub struct InternalSwitch;

impl SwitchDriver for InternalSwitch {
    fn ensure(
        &self,
        nl: &mut Netlink,
        plan: &SwitchPlan,
        mac: MacAddr,
        own: &Ownership,
        j: &mut dyn Journal,
    ) -> Result<(), DeployError> {
        let name = plan.name.as_str();
        let mtu = plan.mtu.unwrap_or(edgenet_core::plan::DEFAULT_INTERNAL_MTU);
        match nl.link(name)? {
            None => {
                j.will_create(ObjectKind::Bridge, name, None)?;
                nl.create_bridge(&BridgeSpec {
                    name,
                    mtu: Some(mtu),
                    mac: Some(mac),
                    group: Some(own.group),
                })?;
                nl.set_alias(name, &own.alias)?;
                nl.set_up(name, true)?;
                j.created(ObjectKind::Bridge, name, None)?;
                j.changed(format!("created bridge {name} (MTU {mtu})"));
            }
            Some(link) => {
                if !own.owns(&link) || link.kind.as_deref() != Some("bridge") {
                    let what = link.kind.clone().unwrap_or_else(|| "device".into());
                    let hint = match link.alias.as_deref() {
                        Some(mark) if mark.starts_with("edgenet:") => format!(
                            "{name} is a {what} left by another edgenet deployment (mark {mark}); run `edgenet remove` with that deployment's --state-dir, or set Edgenet.SwitchName to another name"
                        ),
                        _ => format!(
                            "{name} is a {what} edgenet did not create; set Edgenet.SwitchName to a name no interface has"
                        ),
                    };
                    return Err(DeployError::Foreign {
                        what: "interface",
                        name: name.to_string(),
                        hint,
                    });
                }
                if link.alias.as_deref() != Some(own.alias.as_str()) {
                    nl.set_alias(name, &own.alias)?;
                }
                if link.mtu != mtu {
                    nl.set_mtu(name, mtu)?;
                    j.changed(format!("set MTU {mtu} on {name} (was {})", link.mtu));
                }
                if link.mac != Some(mac) {
                    nl.set_mac(name, mac)?;
                    j.changed(format!("set MAC {mac} on {name}"));
                }
                if !link.up {
                    nl.set_up(name, true)?;
                    j.changed(format!("brought {name} up"));
                }
            }
        }
        j.step("switch")?;

        let wanted = plan
            .host_address
            .expect("an internal switch has a host address");
        let present: Vec<_> = nl
            .addresses()?
            .into_iter()
            .filter(|a| a.link == name)
            .map(|a| a.address)
            .collect();
        for stale in present.iter().filter(|a| **a != wanted) {
            nl.del_address(name, *stale)?;
            j.changed(format!("removed address {stale} from {name}"));
        }
        if !present.contains(&wanted) {
            nl.add_address(name, wanted)?;
            j.changed(format!("added address {wanted} to {name}"));
        }
        j.step("switch-address")?;
        Ok(())
    }

    fn remove(&self, nl: &mut Netlink, name: &str, own: &Ownership) -> Result<bool, DeployError> {
        match nl.link(name)? {
            Some(link) if own.owns(&link) => Ok(nl.delete_link(name)?),
            Some(_) => Err(DeployError::Foreign {
                what: "interface",
                name: name.to_string(),
                hint: "it no longer carries this deployment's mark, so remove leaves it in place"
                    .into(),
            }),
            None => Ok(false),
        }
    }

    fn live(
        &self,
        nl: &mut Netlink,
        name: &str,
        own: &Ownership,
    ) -> Result<SwitchLive, DeployError> {
        let link = nl.link(name)?;
        let addresses = match &link {
            Some(_) => nl
                .addresses()?
                .into_iter()
                .filter(|a| a.link == name)
                .map(|a| a.address.to_string())
                .collect(),
            None => Vec::new(),
        };
        Ok(SwitchLive {
            name: name.to_string(),
            present: link.is_some(),
            ours: link.as_ref().is_some_and(|l| own.owns(l)),
            up: link.as_ref().is_some_and(|l| l.up),
            mtu: link.as_ref().map(|l| l.mtu),
            mac: link.as_ref().and_then(|l| l.mac.map(|m| m.to_string())),
            addresses,
        })
    }
}
