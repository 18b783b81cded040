//! Reading the times that logs write: ISO 8601 with or without offset, the
//! access-log form with or without offset, epoch numbers, and the time zone that
//! offset-less times are in.
//!
//! A time that carries an offset is that instant. A time without one (HAProxy's
//! `[06/Feb/2009:12:14:14.655]`, an ISO time without `Z`) is read in the zone of
//! `--timezone` (UTC unless given). Zones come from the IANA database compiled
//! into the binary, so the answer does not depend on the machine's
//! /usr/share/zoneinfo. A local time that a daylight-saving change skips or
//! repeats has no single instant: it is an error (the line is dead-lettered),
//! never a guess. W3C extended logs are UTC by their specification and ignore
//! the zone. Epoch numbers keep every digit of their fraction down to the
//! microsecond: they are read as decimal text, not through a float.

use jiff::tz::TimeZone;

use super::ParseError;
use crate::time::Timestamp;

/// How to read a time that is not in the format's own notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339/ISO 8601, then `dd/Mon/yyyy:HH:MM:SS ±hhmm`, then epoch numbers
    /// (seconds, milliseconds, microseconds or nanoseconds by magnitude).
    Auto,
    Rfc3339,
    Clf,
    /// Seconds since the epoch (fraction allowed).
    Epoch,
    /// Milliseconds since the epoch.
    EpochMillis,
}

impl std::str::FromStr for TimeFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => TimeFormat::Auto,
            "rfc3339" | "iso8601" => TimeFormat::Rfc3339,
            "clf" | "apache" | "nginx" => TimeFormat::Clf,
            "epoch" | "unix" => TimeFormat::Epoch,
            "epoch_ms" | "unix_ms" => TimeFormat::EpochMillis,
            _ => {
                return Err(format!(
                    "unknown time format {s:?} (auto, rfc3339, clf, epoch, epoch_ms)"
                ))
            }
        })
    }
}

/// The zone of times written without an offset.
#[derive(Clone, Debug, Default)]
pub enum Zone {
    #[default]
    Utc,
    Named(String, TimeZone),
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name() == other.name()
    }
}

impl Zone {
    /// An IANA zone name (`Europe/Berlin`) or `UTC`.
    pub fn parse(name: &str) -> Result<Zone, String> {
        if name.eq_ignore_ascii_case("utc") || name == "Etc/UTC" {
            return Ok(Zone::Utc);
        }
        TimeZone::get(name)
            .map(|tz| Zone::Named(name.to_string(), tz))
            .map_err(|e| format!("unknown time zone {name:?}: {e}"))
    }

    pub fn name(&self) -> &str {
        match self {
            Zone::Utc => "UTC",
            Zone::Named(n, _) => n,
        }
    }

    /// The instant of a wall-clock time in this zone; `wall` holds that wall
    /// clock read as if it were UTC.
    pub fn localize(&self, wall: Timestamp) -> Result<Timestamp, ParseError> {
        let Zone::Named(name, tz) = self else {
            return Ok(wall);
        };
        let bad = |e: jiff::Error| ParseError::BadTime(format!("{wall} in {name}: {e}"));
        let ts = jiff::Timestamp::from_microsecond(wall.as_micros()).map_err(bad)?;
        let civil = jiff::tz::Offset::UTC.to_datetime(ts);
        let at = tz
            .to_ambiguous_timestamp(civil)
            .unambiguous()
            .map_err(bad)?;
        Ok(Timestamp::from_micros(at.as_microsecond()))
    }
}

/// An ISO 8601 / RFC 3339 time; without an offset it is in `zone`.
pub fn iso(s: &str, zone: &Zone) -> Result<Timestamp, ParseError> {
    let s = s.trim();
    let t = Timestamp::parse(s).map_err(|e| ParseError::BadTime(e.to_string()))?;
    // The date's own dashes are at 4 and 7; an offset comes after the time.
    let has_offset = s
        .get(10..)
        .is_some_and(|rest| rest.contains(['Z', 'z', '+', '-']));
    if has_offset || s.len() <= 10 {
        Ok(t)
    } else {
        zone.localize(t)
    }
}

/// The access-log time `dd/Mon/yyyy:HH:MM:SS[.frac] [±hhmm]`; without an offset
/// it is in `zone`.
pub fn clf(s: &str, zone: &Zone) -> Result<Timestamp, ParseError> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let b = s.as_bytes();
    let has_offset = b.len() > 6 && matches!(b[b.len() - 5], b'+' | b'-') && b[b.len() - 6] == b' ';
    if has_offset {
        return Timestamp::parse_clf(b).map_err(|e| ParseError::BadTime(e.to_string()));
    }
    // Read the wall clock as UTC (on the stack: this is HAProxy's hot path).
    let mut buf = [0u8; 48];
    let n = b.len();
    if n + 6 > buf.len() {
        return Err(ParseError::BadTime(format!("not a time: {s:?}")));
    }
    buf[..n].copy_from_slice(b);
    buf[n..n + 6].copy_from_slice(b" +0000");
    let wall =
        Timestamp::parse_clf(&buf[..n + 6]).map_err(|e| ParseError::BadTime(e.to_string()))?;
    zone.localize(wall)
}

/// Whether `s` has the shape of an access-log time (`dd/Mon/yyyy:`...), with or
/// without offset: the test that tells a combined line from a syslog-prefixed
/// line whose first `[` is a process id.
pub fn looks_like_clf(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[2] == b'/' && b[6] == b'/' && b[11] == b':'
}

/// The unit of an epoch number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    /// Seconds, milliseconds, microseconds or nanoseconds by the number of
    /// integer digits (up to 11, 14, 17, more).
    ByMagnitude,
}

/// An epoch number written as decimal text (`1646861401.5241024`,
/// `1704103200123456789`), exact to the microsecond; exponent forms go through a
/// float.
pub fn epoch(s: &str, unit: EpochUnit) -> Option<Timestamp> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 20 || !digits(int) || !digits(frac) {
        let n: f64 = s.parse().ok()?;
        return epoch_float(n, unit);
    }
    let unit_ns: i128 = match unit {
        EpochUnit::Seconds => 1_000_000_000,
        EpochUnit::Millis => 1_000_000,
        EpochUnit::ByMagnitude => match int.len() {
            0..=11 => 1_000_000_000,
            12..=14 => 1_000_000,
            15..=17 => 1_000,
            _ => 1,
        },
    };
    let whole: i128 = int.parse().ok()?;
    // The fraction to nanoseconds of the unit (digits past nine are dropped).
    let mut frac_nano: i128 = 0;
    for k in 0..9 {
        let d = frac.as_bytes().get(k).map_or(0, |b| i128::from(b - b'0'));
        frac_nano = frac_nano * 10 + d;
    }
    let ns = whole * unit_ns + frac_nano * unit_ns / 1_000_000_000;
    i64::try_from(ns / 1000).ok().map(Timestamp::from_micros)
}

fn epoch_float(n: f64, unit: EpochUnit) -> Option<Timestamp> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let micros = match unit {
        EpochUnit::Millis => n * 1e3,
        EpochUnit::Seconds => n * 1e6,
        EpochUnit::ByMagnitude if n < 1e11 => n * 1e6,
        EpochUnit::ByMagnitude if n < 1e14 => n * 1e3,
        EpochUnit::ByMagnitude if n < 1e17 => n,
        EpochUnit::ByMagnitude => n / 1e3,
    };
    (micros < 9.2e18).then(|| Timestamp::from_micros(micros as i64))
}

/// A time in text per `format`; offset-less times are in `zone`.
pub fn text(s: &str, format: TimeFormat, zone: &Zone) -> Result<Timestamp, ParseError> {
    let s = s.trim();
    let bad = || ParseError::BadTime(format!("not a time: {s:?}"));
    match format {
        TimeFormat::Rfc3339 => iso(s, zone),
        TimeFormat::Clf => clf(s, zone),
        TimeFormat::Epoch => epoch(s, EpochUnit::Seconds).ok_or_else(bad),
        TimeFormat::EpochMillis => epoch(s, EpochUnit::Millis).ok_or_else(bad),
        TimeFormat::Auto => {
            let first = s.bytes().next();
            if s.len() >= 10 && s.as_bytes()[4] == b'-' {
                return iso(s, zone);
            }
            if first == Some(b'[') || s.as_bytes().get(2) == Some(&b'/') {
                return clf(s, zone);
            }
            epoch(s, EpochUnit::ByMagnitude).ok_or_else(bad)
        }
    }
}

/// A JSON number as a time: epoch seconds, milliseconds, microseconds or
/// nanoseconds by magnitude (or the unit `format` says).
pub fn number(s: &str, format: TimeFormat) -> Result<Timestamp, ParseError> {
    let unit = match format {
        TimeFormat::Epoch => EpochUnit::Seconds,
        TimeFormat::EpochMillis => EpochUnit::Millis,
        _ => EpochUnit::ByMagnitude,
    };
    epoch(s, unit).ok_or_else(|| ParseError::BadTime(format!("not a time: {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(i: Timestamp) -> String {
        i.to_rfc3339()
    }

    #[test]
    fn epochs_keep_their_fraction_exactly() {
        let e = |s| rfc(epoch(s, EpochUnit::ByMagnitude).unwrap());
        assert_eq!(e("1646861401.5241024"), "2022-03-09T21:30:01.524102Z");
        assert_eq!(e("1704103200123456789"), "2024-01-01T10:00:00.123456Z");
        assert_eq!(e("1704103200123456"), "2024-01-01T10:00:00.123456Z");
        assert_eq!(e("1704103200123"), "2024-01-01T10:00:00.123Z");
        assert_eq!(e("1286536309.450"), "2010-10-08T11:11:49.45Z");
        assert_eq!(e("1.7041032e9"), "2024-01-01T10:00:00Z");
        assert_eq!(epoch("-5", EpochUnit::Seconds), None);
        assert_eq!(epoch("12ab", EpochUnit::Seconds), None);
    }

    #[test]
    fn offset_less_times_are_in_the_zone() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let utc = Zone::Utc;
        assert_eq!(
            rfc(clf("06/Feb/2009:12:14:14.655", &utc).unwrap()),
            "2009-02-06T12:14:14.655Z"
        );
        assert_eq!(
            rfc(clf("06/Feb/2009:12:14:14.655", &berlin).unwrap()),
            "2009-02-06T11:14:14.655Z"
        );
        assert_eq!(
            rfc(clf("[06/Jul/2009:12:14:14]", &berlin).unwrap()),
            "2009-07-06T10:14:14Z"
        );
        // An offset in the text wins over the zone.
        assert_eq!(
            rfc(clf("06/Feb/2009:12:14:14 +0000", &berlin).unwrap()),
            "2009-02-06T12:14:14Z"
        );
        assert_eq!(
            rfc(iso("2024-01-01T10:00:00", &berlin).unwrap()),
            "2024-01-01T09:00:00Z"
        );
        assert_eq!(
            rfc(iso("2024-01-01T10:00:00-05:00", &berlin).unwrap()),
            "2024-01-01T15:00:00Z"
        );
        assert_eq!(
            rfc(iso("2024-01-01T10:00:00", &utc).unwrap()),
            "2024-01-01T10:00:00Z"
        );
        // 02:30 does not exist in Berlin on 2024-03-31, and 02:30 happens twice
        // on 2024-10-27: neither is guessed.
        assert!(iso("2024-03-31T02:30:00", &berlin).is_err());
        assert!(iso("2024-10-27T02:30:00", &berlin).is_err());
        assert!(Zone::parse("Mars/Olympus_Mons").is_err());
        assert_eq!(Zone::parse("UTC").unwrap(), Zone::Utc);
    }

    #[test]
    fn clf_shape() {
        assert!(looks_like_clf("10/Oct/2000:13:55:36 -0700"));
        assert!(looks_like_clf("10/Oct/2000:13:55:36.123 +0200"));
        assert!(looks_like_clf("06/Feb/2009:12:14:14.655"));
        assert!(!looks_like_clf("14389"));
    }
}
