//! One download: why it failed, and the retries with backoff around it.
//!
//! A failure is either *passing* (the network, the server, a transfer that
//! ended short of its announced length: tried again, first within the poll
//! with backoff, then at the next poll) or about the *object* (too large for
//! the cap: recorded and not tried again until the object changes).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Limits;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The network or the server; worth another try.
    #[error("{0}")]
    Transport(String),
    /// The server answered with an error status that another try within the
    /// poll will not change (e.g. 404, 403); the next poll asks again.
    #[error("{0}")]
    Refused(String),
    /// The body ended before the length the server announced.
    #[error("the transfer ended after {got} of {want} bytes")]
    Short { got: u64, want: u64 },
    /// Over the size cap: not downloaded (further).
    #[error("larger than the size cap of {cap} bytes")]
    TooLarge { cap: u64 },
    /// The local staging file (disk full, permissions).
    #[error("staging file: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon is stopping.
    #[error("stopped")]
    Stopped,
}

impl FetchError {
    /// Whether another try within this poll may succeed.
    fn retryable(&self) -> bool {
        matches!(self, FetchError::Transport(_) | FetchError::Short { .. })
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `limits.retries`
/// retries are spent; waits `backoff`, doubling, between tries. Each attempt is
/// bounded by `limits.timeout`. Returns early with [`FetchError::Stopped`] when
/// `stop` is raised.
pub async fn with_retries<T, F, Fut>(
    limits: &Limits,
    stop: &AtomicBool,
    what: &str,
    mut attempt: F,
) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    let mut pause = limits.backoff;
    let mut tries = 0;
    loop {
        let result = tokio::select! {
            r = tokio::time::timeout(limits.timeout, attempt()) => r.unwrap_or_else(|_| {
                Err(FetchError::Transport(format!("timed out after {:?}", limits.timeout)))
            }),
            () = stopped(stop) => Err(FetchError::Stopped),
        };
        match result {
            Err(e) if e.retryable() && tries < limits.retries => {
                tries += 1;
                tracing::warn!(
                    "{what}: {e}; trying again in {pause:?} ({tries}/{})",
                    limits.retries
                );
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stopped(stop) => return Err(FetchError::Stopped),
                }
                pause = pause.saturating_mul(2);
            }
            other => return other,
        }
    }
}

/// Resolves once `stop` is raised (looked at every 100 ms).
pub async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn quick() -> Limits {
        Limits {
            backoff: Duration::from_millis(1),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn passing_failures_are_retried_and_others_are_not() {
        let stop = AtomicBool::new(false);
        let calls = &AtomicU32::new(0);
        let r = with_retries(&quick(), &stop, "t", || async move {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(FetchError::Transport("reset".into())),
                1 => Err(FetchError::Short { got: 1, want: 2 }),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        // Given up after the retries.
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = with_retries(&quick(), &stop, "t", || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(FetchError::Transport("down".into()))
        })
        .await;
        assert!(matches!(r, Err(FetchError::Transport(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // Not retried: the answer will not change within the poll.
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = with_retries(&quick(), &stop, "t", || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(FetchError::TooLarge { cap: 1 })
        })
        .await;
        assert!(matches!(r, Err(FetchError::TooLarge { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
