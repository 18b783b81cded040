//! Squid's native `access.log` format.
//!
//! `time elapsed remotehost code/status bytes method URL rfc931 peerstatus/peerhost
//! type` (`logformat squid %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un
//! %Sh/%<a %mt`). The time is epoch seconds with milliseconds, `elapsed` is
//! milliseconds. The client is an address unless `log_fqdn` is on, when it is a
//! host name and the line is dead-lettered (no address to look up).

use super::clock::{epoch, EpochUnit};
use super::fields::{number, seconds, text, Common};
use super::tokens::Cursor;
use super::{Found, ParseError};

fn looks_epoch_millis(s: &str) -> bool {
    match s.split_once('.') {
        Some((int, frac)) => {
            (9..=11).contains(&int.len())
                && frac.len() == 3
                && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Parses a Squid native line, or `None` when the line is not one.
pub fn parse(line: &str) -> Option<Result<Found<'_>, ParseError>> {
    let mut c = Cursor::new(line);
    let time = c.token()?;
    if !looks_epoch_millis(time) {
        return None;
    }
    let elapsed = c.token()?;
    let client = c.token()?;
    let (_code, status) = c.token()?.split_once('/')?;
    let time = epoch(time, EpochUnit::Seconds)
        .ok_or_else(|| ParseError::BadTime(format!("not a time: {time:?}")));
    let time = match time {
        Ok(t) => t,
        Err(e) => return Some(Err(e)),
    };
    let mut common = Common {
        status: number(status),
        duration: seconds(elapsed, 1e-3),
        ..Common::default()
    };
    common.bytes = c.token().and_then(number);
    common.method = c.token().and_then(text);
    common.path = c.token().and_then(text);
    common.user = c.token().and_then(text);
    common.upstream = c
        .token()
        .and_then(|h| h.split_once('/'))
        .and_then(|(_, peer)| text(peer));
    Some(Ok(Found::remote_at(client, time, common)))
}
