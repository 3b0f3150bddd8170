//! The consistent-hashing ring, placed as the Collector v0.161 places it so
//! that, given the same endpoint list, a routing key lands on the same
//! backend as it would behind the Collector: each endpoint gets
//! [`WEIGHT`] points, the IEEE CRC-32 of the endpoint followed by the
//! point's number (little-endian `u32`), modulo [`MAX_POSITIONS`]; points
//! are placed in the order of (position, hash, endpoint), a point whose
//! position is taken moves to the next free one (at most
//! [`PROBE_LIMIT`] tries, else it is left out). A key belongs to the first
//! point at or after its own CRC-32 modulo [`MAX_POSITIONS`], wrapping
//! around. An endpoint joining or leaving moves only the keys of the
//! points it takes or gives up (about 1/n of them).

use std::collections::HashSet;

/// Positions on the ring.
pub const MAX_POSITIONS: u32 = 131_071;
/// Points per endpoint.
pub const WEIGHT: u32 = 200;
/// Tries to find a free position for a point.
pub const PROBE_LIMIT: u32 = 10;

/// An immutable ring over a list of endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ring {
    /// (position, index into `endpoints`), by position.
    points: Vec<(u32, u16)>,
    endpoints: Vec<String>,
}

impl Ring {
    /// The ring of `endpoints` (as the resolver lists them, sorted; at most
    /// 65535).
    pub fn new(endpoints: &[String]) -> Ring {
        let endpoints: Vec<String> = endpoints
            .iter()
            .take(usize::from(u16::MAX))
            .cloned()
            .collect();
        let mut candidates: Vec<(u32, u32, u16)> =
            Vec::with_capacity(endpoints.len() * WEIGHT as usize);
        for (index, endpoint) in endpoints.iter().enumerate() {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            for point in 0..WEIGHT {
                let mut hasher = crc32fast::Hasher::new();
                hasher.update(endpoint.as_bytes());
                hasher.update(&point.to_le_bytes());
                let hash = hasher.finalize();
                candidates.push((hash % MAX_POSITIONS, hash, index));
            }
        }
        candidates.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| endpoints[usize::from(a.2)].cmp(&endpoints[usize::from(b.2)]))
        });
        let mut used = HashSet::with_capacity(candidates.len());
        let mut points = Vec::with_capacity(candidates.len());
        for (position, _, index) in candidates {
            let mut at = position;
            let mut probed = 0;
            while used.contains(&at) && probed < PROBE_LIMIT {
                at = (at + 1) % MAX_POSITIONS;
                probed += 1;
            }
            if probed >= PROBE_LIMIT {
                continue;
            }
            used.insert(at);
            points.push((at, index));
        }
        points.sort_unstable();
        Ring { points, endpoints }
    }

    /// The endpoints, in the order given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// True when there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The index (into [`Ring::endpoints`]) of the endpoint owning `key`;
    /// `None` when the ring is empty.
    pub fn owner(&self, key: &[u8]) -> Option<u16> {
        let position = crc32fast::hash(key) % MAX_POSITIONS;
        let i = self.points.partition_point(|(p, _)| *p < position);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map(|(_, index)| *index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<String> {
        let mut e: Vec<String> = (0..n).map(|i| format!("10.0.0.{}:4317", i + 1)).collect();
        e.sort();
        e
    }

    fn trace_id(i: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        id[8..].copy_from_slice(&i.to_le_bytes());
        id
    }

    #[test]
    fn every_endpoint_gets_a_fair_share() {
        let ring = Ring::new(&endpoints(3));
        let mut counts = [0u32; 3];
        for i in 0..30_000 {
            counts[usize::from(ring.owner(&trace_id(i)).unwrap())] += 1;
        }
        for c in counts {
            // 10 000 each when perfectly even; with 200 points each the
            // Collector's ring stays within 30 % of that.
            assert!((7_000..13_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_leaving_endpoint_moves_only_its_own_keys() {
        let before = Ring::new(&endpoints(4));
        let mut left: Vec<String> = endpoints(4);
        let gone = left.remove(2);
        let after = Ring::new(&left);
        let mut moved = 0;
        for i in 0..20_000 {
            let key = trace_id(i);
            let was = &before.endpoints()[usize::from(before.owner(&key).unwrap())];
            let now = &after.endpoints()[usize::from(after.owner(&key).unwrap())];
            if was != now {
                assert_eq!(was, &gone, "a key of a staying endpoint moved");
                moved += 1;
            }
        }
        // About a quarter of the keys were on the endpoint that left.
        assert!((3_000..7_000).contains(&moved), "{moved}");
    }

    #[test]
    fn a_joining_endpoint_takes_keys_only_for_itself() {
        let before = Ring::new(&endpoints(3));
        let after = Ring::new(&endpoints(4));
        for i in 0..20_000 {
            let key = trace_id(i);
            let was = &before.endpoints()[usize::from(before.owner(&key).unwrap())];
            let now = &after.endpoints()[usize::from(after.owner(&key).unwrap())];
            assert!(was == now || now == "10.0.0.4:4317", "{was} -> {now}");
        }
    }

    /// Owners the Collector v0.161 computes for the same endpoints and keys
    /// (its ring code run on these inputs).
    #[test]
    fn keys_land_where_the_collector_puts_them() {
        let list: Vec<String> = ["127.0.0.2:4317", "127.0.0.3:4317", "127.0.0.4:4317"]
            .map(String::from)
            .to_vec();
        let ring = Ring::new(&list);
        assert_eq!(ring.points.len(), 600);
        let owner = |key: &[u8]| ring.endpoints()[usize::from(ring.owner(key).unwrap())].clone();
        let expected = ["4", "2", "3", "3", "4", "4", "2", "4"];
        for (i, want) in expected.iter().enumerate() {
            let id: Vec<u8> = (0..16).map(|j| (i * 16 + j) as u8).collect();
            assert_eq!(owner(&id), format!("127.0.0.{want}:4317"), "trace {i}");
        }
        for (key, want) in [
            ("checkout", "4"),
            ("cart", "3"),
            ("frontend", "2"),
            ("service.name=checkout|", "4"),
        ] {
            assert_eq!(
                owner(key.as_bytes()),
                format!("127.0.0.{want}:4317"),
                "{key}"
            );
        }
    }

    #[test]
    fn an_empty_ring_owns_nothing() {
        assert_eq!(Ring::new(&[]).owner(b"x"), None);
    }
}
