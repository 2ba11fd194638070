//! The pluggable part of a simulated node: the gossip and anti-entropy protocol.
//!
//! The harness builds everything else of a node (store, ingest, clock, beacons, the transport
//! and directory over the simulated network) and hands it to a [`NodeProtocol`] in a
//! [`NodeContext`]; the protocol spawns its tasks on the context's tracker and stops when the
//! context's token is cancelled. [`super::daemon_gossip::DaemonGossip`] plugs the daemon's
//! gossip in here.
//!
//! [`FeedingPeer`] is the `PeerApi` a node serves: the daemon's `StorePeer`, plus a bounded feed
//! of the node's own beacons and work proofs and, for a protocol without a gossip hook, of every
//! proof it accepted from a peer's push.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lucid_api::grpc::{PeerApi, PoolOpsPage, PoolOpsQuery, SealedSlot, SlotDigest};
use lucid_consensus::ingest::{Outcome, Verdict};
use lucid_consensus::store::{ProofStore, StoredProof};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::{Clock, NodeId, NodeKey, SignedMessage, Slot, SlotRange};
use lucid_daemon::gossip::GossipHook;
use lucid_daemon::network::{PeerDirectory, PeerTransport};
use lucid_daemon::peer::StorePeer;
use lucid_daemon::services::SharedIngest;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a node's protocol may use; the same ports the daemon's gossip gets.
pub struct NodeContext {
    /// The node's index in the scenario (honest nodes first).
    pub index: usize,
    /// The node's id.
    pub node: NodeId,
    /// The node's key (the daemon's gossip signs slot seals with it).
    pub key: Arc<NodeKey>,
    /// The network's parameters.
    pub params: ConsensusParams,
    /// Calls to peers, over the simulated network.
    pub transport: Arc<dyn PeerTransport>,
    /// Neighbours, and where faults are reported.
    pub directory: Arc<dyn PeerDirectory>,
    /// The node's ingest, shared with its peer service and its beacon producer.
    pub ingest: SharedIngest,
    /// The node's proof store.
    pub store: Arc<dyn ProofStore>,
    /// The verifier ingest uses.
    pub verifier: Arc<Verifier>,
    /// The node's (skewed) wall clock.
    pub clock: Arc<dyn Clock>,
    /// Proofs the node accepted that its peers should hear of: its own beacons and work proofs,
    /// and what peers pushed to it. Bounded; when full, new ones are dropped and counted.
    pub accepted: mpsc::Receiver<SignedMessage>,
    /// A seed for the protocol's own random choices, distinct per node and fixed by the run's
    /// seed (a protocol must not draw from any other randomness, or runs stop replaying).
    pub seed: u64,
    /// Cancelled when the simulation stops the protocol.
    pub cancel: CancellationToken,
    /// Where the protocol spawns its tasks (the harness waits for them).
    pub tracker: TaskTracker,
}

/// A gossip and anti-entropy protocol that a simulated node runs.
pub trait NodeProtocol: Send + Sync + 'static {
    /// A short name for reports.
    fn name(&self) -> &'static str;

    /// The gossip hook to build honest node `node`'s peer service with, for a protocol that
    /// must see what the peer service accepts and the evidence it records (the daemon's own
    /// gossip). `None`, the default, feeds accepted pushes to [`NodeContext::accepted`] instead.
    fn hook(
        &self,
        params: &ConsensusParams,
        node: NodeId,
        directory: Arc<dyn PeerDirectory>,
    ) -> Option<GossipHook> {
        let _ = (params, node, directory);
        None
    }

    /// Spawns the node's protocol tasks on `context.tracker`; they must end when
    /// `context.cancel` fires.
    fn start(&self, context: NodeContext);
}

/// The feed's capacity, in proofs: several slots of a 1 000-node network.
pub const FEED_CAPACITY: usize = 16_384;

/// The `PeerApi` a simulated node serves: `StorePeer`, plus the feed of accepted proofs.
pub struct FeedingPeer {
    inner: StorePeer,
    feed: mpsc::Sender<SignedMessage>,
    dropped: Arc<AtomicU64>,
    /// False when the wrapped peer service carries a gossip hook, which queues what it accepts.
    feed_pushes: bool,
}

impl FeedingPeer {
    /// Wraps `inner`; with `feed_pushes`, accepted pushes go to `feed` (dropped and counted in
    /// `dropped` when full).
    pub fn new(
        inner: StorePeer,
        feed: mpsc::Sender<SignedMessage>,
        dropped: Arc<AtomicU64>,
        feed_pushes: bool,
    ) -> Self {
        FeedingPeer { inner, feed, dropped, feed_pushes }
    }

    /// The ingest state of the wrapped peer service.
    pub fn ingest(&self) -> SharedIngest {
        self.inner.ingest()
    }
}

#[async_trait::async_trait]
impl PeerApi for FeedingPeer {
    async fn submit_proofs(
        &self,
        caller: Option<NodeId>,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        let outcomes = self.inner.submit_proofs(caller, proofs.clone()).await?;
        if !self.feed_pushes {
            return Ok(outcomes);
        }
        for (proof, outcome) in proofs.into_iter().zip(&outcomes) {
            if outcome.verdict == Verdict::Accept && self.feed.try_send(proof).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(outcomes)
    }

    async fn slot_digests(
        &self,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, lucid_consensus::Error> {
        self.inner.slot_digests(range).await
    }

    async fn pull_proofs(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
        self.inner.pull_proofs(range, after, limit).await
    }

    async fn submit_registration(
        &self,
        registration: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        self.inner.submit_registration(registration).await
    }

    async fn registrations(
        &self,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, lucid_consensus::Error> {
        self.inner.registrations(after, limit).await
    }

    async fn registration(
        &self,
        node: NodeId,
    ) -> Result<Option<SignedMessage>, lucid_consensus::Error> {
        self.inner.registration(node).await
    }

    async fn registered_nodes(&self) -> Result<u64, lucid_consensus::Error> {
        self.inner.registered_nodes().await
    }

    async fn fetch_slot(&self, slot: Slot) -> Result<Option<SealedSlot>, lucid_consensus::Error> {
        self.inner.fetch_slot(slot).await
    }

    async fn submit_evidence(
        &self,
        caller: Option<NodeId>,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        self.inner.submit_evidence(caller, first, second).await
    }

    async fn submit_pool_ops(
        &self,
        caller: Option<NodeId>,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        self.inner.submit_pool_ops(caller, ops).await
    }

    async fn fetch_pool_ops(
        &self,
        query: PoolOpsQuery,
    ) -> Result<PoolOpsPage, lucid_consensus::Error> {
        self.inner.fetch_pool_ops(query).await
    }

    async fn submit_seals(
        &self,
        caller: Option<NodeId>,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        self.inner.submit_seals(caller, seals).await
    }

    async fn fetch_evidence(
        &self,
        query: lucid_api::grpc::EvidenceQuery,
    ) -> Result<lucid_api::grpc::EvidencePage, lucid_consensus::Error> {
        self.inner.fetch_evidence(query).await
    }
}
