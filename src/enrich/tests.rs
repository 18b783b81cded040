//! The join on small data sets: times, policies, dead letters, output.

use super::*;
use crate::history::{History, Interner, SnapshotMeta};
use crate::index::Index;
use crate::logline::ParserConfig;
use crate::snapshot::SnapshotFile;
use std::sync::Arc;

fn dataset(name: &str, text: &str) -> DataSet {
    let f = SnapshotFile::from_lines("t", text).unwrap();
    let mut h = History::default();
    let meta = SnapshotMeta::of_file(&f);
    h.merge(&mut Interner::default(), &f, meta, false).unwrap();
    DataSet {
        name: name.into(),
        index: Arc::new(arc_swap::ArcSwap::from_pointee(Index::new(h))),
    }
}

fn run(
    enricher: &Enricher,
    text: &str,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, Counts) {
    let chunk = Chunk {
        seq: 0,
        source: "in.log".into(),
        first_line: 1,
        data: text.as_bytes().to_vec(),
        ..Chunk::default()
    };
    let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
    enricher.enrich_chunk(&chunk, &mut out, &mut dead, &mut counts);
    let parse = |b: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8(b.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (parse(&out), parse(&dead), counts)
}

#[test]
fn joins_each_data_set_at_the_line_time_and_dead_letters_the_rest() {
    let geo = dataset(
        "geo",
        r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#,
    );
    let asn = dataset(
        "asn",
        r#"{"begin":"1.2.0.0","end":"1.2.255.255","datetime":"2024-06-01T00:00:00Z","asn":7}"#,
    );
    let e = Enricher::new(
        LineParser::new(ParserConfig::default()).unwrap(),
        vec![geo, asn],
        EnrichOptions::default(),
    );
    let text = concat!(
        "1.2.3.4 - - [01/Mar/2024:10:00:00 +0100] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"\n",
        "1.2.3.4 - - [01/Jul/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"\n",
        "garbage\n",
        "\n",
        "{\"ip\":\"9.9.9.9\",\"time\":\"2024-07-01\"}\n",
    );
    let (out, dead, counts) = run(&e, text);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["timestamp"], "2024-03-01T09:00:00Z");
    assert_eq!(out[0]["geo"]["cc"], "AU");
    assert_eq!(out[0]["asn"], serde_json::Value::Null);
    assert_eq!(out[1]["asn"]["asn"], 7);
    assert_eq!(out[1]["line"], text.lines().nth(1).unwrap());
    assert_eq!(out[1]["status"], 200);
    assert_eq!(out[2]["fields"]["ip"], "9.9.9.9");
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["source"], "in.log:3");
    assert_eq!(dead[1]["reason"], "empty line");
    assert_eq!(
        counts,
        Counts {
            read: 5,
            enriched: 3,
            dead_lettered: 2,
            matched: vec![2, 1],
            // asn's first snapshot is 2024-06-01: the March line is older.
            before_first: vec![0, 1],
            ..Counts::default()
        }
    );
}

#[test]
fn lines_without_time_use_at_and_junk_is_explained() {
    let geo = dataset(
        "whip",
        r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#,
    );
    let e = Enricher::new(
        LineParser::new(ParserConfig::default()).unwrap(),
        vec![geo],
        EnrichOptions {
            include_line: false,
            missing_time: MissingTime::At(Timestamp::parse("2024-02-01").unwrap()),
            max_line_bytes: 100,
            ..EnrichOptions::default()
        },
    );
    let mut text = b"{\"ip\":\"1.2.3.9\"}\n\xff\xfe binary\n".to_vec();
    text.extend_from_slice(&[b'x'; 150]);
    text.push(b'\n');
    let chunk = Chunk {
        data: text,
        source: "s".into(),
        first_line: 1,
        ..Chunk::default()
    };
    let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
    e.enrich_chunk(&chunk, &mut out, &mut dead, &mut counts);
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["timestamp"], "2024-02-01T00:00:00Z");
    assert_eq!(out["time_source"], "at");
    assert_eq!(out["whip"]["cc"], "AU");
    assert!(out.get("line").is_none());
    let dead = String::from_utf8(dead).unwrap();
    assert!(dead.contains("invalid UTF-8 at byte 0"), "{dead}");
    assert!(dead.contains("line longer than 100 bytes"), "{dead}");
    assert_eq!(counts.dead_lettered, 2);
}

const AU_2024: &str =
    r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#;

fn enricher(options: EnrichOptions) -> Enricher {
    Enricher::new(
        LineParser::new(ParserConfig::default()).unwrap(),
        vec![dataset("geo", AU_2024)],
        options,
    )
}

fn chunk(text: &str, read_at: Option<Timestamp>) -> Chunk {
    Chunk {
        source: "in.log".into(),
        first_line: 1,
        data: text.as_bytes().to_vec(),
        read_at,
        ..Chunk::default()
    }
}

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_line_without_time_is_a_dead_letter_from_a_file_and_marked_when_live() {
    let no_time = "{\"ip\":\"1.2.3.4\",\"path\":\"/\"}\n";
    let now = Timestamp::parse("2024-05-01").unwrap();
    let cases = [
        // (policy, read_at, dead-lettered, time_source)
        (MissingTime::ByInput, None, true, None),
        (MissingTime::ByInput, Some(now), false, Some("read")),
        (MissingTime::Read, None, false, Some("read")),
        (MissingTime::DeadLetter, Some(now), true, None),
        (MissingTime::At(now), None, false, Some("at")),
    ];
    for (policy, read_at, dead_lettered, source) in cases {
        let e = enricher(EnrichOptions {
            missing_time: policy,
            ..EnrichOptions::default()
        });
        let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
        e.enrich_chunk(&chunk(no_time, read_at), &mut out, &mut dead, &mut counts);
        let case = format!("{policy:?} {read_at:?}");
        assert_eq!(counts.read, 1, "{case}");
        if dead_lettered {
            assert_eq!(lines(&dead)[0]["reason"], NO_EVENT_TIME, "{case}");
            assert_eq!((counts.no_time, counts.dead_lettered), (1, 1), "{case}");
            assert!(out.is_empty(), "{case}");
        } else {
            let o = &lines(&out)[0];
            assert_eq!(o["time_source"].as_str(), source, "{case}");
            assert_eq!(o["geo"]["cc"], "AU", "{case}");
            assert_eq!((counts.time_substituted, counts.enriched), (1, 1), "{case}");
        }
    }
    // A line with its own time is never marked.
    let e = enricher(EnrichOptions::default());
    let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
    let own = "{\"ip\":\"1.2.3.4\",\"time\":\"2024-03-01\"}\n";
    e.enrich_chunk(&chunk(own, Some(now)), &mut out, &mut dead, &mut counts);
    assert!(lines(&out)[0].get("time_source").is_none());
    assert_eq!(counts.time_substituted, 0);
}

#[test]
fn times_before_the_first_snapshot_are_counted_apart_or_answered_from_it() {
    let text = concat!(
        "{\"ip\":\"1.2.3.4\",\"time\":\"2023-06-01\"}\n",
        "{\"ip\":\"1.2.3.4\",\"time\":\"2024-06-01\"}\n",
        "{\"ip\":\"9.9.9.9\",\"time\":\"2024-06-01\"}\n",
    );
    let run = |before_first| {
        let e = enricher(EnrichOptions {
            before_first,
            ..EnrichOptions::default()
        });
        let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
        e.enrich_chunk(&chunk(text, None), &mut out, &mut dead, &mut counts);
        (lines(&out), counts, e)
    };
    let (out, counts, e) = run(BeforeFirst::NoMatch);
    assert_eq!(out[0]["geo"], serde_json::Value::Null);
    assert_eq!((counts.matched[0], counts.before_first[0]), (1, 1));
    assert_eq!(
        e.describe_matches(&counts),
        "geo: 1 matched, 2 unmatched (1 before the first snapshot (2024-01-01T00:00:00Z), \
         1 no range contains the address)"
    );
    let warnings = e.warnings(&counts);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("--before-first earliest"),
        "{warnings:?}"
    );

    let (out, counts, e) = run(BeforeFirst::Earliest);
    assert_eq!(out[0]["geo"]["cc"], "AU");
    assert_eq!(out[0]["timestamp"], "2023-06-01T00:00:00Z");
    assert_eq!(out[2]["geo"], serde_json::Value::Null);
    assert_eq!((counts.matched[0], counts.before_first[0]), (2, 1));
    assert!(e.warnings(&counts).is_empty());
}

#[test]
fn a_truncated_last_line_is_a_dead_letter() {
    let e = enricher(EnrichOptions::default());
    let mut c = chunk(
        "1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5\n1.2.3.4 - - [01/Ma\n",
        None,
    );
    c.truncated = true;
    let (mut out, mut dead, mut counts) = (Vec::new(), Vec::new(), Counts::default());
    e.enrich_chunk(&c, &mut out, &mut dead, &mut counts);
    let dead = lines(&dead);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], TRUNCATED_INPUT);
    assert_eq!(dead[0]["source"], "in.log:2");
    assert_eq!(
        (counts.read, counts.enriched, counts.dead_lettered),
        (2, 1, 1)
    );
}

#[test]
fn ecs_and_chosen_fields_follow_an_index_swap_and_kafka_messages() {
    let geo = dataset("geo", AU_2024);
    let index = geo.index.clone();
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "geo".to_string(),
        crate::schema::select::parse_items("geo=cc", "cc,datetime").unwrap(),
    );
    let ecs = |fields: std::collections::BTreeMap<_, _>| {
        Enricher::new(
            LineParser::new(ParserConfig::default()).unwrap(),
            vec![geo.clone()],
            EnrichOptions {
                output: crate::schema::OutputSchema {
                    schema: crate::schema::Schema::Ecs,
                    fields,
                    ecs: Default::default(),
                },
                ..EnrichOptions::default()
            },
        )
    };
    let line = "1.2.3.4 - - [01/Mar/2024:10:00:00 +0100] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"\n";
    let e = ecs(Default::default());
    let (out, _, counts) = run(&e, line);
    assert_eq!(out[0]["source"]["geo"]["country_iso_code"], "AU");
    assert_eq!(counts.matched, [1]);
    // A load swaps the index: the next chunk is written from the new one.
    let nz = r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"NZ"}"#;
    index.store(dataset("geo", nz).index.load_full());
    let (out, _, _) = run(&e, line);
    assert_eq!(out[0]["source"]["geo"]["country_iso_code"], "NZ");
    // A Kafka message through enrich_one, with chosen fields.
    let e = ecs(fields);
    let mut msg = Vec::new();
    let mut counts = Counts::default();
    let read = (Timestamp::parse("2030-01-01").unwrap(), TimeOrigin::Kafka);
    e.enrich_one(
        line.trim_end().as_bytes(),
        read,
        true,
        &mut msg,
        &mut counts,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&msg).unwrap();
    assert_eq!(v["whipstream"]["time_source"], "kafka");
    assert_eq!(
        v["source"]["geo"],
        serde_json::json!({"country_iso_code": "NZ"})
    );
    assert_eq!(
        v["whipstream"]["geo"],
        serde_json::json!({"datetime": "2024-01-01T00:00:00Z"})
    );
}
