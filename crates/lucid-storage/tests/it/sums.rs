//! The tally from the per-chunk proof sums (`Database::tally_from_sums`) on both backends equals
//! `TallyBuilder` over every stored proof: with pool seats that start and end inside and at the
//! edges of chunks, equivocation evidence, proofs inserted out of order over several batches
//! with duplicates, and on a network whose window does not cover whole chunks.

use lucid_consensus::ConsensusParams;
use lucid_consensus::proof::ProofValue;
use lucid_consensus::store::{Evidence, ProofStore, StoredProof, TASK_PROOF_TYPE, stored_proof};
use lucid_consensus::tally::{CountedProof, MembershipTimeline, Seat, compute_tally};
use lucid_consensus::testing;
use lucid_core::{Epoch, PoolId, Signature, SignedMessage, Slot, SlotRange};

use super::*;

/// A proof with a dummy signature (the store never verifies).
fn proof(params: &ConsensusParams, node: u64, slot: u64, value: ProofValue) -> StoredProof {
    let proof = testing::proof(params, &testing::key(node), Slot(slot), value);
    let message = SignedMessage::new(
        lucid_core::message::Message::to_signed_bytes(&proof, &params.network),
        Signature::from_bytes([0x22; 64]),
    );
    stored_proof(proof, message, false)
}

/// A varied mix over `window` for nodes 1..=6: beacons with gaps, relay, storage and validation.
fn window_proofs(params: &ConsensusParams, window: SlotRange) -> Vec<StoredProof> {
    let mut all = Vec::new();
    for node in 1..=6u64 {
        for slot in window.start.0..window.end.0 {
            if (slot + node) % 5 != 0 {
                all.push(proof(params, node, slot, testing::BEACON));
            }
            if (slot + node) % 3 == 0 {
                let bytes = (slot % 17 + node) * 3_000_000;
                all.push(proof(
                    params,
                    node,
                    slot,
                    ProofValue::Relay { bytes_transferred: bytes, sessions_relayed: 1 },
                ));
            }
            if (slot + node) % 7 == 0 {
                let value = ProofValue::Storage { chunks_stored: node, size_bytes: slot << 20 };
                all.push(proof(params, node, slot, value));
            }
            if (slot * node) % 11 == 0 {
                let value =
                    ProofValue::Validation { validated_sessions: u32::try_from(node).unwrap() };
                all.push(proof(params, node, slot, value));
            }
        }
    }
    all
}

fn timeline(window: SlotRange) -> MembershipTimeline {
    let (a, b) = (PoolId::from_bytes([1; 16]), PoolId::from_bytes([2; 16]));
    let mut timeline = MembershipTimeline::new();
    let start = window.start.0;
    let seats = [
        (1, Seat { pool: a, from: Slot(0), to: None }),
        // Starts and ends inside chunks.
        (2, Seat { pool: a, from: Slot(start + 1_000), to: Some(Slot(start + 3_001)) }),
        // Exactly one chunk when the window is chunk-aligned.
        (3, Seat { pool: b, from: Slot(start + 720), to: Some(Slot(start + 1_440)) }),
        (4, Seat { pool: b, from: Slot(start + 4_000), to: None }),
    ];
    for (node, seat) in seats {
        assert!(timeline.add_seat(testing::node(node), seat));
    }
    timeline
}

async fn check(params: &ConsensusParams, epoch: Epoch) {
    let window = params.time.window(epoch).unwrap();
    let proofs = window_proofs(params, window);
    let membership = timeline(window);
    for (test_db, db) in databases().await {
        // Out of order, in uneven batches, some of them twice.
        let mut shuffled = proofs.clone();
        shuffled.reverse();
        let (late, early) = shuffled.split_at(shuffled.len() / 3);
        for batch in early.chunks(4_999).chain(late.chunks(7_001)) {
            db.insert_proofs(batch).await.unwrap();
        }
        db.insert_proofs(&proofs[..proofs.len().min(1_000)]).await.unwrap();
        // Equivocation evidence on one relay proof of node 5 and one beacon of node 1.
        for (node, slot, value) in [
            (
                5,
                window.start.0 + 1,
                ProofValue::Relay { bytes_transferred: 1, sessions_relayed: 1 },
            ),
            (1, window.start.0 + 2, testing::BEACON),
        ] {
            let stored = proofs
                .iter()
                .find(|p| {
                    p.proof.node == testing::node(node)
                        && p.proof.slot == Slot(slot)
                        && p.proof.kind() == value.kind()
                })
                .unwrap();
            let other = proof(
                params,
                node,
                slot,
                ProofValue::Relay { bytes_transferred: 99, sessions_relayed: 9 },
            );
            let key = stored.key();
            let evidence = Evidence::new(
                key.node,
                TASK_PROOF_TYPE,
                Some(key),
                stored.message.clone(),
                other.message,
            );
            db.insert_evidence(&evidence).await.unwrap();
        }
        let evidence: Vec<_> = db.evidence_keys(window).await.unwrap();
        assert_eq!(evidence.len(), 2);
        let excluded = |key: &lucid_consensus::ProofKey| evidence.contains(key);
        let counted = proofs.iter().map(|p| CountedProof {
            node: p.proof.node,
            slot: p.proof.slot,
            value: p.proof.value,
        });
        let expected = compute_tally(params, epoch, &membership, &excluded, counted).unwrap();
        let got = db.tally_from_sums(params, epoch, &membership, 0).await.unwrap();
        assert_eq!(got, expected, "{:?}", test_db.backend);
        // The port the tally keeper calls answers the same.
        let through_port = db.stored_tally(params, epoch, &membership, 0).await.unwrap();
        assert_eq!(through_port, Some(expected.clone()));
        assert!(expected.entries.iter().any(|e| matches!(e.entity, lucid_core::EntityId::Pool(_))));
        // A restart keeps the sums.
        db.close().await;
        let db = test_db.open().await.unwrap();
        assert_eq!(db.tally_from_sums(params, epoch, &membership, 0).await.unwrap(), expected);
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tally_from_sums_equals_tally_builder_on_a_chunk_aligned_window() {
    let params = testing::params();
    let epoch = Epoch(100);
    let window = params.time.window(epoch).unwrap();
    assert_eq!(window.start.0 % lucid_storage::CHUNK_SLOTS, 0);
    check(&params, epoch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tally_from_sums_equals_tally_builder_when_the_window_is_not_chunk_aligned() {
    let params = testing::small_params();
    check(&params, Epoch(400)).await;
}
