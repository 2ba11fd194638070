//! Equivocation evidence through anti-entropy, in the one-process cluster of `gossip::tests`:
//! a node that missed the evidence push gets the evidence from a peer's `FetchEvidence` after the
//! heal, and a peer answering with forged, malformed, non-conflicting, out-of-range or oversized
//! evidence gets nothing stored and is reported; evidence already held is a no-op.

use std::sync::atomic::{AtomicUsize, Ordering};

use lucid_api::grpc::{EvidencePage, EvidenceQuery, MAX_EVIDENCE_PAGE};
use lucid_consensus::store::Evidence;

use super::*;

/// Every node's evidence identities, and the keys its tally leaves out over `start..end`.
async fn equivocation_set(
    node: &TestNode,
    start: u64,
    end: u64,
) -> (BTreeSet<(lucid_core::Digest, lucid_core::Digest)>, Vec<ProofKey>) {
    let identities = node.store.all_evidence().iter().map(Evidence::digests).collect();
    let range = SlotRange { start: Slot(start), end: Slot(end) };
    (identities, node.store.evidence_keys(range).await.unwrap())
}

/// The proofs a tally of `start..end` counts on `node`: every stored proof minus the keys with
/// evidence.
async fn counted(node: &TestNode, start: u64, end: u64) -> Vec<(ProofKey, lucid_core::Digest)> {
    let (_, excluded) = equivocation_set(node, start, end).await;
    proofs_of(&node.store, start, end)
        .await
        .into_iter()
        .filter(|proof| !excluded.contains(&proof.key()))
        .map(|proof| (proof.key(), proof.digest))
        .collect()
}

#[test]
fn a_node_that_missed_the_evidence_push_gets_it_through_anti_entropy_after_the_heal() {
    paused_runtime().block_on(async {
        // Anti-entropy only when a peer (re)appears, so the heal is what brings the evidence.
        let mut cluster = Cluster::new(4, &[9], |config| GossipConfig {
            anti_entropy_every: Duration::from_secs(3_600),
            ..config
        })
        .await;
        cluster.start_all();
        cluster.run_until(START + 3, 100).await;
        let cheat = testing::key(9);
        let slot = START + 3;
        let first = relay(&cluster.params, &cheat, slot, 1);
        let second = relay(&cluster.params, &cheat, slot, 2);
        // Node 3 is cut off; it and node 0 see `first`, and node 0's push brings it to 1 and 2.
        let isolated = cluster.nodes[3].key.node_id();
        cluster.net.set_down(isolated, true);
        for index in [0, 3] {
            let outcomes = cluster.nodes[index]
                .peer
                .submit_proofs_from(None, vec![first.clone()])
                .await
                .unwrap();
            assert_eq!(outcomes[0].verdict, Verdict::Accept);
        }
        cluster.run_until(START + 3, 300).await;
        // `second` reaches node 2: the conflict is recorded there and pushed to 0 and 1 only.
        let outcomes =
            cluster.nodes[2].peer.submit_proofs_from(None, vec![second.clone()]).await.unwrap();
        assert_eq!(outcomes[0].verdict, Verdict::Reject(RejectReason::Equivocation));
        cluster.run_until(START + 5, 0).await;
        for (index, node) in cluster.nodes.iter().take(3).enumerate() {
            assert_eq!(node.store.all_evidence().len(), 1, "node {index}");
        }
        assert!(cluster.nodes[3].store.all_evidence().is_empty());
        // Every node keeps `first`: the slot digests agree, only evidence anti-entropy helps.
        cluster.net.set_down(isolated, false);
        cluster.run_until(START + 10, 0).await;
        cluster.assert_converged(START, START + 8).await;
        let reference = equivocation_set(&cluster.nodes[0], START, START + 10).await;
        assert_eq!(reference.0.len(), 1);
        assert_eq!(
            reference.1,
            vec![ProofKey { node: cheat.node_id(), slot: Slot(slot), kind: first_kind(&first) }]
        );
        let counted_reference = counted(&cluster.nodes[0], START, START + 8).await;
        for (index, node) in cluster.nodes.iter().enumerate() {
            assert_eq!(equivocation_set(node, START, START + 10).await, reference, "node {index}");
            assert_eq!(counted(node, START, START + 8).await, counted_reference, "node {index}");
            assert!(node.directory.faults.lock().unwrap().is_empty(), "node {index}");
        }
        cluster.stop().await;
    });
}

fn first_kind(message: &SignedMessage) -> lucid_consensus::proof::ProofKind {
    TaskProof::from_signed_bytes(message.bytes()).unwrap().1.key().kind
}

/// A peer whose `FetchEvidence` answers are scripted, one per call; every other call is empty.
struct EvidenceScript {
    pages: Vec<EvidencePage>,
    calls: AtomicUsize,
    queries: Mutex<Vec<EvidenceQuery>>,
}

#[async_trait::async_trait]
impl PeerTransport for EvidenceScript {
    async fn submit_proofs(
        &self,
        _: NodeId,
        _: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        Ok(Vec::new())
    }
    async fn slot_digests(
        &self,
        _: NodeId,
        _: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        Ok(Vec::new())
    }
    async fn pull_proofs(
        &self,
        _: NodeId,
        _: SlotRange,
        _: Option<ProofKey>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        Ok(Vec::new())
    }
    async fn registrations(
        &self,
        _: NodeId,
        _: Option<NodeId>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        Ok(Vec::new())
    }
    async fn fetch_slot(&self, _: NodeId, _: Slot) -> Result<Option<SealedSlot>, TransportError> {
        Ok(None)
    }
    async fn submit_evidence(
        &self,
        _: NodeId,
        _: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, TransportError> {
        Ok(Outcome { digest: second.digest(), verdict: Verdict::Accept })
    }
    async fn fetch_evidence(
        &self,
        _: NodeId,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, TransportError> {
        self.queries.lock().unwrap().push(query);
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .pages
            .get(call)
            .cloned()
            .unwrap_or(EvidencePage { in_sync: true, ..Default::default() }))
    }
}

#[test]
fn fetched_evidence_is_verified_and_a_lying_peer_is_reported_for_each_bad_item() {
    paused_runtime().block_on(async {
        let cluster = Cluster::new(2, &[8, 9], |config| config).await;
        let params = cluster.params;
        let liar = testing::key(8);
        let cheat = testing::key(9);
        let node = &cluster.nodes[0];
        cluster.only_peer_of_node_0_is(liar.node_id()).await;
        cluster.run_until(START + 5, 500).await;
        // Node 0 already holds one evidence item of the cheat (slot START + 2).
        let held_a = relay(&params, &cheat, START + 2, 1);
        let held_b = relay(&params, &cheat, START + 2, 2);
        let (outcome, _) = node
            .peer
            .ingest()
            .lock()
            .await
            .ingest_evidence(
                node.store.as_ref(),
                &node.verifier,
                cluster.clock.wall(),
                held_a.clone(),
                held_b.clone(),
            )
            .await
            .unwrap();
        assert_eq!(outcome.verdict, Verdict::Accept);
        let genuine = (relay(&params, &cheat, START + 3, 1), relay(&params, &cheat, START + 3, 2));
        let honest = relay(&params, &cheat, START + 4, 1);
        let forged = SignedMessage::new(
            relay(&params, &cheat, START + 4, 2).bytes().to_vec(),
            liar.sign(relay(&params, &cheat, START + 4, 2).bytes()),
        );
        let garbage = SignedMessage::new(vec![7; 64], lucid_core::Signature::from_bytes([1; 64]));
        let far = (relay(&params, &cheat, START + 900, 1), relay(&params, &cheat, START + 900, 2));
        let page = EvidencePage {
            in_sync: false,
            evidence: vec![
                // Replayed: already held, a no-op.
                (held_b.clone(), held_a.clone()),
                // Forged: the second message is not the cheat's signature.
                (honest.clone(), forged),
                // Not a conflict: the same message twice.
                (honest.clone(), honest.clone()),
                // Malformed.
                (garbage.clone(), garbage),
                // Outside the range asked for.
                far,
                // New and genuine.
                genuine.clone(),
            ],
        };
        let oversized =
            EvidencePage { in_sync: false, evidence: vec![genuine.clone(); MAX_EVIDENCE_PAGE + 1] };
        let script = Arc::new(EvidenceScript {
            pages: vec![page, oversized],
            calls: AtomicUsize::new(0),
            queries: Mutex::new(Vec::new()),
        });
        let mut anti_entropy = crate::gossip::anti_entropy::AntiEntropy::new(
            GossipDeps {
                params,
                clock: cluster.clock.clone(),
                key: node.key.clone(),
                store: node.store.clone(),
                ingest: node.peer.ingest(),
                verifier: node.verifier.clone(),
                transport: script.clone(),
                config: cluster.config.clone(),
            },
            node.peer_hook(),
        );
        anti_entropy.tick(cluster.clock.wall()).await.unwrap();
        // The query carried node 0's own summary of what it held.
        let first_query = script.queries.lock().unwrap()[0];
        let own = node.store.evidence_in_range(first_query.range, MAX_EVIDENCE_PAGE).await.unwrap();
        assert_eq!(own.len(), 2, "the genuine pair is stored now");
        let held_only = node
            .store
            .all_evidence()
            .into_iter()
            .filter(|item| {
                item.digests()
                    == Evidence::new(cheat.node_id(), "", None, held_a.clone(), held_b.clone())
                        .digests()
            })
            .collect::<Vec<_>>();
        assert_eq!(
            (first_query.known_count, first_query.known_root),
            lucid_api::grpc::evidence_summary(&held_only)
        );
        assert_eq!(
            *node.directory.faults.lock().unwrap(),
            vec![
                (liar.node_id(), PeerFault::BadSignature),
                (liar.node_id(), PeerFault::InvalidMessage),
                (liar.node_id(), PeerFault::InvalidMessage),
                (liar.node_id(), PeerFault::InvalidMessage),
            ]
        );
        let stored: BTreeSet<_> = node.store.all_evidence().iter().map(Evidence::digests).collect();
        let expected: BTreeSet<_> = [
            Evidence::new(cheat.node_id(), "", None, held_a, held_b).digests(),
            Evidence::new(cheat.node_id(), "", None, genuine.0, genuine.1).digests(),
        ]
        .into_iter()
        .collect();
        assert_eq!(stored, expected);
        // An answer above the page bound is refused whole and reported once.
        node.directory.faults.lock().unwrap().clear();
        anti_entropy.tick(cluster.clock.wall().saturating_add_ms(60_000)).await.unwrap();
        assert_eq!(
            *node.directory.faults.lock().unwrap(),
            vec![(liar.node_id(), PeerFault::InvalidMessage)]
        );
        assert_eq!(node.store.all_evidence().len(), 2);
        cluster.stop().await;
    });
}
