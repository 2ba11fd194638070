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
