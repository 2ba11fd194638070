//! `ProofStore` semantics on both backends, checked against `MemoryProofStore`: round trips,
//! duplicates, conflicts, paging, evidence and current registrations.

use lucid_consensus::proof::{ProofKey, ProofKind};
use lucid_consensus::store::{
    Evidence, InsertOutcome, MemoryProofStore, ProofStore, REGISTRATION_TYPE, TASK_PROOF_TYPE,
    stored_proof,
};
use lucid_core::{Signature, SignedMessage, Slot, SlotRange};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_proofs_read_back_byte_identical() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let mut proofs = Vec::new();
        for node in 0..4 {
            for slot in 100..103 {
                proofs.push(beacon(&params, node, slot));
                proofs.push(relay(&params, node, slot, 1_000 * node + slot));
            }
        }
        proofs.push(stored_late(testing::signed_beacon(&params, &testing::key(9), Slot(7)), true));
        let outcomes = db.insert_proofs(&proofs).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == InsertOutcome::Inserted), "{:?}", test_db.backend);
        for proof in &proofs {
            let back = db.get_proof(&proof.key()).await.unwrap();
            assert_eq!(back.as_ref(), Some(proof), "{:?}", test_db.backend);
            let back = back.unwrap();
            assert_eq!(back.message.bytes(), proof.message.bytes());
            assert_eq!(back.message.signature(), proof.message.signature());
        }
        let missing = ProofKey { kind: ProofKind::StorageAvailability, ..proofs[0].key() };
        assert_eq!(db.get_proof(&missing).await.unwrap(), None);
        assert_eq!(db.insert_proofs(&[]).await.unwrap(), vec![]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_no_ops() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let proofs: Vec<StoredProof> = (0..5).map(|node| beacon(&params, node, 50)).collect();
        db.insert_proofs(&proofs).await.unwrap();
        // Again, plus the same bytes under another signature, plus a repeat inside the batch.
        let mut again = proofs.clone();
        let resigned =
            SignedMessage::new(proofs[0].message.bytes().to_vec(), Signature::from_bytes([7; 64]));
        again.push(stored(resigned));
        again.push(proofs[1].clone());
        let outcomes = db.insert_proofs(&again).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == InsertOutcome::Duplicate), "{:?}", test_db.backend);
        // The first signature stays.
        let back = db.get_proof(&proofs[0].key()).await.unwrap().unwrap();
        assert_eq!(back, proofs[0]);
        let all = db.proofs_in_range(range(0, 1_000), None, 1_000).await.unwrap();
        assert_eq!(all.len(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_report_the_existing_message_and_keep_it() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let memory = MemoryProofStore::new();
        let first = relay(&params, 1, 200, 10);
        let other = relay(&params, 1, 200, 20);
        let fresh_a = relay(&params, 2, 200, 30);
        let fresh_b = relay(&params, 2, 200, 40);
        for batch in [
            vec![first.clone()],
            vec![other.clone(), first.clone(), fresh_a.clone(), fresh_b.clone(), fresh_a.clone()],
        ] {
            let expected = memory.insert_proofs(&batch).await.unwrap();
            let got = db.insert_proofs(&batch).await.unwrap();
            assert_eq!(got, expected, "{:?}", test_db.backend);
        }
        let got = db.insert_proofs(std::slice::from_ref(&other)).await.unwrap();
        assert_eq!(got, vec![InsertOutcome::Conflict { existing: first.message.clone() }]);
        assert_eq!(db.get_proof(&first.key()).await.unwrap(), Some(first.clone()));
        assert_eq!(db.get_proof(&fresh_a.key()).await.unwrap(), Some(fresh_a.clone()));
    }
}

fn range(start: u64, end: u64) -> SlotRange {
    SlotRange { start: Slot(start), end: Slot(end) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_ordered_and_complete() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let memory = MemoryProofStore::new();
        let mut proofs = Vec::new();
        for slot in (10..20).rev() {
            for node in [5, 0, 3, 6, 1, 4, 2] {
                proofs.push(relay(&params, node, slot, slot * 7 + node));
                if (slot + node) % 2 == 0 {
                    proofs.push(beacon(&params, node, slot));
                }
            }
        }
        // Several batches, so rows are not stored in paging order.
        for batch in proofs.chunks(17) {
            memory.insert_proofs(batch).await.unwrap();
            db.insert_proofs(batch).await.unwrap();
        }
        for (window, limit) in [(range(12, 17), 9), (range(0, 100), 1), (range(19, u64::MAX), 4)] {
            let mut after = None;
            let mut pages = Vec::new();
            loop {
                let page = db.proofs_in_range(window, after, limit).await.unwrap();
                let expected = memory.proofs_in_range(window, after, limit).await.unwrap();
                assert_eq!(page, expected, "{:?} {window:?}", test_db.backend);
                let Some(last) = page.last() else { break };
                after = Some(last.key());
                pages.extend(page);
            }
            let wanted: Vec<_> = {
                let mut all: Vec<_> =
                    proofs.iter().filter(|p| window.contains(p.proof.slot)).cloned().collect();
                all.sort_by_key(|p| (p.proof.slot, p.proof.node, p.proof.kind()));
                all
            };
            assert_eq!(pages, wanted, "{:?} {window:?}", test_db.backend);
        }
        assert!(db.proofs_in_range(range(5, 5), None, 10).await.unwrap().is_empty());
        assert!(db.proofs_in_range(range(0, 100), None, 0).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_kept_and_idempotent() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let memory = MemoryProofStore::new();
        let a = relay(&params, 3, 300, 1);
        let b = relay(&params, 3, 300, 2);
        let key = a.key();
        let proof_evidence =
            Evidence::new(key.node, TASK_PROOF_TYPE, Some(key), a.message.clone(), b.message);
        let r1 = testing::signed_registration(&params, &testing::key(3), 1);
        let mut record = testing::registration(&params, &testing::key(3), 1);
        record.capabilities = 0;
        let r2 = record.sign(&params.network, &testing::key(3));
        let registration_evidence = Evidence::new(key.node, REGISTRATION_TYPE, None, r1, r2);
        for evidence in [&proof_evidence, &registration_evidence] {
            assert!(db.insert_evidence(evidence).await.unwrap(), "{:?}", test_db.backend);
            assert!(!db.insert_evidence(evidence).await.unwrap(), "{:?}", test_db.backend);
            memory.insert_evidence(evidence).await.unwrap();
        }
        for window in [range(300, 301), range(0, 300), range(301, 400), range(0, u64::MAX)] {
            assert_eq!(
                db.evidence_keys(window).await.unwrap(),
                memory.evidence_keys(window).await.unwrap(),
                "{:?} {window:?}",
                test_db.backend
            );
        }
        assert_eq!(db.evidence_keys(range(300, 301)).await.unwrap(), vec![key]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_of_a_range_reads_back_as_the_memory_store_holds_it() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let memory = MemoryProofStore::new();
        // Three equivocations of task proofs (two under one key) and one of a registration,
        // which no slot range returns.
        let mut items = Vec::new();
        for (node, slot, x, y) in [(3, 300, 1, 2), (3, 300, 1, 3), (5, 310, 7, 8), (6, 400, 1, 2)] {
            let a = relay(&params, node, slot, x);
            let b = relay(&params, node, slot, y);
            let key = a.key();
            items.push(Evidence::new(key.node, TASK_PROOF_TYPE, Some(key), a.message, b.message));
        }
        let r1 = testing::signed_registration(&params, &testing::key(3), 1);
        let mut record = testing::registration(&params, &testing::key(3), 1);
        record.capabilities = 0;
        let r2 = record.sign(&params.network, &testing::key(3));
        items.push(Evidence::new(testing::key(3).node_id(), REGISTRATION_TYPE, None, r1, r2));
        for evidence in &items {
            assert!(db.insert_evidence(evidence).await.unwrap(), "{:?}", test_db.backend);
            memory.insert_evidence(evidence).await.unwrap();
        }
        for (window, limit) in [
            (range(300, 301), 10),
            (range(0, 400), 10),
            (range(0, u64::MAX), 10),
            (range(0, 401), 2),
        ] {
            let read = db.evidence_in_range(window, limit).await.unwrap();
            assert_eq!(
                read,
                memory.evidence_in_range(window, limit).await.unwrap(),
                "{:?} {window:?}",
                test_db.backend
            );
            assert!(read.len() <= limit);
            assert!(read.windows(2).all(|w| w[0].digests() < w[1].digests()));
        }
        assert_eq!(db.evidence_in_range(range(300, 301), 10).await.unwrap().len(), 2);
        assert_eq!(db.evidence_in_range(range(0, u64::MAX), 10).await.unwrap().len(), 4);
        assert!(db.evidence_in_range(range(301, 310), 10).await.unwrap().is_empty());
        assert!(db.evidence_in_range(range(0, u64::MAX), 0).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_registration_is_the_highest_seq() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let memory = MemoryProofStore::new();
        let mut records = Vec::new();
        for (node, seqs) in [(4, vec![2, 1, 3]), (1, vec![1]), (2, vec![5, 9, 7])] {
            for seq in seqs {
                records.push(registration(&params, &testing::key(node), seq));
            }
        }
        for record in &records {
            assert_eq!(db.insert_registration(record).await.unwrap(), InsertOutcome::Inserted);
            memory.insert_registration(record).await.unwrap();
        }
        // The same record again is a duplicate; different bytes under a taken seq conflict.
        assert_eq!(db.insert_registration(&records[0]).await.unwrap(), InsertOutcome::Duplicate);
        let mut changed = testing::registration(&params, &testing::key(4), 2);
        changed.storage_capacity_bytes = 1;
        let message = changed.sign(&params.network, &testing::key(4));
        let digest = message.digest();
        let conflicting = StoredRegistration { registration: changed, message, digest };
        assert_eq!(
            db.insert_registration(&conflicting).await.unwrap(),
            InsertOutcome::Conflict { existing: records[0].message.clone() }
        );
        let current = db.current_registrations().await.unwrap();
        assert_eq!(current, memory.current_registrations().await.unwrap(), "{:?}", test_db.backend);
        let seqs: Vec<u64> = current.iter().map(|r| r.registration.seq).collect();
        assert_eq!(seqs.len(), 3);
        assert!(seqs.contains(&3) && seqs.contains(&1) && seqs.contains(&9), "{seqs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_beyond_bigint_are_refused_not_wrapped() {
    use lucid_core::{ErrorKind, HasKind};
    let params = testing::params();
    let huge = Slot(u64::MAX - 1);
    let key = testing::key(1);
    let proof = testing::proof(
        &params,
        &key,
        huge,
        lucid_consensus::ProofValue::Validation { validated_sessions: 1 },
    );
    let beyond = stored_proof(proof, proof.sign(&params.network, &key), false);
    for (test_db, db) in databases().await {
        let fine = relay(&params, 1, 5, 5);
        // The whole batch is refused before anything is written.
        let error = db.insert_proofs(&[fine.clone(), beyond.clone()]).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{:?}: {error:?}", test_db.backend);
        assert_eq!(db.get_proof(&fine.key()).await.unwrap(), None);
        // Reads beyond the range answer like the memory store: nothing is there.
        assert_eq!(db.get_proof(&beyond.key()).await.unwrap(), None);
        db.insert_proofs(std::slice::from_ref(&fine)).await.unwrap();
        let far = range(u64::MAX - 10, u64::MAX);
        assert!(db.proofs_in_range(far, None, 10).await.unwrap().is_empty());
        assert!(db.evidence_keys(far).await.unwrap().is_empty());
        let all = range(0, u64::MAX);
        assert!(db.proofs_in_range(all, Some(beyond.key()), 10).await.unwrap().is_empty());
        assert_eq!(db.proofs_in_range(all, None, 10).await.unwrap(), vec![fine]);
    }
}

/// A small deterministic generator (xorshift), so the mixed workload is the same every run.
struct Mix(u64);

impl Mix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batches_match_the_memory_store_exactly() {
    let params = testing::params();
    // A small key space (4 nodes × 6 slots × 2 kinds) with two values per relay key, so that
    // batches mix fresh keys, duplicates (inside and across batches) and conflicts.
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
    let batches: Vec<Vec<StoredProof>> = (0..12)
        .map(|_| {
            (0..mix.below(30) + 1)
                .map(|_| {
                    let (node, slot) = (mix.below(4), 600 + mix.below(6));
                    if mix.below(2) == 0 {
                        beacon(&params, node, slot)
                    } else {
                        relay(&params, node, slot, 1 + mix.below(2))
                    }
                })
                .collect()
        })
        .collect();
    for (test_db, db) in databases().await {
        let memory = MemoryProofStore::new();
        let mut seen = [false; 3];
        for (index, batch) in batches.iter().enumerate() {
            let expected = memory.insert_proofs(batch).await.unwrap();
            let got = db.insert_proofs(batch).await.unwrap();
            assert_eq!(got, expected, "{:?} batch {index}", test_db.backend);
            for outcome in &expected {
                seen[match outcome {
                    InsertOutcome::Inserted => 0,
                    InsertOutcome::Duplicate => 1,
                    InsertOutcome::Conflict { .. } => 2,
                }] = true;
            }
        }
        assert_eq!(seen, [true; 3], "the workload must exercise every outcome");
        let all = range(0, u64::MAX);
        assert_eq!(
            db.proofs_in_range(all, None, 1_000).await.unwrap(),
            memory.proofs_in_range(all, None, 1_000).await.unwrap(),
            "{:?}",
            test_db.backend
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_proofs_match_the_decoded_signed_bytes() {
    use lucid_consensus::ProofValue;
    use lucid_consensus::tally::CountedProof;
    use lucid_core::Digest;
    let params = testing::params();
    let mut proofs = Vec::new();
    for node in 0..3 {
        let key = testing::key(node);
        for slot in 40..46 {
            let values = [
                ProofValue::Relay { bytes_transferred: 7 * slot + node, sessions_relayed: 3 },
                ProofValue::Storage { chunks_stored: slot, size_bytes: u64::from(u32::MAX) + node },
                ProofValue::Validation { validated_sessions: u32::MAX - 1 },
                ProofValue::Beacon {
                    metrics_digest: (slot % 2 == 0).then(|| Digest::from_bytes([node as u8; 32])),
                },
            ];
            for value in values {
                let proof = testing::proof(&params, &key, Slot(slot), value);
                proofs.push(stored(proof.sign(&params.network, &key)));
            }
        }
    }
    for (test_db, db) in databases().await {
        db.insert_proofs(&proofs).await.unwrap();
        for (window, limit) in [(range(41, 44), 7), (range(0, u64::MAX), 1_000), (range(45, 46), 2)]
        {
            let mut after = None;
            loop {
                let counted = db.counted_proofs_in_range(window, after, limit).await.unwrap();
                let full = db.proofs_in_range(window, after, limit).await.unwrap();
                let expected: Vec<CountedProof> = full
                    .iter()
                    .map(|p| CountedProof {
                        node: p.proof.node,
                        slot: p.proof.slot,
                        value: p.proof.value,
                    })
                    .collect();
                assert_eq!(counted, expected, "{:?} {window:?}", test_db.backend);
                let Some(last) = full.last() else { break };
                after = Some(last.key());
            }
        }
        assert!(
            db.counted_proofs_in_range(range(u64::MAX - 3, u64::MAX), None, 9)
                .await
                .unwrap()
                .is_empty()
        );
        // A row whose value columns do not fit its kind is an error, not a zero.
        raw(&test_db, "UPDATE proofs SET sessions_relayed = NULL WHERE kind = 1 AND slot = 42")
            .await
            .unwrap();
        let error = db.counted_proofs_in_range(range(0, 100), None, 1_000).await.unwrap_err();
        assert!(matches!(error, lucid_storage::Error::InvalidRow { .. }), "{error:?}");
    }
}

/// A signed seal of test node `node` for `slot` over `count` messages with root `root`.
fn seal(
    params: &ConsensusParams,
    node: u64,
    slot: u64,
    count: u32,
    root: u8,
) -> lucid_consensus::seal::StoredSeal {
    use lucid_consensus::seal::{SlotSeal, StoredSeal};
    let key = testing::key(node);
    let seal = SlotSeal {
        node: key.node_id(),
        slot: Slot(slot),
        count,
        root: lucid_core::Digest::from_bytes([root; 32]),
        ts: params.time.slot_start(Slot(slot + 3)).unwrap(),
    };
    let message = seal.sign(&params.network, &key);
    StoredSeal::new(seal, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seals_are_write_once_and_survive_a_restart() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let memory = MemoryProofStore::new();
        let first = seal(&params, 1, 40, 3, 7);
        let amended = seal(&params, 1, 40, 4, 8);
        let other_slot = seal(&params, 1, 41, 0, 0);
        let other_node = seal(&params, 2, 40, 3, 7);
        for (candidate, expected) in [
            (&first, InsertOutcome::Inserted),
            (&first, InsertOutcome::Duplicate),
            (&amended, InsertOutcome::Conflict { existing: first.message.clone() }),
            (&other_slot, InsertOutcome::Inserted),
            (&other_node, InsertOutcome::Inserted),
        ] {
            assert_eq!(db.insert_seal(candidate).await.unwrap(), expected, "{backend:?}");
            assert_eq!(memory.insert_seal(candidate).await.unwrap(), expected);
        }
        let node = testing::node(1);
        assert_eq!(db.get_seal(&node, Slot(40)).await.unwrap(), Some(first.clone()));
        assert_eq!(db.get_seal(&node, Slot(42)).await.unwrap(), None);
        assert_eq!(db.get_seal(&node, Slot(u64::MAX)).await.unwrap(), None);
        assert_eq!(memory.get_seal(&node, Slot(40)).await.unwrap(), Some(first.clone()));

        // A restart reads the same seal and still refuses to amend it.
        db.close().await;
        let db = test_db.open().await.unwrap();
        let back = db.get_seal(&node, Slot(40)).await.unwrap().unwrap();
        assert_eq!(back, first, "{backend:?}");
        assert_eq!(back.message.bytes(), first.message.bytes());
        assert_eq!(
            db.insert_seal(&amended).await.unwrap(),
            InsertOutcome::Conflict { existing: first.message.clone() },
            "{backend:?}"
        );
        assert_eq!(db.get_seal(&testing::node(2), Slot(40)).await.unwrap(), Some(other_node));

        // The schema refuses an amendment behind the adapter's back.
        let update = "UPDATE seals SET count = 9";
        assert!(raw(&test_db, update).await.is_err(), "{backend:?}");
        assert_eq!(db.get_seal(&node, Slot(40)).await.unwrap(), Some(first.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seal_row_that_does_not_match_its_signed_bytes_is_an_error() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let stored = seal(&params, 3, 50, 1, 1);
        db.insert_seal(&stored).await.unwrap();
        // Another node's signed bytes under node 3's key: the read refuses them.
        let foreign = seal(&params, 4, 50, 1, 1);
        let sql = format!(
            "INSERT INTO seals (node_id, slot, count, root, ts_ms, \
             signed_bytes, signature, digest, received_at) VALUES ({}, 50, 1, {}, 0, {}, {}, {}, 0)",
            lit(test_db.backend, testing::node(3).as_bytes()),
            lit(test_db.backend, &[1; 32]),
            lit(test_db.backend, foreign.message.bytes()),
            lit(test_db.backend, foreign.message.signature().as_bytes()),
            lit(test_db.backend, foreign.digest.as_bytes()),
        );
        raw(&test_db, "DELETE FROM seals").await.unwrap();
        raw(&test_db, &sql).await.unwrap();
        assert!(db.get_seal(&testing::node(3), Slot(50)).await.is_err(), "{:?}", test_db.backend);
    }
}
