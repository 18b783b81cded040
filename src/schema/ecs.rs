//! An enriched line in the Elastic Common Schema: nested objects, typed values.
//!
//! ```text
//! {"@timestamp":..,"source":{"ip":..,"address":..,"port":..,"geo":{..},"as":{..}},
//!  "user":{"name":..},"http":{"request":{"method":..,"referrer":..},"version":..,
//!  "response":{"status_code":200,"body":{"bytes":512}}},
//!  "url":{"original":..,"path":..,"query":..,"domain":..},"user_agent":{"original":..},
//!  "event":{"dataset":"combined.access","module":"combined","duration":..,"original":..},
//!  "whipstream":{"time_source":..,"fields":{..},"<data set>":{"datetime":..,"begin":..,"end":..,..}|null}}
//! ```
//!
//! Absent values are left out (ECS has no nulls), except a data set without a
//! match (`whipstream.<name>: null`) and chosen fields (`--fields`) a record
//! lacks. What ECS has no name for goes under `whipstream`: the time source of
//! a line enriched at another time than its own, a request line that does not
//! split, a non-HTTP protocol, the upstream, extra fields, a JSON or W3C line's
//! own fields, and each data set's provenance and unmapped fields.

use super::render::SetTable;
use super::select::{Selection, Source};
use crate::index::Match;
use crate::json::{write_key, write_str, write_u64};
use crate::logline::{Format, LogLine, ParserConfig};
use crate::output_fields::{FieldSpec, ValueType};
use crate::time::Timestamp;

/// The ECS custom field set whipstream's own fields go under.
pub const WHIPSTREAM: &str = "whipstream";

/// One line's parts that are not data sets.
pub struct Line<'l, 'a> {
    pub parsed: &'l LogLine<'a>,
    pub t: Timestamp,
    /// `read`, `at` or `kafka` for a line enriched at another time.
    pub time_source: Option<&'static str>,
    /// The original line, unless `--no-line`.
    pub original: Option<&'l str>,
}

/// One data set's part of a line.
pub struct Answer<'l, 'm> {
    pub name: &'l str,
    pub matched: Option<Match<'m>>,
    pub table: &'l SetTable,
    pub selection: Option<&'l Selection>,
}

/// Writes `,"key":` (or `"key":` first in an object).
fn field(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_key(out, key);
}

fn str_field(out: &mut Vec<u8>, first: &mut bool, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        field(out, first, key);
        write_str(out, v);
    }
}

fn u64_field(out: &mut Vec<u8>, first: &mut bool, key: &str, v: Option<u64>) {
    if let Some(v) = v {
        field(out, first, key);
        write_u64(out, v);
    }
}

/// Opens `"key":{` unless every value is absent; the caller closes it.
fn open(out: &mut Vec<u8>, first: &mut bool, key: &str, any: bool) -> bool {
    if any {
        field(out, first, key);
        out.push(b'{');
    }
    any
}

/// `HTTP/1.1` -> `1.1`; other protocols have no `http.version`.
fn http_version(protocol: &str) -> Option<&str> {
    protocol.strip_prefix("HTTP/")
}

/// Appends the line as an ECS object and a newline; `matched[i]` counts data
/// set `i`'s matches.
pub fn write_line(line: &Line<'_, '_>, answers: &[Answer<'_, '_>], out: &mut Vec<u8>) {
    let p = line.parsed;
    let c = &p.fields.common;
    out.push(b'{');
    let mut top = true;
    field(out, &mut top, "@timestamp");
    out.push(b'"');
    line.t.write_rfc3339(out);
    out.push(b'"');

    // source
    field(out, &mut top, "source");
    out.push(b'{');
    let mut f = true;
    str_field(out, &mut f, "ip", Some(&p.ip_text));
    str_field(out, &mut f, "address", Some(&p.ip_text));
    u64_field(out, &mut f, "port", p.port.map(u64::from));
    for (key, part) in [("geo", 0), ("as", 1)] {
        let bytes = answers.iter().find_map(|a| {
            let m = a.matched?;
            let parts = a.table.parts(m.line.payload);
            let b = if part == 0 { parts.geo } else { parts.as_ };
            (!b.is_empty()).then_some(b)
        });
        if let Some(b) = bytes {
            field(out, &mut f, key);
            out.push(b'{');
            out.extend_from_slice(b);
            out.push(b'}');
        }
    }
    out.push(b'}');

    if open(out, &mut top, "user", c.user.is_some()) {
        let mut f = true;
        str_field(out, &mut f, "name", c.user.as_deref());
        out.push(b'}');
    }

    let version = c.protocol.as_deref().and_then(http_version);
    let request = c.method.is_some() || c.referer.is_some();
    let response = c.status.is_some() || c.bytes.is_some();
    if open(
        out,
        &mut top,
        "http",
        request || response || version.is_some(),
    ) {
        let mut f = true;
        if open(out, &mut f, "request", request) {
            let mut g = true;
            str_field(out, &mut g, "method", c.method.as_deref());
            str_field(out, &mut g, "referrer", c.referer.as_deref());
            out.push(b'}');
        }
        str_field(out, &mut f, "version", version);
        if open(out, &mut f, "response", response) {
            let mut g = true;
            u64_field(out, &mut g, "status_code", c.status);
            if open(out, &mut g, "body", c.bytes.is_some()) {
                let mut h = true;
                u64_field(out, &mut h, "bytes", c.bytes);
                out.push(b'}');
            }
            out.push(b'}');
        }
        out.push(b'}');
    }

    if open(out, &mut top, "url", c.path.is_some() || c.host.is_some()) {
        let mut f = true;
        if let Some(target) = c.path.as_deref() {
            let (path, query) = match target.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (target, None),
            };
            str_field(out, &mut f, "original", Some(target));
            str_field(out, &mut f, "path", Some(path));
            str_field(out, &mut f, "query", query);
        }
        str_field(out, &mut f, "domain", c.host.as_deref());
        out.push(b'}');
    }

    if open(out, &mut top, "user_agent", c.user_agent.is_some()) {
        let mut f = true;
        str_field(out, &mut f, "original", c.user_agent.as_deref());
        out.push(b'}');
    }

    field(out, &mut top, "event");
    out.push(b'{');
    let mut f = true;
    let module = p.format.name();
    field(out, &mut f, "dataset");
    out.push(b'"');
    out.extend_from_slice(module.as_bytes());
    out.extend_from_slice(b".access\"");
    str_field(out, &mut f, "module", Some(module));
    // ECS durations are nanoseconds; `duration` is finite and not negative.
    u64_field(
        out,
        &mut f,
        "duration",
        c.duration.map(|s| (s * 1e9).round() as u64),
    );
    str_field(out, &mut f, "original", line.original);
    out.push(b'}');

    field(out, &mut top, WHIPSTREAM);
    out.push(b'{');
    let mut f = true;
    str_field(out, &mut f, "time_source", line.time_source);
    let junk_request = c
        .protocol
        .is_none()
        .then_some(c.request.as_deref())
        .flatten();
    str_field(out, &mut f, "request", junk_request);
    str_field(
        out,
        &mut f,
        "protocol",
        c.protocol.as_deref().filter(|p| http_version(p).is_none()),
    );
    str_field(out, &mut f, "upstream", c.upstream.as_deref());
    if !p.fields.extra.is_empty() {
        field(out, &mut f, "extra");
        p.fields.write_extra(out);
    }
    if p.fields.truncated {
        field(out, &mut f, "truncated");
        out.extend_from_slice(b"true");
    }
    if p.fields.has_raw() {
        field(out, &mut f, "fields");
        p.fields.write_raw_object(out);
    }
    for a in answers {
        field(out, &mut f, a.name);
        match a.matched {
            None => out.extend_from_slice(b"null"),
            Some(m) => write_record(&m, a, out),
        }
    }
    out.extend_from_slice(b"}}\n");
}

/// A data set's `whipstream.<name>` object: provenance, then its fields with
/// no ECS name.
fn write_record(m: &Match<'_>, a: &Answer<'_, '_>, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut f = true;
    for (s, name) in super::provenance(a.selection) {
        field(out, &mut f, name);
        out.push(b'"');
        match s {
            Source::Datetime => m.snapshot.meta.instant().write_rfc3339(out),
            Source::Begin => m.line.begin.write_text(out),
            Source::End | Source::Field(_) => m.line.end.write_text(out),
        }
        out.push(b'"');
    }
    let rest = a.table.parts(m.line.payload).record;
    if !rest.is_empty() {
        if !f {
            out.push(b',');
        }
        out.extend_from_slice(rest);
    }
    out.push(b'}');
}

/// The fields of an ECS line other than data sets' (see [`super::field_specs`]).
pub fn line_specs(parser: &ParserConfig, include_line: bool) -> Vec<FieldSpec> {
    use ValueType::*;
    let mut out: Vec<FieldSpec> = [
        ("@timestamp", Date),
        ("source.ip", Ip),
        ("source.address", Keyword),
        ("source.port", Long),
        ("user.name", Keyword),
        ("http.request.method", Keyword),
        ("http.request.referrer", Keyword),
        ("http.version", Keyword),
        ("http.response.status_code", Long),
        ("http.response.body.bytes", Long),
        ("url.original", Keyword),
        ("url.path", Keyword),
        ("url.query", Keyword),
        ("url.domain", Keyword),
        ("user_agent.original", Keyword),
        ("event.dataset", Keyword),
        ("event.module", Keyword),
        ("event.duration", Long),
        ("whipstream.time_source", Keyword),
        ("whipstream.request", Keyword),
        ("whipstream.protocol", Keyword),
        ("whipstream.upstream", Keyword),
        ("whipstream.extra", Keyword),
        ("whipstream.truncated", Boolean),
    ]
    .into_iter()
    .map(|(path, ty)| FieldSpec {
        path: path.to_string(),
        ty,
    })
    .collect();
    if include_line {
        out.push(FieldSpec {
            path: "event.original".into(),
            ty: Keyword,
        });
    }
    if matches!(
        parser.format,
        Format::Auto | Format::Json | Format::W3c | Format::Regex
    ) {
        out.push(FieldSpec {
            path: "whipstream.fields".into(),
            ty: Object,
        });
    }
    out
}
