//! The log's writer thread: takes every pending append at once, writes them
//! with one vectored write per segment (each record's header, then its
//! payload as the caller gave it, not copied) and at most one fsync per segment, then
//! calls their callbacks (group commit). Between groups, at most every
//! [`MAINTENANCE_EVERY`], it saves the watermark to the `done` file and
//! deletes the segments whose records are all done. A failed write fails its
//! whole group, cuts the segment back to its last good length and marks the
//! log unwritable until a later write succeeds.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::format::{MAX_PAYLOAD, encode_done, record_header, record_len, segment_name};
use super::{Pending, Shared, WalError, WalOptions, Written};

/// The most often the watermark is saved and done segments deleted.
const MAINTENANCE_EVERY: Duration = Duration::from_millis(50);

/// A segment no longer written to.
pub(super) struct ClosedSegment {
    pub path: PathBuf,
    pub len: u64,
    /// The highest seq in it (`None`: no good record).
    pub max_seq: Option<u64>,
}

/// The segment being written.
struct Segment {
    file: File,
    path: PathBuf,
    /// Bytes written successfully: the file is cut back to this after a
    /// failed write.
    len: u64,
    max_seq: Option<u64>,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    options: WalOptions,
    current: Option<Segment>,
    /// Oldest first.
    closed: Vec<ClosedSegment>,
    next_segment: u64,
    done_file: Option<File>,
    /// The watermark in the `done` file.
    persisted: u64,
    /// The last failure to save the watermark was logged.
    done_failure_logged: bool,
    last_maintenance: Option<Instant>,
    /// A segment was closed since the last maintenance.
    rotated: bool,
    /// Held (and so the directory locked) until the thread ends.
    _lock: File,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        dir: PathBuf,
        options: WalOptions,
        closed: Vec<ClosedSegment>,
        next_segment: u64,
        persisted: u64,
        lock: File,
    ) -> Self {
        Writer {
            shared,
            dir,
            options,
            current: None,
            closed,
            next_segment,
            done_file: None,
            persisted,
            done_failure_logged: false,
            last_maintenance: None,
            rotated: false,
            _lock: lock,
        }
    }

    /// The thread's body: until closed, writes what is pending and keeps the
    /// watermark and segments up to date.
    pub(super) fn run(mut self) {
        // The done file is written once now, so that its block is taken
        // while there is room: saving it later overwrites in place and
        // needs no new space, even on a full disk (where saving it is what
        // lets delivered segments go and frees room).
        let persisted = self.persisted;
        self.save_watermark(persisted);
        loop {
            let (batch, closing) = self.wait_for_work();
            if !batch.is_empty() {
                self.write_batch(batch);
            }
            if closing {
                self.finish();
                return;
            }
            self.maintain(false);
        }
    }

    /// Time left before maintenance may run again.
    fn maintenance_wait(&self) -> Duration {
        self.last_maintenance.map_or(Duration::ZERO, |t| {
            MAINTENANCE_EVERY.saturating_sub(t.elapsed())
        })
    }

    /// Waits until something is pending, the log is closing or maintenance
    /// is due, and takes what is pending.
    fn wait_for_work(&self) -> (Vec<Pending>, bool) {
        let mut state = self.shared.state();
        while state.pending.is_empty() && !state.closing {
            if state.dirty || self.rotated {
                let wait = self.maintenance_wait();
                if wait.is_zero() {
                    break;
                }
                state = self
                    .shared
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            } else {
                state = self
                    .shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        (std::mem::take(&mut state.pending), state.closing)
    }

    /// Writes `batch` (in seq order), one chunk per segment it goes into, and
    /// calls the callbacks.
    fn write_batch(&mut self, batch: Vec<Pending>) {
        let mut records = batch.into_iter().peekable();
        while let Some(first) = records.next() {
            if first.payload.len() > MAX_PAYLOAD {
                let error = Arc::new(WalError::TooLarge(first.payload.len()));
                self.forget(&[first.seq]);
                call(first.written, Err(error));
                continue;
            }
            let mut size = record_len(first.payload.len());
            let segment = match self.segment_for(size) {
                Ok(segment) => segment,
                Err(e) => {
                    self.fail(std::iter::once(first).chain(records), e);
                    return;
                }
            };
            let room = self.options.segment_bytes.saturating_sub(segment.len);
            let mut chunk = vec![first];
            while let Some(next) = records.next_if(|next| {
                next.payload.len() <= MAX_PAYLOAD && size + record_len(next.payload.len()) <= room
            }) {
                size += record_len(next.payload.len());
                chunk.push(next);
            }
            match self.write_chunk(segment, &chunk, size) {
                Ok(()) => {
                    if !self.shared.writable.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            dir = %self.dir.display(),
                            "write-ahead log: writes succeed again; data is accepted"
                        );
                    }
                    for record in chunk {
                        call(record.written, Ok(()));
                    }
                }
                Err(e) => {
                    self.fail(chunk.into_iter().chain(records), e);
                    return;
                }
            }
        }
    }

    /// The segment to write a record of `size` bytes to: the current one
    /// while it is empty or has room, else a new one.
    fn segment_for(&mut self, size: u64) -> Result<Segment, WalError> {
        if let Some(current) = self.current.take() {
            if current.len == 0 || current.len + size <= self.options.segment_bytes {
                return Ok(current);
            }
            self.close(current.path, current.len, current.max_seq);
        }
        let path = self.dir.join(segment_name(self.next_segment));
        self.next_segment += 1;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(WalError::io("create segment", &path))?;
        if self.options.fsync
            && let Err(e) = File::open(&self.dir).and_then(|dir| self.shared.sync(&dir))
        {
            // The new file may not survive a power loss: leave it empty.
            self.close(path, 0, None);
            return Err(WalError::io("fsync directory", &self.dir)(e));
        }
        Ok(Segment {
            file,
            path,
            len: 0,
            max_seq: None,
        })
    }

    /// Adds a segment to the closed ones, to be deleted once all done.
    fn close(&mut self, path: PathBuf, len: u64, max_seq: Option<u64>) {
        self.closed.push(ClosedSegment { path, len, max_seq });
        self.rotated = true;
    }

    /// Writes `chunk` (`size` bytes encoded) to `segment` with one write and
    /// at most one fsync, keeping it as the current segment; on failure cuts
    /// it back to its last good length and closes it (unless it is empty),
    /// or closes it as it is when the cut fails too.
    fn write_chunk(
        &mut self,
        mut segment: Segment,
        chunk: &[Pending],
        size: u64,
    ) -> Result<(), WalError> {
        let headers: Vec<_> = chunk
            .iter()
            .map(|record| record_header(record.seq, &record.payload))
            .collect();
        let mut slices: Vec<IoSlice<'_>> = headers
            .iter()
            .zip(chunk)
            .flat_map(|(header, record)| [IoSlice::new(header), IoSlice::new(&record.payload)])
            .collect();
        let result = self
            .shared
            .write_all(&mut segment.file, &mut slices)
            .and_then(|()| {
                if self.options.fsync {
                    self.shared.sync(&segment.file)
                } else {
                    Ok(())
                }
            });
        let Err(e) = result else {
            segment.len += size;
            segment.max_seq = segment.max_seq.max(chunk.last().map(|r| r.seq));
            self.shared.disk_bytes.fetch_add(size, Ordering::Relaxed);
            self.current = Some(segment);
            return Ok(());
        };
        let error = WalError::io("write segment", &segment.path)(e);
        let good = segment.len;
        let cut = segment
            .file
            .set_len(good)
            .and_then(|()| segment.file.seek(SeekFrom::Start(good)));
        match cut {
            // An empty segment stays current; one holding records is closed,
            // so that its space comes back once they are delivered (with a
            // full disk, that is how room is made again).
            Ok(_) if good == 0 => self.current = Some(segment),
            Ok(_) => self.close(segment.path, good, segment.max_seq),
            Err(e) => {
                tracing::warn!(
                    file = %segment.path.display(),
                    error = %e,
                    "write-ahead log: cannot cut a failed write off a segment; starting a new one"
                );
                let on_disk = segment.file.metadata().map_or(good, |m| m.len());
                self.shared
                    .disk_bytes
                    .fetch_add(on_disk.saturating_sub(good), Ordering::Relaxed);
                self.close(segment.path, on_disk, segment.max_seq);
            }
        }
        Err(error)
    }

    /// Fails `records`: counts them, counts them as done, marks the log
    /// unwritable and calls their callbacks with `error`.
    fn fail(&mut self, records: impl Iterator<Item = Pending>, error: WalError) {
        let records: Vec<Pending> = records.collect();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        self.forget(&seqs);
        self.shared
            .write_failures
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        if self.shared.writable.swap(false, Ordering::Relaxed) {
            tracing::error!(
                dir = %self.dir.display(),
                error = %error,
                "write-ahead log: write failed; data is refused until the disk has room"
            );
        }
        let error = Arc::new(error);
        for record in records {
            call(record.written, Err(Arc::clone(&error)));
        }
    }

    /// Counts `seqs`, which will never be on disk, as done.
    fn forget(&self, seqs: &[u64]) {
        let mut state = self.shared.state();
        for seq in seqs {
            state.outstanding.remove(seq);
        }
        state.dirty = true;
    }

    /// Saves the watermark when it moved and deletes the closed segments
    /// whose records are all below it. Unless `force`, only when due and at
    /// most every [`MAINTENANCE_EVERY`]. Nothing after a freeze.
    fn maintain(&mut self, force: bool) {
        if !force && !self.maintenance_wait().is_zero() {
            return;
        }
        let watermark = {
            let mut state = self.shared.state();
            if !force && !state.dirty && !self.rotated {
                return;
            }
            state.dirty = false;
            state.watermark()
        };
        self.rotated = false;
        self.last_maintenance = Some(Instant::now());
        // Frozen, `done` takes no new marks: what was marked before is
        // still saved, the rest stays for the next open.
        if watermark != self.persisted && self.save_watermark(watermark) {
            self.persisted = watermark;
        }
        // Only what the done file covers is deleted, so that the next open
        // continues seqs after it even when no segment is left.
        let persisted = self.persisted;
        let mut deleted = 0;
        self.closed.retain(|segment| {
            if segment.max_seq.is_some_and(|seq| seq >= persisted) {
                return true;
            }
            match std::fs::remove_file(&segment.path) {
                Ok(()) => deleted += segment.len,
                Err(e) if e.kind() == io::ErrorKind::NotFound => deleted += segment.len,
                Err(e) => tracing::warn!(
                    file = %segment.path.display(),
                    error = %e,
                    "write-ahead log: cannot delete a segment whose records are all done; it is read again at the next open"
                ),
            }
            false
        });
        self.shared.disk_bytes.fetch_sub(deleted, Ordering::Relaxed);
    }

    /// Overwrites the `done` file with `watermark` (no fsync: a lost update
    /// only means records are sent again).
    fn save_watermark(&mut self, watermark: u64) -> bool {
        let path = self.dir.join("done");
        let result = match &mut self.done_file {
            Some(file) => Ok(file),
            None => OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map(|file| self.done_file.insert(file)),
        }
        .and_then(|file| {
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&encode_done(watermark))
        });
        match result {
            Ok(()) => {
                self.done_failure_logged = false;
                true
            }
            Err(e) => {
                if !self.done_failure_logged {
                    self.done_failure_logged = true;
                    tracing::warn!(
                        file = %path.display(),
                        error = %e,
                        "write-ahead log: cannot save which records are done; they are kept until it can"
                    );
                }
                false
            }
        }
    }

    /// At close: the watermark is saved, and the current segment too is
    /// deleted when all its records are done (frozen or not: a frozen log
    /// took no done marks since, so what it saves covers only records
    /// delivered before).
    fn finish(&mut self) {
        if let Some(current) = self.current.take() {
            self.close(current.path, current.len, current.max_seq);
        }
        self.maintain(true);
    }
}

impl Shared {
    /// Writes all of `slices`, in order, with as few `writev` calls as
    /// the kernel allows; in tests, an injected failure writes half of it
    /// and fails.
    fn write_all(&self, file: &mut File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        #[cfg(test)]
        if self
            .inject_failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
        {
            let all: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
            file.write_all(&all[..all.len() / 2])?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected: no space left on device",
            ));
        }
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// fsyncs `file` (counted in tests).
    fn sync(&self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        self.syncs.fetch_add(1, Ordering::Relaxed);
        file.sync_data()
    }
}

/// Calls a callback; a panic in it is logged and does not stop the writer.
fn call(written: Written, result: Result<(), Arc<WalError>>) {
    if panic::catch_unwind(AssertUnwindSafe(|| written(result))).is_err() {
        tracing::error!("write-ahead log: a write callback panicked");
    }
}
