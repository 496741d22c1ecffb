//! edgenet's pictures of the network.
//!
//! A [`Topology`] (machines, each with its uplink, switch, nodes, port forwards and cluster
//! labels, plus a list of located [`Problem`]s) is built from a plan ([`from_plan()`]), from a
//! status report ([`from_status()`]) or from a lab and its reachability matrix ([`from_lab()`]).
//! It is drawn as DOT text ([`dot::to_dot`]), as SVG by the built-in layout
//! ([`svg::builtin_svg`]) or by Graphviz ([`render_svg`] with a runner), and as one
//! self-contained HTML page ([`html::lab_page`]).
//!
//! Everything here is pure except [`graphviz::run_dot`], which runs Graphviz's `dot`: it is
//! passed in as a function so that the rest stays testable without it.

pub mod dot;
pub mod from_lab;
pub mod from_plan;
pub mod from_status;
pub mod graphviz;
pub mod html;
pub mod layout;
pub mod model;
mod scene;
pub mod svg;
mod text;

pub use from_lab::{from_lab, LabMachineView};
pub use from_plan::{from_plan, redact_proxy};
pub use from_status::{from_status, locate_drift};
pub use graphviz::{render_svg, Engine, Rendered};
pub use model::{Location, Problem, Topology};
