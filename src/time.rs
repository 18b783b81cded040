//! Instants: points in time, compared as instants and never as strings.
//!
//! A [`Timestamp`] is a count of microseconds since 1970-01-01T00:00:00Z. Text
//! becomes an instant here and nowhere else: RFC 3339 with any offset, a date alone
//! (`2025-03-01` is midnight UTC), a date-time without offset (taken as UTC, as Whip's
//! snapshot `datetime` values are), and the access-log form `10/Oct/2000:13:55:36 -0700`.
//! Parsers are hand-written because they sit on the enrichment hot path; each checks
//! the calendar (month lengths, leap years) so impossible dates are errors.

use std::fmt;

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

const MICROS_PER_SEC: i64 = 1_000_000;

/// Why a text is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {text:?}: {reason}")]
pub struct TimeParseError {
    pub text: String,
    pub reason: &'static str,
}

fn err(text: &[u8], reason: &'static str) -> TimeParseError {
    TimeParseError {
        // An excerpt: an error never repeats a huge input whole.
        text: crate::lines::excerpt_bytes(text),
        reason,
    }
}

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn from_unix_seconds(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(MICROS_PER_SEC))
    }

    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 (`T` or space separator, optional fraction, `Z` or `±hh:mm`,
    /// `±hhmm`, `±hh`), a date-time without offset (UTC) or a date alone (midnight UTC).
    pub fn parse(text: &str) -> Result<Timestamp, TimeParseError> {
        parse_iso(text.trim().as_bytes())
    }

    /// Parses the access-log time `dd/Mon/yyyy:HH:MM:SS ±hhmm` (brackets excluded).
    pub fn parse_clf(text: &[u8]) -> Result<Timestamp, TimeParseError> {
        parse_clf(text)
    }

    /// Appends the RFC 3339 UTC text (`2025-03-01T12:00:00Z`, with a fraction only
    /// when it is not zero) to `out`.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let secs = self.0.div_euclid(MICROS_PER_SEC);
        let micros = self.0.rem_euclid(MICROS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if (0..=9999).contains(&y) {
            push_digits(out, y as u32, 4);
        } else {
            use std::io::Write;
            let _ = write!(out, "{y:+}");
        }
        out.push(b'-');
        push_digits(out, m, 2);
        out.push(b'-');
        push_digits(out, d, 2);
        out.push(b'T');
        push_digits(out, (sod / 3600) as u32, 2);
        out.push(b':');
        push_digits(out, ((sod / 60) % 60) as u32, 2);
        out.push(b':');
        push_digits(out, (sod % 60) as u32, 2);
        if micros != 0 {
            out.push(b'.');
            let mut frac = micros as u32;
            let mut width = 6;
            while frac.is_multiple_of(10) {
                frac /= 10;
                width -= 1;
            }
            push_digits(out, frac, width);
        }
        out.push(b'Z');
    }

    pub fn to_rfc3339(self) -> String {
        let mut out = Vec::with_capacity(24);
        self.write_rfc3339(&mut out);
        // Only ASCII was written.
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

fn push_digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    for _ in 0..width {
        out.push(b'0' + (n % 10) as u8);
        n /= 10;
    }
    out[start..].reverse();
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Reads exactly `n` ASCII digits at `*pos`.
fn digits(text: &[u8], pos: &mut usize, n: usize) -> Option<u32> {
    let bytes = text.get(*pos..*pos + n)?;
    let mut v = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    *pos += n;
    Some(v)
}

fn expect(text: &[u8], pos: &mut usize, c: u8) -> Option<()> {
    if text.get(*pos) == Some(&c) {
        *pos += 1;
        Some(())
    } else {
        None
    }
}

struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    offset_secs: i64,
}

fn assemble(text: &[u8], f: Fields) -> Result<Timestamp, TimeParseError> {
    if !(1..=12).contains(&f.month) {
        return Err(err(text, "month out of range"));
    }
    if f.day == 0 || f.day > days_in_month(f.year, f.month) {
        return Err(err(text, "day out of range for its month"));
    }
    if f.hour > 23 || f.minute > 59 || f.second > 59 {
        return Err(err(text, "time of day out of range"));
    }
    let days = days_from_civil(f.year, f.month, f.day);
    let secs =
        days * 86_400 + i64::from(f.hour) * 3600 + i64::from(f.minute) * 60 + i64::from(f.second)
            - f.offset_secs;
    Ok(Timestamp(secs * MICROS_PER_SEC + i64::from(f.micros)))
}

fn parse_offset(text: &[u8], pos: &mut usize) -> Result<i64, TimeParseError> {
    let sign = match text.get(*pos) {
        Some(b'Z') | Some(b'z') => {
            *pos += 1;
            return Ok(0);
        }
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(err(text, "expected Z or a ±hh:mm offset")),
    };
    *pos += 1;
    let hh = digits(text, pos, 2).ok_or_else(|| err(text, "bad offset hours"))?;
    let mut mm = 0;
    if *pos < text.len() {
        if text[*pos] == b':' {
            *pos += 1;
        }
        mm = digits(text, pos, 2).ok_or_else(|| err(text, "bad offset minutes"))?;
    }
    if hh > 23 || mm > 59 {
        return Err(err(text, "offset out of range"));
    }
    Ok(sign * (i64::from(hh) * 3600 + i64::from(mm) * 60))
}

fn parse_iso(text: &[u8]) -> Result<Timestamp, TimeParseError> {
    let bad_date = || err(text, "expected YYYY-MM-DD");
    let mut pos = 0;
    let year = digits(text, &mut pos, 4).ok_or_else(bad_date)?;
    expect(text, &mut pos, b'-').ok_or_else(bad_date)?;
    let month = digits(text, &mut pos, 2).ok_or_else(bad_date)?;
    expect(text, &mut pos, b'-').ok_or_else(bad_date)?;
    let day = digits(text, &mut pos, 2).ok_or_else(bad_date)?;
    let mut f = Fields {
        year: i64::from(year),
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        offset_secs: 0,
    };
    if pos == text.len() {
        return assemble(text, f);
    }
    match text[pos] {
        b'T' | b't' | b' ' => pos += 1,
        _ => return Err(err(text, "expected T between date and time")),
    }
    let bad_time = || err(text, "expected hh:mm[:ss[.fraction]]");
    f.hour = digits(text, &mut pos, 2).ok_or_else(bad_time)?;
    expect(text, &mut pos, b':').ok_or_else(bad_time)?;
    f.minute = digits(text, &mut pos, 2).ok_or_else(bad_time)?;
    if text.get(pos) == Some(&b':') {
        pos += 1;
        f.second = digits(text, &mut pos, 2).ok_or_else(bad_time)?;
        if matches!(text.get(pos), Some(b'.') | Some(b',')) {
            pos += 1;
            let start = pos;
            let mut micros = 0u32;
            while let Some(b) = text.get(pos).filter(|b| b.is_ascii_digit()) {
                // Digits past microseconds are read and dropped (truncation).
                if pos - start < 6 {
                    micros = micros * 10 + u32::from(b - b'0');
                }
                pos += 1;
            }
            if pos == start {
                return Err(err(text, "empty fraction of a second"));
            }
            for _ in (pos - start)..6 {
                micros *= 10;
            }
            f.micros = micros;
        }
    }
    if pos < text.len() {
        f.offset_secs = parse_offset(text, &mut pos)?;
    }
    if pos != text.len() {
        return Err(err(text, "trailing characters"));
    }
    assemble(text, f)
}

fn month_from_abbrev(m: &[u8]) -> Option<u32> {
    let lower = [
        m.first()?.to_ascii_lowercase(),
        m.get(1)?.to_ascii_lowercase(),
        m.get(2)?.to_ascii_lowercase(),
    ];
    Some(match &lower {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

fn parse_clf(text: &[u8]) -> Result<Timestamp, TimeParseError> {
    let bad = || err(text, "expected dd/Mon/yyyy:HH:MM:SS ±hhmm");
    let mut pos = 0;
    let day = digits(text, &mut pos, 2).ok_or_else(bad)?;
    expect(text, &mut pos, b'/').ok_or_else(bad)?;
    let month = text
        .get(pos..pos + 3)
        .and_then(month_from_abbrev)
        .ok_or_else(|| err(text, "unknown month name"))?;
    pos += 3;
    expect(text, &mut pos, b'/').ok_or_else(bad)?;
    let year = digits(text, &mut pos, 4).ok_or_else(bad)?;
    expect(text, &mut pos, b':').ok_or_else(bad)?;
    let hour = digits(text, &mut pos, 2).ok_or_else(bad)?;
    expect(text, &mut pos, b':').ok_or_else(bad)?;
    let minute = digits(text, &mut pos, 2).ok_or_else(bad)?;
    expect(text, &mut pos, b':').ok_or_else(bad)?;
    let second = digits(text, &mut pos, 2).ok_or_else(bad)?;
    let mut micros = 0;
    if text.get(pos) == Some(&b'.') {
        // nginx's $msec-style fractions sometimes appear here.
        pos += 1;
        let start = pos;
        while let Some(b) = text.get(pos).filter(|b| b.is_ascii_digit()) {
            if pos - start < 6 {
                micros = micros * 10 + u32::from(b - b'0');
            }
            pos += 1;
        }
        for _ in (pos - start).min(6)..6 {
            micros *= 10;
        }
    }
    expect(text, &mut pos, b' ').ok_or_else(bad)?;
    let offset_secs = parse_offset(text, &mut pos)?;
    if pos != text.len() {
        return Err(err(text, "trailing characters"));
    }
    assemble(
        text,
        Fields {
            year: i64::from(year),
            month,
            day,
            hour,
            minute,
            second,
            micros,
            offset_secs,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn date_alone_is_midnight_utc() {
        assert_eq!(t("2025-03-01"), t("2025-03-01T00:00:00Z"));
        assert_eq!(t("1970-01-01").as_micros(), 0);
    }

    #[test]
    fn offsets_are_compared_as_instants() {
        assert_eq!(t("2025-03-01T01:00:00+01:00"), t("2025-03-01T00:00:00Z"));
        assert_eq!(t("2025-02-28T19:00:00-0500"), t("2025-03-01T00:00:00Z"));
        assert_eq!(t("2025-03-01T05:30:00+05:30"), t("2025-03-01"));
        assert!(t("2025-03-01T00:00:00+01:00") < t("2025-03-01T00:00:00Z"));
    }

    #[test]
    fn no_offset_means_utc_and_space_separator_is_accepted() {
        assert_eq!(t("2024-10-01T23:41:00"), t("2024-10-01T23:41:00Z"));
        assert_eq!(t("2024-10-01 23:41"), t("2024-10-01T23:41:00Z"));
    }

    #[test]
    fn fractions_round_trip() {
        let i = t("2024-10-01T23:41:00.125Z");
        assert_eq!(i.as_micros() % 1_000_000, 125_000);
        assert_eq!(i.to_rfc3339(), "2024-10-01T23:41:00.125Z");
        assert_eq!(
            t("2024-10-01T23:41:00Z").to_rfc3339(),
            "2024-10-01T23:41:00Z"
        );
        assert_eq!(
            t("2024-10-01T23:41:00.1234567Z").to_rfc3339(),
            "2024-10-01T23:41:00.123456Z"
        );
    }

    #[test]
    fn rejects_impossible_dates() {
        for bad in [
            "2025-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T00:00:00+25:00",
            "2024-1-1",
            "yesterday",
            "2024-01-01T00:00:00Zjunk",
            "",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Timestamp::parse("2024-02-29").is_ok());
    }

    #[test]
    fn clf_times() {
        let i = Timestamp::parse_clf(b"10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(i, t("2000-10-10T20:55:36Z"));
        let j = Timestamp::parse_clf(b"29/Sep/2024:00:15:07 +0000").unwrap();
        assert_eq!(j.to_rfc3339(), "2024-09-29T00:15:07Z");
        assert!(Timestamp::parse_clf(b"31/Feb/2024:00:00:00 +0000").is_err());
        assert!(Timestamp::parse_clf(b"01/Foo/2024:00:00:00 +0000").is_err());
        assert!(Timestamp::parse_clf(b"01/Jan/2024:00:00:00").is_err());
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
