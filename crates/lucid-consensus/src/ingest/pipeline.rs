//! The live ingest of [`Ingest::ingest_batch`] cut into phases, so that a caller can verify the
//! signatures of one batch while the previous batch is being persisted (issue 3: the ingest into
//! a database keeps up with verification).
//!
//! The phases of one batch, in order:
//! 1. [`Ingest::prepare_batch`] (`&self`, cheap): strict decoding and checks 1–5 of every message,
//!    the grace-window duplicate shortcut, and the split of messages that share a key (the second
//!    one waits for the first to be decided).
//! 2. [`PreparedBatch::verify`] (no ingest state at all, the expensive part): `verify_strict` of
//!    every candidate on the [`Verifier`]'s pool.
//! 3. [`Ingest::admit`] (`&mut self`): the grace-window index is consulted again, because batches
//!    admitted since phase 1 may have accepted the same bytes; what is left and verified is the
//!    batch to persist ([`AdmittedBatch::to_store`]).
//! 4. The caller persists that batch with `ProofStore::insert_proofs`.
//! 5. [`Ingest::settle`] (`&mut self`): the store's answers become verdicts and enter the index,
//!    exactly as in `ingest_batch`; conflicts become evidence for the caller to store.
//! 6. [`Ingest::finish`]: messages that shared a key with an earlier one of the batch are decided
//!    now, by the sequential path, with the batch's clock.
//!
//! Why this is `ingest_batch`'s answer: phases 1 and 2 depend only on the message, the clock and
//! the registry (which only grows), never on other batches, except for the duplicate shortcut,
//! which phase 3 repeats. Phases 3 to 6 of one batch must run without phases 3 to 6 of another
//! batch in between (the caller serialises them, e.g. behind one lock); then the verdicts are
//! those of `ingest_batch` called in the order in which batches entered phase 3, and for one key
//! the store, which is insert-if-absent, decides which message was first. Phases 1 and 2 of the
//! next batch may run at any time, which is the overlap.

use lucid_core::keys::PublicKey;
use lucid_core::{Digest, SignedMessage, UnixMillis};
use rustc_hash::FxHashSet;

use super::{
    BatchReport, Ingest, Outcome, RejectReason, SlotClock, SlotRule, Verdict, decode_reason,
};
use crate::error::Error;
use crate::proof::{ProofKey, TaskProof};
use crate::store::{Evidence, InsertOutcome, ProofStore, StoredProof, TASK_PROOF_TYPE};
use crate::verify::{Verifier, VerifyItem};

/// What the phases carry of a batch from start to end.
#[derive(Debug)]
struct BatchState {
    /// `None` while the receiver's clock is before genesis: every message is `FromFuture`.
    clock: Option<SlotClock>,
    messages: Vec<SignedMessage>,
    digests: Vec<Digest>,
    verdicts: Vec<Option<Verdict>>,
    /// Messages whose key an earlier message of the batch has, decided in phase 6.
    deferred: Vec<usize>,
    report: BatchReport,
}

/// A candidate for storage: its index in the batch, the decoded proof and the signer's key.
type Candidate = (usize, TaskProof, PublicKey);

/// Phase 1 done: decoded and checked, signatures not verified yet.
#[derive(Debug)]
#[must_use = "a prepared batch must be verified, admitted and settled"]
pub struct PreparedBatch {
    state: BatchState,
    candidates: Vec<Candidate>,
}

/// Phase 2 done: every candidate's signature verified.
#[derive(Debug)]
#[must_use = "a verified batch must be admitted and settled"]
pub struct VerifiedBatch {
    state: BatchState,
    candidates: Vec<Candidate>,
    valid: Vec<bool>,
}

/// Phase 3 done: the proofs to persist, in batch order.
#[derive(Debug)]
#[must_use = "an admitted batch must be persisted and settled"]
pub struct AdmittedBatch {
    state: BatchState,
    to_store: Vec<StoredProof>,
    stored_index: Vec<usize>,
}

/// Phase 5 done: verdicts of everything but the deferred messages, and the evidence to store.
#[derive(Debug)]
#[must_use = "a settled batch must be finished"]
pub struct SettledBatch {
    state: BatchState,
    /// Evidence found by this batch that the caller must store before [`Ingest::finish`].
    pending_evidence: Vec<Evidence>,
}

impl PreparedBatch {
    /// Phase 2: verifies every candidate's signature (on the verifier's pool; blocks the calling
    /// thread until done). Needs no ingest state, so it runs outside of any lock.
    pub fn verify(self, verifier: &Verifier) -> VerifiedBatch {
        let items: Vec<VerifyItem<'_>> = self
            .candidates
            .iter()
            .map(|(index, _, key)| VerifyItem::of(key, &self.state.messages[*index]))
            .collect();
        let valid = verifier.verify_all(&items);
        drop(items);
        VerifiedBatch { state: self.state, candidates: self.candidates, valid }
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.state.messages.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.state.messages.is_empty()
    }
}

impl AdmittedBatch {
    /// Phase 4's input: the proofs to hand to `ProofStore::insert_proofs`, then to
    /// [`Ingest::settle`] with the store's answers. Empty when nothing is left to store.
    pub fn to_store(&self) -> &[StoredProof] {
        &self.to_store
    }
}

impl SettledBatch {
    /// The evidence to store (`ProofStore::insert_evidence`) before [`Ingest::finish`].
    pub fn pending_evidence(&self) -> &[Evidence] {
        &self.pending_evidence
    }

    /// Whether [`Ingest::finish`] still has messages to decide (which then awaits the store).
    pub fn has_deferred(&self) -> bool {
        !self.state.deferred.is_empty()
    }
}

impl Ingest {
    /// Phase 1 of a live batch received at `now` (see the module doc).
    pub fn prepare_batch(&self, now: UnixMillis, messages: Vec<SignedMessage>) -> PreparedBatch {
        let digests: Vec<Digest> = messages.iter().map(SignedMessage::digest).collect();
        let clock = self.slot_clock(now);
        let mut state = BatchState {
            clock,
            verdicts: vec![None; messages.len()],
            messages,
            digests,
            deferred: Vec::new(),
            report: BatchReport::default(),
        };
        let mut candidates = Vec::new();
        let Some(clock) = clock else {
            state.verdicts.fill(Some(Verdict::Reject(RejectReason::FromFuture)));
            return PreparedBatch { state, candidates };
        };
        let mut in_batch: FxHashSet<ProofKey> = FxHashSet::default();
        for (index, message) in state.messages.iter().enumerate() {
            // Check 1: strict decoding, once per message.
            let known =
                |bytes: &[u8; 32]| self.registry.get_key_value(bytes).map(|(node, _)| *node);
            let (network, proof) = match TaskProof::from_signed_bytes_with(message.bytes(), &known)
            {
                Ok(decoded) => decoded,
                Err(error) => {
                    state.verdicts[index] = Some(Verdict::Reject(decode_reason(&error)));
                    continue;
                }
            };
            let key = match self.precheck(network, &proof, &clock, &SlotRule::Live) {
                Ok(key) => key,
                Err(reason) => {
                    state.verdicts[index] = Some(Verdict::Reject(reason));
                    continue;
                }
            };
            let proof_key = proof.key();
            if !in_batch.insert(proof_key) {
                // Decided after the first message of this key is stored (phase 6).
                state.deferred.push(index);
                continue;
            }
            if self.recent.get(&proof_key) == Some(&state.digests[index]) {
                state.verdicts[index] = Some(Verdict::Duplicate);
                continue;
            }
            candidates.push((index, proof, key.clone()));
        }
        PreparedBatch { state, candidates }
    }

    /// Phase 3: the duplicate shortcut again (other batches may have been settled since phase
    /// 1), bad signatures refused, and the rest to persist.
    pub fn admit(&mut self, verified: VerifiedBatch) -> AdmittedBatch {
        let VerifiedBatch { mut state, candidates, valid } = verified;
        if let Some(clock) = state.clock {
            self.prune(clock.current);
        }
        let mut to_store = Vec::with_capacity(candidates.len());
        let mut stored_index = Vec::with_capacity(candidates.len());
        for ((index, proof, _), ok) in candidates.into_iter().zip(valid) {
            // As `ingest_batch` decides: identical bytes already accepted are a duplicate
            // whatever the signature, before the signature is looked at.
            if self.recent.get(&proof.key()) == Some(&state.digests[index]) {
                state.verdicts[index] = Some(Verdict::Duplicate);
            } else if ok {
                to_store.push(StoredProof {
                    proof,
                    message: state.messages[index].clone(),
                    digest: state.digests[index],
                    late: false,
                });
                stored_index.push(index);
            } else {
                state.verdicts[index] = Some(Verdict::Reject(RejectReason::BadSignature));
            }
        }
        AdmittedBatch { state, to_store, stored_index }
    }

    /// Phase 5: the store's answers (`outcomes[i]` for `admitted.to_store()[i]`) become verdicts
    /// and enter the grace-window index. An answer count that does not match is an internal error.
    pub fn settle(
        &mut self,
        admitted: AdmittedBatch,
        outcomes: Vec<InsertOutcome>,
    ) -> Result<SettledBatch, Error> {
        let AdmittedBatch { mut state, to_store, stored_index } = admitted;
        if outcomes.len() != to_store.len() {
            return Err(lucid_core::internal!(
                "store answered {} outcomes for {} proofs",
                outcomes.len(),
                to_store.len()
            )
            .into());
        }
        let mut pending_evidence = Vec::new();
        let clock = state.clock;
        for ((stored, index), outcome) in to_store.into_iter().zip(stored_index).zip(outcomes) {
            let key = stored.key();
            match outcome {
                InsertOutcome::Inserted => {
                    if let Some(clock) = &clock {
                        self.remember(clock, key, stored.digest);
                    }
                    state.verdicts[index] = Some(Verdict::Accept);
                    state.report.accepted.push(stored);
                }
                InsertOutcome::Duplicate => {
                    if let Some(clock) = &clock {
                        self.remember(clock, key, stored.digest);
                    }
                    state.verdicts[index] = Some(Verdict::Duplicate);
                }
                InsertOutcome::Conflict { existing } => {
                    if let Some(clock) = &clock {
                        self.remember(clock, key, existing.digest());
                    }
                    pending_evidence.push(Evidence::new(
                        key.node,
                        TASK_PROOF_TYPE,
                        Some(key),
                        existing,
                        stored.message,
                    ));
                    state.verdicts[index] = Some(Verdict::Reject(RejectReason::Equivocation));
                }
            }
        }
        Ok(SettledBatch { state, pending_evidence })
    }

    /// Phase 6: decides the deferred messages (a key seen earlier in the batch) with the batch's
    /// clock, as `ingest_batch` does in its later rounds, and returns the batch's report. The
    /// caller must have stored [`SettledBatch::pending_evidence`] first; it is reported here.
    pub async fn finish(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        settled: SettledBatch,
    ) -> Result<BatchReport, Error> {
        let SettledBatch { mut state, pending_evidence } = settled;
        state.report.evidence = pending_evidence;
        if let (Some(clock), false) = (state.clock, state.deferred.is_empty()) {
            let deferred: Vec<SignedMessage> =
                state.deferred.iter().map(|index| state.messages[*index].clone()).collect();
            let later = self
                .ingest_checked(store, verifier, &clock, deferred, |_| SlotRule::Live, false)
                .await?;
            for (index, outcome) in state.deferred.iter().zip(later.outcomes) {
                state.verdicts[*index] = Some(outcome.verdict);
            }
            state.report.accepted.extend(later.accepted);
            state.report.evidence.extend(later.evidence);
        }
        let mut outcomes = Vec::with_capacity(state.digests.len());
        for (digest, verdict) in state.digests.into_iter().zip(state.verdicts) {
            let verdict = verdict.ok_or_else(|| lucid_core::internal!("message left undecided"))?;
            outcomes.push(Outcome { digest, verdict });
        }
        state.report.outcomes = outcomes;
        Ok(state.report)
    }

    /// [`Ingest::ingest_batch`] through the phases, one after the other: the reference the
    /// phased path is tested against, and the whole of it for callers without a pipeline.
    pub async fn ingest_batch_phased(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        now: UnixMillis,
        messages: Vec<SignedMessage>,
    ) -> Result<BatchReport, Error> {
        let verified = self.prepare_batch(now, messages).verify(verifier);
        let admitted = self.admit(verified);
        let outcomes = if admitted.to_store().is_empty() {
            Vec::new()
        } else {
            store.insert_proofs(admitted.to_store()).await?
        };
        let settled = self.settle(admitted, outcomes)?;
        for evidence in settled.pending_evidence() {
            store.insert_evidence(evidence).await?;
        }
        self.finish(store, verifier, settled).await
    }
}

#[cfg(test)]
mod tests;
