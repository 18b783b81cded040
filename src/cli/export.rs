//! `whipstream export`: the data at a time, as a Whip snapshot file.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::args::ExportArgs;
use super::open_index;
use crate::index_file::Check;
use crate::time::Timestamp;

pub fn cmd_export(a: ExportArgs) -> Result<ExitCode> {
    let index = open_index(&a.db.db, Check::Full)?;
    let at = a.at.unwrap_or(Timestamp::MAX);
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    match crate::export::write_snapshot_at(&index, at, &mut out)? {
        Some(e) => {
            eprintln!(
                "whipstream export: {} ranges of the snapshot {}",
                e.ranges, e.datetime
            );
            Ok(ExitCode::SUCCESS)
        }
        None => match a.at {
            Some(t) => bail!("no snapshot at or before {}", t.to_rfc3339()),
            None => bail!("the store has no snapshots"),
        },
    }
}
