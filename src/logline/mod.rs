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
//! and `--timezone`), [`tokens`] (splitting text lines), [`config`] (the
//! parser's settings: format, client address source, fields).
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
pub mod config;
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

pub use clock::{TimeFormat, Zone};
pub use config::{ClientIp, Format, ParserConfig};
pub use fields::{Common, Fields, Raw};
pub use json::{DEFAULT_IP_FIELDS, DEFAULT_TIME_FIELDS, DEFAULT_XFF_FIELDS};

use crate::ip::{Cidr, IpKey};
use crate::time::Timestamp;
use w3c::Columns;

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
    /// The format the line was read as (the one recognised, with `auto`).
    pub format: Format,
    /// The client's port, when the address it came from carried one.
    pub port: Option<u16>,
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

/// Why parser settings cannot make a parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParserError {
    #[error("--format regex needs --regex")]
    NoRegex,
    #[error("--regex needs a named group `ip` (e.g. (?P<ip>\\S+))")]
    NoIpGroup,
    /// The built-in searches did not compile (a bug, said rather than hidden).
    #[error("internal pattern: {0}")]
    Internal(String),
}

impl LineParser {
    pub fn new(config: ParserConfig) -> Result<LineParser, ParserError> {
        let regex_groups = match (&config.format, &config.regex) {
            (Format::Regex, None) => return Err(ParserError::NoRegex),
            (Format::Regex, Some(re)) => {
                if config.client_ip == ClientIp::Remote
                    && !re.capture_names().flatten().any(|n| n == "ip")
                {
                    return Err(ParserError::NoIpGroup);
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
        let format = self.config.format;
        let (format, found) = match format {
            Format::Auto => self.detect(line, columns)?,
            Format::Combined => (format, self.clf(line, false).ok_or_else(not("combined"))??),
            Format::Common => (format, self.clf(line, false).ok_or_else(not("common"))??),
            Format::Json => (format, self.parse_json(line)?),
            Format::W3c => (
                format,
                w3c_found(columns.ok_or(ParseError::NoHeader)?, line)?,
            ),
            Format::Haproxy => (
                format,
                haproxy::parse(line, zone).ok_or_else(not("haproxy"))??,
            ),
            Format::Elb => (format, elb::parse(line).ok_or_else(not("elb"))??),
            Format::Squid => (format, squid::parse(line).ok_or_else(not("squid"))??),
            Format::Envoy => (format, envoy::parse(line, zone).ok_or_else(not("envoy"))??),
            Format::Regex => (format, self.parse_regex(line)?),
        };
        self.resolve(line, format, found)
    }

    /// Auto-detection: by the first byte, the file's header, then the shapes of
    /// the text formats, cheapest and most common first.
    #[inline]
    fn detect<'a>(
        &self,
        line: &'a str,
        columns: Option<&Arc<Columns>>,
    ) -> Result<(Format, Found<'a>), ParseError> {
        let zone = &self.config.zone;
        let with = |format: Format| move |found| (format, found);
        match line.as_bytes().first() {
            Some(b'{') => return self.parse_json(line).map(with(Format::Json)),
            Some(b' ') | Some(b'\t') if line.trim_start().starts_with('{') => {
                return self.parse_json(line).map(with(Format::Json))
            }
            Some(b'[') => {
                if let Some(found) = envoy::parse(line, zone) {
                    return found.map(with(Format::Envoy));
                }
            }
            _ => {}
        }
        if let Some(columns) = columns {
            return w3c_found(columns, line).map(with(Format::W3c));
        }
        if let Some(found) = self.clf(line, true) {
            return found.map(with(Format::Combined));
        }
        if let Some(found) = haproxy::parse(line, zone) {
            return found.map(with(Format::Haproxy));
        }
        if let Some(found) = elb::parse(line) {
            return found.map(with(Format::Elb));
        }
        if let Some(found) = squid::parse(line) {
            return found.map(with(Format::Squid));
        }
        Err(ParseError::Unrecognised)
    }

    /// A scanned combined line straight to a [`LogLine`] in the remote address
    /// mode; the other modes go through [`Found`].
    #[inline]
    fn clf_line<'a>(&self, line: &'a str, s: clf::Scanned<'a>) -> Result<LogLine<'a>, ParseError> {
        if self.config.client_ip != ClientIp::Remote {
            let found = self.clf_found(s)?;
            return self.resolve(line, Format::Combined, found);
        }
        let time = clock::clf(s.time, &self.config.zone)?;
        let (ip, ip_text) = addr::client_addr(s.host)?;
        Ok(LogLine {
            ip,
            ip_text: Cow::Borrowed(ip_text),
            time: Some(time),
            fields: s.fields,
            format: Format::Combined,
            port: None,
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
    fn resolve<'a>(
        &self,
        line: &'a str,
        format: Format,
        found: Found<'a>,
    ) -> Result<LogLine<'a>, ParseError> {
        let Found {
            remote,
            xff,
            remote_from_xff,
            time,
            fields,
        } = found;
        // The port is known when the client is the remote address and it
        // carried one.
        let remote_port = remote.as_deref().and_then(addr::port_of);
        let mut port = None;
        let (ip, ip_text) = if self.config.client_ip == ClientIp::Any {
            let (ip, text) = self.first_ip(line).ok_or(ParseError::NoIp)?;
            (ip, Cow::Borrowed(text))
        } else if remote_from_xff {
            let x = xff.ok_or(ParseError::NoIp)?;
            walk_xff_cow(x, None, &self.config.trusted_proxies).ok_or(ParseError::NoIp)?
        } else {
            let (ip, text, from_remote) = self.client(remote, xff)?;
            if from_remote {
                port = remote_port;
            }
            (ip, text)
        };
        Ok(LogLine {
            ip,
            ip_text,
            time,
            fields,
            format,
            port,
        })
    }

    fn client<'a>(
        &self,
        remote: Option<Cow<'a, str>>,
        xff: Option<Cow<'a, str>>,
    ) -> Result<(IpKey, Cow<'a, str>, bool), ParseError> {
        let remote = match remote {
            Some(r) => Some(addr::client_addr_cow(r)?),
            None => None,
        };
        if self.config.client_ip == ClientIp::Xff {
            if let Some(x) = xff {
                let trusted = &self.config.trusted_proxies;
                if let Some((ip, text)) = walk_xff_cow(x, remote.as_ref().map(|r| r.0), trusted) {
                    // The remote itself when no hop is untrusted.
                    let from_remote = remote.as_ref().is_some_and(|r| r.0 == ip);
                    return Ok((ip, text, from_remote));
                }
            }
        }
        remote.map(|(ip, t)| (ip, t, true)).ok_or(ParseError::NoIp)
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
mod tests;
