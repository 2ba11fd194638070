//! Work credits per entity over an epoch's window, density, ranking and the tally digest
//! (consensus.md §7.1–§7.4): the full, streaming recomputation [`TallyBuilder`] that is the
//! reference for the incremental engine in [`crate::rolling`].
//!
//! Input: accepted task proofs with slot in `window(e)` whose key has no equivocation evidence,
//! the membership timeline, and the epoch seed. A proof belongs to the node's pool if the node
//! held a seat in a pool at the proof's slot, else to the node itself; no proof counts twice.
//!
//! # Canonical encoding of a tally (the input of its digest)
//! `digest = derive_key(CTX_TALLY, bytes)` where `bytes` is, with the `lucid_core::codec`
//! primitives (fixed-width big-endian integers, raw ids):
//!
//! ```text
//! u64 epoch ‖ u64 window.start ‖ u64 window.end ‖ u32 entry_count ‖ entry*
//! entry = entity (u8 tag 0x01 ‖ node[32] | u8 tag 0x02 ‖ pool[16])
//!       ‖ rank (0x00 | 0x01 ‖ u32 rank)
//!       ‖ u64 credits ‖ u64 relay ‖ u64 storage ‖ u64 validation
//!       ‖ u64 beacon_slots ‖ u32 density_ppm
//!       ‖ u32 contribution_count ‖ (node[32] ‖ u64 credits)*
//! ```
//!
//! Entries appear in tally order (ranked by rank, then unranked by entity bytes), contributions
//! by `NodeId`. The revision is not part of the digest: a recomputation that changes nothing
//! keeps the digest.

use std::collections::BTreeMap;

use lucid_core::codec::Writer;
use lucid_core::hash::{CTX_TALLY, KeyedHasher, derive_key};
use lucid_core::{Digest, EntityId, Epoch, NodeId, PoolId, Slot, SlotRange};
use rustc_hash::FxHashMap;

use crate::error::Error;
use crate::params::{CREDITS_MAX, ConsensusParams, D_MIN_PPM, PPM};
use crate::proof::{ProofKey, ProofKind, ProofValue};
use crate::ring::SlotRing;

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

    /// The answer of [`MembershipView::pool_of`] together with a range of slots that contains
    /// `slot` and over which the answer is the same. Tally engines cache the answer for that
    /// range, which saves a lookup per proof; the default range is `slot` alone.
    fn seat_at(&self, node: &NodeId, slot: Slot) -> (Option<PoolId>, SlotRange) {
        (self.pool_of(node, slot), SlotRange { start: slot, end: Slot(slot.0.saturating_add(1)) })
    }
}

/// No pools exist: every proof belongs to its node.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPools;

impl MembershipView for NoPools {
    fn pool_of(&self, _node: &NodeId, _slot: Slot) -> Option<PoolId> {
        None
    }

    fn seat_at(&self, _node: &NodeId, _slot: Slot) -> (Option<PoolId>, SlotRange) {
        (None, SlotRange { start: Slot(0), end: Slot(u64::MAX) })
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

    fn seat_at(&self, node: &NodeId, slot: Slot) -> (Option<PoolId>, SlotRange) {
        let everything = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
        let Some(seats) = self.seats.get(node) else {
            return (None, everything);
        };
        let at = seats.partition_point(|s| s.from <= slot);
        let previous = at.checked_sub(1).and_then(|i| seats.get(i));
        let next_from = seats.get(at).map_or(Slot(u64::MAX), |s| s.from);
        match previous {
            Some(seat) if seat.to.is_none_or(|to| slot < to) => {
                (Some(seat.pool), SlotRange { start: seat.from, end: seat.to.unwrap_or(next_from) })
            }
            // In a gap: from the end of the previous seat (or slot 0) to the next seat.
            Some(seat) => (None, SlotRange { start: seat.to.unwrap_or(slot), end: next_from }),
            None => (None, SlotRange { start: Slot(0), end: next_from }),
        }
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

impl Tally {
    /// Ranks `entries` (§7.3), orders them and computes the digest. `entries` must name each
    /// entity at most once; their `rank` fields are overwritten.
    pub fn from_entries(
        params: &ConsensusParams,
        epoch: Epoch,
        window: SlotRange,
        revision: u32,
        entries: Vec<TallyEntry>,
    ) -> Tally {
        let entries = rank_entries(&params.rank_key(epoch), epoch, entries);
        let digest = tally_digest(epoch, window, &entries);
        Tally { epoch, window, revision, entries, digest }
    }

    /// The canonical encoding of (epoch, window, entries) described in the module docs.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_canonical(self.epoch, self.window, &self.entries, &mut out);
        out
    }
}

/// Appends the canonical encoding of a tally's (epoch, window, entries) to `out` (module docs).
pub fn encode_canonical(
    epoch: Epoch,
    window: SlotRange,
    entries: &[TallyEntry],
    out: &mut Vec<u8>,
) {
    out.reserve(28 + entries.len() * 100);
    let mut w = Writer::new(out);
    w.u64(epoch.0).slot(window.start).slot(window.end).u32(count_u32(entries.len()));
    for entry in entries {
        match &entry.entity {
            EntityId::Node(node) => w.u8(EntityId::TAG_NODE).node_id(node),
            EntityId::Pool(pool) => w.u8(EntityId::TAG_POOL).pool_id(pool),
        };
        match entry.rank {
            None => w.u8(0),
            Some(rank) => w.u8(1).u32(rank),
        };
        w.u64(entry.credits)
            .u64(entry.relay)
            .u64(entry.storage)
            .u64(entry.validation)
            .u64(entry.beacon_slots)
            .u32(entry.density_ppm)
            .u32(count_u32(entry.contributions.len()));
        for (node, credits) in &entry.contributions {
            w.node_id(node).u64(*credits);
        }
    }
}

/// `derive_key(CTX_TALLY, canonical encoding of (epoch, window, entries))`.
pub fn tally_digest(epoch: Epoch, window: SlotRange, entries: &[TallyEntry]) -> Digest {
    let mut bytes = Vec::new();
    encode_canonical(epoch, window, entries, &mut bytes);
    derive_key(CTX_TALLY, &[&bytes])
}

/// A list length as the u32 count of the codec. Tallies hold far fewer than 2^32 entries (one
/// per entity); a longer list is a bug and saturates, which changes the digest visibly.
fn count_u32(len: usize) -> u32 {
    debug_assert!(u32::try_from(len).is_ok(), "list of {len} items in a tally");
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// `density_ppm = beacon_slots · 10^6 div window_len`; 0 for an empty window, at most 10^6
/// (more beacon slots than window slots would be a bug and is clamped).
pub fn density_ppm(beacon_slots: u64, window_len: u64) -> u32 {
    if window_len == 0 {
        return 0;
    }
    let ppm = u128::from(beacon_slots.min(window_len)) * u128::from(PPM) / u128::from(window_len);
    // ppm ≤ 10^6 because beacon_slots ≤ window_len.
    u32::try_from(ppm).unwrap_or(u32::MAX)
}

/// Ranked iff `credits > 0 ∧ density_ppm ≥ D_MIN_PPM` (§7.2).
pub fn is_ranked(credits: u64, density_ppm: u32) -> bool {
    credits > 0 && density_ppm >= D_MIN_PPM
}

/// `tiebreak = keyed_hash(K_rank(e), u64 e ‖ entity_bytes)` with `hasher` keyed by `K_rank(e)`.
pub fn tiebreak(hasher: &KeyedHasher, epoch: Epoch, entity: &EntityId) -> Digest {
    let (bytes, len) = entity.to_bytes();
    hasher.hash(&[&epoch.0.to_be_bytes(), &bytes[..len]])
}

/// Ranking (§7.3): entries with `credits > 0 ∧ density ≥ 200 000 ppm` sorted by
/// (credits desc, tiebreak asc) get ranks 1..n; the others follow with `rank = None`, by entity
/// bytes. `rank_key` is `K_rank(epoch)`. Tie-break hashes are only computed for entries whose
/// credits tie with another's; the order is the same as if every entry had one.
pub fn rank_entries(rank_key: &Digest, epoch: Epoch, entries: Vec<TallyEntry>) -> Vec<TallyEntry> {
    let (mut ranked, mut unranked): (Vec<_>, Vec<_>) =
        entries.into_iter().partition(|e| is_ranked(e.credits, e.density_ppm));
    ranked.sort_unstable_by_key(|e| std::cmp::Reverse(e.credits));
    let hasher = KeyedHasher::new(rank_key);
    let mut start = 0;
    while start < ranked.len() {
        let credits = ranked[start].credits;
        let run = ranked[start..].partition_point(|e| e.credits == credits);
        if run > 1 {
            let tied = &mut ranked[start..start + run];
            // Distinct entities have distinct hashes except with negligible probability; the
            // entity bytes keep the order total even then.
            tied.sort_by_cached_key(|e| (tiebreak(&hasher, epoch, &e.entity), e.entity));
        }
        start += run;
    }
    for (index, entry) in ranked.iter_mut().enumerate() {
        entry.rank = Some(count_u32(index + 1));
    }
    unranked.sort_unstable_by_key(|e| e.entity);
    for entry in &mut unranked {
        entry.rank = None;
    }
    ranked.append(&mut unranked);
    ranked
}

/// A credit sum computed exactly, clamped to `CREDITS_MAX`. Clamping the exact sum equals
/// summing with saturation because every term is non-negative.
pub(crate) fn saturate(sum: u128) -> u64 {
    u64::try_from(sum).unwrap_or(u64::MAX).min(CREDITS_MAX)
}

/// Index of a kind in per-kind arrays: relay, storage, validation, beacon.
pub(crate) fn kind_index(kind: ProofKind) -> usize {
    match kind {
        ProofKind::RelayBandwidth => 0,
        ProofKind::StorageAvailability => 1,
        ProofKind::ValidationSignature => 2,
        ProofKind::UptimeBeacon => 3,
    }
}

/// Exact per-kind credit sums (relay, storage, validation) of one (node, entity) attribution.
pub(crate) type KindSums = [u128; 3];

/// Builds one tally entry from exact sums; `contributions` must already be sorted by node.
pub(crate) fn entry_from_sums(
    entity: EntityId,
    sums: &KindSums,
    beacon_slots: u64,
    window_len: u64,
    contributions: Vec<(NodeId, u64)>,
) -> TallyEntry {
    TallyEntry {
        entity,
        rank: None,
        credits: saturate(sums.iter().sum()),
        relay: saturate(sums[0]),
        storage: saturate(sums[1]),
        validation: saturate(sums[2]),
        beacon_slots,
        density_ppm: density_ppm(beacon_slots, window_len),
        contributions,
    }
}

/// What [`TallyBuilder::push`] did with a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The proof counts.
    Counted,
    /// Its slot lies outside the window; ignored.
    OutsideWindow,
    /// Its key has equivocation evidence; ignored.
    Excluded,
    /// A proof with the same key was already counted; ignored. The proof store keeps keys
    /// unique, so this only happens when a caller feeds a key twice.
    Duplicate,
}

/// The full tally of one epoch, computed in one streaming pass over the proofs of its window.
///
/// Feed every accepted proof (in any order; proofs outside `window(e)` are ignored), then call
/// [`TallyBuilder::finish`]. Memory is bounded by the nodes and entities seen, not by the
/// number of proofs: per node four window rings (one per kind, to ignore a repeated key), per
/// entity one beacon ring, and per (node, entity) pair three exact sums.
pub struct TallyBuilder<'a> {
    params: ConsensusParams,
    epoch: Epoch,
    window: SlotRange,
    revision: u32,
    membership: &'a dyn MembershipView,
    excluded: &'a dyn Fn(&ProofKey) -> bool,
    nodes: FxHashMap<NodeId, u32>,
    node_states: Vec<BuilderNode>,
    entities: FxHashMap<EntityId, u32>,
    entity_states: Vec<BuilderEntity>,
    attribution_index: FxHashMap<(u32, u32), u32>,
    attributions: Vec<BuilderAttribution>,
}

struct BuilderNode {
    id: NodeId,
    /// Slots over which `attribution` is known to be the node's attribution.
    cached: SlotRange,
    attribution: u32,
    /// Keys already counted, per kind.
    seen: [SlotRing; 4],
}

struct BuilderEntity {
    id: EntityId,
    beacons: SlotRing,
}

struct BuilderAttribution {
    node: u32,
    entity: u32,
    sums: KindSums,
}

impl<'a> TallyBuilder<'a> {
    /// A builder for `tally(epoch)` with the given membership; `excluded` answers whether a key
    /// has equivocation evidence (such keys contribute nothing). Fails only if the epoch is so
    /// far in the future that its window does not fit in a slot number.
    pub fn new(
        params: &ConsensusParams,
        epoch: Epoch,
        membership: &'a dyn MembershipView,
        excluded: &'a dyn Fn(&ProofKey) -> bool,
    ) -> Result<Self, Error> {
        let window = params.time.window(epoch).map_err(Error::Time)?;
        Ok(TallyBuilder {
            params: *params,
            epoch,
            window,
            revision: 0,
            membership,
            excluded,
            nodes: FxHashMap::default(),
            node_states: Vec::new(),
            entities: FxHashMap::default(),
            entity_states: Vec::new(),
            attribution_index: FxHashMap::default(),
            attributions: Vec::new(),
        })
    }

    /// Sets the revision of the tally (0 when first computed, +1 per recomputation).
    pub fn with_revision(mut self, revision: u32) -> Self {
        self.revision = revision;
        self
    }

    /// The window proofs count in.
    pub fn window(&self) -> SlotRange {
        self.window
    }

    /// Feeds every proof of `proofs`.
    pub fn extend<I: IntoIterator<Item = CountedProof>>(&mut self, proofs: I) {
        for proof in proofs {
            self.push(&proof);
        }
    }

    /// Feeds one proof.
    pub fn push(&mut self, proof: &CountedProof) -> PushOutcome {
        let slot = proof.slot;
        if !self.window.contains(slot) {
            return PushOutcome::OutsideWindow;
        }
        let kind = proof.value.kind();
        if (self.excluded)(&ProofKey { node: proof.node, slot, kind }) {
            return PushOutcome::Excluded;
        }
        let node = self.node_index(&proof.node);
        let state = &mut self.node_states[node as usize];
        if !state.seen[kind_index(kind)].insert(slot) {
            return PushOutcome::Duplicate;
        }
        let attribution = if state.cached.contains(slot) {
            state.attribution
        } else {
            self.attribute(node, slot)
        };
        let record = &mut self.attributions[attribution as usize];
        match kind {
            ProofKind::UptimeBeacon => {
                self.entity_states[record.entity as usize].beacons.insert(slot);
            }
            work => record.sums[kind_index(work)] += u128::from(proof.value.credits()),
        }
        PushOutcome::Counted
    }

    /// Feeds the proofs of `node` over the slots `range` in aggregate, as a store that keeps
    /// per-node sums can hand them over: `sums` are the relay, storage and validation credits of
    /// the proofs (each proof's `ProofValue::credits`, summed), `beacons` the slots with a beacon.
    ///
    /// The caller must feed no proof of `node` in `range` otherwise (sums cannot be checked for
    /// repeated keys) and must leave out ranges holding an excluded key. Returns `false`, and
    /// counts nothing, when `range` is not inside the window or the node's entity changes within
    /// `range`; the caller then feeds those proofs one by one.
    pub fn push_block(
        &mut self,
        node: &NodeId,
        range: SlotRange,
        sums: [u64; 3],
        beacons: impl IntoIterator<Item = Slot>,
    ) -> bool {
        if range.is_empty() || range.start < self.window.start || range.end > self.window.end {
            return false;
        }
        let (_, same) = self.membership.seat_at(node, range.start);
        if same.start > range.start || same.end < range.end {
            return false;
        }
        let index = self.node_index(node);
        let attribution = self.attribute(index, range.start);
        let record = &mut self.attributions[attribution as usize];
        for (total, part) in record.sums.iter_mut().zip(sums) {
            *total += u128::from(part);
        }
        let entity = record.entity as usize;
        for slot in beacons.into_iter().filter(|slot| range.contains(*slot)) {
            self.entity_states[entity].beacons.insert(slot);
        }
        true
    }

    fn node_index(&mut self, id: &NodeId) -> u32 {
        if let Some(index) = self.nodes.get(id) {
            return *index;
        }
        let index = count_u32(self.node_states.len());
        let window_slots = self.params.time.window_slots();
        self.node_states.push(BuilderNode {
            id: *id,
            cached: SlotRange { start: Slot(0), end: Slot(0) },
            attribution: 0,
            seen: std::array::from_fn(|_| SlotRing::new(window_slots)),
        });
        self.nodes.insert(*id, index);
        index
    }

    /// Looks up the node's entity at `slot`, caches it for the range the membership vouches
    /// for, and returns the (node, entity) attribution.
    fn attribute(&mut self, node: u32, slot: Slot) -> u32 {
        let id = self.node_states[node as usize].id;
        let (pool, range) = self.membership.seat_at(&id, slot);
        let entity_id = pool.map_or(EntityId::Node(id), EntityId::Pool);
        let window_slots = self.params.time.window_slots();
        let entity = *self.entities.entry(entity_id).or_insert_with(|| {
            self.entity_states
                .push(BuilderEntity { id: entity_id, beacons: SlotRing::new(window_slots) });
            count_u32(self.entity_states.len() - 1)
        });
        let attribution = *self.attribution_index.entry((node, entity)).or_insert_with(|| {
            self.attributions.push(BuilderAttribution { node, entity, sums: [0; 3] });
            count_u32(self.attributions.len() - 1)
        });
        let state = &mut self.node_states[node as usize];
        if range.contains(slot) {
            state.cached = range;
            state.attribution = attribution;
        }
        attribution
    }

    /// The tally: sums per entity, density, ranking and digest.
    pub fn finish(self) -> Tally {
        let mut sums = vec![[0u128; 3]; self.entity_states.len()];
        let mut contributions: Vec<Vec<(NodeId, u64)>> = vec![Vec::new(); sums.len()];
        for record in &self.attributions {
            let entity = record.entity as usize;
            for (total, part) in sums[entity].iter_mut().zip(record.sums) {
                *total += part;
            }
            if matches!(self.entity_states[entity].id, EntityId::Pool(_)) {
                let node = self.node_states[record.node as usize].id;
                contributions[entity].push((node, saturate(record.sums.iter().sum())));
            }
        }
        let window_len = self.window.len();
        let entries = self
            .entity_states
            .iter()
            .zip(sums.iter().zip(contributions))
            .map(|(entity, (sums, mut contributions))| {
                contributions.sort_unstable_by_key(|c| c.0);
                entry_from_sums(entity.id, sums, entity.beacons.count(), window_len, contributions)
            })
            .collect();
        Tally::from_entries(&self.params, self.epoch, self.window, self.revision, entries)
    }
}

/// The full tally of `epoch` over `proofs` (any order): a convenience over [`TallyBuilder`].
pub fn compute_tally<I: IntoIterator<Item = CountedProof>>(
    params: &ConsensusParams,
    epoch: Epoch,
    membership: &dyn MembershipView,
    excluded: &dyn Fn(&ProofKey) -> bool,
    proofs: I,
) -> Result<Tally, Error> {
    let mut builder = TallyBuilder::new(params, epoch, membership, excluded)?;
    builder.extend(proofs);
    Ok(builder.finish())
}

impl CountedProof {
    /// The uniqueness key of this proof.
    pub fn key(&self) -> ProofKey {
        ProofKey { node: self.node, slot: self.slot, kind: self.value.kind() }
    }
}

#[cfg(test)]
mod tests;
