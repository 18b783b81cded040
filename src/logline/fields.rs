//! The parsed fields of a line under one set of output names, whatever the format.
//!
//! Every format fills the same [`Common`] fields (a JSON log's `body_bytes_sent`,
//! a W3C log's `sc-bytes` and a combined log's `%b` all become `bytes`), typed:
//! `status` and `bytes` are numbers and `duration` is seconds, whether the log
//! wrote them as numbers, strings, milliseconds or nanoseconds. The output always
//! has `user`, `method`, `path`, `protocol`, `referer`, `status`, `bytes` and
//! `user_agent` (`null` when the format has no such field or the log wrote `-`);
//! `host`, `upstream` and `duration` appear when the format has them.

use std::borrow::Cow;
use std::sync::Arc;

use super::tokens::dash_is_none;
use super::w3c::Columns;
use crate::json::{write_key, write_opt_str, write_str, write_u64};
use crate::output_fields as names;

/// The fields every format maps onto.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Common<'a> {
    pub user: Option<Cow<'a, str>>,
    /// The request line as written; output only when it does not split into
    /// method, path and protocol (scanners send such junk).
    pub request: Option<Cow<'a, str>>,
    pub method: Option<Cow<'a, str>>,
    pub path: Option<Cow<'a, str>>,
    pub protocol: Option<Cow<'a, str>>,
    pub status: Option<u64>,
    pub bytes: Option<u64>,
    pub referer: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    /// The virtual host / authority the request was for.
    pub host: Option<Cow<'a, str>>,
    /// The backend that served the request.
    pub upstream: Option<Cow<'a, str>>,
    /// Seconds the request took.
    pub duration: Option<f64>,
}

/// `Some(text)` unless it is a "no value" marker.
pub fn text(s: &str) -> Option<Cow<'_, str>> {
    dash_is_none(s).map(Cow::Borrowed)
}

/// A number unless it is a "no value" marker or not a number (HAProxy writes
/// `+123` for bytes of a request still being sent).
#[inline]
pub fn number(s: &str) -> Option<u64> {
    match s.parse() {
        Ok(n) => Some(n),
        Err(_) => s.trim().trim_start_matches('+').parse().ok(),
    }
}

/// A duration in `unit` seconds (`0.001` for milliseconds); negative values
/// (HAProxy's `-1` for "never reached") are no value.
pub fn seconds(s: &str, unit: f64) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * unit)
}

impl<'a> Common<'a> {
    /// Sets the request line and, when it splits in three, method, path and
    /// protocol.
    pub fn set_request(&mut self, request: Cow<'a, str>) {
        if request == "-" || request.is_empty() {
            return;
        }
        match &request {
            Cow::Borrowed(r) => {
                let mut parts = r.splitn(3, ' ');
                self.method = parts.next().map(Cow::Borrowed);
                self.path = parts.next().map(Cow::Borrowed);
                self.protocol = parts.next().map(Cow::Borrowed);
            }
            Cow::Owned(r) => {
                let mut parts = r.splitn(3, ' ');
                self.method = parts.next().map(|s| Cow::Owned(s.to_string()));
                self.path = parts.next().map(|s| Cow::Owned(s.to_string()));
                self.protocol = parts.next().map(|s| Cow::Owned(s.to_string()));
            }
        }
        self.request = Some(request);
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        if self.request.is_some() && self.protocol.is_none() {
            out.push(b',');
            write_key(out, names::REQUEST);
            write_opt_str(out, self.request.as_deref());
        }
        let pairs: [(&str, Option<&str>); 5] = [
            (names::USER, self.user.as_deref()),
            (names::METHOD, self.method.as_deref()),
            (names::PATH, self.path.as_deref()),
            (names::PROTOCOL, self.protocol.as_deref()),
            (names::REFERER, self.referer.as_deref()),
        ];
        for (k, v) in pairs {
            out.push(b',');
            write_key(out, k);
            write_opt_str(out, v);
        }
        for (k, v) in [(names::STATUS, self.status), (names::BYTES, self.bytes)] {
            out.push(b',');
            write_key(out, k);
            match v {
                Some(n) => write_u64(out, n),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b',');
        write_key(out, names::USER_AGENT);
        write_opt_str(out, self.user_agent.as_deref());
        for (k, v) in [(names::HOST, &self.host), (names::UPSTREAM, &self.upstream)] {
            if let Some(v) = v {
                out.push(b',');
                write_key(out, k);
                write_str(out, v);
            }
        }
        if let Some(d) = self.duration {
            use std::io::Write;
            out.push(b',');
            write_key(out, names::DURATION);
            // Finite by construction ([`seconds`]); `{}` prints the shortest
            // text that reads back as the same number.
            let _ = write!(out, "{d}");
        }
    }
}

/// Format-specific fields kept beside the common ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    None,
    /// A JSON line: its object text, written under `"fields"`.
    Json(&'a str),
    /// Regex captures by group name, written as top-level keys.
    Named(Vec<(String, Option<&'a str>)>),
    /// A W3C line: its values under the `#Fields:` header's names, written as
    /// the object `"fields"`.
    Columns(Arc<Columns>, Vec<&'a str>),
}

/// The parsed fields, ready to be written into the output object.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<'a> {
    pub common: Common<'a>,
    /// Quoted or bare fields after the user agent of a combined line (nginx logs
    /// often add some).
    pub extra: Vec<&'a str>,
    /// The line ended inside a quoted field (a truncated line).
    pub truncated: bool,
    pub raw: Raw<'a>,
}

impl<'a> Fields<'a> {
    pub fn new(common: Common<'a>, raw: Raw<'a>) -> Fields<'a> {
        Fields {
            common,
            extra: Vec::new(),
            truncated: false,
            raw,
        }
    }

    /// Appends `,"key":value` pairs for the parsed fields.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.common.write_json(out);
        if !self.extra.is_empty() {
            out.push(b',');
            write_key(out, names::EXTRA);
            self.write_extra(out);
        }
        if self.truncated {
            out.extend_from_slice(b",\"truncated\":true");
        }
        match &self.raw {
            Raw::None => {}
            Raw::Named(groups) => {
                for (name, value) in groups {
                    out.push(b',');
                    write_str(out, name);
                    out.push(b':');
                    write_opt_str(out, value.and_then(dash_is_none));
                }
            }
            Raw::Json(_) | Raw::Columns(..) => {
                out.push(b',');
                write_key(out, names::FIELDS);
                self.write_raw_object(out);
            }
        }
    }

    /// The extra fields as a JSON array (`-` is `null`).
    pub fn write_extra(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, e) in self.extra.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_opt_str(out, dash_is_none(e));
        }
        out.push(b']');
    }

    /// Whether the format has fields of its own ([`Fields::write_raw_object`]).
    pub fn has_raw(&self) -> bool {
        match &self.raw {
            Raw::None => false,
            Raw::Named(groups) => !groups.is_empty(),
            Raw::Json(_) | Raw::Columns(..) => true,
        }
    }

    /// The format's own fields as one JSON object: a JSON line's object as
    /// written, a W3C line's columns, a regex's other groups (`-` is `null`).
    pub fn write_raw_object(&self, out: &mut Vec<u8>) {
        let pairs = |out: &mut Vec<u8>, pairs: &mut dyn Iterator<Item = (&str, &str)>| {
            out.push(b'{');
            for (i, (name, value)) in pairs.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, name);
                out.push(b':');
                write_opt_str(out, dash_is_none(value));
            }
            out.push(b'}');
        };
        match &self.raw {
            Raw::None => out.extend_from_slice(b"{}"),
            Raw::Json(obj) => out.extend_from_slice(obj.as_bytes()),
            Raw::Named(groups) => pairs(
                out,
                &mut groups.iter().map(|(n, v)| (n.as_str(), v.unwrap_or("-"))),
            ),
            Raw::Columns(columns, values) => pairs(
                out,
                &mut columns
                    .names()
                    .iter()
                    .map(String::as_str)
                    .zip(values.iter().copied()),
            ),
        }
    }
}
