//! edgenet's deploy side: validate-then-apply over small driver traits, modelled on netavark.

pub mod firewall;
pub mod state;
