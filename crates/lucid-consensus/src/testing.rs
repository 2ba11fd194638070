//! Deterministic fixtures for tests and benches: keys from small integers, a test network, and
//! signed proof builders. Never used by production code.

use lucid_core::message::Message;
use lucid_core::{NodeId, NodeKey, PoolId, SignedMessage, Slot, TimeParams, UnixMillis};

use crate::params::ConsensusParams;
use crate::proof::{ProofValue, TaskProof};
use crate::registration::{CAP_ALL, Endpoint, Registration};
use crate::tally::CountedProof;

/// The key of test node `index` (seed = BLAKE3 of the index), stable across runs.
pub fn key(index: u64) -> NodeKey {
    let seed = lucid_core::hash::derive_key("lucid-node v1 test key", &[&index.to_be_bytes()]);
    NodeKey::from_seed(seed.as_bytes())
}

/// A test network with genesis 2024-01-01, mainnet slot and epoch lengths.
pub fn params() -> ConsensusParams {
    ConsensusParams::test_network("lucid-test", TimeParams::MAINNET)
}

/// A proof of `value` by `key` for `slot`, timestamped 1 s into the slot.
pub fn proof(params: &ConsensusParams, key: &NodeKey, slot: Slot, value: ProofValue) -> TaskProof {
    let start = params.time.slot_start(slot).unwrap_or(UnixMillis(i64::MAX));
    TaskProof { node: key.node_id(), slot, ts: start.saturating_add_ms(1_000), value }
}

/// A signed beacon by `key` for `slot`.
pub fn signed_beacon(params: &ConsensusParams, key: &NodeKey, slot: Slot) -> SignedMessage {
    proof(params, key, slot, ProofValue::Beacon { metrics_digest: None }).sign(&params.network, key)
}

/// A signed relay proof by `key` for `slot`.
pub fn signed_relay(
    params: &ConsensusParams,
    key: &NodeKey,
    slot: Slot,
    bytes: u64,
) -> SignedMessage {
    proof(params, key, slot, ProofValue::Relay { bytes_transferred: bytes, sessions_relayed: 1 })
        .sign(&params.network, key)
}

/// A registration of `key` with sequence `seq`, signed at genesis + 1 s.
pub fn registration(params: &ConsensusParams, key: &NodeKey, seq: u64) -> Registration {
    let mut payout_address = [0u8; 21];
    payout_address[0] = crate::registration::TRON_ADDRESS_VERSION;
    payout_address[1..].copy_from_slice(&key.node_id().as_bytes()[..20]);
    Registration {
        node: key.node_id(),
        seq,
        ts: params.time.genesis().saturating_add_ms(1_000),
        payout_address,
        endpoint: Endpoint::Direct(format!("127.0.0.1:{}", 50_000 + seq % 1_000)),
        capabilities: CAP_ALL,
        storage_capacity_bytes: 1 << 30,
    }
}

/// The signed registration of `key` with sequence `seq`.
pub fn signed_registration(params: &ConsensusParams, key: &NodeKey, seq: u64) -> SignedMessage {
    registration(params, key, seq).sign(&params.network, key)
}

/// A small test network: 1 s slots, 8 slots per epoch, so the work window is 56 slots.
pub fn small_params() -> ConsensusParams {
    match TimeParams::test_network(TimeParams::MAINNET.genesis(), 1_000, 8) {
        Ok(time) => ConsensusParams::test_network("lucid-small", time),
        // The arguments are within the documented bounds, so this arm is never taken.
        Err(_) => params(),
    }
}

/// The node id of test node `index`.
pub fn node(index: u64) -> NodeId {
    key(index).node_id()
}

/// A pool id made from a small integer (not derived; for tests only).
pub fn pool(index: u8) -> PoolId {
    PoolId::from_bytes([index; 16])
}

/// An accepted proof as the tally sees it.
pub fn counted(node: NodeId, slot: u64, value: ProofValue) -> CountedProof {
    CountedProof { node, slot: Slot(slot), value }
}

/// A beacon value without metrics.
pub const BEACON: ProofValue = ProofValue::Beacon { metrics_digest: None };

/// A relay value worth `sessions` credits.
pub fn relay(sessions: u32) -> ProofValue {
    ProofValue::Relay { bytes_transferred: 0, sessions_relayed: sessions }
}
