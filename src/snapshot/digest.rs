//! A snapshot's identity: the SHA-256 of its decompressed content, computed as
//! the bytes stream past the parser (one read of the file), or alone for a
//! file whose content only needs recognising.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Hashes the decompressed bytes as they stream past.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
    pub(crate) bytes: u64,
}

impl<R> Hashing<R> {
    pub(crate) fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex SHA-256 and size of everything read.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The SHA-256 of a file's content (decompressed when gzip), as recorded for a
/// loaded snapshot: tells whether a file is already in a store without parsing it.
pub fn content_sha256(path: &Path) -> std::io::Result<String> {
    let (mut reader, _) = crate::io::open_file(path, Default::default())?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
