//! A STAND-IN gossip protocol, not the node's: it exists only to exercise the simulated network
//! until the real gossip of `lucid-daemon` is plugged in (see the `sim` module documentation).
//!
//! - **Push**: every proof in the node's feed (its own, and what peers pushed to it) is sent, in
//!   batches gathered for 50 ms, to every neighbour, each push its own task so a dead peer costs
//!   only its timeout.
//! - **Pull**: periodically, one random neighbour's slot digests for the closed slots of the
//!   live grace window are compared with the node's own, and every slot where the neighbour
//!   holds a different set that is not smaller is pulled whole and ingested live. Nothing older than the grace window can be recovered (no seals, no late
//!   path), and equivocation evidence is not spread: both are the real protocol's job, so
//!   [`StandInGossip`] says so through [`NodeProtocol::accepts_late`] and
//!   [`NodeProtocol::gossips_evidence`].

use std::sync::Arc;
use std::time::Duration;

use lucid_api::grpc::{MAX_BATCH, MAX_PULL_PAGE};
use lucid_consensus::params::INGEST_GRACE_SLOTS;
use lucid_core::message::Message as _;
use lucid_core::{NodeId, SignedMessage, Slot, SlotRange};
use lucid_daemon::network::PeerTransport;
use tokio_util::sync::CancellationToken;

use super::network::fault_of;
use super::protocol::{NodeContext, NodeProtocol};
use super::rng::SimRng;

/// The STAND-IN protocol (push to all neighbours, naive digest pull in the grace window).
#[derive(Clone, Copy, Debug)]
pub struct StandInGossip {
    /// How long pushes are gathered into one batch.
    pub batch_ms: u64,
    /// Time between two pulls, in thousandths of a slot.
    pub pull_every_per_mille_slot: u64,
}

impl Default for StandInGossip {
    fn default() -> Self {
        StandInGossip { batch_ms: 50, pull_every_per_mille_slot: 250 }
    }
}

impl NodeProtocol for StandInGossip {
    fn name(&self) -> &'static str {
        "stand-in gossip (push to all neighbours, naive pull in the grace window)"
    }

    fn gossips_evidence(&self) -> bool {
        false
    }

    fn accepts_late(&self) -> bool {
        false
    }

    fn start(&self, context: NodeContext) {
        let NodeContext {
            node,
            params,
            transport,
            directory,
            ingest,
            store,
            verifier,
            clock,
            accepted,
            seed,
            cancel,
            tracker,
            ..
        } = context;
        let slot_ms = params.time.slot_ms();
        let shared = Arc::new(Shared {
            node,
            params,
            transport,
            directory,
            ingest,
            store,
            verifier,
            clock,
            cancel,
            tracker: tracker.clone(),
        });
        let batch = Duration::from_millis(self.batch_ms);
        tracker.spawn(push_loop(Arc::clone(&shared), accepted, batch));
        let every =
            Duration::from_millis((slot_ms * self.pull_every_per_mille_slot / 1_000).max(1));
        tracker.spawn(pull_loop(shared, SimRng::new(seed), every));
    }
}

/// The parts of the context both loops use.
struct Shared {
    node: NodeId,
    params: lucid_consensus::ConsensusParams,
    transport: Arc<dyn PeerTransport>,
    directory: Arc<dyn lucid_daemon::network::PeerDirectory>,
    ingest: lucid_daemon::services::SharedIngest,
    store: Arc<dyn lucid_consensus::store::ProofStore>,
    verifier: Arc<lucid_consensus::verify::Verifier>,
    clock: Arc<dyn lucid_core::Clock>,
    cancel: CancellationToken,
    tracker: tokio_util::task::TaskTracker,
}

impl Shared {
    /// Sends `batch` to every neighbour except `skip`, one task per neighbour.
    fn push(self: &Arc<Self>, batch: &[SignedMessage], skip: Option<NodeId>) {
        for chunk in batch.chunks(MAX_BATCH) {
            for peer in self.directory.gossip_peers() {
                if Some(peer) == skip || peer == self.node {
                    continue;
                }
                let shared = Arc::clone(self);
                let chunk = chunk.to_vec();
                self.tracker.spawn(async move {
                    tokio::select! {
                        biased;
                        () = shared.cancel.cancelled() => {}
                        // A failed push is not retried: the pull repairs what it missed.
                        _ = shared.transport.submit_proofs(peer, chunk) => {}
                    }
                });
            }
        }
    }

    /// One pull from `peer`: digests of the live window, then every differing slot whole.
    async fn pull_once(self: &Arc<Self>, peer: NodeId) {
        let Ok(current) = self.params.time.slot_of(self.clock.wall()) else { return };
        // The closed slots of the grace window: the current one is still filling, and push
        // carries it.
        let range =
            SlotRange { start: Slot(current.0.saturating_sub(INGEST_GRACE_SLOTS)), end: current };
        if range.start >= range.end {
            return;
        }
        let Ok(theirs) = self.transport.slot_digests(peer, range).await else { return };
        let Ok(ours) =
            lucid_api::grpc::slot_digests(self.store.as_ref(), range, MAX_PULL_PAGE).await
        else {
            return;
        };
        for digest in theirs {
            // Naive: pull a slot whole when the peer's set differs and is not smaller (a smaller
            // one pulls from us instead).
            let held = ours.iter().find(|o| o.slot == digest.slot);
            let differs = held.is_none_or(|o| o.root != digest.root);
            if !range.contains(digest.slot)
                || !differs
                || digest.count < held.map_or(0, |o| o.count)
            {
                continue;
            }
            let slot = SlotRange { start: digest.slot, end: Slot(digest.slot.0.saturating_add(1)) };
            let mut after = None;
            loop {
                let Ok(page) = self.transport.pull_proofs(peer, slot, after, MAX_PULL_PAGE).await
                else {
                    return;
                };
                let full = page.len() >= MAX_PULL_PAGE;
                // The cursor is the key of the last proof served, whatever its verdict; a page
                // that does not decode ends the pull (the peer answered nonsense).
                let cursor = page.last().and_then(|last| {
                    lucid_consensus::TaskProof::from_signed_bytes(last.bytes())
                        .ok()
                        .map(|(_, p)| p.key())
                });
                if page.is_empty() {
                    break;
                }
                let report = {
                    let mut ingest = self.ingest.lock().await;
                    let now = self.clock.wall();
                    ingest.ingest_batch(self.store.as_ref(), &self.verifier, now, page).await
                };
                let Ok(report) = report else { return };
                for outcome in &report.outcomes {
                    if let Some(fault) = fault_of(outcome.verdict) {
                        self.directory.report(peer, fault);
                    }
                }
                let fresh: Vec<SignedMessage> =
                    report.accepted.iter().map(|p| p.message.clone()).collect();
                self.push(&fresh, Some(peer));
                match cursor {
                    Some(key) if full && after != Some(key) => after = Some(key),
                    _ => break,
                }
            }
        }
    }
}

async fn push_loop(
    shared: Arc<Shared>,
    mut accepted: tokio::sync::mpsc::Receiver<SignedMessage>,
    batch: Duration,
) {
    loop {
        let first = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            first = accepted.recv() => first,
        };
        let Some(first) = first else { return };
        let mut pending = vec![first];
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(batch) => {}
        }
        while pending.len() < MAX_BATCH * 4 {
            match accepted.try_recv() {
                Ok(next) => pending.push(next),
                Err(_) => break,
            }
        }
        shared.push(&pending, None);
    }
}

async fn pull_loop(shared: Arc<Shared>, mut rng: SimRng, every: Duration) {
    loop {
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let peers = shared.directory.gossip_peers();
        if peers.is_empty() {
            continue;
        }
        let peer = peers[rng.index(peers.len())];
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return,
            () = shared.pull_once(peer) => {}
        }
    }
}
