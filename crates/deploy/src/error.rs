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
    /// Something edgenet does not do (or a record it cannot use).
    #[error("{0}")]
    Unsupported(String),
    /// Something edgenet needs, or recorded, is not there (`adapter eth1 is gone; ...`).
    #[error("{what} {name} {why}")]
    Missing {
        what: &'static str,
        name: String,
        why: String,
    },
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
    pub fn missing(what: &'static str, name: &str, why: &str) -> DeployError {
        DeployError::Missing {
            what,
            name: name.to_string(),
            why: why.to_string(),
        }
    }

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
            DeployError::State(StateError::Corrupt { path, .. }) => {
                let dir = path.parent().unwrap_or(std::path::Path::new("."));
                Some(format!(
                    "`edgenet remove --state-dir {dir}` removes the deployment all the same: it moves the damaged file aside (to {path}.damaged) and rebuilds the records from identity.json and the marks of the objects in the kernel; to keep the deployment instead, `mv {path} {path}.damaged` and deploy again (the records are rebuilt the same way, and the machine name from identity.json; give --machine-name NAME if the deployment was made with one by an edgenet whose identity.json does not hold it). Either way the value net.ipv4.ip_forward had before edgenet is lost (remove then leaves it as it is)",
                    dir = dir.display(),
                    path = path.display()
                ))
            }
            DeployError::Host(e) if e.io_error().kind() == std::io::ErrorKind::PermissionDenied => {
                Some("run edgenet as root".into())
            }
            _ => None,
        }
    }
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
