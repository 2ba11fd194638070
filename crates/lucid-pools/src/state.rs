//! All pools and memberships in memory, and the canonical application of the pool ops of a slot
//! (`pools-payouts.md` §2.2 and §2.3).
//!
//! [`PoolState::apply_slot`] is a pure function of the state and the op set: it applies, at the
//! start of slot t, every accepted op signed in slot t − 3, ordered by op tag (Create, Leave,
//! Remove, Unban, SetMaxNodes, Join, Disband) and then by message digest. Every op ends
//! [`OpResult::Applied`] or [`OpResult::Rejected`] with a typed [`RejectReason`], so the same op
//! set gives the same membership on every node whatever the arrival order. Maps are `BTreeMap`s
//! and nothing depends on iteration order of a hash map, the clock or randomness.
//!
//! The rules that decide whether an op applies live in one function, `decide`, used both here
//! and by [`crate::store::apply_slot_to_store`]; what an applied op does to rows and counters is
//! implemented twice, here and in every store, and the model-based tests check that the two agree.

use std::collections::{BTreeMap, BTreeSet};

use lucid_consensus::tally::{MembershipTimeline, Seat};
use lucid_core::{Digest, NodeId, PoolId, Slot};

use crate::error::Error;
use crate::model::{
    Liveness, MemberStatus, Membership, Pool, PoolStatus, Role, choose_successor,
    is_valid_max_nodes, is_valid_name,
};
use crate::op::{AcceptedOp, Op, OpTag, PoolOp};

/// Why an op was rejected at its effect slot (`pools-payouts.md` §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// The op names a pool that does not exist.
    PoolNotFound,
    /// The op names a disbanded pool.
    PoolDisbanded,
    /// Join: the pool's seats already equal its `max_nodes`.
    PoolFull,
    /// Create or Join: the signer already holds a seat.
    AlreadyInPool,
    /// Leave or Remove: the node holds no seat in the pool (Remove: or it is the leader, who
    /// leaves instead of being removed); Unban: the node is not banned in the pool.
    NotMember,
    /// Join: the signer is banned in the pool.
    Banned,
    /// Remove, Unban, SetMaxNodes, Disband: the signer is not the pool's leader.
    NotLeader,
    /// SetMaxNodes: the new limit is below the seats held.
    BelowSeats,
    /// Create: the name is not 3..=64 characters of `[a-z0-9_-]`.
    InvalidName,
    /// Create or SetMaxNodes: the limit is outside 1..=100.
    InvalidMaxNodes,
}

impl RejectReason {
    /// The error code used in storage and APIs.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::PoolNotFound => "POOL_NOT_FOUND",
            RejectReason::PoolDisbanded => "POOL_DISBANDED",
            RejectReason::PoolFull => "POOL_FULL",
            RejectReason::AlreadyInPool => "ALREADY_IN_POOL",
            RejectReason::NotMember => "NOT_MEMBER",
            RejectReason::Banned => "BANNED",
            RejectReason::NotLeader => "NOT_LEADER",
            RejectReason::BelowSeats => "BELOW_SEATS",
            RejectReason::InvalidName => "INVALID_NAME",
            RejectReason::InvalidMaxNodes => "INVALID_MAX_NODES",
        }
    }
}

/// How one op ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpResult {
    /// The op took effect.
    Applied,
    /// The op was recorded as rejected; nothing changed.
    Rejected(RejectReason),
}

/// The outcome of one op of a slot, in application order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpOutcome {
    /// The op's message digest.
    pub digest: Digest,
    /// The signer.
    pub node: NodeId,
    /// The op's kind.
    pub tag: OpTag,
    /// The pool the op concerns (for Create, the derived id).
    pub pool: PoolId,
    /// Applied or rejected.
    pub result: OpResult,
}

/// What an op that passed the rules does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Create the pool and seat the signer as its leader.
    Create { pool: PoolId, name: String, max_nodes: u8 },
    /// Seat the signer as a member.
    Seat { pool: PoolId },
    /// Close the seat of `node` (Leave, or Remove with or without ban).
    Close { pool: PoolId, node: NodeId, ban: bool },
    /// Lift the ban of `node`.
    Unban { pool: PoolId, node: NodeId },
    /// Set the seat limit.
    SetMaxNodes { pool: PoolId, max: u8 },
    /// Close every seat and disband.
    Disband { pool: PoolId },
}

/// The pool an op concerns: the named pool, or for a Create the derived id.
pub(crate) fn target_pool(op: &PoolOp) -> PoolId {
    match op.op.pool() {
        Some(pool) => pool,
        None => PoolId::derive(&op.node, op.slot, create_name(&op.op)),
    }
}

fn create_name(op: &Op) -> &str {
    match op {
        Op::Create { name, .. } => name,
        _ => "",
    }
}

/// The rules of `pools-payouts.md` §2.2, checked in a fixed order so every node gives the same
/// reason: stateless checks first, then existence, then disbanded, then the signer's right, then
/// the state of the target.
///
/// `pool` is the pool the op concerns (for a Create, the derived id, which must not exist yet);
/// `signer_seat` the pool where the signer holds a seat; `members` the current rows (seats and
/// bans) of the pool.
pub(crate) fn decide(
    op: &PoolOp,
    pool: Option<&Pool>,
    signer_seat: Option<PoolId>,
    members: &[Membership],
) -> Result<Action, RejectReason> {
    let seated = |node: &NodeId| members.iter().any(|m| m.node_id == *node && m.is_seat());
    let banned = |node: &NodeId| {
        members.iter().any(|m| m.node_id == *node && m.status == MemberStatus::Banned)
    };
    // Every op but Create names an existing pool that is not disbanded.
    let live = || match pool {
        None => Err(RejectReason::PoolNotFound),
        Some(pool) if pool.status == PoolStatus::Disbanded => Err(RejectReason::PoolDisbanded),
        Some(pool) => Ok(pool),
    };
    let leader_of = || {
        let pool = live()?;
        if pool.leader == op.node { Ok(pool) } else { Err(RejectReason::NotLeader) }
    };
    match &op.op {
        Op::Create { name, max_nodes } => {
            if !is_valid_name(name) {
                Err(RejectReason::InvalidName)
            } else if !is_valid_max_nodes(*max_nodes) {
                Err(RejectReason::InvalidMaxNodes)
            } else if signer_seat.is_some() || pool.is_some() {
                // An existing id can only come from an equivocating second Create of the same
                // signer and slot, whose signer then already holds the first pool's seat.
                Err(RejectReason::AlreadyInPool)
            } else {
                Ok(Action::Create {
                    pool: target_pool(op),
                    name: name.clone(),
                    max_nodes: *max_nodes,
                })
            }
        }
        Op::Join { .. } => {
            let pool = live()?;
            if signer_seat.is_some() {
                Err(RejectReason::AlreadyInPool)
            } else if banned(&op.node) {
                Err(RejectReason::Banned)
            } else if pool.seats >= u32::from(pool.max_nodes) {
                Err(RejectReason::PoolFull)
            } else {
                Ok(Action::Seat { pool: pool.pool_id })
            }
        }
        Op::Leave { .. } => {
            let id = live()?.pool_id;
            if signer_seat == Some(id) && seated(&op.node) {
                Ok(Action::Close { pool: id, node: op.node, ban: false })
            } else {
                Err(RejectReason::NotMember)
            }
        }
        Op::Remove { member, ban, .. } => {
            let pool = leader_of()?;
            // The leader leaves rather than being removed: removing it is not a member removal.
            if *member == pool.leader || !seated(member) {
                Err(RejectReason::NotMember)
            } else {
                Ok(Action::Close { pool: pool.pool_id, node: *member, ban: *ban })
            }
        }
        Op::Unban { node, .. } => {
            let pool = leader_of()?;
            if banned(node) {
                Ok(Action::Unban { pool: pool.pool_id, node: *node })
            } else {
                Err(RejectReason::NotMember)
            }
        }
        Op::SetMaxNodes { max, .. } => {
            let pool = leader_of()?;
            if !is_valid_max_nodes(*max) {
                Err(RejectReason::InvalidMaxNodes)
            } else if u32::from(*max) < pool.seats {
                Err(RejectReason::BelowSeats)
            } else {
                Ok(Action::SetMaxNodes { pool: pool.pool_id, max: *max })
            }
        }
        Op::Disband { .. } => Ok(Action::Disband { pool: leader_of()?.pool_id }),
    }
}

/// The ops of `ops` that take effect at `slot`, in canonical order, each digest once.
pub(crate) fn canonical_batch(slot: Slot, ops: &[AcceptedOp]) -> Vec<&AcceptedOp> {
    let mut batch: Vec<&AcceptedOp> =
        ops.iter().filter(|op| op.op.effect_slot() == Some(slot)).collect();
    batch.sort_by_key(|op| op.canonical_key());
    batch.dedup_by_key(|op| op.digest);
    batch
}

/// Every pool and membership, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    pools: BTreeMap<PoolId, Pool>,
    /// Every membership row ever, in creation order; rows are updated, never removed.
    rows: Vec<Membership>,
    /// Per pool, the row of each node that holds a seat there or is banned there.
    current: BTreeMap<PoolId, BTreeMap<NodeId, usize>>,
    /// The pool where each seated node holds its one seat.
    seat_of: BTreeMap<NodeId, PoolId>,
    /// `joining` rows by the digest of their Join.
    joining: BTreeMap<Digest, usize>,
    /// Digests of every op applied or rejected so far; applying one twice changes nothing.
    done: BTreeSet<Digest>,
}

impl PoolState {
    /// No pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the state from an op log by replaying every slot from the first effect slot in
    /// the log through `through`, in canonical order (the late-op rebuild of §2.2).
    ///
    /// Uptime-driven degraded statuses are not in the log; the caller re-applies them.
    pub fn replay(log: &[AcceptedOp], through: Slot) -> (Self, Vec<OpOutcome>) {
        let mut state = PoolState::new();
        let slots: BTreeSet<Slot> = log
            .iter()
            .filter_map(|op| op.op.effect_slot())
            .filter(|slot| *slot <= through)
            .collect();
        let mut outcomes = Vec::new();
        for slot in slots {
            outcomes.extend(state.apply_slot(slot, log));
        }
        (state, outcomes)
    }

    /// Rebuilds the state a node reaches at the start of slot `through + 1` from an op log,
    /// exactly as it got there incrementally (the T10 rebuild of `pools-payouts.md` §8): for each
    /// slot t up to `through`, first the ops taking effect at t are applied in canonical order,
    /// then the ops signed in t are noted as accepted ([`PoolState::note_accepted`]: `joining`
    /// rows, `leaving` seats), in canonical order. Ops signed after `through` are ignored.
    ///
    /// Returns the state and the outcome of every op applied, with its effect slot. Uptime-driven
    /// degraded statuses are not in the log; the caller re-applies them.
    pub fn rebuild(log: &[AcceptedOp], through: Slot) -> (Self, Vec<(Slot, OpOutcome)>) {
        let mut signed_in: BTreeMap<Slot, Vec<&AcceptedOp>> = BTreeMap::new();
        let mut slots: BTreeSet<Slot> = BTreeSet::new();
        for op in log.iter().filter(|op| op.op.slot <= through) {
            signed_in.entry(op.op.slot).or_default().push(op);
            slots.insert(op.op.slot);
            if let Some(effect) = op.op.effect_slot().filter(|slot| *slot <= through) {
                slots.insert(effect);
            }
        }
        let kept: Vec<AcceptedOp> = signed_in.values().flatten().map(|op| (*op).clone()).collect();
        let mut state = PoolState::new();
        let mut outcomes = Vec::new();
        for slot in slots {
            outcomes.extend(state.apply_slot(slot, &kept).into_iter().map(|o| (slot, o)));
            if let Some(ops) = signed_in.get_mut(&slot) {
                ops.sort_by_key(|op| op.canonical_key());
                for op in ops.iter() {
                    state.note_accepted(op);
                }
            }
        }
        (state, outcomes)
    }

    /// The pool `id`.
    pub fn pool(&self, id: &PoolId) -> Option<&Pool> {
        self.pools.get(id)
    }

    /// Every pool, by id.
    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// Every membership row ever, in creation order.
    pub fn rows(&self) -> &[Membership] {
        &self.rows
    }

    /// The current rows of `pool` (seats and bans), by `NodeId`.
    pub fn members(&self, pool: &PoolId) -> Vec<Membership> {
        self.current
            .get(pool)
            .map(|rows| rows.values().filter_map(|i| self.rows.get(*i).cloned()).collect())
            .unwrap_or_default()
    }

    /// The pool where `node` holds a seat.
    pub fn pool_of(&self, node: &NodeId) -> Option<PoolId> {
        self.seat_of.get(node).copied()
    }

    /// Joins of `pool` accepted but not yet applied (the advisory capacity check of the API
    /// refuses a join when seats + pending joins ≥ max_nodes).
    pub fn pending_joins(&self, pool: &PoolId) -> usize {
        self.joining
            .values()
            .filter(|i| self.rows.get(**i).is_some_and(|r| r.pool_id == *pool))
            .count()
    }

    /// Records that ingest accepted `op`, before its effect slot: a Join gets a `joining` row (no
    /// seat), and a Leave moves the signer's active or degraded seat in that pool to `leaving`
    /// (it keeps the seat until the effect slot). Other ops change nothing until they apply.
    pub fn note_accepted(&mut self, op: &AcceptedOp) {
        if self.done.contains(&op.digest) || self.joining.contains_key(&op.digest) {
            return;
        }
        match op.op.op {
            Op::Join { pool } => {
                let Some(effect) = op.op.effect_slot() else { return };
                self.joining.insert(op.digest, self.rows.len());
                self.rows.push(Membership {
                    pool_id: pool,
                    node_id: op.op.node,
                    role: Role::Member,
                    status: MemberStatus::Joining,
                    from_slot: effect,
                    to_slot: None,
                    op_digest: op.digest,
                    reason: None,
                });
            }
            Op::Leave { pool } => {
                if let Some(row) = self.seat_row_mut(&pool, &op.op.node)
                    && matches!(row.status, MemberStatus::Active | MemberStatus::Degraded)
                {
                    row.status = MemberStatus::Leaving;
                    self.refresh_status(&pool);
                }
            }
            _ => {}
        }
    }

    /// Applies, at the start of `slot`, every op of `ops` signed in `slot − 3`, in canonical
    /// order, and returns their outcomes in that order. Ops of other slots in `ops` are skipped
    /// (so a whole op log may be passed), and an op already applied changes nothing again.
    /// Slots must be applied in increasing order.
    pub fn apply_slot(&mut self, slot: Slot, ops: &[AcceptedOp]) -> Vec<OpOutcome> {
        let mut outcomes = Vec::new();
        for op in canonical_batch(slot, ops) {
            if !self.done.insert(op.digest) {
                continue;
            }
            outcomes.push(self.apply_one(slot, op));
        }
        outcomes
    }

    fn apply_one(&mut self, slot: Slot, accepted: &AcceptedOp) -> OpOutcome {
        let op = &accepted.op;
        let pool_id = target_pool(op);
        let members = self.members(&pool_id);
        let decision = decide(op, self.pools.get(&pool_id), self.pool_of(&op.node), &members);
        let result = match decision {
            Ok(action) => {
                self.execute(slot, accepted, action);
                OpResult::Applied
            }
            Err(reason) => {
                if let Op::Join { pool } = op.op {
                    self.finish_join(slot, accepted, pool, MemberStatus::Rejected, Some(reason));
                }
                OpResult::Rejected(reason)
            }
        };
        OpOutcome {
            digest: accepted.digest,
            node: op.node,
            tag: op.op.tag(),
            pool: pool_id,
            result,
        }
    }

    /// Turns the Join's `joining` row (or a new row) into `status` and returns its index.
    fn finish_join(
        &mut self,
        slot: Slot,
        accepted: &AcceptedOp,
        pool: PoolId,
        status: MemberStatus,
        reason: Option<RejectReason>,
    ) -> usize {
        let row = Membership {
            pool_id: pool,
            node_id: accepted.op.node,
            role: Role::Member,
            status,
            from_slot: slot,
            to_slot: None,
            op_digest: accepted.digest,
            reason,
        };
        match self.joining.remove(&accepted.digest) {
            Some(index) if index < self.rows.len() => {
                self.rows[index] = row;
                index
            }
            _ => {
                self.rows.push(row);
                self.rows.len() - 1
            }
        }
    }

    fn execute(&mut self, slot: Slot, accepted: &AcceptedOp, action: Action) {
        let node = accepted.op.node;
        match action {
            Action::Create { pool, name, max_nodes } => {
                self.pools.insert(
                    pool,
                    Pool {
                        pool_id: pool,
                        name,
                        founder: node,
                        leader: node,
                        max_nodes,
                        status: PoolStatus::Forming,
                        seats: 1,
                        created_slot: slot,
                        disbanded_slot: None,
                    },
                );
                self.rows.push(Membership {
                    pool_id: pool,
                    node_id: node,
                    role: Role::Leader,
                    status: MemberStatus::Active,
                    from_slot: slot,
                    to_slot: None,
                    op_digest: accepted.digest,
                    reason: None,
                });
                self.current.entry(pool).or_default().insert(node, self.rows.len() - 1);
                self.seat_of.insert(node, pool);
                self.refresh_status(&pool);
            }
            Action::Seat { pool } => {
                let index = self.finish_join(slot, accepted, pool, MemberStatus::Active, None);
                self.current.entry(pool).or_default().insert(node, index);
                self.seat_of.insert(node, pool);
                if let Some(p) = self.pools.get_mut(&pool) {
                    p.seats += 1;
                }
                self.refresh_status(&pool);
            }
            Action::Close { pool, node, ban } => self.close_seat(slot, &pool, &node, ban),
            Action::Unban { pool, node } => {
                if let Some(index) = self.current.get_mut(&pool).and_then(|rows| rows.remove(&node))
                    && let Some(row) = self.rows.get_mut(index)
                {
                    row.status = MemberStatus::Closed;
                }
            }
            Action::SetMaxNodes { pool, max } => {
                if let Some(p) = self.pools.get_mut(&pool) {
                    p.max_nodes = max;
                }
            }
            Action::Disband { pool } => self.disband(slot, &pool),
        }
    }

    /// Closes the seat of `node` in `pool` at `slot`, with succession when it was the leader's
    /// and disbanding when no seat is left.
    fn close_seat(&mut self, slot: Slot, pool: &PoolId, node: &NodeId, ban: bool) {
        let Some(rows) = self.current.get_mut(pool) else { return };
        let Some(index) = (if ban { rows.get(node).copied() } else { rows.remove(node) }) else {
            return;
        };
        let Some(row) = self.rows.get_mut(index) else { return };
        row.status = if ban { MemberStatus::Banned } else { MemberStatus::Closed };
        row.to_slot = Some(slot);
        let was_leader = row.role == Role::Leader;
        self.seat_of.remove(node);
        if let Some(p) = self.pools.get_mut(pool) {
            p.seats = p.seats.saturating_sub(1);
        }
        if was_leader {
            let holders = self.members(pool);
            let successor = choose_successor(
                holders.iter().filter(|m| m.is_seat()).map(|m| (&m.node_id, m.from_slot)),
            );
            match successor {
                Some(next) => {
                    if let Some(row) = self.seat_row_mut(pool, &next) {
                        row.role = Role::Leader;
                    }
                    if let Some(p) = self.pools.get_mut(pool) {
                        p.leader = next;
                    }
                }
                None => self.disband(slot, pool),
            }
        }
        self.refresh_status(pool);
    }

    /// Closes every seat of `pool` at `slot` and makes it disbanded (terminal). Bans stay.
    fn disband(&mut self, slot: Slot, pool: &PoolId) {
        if let Some(rows) = self.current.get_mut(pool) {
            let seated: Vec<(NodeId, usize)> = rows
                .iter()
                .filter(|(_, i)| self.rows.get(**i).is_some_and(Membership::is_seat))
                .map(|(n, i)| (*n, *i))
                .collect();
            for (node, index) in seated {
                rows.remove(&node);
                self.seat_of.remove(&node);
                if let Some(row) = self.rows.get_mut(index) {
                    row.status = MemberStatus::Closed;
                    row.to_slot = Some(slot);
                }
            }
        }
        if let Some(p) = self.pools.get_mut(pool) {
            p.seats = 0;
            p.status = PoolStatus::Disbanded;
            p.disbanded_slot = Some(slot);
        }
    }

    fn seat_row_mut(&mut self, pool: &PoolId, node: &NodeId) -> Option<&mut Membership> {
        let index = *self.current.get(pool)?.get(node)?;
        self.rows.get_mut(index).filter(|row| row.is_seat())
    }

    /// Recomputes the status of `pool` from its members in status `active`.
    fn refresh_status(&mut self, pool: &PoolId) {
        let active = self
            .current
            .get(pool)
            .map(|rows| {
                rows.values()
                    .filter(|i| {
                        self.rows.get(**i).is_some_and(|r| r.status == MemberStatus::Active)
                    })
                    .count()
            })
            .unwrap_or(0);
        if let Some(p) = self.pools.get_mut(pool) {
            p.status = p.status.recompute(active);
        }
    }

    /// Applies a change of `node`'s uptime status to its seat: `active` ⇄ `degraded` (a `leaving`
    /// seat keeps its status), then recomputes the pool's status. Credits and seats are not
    /// affected. Returns the seat's status afterwards, `None` if the node holds no seat.
    pub fn set_liveness(&mut self, node: &NodeId, liveness: Liveness) -> Option<MemberStatus> {
        let pool = self.pool_of(node)?;
        let row = self.seat_row_mut(&pool, node)?;
        row.status = crate::checks::seat_status_after(row.status, liveness);
        let status = row.status;
        self.refresh_status(&pool);
        Some(status)
    }

    /// The membership timeline consumed by consensus: every seat that held at least one slot.
    pub fn timeline(&self) -> Result<MembershipTimeline, Error> {
        timeline_of(&self.rows)
    }

    /// Checks the invariants I2, I3 and the capacity bounds; an error is a bug.
    pub fn check_invariants(&self) -> Result<(), Error> {
        audit(self.pools.values(), &self.rows)
    }
}

/// The timeline of seats in `rows`; overlapping seats of one node are a bug.
pub fn timeline_of(rows: &[Membership]) -> Result<MembershipTimeline, Error> {
    let mut timeline = MembershipTimeline::new();
    for row in rows {
        if let Some((from, to)) = row.held_seat()
            && !timeline.add_seat(row.node_id, Seat { pool: row.pool_id, from, to })
        {
            return Err(lucid_core::internal!(
                "overlapping seats of {} (pool {}, from {})",
                row.node_id,
                row.pool_id,
                from
            )
            .into());
        }
    }
    Ok(timeline)
}

/// Checks seats == seat rows, seats ≤ max_nodes ≤ 100, one seat per node, and exactly one
/// leader seat (the pool's `leader`) in every pool that is not disbanded.
pub fn audit<'a>(
    pools: impl IntoIterator<Item = &'a Pool>,
    rows: &[Membership],
) -> Result<(), Error> {
    let fail = |pool: &Pool, detail: String| Err(Error::Audit { pool: pool.pool_id, detail });
    let mut seated: BTreeMap<NodeId, PoolId> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.is_seat()) {
        if let Some(other) = seated.insert(row.node_id, row.pool_id) {
            return Err(Error::Audit {
                pool: row.pool_id,
                detail: format!("{} also holds a seat in {other}", row.node_id),
            });
        }
    }
    for pool in pools {
        let seats: Vec<&Membership> =
            rows.iter().filter(|r| r.pool_id == pool.pool_id && r.is_seat()).collect();
        if usize::try_from(pool.seats).ok() != Some(seats.len()) {
            return fail(pool, format!("seats {} but {} seat rows", pool.seats, seats.len()));
        }
        if !is_valid_max_nodes(pool.max_nodes) || pool.seats > u32::from(pool.max_nodes) {
            return fail(pool, format!("seats {} max_nodes {}", pool.seats, pool.max_nodes));
        }
        let leaders: Vec<&&Membership> = seats.iter().filter(|r| r.role == Role::Leader).collect();
        match pool.status {
            PoolStatus::Disbanded if !seats.is_empty() => {
                return fail(pool, "disbanded with seats".to_owned());
            }
            PoolStatus::Disbanded => {}
            _ if seats.is_empty() => return fail(pool, "not disbanded without seats".to_owned()),
            _ if leaders.len() != 1 || leaders[0].node_id != pool.leader => {
                return fail(pool, format!("{} leader seats", leaders.len()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
