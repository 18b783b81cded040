//! `--fields NAME=FIELD,...`: which record fields of a data set an enriched
//! line carries, and under which names.
//!
//! A spec is `NAME=ITEM[,ITEM...]` where an item is `FIELD` or `OUT:FIELD` (the
//! field written as `OUT`). `FIELD` is a record field, a dotted path into a
//! nested record (`country.iso_code`), or one of the provenance fields `begin`,
//! `end`, `datetime`, which are left out unless asked for. The selection is
//! applied to each distinct payload once, when an index is opened or swapped
//! ([`super::render`]), never per line.

use std::collections::BTreeMap;

/// Why a `--fields` spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("{0:?}: expected NAME=FIELD[,FIELD...] (e.g. geo=country_code,city)")]
    NoName(String),
    #[error("{spec:?}: empty field name (items are FIELD or OUT:FIELD, separated by commas)")]
    EmptyField { spec: String },
    #[error("{spec:?}: output name {name:?} given twice")]
    Duplicate { spec: String, name: String },
    #[error("{spec:?}: output name {name:?}: use letters, digits, _, - and @")]
    BadOutName { spec: String, name: String },
    #[error("fields of data set {0:?} given twice")]
    DatasetTwice(String),
}

/// Where a selected field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The matched range's first address.
    Begin,
    /// The matched range's last address.
    End,
    /// The answering snapshot's datetime.
    Datetime,
    /// A record field: a top-level key or a dotted path into nested objects.
    Field(String),
}

impl Source {
    fn of(name: &str) -> Source {
        match name {
            "begin" => Source::Begin,
            "end" => Source::End,
            "datetime" => Source::Datetime,
            other => Source::Field(other.to_string()),
        }
    }
}

/// One chosen field: its output name and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub out: String,
    pub source: Source,
}

/// The chosen fields of one data set, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub fields: Vec<Chosen>,
}

impl Selection {
    /// Whether provenance `s` was asked for, and under which name.
    pub fn provenance(&self, s: &Source) -> Option<&str> {
        self.fields
            .iter()
            .find(|c| &c.source == s)
            .map(|c| c.out.as_str())
    }

    /// The chosen record fields (provenance left out).
    pub fn record_fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().filter_map(|c| match &c.source {
            Source::Field(f) => Some((c.out.as_str(), f.as_str())),
            _ => None,
        })
    }
}

fn plain_out_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
}

/// Parses the items of one data set (`cc:country_code,city`), `spec` naming
/// the whole argument in errors.
pub fn parse_items(spec: &str, items: &str) -> Result<Selection, SelectError> {
    let mut fields: Vec<Chosen> = Vec::new();
    for item in items.split(',') {
        let item = item.trim();
        let (out, field) = match item.split_once(':') {
            Some((out, field)) => (out.trim(), field.trim()),
            None => (item, item),
        };
        if field.is_empty() || out.is_empty() || field.split('.').any(str::is_empty) {
            return Err(SelectError::EmptyField {
                spec: spec.to_string(),
            });
        }
        // A dotted field without a rename is written under its last part.
        let out = if out == field {
            field.rsplit('.').next().unwrap_or(field)
        } else {
            out
        };
        if !plain_out_name(out) {
            return Err(SelectError::BadOutName {
                spec: spec.to_string(),
                name: out.to_string(),
            });
        }
        if fields.iter().any(|c| c.out == out) {
            return Err(SelectError::Duplicate {
                spec: spec.to_string(),
                name: out.to_string(),
            });
        }
        fields.push(Chosen {
            out: out.to_string(),
            source: Source::of(field),
        });
    }
    Ok(Selection { fields })
}

/// Parses `NAME=ITEM,...` into the data set's name and its selection.
pub fn parse_spec(spec: &str) -> Result<(String, Selection), SelectError> {
    let Some((name, items)) = spec.split_once('=') else {
        return Err(SelectError::NoName(spec.to_string()));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(SelectError::NoName(spec.to_string()));
    }
    Ok((name.to_string(), parse_items(spec, items)?))
}

/// Parses every spec; a data set given twice is an error.
pub fn parse_specs(specs: &[String]) -> Result<BTreeMap<String, Selection>, SelectError> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (name, sel) = parse_spec(spec)?;
        if out.insert(name.clone(), sel).is_some() {
            return Err(SelectError::DatasetTwice(name));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(out: &str, source: Source) -> Chosen {
        Chosen {
            out: out.into(),
            source,
        }
    }

    #[test]
    fn items_are_fields_renames_and_provenance() {
        let (name, sel) = parse_spec("geo=cc:country_code,city,datetime,at:begin").unwrap();
        assert_eq!(name, "geo");
        assert_eq!(
            sel.fields,
            [
                chosen("cc", Source::Field("country_code".into())),
                chosen("city", Source::Field("city".into())),
                chosen("datetime", Source::Datetime),
                chosen("at", Source::Begin),
            ]
        );
        assert_eq!(sel.provenance(&Source::Begin), Some("at"));
        assert_eq!(sel.provenance(&Source::End), None);
        let fields: Vec<_> = sel.record_fields().collect();
        assert_eq!(fields, [("cc", "country_code"), ("city", "city")]);
    }

    #[test]
    fn a_dotted_path_is_written_under_its_last_part_unless_renamed() {
        let (_, sel) = parse_spec("geo=country.iso_code,lat:location.latitude").unwrap();
        let fields: Vec<_> = sel.record_fields().collect();
        assert_eq!(
            fields,
            [
                ("iso_code", "country.iso_code"),
                ("lat", "location.latitude")
            ]
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| parse_spec(s).unwrap_err().to_string();
        assert!(err("country_code").contains("expected NAME=FIELD"));
        assert!(err("=cc").contains("expected NAME=FIELD"));
        assert!(err("geo=").contains("empty field name"));
        assert!(err("geo=cc,,city").contains("empty field name"));
        assert!(err("geo=cc:").contains("empty field name"));
        assert!(err("geo=a..b").contains("empty field name"));
        assert!(err("geo=x:a,x:b").contains("output name \"x\" given twice"));
        assert!(err("geo=a b:c").contains("output name \"a b\""));
        let twice = parse_specs(&["geo=a".into(), "geo=b".into()]).unwrap_err();
        assert_eq!(twice, SelectError::DatasetTwice("geo".into()));
    }
}
