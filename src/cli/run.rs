//! `whipstream run`: the flow of the config file and flags, run until stopped.

use std::process::ExitCode;

use anyhow::Result;

use super::args::RunArgs;
use super::init_logging;
use crate::config::{FileConfig, Flags, LogFormat};
use crate::runner::{self, Lifetime, RunOptions};

pub fn cmd_run(a: RunArgs, log: Option<String>) -> Result<ExitCode> {
    let file = match &a.config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    let flags = Flags {
        flow: a.flow,
        daemon: a.daemon,
    };
    let flow = file.resolve(&flags)?;
    let filter = log
        .or(flow.log_level.clone())
        .unwrap_or_else(|| "info".into());
    init_logging(&filter, flow.log_format == LogFormat::Json);
    runner::run(
        flow,
        RunOptions {
            lifetime: Lifetime::UntilStopped,
            workers: None,
            progress: false,
            command: "run",
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
