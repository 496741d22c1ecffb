//! [`FirewallDriver`] over nftables JSON, run through [`edgenet_host::nft`] (libnftables
//! in-process, or the `nft` program where the library is missing).

use std::cell::RefCell;
use std::rc::Rc;

use edgenet_host::nft::Nft;
use serde_json::Value;
use tracing::{debug, info};

use super::nft_rules::{self, Ruleset, FAMILY};
use super::{check_ours, ApplyOutcome, FirewallDriver, FirewallError, FirewallPlan};

/// The nftables backend. Runs its commands in the calling thread's network namespace.
#[derive(Debug, Clone, Default)]
pub struct NftablesDriver {
    nft: Nft,
}

/// A live table parsed from the session's ruleset read, by (family, name).
type Parsed = ((String, String), Option<Rc<Ruleset>>);
/// The parses of one ruleset content (see [`edgenet_host::nft::session_epoch`]).
type ParsedOf = (Option<(u64, usize)>, Vec<Parsed>);

thread_local! {
    /// Live tables parsed from the ruleset content [`edgenet_host::nft::session_epoch`] names:
    /// a deploy checks its tables' marks, then compares them, from one read (parsing a listing
    /// twice cost as much as the read).
    static PARSED: RefCell<ParsedOf> = const { RefCell::new((None, Vec::new())) };
}

/// The commands that write a table, and what they replace in the live one (in `status`'s
/// words; empty for a new table).
pub type Replacement = (Vec<Value>, Vec<String>);

impl NftablesDriver {
    pub fn new(nft: Nft) -> Self {
        NftablesDriver { nft }
    }

    /// The live table `family name`, parsed; from this thread's parse of the same session read
    /// when there is one.
    fn live_table(&self, family: &str, name: &str) -> Result<Option<Rc<Ruleset>>, FirewallError> {
        let key = (family.to_string(), name.to_string());
        let epoch = edgenet_host::nft::session_epoch();
        if epoch.is_some() {
            let hit = PARSED.with(|p| {
                let p = p.borrow();
                (p.0 == epoch)
                    .then(|| p.1.iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone()))
                    .flatten()
            });
            if let Some(table) = hit {
                return Ok(table);
            }
        }
        let table = self
            .nft
            .list_table(family, name)?
            .and_then(Ruleset::from_listing_owned)
            .map(Rc::new);
        // The read this parse is of (list_table may just have made it).
        if let Some(epoch) = edgenet_host::nft::session_epoch() {
            PARSED.with(|p| {
                let mut p = p.borrow_mut();
                if p.0 != Some(epoch) {
                    *p = (Some(epoch), Vec::new());
                }
                p.1.push((key, table.clone()));
            });
        }
        Ok(table)
    }

    /// Makes the live table equal to `want` (any family; used for the bridge table), with the
    /// same compare-first and ownership rules as [`FirewallDriver::apply`].
    /// `recorded`: the deployment's state records the table (see [`Ruleset::is_ours`]).
    pub fn apply_ruleset(
        &self,
        want: &Ruleset,
        recorded: bool,
    ) -> Result<ApplyOutcome, FirewallError> {
        check_ours(&want.table)?;
        let live = self.live_table(&want.family, &want.table)?;
        match live.as_deref() {
            Some(live) if !live.is_ours(recorded) => {
                return Err(FirewallError::NotMarked(
                    want.family.clone(),
                    want.table.clone(),
                ))
            }
            Some(live) if live == want => return Ok(ApplyOutcome::Unchanged),
            Some(_) => self.nft.apply(&want.replace_document())?,
            None => self.nft.apply(&want.create_document())?,
        }
        info!(family = %want.family, table = %want.table, rules = want.rules.len(), "nftables table written");
        Ok(ApplyOutcome::Replaced)
    }

    /// The commands that make the live table equal to `want`, to be sent with others in one
    /// transaction ([`Self::apply_commands`]); `None` when it is equal already. Same ownership
    /// rules as [`FirewallDriver::apply`]: a table with our name but not our mark is refused,
    /// unless the state records it (`recorded`) and it holds no rules ([`Ruleset::is_ours`]).
    pub fn commands_for(
        &self,
        want: &Ruleset,
        recorded: bool,
    ) -> Result<Option<Vec<Value>>, FirewallError> {
        Ok(self
            .commands_replacing(want, recorded)?
            .map(|(commands, _)| commands))
    }

    /// Refuses a live table `family name` that is not this deployment's (no edgenet mark, and
    /// not one it made and recorded): read from the command's ruleset, changes nothing.
    pub fn refuse_foreign(
        &self,
        family: &str,
        name: &str,
        made: bool,
    ) -> Result<(), FirewallError> {
        check_ours(name)?;
        // The last run found this table carrying edgenet's mark, and nothing changed the
        // ruleset since: not read again.
        if edgenet_host::nft::own_tables_proven()
            .is_some_and(|own| own_text_names(&own, family, name))
        {
            debug!(
                family,
                table = name,
                "nftables table known from the ruleset cache"
            );
            return Ok(());
        }
        let live = self.live_table(family, name)?;
        match live.as_deref() {
            Some(live) if !live.is_ours(made) => Err(FirewallError::NotMarked(
                family.to_string(),
                name.to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// As [`Self::commands_for`], with what the write replaces in the live table, in
    /// `status`'s words (empty when the table is new): a deploy says what it threw away.
    pub fn commands_replacing(
        &self,
        want: &Ruleset,
        recorded: bool,
    ) -> Result<Option<Replacement>, FirewallError> {
        check_ours(&want.table)?;
        let live = self.live_table(&want.family, &want.table)?;
        let document = match live.as_deref() {
            Some(live) if !live.is_ours(recorded) => {
                return Err(FirewallError::NotMarked(
                    want.family.clone(),
                    want.table.clone(),
                ))
            }
            Some(live) if live == want => return Ok(None),
            // Replacing costs the kernel a grace period: only when there is a table to replace.
            Some(live) => (want.replace_document(), live.differences(want)),
            None => (want.create_document(), Vec::new()),
        };
        // The commands taken out of the document, not copied.
        let (document, replaced) = document;
        let commands = match document {
            Value::Object(mut document) => document.remove("nftables"),
            _ => None,
        };
        Ok(match commands {
            Some(Value::Array(commands)) => Some((commands, replaced)),
            _ => None,
        })
    }

    /// Sends `commands` as one transaction (one nftables command for every table).
    pub fn apply_commands(&self, commands: Vec<Value>) -> Result<(), FirewallError> {
        Ok(self
            .nft
            .apply(&serde_json::json!({ "nftables": commands }))?)
    }

    /// Sends `document` (`{"nftables": [...]}`) as one transaction; may run on another thread
    /// than the reads (the socket is opened in the calling thread's namespace).
    pub fn apply_document(&self, document: &Value) -> Result<(), FirewallError> {
        Ok(self.nft.apply(document)?)
    }

    /// Tells this thread's ruleset session that another thread applied `document`.
    pub fn note_applied(&self, document: Value) {
        self.nft.note_applied(document);
    }

    /// Deletes tables whose marks the caller has just checked, all in one transaction (the
    /// kernel then waits for one grace period, not one per table). Fails as a whole when one
    /// of them is gone meanwhile: the caller deletes what is left one by one.
    pub fn delete_checked_together(&self, names: &[String]) -> Result<(), FirewallError> {
        let mut commands = Vec::new();
        for name in names {
            let (family, table) = split_family(name);
            check_ours(table)?;
            commands
                .push(serde_json::json!({"delete": {"table": {"family": family, "name": table}}}));
        }
        self.nft
            .apply(&serde_json::json!({ "nftables": commands }))?;
        // The deployment is going: its ruleset cache with it (the state directory is emptied).
        edgenet_host::nft::forget_ruleset_cache();
        info!(tables = ?names, "nftables tables deleted");
        Ok(())
    }

    /// Whether the table is edgenet's: it carries the mark, or it is `recorded` and holds no
    /// rules (see [`Ruleset::is_ours`]); `None` when it does not exist.
    pub fn marked(&self, table: &str, recorded: bool) -> Result<Option<bool>, FirewallError> {
        let (family, name) = split_family(table);
        check_ours(name)?;
        Ok(self.live_table(family, name)?.map(|t| t.is_ours(recorded)))
    }
}

/// What a deploy notes in the ruleset cache of the tables it made sure of
/// ([`edgenet_host::nft::note_own_tables`]): a line `table FAMILY NAME` for each, an empty line,
/// then what they are built from: the executable that builds them (device, inode, change time
/// and size of `/proc/self/exe`: a rebuilt or replaced binary is another one) and the two
/// tables' plans. The tables are a function of these alone ([`nft_rules::build`],
/// [`super::bridge_rules::build`]): two equal keys are two equal sets of tables, so a redeploy
/// whose key is the one noted need not build them. `None` when the executable cannot be told.
pub fn own_key(
    fw: Option<&FirewallPlan>,
    bridge: &super::bridge_rules::BridgePlan,
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe").ok()?;
    let mut key = String::new();
    if let Some(fw) = fw {
        key.push_str(&format!("table {FAMILY} {}\n", fw.table));
    }
    key.push_str(&format!(
        "table {} {}\n\nexe {} {} {}.{:09} {}\n{fw:?}\n{bridge:?}\n",
        super::bridge_rules::FAMILY,
        bridge.table,
        exe.dev(),
        exe.ino(),
        exe.ctime(),
        exe.ctime_nsec(),
        exe.size()
    ));
    Some(key)
}

/// Whether an [`own_key`] names table `family name`.
pub fn own_text_names(own: &str, family: &str, name: &str) -> bool {
    own.lines()
        .take_while(|l| !l.is_empty())
        .any(|l| l.strip_prefix("table ").and_then(|l| l.split_once(' ')) == Some((family, name)))
}

/// A table as the state records it: `edgenet_<id>` (family `ip`) or `bridge edgenet_<id>`.
pub fn split_family(name: &str) -> (&str, &str) {
    match name.split_once(' ') {
        Some((family, table)) => (family, table),
        None => (FAMILY, name),
    }
}

/// nft reports an existing table on `create` as EEXIST.
pub(crate) fn is_exists(e: &edgenet_host::nft::NftError) -> bool {
    matches!(e, edgenet_host::nft::NftError::Failed { stderr, .. } if stderr.contains("File exists"))
}

impl FirewallDriver for NftablesDriver {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn validate(&self) -> Result<(), FirewallError> {
        // Looking the program up costs a stat per PATH entry: only when a fallback may run.
        if !self.nft.program_may_be_needed() {
            debug!(
                "nft not looked up: native nf_tables netlink and the session's read serve this run"
            );
            return Ok(());
        }
        let path = self.nft.locate()?;
        debug!(path = %path.display(), "nft found");
        Ok(())
    }

    /// Compares first, so a deploy that changes nothing sends nothing (and table handles, which
    /// the kernel renumbers on every replace, stay put); otherwise replaces the table in one
    /// transaction and checks that the kernel now holds exactly the plan.
    fn apply(&self, fw: &FirewallPlan) -> Result<ApplyOutcome, FirewallError> {
        check_ours(&fw.table)?;
        let want = nft_rules::build(fw);
        match self.live(&fw.table)? {
            Some(live) if !live.is_marked() => {
                return Err(FirewallError::NotMarked(
                    FAMILY.to_string(),
                    fw.table.clone(),
                ))
            }
            Some(live) if live == want => {
                debug!(table = %fw.table, "nftables table already up to date");
                return Ok(ApplyOutcome::Unchanged);
            }
            // Replacing deletes the old table in the same transaction, which costs the kernel a
            // grace period (~20 ms): only pay it when there is a table to replace. If nft lists
            // rules differently from how we write them (another nft version), every deploy
            // replaces the table: still correct, only not a no-op; the idempotence tests catch it.
            Some(_) => self.nft.apply(&want.replace_document())?,
            None => self.nft.apply(&want.create_document())?,
        }
        info!(table = %fw.table, rules = want.rules.len(), "nftables table written");
        Ok(ApplyOutcome::Replaced)
    }

    /// One transaction, no listing first (a ruleset read saved): `create table` fails if a
    /// table with the name exists, so one that is not ours is never flushed; only then is it
    /// listed, and replaced if it carries edgenet's mark.
    fn create(&self, fw: &FirewallPlan) -> Result<ApplyOutcome, FirewallError> {
        check_ours(&fw.table)?;
        let want = nft_rules::build(fw);
        match self.nft.apply(&want.create_document()) {
            Ok(()) => {}
            Err(e) if is_exists(&e) => return self.apply(fw),
            Err(e) => return Err(e.into()),
        }
        info!(table = %fw.table, rules = want.rules.len(), "nftables table written");
        Ok(ApplyOutcome::Replaced)
    }

    /// Strict: only a marked table. (A rollback removes tables the run only meant to create,
    /// so a rule-less one may not be ours; `remove` deletes a flushed table the state records
    /// as made by the deployment on its own path.)
    fn remove(&self, name: &str) -> Result<bool, FirewallError> {
        let (family, table) = split_family(name);
        check_ours(table)?;
        if self.marked(name, false)? == Some(false) {
            return Err(FirewallError::NotMarked(
                family.to_string(),
                table.to_string(),
            ));
        }
        let existed = self.nft.delete_table(family, table)?;
        if existed {
            info!(%table, "nftables table deleted");
        }
        Ok(existed)
    }

    fn live(&self, table: &str) -> Result<Option<Ruleset>, FirewallError> {
        let (family, table) = split_family(table);
        check_ours(table)?;
        Ok(self.live_table(family, table)?.map(Rc::unwrap_or_clone))
    }
}
