//! Gossip end to end in one process: nodes with in-memory stores, their real `StorePeer`s,
//! ingest, beacon producers and gossip loops, connected by a loopback `PeerTransport` that calls
//! the other nodes' `StorePeer`s, under paused tokio time (no real sleep anywhere).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lucid_api::grpc::{PeerApi, SealedSlot, SlotDigest};
use lucid_consensus::ingest::{BatchReport, Outcome, RejectReason, Verdict};
use lucid_consensus::proof::{ProofValue, TaskProof};
use lucid_consensus::registration::CAP_ALL;
use lucid_consensus::seal::seal_root;
use lucid_consensus::store::{MemoryProofStore, ProofStore, stored_proof};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, ProofKey, testing};
use lucid_core::message::Message;
use lucid_core::{Clock, NodeId, NodeKey, SignedMessage, Slot, SlotRange, UnixMillis};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::seal::SealSigner;
use super::*;
use crate::network::TransportError;
use crate::peer::StorePeer;
use crate::services::beacon::{BeaconDeps, BeaconProducer};
use crate::services::registration::RegistrationConfig;
use crate::services::runner::Service;
use crate::services::tally::Reconciliation as _;
use crate::services::time::TokioClock;

/// A current-thread runtime with paused time: tokio advances the clock whenever every task is
/// idle, so loops wake exactly at their due instants without real sleeps.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// The slot every cluster starts in.
const START: u64 = 100;

/// The in-process network: every node's peer service, and who is cut off.
#[derive(Default)]
pub(crate) struct Net {
    pub(crate) peers: Mutex<BTreeMap<NodeId, Arc<StorePeer>>>,
    down: Mutex<BTreeSet<NodeId>>,
}

impl Net {
    fn route(&self, from: NodeId, to: NodeId) -> Result<Arc<StorePeer>, TransportError> {
        let down = self.down.lock().unwrap();
        if down.contains(&from) || down.contains(&to) {
            return Err(TransportError::Unreachable("cut off".into()));
        }
        self.peers.lock().unwrap().get(&to).cloned().ok_or(TransportError::UnknownPeer)
    }

    fn set_down(&self, node: NodeId, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(node);
        } else {
            set.remove(&node);
        }
    }
}

fn refused(error: lucid_consensus::Error) -> TransportError {
    TransportError::Refused(error.to_string())
}

/// A `PeerTransport` of node `me` that calls the other nodes' peer services directly.
pub(crate) struct Loopback {
    pub(crate) me: NodeId,
    pub(crate) net: Arc<Net>,
}

#[async_trait::async_trait]
impl PeerTransport for Loopback {
    async fn submit_proofs(
        &self,
        peer: NodeId,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        callee.submit_proofs_from(Some(self.me), proofs).await.map_err(refused)
    }

    async fn slot_digests(
        &self,
        peer: NodeId,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        PeerApi::slot_digests(callee.as_ref(), range).await.map_err(refused)
    }

    async fn pull_proofs(
        &self,
        peer: NodeId,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        let proofs = callee.pull_proofs(range, after, limit).await.map_err(refused)?;
        Ok(proofs.into_iter().map(|proof| proof.message).collect())
    }

    async fn registrations(
        &self,
        peer: NodeId,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        callee.registrations(after, limit).await.map_err(refused)
    }

    async fn fetch_slot(
        &self,
        peer: NodeId,
        slot: Slot,
    ) -> Result<Option<SealedSlot>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        callee.fetch_slot(slot).await.map_err(refused)
    }

    async fn submit_evidence(
        &self,
        peer: NodeId,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        callee.submit_evidence_from(Some(self.me), first, second).await.map_err(refused)
    }

    async fn submit_pool_ops(
        &self,
        peer: NodeId,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        PeerApi::submit_pool_ops(callee.as_ref(), Some(self.me), ops).await.map_err(refused)
    }

    async fn fetch_pool_ops(
        &self,
        peer: NodeId,
        query: lucid_api::grpc::PoolOpsQuery,
    ) -> Result<lucid_api::grpc::PoolOpsPage, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        PeerApi::fetch_pool_ops(callee.as_ref(), query).await.map_err(refused)
    }

    async fn submit_seals(
        &self,
        peer: NodeId,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        PeerApi::submit_seals(callee.as_ref(), Some(self.me), seals).await.map_err(refused)
    }

    async fn fetch_evidence(
        &self,
        peer: NodeId,
        query: lucid_api::grpc::EvidenceQuery,
    ) -> Result<lucid_api::grpc::EvidencePage, TransportError> {
        let callee = self.net.route(self.me, peer)?;
        PeerApi::fetch_evidence(callee.as_ref(), query).await.map_err(refused)
    }
}

/// Every other node that is not cut off; faults are recorded for the test to read.
pub(crate) struct Directory {
    pub(crate) me: NodeId,
    pub(crate) net: Arc<Net>,
    pub(crate) faults: Mutex<Vec<(NodeId, PeerFault)>>,
}

impl PeerDirectory for Directory {
    fn gossip_peers(&self) -> Vec<NodeId> {
        let down = self.net.down.lock().unwrap();
        if down.contains(&self.me) {
            return Vec::new();
        }
        let peers = self.net.peers.lock().unwrap();
        peers.keys().copied().filter(|peer| *peer != self.me && !down.contains(peer)).collect()
    }

    fn report(&self, peer: NodeId, fault: PeerFault) {
        self.faults.lock().unwrap().push((peer, fault));
    }
}

struct TestNode {
    key: Arc<NodeKey>,
    store: Arc<MemoryProofStore>,
    /// The node's pool store and op log.
    pools: Arc<lucid_pools::MemoryPoolStore>,
    /// The hook its peer service holds (also after the queue went to the gossip loops).
    hook: GossipHook,
    peer: Arc<StorePeer>,
    directory: Arc<Directory>,
    metrics: Arc<GossipMetrics>,
    queue: Option<GossipQueue>,
    verifier: Arc<Verifier>,
}

impl TestNode {
    /// The gossip hook of this node, as its peer service holds it.
    fn peer_hook(&self) -> GossipHook {
        self.queue.as_ref().map(GossipQueue::hook).unwrap()
    }
}

struct Cluster {
    params: ConsensusParams,
    clock: Arc<TokioClock>,
    net: Arc<Net>,
    nodes: Vec<TestNode>,
    tracker: TaskTracker,
    states: Arc<ServiceStates>,
    loops: Arc<ServiceMetrics>,
    cancel: CancellationToken,
    config: GossipConfig,
}

impl Cluster {
    /// Takes node 1 down and adds `liar`, an empty store the test answers for, so that it is
    /// node 0's only reachable peer.
    async fn only_peer_of_node_0_is(&self, liar: NodeId) {
        self.net.set_down(self.nodes[1].key.node_id(), true);
        let liar_peer = StorePeer::load(
            self.params,
            Arc::new(MemoryProofStore::new()),
            Arc::new(Verifier::single_threaded()),
            self.clock.clone(),
        )
        .await
        .unwrap();
        self.net.peers.lock().unwrap().insert(liar, Arc::new(liar_peer));
    }

    /// `n` registered nodes (keys 0..n, plus `extra` registered keys that run no node), none
    /// started, at the start of slot [`START`].
    async fn new(n: u64, extra: &[u64], config: impl Fn(GossipConfig) -> GossipConfig) -> Self {
        Cluster::new_with(n, extra, |_, _| true, config).await
    }

    /// Like [`Cluster::new`], where node `index` knows the registration of `other` only if
    /// `knows(index, other)`.
    async fn new_with(
        n: u64,
        extra: &[u64],
        knows: impl Fn(u64, u64) -> bool,
        config: impl Fn(GossipConfig) -> GossipConfig,
    ) -> Self {
        let params = testing::small_params();
        let config = config(GossipConfig::for_network(&params));
        let clock = Arc::new(TokioClock::new(params.time.slot_start(Slot(START)).unwrap()));
        let net = Arc::new(Net::default());
        let mut nodes = Vec::new();
        for index in 0..n {
            let key = Arc::new(testing::key(index));
            let me = key.node_id();
            let store = Arc::new(MemoryProofStore::new());
            let verifier = Arc::new(Verifier::single_threaded());
            let peer = StorePeer::load(params, store.clone(), verifier.clone(), clock.clone())
                .await
                .unwrap();
            for other in (0..n).chain(extra.iter().copied()).filter(|other| knows(index, *other)) {
                let registration = testing::signed_registration(&params, &testing::key(other), 1);
                assert_eq!(
                    peer.submit_registration(registration).await.unwrap().verdict,
                    Verdict::Accept
                );
            }
            let directory =
                Arc::new(Directory { me, net: net.clone(), faults: Mutex::new(Vec::new()) });
            let pools = Arc::new(lucid_pools::MemoryPoolStore::new());
            let pool_ingest = super::ops::PoolOpIngest::new(
                params,
                pools.clone(),
                peer.ingest(),
                clock.clone(),
                Arc::new(tokio::sync::Mutex::new(())),
            );
            let queue = GossipQueue::new(me, directory.clone(), &config).with_pool_ops(pool_ingest);
            let metrics = queue.metrics();
            let hook = queue.hook();
            let peer = Arc::new(peer.with_gossip(queue.hook()));
            net.peers.lock().unwrap().insert(me, peer.clone());
            nodes.push(TestNode {
                key,
                store,
                pools,
                hook,
                peer,
                directory,
                metrics,
                queue: Some(queue),
                verifier,
            });
        }
        Cluster {
            params,
            clock,
            net,
            nodes,
            tracker: TaskTracker::new(),
            states: Arc::new(ServiceStates::new()),
            loops: Arc::new(ServiceMetrics::new()),
            cancel: CancellationToken::new(),
            config,
        }
    }

    /// Starts every node.
    fn start_all(&mut self) {
        for index in 0..self.nodes.len() {
            self.start(index);
        }
    }

    /// Starts node `index`: its beacon producer and its gossip loops.
    fn start(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let queue = node.queue.take().unwrap();
        let clock: Arc<dyn Clock> = self.clock.clone();
        let beacons = BeaconProducer::new(BeaconDeps {
            params: self.params,
            clock: clock.clone(),
            key: node.key.clone(),
            registration: RegistrationConfig {
                payout_address: None,
                endpoint: None,
                capabilities: CAP_ALL,
                storage_capacity_bytes: 1 << 30,
            },
            store: node.store.clone(),
            ingest: node.peer.ingest(),
            verifier: node.verifier.clone(),
            outbox: Some(queue.own_outbox()),
        });
        crate::services::runner::spawn_supervised(
            &self.tracker,
            self.states.clone(),
            beacons,
            clock.clone(),
            self.loops.clone(),
            self.cancel.child_token(),
        );
        spawn(
            GossipDeps {
                params: self.params,
                clock,
                key: node.key.clone(),
                store: node.store.clone(),
                ingest: node.peer.ingest(),
                verifier: node.verifier.clone(),
                transport: Arc::new(Loopback { me: node.key.node_id(), net: self.net.clone() }),
                config: self.config.clone(),
            },
            queue,
            Supervision {
                tracker: &self.tracker,
                states: self.states.clone(),
                loops: self.loops.clone(),
                cancel: &self.cancel,
            },
        );
    }

    /// Sleeps (paused time) until `ms` milliseconds into `slot`.
    async fn run_until(&self, slot: u64, ms: i64) {
        let at = self.params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(ms);
        let now = self.clock.wall();
        assert!(at >= now, "cannot sleep back from {now} to {at}");
        tokio::time::sleep(Duration::from_millis(u64::try_from(at.0 - now.0).unwrap())).await;
    }

    async fn digests(&self, index: usize, start: u64, end: u64) -> Vec<SlotDigest> {
        let range = SlotRange { start: Slot(start), end: Slot(end) };
        lucid_api::grpc::slot_digests(self.nodes[index].store.as_ref(), range, 7).await.unwrap()
    }

    /// Asserts that every node holds the same per-slot digests over `start..end`.
    async fn assert_converged(&self, start: u64, end: u64) -> Vec<SlotDigest> {
        let reference = self.digests(0, start, end).await;
        for index in 1..self.nodes.len() {
            assert_eq!(self.digests(index, start, end).await, reference, "node {index} differs");
        }
        reference
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        assert!(self.states.failed().is_empty(), "{:?}", self.states.snapshot());
    }
}

async fn proofs_of(
    store: &MemoryProofStore,
    start: u64,
    end: u64,
) -> Vec<lucid_consensus::store::StoredProof> {
    let range = SlotRange { start: Slot(start), end: Slot(end) };
    store.proofs_in_range(range, None, 100_000).await.unwrap()
}

/// A relay proof of `key` for `slot`, signed half a slot in (the test network's slots are 1 s).
fn relay(params: &ConsensusParams, key: &NodeKey, slot: u64, bytes: u64) -> SignedMessage {
    let ts = params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(500);
    TaskProof {
        node: key.node_id(),
        slot: Slot(slot),
        ts,
        value: ProofValue::Relay { bytes_transferred: bytes, sessions_relayed: 1 },
    }
    .sign(&params.network, key)
}

#[test]
fn push_alone_brings_every_node_to_the_same_digests_and_seals() {
    paused_runtime().block_on(async {
        // Anti-entropy only at start (when every peer is new), so what spreads later is push.
        let mut cluster = Cluster::new(4, &[], |config| GossipConfig {
            anti_entropy_every: Duration::from_secs(3_600),
            poll_every: Duration::from_secs(3_600),
            ..config
        })
        .await;
        cluster.start_all();
        cluster.run_until(START + 10, 500).await;
        let digests = cluster.assert_converged(START, START + 10).await;
        assert_eq!(digests.len(), 10);
        assert!(digests.iter().all(|digest| digest.count == 4), "{digests:?}");
        let (mut total_in, mut total_out) = (0, 0);
        for node in &cluster.nodes {
            assert!(
                proofs_of(&node.store, START, START + 10).await.iter().all(|proof| !proof.late)
            );
            let (bytes_in, bytes_out) = node.metrics.bytes();
            assert!(bytes_out > 0 && bytes_in > 0, "{bytes_in} {bytes_out}");
            total_in += bytes_in;
            total_out += bytes_out;
            assert_eq!(node.metrics.dropped(), 0);
            assert!(node.directory.faults.lock().unwrap().is_empty());
        }
        // Every pushed byte arrived once (no loss here), and nothing else was exchanged.
        assert_eq!(total_in, total_out);
        // Every slot up to current − 3 is sealed by every node over the same set.
        for slot in START..=START + 7 {
            let mut roots = BTreeSet::new();
            for node in &cluster.nodes {
                let seal = node.store.get_seal(&node.key.node_id(), Slot(slot)).await.unwrap();
                let seal = seal.unwrap_or_else(|| panic!("slot {slot} is not sealed"));
                assert_eq!(seal.seal.count, 4);
                roots.insert(seal.seal.root);
            }
            assert_eq!(roots.len(), 1, "slot {slot}");
        }
        // Seals are pushed: every node holds every node's seal of every sealed slot, without
        // having fetched a single set.
        for slot in START..=START + 7 {
            for holder in &cluster.nodes {
                for signer in &cluster.nodes {
                    let held = holder.store.get_seal(&signer.key.node_id(), Slot(slot)).await;
                    assert!(held.unwrap().is_some(), "slot {slot}");
                }
            }
        }
        cluster.stop().await;
    });
}

#[test]
fn a_node_that_missed_a_stretch_catches_up_through_anti_entropy_and_late_acceptance() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(4, &[], |config| config).await;
        let late_node = cluster.nodes[3].key.node_id();
        cluster.net.set_down(late_node, true);
        for index in 0..3 {
            cluster.start(index);
        }
        cluster.run_until(START + 12, 0).await;
        assert!(proofs_of(&cluster.nodes[3].store, 0, START + 20).await.is_empty());
        // Back at slot 112: digests first, then slots 100..110 through seals (late), 110 and
        // 111 through the live pull, and what follows by push.
        cluster.net.set_down(late_node, false);
        cluster.start(3);
        cluster.run_until(START + 22, 500).await;
        let digests = cluster.assert_converged(START, START + 22).await;
        assert_eq!(digests.len(), 22);
        for digest in &digests {
            let expected = if digest.slot.0 < START + 12 { 3 } else { 4 };
            assert_eq!(digest.count, expected, "{digest:?}");
        }
        let caught_up = &cluster.nodes[3];
        let late: Vec<_> = proofs_of(&caught_up.store, START, START + 12)
            .await
            .into_iter()
            .filter(|proof| proof.late)
            .map(|proof| proof.proof.slot.0)
            .collect();
        assert!(!late.is_empty() && late.iter().all(|slot| *slot < START + 10), "{late:?}");
        assert_eq!(caught_up.metrics.late_accepted(), u64::try_from(late.len()).unwrap());
        // Anti-entropy marked its store reconciled below the grace of a round after the return
        // (what the tally keeper waits for); the nodes that ran throughout are marked too.
        let mark = caught_up.hook.reconciled().reconciled_before();
        assert!(mark.is_some_and(|slot| slot >= Slot(START + 12)), "{mark:?}");
        // Its seals cover only what it accepted live: nothing for the slots it missed.
        let missed = caught_up.store.get_seal(&late_node, Slot(START + 5)).await.unwrap();
        assert!(missed.is_none_or(|seal| seal.seal.count == 0));
        for node in &cluster.nodes {
            assert!(node.directory.faults.lock().unwrap().is_empty());
        }
        cluster.stop().await;
    });
}

#[test]
fn an_equivocation_is_recorded_by_every_node() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(4, &[9], |config| config).await;
        cluster.start_all();
        cluster.run_until(START + 3, 400).await;
        // Key 9 signs two different relay proofs for one slot and shows each to another node.
        let cheat = testing::key(9);
        let first = relay(&cluster.params, &cheat, START + 3, 1);
        let second = relay(&cluster.params, &cheat, START + 3, 2);
        let outcomes = cluster.nodes[1].peer.submit_proofs_from(None, vec![first]).await.unwrap();
        assert_eq!(outcomes[0].verdict, Verdict::Accept);
        let outcomes = cluster.nodes[2].peer.submit_proofs_from(None, vec![second]).await.unwrap();
        assert_eq!(outcomes[0].verdict, Verdict::Accept);
        cluster.run_until(START + 6, 0).await;
        let mut identities = BTreeSet::new();
        for node in &cluster.nodes {
            let evidence = node.store.all_evidence();
            assert_eq!(evidence.len(), 1, "{:?}", node.key.node_id());
            assert_eq!(evidence[0].node, cheat.node_id());
            identities.insert(evidence[0].digests());
            // Forwarded at most once per node, and the relays are not blamed.
            assert!(node.metrics.evidence_forwarded() <= 1);
            assert!(node.directory.faults.lock().unwrap().is_empty());
        }
        assert_eq!(identities.len(), 1);
        // The equivocated key is excluded from every tally, on every node alike.
        let range = SlotRange { start: Slot(START), end: Slot(START + 6) };
        for node in &cluster.nodes {
            let keys = node.store.evidence_keys(range).await.unwrap();
            assert_eq!(keys.len(), 1);
            assert_eq!(keys[0].node, cheat.node_id());
        }
        cluster.stop().await;
    });
}

#[test]
fn forged_and_replayed_proofs_are_never_stored_or_spread_and_forgers_are_reported() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(3, &[9], |config| config).await;
        cluster.start_all();
        cluster.run_until(START + 3, 500).await;
        let params = cluster.params;
        let adversary = testing::key(9).node_id();
        let victim = cluster.nodes[1].key.clone();
        // Node 1's relay proof, signed by the adversary.
        let genuine = relay(&params, &victim, START + 3, 5);
        let forged =
            SignedMessage::new(genuine.bytes().to_vec(), testing::key(9).sign(genuine.bytes()));
        let stored_before = proofs_of(&cluster.nodes[0].store, START, START + 2).await;
        let replayed_recent = stored_before.iter().find(|p| p.proof.slot.0 == START + 1).unwrap();
        let replayed_old = stored_before.iter().find(|p| p.proof.slot.0 == START).unwrap();
        let garbage = SignedMessage::new(vec![7; 64], lucid_core::Signature::from_bytes([1; 64]));
        let outcomes = cluster.nodes[0]
            .peer
            .submit_proofs_from(
                Some(adversary),
                vec![
                    forged.clone(),
                    replayed_recent.message.clone(),
                    replayed_old.message.clone(),
                    garbage,
                ],
            )
            .await
            .unwrap();
        let verdicts: Vec<Verdict> = outcomes.iter().map(|o| o.verdict).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Reject(RejectReason::BadSignature),
                Verdict::Duplicate,
                Verdict::Reject(RejectReason::Stale),
                Verdict::Reject(RejectReason::Malformed),
            ]
        );
        assert_eq!(
            *cluster.nodes[0].directory.faults.lock().unwrap(),
            vec![(adversary, PeerFault::BadSignature), (adversary, PeerFault::InvalidMessage)]
        );
        cluster.run_until(START + 6, 0).await;
        for node in &cluster.nodes {
            let all = proofs_of(&node.store, START, START + 6).await;
            assert!(all.iter().all(|proof| proof.message != forged));
            assert_eq!(all.iter().filter(|p| p.proof.slot.0 == START).count(), 3);
        }
        cluster.assert_converged(START, START + 6).await;
        cluster.stop().await;
    });
}

/// A transport whose every call hangs until the test ends.
struct Hanging;

#[async_trait::async_trait]
impl PeerTransport for Hanging {
    async fn submit_proofs(
        &self,
        _: NodeId,
        _: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        std::future::pending().await
    }
    async fn slot_digests(
        &self,
        _: NodeId,
        _: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        std::future::pending().await
    }
    async fn pull_proofs(
        &self,
        _: NodeId,
        _: SlotRange,
        _: Option<ProofKey>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        std::future::pending().await
    }
    async fn registrations(
        &self,
        _: NodeId,
        _: Option<NodeId>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        std::future::pending().await
    }
    async fn fetch_slot(&self, _: NodeId, _: Slot) -> Result<Option<SealedSlot>, TransportError> {
        std::future::pending().await
    }
    async fn submit_evidence(
        &self,
        _: NodeId,
        _: SignedMessage,
        _: SignedMessage,
    ) -> Result<Outcome, TransportError> {
        std::future::pending().await
    }
}

#[test]
fn a_full_queue_drops_and_counts_and_never_blocks_the_producers() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let net = Arc::new(Net::default());
        let me = testing::node(0);
        let directory =
            Arc::new(Directory { me, net: net.clone(), faults: Mutex::new(Vec::new()) });
        let config = GossipConfig { queue_capacity: 4, ..GossipConfig::for_network(&params) };
        let queue = GossipQueue::new(me, directory, &config);
        let hook = queue.hook();
        let metrics = queue.metrics();
        let report = |count: u64| BatchReport {
            accepted: (0..count)
                .map(|i| {
                    let message = relay(&params, &testing::key(1), START, i);
                    let (_, proof) = TaskProof::from_signed_bytes(message.bytes()).unwrap();
                    stored_proof(proof, message, false)
                })
                .collect(),
            ..BatchReport::default()
        };
        // Nothing drains the queue yet: four fit, six are dropped, and the call returns at once.
        hook.ingested(Some(testing::node(2)), &report(10));
        assert_eq!(metrics.dropped(), 6);

        // With a pusher stuck on a peer that never answers, producers still never wait.
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let (outgoing, own) = (queue.outgoing, queue.own_rx);
        let pusher = push::Pusher::new(hook.clone(), Arc::new(Hanging), config.clone());
        let store = Arc::new(MemoryProofStore::new());
        let peer = StorePeer::load(
            params,
            store,
            Arc::new(Verifier::single_threaded()),
            Arc::new(TokioClock::new(UnixMillis(0))),
        )
        .await
        .unwrap();
        net.peers.lock().unwrap().insert(testing::node(3), Arc::new(peer));
        // One peer in the directory, which never answers.
        tracker.spawn(pusher.run(outgoing, own, cancel.child_token()));
        for _ in 0..100 {
            hook.ingested(None, &report(50));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(metrics.dropped() > 4_000, "{}", metrics.dropped());
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    });
}

#[test]
fn seals_cover_the_live_set_once_and_are_never_re_signed_after_a_restart() {
    paused_runtime().block_on(async {
        let params = testing::small_params();
        let key = Arc::new(testing::key(0));
        let me = key.node_id();
        let store = Arc::new(MemoryProofStore::new());
        let metrics = Arc::new(GossipMetrics::default());
        let live = relay(&params, &testing::key(1), START, 1);
        let late = relay(&params, &testing::key(2), START, 2);
        let stored = |message: &SignedMessage, late: bool| {
            let (_, proof) = TaskProof::from_signed_bytes(message.bytes()).unwrap();
            stored_proof(proof, message.clone(), late)
        };
        store.insert_proofs(&[stored(&live, false), stored(&late, true)]).await.unwrap();
        let mut signer = SealSigner::new(params, key.clone(), store.clone(), metrics.clone());
        let at =
            |slot: u64, ms: i64| params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(ms);
        // Not before slot s + 3; a first tick catches up the eight slots before (empty ones).
        signer.tick(at(START + 2, 900)).await.unwrap();
        assert!(store.get_seal(&me, Slot(START)).await.unwrap().is_none());
        assert_eq!(metrics.seals_signed(), 9);
        assert_eq!(store.get_seal(&me, Slot(START - 1)).await.unwrap().unwrap().seal.count, 0);
        assert!(store.get_seal(&me, Slot(START - 10)).await.unwrap().is_none());
        assert_eq!(signer.next_due(at(START + 2, 900)), at(START + 3, 0));
        signer.tick(at(START + 3, 0)).await.unwrap();
        let seal = store.get_seal(&me, Slot(START)).await.unwrap().unwrap();
        assert_eq!(seal.seal.count, 1);
        assert_eq!(seal.seal.root, seal_root(&[live.digest()]));
        assert!(seal.message.verify(&me));
        assert_eq!(metrics.seals_signed(), 10);

        // A restarted signer (fresh state, same store) signs nothing it signed before.
        let mut restarted = SealSigner::new(params, key.clone(), store.clone(), metrics.clone());
        restarted.tick(at(START + 3, 700)).await.unwrap();
        assert_eq!(metrics.seals_signed(), 10);
        assert_eq!(store.get_seal(&me, Slot(START)).await.unwrap().unwrap(), seal);
        // A proof that reaches the store later is not added: the seal is never amended.
        let later = relay(&params, &testing::key(3), START, 3);
        store.insert_proofs(&[stored(&later, false)]).await.unwrap();
        restarted.tick(at(START + 4, 0)).await.unwrap();
        assert_eq!(store.get_seal(&me, Slot(START)).await.unwrap().unwrap(), seal);
        assert_eq!(metrics.seals_signed(), 11);
        // The peer service serves the seal only with exactly the set it covers.
        let queue = GossipQueue::new(
            me,
            Arc::new(Directory {
                me,
                net: Arc::new(Net::default()),
                faults: Mutex::new(Vec::new()),
            }),
            &GossipConfig::for_network(&params),
        );
        let peer = StorePeer::load(
            params,
            store.clone(),
            Arc::new(Verifier::single_threaded()),
            Arc::new(TokioClock::new(at(START + 4, 0))),
        )
        .await
        .unwrap()
        .with_gossip(queue.hook());
        assert_eq!(
            peer.fetch_slot(Slot(START)).await.unwrap(),
            None,
            "the set changed after sealing"
        );
        let served = peer.fetch_slot(Slot(START + 1)).await.unwrap().unwrap();
        assert_eq!(served.set, Vec::<SignedMessage>::new());
        assert_eq!(
            served.seal,
            store.get_seal(&me, Slot(START + 1)).await.unwrap().unwrap().message
        );
        assert_eq!(peer.fetch_slot(Slot(START + 2)).await.unwrap(), None);
    });
}

/// A peer that lies in every answer of anti-entropy.
struct Liar {
    params: ConsensusParams,
    key: NodeKey,
    victim: NodeKey,
}

#[async_trait::async_trait]
impl PeerTransport for Liar {
    async fn submit_proofs(
        &self,
        _: NodeId,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, TransportError> {
        Ok(proofs
            .iter()
            .map(|m| Outcome { digest: m.digest(), verdict: Verdict::Accept })
            .collect())
    }
    async fn slot_digests(
        &self,
        _: NodeId,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, TransportError> {
        let claim = |slot: u64| SlotDigest {
            slot: Slot(slot),
            count: 1,
            root: lucid_core::Digest::from_bytes([9; 32]),
        };
        let mut digests: Vec<SlotDigest> = [START, START + 5]
            .into_iter()
            .filter(|s| range.contains(Slot(*s)))
            .map(claim)
            .collect();
        if range.contains(Slot(START)) {
            // Outside what was asked.
            digests.push(claim(range.end.0 + 3));
        }
        Ok(digests)
    }
    async fn pull_proofs(
        &self,
        _: NodeId,
        _: SlotRange,
        _: Option<ProofKey>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        // The victim's proof, signed by the liar.
        let genuine = relay(&self.params, &self.victim, START + 5, 1);
        Ok(vec![SignedMessage::new(genuine.bytes().to_vec(), self.key.sign(genuine.bytes()))])
    }
    async fn registrations(
        &self,
        _: NodeId,
        _: Option<NodeId>,
        _: usize,
    ) -> Result<Vec<SignedMessage>, TransportError> {
        Ok(Vec::new())
    }
    async fn fetch_slot(
        &self,
        _: NodeId,
        slot: Slot,
    ) -> Result<Option<SealedSlot>, TransportError> {
        // Its own seal, over a set it does not serve.
        let set = vec![relay(&self.params, &self.victim, slot.0, 2)];
        let seal = lucid_consensus::seal::SlotSeal {
            node: self.key.node_id(),
            slot,
            count: 1,
            root: lucid_core::Digest::from_bytes([9; 32]),
            ts: self.params.time.slot_start(Slot(slot.0 + 3)).unwrap(),
        };
        Ok(Some(SealedSlot { seal: seal.sign(&self.params.network, &self.key), set }))
    }
    async fn submit_evidence(
        &self,
        _: NodeId,
        _: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, TransportError> {
        Ok(Outcome { digest: second.digest(), verdict: Verdict::Accept })
    }
}

#[test]
fn a_lying_peer_gets_nothing_stored_and_is_reported_for_each_lie() {
    paused_runtime().block_on(async {
        let cluster = Cluster::new(2, &[9], |config| config).await;
        let params = cluster.params;
        let liar = testing::key(9);
        let node = &cluster.nodes[0];
        // The liar is the only peer in node 0's directory.
        cluster.only_peer_of_node_0_is(liar.node_id()).await;
        cluster.run_until(START + 5, 500).await;
        let hook = node.peer_hook();
        let mut anti_entropy = anti_entropy::AntiEntropy::new(
            GossipDeps {
                params,
                clock: cluster.clock.clone(),
                key: node.key.clone(),
                store: node.store.clone(),
                ingest: node.peer.ingest(),
                verifier: node.verifier.clone(),
                transport: Arc::new(Liar { params, key: testing::key(9), victim: testing::key(1) }),
                config: cluster.config.clone(),
            },
            hook,
        );
        anti_entropy.tick(cluster.clock.wall()).await.unwrap();
        assert_eq!(
            *node.directory.faults.lock().unwrap(),
            vec![
                (liar.node_id(), PeerFault::InvalidMessage),
                (liar.node_id(), PeerFault::BadSignature),
                (liar.node_id(), PeerFault::InvalidMessage),
            ]
        );
        assert!(proofs_of(&node.store, 0, START + 10).await.is_empty());
        assert_eq!(node.metrics.late_accepted(), 0);
        // The same lies again: the sealed slot is not fetched twice for the same claim.
        node.directory.faults.lock().unwrap().clear();
        anti_entropy.tick(cluster.clock.wall().saturating_add_ms(60_000)).await.unwrap();
        assert_eq!(
            *node.directory.faults.lock().unwrap(),
            vec![
                (liar.node_id(), PeerFault::InvalidMessage),
                (liar.node_id(), PeerFault::BadSignature),
            ]
        );
        cluster.stop().await;
    });
}

#[test]
fn proofs_of_a_node_not_known_yet_are_taken_once_its_registration_is_read_from_a_peer() {
    paused_runtime().block_on(async {
        // Node 2 starts without node 0's registration: it refuses node 0's proofs (not a fault)
        // until anti-entropy reads the registrations of a peer that sent them.
        let mut cluster =
            Cluster::new_with(3, &[], |index, other| !(index == 2 && other == 0), |c| c).await;
        assert_eq!(cluster.nodes[2].peer.registered_nodes().await.unwrap(), 2);
        cluster.net.set_down(cluster.nodes[2].key.node_id(), true);
        cluster.start_all();
        cluster.run_until(START + 6, 0).await;
        cluster.net.set_down(cluster.nodes[2].key.node_id(), false);
        cluster.run_until(START + 16, 500).await;
        assert_eq!(cluster.nodes[2].peer.registered_nodes().await.unwrap(), 3);
        // Node 2 took node 0's proofs of every slot, those of the cut-off stretch late.
        let zero = cluster.nodes[0].key.node_id();
        let from_zero: Vec<_> = proofs_of(&cluster.nodes[2].store, START, START + 16)
            .await
            .into_iter()
            .filter(|proof| proof.proof.node == zero)
            .collect();
        assert_eq!(from_zero.len(), 16);
        assert!(from_zero.iter().filter(|p| p.late).all(|p| p.proof.slot.0 < START + 4));
        assert!(from_zero.iter().any(|p| p.late));
        // From slot 104 on (live when it came back) every node holds the same; before, node 2's
        // own proofs of the stretch it was cut off stay its own: no node backfills itself alone.
        let digests = cluster.assert_converged(START + 4, START + 16).await;
        assert!(digests.iter().all(|digest| digest.count == 3), "{digests:?}");
        for slot in START..START + 4 {
            let range = SlotRange { start: Slot(slot), end: Slot(slot + 1) };
            let mut counts = Vec::new();
            for node in &cluster.nodes {
                counts.push(node.store.proofs_in_range(range, None, 100).await.unwrap().len());
            }
            assert_eq!(counts, vec![2, 2, 3], "slot {slot}");
        }
        for node in &cluster.nodes {
            assert!(node.directory.faults.lock().unwrap().is_empty());
        }
        cluster.stop().await;
    });
}

#[test]
fn pushed_seals_are_judged_before_they_are_stored() {
    paused_runtime().block_on(async {
        let cluster = Cluster::new(3, &[], |config| config).await;
        let params = cluster.params;
        let now = cluster.clock.wall();
        let seal_of = |key: &NodeKey, slot: u64, count: u32| {
            lucid_consensus::seal::SlotSeal {
                node: key.node_id(),
                slot: Slot(slot),
                count,
                root: lucid_core::Digest::from_bytes([u8::try_from(count).unwrap(); 32]),
                ts: now,
            }
            .sign(&params.network, key)
        };
        let signer = cluster.nodes[1].key.clone();
        let relay = cluster.nodes[2].key.node_id();
        let valid = seal_of(&signer, START - 5, 4);
        let forged =
            SignedMessage::new(valid.bytes().to_vec(), testing::key(8).sign(valid.bytes()));
        let equivocating = seal_of(&signer, START - 5, 5);
        let not_over_yet = seal_of(&signer, START - 2, 4);
        let unknown = seal_of(&testing::key(9), START - 5, 4);
        let garbage = SignedMessage::new(b"junk".to_vec(), signer.sign(b"junk"));
        let ancient = seal_of(&signer, 1, 4);
        let outcomes = cluster.nodes[0]
            .peer
            .submit_seals(
                Some(relay),
                vec![
                    valid.clone(),
                    valid.clone(),
                    forged,
                    equivocating,
                    not_over_yet,
                    unknown,
                    garbage,
                    ancient,
                ],
            )
            .await
            .unwrap();
        let verdicts: Vec<Verdict> = outcomes.iter().map(|outcome| outcome.verdict).collect();
        assert_eq!(
            verdicts,
            vec![
                Verdict::Accept,
                Verdict::Duplicate,
                Verdict::Reject(RejectReason::BadSignature),
                Verdict::Reject(RejectReason::Equivocation),
                Verdict::Reject(RejectReason::FromFuture),
                Verdict::Reject(RejectReason::UnknownNode),
                Verdict::Reject(RejectReason::Malformed),
                Verdict::Reject(RejectReason::Stale),
            ]
        );
        let stored = cluster.nodes[0].store.get_seal(&signer.node_id(), Slot(START - 5)).await;
        assert_eq!(stored.unwrap().unwrap().message, valid);
        let faults = cluster.nodes[0].directory.faults.lock().unwrap().clone();
        assert_eq!(
            faults,
            vec![(relay, PeerFault::BadSignature), (relay, PeerFault::InvalidMessage)]
        );
    });
}

mod evidence;
mod pool_ops;

/// The own beacon and work proof of `key` for `slot`, signed inside the slot.
fn own_pair(params: &ConsensusParams, key: &NodeKey, slot: u64) -> [SignedMessage; 2] {
    let ts = params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(300);
    let beacon = TaskProof {
        node: key.node_id(),
        slot: Slot(slot),
        ts,
        value: ProofValue::Beacon { metrics_digest: None },
    }
    .sign(&params.network, key);
    [beacon, relay(params, key, slot, 7)]
}

/// Issue 6, review finding 1: a node killed after storing its own beacon and work proof of a
/// slot and before pushing them (here: stored through its ingest, never handed to gossip) comes
/// back within the grace. Its peers will not pull that slot for an hour, so only the restarted
/// node can bring the proofs to them: its first anti-entropy round with each peer pushes its own
/// proofs of the grace again. The receivers store each once and score nothing; a proof older
/// than the grace is never pushed (every peer would refuse it as stale).
#[test]
fn own_proofs_stored_but_not_pushed_before_a_crash_reach_the_peers_after_the_restart() {
    paused_runtime().block_on(async {
        let mut cluster = Cluster::new(3, &[], |config| GossipConfig {
            anti_entropy_every: Duration::from_secs(3_600),
            ..config
        })
        .await;
        // Nodes 0 and 1 run; their first rounds (with node 2 too) are over by slot START + 1.
        cluster.start(0);
        cluster.start(1);
        cluster.run_until(START + 1, 600).await;
        let crashed = &cluster.nodes[2];
        let me = crashed.key.node_id();
        // Node 2 stores its proofs of START + 1 and of an old slot, and "dies" before any push.
        let pair = own_pair(&cluster.params, &crashed.key, START + 1);
        let now = cluster.clock.wall();
        let report = crashed
            .peer
            .ingest()
            .lock()
            .await
            .ingest_batch(crashed.store.as_ref(), &crashed.verifier, now, pair.to_vec())
            .await
            .unwrap();
        assert!(report.outcomes.iter().all(|o| o.verdict == Verdict::Accept), "{report:?}");
        let old = relay(&cluster.params, &crashed.key, START - 20, 9);
        let (_, old_proof) = TaskProof::from_signed_bytes(old.bytes()).unwrap();
        crashed.store.insert_proofs(&[stored_proof(old_proof, old.clone(), false)]).await.unwrap();
        let key = |slot: u64, kind| ProofKey { node: me, slot: Slot(slot), kind };
        let beacon_key = key(START + 1, lucid_consensus::proof::ProofKind::UptimeBeacon);
        let relay_key = key(START + 1, lucid_consensus::proof::ProofKind::RelayBandwidth);
        let old_key = key(START - 20, lucid_consensus::proof::ProofKind::RelayBandwidth);
        for index in 0..2 {
            let store = &cluster.nodes[index].store;
            assert!(store.get_proof(&beacon_key).await.unwrap().is_none(), "node {index}");
        }

        // Back in slot START + 2, inside the grace of START + 1.
        cluster.run_until(START + 2, 150).await;
        cluster.start(2);
        cluster.run_until(START + 4, 500).await;
        for index in 0..2 {
            let store = &cluster.nodes[index].store;
            for (key, message) in [(beacon_key, &pair[0]), (relay_key, &pair[1])] {
                let held = store.get_proof(&key).await.unwrap();
                assert_eq!(held.map(|p| p.message), Some(message.clone()), "node {index}, {key:?}");
            }
            assert!(store.get_proof(&old_key).await.unwrap().is_none(), "node {index}");
            assert!(cluster.nodes[index].directory.faults.lock().unwrap().is_empty());
        }
        // Both proofs to both peers at least (its beacon of START + 2 may be among them too).
        let repushed = cluster.nodes[2].metrics.own_repushed();
        assert!((4..=6).contains(&repushed), "{repushed}");
        // From then on the three agree on every slot, the crash slot included.
        cluster.assert_converged(START + 1, START + 4).await;
        cluster.stop().await;
    });
}
