//! Files the user names: what a named path or a directory listing may hold.
//!
//! Symbolic links are followed wherever a path or a directory entry is read (a
//! snapshot directory of links into a release folder is a common layout); a link
//! that leads nowhere or around in a loop is an error that names it, never a file
//! silently skipped. Only regular files are read: a FIFO or a device named where a
//! snapshot is expected would block a load forever or never end.

use std::io;
use std::path::{Path, PathBuf};

/// Why a named path cannot be read as a file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    // The cause is part of the message, not a `source`: printed once.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{0}: dangling symbolic link (its target does not exist)")]
    DanglingLink(PathBuf),
    #[error("{0}: symbolic link loop")]
    LinkLoop(PathBuf),
    #[error("{path}: not a regular file (a {kind}): only regular files are read")]
    NotRegular { path: PathBuf, kind: &'static str },
}

impl FileError {
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. } | FileError::NotRegular { path, .. } => path,
            FileError::DanglingLink(path) | FileError::LinkLoop(path) => path,
        }
    }
}

/// What a path is, links followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// The kind of `path` after following links: a regular file or a directory, else
/// an error naming the path and what it is.
pub fn kind(path: &Path) -> Result<Kind, FileError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(classify(path, e)),
    };
    let t = meta.file_type();
    if t.is_file() {
        Ok(Kind::File)
    } else if t.is_dir() {
        Ok(Kind::Dir)
    } else {
        Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: special_kind(&t),
        })
    }
}

/// The regular files of `dir` whose names `keep` accepts, sorted by name. Links
/// are followed; subdirectories are not descended into.
pub fn list_dir(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, FileError> {
    list_dir_entries(dir, keep)?.into_iter().collect()
}

/// Like [`list_dir`], but a bad entry (a dangling link, a FIFO) is an error of
/// its own among the others: for a reader that carries on past it (a watched
/// directory). Only failing to read `dir` itself fails the whole listing.
pub fn list_dir_entries(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Result<PathBuf, FileError>>, FileError> {
    let io_err = |error| FileError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if !entry.file_name().to_str().is_some_and(&keep) {
            continue;
        }
        let path = entry.path();
        match kind(&path) {
            Ok(Kind::File) => files.push(Ok(path)),
            Ok(Kind::Dir) => {}
            // Gone since the listing: not an entry any more.
            Err(FileError::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound => {}
            Err(e) => files.push(Err(e)),
        }
    }
    files.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
    Ok(files)
}

fn entry_path(entry: &Result<PathBuf, FileError>) -> &Path {
    match entry {
        Ok(path) => path,
        Err(e) => e.path(),
    }
}

/// A failed `metadata` call: a link that leads nowhere or in a loop is named as such.
fn classify(path: &Path, error: io::Error) -> FileError {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && error.raw_os_error() == Some(libc::ELOOP) {
        FileError::LinkLoop(path.to_path_buf())
    } else if is_link && error.kind() == io::ErrorKind::NotFound {
        FileError::DanglingLink(path.to_path_buf())
    } else {
        FileError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}

fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_and_broken_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.jsonl"), "x").unwrap();
        std::fs::create_dir(d.join("sub.jsonl")).unwrap();
        symlink(d.join("b.jsonl"), d.join("a.jsonl")).unwrap();
        std::fs::write(d.join("skip.txt"), "x").unwrap();
        let keep = |n: &str| n.ends_with(".jsonl");
        let got = list_dir(d, keep).unwrap();
        assert_eq!(got, vec![d.join("a.jsonl"), d.join("b.jsonl")]);

        symlink(d.join("gone"), d.join("c.jsonl")).unwrap();
        let e = list_dir(d, keep).unwrap_err();
        assert!(
            matches!(e, FileError::DanglingLink(ref p) if p.ends_with("c.jsonl")),
            "{e}"
        );
        std::fs::remove_file(d.join("c.jsonl")).unwrap();

        symlink(d.join("loop2.jsonl"), d.join("loop1.jsonl")).unwrap();
        symlink(d.join("loop1.jsonl"), d.join("loop2.jsonl")).unwrap();
        let e = list_dir(d, keep).unwrap_err();
        assert!(e.to_string().contains("symbolic link loop"), "{e}");
    }

    #[test]
    fn fifos_are_not_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.jsonl");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = kind(&fifo).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: not a regular file (a FIFO): only regular files are read",
                fifo.display()
            )
        );
        assert_eq!(kind(dir.path()).unwrap(), Kind::Dir);
        let missing = kind(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, FileError::Io { .. }));
    }
}
