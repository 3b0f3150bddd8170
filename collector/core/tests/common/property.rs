//! The receive guarantee as one check, shared by the corpus replay test
//! (`tests/fuzz_corpus.rs`), the cargo-fuzz target (`fuzz/`) and the
//! property test over realistic payloads (`benches/src/lib.rs`): whatever
//! the validating walk accepts, prost decodes with the same item count, and
//! re-encoded it is accepted again with that count; whatever prost decodes
//! and the walk refuses is refused for a rule beyond protobuf's (id length,
//! nesting depth, one kind of data per metric).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use tern_core::Signal;
use tern_core::wire::{Reason, count_items};

/// The first byte picks the signal, the rest is the request.
pub fn check(input: &[u8]) {
    let Some((&selector, request)) = input.split_first() else {
        return;
    };
    let signal = match selector % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    check_request(signal, request);
}

/// The guarantee for one export request of `signal`.
fn check_request(signal: Signal, request: &[u8]) {
    match (count_items(signal, request), decode(signal, request)) {
        (Ok(walked), Some((decoded, again))) => {
            assert_eq!(walked, decoded, "item counts differ");
            assert_eq!(
                count_items(signal, &again).ok(),
                Some(walked),
                "re-encoded request refused"
            );
        }
        (Ok(_), None) => panic!("accepted a request prost refuses"),
        (Err(e), Some(_)) => assert!(
            matches!(
                e.reason(),
                Reason::IdLength | Reason::TooDeep | Reason::DataTwice
            ),
            "refused a request prost takes: {e}"
        ),
        (Err(_), None) => {}
    }
}

/// prost's item count and re-encoding, or `None` when it refuses.
pub fn decode(signal: Signal, bytes: &[u8]) -> Option<(usize, Vec<u8>)> {
    Some(match signal {
        Signal::Traces => {
            let req = ExportTraceServiceRequest::decode(bytes).ok()?;
            let n = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            (n, req.encode_to_vec())
        }
        Signal::Logs => {
            let req = ExportLogsServiceRequest::decode(bytes).ok()?;
            let n = req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum();
            (n, req.encode_to_vec())
        }
        Signal::Metrics => {
            let req = ExportMetricsServiceRequest::decode(bytes).ok()?;
            let n = req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(x)) => x.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(x)) => x.data_points.len(),
                    None => 0,
                })
                .sum();
            (n, req.encode_to_vec())
        }
    })
}
