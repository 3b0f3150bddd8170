//! Replays the committed inputs of the `loadbalancing` fuzz target
//! (`fuzz/corpus/loadbalancing`, `fuzz/regressions/loadbalancing`) through
//! its check on stable Rust, so every input the fuzzer found interesting,
//! and every crash it found, stays checked in CI.

#[path = "common/fuzz.rs"]
mod fuzz;

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn loadbalancing_corpus_splits_without_loss() {
    replay::replay("loadbalancing", fuzz::check);
}
