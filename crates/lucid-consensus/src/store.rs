//! The `ProofStore` port: where accepted proofs, registrations and equivocation evidence live,
//! and an in-memory implementation of it.
//!
//! The port is object-safe and async (through `async-trait`, which needs no runtime) because its
//! real adapters (`lucid-storage`, SQLite and PostgreSQL) are. Inserts are insert-if-absent and
//! report, per item, whether the key was new, already held the same bytes, or held different
//! bytes: that comparison is what makes the equivocation check atomic with the insert.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lucid_core::message::Message;
use lucid_core::{Digest, NodeId, SignedMessage, Slot, SlotRange};

use crate::error::Error;
use crate::proof::{ProofKey, TaskProof};
use crate::registration::Registration;
use crate::seal::StoredSeal;

/// An accepted task proof with its signed pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredProof {
    /// The decoded proof.
    pub proof: TaskProof,
    /// The exact signed bytes and signature as received.
    pub message: SignedMessage,
    /// The message digest.
    pub digest: Digest,
    /// Accepted through the late path (anti-entropy) rather than live.
    pub late: bool,
}

impl StoredProof {
    /// The uniqueness key.
    pub fn key(&self) -> ProofKey {
        self.proof.key()
    }
}

/// An accepted registration record with its signed pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRegistration {
    /// The decoded record.
    pub registration: Registration,
    /// The exact signed bytes and signature as received.
    pub message: SignedMessage,
    /// The message digest.
    pub digest: Digest,
}

/// What an insert-if-absent found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The key was free; the item is now stored.
    Inserted,
    /// The key already held the same signed bytes; nothing changed.
    Duplicate,
    /// The key already held different bytes; nothing changed. Carries the stored pair.
    Conflict {
        /// The message stored first, which stays.
        existing: SignedMessage,
    },
}

/// Proof of equivocation: two valid signatures by one node over different bytes under one
/// uniqueness key. Self-verifying; `first` has the smaller digest so both orders store the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The equivocating node.
    pub node: NodeId,
    /// The message type (`task-proof`, `registration`, …).
    pub type_name: &'static str,
    /// The proof key, for task proofs (registrations are keyed by (node, seq)).
    pub proof_key: Option<ProofKey>,
    /// The pair with the smaller digest.
    pub first: SignedMessage,
    /// The pair with the larger digest.
    pub second: SignedMessage,
}

impl Evidence {
    /// Evidence from two conflicting pairs, in canonical (digest) order.
    pub fn new(
        node: NodeId,
        type_name: &'static str,
        proof_key: Option<ProofKey>,
        a: SignedMessage,
        b: SignedMessage,
    ) -> Self {
        let (first, second) = if a.digest() <= b.digest() { (a, b) } else { (b, a) };
        Evidence { node, type_name, proof_key, first, second }
    }

    /// The identity of this evidence: both digests, ordered.
    pub fn digests(&self) -> (Digest, Digest) {
        (self.first.digest(), self.second.digest())
    }

    /// The identity of evidence made of `a` and `b` in either order: what [`Evidence::digests`]
    /// answers once they are stored, computed without building the evidence.
    pub fn identity_of(a: &SignedMessage, b: &SignedMessage) -> (Digest, Digest) {
        let (a, b) = (a.digest(), b.digest());
        if a <= b { (a, b) } else { (b, a) }
    }
}

/// Persistence of accepted proofs, registrations and evidence.
#[async_trait::async_trait]
pub trait ProofStore: Send + Sync {
    /// Inserts each proof if its key is free; `result[i]` is the outcome of `proofs[i]`.
    /// Implementations insert in batches (multi-row statements) and never overwrite.
    async fn insert_proofs(&self, proofs: &[StoredProof]) -> Result<Vec<InsertOutcome>, Error>;

    /// The proof stored under `key`, if any.
    async fn get_proof(&self, key: &ProofKey) -> Result<Option<StoredProof>, Error>;

    /// Up to `limit` proofs with slot in `range`, ordered by (slot, node, kind), starting after
    /// `after`: the paging used to stream a window into the tally with bounded memory.
    async fn proofs_in_range(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, Error>;

    /// Stores evidence; `false` if the same evidence (same digest pair) was already stored.
    async fn insert_evidence(&self, evidence: &Evidence) -> Result<bool, Error>;

    /// Keys of task proofs with evidence whose slot lies in `range`.
    async fn evidence_keys(&self, range: SlotRange) -> Result<Vec<ProofKey>, Error>;

    /// Up to `limit` stored task-proof evidence items whose slot lies in `range`, in digest-pair
    /// order: what anti-entropy serves a peer that lacks some (`FetchEvidence`).
    async fn evidence_in_range(
        &self,
        range: SlotRange,
        limit: usize,
    ) -> Result<Vec<Evidence>, Error>;

    /// Inserts a registration if (node, seq) is free.
    async fn insert_registration(
        &self,
        registration: &StoredRegistration,
    ) -> Result<InsertOutcome, Error>;

    /// The current registration of every node (highest seq), ordered by node.
    async fn current_registrations(&self) -> Result<Vec<StoredRegistration>, Error>;

    /// Stores a slot seal if (node, slot) is free: write-once, a seal is never amended
    /// (consensus.md §6.3). `Duplicate` for the same bytes, `Conflict` (with the stored pair)
    /// for different ones.
    async fn insert_seal(&self, seal: &StoredSeal) -> Result<InsertOutcome, Error>;

    /// The seal `node` signed for `slot`, if stored.
    async fn get_seal(&self, node: &NodeId, slot: Slot) -> Result<Option<StoredSeal>, Error>;

    /// The tally of `epoch` computed by the store itself from what it holds, when it keeps
    /// something faster than reading every proof (the SQL store's per-chunk sums); `None` (the
    /// default) means the caller computes it from `proofs_in_range`. A `Some` must equal
    /// `TallyBuilder` fed every stored proof of the window minus the keys of `evidence_keys`.
    async fn stored_tally(
        &self,
        params: &crate::ConsensusParams,
        epoch: lucid_core::Epoch,
        membership: &(dyn crate::tally::MembershipView + Sync),
        revision: u32,
    ) -> Result<Option<crate::tally::Tally>, Error> {
        let _ = (params, epoch, membership, revision);
        Ok(None)
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    proofs: BTreeMap<ProofKey, StoredProof>,
    evidence: BTreeMap<(Digest, Digest), Evidence>,
    registrations: BTreeMap<(NodeId, u64), StoredRegistration>,
    seals: BTreeMap<(NodeId, Slot), StoredSeal>,
}

/// A `ProofStore` in memory: for tests, benches and simulations. Same semantics as the database
/// adapters, nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryProofStore {
    state: Mutex<MemoryState>,
}

impl MemoryProofStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding the lock cannot leave the maps half-updated (each operation is
        // one map call), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of stored proofs.
    pub fn proof_count(&self) -> usize {
        self.lock().proofs.len()
    }

    /// Every stored evidence, in digest order.
    pub fn all_evidence(&self) -> Vec<Evidence> {
        self.lock().evidence.values().cloned().collect()
    }
}

fn outcome_for(existing: &SignedMessage, incoming: &SignedMessage) -> InsertOutcome {
    if existing.bytes() == incoming.bytes() {
        InsertOutcome::Duplicate
    } else {
        InsertOutcome::Conflict { existing: existing.clone() }
    }
}

#[async_trait::async_trait]
impl ProofStore for MemoryProofStore {
    async fn insert_proofs(&self, proofs: &[StoredProof]) -> Result<Vec<InsertOutcome>, Error> {
        let mut state = self.lock();
        Ok(proofs
            .iter()
            .map(|proof| match state.proofs.entry(proof.key()) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(proof.clone());
                    InsertOutcome::Inserted
                }
                std::collections::btree_map::Entry::Occupied(stored) => {
                    outcome_for(&stored.get().message, &proof.message)
                }
            })
            .collect())
    }

    async fn get_proof(&self, key: &ProofKey) -> Result<Option<StoredProof>, Error> {
        Ok(self.lock().proofs.get(key).cloned())
    }

    async fn proofs_in_range(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, Error> {
        use std::ops::Bound;
        let state = self.lock();
        // Keys are ordered by (node, slot, kind); the paging order is (slot, node, kind), so the
        // in-memory store filters and sorts. Adapters use an index on slot instead.
        let mut hits: Vec<&StoredProof> =
            state.proofs.values().filter(|p| range.contains(p.proof.slot)).collect();
        hits.sort_unstable_by_key(|p| (p.proof.slot, p.proof.node, p.proof.kind()));
        let start = match after {
            None => Bound::Unbounded,
            Some(key) => Bound::Excluded((key.slot, key.node, key.kind)),
        };
        Ok(hits
            .into_iter()
            .filter(|p| {
                let order = (p.proof.slot, p.proof.node, p.proof.kind());
                match start {
                    Bound::Excluded(after) => order > after,
                    _ => true,
                }
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn insert_evidence(&self, evidence: &Evidence) -> Result<bool, Error> {
        let mut state = self.lock();
        let id = evidence.digests();
        if state.evidence.contains_key(&id) {
            return Ok(false);
        }
        state.evidence.insert(id, evidence.clone());
        Ok(true)
    }

    async fn evidence_keys(&self, range: SlotRange) -> Result<Vec<ProofKey>, Error> {
        let state = self.lock();
        let mut keys: Vec<ProofKey> = state
            .evidence
            .values()
            .filter_map(|e| e.proof_key)
            .filter(|k| range.contains(k.slot))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    async fn evidence_in_range(
        &self,
        range: SlotRange,
        limit: usize,
    ) -> Result<Vec<Evidence>, Error> {
        let state = self.lock();
        Ok(state
            .evidence
            .values()
            .filter(|e| e.proof_key.is_some_and(|k| range.contains(k.slot)))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn insert_registration(
        &self,
        registration: &StoredRegistration,
    ) -> Result<InsertOutcome, Error> {
        let mut state = self.lock();
        let key = (registration.registration.node, registration.registration.seq);
        match state.registrations.entry(key) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(registration.clone());
                Ok(InsertOutcome::Inserted)
            }
            std::collections::btree_map::Entry::Occupied(stored) => {
                Ok(outcome_for(&stored.get().message, &registration.message))
            }
        }
    }

    async fn current_registrations(&self) -> Result<Vec<StoredRegistration>, Error> {
        let state = self.lock();
        let mut current: BTreeMap<NodeId, &StoredRegistration> = BTreeMap::new();
        for ((node, _seq), record) in &state.registrations {
            // Iteration is in (node, seq) order, so the last record per node has the highest seq.
            current.insert(*node, record);
        }
        Ok(current.into_values().cloned().collect())
    }

    async fn insert_seal(&self, seal: &StoredSeal) -> Result<InsertOutcome, Error> {
        let mut state = self.lock();
        match state.seals.entry((seal.seal.node, seal.seal.slot)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(seal.clone());
                Ok(InsertOutcome::Inserted)
            }
            std::collections::btree_map::Entry::Occupied(stored) => {
                Ok(outcome_for(&stored.get().message, &seal.message))
            }
        }
    }

    async fn get_seal(&self, node: &NodeId, slot: Slot) -> Result<Option<StoredSeal>, Error> {
        Ok(self.lock().seals.get(&(*node, slot)).cloned())
    }
}

/// Builds a `StoredProof` from a decoded proof and its pair.
pub fn stored_proof(proof: TaskProof, message: SignedMessage, late: bool) -> StoredProof {
    let digest = message.digest();
    StoredProof { proof, message, digest, late }
}

/// The type name of task proofs, for evidence records.
pub const TASK_PROOF_TYPE: &str = TaskProof::TYPE_NAME;
/// The type name of registrations, for evidence records.
pub const REGISTRATION_TYPE: &str = Registration::TYPE_NAME;
