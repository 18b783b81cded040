//! The report's files: `report.svg` (the map: country outlines, one
//! `class="marker"` circle per location; under it the timeline, see
//! [`super::chart`]), `report.html` (self-contained: the same SVG inline, a
//! time-window filter for the map in a small inline script, and the tables; no
//! network access needed) and `report.json` (the summary).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::json;

use super::aggregate::{Aggregate, Location, SetTally, Tally};
use super::chart::{self, bucket_text, Chart};
use super::clients::{LatestDiffers, Moved};
use super::cluster::Method;
use super::timeline::Step;
use super::world::Country;
use crate::time::Timestamp;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 500.0;

/// Equirectangular projection.
fn xy(lon: f64, lat: f64) -> (f64, f64) {
    ((lon + 180.0) / 360.0 * WIDTH, (90.0 - lat) / 180.0 * HEIGHT)
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A cluster as reported.
pub struct ClusterOut<'a> {
    pub members: Vec<&'a Location>,
}

/// What the renderer needs, sorted and cut.
pub struct Summary<'a> {
    pub agg: &'a Aggregate,
    /// The data set the map is drawn from, and the networks table.
    pub location_set: Option<&'a SetTally>,
    pub network_set: Option<&'a SetTally>,
    pub locations: Vec<&'a Location>,
    pub countries: Vec<(&'a String, &'a Tally)>,
    pub networks: Vec<(&'a String, &'a Tally)>,
    pub clusters: Vec<ClusterOut<'a>>,
    pub method: Method,
    pub within_km: f64,
    pub top: usize,
    /// Time bucket starts, contiguous.
    pub buckets: Vec<i64>,
    /// Requests per bucket of the top countries.
    pub multiples: Vec<(String, Vec<u64>)>,
    /// With stores: what the latest data would have said.
    pub latest: Option<LatestDiffers>,
    pub moved: Vec<Moved>,
    pub notes: Vec<String>,
}

impl Summary<'_> {
    /// Requests and estimated distinct clients per bucket.
    fn totals(&self) -> Vec<(u64, u64)> {
        self.agg
            .timeline
            .aligned(&self.buckets)
            .map(|t| t.map_or((0, 0), |t| (t.requests, t.clients.estimate())))
            .collect()
    }

    /// Distinct clients among the moves.
    pub fn moved_clients(&self) -> usize {
        let mut ips: Vec<_> = self.moved.iter().map(|m| m.ip).collect();
        ips.sort_unstable();
        ips.dedup();
        ips.len()
    }
}

fn time_text(micros: Option<i64>) -> String {
    micros.map_or_else(
        || "-".to_string(),
        |t| Timestamp::from_micros(t).to_rfc3339(),
    )
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// The map and, under it, the timeline.
pub fn svg(countries: &[Country], s: &Summary) -> String {
    let mut body = String::with_capacity(256 * 1024);
    map(&mut body, countries, s);
    let totals = s.totals();
    let chart_height = chart::draw(
        &mut body,
        HEIGHT,
        &Chart {
            buckets: &s.buckets,
            step: s.agg.clock.step(),
            totals: &totals,
            multiples: &s.multiples,
        },
    );
    let height = HEIGHT + chart_height;
    let mut out = String::with_capacity(body.len() + 512);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" font-family="sans-serif"><title>Requests by location and over time</title><rect width="{WIDTH}" height="{height:.0}" fill="#ffffff"/>"##
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

fn map(out: &mut String, countries: &[Country], s: &Summary) {
    let _ = write!(
        out,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#dfeaf3"/><g fill="#f4f1ea" stroke="#9a9a9a" stroke-width="0.4">"##
    );
    for c in countries {
        out.push_str("<path d=\"");
        for ring in &c.polygons {
            for (i, p) in ring.iter().enumerate() {
                let (x, y) = xy(p[0], p[1]);
                let _ = write!(out, "{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' });
            }
            out.push('Z');
        }
        let _ = write!(out, "\"><title>{}</title></path>", escape(&c.name));
    }
    out.push_str("</g><g stroke=\"#5a1f00\" stroke-width=\"0.5\">");
    let max = s
        .locations
        .iter()
        .map(|l| l.tally.requests)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let index: HashMap<i64, usize> = s.buckets.iter().enumerate().map(|(i, &b)| (b, i)).collect();
    // Smallest on top, so that big markers do not hide small ones.
    let mut by_size = s.locations.clone();
    by_size.sort_by_key(|l| std::cmp::Reverse(l.tally.requests));
    for l in by_size {
        let share = (l.tally.requests as f64 / max).sqrt();
        let r = 2.0 + 12.0 * share;
        // Yellow to dark red by requests.
        let hue = 50.0 * (1.0 - share);
        let (x, y) = xy(l.lon, l.lat);
        // Requests per bucket, "index:requests,...", for the time window.
        let mut per_bucket = String::new();
        for (b, n) in &l.series.0 {
            if let Some(i) = index.get(b) {
                if !per_bucket.is_empty() {
                    per_bucket.push(',');
                }
                let _ = write!(per_bucket, "{i}:{n}");
            }
        }
        let _ = write!(
            out,
            r#"<circle class="marker" data-b="{per_bucket}" cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="hsl({hue:.0},90%,50%)" fill-opacity="0.75"><title>{}: {} requests, ~{} clients{}</title></circle>"#,
            escape(&l.label),
            l.tally.requests,
            l.tally.clients.estimate(),
            if l.country_level { " (country)" } else { "" }
        );
    }
    out.push_str("</g>");
    if s.location_set.is_none() {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="18" fill="#7a1f00">No data set in the input has locations (coordinates or country codes)</text>"##,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    }
}

fn table(out: &mut String, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(out, "<h2>{}</h2><table><tr>", escape(title));
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    if rows.is_empty() {
        let _ = write!(out, "<tr><td colspan=\"{}\">none</td></tr>", head.len());
    }
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", escape(&c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The time-window filter: sliders (or a click on a bar, or `#window=A-B` in
/// the address) pick buckets; markers show only requests inside them.
const WINDOW_SCRIPT: &str = include_str!("window.js");

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
th{background:#eee}svg{max-width:100%;height:auto}.cols{display:flex;flex-wrap:wrap;gap:2em}\
.note{background:#fff3cd;padding:.4em .8em}#window{margin:.5em 0}#window input{width:22em;vertical-align:middle}\
rect.timeline{cursor:pointer}";

fn tally_rows(items: &[(&String, &Tally)]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|(k, t)| {
            vec![
                k.to_string(),
                t.requests.to_string(),
                t.clients.estimate().to_string(),
            ]
        })
        .collect()
}

pub fn html(svg: &str, s: &Summary) -> String {
    let a = s.agg;
    let mut out = String::with_capacity(svg.len() + 64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>whipstream report</title>\
<style>{STYLE}</style></head><body><h1>Where and when requests came from</h1><p>{} lines",
        a.lines
    );
    match s.location_set {
        Some(l) => {
            let _ = write!(
                out,
                "; {} matched ({:.1} %), {} unmatched in data set <code>{}</code> (the map: its records have locations)",
                l.matched,
                percent(l.matched, l.matched + l.unmatched),
                l.unmatched,
                escape(&l.name)
            );
        }
        None => out.push_str("; no data set with locations"),
    }
    if let Some(n) = s.network_set {
        let _ = write!(
            out,
            "; networks from data set <code>{}</code>",
            escape(&n.name)
        );
    }
    out.push_str(". Each request is placed where the data put it at the request's own time.</p>");
    for n in &s.notes {
        let _ = write!(out, "<p class=\"note\">{}</p>", escape(n));
    }
    if let (Some(first), Some(last)) = (s.buckets.first(), s.buckets.last()) {
        let step = a.clock.step();
        let _ = write!(
            out,
            "<div id=\"window\">Time window (per {}): <input type=\"range\" id=\"from\" min=\"0\" max=\"{n}\" value=\"0\" aria-label=\"from\"> \
<input type=\"range\" id=\"to\" min=\"0\" max=\"{n}\" value=\"{n}\" aria-label=\"to\"> <button id=\"all\" type=\"button\">all</button> \
<output id=\"wlabel\">{} to {}: all requests</output></div>",
            step.name(),
            bucket_text(*first, step),
            bucket_text(*last, step),
            n = s.buckets.len() - 1,
        );
    }
    out.push_str(svg);
    latest_section(&mut out, s);
    moved_section(&mut out, s);
    out.push_str("<div class=\"cols\"><div>");
    table(
        &mut out,
        "Top countries",
        &["country", "requests", "clients (est.)"],
        tally_rows(&s.countries),
    );
    table(
        &mut out,
        "Top networks",
        &["network", "requests", "clients (est.)"],
        tally_rows(&s.networks),
    );
    out.push_str("</div><div>");
    // With country-only data the locations are the countries again.
    if s.locations.iter().any(|l| !l.country_level) {
        table(
            &mut out,
            "Top locations",
            &["location", "lat", "lon", "requests", "clients (est.)"],
            s.locations
                .iter()
                .take(s.top)
                .map(|l| {
                    vec![
                        l.label.clone(),
                        format!("{:.2}", l.lat),
                        format!("{:.2}", l.lon),
                        l.tally.requests.to_string(),
                        l.tally.clients.estimate().to_string(),
                    ]
                })
                .collect(),
        );
    }
    out.push_str("</div></div>");
    table(
        &mut out,
        &format!(
            "Clusters: locations all within {} km of each other ({})",
            s.within_km,
            s.method.name()
        ),
        &["size", "requests", "members"],
        s.clusters
            .iter()
            .take(s.top)
            .map(|c| {
                let requests: u64 = c.members.iter().map(|l| l.tally.requests).sum();
                let names: Vec<&str> = c.members.iter().map(|l| l.label.as_str()).collect();
                vec![
                    c.members.len().to_string(),
                    requests.to_string(),
                    names.join("; "),
                ]
            })
            .collect(),
    );
    let _ = writeln!(out, "<script>{WINDOW_SCRIPT}</script></body></html>");
    out
}

fn latest_section(out: &mut String, s: &Summary) {
    out.push_str("<h2>What event time changed</h2>");
    let Some(l) = &s.latest else {
        out.push_str(
            "<p>Give the stores the log was enriched from (<code>--db</code>) to see where \
the latest data would have placed each request instead.</p>",
        );
        return;
    };
    let kinds: Vec<String> = l
        .by_kind
        .iter()
        .map(|(k, r, c)| format!("{r} requests ({c} clients) in another {}", k.name()))
        .collect();
    let _ = write!(
        out,
        "<p id=\"latest-differs\">Looked up in the latest snapshot ({}) instead of at each request's own time, \
<strong>{} of {} requests ({:.2} %)</strong> from {} of {} clients would have been placed elsewhere{}{}. \
Besides, {} requests ({} clients) matched at their own time but have no match in the latest data, and {} \
({} clients) have a match only in the latest data (a range added since, or a request older than the first \
snapshot).</p>",
        escape(&time_text(l.snapshot)),
        l.requests,
        l.compared_requests,
        100.0 * l.share(),
        l.clients,
        l.compared_clients,
        if kinds.is_empty() { "" } else { ": " },
        escape(&kinds.join(", ")),
        l.only_then.requests,
        l.only_then.clients,
        l.only_latest.requests,
        l.only_latest.clients,
    );
    table(
        out,
        "Biggest moves: at event time, and with the latest data",
        &[
            "change",
            "at event time",
            "latest data",
            "requests",
            "clients",
        ],
        l.moves
            .iter()
            .take(s.top)
            .map(|m| {
                vec![
                    m.kind.name().to_string(),
                    m.from.clone(),
                    m.to.clone(),
                    m.requests.to_string(),
                    m.clients.to_string(),
                ]
            })
            .collect(),
    );
}

fn moved_section(out: &mut String, s: &Summary) {
    let _ = write!(
        out,
        "<h2>Clients that moved while the log ran</h2><p>{} clients got a different answer during the log \
(the data changed under them){}.</p>",
        s.moved_clients(),
        if s.moved.len() > s.top {
            format!("; the {} with the most requests", s.top)
        } else {
            String::new()
        }
    );
    if s.moved.is_empty() {
        return;
    }
    table(
        out,
        "Moved clients",
        &[
            "client",
            "change",
            "from",
            "to",
            "data changed by the snapshot of",
            "last request before",
            "first request after",
            "requests",
        ],
        s.moved
            .iter()
            .take(s.top)
            .map(|m| {
                vec![
                    m.ip.to_string(),
                    m.kind.name().to_string(),
                    m.from.clone(),
                    m.to.clone(),
                    time_text(Some(m.snapshot)),
                    time_text(m.last_before),
                    time_text(m.first_after),
                    m.requests.to_string(),
                ]
            })
            .collect(),
    );
}

fn role(s: &Summary, set: &SetTally) -> Option<&'static str> {
    let is = |x: Option<&SetTally>| x.is_some_and(|x| std::ptr::eq(x, set));
    match (is(s.location_set), is(s.network_set)) {
        (true, true) => Some("locations+networks"),
        (true, false) => Some("locations"),
        (false, true) => Some("networks"),
        (false, false) => None,
    }
}

pub fn json(s: &Summary) -> serde_json::Value {
    let a = s.agg;
    let tallies = |items: &[(&String, &Tally)]| -> Vec<serde_json::Value> {
        items
            .iter()
            .map(
                |(k, t)| json!({"key": k, "requests": t.requests, "clients": t.clients.estimate()}),
            )
            .collect()
    };
    let loc = |l: &Location| {
        json!({"label": l.label, "lat": l.lat, "lon": l.lon, "requests": l.tally.requests,
               "clients": l.tally.clients.estimate(), "country_level": l.country_level})
    };
    let step = a.clock.step();
    let day_text = |day: &i64| bucket_text(day * 86_400_000_000, Step::Day);
    let latest = s.latest.as_ref().map(|l| {
        json!({
            "requests": l.requests,
            "clients": l.clients,
            "share": l.share(),
            "only_then": {"requests": l.only_then.requests, "clients": l.only_then.clients},
            "only_latest": {"requests": l.only_latest.requests, "clients": l.only_latest.clients},
            "compared_requests": l.compared_requests,
            "compared_clients": l.compared_clients,
            "snapshot": l.snapshot.map(|t| Timestamp::from_micros(t).to_rfc3339()),
            "by_kind": l.by_kind.iter().map(|(k, r, c)| json!({"kind": k.name(), "requests": r, "clients": c})).collect::<Vec<_>>(),
            "moves": l.moves.iter().map(|m| json!({"kind": m.kind.name(), "from": m.from, "to": m.to,
                "requests": m.requests, "clients": m.clients})).collect::<Vec<_>>(),
        })
    });
    let mut out = json!({
        "data_sets": a.sets.iter().map(|set| json!({"name": set.name, "role": role(s, set),
            "matched": set.matched, "unmatched": set.unmatched, "located": set.located,
            "networked": set.networked})).collect::<Vec<_>>(),
        "dataset": s.location_set.map(|l| &l.name),
        "networks_from": s.network_set.map(|n| &n.name),
        "lines": a.lines,
        "unreadable": a.unreadable,
        "untimed": a.untimed,
        "matched": s.location_set.map_or(0, |l| l.matched),
        "unmatched": s.location_set.map_or(0, |l| l.unmatched),
        "unlocated": s.location_set.map_or(0, |l| l.unlocated),
        "clients": a.clients.len(),
        "locations": s.locations.len(),
        "top_countries": tallies(&s.countries),
        "top_networks": tallies(&s.networks),
        "top_locations": s.locations.iter().take(s.top).map(|l| loc(l)).collect::<Vec<_>>(),
        "requests_per_day": a.days.iter().map(|(d, n)| json!({"day": day_text(d), "requests": n})).collect::<Vec<_>>(),
        "timeline_step": step.name(),
        "timeline": s.buckets.iter().zip(s.totals()).map(|(b, (r, c))| json!({
            "start": Timestamp::from_micros(*b).to_rfc3339(), "requests": r, "clients": c})).collect::<Vec<_>>(),
        "timeline_countries": s.multiples.iter().map(|(k, v)| json!({"key": k, "requests": v})).collect::<Vec<_>>(),
        "moved_clients": s.moved.iter().map(|m| json!({
            "ip": m.ip.to_string(), "kind": m.kind.name(), "from": m.from, "to": m.to,
            "snapshot": Timestamp::from_micros(m.snapshot).to_rfc3339(),
            "last_before": m.last_before.map(|t| Timestamp::from_micros(t).to_rfc3339()),
            "first_after": m.first_after.map(|t| Timestamp::from_micros(t).to_rfc3339()),
            "requests": m.requests})).collect::<Vec<_>>(),
        "notes": s.notes,
        "clusters": {
            "within_km": s.within_km,
            "method": s.method.name(),
            "groups": s.clusters.iter().map(|c| json!({
                "size": c.members.len(),
                "requests": c.members.iter().map(|l| l.tally.requests).sum::<u64>(),
                "members": c.members.iter().map(|l| loc(l)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
    });
    if let (Some(l), Some(o)) = (latest, out.as_object_mut()) {
        o.insert("latest_differs".to_string(), l);
    }
    out
}
