//! Test machinery of the send protocol (feature `testing`, and this crate's own tests): the FAKE
//! chain, a crash switch that kills the process at a chosen port call, and the crash-matrix
//! runner with its checks, written once over the [`CrashableStore`] harness so that the same
//! matrix runs over `MemoryPayoutStore` here and over the SQL stores of `lucid-storage` (where a
//! crash drops the database handle and reopens it from its URL). Never used by production code.
//!
//! Assertions here panic on purpose: a panic is a failed test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test machinery; a panic fails the test"
)]
#![allow(clippy::panic, reason = "test machinery; a panic fails the test")]

mod fake_chain;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};

pub use self::fake_chain::{ChainTx, FakeChain, Fault, TX_EXPIRATION_MS};
use crate::error::Error;
use crate::ledger::{NodeBalance, Posting};
use crate::payout::{Origin, PayoutLimits, PayoutStatus, withdrawal_key};
use crate::processor::{Processor, ProcessorConfig};
use crate::rail::{
    BroadcastOutcome, ChainAddress, ChainStatus, ExpectedTransfer, PayoutRail, Preflight, RailKind,
    SignedTransfer, TransferIntent, Txid,
};
use crate::store::{
    AttemptEnd, AttemptRecord, AttemptStatus, ClaimRequest, CreateOutcome, LedgerStore,
    MemoryPayoutStore, NewPayout, PayoutRecord, PayoutStore, Receipt, Unclaim,
};

/// The chain time the test worlds start at.
pub const T0: i64 = 1_700_000_000_000;
/// Time between two processor steps of the runner.
pub const STEP_MS: i64 = 10_000;
/// Steps after which a run without quiescence fails.
pub const MAX_STEPS: usize = 2_000;

/// `n` whole USDT.
pub fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

/// A valid-looking 21-byte destination, distinct per index.
pub fn address(index: u8) -> ChainAddress {
    let mut address = [index; 21];
    address[0] = 0x41;
    address
}

/// The processor settings of the matrix: a one-minute lease, a payout fails after two signing
/// failures (so that the matrix meets that end too), defaults otherwise.
pub fn config() -> ProcessorConfig {
    ProcessorConfig { lease_ms: 60_000, max_sign_failures: 2, ..ProcessorConfig::default() }
}

/// The store under test as a crash test sees it: handles that a crash takes away, and a way to
/// open the store again from where it lives.
#[async_trait]
pub trait CrashableStore: Send + Sync {
    /// The payout port of the current incarnation.
    fn payouts(&self) -> Arc<dyn PayoutStore>;
    /// The ledger port of the current incarnation.
    fn ledger(&self) -> Arc<dyn LedgerStore>;
    /// The process died: drop every handle and open the store again.
    async fn crash_and_reopen(&self);
    /// The store's own audit: one live attempt, postings as statuses say, balances = Σ entries.
    async fn audit(&self) -> Result<(), String>;
}

/// `MemoryPayoutStore` as a crash harness: it survives a dropped processor, as a database
/// survives a crashed process.
#[derive(Debug, Default)]
pub struct MemoryHarness {
    /// The store.
    pub store: Arc<MemoryPayoutStore>,
}

#[async_trait]
impl CrashableStore for MemoryHarness {
    fn payouts(&self) -> Arc<dyn PayoutStore> {
        self.store.clone()
    }
    fn ledger(&self) -> Arc<dyn LedgerStore> {
        self.store.clone()
    }
    async fn crash_and_reopen(&self) {}
    async fn audit(&self) -> Result<(), String> {
        self.store.audit()
    }
}

/// Funded nodes and payouts `(node index, gross USDT)` over a store and a fake chain.
pub struct World {
    /// The store under test.
    pub harness: Arc<dyn CrashableStore>,
    /// The chain.
    pub chain: Arc<FakeChain>,
    /// The four funded nodes (100 000 USDT each).
    pub nodes: Vec<NodeId>,
    /// The payouts, in creation order.
    pub ids: Vec<String>,
}

impl World {
    /// Funds four nodes and creates the payouts, in order.
    pub async fn new(
        harness: Arc<dyn CrashableStore>,
        chain: FakeChain,
        payouts: &[(u64, u64)],
        max_retries: u32,
    ) -> Self {
        let nodes: Vec<NodeId> = (1..=4).map(lucid_consensus::testing::node).collect();
        let credits: Vec<_> = nodes.iter().map(|node| (*node, usdt(100_000))).collect();
        let posting = Posting::epoch_reward(Epoch(1), &credits).unwrap();
        harness.ledger().apply_posting(&posting, UnixMillis(T0)).await.unwrap();
        let store = harness.payouts();
        let mut ids = Vec::new();
        for (index, (node, gross)) in payouts.iter().enumerate() {
            let node = nodes[usize::try_from(*node).unwrap()];
            let request = NewPayout {
                node,
                origin: Origin::Withdrawal,
                idempotency_key: withdrawal_key(&format!("k{index}")).unwrap(),
                requested: Some(usdt(*gross)),
                to_address: Some(address(u8::try_from(index % 200).unwrap() + 1)),
                limits: PayoutLimits::default(),
                max_retries,
                now: UnixMillis(T0 + i64::try_from(index).unwrap()),
            };
            match store.create_payout(&request).await.unwrap() {
                CreateOutcome::Created(payout) => ids.push(payout.payout_id),
                other => panic!("{other:?}"),
            }
        }
        World { harness, chain: Arc::new(chain), nodes, ids }
    }

    /// The payout port of the current incarnation.
    pub fn store(&self) -> Arc<dyn PayoutStore> {
        self.harness.payouts()
    }

    /// A worker over the current store and the chain.
    pub fn processor(&self, owner: &str, config: ProcessorConfig) -> Processor {
        Processor::new(self.store(), self.chain.clone(), config, owner.to_owned())
    }

    /// One payout.
    pub async fn payout(&self, id: &str) -> PayoutRecord {
        self.store().get(id).await.unwrap()
    }

    /// The status of every payout, in creation order.
    pub async fn statuses(&self) -> Vec<PayoutStatus> {
        let mut statuses = Vec::with_capacity(self.ids.len());
        for id in &self.ids {
            statuses.push(self.payout(id).await.status);
        }
        statuses
    }

    /// Whether every payout is terminal.
    pub async fn all_terminal(&self) -> bool {
        self.statuses().await.iter().all(|status| status.is_terminal())
    }

    /// Checked after every step: the store audit (one live attempt, postings match statuses),
    /// and at most one successful transfer per payout on the chain.
    pub async fn check_always(&self) {
        self.harness.audit().await.unwrap();
        for id in &self.ids {
            let transfers = self.chain.successful_transfers(id);
            assert!(transfers.len() <= 1, "{id} paid {} times", transfers.len());
        }
    }

    /// At quiescence: every payout confirmed or failed; confirmed iff exactly one matching
    /// transfer exists (and it is the confirmed attempt's); dead attempts never moved money and
    /// each new attempt began only after the previous was proven dead; the store audits and
    /// `earned == available + reserved + paid` with nothing reserved.
    pub async fn check_final(&self, dead_margin_ms: i64) {
        self.check_always().await;
        let store = self.store();
        let mut paid: BTreeMap<NodeId, i64> = BTreeMap::new();
        for id in &self.ids {
            let payout = self.payout(id).await;
            let transfers = self.chain.successful_transfers(id);
            let attempts = store.attempts(id).await.unwrap();
            match payout.status {
                PayoutStatus::Confirmed => {
                    assert_eq!(transfers.len(), 1, "{id} confirmed without exactly one transfer");
                    let confirmed: Vec<&Txid> = attempts
                        .iter()
                        .filter(|a| a.status == AttemptStatus::Confirmed)
                        .map(|a| &a.transfer.txid)
                        .collect();
                    assert_eq!(confirmed, vec![&transfers[0].0], "{id}: wrong attempt confirmed");
                    assert_eq!(transfers[0].1.net, payout.amounts.net.0);
                    assert_eq!(transfers[0].1.to_address, payout.to_address);
                    *paid.entry(payout.node).or_default() +=
                        i64::try_from(payout.amounts.gross.0).unwrap();
                }
                PayoutStatus::Failed => assert!(transfers.is_empty(), "{id} failed but was paid"),
                other => panic!("{id} ended {other}"),
            }
            assert!(attempts.len() <= 1 + payout.max_retries as usize);
            for pair in attempts.windows(2) {
                let (old, new) = (&pair[0], &pair[1]);
                assert!(
                    matches!(
                        old.status,
                        AttemptStatus::Expired | AttemptStatus::Rejected | AttemptStatus::Reverted
                    ),
                    "{id}: attempt {} is {:?} while {} exists",
                    old.attempt_no,
                    old.status,
                    new.attempt_no
                );
                if old.status == AttemptStatus::Expired {
                    assert!(
                        new.created_at.0 > old.transfer.expiration.0 + dead_margin_ms,
                        "{id}: attempt {} began before {} was proven dead",
                        new.attempt_no,
                        old.attempt_no
                    );
                }
            }
        }
        for node in &self.nodes {
            let NodeBalance { earned, reserved, paid: settled, available } =
                store.balance(node).await.unwrap();
            assert_eq!(earned, available + reserved + settled, "I9 for {node}");
            assert_eq!(reserved, 0);
            assert_eq!(settled, paid.get(node).copied().unwrap_or(0));
        }
    }
}

/// Kills the process at a chosen port call: that call and every later one fails, as if the
/// process died just before it. The store behind survives, like a database.
#[derive(Debug, Default)]
pub struct CrashSwitch {
    /// Boundaries left before the crash (`None` = never).
    left: Mutex<Option<u64>>,
    dead: AtomicBool,
    /// Boundaries passed, over the switch's life.
    passed: AtomicU64,
    /// Where crashes happened, by port call.
    hits: Mutex<BTreeMap<&'static str, u64>>,
}

impl CrashSwitch {
    /// Crash at boundary `at` from now (`None`: never).
    pub fn arm(&self, at: Option<u64>) {
        *self.left.lock().unwrap() = at;
        self.dead.store(false, Ordering::SeqCst);
    }

    /// Whether the process is dead.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Boundaries passed so far.
    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    /// Resets the count of boundaries passed.
    pub fn reset_passed(&self) {
        self.passed.store(0, Ordering::SeqCst);
    }

    /// Where crashes happened, by port call.
    pub fn hits(&self) -> BTreeMap<&'static str, u64> {
        self.hits.lock().unwrap().clone()
    }

    /// A step boundary: the process dies here if this is the chosen one.
    fn boundary(&self, name: &'static str) -> bool {
        if self.is_dead() {
            return true;
        }
        self.passed.fetch_add(1, Ordering::SeqCst);
        let mut left = self.left.lock().unwrap();
        match *left {
            Some(0) => {
                self.dead.store(true, Ordering::SeqCst);
                *self.hits.lock().unwrap().entry(name).or_default() += 1;
                true
            }
            Some(n) => {
                *left = Some(n - 1);
                false
            }
            None => false,
        }
    }
}

fn crashed() -> Error {
    Error::StoreUnavailable { action: "anything", message: "the process crashed".into() }
}

/// A payout store that dies with the process: every commit is a boundary of the switch.
pub struct CrashingStore {
    inner: Arc<dyn PayoutStore>,
    switch: Arc<CrashSwitch>,
}

impl CrashingStore {
    /// `inner` behind `switch`.
    pub fn new(inner: Arc<dyn PayoutStore>, switch: Arc<CrashSwitch>) -> Self {
        CrashingStore { inner, switch }
    }

    fn commit(&self, name: &'static str) -> Result<(), Error> {
        if self.switch.boundary(name) { Err(crashed()) } else { Ok(()) }
    }

    fn read(&self) -> Result<(), Error> {
        if self.switch.is_dead() { Err(crashed()) } else { Ok(()) }
    }
}

#[async_trait]
impl PayoutStore for CrashingStore {
    async fn create_payout(&self, request: &NewPayout) -> Result<CreateOutcome, Error> {
        self.commit("create_payout")?;
        self.inner.create_payout(request).await
    }
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<PayoutRecord>, Error> {
        self.commit("claim")?;
        self.inner.claim(request).await
    }
    async fn unclaim(
        &self,
        payout_id: &str,
        lease_owner: &str,
        what: &Unclaim,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.commit("unclaim")?;
        self.inner.unclaim(payout_id, lease_owner, what, now).await
    }
    async fn record_signed(
        &self,
        payout_id: &str,
        lease_owner: &str,
        attempt_no: u32,
        transfer: &SignedTransfer,
        now: UnixMillis,
    ) -> Result<AttemptRecord, Error> {
        self.commit("record_signed")?;
        self.inner.record_signed(payout_id, lease_owner, attempt_no, transfer, now).await
    }
    async fn begin_broadcast(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<u32, Error> {
        self.commit("begin_broadcast")?;
        self.inner.begin_broadcast(payout_id, txid, now).await
    }
    async fn mark_sent(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.commit("mark_sent")?;
        self.inner.mark_sent(payout_id, txid, now).await
    }
    async fn finalize_confirmed(
        &self,
        payout_id: &str,
        txid: &Txid,
        receipt: &Receipt,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.commit("finalize_confirmed")?;
        self.inner.finalize_confirmed(payout_id, txid, receipt, now).await
    }
    async fn finalize_failed_or_retry(
        &self,
        payout_id: &str,
        txid: &Txid,
        end: &AttemptEnd,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.commit("finalize_failed_or_retry")?;
        self.inner.finalize_failed_or_retry(payout_id, txid, end, now).await
    }
    async fn mark_chain_mismatch(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.commit("mark_chain_mismatch")?;
        self.inner.mark_chain_mismatch(payout_id, txid, now).await
    }
    async fn resolve_chain_mismatch(
        &self,
        payout_id: &str,
        resolution: crate::store::Resolution,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Error> {
        self.commit("resolve_chain_mismatch")?;
        self.inner.resolve_chain_mismatch(payout_id, resolution, now).await
    }
    async fn cancel(&self, payout_id: &str, now: UnixMillis) -> Result<PayoutRecord, Error> {
        self.commit("cancel")?;
        self.inner.cancel(payout_id, now).await
    }
    async fn release_expired_leases(&self, now: UnixMillis) -> Result<Vec<String>, Error> {
        // Not a boundary of its own: dying before it is dying after the previous step, and
        // dying after it is dying before the claim that follows.
        self.read()?;
        self.inner.release_expired_leases(now).await
    }
    async fn get(&self, payout_id: &str) -> Result<PayoutRecord, Error> {
        self.read()?;
        self.inner.get(payout_id).await
    }
    async fn list(&self, status: Option<PayoutStatus>) -> Result<Vec<PayoutRecord>, Error> {
        self.read()?;
        self.inner.list(status).await
    }
    async fn attempts(&self, payout_id: &str) -> Result<Vec<AttemptRecord>, Error> {
        self.read()?;
        self.inner.attempts(payout_id).await
    }
    async fn balance(&self, node: &NodeId) -> Result<NodeBalance, Error> {
        self.read()?;
        self.inner.balance(node).await
    }
}

/// The fake chain seen by a process that may die: signing and broadcasting are boundaries.
pub struct CrashingRail {
    inner: Arc<dyn PayoutRail>,
    switch: Arc<CrashSwitch>,
}

impl CrashingRail {
    /// `inner` behind `switch`.
    pub fn new(inner: Arc<dyn PayoutRail>, switch: Arc<CrashSwitch>) -> Self {
        CrashingRail { inner, switch }
    }
}

#[async_trait]
impl PayoutRail for CrashingRail {
    fn kind(&self) -> RailKind {
        self.inner.kind()
    }
    async fn preflight(&self, batch: &[TransferIntent]) -> Result<Preflight, Error> {
        if self.switch.is_dead() {
            return Err(crashed());
        }
        self.inner.preflight(batch).await
    }
    async fn build_and_sign(&self, intent: &TransferIntent) -> Result<SignedTransfer, Error> {
        if self.switch.boundary("build_and_sign") {
            return Err(crashed());
        }
        self.inner.build_and_sign(intent).await
    }
    async fn broadcast(&self, transfer: &SignedTransfer) -> BroadcastOutcome {
        // Dying here means the bytes never left; dying at the next commit means they left and
        // the answer was lost with the process.
        if self.switch.boundary("broadcast") {
            return BroadcastOutcome::Unknown;
        }
        self.inner.broadcast(transfer).await
    }
    async fn status(&self, txid: &Txid, expected: &ExpectedTransfer) -> Result<ChainStatus, Error> {
        if self.switch.is_dead() {
            return Err(crashed());
        }
        self.inner.status(txid, expected).await
    }
}

/// Runs one worker over `world` until every payout is terminal, restarting the process after
/// each crash (the store reopened, a new processor with a new lease owner), with the crash
/// points of `crashes` in turn. `rail` wraps the chain (for example to inject signing
/// failures); `None` is the chain itself. Returns the boundaries passed.
pub async fn run_with_crashes(
    world: &World,
    crashes: &[u64],
    switch: &Arc<CrashSwitch>,
    config: ProcessorConfig,
) -> u64 {
    let mut crashes = crashes.iter().copied();
    switch.arm(crashes.next());
    let make = |incarnation: usize| {
        Processor::new(
            Arc::new(CrashingStore::new(world.store(), switch.clone())),
            Arc::new(CrashingRail::new(world.chain.clone(), switch.clone())),
            config,
            format!("process-{incarnation}"),
        )
    };
    let mut incarnation = 0;
    let mut processor = make(incarnation);
    let mut now = T0 + 1_000;
    for _ in 0..MAX_STEPS {
        world.chain.advance_to(UnixMillis(now));
        let result = processor.step(UnixMillis(now)).await;
        if switch.is_dead() {
            // Crash: everything in memory is gone; the store and the chain survive.
            drop(processor);
            world.harness.crash_and_reopen().await;
            incarnation += 1;
            switch.arm(crashes.next());
            processor = make(incarnation);
        } else if let Err(error) = result {
            assert!(matches!(error, Error::Rail { .. }), "unexpected error: {error}");
        }
        world.check_always().await;
        if world.all_terminal().await {
            return switch.passed();
        }
        now += STEP_MS;
    }
    panic!("no quiescence: {:?}", world.statuses().await);
}

/// The deterministic generator of the matrix: the workspace's one seeded generator.
pub use lucid_core::rng::SplitMix64 as Rng;

/// The random world of seed `seed` over `harness`: 1–3 payouts over up to 3 nodes, 0–3
/// retries, 40 % of broadcasts drawing a random fault, 10 % of status polls failing in
/// transport, 10 % of signings failing, solidified after 1–3 polls.
pub async fn random_world(seed: u64, harness: Arc<dyn CrashableStore>) -> World {
    let mut rng = Rng::new(seed);
    let payouts: Vec<(u64, u64)> =
        (0..1 + rng.below(3)).map(|_| (rng.below(3), 10 + rng.below(5_000))).collect();
    let chain = FakeChain::new(seed, 40, 1 + u32::try_from(rng.below(3)).unwrap());
    chain.set_status_error_percent(10);
    chain.set_sign_failure_percent(10);
    World::new(harness, chain, &payouts, u32::try_from(rng.below(4)).unwrap()).await
}

/// What a crash matrix ran.
#[derive(Clone, Debug, Default)]
pub struct MatrixReport {
    /// Runs with at least one crash.
    pub crash_runs: u64,
    /// Crashes by port call.
    pub hits: BTreeMap<&'static str, u64>,
    /// Faults the chain drew, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Signing failures injected.
    pub sign_failures: u64,
    /// Payouts that failed for good on signing failures (`SIGNING_FAILED`, nothing signed).
    pub failed_unsigned: u64,
}

/// The crash matrix (I13) over the seeds `seeds`: each seed's random world runs once without a
/// crash to count its step boundaries C, then once per boundary k in 0..C with the process
/// killed at k, and for odd k killed a second time after the restart at a seeded random
/// boundary. `fresh` gives an empty store for each run. After every step and at quiescence the
/// checks of [`World::check_always`] and [`World::check_final`] hold.
pub async fn crash_matrix<F, Fut>(seeds: std::ops::Range<u64>, mut fresh: F) -> MatrixReport
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn CrashableStore>>,
{
    let switch = Arc::new(CrashSwitch::default());
    let mut report = MatrixReport::default();
    for seed in seeds {
        let world = random_world(seed, fresh().await).await;
        switch.reset_passed();
        let boundaries = run_with_crashes(&world, &[], &switch, config()).await;
        world.check_final(config().dead_margin_ms).await;
        drop(world);
        for k in 0..boundaries {
            let world = random_world(seed, fresh().await).await;
            let mut crashes = vec![k];
            if k % 2 == 1 {
                crashes.push(Rng::new(seed ^ k).below(boundaries));
            }
            run_with_crashes(&world, &crashes, &switch, config()).await;
            world.check_final(config().dead_margin_ms).await;
            report.crash_runs += 1;
            for (kind, count) in world.chain.faults_drawn() {
                *report.faults.entry(kind).or_default() += count;
            }
            report.sign_failures += world.chain.sign_failures();
            for id in &world.ids {
                let payout = world.payout(id).await;
                if payout.status == PayoutStatus::Failed
                    && payout.error_code.as_deref() == Some(crate::processor::SIGNING_FAILED)
                {
                    report.failed_unsigned += 1;
                    // Nothing signed in its last claim, and the reservation came back.
                    assert!(payout.sign_failures >= 1);
                }
            }
        }
    }
    report.hits = switch.hits();
    report
}
