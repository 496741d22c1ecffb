//! Reading and writing the state under the held lock. Three files:
//!
//! - `state.json`: the state as the last run left it, replaced atomically (temp file + rename)
//!   once at the end of a run, and only when it changed; external readers may read it.
//! - `state.journal`: the records of the run in progress, one full state per line, appended
//!   (one `write`, no rename) before each kernel object is made; the newest valid line wins over
//!   `state.json` on load. Each line names the `state.json` it follows (a hash of its bytes), so
//!   lines left by a crash between a replacement of `state.json` and the journal's truncation
//!   are never replayed over it.
//! - `identity.json`: the deployment id, generated MACs and automatic subnet, fsynced (temp file,
//!   fsync, rename, fsync of the directory). What must survive a power cut is only this: the
//!   kernel objects the other records describe are gone after one anyway.
//! - `config.json`: the deployment config of the last deploy (read by `deploy` and
//!   `scale-config` without `-c`), replaced with `state.json` and only when it changed. It is kept out of the other two because a
//!   scalable cluster's config lists every machine: in every record it made each machine's
//!   deploy write the whole cluster many times over. A `state.json` of an earlier edgenet that
//!   still holds the config is read as before; its next replacement moves the config out.
//!
//! Durability: a crashed *process* loses nothing (the page cache keeps every `write`, and each
//! kernel object is recorded in the journal before it is made). After a power cut, ext4
//! (`data=ordered`, rename and truncate heuristics) shows each file old or new, never torn; a
//! filesystem without those heuristics may show a replaced `state.json` empty and journal lines
//! as zeros: invalid journal lines are skipped, and an empty `state.json` falls back to
//! `identity.json`, which every deploy makes durable (on a thread beside the kernel work) before
//! it reports success: the next deploy (the boot unit's) builds the same switch, subnet and MACs
//! again. Only an empty (or all-NUL) `state.json` is taken for a power cut's; anything else that
//! does not parse stays an error, as before. When the kernel objects did survive (the file was
//! emptied or deleted by hand), their records are rebuilt from their marks ([`super::recover`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::lock::StateLock;
use super::model::{DeploymentId, DeploymentState, SCHEMA_VERSION};

/// The state directory holds the deployment's id and generated MACs: only root reads it. Made
/// 0700 (its parents as usual); an existing directory keeps its mode.
pub(super) fn create_private_dir(path: &Path) -> io::Result<()> {
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

/// Root or the user running edgenet: an owner that cannot be another user.
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Why another user could replace what `m` describes, in words (`None`: they cannot).
/// `sticky_ok`: a directory on the way whose sticky bit (as /tmp's) keeps others from renaming
/// what is not theirs.
fn flaw(m: &fs::Metadata, sticky_ok: bool) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    let open = m.mode() & 0o022 != 0 && !(sticky_ok && m.mode() & 0o1000 != 0);
    if !trusted_owner(m.uid()) {
        Some("owned by another user")
    } else {
        open.then_some("writable by group or others")
    }
}

/// The owner's name when the system knows it (said, not trusted).
fn owner_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// Why the state directory at `path` cannot be trusted, when it cannot: root applies the
/// config and records it holds (`deploy` without `-c`, the boot unit), so a directory or file
/// that another user owns or may write (group or others), or a directory on the way to it
/// that another user may rename it in, lets that user steer root's next deploy. As ssh's
/// StrictModes and sudo refuse such files, the command refuses before reading anything. A
/// directory that does not exist yet is judged by its nearest existing parent (deploy makes
/// it 0700). `None`: trusted; else the message (what, its owner and mode) and the fix.
pub fn untrusted(path: &Path) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let describe = |m: &fs::Metadata| {
        format!(
            "owner {}, mode {:04o}",
            owner_name(m.uid()),
            m.mode() & 0o7777
        )
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // A symbolic link on the way (the directory itself or one above it): its owner may point it
    // elsewhere whatever its mode (a link's is always 0777), so only its owner is judged;
    // where it leads is judged below (B23b F4).
    for link in absolute.ancestors() {
        let Ok(l) = fs::symlink_metadata(link) else {
            continue;
        };
        if l.is_symlink() && !trusted_owner(l.uid()) {
            let shown = link.display();
            return Some((
                format!(
                    "{shown}, a symbolic link on the way to state directory {} (owner {}), is owned by another user: they could point it at a state directory of theirs; nothing was read or changed",
                    absolute.display(),
                    owner_name(l.uid()),
                ),
                format!(
                    "if it points where it should: `chown -h root:root {shown}`; else use a state directory only root can write (the default /var/lib/edgenet)"
                ),
            ));
        }
    }
    // The directory itself, when it is there (links followed: the directory it names).
    let existing = absolute.ancestors().find(|p| p.exists())?.to_path_buf();
    let real = fs::canonicalize(&existing).unwrap_or(existing.clone());
    if existing == absolute {
        let m = fs::metadata(&real).ok()?;
        if let (true, Some(flaw)) = (m.is_dir(), flaw(&m, false)) {
            let shown = real.display();
            return Some((
                format!(
                    "state directory {shown} ({}) is {flaw}: another user could replace the config and records that root deploys from; nothing was read or changed",
                    describe(&m),
                ),
                format!(
                    "if the directory and what is in it are what edgenet wrote: `chown -R root:root {shown} && chmod 700 {shown}`; else use a state directory only root can write (the default /var/lib/edgenet)"
                ),
            ));
        }
        if m.is_dir() {
            for name in [
                STATE_FILE,
                CONFIG_FILE,
                IDENTITY_FILE,
                JOURNAL_FILE,
                MACHINE_FILE,
            ] {
                let file = real.join(name);
                // Only a regular file is ever read (a link, a FIFO, a directory in its place
                // is said and never followed or opened: see `own_files`).
                let Ok(f) = fs::symlink_metadata(&file) else {
                    continue;
                };
                if !f.is_file() {
                    continue;
                }
                if let Some(flaw) = flaw(&f, false) {
                    let shown = file.display();
                    return Some((
                        format!(
                            "{shown} ({}) is {flaw}: it may not hold what edgenet wrote there; nothing was read or changed",
                            describe(&f),
                        ),
                        format!(
                            "if it is what edgenet wrote: `chown root:root {shown} && chmod 600 {shown}`; else move it away (root must not deploy a file someone else wrote)"
                        ),
                    ));
                }
            }
        }
    }
    // The directories on the way: one another user may write (without the sticky bit, which
    // keeps others from renaming what is not theirs, as /tmp has) lets them move the state
    // directory away and put theirs in its place.
    for parent in real.ancestors().skip(usize::from(existing == absolute)) {
        let Ok(m) = fs::metadata(parent) else {
            continue;
        };
        if let Some(flaw) = flaw(&m, true) {
            let shown = parent.display();
            return Some((
                format!(
                    "{shown}, a directory on the way to state directory {} ({}), is {flaw}: another user could put their own state directory in its place; nothing was read or changed",
                    absolute.display(),
                    describe(&m),
                ),
                format!(
                    "`chown root:root {shown} && chmod go-w {shown}` (or `chmod +t` for a shared directory, as /tmp has), or use a state directory only root can write (the default /var/lib/edgenet)"
                ),
            ));
        }
    }
    None
}

/// Why another user could replace the executable at `path` (install-unit's `--binary`, which
/// root runs at every boot), judged as [`untrusted`] judges a state directory: a link on the
/// way owned by another user, the file or a directory on the way (the sticky bit excepted)
/// owned by another user or writable by group or others. `None`: trusted, or not there (said
/// elsewhere). Else the message and the fix.
pub fn untrusted_executable(path: &Path) -> Option<(String, String)> {
    use std::os::unix::fs::MetadataExt;
    let real = fs::canonicalize(path).ok()?;
    let mut on_the_way: Vec<(PathBuf, fs::Metadata, bool)> = path
        .ancestors()
        .filter_map(|p| Some((p.to_path_buf(), fs::symlink_metadata(p).ok()?, false)))
        .filter(|(_, l, _)| l.is_symlink())
        .collect();
    on_the_way.retain(|(_, l, _)| !trusted_owner(l.uid()));
    if let Some((link, l, _)) = on_the_way.first() {
        return Some((
            format!(
                "{}, a symbolic link on the way to --binary {} (owner {}), is owned by another user: they could point it at a program of theirs that root runs at every boot; no unit was written",
                link.display(),
                path.display(),
                owner_name(l.uid())
            ),
            format!("`chown -h root:root {}`, or give the path of an edgenet only root can replace (e.g. /usr/local/bin/edgenet)", link.display()),
        ));
    }
    for (i, p) in real.ancestors().enumerate() {
        let Ok(m) = fs::metadata(p) else {
            continue;
        };
        let Some(flaw) = flaw(&m, i > 0) else {
            continue;
        };
        let shown = p.display();
        let what = if i == 0 {
            format!("--binary {shown}")
        } else {
            format!(
                "{shown}, a directory on the way to --binary {}",
                real.display()
            )
        };
        return Some((
            format!(
                "{what} (owner {}, mode {:04o}) is {flaw}: another user could replace what root runs at every boot; no unit was written",
                owner_name(m.uid()),
                m.mode() & 0o7777
            ),
            format!(
                "`chown root:root {shown} && chmod go-w {shown}`, or give the path of an edgenet only root can replace (e.g. /usr/local/bin/edgenet)"
            ),
        ));
    }
    None
}

/// `remove` empties the state directory and deletes it, except the package's own
/// /var/lib/edgenet (dpkg installed it, 0700, and checks it is there: `dpkg -V`).
pub fn keeps_dir(path: &Path) -> bool {
    path == Path::new(DEFAULT_STATE_DIR)
}

pub const DEFAULT_STATE_DIR: &str = "/var/lib/edgenet";
pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "lock";
pub const JOURNAL_FILE: &str = "state.journal";
pub const IDENTITY_FILE: &str = "identity.json";
pub const CONFIG_FILE: &str = "config.json";
/// The machine choice (`--machine`, `--machine-name`) of a first deploy whose config was
/// recorded before its first record (`config.json` alone): a plain `deploy` after it was killed
/// deploys the same machine (B25 F1). Deleted once the deployment's records name the machine.
pub const MACHINE_FILE: &str = "machine.json";
/// How long a second deploy waits for the first before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

const TEMP_PREFIX: &str = ".state.json.";
const IDENTITY_TEMP_PREFIX: &str = ".identity.json.";
const CONFIG_TEMP_PREFIX: &str = ".config.json.";
const MACHINE_TEMP_PREFIX: &str = ".machine.json.";
const TEMP_SUFFIX: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Something that is not edgenet's lock file is at `lock` (a link, a directory, someone's
    /// file): never opened through, never emptied (B27 F1).
    #[error(
        "{path} is {what}, not the lock file edgenet writes there (empty, or one `PID PURPOSE` \
         line); nothing was changed: move it away, or check that {dir} is the state directory \
         you meant"
    )]
    LockFile {
        /// The state directory.
        dir: PathBuf,
        /// Its `lock`.
        path: PathBuf,
        /// `a symbolic link`, `a directory`, `a file with 1 other hard link`, ….
        what: String,
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
    #[error("{path} is not a valid edgenet state file ({reason}); nothing was changed")]
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

    /// Reads the state without taking the lock, for readers (`plan`, `doctor`, `node addr`).
    /// Safe because writers replace the file atomically: a reader sees the old or the new
    /// state, never a mix.
    pub fn peek(&self) -> Result<Option<DeploymentState>, StateError> {
        self.peek_given(None)
    }

    /// [`Self::peek`] by a deploy about to record `config`: when `config.json` holds it as a
    /// deploy writes it (byte for byte), the state gets that very value, not a parse of the
    /// file (a cluster's config is thousands of values), and the lock that loads this peek
    /// knows the file holds it.
    pub fn peek_given(
        &self,
        config: Option<&Arc<Value>>,
    ) -> Result<Option<DeploymentState>, StateError> {
        let raw = RawFiles::read(&self.path, true)?;
        let read = parse_dir_state_given(&self.path, &raw, config)?;
        let state = read.state.clone();
        remember_peek(&self.path, raw, read);
        Ok(state)
    }

    /// [`Self::peek`] without the deployment config (`config` is `None` unless an earlier
    /// edgenet kept it in `state.json`): for readers that need only the records (a lab reads
    /// every machine's).
    pub fn peek_records(&self) -> Result<Option<DeploymentState>, StateError> {
        let raw = RawFiles::read(&self.path, false)?;
        Ok(parse_dir_state(&self.path, &raw)?.state)
    }

    /// `config.json` on its own (read as `-c` reads a file; `None` when missing or damaged):
    /// the config of a first deploy interrupted before it recorded anything else.
    pub fn config_alone(&self) -> Option<Value> {
        read_aid(&self.path.join(CONFIG_FILE))
            .and_then(|b| edgenet_core::config::parse_text(&b).ok())
    }

    /// `identity.json` and `config.json` when something that is not a regular file is in their
    /// place (a directory, a FIFO, a link), with what it is: a deploy could not replace them.
    pub fn odd_files(&self) -> Vec<(PathBuf, &'static str)> {
        [IDENTITY_FILE, CONFIG_FILE]
            .into_iter()
            .map(|name| self.path.join(name))
            .filter_map(|path| crate::own_files::odd(&path).map(|what| (path, what)))
            .collect()
    }

    pub fn journal_file(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }

    pub fn identity_file(&self) -> PathBuf {
        self.path.join(IDENTITY_FILE)
    }
}

impl StateLock {
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// The stored state (with the journal of an interrupted run replayed); `None` when none
    /// was saved yet (or it was cleared by remove).
    pub fn load(&self) -> Result<Option<DeploymentState>, StateError> {
        let raw = RawFiles::read(&self.dir.path, true)?;
        // The files as the run's peek found them (the usual case: its peek was taken under the
        // network namespace's lock a moment ago): the same bytes parse to the same state.
        let read = match peeked_as(&self.dir.path, &raw) {
            Some(read) => read,
            None => parse_dir_state(&self.dir.path, &raw)?,
        };
        let mut files = self.files();
        files.base = read.base;
        files.config_hash = read.config_hash;
        files.on_disk = read.on_disk;
        files.last = read.state.clone();
        files.journal_len = read.journal_len;
        files.needs_newline = read.needs_newline;
        files.durable_identity = read.identity;
        files.config_seen = read.config_seen;
        files.loaded = true;
        Ok(read.state)
    }

    /// The stored state, or a new one with a fresh deployment id (not saved yet).
    pub fn load_or_new(&self) -> Result<DeploymentState, StateError> {
        Ok(self
            .load()?
            .unwrap_or_else(|| DeploymentState::new(DeploymentId::random())))
    }

    fn files(&self) -> std::sync::MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the state durable: `state.json` replaced atomically (temp file, fsync, rename,
    /// fsync of the directory), `identity.json` with it when it differs, the journal emptied.
    pub fn save(&self, state: &DeploymentState) -> Result<(), StateError> {
        self.ensure_loaded()?;
        let identity = Identity::of(state);
        if self.files().durable_identity.as_ref() != Some(&identity) {
            write_identity(self.dir.path(), &identity)?;
            self.files().durable_identity = Some(identity);
        }
        self.replace_state_file(state, true)
    }

    /// Records the state before a kernel object is made: one line appended to the journal
    /// (no rename, no fsync). It protects against a crashed *process* (the page cache survives
    /// it); after a power cut the kernel objects it describes are gone as well. Skipped when
    /// the state is the one last written.
    pub fn save_journal(&self, state: &DeploymentState) -> Result<(), StateError> {
        self.ensure_loaded()?;
        let mut files = self.files();
        if files.last.as_ref() == Some(state) {
            return Ok(());
        }
        if files.on_disk.is_none() && files.journal_len == 0 {
            // The first record of a new deployment makes `state.json` (a rename onto no file
            // costs no flush): whoever looks for a deployment by that file finds it.
            drop(files);
            return self.replace_state_file(state, false);
        }
        let path = self.dir.journal_file();
        let write_err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let mut line = Vec::with_capacity(4096);
        if files.needs_newline {
            line.push(b'\n');
        }
        line.extend_from_slice(format!("{{\"base\":\"{:016x}\",\"state\":", files.base).as_bytes());
        serde_json::to_writer(&mut line, state).expect("state always serialises");
        line.extend_from_slice(b"}\n");
        if files.journal.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&path)
                .map_err(write_err)?;
            files.journal = Some(file);
        }
        tracing::debug!("write {}", path.display());
        // One `write` per record: a crash mid-line leaves a line that does not parse, skipped.
        let journal = files.journal.as_mut().expect("opened above");
        journal.write_all(&line).map_err(write_err)?;
        files.journal_len += line.len() as u64;
        files.needs_newline = false;
        files.last = Some(state.clone());
        Ok(())
    }

    /// The end of a run: `state.json` becomes `state` (replaced atomically, not fsynced: what
    /// must survive a power cut is in `identity.json`, see [`Self::identity_saver`]) and the
    /// journal is emptied (it never outlives a run); nothing is written when `state.json`
    /// holds `state` already and the journal is empty.
    pub fn finish(&self, state: &DeploymentState) -> Result<(), StateError> {
        self.ensure_loaded()?;
        let same = self.files().on_disk.as_ref() == Some(state);
        if same {
            return self.truncate_journal();
        }
        self.replace_state_file(state, false)
    }

    /// A thread that makes the state's identity (id, generated MACs, automatic subnet) durable
    /// in `identity.json`, started as soon as the identity is known so that its fsyncs overlap
    /// the kernel work; `None` when it is durable already. Join it before reporting success.
    pub fn identity_saver(
        &self,
        state: &DeploymentState,
    ) -> Option<std::thread::JoinHandle<Result<(), StateError>>> {
        let identity = Identity::of(state);
        {
            let mut files = self.files();
            if files.durable_identity.as_ref() == Some(&identity) {
                return None;
            }
            // Set now: the caller joins the thread and fails the run if it failed.
            files.durable_identity = Some(identity.clone());
        }
        let dir = self.dir.path().to_path_buf();
        Some(std::thread::spawn(move || write_identity(&dir, &identity)))
    }

    /// Forgets that the identity was made durable (its saver failed).
    pub fn identity_not_durable(&self) {
        self.files().durable_identity = None;
    }

    fn ensure_loaded(&self) -> Result<(), StateError> {
        if !self.files().loaded {
            self.load()?;
        }
        Ok(())
    }

    fn truncate_journal(&self) -> Result<(), StateError> {
        let mut files = self.files();
        if files.journal_len == 0 {
            return Ok(());
        }
        let path = self.dir.journal_file();
        let result = match &files.journal {
            Some(f) => f.set_len(0),
            None => OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0)),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StateError::Write { path, source }),
        }
        files.journal_len = 0;
        files.needs_newline = false;
        files.last = files.on_disk.clone();
        Ok(())
    }

    fn replace_state_file(&self, state: &DeploymentState, durable: bool) -> Result<(), StateError> {
        let path = self.dir.state_file();
        let write_err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        {
            let files = self.files();
            if files.on_disk.as_ref() == Some(state) && files.journal_len == 0 && !durable {
                return Ok(());
            }
        }
        // The config before the state that names it: a crash between the two leaves the new
        // config beside the old records, which only `scale-config` reads.
        self.write_config(state, durable)?;
        let mut json = serde_json::to_vec_pretty(state).expect("state always serialises");
        json.push(b'\n');
        let sync = if durable { Fsync::All } else { Fsync::None };
        replace_file(&path, TEMP_PREFIX, &json, sync).map_err(write_err)?;
        {
            let mut files = self.files();
            // Journal lines written before name the old file: they are stale from here on,
            // whether or not the truncation below happens.
            files.base = content_hash(Some(&json));
            files.on_disk = Some(state.clone());
            files.last = Some(state.clone());
        }
        self.truncate_journal()
    }

    /// `config.json` becomes `config` before anything else is recorded: the config a first
    /// deploy is about to apply, as it starts checking the host (B24 F7: a deploy killed during
    /// the address probe leaves it, which a plain `deploy` then applies). The first record finds
    /// it written (the same value).
    pub fn record_config(&self, config: &Arc<Value>) -> Result<(), StateError> {
        self.write_config_value(config, false)
    }

    /// `machine.json` holds `json`, or is gone when `None`. Replaced through a temp file and a
    /// rename, as every state file: a run killed mid-write leaves the old choice or the new.
    pub fn record_machine_choice(&self, json: Option<&[u8]>) -> Result<(), StateError> {
        self.put_file(MACHINE_FILE, MACHINE_TEMP_PREFIX, json)
    }

    /// `config.json` and `machine.json` put back as they were before a first deploy's early
    /// record (their bytes, or absent): the record of a deploy that was refused goes, whole.
    pub fn take_back_early_record(
        &self,
        config: Option<&[u8]>,
        machine: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let config = self.put_file(CONFIG_FILE, CONFIG_TEMP_PREFIX, config);
        let machine = self.record_machine_choice(machine);
        let mut files = self.files();
        files.config_hash = 0;
        files.config_seen = None;
        config.and(machine)
    }

    fn put_file(
        &self,
        name: &str,
        temp_prefix: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let path = self.dir.path().join(name);
        let done = match bytes {
            Some(bytes) => replace_file(&path, temp_prefix, bytes, Fsync::None),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            },
        };
        done.map_err(|source| StateError::Write { path, source })
    }

    /// `config.json` becomes the state's config when it differs (nothing without one: a state
    /// rebuilt from the kernel's marks keeps the file it has).
    fn write_config(&self, state: &DeploymentState, durable: bool) -> Result<(), StateError> {
        match &state.config {
            Some(config) => self.write_config_value(config, durable),
            None => Ok(()),
        }
    }

    fn write_config_value(&self, config: &Arc<Value>, durable: bool) -> Result<(), StateError> {
        if let Some(seen) = &self.files().config_seen {
            if Arc::ptr_eq(seen, config) {
                return Ok(());
            }
        }
        let mut json = serde_json::to_vec(&**config).expect("a JSON value always serialises");
        json.push(b'\n');
        // No `config.json` read (a first deploy): nothing to compare with, and nothing to
        // remember but the address of the value written (a cluster's config is ~35 kB to hash).
        let known = self.files().config_hash;
        let hash = if known == 0 {
            0
        } else {
            content_hash(Some(&json))
        };
        if known != 0 && known == hash {
            self.files().config_seen = Some(config.clone());
            return Ok(());
        }
        let path = self.dir.path().join(CONFIG_FILE);
        let write_err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        // The directory is fsynced by the state's replacement that follows.
        let sync = if durable { Fsync::File } else { Fsync::None };
        replace_file(&path, CONFIG_TEMP_PREFIX, &json, sync).map_err(write_err)?;
        let mut files = self.files();
        files.config_hash = hash;
        files.config_seen = Some(config.clone());
        Ok(())
    }

    /// Deletes the state file (the end of `remove`; [`StateLock::release_and_delete`] then takes
    /// the lock file and the directory). Not fsynced: a file brought back by a power cut lists
    /// kernel objects that are gone, which the next remove finds gone.
    pub fn clear(&self) -> Result<(), StateError> {
        let mut files = self.files();
        *files = Files {
            loaded: true,
            base: content_hash(None),
            stale_temp: std::mem::take(&mut files.stale_temp),
            ..Files::default()
        };
        // The identity first: a remove that stops half-way keeps the state that lists what is
        // left, and never leaves an identity that would bring a removed deployment back.
        for path in [
            self.dir.identity_file(),
            self.dir.journal_file(),
            self.dir.path().join(CONFIG_FILE),
            self.dir.path().join(MACHINE_FILE),
            self.dir.state_file(),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // A directory in the place of `identity.json` or `config.json` is not edgenet's
                // (unlink took a FIFO or a link itself, never what it points to): left, said.
                Err(_) if path.is_dir() && !path.is_symlink() && path != self.dir.state_file() => {
                    tracing::warn!(
                        "left {}: a directory, not a file edgenet wrote (delete it or move it away; the state directory stays until then)",
                        path.display()
                    );
                }
                Err(source) => return Err(StateError::Write { path, source }),
            }
        }
        Ok(())
    }

    /// Moves a damaged `state.json` (one [`StateError::Corrupt`] names) out of the way, to
    /// `state.json.damaged` (`.damaged.1`, … when that is taken), so the next [`Self::load`]
    /// rebuilds the records from `identity.json` and the marks of the objects in the kernel, as
    /// after a `state.json` lost to a power cut. The file is kept (remove never deletes it:
    /// the directory stays while it is there). Returns where it went.
    pub fn set_aside_damaged(&self) -> Result<PathBuf, StateError> {
        let from = self.dir.state_file();
        let aside = (0..1000)
            .map(|n| match n {
                0 => self.dir.path().join(format!("{STATE_FILE}.damaged")),
                n => self.dir.path().join(format!("{STATE_FILE}.damaged.{n}")),
            })
            .find(|p| fs::symlink_metadata(p).is_err())
            .ok_or_else(|| StateError::Write {
                path: from.clone(),
                source: io::Error::other("too many state.json.damaged files: move them away"),
            })?;
        fs::rename(&from, &aside).map_err(|source| StateError::Write {
            path: from.clone(),
            source,
        })?;
        let _ = sync_dir(self.dir.path());
        self.forget_files();
        Ok(aside)
    }

    /// Puts a file [`Self::set_aside_damaged`] moved back (nothing could be rebuilt without it).
    pub fn put_back_damaged(&self, aside: &Path) {
        let _ = fs::rename(aside, self.dir.state_file());
        self.forget_files();
    }

    /// What the lock knew of the files goes (they changed under it): the next load reads them.
    fn forget_files(&self) {
        let mut files = self.files();
        let stale_temp = std::mem::take(&mut files.stale_temp);
        *files = Files {
            stale_temp,
            ..Files::default()
        };
    }

    /// The end of a complete `remove`: deletes the lock file (still held, so nobody can take it
    /// meanwhile; waiters notice it is gone and start over) and the directory if it is empty.
    pub fn release_and_delete(&self) {
        self.delete_lock_file();
        if keeps_dir(self.dir.path()) {
            return;
        }
        let _ = fs::remove_dir(self.dir.path());
    }

    /// Temp files left by a run that crashed mid-save (of the state files, and of the
    /// nftables ruleset cache, `ruleset-cache.json.tmp-PID`, of a process that is gone), kept
    /// for [`StateLock::stale_temp_files_removed`]. Only safe while holding the lock.
    pub(super) fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.dir.path()) else {
            return;
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let state_temp = (name.starts_with(TEMP_PREFIX)
                || name.starts_with(IDENTITY_TEMP_PREFIX)
                || name.starts_with(CONFIG_TEMP_PREFIX)
                || name.starts_with(MACHINE_TEMP_PREFIX))
                && name.ends_with(TEMP_SUFFIX);
            if (state_temp || is_stale_cache_temp(&name)) && fs::remove_file(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
        if !removed.is_empty() {
            self.files().stale_temp = removed;
        }
    }

    /// Releases the lock as dropping it does, leaving what it holds in memory (the states
    /// read and written, the deployment config they share) unfreed: for a process that ends
    /// with the command, where freeing a cluster's config piece by piece is wasted work. The
    /// journal's file is closed; nothing else it holds is a resource.
    pub fn release_leaving_memory(self) {
        let mut files = std::mem::take(&mut *self.files());
        drop(files.journal.take());
        std::mem::forget(files);
        drop(self);
    }

    /// The temp files `StateLock::remove_stale_temp_files` deleted when the lock was taken.
    pub fn stale_temp_files_removed(&self) -> Vec<PathBuf> {
        self.files().stale_temp.clone()
    }
}

/// What a lock knows of its files.
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// `load` ran (saves before it would not know the journal's base).
    loaded: bool,
    /// The hash of `state.json`'s bytes (of its absence when there is none).
    base: u64,
    /// What `state.json` holds.
    on_disk: Option<DeploymentState>,
    /// The state last written (to `state.json` or the journal): an equal save is skipped.
    last: Option<DeploymentState>,
    journal: Option<File>,
    journal_len: u64,
    /// The journal ends in a torn line (a crash mid-write): the next line starts on its own.
    needs_newline: bool,
    /// What `identity.json` holds.
    durable_identity: Option<Identity>,
    /// Temp files of crashed runs deleted when the lock was taken.
    stale_temp: Vec<PathBuf>,
    /// The hash of `config.json`'s bytes (0: none, or not read).
    config_hash: u64,
    /// The config last found equal to `config.json`'s (compared by address, no serialising).
    config_seen: Option<Arc<Value>>,
}

/// What must survive a power cut: who the deployment is, and the values it chose that the
/// network around it (DHCP leases, ARP caches, routes) remembers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Identity {
    deployment_id: DeploymentId,
    #[serde(default)]
    macs: std::collections::BTreeMap<String, edgenet_core::mac::MacAddr>,
    #[serde(default)]
    auto_subnet: Option<ipnet::Ipv4Net>,
    /// The machine name the nodes are named after (`--machine-name`, else the config's or the
    /// host's): the records that name it may be lost, and a deploy that took the host name
    /// instead would delete the node namespaces and give the nodes new MACs (B23b F5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    machine_name: Option<String>,
}

impl Identity {
    fn of(state: &DeploymentState) -> Self {
        Identity {
            deployment_id: state.deployment_id.clone(),
            macs: state.macs.clone(),
            auto_subnet: state.auto_subnet,
            machine_name: state.machine_name().map(str::to_string),
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// What [`replace_file`] fsyncs.
#[derive(Clone, Copy, PartialEq)]
enum Fsync {
    None,
    /// The new file's content, not yet its name (a later fsync of the directory makes it).
    File,
    /// The new file and then the directory: after a power cut too the file is the old one or
    /// the new one, on any filesystem.
    All,
}

/// `path` replaced by `bytes` through a temp file (`prefix…`) in its directory and a rename: a
/// reader sees the old file or the new one.
fn replace_file(path: &Path, prefix: &str, bytes: &[u8], sync: Fsync) -> io::Result<()> {
    let dir = path
        .parent()
        .expect("state files live in the state directory");
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if sync != Fsync::None {
        tmp.as_file().sync_all()?;
    }
    tracing::debug!("write {}", path.display());
    tmp.persist(path).map_err(|e| e.error)?;
    if sync == Fsync::All {
        sync_dir(dir)?;
    }
    Ok(())
}

/// `ruleset-cache.json.tmp-PID` (see [`edgenet_host::nft`]'s cache) of a process that is no
/// longer running: a run killed between writing it and renaming it.
fn is_stale_cache_temp(name: &str) -> bool {
    name.strip_prefix(edgenet_host::nft::CACHE_FILE)
        .and_then(|rest| rest.strip_prefix(".tmp-"))
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// Always durable: see the module doc.
fn write_identity(dir: &Path, identity: &Identity) -> Result<(), StateError> {
    let path = dir.join(IDENTITY_FILE);
    let mut json = serde_json::to_vec(identity).expect("identity always serialises");
    json.push(b'\n');
    match create_durably(&path, &json) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            replace_file(&path, IDENTITY_TEMP_PREFIX, &json, Fsync::All)
        }
        done => done,
    }
    .map_err(|source| StateError::Write { path, source })
}

/// A new file `path` holding `bytes`, fsynced, then its directory: durable like a replacement
/// through a temp file, with one journal commit less (the rename's) — a first deploy waits for
/// it. `AlreadyExists` when there is a file there to replace. A power cut or a kill before the
/// fsync can leave the file empty or cut: a reader takes such an identity for none, as if the
/// file were not there, and the next deploy replaces it.
fn create_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_dir(
        path.parent()
            .expect("state files live in the state directory"),
    )
}

/// FNV-1a of a file's bytes (`None`: no file); stable across builds, unlike `DefaultHasher`.
fn content_hash(bytes: Option<&[u8]>) -> u64 {
    let Some(bytes) = bytes else {
        return 0;
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

/// A state directory as read: the state (journal replayed), and what the lock needs to write.
#[derive(Clone)]
struct ReadState {
    state: Option<DeploymentState>,
    on_disk: Option<DeploymentState>,
    base: u64,
    journal_len: u64,
    needs_newline: bool,
    identity: Option<Identity>,
    config_hash: u64,
    /// The config given to the read ([`StateDir::peek_given`]) when `config.json` holds it.
    config_seen: Option<Arc<Value>>,
    /// The state was rebuilt from the kernel's marks (`state.json` gone, `identity.json` kept).
    rebuilt: bool,
}

/// The largest state file read: a 255-machine cluster's state is ~60 kB; anything near this
/// is not one (a link to `/dev/zero` would otherwise be read until memory runs out).
const MAX_STATE_FILE: u64 = 64 << 20;

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    crate::own_files::read(path, MAX_STATE_FILE).map_err(|e| StateError::Read {
        path: path.to_path_buf(),
        source: if e.kind() == io::ErrorKind::Other {
            io::Error::other(format!(
                "{e} (edgenet writes only its own regular files here): move it away"
            ))
        } else {
            e
        },
    })
}

/// `identity.json` or `config.json`: aids beside the records (`state.json`), so something else
/// in their place (a directory, a FIFO, a link: never followed or opened) or a file that cannot
/// be read is said and read as missing: `remove` and `status` work from the records, and
/// `deploy` refuses before any change ([`StateDir::odd_files`]).
fn read_aid(path: &Path) -> Option<Vec<u8>> {
    read_optional(path).unwrap_or_else(|e| {
        warn_once(format!("{e}; read as missing"));
        None
    })
}

/// A warning said once per process: a command reads the state directory several times, and the
/// same odd file is one thing to say.
fn warn_once(message: String) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if !said.contains(&message) {
        tracing::warn!("{message}");
        said.push(message);
    }
}

/// The bytes of a state directory's files, as read for one [`ReadState`].
#[derive(PartialEq, Eq)]
struct RawFiles {
    state: Option<Vec<u8>>,
    identity: Option<Vec<u8>>,
    journal: Option<Vec<u8>>,
    /// `None` as well when the config was not asked for.
    config: Option<Vec<u8>>,
    with_config: bool,
}

impl RawFiles {
    /// `with_config`: the deployment config too (from `config.json`, when the records do not
    /// hold it as an earlier edgenet wrote them).
    fn read(dir: &Path, with_config: bool) -> Result<RawFiles, StateError> {
        let state = read_optional(&dir.join(STATE_FILE))?;
        let identity = read_aid(&dir.join(IDENTITY_FILE));
        let journal = read_optional(&dir.join(JOURNAL_FILE))?;
        let config = if with_config {
            read_aid(&dir.join(CONFIG_FILE))
        } else {
            None
        };
        Ok(RawFiles {
            state,
            identity,
            journal,
            config,
            with_config,
        })
    }
}

/// The last peek of this thread: its directory, the bytes it read and what they parsed to.
/// Only a state read from the files alone is kept (not one rebuilt from the kernel's marks).
/// Per thread, since a run peeks and loads on one thread, while threads side by side (tests)
/// peek other directories: a process-wide slot let them take each other's peek away.
type Peeked = (PathBuf, RawFiles, ReadState);
thread_local! {
    static LAST_PEEK: std::cell::RefCell<Option<Peeked>> = const { std::cell::RefCell::new(None) };
}

fn remember_peek(dir: &Path, raw: RawFiles, read: ReadState) {
    LAST_PEEK.with_borrow_mut(|last| {
        *last = (!read.rebuilt).then(|| (dir.to_path_buf(), raw, read));
    });
}

/// What the last peek of `dir` on this thread parsed, when `raw` is byte for byte what it
/// read (taken: a state directory is loaded once per lock).
fn peeked_as(dir: &Path, raw: &RawFiles) -> Option<ReadState> {
    LAST_PEEK.with_borrow_mut(|last| match last.take() {
        Some((d, r, read)) if d == dir && r == *raw => Some(read),
        _ => None,
    })
}

fn parse_dir_state(dir: &Path, raw: &RawFiles) -> Result<ReadState, StateError> {
    parse_dir_state_given(dir, raw, None)
}

/// Whether `bytes` (of `config.json`) are `config` as [`StateLock`] writes it, and parse back
/// to it: compact JSON and a newline, and no fractional number (serde_json parses those to the
/// nearest value only within a unit in the last place).
fn holds_exactly(bytes: &[u8], config: &Value) -> bool {
    fn has_float(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.is_f64(),
            Value::Array(a) => a.iter().any(has_float),
            Value::Object(m) => m.values().any(has_float),
            _ => false,
        }
    }
    let Some(json) = bytes.strip_suffix(b"\n") else {
        return false;
    };
    bytes.len() <= edgenet_core::config::MAX_CONFIG_BYTES
        && !has_float(config)
        && serde_json::to_vec(config).is_ok_and(|written| written == json)
}

/// [`parse_dir_state`], taking `given` for the config when `config.json` holds it exactly.
fn parse_dir_state_given(
    dir: &Path,
    raw: &RawFiles,
    given: Option<&Arc<Value>>,
) -> Result<ReadState, StateError> {
    let state_path = dir.join(STATE_FILE);
    let bytes = raw.state.as_deref();
    let identity = raw
        .identity
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Identity>(b).ok());
    let base = content_hash(bytes);
    // What a power cut leaves of a replaced file on a filesystem without ext4's heuristics.
    let lost = bytes.is_some_and(|b| b.iter().all(|c| *c == 0 || c.is_ascii_whitespace()));
    let on_disk = match bytes {
        Some(b) if lost && identity.is_some() => {
            tracing::warn!(
                "{} is empty (a power cut?); using the deployment's identity from {IDENTITY_FILE}",
                state_path.display()
            );
            let _ = b;
            None
        }
        Some(b) => Some(parse_state(&state_path, b)?),
        None => None,
    };
    let journal = raw.journal.as_deref().unwrap_or_default();
    let needs_newline = journal.last().is_some_and(|c| *c != b'\n');
    let replayed = replay(journal, base);
    let mut on_disk = on_disk;
    let mut config_hash = 0;
    let mut config = None;
    let mut config_seen = None;
    if raw.with_config {
        if let Some(bytes) = raw.config.as_deref() {
            // Compared by address from here on, never by its bytes (`config_hash` stays 0).
            if let Some(given) = given.filter(|g| holds_exactly(bytes, g)) {
                config = Some(given.clone());
                config_seen = Some(given.clone());
            }
        }
    }
    if raw.with_config && config.is_none() {
        if let Some(bytes) = raw.config.as_deref() {
            config_hash = content_hash(Some(bytes));
            // Read as `-c` reads a file (a BOM, comments, UTF-16: an operator may have edited
            // it in a Windows editor). A damaged one must not stop a remove or status; deploy
            // and scale-config without `-c` refuse it (`no-config`), `-c` writes it again.
            match edgenet_core::config::parse_text(bytes) {
                Ok(value) => config = Some(Arc::new(value)),
                Err(e) => warn_once(format!(
                    "{} is damaged ({e}): deploy without -c refuses it (no-config); deploy -c FILE records a config again",
                    dir.join(CONFIG_FILE).display()
                )),
            }
        }
    }
    // No (readable) `config.json`: the config an earlier edgenet kept in `state.json`. A
    // journal's lines never hold it, so a run killed before its first `config.json` over such a
    // state would otherwise lose it.
    if config.is_none() {
        config = on_disk.as_ref().and_then(|s| s.config.clone());
    }
    let fill = |s: &mut DeploymentState| {
        if s.config.is_none() {
            s.config.clone_from(&config);
        }
    };
    if let Some(s) = on_disk.as_mut() {
        fill(s);
    }
    // Rebuilt from the kernel's marks, not from the files alone (a peek's is not reused).
    let rebuilt = replayed.is_none() && on_disk.is_none() && identity.is_some();
    let state = match (replayed, &on_disk) {
        (Some(s), _) => Some(s),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => identity.as_ref().map(|i| {
            let mut s = DeploymentState::new(i.deployment_id.clone());
            s.macs = i.macs.clone();
            s.auto_subnet = i.auto_subnet;
            s.recovered_machine_name.clone_from(&i.machine_name);
            // The records went with `state.json`; the objects keep their marks.
            super::recover::rebuild(&mut s);
            s
        }),
    };
    let state = state.map(|mut s| {
        fill(&mut s);
        s
    });
    Ok(ReadState {
        state,
        on_disk,
        base,
        journal_len: journal.len() as u64,
        needs_newline,
        identity,
        config_hash,
        config_seen,
        rebuilt,
    })
}

/// The newest journal line that parses and follows the `state.json` of hash `base`.
fn replay(journal: &[u8], base: u64) -> Option<DeploymentState> {
    #[derive(serde::Deserialize)]
    struct Line {
        base: String,
        state: DeploymentState,
    }
    let want = format!("{base:016x}");
    journal
        .split(|c| *c == b'\n')
        .rev()
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Line>(l).ok())
        .find(|l| l.base == want)
        .filter(|l| l.state.schema_version == SCHEMA_VERSION)
        .map(|l| l.state)
}

fn parse_state(path: &Path, bytes: &[u8]) -> Result<DeploymentState, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    // The known layout straight into the state (no `Value` tree: this runs twice per deploy);
    // otherwise two steps, so that a newer layout is reported as such rather than as garbage.
    if let Ok(state) = serde_json::from_slice::<DeploymentState>(bytes) {
        if state.schema_version == SCHEMA_VERSION {
            return Ok(state);
        }
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
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
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::sample_plan;
    use crate::state::{ObjectKind, ObjectStatus};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn id(s: &str) -> DeploymentId {
        s.parse().unwrap()
    }

    fn lock_in(dir: &Path) -> StateLock {
        StateDir::new(dir).lock("test", Duration::ZERO).unwrap()
    }

    fn ino(path: &Path) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(path).map(|m| m.ino()).ok()
    }

    /// A state file replaced by a FIFO or by a link to an endless device is an error naming
    /// the file, at once: not a hang, not memory without end. `config.json` or `identity.json`
    /// so (aids beside the records) is read as missing, and named by `odd_files`.
    #[test]
    fn a_fifo_or_an_endless_file_in_the_state_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &dir.path().join(CONFIG_FILE),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(IDENTITY_FILE)).unwrap();
        assert!(StateDir::new(dir.path()).peek().unwrap().is_none());
        assert_eq!(
            StateDir::new(dir.path()).odd_files(),
            [
                (dir.path().join(IDENTITY_FILE), "a symbolic link"),
                (dir.path().join(CONFIG_FILE), "a FIFO")
            ]
        );
        fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join(STATE_FILE)).unwrap();
        let err = StateDir::new(dir.path()).peek().unwrap_err().to_string();
        assert!(
            err.contains(STATE_FILE) && err.contains("regular file"),
            "{err}"
        );
    }

    fn journal_len(dir: &Path) -> u64 {
        fs::metadata(dir.join(JOURNAL_FILE))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Records go to the journal (no rename of `state.json`); a new lock, and a reader without
    /// one, see the newest record, as after a killed run.
    #[test]
    fn journal_records_are_appended_and_replayed_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let mut state = DeploymentState::new(id("0a1b2c"));
        lock.finish(&state).unwrap();
        let file = ino(&dir.path().join(STATE_FILE));
        assert!(file.is_some());
        state.begin_deploy(&sample_plan());
        lock.save_journal(&state).unwrap();
        state.record_object(ObjectKind::Bridge, "aksedgesw-int", None);
        lock.save_journal(&state).unwrap();
        let len = journal_len(dir.path());
        lock.save_journal(&state).unwrap();
        assert_eq!(journal_len(dir.path()), len, "an equal record is skipped");
        assert_eq!(ino(&dir.path().join(STATE_FILE)), file, "no rename");
        drop(lock); // the process dies here: no finish
        assert_eq!(
            StateDir::new(dir.path()).peek().unwrap().unwrap(),
            state,
            "a reader sees the journal"
        );
        let lock = lock_in(dir.path());
        assert_eq!(lock.load().unwrap().unwrap(), state);
        // The run after it finishes: one state file, an empty journal.
        state.finish_deploy();
        lock.finish(&state).unwrap();
        assert_eq!(journal_len(dir.path()), 0);
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["phase"], "deployed");
        drop(lock);
        assert_eq!(lock_in(dir.path()).load().unwrap().unwrap(), state);
    }

    /// A run that changes nothing writes nothing: `state.json` keeps its inode, no journal.
    #[test]
    fn an_unchanged_finish_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = DeploymentState::new(id("0a1b2c"));
        state.finish_deploy();
        lock_in(dir.path()).finish(&state).unwrap();
        let file = ino(&dir.path().join(STATE_FILE));
        let lock = lock_in(dir.path());
        let loaded = lock.load().unwrap().unwrap();
        lock.save_journal(&loaded).unwrap();
        lock.finish(&loaded).unwrap();
        assert_eq!(ino(&dir.path().join(STATE_FILE)), file);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        // Records written during a run that ends where it began are dropped with the journal.
        let mut during = loaded.clone();
        during.begin_deploy(&sample_plan());
        lock.save_journal(&during).unwrap();
        assert!(journal_len(dir.path()) > 0);
        lock.finish(&loaded).unwrap();
        assert_eq!(journal_len(dir.path()), 0);
        assert_eq!(ino(&dir.path().join(STATE_FILE)), file);
        drop(lock);
        assert_eq!(lock_in(dir.path()).load().unwrap().unwrap(), loaded);
    }

    /// Lines written before `state.json` was replaced (a crash before the journal was
    /// truncated) name the old file and are never replayed over the new one; a torn last line
    /// is skipped, and the next record starts on a line of its own.
    #[test]
    fn stale_and_torn_journal_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let mut old = DeploymentState::new(id("0a1b2c"));
        lock.save_journal(&old).unwrap();
        assert!(
            dir.path().join(STATE_FILE).exists() && journal_len(dir.path()) == 0,
            "the first record makes state.json"
        );
        old.begin_deploy(&sample_plan());
        lock.save_journal(&old).unwrap();
        let stale = fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        let mut new = old.clone();
        new.finish_deploy();
        lock.finish(&new).unwrap();
        drop(lock);
        fs::write(dir.path().join(JOURNAL_FILE), &stale).unwrap();
        let lock = lock_in(dir.path());
        assert_eq!(
            lock.load().unwrap().unwrap(),
            new,
            "the stale line is ignored"
        );
        // Torn: half a record at the end.
        let mut torn = stale.clone();
        torn.extend_from_slice(&stale[..stale.len() / 2]);
        fs::write(dir.path().join(JOURNAL_FILE), &torn).unwrap();
        drop(lock);
        let lock = lock_in(dir.path());
        assert_eq!(lock.load().unwrap().unwrap(), new);
        let mut next = new.clone();
        next.record_object(ObjectKind::Veth, "en1", None);
        lock.save_journal(&next).unwrap();
        drop(lock);
        assert_eq!(lock_in(dir.path()).load().unwrap().unwrap(), next);
    }

    /// The identity is written durably once, and again only when it changes; after a power cut
    /// on a filesystem that shows a replaced `state.json` empty, it is what comes back.
    #[test]
    fn the_identity_survives_an_emptied_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let mut state = lock.load_or_new().unwrap();
        state.auto_subnet = Some("192.168.3.0/24".parse().unwrap());
        let mac = state.mac_for_random("m1-ledge", &[]);
        let saver = lock.identity_saver(&state).expect("not durable yet");
        saver.join().unwrap().unwrap();
        assert!(lock.identity_saver(&state).is_none(), "durable already");
        state.finish_deploy();
        lock.finish(&state).unwrap();
        drop(lock);
        let lock = lock_in(dir.path());
        lock.load().unwrap();
        assert!(lock.identity_saver(&state).is_none(), "read back from disk");
        drop(lock);
        // A power cut on XFS: the renamed file's data never reached the disk.
        fs::write(dir.path().join(STATE_FILE), b"").unwrap();
        let back = lock_in(dir.path()).load().unwrap().unwrap();
        assert_eq!(back.deployment_id, state.deployment_id);
        assert_eq!(back.macs.get("m1-ledge"), Some(&mac));
        assert_eq!(back.auto_subnet, state.auto_subnet);
        // Without the identity file an empty state file stays an error (never guessed).
        fs::remove_file(dir.path().join(IDENTITY_FILE)).unwrap();
        assert!(matches!(
            lock_in(dir.path()).load(),
            Err(StateError::Corrupt { .. })
        ));
    }

    /// A first identity is created in place (no temp file left behind); a changed one replaces
    /// it; one left empty by a write cut short is read as none and replaced by the next save.
    #[test]
    fn the_identity_is_created_in_place_then_replaced_and_an_empty_one_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let mut state = lock.load_or_new().unwrap();
        state.mac_for_random("m1-ledge", &[]);
        lock.identity_saver(&state)
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        let names = |d: &Path| {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert!(names(dir.path()).contains(&IDENTITY_FILE.to_string()));
        assert!(
            !names(dir.path()).iter().any(|n| n.ends_with(TEMP_SUFFIX)),
            "{:?}",
            names(dir.path())
        );
        let on_disk = |d: &Path| -> Identity {
            serde_json::from_slice(&fs::read(d.join(IDENTITY_FILE)).unwrap()).unwrap()
        };
        assert_eq!(on_disk(dir.path()), Identity::of(&state));
        state.mac_for_random("m2-ledge", &[]);
        lock.identity_saver(&state)
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(on_disk(dir.path()), Identity::of(&state));
        drop(lock);
        // Killed between the file's creation and its write.
        fs::write(dir.path().join(IDENTITY_FILE), b"").unwrap();
        let lock = lock_in(dir.path());
        lock.load().unwrap();
        let saver = lock
            .identity_saver(&state)
            .expect("an empty identity is none");
        saver.join().unwrap().unwrap();
        assert_eq!(on_disk(dir.path()), Identity::of(&state));
    }

    /// A durable save writes the identity and empties the journal; `clear` takes every file.
    #[test]
    fn a_durable_save_empties_the_journal_and_clear_takes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let mut state = DeploymentState::new(id("0a1b2c"));
        for i in 0..3 {
            state.note(format!("event {i}"));
            lock.save_journal(&state).unwrap();
        }
        assert!(journal_len(dir.path()) > 0);
        lock.save(&state).unwrap();
        assert_eq!(journal_len(dir.path()), 0);
        assert!(
            dir.path().join(IDENTITY_FILE).exists(),
            "the identity with it"
        );
        assert_eq!(StateDir::new(dir.path()).peek().unwrap().unwrap(), state);
        lock.save_journal(&DeploymentState::new(id("0a1b2d")))
            .unwrap();
        lock.clear().unwrap();
        for f in [STATE_FILE, JOURNAL_FILE, IDENTITY_FILE, CONFIG_FILE] {
            assert!(!dir.path().join(f).exists(), "{f}");
        }
        assert!(lock.load().unwrap().is_none());
    }

    /// A lock released leaving its memory is released as a dropped one: the next run takes it
    /// at once, the holder's line is gone, and what was saved is there.
    #[test]
    fn a_lock_released_leaving_its_memory_is_free_and_its_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_in(dir.path());
        let mut state = lock.load_or_new().unwrap();
        state.config = Some(Arc::new(serde_json::json!({ "Note": "kept" })));
        state.begin_deploy(&sample_plan());
        lock.save_journal(&state).unwrap();
        state.record_object(ObjectKind::Veth, "en1", None);
        lock.save_journal(&state).unwrap();
        assert!(StateDir::new(dir.path()).holder().is_some());
        lock.release_leaving_memory();
        assert_eq!(StateDir::new(dir.path()).holder(), None);
        assert_eq!(fs::read(dir.path().join(LOCK_FILE)).unwrap(), b"");
        let again = StateDir::new(dir.path())
            .lock("test", std::time::Duration::ZERO)
            .unwrap();
        assert_eq!(again.load().unwrap().unwrap(), state);
        let mut written = serde_json::to_vec(&**state.config.as_ref().unwrap()).unwrap();
        written.push(b'\n');
        assert_eq!(fs::read(dir.path().join(CONFIG_FILE)).unwrap(), written);
        // The same config again, as another value (read back by the next run): compared by
        // its bytes, not written again.
        let config_file = dir.path().join(CONFIG_FILE);
        let first = ino(&config_file);
        let mut next = state.clone();
        next.config = Some(Arc::new(serde_json::json!({ "Note": "kept" })));
        next.finish_deploy();
        again.finish(&next).unwrap();
        assert_eq!(ino(&config_file), first);
    }

    /// A deploy given the config `config.json` holds (byte for byte as written) takes that
    /// value instead of a parse of the file; any other config (keys in another order, a
    /// fractional number, another value) is not taken: the file is parsed as ever.
    #[test]
    fn a_peek_given_the_recorded_config_takes_it_only_when_the_file_holds_it_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let record = |config: serde_json::Value| {
            let lock = lock_in(dir.path());
            let mut state = lock.load_or_new().unwrap();
            state.config = Some(Arc::new(config));
            state.begin_deploy(&sample_plan());
            lock.save(&state).unwrap();
        };
        let peek = |given: &Arc<Value>| {
            StateDir::new(dir.path())
                .peek_given(Some(given))
                .unwrap()
                .unwrap()
                .config
                .unwrap()
        };
        let config = serde_json::json!({ "A": 1, "B": [true, null, "x\u{1}\"é"], "C": {"D": -2} });
        record(config.clone());
        let given = Arc::new(config.clone());
        assert!(Arc::ptr_eq(&peek(&given), &given));
        // Loaded under the lock: the file is known to hold it, nothing is written again.
        let config_file = dir.path().join(CONFIG_FILE);
        let first = ino(&config_file);
        let lock = lock_in(dir.path());
        let mut state = lock.load().unwrap().unwrap();
        assert!(Arc::ptr_eq(state.config.as_ref().unwrap(), &given));
        state.record_object(ObjectKind::Veth, "en1", None);
        lock.finish(&state).unwrap();
        assert_eq!(ino(&config_file), first);
        drop(lock);

        let mut reordered = serde_json::json!({ "B": config["B"], "A": 1, "C": config["C"] });
        assert_eq!(reordered, config);
        let other = Arc::new(reordered.clone());
        let read = peek(&other);
        assert!(!Arc::ptr_eq(&read, &other));
        assert_eq!(
            serde_json::to_string(&*read).unwrap(),
            serde_json::to_string(&config).unwrap()
        );
        reordered["A"] = serde_json::json!(2);
        let read = peek(&Arc::new(reordered));
        assert_eq!(*read, config);

        let fractional = serde_json::json!({ "A": 0.30000000000000004 });
        record(fractional.clone());
        let given = Arc::new(fractional.clone());
        let read = peek(&given);
        assert!(!Arc::ptr_eq(&read, &given), "parsed, not taken");
        assert_eq!(*read, fractional);
    }

    /// The deployment config lives in `config.json`, written once and again only when it
    /// changes: never in `state.json` nor in a journal line (a cluster's config lists every
    /// machine). Readers get it back; `peek_records` skips it; `clear` takes it.
    #[test]
    fn the_config_is_kept_beside_the_records_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let marker = "only-in-the-config-7f3a";
        let config = serde_json::json!({ "DeploymentType": "ScalableCluster", "Note": marker });
        let lock = lock_in(dir.path());
        let mut state = lock.load_or_new().unwrap();
        state.config = Some(Arc::new(config.clone()));
        state.begin_deploy(&sample_plan());
        lock.save_journal(&state).unwrap();
        let config_file = dir.path().join(CONFIG_FILE);
        let first = ino(&config_file).expect("the first record writes config.json");
        let mode = fs::metadata(&config_file).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0);
        for name in ["en1", "en2"] {
            state.record_object(ObjectKind::Veth, name, None);
            lock.save_journal(&state).unwrap();
        }
        let journal = fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(journal.lines().count(), 2);
        assert!(!journal.contains(marker), "{journal}");
        drop(lock); // killed here: the journal is replayed, the config read beside it
        assert_eq!(StateDir::new(dir.path()).peek().unwrap().unwrap(), state);
        let records = StateDir::new(dir.path()).peek_records().unwrap().unwrap();
        assert_eq!(records.config, None);
        assert_eq!(records.objects, state.objects);
        let lock = lock_in(dir.path());
        assert_eq!(lock.load().unwrap().unwrap(), state);
        state.finish_deploy();
        lock.finish(&state).unwrap();
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(!text.contains(marker), "{text}");
        assert_eq!(
            ino(&config_file),
            Some(first),
            "an unchanged config is not rewritten"
        );
        // Another config (the cluster grew): written again.
        state.config = Some(Arc::new(serde_json::json!({ "Note": "grown" })));
        lock.finish(&state).unwrap();
        assert_ne!(ino(&config_file), Some(first));
        drop(lock);
        assert_eq!(lock_in(dir.path()).load().unwrap().unwrap(), state);
        // A damaged config.json costs only the config, never the deployment.
        fs::write(&config_file, b"{").unwrap();
        let lock = lock_in(dir.path());
        assert_eq!(lock.load().unwrap().unwrap().config, None);
        lock.clear().unwrap();
        assert!(!config_file.exists());
    }

    /// A run killed after its first journal record but before its first `config.json`, over a
    /// `state.json` of an earlier edgenet that holds the config: the journal's lines never
    /// carry it, so the config comes from `state.json` (it was lost, and `scale-config` said
    /// "no deployment").
    #[test]
    fn a_journal_over_an_earlier_state_keeps_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = DeploymentState::new(id("0a1b2e"));
        state.begin_deploy(&sample_plan());
        state.finish_deploy();
        let config = serde_json::json!({ "DeploymentType": "ScalableCluster", "Machines": [{}] });
        let mut old = serde_json::to_value(&state).unwrap();
        old["config"] = config.clone();
        let bytes = serde_json::to_vec_pretty(&old).unwrap();
        fs::write(dir.path().join(STATE_FILE), &bytes).unwrap();
        let mut next = state.clone();
        next.begin_deploy(&sample_plan());
        let base = format!("{:016x}", content_hash(Some(&bytes)));
        let mut line =
            serde_json::to_vec(&serde_json::json!({ "base": base, "state": next })).unwrap();
        line.push(b'\n');
        fs::write(dir.path().join(JOURNAL_FILE), line).unwrap();
        let loaded = lock_in(dir.path()).load().unwrap().unwrap();
        assert_eq!(loaded.phase, next.phase);
        assert_eq!(loaded.config, Some(Arc::new(config.clone())));
        let peeked = StateDir::new(dir.path()).peek().unwrap().unwrap();
        assert_eq!(peeked.config, Some(Arc::new(config)));
    }

    /// A `state.json` written by an earlier edgenet, with the config inside: read as it is,
    /// and its next replacement moves the config to `config.json`.
    #[test]
    fn a_state_with_the_config_inside_is_read_and_then_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = DeploymentState::new(id("0a1b2c"));
        state.begin_deploy(&sample_plan());
        state.finish_deploy();
        let config = serde_json::json!({ "DeploymentType": "ScalableCluster", "Machines": [{}] });
        let mut old = serde_json::to_value(&state).unwrap();
        old["config"] = config.clone();
        fs::write(
            dir.path().join(STATE_FILE),
            serde_json::to_vec_pretty(&old).unwrap(),
        )
        .unwrap();
        state.config = Some(Arc::new(config.clone()));
        assert_eq!(StateDir::new(dir.path()).peek().unwrap().unwrap(), state);
        let lock = lock_in(dir.path());
        let loaded = lock.load().unwrap().unwrap();
        assert_eq!(loaded, state);
        // Nothing changed: nothing is rewritten.
        lock.finish(&loaded).unwrap();
        assert!(!dir.path().join(CONFIG_FILE).exists());
        let mut next = loaded.clone();
        next.note("redeployed");
        lock.finish(&next).unwrap();
        let text = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(!text.contains("ScalableCluster"), "{text}");
        drop(lock);
        assert_eq!(lock_in(dir.path()).load().unwrap().unwrap(), next);
        assert_eq!(
            lock_in(dir.path()).load().unwrap().unwrap().config,
            Some(Arc::new(config))
        );
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
        state.record_sysctl("net.ipv4.ip_forward", None, "0", "1", None);
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
        assert_eq!(names.len(), 3, "lock, state, identity: {names:?}");
        lock.clear().unwrap();
        assert!(lock.load().unwrap().is_none());
    }

    /// A load takes over what the peek before it parsed only while every file is byte for byte
    /// what the peek read: a state, journal or config written in between is read.
    #[test]
    fn a_load_reads_what_changed_since_the_peek() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let mut state = DeploymentState::new(id("0a1b2c"));
        state.begin_deploy(&sample_plan());
        state.config = Some(Arc::new(serde_json::json!({"SchemaVersion": "1.16"})));
        state.finish_deploy();
        lock_in(dir.path()).save(&state).unwrap();
        // Unchanged: the same state (its config the very value the peek read).
        let peeked = state_dir.peek().unwrap().unwrap();
        let loaded = lock_in(dir.path()).load().unwrap().unwrap();
        assert_eq!(loaded, peeked);
        assert!(Arc::ptr_eq(
            peeked.config.as_ref().unwrap(),
            loaded.config.as_ref().unwrap()
        ));
        // `state.json` replaced between the peek and the load, with as many bytes.
        state_dir.peek().unwrap();
        let file = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&file).unwrap();
        let changed = text.replace("\"phase\": \"deployed\"", "\"phase\": \"removing\"");
        assert_eq!(changed.len(), text.len(), "{text}");
        fs::write(&file, changed).unwrap();
        assert_eq!(
            lock_in(dir.path()).load().unwrap().unwrap().phase,
            crate::state::Phase::Removing
        );
        // A journal line, then a config, written between the peek and the load.
        state_dir.peek().unwrap();
        let lock = lock_in(dir.path());
        let mut journaled = lock.load().unwrap().unwrap();
        journaled.record_sysctl("net.ipv4.ip_forward", None, "0", "1", None);
        lock.save_journal(&journaled).unwrap();
        drop(lock);
        assert_eq!(lock_in(dir.path()).load().unwrap().unwrap(), journaled);
        state_dir.peek().unwrap();
        fs::write(
            dir.path().join(CONFIG_FILE),
            "{\"SchemaVersion\":\"1.17\"}\n",
        )
        .unwrap();
        assert_eq!(
            *lock_in(dir.path()).load().unwrap().unwrap().config.unwrap(),
            serde_json::json!({"SchemaVersion": "1.17"})
        );
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

    /// X25: `machine.json` goes through a temp file and a rename like every state file: what a
    /// kill between the two leaves is cleaned by the next lock, and taking an early record
    /// back restores both files' bytes or their absence.
    #[test]
    fn machine_choice_is_replaced_whole_and_an_early_record_goes_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let machine = dir.path().join(MACHINE_FILE);
        let config = dir.path().join(CONFIG_FILE);
        let lock = state_dir.lock("t", Duration::ZERO).unwrap();
        lock.record_machine_choice(Some(b"{\"machine\":1}"))
            .unwrap();
        assert_eq!(fs::read(&machine).unwrap(), b"{\"machine\":1}");
        lock.record_machine_choice(Some(b"{\"machine\":2}"))
            .unwrap();
        assert_eq!(fs::read(&machine).unwrap(), b"{\"machine\":2}");
        let temps = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(TEMP_SUFFIX)
            })
            .count();
        assert_eq!(temps, 0);
        lock.record_config(&Arc::new(serde_json::json!({"a": 1})))
            .unwrap();
        lock.take_back_early_record(Some(b"old\n"), None).unwrap();
        assert_eq!(fs::read(&config).unwrap(), b"old\n");
        assert!(!machine.exists());
        lock.take_back_early_record(None, None).unwrap();
        assert!(!config.exists());
        drop(lock);
        let stale = dir
            .path()
            .join(format!("{MACHINE_TEMP_PREFIX}Ab3{TEMP_SUFFIX}"));
        fs::write(&stale, "{\"mach").unwrap();
        let _lock = state_dir.lock("t", Duration::ZERO).unwrap();
        assert!(!stale.exists());
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
    fn the_holder_is_named_while_a_run_holds_the_lock_and_none_after() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path().join("s"));
        assert_eq!(state_dir.holder(), None, "no directory: no run");
        let held = state_dir.lock("edgenet remove", Duration::ZERO).unwrap();
        let holder = state_dir.holder().expect("held");
        assert_eq!(
            holder,
            format!("edgenet remove (pid {})", std::process::id())
        );
        drop(held);
        assert_eq!(state_dir.holder(), None);
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
}
