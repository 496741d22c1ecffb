//! Why a deploy, remove or status could not do its job.

use edgenet_host::HostError;

use crate::failpoint::FailpointHit;
use crate::firewall::FirewallError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Failpoint(#[from] FailpointHit),
    /// A kernel object with a name edgenet needs exists and is not edgenet's.
    #[error("{what} {name:?} already exists and was not made by this edgenet deployment; edgenet leaves it alone")]
    Foreign {
        what: &'static str,
        name: String,
        hint: String,
    },
    /// Another tool's firewall drops the switch's packets (edgenet does not edit its rules).
    #[error("host firewall chain {chain} drops {flow} of {switch}")]
    HostFirewall {
        chain: String,
        flow: String,
        switch: String,
        fix: String,
    },
    #[error("{0}")]
    Unsupported(String),
    /// Something else configures the adapter an external switch would take over.
    #[error("{message}")]
    AdapterManaged { message: String, fix: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl DeployError {
    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            DeployError::Foreign { hint, .. } => Some(hint.clone()),
            DeployError::AdapterManaged { fix, .. } => Some(fix.clone()),
            DeployError::HostFirewall { fix, .. } => Some(fix.clone()),
            DeployError::State(StateError::Locked { .. }) => Some(
                "wait for the other edgenet run to finish, or give this one its own --state-dir"
                    .into(),
            ),
            DeployError::Host(e) if e.errno() == Some(libc_eperm()) => {
                Some("run edgenet as root".into())
            }
            _ => None,
        }
    }
}

const fn libc_eperm() -> i32 {
    1
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> DeployError + 'a {
    move |source| DeployError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}
