//! The deployment state store (SPEC §5.4): one directory, one exclusive lock, one JSON file.
//!
//! ```text
//! /var/lib/edgenet/          (or --state-dir / EDGENET_STATE_DIR)
//!   lock                     flock'ed by the running deploy/remove; holds "PID PURPOSE"
//!   state.json               DeploymentState, replaced atomically (mode 0600: the plan may
//!                            carry proxy credentials)
//! ```
//!
//! The lock is what makes a second concurrent `deploy`/`remove` wait or fail clearly instead of
//! interleaving with the first; writes are tempfile + fsync + rename + fsync(dir), so a crash at
//! any point leaves either the old or the new state, never a torn file. Everything a remove
//! needs is recorded *before* the kernel is changed, so an interrupted deploy can always be
//! finished or undone.
//!
//! [`model`] is what the file holds (pure data and its bookkeeping); [`store`] reads and writes
//! it under the lock of the state directory ([`lock`]).

pub mod lock;
pub mod model;
pub mod store;

pub use lock::StateLock;
pub use model::*;
pub use store::*;
