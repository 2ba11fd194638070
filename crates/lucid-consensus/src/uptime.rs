//! The uptime view and eligibility warnings (consensus.md §9), computed from accepted beacons
//! only: a window-sized ring of beacon slots per node ([`BeaconRing`], 630 B on mainnet) and the
//! beacon ring and credits of the node's entity in the rolling window
//! ([`crate::rolling::RollingTally::entity_window`]). Never from separate counters.
//!
//! Status and eligibility are informational: they never gate acceptance or penalise. They exist
//! so operators hear about a coming loss of eligibility before the density line is crossed.

use lucid_core::{Slot, SlotRange, TimeParams};

use crate::params::{D_MIN_PPM, D_WARN_PPM, INACTIVE_BELOW_PPM, PPM, SUSPEND_AFTER_MISSED};
use crate::ring::SlotRing;
use crate::tally::density_ppm;

/// A node's accepted beacon slots over the last `window_slots` slots up to the newest one
/// recorded, plus the newest beacon slot ever recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeaconRing {
    ring: SlotRing,
    last: Option<Slot>,
}

impl BeaconRing {
    /// An empty ring spanning `window_slots` slots.
    pub fn new(window_slots: u64) -> Self {
        BeaconRing { ring: SlotRing::new(window_slots), last: None }
    }

    /// Records an accepted beacon for `slot`; returns whether it was new. A slot too old for
    /// the ring (at or before `last − window_slots`) is ignored: it can no longer matter.
    pub fn record(&mut self, slot: Slot) -> bool {
        let window = self.ring.window_slots();
        match self.last {
            None => {
                self.last = Some(slot);
                self.ring.insert(slot)
            }
            Some(last) if slot > last => {
                // Slots last+1 ..= slot reuse bits of slots that leave the span: clear them.
                if slot.0 - last.0 >= window {
                    self.ring.clear();
                } else {
                    for old in last.0 + 1..=slot.0 {
                        self.ring.remove(Slot(old));
                    }
                }
                self.last = Some(slot);
                self.ring.insert(slot)
            }
            Some(last) if slot.0 + window > last.0 => self.ring.insert(slot),
            Some(_) => false,
        }
    }

    /// The newest beacon slot recorded.
    pub fn last(&self) -> Option<Slot> {
        self.last
    }

    /// The slots the ring answers for: the `window_slots` slots ending with the newest beacon.
    pub fn covered(&self) -> SlotRange {
        match self.last {
            None => SlotRange { start: Slot(0), end: Slot(0) },
            Some(last) => {
                let end = Slot(last.0.saturating_add(1));
                SlotRange { start: Slot(end.0.saturating_sub(self.ring.window_slots())), end }
            }
        }
    }

    /// Whether a beacon was recorded for `slot` (false outside [`BeaconRing::covered`]).
    pub fn contains(&self, slot: Slot) -> bool {
        self.covered().contains(slot) && self.ring.contains(slot)
    }

    /// Number of beacon slots in `range` (only the covered part is counted).
    pub fn count_in(&self, range: SlotRange) -> u64 {
        self.ring.count_in(intersect(range, self.covered()))
    }

    /// The underlying ring.
    pub fn ring(&self) -> &SlotRing {
        &self.ring
    }
}

/// What the uptime view needs to know about the node's entity (its pool, or the node itself),
/// normally taken from the rolling tally at the current slot.
#[derive(Clone, Copy, Debug)]
pub struct EntityWindow<'a> {
    /// Beacon slots of the entity (any member); `None` if it has no proof in the window.
    pub beacons: Option<&'a SlotRing>,
    /// The slots `beacons` stands for (the rolling window: the last slots before the current).
    pub window: SlotRange,
    /// Credits of the entity in `window`.
    pub credits: u64,
}

/// Uptime status (informational; never gates acceptance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UptimeStatus {
    /// Uptime at least 800 000 ppm and fewer than 5 consecutive missed slots.
    Active,
    /// Uptime below 800 000 ppm.
    Inactive,
    /// 5 or more consecutive missed slots.
    Suspended,
}

/// Whether the node's entity is on course to be ranked in the next tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Eligibility {
    /// Comfortably above the lines.
    Ok,
    /// Slack of at most one epoch, or rolling density below the 250 000 ppm warning line.
    AtRisk,
    /// Cannot reach the density line for the next tally any more, or has no credits.
    Ineligible,
}

/// The uptime view of one node at one slot (§9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UptimeView {
    /// Completed slots since registration, at most one window.
    pub expected_slots: u64,
    /// Beacon slots among those.
    pub observed_slots: u64,
    /// observed · 10^6 div expected; 10^6 when nothing is expected yet.
    pub uptime_ppm: u32,
    /// Completed slots since the last beacon (since registration if none).
    pub consecutive_missed: u64,
    /// Derived from the two above.
    pub status: UptimeStatus,
    /// Beacon slots the entity may still miss before the next tally's density line is out of
    /// reach; negative once it is.
    pub next_tally_slack: i64,
    /// Density of the entity over the rolling window.
    pub rolling_density_ppm: u32,
    /// Derived from the slack, credits and rolling density.
    pub eligibility: Eligibility,
}

fn intersect(a: SlotRange, b: SlotRange) -> SlotRange {
    let start = a.start.max(b.start);
    SlotRange { start, end: a.end.min(b.end).max(start) }
}

fn i64_of(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Beacon slots needed for the density line over a window of `len` slots:
/// `ceil(len · D_MIN_PPM / 10^6)`, the least count with `density_ppm ≥ D_MIN_PPM`.
pub fn beacons_needed(len: u64) -> u64 {
    let needed = (u128::from(len) * u128::from(D_MIN_PPM)).div_ceil(u128::from(PPM));
    u64::try_from(needed).unwrap_or(u64::MAX)
}

/// The uptime view of a node registered at `registered_at`, at `current_slot` (the slot now
/// running; it is not judged yet).
///
/// - The node's own fields look at the completed slots `[max(registered_at, current − W),
///   current)`.
/// - `next_tally_slack` = (entity beacon slots already in window(e + 1), counting completed
///   slots) + (slots of window(e + 1) from the current one on) − `beacons_needed(|window(e + 1)|)`,
///   with e the current epoch. A missed slot lowers it by at most one.
/// - The at-risk slack line is one epoch of slots (720 on mainnet).
pub fn uptime_view(
    time: &TimeParams,
    registered_at: Slot,
    current_slot: Slot,
    node_beacons: &BeaconRing,
    entity: &EntityWindow<'_>,
) -> UptimeView {
    let current = current_slot.0;
    let judged = SlotRange {
        start: Slot(registered_at.0.max(current.saturating_sub(time.window_slots()))),
        end: current_slot,
    };
    let expected_slots = judged.len();
    let observed_slots = node_beacons.count_in(judged).min(expected_slots);
    let uptime_ppm =
        if expected_slots == 0 { 1_000_000 } else { density_ppm(observed_slots, expected_slots) };
    let consecutive_missed = match node_beacons.last() {
        Some(last) => current.saturating_sub(1).saturating_sub(last.0),
        None => current.saturating_sub(registered_at.0),
    };
    let status = if consecutive_missed >= SUSPEND_AFTER_MISSED {
        UptimeStatus::Suspended
    } else if uptime_ppm < INACTIVE_BELOW_PPM {
        UptimeStatus::Inactive
    } else {
        UptimeStatus::Active
    };

    let next_epoch = time.epoch_of(current_slot).0.saturating_add(1);
    let next_window = time
        .window(lucid_core::Epoch(next_epoch))
        .unwrap_or(SlotRange { start: current_slot, end: current_slot });
    let done = intersect(SlotRange { start: next_window.start, end: current_slot }, entity.window);
    let already = entity.beacons.map_or(0, |ring| ring.count_in(done));
    let left = next_window.end.0.saturating_sub(current);
    let next_tally_slack = i64_of(already)
        .saturating_add(i64_of(left))
        .saturating_sub(i64_of(beacons_needed(next_window.len())));

    let rolling_beacons = entity.beacons.map_or(0, |ring| ring.count_in(entity.window));
    let rolling_density_ppm = density_ppm(rolling_beacons, entity.window.len());
    let eligibility = if next_tally_slack < 0 || entity.credits == 0 {
        Eligibility::Ineligible
    } else if next_tally_slack <= i64_of(time.slots_per_epoch()) || rolling_density_ppm < D_WARN_PPM
    {
        Eligibility::AtRisk
    } else {
        Eligibility::Ok
    };
    UptimeView {
        expected_slots,
        observed_slots,
        uptime_ppm,
        consecutive_missed,
        status,
        next_tally_slack,
        rolling_density_ppm,
        eligibility,
    }
}

#[cfg(test)]
mod tests;
