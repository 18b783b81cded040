//! `whipstream repair`: RocksDB's repair of a damaged store, and a report of
//! what it kept.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};

use super::args::RepairArgs;

pub fn cmd_repair(a: RepairArgs) -> Result<ExitCode> {
    let r = crate::repair::repair(&a.db.db)?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "repaired {}: kept {} snapshots, {} range pieces, {} records; {} unreadable table files moved to {}",
        r.path.display(),
        r.snapshots.len(),
        r.pieces,
        r.records,
        r.lost_tables,
        r.path.join("lost").display()
    )?;
    for s in &r.snapshots {
        writeln!(
            out,
            "kept: {} ({}, {} ranges)",
            s.datetime, s.file, s.ranges
        )?;
    }
    if r.is_consistent() {
        return Ok(ExitCode::SUCCESS);
    }
    for p in &r.problems {
        writeln!(out, "problem: {p}")?;
    }
    bail!(
        "the repaired store {} is inconsistent ({} problem(s)): load the snapshot files again into a new store",
        r.path.display(),
        r.problems.len()
    )
}
