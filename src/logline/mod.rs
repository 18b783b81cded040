//! Access-log lines: finding the client address, the event time and the fields,
//! in the logs real servers and load balancers write.
//!
//! A [`LineParser`] is built once from validated settings and then parses lines.
//! With `--format auto` (the default) the format is recognised per line (JSON,
//! Envoy/Istio text, Apache/nginx combined and its variants, HAProxy, AWS load
//! balancers, Squid) and per file for W3C extended logs, whose `#Fields:` header
//! names the columns of the lines after it: the header in force travels with the
//! line as a [`FileState`] (see [`w3c`]). [`catalog::FORMATS`] lists them all.
//!
//! Layout: one module per family of formats ([`clf`], [`json`], [`w3c`],
//! [`haproxy`], [`elb`], [`squid`], [`envoy`], [`regex`]) and the shared pieces:
//! [`addr`] (addresses with ports, brackets, IPv6, mapped forms, X-Forwarded-For),
//! [`fields`] (the common output fields, typed), [`clock`] (times, epoch numbers
//! and `--timezone`), [`tokens`] (splitting text lines).
//!
//! Invariants: every format yields the same [`LogLine`]: the client address, the
//! line's own event time (`None` when the line has none: the caller decides what
//! then) and the [`Fields`] under common names. A line that yields no address, or
//! a time that is not a time, is a [`ParseError`]: the caller dead-letters it. A
//! directive line (`#...` in auto or W3C mode) is [`Parsed::Directive`]: not an
//! entry, not an error.

pub mod addr;
pub mod catalog;
pub mod clf;
pub mod clock;
pub mod elb;
pub mod envoy;
pub mod fields;
pub mod haproxy;
pub mod json;
pub mod regex;
pub mod squid;
pub mod tokens;
pub mod w3c;

use std::borrow::Cow;
use std::sync::Arc;

use ::regex::Regex;

pub use clock::{TimeFormat, Zone};
pub use fields::{Common, Fields, Raw};
pub use json::{DEFAULT_IP_FIELDS, DEFAULT_TIME_FIELDS, DEFAULT_XFF_FIELDS};

use crate::ip::{Cidr, IpKey};
use crate::time::Timestamp;
use w3c::Columns;

/// Which line format to expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Recognise each line (and each file's W3C header).
    Auto,
    /// Apache/nginx combined (also common, vhost_combined and extra fields).
    Combined,
    /// Apache/nginx common (the same scanner as combined).
    Common,
    /// One JSON object per line.
    Json,
    /// W3C extended (IIS, CloudFront): columns from `#Fields:`.
    W3c,
    /// HAProxy HTTP/TCP logs.
    Haproxy,
    /// AWS ALB and classic ELB.
    Elb,
    /// Squid native access.log.
    Squid,
    /// Envoy / Istio default text formats.
    Envoy,
    /// A custom regex with named groups `ip` and `time` (and any others).
    Regex,
}

/// `--format` names and the aliases users type.
const FORMAT_NAMES: &[(&str, Format)] = &[
    ("auto", Format::Auto),
    ("combined", Format::Combined),
    ("common", Format::Common),
    ("clf", Format::Common),
    ("vhost_combined", Format::Combined),
    ("apache", Format::Combined),
    ("nginx", Format::Combined),
    ("json", Format::Json),
    ("w3c", Format::W3c),
    ("iis", Format::W3c),
    ("cloudfront", Format::W3c),
    ("haproxy", Format::Haproxy),
    ("elb", Format::Elb),
    ("alb", Format::Elb),
    ("squid", Format::Squid),
    ("envoy", Format::Envoy),
    ("istio", Format::Envoy),
    ("regex", Format::Regex),
];

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        FORMAT_NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = FORMAT_NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown format {s:?} ({})", names.join(", "))
            })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        FORMAT_NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("auto", |(n, _)| *n)
    }
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

/// Validated parser settings.
#[derive(Clone, Debug)]
pub struct ParserConfig {
    pub format: Format,
    /// Required for [`Format::Regex`]: named groups `ip` (unless `--client-ip any`)
    /// and optionally `time`.
    pub regex: Option<Regex>,
    pub time_format: TimeFormat,
    /// The zone of times written without an offset.
    pub zone: Zone,
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
            zone: Zone::Utc,
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
    #[error("line does not match any known format (see `whipstream formats`)")]
    Unrecognised,
    #[error("w3c line before any #Fields header in its file")]
    NoHeader,
    #[error("w3c directive line outside a file (no file for its header to apply to)")]
    Directive,
    #[error("no client IP found")]
    NoIp,
    #[error("bad client IP: {0}")]
    BadIp(String),
    #[error("bad timestamp: {0}")]
    BadTime(String),
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine<'a> {
    pub ip: IpKey,
    /// The client address as written in the line (or in X-Forwarded-For),
    /// without port or brackets.
    pub ip_text: Cow<'a, str>,
    /// The line's own event time; `None` when the line has none.
    pub time: Option<Timestamp>,
    pub fields: Fields<'a>,
}

/// What a line is.
// Boxing the entry would cost an allocation per line; directives are rare.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    Entry(LogLine<'a>),
    /// A directive (`#Fields:`, `#Version:`, ...): it sets or describes the
    /// file's columns; it is not an entry and not an error.
    Directive,
}

/// What a format's parser found, before the client address is resolved.
pub struct Found<'a> {
    /// The format's remote address field as written (may carry a port).
    pub remote: Option<Cow<'a, str>>,
    pub xff: Option<Cow<'a, str>>,
    /// The format has no remote address but X-Forwarded-For (plain Envoy): the
    /// client is read from it in every `--client-ip` mode but `any`.
    pub remote_from_xff: bool,
    pub time: Option<Timestamp>,
    pub fields: Fields<'a>,
}

impl<'a> Found<'a> {
    /// A line of a text format with its remote address (as written, a port
    /// allowed), its own time and the common fields, and nothing else.
    pub fn remote_at(remote: &'a str, time: Timestamp, common: Common<'a>) -> Found<'a> {
        Found {
            remote: Some(Cow::Borrowed(remote)),
            xff: None,
            remote_from_xff: false,
            time: Some(time),
            fields: Fields::new(common, Raw::None),
        }
    }
}

/// The per-file state lines are read in: the W3C `#Fields:` header in force.
#[derive(Debug, Clone, Default)]
pub struct FileState {
    columns: Option<Arc<Columns>>,
}

impl FileState {
    /// The state after `header` (a `#Fields:` line carried over from earlier in
    /// the file, see [`w3c::last_fields_line`]).
    pub fn after(header: Option<&[u8]>) -> FileState {
        let columns = header
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(|h| Arc::new(Columns::parse(h.trim_end_matches('\r'))));
        FileState { columns }
    }
}

/// The byte range of the last header line in a block of lines that later lines
/// of the same file are read under (see [`FileState::after`]).
pub fn last_header_line(data: &[u8]) -> Option<std::ops::Range<usize>> {
    w3c::last_fields_line(data)
}

/// Parses lines according to a [`ParserConfig`].
#[derive(Debug)]
pub struct LineParser {
    config: ParserConfig,
    searches: self::regex::Searches,
    /// Regex group names written as they are, for output.
    regex_groups: Vec<String>,
    /// The 1-based index of the combined line's extra field with
    /// X-Forwarded-For (resolved once: the first number in `xff_fields`).
    clf_xff_index: usize,
}

impl LineParser {
    pub fn new(config: ParserConfig) -> Result<LineParser, String> {
        let regex_groups = match (&config.format, &config.regex) {
            (Format::Regex, None) => return Err("--format regex needs --regex".into()),
            (Format::Regex, Some(re)) => {
                if config.client_ip == ClientIp::Remote
                    && !re.capture_names().flatten().any(|n| n == "ip")
                {
                    return Err("--regex needs a named group `ip` (e.g. (?P<ip>\\S+))".into());
                }
                self::regex::other_groups(re)
            }
            _ => Vec::new(),
        };
        let clf_xff_index = config
            .xff_fields
            .iter()
            .find_map(|f| f.parse::<usize>().ok())
            .unwrap_or(1);
        Ok(LineParser {
            config,
            searches: self::regex::Searches::new()?,
            regex_groups,
            clf_xff_index,
        })
    }

    pub fn config(&self) -> &ParserConfig {
        &self.config
    }

    fn reads_directives(&self) -> bool {
        matches!(self.config.format, Format::Auto | Format::W3c)
    }

    /// Parses one line (without its newline) that belongs to no file (a Kafka
    /// message): a W3C directive is an error here, as there is no file for it
    /// to apply to.
    pub fn parse<'a>(&self, line: &'a str) -> Result<LogLine<'a>, ParseError> {
        if self.reads_directives() && w3c::is_directive(line) {
            return Err(ParseError::Directive);
        }
        self.parse_entry(line, None)
    }

    /// Parses one line of a file read in `file`'s state, which a directive line
    /// updates.
    #[inline]
    pub fn parse_in<'a>(
        &self,
        line: &'a str,
        file: &mut FileState,
    ) -> Result<Parsed<'a>, ParseError> {
        if self.reads_directives() && w3c::is_directive(line) {
            if line.starts_with("#Fields:") {
                file.columns = Some(Arc::new(Columns::parse(line)));
            }
            return Ok(Parsed::Directive);
        }
        self.parse_entry(line, file.columns.as_ref())
            .map(Parsed::Entry)
    }

    #[inline]
    fn parse_entry<'a>(
        &self,
        line: &'a str,
        columns: Option<&Arc<Columns>>,
    ) -> Result<LogLine<'a>, ParseError> {
        // The most common logs first, straight to a LogLine (no intermediate
        // copies of the fields).
        if self.config.format == Format::Auto
            && columns.is_none()
            && !matches!(line.as_bytes().first(), Some(b'{' | b'[' | b' ' | b'\t'))
        {
            if let Some(s) = clf::scan(line, true) {
                return self.clf_line(line, s);
            }
        }
        let zone = &self.config.zone;
        let not = |name| move || ParseError::NoMatch(name);
        let found = match self.config.format {
            Format::Auto => self.detect(line, columns)?,
            Format::Combined => self.clf(line, false).ok_or_else(not("combined"))??,
            Format::Common => self.clf(line, false).ok_or_else(not("common"))??,
            Format::Json => self.parse_json(line)?,
            Format::W3c => w3c_found(columns.ok_or(ParseError::NoHeader)?, line)?,
            Format::Haproxy => haproxy::parse(line, zone).ok_or_else(not("haproxy"))??,
            Format::Elb => elb::parse(line).ok_or_else(not("elb"))??,
            Format::Squid => squid::parse(line).ok_or_else(not("squid"))??,
            Format::Envoy => envoy::parse(line, zone).ok_or_else(not("envoy"))??,
            Format::Regex => self.parse_regex(line)?,
        };
        self.resolve(line, found)
    }

    /// Auto-detection: by the first byte, the file's header, then the shapes of
    /// the text formats, cheapest and most common first.
    #[inline]
    fn detect<'a>(
        &self,
        line: &'a str,
        columns: Option<&Arc<Columns>>,
    ) -> Result<Found<'a>, ParseError> {
        let zone = &self.config.zone;
        match line.as_bytes().first() {
            Some(b'{') => return self.parse_json(line),
            Some(b' ') | Some(b'\t') if line.trim_start().starts_with('{') => {
                return self.parse_json(line)
            }
            Some(b'[') => {
                if let Some(found) = envoy::parse(line, zone) {
                    return found;
                }
            }
            _ => {}
        }
        if let Some(columns) = columns {
            return w3c_found(columns, line);
        }
        if let Some(found) = self.clf(line, true) {
            return found;
        }
        if let Some(found) = haproxy::parse(line, zone) {
            return found;
        }
        if let Some(found) = elb::parse(line) {
            return found;
        }
        if let Some(found) = squid::parse(line) {
            return found;
        }
        Err(ParseError::Unrecognised)
    }

    /// A scanned combined line straight to a [`LogLine`] in the remote address
    /// mode; the other modes go through [`Found`].
    #[inline]
    fn clf_line<'a>(&self, line: &'a str, s: clf::Scanned<'a>) -> Result<LogLine<'a>, ParseError> {
        if self.config.client_ip != ClientIp::Remote {
            let found = self.clf_found(s)?;
            return self.resolve(line, found);
        }
        let time = clock::clf(s.time, &self.config.zone)?;
        let (ip, ip_text) = addr::client_addr(s.host)?;
        Ok(LogLine {
            ip,
            ip_text: Cow::Borrowed(ip_text),
            time: Some(time),
            fields: s.fields,
        })
    }

    #[inline]
    fn clf<'a>(&self, line: &'a str, strict_time: bool) -> Option<Result<Found<'a>, ParseError>> {
        clf::scan(line, strict_time).map(|s| self.clf_found(s))
    }

    #[inline]
    fn clf_found<'a>(&self, s: clf::Scanned<'a>) -> Result<Found<'a>, ParseError> {
        let time = clock::clf(s.time, &self.config.zone)?;
        // X-Forwarded-For: the extra field named by its 1-based index.
        let xff = s
            .fields
            .extra
            .get(self.clf_xff_index.saturating_sub(1))
            .copied()
            .and_then(tokens::dash_is_none)
            .map(Cow::Borrowed);
        Ok(Found {
            remote: Some(Cow::Borrowed(s.host)),
            xff,
            remote_from_xff: false,
            time: Some(time),
            fields: s.fields,
        })
    }

    /// Resolves the client address: the remote one and, in `xff` mode, the
    /// X-Forwarded-For value; in `any` mode the first address in the line.
    #[inline]
    fn resolve<'a>(&self, line: &'a str, found: Found<'a>) -> Result<LogLine<'a>, ParseError> {
        let Found {
            remote,
            xff,
            remote_from_xff,
            time,
            fields,
        } = found;
        let (ip, ip_text) = if self.config.client_ip == ClientIp::Any {
            let (ip, text) = self.first_ip(line).ok_or(ParseError::NoIp)?;
            (ip, Cow::Borrowed(text))
        } else if remote_from_xff {
            let x = xff.ok_or(ParseError::NoIp)?;
            walk_xff_cow(x, None, &self.config.trusted_proxies).ok_or(ParseError::NoIp)?
        } else {
            self.client(remote, xff)?
        };
        Ok(LogLine {
            ip,
            ip_text,
            time,
            fields,
        })
    }

    fn client<'a>(
        &self,
        remote: Option<Cow<'a, str>>,
        xff: Option<Cow<'a, str>>,
    ) -> Result<(IpKey, Cow<'a, str>), ParseError> {
        let remote = match remote {
            Some(r) => Some(addr::client_addr_cow(r)?),
            None => None,
        };
        if self.config.client_ip == ClientIp::Xff {
            if let Some(x) = xff {
                let trusted = &self.config.trusted_proxies;
                if let Some(found) = walk_xff_cow(x, remote.as_ref().map(|r| r.0), trusted) {
                    return Ok(found);
                }
            }
        }
        remote.ok_or(ParseError::NoIp)
    }
}

/// [`addr::walk_xff`] on text that may be owned.
fn walk_xff_cow<'a>(
    xff: Cow<'a, str>,
    remote: Option<IpKey>,
    trusted: &[Cidr],
) -> Option<(IpKey, Cow<'a, str>)> {
    match xff {
        Cow::Borrowed(b) => {
            addr::walk_xff(b, remote, trusted).map(|(ip, t)| (ip, Cow::Borrowed(t)))
        }
        Cow::Owned(o) => {
            addr::walk_xff(&o, remote, trusted).map(|(ip, t)| (ip, Cow::Owned(t.to_string())))
        }
    }
}

fn w3c_found<'a>(columns: &Arc<Columns>, line: &'a str) -> Result<Found<'a>, ParseError> {
    let l = columns.parse_line(line)?;
    Ok(Found {
        remote: l.remote.map(Cow::Borrowed),
        xff: l.xff.map(Cow::Borrowed),
        remote_from_xff: false,
        time: l.time,
        fields: l.fields,
    })
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
        let c = &l.fields.common;
        assert_eq!(c.method.as_deref(), Some("GET"));
        assert_eq!(c.protocol.as_deref(), Some("HTTP/1.1"));
        assert_eq!(c.status, Some(200));
        assert_eq!(c.bytes, Some(203023));
        assert_eq!(
            c.user_agent.as_deref(),
            Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1)")
        );
        assert!(!l.fields.truncated);
    }

    #[test]
    fn common_and_nginx_lines() {
        let p = parser(|_| {});
        let l = p
            .parse(r#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 -"#)
            .unwrap();
        assert_eq!(l.ip_text, "2001:db8::1");
        assert_eq!(l.time.unwrap().to_rfc3339(), "2000-10-10T20:55:36Z");
        let c = &l.fields.common;
        assert_eq!(
            (c.user.as_deref(), c.bytes, c.referer.as_deref()),
            (Some("frank"), None, None)
        );
        // nginx's default combined plus an appended "$http_x_forwarded_for".
        let nginx = r#"10.0.0.2 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/2.0" 304 0 "-" "curl/8.0" "203.0.113.9, 10.0.0.1""#;
        let l = p.parse(nginx).unwrap();
        assert_eq!(l.fields.extra, vec!["203.0.113.9, 10.0.0.1"]);
        assert_eq!(l.fields.common.referer, None);
    }

    #[test]
    fn truncated_user_agent_is_kept() {
        let p = parser(|_| {});
        let l = p
            .parse(r#"46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py HTTP/1.1" 200 235 "-" "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.107 Safari/537.36"#)
            .unwrap();
        assert!(l.fields.truncated);
        assert!(l
            .fields
            .common
            .user_agent
            .unwrap()
            .starts_with("Mozilla/5.0"));
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
        assert_eq!(l.fields.common.user.as_deref(), Some("bob"));
        assert_eq!(l.fields.raw, Raw::Named(vec![]));
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
        assert_eq!(p.parse("garbage").unwrap_err(), ParseError::Unrecognised);
        assert_eq!(p.parse("").unwrap_err(), ParseError::Unrecognised);
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
