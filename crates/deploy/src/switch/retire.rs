//! Switch objects the records keep that the plan no longer has: a switch of another name or
//! kind, or an external switch whose adapter the plan changed. A redeploy tears them down
//! through the driver that made them (the external one gives its adapter back first, from its
//! recorded snapshot); `status` reports the same list as drift, so both always agree. An
//! adapter renamed since (`ip link set up0 name enp7s0`) is found by its recorded MAC, and a
//! plan naming the new name adopts the rename instead.

use edgenet_core::plan::{SwitchKind, SwitchPlan};

use super::adapter::{find_adapter, AdapterRecord};
use super::external::ExternalSwitch;
use super::SwitchDriver;
use crate::error::DeployError;
use crate::journal::Ownership;
use crate::kernel::Kernel;
use crate::state::{DeploymentState, KernelObject, ObjectKind, ObjectStatus};

/// What the records hold that the plan no longer wants.
#[derive(Debug, Default)]
pub struct Stale {
    /// Adapters renamed since, that the plan names by their new name: (recorded, now).
    pub renamed: Vec<(String, String)>,
    /// Adapter records to give back: (record key, adapter's name now if found, bridge).
    pub adapters: Vec<(String, Option<String>, String)>,
    /// Bridge records of switches not in the plan.
    pub bridges: Vec<KernelObject>,
}

impl Stale {
    pub fn is_empty(&self) -> bool {
        self.renamed.is_empty() && self.adapters.is_empty() && self.bridges.is_empty()
    }

    /// One line per object, for `status`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (old, now) in &self.renamed {
            out.push(format!(
                "adapter {old} is now called {now} (found by its recorded MAC): run deploy to follow the rename"
            ));
        }
        for (key, now, bridge) in &self.adapters {
            out.push(match now {
                Some(now) => format!(
                    "adapter {now} was taken over by switch {bridge}, which is no longer in the plan: run deploy to give it back (or remove)"
                ),
                None => format!(
                    "adapter {key} of switch {bridge} (no longer in the plan) is gone: nothing can take its configuration back"
                ),
            });
        }
        for b in &self.bridges {
            out.push(if b.status == ObjectStatus::Adopted {
                format!(
                    "bridge {} (the user's) is no longer in the plan: deploy stops using it and leaves it as it is",
                    b.name
                )
            } else {
                format!(
                    "bridge {} (made by this deployment) is no longer in the plan: run deploy to remove it",
                    b.name
                )
            });
        }
        out
    }
}

/// The switch objects of `state` that `plan`'s switch does not use. `earlier` are the switches
/// of the plans recorded before this one (a bridge of the same name but another kind is not
/// the planned switch either).
pub fn find_stale(
    k: &mut dyn Kernel,
    state: &DeploymentState,
    plan: &SwitchPlan,
    earlier: &[SwitchPlan],
    own: &Ownership,
) -> Result<Stale, DeployError> {
    let mut stale = Stale::default();
    let mut retired_bridges: Vec<String> = Vec::new();
    for o in &state.objects {
        let Some(record) = AdapterRecord::of(o) else {
            continue;
        };
        let now = find_adapter(k, &record.adapter, &record.bridge, own)?;
        let same_switch = plan.kind == SwitchKind::External && plan.name == record.bridge;
        let planned = plan.adapter.as_deref();
        let planned_missing = match planned {
            Some(p) => k.link(p)?.is_none(),
            None => false,
        };
        if same_switch {
            match now.as_deref() {
                // The plan names the adapter by its old name (a rollback to the plan before a
                // rename, or a config not updated yet): the renamed one is still the switch's
                // (see [`renamed_adapter`]), never given back.
                Some(_) if planned_missing => continue,
                Some(n) if Some(n) == planned && n == record.adapter.name => continue,
                Some(n) if Some(n) == planned => {
                    stale.renamed.push((o.name.clone(), n.to_string()));
                    continue;
                }
                // Gone, or renamed while the plan still names the old name: the switch's
                // ensure says what is wrong.
                _ if planned == Some(record.adapter.name.as_str()) => continue,
                _ => {}
            }
        }
        stale
            .adapters
            .push((o.name.clone(), now, record.bridge.clone()));
        retired_bridges.push(record.bridge.clone());
    }
    for o in &state.objects {
        if o.kind != ObjectKind::Bridge || o.netns.is_some() {
            continue;
        }
        let other_kind = earlier
            .iter()
            .any(|s| s.name == o.name && s.kind != plan.kind);
        if o.name != plan.name || other_kind || retired_bridges.contains(&o.name) {
            stale.bridges.push(o.clone());
        }
    }
    Ok(stale)
}

/// Tears down what [`find_stale`] found: renamed adapters' records follow the rename; stale
/// adapters get the host's configuration back through the external driver, with their recorded
/// snapshot; then stale bridges go (a user's bridge is only forgotten). Each record is forgotten
/// once its object is dealt with. Returns the changes made.
pub fn retire(
    k: &mut dyn Kernel,
    state: &mut DeploymentState,
    stale: &Stale,
    own: &Ownership,
) -> Result<Vec<String>, DeployError> {
    let mut changes = Vec::new();
    for (old, now) in &stale.renamed {
        let Some(mut record) = AdapterRecord::in_state(state, old) else {
            continue;
        };
        let status = state
            .object(ObjectKind::Adapter, old, None)
            .map(|o| o.status)
            .unwrap_or(ObjectStatus::Adopted);
        record.adapter.name = now.clone();
        state.forget_object(ObjectKind::Adapter, old, None);
        record.store(state);
        state.record_object(ObjectKind::Adapter, now, None).status = status;
        changes.push(format!(
            "adapter {old} is now called {now} (found by its MAC); its record follows it"
        ));
    }
    let mut gave_back: Vec<(String, String)> = Vec::new();
    for (key, now, bridge) in &stale.adapters {
        let Some(record) = AdapterRecord::in_state(state, key) else {
            continue;
        };
        if now.is_none() {
            return Err(DeployError::missing(
                "adapter",
                key,
                &format!(
                    "was taken over by switch {bridge} (no longer in the plan) and is gone, so the host's configuration cannot go back to it; run `edgenet remove` first"
                ),
            ));
        }
        let driver = ExternalSwitch::from_record(&record, state);
        let done = driver.release(k, own)?;
        for line in &done {
            tracing::info!("{line}");
        }
        state.forget_object(ObjectKind::Adapter, key, None);
        gave_back.push((
            record.bridge.clone(),
            now.clone().unwrap_or_else(|| key.clone()),
        ));
        // What could not go back, and what another NIC has now (left there), are said.
        changes.extend(
            done.into_iter()
                .filter(|l| l.starts_with("could not") || l.starts_with("left ")),
        );
    }
    for b in &stale.bridges {
        let adapter = gave_back
            .iter()
            .find(|(br, _)| *br == b.name)
            .map(|(_, a)| format!(" (gave adapter {a} back)"))
            .unwrap_or_default();
        if b.status == ObjectStatus::Adopted {
            changes.push(format!(
                "stopped using the user's bridge {}{adapter} (left as it is)",
                b.name
            ));
        } else if super::bridge::delete_bridge(k, &b.name, own)? {
            changes.push(format!("removed switch {}{adapter}", b.name));
        } else if !adapter.is_empty() {
            changes.push(format!("switch {} was gone already{adapter}", b.name));
        }
        state.forget_object(ObjectKind::Bridge, &b.name, None);
    }
    // Adapters given back whose bridge was not recorded (a crash before its record).
    for (bridge, a) in &gave_back {
        if !stale.bridges.iter().any(|b| b.name == *bridge) {
            changes.push(format!("gave adapter {a} back from switch {bridge}"));
        }
    }
    Ok(changes)
}

/// The adapter of `plan`'s external switch when the plan names it by a name no link has any
/// more but the records find it by its MAC under a new one: the switch keeps using it (a
/// rollback to the plan before a rename must leave the deployment as it was).
pub fn renamed_adapter(
    k: &mut dyn Kernel,
    state: &DeploymentState,
    plan: &SwitchPlan,
    own: &Ownership,
) -> Result<Option<String>, DeployError> {
    let (SwitchKind::External, Some(planned)) = (plan.kind, plan.adapter.as_deref()) else {
        return Ok(None);
    };
    if k.link(planned)?.is_some() {
        return Ok(None);
    }
    for record in state.objects.iter().filter_map(AdapterRecord::of) {
        if record.bridge == plan.name {
            if let Some(now) = find_adapter(k, &record.adapter, &record.bridge, own)? {
                return Ok(Some(now));
            }
        }
    }
    Ok(None)
}
