//! The `PoolStore` port: where pools and memberships are persisted, and an in-memory
//! implementation of it with the same semantics ([`MemoryPoolStore`]).
//!
//! Every mutating method is one transaction in the SQL adapter (`pools-payouts.md` §2.4 and
//! §8, T1 and T2): it checks its preconditions inside the transaction, changes the rows and the
//! counters together, recomputes the pool status, and either commits all of it or nothing. The
//! conditional updates make the limits hold under any concurrency, and the database constraints
//! named on each method are the backstop. No cache in front of the store is a source of truth:
//! every read of membership goes to the store.
//!
//! The port is object-safe and async (through `async-trait`, which needs no runtime) because its
//! database adapters are. [`apply_slot_to_store`] applies the ops of a slot through the port
//! with the same rules as [`crate::state::PoolState::apply_slot`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use lucid_consensus::tally::MembershipTimeline;
use lucid_core::{Digest, NodeId, PoolId, Slot};

use crate::checks;
use crate::error::Error;
use crate::log::{LogOutcome, LoggedOp, OpState, SignedOp, settled_states};
use crate::model::{Liveness, MemberStatus, Membership, Pool, PoolStatus, Role, choose_successor};
use crate::op::{AcceptedOp, Op};
use crate::state::{
    Action, OpOutcome, OpResult, PoolState, RejectReason, canonical_batch, decide, target_pool,
};

/// What seating a node found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeatOutcome {
    /// The seat row is inserted and the pool's seat counter incremented.
    Seated,
    /// The pool's seats already equal its `max_nodes`.
    PoolFull,
    /// The node already holds a seat (in this or another pool).
    AlreadyInPool,
    /// The pool is disbanded.
    PoolDisbanded,
    /// No such pool.
    PoolNotFound,
    /// The node is banned in the pool.
    Banned,
    /// A leader seat was asked for but the pool already has a leader seat.
    LeaderTaken,
}

/// What creating a pool found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateOutcome {
    /// The pool exists, `forming`, with the founder seated as leader.
    Created,
    /// The founder already holds a seat.
    AlreadyInPool,
    /// A pool with this id already exists.
    PoolExists,
    /// `max_nodes` is outside 1..=100.
    InvalidMaxNodes,
}

/// What closing a seat found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseOutcome {
    /// The seat is closed (or turned into a ban).
    Closed {
        /// The new leader, when the closed seat was the leader's and a seat holder remained.
        successor: Option<NodeId>,
        /// Whether the pool was disbanded because no seat holder remained.
        disbanded: bool,
    },
    /// The node holds no seat in the pool.
    NotSeated,
    /// No such pool.
    PoolNotFound,
}

/// What disbanding found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DisbandOutcome {
    /// Every seat is closed and the pool is disbanded.
    Disbanded {
        /// How many seats were closed.
        closed: u32,
    },
    /// The pool was already disbanded.
    AlreadyDisbanded,
    /// No such pool.
    PoolNotFound,
}

/// What lifting a ban found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnbanOutcome {
    /// The ban row is closed; the node may join again.
    Unbanned,
    /// The node is not banned in the pool.
    NotBanned,
}

/// What setting `max_nodes` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetMaxNodesOutcome {
    /// The limit is set; the pool's new version.
    Set {
        /// The version after the change.
        version: u64,
    },
    /// The pool changed since the caller read it (compare-and-set failed); nothing changed.
    VersionMismatch {
        /// The current version.
        current: u64,
    },
    /// The limit is below the seats held.
    BelowSeats {
        /// The seats held.
        seats: u32,
    },
    /// The limit is outside 1..=100.
    InvalidMaxNodes,
    /// The pool is disbanded.
    PoolDisbanded,
    /// No such pool.
    PoolNotFound,
}

/// A new pool to create, with its founder seated as leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPool {
    /// `PoolId::derive(founder, op slot, name)`.
    pub pool_id: PoolId,
    /// Display name (validated by the op).
    pub name: String,
    /// The founder, seated as leader.
    pub founder: NodeId,
    /// Seat limit, 1..=100.
    pub max_nodes: u8,
    /// The effect slot of the Create; the founder's seat starts here.
    pub created_slot: Slot,
    /// Digest of the Create op.
    pub op_digest: Digest,
}

/// A pool row with its version, which every change of the row increments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPool {
    /// The pool.
    pub pool: Pool,
    /// Compare-and-set version.
    pub version: u64,
}

/// One store change that applies a pool op at its effect slot: the argument of
/// [`PoolStore::apply_and_settle`], which runs it and records the op's outcome in the log in the
/// same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// [`PoolStore::create_pool`].
    Create(NewPool),
    /// [`PoolStore::seat`].
    Seat {
        /// The pool.
        pool: PoolId,
        /// The node to seat.
        node: NodeId,
        /// Its role.
        role: Role,
        /// The seat's first slot.
        from_slot: Slot,
        /// The Join's digest.
        op_digest: Digest,
    },
    /// [`PoolStore::close_seat`].
    Close {
        /// The pool.
        pool: PoolId,
        /// The seat holder.
        node: NodeId,
        /// The slot the seat closes.
        at_slot: Slot,
        /// Whether the node is banned.
        ban: bool,
    },
    /// [`PoolStore::disband`].
    Disband {
        /// The pool.
        pool: PoolId,
        /// The slot of the disbanding.
        at_slot: Slot,
    },
    /// [`PoolStore::unban`].
    Unban {
        /// The pool.
        pool: PoolId,
        /// The banned node.
        node: NodeId,
    },
    /// [`PoolStore::set_max_nodes`].
    SetMaxNodes {
        /// The pool.
        pool: PoolId,
        /// The new limit.
        max: u8,
        /// The version the decision was made against (compare-and-set).
        expected_version: u64,
    },
    /// No change: the rules already rejected the op.
    Refuse(RejectReason),
}

/// What an [`Effect`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EffectOutcome {
    /// Of [`Effect::Create`].
    Create(CreateOutcome),
    /// Of [`Effect::Seat`].
    Seat(SeatOutcome),
    /// Of [`Effect::Close`].
    Close(CloseOutcome),
    /// Of [`Effect::Disband`].
    Disband(DisbandOutcome),
    /// Of [`Effect::Unban`].
    Unban(UnbanOutcome),
    /// Of [`Effect::SetMaxNodes`].
    SetMaxNodes(SetMaxNodesOutcome),
    /// Of [`Effect::Refuse`].
    Refused(RejectReason),
}

impl EffectOutcome {
    /// The op's result, or `None` when the decision must be made again because the pool changed
    /// after it was read (a lost compare-and-set; nothing changed). The one mapping from store
    /// outcomes to op results, used by every store inside its transaction.
    pub fn op_result(self) -> Option<OpResult> {
        let rejected = |reason| Some(OpResult::Rejected(reason));
        match self {
            EffectOutcome::Create(CreateOutcome::Created)
            | EffectOutcome::Seat(SeatOutcome::Seated)
            | EffectOutcome::Close(CloseOutcome::Closed { .. })
            | EffectOutcome::Disband(DisbandOutcome::Disbanded { .. })
            | EffectOutcome::Unban(UnbanOutcome::Unbanned)
            | EffectOutcome::SetMaxNodes(SetMaxNodesOutcome::Set { .. }) => Some(OpResult::Applied),
            EffectOutcome::SetMaxNodes(SetMaxNodesOutcome::VersionMismatch { .. }) => None,
            EffectOutcome::Create(CreateOutcome::AlreadyInPool | CreateOutcome::PoolExists)
            | EffectOutcome::Seat(SeatOutcome::AlreadyInPool | SeatOutcome::LeaderTaken) => {
                rejected(RejectReason::AlreadyInPool)
            }
            EffectOutcome::Create(CreateOutcome::InvalidMaxNodes)
            | EffectOutcome::SetMaxNodes(SetMaxNodesOutcome::InvalidMaxNodes) => {
                rejected(RejectReason::InvalidMaxNodes)
            }
            EffectOutcome::Seat(SeatOutcome::PoolFull) => rejected(RejectReason::PoolFull),
            EffectOutcome::Seat(SeatOutcome::PoolDisbanded)
            | EffectOutcome::Disband(DisbandOutcome::AlreadyDisbanded)
            | EffectOutcome::SetMaxNodes(SetMaxNodesOutcome::PoolDisbanded) => {
                rejected(RejectReason::PoolDisbanded)
            }
            EffectOutcome::Seat(SeatOutcome::PoolNotFound)
            | EffectOutcome::Close(CloseOutcome::PoolNotFound)
            | EffectOutcome::Disband(DisbandOutcome::PoolNotFound)
            | EffectOutcome::SetMaxNodes(SetMaxNodesOutcome::PoolNotFound) => {
                rejected(RejectReason::PoolNotFound)
            }
            EffectOutcome::Seat(SeatOutcome::Banned) => rejected(RejectReason::Banned),
            EffectOutcome::Close(CloseOutcome::NotSeated)
            | EffectOutcome::Unban(UnbanOutcome::NotBanned) => rejected(RejectReason::NotMember),
            EffectOutcome::SetMaxNodes(SetMaxNodesOutcome::BelowSeats { .. }) => {
                rejected(RejectReason::BelowSeats)
            }
            EffectOutcome::Refused(reason) => rejected(reason),
        }
    }
}

/// The op an [`Effect`] applies, whose outcome is recorded in the same transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The op's digest (its key in the log).
    pub digest: Digest,
    /// The effect slot.
    pub at: Slot,
    /// For a Join, the pool and the joining node: a rejected Join leaves a `rejected` row.
    pub join: Option<(PoolId, NodeId)>,
}

/// What [`PoolStore::apply_and_settle`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The effect (if the op applied) and the op's outcome are committed together. An op that
    /// is not in the log (applied directly, as in tests) only gets the effect.
    Done(OpResult),
    /// The pool changed after the decision was made; nothing was written, decide again.
    Retry,
    /// The op was already settled in the log; nothing was written.
    AlreadySettled,
}

/// Persistence of pools and memberships. Each mutating method is one transaction.
#[async_trait::async_trait]
pub trait PoolStore: Send + Sync {
    /// Inserts the pool (`forming`, seats 1) and the founder's leader seat, in one transaction.
    ///
    /// Backed by the partial `UNIQUE (node_id) WHERE seat` (one seat per node), the partial
    /// `UNIQUE (pool_id) WHERE role = 'leader' AND seat` (one leader), `CHECK (max_nodes BETWEEN
    /// 1 AND 100)` and the primary key of `pools`.
    async fn create_pool(&self, new: &NewPool) -> Result<CreateOutcome, Error>;

    /// Seats `node` in `pool` from `from_slot`, in one transaction (T1): `UPDATE pools SET seats =
    /// seats + 1, version = version + 1 WHERE pool_id = ? AND seats < max_nodes AND status <>
    /// 'disbanded'` must affect one row, then the Join's `joining` row (found by `op_digest`)
    /// becomes the seat, or a seat row is inserted, and the pool status is recomputed; anything
    /// else rolls back.
    ///
    /// Backed by `CHECK (seats BETWEEN 0 AND max_nodes)` (the cap) and the partial `UNIQUE
    /// (node_id) WHERE seat` (a node racing into two pools gets one seat).
    async fn seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, Error>;

    /// Closes the seat of `node` in `pool` at `at_slot` (Leave, or Remove with or without ban),
    /// in one transaction (T2): close or ban the row, decrement seats, and when it was the
    /// leader's seat promote the seat holder with the smallest `from_slot` (ties by `NodeId`), or
    /// disband the pool when none is left; then recompute the pool status.
    ///
    /// Backed by the partial `UNIQUE (pool_id) WHERE role = 'leader' AND seat` (never two
    /// leaders) and `CHECK (seats BETWEEN 0 AND max_nodes)`.
    async fn close_seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, Error>;

    /// Closes every seat of `pool` at `at_slot` and marks it disbanded, in one transaction (T2).
    /// Backed by `CHECK (status IN (…))` and the seats check (seats become 0).
    async fn disband(&self, pool: &PoolId, at_slot: Slot) -> Result<DisbandOutcome, Error>;

    /// Closes the ban row of `node` in `pool`, in one transaction.
    async fn unban(&self, pool: &PoolId, node: &NodeId) -> Result<UnbanOutcome, Error>;

    /// Sets `max_nodes` if the pool's version is still `expected_version` (compare-and-set), the
    /// pool is not disbanded and `max >= seats`, in one transaction.
    ///
    /// Backed by `CHECK (max_nodes BETWEEN 1 AND 100)` and `CHECK (seats BETWEEN 0 AND
    /// max_nodes)`, so a limit below the seats cannot be stored even by a buggy caller.
    async fn set_max_nodes(
        &self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, Error>;

    /// Records an accepted Join before its effect slot: inserts a `joining` row (no seat) unless a
    /// row for `op_digest` exists already. `false` if it did.
    async fn note_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        effect_slot: Slot,
        op_digest: &Digest,
    ) -> Result<bool, Error>;

    /// Records a Join rejected at its effect slot: its `joining` row (or a new row) becomes
    /// `rejected` with `reason`, holding no seat.
    async fn reject_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), Error>;

    /// Joins of `pool` accepted and not yet applied (`joining` rows), for the advisory capacity
    /// check of the API.
    async fn pending_joins(&self, pool: &PoolId) -> Result<usize, Error>;

    /// Marks the active or degraded seat of `node` in `pool` as `leaving` (a Leave was accepted;
    /// the seat is kept until the effect slot) and recomputes the pool status. `false` if there
    /// was no such seat.
    async fn mark_leaving(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error>;

    /// Applies a change of `node`'s uptime status to its seat (`active` ⇄ `degraded`) and
    /// recomputes the pool status; the seat's status afterwards, `None` without a seat.
    async fn set_liveness(
        &self,
        node: &NodeId,
        liveness: Liveness,
    ) -> Result<Option<MemberStatus>, Error>;

    /// The pool `pool` with its version.
    async fn get_pool(&self, pool: &PoolId) -> Result<Option<StoredPool>, Error>;

    /// The current rows of `pool` (seats and bans), ordered by `NodeId`.
    async fn members(&self, pool: &PoolId) -> Result<Vec<Membership>, Error>;

    /// Whether `node` is banned from `pool`: one keyed lookup (SQL: the `(pool_id, status)`
    /// index), not a read of the pool's members.
    async fn is_banned(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error>;

    /// The pool where `node` holds a seat.
    async fn pool_of(&self, node: &NodeId) -> Result<Option<PoolId>, Error>;

    /// Every seat that held at least one slot, as the timeline consumed by consensus.
    async fn timeline(&self) -> Result<MembershipTimeline, Error>;

    /// Every pool and every membership row ever (rows in insertion order), read together so
    /// that they agree: for the health loop, the metrics and the start-up check against a
    /// rebuild from the log.
    async fn snapshot(&self) -> Result<(Vec<Pool>, Vec<Membership>), Error>;

    /// Checks `seats == COUNT(seat rows)`, seats ≤ max_nodes ≤ 100, one seat per node and one
    /// leader seat per pool that is not disbanded (run at start-up and in tests).
    async fn audit(&self) -> Result<(), Error>;

    /// Persists an accepted op in the op log (`pools-payouts.md` §6 `pool_ops`), `pending`,
    /// insert-if-absent: the same digest again is a `Duplicate`, a different op of the same
    /// signer and slot a `Conflict`. The signed bytes and signature are stored byte for byte and
    /// never change (backed by the primary key on the digest, `UNIQUE (node_id, slot)` and a
    /// trigger refusing any change of the signed columns or a deletion).
    async fn log_op(&self, op: &SignedOp) -> Result<LogOutcome, Error>;

    /// Logs an accepted op ([`PoolStore::log_op`]) and, when it was new, notes it like
    /// [`note_accepted_in_store`] (a Join's `joining` row, a Leave's `leaving` seat). The SQL
    /// store does both in one transaction (one durable commit per accepted op); this default
    /// does them one after the other, which is as safe because noting again at start is
    /// idempotent.
    async fn log_accepted(&self, op: &SignedOp) -> Result<LogOutcome, Error> {
        let outcome = self.log_op(op).await?;
        if outcome == LogOutcome::Inserted {
            note_accepted_in_store_dyn(self, &op.accepted).await?;
        }
        Ok(outcome)
    }

    /// Logs a batch of Joins accepted by the API (group commit): each op in turn is checked by
    /// [`checks::join_refusal`] against the store as the earlier ops of the batch left it, and when
    /// admitted is logged and noted like [`PoolStore::log_accepted`]. A Join whose digest is
    /// already pending in the log is a [`JoinAdmission::Duplicate`] before any check. One outcome
    /// per op, in order; an op that fails (`Err`) or is refused writes nothing and never spoils
    /// the others.
    ///
    /// The SQL store runs the whole batch in one transaction (one durable commit for the batch):
    /// it checks the ops in memory against one read of the facts of their pools and signers and
    /// writes the admitted ones with multi-row inserts, and when the database refuses those
    /// inserts it runs each op inside its own savepoint instead; an outer `Err` means nothing of
    /// the batch was committed. This default runs the ops one after the other through the other
    /// methods.
    async fn log_joins(
        &self,
        joins: &[SignedOp],
    ) -> Result<Vec<Result<JoinAdmission, Error>>, Error> {
        let mut outcomes = Vec::with_capacity(joins.len());
        for join in joins {
            outcomes.push(admit_join_dyn(self, join).await);
        }
        Ok(outcomes)
    }

    /// The logged op `digest` with its state, if any.
    async fn logged_op(&self, digest: &Digest) -> Result<Option<LoggedOp>, Error> {
        Ok(self.op_log().await?.into_iter().find(|l| l.op.digest() == *digest))
    }

    /// Everything the advisory check of a Join of `node` into `pool` reads
    /// (`pools-payouts.md` §2.2), for the API's request path: whether the op `digest` is already
    /// pending, the pool, and the facts of [`checks::join_refusal`]. The SQL store answers it in
    /// one statement (one round trip instead of six); this default reads through the other
    /// methods, and like [`join_facts`] leaves a fact at its default when an earlier one decides.
    async fn join_advice(
        &self,
        pool: &PoolId,
        node: &NodeId,
        digest: &Digest,
    ) -> Result<JoinAdvice, Error> {
        if self.logged_op(digest).await?.is_some_and(|l| l.state == OpState::Pending) {
            return Ok(JoinAdvice { pending_duplicate: true, ..JoinAdvice::default() });
        }
        let pool_row = self.get_pool(pool).await?.map(|s| s.pool);
        let mut facts = checks::JoinFacts::default();
        if pool_row.as_ref().is_some_and(|p| p.status != PoolStatus::Disbanded) {
            let seat_requested =
                self.pool_of(node).await?.is_some() || self.has_pending_seat_request(node).await?;
            facts = join_facts(self, pool, node, seat_requested).await?;
        }
        Ok(JoinAdvice { pending_duplicate: false, pool: pool_row, facts })
    }

    /// Whether `node` has a logged Create or Join still pending.
    async fn has_pending_seat_request(&self, node: &NodeId) -> Result<bool, Error> {
        Ok(self.pending_ops().await?.iter().any(|op| {
            op.accepted.op.node == *node
                && matches!(op.accepted.op.op, Op::Join { .. } | Op::Create { .. })
        }))
    }

    /// The pending ops of the log, by (slot, digest).
    async fn pending_ops(&self) -> Result<Vec<SignedOp>, Error>;

    /// The whole op log with states, by (slot, digest).
    async fn op_log(&self) -> Result<Vec<LoggedOp>, Error>;

    /// Records how the pending op `digest` ended at its effect slot `at`: a compare-and-set from
    /// `pending`. `false` if the op is not in the log or is no longer pending.
    async fn settle_op(&self, digest: &Digest, result: OpResult, at: Slot) -> Result<bool, Error>;

    /// Runs `effect` and, in the same transaction, records the outcome of the op `settle` in the
    /// log (a compare-and-set from `pending`; a rejected Join also gets its `rejected` row), so
    /// that a crash can never leave an op applied but still pending, or settled but not applied.
    /// A refused effect writes nothing but the outcome. If the op is already settled, nothing is
    /// written and [`Settled::AlreadySettled`] is returned.
    async fn apply_and_settle(
        &self,
        effect: &Effect,
        settle: &Settlement,
    ) -> Result<Settled, Error>;

    /// The T10 rebuild: replaces every pool and membership row with those of `state` and sets
    /// the state of every logged op from `outcomes` (ops without an outcome become `pending`), in
    /// one transaction. Pool versions move past every version held before, so a compare-and-set
    /// prepared against the old rows fails.
    async fn restore(&self, state: &PoolState, outcomes: &[(Slot, OpOutcome)])
    -> Result<(), Error>;
}

/// Applies, through `store`, every op of `ops` that takes effect at `slot`, in canonical order,
/// with the rules of [`crate::state::PoolState::apply_slot`] (whose outcomes it returns, equal).
///
/// The rules are checked against what the store returns, then [`PoolStore::apply_and_settle`]
/// does the change, re-checks what concurrency could have changed (capacity, seats) and records
/// the op's outcome in the log, all in one transaction, so a race ends as a rejection rather than
/// a broken limit and a crash never separates an effect from its recorded outcome. A rejected
/// Join leaves a `rejected` row. An op found already settled is reported with its logged result.
pub async fn apply_slot_to_store(
    store: &dyn PoolStore,
    slot: Slot,
    ops: &[AcceptedOp],
) -> Result<Vec<OpOutcome>, Error> {
    let mut outcomes = Vec::new();
    for accepted in canonical_batch(slot, ops) {
        let result = apply_op_to_store(store, slot, accepted).await?;
        outcomes.push(OpOutcome {
            digest: accepted.digest,
            node: accepted.op.node,
            tag: accepted.op.op.tag(),
            pool: target_pool(&accepted.op),
            result,
        });
    }
    Ok(outcomes)
}

/// How many times a compare-and-set is retried after a concurrent change before giving up.
const CAS_ATTEMPTS: usize = 8;

/// The store change that carries out `action` for the op `accepted` at `slot`.
fn effect_of(action: Action, accepted: &AcceptedOp, slot: Slot, version: u64) -> Effect {
    let op = &accepted.op;
    match action {
        Action::Create { pool, name, max_nodes } => Effect::Create(NewPool {
            pool_id: pool,
            name,
            founder: op.node,
            max_nodes,
            created_slot: slot,
            op_digest: accepted.digest,
        }),
        Action::Seat { pool } => Effect::Seat {
            pool,
            node: op.node,
            role: Role::Member,
            from_slot: slot,
            op_digest: accepted.digest,
        },
        Action::Close { pool, node, ban } => Effect::Close { pool, node, at_slot: slot, ban },
        Action::Unban { pool, node } => Effect::Unban { pool, node },
        Action::SetMaxNodes { pool, max } => {
            Effect::SetMaxNodes { pool, max, expected_version: version }
        }
        Action::Disband { pool } => Effect::Disband { pool, at_slot: slot },
    }
}

async fn apply_op_to_store(
    store: &dyn PoolStore,
    slot: Slot,
    accepted: &AcceptedOp,
) -> Result<OpResult, Error> {
    let op = &accepted.op;
    let pool_id = target_pool(op);
    let join = match op.op {
        Op::Join { pool } => Some((pool, op.node)),
        _ => None,
    };
    let settle = Settlement { digest: accepted.digest, at: slot, join };
    for _ in 0..CAS_ATTEMPTS {
        let stored = store.get_pool(&pool_id).await?;
        let signer_seat = store.pool_of(&op.node).await?;
        let members = if stored.is_some() { store.members(&pool_id).await? } else { Vec::new() };
        let pool = stored.as_ref().map(|s| &s.pool);
        let version = stored.as_ref().map_or(0, |s| s.version);
        let effect = match decide(op, pool, signer_seat, &members) {
            Ok(action) => effect_of(action, accepted, slot, version),
            Err(reason) => Effect::Refuse(reason),
        };
        match store.apply_and_settle(&effect, &settle).await? {
            Settled::Done(result) => return Ok(result),
            // The pool changed between the read and the write: decide again.
            Settled::Retry => continue,
            Settled::AlreadySettled => return logged_result(store, &accepted.digest).await,
        }
    }
    Err(Error::Contention { pool: pool_id })
}

/// The result the log holds for a settled op.
async fn logged_result(store: &dyn PoolStore, digest: &Digest) -> Result<OpResult, Error> {
    let state =
        store.op_log().await?.into_iter().find(|l| l.op.digest() == *digest).map(|l| l.state);
    match state {
        Some(OpState::Applied { .. }) => Ok(OpResult::Applied),
        Some(OpState::Rejected { reason, .. }) => Ok(OpResult::Rejected(reason)),
        Some(OpState::Pending) | None => {
            Err(lucid_core::internal!("pool op {digest} was reported settled but is not").into())
        }
    }
}

/// What the advisory check of one Join reads ([`PoolStore::join_advice`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinAdvice {
    /// The same op is already pending in the log: it is answered as before, nothing else read.
    pub pending_duplicate: bool,
    /// The pool the Join names, if it exists.
    pub pool: Option<Pool>,
    /// The facts of [`checks::join_refusal`]; left at their defaults when the pool is missing
    /// or disbanded, or when an earlier fact decides.
    pub facts: checks::JoinFacts,
}

/// What logging one Join of a batch did ([`PoolStore::log_joins`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinAdmission {
    /// Now in the log, `pending`, with its `joining` row.
    Logged,
    /// The same op is already in the log; nothing changed.
    Duplicate,
    /// The signer already logged a different op in the same slot; nothing changed.
    Conflict {
        /// The op that holds the `(node, slot)` key.
        existing: lucid_core::SignedMessage,
    },
    /// Refused by [`checks::join_refusal`]; nothing written.
    Refused(RejectReason),
}

/// The facts of [`checks::join_refusal`] for `node` joining `pool`, read through the port, when
/// whether the node holds or asked for a seat (`seat_requested`) is known already: the ban and
/// the waiting Joins are read only when they can still decide. The daemon's advisory check and
/// this port's default `log_joins` share it; the SQL store reads the same facts inside its
/// transaction.
pub async fn join_facts<S: PoolStore + ?Sized>(
    store: &S,
    pool: &PoolId,
    node: &NodeId,
    seat_requested: bool,
) -> Result<checks::JoinFacts, Error> {
    let mut facts = checks::JoinFacts { seat_requested, ..checks::JoinFacts::default() };
    if !seat_requested {
        facts.banned = store.is_banned(pool, node).await?;
        if facts.banned {
            return Ok(facts);
        }
        facts.pending_joins = u64::try_from(store.pending_joins(pool).await?).unwrap_or(u64::MAX);
    }
    Ok(facts)
}

/// One Join of [`PoolStore::log_joins`] through the other methods of the port.
async fn admit_join_dyn<S: PoolStore + ?Sized>(
    store: &S,
    join: &SignedOp,
) -> Result<JoinAdmission, Error> {
    let node = join.accepted.op.node;
    let Op::Join { pool } = join.accepted.op.op else {
        return Err(
            lucid_core::internal!("op {} in a batch of Joins is no Join", join.digest()).into()
        );
    };
    if store.logged_op(&join.digest()).await?.is_some_and(|l| l.state == OpState::Pending) {
        return Ok(JoinAdmission::Duplicate);
    }
    let stored = store.get_pool(&pool).await?;
    let mut facts = checks::JoinFacts::default();
    if stored.as_ref().is_some_and(|s| s.pool.status != PoolStatus::Disbanded) {
        let seat_requested =
            store.pool_of(&node).await?.is_some() || store.has_pending_seat_request(&node).await?;
        facts = join_facts(store, &pool, &node, seat_requested).await?;
    }
    if let Some(reason) = checks::join_refusal(stored.as_ref().map(|s| &s.pool), facts) {
        return Ok(JoinAdmission::Refused(reason));
    }
    Ok(match store.log_accepted(join).await? {
        LogOutcome::Inserted => JoinAdmission::Logged,
        LogOutcome::Duplicate => JoinAdmission::Duplicate,
        LogOutcome::Conflict { existing } => JoinAdmission::Conflict { existing },
    })
}

/// [`note_accepted_in_store`] for the default methods of the trait, which hold `&Self`.
async fn note_accepted_in_store_dyn<S: PoolStore + ?Sized>(
    store: &S,
    op: &AcceptedOp,
) -> Result<(), Error> {
    match op.op.op {
        Op::Join { pool } => {
            if let Some(effect) = op.op.effect_slot() {
                store.note_join(&pool, &op.op.node, effect, &op.digest).await?;
            }
        }
        Op::Leave { pool } => {
            store.mark_leaving(&pool, &op.op.node).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Records that ingest accepted `op` before its effect slot, like
/// [`crate::state::PoolState::note_accepted`]: a Join gets a `joining` row, and for a Leave the
/// signer's seat becomes `leaving`.
pub async fn note_accepted_in_store(store: &dyn PoolStore, op: &AcceptedOp) -> Result<(), Error> {
    note_accepted_in_store_dyn(store, op).await
}

/// The tables of the in-memory store, shaped like the SQL schema (`pools-payouts.md` §6):
/// a pool row with its counters and version, and membership rows that are never deleted.
#[derive(Debug, Default)]
struct Tables {
    pools: BTreeMap<PoolId, StoredPool>,
    members: Vec<Membership>,
    /// The op log by digest.
    log: BTreeMap<Digest, LoggedOp>,
}

impl Tables {
    fn seat_index(&self, node: &NodeId) -> Option<usize> {
        self.members.iter().position(|m| m.node_id == *node && m.is_seat())
    }

    fn seat_index_in(&self, pool: &PoolId, node: &NodeId) -> Option<usize> {
        self.members.iter().position(|m| m.pool_id == *pool && m.node_id == *node && m.is_seat())
    }

    fn ban_index(&self, pool: &PoolId, node: &NodeId) -> Option<usize> {
        self.members.iter().position(|m| {
            m.pool_id == *pool && m.node_id == *node && m.status == MemberStatus::Banned
        })
    }

    /// Replaces the `joining` row of the same op (`UPDATE … WHERE op_digest = ? AND status =
    /// 'joining'`), or inserts `row` when there is none.
    fn upsert_join_row(&mut self, row: Membership) {
        let joining = self.members.iter_mut().find(|m| {
            m.op_digest == row.op_digest
                && m.node_id == row.node_id
                && m.status == MemberStatus::Joining
        });
        match joining {
            Some(existing) => *existing = row,
            None => self.members.push(row),
        }
    }

    /// Recomputes the status of `pool` from its rows in status `active`, bumping the version
    /// when it changes.
    fn refresh_status(&mut self, pool: &PoolId) {
        let active = self
            .members
            .iter()
            .filter(|m| m.pool_id == *pool && m.status == MemberStatus::Active)
            .count();
        if let Some(stored) = self.pools.get_mut(pool) {
            let next = stored.pool.status.recompute(active);
            if next != stored.pool.status {
                stored.pool.status = next;
                stored.version += 1;
            }
        }
    }

    fn do_create(&mut self, new: &NewPool) -> Result<CreateOutcome, Error> {
        let exists = self.pools.contains_key(&new.pool_id);
        let founder_has_seat = self.seat_index(&new.founder).is_some();
        if let Some(refusal) = checks::create_refusal(new.max_nodes, exists, founder_has_seat) {
            return Ok(refusal);
        }
        let pool = Pool {
            pool_id: new.pool_id,
            name: new.name.clone(),
            founder: new.founder,
            leader: new.founder,
            max_nodes: new.max_nodes,
            status: PoolStatus::Forming,
            seats: 1,
            created_slot: new.created_slot,
            disbanded_slot: None,
        };
        self.pools.insert(new.pool_id, StoredPool { pool, version: 1 });
        self.members.push(Membership {
            pool_id: new.pool_id,
            node_id: new.founder,
            role: Role::Leader,
            status: MemberStatus::Active,
            from_slot: new.created_slot,
            to_slot: None,
            op_digest: new.op_digest,
            reason: None,
        });
        self.refresh_status(&new.pool_id);
        Ok(CreateOutcome::Created)
    }
    fn do_seat(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, Error> {
        let facts = checks::SeatFacts {
            node_has_seat: self.seat_index(node).is_some(),
            banned: self.ban_index(pool, node).is_some(),
            leader_seated: self
                .members
                .iter()
                .any(|m| m.pool_id == *pool && m.is_seat() && m.role == Role::Leader),
        };
        if let Some(refusal) = checks::seat_refusal(self.pools.get(pool), role, facts) {
            return Ok(refusal);
        }
        if let Some(stored) = self.pools.get_mut(pool) {
            stored.pool.seats += 1;
            stored.version += 1;
            if role == Role::Leader {
                stored.pool.leader = *node;
            }
        }
        self.upsert_join_row(Membership {
            pool_id: *pool,
            node_id: *node,
            role,
            status: MemberStatus::Active,
            from_slot,
            to_slot: None,
            op_digest: *op_digest,
            reason: None,
        });
        self.refresh_status(pool);
        Ok(SeatOutcome::Seated)
    }
    fn do_close(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, Error> {
        if !self.pools.contains_key(pool) {
            return Ok(CloseOutcome::PoolNotFound);
        }
        let Some(index) = self.seat_index_in(pool, node) else {
            return Ok(CloseOutcome::NotSeated);
        };
        let row = &mut self.members[index];
        row.status = if ban { MemberStatus::Banned } else { MemberStatus::Closed };
        row.to_slot = Some(at_slot);
        let was_leader = row.role == Role::Leader;
        if let Some(stored) = self.pools.get_mut(pool) {
            stored.pool.seats = stored.pool.seats.saturating_sub(1);
            stored.version += 1;
        }
        let mut successor = None;
        let mut disbanded = false;
        if was_leader {
            successor = choose_successor(
                self.members
                    .iter()
                    .filter(|m| m.pool_id == *pool && m.is_seat())
                    .map(|m| (&m.node_id, m.from_slot)),
            );
            match successor {
                Some(next) => {
                    if let Some(i) = self.seat_index_in(pool, &next) {
                        self.members[i].role = Role::Leader;
                    }
                    if let Some(stored) = self.pools.get_mut(pool) {
                        stored.pool.leader = next;
                    }
                }
                None => {
                    self.disband(pool, at_slot);
                    disbanded = true;
                }
            }
        }
        self.refresh_status(pool);
        Ok(CloseOutcome::Closed { successor, disbanded })
    }
    fn do_disband(&mut self, pool: &PoolId, at_slot: Slot) -> Result<DisbandOutcome, Error> {
        if let Some(refusal) = checks::disband_refusal(self.pools.get(pool)) {
            return Ok(refusal);
        }
        Ok(DisbandOutcome::Disbanded { closed: self.disband(pool, at_slot) })
    }
    fn do_unban(&mut self, pool: &PoolId, node: &NodeId) -> Result<UnbanOutcome, Error> {
        match self.ban_index(pool, node) {
            Some(index) => {
                self.members[index].status = MemberStatus::Closed;
                Ok(UnbanOutcome::Unbanned)
            }
            None => Ok(UnbanOutcome::NotBanned),
        }
    }
    fn do_set_max_nodes(
        &mut self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, Error> {
        if let Some(refusal) =
            checks::set_max_nodes_refusal(self.pools.get(pool), max, expected_version)
        {
            return Ok(refusal);
        }
        let Some(stored) = self.pools.get_mut(pool) else {
            return Ok(SetMaxNodesOutcome::PoolNotFound);
        };
        stored.pool.max_nodes = max;
        stored.version += 1;
        Ok(SetMaxNodesOutcome::Set { version: stored.version })
    }
    fn do_reject_join(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), Error> {
        // Rejecting the same Join again (a re-run after a stop) records nothing new.
        if self.members.iter().any(|m| {
            m.op_digest == *op_digest && m.node_id == *node && m.status == MemberStatus::Rejected
        }) {
            return Ok(());
        }
        self.upsert_join_row(Membership {
            pool_id: *pool,
            node_id: *node,
            role: Role::Member,
            status: MemberStatus::Rejected,
            from_slot: at_slot,
            to_slot: None,
            op_digest: *op_digest,
            reason: Some(reason),
        });
        Ok(())
    }
    fn do_settle(&mut self, digest: &Digest, result: OpResult, at: Slot) -> Result<bool, Error> {
        match self.log.get_mut(digest) {
            Some(logged) if logged.state == OpState::Pending => {
                logged.state = OpState::settled(result, at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn disband(&mut self, pool: &PoolId, at_slot: Slot) -> u32 {
        let mut closed = 0;
        for row in self.members.iter_mut().filter(|m| m.pool_id == *pool && m.is_seat()) {
            row.status = MemberStatus::Closed;
            row.to_slot = Some(at_slot);
            closed += 1;
        }
        if let Some(stored) = self.pools.get_mut(pool) {
            stored.pool.seats = 0;
            stored.pool.status = PoolStatus::Disbanded;
            stored.pool.disbanded_slot = Some(at_slot);
            stored.version += 1;
        }
        closed
    }
}

/// A `PoolStore` in memory: for tests and simulations. One mutex makes every method one
/// serialisable transaction, with the semantics the SQL adapters must have; nothing survives the
/// process.
#[derive(Debug, Default)]
pub struct MemoryPoolStore {
    tables: Mutex<Tables>,
}

impl MemoryPoolStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Every method checks before it writes and its writes cannot fail halfway, so a panic
        // while holding the lock leaves consistent tables.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every membership row ever, in insertion order (for tests and audits).
    pub fn rows(&self) -> Vec<Membership> {
        self.lock().members.clone()
    }

    /// Every pool, by id.
    pub fn pools(&self) -> Vec<Pool> {
        self.lock().pools.values().map(|s| s.pool.clone()).collect()
    }
}

#[async_trait::async_trait]
impl PoolStore for MemoryPoolStore {
    async fn create_pool(&self, new: &NewPool) -> Result<CreateOutcome, Error> {
        self.lock().do_create(new)
    }

    async fn seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, Error> {
        self.lock().do_seat(pool, node, role, from_slot, op_digest)
    }

    async fn close_seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, Error> {
        self.lock().do_close(pool, node, at_slot, ban)
    }

    async fn disband(&self, pool: &PoolId, at_slot: Slot) -> Result<DisbandOutcome, Error> {
        self.lock().do_disband(pool, at_slot)
    }

    async fn unban(&self, pool: &PoolId, node: &NodeId) -> Result<UnbanOutcome, Error> {
        self.lock().do_unban(pool, node)
    }

    async fn set_max_nodes(
        &self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, Error> {
        self.lock().do_set_max_nodes(pool, max, expected_version)
    }

    async fn note_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        effect_slot: Slot,
        op_digest: &Digest,
    ) -> Result<bool, Error> {
        let mut t = self.lock();
        if t.members.iter().any(|m| m.op_digest == *op_digest && m.node_id == *node) {
            return Ok(false);
        }
        t.members.push(Membership {
            pool_id: *pool,
            node_id: *node,
            role: Role::Member,
            status: MemberStatus::Joining,
            from_slot: effect_slot,
            to_slot: None,
            op_digest: *op_digest,
            reason: None,
        });
        Ok(true)
    }

    async fn reject_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), Error> {
        self.lock().do_reject_join(pool, node, at_slot, op_digest, reason)
    }

    async fn pending_joins(&self, pool: &PoolId) -> Result<usize, Error> {
        Ok(self
            .lock()
            .members
            .iter()
            .filter(|m| m.pool_id == *pool && m.status == MemberStatus::Joining)
            .count())
    }

    async fn mark_leaving(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error> {
        let mut t = self.lock();
        let Some(index) = t.seat_index_in(pool, node) else { return Ok(false) };
        let row = &mut t.members[index];
        if !checks::may_mark_leaving(row.status) {
            return Ok(false);
        }
        row.status = MemberStatus::Leaving;
        t.refresh_status(pool);
        Ok(true)
    }

    async fn set_liveness(
        &self,
        node: &NodeId,
        liveness: Liveness,
    ) -> Result<Option<MemberStatus>, Error> {
        let mut t = self.lock();
        let Some(index) = t.seat_index(node) else { return Ok(None) };
        let row = &mut t.members[index];
        row.status = checks::seat_status_after(row.status, liveness);
        let (pool, status) = (row.pool_id, row.status);
        t.refresh_status(&pool);
        Ok(Some(status))
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<StoredPool>, Error> {
        Ok(self.lock().pools.get(pool).cloned())
    }

    async fn members(&self, pool: &PoolId) -> Result<Vec<Membership>, Error> {
        let mut rows: Vec<Membership> = self
            .lock()
            .members
            .iter()
            .filter(|m| m.pool_id == *pool && (m.is_seat() || m.status == MemberStatus::Banned))
            .cloned()
            .collect();
        rows.sort_by_key(|m| m.node_id);
        Ok(rows)
    }

    async fn is_banned(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error> {
        Ok(self.lock().ban_index(pool, node).is_some())
    }

    async fn pool_of(&self, node: &NodeId) -> Result<Option<PoolId>, Error> {
        let t = self.lock();
        Ok(t.seat_index(node).map(|i| t.members[i].pool_id))
    }

    async fn timeline(&self) -> Result<MembershipTimeline, Error> {
        crate::state::timeline_of(&self.lock().members)
    }

    async fn snapshot(&self) -> Result<(Vec<Pool>, Vec<Membership>), Error> {
        let t = self.lock();
        Ok((t.pools.values().map(|s| s.pool.clone()).collect(), t.members.clone()))
    }

    async fn audit(&self) -> Result<(), Error> {
        let t = self.lock();
        crate::state::audit(t.pools.values().map(|s| &s.pool), &t.members)
    }

    async fn log_op(&self, op: &SignedOp) -> Result<LogOutcome, Error> {
        let mut t = self.lock();
        if t.log.contains_key(&op.digest()) {
            return Ok(LogOutcome::Duplicate);
        }
        let signer = (op.accepted.op.node, op.accepted.op.slot);
        if let Some(existing) =
            t.log.values().find(|l| (l.op.accepted.op.node, l.op.accepted.op.slot) == signer)
        {
            return Ok(LogOutcome::Conflict { existing: existing.op.message.clone() });
        }
        t.log.insert(op.digest(), LoggedOp { op: op.clone(), state: OpState::Pending });
        Ok(LogOutcome::Inserted)
    }

    async fn pending_ops(&self) -> Result<Vec<SignedOp>, Error> {
        let t = self.lock();
        let mut ops: Vec<SignedOp> =
            t.log.values().filter(|l| l.state == OpState::Pending).map(|l| l.op.clone()).collect();
        ops.sort_by_key(|op| (op.accepted.op.slot, op.digest()));
        Ok(ops)
    }

    async fn op_log(&self) -> Result<Vec<LoggedOp>, Error> {
        let mut log: Vec<LoggedOp> = self.lock().log.values().cloned().collect();
        log.sort_by_key(|l| (l.op.accepted.op.slot, l.op.digest()));
        Ok(log)
    }

    async fn settle_op(&self, digest: &Digest, result: OpResult, at: Slot) -> Result<bool, Error> {
        self.lock().do_settle(digest, result, at)
    }

    async fn apply_and_settle(
        &self,
        effect: &Effect,
        settle: &Settlement,
    ) -> Result<Settled, Error> {
        // One lock for the effect and the outcome: nothing can see one without the other.
        let mut t = self.lock();
        if t.log.get(&settle.digest).is_some_and(|logged| logged.state != OpState::Pending) {
            return Ok(Settled::AlreadySettled);
        }
        let outcome = match effect {
            Effect::Create(new) => EffectOutcome::Create(t.do_create(new)?),
            Effect::Seat { pool, node, role, from_slot, op_digest } => {
                EffectOutcome::Seat(t.do_seat(pool, node, *role, *from_slot, op_digest)?)
            }
            Effect::Close { pool, node, at_slot, ban } => {
                EffectOutcome::Close(t.do_close(pool, node, *at_slot, *ban)?)
            }
            Effect::Disband { pool, at_slot } => {
                EffectOutcome::Disband(t.do_disband(pool, *at_slot)?)
            }
            Effect::Unban { pool, node } => EffectOutcome::Unban(t.do_unban(pool, node)?),
            Effect::SetMaxNodes { pool, max, expected_version } => {
                EffectOutcome::SetMaxNodes(t.do_set_max_nodes(pool, *max, *expected_version)?)
            }
            Effect::Refuse(reason) => EffectOutcome::Refused(*reason),
        };
        // Every refusal above is decided before any write, so a refused effect changed nothing.
        let Some(result) = outcome.op_result() else { return Ok(Settled::Retry) };
        if let (OpResult::Rejected(reason), Some((pool, node))) = (result, settle.join) {
            t.do_reject_join(&pool, &node, settle.at, &settle.digest, reason)?;
        }
        t.do_settle(&settle.digest, result, settle.at)?;
        Ok(Settled::Done(result))
    }

    async fn restore(
        &self,
        state: &PoolState,
        outcomes: &[(Slot, OpOutcome)],
    ) -> Result<(), Error> {
        let mut t = self.lock();
        let next_version = t.pools.values().map(|s| s.version).max().unwrap_or(0) + 1;
        t.pools = state
            .pools()
            .map(|pool| (pool.pool_id, StoredPool { pool: pool.clone(), version: next_version }))
            .collect();
        t.members = state.rows().to_vec();
        let settled = settled_states(outcomes);
        for (digest, logged) in t.log.iter_mut() {
            logged.state = settled.get(digest).copied().unwrap_or(OpState::Pending);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
