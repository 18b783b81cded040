//! The join: a log line and the data sets' indexes make one enriched JSON object.
//!
//! For each line: check it (length, UTF-8), parse it ([`LineParser`]), take its
//! event time (its own, else `--at`, else the time it was read), look the client up
//! in every data set at that instant, and write
//! `{"ip":..,"timestamp":..,<parsed fields>,"line":..,"<data set>":<record>|null}`.
//! A line that cannot be enriched becomes a dead letter with its `source:line` and
//! the reason; no line is ever dropped: every line read is either written or
//! dead-lettered, and [`Counts`] says which.

use crate::index::{Match, SharedIndex};
use crate::ip::IpKey;
use crate::json::{write_key, write_str};
use crate::logline::{FileState, LineParser, LogLine, Parsed};
use crate::source::Chunk;
use crate::time::Instant;

/// A named data set (`--db geo=DIR`); the name is the output key.
#[derive(Clone)]
pub struct DataSet {
    pub name: String,
    pub index: SharedIndex,
}

/// The event time of lines that carry none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultTime {
    /// The time the line was read (live use; for files: the start of the run).
    ReadTime,
    /// A fixed instant (`--at`, for backfilling logs without times).
    At(Instant),
}

/// Output settings.
#[derive(Clone, Debug)]
pub struct EnrichOptions {
    /// Include the original line under `"line"`.
    pub include_line: bool,
    pub default_time: DefaultTime,
    /// Lines longer than this are dead-lettered.
    pub max_line_bytes: usize,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        EnrichOptions {
            include_line: true,
            default_time: DefaultTime::ReadTime,
            max_line_bytes: 64 * 1024,
        }
    }
}

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
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.enriched += other.enriched;
        self.dead_lettered += other.dead_lettered;
        self.headers += other.headers;
        if self.matched.len() < other.matched.len() {
            self.matched.resize(other.matched.len(), 0);
        }
        for (a, b) in self.matched.iter_mut().zip(&other.matched) {
            *a += b;
        }
    }
}

/// Parser, data sets and options: everything the join needs.
pub struct Enricher {
    parser: LineParser,
    datasets: Vec<DataSet>,
    options: EnrichOptions,
    started: Instant,
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
            started: Instant::now(),
            lookup_seconds: crate::telemetry::enrich_lookup_histogram(),
        }
    }

    pub fn datasets(&self) -> &[DataSet] {
        &self.datasets
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
        let read_at = chunk.read_at.unwrap_or(self.started);
        let mut parsed: Vec<(LogLine<'_>, Instant, &str)> = Vec::with_capacity(4096);
        let mut file = FileState::after(chunk.header.as_deref());
        for (line_no, line) in chunk.lines() {
            counts.read += 1;
            match self.check_and_parse(line, Some(&mut file)) {
                Ok(None) => counts.headers += 1,
                Ok(Some((p, text))) => {
                    let t = p.time.unwrap_or(match self.options.default_time {
                        DefaultTime::At(t) => t,
                        DefaultTime::ReadTime => read_at,
                    });
                    parsed.push((p, t, text));
                }
                Err(reason) => {
                    counts.dead_lettered += 1;
                    dead_letter(&chunk.source, line_no, &reason, line, dead);
                }
            }
        }
        counts.enriched += parsed.len() as u64;
        let queries: Vec<(IpKey, Instant)> = parsed.iter().map(|(p, t, _)| (p.ip, *t)).collect();
        let lookups_started = std::time::Instant::now();
        let answers: Vec<Vec<Option<Match<'_>>>> = guards
            .iter()
            .map(|index| {
                let mut a = Vec::with_capacity(queries.len());
                index.at_many(&queries, &mut a);
                a
            })
            .collect();
        // One sample per chunk: a batched lookup has no per-line time of its own.
        let lookups = queries.len() * guards.len();
        if lookups > 0 {
            self.lookup_seconds
                .record(lookups_started.elapsed().as_secs_f64() / lookups as f64);
        }
        for (i, (p, t, text)) in parsed.iter().enumerate() {
            self.write_object(
                p,
                *t,
                text,
                answers.iter().map(|a| a[i]),
                out,
                &mut counts.matched,
            );
        }
    }

    /// Enriches one line (a Kafka message): appends its JSON object, without a
    /// newline, to `out`, or returns the dead-letter reason. `fallback` (the
    /// message timestamp) is the event time of a line without one when `--at` is
    /// not given, or of every line with `always_fallback`. Returns, per data set,
    /// whether it matched.
    pub fn enrich_one(
        &self,
        line: &[u8],
        fallback: Instant,
        always_fallback: bool,
        out: &mut Vec<u8>,
    ) -> Result<Vec<bool>, String> {
        let (parsed, text) = self.check_and_parse(line, None)?.ok_or("directive line")?;
        let own = if always_fallback { None } else { parsed.time };
        let t = own.unwrap_or(match self.options.default_time {
            DefaultTime::At(t) if !always_fallback => t,
            _ => fallback,
        });
        let guards: Vec<_> = self.datasets.iter().map(|d| d.index.load()).collect();
        let lookups_started = std::time::Instant::now();
        let answers: Vec<Option<Match<'_>>> = guards.iter().map(|g| g.at(parsed.ip, t)).collect();
        if !guards.is_empty() {
            self.lookup_seconds
                .record(lookups_started.elapsed().as_secs_f64() / guards.len() as f64);
        }
        let mut matched = vec![0u64; self.datasets.len()];
        self.write_object(&parsed, t, text, answers.into_iter(), out, &mut matched);
        out.pop(); // the newline
        Ok(matched.into_iter().map(|m| m > 0).collect())
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

    fn write_object<'m>(
        &self,
        parsed: &LogLine<'_>,
        t: Instant,
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
            read_at: None,
            header: None,
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
                headers: 0,
                matched: vec![2, 1]
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
                default_time: DefaultTime::At(Instant::parse("2024-02-01").unwrap()),
                max_line_bytes: 100,
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
        assert_eq!(out["whip"]["cc"], "AU");
        assert!(out.get("line").is_none());
        let dead = String::from_utf8(dead).unwrap();
        assert!(dead.contains("invalid UTF-8 at byte 0"), "{dead}");
        assert!(dead.contains("line longer than 100 bytes"), "{dead}");
        assert_eq!(counts.dead_lettered, 2);
    }

    #[test]
    fn dataset_names() {
        assert!(valid_dataset_name("geo_v2-x"));
        assert!(!valid_dataset_name(""));
        assert!(!valid_dataset_name("a\"b"));
    }
}
