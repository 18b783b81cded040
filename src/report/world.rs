//! The map's data, shipped inside the binary: country outlines (Natural Earth
//! 1:110m, public domain, from the npm package `world-atlas`, decoded from
//! TopoJSON and gzipped by `assets/world/make-assets.py`) and a point per
//! country for data that has a country but no coordinates.

use std::collections::HashMap;
use std::io::Read;

/// `assets/world/countries-110m.json`, gzipped.
const COUNTRIES_GZ: &[u8] = include_bytes!("../../assets/world/countries-110m.json.gz");
/// `a2<TAB>lat<TAB>lon<TAB>name` per ISO 3166-1 country.
const CENTROIDS_TSV: &str = include_str!("../../assets/world/country-centroids.tsv");

#[derive(Debug, serde::Deserialize)]
pub struct Country {
    pub a2: Option<String>,
    pub name: String,
    /// Rings of `[lon, lat]`.
    pub polygons: Vec<Vec<[f64; 2]>>,
}

#[derive(Debug, serde::Deserialize)]
struct Countries {
    countries: Vec<Country>,
}

/// The embedded map data could not be read (a broken build, said rather than
/// hidden).
#[derive(Debug, thiserror::Error)]
pub enum MapDataError {
    #[error("embedded map data: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("embedded map data: {0}")]
    Json(#[from] serde_json::Error),
}

/// The country outlines.
pub fn countries() -> Result<Vec<Country>, MapDataError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(COUNTRIES_GZ).read_to_string(&mut text)?;
    let c: Countries = serde_json::from_str(&text)?;
    Ok(c.countries)
}

/// Country points by ISO 3166-1 alpha-2 code.
pub struct Centroids(HashMap<String, (f64, f64, String)>);

impl Centroids {
    pub fn load() -> Centroids {
        let map = CENTROIDS_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut f = l.split('\t');
                let a2 = f.next()?.trim().to_string();
                let lat = f.next()?.trim().parse().ok()?;
                let lon = f.next()?.trim().parse().ok()?;
                let name = f.next().unwrap_or_default().trim().to_string();
                Some((a2, (lat, lon, name)))
            })
            .collect();
        Centroids(map)
    }

    pub fn get(&self, a2: &str) -> Option<(f64, f64, &str)> {
        self.0
            .get(a2)
            .map(|(lat, lon, name)| (*lat, *lon, name.as_str()))
    }

    pub fn name(&self, a2: &str) -> Option<&str> {
        self.0.get(a2).map(|(_, _, n)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_data_is_complete() {
        let c = countries().unwrap();
        assert!(c.len() > 150, "{}", c.len());
        assert!(c.iter().any(|c| c.a2.as_deref() == Some("FR")));
        let points = Centroids::load();
        assert!(points.len() >= 240, "{}", points.len());
        // France's point is in metropolitan France, not pulled toward Guiana.
        let (lat, lon, _) = points.get("FR").unwrap();
        assert!(
            (42.0..51.5).contains(&lat) && (-5.0..8.5).contains(&lon),
            "{lat} {lon}"
        );
    }
}
