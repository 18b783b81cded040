//! The store's state: which content it holds, as a random id given at its first
//! commit and a generation counted up by every commit (written in the commit's
//! own batch, so the state and the content cannot disagree).

use super::codec::be_u128;

/// Which content a store holds: its id and the number of commits made to it.
/// Two opens that read the same state see the same history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StoreState {
    /// Random, given at the first commit (0 for a store that was never written
    /// by a whipstream that counts commits).
    pub id: u128,
    pub generation: u64,
}

impl StoreState {
    pub(super) fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&self.id.to_be_bytes());
        b[16..].copy_from_slice(&self.generation.to_be_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Option<StoreState> {
        Some(StoreState {
            id: be_u128(b.get(..16)?)?,
            generation: u64::from_be_bytes(b.get(16..24)?.try_into().ok()?),
        })
    }

    /// The state after one more commit (a new id for a store without one).
    pub(super) fn next(&self) -> StoreState {
        StoreState {
            id: if self.id == 0 { random_id() } else { self.id },
            generation: self.generation + 1,
        }
    }
}

/// 128 bits that differ between stores: time, process and address-space entropy
/// hashed together (not cryptographic; only told apart from other stores).
fn random_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut id = 0u128;
    for round in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(round);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        id = (id << 64) | u128::from(h.finish());
    }
    id.max(1)
}
