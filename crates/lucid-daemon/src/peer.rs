//! The node's side of the gRPC `Peer` service: the `PeerApi` port of `lucid-api` over the
//! consensus ingest and the `ProofStore`.
//!
//! One `Ingest` decides every received proof; it sits behind an async mutex because a batch's
//! ingest awaits the store, and batches must be decided one after the other (the grace-window
//! index is updated by each).

use std::sync::Arc;

use crate::gossip::GossipHook;
use crate::services::SharedIngest;

use lucid_api::grpc::{PeerApi, SealedSlot, SlotDigest};
use lucid_consensus::ingest::{Ingest, Outcome, Verdict};
use lucid_consensus::store::{ProofStore, StoredProof};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::{Clock, NodeId, SignedMessage, Slot, SlotRange};

/// How many proofs are read per store page while summarising slots.
const DIGEST_PAGE: usize = 1024;

/// `PeerApi` over the ingest and the proof store.
pub struct StorePeer {
    ingest: SharedIngest,
    store: Arc<dyn ProofStore>,
    verifier: Arc<Verifier>,
    clock: Arc<dyn Clock>,
    gossip: Option<GossipHook>,
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
        Ok(StorePeer { ingest, store, verifier, clock, gossip: None })
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
        let mut ingest = self.ingest.lock().await;
        let now = self.clock.wall();
        let report = ingest.ingest_batch(self.store.as_ref(), &self.verifier, now, proofs).await?;
        drop(ingest);
        for evidence in &report.evidence {
            tracing::warn!(node = %evidence.node, kind = evidence.type_name, "equivocation evidence recorded");
        }
        if let Some(gossip) = &self.gossip {
            gossip.ingested(from, &report);
        }
        Ok(report.outcomes)
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
        let (outcome, evidence) =
            ingest.ingest_registration(self.store.as_ref(), now, registration).await?;
        if let Some(evidence) = evidence {
            tracing::warn!(node = %evidence.node, "registration equivocation evidence recorded");
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
}

#[cfg(test)]
mod tests;
