//! The one resolver: flags laid over the file, every value checked and turned
//! into its type (through `FromStr`, the same for a flag and a key), into a
//! [`Flow`]. A refused value names what gave it: the flag when a flag did, else
//! the file's key.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use super::sections::{defaults, HttpSection, IngestSection};
use super::spec::{check_dataset_name, parse_db, parse_watch};
use super::{invalid, ConfigError, DataSetSettings, FileConfig, Flags, Flow, Io, LogFormat};
use crate::enrich::{BeforeFirst, EnrichOptions, MissingTime};
use crate::http::{conn, Limits};
use crate::ingest::LoadPriority;
use crate::ip::Cidr;
use crate::kafka::{parse_property, KafkaConfig, StartFrom, TimeSource};
use crate::logline::{ClientIp, Format, ParserConfig, TimeFormat, Zone};
use crate::parquet::{OutputFormat, PartitionBy};
use crate::remote::{self, WatchSource};
use crate::time::Timestamp;

/// A setting's flag and key, for messages.
#[derive(Clone, Copy)]
struct Name {
    flag: &'static str,
    key: &'static str,
}

const fn name(flag: &'static str, key: &'static str) -> Name {
    Name { flag, key }
}

/// The flag's value, else the file's, with the name of the one that gave it.
fn given<'a, T>(
    flag: &'a Option<T>,
    file: &'a Option<T>,
    n: Name,
) -> Option<(&'a T, &'static str)> {
    match (flag, file) {
        (Some(v), _) => Some((v, n.flag)),
        (None, Some(v)) => Some((v, n.key)),
        (None, None) => None,
    }
}

/// The given text as a `T`, refused with the name that gave it.
fn parsed<T>(g: Option<(&String, &'static str)>) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    g.map(|(text, name)| text.parse::<T>().map_err(|e| invalid(name, e)))
        .transpose()
}

/// A list given as flags replaces the file's.
fn list<'a, T>(flag: &'a [T], file: &'a [T], n: Name) -> (&'a [T], &'static str) {
    if flag.is_empty() {
        (file, n.key)
    } else {
        (flag, n.flag)
    }
}

pub(super) fn resolve(file: FileConfig, flags: &Flags) -> Result<Flow, ConfigError> {
    let datasets = resolve_datasets(&file, flags)?;
    let parser = resolve_parser(&file, flags)?;
    let mut options = resolve_options(&file, flags)?;
    let names: Vec<&str> = datasets.iter().map(|d| d.name.as_str()).collect();
    options.output = super::output::resolve_output(&file, flags, &names)?;
    let io = resolve_io(&file, flags)?;
    let d = &flags.daemon;
    let (listen, http_limits) = resolve_http(&d.http, &file.http)?;
    let log_format = parsed::<LogFormat>(given(
        &d.log.format,
        &file.log.format,
        name("--log-format", "log.format"),
    ))?
    .unwrap_or_default();
    let load_priority = parsed::<LoadPriority>(given(
        &d.ingest.load_priority,
        &file.ingest.load_priority,
        name("--load-priority", "ingest.load_priority"),
    ))?
    .unwrap_or_default();
    let poll = seconds(
        given(
            &d.ingest.poll_seconds,
            &file.ingest.poll_seconds,
            name("--poll-seconds", "ingest.poll_seconds"),
        ),
        defaults::POLL_SECONDS,
        0.05..=86_400.0,
    )?;
    let settle = seconds(
        given(
            &d.ingest.settle_seconds,
            &file.ingest.settle_seconds,
            name("--settle-seconds", "ingest.settle_seconds"),
        ),
        crate::ingest::DEFAULT_SETTLE.as_secs_f64(),
        0.0..=3_600.0,
    )?;
    let download_limits = resolve_downloads(&d.ingest, &file.ingest)?;
    Ok(Flow {
        datasets,
        io,
        parser,
        options,
        listen,
        http_limits,
        log_format,
        log_level: file.log.level,
        poll_interval: poll,
        settle,
        load_priority,
        download_limits,
    })
}

/// The bounds on remote sources' downloads (`[ingest] download_*`).
fn resolve_downloads(
    flags: &IngestSection,
    file: &IngestSection,
) -> Result<remote::Limits, ConfigError> {
    let max_bytes = match given(
        &flags.download_max_bytes,
        &file.download_max_bytes,
        name("--download-max-bytes", "ingest.download_max_bytes"),
    ) {
        None => remote::DEFAULT_MAX_BYTES,
        Some((0, key)) => return Err(invalid(key, "0: expected at least 1")),
        Some((&n, _)) => n,
    };
    let retries = match given(
        &flags.download_retries,
        &file.download_retries,
        name("--download-retries", "ingest.download_retries"),
    ) {
        None => remote::DEFAULT_RETRIES,
        Some((&n, _)) if n <= 100 => n,
        Some((n, key)) => return Err(invalid(key, format!("{n}: expected 0 to 100"))),
    };
    Ok(remote::Limits {
        max_bytes,
        timeout: seconds(
            given(
                &flags.download_timeout_seconds,
                &file.download_timeout_seconds,
                name("--download-timeout", "ingest.download_timeout_seconds"),
            ),
            remote::DEFAULT_TIMEOUT_SECONDS as f64,
            0.001..=86_400.0,
        )?,
        retries,
        backoff: seconds(
            given(
                &flags.download_backoff_seconds,
                &file.download_backoff_seconds,
                name("--download-backoff", "ingest.download_backoff_seconds"),
            ),
            remote::DEFAULT_BACKOFF_SECONDS as f64,
            0.0..=3_600.0,
        )?,
    })
}

/// The `[http]` section, flags laid over the file's: the listener's address
/// (none: no listener) and its connection limits. `serve` uses it too, with no
/// file.
pub fn resolve_http(
    flags: &HttpSection,
    file: &HttpSection,
) -> Result<(Option<SocketAddr>, Limits), ConfigError> {
    let listen = parsed::<SocketAddr>(given(
        &flags.listen,
        &file.listen,
        name("--listen", "http.listen"),
    ))
    .map_err(|e| match e {
        // The address text helps more than the parser's words alone.
        ConfigError::Invalid { key, message } => ConfigError::Invalid {
            message: format!(
                "{:?}: {message}",
                flags
                    .listen
                    .as_ref()
                    .or(file.listen.as_ref())
                    .map_or("", |s| s)
            ),
            key,
        },
        e => e,
    })?;
    let limits = Limits {
        header_timeout: seconds(
            given(
                &flags.header_timeout_seconds,
                &file.header_timeout_seconds,
                name("--http-header-timeout", "http.header_timeout_seconds"),
            ),
            conn::DEFAULT_HEADER_TIMEOUT_SECONDS as f64,
            0.001..=86_400.0,
        )?,
        idle_timeout: seconds(
            given(
                &flags.idle_timeout_seconds,
                &file.idle_timeout_seconds,
                name("--http-idle-timeout", "http.idle_timeout_seconds"),
            ),
            conn::DEFAULT_IDLE_TIMEOUT_SECONDS as f64,
            0.001..=86_400.0,
        )?,
        max_connections: match given(
            &flags.max_connections,
            &file.max_connections,
            name("--http-max-connections", "http.max_connections"),
        ) {
            None => conn::DEFAULT_MAX_CONNECTIONS,
            // The semaphore's own bound is far above any real file limit.
            Some((&n, _)) if (1..=1_000_000).contains(&n) => n,
            Some((n, key)) => return Err(invalid(key, format!("{n}: expected 1 to 1000000"))),
        },
    };
    Ok((listen, limits))
}

/// Seconds within `range`, or `default`.
fn seconds(
    g: Option<(&f64, &'static str)>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Duration, ConfigError> {
    let Some((&s, n)) = g else {
        return Ok(Duration::from_secs_f64(default));
    };
    if !(s.is_finite() && range.contains(&s)) {
        return Err(invalid(
            n,
            format!("{s}: expected {} to {}", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// The file's `[[dataset]]`s, then `--db NAME=DIR`; `--watch NAME=WHERE` attaches
/// a watched directory or remote source to a data set of either origin.
fn resolve_datasets(file: &FileConfig, flags: &Flags) -> Result<Vec<DataSetSettings>, ConfigError> {
    let mut out: Vec<DataSetSettings> = Vec::new();
    let mut add = |key: &str, d: DataSetSettings| {
        check_dataset_name(&d.name).map_err(|e| invalid(key, e))?;
        if out.iter().any(|o| o.name == d.name) {
            return Err(invalid(
                key,
                format!(
                    "data set {:?} given twice (name them: --db geo=DIR --db asn=DIR2)",
                    d.name
                ),
            ));
        }
        out.push(d);
        Ok(())
    };
    for d in &file.datasets {
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
    for spec in &flags.flow.datasets.dbs {
        let db = parse_db(spec).map_err(|e| invalid("--db", e))?;
        add(
            "--db",
            DataSetSettings {
                name: db.name,
                store: db.dir,
                watch: None,
            },
        )?;
    }
    for spec in &flags.daemon.watch.watches {
        let w = parse_watch(spec).map_err(|e| invalid("--watch", e))?;
        let Some(d) = out.iter_mut().find(|d| d.name == w.name) else {
            return Err(invalid(
                "--watch",
                format!(
                    "no data set {:?} (give it with --db {}=DIR)",
                    w.name, w.name
                ),
            ));
        };
        d.watch = Some(w.watch);
    }
    if out.is_empty() {
        return Err(invalid(
            "dataset",
            "no data set: add a [[dataset]] to the file or --db NAME=DIR",
        ));
    }
    Ok(out)
}

fn resolve_parser(file: &FileConfig, flags: &Flags) -> Result<ParserConfig, ConfigError> {
    let (f, i) = (&flags.flow.input, &file.input);
    let mut c = ParserConfig::default();
    if let Some(v) = parsed::<Format>(given(
        &f.format,
        &i.format,
        name("--format", "input.format"),
    ))? {
        c.format = v;
    }
    if let Some(v) = parsed::<TimeFormat>(given(
        &f.time_format,
        &i.time_format,
        name("--time-format", "input.time_format"),
    ))? {
        c.time_format = v;
    }
    if let Some(v) = parsed::<Zone>(given(
        &f.timezone,
        &i.timezone,
        name("--timezone", "input.timezone"),
    ))? {
        c.zone = v;
    }
    if let Some(v) = parsed::<ClientIp>(given(
        &f.client_ip,
        &i.client_ip,
        name("--client-ip", "input.client_ip"),
    ))? {
        c.client_ip = v;
    }
    let (proxies, n) = list(
        &f.trusted_proxies,
        &i.trusted_proxies,
        name("--trusted-proxy", "input.trusted_proxies"),
    );
    for p in proxies {
        c.trusted_proxies.push(
            p.parse::<Cidr>()
                .map_err(|e| invalid(n, format!("{p:?}: {e}")))?,
        );
    }
    let regex_name = name("--regex", "input.regex");
    if let Some((re, n)) = given(&f.regex, &i.regex, regex_name) {
        c.use_regex(regex::Regex::new(re).map_err(|e| invalid(n, e))?);
    }
    if c.format == Format::Regex && c.regex.is_none() {
        return Err(invalid(regex_name.flag, "format \"regex\" needs a regex"));
    }
    for (flag, file, n, field) in [
        (
            &f.ip_fields,
            &i.ip_fields,
            name("--ip-field", "input.ip_fields"),
            &mut c.ip_fields,
        ),
        (
            &f.time_fields,
            &i.time_fields,
            name("--time-field", "input.time_fields"),
            &mut c.time_fields,
        ),
        (
            &f.xff_fields,
            &i.xff_fields,
            name("--xff-field", "input.xff_fields"),
            &mut c.xff_fields,
        ),
    ] {
        let (v, _) = list(flag, file, n);
        if !v.is_empty() {
            *field = v.to_vec();
        }
    }
    Ok(c)
}

fn resolve_options(file: &FileConfig, flags: &Flags) -> Result<EnrichOptions, ConfigError> {
    let (f, i) = (&flags.flow.input, &file.input);
    let at = parsed::<Timestamp>(given(&f.at, &i.at, name("--at", "input.at")))?;
    let missing_name = name("--missing-time", "input.missing_time");
    let missing = given(&f.missing_time, &i.missing_time, missing_name);
    let missing_key = missing.map_or(missing_name.key, |(_, n)| n);
    let missing = parsed::<MissingTime>(missing)?;
    let before_first = parsed::<BeforeFirst>(given(
        &f.before_first,
        &i.before_first,
        name("--before-first", "input.before_first"),
    ))?
    .unwrap_or_default();
    let max_line_bytes = given(
        &f.max_line_bytes,
        &i.max_line_bytes,
        name("--max-line-bytes", "input.max_line_bytes"),
    )
    .map_or(defaults::MAX_LINE_BYTES, |(v, _)| *v);
    let include_line = !flags.flow.output.no_line && file.output.include_line.unwrap_or(true);
    Ok(EnrichOptions {
        include_line,
        missing_time: MissingTime::from_settings(at, missing)
            .map_err(|e| invalid(missing_key, e))?,
        before_first,
        max_line_bytes,
        output: Default::default(),
    })
}

/// The source and sink. A setting that belongs to another source than the one
/// in use is an error (it would be ignored otherwise); the file's `[kafka]`
/// section itself may stay when flags pick another source.
fn resolve_io(file: &FileConfig, flags: &Flags) -> Result<Io, ConfigError> {
    let (fi, fo, fk) = (&flags.flow.input, &flags.flow.output, &flags.flow.kafka);
    let (files, files_name) = list(&fi.files, &file.input.files, name("[FILE]", "input.files"));
    let source = match (&fi.source, &file.input.source) {
        (Some(s), _) => s.clone(),
        _ if fk.brokers.is_some() => "kafka".into(),
        _ if !fi.files.is_empty() => "files".into(),
        // Files listed without a source are meant to be read.
        (None, Some(s)) => s.clone(),
        (None, None) if files.is_empty() => "stdin".into(),
        (None, None) => "files".into(),
    };
    let source_name = if fi.source.is_some() {
        "--source"
    } else {
        "input.source"
    };
    let output = given(&fo.path, &file.output.path, name("--output", "output.path"));
    let dead_letter = given(
        &fo.dead_letter,
        &file.output.dead_letter,
        name("--dead-letter", "output.dead_letter"),
    );
    let format_name = name("--output-format", "output.format");
    let format_given = given(&fo.format, &file.output.format, format_name);
    let format = parsed::<OutputFormat>(format_given)?;
    let partition_given = given(
        &fo.partition_by,
        &file.output.partition_by,
        name("--partition-by", "output.partition_by"),
    );
    let partition_by = parsed::<PartitionBy>(partition_given)?.unwrap_or_default();
    let only_kafka = [
        ("--input-topic", fk.input_topic.is_some()),
        ("--output-topic", fk.output_topic.is_some()),
        ("--dead-letter-topic", fk.dead_letter_topic.is_some()),
        ("--group-id", fk.group_id.is_some()),
        ("--kafka-property", !fk.property_flags.is_empty()),
        ("--from", fk.from.is_some()),
        ("--time-source", fk.time_source.is_some()),
    ];
    match source.as_str() {
        "stdin" | "files" => {
            if let Some((flag, _)) = only_kafka.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    flag,
                    format!(
                        "is for the kafka source (--kafka-brokers, or input.source = \"kafka\"); \
                         the source is {source}"
                    ),
                ));
            }
            let reads_stdin = files.is_empty() || files.iter().all(|f| f.as_os_str() == "-");
            if source == "stdin" && !reads_stdin {
                return Err(invalid(
                    files_name,
                    "files are given but the source is \"stdin\"",
                ));
            }
            if source == "files" && files.is_empty() {
                return Err(invalid(files_name, "source \"files\" needs files"));
            }
            let output_format = format.unwrap_or_else(|| {
                output.map_or(OutputFormat::Json, |(p, _)| OutputFormat::of_path(p))
            });
            if output_format == OutputFormat::Parquet && output.is_none() {
                return Err(invalid(
                    format_given.map_or("--output", |(_, n)| n),
                    "parquet output is written to a file or directory: give --output",
                ));
            }
            if let (PartitionBy::Day, Some((_, n))) = (partition_by, partition_given) {
                if output_format != OutputFormat::Parquet {
                    return Err(invalid(
                        n,
                        "partitioning is for parquet output (--output-format parquet)",
                    ));
                }
            }
            Ok(Io::Lines {
                files: files.to_vec(),
                output: output.map(|(p, _)| p.clone()),
                dead_letter: dead_letter.map(|(p, _)| p.clone()),
                output_format,
                partition_by,
            })
        }
        "kafka" => {
            let elsewhere = [
                (files_name, !files.is_empty()),
                (output.map_or("", |(_, n)| n), output.is_some()),
                (dead_letter.map_or("", |(_, n)| n), dead_letter.is_some()),
                (format_given.map_or("", |(_, n)| n), format_given.is_some()),
                (
                    partition_given.map_or("", |(_, n)| n),
                    partition_given.is_some(),
                ),
            ];
            if let Some((n, _)) = elsewhere.iter().find(|(_, given)| *given) {
                return Err(invalid(
                    n,
                    "cannot be used with the kafka source: it is for the stdin and files \
                     sources (kafka output and dead letters go to the output and dead letter \
                     topics)",
                ));
            }
            Ok(Io::Kafka(Box::new(resolve_kafka(file, flags)?)))
        }
        other => Err(invalid(
            source_name,
            format!("{other:?}: expected stdin, files or kafka"),
        )),
    }
}

fn resolve_kafka(file: &FileConfig, flags: &Flags) -> Result<KafkaConfig, ConfigError> {
    let (f, k) = (&flags.flow.kafka, &file.kafka);
    let need = |flag: &Option<String>, file: &Option<String>, n: Name| {
        given(flag, file, n).map(|(v, _)| v.clone()).ok_or_else(|| {
            invalid(
                &format!("{} ({})", n.key, n.flag),
                "required for the kafka source",
            )
        })
    };
    let mut properties: Vec<(String, String)> = k
        .properties
        .iter()
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    for p in &f.property_flags {
        properties.push(parse_property(p).map_err(|e| invalid("--kafka-property", e))?);
    }
    Ok(KafkaConfig {
        brokers: need(
            &f.brokers,
            &k.brokers,
            name("--kafka-brokers", "kafka.brokers"),
        )?,
        input_topic: need(
            &f.input_topic,
            &k.input_topic,
            name("--input-topic", "kafka.input_topic"),
        )?,
        output_topic: need(
            &f.output_topic,
            &k.output_topic,
            name("--output-topic", "kafka.output_topic"),
        )?,
        dead_letter_topic: f.dead_letter_topic.clone().or(k.dead_letter_topic.clone()),
        group_id: need(
            &f.group_id,
            &k.group_id,
            name("--group-id", "kafka.group_id"),
        )?,
        properties,
        start_from: parsed::<StartFrom>(given(&f.from, &k.from, name("--from", "kafka.from")))?
            .unwrap_or(StartFrom::Beginning),
        time_source: parsed::<TimeSource>(given(
            &f.time_source,
            &k.time_source,
            name("--time-source", "kafka.time_source"),
        ))?
        .unwrap_or(TimeSource::Line),
        commit_interval: KafkaConfig::COMMIT_INTERVAL,
        drain_timeout: KafkaConfig::DRAIN_TIMEOUT,
    })
}
