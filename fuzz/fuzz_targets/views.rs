//! cargo-fuzz target: the wire views and the editor against prost (see
//! `collector/core/tests/common/fuzz.rs`): every field read through the
//! views and a seeded plan of edits give what prost's decode -> change ->
//! encode gives, and no input makes them panic. `tern-core`'s `fuzz_corpus`
//! test replays `corpus/views`.

#![no_main]

// Each target uses one of the checks the replay test shares.
#[allow(dead_code)]
#[path = "../../collector/core/tests/common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::views(data));
