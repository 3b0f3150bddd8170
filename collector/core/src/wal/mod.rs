//! A write-ahead log for the exporters' persistent queue: records appended
//! from any thread are written by one writer thread in groups (one write and
//! at most one fsync per group and segment, so concurrent appenders share the
//! cost), marked done in any order, and read back at the next open unless
//! they were done.
//!
//! On disk the log is a directory holding segment files
//! (`<20-digit number>.wal`, a new one once the current one is past
//! [`WalOptions::segment_bytes`]), a `lock` file held with an exclusive lock
//! while the log is open, and a `done` file with the watermark: every seq
//! below it is done. Each record carries its seq and a CRC-32, so a torn
//! or corrupt record is found, skipped and counted at open. A segment is
//! deleted once every record in it is done (one left with no good record
//! right after the open that counted it).

mod format;
mod writer;

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use bytes::Bytes;

use format::{DONE_LEN, decode_done, parse_segment_name, scan_segment};
use writer::{ClosedSegment, Writer};

/// Options of a log.
#[derive(Debug, Clone, Copy)]
pub struct WalOptions {
    /// fsync after each group of writes (durable against power loss);
    /// without it a write reaches the page cache (durable against a process
    /// crash).
    pub fsync: bool,
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    /// fsync off, 8 MiB segments.
    fn default() -> Self {
        WalOptions {
            fsync: false,
            segment_bytes: 8 << 20,
        }
    }
}

/// What was found on disk at open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Records not yet marked done, oldest first: (seq, payload).
    pub records: Vec<(u64, Bytes)>,
    /// Records skipped because their checksum or length was bad, or they
    /// were cut short (the untrusted rest of a segment after a bad length
    /// counts as one).
    pub corrupt_records: u64,
    /// Bytes skipped with them.
    pub corrupt_bytes: u64,
}

/// Why the log could not be opened or a record not be written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("write-ahead log: cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done ("write segment", "create segment", ...).
        what: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another open of the log, in this or another process, holds the
    /// directory.
    #[error("write-ahead log {} is in use by another process", .0.display())]
    Locked(PathBuf),
    /// The payload is longer than a record may be (256 MiB).
    #[error("write-ahead log: a record of {0} bytes is over the 256 MiB limit")]
    TooLarge(usize),
    /// The log was closed before the record was appended.
    #[error("write-ahead log is closed")]
    Closed,
}

impl WalError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
        let path = path.to_path_buf();
        move |source| WalError::Io { what, path, source }
    }
}

/// Called once per append when the record is written (and fsynced when
/// [`WalOptions::fsync`]) or its write failed. It is called from the writer
/// thread, except for an append after [`Wal::close`], whose callback is
/// called at once on the appending thread with [`WalError::Closed`]. The
/// error is shared by every record of the group whose write failed, hence
/// the `Arc`. It should be quick (it holds up the next group) and must not
/// block on the log itself.
pub type Written = Box<dyn FnOnce(Result<(), Arc<WalError>>) + Send>;

/// A write-ahead log; see the module documentation. Used as `Arc<Wal>`.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What the appenders and the writer thread share.
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: something to write, the watermark moved, closing.
    wake: Condvar,
    frozen: AtomicBool,
    writable: AtomicBool,
    write_failures: AtomicU64,
    disk_bytes: AtomicU64,
    /// fsyncs done (files and directory).
    #[cfg(test)]
    syncs: AtomicU64,
    /// Writes still to fail (after writing half their bytes).
    #[cfg(test)]
    inject_failures: std::sync::atomic::AtomicU32,
}

struct State {
    next_seq: u64,
    /// Appended, not yet taken by the writer, in seq order.
    pending: Vec<Pending>,
    /// Seqs appended or recovered, neither done nor failed. The lowest is
    /// the watermark.
    outstanding: BTreeSet<u64>,
    /// The watermark may have moved since the writer last looked.
    dirty: bool,
    closing: bool,
}

impl State {
    /// The lowest seq not done: every seq below it is done.
    fn watermark(&self) -> u64 {
        self.outstanding.first().copied().unwrap_or(self.next_seq)
    }
}

struct Pending {
    seq: u64,
    payload: Bytes,
    written: Written,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wal {
    /// Opens the log in `dir` (which must exist), taking an exclusive lock on
    /// `dir/lock` so that a second open, in this or another process, fails
    /// with [`WalError::Locked`]. Reads every segment and returns the
    /// records not yet done in seq order; corrupt or torn records are
    /// skipped, counted and logged, and so is the rest of a segment after a
    /// bad length (later segments are read). New appends go to a fresh
    /// segment. Starts the writer thread.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Arc<Wal>, Recovered), WalError> {
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(WalError::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(WalError::Locked(dir.to_path_buf())),
            Err(TryLockError::Error(e)) => return Err(WalError::io("lock", &lock_path)(e)),
        }

        let done_path = dir.join("done");
        let stored = read_done(&done_path)?;

        let mut segments = Vec::new();
        for entry in fs::read_dir(dir).map_err(WalError::io("list", dir))? {
            let entry = entry.map_err(WalError::io("list", dir))?;
            if let Some(number) = parse_segment_name(&entry.file_name()) {
                segments.push((number, entry.path()));
            }
        }
        segments.sort_unstable();

        let mut recovered = Recovered::default();
        let mut closed = Vec::with_capacity(segments.len());
        let mut max_seq = None;
        let mut disk_bytes = 0;
        for (_, path) in &segments {
            let scan = scan_segment(path, stored).map_err(WalError::io("read", path))?;
            recovered.records.extend(scan.records);
            recovered.corrupt_records += scan.corrupt_records;
            recovered.corrupt_bytes += scan.corrupt_bytes;
            max_seq = max_seq.max(scan.max_seq);
            disk_bytes += scan.len;
            closed.push(ClosedSegment {
                path: path.clone(),
                len: scan.len,
                max_seq: scan.max_seq,
            });
        }
        recovered.records.sort_by_key(|(seq, _)| *seq);
        let next_seq = max_seq.map_or(0, |s| s + 1).max(stored);
        let next_segment = segments.last().map_or(0, |(n, _)| n + 1);

        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_seq,
                pending: Vec::new(),
                outstanding: recovered.records.iter().map(|(seq, _)| *seq).collect(),
                dirty: true,
                closing: false,
            }),
            wake: Condvar::new(),
            frozen: AtomicBool::new(false),
            writable: AtomicBool::new(true),
            write_failures: AtomicU64::new(0),
            disk_bytes: AtomicU64::new(disk_bytes),
            #[cfg(test)]
            syncs: AtomicU64::new(0),
            #[cfg(test)]
            inject_failures: std::sync::atomic::AtomicU32::new(0),
        });
        let writer = Writer::new(
            Arc::clone(&shared),
            dir.to_path_buf(),
            options,
            closed,
            next_segment,
            stored,
            lock,
        );
        let handle = thread::Builder::new()
            .name("tern-wal".into())
            .spawn(move || writer.run())
            .map_err(WalError::io("start the writer thread for", dir))?;
        let wal = Wal {
            shared,
            writer: Mutex::new(Some(handle)),
        };
        Ok((Arc::new(wal), recovered))
    }

    /// Queues `payload` as the next record and returns its seq (strictly
    /// increasing across the log's life, also across restarts); `written`
    /// is called when it is durable or failed. Never blocks on I/O.
    pub fn append(&self, payload: Bytes, written: Written) -> u64 {
        let mut state = self.shared.state();
        let seq = state.next_seq;
        state.next_seq += 1;
        if state.closing {
            drop(state);
            written(Err(Arc::new(WalError::Closed)));
            return seq;
        }
        state.outstanding.insert(seq);
        let wake = state.pending.is_empty();
        state.pending.push(Pending {
            seq,
            payload,
            written,
        });
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        seq
    }

    /// Record `seq` is no longer needed (exported, or given up on). Any
    /// order, any thread, also before its write completed. Cheap: the
    /// watermark is saved and segments deleted by the writer thread.
    pub fn done(&self, seq: u64) {
        if self.shared.frozen.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.shared.state();
        let lowest = state.outstanding.first() == Some(&seq);
        if state.outstanding.remove(&seq) && lowest && !state.dirty {
            state.dirty = true;
            drop(state);
            self.shared.wake.notify_one();
        }
    }

    /// From now on `done` marks are ignored: what is still on disk is read
    /// again at the next open (used when the shutdown deadline passes with
    /// data still queued).
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::Release);
    }

    /// Bytes in the segment files now.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// False after a write failed, true again once a write succeeded.
    pub fn writable(&self) -> bool {
        self.shared.writable.load(Ordering::Relaxed)
    }

    /// Total failed writes (records whose write failed).
    pub fn write_failures(&self) -> u64 {
        self.shared.write_failures.load(Ordering::Relaxed)
    }

    /// Waits for queued writes to finish and stops the writer thread, which
    /// releases the directory's lock; later appends fail with
    /// [`WalError::Closed`]. Drop does the same. Called from a [`Written`]
    /// callback it does not wait: the writer stops once back from it.
    pub fn close(&self) {
        self.shared.state().closing = true;
        self.shared.wake.notify_all();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle
            && handle.thread().id() != thread::current().id()
            && handle.join().is_err()
        {
            tracing::error!("write-ahead log: the writer thread panicked");
        }
    }

    /// fsyncs done so far.
    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// Makes the next `n` writes fail after writing half their bytes.
    #[cfg(test)]
    fn inject_write_failures(&self, n: u32) {
        self.shared.inject_failures.store(n, Ordering::Relaxed);
    }
}

// Shared between threads as `Arc<Wal>`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Wal>();
};

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("disk_bytes", &self.disk_bytes())
            .field("writable", &self.writable())
            .field("write_failures", &self.write_failures())
            .finish_non_exhaustive()
    }
}

/// The watermark saved in the `done` file; 0 (everything is read again)
/// when it is missing or corrupt.
fn read_done(path: &Path) -> Result<u64, WalError> {
    let mut bytes = Vec::with_capacity(DONE_LEN);
    match File::open(path).and_then(|f| f.take(DONE_LEN as u64 + 1).read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(WalError::io("read", path)(e)),
    }
    match decode_done(&bytes) {
        Some(watermark) => Ok(watermark),
        None => {
            tracing::warn!(
                file = %path.display(),
                "write-ahead log: the done file is corrupt; records already done may be sent again"
            );
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests;
