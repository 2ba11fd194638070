//! `StorePeer` over the in-memory store under a manual clock: the registry survives a restart,
//! proofs are decided against the clock's slot, reads page by node id.

use std::sync::Arc;
use std::time::Duration;

use lucid_api::grpc::PeerApi;
use lucid_consensus::ingest::{RejectReason, Verdict};
use lucid_consensus::store::MemoryProofStore;
use lucid_consensus::testing;
use lucid_consensus::verify::Verifier;
use lucid_core::clock::ManualClock;
use lucid_core::{Slot, SlotRange};

use super::StorePeer;

#[tokio::test]
async fn decides_by_the_clock_and_reloads_the_registry() {
    let params = testing::params();
    let slot = Slot(500);
    let clock = Arc::new(ManualClock::new(params.time.slot_start(slot).unwrap()));
    let store = Arc::new(MemoryProofStore::new());
    let verifier = Arc::new(Verifier::single_threaded());
    let peer =
        StorePeer::load(params, store.clone(), verifier.clone(), clock.clone()).await.unwrap();
    let alice = testing::key(1);
    let registered =
        peer.submit_registration(testing::signed_registration(&params, &alice, 1)).await.unwrap();
    assert_eq!(registered.verdict, Verdict::Accept);
    assert_eq!(peer.registered_nodes().await.unwrap(), 1);

    let beacon = testing::signed_beacon(&params, &alice, slot);
    let outcomes = peer.submit_proofs(None, vec![beacon.clone(), beacon.clone()]).await.unwrap();
    assert_eq!(outcomes[0].verdict, Verdict::Accept);
    assert_eq!(outcomes[1].verdict, Verdict::Duplicate);

    // Three slots later the same slot is out of the live window.
    clock.advance(Duration::from_millis(params.time.slot_ms() * 3));
    let late = testing::signed_relay(&params, &alice, slot, 10);
    let outcomes = peer.submit_proofs(None, vec![late]).await.unwrap();
    assert_eq!(outcomes[0].verdict, Verdict::Reject(RejectReason::Stale));

    // A restarted peer port knows alice from the store.
    let again = StorePeer::load(params, store.clone(), verifier, clock).await.unwrap();
    assert_eq!(again.registered_nodes().await.unwrap(), 1);
    let range = SlotRange { start: slot, end: Slot(slot.0 + 1) };
    let pulled = again.pull_proofs(range, None, 10).await.unwrap();
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].message, beacon);
    let digests = again.slot_digests(range).await.unwrap();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].count, 1);
    assert_eq!(
        again.registration(alice.node_id()).await.unwrap().map(|m| m.digest()),
        Some(registered.digest)
    );
    assert!(again.registration(testing::node(2)).await.unwrap().is_none());
    assert_eq!(again.registrations(Some(alice.node_id()), 10).await.unwrap().len(), 0);
    assert_eq!(again.registrations(None, 10).await.unwrap().len(), 1);
}
