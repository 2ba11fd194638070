//! Tests of the phased ingest: one batch through the phases decides exactly as `ingest_batch`,
//! and batches whose first two phases overlap (prepared and verified while another batch is
//! admitted, persisted and settled) decide exactly as the same batches ingested one after the
//! other, including two batches that carry the same key.

use lucid_core::message::Message;
use lucid_core::{NodeKey, Signature, SignedMessage, Slot, UnixMillis};
use pollster::block_on;
use proptest::prelude::*;

use super::super::*;
use crate::proof::ProofValue;
use crate::store::MemoryProofStore;
use crate::testing;

const SLOT: Slot = Slot(1_000);
const NODES: u64 = 3;

struct Node {
    ingest: Ingest,
    store: MemoryProofStore,
    verifier: Verifier,
}

fn params() -> ConsensusParams {
    testing::params()
}

fn keys() -> Vec<NodeKey> {
    (0..NODES).map(testing::key).collect()
}

fn now() -> UnixMillis {
    params().time.slot_start(SLOT).unwrap().saturating_add_ms(60_000)
}

/// A node that knows every key of [`keys`] (plus an unknown fourth signer).
fn node() -> Node {
    let params = params();
    let mut ingest = Ingest::new(params);
    let store = MemoryProofStore::new();
    for key in keys() {
        let registration = testing::signed_registration(&params, &key, 1);
        let (outcome, _) =
            block_on(ingest.ingest_registration(&store, now(), registration)).unwrap();
        assert_eq!(outcome.verdict, Verdict::Accept);
    }
    Node { ingest, store, verifier: Verifier::new(2).unwrap() }
}

/// What a batch decided, in a form two nodes can be compared by.
#[derive(Debug, PartialEq, Eq)]
struct Decided {
    outcomes: Vec<Outcome>,
    accepted: Vec<SignedMessage>,
    evidence: Vec<(SignedMessage, SignedMessage)>,
}

fn decided(report: BatchReport) -> Decided {
    Decided {
        outcomes: report.outcomes,
        accepted: report.accepted.into_iter().map(|p| p.message).collect(),
        evidence: report.evidence.into_iter().map(|e| (e.first, e.second)).collect(),
    }
}

impl Node {
    fn sequential(&mut self, batch: Vec<SignedMessage>) -> Decided {
        decided(
            block_on(self.ingest.ingest_batch(&self.store, &self.verifier, now(), batch)).unwrap(),
        )
    }

    /// Phases 3 to 6 of a verified batch, as the daemon runs them.
    fn complete(&mut self, verified: VerifiedBatch) -> Decided {
        let admitted = self.ingest.admit(verified);
        let outcomes = block_on(admitted.persist(&self.store)).unwrap();
        let settled = self.ingest.settle(admitted, outcomes).unwrap();
        block_on(settled.store_evidence(&self.store)).unwrap();
        decided(block_on(self.ingest.finish(&self.store, &self.verifier, settled)).unwrap())
    }

    /// Every stored proof and every piece of evidence, for comparing two nodes.
    fn contents(&self) -> (Vec<SignedMessage>, usize) {
        let range = lucid_core::SlotRange { start: Slot(0), end: Slot(u64::MAX) };
        let proofs = block_on(self.store.proofs_in_range(range, None, usize::MAX)).unwrap();
        (proofs.into_iter().map(|p| p.message).collect(), self.store.all_evidence().len())
    }
}

/// One message of the generated batches.
#[derive(Clone, Debug)]
enum Item {
    /// A proof of `node` (3 means an unregistered signer) at `SLOT - age` with `value`.
    Proof { node: u64, age: u64, value: ProofValue },
    /// The same, with one bit of its signature flipped.
    Forged { node: u64, age: u64, value: ProofValue },
    /// Bytes that do not decode.
    Garbage(Vec<u8>),
}

fn message(item: &Item) -> SignedMessage {
    let params = params();
    let sign = |node: u64, age: u64, value: ProofValue| {
        let key = testing::key(node);
        testing::proof(&params, &key, Slot(SLOT.0 - age), value).sign(&params.network, &key)
    };
    match item {
        Item::Proof { node, age, value } => sign(*node, *age, *value),
        Item::Forged { node, age, value } => {
            let (bytes, signature) = sign(*node, *age, *value).into_parts();
            let mut signature = signature.as_bytes().to_owned();
            signature[7] ^= 0x20;
            SignedMessage::new(bytes, Signature::from_bytes(signature))
        }
        Item::Garbage(bytes) => SignedMessage::new(bytes.clone(), Signature::from_bytes([3; 64])),
    }
}

fn value() -> impl Strategy<Value = ProofValue> {
    // Few distinct values, so that equal bytes (duplicates) and equal keys with other bytes
    // (equivocations) are both frequent.
    prop_oneof![
        (1u64..3).prop_map(|b| ProofValue::Relay { bytes_transferred: b, sessions_relayed: 1 }),
        (1u64..3).prop_map(|c| ProofValue::Storage { chunks_stored: c, size_bytes: 4 }),
        Just(ProofValue::Beacon { metrics_digest: None }),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (0..=NODES, 0u64..4, value()).prop_map(|(node, age, value)| Item::Proof { node, age, value }),
        1 => (0..NODES, 0u64..2, value()).prop_map(|(node, age, value)| Item::Forged { node, age, value }),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Item::Garbage),
    ]
}

fn batches() -> impl Strategy<Value = Vec<Vec<Item>>> {
    proptest::collection::vec(proptest::collection::vec(item(), 0..12), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // One batch at a time through the phases decides exactly as `ingest_batch`.
    #[test]
    fn phases_in_a_row_decide_as_ingest_batch(batches in batches()) {
        let (mut sequential, mut phased) = (node(), node());
        for batch in &batches {
            let messages: Vec<SignedMessage> = batch.iter().map(message).collect();
            let expected = sequential.sequential(messages.clone());
            let prepared = phased.ingest.prepare_batch(now(), messages);
            let report = phased.complete(prepared.verify(&phased.verifier));
            prop_assert_eq!(report, expected);
        }
        prop_assert_eq!(phased.contents(), sequential.contents());
    }

    // The pipeline: every batch is prepared and verified while the one before it is still
    // waiting to be admitted, persisted and settled. The verdicts, the stored proofs and the
    // evidence are those of the same batches ingested one after the other.
    #[test]
    fn overlapping_batches_decide_as_sequential_ones(batches in batches()) {
        let (mut sequential, mut pipelined) = (node(), node());
        let expected: Vec<Decided> = batches
            .iter()
            .map(|batch| sequential.sequential(batch.iter().map(message).collect()))
            .collect();
        let mut in_flight: Option<VerifiedBatch> = None;
        let mut got = Vec::new();
        for batch in &batches {
            let next = pipelined
                .ingest
                .prepare_batch(now(), batch.iter().map(message).collect())
                .verify(&pipelined.verifier);
            if let Some(previous) = in_flight.replace(next) {
                got.push(pipelined.complete(previous));
            }
        }
        if let Some(last) = in_flight {
            got.push(pipelined.complete(last));
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(pipelined.contents(), sequential.contents());
    }
}

/// Two batches with one key in flight at once (both verified before either is admitted):
/// exactly one message is accepted, the other is a duplicate (same bytes) or an equivocation
/// (other bytes, kept as evidence), as when they arrive one after the other.
#[test]
fn two_batches_with_one_key_in_flight() {
    let params = params();
    let key = testing::key(0);
    let first = testing::signed_relay(&params, &key, SLOT, 10);
    let other = testing::signed_relay(&params, &key, SLOT, 11);
    for second in [first.clone(), other.clone()] {
        let mut n = node();
        let a = n.ingest.prepare_batch(now(), vec![first.clone()]).verify(&n.verifier);
        let b = n.ingest.prepare_batch(now(), vec![second.clone()]).verify(&n.verifier);
        let a = n.complete(a);
        let b = n.complete(b);
        assert_eq!(a.outcomes[0].verdict, Verdict::Accept);
        assert_eq!(a.accepted, vec![first.clone()]);
        assert!(b.accepted.is_empty());
        if second == first {
            assert_eq!(b.outcomes[0].verdict, Verdict::Duplicate);
            assert!(b.evidence.is_empty());
        } else {
            assert_eq!(b.outcomes[0].verdict, Verdict::Reject(RejectReason::Equivocation));
            // Evidence keeps the pair in its own canonical order.
            assert_eq!(b.evidence.len(), 1);
            let (x, y) = &b.evidence[0];
            assert!((x, y) == (&first, &second) || (x, y) == (&second, &first));
            assert_eq!(n.store.all_evidence().len(), 1);
        }
        let mut s = node();
        assert_eq!(s.sequential(vec![first.clone()]), a);
        assert_eq!(s.sequential(vec![second.clone()]), b);
        assert_eq!(n.contents(), s.contents());
    }
}

/// A forged copy of accepted bytes (same bytes, broken signature) admitted after the original is
/// settled is a duplicate, as `ingest_batch` decides it (the index is consulted before the
/// signature), even though it was verified, and failed, before the original was stored.
#[test]
fn forged_copy_verified_before_the_original_settles_is_a_duplicate() {
    let mut n = node();
    let genuine = message(&Item::Proof {
        node: 1,
        age: 0,
        value: ProofValue::Beacon { metrics_digest: None },
    });
    let forged = message(&Item::Forged {
        node: 1,
        age: 0,
        value: ProofValue::Beacon { metrics_digest: None },
    });
    assert_eq!(genuine.bytes(), forged.bytes());
    let a = n.ingest.prepare_batch(now(), vec![genuine]).verify(&n.verifier);
    let b = n.ingest.prepare_batch(now(), vec![forged.clone()]).verify(&n.verifier);
    assert_eq!(n.complete(a).outcomes[0].verdict, Verdict::Accept);
    assert_eq!(n.complete(b).outcomes[0].verdict, Verdict::Duplicate);
    // Alone, the forged copy is a bad signature.
    let mut fresh = node();
    assert_eq!(
        fresh.sequential(vec![forged]).outcomes[0].verdict,
        Verdict::Reject(RejectReason::BadSignature)
    );
}

/// Before genesis nothing is live: every message of a prepared batch is `FromFuture`, as in
/// `ingest_batch`, and nothing reaches the store.
#[test]
fn clock_before_genesis_accepts_nothing() {
    let mut n = node();
    let messages = vec![message(&Item::Proof {
        node: 0,
        age: 0,
        value: ProofValue::Beacon { metrics_digest: None },
    })];
    let before = UnixMillis(params().time.genesis().0 - 1);
    let verified = n.ingest.prepare_batch(before, messages).verify(&n.verifier);
    let admitted = n.ingest.admit(verified);
    assert!(admitted.to_store().is_empty());
    let settled = n.ingest.settle(admitted, Vec::new()).unwrap();
    let report = block_on(n.ingest.finish(&n.store, &n.verifier, settled)).unwrap();
    assert_eq!(report.outcomes[0].verdict, Verdict::Reject(RejectReason::FromFuture));
    assert_eq!(n.store.proof_count(), 0);
}

/// A store that answers the wrong number of outcomes is an internal error, not a guess.
#[test]
fn a_short_store_answer_is_an_error() {
    let mut n = node();
    let messages = vec![message(&Item::Proof {
        node: 0,
        age: 0,
        value: ProofValue::Beacon { metrics_digest: None },
    })];
    let admitted = n.ingest.admit(n.ingest.prepare_batch(now(), messages).verify(&n.verifier));
    assert_eq!(admitted.to_store().len(), 1);
    assert!(n.ingest.settle(admitted, Vec::new()).is_err());
}
