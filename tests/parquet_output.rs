//! Parquet output read by a real consumer: DuckDB (PyPI `duckdb`, installed by
//! scripts/test.sh into `$WHIPSTREAM_TOOLS_VENV` or ~/.cache/whipstream-duckdb-venv)
//! reads the JSON output with `read_json_auto` and the Parquet outputs with
//! `read_parquet`, on the shared acceptance log enriched with the geo and ASN
//! data sets: typed columns, the same rows, the same counts per country; the
//! partitioned output reads back as one table. And what does not fit a column
//! is a counted dead letter, never a dropped or nulled row.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

/// The virtualenv with DuckDB's Python package.
fn venv() -> PathBuf {
    let dir = std::env::var("WHIPSTREAM_TOOLS_VENV").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/whipstream-duckdb-venv"),
        PathBuf::from,
    );
    assert!(
        dir.join("bin/python").exists(),
        "the DuckDB virtualenv is not at {}: run scripts/test.sh (it installs it)",
        dir.display()
    );
    dir
}

/// Runs DuckDB `queries` (name -> SQL, `$JSON`, `$PARQUET`, `$DIR` replaced by
/// paths) and returns each result as rows of JSON values (`str()` of each
/// value, so types print as DuckDB names them).
fn duckdb(queries: &[(&str, String)]) -> Value {
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
out = {}
for name, sql in json.loads(sys.argv[1]):
    out[name] = [[None if v is None else str(v) for v in row] for row in con.execute(sql).fetchall()]
print(json.dumps(out))
"#;
    let q = serde_json::to_string(queries).unwrap();
    let o = Command::new(venv().join("bin/python"))
        .args(["-c", script, &q])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: duckdb printed {stdout}"))
}

/// The acceptance log enriched with geo and asn: JSON lines, one Parquet file
/// and a partitioned directory, each with the run's stderr.
struct Outputs {
    _dir: tempfile::TempDir,
    json: PathBuf,
    parquet: PathBuf,
    days: PathBuf,
    parquet_stderr: String,
    days_stderr: String,
}

fn outputs() -> &'static Outputs {
    static OUT: OnceLock<Outputs> = OnceLock::new();
    OUT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let asn = dir.path().join("asn");
        ok(&[
            "load",
            "--db",
            s(&asn),
            s(&shared_data().join("snapshots/asn")),
        ]);
        let log = shared_data().join("logs/accept-apache_logs.log");
        let geo = format!("geo={}", s(geoip_store()));
        let asn = format!("asn={}", s(&asn));
        let json = dir.path().join("out.jsonl");
        let parquet = dir.path().join("out.parquet");
        let days = dir.path().join("table");
        let enrich = |extra: &[&str]| {
            let mut args = vec!["enrich", "--db", &geo, "--db", &asn];
            args.extend_from_slice(extra);
            args.push(s(&log));
            let o = run(&args, None);
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            assert!(o.status.success(), "enrich {args:?}: {stderr}");
            stderr
        };
        enrich(&["--output", s(&json)]);
        let parquet_stderr = enrich(&["--output", s(&parquet)]);
        // A backfill reads its logs in time order: the same lines sorted by
        // their event time (the acceptance log's times are shuffled over two
        // years, which would make a file per line or so).
        let text = std::fs::read_to_string(&log).unwrap();
        let times = std::fs::read_to_string(&json).unwrap();
        let mut timed: Vec<(String, &str)> = times
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["timestamp"].to_string())
            .zip(text.lines())
            .collect();
        timed.sort();
        let sorted = dir.path().join("sorted.log");
        let sorted_text: String = timed.iter().map(|(_, l)| format!("{l}\n")).collect();
        std::fs::write(&sorted, sorted_text).unwrap();
        let mut args = vec!["enrich", "--db", &geo, "--db", &asn];
        args.extend_from_slice(&["--output-format", "parquet", "--partition-by", "day"]);
        args.extend_from_slice(&["--output", s(&days), s(&sorted)]);
        let o = run(&args, None);
        let days_stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "enrich {args:?}: {days_stderr}");
        Outputs {
            _dir: dir,
            json,
            parquet,
            days,
            parquet_stderr,
            days_stderr,
        }
    })
}

fn sql(template: &str, o: &Outputs) -> String {
    template
        .replace("$JSON", &format!("read_json_auto('{}')", s(&o.json)))
        .replace("$PARQUET", &format!("read_parquet('{}')", s(&o.parquet)))
        .replace(
            "$DIR",
            &format!(
                "read_parquet('{}/**/*.parquet', hive_partitioning = true)",
                s(&o.days)
            ),
        )
}

fn types(result: &Value) -> Vec<(String, String)> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
        .collect()
}

fn type_of<'a>(types: &'a [(String, String)], column: &str) -> &'a str {
    types
        .iter()
        .find(|(c, _)| c == column)
        .map(|(_, t)| t.as_str())
        .unwrap_or_else(|| panic!("no column {column}: {types:?}"))
}

#[test]
fn duckdb_reads_typed_columns_and_the_same_rows_as_the_json_output() {
    let o = outputs();
    let r = duckdb(&[
        ("parquet_types", sql("DESCRIBE SELECT * FROM $PARQUET", o)),
        ("json_types", sql("DESCRIBE SELECT * FROM $JSON", o)),
        (
            "counts",
            sql(
                "SELECT (SELECT count(*) FROM $PARQUET), (SELECT count(*) FROM $JSON)",
                o,
            ),
        ),
        (
            "parquet_countries",
            sql(
                "SELECT geo.country, count(*) FROM $PARQUET GROUP BY ALL ORDER BY ALL",
                o,
            ),
        ),
        (
            "json_countries",
            sql(
                "SELECT geo.country, count(*) FROM $JSON GROUP BY ALL ORDER BY ALL",
                o,
            ),
        ),
        // Every row of one is a row of the other, duplicates counted.
        (
            "differences",
            sql(
                "WITH p AS (SELECT ip, timestamp, status, bytes, path, user_agent, \
                   geo.country AS c, geo.datetime AS gd, asn.asn AS a, asn.as_org AS org \
                   FROM $PARQUET), \
                 j AS (SELECT ip, CAST(timestamp AS TIMESTAMPTZ), status, bytes, path, \
                   user_agent, geo.country, CAST(geo.datetime AS TIMESTAMPTZ), asn.asn, \
                   asn.as_org FROM $JSON) \
                 SELECT (SELECT count(*) FROM (SELECT * FROM p EXCEPT ALL SELECT * FROM j)), \
                        (SELECT count(*) FROM (SELECT * FROM j EXCEPT ALL SELECT * FROM p)), \
                        (SELECT count(*) FROM p WHERE c IS NOT NULL), \
                        (SELECT count(*) FROM p WHERE a IS NOT NULL)",
                o,
            ),
        ),
    ]);
    let p = types(&r["parquet_types"]);
    assert_eq!(type_of(&p, "timestamp"), "TIMESTAMP WITH TIME ZONE");
    assert_eq!(type_of(&p, "status"), "BIGINT");
    assert_eq!(type_of(&p, "bytes"), "BIGINT");
    assert_eq!(type_of(&p, "ip"), "VARCHAR");
    assert_eq!(
        type_of(&p, "geo"),
        "STRUCT(\"begin\" VARCHAR, \"end\" VARCHAR, datetime TIMESTAMP WITH TIME ZONE, country VARCHAR)"
    );
    assert_eq!(
        type_of(&p, "asn"),
        "STRUCT(\"begin\" VARCHAR, \"end\" VARCHAR, datetime TIMESTAMP WITH TIME ZONE, as_org VARCHAR, asn BIGINT)"
    );
    // The JSON output read as DuckDB infers it: numbers and records alike.
    let j = types(&r["json_types"]);
    assert_eq!(type_of(&j, "status"), "BIGINT");
    assert_eq!(type_of(&j, "bytes"), "BIGINT");
    assert!(type_of(&j, "geo").starts_with("STRUCT("), "{j:?}");

    assert_eq!(r["counts"], serde_json::json!([["10000", "10000"]]));
    assert_eq!(r["parquet_countries"], r["json_countries"]);
    assert!(r["parquet_countries"].as_array().unwrap().len() > 50);
    let d = &r["differences"][0];
    assert_eq!(
        (d[0].as_str(), d[1].as_str()),
        (Some("0"), Some("0")),
        "{d}"
    );
    // The comparison is of real answers, not of nulls.
    assert!(d[2].as_str().unwrap().parse::<u64>().unwrap() > 5000, "{d}");
    assert!(d[3].as_str().unwrap().parse::<u64>().unwrap() > 100, "{d}");
    assert!(
        o.parquet_stderr
            .contains("parquet: 10000 rows in 1 file(s)"),
        "{}",
        o.parquet_stderr
    );
}

/// The ECS schema's lines as Parquet: the columns come from the same field
/// list as the writer's, so every line is a row (none dead-lettered as "no such
/// column"), typed, and equal in counts to the ECS JSON output.
#[test]
fn ecs_output_as_parquet_has_every_line_typed_and_the_json_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = shared_data().join("logs/accept-apache_logs.log");
    let geo = format!("geo={}", s(geoip_store()));
    let json = dir.path().join("ecs.jsonl");
    let parquet = dir.path().join("ecs.parquet");
    let mut stderrs = Vec::new();
    for out in [&json, &parquet] {
        let args = [
            "enrich",
            "--schema",
            "ecs",
            "--db",
            &geo,
            "--output",
            s(out),
            s(&log),
        ];
        let o = run(&args, None);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "enrich {args:?}: {stderr}");
        stderrs.push(stderr);
    }
    assert!(
        stderrs[1].contains("parquet: 10000 rows in 1 file(s)"),
        "{}",
        stderrs[1]
    );
    let p = format!("read_parquet('{}')", s(&parquet));
    let j = format!("read_json_auto('{}')", s(&json));
    let r = duckdb(&[
        ("types", format!("DESCRIBE SELECT * FROM {p}")),
        (
            "counts",
            format!("SELECT (SELECT count(*) FROM {p}), (SELECT count(*) FROM {j})"),
        ),
        (
            "parquet_countries",
            format!(
                "SELECT source.geo.country_iso_code, count(*) FROM {p} GROUP BY ALL ORDER BY ALL"
            ),
        ),
        (
            "json_countries",
            format!(
                "SELECT source.geo.country_iso_code, count(*) FROM {j} GROUP BY ALL ORDER BY ALL"
            ),
        ),
        (
            "statuses",
            format!("SELECT count(*) FROM {p} WHERE http.response.status_code BETWEEN 100 AND 599"),
        ),
    ]);
    let t = types(&r["types"]);
    assert_eq!(type_of(&t, "@timestamp"), "TIMESTAMP WITH TIME ZONE");
    assert!(type_of(&t, "http").contains("status_code BIGINT"), "{t:?}");
    assert_eq!(r["counts"], serde_json::json!([["10000", "10000"]]));
    assert_eq!(r["parquet_countries"], r["json_countries"]);
    assert!(r["parquet_countries"].as_array().unwrap().len() > 50);
    let statuses: u64 = r["statuses"][0][0].as_str().unwrap().parse().unwrap();
    assert!(statuses > 9000, "{statuses}");
}

#[test]
fn the_partitioned_output_reads_back_as_one_table_of_event_days() {
    let o = outputs();
    let r = duckdb(&[
        (
            "counts",
            sql(
                "SELECT (SELECT count(*) FROM $DIR), (SELECT count(*) FROM $PARQUET), \
                 (SELECT count(DISTINCT day) FROM $DIR)",
                o,
            ),
        ),
        (
            "dir_countries",
            sql(
                "SELECT geo.country, count(*) FROM $DIR GROUP BY ALL ORDER BY ALL",
                o,
            ),
        ),
        (
            "file_countries",
            sql(
                "SELECT geo.country, count(*) FROM $PARQUET GROUP BY ALL ORDER BY ALL",
                o,
            ),
        ),
        // Each row is in the directory of its own event day.
        (
            "misplaced",
            sql(
                "SELECT count(*) FROM $DIR WHERE CAST(day AS DATE) <> CAST(timestamp AS DATE)",
                o,
            ),
        ),
    ]);
    let c = &r["counts"][0];
    assert_eq!(
        (c[0].as_str(), c[1].as_str()),
        (Some("10000"), Some("10000"))
    );
    let days: u64 = c[2].as_str().unwrap().parse().unwrap();
    assert!(days > 100, "{days}");
    assert_eq!(r["dir_countries"], r["file_countries"]);
    assert_eq!(r["misplaced"], serde_json::json!([["0"]]));
    assert!(
        o.days_stderr.contains(&format!(
            "parquet: 10000 rows in {days} file(s) over {days} day(s)"
        )),
        "{}",
        o.days_stderr
    );
    // Only final names: no temporary file is left.
    assert!(all_files(&o.days)
        .iter()
        .all(|f| f.ends_with(".parquet") && !f.contains("inprogress")));
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
            out.push(f.unwrap().path().display().to_string());
        }
    }
    out
}

#[test]
fn a_value_that_does_not_fit_its_column_is_a_counted_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.parquet");
    let dead = dir.path().join("dead.jsonl");
    // A byte count beyond a signed 64-bit integer: the JSON output can carry
    // it, a BIGINT column cannot.
    let lines = "{\"remote_addr\":\"1.0.1.5\",\"time\":\"2024-10-02T10:00:00Z\",\"status\":200,\"body_bytes_sent\":5}\n\
                 {\"remote_addr\":\"1.0.1.6\",\"time\":\"2024-10-02T10:00:01Z\",\"status\":200,\"body_bytes_sent\":18446744073709551615}\n";
    let o = run(
        &[
            "enrich",
            "--db",
            s(geoip_store()),
            "--format",
            "json",
            "--output",
            s(&out),
            "--dead-letter",
            s(&dead),
            "-",
        ],
        Some(lines.as_bytes()),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 lines read, 1 enriched") && stderr.contains("1 dead-lettered"),
        "{stderr}"
    );
    assert!(stderr.contains("parquet: 1 rows in 1 file(s)"), "{stderr}");
    let letters = std::fs::read_to_string(&dead).unwrap();
    let letter: Value = serde_json::from_str(letters.trim()).unwrap();
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("bytes: 18446744073709551615 does not fit a 64-bit integer column"),
        "{letter}"
    );
    assert!(letter["line"].as_str().unwrap().contains("1.0.1.6"));
    let r = duckdb(&[(
        "rows",
        format!("SELECT ip, bytes FROM read_parquet('{}')", s(&out)),
    )]);
    assert_eq!(r["rows"], serde_json::json!([["1.0.1.5", "5"]]));
}

#[test]
fn parquet_needs_an_output_and_partitioning_needs_parquet() {
    let db = s(geoip_store());
    let err = fails(&["enrich", "--db", db, "--output-format", "parquet", "-"]);
    assert!(err.contains("give --output"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.jsonl");
    let err = fails(&[
        "enrich",
        "--db",
        db,
        "--partition-by",
        "day",
        "--output",
        s(&json),
        "-",
    ]);
    assert!(err.contains("partitioning is for parquet output"), "{err}");
}
