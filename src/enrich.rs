//! The join: a log line and the data sets' indexes make one enriched JSON object.
//!
//! For each line: check it (length, UTF-8), parse it ([`LineParser`]), take its
//! event time, look the client up in every data set at that instant, and write
//! `{"ip":..,"timestamp":..,<parsed fields>,"line":..,"<data set>":<record>|null}`.
//! A line that cannot be enriched becomes a dead letter with its `source:line` and
//! the reason; no line is ever dropped: every line read is either written or
//! dead-lettered, and [`Counts`] says which.
//!
//! Never a plausible wrong answer in silence:
//! - a line without a time of its own ([`MissingTime`]) is, by default, enriched
//!   at the read time only when it is live (stdin, Kafka), and then marked
//!   `"time_source":"read"` and counted; from a file (a backfill) it is a dead
//!   letter "no event time" unless `--at` or `--missing-time read` says what to
//!   use. Any substitute time is marked (`read`, `at`, `kafka`);
//! - a time before a data set's first snapshot has no match ([`BeforeFirst`]),
//!   counted apart from "no range contains the address", or is answered from
//!   the earliest snapshot when asked;
//! - the partial last line of an input cut by a read error (a truncated gzip)
//!   is a dead letter "truncated input".

use crate::index::{Index, Match, SharedIndex};
use crate::ip::IpKey;
use crate::json::{write_key, write_str};
use crate::logline::{FileState, LineParser, LogLine, Parsed};
use crate::source::Chunk;
use crate::time::Timestamp;

/// Keys of an enriched line that are not data sets: a data set may not be
/// named after one, and readers of enriched lines (the report) skip them.
pub const OUTPUT_FIELDS: &[&str] = &[
    "ip",
    "timestamp",
    "time_source",
    "line",
    "fields",
    "ident",
    "user",
    "request",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
    "referer",
    "user_agent",
    "host",
    "upstream",
    "duration",
    "extra",
    "truncated",
];

/// A named data set (`--db geo=DIR`); the name is the output key.
#[derive(Clone)]
pub struct DataSet {
    pub name: String,
    pub index: SharedIndex,
}

/// What a line without an event time of its own is enriched at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MissingTime {
    /// By input: live input (stdin, Kafka) at the time it is read (the line is
    /// marked and counted); a file (a backfill) dead-letters it ("no event time"),
    /// since "now" would be a plausible wrong answer there.
    #[default]
    ByInput,
    /// The time it is read, for every input (files: the start of the run);
    /// `--missing-time read`.
    Read,
    /// A dead letter for every input; `--missing-time dead-letter`.
    DeadLetter,
    /// A fixed instant (`--at`, for backfilling logs without times).
    At(Timestamp),
}

impl MissingTime {
    /// The `--missing-time` / `input.missing_time` values (`--at` is separate).
    pub fn parse(s: &str) -> Result<MissingTime, String> {
        match s {
            "read" => Ok(MissingTime::Read),
            "dead-letter" => Ok(MissingTime::DeadLetter),
            "by-input" => Ok(MissingTime::ByInput),
            other => Err(format!(
                "{other:?}: expected read, dead-letter or by-input (or give --at TIME)"
            )),
        }
    }

    /// Combines `--at` and `--missing-time` (one setting, two spellings): both
    /// at once is an error.
    pub fn from_settings(
        at: Option<Timestamp>,
        missing: Option<MissingTime>,
    ) -> Result<MissingTime, String> {
        match (at, missing) {
            (Some(_), Some(_)) => {
                Err("give either an event time for lines without one (at) or a missing-time policy, not both".into())
            }
            (Some(t), None) => Ok(MissingTime::At(t)),
            (None, m) => Ok(m.unwrap_or_default()),
        }
    }
}

/// Where the event time written on a line came from, when not from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeOrigin {
    /// The time the line was read.
    Read,
    /// `--at`.
    At,
    /// The Kafka message timestamp.
    Kafka,
}

impl TimeOrigin {
    /// The value of the output's `"time_source"` key.
    pub fn name(self) -> &'static str {
        match self {
            TimeOrigin::Read => "read",
            TimeOrigin::At => "at",
            TimeOrigin::Kafka => "kafka",
        }
    }
}

/// What a time before a data set's first snapshot is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BeforeFirst {
    /// No match (the semantics: no snapshot at or before t); counted apart.
    #[default]
    NoMatch,
    /// The earliest snapshot (for one release of a database and older logs).
    Earliest,
}

impl BeforeFirst {
    /// The `--before-first` / `input.before_first` values.
    pub fn parse(s: &str) -> Result<BeforeFirst, String> {
        match s {
            "none" => Ok(BeforeFirst::NoMatch),
            "earliest" => Ok(BeforeFirst::Earliest),
            other => Err(format!("{other:?}: expected none or earliest")),
        }
    }
}

/// Output settings.
#[derive(Clone, Debug)]
pub struct EnrichOptions {
    /// Include the original line under `"line"`.
    pub include_line: bool,
    pub missing_time: MissingTime,
    pub before_first: BeforeFirst,
    /// Lines longer than this are dead-lettered.
    pub max_line_bytes: usize,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        EnrichOptions {
            include_line: true,
            missing_time: MissingTime::ByInput,
            before_first: BeforeFirst::NoMatch,
            max_line_bytes: 64 * 1024,
        }
    }
}

/// The dead-letter reason of a line without an event time under the policy.
pub const NO_EVENT_TIME: &str = "no event time";
/// The dead-letter reason of a partial last line cut off by a read error.
pub const TRUNCATED_INPUT: &str = "truncated input";

/// What happened to the lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub read: u64,
    pub enriched: u64,
    pub dead_lettered: u64,
    /// Directive lines (W3C `#Fields:`...): read, neither enriched nor dead letters.
    pub headers: u64,
    /// Per data set, in order: lines with a match.
    pub matched: Vec<u64>,
    /// Per data set, in order: lines whose time is before its first snapshot
    /// (unmatched by default; answered from the earliest with
    /// [`BeforeFirst::Earliest`]).
    pub before_first: Vec<u64>,
    /// Enriched lines without an event time of their own (written at the read
    /// time, `--at` or the Kafka message time, and marked `"time_source"`).
    pub time_substituted: u64,
    /// Dead-lettered lines without an event time (part of `dead_lettered`).
    pub no_time: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.enriched += other.enriched;
        self.dead_lettered += other.dead_lettered;
        self.headers += other.headers;
        self.time_substituted += other.time_substituted;
        self.no_time += other.no_time;
        for (mine, theirs) in [
            (&mut self.matched, &other.matched),
            (&mut self.before_first, &other.before_first),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

/// Parser, data sets and options: everything the join needs.
pub struct Enricher {
    parser: LineParser,
    datasets: Vec<DataSet>,
    options: EnrichOptions,
    started: Timestamp,
    /// Lookup latency (a no-op unless the daemon installed the exporter first).
    lookup_seconds: metrics::Histogram,
}

/// Why a line was dead-lettered.
fn dead_letter(source: &str, line_no: u64, reason: &str, line: &[u8], dead: &mut Vec<u8>) {
    dead.extend_from_slice(b"{\"source\":");
    write_str(dead, &format!("{source}:{line_no}"));
    dead.extend_from_slice(b",\"reason\":");
    write_str(dead, reason);
    dead.extend_from_slice(b",\"line\":");
    write_str(dead, &String::from_utf8_lossy(line));
    dead.extend_from_slice(b"}\n");
}

impl Enricher {
    pub fn new(parser: LineParser, datasets: Vec<DataSet>, options: EnrichOptions) -> Enricher {
        Enricher {
            parser,
            datasets,
            options,
            started: Timestamp::now(),
            lookup_seconds: crate::telemetry::enrich_lookup_histogram(),
        }
    }

    pub fn datasets(&self) -> &[DataSet] {
        &self.datasets
    }

    /// The time a line without one is enriched at, read at `read_at` (live
    /// input) or from a file (`None`); `None` when it is a dead letter.
    fn substitute_time(&self, read_at: Option<Timestamp>) -> Option<(Timestamp, TimeOrigin)> {
        match self.options.missing_time {
            MissingTime::At(t) => Some((t, TimeOrigin::At)),
            MissingTime::Read => Some((read_at.unwrap_or(self.started), TimeOrigin::Read)),
            MissingTime::ByInput => read_at.map(|t| (t, TimeOrigin::Read)),
            MissingTime::DeadLetter => None,
        }
    }

    /// Answers `queries` from one data set's index into `out`, counting those
    /// before its first snapshot (and answering them from it with
    /// [`BeforeFirst::Earliest`]).
    fn answer<'a>(
        &self,
        index: &'a Index,
        queries: &[(IpKey, Timestamp)],
        out: &mut Vec<Option<Match<'a>>>,
        before_first: &mut u64,
    ) {
        let Some(first) = index.first_snapshot() else {
            index.at_many(queries, out);
            return;
        };
        let before = queries.iter().filter(|(_, t)| *t < first).count();
        *before_first += before as u64;
        if before > 0 && self.options.before_first == BeforeFirst::Earliest {
            let clamped: Vec<(IpKey, Timestamp)> =
                queries.iter().map(|&(ip, t)| (ip, t.max(first))).collect();
            index.at_many(&clamped, out);
        } else {
            index.at_many(queries, out);
        }
    }

    /// Enriches every line of a chunk: output objects to `out`, dead letters to
    /// `dead`, one line each. Lines are parsed first, then every data set answers
    /// the whole chunk in one batched lookup ([`Index::at_many`]), then objects
    /// are written in input order.
    pub fn enrich_chunk(
        &self,
        chunk: &Chunk,
        out: &mut Vec<u8>,
        dead: &mut Vec<u8>,
        counts: &mut Counts,
    ) {
        let guards: Vec<_> = self.datasets.iter().map(|d| d.index.load()).collect();
        counts.matched.resize(self.datasets.len(), 0);
        counts.before_first.resize(self.datasets.len(), 0);
        let substitute = self.substitute_time(chunk.read_at);
        let mut parsed: Vec<(LogLine<'_>, Timestamp, Option<TimeOrigin>, &str)> =
            Vec::with_capacity(4096);
        let mut file = FileState::after(chunk.header.as_deref());
        let mut lines = chunk.lines().peekable();
        while let Some((line_no, line)) = lines.next() {
            counts.read += 1;
            let checked = if chunk.truncated && lines.peek().is_none() {
                Err(TRUNCATED_INPUT.to_string())
            } else {
                self.check_and_parse(line, Some(&mut file))
            };
            let reason = match checked {
                Ok(None) => {
                    counts.headers += 1;
                    continue;
                }
                Ok(Some((p, text))) => match (p.time, substitute) {
                    (Some(t), _) => {
                        parsed.push((p, t, None, text));
                        continue;
                    }
                    (None, Some((t, origin))) => {
                        counts.time_substituted += 1;
                        parsed.push((p, t, Some(origin), text));
                        continue;
                    }
                    (None, None) => {
                        counts.no_time += 1;
                        NO_EVENT_TIME.to_string()
                    }
                },
                Err(reason) => reason,
            };
            counts.dead_lettered += 1;
            dead_letter(&chunk.source, line_no, &reason, line, dead);
        }
        counts.enriched += parsed.len() as u64;
        let queries: Vec<(IpKey, Timestamp)> =
            parsed.iter().map(|(p, t, _, _)| (p.ip, *t)).collect();
        let lookups_started = std::time::Instant::now();
        let answers: Vec<Vec<Option<Match<'_>>>> = guards
            .iter()
            .zip(counts.before_first.iter_mut())
            .map(|(index, before_first)| {
                let mut a = Vec::with_capacity(queries.len());
                self.answer(index, &queries, &mut a, before_first);
                a
            })
            .collect();
        // One sample per chunk: a batched lookup has no per-line time of its own.
        let lookups = queries.len() * guards.len();
        if lookups > 0 {
            self.lookup_seconds
                .record(lookups_started.elapsed().as_secs_f64() / lookups as f64);
        }
        for (i, (p, t, origin, text)) in parsed.iter().enumerate() {
            self.write_object(
                p,
                *t,
                *origin,
                text,
                answers.iter().map(|a| a[i]),
                out,
                &mut counts.matched,
            );
        }
    }

    /// Enriches one line (a Kafka message): appends its JSON object, without a
    /// newline, to `out`, or returns the dead-letter reason; `counts` gets the
    /// line. `fallback` (the message timestamp, else the read time) is the event
    /// time of a line without one unless `--at` or `--missing-time dead-letter`
    /// says otherwise, and of every line with `always_fallback`.
    pub fn enrich_one(
        &self,
        line: &[u8],
        fallback: (Timestamp, TimeOrigin),
        always_fallback: bool,
        out: &mut Vec<u8>,
        counts: &mut Counts,
    ) -> Result<(), String> {
        counts.read += 1;
        counts.matched.resize(self.datasets.len(), 0);
        counts.before_first.resize(self.datasets.len(), 0);
        let parsed = self
            .check_and_parse(line, None)
            .and_then(|p| p.ok_or_else(|| "directive line".to_string()))
            .and_then(|(parsed, text)| {
                let (t, origin) = match (always_fallback, parsed.time) {
                    (true, _) => (fallback.0, Some(fallback.1)),
                    (false, Some(t)) => (t, None),
                    (false, None) => {
                        let substitute = match self.options.missing_time {
                            MissingTime::At(t) => Some((t, TimeOrigin::At)),
                            MissingTime::DeadLetter => None,
                            MissingTime::Read | MissingTime::ByInput => Some(fallback),
                        };
                        let Some((t, origin)) = substitute else {
                            counts.no_time += 1;
                            return Err(NO_EVENT_TIME.to_string());
                        };
                        counts.time_substituted += 1;
                        (t, Some(origin))
                    }
                };
                Ok((parsed, text, t, origin))
            });
        let (parsed, text, t, origin) = match parsed {
            Ok(p) => p,
            Err(reason) => {
                counts.dead_lettered += 1;
                return Err(reason);
            }
        };
        counts.enriched += 1;
        let guards: Vec<_> = self.datasets.iter().map(|d| d.index.load()).collect();
        let lookups_started = std::time::Instant::now();
        let mut answers: Vec<Option<Match<'_>>> = Vec::with_capacity(guards.len());
        for (index, before_first) in guards.iter().zip(counts.before_first.iter_mut()) {
            self.answer(index, &[(parsed.ip, t)], &mut answers, before_first);
        }
        if !guards.is_empty() {
            self.lookup_seconds
                .record(lookups_started.elapsed().as_secs_f64() / guards.len() as f64);
        }
        self.write_object(
            &parsed,
            t,
            origin,
            text,
            answers.into_iter(),
            out,
            &mut counts.matched,
        );
        out.pop(); // the newline
        Ok(())
    }

    /// The per-data-set part of a run's summary, e.g. `geo: 5 matched, 10
    /// unmatched (8 before the first snapshot (2024-10-01T23:41:00Z), 2 no range
    /// contains the address)`.
    pub fn describe_matches(&self, counts: &Counts) -> String {
        let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        self.datasets
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let matched = at(&counts.matched, i);
                let unmatched = counts.enriched.saturating_sub(matched);
                let before = at(&counts.before_first, i);
                let first = d.index.load().first_snapshot();
                let mut text = format!("{}: {matched} matched, {unmatched} unmatched", d.name);
                match (first, self.options.before_first) {
                    (None, _) if unmatched > 0 => text.push_str(" (no snapshot loaded)"),
                    (None, _) => {}
                    (Some(first), BeforeFirst::NoMatch) if unmatched > 0 => {
                        text.push_str(&format!(
                            " ({before} before the first snapshot ({}), {} no range contains the address)",
                            first.to_rfc3339(),
                            unmatched.saturating_sub(before)
                        ))
                    }
                    (Some(first), BeforeFirst::Earliest) if before > 0 => text.push_str(&format!(
                        ", {before} before the first snapshot answered from it ({})",
                        first.to_rfc3339()
                    )),
                    (Some(_), _) => {}
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Warnings a run's summary ends with, one line each, naming the option
    /// that helps: lines older than a data set, lines without an event time.
    pub fn warnings(&self, counts: &Counts) -> Vec<String> {
        let mut out = Vec::new();
        if self.options.before_first == BeforeFirst::NoMatch {
            let older: Vec<String> = self
                .datasets
                .iter()
                .zip(&counts.before_first)
                .filter(|(_, &n)| n > 0)
                .filter_map(|(d, n)| {
                    let first = d.index.load().first_snapshot()?;
                    Some(format!(
                        "{n} in {} (first snapshot {})",
                        d.name,
                        first.to_rfc3339()
                    ))
                })
                .collect();
            if !older.is_empty() {
                out.push(format!(
                    "lines older than the first snapshot got no match: {}; \
                     --before-first earliest answers them from the earliest snapshot",
                    older.join(", ")
                ));
            }
        }
        if counts.no_time > 0 {
            out.push(format!(
                "{} line(s) without an event time were dead-lettered ({NO_EVENT_TIME:?}); \
                 --at TIME or --missing-time read enriches them",
                counts.no_time
            ));
        }
        if counts.time_substituted > 0 {
            out.push(format!(
                "{} line(s) without an event time were enriched at another time, marked \
                 \"time_source\" (read, at or kafka)",
                counts.time_substituted
            ));
        }
        out
    }

    /// Checks a raw line (length, UTF-8, not blank) and parses it, in its file's
    /// state when it comes from one; `None` for a directive line. The error is
    /// the dead-letter reason.
    fn check_and_parse<'a>(
        &self,
        line: &'a [u8],
        file: Option<&mut FileState>,
    ) -> Result<Option<(LogLine<'a>, &'a str)>, String> {
        if line.len() > self.options.max_line_bytes {
            return Err(format!(
                "line longer than {} bytes",
                self.options.max_line_bytes
            ));
        }
        let text = std::str::from_utf8(line)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
        if text.trim().is_empty() {
            return Err("empty line".into());
        }
        let parsed = match file {
            Some(file) => match self.parser.parse_in(text, file) {
                Ok(Parsed::Entry(p)) => p,
                Ok(Parsed::Directive) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            },
            None => self.parser.parse(text).map_err(|e| e.to_string())?,
        };
        Ok(Some((parsed, text)))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_object<'m>(
        &self,
        parsed: &LogLine<'_>,
        t: Timestamp,
        origin: Option<TimeOrigin>,
        text: &str,
        answers: impl Iterator<Item = Option<Match<'m>>>,
        out: &mut Vec<u8>,
        matched: &mut [u64],
    ) {
        out.extend_from_slice(b"{\"ip\":");
        write_str(out, &parsed.ip_text);
        out.extend_from_slice(b",\"timestamp\":\"");
        t.write_rfc3339(out);
        out.push(b'"');
        if let Some(origin) = origin {
            out.extend_from_slice(b",\"time_source\":\"");
            out.extend_from_slice(origin.name().as_bytes());
            out.push(b'"');
        }
        parsed.fields.write_json(out);
        if self.options.include_line {
            out.extend_from_slice(b",\"line\":");
            write_str(out, text);
        }
        for (i, (ds, answer)) in self.datasets.iter().zip(answers).enumerate() {
            out.push(b',');
            write_key(out, &ds.name);
            match answer {
                Some(m) => {
                    matched[i] += 1;
                    m.write_json(out);
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

/// A valid data set name: it becomes a JSON key, so keep it plain.
pub fn valid_dataset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a data set name, for `enrich` and `run` alike: plain (it becomes a
/// JSON key) and not a key the output already has.
pub fn check_dataset_name(name: &str) -> Result<(), String> {
    if !valid_dataset_name(name) {
        return Err(format!(
            "data set name {name:?}: use 1 to 64 letters, digits, _ and -"
        ));
    }
    if OUTPUT_FIELDS.contains(&name) {
        return Err(format!(
            "data set name {name:?} is an output field name; choose another"
        ));
    }
    Ok(())
}

/// `NAME=DIR`, or `DIR` for the data set named "whip" (also when what comes
/// before a `=` cannot be a name: the `=` is then part of the path). The name
/// is checked ([`check_dataset_name`]).
pub fn parse_dataset_spec(spec: &str) -> Result<(String, std::path::PathBuf), String> {
    match spec.split_once('=') {
        Some((name, dir)) if valid_dataset_name(name) => {
            check_dataset_name(name)?;
            if dir.is_empty() {
                return Err(format!("{spec:?}: expected NAME=DIR"));
            }
            Ok((name.to_string(), dir.into()))
        }
        _ => Ok(("whip".to_string(), spec.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, Interner, SnapshotMeta};
    use crate::index::Index;
    use crate::logline::ParserConfig;
    use crate::snapshot::SnapshotFile;
    use std::sync::Arc;

    fn dataset(name: &str, text: &str) -> DataSet {
        let f = SnapshotFile::from_lines("t", text).unwrap();
        let mut h = History::default();
        let meta = SnapshotMeta::of_file(&f);
        h.merge(&mut Interner::default(), &f, meta, false).unwrap();
        DataSet {
            name: name.into(),
            index: Arc::new(arc_swap::ArcSwap::from_pointee(Index::new(h))),
        }
    }

    fn run(
        enricher: &Enricher,
        text: &str,
    ) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, Counts) {
        let chunk = Chunk {
            seq: 0,
            source: "in.log".into(),
            first_line: 1,
            data: text.as_bytes().to_vec(),
            ..Chunk::default()
        };
        let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
        enricher.enrich_chunk(&chunk, &mut out, &mut dead, &mut counts);
        let parse = |b: &[u8]| -> Vec<serde_json::Value> {
            String::from_utf8(b.to_vec())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        (parse(&out), parse(&dead), counts)
    }

    #[test]
    fn joins_each_data_set_at_the_line_time_and_dead_letters_the_rest() {
        let geo = dataset(
            "geo",
            r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#,
        );
        let asn = dataset(
            "asn",
            r#"{"begin":"1.2.0.0","end":"1.2.255.255","datetime":"2024-06-01T00:00:00Z","asn":7}"#,
        );
        let e = Enricher::new(
            LineParser::new(ParserConfig::default()).unwrap(),
            vec![geo, asn],
            EnrichOptions::default(),
        );
        let text = concat!(
            "1.2.3.4 - - [01/Mar/2024:10:00:00 +0100] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"\n",
            "1.2.3.4 - - [01/Jul/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"\n",
            "garbage\n",
            "\n",
            "{\"ip\":\"9.9.9.9\",\"time\":\"2024-07-01\"}\n",
        );
        let (out, dead, counts) = run(&e, text);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["timestamp"], "2024-03-01T09:00:00Z");
        assert_eq!(out[0]["geo"]["cc"], "AU");
        assert_eq!(out[0]["asn"], serde_json::Value::Null);
        assert_eq!(out[1]["asn"]["asn"], 7);
        assert_eq!(out[1]["line"], text.lines().nth(1).unwrap());
        assert_eq!(out[1]["status"], 200);
        assert_eq!(out[2]["fields"]["ip"], "9.9.9.9");
        assert_eq!(dead.len(), 2);
        assert_eq!(dead[0]["source"], "in.log:3");
        assert_eq!(dead[1]["reason"], "empty line");
        assert_eq!(
            counts,
            Counts {
                read: 5,
                enriched: 3,
                dead_lettered: 2,
                matched: vec![2, 1],
                // asn's first snapshot is 2024-06-01: the March line is older.
                before_first: vec![0, 1],
                ..Counts::default()
            }
        );
    }

    #[test]
    fn lines_without_time_use_at_and_junk_is_explained() {
        let geo = dataset(
            "whip",
            r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#,
        );
        let e = Enricher::new(
            LineParser::new(ParserConfig::default()).unwrap(),
            vec![geo],
            EnrichOptions {
                include_line: false,
                missing_time: MissingTime::At(Timestamp::parse("2024-02-01").unwrap()),
                max_line_bytes: 100,
                ..EnrichOptions::default()
            },
        );
        let mut text = b"{\"ip\":\"1.2.3.9\"}\n\xff\xfe binary\n".to_vec();
        text.extend_from_slice(&[b'x'; 150]);
        text.push(b'\n');
        let chunk = Chunk {
            data: text,
            source: "s".into(),
            first_line: 1,
            ..Chunk::default()
        };
        let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
        e.enrich_chunk(&chunk, &mut out, &mut dead, &mut counts);
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["timestamp"], "2024-02-01T00:00:00Z");
        assert_eq!(out["time_source"], "at");
        assert_eq!(out["whip"]["cc"], "AU");
        assert!(out.get("line").is_none());
        let dead = String::from_utf8(dead).unwrap();
        assert!(dead.contains("invalid UTF-8 at byte 0"), "{dead}");
        assert!(dead.contains("line longer than 100 bytes"), "{dead}");
        assert_eq!(counts.dead_lettered, 2);
    }

    const AU_2024: &str =
        r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#;

    fn enricher(options: EnrichOptions) -> Enricher {
        Enricher::new(
            LineParser::new(ParserConfig::default()).unwrap(),
            vec![dataset("geo", AU_2024)],
            options,
        )
    }

    fn chunk(text: &str, read_at: Option<Timestamp>) -> Chunk {
        Chunk {
            source: "in.log".into(),
            first_line: 1,
            data: text.as_bytes().to_vec(),
            read_at,
            ..Chunk::default()
        }
    }

    fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
        std::str::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_line_without_time_is_a_dead_letter_from_a_file_and_marked_when_live() {
        let no_time = "{\"ip\":\"1.2.3.4\",\"path\":\"/\"}\n";
        let now = Timestamp::parse("2024-05-01").unwrap();
        let cases = [
            // (policy, read_at, dead-lettered, time_source)
            (MissingTime::ByInput, None, true, None),
            (MissingTime::ByInput, Some(now), false, Some("read")),
            (MissingTime::Read, None, false, Some("read")),
            (MissingTime::DeadLetter, Some(now), true, None),
            (MissingTime::At(now), None, false, Some("at")),
        ];
        for (policy, read_at, dead_lettered, source) in cases {
            let e = enricher(EnrichOptions {
                missing_time: policy,
                ..EnrichOptions::default()
            });
            let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
            e.enrich_chunk(&chunk(no_time, read_at), &mut out, &mut dead, &mut counts);
            let case = format!("{policy:?} {read_at:?}");
            assert_eq!(counts.read, 1, "{case}");
            if dead_lettered {
                assert_eq!(lines(&dead)[0]["reason"], NO_EVENT_TIME, "{case}");
                assert_eq!((counts.no_time, counts.dead_lettered), (1, 1), "{case}");
                assert!(out.is_empty(), "{case}");
            } else {
                let o = &lines(&out)[0];
                assert_eq!(o["time_source"].as_str(), source, "{case}");
                assert_eq!(o["geo"]["cc"], "AU", "{case}");
                assert_eq!((counts.time_substituted, counts.enriched), (1, 1), "{case}");
            }
        }
        // A line with its own time is never marked.
        let e = enricher(EnrichOptions::default());
        let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
        let own = "{\"ip\":\"1.2.3.4\",\"time\":\"2024-03-01\"}\n";
        e.enrich_chunk(&chunk(own, Some(now)), &mut out, &mut dead, &mut counts);
        assert!(lines(&out)[0].get("time_source").is_none());
        assert_eq!(counts.time_substituted, 0);
    }

    #[test]
    fn times_before_the_first_snapshot_are_counted_apart_or_answered_from_it() {
        let text = concat!(
            "{\"ip\":\"1.2.3.4\",\"time\":\"2023-06-01\"}\n",
            "{\"ip\":\"1.2.3.4\",\"time\":\"2024-06-01\"}\n",
            "{\"ip\":\"9.9.9.9\",\"time\":\"2024-06-01\"}\n",
        );
        let run = |before_first| {
            let e = enricher(EnrichOptions {
                before_first,
                ..EnrichOptions::default()
            });
            let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
            e.enrich_chunk(&chunk(text, None), &mut out, &mut dead, &mut counts);
            (lines(&out), counts, e)
        };
        let (out, counts, e) = run(BeforeFirst::NoMatch);
        assert_eq!(out[0]["geo"], serde_json::Value::Null);
        assert_eq!((counts.matched[0], counts.before_first[0]), (1, 1));
        assert_eq!(
            e.describe_matches(&counts),
            "geo: 1 matched, 2 unmatched (1 before the first snapshot (2024-01-01T00:00:00Z), \
             1 no range contains the address)"
        );
        let warnings = e.warnings(&counts);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("--before-first earliest"),
            "{warnings:?}"
        );

        let (out, counts, e) = run(BeforeFirst::Earliest);
        assert_eq!(out[0]["geo"]["cc"], "AU");
        assert_eq!(out[0]["timestamp"], "2023-06-01T00:00:00Z");
        assert_eq!(out[2]["geo"], serde_json::Value::Null);
        assert_eq!((counts.matched[0], counts.before_first[0]), (2, 1));
        assert!(e.warnings(&counts).is_empty());
    }

    #[test]
    fn a_truncated_last_line_is_a_dead_letter() {
        let e = enricher(EnrichOptions::default());
        let mut c = chunk(
            "1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5\n1.2.3.4 - - [01/Ma\n",
            None,
        );
        c.truncated = true;
        let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
        e.enrich_chunk(&c, &mut out, &mut dead, &mut counts);
        let dead = lines(&dead);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0]["reason"], TRUNCATED_INPUT);
        assert_eq!(dead[0]["source"], "in.log:2");
        assert_eq!(
            (counts.read, counts.enriched, counts.dead_lettered),
            (2, 1, 1)
        );
    }

    #[test]
    fn dataset_names() {
        assert!(valid_dataset_name("geo_v2-x"));
        assert!(!valid_dataset_name(""));
        assert!(!valid_dataset_name("a\"b"));
        assert!(check_dataset_name("geo").is_ok());
        assert!(check_dataset_name("status")
            .unwrap_err()
            .contains("output field name"));
        assert_eq!(
            parse_dataset_spec("geo=/s").unwrap(),
            ("geo".to_string(), "/s".into())
        );
        assert_eq!(
            parse_dataset_spec("/a=b").unwrap(),
            ("whip".to_string(), "/a=b".into())
        );
        assert!(parse_dataset_spec("time_source=/s").is_err());
        assert!(parse_dataset_spec("geo=").is_err());
    }
}
