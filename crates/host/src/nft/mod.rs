//! The only place that runs nftables commands. Three ways, one interface: nftables JSON
//! (`libnftables-json(5)`) in, the same JSON and the same error texts out:
//!
//! - `native`: nf_tables messages over our own netlink socket, for the subset of commands and
//!   tables edgenet writes itself (its firewall tables), and for reading the whole ruleset when
//!   the other tools' tables in it hold only the forms the native reader knows (Docker's and
//!   ufw's iptables-nft tables, Debian's `inet filter`, plain nft rules; see
//!   `native/foreign.rs`). No library is loaded then: a deploy, a redeploy and a remove on such
//!   a host never touch libnftables.
//! - [`library`]: libnftables in-process, for everything else: a document outside the subset,
//!   and reading a namespace that holds a table the native reader does not decode (named sets
//!   and maps as firewalld uses, objects, IPv6 header matches, `fib`, `reject`, …). The
//!   host-firewall walk (`edgenet_core::host_firewall`, `doctor`) must see what the kernel
//!   holds; the native reader prints only what it decodes exactly as libnftables 1.0.6 does
//!   (`tests/nft_foreign.rs` compares the two on real rulesets) and otherwise leaves the
//!   whole listing to libnftables. Its own tables' decoding is proven by encoding the result
//!   again and comparing with the kernel's expressions.
//! - the `nft` program, where the library does not load (or the process is not root).
//!
//! `EDGENET_NFT` chooses: `auto` (default: native where possible, else library, else program),
//! `native` (native where possible, else the program: libnftables is never loaded), `library`,
//! `process`; `-v` says which path a run took.
//!
//! Every call runs in the network namespace of the *calling thread*: the native socket and a
//! libnftables context are opened there, and a child process inherits the namespace of the
//! thread that forks it, so callers that work inside a machine or node namespace `setns` a
//! dedicated thread first. Nothing here uses `ip netns exec`, whose private mount namespace
//! would hide namespaces created meanwhile (see NOTES.md).
//!
//! Documents are nftables JSON; building them is the caller's business.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

pub mod library;
mod native;
mod owner;
mod persist;
mod session;
mod write_failure;

pub use owner::TableOwner;
pub use persist::{
    forget_ruleset_cache, never_read_ruleset_cache, ruleset_cache_file, store_ruleset_cache,
    use_ruleset_cache, CACHE_FILE,
};
pub use session::{
    forget_ruleset, note_own_tables, own_tables_proven, session_epoch, table_in, RulesetSession,
};
use session::{
    session_active, session_has_ruleset, session_keep, session_keep_at, session_shared,
    session_shared_any, session_wrote, session_wrote_owned, with_session_ruleset,
};

/// What went wrong running `nft`. Every failure of nft itself carries its stderr, which names the
/// offending part of the document.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "the nftables program `{program}` was not found; install the Debian package `nftables` \
         (apt-get install nftables)"
    )]
    NotInstalled { program: String },
    #[error("could not run `{program} {args}`: {source}")]
    Spawn {
        program: String,
        args: String,
        #[source]
        source: io::Error,
    },
    #[error("{}", failed_text(.program, .args, .status, .stderr))]
    Failed {
        program: String,
        args: String,
        status: String,
        stderr: String,
    },
    #[error("`{program} {args}` printed output that is not nftables JSON: {source}")]
    BadOutput {
        program: String,
        args: String,
        #[source]
        source: serde_json::Error,
    },
    /// A table another process owns (`flags owner`): refused before anything is sent.
    #[error("{0}")]
    Owned(TableOwner),
}

/// [`NftError::Failed`] in words: a native netlink failure is not labelled as an `nft` command.
fn failed_text(program: &str, args: &str, status: &str, stderr: &str) -> String {
    if status == NATIVE_STATUS {
        format!("the {NATIVE_STATUS} {args} (in-process, not `{program}`) failed: {stderr}")
    } else {
        format!("`{program} {args}` failed ({status}): {stderr}")
    }
}

/// The program [`Nft::new`] runs, and the only one that may run in-process instead.
const DEFAULT_PROGRAM: &str = "nft";
/// `EDGENET_NFT`: `auto` (default), `native`, `library` or `process` (A/B measurements, a
/// suspected problem in one path).
pub const BACKEND_ENV: &str = "EDGENET_NFT";
/// The values [`BACKEND_ENV`] takes (empty or unset means `auto`).
pub const BACKEND_VALUES: [&str; 4] = ["auto", "native", "library", "process"];
/// The status [`NftError::Failed`] carries for an error of the native path.
const NATIVE_STATUS: &str = "native nf_tables netlink";
/// Whether the native path is on for the default program, decided (and logged) once.
static NATIVE: OnceLock<bool> = OnceLock::new();

/// What `EDGENET_NFT` asks for.
fn mode() -> String {
    std::env::var(BACKEND_ENV).unwrap_or_default()
}
/// The process's choice of [`Backend`] for the default program, made (and logged) once.
static CHOICE: OnceLock<bool> = OnceLock::new();

/// How an [`Nft`] runs the commands the native path does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// libnftables in this process.
    Library,
    /// A spawned `nft` program.
    Process,
}

/// A handle on nftables: native netlink for edgenet's own tables, else the `nft` program or in
/// its stead libnftables in-process (see [`Nft::backend`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Nft {
    program: PathBuf,
    /// `false`: never the native path (A/B comparisons, tests).
    native_allowed: bool,
}

impl Default for Nft {
    fn default() -> Self {
        Nft::new()
    }
}

/// libnftables 1.0.6 lists a netdev base chain without its device: adds `"dev"` (a name or a
/// list, as later versions print it) from the kernel, so the walk knows what the chain sees.
fn add_netdev_devices(ruleset: &mut Value) {
    let Some(items) = ruleset.get_mut("nftables").and_then(Value::as_array_mut) else {
        return;
    };
    let lacking =
        |c: &Value| c["family"] == "netdev" && c.get("hook").is_some() && c.get("dev").is_none();
    if !items.iter().any(|i| i.get("chain").is_some_and(lacking)) {
        return;
    }
    let devices = match native::netdev_chain_devices() {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!("nftables: netdev chains' devices not read ({e})");
            return;
        }
    };
    for item in items.iter_mut() {
        let Some(c) = item.get_mut("chain").filter(|c| lacking(c)) else {
            continue;
        };
        let found = devices
            .iter()
            .find(|(t, n, _)| c["table"] == t.as_str() && c["name"] == n.as_str());
        if let Some((_, _, devs)) = found {
            c["dev"] = match devs.as_slice() {
                [one] => Value::from(one.as_str()),
                many => Value::from(many.to_vec()),
            };
        }
    }
}

/// A write failed: the session's ruleset is no longer known, and the ruleset cache, which it may
/// have been decided on, goes too (a retry and the next run read the kernel).
fn write_failed() {
    forget_ruleset();
    persist::distrust_ruleset_cache();
}

impl Nft {
    /// `nft` looked up in `PATH`, or libnftables in its stead (see [`Nft::backend`]).
    pub fn new() -> Self {
        Nft {
            program: PathBuf::from(DEFAULT_PROGRAM),
            native_allowed: true,
        }
    }

    /// A specific binary (tests, or hosts with nft outside `PATH`).
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Nft {
            program: program.into(),
            native_allowed: true,
        }
    }

    /// The same handle without the native path: every command through libnftables or the
    /// program (comparisons of the two paths).
    pub fn without_native(mut self) -> Self {
        self.native_allowed = false;
        self
    }

    /// Writes `document` over native netlink only: `None` when it is outside the native subset
    /// (nothing was done). For tests and comparisons; [`Nft::apply`] chooses by itself.
    pub fn apply_native(&self, document: &Value) -> Option<Result<(), NftError>> {
        let result = native::apply(document)?.map_err(|e| self.native_write_failed(document, &e));
        match &result {
            Ok(_) => session_wrote(&self.program, document),
            Err(_) => write_failed(),
        }
        Some(result)
    }

    /// The ruleset read over native netlink only (no session): `Ok(None)` when the namespace
    /// holds a table the native reader does not decode.
    pub fn list_ruleset_native(&self) -> Result<Option<Value>, NftError> {
        native::list(None)
            .map(Option::flatten)
            .map_err(|e| self.native_failed("ruleset read", format!("Error: netlink: {e}")))
    }

    /// Finds the program without running it (a spawn of `nft` costs milliseconds; a deploy
    /// checks for it before touching anything): an explicit path must exist, a bare name must
    /// be on `PATH`.
    pub fn locate(&self) -> Result<PathBuf, NftError> {
        let not_installed = || NftError::NotInstalled {
            program: self.program_name(),
        };
        if self.program.components().count() > 1 {
            return self
                .program
                .is_file()
                .then(|| self.program.clone())
                .ok_or_else(not_installed);
        }
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.program))
            .find(|candidate| candidate.is_file())
            .ok_or_else(not_installed)
    }

    /// Whether a command of this run may still need the `nft` program: not when the native
    /// path is on and the calling thread's session already holds the namespace's ruleset (the
    /// reads are served from it; edgenet's own tables are written natively). A command that
    /// falls back after all reports a missing program then ([`NftError::NotInstalled`]).
    pub fn program_may_be_needed(&self) -> bool {
        !(self.native() && session_has_ruleset())
    }

    /// Checks that the binary runs; returns its version line (e.g. `nftables v1.0.6 (…)`).
    /// Meant for validation before anything is changed, so a missing package is reported once,
    /// clearly, instead of as a failure half-way through a deploy.
    pub fn check(&self) -> Result<String, NftError> {
        let out = self.run(&["--version"], None)?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Applies a JSON document (`{"nftables": [...]}`) as one transaction: nft sends the whole
    /// batch to the kernel at once, so either every command takes effect or none does.
    pub fn apply(&self, document: &Value) -> Result<(), NftError> {
        let native = if self.native() {
            native::apply(document)
        } else {
            None
        };
        let result = match native {
            Some(r) => {
                tracing::debug!("nftables: document written over native netlink");
                r.map_err(|e| self.native_write_failed(document, &e))
            }
            None => {
                let input = serde_json::to_vec(document).expect("a JSON value always serialises");
                self.run(&["-j", "-f", "-"], Some(&input)).map(|_| ())
            }
        };
        match &result {
            Ok(_) => session_wrote(&self.program, document),
            Err(_) => write_failed(),
        }
        result
    }

    /// Lists one table as parsed JSON; `Ok(None)` when the table does not exist.
    /// Inside a [`RulesetSession`], taken from the one ruleset read instead of another `nft`.
    pub fn list_table(&self, family: &str, name: &str) -> Result<Option<Value>, NftError> {
        if session_active() {
            // Cut out of the kept read in place: copying the whole ruleset first cost more
            // than the rest of a no-change redeploy's firewall step.
            if let Some(table) = with_session_ruleset(|r| table_in(r, family, name)) {
                return Ok(table);
            }
            // The walk's read: our tables whole, and kept for the host facts' walk after.
            match self.list_ruleset_for_walk() {
                Ok(ruleset) => return Ok(table_in(&ruleset, family, name)),
                // Another table is owned (unlistable as a whole ruleset): read this one alone.
                Err(NftError::Owned(o))
                    if (o.family.as_str(), o.table.as_str()) != (family, name) => {}
                Err(e) => return Err(e),
            }
        }
        if self.native() {
            match native::list(Some((family, name))) {
                Ok(Some(table)) => {
                    tracing::debug!("nftables: table {family} {name} read over native netlink");
                    return Ok(table);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("nftables: native read failed ({e}); falling back"),
            }
        }
        // libnftables cannot list an owned table: say whose it is instead.
        if let Ok(Some(owner)) = owner::owned_table(Some((family, name))) {
            return Err(NftError::Owned(owner));
        }
        let args = ["-j", "list", "table", family, name];
        match self.run(&args, None) {
            Ok(out) => {
                serde_json::from_slice(&out)
                    .map(Some)
                    .map_err(|source| NftError::BadOutput {
                        program: self.program_name(),
                        args: args.join(" "),
                        source,
                    })
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Who owns table `family name` when another process holds it with the `owner` flag
    /// (`None`: not owned, or not there). Over netlink: libnftables cannot list such a table.
    pub fn owner_of(&self, family: &str, name: &str) -> io::Result<Option<TableOwner>> {
        owner::owned_table(Some((family, name)))
    }

    /// The whole ruleset of the namespace (every family, iptables-nft tables included), read
    /// only: for finding other firewalls that drop the switch's traffic.
    /// Inside a [`RulesetSession`], read once per namespace and kept (see there).
    pub fn list_ruleset(&self) -> Result<Value, NftError> {
        self.list_ruleset_shared().map(Arc::unwrap_or_clone)
    }

    /// [`Nft::list_ruleset`], shared with the session instead of copied (a whole ruleset is
    /// hundreds of JSON maps; the host facts keep it for the whole command).
    pub fn list_ruleset_shared(&self) -> Result<Arc<Value>, NftError> {
        if let Some(ruleset) = session_shared() {
            return Ok(ruleset);
        }
        if self.native() {
            if let Some(ruleset) = self.cached(true) {
                return Ok(ruleset);
            }
            match native::list(None) {
                Ok(Some(Some(ruleset))) => {
                    tracing::debug!("nftables: ruleset read over native netlink");
                    let ruleset = Arc::new(ruleset);
                    session_keep_at(Arc::clone(&ruleset), native_gen(), false);
                    return Ok(ruleset);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("nftables: native read failed ({e}); falling back"),
            }
        }
        if let Ok(Some(owner)) = owner::owned_table(None) {
            return Err(NftError::Owned(owner));
        }
        let args = ["-j", "list", "ruleset"];
        let out = self.run(&args, None)?;
        let mut ruleset: Value =
            serde_json::from_slice(&out).map_err(|source| NftError::BadOutput {
                program: self.program_name(),
                args: args.join(" "),
                source,
            })?;
        add_netdev_devices(&mut ruleset);
        let ruleset = Arc::new(ruleset);
        session_keep(Arc::clone(&ruleset));
        Ok(ruleset)
    }

    /// The namespace's tables as (family, name), without their contents: the kept ruleset's
    /// inside a session, else one native table dump, else from the whole listing.
    pub fn list_tables(&self) -> Result<Vec<(String, String)>, NftError> {
        let of = |ruleset: &Value| -> Vec<(String, String)> {
            ruleset["nftables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let t = i.get("table")?;
                    Some((
                        t["family"].as_str()?.to_string(),
                        t["name"].as_str()?.to_string(),
                    ))
                })
                .collect()
        };
        if let Some(ruleset) = session_shared_any() {
            return Ok(of(&ruleset));
        }
        if self.native() {
            match native::table_names() {
                Ok(tables) => return Ok(tables),
                Err(e) => tracing::debug!("nftables: native table dump failed ({e}); falling back"),
            }
        }
        Ok(of(self.list_ruleset_for_walk()?.as_ref()))
    }

    /// The ruleset for the host-firewall walk: [`Nft::list_ruleset_shared`], except that over
    /// native netlink the elements of other tools' plain port sets are not read (the walk never
    /// needs them; reading thousands costs seconds). Such a listing is kept in the session for
    /// the walk and edgenet's own tables (complete in it); a reader of the whole ruleset reads
    /// again.
    pub fn list_ruleset_for_walk(&self) -> Result<Arc<Value>, NftError> {
        if let Some(ruleset) = session_shared_any() {
            return Ok(ruleset);
        }
        if self.native() {
            if let Some(ruleset) = self.cached(false) {
                return Ok(ruleset);
            }
            match native::list_for_walk() {
                Ok(Some(Some(ruleset))) => {
                    tracing::debug!("nftables: ruleset read over native netlink for the walk");
                    let ruleset = Arc::new(ruleset);
                    session_keep_at(Arc::clone(&ruleset), native_gen(), false);
                    return Ok(ruleset);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("nftables: native read failed ({e}); falling back"),
            }
        }
        self.list_ruleset_shared()
    }

    /// The ruleset cache's listing ([`persist`]) when this command uses one, a session is on and
    /// the cache is provably the kernel's ruleset now; kept in the session.
    fn cached(&self, whole: bool) -> Option<Arc<Value>> {
        if !session_active() || ruleset_cache_file().is_none() {
            return None;
        }
        persist::load(whole)
    }

    /// Deletes one table with everything in it. Returns whether it existed; a missing table is
    /// not an error, so teardown stays idempotent.
    pub fn delete_table(&self, family: &str, name: &str) -> Result<bool, NftError> {
        Ok(self.delete_tables(&[(family, name)])?[0])
    }

    /// Deletes the tables that exist among `tables`, in one transaction where the native path
    /// takes them (otherwise one after the other); whether each existed.
    pub fn delete_tables(&self, tables: &[(&str, &str)]) -> Result<Vec<bool>, NftError> {
        // The deployment is going: its cache with it (the state directory is emptied).
        forget_ruleset_cache();
        if self.native() {
            if let Some(result) = native::delete_tables(tables) {
                tracing::debug!("nftables: tables deleted over native netlink");
                return match result {
                    Ok(existed) => {
                        for (family, name) in tables {
                            self.note_deleted(family, name);
                        }
                        Ok(existed)
                    }
                    Err(e) => {
                        write_failed();
                        Err(self.native_failed("table delete", e.text()))
                    }
                };
            }
        }
        tables
            .iter()
            .map(|(family, name)| self.delete_table_run(family, name))
            .collect()
    }

    fn delete_table_run(&self, family: &str, name: &str) -> Result<bool, NftError> {
        let result = match self.run(&["delete", "table", family, name], None) {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => self.note_deleted(family, name),
            Err(_) => write_failed(),
        }
        result
    }

    /// Tells the current session (if any) that `document` was applied: a caller that had it
    /// written on another thread, whose session is its own.
    /// The document's objects are moved into the session's ruleset, not copied.
    pub fn note_applied(&self, document: Value) {
        session_wrote_owned(document);
    }

    /// Tells the current session (if any) that table `family name` is gone: a caller that had
    /// it deleted on another thread, whose session is its own.
    pub fn note_deleted(&self, family: &str, name: &str) {
        let delete = serde_json::json!({"nftables": [
            {"delete": {"table": {"family": family, "name": name}}}
        ]});
        session_wrote(&self.program, &delete);
    }

    /// Whether commands go the native way first: the default program, root, and
    /// `EDGENET_NFT` `auto` (or unset) or `native`.
    fn native(&self) -> bool {
        if !self.native_allowed || self.program != Path::new(DEFAULT_PROGRAM) {
            return false;
        }
        *NATIVE.get_or_init(|| {
            let mode = mode();
            let on = matches!(mode.as_str(), "" | "auto" | "native")
                && nix::unistd::geteuid().is_root();
            if on {
                tracing::info!(
                    "nftables: edgenet's own tables over native nf_tables netlink, anything else through {}",
                    if mode == "native" { "the nft program" } else { "libnftables (or the nft program)" }
                );
            }
            on
        })
    }

    fn native_failed(&self, args: &str, stderr: String) -> NftError {
        NftError::Failed {
            program: self.program_name(),
            args: args.to_string(),
            status: NATIVE_STATUS.to_string(),
            stderr,
        }
    }

    /// A refused native write: labelled as the netlink write it was, repeated errnos in one
    /// line, the first failing command named.
    fn native_write_failed(&self, document: &Value, e: &native::NativeError) -> NftError {
        self.native_failed("write", write_failure::describe(document, e))
    }

    fn program_name(&self) -> String {
        self.program.display().to_string()
    }

    /// Which way commands the native path does not take run: [`Backend::Library`] for the
    /// default `nft` when libnftables loads, the process is root and `EDGENET_NFT` is neither
    /// `process` nor `native`; otherwise [`Backend::Process`]. (A non-root run takes the program: libnftables prints its
    /// permission hint straight to the process's stderr instead of the error buffer.)
    pub fn backend(&self) -> Backend {
        if self.program != Path::new(DEFAULT_PROGRAM) {
            return Backend::Process;
        }
        let choice = CHOICE.get_or_init(|| {
            let mode = mode();
            let why_not = if mode == "process" || mode == "native" {
                Some(format!("{BACKEND_ENV}={mode}"))
            } else if !nix::unistd::geteuid().is_root() {
                Some("not root".to_string())
            } else {
                library::load().err()
            };
            match &why_not {
                None => tracing::info!("nftables: in-process through {}", library::SONAME),
                Some(why) => tracing::info!("nftables: through the nft program ({why})"),
            }
            why_not.is_none()
        });
        if *choice {
            Backend::Library
        } else {
            Backend::Process
        }
    }

    /// Runs `nft args`, feeding `stdin` if given; returns stdout on success.
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, NftError> {
        if args.first() != Some(&"--version") && self.backend() == Backend::Library {
            match self.run_in_process(args, stdin) {
                Some(result) => return result,
                None => tracing::debug!("nftables: falling back to the nft program"),
            }
        }
        self.spawn(args, stdin)
    }

    /// [`Self::run`] through libnftables; `None` when the library cannot run it at all.
    fn run_in_process(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Option<Result<Vec<u8>, NftError>> {
        let (json, rest) = match args.split_first() {
            Some((&"-j", rest)) => (true, rest),
            _ => (false, args),
        };
        // `-f -` reads the document from stdin: the library takes it as the command buffer.
        let command = match (rest, stdin) {
            (["-f", "-"], Some(input)) => String::from_utf8_lossy(input).into_owned(),
            (_, None) => rest.join(" "),
            _ => return None,
        };
        tracing::debug!("libnftables: nft {}", args.join(" "));
        match library::run(&command, json) {
            // libnftables 1.0.6 frees a dormant table's flags before printing them (the `nft`
            // program survives it, printing a wrong but present `flags`): a listing it cannot
            // print whole is asked of the program instead. (Only a listing: a write prints
            // nothing, and must not be sent twice.)
            Ok(outcome)
                if outcome.ok
                    && json
                    && rest.first() == Some(&"list")
                    && serde_json::from_str::<serde::de::IgnoredAny>(&outcome.stdout).is_err() =>
            {
                tracing::debug!("libnftables printed broken JSON; asking the nft program");
                None
            }
            Ok(outcome) if outcome.ok => Some(Ok(outcome.stdout.into_bytes())),
            Ok(outcome) => Some(Err(NftError::Failed {
                program: self.program_name(),
                args: args.join(" "),
                status: "in-process libnftables".to_string(),
                stderr: outcome.stderr.trim().to_string(),
            })),
            Err(why) => {
                tracing::warn!("nftables: libnftables could not run the command: {why}");
                None
            }
        }
    }

    /// Runs the `nft` program with `args`, feeding `stdin` if given; returns stdout on success.
    fn spawn(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, NftError> {
        let program = self.program_name();
        let spawn_err = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                NftError::NotInstalled {
                    program: program.clone(),
                }
            } else {
                NftError::Spawn {
                    program: program.clone(),
                    args: args.join(" "),
                    source,
                }
            }
        };
        tracing::debug!("run {:?} {}", self.program, args.join(" "));
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            // nft prints strerror() texts; keep them in English so `is_missing` can read them.
            .env("LC_ALL", OsString::from("C"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let Some(input) = stdin {
            // nft reads its whole input before printing anything, so writing first cannot
            // deadlock against a full stdout/stderr pipe.
            let mut pipe = child.stdin.take().expect("stdin was piped");
            pipe.write_all(input).map_err(spawn_err)?;
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().map_err(spawn_err)?;
        if status.success() {
            Ok(stdout)
        } else {
            Err(NftError::Failed {
                program,
                args: args.join(" "),
                status: status.to_string(),
                stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
            })
        }
    }
}

/// The generation of the calling thread's native read just made, as the session keeps it.
fn native_gen() -> Option<(u32, u32)> {
    native::take_last_gen().map(|g| (g, 0))
}

/// nft reports a missing table as ENOENT ("No such file or directory").
fn is_missing(e: &NftError) -> bool {
    matches!(e, NftError::Failed { stderr, .. } if stderr.contains("No such file or directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in `nft` that runs `script`, so error paths are tested without root and without
    /// nft. The file is written by a child shell: if this (multi-threaded) test process held
    /// it open for writing, a concurrent fork could make exec fail with ETXTBSY.
    fn fake_nft(dir: &tempfile::TempDir, name: &str, script: &str) -> Nft {
        let path = dir.path().join(name);
        let status = Command::new("sh")
            .args([
                "-c",
                "printf '#!/bin/sh\\n%s\\n' \"$1\" > \"$2\" && chmod 755 \"$2\"",
                "sh",
            ])
            .arg(script)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        Nft::with_program(path)
    }

    #[test]
    fn missing_binary_names_the_debian_package() {
        let nft = Nft::with_program("/nonexistent/edgenet-test/nft");
        let err = nft.check().unwrap_err();
        assert!(matches!(err, NftError::NotInstalled { .. }), "{err:?}");
        assert!(
            err.to_string().contains("Debian package `nftables`"),
            "{err}"
        );
        // Every entry point reports the same clear error, not a bare ENOENT.
        let err = nft.list_table("ip", "t").unwrap_err();
        assert!(matches!(err, NftError::NotInstalled { .. }), "{err:?}");
    }

    #[test]
    fn failures_carry_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let nft = fake_nft(
            &dir,
            "nft",
            "cat >/dev/null; echo 'Error: syntax error' >&2; exit 1",
        );
        let err = nft.apply(&serde_json::json!({"nftables": []})).unwrap_err();
        match &err {
            NftError::Failed { stderr, args, .. } => {
                assert_eq!(stderr, "Error: syntax error");
                assert_eq!(args, "-j -f -");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("Error: syntax error"), "{err}");
        // A failure that is not ENOENT is not mistaken for a missing table.
        assert!(nft.list_table("ip", "t").is_err());
        assert!(nft.delete_table("ip", "t").is_err());
    }

    #[test]
    fn apply_feeds_the_document_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let nft = fake_nft(
            &dir,
            "nft",
            &format!("echo \"$@\" > {0}.args; cat > {0}", seen.display()),
        );
        let doc =
            serde_json::json!({"nftables": [{"add": {"table": {"family": "ip", "name": "t"}}}]});
        nft.apply(&doc).unwrap();
        let got: Value = serde_json::from_slice(&std::fs::read(&seen).unwrap()).unwrap();
        assert_eq!(got, doc);
        let args = std::fs::read_to_string(dir.path().join("seen.args")).unwrap();
        assert_eq!(args.trim(), "-j -f -");
    }

    #[test]
    fn missing_table_is_none_and_delete_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let nft = fake_nft(
            &dir,
            "nft",
            "echo 'Error: No such file or directory' >&2; exit 1",
        );
        assert!(nft.list_table("ip", "t").unwrap().is_none());
        assert!(!nft.delete_table("ip", "t").unwrap());
    }

    #[test]
    fn listing_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let nft = fake_nft(
            &dir,
            "nft",
            r#"echo '{"nftables": [{"table": {"family": "ip", "name": "t", "handle": 1}}]}'"#,
        );
        let listed = nft.list_table("ip", "t").unwrap().unwrap();
        assert_eq!(listed["nftables"][0]["table"]["name"], "t");
        let bad = fake_nft(&dir, "bad-nft", "echo 'not json'");
        assert!(matches!(
            bad.list_table("ip", "t"),
            Err(NftError::BadOutput { .. })
        ));
    }

    #[test]
    fn the_program_is_looked_up_only_when_a_fallback_may_run() {
        let nft = Nft::new();
        assert!(nft.program_may_be_needed(), "outside a session: as before");
        let _session = RulesetSession::begin();
        assert!(nft.program_may_be_needed(), "nothing read yet");
        session::session_keep(Arc::new(serde_json::json!({ "nftables": [] })));
        // Native (root, EDGENET_NFT unset) with the read kept: no lookup; otherwise as before.
        assert_eq!(nft.program_may_be_needed(), !nft.native());
        assert!(Nft::with_program("/usr/sbin/nft").program_may_be_needed());
        assert!(nft.clone().without_native().program_may_be_needed());
        forget_ruleset();
        assert!(nft.program_may_be_needed(), "the read was dropped");
    }

    #[test]
    fn a_session_reads_the_ruleset_once_and_follows_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let nft = fake_nft(
            &dir,
            "nft",
            &format!(
                r#"echo "$1 $2" >> {}; cat >/dev/null; echo '{{"nftables": [{{"table": {{"family": "ip", "name": "other", "handle": 1}}}}, {{"chain": {{"family": "ip", "table": "other", "name": "c", "handle": 2}}}}]}}'"#,
                count.display()
            ),
        );
        let spawns = || {
            std::fs::read_to_string(&count)
                .unwrap_or_default()
                .lines()
                .count()
        };
        {
            let _session = RulesetSession::begin();
            let first = nft.list_ruleset().unwrap();
            assert_eq!(nft.list_ruleset().unwrap(), first);
            let other = nft.list_table("ip", "other").unwrap().unwrap();
            assert_eq!(other["nftables"].as_array().unwrap().len(), 2);
            assert_eq!(nft.list_table("ip", "mine").unwrap(), None);
            assert_eq!(spawns(), 1, "one read serves every reader");
            // What we write is folded in without another read.
            let table = serde_json::json!({"family": "bridge", "name": "mine"});
            let chain = serde_json::json!({"family": "bridge", "table": "mine", "name": "p"});
            nft.apply(&serde_json::json!({"nftables": [
                {"create": {"table": table}}, {"add": {"chain": chain}}
            ]}))
            .unwrap();
            let mine = nft.list_table("bridge", "mine").unwrap().unwrap();
            assert_eq!(mine["nftables"][1]["chain"], chain);
            assert_eq!(spawns(), 2);
            nft.delete_table("bridge", "mine").unwrap();
            assert_eq!(nft.list_table("bridge", "mine").unwrap(), None);
            assert_eq!(spawns(), 3);
            // A change the session cannot follow makes the next reader look again.
            forget_ruleset();
            nft.list_ruleset().unwrap();
            assert_eq!(spawns(), 4);
        }
        // Outside a session every reader reads.
        nft.list_ruleset().unwrap();
        nft.list_ruleset().unwrap();
        assert_eq!(spawns(), 6);
    }
}
