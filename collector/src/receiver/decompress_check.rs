//! The check behind the `decompress` fuzz target (`fuzz/`), replayed over
//! its committed corpus by the tests of [`super`]. The first byte picks an
//! encoding, the next two a limit (0 to 65535 bytes), the rest is a body:
//! - read as compressed data, it never panics and, for every encoding that
//!   inflates, never yields more than the limit;
//! - compressed with that encoding, it inflates back to itself when it
//!   fits the limit, and is refused as too large when it does not.
//!
//! Shared as a file: in tern it is a child module of `decompress`, in the
//! fuzz target a sibling that the crate root hands the same two names.

use std::io::Write;

use bytes::Bytes;

use super::{DecompressError, decompress};

/// The encodings tried, `Content-Encoding` as a client writes it and how
/// to compress for it (`None`: the encoding is not one Tern reads).
const ENCODINGS: [(&str, Packer); 11] = [
    ("gzip", Packer::Gzip),
    ("x-gzip", Packer::Gzip),
    ("deflate", Packer::Zlib),
    ("zlib", Packer::Zlib),
    ("zstd", Packer::Zstd),
    ("snappy", Packer::SnappyBlock),
    ("snappy", Packer::SnappyFramed),
    (" GZIP ", Packer::Gzip),
    ("identity", Packer::Identity),
    ("", Packer::Identity),
    ("br", Packer::Unsupported),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Packer {
    Gzip,
    Zlib,
    Zstd,
    SnappyBlock,
    SnappyFramed,
    Identity,
    Unsupported,
}

fn pack(packer: Packer, data: &[u8]) -> Vec<u8> {
    fn write<W: Write>(mut w: W, data: &[u8]) -> W {
        w.write_all(data).expect("writes to memory");
        w
    }
    let level = flate2::Compression::fast();
    match packer {
        Packer::Gzip => write(flate2::write::GzEncoder::new(Vec::new(), level), data)
            .finish()
            .expect("gzip"),
        Packer::Zlib => write(flate2::write::ZlibEncoder::new(Vec::new(), level), data)
            .finish()
            .expect("zlib"),
        Packer::Zstd => zstd::bulk::compress(data, 1).expect("zstd"),
        Packer::SnappyBlock => snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("snappy"),
        Packer::SnappyFramed => write(snap::write::FrameEncoder::new(Vec::new()), data)
            .into_inner()
            .map_err(|e| e.to_string())
            .expect("framed snappy"),
        Packer::Identity | Packer::Unsupported => data.to_vec(),
    }
}

/// See the module docs.
pub fn check(input: &[u8]) {
    let [selector, low, high, body @ ..] = input else {
        return;
    };
    let (encoding, packer) = ENCODINGS[usize::from(*selector) % ENCODINGS.len()];
    let limit = u64::from(u16::from_le_bytes([*low, *high]));
    let inflates = !matches!(packer, Packer::Identity | Packer::Unsupported);

    match decompress(encoding, Bytes::copy_from_slice(body), limit) {
        Ok(out) => {
            assert!(packer != Packer::Unsupported, "`{encoding}` read");
            assert!(
                !inflates || out.len() as u64 <= limit,
                "`{encoding}` gave {} bytes over the limit of {limit}",
                out.len()
            );
        }
        Err(DecompressError::Unsupported(_)) => {
            assert!(packer == Packer::Unsupported, "`{encoding}` refused");
        }
        Err(DecompressError::TooLarge | DecompressError::Corrupt(_)) => {
            assert!(inflates, "`{encoding}` does not inflate");
        }
    }

    if !inflates {
        return;
    }
    let packed = Bytes::from(pack(packer, body));
    match decompress(encoding, packed, limit) {
        Ok(out) => assert!(
            body.len() as u64 <= limit && out == body,
            "`{encoding}` round trip gave other data"
        ),
        Err(DecompressError::TooLarge) => assert!(
            body.len() as u64 > limit,
            "`{encoding}`: {} bytes refused under a limit of {limit}",
            body.len()
        ),
        Err(e) => panic!("`{encoding}` refused its own encoding: {e}"),
    }
}
