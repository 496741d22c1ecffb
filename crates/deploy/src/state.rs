//! The deployment state store (SPEC §5.4): one directory, one exclusive lock, one JSON file.
//!
//! ```text
//! /var/lib/edgenet/          (or --state-dir / EDGENET_STATE_DIR)
//!   lock                     flock'ed by the running deploy/remove; holds "PID PURPOSE"
//!   state.json               DeploymentState, replaced atomically (mode 0600: the plan may
//!                            carry proxy credentials)
//! ```
//!
//! The lock is what makes a second concurrent `deploy`/`remove` wait or fail clearly instead of
//! interleaving with the first; writes are tempfile + fsync + rename + fsync(dir), so a crash at
//! any point leaves either the old or the new state, never a torn file. Everything a remove
//! needs is recorded *before* the kernel is changed, so an interrupted deploy can always be
//! finished or undone.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::Plan;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state directory holds the deployment's id and generated MACs: only root reads it. Made
/// 0700 (its parents as usual); an existing directory keeps its mode.
fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        r => r,
    }
}

/// `remove` empties the state directory and deletes it, except the package's own
/// /var/lib/edgenet (dpkg installed it, 0700, and checks it is there: `dpkg -V`).
pub fn keeps_dir(path: &Path) -> bool {
    path == Path::new(DEFAULT_STATE_DIR)
}

/// Version of the state file layout. Bump it when a field is renamed, removed or changes
/// meaning, or when a new field must not be silently dropped by an older edgenet; an edgenet
/// refuses a state newer than it understands rather than rewriting it without those fields.
pub const SCHEMA_VERSION: u32 = 1;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/edgenet";
pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "lock";
/// How long a second deploy waits for the first before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Journal entries kept; older ones are dropped so the file stays small.
const JOURNAL_LIMIT: usize = 200;
const TEMP_PREFIX: &str = ".state.json.";
const TEMP_SUFFIX: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the state in {path} is locked by {holder}: another edgenet deploy or remove is running \
         (waited {}s; wait for it to finish, or stop it)", waited.as_secs()
    )]
    Locked {
        path: PathBuf,
        /// e.g. `edgenet deploy (pid 1234)`.
        holder: String,
        waited: Duration,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not a valid edgenet state file ({reason}); restore or fix it — moving it aside \
         makes edgenet forget the kernel objects it created"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} was written by a newer edgenet (state schema {found}, this edgenet understands up \
         to {supported}); use that edgenet to deploy or remove"
    )]
    FutureVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
}

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
    Vxlan,
    Macvlan,
    /// An address on a link: name `ADDR/PREFIX dev LINK`.
    Address,
    /// A route: name as `ip route` prints it.
    Route,
    NftTable,
    /// A file edgenet wrote outside the state directory (e.g. a node's resolv.conf).
    File,
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
    /// of a new machine from its network section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Recent events, newest last, for `doctor` and for finding out what an interrupted run did.
    #[serde(default)]
    pub journal: Vec<JournalEntry>,
}

impl DeploymentState {
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
    pub fn record_sysctl(&mut self, key: &str, netns: Option<&str>, previous: &str, value: &str) {
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

/// A state directory (not yet locked).
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state_file(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.path.join(LOCK_FILE)
    }

    /// Takes the exclusive lock, creating the directory if needed, waiting up to `timeout` for
    /// another holder. `purpose` (e.g. `edgenet deploy`) is written into the lock file with the
    /// PID, so whoever waits can say who holds it.
    pub fn lock(&self, purpose: &str, timeout: Duration) -> Result<StateLock, StateError> {
        let dir_err = |source| StateError::Dir {
            path: self.path.clone(),
            source,
        };
        create_private_dir(&self.path).map_err(dir_err)?;
        let lock_path = self.lock_file();
        let start = Instant::now();
        // The directory itself is the lock: deleting the lock file (by hand, or a cleanup
        // script) while a run holds it must not let a second run in. A waiter that wins the
        // lock on a directory that is no longer at the path (remove deletes an empty one) starts
        // over on the new one.
        let dir_lock = loop {
            let dir = File::open(&self.path).map_err(dir_err)?;
            loop {
                match dir.try_lock() {
                    Ok(()) => break,
                    Err(TryLockError::WouldBlock) => {
                        let waited = start.elapsed();
                        if waited >= timeout {
                            let holder = OpenOptions::new()
                                .read(true)
                                .open(&lock_path)
                                .map(|mut f| read_holder(&mut f))
                                .unwrap_or_else(|_| {
                                    "another process (its lock file was deleted)".to_string()
                                });
                            return Err(StateError::Locked {
                                path: self.path.clone(),
                                holder,
                                waited,
                            });
                        }
                        std::thread::sleep((timeout - waited).min(Duration::from_millis(50)));
                    }
                    Err(TryLockError::Error(source)) => return Err(dir_err(source)),
                }
            }
            if same_file(&dir, &self.path) {
                break dir;
            }
            create_private_dir(&self.path).map_err(dir_err)?;
        };
        // `remove` deletes the lock file at the very end (zero residue), so a waiter may win
        // the lock on a file that is no longer at `lock_path`: it then starts over on the new
        // one, and two runs never both believe they hold "the" lock.
        let mut file = loop {
            // No truncate on open: the file may belong to the current holder until we have it.
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(dir_err)?;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(TryLockError::WouldBlock) => {
                        let waited = start.elapsed();
                        if waited >= timeout {
                            return Err(StateError::Locked {
                                path: self.path.clone(),
                                holder: read_holder(&mut file),
                                waited,
                            });
                        }
                        std::thread::sleep((timeout - waited).min(Duration::from_millis(50)));
                    }
                    Err(TryLockError::Error(source)) => return Err(dir_err(source)),
                }
            }
            if same_file(&file, &lock_path) {
                break file;
            }
            create_private_dir(&self.path).map_err(dir_err)?;
        };
        let who = format!("{} {}\n", std::process::id(), purpose);
        // Informational only: failing to write it must not fail the deploy.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(who.as_bytes()));
        let lock = StateLock {
            dir: self.clone(),
            file,
            dir_lock,
            last_write: Default::default(),
        };
        lock.remove_stale_temp_files();
        Ok(lock)
    }

    /// Reads the state without taking the lock, for readers (`plan`, `doctor`, `node addr`).
    /// Safe because writers replace the file atomically: a reader sees the old or the new
    /// state, never a mix.
    pub fn peek(&self) -> Result<Option<DeploymentState>, StateError> {
        read_state(&self.state_file())
    }
}

/// Whether the open lock `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `edgenet deploy (pid 1234)` from the lock file's `PID PURPOSE` line.
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = io::Seek::rewind(file).and_then(|_| file.read_to_string(&mut text));
    match text.trim().split_once(' ') {
        Some((pid, purpose)) if pid.parse::<u32>().is_ok() => format!("{purpose} (pid {pid})"),
        None if text.trim().parse::<u32>().is_ok() => format!("pid {}", text.trim()),
        _ => "another process (it did not write its PID into the lock file)".to_string(),
    }
}

/// The held lock; the only way to load and save the state. Released on drop.
#[derive(Debug)]
pub struct StateLock {
    dir: StateDir,
    file: File,
    /// The flock on the state directory, the real exclusion (the lock file's flock is kept
    /// for older edgenet versions and tools that look at it).
    dir_lock: File,
    /// The bytes of this lock's last write and whether it was durable: an equal write is
    /// skipped (a rename over the file costs ext4 a data flush, 0.5–3 ms on a busy disk).
    last_write: std::sync::Mutex<Option<(Vec<u8>, bool)>>,
}

impl StateLock {
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// The stored state; `None` when none was saved yet (or it was cleared by remove).
    pub fn load(&self) -> Result<Option<DeploymentState>, StateError> {
        read_state(&self.dir.state_file())
    }

    /// The stored state, or a new one with a fresh deployment id (not saved yet).
    pub fn load_or_new(&self) -> Result<DeploymentState, StateError> {
        Ok(self
            .load()?
            .unwrap_or_else(|| DeploymentState::new(DeploymentId::random())))
    }

    /// Replaces the state file atomically: write a temp file in the same directory, fsync it,
    /// rename it over the old one, fsync the directory so the rename itself is durable.
    pub fn save(&self, state: &DeploymentState) -> Result<(), StateError> {
        self.write(state, true)
    }

    /// Atomic but not flushed to disk: for the records a deploy writes before each kernel
    /// object. They protect against a crashed *process* (the page cache survives it); after a
    /// power cut the kernel objects they describe are gone as well, and the deploy's final
    /// [`StateLock::save`] is durable.
    pub fn save_journal(&self, state: &DeploymentState) -> Result<(), StateError> {
        self.write(state, false)
    }

    fn write(&self, state: &DeploymentState, durable: bool) -> Result<(), StateError> {
        let path = self.dir.state_file();
        let write_err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let mut json = serde_json::to_vec_pretty(state).expect("state always serialises");
        json.push(b'\n');
        let mut last = self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(&*last, Some((bytes, was_durable)) if *bytes == json && (*was_durable || !durable))
        {
            return Ok(());
        }
        *last = None;
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempfile_in(self.dir.path())
            .map_err(write_err)?;
        tmp.write_all(&json).map_err(write_err)?;
        if durable {
            tmp.as_file().sync_all().map_err(write_err)?;
        }
        tracing::debug!("write {}", path.display());
        tmp.persist(&path).map_err(|e| write_err(e.error))?;
        if durable {
            File::open(self.dir.path())
                .and_then(|d| d.sync_all())
                .map_err(write_err)?;
        }
        *last = Some((json, durable));
        Ok(())
    }

    /// Deletes the state file (the end of `remove`; [`StateLock::release_and_delete`] then takes
    /// the lock file and the directory). Not fsynced: a file brought back by a power cut lists
    /// kernel objects that are gone, which the next remove finds gone.
    pub fn clear(&self) -> Result<(), StateError> {
        *self.last_write.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let path = self.dir.state_file();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write { path, source }),
        }
    }

    /// The end of a complete `remove`: deletes the lock file (still held, so nobody can take it
    /// meanwhile; waiters notice it is gone and start over) and the directory if it is empty.
    pub fn release_and_delete(&self) {
        let _ = fs::remove_file(self.dir.lock_file());
        if keeps_dir(self.dir.path()) {
            return;
        }
        let _ = fs::remove_dir(self.dir.path());
    }

    /// Temp files left by a run that crashed mid-save. Only safe while holding the lock.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Clear the PID so a stale one is never reported; the lock itself goes with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
        let _ = self.dir_lock.unlock();
    }
}

fn read_state(path: &Path) -> Result<Option<DeploymentState>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    // Two steps, so that a newer layout is reported as such rather than as garbage.
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let version = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("no schema_version".to_string()))?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(StateError::FutureVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version != u64::from(SCHEMA_VERSION) {
        return Err(corrupt(format!("unknown schema_version {version}")));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::sample_plan;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

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
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StateDir::new(dir.path())
            .lock("test", Duration::ZERO)
            .unwrap();
        assert!(lock.load().unwrap().is_none());
        let mut state = DeploymentState::new(id("0a1b2c"));
        state.begin_deploy(&sample_plan());
        state.auto_subnet = Some("192.168.3.0/24".parse().unwrap());
        state.mac_for_random("m1-ledge", &[]);
        state
            .record_object(ObjectKind::Bridge, "aksedgesw-int", None)
            .status = ObjectStatus::Created;
        state.record_sysctl("net.ipv4.ip_forward", None, "0", "1");
        state.finish_deploy();
        lock.save(&state).unwrap();
        assert_eq!(lock.load().unwrap().unwrap(), state);
        assert_eq!(StateDir::new(dir.path()).peek().unwrap().unwrap(), state);
        let mode = fs::metadata(dir.path().join(STATE_FILE))
            .unwrap()
            .permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
        // No temp file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        lock.clear().unwrap();
        assert!(lock.load().unwrap().is_none());
    }

    /// A save equal to the lock's last one is skipped, unless it must make a journal write
    /// durable; after `clear` the same state is written again.
    #[test]
    fn an_unchanged_save_writes_nothing() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = StateDir::new(dir.path())
            .lock("test", Duration::ZERO)
            .unwrap();
        let ino = || {
            fs::metadata(dir.path().join(STATE_FILE))
                .map(|m| m.ino())
                .ok()
        };
        let state = DeploymentState::new(id("0a1b2c"));
        lock.save_journal(&state).unwrap();
        let first = ino();
        lock.save_journal(&state).unwrap();
        assert_eq!(ino(), first, "an equal journal write is skipped");
        lock.save(&state).unwrap();
        let durable = ino();
        assert_ne!(
            durable, first,
            "a durable save after a journal write writes"
        );
        lock.save(&state).unwrap();
        lock.save_journal(&state).unwrap();
        assert_eq!(ino(), durable);
        lock.clear().unwrap();
        lock.save_journal(&state).unwrap();
        assert_eq!(lock.load().unwrap().unwrap(), state);
    }

    /// A reader never sees a partial file while a writer keeps replacing it.
    #[test]
    fn readers_never_see_a_partial_write() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let lock = state_dir.lock("writer", Duration::ZERO).unwrap();
        // Two states of different sizes (tens of KiB) so a torn write would show.
        let small = DeploymentState::new(id("aaaaaa"));
        let mut big = DeploymentState::new(id("bbbbbb"));
        for i in 0..150 {
            big.note(format!("event {i} {}", "x".repeat(200)));
        }
        lock.save(&small).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (stop, state_dir) = (stop.clone(), state_dir.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let s = state_dir.peek().expect("torn read").expect("file vanished");
                    assert!(s.deployment_id == id("aaaaaa") || s.deployment_id == id("bbbbbb"));
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..200 {
            lock.save(if i % 2 == 0 { &big } else { &small }).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }

    #[test]
    fn stale_temp_file_from_a_crash_is_ignored_and_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let state = DeploymentState::new(id("0a1b2c"));
        state_dir
            .lock("t", Duration::ZERO)
            .unwrap()
            .save(&state)
            .unwrap();
        // What a crash between write and rename leaves.
        let stale = dir.path().join(format!("{TEMP_PREFIX}XyZ12{TEMP_SUFFIX}"));
        fs::write(&stale, "{\"schema_version\": 1, \"deploym").unwrap();
        assert_eq!(state_dir.peek().unwrap().unwrap(), state);
        let lock = state_dir.lock("t", Duration::ZERO).unwrap();
        assert!(!stale.exists());
        assert_eq!(lock.load().unwrap().unwrap(), state);
    }

    #[test]
    fn second_locker_in_another_thread_fails_naming_the_holder_then_waits() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let held = state_dir.lock("edgenet deploy", Duration::ZERO).unwrap();

        let other = state_dir.clone();
        let start = Instant::now();
        let err = std::thread::spawn(move || {
            other
                .lock("edgenet remove", Duration::from_millis(200))
                .unwrap_err()
        })
        .join()
        .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(200));
        let msg = err.to_string();
        let pid = std::process::id();
        assert!(
            msg.contains(&format!("edgenet deploy (pid {pid})")),
            "message does not name the holder: {msg}"
        );

        // A waiter with a longer timeout gets the lock once the holder lets go.
        let other = state_dir.clone();
        let waiter =
            std::thread::spawn(move || other.lock("edgenet remove", Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(150));
        assert!(
            !waiter.is_finished(),
            "the waiter must block while the lock is held"
        );
        drop(held);
        let lock = waiter.join().unwrap().unwrap();
        let content = fs::read_to_string(lock.dir().lock_file()).unwrap();
        assert_eq!(content, format!("{pid} edgenet remove\n"));
    }

    #[test]
    fn deleting_the_lock_file_while_held_lets_no_second_run_in() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let held = state_dir.lock("edgenet deploy", Duration::ZERO).unwrap();
        fs::remove_file(state_dir.lock_file()).unwrap();
        let other = state_dir.clone();
        let err =
            std::thread::spawn(move || other.lock("edgenet remove", Duration::from_millis(100)))
                .join()
                .unwrap()
                .unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        drop(held);
        state_dir.lock("edgenet remove", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_new_state_directory_is_private_and_only_the_package_one_is_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/state");
        let state_dir = StateDir::new(&path);
        drop(state_dir.lock("edgenet deploy", Duration::ZERO).unwrap());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{mode:o}");
        assert!(keeps_dir(Path::new("/var/lib/edgenet")));
        assert!(!keeps_dir(&path));
    }

    #[test]
    fn lock_held_by_another_process() {
        if Command::new("flock").arg("--version").output().is_err() {
            eprintln!("SKIP: flock(1) (util-linux) not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        fs::create_dir_all(dir.path()).unwrap();
        let lock_file = state_dir.lock_file();
        // --no-fork: the shell runs as the flock process itself, so `$$` is the child's PID.
        let mut child = Command::new("flock")
            .args(["--no-fork", "--exclusive"])
            .arg(&lock_file)
            .args([
                "sh",
                "-c",
                "echo \"$$ other-edgenet\" > \"$1\"; exec sleep 30",
                "sh",
            ])
            .arg(&lock_file)
            .spawn()
            .unwrap();
        let child_pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&lock_file)
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            assert!(Instant::now() < deadline, "the helper never took the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = state_dir.lock("edgenet deploy", Duration::from_millis(100));
        let _ = child.kill();
        let _ = child.wait();
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains(&format!("other-edgenet (pid {child_pid})")),
            "{msg}"
        );
        // The holder is gone: the lock is free again.
        state_dir
            .lock("edgenet deploy", Duration::from_secs(5))
            .unwrap();
    }

    #[test]
    fn corrupt_or_future_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let lock = state_dir.lock("t", Duration::ZERO).unwrap();
        let file = state_dir.state_file();
        let cases: &[(&str, &str)] = &[
            ("", "EOF"),
            ("{\"schema_version\": 1, \"deploym", "EOF"),
            ("not json at all", "expected"),
            ("{}", "no schema_version"),
            ("{\"schema_version\": 0}", "unknown schema_version 0"),
            ("{\"schema_version\": 1}", "deployment_id"),
            (
                "{\"schema_version\": 1, \"deployment_id\": \"zz\", \"phase\": \"new\"}",
                "hex digits",
            ),
        ];
        for (content, reason) in cases {
            fs::write(&file, content).unwrap();
            let err = lock.load().unwrap_err();
            assert!(
                matches!(err, StateError::Corrupt { .. }),
                "{content}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(reason), "{content}: {msg}");
            assert!(msg.contains(&file.display().to_string()), "{msg}");
        }
        fs::write(&file, "{\"schema_version\": 7, \"whatever\": true}").unwrap();
        let err = lock.load().unwrap_err();
        assert!(
            matches!(
                err,
                StateError::FutureVersion {
                    found: 7,
                    supported: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer edgenet"), "{err}");
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
        state.record_sysctl("net.ipv4.ip_forward", None, "0", "1");
        // Second deploy reads back edgenet's own "1".
        state.record_sysctl("net.ipv4.ip_forward", None, "1", "1");
        state.record_sysctl("net.ipv4.ip_forward", Some("m1"), "1", "1");
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
