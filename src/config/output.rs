//! The output schema settings resolved: `--schema`/`output.schema`,
//! `--fields`/`output.fields` and `--ecs`/`[dataset.ecs]`, checked against the
//! flow's data sets (a setting for a data set the flow does not have is an
//! error, never ignored).

use std::collections::BTreeMap;

use super::{invalid, ConfigError, FileConfig, Flags};
use crate::schema::{mapping, select, OutputSchema, Schema};

pub(super) fn resolve_output(
    file: &FileConfig,
    flags: &Flags,
    datasets: &[&str],
) -> Result<OutputSchema, ConfigError> {
    let (f, o) = (&flags.flow.output, &file.output);
    let (schema_text, schema_key) = match (&f.schema, &o.schema) {
        (Some(s), _) => (Some(s), "--schema"),
        (None, Some(s)) => (Some(s), "output.schema"),
        (None, None) => (None, "output.schema"),
    };
    let schema = schema_text
        .map(|s| s.parse::<Schema>().map_err(|e| invalid(schema_key, e)))
        .transpose()?
        .unwrap_or_default();
    let (specs, fields_key) = if f.fields.is_empty() {
        (&o.fields, "output.fields")
    } else {
        (&f.fields, "--fields")
    };
    let fields = select::parse_specs(specs).map_err(|e| invalid(fields_key, e))?;
    let unknown = |key: &str, name: &str| {
        invalid(
            key,
            format!(
                "no data set {name:?} (the data sets are {})",
                datasets.join(", ")
            ),
        )
    };
    if let Some(name) = fields.keys().find(|n| !datasets.contains(&n.as_str())) {
        return Err(unknown(fields_key, name));
    }
    let mut ecs = BTreeMap::new();
    for d in &file.datasets {
        if d.ecs.is_empty() {
            continue;
        }
        let map = mapping::configured(d.ecs.iter().map(|(a, b)| (a.as_str(), b.as_str())))
            .map_err(|e| invalid("dataset.ecs", e))?;
        ecs.insert(d.name.clone(), map);
    }
    for spec in &f.ecs {
        let (name, map) = mapping::parse_ecs_spec(spec).map_err(|e| invalid("--ecs", e))?;
        if !datasets.contains(&name.as_str()) {
            return Err(unknown("--ecs", &name));
        }
        // A flag replaces the file's mapping of the same data set.
        ecs.insert(name, map);
    }
    Ok(OutputSchema {
        schema,
        fields,
        ecs,
    })
}
