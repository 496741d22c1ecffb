//! edgenet's lab: a safe sandbox on one host made only of network namespaces it creates
//! (SPEC §6.3) — an "internet" with a real HTTP server and DNS, a LAN with a router, a DNS
//! forwarder and an HTTP proxy, and N machines whose adapter is a veth into the LAN — into
//! which the normal `deploy` runs, plus a reachability matrix measured with real traffic.
//!
//! The host's own network namespace is never changed: every link, address, route and
//! sysctl is made inside a lab namespace.
//!
//! A lab of many machines plays a scalable cluster: [`scalable_config`] writes the
//! `ScalableCluster` config whose nodes sit directly on the lab's LAN, each machine's deploy
//! bridges its adapter, and [`Expectations::SCALABLE`] asks the matrix for node↔node across
//! machines, node→gateway, LAN→node and node→internet. Machines are built and checked in
//! parallel (50 in well under a second), and the matrix runs its probes on a bounded pool.
//!
//! ```no_run
//! use edgenet_lab::{Expectations, Lab, LabSpec};
//! let lab = Lab::up(&LabSpec::new("demo", "/tmp/lab-demo"), |m| {
//!     // run `edgenet deploy` in m.netns with m.resolv_conf and m.state_dir
//!     Ok::<(), std::io::Error>(())
//! })?;
//! let matrix = lab.status(&[], &Expectations::NAT)?;
//! print!("{}", matrix.render_table());
//! lab.down(|_m| Ok::<(), std::io::Error>(()))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub mod failpoint;
mod lab;
mod machine;
mod matrix;
mod matrix_probes;
mod pool;
pub mod probe;
mod process;
pub mod scalable;
mod services;
mod state;
mod status;
pub mod topology;

pub use error::{CallbackError, DownError, LabError};
pub use lab::{Lab, LabSpec, Undeploy, UpError, DEFAULT_TIMEOUT};
pub use machine::LabMachine;
pub use matrix::{Cell, Expectations, Matrix, NodeInfo, Reach, Row};
pub use matrix_probes::PROBE_TIMEOUT;
pub use scalable::{lab_scalable_config, scalable_config, ScalableLayout};
pub use state::ServiceRecord;
pub use status::{NODE_PAIRS_MAX, PROBE_WORKERS};
pub use topology::check_name;
