//! Replays the committed cargo-fuzz corpora of tern-core's targets
//! (`fuzz/corpus/<target>`) through the targets' checks on stable Rust, so
//! every input the fuzzers found interesting, and every crash they found,
//! stays checked in CI.

#![allow(clippy::unwrap_used)]

mod common;

/// Runs `check` on every file of `fuzz/corpus/<target>`.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        eprintln!("{}", path.display());
        check(&input);
        n += 1;
    }
    assert!(n >= 20, "only {n} corpus inputs in {}", dir.display());
}

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
