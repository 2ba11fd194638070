//! Shared fixtures of the service tests, and the tests of the consensus records loop (tally,
//! schedules, results) under paused tokio time with a [`TokioClock`].
//!
//! Every test runs on a current-thread runtime with paused time: tokio advances time only when
//! every task is idle, so the loops wake exactly at their due instants and no test sleeps for
//! real.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lucid_consensus::leader::{Claim, Outcome, Recorded, Schedule, SlotResult};
use lucid_consensus::proof::{ProofKey, ProofKind};
use lucid_consensus::records::{MemoryRecordStore, RecordStore, StoredTally, TallyPut};
use lucid_consensus::store::{
    Evidence, InsertOutcome, MemoryProofStore, ProofStore, StoredProof, StoredRegistration,
};
use lucid_consensus::tally::{NoPools, Tally};
use lucid_consensus::{ConsensusParams, testing};
use lucid_core::{Clock, EntityId, Epoch, ErrorKind, Slot, SlotRange, UnixMillis};
use tokio_util::sync::CancellationToken;

use super::consensus::ConsensusRecordsService;
use super::metrics::ServiceMetrics;
use super::runner::run_service;
use super::schedule::{MemoryClaims, ScheduleDeps, ScheduleKeeper};
use super::tally::{TallyDeps, TallyKeeper};
use super::time::TokioClock;

/// Runs `service` under the runner for `duration` of (paused) tokio time, then cancels it and
/// waits for it to end: the shared driver of the service tests.
pub(super) async fn run_for<S: super::runner::Service + 'static>(
    service: S,
    clock: &Arc<TokioClock>,
    metrics: &Arc<ServiceMetrics>,
    duration: Duration,
) {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_service(
        service,
        Arc::clone(clock) as Arc<dyn Clock>,
        Arc::clone(metrics),
        cancel.clone(),
    ));
    tokio::time::sleep(duration).await;
    cancel.cancel();
    task.await.unwrap();
}

/// A current-thread runtime with paused time.
pub(super) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// An error as a failing database would report it.
pub(super) fn injected(action: &'static str) -> lucid_consensus::Error {
    lucid_consensus::Error::Store {
        action,
        kind: ErrorKind::StoreUnavailable,
        source: Arc::new(std::io::Error::other("injected failure")),
    }
}

/// Sleeps (paused time) until the clock shows `at`.
pub(super) async fn sleep_until(clock: &TokioClock, at: UnixMillis) {
    let now = clock.wall();
    assert!(at >= now, "cannot sleep back from {now} to {at}");
    tokio::time::sleep(Duration::from_millis(u64::try_from(at.0 - now.0).unwrap())).await;
}

/// Every stored proof of `kind`.
pub(super) async fn proofs_of(store: &dyn ProofStore, kind: ProofKind) -> Vec<StoredProof> {
    let all = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
    let proofs = store.proofs_in_range(all, None, usize::MAX).await.unwrap();
    proofs.into_iter().filter(|p| p.proof.kind() == kind).collect()
}

/// A proof store that fails, stalls or holds inserts on request, over the in-memory store.
#[derive(Default)]
pub(crate) struct FlakyProofStore {
    pub(crate) inner: MemoryProofStore,
    /// The next this many `insert_proofs` calls fail (as a database that went away) and write
    /// nothing.
    pub(crate) fail_inserts: AtomicU32,
    /// The next `get_proof` call takes this many milliseconds (then it is reset).
    pub(crate) slow_get_ms: std::sync::atomic::AtomicU64,
    /// With a gate ([`FlakyProofStore::gated`]), every `insert_proofs` signals `arrived` and
    /// waits for a permit, so that a test holds a batch in its persist phase for as long as it
    /// likes (no timing involved).
    pub(crate) gate: Option<tokio::sync::Semaphore>,
    /// Proof inserts that reached the gate.
    pub(crate) arrived: tokio::sync::Notify,
}

impl FlakyProofStore {
    /// A store whose proof inserts wait at a closed gate until the test adds permits.
    pub(crate) fn gated() -> Self {
        FlakyProofStore { gate: Some(tokio::sync::Semaphore::new(0)), ..Default::default() }
    }
}

#[async_trait::async_trait]
impl ProofStore for FlakyProofStore {
    async fn insert_proofs(
        &self,
        proofs: &[StoredProof],
    ) -> Result<Vec<InsertOutcome>, lucid_consensus::Error> {
        if let Some(gate) = &self.gate {
            self.arrived.notify_one();
            gate.acquire().await.expect("the gate is never closed").forget();
        }
        if self.fail_inserts.load(Ordering::SeqCst) > 0 {
            self.fail_inserts.fetch_sub(1, Ordering::SeqCst);
            return Err(injected("inserting proofs"));
        }
        self.inner.insert_proofs(proofs).await
    }
    async fn get_proof(
        &self,
        key: &ProofKey,
    ) -> Result<Option<StoredProof>, lucid_consensus::Error> {
        let slow = self.slow_get_ms.swap(0, Ordering::SeqCst);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        self.inner.get_proof(key).await
    }
    async fn proofs_in_range(
        &self,
        range: SlotRange,
        after: Option<ProofKey>,
        limit: usize,
    ) -> Result<Vec<StoredProof>, lucid_consensus::Error> {
        self.inner.proofs_in_range(range, after, limit).await
    }
    async fn insert_evidence(&self, evidence: &Evidence) -> Result<bool, lucid_consensus::Error> {
        self.inner.insert_evidence(evidence).await
    }
    async fn evidence_keys(
        &self,
        range: SlotRange,
    ) -> Result<Vec<ProofKey>, lucid_consensus::Error> {
        self.inner.evidence_keys(range).await
    }
    async fn evidence_in_range(
        &self,
        range: SlotRange,
        limit: usize,
    ) -> Result<Vec<Evidence>, lucid_consensus::Error> {
        self.inner.evidence_in_range(range, limit).await
    }
    async fn insert_registration(
        &self,
        registration: &StoredRegistration,
    ) -> Result<InsertOutcome, lucid_consensus::Error> {
        self.inner.insert_registration(registration).await
    }
    async fn current_registrations(
        &self,
    ) -> Result<Vec<StoredRegistration>, lucid_consensus::Error> {
        self.inner.current_registrations().await
    }
    async fn insert_seal(
        &self,
        seal: &lucid_consensus::seal::StoredSeal,
    ) -> Result<InsertOutcome, lucid_consensus::Error> {
        self.inner.insert_seal(seal).await
    }
    async fn get_seal(
        &self,
        node: &lucid_core::NodeId,
        slot: lucid_core::Slot,
    ) -> Result<Option<lucid_consensus::seal::StoredSeal>, lucid_consensus::Error> {
        self.inner.get_seal(node, slot).await
    }
}

/// A record store that counts writes and fails on request, over the in-memory store.
#[derive(Default)]
pub(super) struct CountingRecordStore {
    pub(super) inner: MemoryRecordStore,
    pub(super) puts: std::sync::Mutex<Vec<(Epoch, u32)>>,
    pub(super) settles: std::sync::Mutex<Vec<Epoch>>,
    pub(super) schedule_inserts: AtomicU32,
    pub(super) result_inserts: AtomicU32,
    /// The next this many calls of any method fail.
    pub(super) fail_next: AtomicU32,
}

impl CountingRecordStore {
    fn maybe_fail(&self, action: &'static str) -> Result<(), lucid_consensus::Error> {
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return Err(injected(action));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RecordStore for CountingRecordStore {
    async fn put_tally(
        &self,
        tally: &Tally,
        computed_at: UnixMillis,
    ) -> Result<TallyPut, lucid_consensus::Error> {
        self.maybe_fail("storing a tally")?;
        let put = self.inner.put_tally(tally, computed_at).await?;
        self.puts.lock().unwrap().push((tally.epoch, tally.revision));
        Ok(put)
    }
    async fn settle_tally(
        &self,
        epoch: Epoch,
        settled_at: UnixMillis,
    ) -> Result<bool, lucid_consensus::Error> {
        self.maybe_fail("settling")?;
        let settled = self.inner.settle_tally(epoch, settled_at).await?;
        if settled {
            self.settles.lock().unwrap().push(epoch);
        }
        Ok(settled)
    }
    async fn tally(&self, epoch: Epoch) -> Result<Option<StoredTally>, lucid_consensus::Error> {
        self.maybe_fail("reading a tally")?;
        self.inner.tally(epoch).await
    }
    async fn insert_schedule(
        &self,
        schedule: &Schedule,
    ) -> Result<Recorded, lucid_consensus::Error> {
        self.maybe_fail("storing a schedule")?;
        let recorded = self.inner.insert_schedule(schedule).await?;
        if recorded == Recorded::Inserted {
            self.schedule_inserts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(recorded)
    }
    async fn schedule(&self, slot: Slot) -> Result<Option<Schedule>, lucid_consensus::Error> {
        self.maybe_fail("reading a schedule")?;
        self.inner.schedule(slot).await
    }
    async fn record_result(
        &self,
        slot: Slot,
        result: &SlotResult,
    ) -> Result<Recorded, lucid_consensus::Error> {
        self.maybe_fail("recording a result")?;
        let recorded = self.inner.record_result(slot, result).await?;
        if recorded == Recorded::Inserted {
            self.result_inserts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(recorded)
    }
    async fn results(
        &self,
        range: SlotRange,
    ) -> Result<Vec<(Slot, SlotResult)>, lucid_consensus::Error> {
        self.maybe_fail("reading results")?;
        self.inner.results(range).await
    }
}

/// Signs and stores, for nodes `nodes` and every slot in `slots`, a beacon and a relay proof
/// worth the node's index in credits (so ranks differ).
pub(super) async fn seed_proofs(
    params: &ConsensusParams,
    store: &dyn ProofStore,
    nodes: std::ops::RangeInclusive<u64>,
    slots: std::ops::Range<u64>,
) {
    let mut batch = Vec::new();
    for index in nodes {
        let key = testing::key(index);
        let sessions = u32::try_from(index).unwrap();
        for slot in slots.clone() {
            for value in [testing::BEACON, testing::relay(sessions)] {
                let proof = testing::proof(params, &key, Slot(slot), value);
                let signed = lucid_core::message::Message::sign(&proof, &params.network, &key);
                batch.push(lucid_consensus::store::stored_proof(proof, signed, false));
            }
        }
    }
    let outcomes = store.insert_proofs(&batch).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == InsertOutcome::Inserted));
}

/// The tally of `epoch` computed directly with `compute_tally` over every stored proof.
async fn expected_tally(params: &ConsensusParams, store: &dyn ProofStore, epoch: Epoch) -> Tally {
    let all = SlotRange { start: Slot(0), end: Slot(u64::MAX) };
    let proofs = store.proofs_in_range(all, None, usize::MAX).await.unwrap();
    let counted = proofs.iter().map(|p| lucid_consensus::tally::CountedProof {
        node: p.proof.node,
        slot: p.proof.slot,
        value: p.proof.value,
    });
    lucid_consensus::tally::compute_tally(params, epoch, &NoPools, &|_| false, counted).unwrap()
}

struct RecordsFixture {
    params: ConsensusParams,
    clock: Arc<TokioClock>,
    proofs: Arc<MemoryProofStore>,
    records: Arc<CountingRecordStore>,
    claims: Arc<MemoryClaims>,
    metrics: Arc<ServiceMetrics>,
}

impl RecordsFixture {
    fn new(start_slot: u64) -> Self {
        let params = testing::small_params();
        let start = params.time.slot_start(Slot(start_slot)).unwrap();
        RecordsFixture {
            params,
            clock: Arc::new(TokioClock::new(start)),
            proofs: Arc::new(MemoryProofStore::new()),
            records: Arc::new(CountingRecordStore::default()),
            claims: Arc::new(MemoryClaims::default()),
            metrics: Arc::new(ServiceMetrics::new()),
        }
    }

    fn service(&self) -> ConsensusRecordsService {
        let membership: Arc<dyn super::tally::MembershipSource> =
            Arc::new(super::tally::FixedMembership(Arc::new(NoPools)));
        let tally = TallyKeeper::new(TallyDeps {
            params: self.params,
            proofs: self.proofs.clone(),
            records: self.records.clone(),
            membership: membership.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        });
        let schedule = ScheduleKeeper::new(ScheduleDeps {
            params: self.params,
            records: self.records.clone(),
            claims: self.claims.clone(),
            membership,
            metrics: self.metrics.clone(),
        });
        ConsensusRecordsService::new(tally, schedule)
    }

    /// The records loop, waiting for `reconciliation` before it settles an epoch that ended
    /// while it was down.
    fn service_with(
        &self,
        reconciliation: Arc<dyn super::tally::Reconciliation>,
    ) -> ConsensusRecordsService {
        let membership: Arc<dyn super::tally::MembershipSource> =
            Arc::new(super::tally::FixedMembership(Arc::new(NoPools)));
        let tally = TallyKeeper::new(TallyDeps {
            params: self.params,
            proofs: self.proofs.clone(),
            records: self.records.clone(),
            membership: membership.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        })
        .with_reconciliation(reconciliation);
        let schedule = ScheduleKeeper::new(ScheduleDeps {
            params: self.params,
            records: self.records.clone(),
            claims: self.claims.clone(),
            membership,
            metrics: self.metrics.clone(),
        });
        ConsensusRecordsService::new(tally, schedule)
    }

    fn spawn(&self, cancel: &CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run_service(
            self.service(),
            self.clock.clone(),
            self.metrics.clone(),
            cancel.child_token(),
        ))
    }

    fn at(&self, slot: u64, ms: i64) -> UnixMillis {
        self.params.time.slot_start(Slot(slot)).unwrap().saturating_add_ms(ms)
    }

    async fn schedules(&self, slots: std::ops::RangeInclusive<u64>) -> Vec<Option<Schedule>> {
        let mut out = Vec::new();
        for slot in slots {
            out.push(self.records.inner.schedule(Slot(slot)).await.unwrap());
        }
        out
    }

    async fn result(&self, slot: u64) -> Option<SlotResult> {
        let range = SlotRange { start: Slot(slot), end: Slot(slot + 1) };
        self.records.inner.results(range).await.unwrap().into_iter().next().map(|(_, r)| r)
    }
}

#[test]
fn a_tally_appears_once_per_epoch_boundary_and_equals_the_builder() {
    paused_runtime().block_on(async {
        let f = RecordsFixture::new(20);
        seed_proofs(&f.params, f.proofs.as_ref(), 1..=4, 0..60).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        sleep_until(&f.clock, f.at(52, 500)).await;
        cancel.cancel();
        task.await.unwrap();

        // Started in epoch 2 (slot 20): epoch 2 computed at once, epoch 1 (never computed here)
        // left alone; then one tally per boundary, each computed once (revision 0, no late
        // proofs) and settled once.
        let puts = f.records.puts.lock().unwrap().clone();
        let epochs: Vec<(Epoch, u32)> = (2..=6).map(|e| (Epoch(e), 0)).collect();
        assert_eq!(puts, epochs);
        let settles = f.records.settles.lock().unwrap().clone();
        assert_eq!(settles, [Epoch(2), Epoch(3), Epoch(4), Epoch(5)]);
        assert_eq!(f.records.inner.tally(Epoch(1)).await.unwrap(), None);
        for epoch in 2..=6 {
            let stored = f.records.inner.tally(Epoch(epoch)).await.unwrap().unwrap();
            assert_eq!(
                stored.tally,
                expected_tally(&f.params, f.proofs.as_ref(), Epoch(epoch)).await
            );
            assert_eq!(stored.settled_at.is_some(), epoch <= 5, "epoch {epoch}");
            if epoch >= 3 {
                // Computed when live ingest for its window closed: slot 8e + 2, by the clock.
                assert_eq!(stored.computed_at, f.at(8 * epoch + 2, 0), "epoch {epoch}");
                let settled =
                    f.records.inner.tally(Epoch(epoch)).await.unwrap().unwrap().settled_at;
                if epoch <= 5 {
                    assert_eq!(settled, Some(f.at(8 * (epoch + 1), 0)));
                }
            }
        }
        assert!(!f.records.inner.tally(Epoch(2)).await.unwrap().unwrap().tally.ranked().is_empty());
        let text = f.metrics.render();
        assert!(text.contains("lucid_tally_epoch 6\n"), "{text}");
        assert!(text.contains("lucid_tally_entities{ranked=\"true\"} 4\n"), "{text}");
    });
}

#[test]
fn every_slot_gets_one_schedule_from_its_epochs_tally_and_one_result() {
    paused_runtime().block_on(async {
        let f = RecordsFixture::new(20);
        seed_proofs(&f.params, f.proofs.as_ref(), 1..=4, 0..60).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        // A claim by the primary of slot 36 inside its window: the result is a success.
        sleep_until(&f.clock, f.at(36, 1)).await;
        let schedule = f.records.inner.schedule(Slot(36)).await.unwrap().unwrap();
        let Outcome::Leader { primary, .. } = schedule.outcome.clone() else {
            panic!("{schedule:?}")
        };
        let EntityId::Node(claimer) = primary else { panic!("no pools here") };
        let claim = |slot: u64, digest| Claim {
            node: claimer,
            slot: Slot(slot),
            candidate_index: 0,
            entity: primary,
            tally_digest: digest,
            ts: f.at(slot, 10),
        };
        f.claims.add(claim(36, schedule.tally_digest.unwrap()));
        sleep_until(&f.clock, f.at(43, 500)).await;
        cancel.cancel();
        task.await.unwrap();

        assert_eq!(f.result(36).await, Some(SlotResult::Success { winner: primary }));
        // The winner cools down: it is not the primary of the next 16 slots.
        for slot in 37..=43 {
            let schedule = f.records.inner.schedule(Slot(slot)).await.unwrap().unwrap();
            if let Outcome::Leader { primary: next, fallbacks, .. } = &schedule.outcome {
                assert_ne!(*next, primary, "slot {slot}");
                assert!(!fallbacks.contains(&primary), "slot {slot}");
            }
        }
        for (slot, schedule) in (20..=43).zip(f.schedules(20..=43).await) {
            let schedule = schedule.unwrap_or_else(|| panic!("slot {slot} has no schedule"));
            let pending = matches!(
                schedule.outcome,
                Outcome::NoLeader(lucid_consensus::leader::NoLeaderReason::TallyPending)
            );
            // The first two slots of an epoch wait for its tally; from slot 8e + 2 on the
            // schedule uses it, even though the tally is computed at that very instant.
            assert_eq!(pending, slot % 8 < 2, "slot {slot}: {schedule:?}");
            let tally = f.records.inner.tally(Epoch(slot / 8)).await.unwrap().map(|t| t.tally);
            let recent = f
                .records
                .inner
                .results(SlotRange { start: Slot(slot.saturating_sub(16)), end: Slot(slot) })
                .await
                .unwrap();
            let expected = lucid_consensus::leader::select(
                &f.params,
                Slot(slot),
                if pending { None } else { tally.as_ref() },
                &recent,
            );
            assert_eq!(schedule, expected, "slot {slot}");
            let result =
                f.result(slot).await.unwrap_or_else(|| panic!("slot {slot} has no result"));
            match slot {
                36 => assert!(matches!(result, SlotResult::Success { .. })),
                _ if pending => assert!(matches!(result, SlotResult::NoLeader(_))),
                _ => assert_eq!(result, SlotResult::Missed, "slot {slot}"),
            }
        }
        // The node started at slot 20: it made up nothing for the slots before it.
        assert!(f.schedules(4..=19).await.iter().all(Option::is_none));
        assert_eq!(f.records.schedule_inserts.load(Ordering::SeqCst), 24);
        assert_eq!(f.records.result_inserts.load(Ordering::SeqCst), 24);
        assert_eq!(f.metrics.results_with("success"), 1);
    });
}

#[test]
fn a_restart_never_overwrites_schedules_or_results() {
    paused_runtime().block_on(async {
        let f = RecordsFixture::new(20);
        seed_proofs(&f.params, f.proofs.as_ref(), 1..=3, 0..60).await;
        // Records written before (by an earlier run) that differ from what this run would
        // compute: they stay as they are.
        let foreign = Schedule {
            slot: Slot(27),
            epoch: Epoch(3),
            tally_digest: None,
            outcome: Outcome::NoLeader(lucid_consensus::leader::NoLeaderReason::NoRankedEntity),
        };
        f.records.inner.insert_schedule(&foreign).await.unwrap();
        let winner = EntityId::Node(testing::node(9));
        f.records.inner.record_result(Slot(28), &SlotResult::Success { winner }).await.unwrap();

        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        sleep_until(&f.clock, f.at(30, 500)).await;
        cancel.cancel();
        task.await.unwrap();
        let before = f.schedules(20..=30).await;
        let results_before: Vec<_> = {
            let mut out = Vec::new();
            for slot in 20..=30 {
                out.push(f.result(slot).await);
            }
            out
        };
        assert_eq!(before[7], Some(foreign.clone()));
        assert_eq!(results_before[8], Some(SlotResult::Success { winner }));

        // A restart mid-slot 30, with a new tally revision in the store (late proofs), runs
        // over the same slots again: nothing already written changes.
        seed_proofs(&f.params, f.proofs.as_ref(), 4..=4, 20..24).await;
        let revised = f.service().tally().revise(Epoch(3), f.clock.wall()).await.unwrap();
        assert_eq!(revised, Some(TallyPut::Stored));
        assert_eq!(f.records.inner.tally(Epoch(3)).await.unwrap().unwrap().tally.revision, 1);
        let inserts = f.records.schedule_inserts.load(Ordering::SeqCst);
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        sleep_until(&f.clock, f.at(31, 900)).await;
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(f.schedules(20..=30).await, before);
        for (slot, result) in (20..=30).zip(results_before) {
            assert_eq!(f.result(slot).await, result, "slot {slot}");
        }
        // Only slot 31 was new.
        assert_eq!(f.records.schedule_inserts.load(Ordering::SeqCst), inserts + 1);
        assert_eq!(f.metrics.loop_metrics("consensus_records").error.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn late_proofs_revise_the_tally_before_it_settles_and_never_after() {
    paused_runtime().block_on(async {
        let f = RecordsFixture::new(18);
        seed_proofs(&f.params, f.proofs.as_ref(), 1..=3, 0..40).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        sleep_until(&f.clock, f.at(20, 0)).await;
        // A late proof for window(2) = [0, 16): the settlement at slot 24 recomputes.
        seed_proofs(&f.params, f.proofs.as_ref(), 7..=7, 10..12).await;
        sleep_until(&f.clock, f.at(25, 0)).await;
        let stored = f.records.inner.tally(Epoch(2)).await.unwrap().unwrap();
        assert_eq!(stored.tally.revision, 1);
        assert_eq!(
            stored.tally.digest,
            expected_tally(&f.params, f.proofs.as_ref(), Epoch(2)).await.digest
        );
        assert_eq!(stored.settled_at, Some(f.at(24, 0)));
        // After settlement a late proof changes nothing.
        seed_proofs(&f.params, f.proofs.as_ref(), 8..=8, 12..13).await;
        sleep_until(&f.clock, f.at(34, 0)).await;
        cancel.cancel();
        task.await.unwrap();
        let frozen = f.records.inner.tally(Epoch(2)).await.unwrap().unwrap();
        assert_eq!(frozen, stored);
        let keeper = f.service();
        assert_eq!(keeper.tally().revise(Epoch(2), f.clock.wall()).await.unwrap(), None);
        let puts = f.records.puts.lock().unwrap().clone();
        assert_eq!(puts.iter().filter(|(e, _)| *e == Epoch(2)).count(), 2, "{puts:?}");
    });
}

#[test]
fn a_failing_store_tick_is_retried_and_never_freezes_a_schedule_without_its_tally() {
    paused_runtime().block_on(async {
        let f = RecordsFixture::new(20);
        seed_proofs(&f.params, f.proofs.as_ref(), 1..=3, 0..40).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        // Just before tally(3) is due at slot 26, the store starts failing for two calls.
        sleep_until(&f.clock, f.at(25, 900)).await;
        f.records.fail_next.store(2, Ordering::SeqCst);
        sleep_until(&f.clock, f.at(29, 0)).await;
        cancel.cancel();
        task.await.unwrap();
        let counters = f.metrics.loop_metrics("consensus_records");
        assert_eq!(counters.error.load(Ordering::SeqCst), 2);
        assert!(counters.ok.load(Ordering::SeqCst) > 2);
        assert!(f.records.inner.tally(Epoch(3)).await.unwrap().is_some());
        for (slot, schedule) in (20..=28).zip(f.schedules(20..=28).await) {
            let schedule = schedule.unwrap_or_else(|| panic!("slot {slot} has no schedule"));
            let pending = matches!(
                schedule.outcome,
                Outcome::NoLeader(lucid_consensus::leader::NoLeaderReason::TallyPending)
            );
            assert_eq!(pending, slot % 8 < 2, "slot {slot}: {schedule:?}");
            assert!(f.result(slot).await.is_some(), "slot {slot}");
        }
    });
}

/// The wiring the node will do: every service on one tracker with a child token each, sharing
/// the stores and the ingest state. The node's own beacons flow through ingest into the proof
/// store and from there into the tallies (as beacon slots of its own entity).
#[test]
fn the_services_run_together_and_the_own_beacons_reach_the_tally() {
    use lucid_consensus::ingest::Ingest;
    use lucid_consensus::registration::{CAP_RELAY, Endpoint};
    use lucid_consensus::verify::Verifier;

    use super::beacon::{BeaconDeps, BeaconProducer};
    use super::registration::RegistrationConfig;
    use super::resources::{
        RawSample, ResourceConfig, ResourceMonitor, ResourceThresholds, Sampler,
    };

    struct Idle;
    impl Sampler for Idle {
        fn sample(&mut self, _monotonic: Duration) -> RawSample {
            RawSample { cpu: Some(1_000), memory: Some(2_000), ..RawSample::default() }
        }
    }

    paused_runtime().block_on(async {
        let f = RecordsFixture::new(3);
        let key = Arc::new(testing::key(1));
        let node = key.node_id();
        let mut payout_address = [0u8; 21];
        payout_address[0] = lucid_consensus::registration::TRON_ADDRESS_VERSION;
        let beacons = BeaconProducer::new(BeaconDeps {
            params: f.params,
            clock: f.clock.clone(),
            key,
            registration: RegistrationConfig {
                payout_address: Some(payout_address),
                endpoint: Some(Endpoint::Direct("127.0.0.1:50051".into())),
                capabilities: CAP_RELAY,
                storage_capacity_bytes: 0,
            },
            store: f.proofs.clone(),
            ingest: Arc::new(tokio::sync::Mutex::new(Ingest::new(f.params))),
            verifier: Arc::new(Verifier::single_threaded()),
            outbox: None,
        });
        let config = ResourceConfig {
            interval: Duration::from_secs(30),
            thresholds: ResourceThresholds::defaults(5),
        };
        let (monitor, resources) =
            ResourceMonitor::new(Idle, config, f.clock.clone(), f.metrics.clone()).unwrap();

        let root = CancellationToken::new();
        let tracker = tokio_util::task::TaskTracker::new();
        let clock: Arc<dyn Clock> = f.clock.clone();
        tracker.spawn(run_service(beacons, clock.clone(), f.metrics.clone(), root.child_token()));
        tracker.spawn(run_service(
            f.service(),
            clock.clone(),
            f.metrics.clone(),
            root.child_token(),
        ));
        tracker.spawn(run_service(monitor, clock, f.metrics.clone(), root.child_token()));
        tracker.close();
        sleep_until(&f.clock, f.at(8 * 4 + 3, 0)).await;
        root.cancel();
        tracker.wait().await;

        // Beacons from slot 3 to 34; window(4) = [0, 32): slots 3..=31 are the node's.
        let tally = f.records.inner.tally(Epoch(4)).await.unwrap().unwrap().tally;
        let own = tally.entries.iter().find(|e| e.entity == EntityId::Node(node)).unwrap();
        assert_eq!(own.beacon_slots, 29);
        assert_eq!(own.credits, 0);
        assert_eq!(own.rank, None, "beacons earn no credits");
        assert_eq!(tally, expected_tally(&f.params, f.proofs.as_ref(), Epoch(4)).await);
        assert!(resources.latest().is_some());
        let text = f.metrics.render();
        for name in ["beacon", "consensus_records", "resources"] {
            assert!(
                text.contains(&format!(
                    "lucid_loop_ticks_total{{loop=\"{name}\",outcome=\"error\"}} 0\n"
                )),
                "{text}"
            );
        }
    });
}

#[test]
fn a_restart_completes_the_results_it_had_scheduled_and_a_suspend_is_caught_up() {
    paused_runtime().block_on(async {
        let f = RecordsFixture::new(20);
        seed_proofs(&f.params, f.proofs.as_ref(), 1..=3, 0..60).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        // Stopped inside slot 30, after its schedule and before its result time.
        sleep_until(&f.clock, f.at(30, 100)).await;
        cancel.cancel();
        task.await.unwrap();
        assert!(f.records.inner.schedule(Slot(30)).await.unwrap().is_some());
        assert_eq!(f.result(30).await, None);
        // Down for slots 31 and 32; back in slot 33.
        sleep_until(&f.clock, f.at(33, 500)).await;
        let cancel = CancellationToken::new();
        let task = f.spawn(&cancel);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(f.result(30).await, Some(SlotResult::Missed));
        assert_eq!(f.schedules(31..=32).await, [None, None], "nothing made up for the downtime");
        assert!(f.records.inner.schedule(Slot(33)).await.unwrap().is_some());
        // While running, the machine is suspended for five slots: the keeper does the
        // bookkeeping of every skipped slot.
        sleep_until(&f.clock, f.at(35, 500)).await;
        f.clock.jump(5_000);
        sleep_until(&f.clock, f.at(42, 0)).await;
        cancel.cancel();
        task.await.unwrap();
        assert!(f.schedules(33..=41).await.iter().all(Option::is_some));
        for slot in 33..=41 {
            assert!(f.result(slot).await.is_some(), "slot {slot}");
        }
    });
}

/// One node's consensus records loop and epoch reward service over its stores, with the
/// reconciliation mark its anti-entropy would fill.
struct RunningNode {
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningNode {
    fn start(
        f: &RecordsFixture,
        ledger: &Arc<lucid_payouts::store::MemoryPayoutStore>,
        mark: &Arc<crate::gossip::anti_entropy::ReconciledMark>,
    ) -> Self {
        let cancel = CancellationToken::new();
        let rewards = super::rewards::EpochRewardService::new(super::rewards::RewardDeps {
            params: f.params,
            records: f.records.clone(),
            ledger: ledger.clone(),
            budget: lucid_core::MicroUsdt(1_000_000),
        });
        let clock: Arc<dyn Clock> = f.clock.clone();
        let tasks = vec![
            tokio::spawn(run_service(
                f.service_with(mark.clone()),
                clock.clone(),
                f.metrics.clone(),
                cancel.child_token(),
            )),
            tokio::spawn(run_service(rewards, clock, f.metrics.clone(), cancel.child_token())),
        ];
        RunningNode { cancel, tasks }
    }

    async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Every posting of a ledger, sorted by key: what "the same ledger" means across nodes.
fn ledger_content(ledger: &lucid_payouts::store::MemoryPayoutStore) -> Vec<String> {
    let ledger = ledger.ledger().unwrap();
    let mut postings: Vec<String> = ledger.postings().map(|p| format!("{p:?}")).collect();
    postings.sort();
    postings
}

/// Issue 6, review finding 2: a node down across the computation of one epoch's tally
/// (slot 8e + 2) and the settlement of two (slots 8(e + 1)) comes back and, once anti-entropy
/// reconciled its store, computes and settles every epoch it missed, in order and exactly once,
/// from the same proofs as a node that ran throughout: the same settled tallies and the same
/// ledger. Before the reconciliation it settles nothing it missed (nor anything after it).
#[test]
fn epochs_that_ended_while_the_node_was_down_are_settled_in_order_once_reconciled() {
    use crate::gossip::anti_entropy::ReconciledMark;
    use lucid_payouts::store::MemoryPayoutStore;

    paused_runtime().block_on(async {
        // The reference node runs from slot 20 to 50 and holds every proof.
        let reference = RecordsFixture::new(20);
        let down = RecordsFixture { clock: reference.clock.clone(), ..RecordsFixture::new(20) };
        seed_proofs(&reference.params, reference.proofs.as_ref(), 1..=4, 0..60).await;
        // The other node holds the proofs of the slots before it goes down in slot 30.
        seed_proofs(&down.params, down.proofs.as_ref(), 1..=4, 0..31).await;
        let (reference_ledger, down_ledger) =
            (Arc::new(MemoryPayoutStore::new()), Arc::new(MemoryPayoutStore::new()));
        let reference_node =
            RunningNode::start(&reference, &reference_ledger, &Arc::new(ReconciledMark::default()));
        // Its anti-entropy compared with a peer while it ran.
        let mark = Arc::new(ReconciledMark::default());
        mark.mark(Slot(18));
        let first_run = RunningNode::start(&down, &down_ledger, &mark);
        sleep_until(&down.clock, down.at(30, 500)).await;
        first_run.stop().await;
        assert_eq!(*down.records.settles.lock().unwrap(), [Epoch(2)]);

        // Down across slots 32 (settle 3), 34 (compute 4), 40 (settle 4), 42 (compute 5); back
        // in slot 43 with a fresh mark, before anti-entropy compared anything.
        sleep_until(&down.clock, down.at(43, 200)).await;
        let mark = Arc::new(ReconciledMark::default());
        let second_run = RunningNode::start(&down, &down_ledger, &mark);
        sleep_until(&down.clock, down.at(45, 100)).await;
        assert_eq!(*down.records.settles.lock().unwrap(), [Epoch(2)], "settled unreconciled");
        assert_eq!(down.records.inner.tally(Epoch(4)).await.unwrap(), None);
        assert!(down_ledger.ledger().unwrap().posting("epoch_reward:3").is_none());

        // Anti-entropy fetches what it missed and agrees with a peer below slot 43.
        seed_proofs(&down.params, down.proofs.as_ref(), 1..=4, 31..60).await;
        mark.mark(Slot(43));
        sleep_until(&down.clock, down.at(50, 500)).await;
        second_run.stop().await;
        reference_node.stop().await;

        // In order, each once; epoch 1 (never computed here, nor epoch 0) is left alone.
        let settled = [Epoch(2), Epoch(3), Epoch(4), Epoch(5)];
        assert_eq!(*down.records.settles.lock().unwrap(), settled);
        assert_eq!(*reference.records.settles.lock().unwrap(), settled);
        assert_eq!(down.records.inner.tally(Epoch(1)).await.unwrap(), None);
        for epoch in settled {
            let ours = down.records.inner.tally(epoch).await.unwrap().unwrap();
            let theirs = reference.records.inner.tally(epoch).await.unwrap().unwrap();
            assert!(ours.settled_at.is_some() && theirs.settled_at.is_some(), "{epoch}");
            assert_eq!(ours.tally.digest, theirs.tally.digest, "{epoch}");
            assert_eq!(ours.tally.entries, theirs.tally.entries, "{epoch}");
        }
        let puts = down.records.puts.lock().unwrap().clone();
        assert_eq!(puts.iter().filter(|(epoch, _)| *epoch == Epoch(4)).count(), 1, "{puts:?}");
        // The same postings, so the same balances, on both.
        let ours = ledger_content(&down_ledger);
        assert_eq!(ours.len(), 4, "{ours:#?}");
        assert_eq!(ours, ledger_content(&reference_ledger));
        down_ledger.audit().unwrap();
    });
}
