//! The Parquet sink of a flow: enriched JSON lines in (as the pipeline writes
//! them, in chunks), Parquet files out, one file or one per event day.
//!
//! Invariants:
//! - memory is bounded whatever the input size: rows are gathered in batches
//!   of [`BATCH_ROWS`], handed to the Arrow writer, which flushes a row group
//!   every [`ROW_GROUP_ROWS`] rows; a partitioned output keeps at most
//!   [`MAX_OPEN_DAYS`] days open, closing the least recently written one when
//!   another day comes (a backfill is mostly in time order; a day seen again
//!   after its file was closed gets a new `part-N` file beside it);
//! - a file is written under a hidden temporary name (`.NAME.inprogress`,
//!   which Spark, Trino and DuckDB globs skip) and renamed to its final name
//!   only once complete and synced: a failed or killed run never leaves a
//!   truncated file that looks final (an error removes the temporary file);
//! - every line written to the sink is a row or a dead letter (a line that does
//!   not fit its columns, [`super::rows::RowError`]), counted.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::file::properties::WriterProperties;

use super::rows::{Batch, Layout, Row, RowError};
use super::{ParquetError, PartitionBy};
use crate::enrich::write_dead_letter;
use crate::output_fields::ValueType;
use crate::time::Timestamp;

/// Rows gathered before they are handed to the Arrow writer.
pub const BATCH_ROWS: usize = 8192;
/// Rows of a row group (DuckDB reads row groups in parallel; its own default).
pub const ROW_GROUP_ROWS: usize = 122_880;
/// Days of a partitioned output written at once.
pub const MAX_OPEN_DAYS: usize = 8;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What a Parquet output holds at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: u64,
    pub files: u64,
    /// Distinct event days (partitioned output).
    pub days: u64,
    /// Lines that did not fit their columns, dead-lettered.
    pub misfits: u64,
}

/// One file being written under its temporary name.
struct Part {
    tmp: PathBuf,
    path: PathBuf,
    writer: Option<ArrowWriter<File>>,
    batch: Batch,
    /// Renamed to its final name: complete.
    named: bool,
}

impl Part {
    fn create(path: PathBuf, layout: &Layout) -> Result<Part, ParquetError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.inprogress"));
        let file = File::create(&tmp).map_err(|e| ParquetError::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("whipstream {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(file, layout.schema().clone(), Some(props))
            .map_err(|e| ParquetError::parquet(&tmp, e))?;
        Ok(Part {
            tmp,
            path,
            writer: Some(writer),
            batch: Batch::new(layout),
            named: false,
        })
    }

    fn push(&mut self, row: &Row<'_>, layout: &Layout) -> Result<(), ParquetError> {
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS {
            self.write_batch(layout)?;
        }
        Ok(())
    }

    fn write_batch(&mut self, layout: &Layout) -> Result<(), ParquetError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = self
            .batch
            .finish(layout)
            .map_err(|e| ParquetError::parquet(&self.tmp, e.into()))?;
        if let Some(w) = &mut self.writer {
            w.write(&batch)
                .map_err(|e| ParquetError::parquet(&self.tmp, e))?;
        }
        Ok(())
    }

    /// Writes what is left and the footer, syncs, and gives the file its name.
    fn finish(mut self, layout: &Layout) -> Result<(), ParquetError> {
        self.write_batch(layout)?;
        if let Some(w) = self.writer.take() {
            let file = w
                .into_inner()
                .map_err(|e| ParquetError::parquet(&self.tmp, e))?;
            file.sync_all()
                .map_err(|e| ParquetError::io(&self.tmp, e))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| ParquetError::io(&self.path, e))?;
        self.named = true;
        Ok(())
    }
}

impl Drop for Part {
    /// A part dropped before it got its name (an error) leaves no file behind.
    fn drop(&mut self) {
        if !self.named {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A day's open file in a partitioned output.
struct OpenDay {
    day: i64,
    part: Part,
}

enum Target {
    File(Option<Box<Part>>),
    Days {
        dir: PathBuf,
        /// The leaf holding the event time.
        time: usize,
        /// Least recently written first.
        open: Vec<OpenDay>,
        seen: BTreeSet<i64>,
        files: u64,
    },
}

/// The sink: a [`Write`] of enriched JSON lines that writes Parquet.
pub struct ParquetSink {
    layout: Arc<Layout>,
    target: Target,
    /// The start of a line whose end has not been written yet.
    pending: Vec<u8>,
    dead: Box<dyn Write>,
    written: Written,
    name: String,
}

impl ParquetSink {
    /// A sink writing `layout`'s columns to `path`: one file, or with
    /// [`PartitionBy::Day`] a directory of `day=YYYY-MM-DD/part-N.parquet`
    /// by the top-level time field `time_field` (`timestamp`, `@timestamp`).
    /// `append` (a `run`) adds part files to a partitioned directory; without it
    /// the directory must be new or empty, and a single file is replaced. Lines
    /// that do not fit go to `dead` as dead letters.
    pub fn create(
        layout: Arc<Layout>,
        path: &Path,
        partition: PartitionBy,
        time_field: &str,
        append: bool,
        dead: Box<dyn Write>,
    ) -> Result<ParquetSink, ParquetError> {
        let target = match partition {
            PartitionBy::None if append => return Err(ParquetError::Append(path.to_path_buf())),
            PartitionBy::None => {
                Target::File(Some(Box::new(Part::create(path.to_path_buf(), &layout)?)))
            }
            PartitionBy::Day => {
                let time = layout
                    .top_leaf(time_field, ValueType::Date)
                    .ok_or_else(|| ParquetError::NoTimeField(time_field.to_string()))?;
                prepare_dir(path, append)?;
                Target::Days {
                    dir: path.to_path_buf(),
                    time,
                    open: Vec::new(),
                    seen: BTreeSet::new(),
                    files: 0,
                }
            }
        };
        Ok(ParquetSink {
            layout,
            target,
            pending: Vec::new(),
            dead,
            written: Written::default(),
            name: path.display().to_string(),
        })
    }

    /// Closes every file (each renamed to its final name) and says what was
    /// written.
    pub fn finish(mut self) -> Result<Written, ParquetError> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line)?;
        }
        let layout = self.layout.clone();
        match &mut self.target {
            Target::File(part) => {
                if let Some(p) = part.take() {
                    p.finish(&layout)?;
                    self.written.files += 1;
                }
            }
            Target::Days {
                open, seen, files, ..
            } => {
                for d in open.drain(..) {
                    d.part.finish(&layout)?;
                    *files += 1;
                }
                self.written.files = *files;
                self.written.days = seen.len() as u64;
            }
        }
        self.dead
            .flush()
            .map_err(|e| ParquetError::io(Path::new("dead letters"), e))?;
        Ok(self.written.clone())
    }

    /// One enriched line (without its newline): a row, or a dead letter.
    fn line(&mut self, line: &[u8]) -> Result<(), ParquetError> {
        let row = std::str::from_utf8(line)
            .map_err(|e| RowError::NotObject(format!("invalid UTF-8 at byte {}", e.valid_up_to())))
            .and_then(|text| self.layout.read(text));
        let refused = match row {
            Ok(row) => match self.route(&row)? {
                None => {
                    self.written.rows += 1;
                    return Ok(());
                }
                Some(reason) => reason,
            },
            Err(e) => e.to_string(),
        };
        self.written.misfits += 1;
        let mut letter = Vec::with_capacity(line.len() + 128);
        write_dead_letter(
            &format!("parquet output {}", self.name),
            &format!("does not fit the parquet columns: {refused}"),
            line,
            &mut letter,
        );
        self.dead
            .write_all(&letter)
            .map_err(|e| ParquetError::io(Path::new("dead letters"), e))
    }

    /// Writes `row` to its file; `Some(reason)` when it has no day to go to.
    fn route(&mut self, row: &Row<'_>) -> Result<Option<String>, ParquetError> {
        let layout = &self.layout;
        match &mut self.target {
            Target::File(Some(part)) => part.push(row, layout)?,
            Target::File(None) => {}
            Target::Days {
                dir,
                time,
                open,
                seen,
                files,
            } => {
                let Some(micros) = row.micros(*time) else {
                    return Ok(Some("no event time to partition by".into()));
                };
                let day = micros.div_euclid(MICROS_PER_DAY);
                let at = match open.iter().position(|d| d.day == day) {
                    Some(i) => i,
                    None => {
                        let Some(name) = day_name(day) else {
                            return Ok(Some(format!("event day {day} has no calendar date")));
                        };
                        if open.len() >= MAX_OPEN_DAYS {
                            open.remove(0).part.finish(layout)?;
                            *files += 1;
                        }
                        let day_dir = dir.join(format!("day={name}"));
                        std::fs::create_dir_all(&day_dir)
                            .map_err(|e| ParquetError::io(&day_dir, e))?;
                        let n = next_part(&day_dir)?;
                        let part = Part::create(day_dir.join(format!("part-{n}.parquet")), layout)?;
                        seen.insert(day);
                        open.push(OpenDay { day, part });
                        open.len() - 1
                    }
                };
                // Most recently written last.
                if at + 1 != open.len() {
                    let d = open.remove(at);
                    open.push(d);
                }
                if let Some(d) = open.last_mut() {
                    d.part.push(row, layout)?;
                }
            }
        }
        Ok(None)
    }
}

impl Write for ParquetSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.pending.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.pending.extend_from_slice(rest);
                return Ok(buf.len());
            };
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..nl]);
            self.line(&line).map_err(io::Error::other)?;
            rest = &rest[nl + 1..];
        }
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            self.line(&rest[..nl]).map_err(io::Error::other)?;
            rest = &rest[nl + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    /// Rows are written as batches fill; a Parquet file cannot be flushed
    /// part-way into something a reader can open.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `2025-03-01` for the day `day` days after 1970-01-01.
fn day_name(day: i64) -> Option<String> {
    let text = Timestamp::from_micros(day.checked_mul(MICROS_PER_DAY)?).to_rfc3339();
    let date = text.get(..10)?;
    (text.as_bytes().get(10) == Some(&b'T')).then(|| date.to_string())
}

/// A partitioned output goes into a new or empty directory (`enrich`: its
/// rows are the table), or any directory when appending (`run`).
fn prepare_dir(dir: &Path, append: bool) -> Result<(), ParquetError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if !append && entries.next().is_some() {
                return Err(ParquetError::NotEmpty(dir.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| ParquetError::io(dir, e))
        }
        Err(e) => Err(ParquetError::io(dir, e)),
    }
}

/// The number after the highest `part-N.parquet` in `dir`.
fn next_part(dir: &Path) -> Result<u64, ParquetError> {
    let mut next = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| ParquetError::io(dir, e))? {
        let entry = entry.map_err(|e| ParquetError::io(dir, e))?;
        let name = entry.file_name();
        let n = name
            .to_str()
            .and_then(|n| n.strip_prefix("part-"))
            .and_then(|n| n.strip_suffix(".parquet"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n {
            next = next.max(n + 1);
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output_fields::FieldSpec;

    fn layout() -> Arc<Layout> {
        let f = |p: &str, ty| FieldSpec { path: p.into(), ty };
        Arc::new(
            Layout::new(&[
                f("timestamp", ValueType::Date),
                f("status", ValueType::Long),
            ])
            .unwrap(),
        )
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// A dead-letter stream the test reads after the sink is done with it.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn days_go_to_their_own_files_and_a_misfit_is_a_counted_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("table");
        let dead = Shared::default();
        let mut sink = ParquetSink::create(
            layout(),
            &out,
            PartitionBy::Day,
            "timestamp",
            false,
            Box::new(dead.clone()),
        )
        .unwrap();
        // Lines cut anywhere across writes, as chunks are.
        let text = b"{\"timestamp\":\"2025-03-01T23:59:59Z\",\"status\":200}\n\
            {\"timestamp\":\"2025-03-02T00:00:00Z\",\"status\":\"x\"}\n\
            {\"timestamp\":\"2025-03-02T00:00:01Z\",\"status\":404}\n\
            {\"timestamp\":\"2025-03-01T12:00:00Z\",\"status\":null}\n";
        for piece in text.chunks(7) {
            sink.write_all(piece).unwrap();
        }
        // Nothing looks final before the end.
        assert!(files_under(&out).iter().all(|f| f.contains(".inprogress")));
        let written = sink.finish().unwrap();
        assert_eq!(
            written,
            Written {
                rows: 3,
                files: 2,
                days: 2,
                misfits: 1
            }
        );
        assert_eq!(
            files_under(&out),
            vec![
                "day=2025-03-01/part-0.parquet",
                "day=2025-03-02/part-0.parquet"
            ]
        );
        let letters = String::from_utf8(dead.0.borrow().clone()).unwrap();
        assert_eq!(letters.lines().count(), 1);
        assert!(
            letters.contains("status: \\\"x\\\" does not fit a 64-bit integer column"),
            "{letters}"
        );
    }

    #[test]
    fn a_partitioned_enrich_refuses_a_directory_with_files_and_run_adds_parts() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("day=2025-03-01");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("part-4.parquet"), b"").unwrap();
        let create = |append| {
            ParquetSink::create(
                layout(),
                dir.path(),
                PartitionBy::Day,
                "timestamp",
                append,
                Box::new(io::sink()),
            )
        };
        assert!(matches!(create(false), Err(ParquetError::NotEmpty(_))));
        let mut sink = create(true).unwrap();
        sink.write_all(b"{\"timestamp\":\"2025-03-01T10:00:00Z\"}\n")
            .unwrap();
        sink.finish().unwrap();
        assert!(day.join("part-5.parquet").exists());
    }

    #[test]
    fn an_unfinished_file_is_removed_and_never_given_its_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut sink = ParquetSink::create(
            layout(),
            &path,
            PartitionBy::None,
            "timestamp",
            false,
            Box::new(io::sink()),
        )
        .unwrap();
        sink.write_all(b"{\"status\":1}\n").unwrap();
        assert!(!path.exists());
        drop(sink);
        assert_eq!(files_under(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_day_seen_again_after_its_file_was_closed_gets_another_part() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t");
        let mut sink = ParquetSink::create(
            layout(),
            &out,
            PartitionBy::Day,
            "timestamp",
            false,
            Box::new(io::sink()),
        )
        .unwrap();
        // One day more than can stay open, then the first again.
        for d in (1..=MAX_OPEN_DAYS + 1).chain([1]) {
            let line = format!("{{\"timestamp\":\"2025-03-{d:02}T10:00:00Z\"}}\n");
            sink.write_all(line.as_bytes()).unwrap();
        }
        let w = sink.finish().unwrap();
        assert_eq!((w.rows, w.days, w.files), (10, 9, 10));
        let files = files_under(&out);
        assert!(files.contains(&"day=2025-03-01/part-0.parquet".to_string()));
        assert!(files.contains(&"day=2025-03-01/part-1.parquet".to_string()));
        assert_eq!(files.len(), 10);
    }

    #[test]
    fn day_names_are_calendar_dates() {
        assert_eq!(day_name(0).as_deref(), Some("1970-01-01"));
        assert_eq!(day_name(20148).as_deref(), Some("2025-03-01"));
        assert_eq!(day_name(i64::MAX), None);
    }
}
