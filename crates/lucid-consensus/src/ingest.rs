//! Ingest: the acceptance rules every node applies to task proofs and registrations.
//!
//! Checks run cheap first (consensus.md §6.1): strict decode and network; slot matches the
//! timestamp; slot inside the live grace window; signer registered; value within caps; identical
//! bytes already held (duplicate, a no-op); `verify_strict`; then insert-if-absent, where a
//! different message already stored under the key is an equivocation, rejected and kept as
//! evidence. Faults of peers are [`Verdict`]s, never errors and never panics; `Err` means our own
//! machinery (the store) failed and the batch may be retried as a whole, because every step is
//! idempotent.
//!
//! The decision state is synchronous and bounded: the registry of known nodes and an index of the
//! keys accepted in the grace window (about nodes × 4 kinds × 3 slots entries). Persistence goes
//! through the [`ProofStore`] port; signature checks of a batch run in parallel on the
//! [`Verifier`]'s pool.

use std::fmt;

use lucid_core::codec::DecodeError;
use lucid_core::ids::IdParseError;
use lucid_core::keys::PublicKey;
use lucid_core::message::Message;
use lucid_core::{Digest, NodeId, SignedMessage, Slot, UnixMillis};
use rustc_hash::FxHashMap;

use crate::error::Error;
use crate::params::{ConsensusParams, INGEST_GRACE_SLOTS};
use crate::proof::{ProofKey, TaskProof};
use crate::registration::Registration;
use crate::store::StoredProof;
use crate::store::{
    Evidence, InsertOutcome, ProofStore, REGISTRATION_TYPE, StoredRegistration, TASK_PROOF_TYPE,
    stored_proof,
};
use crate::verify::{Verifier, VerifyItem};

/// The decision about one incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// New and valid: stored, to be gossiped.
    Accept,
    /// The same signed bytes were already accepted: nothing changes (success to the sender).
    Duplicate,
    /// Refused, with the reason.
    Reject(RejectReason),
}

/// Why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not a well-formed message of the expected type (includes oversized input).
    Malformed,
    /// A known type at a version this node does not know.
    UnsupportedVersion,
    /// Signed for another network.
    WrongNetwork,
    /// The signer's key is of small order (anyone could forge for it).
    WeakKey,
    /// The slot does not contain the signing timestamp.
    SlotTimestampMismatch,
    /// The slot is older than the live grace window.
    Stale,
    /// The slot (or timestamp) lies in the future beyond the tolerated skew.
    FromFuture,
    /// The signer has no accepted registration (may be resubmitted later; not evidence).
    UnknownNode,
    /// A value exceeds its consensus cap.
    ValueOutOfRange,
    /// The signature is not valid under `verify_strict`.
    BadSignature,
    /// Different bytes are already accepted under the same key: kept as evidence.
    Equivocation,
    /// A registration with a lower sequence number than the current one.
    Superseded,
}

impl RejectReason {
    /// A stable snake_case name (metrics labels, API).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::UnsupportedVersion => "unsupported_version",
            RejectReason::WrongNetwork => "wrong_network",
            RejectReason::WeakKey => "weak_key",
            RejectReason::SlotTimestampMismatch => "slot_timestamp_mismatch",
            RejectReason::Stale => "stale",
            RejectReason::FromFuture => "from_future",
            RejectReason::UnknownNode => "unknown_node",
            RejectReason::ValueOutOfRange => "value_out_of_range",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Equivocation => "equivocation",
            RejectReason::Superseded => "superseded",
        }
    }

    /// Whether the reason proves the sender (or the signer) misbehaved, as opposed to a message
    /// that may simply be early, late or from a node we do not know yet.
    pub fn is_misbehaviour(self) -> bool {
        matches!(
            self,
            RejectReason::Malformed
                | RejectReason::WeakKey
                | RejectReason::SlotTimestampMismatch
                | RejectReason::ValueOutOfRange
                | RejectReason::BadSignature
                | RejectReason::Equivocation
        )
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on one message of a batch, with its digest when it could be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The message digest (always computable: it is a hash of the bytes).
    pub digest: Digest,
    /// The decision.
    pub verdict: Verdict,
}

/// What a batch produced.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// One outcome per input message, in input order.
    pub outcomes: Vec<Outcome>,
    /// Proofs newly accepted (to gossip and to count), in input order.
    pub accepted: Vec<StoredProof>,
    /// Equivocation evidence found in this batch (stored already).
    pub evidence: Vec<Evidence>,
}

#[derive(Clone, Debug)]
struct Registered {
    key: PublicKey,
    seq: u64,
}

/// The ingest state of one node.
#[derive(Clone, Debug)]
pub struct Ingest {
    params: ConsensusParams,
    registry: FxHashMap<NodeId, Registered>,
    /// Digest of the accepted message per key, for keys in the live grace window.
    recent: FxHashMap<ProofKey, Digest>,
    /// The current slot `recent` was last pruned for.
    pruned_for: Slot,
}

fn decode_reason(error: &DecodeError) -> RejectReason {
    match error {
        DecodeError::UnsupportedVersion { .. } => RejectReason::UnsupportedVersion,
        DecodeError::InvalidId { source: IdParseError::WeakKey, .. } => RejectReason::WeakKey,
        _ => RejectReason::Malformed,
    }
}

impl Ingest {
    /// Fresh state: no node registered, empty index.
    pub fn new(params: ConsensusParams) -> Self {
        Ingest {
            params,
            registry: FxHashMap::default(),
            recent: FxHashMap::default(),
            pruned_for: Slot(0),
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> &ConsensusParams {
        &self.params
    }

    /// Whether `node` has an accepted registration.
    pub fn is_registered(&self, node: &NodeId) -> bool {
        self.registry.contains_key(node)
    }

    /// Number of registered nodes.
    pub fn registered_count(&self) -> usize {
        self.registry.len()
    }

    /// Number of keys in the grace-window index.
    pub fn index_len(&self) -> usize {
        self.recent.len()
    }

    /// Rebuilds the registry from the store's current registrations (at start-up).
    pub async fn load_registrations(&mut self, store: &dyn ProofStore) -> Result<usize, Error> {
        for record in store.current_registrations().await? {
            self.note_registration(&record.registration);
        }
        Ok(self.registry.len())
    }

    fn note_registration(&mut self, registration: &Registration) {
        let node = registration.node;
        match self.registry.get_mut(&node) {
            Some(entry) if entry.seq >= registration.seq => {}
            Some(entry) => entry.seq = registration.seq,
            None => {
                self.registry
                    .insert(node, Registered { key: PublicKey::of(&node), seq: registration.seq });
            }
        }
    }

    /// Drops index entries that fell out of the grace window.
    fn prune(&mut self, current: Slot) {
        if current <= self.pruned_for {
            return;
        }
        self.pruned_for = current;
        let oldest = Slot(current.0.saturating_sub(INGEST_GRACE_SLOTS));
        self.recent.retain(|key, _| key.slot >= oldest);
    }

    /// Checks 1–5 of the live pipeline (everything that needs neither the index nor a signature).
    fn precheck(
        &self,
        message: &SignedMessage,
        current: Slot,
        newest_allowed: Slot,
    ) -> Result<(TaskProof, PublicKey), RejectReason> {
        let (network, proof) =
            TaskProof::from_signed_bytes(message.bytes()).map_err(|e| decode_reason(&e))?;
        if network != self.params.network {
            return Err(RejectReason::WrongNetwork);
        }
        if !self.params.time_in_slot(proof.ts, proof.slot) {
            return Err(RejectReason::SlotTimestampMismatch);
        }
        if proof.slot.0.saturating_add(INGEST_GRACE_SLOTS) < current.0 {
            return Err(RejectReason::Stale);
        }
        if proof.slot > newest_allowed {
            return Err(RejectReason::FromFuture);
        }
        let registered = self.registry.get(&proof.node).ok_or(RejectReason::UnknownNode)?;
        proof.value.check_caps().map_err(|_| RejectReason::ValueOutOfRange)?;
        Ok((proof, registered.key.clone()))
    }

    /// Ingests a batch of task proofs received live at `now`.
    ///
    /// Messages of one batch that share a key are decided in input order, as if they had arrived
    /// one after the other. Calling again with the same batch changes nothing and yields
    /// `Duplicate` for what was accepted (and `Equivocation` again for conflicts).
    pub async fn ingest_batch(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        now: UnixMillis,
        messages: Vec<SignedMessage>,
    ) -> Result<BatchReport, Error> {
        let mut verdicts: Vec<Option<Verdict>> = vec![None; messages.len()];
        let digests: Vec<Digest> = messages.iter().map(SignedMessage::digest).collect();
        let mut report = BatchReport::default();

        let time = self.params.time;
        let (current, newest_allowed) = match (
            time.slot_of(now),
            time.slot_of(now.saturating_add_ms(self.params.max_future_skew_ms())),
        ) {
            (Ok(current), Ok(newest)) => (current, newest),
            // Our own clock is before genesis: nothing can be live yet.
            _ => {
                report.outcomes = digests
                    .iter()
                    .map(|d| Outcome {
                        digest: *d,
                        verdict: Verdict::Reject(RejectReason::FromFuture),
                    })
                    .collect();
                return Ok(report);
            }
        };
        self.prune(current);

        let mut pending: Vec<usize> = (0..messages.len()).collect();
        while !pending.is_empty() {
            let mut in_round: FxHashMap<ProofKey, ()> = FxHashMap::default();
            let mut deferred = Vec::new();
            let mut candidates: Vec<(usize, TaskProof, PublicKey)> = Vec::new();
            for index in pending {
                let message = &messages[index];
                let (proof, key) = match self.precheck(message, current, newest_allowed) {
                    Ok(checked) => checked,
                    Err(reason) => {
                        verdicts[index] = Some(Verdict::Reject(reason));
                        continue;
                    }
                };
                let proof_key = proof.key();
                if in_round.insert(proof_key, ()).is_some() {
                    // A second message for a key already in this round is decided after the
                    // first one is stored, so it sees the same state as if it arrived later.
                    deferred.push(index);
                    continue;
                }
                if self.recent.get(&proof_key) == Some(&digests[index]) {
                    verdicts[index] = Some(Verdict::Duplicate);
                    continue;
                }
                candidates.push((index, proof, key));
            }

            let items: Vec<VerifyItem<'_>> = candidates
                .iter()
                .map(|(index, _, key)| VerifyItem::of(key, &messages[*index]))
                .collect();
            let valid = verifier.verify_all(&items);
            drop(items);

            let mut to_store: Vec<StoredProof> = Vec::with_capacity(candidates.len());
            let mut stored_index: Vec<usize> = Vec::with_capacity(candidates.len());
            for ((index, proof, _), ok) in candidates.into_iter().zip(valid) {
                if ok {
                    to_store.push(stored_proof(proof, messages[index].clone(), false));
                    stored_index.push(index);
                } else {
                    verdicts[index] = Some(Verdict::Reject(RejectReason::BadSignature));
                }
            }
            if !to_store.is_empty() {
                let outcomes = store.insert_proofs(&to_store).await?;
                if outcomes.len() != to_store.len() {
                    return Err(lucid_core::internal!(
                        "store answered {} outcomes for {} proofs",
                        outcomes.len(),
                        to_store.len()
                    )
                    .into());
                }
                for ((stored, index), outcome) in
                    to_store.into_iter().zip(stored_index).zip(outcomes)
                {
                    let key = stored.key();
                    match outcome {
                        InsertOutcome::Inserted => {
                            self.recent.insert(key, stored.digest);
                            verdicts[index] = Some(Verdict::Accept);
                            report.accepted.push(stored);
                        }
                        InsertOutcome::Duplicate => {
                            self.recent.insert(key, stored.digest);
                            verdicts[index] = Some(Verdict::Duplicate);
                        }
                        InsertOutcome::Conflict { existing } => {
                            self.recent.insert(key, existing.digest());
                            let evidence = Evidence::new(
                                key.node,
                                TASK_PROOF_TYPE,
                                Some(key),
                                existing,
                                stored.message,
                            );
                            store.insert_evidence(&evidence).await?;
                            report.evidence.push(evidence);
                            verdicts[index] = Some(Verdict::Reject(RejectReason::Equivocation));
                        }
                    }
                }
            }
            pending = deferred;
        }

        let mut outcomes = Vec::with_capacity(digests.len());
        for (digest, verdict) in digests.into_iter().zip(verdicts) {
            // Every index is decided in the loop above; a missing verdict is a bug, reported as
            // an internal error rather than a guessed verdict.
            let verdict = verdict.ok_or_else(|| lucid_core::internal!("message left undecided"))?;
            outcomes.push(Outcome { digest, verdict });
        }
        report.outcomes = outcomes;
        Ok(report)
    }

    /// Ingests one registration record received at `now`.
    ///
    /// Rules: strict decode (payout address version byte, capability bits, no weak key), right
    /// network, `ts ≤ now + skew`, `verify_strict`; a lower `seq` than the current record is
    /// `Superseded`; an equal `seq` with different bytes is an equivocation (the first stays).
    pub async fn ingest_registration(
        &mut self,
        store: &dyn ProofStore,
        now: UnixMillis,
        message: SignedMessage,
    ) -> Result<(Outcome, Option<Evidence>), Error> {
        let digest = message.digest();
        let reject = |reason| Ok((Outcome { digest, verdict: Verdict::Reject(reason) }, None));
        let (network, registration) = match Registration::from_signed_bytes(message.bytes()) {
            Ok(decoded) => decoded,
            Err(error) => return reject(decode_reason(&error)),
        };
        if network != self.params.network {
            return reject(RejectReason::WrongNetwork);
        }
        if registration.ts > now.saturating_add_ms(self.params.max_future_skew_ms()) {
            return reject(RejectReason::FromFuture);
        }
        if !message.verify(&registration.node) {
            return reject(RejectReason::BadSignature);
        }
        if self.registry.get(&registration.node).is_some_and(|r| r.seq > registration.seq) {
            return reject(RejectReason::Superseded);
        }
        let record = StoredRegistration { registration, message, digest };
        match store.insert_registration(&record).await? {
            InsertOutcome::Inserted => {
                self.note_registration(&record.registration);
                Ok((Outcome { digest, verdict: Verdict::Accept }, None))
            }
            InsertOutcome::Duplicate => {
                self.note_registration(&record.registration);
                Ok((Outcome { digest, verdict: Verdict::Duplicate }, None))
            }
            InsertOutcome::Conflict { existing } => {
                let evidence = Evidence::new(
                    record.registration.node,
                    REGISTRATION_TYPE,
                    None,
                    existing,
                    record.message,
                );
                store.insert_evidence(&evidence).await?;
                Ok((
                    Outcome { digest, verdict: Verdict::Reject(RejectReason::Equivocation) },
                    Some(evidence),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
