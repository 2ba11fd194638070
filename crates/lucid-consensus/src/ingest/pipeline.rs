//! The phases of one round of task-proof ingest, the single implementation behind every
//! task-proof path: [`Ingest::ingest_batch`] and the sealed sets run them one after the other,
//! and a caller with a pipeline (the daemon's `SubmitProofs`) runs them itself, so that it can
//! verify the signatures of one batch while the previous batch is being persisted (issue 3).
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
//! 4. `ProofStore::insert_proofs` of that batch, through [`AdmittedBatch::persist`].
//! 5. [`Ingest::settle`] (`&mut self`): the store's answers become verdicts and enter the index;
//!    conflicts become evidence, which [`SettledBatch::store_evidence`] stores.
//! 6. [`Ingest::finish`]: messages that shared a key with an earlier one of the batch are decided
//!    now, by further rounds of the same phases, with the batch's clock.
//!
//! Why a pipeline decides as batches one after the other: phases 1 and 2 depend only on the
//! message, the clock and the registry (which only grows), never on other batches, except for the
//! duplicate shortcut, which phase 3 repeats. Phases 3 to 6 of one batch must run without phases
//! 3 to 6 of another batch in between (the caller serialises them, e.g. behind one lock); then the
//! verdicts are those of `ingest_batch` called in the order in which batches entered phase 3, and
//! for one key the store, which is insert-if-absent, decides which message was first. Phases 1
//! and 2 of the next batch may run at any time, which is the overlap.

use lucid_core::keys::PublicKey;
use lucid_core::{Digest, SignedMessage, UnixMillis};
use rustc_hash::FxHashSet;

use super::{
    BatchReport, Ingest, Outcome, RejectReason, SlotClock, SlotRule, Verdict, decode_reason,
    moved_out,
};
use crate::error::Error;
use crate::proof::{ProofKey, TaskProof};
use crate::store::{Evidence, InsertOutcome, ProofStore, StoredProof, TASK_PROOF_TYPE};
use crate::verify::{Verifier, VerifyItem};

/// What the phases carry of a batch from start to end.
#[derive(Debug)]
pub(super) struct BatchState {
    /// `None` while the receiver's clock is before genesis: every message is `FromFuture`.
    clock: Option<SlotClock>,
    /// Whether what this batch stores arrived through late acceptance (a sealed set).
    late: bool,
    /// The batch; a message handed to the store is moved out of its slot, whose verdict is
    /// decided by then and which is never read again.
    messages: Vec<SignedMessage>,
    digests: Vec<Digest>,
    verdicts: Vec<Option<Verdict>>,
    /// Messages whose key an earlier message of the round has, decided in a later round.
    deferred: Vec<usize>,
    report: BatchReport,
}

impl BatchState {
    /// A batch none of whose messages is looked at yet: all of them wait for the first round.
    pub(super) fn new(clock: Option<SlotClock>, messages: Vec<SignedMessage>, late: bool) -> Self {
        BatchState {
            clock,
            late,
            digests: messages.iter().map(SignedMessage::digest).collect(),
            verdicts: vec![None; messages.len()],
            deferred: (0..messages.len()).collect(),
            messages,
            report: BatchReport::default(),
        }
    }

    /// The report, with one outcome per message in input order. A message left undecided is a
    /// bug, reported as an internal error rather than a guessed verdict.
    fn into_report(self) -> Result<BatchReport, Error> {
        let BatchState { digests, verdicts, mut report, .. } = self;
        let mut outcomes = Vec::with_capacity(digests.len());
        for (digest, verdict) in digests.into_iter().zip(verdicts) {
            let verdict = verdict.ok_or_else(|| lucid_core::internal!("message left undecided"))?;
            outcomes.push(Outcome { digest, verdict });
        }
        report.outcomes = outcomes;
        Ok(report)
    }
}

/// A candidate for storage: its index in the batch, the decoded proof and the signer's key
/// (owned: a prepared batch outlives any borrow of the ingest state).
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
    /// Where the evidence found by this round starts in the report's evidence.
    new_evidence: usize,
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
}

impl AdmittedBatch {
    /// Phase 4's input: the proofs to hand to `ProofStore::insert_proofs`, then to
    /// [`Ingest::settle`] with the store's answers. Empty when nothing is left to store.
    pub fn to_store(&self) -> &[StoredProof] {
        &self.to_store
    }

    /// Phase 4: hands [`AdmittedBatch::to_store`] to `store` (no call when it is empty); the
    /// answers are for [`Ingest::settle`].
    pub async fn persist(&self, store: &dyn ProofStore) -> Result<Vec<InsertOutcome>, Error> {
        if self.to_store.is_empty() {
            return Ok(Vec::new());
        }
        store.insert_proofs(&self.to_store).await
    }
}

impl SettledBatch {
    /// The evidence to store (`ProofStore::insert_evidence`) before [`Ingest::finish`].
    pub fn pending_evidence(&self) -> &[Evidence] {
        &self.state.report.evidence[self.new_evidence..]
    }

    /// Stores [`SettledBatch::pending_evidence`] in `store`.
    pub async fn store_evidence(&self, store: &dyn ProofStore) -> Result<(), Error> {
        for evidence in self.pending_evidence() {
            store.insert_evidence(evidence).await?;
        }
        Ok(())
    }
}

impl Ingest {
    /// Phase 1 of a live batch received at `now` (see the module doc).
    pub fn prepare_batch(&self, now: UnixMillis, messages: Vec<SignedMessage>) -> PreparedBatch {
        let state = BatchState::new(self.slot_clock(now), messages, false);
        self.prepare_round(state, &|_| SlotRule::Live)
    }

    /// Phase 1 of one round over the messages waiting in `state.deferred`: strict decoding,
    /// checks 1–5 with the slot rule `rule_for` gives each proof, and the index shortcut. A
    /// second message for a key already in this round waits for the next round, so that it sees
    /// the state it would see had it arrived later.
    fn prepare_round(
        &self,
        mut state: BatchState,
        rule_for: &(dyn Fn(&TaskProof) -> SlotRule + Sync),
    ) -> PreparedBatch {
        let pending = std::mem::take(&mut state.deferred);
        let mut candidates = Vec::with_capacity(pending.len());
        let Some(clock) = state.clock else {
            for index in pending {
                state.verdicts[index] = Some(Verdict::Reject(RejectReason::FromFuture));
            }
            return PreparedBatch { state, candidates };
        };
        let mut in_round: FxHashSet<ProofKey> =
            FxHashSet::with_capacity_and_hasher(pending.len(), Default::default());
        for index in pending {
            let message = &state.messages[index];
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
            let key = match self.precheck(network, &proof, &clock, &rule_for(&proof)) {
                Ok(key) => key,
                Err(reason) => {
                    state.verdicts[index] = Some(Verdict::Reject(reason));
                    continue;
                }
            };
            let proof_key = proof.key();
            if !in_round.insert(proof_key) {
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
            // Identical bytes already accepted are a duplicate whatever the signature, before
            // the signature is looked at.
            if self.recent.get(&proof.key()) == Some(&state.digests[index]) {
                state.verdicts[index] = Some(Verdict::Duplicate);
            } else if ok {
                // Moved, not copied: the digest was computed once for the whole batch, and the
                // message is stored at most once.
                let message = std::mem::replace(&mut state.messages[index], moved_out());
                let digest = state.digests[index];
                to_store.push(StoredProof { proof, message, digest, late: state.late });
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
        let new_evidence = state.report.evidence.len();
        let clock = state.clock;
        for ((stored, index), outcome) in to_store.into_iter().zip(stored_index).zip(outcomes) {
            let key = stored.key();
            let (remembered, verdict) = match outcome {
                InsertOutcome::Inserted => {
                    let digest = stored.digest;
                    state.report.accepted.push(stored);
                    (digest, Verdict::Accept)
                }
                InsertOutcome::Duplicate => (stored.digest, Verdict::Duplicate),
                InsertOutcome::Conflict { existing } => {
                    let remembered = existing.digest();
                    state.report.evidence.push(Evidence::new(
                        key.node,
                        TASK_PROOF_TYPE,
                        Some(key),
                        existing,
                        stored.message,
                    ));
                    (remembered, Verdict::Reject(RejectReason::Equivocation))
                }
            };
            if let Some(clock) = &clock {
                self.remember(clock, key, remembered);
            }
            state.verdicts[index] = Some(verdict);
        }
        Ok(SettledBatch { state, new_evidence })
    }

    /// Phase 6 of a live batch: decides the deferred messages (a key seen earlier in the batch)
    /// with the batch's clock, and returns the batch's report. The caller must have stored
    /// [`SettledBatch::pending_evidence`] first; it is reported here.
    pub async fn finish(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        settled: SettledBatch,
    ) -> Result<BatchReport, Error> {
        self.decide_rounds(store, verifier, settled.state, &|_| SlotRule::Live).await
    }

    /// Runs rounds of all the phases, one after the other, until no message of `state` waits:
    /// the whole ingest of a batch that no pipeline overlaps, and the later rounds of one that a
    /// pipeline ran the first round of.
    pub(super) async fn decide_rounds(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        mut state: BatchState,
        rule_for: &(dyn Fn(&TaskProof) -> SlotRule + Sync),
    ) -> Result<BatchReport, Error> {
        while !state.deferred.is_empty() {
            let admitted = self.admit(self.prepare_round(state, rule_for).verify(verifier));
            let outcomes = admitted.persist(store).await?;
            let settled = self.settle(admitted, outcomes)?;
            settled.store_evidence(store).await?;
            state = settled.state;
        }
        state.into_report()
    }
}

#[cfg(test)]
mod tests;
