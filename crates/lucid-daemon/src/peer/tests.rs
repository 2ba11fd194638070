//! `StorePeer` over the in-memory store under a manual clock: the registry survives a restart,
//! proofs are decided against the clock's slot, reads page by node id; the proof pipeline
//! overlaps verification with persistence and decides as the sequential ingest.

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use lucid_api::grpc::PeerApi;
use lucid_consensus::ProofKey;
use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::testing;
use lucid_consensus::verify::Verifier;
use lucid_core::clock::ManualClock;
use lucid_core::message::Message as _;
use lucid_core::{Slot, SlotRange};

use super::StorePeer;
use crate::services::tests::FlakyProofStore;

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

/// A peer port over `store` at slot 500 with nodes 1 to 3 registered.
async fn registered_peer(store: Arc<dyn ProofStore>) -> (Arc<StorePeer>, Vec<lucid_core::NodeKey>) {
    let params = testing::params();
    let clock = Arc::new(ManualClock::new(
        params.time.slot_start(Slot(500)).unwrap().saturating_add_ms(60_000),
    ));
    let verifier = Arc::new(Verifier::new(2).unwrap());
    let peer = StorePeer::load(params, store, verifier, clock).await.unwrap();
    let keys: Vec<_> = (1..=3).map(testing::key).collect();
    for key in &keys {
        let outcome =
            peer.submit_registration(testing::signed_registration(&params, key, 1)).await.unwrap();
        assert_eq!(outcome.verdict, Verdict::Accept);
    }
    (Arc::new(peer), keys)
}

/// While one batch is held in its persist phase, the next is prepared and verified (the ingest
/// lock is free) and waits for its turn, and a third waits at the entrance (back-pressure). Two
/// of them carry one key with other bytes: released, exactly one is accepted and the other is an
/// equivocation kept as evidence, as when the batches are ingested one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_overlaps_verification_with_persistence_and_decides_in_order() {
    let params = testing::params();
    let slot = Slot(500);
    let store = Arc::new(FlakyProofStore::gated());
    let (peer, keys) = registered_peer(store.clone()).await;
    let first = vec![
        testing::signed_relay(&params, &keys[0], slot, 10),
        testing::signed_beacon(&params, &keys[1], slot),
    ];
    let second = vec![
        testing::signed_relay(&params, &keys[0], slot, 11),
        testing::signed_beacon(&params, &keys[2], slot),
    ];
    let third = vec![testing::signed_beacon(&params, &keys[1], slot)];

    let submit = |batch: Vec<lucid_core::SignedMessage>| {
        let peer = Arc::clone(&peer);
        tokio::spawn(async move { peer.submit_proofs(None, batch).await })
    };
    let arrived = store.arrived.notified();
    let a = submit(first.clone());
    arrived.await; // the first batch is in its persist phase, held at the gate
    let b = submit(second.clone());
    // The second batch gets through preparation and verification (it needs the ingest lock,
    // which the persisting batch does not hold) and then waits for the persist turn.
    while peer.proofs_waiting_to_persist() != 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(peer.registered_nodes().await.unwrap(), 3, "the ingest lock is free");
    let c = submit(third.clone());
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!c.is_finished(), "the third batch waits at the entrance");
    assert_eq!(peer.in_flight.available_permits(), 0);

    store.gate.as_ref().unwrap().add_permits(3);
    let (a, b, c) =
        (a.await.unwrap().unwrap(), b.await.unwrap().unwrap(), c.await.unwrap().unwrap());
    let verdicts = |outcomes: &[Outcome]| outcomes.iter().map(|o| o.verdict).collect::<Vec<_>>();
    assert_eq!(verdicts(&a), vec![Verdict::Accept, Verdict::Accept]);
    assert_eq!(verdicts(&b), vec![Verdict::Reject(RejectReason::Equivocation), Verdict::Accept]);
    assert_eq!(verdicts(&c), vec![Verdict::Duplicate]);
    assert_eq!(store.inner.all_evidence().len(), 1);
    let stored = store.inner.get_proof(&key_of(&first[0])).await.unwrap().unwrap();
    assert_eq!(stored.message, first[0]);

    // The same batches one after the other through `ingest_batch` on a fresh node.
    let reference = Arc::new(MemoryProofStore::new());
    let (sequential, _) = registered_peer(reference.clone()).await;
    let mut ingest = sequential.ingest.lock().await;
    let now = sequential.clock.wall();
    for (batch, got) in [(first, a), (second, b), (third, c)] {
        let report = ingest.ingest_batch(reference.as_ref(), &sequential.verifier, now, batch);
        assert_eq!(report.await.unwrap().outcomes, got);
    }
}

/// Many concurrent batches that share keys: for every key exactly one message is accepted and
/// stored, every other message of the key is a duplicate (same bytes) or an equivocation (other
/// bytes), whatever order the pipeline decided them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_accept_exactly_one_message_per_key() {
    let params = testing::params();
    let slot = Slot(500);
    let store = Arc::new(MemoryProofStore::new());
    let (peer, keys) = registered_peer(store.clone()).await;
    let mut tasks = Vec::new();
    let mut sent = Vec::new();
    for batch in 0..8u64 {
        // Every batch: a relay of each node with one of two values (a conflict or a copy), and
        // the same beacon of each node (copies).
        let messages: Vec<_> = keys
            .iter()
            .flat_map(|key| {
                [
                    testing::signed_relay(&params, key, slot, 10 + batch % 2),
                    testing::signed_beacon(&params, key, slot),
                ]
            })
            .collect();
        sent.push(messages.clone());
        let peer = Arc::clone(&peer);
        tasks.push(tokio::spawn(async move { peer.submit_proofs(None, messages).await }));
    }
    let mut by_key: std::collections::HashMap<ProofKey, Vec<(lucid_core::SignedMessage, Verdict)>> =
        std::collections::HashMap::new();
    for (task, messages) in tasks.into_iter().zip(sent) {
        let outcomes = task.await.unwrap().unwrap();
        for (message, outcome) in messages.into_iter().zip(outcomes) {
            by_key.entry(key_of(&message)).or_default().push((message, outcome.verdict));
        }
    }
    assert_eq!(by_key.len(), 6);
    for (key, decided) in by_key {
        let accepted: Vec<_> = decided.iter().filter(|(_, v)| *v == Verdict::Accept).collect();
        assert_eq!(accepted.len(), 1, "one accepted message for {key:?}");
        let winner = &accepted[0].0;
        assert_eq!(&store.get_proof(&key).await.unwrap().unwrap().message, winner);
        for (message, verdict) in &decided {
            if message == winner {
                assert!(matches!(verdict, Verdict::Accept | Verdict::Duplicate));
            } else {
                assert_eq!(*verdict, Verdict::Reject(RejectReason::Equivocation));
            }
        }
    }
    // One conflicting pair per node (the relays), kept once however often it was seen.
    assert_eq!(store.all_evidence().len(), 3);
}

/// A failing persist of batch N acknowledges nothing: N gets the store's error, and batch N+1,
/// verified and waiting behind it, is not answered until its own write is done, is not judged
/// against N's proofs (which were never stored: a repeat of one is accepted, not a duplicate),
/// and gets exactly the verdicts of a node that never saw N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_persist_acknowledges_neither_its_batch_nor_the_next() {
    let params = testing::params();
    let slot = Slot(500);
    let store = Arc::new(FlakyProofStore::gated());
    let (peer, keys) = registered_peer(store.clone()).await;
    let failing = vec![
        testing::signed_relay(&params, &keys[0], slot, 10),
        testing::signed_beacon(&params, &keys[1], slot),
    ];
    let next = vec![
        testing::signed_relay(&params, &keys[0], slot, 10), // the same bytes as in N
        testing::signed_relay(&params, &keys[1], slot, 20),
        testing::signed_beacon(&params, &keys[2], slot),
    ];
    let submit = |batch: Vec<lucid_core::SignedMessage>| {
        let peer = Arc::clone(&peer);
        tokio::spawn(async move { peer.submit_proofs(None, batch).await })
    };

    let arrived = store.arrived.notified();
    let n = submit(failing.clone());
    arrived.await; // N is in its persist phase, held at the gate
    let n_plus_1 = submit(next.clone());
    while peer.proofs_waiting_to_persist() != 1 {
        tokio::task::yield_now().await;
    }
    // N's write fails; N+1 takes the persist turn and reaches the gate with its own write.
    store.fail_inserts.store(1, AtomicOrdering::SeqCst);
    let arrived = store.arrived.notified();
    store.gate.as_ref().unwrap().add_permits(1);
    let error = n.await.unwrap().unwrap_err();
    assert!(matches!(error, lucid_consensus::Error::Store { .. }), "{error:?}");
    arrived.await;
    assert_eq!(peer.proofs_waiting_to_persist(), 0);
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(!n_plus_1.is_finished(), "N+1 is not answered before its own write is done");
    let all = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
    assert!(store.inner.proofs_in_range(all, None, 100).await.unwrap().is_empty());

    store.gate.as_ref().unwrap().add_permits(1);
    let got = n_plus_1.await.unwrap().unwrap();
    let verdicts: Vec<_> = got.iter().map(|o| o.verdict).collect();
    assert_eq!(verdicts, vec![Verdict::Accept; 3]);
    let stored = store.inner.proofs_in_range(all, None, 100).await.unwrap();
    let mut stored: Vec<_> = stored.into_iter().map(|p| p.message).collect();
    let mut expected_stored = next.clone();
    stored.sort_by_key(|m| m.digest());
    expected_stored.sort_by_key(|m| m.digest());
    assert_eq!(stored, expected_stored, "nothing of N was written");
    assert!(store.inner.all_evidence().is_empty());

    // A node that never saw N decides N+1 the same way.
    let reference = Arc::new(MemoryProofStore::new());
    let (sequential, _) = registered_peer(reference.clone()).await;
    let mut ingest = sequential.ingest.lock().await;
    let now = sequential.clock.wall();
    let report = ingest.ingest_batch(reference.as_ref(), &sequential.verifier, now, next);
    assert_eq!(report.await.unwrap().outcomes, got);
    drop(ingest);

    // The pipeline is not wedged: N sent again is judged against what N+1 stored (its relay is
    // a copy of N+1's) and its beacon, never stored, is accepted now.
    store.gate.as_ref().unwrap().add_permits(1);
    let again = peer.submit_proofs(None, failing).await.unwrap();
    let verdicts: Vec<_> = again.iter().map(|o| o.verdict).collect();
    assert_eq!(verdicts, vec![Verdict::Duplicate, Verdict::Accept]);
    assert_eq!(peer.in_flight.available_permits(), super::PIPELINE_DEPTH);
}

/// Two batches that carry one key with other bytes, submitted at the same moment, many times
/// over (no gate: the runtime's two workers race them): each time exactly one message of the key
/// is accepted and stored, the other is an equivocation kept as evidence, and both batches get
/// exactly the verdicts of the two ingested one after the other, the stored one first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_batches_of_one_key_decide_as_in_sequence() {
    let params = testing::params();
    let store = Arc::new(MemoryProofStore::new());
    let (peer, keys) = registered_peer(store.clone()).await;
    let reference = Arc::new(MemoryProofStore::new());
    let (sequential, _) = registered_peer(reference.clone()).await;
    let slot = Slot(500);
    const ROUNDS: u64 = 16;
    // One contested key per round: the relay at slot 500 of a node of its own, registered on
    // both nodes.
    let contenders: Vec<_> = (10..10 + ROUNDS).map(testing::key).collect();
    for node in [&peer, &sequential] {
        for key in &contenders {
            let registration = testing::signed_registration(&params, key, 1);
            let outcome = node.submit_registration(registration).await.unwrap();
            assert_eq!(outcome.verdict, Verdict::Accept);
        }
    }
    for (round, contested) in (0..ROUNDS).zip(&contenders) {
        // Each batch also carries the same beacon of node 1: a copy, accepted once.
        let a = vec![
            testing::signed_relay(&params, contested, slot, 2 * round + 1),
            testing::signed_beacon(&params, &keys[0], slot),
        ];
        let b = vec![
            testing::signed_relay(&params, contested, slot, 2 * round + 2),
            testing::signed_beacon(&params, &keys[0], slot),
        ];
        let (task_a, task_b) = {
            let (pa, pb) = (Arc::clone(&peer), Arc::clone(&peer));
            let (ma, mb) = (a.clone(), b.clone());
            (
                tokio::spawn(async move { pa.submit_proofs(None, ma).await }),
                tokio::spawn(async move { pb.submit_proofs(None, mb).await }),
            )
        };
        let (got_a, got_b) = (task_a.await.unwrap().unwrap(), task_b.await.unwrap().unwrap());
        let key = key_of(&a[0]);
        let winner = store.get_proof(&key).await.unwrap().unwrap().message;
        let a_first = winner == a[0];
        assert!(a_first || winner == b[0], "round {round}: one of the two is stored");
        let accepted =
            [&got_a[0], &got_b[0]].iter().filter(|o| o.verdict == Verdict::Accept).count();
        assert_eq!(accepted, 1, "round {round}");

        let mut ingest = sequential.ingest.lock().await;
        let now = sequential.clock.wall();
        let (first, second) = if a_first { (a, b) } else { (b, a) };
        let verifier = &sequential.verifier;
        let first_report =
            ingest.ingest_batch(reference.as_ref(), verifier, now, first).await.unwrap();
        let second_report =
            ingest.ingest_batch(reference.as_ref(), verifier, now, second).await.unwrap();
        let (expected_a, expected_b) = if a_first {
            (first_report.outcomes, second_report.outcomes)
        } else {
            (second_report.outcomes, first_report.outcomes)
        };
        assert_eq!(got_a, expected_a, "round {round}");
        assert_eq!(got_b, expected_b, "round {round}");
    }
    let all = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
    assert_eq!(
        store.proofs_in_range(all, None, 1_000).await.unwrap(),
        reference.proofs_in_range(all, None, 1_000).await.unwrap()
    );
    assert_eq!(store.all_evidence().len(), 16);
    assert_eq!(store.all_evidence(), reference.all_evidence());
    assert_eq!(peer.in_flight.available_permits(), super::PIPELINE_DEPTH);
}

fn key_of(message: &lucid_core::SignedMessage) -> ProofKey {
    lucid_consensus::TaskProof::from_signed_bytes(message.bytes()).unwrap().1.key()
}
