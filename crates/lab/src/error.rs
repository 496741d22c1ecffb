//! Errors of the lab. Every variant names the object it concerns (a namespace, a service, a
//! file), so a failed `up` or a `down` that left something behind says exactly what.

use std::path::PathBuf;
use std::time::Duration;

use edgenet_host::netlink::HostError;

/// The boxed error a `deploy`/`undeploy` callback returned.
pub type CallbackError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid lab name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid lab spec for lab {lab}: {reason}")]
    InvalidSpec { lab: String, reason: String },

    /// A kernel operation (namespace, link, address, route, sysctl) failed; the host layer's
    /// message names the object, `context` the lab or namespace it was done for.
    #[error("{context}: {source}")]
    Host {
        context: String,
        #[source]
        source: HostError,
    },

    /// The LAN switch's nftables table could not be written.
    #[error("{context}: {source}")]
    Firewall {
        context: String,
        #[source]
        source: edgenet_host::nft::NftError,
    },

    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("lab state {}: {source}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("no lab is recorded in {} (no lab.json)", dir.display())]
    NotFound { dir: PathBuf },

    #[error("a lab ({name}) is already recorded in {}: run `down` on it first", dir.display())]
    Exists { dir: PathBuf, name: String },

    /// A namespace of the name the lab would give one of its own exists already: it is not
    /// the lab's (another lab's, a leftover, anybody's), and the lab never touches it.
    /// `before_build`: found before the lab built anything (else it appeared meanwhile).
    #[error("lab {lab}: network namespace {netns} exists already and is not this lab's; {}{netns} is left as it is", if *.before_build { "nothing was built, and " } else { "" })]
    NamespaceTaken {
        lab: String,
        netns: String,
        before_build: bool,
    },

    #[error("lab in {} is in use by another process (lock {} held)", dir.display(), lock.display())]
    Locked { dir: PathBuf, lock: PathBuf },

    #[error("start {service} in netns {netns}: {source}")]
    Spawn {
        service: String,
        netns: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{service} (pid {pid}) in netns {netns} exited during start-up ({status}); see {}: {tail}", log.display())]
    ServiceExited {
        service: String,
        netns: String,
        pid: u32,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{service} in netns {netns} did not answer within {timeout:?} (last: {last}){}", see(log.as_deref()))]
    NotReady {
        service: String,
        netns: String,
        timeout: Duration,
        last: String,
        /// The log that tells more about `last`; `None` when no log does (a machine's
        /// ICMP echo through the router: nothing of the lab logs it).
        log: Option<PathBuf>,
    },

    #[error("stop {service} (pid {pid}): {reason}")]
    Stop {
        service: String,
        pid: u32,
        reason: String,
    },

    #[error("deploy on lab machine {machine} (netns {netns}): {source}")]
    Deploy {
        machine: String,
        netns: String,
        #[source]
        source: CallbackError,
    },

    #[error("undeploy on lab machine {machine} (netns {netns}): {source}")]
    Undeploy {
        machine: String,
        netns: String,
        #[source]
        source: CallbackError,
    },

    #[error("process {pid} ({command}) still uses lab netns {netns}; it was not started by the lab, so it was left alone")]
    ForeignProcess {
        netns: String,
        pid: u32,
        command: String,
    },

    #[error("refusing to probe from netns {netns}: it is the host's own network namespace")]
    HostNamespace { netns: String },

    #[error("run {command} in netns {netns}: {reason}")]
    Command {
        command: String,
        netns: String,
        reason: String,
    },
}

impl LabError {
    pub(crate) fn host(context: &str, source: HostError) -> Self {
        LabError::Host {
            context: context.to_string(),
            source,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// `down` carried on past these failures; whatever they name may still exist, and the lab's
/// state file was kept so that another `down` can retry.
#[derive(Debug, thiserror::Error)]
#[error("lab down left {} problem(s):\n  {}", .errors.len(), join(.errors))]
pub struct DownError {
    pub errors: Vec<LabError>,
}

fn join(errors: &[LabError]) -> String {
    errors
        .iter()
        .map(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            // Host errors already carry their cause in the message; others add it here.
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// `; see LOG` for a message, empty without a log.
fn see(log: Option<&std::path::Path>) -> String {
    log.map(|l| format!("; see {}", l.display()))
        .unwrap_or_default()
}
