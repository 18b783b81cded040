//! The report's files: `report.svg` (the map: country outlines, one
//! `class="marker"` circle per location), `report.html` (self-contained: the same
//! SVG inline and the tables, no network access needed) and `report.json` (the
//! summary).

use std::fmt::Write as _;

use serde_json::json;

use super::aggregate::{Aggregate, Location, Tally};
use super::cluster::Method;
use super::world::Country;

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 500.0;

/// Equirectangular projection.
fn xy(lon: f64, lat: f64) -> (f64, f64) {
    ((lon + 180.0) / 360.0 * WIDTH, (90.0 - lat) / 180.0 * HEIGHT)
}

fn escape(s: &str) -> String {
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
    pub locations: Vec<&'a Location>,
    pub countries: Vec<(&'a String, &'a Tally)>,
    pub networks: Vec<(&'a String, &'a Tally)>,
    pub clusters: Vec<ClusterOut<'a>>,
    pub method: Method,
    pub within_km: f64,
    pub top: usize,
}

pub fn svg(countries: &[Country], s: &Summary) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif"><title>Requests by location</title><rect width="{WIDTH}" height="{HEIGHT}" fill="#dfeaf3"/><g fill="#f4f1ea" stroke="#9a9a9a" stroke-width="0.4">"##
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
    // Smallest on top, so that big markers do not hide small ones.
    let mut by_size = s.locations.clone();
    by_size.sort_by_key(|l| std::cmp::Reverse(l.tally.requests));
    for l in by_size {
        let share = (l.tally.requests as f64 / max).sqrt();
        let r = 2.0 + 12.0 * share;
        // Yellow to dark red by requests.
        let hue = 50.0 * (1.0 - share);
        let (x, y) = xy(l.lon, l.lat);
        let _ = write!(
            out,
            r#"<circle class="marker" cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="hsl({hue:.0},90%,50%)" fill-opacity="0.75"><title>{}: {} requests, ~{} clients{}</title></circle>"#,
            escape(&l.label),
            l.tally.requests,
            l.tally.clients.estimate(),
            if l.country_level { " (country)" } else { "" }
        );
    }
    out.push_str("</g></svg>\n");
    out
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

fn day_text(day: i64) -> String {
    let t = crate::time::Instant::from_micros(day * 86_400_000_000).to_rfc3339();
    t.get(..10).unwrap_or(&t).to_string()
}

pub fn html(svg: &str, s: &Summary) -> String {
    let a = s.agg;
    let mut out = String::with_capacity(svg.len() + 64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>whipstream report</title><style>\
body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}th{{background:#eee}}svg{{max-width:100%;height:auto}}\
.cols{{display:flex;flex-wrap:wrap;gap:2em}}</style></head><body><h1>Where requests came from</h1>\
<p>{} lines; {} matched ({:.1} %), {} unmatched; data set <code>{}</code>. Each request is placed where the data \
put it at the request's own time.</p>",
        a.lines,
        a.matched,
        100.0 * a.matched as f64 / (a.matched + a.unmatched).max(1) as f64,
        a.unmatched,
        escape(a.dataset.as_deref().unwrap_or("-"))
    );
    out.push_str(svg);
    out.push_str("<div class=\"cols\"><div>");
    let tally_rows = |items: &[(&String, &Tally)]| -> Vec<Vec<String>> {
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
    };
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
    table(
        &mut out,
        "Requests per day",
        &["day", "requests"],
        a.days
            .iter()
            .map(|(d, n)| vec![day_text(*d), n.to_string()])
            .collect(),
    );
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
    out.push_str("</body></html>\n");
    out
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
    json!({
        "dataset": a.dataset,
        "lines": a.lines,
        "unreadable": a.unreadable,
        "matched": a.matched,
        "unmatched": a.unmatched,
        "unlocated": a.unlocated,
        "locations": s.locations.len(),
        "top_countries": tallies(&s.countries),
        "top_networks": tallies(&s.networks),
        "top_locations": s.locations.iter().take(s.top).map(|l| loc(l)).collect::<Vec<_>>(),
        "requests_per_day": a.days.iter().map(|(d, n)| json!({"day": day_text(*d), "requests": n})).collect::<Vec<_>>(),
        "clusters": {
            "within_km": s.within_km,
            "method": s.method.name(),
            "groups": s.clusters.iter().map(|c| json!({
                "size": c.members.len(),
                "requests": c.members.iter().map(|l| l.tally.requests).sum::<u64>(),
                "members": c.members.iter().map(|l| loc(l)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
    })
}
