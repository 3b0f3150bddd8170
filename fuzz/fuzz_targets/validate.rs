//! cargo-fuzz target: the receive guarantee (see
//! `collector/core/tests/common/property.rs`) on arbitrary input. Run with
//! `cargo +nightly fuzz run validate` from `fuzz/`; new interesting inputs
//! land in `corpus/validate`, which `tern-core`'s `fuzz_corpus` test replays.

#![no_main]

// Each target uses one of the checks the replay test shares.
#[allow(dead_code)]
#[path = "../../collector/core/tests/common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::validate(data));
