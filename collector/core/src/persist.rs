//! The persistent side of an exporter queue (`sending_queue.storage`):
//! how a batch is written as a record of the exporter's write-ahead log
//! ([`crate::wal`]) and read back after a restart ([`encode`],
//! [`decode`]), and [`Durable`], which logs each batch the queue takes.
//!
//! A logged batch carries a done-mark (an [`Ack`] settled when its export
//! is over, whatever became of it), which tells the log that the record
//! can go. The acks of senders waiting for the batch are settled when the
//! record is written (and fsynced): a receiver answers OK only once what it
//! took is on disk, and a retryable error when the write failed (disk full
//! or unwritable).
//!
//! A record holds each request of the batch with the context it was
//! received with (transport, peer, kept metadata, authentication
//! attributes), so `headers_setter` forwards the same headers after a
//! restart.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Signal;
use crate::ack::Ack;
use crate::auth::{AuthData, AuthValue};
use crate::pdata::{Batch, RequestContext};
use crate::telemetry::{Counter, Gauge, Telemetry};
use crate::wal::{Recovered, Wal};

/// The record layout written by this version.
const VERSION: u8 = 1;

/// Why a record could not be read back as a batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its fields say.
    #[error("record cut short")]
    Short,
    /// A field holds a value this version does not write.
    #[error("unknown {0} in record")]
    Unknown(&'static str),
    /// A string is not UTF-8.
    #[error("record holds text that is not UTF-8")]
    Text,
    /// A request in it is not a valid export request.
    #[error("record holds an invalid request: {0}")]
    Wire(#[from] crate::wire::WireError),
}

/// The storage counters of one exporter.
#[derive(Debug, Clone)]
pub struct StorageMetrics {
    /// Records that failed to be written.
    pub write_failures: Counter,
    /// Records found corrupt or cut short at start, or unreadable.
    pub corrupt_records: Counter,
    /// 1 while the log can be written, 0 after a write failed.
    pub writable: Gauge,
    /// Bytes in the log's segment files.
    pub bytes: Gauge,
}

impl StorageMetrics {
    /// Handles for exporter `id`.
    pub fn new(t: &Arc<Telemetry>, id: &str) -> Self {
        let labels = [("exporter", id)];
        StorageMetrics {
            write_failures: t.counter(
                "tern_storage_write_failures_total",
                "Batches the persistent queue failed to write (their senders were refused).",
                &labels,
            ),
            corrupt_records: t.counter(
                "tern_storage_corrupt_records_total",
                "Records of the persistent queue skipped because they were corrupt or cut short.",
                &labels,
            ),
            writable: t.gauge(
                "tern_storage_writable",
                "1 while the persistent queue's directory takes writes, 0 after a write failed.",
                &labels,
            ),
            bytes: t.gauge(
                "tern_storage_bytes",
                "Bytes in the persistent queue's segment files.",
                &labels,
            ),
        }
    }

    /// Publishes the log's state.
    pub fn observe(&self, wal: &Wal) {
        self.writable.set(i64::from(wal.writable()));
        self.bytes
            .set(i64::try_from(wal.disk_bytes()).unwrap_or(i64::MAX));
    }
}

/// An exporter queue's log.
#[derive(Debug)]
pub struct Durable {
    wal: Arc<Wal>,
    /// Senders wait for the export too (`wait_for_result`): their acks
    /// stay on the batch as well.
    keep_acks: bool,
    metrics: StorageMetrics,
}

impl Durable {
    /// Logs into `wal`; `keep_acks` when senders also wait for the export.
    pub fn new(wal: Arc<Wal>, keep_acks: bool, metrics: StorageMetrics) -> Self {
        metrics.observe(&wal);
        Durable {
            wal,
            keep_acks,
            metrics,
        }
    }

    /// Publishes the log's state in its gauges.
    pub fn observe(&self) {
        self.metrics.observe(&self.wal);
    }

    /// Appends `batch` to the log and ties its done-mark to it; its
    /// senders' acks settle when the write is over (failed, on error).
    pub(crate) fn log(&self, batch: &mut Batch) {
        let acks = if self.keep_acks {
            batch.acks()
        } else {
            batch.take_acks()
        };
        let metrics = self.metrics.clone();
        let seq = self.wal.append(
            encode(batch),
            Box::new(move |written| {
                if let Err(e) = written {
                    metrics.write_failures.add(1);
                    metrics.writable.set(0);
                    let message = format!("persistent queue cannot write: {e}");
                    for ack in &acks {
                        ack.fail(false, &message);
                    }
                } else {
                    metrics.writable.set(1);
                }
                drop(acks);
            }),
        );
        self.tie(batch, seq);
    }

    /// The done-mark of record `seq`: the log forgets the record once the
    /// batch (every piece and merge of it) is through its export.
    fn tie(&self, batch: &mut Batch, seq: u64) {
        let wal = self.wal.clone();
        batch.wait_on(Ack::on_settle(move |_| wal.done(seq)));
    }

    /// What the log held at open, as batches to queue again, oldest
    /// first; records that do not read back are counted, logged and
    /// marked done.
    pub(crate) fn recover(&self, exporter: &str, recovered: Recovered) -> Vec<Batch> {
        self.metrics.corrupt_records.add(recovered.corrupt_records);
        let mut batches = Vec::with_capacity(recovered.records.len());
        for (seq, payload) in recovered.records {
            match decode(&payload) {
                Ok(mut batch) => {
                    self.tie(&mut batch, seq);
                    batches.push(batch);
                }
                Err(e) => {
                    self.metrics.corrupt_records.add(1);
                    tracing::warn!(exporter, seq, error = %e, "persistent queue record skipped");
                    self.wal.done(seq);
                }
            }
        }
        if !batches.is_empty() {
            tracing::info!(
                exporter,
                batches = batches.len(),
                items = batches.iter().map(Batch::items).sum::<usize>(),
                "persistent queue: sending again what was not delivered before the restart"
            );
        }
        batches
    }
}

fn put_text(out: &mut BytesMut, s: &str) {
    out.put_u32_le(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.put_slice(s.as_bytes());
}

fn signal_code(signal: Signal) -> u8 {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn transport_code(transport: &str) -> u8 {
    match transport {
        "grpc" => 1,
        "http" => 2,
        _ => 0,
    }
}

/// `batch` as a record: its signal, then each request with its context.
pub fn encode(batch: &Batch) -> Bytes {
    let mut out = BytesMut::with_capacity(batch.bytes() + 64);
    out.put_u8(VERSION);
    out.put_u8(signal_code(batch.signal()));
    out.put_u32_le(u32::try_from(batch.requests().count()).unwrap_or(u32::MAX));
    for r in batch.requests() {
        let c = r.context;
        out.put_u8(transport_code(c.transport));
        match c.peer {
            Some(peer) => {
                out.put_u8(1);
                put_text(&mut out, &peer.to_string());
            }
            None => out.put_u8(0),
        }
        out.put_u32_le(u32::try_from(c.metadata.len()).unwrap_or(u32::MAX));
        for (k, v) in &c.metadata {
            put_text(&mut out, k);
            put_text(&mut out, v);
        }
        let auth: Vec<(&str, &AuthValue)> = c.auth.iter().flat_map(|a| a.iter()).collect();
        out.put_u32_le(u32::try_from(auth.len()).unwrap_or(u32::MAX));
        for (name, value) in auth {
            put_text(&mut out, name);
            match value {
                AuthValue::Text(s) => {
                    out.put_u8(0);
                    put_text(&mut out, s);
                }
                AuthValue::List(items) => {
                    out.put_u8(1);
                    out.put_u32_le(u32::try_from(items.len()).unwrap_or(u32::MAX));
                    for s in items {
                        put_text(&mut out, s);
                    }
                }
                AuthValue::Json(s) => {
                    out.put_u8(2);
                    put_text(&mut out, s);
                }
            }
        }
        out.put_u32_le(u32::try_from(r.bytes.len()).unwrap_or(u32::MAX));
        out.put_slice(r.bytes);
    }
    out.freeze()
}

/// Reads a record field by field.
struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.0.remaining() < n {
            Err(DecodeError::Short)
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }

    fn u32(&mut self) -> Result<usize, DecodeError> {
        self.need(4)?;
        Ok(self.0.get_u32_le() as usize)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u32()?;
        self.need(n)?;
        Ok(self.0.split_to(n))
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::Text)
    }
}

/// The batch a record of [`encode`] holds, each request checked again.
pub fn decode(record: &Bytes) -> Result<Batch, DecodeError> {
    let mut r = Reader(record.clone());
    if r.u8()? != VERSION {
        return Err(DecodeError::Unknown("version"));
    }
    let signal = match r.u8()? {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        2 => Signal::Logs,
        _ => return Err(DecodeError::Unknown("signal")),
    };
    let n = r.u32()?;
    let mut batch: Option<Batch> = None;
    for _ in 0..n {
        let transport = match r.u8()? {
            0 => "",
            1 => "grpc",
            2 => "http",
            _ => return Err(DecodeError::Unknown("transport")),
        };
        let peer = match r.u8()? {
            0 => None,
            // A peer that does not parse back is dropped, not the data.
            _ => r.text()?.parse::<SocketAddr>().ok(),
        };
        let mut metadata = Vec::new();
        for _ in 0..r.u32()? {
            metadata.push((r.text()?, r.text()?));
        }
        let attributes = r.u32()?;
        let auth = if attributes == 0 {
            None
        } else {
            let mut data = AuthData::default();
            for _ in 0..attributes {
                let name = r.text()?;
                let value = match r.u8()? {
                    0 => AuthValue::Text(r.text()?),
                    1 => {
                        let mut items = Vec::new();
                        for _ in 0..r.u32()? {
                            items.push(r.text()?);
                        }
                        AuthValue::List(items)
                    }
                    2 => AuthValue::Json(r.text()?),
                    _ => return Err(DecodeError::Unknown("authentication attribute")),
                };
                data.set(&name, value);
            }
            Some(Arc::new(data))
        };
        let context = Arc::new(RequestContext {
            transport,
            peer,
            metadata,
            auth,
        });
        let request = Batch::from_wire(signal, r.bytes()?, context)?;
        match batch.as_mut() {
            Some(b) => b.append(request),
            None => batch = Some(request),
        }
    }
    if r.0.has_remaining() {
        return Err(DecodeError::Unknown("trailing bytes"));
    }
    Ok(batch.unwrap_or_else(|| Batch::empty(signal, Arc::default())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn spans(name: &str, context: RequestContext) -> Batch {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: name.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::from_wire(
            Signal::Traces,
            Bytes::from(req.encode_to_vec()),
            Arc::new(context),
        )
        .unwrap()
    }

    /// A merged batch comes back request by request, each with the
    /// context it was received with.
    #[test]
    fn a_record_gives_back_each_request_with_its_context() {
        let mut auth = AuthData::default();
        auth.set("subject", AuthValue::Text("agent-7".into()));
        auth.set("membership", AuthValue::List(vec!["a".into(), "b".into()]));
        let mut batch = spans(
            "one",
            RequestContext {
                transport: "grpc",
                peer: Some("10.1.2.3:4317".parse().unwrap()),
                metadata: vec![("x-tenant".into(), "acme".into())],
                auth: Some(Arc::new(auth)),
            },
        );
        batch.append(spans(
            "two",
            RequestContext {
                transport: "http",
                ..Default::default()
            },
        ));
        let back = decode(&encode(&batch)).unwrap();
        assert_eq!(back.signal(), Signal::Traces);
        assert_eq!(back.items(), 2);
        assert_eq!(back.to_wire(), batch.to_wire());
        let contexts: Vec<_> = back.requests().map(|r| r.context.clone()).collect();
        assert_eq!(contexts.len(), 2);
        assert_eq!(contexts[0].lookup("x-tenant").as_deref(), Some("acme"));
        assert_eq!(
            contexts[0].lookup("client.address").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            contexts[0].lookup("auth.subject").as_deref(),
            Some("agent-7")
        );
        assert_eq!(
            contexts[0].lookup("auth.membership").as_deref(),
            Some("a;b")
        );
        assert_eq!(contexts[1].transport, "http");
        assert!(contexts[1].auth.is_none());
    }

    #[test]
    fn damaged_records_are_refused() {
        let record = encode(&spans("one", RequestContext::default()));
        for cut in [0, 1, 5, record.len() - 1] {
            assert!(decode(&record.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut other = record.to_vec();
        other[0] = 9;
        assert!(matches!(
            decode(&Bytes::from(other)),
            Err(DecodeError::Unknown("version"))
        ));
        let mut longer = record.to_vec();
        longer.push(0);
        assert!(decode(&Bytes::from(longer)).is_err());
    }
}
