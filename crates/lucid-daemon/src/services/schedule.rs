//! The schedule keeper: the leader schedule of each slot at its start and its result at slot
//! start + 30 s (`consensus.md` §8), both written once through the `RecordStore`.
//!
//! - The schedule of slot s is `leader::select` over the current revision of `tally(epoch_of(s))`
//!   and the results recorded for `[s − 16, s)`; it is stored insert-if-absent and never
//!   recomputed once stored (a later tally revision does not rewrite history).
//! - The result of slot s is `leader::decide_result` over the claims the node holds for s
//!   ([`ClaimSource`]); it is recorded compare-and-set from absent. Valid claims made from
//!   another tally digest count `lucid_tally_divergence_total` and log a warning.
//! - Slots are handled in order, so the result of s − 1 is recorded before the schedule of s
//!   (which needs it for the cooldown). After slots skipped while running (a stall, a suspend)
//!   the keeper does the bookkeeping of each of them, at most [`CATCH_UP_SLOTS`] back.
//! - At start it begins with the current slot, and only completes the results of the slots of
//!   the last [`CATCH_UP_SLOTS`] that it had scheduled before stopping. Results are local
//!   observations (§8.4), fixed once: a node that was down derives the others from claims
//!   fetched from peers (the catch-up path), and until then they are unknown, which `select`
//!   treats as contributing nothing to the cooldown.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use lucid_consensus::ConsensusParams;
use lucid_consensus::leader::{
    Claim, ClaimVerdict, Recorded, Schedule, claim_verdict, decide_result, result_time, select,
};
use lucid_consensus::params::COOLDOWN_SLOTS;
use lucid_consensus::records::RecordStore;
use lucid_core::{Slot, SlotRange, UnixMillis};

use super::ServiceError;
use super::metrics::ServiceMetrics;
use super::tally::MembershipSource;

/// How many slots behind the current one the keeper fills in after a gap: the cooldown horizon.
pub const CATCH_UP_SLOTS: u64 = COOLDOWN_SLOTS;

/// Where the slot claims the node received live: the gossip and peer services fill it.
#[async_trait::async_trait]
pub trait ClaimSource: Send + Sync {
    /// The claims held for `slot` (signatures already verified), in any order.
    async fn claims(&self, slot: Slot) -> Result<Vec<Claim>, lucid_consensus::Error>;
}

/// Claims in memory, bounded to the newest slots: the live path adds verified claims, the
/// keeper reads them at result time.
#[derive(Debug)]
pub struct MemoryClaims {
    retain_slots: u64,
    claims: Mutex<BTreeMap<Slot, Vec<Claim>>>,
}

impl Default for MemoryClaims {
    fn default() -> Self {
        MemoryClaims::new(4 * CATCH_UP_SLOTS)
    }
}

impl MemoryClaims {
    /// Keeps claims of the `retain_slots` newest slots.
    pub fn new(retain_slots: u64) -> Self {
        MemoryClaims { retain_slots: retain_slots.max(1), claims: Mutex::new(BTreeMap::new()) }
    }

    /// Adds a verified claim; claims of slots older than the retained range are dropped.
    pub fn add(&self, claim: Claim) {
        let mut claims = self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let newest =
            claims.last_key_value().map_or(claim.slot, |(slot, _)| (*slot).max(claim.slot));
        let horizon = Slot(newest.0.saturating_sub(self.retain_slots));
        if claim.slot < horizon {
            return;
        }
        claims.entry(claim.slot).or_default().push(claim);
        while claims.first_key_value().is_some_and(|(slot, _)| *slot < horizon) {
            claims.pop_first();
        }
    }
}

#[async_trait::async_trait]
impl ClaimSource for MemoryClaims {
    async fn claims(&self, slot: Slot) -> Result<Vec<Claim>, lucid_consensus::Error> {
        let claims = self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(claims.get(&slot).cloned().unwrap_or_default())
    }
}

/// What the keeper needs.
#[derive(Clone)]
pub struct ScheduleDeps {
    /// The network's parameters.
    pub params: ConsensusParams,
    /// Tallies (read), schedules and results (written once).
    pub records: Arc<dyn RecordStore>,
    /// The claims the node holds.
    pub claims: Arc<dyn ClaimSource>,
    /// Which pool each node sat in (to judge claims), read for every result.
    pub membership: Arc<dyn MembershipSource>,
    /// Result counters.
    pub metrics: Arc<ServiceMetrics>,
}

/// Schedules slots and records their results.
pub struct ScheduleKeeper {
    deps: ScheduleDeps,
    /// Every slot up to this one has its schedule and its result.
    complete_through: Option<Slot>,
    /// Valid claims whose tally digest differed from ours.
    divergent: u64,
}

fn store_error(action: &'static str) -> impl FnOnce(lucid_consensus::Error) -> ServiceError {
    ServiceError::consensus("schedule", action)
}

impl ScheduleKeeper {
    /// A keeper that has handled no slot yet.
    pub fn new(deps: ScheduleDeps) -> Self {
        ScheduleKeeper { deps, complete_through: None, divergent: 0 }
    }

    /// Valid claims seen with another tally digest than ours.
    pub fn divergent_claims(&self) -> u64 {
        self.divergent
    }

    /// The stored schedule of `slot`, computing and storing it first if there is none.
    pub async fn ensure_schedule(&self, slot: Slot) -> Result<Schedule, ServiceError> {
        let records = &self.deps.records;
        if let Some(schedule) =
            records.schedule(slot).await.map_err(store_error("reading a schedule"))?
        {
            return Ok(schedule);
        }
        let params = &self.deps.params;
        let tally = records
            .tally(params.time.epoch_of(slot))
            .await
            .map_err(store_error("reading the epoch's tally"))?
            .map(|stored| stored.tally);
        let recent = records
            .results(SlotRange { start: Slot(slot.0.saturating_sub(COOLDOWN_SLOTS)), end: slot })
            .await
            .map_err(store_error("reading recent results"))?;
        let schedule = select(params, slot, tally.as_ref(), &recent);
        records.insert_schedule(&schedule).await.map_err(store_error("storing a schedule"))?;
        tracing::debug!(%slot, outcome = ?schedule.outcome, "schedule stored");
        Ok(schedule)
    }

    /// Records the result of `slot` from the claims held, unless one is recorded.
    pub async fn ensure_result(&mut self, schedule: &Schedule) -> Result<(), ServiceError> {
        let slot = schedule.slot;
        let records = &self.deps.records;
        let recorded = records
            .results(SlotRange { start: slot, end: Slot(slot.0.saturating_add(1)) })
            .await
            .map_err(store_error("reading a result"))?;
        if !recorded.is_empty() {
            return Ok(());
        }
        let claims = self.deps.claims.claims(slot).await.map_err(store_error("reading claims"))?;
        let membership = self.deps.membership.membership().await?;
        let membership = membership.as_ref();
        for claim in &claims {
            if let ClaimVerdict::Valid { divergent_tally: true, index } =
                claim_verdict(&self.deps.params, schedule, membership, claim)
            {
                self.divergent = self.divergent.saturating_add(1);
                self.deps.metrics.tally_divergence.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%slot, candidate = index.get(), "valid claim made from a different tally digest");
            }
        }
        let result = decide_result(&self.deps.params, schedule, membership, &claims);
        if records.record_result(slot, &result).await.map_err(store_error("recording a result"))?
            == Recorded::Inserted
        {
            self.deps.metrics.count_result(&result);
            tracing::debug!(%slot, ?result, "slot result recorded");
        }
        Ok(())
    }

    /// Does what is due at `now`: for every slot from the last complete one (at most
    /// [`CATCH_UP_SLOTS`] back) to the current one, its schedule, and its result once due.
    pub async fn catch_up(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let params = self.deps.params;
        let Ok(current) = params.time.slot_of(now) else { return Ok(()) };
        let oldest = current.0.saturating_sub(CATCH_UP_SLOTS);
        let first = match self.complete_through {
            Some(done) => done.0.saturating_add(1).max(oldest),
            None => {
                self.finish_scheduled(Slot(oldest), current, now).await?;
                current.0
            }
        };
        for slot in first..=current.0 {
            let slot = Slot(slot);
            let schedule = self.ensure_schedule(slot).await?;
            let due =
                result_time(&params, slot).map_err(store_error("computing the result time"))?;
            if now < due {
                break;
            }
            self.ensure_result(&schedule).await?;
            self.complete_through = Some(slot);
        }
        Ok(())
    }

    /// Records the due results of slots in `[from, to)` that have a stored schedule (scheduled
    /// by this node before a restart) but no result yet.
    async fn finish_scheduled(
        &mut self,
        from: Slot,
        to: Slot,
        now: UnixMillis,
    ) -> Result<(), ServiceError> {
        for slot in from.0..to.0 {
            let slot = Slot(slot);
            let due = result_time(&self.deps.params, slot)
                .map_err(store_error("computing the result time"))?;
            if now < due {
                break;
            }
            let stored = self
                .deps
                .records
                .schedule(slot)
                .await
                .map_err(store_error("reading a schedule"))?;
            if let Some(schedule) = stored {
                self.ensure_result(&schedule).await?;
            }
        }
        Ok(())
    }

    /// The first instant strictly after `after` at which the keeper has work: the next result
    /// time or the next slot start.
    pub fn next_due(&self, after: UnixMillis) -> UnixMillis {
        let params = &self.deps.params;
        let Ok(slot) = params.time.slot_of(after) else { return params.time.genesis() };
        if let Ok(due) = result_time(params, slot)
            && due > after
        {
            return due;
        }
        params
            .time
            .slot_start(Slot(slot.0.saturating_add(1)))
            .unwrap_or_else(|_| after.saturating_add_ms(1))
    }
}
