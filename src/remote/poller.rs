//! The poller of one remote source: a thread of its own (with its own small
//! async runtime) that asks the source what is new every poll interval,
//! downloads it into the mirror, records what it did, and wakes the watcher.
//!
//! The first poll decides when the data set may be called ready (the
//! `synced` flag the daemon waits on before the watcher's first scan): once a
//! poll has gone through, or once one has failed while the store already has
//! snapshots (the daemon then serves what it has, says so in the log, and
//! keeps polling). A data set with an empty store stays unready until its
//! source answers: an empty answer would look like a real "no match".

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::fetch::FetchError;
use super::http::{Got, HttpSource};
use super::mirror::{versioned_name, Mirror, Staging};
use super::s3::S3Source;
use super::state::{Fetched, ObjectState, State};
use super::{ClientError, Limits, RemoteSource};
use crate::index::SharedIndex;
use crate::telemetry;
use crate::time::Timestamp;

/// Why a poller cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot create the mirror {}: {source}", path.display())]
    Mirror {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the download runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot start the poller: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running poller.
pub struct Poller {
    pub thread: JoinHandle<()>,
    /// Raised once the data set may be called ready (see the module doc).
    pub synced: Arc<AtomicBool>,
    /// A message polls at once instead of at the end of the interval (SIGHUP).
    pub poll_now: mpsc::Sender<()>,
}

enum Client {
    S3(S3Source),
    Http { client: HttpSource, name: String },
}

struct Remote {
    client: Client,
    sink: Sink,
}

/// Where transfers end: the mirror and its record.
struct Sink {
    dataset: String,
    source: RemoteSource,
    /// Every version of an HTTP source is a file of its own.
    versioned: bool,
    mirror: Mirror,
    state: State,
    limits: Limits,
}

/// What one poll did.
#[derive(Debug, Default)]
struct Polled {
    /// Files put in the mirror.
    mirrored: usize,
    /// Objects whose download failed (tried again at the next poll).
    failed: usize,
}

/// Starts polling `source` for data set `dataset` into the mirror directory
/// `mirror`; `wake` makes the watcher scan at once. Fails at once when the
/// source cannot be set up (e.g. an S3 configuration that does not build).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    dataset: &str,
    source: RemoteSource,
    mirror: &Path,
    limits: Limits,
    poll: Duration,
    index: SharedIndex,
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
) -> Result<Poller, SpawnError> {
    let client = match &source {
        RemoteSource::S3 { bucket, prefix } => Client::S3(S3Source::new(bucket, prefix, limits)?),
        RemoteSource::Http { url, name } => Client::Http {
            client: HttpSource::new(url, limits)?,
            name: name.clone(),
        },
    };
    let mirror = Mirror::open(mirror).map_err(|source| SpawnError::Mirror {
        path: mirror.to_path_buf(),
        source,
    })?;
    let mut remote = Remote {
        sink: Sink {
            dataset: dataset.to_string(),
            state: State::open(mirror.dir()),
            versioned: matches!(client, Client::Http { .. }),
            source,
            mirror,
            limits,
        },
        client,
    };
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let (poll_now, woken) = mpsc::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SpawnError::Runtime)?;
    let thread = std::thread::Builder::new()
        .name(format!("whipstream-remote-{dataset}"))
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let result = runtime.block_on(remote.poll(&stop));
                remote.sink.after_poll(result, &index, &flag, &wake);
                wait(&stop, &woken, poll);
            }
        })
        .map_err(SpawnError::Thread)?;
    Ok(Poller {
        thread,
        synced,
        poll_now,
    })
}

/// Waits `poll`, or less when woken (or stopped: the flag is looked at every
/// 50 ms). Wakes sent during a poll are one wake: the next poll serves them
/// all.
fn wait(stop: &AtomicBool, woken: &mpsc::Receiver<()>, poll: Duration) {
    let next = Instant::now() + poll;
    while !stop.load(Ordering::SeqCst) {
        let left = next.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match woken.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok(()) => {
                while woken.try_recv().is_ok() {}
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // No sender left (no SIGHUP handler): the interval alone.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(left.min(Duration::from_millis(50)))
            }
        }
    }
}

impl Remote {
    async fn poll(&mut self, stop: &AtomicBool) -> Result<Polled, FetchError> {
        match &self.client {
            Client::S3(s3) => self.sink.poll_s3(s3, stop).await,
            Client::Http { client, name } => self.sink.poll_http(client, name, stop).await,
        }
    }
}

impl Sink {
    fn after_poll(
        &self,
        result: Result<Polled, FetchError>,
        index: &SharedIndex,
        synced: &AtomicBool,
        wake: &mpsc::Sender<()>,
    ) {
        let ok = match result {
            Ok(polled) => {
                if polled.mirrored > 0 {
                    let _ = wake.send(());
                }
                polled.failed == 0
            }
            Err(FetchError::Stopped) => return,
            Err(e) => {
                tracing::warn!(dataset = %self.dataset, "{}: poll failed: {e}", self.source);
                false
            }
        };
        telemetry::remote_poll(&self.dataset, ok);
        if synced.load(Ordering::Acquire) {
            return;
        }
        if ok {
            synced.store(true, Ordering::Release);
        } else if index.load().snapshot_count() > 0 {
            tracing::warn!(
                dataset = %self.dataset,
                "{}: not reachable at start; serving the store's {} snapshot(s) and polling on",
                self.source,
                index.load().snapshot_count()
            );
            synced.store(true, Ordering::Release);
        }
    }

    async fn poll_s3(&mut self, s3: &S3Source, stop: &AtomicBool) -> Result<Polled, FetchError> {
        let mut polled = Polled::default();
        let listed = s3.list().await?;
        self.note_deleted(&listed)?;
        for object in listed {
            let meta = &object.meta;
            let etag = meta.e_tag.clone();
            let last_modified = Some(meta.last_modified.to_rfc3339());
            if let Some(last) = self.state.get(&object.name) {
                let same = match (&last.etag, &etag) {
                    (Some(a), Some(b)) => a == b,
                    _ => last.size == meta.size && last.last_modified == last_modified,
                };
                if same {
                    if last.gone {
                        // Put back as it was: nothing to fetch.
                        let mut back = last.clone();
                        back.gone = false;
                        self.state.record(&object.name, back)?;
                    }
                    continue;
                }
            }
            let (mirror, cap) = (&self.mirror, self.limits.max_bytes);
            let got = s3
                .download(&object, stop, || mirror.stage(&object.name, cap))
                .await;
            let version = Version {
                key: &object.name,
                name: object.name.clone(),
                etag,
                last_modified,
                size: meta.size,
            };
            match got {
                Ok(staging) => {
                    if self.settle(version, staging, true)? {
                        polled.mirrored += 1;
                    }
                }
                Err(e) => self.failed(version, e, &mut polled)?,
            }
        }
        Ok(polled)
    }

    /// Objects recorded but no longer listed: deleted from the bucket. What
    /// they loaded stays in the store (its history is append-only: a snapshot
    /// is never unloaded) and their mirror file stays; each is said once at
    /// info level and marked gone, so that neither a later poll nor a restart
    /// says it again. Nothing is downloaded or rejected for them.
    fn note_deleted(&mut self, listed: &[super::s3::Listed]) -> Result<(), FetchError> {
        let listed: std::collections::BTreeSet<&str> =
            listed.iter().map(|o| o.name.as_str()).collect();
        let deleted: Vec<String> = self
            .state
            .keys()
            .filter(|k| !listed.contains(k))
            .filter(|k| self.state.get(k).is_some_and(|o| !o.gone))
            .map(str::to_string)
            .collect();
        for key in deleted {
            let Some(mut object) = self.state.get(&key).cloned() else {
                continue;
            };
            if object.outcome == Fetched::Mirrored {
                tracing::info!(
                    dataset = %self.dataset,
                    "{}: {key} was deleted from the bucket; the snapshot it held stays in the store",
                    self.source
                );
            }
            object.gone = true;
            self.state.record(&key, object)?;
            telemetry::remote_object(&self.dataset, "deleted");
        }
        Ok(())
    }

    async fn poll_http(
        &mut self,
        client: &HttpSource,
        name: &str,
        stop: &AtomicBool,
    ) -> Result<Polled, FetchError> {
        let key = self.source.to_string();
        let last = self.state.get(&key).cloned();
        let (mirror, cap) = (&self.mirror, self.limits.max_bytes);
        let got = client
            .get(last.as_ref(), stop, || mirror.stage(name, cap))
            .await;
        let mut polled = Polled::default();
        match got {
            Ok(Got::NotModified) => {
                telemetry::remote_object(&self.dataset, "unchanged");
            }
            Ok(Got::Body {
                staging,
                etag,
                last_modified,
                length_known,
            }) => {
                let version = Version {
                    key: &key,
                    name: name.to_string(),
                    etag,
                    last_modified,
                    size: staging.bytes(),
                };
                if self.settle(version, *staging, length_known)? {
                    polled.mirrored += 1;
                }
            }
            Err(e) => {
                let version = Version {
                    key: &key,
                    name: name.to_string(),
                    etag: None,
                    last_modified: None,
                    size: 0,
                };
                self.failed(version, e, &mut polled)?;
            }
        }
        Ok(polled)
    }

    /// A complete transfer: unchanged, refused, or verified and renamed into
    /// the mirror (`true`). An HTTP version is put in under a name tagged with
    /// its checksum, so that every version stays a file of its own. A body
    /// that is not whole is refused and recorded when its length was
    /// announced (the object is broken), and tried again at the next poll when
    /// it was not (the connection may have been cut).
    fn settle(
        &mut self,
        version: Version<'_>,
        staging: Staging,
        length_known: bool,
    ) -> Result<bool, FetchError> {
        let http = self.versioned;
        let (staged, broken) = staging.finish()?;
        let last = self.state.get(version.key);
        if let Some(last) = last.filter(|l| http && l.sha256 == staged.sha256) {
            // The server sent the same bytes again (no ETag or
            // Last-Modified to ask with): nothing new.
            let mut same = last.clone();
            same.etag = version.etag;
            same.last_modified = version.last_modified;
            self.state.record(version.key, same)?;
            telemetry::remote_object(&self.dataset, "unchanged");
            return Ok(false);
        }
        let file = if http {
            versioned_name(&version.name, &staged.sha256[..12])
        } else {
            version.name.clone()
        };
        let sha256 = staged.sha256.clone();
        let outcome = match broken {
            Some(reason) if !length_known => {
                tracing::warn!(
                    dataset = %self.dataset,
                    "{}: {}: not whole ({reason}) and no length announced; tried again at the next poll",
                    self.source,
                    version.name
                );
                telemetry::remote_object(&self.dataset, "failed");
                return Ok(false);
            }
            Some(reason) => {
                let reason = format!("{}: {} as downloaded: {reason}", self.source, version.name);
                let to = self.mirror.refuse(staged, &file, &reason)?;
                tracing::error!(dataset = %self.dataset, "refused {} (moved to {}): {reason}", version.name, to.display());
                telemetry::remote_object(&self.dataset, "refused");
                telemetry::snapshot_ingested(&self.dataset, "rejected", 0.0);
                Fetched::Refused
            }
            None => {
                let bytes = staged.bytes;
                let to = self.mirror.install(staged, &file)?;
                tracing::info!(
                    dataset = %self.dataset,
                    "{}: {} downloaded ({bytes} bytes), whole, now {}",
                    self.source,
                    version.name,
                    to.display()
                );
                telemetry::remote_object(&self.dataset, "mirrored");
                Fetched::Mirrored
            }
        };
        self.record(version, sha256, file, outcome)?;
        Ok(outcome == Fetched::Mirrored)
    }

    /// A download that did not complete: over the cap (recorded, refused until
    /// it changes) or a passing failure (tried again at the next poll). A
    /// failure of the mirror itself (disk) fails the poll.
    fn failed(
        &mut self,
        version: Version<'_>,
        e: FetchError,
        polled: &mut Polled,
    ) -> Result<(), FetchError> {
        match e {
            FetchError::TooLarge { .. } => {
                let reason = format!("{}: {}: {e}", self.source, version.name);
                self.mirror.refuse_unfetched(&version.name, &reason)?;
                tracing::error!(dataset = %self.dataset, "refused {reason}");
                telemetry::remote_object(&self.dataset, "too_large");
                telemetry::snapshot_ingested(&self.dataset, "rejected", 0.0);
                let file = version.name.clone();
                self.record(version, String::new(), file, Fetched::TooLarge)
            }
            FetchError::Stopped | FetchError::Io(_) => Err(e),
            e => {
                tracing::warn!(
                    dataset = %self.dataset,
                    "{}: {}: {e}; tried again at the next poll",
                    self.source,
                    version.name
                );
                telemetry::remote_object(&self.dataset, "failed");
                polled.failed += 1;
                Ok(())
            }
        }
    }

    fn record(
        &mut self,
        version: Version<'_>,
        sha256: String,
        file: String,
        outcome: Fetched,
    ) -> Result<(), FetchError> {
        let state = ObjectState {
            etag: version.etag,
            last_modified: version.last_modified,
            size: version.size,
            sha256,
            file,
            outcome,
            at: Timestamp::now().to_rfc3339(),
            gone: false,
        };
        Ok(self.state.record(version.key, state)?)
    }
}

/// The version of an object a transfer was for.
struct Version<'a> {
    /// The state's key: the object's name (S3) or the URL (HTTP).
    key: &'a str,
    /// The object's file name.
    name: String,
    etag: Option<String>,
    last_modified: Option<String>,
    size: u64,
}
