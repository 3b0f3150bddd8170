//! Helpers shared by tern-core's integration tests.

pub mod fuzz;
pub mod property;
pub mod views;
