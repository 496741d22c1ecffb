//! Failpoints: tests make a deploy fail (or die) right after a named step, to prove that the
//! next deploy converges and `remove` cleans up from any point.
//!
//! `EDGENET_FAILPOINT=<step>` makes the step return an error (the deploy rolls back what it
//! created); `EDGENET_FAILPOINT=<step>:crash` aborts the process on the spot, as a kill or a
//! power cut would, leaving whatever was done; `EDGENET_FAILPOINT=<step>:wait` says so on
//! stderr and waits there until a signal ends the process (a test's SIGTERM part-way).
//!
//! Only with the cargo feature `failpoints` (the test suite turns it on): a build without it
//! (every release build) ignores `EDGENET_FAILPOINT`, so a stray variable in a production
//! environment can never make a deploy fail or abort.

/// Every step a deploy can pass, in order. Steps under `node-*` run once per node;
/// `switch-adapter` only on an external switch (see [`steps`]).
pub const STEPS: &[&str] = &[
    "state",
    "switch",
    "switch-adapter",
    "switch-address",
    "forwarding",
    "firewall",
    "node-netns",
    "node-link",
    "node-address",
    "node-files",
    "finish",
];

/// Points inside a step, between creating a kernel object and marking it (the kernel takes no
/// alias at creation; a namespace is marked once it exists), and `firewall-written`, on the
/// thread that writes the nftables tables while the nodes are made, right after the write:
/// passed only by a run that creates (writes) that object, so not in [`STEPS`], which every
/// deploy passes.
pub const MID_STEPS: &[&str] = &[
    "switch-made",
    "node-netns-made",
    "node-link-made",
    "firewall-written",
];

/// Passed only by a run that renames a node (a new machine name): right after its namespace
/// took the new name, before the old name is forgotten.
pub const RENAME_STEPS: &[&str] = &["node-renamed"];

/// Passed only by a run that starts a `vm` node's QEMU: right after QEMU daemonized, before
/// the run records it (as a kill at that moment would leave it).
pub const VM_STEPS: &[&str] = &["node-vm-started"];

/// Passed by `deploy` before the deploy proper, while it checks the config against the host:
/// `probe`, as the address probe starts (a first deploy has recorded only its config then).
pub const CHECK_STEPS: &[&str] = &["probe"];

/// The steps of a deploy on an external (`true`) or internal switch.
pub fn steps(external: bool) -> Vec<&'static str> {
    STEPS
        .iter()
        .copied()
        .filter(|s| external || *s != "switch-adapter")
        .collect()
}

pub const ENV: &str = "EDGENET_FAILPOINT";

#[derive(Debug, thiserror::Error)]
#[error("failpoint {0} was hit ({ENV} is set)")]
pub struct FailpointHit(pub String);

/// Whether this build has failpoints (the cargo feature `failpoints`).
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// An `EDGENET_FAILPOINT` that names no step (a typo) would silently test nothing: it is an
/// error, naming the steps there are. Without failpoints it is ignored, said so in the log.
pub fn validate() -> Result<(), String> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    if !ENABLED {
        // Validated by the command and again by the deploy it runs: said once (B27 F6).
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!("{ENV}={spec:?} is ignored: this edgenet is built without failpoints")
        });
        return Ok(());
    }
    check_spec(&spec)
}

fn check_spec(spec: &str) -> Result<(), String> {
    let name = match spec.split_once(':') {
        Some((name, "crash" | "wait")) => name,
        Some((_, how)) => {
            return Err(format!(
                "{ENV}={spec:?}: unknown mode {how:?}; use <step>, <step>:crash or <step>:wait"
            ))
        }
        None => spec,
    };
    if STEPS.contains(&name)
        || MID_STEPS.contains(&name)
        || RENAME_STEPS.contains(&name)
        || VM_STEPS.contains(&name)
        || CHECK_STEPS.contains(&name)
    {
        Ok(())
    } else {
        Err(format!(
            "{ENV}={spec:?} names no step; the steps are {}, {}, {}, {}, {}",
            CHECK_STEPS.join(", "),
            STEPS.join(", "),
            MID_STEPS.join(", "),
            RENAME_STEPS.join(", "),
            VM_STEPS.join(", ")
        ))
    }
}

/// Called after each step.
pub fn hit(step: &str) -> Result<(), FailpointHit> {
    if !ENABLED {
        return Ok(());
    }
    hit_spec(std::env::var(ENV).ok().as_deref(), step)
}

fn hit_spec(spec: Option<&str>, step: &str) -> Result<(), FailpointHit> {
    let Some(spec) = spec else {
        return Ok(());
    };
    let (name, how) = match spec.split_once(':') {
        Some((name, how @ ("crash" | "wait"))) => (name, how),
        _ => (spec, ""),
    };
    if name != step {
        return Ok(());
    }
    match how {
        "crash" => {
            eprintln!("edgenet: failpoint {step}: crashing on purpose");
            std::process::abort();
        }
        "wait" => {
            eprintln!("edgenet: failpoint {step}: waiting for a signal on purpose");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        _ => {}
    }
    Err(FailpointHit(step.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_failpoint_is_an_error_naming_the_steps() {
        assert!(check_spec("switch").is_ok());
        assert!(check_spec("node-netns:crash").is_ok());
        assert!(check_spec("node-netns:wait").is_ok());
        let e = check_spec("swtich").unwrap_err();
        assert!(e.contains("swtich") && e.contains("switch-adapter"), "{e}");
        assert!(check_spec("switch:boom").is_err());
    }

    #[test]
    fn a_named_step_fails_only_there() {
        assert!(hit_spec(Some("switch"), "switch").is_err());
        assert!(hit_spec(Some("switch"), "state").is_ok());
        assert!(hit_spec(None, "switch").is_ok());
    }

    /// What a release build does: `EDGENET_FAILPOINT` is not even read.
    #[test]
    #[cfg(not(feature = "failpoints"))]
    fn without_the_feature_failpoints_are_compiled_out() {
        const { assert!(!ENABLED) };
        // A child process, so the variable is set in no other test's environment.
        if std::env::var_os("EDGENET_FAILPOINT_CHILD").is_some() {
            assert!(hit("state").is_ok());
            assert!(validate().is_ok());
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "failpoint::tests::without_the_feature_failpoints_are_compiled_out",
                "--nocapture",
            ])
            .env("EDGENET_FAILPOINT_CHILD", "1")
            .env(ENV, "state")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{out:?}"
        );
    }
}
