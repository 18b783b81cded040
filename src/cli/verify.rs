//! `whipstream verify`: a store's invariants checked.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::args::VerifyArgs;
use crate::store::{Mode, Store};

pub fn cmd_verify(a: VerifyArgs) -> Result<ExitCode> {
    let store = Store::open(&a.db.db, Mode::ReadOnly)?;
    let history = store
        .read_history()
        .context("the store cannot be read back")?;
    let mut problems = history.check(50);
    let unknown = store.unknown_keys()?;
    if unknown > 0 {
        problems.push(format!("{unknown} keys of unknown kind"));
    }
    let index = match crate::index_file::verify(&a.db.db, &history, store.state()?) {
        crate::index_file::Status::Ok { bytes } => {
            format!("index file ok ({:.1} MB)", bytes as f64 / 1e6)
        }
        crate::index_file::Status::WillRebuild(why) => {
            format!("index file to be rebuilt on the next open ({why})")
        }
        crate::index_file::Status::Bad(why) => {
            problems.push(format!("index file: {why} (rebuilt on the next open)"));
            String::new()
        }
    };
    let mut out = io::stdout().lock();
    if problems.is_empty() {
        writeln!(
            out,
            "ok: {} snapshots, {} pieces, {} changes, {} records, {} payloads; {index}",
            history.snapshot_count(),
            history.piece_count(),
            history.change_count(),
            history.line_count(),
            history.payload_count()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        writeln!(out, "problem: {p}")?;
    }
    bail!(
        "{} problem(s) found in {}",
        problems.len(),
        a.db.db.display()
    )
}
