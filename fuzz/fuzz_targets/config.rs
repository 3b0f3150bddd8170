//! cargo-fuzz target: config loading (see `config/tests/common/fuzz.rs`):
//! any text as a config file never panics, and every problem reported
//! points at a line of it. `tern-config`'s `fuzz_corpus` test replays
//! `corpus/config`.

#![no_main]

#[path = "../../config/tests/common/fuzz.rs"]
mod fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::check(data));
