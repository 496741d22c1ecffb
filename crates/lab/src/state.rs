//! What a lab has created, persisted in `<dir>/lab.json` before and after every step, so that
//! `down` from another process (or after a crash) removes exactly what exists and nothing else.
//!
//! Intent is recorded *before* an object is made (a namespace name, a machine's deploy), so a
//! crash between the two leaves at most a record of something missing, which `down` accepts.
//! A service's PID can only be recorded after the spawn; the window is one write.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::machine::LabMachine;

pub(crate) const STATE_FILE: &str = "lab.json";
pub(crate) const LOCK_FILE: &str = "lab.lock";
const STATE_VERSION: u32 = 1;

/// The persisted record of one lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabState {
    pub version: u32,
    pub name: String,
    pub machines_wanted: u8,
    pub proxy: bool,
    pub timeout_ms: u64,
    /// Namespaces in creation order.
    pub namespaces: Vec<String>,
    /// `<dir>/machines` is (or is about to be) a tmpfs of the lab's: set before mounting,
    /// so `down` after a crash unmounts it too.
    #[serde(default)]
    pub machines_tmpfs: bool,
    pub services: Vec<ServiceRecord>,
    pub machines: Vec<MachineRecord>,
}

impl LabState {
    pub fn new(name: &str, machines: u8, proxy: bool, timeout_ms: u64) -> Self {
        LabState {
            version: STATE_VERSION,
            name: name.to_string(),
            machines_wanted: machines,
            proxy,
            timeout_ms,
            namespaces: Vec::new(),
            machines_tmpfs: false,
            services: Vec::new(),
            machines: Vec::new(),
        }
    }
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `http`, `dns-upstream`, `dns-lan`, `proxy`.
    pub name: String,
    pub netns: String,
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`): a PID that was
    /// reused by another process after ours died has a different one, and is left alone.
    pub start_time: u64,
    pub program: String,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MachineRecord {
    #[serde(flatten)]
    pub machine: LabMachine,
    /// Set before `deploy` is called: `down` then calls `undeploy` for it.
    pub deploy_started: bool,
}

/// The lab directory, held under an exclusive `flock` for the life of a [`crate::Lab`].
#[derive(Debug)]
pub(crate) struct LabDir {
    dir: PathBuf,
    /// Held (`flock`, [`edgenet_host::lock`]) while this is alive.
    _lock: File,
}

impl LabDir {
    /// Creates the directory if needed and takes its lock without waiting: two processes
    /// working on one lab at once is a mistake to report, not to queue.
    pub fn lock(dir: &Path) -> Result<Self, LabError> {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io("create lab dir", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| LabError::io("open lab lock", &lock_path, e))?;
        use edgenet_host::lock::{exclusive, LockError};
        match exclusive(&file, std::time::Instant::now(), std::time::Duration::ZERO) {
            Ok(()) => Ok(LabDir {
                dir: dir.to_path_buf(),
                _lock: file,
            }),
            Err(LockError::Busy { .. }) => Err(LabError::Locked {
                dir: dir.to_path_buf(),
                lock: lock_path,
            }),
            Err(LockError::Io(e)) => Err(LabError::io("lock", lock_path, e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    pub fn read(&self) -> Result<Option<LabState>, LabError> {
        let path = self.state_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LabError::io("read", path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| LabError::State { path, source })
    }

    /// Writes the state atomically: a temporary file in the same directory, renamed over the
    /// old one. Another process, or this one after a crash, sees the old or the new state,
    /// never a mix. Not fsynced: what the state describes (namespaces under `/run/netns`,
    /// processes) does not survive a reboot either, and a write per machine step must stay
    /// cheap for labs of many machines.
    pub fn write(&self, state: &LabState) -> Result<(), LabError> {
        let path = self.state_path();
        let json = serde_json::to_vec_pretty(state).map_err(|source| LabError::State {
            path: path.clone(),
            source,
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".lab.json.")
            .tempfile_in(&self.dir)
            .map_err(|e| LabError::io("create temporary state file in", &self.dir, e))?;
        tmp.write_all(&json)
            .and_then(|()| tmp.write_all(b"\n"))
            .map_err(|e| LabError::io("write", tmp.path().to_path_buf(), e))?;
        tmp.persist(&path)
            .map_err(|e| LabError::io("replace", &path, e.error))?;
        Ok(())
    }

    /// For an up refused before it recorded anything: removes the lock file (still held, so
    /// no other lab run is working here) and, when `made_dir`, the directory if it is empty.
    pub fn discard(self, made_dir: bool) {
        let _ = std::fs::remove_file(self.dir.join(LOCK_FILE));
        if made_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    pub fn remove_state(&self) -> Result<(), LabError> {
        let path = self.state_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LabError::io("remove", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_second_holder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lab_dir = LabDir::lock(dir.path()).unwrap();
        assert!(lab_dir.read().unwrap().is_none());
        let mut state = LabState::new("x1", 2, true, 5000);
        state.namespaces.push("enl-x1-lan".into());
        lab_dir.write(&state).unwrap();
        let back = lab_dir.read().unwrap().unwrap();
        assert_eq!(back.namespaces, state.namespaces);
        assert_eq!(back.machines_wanted, 2);
        // No temporary files are left next to the state.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".lab.json.")),
            "{names:?}"
        );

        match LabDir::lock(dir.path()) {
            Err(LabError::Locked { .. }) => {}
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lab_dir);
        assert!(LabDir::lock(dir.path()).is_ok());
    }

    #[test]
    fn a_corrupt_state_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let lab_dir = LabDir::lock(dir.path()).unwrap();
        std::fs::write(lab_dir.state_path(), b"{not json").unwrap();
        let e = lab_dir.read().unwrap_err();
        assert!(e.to_string().contains("lab.json"), "{e}");
    }
}
