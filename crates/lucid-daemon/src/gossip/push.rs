//! The pusher: batches what the node accepted live and sends it to every gossip peer except the
//! one it came from; forwards each piece of evidence once.
//!
//! A batch is flushed when it holds [`GossipConfig::batch_max`] proofs or
//! [`GossipConfig::flush_after`] after its first proof, whichever comes first. Every peer call
//! of a flush runs as its own task, and the next batch is collected at once, without waiting
//! for the calls of the previous one: a peer that does not answer (a lost request waits for the
//! transport's timeout, seconds) must not hold up the pushes to every other peer, or each hop of
//! a lossy network would cost a timeout and live gossip would spread slower than the grace
//! window lasts. Memory stays bounded per peer: a peer with [`MAX_IN_FLIGHT_PER_PEER`] calls
//! still in flight is skipped for the next batches (its items are counted as dropped;
//! anti-entropy recovers them), and a producer never waits. Pool ops and seals ride in the same
//! batches, each kind in its own call (`SubmitPoolOps`, `SubmitSeals`), never sent back to the
//! peer they came from.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;

use lucid_core::{Digest, NodeId, SignedMessage};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{GossipConfig, GossipHook, Outgoing, wire_size};
use crate::network::PeerTransport;
use lucid_consensus::store::Evidence;

/// How many forwarded evidence identities are remembered, so each is forwarded once.
const EVIDENCE_MEMORY: usize = 4_096;

/// Most push calls in flight to one peer. On a link that loses one call in ten, calls that wait
/// for a 2 s timeout overlap with those that answer: at 20 batches a second about a dozen are in
/// flight, so this leaves room, while a dead peer holds at most this many batches.
pub const MAX_IN_FLIGHT_PER_PEER: usize = 32;

/// A set that forgets its oldest entries beyond a bound.
#[derive(Debug, Default)]
pub(crate) struct BoundedSet<T> {
    order: VecDeque<T>,
    members: HashSet<T>,
    bound: usize,
}

impl<T: std::hash::Hash + Eq + Clone> BoundedSet<T> {
    pub(crate) fn new(bound: usize) -> Self {
        BoundedSet { order: VecDeque::new(), members: HashSet::new(), bound: bound.max(1) }
    }

    /// Inserts `item`; `false` if it was already there.
    pub(crate) fn insert(&mut self, item: T) -> bool {
        if !self.members.insert(item.clone()) {
            return false;
        }
        self.order.push_back(item);
        while self.order.len() > self.bound {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
        true
    }
}

/// The push loop's state.
pub(crate) struct Pusher {
    hook: GossipHook,
    transport: Arc<dyn PeerTransport>,
    config: GossipConfig,
    forwarded: BoundedSet<(Digest, Digest)>,
    /// Every push call still running.
    calls: JoinSet<()>,
    /// Calls in flight per peer: a call holds one of [`MAX_IN_FLIGHT_PER_PEER`] permits until
    /// its task ends, however it ends (answered, failed, or aborted at shutdown).
    in_flight: HashMap<NodeId, Arc<Semaphore>>,
}

/// One collected batch.
#[derive(Default)]
struct Batch {
    proofs: Vec<(SignedMessage, Option<NodeId>)>,
    evidence: Vec<(Evidence, Option<NodeId>)>,
    pool_ops: Vec<(SignedMessage, Option<NodeId>)>,
    seals: Vec<(SignedMessage, Option<NodeId>)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.proofs.is_empty()
            && self.evidence.is_empty()
            && self.pool_ops.is_empty()
            && self.seals.is_empty()
    }

    fn is_full(&self, batch_max: usize) -> bool {
        self.proofs.len() >= batch_max
            || self.pool_ops.len() >= batch_max
            || self.seals.len() >= lucid_api::grpc::MAX_SEAL_BATCH
    }
}

/// The messages of `items` not received from `peer`.
fn except_from(items: &[(SignedMessage, Option<NodeId>)], peer: NodeId) -> Vec<SignedMessage> {
    items
        .iter()
        .filter(|(_, from)| *from != Some(peer))
        .map(|(message, _)| message.clone())
        .collect()
}

impl Pusher {
    /// A pusher sending through `transport` to the peers of `hook`'s directory.
    pub(crate) fn new(
        hook: GossipHook,
        transport: Arc<dyn PeerTransport>,
        config: GossipConfig,
    ) -> Self {
        Pusher {
            hook,
            transport,
            config,
            forwarded: BoundedSet::new(EVIDENCE_MEMORY),
            calls: JoinSet::new(),
            in_flight: HashMap::new(),
        }
    }

    /// Runs `call` to `peer` as its own task, unless `peer` has [`MAX_IN_FLIGHT_PER_PEER`] calls
    /// in flight already: then its `items` are counted as dropped.
    fn send(
        &mut self,
        peer: NodeId,
        items: usize,
        call: impl Future<Output = ()> + Send + 'static,
    ) {
        let permits = self
            .in_flight
            .entry(peer)
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_PEER)));
        let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
            self.hook.metrics().count_drops(items);
            return;
        };
        self.calls.spawn(async move {
            let _permit = permit;
            call.await;
        });
    }

    /// Frees the tasks of finished calls, and forgets peers with nothing in flight once many
    /// peers were seen.
    fn reap(&mut self) {
        while self.calls.try_join_next().is_some() {}
        if self.in_flight.len() > 1_024 {
            self.in_flight
                .retain(|_, permits| permits.available_permits() < MAX_IN_FLIGHT_PER_PEER);
        }
    }

    fn add(&mut self, batch: &mut Batch, item: Outgoing) {
        match item {
            Outgoing::Proof { message, from } => batch.proofs.push((message, from)),
            Outgoing::PoolOp { message, from } => batch.pool_ops.push((message, from)),
            Outgoing::Seal { message, from } => batch.seals.push((message, from)),
            Outgoing::Evidence { evidence, from } => {
                // Once per node: a node that records the same evidence again (every conflicting
                // push repeats it) does not forward it again, so forwarding ends.
                if self.forwarded.insert(evidence.digests()) {
                    batch.evidence.push((evidence, from));
                }
            }
        }
    }

    /// Runs until `cancel` fires or both queues are closed.
    pub(crate) async fn run(
        mut self,
        mut outgoing: mpsc::Receiver<Outgoing>,
        mut own: mpsc::Receiver<SignedMessage>,
        cancel: CancellationToken,
    ) {
        let (mut outgoing_open, mut own_open) = (true, true);
        let batch_max = self.config.batch_max.clamp(1, lucid_api::grpc::MAX_BATCH);
        loop {
            let mut batch = Batch::default();
            // Started by the first item of the batch: the batch leaves at the latest then.
            let mut timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
            loop {
                if !outgoing_open && !own_open && batch.is_empty() {
                    return;
                }
                let wait = async {
                    match timer.as_mut() {
                        Some(timer) => timer.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    item = own.recv(), if own_open => match item {
                        Some(message) => self.add(&mut batch, Outgoing::Proof { message, from: None }),
                        None => own_open = false,
                    },
                    item = outgoing.recv(), if outgoing_open => match item {
                        Some(item) => self.add(&mut batch, item),
                        None => outgoing_open = false,
                    },
                    () = wait => break,
                }
                if batch.is_full(batch_max) {
                    break;
                }
                if timer.is_none() && !batch.is_empty() {
                    timer = Some(Box::pin(tokio::time::sleep(self.config.flush_after)));
                }
                if !outgoing_open && !own_open {
                    break;
                }
            }
            if !batch.is_empty() {
                self.flush(batch, batch_max);
            }
        }
    }

    /// Starts the calls that send `batch` to every gossip peer, each proof except to the peer it
    /// came from; returns without waiting for them.
    fn flush(&mut self, batch: Batch, batch_max: usize) {
        self.reap();
        let me = self.hook.node();
        let metrics = Arc::clone(self.hook.metrics());
        for _ in &batch.evidence {
            metrics.count_evidence();
        }
        for peer in self.hook.directory().gossip_peers() {
            if peer == me {
                continue;
            }
            let proofs = except_from(&batch.proofs, peer);
            for chunk in proofs.chunks(batch_max) {
                let chunk = chunk.to_vec();
                metrics.count_out(chunk.iter().map(wire_size).sum());
                let transport = Arc::clone(&self.transport);
                self.send(peer, chunk.len(), async move {
                    if let Err(error) = transport.submit_proofs(peer, chunk).await {
                        tracing::debug!(%peer, %error, "gossip push failed; anti-entropy recovers");
                    }
                });
            }
            let ops = except_from(&batch.pool_ops, peer);
            for chunk in ops.chunks(batch_max) {
                let chunk = chunk.to_vec();
                metrics.count_out(chunk.iter().map(wire_size).sum());
                let transport = Arc::clone(&self.transport);
                self.send(peer, chunk.len(), async move {
                    if let Err(error) = transport.submit_pool_ops(peer, chunk).await {
                        tracing::debug!(%peer, %error, "pool op push failed; anti-entropy recovers");
                    }
                });
            }
            let seals = except_from(&batch.seals, peer);
            for chunk in seals.chunks(lucid_api::grpc::MAX_SEAL_BATCH) {
                let chunk = chunk.to_vec();
                metrics.count_out(chunk.iter().map(wire_size).sum());
                let transport = Arc::clone(&self.transport);
                self.send(peer, chunk.len(), async move {
                    if let Err(error) = transport.submit_seals(peer, chunk).await {
                        tracing::debug!(%peer, %error, "seal push failed");
                    }
                });
            }
            for (evidence, from) in &batch.evidence {
                if *from == Some(peer) {
                    continue;
                }
                let (first, second) = (evidence.first.clone(), evidence.second.clone());
                metrics.count_out(wire_size(&first).saturating_add(wire_size(&second)));
                let transport = Arc::clone(&self.transport);
                self.send(peer, 1, async move {
                    if let Err(error) = transport.submit_evidence(peer, first, second).await {
                        tracing::debug!(%peer, %error, "evidence forward failed");
                    }
                });
            }
        }
    }
}
