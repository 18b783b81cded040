//! Inputs of `enrich`: stdin and files (gzip read transparently), cut into chunks of
//! whole lines.
//!
//! A [`Chunker`] reads sources one after the other, in the order given, and hands
//! out [`Chunk`]s: complete lines, tagged with their source and first line number
//! so that every line keeps its `source:line` position. On a pipe a chunk is made
//! of whatever one `read` returned, so a line written to stdin is processed at once
//! rather than when a buffer fills; on files reads are large. A line longer than
//! the limit is cut to `limit + 1` bytes (the rest skipped) so that it can be
//! dead-lettered without holding it whole.
//!
//! A chunker given a stop flag ([`Chunker::stop_on`]) ends as if every input
//! ended when the flag is raised: stdin is read only when poll(2) says data is
//! there, so the flag is seen within 100 ms even on an idle pipe, and nothing
//! already read is dropped (a last line without its newline is handed out as the
//! end of a source's would be).

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::io::open_file;
use crate::lines::SkipBom;
use crate::time::Timestamp;

/// Where input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// The name used in `source:line` positions.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{name}: read error after line {line}: {source}")]
    Read {
        name: String,
        line: u64,
        #[source]
        source: io::Error,
    },
    /// A directory entry that cannot be read as a file (a dangling link, a
    /// link loop, a FIFO): named, never skipped silently.
    #[error(transparent)]
    Entry(#[from] crate::files::FileError),
}

/// Is this a file a directory scan should read? Hidden and `.tmp` files are
/// still being written.
fn is_log_name(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with(".tmp")
}

/// Turns command-line names into inputs: none or `-` is stdin, a directory is its
/// files sorted by name, a file is itself.
pub fn expand(names: &[PathBuf]) -> Result<Vec<Input>, SourceError> {
    if names.is_empty() {
        return Ok(vec![Input::Stdin]);
    }
    let mut inputs = Vec::new();
    for name in names {
        if name.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let open_err = |source| SourceError::Open {
            path: name.clone(),
            source,
        };
        let meta = std::fs::metadata(name).map_err(open_err)?;
        if meta.is_dir() {
            // Links to log files are followed (a directory of links into the
            // servers' log folders is a common layout).
            let files = crate::files::list_dir(name, is_log_name)?;
            inputs.extend(files.into_iter().map(Input::File));
        } else {
            inputs.push(Input::File(name.clone()));
        }
    }
    Ok(inputs)
}

/// Waits until stdin has data (or is closed) or `stop` is raised; false on stop.
fn wait_for_stdin(stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let mut fds = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut fds, 1, 100) };
        if ready != 0 {
            // Readable, closed, or an error that the read itself will report.
            return true;
        }
    }
}

/// Recycled byte buffers: chunks and outputs are megabytes each, and fresh ones
/// would cost page faults on every chunk.
#[derive(Clone, Default)]
pub struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// A cleared buffer with at least `capacity` bytes of room.
    pub fn get(&self, capacity: usize) -> Vec<u8> {
        let recycled = self.0.lock().ok().and_then(|mut v| v.pop());
        let mut buf = recycled.unwrap_or_default();
        buf.clear();
        buf.reserve(capacity);
        buf
    }

    /// Returns a buffer for reuse (a bounded number are kept).
    pub fn put(&self, buf: Vec<u8>) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() < 64 {
                v.push(buf);
            }
        }
    }
}

/// Complete lines from one source.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Order of the chunk over the whole run.
    pub seq: u64,
    /// Name of its source (for `source:line`).
    pub source: Arc<str>,
    /// Line number of its first line (1-based).
    pub first_line: u64,
    /// Lines, each ending with `\n` (added when the source's last line had none).
    pub data: Vec<u8>,
    /// When it was read (live input only): the event time of lines without a
    /// time of their own.
    pub read_at: Option<Timestamp>,
    /// Its last line is the partial line that a read error cut off (e.g. a
    /// truncated gzip file): a dead letter, not a line.
    pub truncated: bool,
    /// The header line in force at the chunk's start: the last one of its source
    /// before it ([`crate::logline::last_header_line`], a W3C `#Fields:` line),
    /// so that a worker reads the chunk's lines as the file's reader would.
    pub header: Option<Arc<[u8]>>,
}

impl Chunk {
    /// Lines without their newline (and a trailing `\r`), with their numbers.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let body = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
        let mut n = self.first_line;
        body.split(|&b| b == b'\n').map(move |l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            n += 1;
            (n - 1, l)
        })
    }
}

/// Reads inputs in order and cuts them into chunks.
pub struct Chunker {
    inputs: std::vec::IntoIter<Input>,
    current: Option<(Arc<str>, Box<dyn Read + Send>, bool)>,
    /// Partial last line of the current source.
    pending: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    next_line: u64,
    seq: u64,
    max_line: usize,
    chunk_bytes: usize,
    /// Bytes read from files so far (for progress).
    pub progress: Arc<AtomicU64>,
    /// Where chunk buffers come from (and go back to once processed).
    pub pool: BufferPool,
    read_buf: Vec<u8>,
    stop: Option<Arc<AtomicBool>>,
    /// A read error held back while the partial line before it is handed out.
    deferred: Option<SourceError>,
    /// The header line in force in the current source so far.
    header: Option<Arc<[u8]>>,
}

impl Chunker {
    pub fn new(inputs: Vec<Input>, max_line: usize) -> Chunker {
        Chunker {
            inputs: inputs.into_iter(),
            current: None,
            pending: Vec::new(),
            skipping: false,
            next_line: 1,
            seq: 0,
            max_line,
            chunk_bytes: 1 << 20,
            progress: Arc::new(AtomicU64::new(0)),
            pool: BufferPool::default(),
            read_buf: Vec::new(),
            stop: None,
            deferred: None,
            header: None,
        }
    }

    /// Ends the input when `stop` is raised (the daemon's graceful stop).
    pub fn stop_on(mut self, stop: Arc<AtomicBool>) -> Chunker {
        self.stop = Some(stop);
        self
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn open_next(&mut self) -> Result<bool, SourceError> {
        let Some(input) = self.inputs.next() else {
            return Ok(false);
        };
        let name: Arc<str> = input.name().into();
        // A byte-order mark some tools write first is not part of the first line.
        let (reader, live): (Box<dyn Read + Send>, bool) = match &input {
            Input::Stdin => (Box::new(SkipBom::new(io::stdin())), true),
            Input::File(p) => (
                Box::new(SkipBom::new(
                    open_file(p, self.progress.clone())
                        .map_err(|source| SourceError::Open {
                            path: p.clone(),
                            source,
                        })?
                        .0,
                )),
                false,
            ),
        };
        self.current = Some((name, reader, live));
        self.next_line = 1;
        self.pending.clear();
        self.skipping = false;
        self.header = None;
        Ok(true)
    }

    /// The next chunk, or `None` when every input is exhausted. A read error ends
    /// the run with the position reached (lines before it were delivered).
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, SourceError> {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(self.chunk_bytes, 0);
        let result = self.next_chunk_with(&mut buf);
        self.read_buf = buf;
        result
    }

    fn next_chunk_with(&mut self, buf: &mut [u8]) -> Result<Option<Chunk>, SourceError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        loop {
            if self.stopped() {
                return Ok(self.finish());
            }
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let stop = self.stop.clone();
            let Some((name, reader, live)) = self.current.as_mut() else {
                continue;
            };
            if *live {
                if let Some(stop) = &stop {
                    if !wait_for_stdin(stop) {
                        continue; // stopped: handled at the top
                    }
                }
            }
            let n = loop {
                match reader.read(buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(source) => {
                        // The failing source is abandoned; a later call goes on
                        // with the next input. A partial line read before the
                        // error is handed out first, marked, to be dead-lettered.
                        let name = name.clone();
                        let live = *live;
                        self.current = None;
                        let error = SourceError::Read {
                            name: name.to_string(),
                            line: self.next_line.saturating_sub(1),
                            source,
                        };
                        if self.pending.is_empty() && !self.skipping {
                            return Err(error);
                        }
                        self.deferred = Some(error);
                        let mut data = std::mem::take(&mut self.pending);
                        data.push(b'\n');
                        self.skipping = false;
                        let mut chunk = self.make_chunk(name, data, 1, live.then(Timestamp::now));
                        chunk.truncated = true;
                        return Ok(Some(chunk));
                    }
                }
            };
            let read_at = live.then(Timestamp::now);
            let name = name.clone();
            if n == 0 {
                // End of this source: its last line may lack a newline.
                self.current = None;
                if self.pending.is_empty() && !self.skipping {
                    continue;
                }
                let mut data = std::mem::take(&mut self.pending);
                data.push(b'\n');
                self.skipping = false;
                return Ok(Some(self.make_chunk(name, data, 1, read_at)));
            }
            let (data, lines) = self.cut(&buf[..n]);
            if lines > 0 {
                return Ok(Some(self.make_chunk(name, data, lines, read_at)));
            }
        }
    }

    /// The end after a stop: no more inputs; the partial last line, if any, as a
    /// last chunk.
    fn finish(&mut self) -> Option<Chunk> {
        self.inputs = Vec::new().into_iter();
        let (name, live) = match self.current.take() {
            Some((name, _, live)) => (name, live),
            None => return None,
        };
        if self.pending.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.pending);
        data.push(b'\n');
        self.skipping = false;
        Some(self.make_chunk(name, data, 1, live.then(Timestamp::now)))
    }

    fn make_chunk(
        &mut self,
        source: Arc<str>,
        data: Vec<u8>,
        lines: u64,
        read_at: Option<Timestamp>,
    ) -> Chunk {
        let header = self.header.clone();
        if let Some(r) = crate::logline::last_header_line(&data) {
            self.header = Some(Arc::from(&data[r]));
        }
        let chunk = Chunk {
            seq: self.seq,
            source,
            first_line: self.next_line,
            data,
            read_at,
            truncated: false,
            header,
        };
        self.seq += 1;
        self.next_line += lines;
        chunk
    }

    /// Appends freshly read bytes to the pending line; returns the complete lines
    /// (with over-long ones cut) and how many there are.
    fn cut(&mut self, bytes: &[u8]) -> (Vec<u8>, u64) {
        let mut out = self.pool.get(self.pending.len() + bytes.len());
        let mut lines = 0;
        // `bytes[run..pos]`: whole lines not yet copied that need no change
        // (nothing pending before them, not too long), copied in one go.
        let mut run = 0;
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &bytes[pos..]) {
            let end = pos + i;
            if !(self.pending.is_empty() && !self.skipping && i <= self.max_line) {
                out.extend_from_slice(&bytes[run..pos]);
                let piece = &bytes[pos..end];
                if self.skipping {
                    self.skipping = false;
                } else {
                    let room = (self.max_line + 1).saturating_sub(self.pending.len());
                    self.pending
                        .extend_from_slice(&piece[..piece.len().min(room)]);
                }
                out.extend_from_slice(&self.pending);
                out.push(b'\n');
                self.pending.clear();
                run = end + 1;
            }
            lines += 1;
            pos = end + 1;
        }
        out.extend_from_slice(&bytes[run..pos]);
        let rest = &bytes[pos..];
        if !self.skipping {
            let room = (self.max_line + 1).saturating_sub(self.pending.len());
            self.pending
                .extend_from_slice(&rest[..rest.len().min(room)]);
            if rest.len() > room {
                self.skipping = true;
            }
        }
        (out, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(text: &[u8], max_line: usize) -> Vec<(u64, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.log");
        std::fs::write(&p, text).unwrap();
        let mut c = Chunker::new(vec![Input::File(p)], max_line);
        c.chunk_bytes = 7;
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            for (n, l) in ch.lines() {
                out.push((n, l.to_vec()));
            }
        }
        out
    }

    #[test]
    fn lines_keep_their_numbers_across_small_reads() {
        let got = chunks_of(b"one\ntwo\r\nthree is longer\n\nlast", 100);
        let want: Vec<(u64, Vec<u8>)> = vec![
            (1, b"one".to_vec()),
            (2, b"two".to_vec()),
            (3, b"three is longer".to_vec()),
            (4, b"".to_vec()),
            (5, b"last".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn each_chunk_carries_the_header_in_force_at_its_start() {
        let text = b"#Fields: a\nx1\nx2\n#Fields: b\ny1\n#Version: 1\ny2\n";
        let dir = tempfile::tempdir().unwrap();
        let (p, q) = (dir.path().join("1.log"), dir.path().join("2.log"));
        std::fs::write(&p, text).unwrap();
        std::fs::write(&q, b"z1\n").unwrap();
        let mut c = Chunker::new(vec![Input::File(p), Input::File(q)], 100);
        c.chunk_bytes = 5;
        let mut seen = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            let header = ch
                .header
                .as_deref()
                .map(|h| String::from_utf8_lossy(h).into_owned());
            for (_, l) in ch.lines() {
                seen.push((String::from_utf8_lossy(l).into_owned(), header.clone()));
            }
        }
        // Lines after a header in the same chunk see it through the parser
        // (FileState); the chunk says what was in force before its first line.
        let a = Some("#Fields: a".to_string());
        let b = Some("#Fields: b".to_string());
        let of = |l: &str| seen.iter().find(|(x, _)| x == l).unwrap().1.clone();
        assert_eq!(of("#Fields: a"), None);
        assert!(of("x1") == a || of("x1").is_none());
        assert_eq!(of("x2"), a);
        assert_eq!(of("y2"), b);
        // A new file starts without a header.
        assert_eq!(of("z1"), None);
    }

    /// Whatever the read size (lines whole in one read or spread over many),
    /// every line comes out the same: cut to one byte over the limit.
    #[test]
    fn lines_come_out_the_same_at_any_read_size() {
        let max = 8;
        let mut text = Vec::new();
        let mut want = Vec::new();
        for (n, len) in [0usize, 1, 7, 8, 9, 10, 30, 8, 0, 9, 3]
            .into_iter()
            .enumerate()
        {
            let line: Vec<u8> = (0..len).map(|i| b'a' + ((i + n) % 26) as u8).collect();
            text.extend_from_slice(&line);
            text.push(b'\n');
            want.push((n as u64 + 1, line[..len.min(max + 1)].to_vec()));
        }
        for chunk_bytes in [1, 2, 3, 5, 9, 10, 11, 64, 4096] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("in.log");
            std::fs::write(&p, &text).unwrap();
            let mut c = Chunker::new(vec![Input::File(p)], max);
            c.chunk_bytes = chunk_bytes;
            let mut got = Vec::new();
            while let Some(ch) = c.next_chunk().unwrap() {
                for (n, l) in ch.lines() {
                    got.push((n, l.to_vec()));
                }
            }
            assert_eq!(got, want, "read size {chunk_bytes}");
        }
    }

    #[test]
    fn long_lines_are_cut_to_one_byte_over_the_limit() {
        let got = chunks_of(b"short\nthis line is far too long\nok\n", 8);
        assert_eq!(got[1], (2, b"this line".to_vec()));
        assert_eq!(got[2], (3, b"ok".to_vec()));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn gzip_is_read_transparently_and_directories_in_name_order() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"b1\nb2\n").unwrap();
        std::fs::write(dir.path().join("b.log.gz"), enc.finish().unwrap()).unwrap();
        std::fs::write(dir.path().join("a.log"), b"a1\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x\n").unwrap();
        let inputs = expand(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(inputs.len(), 2);
        let mut c = Chunker::new(inputs, 100);
        let mut lines = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            for (n, l) in ch.lines() {
                lines.push(format!(
                    "{}:{n}:{}",
                    ch.source.rsplit('/').next().unwrap(),
                    String::from_utf8_lossy(l)
                ));
            }
        }
        assert_eq!(lines, ["a.log:1:a1", "b.log.gz:1:b1", "b.log.gz:2:b2"]);
        assert_eq!(expand(&[]).unwrap(), vec![Input::Stdin]);
    }
}
