//! Shared workload generators for the criterion benches of the PoOT hot paths.
//!
//! This crate does NOT time anything itself; each file under `benches/` is one criterion target.
//! Workloads are deterministic (keys from integers), so numbers are comparable across runs.
#![warn(missing_docs)]

use lucid_consensus::testing;
use lucid_core::{NodeKey, SignedMessage, Slot};

/// `count` test keys.
pub fn keys(count: u64) -> Vec<NodeKey> {
    (0..count).map(testing::key).collect()
}

/// One signed beacon per key for `slot`.
pub fn beacons(keys: &[NodeKey], slot: Slot) -> Vec<SignedMessage> {
    let params = testing::params();
    keys.iter().map(|key| testing::signed_beacon(&params, key, slot)).collect()
}

/// `count` distinct node ids (from test keys).
pub fn node_ids(count: u64) -> Vec<lucid_core::NodeId> {
    (0..count).map(testing::node).collect()
}

/// Which work proofs a generated node signs in a slot, besides its beacon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkMix {
    /// Relay, storage and validation every slot: 4 proofs per node per slot (the §12 maximum).
    Full,
    /// One work proof every fourth slot, rotating the kind: 1.25 proofs per node per slot.
    Light,
}

/// A streaming generator of the accepted proofs of `nodes` over the slots of `window`, in slot
/// order (the order a store scan by slot yields). Nothing is materialised: memory is constant.
#[derive(Clone, Debug)]
pub struct WindowProofs<'a> {
    nodes: &'a [lucid_core::NodeId],
    mix: WorkMix,
    slot: u64,
    end: u64,
    node: usize,
    step: u8,
}

impl<'a> WindowProofs<'a> {
    /// Proofs of every node in `nodes` for every slot of `window`.
    pub fn new(
        nodes: &'a [lucid_core::NodeId],
        window: lucid_core::SlotRange,
        mix: WorkMix,
    ) -> Self {
        WindowProofs { nodes, mix, slot: window.start.0, end: window.end.0, node: 0, step: 0 }
    }
}

impl Iterator for WindowProofs<'_> {
    type Item = lucid_consensus::tally::CountedProof;

    fn next(&mut self) -> Option<Self::Item> {
        use lucid_consensus::ProofValue;
        loop {
            if self.slot >= self.end {
                return None;
            }
            let Some(&node) = self.nodes.get(self.node) else {
                self.node = 0;
                self.slot += 1;
                continue;
            };
            let step = self.step;
            self.step += 1;
            // Vary the amounts a little so sums are not trivially uniform.
            let salt = (self.slot ^ self.node as u64) % 7;
            let value = match (self.mix, step) {
                (_, 0) => Some(ProofValue::Beacon { metrics_digest: None }),
                (WorkMix::Full, 1) => Some(ProofValue::Relay {
                    bytes_transferred: 3_000_000 * (salt + 1),
                    sessions_relayed: 1,
                }),
                (WorkMix::Full, 2) => Some(ProofValue::Storage {
                    chunks_stored: 10 + salt,
                    size_bytes: (salt + 1) << 28,
                }),
                (WorkMix::Full, 3) => {
                    Some(ProofValue::Validation { validated_sessions: 1 + salt as u32 })
                }
                (WorkMix::Light, 1) if (self.slot + self.node as u64).is_multiple_of(4) => {
                    Some(match (self.slot / 4) % 3 {
                        0 => ProofValue::Relay { bytes_transferred: 1 << 24, sessions_relayed: 1 },
                        1 => ProofValue::Storage { chunks_stored: 4, size_bytes: 1 << 30 },
                        _ => ProofValue::Validation { validated_sessions: 2 },
                    })
                }
                _ => None,
            };
            match value {
                Some(value) => {
                    return Some(lucid_consensus::tally::CountedProof {
                        node,
                        slot: Slot(self.slot),
                        value,
                    });
                }
                None => {
                    self.step = 0;
                    self.node += 1;
                }
            }
        }
    }
}
