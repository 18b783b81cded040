//! `whipstream snapshots`: the snapshots loaded in a store.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use super::args::SnapshotsArgs;
use super::open_index;
use crate::index_file::Check;

pub fn cmd_snapshots(a: SnapshotsArgs) -> Result<ExitCode> {
    let index = open_index(&a.db.db, Check::Header)?;
    let mut out = io::stdout().lock();
    if a.json {
        for s in index.snapshots() {
            serde_json::to_writer(&mut out, &s.meta)?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<26} {:>9} {:<14} {:<22} FILE",
        "DATETIME", "RANGES", "SHA256", "LOADED AT"
    )?;
    for s in index.snapshots() {
        let m = &s.meta;
        writeln!(
            out,
            "{:<26} {:>9} {:<14} {:<22} {}",
            m.datetime,
            m.ranges,
            m.sha256.get(..12).unwrap_or(&m.sha256),
            m.loaded_at.get(..19).unwrap_or(&m.loaded_at),
            m.file
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
