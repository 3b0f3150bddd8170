//! cargo-fuzz target: a persistent queue's write-ahead log on disk and the
//! batch records in it (see `collector/core/tests/common/fuzz.rs`): any
//! segment file opens without a panic, damage is skipped, and every batch
//! read back writes back the same. `tern-core`'s `fuzz_corpus` test
//! replays `corpus/storage`.

#![no_main]

// Each target uses one of the checks the replay test shares.
#[allow(dead_code)]
#[path = "../../collector/core/tests/common/mod.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::storage(data));
