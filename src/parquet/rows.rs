//! Enriched JSON lines into Arrow record batches, against the columns of a
//! [`Layout`] ([`super::columns`]).
//!
//! A line is read whole before any column sees it ([`Layout::read`] gives a
//! [`Row`], then [`Batch::push`] appends it), so a line that does not fit its
//! columns leaves no partial row behind: it is refused as a whole with the field
//! and the reason ([`RowError`]). Nothing is dropped or nulled in silence: a key
//! without a column, a string where a number is due, an integer beyond `i64`,
//! a time that does not parse are all refusals. Values are read from the line's
//! text without building a JSON tree: strings borrow from the line, free-form
//! JSON (`Object` columns) is copied as written.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{ArrowError, Fields, Schema};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::columns::{self, Node, SchemaError, UTC};
use crate::output_fields::{FieldSpec, ValueType};
use crate::time::Timestamp;

/// Why an enriched line cannot be a row of the columns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("not a JSON object: {0}")]
    NotObject(String),
    #[error("{0}: no such column")]
    NoColumn(String),
    #[error("{path}: {value} does not fit a {column} column")]
    Misfit {
        path: String,
        value: String,
        column: &'static str,
    },
}

/// Where a field's values go: a leaf column or a record's fields.
#[derive(Debug)]
enum Slot {
    Leaf {
        id: usize,
        ty: ValueType,
    },
    Record {
        id: usize,
        fields: Vec<(String, Slot)>,
    },
}

/// The columns of an output: the field tree with each leaf and record numbered,
/// and its Arrow schema.
#[derive(Debug)]
pub struct Layout {
    top: Vec<(String, Slot)>,
    leaves: Vec<ValueType>,
    records: usize,
    schema: Arc<Schema>,
    /// The fields of each record, to assemble its struct array.
    record_fields: Vec<Fields>,
}

impl Layout {
    pub fn new(specs: &[FieldSpec]) -> Result<Layout, SchemaError> {
        let tree = columns::tree(specs)?;
        let mut layout = Layout {
            top: Vec::new(),
            leaves: Vec::new(),
            records: 0,
            schema: Arc::new(Schema::new(columns::fields(&tree))),
            record_fields: Vec::new(),
        };
        layout.top = layout.number(&tree);
        Ok(layout)
    }

    fn number(&mut self, nodes: &[(String, Node)]) -> Vec<(String, Slot)> {
        nodes
            .iter()
            .map(|(name, node)| {
                let slot = match node {
                    Node::Leaf(ty) => {
                        self.leaves.push(*ty);
                        Slot::Leaf {
                            id: self.leaves.len() - 1,
                            ty: *ty,
                        }
                    }
                    Node::Record(children) => {
                        let id = self.records;
                        self.records += 1;
                        self.record_fields.push(columns::fields(children));
                        Slot::Record {
                            id,
                            fields: self.number(children),
                        }
                    }
                };
                (name.clone(), slot)
            })
            .collect()
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The leaf column of a top-level field, if it has one of type `ty`.
    pub fn top_leaf(&self, name: &str, ty: ValueType) -> Option<usize> {
        self.top.iter().find_map(|(n, slot)| match slot {
            Slot::Leaf { id, ty: t } if n == name && *t == ty => Some(*id),
            _ => None,
        })
    }

    /// Reads one enriched line (a JSON object, without its newline) as a row.
    pub fn read<'a>(&self, line: &'a str) -> Result<Row<'a>, RowError> {
        let mut row = Row {
            cells: vec![Cell::Null; self.leaves.len()],
            present: vec![false; self.records],
        };
        let entries = members(line).ok_or_else(|| RowError::NotObject(excerpt(line)))?;
        read_members(&self.top, entries, "", &mut row)?;
        Ok(row)
    }
}

/// One line's values, by leaf and record number.
#[derive(Debug)]
pub struct Row<'a> {
    cells: Vec<Cell<'a>>,
    present: Vec<bool>,
}

impl Row<'_> {
    /// The instant in leaf `id`, when it is a time that is there.
    pub fn micros(&self, id: usize) -> Option<i64> {
        match self.cells.get(id) {
            Some(Cell::Micros(t)) => Some(*t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Long(i64),
    Double(f64),
    Micros(i64),
    Boolean(bool),
    Geo(f64, f64),
}

/// A key, borrowed from the line unless it has escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Geo {
    lat: f64,
    lon: f64,
}

/// An object's members in order, their values as written.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some((k, v)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push((k.0, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

fn members(text: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    serde_json::from_str::<Members<'_>>(text).ok().map(|m| m.0)
}

/// At most 100 characters of a value, for a message.
fn excerpt(text: &str) -> String {
    crate::lines::excerpt_bytes(text.as_bytes())
}

fn read_members<'a>(
    slots: &[(String, Slot)],
    entries: Vec<(Cow<'a, str>, &'a RawValue)>,
    prefix: &str,
    row: &mut Row<'a>,
) -> Result<(), RowError> {
    // The writer keeps one key order: the next slot is usually the next one.
    let mut next = 0;
    for (key, raw) in entries {
        let at = match slots.get(next) {
            Some((n, _)) if *n == key => next,
            _ => slots
                .iter()
                .position(|(n, _)| *n == key)
                .ok_or_else(|| RowError::NoColumn(join(prefix, &key)))?,
        };
        next = at + 1;
        match &slots[at].1 {
            Slot::Leaf { id, ty } => {
                row.cells[*id] = cell(raw, *ty).map_err(|column| RowError::Misfit {
                    path: join(prefix, &key),
                    value: excerpt(raw.get()),
                    column,
                })?;
            }
            Slot::Record { id, fields } => {
                if raw.get() == "null" {
                    continue;
                }
                let path = join(prefix, &key);
                let inner = members(raw.get()).ok_or_else(|| RowError::Misfit {
                    path: path.clone(),
                    value: excerpt(raw.get()),
                    column: "record",
                })?;
                row.present[*id] = true;
                read_members(fields, inner, &path, row)?;
            }
        }
    }
    Ok(())
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The value of one leaf; the error names the column type it does not fit.
fn cell(raw: &RawValue, ty: ValueType) -> Result<Cell<'_>, &'static str> {
    let text = raw.get();
    if text == "null" {
        return Ok(Cell::Null);
    }
    let name = type_name(ty);
    let fail = |_| name;
    Ok(match ty {
        ValueType::Keyword | ValueType::Ip => {
            Cell::Text(serde_json::from_str::<Text<'_>>(text).map_err(fail)?.0)
        }
        ValueType::Object => Cell::Text(Cow::Borrowed(text)),
        ValueType::Long => Cell::Long(serde_json::from_str(text).map_err(fail)?),
        ValueType::Double => Cell::Double(serde_json::from_str(text).map_err(fail)?),
        ValueType::Boolean => Cell::Boolean(serde_json::from_str(text).map_err(fail)?),
        ValueType::Date => {
            let t = serde_json::from_str::<Text<'_>>(text).map_err(fail)?;
            Cell::Micros(Timestamp::parse(&t.0).map_err(|_| name)?.as_micros())
        }
        ValueType::GeoPoint => {
            let g: Geo = serde_json::from_str(text).map_err(fail)?;
            Cell::Geo(g.lat, g.lon)
        }
    })
}

fn type_name(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Keyword => "string",
        ValueType::Ip => "address string",
        ValueType::Object => "JSON text",
        ValueType::Long => "64-bit integer",
        ValueType::Double => "double",
        ValueType::Boolean => "boolean",
        ValueType::Date => "timestamp",
        ValueType::GeoPoint => "geo point {lat, lon}",
    }
}

/// One leaf column's values being gathered.
enum Builder {
    Text(StringBuilder),
    Long(Int64Builder),
    Double(Float64Builder),
    Micros(TimestampMicrosecondBuilder),
    Boolean(BooleanBuilder),
    Geo(Float64Builder, Float64Builder, Vec<bool>),
}

impl Builder {
    fn new(ty: ValueType) -> Builder {
        match ty {
            ValueType::Keyword | ValueType::Ip | ValueType::Object => {
                Builder::Text(StringBuilder::new())
            }
            ValueType::Long => Builder::Long(Int64Builder::new()),
            ValueType::Double => Builder::Double(Float64Builder::new()),
            ValueType::Date => {
                Builder::Micros(TimestampMicrosecondBuilder::new().with_timezone(UTC))
            }
            ValueType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            ValueType::GeoPoint => {
                Builder::Geo(Float64Builder::new(), Float64Builder::new(), Vec::new())
            }
        }
    }

    /// Appends `cell`, which [`cell`] made for this column's type.
    fn push(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (Builder::Text(b), Cell::Text(s)) => b.append_value(s),
            (Builder::Long(b), Cell::Long(v)) => b.append_value(*v),
            (Builder::Double(b), Cell::Double(v)) => b.append_value(*v),
            (Builder::Micros(b), Cell::Micros(v)) => b.append_value(*v),
            (Builder::Boolean(b), Cell::Boolean(v)) => b.append_value(*v),
            (Builder::Geo(lat, lon, valid), Cell::Geo(a, o)) => {
                lat.append_value(*a);
                lon.append_value(*o);
                valid.push(true);
            }
            // Null, the only cell a column of another type can get.
            (Builder::Text(b), _) => b.append_null(),
            (Builder::Long(b), _) => b.append_null(),
            (Builder::Double(b), _) => b.append_null(),
            (Builder::Micros(b), _) => b.append_null(),
            (Builder::Boolean(b), _) => b.append_null(),
            (Builder::Geo(lat, lon, valid), _) => {
                lat.append_null();
                lon.append_null();
                valid.push(false);
            }
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Long(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Micros(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Geo(lat, lon, valid) => {
                let fields = match columns::data_type(ValueType::GeoPoint) {
                    arrow_schema::DataType::Struct(f) => f,
                    _ => Fields::empty(),
                };
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(StructArray::try_new(
                    fields,
                    vec![Arc::new(lat.finish()), Arc::new(lon.finish())],
                    Some(nulls),
                )?)
            }
        })
    }
}

/// Rows gathered for one record batch.
pub struct Batch {
    builders: Vec<Builder>,
    present: Vec<Vec<bool>>,
    len: usize,
}

impl Batch {
    pub fn new(layout: &Layout) -> Batch {
        Batch {
            builders: layout.leaves.iter().map(|ty| Builder::new(*ty)).collect(),
            present: vec![Vec::new(); layout.records],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a row [`Layout::read`] made with the same layout.
    pub fn push(&mut self, row: &Row<'_>) {
        for (b, c) in self.builders.iter_mut().zip(&row.cells) {
            b.push(c);
        }
        for (p, r) in self.present.iter_mut().zip(&row.present) {
            p.push(*r);
        }
        self.len += 1;
    }

    /// The rows so far as a record batch; the batch is empty again after.
    pub fn finish(&mut self, layout: &Layout) -> Result<RecordBatch, ArrowError> {
        let mut arrays = Vec::with_capacity(layout.top.len());
        for (_, slot) in &layout.top {
            arrays.push(self.array(layout, slot)?);
        }
        self.len = 0;
        RecordBatch::try_new(layout.schema.clone(), arrays)
    }

    fn array(&mut self, layout: &Layout, slot: &Slot) -> Result<ArrayRef, ArrowError> {
        match slot {
            Slot::Leaf { id, .. } => self.builders[*id].finish(),
            Slot::Record { id, fields } => {
                let mut children = Vec::with_capacity(fields.len());
                for (_, s) in fields {
                    children.push(self.array(layout, s)?);
                }
                let nulls = NullBuffer::from(std::mem::take(&mut self.present[*id]));
                Ok(Arc::new(StructArray::try_new(
                    layout.record_fields[*id].clone(),
                    children,
                    Some(nulls),
                )?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;

    fn specs() -> Vec<FieldSpec> {
        let f = |p: &str, ty| FieldSpec { path: p.into(), ty };
        vec![
            f("ip", ValueType::Ip),
            f("timestamp", ValueType::Date),
            f("status", ValueType::Long),
            f("fields", ValueType::Object),
            f("geo.country_code", ValueType::Keyword),
            f("geo.latitude", ValueType::Double),
            f("geo.location", ValueType::GeoPoint),
        ]
    }

    #[test]
    fn lines_become_typed_columns_and_nested_records() {
        let layout = Layout::new(&specs()).unwrap();
        let mut batch = Batch::new(&layout);
        let lines = [
            r#"{"ip":"1.2.3.4","timestamp":"2025-03-01T12:00:00.5Z","status":200,"fields":{"b":"x","a":[1]},"geo":{"country_code":"FR","latitude":48.85,"location":{"lat":1.5,"lon":-2}}}"#,
            r#"{"ip":"::1","timestamp":"2025-03-02T00:00:00Z","status":null,"geo":null}"#,
        ];
        for l in lines {
            batch.push(&layout.read(l).unwrap());
        }
        let b = batch.finish(&layout).unwrap();
        assert_eq!(b.num_rows(), 2);
        let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_740_830_400_500_000);
        let status = b.column(2).as_primitive::<Int64Type>();
        assert_eq!((status.value(0), status.is_null(1)), (200, true));
        // Free-form JSON is kept as written, key order included.
        let fields = b.column(3).as_string::<i32>();
        assert_eq!(fields.value(0), r#"{"b":"x","a":[1]}"#);
        assert!(fields.is_null(1));
        let geo = b.column(4).as_struct();
        assert!(geo.is_valid(0) && geo.is_null(1));
        assert_eq!(geo.column(0).as_string::<i32>().value(0), "FR");
        assert_eq!(geo.column(1).as_primitive::<Float64Type>().value(0), 48.85);
        let loc = geo.column(2).as_struct();
        assert_eq!(loc.column(1).as_primitive::<Float64Type>().value(0), -2.0);
        // The batch starts over.
        assert!(batch.is_empty());
    }

    #[test]
    fn a_value_that_does_not_fit_its_column_is_refused_whole_with_its_path() {
        let layout = Layout::new(&specs()).unwrap();
        let too_big = r#"{"ip":"1.2.3.4","status":18446744073709551615}"#;
        assert_eq!(
            layout.read(too_big).unwrap_err(),
            RowError::Misfit {
                path: "status".into(),
                value: "18446744073709551615".into(),
                column: "64-bit integer",
            }
        );
        let text_number = r#"{"status":"200"}"#;
        assert!(matches!(
            layout.read(text_number),
            Err(RowError::Misfit { .. })
        ));
        let not_a_time = r#"{"timestamp":"yesterday"}"#;
        assert!(matches!(
            layout.read(not_a_time),
            Err(RowError::Misfit {
                column: "timestamp",
                ..
            })
        ));
        let nested = r#"{"geo":{"latitude":"north"}}"#;
        assert_eq!(
            layout.read(nested).unwrap_err(),
            RowError::Misfit {
                path: "geo.latitude".into(),
                value: "\"north\"".into(),
                column: "double",
            }
        );
        let unknown = r#"{"geo":{"city":"Paris"}}"#;
        assert_eq!(
            layout.read(unknown).unwrap_err(),
            RowError::NoColumn("geo.city".into())
        );
        assert!(matches!(layout.read("[1]"), Err(RowError::NotObject(_))));
    }

    #[test]
    fn an_escaped_string_is_unescaped() {
        let layout = Layout::new(&specs()).unwrap();
        let mut batch = Batch::new(&layout);
        batch.push(&layout.read(r#"{"ip":"a\"b\u00e9"}"#).unwrap());
        let b = batch.finish(&layout).unwrap();
        assert_eq!(b.column(0).as_string::<i32>().value(0), "a\"bé");
    }
}
