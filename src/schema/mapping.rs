//! How a data set's record maps to ECS: `source.geo.*` and `source.as.*`.
//!
//! A mapping is a list of (ECS field, record field path) pairs. It is either
//! configured (`--ecs NAME=ECS_FIELD:RECORD_FIELD,...`, `[dataset.ecs]`) or
//! recognised from the field names of the data set's distinct payloads
//! ([`recognise`]): MaxMind GeoLite2/GeoIP2 City, Country and ASN records
//! (nested `country.iso_code`, `location.latitude`, `autonomous_system_number`),
//! the ip-location-db files (`country_code`, `state1`, `city`, `postcode`,
//! `latitude`, `longitude`, `autonomous_system_number`), DB-IP, IPinfo
//! (`country`, `asn` as `AS13335`, `as_name`), and a plain `country` code.
//! Recognition reads each distinct payload once per index, never a line.

use std::collections::BTreeMap;

use crate::output_fields::ValueType;

/// An ECS field a data set can fill, under `source.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EcsField {
    ContinentCode,
    ContinentName,
    CountryIsoCode,
    CountryName,
    RegionIsoCode,
    RegionName,
    CityName,
    PostalCode,
    Timezone,
    Lat,
    Lon,
    AsNumber,
    AsOrgName,
}

/// Which object under `source` an ECS field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Geo,
    As,
}

impl EcsField {
    pub const ALL: [EcsField; 13] = [
        EcsField::ContinentCode,
        EcsField::ContinentName,
        EcsField::CountryIsoCode,
        EcsField::CountryName,
        EcsField::RegionIsoCode,
        EcsField::RegionName,
        EcsField::CityName,
        EcsField::PostalCode,
        EcsField::Timezone,
        EcsField::Lat,
        EcsField::Lon,
        EcsField::AsNumber,
        EcsField::AsOrgName,
    ];

    /// The name under `source.` (`geo.country_iso_code`); latitude and
    /// longitude are the two halves of the geo_point `geo.location`.
    pub fn name(self) -> &'static str {
        match self {
            EcsField::ContinentCode => "geo.continent_code",
            EcsField::ContinentName => "geo.continent_name",
            EcsField::CountryIsoCode => "geo.country_iso_code",
            EcsField::CountryName => "geo.country_name",
            EcsField::RegionIsoCode => "geo.region_iso_code",
            EcsField::RegionName => "geo.region_name",
            EcsField::CityName => "geo.city_name",
            EcsField::PostalCode => "geo.postal_code",
            EcsField::Timezone => "geo.timezone",
            EcsField::Lat => "geo.location.lat",
            EcsField::Lon => "geo.location.lon",
            EcsField::AsNumber => "as.number",
            EcsField::AsOrgName => "as.organization.name",
        }
    }

    pub fn target(self) -> Target {
        match self {
            EcsField::AsNumber | EcsField::AsOrgName => Target::As,
            _ => Target::Geo,
        }
    }

    /// The key inside the target object (`location` for both halves of it).
    pub fn key(self) -> &'static str {
        let name = self.name();
        let rest = name.split_once('.').map_or(name, |(_, r)| r);
        rest.split('.').next().unwrap_or(rest)
    }

    /// The ECS type of the field's values (`geo.location` is a geo_point).
    pub fn ty(self) -> ValueType {
        match self {
            EcsField::AsNumber => ValueType::Long,
            EcsField::Lat | EcsField::Lon => ValueType::GeoPoint,
            _ => ValueType::Keyword,
        }
    }

    fn by_name(name: &str) -> Option<EcsField> {
        let name = name.strip_prefix("source.").unwrap_or(name);
        EcsField::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Record paths that hold this field in the shapes people load, in order
    /// of preference.
    fn candidates(self) -> &'static [&'static str] {
        match self {
            EcsField::ContinentCode => &["continent.code", "continent_code"],
            EcsField::ContinentName => &["continent.names.en", "continent_name"],
            EcsField::CountryIsoCode => &[
                "country.iso_code",
                "country_iso_code",
                "country_code",
                "countryCode",
                "country_code2",
                "cc",
            ],
            EcsField::CountryName => &["country.names.en", "country_name", "countryName"],
            EcsField::RegionIsoCode => &["subdivisions.0.iso_code", "region_code"],
            EcsField::RegionName => &[
                "subdivisions.0.names.en",
                "region_name",
                "region",
                "state1",
                "stateprov",
                "subdivision_1_name",
            ],
            EcsField::CityName => &["city.names.en", "city_name", "city"],
            EcsField::PostalCode => &[
                "postal.code",
                "postal_code",
                "postcode",
                "postal",
                "zip",
                "zip_code",
            ],
            EcsField::Timezone => &["location.time_zone", "time_zone", "timezone"],
            EcsField::Lat => &["location.latitude", "latitude", "lat"],
            EcsField::Lon => &["location.longitude", "longitude", "lon", "lng"],
            EcsField::AsNumber => &[
                "autonomous_system_number",
                "asn",
                "as_number",
                "as_num",
                "autonomous_system.number",
            ],
            EcsField::AsOrgName => &[
                "autonomous_system_organization",
                "as_org",
                "as_name",
                "as_organization",
                "as_domain_name",
                "organization",
            ],
        }
    }
}

/// A data set's record fields mapped to ECS: (ECS field, record path).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EcsMap {
    pub fields: Vec<(EcsField, String)>,
}

impl EcsMap {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        self.fields.iter().map(|(f, _)| f.target())
    }

    /// The ECS field a record path fills.
    pub fn field_of(&self, path: &str) -> Option<EcsField> {
        self.fields.iter().find(|(_, p)| p == path).map(|(f, _)| *f)
    }

    /// `country_iso_code<-country, ...`: for logs.
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|(f, p)| format!("source.{}<-{p}", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the distinct payloads of a data set hold at a leaf path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeafKinds {
    pub strings: bool,
    pub numbers: bool,
    pub integers_only: bool,
    /// Some integer a double cannot hold exactly (beyond 2^53), or one beyond
    /// `i64`: the field is then no `Double` (nor, beyond `i64`, a `Long`) column.
    pub wide_integers: bool,
    pub beyond_i64: bool,
    pub other: bool,
    /// Every `other` value is a boolean.
    pub booleans_only: bool,
    /// The longest string value, in characters.
    pub longest: usize,
}

/// The leaf paths of a data set's payloads and what they hold.
pub type Shape = BTreeMap<String, LeafKinds>;

/// Adds a payload (a JSON object) to `shape`.
pub fn add_to_shape(shape: &mut Shape, record: &serde_json::Map<String, serde_json::Value>) {
    let mut leaves = Vec::new();
    flatten_into("", record, &mut leaves);
    for (path, v) in leaves {
        let k = shape.entry(path).or_insert(LeafKinds {
            integers_only: true,
            booleans_only: true,
            ..LeafKinds::default()
        });
        match v {
            serde_json::Value::String(s) => {
                k.strings = true;
                k.integers_only = false;
                k.longest = k.longest.max(s.chars().count());
            }
            serde_json::Value::Number(n) => {
                k.numbers = true;
                k.integers_only &= n.is_i64() || n.is_u64();
                k.beyond_i64 |= !n.is_i64() && n.is_u64();
                k.wide_integers |= n
                    .as_i64()
                    .map_or(n.is_u64(), |i| i.unsigned_abs() > 1 << 53);
            }
            serde_json::Value::Null => {}
            serde_json::Value::Bool(_) => {
                k.other = true;
                k.integers_only = false;
            }
            _ => {
                k.other = true;
                k.booleans_only = false;
                k.integers_only = false;
            }
        }
    }
}

/// Every leaf of `obj` with its dotted path (array items by index).
pub fn flatten_into<'a>(
    prefix: &str,
    obj: &'a serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    for (k, v) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        flatten_value(path, v, out);
    }
}

fn flatten_value<'a>(
    path: String,
    v: &'a serde_json::Value,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    match v {
        serde_json::Value::Object(o) => flatten_into(&path, o, out),
        serde_json::Value::Array(a) if a.iter().all(|x| x.is_object()) && !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                flatten_value(format!("{path}.{i}"), x, out);
            }
        }
        _ => out.push((path, v)),
    }
}

/// The mapping recognised from a data set's shape (empty when nothing is
/// recognised). A plain `country` field is the ISO code when its values are
/// codes (at most 3 characters) and the country name otherwise.
pub fn recognise(shape: &Shape) -> EcsMap {
    let mut fields = Vec::new();
    let usable = |path: &str| shape.get(path).filter(|k| !k.other);
    for f in EcsField::ALL {
        let found = f.candidates().iter().find(|p| match usable(p) {
            // Coordinates and AS numbers must be numbers or numeric text;
            // names and codes must be text.
            Some(k) => match f {
                EcsField::Lat | EcsField::Lon => k.numbers || k.strings,
                EcsField::AsNumber => k.integers_only || k.strings,
                _ => k.strings && !k.numbers,
            },
            None => false,
        });
        if let Some(p) = found {
            fields.push((f, p.to_string()));
        }
    }
    let has = |fields: &[(EcsField, String)], f: EcsField| fields.iter().any(|(g, _)| *g == f);
    if let Some(k) = usable("country").filter(|k| k.strings && !k.numbers) {
        if k.longest <= 3 && !has(&fields, EcsField::CountryIsoCode) {
            fields.push((EcsField::CountryIsoCode, "country".into()));
        } else if k.longest > 3 && !has(&fields, EcsField::CountryName) {
            fields.push((EcsField::CountryName, "country".into()));
        }
    }
    // Latitude without longitude (or the reverse) is no geo_point.
    if has(&fields, EcsField::Lat) != has(&fields, EcsField::Lon) {
        fields.retain(|(f, _)| !matches!(f, EcsField::Lat | EcsField::Lon));
    }
    fields.sort_by_key(|(f, _)| *f);
    EcsMap { fields }
}

/// Why a configured ECS mapping is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error(
        "{0:?}: expected NAME=ECS_FIELD:RECORD_FIELD[,...] (e.g. geo=geo.country_iso_code:cc)"
    )]
    NoName(String),
    #[error("{item:?}: expected ECS_FIELD:RECORD_FIELD")]
    NoRecordField { item: String },
    #[error("{field:?} is not an ECS field whipstream fills; use one of: {}", EcsField::ALL.map(|f| f.name()).join(", "))]
    UnknownField { field: String },
    #[error("{field:?} mapped twice")]
    Twice { field: String },
    #[error("ECS mapping of data set {0:?} given twice")]
    DatasetTwice(String),
}

/// A configured mapping from (ECS field, record field) pairs.
pub fn configured<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<EcsMap, MapError> {
    let mut fields: Vec<(EcsField, String)> = Vec::new();
    for (ecs, record) in pairs {
        let f = EcsField::by_name(ecs.trim()).ok_or_else(|| MapError::UnknownField {
            field: ecs.to_string(),
        })?;
        if record.trim().is_empty() {
            return Err(MapError::NoRecordField {
                item: format!("{ecs}:"),
            });
        }
        if fields.iter().any(|(g, _)| *g == f) {
            return Err(MapError::Twice {
                field: ecs.to_string(),
            });
        }
        fields.push((f, record.trim().to_string()));
    }
    fields.sort_by_key(|(f, _)| *f);
    Ok(EcsMap { fields })
}

/// `--ecs NAME=ECS_FIELD:RECORD_FIELD,...`.
pub fn parse_ecs_spec(spec: &str) -> Result<(String, EcsMap), MapError> {
    let Some((name, items)) = spec.split_once('=').filter(|(n, _)| !n.trim().is_empty()) else {
        return Err(MapError::NoName(spec.to_string()));
    };
    let mut pairs = Vec::new();
    for item in items.split(',') {
        let Some(pair) = item.split_once(':') else {
            return Err(MapError::NoRecordField {
                item: item.to_string(),
            });
        };
        pairs.push(pair);
    }
    Ok((name.trim().to_string(), configured(pairs)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(records: &[&str]) -> Shape {
        let mut shape = Shape::new();
        for r in records {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            add_to_shape(&mut shape, v.as_object().unwrap());
        }
        shape
    }

    fn mapped(records: &[&str]) -> Vec<(&'static str, String)> {
        recognise(&shape_of(records))
            .fields
            .into_iter()
            .map(|(f, p)| (f.name(), p))
            .collect()
    }

    fn pairs(p: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        p.iter().map(|(a, b)| (*a, b.to_string())).collect()
    }

    #[test]
    fn maxmind_city_nested_records() {
        let city = r#"{"city":{"geoname_id":1,"names":{"en":"Berlin","de":"Berlin"}},
            "continent":{"code":"EU","names":{"en":"Europe"}},
            "country":{"iso_code":"DE","names":{"en":"Germany"}},
            "location":{"latitude":52.5,"longitude":13.4,"time_zone":"Europe/Berlin"},
            "postal":{"code":"10115"},
            "subdivisions":[{"iso_code":"BE","names":{"en":"Land Berlin"}}]}"#;
        assert_eq!(
            mapped(&[city]),
            pairs(&[
                ("geo.continent_code", "continent.code"),
                ("geo.continent_name", "continent.names.en"),
                ("geo.country_iso_code", "country.iso_code"),
                ("geo.country_name", "country.names.en"),
                ("geo.region_iso_code", "subdivisions.0.iso_code"),
                ("geo.region_name", "subdivisions.0.names.en"),
                ("geo.city_name", "city.names.en"),
                ("geo.postal_code", "postal.code"),
                ("geo.timezone", "location.time_zone"),
                ("geo.location.lat", "location.latitude"),
                ("geo.location.lon", "location.longitude"),
            ])
        );
    }

    #[test]
    fn maxmind_asn_and_ip_location_db_asn() {
        let asn =
            r#"{"autonomous_system_number":13335,"autonomous_system_organization":"Cloudflare"}"#;
        assert_eq!(
            mapped(&[asn]),
            pairs(&[
                ("as.number", "autonomous_system_number"),
                ("as.organization.name", "autonomous_system_organization"),
            ])
        );
        // The shared ASN snapshot's shape.
        let whip = r#"{"asn":13335,"as_org":"Cloudflare, Inc."}"#;
        assert_eq!(
            mapped(&[whip]),
            pairs(&[("as.number", "asn"), ("as.organization.name", "as_org")])
        );
    }

    #[test]
    fn ip_location_db_city_and_dbip_and_ipinfo() {
        let ild = r#"{"country_code":"DE","state1":"Berlin","city":"Berlin","postcode":"10115","latitude":"52.5","longitude":"13.4","timezone":"Europe/Berlin"}"#;
        assert_eq!(
            mapped(&[ild]),
            pairs(&[
                ("geo.country_iso_code", "country_code"),
                ("geo.region_name", "state1"),
                ("geo.city_name", "city"),
                ("geo.postal_code", "postcode"),
                ("geo.timezone", "timezone"),
                ("geo.location.lat", "latitude"),
                ("geo.location.lon", "longitude"),
            ])
        );
        let ipinfo = r#"{"country":"US","country_name":"United States","continent":"NA","asn":"AS15169","as_name":"Google LLC","as_domain":"google.com"}"#;
        assert_eq!(
            mapped(&[ipinfo]),
            pairs(&[
                ("geo.country_iso_code", "country"),
                ("geo.country_name", "country_name"),
                ("as.number", "asn"),
                ("as.organization.name", "as_name"),
            ])
        );
    }

    #[test]
    fn a_plain_country_is_a_code_or_a_name_by_its_values() {
        assert_eq!(
            mapped(&[r#"{"country":"CN"}"#, r#"{"country":"AU"}"#]),
            pairs(&[("geo.country_iso_code", "country")])
        );
        assert_eq!(
            mapped(&[r#"{"country":"Germany"}"#]),
            pairs(&[("geo.country_name", "country")])
        );
    }

    #[test]
    fn unknown_shapes_and_half_points_map_nothing() {
        assert!(mapped(&[r#"{"score":3,"list":"spamhaus"}"#]).is_empty());
        assert!(mapped(&[r#"{"latitude":1.5}"#]).is_empty());
        // A number where a name belongs is not taken for one.
        assert!(mapped(&[r#"{"city":7}"#]).is_empty());
    }

    #[test]
    fn configured_mappings_and_their_errors() {
        let (name, map) = parse_ecs_spec("geo=geo.country_iso_code:cc,source.as.number:n").unwrap();
        assert_eq!(name, "geo");
        assert_eq!(
            map.fields,
            [
                (EcsField::CountryIsoCode, "cc".to_string()),
                (EcsField::AsNumber, "n".to_string())
            ]
        );
        let err = |s: &str| parse_ecs_spec(s).unwrap_err().to_string();
        assert!(err("geo.country_iso_code:cc").contains("expected NAME="));
        assert!(err("geo=geo.country_iso_code").contains("expected ECS_FIELD:RECORD_FIELD"));
        assert!(err("geo=geo.colour:c").contains("not an ECS field whipstream fills"));
        assert!(err("geo=geo.city_name:a,geo.city_name:b").contains("mapped twice"));
        assert!(err("geo=geo.city_name:").contains("expected ECS_FIELD:RECORD_FIELD"));
    }
}
