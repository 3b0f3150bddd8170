//! Request building for the OTLP exporters: the batch's wire bytes as they
//! are (protobuf) or mapped to OTLP JSON, compressed with gzip or zstd, and
//! for gRPC framed with the 5-byte message prefix. A batch no processor
//! decoded is never decoded here for protobuf.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use tern_config::{Compression, HttpEncoding};
use tern_core::component::ExportError;
use tern_core::pdata::Batch;

use crate::transport::Chunks;

/// Compresses the concatenation of `chunks` without joining them first.
pub fn compress(compression: Compression, chunks: &[Bytes]) -> Result<Vec<u8>, ExportError> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    match compression {
        Compression::None => Ok(chunks.concat()),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(total / 4),
                flate2::Compression::fast(),
            );
            for c in chunks {
                e.write_all(c)?;
            }
            Ok(e.finish()?)
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(Vec::with_capacity(total / 4), 1)?;
            e.set_pledged_src_size(Some(total as u64))?;
            for c in chunks {
                e.write_all(c)?;
            }
            Ok(e.finish()?)
        }
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

/// The body of an OTLP/HTTP request. Uncompressed protobuf is the batch's
/// own chunks, not copied.
pub fn http_body(
    batch: &Batch,
    encoding: HttpEncoding,
    compression: Compression,
) -> Result<Chunks, ExportError> {
    let payload = match encoding {
        HttpEncoding::Proto => batch.chunks().to_vec(),
        HttpEncoding::Json => {
            let wire = batch.to_wire();
            let mut out = Vec::with_capacity(wire.len() * 2);
            tern_core::json::wire_to_json(batch.signal(), &wire, &mut out)
                .map_err(|e| ExportError::Encode(e.to_string()))?;
            vec![Bytes::from(out)]
        }
    };
    Ok(match compression {
        Compression::None => Chunks::new(payload),
        other => Chunks::new([Bytes::from(compress(other, &payload)?)]),
    })
}

/// A gRPC length-prefixed message: flag, 4-byte big-endian length, bytes.
/// Uncompressed, the batch's chunks follow the prefix without a copy.
pub fn grpc_frame(batch: &Batch, compression: Compression) -> Result<Chunks, ExportError> {
    let prefix = |flag: u8, len: usize| -> Result<Bytes, ExportError> {
        let mut p = BytesMut::with_capacity(5);
        p.put_u8(flag);
        p.put_u32(
            u32::try_from(len)
                .map_err(|_| ExportError::Encode("message larger than 4 GiB".into()))?,
        );
        Ok(p.freeze())
    };
    Ok(match compression {
        Compression::None => Chunks::new(
            std::iter::once(prefix(0, batch.bytes())?).chain(batch.chunks().iter().cloned()),
        ),
        other => {
            let payload = Bytes::from(compress(other, batch.chunks())?);
            Chunks::new([prefix(1, payload.len())?, payload])
        }
    })
}
