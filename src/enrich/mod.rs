//! The join: a log line and the data sets' indexes make one enriched JSON object.
//!
//! For each line: check it (length, UTF-8), parse it ([`LineParser`]), take its
//! event time, look the client up in every data set at that instant, and write
//! `{"ip":..,"timestamp":..,<parsed fields>,"line":..,"<data set>":<record>|null}`
//! or the line in another schema ([`crate::schema`]: ECS, chosen fields).
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

mod counts;
mod policy;

pub use counts::Counts;
pub use policy::{AtAndMissingTime, BeforeFirst, EnrichOptions, MissingTime, TimeOrigin};

use std::sync::Arc;

use crate::index::{Index, Match, SharedIndex};
use crate::ip::IpKey;
use crate::json::{write_key, write_str};
use crate::logline::{FileState, LineParser, LogLine, ParseError, Parsed};
use crate::output_fields::{self as names, FieldSpec};
use crate::schema::render::{Renderer, Tables};
use crate::schema::{ecs, Schema, Selection};
use crate::source::Chunk;
use crate::time::Timestamp;

/// A named data set (`--db geo=DIR`); the name is the output key.
#[derive(Clone)]
pub struct DataSet {
    pub name: String,
    pub index: SharedIndex,
}

/// The dead-letter reason of a line without an event time under the policy.
pub const NO_EVENT_TIME: &str = "no event time";
/// The dead-letter reason of a partial last line cut off by a read error.
pub const TRUNCATED_INPUT: &str = "truncated input";

/// Parser, data sets and options: everything the join needs.
pub struct Enricher {
    parser: LineParser,
    datasets: Vec<DataSet>,
    options: EnrichOptions,
    /// Per-payload output bytes for a schema other than whole records.
    renderer: Option<Renderer>,
    /// Each data set's chosen fields, in data set order.
    selections: Vec<Option<Selection>>,
    /// The data set names, in data set order.
    names: Vec<String>,
    started: Timestamp,
    /// Lookup latency (a no-op unless the daemon installed the exporter first).
    lookup_seconds: metrics::Histogram,
}

/// Why a line is dead-lettered (its text is the dead letter's `reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("invalid UTF-8 at byte {0}")]
    InvalidUtf8(usize),
    #[error("empty line")]
    Empty,
    /// A directive (`#Fields:`...) where one line was expected (Kafka).
    #[error("directive line")]
    Directive,
    #[error("{}", NO_EVENT_TIME)]
    NoEventTime,
    #[error("{}", TRUNCATED_INPUT)]
    Truncated,
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Writes a dead letter: the line's position, why, and the line.
fn dead_letter(source: &str, line_no: u64, reason: &Refused, line: &[u8], dead: &mut Vec<u8>) {
    write_dead_letter(
        &format!("{source}:{line_no}"),
        &reason.to_string(),
        line,
        dead,
    );
}

/// Writes the one dead-letter shape, `{"source":..,"reason":..,"line":..}`,
/// for every writer of dead letters (the join, a typed output's misfits).
pub fn write_dead_letter(source: &str, reason: &str, line: &[u8], dead: &mut Vec<u8>) {
    dead.extend_from_slice(b"{\"source\":");
    write_str(dead, source);
    dead.extend_from_slice(b",\"reason\":");
    write_str(dead, reason);
    dead.extend_from_slice(b",\"line\":");
    write_str(dead, &String::from_utf8_lossy(line));
    dead.extend_from_slice(b"}\n");
}

impl Enricher {
    pub fn new(parser: LineParser, datasets: Vec<DataSet>, options: EnrichOptions) -> Enricher {
        let outputs = options
            .output
            .for_datasets(datasets.iter().map(|d| d.name.as_str()));
        let selections = outputs.iter().map(|o| o.fields.clone()).collect();
        let outputs_names = outputs.iter().map(|o| o.name.clone()).collect();
        let renderer =
            (!options.output.is_plain()).then(|| Renderer::new(options.output.schema, outputs));
        Enricher {
            parser,
            datasets,
            options,
            renderer,
            selections,
            names: outputs_names,
            started: Timestamp::now(),
            lookup_seconds: crate::telemetry::enrich_lookup_histogram(),
        }
    }

    pub fn datasets(&self) -> &[DataSet] {
        &self.datasets
    }

    /// The top-level key of an output line's event time (Parquet partitions
    /// by it).
    pub fn time_field(&self) -> &'static str {
        self.options.output.schema.time_field()
    }

    /// Every field this flow's lines can contain, with its type, in the
    /// output schema (see [`crate::schema::field_specs`]); reads the data
    /// sets' current indexes.
    pub fn field_specs(&self) -> Vec<FieldSpec> {
        let indexes: Vec<(&str, Arc<Index>)> = self
            .datasets
            .iter()
            .map(|d| (d.name.as_str(), d.index.load_full()))
            .collect();
        crate::schema::field_specs(
            &self.options.output,
            self.parser.config(),
            self.options.include_line,
            &indexes,
        )
    }

    /// The prepared per-payload bytes for the current indexes, when the
    /// schema needs them (built once per index swap, not per line).
    fn tables(&self, indexes: &[Arc<Index>]) -> Option<Arc<Tables>> {
        Some(self.renderer.as_ref()?.tables(indexes))
    }

    /// The data set names, in output order.
    pub fn dataset_names(&self) -> impl Iterator<Item = &str> {
        self.datasets.iter().map(|d| d.name.as_str())
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
        // The tables are those of exactly these indexes (payload ids are an
        // index's own), whatever a load swaps in meanwhile.
        let guards: Vec<Arc<Index>> = self.datasets.iter().map(|d| d.index.load_full()).collect();
        let tables = self.tables(&guards);
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
                Err(Refused::Truncated)
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
                        Refused::NoEventTime
                    }
                },
                Err(reason) => reason,
            };
            counts.dead_lettered += 1;
            dead_letter(&chunk.source, line_no, &reason, line, dead);
        }
        counts.enriched += parsed.len() as u64;
        // One reservation for the chunk's output instead of growth per line.
        out.reserve(chunk.data.len() + chunk.data.len() / 2 + parsed.len() * 64);
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
                &|d: usize| answers[d][i],
                tables.as_deref(),
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
    ) -> Result<(), Refused> {
        counts.read += 1;
        counts.matched.resize(self.datasets.len(), 0);
        counts.before_first.resize(self.datasets.len(), 0);
        let parsed = self
            .check_and_parse(line, None)
            .and_then(|p| p.ok_or(Refused::Directive))
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
                            return Err(Refused::NoEventTime);
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
        // The tables are those of exactly these indexes (payload ids are an
        // index's own), whatever a load swaps in meanwhile.
        let guards: Vec<Arc<Index>> = self.datasets.iter().map(|d| d.index.load_full()).collect();
        let tables = self.tables(&guards);
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
            &|d: usize| answers[d],
            tables.as_deref(),
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
    ) -> Result<Option<(LogLine<'a>, &'a str)>, Refused> {
        if line.len() > self.options.max_line_bytes {
            return Err(Refused::TooLong(self.options.max_line_bytes));
        }
        let text = std::str::from_utf8(line).map_err(|e| Refused::InvalidUtf8(e.valid_up_to()))?;
        if text.trim().is_empty() {
            return Err(Refused::Empty);
        }
        let parsed = match file {
            Some(file) => match self.parser.parse_in(text, file) {
                Ok(Parsed::Entry(p)) => p,
                Ok(Parsed::Directive) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
            None => self.parser.parse(text)?,
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
        answer: &dyn Fn(usize) -> Option<Match<'m>>,
        tables: Option<&Tables>,
        out: &mut Vec<u8>,
        matched: &mut [u64],
    ) {
        if let Some(tables) = tables {
            if self.options.output.schema == Schema::Ecs {
                for (d, m) in matched.iter_mut().enumerate() {
                    if answer(d).is_some() {
                        *m += 1;
                    }
                }
                let sets = ecs::DataSets {
                    names: &self.names,
                    tables,
                    selections: &self.selections,
                };
                let line = ecs::Line {
                    parsed,
                    t,
                    time_source: origin.map(TimeOrigin::name),
                    original: self.options.include_line.then_some(text),
                };
                ecs::write_line(&line, &sets, answer, out);
                return;
            }
        }
        out.push(b'{');
        write_key(out, names::IP);
        write_str(out, &parsed.ip_text);
        out.push(b',');
        write_key(out, names::TIMESTAMP);
        out.push(b'"');
        t.write_rfc3339(out);
        out.push(b'"');
        if let Some(origin) = origin {
            out.push(b',');
            write_key(out, names::TIME_SOURCE);
            out.push(b'"');
            out.extend_from_slice(origin.name().as_bytes());
            out.push(b'"');
        }
        parsed.fields.write_json(out);
        if self.options.include_line {
            out.push(b',');
            write_key(out, names::LINE);
            write_str(out, text);
        }
        for (i, ds) in self.datasets.iter().enumerate() {
            let answer = answer(i);
            out.push(b',');
            write_key(out, &ds.name);
            let chosen = tables.and_then(|t| Some((t.sets.get(i)?, self.selections[i].as_ref()?)));
            match (answer, chosen) {
                (Some(m), Some((table, selection))) => {
                    matched[i] += 1;
                    crate::schema::write_record(&m, table, Some(selection), false, out);
                }
                (Some(m), None) => {
                    matched[i] += 1;
                    m.write_json(out);
                }
                (None, _) => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests;
