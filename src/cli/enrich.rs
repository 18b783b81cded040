//! `whipstream enrich`: the flow of its flags, run until its input ends.

use std::process::ExitCode;

use anyhow::Result;

use super::args::EnrichArgs;
use crate::config::{FileConfig, Flags};
use crate::runner::{self, Lifetime, RunOptions};

pub fn cmd_enrich(a: EnrichArgs) -> Result<ExitCode> {
    let flags = Flags {
        flow: a.flow,
        ..Flags::default()
    };
    let flow = FileConfig::default().resolve(&flags)?;
    let ended = runner::run(
        flow,
        RunOptions {
            lifetime: Lifetime::UntilInputEnds,
            workers: a.workers,
            progress: !a.no_progress,
            command: "enrich",
        },
    )?;
    if a.strict && ended.counts.dead_lettered > 0 {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
