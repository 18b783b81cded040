//! What the report counts, from enriched lines: requests and distinct clients
//! per location, country and network, matched and unmatched lines, requests per
//! day. Everything is read from the record each line was enriched with, that is,
//! at the line's own time.
//!
//! Memory is bounded by the number of distinct locations, countries and
//! networks, not lines: distinct clients are estimated with a small HyperLogLog
//! (256 one-byte registers, about 6.5 % standard error; small counts are exact
//! to within linear counting).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

use serde_json::Value;

use super::world::Centroids;

/// Distinct-count sketch.
#[derive(Clone, Debug)]
pub struct Hll([u8; 256]);

impl Default for Hll {
    fn default() -> Self {
        Hll([0; 256])
    }
}

impl Hll {
    pub fn add(&mut self, hash: u64) {
        let i = (hash >> 56) as usize;
        let rank = ((hash << 8) | 0x80).leading_zeros() as u8 + 1;
        if rank > self.0[i] {
            self.0[i] = rank;
        }
    }

    pub fn estimate(&self) -> u64 {
        let m = 256.0;
        let sum: f64 = self.0.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = 0.7182 * m * m / sum;
        let zeros = self.0.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            raw.round() as u64
        }
    }
}

/// Requests and distinct clients.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub requests: u64,
    pub clients: Hll,
}

impl Tally {
    fn add(&mut self, client: u64) {
        self.requests += 1;
        self.clients.add(client);
    }
}

/// A place on the map.
#[derive(Clone, Debug, Default)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    /// City (and country) when the data has it, else the country.
    pub label: String,
    /// From the country only (no coordinates in the record).
    pub country_level: bool,
    pub tally: Tally,
}

/// Everything counted.
#[derive(Debug, Default)]
pub struct Aggregate {
    pub dataset: Option<String>,
    pub lines: u64,
    /// Lines that are not enriched JSON objects.
    pub unreadable: u64,
    pub matched: u64,
    pub unmatched: u64,
    /// Matched, but neither coordinates nor a known country.
    pub unlocated: u64,
    pub locations: HashMap<(i32, i32), Location>,
    pub countries: HashMap<String, Tally>,
    pub networks: HashMap<String, Tally>,
    /// Requests per day (days since 1970-01-01).
    pub days: BTreeMap<i64, u64>,
}

/// Output fields of `enrich` that are not data sets.
const LINE_FIELDS: [&str; 12] = [
    "ip",
    "timestamp",
    "user",
    "method",
    "path",
    "protocol",
    "referer",
    "status",
    "bytes",
    "user_agent",
    "line",
    "fields",
];

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn first_number(v: &Value, paths: &[&str]) -> Option<f64> {
    paths.iter().find_map(|p| match get(v, p)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn first_text(v: &Value, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| match get(v, p)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

const LAT: [&str; 6] = [
    "latitude",
    "lat",
    "location.latitude",
    "location.lat",
    "geo.lat",
    "geo.latitude",
];
const LON: [&str; 9] = [
    "longitude",
    "lng",
    "lon",
    "location.longitude",
    "location.lng",
    "location.lon",
    "geo.lon",
    "geo.lng",
    "geo.longitude",
];
const COUNTRY: [&str; 7] = [
    "country_code",
    "country_iso_code",
    "country.iso_code",
    "iso_code",
    "cc",
    "country",
    "countryCode",
];
const CITY: [&str; 4] = ["city", "city.names.en", "city_name", "city.name"];
const ASN: [&str; 5] = [
    "asn",
    "autonomous_system_number",
    "as_number",
    "as",
    "asn.asn",
];
const ORG: [&str; 5] = [
    "as_name",
    "autonomous_system_organization",
    "as_organization",
    "org",
    "organization",
];

impl Aggregate {
    pub fn new(dataset: Option<String>) -> Aggregate {
        Aggregate {
            dataset,
            ..Aggregate::default()
        }
    }

    /// The data set key of a line: the one asked for, else the only key that is
    /// not a line field.
    fn record<'a>(&mut self, line: &'a Value) -> Option<Option<&'a Value>> {
        let obj = line.as_object()?;
        if let Some(name) = &self.dataset {
            return Some(obj.get(name));
        }
        let mut keys = obj.keys().filter(|k| !LINE_FIELDS.contains(&k.as_str()));
        let key = keys.next()?.clone();
        if keys.next().is_some() {
            // Several data sets and none chosen: the first, deterministically.
            let mut all: Vec<&String> = obj
                .keys()
                .filter(|k| !LINE_FIELDS.contains(&k.as_str()))
                .collect();
            all.sort();
            self.dataset = all.first().map(|k| k.to_string());
        } else {
            self.dataset = Some(key);
        }
        Some(obj.get(self.dataset.as_deref()?))
    }

    /// Counts one enriched line.
    pub fn add_line(&mut self, text: &str, centroids: &Centroids) {
        self.lines += 1;
        let Ok(line) = serde_json::from_str::<Value>(text) else {
            self.unreadable += 1;
            return;
        };
        let Some(record) = self.record(&line) else {
            self.unreadable += 1;
            return;
        };
        // DefaultHasher::new() has fixed keys: a client counts the same in every run.
        let client = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(
                line.get("ip")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            h.finish()
        };
        if let Some(day) = line
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| crate::time::Instant::parse(t).ok())
        {
            *self
                .days
                .entry(day.as_micros().div_euclid(86_400_000_000))
                .or_default() += 1;
        }
        let Some(record) = record.filter(|r| r.is_object()) else {
            self.unmatched += 1;
            return;
        };
        self.matched += 1;
        let country = first_text(record, &COUNTRY)
            .filter(|c| c.len() == 2)
            .map(|c| c.to_ascii_uppercase());
        if let Some(c) = &country {
            self.countries.entry(c.clone()).or_default().add(client);
        }
        let network = match (first_text(record, &ASN), first_text(record, &ORG)) {
            (Some(a), Some(o)) => Some(format!("AS{} {o}", a.trim_start_matches("AS"))),
            (Some(a), None) => Some(format!("AS{}", a.trim_start_matches("AS"))),
            (None, Some(o)) => Some(o),
            (None, None) => None,
        };
        if let Some(n) = network {
            self.networks.entry(n).or_default().add(client);
        }
        let city = first_text(record, &CITY);
        let place = match (first_number(record, &LAT), first_number(record, &LON)) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                let label = match (&city, &country) {
                    (Some(ci), Some(co)) => format!("{ci}, {co}"),
                    (Some(ci), None) => ci.clone(),
                    (None, Some(co)) => centroids.name(co).unwrap_or(co).to_string(),
                    (None, None) => format!("{lat:.2}, {lon:.2}"),
                };
                Some((lat, lon, label, false))
            }
            _ => country.as_deref().and_then(|c| {
                centroids
                    .get(c)
                    .map(|(lat, lon, name)| (lat, lon, name.to_string(), true))
            }),
        };
        let Some((lat, lon, label, country_level)) = place else {
            self.unlocated += 1;
            return;
        };
        // Locations are points to 0.01 degree (about 1 km).
        let key = ((lat * 100.0).round() as i32, (lon * 100.0).round() as i32);
        let loc = self.locations.entry(key).or_insert_with(|| Location {
            lat,
            lon,
            label,
            country_level,
            tally: Tally::default(),
        });
        loc.tally.add(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hll_estimates_small_and_large_counts() {
        let mut h = Hll::default();
        for i in 0..10u64 {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            s.write_u64(i);
            h.add(s.finish());
        }
        assert_eq!(h.estimate(), 10);
        let mut h = Hll::default();
        for i in 0..100_000u64 {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            s.write_u64(i);
            h.add(s.finish());
        }
        let e = h.estimate() as f64;
        assert!((e - 100_000.0).abs() < 20_000.0, "{e}");
    }
}
