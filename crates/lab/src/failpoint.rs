//! Test hooks: `EDGENET_LAB_FAILPOINT=<step>` aborts `lab up` at that step, as a SIGKILL
//! would (no teardown, no state written after it). Only in builds with the `failpoints`
//! feature (the kernel tests'); every other build ignores the variable.

/// The variable naming the step to abort at.
pub const ENV: &str = "EDGENET_LAB_FAILPOINT";

/// Aborts the process when `ENV` names `step` (failpoint builds only).
pub(crate) fn hit(step: &str) {
    if cfg!(feature = "failpoints") && std::env::var(ENV).is_ok_and(|v| v == step) {
        std::process::abort();
    }
}
