//! cargo-fuzz target: the OTLP/JSON mapping both ways (see
//! `collector/core/tests/common/fuzz.rs`): never a panic, and what either
//! direction accepts round-trips. `tern-core`'s `fuzz_corpus` test replays
//! `corpus/json`.

#![no_main]

// Each target uses one of the checks the replay test shares.
#[allow(dead_code)]
#[path = "../../collector/core/tests/common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::json(data));
