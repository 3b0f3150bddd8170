//! Tests of the write-ahead log, each in a temporary directory.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::format::{HEADER, decode_done, record_len};
use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions {
        fsync: false,
        segment_bytes,
    }
}

/// A callback sending its result to the returned receiver.
fn written() -> (Written, mpsc::Receiver<Result<(), Arc<WalError>>>) {
    let (tx, rx) = mpsc::channel();
    let written: Written = Box::new(move |result| {
        let _ = tx.send(result);
    });
    (written, rx)
}

/// Appends `payload` and waits for its write; returns its seq and result.
fn append(wal: &Wal, payload: &str) -> (u64, Result<(), Arc<WalError>>) {
    let (callback, rx) = written();
    let seq = wal.append(Bytes::copy_from_slice(payload.as_bytes()), callback);
    (seq, rx.recv_timeout(WAIT).unwrap())
}

fn append_ok(wal: &Wal, payload: &str) -> u64 {
    let (seq, result) = append(wal, payload);
    result.unwrap();
    seq
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn payloads(recovered: &Recovered) -> Vec<(u64, &str)> {
    recovered
        .records
        .iter()
        .map(|(seq, p)| (*seq, std::str::from_utf8(p).unwrap()))
        .collect()
}

#[test]
fn append_then_reopen_returns_the_records_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovered) = Wal::open(dir.path(), options(100)).unwrap();
    assert!(recovered.records.is_empty());
    let names: Vec<String> = (0..10).map(|i| format!("record {i}")).collect();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(append_ok(&wal, name), i as u64);
    }
    assert!(segment_files(dir.path()).len() > 1, "small segments rotate");
    let on_disk: u64 = segment_files(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(wal.disk_bytes(), on_disk);
    drop(wal);

    let (_wal, recovered) = Wal::open(dir.path(), options(100)).unwrap();
    let expected: Vec<(u64, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u64, n.as_str()))
        .collect();
    assert_eq!(payloads(&recovered), expected);
    assert_eq!(recovered.corrupt_records, 0);
    assert_eq!(recovered.corrupt_bytes, 0);
}

#[test]
fn done_marks_out_of_order_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    for i in 0..5 {
        append_ok(&wal, &format!("r{i}"));
    }
    for seq in [2, 0, 4, 1] {
        wal.done(seq);
    }
    wal.close();

    // 0..=2 are below the watermark; 4 was done above it and comes back
    // (a duplicate, never a loss).
    let (wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(payloads(&recovered), vec![(3, "r3"), (4, "r4")]);
    assert_eq!(recovered.corrupt_records, 0);
    wal.done(3);
    wal.done(4);
    drop(wal);

    let (_wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(recovered.records.is_empty());
}

#[test]
fn segments_are_deleted_once_all_done() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), options(64)).unwrap();
    let seqs: Vec<u64> = (0..8)
        .map(|i| append_ok(&wal, &format!("a payload of some bytes {i}")))
        .collect();
    assert_eq!(segment_files(dir.path()).len(), 8);
    for &seq in seqs.iter().rev() {
        wal.done(seq);
    }
    // The writer deletes every segment but the one being written.
    let deadline = Instant::now() + WAIT;
    while segment_files(dir.path()).len() > 1 {
        assert!(Instant::now() < deadline, "segments not deleted");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        wal.disk_bytes(),
        fs::metadata(&segment_files(dir.path())[0]).unwrap().len()
    );
    wal.close();
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(wal.disk_bytes(), 0);
}

#[test]
fn seq_continues_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    for _ in 0..3 {
        append_ok(&wal, "x");
    }
    drop(wal);
    let (wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(recovered.records.len(), 3);
    assert_eq!(append_ok(&wal, "y"), 3);
    for seq in 0..4 {
        wal.done(seq);
    }
    drop(wal);

    // Everything done: no segment is left, the done file carries the seq on.
    assert!(segment_files(dir.path()).is_empty());
    let (wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(recovered.records.is_empty());
    assert_eq!(append_ok(&wal, "z"), 4);
}

#[test]
fn torn_tail_and_flipped_byte_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // Three 26-byte records a segment.
    let record = record_len(10);
    let (wal, _) = Wal::open(dir.path(), options(3 * record)).unwrap();
    for i in 0..9 {
        append_ok(&wal, &format!("payload-{i:02}"));
    }
    drop(wal);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 3);

    // Cut the first segment in the middle of its third record.
    let torn = 2 * record + 7;
    OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(torn)
        .unwrap();
    // Flip a payload byte of the second segment's middle record.
    let mut file = OpenOptions::new().write(true).open(&files[1]).unwrap();
    file.seek(SeekFrom::Start(record + HEADER as u64 + 3))
        .unwrap();
    file.write_all(b"#").unwrap();
    drop(file);

    let (_wal, recovered) = Wal::open(dir.path(), options(3 * record)).unwrap();
    let seqs: Vec<u64> = recovered.records.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![0, 1, 3, 5, 6, 7, 8]);
    assert_eq!(payloads(&recovered)[2], (3, "payload-03"));
    assert_eq!(recovered.corrupt_records, 2);
    assert_eq!(recovered.corrupt_bytes, 7 + record);
}

#[test]
fn a_bad_length_skips_the_rest_of_its_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    let record = record_len(10);
    let (wal, _) = Wal::open(dir.path(), options(3 * record)).unwrap();
    for i in 0..6 {
        append_ok(&wal, &format!("payload-{i:02}"));
    }
    drop(wal);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2);

    // The second record of the first segment claims 1 GiB.
    let mut file = OpenOptions::new().write(true).open(&files[0]).unwrap();
    file.seek(SeekFrom::Start(record)).unwrap();
    file.write_all(&(1u32 << 30).to_le_bytes()).unwrap();
    drop(file);

    let (_wal, recovered) = Wal::open(dir.path(), options(3 * record)).unwrap();
    let seqs: Vec<u64> = recovered.records.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![0, 3, 4, 5]);
    assert_eq!(recovered.corrupt_records, 1);
    assert_eq!(recovered.corrupt_bytes, 2 * record);
}

#[test]
fn a_second_open_is_locked_until_close() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    append_ok(&wal, "kept");
    match Wal::open(dir.path(), WalOptions::default()) {
        Err(WalError::Locked(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    wal.close();
    let (callback, rx) = written();
    wal.append(Bytes::from_static(b"late"), callback);
    assert!(matches!(
        rx.recv_timeout(WAIT).unwrap().unwrap_err().as_ref(),
        WalError::Closed
    ));

    let (_wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(payloads(&recovered), vec![(0, "kept")]);
}

#[test]
fn freeze_keeps_records_that_are_then_marked_done() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), options(64)).unwrap();
    for i in 0..4 {
        append_ok(&wal, &format!("payload number {i} padded out"));
    }
    wal.done(0);
    // Let the writer save the watermark (1) and delete the first segment.
    let deadline = Instant::now() + WAIT;
    while segment_files(dir.path()).len() > 3 {
        assert!(Instant::now() < deadline, "segment not deleted");
        thread::sleep(Duration::from_millis(5));
    }
    wal.freeze();
    for seq in 1..4 {
        wal.done(seq);
    }
    thread::sleep(Duration::from_millis(120));
    drop(wal);

    let (_wal, recovered) = Wal::open(dir.path(), options(64)).unwrap();
    let seqs: Vec<u64> = recovered.records.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    const THREADS: u64 = 8;
    const EACH: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let fsync = WalOptions {
        fsync: true,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), fsync).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for t in 0..THREADS {
            let wal = &wal;
            let tx = tx.clone();
            scope.spawn(move || {
                for i in 0..EACH {
                    let tx = tx.clone();
                    let payload = Bytes::from(format!("thread {t} record {i}"));
                    wal.append(
                        payload,
                        Box::new(move |result| {
                            let _ = tx.send(result.is_ok());
                        }),
                    );
                }
            });
        }
    });
    drop(tx);
    let results: Vec<bool> = rx.iter().collect();
    assert_eq!(results.len() as u64, THREADS * EACH);
    assert!(results.iter().all(|ok| *ok));
    let syncs = wal.syncs();
    assert!(syncs > 0);
    assert!(
        syncs < THREADS * EACH,
        "{syncs} fsyncs for {} appends",
        THREADS * EACH
    );
    drop(wal);

    let (_wal, recovered) = Wal::open(dir.path(), fsync).unwrap();
    let seqs: Vec<u64> = recovered.records.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..THREADS * EACH).collect::<Vec<u64>>());
}

#[test]
fn a_failed_write_is_reported_and_the_next_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    append_ok(&wal, "before");
    assert!(wal.writable());

    wal.inject_write_failures(1);
    let (seq, result) = append(&wal, "lost to a full disk");
    assert_eq!(seq, 1);
    match result.unwrap_err().as_ref() {
        WalError::Io { source, .. } => {
            assert_eq!(source.kind(), io::ErrorKind::StorageFull);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(!wal.writable());
    assert_eq!(wal.write_failures(), 1);
    let size = wal.disk_bytes();
    assert_eq!(size, record_len("before".len()));
    assert_eq!(
        fs::metadata(&segment_files(dir.path())[0]).unwrap().len(),
        size,
        "the half-written record is cut off"
    );

    assert_eq!(append_ok(&wal, "after"), 2);
    assert!(wal.writable());
    assert_eq!(wal.write_failures(), 1);
    drop(wal);

    let (_wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(payloads(&recovered), vec![(0, "before"), (2, "after")]);
    assert_eq!(recovered.corrupt_records, 0);
}

#[test]
fn a_failed_write_fails_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.inject_write_failures(1);
    // Queued while the writer is held up by the first group's callback, the
    // rest go out as one group.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (first_tx, first_rx) = mpsc::channel();
    wal.append(
        Bytes::from_static(b"first"),
        Box::new(move |result| {
            let _ = first_tx.send(result.is_ok());
            let _ = release_rx.recv_timeout(WAIT);
        }),
    );
    assert!(!first_rx.recv_timeout(WAIT).unwrap());
    wal.inject_write_failures(1);
    let receivers: Vec<_> = (0..5)
        .map(|i| {
            let (callback, rx) = written();
            wal.append(Bytes::from(format!("queued {i}")), callback);
            rx
        })
        .collect();
    release_tx.send(()).unwrap();
    for rx in receivers {
        assert!(rx.recv_timeout(WAIT).unwrap().is_err());
    }
    assert_eq!(wal.write_failures(), 6);
    assert!(!wal.writable());
    assert_eq!(wal.disk_bytes(), 0);
    append_ok(&wal, "room again");
    drop(wal);

    let (_wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(payloads(&recovered), vec![(6, "room again")]);
    assert_eq!(recovered.corrupt_records, 0);
}

#[test]
fn a_corrupt_done_file_falls_back_to_reading_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    append_ok(&wal, "a");
    append_ok(&wal, "b");
    wal.done(0);
    drop(wal);
    assert_eq!(
        decode_done(&fs::read(dir.path().join("done")).unwrap()),
        Some(1)
    );
    fs::write(dir.path().join("done"), b"garbage").unwrap();

    let (_wal, recovered) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(payloads(&recovered), vec![(0, "a"), (1, "b")]);
    assert_eq!(recovered.corrupt_records, 0);
}
