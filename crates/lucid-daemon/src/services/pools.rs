//! Pool health each slot (`daemon.md` §2 service 12, `pools-payouts.md` §2.3): at every slot
//! start the pool ops due are applied from the log, then every seat follows its node's uptime
//! status (`active` ⇄ `degraded`) and every pool its count of active members (`forming` until 3,
//! then `active` ⇄ `degraded`), and the pool gauges and health report are refreshed.
//!
//! Everything is derived from consensus state only, so every node makes the same transitions:
//! the op log, the accepted beacons in the proof store and the registration records. The uptime
//! status of a seat holder is `lucid_consensus::uptime::uptime_view` judged at slot
//! `t − LIVENESS_LAG_SLOTS` at slot t, late enough that every beacon a peer could still accept live
//! (the ingest grace) is in; never the local wall-clock liveness of a peer connection. Each
//! transition is a compare-and-set in the store (`PoolStore::set_liveness` locks the pool and
//! reads the seat again), which also recomputes the pool's status; credits and seats never change.
//!
//! At its first tick the loop recovers: it notes every pending logged op again (for an op logged
//! by a process that stopped before noting it), applies what is due, then compares the
//! materialised pools, memberships and op states with the T10 rebuild of the whole log and
//! repairs them from the log, with an error log, if they differ.
//!
//! Accepted beacons are kept per node in a window-sized [`BeaconRing`] that each tick extends by
//! the slots since the last one (re-reading the last few, where live acceptance may still add a
//! beacon); the whole window is read again at the first tick and at every epoch start, so a
//! beacon accepted late through anti-entropy counts from the next epoch at the latest.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use lucid_consensus::ConsensusParams;
use lucid_consensus::params::INGEST_GRACE_SLOTS;
use lucid_consensus::proof::{ProofKey, ProofKind};
use lucid_consensus::store::ProofStore;
use lucid_consensus::uptime::{BeaconRing, EntityWindow, UptimeStatus, uptime_view};
use lucid_core::{NodeId, Slot, SlotRange, UnixMillis};
use lucid_pools::log::{apply_logged, check_against_log};
use lucid_pools::model::Liveness;
use lucid_pools::store::note_accepted_in_store;
use lucid_pools::{MemberStatus, Membership, PoolStatus, PoolStore};

use super::ServiceError;
use super::metrics::ServiceMetrics;
use super::runner::Service;

/// At slot t, uptime is judged at slot t − this: the ingest grace plus one, so the beacons of
/// every judged slot are past live acceptance on every node.
pub const LIVENESS_LAG_SLOTS: u64 = INGEST_GRACE_SLOTS + 1;

/// Proofs read per page when loading beacons.
const PAGE: usize = 10_000;

const SERVICE: &str = "pool_health";

/// What the pools component of `/health` shows, as of the last tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolHealthSummary {
    /// The slot of the last tick.
    pub slot: Option<Slot>,
    /// Pools by status: forming, active, degraded, disbanded.
    pub by_status: [u64; 4],
    /// Seats held in all pools.
    pub seats: u64,
    /// Seats in status `degraded`.
    pub degraded_members: u64,
    /// Logged ops still waiting for their effect slot.
    pub pending_ops: u64,
}

/// The summary shared between the loop and the health report.
#[derive(Debug, Default)]
pub struct PoolHealthReport {
    summary: Mutex<PoolHealthSummary>,
}

impl PoolHealthReport {
    /// The summary of the last tick.
    pub fn summary(&self) -> PoolHealthSummary {
        self.summary.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set(&self, summary: PoolHealthSummary) {
        *self.summary.lock().unwrap_or_else(PoisonError::into_inner) = summary;
    }
}

/// What the loop needs.
pub struct PoolHealthDeps {
    /// Consensus parameters (slot arithmetic, window length).
    pub params: ConsensusParams,
    /// Pools, memberships and the op log.
    pub pools: Arc<dyn PoolStore>,
    /// Accepted beacons and registrations.
    pub proofs: Arc<dyn ProofStore>,
    /// Where the pool gauges go.
    pub metrics: Arc<ServiceMetrics>,
    /// Where the health summary goes.
    pub report: Arc<PoolHealthReport>,
    /// Held for the whole tick: the ingest of pool ops from peers takes it too (a late op
    /// rebuilds membership), so the two never interleave.
    pub apply: Arc<tokio::sync::Mutex<()>>,
}

/// The pool health loop.
pub struct PoolHealthService {
    deps: PoolHealthDeps,
    rings: HashMap<NodeId, BeaconRing>,
    /// Beacons of slots before this are in `rings`; `None` before the first load.
    loaded_to: Option<Slot>,
    /// The epoch whose start triggered the last full load.
    loaded_epoch: Option<u64>,
    /// Whether the start-up recovery and check ran.
    recovered: bool,
}

/// The status index of `status` in [`PoolHealthSummary::by_status`].
fn status_index(status: PoolStatus) -> usize {
    match status {
        PoolStatus::Forming => 0,
        PoolStatus::Active => 1,
        PoolStatus::Degraded => 2,
        PoolStatus::Disbanded => 3,
    }
}

/// A node's uptime status as the liveness that drives its seat.
pub fn liveness_of(status: UptimeStatus) -> Liveness {
    match status {
        UptimeStatus::Active => Liveness::Active,
        UptimeStatus::Inactive => Liveness::Inactive,
        UptimeStatus::Suspended => Liveness::Suspended,
    }
}

impl PoolHealthService {
    /// The loop over `deps`.
    pub fn new(deps: PoolHealthDeps) -> Self {
        PoolHealthService {
            deps,
            rings: HashMap::new(),
            loaded_to: None,
            loaded_epoch: None,
            recovered: false,
        }
    }

    fn pools_error(action: &'static str) -> impl FnOnce(lucid_pools::Error) -> ServiceError {
        move |source| ServiceError::Pools { service: SERVICE, action, source }
    }

    /// Brings the beacon rings up to `judged` (exclusive).
    async fn load_beacons(&mut self, judged: Slot) -> Result<(), ServiceError> {
        let time = self.deps.params.time;
        let epoch = time.epoch_of(judged).0;
        let window = time.window_slots();
        let start = match self.loaded_to {
            Some(loaded) if self.loaded_epoch == Some(epoch) => {
                Slot(loaded.0.min(judged.0).saturating_sub(LIVENESS_LAG_SLOTS))
            }
            _ => {
                self.rings.clear();
                self.loaded_epoch = Some(epoch);
                Slot(judged.0.saturating_sub(window))
            }
        };
        let range = SlotRange { start, end: judged };
        let mut after: Option<ProofKey> = None;
        loop {
            let page = self
                .deps
                .proofs
                .proofs_in_range(range, after, PAGE)
                .await
                .map_err(ServiceError::consensus(SERVICE, "reading beacons"))?;
            for stored in &page {
                if stored.proof.kind() == ProofKind::UptimeBeacon {
                    self.rings
                        .entry(stored.proof.node)
                        .or_insert_with(|| BeaconRing::new(window))
                        .record(stored.proof.slot);
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.key()),
                _ => break,
            }
        }
        self.loaded_to = Some(judged);
        Ok(())
    }

    /// The slot each node registered at, from its current signed registration record.
    async fn registered_at(&self) -> Result<BTreeMap<NodeId, Slot>, ServiceError> {
        let time = self.deps.params.time;
        let records = self
            .deps
            .proofs
            .current_registrations()
            .await
            .map_err(ServiceError::consensus(SERVICE, "reading registrations"))?;
        Ok(records
            .iter()
            .filter_map(|r| time.slot_of(r.registration.ts).ok().map(|s| (r.registration.node, s)))
            .collect())
    }

    /// Moves every seat to the status its node's uptime asks for; the number of transitions.
    async fn follow_liveness(
        &mut self,
        slot: Slot,
        seats: &[Membership],
    ) -> Result<u64, ServiceError> {
        let judged = Slot(slot.0.saturating_sub(LIVENESS_LAG_SLOTS));
        self.load_beacons(judged).await?;
        let registered = self.registered_at().await?;
        let time = self.deps.params.time;
        let window = time.window_slots();
        let empty = BeaconRing::new(window);
        let mut transitions = 0;
        for seat in seats {
            // A node counts as registered no later than its seat started.
            let since = registered
                .get(&seat.node_id)
                .map_or(seat.from_slot, |at| (*at).min(seat.from_slot));
            let ring = self.rings.get(&seat.node_id).unwrap_or(&empty);
            let entity = EntityWindow {
                beacons: None,
                window: SlotRange { start: Slot(judged.0.saturating_sub(window)), end: judged },
                credits: 0,
            };
            let view = uptime_view(&time, since, judged, ring, &entity);
            let liveness = liveness_of(view.status);
            let wanted = lucid_pools::checks::seat_status_after(seat.status, liveness);
            if wanted == seat.status {
                continue;
            }
            let now = self
                .deps
                .pools
                .set_liveness(&seat.node_id, liveness)
                .await
                .map_err(Self::pools_error("changing a seat's liveness"))?;
            if now == Some(wanted) {
                transitions += 1;
                tracing::info!(node = %seat.node_id, pool = %seat.pool_id, from = seat.status.as_str(), to = wanted.as_str(), uptime = ?view.status, judged = judged.0, "pool member liveness changed");
            }
        }
        Ok(transitions)
    }

    async fn publish(&self, slot: Slot) -> Result<(), ServiceError> {
        let (pools, rows) =
            self.deps.pools.snapshot().await.map_err(Self::pools_error("reading pools"))?;
        let pending =
            self.deps.pools.pending_ops().await.map_err(Self::pools_error("reading the op log"))?;
        let mut summary = PoolHealthSummary { slot: Some(slot), ..PoolHealthSummary::default() };
        for pool in &pools {
            summary.by_status[status_index(pool.status)] += 1;
            summary.seats += u64::from(pool.seats);
        }
        summary.degraded_members =
            rows.iter().filter(|r| r.status == MemberStatus::Degraded).count() as u64;
        summary.pending_ops = pending.len() as u64;
        self.deps.metrics.set_pools(summary.by_status, summary.seats);
        self.deps.report.set(summary);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Service for PoolHealthService {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        // Each slot start (the genesis before it).
        crate::services::time::next_slot_offset(&self.deps.params.time, after, 0)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let Ok(slot) = self.deps.params.time.slot_of(now) else { return Ok(()) };
        let apply = Arc::clone(&self.deps.apply);
        let _applying = apply.lock().await;
        let pools = Arc::clone(&self.deps.pools);
        if !self.recovered {
            // An op logged by a process that stopped before noting it gets its `joining` row or
            // `leaving` seat now (idempotent).
            for op in pools.pending_ops().await.map_err(Self::pools_error("reading the op log"))? {
                note_accepted_in_store(pools.as_ref(), &op.accepted)
                    .await
                    .map_err(Self::pools_error("noting a logged op"))?;
            }
        }
        for (effect, outcomes) in
            apply_logged(pools.as_ref(), slot).await.map_err(Self::pools_error("applying ops"))?
        {
            for outcome in outcomes {
                tracing::info!(digest = %outcome.digest, result = ?outcome.result, slot = effect.0, "pool op applied");
            }
        }
        if !self.recovered {
            // The materialised tables must equal the replay of the log; anything else was
            // changed behind the node's back (or by a bug) and is repaired from the log.
            let divergence = check_against_log(pools.as_ref(), slot)
                .await
                .map_err(Self::pools_error("checking pools against the op log"))?;
            if divergence.is_empty() {
                tracing::info!(slot = slot.0, "pool tables equal the rebuild from the op log");
            } else {
                tracing::error!(
                    pools = divergence.pools,
                    rows = divergence.rows,
                    op_states = divergence.op_states,
                    slot = slot.0,
                    "POOL TABLES DIFFERED FROM THE OP LOG: rebuilt them from the log"
                );
            }
            self.recovered = true;
        }
        let (_, rows) = pools.snapshot().await.map_err(Self::pools_error("reading seats"))?;
        let seats: Vec<Membership> = rows.into_iter().filter(Membership::is_seat).collect();
        if !seats.is_empty() {
            self.follow_liveness(slot, &seats).await?;
        }
        self.publish(slot).await
    }
}

#[cfg(test)]
mod tests;
