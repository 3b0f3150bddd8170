//! Replays the committed inputs of the `config` fuzz target
//! (`fuzz/corpus/config`, `fuzz/regressions/config`) through its check on
//! stable Rust, so every input the fuzzer found interesting, and every
//! crash it found, stays checked.

#[path = "common/fuzz.rs"]
mod fuzz;

#[path = "../../fuzz/replay.rs"]
mod replay;

#[test]
fn config_corpus_loads_without_panics_and_locates_every_problem() {
    replay::replay("config", fuzz::check);
}
