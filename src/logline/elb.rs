//! AWS load balancer access logs: Application Load Balancer and Classic ELB.
//!
//! ALB: `type time elb client:port target:port request_processing_time
//! target_processing_time response_processing_time elb_status_code
//! target_status_code received_bytes sent_bytes "request" "user_agent" ssl_cipher
//! ssl_protocol target_group_arn "trace_id" "domain_name" ...` (more fields are
//! appended over the years; they are ignored). Classic ELB is the same without
//! `type` and stops after `ssl_protocol`. The time is ISO 8601 UTC with
//! microseconds; a processing time of `-1` (no response) gives no duration.

use std::borrow::Cow;

use super::addr::host_of_host_port;
use super::fields::{number, seconds, text, Common};
use super::tokens::Cursor;
use super::{Found, ParseError};
use crate::time::Timestamp;

const ALB_TYPES: &[&str] = &["http", "https", "h2", "grpcs", "ws", "wss"];

fn looks_iso(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[10] == b'T'
}

/// Parses an ALB or classic ELB line, or `None` when the line is not one.
pub fn parse(line: &str) -> Option<Result<Found<'_>, ParseError>> {
    let mut c = Cursor::new(line);
    let first = c.token()?;
    let (alb, time) = if ALB_TYPES.contains(&first) {
        let t = c.token()?;
        (true, t)
    } else {
        (false, first)
    };
    if !looks_iso(time) {
        return None;
    }
    let _name = c.token()?;
    let client = c.token()?;
    if !client.contains(':') {
        return None;
    }
    Some(parse_rest(c, alb, time, client))
}

fn parse_rest<'a>(
    mut c: Cursor<'a>,
    alb: bool,
    time: &'a str,
    client: &'a str,
) -> Result<Found<'a>, ParseError> {
    let time = Timestamp::parse(time).map_err(|e| ParseError::BadTime(e.to_string()))?;
    let mut common = Common {
        upstream: c.token().and_then(text),
        ..Common::default()
    };
    let timers: Vec<Option<f64>> = (0..3)
        .map(|_| c.token().and_then(|t| seconds(t, 1.0)))
        .collect();
    if let [Some(a), Some(b), Some(d)] = timers[..] {
        common.duration = Some(a + b + d);
    }
    common.status = c.token().and_then(number);
    let _target_status = c.token();
    let _received = c.token();
    common.bytes = c.token().and_then(number);
    if let Some((request, _)) = c.quoted() {
        common.set_request(Cow::Borrowed(request));
    }
    common.user_agent = c.quoted().and_then(|(ua, _)| text(ua));
    if alb {
        let _cipher = c.token();
        let _protocol = c.token();
        let _target_group = c.token();
        let _trace = c.quoted();
        common.host = c.quoted().and_then(|(d, _)| text(d));
    }
    Ok(Found::remote_at(host_of_host_port(client), time, common))
}
