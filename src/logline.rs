//! Access-log lines: finding the client address, the event time and the fields.
//!
//! A [`LineParser`] is built once from validated settings (regexes compiled, field
//! names resolved) and then parses lines without allocating in the common formats:
//! Apache/nginx `combined` and `common` (one hand-written scanner; lenient about a
//! truncated last quoted field, as real logs have them), JSON lines, a custom regex
//! with named groups `ip` and `time`, or `auto` (JSON or combined/common, per line).
//!
//! The client address comes from the format's remote address, from
//! `X-Forwarded-For` walked from the right past trusted proxies, or from the first
//! address anywhere in the line. A line that yields no address, or a time that is
//! not a time, is a [`ParseError`]: the caller dead-letters it.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::ip::{Cidr, IpKey};
use crate::json::{raw_str, write_key, write_opt_str, write_str, write_u64, Key};
use crate::time::Instant;

/// Which line format to expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON for lines starting with `{`, else combined/common.
    Auto,
    /// Apache/nginx combined (also accepts common lines).
    Combined,
    /// Apache/nginx common (also accepts combined lines).
    Common,
    /// One JSON object per line.
    Json,
    /// A custom regex with named groups `ip` and `time` (and any others).
    Regex,
}

/// Where the client address comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIp {
    /// The format's remote address (`%h`, `$remote_addr`, the JSON ip field).
    Remote,
    /// `X-Forwarded-For`, walked from the right past trusted proxies.
    Xff,
    /// The first address found anywhere in the line.
    Any,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        Ok(match s {
            "auto" => Format::Auto,
            "combined" => Format::Combined,
            "common" => Format::Common,
            "json" => Format::Json,
            "regex" => Format::Regex,
            _ => {
                return Err(format!(
                    "unknown format {s:?} (auto, combined, common, json, regex)"
                ))
            }
        })
    }
}

impl ClientIp {
    pub fn parse(s: &str) -> Result<ClientIp, String> {
        Ok(match s {
            "remote" => ClientIp::Remote,
            "xff" => ClientIp::Xff,
            "any" => ClientIp::Any,
            _ => return Err(format!("unknown client IP source {s:?} (remote, xff, any)")),
        })
    }
}

/// How to read a time that is not in the format's own notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339/ISO 8601, then `dd/Mon/yyyy:HH:MM:SS ±hhmm`, then epoch numbers.
    Auto,
    Rfc3339,
    Clf,
    /// Seconds since the epoch (fraction allowed).
    Epoch,
    /// Milliseconds since the epoch.
    EpochMillis,
}

impl std::str::FromStr for TimeFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => TimeFormat::Auto,
            "rfc3339" | "iso8601" => TimeFormat::Rfc3339,
            "clf" | "apache" | "nginx" => TimeFormat::Clf,
            "epoch" | "unix" => TimeFormat::Epoch,
            "epoch_ms" | "unix_ms" => TimeFormat::EpochMillis,
            _ => {
                return Err(format!(
                    "unknown time format {s:?} (auto, rfc3339, clf, epoch, epoch_ms)"
                ))
            }
        })
    }
}

/// Default JSON fields holding the client address, in order of preference.
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
];
/// Default JSON fields holding the event time.
pub const DEFAULT_TIME_FIELDS: &[&str] = &[
    "time",
    "timestamp",
    "@timestamp",
    "time_local",
    "ts",
    "date",
];
/// Default JSON fields (or regex groups) holding `X-Forwarded-For`.
pub const DEFAULT_XFF_FIELDS: &[&str] = &[
    "x_forwarded_for",
    "http_x_forwarded_for",
    "xff",
    "x-forwarded-for",
    "forwarded_for",
];

/// Validated parser settings.
#[derive(Clone, Debug)]
pub struct ParserConfig {
    pub format: Format,
    /// Required for [`Format::Regex`]: named groups `ip` (unless `--client-ip any`)
    /// and optionally `time`.
    pub regex: Option<Regex>,
    pub time_format: TimeFormat,
    pub ip_fields: Vec<String>,
    pub time_fields: Vec<String>,
    pub client_ip: ClientIp,
    /// JSON field / regex group with X-Forwarded-For; for combined lines, the
    /// 1-based index of the extra quoted field after the user agent.
    pub xff_fields: Vec<String>,
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig {
            format: Format::Auto,
            regex: None,
            time_format: TimeFormat::Auto,
            ip_fields: DEFAULT_IP_FIELDS.iter().map(|s| s.to_string()).collect(),
            time_fields: DEFAULT_TIME_FIELDS.iter().map(|s| s.to_string()).collect(),
            client_ip: ClientIp::Remote,
            xff_fields: DEFAULT_XFF_FIELDS.iter().map(|s| s.to_string()).collect(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl ParserConfig {
    /// Reads lines with `re`; a regex given with the format left on `auto` means
    /// `--format regex`.
    pub fn use_regex(&mut self, re: Regex) {
        self.regex = Some(re);
        if self.format == Format::Auto {
            self.format = Format::Regex;
        }
    }
}

/// Why a line cannot be enriched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line does not match the {0} format")]
    NoMatch(&'static str),
    #[error("no client IP found")]
    NoIp,
    #[error("bad client IP: {0}")]
    BadIp(String),
    #[error("bad timestamp: {0}")]
    BadTime(String),
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// Fields of a combined/common line (`None` where the log wrote `-`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clf<'a> {
    pub ident: Option<&'a str>,
    pub user: Option<&'a str>,
    pub request: Option<&'a str>,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub protocol: Option<&'a str>,
    pub status: Option<u64>,
    pub bytes: Option<u64>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// Quoted or bare fields after the user agent (nginx logs often add some).
    pub extra: Vec<&'a str>,
    /// The line ended inside a quoted field (a truncated line).
    pub truncated: bool,
}

/// The parsed fields, ready to be written into the output object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields<'a> {
    Clf(Clf<'a>),
    /// A JSON line: its object text, written under `"fields"`.
    Json(&'a str),
    /// Regex captures by group name.
    Named(Vec<(String, Option<&'a str>)>),
    None,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub ip: IpKey,
    /// The client address as written in the line (or in X-Forwarded-For).
    pub ip_text: Cow<'a, str>,
    /// The line's own time; `None` when it has none.
    pub time: Option<Instant>,
    pub fields: Fields<'a>,
}

impl Fields<'_> {
    /// Appends `,"key":value` pairs for the parsed fields.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Fields::Clf(c) => {
                // `ident` (RFC 1413) is left out: it is "-" in practice and stays
                // in `line`. `request` is written only when it does not split
                // into method, path and protocol (scanners send such junk).
                let pairs: [(&str, Option<&str>); 5] = [
                    ("user", c.user),
                    ("method", c.method),
                    ("path", c.path),
                    ("protocol", c.protocol),
                    ("referer", c.referer),
                ];
                if c.request.is_some() && c.protocol.is_none() {
                    out.push(b',');
                    write_key(out, "request");
                    write_opt_str(out, c.request);
                }
                for (k, v) in pairs {
                    out.push(b',');
                    write_key(out, k);
                    write_opt_str(out, v);
                }
                for (k, v) in [("status", c.status), ("bytes", c.bytes)] {
                    out.push(b',');
                    write_key(out, k);
                    match v {
                        Some(n) => write_u64(out, n),
                        None => out.extend_from_slice(b"null"),
                    }
                }
                out.push(b',');
                write_key(out, "user_agent");
                write_opt_str(out, c.user_agent);
                if !c.extra.is_empty() {
                    out.push(b',');
                    write_key(out, "extra");
                    out.push(b'[');
                    for (i, e) in c.extra.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_opt_str(out, dash_is_none(e));
                    }
                    out.push(b']');
                }
                if c.truncated {
                    out.extend_from_slice(b",\"truncated\":true");
                }
            }
            Fields::Json(obj) => {
                out.push(b',');
                write_key(out, "fields");
                out.extend_from_slice(obj.as_bytes());
            }
            Fields::Named(groups) => {
                for (name, value) in groups {
                    out.push(b',');
                    write_str(out, name);
                    out.push(b':');
                    write_opt_str(out, value.and_then(dash_is_none));
                }
            }
            Fields::None => {}
        }
    }
}

fn dash_is_none(s: &str) -> Option<&str> {
    if s == "-" || s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// Parses lines according to a [`ParserConfig`].
#[derive(Debug)]
pub struct LineParser {
    config: ParserConfig,
    any_ip: Regex,
    any_time: Regex,
    /// Regex group names other than `ip` and `time`, for output.
    regex_groups: Vec<String>,
}

impl LineParser {
    pub fn new(config: ParserConfig) -> Result<LineParser, String> {
        let regex_groups = match (&config.format, &config.regex) {
            (Format::Regex, None) => return Err("--format regex needs --regex".into()),
            (Format::Regex, Some(re)) => {
                let names: Vec<String> = re.capture_names().flatten().map(String::from).collect();
                if config.client_ip == ClientIp::Remote && !names.iter().any(|n| n == "ip") {
                    return Err("--regex needs a named group `ip` (e.g. (?P<ip>\\S+))".into());
                }
                names
                    .into_iter()
                    .filter(|n| n != "ip" && n != "time")
                    .collect()
            }
            _ => Vec::new(),
        };
        // Built from constant patterns; a failure would be a bug caught by tests.
        let any_ip = Regex::new(
            r"(?:\b\d{1,3}(?:\.\d{1,3}){3}\b)|(?:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]*:[0-9A-Fa-f.]*[0-9A-Fa-f])",
        )
        .map_err(|e| e.to_string())?;
        let any_time = Regex::new(
            r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4})\]|(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|z|[+-]\d{2}:?\d{2})?)",
        )
        .map_err(|e| e.to_string())?;
        Ok(LineParser {
            config,
            any_ip,
            any_time,
            regex_groups,
        })
    }

    pub fn config(&self) -> &ParserConfig {
        &self.config
    }

    /// Parses one line (without its newline).
    pub fn parse<'a>(&self, line: &'a str) -> Result<LogLine<'a>, ParseError> {
        let mut parsed = match self.config.format {
            Format::Auto => {
                if line.trim_start().starts_with('{') {
                    self.parse_json(line)?
                } else {
                    self.parse_clf(line)?
                }
            }
            Format::Combined | Format::Common => self.parse_clf(line)?,
            Format::Json => self.parse_json(line)?,
            Format::Regex => self.parse_regex(line)?,
        };
        if self.config.client_ip == ClientIp::Any {
            let (ip, text) = self.first_ip(line).ok_or(ParseError::NoIp)?;
            parsed.ip = ip;
            parsed.ip_text = Cow::Borrowed(text);
        }
        Ok(parsed)
    }

    fn first_ip<'a>(&self, line: &'a str) -> Option<(IpKey, &'a str)> {
        self.any_ip
            .find_iter(line)
            .find_map(|m| IpKey::parse(m.as_str()).ok().map(|ip| (ip, m.as_str())))
    }

    fn time_anywhere(&self, line: &str) -> Result<Option<Instant>, ParseError> {
        let Some(c) = self.any_time.captures(line) else {
            return Ok(None);
        };
        if let Some(clf) = c.get(1) {
            return Instant::parse_clf(clf.as_str().as_bytes())
                .map(Some)
                .map_err(|e| ParseError::BadTime(e.to_string()));
        }
        match c.get(2) {
            Some(iso) => Instant::parse(iso.as_str())
                .map(Some)
                .map_err(|e| ParseError::BadTime(e.to_string())),
            None => Ok(None),
        }
    }

    /// Resolves the client address from the remote one and, in `xff` mode, the
    /// X-Forwarded-For value.
    fn client<'a>(
        &self,
        remote: Option<Cow<'a, str>>,
        xff: Option<Cow<'a, str>>,
    ) -> Result<(IpKey, Cow<'a, str>), ParseError> {
        let remote_ip = match &remote {
            Some(r) => Some(IpKey::parse(r).map_err(|e| ParseError::BadIp(e.to_string()))?),
            None => None,
        };
        if self.config.client_ip == ClientIp::Xff {
            if let Some(x) = xff {
                if let Some((ip, hop)) = walk_xff(&x, remote_ip, &self.config.trusted_proxies) {
                    let text = match x {
                        Cow::Borrowed(b) => Cow::Borrowed(&b[hop]),
                        Cow::Owned(o) => Cow::Owned(o[hop].to_string()),
                    };
                    return Ok((ip, text));
                }
            }
        }
        match (remote_ip, remote) {
            (Some(ip), Some(text)) => Ok((ip, text)),
            // `any` mode fills the address in afterwards.
            _ if self.config.client_ip == ClientIp::Any => Ok((IpKey::MIN, Cow::Borrowed(""))),
            _ => Err(ParseError::NoIp),
        }
    }

    fn parse_clf<'a>(&self, line: &'a str) -> Result<LogLine<'a>, ParseError> {
        let (remote, clf, time) =
            scan_clf(line).ok_or(ParseError::NoMatch(match self.config.format {
                Format::Common => "common",
                Format::Auto => "combined/common/JSON",
                _ => "combined",
            }))?;
        let time =
            Instant::parse_clf(time.as_bytes()).map_err(|e| ParseError::BadTime(e.to_string()))?;
        let xff_index = self
            .config
            .xff_fields
            .iter()
            .find_map(|f| f.parse::<usize>().ok())
            .unwrap_or(1);
        let xff = clf
            .extra
            .get(xff_index.saturating_sub(1))
            .copied()
            .and_then(dash_is_none);
        let remote = (self.config.client_ip != ClientIp::Any).then_some(Cow::Borrowed(remote));
        let (ip, ip_text) = self.client(remote, xff.map(Cow::Borrowed))?;
        Ok(LogLine {
            ip,
            ip_text,
            time: Some(time),
            fields: Fields::Clf(clf),
        })
    }

    fn parse_json<'a>(&self, line: &'a str) -> Result<LogLine<'a>, ParseError> {
        let fields = top_level_fields(line)?;
        let find = |names: &[String]| -> Result<Option<&'a RawValue>, ParseError> {
            for name in names {
                if let Some(v) = lookup_path(&fields, name)? {
                    return Ok(Some(v));
                }
            }
            Ok(None)
        };
        let remote_raw = find(&self.config.ip_fields)?;
        let remote = match remote_raw {
            Some(raw) => Some(
                raw_str(raw)
                    .ok_or_else(|| ParseError::BadIp(format!("not a string: {}", raw.get())))?,
            ),
            None => None,
        };
        let xff = match self.config.client_ip {
            ClientIp::Xff => find(&self.config.xff_fields)?.and_then(raw_str),
            _ => None,
        };
        let time = match find(&self.config.time_fields)? {
            Some(raw) => Some(self.json_time(raw)?),
            None => None,
        };
        let (ip, ip_text) = self.client(remote, xff)?;
        Ok(LogLine {
            ip,
            ip_text,
            time,
            fields: Fields::Json(line.trim()),
        })
    }

    fn json_time(&self, raw: &RawValue) -> Result<Instant, ParseError> {
        let text = raw.get();
        if let Some(s) = raw_str(raw) {
            return self.parse_time_text(&s);
        }
        // A bare number: epoch seconds, milliseconds or microseconds by magnitude.
        let n: f64 = text
            .parse()
            .map_err(|_| ParseError::BadTime(format!("not a time: {text}")))?;
        epoch_number(n, self.config.time_format)
            .ok_or_else(|| ParseError::BadTime(format!("not a time: {text}")))
    }

    fn parse_time_text(&self, s: &str) -> Result<Instant, ParseError> {
        let bad = |e: String| ParseError::BadTime(e);
        let s = s.trim();
        match self.config.time_format {
            TimeFormat::Rfc3339 => Instant::parse(s).map_err(|e| bad(e.to_string())),
            TimeFormat::Clf => {
                let s = s.trim_start_matches('[').trim_end_matches(']');
                Instant::parse_clf(s.as_bytes()).map_err(|e| bad(e.to_string()))
            }
            TimeFormat::Epoch | TimeFormat::EpochMillis => {
                let n: f64 = s.parse().map_err(|_| bad(format!("not a number: {s:?}")))?;
                epoch_number(n, self.config.time_format)
                    .ok_or_else(|| bad(format!("out of range: {s:?}")))
            }
            TimeFormat::Auto => {
                if let Ok(t) = Instant::parse(s) {
                    return Ok(t);
                }
                let clf = s.trim_start_matches('[').trim_end_matches(']');
                if let Ok(t) = Instant::parse_clf(clf.as_bytes()) {
                    return Ok(t);
                }
                if let Ok(n) = s.parse::<f64>() {
                    if let Some(t) = epoch_number(n, TimeFormat::Auto) {
                        return Ok(t);
                    }
                }
                Err(bad(format!("not a time: {s:?}")))
            }
        }
    }

    fn parse_regex<'a>(&self, line: &'a str) -> Result<LogLine<'a>, ParseError> {
        let re = self
            .config
            .regex
            .as_ref()
            .ok_or(ParseError::NoMatch("regex"))?;
        let caps = re.captures(line).ok_or(ParseError::NoMatch("regex"))?;
        let remote = caps.name("ip").map(|m| m.as_str());
        let xff = self
            .config
            .xff_fields
            .iter()
            .find_map(|f| caps.name(f))
            .map(|m| m.as_str())
            .and_then(dash_is_none);
        let (ip, ip_text) = self.client(remote.map(Cow::Borrowed), xff.map(Cow::Borrowed))?;
        let time = match caps.name("time") {
            Some(m) => Some(self.parse_time_text(m.as_str())?),
            None => self.time_anywhere(line)?,
        };
        let named = self
            .regex_groups
            .iter()
            .map(|g| (g.clone(), caps.name(g).map(|m| m.as_str())))
            .collect();
        Ok(LogLine {
            ip,
            ip_text,
            time,
            fields: Fields::Named(named),
        })
    }
}

/// Interprets a number as epoch seconds, milliseconds or microseconds.
fn epoch_number(n: f64, format: TimeFormat) -> Option<Instant> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let micros = match format {
        TimeFormat::EpochMillis => n * 1e3,
        TimeFormat::Epoch => n * 1e6,
        _ if n < 1e11 => n * 1e6,
        _ if n < 1e14 => n * 1e3,
        _ => n,
    };
    (micros < 9.2e18).then(|| Instant::from_micros(micros as i64))
}

/// Walks X-Forwarded-For from the right (after the remote address itself): the
/// first address that is not a trusted proxy is the client. Returns it with its
/// position in `xff`, or `None` when the header cannot be used (no usable address,
/// or a remote peer that is not a trusted proxy, whose header may be forged).
fn walk_xff(
    xff: &str,
    remote: Option<IpKey>,
    trusted: &[Cidr],
) -> Option<(IpKey, std::ops::Range<usize>)> {
    let is_trusted = |ip: IpKey| trusted.iter().any(|c| c.contains(ip));
    if remote.is_some_and(|r| !is_trusted(r)) {
        return None;
    }
    let base = xff.as_ptr() as usize;
    let mut last_good = None;
    for hop in xff.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
        let start = hop.as_ptr() as usize - base;
        let range = start..start + hop.len();
        match IpKey::parse(hop) {
            Ok(ip) if is_trusted(ip) => last_good = Some((ip, range)),
            Ok(ip) => return Some((ip, range)),
            Err(_) => return last_good,
        }
    }
    last_good
}

/// Scans a combined/common line: `host ident user [time] "request" status bytes
/// ["referer" "agent" extra...]`. Returns the remote host, fields and time text.
fn scan_clf(line: &str) -> Option<(&str, Clf<'_>, &str)> {
    let b = line.as_bytes();
    let mut p = 0;
    let token = |p: &mut usize| -> Option<&str> {
        while *p < b.len() && b[*p] == b' ' {
            *p += 1;
        }
        let start = *p;
        while *p < b.len() && b[*p] != b' ' {
            *p += 1;
        }
        (start < *p).then(|| &line[start..*p])
    };
    let host = token(&mut p)?;
    let ident = token(&mut p)?;
    // The user may contain spaces in odd logs; it ends where ` [` begins.
    while p < b.len() && b[p] == b' ' {
        p += 1;
    }
    let user_start = p;
    let open = memchr::memchr(b'[', &b[p..])? + p;
    let user = line[user_start..open].trim_end();
    let close = memchr::memchr(b']', &b[open..])? + open;
    let time = &line[open + 1..close];
    p = close + 1;

    let mut clf = Clf {
        ident: dash_is_none(ident),
        user: dash_is_none(user),
        ..Clf::default()
    };
    // "request"
    let (request, truncated) = quoted(line, &mut p)?;
    clf.truncated |= truncated;
    clf.request = dash_is_none(request);
    if let Some(r) = clf.request {
        let mut parts = r.splitn(3, ' ');
        clf.method = parts.next();
        clf.path = parts.next();
        clf.protocol = parts.next();
    }
    if truncated {
        return Some((host, clf, time));
    }
    clf.status = token(&mut p).and_then(|t| t.parse().ok());
    clf.bytes = token(&mut p).and_then(|t| t.parse().ok());
    // Referer, user agent, then any extra fields; no allocation unless extras.
    let mut n = 0;
    loop {
        while p < b.len() && b[p] == b' ' {
            p += 1;
        }
        if p >= b.len() {
            break;
        }
        let (value, truncated) = if b[p] == b'"' {
            quoted(line, &mut p)?
        } else {
            match token(&mut p) {
                Some(t) => (t, false),
                None => break,
            }
        };
        match n {
            0 => clf.referer = dash_is_none(value),
            1 => clf.user_agent = dash_is_none(value),
            _ => clf.extra.push(value),
        }
        n += 1;
        if truncated {
            clf.truncated = true;
            break;
        }
    }
    Some((host, clf, time))
}

/// Reads a `"quoted"` field at `*p` (skipping spaces); `\"` does not end it. A
/// field the line ends inside is returned whole with `truncated`.
fn quoted<'a>(line: &'a str, p: &mut usize) -> Option<(&'a str, bool)> {
    let b = line.as_bytes();
    while *p < b.len() && b[*p] == b' ' {
        *p += 1;
    }
    if b.get(*p) != Some(&b'"') {
        return None;
    }
    let start = *p + 1;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => {
                *p = i + 1;
                return Some((&line[start..i], false));
            }
            _ => i += 1,
        }
    }
    *p = b.len();
    Some((&line[start.min(b.len())..], true))
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

/// Finds `a.b.c` in raw fields: a top-level key named exactly so, or a path
/// through nested objects.
fn lookup_path<'a>(
    fields: &[(Cow<'a, str>, &'a RawValue)],
    name: &str,
) -> Result<Option<&'a RawValue>, ParseError> {
    if let Some((_, v)) = fields.iter().find(|(k, _)| k == name) {
        return Ok(Some(v));
    }
    let Some((head, tail)) = name.split_once('.') else {
        return Ok(None);
    };
    let Some((_, v)) = fields.iter().find(|(k, _)| k == head) else {
        return Ok(None);
    };
    if !v.get().starts_with('{') {
        return Ok(None);
    }
    let inner = top_level_fields(v.get())?;
    lookup_path(&inner, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(f: impl FnOnce(&mut ParserConfig)) -> LineParser {
        let mut c = ParserConfig::default();
        f(&mut c);
        LineParser::new(c).unwrap()
    }

    const COMBINED: &str = r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)""#;

    #[test]
    fn combined_lines() {
        let p = parser(|_| {});
        let l = p.parse(COMBINED).unwrap();
        assert_eq!(l.ip, IpKey::parse("83.149.9.216").unwrap());
        assert_eq!(l.time.unwrap().to_rfc3339(), "2015-05-17T10:05:03Z");
        let Fields::Clf(c) = l.fields else { panic!() };
        assert_eq!(c.method, Some("GET"));
        assert_eq!(c.protocol, Some("HTTP/1.1"));
        assert_eq!(c.status, Some(200));
        assert_eq!(c.bytes, Some(203023));
        assert_eq!(
            c.user_agent,
            Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)")
        );
        assert!(!c.truncated);
    }

    #[test]
    fn common_and_nginx_lines() {
        let p = parser(|_| {});
        let l = p
            .parse(r#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 -"#)
            .unwrap();
        assert_eq!(l.ip_text, "2001:db8::1");
        assert_eq!(l.time.unwrap().to_rfc3339(), "2000-10-10T20:55:36Z");
        let Fields::Clf(c) = l.fields else { panic!() };
        assert_eq!((c.user, c.bytes, c.referer), (Some("frank"), None, None));
        // nginx's default combined plus an appended "$http_x_forwarded_for".
        let nginx = r#"10.0.0.2 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/2.0" 304 0 "-" "curl/8.0" "203.0.113.9, 10.0.0.1""#;
        let l = p.parse(nginx).unwrap();
        let Fields::Clf(c) = &l.fields else { panic!() };
        assert_eq!(c.extra, vec!["203.0.113.9, 10.0.0.1"]);
        assert_eq!(c.referer, None);
    }

    #[test]
    fn truncated_user_agent_is_kept() {
        let p = parser(|_| {});
        let l = p
            .parse(r#"46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py HTTP/1.1" 200 235 "-" "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.107 Safari/537.36"#)
            .unwrap();
        let Fields::Clf(c) = l.fields else { panic!() };
        assert!(c.truncated);
        assert!(c.user_agent.unwrap().starts_with("Mozilla/5.0"));
    }

    #[test]
    fn json_lines_with_default_fields() {
        let p = parser(|_| {});
        let l = p
            .parse(r#"{"remote_addr":"::ffff:1.2.3.4","time":"2024-01-01T10:00:00+02:00","status":200}"#)
            .unwrap();
        assert_eq!(l.ip, IpKey::parse("1.2.3.4").unwrap());
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-01-01T08:00:00Z");
        let l = p
            .parse(r#"{"source":{"ip":"2001:db8::5"},"@timestamp":1704103200}"#)
            .unwrap();
        assert_eq!(l.ip_text, "2001:db8::5");
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-01-01T10:00:00Z");
        let l = p.parse(r#"{"ip":"1.1.1.1","ts":1704103200123}"#).unwrap();
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-01-01T10:00:00.123Z");
        let l = p.parse(r#"{"ip":"1.1.1.1"}"#).unwrap();
        assert_eq!(l.time, None);
        assert_eq!(p.parse(r#"{"x":1}"#).unwrap_err(), ParseError::NoIp);
        assert!(matches!(
            p.parse(r#"{"ip":"1.1.1.1""#).unwrap_err(),
            ParseError::Json(_)
        ));
        assert!(matches!(
            p.parse(r#"{"ip":"1.1.1.1","time":"2024-02-30"}"#)
                .unwrap_err(),
            ParseError::BadTime(_)
        ));
    }

    #[test]
    fn custom_fields_and_regex() {
        let p = parser(|c| {
            c.format = Format::Json;
            c.ip_fields = vec!["peer".into()];
            c.time_fields = vec!["when".into()];
        });
        let l = p
            .parse(r#"{"peer":"9.9.9.9","when":"10/Oct/2000:13:55:36 -0700"}"#)
            .unwrap();
        assert_eq!(l.ip_text, "9.9.9.9");
        assert!(l.time.is_some());

        let p = parser(|c| {
            c.format = Format::Regex;
            c.regex =
                Some(Regex::new(r"^(?P<time>\S+) client=(?P<ip>\S+) user=(?P<user>\S+)").unwrap());
        });
        let l = p
            .parse("2024-05-01T00:00:00Z client=8.8.8.8 user=bob")
            .unwrap();
        assert_eq!(l.ip_text, "8.8.8.8");
        assert_eq!(l.fields, Fields::Named(vec![("user".into(), Some("bob"))]));
        assert!(matches!(
            p.parse("nope").unwrap_err(),
            ParseError::NoMatch(_)
        ));
        assert!(LineParser::new(ParserConfig {
            format: Format::Regex,
            regex: Some(Regex::new(r"(?P<time>\S+)").unwrap()),
            ..ParserConfig::default()
        })
        .is_err());
    }

    #[test]
    fn regex_times_follow_time_format() {
        let re = || Some(Regex::new(r"^(?P<time>\S+) (?P<ip>\S+)").unwrap());
        let epoch = parser(|c| {
            c.format = Format::Regex;
            c.regex = re();
            c.time_format = TimeFormat::Epoch;
        });
        let l = epoch.parse("1727863200.5 1.2.3.4").unwrap();
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-10-02T10:00:00.5Z");
        assert!(epoch.parse("2024-10-02 1.2.3.4").is_err());
        let ms = parser(|c| {
            c.format = Format::Regex;
            c.regex = re();
            c.time_format = TimeFormat::EpochMillis;
        });
        assert_eq!(
            ms.parse("1727863200000 1.2.3.4")
                .unwrap()
                .time
                .unwrap()
                .to_rfc3339(),
            "2024-10-02T10:00:00Z"
        );
        let clf = parser(|c| {
            c.format = Format::Regex;
            c.regex = Some(Regex::new(r"^\[(?P<time>[^\]]+)\] (?P<ip>\S+)").unwrap());
            c.time_format = TimeFormat::Clf;
        });
        assert_eq!(
            clf.parse("[02/Oct/2024:12:00:00 +0200] 1.2.3.4")
                .unwrap()
                .time
                .unwrap()
                .to_rfc3339(),
            "2024-10-02T10:00:00Z"
        );
        let rfc = parser(|c| {
            c.format = Format::Regex;
            c.regex = re();
            c.time_format = TimeFormat::Rfc3339;
        });
        assert!(rfc.parse("1727863200 1.2.3.4").is_err());
        assert!("nope".parse::<TimeFormat>().is_err());
    }

    #[test]
    fn xff_walks_from_the_right_past_trusted_proxies() {
        let trusted = vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
        ];
        let p = parser(|c| {
            c.client_ip = ClientIp::Xff;
            c.trusted_proxies = trusted.clone();
        });
        let nginx = r#"10.0.0.2 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/2.0" 304 0 "-" "curl/8.0" "198.51.100.7, 203.0.113.9, 10.0.0.1""#;
        assert_eq!(p.parse(nginx).unwrap().ip_text, "203.0.113.9");
        // An untrusted peer's header is ignored.
        let direct = nginx.replacen("10.0.0.2", "192.0.2.1", 1);
        assert_eq!(p.parse(&direct).unwrap().ip_text, "192.0.2.1");
        let json = r#"{"remote_addr":"2001:db8::1","x_forwarded_for":"203.0.113.5,10.1.1.1","time":"2024-01-01"}"#;
        assert_eq!(p.parse(json).unwrap().ip_text, "203.0.113.5");
        // Without a header the remote address stands.
        let json = r#"{"remote_addr":"10.1.2.3","time":"2024-01-01"}"#;
        assert_eq!(p.parse(json).unwrap().ip_text, "10.1.2.3");
    }

    #[test]
    fn any_mode_takes_the_first_address() {
        let p = parser(|c| {
            c.format = Format::Regex;
            c.regex = Some(Regex::new(r"^(?P<msg>.*)$").unwrap());
            c.client_ip = ClientIp::Any;
        });
        let l = p.parse("Oct 10 sshd[123]: Failed password for root from 2001:db8::7 port 22 at 2024-10-10T10:00:00Z").unwrap();
        assert_eq!(l.ip_text, "2001:db8::7");
        assert_eq!(l.time.unwrap().to_rfc3339(), "2024-10-10T10:00:00Z");
        let l = p.parse("blocked 999.1.1.1 then 192.0.2.55:443").unwrap();
        assert_eq!(l.ip_text, "192.0.2.55");
        assert_eq!(p.parse("no address here").unwrap_err(), ParseError::NoIp);
    }

    #[test]
    fn bad_addresses_and_times_are_errors() {
        let p = parser(|_| {});
        let bad_ip = COMBINED.replacen("83.149.9.216", "999.1.1.1", 1);
        assert!(matches!(
            p.parse(&bad_ip).unwrap_err(),
            ParseError::BadIp(_)
        ));
        let zone = COMBINED.replacen("83.149.9.216", "fe80::1%eth0", 1);
        assert!(matches!(p.parse(&zone).unwrap_err(), ParseError::BadIp(_)));
        let bad_time = COMBINED.replacen("17/May/2015", "31/Feb/2015", 1);
        assert!(matches!(
            p.parse(&bad_time).unwrap_err(),
            ParseError::BadTime(_)
        ));
        assert!(matches!(
            p.parse("garbage").unwrap_err(),
            ParseError::NoMatch(_)
        ));
        assert!(matches!(p.parse("").unwrap_err(), ParseError::NoMatch(_)));
    }

    #[test]
    fn fields_write_valid_json() {
        let p = parser(|_| {});
        let l = p.parse(COMBINED).unwrap();
        let mut out = b"{\"a\":1".to_vec();
        l.fields.write_json(&mut out);
        out.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(
            v["path"],
            "/presentations/logstash-monitorama-2013/images/kibana-search.png"
        );
    }
}
