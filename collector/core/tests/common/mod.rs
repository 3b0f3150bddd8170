//! Helpers shared by tern-core's integration tests.

pub mod property;
