//! The parser's settings, validated: the format to expect, where the client
//! address comes from, which JSON fields to read. Names of values parse through
//! `FromStr` (the one convention for every setting).

use ::regex::Regex;

use super::clock::{TimeFormat, Zone};
use super::json::{DEFAULT_IP_FIELDS, DEFAULT_TIME_FIELDS, DEFAULT_XFF_FIELDS};
use crate::ip::Cidr;
use crate::value::UnknownValue;

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

impl std::str::FromStr for Format {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Format, UnknownValue> {
        crate::value::pick("format", s, FORMAT_NAMES)
    }
}

impl Format {
    /// The names `--format` accepts, aliases included.
    pub fn names() -> Vec<&'static str> {
        FORMAT_NAMES.iter().map(|(n, _)| *n).collect()
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

impl std::str::FromStr for ClientIp {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<ClientIp, UnknownValue> {
        crate::value::pick(
            "client IP source",
            s,
            &[
                ("remote", ClientIp::Remote),
                ("xff", ClientIp::Xff),
                ("any", ClientIp::Any),
            ],
        )
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
