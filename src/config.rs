//! The daemon's configuration: a TOML file (see `config/whipstream.toml`), every
//! key of which can also be given as a `run` flag or `WHIPSTREAM_...` variable.
//!
//! [`FileConfig`] is the file as written (unknown keys are errors, so a typo is
//! never silently ignored); [`RunFlags`] are the flags; [`FileConfig::resolve`]
//! lays the flags over the file and checks every value, naming the key of a bad
//! one, into the [`Settings`] the daemon runs with. Nothing here opens a store or
//! a socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::enrich::{
    check_dataset_name, parse_dataset_spec, BeforeFirst, EnrichOptions, MissingTime,
};
use crate::ingest::LoadPriority;
use crate::ip::Cidr;
use crate::kafka::stream::{KafkaConfig, StartFrom, TimeSource};
use crate::logline::{ClientIp, Format, ParserConfig, TimeFormat, Zone};
use crate::remote::WatchSource;
use crate::time::Timestamp;

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
    /// A value that parses but cannot be used.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, rename = "dataset")]
    pub datasets: Vec<DataSetConfig>,
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub output: OutputConfig,
    pub kafka: Option<KafkaFileConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
}

/// `[[dataset]]`: one data set, joined under its name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSetConfig {
    pub name: String,
    /// The RocksDB store (created empty when missing).
    pub store: PathBuf,
    /// Where new snapshot files come from while running: a directory,
    /// `s3://BUCKET/PREFIX/` or `http(s)://HOST/PATH/FILE` (see [`WatchSource`]).
    pub watch: Option<String>,
}

/// `[input]`: where lines come from and how they are read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// stdin, files or kafka.
    pub source: Option<String>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
    pub format: Option<String>,
    pub regex: Option<String>,
    pub time_format: Option<String>,
    /// IANA zone of times written without an offset (default UTC).
    pub timezone: Option<String>,
    #[serde(default)]
    pub ip_fields: Vec<String>,
    #[serde(default)]
    pub time_fields: Vec<String>,
    pub client_ip: Option<String>,
    #[serde(default)]
    pub xff_fields: Vec<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Event time of lines without one (instead of missing_time).
    pub at: Option<String>,
    /// Lines without an event time: by-input, read or dead-letter.
    pub missing_time: Option<String>,
    /// Lines older than a data set's first snapshot: none or earliest.
    pub before_first: Option<String>,
    pub max_line_bytes: Option<usize>,
}

/// `[output]`: where enriched lines and dead letters go (stdin/files sources).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// A file to append enriched lines to; stdout when absent.
    pub path: Option<PathBuf>,
    /// A file to append dead letters to; stderr when absent.
    pub dead_letter: Option<PathBuf>,
    pub include_line: Option<bool>,
}

/// `[kafka]`: the Kafka source and sink (used when `input.source = "kafka"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaFileConfig {
    pub brokers: Option<String>,
    pub input_topic: Option<String>,
    pub output_topic: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub group_id: Option<String>,
    pub from: Option<String>,
    pub time_source: Option<String>,
    /// Any librdkafka settings.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[http]`: REST lookups, `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: Option<String>,
}

/// `[log]`: diagnostics on stderr.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// text or json.
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `whipstream=debug`.
    pub level: Option<String>,
}

/// `[ingest]`: how watched directories are scanned.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Seconds between scans (SIGHUP scans at once).
    pub poll_seconds: Option<f64>,
    /// CPU priority of loads: idle, low or normal.
    pub load_priority: Option<String>,
    /// Seconds a file's size and modification time must stay unchanged before
    /// it is loaded (a file copied straight in is complete only then).
    pub settle_seconds: Option<f64>,
}

/// The `run` flags: each overrides the file's key of the same meaning.
#[derive(Debug, Default, Clone)]
pub struct RunFlags {
    /// `NAME=DIR` data sets (added to the file's).
    pub dbs: Vec<String>,
    /// `NAME=DIR` watched directories.
    pub watches: Vec<String>,
    pub listen: Option<String>,
    pub files: Vec<PathBuf>,
    pub format: Option<String>,
    pub regex: Option<String>,
    pub time_format: Option<String>,
    pub timezone: Option<String>,
    pub ip_fields: Vec<String>,
    pub time_fields: Vec<String>,
    pub client_ip: Option<String>,
    pub xff_fields: Vec<String>,
    pub max_line_bytes: Option<usize>,
    pub trusted_proxies: Vec<String>,
    pub at: Option<String>,
    pub missing_time: Option<MissingTime>,
    pub before_first: Option<BeforeFirst>,
    pub no_line: bool,
    pub output: Option<PathBuf>,
    pub dead_letter: Option<PathBuf>,
    pub kafka_brokers: Option<String>,
    pub input_topic: Option<String>,
    pub output_topic: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub group_id: Option<String>,
    pub kafka_properties: Vec<String>,
    pub from: Option<String>,
    pub time_source: Option<String>,
    pub log_format: Option<String>,
    pub poll_seconds: Option<f64>,
    pub settle_seconds: Option<f64>,
    pub load_priority: Option<String>,
}

/// A data set the daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSetSettings {
    pub name: String,
    pub store: PathBuf,
    pub watch: Option<WatchSource>,
}

/// Where lines come from and go to.
#[derive(Debug, Clone)]
pub enum Flow {
    /// stdin or files, to a file or stdout.
    Lines {
        files: Vec<PathBuf>,
        output: Option<PathBuf>,
        dead_letter: Option<PathBuf>,
    },
    Kafka(Box<KafkaConfig>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the daemon needs, checked.
#[derive(Debug)]
pub struct Settings {
    pub datasets: Vec<DataSetSettings>,
    pub flow: Flow,
    pub parser: ParserConfig,
    pub options: EnrichOptions,
    pub listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub poll_interval: Duration,
    /// How long a watched file must stay unchanged before it is loaded.
    pub settle: Duration,
    pub load_priority: LoadPriority,
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
    pub fn resolve(self, flags: &RunFlags) -> Result<Settings, ConfigError> {
        let datasets = resolve_datasets(&self.datasets, flags)?;
        let input = &self.input;
        let parser = resolve_parser(input, flags)?;
        let at = match flags.at.as_ref().or(input.at.as_ref()) {
            Some(t) => Some(Timestamp::parse(t).map_err(|e| invalid("input.at", e.to_string()))?),
            None => None,
        };
        let missing_time = match (flags.missing_time, input.missing_time.as_deref()) {
            (Some(m), _) => Some(m),
            (None, Some(m)) => {
                Some(MissingTime::parse(m).map_err(|e| invalid("input.missing_time", e))?)
            }
            (None, None) => None,
        };
        let before_first = match (flags.before_first, input.before_first.as_deref()) {
            (Some(b), _) => b,
            (None, Some(b)) => {
                BeforeFirst::parse(b).map_err(|e| invalid("input.before_first", e))?
            }
            (None, None) => BeforeFirst::default(),
        };
        let options = EnrichOptions {
            include_line: !flags.no_line && self.output.include_line.unwrap_or(true),
            missing_time: MissingTime::from_settings(at, missing_time)
                .map_err(|e| invalid("input.missing_time", e))?,
            before_first,
            max_line_bytes: flags
                .max_line_bytes
                .or(input.max_line_bytes)
                .unwrap_or(64 * 1024),
        };
        let flow = resolve_flow(&self.input, &self.output, self.kafka, flags)?;
        let listen = match flags.listen.as_ref().or(self.http.listen.as_ref()) {
            Some(a) => Some(
                a.parse::<SocketAddr>()
                    .map_err(|e| invalid("http.listen", format!("{a:?}: {e}")))?,
            ),
            None => None,
        };
        let log_format = match flags
            .log_format
            .as_deref()
            .or(self.log.format.as_deref())
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?}: expected text or json"),
                ))
            }
        };
        let load_priority = match flags
            .load_priority
            .as_deref()
            .or(self.ingest.load_priority.as_deref())
        {
            Some(p) => LoadPriority::parse(p).map_err(|e| invalid("ingest.load_priority", e))?,
            None => LoadPriority::default(),
        };
        let poll = flags
            .poll_seconds
            .or(self.ingest.poll_seconds)
            .unwrap_or(2.0);
        if !(poll.is_finite() && (0.05..=86_400.0).contains(&poll)) {
            return Err(invalid(
                "ingest.poll_seconds",
                format!("{poll}: expected 0.05 to 86400"),
            ));
        }
        let settle = flags
            .settle_seconds
            .or(self.ingest.settle_seconds)
            .unwrap_or(crate::ingest::DEFAULT_SETTLE.as_secs_f64());
        if !(settle.is_finite() && (0.0..=3_600.0).contains(&settle)) {
            return Err(invalid(
                "ingest.settle_seconds",
                format!("{settle}: expected 0 to 3600"),
            ));
        }
        Ok(Settings {
            datasets,
            flow,
            parser,
            options,
            listen,
            log_format,
            log_level: self.log.level,
            poll_interval: Duration::from_secs_f64(poll),
            settle: Duration::from_secs_f64(settle),
            load_priority,
        })
    }
}

/// The file's `[[dataset]]`s, then `--db NAME=DIR`; `--watch NAME=DIR` attaches a
/// watched directory to a data set of either origin.
fn resolve_datasets(
    file: &[DataSetConfig],
    flags: &RunFlags,
) -> Result<Vec<DataSetSettings>, ConfigError> {
    let mut out: Vec<DataSetSettings> = Vec::new();
    let mut add = |key: &str, d: DataSetSettings| {
        check_dataset_name(&d.name).map_err(|e| invalid(key, e))?;
        if out.iter().any(|o| o.name == d.name) {
            return Err(invalid(key, format!("data set {:?} given twice", d.name)));
        }
        out.push(d);
        Ok(())
    };
    for d in file {
        add(
            "dataset.name",
            DataSetSettings {
                name: d.name.clone(),
                store: d.store.clone(),
                watch: d
                    .watch
                    .as_deref()
                    .map(WatchSource::parse)
                    .transpose()
                    .map_err(|e| invalid("dataset.watch", e))?,
            },
        )?;
    }
    for spec in &flags.dbs {
        let (name, dir) = name_dir("--db", spec)?;
        add(
            "--db",
            DataSetSettings {
                name,
                store: dir,
                watch: None,
            },
        )?;
    }
    for spec in &flags.watches {
        let (name, place) = name_dir("--watch", spec)?;
        let Some(d) = out.iter_mut().find(|d| d.name == name) else {
            return Err(invalid(
                "--watch",
                format!("no data set {name:?} (give it with --db {name}=DIR)"),
            ));
        };
        let place = place.to_string_lossy();
        d.watch = Some(WatchSource::parse(&place).map_err(|e| invalid("--watch", e))?);
    }
    if out.is_empty() {
        return Err(invalid(
            "dataset",
            "no data set: add a [[dataset]] to the file or --db NAME=DIR",
        ));
    }
    Ok(out)
}

/// `NAME=DIR`, or `DIR` for the data set named "whip" (as `enrich --db`).
fn name_dir(key: &str, spec: &str) -> Result<(String, PathBuf), ConfigError> {
    parse_dataset_spec(spec).map_err(|e| invalid(key, e))
}

fn resolve_parser(input: &InputConfig, flags: &RunFlags) -> Result<ParserConfig, ConfigError> {
    let mut c = ParserConfig::default();
    if let Some(f) = flags.format.as_ref().or(input.format.as_ref()) {
        c.format = Format::parse(f).map_err(|e| invalid("input.format", e))?;
    }
    if let Some(t) = flags.time_format.as_ref().or(input.time_format.as_ref()) {
        c.time_format = t
            .parse::<TimeFormat>()
            .map_err(|e| invalid("input.time_format", e))?;
    }
    if let Some(z) = flags.timezone.as_ref().or(input.timezone.as_ref()) {
        c.zone = Zone::parse(z).map_err(|e| invalid("input.timezone", e))?;
    }
    if let Some(m) = flags.client_ip.as_ref().or(input.client_ip.as_ref()) {
        c.client_ip = ClientIp::parse(m).map_err(|e| invalid("input.client_ip", e))?;
    }
    let proxies = if flags.trusted_proxies.is_empty() {
        &input.trusted_proxies
    } else {
        &flags.trusted_proxies
    };
    for p in proxies {
        c.trusted_proxies.push(
            p.parse::<Cidr>()
                .map_err(|e| invalid("input.trusted_proxies", format!("{p:?}: {e}")))?,
        );
    }
    if let Some(re) = flags.regex.as_ref().or(input.regex.as_ref()) {
        c.use_regex(regex::Regex::new(re).map_err(|e| invalid("input.regex", e.to_string()))?);
    }
    if c.format == Format::Regex && c.regex.is_none() {
        return Err(invalid("input.regex", "format \"regex\" needs a regex"));
    }
    // A list given as flags replaces the file's.
    let pick = |flag: &Vec<String>, file: &Vec<String>| {
        if flag.is_empty() {
            file.clone()
        } else {
            flag.clone()
        }
    };
    let (ip, time, xff) = (
        pick(&flags.ip_fields, &input.ip_fields),
        pick(&flags.time_fields, &input.time_fields),
        pick(&flags.xff_fields, &input.xff_fields),
    );
    if !ip.is_empty() {
        c.ip_fields = ip;
    }
    if !time.is_empty() {
        c.time_fields = time;
    }
    if !xff.is_empty() {
        c.xff_fields = xff;
    }
    Ok(c)
}

/// Where lines come from and go to. A setting that belongs to another source
/// than the one in use is an error (it would be ignored otherwise); the
/// `[kafka]` section itself may stay when flags pick another source.
fn resolve_flow(
    input: &InputConfig,
    output: &OutputConfig,
    kafka: Option<KafkaFileConfig>,
    flags: &RunFlags,
) -> Result<Flow, ConfigError> {
    let files = if flags.files.is_empty() {
        input.files.clone()
    } else {
        flags.files.clone()
    };
    let source = if flags.kafka_brokers.is_some() {
        "kafka".to_string()
    } else if !flags.files.is_empty() {
        "files".to_string()
    } else {
        // Files listed without a source are meant to be read.
        input
            .source
            .clone()
            .unwrap_or_else(|| if files.is_empty() { "stdin" } else { "files" }.into())
    };
    let out_path = flags.output.clone().or(output.path.clone());
    let dead_letter = flags.dead_letter.clone().or(output.dead_letter.clone());
    let only_kafka = [
        ("--input-topic", flags.input_topic.is_some()),
        ("--output-topic", flags.output_topic.is_some()),
        ("--dead-letter-topic", flags.dead_letter_topic.is_some()),
        ("--group-id", flags.group_id.is_some()),
        ("--kafka-property", !flags.kafka_properties.is_empty()),
        ("--from", flags.from.is_some()),
        ("--time-source", flags.time_source.is_some()),
    ];
    match source.as_str() {
        "stdin" | "files" => {
            if let Some((flag, _)) = only_kafka.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    flag,
                    format!("is for the kafka source; the source is {source}"),
                ));
            }
            if source == "stdin" && !files.is_empty() {
                return Err(invalid(
                    "input.files",
                    "files are given but input.source is \"stdin\"",
                ));
            }
            if source == "files" && files.is_empty() {
                return Err(invalid("input.files", "source \"files\" needs files"));
            }
            Ok(Flow::Lines {
                files,
                output: out_path,
                dead_letter,
            })
        }
        "kafka" => {
            let elsewhere = [
                ("input.files", !files.is_empty()),
                ("output.path", out_path.is_some()),
                ("output.dead_letter", dead_letter.is_some()),
            ];
            if let Some((key, _)) = elsewhere.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    key,
                    "is for the stdin and files sources; the source is kafka \
                     (its output and dead letters go to kafka.output_topic and \
                     kafka.dead_letter_topic)",
                ));
            }
            Ok(Flow::Kafka(Box::new(resolve_kafka(
                kafka.unwrap_or_default(),
                flags,
            )?)))
        }
        other => Err(invalid(
            "input.source",
            format!("{other:?}: expected stdin, files or kafka"),
        )),
    }
}

fn resolve_kafka(k: KafkaFileConfig, flags: &RunFlags) -> Result<KafkaConfig, ConfigError> {
    let need = |flag: &Option<String>, file: Option<String>, key: &str| {
        flag.clone()
            .or(file)
            .ok_or_else(|| invalid(key, "required for the kafka source"))
    };
    let mut properties: Vec<(String, String)> = k.properties.into_iter().collect();
    for p in &flags.kafka_properties {
        properties.push(
            crate::kafka::stream::parse_property(p).map_err(|e| invalid("--kafka-property", e))?,
        );
    }
    let from = match flags.from.as_ref().or(k.from.as_ref()) {
        Some(f) => StartFrom::parse(f).map_err(|e| invalid("kafka.from", e))?,
        None => StartFrom::Beginning,
    };
    let time_source = match flags.time_source.as_deref().or(k.time_source.as_deref()) {
        Some(t) => TimeSource::parse(t).map_err(|e| invalid("kafka.time_source", e))?,
        None => TimeSource::Line,
    };
    Ok(KafkaConfig {
        brokers: need(&flags.kafka_brokers, k.brokers, "kafka.brokers")?,
        input_topic: need(&flags.input_topic, k.input_topic, "kafka.input_topic")?,
        output_topic: need(&flags.output_topic, k.output_topic, "kafka.output_topic")?,
        dead_letter_topic: flags.dead_letter_topic.clone().or(k.dead_letter_topic),
        group_id: need(&flags.group_id, k.group_id, "kafka.group_id")?,
        properties,
        start_from: from,
        time_source,
        commit_interval: KafkaConfig::COMMIT_INTERVAL,
        drain_timeout: KafkaConfig::DRAIN_TIMEOUT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn the_shipped_examples_are_valid() {
        for name in ["whipstream.toml", "docker.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(name);
            let s = FileConfig::read(&path)
                .unwrap()
                .resolve(&RunFlags::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.datasets.is_empty(), "{name}");
            assert!(s.listen.is_some(), "{name}");
        }
    }

    #[test]
    fn event_time_and_settle_keys_are_checked_and_flags_win() {
        let geo = "[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n";
        let s = parse(geo).unwrap().resolve(&RunFlags::default()).unwrap();
        assert_eq!(s.options.missing_time, MissingTime::ByInput);
        assert_eq!(s.options.before_first, BeforeFirst::NoMatch);
        assert_eq!(s.settle, crate::ingest::DEFAULT_SETTLE);
        let text = format!(
            "{geo}[input]\nmissing_time = \"dead-letter\"\nbefore_first = \"earliest\"\n\
             [ingest]\nsettle_seconds = 0.5\n"
        );
        let s = parse(&text).unwrap().resolve(&RunFlags::default()).unwrap();
        assert_eq!(s.options.missing_time, MissingTime::DeadLetter);
        assert_eq!(s.options.before_first, BeforeFirst::Earliest);
        assert_eq!(s.settle, Duration::from_millis(500));
        let flags = RunFlags {
            missing_time: Some(MissingTime::Read),
            ..RunFlags::default()
        };
        let s = parse(&text).unwrap().resolve(&flags).unwrap();
        assert_eq!(s.options.missing_time, MissingTime::Read);
        for (bad, key) in [
            ("[input]\nbefore_first = \"latest\"\n", "input.before_first"),
            ("[input]\nmissing_time = \"now\"\n", "input.missing_time"),
            (
                "[input]\nat = \"2024-01-01\"\nmissing_time = \"read\"\n",
                "input.missing_time",
            ),
            ("[ingest]\nsettle_seconds = -1\n", "ingest.settle_seconds"),
        ] {
            let err = parse(&format!("{geo}{bad}"))
                .unwrap()
                .resolve(&RunFlags::default())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{bad}: {err}");
        }
        // The same data set names as `enrich`: not an output field.
        let err = parse("[[dataset]]\nname = \"status\"\nstore = \"/s\"\n")
            .unwrap()
            .resolve(&RunFlags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("output field name"), "{err}");
    }

    #[test]
    fn load_priority_defaults_to_idle_and_names_its_key() {
        let geo = "[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n";
        let s = parse(geo).unwrap().resolve(&RunFlags::default()).unwrap();
        assert_eq!(s.load_priority, LoadPriority::Idle);
        let flags = RunFlags {
            load_priority: Some("low".into()),
            ..RunFlags::default()
        };
        let text = format!("{geo}[ingest]\nload_priority = \"normal\"\n");
        let s = parse(&text).unwrap().resolve(&flags).unwrap();
        assert_eq!(s.load_priority, LoadPriority::Low, "the flag wins");
        let text = format!("{geo}[ingest]\nload_priority = \"max\"\n");
        let e = parse(&text)
            .unwrap()
            .resolve(&RunFlags::default())
            .unwrap_err();
        assert!(e.to_string().starts_with("ingest.load_priority:"), "{e}");
    }

    /// A setting for another source than the one in use would be ignored: it is
    /// an error naming the key or flag instead.
    #[test]
    fn settings_of_another_source_are_refused() {
        const GEO: &str = "[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n";
        const KAFKA: &str = "[kafka]\nbrokers = \"b:9092\"\ninput_topic = \"raw\"\n\
                             output_topic = \"out\"\ngroup_id = \"g\"\n";
        let resolve = |text: &str, flags: &RunFlags| {
            parse(&format!("{GEO}{text}"))
                .unwrap()
                .resolve(flags)
                .map(|s| s.flow)
                .map_err(|e| e.to_string())
        };
        let none = RunFlags::default();
        let kafka = format!("[input]\nsource = \"kafka\"\n{KAFKA}");
        assert!(matches!(resolve(&kafka, &none), Ok(Flow::Kafka(_))));
        let e = resolve(&format!("{kafka}[output]\npath = \"/o\"\n"), &none).unwrap_err();
        assert!(e.starts_with("output.path:"), "{e}");
        let e = resolve(&format!("{kafka}[output]\ndead_letter = \"/d\"\n"), &none).unwrap_err();
        assert!(e.starts_with("output.dead_letter:"), "{e}");
        let flags = RunFlags {
            output: Some("/o".into()),
            ..RunFlags::default()
        };
        let e = resolve(&kafka, &flags).unwrap_err();
        assert!(e.starts_with("output.path:"), "{e}");
        let e = resolve(
            "[input]\nsource = \"kafka\"\nfiles = [\"a.log\"]\n[kafka]\nbrokers = \"b\"\n",
            &none,
        )
        .unwrap_err();
        assert!(e.starts_with("input.files:"), "{e}");

        // Kafka flags without the kafka source.
        let flags = RunFlags {
            group_id: Some("g".into()),
            ..RunFlags::default()
        };
        let e = resolve("", &flags).unwrap_err();
        assert!(e.starts_with("--group-id:") && e.contains("stdin"), "{e}");
        // Files with source "stdin" contradict; files alone mean source "files".
        let e = resolve("[input]\nsource = \"stdin\"\nfiles = [\"a.log\"]\n", &none).unwrap_err();
        assert!(e.starts_with("input.files:"), "{e}");
        let Ok(Flow::Lines { files, .. }) = resolve("[input]\nfiles = [\"a.log\"]\n", &none) else {
            panic!("files alone are not read")
        };
        assert_eq!(files, vec![PathBuf::from("a.log")]);
        // A [kafka] section may stay when a file argument picks the files source.
        let flags = RunFlags {
            files: vec!["b.log".into()],
            ..RunFlags::default()
        };
        assert!(matches!(
            resolve(&kafka, &flags),
            Ok(Flow::Lines { files, .. }) if files == vec![PathBuf::from("b.log")]
        ));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = parse("[input]\nformt = \"json\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("test.toml") && e.contains("formt"), "{e}");
        let e = parse("[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n[input]\nformat = \"jsn\"\n")
            .unwrap()
            .resolve(&RunFlags::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("input.format:"), "{e}");
        let e =
            parse("[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n[http]\nlisten = \"nowhere\"\n")
                .unwrap()
                .resolve(&RunFlags::default())
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("http.listen:"), "{e}");
        let e = parse("")
            .unwrap()
            .resolve(&RunFlags::default())
            .unwrap_err();
        assert!(e.to_string().contains("no data set"), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_work_alone() {
        let file = parse(
            "[[dataset]]\nname = \"geo\"\nstore = \"/a\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let flags = RunFlags {
            dbs: vec!["asn=/b".into()],
            watches: vec!["geo=/in".into()],
            listen: Some("127.0.0.1:2".into()),
            ..RunFlags::default()
        };
        let s = file.resolve(&flags).unwrap();
        assert_eq!(s.listen, Some("127.0.0.1:2".parse().unwrap()));
        assert_eq!(s.datasets.len(), 2);
        assert_eq!(s.datasets[0].watch, Some(WatchSource::Dir("/in".into())));
        // A remote source, from a flag or the file; a bad one names its key.
        let flags = RunFlags {
            dbs: vec!["/s".into()],
            watches: vec!["s3://bucket/geo/".into()],
            ..RunFlags::default()
        };
        let s = FileConfig::default().resolve(&flags).unwrap();
        assert!(matches!(s.datasets[0].watch, Some(WatchSource::Remote(_))));
        let e = parse("[[dataset]]\nname = \"geo\"\nstore = \"/s\"\nwatch = \"ftp://x/a.mmdb\"\n")
            .unwrap()
            .resolve(&RunFlags::default())
            .unwrap_err();
        assert!(e.to_string().starts_with("dataset.watch:"), "{e}");
        // No file at all.
        let s = FileConfig::default()
            .resolve(&RunFlags {
                dbs: vec!["/only".into()],
                ..RunFlags::default()
            })
            .unwrap();
        assert_eq!(s.datasets[0].name, "whip");
        assert!(matches!(s.flow, Flow::Lines { ref files, .. } if files.is_empty()));
        assert!(s.listen.is_none());
        // A watch for an unknown data set is an error.
        let e = FileConfig::default()
            .resolve(&RunFlags {
                dbs: vec!["/only".into()],
                watches: vec!["geo=/x".into()],
                ..RunFlags::default()
            })
            .unwrap_err();
        assert!(e.to_string().starts_with("--watch:"), "{e}");
    }

    #[test]
    fn kafka_needs_its_keys() {
        let file = parse(
            "[[dataset]]\nname = \"geo\"\nstore = \"/a\"\n[input]\nsource = \"kafka\"\n[kafka]\nbrokers = \"b:9092\"\n",
        )
        .unwrap();
        let e = file.resolve(&RunFlags::default()).unwrap_err();
        assert!(e.to_string().starts_with("kafka.input_topic:"), "{e}");
        let file = parse(
            "[[dataset]]\nname = \"geo\"\nstore = \"/a\"\n[input]\nsource = \"kafka\"\n[kafka]\nbrokers = \"b:9092\"\ninput_topic = \"i\"\noutput_topic = \"o\"\ngroup_id = \"g\"\nproperties = { \"security.protocol\" = \"SSL\" }\n",
        )
        .unwrap();
        let s = file.resolve(&RunFlags::default()).unwrap();
        let Flow::Kafka(k) = s.flow else {
            panic!("not kafka")
        };
        assert_eq!(
            k.properties,
            vec![("security.protocol".into(), "SSL".into())]
        );
    }
}
