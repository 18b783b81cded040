//! JSON access logs: one object per line, with the field names real servers use.
//!
//! The client address, the event time and the common fields are looked up by
//! known names, in order of preference, each either a top-level key or a dotted
//! path into nested objects (`request.remote_ip`); a top-level key that contains
//! the dots itself (`source.ip` in flattened ECS) matches first. The names cover
//! nginx (`log_format ... escape=json` with its variable names), Caddy, Traefik,
//! Envoy/Istio, Google Cloud HTTP(S) load balancing, Cloudflare Logpush and
//! Elastic Common Schema; `--ip-field`/`--time-field` replace the address and time
//! lists. Values may be strings or numbers (nginx writes `"status":"200"`); they
//! come out typed. The whole object is kept under `fields`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::clock;
use super::fields::{number, seconds, Common, Fields, Raw};
use super::{Found, LineParser, ParseError};
use crate::json::{raw_str, Key};
use crate::time::Timestamp;

/// Default fields holding the client address, in order of preference.
pub const DEFAULT_IP_FIELDS: &[&str] = &[
    "remote_addr",
    "client_ip",
    "clientip",
    "ip",
    "remote_ip",
    "client",
    "src_ip",
    "source.ip",
    "client.ip",
    // Caddy: the peer, then the client it resolved through trusted proxies.
    "request.remote_ip",
    "request.client_ip",
    // Traefik.
    "ClientHost",
    "ClientAddr",
    // Envoy / Istio (with a port).
    "downstream_remote_address",
    // Google Cloud load balancing.
    "httpRequest.remoteIp",
    // Cloudflare Logpush.
    "ClientIP",
];

/// Default fields holding the event time, in order of preference: a server's
/// request-start field before its generic log-write time (Traefik writes both
/// `StartUTC` and `time`), nginx's millisecond `msec` before its whole-second
/// `time_iso8601`/`time_local`.
pub const DEFAULT_TIME_FIELDS: &[&str] = &[
    "StartUTC",
    "start_time",
    "EdgeStartTimestamp",
    "@timestamp",
    "timestamp",
    "time",
    "msec",
    "time_iso8601",
    "time_local",
    "ts",
    "date",
];

/// Default fields (or regex groups) holding `X-Forwarded-For`.
pub const DEFAULT_XFF_FIELDS: &[&str] = &[
    "x_forwarded_for",
    "http_x_forwarded_for",
    "xff",
    "x-forwarded-for",
    "forwarded_for",
    "request_X-Forwarded-For",
    "request.headers.X-Forwarded-For",
];

/// Where the common fields are found.
struct Known {
    method: &'static [&'static str],
    path: &'static [&'static str],
    protocol: &'static [&'static str],
    request: &'static [&'static str],
    status: &'static [&'static str],
    bytes: &'static [&'static str],
    referer: &'static [&'static str],
    user_agent: &'static [&'static str],
    user: &'static [&'static str],
    host: &'static [&'static str],
    upstream: &'static [&'static str],
}

const KNOWN: Known = Known {
    method: &[
        "method",
        "request_method",
        "RequestMethod",
        "request.method",
        "ClientRequestMethod",
        "httpRequest.requestMethod",
        "http.request.method",
    ],
    path: &[
        "path",
        "request_uri",
        "uri",
        "RequestPath",
        "request.uri",
        "ClientRequestURI",
        "httpRequest.requestUrl",
        "url.original",
        "url.path",
    ],
    protocol: &[
        "protocol",
        "server_protocol",
        "RequestProtocol",
        "request.proto",
        "ClientRequestProtocol",
        "httpRequest.protocol",
    ],
    request: &["request"],
    status: &[
        "status",
        "response_code",
        "DownstreamStatus",
        "EdgeResponseStatus",
        "httpRequest.status",
        "http.response.status_code",
    ],
    bytes: &[
        "body_bytes_sent",
        "bytes_sent",
        "bytes",
        "size",
        "DownstreamContentSize",
        "EdgeResponseBytes",
        "httpRequest.responseSize",
        "http.response.body.bytes",
    ],
    referer: &[
        "http_referer",
        "referer",
        "referrer",
        "http_referrer",
        "request_Referer",
        "request.headers.Referer",
        "ClientRequestReferer",
        "httpRequest.referer",
        "http.request.referrer",
    ],
    user_agent: &[
        "http_user_agent",
        "user_agent",
        "request_User-Agent",
        "request.headers.User-Agent",
        "ClientRequestUserAgent",
        "httpRequest.userAgent",
        "user_agent.original",
    ],
    user: &[
        "remote_user",
        "user",
        "ClientUsername",
        "user_id",
        "user.name",
    ],
    host: &[
        "host",
        "http_host",
        "authority",
        "RequestHost",
        "request.host",
        "ClientRequestHost",
        "url.domain",
    ],
    upstream: &["upstream_addr", "upstream_host", "ServiceAddr"],
};

/// Durations and their units in seconds. `duration` means seconds in Caddy's
/// logs and milliseconds in Envoy's, so it is read only when the address field
/// said whose log it is.
const DURATIONS: &[(&str, f64)] = &[
    ("request_time", 1.0),
    ("Duration", 1e-9),
    ("httpRequest.latency", 1.0),
];

/// A parsed object: its top-level fields, values raw, and nested objects parsed
/// once however many names look into them.
struct Doc<'a> {
    top: Vec<(Cow<'a, str>, &'a RawValue)>,
    nested: RefCell<Vec<(usize, std::rc::Rc<Doc<'a>>)>>,
}

impl<'a> Doc<'a> {
    fn parse(text: &'a str) -> Result<Doc<'a>, ParseError> {
        Ok(Doc {
            top: top_level_fields(text)?,
            nested: RefCell::new(Vec::new()),
        })
    }

    fn child(&self, raw: &'a RawValue) -> Result<Option<std::rc::Rc<Doc<'a>>>, ParseError> {
        let text = raw.get();
        if !text.starts_with('{') {
            return Ok(None);
        }
        let key = text.as_ptr() as usize;
        if let Some((_, d)) = self.nested.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(Some(d.clone()));
        }
        let d = std::rc::Rc::new(Doc::parse(text)?);
        self.nested.borrow_mut().push((key, d.clone()));
        Ok(Some(d))
    }

    /// `a.b.c`: a key named exactly so, or a path through nested objects.
    fn get(&self, name: &str) -> Result<Option<&'a RawValue>, ParseError> {
        if let Some((_, v)) = self.top.iter().find(|(k, _)| k == name) {
            return Ok(Some(v));
        }
        let Some((head, tail)) = name.split_once('.') else {
            return Ok(None);
        };
        let Some((_, v)) = self.top.iter().find(|(k, _)| k == head) else {
            return Ok(None);
        };
        match self.child(v)? {
            Some(child) => child.get(tail),
            None => Ok(None),
        }
    }

    /// The first of `names` present with a scalar value (not `null`, not an
    /// object or array: ECS has `client` as an object holding `client.ip`), with
    /// its index in `names`.
    fn first<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<Option<(usize, &'a RawValue)>, ParseError> {
        for (i, name) in names.iter().enumerate() {
            if let Some(v) = self.get(name.as_ref())? {
                let t = v.get();
                if t != "null" && !t.starts_with('{') && !t.starts_with('[') {
                    return Ok(Some((i, v)));
                }
            }
        }
        Ok(None)
    }

    /// The first of `names` with a text value (an object under an earlier name,
    /// as ECS's `user_agent` is, does not hide `user_agent.original`).
    fn text(&self, names: &[&str]) -> Result<Option<Cow<'a, str>>, ParseError> {
        for name in names {
            if let Some(t) = self.get(name)?.and_then(value_text) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    fn number(&self, names: &[&str]) -> Result<Option<u64>, ParseError> {
        for name in names {
            if let Some(n) = self
                .get(name)?
                .and_then(value_text)
                .and_then(|t| number(&t))
            {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }
}

/// A value as text: a string (an empty one or `-` is no value), the first string
/// of an array (Caddy logs headers as arrays), or a number's digits.
fn value_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let t = raw.get();
    let s = match t.as_bytes().first()? {
        b'"' => raw_str(raw)?,
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(t).ok()?;
            let first = raw_str(items.first()?)?;
            // Borrowed from `items`, which is dropped here: own it.
            Cow::Owned(first.into_owned())
        }
        b'-' | b'0'..=b'9' => Cow::Borrowed(t),
        _ => return None,
    };
    (s != "-" && !s.is_empty()).then_some(s)
}

impl LineParser {
    pub(super) fn parse_json<'a>(&self, line: &'a str) -> Result<Found<'a>, ParseError> {
        // The object is passed through into the enriched line as it is: what a
        // strict parser refuses there (a lone surrogate, `1e5000`, deep
        // nesting) makes the line a dead letter here, with the rule it broke.
        if crate::json::may_not_be_strict(line.as_bytes(), crate::json::MAX_DEPTH) {
            crate::json::check_strict(line.as_bytes(), crate::json::MAX_DEPTH)
                .map_err(|e| ParseError::Json(e.to_string()))?;
        }
        let doc = Doc::parse(line)?;
        let cfg = &self.config;
        let remote_hit = doc.first(&cfg.ip_fields)?;
        let remote = match remote_hit {
            Some((_, raw)) => Some(
                raw_str(raw)
                    .ok_or_else(|| ParseError::BadIp(format!("not a string: {}", raw.get())))?,
            ),
            None => None,
        };
        let xff = match cfg.client_ip {
            super::ClientIp::Xff => doc.first(&cfg.xff_fields)?.and_then(|(_, v)| value_text(v)),
            _ => None,
        };
        let time = match doc.first(&cfg.time_fields)? {
            Some((_, raw)) => Some(self.json_time(raw)?),
            None => None,
        };

        let k = &KNOWN;
        let mut c = Common::default();
        if let Some(r) = doc.text(k.request)? {
            c.set_request(r);
        }
        // Separate fields, where the log has them, win over the split request.
        if let Some(m) = doc.text(k.method)? {
            c.method = Some(m);
        }
        if let Some(p) = doc.text(k.path)? {
            c.path = Some(p);
        }
        if let Some(p) = doc.text(k.protocol)? {
            c.protocol = Some(p);
        }
        c.status = doc.number(k.status)?;
        c.bytes = doc.number(k.bytes)?;
        c.referer = doc.text(k.referer)?;
        c.user_agent = doc.text(k.user_agent)?;
        c.user = doc.text(k.user)?;
        c.host = doc.text(k.host)?;
        c.upstream = doc.text(k.upstream)?;
        c.duration = self.json_duration(&doc, remote_hit.map(|(i, _)| i))?;
        Ok(Found {
            remote,
            xff,
            remote_from_xff: false,
            time,
            fields: Fields::new(c, Raw::Json(line.trim())),
        })
    }

    fn json_duration(
        &self,
        doc: &Doc<'_>,
        ip_field: Option<usize>,
    ) -> Result<Option<f64>, ParseError> {
        for (name, unit) in DURATIONS {
            if let Some(t) = doc.text(&[*name])? {
                return Ok(seconds(t.trim_end_matches('s'), *unit));
            }
        }
        // `duration` by whose log this is, told by the address field found.
        let ip_name = ip_field
            .and_then(|i| self.config.ip_fields.get(i))
            .map(String::as_str);
        let unit = match ip_name {
            Some("request.remote_ip" | "request.client_ip") => 1.0,
            Some("downstream_remote_address") => 1e-3,
            _ => return Ok(None),
        };
        Ok(doc.text(&["duration"])?.and_then(|t| seconds(&t, unit)))
    }

    fn json_time(&self, raw: &RawValue) -> Result<Timestamp, ParseError> {
        match raw_str(raw) {
            Some(s) => clock::text(&s, self.config.time_format, &self.config.zone),
            None => clock::number(raw.get(), self.config.time_format),
        }
    }
}

/// The top-level fields of a JSON object line, values kept raw.
fn top_level_fields(line: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, ParseError> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = map.next_key::<Key<'de>>()? {
                out.push((k.0, map.next_value::<&'de RawValue>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let fields = de
        .deserialize_map(V)
        .map_err(|e| ParseError::Json(e.to_string()))?;
    de.end().map_err(|e| ParseError::Json(e.to_string()))?;
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::ip::IpKey;
    use crate::logline::{LineParser, ParserConfig};

    /// Puts `value` at `name`: a flat key, or nested objects along its dots.
    fn put(obj: &mut Map<String, Value>, name: &str, value: Value, flat: bool) {
        match name.split_once('.') {
            Some((head, tail)) if !flat => {
                let inner = obj
                    .entry(head.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = inner {
                    put(m, tail, value, flat);
                }
            }
            _ => {
                obj.insert(name.to_string(), value);
            }
        }
    }

    /// How a time is written: RFC 3339 UTC, with an offset, or epoch numbers.
    fn time_value(micros: i64, form: u8) -> Value {
        let t = Timestamp::from_micros(micros);
        match form {
            0 => json!(t.to_rfc3339()),
            1 => {
                // The same instant at +05:30.
                let local = Timestamp::from_micros(micros + 19_800_000_000).to_rfc3339();
                json!(local.replace('Z', "+05:30"))
            }
            2 => serde_json::from_str(&format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000))
                .unwrap(),
            3 => json!(format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)),
            _ => serde_json::from_str(&format!("{}", i128::from(micros) * 1000)).unwrap(),
        }
    }

    proptest! {
        /// Whatever known names carry the address, the time, the status and the
        /// bytes, nested or flat, strings or numbers, in any order among other
        /// fields, the parser finds them (model: the values that were put there).
        #[test]
        fn known_fields_are_found_wherever_they_are(
            ip_name in 0..DEFAULT_IP_FIELDS.len(),
            time_name in 0..DEFAULT_TIME_FIELDS.len(),
            status_name in 0..KNOWN.status.len(),
            bytes_name in 0..KNOWN.bytes.len(),
            flat in any::<[bool; 4]>(),
            v6 in any::<bool>(),
            addr in any::<u32>(),
            port in proptest::option::of(1u16..),
            // 2001-09-09 .. 2033-05-18, whole milliseconds or microseconds.
            micros in 1_000_000_000_000_000i64..2_000_000_000_000_000,
            time_form in 0u8..5,
            status in 100u64..600,
            status_as_text in any::<bool>(),
            bytes in 0u64..10_000_000_000,
            noise in proptest::collection::vec(("[a-z]{1,8}", "[ -~]{0,12}"), 0..6),
            order in any::<u64>(),
        ) {
            let ip_text = if v6 { format!("2001:db8::{:x}", addr & 0xffff) } else { std::net::Ipv4Addr::from(addr).to_string() };
            let written = match (port, v6) {
                (Some(p), true) => format!("[{ip_text}]:{p}"),
                (Some(p), false) => format!("{ip_text}:{p}"),
                (None, _) => ip_text.clone(),
            };
            let mut obj = Map::new();
            for (k, v) in &noise {
                obj.insert(format!("x_{k}"), json!(v));
            }
            let status_v = if status_as_text { json!(status.to_string()) } else { json!(status) };
            put(&mut obj, DEFAULT_IP_FIELDS[ip_name], json!(written), flat[0]);
            put(&mut obj, DEFAULT_TIME_FIELDS[time_name], time_value(micros, time_form), flat[1]);
            put(&mut obj, KNOWN.status[status_name], status_v, flat[2]);
            put(&mut obj, KNOWN.bytes[bytes_name], json!(bytes.to_string()), flat[3]);
            // Any order of the top-level fields.
            let mut fields: Vec<(String, Value)> = obj.into_iter().collect();
            let n = fields.len();
            for i in 0..n {
                fields.swap(i, (order.rotate_left(i as u32 * 7) as usize) % n);
            }
            let text = format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json!(k), v))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let p = LineParser::new(ParserConfig::default()).unwrap();
            let l = p.parse(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert_eq!(l.ip, IpKey::parse(&ip_text).unwrap(), "{}", text);
            prop_assert_eq!(l.ip_text.as_ref(), ip_text.as_str());
            prop_assert_eq!(l.time, Some(Timestamp::from_micros(micros)), "{}", text);
            prop_assert_eq!(l.fields.common.status, Some(status), "{}", text);
            prop_assert_eq!(l.fields.common.bytes, Some(bytes), "{}", text);
        }
    }

    #[test]
    fn each_servers_names_are_preferred_in_order() {
        let p = LineParser::new(ParserConfig::default()).unwrap();
        // Traefik writes its start time and a local log time: the start wins.
        let l = p
            .parse(r#"{"time":"2024-10-02T12:00:09+02:00","StartUTC":"2024-10-02T10:00:00Z","ClientHost":"192.0.2.1"}"#)
            .unwrap();
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-10-02T10:00:00Z");
        // nginx's msec keeps the milliseconds time_iso8601 drops.
        let l = p
            .parse(r#"{"time_iso8601":"2024-10-02T10:00:00+00:00","msec":"1727863200.250","remote_addr":"192.0.2.1"}"#)
            .unwrap();
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-10-02T10:00:00.25Z");
        // ECS: `client` is an object; its `client.ip` is the address.
        let l = p
            .parse(r#"{"client":{"ip":"192.0.2.9","port":1},"@timestamp":"2024-10-02T10:00:00Z"}"#)
            .unwrap();
        assert_eq!(l.ip_text, "192.0.2.9");
        // `duration` is seconds in Caddy's log, milliseconds in Envoy's.
        let caddy = p
            .parse(r#"{"request":{"remote_ip":"192.0.2.1"},"duration":0.5}"#)
            .unwrap();
        assert_eq!(caddy.fields.common.duration, Some(0.5));
        let envoy = p
            .parse(r#"{"downstream_remote_address":"192.0.2.1:5","duration":500}"#)
            .unwrap();
        assert_eq!(envoy.fields.common.duration, Some(0.5));
        let other = p.parse(r#"{"ip":"192.0.2.1","duration":500}"#).unwrap();
        assert_eq!(other.fields.common.duration, None);
    }
}
