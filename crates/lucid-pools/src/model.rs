//! The pool model of `pools-payouts.md` §2.1 and §2.3: pools, memberships, their statuses, the
//! limits, and the pure rules (status recomputation, leader succession, allowed transitions)
//! that both the in-memory state and every store implement identically.

use lucid_core::{Digest, NodeId, PoolId, Slot};

use crate::state::RejectReason;

/// The hard cap on seats of any pool; a pool may set a lower `max_nodes`, never a higher one.
pub const MAX_NODES_PER_POOL: u8 = 100;
/// A pool is `active` while at least this many members are in status `active`.
pub const MIN_ACTIVE_MEMBERS: usize = 3;
/// `max_nodes` of a pool created without a choice.
pub const DEFAULT_MAX_NODES: u8 = MAX_NODES_PER_POOL;
/// Shortest pool name.
pub const MIN_NAME_LEN: usize = 3;
/// Longest pool name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid pool name: 3..=64 characters of `[a-z0-9_-]`.
pub fn is_valid_name(name: &str) -> bool {
    (MIN_NAME_LEN..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `max` is a valid `max_nodes` on its own (1..=100); it must also be at least the seats.
pub fn is_valid_max_nodes(max: u8) -> bool {
    (1..=MAX_NODES_PER_POOL).contains(&max)
}

/// The lifecycle of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolStatus {
    /// Created; fewer than 3 members have been active at once so far.
    Forming,
    /// At least 3 members are in status `active`.
    Active,
    /// Was active; fewer than 3 members are in status `active` now.
    Degraded,
    /// Terminal: disbanded by its leader or left without seat holders.
    Disbanded,
}

impl PoolStatus {
    /// The status text used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolStatus::Forming => "forming",
            PoolStatus::Active => "active",
            PoolStatus::Degraded => "degraded",
            PoolStatus::Disbanded => "disbanded",
        }
    }

    /// The status after a membership change, given how many members are in status `active`.
    ///
    /// Disbanding is not decided here (it needs an op or zero seats); `disbanded` stays.
    pub fn recompute(self, active_members: usize) -> PoolStatus {
        let enough = active_members >= MIN_ACTIVE_MEMBERS;
        match self {
            PoolStatus::Disbanded => PoolStatus::Disbanded,
            PoolStatus::Forming if enough => PoolStatus::Active,
            PoolStatus::Forming => PoolStatus::Forming,
            PoolStatus::Active | PoolStatus::Degraded if enough => PoolStatus::Active,
            PoolStatus::Active | PoolStatus::Degraded => PoolStatus::Degraded,
        }
    }

    /// Whether §2.3 allows `self → next` (staying put is always allowed).
    pub fn can_become(self, next: PoolStatus) -> bool {
        use PoolStatus::*;
        self == next
            || matches!(
                (self, next),
                (Forming, Active) | (Active, Degraded) | (Degraded, Active) | (_, Disbanded)
            ) && self != Disbanded
    }
}

/// What a node is in a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Signs Remove, Unban, SetMaxNodes and Disband; exactly one per pool with seats.
    Leader,
    /// Any other member.
    Member,
}

impl Role {
    /// The role text used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Member => "member",
        }
    }
}

/// The lifecycle of one membership row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberStatus {
    /// A Join was accepted and waits for its effect slot; holds no seat.
    Joining,
    /// Seated, and the node's uptime status is `active`.
    Active,
    /// Seated, but the node's uptime status is `inactive` or `suspended`.
    Degraded,
    /// Seated; a Leave was accepted and takes effect later.
    Leaving,
    /// Removed with a ban; holds no seat and blocks joining this pool until unbanned.
    Banned,
    /// The seat closed (`to_slot` set), or a ban was lifted.
    Closed,
    /// A Join that was rejected at its effect slot; never held a seat.
    Rejected,
}

impl MemberStatus {
    /// The status text used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Joining => "joining",
            MemberStatus::Active => "active",
            MemberStatus::Degraded => "degraded",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Banned => "banned",
            MemberStatus::Closed => "closed",
            MemberStatus::Rejected => "rejected",
        }
    }

    /// Whether a membership in this status is a seat: it counts toward capacity and makes the
    /// pool the node's entity.
    pub fn is_seat(self) -> bool {
        matches!(self, MemberStatus::Active | MemberStatus::Degraded | MemberStatus::Leaving)
    }

    /// Whether a new row may start in this status: `joining` (Join accepted), `active` (a Join or
    /// Create applied without an earlier `joining` row) or `rejected`.
    pub fn can_start_as(self) -> bool {
        matches!(self, MemberStatus::Joining | MemberStatus::Active | MemberStatus::Rejected)
    }

    /// Whether §2.3 allows `self → next` (staying put is always allowed).
    pub fn can_become(self, next: MemberStatus) -> bool {
        use MemberStatus::*;
        self == next
            || matches!(
                (self, next),
                (Joining, Active | Rejected)
                    | (Active, Degraded)
                    | (Degraded, Active)
                    | (Active | Degraded, Leaving)
                    | (Active | Degraded | Leaving, Banned | Closed)
                    | (Banned, Closed)
            )
    }
}

/// A node's uptime status (`consensus.md` §9), which drives active ⇄ degraded of its seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Uptime status `active`.
    Active,
    /// Uptime status `inactive` (uptime below 80 % of the window).
    Inactive,
    /// Uptime status `suspended` (5 or more consecutive missed slots).
    Suspended,
}

/// A pool (`pools-payouts.md` §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// `PoolId::derive(founder, op slot, name)`.
    pub pool_id: PoolId,
    /// Display name; not unique.
    pub name: String,
    /// The node whose Create made the pool.
    pub founder: NodeId,
    /// The current leader (for a disbanded pool, the last one).
    pub leader: NodeId,
    /// Seat limit, 1..=100, never below `seats`.
    pub max_nodes: u8,
    /// Lifecycle status.
    pub status: PoolStatus,
    /// Number of seat rows (memberships in status active, degraded or leaving).
    pub seats: u32,
    /// The slot the Create took effect.
    pub created_slot: Slot,
    /// The slot the pool was disbanded, if it was.
    pub disbanded_slot: Option<Slot>,
}

/// One membership row (`pools-payouts.md` §2.1). Rows are never deleted; a node that leaves and
/// joins again gets a new row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The pool.
    pub pool_id: PoolId,
    /// The member node.
    pub node_id: NodeId,
    /// Leader or member.
    pub role: Role,
    /// Lifecycle status.
    pub status: MemberStatus,
    /// The slot the seat started (for `joining` and `rejected` rows, the effect slot of the Join).
    pub from_slot: Slot,
    /// The first slot after the seat, once it closed.
    pub to_slot: Option<Slot>,
    /// Digest of the op that created the row (Create or Join).
    pub op_digest: Digest,
    /// Why the Join was rejected, for `rejected` rows.
    pub reason: Option<RejectReason>,
}

impl Membership {
    /// Whether this row is a seat.
    pub fn is_seat(&self) -> bool {
        self.status.is_seat()
    }

    /// The seat interval `[from, to)` handed to consensus, if this row ever held a seat for at
    /// least one slot. A seat opened and closed in the same slot never held a slot.
    pub fn held_seat(&self) -> Option<(Slot, Option<Slot>)> {
        match self.status {
            MemberStatus::Active | MemberStatus::Degraded | MemberStatus::Leaving => {
                Some((self.from_slot, None))
            }
            MemberStatus::Banned | MemberStatus::Closed => match self.to_slot {
                Some(to) if to > self.from_slot => Some((self.from_slot, Some(to))),
                _ => None,
            },
            MemberStatus::Joining | MemberStatus::Rejected => None,
        }
    }
}

/// The successor of a leader whose seat closes: the remaining seat holder with the smallest
/// `from_slot`, ties by `NodeId` ascending; `None` means the pool has no seat holder left.
pub fn choose_successor<'a>(
    seat_holders: impl IntoIterator<Item = (&'a NodeId, Slot)>,
) -> Option<NodeId> {
    seat_holders.into_iter().map(|(node, from)| (from, *node)).min().map(|(_, node)| node)
}
