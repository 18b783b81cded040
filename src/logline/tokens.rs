//! Splitting a text log line into its fields: bare tokens and `"quoted"` ones.
//!
//! Servers quote fields that may hold spaces (request, referer, user agent) and
//! escape a quote inside them as `\"`. A line that ends inside a quoted field was
//! cut short (a full disk, a size limit): the field is returned whole and marked
//! `truncated` so the caller can keep the line and say so.

/// A cursor over one line.
pub struct Cursor<'a> {
    pub line: &'a str,
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(line: &'a str) -> Cursor<'a> {
        Cursor { line, pos: 0 }
    }

    pub fn skip_spaces(&mut self) {
        let b = self.line.as_bytes();
        while self.pos < b.len() && b[self.pos] == b' ' {
            self.pos += 1;
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    pub fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.pos).copied()
    }

    /// The next run of non-space bytes.
    pub fn token(&mut self) -> Option<&'a str> {
        self.skip_spaces();
        let b = self.line.as_bytes();
        let start = self.pos;
        while self.pos < b.len() && b[self.pos] != b' ' {
            self.pos += 1;
        }
        (start < self.pos).then(|| &self.line[start..self.pos])
    }

    /// A `"quoted"` field; `\"` does not end it. Returns the text between the
    /// quotes and whether the line ended inside it.
    pub fn quoted(&mut self) -> Option<(&'a str, bool)> {
        self.skip_spaces();
        let b = self.line.as_bytes();
        if b.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        // Jump from one backslash or quote to the next.
        while let Some(at) = b
            .get(i..)
            .and_then(|rest| memchr::memchr2(b'\\', b'"', rest))
        {
            i += at;
            if b[i] == b'"' {
                self.pos = i + 1;
                return Some((&self.line[start..i], false));
            }
            // A backslash: the byte after it is escaped.
            i += 2;
        }
        self.pos = b.len();
        Some((&self.line[start.min(b.len())..], true))
    }

    /// A quoted field if one starts here, else a bare token.
    pub fn field(&mut self) -> Option<(&'a str, bool)> {
        self.skip_spaces();
        if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            self.token().map(|t| (t, false))
        }
    }

    /// The text up to (not including) the next `c`, moving past `c`.
    pub fn until(&mut self, c: u8) -> Option<&'a str> {
        let b = self.line.as_bytes();
        let at = memchr::memchr(c, &b[self.pos.min(b.len())..])? + self.pos;
        let s = &self.line[self.pos..at];
        self.pos = at + 1;
        Some(s)
    }
}

/// `None` for the log's "no value" markers (`-` and empty).
pub fn dash_is_none(s: &str) -> Option<&str> {
    if s == "-" || s.is_empty() {
        None
    } else {
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_quotes_and_truncation() {
        let mut c = Cursor::new(r#"a  "b \" c" d "e f"#);
        assert_eq!(c.token(), Some("a"));
        assert_eq!(c.quoted(), Some((r#"b \" c"#, false)));
        assert_eq!(c.field(), Some(("d", false)));
        assert_eq!(c.field(), Some(("e f", true)));
        assert_eq!(c.field(), None);
        assert!(c.at_end());
    }

    /// Escaped quotes and backslashes anywhere (first, last, doubled), and a
    /// line ending inside the quotes or right after a backslash.
    #[test]
    fn quoted_fields_end_at_the_first_unescaped_quote() {
        let cases = [
            (r#""" x"#, Some(("", false)), " x"),
            (r#""\"" x"#, Some((r#"\""#, false)), " x"),
            (r#""a\\" x"#, Some((r#"a\\"#, false)), " x"),
            (r#""a\\\"b" x"#, Some((r#"a\\\"b"#, false)), " x"),
            (
                r#""Mozilla/5.0 (X11) \"q\"""#,
                Some((r#"Mozilla/5.0 (X11) \"q\""#, false)),
                "",
            ),
            (r#""open \"#, Some((r#"open \"#, true)), ""),
            (r#""open \""#, Some((r#"open \""#, true)), ""),
            (r#""open"#, Some(("open", true)), ""),
            (r#"""#, Some(("", true)), ""),
            ("bare", None, "bare"),
        ];
        for (line, want, rest) in cases {
            let mut c = Cursor::new(line);
            assert_eq!(c.quoted(), want, "{line}");
            assert_eq!(&line[c.pos.min(line.len())..], rest, "{line}");
        }
    }
}
