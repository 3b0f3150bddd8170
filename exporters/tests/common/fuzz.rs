//! The check behind the `loadbalancing` fuzz target (`fuzz/`), replayed
//! over its committed corpus by `tests/fuzz_corpus.rs`: the load-balancing
//! exporter's split of a request by routing key, on whatever a receiver
//! accepts, never panics, loses or invents no item, writes valid requests,
//! and is stable: a part split again goes whole to the same backend.

use std::sync::Arc;

use bytes::Bytes;
use tern_config::{RoutingKey, Signal};
use tern_core::pdata::Batch;
use tern_core::wire::count_items;
use tern_exporters::loadbalancing::ring::Ring;
use tern_exporters::loadbalancing::route::split;

/// Signal and routing key pairs the exporter's validation lets through.
const KEYS: [(Signal, RoutingKey); 9] = [
    (Signal::Traces, RoutingKey::TraceId),
    (Signal::Traces, RoutingKey::Service),
    (Signal::Logs, RoutingKey::TraceId),
    (Signal::Logs, RoutingKey::Service),
    (Signal::Logs, RoutingKey::Resource),
    (Signal::Metrics, RoutingKey::Service),
    (Signal::Metrics, RoutingKey::Resource),
    (Signal::Metrics, RoutingKey::Metric),
    (Signal::Metrics, RoutingKey::StreamId),
];

/// Byte 0 picks the signal and key, byte 1 the number of backends (1 to
/// 8), the rest is a request.
pub fn check(input: &[u8]) {
    let [selector, backends, request @ ..] = input else {
        return;
    };
    let (signal, key) = KEYS[usize::from(*selector) % KEYS.len()];
    let endpoints: Vec<String> = (0..=backends % 8)
        .map(|i| format!("backend-{i}:4317"))
        .collect();
    let ring = Ring::new(&endpoints);
    let Ok(batch) = Batch::from_wire(signal, Bytes::copy_from_slice(request), Arc::default())
    else {
        return;
    };
    let parts = match split(&batch, key, &ring) {
        Ok(parts) => parts,
        Err(e) => panic!("a valid request was not split: {e}"),
    };
    let total: usize = parts.parts.iter().map(|(_, part)| part.items()).sum();
    assert_eq!(
        total + parts.unroutable,
        batch.items(),
        "items lost or added"
    );
    let mut owners: Vec<u16> = parts.parts.iter().map(|(owner, _)| *owner).collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), parts.parts.len(), "one owner has two parts");
    // Log records without a trace id get a random one: only they may move.
    let stable = !(signal == Signal::Logs && key == RoutingKey::TraceId);
    for (owner, part) in &parts.parts {
        assert!(usize::from(*owner) < endpoints.len(), "no such backend");
        assert_eq!(
            count_items(signal, &part.to_wire()).ok(),
            Some(part.items()),
            "a part is not a valid request"
        );
        let again = split(part, key, &ring).expect("a part splits");
        if stable {
            assert_eq!(again.unroutable, 0, "a routed part became unroutable");
            assert!(
                again.parts.len() == 1
                    && again.parts[0].0 == *owner
                    && again.parts[0].1.items() == part.items(),
                "a part split again moved"
            );
        }
    }
}
