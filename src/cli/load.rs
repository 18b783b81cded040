//! `whipstream load`: snapshot files into a store, all or nothing.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::LoadArgs;
use crate::load::{load, LoadOptions};

pub fn cmd_load(a: LoadArgs) -> Result<ExitCode> {
    let summary = load(
        &a.db.db,
        &a.inputs,
        LoadOptions {
            replace: a.replace,
            progress: !a.no_progress,
            no_compaction: false,
            datetime: a.datetime,
            one_snapshot: a.one_snapshot,
            csv: (a.csv || !a.columns.is_empty()).then(|| crate::formats::csv::CsvOptions {
                columns: (!a.columns.is_empty()).then(|| a.columns.clone()),
            }),
        },
    )
    .context("load failed; the store is unchanged")?;
    let mut out = io::stdout().lock();
    writeln!(out, "{summary}")?;
    Ok(ExitCode::SUCCESS)
}
