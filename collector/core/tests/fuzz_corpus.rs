//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/validate`) through
//! the receive guarantee on stable Rust, so every input the fuzzer found
//! interesting stays checked in CI.

#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn every_corpus_input_keeps_the_guarantee() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/validate");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        common::property::check(&input);
        n += 1;
    }
    assert!(n >= 20, "only {n} corpus inputs in {}", dir.display());
}
