//! The seal signer: at the start of slot s + 3 the node signs exactly one `slot-seal` for slot s
//! over the digests of the task proofs it accepted live for s (`consensus.md` §6.3).
//!
//! - **Frozen set.** Live acceptance of slot s ends with slot s + 2 (the grace), so at s + 3 the
//!   live set of s can no longer change; proofs accepted later through anti-entropy are stored
//!   `late` and are never added to the seal.
//! - **Once.** Before signing, the signer looks for its stored seal of the slot; the store is
//!   write-once per (node, slot), so a restart, a retried tick or a second process never amends
//!   a seal.
//! - **Catch-up, bounded.** A tick seals every slot from the one after the last sealed up to
//!   s − 3, at most [`SEAL_CATCH_UP_SLOTS`] back: a node that was stopped for longer held no live
//!   proofs for the slots it missed.
//!
//! - **Gossiped.** A seal the signer stores is pushed to its gossip peers (`SubmitSeals`), so
//!   a peer learns it without fetching the set; [`ingest_seal`] judges a pushed seal
//!   (registered signer, `verify_strict`, a sealed slot in the past and inside the unsettled
//!   window) and stores it write-once. Seals are not relayed further: a node reconciles only
//!   with its own gossip peers, and relaying would cost every node one verification per node
//!   and slot (as much again as the beacons).
//!
//! Pool ops join the sealed set once the pool op log is persisted with the proofs (issue 3,
//! T10); until then a seal covers task proofs only, which is what `lucid_api::grpc::slot_digests`
//! summarises too.

use std::sync::Arc;

use lucid_consensus::ConsensusParams;
use lucid_consensus::seal::{SlotSeal, StoredSeal, seal_root};
use lucid_consensus::store::{InsertOutcome, ProofStore, StoredProof};
use lucid_core::message::Message;
use lucid_core::{NodeId, NodeKey, Slot, SlotRange, UnixMillis};

use lucid_consensus::ingest::{Ingest, Outcome, RejectReason, Verdict};
use lucid_core::SignedMessage;

use super::{GossipHook, GossipMetrics};
use crate::services::ServiceError;
use crate::services::runner::Service;

/// A seal of slot s is signed at the start of slot s + this.
pub const SEAL_DELAY_SLOTS: u64 = 3;
/// Most slots sealed back after a restart or a stall.
pub const SEAL_CATCH_UP_SLOTS: u64 = 8;
/// Proofs read per store page while collecting a slot's set.
const SET_PAGE: usize = 1_024;

/// The proofs the node accepted live for `slot`, in key order: the set its seal covers.
pub async fn live_set(
    store: &dyn ProofStore,
    slot: Slot,
) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
    let range = SlotRange { start: slot, end: Slot(slot.0.saturating_add(1)) };
    let mut set = Vec::new();
    let mut after = None;
    loop {
        let page = store.proofs_in_range(range, after, SET_PAGE).await?;
        let full = page.len() == SET_PAGE;
        after = page.last().map(StoredProof::key);
        set.extend(page.into_iter().filter(|proof| !proof.late));
        if !full {
            return Ok(set);
        }
    }
}

/// The seal signer's state.
pub struct SealSigner {
    params: ConsensusParams,
    key: Arc<NodeKey>,
    node: NodeId,
    store: Arc<dyn ProofStore>,
    metrics: Arc<GossipMetrics>,
    last_sealed: Option<Slot>,
    /// Where a new own seal is pushed from, when the node gossips.
    hook: Option<GossipHook>,
}

impl SealSigner {
    /// A signer that has sealed nothing in this process yet.
    pub fn new(
        params: ConsensusParams,
        key: Arc<NodeKey>,
        store: Arc<dyn ProofStore>,
        metrics: Arc<GossipMetrics>,
    ) -> Self {
        let node = key.node_id();
        SealSigner { params, key, node, store, metrics, last_sealed: None, hook: None }
    }

    /// This signer, pushing every seal it stores through `hook`.
    #[must_use]
    pub fn gossiping(mut self, hook: GossipHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The newest slot sealed (or found sealed) by this signer.
    pub fn last_sealed(&self) -> Option<Slot> {
        self.last_sealed
    }

    /// Seals `slot` at `now` unless a seal of it is stored.
    async fn seal(&mut self, slot: Slot, now: UnixMillis) -> Result<(), ServiceError> {
        let store = self.store.as_ref();
        let existing = store
            .get_seal(&self.node, slot)
            .await
            .map_err(ServiceError::consensus("seal", "looking for an own seal"))?;
        if existing.is_some() {
            return Ok(());
        }
        let set = live_set(store, slot)
            .await
            .map_err(ServiceError::consensus("seal", "reading the live set"))?;
        let digests: Vec<_> = set.iter().map(|proof| proof.digest).collect();
        let count = u32::try_from(digests.len()).map_err(|_| ServiceError::Consensus {
            service: "seal",
            action: "counting the live set",
            source: lucid_consensus::Error::Bug(lucid_core::internal!(
                "{} proofs in one slot",
                digests.len()
            )),
        })?;
        let seal = SlotSeal { node: self.node, slot, count, root: seal_root(&digests), ts: now };
        let signed = seal.sign(&self.params.network, &self.key);
        let outcome = store
            .insert_seal(&StoredSeal::new(seal, signed.clone()))
            .await
            .map_err(ServiceError::consensus("seal", "storing the seal"))?;
        match outcome {
            InsertOutcome::Inserted => {
                self.metrics.count_seal();
                tracing::debug!(%slot, count, "slot sealed");
                if let Some(hook) = &self.hook {
                    hook.seal(None, signed);
                }
            }
            InsertOutcome::Duplicate => {}
            InsertOutcome::Conflict { .. } => {
                // Sealed by another writer between our look and our insert: the stored seal
                // stays, ours is discarded unsent.
                tracing::warn!(%slot, "slot was sealed concurrently; the stored seal stays");
            }
        }
        Ok(())
    }
}

/// Judges a slot seal pushed by a peer at `now` and stores it if valid: strict decoding, the
/// network, a sealed slot that is over (`slot + 3 ≤ current`, the signing time not in the
/// future) and not older than `floor`, a registered signer, `verify_strict`; then the
/// write-once store: the same seal again is `Duplicate`, another seal of the same node and slot
/// is `Equivocation` (the stored one stays). `Accept` means stored now: relay it.
pub async fn ingest_seal(
    ingest: &Ingest,
    store: &dyn ProofStore,
    now: UnixMillis,
    floor: Slot,
    message: SignedMessage,
) -> Result<Outcome, lucid_consensus::Error> {
    let digest = message.digest();
    let params = ingest.params();
    let reject = |reason| Outcome { digest, verdict: Verdict::Reject(reason) };
    let (network, seal) = match SlotSeal::from_signed_bytes(message.bytes()) {
        Ok(decoded) => decoded,
        Err(_) => return Ok(reject(RejectReason::Malformed)),
    };
    if network != params.network {
        return Ok(reject(RejectReason::WrongNetwork));
    }
    let Ok(current) = params.time.slot_of(now) else {
        return Ok(reject(RejectReason::FromFuture));
    };
    if seal.ts > now.saturating_add_ms(params.max_future_skew_ms())
        || seal.slot.0.saturating_add(SEAL_DELAY_SLOTS) > current.0
    {
        return Ok(reject(RejectReason::FromFuture));
    }
    if seal.slot < floor {
        return Ok(reject(RejectReason::Stale));
    }
    if !ingest.is_registered(&seal.node) {
        return Ok(reject(RejectReason::UnknownNode));
    }
    if !message.verify(&seal.node) {
        return Ok(reject(RejectReason::BadSignature));
    }
    let verdict = match store.insert_seal(&StoredSeal::new(seal, message)).await? {
        InsertOutcome::Inserted => Verdict::Accept,
        InsertOutcome::Duplicate => Verdict::Duplicate,
        InsertOutcome::Conflict { .. } => Verdict::Reject(RejectReason::Equivocation),
    };
    Ok(Outcome { digest, verdict })
}

#[async_trait::async_trait]
impl Service for SealSigner {
    fn name(&self) -> &'static str {
        "seal"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let time = self.params.time;
        match time.slot_of(after) {
            Ok(slot) => time
                .slot_start(Slot(slot.0.saturating_add(1)))
                .ok()
                .filter(|due| *due > after)
                .unwrap_or_else(|| after.saturating_add_ms(1)),
            Err(_) => time.genesis().max(after.saturating_add_ms(1)),
        }
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let Ok(current) = self.params.time.slot_of(now) else { return Ok(()) };
        let Some(target) = current.0.checked_sub(SEAL_DELAY_SLOTS) else { return Ok(()) };
        let oldest = target.saturating_sub(SEAL_CATCH_UP_SLOTS);
        let first = self.last_sealed.map_or(oldest, |last| last.0.saturating_add(1)).max(oldest);
        for slot in first..=target {
            self.seal(Slot(slot), now).await?;
            self.last_sealed = Some(Slot(slot));
        }
        Ok(())
    }
}
