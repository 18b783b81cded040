//! What happened to the lines of a run: read, enriched, dead-lettered, matched
//! per data set; every line read is counted as written or dead-lettered.

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
    /// [`super::BeforeFirst::Earliest`]).
    pub before_first: Vec<u64>,
    /// Enriched lines without an event time of their own (written at the read
    /// time, `--at` or the Kafka message time, and marked `"time_source"`).
    pub time_substituted: u64,
    /// Dead-lettered lines without an event time (part of `dead_lettered`).
    pub no_time: u64,
}

impl Counts {
    /// These counts as the metrics take them.
    pub fn line_counts(&self) -> crate::telemetry::LineCounts<'_> {
        crate::telemetry::LineCounts {
            read: self.read,
            enriched: self.enriched,
            dead_lettered: self.dead_lettered,
            headers: self.headers,
            matched: &self.matched,
            before_first: &self.before_first,
            time_substituted: self.time_substituted,
            no_time: self.no_time,
        }
    }

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
