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

use super::render::Tables;
use super::select::Selection;
use crate::index::Match;
use crate::json::{write_key, write_str, write_u64};
use crate::logline::{Format, LogLine, ParserConfig};
use crate::output_fields::{FieldSpec, ValueType};
use crate::time::Timestamp;

/// The ECS custom field set whipstream's own fields go under.
pub const WHIPSTREAM: &str = "whipstream";
/// The key of an ECS line's event time.
pub const TIMESTAMP: &str = "@timestamp";

/// One line's parts that are not data sets.
pub struct Line<'l, 'a> {
    pub parsed: &'l LogLine<'a>,
    pub t: Timestamp,
    /// `read`, `at` or `kafka` for a line enriched at another time.
    pub time_source: Option<&'static str>,
    /// The original line, unless `--no-line`.
    pub original: Option<&'l str>,
}

/// The data sets of a flow, in order: names, prepared tables, chosen fields.
pub struct DataSets<'l> {
    pub names: &'l [String],
    pub tables: &'l Tables,
    pub selections: &'l [Option<Selection>],
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

/// Writes `s` as a JSON string and returns the escaped text written (the
/// quotes included), for writing the same value again by copying.
fn copy_str(out: &mut Vec<u8>, s: &str) -> std::ops::Range<usize> {
    let at = out.len();
    write_str(out, s);
    at..out.len()
}

/// `HTTP/1.1` -> `1.1`; other protocols have no `http.version`.
fn http_version(protocol: &str) -> Option<&str> {
    protocol.strip_prefix("HTTP/")
}

/// Appends the line as an ECS object and a newline; `answer(i)` is data set
/// `i`'s match.
pub fn write_line<'m>(
    line: &Line<'_, '_>,
    sets: &DataSets<'_>,
    answer: &dyn Fn(usize) -> Option<Match<'m>>,
    out: &mut Vec<u8>,
) {
    let p = line.parsed;
    let c = &p.fields.common;
    out.push(b'{');
    let mut top = true;
    field(out, &mut top, TIMESTAMP);
    out.push(b'"');
    line.t.write_rfc3339(out);
    out.push(b'"');

    // source
    field(out, &mut top, "source");
    out.push(b'{');
    let mut f = false;
    write_key(out, "ip");
    let ip = copy_str(out, &p.ip_text);
    out.extend_from_slice(b",\"address\":");
    out.extend_from_within(ip);
    u64_field(out, &mut f, "port", p.port.map(u64::from));
    for (key, part) in [("geo", 0), ("as", 1)] {
        let bytes = sets.tables.sets.iter().enumerate().find_map(|(i, table)| {
            let m = answer(i)?;
            let parts = table.parts(m.line.payload);
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
            field(out, &mut f, "original");
            let original = copy_str(out, target);
            // Escaping never writes a `?`: the escaped original splits at its
            // first one exactly as the text does.
            out.extend_from_slice(b",\"path\":");
            match out[original.clone()].iter().position(|&b| b == b'?') {
                Some(q) => {
                    let q = original.start + q;
                    out.extend_from_within(original.start..q);
                    out.extend_from_slice(b"\",\"query\":\"");
                    out.extend_from_within(q + 1..original.end);
                }
                None => out.extend_from_within(original),
            }
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
    for (i, (name, table)) in sets.names.iter().zip(&sets.tables.sets).enumerate() {
        field(out, &mut f, name);
        match answer(i) {
            None => out.extend_from_slice(b"null"),
            Some(m) => super::write_record(&m, table, sets.selections[i].as_ref(), true, out),
        }
    }
    out.extend_from_slice(b"}}\n");
}

/// The fields of an ECS line other than data sets' (see [`super::field_specs`]).
pub fn line_specs(parser: &ParserConfig, include_line: bool) -> Vec<FieldSpec> {
    use ValueType::*;
    let mut out: Vec<FieldSpec> = [
        (TIMESTAMP, Date),
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
        ("whipstream.extra", Object),
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
