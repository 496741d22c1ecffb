//! edgenet's lab: a safe sandbox on one host made only of network namespaces it creates
//! (SPEC §6.3) — an "internet" with a real HTTP server and DNS, a LAN with a router, a DNS
//! forwarder and an HTTP proxy, and N machines whose adapter is a veth into the LAN — into
//! which the normal `deploy` runs, plus a reachability matrix measured with real traffic.
//!
//! The host's own network namespace is never changed: every link, address, route and
//! sysctl is made inside a lab namespace.
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
mod lab;
mod pool;
pub mod probe;
mod process;
pub mod scalable;
mod services;
mod state;
mod status;
pub mod topology;

pub use error::{CallbackError, DownError, LabError, UpError};
pub use lab::{Lab, LabMachine, LabSpec, DEFAULT_TIMEOUT};
pub use scalable::{scalable_config, ScalableLayout};
pub use state::ServiceRecord;
pub use status::{Cell, Expectations, Matrix, NodeInfo, Reach, Row, PROBE_TIMEOUT};
pub use topology::check_name;
