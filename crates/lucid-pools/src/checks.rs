//! The precondition checks of the `PoolStore` operations, as pure functions shared by every
//! store, so that the refusal rules and their order exist once.
//!
//! A store gathers the facts inside its transaction (the locked pool row, whether the node holds
//! a seat, …) and asks these functions what to answer; `None` means the operation may proceed.
//! The order of the checks is part of the contract: when several refusals apply, every store
//! gives the first one listed here.

use crate::model::{Liveness, MemberStatus, Pool, PoolStatus, Role, is_valid_max_nodes};
use crate::state::RejectReason;
use crate::store::{CreateOutcome, DisbandOutcome, SeatOutcome, SetMaxNodesOutcome, StoredPool};

/// The refusal of a pool creation, if any: an invalid `max_nodes`, an existing pool id, a
/// founder who already holds a seat (in that order).
pub fn create_refusal(
    max_nodes: u8,
    pool_exists: bool,
    founder_has_seat: bool,
) -> Option<CreateOutcome> {
    if !is_valid_max_nodes(max_nodes) {
        Some(CreateOutcome::InvalidMaxNodes)
    } else if pool_exists {
        Some(CreateOutcome::PoolExists)
    } else if founder_has_seat {
        Some(CreateOutcome::AlreadyInPool)
    } else {
        None
    }
}

/// What a store knows when it considers seating a node in a pool.
#[derive(Clone, Copy, Debug)]
pub struct SeatFacts {
    /// The node holds a seat in some pool.
    pub node_has_seat: bool,
    /// The node is banned from this pool.
    pub banned: bool,
    /// The pool already has a seated leader (only consulted when seating a leader).
    pub leader_seated: bool,
}

/// The refusal of seating a node with `role` in `pool` (`None`: no such pool), if any, in the
/// order: pool not found, disbanded, node already seated, banned, pool full, leader seat taken.
pub fn seat_refusal(
    pool: Option<&StoredPool>,
    role: Role,
    facts: SeatFacts,
) -> Option<SeatOutcome> {
    let Some(stored) = pool else { return Some(SeatOutcome::PoolNotFound) };
    if stored.pool.status == PoolStatus::Disbanded {
        Some(SeatOutcome::PoolDisbanded)
    } else if facts.node_has_seat {
        Some(SeatOutcome::AlreadyInPool)
    } else if facts.banned {
        Some(SeatOutcome::Banned)
    } else if stored.pool.seats >= u32::from(stored.pool.max_nodes) {
        Some(SeatOutcome::PoolFull)
    } else if role == Role::Leader && facts.leader_seated {
        Some(SeatOutcome::LeaderTaken)
    } else {
        None
    }
}

/// What a node knows when it considers accepting (logging) a Join before its effect slot, the
/// advisory check of `pools-payouts.md` §2.2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JoinFacts {
    /// The signer holds a seat, or has a Create or Join waiting in the log.
    pub seat_requested: bool,
    /// The signer is banned from the pool.
    pub banned: bool,
    /// Joins of the pool accepted and not yet applied (`joining` rows).
    pub pending_joins: u64,
}

/// The refusal of accepting a Join into `pool` (`None`: no such pool), if any, in the order:
/// pool not found, disbanded, seat already held or requested, banned, full (the seats plus the
/// joins already waiting reach `max_nodes`).
///
/// Facts after the first refusal that applies are not consulted, so a caller may leave them at
/// their defaults when an earlier fact already decides.
pub fn join_refusal(pool: Option<&Pool>, facts: JoinFacts) -> Option<RejectReason> {
    let Some(pool) = pool else { return Some(RejectReason::PoolNotFound) };
    if pool.status == PoolStatus::Disbanded {
        Some(RejectReason::PoolDisbanded)
    } else if facts.seat_requested {
        Some(RejectReason::AlreadyInPool)
    } else if facts.banned {
        Some(RejectReason::Banned)
    } else if u64::from(pool.seats).saturating_add(facts.pending_joins) >= u64::from(pool.max_nodes)
    {
        Some(RejectReason::PoolFull)
    } else {
        None
    }
}

/// The refusal of disbanding `pool` (`None`: no such pool), if any.
pub fn disband_refusal(pool: Option<&StoredPool>) -> Option<DisbandOutcome> {
    match pool {
        None => Some(DisbandOutcome::PoolNotFound),
        Some(stored) if stored.pool.status == PoolStatus::Disbanded => {
            Some(DisbandOutcome::AlreadyDisbanded)
        }
        Some(_) => None,
    }
}

/// The refusal of setting `max` on `pool` (`None`: no such pool) as a compare-and-set on
/// `expected_version`, if any, in the order: pool not found, version mismatch, disbanded,
/// `max` outside 1..=100, `max` below the seats taken.
pub fn set_max_nodes_refusal(
    pool: Option<&StoredPool>,
    max: u8,
    expected_version: u64,
) -> Option<SetMaxNodesOutcome> {
    let Some(stored) = pool else { return Some(SetMaxNodesOutcome::PoolNotFound) };
    if stored.version != expected_version {
        Some(SetMaxNodesOutcome::VersionMismatch { current: stored.version })
    } else if stored.pool.status == PoolStatus::Disbanded {
        Some(SetMaxNodesOutcome::PoolDisbanded)
    } else if !is_valid_max_nodes(max) {
        Some(SetMaxNodesOutcome::InvalidMaxNodes)
    } else if u32::from(max) < stored.pool.seats {
        Some(SetMaxNodesOutcome::BelowSeats { seats: stored.pool.seats })
    } else {
        None
    }
}

/// Whether a seat in `status` may be marked `leaving` (only `active` and `degraded` seats).
pub fn may_mark_leaving(status: MemberStatus) -> bool {
    matches!(status, MemberStatus::Active | MemberStatus::Degraded)
}

/// The status of a seat after a change of its node's uptime status: `active` ⇄ `degraded`; any
/// other seat (such as `leaving`) keeps its status.
pub fn seat_status_after(status: MemberStatus, liveness: Liveness) -> MemberStatus {
    match (status, liveness) {
        (MemberStatus::Active, Liveness::Inactive | Liveness::Suspended) => MemberStatus::Degraded,
        (MemberStatus::Degraded, Liveness::Active) => MemberStatus::Active,
        (status, _) => status,
    }
}

#[cfg(test)]
mod tests;
