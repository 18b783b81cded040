//! Property test: the store and index answer exactly like a naive model of the
//! semantics (complete snapshots, greatest datetime <= t), over random snapshots
//! with removed ranges, IPv6, out-of-order loads and replaces, through a real
//! RocksDB store and back and through the persisted index file (written after
//! every commit as a load does, then mapped by a fresh open); and `export` writes
//! each snapshot back exactly as it was loaded, so that it reloads to the same
//! answers.

use std::collections::BTreeMap;

use proptest::prelude::*;
use whipstream::history::{History, Interner, MergeError, Merged, SnapshotMeta};
use whipstream::index::Index;
use whipstream::index_file::{self, Check};
use whipstream::ip::IpKey;
use whipstream::snapshot::SnapshotFile;
use whipstream::store::{Base, Mode, Store};
use whipstream::time::Timestamp;

const SPAN: u128 = 24;

fn v4(i: u128) -> IpKey {
    IpKey(IpKey::parse("10.0.0.0").unwrap().0 + i)
}
fn v6(i: u128) -> IpKey {
    IpKey(IpKey::parse("2001:db8::").unwrap().0 + i)
}

/// One generated snapshot: a day and, per family, segments of a small space each
/// either absent or carrying one of a few payloads.
#[derive(Clone, Debug)]
struct Snap {
    day: u32,
    ranges: Vec<(IpKey, IpKey, u8)>,
}

fn family_ranges(base: fn(u128) -> IpKey) -> impl Strategy<Value = Vec<(IpKey, IpKey, u8)>> {
    (
        proptest::collection::btree_set(1..SPAN, 0..6),
        proptest::collection::vec(0u8..4, 7),
    )
        .prop_map(move |(cuts, values)| {
            let mut bounds: Vec<u128> = vec![0];
            bounds.extend(cuts);
            bounds.push(SPAN);
            bounds
                .windows(2)
                .zip(values)
                .filter(|(_, v)| *v != 0)
                .map(|(w, v)| (base(w[0]), base(w[1] - 1), v))
                .collect()
        })
}

fn snap() -> impl Strategy<Value = Snap> {
    (0u32..6, family_ranges(v4), family_ranges(v6)).prop_map(|(day, mut a, b)| {
        a.extend(b);
        Snap { day, ranges: a }
    })
}

fn text(s: &Snap) -> String {
    let dt = format!("2024-01-{:02}T00:00:00Z", s.day * 3 + 1);
    let mut out = String::new();
    for (b, e, v) in &s.ranges {
        out.push_str(&format!(
            "{{\"begin\":\"{b}\",\"end\":\"{e}\",\"datetime\":\"{dt}\",\"v\":{v}}}\n"
        ));
    }
    if out.is_empty() {
        // An empty file is not a snapshot; a snapshot with one far-away range is.
        out = format!("{{\"begin\":\"::1\",\"end\":\"::1\",\"datetime\":\"{dt}\",\"v\":9}}\n");
    }
    out
}

/// The model: datetime -> (text, file).
type Model = BTreeMap<i64, (String, SnapshotFile)>;

fn model_answer(model: &Model, ip: IpKey, t: Timestamp) -> Option<String> {
    let (_, (_, file)) = model.range(..=t.as_micros()).next_back()?;
    let r = file
        .ranges
        .iter()
        .find(|r| { r.begin } <= ip && ip <= { r.end })?;
    Some(format!(
        "{{\"begin\":\"{}\",\"end\":\"{}\",\"datetime\":\"{}\",{}}}",
        { r.begin },
        { r.end },
        file.datetime_text,
        String::from_utf8_lossy(file.payload(r))
    ))
}

fn check_against_model(index: &Index, model: &Model) -> Result<(), TestCaseError> {
    let mut probes: Vec<IpKey> = (0..=SPAN).map(v4).chain((0..=SPAN).map(v6)).collect();
    probes.extend([IpKey::parse("::1").unwrap(), IpKey::MIN, IpKey::MAX]);
    for day in 0..20 {
        let t = Timestamp::parse(&format!("2024-01-{:02}T12:00:00Z", day + 1)).unwrap();
        for &ip in &probes {
            let got = index.at(ip, t).map(|m| m.to_json());
            prop_assert_eq!(got, model_answer(model, ip, t), "{} at {}", ip, t);
        }
    }
    // The batched path answers the same.
    let queries: Vec<(IpKey, Timestamp)> = (0..20)
        .flat_map(|day| {
            let t = Timestamp::parse(&format!("2024-01-{:02}T00:00:00Z", day + 1)).unwrap();
            probes.iter().map(move |&ip| (ip, t))
        })
        .collect();
    let mut batched = Vec::new();
    index.at_many(&queries, &mut batched);
    for (&(ip, t), got) in queries.iter().zip(&batched) {
        prop_assert_eq!(
            got.map(|m| m.to_json()),
            model_answer(model, ip, t),
            "batched {} at {}",
            ip,
            t
        );
    }
    for &ip in &probes {
        let latest_t = Timestamp::MAX;
        prop_assert_eq!(
            index.latest(ip).map(|m| m.to_json()),
            model_answer(model, ip, latest_t)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_and_index_agree_with_the_model(
        ops in proptest::collection::vec((snap(), any::<bool>()), 1..8)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Mode::ReadWrite).unwrap();
        let mut model = Model::new();
        let mut history = History::default();
        for (s, replace) in &ops {
            let body = text(s);
            let file = SnapshotFile::from_lines("gen.jsonl", &body).unwrap();
            let key = file.datetime.as_micros();
            let before = Base::of(&history);
            let mut interner = Interner::new(&history);
            let result = history.merge(&mut interner, &file, SnapshotMeta::of_file(&file), *replace);
            match model.get(&key) {
                Some((old, _)) if *old == body => prop_assert_eq!(result.unwrap(), Merged::Unchanged),
                Some(_) if !replace => {
                    let taken = matches!(result, Err(MergeError::DatetimeTaken { .. }));
                    prop_assert!(taken, "expected DatetimeTaken, got {:?}", result);
                    continue;
                }
                Some(_) => prop_assert_eq!(result.unwrap(), Merged::Replaced),
                None => prop_assert_eq!(result.unwrap(), Merged::Added),
            }
            model.insert(key, (body, file));
            let problems = history.check(5);
            prop_assert!(problems.is_empty(), "{:?}", problems);
            let state = store.commit(&before, &history).unwrap().state;
            // As a load does: the index file of the new state, mapped.
            let written = index_file::rebuild(dir.path(), &history, state).unwrap();
            prop_assert!(written.image().is_mapped());
            prop_assert_eq!(written.state(), state);
        }
        check_against_model(&Index::new(history.clone()), &model)?;
        let back = store.read_history().unwrap();
        let problems = back.check(5);
        prop_assert!(problems.is_empty(), "{:?}", problems);
        check_against_model(&Index::new(back.clone()), &model)?;
        // A fresh open maps the file the last commit left (no rebuild) and it
        // is byte for byte what the store's history gives.
        let mapped = index_file::open(dir.path(), Check::Full).unwrap();
        prop_assert!(mapped.image().is_mapped());
        prop_assert_eq!(mapped.state(), store.state().unwrap());
        let status = index_file::verify(dir.path(), &back, store.state().unwrap());
        prop_assert!(matches!(status, index_file::Status::Ok { .. }), "{:?}", status);
        check_against_model(&mapped, &model)?;
    }

    #[test]
    fn export_writes_each_snapshot_back_and_it_reloads_to_the_same_answers(
        snaps in proptest::collection::vec(snap(), 1..6)
    ) {
        let mut history = History::default();
        let mut interner = Interner::default();
        let mut loaded: BTreeMap<i64, String> = BTreeMap::new();
        for s in &snaps {
            let body = text(s);
            let file = SnapshotFile::from_lines("gen.jsonl", &body).unwrap();
            let key = file.datetime.as_micros();
            if loaded.contains_key(&key) {
                continue;
            }
            history.merge(&mut interner, &file, SnapshotMeta::of_file(&file), false).unwrap();
            loaded.insert(key, body);
        }
        let index = Index::new(history);
        let mut probes: Vec<IpKey> = (0..=SPAN).map(v4).chain((0..=SPAN).map(v6)).collect();
        probes.push(IpKey::parse("::1").unwrap());
        for (&micros, body) in &loaded {
            let t = Timestamp::from_micros(micros);
            let mut out = Vec::new();
            whipstream::export::write_snapshot_at(&index, t, &mut out).unwrap().unwrap();
            let exported = String::from_utf8(out).unwrap();
            prop_assert_eq!(&exported, body);
            // Loaded alone, the export answers as the original did at that time.
            let file = SnapshotFile::from_lines("export.jsonl", &exported).unwrap();
            let mut alone = History::default();
            alone.merge(&mut Interner::default(), &file, SnapshotMeta::of_file(&file), false).unwrap();
            let alone = Index::new(alone);
            for &ip in &probes {
                prop_assert_eq!(
                    alone.latest(ip).map(|m| m.to_json()),
                    index.at(ip, t).map(|m| m.to_json()),
                    "{} at {}", ip, t
                );
            }
        }
    }
}
