//! Request building for the OTLP exporters: the batch's wire bytes as they
//! are (protobuf) or mapped to OTLP JSON, compressed with gzip, zstd, zlib
//! (`zlib` and `deflate`) or snappy (block format over HTTP, framed over
//! gRPC, as the Collector's clients do), and
//! for gRPC framed with the 5-byte message prefix. A batch no processor
//! decoded is never decoded here for protobuf.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use tern_config::{Compression, HttpEncoding};
use tern_core::component::ExportError;
use tern_core::pdata::Batch;

use crate::transport::Chunks;

/// How snappy output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snappy {
    /// One raw block (OTLP/HTTP `Content-Encoding: snappy`).
    Block,
    /// The framing format (gRPC `grpc-encoding: snappy`).
    Framed,
}

/// Compresses the concatenation of `chunks` without joining them first
/// (except for snappy's block format, which needs the whole input).
pub fn compress(
    compression: Compression,
    chunks: &[Bytes],
    snappy: Snappy,
) -> Result<Vec<u8>, ExportError> {
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
        Compression::Zlib | Compression::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(total / 4),
                flate2::Compression::fast(),
            );
            for c in chunks {
                e.write_all(c)?;
            }
            Ok(e.finish()?)
        }
        Compression::Snappy => match snappy {
            Snappy::Block => snap::raw::Encoder::new()
                .compress_vec(&chunks.concat())
                .map_err(|e| ExportError::Encode(e.to_string())),
            Snappy::Framed => {
                let mut e = snap::write::FrameEncoder::new(Vec::with_capacity(total / 4));
                for c in chunks {
                    e.write_all(c)?;
                }
                e.into_inner()
                    .map_err(|e| ExportError::Encode(e.error().to_string()))
            }
        },
    }
}

/// The `Content-Encoding` / `grpc-encoding` name, if any.
pub fn encoding_name(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some("gzip"),
        Compression::Zstd => Some("zstd"),
        Compression::Zlib => Some("zlib"),
        Compression::Deflate => Some("deflate"),
        Compression::Snappy => Some("snappy"),
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
        other => Chunks::new([Bytes::from(compress(other, &payload, Snappy::Block)?)]),
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
            let payload = Bytes::from(compress(other, batch.chunks(), Snappy::Framed)?);
            Chunks::new([prefix(1, payload.len())?, payload])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_codec_round_trips_and_names_itself_as_the_collector_does() {
        let chunks = [
            Bytes::from_static(b"hello "),
            Bytes::from(vec![7u8; 5000]),
            Bytes::from_static(b" world"),
        ];
        let whole = chunks.concat();
        let zlib = |data: &[u8]| {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
            out
        };
        for (c, name) in [
            (Compression::Zlib, "zlib"),
            (Compression::Deflate, "deflate"),
        ] {
            assert_eq!(encoding_name(c), Some(name));
            assert_eq!(zlib(&compress(c, &chunks, Snappy::Block).unwrap()), whole);
        }
        assert_eq!(encoding_name(Compression::Snappy), Some("snappy"));
        let block = compress(Compression::Snappy, &chunks, Snappy::Block).unwrap();
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&block).unwrap(),
            whole
        );
        let framed = compress(Compression::Snappy, &chunks, Snappy::Framed).unwrap();
        let mut out = Vec::new();
        snap::read::FrameDecoder::new(&framed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, whole);
    }
}
