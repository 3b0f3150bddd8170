//! cargo-fuzz target: the load-balancing exporter's split of requests by
//! routing key (see `exporters/tests/common/fuzz.rs`). `tern-exporters`'
//! `fuzz_corpus` test replays `corpus/loadbalancing`.

#![no_main]

#[path = "../../exporters/tests/common/fuzz.rs"]
mod fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::check(data));
