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
//!
//! The registry is also the cache of decompressed verifying keys that every task-proof path
//! (live gossip, sealed sets, evidence, seals) verifies against, so no proof pays a point
//! decompression. It is bounded by the accepted registrations and has no eviction: a key enters
//! only through a registration that `verify_strict` accepted for that very key, and a proof from
//! an unknown signer is refused (`UnknownNode`) before any signature work, so forged traffic can
//! neither add keys nor push honest ones out. A cached key cannot change a verdict: it is the
//! decompression of the signer's own id bytes, and the check is still `verify_strict` (tested
//! against the uncached rule with forged, bit-flipped and foreign-key proofs).

use std::fmt;

use lucid_core::codec::DecodeError;
use lucid_core::ids::IdParseError;
use lucid_core::keys::PublicKey;
use lucid_core::message::Message;
use lucid_core::{Digest, NetworkId, NodeId, SignedMessage, Slot, UnixMillis};
use rustc_hash::FxHashMap;

use crate::error::Error;
use crate::params::{ConsensusParams, INGEST_GRACE_SLOTS};
use crate::proof::{ProofKey, TaskProof};
use crate::registration::Registration;
use crate::seal::{SlotSeal, seal_root};
use crate::store::StoredProof;
use crate::store::{
    Evidence, InsertOutcome, ProofStore, REGISTRATION_TYPE, StoredRegistration, TASK_PROOF_TYPE,
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
    /// A sealed set that does not hash to its seal, or a message in it from another slot.
    SealMismatch,
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
            RejectReason::SealMismatch => "seal_mismatch",
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
                | RejectReason::SealMismatch
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

/// What a sealed set produced: the verdict on the seal, then per-message outcomes (empty when
/// the seal itself was refused).
#[derive(Debug)]
pub struct SealedSetReport {
    /// The verdict on the seal (`Accept` when the set matches it).
    pub seal: Outcome,
    /// Outcomes of the set's messages.
    pub set: BatchReport,
}

fn all_rejected(messages: &[SignedMessage], reason: RejectReason) -> BatchReport {
    BatchReport {
        outcomes: messages
            .iter()
            .map(|m| Outcome { digest: m.digest(), verdict: Verdict::Reject(reason) })
            .collect(),
        ..BatchReport::default()
    }
}

/// What is left in a batch slot whose message moved into the store: no bytes, no signature.
/// Allocates nothing.
fn moved_out() -> SignedMessage {
    SignedMessage::new(Vec::new(), lucid_core::Signature::from_bytes([0; 64]))
}

/// The receiver's view of time for one batch.
#[derive(Clone, Copy, Debug)]
struct SlotClock {
    current: Slot,
    newest_allowed: Slot,
}

/// Check 3, by the path a message arrived on.
#[derive(Clone, Copy, Debug)]
enum SlotRule {
    /// Live gossip: `current − 2 ≤ slot ≤ slot_of(now + skew)`.
    Live,
    /// Late acceptance through another node's matching seal: `floor ≤ slot ≤ slot_of(now + skew)`.
    Late { floor: Slot },
    /// A message in a sealed set whose slot is not the sealed slot.
    NotInSeal,
}

impl SlotRule {
    fn check(&self, proof: &TaskProof, clock: &SlotClock) -> Result<(), RejectReason> {
        let oldest = match self {
            SlotRule::Live => Slot(clock.current.0.saturating_sub(INGEST_GRACE_SLOTS)),
            SlotRule::Late { floor } => *floor,
            SlotRule::NotInSeal => return Err(RejectReason::SealMismatch),
        };
        if proof.slot < oldest {
            return Err(RejectReason::Stale);
        }
        if proof.slot > clock.newest_allowed {
            return Err(RejectReason::FromFuture);
        }
        Ok(())
    }
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

    /// Indexes an accepted key if it lies in the live grace window; older keys (late path) are
    /// left to the store, so the index stays bounded whatever peers serve.
    fn remember(&mut self, clock: &SlotClock, key: ProofKey, digest: Digest) {
        if key.slot.0.saturating_add(INGEST_GRACE_SLOTS) >= clock.current.0 {
            self.recent.insert(key, digest);
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

    /// Checks 1–5 (everything that needs neither the index nor a signature) of a decoded
    /// message; check 3 is the slot rule of the path the message arrived on.
    fn precheck(
        &self,
        network: NetworkId,
        proof: &TaskProof,
        clock: &SlotClock,
        rule: &SlotRule,
    ) -> Result<&PublicKey, RejectReason> {
        if network != self.params.network {
            return Err(RejectReason::WrongNetwork);
        }
        if !self.params.time_in_slot(proof.ts, proof.slot) {
            return Err(RejectReason::SlotTimestampMismatch);
        }
        rule.check(proof, clock)?;
        let registered = self.registry.get(&proof.node).ok_or(RejectReason::UnknownNode)?;
        proof.value.check_caps().map_err(|_| RejectReason::ValueOutOfRange)?;
        Ok(&registered.key)
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
        let Some(clock) = self.slot_clock(now) else {
            return Ok(all_rejected(&messages, RejectReason::FromFuture));
        };
        self.ingest_checked(store, verifier, &clock, messages, |_| SlotRule::Live, false).await
    }

    /// The receiver's slots at `now`; `None` while our own clock is before genesis (then nothing
    /// can be live yet).
    fn slot_clock(&self, now: UnixMillis) -> Option<SlotClock> {
        let time = self.params.time;
        let current = time.slot_of(now).ok()?;
        let newest_allowed =
            time.slot_of(now.saturating_add_ms(self.params.max_future_skew_ms())).ok()?;
        Some(SlotClock { current, newest_allowed })
    }

    /// Ingests a peer's sealed set for one slot (anti-entropy, consensus.md §6.3).
    ///
    /// The seal must be signed by a registered node, and the set must hash to the seal's root
    /// with the seal's count. Then every task proof in the set that the serving peer did NOT sign
    /// passes the slot check if its slot is not older than the window of the oldest unsettled
    /// tally (`slots_per_epoch · current_epoch − window_slots`) and not in the future; every other
    /// check still applies and accepted proofs are stored as late. The serving peer's own proofs
    /// get the live slot check, so no node can backfill its own proofs alone.
    pub async fn ingest_sealed_set(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        now: UnixMillis,
        seal: SignedMessage,
        set: Vec<SignedMessage>,
    ) -> Result<SealedSetReport, Error> {
        let seal_digest = seal.digest();
        let refuse = |reason| SealedSetReport {
            seal: Outcome { digest: seal_digest, verdict: Verdict::Reject(reason) },
            set: BatchReport::default(),
        };
        let Some(clock) = self.slot_clock(now) else {
            return Ok(refuse(RejectReason::FromFuture));
        };
        let (network, sealed) = match SlotSeal::from_signed_bytes(seal.bytes()) {
            Ok(decoded) => decoded,
            Err(error) => return Ok(refuse(decode_reason(&error))),
        };
        if network != self.params.network {
            return Ok(refuse(RejectReason::WrongNetwork));
        }
        if sealed.ts > now.saturating_add_ms(self.params.max_future_skew_ms()) {
            return Ok(refuse(RejectReason::FromFuture));
        }
        let Some(registered) = self.registry.get(&sealed.node) else {
            return Ok(refuse(RejectReason::UnknownNode));
        };
        if !registered.key.verify_strict(seal.bytes(), seal.signature()) {
            return Ok(refuse(RejectReason::BadSignature));
        }
        let digests: Vec<Digest> = set.iter().map(SignedMessage::digest).collect();
        let distinct = {
            let mut sorted = digests.clone();
            sorted.sort_unstable();
            sorted.dedup();
            sorted.len()
        };
        if distinct != set.len()
            || u32::try_from(set.len()).ok() != Some(sealed.count)
            || seal_root(&digests) != sealed.root
        {
            return Ok(refuse(RejectReason::SealMismatch));
        }
        let time = self.params.time;
        let current_epoch = time.epoch_of(clock.current);
        let floor = Slot(
            time.epoch_start(current_epoch)
                .map_or(0, |start| start.0)
                .saturating_sub(time.window_slots()),
        );
        let server = sealed.node;
        let sealed_slot = sealed.slot;
        let rule = |proof: &TaskProof| {
            if proof.slot != sealed_slot {
                SlotRule::NotInSeal
            } else if proof.node == server {
                SlotRule::Live
            } else {
                SlotRule::Late { floor }
            }
        };
        let report = self.ingest_checked(store, verifier, &clock, set, rule, true).await?;
        Ok(SealedSetReport {
            seal: Outcome { digest: seal_digest, verdict: Verdict::Accept },
            set: report,
        })
    }

    /// The shared path of the live and late paths: the rounds of the phases in
    /// [`pipeline`] (prechecks with the per-message slot rule, the index, parallel
    /// verification, insert-if-absent), one after the other.
    ///
    /// Takes the batch by value so that each message handed to the store is moved, not copied.
    async fn ingest_checked(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        clock: &SlotClock,
        messages: Vec<SignedMessage>,
        rule_for: impl Fn(&TaskProof) -> SlotRule + Sync,
        late: bool,
    ) -> Result<BatchReport, Error> {
        self.prune(clock.current);
        let state = pipeline::BatchState::new(Some(*clock), messages, late);
        self.decide_rounds(store, verifier, state, &rule_for).await
    }

    /// Ingests equivocation evidence gossiped by a peer (consensus.md §6.2): two task proofs
    /// `a` and `b`, signed by one node under one key with different bytes.
    ///
    /// Evidence is self-verifying, so it takes its own path instead of the live one: a peer
    /// forwards it when it found the conflict, which may be after the live grace (through a
    /// sealed set) or just before it closes. Both messages must decode, name this network, match
    /// their slot's time, lie in the window of the oldest unsettled tally and not in the future
    /// (the late-acceptance floor), stay within the value caps, and carry a valid
    /// `verify_strict` signature of the registered node. Then the evidence is stored
    /// (`Accept` when new, `Duplicate` when already held); no proof is stored or replaced.
    ///
    /// The outcome's digest is that of `b`, the message the sender reports as conflicting.
    pub async fn ingest_evidence(
        &mut self,
        store: &dyn ProofStore,
        verifier: &Verifier,
        now: UnixMillis,
        a: SignedMessage,
        b: SignedMessage,
    ) -> Result<(Outcome, Option<Evidence>), Error> {
        let digest = b.digest();
        let reject = |reason| Ok((Outcome { digest, verdict: Verdict::Reject(reason) }, None));
        let Some(clock) = self.slot_clock(now) else {
            return reject(RejectReason::FromFuture);
        };
        let known = |bytes: &[u8; 32]| self.registry.get_key_value(bytes).map(|(node, _)| *node);
        let decoded_a = TaskProof::from_signed_bytes_with(a.bytes(), &known);
        let decoded_b = TaskProof::from_signed_bytes_with(b.bytes(), &known);
        let ((network_a, proof_a), (network_b, proof_b)) = match (decoded_a, decoded_b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(error), _) | (_, Err(error)) => return reject(decode_reason(&error)),
        };
        // Not a conflict: the same bytes, or two different keys.
        if a.bytes() == b.bytes() || proof_a.key() != proof_b.key() {
            return reject(RejectReason::Malformed);
        }
        if network_a != network_b {
            return reject(RejectReason::WrongNetwork);
        }
        let time = self.params.time;
        let floor = Slot(
            time.epoch_start(time.epoch_of(clock.current))
                .map_or(0, |start| start.0)
                .saturating_sub(time.window_slots()),
        );
        let rule = SlotRule::Late { floor };
        let mut key = None;
        for (network, proof) in [(network_a, &proof_a), (network_b, &proof_b)] {
            match self.precheck(network, proof, &clock, &rule) {
                Ok(registered) => key = Some(registered),
                Err(reason) => return reject(reason),
            }
        }
        let Some(key) = key else { return reject(RejectReason::Malformed) };
        let items = [VerifyItem::of(key, &a), VerifyItem::of(key, &b)];
        if !verifier.verify_all(&items).iter().all(|valid| *valid) {
            return reject(RejectReason::BadSignature);
        }
        let proof_key = proof_a.key();
        let evidence = Evidence::new(proof_key.node, TASK_PROOF_TYPE, Some(proof_key), a, b);
        let verdict = if store.insert_evidence(&evidence).await? {
            Verdict::Accept
        } else {
            Verdict::Duplicate
        };
        Ok((Outcome { digest, verdict }, Some(evidence)))
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

mod pipeline;
pub use pipeline::{AdmittedBatch, PreparedBatch, SettledBatch, VerifiedBatch};

#[cfg(test)]
mod tests;
