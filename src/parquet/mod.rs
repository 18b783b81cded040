//! Parquet output: enriched lines as typed, zstd-compressed columns, in one
//! file (`--output FILE.parquet`) or one file per event day
//! (`--output DIR --partition-by day`: `DIR/day=2025-03-01/part-N.parquet`,
//! the hive layout Spark, Trino and DuckDB read as one table).
//!
//! # Layout
//!
//! - [`columns`]: a flow's [`FieldSpec`](crate::output_fields::FieldSpec) list
//!   as an Arrow schema ([`columns::arrow_schema`]); the list of the
//!   `whipstream` schema, data set fields typed by a scan of their payloads;
//! - [`rows`]: enriched JSON lines into record batches, a line that does not
//!   fit its columns refused whole;
//! - [`sink`]: the [`std::io::Write`] the pipeline writes lines to; files under
//!   temporary names until complete, bounded memory and open files.
//!
//! The sink reads the JSON lines the enricher writes, so the enricher and its
//! schemas need not know about Parquet: any schema whose field list describes
//! its lines gets typed columns.

pub mod columns;
pub mod rows;
pub mod sink;

use std::path::{Path, PathBuf};

pub use columns::{arrow_schema, SchemaError};
pub use rows::Layout;
pub use sink::{ParquetSink, Written};

/// The format of the enriched lines of a stdin or files flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One JSON object per line.
    #[default]
    Json,
    Parquet,
}

impl std::str::FromStr for OutputFormat {
    type Err = crate::value::UnknownValue;
    fn from_str(s: &str) -> Result<OutputFormat, Self::Err> {
        crate::value::pick(
            "output format",
            s,
            &[
                ("json", OutputFormat::Json),
                ("parquet", OutputFormat::Parquet),
            ],
        )
    }
}

impl OutputFormat {
    /// The format a path's extension implies (`.parquet`), else JSON.
    pub fn of_path(path: &Path) -> OutputFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") => OutputFormat::Parquet,
            _ => OutputFormat::Json,
        }
    }
}

/// How a Parquet output is split into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionBy {
    /// One file.
    #[default]
    None,
    /// One directory per event day (UTC), `day=YYYY-MM-DD`.
    Day,
}

impl std::str::FromStr for PartitionBy {
    type Err = crate::value::UnknownValue;
    fn from_str(s: &str) -> Result<PartitionBy, Self::Err> {
        crate::value::pick(
            "partitioning",
            s,
            &[("none", PartitionBy::None), ("day", PartitionBy::Day)],
        )
    }
}

/// Why a Parquet output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ::parquet::errors::ParquetError,
    },
    #[error("parquet output columns: {0}")]
    Schema(#[from] SchemaError),
    #[error(
        "{}: a partitioned output directory must be new or empty (its files are one table)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error(
        "{}: a single parquet file cannot be appended to; use --partition-by day to add part files to a directory",
        .0.display()
    )]
    Append(PathBuf),
    #[error("no top-level time field {0:?} to partition by")]
    NoTimeField(String),
}

impl ParquetError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ParquetError {
        ParquetError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parquet(path: &Path, source: ::parquet::errors::ParquetError) -> ParquetError {
        ParquetError::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_extension_unless_named() {
        assert_eq!(
            OutputFormat::of_path(Path::new("a/out.PARQUET")),
            OutputFormat::Parquet
        );
        assert_eq!(
            OutputFormat::of_path(Path::new("out.jsonl")),
            OutputFormat::Json
        );
        assert_eq!("parquet".parse(), Ok(OutputFormat::Parquet));
        assert!("csv".parse::<OutputFormat>().is_err());
        assert_eq!("day".parse(), Ok(PartitionBy::Day));
        assert!("week".parse::<PartitionBy>().is_err());
    }
}
