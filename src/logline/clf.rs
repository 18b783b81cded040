//! Apache/nginx text logs: `common`, `combined`, Apache's `vhost_combined` (the
//! virtual host first) and combined with extra fields after the user agent.
//!
//! `host ident user [dd/Mon/yyyy:HH:MM:SS ±hhmm] "request" status bytes
//! ["referer" "agent" extra...]`. One hand-written scanner, no allocation unless
//! there are extra fields; lenient about a last quoted field the line ends inside
//! (real logs have them: the line is kept and marked `truncated`). `vhost_combined`
//! is told apart by its four fields before the time, the second an address.

use std::borrow::Cow;

use super::clock::looks_like_clf;
use super::fields::{number, text, Common, Fields, Raw};
use super::tokens::{dash_is_none, Cursor};
use crate::ip::IpKey;

/// A scanned line: the client field as written, the virtual host if any, the
/// time text (without brackets) and the fields.
pub struct Scanned<'a> {
    pub host: &'a str,
    pub time: &'a str,
    pub fields: Fields<'a>,
}

/// Scans a combined/common line, or `None` when it does not have that shape. In
/// auto-detection (`strict_time`) the bracketed text must also look like an
/// access-log time, so that a syslog-prefixed line (HAProxy's) whose first `[`
/// opens a process id is not taken for one. (HAProxy's own `addr:port [date]`
/// has no ident and user fields: it never has the shape.) A time without offset
/// is read in `--timezone`, as in every format.
#[inline]
pub fn scan(line: &str, strict_time: bool) -> Option<Scanned<'_>> {
    let mut c = Cursor::new(line);
    let mut host = c.token()?;
    let ident = c.token()?;
    if ident.starts_with('[') {
        return None;
    }
    c.skip_spaces();
    // The user may contain spaces in odd logs; it ends where ` [` begins.
    let user_start = c.pos;
    let open = memchr::memchr(b'[', &line.as_bytes()[c.pos..])? + c.pos;
    let mut user = line[user_start..open].trim_end();
    c.pos = open + 1;
    let time = c.until(b']')?;
    if strict_time && !looks_like_clf(time) {
        return None;
    }
    let mut vhost = None;
    // vhost_combined: `vhost[:port] client ident user [..]`. The RFC 1413
    // identity is "-" in practice and stays in `line`.
    if let Some((_ident, user2)) = user.split_once(' ') {
        if !user2.contains(' ') && IpKey::parse(ident).is_ok() && IpKey::parse(host).is_err() {
            vhost = Some(host);
            (host, user) = (ident, user2);
        }
    }
    // Built in place: this is the hot path of the most common logs, and every
    // move of the fields is a copy of a few hundred bytes.
    let (request, truncated) = c.quoted()?;
    let mut fields = Fields {
        common: Common {
            user: text(user),
            host: vhost.map(Cow::Borrowed),
            ..Common::default()
        },
        extra: Vec::new(),
        truncated,
        raw: Raw::None,
    };
    let common = &mut fields.common;
    if let Some(r) = dash_is_none(request) {
        common.set_request(Cow::Borrowed(r));
    }
    if !truncated {
        common.status = c.token().and_then(number);
        common.bytes = c.token().and_then(number);
        // Referer, user agent, then any extra fields.
        let mut n = 0;
        while let Some((value, truncated)) = c.field() {
            match n {
                0 => common.referer = text(value),
                1 => common.user_agent = text(value),
                _ => fields.extra.push(value),
            }
            n += 1;
            if truncated {
                fields.truncated = true;
                break;
            }
        }
    }
    Some(Scanned { host, time, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_combined_puts_the_host_aside() {
        let s = scan(
            r#"www.example.com:443 203.0.113.9 - bob [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "curl/8""#,
            true,
        )
        .unwrap();
        assert_eq!(s.host, "203.0.113.9");
        assert_eq!(s.fields.common.host.as_deref(), Some("www.example.com:443"));
        assert_eq!(s.fields.common.user.as_deref(), Some("bob"));
        assert_eq!(s.fields.common.user_agent.as_deref(), Some("curl/8"));
        // HAProxy's lines do not have the shape, with or without syslog prefix.
        assert!(scan(r#"10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in st/s1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1""#, true).is_none());
        assert!(scan(r#"Feb  6 12:14:14 localhost haproxy[14389]: 10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in st/s1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1""#, true).is_none());
    }
}
