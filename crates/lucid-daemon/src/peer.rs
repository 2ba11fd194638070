//! The node's side of the gRPC `Peer` service: the `PeerApi` port of `lucid-api` over the
//! consensus ingest and the `ProofStore`.
//!
//! One `Ingest` decides every received proof; it sits behind an async mutex because a batch's
//! ingest awaits the store, and batches must be decided one after the other (the grace-window
//! index is updated by each).
//!
//! `SubmitProofs` batches go through a bounded pipeline (issue 3), the phases of
//! `lucid_consensus::ingest::pipeline`: a batch is prepared under the ingest lock (decoding and
//! the cheap checks), verified outside of it on a blocking thread (one batch at a time, on every
//! core), then admitted, persisted and
//! settled while holding the persist turn, one batch at a time. So the signatures of one batch
//! are checked while the previous batch is written, and the verdicts are those of the batches
//! ingested one after the other in the order they took the persist turn (the store, which is
//! insert-if-absent, decides which message of a key came first). At most [`PIPELINE_DEPTH`]
//! batches are past the entrance at once; further callers wait there, which is the back-pressure
//! a pushing peer feels, and what bounds the memory held by batches in flight. The ingest lock
//! is not held while the store writes, so the next batch can be prepared meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::gossip::GossipHook;
use crate::services::SharedIngest;

use lucid_api::grpc::{
    EvidencePage, EvidenceQuery, PeerApi, PoolOpsPage, PoolOpsQuery, SealedSlot, SlotDigest,
};
use lucid_consensus::ingest::{BatchReport, Ingest, Outcome, Verdict};
use lucid_consensus::store::{ProofStore, StoredProof};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::message::Message as _;
use lucid_core::{Clock, NodeId, SignedMessage, Slot, SlotRange};

/// How many proofs are read per store page while summarising slots.
const DIGEST_PAGE: usize = 1024;

/// `SubmitProofs` batches in the pipeline at once: one being persisted while the next is
/// verified. More would only queue inside the node; callers beyond it wait at the entrance.
pub const PIPELINE_DEPTH: usize = 2;

/// `PeerApi` over the ingest and the proof store.
pub struct StorePeer {
    ingest: SharedIngest,
    store: Arc<dyn ProofStore>,
    verifier: Arc<Verifier>,
    clock: Arc<dyn Clock>,
    gossip: Option<GossipHook>,
    /// Entrance of the proof pipeline: [`PIPELINE_DEPTH`] permits.
    in_flight: tokio::sync::Semaphore,
    /// Held while a batch's signatures are checked, so batches are verified one at a time on
    /// every core, in the order they were prepared (a fair mutex). Two batches verified at once
    /// would share the cores and finish together, and then neither write would overlap a
    /// verification; one at a time, the first is written while the second is verified.
    verify_turn: tokio::sync::Mutex<()>,
    /// Held from a batch's admission to its verdicts, so batches are decided one at a time
    /// (a fair mutex: in the order they finished verification).
    persist_turn: tokio::sync::Mutex<()>,
    /// Verified batches waiting for the persist turn.
    verified_waiting: AtomicUsize,
}

impl StorePeer {
    /// The peer port with the registry loaded from the store's current registrations.
    pub async fn load(
        params: ConsensusParams,
        store: Arc<dyn ProofStore>,
        verifier: Arc<Verifier>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, lucid_consensus::Error> {
        let mut ingest = Ingest::new(params);
        ingest.load_registrations(store.as_ref()).await?;
        let ingest = Arc::new(tokio::sync::Mutex::new(ingest));
        Ok(StorePeer {
            ingest,
            store,
            verifier,
            clock,
            gossip: None,
            in_flight: tokio::sync::Semaphore::new(PIPELINE_DEPTH),
            verify_turn: tokio::sync::Mutex::new(()),
            persist_turn: tokio::sync::Mutex::new(()),
            verified_waiting: AtomicUsize::new(0),
        })
    }

    /// This peer port with gossip: what it accepts live is queued for push, evidence it records
    /// is forwarded, misbehaviour of a known sender is reported, and `FetchSlot` serves the seals
    /// of the hook's node.
    #[must_use]
    pub fn with_gossip(mut self, hook: GossipHook) -> Self {
        self.gossip = Some(hook);
        self
    }

    /// `SubmitProofs` from `from` (the authenticated caller, when the transport knows it):
    /// ingested live, accepted proofs handed to gossip (not pushed back to `from`), and
    /// misbehaviour reported against `from`.
    pub async fn submit_proofs_from(
        &self,
        from: Option<NodeId>,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        if let Some(gossip) = &self.gossip {
            gossip.metrics().count_in(proofs.iter().map(crate::gossip::wire_size).sum());
        }
        let report = self.ingest_pipelined(proofs).await?;
        for evidence in &report.evidence {
            tracing::warn!(node = %evidence.node, kind = evidence.type_name, "equivocation evidence recorded");
        }
        if let Some(gossip) = &self.gossip {
            gossip.ingested(from, &report);
        }
        Ok(report.outcomes)
    }

    /// One batch through the proof pipeline (see the module doc): the verdicts of
    /// `Ingest::ingest_batch`, with verification overlapping the previous batch's write.
    async fn ingest_pipelined(
        &self,
        proofs: Vec<SignedMessage>,
    ) -> Result<BatchReport, lucid_consensus::Error> {
        let _entered = self.in_flight.acquire().await.map_err(|_| {
            lucid_consensus::Error::Bug(lucid_core::internal!("the proof pipeline was closed"))
        })?;
        let prepared = {
            let ingest = self.ingest.lock().await;
            ingest.prepare_batch(self.clock.wall(), proofs)
        };
        // On a multi-threaded runtime the signatures are checked on a blocking thread, so the
        // previous batch's write goes on meanwhile. A current-thread runtime (the seeded
        // simulation, tests under paused time) verifies in place: a blocking thread finishes at
        // a real-time moment the runtime cannot order, and paused time would advance while it
        // runs, so a seed would no longer replay the same run.
        let verified = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => prepared.verify(&self.verifier),
            _ => {
                let _verifying = self.verify_turn.lock().await;
                let verifier = Arc::clone(&self.verifier);
                tokio::task::spawn_blocking(move || prepared.verify(&verifier)).await.map_err(
                    |error| {
                        lucid_consensus::Error::Bug(lucid_core::internal!(
                            "verifying a proof batch failed: {error}"
                        ))
                    },
                )?
            }
        };
        self.verified_waiting.fetch_add(1, Ordering::Relaxed);
        let _turn = self.persist_turn.lock().await;
        self.verified_waiting.fetch_sub(1, Ordering::Relaxed);
        let admitted = self.ingest.lock().await.admit(verified);
        // The ingest lock is free while the store writes: the next batch is prepared meanwhile.
        let outcomes = admitted.persist(self.store.as_ref()).await?;
        let settled = self.ingest.lock().await.settle(admitted, outcomes)?;
        settled.store_evidence(self.store.as_ref()).await?;
        // Messages that repeat a key of the batch are decided now, under the ingest lock.
        let mut ingest = self.ingest.lock().await;
        ingest.finish(self.store.as_ref(), &self.verifier, settled).await
    }

    /// `SubmitProofs` batches verified and waiting for their turn to be persisted (0 or 1 when
    /// the store keeps up with verification).
    pub fn proofs_waiting_to_persist(&self) -> usize {
        self.verified_waiting.load(Ordering::Relaxed)
    }

    /// `SubmitEvidence` from `from`: new evidence is recorded and forwarded once.
    pub async fn submit_evidence_from(
        &self,
        from: Option<NodeId>,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        let mut ingest = self.ingest.lock().await;
        let now = self.clock.wall();
        let (outcome, evidence) =
            ingest.ingest_evidence(self.store.as_ref(), &self.verifier, now, first, second).await?;
        drop(ingest);
        if let Some(gossip) = &self.gossip {
            if let (Verdict::Accept, Some(evidence)) = (outcome.verdict, &evidence) {
                tracing::warn!(node = %evidence.node, "equivocation evidence received");
                gossip.evidence(from, evidence);
            }
            gossip.report_faults(from, std::slice::from_ref(&outcome));
        }
        Ok(outcome)
    }

    /// The ingest state this peer port judges proofs with, to be shared with the node's own
    /// beacon producer.
    pub fn ingest(&self) -> SharedIngest {
        Arc::clone(&self.ingest)
    }
}

#[async_trait::async_trait]
impl PeerApi for StorePeer {
    async fn submit_proofs(
        &self,
        caller: Option<NodeId>,
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        self.submit_proofs_from(caller, proofs).await
    }

    async fn slot_digests(
        &self,
        range: SlotRange,
    ) -> Result<Vec<SlotDigest>, lucid_consensus::Error> {
        lucid_api::grpc::slot_digests(self.store.as_ref(), range, DIGEST_PAGE).await
    }

    async fn pull_proofs(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
        self.store.proofs_in_range(range, after, limit).await
    }

    async fn submit_registration(
        &self,
        registration: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        let mut ingest = self.ingest.lock().await;
        let now = self.clock.wall();
        let record =
            lucid_consensus::registration::Registration::from_signed_bytes(registration.bytes())
                .ok()
                .map(|(_, record)| record);
        let (outcome, evidence) =
            ingest.ingest_registration(self.store.as_ref(), now, registration).await?;
        drop(ingest);
        if let Some(evidence) = evidence {
            tracing::warn!(node = %evidence.node, "registration equivocation evidence recorded");
        }
        // A record the ingest accepted as the node's current one (signed by the node itself,
        // the highest sequence) enters the peer table at once, not only through `Hello`.
        if let (Verdict::Accept, Some(record), Some(gossip)) =
            (outcome.verdict, record, &self.gossip)
        {
            gossip.directory().registration_accepted(&record);
        }
        Ok(outcome)
    }

    async fn registrations(
        &self,
        after: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<SignedMessage>, lucid_consensus::Error> {
        let records = self.store.current_registrations().await?;
        Ok(records
            .into_iter()
            .filter(|record| after.is_none_or(|after| record.registration.node > after))
            .take(limit)
            .map(|record| record.message)
            .collect())
    }

    async fn registration(
        &self,
        node: NodeId,
    ) -> Result<Option<SignedMessage>, lucid_consensus::Error> {
        let records = self.store.current_registrations().await?;
        Ok(records
            .into_iter()
            .find(|record| record.registration.node == node)
            .map(|record| record.message))
    }

    async fn registered_nodes(&self) -> Result<u64, lucid_consensus::Error> {
        let count = self.ingest.lock().await.registered_count();
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    async fn fetch_slot(&self, slot: Slot) -> Result<Option<SealedSlot>, lucid_consensus::Error> {
        let Some(node) = self.gossip.as_ref().map(GossipHook::node) else { return Ok(None) };
        let Some(stored) = self.store.get_seal(&node, slot).await? else { return Ok(None) };
        let set = crate::gossip::seal::live_set(self.store.as_ref(), slot).await?;
        let digests: Vec<_> = set.iter().map(|proof| proof.digest).collect();
        if u32::try_from(set.len()).ok() != Some(stored.seal.count)
            || lucid_consensus::seal::seal_root(&digests) != stored.seal.root
        {
            // Never serve a set that does not match the seal (rows pruned or damaged): the
            // caller would count it against us, and rightly.
            tracing::warn!(%slot, "stored proofs no longer match the own seal; slot not served");
            return Ok(None);
        }
        Ok(Some(SealedSlot {
            seal: stored.message,
            set: set.into_iter().map(|proof| proof.message).collect(),
        }))
    }

    async fn submit_evidence(
        &self,
        caller: Option<NodeId>,
        first: SignedMessage,
        second: SignedMessage,
    ) -> Result<Outcome, lucid_consensus::Error> {
        self.submit_evidence_from(caller, first, second).await
    }

    async fn submit_pool_ops(
        &self,
        caller: Option<NodeId>,
        ops: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        let Some((gossip, pool_ops)) =
            self.gossip.as_ref().and_then(|gossip| gossip.pool_ops().map(|ops| (gossip, ops)))
        else {
            return Err(lucid_consensus::Error::Bug(lucid_core::internal!(
                "pool ops pushed to a node without a pool op log"
            )));
        };
        gossip.metrics().count_in(ops.iter().map(crate::gossip::wire_size).sum());
        let report = pool_ops.ingest(ops, crate::gossip::ops::OpPath::Live).await?;
        let live_from = pool_ops.current_slot().map_or(Slot(0), crate::gossip::live_from);
        gossip.pool_ops_ingested(caller, &report, live_from);
        Ok(report.outcomes)
    }

    async fn fetch_evidence(
        &self,
        query: EvidenceQuery,
    ) -> Result<EvidencePage, lucid_consensus::Error> {
        lucid_api::grpc::evidence_page(self.store.as_ref(), query).await
    }

    async fn fetch_pool_ops(
        &self,
        query: PoolOpsQuery,
    ) -> Result<PoolOpsPage, lucid_consensus::Error> {
        match self.gossip.as_ref().and_then(GossipHook::pool_ops) {
            Some(pool_ops) => pool_ops.page(query).await,
            // No log: nothing to serve, and nothing the caller could be missing from us.
            None => Ok(PoolOpsPage { in_sync: true, ..PoolOpsPage::default() }),
        }
    }

    async fn submit_seals(
        &self,
        caller: Option<NodeId>,
        seals: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        if let Some(gossip) = &self.gossip {
            gossip.metrics().count_in(seals.iter().map(crate::gossip::wire_size).sum());
        }
        let now = self.clock.wall();
        let ingest = self.ingest.lock().await;
        let params = *ingest.params();
        let floor = params
            .time
            .slot_of(now)
            .map_or(Slot(0), |current| crate::gossip::late_floor(&params, current));
        let mut outcomes = Vec::with_capacity(seals.len());
        for seal in seals {
            outcomes.push(
                crate::gossip::seal::ingest_seal(&ingest, self.store.as_ref(), now, floor, seal)
                    .await?,
            );
        }
        drop(ingest);
        // Seals are not relayed: a node reconciles only with its own gossip peers, whose seals
        // it receives from them directly.
        if let Some(gossip) = &self.gossip {
            gossip.report_faults(caller, &outcomes);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests;
