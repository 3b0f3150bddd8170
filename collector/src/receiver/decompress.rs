//! Request body decompression for the OTLP receivers, per
//! `Content-Encoding` (HTTP) or `grpc-encoding: snappy` (gRPC; tonic undoes
//! gzip and zstd itself): gzip, deflate/zlib, zstd and snappy (block or
//! framed), never producing more than a limit, so a compression bomb stops
//! there. Self-contained (no other Tern module) so that the `decompress`
//! fuzz target (`fuzz/`) compiles it as it is; its check is
//! `decompress_check.rs`, which the tests here replay over the committed
//! corpus.

use std::io::Read;

use bytes::Bytes;

/// The stream identifier chunk that starts framed snappy.
const SNAPPY_STREAM: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Inflates `body` per `Content-Encoding`, refusing to produce more than
/// `limit` bytes (so a compression bomb stops at the limit).
pub fn decompress(encoding: &str, body: Bytes, limit: u64) -> Result<Bytes, DecompressError> {
    fn inflate(reader: impl Read, limit: u64) -> Result<Bytes, DecompressError> {
        let mut out = Vec::new();
        reader
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
        if out.len() as u64 > limit {
            return Err(DecompressError::TooLarge);
        }
        Ok(Bytes::from(out))
    }
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" | "none" => Ok(body),
        "gzip" | "x-gzip" => inflate(flate2::read::GzDecoder::new(&body[..]), limit),
        // As the Collector: `deflate` is read as zlib-wrapped, like `zlib`.
        "deflate" | "zlib" => inflate(flate2::read::ZlibDecoder::new(&body[..]), limit),
        // The framed format when it starts with its stream identifier,
        // otherwise the block format, whose size is known before inflating.
        // An empty body too: what a framed encoder writes for no data.
        "snappy" if body.is_empty() || body.starts_with(SNAPPY_STREAM) => {
            inflate(snap::read::FrameDecoder::new(&body[..]), limit)
        }
        "snappy" => {
            let len = snap::raw::decompress_len(&body)
                .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
            if len as u64 > limit {
                return Err(DecompressError::TooLarge);
            }
            snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map(Bytes::from)
                .map_err(|e| DecompressError::Corrupt(e.to_string()))
        }
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::with_buffer(&body[..])
                .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
            inflate(decoder, limit)
        }
        other => Err(DecompressError::Unsupported(other.to_string())),
    }
}

/// Why a body could not be inflated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// Bigger than the limit once inflated.
    #[error("request body exceeds the limit once decompressed")]
    TooLarge,
    /// Not valid data for its encoding.
    #[error("cannot decompress body: {0}")]
    Corrupt(String),
    /// An encoding Tern does not read.
    #[error("unsupported Content-Encoding `{0}` (supported: gzip, deflate, zlib, zstd, snappy)")]
    Unsupported(String),
}

#[cfg(test)]
#[path = "decompress_check.rs"]
mod check;

#[cfg(test)]
#[path = "../../../fuzz/replay.rs"]
mod replay;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn inflates_each_encoding() {
        let data = b"hello otlp".repeat(100);
        assert_eq!(
            &decompress("gzip", gzip(&data), 10_000).unwrap()[..],
            &data[..]
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&data).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(
            &decompress("deflate", z.clone(), 10_000).unwrap()[..],
            &data[..]
        );
        assert_eq!(&decompress("zlib", z, 10_000).unwrap()[..], &data[..]);
        let zs = Bytes::from(zstd::bulk::compress(&data, 3).unwrap());
        assert_eq!(&decompress("zstd", zs, 10_000).unwrap()[..], &data[..]);
        let block = Bytes::from(snap::raw::Encoder::new().compress_vec(&data).unwrap());
        assert_eq!(&decompress("snappy", block, 10_000).unwrap()[..], &data[..]);
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(&data).unwrap();
        let framed = Bytes::from(framed.into_inner().unwrap());
        assert_eq!(
            &decompress("snappy", framed, 10_000).unwrap()[..],
            &data[..]
        );
        assert_eq!(
            &decompress("", Bytes::from(data.clone()), 10).unwrap()[..],
            &data[..]
        );
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        // 64 MiB of zeros compress to ~64 KiB; inflating must stop at 1 MiB.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            decompress("gzip", bomb, 1 << 20),
            Err(DecompressError::TooLarge)
        );
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 64 << 20])
            .unwrap();
        assert_eq!(
            decompress("snappy", Bytes::from(snappy), 1 << 20),
            Err(DecompressError::TooLarge)
        );
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(&vec![0u8; 64 << 20]).unwrap();
        assert_eq!(
            decompress("snappy", Bytes::from(framed.into_inner().unwrap()), 1 << 20),
            Err(DecompressError::TooLarge)
        );
        let zbomb = Bytes::from(zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap());
        assert_eq!(
            decompress("zstd", zbomb, 1 << 20),
            Err(DecompressError::TooLarge)
        );
    }

    /// Found by fuzzing: framed snappy of no data is no bytes at all, and
    /// was refused as a corrupt block.
    #[test]
    fn empty_snappy_is_empty() {
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(b"").unwrap();
        let framed = Bytes::from(framed.into_inner().unwrap());
        assert_eq!(decompress("snappy", framed, 10).unwrap(), Bytes::new());
    }

    #[test]
    fn corrupt_and_unknown_encodings() {
        assert!(matches!(
            decompress("gzip", Bytes::from_static(b"not gzip"), 100),
            Err(DecompressError::Corrupt(_))
        ));
        assert!(matches!(
            decompress("br", Bytes::from_static(b"x"), 100),
            Err(DecompressError::Unsupported(_))
        ));
    }

    /// Every committed input of the `decompress` fuzz target
    /// (`fuzz/corpus/decompress`, `fuzz/regressions/decompress`) keeps the
    /// target's check.
    #[test]
    fn fuzz_corpus_keeps_the_limit() {
        replay::replay("decompress", check::check);
    }
}
