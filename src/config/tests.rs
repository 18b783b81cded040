//! The resolver's rules, on the file and on flags parsed as the commands parse them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::enrich::{BeforeFirst, MissingTime};
use crate::ingest::LoadPriority;
use crate::remote::WatchSource;

/// Flags as `run` parses them.
#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    flow: FlowFlags,
    #[command(flatten)]
    daemon: DaemonFlags,
}

fn parse_flags(args: &[&str]) -> Flags {
    let c = TestCli::try_parse_from(std::iter::once("whipstream").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Flags {
        flow: c.flow,
        daemon: c.daemon,
    }
}

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
            .resolve(&Flags::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!s.datasets.is_empty(), "{name}");
        assert!(s.listen.is_some(), "{name}");
    }
}

#[test]
fn event_time_and_settle_keys_are_checked_and_flags_win() {
    let geo = "[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n";
    let s = parse(geo).unwrap().resolve(&Flags::default()).unwrap();
    assert_eq!(s.options.missing_time, MissingTime::ByInput);
    assert_eq!(s.options.before_first, BeforeFirst::NoMatch);
    assert_eq!(s.settle, crate::ingest::DEFAULT_SETTLE);
    let text = format!(
        "{geo}[input]\nmissing_time = \"dead-letter\"\nbefore_first = \"earliest\"\n\
         [ingest]\nsettle_seconds = 0.5\n"
    );
    let s = parse(&text).unwrap().resolve(&Flags::default()).unwrap();
    assert_eq!(s.options.missing_time, MissingTime::DeadLetter);
    assert_eq!(s.options.before_first, BeforeFirst::Earliest);
    assert_eq!(s.settle, Duration::from_millis(500));
    let flags = parse_flags(&["--missing-time", "read"]);
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
            .resolve(&Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(key), "{bad}: {err}");
    }
    // The same data set names as `enrich`: not an output field.
    let err = parse("[[dataset]]\nname = \"status\"\nstore = \"/s\"\n")
        .unwrap()
        .resolve(&Flags::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("output field name"), "{err}");
}

#[test]
fn download_limits_default_to_the_remote_defaults_and_flags_win() {
    let geo = "[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n";
    let s = parse(geo).unwrap().resolve(&Flags::default()).unwrap();
    assert_eq!(s.download_limits, crate::remote::Limits::default());
    let text = format!(
        "{geo}[ingest]\ndownload_max_bytes = 1000\ndownload_timeout_seconds = 5\n\
         download_retries = 0\ndownload_backoff_seconds = 0.25\n"
    );
    let s = parse(&text).unwrap().resolve(&Flags::default()).unwrap();
    let want = crate::remote::Limits {
        max_bytes: 1000,
        timeout: Duration::from_secs(5),
        retries: 0,
        backoff: Duration::from_millis(250),
    };
    assert_eq!(s.download_limits, want);
    let flags = parse_flags(&["--download-max-bytes", "7", "--download-retries", "9"]);
    let s = parse(&text).unwrap().resolve(&flags).unwrap();
    assert_eq!(
        (s.download_limits.max_bytes, s.download_limits.retries),
        (7, 9)
    );
    for (bad, key) in [
        ("download_max_bytes = 0", "ingest.download_max_bytes"),
        ("download_retries = 101", "ingest.download_retries"),
        (
            "download_timeout_seconds = 0",
            "ingest.download_timeout_seconds",
        ),
        (
            "download_backoff_seconds = -1",
            "ingest.download_backoff_seconds",
        ),
    ] {
        let err = parse(&format!("{geo}[ingest]\n{bad}\n"))
            .unwrap()
            .resolve(&Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(key), "{bad}: {err}");
    }
}

#[test]
fn load_priority_defaults_to_idle_and_names_its_key() {
    let geo = "[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n";
    let s = parse(geo).unwrap().resolve(&Flags::default()).unwrap();
    assert_eq!(s.load_priority, LoadPriority::Idle);
    let flags = parse_flags(&["--load-priority", "low"]);
    let text = format!("{geo}[ingest]\nload_priority = \"normal\"\n");
    let s = parse(&text).unwrap().resolve(&flags).unwrap();
    assert_eq!(s.load_priority, LoadPriority::Low, "the flag wins");
    let text = format!("{geo}[ingest]\nload_priority = \"max\"\n");
    let e = parse(&text)
        .unwrap()
        .resolve(&Flags::default())
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
    let resolve = |text: &str, flags: &Flags| {
        parse(&format!("{GEO}{text}"))
            .unwrap()
            .resolve(flags)
            .map(|s| s.io)
            .map_err(|e| e.to_string())
    };
    let none = Flags::default();
    let kafka = format!("[input]\nsource = \"kafka\"\n{KAFKA}");
    assert!(matches!(resolve(&kafka, &none), Ok(Io::Kafka(_))));
    let e = resolve(&format!("{kafka}[output]\npath = \"/o\"\n"), &none).unwrap_err();
    assert!(e.starts_with("output.path:"), "{e}");
    let e = resolve(&format!("{kafka}[output]\ndead_letter = \"/d\"\n"), &none).unwrap_err();
    assert!(e.starts_with("output.dead_letter:"), "{e}");
    let flags = parse_flags(&["--output", "/o"]);
    let e = resolve(&kafka, &flags).unwrap_err();
    assert!(e.starts_with("--output:"), "{e}");
    let e = resolve(
        "[input]\nsource = \"kafka\"\nfiles = [\"a.log\"]\n[kafka]\nbrokers = \"b\"\n",
        &none,
    )
    .unwrap_err();
    assert!(e.starts_with("input.files:"), "{e}");

    // Kafka flags without the kafka source.
    let flags = parse_flags(&["--group-id", "g"]);
    let e = resolve("", &flags).unwrap_err();
    assert!(e.starts_with("--group-id:") && e.contains("stdin"), "{e}");
    // Files with source "stdin" contradict; files alone mean source "files".
    let e = resolve("[input]\nsource = \"stdin\"\nfiles = [\"a.log\"]\n", &none).unwrap_err();
    assert!(e.starts_with("input.files:"), "{e}");
    let Ok(Io::Lines { files, .. }) = resolve("[input]\nfiles = [\"a.log\"]\n", &none) else {
        panic!("files alone are not read")
    };
    assert_eq!(files, vec![PathBuf::from("a.log")]);
    // A [kafka] section may stay when a file argument picks the files source.
    let flags = parse_flags(&["b.log"]);
    assert!(matches!(
        resolve(&kafka, &flags),
        Ok(Io::Lines { files, .. }) if files == vec![PathBuf::from("b.log")]
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
        .resolve(&Flags::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("input.format:"), "{e}");
    let e = parse("[[dataset]]\nname = \"geo\"\nstore = \"/s\"\n[http]\nlisten = \"nowhere\"\n")
        .unwrap()
        .resolve(&Flags::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("http.listen:"), "{e}");
    let e = parse("").unwrap().resolve(&Flags::default()).unwrap_err();
    assert!(e.to_string().contains("no data set"), "{e}");
}

#[test]
fn flags_override_the_file_and_work_alone() {
    let file =
        parse("[[dataset]]\nname = \"geo\"\nstore = \"/a\"\n[http]\nlisten = \"127.0.0.1:1\"\n")
            .unwrap();
    let flags = parse_flags(&[
        "--db",
        "asn=/b",
        "--watch",
        "geo=/in",
        "--listen",
        "127.0.0.1:2",
    ]);
    let s = file.resolve(&flags).unwrap();
    assert_eq!(s.listen, Some("127.0.0.1:2".parse().unwrap()));
    assert_eq!(s.datasets.len(), 2);
    assert_eq!(s.datasets[0].watch, Some(WatchSource::Dir("/in".into())));
    // A remote source, from a flag or the file; a bad one names its key.
    let s = FileConfig::default()
        .resolve(&parse_flags(&["--db", "/s", "--watch", "s3://bucket/geo/"]))
        .unwrap();
    assert!(matches!(s.datasets[0].watch, Some(WatchSource::Remote(_))));
    let e = parse("[[dataset]]\nname = \"geo\"\nstore = \"/s\"\nwatch = \"ftp://x/a.mmdb\"\n")
        .unwrap()
        .resolve(&parse_flags(&[]))
        .unwrap_err();
    assert!(e.to_string().starts_with("dataset.watch:"), "{e}");
    let e = FileConfig::default()
        .resolve(&parse_flags(&[
            "--db",
            "/s",
            "--watch",
            "geo=https://h/x.html",
        ]))
        .unwrap_err();
    assert!(e.to_string().starts_with("--watch:"), "{e}");
    // No file at all.
    let s = FileConfig::default()
        .resolve(&parse_flags(&["--db", "/only"]))
        .unwrap();
    assert_eq!(s.datasets[0].name, "whip");
    assert!(matches!(s.io, Io::Lines { ref files, .. } if files.is_empty()));
    assert!(s.listen.is_none());
    // A watch for an unknown data set is an error.
    let e = FileConfig::default()
        .resolve(&parse_flags(&["--db", "/only", "--watch", "geo=/x"]))
        .unwrap_err();
    assert!(e.to_string().starts_with("--watch:"), "{e}");
}

#[test]
fn kafka_needs_its_keys() {
    let file = parse(
        "[[dataset]]\nname = \"geo\"\nstore = \"/a\"\n[input]\nsource = \"kafka\"\n[kafka]\nbrokers = \"b:9092\"\n",
    )
    .unwrap();
    let e = file.resolve(&Flags::default()).unwrap_err();
    assert!(e.to_string().starts_with("kafka.input_topic"), "{e}");
    let file = parse(
        "[[dataset]]\nname = \"geo\"\nstore = \"/a\"\n[input]\nsource = \"kafka\"\n[kafka]\nbrokers = \"b:9092\"\ninput_topic = \"i\"\noutput_topic = \"o\"\ngroup_id = \"g\"\nproperties = { \"security.protocol\" = \"SSL\" }\n",
    )
    .unwrap();
    let s = file.resolve(&Flags::default()).unwrap();
    let Io::Kafka(k) = s.io else {
        panic!("not kafka")
    };
    assert_eq!(
        k.properties,
        vec![("security.protocol".into(), "SSL".into())]
    );
}

#[test]
fn http_limits_default_are_checked_and_flags_win() {
    use super::resolve::resolve_http;
    use crate::http::Limits;
    let none = HttpSection::default();
    assert_eq!(
        resolve_http(&none, &none).unwrap(),
        (None, Limits::default())
    );
    let file = HttpSection {
        header_timeout_seconds: Some(0.5),
        idle_timeout_seconds: Some(2.0),
        max_connections: Some(3),
        ..HttpSection::default()
    };
    let (_, l) = resolve_http(&none, &file).unwrap();
    assert_eq!(l.header_timeout, Duration::from_millis(500));
    assert_eq!(l.idle_timeout, Duration::from_secs(2));
    assert_eq!(l.max_connections, 3);
    let flags = HttpSection {
        max_connections: Some(7),
        ..HttpSection::default()
    };
    assert_eq!(resolve_http(&flags, &file).unwrap().1.max_connections, 7);
    // A refused value names what gave it.
    let bad = |h: HttpSection, from_file: bool| {
        let e = if from_file {
            resolve_http(&none, &h)
        } else {
            resolve_http(&h, &none)
        };
        e.unwrap_err().to_string()
    };
    let zero = HttpSection {
        header_timeout_seconds: Some(0.0),
        ..HttpSection::default()
    };
    assert!(bad(zero.clone(), true).starts_with("http.header_timeout_seconds"));
    assert!(bad(zero, false).starts_with("--http-header-timeout"));
    let nan = HttpSection {
        idle_timeout_seconds: Some(f64::NAN),
        ..HttpSection::default()
    };
    assert!(bad(nan, true).starts_with("http.idle_timeout_seconds"));
    let no_connections = HttpSection {
        max_connections: Some(0),
        ..HttpSection::default()
    };
    assert!(bad(no_connections, false).starts_with("--http-max-connections"));
}
