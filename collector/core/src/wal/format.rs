//! The log's on-disk format: segment file names (`<20-digit number>.wal`),
//! records (`u32 le payload length | u32 le CRC-32 of seq and payload |
//! u64 le seq | payload`), the `done` file (`u64 le watermark | u32 le
//! CRC-32 of it`) and reading a segment back, skipping what is corrupt.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use bytes::Bytes;

/// Bytes before a record's payload.
pub(super) const HEADER: usize = 16;

/// The largest payload a record may carry; a longer length read back is
/// treated as corrupt.
pub(super) const MAX_PAYLOAD: usize = 256 << 20;

/// Size of the `done` file.
pub(super) const DONE_LEN: usize = 12;

/// The file name of segment `number`.
pub(super) fn segment_name(number: u64) -> String {
    format!("{number:020}.wal")
}

/// The number of a segment file name, or `None` for any other file.
pub(super) fn parse_segment_name(name: &OsStr) -> Option<u64> {
    let stem = name.to_str()?.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Bytes a record with a payload of `payload_len` bytes takes on disk.
pub(super) fn record_len(payload_len: usize) -> u64 {
    (HEADER + payload_len) as u64
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The header of the record of `seq` (written before `payload`, which is
/// at most [`MAX_PAYLOAD`] bytes).
pub(super) fn record_header(seq: u64, payload: &[u8]) -> [u8; HEADER] {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&checksum(seq, payload).to_le_bytes());
    header[8..].copy_from_slice(&seq.to_le_bytes());
    header
}

/// The contents of the `done` file holding `watermark`.
pub(super) fn encode_done(watermark: u64) -> [u8; DONE_LEN] {
    let mut out = [0; DONE_LEN];
    let seq = watermark.to_le_bytes();
    out[..8].copy_from_slice(&seq);
    out[8..].copy_from_slice(&crc32fast::hash(&seq).to_le_bytes());
    out
}

/// The watermark held in a `done` file, or `None` when it is not one.
pub(super) fn decode_done(bytes: &[u8]) -> Option<u64> {
    let (seq, crc) = bytes.split_first_chunk::<8>()?;
    let crc: [u8; 4] = crc.try_into().ok()?;
    (crc32fast::hash(seq) == u32::from_le_bytes(crc)).then(|| u64::from_le_bytes(*seq))
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Good records with a seq at or above the watermark, in file order.
    pub records: Vec<(u64, Bytes)>,
    /// The highest seq of a good record, done or not.
    pub max_seq: Option<u64>,
    /// Corrupt records (a corrupt rest of the segment counts as one).
    pub corrupt_records: u64,
    /// Bytes skipped with them.
    pub corrupt_bytes: u64,
    /// The file's size.
    pub len: u64,
}

/// Reads the segment at `path`, keeping the records with a seq at or above
/// `watermark`. A record with a bad checksum is skipped; after a bad or cut
/// short length nothing more of the file can be trusted, so its rest is
/// skipped. Both are logged.
pub(super) fn scan_segment(path: &Path, watermark: u64) -> io::Result<Scan> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut scan = Scan {
        len,
        ..Scan::default()
    };
    let mut offset = 0u64;
    while offset < len {
        let remaining = len - offset;
        let mut header = [0u8; HEADER];
        let payload_len = if remaining >= HEADER as u64 {
            reader.read_exact(&mut header)?;
            let [a, b, c, d, ..] = header;
            u32::from_le_bytes([a, b, c, d]) as usize
        } else {
            usize::MAX
        };
        if payload_len > MAX_PAYLOAD || record_len(payload_len) > remaining {
            tracing::warn!(
                file = %path.display(),
                offset,
                bytes = remaining,
                "write-ahead log: skipped the rest of a segment after a bad or cut short record"
            );
            scan.corrupt_records += 1;
            scan.corrupt_bytes += remaining;
            break;
        }
        let mut payload = vec![0u8; payload_len];
        reader.read_exact(&mut payload)?;
        let bytes = record_len(payload_len);
        let [_, _, _, _, c0, c1, c2, c3, s @ ..] = header;
        let seq = u64::from_le_bytes(s);
        if checksum(seq, &payload) != u32::from_le_bytes([c0, c1, c2, c3]) {
            tracing::warn!(
                file = %path.display(),
                offset,
                bytes,
                "write-ahead log: skipped a record with a bad checksum"
            );
            scan.corrupt_records += 1;
            scan.corrupt_bytes += bytes;
        } else {
            scan.max_seq = scan.max_seq.max(Some(seq));
            if seq >= watermark {
                scan.records.push((seq, Bytes::from(payload)));
            }
        }
        offset += bytes;
    }
    Ok(scan)
}
