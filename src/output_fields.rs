//! The keys of an enriched line that are not data sets, named once: the writer
//! ([`crate::enrich`], [`crate::logline::fields`]), the regex parser (its groups
//! of these names fill the common fields), readers of enriched lines (the
//! report) and the data set name check all use these.

pub const IP: &str = "ip";
pub const TIMESTAMP: &str = "timestamp";
pub const TIME_SOURCE: &str = "time_source";
pub const LINE: &str = "line";
pub const FIELDS: &str = "fields";
pub const IDENT: &str = "ident";
pub const EXTRA: &str = "extra";
pub const TRUNCATED: &str = "truncated";

pub const USER: &str = "user";
pub const REQUEST: &str = "request";
pub const METHOD: &str = "method";
pub const PATH: &str = "path";
pub const PROTOCOL: &str = "protocol";
pub const STATUS: &str = "status";
pub const BYTES: &str = "bytes";
pub const REFERER: &str = "referer";
pub const USER_AGENT: &str = "user_agent";
pub const HOST: &str = "host";
pub const UPSTREAM: &str = "upstream";
pub const DURATION: &str = "duration";

/// The common fields every format maps onto ([`crate::logline::Common`]).
pub const COMMON: &[&str] = &[
    USER, REQUEST, METHOD, PATH, PROTOCOL, STATUS, BYTES, REFERER, USER_AGENT, HOST, UPSTREAM,
    DURATION,
];

/// The keys around the common fields.
const OTHERS: &[&str] = &[
    IP,
    TIMESTAMP,
    TIME_SOURCE,
    LINE,
    FIELDS,
    IDENT,
    EXTRA,
    TRUNCATED,
];

/// Whether `name` is a key of enriched lines other than a data set's.
pub fn is_output_field(name: &str) -> bool {
    COMMON.contains(&name) || OTHERS.contains(&name)
}

/// The type of a field's values as a consumer's schema names it: an ECS field
/// type (`keyword`, `long`, `double`, `date`, `ip`, `geo_point`, `boolean`) and,
/// for Parquet output, a column type. `Object` is free-form JSON (a JSON log
/// line's own fields), kept as its JSON text where a column needs one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Keyword,
    Long,
    Double,
    Date,
    Ip,
    GeoPoint,
    Boolean,
    Object,
}

/// One field an enriched line of a given flow can contain: its dotted path
/// (`source.geo.country_iso_code`, `geo.country_code`) and the type of its
/// values. A schema lists these for a flow (its log format, data sets and
/// chosen fields) so that typed outputs (Parquet columns) and conformance
/// checks (ECS) are derived from the same list the writer follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub path: String,
    pub ty: ValueType,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_keys_are_output_fields_and_data_set_names_are_not() {
        for k in [
            "ip",
            "timestamp",
            "time_source",
            "status",
            "user_agent",
            "extra",
        ] {
            assert!(is_output_field(k), "{k}");
        }
        for k in ["whip", "geo", "asn", "time"] {
            assert!(!is_output_field(k), "{k}");
        }
    }
}
