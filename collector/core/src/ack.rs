//! `sending_queue.wait_for_result`: a receiver that must answer only once
//! its data is exported ties an [`Ack`] to the request's [`Batch`]. The ack
//! travels with every copy and piece of the batch (fan-out copies, batches
//! a processor or an exporter queue merges it into, pieces it is split
//! into) and is settled when its last holder lets go: exporter workers
//! hold it through the export and record a failure in it; the receiver
//! awaits the outcome with [`Pending::outcome`]. A batch nobody waits on
//! carries no ack and costs nothing more.
//!
//! An ack can also call a function when it settles ([`Ack::on_settle`]):
//! a persistent queue ties one to each batch it logged, so the log learns
//! when the batch's export is over, whatever became of its copies.
//!
//! [`Batch`]: crate::pdata::Batch

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Why the export of a request that its sender waits on failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExportFailure {
    /// Retrying will not help (the backend refused the data for good).
    pub permanent: bool,
    /// What went wrong (the first failure recorded).
    pub message: String,
}

/// What settling an ack does with its outcome.
type Call = Box<dyn FnOnce(Result<(), ExportFailure>) + Send + Sync>;

/// Who learns the outcome.
enum Settle {
    /// A waiting sender ([`Pending`]).
    Tell(oneshot::Sender<Result<(), ExportFailure>>),
    /// A function ([`Ack::on_settle`]).
    Call(Call),
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Settle::Tell(_) => "Tell",
            Settle::Call(_) => "Call",
        })
    }
}

/// The outcome of one request, settled when its last copy is done.
#[derive(Debug)]
pub struct Ack {
    failure: Mutex<Option<ExportFailure>>,
    settle: Option<Settle>,
}

/// The receiver's side of an [`Ack`].
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<(), ExportFailure>>,
}

impl Ack {
    /// A new ack to tie to a batch, and what its sender awaits.
    pub fn new() -> (Arc<Ack>, Pending) {
        let (tx, rx) = oneshot::channel();
        (
            Arc::new(Ack {
                failure: Mutex::new(None),
                settle: Some(Settle::Tell(tx)),
            }),
            Pending { rx },
        )
    }

    /// An ack that calls `f` with the outcome when its last holder lets go.
    pub fn on_settle(
        f: impl FnOnce(Result<(), ExportFailure>) + Send + Sync + 'static,
    ) -> Arc<Ack> {
        Arc::new(Ack {
            failure: Mutex::new(None),
            settle: Some(Settle::Call(Box::new(f))),
        })
    }

    /// Records that a part of the request failed. The outcome is permanent
    /// when any part failed permanently (retrying the request cannot fix
    /// that part); the first message is kept, or the first permanent one.
    pub fn fail(&self, permanent: bool, message: &str) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match f.as_mut() {
            Some(old) if old.permanent || !permanent => {}
            _ => {
                *f = Some(ExportFailure {
                    permanent,
                    message: message.to_string(),
                })
            }
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        let failure = self
            .failure
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let outcome = failure.map_or(Ok(()), Err);
        match self.settle.take() {
            // The sender may have gone (client disconnected): nothing to tell.
            Some(Settle::Tell(tx)) => drop(tx.send(outcome)),
            Some(Settle::Call(f)) => f(outcome),
            None => {}
        }
    }
}

impl Pending {
    /// Waits until every copy of the request is exported or has failed.
    pub async fn outcome(self) -> Result<(), ExportFailure> {
        // The sender half is only dropped after sending.
        self.rx.await.unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_the_last_copy_is_done() {
        let (ack, pending) = Ack::new();
        let copy = ack.clone();
        drop(ack);
        let mut pending = Box::pin(pending.outcome());
        assert!(futures_poll(&mut pending).is_none(), "a copy is still held");
        drop(copy);
        assert_eq!(pending.await, Ok(()));
    }

    #[tokio::test]
    async fn a_permanent_failure_wins_over_retryable_ones() {
        let (ack, pending) = Ack::new();
        ack.fail(false, "503");
        ack.fail(true, "400 bad data");
        ack.fail(false, "timeout");
        drop(ack);
        assert_eq!(
            pending.outcome().await,
            Err(ExportFailure {
                permanent: true,
                message: "400 bad data".into()
            })
        );
        let (ack, pending) = Ack::new();
        ack.fail(false, "503");
        ack.fail(false, "timeout");
        drop(ack);
        assert_eq!(pending.outcome().await.unwrap_err().message, "503");
    }

    #[test]
    fn on_settle_calls_once_with_the_outcome_when_the_last_copy_goes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ack = Ack::on_settle({
            let seen = seen.clone();
            move |outcome| seen.lock().unwrap().push(outcome)
        });
        let copy = ack.clone();
        ack.fail(false, "503");
        drop(ack);
        assert!(seen.lock().unwrap().is_empty(), "a copy is still held");
        drop(copy);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].as_ref().unwrap_err().message, "503");
    }

    /// Polls once without waiting.
    fn futures_poll<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
