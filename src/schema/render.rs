//! Per-payload output bytes, built once per index (at start and after every
//! load), never per line.
//!
//! For every distinct payload of every data set a [`Tables`] holds the bytes
//! the writer splices in: the chosen fields (`--fields`) of the whipstream
//! schema, or for ECS the inside of `source.geo`, of `source.as` and of
//! `whipstream.<name>` (the fields with no ECS name). The writer only looks up
//! a payload id and copies bytes, as it does for whole records.
//!
//! Which data set fills `source.geo` and `source.as` is decided here, in data
//! set order: the first whose mapping targets one takes it; a later data set
//! mapping to a taken target keeps those fields under `whipstream.<name>`
//! (said once in the log), so no key is ever written twice.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use serde_json::{Map, Value};

use super::mapping::{self, EcsField, EcsMap, Shape, Target};
use super::select::Selection;
use super::{DataSetOutput, Schema};
use crate::history::Snapshot;
use crate::index::Index;
use crate::json::write_key;

/// One data set's tables at one index.
#[derive(Debug, Default)]
pub struct SetTable {
    /// Payload `p`'s parts are `bytes[offsets[3p]..offsets[3p+1]]` (record or
    /// `whipstream.<name>` fields), `..offsets[3p+2]` (`source.geo`) and
    /// `..offsets[3p+3]` (`source.as`), each a list of `"key":value` pairs.
    offsets: Vec<u32>,
    bytes: Vec<u8>,
    /// The mapping in force (after targets taken by earlier data sets).
    pub map: EcsMap,
    /// What the payloads hold.
    pub shape: Shape,
    /// Each snapshot's datetime as RFC 3339 UTC, quoted, by position.
    datetimes: Vec<Box<[u8]>>,
    /// The address and size of the index's snapshot list, to find a match's
    /// snapshot position from its reference.
    snapshots_at: usize,
}

/// The three parts of a payload's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts<'a> {
    pub record: &'a [u8],
    pub geo: &'a [u8],
    pub as_: &'a [u8],
}

impl SetTable {
    /// Writes the datetime of a match's snapshot as RFC 3339 UTC, quoted.
    #[inline]
    pub fn write_datetime(&self, snapshot: &Snapshot, out: &mut Vec<u8>) {
        let size = std::mem::size_of::<Snapshot>().max(1);
        let offset = (snapshot as *const Snapshot as usize).wrapping_sub(self.snapshots_at);
        match self.datetimes.get(offset / size) {
            Some(dt) if offset.is_multiple_of(size) => out.extend_from_slice(dt),
            // Not a snapshot of this table's index: computed (never happens
            // when the table and the match come from the same index).
            _ => {
                out.push(b'"');
                snapshot.meta.instant().write_rfc3339(out);
                out.push(b'"');
            }
        }
    }

    #[inline]
    pub fn parts(&self, payload: u32) -> Parts<'_> {
        let p = payload as usize * 3;
        let at = |i: usize| self.offsets.get(p + i).map_or(0, |&o| o as usize);
        let part = |a: usize, b: usize| self.bytes.get(at(a)..at(b)).unwrap_or_default();
        Parts {
            record: part(0, 1),
            geo: part(1, 2),
            as_: part(2, 3),
        }
    }
}

/// The tables of every data set, for the indexes they were built from.
#[derive(Debug)]
pub struct Tables {
    indexes: Vec<Arc<Index>>,
    pub sets: Vec<SetTable>,
}

/// Keeps the tables current: rebuilt when any data set's index was swapped.
#[derive(Debug)]
pub struct Renderer {
    schema: Schema,
    outputs: Vec<DataSetOutput>,
    current: ArcSwapOption<Tables>,
    /// Serialises rebuilds; holds the mappings last logged.
    building: Mutex<Vec<Option<EcsMap>>>,
}

impl Renderer {
    pub fn new(schema: Schema, outputs: Vec<DataSetOutput>) -> Renderer {
        Renderer {
            schema,
            outputs,
            current: ArcSwapOption::empty(),
            building: Mutex::new(Vec::new()),
        }
    }

    /// The tables for `indexes` (one per data set, in order): the current ones,
    /// or new ones built once when an index changed.
    pub fn tables(&self, indexes: &[Arc<Index>]) -> Arc<Tables> {
        let fresh = |t: &Tables| {
            t.indexes.len() == indexes.len()
                && t.indexes
                    .iter()
                    .zip(indexes)
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        };
        if let Some(t) = self.current.load_full().filter(|t| fresh(t)) {
            return t;
        }
        let mut logged = match self.building.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(t) = self.current.load_full().filter(|t| fresh(t)) {
            return t;
        }
        let t = Arc::new(build(self.schema, &self.outputs, indexes));
        log_mappings(self.schema, &self.outputs, &t, &mut logged);
        self.current.store(Some(t.clone()));
        t
    }
}

/// Says once (and again only when it changes) how each data set maps to ECS.
fn log_mappings(
    schema: Schema,
    outputs: &[DataSetOutput],
    t: &Tables,
    logged: &mut Vec<Option<EcsMap>>,
) {
    if schema != Schema::Ecs {
        return;
    }
    logged.resize(outputs.len(), None);
    for ((o, set), last) in outputs.iter().zip(&t.sets).zip(logged.iter_mut()) {
        if last.as_ref() == Some(&set.map) || set.shape.is_empty() {
            continue;
        }
        if set.map.is_empty() {
            tracing::warn!(
                dataset = %o.name,
                "no ECS field recognised in data set {:?}: its fields go under whipstream.{} \
                 (map them with --ecs {}=ECS_FIELD:RECORD_FIELD)",
                o.name,
                o.name,
                o.name
            );
        } else {
            tracing::info!(dataset = %o.name, "ECS mapping of data set {:?}: {}", o.name, set.map.describe());
        }
        *last = Some(set.map.clone());
    }
}

/// Every payload of `index` as a JSON object (payloads that are not objects,
/// which a load never stores, are empty).
pub fn payload_objects(index: &Index) -> impl Iterator<Item = Map<String, Value>> + '_ {
    (0..index.payload_count() as u32).map(|p| {
        let body = index.payload(p);
        let mut text = Vec::with_capacity(body.len() + 2);
        text.push(b'{');
        text.extend_from_slice(body);
        text.push(b'}');
        serde_json::from_slice::<Map<String, Value>>(&text).unwrap_or_default()
    })
}

/// The shape of every data set's payloads and the mapping each one gets, with
/// targets taken in data set order.
pub fn shapes_and_maps(outputs: &[DataSetOutput], indexes: &[Arc<Index>]) -> Vec<(Shape, EcsMap)> {
    let mut taken: Vec<Target> = Vec::new();
    outputs
        .iter()
        .zip(indexes)
        .map(|(o, index)| {
            let mut shape = Shape::new();
            for obj in payload_objects(index) {
                mapping::add_to_shape(&mut shape, &obj);
            }
            let mut map = match &o.ecs {
                Some(m) => m.clone(),
                None => mapping::recognise(&shape),
            };
            map.fields.retain(|(f, _)| !taken.contains(&f.target()));
            for t in map.targets() {
                if !taken.contains(&t) {
                    taken.push(t);
                }
            }
            (shape, map)
        })
        .collect()
}

fn build(schema: Schema, outputs: &[DataSetOutput], indexes: &[Arc<Index>]) -> Tables {
    // The whipstream schema maps nothing to ECS: no shapes to read.
    let shaped = match schema {
        Schema::Ecs => shapes_and_maps(outputs, indexes),
        Schema::Whipstream => outputs.iter().map(|_| Default::default()).collect(),
    };
    let sets = shaped
        .into_iter()
        .zip(outputs.iter().zip(indexes))
        .map(|((shape, map), (o, index))| {
            let mut t = SetTable {
                offsets: vec![0],
                bytes: Vec::new(),
                map,
                shape,
                datetimes: index
                    .snapshots()
                    .iter()
                    .map(|s| {
                        let mut dt = vec![b'"'];
                        s.meta.instant().write_rfc3339(&mut dt);
                        dt.push(b'"');
                        dt.into_boxed_slice()
                    })
                    .collect(),
                snapshots_at: index.snapshots().as_ptr() as usize,
            };
            let needed = schema == Schema::Ecs || o.fields.is_some();
            if needed {
                for obj in payload_objects(index) {
                    let map = std::mem::take(&mut t.map);
                    render_payload(schema, o.fields.as_ref(), &map, &obj, &mut t);
                    t.map = map;
                }
            }
            t
        })
        .collect();
    Tables {
        indexes: indexes.to_vec(),
        sets,
    }
}

/// The value at a dotted path (array items by index).
pub fn at_path<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut v = obj.get(parts.next()?)?;
    for p in parts {
        v = match v {
            Value::Object(o) => o.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Removes the value at a dotted path, and objects it leaves empty.
fn remove_path(obj: &mut Map<String, Value>, path: &str) {
    if obj.remove(path).is_some() {
        return;
    }
    let Some((head, rest)) = path.split_once('.') else {
        return;
    };
    let empty = match obj.get_mut(head) {
        Some(Value::Object(o)) => {
            remove_path(o, rest);
            o.is_empty()
        }
        Some(Value::Array(a)) => {
            if let Some((i, rest)) = rest.split_once('.') {
                if let Some(Value::Object(o)) = i.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    remove_path(o, rest);
                }
            }
            a.iter()
                .all(|x| matches!(x, Value::Object(o) if o.is_empty()))
        }
        _ => false,
    };
    if empty {
        obj.remove(head);
    }
}

/// `value` as an ECS field's value, or `None` when it cannot be one (it then
/// stays under `whipstream.<name>` as it is, never a wrong value).
fn ecs_value(f: EcsField, value: &Value) -> Option<Value> {
    match (f, value) {
        (EcsField::AsNumber, Value::Number(n)) => n.as_u64().map(Value::from),
        (EcsField::AsNumber, Value::String(s)) => {
            let digits = s.trim().trim_start_matches("AS").trim_start_matches("as");
            digits.parse::<u64>().ok().map(Value::from)
        }
        (EcsField::Lat, _) | (EcsField::Lon, _) => {
            let x = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }?;
            let limit = if f == EcsField::Lat { 90.0 } else { 180.0 };
            (x.is_finite() && x.abs() <= limit).then(|| Value::from(x))
        }
        (_, Value::String(_)) => Some(value.clone()),
        (_, Value::Number(n)) => Some(Value::String(n.to_string())),
        _ => None,
    }
}

fn push_pair(out: &mut Vec<u8>, key: &str, value: Option<&Value>) {
    if !out.is_empty() {
        out.push(b',');
    }
    write_key(out, key);
    match value {
        Some(v) => {
            out.extend_from_slice(&serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()))
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Renders one payload's three parts and appends them to `t`.
fn render_payload(
    schema: Schema,
    selection: Option<&Selection>,
    map: &EcsMap,
    obj: &Map<String, Value>,
    t: &mut SetTable,
) {
    let (mut record, mut geo, mut as_) = (Vec::new(), Vec::new(), Vec::new());
    match schema {
        Schema::Whipstream => {
            for (out, path) in selection.map(|s| s.record_fields()).into_iter().flatten() {
                push_pair(&mut record, out, at_path(obj, path));
            }
        }
        Schema::Ecs => {
            // The ECS values of the mapped fields (a whole geo_point or none).
            let mut ecs: Vec<(EcsField, Value)> = map
                .fields
                .iter()
                .filter(|(_, path)| {
                    selection.is_none_or(|s| s.record_fields().any(|(_, p)| p == path))
                })
                .filter_map(|(f, path)| Some((*f, ecs_value(*f, at_path(obj, path)?)?)))
                .collect();
            let has = |ecs: &[(EcsField, Value)], f| ecs.iter().any(|(g, _)| *g == f);
            if has(&ecs, EcsField::Lat) != has(&ecs, EcsField::Lon) {
                ecs.retain(|(f, _)| !matches!(f, EcsField::Lat | EcsField::Lon));
            }
            let in_ecs = |ecs: &[(EcsField, Value)], f: EcsField| ecs.iter().any(|(g, _)| *g == f);
            match selection {
                Some(s) => {
                    let mut location_null = false;
                    for (out, path) in s.record_fields() {
                        let v = at_path(obj, path);
                        match map.field_of(path) {
                            Some(f) if in_ecs(&ecs, f) => {}
                            // A chosen mapped field this payload lacks: null at its ECS place.
                            Some(f) if v.is_none() => match f {
                                EcsField::Lat | EcsField::Lon => location_null = true,
                                _ if f.target() == Target::Geo => {
                                    push_pair(&mut geo, f.key(), None)
                                }
                                _ => push_pair(&mut as_, f.key(), None),
                            },
                            _ => push_pair(&mut record, out, v),
                        }
                    }
                    if location_null {
                        push_pair(&mut geo, "location", None);
                    }
                }
                None => {
                    let mut rest = obj.clone();
                    for (f, path) in &map.fields {
                        if ecs.iter().any(|(g, _)| g == f) {
                            remove_path(&mut rest, path);
                        }
                    }
                    for (k, v) in &rest {
                        push_pair(&mut record, k, Some(v));
                    }
                }
            }
            let mut location: Option<(Value, Value)> = None;
            for (f, v) in ecs {
                let part = if f.target() == Target::Geo {
                    &mut geo
                } else {
                    &mut as_
                };
                match f {
                    EcsField::Lat => location = Some((v, Value::Null)),
                    EcsField::Lon => {
                        let lat = location.take().map_or(Value::Null, |(lat, _)| lat);
                        let point = serde_json::json!({"lat": lat, "lon": v});
                        push_pair(part, "location", Some(&point));
                    }
                    EcsField::AsOrgName => {
                        let org = serde_json::json!({ "name": v });
                        push_pair(part, "organization", Some(&org));
                    }
                    _ => push_pair(part, f.key(), Some(&v)),
                }
            }
        }
    }
    for part in [record, geo, as_] {
        t.bytes.extend_from_slice(&part);
        t.offsets.push(t.bytes.len() as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::index;
    use crate::schema::select::parse_items;

    fn tables(schema: Schema, text: &str, fields: Option<&str>, ecs: Option<EcsMap>) -> Tables {
        let ix = Arc::new(index(&[text]));
        let outputs = vec![DataSetOutput {
            name: "d".into(),
            fields: fields.map(|f| parse_items(f, f).unwrap()),
            ecs,
        }];
        build(schema, &outputs, &[ix])
    }

    fn parts(t: &Tables) -> Vec<(String, String, String)> {
        let set = &t.sets[0];
        (0..set.offsets.len() as u32 / 3)
            .map(|p| {
                let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                let x = set.parts(p);
                (s(x.record), s(x.geo), s(x.as_))
            })
            .collect()
    }

    const MIXED: &str = r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","asn":"AS13335","latitude":"12.5","longitude":7,"extra":[1,2]}
{"begin":"1.0.1.0","end":"1.0.1.255","datetime":"2024-01-01T00:00:00Z","asn":"unknown","latitude":"91","longitude":7}"#;

    #[test]
    fn values_that_cannot_be_the_ecs_ones_stay_as_they_are() {
        let t = tables(Schema::Ecs, MIXED, None, None);
        let got = parts(&t);
        assert_eq!(
            got[0],
            (
                r#""extra":[1,2]"#.into(),
                r#""location":{"lat":12.5,"lon":7.0}"#.into(),
                r#""number":13335"#.into()
            )
        );
        // No AS number in "unknown", no latitude 91: kept, not mapped.
        assert_eq!(
            got[1],
            (
                r#""asn":"unknown","latitude":"91","longitude":7"#.into(),
                String::new(),
                String::new()
            )
        );
    }

    #[test]
    fn chosen_fields_are_prepared_per_payload_with_nulls_for_missing_ones() {
        let t = tables(Schema::Whipstream, MIXED, Some("a:asn,nope,datetime"), None);
        let got = parts(&t);
        assert_eq!(got[0].0, r#""a":"AS13335","nope":null"#);
        assert_eq!(got[1].0, r#""a":"unknown","nope":null"#);
        // In ECS a chosen mapped field goes to its ECS place.
        let t = tables(Schema::Ecs, MIXED, Some("asn,nope"), None);
        let got = parts(&t);
        assert_eq!(
            got[0],
            (
                r#""nope":null"#.into(),
                String::new(),
                r#""number":13335"#.into()
            )
        );
        assert_eq!(got[1].0, r#""asn":"unknown","nope":null"#);
    }

    #[test]
    fn an_index_swap_rebuilds_the_tables_once() {
        let outputs = vec![DataSetOutput {
            name: "d".into(),
            fields: None,
            ecs: None,
        }];
        let r = Renderer::new(Schema::Ecs, outputs);
        let a = Arc::new(index(&[MIXED]));
        let t1 = r.tables(std::slice::from_ref(&a));
        assert!(Arc::ptr_eq(&t1, &r.tables(std::slice::from_ref(&a))));
        let b = Arc::new(index(&[MIXED]));
        let t2 = r.tables(std::slice::from_ref(&b));
        assert!(!Arc::ptr_eq(&t1, &t2));
        assert!(Arc::ptr_eq(&t2, &r.tables(&[b])));
    }
}
