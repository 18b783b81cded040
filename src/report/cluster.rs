//! Geographic clusters: groups of locations that are all within a distance of
//! each other.
//!
//! Exactly, these are the maximal cliques of the "closer than `within` km" graph
//! (great-circle distance), found with Bron–Kerbosch with pivoting; a location
//! may belong to several cliques. Cliques can be exponential in number, so above
//! [`EXACT_LIMIT`] locations the report switches to DBSCAN (`eps` = `within`,
//! at least 2 points; neighbours found through a grid of `within`-sized cells),
//! which gives disjoint density clusters in the same shape, and says so.

use std::collections::HashMap;

/// Mean Earth radius (km), as used for great-circle distances.
const EARTH_KM: f64 = 6371.0088;

/// Above this many locations the exact cliques are not attempted.
pub const EXACT_LIMIT: usize = 2000;

/// Cliques can still explode on adversarial layouts: past this many, DBSCAN.
const CLIQUE_LIMIT: usize = 100_000;

/// A point with a weight (requests).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// Great-circle distance in km (haversine).
pub fn distance_km(a: &Point, b: &Point) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
}

/// How the clusters were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    MaximalCliques,
    Dbscan,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::MaximalCliques => "maximal cliques",
            Method::Dbscan => "DBSCAN",
        }
    }
}

/// Clusters of at least two locations (indices into the input), each sorted,
/// largest first.
pub fn clusters(points: &[Point], within_km: f64) -> (Method, Vec<Vec<usize>>) {
    let neighbours = neighbours(points, within_km);
    let exact = if points.len() <= EXACT_LIMIT {
        maximal_cliques(&neighbours)
    } else {
        None
    };
    let (method, mut out) = match exact {
        Some(cliques) => (Method::MaximalCliques, cliques),
        None => (Method::Dbscan, dbscan(&neighbours)),
    };
    for c in &mut out {
        c.sort_unstable();
    }
    out.retain(|c| c.len() >= 2);
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    (method, out)
}

/// For each point, the others closer than `within_km`; candidates come from a
/// grid of cells about `within_km` wide, so this is not quadratic.
fn neighbours(points: &[Point], within_km: f64) -> Vec<Vec<usize>> {
    // Degrees of latitude per cell; longitude cells widen toward the poles, so
    // neighbours are searched over enough longitude cells at each latitude.
    let cell = (within_km / 111.0).max(1e-3);
    let key = |p: &Point| ((p.lat / cell).floor() as i64, (p.lon / cell).floor() as i64);
    let mut grid: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, p) in points.iter().enumerate() {
        grid.entry(key(p)).or_default().push(i);
    }
    let lon_cells = (360.0 / cell).ceil() as i64;
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (r, c) = key(p);
            let max_lat = (p.lat.abs() + cell * 2.0).min(89.9).to_radians();
            let span = ((1.0 / max_lat.cos()).ceil() as i64 + 1).min(lon_cells);
            let mut found = Vec::new();
            for dr in -1..=1 {
                for dc in -span..=span {
                    // Wrap around the antimeridian.
                    let cc = (c + dc).rem_euclid(lon_cells.max(1));
                    for cand in [(r + dr, cc), (r + dr, cc - lon_cells)] {
                        if let Some(list) = grid.get(&cand) {
                            for &j in list {
                                if j != i && distance_km(p, &points[j]) <= within_km {
                                    found.push(j);
                                }
                            }
                        }
                    }
                }
            }
            // Wrapped cell ranges may visit a cell twice.
            found.sort_unstable();
            found.dedup();
            found
        })
        .collect()
}

/// Bron–Kerbosch with pivoting over the neighbour lists; `None` past
/// [`CLIQUE_LIMIT`] cliques.
fn maximal_cliques(adj: &[Vec<usize>]) -> Option<Vec<Vec<usize>>> {
    fn recurse(
        adj: &[Vec<usize>],
        r: &mut Vec<usize>,
        mut p: Vec<usize>,
        mut x: Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if out.len() > CLIQUE_LIMIT {
            return;
        }
        if p.is_empty() && x.is_empty() {
            out.push(r.clone());
            return;
        }
        // Pivot: the vertex of P ∪ X with the most neighbours in P.
        let pivot = p
            .iter()
            .chain(&x)
            .copied()
            .max_by_key(|&u| p.iter().filter(|v| adj[u].binary_search(v).is_ok()).count());
        let candidates: Vec<usize> = match pivot {
            Some(u) => p
                .iter()
                .copied()
                .filter(|v| adj[u].binary_search(v).is_err())
                .collect(),
            None => p.clone(),
        };
        for v in candidates {
            let nv = &adj[v];
            r.push(v);
            recurse(
                adj,
                r,
                p.iter()
                    .copied()
                    .filter(|w| nv.binary_search(w).is_ok())
                    .collect(),
                x.iter()
                    .copied()
                    .filter(|w| nv.binary_search(w).is_ok())
                    .collect(),
                out,
            );
            r.pop();
            p.retain(|&w| w != v);
            x.push(v);
        }
    }
    let mut out = Vec::new();
    let mut r = Vec::new();
    // Isolated points are cliques of one: skip them early.
    let p: Vec<usize> = (0..adj.len()).filter(|&i| !adj[i].is_empty()).collect();
    recurse(adj, &mut r, p, Vec::new(), &mut out);
    (out.len() <= CLIQUE_LIMIT).then_some(out)
}

/// DBSCAN with min_points = 2 (a point and one neighbour make a core): the
/// connected components of the graph, i.e. density-connected groups.
fn dbscan(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut label = vec![usize::MAX; adj.len()];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for start in 0..adj.len() {
        if label[start] != usize::MAX || adj[start].is_empty() {
            continue;
        }
        let id = out.len();
        let mut members = vec![start];
        label[start] = id;
        let mut i = 0;
        while i < members.len() {
            for &n in &adj[members[i]] {
                if label[n] == usize::MAX {
                    label[n] = id;
                    members.push(n);
                }
            }
            i += 1;
        }
        out.push(members);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    const LOS_ANGELES: (f64, f64) = (34.0522, -118.2437);
    const SAN_DIEGO: (f64, f64) = (32.7157, -117.1611);
    const CHICAGO: (f64, f64) = (41.8781, -87.6298);
    const TIJUANA: (f64, f64) = (32.5149, -117.0382);

    #[test]
    fn distances_are_great_circle() {
        let (la, sd, chi) = (
            p(LOS_ANGELES.0, LOS_ANGELES.1),
            p(SAN_DIEGO.0, SAN_DIEGO.1),
            p(CHICAGO.0, CHICAGO.1),
        );
        // Hand-checked: LA-SD about 179 km (111 miles), LA-Chicago about 2,800 km.
        assert!(
            (distance_km(&la, &sd) - 179.0).abs() < 3.0,
            "{}",
            distance_km(&la, &sd)
        );
        assert!(
            (distance_km(&la, &chi) - 2805.0).abs() < 15.0,
            "{}",
            distance_km(&la, &chi)
        );
        // Across the antimeridian: Fiji to Samoa is about 1,150 km, not 20,000.
        let d = distance_km(&p(-17.7, 178.0), &p(-13.8, -172.0));
        assert!(d < 1300.0, "{d}");
    }

    #[test]
    fn cliques_within_300_miles() {
        let km = 300.0 * 1.609_344;
        let points = [LOS_ANGELES, SAN_DIEGO, CHICAGO, TIJUANA].map(|(a, b)| p(a, b));
        let (method, c) = clusters(&points, km);
        assert_eq!(method, Method::MaximalCliques);
        // LA, San Diego and Tijuana are all within 300 miles of each other;
        // Chicago is with none of them.
        assert_eq!(c, vec![vec![0, 1, 3]]);
        // Within 150 km: San Diego and Tijuana only (LA is ~180 km away).
        let (_, c) = clusters(&points, 150.0);
        assert_eq!(c, vec![vec![1, 3]]);
    }

    #[test]
    fn overlapping_cliques_are_all_listed() {
        // A chain a-b-c, 100 km apart: {a,b} and {b,c} with 150 km.
        let points = [p(0.0, 0.0), p(0.0, 0.9), p(0.0, 1.8)];
        let (_, c) = clusters(&points, 150.0);
        assert_eq!(c, vec![vec![0, 1], vec![1, 2]]);
        // DBSCAN joins the chain into one cluster.
        let adj = neighbours(&points, 150.0);
        assert_eq!(dbscan(&adj), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn many_locations_use_dbscan() {
        // 2,100 points in 21 tight groups of 100, 1,000 km apart.
        let points: Vec<Point> = (0..2100)
            .map(|i| {
                p(
                    10.0 + (i / 100) as f64 * 0.0,
                    -100.0 + (i / 100) as f64 * 10.0 + (i % 100) as f64 * 0.001,
                )
            })
            .collect();
        let (method, c) = clusters(&points, 50.0);
        assert_eq!(method, Method::Dbscan);
        assert_eq!(c.len(), 21);
        assert!(c.iter().all(|g| g.len() == 100));
    }

    #[test]
    fn the_grid_finds_what_brute_force_finds() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1_000_000) as f64 / 1_000_000.0
        };
        let points: Vec<Point> = (0..400)
            .map(|_| p(rnd() * 170.0 - 85.0, rnd() * 360.0 - 180.0))
            .collect();
        let adj = neighbours(&points, 800.0);
        for (i, a) in points.iter().enumerate() {
            let brute: Vec<usize> = (0..points.len())
                .filter(|&j| j != i && distance_km(a, &points[j]) <= 800.0)
                .collect();
            assert_eq!(adj[i], brute, "point {i}");
        }
    }
}
