//! `whipstream lookup`: addresses by argument, or queries in batch from stdin.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use super::args::LookupArgs;
use super::open_index;
use crate::index_file::Check;
use crate::lookup::{run_batch, write_answer, When};

pub fn cmd_lookup(a: LookupArgs) -> Result<ExitCode> {
    let check = if a.batch { Check::Full } else { Check::Header };
    let index = open_index(&a.db.db, check)?;
    let stdout = io::stdout();
    if a.batch {
        let stdin = io::stdin().lock();
        let stats = run_batch(
            &index,
            &mut io::BufReader::with_capacity(256 * 1024, stdin),
            stdout.lock(),
        )?;
        tracing::info!(
            queries = stats.queries,
            matched = stats.matched,
            errors = stats.errors,
            "batch done"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let when = match (a.at, a.history) {
        (Some(t), _) => When::At(t),
        (None, true) => When::History,
        (None, false) => When::Latest,
    };
    let mut out = Vec::with_capacity(256);
    for ip in a.ips {
        write_answer(&index, ip, when, &mut out);
        out.push(b'\n');
    }
    stdout.lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}
