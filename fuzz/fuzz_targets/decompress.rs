//! cargo-fuzz target: the receivers' decompression with its size limit
//! (see `collector/src/receiver/decompress_check.rs`): never a panic,
//! never more than the limit, and each encoding's own output inflates back.
//! `tern`'s `fuzz_corpus_keeps_the_limit` test replays `corpus/decompress`.

#![no_main]

#[path = "../../collector/src/receiver/decompress.rs"]
mod decompress;

// The check reaches these two names as `super::…`, as it does inside tern.
use decompress::{DecompressError, decompress};

#[path = "../../collector/src/receiver/decompress_check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
