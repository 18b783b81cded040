//! Client addresses as logs write them, and the X-Forwarded-For walk.
//!
//! Servers write the client as `1.2.3.4`, `1.2.3.4:51234`, `[2001:db8::1]:443`,
//! `[2001:db8::1]`, `2001:db8::1` or `::ffff:1.2.3.4` (the IPv4 address mapped into
//! IPv6, read as IPv4 by [`IpKey::parse`]). [`client_addr`] reads every one of these
//! forms and returns the address text without port or brackets, which is what the
//! output's `ip` shows. A bare IPv6 address is never cut at a colon: only one colon
//! (IPv4 or a host name with a port) or brackets mark a port.

use std::borrow::Cow;

use super::ParseError;
use crate::ip::{Cidr, IpKey};

/// The address part of `text`: brackets and a port removed.
pub fn strip_port(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &rest[..end],
            None => text,
        };
    }
    match text.find(':') {
        Some(i) if !text[i + 1..].contains(':') => &text[..i],
        _ => text,
    }
}

/// The port of an address written with one (`1.2.3.4:51234`,
/// `[2001:db8::1]:443`); `None` for a bare address (an IPv6 address without
/// brackets has no port that can be told apart from it).
pub fn port_of(text: &str) -> Option<u16> {
    let text = text.trim();
    let port = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once("]:")?.1
    } else {
        let (_, port) = text.split_once(':')?;
        if port.contains(':') {
            return None;
        }
        port
    };
    port.parse().ok()
}

/// The host of `host:port` text where the port is always there (HAProxy's
/// `%ci:%cp`, AWS's `client:port`): cut at the last colon, so that IPv6 written
/// without brackets (`2001:db8::1:51234`) keeps its address.
pub fn host_of_host_port(text: &str) -> &str {
    let host = text.rsplit_once(':').map_or(text, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Reads a client address in any of the forms servers write; `-` and empty
/// values are "no address".
pub fn client_addr(text: &str) -> Result<(IpKey, &str), ParseError> {
    let text = text.trim();
    if text.is_empty() || text == "-" {
        return Err(ParseError::NoIp);
    }
    // The common case first: a plain address, no copy, no search.
    if !text.starts_with('[') {
        if let Ok(ip) = IpKey::parse(text) {
            return Ok((ip, text));
        }
    }
    let bare = strip_port(text);
    IpKey::parse(bare)
        .map(|ip| (ip, bare))
        .map_err(|e| ParseError::BadIp(e.to_string()))
}

/// [`client_addr`] on text that may be owned (a JSON string with escapes).
pub fn client_addr_cow(text: Cow<'_, str>) -> Result<(IpKey, Cow<'_, str>), ParseError> {
    match text {
        Cow::Borrowed(b) => client_addr(b).map(|(ip, t)| (ip, Cow::Borrowed(t))),
        Cow::Owned(o) => client_addr(&o).map(|(ip, t)| (ip, Cow::Owned(t.to_string()))),
    }
}

/// Walks X-Forwarded-For from the right (after the remote address itself): the
/// first address that is not a trusted proxy is the client. Returns it with its
/// text, or `None` when the header cannot be used (no usable address, or a remote
/// peer that is not a trusted proxy, whose header may be forged).
pub fn walk_xff<'x>(
    xff: &'x str,
    remote: Option<IpKey>,
    trusted: &[Cidr],
) -> Option<(IpKey, &'x str)> {
    let is_trusted = |ip: IpKey| trusted.iter().any(|c| c.contains(ip));
    if remote.is_some_and(|r| !is_trusted(r)) {
        return None;
    }
    let mut last_good = None;
    for hop in xff.rsplit(',').map(str::trim).filter(|h| !h.is_empty()) {
        match client_addr(hop) {
            Ok((ip, text)) if is_trusted(ip) => last_good = Some((ip, text)),
            Ok(found) => return Some(found),
            Err(_) => return last_good,
        }
    }
    last_good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_read_only_where_it_cannot_be_part_of_the_address() {
        assert_eq!(port_of("1.2.3.4:51234"), Some(51234));
        assert_eq!(port_of("[2001:db8::1]:443"), Some(443));
        assert_eq!(port_of("[2001:db8::1]"), None);
        assert_eq!(port_of("2001:db8::1"), None);
        assert_eq!(port_of("1.2.3.4"), None);
        assert_eq!(port_of("1.2.3.4:99999"), None);
    }

    #[test]
    fn every_form_servers_write() {
        for (text, want) in [
            ("1.2.3.4", "1.2.3.4"),
            ("1.2.3.4:51234", "1.2.3.4"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:192.0.2.7", "::ffff:192.0.2.7"),
            ("[::ffff:192.0.2.7]:80", "::ffff:192.0.2.7"),
            (" 10.0.0.1 ", "10.0.0.1"),
        ] {
            let (ip, t) = client_addr(text).unwrap();
            assert_eq!(t, want, "{text}");
            assert_eq!(ip, IpKey::parse(want).unwrap());
        }
        assert_eq!(
            client_addr("::ffff:192.0.2.7").unwrap().0,
            IpKey::parse("192.0.2.7").unwrap()
        );
        assert_eq!(client_addr("-"), Err(ParseError::NoIp));
        assert!(matches!(
            client_addr("www.example.com:80"),
            Err(ParseError::BadIp(_))
        ));
        assert!(matches!(
            client_addr("[2001:db8::1"),
            Err(ParseError::BadIp(_))
        ));
        assert_eq!(host_of_host_port("2001:db8::90:40000"), "2001:db8::90");
        assert_eq!(host_of_host_port("[2001:db8::90]:40000"), "2001:db8::90");
        assert_eq!(host_of_host_port("10.0.1.2:33317"), "10.0.1.2");
    }
}
