//! The lab's hand-over to the edgenet runs it starts on its machines.
//!
//! `edgenet lab up` starts one `edgenet deploy` per machine. Each must run in its machine's
//! network namespace and die with the lab (a killed `lab up` must not leave deploys building
//! while the next `lab down` takes the machines apart). Doing both between fork and exec
//! (`pre_exec`) makes the standard library fork the lab — dozens of threads and their memory,
//! page tables copied once per deploy, ~5 % of a 255-machine lab's CPU — instead of spawning
//! with `posix_spawn` (the parent's memory shared until exec). So the lab passes the two
//! wishes in the environment and the child carries them out itself, first thing in `main`,
//! while it is still single-threaded.
//!
//! Internal: these variables are set by the lab only; they are removed before anything else
//! runs, so no process edgenet starts inherits them.

use std::ffi::OsString;

use crate::exit::{CliError, Exit};

/// The network namespace (a path, e.g. `/run/netns/enl-lab-m1`) the run enters.
pub const NETNS_VAR: &str = "EDGENET_LAB_NETNS";
/// The lab's process id: the run gets SIGKILL when that process is gone.
pub const PARENT_VAR: &str = "EDGENET_LAB_PARENT";

/// Carries out what the lab asked of this run, if it asked anything. Must be called before
/// any thread exists (`setns` of a namespace is per thread).
pub fn enter_from_env() -> Result<(), CliError> {
    let netns = take(NETNS_VAR);
    let parent = take(PARENT_VAR);
    if let Some(parent) = parent {
        let pid: i32 = parent
            .to_str()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                handover_error(format!("{PARENT_VAR}={parent:?} is not a process id"))
            })?;
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .map_err(|e| handover_error(format!("cannot ask to die with the lab: {e}")))?;
        // The lab may have gone between the spawn and the line above: no signal comes then.
        if nix::unistd::getppid().as_raw() != pid {
            return Err(handover_error(format!(
                "the lab run that started it (pid {pid}) is gone"
            )));
        }
    }
    if let Some(path) = netns {
        let ns = edgenet_host::netns::NetNs::open_path(std::path::Path::new(&path))
            .map_err(|e| handover_error(e.to_string()))?;
        edgenet_host::netns::enter_for_good(&ns).map_err(|e| {
            handover_error(format!(
                "cannot enter the lab machine's namespace {}: {}",
                ns.label(),
                nix::errno::Errno::from_raw(e.io_error().raw_os_error().unwrap_or(0))
            ))
        })?;
    }
    Ok(())
}

/// Puts `(NETNS_VAR, PARENT_VAR)` on a command the lab starts.
pub fn handover_env(netns: &std::path::Path, lab_pid: u32) -> [(&'static str, OsString); 2] {
    [
        (NETNS_VAR, netns.as_os_str().to_owned()),
        (PARENT_VAR, lab_pid.to_string().into()),
    ]
}

fn take(var: &str) -> Option<OsString> {
    let value = std::env::var_os(var)?;
    // SAFETY: called before any thread exists (see `enter_from_env`).
    std::env::remove_var(var);
    Some(value)
}

fn handover_error(message: String) -> CliError {
    CliError::new(Exit::Host, "lab-handover", message).hint(
        "these variables are set by `edgenet lab` for the runs it starts; unset them to run edgenet by hand",
    )
}
