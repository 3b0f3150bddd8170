//! Request building for the OTLP exporters: the batch's wire bytes as they
//! are (protobuf) or mapped to OTLP JSON, compressed with gzip or zstd, and
//! for gRPC framed with the 5-byte message prefix. A batch no processor
//! decoded is never decoded here for protobuf.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use tern_config::{Compression, HttpEncoding};
use tern_core::component::ExportError;
use tern_core::pdata::Batch;

/// Compresses `data` per `compression`.
pub fn compress(compression: Compression, data: &[u8]) -> Result<Vec<u8>, ExportError> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 4),
                flate2::Compression::fast(),
            );
            e.write_all(data)?;
            Ok(e.finish()?)
        }
        Compression::Zstd => Ok(zstd::bulk::compress(data, 1)?),
    }
}

/// The `Content-Encoding` / `grpc-encoding` name, if any.
pub fn encoding_name(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some("gzip"),
        Compression::Zstd => Some("zstd"),
    }
}

/// The body of an OTLP/HTTP request.
pub fn http_body(
    batch: &Batch,
    encoding: HttpEncoding,
    compression: Compression,
) -> Result<Bytes, ExportError> {
    let wire = batch.to_wire();
    let payload = match encoding {
        HttpEncoding::Proto => wire,
        HttpEncoding::Json => {
            let mut out = Vec::with_capacity(wire.len() * 2);
            tern_core::json::wire_to_json(batch.signal(), &wire, &mut out)
                .map_err(|e| ExportError::Encode(e.to_string()))?;
            Bytes::from(out)
        }
    };
    Ok(match compression {
        Compression::None => payload,
        other => Bytes::from(compress(other, &payload)?),
    })
}

/// A gRPC length-prefixed message: flag, 4-byte big-endian length, bytes.
pub fn grpc_frame(batch: &Batch, compression: Compression) -> Result<Bytes, ExportError> {
    let compressed;
    let (flag, payload): (u8, &[u8]) = match compression {
        Compression::None => {
            let mut out = BytesMut::with_capacity(5 + batch.bytes());
            out.put_u8(0);
            out.put_u32(frame_len(batch.bytes())?);
            for chunk in batch.chunks() {
                out.extend_from_slice(chunk);
            }
            return Ok(out.freeze());
        }
        other => {
            compressed = compress(other, &batch.to_wire())?;
            (1, &compressed)
        }
    };
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flag);
    out.put_u32(frame_len(payload.len())?);
    out.extend_from_slice(payload);
    Ok(out.freeze())
}

fn frame_len(n: usize) -> Result<u32, ExportError> {
    u32::try_from(n).map_err(|_| ExportError::Encode("message larger than 4 GiB".into()))
}
