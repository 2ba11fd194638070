//! Work credits per entity over an epoch's window, density, ranking and the tally digest.
//!
//! Input: accepted task proofs with slot in `window(e)` whose key has no equivocation evidence,
//! the membership timeline, and the epoch seed. A proof belongs to the node's pool if the node
//! held a seat in a pool at the proof's slot, else to the node itself; no proof counts twice.

use std::collections::BTreeMap;

use lucid_core::{Digest, EntityId, Epoch, NodeId, PoolId, Slot, SlotRange};

use crate::proof::ProofValue;

/// An accepted proof as the tally sees it. Signatures and caps were checked at ingest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CountedProof {
    /// The signer.
    pub node: NodeId,
    /// The slot of the work.
    pub slot: Slot,
    /// The claim.
    pub value: ProofValue,
}

/// Which pool, if any, a node held a seat in at a slot.
///
/// Membership at slot s is fixed by pool ops signed at slot ≤ s − 3, so it never depends on
/// arrival order. Implementations must be pure: the same question always gets the same answer.
pub trait MembershipView {
    /// The pool `node` held a seat in at `slot`, if any.
    fn pool_of(&self, node: &NodeId, slot: Slot) -> Option<PoolId>;
}

/// No pools exist: every proof belongs to its node.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPools;

impl MembershipView for NoPools {
    fn pool_of(&self, _node: &NodeId, _slot: Slot) -> Option<PoolId> {
        None
    }
}

/// One seat: `node` belonged to `pool` for slots `[from, to)` (`to = None`: still seated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat {
    /// The pool.
    pub pool: PoolId,
    /// First slot of the seat.
    pub from: Slot,
    /// First slot after the seat, if it closed.
    pub to: Option<Slot>,
}

/// The membership timeline: every seat of every node, as produced by the pools crate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipTimeline {
    seats: BTreeMap<NodeId, Vec<Seat>>,
}

impl MembershipTimeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a seat. Seats of one node must not overlap (a node holds at most one seat); an
    /// overlapping seat is refused and `false` returned.
    pub fn add_seat(&mut self, node: NodeId, seat: Seat) -> bool {
        let seats = self.seats.entry(node).or_default();
        let overlaps = |other: &Seat| {
            let a_end = seat.to.map_or(u64::MAX, |s| s.0);
            let b_end = other.to.map_or(u64::MAX, |s| s.0);
            seat.from.0 < b_end && other.from.0 < a_end
        };
        if seat.to.is_some_and(|to| to <= seat.from) || seats.iter().any(overlaps) {
            return false;
        }
        let at = seats.partition_point(|s| s.from < seat.from);
        seats.insert(at, seat);
        true
    }
}

impl MembershipView for MembershipTimeline {
    fn pool_of(&self, node: &NodeId, slot: Slot) -> Option<PoolId> {
        let seats = self.seats.get(node)?;
        // The last seat starting at or before `slot`, if it is still open at `slot`.
        let at = seats.partition_point(|s| s.from <= slot);
        let seat = seats.get(at.checked_sub(1)?)?;
        seat.to.is_none_or(|to| slot < to).then_some(seat.pool)
    }
}

/// The entity a proof of `node` at `slot` belongs to.
pub fn entity_of(view: &dyn MembershipView, node: &NodeId, slot: Slot) -> EntityId {
    match view.pool_of(node, slot) {
        Some(pool) => EntityId::Pool(pool),
        None => EntityId::Node(*node),
    }
}

/// One entity's line in a tally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TallyEntry {
    /// The node or pool.
    pub entity: EntityId,
    /// 1-based dense rank; `None` if not ranked (no credits or density below 200 000 ppm).
    pub rank: Option<u32>,
    /// relay + storage + validation, saturating at `CREDITS_MAX`.
    pub credits: u64,
    /// Relay credits.
    pub relay: u64,
    /// Storage credits.
    pub storage: u64,
    /// Validation credits.
    pub validation: u64,
    /// Distinct slots of the window with at least one accepted beacon of the entity.
    pub beacon_slots: u64,
    /// beacon_slots · 10^6 div |window|, at most 10^6.
    pub density_ppm: u32,
    /// For a pool: each member's own credits attributed to the pool, by `NodeId`; empty for nodes.
    pub contributions: Vec<(NodeId, u64)>,
}

/// The tally of an epoch: every entity with proofs in the window, ranked ones first in rank order,
/// then unranked ones by entity bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// The epoch whose leader schedules this tally decides.
    pub epoch: Epoch,
    /// The work window the credits come from.
    pub window: SlotRange,
    /// 0 when first computed; +1 for each recomputation after a late proof.
    pub revision: u32,
    /// Entries: ranked (rank 1..n), then unranked by entity bytes.
    pub entries: Vec<TallyEntry>,
    /// `derive_key(CTX_TALLY, canonical encoding of (epoch, window, entries))`; excludes revision.
    pub digest: Digest,
}

impl Tally {
    /// The ranked entries, in rank order.
    pub fn ranked(&self) -> &[TallyEntry] {
        let ranked = self.entries.partition_point(|entry| entry.rank.is_some());
        &self.entries[..ranked]
    }
}

#[cfg(test)]
mod tests;
