//! The configuration of a flow: what `enrich` and `run` are asked to do, from a
//! TOML file (see `config/whipstream.toml`), flags and `WHIPSTREAM_...` variables.
//!
//! Every setting is defined once, in [`sections`]: one field is the file's key,
//! the flag and the variable. [`FileConfig`] is the file as written (unknown keys
//! are errors, so a typo is never silently ignored); [`Flags`] are the flags of
//! both commands (`enrich` gives no file and no daemon flags); [`resolve`] lays
//! the flags over the file and checks every value, naming the flag or key of a
//! bad one, into the [`Flow`] that [`crate::runner`] runs. Nothing here opens a
//! store or a socket.

mod output;
pub mod resolve;
pub mod sections;
pub mod spec;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::enrich::EnrichOptions;
use crate::ingest::LoadPriority;
use crate::kafka::KafkaConfig;
use crate::logline::ParserConfig;
use crate::parquet::{OutputFormat, PartitionBy};
pub use sections::{
    DataSetFlags, DataSetSection, HttpSection, IngestSection, InputSection, KafkaSection,
    LogSection, OutputSection, WatchFlags,
};

/// Why a configuration cannot be used: the file (and the key) or flag, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, unknown keys and wrong types (the message has line and key).
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value that parses but cannot be used: `key` is the flag or the file's
    /// key that gave it.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: &str, message: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, rename = "dataset")]
    pub datasets: Vec<DataSetSection>,
    #[serde(default)]
    pub input: InputSection,
    #[serde(default)]
    pub output: OutputSection,
    #[serde(default)]
    pub kafka: KafkaSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub ingest: IngestSection,
}

impl FileConfig {
    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        FileConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })
    }

    /// Lays `flags` over the file and checks every value.
    pub fn resolve(self, flags: &Flags) -> Result<Flow, ConfigError> {
        resolve::resolve(self, flags)
    }
}

/// The flags of a flow, shared by `enrich` and `run` (`#[command(flatten)]`).
#[derive(Debug, Default, Clone, Args)]
pub struct FlowFlags {
    #[command(flatten)]
    pub datasets: DataSetFlags,
    #[command(flatten)]
    pub input: InputSection,
    #[command(flatten)]
    pub output: OutputSection,
    #[command(flatten)]
    pub kafka: KafkaSection,
}

/// The flags only `run` has: what a long-running process does beside its flow.
#[derive(Debug, Default, Clone, Args)]
pub struct DaemonFlags {
    #[command(flatten)]
    pub watch: WatchFlags,
    #[command(flatten)]
    pub http: HttpSection,
    #[command(flatten)]
    pub log: LogSection,
    #[command(flatten)]
    pub ingest: IngestSection,
}

/// All flags of a command (`enrich` leaves `daemon` at its default).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub flow: FlowFlags,
    pub daemon: DaemonFlags,
}

/// A data set of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSetSettings {
    pub name: String,
    pub store: PathBuf,
    pub watch: Option<crate::remote::WatchSource>,
}

/// Where lines come from and go to: the source and sink pair of a flow.
#[derive(Debug, Clone)]
pub enum Io {
    /// stdin or files, to a file or stdout.
    Lines {
        files: Vec<PathBuf>,
        output: Option<PathBuf>,
        dead_letter: Option<PathBuf>,
        /// JSON lines, or Parquet (to `output`, which is then given).
        output_format: OutputFormat,
        partition_by: PartitionBy,
    },
    /// A topic to a topic.
    Kafka(Box<KafkaConfig>),
}

/// The diagnostics format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = crate::value::UnknownValue;
    fn from_str(s: &str) -> Result<LogFormat, Self::Err> {
        crate::value::pick(
            "log format",
            s,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )
    }
}

/// A flow, checked: everything `enrich` and `run` need to run it.
#[derive(Debug)]
pub struct Flow {
    pub datasets: Vec<DataSetSettings>,
    pub io: Io,
    pub parser: ParserConfig,
    pub options: EnrichOptions,
    pub listen: Option<SocketAddr>,
    /// Bounds on the listener's connections.
    pub http_limits: crate::http::Limits,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub poll_interval: Duration,
    /// How long a watched file must stay unchanged before it is loaded.
    pub settle: Duration,
    pub load_priority: LoadPriority,
    /// Bounds on remote sources' downloads.
    pub download_limits: crate::remote::Limits,
}

#[cfg(test)]
mod tests;
