//! The node's side of the gRPC `Peer` service: the `PeerApi` port of `lucid-api` over the
//! consensus ingest and the `ProofStore`.
//!
//! One `Ingest` decides every received proof; it sits behind an async mutex because a batch's
//! ingest awaits the store, and batches must be decided one after the other (the grace-window
//! index is updated by each).

use std::sync::Arc;

use crate::services::SharedIngest;

use lucid_api::grpc::{PeerApi, SlotDigest};
use lucid_consensus::ingest::{Ingest, Outcome};
use lucid_consensus::store::{ProofStore, StoredProof};
use lucid_consensus::verify::Verifier;
use lucid_consensus::{ConsensusParams, ProofKey};
use lucid_core::{Clock, NodeId, SignedMessage, SlotRange};

/// How many proofs are read per store page while summarising slots.
const DIGEST_PAGE: usize = 1024;

/// `PeerApi` over the ingest and the proof store.
pub struct StorePeer {
    ingest: SharedIngest,
    store: Arc<dyn ProofStore>,
    verifier: Arc<Verifier>,
    clock: Arc<dyn Clock>,
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
        Ok(StorePeer { ingest, store, verifier, clock })
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
        proofs: Vec<SignedMessage>,
    ) -> Result<Vec<Outcome>, lucid_consensus::Error> {
        let mut ingest = self.ingest.lock().await;
        let now = self.clock.wall();
        let report = ingest.ingest_batch(self.store.as_ref(), &self.verifier, now, proofs).await?;
        for evidence in &report.evidence {
            tracing::warn!(node = %evidence.node, kind = evidence.type_name, "equivocation evidence recorded");
        }
        Ok(report.outcomes)
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
}

#[cfg(test)]
mod tests;
