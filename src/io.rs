//! Opening input files: the one place a possibly gzipped file is opened (by the
//! log sources, snapshot and CSV loading, and the report). Gzip is recognised by
//! its magic bytes, whatever the file's name, and multi-member files (as
//! `cat a.gz b.gz` makes) are read whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts bytes read from the underlying file (compressed bytes for gzip).
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens a file, decompressing when it starts with the gzip magic (whatever its
/// name); says whether it is gzip (read errors then mean bad gzip data). Bytes
/// read from disk are added to `progress`.
pub fn open_file(
    path: &Path,
    progress: Arc<AtomicU64>,
) -> io::Result<(Box<dyn Read + Send>, bool)> {
    let mut file = BufReader::with_capacity(
        256 * 1024,
        Counting {
            inner: File::open(path)?,
            count: progress,
        },
    );
    let head = file.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok((Box::new(flate2::bufread::MultiGzDecoder::new(file)), true))
    } else {
        Ok((Box::new(file), false))
    }
}
