//! A plan's fingerprint: FNV-1a (64 bits) over a canonical encoding of the plan, written out
//! field by field.
//!
//! A [`PlanCursor`](crate::PlanCursor) is journalled and read back by another process, maybe
//! another build on another platform, so the fingerprint it records must not depend on any of
//! them: not `std::hash` (whose `DefaultHasher` algorithm is unspecified and may change between
//! compiler versions), not a serialized form (whose layout is free to change). Every integer is
//! written little-endian at a fixed width, every string and list behind its length, every
//! choice as a one-byte tag, so no two plans share an encoding.

use std::time::Duration;

use crate::plan::PlanStep;
use crate::routes::{MatchOn, ValueMatch};
use crate::split::TrafficSplit;

/// The fingerprint of the plan from `from` through `steps`: the starting split, then each
/// step's split, hold and approval.
pub(crate) fn of(from: &TrafficSplit, steps: &[PlanStep]) -> u64 {
    let mut h = Fnv1a::new();
    h.split(from);
    h.len(steps.len());
    for step in steps {
        h.split(step.split());
        h.duration(step.hold());
        h.tag(u8::from(step.await_approval()));
    }
    h.0
}

/// FNV-1a, 64 bits (Fowler, Noll, Vo), fed the canonical encoding.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    fn tag(&mut self, tag: u8) {
        self.bytes(&[tag]);
    }

    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn len(&mut self, n: usize) {
        self.u64(u64::try_from(n).unwrap_or(u64::MAX));
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.bytes(&d.subsec_nanos().to_le_bytes());
    }

    fn split(&mut self, split: &TrafficSplit) {
        self.len(split.backends().len());
        for b in split.backends() {
            self.str(b.name().as_str());
            self.u16(b.weight().bps());
        }
        self.len(split.routes().len());
        for r in split.routes() {
            self.tag(match r.on() {
                MatchOn::Header => 0,
                MatchOn::Cookie => 1,
            });
            self.str(r.name());
            self.tag(match r.value() {
                ValueMatch::Exact(_) => 0,
                ValueMatch::Prefix(_) => 1,
            });
            self.str(r.value().as_str());
            self.str(r.backend().as_str());
        }
        match split.mirror() {
            None => self.tag(0),
            Some(m) => {
                self.tag(1);
                self.str(m.backend().as_str());
                self.u16(m.percent().bps());
            }
        }
        match split.sticky() {
            None => self.tag(0),
            Some(s) => {
                self.tag(1);
                self.str(s.cookie());
                self.duration(s.ttl());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 test vectors, so the hash itself is the standard one.
    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        for (input, want) in [
            ("", 0xcbf2_9ce4_8422_2325),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("foobar", 0x8594_4171_f739_67e8),
        ] {
            let mut h = Fnv1a::new();
            h.bytes(input.as_bytes());
            assert_eq!(h.0, want, "{input:?}");
        }
    }
}
