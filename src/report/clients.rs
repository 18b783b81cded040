//! What event time changed, per client address.
//!
//! For every distinct client the report keeps the distinct answers its requests
//! got (one [`Part`] per data set: which snapshot answered and what it said),
//! with how many requests got each and when. Memory is bounded by distinct
//! clients times the distinct answers each got (one or two in real logs), and
//! by distinct places, never by lines.
//!
//! From these, two findings:
//! - [`Clients::moved`]: clients whose answer changed during the log's own span
//!   (the data changed under them). A snapshot gives one answer per address, so
//!   ordering a client's answers by the snapshot that gave them orders them in
//!   time whatever the order of the lines; a change is dated by the first
//!   snapshot seen giving the new answer.
//! - [`Clients::latest_differs`]: every client looked up once in the newest
//!   snapshot of the store it was enriched from, and the requests that this
//!   latest data would have placed elsewhere (matched both times, in another
//!   country, city or network); counted apart, the requests only one of the two
//!   matched (a range that appeared or went away, or a request older than the
//!   first snapshot).

use std::collections::HashMap;

use serde_json::Value;

use super::record::{describe, difference, Covers, Kind, Place, Reading};
use crate::index::Index;
use crate::ip::IpKey;
use crate::time::Timestamp;

/// The answer of one data set to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Index of the data set in the aggregate.
    pub set: u16,
    /// The answering snapshot's `datetime` (microseconds), when matched.
    pub snapshot: Option<i64>,
    /// The interned place; `None` is no match.
    pub place: Option<u32>,
}

#[derive(Debug)]
struct Answer {
    parts: Box<[Part]>,
    requests: u64,
    /// Event times (microseconds) of the first and last request; `i64::MAX`
    /// and `i64::MIN` when no request had a readable time.
    first: i64,
    last: i64,
}

/// Every client's answers, and the places they name.
#[derive(Debug, Default)]
pub struct Clients {
    map: HashMap<IpKey, Vec<Answer>>,
    places: Vec<Place>,
    ids: HashMap<Place, u32>,
}

/// A data set's role, for comparing answers.
#[derive(Clone, Copy, Debug)]
pub struct Role {
    pub set: u16,
    pub covers: Covers,
}

/// A client whose answer changed while the log ran.
#[derive(Clone, Debug, PartialEq)]
pub struct Moved {
    pub ip: IpKey,
    pub kind: Kind,
    pub from: String,
    pub to: String,
    /// The first snapshot seen giving the new answer.
    pub snapshot: i64,
    /// The last request with the old answer and the first with the new one.
    pub last_before: Option<i64>,
    pub first_after: Option<i64>,
    /// All requests of the client.
    pub requests: u64,
}

/// One kind of move in [`LatestDiffers`].
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    pub kind: Kind,
    pub from: String,
    pub to: String,
    pub requests: u64,
    pub clients: u64,
}

/// Requests and clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub requests: u64,
    pub clients: u64,
}

/// What the newest data would have said instead.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatestDiffers {
    /// Requests and clients placed elsewhere by the latest data (matched at
    /// event time and now, in another place).
    pub requests: u64,
    pub clients: u64,
    /// Matched at event time, no match in the latest data (and not elsewhere).
    pub only_then: Count,
    /// No match at event time, matched in the latest data (and not elsewhere,
    /// nor only then).
    pub only_latest: Count,
    /// Requests and clients compared (with a client address and an answer from
    /// a compared data set).
    pub compared_requests: u64,
    pub compared_clients: u64,
    /// The newest snapshot `datetime` among the latest answers.
    pub snapshot: Option<i64>,
    /// Requests and clients by the most significant change.
    pub by_kind: Vec<(Kind, u64, u64)>,
    /// Biggest first.
    pub moves: Vec<Move>,
}

/// How one request's answer compares with the latest data.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Same,
    OnlyLatest,
    OnlyThen,
    /// The kind of change and the two answers' texts.
    Elsewhere((Kind, String, String)),
}

impl Change {
    /// A request whose data sets compare differently counts under the highest
    /// rank (the first data set's change among equals: the map's comes first).
    fn rank(&self) -> u8 {
        match self {
            Change::Same => 0,
            Change::OnlyLatest => 1,
            Change::OnlyThen => 2,
            Change::Elsewhere(_) => 3,
        }
    }
}

impl LatestDiffers {
    pub fn share(&self) -> f64 {
        self.requests as f64 / self.compared_requests.max(1) as f64
    }
}

impl Clients {
    /// The id of a place (the same place, the same id).
    pub fn intern(&mut self, place: Place) -> u32 {
        if let Some(&id) = self.ids.get(&place) {
            return id;
        }
        let id = self.places.len() as u32;
        self.places.push(place.clone());
        self.ids.insert(place, id);
        id
    }

    fn place(&self, id: Option<u32>) -> Option<&Place> {
        id.and_then(|i| self.places.get(i as usize))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Counts one request of `ip` that got `parts`, at event time `t`.
    pub fn add(&mut self, ip: IpKey, parts: &[Part], t: Option<i64>) {
        let answers = self.map.entry(ip).or_default();
        let i = match answers.iter().position(|a| *a.parts == *parts) {
            Some(i) => i,
            None => {
                answers.push(Answer {
                    parts: parts.into(),
                    requests: 0,
                    first: i64::MAX,
                    last: i64::MIN,
                });
                answers.len() - 1
            }
        };
        let a = &mut answers[i];
        a.requests += 1;
        if let Some(t) = t {
            a.first = a.first.min(t);
            a.last = a.last.max(t);
        }
    }

    /// Clients whose answer from a data set with a role changed between the
    /// snapshots that answered their requests; most requests first.
    pub fn moved(&self, roles: &[Role]) -> Vec<Moved> {
        struct Run<'a> {
            place: &'a Place,
            snapshot: i64,
            first: i64,
            last: i64,
        }
        let mut out = Vec::new();
        let mut seen: Vec<(i64, Option<u32>, i64, i64)> = Vec::new();
        for (ip, answers) in &self.map {
            let requests: u64 = answers.iter().map(|a| a.requests).sum();
            for role in roles.iter().filter(|r| r.covers.any()) {
                seen.clear();
                for a in answers {
                    for p in a.parts.iter().filter(|p| p.set == role.set) {
                        if let Some(s) = p.snapshot {
                            seen.push((s, p.place, a.first, a.last));
                        }
                    }
                }
                seen.sort_unstable_by_key(|e| e.0);
                let mut runs: Vec<Run> = Vec::new();
                for &(snapshot, place, first, last) in &seen {
                    let Some(place) = self.place(place) else {
                        continue;
                    };
                    match runs.last_mut() {
                        Some(r) if difference(r.place, place, role.covers).is_none() => {
                            r.first = r.first.min(first);
                            r.last = r.last.max(last);
                        }
                        _ => runs.push(Run {
                            place,
                            snapshot,
                            first,
                            last,
                        }),
                    }
                }
                for w in runs.windows(2) {
                    let Some(kind) = difference(w[0].place, w[1].place, role.covers) else {
                        continue;
                    };
                    out.push(Moved {
                        ip: *ip,
                        kind,
                        from: describe(w[0].place, kind),
                        to: describe(w[1].place, kind),
                        snapshot: w[1].snapshot,
                        last_before: (w[0].last != i64::MIN).then_some(w[0].last),
                        first_after: (w[1].first != i64::MAX).then_some(w[1].first),
                        requests,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.ip.cmp(&b.ip))
                .then_with(|| a.snapshot.cmp(&b.snapshot))
        });
        out
    }

    /// Looks every client up in the newest snapshot of each store (a data set
    /// with a role, and the index it was enriched from) and counts the requests
    /// the latest data would have placed elsewhere.
    pub fn latest_differs(&mut self, stores: &[(Role, &Index)]) -> LatestDiffers {
        const CHUNK: usize = 4096;
        let mut ips: Vec<IpKey> = self.map.keys().copied().collect();
        ips.sort_unstable();
        let mut latest: HashMap<(IpKey, u16), Option<u32>> = HashMap::new();
        let mut newest: Option<i64> = None;
        let mut queries = Vec::with_capacity(CHUNK);
        let mut answers = Vec::with_capacity(CHUNK);
        let mut json = Vec::with_capacity(256);
        for (role, index) in stores {
            for chunk in ips.chunks(CHUNK) {
                queries.clear();
                queries.extend(chunk.iter().map(|&ip| (ip, Timestamp::MAX)));
                answers.clear();
                index.at_many(&queries, &mut answers);
                for (&ip, m) in chunk.iter().zip(&answers) {
                    let place = match m {
                        None => None,
                        Some(m) => {
                            json.clear();
                            m.write_json(&mut json);
                            let record: Value = serde_json::from_slice(&json).unwrap_or_default();
                            if let Some(t) = record
                                .get("datetime")
                                .and_then(Value::as_str)
                                .and_then(|t| Timestamp::parse(t).ok())
                            {
                                newest = newest.max(Some(t.as_micros()));
                            }
                            Some(self.intern(Reading::of(&record).place()))
                        }
                    };
                    latest.insert((ip, role.set), place);
                }
            }
        }
        let mut out = LatestDiffers {
            snapshot: newest,
            ..LatestDiffers::default()
        };
        let mut moves: HashMap<(Kind, String, String), (u64, u64)> = HashMap::new();
        let mut by_kind: HashMap<Kind, (u64, u64)> = HashMap::new();
        let mut client_moves: Vec<(Kind, String, String)> = Vec::new();
        for ip in &ips {
            let Some(answers) = self.map.get(ip) else {
                continue;
            };
            client_moves.clear();
            let (mut compared, mut only_then, mut only_latest) = (false, false, false);
            for a in answers {
                let mut change = Change::Same;
                let mut any = false;
                for (role, _) in stores {
                    let Some(part) = a.parts.iter().find(|p| p.set == role.set) else {
                        continue;
                    };
                    any = true;
                    let now = latest.get(&(*ip, role.set)).copied().flatten();
                    let c = match (self.place(part.place), self.place(now)) {
                        (Some(then), Some(now)) => match difference(then, now, role.covers) {
                            Some(kind) => {
                                Change::Elsewhere((kind, describe(then, kind), describe(now, kind)))
                            }
                            None => Change::Same,
                        },
                        (Some(_), None) => Change::OnlyThen,
                        (None, Some(_)) => Change::OnlyLatest,
                        (None, None) => Change::Same,
                    };
                    if c.rank() > change.rank() {
                        change = c;
                    }
                }
                if !any {
                    continue;
                }
                compared = true;
                out.compared_requests += a.requests;
                match change {
                    Change::Elsewhere(key) => {
                        out.requests += a.requests;
                        moves.entry(key.clone()).or_default().0 += a.requests;
                        by_kind.entry(key.0).or_default().0 += a.requests;
                        client_moves.push(key);
                    }
                    Change::OnlyThen => {
                        out.only_then.requests += a.requests;
                        only_then = true;
                    }
                    Change::OnlyLatest => {
                        out.only_latest.requests += a.requests;
                        only_latest = true;
                    }
                    Change::Same => {}
                }
            }
            out.compared_clients += u64::from(compared);
            out.only_then.clients += u64::from(only_then);
            out.only_latest.clients += u64::from(only_latest);
            if !client_moves.is_empty() {
                out.clients += 1;
                client_moves.sort();
                client_moves.dedup();
                let mut kinds: Vec<Kind> = client_moves.iter().map(|m| m.0).collect();
                kinds.dedup();
                for k in kinds {
                    by_kind.entry(k).or_default().1 += 1;
                }
                for m in client_moves.drain(..) {
                    moves.entry(m).or_default().1 += 1;
                }
            }
        }
        out.by_kind = by_kind.into_iter().map(|(k, (r, c))| (k, r, c)).collect();
        out.by_kind.sort_by_key(|e| e.0);
        out.moves = moves
            .into_iter()
            .map(|((kind, from, to), (requests, clients))| Move {
                kind,
                from,
                to,
                requests,
                clients,
            })
            .collect();
        out.moves.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.kind.cmp(&b.kind))
                .then_with(|| a.from.cmp(&b.from))
                .then_with(|| a.to.cmp(&b.to))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn place(c: &mut Clients, country: &str) -> Option<u32> {
        Some(c.intern(Reading::of(&json!({ "country_code": country })).place()))
    }

    const LOC: Role = Role {
        set: 0,
        covers: Covers {
            location: true,
            network: false,
        },
    };

    /// Answers ordered by snapshot, whatever the order of the lines.
    #[test]
    fn moves_are_dated_by_snapshot() {
        let mut c = Clients::default();
        let (us, mx) = (place(&mut c, "US"), place(&mut c, "MX"));
        let ip = IpKey::parse("1.2.3.4").unwrap();
        let other = IpKey::parse("5.6.7.8").unwrap();
        let part = |snapshot, place| {
            [Part {
                set: 0,
                snapshot: Some(snapshot),
                place,
            }]
        };
        c.add(ip, &part(20, mx), Some(25));
        c.add(ip, &part(10, us), Some(12));
        c.add(ip, &part(10, us), Some(15));
        c.add(ip, &part(20, mx), Some(21));
        c.add(other, &part(10, us), Some(11));
        c.add(other, &part(20, us), Some(22));
        let moved = c.moved(&[LOC]);
        assert_eq!(
            moved,
            vec![Moved {
                ip,
                kind: Kind::Country,
                from: "US".into(),
                to: "MX".into(),
                snapshot: 20,
                last_before: Some(15),
                first_after: Some(21),
                requests: 4,
            }]
        );
        // A data set without a role is not compared.
        assert!(c
            .moved(&[Role {
                set: 0,
                covers: Covers::default()
            }])
            .is_empty());
    }
}
