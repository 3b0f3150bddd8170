//! Replays the committed cargo-fuzz inputs of tern-core's targets
//! (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`) through the
//! targets' checks on stable Rust, so every input the fuzzers found
//! interesting, and every crash they found, stays checked in CI.

mod common;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn validate_corpus_keeps_the_receive_guarantee() {
    replay("validate", common::fuzz::validate);
}

#[test]
fn views_corpus_reads_and_edits_as_prost() {
    replay("views", common::fuzz::views);
}

#[test]
fn json_corpus_round_trips() {
    replay("json", common::fuzz::json);
}

#[test]
fn storage_corpus_opens_and_round_trips() {
    replay("storage", common::fuzz::storage);
}
