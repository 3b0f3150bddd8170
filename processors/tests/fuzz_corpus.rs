//! Replays the committed corpora of the sampling fuzz targets
//! (`fuzz/corpus/probabilistic_sampler`, `fuzz/corpus/tail_sampling`)
//! through their checks on stable Rust, so every input the fuzzers found
//! interesting, and every crash they found, stays checked in CI.

#[path = "common/fuzz.rs"]
mod fuzz;

#[path = "../../fuzz/replay.rs"]
mod replay;
use replay::replay;

#[test]
fn probabilistic_sampler_corpus_keeps_valid_requests() {
    replay("probabilistic_sampler", fuzz::probabilistic_sampler);
}

#[test]
fn tail_sampling_corpus_keeps_valid_requests_and_holds_nothing() {
    replay("tail_sampling", fuzz::tail_sampling);
}
