//! cargo-fuzz target: the `probabilistic_sampler` processor over any
//! request a receiver accepts, under any valid settings (see
//! `processors/tests/common/fuzz.rs`). `tern-processors`' `fuzz_corpus`
//! test replays `corpus/probabilistic_sampler`.

#![no_main]

// Each target uses one of the checks the replay test shares.
#[allow(dead_code)]
#[path = "../../processors/tests/common/fuzz.rs"]
mod fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::probabilistic_sampler(data));
