//! `whipstream report`: where the requests of an enriched log came from, when,
//! and what enriching at event time changed.
//!
//! Input: enriched JSON lines (the output of `enrich`), from files (gzip too) or
//! stdin, read as a stream. Every data set in the lines is counted; the map
//! (coordinates, countries) is drawn from the data set whose records have
//! locations and the networks table from the one with ASN fields, found by
//! their fields, not their names (`--data-set` overrides the map's). With the
//! stores the log was enriched from, every client is also looked up in their
//! newest snapshot. Output, in a directory: `report.svg`, `report.html`
//! (self-contained, works offline) and `report.json`.
//!
//! Submodules: [`record`] (what a record says), [`aggregate`] (the counting),
//! [`timeline`] (time buckets), [`clients`] (moves and the latest data),
//! [`cluster`] (cliques or DBSCAN on great-circle distance), [`world`] (the
//! shipped map data), [`render`] (the files) and [`chart`] (the timeline SVG).

pub mod aggregate;
pub mod chart;
pub mod clients;
pub mod cluster;
pub mod record;
pub mod render;
pub mod timeline;
pub mod world;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use aggregate::{Aggregate, Location, SetTally};
use clients::Role;
use cluster::Point;
use record::Covers;

use crate::index::Index;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Map(#[from] world::MapDataError),
    #[error("{flag} {name}: the input has no data set {name:?} (it has: {found})")]
    NoSuchSet {
        flag: &'static str,
        name: String,
        found: String,
    },
}

/// Report settings.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// The data set to map, instead of the one found by its fields.
    pub dataset: Option<String>,
    pub within_km: f64,
    pub top: usize,
    pub output_dir: PathBuf,
    pub progress: bool,
}

/// A store the log was enriched from: the data set's name (its key in the
/// enriched lines) and its index.
pub struct Store<'a> {
    pub name: &'a str,
    pub index: &'a Index,
}

/// What was written.
#[derive(Debug)]
pub struct ReportSummary {
    pub lines: u64,
    pub matched: u64,
    pub locations: usize,
    pub clusters: usize,
    pub method: cluster::Method,
    /// Requests and share the latest data would place elsewhere (with stores).
    pub latest_differs: Option<(u64, f64)>,
    /// Distinct clients whose answer changed while the log ran.
    pub moved_clients: usize,
    /// Things the user should know (no data set with locations, ...).
    pub notes: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// Reads the inputs (none: stdin) and writes the report files.
pub fn run(
    inputs: &[PathBuf],
    options: &ReportOptions,
    stores: &[Store],
) -> Result<ReportSummary, ReportError> {
    let centroids = world::Centroids::load();
    let mut agg = Aggregate::default();
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = crate::progress::bytes_bar(options.progress && !inputs.is_empty(), total, "lines");
    let read_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut read = |name: &str, reader: &mut dyn BufRead| -> Result<(), ReportError> {
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(source) => {
                    return Err(ReportError::Input {
                        path: name.to_string(),
                        source,
                    })
                }
            }
            if !line.trim().is_empty() {
                agg.add_line(line.trim_end(), &centroids);
            }
            if agg.lines.is_multiple_of(65_536) {
                if let Some(b) = &bar {
                    b.update(
                        read_bytes.load(std::sync::atomic::Ordering::Relaxed),
                        agg.lines,
                    );
                }
            }
        }
    };
    if inputs.is_empty() {
        read("stdin", &mut std::io::stdin().lock())?;
    }
    for path in inputs {
        let name = path.display().to_string();
        let (r, _) = crate::io::open_file(path, read_bytes.clone()).map_err(|source| {
            ReportError::Input {
                path: name.clone(),
                source,
            }
        })?;
        read(&name, &mut std::io::BufReader::with_capacity(1 << 20, r))?;
    }
    if let Some(b) = &bar {
        b.finish();
    }
    write(agg, options, stores)
}

/// Which data set plays which part, found by what their records say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    /// The map, countries and locations.
    pub location: Option<usize>,
    /// The networks table.
    pub network: Option<usize>,
}

impl Roles {
    /// The map's data set is `forced`, else the one with the most records
    /// with a location; the networks' the one with the most records with ASN
    /// fields, preferring a data set without locations (an ASN data set over
    /// a city data set that also carries an ASN). Ties go by name.
    pub fn find(sets: &[SetTally], forced: Option<&str>) -> Result<Roles, ReportError> {
        let location = match forced {
            Some(name) => Some(sets.iter().position(|s| s.name == name).ok_or_else(|| {
                ReportError::NoSuchSet {
                    flag: "--data-set",
                    name: name.to_string(),
                    found: names(sets),
                }
            })?),
            None => best(sets, |s| (s.located > 0).then_some((s.located, 0))),
        };
        let network = best(sets, |s| {
            (s.networked > 0).then_some((u64::from(s.located == 0), s.networked))
        });
        Ok(Roles { location, network })
    }

    /// What the answers of data set `set` are compared on.
    pub fn covers(&self, set: usize) -> Covers {
        Covers {
            location: self.location == Some(set),
            network: self.network == Some(set),
        }
    }
}

/// The data set with the greatest score (ties: the first name).
fn best(sets: &[SetTally], score: impl Fn(&SetTally) -> Option<(u64, u64)>) -> Option<usize> {
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| sets[a].name.cmp(&sets[b].name));
    let mut best: Option<(usize, (u64, u64))> = None;
    for i in order {
        if let Some(s) = score(&sets[i]) {
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
    }
    best.map(|(i, _)| i)
}

fn names(sets: &[SetTally]) -> String {
    if sets.is_empty() {
        return "none".to_string();
    }
    let mut n: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    n.sort_unstable();
    n.join(", ")
}

fn by_requests(
    map: &std::collections::HashMap<String, aggregate::Tally>,
    top: usize,
) -> Vec<(&String, &aggregate::Tally)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(b.0)));
    v.truncate(top);
    v
}

/// Countries drawn as small multiples under the timeline.
const MULTIPLES: usize = 6;

fn write(
    mut agg: Aggregate,
    options: &ReportOptions,
    stores: &[Store],
) -> Result<ReportSummary, ReportError> {
    let roles = Roles::find(&agg.sets, options.dataset.as_deref())?;
    let mut notes = Vec::new();
    if roles.location.is_none() {
        notes.push(format!(
            "no data set in the input has locations (coordinates or country codes); data sets: {}",
            names(&agg.sets)
        ));
    }
    // Compare with the latest data: each store is the data set of its name.
    let mut compared = Vec::new();
    for s in stores {
        let set = agg.set(s.name).ok_or_else(|| ReportError::NoSuchSet {
            flag: "--db",
            name: s.name.to_string(),
            found: names(&agg.sets),
        })?;
        let covers = roles.covers(set);
        if covers.any() {
            compared.push((
                Role {
                    set: set as u16,
                    covers,
                },
                s.index,
            ));
        } else {
            notes.push(format!(
                "--db {}: the data set has neither locations nor networks; not compared",
                s.name
            ));
        }
    }
    // The map's data set first: a request's change is named by it when both change.
    compared.sort_by_key(|(r, _)| !r.covers.location);
    let latest = (!stores.is_empty()).then(|| agg.clients.latest_differs(&compared));
    let mut role_sets: Vec<usize> = roles.location.into_iter().chain(roles.network).collect();
    role_sets.dedup();
    let role_list: Vec<Role> = role_sets
        .into_iter()
        .map(|set| Role {
            set: set as u16,
            covers: roles.covers(set),
        })
        .collect();
    let moved = agg.clients.moved(&role_list);
    let agg = &agg;
    let location_set = roles.location.map(|i| &agg.sets[i]);
    let network_set = roles.network.map(|i| &agg.sets[i]);
    // Locations by requests (ties by label), the order of every list below.
    let mut locations: Vec<&Location> = location_set
        .map(|s| s.locations.values().collect())
        .unwrap_or_default();
    locations.sort_by(|a, b| {
        b.tally
            .requests
            .cmp(&a.tally.requests)
            .then_with(|| a.label.cmp(&b.label))
    });
    let points: Vec<Point> = locations
        .iter()
        .map(|l| Point {
            lat: l.lat,
            lon: l.lon,
        })
        .collect();
    let (method, groups) = cluster::clusters(&points, options.within_km);
    let countries = location_set
        .map(|s| by_requests(&s.countries, options.top))
        .unwrap_or_default();
    let networks = network_set
        .map(|s| by_requests(&s.networks, options.top))
        .unwrap_or_default();
    let buckets = agg.clock.buckets();
    let multiples = countries
        .iter()
        .take(MULTIPLES)
        .map(|(c, _)| {
            let series = location_set
                .and_then(|s| s.country_series.get(*c))
                .map(|s| {
                    s.aligned(&buckets)
                        .map(|v| v.copied().unwrap_or(0))
                        .collect()
                })
                .unwrap_or_else(|| vec![0; buckets.len()]);
            (c.to_string(), series)
        })
        .collect();
    let summary = render::Summary {
        agg,
        location_set,
        network_set,
        clusters: groups
            .iter()
            .map(|g| render::ClusterOut {
                members: g.iter().map(|&i| locations[i]).collect(),
            })
            .collect(),
        locations,
        countries,
        networks,
        method,
        within_km: options.within_km,
        top: options.top,
        buckets,
        multiples,
        latest,
        moved,
        notes,
    };
    let map = world::countries().map_err(ReportError::Map)?;
    let svg = render::svg(&map, &summary);
    let html = render::html(&svg, &summary);
    let json = render::json(&summary).to_string();
    std::fs::create_dir_all(&options.output_dir).map_err(|source| ReportError::Output {
        path: options.output_dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for (name, body) in [
        ("report.svg", svg),
        ("report.html", html),
        ("report.json", json + "\n"),
    ] {
        let path = options.output_dir.join(name);
        write_atomically(&path, body.as_bytes())?;
        files.push(path);
    }
    Ok(ReportSummary {
        lines: agg.lines,
        matched: location_set.map_or(0, |s| s.matched),
        locations: summary.locations.len(),
        clusters: summary.clusters.len(),
        method,
        latest_differs: summary.latest.as_ref().map(|l| (l.requests, l.share())),
        moved_clients: summary.moved_clients(),
        notes: summary.notes,
        files,
    })
}

/// Writes beside the target and renames: a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = path.with_extension("tmp");
    let err = |source| ReportError::Output {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
