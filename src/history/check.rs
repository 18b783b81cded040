//! [`History::check`]: every invariant of the history, verified on what a store
//! gives (`verify`) and on every merge in the tests.

use super::merge::value_at;
use super::{Change, History, LineId, NO_LINE};
use crate::ip::IpKey;

impl History {
    /// Checks every invariant of the module documentation; returns the problems
    /// found (at most `limit` of them).
    pub fn check(&self, limit: usize) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |p: String| {
            if problems.len() < limit {
                problems.push(p);
            }
        };
        let n = self.snapshots.len();
        for w in self.snapshots.windows(2) {
            if w[0].meta.instant() >= w[1].meta.instant() {
                problem(format!(
                    "snapshots not strictly sorted: {} then {}",
                    w[0].meta.datetime, w[1].meta.datetime
                ));
            }
        }
        if self.starts.first() != Some(&IpKey::MIN) {
            problem("first piece does not start at 0".into());
        }
        if self.offsets.len() != self.starts.len() + 1 {
            problem("piece offsets do not match pieces".into());
            return problems;
        }
        for w in self.starts.windows(2) {
            if w[0] >= w[1] {
                problem(format!("pieces not sorted at {}", w[1]));
            }
        }
        // Per snapshot: the line currently open (covering consecutive pieces) and
        // the number of lines seen.
        let mut open: Vec<LineId> = vec![NO_LINE; n];
        let mut counted: Vec<u64> = vec![0; n];
        let mut previous: Option<&[Change]> = None;
        for i in 0..self.starts.len() {
            let (lo, hi) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
            if lo > hi || hi > self.changes.len() {
                problem(format!("piece {} has bad change offsets", self.starts[i]));
                return problems;
            }
            let ch = &self.changes[lo..hi];
            let start = self.starts[i];
            let last = self
                .starts
                .get(i + 1)
                .map(|s| IpKey(s.0 - 1))
                .unwrap_or(IpKey::MAX);
            if previous == Some(ch) {
                problem(format!("pieces at {start} and before have equal changes"));
            }
            previous = Some(ch);
            if ch.first().is_some_and(|c| c.line == NO_LINE) {
                problem(format!("piece {start} begins with a no-match change"));
            }
            for w in ch.windows(2) {
                if w[0].pos >= w[1].pos || w[0].line == w[1].line {
                    problem(format!("piece {start} has unnormalised changes"));
                }
            }
            for c in ch {
                if usize::from(c.pos) >= n {
                    problem(format!(
                        "piece {start} refers to snapshot position {}",
                        c.pos
                    ));
                }
                if c.line != NO_LINE && self.line(c.line).is_none() {
                    problem(format!("piece {start} refers to missing line {}", c.line));
                }
            }
            for (k, open_line) in open.iter_mut().enumerate() {
                let v = value_at(ch, k);
                if v != *open_line && *open_line != NO_LINE {
                    problem(format!(
                        "line {} ends inside snapshot {} before piece {start}",
                        open_line, self.snapshots[k].meta.datetime
                    ));
                }
                if v == NO_LINE {
                    *open_line = NO_LINE;
                    continue;
                }
                let Some(line) = self.line(v) else { continue };
                if line.begin > start || line.end < last {
                    problem(format!("line {v} does not contain piece {start}-{last}"));
                }
                if line.begin == start {
                    counted[k] += 1;
                }
                *open_line = if line.end == last { NO_LINE } else { v };
            }
        }
        for (k, s) in self.snapshots.iter().enumerate() {
            if counted[k] != s.meta.ranges {
                problem(format!(
                    "snapshot {} should have {} ranges, the pieces give {}",
                    s.meta.datetime, s.meta.ranges, counted[k]
                ));
            }
        }
        let mut line_used = vec![false; self.lines.len()];
        for c in &self.changes {
            if let Some(u) = line_used.get_mut(c.line as usize) {
                *u = true;
            }
        }
        let mut payload_used = vec![false; self.payloads.len()];
        for (id, line) in self.lines.iter().enumerate() {
            let Some(line) = line else { continue };
            if !line_used[id] {
                problem(format!("line {id} is not used by any snapshot"));
            }
            if line.begin > line.end || line.begin.family() != line.end.family() {
                problem(format!("line {id} has a bad range"));
            }
            match payload_used.get_mut(line.payload as usize) {
                Some(u) if self.payloads[line.payload as usize].is_some() => *u = true,
                _ => problem(format!(
                    "line {id} refers to missing payload {}",
                    line.payload
                )),
            }
        }
        for (id, p) in self.payloads.iter().enumerate() {
            let Some(p) = p else { continue };
            if !payload_used[id] {
                problem(format!("payload {id} is not used by any line"));
            }
            let mut obj = Vec::with_capacity(p.len() + 2);
            obj.push(b'{');
            obj.extend_from_slice(p);
            obj.push(b'}');
            if serde_json::from_slice::<serde::de::IgnoredAny>(&obj).is_err() {
                problem(format!("payload {id} is not a JSON object body"));
            }
        }
        problems
    }
}
