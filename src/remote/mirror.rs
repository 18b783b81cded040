//! The local mirror of a remote source: the directory the ingest watcher
//! scans, and the only way files get into it.
//!
//! A download is written to a hidden staging file in the mirror (`.part-NAME`,
//! a name the watcher skips, on the same file system so the final rename is
//! atomic), counted against the size cap and hashed as it comes. Once the
//! transfer is complete it is checked whole by its own framing (a gzip stream
//! to its trailer, a MaxMind DB with its metadata), synced, and renamed to its
//! loadable name: the watcher sees either nothing or the whole file. A staging
//! file that is dropped unfinished is removed.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::fetch::FetchError;

/// A data set's mirror directory.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
}

/// A download in progress.
pub struct Staging {
    path: PathBuf,
    file: Option<io::BufWriter<File>>,
    bytes: u64,
    cap: u64,
    sha: Sha256,
}

/// A complete download, not yet in the mirror.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    pub bytes: u64,
    /// SHA-256 of the bytes as downloaded (hex).
    pub sha256: String,
}

impl Mirror {
    /// Creates the directory if needed; staging files left by a process that
    /// was killed mid-download are removed.
    pub fn open(dir: &Path) -> io::Result<Mirror> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".part-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Mirror {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new staging file for the object that will be called `name`.
    pub fn stage(&self, name: &str, cap: u64) -> io::Result<Staging> {
        let path = self.dir.join(format!(".part-{name}"));
        let file = File::create(&path)?;
        Ok(Staging {
            path,
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            bytes: 0,
            cap,
            sha: Sha256::new(),
        })
    }

    /// Renames a verified download to `name` in the mirror (replacing an
    /// older version of the same name) and syncs the directory.
    pub fn install(&self, mut staged: Staged, name: &str) -> io::Result<PathBuf> {
        let to = self.dir.join(name);
        std::fs::rename(std::mem::take(&mut staged.path), &to)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(to)
    }

    /// Moves a download that is complete but not whole by its framing to
    /// `rejected/` beside its `.error`, as the watcher does with a file the
    /// load rules refuse.
    pub fn refuse(&self, mut staged: Staged, name: &str, reason: &str) -> io::Result<PathBuf> {
        let from = std::mem::take(&mut staged.path);
        crate::ingest::reject_as(&self.dir, &from, name.as_ref(), reason)
    }

    /// Records an object refused without a download (over the size cap): only
    /// `rejected/NAME.error` says why.
    pub fn refuse_unfetched(&self, name: &str, reason: &str) -> io::Result<PathBuf> {
        let rejected = self.dir.join("rejected");
        std::fs::create_dir_all(&rejected)?;
        let to = rejected.join(format!("{name}.error"));
        std::fs::write(&to, format!("{reason}\n"))?;
        Ok(to)
    }
}

impl Staging {
    /// Appends a chunk; refuses to go past the cap.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.cap {
            return Err(FetchError::TooLarge { cap: self.cap });
        }
        self.sha.update(chunk);
        match self.file.as_mut() {
            Some(f) => Ok(f.write_all(chunk)?),
            None => Err(FetchError::Io(io::Error::other("staging file closed"))),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ends the transfer: flushed, synced, and checked whole by its framing.
    /// Returns the download and, when it is not whole, why (the caller then
    /// refuses it, see [`Mirror::refuse`]).
    pub fn finish(mut self) -> io::Result<(Staged, Option<String>)> {
        let Some(file) = self.file.take() else {
            return Err(io::Error::other("staging file closed"));
        };
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let staged = Staged {
            path: std::mem::take(&mut self.path),
            bytes: self.bytes,
            sha256: hex(&std::mem::take(&mut self.sha).finalize()),
        };
        let broken = not_whole(&staged.path);
        Ok((staged, broken))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Unfinished: never left behind (finish takes the path).
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Neither installed nor refused (both take the path).
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why the staging file at `path` (its name ends as the object's) is not
/// whole by its own framing, or `None`: the checks the watcher makes of a
/// settled file. Content that is whole but wrong (a corrupt gzip, bad lines)
/// is left to the load, which rejects it with the position and the rule.
fn not_whole(path: &Path) -> Option<String> {
    if let Some(reason) = crate::ingest::framing_incomplete(path) {
        return Some(reason);
    }
    match crate::snapshot::content_sha256(path) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Some(format!("the gzip stream ends early ({e})"))
        }
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `NAME` with a version tag before its extensions: `GeoLite2-City.mmdb` ->
/// `GeoLite2-City.TAG.mmdb` (the format is still told by the name's end).
pub fn versioned_name(name: &str, tag: &str) -> String {
    match name.split_once('.') {
        Some((stem, rest)) => format!("{stem}.{tag}.{rest}"),
        None => format!("{name}.{tag}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(text: &str) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn only_whole_files_reach_a_loadable_name() {
        let tmp = tempfile::tempdir().unwrap();
        let m = Mirror::open(&tmp.path().join("m")).unwrap();
        let whole = gzip("{\"begin\":\"1.2.3.0\"}\n");

        let mut s = m.stage("a.jsonl.gz", 1 << 20).unwrap();
        s.write(&whole).unwrap();
        let (staged, broken) = s.finish().unwrap();
        assert_eq!(broken, None);
        assert_eq!(staged.bytes, whole.len() as u64);
        m.install(staged, "a.jsonl.gz").unwrap();
        assert_eq!(std::fs::read(m.dir().join("a.jsonl.gz")).unwrap(), whole);

        // Cut short: not whole, refused into rejected/ with its reason.
        let mut s = m.stage("b.jsonl.gz", 1 << 20).unwrap();
        s.write(&whole[..whole.len() - 5]).unwrap();
        let (staged, broken) = s.finish().unwrap();
        let reason = broken.expect("a cut gzip is not whole");
        m.refuse(staged, "b.jsonl.gz", &reason).unwrap();
        assert!(m.dir().join("rejected/b.jsonl.gz").exists());
        assert!(
            std::fs::read_to_string(m.dir().join("rejected/b.jsonl.gz.error"))
                .unwrap()
                .contains("gzip")
        );

        // Over the cap, or dropped unfinished: nothing is left behind.
        let mut s = m.stage("c.jsonl", 4).unwrap();
        assert!(matches!(
            s.write(b"12345"),
            Err(FetchError::TooLarge { cap: 4 })
        ));
        drop(s);
        let mut names: Vec<String> = std::fs::read_dir(m.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.jsonl.gz", "rejected"]);
    }

    #[test]
    fn versioned_names_keep_the_format() {
        assert_eq!(
            versioned_name("GeoLite2-City.mmdb", "ab12"),
            "GeoLite2-City.ab12.mmdb"
        );
        assert_eq!(versioned_name("geo.jsonl.gz", "ab12"), "geo.ab12.jsonl.gz");
        assert!(crate::load::is_snapshot_name(&versioned_name(
            "g.json", "x"
        )));
    }
}
