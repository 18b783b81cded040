//! The enrichment's policies: what a line without an event time is enriched at,
//! what a time before a data set's first snapshot is answered with, and where a
//! substitute time came from (written as `"time_source"`).

use crate::time::Timestamp;
use crate::value::UnknownValue;

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

impl std::str::FromStr for MissingTime {
    type Err = UnknownValue;
    /// The `--missing-time` / `input.missing_time` values (`--at` is separate).
    fn from_str(s: &str) -> Result<MissingTime, UnknownValue> {
        crate::value::pick(
            "missing-time policy",
            s,
            &[
                ("by-input", MissingTime::ByInput),
                ("read", MissingTime::Read),
                ("dead-letter", MissingTime::DeadLetter),
            ],
        )
    }
}

/// `--at` and `--missing-time` given together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("give either an event time for lines without one (at) or a missing-time policy, not both")]
pub struct AtAndMissingTime;

impl MissingTime {
    /// Combines `--at` and `--missing-time` (one setting, two spellings): both
    /// at once is an error.
    pub fn from_settings(
        at: Option<Timestamp>,
        missing: Option<MissingTime>,
    ) -> Result<MissingTime, AtAndMissingTime> {
        match (at, missing) {
            (Some(_), Some(_)) => Err(AtAndMissingTime),
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

impl std::str::FromStr for BeforeFirst {
    type Err = UnknownValue;
    /// The `--before-first` / `input.before_first` values.
    fn from_str(s: &str) -> Result<BeforeFirst, UnknownValue> {
        crate::value::pick(
            "before-first policy",
            s,
            &[
                ("none", BeforeFirst::NoMatch),
                ("earliest", BeforeFirst::Earliest),
            ],
        )
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
    /// The schema and chosen fields of the output.
    pub output: crate::schema::OutputSchema,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        EnrichOptions {
            include_line: true,
            missing_time: MissingTime::ByInput,
            before_first: BeforeFirst::NoMatch,
            max_line_bytes: 64 * 1024,
            output: crate::schema::OutputSchema::default(),
        }
    }
}
