//! The columns of a Parquet output, derived from the [`FieldSpec`] list of a
//! flow: [`arrow_schema`] turns any list (today's `whipstream` schema, ECS) into
//! an Arrow schema; [`whipstream_fields`] is the list for the `whipstream`
//! schema, with each data set's record fields typed by a scan of its distinct
//! payloads ([`record_fields`]).
//!
//! Naming: a dotted path is a nested column. `geo.country_code` is the field
//! `country_code` of the struct column `geo`, which Parquet stores as its own
//! leaf column with the path `geo.country_code`: DuckDB, Spark and Trino query
//! it as `geo.country_code` (no quoting), the same text that reaches the JSON
//! output's object through `read_json_auto`, so one query serves both outputs.
//!
//! Types: `Keyword` and `Ip` are UTF8 strings, `Long` INT64, `Double` DOUBLE,
//! `Date` TIMESTAMP(MICROS, UTC) (whipstream's instants are microseconds),
//! `Boolean` BOOLEAN, `GeoPoint` a struct of `lat`/`lon` doubles, and `Object`
//! (free-form JSON: a JSON log's own fields, a record field of mixed type) the
//! value's JSON text. Every column is nullable.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

use crate::index::Index;
use crate::output_fields::{self as names, FieldSpec, ValueType};

/// The time zone of every timestamp column.
pub const UTC: &str = "UTC";

/// Why a field list cannot be laid out as columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("field {0:?} is listed twice")]
    Duplicate(String),
    #[error("field {0:?} is both a value and a record of fields")]
    ValueAndRecord(String),
    #[error("field path {0:?} has an empty name")]
    EmptyName(String),
}

/// The field list as a tree: the top-level names in order, each a leaf (a
/// value type) or a record of further names. Shared by the schema and the row
/// converter so both follow one layout.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(ValueType),
    Record(Vec<(String, Node)>),
}

/// Lays out `specs` as a tree of records (first-seen order), refusing a path
/// listed twice or a path that is both a value and a record.
pub fn tree(specs: &[FieldSpec]) -> Result<Vec<(String, Node)>, SchemaError> {
    let mut root: Vec<(String, Node)> = Vec::new();
    for spec in specs {
        let parts: Vec<&str> = spec.path.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(SchemaError::EmptyName(spec.path.clone()));
        }
        insert(&mut root, &parts, 0, spec)?;
    }
    Ok(root)
}

fn insert(
    level: &mut Vec<(String, Node)>,
    parts: &[&str],
    i: usize,
    spec: &FieldSpec,
) -> Result<(), SchemaError> {
    let name = parts[i];
    let last = i + 1 == parts.len();
    let prefix = || parts[..=i].join(".");
    let j = match level.iter().position(|(n, _)| n == name) {
        Some(j) => j,
        None if last => {
            level.push((name.to_string(), Node::Leaf(spec.ty)));
            return Ok(());
        }
        None => {
            level.push((name.to_string(), Node::Record(Vec::new())));
            level.len() - 1
        }
    };
    match (&mut level[j].1, last) {
        (Node::Leaf(_), true) => Err(SchemaError::Duplicate(spec.path.clone())),
        (Node::Leaf(_), false) | (Node::Record(_), true) => {
            Err(SchemaError::ValueAndRecord(prefix()))
        }
        (Node::Record(children), false) => insert(children, parts, i + 1, spec),
    }
}

/// The Arrow type of a value type's column.
pub fn data_type(ty: ValueType) -> DataType {
    match ty {
        ValueType::Keyword | ValueType::Ip | ValueType::Object => DataType::Utf8,
        ValueType::Long => DataType::Int64,
        ValueType::Double => DataType::Float64,
        ValueType::Date => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        ValueType::Boolean => DataType::Boolean,
        ValueType::GeoPoint => DataType::Struct(Fields::from(vec![
            Field::new("lat", DataType::Float64, true),
            Field::new("lon", DataType::Float64, true),
        ])),
    }
}

fn field(name: &str, node: &Node) -> Field {
    match node {
        Node::Leaf(ty) => Field::new(name, data_type(*ty), true),
        Node::Record(children) => Field::new(name, DataType::Struct(fields(children)), true),
    }
}

pub(crate) fn fields(nodes: &[(String, Node)]) -> Fields {
    nodes.iter().map(|(n, node)| field(n, node)).collect()
}

/// The Arrow (and so Parquet) schema of the lines `specs` describe: the entry
/// point for any output schema (whipstream, ECS) to get typed columns.
pub fn arrow_schema(specs: &[FieldSpec]) -> Result<Arc<Schema>, SchemaError> {
    Ok(Arc::new(Schema::new(fields(&tree(specs)?))))
}

/// The keys an enriched line of the `whipstream` schema can have besides its
/// data sets, with their types ([`crate::logline::fields`] writes them; a
/// regex's other named groups are top-level strings, `named_groups`).
pub fn whipstream_line_fields(named_groups: &[String]) -> Vec<FieldSpec> {
    use ValueType::*;
    let mut specs: Vec<FieldSpec> = [
        (names::IP, Ip),
        (names::TIMESTAMP, Date),
        (names::TIME_SOURCE, Keyword),
        (names::REQUEST, Keyword),
        (names::USER, Keyword),
        (names::METHOD, Keyword),
        (names::PATH, Keyword),
        (names::PROTOCOL, Keyword),
        (names::REFERER, Keyword),
        (names::STATUS, Long),
        (names::BYTES, Long),
        (names::USER_AGENT, Keyword),
        (names::HOST, Keyword),
        (names::UPSTREAM, Keyword),
        (names::DURATION, Double),
        (names::IDENT, Keyword),
        // An array of strings, kept as its JSON text.
        (names::EXTRA, Object),
        (names::TRUNCATED, Boolean),
        (names::FIELDS, Object),
        (names::LINE, Keyword),
    ]
    .into_iter()
    .map(|(path, ty)| FieldSpec {
        path: path.to_string(),
        ty,
    })
    .collect();
    for g in named_groups {
        if !specs.iter().any(|s| s.path == *g) {
            specs.push(FieldSpec {
                path: g.clone(),
                ty: Keyword,
            });
        }
    }
    specs
}

/// What the values of one record field seen so far have in common.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Long,
    Double,
    Keyword,
    Boolean,
    Mixed,
}

impl Seen {
    fn with(self, v: &serde_json::Value) -> Seen {
        use serde_json::Value as V;
        let this = match v {
            V::Null => return self,
            // Integers a double holds exactly stay numbers beside doubles.
            V::Number(n) if n.as_i64().is_some() => Seen::Long,
            V::Number(n) if n.as_u64().is_some() => Seen::Mixed,
            V::Number(_) => Seen::Double,
            V::String(_) => Seen::Keyword,
            V::Bool(_) => Seen::Boolean,
            V::Array(_) | V::Object(_) => Seen::Mixed,
        };
        match (self, this) {
            (Seen::Nothing, t) => t,
            (a, b) if a == b => a,
            (Seen::Long, Seen::Double) | (Seen::Double, Seen::Long) => Seen::Double,
            _ => Seen::Mixed,
        }
    }

    fn value_type(self) -> ValueType {
        match self {
            Seen::Long => ValueType::Long,
            Seen::Double => ValueType::Double,
            Seen::Keyword | Seen::Nothing => ValueType::Keyword,
            Seen::Boolean => ValueType::Boolean,
            Seen::Mixed => ValueType::Object,
        }
    }
}

/// A payload that is not the JSON object members the index keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data set {dataset:?}: payload {payload} is not a JSON object's members: {reason}")]
pub struct PayloadError {
    pub dataset: String,
    pub payload: usize,
    pub reason: String,
}

/// The record fields of data set `name` (`name.begin`, `name.end`,
/// `name.datetime`, then every payload key, sorted), each typed by the union of
/// its values over `payloads` (the data set's distinct payloads, each the
/// members of a JSON object as the index keeps them): all integers are `Long`,
/// all numbers `Double`, all strings `Keyword`, all booleans `Boolean`, any mix
/// or object `Object` (its JSON text). An integer a double cannot hold exactly
/// beside doubles, or beyond `i64`, also makes the field `Object`, so no value
/// is ever rounded into its column.
pub fn record_fields<'a>(
    name: &str,
    payloads: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<FieldSpec>, PayloadError> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut big_integers: BTreeMap<String, bool> = BTreeMap::new();
    let mut object = Vec::new();
    for (i, payload) in payloads.enumerate() {
        object.clear();
        object.push(b'{');
        object.extend_from_slice(payload);
        object.push(b'}');
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&object)
            .map_err(|e| PayloadError {
                dataset: name.to_string(),
                payload: i,
                reason: e.to_string(),
            })?;
        for (k, v) in map {
            if let Some(n) = v.as_i64() {
                if n.unsigned_abs() > 1 << 53 {
                    big_integers.insert(k.clone(), true);
                }
            }
            let s = seen.entry(k).or_insert(Seen::Nothing);
            *s = s.with(&v);
        }
    }
    let mut specs = vec![
        spec(name, "begin", ValueType::Ip),
        spec(name, "end", ValueType::Ip),
        spec(name, "datetime", ValueType::Date),
    ];
    for (k, s) in seen {
        let ty = match s {
            Seen::Double if big_integers.contains_key(&k) => ValueType::Object,
            s => s.value_type(),
        };
        specs.push(spec(name, &k, ty));
    }
    Ok(specs)
}

fn spec(dataset: &str, field: &str, ty: ValueType) -> FieldSpec {
    FieldSpec {
        path: format!("{dataset}.{field}"),
        ty,
    }
}

/// The field list of a `whipstream` schema flow: the line's keys, then each
/// data set's record fields from its index as it is now.
pub fn whipstream_fields<'a>(
    named_groups: &[String],
    datasets: impl Iterator<Item = (&'a str, &'a Index)>,
) -> Result<Vec<FieldSpec>, PayloadError> {
    let mut specs = whipstream_line_fields(named_groups);
    for (name, index) in datasets {
        specs.extend(record_fields(name, index.payloads())?);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(specs: &[FieldSpec]) -> Vec<(&str, ValueType)> {
        specs.iter().map(|s| (s.path.as_str(), s.ty)).collect()
    }

    #[test]
    fn a_record_field_is_typed_by_the_union_of_its_values() {
        let payloads: [&[u8]; 3] = [
            br#""cc":"US","asn":13335,"lat":40.5,"score":1,"tags":["a"],"mix":1,"ok":true"#,
            br#""cc":"DE","asn":3320,"lat":52,"score":2.5,"mix":"x","ok":false"#,
            br#""cc":null,"asn":null,"huge":18446744073709551615,"near":9007199254740993,"f":0.5"#,
        ];
        let specs = record_fields("geo", payloads.into_iter()).unwrap();
        use ValueType::*;
        assert_eq!(
            types(&specs),
            vec![
                ("geo.begin", Ip),
                ("geo.end", Ip),
                ("geo.datetime", Date),
                ("geo.asn", Long),
                ("geo.cc", Keyword),
                ("geo.f", Double),
                ("geo.huge", Object),
                ("geo.lat", Double),
                ("geo.mix", Object),
                ("geo.near", Long),
                ("geo.ok", Boolean),
                ("geo.score", Double),
                ("geo.tags", Object),
            ]
        );
    }

    #[test]
    fn a_big_integer_beside_doubles_makes_the_field_json_text_not_a_rounded_double() {
        let payloads: [&[u8]; 2] = [br#""v":9007199254740993"#, br#""v":0.5"#];
        let specs = record_fields("d", payloads.into_iter()).unwrap();
        assert_eq!(specs[3], spec("d", "v", ValueType::Object));
    }

    #[test]
    fn a_broken_payload_is_an_error_naming_the_data_set() {
        let payloads: [&[u8]; 1] = [br#""v":"#];
        let e = record_fields("asn", payloads.into_iter()).unwrap_err();
        assert!(
            e.to_string().starts_with("data set \"asn\": payload 0"),
            "{e}"
        );
    }

    #[test]
    fn dotted_paths_become_nested_struct_columns_in_first_seen_order() {
        let specs = vec![
            FieldSpec {
                path: "@timestamp".into(),
                ty: ValueType::Date,
            },
            FieldSpec {
                path: "source.geo.country_iso_code".into(),
                ty: ValueType::Keyword,
            },
            FieldSpec {
                path: "source.ip".into(),
                ty: ValueType::Ip,
            },
            FieldSpec {
                path: "source.geo.location".into(),
                ty: ValueType::GeoPoint,
            },
        ];
        let schema = arrow_schema(&specs).unwrap();
        let expected = Schema::new(vec![
            Field::new(
                "@timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "source",
                DataType::Struct(Fields::from(vec![
                    Field::new(
                        "geo",
                        DataType::Struct(Fields::from(vec![
                            Field::new("country_iso_code", DataType::Utf8, true),
                            Field::new("location", data_type(ValueType::GeoPoint), true),
                        ])),
                        true,
                    ),
                    Field::new("ip", DataType::Utf8, true),
                ])),
                true,
            ),
        ]);
        assert_eq!(*schema, expected);
    }

    #[test]
    fn a_path_listed_twice_or_as_value_and_record_is_refused() {
        let f = |p: &str| FieldSpec {
            path: p.into(),
            ty: ValueType::Keyword,
        };
        assert_eq!(
            arrow_schema(&[f("a.b"), f("a.b")]).unwrap_err(),
            SchemaError::Duplicate("a.b".into())
        );
        assert_eq!(
            arrow_schema(&[f("a"), f("a.b")]).unwrap_err(),
            SchemaError::ValueAndRecord("a".into())
        );
        assert_eq!(
            arrow_schema(&[f("a.b"), f("a")]).unwrap_err(),
            SchemaError::ValueAndRecord("a".into())
        );
        assert_eq!(
            arrow_schema(&[f("a..b")]).unwrap_err(),
            SchemaError::EmptyName("a..b".into())
        );
    }

    #[test]
    fn the_whipstream_line_fields_have_typed_status_bytes_and_timestamp() {
        let specs = whipstream_line_fields(&["ip".into(), "shard".into()]);
        let ty = |p: &str| specs.iter().find(|s| s.path == p).map(|s| s.ty);
        assert_eq!(ty("status"), Some(ValueType::Long));
        assert_eq!(ty("bytes"), Some(ValueType::Long));
        assert_eq!(ty("timestamp"), Some(ValueType::Date));
        assert_eq!(ty("fields"), Some(ValueType::Object));
        assert_eq!(ty("shard"), Some(ValueType::Keyword));
        assert_eq!(specs.iter().filter(|s| s.path == "ip").count(), 1);
    }
}
