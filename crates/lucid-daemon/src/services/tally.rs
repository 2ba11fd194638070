//! The tally keeper: computes the tally of each epoch from the stored proofs and settles it
//! (`consensus.md` §7.4).
//!
//! - **Computed** at `slot_start(720e + 2)`, when live ingest for window(e) closes: revision 0,
//!   stored with `put_tally`, used by the leader schedules of epoch e.
//! - **Settled** at `slot_start(720(e + 1))`: the tally is recomputed from the proofs stored by
//!   then (late-accepted proofs, `consensus.md` §6.3); if its digest changed it is stored as the
//!   next revision; then it is frozen with `settle_tally`. Epoch rewards read settled tallies only.
//! - [`TallyKeeper::revise`] is the same recomputation for the late-acceptance path, which the
//!   node calls when anti-entropy accepted proofs for an unsettled window.
//!
//! Every step reads the store first and does only what is missing, so a tick may run again (a
//! retry, a restart) without changing anything.
//!
//! # Epochs that ended while the node was down
//! A node that was not running at `720e + 2` or at `720(e + 1)` finds, when it comes back, an
//! epoch without a tally or with an unsettled one. It computes and settles every such epoch of
//! the last [`CATCH_UP_EPOCHS`], oldest first and exactly once, but only after anti-entropy
//! compared its store with a peer's since this start ([`Reconciliation`]): settling from a
//! store that missed the window's proofs would freeze a wrong tally for ever. The previous
//! epoch's tally, computed here while the node ran, is settled at once as before; an epoch
//! still waiting for reconciliation holds back every later settlement, so tallies (and the
//! rewards paid from them) are settled in epoch order.
//!
//! An epoch without a tally is computed only if the epoch before it has one: this node was then
//! running and holds every slot of the window below the late-acceptance floor, which
//! anti-entropy can no longer repair (`consensus.md` §6.3). With [`CATCH_UP_EPOCHS`] = 6 that
//! holds for any downtime shorter than six epochs, so the computed tally is the one every other
//! node settled. A node that is new, or was down for longer, leaves those epochs alone (logged);
//! its ledger then misses their rewards, which is what `DECISIONS.md` says downtime costs.
//! Known limit: a proof that other nodes accepted late after they settled an epoch is counted
//! by a node that computes that epoch after coming back; the settled digests then differ.
//!
//! Proofs are attributed to entities by the membership timeline of the pool store
//! (`consensus.md` §7.1: a proof of a node seated in pool P at its slot counts for `Pool(P)`),
//! read afresh for every computation through [`MembershipSource`]: membership at slot s is fixed
//! by ops signed at s − 3 or earlier, which every node applied before it computes the tally of a
//! window that ended earlier, so the answer never depends on arrival order.
//!
//! The computation streams the window out of the `ProofStore` page by page into a
//! [`TallyBuilder`] on a blocking thread (it is CPU work, and the builder borrows the membership
//! view, which is not `Send` across an await), so async threads never stall on it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lucid_consensus::ConsensusParams;
use lucid_consensus::proof::ProofKey;
use lucid_consensus::records::{RecordStore, TallyPut};
use lucid_consensus::store::ProofStore;
use lucid_consensus::tally::{CountedProof, MembershipView, Tally, TallyBuilder};
use lucid_core::{Clock, Epoch, Slot, UnixMillis};
use lucid_pools::PoolStore;

use super::ServiceError;
use super::metrics::ServiceMetrics;

/// Proofs read from the store per page while computing a tally.
pub const TALLY_PAGE: usize = 10_000;

/// Live ingest for window(e) closes this many slots into epoch e; the tally is computed then.
pub const TALLY_COMPUTE_DELAY_SLOTS: u64 = lucid_consensus::params::INGEST_GRACE_SLOTS;

/// How many epochs before the current one are looked at for an epoch that ended while the
/// node was down (see the module doc for why six).
pub const CATCH_UP_EPOCHS: u64 = 6;

/// Whether the proof store holds what the network holds: filled by anti-entropy, read before
/// an epoch that ended while the node was down is computed or settled.
pub trait Reconciliation: Send + Sync {
    /// Every slot before the answer held, at the last comparison since this start, at least
    /// what one peer held; `None` before the first such comparison.
    fn reconciled_before(&self) -> Option<Slot>;
}

/// A node without gossip: its own store is all there is.
pub struct Standalone;

impl Reconciliation for Standalone {
    fn reconciled_before(&self) -> Option<Slot> {
        Some(Slot(u64::MAX))
    }
}

/// Pool membership as the tally needs it, shareable across threads.
pub type SharedMembership = Arc<dyn MembershipView + Send + Sync>;

/// Where a tally computation gets its membership view from, once per computation.
#[async_trait::async_trait]
pub trait MembershipSource: Send + Sync {
    /// The membership view to attribute proofs with now.
    async fn membership(&self) -> Result<SharedMembership, ServiceError>;
}

/// A view that never changes (tests, or a network without pools).
pub struct FixedMembership(pub SharedMembership);

#[async_trait::async_trait]
impl MembershipSource for FixedMembership {
    async fn membership(&self) -> Result<SharedMembership, ServiceError> {
        Ok(Arc::clone(&self.0))
    }
}

/// The membership timeline of the pool store, read for every computation (no cache is a source
/// of truth, `pools-payouts.md` §2.4).
pub struct PoolTimeline(pub Arc<dyn PoolStore>);

#[async_trait::async_trait]
impl MembershipSource for PoolTimeline {
    async fn membership(&self) -> Result<SharedMembership, ServiceError> {
        let timeline = self.0.timeline().await.map_err(|source| ServiceError::Pools {
            service: "tally",
            action: "reading the membership timeline",
            source,
        })?;
        Ok(Arc::new(timeline))
    }
}

/// What the keeper needs.
#[derive(Clone)]
pub struct TallyDeps {
    /// The network's parameters.
    pub params: ConsensusParams,
    /// Where accepted proofs and evidence are.
    pub proofs: Arc<dyn ProofStore>,
    /// Where tallies go.
    pub records: Arc<dyn RecordStore>,
    /// Which pool each node sat in at each slot, read for every computation.
    pub membership: Arc<dyn MembershipSource>,
    /// Monotonic time, for the duration histogram.
    pub clock: Arc<dyn Clock>,
    /// Where durations and entity counts go.
    pub metrics: Arc<ServiceMetrics>,
}

/// Computes, revises and settles tallies.
#[derive(Clone)]
pub struct TallyKeeper {
    deps: TallyDeps,
    reconciliation: Arc<dyn Reconciliation>,
}

/// What [`TallyKeeper::catch_up_missed`] found for one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedEpoch {
    /// Settled before, or this call computed and settled it.
    Settled,
    /// The previous epoch, computed here while running: settled by the ordinary path.
    Previous,
    /// Never computed here and the epoch before has no tally either: left alone.
    NotOurs,
    /// Waiting for anti-entropy to reconcile the store; later epochs wait too.
    Waiting,
}

fn store_error(action: &'static str) -> impl FnOnce(lucid_consensus::Error) -> ServiceError {
    ServiceError::consensus("tally", action)
}

impl TallyKeeper {
    /// A keeper over `deps`.
    pub fn new(deps: TallyDeps) -> Self {
        TallyKeeper { deps, reconciliation: Arc::new(Standalone) }
    }

    /// This keeper, waiting for `reconciliation` before it computes or settles an epoch that
    /// ended while the node was down (the node wires anti-entropy's mark here).
    #[must_use]
    pub fn with_reconciliation(mut self, reconciliation: Arc<dyn Reconciliation>) -> Self {
        self.reconciliation = reconciliation;
        self
    }

    /// Computes `tally(epoch)` at `revision` from the stored proofs, on a blocking thread.
    pub async fn compute(&self, epoch: Epoch, revision: u32) -> Result<Tally, ServiceError> {
        let params = self.deps.params;
        let proofs = Arc::clone(&self.deps.proofs);
        let membership = self.deps.membership.membership().await?;
        let started = self.deps.clock.monotonic();
        // A store that keeps per-chunk sums computes the tally itself (issue 3 target).
        if let Some(tally) = self
            .deps
            .proofs
            .stored_tally(&params, epoch, membership.as_ref(), revision)
            .await
            .map_err(store_error("computing a tally in the store"))?
        {
            self.deps.metrics.observe_tally(self.deps.clock.monotonic().saturating_sub(started));
            return Ok(tally);
        }
        let runtime = tokio::runtime::Handle::current();
        let tally = tokio::task::spawn_blocking(move || {
            compute_blocking(
                &runtime,
                &params,
                proofs.as_ref(),
                membership.as_ref(),
                epoch,
                revision,
            )
        })
        .await
        .map_err(|error| ServiceError::Blocking { service: "tally", detail: error.to_string() })?
        .map_err(store_error("computing a tally"))?;
        self.deps.metrics.observe_tally(self.deps.clock.monotonic().saturating_sub(started));
        Ok(tally)
    }

    /// Makes sure `tally(epoch)` is stored (revision 0 if none is). Returns the stored tally.
    pub async fn ensure(&self, epoch: Epoch, now: UnixMillis) -> Result<Tally, ServiceError> {
        if let Some(stored) =
            self.deps.records.tally(epoch).await.map_err(store_error("reading a tally"))?
        {
            return Ok(stored.tally);
        }
        self.compute_and_store(epoch, now).await
    }

    /// Computes revision 0 of `tally(epoch)`, stores and publishes it.
    async fn compute_and_store(
        &self,
        epoch: Epoch,
        now: UnixMillis,
    ) -> Result<Tally, ServiceError> {
        let tally = self.compute(epoch, 0).await?;
        let put = self
            .deps
            .records
            .put_tally(&tally, now)
            .await
            .map_err(store_error("storing a tally"))?;
        tracing::info!(%epoch, entities = tally.entries.len(), ranked = tally.ranked().len(), ?put, "tally computed");
        self.publish(&tally);
        Ok(tally)
    }

    /// Recomputes `tally(epoch)` and stores it as the next revision if its digest changed (late
    /// proofs). Settled tallies are never touched. Returns what the store did, `None` if nothing
    /// changed or no tally was stored yet (then [`TallyKeeper::ensure`] computes one).
    pub async fn revise(
        &self,
        epoch: Epoch,
        now: UnixMillis,
    ) -> Result<Option<TallyPut>, ServiceError> {
        let Some(stored) =
            self.deps.records.tally(epoch).await.map_err(store_error("reading a tally"))?
        else {
            return Ok(None);
        };
        if stored.settled_at.is_some() {
            return Ok(None);
        }
        let next = stored.tally.revision.saturating_add(1);
        let fresh = self.compute(epoch, next).await?;
        if fresh.digest == stored.tally.digest {
            return Ok(None);
        }
        let put = self
            .deps
            .records
            .put_tally(&fresh, now)
            .await
            .map_err(store_error("storing a tally revision"))?;
        tracing::info!(%epoch, revision = next, ?put, "tally revised with late proofs");
        if put == TallyPut::Stored {
            self.publish(&fresh);
        }
        Ok(Some(put))
    }

    /// Brings the tally of `epoch` to its final revision and freezes it. Idempotent. An epoch
    /// without a stored tally is left alone: this node never computed it (it was not running
    /// at `720e + 2`), so its store may lack the window's proofs, and a settled tally is
    /// frozen for ever.
    pub async fn settle(&self, epoch: Epoch, now: UnixMillis) -> Result<(), ServiceError> {
        match self.deps.records.tally(epoch).await.map_err(store_error("reading a tally"))? {
            Some(stored) if stored.settled_at.is_some() => return Ok(()),
            Some(_) => {
                self.revise(epoch, now).await?;
            }
            None => {
                tracing::warn!(%epoch, "no tally of this epoch was computed here; not settling it");
                return Ok(());
            }
        }
        let settled = self
            .deps
            .records
            .settle_tally(epoch, now)
            .await
            .map_err(store_error("settling a tally"))?;
        if settled {
            tracing::info!(%epoch, "tally settled");
        }
        Ok(())
    }

    /// Does what is due at `now`: settles the epochs that ended while the node was down and the
    /// previous epoch, in order, and computes the current epoch's tally once its live ingest
    /// closed.
    pub async fn catch_up(&self, now: UnixMillis) -> Result<(), ServiceError> {
        let time = self.deps.params.time;
        let Ok(slot) = time.slot_of(now) else { return Ok(()) };
        let epoch = time.epoch_of(slot);
        let missed = self.catch_up_missed(epoch, now).await?;
        if let Some(previous) = epoch.0.checked_sub(1)
            && missed.last() == Some(&(Epoch(previous), MissedEpoch::Previous))
        {
            self.settle(Epoch(previous), now).await?;
        }
        let start = time
            .epoch_start(epoch)
            .map_err(|source| ServiceError::Time { service: "tally", source })?;
        if slot.0 >= start.0.saturating_add(TALLY_COMPUTE_DELAY_SLOTS) {
            self.ensure(epoch, now).await?;
        }
        Ok(())
    }

    /// Looks at the [`CATCH_UP_EPOCHS`] epochs before `current`, oldest first, and computes
    /// and settles each one that ended while the node was down, once the store is reconciled
    /// with a peer's. Stops at the first epoch that has to wait, so settlements stay in order.
    /// Returns what it found for each epoch it looked at.
    pub async fn catch_up_missed(
        &self,
        current: Epoch,
        now: UnixMillis,
    ) -> Result<Vec<(Epoch, MissedEpoch)>, ServiceError> {
        let Some(last) = current.0.checked_sub(1) else { return Ok(Vec::new()) };
        let first = current.0.saturating_sub(CATCH_UP_EPOCHS);
        let mut found = Vec::new();
        // Whether the epoch before the one looked at has a tally here.
        let mut before = match first.checked_sub(1) {
            Some(previous) => self.stored(Epoch(previous)).await?.is_some(),
            None => false,
        };
        for epoch in (first..=last).map(Epoch) {
            let stored = self.stored(epoch).await?;
            let state = match &stored {
                Some(stored) if stored.settled_at.is_some() => MissedEpoch::Settled,
                // Computed here and not settled: the ordinary settlement of the previous epoch.
                Some(_) if epoch.0 == last => MissedEpoch::Previous,
                None if !before => MissedEpoch::NotOurs,
                // Computed but the node was down at its settlement, or never computed while the
                // node was down at `720e + 2`: both need the window as the network holds it.
                _ if !self.reconciled_through(epoch)? => {
                    tracing::debug!(%epoch, "epoch ended while the node was down; waiting for anti-entropy before settling it");
                    MissedEpoch::Waiting
                }
                Some(_) => {
                    self.settle(epoch, now).await?;
                    tracing::info!(%epoch, "tally of an epoch that ended while the node was down settled");
                    MissedEpoch::Settled
                }
                None => {
                    self.compute_and_store(epoch, now).await?;
                    self.settle(epoch, now).await?;
                    tracing::info!(%epoch, "tally of an epoch missed while the node was down computed and settled");
                    MissedEpoch::Settled
                }
            };
            before = state != MissedEpoch::NotOurs;
            found.push((epoch, state));
            if state == MissedEpoch::Waiting {
                break;
            }
        }
        Ok(found)
    }

    async fn stored(
        &self,
        epoch: Epoch,
    ) -> Result<Option<lucid_consensus::records::StoredTally>, ServiceError> {
        self.deps.records.tally(epoch).await.map_err(store_error("reading a tally"))
    }

    /// Whether the store was reconciled with a peer over the whole window of `epoch`.
    fn reconciled_through(&self, epoch: Epoch) -> Result<bool, ServiceError> {
        let end = self
            .deps
            .params
            .time
            .epoch_start(epoch)
            .map_err(|source| ServiceError::Time { service: "tally", source })?;
        Ok(self.reconciliation.reconciled_before().is_some_and(|before| before >= end))
    }

    fn publish(&self, tally: &Tally) {
        let metrics = &self.deps.metrics;
        let epoch = i64::try_from(tally.epoch.0).unwrap_or(i64::MAX);
        if metrics.tally_epoch.load(Ordering::Relaxed) <= epoch {
            metrics.tally_epoch.store(epoch, Ordering::Relaxed);
            let ranked = u64::try_from(tally.ranked().len()).unwrap_or(u64::MAX);
            let all = u64::try_from(tally.entries.len()).unwrap_or(u64::MAX);
            metrics.tally_ranked.store(ranked, Ordering::Relaxed);
            metrics.tally_unranked.store(all.saturating_sub(ranked), Ordering::Relaxed);
        }
    }
}

/// The streaming computation, on a blocking thread: evidence keys of the window, then the
/// window's proofs page by page into a [`TallyBuilder`].
fn compute_blocking(
    runtime: &tokio::runtime::Handle,
    params: &ConsensusParams,
    proofs: &dyn ProofStore,
    membership: &dyn MembershipView,
    epoch: Epoch,
    revision: u32,
) -> Result<Tally, lucid_consensus::Error> {
    let window = params.time.window(epoch).map_err(lucid_consensus::Error::Time)?;
    let excluded: BTreeSet<ProofKey> =
        runtime.block_on(proofs.evidence_keys(window))?.into_iter().collect();
    let is_excluded = |key: &ProofKey| excluded.contains(key);
    let mut builder =
        TallyBuilder::new(params, epoch, membership, &is_excluded)?.with_revision(revision);
    let mut after = None;
    loop {
        let page = runtime.block_on(proofs.proofs_in_range(window, after, TALLY_PAGE))?;
        for stored in &page {
            let proof = &stored.proof;
            builder.push(&CountedProof { node: proof.node, slot: proof.slot, value: proof.value });
        }
        match page.last() {
            Some(last) if page.len() == TALLY_PAGE => after = Some(last.key()),
            _ => break,
        }
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests;
