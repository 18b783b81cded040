//! An output stream of lines (enriched lines, dead letters) that knows its name
//! and how many whole lines reached it, so that a failed write (a full disk)
//! says which output failed and how much of it is there.
//!
//! It sits under the buffered writer: it counts what the file (or pipe)
//! accepted, not what was buffered.

use std::io::{self, Write};

/// A writer of lines that names itself in its errors.
pub struct OutputFile<W> {
    inner: W,
    name: String,
    lines: u64,
}

impl<W: Write> OutputFile<W> {
    /// `name` says what the output is in a message, e.g. `output file out.jsonl`.
    pub fn new(inner: W, name: impl Into<String>) -> OutputFile<W> {
        OutputFile {
            inner,
            name: name.into(),
            lines: 0,
        }
    }

    fn error(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "cannot write to the {}: {e}; {} whole lines were written to it",
                self.name, self.lines
            ),
        )
    }
}

impl<W: Write> Write for OutputFile<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(self.error(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails as a full disk does.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_output_names_itself_and_the_lines_it_holds() {
        let mut out = OutputFile::new(Full { room: 10 }, "output file out.jsonl");
        let e = out.write_all(b"aaaa\nbbbb\ncccc\n").unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("cannot write to the output file out.jsonl: "),
            "{message}"
        );
        assert!(
            message.ends_with("; 2 whole lines were written to it"),
            "{message}"
        );
        assert_eq!(e.kind(), io::Error::from_raw_os_error(libc::ENOSPC).kind());
    }
}
