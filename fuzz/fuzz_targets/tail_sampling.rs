//! cargo-fuzz target: the `tail_sampling` processor holding and deciding
//! any spans a receiver accepts (see `processors/tests/common/fuzz.rs`).
//! `tern-processors`' `fuzz_corpus` test replays `corpus/tail_sampling`.

#![no_main]

// Each target uses one of the checks the replay test shares.
#[allow(dead_code)]
#[path = "../../processors/tests/common/fuzz.rs"]
mod fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::tail_sampling(data));
