//! Every setting of a flow is accepted or refused alike by `enrich` flags, `run`
//! flags and `run`'s config file: the three go through one resolver. Each case
//! is a setting given as flags and as the file's keys, with a value that works
//! or one that must be refused (data set names reserved for output fields
//! included). Settings only `run` has (a daemon's) are checked the same way
//! across its flags, its file and their environment variables.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// One setting: its flags, and the same as `(section, line)` of the file.
struct Case {
    flags: &'static [&'static str],
    keys: &'static [(&'static str, &'static str)],
    ok: bool,
}

const fn case(
    flags: &'static [&'static str],
    keys: &'static [(&'static str, &'static str)],
    ok: bool,
) -> Case {
    Case { flags, keys, ok }
}

/// Settings and values, good and bad. Paths `OUT` are replaced by a file in a
/// temporary directory.
const CASES: &[Case] = &[
    case(
        &["--format", "json"],
        &[("input", "format = \"json\"")],
        true,
    ),
    case(
        &["--format", "jsn"],
        &[("input", "format = \"jsn\"")],
        false,
    ),
    case(
        &["--format", "regex"],
        &[("input", "format = \"regex\"")],
        false,
    ),
    case(
        &["--regex", r"^(?P<ip>\S+) "],
        &[("input", r"regex = '^(?P<ip>\S+) '")],
        true,
    ),
    case(&["--regex", "("], &[("input", "regex = \"(\"")], false),
    case(
        &["--time-format", "epoch"],
        &[("input", "time_format = \"epoch\"")],
        true,
    ),
    case(
        &["--time-format", "weird"],
        &[("input", "time_format = \"weird\"")],
        false,
    ),
    case(
        &["--timezone", "Europe/Berlin"],
        &[("input", "timezone = \"Europe/Berlin\"")],
        true,
    ),
    case(
        &["--timezone", "Mars/Olympus"],
        &[("input", "timezone = \"Mars/Olympus\"")],
        false,
    ),
    case(
        &["--client-ip", "xff"],
        &[("input", "client_ip = \"xff\"")],
        true,
    ),
    case(
        &["--client-ip", "header"],
        &[("input", "client_ip = \"header\"")],
        false,
    ),
    case(
        &["--trusted-proxy", "10.0.0.0/8"],
        &[("input", "trusted_proxies = [\"10.0.0.0/8\"]")],
        true,
    ),
    case(
        &["--trusted-proxy", "10.0.0.0/99"],
        &[("input", "trusted_proxies = [\"10.0.0.0/99\"]")],
        false,
    ),
    case(
        &["--ip-field", "client"],
        &[("input", "ip_fields = [\"client\"]")],
        true,
    ),
    case(
        &["--time-field", "t"],
        &[("input", "time_fields = [\"t\"]")],
        true,
    ),
    case(
        &["--xff-field", "2"],
        &[("input", "xff_fields = [\"2\"]")],
        true,
    ),
    case(
        &["--at", "2024-01-01"],
        &[("input", "at = \"2024-01-01\"")],
        true,
    ),
    case(
        &["--at", "yesterday"],
        &[("input", "at = \"yesterday\"")],
        false,
    ),
    case(
        &["--missing-time", "read"],
        &[("input", "missing_time = \"read\"")],
        true,
    ),
    case(
        &["--missing-time", "now"],
        &[("input", "missing_time = \"now\"")],
        false,
    ),
    case(
        &["--at", "2024-01-01", "--missing-time", "read"],
        &[
            ("input", "at = \"2024-01-01\""),
            ("input", "missing_time = \"read\""),
        ],
        false,
    ),
    case(
        &["--before-first", "earliest"],
        &[("input", "before_first = \"earliest\"")],
        true,
    ),
    case(
        &["--before-first", "latest"],
        &[("input", "before_first = \"latest\"")],
        false,
    ),
    case(
        &["--max-line-bytes", "100"],
        &[("input", "max_line_bytes = 100")],
        true,
    ),
    case(
        &["--max-line-bytes", "-5"],
        &[("input", "max_line_bytes = -5")],
        false,
    ),
    case(
        &["--source", "files"],
        &[("input", "source = \"files\"")],
        true,
    ),
    case(
        &["--source", "stdin"],
        &[("input", "source = \"stdin\"")],
        false,
    ),
    case(
        &["--source", "pipe"],
        &[("input", "source = \"pipe\"")],
        false,
    ),
    case(&["--no-line"], &[("output", "include_line = false")], true),
    // Output schema settings.
    case(
        &["--schema", "ecs"],
        &[("output", "schema = \"ecs\"")],
        true,
    ),
    case(
        &["--schema", "elastic"],
        &[("output", "schema = \"elastic\"")],
        false,
    ),
    case(
        &["--fields", "geo=cc:country,datetime"],
        &[("output", "fields = [\"geo=cc:country,datetime\"]")],
        true,
    ),
    case(
        &["--fields", "geo=cc:country,cc:city"],
        &[("output", "fields = [\"geo=cc:country,cc:city\"]")],
        false,
    ),
    case(
        &["--fields", "asn=asn"],
        &[("output", "fields = [\"asn=asn\"]")],
        false,
    ),
    case(&["--output", "OUT"], &[("output", "path = \"OUT\"")], true),
    // Parquet: a partitioned directory works for both commands (`run` adds
    // part files); a single file would be replaced by `enrich` but cannot be
    // appended to by `run`, so it is no parity case.
    case(
        &[
            "--output-format",
            "parquet",
            "--partition-by",
            "day",
            "--output",
            "OUT",
        ],
        &[
            ("output", "format = \"parquet\""),
            ("output", "partition_by = \"day\""),
            ("output", "path = \"OUT\""),
        ],
        true,
    ),
    case(
        &["--output-format", "csv", "--output", "OUT"],
        &[("output", "format = \"csv\""), ("output", "path = \"OUT\"")],
        false,
    ),
    // Parquet is written to a file or directory, never stdout.
    case(
        &["--output-format", "parquet"],
        &[("output", "format = \"parquet\"")],
        false,
    ),
    case(
        &[
            "--output-format",
            "parquet",
            "--partition-by",
            "week",
            "--output",
            "OUT",
        ],
        &[
            ("output", "format = \"parquet\""),
            ("output", "partition_by = \"week\""),
            ("output", "path = \"OUT\""),
        ],
        false,
    ),
    // Partitioning is for Parquet.
    case(
        &["--partition-by", "day", "--output", "OUT"],
        &[
            ("output", "partition_by = \"day\""),
            ("output", "path = \"OUT\""),
        ],
        false,
    ),
    case(
        &["--dead-letter", "OUT"],
        &[("output", "dead_letter = \"OUT\"")],
        true,
    ),
    // The Kafka source: refused settings are refused before any connection.
    case(
        &[
            "--kafka-brokers",
            "127.0.0.1:1",
            "--input-topic",
            "a",
            "--output-topic",
            "b",
        ],
        &[
            ("input", "source = \"kafka\""),
            ("kafka", "brokers = \"127.0.0.1:1\""),
            ("kafka", "input_topic = \"a\""),
            ("kafka", "output_topic = \"b\""),
        ],
        false,
    ),
    case(
        &[
            "--kafka-brokers",
            "127.0.0.1:1",
            "--input-topic",
            "a",
            "--output-topic",
            "b",
            "--group-id",
            "g",
            "--from",
            "someday",
        ],
        &[
            ("input", "source = \"kafka\""),
            ("kafka", "brokers = \"127.0.0.1:1\""),
            ("kafka", "input_topic = \"a\""),
            ("kafka", "output_topic = \"b\""),
            ("kafka", "group_id = \"g\""),
            ("kafka", "from = \"someday\""),
        ],
        false,
    ),
    case(
        &[
            "--kafka-brokers",
            "127.0.0.1:1",
            "--input-topic",
            "a",
            "--output-topic",
            "b",
            "--group-id",
            "g",
            "--time-source",
            "clock",
        ],
        &[
            ("input", "source = \"kafka\""),
            ("kafka", "brokers = \"127.0.0.1:1\""),
            ("kafka", "input_topic = \"a\""),
            ("kafka", "output_topic = \"b\""),
            ("kafka", "group_id = \"g\""),
            ("kafka", "time_source = \"clock\""),
        ],
        false,
    ),
];

/// A log of two combined lines.
fn log_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("access.log");
    std::fs::write(
        &path,
        "1.0.1.5 - - [02/Oct/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"c\"\n\
         1.0.1.6 - - [02/Oct/2024:10:00:01 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"c\"\n",
    )
    .unwrap();
    path
}

/// The three ways of giving `flags`/`keys` for data set `NAME=DB`: whether each
/// succeeded, with its stderr.
fn three_ways(
    dir: &Path,
    i: usize,
    name: &str,
    flags: &[&str],
    keys: &[(&str, &str)],
) -> [(bool, String); 3] {
    let log = log_file(dir);
    let db = format!("{name}={}", s(geoip_store()));
    let out = |way: &str| dir.join(format!("out-{i}-{way}")).display().to_string();
    let with_out = |args: &[&str], way: &str| -> Vec<String> {
        args.iter()
            .map(|a| if *a == "OUT" { out(way) } else { a.to_string() })
            .collect()
    };
    let run_args = |command: &str, way: &str| -> Vec<String> {
        let mut a = vec![command.to_string(), "--db".into(), db.clone()];
        a.extend(with_out(flags, way));
        // A file argument would pick the files source over the one in test.
        if !flags.contains(&"--kafka-brokers") {
            a.push(s(&log).to_string());
        }
        a
    };
    let mut text = format!(
        "[[dataset]]\nname = \"{name}\"\nstore = \"{}\"\n",
        s(geoip_store())
    );
    let mut sections: Vec<&str> = keys.iter().map(|(sec, _)| *sec).collect();
    if !keys
        .iter()
        .any(|(_, k)| k.starts_with("source = \"kafka\""))
    {
        sections.push("input");
    }
    sections.sort();
    sections.dedup();
    for section in sections {
        text.push_str(&format!("[{section}]\n"));
        for (_, line) in keys.iter().filter(|(sec, _)| *sec == section) {
            text.push_str(&line.replace("OUT", &out("file")));
            text.push('\n');
        }
        let kafka = keys
            .iter()
            .any(|(_, k)| k.starts_with("source = \"kafka\""));
        if section == "input" && !kafka {
            text.push_str(&format!("files = [\"{}\"]\n", s(&log)));
        }
    }
    let config = dir.join(format!("case-{i}.toml"));
    std::fs::write(&config, &text).unwrap();
    let result = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args, None);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    [
        result(run_args("enrich", "enrich")),
        result(run_args("run", "run")),
        result(vec![
            "run".into(),
            "--config".into(),
            s(&config).to_string(),
        ]),
    ]
}

#[test]
fn every_setting_is_accepted_or_refused_alike_by_both_commands_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (i, c) in CASES.iter().enumerate() {
        let got = three_ways(dir.path(), i, "geo", c.flags, c.keys);
        for ((ok, stderr), way) in got
            .iter()
            .zip(["enrich flags", "run flags", "run --config"])
        {
            assert_eq!(*ok, c.ok, "{:?} / {:?} by {way}: {stderr}", c.flags, c.keys);
        }
    }
}

/// Data set names: plain, and never a key the output already has.
#[test]
fn data_set_names_are_accepted_or_refused_alike() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, good)) in [
        ("geo", true),
        ("asn-v2", true),
        ("status", false),
        ("time_source", false),
        ("timestamp", false),
        ("ip", false),
    ]
    .into_iter()
    .enumerate()
    {
        let got = three_ways(dir.path(), 100 + i, name, &[], &[]);
        for ((ok, stderr), way) in got
            .iter()
            .zip(["enrich flags", "run flags", "run --config"])
        {
            assert_eq!(*ok, good, "data set {name:?} by {way}: {stderr}");
            if !good {
                assert!(
                    stderr.contains("is an output field name"),
                    "{way}: {stderr}"
                );
            }
        }
    }
}

/// A setting `run` has and `enrich` does not (a daemon's): its flag and value,
/// its `[section] key = value` line, its environment variable.
struct DaemonCase {
    flag: [&'static str; 2],
    key: (&'static str, &'static str),
    env: &'static str,
    ok: bool,
}

const DAEMON_CASES: &[DaemonCase] = &[
    DaemonCase {
        flag: ["--download-max-bytes", "1048576"],
        key: ("ingest", "download_max_bytes = 1048576"),
        env: "WHIPSTREAM_DOWNLOAD_MAX_BYTES",
        ok: true,
    },
    DaemonCase {
        flag: ["--download-max-bytes", "0"],
        key: ("ingest", "download_max_bytes = 0"),
        env: "WHIPSTREAM_DOWNLOAD_MAX_BYTES",
        ok: false,
    },
    DaemonCase {
        flag: ["--download-max-bytes", "-1"],
        key: ("ingest", "download_max_bytes = -1"),
        env: "WHIPSTREAM_DOWNLOAD_MAX_BYTES",
        ok: false,
    },
    DaemonCase {
        flag: ["--download-timeout", "2.5"],
        key: ("ingest", "download_timeout_seconds = 2.5"),
        env: "WHIPSTREAM_DOWNLOAD_TIMEOUT",
        ok: true,
    },
    DaemonCase {
        flag: ["--download-timeout", "0"],
        key: ("ingest", "download_timeout_seconds = 0"),
        env: "WHIPSTREAM_DOWNLOAD_TIMEOUT",
        ok: false,
    },
    DaemonCase {
        flag: ["--download-retries", "0"],
        key: ("ingest", "download_retries = 0"),
        env: "WHIPSTREAM_DOWNLOAD_RETRIES",
        ok: true,
    },
    DaemonCase {
        flag: ["--download-retries", "1000"],
        key: ("ingest", "download_retries = 1000"),
        env: "WHIPSTREAM_DOWNLOAD_RETRIES",
        ok: false,
    },
    DaemonCase {
        flag: ["--download-backoff", "0.5"],
        key: ("ingest", "download_backoff_seconds = 0.5"),
        env: "WHIPSTREAM_DOWNLOAD_BACKOFF",
        ok: true,
    },
    DaemonCase {
        flag: ["--download-backoff", "-2"],
        key: ("ingest", "download_backoff_seconds = -2"),
        env: "WHIPSTREAM_DOWNLOAD_BACKOFF",
        ok: false,
    },
    DaemonCase {
        flag: ["--http-max-connections", "0"],
        key: ("http", "max_connections = 0"),
        env: "WHIPSTREAM_HTTP_MAX_CONNECTIONS",
        ok: false,
    },
];

/// `run` over the two-line log with data set geo: flags, a config file, or an
/// environment variable give the daemon setting.
#[test]
fn daemon_settings_are_accepted_or_refused_alike_by_flags_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_file(dir.path());
    let db = format!("geo={}", s(geoip_store()));
    for (i, c) in DAEMON_CASES.iter().enumerate() {
        let base = ["run", "--db", db.as_str(), s(&log)];
        let config = dir.path().join(format!("daemon-{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[dataset]]\nname = \"geo\"\nstore = \"{}\"\n[input]\nfiles = [\"{}\"]\n[{}]\n{}\n",
                s(geoip_store()),
                s(&log),
                c.key.0,
                c.key.1
            ),
        )
        .unwrap();
        let flags: Vec<&str> = base.iter().copied().chain(c.flag).collect();
        let with_env = Command::new(bin())
            .args(base)
            .env_remove("WHIPSTREAM_DB")
            .env(c.env, c.flag[1])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let got = [
            run(&flags, None),
            run(&["run", "--config", s(&config)], None),
            with_env,
        ];
        for (o, way) in got.iter().zip(["run flags", "run --config", c.env]) {
            assert_eq!(
                o.status.success(),
                c.ok,
                "{:?} by {way}: {}",
                c.flag,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
