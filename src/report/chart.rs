//! The timeline as SVG, drawn under the map in `report.svg`: requests per time
//! bucket as bars and distinct clients as points on the same scale, then small
//! multiples of requests per top country on a shared scale.
//!
//! Every bar and point carries `class="timeline"` and `data-i` (the bucket's
//! index); the main chart's bars also `data-start` (the bucket's start, RFC
//! 3339), which the HTML's time-window script reads.

use std::fmt::Write as _;

use super::render::escape;
use super::timeline::Step;
use crate::time::Timestamp;

/// What the chart shows.
pub struct Chart<'a> {
    /// Bucket starts (microseconds), contiguous.
    pub buckets: &'a [i64],
    pub step: Step,
    /// Requests and distinct clients per bucket.
    pub totals: &'a [(u64, u64)],
    /// Requests per bucket of the top countries (label, series).
    pub multiples: &'a [(String, Vec<u64>)],
}

const LEFT: f64 = 70.0;
const RIGHT: f64 = 980.0;
const MAIN_HEIGHT: f64 = 170.0;
const CELL_WIDTH: f64 = 300.0;
const CELL_HEIGHT: f64 = 70.0;
const COLUMNS: usize = 3;

/// A bucket's start as text, as precise as its step.
pub fn bucket_text(start: i64, step: Step) -> String {
    let t = Timestamp::from_micros(start).to_rfc3339();
    match step {
        Step::Hour => t.get(..16).map_or(t.clone(), |s| s.replace('T', " ")),
        Step::Day | Step::Week => t.get(..10).unwrap_or(&t).to_string(),
    }
}

fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Draws the chart from `y0` down; returns the height used.
pub fn draw(out: &mut String, y0: f64, c: &Chart) -> f64 {
    let n = c.buckets.len();
    let _ = write!(
        out,
        r##"<g font-size="12" fill="#222"><text x="{LEFT}" y="{:.1}" font-size="14">Requests (bars) and distinct clients (points) per {}</text>"##,
        y0 + 20.0,
        c.step.name()
    );
    if n == 0 {
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{:.1}">no line has a readable timestamp</text></g>"#,
            y0 + 45.0
        );
        return 60.0;
    }
    let top = y0 + 30.0;
    let base = top + MAIN_HEIGHT;
    let width = (RIGHT - LEFT) / n as f64;
    let max = c.totals.iter().map(|t| t.0).max().unwrap_or(0).max(1) as f64;
    let y = |v: u64| base - MAIN_HEIGHT * v as f64 / max;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{base:.1}" x2="{RIGHT}" y2="{base:.1}" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{base:.1}" text-anchor="end">0</text>"##,
        LEFT - 6.0,
        top + 10.0,
        number(max as u64),
        LEFT - 6.0,
    );
    for (i, (&start, &(requests, clients))) in c.buckets.iter().zip(c.totals).enumerate() {
        let x = LEFT + i as f64 * width;
        let _ = write!(
            out,
            r##"<rect class="timeline" data-i="{i}" data-start="{}" x="{x:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="#3b6ea5"><title>{}: {} requests, ~{} clients</title></rect>"##,
            Timestamp::from_micros(start).to_rfc3339(),
            y(requests),
            (width * 0.85).max(0.5),
            base - y(requests),
            bucket_text(start, c.step),
            number(requests),
            number(clients)
        );
    }
    for (i, &(_, clients)) in c.totals.iter().enumerate() {
        let x = LEFT + (i as f64 + 0.425) * width;
        let _ = write!(
            out,
            r##"<circle class="timeline" data-i="{i}" cx="{x:.2}" cy="{:.2}" r="2" fill="#d9480f"/>"##,
            y(clients)
        );
    }
    // Dates under the first, middle and last buckets.
    let mut ticks = vec![0, n / 2, n - 1];
    ticks.dedup();
    for i in ticks {
        let anchor = if i == 0 {
            "start"
        } else if i == n - 1 {
            "end"
        } else {
            "middle"
        };
        let x = LEFT + (i as f64 + if i == n - 1 { 1.0 } else { 0.0 }) * width;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            base + 15.0,
            bucket_text(c.buckets[i], c.step)
        );
    }
    let mut height = base + 25.0 - y0;
    if !c.multiples.is_empty() {
        height += multiples(out, y0 + height, c);
    }
    out.push_str("</g>");
    height
}

/// Small multiples: one cell per country, all on the scale of the busiest.
fn multiples(out: &mut String, y0: f64, c: &Chart) -> f64 {
    let n = c.buckets.len();
    let max = c
        .multiples
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" font-size="14">Requests per {} in the top countries (same scale)</text>"#,
        y0 + 20.0,
        c.step.name()
    );
    let top = y0 + 30.0;
    let width = (CELL_WIDTH - 10.0) / n as f64;
    for (k, (label, series)) in c.multiples.iter().enumerate() {
        let cx = LEFT + (k % COLUMNS) as f64 * (CELL_WIDTH + 5.0);
        let cy = top + (k / COLUMNS) as f64 * (CELL_HEIGHT + 30.0);
        let base = cy + 18.0 + CELL_HEIGHT;
        let total: u64 = series.iter().sum();
        let _ = write!(
            out,
            r##"<text x="{cx:.1}" y="{:.1}">{} ({} requests)</text><line x1="{cx:.1}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="#888"/>"##,
            cy + 12.0,
            escape(label),
            number(total),
            cx + CELL_WIDTH - 10.0
        );
        for (i, &v) in series.iter().enumerate().filter(|(_, &v)| v > 0) {
            let h = CELL_HEIGHT * v as f64 / max;
            let _ = write!(
                out,
                r##"<rect class="timeline" data-i="{i}" data-country="{}" x="{:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" fill="#6c8ebf"><title>{}, {}: {} requests</title></rect>"##,
                escape(label),
                cx + i as f64 * width,
                base - h,
                (width * 0.85).max(0.5),
                escape(label),
                bucket_text(c.buckets[i], c.step),
                number(v)
            );
        }
    }
    let rows = c.multiples.len().div_ceil(COLUMNS);
    30.0 + rows as f64 * (CELL_HEIGHT + 30.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_read_well() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1_234_567), "1,234,567");
        // 2024-03-06 13:00 UTC.
        assert_eq!(
            bucket_text(1_709_730_000_000_000, Step::Hour),
            "2024-03-06 13:00"
        );
        assert_eq!(bucket_text(1_709_730_000_000_000, Step::Week), "2024-03-06");
    }
}
