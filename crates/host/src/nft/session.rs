//! [`RulesetSession`]: one read of the ruleset per command and namespace.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

/// One command's view of the ruleset (a deploy, status or remove): `nft -j list ruleset` is read
/// once per network namespace and every later reader (host facts, the Docker step, the drop
/// check, our own tables' listings) gets that read, so a command spawns `nft` once to look
/// instead of four to six times. The ruleset edgenet writes itself is folded in (the documents
/// are written in the form nft lists them back); any other change through this module or
/// [`crate::iptables`] (another tool's table) drops the kept read. Per thread, because the
/// namespace is per thread; sessions nest, the outermost ends it.
#[must_use = "the session ends when this is dropped"]
pub struct RulesetSession(());

struct Session {
    depth: usize,
    /// namespace (dev, inode) -> ruleset. Not keyed by the program that listed it: the ruleset
    /// is the kernel's, and the firewall driver (a located `/usr/sbin/nft`) and other readers
    /// (a bare `nft`) must share one read.
    /// Shared, not copied, with the readers (host facts keep it for the whole command).
    rulesets: Vec<Kept>,
}

/// A kept read's nf_tables generation: read at, our transactions folded in since.
pub(super) type Generation = (u32, u32);

/// One namespace's ruleset as the session holds it.
struct Kept {
    key: (u64, u64),
    ruleset: Arc<Value>,
    /// The nf_tables generation it was read at and how many of our transactions were folded in
    /// since (each commit moves the generation by one); `None` when not known (read through
    /// libnftables or the program). What proves the kept read is still the kernel's at the
    /// end of a run ([`super::persist`]).
    gen: Option<Generation>,
    /// Taken from the ruleset cache file, not read from the kernel.
    cached: bool,
    /// What the cache file said of edgenet's own tables in it ([`own_tables_proven`]).
    own_loaded: Option<Arc<str>>,
    /// What this run found edgenet's own tables in this read to be ([`note_own_tables`]).
    own: Option<Arc<str>>,
}

thread_local! {
    static SESSION: RefCell<Option<Session>> = const { RefCell::new(None) };
    /// Moves on every change to any kept read: with the kept ruleset's address it names one
    /// content ([`session_epoch`]).
    static EPOCH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn bump_epoch() {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

impl RulesetSession {
    pub fn begin() -> Self {
        SESSION.with(|s| {
            let mut s = s.borrow_mut();
            match s.as_mut() {
                Some(session) => session.depth += 1,
                None => {
                    *s = Some(Session {
                        depth: 1,
                        rulesets: Vec::new(),
                    })
                }
            }
        });
        RulesetSession(())
    }
}

impl Drop for RulesetSession {
    fn drop(&mut self) {
        SESSION.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(session) = s.as_mut() {
                session.depth -= 1;
                if session.depth == 0 {
                    *s = None;
                }
            }
        });
    }
}

/// Drops the ruleset kept by the current session (something changed it that the session cannot
/// follow): the next reader reads it again.
pub fn forget_ruleset() {
    bump_epoch();
    SESSION.with(|s| {
        if let Some(session) = s.borrow_mut().as_mut() {
            session.rulesets.clear();
        }
    });
}

/// Names the content of the ruleset the session keeps for the calling thread's namespace
/// (`None`: none kept): equal only while that content is unchanged, so a reader may keep what
/// it derived from it (the firewall driver's parsed tables).
pub fn session_epoch() -> Option<(u64, usize)> {
    SESSION.with(|s| {
        let s = s.borrow();
        let key = netns_key()?;
        let kept = s.as_ref()?.rulesets.iter().find(|k| k.key == key)?;
        Some((EPOCH.with(|e| e.get()), Arc::as_ptr(&kept.ruleset) as usize))
    })
}

pub(super) fn session_active() -> bool {
    SESSION.with(|s| s.borrow().is_some())
}

/// The calling thread's network namespace, as (device, inode).
fn netns_key() -> Option<(u64, u64)> {
    crate::netns::current_id().ok()
}

/// The ruleset kept for the calling thread's namespace, shared (no copy).
pub(super) fn session_shared() -> Option<Arc<Value>> {
    session_shared_any().filter(|r| !walk_scoped(r))
}

/// The kept read, the walk's ([`walk_scoped`]) included.
pub(super) fn session_shared_any() -> Option<Arc<Value>> {
    SESSION.with(|s| {
        let s = s.borrow();
        let key = netns_key()?;
        s.as_ref()?
            .rulesets
            .iter()
            .find(|k| k.key == key)
            .map(|k| Arc::clone(&k.ruleset))
    })
}

/// Whether a listing is the host-firewall walk's (other tools' port sets without their
/// elements): a reader of the whole ruleset reads it again.
pub(super) fn walk_scoped(ruleset: &Value) -> bool {
    ruleset["nftables"][0]["metainfo"]
        .get(super::native::WALK_SCOPE)
        .is_some()
}

/// `f` applied to the ruleset kept for the calling thread's namespace, without copying it
/// (a whole ruleset is hundreds of JSON maps).
pub(super) fn with_session_ruleset<T>(f: impl FnOnce(&Value) -> T) -> Option<T> {
    SESSION.with(|s| {
        let s = s.borrow();
        let session = s.as_ref()?;
        let key = netns_key()?;
        session
            .rulesets
            .iter()
            .find(|k| k.key == key)
            .map(|k| f(k.ruleset.as_ref()))
    })
}

/// Whether the session holds a ruleset read of the calling thread's namespace.
pub(super) fn session_has_ruleset() -> bool {
    with_session_ruleset(|_| ()).is_some()
}

/// Keeps `ruleset` as the calling thread's namespace's read (generation not known).
pub(super) fn session_keep(ruleset: Arc<Value>) {
    session_keep_at(ruleset, None, false)
}

/// Keeps `ruleset` as the calling thread's namespace's read, with the generation it is of
/// (`gen`: read at, our transactions since) and whether it came from the cache file.
pub(super) fn session_keep_at(ruleset: Arc<Value>, gen: Option<Generation>, cached: bool) {
    session_keep_with(ruleset, gen, cached, None)
}

/// [`session_keep_at`] of a read taken from the cache file, with what the file said of
/// edgenet's own tables in it.
pub(super) fn session_keep_with(
    ruleset: Arc<Value>,
    gen: Option<Generation>,
    cached: bool,
    own: Option<Arc<str>>,
) {
    bump_epoch();
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        let (Some(session), Some(key)) = (s.as_mut(), netns_key()) else {
            return;
        };
        session.rulesets.retain(|k| k.key != key);
        session.rulesets.push(Kept {
            key,
            ruleset,
            gen,
            cached,
            own_loaded: own.clone(),
            own,
        });
    });
}

/// Notes that edgenet's own tables in the kept read of the calling thread's namespace are
/// exactly what `text` describes (the caller compared them, or wrote them and the write was
/// folded in): stored with the read in the cache file, so the next run can know them without
/// reading them ([`own_tables_proven`]). Any later change to the kept read drops the note.
pub fn note_own_tables(text: &str) {
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        let (Some(session), Some(key)) = (s.as_mut(), netns_key()) else {
            return;
        };
        if let Some(kept) = session.rulesets.iter_mut().find(|k| k.key == key) {
            if kept.own.as_deref() != Some(text) {
                kept.own = Some(Arc::from(text));
            }
        }
    });
}

/// What the last run noted of edgenet's own tables ([`note_own_tables`]), when that is provably
/// what the kernel holds now: the calling thread's kept read was taken from the cache file,
/// whose stamp matched the namespace's nf_tables generation (nothing changed the ruleset since
/// that run ended), and nothing has been written since it was taken. `None` otherwise: the
/// caller reads and compares as usual.
pub fn own_tables_proven() -> Option<Arc<str>> {
    SESSION.with(|s| {
        let s = s.borrow();
        let key = netns_key()?;
        let kept = s.as_ref()?.rulesets.iter().find(|k| k.key == key)?;
        match kept.gen {
            Some((_, 0)) if kept.cached => kept.own_loaded.clone(),
            _ => None,
        }
    })
}

/// The kept read of the calling thread's namespace as the cache file stores it (see [`Kept`]).
pub(super) struct KeptRead {
    pub ruleset: Arc<Value>,
    pub gen: Option<Generation>,
    pub cached: bool,
    /// What the file it came from said of edgenet's own tables, and what this run noted.
    pub own_loaded: Option<Arc<str>>,
    pub own: Option<Arc<str>>,
}

/// The kept read of the calling thread's namespace with its generation, whether it came from
/// the cache file, and the notes on edgenet's own tables (see [`Kept`]).
pub(super) fn session_kept_with_gen() -> Option<KeptRead> {
    SESSION.with(|s| {
        let s = s.borrow();
        let key = netns_key()?;
        let kept = s.as_ref()?.rulesets.iter().find(|k| k.key == key)?;
        Some(KeptRead {
            ruleset: Arc::clone(&kept.ruleset),
            gen: kept.gen,
            cached: kept.cached,
            own_loaded: kept.own_loaded.clone(),
            own: kept.own.clone(),
        })
    })
}

/// Takes the kept ruleset of the calling thread's namespace out of the session.
fn session_take() -> Option<(Arc<Value>, Option<Generation>)> {
    bump_epoch();
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        let session = s.as_mut()?;
        let key = netns_key()?;
        let at = session.rulesets.iter().position(|k| k.key == key)?;
        let kept = session.rulesets.swap_remove(at);
        Some((kept.ruleset, kept.gen))
    })
}

/// Folds a document nft has just applied into the kept ruleset: `add`/`create` of a table or of
/// an object in one, `delete` of a table. Anything else forgets the kept read.
pub(super) fn session_wrote(_program: &Path, document: &Value) {
    fold_written(std::borrow::Cow::Borrowed(document));
}

/// [`session_wrote`] of a document the caller gives away: its objects are moved into the kept
/// ruleset, not copied (a first deploy's document is most of its ruleset).
pub(super) fn session_wrote_owned(document: Value) {
    fold_written(std::borrow::Cow::Owned(document));
}

fn fold_written(document: std::borrow::Cow<'_, Value>) {
    // Taken out and put back changed (or dropped): copied only while a reader (the host
    // facts) still holds the read.
    let Some((ruleset, gen)) = session_take() else {
        return;
    };
    let mut ruleset = Arc::unwrap_or_clone(ruleset);
    match fold(&mut ruleset, document) {
        // One more transaction of ours on top of the generation read.
        Some(()) => session_keep_at(
            Arc::new(ruleset),
            gen.map(|(at, ours)| (at, ours.wrapping_add(1))),
            false,
        ),
        None => forget_ruleset(),
    }
}

/// `document`'s commands applied to the listing `ruleset`; `None` at a command it cannot
/// follow.
fn fold(ruleset: &mut Value, document: std::borrow::Cow<'_, Value>) -> Option<()> {
    let items = ruleset.get_mut("nftables")?.as_array_mut()?;
    let commands = match document {
        std::borrow::Cow::Owned(Value::Object(mut document)) => {
            match document.swap_remove("nftables")? {
                Value::Array(commands) => commands,
                _ => return None,
            }
        }
        std::borrow::Cow::Owned(_) => return None,
        std::borrow::Cow::Borrowed(document) => document.get("nftables")?.as_array()?.clone(),
    };
    for command in commands {
        let Value::Object(command) = command else {
            return None;
        };
        let (verb, object) = command.into_iter().next()?;
        let Value::Object(object) = object else {
            return None;
        };
        let (kind, body) = object.into_iter().next()?;
        match (verb.as_str(), kind.as_str()) {
            ("add" | "create", "table") => {
                let (family, name) = (body.get("family")?, body.get("name")?);
                let exists = items.iter().any(|i| {
                    i.get("table").is_some_and(|t| {
                        t.get("family") == Some(family) && t.get("name") == Some(name)
                    })
                });
                if !exists {
                    items.push(listed(kind, body));
                }
            }
            ("delete", "table") => {
                let (family, name) = (body.get("family")?, body.get("name")?);
                items.retain(|i| !in_table(i, family, name));
            }
            ("add" | "create", _) if body.get("table").is_some() => {
                items.push(listed(kind, body));
            }
            _ => return None,
        }
    }
    Some(())
}

/// `{kind: body}`, as a listing has it (built in place: `json!` would serialise the body into a
/// new value).
fn listed(kind: String, body: Value) -> Value {
    Value::Object(serde_json::Map::from_iter([(kind, body)]))
}

/// Whether a listed item (`{"table": …}`, `{"chain": …}`, …) belongs to table `family name`.
fn in_table(item: &Value, family: &Value, name: &Value) -> bool {
    let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else {
        return false;
    };
    let table = if kind == "table" {
        body.get("name")
    } else {
        body.get("table")
    };
    body.get("family") == Some(family) && table == Some(name)
}

/// One table out of a whole-ruleset listing, in the form `nft -j list table` prints it;
/// `None` when the ruleset has no such table.
pub fn table_in(ruleset: &Value, family: &str, name: &str) -> Option<Value> {
    let items = ruleset.get("nftables")?.as_array()?;
    let (family, name) = (Value::from(family), Value::from(name));
    let mine: Vec<Value> = items
        .iter()
        .filter(|i| in_table(i, &family, &name))
        .cloned()
        .collect();
    // Built directly: `json!` would serialise the items into new values once more.
    mine.iter().any(|i| i.get("table").is_some()).then(|| {
        let mut document = serde_json::Map::new();
        document.insert("nftables".to_string(), Value::Array(mine));
        Value::Object(document)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;

    /// A document given away folds exactly as one lent: tables added once, objects added in
    /// order as a listing has them, a deleted table gone with its objects, anything else
    /// refused.
    #[test]
    fn a_written_document_folds_alike_owned_or_lent() {
        let listing = json!({"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"table": {"family": "ip", "name": "other"}},
            {"chain": {"family": "ip", "table": "other", "name": "c"}},
            {"table": {"family": "ip", "name": "old"}},
            {"chain": {"family": "ip", "table": "old", "name": "c"}},
        ]});
        let document = json!({"nftables": [
            {"create": {"table": {"family": "ip", "name": "t"}}},
            {"add": {"table": {"family": "ip", "name": "other"}}},
            {"add": {"chain": {"family": "ip", "table": "t", "name": "forward", "hook": "forward"}}},
            {"add": {"rule": {"family": "ip", "table": "t", "chain": "forward", "expr": [{"accept": null}]}}},
            {"delete": {"table": {"family": "ip", "name": "old"}}},
        ]});
        let want = json!({"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"table": {"family": "ip", "name": "other"}},
            {"chain": {"family": "ip", "table": "other", "name": "c"}},
            {"table": {"family": "ip", "name": "t"}},
            {"chain": {"family": "ip", "table": "t", "name": "forward", "hook": "forward"}},
            {"rule": {"family": "ip", "table": "t", "chain": "forward", "expr": [{"accept": null}]}},
        ]});
        let mut lent = listing.clone();
        assert_eq!(fold(&mut lent, Cow::Borrowed(&document)), Some(()));
        assert_eq!(lent, want);
        let mut owned = listing.clone();
        assert_eq!(fold(&mut owned, Cow::Owned(document)), Some(()));
        assert_eq!(owned, want);
        let flush = json!({"nftables": [{"flush": {"ruleset": null}}]});
        assert_eq!(fold(&mut listing.clone(), Cow::Borrowed(&flush)), None);
        assert_eq!(fold(&mut listing.clone(), Cow::Owned(flush)), None);
        assert_eq!(fold(&mut listing.clone(), Cow::Owned(json!([]))), None);
    }
}
