//! BLAKE3 hashing with one derive-key context per purpose, so that a hash made for one purpose
//! can never be replayed as a hash for another.
//!
//! Content hashes (shard ids) use plain `blake3::hash`; everything that identifies or orders
//! protocol objects uses [`derive_key`] with one of the contexts below, and keyed hashes
//! (rank tie-break, leader rotation) use a key that was itself derived with a context.

use crate::ids::Digest;

/// Context of the network id: `derive_key(CTX_NETWORK, lp(network_name) ‖ i64 genesis_ms)`.
pub const CTX_NETWORK: &str = "lucid-node v1 network id";
/// Context of message digests: `derive_key(CTX_MESSAGE, signed_bytes)`.
pub const CTX_MESSAGE: &str = "lucid-node v1 message digest";
/// Context of epoch seeds: `derive_key(CTX_EPOCH_SEED, network_id ‖ u64 epoch)`.
pub const CTX_EPOCH_SEED: &str = "lucid-node v1 epoch seed";
/// Context of the rank tie-break key: `derive_key(CTX_RANK, seed(e))`.
pub const CTX_RANK: &str = "lucid-node v1 rank tie-break";
/// Context of the leader rotation key: `derive_key(CTX_ROTATION, seed(e))`.
pub const CTX_ROTATION: &str = "lucid-node v1 leader rotation";
/// Context of tally digests.
pub const CTX_TALLY: &str = "lucid-node v1 tally digest";
/// Context of slot-seal Merkle leaves.
pub const CTX_SEAL_LEAF: &str = "lucid-node v1 seal leaf";
/// Context of slot-seal Merkle inner nodes.
pub const CTX_SEAL_NODE: &str = "lucid-node v1 seal node";
/// Context of pool id derivation.
pub const CTX_POOL_ID: &str = "lucid-node v1 pool id";
/// Context of payout id derivation.
pub const CTX_PAYOUT_ID: &str = "lucid-node v1 payout id";
/// Context of shard placement keys.
pub const CTX_PLACEMENT: &str = "lucid-node v1 shard placement";
/// Context of storage challenge digests.
pub const CTX_CHALLENGE: &str = "lucid-node v1 storage challenge";

/// BLAKE3 in derive-key mode: the 32-byte output for `context` over the concatenation of `parts`.
pub fn derive_key(context: &str, parts: &[&[u8]]) -> Digest {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for part in parts {
        hasher.update(part);
    }
    Digest::from_bytes(*hasher.finalize().as_bytes())
}

/// BLAKE3 keyed hash of the concatenation of `parts`.
pub fn keyed_hash(key: &Digest, parts: &[&[u8]]) -> Digest {
    let mut hasher = blake3::Hasher::new_keyed(key.as_bytes());
    for part in parts {
        hasher.update(part);
    }
    Digest::from_bytes(*hasher.finalize().as_bytes())
}

/// A reusable keyed hasher, for hot loops that hash many short inputs under one key.
///
/// Short inputs (the rank tie-break and rotation hashes hash 41 bytes) are concatenated on the
/// stack and hashed in one call, which avoids cloning a streaming hasher state per input.
#[derive(Clone)]
pub struct KeyedHasher {
    key: [u8; 32],
}

/// Inputs up to this many bytes are hashed from a stack buffer.
const SHORT_INPUT: usize = 128;

impl KeyedHasher {
    /// A hasher keyed with `key`.
    pub fn new(key: &Digest) -> Self {
        KeyedHasher { key: *key.as_bytes() }
    }

    /// The keyed hash of `input`, for callers that assemble the input themselves.
    pub fn hash_one(&self, input: &[u8]) -> Digest {
        Digest::from_bytes(*blake3::keyed_hash(&self.key, input).as_bytes())
    }

    /// The keyed hash of the concatenation of `parts`.
    pub fn hash(&self, parts: &[&[u8]]) -> Digest {
        let total: usize = parts.iter().map(|part| part.len()).sum();
        if total <= SHORT_INPUT {
            let mut buffer = [0u8; SHORT_INPUT];
            let mut at = 0;
            for part in parts {
                buffer[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            return Digest::from_bytes(*blake3::keyed_hash(&self.key, &buffer[..at]).as_bytes());
        }
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        for part in parts {
            hasher.update(part);
        }
        Digest::from_bytes(*hasher.finalize().as_bytes())
    }
}

/// Plain BLAKE3 content hash.
pub fn content_hash(bytes: &[u8]) -> Digest {
    Digest::from_bytes(*blake3::hash(bytes).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_separate_domains() {
        let a = derive_key(CTX_MESSAGE, &[b"x"]);
        let b = derive_key(CTX_TALLY, &[b"x"]);
        assert_ne!(a, b);
        // Concatenation is the input: parts are not length-prefixed here, callers encode first.
        assert_eq!(derive_key(CTX_MESSAGE, &[b"ab", b"c"]), derive_key(CTX_MESSAGE, &[b"abc"]));
    }

    #[test]
    fn keyed_hasher_equals_one_shot() {
        let key = derive_key(CTX_RANK, &[b"seed"]);
        let hasher = KeyedHasher::new(&key);
        assert_eq!(hasher.hash(&[b"a", b"b"]), keyed_hash(&key, &[b"ab"]));
        assert_ne!(hasher.hash(&[b"a"]), hasher.hash(&[b"b"]));
        // Long inputs take the streaming path and agree with the one-shot hash.
        let long = [7u8; 300];
        assert_eq!(hasher.hash(&[&long[..100], &long[100..]]), keyed_hash(&key, &[&long]));
        assert_eq!(hasher.hash(&[&long[..128]]), keyed_hash(&key, &[&long[..128]]));
        assert_eq!(hasher.hash_one(&long), keyed_hash(&key, &[&long]));
        assert_eq!(hasher.hash_one(b"ab"), hasher.hash(&[b"a", b"b"]));
    }

    #[test]
    fn known_vector() {
        // BLAKE3 of the empty input, from the BLAKE3 reference test vectors.
        expect_test::expect!["af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"]
            .assert_eq(&content_hash(b"").to_hex());
    }
}
