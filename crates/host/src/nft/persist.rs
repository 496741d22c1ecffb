//! The ruleset cache: the ruleset a deploy ended with, kept in its state directory with what
//! proves it is still the kernel's, so a redeploy with nothing changed skips reading and
//! decoding the whole ruleset (most of a no-change redeploy's own work).
//!
//! Proof, all of which must match at the next read: the namespace's nf_tables generation (one
//! `NFT_MSG_GETGEN`; every committed transaction moves it, whoever sends it, iptables-nft
//! included), the namespace's cookie (`SO_NETNS_COOKIE`, never reused while the machine runs)
//! and the boot id (generations and cookies start again at boot). iptables-legacy rules are not
//! in nf_tables, and not in what is cached either: the host-firewall walk never reads them.
//! The file is only written when the generation at the end of the run is the one the session's
//! ruleset is of (read at G, N transactions of ours folded in since, now G + N); a damaged, odd
//! or stale file is no cache.
//!
//! Only a regular file of this user's, at most [`MAX_BYTES`] long, is read (a FIFO in its place
//! hung a deploy that held its lock; a link to `/dev/zero` grew it to gigabytes), and it is
//! written 0600 like the rest of the state: it holds other tools' rules too. A failed nf_tables
//! write takes it away for the rest of the run and the next one (a forged or otherwise wrong
//! file with a matching stamp made every deploy fail the same way, B20 D2).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use super::native;
use super::session::{session_keep_at, session_kept_with_gen, walk_scoped};

/// The cache's file name in the state directory.
pub const CACHE_FILE: &str = "ruleset-cache.json";
/// The form of the file; another number is no cache.
const VERSION: u64 = 1;

/// The largest file read or written. A deploy's own file is ~7 KB; 20 000 rules of another
/// tool's with a counter and a comment each (a big kube-proxy's) made a 7.5 MB file; beyond
/// twice that the ruleset is read from the kernel every time instead.
const MAX_BYTES: u64 = 16 << 20;

static PATH: OnceLock<PathBuf> = OnceLock::new();
/// A write of this process failed: the file (if it could not be removed) is never read again.
static DISTRUSTED: AtomicBool = AtomicBool::new(false);

/// Reads and writes of this process use the cache file `path` (the CLI's `deploy`: one
/// deployment's state directory). Without it nothing is cached.
pub fn use_ruleset_cache(path: PathBuf) {
    let _ = PATH.set(path);
}

/// The file is never read by this process, only removed with the tables (the CLI's
/// `remove`: what it deletes is decided on the kernel's own listing, never on a file).
pub fn never_read_ruleset_cache() {
    DISTRUSTED.store(true, Ordering::Relaxed);
}

/// The file in use, if any.
pub fn ruleset_cache_file() -> Option<&'static PathBuf> {
    PATH.get()
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The cached ruleset when it is provably the kernel's now; kept in the session (at its
/// generation, marked as cached). `whole`: the reader needs a complete listing (not the walk's).
pub(super) fn load(whole: bool) -> Option<Arc<Value>> {
    if DISTRUSTED.load(Ordering::Relaxed) {
        return None;
    }
    load_from(PATH.get()?, whole)
}

/// The file's bytes when it is a regular file of this user's of at most [`MAX_BYTES`]; opened
/// without following a link and without waiting (a FIFO opens at once and is refused then).
fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file()
        || meta.uid() != nix::unistd::geteuid().as_raw()
        || meta.len() > MAX_BYTES
    {
        return None;
    }
    // At most the cap even if it grows meanwhile.
    let mut text = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES + 1).read_to_end(&mut text).ok()?;
    (text.len() as u64 <= MAX_BYTES).then_some(text)
}

fn load_from(path: &Path, whole: bool) -> Option<Arc<Value>> {
    let text = read_capped(path)?;
    let mut file: Value = serde_json::from_slice(&text).ok()?;
    let gen = u32::try_from(file.get("gen")?.as_u64()?).ok()?;
    let cookie = file.get("netns")?.as_u64()?;
    if file.get("version")?.as_u64()? != VERSION
        || file.get("boot")?.as_str()? != boot_id()?.as_str()
    {
        return None;
    }
    let ruleset = file.get_mut("ruleset")?.take();
    ruleset.get("nftables")?.as_array()?;
    if whole && walk_scoped(&ruleset) {
        return None;
    }
    let (now, now_cookie) = native::generation_now().ok()?;
    if now != gen || now_cookie? != cookie {
        return None;
    }
    tracing::debug!(
        "nftables: ruleset taken from {} (generation {gen})",
        path.display()
    );
    let ruleset = Arc::new(ruleset);
    session_keep_at(Arc::clone(&ruleset), Some((gen, 0)), true);
    Some(ruleset)
}

/// Writes the session's ruleset of the calling thread's namespace to the cache file when it is
/// provably the kernel's now; otherwise removes a file that no longer is. Never an error: a
/// cache that cannot be written is no cache.
pub fn store_ruleset_cache() {
    if let Some(path) = PATH.get() {
        store_to(path);
    }
}

fn store_to(path: &Path) {
    let kept = session_kept_with_gen();
    // Taken from this very file and nothing written since: it says so already (and if the
    // generation moved meanwhile, the next reader finds it stale all the same).
    if let Some((_, Some((_, 0)), true)) = &kept {
        return;
    }
    let proof = (|| {
        let (ruleset, gen, cached) = kept?;
        let (read_at, ours) = gen?;
        let (now, cookie) = native::generation_now().ok()?;
        (now == read_at.wrapping_add(ours)).then_some((ruleset, now, cookie?, cached && ours == 0))
    })();
    let Some((ruleset, gen, cookie, unchanged)) = proof else {
        let _ = std::fs::remove_file(path);
        return;
    };
    // Taken from this very file and nothing written since: it says so already.
    if unchanged {
        return;
    }
    let Some(boot) = boot_id() else {
        let _ = std::fs::remove_file(path);
        return;
    };
    // Written around the ruleset, not through `json!`, which would copy the whole tree first
    // (that copy cost a first deploy as much as the rest of the write).
    let mut text = json!({"version": VERSION, "boot": boot, "netns": cookie, "gen": gen})
        .to_string()
        .into_bytes();
    text.pop();
    text.extend_from_slice(b",\"ruleset\":");
    if serde_json::to_writer(&mut text, ruleset.as_ref()).is_err() {
        return;
    }
    text.push(b'}');
    // One the next run would not read: none.
    if text.len() as u64 > MAX_BYTES {
        let _ = std::fs::remove_file(path);
        return;
    }
    // A whole file or none: written beside it, then renamed over it (no fsync: a cache lost in
    // a power cut is read again, and the boot id differs then anyway). Made 0600 (a chmod
    // after would leave a moment open), and new (a file left there by a crash keeps its mode).
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut file| std::io::Write::write_all(&mut file, &text));
    if written.is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(path);
    }
}

/// An nf_tables write failed: whatever it was decided on may have been wrong, so the file goes
/// and is not read again by this process (a retry reads the kernel). Any thread.
pub(super) fn distrust_ruleset_cache() {
    DISTRUSTED.store(true, Ordering::Relaxed);
    if let Some(path) = PATH.get() {
        if std::fs::remove_file(path).is_ok() {
            tracing::debug!("nftables: ruleset cache {} removed", path.display());
        }
    }
}

/// Removes the cache file (edgenet's tables were deleted: the deployment is going); whether
/// there was one.
pub fn forget_ruleset_cache() -> bool {
    PATH.get()
        .is_some_and(|path| std::fs::remove_file(path).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{forget_ruleset, Nft, RulesetSession};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn a_damaged_or_odd_file_is_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        let _session = RulesetSession::begin();
        assert!(load_from(&path, false).is_none(), "no file");
        let boot = boot_id().unwrap_or_default();
        for text in [
            String::new(),
            "{\"version\": 1, \"gen\"".to_string(),
            "[1, 2]".to_string(),
            // Another boot; another form; a ruleset that is not one.
            json!({"version": 1, "boot": "x", "netns": 1, "gen": 1, "ruleset": {"nftables": []}})
                .to_string(),
            json!({"version": 2, "boot": boot, "netns": 1, "gen": 1, "ruleset": {"nftables": []}})
                .to_string(),
            json!({"version": 1, "boot": boot, "netns": 1, "gen": 1, "ruleset": 7}).to_string(),
            json!({"version": 1, "boot": boot, "netns": 1, "gen": -1, "ruleset": {"nftables": []}})
                .to_string(),
        ] {
            std::fs::write(&path, &text).unwrap();
            assert!(load_from(&path, false).is_none(), "{text}");
        }
        assert!(crate::nft::session::session_kept_with_gen().is_none());
    }

    /// Only a regular file of this user's under the cap is read; a FIFO does not block.
    #[test]
    fn only_a_regular_file_under_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_capped(&path).as_deref(), Some(&b"{}"[..]));
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(read_capped(&path).is_none(), "a FIFO");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(read_capped(&path).is_none(), "a link");
        std::fs::remove_file(&path).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_BYTES + 1)
            .unwrap();
        assert!(read_capped(&path).is_none(), "beyond the cap");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(read_capped(&path).is_none(), "a directory");
    }

    /// In a namespace of its own (this thread's): the cache is taken while the generation
    /// holds, and refused once another transaction (another tool's table) moved it.
    #[test]
    fn the_cache_holds_until_the_generation_moves() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CACHE_FILE);
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let nft = Nft::new();
            let _session = RulesetSession::begin();
            let other = json!({"nftables": [
                {"add": {"table": {"family": "ip", "name": "c19other"}}}
            ]});
            nft.apply(&other).unwrap();
            forget_ruleset();
            let read = nft.list_ruleset_for_walk().unwrap();
            store_to(&path);
            assert!(path.is_file(), "a read at a known generation is stored");
            forget_ruleset();
            let cached = load_from(&path, false).expect("the generation did not move");
            assert_eq!(cached, read);
            // Our own write, folded in: still provably the kernel's, stored again.
            let mine = json!({"nftables": [
                {"add": {"table": {"family": "ip", "name": "edgenet_c19c19"}}}
            ]});
            nft.apply(&mine).unwrap();
            store_to(&path);
            forget_ruleset();
            let cached = load_from(&path, false).expect("our write was followed");
            assert!(crate::nft::table_in(&cached, "ip", "edgenet_c19c19").is_some());
            // A read from the kernel, then another tool's change, which the session does not
            // see: no cache any more, and the stale read is not stored over it.
            forget_ruleset();
            nft.list_ruleset_for_walk().unwrap();
            crate::nft::native::apply(&json!({"nftables": [
                {"delete": {"table": {"family": "ip", "name": "c19other"}}}
            ]}))
            .unwrap()
            .unwrap();
            assert!(load_from(&path, false).is_none(), "the generation moved");
            store_to(&path);
            assert!(!path.exists());
        })
        .join()
        .unwrap();
    }
}
