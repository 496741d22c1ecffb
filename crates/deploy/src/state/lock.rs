//! The state directory's lock: an exclusive `flock` on the directory itself (the real
//! exclusion) and on its `lock` file (which names the holder), through
//! [`edgenet_host::lock`], edgenet's one lock implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use edgenet_host::lock::{self, LockError};

use super::store::{create_private_dir, StateDir, StateError};

impl StateDir {
    /// Takes the exclusive lock, creating the directory if needed, waiting up to `timeout` for
    /// another holder. `purpose` (e.g. `edgenet deploy`) is written into the lock file with the
    /// PID, so whoever waits can say who holds it.
    pub fn lock(&self, purpose: &str, timeout: Duration) -> Result<StateLock, StateError> {
        let dir_err = |source| StateError::Dir {
            path: self.path().to_path_buf(),
            source,
        };
        let lock_path = self.lock_file();
        // Refused before anything is made, waited for or written: a link, a directory or
        // someone's file in the place of `lock` (a mistyped --state-dir) is never opened
        // through nor emptied. Checked again on the opened file below (race-safe).
        if let Ok(meta) = fs::symlink_metadata(&lock_path) {
            if let Some(what) = odd_lock(&meta) {
                return Err(self.lock_file_error(what));
            }
        }
        create_private_dir(self.path()).map_err(dir_err)?;
        let start = Instant::now();
        // Whether another holder made this run wait: what it read of the host before is old.
        let mut waited = false;
        let mut take = |f: &File| match lock::exclusive(f, start, Duration::ZERO) {
            Err(LockError::Busy { .. }) => {
                waited = true;
                lock::exclusive(f, start, timeout)
            }
            taken => taken,
        };
        // The directory itself is the lock: deleting the lock file (by hand, or a cleanup
        // script) while a run holds it must not let a second run in. A waiter that wins the
        // lock on a directory that is no longer at the path (remove deletes an empty one) starts
        // over on the new one.
        let dir_lock = loop {
            let dir = File::open(self.path()).map_err(dir_err)?;
            match take(&dir) {
                Ok(()) => {}
                Err(LockError::Busy { waited }) => {
                    let holder = open_to_read(&lock_path)
                        .map(|mut f| read_holder(&mut f))
                        .unwrap_or_else(|_| {
                            "another process (its lock file was deleted)".to_string()
                        });
                    return Err(StateError::Locked {
                        path: self.path().to_path_buf(),
                        holder,
                        waited,
                    });
                }
                Err(LockError::Io(source)) => return Err(dir_err(source)),
            }
            if same_file(&dir, self.path()) {
                break dir;
            }
            create_private_dir(self.path()).map_err(dir_err)?;
        };
        // `remove` deletes the lock file at the very end (zero residue), so a waiter may win
        // the lock on a file that is no longer at `lock_path`: it then starts over on the new
        // one, and two runs never both believe they hold "the" lock.
        let mut file = loop {
            // No truncate on open: the file may belong to the current holder until we have it.
            // Never through a link (O_NOFOLLOW), never waiting on a FIFO (O_NONBLOCK).
            let mut file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(&lock_path)
            {
                Ok(file) => file,
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(self.lock_file_error("a symbolic link".into()))
                }
                Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                    return Err(self.lock_file_error("a directory".into()))
                }
                Err(source) => {
                    return Err(StateError::Write {
                        path: lock_path,
                        source,
                    })
                }
            };
            // What was opened, before it is locked: not a FIFO, a device or a hard link to
            // someone's file (nlink 0 is this file deleted by a remove meanwhile: see below).
            if let Some(what) = file.metadata().ok().as_ref().and_then(odd_lock) {
                return Err(self.lock_file_error(what));
            }
            match take(&file) {
                Ok(()) => {}
                Err(LockError::Busy { waited }) => {
                    return Err(StateError::Locked {
                        path: self.path().to_path_buf(),
                        holder: read_holder(&mut file),
                        waited,
                    });
                }
                Err(LockError::Io(source)) => return Err(dir_err(source)),
            }
            if same_file(&file, &lock_path) {
                break file;
            }
            create_private_dir(self.path()).map_err(dir_err)?;
        };
        // Held now (nobody writes it meanwhile): what it holds must be what edgenet writes
        // there, or it is someone's file and stays as it is.
        if let Some(what) = file.metadata().ok().as_ref().and_then(odd_lock) {
            return Err(self.lock_file_error(what));
        }
        if !holds_edgenet_lock_text(&mut file) {
            return Err(self.lock_file_error(FOREIGN_CONTENT.into()));
        }
        let who = format!("{} {}\n", std::process::id(), purpose);
        // Informational only: failing to write it must not fail the deploy.
        let _ = file
            .set_len(0)
            .and_then(|()| io::Seek::rewind(&mut file))
            .and_then(|()| file.write_all(who.as_bytes()));
        let lock = StateLock {
            dir: self.clone(),
            file,
            dir_lock,
            waited,
            files: Default::default(),
        };
        lock.remove_stale_temp_files();
        Ok(lock)
    }
}

impl StateDir {
    fn lock_file_error(&self, what: String) -> StateError {
        StateError::LockFile {
            dir: self.path().to_path_buf(),
            path: self.lock_file(),
            what,
        }
    }

    /// What is wrong with the `lock` in this directory, when something that is not edgenet's
    /// lock file is there (see [`StateError::LockFile`]): for `status`, which takes no lock
    /// and writes nothing, to say that deploy and remove will refuse. Looked at without
    /// following a link; the text only while no run holds the lock (one may be writing it).
    pub fn lock_file_problem(&self) -> Option<StateError> {
        let path = self.lock_file();
        let meta = fs::symlink_metadata(&path).ok()?;
        if let Some(what) = odd_lock(&meta) {
            return Some(self.lock_file_error(what));
        }
        let held = File::open(self.path()).is_ok_and(|d| lock::is_held(&d));
        let mut file = open_to_read(&path).ok()?;
        (!held && !holds_edgenet_lock_text(&mut file))
            .then(|| self.lock_file_error(FOREIGN_CONTENT.into()))
    }

    /// Who holds the lock right now (`edgenet remove (pid 1234)`), without taking it; `None`
    /// when nobody does (or the directory is not there).
    pub fn holder(&self) -> Option<String> {
        let dir = File::open(self.path()).ok()?;
        if !lock::is_held(&dir) {
            return None;
        }
        Some(
            open_to_read(&self.lock_file())
                .map(|mut f| read_holder(&mut f))
                .unwrap_or_else(|_| "another process".to_string()),
        )
    }
}

/// The most a lock file edgenet writes holds (`PID PURPOSE`, a short purpose).
const LOCK_MAX: u64 = 4096;

const FOREIGN_CONTENT: &str = "a file holding something else";

/// What the `lock` described by `meta` is when it is not a file edgenet can use as its lock:
/// a link, a directory, a special file, or a file with other hard links (emptying it would
/// empty them). `None` for a regular file of one name (or none: deleted since it was opened).
fn odd_lock(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if let Some(kind) = edgenet_host::small_file::file_kind(meta) {
        return Some(kind.to_string());
    }
    match meta.nlink() {
        0 | 1 => None,
        2 => Some("a file with 1 other hard link (another name for the same file)".into()),
        n => Some(format!(
            "a file with {} other hard links (other names for the same file)",
            n - 1
        )),
    }
}

/// Whether `file` holds what edgenet writes into its lock file: nothing, or one line `PID
/// PURPOSE` (`1234 edgenet deploy`).
fn holds_edgenet_lock_text(file: &mut File) -> bool {
    let mut bytes = Vec::new();
    if io::Seek::rewind(file)
        .and_then(|()| file.take(LOCK_MAX + 1).read_to_end(&mut bytes))
        .is_err()
    {
        return false;
    }
    is_edgenet_lock_text(&bytes)
}

fn is_edgenet_lock_text(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    if bytes.len() as u64 > LOCK_MAX {
        return false;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let line = text.strip_suffix('\n').unwrap_or(text);
    let Some((pid, purpose)) = line.split_once(' ') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && pid.parse::<u32>().is_ok()
        && !purpose.trim().is_empty()
        && !purpose.chars().any(char::is_control)
}

/// The lock file opened to read who holds it: never through a link, never waiting on a FIFO.
fn open_to_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
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
    let _ = io::Seek::rewind(file).and_then(|_| file.take(LOCK_MAX).read_to_string(&mut text));
    match text.trim().split_once(' ') {
        Some((pid, purpose)) if pid.parse::<u32>().is_ok() => format!("{purpose} (pid {pid})"),
        None if text.trim().parse::<u32>().is_ok() => format!("pid {}", text.trim()),
        _ => "another process (it did not write its PID into the lock file)".to_string(),
    }
}

/// The held lock; the only way to load and save the state. Released on drop.
#[derive(Debug)]
pub struct StateLock {
    pub(super) dir: StateDir,
    file: File,
    /// The flock on the state directory, the real exclusion (the lock file's flock is kept
    /// for older edgenet versions and tools that look at it).
    dir_lock: File,
    /// Whether taking it had to wait for another holder.
    waited: bool,
    /// What this lock knows of the files it writes (see [`super::store`]).
    pub(super) files: std::sync::Mutex<super::store::Files>,
}

impl StateLock {
    /// Deletes the lock file this lock holds (the end of a complete `remove`), and only it:
    /// whatever else is at `lock` now (a link or a file put there since) stays, said.
    pub(super) fn delete_lock_file(&self) {
        use std::os::unix::fs::MetadataExt;
        let path = self.dir.lock_file();
        match (self.file.metadata(), fs::symlink_metadata(&path)) {
            (Ok(held), Ok(there))
                if there.is_file() && held.dev() == there.dev() && held.ino() == there.ino() =>
            {
                let _ = fs::remove_file(&path);
            }
            (_, Ok(_)) => tracing::warn!(
                "left {}: not the lock file this run held (put there while it ran); delete it or move it away",
                path.display()
            ),
            _ => {}
        }
    }

    /// Whether another run held the lock when this one asked for it: everything read before
    /// (host facts, the plan) may be out of date and must be read again.
    pub fn waited(&self) -> bool {
        self.waited
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A state directory with `victim` (holding `precious`) outside it.
    fn dirs() -> (tempfile::TempDir, StateDir, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("s");
        fs::create_dir(&state).unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        (root, StateDir::new(state), victim)
    }

    fn refused(dir: &StateDir, what: &str) -> String {
        let err = dir.lock("edgenet remove", Duration::ZERO).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, StateError::LockFile { what: w, .. } if w.starts_with(what)),
            "{msg}"
        );
        assert!(
            msg.contains(&dir.lock_file().display().to_string())
                && msg.contains("nothing was changed")
                && msg.contains("move it away")
                && msg.contains("the state directory you meant"),
            "{msg}"
        );
        assert!(dir.lock_file_problem().is_some());
        msg
    }

    #[test]
    fn a_symbolic_link_named_lock_is_refused_and_its_target_kept() {
        let (_root, dir, victim) = dirs();
        std::os::unix::fs::symlink(&victim, dir.lock_file()).unwrap();
        refused(&dir, "a symbolic link");
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
        assert!(fs::symlink_metadata(dir.lock_file()).unwrap().is_symlink());
        // A link to a directory, and a dangling one (O_CREAT would make its target).
        let elsewhere = victim.with_file_name("elsewhere");
        fs::remove_file(dir.lock_file()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.lock_file()).unwrap();
        refused(&dir, "a symbolic link");
        assert!(!elsewhere.exists());
    }

    #[test]
    fn a_hard_link_named_lock_is_refused_and_the_shared_file_kept() {
        let (_root, dir, victim) = dirs();
        fs::hard_link(&victim, dir.lock_file()).unwrap();
        let msg = refused(&dir, "a file with 1 other hard link");
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n", "{msg}");
        assert_eq!(fs::metadata(&victim).unwrap().nlink(), 2);
    }

    #[test]
    fn a_directory_or_a_fifo_named_lock_is_refused_naming_it() {
        let (_root, dir, _victim) = dirs();
        fs::create_dir(dir.lock_file()).unwrap();
        fs::write(dir.lock_file().join("notes"), "mine").unwrap();
        refused(&dir, "a directory");
        assert_eq!(fs::read(dir.lock_file().join("notes")).unwrap(), b"mine");
        fs::remove_dir_all(dir.lock_file()).unwrap();
        let c = std::ffi::CString::new(dir.lock_file().as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        refused(&dir, "a FIFO");
    }

    #[test]
    fn a_lock_file_with_foreign_content_is_refused_and_kept() {
        let (_root, dir, _victim) = dirs();
        for text in [
            "my lock notes\n",
            "1234\n",
            "1234 edgenet deploy\n5678 edgenet remove\n",
            "x edgenet deploy\n",
            "1234 \n",
        ] {
            fs::write(dir.lock_file(), text).unwrap();
            refused(&dir, FOREIGN_CONTENT);
            assert_eq!(fs::read_to_string(dir.lock_file()).unwrap(), text);
        }
        fs::write(dir.lock_file(), vec![b'7'; 5000]).unwrap();
        refused(&dir, FOREIGN_CONTENT);
        assert_eq!(fs::metadata(dir.lock_file()).unwrap().len(), 5000);
    }

    #[test]
    fn a_fresh_an_empty_and_an_earlier_runs_lock_file_are_taken() {
        let (_root, dir, _victim) = dirs();
        let pid = std::process::id();
        for before in [
            None,
            Some(""),
            Some("4294967295 edgenet deploy with a long purpose\n"),
        ] {
            let _ = fs::remove_file(dir.lock_file());
            if let Some(text) = before {
                fs::write(dir.lock_file(), text).unwrap();
            }
            assert!(dir.lock_file_problem().is_none(), "{before:?}");
            let lock = dir.lock("edgenet deploy", Duration::ZERO).unwrap();
            assert_eq!(
                fs::read_to_string(dir.lock_file()).unwrap(),
                format!("{pid} edgenet deploy\n"),
                "{before:?}"
            );
            drop(lock);
            assert_eq!(fs::read(dir.lock_file()).unwrap(), b"");
        }
        // Without a final newline (as a hand-made or older one may be).
        fs::write(dir.lock_file(), "12 edgenet remove").unwrap();
        drop(dir.lock("edgenet deploy", Duration::ZERO).unwrap());
    }

    #[test]
    fn release_and_delete_deletes_only_the_lock_file_it_holds() {
        let (_root, dir, victim) = dirs();
        let lock = dir.lock("edgenet remove", Duration::ZERO).unwrap();
        fs::remove_file(dir.lock_file()).unwrap();
        std::os::unix::fs::symlink(&victim, dir.lock_file()).unwrap();
        lock.release_and_delete();
        drop(lock);
        assert!(fs::symlink_metadata(dir.lock_file()).unwrap().is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n");
        assert!(dir.path().exists(), "the directory stays with the link");

        fs::remove_file(dir.lock_file()).unwrap();
        let lock = dir.lock("edgenet remove", Duration::ZERO).unwrap();
        lock.release_and_delete();
        drop(lock);
        assert!(
            !dir.path().exists(),
            "its own lock file and the empty directory go"
        );
    }
}
