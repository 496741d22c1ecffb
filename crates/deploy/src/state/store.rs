//! Reading and writing the state file under the held lock: tempfile + fsync + rename +
//! fsync(dir), so a crash at any point leaves either the old or the new state.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
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

/// `remove` empties the state directory and deletes it, except the package's own
/// /var/lib/edgenet (dpkg installed it, 0700, and checks it is there: `dpkg -V`).
pub fn keeps_dir(path: &Path) -> bool {
    path == Path::new(DEFAULT_STATE_DIR)
}

pub const DEFAULT_STATE_DIR: &str = "/var/lib/edgenet";
pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "lock";
/// How long a second deploy waits for the first before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

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
        read_state(&self.state_file())
    }
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
    pub(super) fn remove_stale_temp_files(&self) {
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
    use crate::state::{ObjectKind, ObjectStatus};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn id(s: &str) -> DeploymentId {
        s.parse().unwrap()
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
