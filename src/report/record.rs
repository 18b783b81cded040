//! What a data set's record says about where a request came from: country,
//! city, coordinates and network.
//!
//! Field names vary between data sets (Whip country snapshots, MaxMind-derived
//! city data, ASN lists), so each is looked up under its usual names and the
//! first one present wins. A data set's role in the report (locations or
//! networks) is decided from what its records say here, never from its name.

use serde_json::Value;

const LAT: [&str; 6] = [
    "latitude",
    "lat",
    "location.latitude",
    "location.lat",
    "geo.lat",
    "geo.latitude",
];
const LON: [&str; 9] = [
    "longitude",
    "lng",
    "lon",
    "location.longitude",
    "location.lng",
    "location.lon",
    "geo.lon",
    "geo.lng",
    "geo.longitude",
];
const COUNTRY: [&str; 7] = [
    "country_code",
    "country_iso_code",
    "country.iso_code",
    "iso_code",
    "cc",
    "country",
    "countryCode",
];
const CITY: [&str; 4] = ["city", "city.names.en", "city_name", "city.name"];
const ASN: [&str; 5] = [
    "asn",
    "autonomous_system_number",
    "as_number",
    "as",
    "asn.asn",
];
const ORG: [&str; 6] = [
    "as_name",
    "as_org",
    "autonomous_system_organization",
    "as_organization",
    "org",
    "organization",
];

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn first_number(v: &Value, paths: &[&str]) -> Option<f64> {
    paths.iter().find_map(|p| match get(v, p)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn first_text(v: &Value, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| match get(v, p)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The fields of one record that the report uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub city: Option<String>,
    /// `(lat, lon)`, only when both are in range.
    pub coords: Option<(f64, f64)>,
    /// `AS<n> <organisation>`, or whichever of the two is present.
    pub network: Option<String>,
}

impl Reading {
    pub fn of(record: &Value) -> Reading {
        let country = first_text(record, &COUNTRY)
            .filter(|c| c.len() == 2)
            .map(|c| c.to_ascii_uppercase());
        let network = match (first_text(record, &ASN), first_text(record, &ORG)) {
            (Some(a), Some(o)) => Some(format!("AS{} {o}", a.trim_start_matches("AS"))),
            (Some(a), None) => Some(format!("AS{}", a.trim_start_matches("AS"))),
            (None, Some(o)) => Some(o),
            (None, None) => None,
        };
        let coords = match (first_number(record, &LAT), first_number(record, &LON)) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Some((lat, lon))
            }
            _ => None,
        };
        Reading {
            country,
            city: first_text(record, &CITY),
            coords,
            network,
        }
    }

    /// Whether the record can be put on a map.
    pub fn has_location(&self) -> bool {
        self.coords.is_some() || self.country.is_some()
    }

    pub fn has_network(&self) -> bool {
        self.network.is_some()
    }

    /// What two answers are compared on.
    pub fn place(&self) -> Place {
        Place {
            country: self.country.as_deref().map(Box::from),
            city: self.city.as_deref().map(Box::from),
            network: self.network.as_deref().map(Box::from),
        }
    }
}

/// The comparable part of a record: two requests were "placed elsewhere" when
/// their places differ in a field that the data set's role covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Place {
    pub country: Option<Box<str>>,
    pub city: Option<Box<str>>,
    pub network: Option<Box<str>>,
}

/// What changed between two answers, most significant first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Country,
    City,
    Network,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Country => "country",
            Kind::City => "city",
            Kind::Network => "network",
        }
    }
}

/// Which fields of a data set's records count (from its role in the report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Covers {
    /// Country and city (the data set the map is drawn from).
    pub location: bool,
    /// The network (the data set the networks table is drawn from).
    pub network: bool,
}

impl Covers {
    pub fn any(self) -> bool {
        self.location || self.network
    }
}

/// Text of an answer for one kind of change.
pub fn describe(p: &Place, kind: Kind) -> String {
    let text = match kind {
        Kind::Country => p.country.as_deref().map(str::to_string),
        Kind::City => match (&p.city, &p.country) {
            (Some(ci), Some(co)) => Some(format!("{ci}, {co}")),
            (Some(ci), None) => Some(ci.to_string()),
            (None, Some(co)) => Some(format!("(no city), {co}")),
            (None, None) => None,
        },
        Kind::Network => p.network.as_deref().map(str::to_string),
    };
    text.unwrap_or_else(|| format!("(no {})", kind.name()))
}

/// The most significant field in which two answers differ, among those
/// `covers` covers.
pub fn difference(a: &Place, b: &Place, covers: Covers) -> Option<Kind> {
    if covers.location && a.country != b.country {
        return Some(Kind::Country);
    }
    if covers.location && a.city != b.city {
        return Some(Kind::City);
    }
    if covers.network && a.network != b.network {
        return Some(Kind::Network);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_usual_field_names() {
        let r = Reading::of(&json!({"country": "fr", "location": {"lat": "48.85", "lon": 2.35}}));
        assert_eq!(r.country.as_deref(), Some("FR"));
        assert_eq!(r.coords, Some((48.85, 2.35)));
        assert!(r.has_location() && !r.has_network());
        let r = Reading::of(
            &json!({"autonomous_system_number": 15169, "autonomous_system_organization": "Google"}),
        );
        assert_eq!(r.network.as_deref(), Some("AS15169 Google"));
        assert!(!r.has_location() && r.has_network());
        // Out-of-range coordinates are not a location; a 3-letter code is not a country.
        let r = Reading::of(&json!({"lat": 95, "lon": 10, "country": "FRA"}));
        assert!(!r.has_location());
    }

    #[test]
    fn differences_follow_the_role() {
        let us = Reading::of(&json!({"country_code": "US", "city": "Austin", "asn": 1})).place();
        let us2 = Reading::of(&json!({"country_code": "US", "city": "Dallas", "asn": 2})).place();
        let mx = Reading::of(&json!({"country_code": "MX", "city": "Austin", "asn": 1})).place();
        let loc = Covers {
            location: true,
            network: false,
        };
        let net = Covers {
            location: false,
            network: true,
        };
        assert_eq!(difference(&us, &mx, loc), Some(Kind::Country));
        assert_eq!(difference(&us, &us2, loc), Some(Kind::City));
        assert_eq!(difference(&us, &us2, net), Some(Kind::Network));
        assert_eq!(difference(&us, &mx, net), None);
        assert_eq!(difference(&us, &us2, Covers::default()), None);
        assert_eq!(describe(&us, Kind::City), "Austin, US");
        assert_eq!(describe(&Place::default(), Kind::Country), "(no country)");
    }
}
