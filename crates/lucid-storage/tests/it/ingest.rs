//! `Ingest::ingest_batch` end to end against the SQL store gives the same verdicts, accepted
//! proofs and evidence as against `MemoryProofStore`.

use lucid_consensus::ingest::{BatchReport, Ingest};
use lucid_consensus::store::{MemoryProofStore, ProofStore};
use lucid_consensus::verify::Verifier;
use lucid_core::{Signature, SignedMessage, Slot, SlotRange, UnixMillis};

use super::*;

const SLOT: Slot = Slot(5_000);

fn now_in(params: &ConsensusParams, slot: Slot) -> UnixMillis {
    params.time.slot_start(slot).unwrap().saturating_add_ms(60_000)
}

/// Batches that exercise every verdict the store takes part in.
fn batches(params: &ConsensusParams) -> Vec<(Slot, Vec<SignedMessage>)> {
    let key = |i| testing::key(i);
    let relay = |node, slot, bytes| testing::signed_relay(params, &key(node), slot, bytes);
    let beacon = |node, slot| testing::signed_beacon(params, &key(node), slot);
    let forged = {
        let genuine = beacon(3, SLOT);
        SignedMessage::new(genuine.bytes().to_vec(), Signature::from_bytes([1; 64]))
    };
    let mut first = Vec::new();
    for node in 0..6 {
        first.push(beacon(node, SLOT));
        first.push(relay(node, SLOT, 1_000 + node));
    }
    // Inside one batch: a duplicate, an equivocation, an unknown node, a forged signature.
    first.push(relay(0, SLOT, 1_000));
    first.push(relay(1, SLOT, 7));
    first.push(beacon(42, SLOT));
    first.push(forged);
    first.push(SignedMessage::new(b"not a message".to_vec(), Signature::from_bytes([0; 64])));
    let mut second = first.clone();
    // Across batches: replay everything, add a new slot and a late equivocation.
    second.push(beacon(0, Slot(SLOT.0 + 1)));
    second.push(relay(2, SLOT, 99));
    vec![(SLOT, first), (Slot(SLOT.0 + 1), second)]
}

async fn run(store: &dyn ProofStore, params: &ConsensusParams) -> Vec<BatchReport> {
    let verifier = Verifier::new(2).unwrap();
    let mut ingest = Ingest::new(*params);
    for node in 0..6 {
        let message = testing::signed_registration(params, &testing::key(node), 1);
        ingest.ingest_registration(store, now_in(params, SLOT), message).await.unwrap();
    }
    let mut reports = Vec::new();
    for (slot, batch) in batches(params) {
        let now = now_in(params, slot);
        reports.push(ingest.ingest_batch(store, &verifier, now, batch).await.unwrap());
    }
    reports
}

/// The memory store's verdicts, rows and evidence, with the fast path and with the judging path
/// forced on every proof batch (on PostgreSQL the fallback of the `COPY` fast path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_gives_the_same_verdicts_as_the_memory_store() {
    let params = testing::params();
    let memory = MemoryProofStore::new();
    let expected = run(&memory, &params).await;
    let forced = databases().await.into_iter().map(|(test_db, db)| (test_db, db, true));
    let fast = databases().await.into_iter().map(|(test_db, db)| (test_db, db, false));
    for (test_db, db, force) in fast.chain(forced) {
        db.force_proof_judging(force);
        let got = run(&db, &params).await;
        assert_eq!(got.len(), expected.len());
        for (got, expected) in got.iter().zip(&expected) {
            let case = format!("{:?}, judging forced: {force}", test_db.backend);
            assert_eq!(got.outcomes, expected.outcomes, "{case}");
            assert_eq!(got.accepted, expected.accepted, "{case}");
            assert_eq!(got.evidence, expected.evidence, "{case}");
        }
        let all = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
        assert_eq!(
            db.proofs_in_range(all, None, 10_000).await.unwrap(),
            memory.proofs_in_range(all, None, 10_000).await.unwrap()
        );
        assert_eq!(db.evidence_keys(all).await.unwrap(), memory.evidence_keys(all).await.unwrap());
        assert_eq!(
            db.evidence_in_range(all, 1_000).await.unwrap(),
            memory.evidence_in_range(all, 1_000).await.unwrap(),
            "{:?}, judging forced: {force}",
            test_db.backend
        );
        // A fresh ingest state rebuilt from the store knows the same nodes.
        let mut rebuilt = Ingest::new(params);
        assert_eq!(rebuilt.load_registrations(&db).await.unwrap(), 6);
    }
}
