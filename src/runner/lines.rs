//! The stdin and files source of a flow and its sink (a file or stdout, or
//! Parquet files; dead letters to a file or stderr), joined through the
//! parallel, order-keeping [`pipeline`].

use std::cell::RefCell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::{warn, Ended, Lifetime, RunOptions};
use crate::enrich::Enricher;
use crate::output_file::OutputFile;
use crate::parquet::{Layout, OutputFormat, ParquetError, ParquetSink, PartitionBy};
use crate::pipeline;
use crate::shutdown::Stop;
use crate::source::{expand, Chunker, Input as Source};

/// Lines being read (the reader thread runs ahead of the workers).
pub struct Input {
    reading: pipeline::Reading,
    /// Bytes of the files, for the progress bar.
    total_bytes: u64,
    reads_stdin: bool,
    only_stdin: bool,
}

impl Input {
    /// Starts reading `files` (none or `-`: stdin) until they end or `stop`.
    pub fn start(files: &[PathBuf], max_line_bytes: usize, stop: &Stop) -> Result<Input> {
        let inputs = expand(files)?;
        let total_bytes = inputs
            .iter()
            .filter_map(|i| match i {
                Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
                Source::Stdin => None,
            })
            .sum();
        let reads_stdin = inputs.contains(&Source::Stdin);
        let only_stdin = inputs.iter().all(|i| *i == Source::Stdin);
        let reading =
            pipeline::start_reading(Chunker::new(inputs, max_line_bytes).stop_on(stop.flag()))?;
        Ok(Input {
            reading,
            total_bytes,
            reads_stdin,
            only_stdin,
        })
    }
}

/// Where enriched lines and dead letters go.
pub struct Sinks<'a> {
    /// stdout when none.
    pub output: Option<&'a Path>,
    /// stderr when none.
    pub dead_letter: Option<&'a Path>,
    /// Append to the files (`run`) rather than replace them (`enrich`).
    pub append: bool,
    pub format: OutputFormat,
    pub partition_by: PartitionBy,
}

/// One writer shared by the pipeline and the Parquet sink (dead letters come
/// from both), used from the one thread that writes.
#[derive(Clone)]
struct Shared(Rc<RefCell<Box<dyn Write>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// The Parquet sink of the flow's columns: the output schema's field list
/// (whipstream or ECS, chosen fields), each data set's record fields typed
/// from its index as loaded now.
fn parquet_sink(
    enricher: &Enricher,
    sinks: &Sinks<'_>,
    path: &Path,
    dead: Box<dyn Write>,
) -> Result<ParquetSink> {
    let specs = enricher.field_specs();
    let layout = Arc::new(Layout::new(&specs).map_err(ParquetError::from)?);
    Ok(ParquetSink::create(
        layout,
        path,
        sinks.partition_by,
        enricher.time_field(),
        sinks.append,
        dead,
    )?)
}

impl Sinks<'_> {
    fn open(&self, path: &Path) -> Result<std::fs::File> {
        let mut o = std::fs::OpenOptions::new();
        if self.append {
            o.create(true).append(true);
        } else {
            o.create(true).write(true).truncate(true);
        }
        o.open(path)
            .with_context(|| format!("cannot create {}", path.display()))
    }
}

/// Enriches `input` into `sinks` to its end (or the stop), prints the summary.
pub fn run(
    input: Input,
    enricher: &Arc<Enricher>,
    sinks: Sinks<'_>,
    options: &RunOptions,
    stop: &Stop,
) -> Result<Ended> {
    let dead: Box<dyn Write> = match sinks.dead_letter {
        Some(p) => Box::new(io::BufWriter::new(OutputFile::new(
            sinks.open(p)?,
            format!("dead-letter file {}", p.display()),
        ))),
        None => Box::new(io::BufWriter::new(OutputFile::new(
            io::stderr(),
            "standard error (dead letters)",
        ))),
    };
    let mut dead = Shared(Rc::new(RefCell::new(dead)));
    // Each output names itself, with the lines it holds, if a write fails.
    let (mut out, mut parquet): (Box<dyn Write>, Option<ParquetSink>) =
        match (sinks.format, sinks.output) {
            (OutputFormat::Parquet, Some(p)) => (
                Box::new(io::sink()),
                Some(parquet_sink(enricher, &sinks, p, Box::new(dead.clone()))?),
            ),
            (OutputFormat::Parquet, None) => bail!("parquet output needs --output"),
            (OutputFormat::Json, Some(p)) => (
                Box::new(io::BufWriter::with_capacity(
                    1 << 20,
                    OutputFile::new(sinks.open(p)?, format!("output file {}", p.display())),
                )),
                None,
            ),
            (OutputFormat::Json, None) => (
                Box::new(io::BufWriter::with_capacity(
                    1 << 20,
                    OutputFile::new(io::stdout().lock(), "standard output"),
                )),
                None,
            ),
        };
    let workers = options.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let bar = crate::progress::bytes_bar(
        options.progress && !input.reads_stdin,
        input.total_bytes,
        "lines",
    );
    let mut update = |bytes: u64, lines: u64| {
        if let Some(b) = &bar {
            b.update(bytes, lines);
        }
    };
    let writer: &mut dyn Write = match &mut parquet {
        Some(p) => p,
        None => &mut out,
    };
    let mut summary = pipeline::run(
        input.reading,
        enricher.clone(),
        workers,
        writer,
        &mut dead,
        Some(&mut update),
    )?;
    if let Some(b) = &bar {
        b.finish();
    }
    drop(out);
    // `enrich` stopped by a signal before the end of its files (an error below).
    let stopped_early =
        options.lifetime == Lifetime::UntilInputEnds && stop.is_raised() && !input.only_stdin;
    // Parquet files are complete, and get their names, only when every line
    // reached them; otherwise their temporary files are removed.
    let written = match parquet {
        Some(p) if summary.output_error.is_none() && !stopped_early => {
            let w = p.finish()?;
            summary.counts.enriched = summary.counts.enriched.saturating_sub(w.misfits);
            summary.counts.dead_lettered += w.misfits;
            Some(w)
        }
        _ => None,
    };
    drop(dead);
    // A reader that went away (`| head`) is a normal end: no summary then.
    let output_error = match summary.output_error.take() {
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(e.into()),
        other => other,
    };

    let c = &summary.counts;
    let headers = if c.headers > 0 {
        format!(", {} header lines", c.headers)
    } else {
        String::new()
    };
    eprintln!(
        "whipstream {}: {} lines read, {} enriched ({}), {} dead-lettered{} in {:.2} s ({:.0} lines/s)",
        options.command,
        c.read,
        c.enriched,
        enricher.describe_matches(c),
        c.dead_lettered,
        headers,
        summary.seconds,
        c.read as f64 / summary.seconds.max(1e-9)
    );
    if let (Some(w), Some(p)) = (&written, sinks.output) {
        eprintln!(
            "whipstream {}: parquet: {} rows in {} file(s){} at {}; {} line(s) did not fit the columns (dead-lettered, counted above)",
            options.command,
            w.rows,
            w.files,
            if sinks.partition_by == PartitionBy::Day {
                format!(" over {} day(s)", w.days)
            } else {
                String::new()
            },
            p.display(),
            w.misfits
        );
    }
    warn(enricher, c, options.command);
    if let Some(e) = output_error {
        bail!("{e} (the summary above counts the lines handed to it)");
    }
    let ends_with_input = options.lifetime == Lifetime::UntilInputEnds;
    if ends_with_input && stop.is_raised() && !input.only_stdin {
        bail!("stopped by a signal before the end of the input (the summary counts what was done)");
    }
    if !summary.input_errors.is_empty() {
        let errors = summary.input_errors.join("; ");
        if ends_with_input {
            bail!(
                "{} input(s) could not be read to the end: {errors}",
                summary.input_errors.len()
            );
        }
        // A long-running process reports them and goes on serving.
        tracing::error!("input: {errors}");
    }
    Ok(Ended {
        counts: summary.counts,
    })
}
