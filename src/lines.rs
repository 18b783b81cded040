//! Input read as lines, bounded: a line is read up to a limit and no further, and
//! input quoted back in a message is a short excerpt. Whatever arrives (a file
//! without a newline, a 500 MB "address"), memory and messages stay small.

use std::io::{self, BufRead};

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
    let head = String::from_utf8_lossy(&bytes[..EXCERPT_BYTES + 4]);
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
    }
}
