//! What the state file holds: the deployment's id, phase, plans, generated MACs, and every
//! kernel object and sysctl it created or changed (pure data; [`super::store`] persists it).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::Plan;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the state file layout. Bump it when a field is renamed, removed or changes
/// meaning, or when a new field must not be silently dropped by an older edgenet; an edgenet
/// refuses a state newer than it understands rather than rewriting it without those fields.
pub const SCHEMA_VERSION: u32 = 1;

/// Journal entries kept; older ones are dropped so the file stays small.
const JOURNAL_LIMIT: usize = 200;

/// The short random id of a deployment, made once and used in kernel object names (nft table
/// `edgenet_<id>`, interface names), so two state directories on one host never collide.
/// Six hex digits: 24 bits are plenty for a handful of deployments per host, and the id must
/// fit into 15-character interface names next to a prefix and suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeploymentId(String);

impl DeploymentId {
    pub const LEN: usize = 6;

    pub fn random() -> Self {
        let bytes: [u8; Self::LEN / 2] = rand::random();
        DeploymentId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DeploymentId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(DeploymentId(s.to_string()))
        } else {
            Err(format!(
                "deployment id `{s}` is not {} lower-case hex digits",
                Self::LEN
            ))
        }
    }
}

impl TryFrom<String> for DeploymentId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeploymentId> for String {
    fn from(id: DeploymentId) -> String {
        id.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a deployment is in its life. A state found in `Deploying` or `Removing` by the next
/// run means that run was interrupted: deploy resumes (it is a reconcile), remove starts over
/// (it is idempotent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// State created, nothing done yet.
    New,
    Deploying,
    Deployed,
    Removing,
}

/// Kinds of kernel (and host) objects edgenet creates or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    Netns,
    Bridge,
    Veth,
    Tap,
    NftTable,
    /// A physical adapter bound to an external switch (status `Adopted`, with its addresses
    /// and routes from before in `restore`).
    Adapter,
    /// A rule edgenet added to another tool's chain (Docker's `DOCKER-USER`): name
    /// `CHAIN RULE-SPEC` as iptables takes it.
    FirewallRule,
    /// A `vm` node's QEMU and its files: name = the VM's directory (pidfile, QMP socket).
    Vm,
}

/// How edgenet stands to an object it recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectStatus {
    /// Recorded before creating it: it may or may not exist. Remove deletes it if it exists
    /// and carries edgenet's mark.
    Pending,
    /// edgenet created it; remove deletes it.
    Created,
    /// It existed before and edgenet changed it (e.g. an adapter enslaved to an external
    /// switch); remove restores it from `restore` and never deletes it.
    Adopted,
}

/// One kernel object, identified by kind, name and network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelObject {
    pub kind: ObjectKind,
    pub name: String,
    /// The named network namespace it lives in; `None` = the namespace edgenet runs in.
    #[serde(default)]
    pub netns: Option<String>,
    pub status: ObjectStatus,
    /// Driver-specific data needed to undo an adoption (e.g. the adapter's addresses and
    /// routes before they moved to the bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Value>,
}

impl KernelObject {
    pub fn new(kind: ObjectKind, name: impl Into<String>, netns: Option<&str>) -> Self {
        KernelObject {
            kind,
            name: name.into(),
            netns: netns.map(String::from),
            status: ObjectStatus::Pending,
            restore: None,
        }
    }

    fn same(&self, kind: ObjectKind, name: &str, netns: Option<&str>) -> bool {
        self.kind == kind && self.name == name && self.netns.as_deref() == netns
    }
}

/// A sysctl edgenet changed, with the value to put back on remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlChange {
    /// e.g. `net.ipv4.ip_forward`.
    pub key: String,
    #[serde(default)]
    pub netns: Option<String>,
    pub previous: String,
    pub value: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) of the boot the change was
    /// made in: a sysctl does not survive a reboot, so neither does what edgenet found before
    /// it (a record of an earlier boot is dropped by deploy and never put back by remove).
    /// `None` in records of an earlier edgenet: taken for this boot's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The cookie (`SO_NETNS_COOKIE`, never reused until the next boot) of the network
    /// namespace the change was made in, for a change in the deployment's own namespace
    /// (`netns` `None`): a namespace made anew in the same boot (a container restarted) starts
    /// with its sysctls at their defaults, so what edgenet found in the old one is not put back
    /// in it (B23b F9). `None` in records of an earlier edgenet or on a kernel before 5.14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
    /// Forwarding only: the other users of forwarding (as `forwarding` names them: a forward
    /// chain, Docker) that were there while it was off when deploy turned it on. They forwarded
    /// nothing then, so remove does not keep forwarding on for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle_users: Vec<String>,
}

impl SysctlChange {
    /// Recorded in another boot than `boot` (this one's: [`crate::forwarding::boot_id`]).
    pub fn of_earlier_boot(&self, boot: Option<&str>) -> bool {
        matches!((self.boot_id.as_deref(), boot), (Some(then), Some(now)) if then != now)
    }

    /// Recorded in another boot than `boot`, or in another network namespace than the one
    /// whose cookie is `cookie` (this one's: [`edgenet_host::lock::network_namespace_cookie`]):
    /// either way the value edgenet found went with it, and is not put back.
    pub fn of_another_boot_or_namespace(&self, boot: Option<&str>, cookie: Option<u64>) -> bool {
        self.of_earlier_boot(boot)
            || matches!((self.netns_cookie, cookie), (Some(then), Some(now)) if then != now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub event: String,
}

/// Everything edgenet remembers about one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentState {
    pub schema_version: u32,
    pub deployment_id: DeploymentId,
    pub phase: Phase,
    /// The plan of the last deploy that completed.
    #[serde(default)]
    pub applied_plan: Option<Plan>,
    /// The plan of a deploy in progress (or interrupted).
    #[serde(default)]
    pub pending_plan: Option<Plan>,
    /// The automatically chosen switch subnet, kept so later deploys do not move it.
    #[serde(default)]
    pub auto_subnet: Option<Ipv4Net>,
    /// Generated MACs by node name, kept until remove (SPEC §3.3).
    #[serde(default)]
    pub macs: BTreeMap<String, MacAddr>,
    /// Kernel objects in the order they were recorded; remove walks them backwards.
    #[serde(default)]
    pub objects: Vec<KernelObject>,
    #[serde(default)]
    pub sysctls: Vec<SysctlChange>,
    /// The deployment config of the last deploy, as written (`scale-config` builds the config
    /// of a new machine from its network section). Kept in `config.json` beside the state, not
    /// in `state.json` nor in the journal's lines: a scalable cluster's config lists every
    /// machine, and each record carrying it made a cluster's deploys cost N² bytes. Read from
    /// `state.json` when an earlier edgenet wrote it there.
    /// Shared, not copied: the records are cloned and compared at every journal line.
    #[serde(
        default,
        skip_serializing,
        deserialize_with = "config_of_earlier_state"
    )]
    pub config: Option<Arc<Value>>,
    /// Recent events, newest last, for `doctor` and for finding out what an interrupted run did.
    #[serde(default)]
    pub journal: Vec<JournalEntry>,
    /// The records were lost (an empty or missing `state.json` beside a good `identity.json`)
    /// and rebuilt from the marks of the objects in the kernel: the values sysctls had before
    /// edgenet changed them are unknown. Kept until remove.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub records_rebuilt: bool,
    /// The network namespace the deployment lives in (device and inode of its nsfs file) as
    /// the last deploy saw it: deploy, remove and status run from another namespace while that
    /// one is still there are refused, instead of taking its objects for gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<(u64, u64)>,
    /// The machine name the deployment was made with, from `identity.json`, when the records
    /// (and the plans that name it) were lost: a deploy not given `--machine-name` keeps it
    /// instead of renaming the nodes to the host name (B23b F5). Not saved in `state.json` (its
    /// plans name the machine); `None` whenever a plan is there.
    #[serde(skip)]
    pub recovered_machine_name: Option<String>,
}

/// The `config` an earlier edgenet kept in `state.json`.
fn config_of_earlier_state<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Arc<Value>>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.map(Arc::new))
}

impl DeploymentState {
    /// The machine name the deployment was made with: its last plan's (completed, else the
    /// one in progress), else the one `identity.json` kept when the records were lost.
    pub fn machine_name(&self) -> Option<&str> {
        self.applied_plan
            .as_ref()
            .or(self.pending_plan.as_ref())
            .map(|p| p.machine.name.as_str())
            .or(self.recovered_machine_name.as_deref())
    }

    pub fn new(deployment_id: DeploymentId) -> Self {
        let mut state = DeploymentState {
            schema_version: SCHEMA_VERSION,
            deployment_id,
            phase: Phase::New,
            applied_plan: None,
            pending_plan: None,
            auto_subnet: None,
            macs: BTreeMap::new(),
            objects: Vec::new(),
            sysctls: Vec::new(),
            config: None,
            journal: Vec::new(),
            records_rebuilt: false,
            recovered_machine_name: None,
            netns: None,
        };
        state.note(format!("deployment {} created", state.deployment_id));
        state
    }

    /// `Some(phase)` when the last run stopped half-way (`Deploying` or `Removing`).
    pub fn interrupted(&self) -> Option<Phase> {
        matches!(self.phase, Phase::Deploying | Phase::Removing).then_some(self.phase)
    }

    /// Marks a deploy of `plan` as started. Save before touching the kernel.
    pub fn begin_deploy(&mut self, plan: &Plan) {
        if let Some(phase) = self.interrupted() {
            self.note(format!(
                "previous run interrupted while {phase:?}; resuming"
            ));
        }
        self.phase = Phase::Deploying;
        self.pending_plan = Some(plan.clone());
        self.note("deploy started");
    }

    /// Marks the pending deploy as complete.
    pub fn finish_deploy(&mut self) {
        if let Some(plan) = self.pending_plan.take() {
            self.applied_plan = Some(plan);
        }
        self.phase = Phase::Deployed;
        self.note("deploy finished");
    }

    pub fn begin_remove(&mut self) {
        self.phase = Phase::Removing;
        self.note("remove started");
    }

    /// Notes the warning `what` in the journal; whether it is new there (to be shown).
    pub fn warn_once(&mut self, what: &str) -> bool {
        let event = format!("warning: {what}");
        if self.journal.iter().any(|e| e.event == event) {
            return false;
        }
        self.note(event);
        true
    }

    /// Appends to the journal, dropping the oldest entries beyond the limit.
    pub fn note(&mut self, event: impl Into<String>) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.journal.push(JournalEntry {
            at,
            event: event.into(),
        });
        if self.journal.len() > JOURNAL_LIMIT {
            let excess = self.journal.len() - JOURNAL_LIMIT;
            self.journal.drain(..excess);
        }
    }

    /// The node's generated MAC: the stored one if any, else a new locally administered
    /// unicast MAC from `random` that is neither in `taken` (e.g. the static MACs of the plan)
    /// nor generated for another node. Stored until [`DeploymentState::forget_mac`] or remove.
    pub fn mac_for(
        &mut self,
        node: &str,
        taken: &[MacAddr],
        mut random: impl FnMut() -> [u8; 6],
    ) -> MacAddr {
        if let Some(mac) = self.macs.get(node) {
            return *mac;
        }
        let mac = loop {
            let mac = MacAddr::local_from_random(random());
            if !taken.contains(&mac) && !self.macs.values().any(|m| *m == mac) {
                break mac;
            }
        };
        self.macs.insert(node.to_string(), mac);
        mac
    }

    /// [`DeploymentState::mac_for`] with the thread's random generator.
    pub fn mac_for_random(&mut self, node: &str, taken: &[MacAddr]) -> MacAddr {
        self.mac_for(node, taken, rand::random)
    }

    pub fn forget_mac(&mut self, node: &str) -> Option<MacAddr> {
        self.macs.remove(node)
    }

    /// Records an object (status [`ObjectStatus::Pending`]) unless it is already recorded;
    /// returns the record. Call and save *before* creating it.
    pub fn record_object(
        &mut self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> &mut KernelObject {
        let index = match self.objects.iter().position(|o| o.same(kind, name, netns)) {
            Some(i) => i,
            None => {
                self.objects.push(KernelObject::new(kind, name, netns));
                self.objects.len() - 1
            }
        };
        &mut self.objects[index]
    }

    pub fn object(
        &self,
        kind: ObjectKind,
        name: &str,
        netns: Option<&str>,
    ) -> Option<&KernelObject> {
        self.objects.iter().find(|o| o.same(kind, name, netns))
    }

    /// Drops the record of an object that is gone.
    pub fn forget_object(&mut self, kind: ObjectKind, name: &str, netns: Option<&str>) -> bool {
        let before = self.objects.len();
        self.objects.retain(|o| !o.same(kind, name, netns));
        self.objects.len() != before
    }

    /// Objects in the order remove handles them: newest first.
    pub fn objects_for_removal(&self) -> impl Iterator<Item = &KernelObject> {
        self.objects.iter().rev()
    }

    /// Records a sysctl change. The first `previous` recorded wins: a second deploy reads
    /// edgenet's own value back, and remove must restore the value from before the first one.
    /// `boot_id`: the boot it is made in (see [`SysctlChange::boot_id`]).
    pub fn record_sysctl(
        &mut self,
        key: &str,
        netns: Option<&str>,
        previous: &str,
        value: &str,
        boot_id: Option<&str>,
    ) {
        match self
            .sysctls
            .iter_mut()
            .find(|s| s.key == key && s.netns.as_deref() == netns)
        {
            Some(existing) => existing.value = value.to_string(),
            None => self.sysctls.push(SysctlChange {
                key: key.to_string(),
                netns: netns.map(String::from),
                previous: previous.to_string(),
                value: value.to_string(),
                boot_id: boot_id.map(String::from),
                netns_cookie: netns
                    .is_none()
                    .then(edgenet_host::lock::network_namespace_cookie)
                    .flatten(),
                idle_users: Vec::new(),
            }),
        }
    }

    pub fn forget_sysctl(&mut self, key: &str, netns: Option<&str>) -> Option<SysctlChange> {
        let i = self
            .sysctls
            .iter()
            .position(|s| s.key == key && s.netns.as_deref() == netns)?;
        Some(self.sysctls.remove(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::sample_plan;
    use crate::state::StateDir;
    use std::time::Duration;

    fn id(s: &str) -> DeploymentId {
        s.parse().unwrap()
    }

    #[test]
    fn deployment_ids_are_short_hex_and_validated() {
        let a = DeploymentId::random();
        assert_eq!(a.as_str().len(), DeploymentId::LEN);
        assert_eq!(a.as_str().parse::<DeploymentId>().unwrap(), a);
        for bad in ["", "abc", "ABCDEF", "abcdeg", "abcdef0", "ab cde"] {
            assert!(bad.parse::<DeploymentId>().is_err(), "{bad}");
        }
        // A bad id in a state file is a load error, not a panic.
        assert!(serde_json::from_str::<DeploymentId>("\"xyz\"").is_err());
    }

    #[test]
    fn generated_macs_persist_and_stay_unique() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let mut state = DeploymentState::new(id("0a1b2c"));
        let linux = state.mac_for_random("m1-ledge", &[]);
        assert!(!linux.is_multicast() && linux.is_locally_administered() && !linux.is_zero());
        assert_eq!(
            state.mac_for_random("m1-ledge", &[]),
            linux,
            "insert-if-absent"
        );
        state_dir
            .lock("t", Duration::ZERO)
            .unwrap()
            .save(&state)
            .unwrap();

        // A later deploy (new process) reads the same MAC back.
        let mut again = state_dir
            .lock("t", Duration::ZERO)
            .unwrap()
            .load()
            .unwrap()
            .unwrap();
        assert_eq!(again.mac_for("m1-ledge", &[], || unreachable!()), linux);

        // Collisions with taken or already generated MACs are redrawn.
        let taken = MacAddr::local_from_random([1; 6]);
        let mut draws = vec![[1u8; 6], linux.0, [3; 6]].into_iter();
        let windows = again.mac_for("m1-wedge", &[taken], || draws.next().unwrap());
        assert_eq!(windows, MacAddr::local_from_random([3; 6]));
        assert_eq!(again.forget_mac("m1-wedge"), Some(windows));
        assert!(!again.macs.contains_key("m1-wedge"));
    }

    #[test]
    fn sysctl_keeps_the_value_from_before_the_first_deploy() {
        let mut state = DeploymentState::new(id("0a1b2c"));
        state.record_sysctl("net.ipv4.ip_forward", None, "0", "1", None);
        // Second deploy reads back edgenet's own "1".
        state.record_sysctl("net.ipv4.ip_forward", None, "1", "1", None);
        state.record_sysctl("net.ipv4.ip_forward", Some("m1"), "1", "1", None);
        assert_eq!(state.sysctls.len(), 2);
        assert_eq!(state.sysctls[0].previous, "0");
        assert_eq!(
            state
                .forget_sysctl("net.ipv4.ip_forward", None)
                .unwrap()
                .previous,
            "0"
        );
        assert_eq!(state.sysctls.len(), 1);
    }

    #[test]
    fn objects_are_recorded_once_and_removed_newest_first() {
        let mut state = DeploymentState::new(id("0a1b2c"));
        state.record_object(ObjectKind::Bridge, "aksedgesw-int", None);
        state.record_object(ObjectKind::Netns, "m1-ledge", None);
        state
            .record_object(ObjectKind::Veth, "eth0", Some("m1-ledge"))
            .status = ObjectStatus::Created;
        // Re-recording (a resumed deploy) keeps the existing record and its status.
        let again = state.record_object(ObjectKind::Veth, "eth0", Some("m1-ledge"));
        assert_eq!(again.status, ObjectStatus::Created);
        // Same name in another namespace is another object.
        state.record_object(ObjectKind::Veth, "eth0", None);
        let order: Vec<_> = state
            .objects_for_removal()
            .map(|o| (o.kind, o.netns.clone()))
            .collect();
        assert_eq!(
            order,
            [
                (ObjectKind::Veth, None),
                (ObjectKind::Veth, Some("m1-ledge".into())),
                (ObjectKind::Netns, None),
                (ObjectKind::Bridge, None),
            ]
        );
        assert!(state.forget_object(ObjectKind::Veth, "eth0", Some("m1-ledge")));
        assert!(!state.forget_object(ObjectKind::Veth, "eth0", Some("m1-ledge")));
        assert!(state.object(ObjectKind::Veth, "eth0", None).is_some());
    }

    #[test]
    fn phases_track_interrupted_runs() {
        let mut state = DeploymentState::new(id("0a1b2c"));
        assert_eq!(state.interrupted(), None);
        state.begin_deploy(&sample_plan());
        assert_eq!(state.interrupted(), Some(Phase::Deploying));
        assert!(state.applied_plan.is_none());
        state.begin_deploy(&sample_plan()); // the next run resumes
        assert!(state
            .journal
            .iter()
            .any(|j| j.event.contains("interrupted")));
        state.finish_deploy();
        assert_eq!(state.interrupted(), None);
        assert_eq!(state.applied_plan, Some(sample_plan()));
        assert!(state.pending_plan.is_none());
        state.begin_remove();
        assert_eq!(state.interrupted(), Some(Phase::Removing));
        for i in 0..(JOURNAL_LIMIT + 10) {
            state.note(format!("{i}"));
        }
        assert_eq!(state.journal.len(), JOURNAL_LIMIT);
        assert_eq!(
            state.journal.last().unwrap().event,
            format!("{}", JOURNAL_LIMIT + 9)
        );
    }
}
