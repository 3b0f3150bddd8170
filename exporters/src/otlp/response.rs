//! Reading a backend's answer the way the OTLP specification says: which
//! failures are retryable (HTTP 429/502/503/504; gRPC UNAVAILABLE,
//! CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS, and
//! RESOURCE_EXHAUSTED only with RetryInfo), the delay asked for
//! (`Retry-After`, RetryInfo), the backend's message, and `partial_success`.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use prost::Message;
use tern_config::Signal;
use tern_core::status::{RETRY_INFO_TYPE, RetryInfo, RpcStatus};

use crate::retry::Failure;

/// Items the backend rejected and why (`partial_success`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial {
    /// Rejected items.
    pub rejected: u64,
    /// The backend's explanation.
    pub message: String,
}

/// Decodes an `Export*ServiceResponse` (protobuf) and returns its partial success.
pub fn partial_from_proto(signal: Signal, body: &[u8]) -> Partial {
    let parsed = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
    };
    parsed
        .map(|(n, message)| Partial {
            rejected: u64::try_from(n).unwrap_or(0),
            message,
        })
        .unwrap_or_default()
}

/// The same from an OTLP/JSON response body.
pub fn partial_from_json(signal: Signal, body: &[u8]) -> Partial {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Partial::default();
    };
    let p = &v["partialSuccess"];
    let key = match signal {
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
        Signal::Logs => "rejectedLogRecords",
    };
    let rejected = match &p[key] {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    };
    Partial {
        rejected,
        message: p["errorMessage"].as_str().unwrap_or_default().to_string(),
    }
}

/// `Retry-After` as delta-seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The message of an HTTP error body: a `google.rpc.Status` (protobuf or
/// JSON) when it is one, else the text.
fn http_message(headers: &HeaderMap, body: &Bytes) -> String {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/x-protobuf") || ct.starts_with("application/protobuf") {
        if let Ok(s) = RpcStatus::decode(body.clone()) {
            return s.message;
        }
    } else if ct.starts_with("application/json")
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = v["message"].as_str()
    {
        return m.to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(512).collect()
}

/// Classifies an OTLP/HTTP answer: `Ok(body)` on 2xx.
pub fn classify_http(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Bytes, Failure> {
    if status.is_success() {
        return Ok(body);
    }
    let message = format!("HTTP {}: {}", status.as_u16(), http_message(headers, &body));
    match status.as_u16() {
        429 | 502 | 503 | 504 => Err(Failure::Retryable {
            message,
            delay: retry_after(headers),
        }),
        _ => Err(Failure::Permanent(message)),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn retry_info(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get("grpc-status-details-bin")?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(raw.trim_end_matches('='))
        .ok()?;
    let status = RpcStatus::decode(&bytes[..]).ok()?;
    let detail = status
        .details
        .iter()
        .find(|d| d.type_url == RETRY_INFO_TYPE)?;
    let info = RetryInfo::decode(&detail.value[..]).ok()?;
    let d = info.retry_delay?;
    Some(Duration::new(
        u64::try_from(d.seconds).ok()?,
        u32::try_from(d.nanos).ok()?,
    ))
}

/// The unframed response message of a gRPC reply, decompressed if needed.
fn grpc_message(headers: &HeaderMap, body: &Bytes) -> Bytes {
    if body.len() < 5 {
        return Bytes::new();
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let Some(payload) = body.get(5..5 + len) else {
        return Bytes::new();
    };
    if body[0] == 0 {
        return Bytes::copy_from_slice(payload);
    }
    let mut out = Vec::new();
    let ok = match headers.get("grpc-encoding").and_then(|v| v.to_str().ok()) {
        Some("gzip") => flate2::read::GzDecoder::new(payload)
            .take(4 << 20)
            .read_to_end(&mut out)
            .is_ok(),
        Some("zstd") => zstd::stream::read::Decoder::new(payload)
            .and_then(|d| d.take(4 << 20).read_to_end(&mut out))
            .is_ok(),
        _ => false,
    };
    if ok { Bytes::from(out) } else { Bytes::new() }
}

/// Classifies a gRPC answer: `Ok(response message)` on status OK.
pub fn classify_grpc(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Bytes, Failure> {
    if status != StatusCode::OK {
        // Not a gRPC answer (a proxy's): map as gRPC over HTTP does.
        let message = format!("HTTP {} from the gRPC endpoint", status.as_u16());
        return match status.as_u16() {
            429 | 502 | 503 | 504 => Err(Failure::Retryable {
                message,
                delay: retry_after(headers),
            }),
            _ => Err(Failure::Permanent(message)),
        };
    }
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let Some(code) = code else {
        return Err(Failure::Retryable {
            message: "gRPC reply without grpc-status".into(),
            delay: None,
        });
    };
    if code == 0 {
        return Ok(grpc_message(headers, &body));
    }
    let text = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    let message = format!("gRPC status {code}: {text}");
    let delay = retry_info(headers);
    match code {
        // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS
        1 | 4 | 10 | 11 | 14 | 15 => Err(Failure::Retryable { message, delay }),
        // RESOURCE_EXHAUSTED: only when the server says when to retry.
        8 if delay.is_some() => Err(Failure::Retryable { message, delay }),
        _ => Err(Failure::Permanent(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_core::status::with_retry_info;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn is_retryable(r: &Result<Bytes, Failure>) -> bool {
        matches!(r, Err(Failure::Retryable { .. }))
    }

    #[test]
    fn http_codes() {
        for code in [429u16, 502, 503, 504] {
            let r = classify_http(
                StatusCode::from_u16(code).unwrap(),
                &HeaderMap::new(),
                Bytes::new(),
            );
            assert!(is_retryable(&r), "{code}");
        }
        for code in [400u16, 401, 403, 404, 413, 500] {
            let r = classify_http(
                StatusCode::from_u16(code).unwrap(),
                &HeaderMap::new(),
                Bytes::new(),
            );
            assert!(matches!(r, Err(Failure::Permanent(_))), "{code}");
        }
        let r = classify_http(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers(&[("retry-after", "7")]),
            Bytes::new(),
        );
        assert_eq!(
            r,
            Err(Failure::Retryable {
                message: "HTTP 503: ".into(),
                delay: Some(Duration::from_secs(7))
            })
        );
        let status = RpcStatus {
            code: 3,
            message: "bad span".into(),
            details: vec![],
        };
        let r = classify_http(
            StatusCode::BAD_REQUEST,
            &headers(&[("content-type", "application/x-protobuf")]),
            Bytes::from(status.encode_to_vec()),
        );
        assert_eq!(r, Err(Failure::Permanent("HTTP 400: bad span".into())));
    }

    #[test]
    fn grpc_codes() {
        let grpc = |code: &str, extra: &[(&'static str, &str)]| {
            let mut pairs = vec![("grpc-status", code)];
            pairs.extend_from_slice(extra);
            classify_grpc(StatusCode::OK, &headers(&pairs), Bytes::new())
        };
        for code in ["1", "4", "10", "11", "14", "15"] {
            assert!(is_retryable(&grpc(code, &[])), "{code}");
        }
        for code in ["2", "3", "5", "7", "8", "12", "13", "16"] {
            assert!(
                matches!(grpc(code, &[]), Err(Failure::Permanent(_))),
                "{code}"
            );
        }
        let details = base64::engine::general_purpose::STANDARD
            .encode(with_retry_info(8, "slow down", 3).encode_to_vec());
        let r = grpc(
            "8",
            &[
                ("grpc-status-details-bin", &details),
                ("grpc-message", "slow%20down"),
            ],
        );
        assert_eq!(
            r,
            Err(Failure::Retryable {
                message: "gRPC status 8: slow down".into(),
                delay: Some(Duration::from_secs(3))
            })
        );
        assert!(grpc("0", &[]).is_ok());
        assert!(is_retryable(&classify_grpc(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            Bytes::new()
        )));
    }

    #[test]
    fn partial_success_is_read() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        };
        let p = partial_from_proto(Signal::Traces, &resp.encode_to_vec());
        assert_eq!((p.rejected, p.message.as_str()), (3, "too old"));
        let p = partial_from_json(
            Signal::Logs,
            br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"x"}}"#,
        );
        assert_eq!((p.rejected, p.message.as_str()), (2, "x"));
        assert_eq!(partial_from_proto(Signal::Metrics, &[]), Partial::default());
    }
}
