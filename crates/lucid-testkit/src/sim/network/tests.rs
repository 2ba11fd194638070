//! Tests of the simulated network's model: routing, latency, loss, duplication, partitions,
//! receiver limits and bounds, scoring, and the traffic counts, under paused tokio time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lucid_api::grpc::convert::ToProto as _;
use lucid_api::grpc::{MAX_BATCH, MAX_DIGEST_SLOTS, PeerApi, SlotDigest, pb};
use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_consensus::store::StoredProof;
use lucid_consensus::{ProofKey, testing};
use lucid_core::{Clock, NodeId, SignedMessage, Slot, SlotRange};
use lucid_daemon::network::{PeerFault, PeerTransport, TransportError};
use lucid_daemon::services::time::TokioClock;
use prost::Message as _;

use super::*;
use crate::sim::directory::SimDirectory;

/// A TEST DOUBLE of a node's peer service: answers every proof with the verdict it is told to,
/// and counts the batches it received.
struct ScriptedPeer {
    verdict: Verdict,
    batches: AtomicU64,
}

#[async_trait::async_trait]
impl PeerApi for ScriptedPeer {
    async fn submit_proofs(
        &self,
        _: Option<NodeId>,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(proofs.iter().map(|p| Outcome { digest: p.digest(), verdict: self.verdict }).collect())
    }
    async fn slot_digests(&self, _: SlotRange) -> Result<Vec<SlotDigest>, lucid_consensus::Error> {
        Ok(Vec::new())
    }
    async fn pull_proofs(
        &self,
        _: SlotRange,
        _: Option<ProofKey>,
        _: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
        Ok(Vec::new())
    }
    async fn submit_registration(
        &self,
        m: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        Ok(Outcome { digest: m.digest(), verdict: Verdict::Accept })
    }
    async fn registrations(
        &self,
        _: Option<NodeId>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, lucid_consensus::Error> {
        Ok(Vec::new())
    }
    async fn registration(
        &self,
        _: NodeId,
    ) -> Result<Option<SignedMessage>, lucid_consensus::Error> {
        Ok(None)
    }
    async fn registered_nodes(&self) -> Result<u64, lucid_consensus::Error> {
        Ok(0)
    }
    async fn fetch_slot(
        &self,
        _: Slot,
    ) -> Result<Option<lucid_api::grpc::SealedSlot>, lucid_consensus::Error> {
        Ok(None)
    }
    async fn submit_evidence(
        &self,
        _: Option<NodeId>,
        _: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        Ok(Outcome { digest: second.digest(), verdict: self.verdict })
    }
    async fn submit_pool_ops(
        &self,
        _: Option<NodeId>,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        Ok(ops.iter().map(|op| Outcome { digest: op.digest(), verdict: self.verdict }).collect())
    }
    async fn fetch_pool_ops(
        &self,
        _: lucid_api::grpc::PoolOpsQuery,
    ) -> Result<lucid_api::grpc::PoolOpsPage, lucid_consensus::Error> {
        Ok(lucid_api::grpc::PoolOpsPage { in_sync: true, ..Default::default() })
    }
    async fn submit_seals(
        &self,
        _: Option<NodeId>,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        Ok(seals.iter().map(|s| Outcome { digest: s.digest(), verdict: self.verdict }).collect())
    }
    async fn fetch_evidence(
        &self,
        _: lucid_api::grpc::EvidenceQuery,
    ) -> Result<lucid_api::grpc::EvidencePage, lucid_consensus::Error> {
        Ok(lucid_api::grpc::EvidencePage { in_sync: true, ..Default::default() })
    }
}

struct Rig {
    network: Arc<SimNetwork>,
    a: NodeId,
    b: NodeId,
    peer: Arc<ScriptedPeer>,
    directory: Arc<SimDirectory>,
    clock: Arc<TokioClock>,
}

fn rig(
    links: LinkProfile,
    limit: u64,
    partitions: impl FnOnce(NodeId, NodeId) -> Vec<Partition>,
    verdict: Verdict,
) -> Rig {
    let params = testing::small_params();
    let clock = Arc::new(TokioClock::new(params.time.genesis()));
    let (a, b) = (testing::node(1), testing::node(2));
    let network = SimNetwork::new(
        7,
        links,
        InboundLimits { messages_per_slot: limit },
        params.time,
        partitions(a, b),
        clock.clone(),
    );
    let peer = Arc::new(ScriptedPeer { verdict, batches: AtomicU64::new(0) });
    let directory = Arc::new(SimDirectory::new(vec![a]));
    network.attach(b, peer.clone(), directory.clone());
    Rig { network, a, b, peer, directory, clock }
}

fn beacons(count: u64) -> Vec<SignedMessage> {
    let params = testing::small_params();
    (0..count).map(|i| testing::signed_beacon(&params, &testing::key(i), Slot(1))).collect()
}

fn paused<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_perfect_link_delivers_after_the_latency_each_way_and_counts_exact_bytes() {
    paused(async {
        let rig = rig(LinkProfile::PERFECT, 1_000, |_, _| Vec::new(), Verdict::Accept);
        let batch = beacons(3);
        let started = rig.clock.monotonic();
        let outcomes =
            rig.network.transport(rig.a).submit_proofs(rig.b, batch.clone()).await.unwrap();
        assert_eq!(rig.clock.monotonic() - started, Duration::from_millis(20));
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes.iter().all(|o| o.verdict == Verdict::Accept));
        let traffic = rig.network.traffic();
        let request =
            pb::SubmitProofsRequest { proofs: batch.iter().map(|p| p.to_proto()).collect() };
        let reply =
            pb::SubmitProofsResponse { verdicts: outcomes.iter().map(|o| o.to_proto()).collect() };
        let request_bytes = u64::try_from(request.encoded_len()).unwrap() + 5;
        let reply_bytes = u64::try_from(reply.encoded_len()).unwrap() + 5;
        let a = traffic.nodes[&rig.a];
        let b = traffic.nodes[&rig.b];
        assert_eq!((a.sent.messages, a.sent.bytes, a.sent.items), (1, request_bytes, 3));
        assert_eq!((b.received.messages, b.received.bytes), (1, request_bytes));
        assert_eq!((b.sent.bytes, a.received.bytes), (reply_bytes, reply_bytes));
        assert_eq!(traffic.network.calls, 1);
        assert_eq!(traffic.network.timeouts, 0);
    });
}

#[test]
fn lost_messages_and_unknown_peers_end_in_errors_not_hangs() {
    paused(async {
        let lossy = LinkProfile { loss_ppm: 1_000_000, ..LinkProfile::PERFECT };
        let rig = rig(lossy, 1_000, |_, _| Vec::new(), Verdict::Accept);
        let transport = rig.network.transport(rig.a);
        let started = rig.clock.monotonic();
        let error = transport.submit_proofs(rig.b, beacons(1)).await.unwrap_err();
        assert!(matches!(error, TransportError::Timeout), "{error:?}");
        assert_eq!(
            rig.clock.monotonic() - started,
            Duration::from_millis(LinkProfile::PERFECT.call_timeout_ms)
        );
        assert_eq!(rig.peer.batches.load(Ordering::SeqCst), 0);
        let stats = rig.network.traffic().network;
        assert_eq!((stats.lost, stats.timeouts), (1, 1));
        let stranger = testing::node(99);
        assert!(matches!(
            transport.slot_digests(stranger, SlotRange { start: Slot(0), end: Slot(1) }).await,
            Err(TransportError::UnknownPeer)
        ));
    });
}

#[test]
fn a_partition_cuts_both_ways_until_it_heals() {
    paused(async {
        let rig = rig(
            LinkProfile::PERFECT,
            1_000,
            |a, _| {
                let genesis = testing::small_params().time.genesis();
                vec![Partition {
                    isolated: [a].into(),
                    start: genesis,
                    heal: genesis.saturating_add_ms(5_000),
                }]
            },
            Verdict::Accept,
        );
        assert!(rig.network.separated(&rig.a, &rig.b) && rig.network.separated(&rig.b, &rig.a));
        let transport = rig.network.transport(rig.a);
        assert!(matches!(
            transport.submit_proofs(rig.b, beacons(1)).await,
            Err(TransportError::Timeout)
        ));
        assert_eq!(rig.network.traffic().network.partitioned, 1);
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        assert!(!rig.network.separated(&rig.a, &rig.b));
        assert!(transport.submit_proofs(rig.b, beacons(1)).await.is_ok());
        assert!(rig.clock.wall() > testing::small_params().time.genesis());
    });
}

#[test]
fn duplicated_requests_are_executed_twice_and_answered_once() {
    paused(async {
        let twice = LinkProfile { duplicate_ppm: 1_000_000, ..LinkProfile::PERFECT };
        let rig = rig(twice, 1_000, |_, _| Vec::new(), Verdict::Accept);
        let outcomes = rig.network.transport(rig.a).submit_proofs(rig.b, beacons(2)).await.unwrap();
        assert_eq!(outcomes.len(), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rig.peer.batches.load(Ordering::SeqCst), 2);
        let traffic = rig.network.traffic();
        assert_eq!(traffic.network.duplicated, 1);
        assert_eq!(traffic.nodes[&rig.b].received.messages, 2);
    });
}

#[test]
fn receivers_refuse_floods_and_oversized_calls_and_score_the_sender() {
    paused(async {
        let rig = rig(LinkProfile::PERFECT, 10, |_, _| Vec::new(), Verdict::Duplicate);
        let transport = rig.network.transport(rig.a);
        assert!(transport.submit_proofs(rig.b, beacons(10)).await.is_ok());
        // The limit of 10 per slot is used up: the next message is refused as a flood.
        let refused = transport.submit_proofs(rig.b, beacons(1)).await.unwrap_err();
        assert!(matches!(refused, TransportError::Refused(_)), "{refused:?}");
        assert_eq!(rig.directory.faults()[&rig.a].flooding, 1);
        assert_eq!(rig.network.traffic().network.rate_limited_items, 1);
        // A new slot resets the count.
        tokio::time::sleep(Duration::from_millis(testing::small_params().time.slot_ms())).await;
        let oversized = vec![beacons(1)[0].clone(); MAX_BATCH + 1];
        let limit = rig_limit_free();
        let transport = limit.network.transport(limit.a);
        assert!(matches!(
            transport.submit_proofs(limit.b, oversized).await,
            Err(TransportError::Refused(_))
        ));
        let too_long = SlotRange { start: Slot(0), end: Slot(MAX_DIGEST_SLOTS + 1) };
        assert!(matches!(
            transport.slot_digests(limit.b, too_long).await,
            Err(TransportError::Refused(_))
        ));
        let backwards = SlotRange { start: Slot(5), end: Slot(1) };
        assert!(matches!(
            transport.pull_proofs(limit.b, backwards, None, 10).await,
            Err(TransportError::Refused(_))
        ));
        assert_eq!(limit.directory.faults()[&limit.a].invalid_message, 3);
        assert_eq!(limit.peer.batches.load(Ordering::SeqCst), 0);
    });
}

fn rig_limit_free() -> Rig {
    rig(LinkProfile::PERFECT, u64::MAX / 2, |_, _| Vec::new(), Verdict::Accept)
}

#[test]
fn verdicts_that_prove_misbehaviour_are_reported_against_the_sender() {
    paused(async {
        let rig = rig(
            LinkProfile::PERFECT,
            1_000,
            |_, _| Vec::new(),
            Verdict::Reject(RejectReason::BadSignature),
        );
        rig.network.transport(rig.a).submit_proofs(rig.b, beacons(2)).await.unwrap();
        assert_eq!(rig.directory.faults()[&rig.a].bad_signature, 2);
    });
    assert_eq!(fault_of(Verdict::Reject(RejectReason::Malformed)), Some(PeerFault::InvalidMessage));
    assert_eq!(fault_of(Verdict::Reject(RejectReason::Equivocation)), None);
    assert_eq!(fault_of(Verdict::Reject(RejectReason::Stale)), None);
    assert_eq!(fault_of(Verdict::Reject(RejectReason::UnknownNode)), None);
    assert_eq!(fault_of(Verdict::Duplicate), None);
}

#[test]
fn computed_sizes_equal_the_protobuf_encoding() {
    let mut messages = beacons(5);
    messages
        .push(SignedMessage::new(vec![1; 300], lucid_core::keys::Signature::from_bytes([2; 64])));
    messages.push(SignedMessage::new(Vec::new(), lucid_core::keys::Signature::from_bytes([0; 64])));
    let request =
        pb::SubmitProofsRequest { proofs: messages.iter().map(|p| p.to_proto()).collect() };
    assert_eq!(messages_len(&messages), request.encoded_len());
    let reply = pb::PullProofsResponse {
        proofs: messages.iter().map(|p| p.to_proto()).collect(),
        next: None,
    };
    assert_eq!(messages_len(&messages), reply.encoded_len());
    assert_eq!(messages_len(&[]), 0);
}

#[test]
fn latency_stays_in_the_profile_and_reordering_holds_messages_back() {
    paused(async {
        let profile = LinkProfile {
            latency_min_ms: 20,
            latency_max_ms: 60,
            reorder_ppm: 500_000,
            reorder_delay_ms: 300,
            ..LinkProfile::PERFECT
        };
        let rig = rig(profile, u64::MAX / 2, |_, _| Vec::new(), Verdict::Accept);
        let transport = rig.network.transport(rig.a);
        let mut longest = Duration::ZERO;
        for _ in 0..50 {
            let started = rig.clock.monotonic();
            transport.submit_proofs(rig.b, beacons(1)).await.unwrap();
            let elapsed = rig.clock.monotonic() - started;
            assert!(elapsed >= Duration::from_millis(40), "{elapsed:?}");
            assert!(elapsed <= Duration::from_millis(2 * (60 + 300)), "{elapsed:?}");
            longest = longest.max(elapsed);
        }
        assert!(longest > Duration::from_millis(120), "no message was held back");
        assert!(rig.network.traffic().network.reordered > 0);
    });
}
