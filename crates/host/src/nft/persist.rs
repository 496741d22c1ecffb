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
use super::session::{session_keep_with, session_kept_with_gen, walk_scoped};

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
    let (ruleset, gen, own) = match read_stamped(&text, current_gen) {
        Cached::Current { ruleset, gen, own } => (ruleset, gen, own),
        Cached::Stale | Cached::Damaged => return None,
    };
    ruleset.get("nftables")?.as_array()?;
    if whole && walk_scoped(&ruleset) {
        return None;
    }
    tracing::debug!(
        "nftables: ruleset taken from {} (generation {gen})",
        path.display()
    );
    let ruleset = Arc::new(ruleset);
    session_keep_with(
        Arc::clone(&ruleset),
        Some((gen, 0)),
        true,
        own.map(Arc::from),
    );
    Some(ruleset)
}

/// What the head of the file says the ruleset is of.
#[derive(Debug, Default, PartialEq)]
struct Stamp {
    version: Option<u64>,
    boot: Option<String>,
    netns: Option<u64>,
    gen: Option<u64>,
    /// What the run that wrote the file noted of edgenet's own tables in the ruleset
    /// ([`super::session::note_own_tables`]); optional.
    own: Option<String>,
}

/// The generation `stamp` proves the file's ruleset to be the kernel's now, if it does: this
/// form, this boot, and the namespace's generation and cookie (one `NFT_MSG_GETGEN`).
fn current_gen(stamp: &Stamp) -> Option<u32> {
    let gen = u32::try_from(stamp.gen?).ok()?;
    if stamp.version? != VERSION || stamp.boot.as_deref()? != crate::sysctl::boot_id()? {
        return None;
    }
    let (now, cookie) = native::generation_now().ok()?;
    (now == gen && cookie? == stamp.netns?).then_some(gen)
}

#[derive(Debug, PartialEq)]
enum Cached {
    Current {
        ruleset: Value,
        gen: u32,
        own: Option<String>,
    },
    /// The stamp proves nothing: the ruleset after it was not parsed.
    Stale,
    /// Not a file this module wrote.
    Damaged,
}

/// The file's ruleset when `proof` accepts its stamp. The stamp is written before the ruleset
/// and checked as soon as the ruleset's key is met, so a stale file (another tool changed the
/// ruleset: on a Kubernetes host kube-proxy does, often) costs a few bytes of parsing, not the
/// whole listing's (7.5 MB for a big kube-proxy's). A ruleset before its stamp is no cache.
fn read_stamped(text: &[u8], proof: impl FnOnce(&Stamp) -> Option<u32>) -> Cached {
    use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, Visitor};

    /// `stale`: set when the stamp was refused (the parse is then given up, as an error).
    struct File<'s, P> {
        proof: P,
        stale: &'s std::cell::Cell<bool>,
    }
    impl<'de, P: FnOnce(&Stamp) -> Option<u32>> DeserializeSeed<'de> for File<'_, P> {
        type Value = (Value, u32, Option<String>);
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de, P: FnOnce(&Stamp) -> Option<u32>> Visitor<'de> for File<'_, P> {
        type Value = (Value, u32, Option<String>);
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a ruleset cache")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut stamp = Stamp::default();
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "version" => stamp.version = Some(map.next_value()?),
                    "boot" => stamp.boot = Some(map.next_value()?),
                    "netns" => stamp.netns = Some(map.next_value()?),
                    "gen" => stamp.gen = Some(map.next_value()?),
                    "own" => stamp.own = Some(map.next_value()?),
                    "ruleset" => {
                        let Some(gen) = (self.proof)(&stamp) else {
                            self.stale.set(true);
                            return Err(A::Error::custom("stale"));
                        };
                        let ruleset: Value = map.next_value()?;
                        // Nothing may follow that a reader of the whole file would see.
                        return match map.next_key::<IgnoredAny>()? {
                            None => Ok((ruleset, gen, stamp.own)),
                            Some(_) => Err(A::Error::custom("a key after the ruleset")),
                        };
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Err(A::Error::custom("no ruleset"))
        }
    }

    let stale = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(text);
    let read = File {
        proof,
        stale: &stale,
    }
    .deserialize(&mut de);
    match read {
        // Whatever follows a stale stamp is not looked at.
        _ if stale.get() => Cached::Stale,
        Ok((ruleset, gen, own)) if de.end().is_ok() => Cached::Current { ruleset, gen, own },
        _ => Cached::Damaged,
    }
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
    // Taken from this very file and nothing written or noted since: it says so already (and
    // if the generation moved meanwhile, the next reader finds it stale all the same).
    if let Some(k) = &kept {
        if k.cached && matches!(k.gen, Some((_, 0))) && k.own == k.own_loaded {
            return;
        }
    }
    let proof = (|| {
        let kept = kept?;
        let (read_at, ours) = kept.gen?;
        let (now, cookie) = native::generation_now().ok()?;
        let unchanged = kept.cached && ours == 0 && kept.own == kept.own_loaded;
        (now == read_at.wrapping_add(ours)).then_some((
            kept.ruleset,
            now,
            cookie?,
            unchanged,
            kept.own,
        ))
    })();
    let Some((ruleset, gen, cookie, unchanged, own)) = proof else {
        let _ = std::fs::remove_file(path);
        return;
    };
    // Taken from this very file and nothing written since: it says so already.
    if unchanged {
        return;
    }
    let Some(boot) = crate::sysctl::boot_id() else {
        let _ = std::fs::remove_file(path);
        return;
    };
    // Written around the ruleset, not through `json!`, which would copy the whole tree first
    // (that copy cost a first deploy as much as the rest of the write).
    let mut stamp = json!({"version": VERSION, "boot": boot, "netns": cookie, "gen": gen});
    if let Some(own) = own {
        // Part of the stamp (before the ruleset): judged with it, and only with it.
        stamp["own"] = Value::from(own.as_ref());
    }
    let mut text = stamp.to_string().into_bytes();
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
        let boot = crate::sysctl::boot_id().unwrap_or_default();
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

    /// The stamp is judged before the ruleset is parsed: a stale one ends the read there (a
    /// file cut short after it is stale, not damaged), an accepted one reads the ruleset whole.
    #[test]
    fn a_stale_stamp_is_refused_before_the_ruleset_is_read() {
        let stamp = r#"{"version":1,"boot":"b","netns":7,"gen":3,"ruleset":"#;
        let cut = format!("{stamp}{{\"nftables\": [{{\"table\": ");
        let mut seen = None;
        let read = read_stamped(cut.as_bytes(), |s| {
            seen = Some((s.version, s.boot.clone(), s.netns, s.gen));
            None
        });
        assert_eq!(read, Cached::Stale);
        assert_eq!(
            seen,
            Some((Some(1), Some("b".to_string()), Some(7), Some(3)))
        );
        assert_eq!(read_stamped(cut.as_bytes(), |_| Some(3)), Cached::Damaged);
        let whole = format!("{stamp}{{\"nftables\": []}}}}\n");
        assert_eq!(
            read_stamped(whole.as_bytes(), |_| Some(3)),
            Cached::Current {
                ruleset: json!({"nftables": []}),
                gen: 3,
                own: None,
            }
        );
        // Nothing may follow the ruleset, inside the object or after it.
        for tail in [",\"gen\":4}", "} {}"] {
            let more = format!("{stamp}{{\"nftables\": []}}{tail}");
            assert_eq!(
                read_stamped(more.as_bytes(), |_| Some(3)),
                Cached::Damaged,
                "{more}"
            );
        }
        // A ruleset before its stamp: the stamp is not complete when the ruleset comes.
        let first = r#"{"ruleset":{"nftables":[]},"version":1,"boot":"b","netns":7,"gen":3}"#;
        let read = read_stamped(first.as_bytes(), |s| s.gen.map(|g| g as u32));
        assert_eq!(read, Cached::Stale);
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
