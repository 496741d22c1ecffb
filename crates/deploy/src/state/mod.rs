//! The deployment state store (SPEC §5.4): one directory, one exclusive lock, one JSON file.
//!
//! ```text
//! /var/lib/edgenet/          (or --state-dir / EDGENET_STATE_DIR)
//!   lock                     flock'ed by the running deploy/remove; holds "PID PURPOSE"
//!   state.json               DeploymentState as the last run left it, replaced atomically
//!                            (mode 0600: the plan may carry proxy credentials)
//!   state.journal            the records of a run in progress (one full state per line)
//!   identity.json            id, generated MACs, automatic subnet: fsynced
//!   config.json              the deployment config of the last deploy (deploy without -c, scale-config)
//! ```
//!
//! The lock is what makes a second concurrent `deploy`/`remove` wait or fail clearly instead of
//! interleaving with the first. Everything a remove needs is recorded *before* the kernel is
//! changed (a line appended to the journal), so an interrupted deploy can always be finished
//! or undone; `state.json` is replaced (temp file + rename) once at the end of a run. What
//! must survive a power cut (the kernel objects do not) is the identity, made durable on a
//! thread beside the kernel work: see [`store`] for the argument.
//!
//! [`model`] is what the file holds (pure data and its bookkeeping); [`store`] reads and writes
//! it under the lock of the state directory ([`lock`]).

pub mod lock;
pub mod model;
pub mod recover;
pub mod store;

pub use lock::StateLock;
pub use model::*;
pub use store::*;
