//! edgenet lab (in progress)
