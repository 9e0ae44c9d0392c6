//! One file per tool.

pub mod health_check;
pub mod restart_server;
pub mod test_counter;
