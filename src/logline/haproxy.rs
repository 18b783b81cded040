//! HAProxy's HTTP and TCP logs, with or without the syslog prefix.
//!
//! HTTP: `client_ip:port [accept_date] frontend backend/server TR/Tw/Tc/Tr/Ta
//! status bytes req_cookie res_cookie termination_state act/fe/be/srv/retries
//! srv_queue/backend_queue [{captured request headers}] [{captured response
//! headers}] "request"`; TCP has `Tw/Tc/Tt bytes` after the server and no
//! request. A syslog prefix (`Feb  6 12:14:14 host haproxy[14389]: `) is skipped.
//! The date (`06/Feb/2009:12:14:14.655`) has milliseconds and no offset: it is
//! read in `--timezone` (UTC unless given).

use std::borrow::Cow;

use super::addr::host_of_host_port;
use super::clock::{self, Zone};
use super::fields::{number, seconds, text, Common};
use super::tokens::Cursor;
use super::{Found, ParseError};

/// The log body after any syslog prefix: it starts with `addr:port [dd/`.
fn body(line: &str) -> Option<&str> {
    let starts_right = |s: &str| {
        let Some(sp) = s.find(' ') else {
            return false;
        };
        let b = s.as_bytes();
        s[..sp].contains(':') && b.get(sp + 1) == Some(&b'[') && b.get(sp + 4) == Some(&b'/')
    };
    if starts_right(line) {
        return Some(line);
    }
    let after_tag = line
        .find("]: ")
        .map(|i| &line[i + 3..])
        .or_else(|| line.find(": ").map(|i| &line[i + 2..]))?;
    starts_right(after_tag).then_some(after_tag)
}

/// Parses a HAProxy line, or `None` when the line is not one.
pub fn parse<'a>(line: &'a str, zone: &Zone) -> Option<Result<Found<'a>, ParseError>> {
    let body = body(line)?;
    let mut c = Cursor::new(body);
    let client = c.token()?;
    c.skip_spaces();
    c.pos += 1; // the '[' checked by `body`
    let date = c.until(b']')?;
    Some(parse_rest(c, client, date, zone))
}

fn parse_rest<'a>(
    mut c: Cursor<'a>,
    client: &'a str,
    date: &'a str,
    zone: &Zone,
) -> Result<Found<'a>, ParseError> {
    let time = clock::clf(date, zone)?;
    let mut common = Common::default();
    let _frontend = c.token();
    common.upstream = c.token().and_then(text);
    let timers = c.token().unwrap_or_default();
    let parts: Vec<&str> = timers.split('/').collect();
    if parts.len() == 5 {
        // HTTP: the last timer is the total active time (Ta, formerly Tt), ms.
        common.duration = seconds(parts[4], 1e-3);
        common.status = c.token().and_then(number);
        common.bytes = c.token().and_then(number);
        for _ in 0..5 {
            c.token(); // cookies, termination state, connections, queues
        }
        c.skip_spaces();
        while c.peek() == Some(b'{') {
            c.pos += 1;
            c.until(b'}');
            c.skip_spaces();
        }
        if let Some((request, _)) = c.quoted() {
            common.set_request(Cow::Borrowed(request));
        }
    } else {
        // TCP: Tw/Tc/Tt then bytes.
        common.duration = parts.last().and_then(|t| seconds(t, 1e-3));
        common.bytes = c.token().and_then(number);
    }
    Ok(Found::remote_at(host_of_host_port(client), time, common))
}
