//! Gossip: how accepted proofs, seals and equivocation evidence reach every node
//! (`consensus.md` §6.2–§6.3, `daemon.md` §3 and §6).
//!
//! Three loops, written against the [`PeerTransport`] and [`PeerDirectory`] ports only, so that
//! the same code runs over the gRPC peer client and over a simulated network:
//!
//! - **Push** ([`push`]): every proof the node accepts live (its own beacons through
//!   [`GossipQueue::own_outbox`], and proofs of peers through [`GossipHook::ingested`]) is
//!   queued and pushed in batches of at most [`MAX_BATCH`] within [`GossipConfig::flush_after`]
//!   (50 ms) to every gossip peer except the one it came from. Evidence of equivocation is
//!   forwarded once per node (`SubmitEvidence`), so every node records it. Signed pool ops
//!   that the node logged (its own from the API, and peers' through [`ops::PoolOpIngest`]) are
//!   pushed the same way (`SubmitPoolOps`), and so are the node's own slot seals when it signs
//!   them (`SubmitSeals`, to its gossip peers only, never relayed).
//! - **Seals** ([`seal`]): at the start of slot s + 3 the node signs exactly one `slot-seal` for
//!   slot s over the proofs it accepted live for s, stored write-once; it is never re-signed
//!   after a restart and never signed for a slot already sealed.
//! - **Anti-entropy** ([`anti_entropy`]): every [`GossipConfig::anti_entropy_every`] (60 s,
//!   scaled on test networks) and whenever a peer appears in the directory, the node compares its
//!   per-slot digests over the unsettled window with one peer's, in ranges of at most 720 slots,
//!   and fetches only the slots that differ: slots inside the live grace with `PullProofs` and
//!   the live ingest, older slots with `FetchSlot` and late acceptance through the peer's seal.
//!   The pool op log of the same window is compared by count and root (`FetchPoolOps`) and only
//!   a differing log is fetched, in pages.
//!   Its first round with a peer that (re)appeared, at start for every peer, begins by pushing
//!   the node's own proofs of the live grace again: a node killed after storing a proof and
//!   before pushing it would otherwise leave peers without it (receivers answer `Duplicate` to
//!   what they hold). A round whose digests all agree below the grace marks the store as
//!   reconciled ([`anti_entropy::ReconciledMark`]), which the tally keeper waits for before it
//!   settles an epoch that ended while the node was down.
//!   The equivocation evidence of the window is compared the same way (`FetchEvidence`): a lost
//!   evidence push is recovered there, since both sides keep the first of the two conflicting
//!   proofs and their slot digests agree.
//!
//! The queues are bounded and never block: a full queue drops the item and counts it
//! ([`GossipMetrics`]); anti-entropy recovers what push lost. Peers' misbehaviour found while
//! ingesting what they sent is reported to the directory as a [`PeerFault`].
//!
//! Entry point: build a [`GossipQueue`] first (its [`GossipHook`] goes into the peer service
//! with `StorePeer::with_gossip`, its own-proof outbox into the beacon producer), then
//! [`spawn`] the loops with the same queue. `Node::spawn_services` does both halves from
//! `ServiceWiring::gossip`.
//!
//! # Invariants
//! - Nothing a peer sends is stored without passing the consensus ingest; nothing is gossiped
//!   that the node did not accept live itself.
//! - A producer handing an item to gossip never waits: `try_send`, drop and count.
//! - Work per anti-entropy round is bounded (digest calls, slots fetched, pages per slot).

pub mod anti_entropy;
pub mod metrics;
pub mod ops;
pub mod push;
pub mod seal;

use std::sync::Arc;
use std::time::Duration;

use lucid_api::grpc::MAX_BATCH;
use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::{BatchReport, Outcome, RejectReason, Verdict};
use lucid_consensus::store::{Evidence, ProofStore};
use lucid_consensus::verify::Verifier;
use lucid_core::{Clock, NodeId, NodeKey, SignedMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::network::{PeerDirectory, PeerFault, PeerTransport};
use crate::services::SharedIngest;
use crate::services::metrics::ServiceMetrics;
use crate::services::runner::{ServiceStates, spawn_supervised};

pub use metrics::GossipMetrics;

/// Anti-entropy period on mainnet (`daemon.md` §3), scaled to the slot length on test networks.
pub const ANTI_ENTROPY_EVERY_MS: u64 = 60_000;

/// Tunables of the gossip loops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// Capacity of the queue of peers' accepted proofs and evidence waiting to be pushed.
    pub queue_capacity: usize,
    /// Capacity of the queue of the node's own accepted proofs.
    pub own_capacity: usize,
    /// Most proofs in one pushed batch (at most [`MAX_BATCH`]).
    pub batch_max: usize,
    /// A batch is pushed at most this long after its first proof was queued.
    pub flush_after: Duration,
    /// Time between two periodic anti-entropy rounds.
    pub anti_entropy_every: Duration,
    /// How often the directory is looked at for peers that (re)appeared.
    pub poll_every: Duration,
    /// Most slots fetched from a peer in one round.
    pub max_slots_per_round: usize,
    /// Most pages of `PullProofs` per slot in one round.
    pub max_pages_per_slot: usize,
}

impl GossipConfig {
    /// The defaults of `daemon.md` for `params`' network: 50 ms flush, anti-entropy every 60 s
    /// scaled to the slot length (at least 100 ms), the directory looked at six times per period.
    pub fn for_network(params: &ConsensusParams) -> Self {
        let every_ms = params.time.scale_ms(ANTI_ENTROPY_EVERY_MS).max(100);
        GossipConfig {
            queue_capacity: 8 * MAX_BATCH,
            own_capacity: 256,
            batch_max: MAX_BATCH,
            flush_after: Duration::from_millis(50),
            anti_entropy_every: Duration::from_millis(every_ms),
            poll_every: Duration::from_millis((every_ms / 6).max(10)),
            max_slots_per_round: 64,
            max_pages_per_slot: 8,
        }
    }
}

/// What goes from the ingest paths to the pusher.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A proof accepted live, and the peer it came from (not pushed back there).
    Proof { message: SignedMessage, from: Option<NodeId> },
    /// Evidence to forward once, and the peer it came from.
    Evidence { evidence: Evidence, from: Option<NodeId> },
    /// A signed pool op newly logged, and the peer it came from.
    PoolOp { message: SignedMessage, from: Option<NodeId> },
    /// A slot seal newly stored (the node's own, or a peer's), and the peer it came from.
    Seal { message: SignedMessage, from: Option<NodeId> },
}

/// The handle the ingest paths (peer service, anti-entropy) give their results to: accepted
/// proofs and evidence are queued for the pusher, misbehaviour is reported to the directory.
/// Cheap to clone; never blocks.
#[derive(Clone)]
pub struct GossipHook {
    node: NodeId,
    outgoing: mpsc::Sender<Outgoing>,
    directory: Arc<dyn PeerDirectory>,
    metrics: Arc<GossipMetrics>,
    /// The node's pool op log, when the node keeps one (`GossipQueue::with_pool_ops`).
    pool_ops: Option<Arc<ops::PoolOpIngest>>,
    /// How far anti-entropy has reconciled the store with a peer's since this start.
    reconciled: Arc<anti_entropy::ReconciledMark>,
}

impl std::fmt::Debug for GossipHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipHook").field("node", &self.node).finish_non_exhaustive()
    }
}

/// The fault a rejection proves against the peer that sent the message, if any.
///
/// `Equivocation` is misbehaviour of the message's signer, not of the peer that relayed it: an
/// honest node forwards the first of two conflicting proofs it saw, and the receiver may hold the
/// other one. It is recorded as evidence instead of being scored against the relay.
pub fn fault_of(reason: RejectReason) -> Option<PeerFault> {
    if !reason.is_misbehaviour() || reason == RejectReason::Equivocation {
        return None;
    }
    Some(match reason {
        RejectReason::BadSignature => PeerFault::BadSignature,
        _ => PeerFault::InvalidMessage,
    })
}

impl GossipHook {
    /// The node this hook gossips for.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The metrics of the gossip loops.
    pub fn metrics(&self) -> &Arc<GossipMetrics> {
        &self.metrics
    }

    /// The directory misbehaviour is reported to.
    pub fn directory(&self) -> &Arc<dyn PeerDirectory> {
        &self.directory
    }

    /// How far anti-entropy has reconciled the store since this start.
    pub fn reconciled(&self) -> &Arc<anti_entropy::ReconciledMark> {
        &self.reconciled
    }

    fn offer(&self, item: Outgoing) {
        if self.outgoing.try_send(item).is_err() {
            self.metrics.count_drops(1);
        }
    }

    /// A batch ingested live from `from` (`None`: the sender is not known): its accepted
    /// proofs are queued for push, its evidence for forwarding, its misbehaviour reported.
    pub fn ingested(&self, from: Option<NodeId>, report: &BatchReport) {
        for accepted in &report.accepted {
            self.offer(Outgoing::Proof { message: accepted.message.clone(), from });
        }
        self.ingested_late(from, report);
    }

    /// A batch ingested through late acceptance: accepted proofs are NOT pushed (every peer
    /// would refuse them as stale; anti-entropy spreads them), evidence is forwarded and
    /// misbehaviour reported.
    pub fn ingested_late(&self, from: Option<NodeId>, report: &BatchReport) {
        for evidence in &report.evidence {
            self.evidence(from, evidence);
        }
        self.report_faults(from, &report.outcomes);
    }

    /// Evidence recorded from `from`'s message, to be forwarded once to the other peers.
    pub fn evidence(&self, from: Option<NodeId>, evidence: &Evidence) {
        self.offer(Outgoing::Evidence { evidence: evidence.clone(), from });
    }

    /// The node's pool op ingest, when it keeps a pool op log.
    pub fn pool_ops(&self) -> Option<&Arc<ops::PoolOpIngest>> {
        self.pool_ops.as_ref()
    }

    /// A signed pool op the node logged (from `from`, `None` for its own API), to be pushed to
    /// the other peers.
    pub fn pool_op(&self, from: Option<NodeId>, message: SignedMessage) {
        self.offer(Outgoing::PoolOp { message, from });
    }

    /// Pool ops ingested from `from`: the newly logged ones are pushed on, misbehaviour is
    /// reported. Ops older than the live grace are not pushed (every peer would refuse them as
    /// stale); anti-entropy spreads them.
    pub fn pool_ops_ingested(
        &self,
        from: Option<NodeId>,
        report: &ops::PoolOpReport,
        live_from: lucid_core::Slot,
    ) {
        for (slot, message) in &report.accepted {
            if *slot >= live_from {
                self.pool_op(from, message.clone());
            }
        }
        self.report_faults(from, &report.outcomes);
    }

    /// A slot seal the node signed and stored (`from` is `None`), to be pushed to its gossip
    /// peers.
    pub fn seal(&self, from: Option<NodeId>, message: SignedMessage) {
        self.offer(Outgoing::Seal { message, from });
    }

    /// Reports every verdict of `outcomes` that proves `from` misbehaved.
    pub fn report_faults(&self, from: Option<NodeId>, outcomes: &[Outcome]) {
        let Some(peer) = from else { return };
        for outcome in outcomes {
            if let Verdict::Reject(reason) = outcome.verdict
                && let Some(fault) = fault_of(reason)
            {
                self.metrics.count_fault();
                tracing::debug!(%peer, %reason, "peer sent a message that proves misbehaviour");
                self.directory.report(peer, fault);
            }
        }
    }
}

/// The bounded queues between the ingest paths and the pusher; build it before the peer service
/// (which takes its [`hook`](Self::hook)) and hand it to [`spawn`].
pub struct GossipQueue {
    hook: GossipHook,
    outgoing: mpsc::Receiver<Outgoing>,
    own_tx: mpsc::Sender<SignedMessage>,
    own_rx: mpsc::Receiver<SignedMessage>,
}

impl GossipQueue {
    /// Empty queues of node `node`, reporting misbehaviour to `directory`.
    pub fn new(node: NodeId, directory: Arc<dyn PeerDirectory>, config: &GossipConfig) -> Self {
        let (tx, outgoing) = mpsc::channel(config.queue_capacity.max(1));
        let (own_tx, own_rx) = mpsc::channel(config.own_capacity.max(1));
        let metrics = Arc::new(GossipMetrics::default());
        GossipQueue {
            hook: GossipHook {
                node,
                outgoing: tx,
                directory,
                metrics,
                pool_ops: None,
                reconciled: Arc::new(anti_entropy::ReconciledMark::default()),
            },
            outgoing,
            own_tx,
            own_rx,
        }
    }

    /// These queues with the node's pool op log: the peer service takes pushed pool ops into
    /// it, anti-entropy reconciles it, and what it logs is pushed on.
    #[must_use]
    pub fn with_pool_ops(mut self, pool_ops: ops::PoolOpIngest) -> Self {
        self.hook.pool_ops = Some(Arc::new(pool_ops));
        self
    }

    /// The hook for the peer service (`StorePeer::with_gossip`).
    pub fn hook(&self) -> GossipHook {
        self.hook.clone()
    }

    /// The outbox of the node's own accepted proofs (the beacon producer's `outbox`).
    pub fn own_outbox(&self) -> mpsc::Sender<SignedMessage> {
        self.own_tx.clone()
    }

    /// The metrics of the gossip loops.
    pub fn metrics(&self) -> Arc<GossipMetrics> {
        Arc::clone(&self.hook.metrics)
    }

    /// How far anti-entropy has reconciled the store since this start: the tally keeper waits
    /// for it before settling an epoch that ended while the node was down
    /// (`TallyKeeper::with_reconciliation`).
    pub fn reconciliation(&self) -> Arc<anti_entropy::ReconciledMark> {
        Arc::clone(&self.hook.reconciled)
    }
}

/// What the gossip loops need besides the queue.
pub struct GossipDeps {
    /// The network's parameters.
    pub params: ConsensusParams,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// The node's key (signs seals).
    pub key: Arc<NodeKey>,
    /// The proof store (also holds seals).
    pub store: Arc<dyn ProofStore>,
    /// The node's ingest, shared with the peer service and the beacon producer.
    pub ingest: SharedIngest,
    /// The verifier of that ingest.
    pub verifier: Arc<Verifier>,
    /// How peers are called.
    pub transport: Arc<dyn PeerTransport>,
    /// Tunables.
    pub config: GossipConfig,
}

/// What the node needs to run gossip: `ServiceWiring::gossip`.
pub struct GossipWiring {
    /// How peers are called (the gRPC peer client, or a simulated network).
    pub transport: Arc<dyn PeerTransport>,
    /// The queue whose hook the peer service was built with (`StorePeer::with_gossip`); it
    /// holds the peer directory.
    pub queue: GossipQueue,
    /// Tunables ([`GossipConfig::for_network`]).
    pub config: GossipConfig,
}

/// Where the loops run: the node's tracker, service states and loop metrics, and the
/// cancellation token whose children stop them.
pub struct Supervision<'a> {
    /// Every task is spawned on it.
    pub tracker: &'a TaskTracker,
    /// States of the supervised loops (seal signer, anti-entropy).
    pub states: Arc<ServiceStates>,
    /// Tick counters of the supervised loops.
    pub loops: Arc<ServiceMetrics>,
    /// Cancelled at shutdown.
    pub cancel: &'a CancellationToken,
}

/// Starts the pusher, the seal signer and anti-entropy for `queue`.
pub fn spawn(deps: GossipDeps, queue: GossipQueue, supervision: Supervision<'_>) {
    let GossipQueue { hook, outgoing, own_tx, own_rx } = queue;
    // Only producers hold the own outbox: when none is left, the pusher stops listening to it.
    drop(own_tx);
    let pusher = push::Pusher::new(hook.clone(), Arc::clone(&deps.transport), deps.config.clone());
    supervision.tracker.spawn(pusher.run(outgoing, own_rx, supervision.cancel.child_token()));
    let signer = seal::SealSigner::new(
        deps.params,
        Arc::clone(&deps.key),
        Arc::clone(&deps.store),
        Arc::clone(hook.metrics()),
    )
    .gossiping(hook.clone());
    spawn_supervised(
        supervision.tracker,
        Arc::clone(&supervision.states),
        signer,
        Arc::clone(&deps.clock),
        Arc::clone(&supervision.loops),
        supervision.cancel.child_token(),
    );
    let clock = Arc::clone(&deps.clock);
    let anti_entropy = anti_entropy::AntiEntropy::new(deps, hook);
    spawn_supervised(
        supervision.tracker,
        supervision.states,
        anti_entropy,
        clock,
        supervision.loops,
        supervision.cancel.child_token(),
    );
}

/// The late-acceptance floor at `current` (`consensus.md` §6.3): the first slot of the window of
/// the oldest unsettled tally.
pub fn late_floor(params: &ConsensusParams, current: lucid_core::Slot) -> lucid_core::Slot {
    let time = params.time;
    lucid_core::Slot(
        time.epoch_start(time.epoch_of(current))
            .map_or(0, |start| start.0)
            .saturating_sub(time.window_slots()),
    )
}

/// The first slot of the live grace at `current`.
pub fn live_from(current: lucid_core::Slot) -> lucid_core::Slot {
    lucid_core::Slot(current.0.saturating_sub(lucid_consensus::params::INGEST_GRACE_SLOTS))
}

/// The size of a signed message on the wire, for the byte counters.
pub(crate) fn wire_size(message: &SignedMessage) -> u64 {
    u64::try_from(message.bytes().len()).unwrap_or(u64::MAX).saturating_add(64)
}

#[cfg(test)]
pub(crate) mod tests;
