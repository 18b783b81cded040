//! `whipstream report`: where the requests of an enriched log came from, as a
//! map and tables, with geographic clusters.
//!
//! Input: enriched JSON lines (the output of `enrich`), from files (gzip too) or
//! stdin. Output, in a directory: `report.svg`, `report.html` (self-contained)
//! and `report.json`. Submodules: [`aggregate`] (the counting), [`cluster`]
//! (cliques or DBSCAN on great-circle distance), [`world`] (the shipped map
//! data), [`render`] (the files).

pub mod aggregate;
pub mod cluster;
pub mod render;
pub mod world;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use aggregate::{Aggregate, Location};
use cluster::Point;

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
    #[error("{0}")]
    Map(String),
}

/// Report settings.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub dataset: Option<String>,
    pub within_km: f64,
    pub top: usize,
    pub output_dir: PathBuf,
    pub progress: bool,
}

/// What was written.
#[derive(Debug)]
pub struct ReportSummary {
    pub lines: u64,
    pub matched: u64,
    pub locations: usize,
    pub clusters: usize,
    pub method: cluster::Method,
    pub files: Vec<PathBuf>,
}

/// Reads the inputs (none: stdin) and writes the report files.
pub fn run(inputs: &[PathBuf], options: &ReportOptions) -> Result<ReportSummary, ReportError> {
    let centroids = world::Centroids::load();
    let mut agg = Aggregate::new(options.dataset.clone());
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
        let (r, _) = crate::source::open_file(path, read_bytes.clone()).map_err(|source| {
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
    write(&agg, options)
}

fn write(agg: &Aggregate, options: &ReportOptions) -> Result<ReportSummary, ReportError> {
    // Locations by requests (ties by label), the order of every list below.
    let mut locations: Vec<&Location> = agg.locations.values().collect();
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
    let mut countries: Vec<_> = agg.countries.iter().collect();
    countries.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(b.0)));
    countries.truncate(options.top);
    let mut networks: Vec<_> = agg.networks.iter().collect();
    networks.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(b.0)));
    networks.truncate(options.top);
    let summary = render::Summary {
        agg,
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
        matched: agg.matched,
        locations: summary.locations.len(),
        clusters: summary.clusters.len(),
        method,
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
