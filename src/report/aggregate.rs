//! What the report counts, from enriched lines, per data set in the input:
//! requests and distinct clients per location, country and network, matched
//! and unmatched lines; and over all lines, requests and distinct clients over
//! time ([`super::timeline`]) and per client address ([`super::clients`]).
//! Everything is read from the record each line was enriched with, that is, at
//! the line's own time.
//!
//! Memory is bounded by the number of distinct clients, locations, countries,
//! networks and time buckets, not lines: distinct clients per location and per
//! bucket are estimated with a small HyperLogLog (256 one-byte registers, about
//! 6.5 % standard error; small counts are exact to within linear counting).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

use serde_json::Value;

use super::clients::{Clients, Part};
use super::record::Reading;
use super::timeline::{Clock, Merge, Series, Step};
use super::world::Centroids;
use crate::ip::IpKey;
use crate::time::Timestamp;

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

    /// The union of two sketches.
    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = (*a).max(*b);
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
    fn add(&mut self, client: Option<u64>) {
        self.requests += 1;
        if let Some(c) = client {
            self.clients.add(c);
        }
    }
}

impl Merge for Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.clients.merge(&other.clients);
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
    /// Requests per time bucket (for the map's time window).
    pub series: Series<u64>,
}

/// What one data set (an object-or-null key of the enriched lines) said.
#[derive(Debug, Default)]
pub struct SetTally {
    pub name: String,
    pub matched: u64,
    pub unmatched: u64,
    /// Matched records with coordinates or a country.
    pub located: u64,
    /// Matched records with network (ASN) fields.
    pub networked: u64,
    /// Matched, but neither coordinates nor a known country.
    pub unlocated: u64,
    pub locations: HashMap<(i32, i32), Location>,
    pub countries: HashMap<String, Tally>,
    /// Requests per time bucket, per country.
    pub country_series: HashMap<String, Series<u64>>,
    pub networks: HashMap<String, Tally>,
}

impl SetTally {
    fn add(
        &mut self,
        r: &Reading,
        client: Option<u64>,
        bucket: Option<i64>,
        centroids: &Centroids,
    ) {
        self.matched += 1;
        self.located += u64::from(r.has_location());
        self.networked += u64::from(r.has_network());
        if let Some(c) = &r.country {
            self.countries.entry(c.clone()).or_default().add(client);
            if let Some(b) = bucket {
                *self.country_series.entry(c.clone()).or_default().entry(b) += 1;
            }
        }
        if let Some(n) = &r.network {
            self.networks.entry(n.clone()).or_default().add(client);
        }
        let place = match r.coords {
            Some((lat, lon)) => {
                let label = match (&r.city, &r.country) {
                    (Some(ci), Some(co)) => format!("{ci}, {co}"),
                    (Some(ci), None) => ci.clone(),
                    (None, Some(co)) => centroids.name(co).unwrap_or(co).to_string(),
                    (None, None) => format!("{lat:.2}, {lon:.2}"),
                };
                Some((lat, lon, label, false))
            }
            None => r.country.as_deref().and_then(|c| {
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
            ..Location::default()
        });
        loc.tally.add(client);
        if let Some(b) = bucket {
            *loc.series.entry(b) += 1;
        }
    }

    fn coarsen(&mut self, step: Step) {
        for s in self.country_series.values_mut() {
            s.coarsen(step);
        }
        for l in self.locations.values_mut() {
            l.series.coarsen(step);
        }
    }
}

/// Data sets tracked at most: real enrichments have a handful; input with
/// hundreds of object-valued keys is not enriched output.
pub const MAX_SETS: usize = 64;

/// Everything counted.
#[derive(Debug, Default)]
pub struct Aggregate {
    pub lines: u64,
    /// Lines that are not enriched JSON objects (no data set key).
    pub unreadable: u64,
    /// Lines without a readable `timestamp` (not on the timeline).
    pub untimed: u64,
    /// Lines without a readable `ip` (not in per-client findings).
    pub no_client: u64,
    /// Answers of data sets past [`MAX_SETS`], not counted.
    pub untracked: u64,
    /// Data sets in order of first appearance.
    pub sets: Vec<SetTally>,
    pub clock: Clock,
    /// Requests and distinct clients per time bucket.
    pub timeline: Series<Tally>,
    /// Requests per day (days since 1970-01-01).
    pub days: BTreeMap<i64, u64>,
    pub clients: Clients,
    parts: Vec<Part>,
}

/// The hash a client counts under in the sketches; `DefaultHasher::new()` has
/// fixed keys, so a client counts the same in every run.
fn client_hash(ip: IpKey) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write_u128(ip.0);
    h.finish()
}

impl Aggregate {
    /// The data set called `name`.
    pub fn set(&self, name: &str) -> Option<usize> {
        self.sets.iter().position(|s| s.name == name)
    }

    /// The index of data set `name`, added if new; `None` past [`MAX_SETS`].
    fn set_index(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.set(name) {
            return Some(i);
        }
        if self.sets.len() >= MAX_SETS {
            self.untracked += 1;
            return None;
        }
        self.sets.push(SetTally {
            name: name.to_string(),
            ..SetTally::default()
        });
        Some(self.sets.len() - 1)
    }

    /// Counts one enriched line.
    pub fn add_line(&mut self, text: &str, centroids: &Centroids) {
        self.lines += 1;
        let Ok(Value::Object(line)) = serde_json::from_str::<Value>(text) else {
            self.unreadable += 1;
            return;
        };
        // A data set's answer is an object (the record) or null (no match).
        let is_set = |(k, v): &(&String, &Value)| {
            !crate::output_fields::is_output_field(k) && (v.is_object() || v.is_null())
        };
        if !line.iter().any(|e| is_set(&e)) {
            self.unreadable += 1;
            return;
        }
        let ip = line
            .get("ip")
            .and_then(Value::as_str)
            .and_then(|t| IpKey::parse(t).ok());
        let client = ip.map(client_hash);
        let t = line
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| Timestamp::parse(t).ok())
            .map(Timestamp::as_micros);
        let bucket = match t {
            Some(t) => {
                if let Some(step) = self.clock.see(t) {
                    self.coarsen(step);
                }
                let b = self.clock.step().start(t);
                self.timeline.entry(b).add(client);
                *self.days.entry(t.div_euclid(86_400_000_000)).or_default() += 1;
                Some(b)
            }
            None => {
                self.untimed += 1;
                None
            }
        };
        let mut parts = std::mem::take(&mut self.parts);
        parts.clear();
        for (name, record) in line.iter().filter(|e| is_set(e)) {
            let Some(set) = self.set_index(name) else {
                continue;
            };
            if !record.is_object() {
                self.sets[set].unmatched += 1;
                parts.push(Part {
                    set: set as u16,
                    snapshot: None,
                    place: None,
                });
                continue;
            }
            let reading = Reading::of(record);
            self.sets[set].add(&reading, client, bucket, centroids);
            let snapshot = record
                .get("datetime")
                .and_then(Value::as_str)
                .and_then(|t| Timestamp::parse(t).ok())
                .map(Timestamp::as_micros);
            parts.push(Part {
                set: set as u16,
                snapshot,
                place: Some(self.clients.intern(reading.place())),
            });
        }
        match ip {
            Some(ip) => self.clients.add(ip, &parts, t),
            None => self.no_client += 1,
        }
        self.parts = parts;
    }

    fn coarsen(&mut self, step: Step) {
        self.timeline.coarsen(step);
        for s in &mut self.sets {
            s.coarsen(step);
        }
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
