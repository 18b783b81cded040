//! The columns of a Parquet output, derived from the [`FieldSpec`] list of a
//! flow: [`arrow_schema`] turns any list (today's `whipstream` schema, ECS) into
//! an Arrow schema; the list itself comes from the output schema
//! ([`crate::schema::field_specs`]: whipstream or ECS, chosen fields, each data
//! set's record fields typed by a scan of its distinct payloads).
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

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

use crate::output_fields::{FieldSpec, ValueType};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
