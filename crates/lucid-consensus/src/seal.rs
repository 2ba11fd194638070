//! Slot seals: each node's signed commitment to the set of messages it accepted for a slot, and
//! the Merkle root that makes two sets comparable by one hash.
//!
//! Root (consensus.md §6.3): leaves `derive_key(CTX_SEAL_LEAF, digest)` sorted by digest; parents
//! `derive_key(CTX_SEAL_NODE, left ‖ right)`; an odd node is promoted unchanged; the empty set has
//! the all-zero root. A seal is signed once at the start of slot s + 3 and never amended.
//! Body v1 of `slot-seal`: `node ‖ u64 slot ‖ u32 count ‖ merkle_root[32] ‖ i64 ts_ms`.

use lucid_core::codec::{DecodeError, Reader, Writer};
use lucid_core::hash::{CTX_SEAL_LEAF, CTX_SEAL_NODE, derive_key};
use lucid_core::message::Message;
use lucid_core::{Digest, NodeId, SignedMessage, Slot, UnixMillis};

/// A node's seal over the messages it accepted for one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotSeal {
    /// The sealing node; also the signer.
    pub node: NodeId,
    /// The sealed slot.
    pub slot: Slot,
    /// Number of messages in the set.
    pub count: u32,
    /// Merkle root over the set's digests.
    pub root: Digest,
    /// Signing time.
    pub ts: UnixMillis,
}

impl Message for SlotSeal {
    const TYPE_NAME: &'static str = "slot-seal";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.node).slot(self.slot).u32(self.count).digest(&self.root).time(self.ts);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SlotSeal {
            node: reader.node_id("node")?,
            slot: reader.slot("slot")?,
            count: reader.u32("count")?,
            root: reader.digest("merkle_root")?,
            ts: reader.time("ts_ms")?,
        })
    }

    fn signer(&self) -> NodeId {
        self.node
    }
}

/// A seal as stored: the decoded seal with its signed pair, written once per (node, slot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSeal {
    /// The decoded seal.
    pub seal: SlotSeal,
    /// The exact signed bytes and signature.
    pub message: SignedMessage,
    /// The message digest.
    pub digest: Digest,
}

impl StoredSeal {
    /// A stored seal from a decoded seal and its signed pair.
    pub fn new(seal: SlotSeal, message: SignedMessage) -> Self {
        let digest = message.digest();
        StoredSeal { seal, message, digest }
    }
}

/// The seal root over a set of message digests (any order; duplicates count once).
pub fn seal_root(digests: &[Digest]) -> Digest {
    let mut sorted = digests.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut level: Vec<Digest> =
        sorted.iter().map(|digest| derive_key(CTX_SEAL_LEAF, &[digest.as_bytes()])).collect();
    if level.is_empty() {
        return Digest::ZERO;
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => derive_key(CTX_SEAL_NODE, &[left.as_bytes(), right.as_bytes()]),
                // An odd node is promoted unchanged.
                [single] => *single,
                _ => Digest::ZERO,
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use lucid_core::hash::{CTX_SEAL_LEAF, CTX_SEAL_NODE, derive_key};

    use super::*;
    use crate::testing;

    fn d(byte: u8) -> Digest {
        Digest::from_bytes([byte; 32])
    }

    fn leaf(byte: u8) -> Digest {
        derive_key(CTX_SEAL_LEAF, &[&[byte; 32]])
    }

    fn node(l: Digest, r: Digest) -> Digest {
        derive_key(CTX_SEAL_NODE, &[l.as_bytes(), r.as_bytes()])
    }

    #[test]
    fn root_shapes() {
        assert_eq!(seal_root(&[]), Digest::ZERO);
        assert_eq!(seal_root(&[d(1)]), leaf(1));
        assert_eq!(seal_root(&[d(2), d(1)]), node(leaf(1), leaf(2)));
        // Three leaves: the third is promoted to the next level unchanged.
        assert_eq!(seal_root(&[d(3), d(1), d(2)]), node(node(leaf(1), leaf(2)), leaf(3)));
        assert_eq!(seal_root(&[d(1), d(1), d(2)]), seal_root(&[d(2), d(1)]));
    }

    #[test]
    fn seal_round_trip() {
        let params = testing::params();
        let key = testing::key(3);
        let seal = SlotSeal {
            node: key.node_id(),
            slot: Slot(9),
            count: 2,
            root: d(7),
            ts: UnixMillis(5),
        };
        let signed = seal.sign(&params.network, &key);
        let (network, decoded) = SlotSeal::from_signed_bytes(signed.bytes()).unwrap();
        assert_eq!((network, decoded), (params.network, seal));
        assert!(signed.verify(&key.node_id()));
    }

    proptest::proptest! {
        #[test]
        fn root_is_order_independent(mut bytes in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..40), seed in proptest::prelude::any::<u64>()) {
            let digests: Vec<Digest> = bytes.iter().copied().map(Digest::from_bytes).collect();
            let root = seal_root(&digests);
            // A deterministic shuffle.
            let n = bytes.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(i as u64 + 7) % (i as u64 + 1)) as usize;
                bytes.swap(i, j);
            }
            let shuffled: Vec<Digest> = bytes.iter().copied().map(Digest::from_bytes).collect();
            proptest::prop_assert_eq!(seal_root(&shuffled), root);
            if !digests.is_empty() {
                proptest::prop_assert_ne!(seal_root(&digests[1..]), root);
            }
        }
    }
}
