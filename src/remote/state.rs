//! What a remote source has fetched, recorded durably in its mirror
//! (`.whipstream-remote.json`, a name the watcher skips).
//!
//! One entry per object key (S3) or URL (HTTP): the version seen (ETag,
//! Last-Modified, size), the SHA-256 of its bytes, the mirror file it became
//! and the outcome. A version recorded is never downloaded again, whatever its
//! outcome: a refused object waits until it changes. An object deleted from
//! the source keeps its entry (marked gone): what it loaded stays loaded. The file is replaced
//! atomically (temporary file, fsync, rename) after the mirror file is in
//! place, so a crash between the two at worst downloads a version once more,
//! which the watcher then recognises by checksum: nothing is loaded twice.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = ".whipstream-remote.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fetched {
    /// Verified and put in the mirror; the watcher loads or rejects it.
    Mirrored,
    /// The same bytes as the version before: nothing new to load.
    Unchanged,
    /// Complete but not whole by its framing: in `rejected/` with its `.error`.
    Refused,
    /// Over the size cap: not downloaded; `rejected/NAME.error` says so.
    TooLarge,
}

/// One object's last version seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub size: u64,
    /// Of the bytes downloaded (empty when not downloaded).
    pub sha256: String,
    /// The mirror file's name.
    pub file: String,
    pub outcome: Fetched,
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// No longer listed by the source (deleted from the bucket) when last
    /// polled: said once in the log, nothing else changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    objects: BTreeMap<String, ObjectState>,
}

/// The record of one mirror.
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    saved: Saved,
}

impl State {
    /// Reads the record in `mirror`; none yet is an empty record. An
    /// unreadable record is set aside (`.whipstream-remote.json.bad`) with a
    /// warning and started again: objects are then downloaded again and
    /// recognised by checksum, not loaded twice.
    pub fn open(mirror: &Path) -> State {
        let path = mirror.join(FILE);
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let bad = mirror.join(format!("{FILE}.bad"));
                tracing::warn!(
                    "{}: unreadable ({e}); set aside as {} and started again",
                    path.display(),
                    bad.display()
                );
                let _ = std::fs::rename(&path, bad);
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        State { path, saved }
    }

    pub fn get(&self, key: &str) -> Option<&ObjectState> {
        self.saved.objects.get(key)
    }

    /// The keys recorded, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.saved.objects.keys().map(String::as_str)
    }

    /// Records `key`'s version and writes the record through.
    pub fn record(&mut self, key: &str, state: ObjectState) -> io::Result<()> {
        self.saved.objects.insert(key.to_string(), state);
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&self.saved).map_err(io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_survives_a_reopen_and_a_bad_one_is_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = State::open(tmp.path());
        assert!(s.get("a.jsonl.gz").is_none());
        let o = ObjectState {
            etag: Some("\"e1\"".into()),
            last_modified: None,
            size: 3,
            sha256: "ab".into(),
            file: "a.jsonl.gz".into(),
            outcome: Fetched::Mirrored,
            at: "2026-01-01T00:00:00Z".into(),
            gone: false,
        };
        s.record("a.jsonl.gz", o.clone()).unwrap();
        assert_eq!(State::open(tmp.path()).get("a.jsonl.gz"), Some(&o));

        std::fs::write(tmp.path().join(FILE), "{not json").unwrap();
        assert!(State::open(tmp.path()).get("a.jsonl.gz").is_none());
        assert!(tmp.path().join(format!("{FILE}.bad")).exists());
    }
}
