//! Remote snapshot sources: a data set watched at `s3://bucket/prefix/` or at
//! `http(s)://host/path/file.mmdb`, kept current by downloading new objects.
//!
//! A remote source never loads anything itself. Its [`poller`] downloads each
//! new object (or new version of the URL) into a hidden staging file of a local
//! *mirror* directory, checks it is whole (the length announced, the gzip or
//! MaxMind DB framing), and renames it into the mirror, which the ordinary
//! [`crate::ingest::Watcher`] watches: settle, load, recognise by checksum,
//! reject to `rejected/` with a `.error` are the watched directory's, written
//! once. Hence the invariants:
//!
//! - a half-downloaded object is never in the mirror under a loadable name
//!   (only a complete, verified file is renamed in);
//! - what was fetched is recorded durably ([`state`]) per object: its key, its
//!   ETag or checksum and the outcome, so a restart downloads and loads nothing
//!   twice, and an object refused (broken framing, over the size cap) is not
//!   tried again until it changes;
//! - downloads run on their own thread and runtime, bounded by a size cap, a
//!   timeout and retries with backoff: they never hold up enrichment or lookups.
//!
//! The mirror of a data set whose store is `DIR` is the directory `DIR.mirror`
//! beside it (a store's own directory holds only the store's files).

pub mod fetch;
pub mod http;
pub mod mirror;
pub mod poller;
pub mod s3;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::load::is_snapshot_name;

/// Why a watch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("{0:?}: expected s3://BUCKET/PREFIX/")]
    NoBucket(String),
    #[error("{spec:?}: {reason}")]
    BadUrl { spec: String, reason: String },
    #[error(
        "{0:?}: the URL must name a snapshot file (*.jsonl, *.json, optionally .gz, or *.mmdb)"
    )]
    NotASnapshotName(String),
    #[error("{spec:?}: unknown scheme {scheme:?} (expected s3, http, https or a directory)")]
    UnknownScheme { spec: String, scheme: String },
}

/// Why a remote source's client cannot be set up (e.g. an S3 configuration
/// from the environment that does not build).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("s3://{bucket}/{prefix}: {source}")]
    S3 {
        bucket: String,
        prefix: String,
        #[source]
        source: object_store::Error,
    },
}

/// What a data set's `watch` names: a local directory or a remote source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSource {
    Dir(PathBuf),
    Remote(RemoteSource),
}

/// A remote place snapshots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSource {
    /// The objects directly under `prefix` (empty, or ending in `/`) of an S3
    /// bucket, as a watched directory's files.
    S3 { bucket: String, prefix: String },
    /// One URL whose every new version is a snapshot; `name` is its file name
    /// (the last path segment), which says its format.
    Http { url: String, name: String },
}

impl WatchSource {
    /// `s3://bucket[/prefix/]`, `http(s)://host/path/NAME` or a directory.
    ///
    /// This is the one place a watch is told apart: flags (`--watch
    /// NAME=WHERE`) and the file (`watch = "WHERE"`) both come here.
    pub fn parse(spec: &str) -> Result<WatchSource, WatchError> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(WatchError::NoBucket(spec.to_string()));
            }
            let mut prefix = prefix.trim_matches('/').to_string();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            return Ok(WatchSource::Remote(RemoteSource::S3 {
                bucket: bucket.to_string(),
                prefix,
            }));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            let url = reqwest::Url::parse(spec).map_err(|e| WatchError::BadUrl {
                spec: spec.to_string(),
                reason: e.to_string(),
            })?;
            let name = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_string();
            if !is_snapshot_name(&name) {
                return Err(WatchError::NotASnapshotName(spec.to_string()));
            }
            return Ok(WatchSource::Remote(RemoteSource::Http {
                url: url.to_string(),
                name,
            }));
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            return Err(WatchError::UnknownScheme {
                spec: spec.to_string(),
                scheme: scheme.to_string(),
            });
        }
        Ok(WatchSource::Dir(PathBuf::from(spec)))
    }

    /// The directory the ingest watcher scans: the directory itself, or the
    /// remote source's mirror beside the store.
    pub fn local_dir(&self, store: &Path) -> PathBuf {
        match self {
            WatchSource::Dir(dir) => dir.clone(),
            WatchSource::Remote(_) => mirror_dir(store),
        }
    }
}

impl std::fmt::Display for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteSource::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            RemoteSource::Http { url, .. } => f.write_str(url),
        }
    }
}

/// `DIR.mirror` beside the store `DIR`.
pub fn mirror_dir(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".mirror");
    store.with_file_name(name)
}

/// Makes ring the process's TLS provider, before any client is built.
///
/// reqwest and object_store are built with rustls but without a bundled
/// provider (their default, aws-lc-rs, added 1.5 MB to the binary and a
/// second C library to the build); rustls then takes the process default,
/// which this installs. Idempotent: a provider already installed (by an
/// earlier call) is kept.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only when a provider is installed already: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Objects larger than this are refused by default (4 GiB).
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;
/// Seconds one request may take by default, from its start to its last byte.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 600;
/// Retries of a failed transfer within a poll by default.
pub const DEFAULT_RETRIES: u32 = 3;
/// Seconds before the first retry by default.
pub const DEFAULT_BACKOFF_SECONDS: u64 = 1;

/// How far a download may go (`[ingest] download_*`, see
/// [`crate::config::sections::IngestSection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Objects larger than this are refused (recorded, not retried until they change).
    pub max_bytes: u64,
    /// One request, from its start to its last byte.
    pub timeout: Duration,
    /// Attempts after the first when a transfer fails.
    pub retries: u32,
    /// The pause before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            retries: DEFAULT_RETRIES,
            backoff: Duration::from_secs(DEFAULT_BACKOFF_SECONDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_specs_are_told_apart() {
        assert_eq!(
            WatchSource::parse("/var/in").unwrap(),
            WatchSource::Dir("/var/in".into())
        );
        assert_eq!(
            WatchSource::parse("s3://geo/snapshots").unwrap(),
            WatchSource::Remote(RemoteSource::S3 {
                bucket: "geo".into(),
                prefix: "snapshots/".into()
            })
        );
        assert_eq!(
            WatchSource::parse("s3://geo").unwrap(),
            WatchSource::Remote(RemoteSource::S3 {
                bucket: "geo".into(),
                prefix: String::new()
            })
        );
        let WatchSource::Remote(RemoteSource::Http { name, .. }) =
            WatchSource::parse("https://example.org/db/GeoLite2-City.mmdb").unwrap()
        else {
            panic!("not http")
        };
        assert_eq!(name, "GeoLite2-City.mmdb");
        for bad in [
            "s3:///x",
            "https://example.org/",
            "https://example.org/index.html",
            "ftp://example.org/a.mmdb",
        ] {
            assert!(WatchSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mirror_is_beside_the_store() {
        assert_eq!(
            mirror_dir(Path::new("/var/lib/w/geo")),
            PathBuf::from("/var/lib/w/geo.mirror")
        );
        assert_eq!(
            mirror_dir(Path::new("/var/lib/w/geo/")),
            PathBuf::from("/var/lib/w/geo.mirror")
        );
    }
}
