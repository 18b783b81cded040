//! W3C extended log files: IIS, AWS CloudFront and any server that writes them.
//!
//! Directive lines start with `#`. `#Fields: date time c-ip cs-method ...` names
//! the columns of the lines after it, until the next `#Fields:` (servers write the
//! header again after every restart, possibly with other columns). The header is
//! per file: [`last_fields_line`] lets the reader carry the header in force into
//! each chunk it cuts, so that a header applies exactly to the lines after it in
//! its file, whichever worker parses them. Values are separated by spaces (IIS)
//! or tabs (CloudFront); `-` is no value; IIS writes spaces inside values as `+`
//! and CloudFront percent-encodes them. `date` and `time` are UTC (the format's
//! specification), whatever `--timezone` says.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use super::fields::{number, seconds, text, Common, Fields, Raw};
use super::tokens::dash_is_none;
use super::ParseError;
use crate::time::Timestamp;

const FIELDS: &[u8] = b"#Fields:";

/// Is this line a directive (`#Version:`, `#Fields:`, `#Date:`...)?
pub fn is_directive(line: &str) -> bool {
    line.starts_with('#')
}

/// The byte range of the last `#Fields:` line in `data` (lines separated by
/// `\n`), if any: the header in force after `data`. Every chunk of every input
/// goes through this on the reader thread, so it is one forward SIMD search
/// (reverse searches are several times slower) that almost always finds nothing.
pub fn last_fields_line(data: &[u8]) -> Option<Range<usize>> {
    let at = memchr::memmem::find_iter(data, FIELDS)
        .filter(|&at| at == 0 || data[at - 1] == b'\n')
        .last()?;
    let stop = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |n| at + n);
    Some(at..stop)
}

/// The columns a `#Fields:` header names, with the positions of the ones that
/// map onto the common fields.
#[derive(Debug, PartialEq)]
pub struct Columns {
    names: Vec<String>,
    ip: Option<usize>,
    date: Option<usize>,
    time: Option<usize>,
    method: Option<usize>,
    stem: Option<usize>,
    query: Option<usize>,
    status: Option<usize>,
    bytes: Option<usize>,
    referer: Option<usize>,
    user_agent: Option<usize>,
    user: Option<usize>,
    host: Option<usize>,
    protocol: Option<usize>,
    taken: Option<usize>,
    xff: Option<usize>,
    /// CloudFront: `time-taken` in seconds (IIS: milliseconds), values
    /// percent-encoded (IIS: `+` for space).
    cloudfront: bool,
}

impl Columns {
    /// Reads a `#Fields:` line (with or without its `#Fields:` prefix).
    pub fn parse(header: &str) -> Columns {
        let list = header.strip_prefix("#Fields:").unwrap_or(header);
        let names: Vec<String> = list.split_whitespace().map(str::to_string).collect();
        let find = |wanted: &[&str]| {
            wanted
                .iter()
                .find_map(|w| names.iter().position(|n| n.eq_ignore_ascii_case(w)))
        };
        Columns {
            ip: find(&["c-ip"]),
            date: find(&["date"]),
            time: find(&["time"]),
            method: find(&["cs-method"]),
            stem: find(&["cs-uri-stem", "cs-uri"]),
            query: find(&["cs-uri-query"]),
            status: find(&["sc-status"]),
            bytes: find(&["sc-bytes"]),
            referer: find(&["cs(Referer)", "cs(Referrer)"]),
            user_agent: find(&["cs(User-Agent)"]),
            user: find(&["cs-username"]),
            host: find(&["cs-host", "cs(Host)", "x-host-header"]),
            protocol: find(&["cs-version", "cs-protocol-version"]),
            taken: find(&["time-taken"]),
            xff: find(&["x-forwarded-for", "cs(X-Forwarded-For)"]),
            cloudfront: find(&["x-edge-location"]).is_some(),
            names,
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads one data line: its values, client address text, X-Forwarded-For,
    /// time and common fields.
    pub fn parse_line<'a>(self: &Arc<Columns>, line: &'a str) -> Result<W3cLine<'a>, ParseError> {
        let values: Vec<&'a str> = if line.contains('\t') {
            line.split('\t').collect()
        } else {
            line.split(' ').filter(|v| !v.is_empty()).collect()
        };
        if values.len() != self.names.len() {
            return Err(ParseError::NoMatch(
                "w3c (the line's value count differs from its #Fields header)",
            ));
        }
        let get = |i: Option<usize>| {
            i.and_then(|i| values.get(i).copied())
                .and_then(dash_is_none)
        };
        let decoded = |i: Option<usize>| get(i).map(|v| self.decode(v));
        let time = match (get(self.date), get(self.time)) {
            (Some(d), Some(t)) => Some(utc_date_time(d, t)?),
            _ => None,
        };
        let mut c = Common {
            method: get(self.method).and_then(text),
            path: match (get(self.stem), get(self.query)) {
                (Some(s), Some(q)) => Some(Cow::Owned(format!("{s}?{q}"))),
                (s, _) => s.and_then(text),
            },
            status: get(self.status).and_then(number),
            bytes: get(self.bytes).and_then(number),
            referer: decoded(self.referer),
            user_agent: decoded(self.user_agent),
            user: get(self.user).and_then(text),
            host: get(self.host).and_then(text),
            protocol: get(self.protocol).and_then(text),
            ..Common::default()
        };
        let unit = if self.cloudfront { 1.0 } else { 1e-3 };
        c.duration = get(self.taken).and_then(|t| seconds(t, unit));
        Ok(W3cLine {
            remote: get(self.ip),
            xff: get(self.xff),
            time,
            fields: Fields::new(c, Raw::Columns(self.clone(), values)),
        })
    }

    fn decode<'a>(&self, v: &'a str) -> Cow<'a, str> {
        if self.cloudfront {
            percent_decode(v)
        } else if v.contains('+') {
            Cow::Owned(v.replace('+', " "))
        } else {
            Cow::Borrowed(v)
        }
    }
}

/// A parsed W3C data line.
pub struct W3cLine<'a> {
    pub remote: Option<&'a str>,
    pub xff: Option<&'a str>,
    pub time: Option<Timestamp>,
    pub fields: Fields<'a>,
}

fn utc_date_time(date: &str, time: &str) -> Result<Timestamp, ParseError> {
    let mut buf = String::with_capacity(32);
    buf.push_str(date);
    buf.push('T');
    buf.push_str(time);
    buf.push('Z');
    Timestamp::parse(&buf).map_err(|e| ParseError::BadTime(e.to_string()))
}

/// `%XX` escapes decoded (CloudFront encodes user agents and referers, some
/// twice: `%2520`, decoded once as the documentation says).
fn percent_decode(v: &str) -> Cow<'_, str> {
    if !v.contains('%') {
        return Cow::Borrowed(v);
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_fields_header_of_a_block() {
        let data = b"#Version: 1.0\n#Fields: date time c-ip\n2024-01-01 00:00:00 1.2.3.4\n#Fields: date time cs-method c-ip\nx #Fields: no\n";
        let r = last_fields_line(data).unwrap();
        assert_eq!(&data[r], b"#Fields: date time cs-method c-ip");
        assert_eq!(last_fields_line(b"a\nb #Fields: x\n"), None);
        assert_eq!(last_fields_line(b"#Fields: a b"), Some(0..12));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("Mozilla/5.0%20(X11)"), "Mozilla/5.0 (X11)");
        assert_eq!(percent_decode("a%2520b"), "a%20b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
