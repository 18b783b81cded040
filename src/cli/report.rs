//! `whipstream report`: where requests came from, from an enriched log.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::args::ReportArgs;
use super::open_datasets;
use crate::index::Index;

pub fn cmd_report(a: ReportArgs) -> Result<ExitCode> {
    if !(a.within.is_finite() && a.within > 0.0) {
        bail!("--within must be a positive number of kilometres");
    }
    let options = crate::report::ReportOptions {
        dataset: a.data_set,
        within_km: a.within,
        top: a.top,
        output_dir: a.output_dir,
        progress: !a.no_progress,
    };
    let datasets = open_datasets(&a.dbs)?;
    let indexes: Vec<(&str, Arc<Index>)> = datasets
        .iter()
        .map(|d| (d.name.as_str(), d.index.load_full()))
        .collect();
    let stores: Vec<crate::report::Store> = indexes
        .iter()
        .map(|(name, index)| crate::report::Store { name, index })
        .collect();
    let s = crate::report::run(&a.inputs, &options, &stores)?;
    for note in &s.notes {
        eprintln!("whipstream report: {note}");
    }
    let latest = match s.latest_differs {
        Some((requests, share)) => format!(
            ", {requests} requests ({:.2} %) placed elsewhere by the latest data",
            100.0 * share
        ),
        None => String::new(),
    };
    eprintln!(
        "whipstream report: {} lines, {} matched, {} locations, {} clusters ({}), {} moved clients{latest}; wrote {}",
        s.lines,
        s.matched,
        s.locations,
        s.clusters,
        s.method.name(),
        s.moved_clients,
        s.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
