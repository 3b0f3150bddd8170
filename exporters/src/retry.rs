//! `retry_on_failure`: exponential backoff with jitter around one send,
//! honouring the delay a backend asks for (`Retry-After`, gRPC `RetryInfo`),
//! giving up after `max_elapsed_time` (0 = never). A permanent failure
//! ends as [`ExportError::Send`], a retryable one that retries did not
//! overcome as [`ExportError::Retryable`] (what a waiting sender is told).
//! Time comes from tokio, so tests run it on virtual time.

use std::future::Future;
use std::time::Duration;

use tern_config::RetryConfig;
use tern_core::component::ExportError;
use tokio::time::Instant;

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again, after `delay` if the backend asked for one.
    Retryable {
        /// What went wrong.
        message: String,
        /// The backend's requested delay.
        delay: Option<Duration>,
    },
    /// Will not succeed by retrying.
    Permanent(String),
}

/// The wait before attempt `n + 1`, without jitter.
fn base_interval(config: &RetryConfig, attempt: u32) -> Duration {
    let initial = config.initial_interval.0.as_secs_f64();
    let max = config.max_interval.0.as_secs_f64();
    let grown = initial * config.multiplier.powi(attempt.min(1000) as i32);
    Duration::from_secs_f64(grown.min(max))
}

fn jittered(config: &RetryConfig, base: Duration) -> Duration {
    let r = config.randomization_factor;
    let factor = 1.0 - r + 2.0 * r * fastrand::f64();
    base.mul_f64(factor)
}

/// Runs `attempt` until it succeeds, fails permanently, or retries run out.
pub async fn with_retry<T, F, Fut>(
    config: &RetryConfig,
    exporter: &str,
    mut attempt: F,
) -> Result<T, ExportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let mut n: u32 = 0;
    loop {
        let (message, asked) = match attempt().await {
            Ok(v) => return Ok(v),
            Err(Failure::Permanent(message)) => {
                return Err(ExportError::Send(format!(
                    "permanent error, not retried: {message}"
                )));
            }
            Err(Failure::Retryable { message, delay }) => (message, delay),
        };
        if !config.enabled {
            return Err(ExportError::Retryable(format!(
                "{message} (retry_on_failure is disabled)"
            )));
        }
        let backoff = jittered(config, base_interval(config, n));
        let wait = asked.map_or(backoff, |d| d.max(backoff));
        let max_elapsed = config.max_elapsed_time.0;
        if !max_elapsed.is_zero() && start.elapsed() + wait > max_elapsed {
            return Err(ExportError::Retryable(format!(
                "gave up after {} attempts over {:?}: {message}",
                n + 1,
                start.elapsed()
            )));
        }
        n += 1;
        tracing::warn!(exporter, attempt = n, wait = ?wait, error = %message, "export failed; will retry");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tern_config::GoDuration;

    fn config(initial_ms: u64, max_ms: u64, elapsed_ms: u64, jitter: f64) -> RetryConfig {
        RetryConfig {
            enabled: true,
            initial_interval: GoDuration(Duration::from_millis(initial_ms)),
            max_interval: GoDuration(Duration::from_millis(max_ms)),
            max_elapsed_time: GoDuration(Duration::from_millis(elapsed_ms)),
            multiplier: 2.0,
            randomization_factor: jitter,
        }
    }

    /// Records when each attempt ran (virtual time since start) and fails
    /// with `outcomes` in turn.
    async fn run(
        config: &RetryConfig,
        outcomes: Vec<Failure>,
    ) -> (Result<u32, ExportError>, Vec<Duration>) {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let outcomes = Arc::new(Mutex::new(outcomes.into_iter()));
        let t = times.clone();
        let result = with_retry(config, "test", move || {
            let t = t.clone();
            let outcomes = outcomes.clone();
            async move {
                t.lock().unwrap().push(start.elapsed());
                match outcomes.lock().unwrap().next() {
                    Some(f) => Err(f),
                    None => Ok(7),
                }
            }
        })
        .await;
        let times = times.lock().unwrap().clone();
        (result, times)
    }

    fn retryable(delay: Option<u64>) -> Failure {
        Failure::Retryable {
            message: "503".into(),
            delay: delay.map(Duration::from_millis),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_up_to_the_max() {
        let c = config(100, 500, 0, 0.0);
        let (r, times) = run(&c, vec![retryable(None); 5]).await;
        assert_eq!(r.unwrap(), 7);
        let ms: Vec<u128> = times.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 300, 700, 1200, 1700]);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_the_delay_the_backend_asks_for() {
        let c = config(100, 500, 0, 0.0);
        let (r, times) = run(&c, vec![retryable(Some(3000))]).await;
        assert!(r.is_ok());
        assert_eq!(times[1].as_millis(), 3000);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_the_randomization_factor() {
        let c = config(1000, 1000, 0, 0.5);
        let (_, times) = run(&c, vec![retryable(None); 50]).await;
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(500) && gap <= Duration::from_millis(1500),
                "{gap:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let c = config(100, 500, 0, 0.0);
        let (r, times) = run(&c, vec![Failure::Permanent("400 bad".into())]).await;
        assert_eq!(times.len(), 1);
        let e = r.unwrap_err();
        assert!(e.is_permanent());
        assert!(e.to_string().contains("400 bad"));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_elapsed_time() {
        let c = config(100, 100, 350, 0.0);
        let (r, times) = run(&c, vec![retryable(None); 100]).await;
        assert_eq!(times.len(), 4, "attempts at 0, 100, 200, 300 ms");
        let e = r.unwrap_err();
        assert!(!e.is_permanent());
        assert!(e.to_string().contains("gave up after 4 attempts"));
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_retry_fails_at_once() {
        let mut c = config(100, 100, 0, 0.0);
        c.enabled = false;
        let (r, times) = run(&c, vec![retryable(None)]).await;
        assert_eq!(times.len(), 1);
        assert!(r.is_err());
    }
}
