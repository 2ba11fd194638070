//! Work proofs from hosted sessions (`consensus.md` §5 "Emission"): for slot s, at
//! `slot_start(s) + 110 s` (scaled on test networks), the node signs a `relay_bandwidth` proof of
//! the bytes and sessions it hosted and a `validation_signature` proof of the payments it
//! validated since the previous snapshot, and ingests them like any own proof (so they are
//! stored, gossiped and counted in the tally).
//!
//! - **No activity, no proof.** An empty snapshot signs nothing; a zero field does not make a
//!   proof of its kind.
//! - **Capped.** Values above the consensus caps (`MAX_RELAY_BYTES`, `MAX_RELAY_SESSIONS`,
//!   `MAX_VALIDATED_SESSIONS`) are clamped to the cap; the excess is dropped, since a slot can
//!   never claim more and a later slot must not claim work it did not do.
//! - **Never two for one key.** A proof of the node's own for (slot, kind) already in the store
//!   (a restart within the slot) is never signed again with other bytes: that would be an
//!   equivocation. The activity of such a slot goes to the next one.
//! - **Never for a past slot.** The signing time is re-read and must lie in the slot.

use std::sync::Arc;

use lucid_consensus::ConsensusParams;
use lucid_consensus::ingest::Verdict;
use lucid_consensus::proof::{
    MAX_RELAY_BYTES, MAX_RELAY_SESSIONS, MAX_VALIDATED_SESSIONS, ProofKey, ProofValue, TaskProof,
};
use lucid_consensus::store::ProofStore;
use lucid_consensus::verify::Verifier;
use lucid_core::message::Message;
use lucid_core::{Clock, NodeId, NodeKey, SignedMessage, Slot, UnixMillis};
use tokio::sync::mpsc;

use super::{SessionManager, WorkSnapshot};
use crate::services::runner::Service;
use crate::services::{ServiceError, SharedIngest};

/// Offset of the work proofs into their slot on mainnet (slot start + 110 s).
pub const WORK_PROOF_OFFSET_MS: u64 = 110_000;

/// What the producer needs.
pub struct WorkProofDeps {
    /// The network's parameters.
    pub params: ConsensusParams,
    /// The wall clock, re-read before signing.
    pub clock: Arc<dyn Clock>,
    /// The node's identity key.
    pub key: Arc<NodeKey>,
    /// The proof store (own-proof check, and ingest's persistence).
    pub store: Arc<dyn ProofStore>,
    /// The node's ingest, shared with the peer paths and the beacon producer.
    pub ingest: SharedIngest,
    /// The verifier of that ingest.
    pub verifier: Arc<Verifier>,
    /// Accepted own proofs, for gossip.
    pub outbox: Option<mpsc::Sender<SignedMessage>>,
    /// Where the activity comes from.
    pub sessions: Arc<SessionManager>,
}

/// The work-proof loop.
pub struct WorkProofProducer {
    deps: WorkProofDeps,
    node: NodeId,
    offset_ms: i64,
    last_slot: Option<Slot>,
}

/// The values of the proofs of one snapshot, clamped to the caps; `None` for a kind without
/// activity.
pub fn proof_values(snapshot: WorkSnapshot) -> (Option<ProofValue>, Option<ProofValue>) {
    let relay = (snapshot.bytes > 0 || snapshot.sessions_relayed > 0).then(|| ProofValue::Relay {
        bytes_transferred: snapshot.bytes.min(MAX_RELAY_BYTES),
        sessions_relayed: snapshot.sessions_relayed.min(MAX_RELAY_SESSIONS),
    });
    let validation = (snapshot.validated_sessions > 0).then(|| ProofValue::Validation {
        validated_sessions: snapshot.validated_sessions.min(MAX_VALIDATED_SESSIONS),
    });
    (relay, validation)
}

impl WorkProofProducer {
    /// A producer that has signed nothing yet.
    pub fn new(deps: WorkProofDeps) -> Self {
        let node = deps.key.node_id();
        let offset_ms =
            i64::try_from(deps.params.time.scale_ms(WORK_PROOF_OFFSET_MS)).unwrap_or(i64::MAX);
        WorkProofProducer { deps, node, offset_ms, last_slot: None }
    }

    fn due_in(&self, slot: Slot) -> Option<UnixMillis> {
        crate::services::time::slot_offset(&self.deps.params.time, slot, self.offset_ms)
    }

    /// Signs and ingests one proof; `Ok(false)` if one of the node's own exists for the key.
    async fn emit(&self, slot: Slot, value: ProofValue) -> Result<bool, ServiceError> {
        let key = ProofKey { node: self.node, slot, kind: value.kind() };
        let existing = self
            .deps
            .store
            .get_proof(&key)
            .await
            .map_err(ServiceError::consensus("work_proofs", "looking for an own proof"))?;
        if existing.is_some() {
            return Ok(false);
        }
        let now = self.deps.clock.wall();
        if self.deps.params.time.slot_of(now).ok() != Some(slot) {
            return Ok(false);
        }
        let proof = TaskProof { node: self.node, slot, ts: now, value };
        let signed = proof.sign(&self.deps.params.network, &self.deps.key);
        let report = self
            .deps
            .ingest
            .lock()
            .await
            .ingest_batch(self.deps.store.as_ref(), &self.deps.verifier, now, vec![signed.clone()])
            .await
            .map_err(ServiceError::consensus("work_proofs", "ingesting an own work proof"))?;
        match report.outcomes.first().map(|o| o.verdict) {
            Some(Verdict::Accept) => {
                if let Some(outbox) = &self.deps.outbox
                    && outbox.try_send(signed).is_err()
                {
                    tracing::warn!(%slot, "gossip outbox full or closed; own work proof not pushed (anti-entropy serves it)");
                }
                Ok(true)
            }
            Some(Verdict::Duplicate) => Ok(true),
            Some(Verdict::Reject(reason)) => {
                Err(ServiceError::OwnWorkProofRefused { slot, reason })
            }
            None => Err(ServiceError::Blocking {
                service: "work_proofs",
                detail: "ingest decided nothing for one message".to_owned(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Service for WorkProofProducer {
    fn name(&self) -> &'static str {
        "work_proofs"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        crate::services::time::next_slot_offset(&self.deps.params.time, after, self.offset_ms)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let Ok(slot) = self.deps.params.time.slot_of(now) else { return Ok(()) };
        let Some(due) = self.due_in(slot) else { return Ok(()) };
        if now < due || self.last_slot.is_some_and(|last| last >= slot) {
            return Ok(());
        }
        let snapshot = self.deps.sessions.take_work().await;
        self.last_slot = Some(slot);
        if snapshot.is_empty() {
            return Ok(());
        }
        let (relay, validation) = proof_values(snapshot);
        let mut left = WorkSnapshot::default();
        if let Some(value) = relay {
            match self.emit(slot, value).await {
                Ok(true) => {
                    tracing::debug!(%slot, bytes = snapshot.bytes, "relay work proof signed")
                }
                Ok(false) => {
                    left.bytes = snapshot.bytes;
                }
                Err(error) => {
                    left.bytes = snapshot.bytes;
                    left.validated_sessions = snapshot.validated_sessions;
                    self.deps.sessions.give_back(left).await;
                    return Err(error);
                }
            }
        }
        if let Some(value) = validation {
            match self.emit(slot, value).await {
                Ok(true) => {
                    tracing::debug!(%slot, validated = snapshot.validated_sessions, "validation work proof signed")
                }
                Ok(false) => left.validated_sessions = snapshot.validated_sessions,
                Err(error) => {
                    left.validated_sessions = snapshot.validated_sessions;
                    self.deps.sessions.give_back(left).await;
                    return Err(error);
                }
            }
        }
        if !left.is_empty() {
            self.deps.sessions.give_back(left).await;
        }
        Ok(())
    }
}
