//! Custom formats (`--format regex`) and the searches `--client-ip any` and
//! regex lines without a `time` group use: the first address and the first
//! time anywhere in a line.
//!
//! Named groups `ip` and `time` give the client and the event time; groups named
//! like a common field (`status`, `bytes`, `method`, `request`...) fill it,
//! typed; any other group is written under its own name.

use std::borrow::Cow;

use regex::Regex;

use super::clock;
use super::fields::{number, seconds, text, Common, Fields, Raw};
use super::tokens::dash_is_none;
use super::{Found, LineParser, ParseError, ParserError};
use crate::ip::IpKey;
use crate::time::Timestamp;

/// Group names that fill common fields rather than being written as they are:
/// the address, the time, and the output's common fields.
fn is_common_group(name: &str) -> bool {
    name == "ip" || name == "time" || crate::output_fields::COMMON.contains(&name)
}

/// Patterns built once per parser.
#[derive(Debug)]
pub struct Searches {
    any_ip: Regex,
    any_time: Regex,
}

impl Searches {
    pub fn new() -> Result<Searches, ParserError> {
        // Constant patterns; a failure would be a bug caught by tests.
        let any_ip = Regex::new(
            r"(?:\b\d{1,3}(?:\.\d{1,3}){3}\b)|(?:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]*:[0-9A-Fa-f.]*[0-9A-Fa-f])",
        )
        .map_err(|e| ParserError::Internal(e.to_string()))?;
        let any_time = Regex::new(
            r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4})\]|(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|z|[+-]\d{2}:?\d{2})?)",
        )
        .map_err(|e| ParserError::Internal(e.to_string()))?;
        Ok(Searches { any_ip, any_time })
    }
}

/// The groups of `re` written as they are (not `ip`, `time` or a common field).
pub fn other_groups(re: &Regex) -> Vec<String> {
    re.capture_names()
        .flatten()
        .filter(|n| !is_common_group(n))
        .map(String::from)
        .collect()
}

impl LineParser {
    pub(super) fn first_ip<'a>(&self, line: &'a str) -> Option<(IpKey, &'a str)> {
        self.searches
            .any_ip
            .find_iter(line)
            .find_map(|m| IpKey::parse(m.as_str()).ok().map(|ip| (ip, m.as_str())))
    }

    fn time_anywhere(&self, line: &str) -> Result<Option<Timestamp>, ParseError> {
        let Some(c) = self.searches.any_time.captures(line) else {
            return Ok(None);
        };
        if let Some(clf) = c.get(1) {
            return clock::clf(clf.as_str(), &self.config.zone).map(Some);
        }
        match c.get(2) {
            Some(iso) => clock::iso(iso.as_str(), &self.config.zone).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn parse_regex<'a>(&self, line: &'a str) -> Result<Found<'a>, ParseError> {
        let re = self
            .config
            .regex
            .as_ref()
            .ok_or(ParseError::NoMatch("regex"))?;
        let caps = re.captures(line).ok_or(ParseError::NoMatch("regex"))?;
        let group = |name: &str| caps.name(name).map(|m| m.as_str()).and_then(dash_is_none);
        let xff = self.config.xff_fields.iter().find_map(|f| group(f));
        let time = match caps.name("time") {
            Some(m) => Some(clock::text(
                m.as_str(),
                self.config.time_format,
                &self.config.zone,
            )?),
            None => self.time_anywhere(line)?,
        };
        let mut common = Common::default();
        if let Some(r) = group("request") {
            common.set_request(Cow::Borrowed(r));
        }
        for (name, slot) in [
            ("method", &mut common.method),
            ("path", &mut common.path),
            ("protocol", &mut common.protocol),
            ("user", &mut common.user),
            ("referer", &mut common.referer),
            ("user_agent", &mut common.user_agent),
            ("host", &mut common.host),
            ("upstream", &mut common.upstream),
        ] {
            if let Some(v) = group(name).and_then(text) {
                *slot = Some(v);
            }
        }
        common.status = group("status").and_then(number);
        common.bytes = group("bytes").and_then(number);
        common.duration = group("duration").and_then(|d| seconds(d, 1.0));
        let named = self
            .regex_groups
            .iter()
            .map(|g| (g.clone(), caps.name(g).map(|m| m.as_str())))
            .collect();
        Ok(Found {
            remote: caps.name("ip").map(|m| Cow::Borrowed(m.as_str())),
            xff: xff.map(Cow::Borrowed),
            remote_from_xff: false,
            time,
            fields: Fields::new(common, Raw::Named(named)),
        })
    }
}
