//! Input read as lines, bounded: a line is read up to a limit and no further, and
//! input quoted back in a message is a short excerpt. Whatever arrives (a file
//! without a newline, a 500 MB "address"), memory and messages stay small.

use std::io::{self, BufRead, Read};

/// How much of an input a message quotes.
pub const EXCERPT_BYTES: usize = 80;

/// What [`read_line_limited`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A line (without its `\n`) was appended.
    Line,
    /// The input is at its end; nothing was appended.
    Eof,
    /// The line is longer than the limit: nothing was appended and the rest of the
    /// line is unread ([`skip_line`] goes on to the next one).
    TooLong,
}

/// Appends the next line of `reader` to `buf`, without its `\n`, if it has at most
/// `limit` bytes. A last line without a newline is a line. Reading never holds
/// more than `limit` bytes of one line.
pub fn read_line_limited<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<LineRead> {
    let start = buf.len();
    let mut any = false;
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(if any { LineRead::Line } else { LineRead::Eof });
        }
        any = true;
        let (chunk, newline) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        if buf.len() - start + chunk.len() > limit {
            buf.truncate(start);
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(chunk);
        let used = chunk.len() + usize::from(newline);
        reader.consume(used);
        if newline {
            return Ok(LineRead::Line);
        }
    }
}

/// Consumes input up to and including the next `\n` (or the end), keeping none.
pub fn skip_line<R: BufRead>(reader: &mut R) -> io::Result<()> {
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(());
        }
        match memchr::memchr(b'\n', available) {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// The reader's buffered bytes, read again after an interruption by a signal.
fn fill<R: BufRead>(reader: &mut R) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            // Re-borrowed to return it: the loop ends here.
            Ok(_) => return reader.fill_buf(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A UTF-8 byte-order mark, which some editors and Windows tools write at the start
/// of a text file; it is not part of the first line.
pub const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// A reader that drops a UTF-8 byte-order mark at the start of its input and
/// hands out everything else unchanged. The first read goes straight into the
/// caller's buffer (a buffered input such as stdin must not keep a live line in
/// its own buffer where a readiness poll cannot see it); only a first read shorter
/// than the mark that could still be one waits for more.
pub struct SkipBom<R> {
    inner: R,
    /// The first bytes, while they are a proper prefix of the mark, then handed
    /// out from `pos` if they were not the mark.
    head: [u8; 3],
    len: usize,
    pos: usize,
    checked: bool,
}

impl<R: Read> SkipBom<R> {
    pub fn new(inner: R) -> SkipBom<R> {
        SkipBom {
            inner,
            head: [0; 3],
            len: 0,
            pos: 0,
            checked: false,
        }
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.checked {
            if self.len == 0 {
                let n = self.read_inner(buf)?;
                let got = &buf[..n];
                if n == 0 || !UTF8_BOM.starts_with(&got[..n.min(3)]) {
                    self.checked = true;
                    return Ok(n);
                }
                if n >= 3 {
                    self.checked = true;
                    buf.copy_within(3..n, 0);
                    if n > 3 {
                        return Ok(n - 3);
                    }
                    break;
                }
                self.head[..n].copy_from_slice(got);
                self.len = n;
            } else {
                let mut head = self.head;
                let n = self.read_inner(&mut head[self.len..])?;
                self.head = head;
                self.len += n;
                let have = &self.head[..self.len];
                if n == 0 || !UTF8_BOM.starts_with(have) || self.len == 3 {
                    self.checked = true;
                    self.pos = if have == UTF8_BOM { self.len } else { 0 };
                }
            }
        }
        if self.pos < self.len {
            let n = buf.len().min(self.len - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.read_inner(buf)
    }
}

/// The start of `text` for a message: at most [`EXCERPT_BYTES`] bytes (cut at a
/// character boundary), marked with `...` and the full length when cut.
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_string();
    }
    let mut cut = EXCERPT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &text[..cut], text.len())
}

/// [`excerpt`] of bytes that may not be UTF-8 (invalid sequences replaced).
pub fn excerpt_bytes(bytes: &[u8]) -> String {
    if bytes.len() <= EXCERPT_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    // A few bytes past the cut so that a character across it is whole; no
    // more than there are (81 to 83 bytes panicked here: found by fuzzing).
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES + 4)]);
    let mut cut = EXCERPT_BYTES.min(head.len());
    while !head.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &head[..cut], bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn read_all(input: &[u8], limit: usize, capacity: usize) -> Vec<Result<String, LineRead>> {
        let mut reader = BufReader::with_capacity(capacity, input);
        let mut out = Vec::new();
        loop {
            let mut buf = b"kept:".to_vec();
            match read_line_limited(&mut reader, &mut buf, limit).unwrap() {
                LineRead::Line => out.push(Ok(String::from_utf8(buf).unwrap())),
                LineRead::Eof => {
                    assert_eq!(buf, b"kept:");
                    return out;
                }
                LineRead::TooLong => {
                    assert_eq!(buf, b"kept:", "nothing of a long line is kept");
                    out.push(Err(LineRead::TooLong));
                    skip_line(&mut reader).unwrap();
                }
            }
        }
    }

    #[test]
    fn long_lines_are_skipped_whole_whatever_the_buffer_size() {
        let input = b"ab\nabcdefgh\n\nabcd\nxyz";
        for capacity in [1, 2, 3, 7, 64] {
            let got = read_all(input, 4, capacity);
            assert_eq!(
                got,
                vec![
                    Ok("kept:ab".into()),
                    Err(LineRead::TooLong),
                    Ok("kept:".into()),
                    Ok("kept:abcd".into()),
                    Ok("kept:xyz".into()),
                ],
                "capacity {capacity}"
            );
        }
        assert_eq!(read_all(b"toolong", 3, 2), vec![Err(LineRead::TooLong)]);
    }

    /// Reads everything through [`SkipBom`], handed over `step` bytes at a time.
    fn through_skip_bom(input: &[u8], step: usize) -> Vec<u8> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        SkipBom::new(Trickle(input, step))
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped_and_nothing_else() {
        for step in [1, 2, 3, 64] {
            assert_eq!(through_skip_bom(b"\xef\xbb\xbfa b\n", step), b"a b\n");
            assert_eq!(through_skip_bom(b"a b\n", step), b"a b\n");
            assert_eq!(through_skip_bom(b"\xef\xbb", step), b"\xef\xbb");
            assert_eq!(
                through_skip_bom(b"\xefx\xef\xbb\xbf", step),
                b"\xefx\xef\xbb\xbf"
            );
            assert_eq!(through_skip_bom(b"", step), b"");
            assert_eq!(
                through_skip_bom(b"\xef\xbb\xbf\xef\xbb\xbf", step),
                UTF8_BOM
            );
        }
    }

    #[test]
    fn excerpts_are_short_and_say_how_long_the_text_was() {
        assert_eq!(excerpt("1.2.3.4x"), "1.2.3.4x");
        let long = "é".repeat(1000);
        let e = excerpt(&long);
        assert!(
            e.len() < EXCERPT_BYTES + 20 && e.ends_with("... (2000 bytes)"),
            "{e}"
        );
        let e = excerpt_bytes(&[0xff; 10_000]);
        assert!(
            e.ends_with("... (10000 bytes)") && e.len() < 3 * EXCERPT_BYTES,
            "{e}"
        );
        assert_eq!(excerpt_bytes(b"short"), "short");
        // Just over the limit, by fewer bytes than the look-ahead.
        for len in EXCERPT_BYTES + 1..EXCERPT_BYTES + 6 {
            let e = excerpt_bytes(&vec![b'6'; len]);
            assert_eq!(e, format!("{}... ({len} bytes)", "6".repeat(EXCERPT_BYTES)));
        }
    }
}
