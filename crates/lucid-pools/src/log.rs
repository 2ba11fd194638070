//! The pool op log (`pools-payouts.md` §2.2, §6 `pool_ops`, §8 T10): every accepted signed pool
//! op, kept write-once with the exact signed bytes it arrived as, and the state it ended in.
//!
//! The log is the source of truth for membership. An op is logged before it is acknowledged, so
//! an op accepted less than three slots before a restart is still applied at its effect slot
//! ([`apply_logged`] reads the due ops from the log, not from memory). Membership can always be
//! rebuilt from the log ([`PoolState::rebuild`], [`rebuild_from_log`]): a replay in canonical
//! order gives the same pools and rows as the incremental application, which is what makes a late
//! op (anti-entropy) safe to take: log it, then rebuild.
//!
//! The `(node, slot)` uniqueness key of a pool op holds in the log: a second, different op of
//! the same signer and slot is an equivocation and is reported as a [`LogOutcome::Conflict`]
//! with the op already logged, never stored.

use std::collections::BTreeMap;

use lucid_core::codec::DecodeError;
use lucid_core::message::Message as _;
use lucid_core::{Digest, NetworkId, SignedMessage, Slot};

use crate::error::Error;
use crate::op::{AcceptedOp, PoolOp};
use crate::state::{OpOutcome, OpResult, PoolState, RejectReason, target_pool};
use crate::store::{PoolStore, apply_slot_to_store};

/// An accepted pool op together with the signed pair it arrived as: what the log stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedOp {
    /// The decoded op and its digest.
    pub accepted: AcceptedOp,
    /// The signed bytes and signature, byte for byte as received.
    pub message: SignedMessage,
}

impl SignedOp {
    /// Decodes a signed pool op, returning the network it was made for. The signature is not
    /// checked here: ingest verifies it before anything is logged.
    pub fn decode(message: SignedMessage) -> Result<(NetworkId, Self), DecodeError> {
        let (network, op) = PoolOp::from_signed_bytes(message.bytes())?;
        let accepted = AcceptedOp { op, digest: message.digest() };
        Ok((network, SignedOp { accepted, message }))
    }

    /// The op's message digest (its identity in the log).
    pub fn digest(&self) -> Digest {
        self.accepted.digest
    }

    /// The slot the op takes effect, `None` past `u64::MAX`.
    pub fn effect_slot(&self) -> Option<Slot> {
        self.accepted.op.effect_slot()
    }
}

/// Where a logged op stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpState {
    /// Accepted; waits for its effect slot.
    Pending,
    /// Took effect at `at`.
    Applied {
        /// The effect slot.
        at: Slot,
    },
    /// Was rejected at `at`.
    Rejected {
        /// The effect slot.
        at: Slot,
        /// Why.
        reason: RejectReason,
    },
}

impl OpState {
    /// The state an op ends in after its effect slot `at` gave `result`.
    pub fn settled(result: OpResult, at: Slot) -> Self {
        match result {
            OpResult::Applied => OpState::Applied { at },
            OpResult::Rejected(reason) => OpState::Rejected { at, reason },
        }
    }

    /// The state text used in storage (`pending`, `applied`, `rejected`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Pending => "pending",
            OpState::Applied { .. } => "applied",
            OpState::Rejected { .. } => "rejected",
        }
    }
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOp {
    /// The op as received.
    pub op: SignedOp,
    /// Its state.
    pub state: OpState,
}

/// What logging an op found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutcome {
    /// The op is now in the log, `pending`.
    Inserted,
    /// The same op (same digest) was logged before; nothing changed.
    Duplicate,
    /// The signer already logged a different op in the same slot (the `(node, slot)` key): an
    /// equivocation. Nothing changed; the op already logged is returned.
    Conflict {
        /// The op that holds the key.
        existing: SignedMessage,
    },
}

/// Applies every pending op of the log whose effect slot is at most `through`, slot by slot in
/// canonical order through `store`, and records each outcome in the log. Returns the outcomes by
/// effect slot. Running it again applies nothing twice: settled ops are no longer pending.
///
/// An op is settled right after the store transaction that applied it. If the process stops
/// between the two, the op is still pending at restart and is applied again; Creates and Joins
/// are recognised as already applied (their rows carry the op digest), and every other op,
/// applied again, changes no membership (a Leave, Remove or Disband finds nothing to close, an
/// Unban nothing to lift, a SetMaxNodes sets the same value), so membership is the same either
/// way; only such an op's recorded outcome may then read `rejected`.
pub async fn apply_logged(
    store: &dyn PoolStore,
    through: Slot,
) -> Result<Vec<(Slot, Vec<OpOutcome>)>, Error> {
    let mut due: BTreeMap<Slot, Vec<AcceptedOp>> = BTreeMap::new();
    for op in store.pending_ops().await? {
        if let Some(effect) = op.effect_slot().filter(|slot| *slot <= through) {
            due.entry(effect).or_default().push(op.accepted);
        }
    }
    let mut applied = Vec::new();
    for (slot, ops) in due {
        let mut fresh = Vec::with_capacity(ops.len());
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            match already_applied(store, slot, &op).await? {
                Some(outcome) => {
                    store.settle_op(&outcome.digest, outcome.result, slot).await?;
                    outcomes.push(outcome);
                }
                None => fresh.push(op),
            }
        }
        for outcome in apply_slot_to_store(store, slot, &fresh).await? {
            store.settle_op(&outcome.digest, outcome.result, slot).await?;
            outcomes.push(outcome);
        }
        applied.push((slot, outcomes));
    }
    Ok(applied)
}

/// The outcome of a Create or Join whose effect is already in the store (the process stopped
/// after applying it and before settling it in the log).
async fn already_applied(
    store: &dyn PoolStore,
    slot: Slot,
    accepted: &AcceptedOp,
) -> Result<Option<OpOutcome>, Error> {
    let op = &accepted.op;
    let pool = target_pool(op);
    let applied = match &op.op {
        crate::op::Op::Create { .. } => store.get_pool(&pool).await?.is_some_and(|stored| {
            stored.pool.founder == op.node && stored.pool.created_slot == slot
        }),
        crate::op::Op::Join { .. } => store
            .members(&pool)
            .await?
            .iter()
            .any(|m| m.op_digest == accepted.digest && m.node_id == op.node && m.is_seat()),
        _ => false,
    };
    Ok(applied.then(|| OpOutcome {
        digest: accepted.digest,
        node: op.node,
        tag: op.op.tag(),
        pool,
        result: OpResult::Applied,
    }))
}

/// The T10 rebuild: replays the whole log through `through` in canonical order, notes the ops
/// still waiting, and replaces the store's pools, memberships and op states with the result in
/// one transaction ([`PoolStore::restore`]). Returns the rebuilt state.
///
/// Uptime-driven `degraded` seats are not in the log; the caller applies liveness again.
pub async fn rebuild_from_log(store: &dyn PoolStore, through: Slot) -> Result<PoolState, Error> {
    let log: Vec<AcceptedOp> = store.op_log().await?.into_iter().map(|l| l.op.accepted).collect();
    let (state, outcomes) = PoolState::rebuild(&log, through);
    store.restore(&state, &outcomes).await?;
    Ok(state)
}

/// The settled states of a rebuild, by digest: `(effect slot, outcome)` pairs as returned by
/// [`PoolState::rebuild`].
pub fn settled_states(outcomes: &[(Slot, OpOutcome)]) -> BTreeMap<Digest, OpState> {
    outcomes
        .iter()
        .map(|(slot, outcome)| (outcome.digest, OpState::settled(outcome.result, *slot)))
        .collect()
}

#[cfg(test)]
mod tests;
