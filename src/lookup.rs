//! Answering lookups: the `lookup` command, by arguments and in batch.
//!
//! Every query gets exactly one output line, in input order: the record, `{}` for
//! no match (Whip's convention), `{"history":[...]}` for a history query, or
//! `{"error":"..."}` for a query that cannot be answered (bad IP, bad time, bad
//! JSON). A bad query never stops a batch.

use std::borrow::Cow;
use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc;

use crate::index::{write_history_json, Index, Match};
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
    let q = match plain_query(trimmed) {
        Some(q) => q,
        None => serde_json::from_slice(trimmed)?,
    };
    let ip = IpKey::parse(&q.ip.ok_or(QueryError::NoIp)?)?;
    let when = match q.t {
        None => When::Latest,
        Some(t) => When::At(Timestamp::parse(&t)?),
    };
    Ok((ip, when))
}

/// The fields of a query in the plain form nearly every query has, read
/// without a JSON parser: exactly `{"ip":"A"}` or `{"ip":"A","t":"T"}` (no
/// spaces) with strings that hold no escape, quote or control character and are
/// valid UTF-8. Such text means the same to the JSON parser, which gets every
/// other line (and says what is wrong with a bad one).
fn plain_query(line: &[u8]) -> Option<Query<'_>> {
    /// The string before the first quote of `rest`, if it needs no unescaping,
    /// and what follows that quote.
    fn plain_str(rest: &[u8]) -> Option<(&str, &[u8])> {
        let end = memchr::memchr(b'"', rest)?;
        let (text, after) = (&rest[..end], &rest[end + 1..]);
        if text.iter().any(|&b| b == b'\\' || b < 0x20) {
            return None;
        }
        Some((std::str::from_utf8(text).ok()?, after))
    }
    let rest = line.strip_prefix(b"{\"ip\":\"")?;
    let (ip, rest) = plain_str(rest)?;
    let ip = Some(Cow::Borrowed(ip));
    if rest == b"}" {
        return Some(Query { ip, t: None });
    }
    let rest = rest.strip_prefix(b",\"t\":\"")?;
    let (t, rest) = plain_str(rest)?;
    (rest == b"}").then_some(Query {
        ip,
        t: Some(Cow::Borrowed(t)),
    })
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

/// Fewest queries worth handing to a second thread: below this a thread start
/// costs more than it saves (an interactive caller's single lines stay on the
/// calling thread).
const MIN_SPLIT: usize = 512;

/// One query line of a batch: its bytes in the batch text, whether it was cut
/// for length, and its query number (blank lines are not queries).
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    too_long: bool,
    n: u64,
}

/// What a query line asks for, or why it cannot be answered.
type Parsed = Result<(IpKey, When), QueryError>;

/// The working vectors of [`answer_lines`], kept from batch to batch (one set
/// per thread) so that a batch allocates nothing.
#[derive(Default)]
struct Scratch<'a> {
    /// Each query's number and what it asks (or why it cannot be answered).
    parsed: Vec<(u64, Parsed)>,
    queries: Vec<(IpKey, Timestamp)>,
    answers: Vec<Option<Match<'a>>>,
}

/// Answers `lines` of `text` (parse, look up, write), appending one answer line
/// per query to `out`; returns (matched, errors).
fn answer_lines<'a>(
    index: &'a Index,
    text: &[u8],
    lines: &[Line],
    scratch: &mut Scratch<'a>,
    out: &mut Vec<u8>,
) -> (u64, u64) {
    let Scratch {
        parsed,
        queries,
        answers,
    } = scratch;
    parsed.clear();
    queries.clear();
    answers.clear();
    for l in lines {
        let q = if l.too_long {
            Err(QueryError::TooLong)
        } else {
            parse_query(&text[l.start..l.end])
        };
        if let Ok((ip, when)) = &q {
            let t = match when {
                When::At(t) => *t,
                _ => Timestamp::MAX,
            };
            queries.push((*ip, t));
        }
        parsed.push((l.n, q));
    }
    index.at_many(queries, answers);
    let (mut matched, mut errors) = (0, 0);
    let mut answer = answers.iter();
    for (n, q) in parsed.iter() {
        match q {
            Ok(_) => match answer.next().copied().flatten() {
                Some(m) => {
                    matched += 1;
                    m.write_json(out);
                }
                None => out.extend_from_slice(b"{}"),
            },
            Err(e) => {
                errors += 1;
                write_error(&format!("line {n}: {e}"), out);
            }
        }
        out.push(b'\n');
    }
    (matched, errors)
}

/// How many threads [`run_batch`] answers a batch on: the cores available, at
/// most 2 (reading the input stays on one thread, so more do not pay off).
fn batch_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Answers JSON-lines queries `{"ip": .., "t": ..}` (`t` optional) from `input`.
/// Lines are answered in batches ([`Index::at_many`]) of what is already buffered,
/// and output is flushed whenever the input has nothing more buffered, so an
/// interactive caller gets each answer at once and a pipe gets big writes. A big
/// batch is answered in parts on two threads, written in input order.
pub fn run_batch<R: Read>(
    index: &Index,
    input: &mut BufReader<R>,
    output: impl Write,
) -> io::Result<BatchStats> {
    run_batch_on(index, input, output, batch_threads())
}

/// A part of a batch handed to the helper thread, and handed back answered.
/// Its buffers go back and forth, so they are allocated once per run.
#[derive(Default)]
struct Part {
    /// The part's lines' bytes.
    text: Vec<u8>,
    /// The part's lines, positions in `text`.
    lines: Vec<Line>,
    /// The answers, one line per query.
    out: Vec<u8>,
    matched: u64,
    errors: u64,
}

/// [`run_batch`] on `threads` threads (1 = all on the calling thread; more =
/// one helper thread beside it, which answers the first half of every batch
/// big enough while this thread answers the second).
fn run_batch_on<R: Read>(
    index: &Index,
    input: &mut BufReader<R>,
    output: impl Write,
    threads: usize,
) -> io::Result<BatchStats> {
    if threads <= 1 {
        return answer_batches(index, input, output, None);
    }
    std::thread::scope(|s| {
        let (part_tx, part_rx) = mpsc::channel::<Part>();
        let (done_tx, done_rx) = mpsc::channel::<Part>();
        let helper = s.spawn(move || {
            let mut scratch = Scratch::default();
            for mut part in part_rx {
                part.out.clear();
                (part.matched, part.errors) =
                    answer_lines(index, &part.text, &part.lines, &mut scratch, &mut part.out);
                if done_tx.send(part).is_err() {
                    break;
                }
            }
        });
        let result = answer_batches(index, input, output, Some((&part_tx, &done_rx)));
        // The helper ends when its queue closes.
        drop(part_tx);
        if let Err(panic) = helper.join() {
            // A panic while answering is a bug: passed on as it is.
            std::panic::resume_unwind(panic);
        }
        result
    })
}

/// The batch loop of [`run_batch_on`], with the helper thread's queues if any.
fn answer_batches<R: Read>(
    index: &Index,
    input: &mut BufReader<R>,
    mut output: impl Write,
    helper: Option<(&mpsc::Sender<Part>, &mpsc::Receiver<Part>)>,
) -> io::Result<BatchStats> {
    let mut stats = BatchStats::default();
    let mut text = Vec::with_capacity(1 << 20);
    let mut lines = Vec::with_capacity(BATCH_LINES);
    let mut out = Vec::with_capacity(256 * 1024);
    // The helper's part while it is not with the helper.
    let mut spare = Some(Part::default());
    let mut scratch = Scratch::default();
    loop {
        text.clear();
        lines.clear();
        let mut eof = false;
        let mut start = 0;
        let mut read = 0;
        while read < BATCH_LINES {
            let too_long = match read_line_limited(input, &mut text, MAX_QUERY_BYTES)? {
                LineRead::Eof => {
                    eof = true;
                    break;
                }
                LineRead::Line => false,
                LineRead::TooLong => {
                    skip_line(input)?;
                    true
                }
            };
            read += 1;
            let end = text.len();
            if too_long || !text[start..end].trim_ascii().is_empty() {
                stats.queries += 1;
                lines.push(Line {
                    start,
                    end,
                    too_long,
                    n: stats.queries,
                });
            }
            start = end;
            if input.buffer().is_empty() {
                break;
            }
        }
        let split = match (helper, spare.take()) {
            (Some((to_helper, _)), Some(mut part)) if lines.len() >= MIN_SPLIT => {
                // The first half (its bytes copied) to the helper.
                let (first, _) = lines.split_at(lines.len() / 2);
                let bytes = first.last().map_or(0, |l| l.end);
                part.text.clear();
                part.text.extend_from_slice(&text[..bytes]);
                part.lines.clear();
                part.lines.extend_from_slice(first);
                let given = first.len();
                // A send fails only when the helper has ended (panicked):
                // its join passes the panic on.
                to_helper.send(part).map_err(|_| helper_gone())?;
                Some(given)
            }
            (_, part) => {
                spare = part;
                None
            }
        };
        let own = &lines[split.unwrap_or(0)..];
        let (m, e) = answer_lines(index, &text, own, &mut scratch, &mut out);
        stats.matched += m;
        stats.errors += e;
        if let (Some(_), Some((_, from_helper))) = (split, helper) {
            let part = from_helper.recv().map_err(|_| helper_gone())?;
            stats.matched += part.matched;
            stats.errors += part.errors;
            output.write_all(&part.out)?;
            spare = Some(part);
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

/// The error when the helper thread ended early (it panicked: the scope's
/// join passes that on instead).
fn helper_gone() -> io::Error {
    io::Error::other("the lookup helper thread ended")
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

    /// The plain form read without the JSON parser gives what the parser gives,
    /// and anything else (escapes, spaces, other keys or order, bad UTF-8,
    /// trailing text) goes to the parser.
    #[test]
    fn plain_queries_read_like_json() {
        let via_json = |line: &[u8]| -> Result<(IpKey, When), String> {
            (|| {
                let q: Query = serde_json::from_slice(line)?;
                let ip = IpKey::parse(&q.ip.ok_or(QueryError::NoIp)?)?;
                let when = match q.t {
                    None => When::Latest,
                    Some(t) => When::At(Timestamp::parse(&t)?),
                };
                Ok::<_, QueryError>((ip, when))
            })()
            .map_err(|e| e.to_string())
        };
        let plain: [&[u8]; 5] = [
            br#"{"ip":"1.2.3.4"}"#,
            br#"{"ip":"2001:db8::1","t":"2025-03-01T10:00:00Z"}"#,
            br#"{"ip":"1.2.3.4","t":"2025-02-30"}"#,
            br#"{"ip":"nonsense","t":"2025-03-01"}"#,
            br#"{"ip":"","t":""}"#,
        ];
        for line in plain {
            assert!(
                plain_query(line).is_some(),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(
                parse_query(line).map_err(|e| e.to_string()),
                via_json(line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let other: [&[u8]; 12] = [
            br#"{"ip":"1.2.3\u002e4"}"#,
            br#"{"ip": "1.2.3.4"}"#,
            br#"{"t":"2025-03-01","ip":"1.2.3.4"}"#,
            br#"{"ip":"1.2.3.4","t":"2025-03-01","x":1}"#,
            br#"{"ip":"1.2.3.4"}}"#,
            br#"{"ip":"1.2.3.4","ip":"1.2.3.5"}"#,
            br#"{"ip":"1.2.3.4","t":"2025-03-01"} "#,
            b"{\"ip\":\"1.2.3.4\t\"}",
            b"{\"ip\":\"1.2.\xff3.4\"}",
            br#"{"ip":"1.2.3.4""#,
            br#"{"ip":"1.2.3.4","t":null}"#,
            br#"{"ip":"1.2.3.4","t":"2025-03-01""#,
        ];
        for line in other {
            assert!(
                plain_query(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
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

    /// A batch answered on two threads writes exactly what one thread writes:
    /// every answer, error line numbers and counts in input order.
    #[test]
    fn two_threads_answer_like_one() {
        let index = crate::index::tests::index(&[crate::index::tests::A, crate::index::tests::B]);
        let mut input = Vec::new();
        for i in 0..3 * MIN_SPLIT {
            let line = match i % 7 {
                0 => format!(
                    "{{\"ip\":\"1.0.0.{}\",\"t\":\"2024-01-{:02}\"}}\n",
                    i % 256,
                    1 + i % 28
                ),
                1 => format!("1.0.0.{}\n", i % 256),
                2 => "\n".to_string(),
                3 => format!("{{\"ip\":\"2001:db8::{:x}\"}}\n", i),
                4 => format!("not an ip {i}\n"),
                5 => format!("{{\"ip\":\"1.0.0.{}\",\"t\":\"2023-12-31\"}}\n", i % 256),
                _ => format!("{{\"ip\":\"9.9.9.{}\"}}\n", i % 256),
            };
            input.extend_from_slice(line.as_bytes());
        }
        let run = |threads| {
            let mut out = Vec::new();
            // One buffer for the whole input: a single batch that gets split.
            let mut reader = BufReader::with_capacity(input.len() + 1, &input[..]);
            let stats = run_batch_on(&index, &mut reader, &mut out, threads).unwrap();
            (out, stats)
        };
        let (one, one_stats) = run(1);
        let (two, two_stats) = run(2);
        assert_eq!(
            String::from_utf8(two).unwrap(),
            String::from_utf8(one.clone()).unwrap()
        );
        assert_eq!(two_stats, one_stats);
        assert!(one_stats.matched > 0 && one_stats.errors > 0);
        assert_eq!(
            one.iter().filter(|&&b| b == b'\n').count() as u64,
            one_stats.queries
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
