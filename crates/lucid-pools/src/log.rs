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
/// Each op is applied and settled in one store transaction ([`PoolStore::apply_and_settle`]), so
/// a stop at any point leaves every op either applied with its outcome recorded or still pending
/// with no effect; a re-run after a restart applies the pending ones and records each outcome
/// exactly as an uninterrupted run would have. A Create or Join whose effect is in the store while
/// the op is still pending (written by an earlier version of this code, which settled in a
/// second transaction) is recognised by its rows and settled as applied.
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
        // Each op's effect and its outcome in the log are one transaction.
        outcomes.extend(apply_slot_to_store(store, slot, &fresh).await?);
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

/// What [`check_against_log`] found wrong in the materialised tables (empty: nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Divergence {
    /// Pools whose stored row differs from the rebuild (or exists on one side only).
    pub pools: usize,
    /// Membership rows that differ (counted on both sides).
    pub rows: usize,
    /// Logged ops whose stored state differs from the rebuild's outcome.
    pub op_states: usize,
}

impl Divergence {
    /// Whether the tables equal the rebuild.
    pub fn is_empty(&self) -> bool {
        *self == Divergence::default()
    }
}

/// A pool as the log determines it: the status of a live pool also depends on uptime, which
/// the log does not hold, so `forming`, `active` and `degraded` compare equal.
fn logged_pool(pool: &crate::model::Pool) -> crate::model::Pool {
    let mut pool = pool.clone();
    if pool.status != crate::model::PoolStatus::Disbanded {
        pool.status = crate::model::PoolStatus::Active;
    }
    pool
}

/// A membership row as the log determines it: `degraded` is uptime, not log, so it reads `active`.
fn logged_row(row: &crate::model::Membership) -> crate::model::Membership {
    let mut row = row.clone();
    if row.status == crate::model::MemberStatus::Degraded {
        row.status = crate::model::MemberStatus::Active;
    }
    row
}

/// The start-up check: compares the materialised pools, memberships and op states with the T10
/// rebuild of the whole log through `through` and, when they differ, replaces them with the
/// rebuild in one transaction ([`rebuild_from_log`]). Returns what differed (empty when the
/// tables matched and nothing was written). Uptime-driven statuses are not compared; the caller
/// applies liveness again after a repair.
pub async fn check_against_log(store: &dyn PoolStore, through: Slot) -> Result<Divergence, Error> {
    let logged = store.op_log().await?;
    let log: Vec<AcceptedOp> = logged.iter().map(|l| l.op.accepted.clone()).collect();
    let (state, outcomes) = PoolState::rebuild(&log, through);
    let (pools, rows) = store.snapshot().await?;
    let mut divergence = Divergence::default();
    let stored: BTreeMap<_, _> = pools.iter().map(|p| (p.pool_id, logged_pool(p))).collect();
    let rebuilt: BTreeMap<_, _> = state.pools().map(|p| (p.pool_id, logged_pool(p))).collect();
    divergence.pools = stored
        .keys()
        .chain(rebuilt.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|id| stored.get(id) != rebuilt.get(id))
        .count();
    let key = |r: &crate::model::Membership| (r.pool_id, r.node_id, r.from_slot, r.op_digest);
    let mut stored_rows: Vec<_> = rows.iter().map(logged_row).collect();
    let mut rebuilt_rows: Vec<_> = state.rows().iter().map(logged_row).collect();
    stored_rows.sort_by_key(key);
    rebuilt_rows.sort_by_key(key);
    // Both sides sorted by the same key: count the positions that differ, plus the extra rows.
    divergence.rows = stored_rows.iter().zip(&rebuilt_rows).filter(|(a, b)| a != b).count()
        + stored_rows.len().abs_diff(rebuilt_rows.len());
    let settled = settled_states(&outcomes);
    divergence.op_states = logged
        .iter()
        .filter(|l| l.state != settled.get(&l.op.digest()).copied().unwrap_or(OpState::Pending))
        .count();
    if !divergence.is_empty() {
        store.restore(&state, &outcomes).await?;
    }
    Ok(divergence)
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
