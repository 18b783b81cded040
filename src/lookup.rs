//! Answering lookups: the `lookup` command, by arguments and in batch.
//!
//! Every query gets exactly one output line, in input order: the record, `{}` for
//! no match (Whip's convention), `{"history":[...]}` for a history query, or
//! `{"error":"..."}` for a query that cannot be answered (bad IP, bad time, bad
//! JSON). A bad query never stops a batch.

use std::borrow::Cow;
use std::io::{self, BufReader, Read, Write};

use crate::index::{write_history_json, Index};
use crate::ip::IpKey;
use crate::lines::{read_line_limited, skip_line, LineRead};
use crate::time::Timestamp;

/// Which record a query asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// The newest snapshot.
    Latest,
    /// The snapshot valid at this instant.
    At(Timestamp),
    /// Every version, newest first.
    History,
}

/// Appends the answer for one query (without a newline).
pub fn write_answer(index: &Index, ip: IpKey, when: When, out: &mut Vec<u8>) {
    let m = match when {
        When::Latest => index.latest(ip),
        When::At(t) => index.at(ip, t),
        When::History => {
            write_history_json(&index.history_of(ip), out);
            return;
        }
    };
    match m {
        Some(m) => m.write_json(out),
        None => out.extend_from_slice(b"{}"),
    }
}

/// Appends `{"error":"..."}`.
pub fn write_error(message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"error\":");
    // Serialising a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, message);
    out.push(b'}');
}

#[derive(serde::Deserialize)]
struct Query<'a> {
    #[serde(borrow, default)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    t: Option<Cow<'a, str>>,
}

/// Why a batch line is answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("line longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("invalid query: {0}")]
    Json(#[from] serde_json::Error),
    #[error("query has no \"ip\" field")]
    NoIp,
    #[error(transparent)]
    Ip(#[from] crate::ip::IpParseError),
    #[error(transparent)]
    Time(#[from] crate::time::TimeParseError),
}

/// Parses one batch line into an address and a time, or says why it cannot.
fn parse_query(line: &[u8]) -> Result<(IpKey, When), QueryError> {
    let trimmed = line.trim_ascii();
    if !trimmed.starts_with(b"{") {
        // A bare address is a query for the newest record.
        let text = std::str::from_utf8(trimmed).map_err(|_| QueryError::InvalidUtf8)?;
        let ip = IpKey::parse(text)?;
        return Ok((ip, When::Latest));
    }
    let q: Query = serde_json::from_slice(trimmed)?;
    let ip = q.ip.ok_or(QueryError::NoIp)?;
    let ip = IpKey::parse(&ip)?;
    let when = match q.t {
        None => When::Latest,
        Some(t) => When::At(Timestamp::parse(&t)?),
    };
    Ok((ip, when))
}

/// Counts of a batch run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub queries: u64,
    pub matched: u64,
    pub errors: u64,
}

/// The longest query line read: the same bound as a log line in `enrich`; a
/// longer line is answered with an error and never held in memory whole.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Lines answered together: big enough for batched lookups to pay off.
const BATCH_LINES: usize = 4096;

/// Answers JSON-lines queries `{"ip": .., "t": ..}` (`t` optional) from `input`.
/// Lines are answered in batches ([`Index::at_many`]) of what is already buffered,
/// and output is flushed whenever the input has nothing more buffered, so an
/// interactive caller gets each answer at once and a pipe gets big writes.
pub fn run_batch<R: Read>(
    index: &Index,
    input: &mut BufReader<R>,
    mut output: impl Write,
) -> io::Result<BatchStats> {
    let mut stats = BatchStats::default();
    let mut text = Vec::with_capacity(1 << 20);
    let mut ends = Vec::with_capacity(BATCH_LINES);
    let mut parsed = Vec::with_capacity(BATCH_LINES);
    let mut queries = Vec::with_capacity(BATCH_LINES);
    let mut answers = Vec::with_capacity(BATCH_LINES);
    let mut out = Vec::with_capacity(256 * 1024);
    loop {
        text.clear();
        ends.clear();
        let mut eof = false;
        while ends.len() < BATCH_LINES {
            match read_line_limited(input, &mut text, MAX_QUERY_BYTES)? {
                LineRead::Eof => {
                    eof = true;
                    break;
                }
                LineRead::Line => ends.push((text.len(), false)),
                LineRead::TooLong => {
                    skip_line(input)?;
                    ends.push((text.len(), true));
                }
            }
            if input.buffer().is_empty() {
                break;
            }
        }
        parsed.clear();
        queries.clear();
        let mut start = 0;
        for &(end, too_long) in &ends {
            let line = &text[start..end];
            start = end;
            if !too_long && line.trim_ascii().is_empty() {
                continue;
            }
            stats.queries += 1;
            let q = if too_long {
                Err(QueryError::TooLong)
            } else {
                parse_query(line)
            };
            if let Ok((ip, when)) = &q {
                let t = match when {
                    When::At(t) => *t,
                    _ => Timestamp::MAX,
                };
                queries.push((*ip, t));
            }
            parsed.push((stats.queries, q));
        }
        answers.clear();
        index.at_many(&queries, &mut answers);
        let mut answer = answers.iter();
        for (n, q) in &parsed {
            match q {
                Ok(_) => match answer.next().copied().flatten() {
                    Some(m) => {
                        stats.matched += 1;
                        m.write_json(&mut out);
                    }
                    None => out.extend_from_slice(b"{}"),
                },
                Err(e) => {
                    stats.errors += 1;
                    write_error(&format!("line {n}: {e}"), &mut out);
                }
            }
            out.push(b'\n');
        }
        output.write_all(&out)?;
        out.clear();
        if eof || input.buffer().is_empty() {
            output.flush()?;
        }
        if eof {
            return Ok(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_or_explain() {
        assert_eq!(
            parse_query(br#"{"ip":"1.2.3.4"}"#).unwrap(),
            (IpKey::parse("1.2.3.4").unwrap(), When::Latest)
        );
        assert_eq!(
            parse_query(b"::ffff:1.2.3.4\n").unwrap().0,
            IpKey::parse("1.2.3.4").unwrap()
        );
        let (_, when) = parse_query(br#"{"ip":"::1","t":"2025-03-01"}"#).unwrap();
        assert_eq!(when, When::At(Timestamp::parse("2025-03-01").unwrap()));
        assert!(parse_query(br#"{"ip":"999.1.1.1"}"#)
            .unwrap_err()
            .to_string()
            .contains("not an IP"));
        assert!(parse_query(br#"{"ip":"1.1.1.1","t":"2025-02-30"}"#)
            .unwrap_err()
            .to_string()
            .contains("day out of range"));
        assert!(parse_query(br#"{"t":"2025-02-01"}"#)
            .unwrap_err()
            .to_string()
            .contains("no \"ip\""));
        assert!(parse_query(br#"{"ip":"#)
            .unwrap_err()
            .to_string()
            .contains("invalid query"));
    }

    #[test]
    fn batch_answers_every_line_in_order() {
        let index = Index::default();
        let input = b"{\"ip\":\"1.2.3.4\"}\n\nnot an ip\n{\"ip\":\"::1\",\"t\":\"2020-01-01\"}\n";
        let mut out = Vec::new();
        let stats = run_batch(&index, &mut BufReader::new(&input[..]), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "{}");
        assert!(
            lines[1].starts_with("{\"error\":\"line 2: "),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "{}");
        assert_eq!(
            stats,
            BatchStats {
                queries: 3,
                matched: 0,
                errors: 1
            }
        );
    }

    /// A line over the limit is answered with a short error and the lines after it
    /// are still answered; an address of any length is quoted as an excerpt.
    #[test]
    fn long_lines_get_a_short_error_and_the_rest_is_answered() {
        let index = Index::default();
        let mut input = vec![b'9'; 3 * MAX_QUERY_BYTES];
        input.extend_from_slice(b"\n1.2.3.4\n");
        input.extend_from_slice(&vec![b'x'; MAX_QUERY_BYTES - 1]);
        input.push(b'\n');
        let mut out = Vec::new();
        let stats = run_batch(&index, &mut BufReader::new(&input[..]), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:.300}");
        assert_eq!(
            lines[0],
            format!("{{\"error\":\"line 1: line longer than {MAX_QUERY_BYTES} bytes\"}}")
        );
        assert_eq!(lines[1], "{}");
        assert!(
            lines[2].contains("not an IP address") && lines[2].len() < 200,
            "{}",
            lines[2]
        );
        assert_eq!(stats.errors, 2);
    }
}
