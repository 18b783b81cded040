//! Envoy's and Istio's default text access logs.
//!
//! Both start with `[%START_TIME%]` (ISO 8601 with milliseconds, UTC) and the
//! quoted request. Istio's default format (21 fields after the time) ends with
//! `... %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS%
//! %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%`: the client is
//! `%DOWNSTREAM_REMOTE_ADDRESS%` (with a port). Plain Envoy's default (12 fields)
//! has no peer address, only `"%REQ(X-FORWARDED-FOR)%"`: the client is read from
//! it, walked from the right past `--trusted-proxy` like any X-Forwarded-For.
//! Other field counts are custom formats: use `--format regex`.

use std::borrow::Cow;

use super::clock::{self, Zone};
use super::fields::{number, seconds, text, Common, Fields, Raw};
use super::tokens::Cursor;
use super::{Found, ParseError};

/// Parses an Envoy/Istio default text line, or `None` when it is not one.
pub fn parse<'a>(line: &'a str, zone: &Zone) -> Option<Result<Found<'a>, ParseError>> {
    let mut c = Cursor::new(line);
    if c.peek() != Some(b'[') {
        return None;
    }
    c.pos += 1;
    let time = c.until(b']')?;
    if time.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let mut f: Vec<&'a str> = Vec::with_capacity(24);
    while let Some((v, _)) = c.field() {
        f.push(v);
    }
    // Positions of the fields each default format has.
    let (bytes, duration, xff, ua, authority, upstream, remote) = match f.len() {
        21 => (7, 8, 10, 11, 13, 14, Some(18)),
        12 => (4, 5, 7, 8, 10, 11, None),
        _ => return None,
    };
    let time = match clock::iso(time, zone) {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    let mut common = Common {
        status: number(f[1]),
        bytes: number(f[bytes]),
        duration: seconds(f[duration], 1e-3),
        user_agent: text(f[ua]),
        host: text(f[authority]),
        upstream: text(f[upstream]),
        ..Common::default()
    };
    common.set_request(Cow::Borrowed(f[0]));
    Some(Ok(Found {
        remote: remote.and_then(|i| text(f[i])),
        xff: text(f[xff]),
        remote_from_xff: remote.is_none(),
        time: Some(time),
        fields: Fields::new(common, Raw::None),
    }))
}
