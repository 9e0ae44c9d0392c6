//! One file per tool.

pub mod health_check;
