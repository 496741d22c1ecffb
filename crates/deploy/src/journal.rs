//! The small interface drivers use to tell the orchestrator what they do: record an object
//! before creating it (so a crash leaves a trace), confirm it, report a change, pass a step.

use crate::error::DeployError;
use crate::state::ObjectKind;

pub trait Journal {
    /// Records (and persists) an object before it is created.
    fn will_create(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), DeployError>;
    /// [`Journal::will_create`] for an object about to be made now, also when an earlier run
    /// made it and it has gone since (a reboot, deleted by hand): pending again until it carries
    /// the mark, so that a run stopped in between leaves it to the next deploy and to remove as
    /// the deployment's half-made object, not as a stranger's.
    fn will_make(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), DeployError>;
    /// The object now exists.
    fn created(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Result<(), DeployError>;
    /// A change made to the host, in words (`set MTU 1400 on aksedgesw-int`).
    fn changed(&mut self, what: String);
    /// Something the run could not do and left as it is, with what to do by hand (a route
    /// the kernel refused): not a change, and said once, not on every redeploy.
    fn warn(&mut self, what: String) {
        tracing::warn!("{what}");
    }
    /// Called before a node's link is brought up: what must be in place before the node can
    /// send anything (the firewall, written on its own thread) is.
    fn before_traffic(&mut self) -> Result<(), DeployError> {
        Ok(())
    }
    /// Whether this run made network namespace `netns` ahead (recorded before, not marked
    /// yet), for the node's driver to take over; its error if making it failed.
    fn made_ahead(&mut self, _netns: &str) -> Result<bool, DeployError> {
        Ok(false)
    }
    /// A netlink socket inside network namespace `netns` that was opened beside making it
    /// ahead, if one was: the node's driver works through it instead of entering again.
    fn socket_inside(&mut self, _netns: &str) -> Option<edgenet_host::netlink::Netlink> {
        None
    }
    /// End of a named step (a failpoint).
    fn step(&mut self, name: &str) -> Result<(), DeployError>;
    /// Whether the state records the object (an earlier run of this deployment made it or
    /// was about to). An object that is not recorded is never adopted, whatever its name.
    fn recorded(&self, kind: ObjectKind, name: &str, netns: Option<&str>) -> bool;
    /// Whether the record is still pending: a run recorded the object, then stopped before it
    /// finished making it (made but not marked, as a kill leaves it). An object deleted and
    /// made again by someone else after a complete run has a record that is not pending.
    fn pending(&self, kind: ObjectKind, name: &str, netns: Option<&str>) -> bool;
}

/// Who owns a deployment's objects: the marks edgenet puts on every link it creates.
#[derive(Debug, Clone)]
pub struct Ownership {
    pub alias: String,
    pub group: u32,
}

impl Ownership {
    pub fn owns(&self, link: &edgenet_host::netlink::Link) -> bool {
        link.alias.as_deref() == Some(self.alias.as_str()) || link.group == self.group
    }
}
