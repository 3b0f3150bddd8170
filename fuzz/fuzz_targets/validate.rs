//! cargo-fuzz target: the receive guarantee (see
//! `collector/core/tests/common/property.rs`) on arbitrary input. Run with
//! `cargo +nightly fuzz run validate` from `fuzz/`; new interesting inputs
//! land in `corpus/validate`, which `tern-core`'s `fuzz_corpus` test replays.

#![no_main]

#[path = "../../collector/core/tests/common/property.rs"]
mod property;

libfuzzer_sys::fuzz_target!(|data: &[u8]| property::check(data));
