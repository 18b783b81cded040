//! Output schemas: the shape of an enriched line.
//!
//! - [`Schema::Whipstream`] (the default): `ip`, `timestamp`, the parsed fields,
//!   `line` and each data set's record under its name;
//! - [`Schema::Ecs`]: the Elastic Common Schema, nested objects (`@timestamp`,
//!   `source.ip`, `http.response.status_code`, `source.geo.*`, `source.as.*`,
//!   ...; see [`ecs`]), with whatever has no ECS name under `whipstream.*`.
//!
//! Both take `--fields` ([`select`]): only the chosen record fields of a data
//! set, renamed where asked. Record bytes are prepared per distinct payload when
//! an index is opened or swapped ([`render`]); the writer copies bytes.
//!
//! [`field_specs`] lists what a flow's lines can contain (dotted path and type)
//! for each schema: typed outputs derive their columns from it, and the ECS
//! conformance test checks it against the ECS field reference.
//!
//! Layout: [`select`] (`--fields`), [`mapping`] (record fields to ECS, configured
//! or recognised), [`render`] (per-payload bytes), [`ecs`] (the ECS line).

pub mod ecs;
pub mod mapping;
pub mod render;
pub mod select;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::index::Index;
use crate::logline::{Format, ParserConfig};
use crate::output_fields::{self as names, FieldSpec, ValueType};
pub use mapping::EcsMap;
pub use select::{Selection, Source};

/// The shape of enriched lines: `--schema` / `output.schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schema {
    #[default]
    Whipstream,
    Ecs,
}

impl std::str::FromStr for Schema {
    type Err = crate::value::UnknownValue;
    fn from_str(s: &str) -> Result<Schema, Self::Err> {
        crate::value::pick(
            "schema",
            s,
            &[("whipstream", Schema::Whipstream), ("ecs", Schema::Ecs)],
        )
    }
}

impl Schema {
    /// The top-level key of a line's event time in this schema.
    pub fn time_field(self) -> &'static str {
        match self {
            Schema::Whipstream => names::TIMESTAMP,
            Schema::Ecs => ecs::TIMESTAMP,
        }
    }
}

/// The output settings of a flow: the schema, chosen fields and configured
/// ECS mappings by data set name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputSchema {
    pub schema: Schema,
    pub fields: BTreeMap<String, Selection>,
    pub ecs: BTreeMap<String, EcsMap>,
}

impl OutputSchema {
    /// Whether lines are written as today's whole records (nothing to prepare).
    pub fn is_plain(&self) -> bool {
        self.schema == Schema::Whipstream && self.fields.is_empty()
    }

    /// The per-data-set settings, in data set order.
    pub fn for_datasets<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<DataSetOutput> {
        names
            .map(|n| DataSetOutput {
                name: n.to_string(),
                fields: self.fields.get(n).cloned(),
                ecs: self.ecs.get(n).cloned(),
            })
            .collect()
    }
}

/// One data set's output settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSetOutput {
    pub name: String,
    pub fields: Option<Selection>,
    /// A configured mapping; `None`: recognised from the payloads.
    pub ecs: Option<EcsMap>,
}

/// Provenance output names: (source, output name) in the order begin, end,
/// datetime; all three without a selection, only those asked with one.
pub fn provenance(selection: Option<&Selection>) -> impl Iterator<Item = (Source, &str)> {
    [
        (Source::Begin, "begin"),
        (Source::End, "end"),
        (Source::Datetime, "datetime"),
    ]
    .into_iter()
    .filter_map(move |(s, default)| match selection {
        None => Some((s, default)),
        Some(sel) => sel.provenance(&s).map(|out| (s, out)),
    })
}

fn spec(path: impl Into<String>, ty: ValueType) -> FieldSpec {
    FieldSpec {
        path: path.into(),
        ty,
    }
}

/// The type a record leaf's values have across the payloads.
fn leaf_type(k: &mapping::LeafKinds) -> ValueType {
    // No value is ever rounded or cut into its column: an integer beyond i64,
    // or one a double cannot hold beside non-integers, keeps its JSON text.
    match (k.strings, k.numbers, k.other) {
        (true, false, false) => ValueType::Keyword,
        (false, true, false) if k.beyond_i64 => ValueType::Object,
        (false, true, false) if k.integers_only => ValueType::Long,
        (false, true, false) if k.wide_integers => ValueType::Object,
        (false, true, false) => ValueType::Double,
        (false, false, true) if k.booleans_only => ValueType::Boolean,
        (false, false, false) => ValueType::Keyword,
        _ => ValueType::Object,
    }
}

/// The record fields a data set writes (under `prefix`) other than
/// provenance and ECS-mapped ones, with their types.
fn record_specs(
    prefix: &str,
    selection: Option<&Selection>,
    shape: &mapping::Shape,
    mapped: &dyn Fn(&str) -> bool,
    out: &mut Vec<FieldSpec>,
) {
    let ty_of = |path: &str| {
        shape.get(path).map(leaf_type).unwrap_or_else(|| {
            // A path to an object (a chosen `country` of a nested record).
            let inner = format!("{path}.");
            if shape.keys().any(|k| k.starts_with(&inner)) {
                ValueType::Object
            } else {
                ValueType::Keyword
            }
        })
    };
    match selection {
        Some(sel) => {
            for (o, path) in sel.record_fields() {
                if !mapped(path) {
                    out.push(spec(format!("{prefix}.{o}"), ty_of(path)));
                }
            }
        }
        None => {
            for (path, k) in shape {
                if !mapped(path) {
                    out.push(spec(format!("{prefix}.{path}"), leaf_type(k)));
                }
            }
        }
    }
}

fn provenance_specs(prefix: &str, selection: Option<&Selection>, out: &mut Vec<FieldSpec>) {
    for (s, o) in provenance(selection) {
        let ty = if s == Source::Datetime {
            ValueType::Date
        } else {
            ValueType::Ip
        };
        out.push(spec(format!("{prefix}.{o}"), ty));
    }
}

/// A flow's parsed fields in the whipstream schema.
fn whipstream_line_specs(parser: &ParserConfig, include_line: bool) -> Vec<FieldSpec> {
    use ValueType::*;
    let mut out = vec![
        spec(names::IP, Ip),
        spec(names::TIMESTAMP, Date),
        spec(names::TIME_SOURCE, Keyword),
    ];
    for n in names::COMMON {
        let ty = match *n {
            names::STATUS | names::BYTES => Long,
            names::DURATION => Double,
            _ => Keyword,
        };
        out.push(spec(*n, ty));
    }
    // An array of strings (fields past a format's known ones).
    out.push(spec(names::EXTRA, Object));
    out.push(spec(names::TRUNCATED, Boolean));
    if matches!(parser.format, Format::Auto | Format::Json | Format::W3c) {
        out.push(spec(names::FIELDS, Object));
    }
    if let Some(re) = &parser.regex {
        for g in crate::logline::regex::other_groups(re) {
            out.push(spec(g, Keyword));
        }
    }
    if include_line {
        out.push(spec(names::LINE, Keyword));
    }
    out
}

/// Every field a flow's lines can contain in `schema`: its parser settings,
/// whether the line is kept, and each data set's output settings with its
/// current index (whose payloads tell the record fields and their types).
/// The list is a superset: a line has a field only when it has a value for it
/// (or the field was chosen with `--fields`).
pub fn field_specs(
    output: &OutputSchema,
    parser: &ParserConfig,
    include_line: bool,
    datasets: &[(&str, Arc<Index>)],
) -> Vec<FieldSpec> {
    let outputs = output.for_datasets(datasets.iter().map(|(n, _)| *n));
    let indexes: Vec<Arc<Index>> = datasets.iter().map(|(_, i)| i.clone()).collect();
    let shaped = render::shapes_and_maps(&outputs, &indexes);
    match output.schema {
        Schema::Whipstream => {
            let mut out = whipstream_line_specs(parser, include_line);
            for (o, (shape, _)) in outputs.iter().zip(&shaped) {
                provenance_specs(&o.name, o.fields.as_ref(), &mut out);
                record_specs(&o.name, o.fields.as_ref(), shape, &|_| false, &mut out);
            }
            out
        }
        Schema::Ecs => {
            let mut out = ecs::line_specs(parser, include_line);
            for (o, (shape, map)) in outputs.iter().zip(&shaped) {
                let chosen = |path: &str| {
                    o.fields
                        .as_ref()
                        .is_none_or(|s| s.record_fields().any(|(_, p)| p == path))
                };
                let mut located = false;
                for (f, path) in &map.fields {
                    if !chosen(path) {
                        continue;
                    }
                    match f {
                        mapping::EcsField::Lat | mapping::EcsField::Lon if located => {}
                        mapping::EcsField::Lat | mapping::EcsField::Lon => {
                            located = true;
                            out.push(spec("source.geo.location", ValueType::GeoPoint));
                        }
                        _ => out.push(spec(format!("source.{}", f.name()), f.ty())),
                    }
                }
                let prefix = format!("{}.{}", ecs::WHIPSTREAM, o.name);
                provenance_specs(&prefix, o.fields.as_ref(), &mut out);
                // A mapped value that cannot be the ECS one stays under its
                // own name: listed as well, with its record type.
                let never_stays = |path: &str| {
                    map.field_of(path).is_some_and(|f| {
                        matches!(f.ty(), ValueType::Keyword)
                            && shape
                                .get(path)
                                .is_some_and(|k| k.strings && !k.numbers && !k.other)
                    })
                };
                record_specs(&prefix, o.fields.as_ref(), shape, &never_stays, &mut out);
            }
            out
        }
    }
}

/// Writes a data set's record object from its prepared payload bytes: the
/// provenance asked for (all of it without chosen fields), then the payload
/// part (the chosen fields, or for ECS the fields with no ECS name). The
/// datetime is RFC 3339 UTC with `utc` (ECS), else as loaded (as the whole
/// record has it).
pub fn write_record(
    m: &crate::index::Match<'_>,
    table: &render::SetTable,
    selection: Option<&Selection>,
    utc: bool,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    let mut first = true;
    for (s, name) in provenance(selection) {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        crate::json::write_key(out, name);
        match s {
            Source::Datetime if utc => table.write_datetime(m.snapshot, out),
            Source::Datetime => out.extend_from_slice(&m.snapshot.datetime_json),
            // `provenance` yields begin, end and datetime only.
            Source::Begin | Source::End | Source::Field(_) => {
                out.push(b'"');
                if s == Source::Begin {
                    m.line.begin.write_text(out);
                } else {
                    m.line.end.write_text(out);
                }
                out.push(b'"');
            }
        }
    }
    let record = table.parts(m.line.payload).record;
    if !record.is_empty() {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(record);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types_of(payloads: &[&str]) -> Vec<(String, ValueType)> {
        let mut shape = mapping::Shape::new();
        for p in payloads {
            let record: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(p).unwrap();
            mapping::add_to_shape(&mut shape, &record);
        }
        shape
            .iter()
            .map(|(k, v)| (k.clone(), leaf_type(v)))
            .collect()
    }

    #[test]
    fn a_record_leaf_is_typed_by_the_union_of_its_values_and_never_rounded() {
        use ValueType::*;
        let got = types_of(&[
            r#"{"cc":"US","asn":13335,"lat":40.5,"ok":true,"mix":1,"near":9007199254740993,"v":9007199254740993,"huge":18446744073709551615}"#,
            r#"{"cc":"DE","asn":3320,"lat":52,"ok":false,"mix":"x","near":1,"v":0.5,"huge":1}"#,
            r#"{"cc":null,"asn":null,"lat":null,"ok":null,"mix":null,"near":null,"v":null,"huge":null}"#,
        ]);
        let want: Vec<(String, ValueType)> = [
            ("asn", Long),
            ("cc", Keyword),
            ("huge", Object),
            ("lat", Double),
            ("mix", Object),
            ("near", Long),
            ("ok", Boolean),
            ("v", Object),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect();
        assert_eq!(got, want);
    }
}
