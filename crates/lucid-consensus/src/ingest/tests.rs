//! Tests of ingest: every check of the live pipeline, duplicates, equivocation (P4, P5),
//! registrations, and malformed, oversized, replayed and forged inputs.

use lucid_core::message::Message;
use lucid_core::{NodeKey, Signature, SignedMessage, Slot, UnixMillis};
use pollster::block_on;
use proptest::prelude::*;

use super::*;
use crate::proof::ProofValue;
use crate::store::MemoryProofStore;
use crate::testing;

struct Fixture {
    params: ConsensusParams,
    ingest: Ingest,
    store: MemoryProofStore,
    verifier: Verifier,
    keys: Vec<NodeKey>,
}

const SLOT: Slot = Slot(1_000);

impl Fixture {
    fn new(nodes: u64) -> Self {
        let params = testing::params();
        let mut ingest = Ingest::new(params);
        let store = MemoryProofStore::new();
        let keys: Vec<NodeKey> = (0..nodes).map(testing::key).collect();
        for key in &keys {
            let (outcome, _) = block_on(ingest.ingest_registration(
                &store,
                now_in(&params, SLOT),
                testing::signed_registration(&params, key, 1),
            ))
            .unwrap();
            assert_eq!(outcome.verdict, Verdict::Accept);
        }
        Fixture { params, ingest, store, verifier: Verifier::new(2).unwrap(), keys }
    }

    fn ingest_at(&mut self, slot: Slot, messages: Vec<SignedMessage>) -> BatchReport {
        let now = now_in(&self.params, slot);
        block_on(self.ingest.ingest_batch(&self.store, &self.verifier, now, messages)).unwrap()
    }

    fn verdicts_at(&mut self, slot: Slot, messages: Vec<SignedMessage>) -> Vec<Verdict> {
        self.ingest_at(slot, messages).outcomes.into_iter().map(|o| o.verdict).collect()
    }
}

fn now_in(params: &ConsensusParams, slot: Slot) -> UnixMillis {
    params.time.slot_start(slot).unwrap().saturating_add_ms(60_000)
}

fn relay(f: &Fixture, node: usize, slot: Slot, bytes: u64) -> SignedMessage {
    testing::signed_relay(&f.params, &f.keys[node], slot, bytes)
}

fn reject(reason: RejectReason) -> Verdict {
    Verdict::Reject(reason)
}

#[test]
fn accept_then_duplicate_is_a_no_op() {
    let mut f = Fixture::new(2);
    let m = relay(&f, 0, SLOT, 10);
    let first = f.ingest_at(SLOT, vec![m.clone()]);
    assert_eq!(first.outcomes[0].verdict, Verdict::Accept);
    assert_eq!(first.outcomes[0].digest, m.digest());
    assert_eq!(first.accepted.len(), 1);
    let stored = block_on(f.store.get_proof(&first.accepted[0].key())).unwrap().unwrap();
    assert_eq!(stored.message, m);
    // Replayed, in the same batch and in later ones: duplicate, nothing new stored.
    assert_eq!(f.verdicts_at(SLOT, vec![m.clone(), m.clone()]), vec![Verdict::Duplicate; 2]);
    assert_eq!(f.store.proof_count(), 1);
    // A second valid signature over the same bytes is the same message (same digest).
    let key = &f.keys[0];
    let resigned = SignedMessage::new(m.bytes().to_vec(), key.sign(m.bytes()));
    assert_eq!(f.verdicts_at(SLOT, vec![resigned]), vec![Verdict::Duplicate]);
}

#[test]
fn duplicate_found_by_the_store_after_a_restart() {
    let mut f = Fixture::new(1);
    let m = relay(&f, 0, SLOT, 10);
    assert_eq!(f.verdicts_at(SLOT, vec![m.clone()]), vec![Verdict::Accept]);
    // A new ingest state over the same store (a restart): the index is empty, the store decides.
    let mut restarted = Ingest::new(f.params);
    assert_eq!(block_on(restarted.load_registrations(&f.store)).unwrap(), 1);
    let report =
        block_on(restarted.ingest_batch(&f.store, &f.verifier, now_in(&f.params, SLOT), vec![m]))
            .unwrap();
    assert_eq!(report.outcomes[0].verdict, Verdict::Duplicate);
    assert!(report.accepted.is_empty());
}

#[test]
fn equivocation_is_rejected_and_kept_as_evidence() {
    let mut f = Fixture::new(1);
    let first = relay(&f, 0, SLOT, 10);
    let second = relay(&f, 0, SLOT, 11);
    assert_eq!(f.verdicts_at(SLOT, vec![first.clone()]), vec![Verdict::Accept]);
    let report = f.ingest_at(SLOT, vec![second.clone()]);
    assert_eq!(report.outcomes[0].verdict, reject(RejectReason::Equivocation));
    assert_eq!(report.evidence.len(), 1);
    let evidence = &report.evidence[0];
    assert!(evidence.first.digest() < evidence.second.digest());
    assert!(evidence.first.verify(&evidence.node) && evidence.second.verify(&evidence.node));
    // The first stays stored; replaying the conflict adds no second evidence record.
    let key = crate::proof::ProofKey {
        node: f.keys[0].node_id(),
        slot: SLOT,
        kind: crate::ProofKind::RelayBandwidth,
    };
    assert_eq!(block_on(f.store.get_proof(&key)).unwrap().unwrap().message, first);
    assert_eq!(f.verdicts_at(SLOT, vec![second]), vec![reject(RejectReason::Equivocation)]);
    assert_eq!(f.store.all_evidence().len(), 1);
    assert_eq!(
        block_on(
            f.store.evidence_keys(lucid_core::SlotRange { start: SLOT, end: Slot(SLOT.0 + 1) })
        )
        .unwrap(),
        vec![key]
    );
}

#[test]
fn conflicting_pair_in_one_batch_is_decided_in_order() {
    let mut f = Fixture::new(1);
    let a = relay(&f, 0, SLOT, 10);
    let b = relay(&f, 0, SLOT, 11);
    let report = f.ingest_at(SLOT, vec![a.clone(), b, a]);
    let verdicts: Vec<_> = report.outcomes.iter().map(|o| o.verdict).collect();
    assert_eq!(
        verdicts,
        vec![Verdict::Accept, reject(RejectReason::Equivocation), Verdict::Duplicate]
    );
    assert_eq!(report.evidence.len(), 1);
}

#[test]
fn forged_equivocation_is_only_a_bad_signature() {
    // Someone else signs a conflicting proof in the node's name: no evidence against the node.
    let mut f = Fixture::new(2);
    assert_eq!(f.verdicts_at(SLOT, vec![relay(&f, 0, SLOT, 10)]), vec![Verdict::Accept]);
    let forged_proof = testing::proof(
        &f.params,
        &f.keys[0],
        SLOT,
        ProofValue::Relay { bytes_transferred: 99, sessions_relayed: 1 },
    );
    let bytes = forged_proof.to_signed_bytes(&f.params.network);
    let forged = SignedMessage::new(bytes.clone(), f.keys[1].sign(&bytes));
    assert_eq!(f.verdicts_at(SLOT, vec![forged]), vec![reject(RejectReason::BadSignature)]);
    assert!(f.store.all_evidence().is_empty());
}

impl Fixture {
    fn evidence_at(&mut self, slot: Slot, a: SignedMessage, b: SignedMessage) -> Verdict {
        let now = now_in(&self.params, slot);
        let (outcome, evidence) =
            block_on(self.ingest.ingest_evidence(&self.store, &self.verifier, now, a, b.clone()))
                .unwrap();
        assert_eq!(outcome.digest, b.digest());
        assert_eq!(
            evidence.is_some(),
            matches!(outcome.verdict, Verdict::Accept | Verdict::Duplicate)
        );
        outcome.verdict
    }
}

#[test]
fn evidence_arriving_after_the_grace_is_recorded_through_its_own_path() {
    let mut f = Fixture::new(2);
    let first = relay(&f, 0, SLOT, 10);
    let second = relay(&f, 0, SLOT, 11);
    // Ten slots later the live path refuses both messages before any conflict can be seen.
    let later = Slot(SLOT.0 + 10);
    assert_eq!(
        f.verdicts_at(later, vec![first.clone(), second.clone()]),
        vec![reject(RejectReason::Stale), reject(RejectReason::Stale)]
    );
    assert!(f.store.all_evidence().is_empty());
    // The evidence path checks the pair itself and records it, once, in either order.
    assert_eq!(f.evidence_at(later, first.clone(), second.clone()), Verdict::Accept);
    assert_eq!(f.evidence_at(later, second.clone(), first.clone()), Verdict::Duplicate);
    let stored = f.store.all_evidence();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].node, f.keys[0].node_id());
    assert!(stored[0].first.digest() < stored[0].second.digest());
    // No proof was stored by it.
    assert_eq!(f.store.proof_count(), 0);
}

#[test]
fn evidence_that_does_not_prove_an_equivocation_is_refused() {
    let mut f = Fixture::new(2);
    let first = relay(&f, 0, SLOT, 10);
    let second = relay(&f, 0, SLOT, 11);
    let at = Slot(SLOT.0 + 5);
    // The same message twice, or two different keys: no conflict.
    assert_eq!(f.evidence_at(at, first.clone(), first.clone()), reject(RejectReason::Malformed));
    let other_slot = relay(&f, 0, Slot(SLOT.0 + 1), 11);
    assert_eq!(f.evidence_at(at, first.clone(), other_slot), reject(RejectReason::Malformed));
    let other_node = relay(&f, 1, SLOT, 11);
    assert_eq!(f.evidence_at(at, first.clone(), other_node), reject(RejectReason::Malformed));
    // Garbage, or an oversized message.
    let garbage = SignedMessage::new(vec![0xff; 40], Signature::from_bytes([0; 64]));
    assert_eq!(f.evidence_at(at, first.clone(), garbage), reject(RejectReason::Malformed));
    let oversized = SignedMessage::new(vec![0; 1 << 20], Signature::from_bytes([0; 64]));
    assert_eq!(f.evidence_at(at, oversized, second.clone()), reject(RejectReason::Malformed));
    // Forged: node 1 signs a conflicting proof in node 0's name.
    let forged_proof = testing::proof(
        &f.params,
        &f.keys[0],
        SLOT,
        ProofValue::Relay { bytes_transferred: 99, sessions_relayed: 1 },
    );
    let bytes = forged_proof.to_signed_bytes(&f.params.network);
    let forged = SignedMessage::new(bytes.clone(), f.keys[1].sign(&bytes));
    assert_eq!(f.evidence_at(at, first.clone(), forged), reject(RejectReason::BadSignature));
    // Another network.
    let foreign_params = ConsensusParams::test_network("elsewhere", f.params.time);
    let foreign = testing::signed_relay(&foreign_params, &f.keys[0], SLOT, 12);
    assert_eq!(f.evidence_at(at, first.clone(), foreign), reject(RejectReason::WrongNetwork));
    // An unregistered signer.
    let stranger = testing::key(77);
    let s1 = testing::signed_relay(&f.params, &stranger, SLOT, 1);
    let s2 = testing::signed_relay(&f.params, &stranger, SLOT, 2);
    assert_eq!(f.evidence_at(at, s1, s2), reject(RejectReason::UnknownNode));
    // Older than the window of the oldest unsettled tally, or from the future.
    let much_later = Slot(SLOT.0 + 8 * f.params.time.slots_per_epoch());
    assert_eq!(
        f.evidence_at(much_later, first.clone(), second.clone()),
        reject(RejectReason::Stale)
    );
    let before = Slot(SLOT.0 - 5);
    assert_eq!(f.evidence_at(before, first, second), reject(RejectReason::FromFuture));
    assert!(f.store.all_evidence().is_empty());
}

#[test]
fn every_rejection_reason_of_the_live_path() {
    let mut f = Fixture::new(2);
    let p = f.params;
    let key = &testing::key(0);
    let sign = |proof: TaskProof| proof.sign(&p.network, key);
    let base = testing::proof(
        &p,
        key,
        SLOT,
        ProofValue::Relay { bytes_transferred: 1, sessions_relayed: 1 },
    );

    // Malformed: garbage, truncated, trailing byte, oversized, another type.
    let good = sign(base);
    let mut trailing = good.bytes().to_vec();
    trailing.push(0);
    let oversized = vec![0u8; lucid_core::message::MAX_MESSAGE_BYTES + 1];
    let registration = testing::signed_registration(&p, key, 2);
    let cases: Vec<(SignedMessage, RejectReason)> = vec![
        (SignedMessage::new(b"garbage".to_vec(), *good.signature()), RejectReason::Malformed),
        (
            SignedMessage::new(good.bytes()[..good.bytes().len() - 1].to_vec(), *good.signature()),
            RejectReason::Malformed,
        ),
        (SignedMessage::new(trailing.clone(), key.sign(&trailing)), RejectReason::Malformed),
        (SignedMessage::new(oversized, *good.signature()), RejectReason::Malformed),
        (registration, RejectReason::Malformed),
        // Another network.
        (
            base.sign(&lucid_core::NetworkId::derive("other", p.time.genesis()), key),
            RejectReason::WrongNetwork,
        ),
        // Timestamp outside the slot.
        (
            sign(TaskProof { ts: p.time.slot_start(Slot(SLOT.0 + 1)).unwrap(), ..base }),
            RejectReason::SlotTimestampMismatch,
        ),
        // Stale: three slots old. Future: two slots ahead.
        (sign(testing::proof(&p, key, Slot(SLOT.0 - 3), base.value)), RejectReason::Stale),
        (sign(testing::proof(&p, key, Slot(SLOT.0 + 2), base.value)), RejectReason::FromFuture),
        // Over the cap.
        (
            sign(TaskProof {
                value: ProofValue::Validation { validated_sessions: 100_001 },
                ..base
            }),
            RejectReason::ValueOutOfRange,
        ),
        // Bad signature.
        (
            SignedMessage::new(good.bytes().to_vec(), Signature::from_bytes([7; 64])),
            RejectReason::BadSignature,
        ),
    ];
    for (message, reason) in cases {
        assert_eq!(f.verdicts_at(SLOT, vec![message]), vec![reject(reason)], "{reason}");
    }
    // Unknown node: a valid key that never registered.
    let stranger = testing::key(999);
    let m = testing::signed_relay(&p, &stranger, SLOT, 1);
    assert_eq!(f.verdicts_at(SLOT, vec![m]), vec![reject(RejectReason::UnknownNode)]);
    // Version 2 of a known type.
    let mut v2 = good.bytes().to_vec();
    v2[6 + 1 + "task-proof".len() + 1] = 2;
    assert_eq!(
        f.verdicts_at(SLOT, vec![SignedMessage::new(v2.clone(), key.sign(&v2))]),
        vec![reject(RejectReason::UnsupportedVersion)]
    );
    // Nothing of the above was stored.
    assert_eq!(f.store.proof_count(), 0);
    // The grace edges are accepted: two slots old, and the next slot within the skew.
    let edge_old = sign(testing::proof(&p, key, Slot(SLOT.0 - 2), base.value));
    assert_eq!(f.verdicts_at(SLOT, vec![edge_old]), vec![Verdict::Accept]);
    let near_future = testing::proof(&p, key, Slot(SLOT.0 + 1), base.value);
    let now = p.time.slot_start(Slot(SLOT.0 + 1)).unwrap().saturating_add_ms(-4_000);
    let report = block_on(f.ingest.ingest_batch(
        &f.store,
        &f.verifier,
        now,
        vec![sign(TaskProof { ts: p.time.slot_start(Slot(SLOT.0 + 1)).unwrap(), ..near_future })],
    ))
    .unwrap();
    assert_eq!(report.outcomes[0].verdict, Verdict::Accept);
}

#[test]
fn weak_signer_key_is_refused() {
    let mut f = Fixture::new(1);
    let good = relay(&f, 0, SLOT, 1);
    let mut bytes = good.bytes().to_vec();
    // The node field starts after the header and the kind byte; the identity point is weak.
    let node_at = 6 + 1 + "task-proof".len() + 2 + 32 + 1;
    bytes[node_at..node_at + 32].copy_from_slice(&{
        let mut identity = [0u8; 32];
        identity[0] = 1;
        identity
    });
    let verdicts = f.verdicts_at(SLOT, vec![SignedMessage::new(bytes, *good.signature())]);
    assert_eq!(verdicts, vec![reject(RejectReason::WeakKey)]);
}

#[test]
fn clock_before_genesis_accepts_nothing() {
    let mut f = Fixture::new(1);
    let m = relay(&f, 0, SLOT, 1);
    let report =
        block_on(f.ingest.ingest_batch(&f.store, &f.verifier, UnixMillis(0), vec![m])).unwrap();
    assert_eq!(report.outcomes[0].verdict, reject(RejectReason::FromFuture));
}

#[test]
fn index_stays_bounded_to_the_grace_window() {
    let mut f = Fixture::new(3);
    for slot in 1_000..1_020u64 {
        let batch: Vec<_> =
            (0..3).map(|n| testing::signed_beacon(&f.params, &f.keys[n], Slot(slot))).collect();
        assert!(f.verdicts_at(Slot(slot), batch).iter().all(|v| *v == Verdict::Accept));
        assert!(f.ingest.index_len() <= 3 * 3, "index holds {}", f.ingest.index_len());
    }
}

#[test]
fn registrations() {
    let params = testing::params();
    let store = MemoryProofStore::new();
    let mut ingest = Ingest::new(params);
    let key = testing::key(1);
    let now = now_in(&params, SLOT);
    let mut submit =
        |m: SignedMessage| block_on(ingest.ingest_registration(&store, now, m)).unwrap();
    let r1 = testing::signed_registration(&params, &key, 1);
    assert_eq!(submit(r1.clone()).0.verdict, Verdict::Accept);
    assert_eq!(submit(r1).0.verdict, Verdict::Duplicate);
    assert_eq!(submit(testing::signed_registration(&params, &key, 5)).0.verdict, Verdict::Accept);
    assert_eq!(
        submit(testing::signed_registration(&params, &key, 3)).0.verdict,
        reject(RejectReason::Superseded)
    );
    // Equal seq, different bytes: equivocation with evidence; the first stays current.
    let mut other = testing::registration(&params, &key, 5);
    other.storage_capacity_bytes += 1;
    let (outcome, evidence) = submit(other.sign(&params.network, &key));
    assert_eq!(outcome.verdict, reject(RejectReason::Equivocation));
    assert!(evidence.is_some());
    let current = block_on(store.current_registrations()).unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].registration, testing::registration(&params, &key, 5));
    // Forged: signed by another key.
    let forged = testing::registration(&params, &key, 9);
    let bytes = forged.to_signed_bytes(&params.network);
    let forged = SignedMessage::new(bytes.clone(), testing::key(2).sign(&bytes));
    assert_eq!(submit(forged).0.verdict, reject(RejectReason::BadSignature));
    // From the future.
    let mut future = testing::registration(&params, &key, 10);
    future.ts = now.saturating_add_ms(6_000);
    assert_eq!(
        submit(future.sign(&params.network, &key)).0.verdict,
        reject(RejectReason::FromFuture)
    );
    // Bad payout address version and unknown capability bits are malformed.
    let mut bad_address = testing::registration(&params, &key, 11);
    bad_address.payout_address[0] = 0x42;
    assert_eq!(
        submit(bad_address.sign(&params.network, &key)).0.verdict,
        reject(RejectReason::Malformed)
    );
    let mut bad_caps = testing::registration(&params, &key, 12);
    bad_caps.capabilities = 1 << 3;
    assert_eq!(
        submit(bad_caps.sign(&params.network, &key)).0.verdict,
        reject(RejectReason::Malformed)
    );
}

fn arbitrary_value() -> impl Strategy<Value = ProofValue> {
    prop_oneof![
        (0u64..1_000_000_000, 0u32..100)
            .prop_map(|(b, s)| ProofValue::Relay { bytes_transferred: b, sessions_relayed: s }),
        (0u64..1_000, 0u64..1 << 40)
            .prop_map(|(c, s)| ProofValue::Storage { chunks_stored: c, size_bytes: s }),
        (0u32..1_000).prop_map(|v| ProofValue::Validation { validated_sessions: v }),
        Just(ProofValue::Beacon { metrics_digest: None }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    // P4: re-submitting accepted messages changes nothing; a conflicting message is rejected,
    // yields evidence, and leaves the stored message unchanged; the outcome does not depend on
    // how the messages are split into batches.
    #[test]
    fn resubmission_and_conflicts(values in proptest::collection::vec((0usize..3, 0u64..3, arbitrary_value()), 1..20), split in 0usize..20) {
        let mut f = Fixture::new(3);
        let messages: Vec<SignedMessage> = values
            .iter()
            .map(|(n, ds, v)| testing::proof(&f.params, &f.keys[*n], Slot(SLOT.0 - ds), *v).sign(&f.params.network, &f.keys[*n]))
            .collect();
        let split = split.min(messages.len());
        let mut first = f.verdicts_at(SLOT, messages[..split].to_vec());
        first.extend(f.verdicts_at(SLOT, messages[split..].to_vec()));
        // The same decisions as one batch on a fresh node.
        let mut g = Fixture::new(3);
        prop_assert_eq!(&g.verdicts_at(SLOT, messages.clone()), &first);
        // Exactly the first message per key is accepted; later ones are duplicates or conflicts.
        let mut seen = std::collections::HashMap::new();
        for (message, verdict) in messages.iter().zip(&first) {
            let (_, proof) = TaskProof::from_signed_bytes(message.bytes()).unwrap();
            match seen.get(&proof.key()) {
                None => { prop_assert_eq!(*verdict, Verdict::Accept); seen.insert(proof.key(), message.clone()); }
                Some(stored) if stored.bytes() == message.bytes() => prop_assert_eq!(*verdict, Verdict::Duplicate),
                Some(_) => prop_assert_eq!(*verdict, reject(RejectReason::Equivocation)),
            }
        }
        let before = f.store.proof_count();
        let again = f.verdicts_at(SLOT, messages.clone());
        prop_assert_eq!(f.store.proof_count(), before);
        for (verdict, message) in again.iter().zip(&messages) {
            let (_, proof) = TaskProof::from_signed_bytes(message.bytes()).unwrap();
            let stored = block_on(f.store.get_proof(&proof.key())).unwrap().unwrap();
            prop_assert_eq!(&stored.message, &seen[&proof.key()]);
            if stored.message.bytes() == message.bytes() {
                prop_assert_eq!(*verdict, Verdict::Duplicate);
            } else {
                prop_assert_eq!(*verdict, reject(RejectReason::Equivocation));
            }
        }
    }

    // P5: future slots, stale slots and slot ≠ slot_of(ts) are rejected on the live path.
    #[test]
    fn out_of_window_and_mismatched_slots(offset in -20i64..20, ts_shift in -300_000i64..300_000) {
        let mut f = Fixture::new(1);
        let p = f.params;
        let slot = Slot(SLOT.0.checked_add_signed(offset).unwrap());
        let mut proof = testing::proof(&p, &f.keys[0], slot, ProofValue::Beacon { metrics_digest: None });
        proof.ts = proof.ts.saturating_add_ms(ts_shift);
        let verdict = f.verdicts_at(SLOT, vec![proof.sign(&p.network, &f.keys[0])])[0];
        let ts_slot = p.time.slot_of(proof.ts).unwrap();
        let expected = if ts_slot != slot {
            reject(RejectReason::SlotTimestampMismatch)
        } else if offset < -2 {
            reject(RejectReason::Stale)
        } else if offset > 0 {
            // now is 60 s into SLOT; the 5 s skew never reaches the next slot.
            reject(RejectReason::FromFuture)
        } else {
            Verdict::Accept
        };
        prop_assert_eq!(verdict, expected);
    }

    // Random bytes never panic the pipeline and are never accepted.
    #[test]
    fn random_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..300), sig in proptest::collection::vec(any::<u8>(), 64)) {
        let mut f = Fixture::new(1);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&sig);
        let verdict = f.verdicts_at(SLOT, vec![SignedMessage::new(bytes, Signature::from_bytes(signature))])[0];
        prop_assert!(matches!(verdict, Verdict::Reject(_)));
    }
}

mod late {
    use super::*;
    use crate::seal::{SlotSeal, seal_root};

    /// Late tests run in epoch 20, so that the oldest unsettled window starts well after genesis.
    const NOW_SLOT: Slot = Slot(720 * 20 + 100);

    /// A seal by `server` over `set` for `slot`, signed at the start of slot + 3.
    fn seal(f: &Fixture, server: usize, slot: Slot, set: &[SignedMessage]) -> SignedMessage {
        let digests: Vec<_> = set.iter().map(SignedMessage::digest).collect();
        let sealed = SlotSeal {
            node: f.keys[server].node_id(),
            slot,
            count: set.len() as u32,
            root: seal_root(&digests),
            ts: f.params.time.slot_start(Slot(slot.0 + 3)).unwrap(),
        };
        sealed.sign(&f.params.network, &f.keys[server])
    }

    fn late_verdicts(
        f: &mut Fixture,
        seal: SignedMessage,
        set: Vec<SignedMessage>,
    ) -> (Verdict, Vec<Verdict>) {
        let now = now_in(&f.params, NOW_SLOT);
        let report =
            block_on(f.ingest.ingest_sealed_set(&f.store, &f.verifier, now, seal, set)).unwrap();
        (report.seal.verdict, report.set.outcomes.iter().map(|o| o.verdict).collect())
    }

    #[test]
    fn late_proofs_need_another_nodes_seal() {
        let mut f = Fixture::new(3);
        let old = Slot(NOW_SLOT.0 - 50);
        let by_author = relay(&f, 0, old, 10);
        // Live: too old.
        assert_eq!(
            f.verdicts_at(NOW_SLOT, vec![by_author.clone()]),
            vec![reject(RejectReason::Stale)]
        );
        // Served by its own author: the author's seal never suffices.
        let own = seal(&f, 0, old, std::slice::from_ref(&by_author));
        assert_eq!(
            late_verdicts(&mut f, own, vec![by_author.clone()]),
            (Verdict::Accept, vec![reject(RejectReason::Stale)])
        );
        // Served by another node with a matching seal: accepted as late, with the server's own
        // proof in the same set still refused.
        let servers_own = relay(&f, 1, old, 20);
        let set = vec![by_author.clone(), servers_own.clone()];
        let other = seal(&f, 1, old, &set);
        let (seal_verdict, verdicts) = late_verdicts(&mut f, other, set);
        assert_eq!(seal_verdict, Verdict::Accept);
        assert_eq!(verdicts, vec![Verdict::Accept, reject(RejectReason::Stale)]);
        let stored = block_on(f.store.get_proof(&crate::proof::ProofKey {
            node: f.keys[0].node_id(),
            slot: old,
            kind: crate::ProofKind::RelayBandwidth,
        }))
        .unwrap()
        .unwrap();
        assert!(stored.late);
        assert_eq!(stored.message, by_author);
        // The late proof did not enter the live index.
        assert_eq!(f.ingest.index_len(), 0);
    }

    #[test]
    fn seals_that_do_not_match_are_refused() {
        let mut f = Fixture::new(3);
        let old = Slot(NOW_SLOT.0 - 50);
        let a = relay(&f, 0, old, 10);
        let b = relay(&f, 2, old, 10);
        // The set hides a message the seal does not cover.
        let s = seal(&f, 1, old, std::slice::from_ref(&a));
        assert_eq!(
            late_verdicts(&mut f, s.clone(), vec![a.clone(), b.clone()]).0,
            reject(RejectReason::SealMismatch)
        );
        // Duplicated entries do not match the count.
        assert_eq!(
            late_verdicts(&mut f, s, vec![a.clone(), a.clone()]).0,
            reject(RejectReason::SealMismatch)
        );
        // A forged seal (signed by another key) and a seal of an unknown node.
        let good = seal(&f, 1, old, std::slice::from_ref(&a));
        let forged = SignedMessage::new(good.bytes().to_vec(), f.keys[2].sign(good.bytes()));
        assert_eq!(
            late_verdicts(&mut f, forged, vec![a.clone()]).0,
            reject(RejectReason::BadSignature)
        );
        let stranger = testing::key(77);
        let sealed = SlotSeal {
            node: stranger.node_id(),
            slot: old,
            count: 1,
            root: seal_root(&[a.digest()]),
            ts: f.params.time.slot_start(old).unwrap(),
        };
        let unknown = sealed.sign(&f.params.network, &stranger);
        assert_eq!(
            late_verdicts(&mut f, unknown, vec![a.clone()]).0,
            reject(RejectReason::UnknownNode)
        );
        // A message of another slot inside the set.
        let other_slot = relay(&f, 0, Slot(old.0 + 1), 10);
        let set = vec![a.clone(), other_slot];
        let s = seal(&f, 1, old, &set);
        assert_eq!(
            late_verdicts(&mut f, s, set).1,
            vec![Verdict::Accept, reject(RejectReason::SealMismatch)]
        );
        // Older than the oldest unsettled window: stale even with a seal.
        let ancient_slot = Slot(NOW_SLOT.0 - f.params.time.slots_per_epoch() * 9);
        let ancient = relay(&f, 0, ancient_slot, 10);
        let s = seal(&f, 1, ancient_slot, std::slice::from_ref(&ancient));
        assert_eq!(late_verdicts(&mut f, s, vec![ancient]).1, vec![reject(RejectReason::Stale)]);
        assert!(f.store.all_evidence().is_empty());
        drop(b);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        // P6: a late message is accepted only with a seal from another node; its author's own
        // seal never suffices.
        #[test]
        fn late_acceptance_rule(author in 0usize..3, server in 0usize..3, age in 3u64..2_000) {
            let mut f = Fixture::new(3);
            let slot = Slot(NOW_SLOT.0 - age);
            let m = relay(&f, author, slot, 5);
            let s = seal(&f, server, slot, std::slice::from_ref(&m));
            let (seal_verdict, verdicts) = late_verdicts(&mut f, s, vec![m]);
            prop_assert_eq!(seal_verdict, Verdict::Accept);
            let expected = if author == server { reject(RejectReason::Stale) } else { Verdict::Accept };
            prop_assert_eq!(verdicts, vec![expected]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The registry's decompressed keys never change a verdict: every proof is accepted only if
    /// `lucid_core::verify_strict`, which decompresses the key from the node id on each call,
    /// accepts it, and every proof it refuses is `BadSignature` (or `Duplicate` of bytes already
    /// accepted, which changes nothing). Forgeries by another registered key, flipped signature
    /// bits and flipped signed bytes all still fail.
    #[test]
    fn registered_keys_give_the_uncached_verdict(
        proofs in proptest::collection::vec(
            (0usize..4, 0usize..4, 0u64..3, 0u32..100, 0u8..3, 0usize..512),
            1..24,
        ),
    ) {
        let mut f = Fixture::new(4);
        let messages: Vec<SignedMessage> = proofs
            .iter()
            .map(|&(node, signer, age, sessions, tamper, bit)| {
                let value = ProofValue::Relay { bytes_transferred: 1, sessions_relayed: sessions };
                let slot = Slot(SLOT.0 - age);
                let bytes = testing::proof(&f.params, &f.keys[node], slot, value)
                    .to_signed_bytes(&f.params.network);
                let mut signature = *f.keys[signer].sign(&bytes).as_bytes();
                let mut bytes = bytes;
                match tamper {
                    1 => signature[bit / 8] ^= 1 << (bit % 8),
                    2 => {
                        // The low bit of `sessions_relayed`: still decodes and stays in caps.
                        let last = bytes.len() - 1;
                        bytes[last] ^= 1;
                    }
                    _ => {}
                }
                SignedMessage::new(bytes, Signature::from_bytes(signature))
            })
            .collect();
        let uncached: Vec<bool> = messages
            .iter()
            .zip(&proofs)
            .map(|(m, &(node, ..))| {
                lucid_core::verify_strict(&f.keys[node].node_id(), m.bytes(), m.signature())
            })
            .collect();
        let verdicts = f.verdicts_at(SLOT, messages);
        for (verdict, valid) in verdicts.iter().zip(&uncached) {
            match verdict {
                Verdict::Accept | Verdict::Reject(RejectReason::Equivocation) => prop_assert!(*valid),
                Verdict::Reject(RejectReason::BadSignature) => prop_assert!(!*valid),
                Verdict::Duplicate => {}
                Verdict::Reject(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
        // Signed by someone else or altered: never accepted.
        for (verdict, &(node, signer, _, _, tamper, _)) in verdicts.iter().zip(&proofs) {
            if node != signer || tamper != 0 {
                prop_assert_ne!(*verdict, Verdict::Accept);
            }
        }
    }
}
