//! The incremental tally engine (consensus.md §7.4): a rolling view of the last `window_slots`
//! slots that slides one slot at a time, takes late proofs into slots already in the window,
//! drops keys that later got equivocation evidence, and yields `tally(e)` whenever its window
//! equals `window(e)`. It must agree entry for entry with the full recomputation
//! ([`crate::tally::TallyBuilder`]); the property tests compare both after random histories.
//!
//! # State and memory
//! - per (node, entity) **attribution** with a proof in the window: exact per-kind credit sums
//!   (u128, so evicting a proof is a subtraction), a proof count, and four [`SlotRing`]s (one
//!   per kind) marking which keys are present (4 × 630 B on mainnet);
//! - per entity: a beacon ring (distinct beacon slots, any member) and its attributions;
//! - per slot of the window: a bucket with one 16-byte cell per **work** proof (attribution,
//!   kind, credits) so that evicting the slot subtracts exactly what it added. Beacons need no
//!   cell: their bit in the attribution's ring is the record.
//!
//! Memory is therefore O(attributions · window_slots / 8 + work proofs in the window); nodes,
//! entities and attributions whose last proof left the window are freed (their slots reused).
//! Sliding costs O(work proofs of the evicted slot + live attributions) plus the inserts.

use lucid_core::{EntityId, Epoch, NodeId, Slot, SlotRange};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::params::ConsensusParams;
use crate::proof::{ProofKey, ProofKind};
use crate::ring::SlotRing;
use crate::tally::{
    CountedProof, KindSums, MembershipView, PushOutcome, Tally, entry_from_sums, kind_index,
    saturate,
};
use crate::uptime::EntityWindow;

/// The rolling window does not equal the window of the requested epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rolling window {rolling:?} is not the window {expected:?} of {epoch}")]
pub struct WindowMismatch {
    /// The epoch asked for.
    pub epoch: Epoch,
    /// `window(epoch)`, if representable.
    pub expected: Option<SlotRange>,
    /// The rolling window.
    pub rolling: SlotRange,
}

/// The incremental tally engine. See the module docs for its state and costs.
pub struct RollingTally {
    params: ConsensusParams,
    window_slots: u64,
    /// The window is `[end − window_slots, end)`, clipped at slot 0.
    end: Slot,
    nodes: FxHashMap<NodeId, u32>,
    node_slab: Vec<RollNode>,
    free_nodes: Vec<u32>,
    entities: FxHashMap<EntityId, u32>,
    entity_slab: Vec<RollEntity>,
    free_entities: Vec<u32>,
    attribution_index: FxHashMap<(u32, u32), u32>,
    attribution_slab: Vec<RollAttribution>,
    free_attributions: Vec<u32>,
    /// Work cells of slot s live in `buckets[s mod window_slots]`.
    buckets: Vec<Vec<WorkCell>>,
    /// Keys with equivocation evidence whose slot is in or after the window.
    excluded: FxHashSet<ProofKey>,
}

struct RollNode {
    live: bool,
    id: NodeId,
    attributions: u32,
    /// Slots over which `attribution` is known to be the node's attribution.
    cached: SlotRange,
    attribution: u32,
}

struct RollEntity {
    live: bool,
    id: EntityId,
    beacons: SlotRing,
    beacon_slots: u64,
    attributions: Vec<u32>,
}

struct RollAttribution {
    live: bool,
    node: u32,
    entity: u32,
    sums: KindSums,
    proofs: u64,
    present: [SlotRing; 4],
}

#[derive(Clone, Copy)]
struct WorkCell {
    attribution: u32,
    kind: u8,
    credits: u64,
}

const EMPTY_RANGE: SlotRange = SlotRange { start: Slot(0), end: Slot(0) };

fn index_u32(len: usize) -> u32 {
    debug_assert!(u32::try_from(len).is_ok(), "more than 2^32 rolling records");
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl RollingTally {
    /// An empty engine whose window ends before `end`, i.e. covers `[end − window, end)`.
    /// `RollingTally::new(params, epoch_start(e))` has the window of epoch `e`.
    pub fn new(params: &ConsensusParams, end: Slot) -> Self {
        let window_slots = params.time.window_slots().max(1);
        let buckets = usize::try_from(window_slots).unwrap_or(usize::MAX);
        RollingTally {
            params: *params,
            window_slots,
            end,
            nodes: FxHashMap::default(),
            node_slab: Vec::new(),
            free_nodes: Vec::new(),
            entities: FxHashMap::default(),
            entity_slab: Vec::new(),
            free_entities: Vec::new(),
            attribution_index: FxHashMap::default(),
            attribution_slab: Vec::new(),
            free_attributions: Vec::new(),
            buckets: (0..buckets).map(|_| Vec::new()).collect(),
            excluded: FxHashSet::default(),
        }
    }

    /// The slots the view covers: `[max(0, end − window_slots), end)`.
    pub fn window(&self) -> SlotRange {
        SlotRange { start: Slot(self.end.0.saturating_sub(self.window_slots)), end: self.end }
    }

    /// Number of entities with a proof in the window.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Number of work proofs held in the window's buckets.
    pub fn work_proofs(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    fn bucket_of(&self, slot: Slot) -> usize {
        // < window_slots, the number of buckets.
        (slot.0 % self.window_slots) as usize
    }

    /// Slides the window by one slot: slot `end` enters (empty), slot `end − window_slots`
    /// leaves with every proof in it.
    pub fn advance(&mut self) {
        let entering = self.end;
        if entering.0 >= self.window_slots {
            self.evict(Slot(entering.0 - self.window_slots));
        }
        self.end = Slot(entering.0.saturating_add(1));
        let start = self.window().start;
        if !self.excluded.is_empty() {
            self.excluded.retain(|key| key.slot >= start);
        }
    }

    /// Slides until the window ends before `end` (no-op if it already does or `end` is earlier).
    pub fn advance_to(&mut self, end: Slot) {
        if end.0 >= self.end.0.saturating_add(self.window_slots) {
            // Every slot leaves: start over empty rather than evicting slot by slot.
            let excluded = std::mem::take(&mut self.excluded);
            *self = RollingTally::new(&self.params, end);
            self.excluded = excluded;
            let start = self.window().start;
            self.excluded.retain(|key| key.slot >= start);
            return;
        }
        while self.end < end {
            self.advance();
        }
    }

    /// Slides by one slot, then inserts `proofs` (normally those of the slot that entered).
    /// Returns how many of them counted.
    pub fn slide<I: IntoIterator<Item = CountedProof>>(
        &mut self,
        membership: &dyn MembershipView,
        proofs: I,
    ) -> usize {
        self.advance();
        proofs
            .into_iter()
            .filter(|proof| self.insert(membership, proof) == PushOutcome::Counted)
            .count()
    }

    /// Inserts an accepted proof whose slot lies in the window (a live proof of the newest slot
    /// or a late one). Keys with evidence and keys already present are ignored.
    pub fn insert(&mut self, membership: &dyn MembershipView, proof: &CountedProof) -> PushOutcome {
        let slot = proof.slot;
        if !self.window().contains(slot) {
            return PushOutcome::OutsideWindow;
        }
        let kind = proof.value.kind();
        if !self.excluded.is_empty() && self.excluded.contains(&proof.key()) {
            return PushOutcome::Excluded;
        }
        let node = self.node_index(&proof.node);
        let attribution = self.attribution_of(membership, node, slot, true);
        let k = kind_index(kind);
        let record = &mut self.attribution_slab[attribution as usize];
        if !record.present[k].insert(slot) {
            return PushOutcome::Duplicate;
        }
        record.proofs += 1;
        if kind == ProofKind::UptimeBeacon {
            let entity = &mut self.entity_slab[record.entity as usize];
            if entity.beacons.insert(slot) {
                entity.beacon_slots += 1;
            }
        } else {
            let credits = proof.value.credits();
            record.sums[k] += u128::from(credits);
            let bucket = self.bucket_of(slot);
            self.buckets[bucket].push(WorkCell { attribution, kind: k as u8, credits });
        }
        PushOutcome::Counted
    }

    /// Records equivocation evidence for `key`: the proof under it (if counted) leaves the view
    /// and the key is never counted again while it can still enter the window. Returns whether
    /// a counted proof was removed.
    pub fn exclude(&mut self, membership: &dyn MembershipView, key: &ProofKey) -> bool {
        let window = self.window();
        if key.slot < window.start {
            return false;
        }
        self.excluded.insert(*key);
        if !window.contains(key.slot) {
            return false;
        }
        let Some(&node) = self.nodes.get(&key.node) else {
            return false;
        };
        let attribution = self.attribution_of(membership, node, key.slot, false);
        if attribution == u32::MAX {
            return false;
        }
        let k = kind_index(key.kind);
        let record = &mut self.attribution_slab[attribution as usize];
        if !record.present[k].remove(key.slot) {
            return false;
        }
        record.proofs -= 1;
        let entity = record.entity;
        if key.kind == ProofKind::UptimeBeacon {
            // The entity keeps the slot if another member also beaconed in it.
            let others = self.entity_slab[entity as usize].attributions.iter().any(|&other| {
                other != attribution
                    && self.attribution_slab[other as usize].present[3].contains(key.slot)
            });
            let entity = &mut self.entity_slab[entity as usize];
            if !others && entity.beacons.remove(key.slot) {
                entity.beacon_slots -= 1;
            }
        } else {
            let bucket = self.bucket_of(key.slot);
            let cells = &mut self.buckets[bucket];
            if let Some(at) =
                cells.iter().position(|c| c.attribution == attribution && usize::from(c.kind) == k)
            {
                let cell = cells.swap_remove(at);
                self.attribution_slab[attribution as usize].sums[k] -= u128::from(cell.credits);
            } else {
                debug_assert!(false, "present work proof without a bucket cell");
            }
        }
        self.collect(attribution);
        true
    }

    /// `tally(epoch)` from the view; the window must equal `window(epoch)`.
    pub fn tally(&self, epoch: Epoch, revision: u32) -> Result<Tally, WindowMismatch> {
        let window = self.window();
        let expected = self.params.time.window(epoch).ok();
        if expected != Some(window) {
            return Err(WindowMismatch { epoch, expected, rolling: window });
        }
        let entries = self
            .entity_slab
            .iter()
            .filter(|entity| entity.live)
            .map(|entity| {
                let mut sums = [0u128; 3];
                let mut contributions = Vec::new();
                for &a in &entity.attributions {
                    let record = &self.attribution_slab[a as usize];
                    for (total, part) in sums.iter_mut().zip(record.sums) {
                        *total += part;
                    }
                    if matches!(entity.id, EntityId::Pool(_)) {
                        let node = self.node_slab[record.node as usize].id;
                        contributions.push((node, saturate(record.sums.iter().sum())));
                    }
                }
                contributions.sort_unstable_by_key(|c| c.0);
                entry_from_sums(entity.id, &sums, entity.beacon_slots, window.len(), contributions)
            })
            .collect();
        Ok(Tally::from_entries(&self.params, epoch, window, revision, entries))
    }

    /// The beacon ring of `entity` over the window (for the uptime view), if it has proofs.
    pub fn entity_beacons(&self, entity: &EntityId) -> Option<&SlotRing> {
        let index = *self.entities.get(entity)?;
        Some(&self.entity_slab[index as usize].beacons)
    }

    /// What the uptime view needs about `entity`: its beacon ring, the window and its credits.
    pub fn entity_window(&self, entity: &EntityId) -> EntityWindow<'_> {
        EntityWindow {
            beacons: self.entity_beacons(entity),
            window: self.window(),
            credits: self.entity_credits(entity),
        }
    }

    /// Credits of `entity` in the window (0 if it has no proof there).
    pub fn entity_credits(&self, entity: &EntityId) -> u64 {
        let Some(&index) = self.entities.get(entity) else {
            return 0;
        };
        let total: u128 = self.entity_slab[index as usize]
            .attributions
            .iter()
            .map(|&a| self.attribution_slab[a as usize].sums.iter().sum::<u128>())
            .sum();
        saturate(total)
    }

    fn evict(&mut self, leaving: Slot) {
        let bucket = self.bucket_of(leaving);
        let mut emptied = Vec::new();
        let cells = std::mem::take(&mut self.buckets[bucket]);
        for cell in &cells {
            let record = &mut self.attribution_slab[cell.attribution as usize];
            let k = usize::from(cell.kind);
            record.sums[k] -= u128::from(cell.credits);
            record.present[k].remove(leaving);
            record.proofs -= 1;
            if record.proofs == 0 {
                emptied.push(cell.attribution);
            }
        }
        // Keep the allocation for the slot that enters in this bucket.
        let mut cells = cells;
        cells.clear();
        self.buckets[bucket] = cells;
        for (index, record) in self.attribution_slab.iter_mut().enumerate() {
            if record.live && record.present[3].remove(leaving) {
                record.proofs -= 1;
                let entity = &mut self.entity_slab[record.entity as usize];
                if entity.beacons.remove(leaving) {
                    entity.beacon_slots -= 1;
                }
                if record.proofs == 0 {
                    emptied.push(index_u32(index));
                }
            }
        }
        for attribution in emptied {
            self.collect(attribution);
        }
    }

    /// Frees an attribution without proofs, and its node and entity when they have none left.
    fn collect(&mut self, attribution: u32) {
        let record = &mut self.attribution_slab[attribution as usize];
        if !record.live || record.proofs != 0 {
            return;
        }
        record.live = false;
        record.sums = [0; 3];
        let (node, entity) = (record.node, record.entity);
        self.attribution_index.remove(&(node, entity));
        self.free_attributions.push(attribution);

        let entity_record = &mut self.entity_slab[entity as usize];
        if let Some(at) = entity_record.attributions.iter().position(|&a| a == attribution) {
            entity_record.attributions.swap_remove(at);
        }
        if entity_record.attributions.is_empty() {
            debug_assert_eq!(entity_record.beacon_slots, 0);
            entity_record.live = false;
            entity_record.beacons.clear();
            entity_record.beacon_slots = 0;
            self.entities.remove(&entity_record.id);
            self.free_entities.push(entity);
        }

        let node_record = &mut self.node_slab[node as usize];
        node_record.attributions -= 1;
        if node_record.attribution == attribution {
            node_record.cached = EMPTY_RANGE;
        }
        if node_record.attributions == 0 {
            node_record.live = false;
            self.nodes.remove(&node_record.id);
            self.free_nodes.push(node);
        }
    }

    fn node_index(&mut self, id: &NodeId) -> u32 {
        if let Some(&index) = self.nodes.get(id) {
            return index;
        }
        let record =
            RollNode { live: true, id: *id, attributions: 0, cached: EMPTY_RANGE, attribution: 0 };
        let index = match self.free_nodes.pop() {
            Some(index) => {
                self.node_slab[index as usize] = record;
                index
            }
            None => {
                self.node_slab.push(record);
                index_u32(self.node_slab.len() - 1)
            }
        };
        self.nodes.insert(*id, index);
        index
    }

    /// The attribution of `node`'s proofs at `slot`. With `create`, missing entity and
    /// attribution records are made; without, `u32::MAX` stands for "none".
    fn attribution_of(
        &mut self,
        membership: &dyn MembershipView,
        node: u32,
        slot: Slot,
        create: bool,
    ) -> u32 {
        let record = &self.node_slab[node as usize];
        if record.cached.contains(slot) {
            return record.attribution;
        }
        let id = record.id;
        let (pool, range) = membership.seat_at(&id, slot);
        let entity_id = pool.map_or(EntityId::Node(id), EntityId::Pool);
        let entity = match self.entities.get(&entity_id) {
            Some(&entity) => entity,
            None if create => self.new_entity(entity_id),
            None => return u32::MAX,
        };
        let attribution = match self.attribution_index.get(&(node, entity)) {
            Some(&attribution) => attribution,
            None if create => self.new_attribution(node, entity),
            None => return u32::MAX,
        };
        let record = &mut self.node_slab[node as usize];
        if range.contains(slot) {
            record.cached = range;
            record.attribution = attribution;
        }
        attribution
    }

    fn new_entity(&mut self, id: EntityId) -> u32 {
        let index = match self.free_entities.pop() {
            Some(index) => {
                let record = &mut self.entity_slab[index as usize];
                record.live = true;
                record.id = id;
                index
            }
            None => {
                self.entity_slab.push(RollEntity {
                    live: true,
                    id,
                    beacons: SlotRing::new(self.window_slots),
                    beacon_slots: 0,
                    attributions: Vec::new(),
                });
                index_u32(self.entity_slab.len() - 1)
            }
        };
        self.entities.insert(id, index);
        index
    }

    fn new_attribution(&mut self, node: u32, entity: u32) -> u32 {
        let index = match self.free_attributions.pop() {
            Some(index) => {
                let record = &mut self.attribution_slab[index as usize];
                record.live = true;
                record.node = node;
                record.entity = entity;
                index
            }
            None => {
                self.attribution_slab.push(RollAttribution {
                    live: true,
                    node,
                    entity,
                    sums: [0; 3],
                    proofs: 0,
                    present: std::array::from_fn(|_| SlotRing::new(self.window_slots)),
                });
                index_u32(self.attribution_slab.len() - 1)
            }
        };
        self.attribution_index.insert((node, entity), index);
        self.entity_slab[entity as usize].attributions.push(index);
        self.node_slab[node as usize].attributions += 1;
        index
    }
}

#[cfg(test)]
mod tests;
