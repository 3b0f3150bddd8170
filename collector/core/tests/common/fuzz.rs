//! The checks behind tern-core's cargo-fuzz targets (`fuzz/fuzz_targets`),
//! one function per target taking the fuzzer's raw input, shared with the
//! corpus replay test (`tests/fuzz_corpus.rs`) so that every committed
//! input is checked on stable Rust too:
//! - [`validate`]: the receive guarantee ([`super::property`]);
//! - [`views`]: views and the editor against prost ([`super::views`]) on
//!   any input, and on prost's encoding of whatever the walk accepts;
//! - [`json`]: the OTLP/JSON mapping both ways: JSON the reader accepts is
//!   valid protobuf that the writer writes back and the reader reads to the
//!   same JSON again; protobuf the writer writes reads back the same way;
//! - [`storage`]: a persistent queue's log on disk: any segment file opens
//!   without a panic, and every record read back that holds a batch
//!   writes back to the same batch.

use tern_core::Signal;
use tern_core::json::{JsonError, json_to_wire, wire_to_json};
use tern_core::wire::count_items;

use super::{property, views};

/// The signal a selector byte picks.
fn signal(selector: u8) -> Signal {
    match selector % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    }
}

/// First byte: the signal; the rest: a request.
pub fn validate(input: &[u8]) {
    property::check(input);
}

/// First byte: the signal; second: the seed of the edit plan; the rest: a
/// request. Views and the editor never panic and agree with the walk on
/// any input; on prost's encoding of an accepted request, every field read
/// through the views and every edit match prost.
pub fn views(input: &[u8]) {
    let [selector, seed, request @ ..] = input else {
        return;
    };
    let (signal, seed) = (signal(*selector), u64::from(*seed));
    views::check_corrupt(signal, request, seed);
    if count_items(signal, request).is_ok()
        && let Some((_, canonical)) = property::decode(signal, request)
    {
        views::check(signal, &canonical, seed);
    }
}

/// First byte: the signal (`% 3`) and the direction (`/ 3 % 2`: 0 reads
/// the rest as JSON, 1 writes the rest, a protobuf request, as JSON).
pub fn json(input: &[u8]) {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let signal = signal(selector);
    if (selector / 3) % 2 == 0 {
        if let Ok(wire) = json_to_wire(signal, body) {
            assert!(
                property::decode(signal, &wire).is_some(),
                "the reader wrote protobuf prost refuses"
            );
            round_trip(signal, &wire);
        }
    } else {
        round_trip(signal, body);
    }
}

/// Protobuf `wire` written as JSON (when it can be) reads back to a request
/// with the same items, which is written as the same JSON.
fn round_trip(signal: Signal, wire: &[u8]) {
    let mut text = Vec::new();
    match wire_to_json(signal, wire, &mut text) {
        Ok(()) => {}
        Err(JsonError::Unrepresentable(_) | JsonError::Proto(_)) => return,
        Err(e) => panic!("the writer failed: {e}"),
    }
    let again = match json_to_wire(signal, &text) {
        Ok(again) => again,
        Err(e) => panic!(
            "the reader refused the writer's JSON: {e}\n{}",
            String::from_utf8_lossy(&text)
        ),
    };
    if let Ok(items) = count_items(signal, wire) {
        assert_eq!(count_items(signal, &again).ok(), Some(items), "item count");
    }
    let mut text_again = Vec::new();
    if let Err(e) = wire_to_json(signal, &again, &mut text_again) {
        panic!("the writer failed on the reader's protobuf: {e}");
    }
    assert_eq!(
        String::from_utf8_lossy(&text),
        String::from_utf8_lossy(&text_again),
        "JSON -> protobuf -> JSON changed the request"
    );
}

/// The input as a segment file of a persistent queue's write-ahead log:
/// opening it never panics nor fails (damage is skipped and counted),
/// and each record read back either is refused by the batch decoder or
/// holds a batch that encodes back to the same requests. The input is
/// also given to the batch decoder as one record.
pub fn storage(input: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tern_core::persist::{decode, encode};
    use tern_core::wal::{Wal, WalOptions};
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tern-fuzz-storage-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    std::fs::write(dir.join("00000000000000000000.wal"), input).expect("the segment file");
    let (wal, recovered) =
        Wal::open(&dir, WalOptions::default()).expect("a damaged log still opens");
    wal.freeze();
    drop(wal);
    let records = recovered.records.iter().map(|(_, p)| p.clone());
    for payload in records.chain(std::iter::once(bytes::Bytes::copy_from_slice(input))) {
        if let Ok(batch) = decode(&payload) {
            let again = decode(&encode(&batch)).expect("a batch encodes to a record that decodes");
            assert_eq!(again.signal(), batch.signal());
            assert_eq!(again.items(), batch.items());
            assert_eq!(again.to_wire(), batch.to_wire());
            assert_eq!(again.requests().count(), batch.requests().count());
        }
    }
    std::fs::remove_dir_all(&dir).expect("the scratch directory removed");
}
