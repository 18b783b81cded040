//! Process plumbing: the async runtime, and the one stop of a run.
//!
//! A [`Stop`] is raised once, by SIGINT or SIGTERM ([`stop_on_signals`]) or by
//! the run itself when its flow ends; threads look at its flag, async tasks
//! await [`Stop::stopped`]. Nothing read is dropped by a stop: sources end as
//! their end would, and what was read is enriched and written.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::runtime::Runtime;
use tokio::sync::watch;

/// The stop of a run: a flag for threads, a channel for tasks.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Stop {
        Stop::new()
    }
}

impl Stop {
    pub fn new() -> Stop {
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Raises the stop (again is harmless).
    pub fn raise(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag, for threads and the line sources.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Completes once the stop is raised.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// The multi-threaded async runtime of a command.
pub fn runtime() -> io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Installs the SIGINT and SIGTERM handlers before returning (so a signal never
/// kills the process without its summary); the first signal raises `stop`.
pub fn stop_on_signals(runtime: &Runtime, stop: &Stop) -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _entered = runtime.enter();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let stop = stop.clone();
    runtime.spawn(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        tracing::info!("stop requested: draining");
        stop.raise();
    });
    Ok(())
}

/// Calls `on_hangup` at every SIGHUP until the stop.
pub fn on_hangups(
    runtime: &Runtime,
    stop: &Stop,
    on_hangup: impl Fn() + Send + 'static,
) -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _entered = runtime.enter();
    let mut hup = signal(SignalKind::hangup())?;
    let stopped = stop.stopped();
    runtime.spawn(async move {
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                Some(()) = hup.recv() => on_hangup(),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_stop_is_seen_by_threads_and_tasks() {
        let rt = runtime().unwrap();
        let stop = Stop::new();
        let waiting = rt.spawn(stop.stopped());
        assert!(!stop.is_raised());
        stop.raise();
        assert!(stop.flag().load(Ordering::SeqCst));
        rt.block_on(waiting).unwrap();
        // A stop raised before anyone waits is seen too.
        rt.block_on(stop.stopped());
    }
}
