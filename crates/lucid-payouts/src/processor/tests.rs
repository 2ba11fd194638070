//! Tests of the send protocol against the FAKE chain: the crash matrix (I13), lost responses
//! (I14), concurrent workers (I15), the circuit breaker, the ledger-only rail and preflight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};

use super::fake_chain::{FakeChain, Fault, TX_EXPIRATION_MS};
use super::*;
use crate::ledger::{NodeBalance, Posting};
use crate::payout::{Origin, PayoutLimits, withdrawal_key};
use crate::rail::{ChainAddress, LedgerOnlyRail, RejectCode, SignedTransfer, Txid};
use crate::store::{AttemptStatus, CreateOutcome, MemoryPayoutStore, NewPayout};

const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 10_000;
const MAX_STEPS: usize = 2_000;
const SEEDS: u64 = 300;

fn run<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

fn usdt(n: u64) -> MicroUsdt {
    MicroUsdt(n * 1_000_000)
}

fn address(index: u8) -> ChainAddress {
    let mut address = [index; 21];
    address[0] = 0x41;
    address
}

fn config() -> ProcessorConfig {
    ProcessorConfig { lease_ms: 60_000, ..ProcessorConfig::default() }
}

/// A store with funded nodes and payouts `(node index, gross USDT)`, created in order.
struct World {
    store: Arc<MemoryPayoutStore>,
    chain: Arc<FakeChain>,
    nodes: Vec<NodeId>,
    ids: Vec<String>,
}

impl World {
    fn new(chain: FakeChain, payouts: &[(u64, u64)], max_retries: u32) -> Self {
        let store = Arc::new(MemoryPayoutStore::new());
        let nodes: Vec<NodeId> = (1..=4).map(testing::node).collect();
        let credits: Vec<_> = nodes.iter().map(|node| (*node, usdt(100_000))).collect();
        store.post(&Posting::epoch_reward(Epoch(1), &credits).unwrap()).unwrap();
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
            match run(store.create_payout(&request)).unwrap() {
                CreateOutcome::Created(payout) => ids.push(payout.payout_id),
                other => panic!("{other:?}"),
            }
        }
        World { store, chain: Arc::new(chain), nodes, ids }
    }

    fn processor(&self, owner: &str, config: ProcessorConfig) -> Processor {
        Processor::new(self.store.clone(), self.chain.clone(), config, owner.to_owned())
    }

    fn payout(&self, id: &str) -> PayoutRecord {
        run(self.store.get(id)).unwrap()
    }

    fn statuses(&self) -> Vec<PayoutStatus> {
        self.ids.iter().map(|id| self.payout(id).status).collect()
    }

    fn all_terminal(&self) -> bool {
        self.statuses().iter().all(|status| status.is_terminal())
    }

    /// Checked after every step: the store audit (one live attempt, postings match statuses),
    /// and at most one successful transfer per payout on the chain.
    fn check_always(&self) {
        self.store.audit().unwrap();
        for id in &self.ids {
            let transfers = self.chain.successful_transfers(id);
            assert!(transfers.len() <= 1, "{id} paid {} times", transfers.len());
        }
    }

    /// At quiescence: every payout confirmed or failed; confirmed iff exactly one matching
    /// transfer exists (and it is the confirmed attempt's); dead attempts never moved money and
    /// each new attempt began only after the previous was proven dead; the ledger audits and
    /// `earned == available + reserved + paid` with nothing reserved.
    fn check_final(&self, dead_margin_ms: i64) {
        self.check_always();
        let mut paid: BTreeMap<NodeId, i64> = BTreeMap::new();
        for id in &self.ids {
            let payout = self.payout(id);
            let transfers = self.chain.successful_transfers(id);
            let attempts = run(self.store.attempts(id)).unwrap();
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
                    *paid.entry(payout.node).or_default() += payout.amounts.gross.0 as i64;
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
        let ledger = self.store.ledger().unwrap();
        ledger.audit().unwrap();
        for node in &self.nodes {
            let NodeBalance { earned, reserved, paid: settled, available } =
                ledger.node_balance(node);
            assert_eq!(earned, available + reserved + settled, "I9 for {node}");
            assert_eq!(reserved, 0);
            assert_eq!(settled, paid.get(node).copied().unwrap_or(0));
        }
    }
}

/// Kills the process at a chosen port call: that call and every later one fails, as if the
/// process died just before it. The store behind survives, like a database.
#[derive(Default)]
struct CrashSwitch {
    /// Boundaries left before the crash (`None` = never).
    left: Mutex<Option<u64>>,
    dead: AtomicBool,
    /// Boundaries passed, over the switch's life.
    passed: AtomicU64,
    /// Where crashes happened, by port call.
    hits: Mutex<BTreeMap<&'static str, u64>>,
}

impl CrashSwitch {
    fn arm(&self, at: Option<u64>) {
        *self.left.lock().unwrap() = at;
        self.dead.store(false, Ordering::SeqCst);
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
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

struct CrashingStore {
    inner: Arc<MemoryPayoutStore>,
    switch: Arc<CrashSwitch>,
}

impl CrashingStore {
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

struct CrashingRail {
    inner: Arc<FakeChain>,
    switch: Arc<CrashSwitch>,
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

/// Runs workers over `world` until every payout is terminal, restarting the process (a new
/// processor with a new lease owner over the same store) after each crash, with the crash
/// points of `crashes` in turn. Returns the boundaries passed.
fn run_with_crashes(world: &World, crashes: &[u64], switch: &Arc<CrashSwitch>) -> u64 {
    let mut crashes = crashes.iter().copied();
    switch.arm(crashes.next());
    let make = |incarnation: usize| {
        Processor::new(
            Arc::new(CrashingStore { inner: world.store.clone(), switch: switch.clone() }),
            Arc::new(CrashingRail { inner: world.chain.clone(), switch: switch.clone() }),
            config(),
            format!("process-{incarnation}"),
        )
    };
    let mut incarnation = 0;
    let mut processor = make(incarnation);
    let mut now = T0 + 1_000;
    for _ in 0..MAX_STEPS {
        world.chain.advance_to(UnixMillis(now));
        let result = run(processor.step(UnixMillis(now)));
        if switch.is_dead() {
            // Crash: everything in memory is gone; the store and the chain survive.
            drop(processor);
            incarnation += 1;
            switch.arm(crashes.next());
            processor = make(incarnation);
        } else if let Err(error) = result {
            assert!(matches!(error, Error::Rail { .. }), "unexpected error: {error}");
        }
        world.check_always();
        if world.all_terminal() {
            return switch.passed.load(Ordering::SeqCst);
        }
        now += STEP_MS;
    }
    panic!("no quiescence: {:?}", world.statuses());
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A random world of seed `seed`: 1–3 payouts over up to 3 nodes, 0–3 retries, 40 % of
/// broadcasts drawing a random fault, 10 % of status polls failing in transport, solidified
/// after 1–3 polls.
fn random_world(seed: u64) -> World {
    let mut rng = Rng(seed);
    let payouts: Vec<(u64, u64)> =
        (0..1 + rng.below(3)).map(|_| (rng.below(3), 10 + rng.below(5_000))).collect();
    let chain = FakeChain::new(seed, 40, 1 + u32::try_from(rng.below(3)).unwrap());
    chain.set_status_error_percent(10);
    World::new(chain, &payouts, u32::try_from(rng.below(4)).unwrap())
}

/// I13, the crash matrix. For each of 300 seeds, a random world (1–3 payouts over up to 3
/// nodes, 0–3 retries, solidified after 1–3 polls) runs once without a crash to count its step
/// boundaries C: every commit of the protocol (claim, record_signed, begin_broadcast, mark_sent,
/// finalize_confirmed, finalize_failed_or_retry, mark_chain_mismatch, unclaim) and the rail calls
/// that act (build_and_sign, broadcast). It then runs once per boundary k in 0..C with the
/// process killed at k (that call and everything after it fails; a new processor with a new
/// lease owner restarts over the same store and chain), and for odd k killed a second time after
/// the restart at a seeded random boundary: 5 236 crash runs in all (about 17 per seed).
/// Faults, drawn per broadcast (40 % of unscripted broadcasts): lost response after acceptance,
/// timeout, OUT_OF_ENERGY revert, accepted but never included (expires), rejection with
/// BANDWITH_ERROR or TAPOS_ERROR; plus transport errors on 10 % of status polls. The test
/// asserts that crashes hit every boundary kind of the send path and that every fault kind was
/// drawn. After every step: store audit (one live attempt, postings match statuses) and at most
/// one successful transfer per payout. At quiescence: every payout confirmed or failed,
/// confirmed iff exactly one matching transfer (the confirmed attempt's), settled or released
/// exactly once, a new attempt only after the previous was proven dead, the ledger audit passes
/// and `earned == available + reserved + paid` for every node.
#[test]
fn crash_at_every_step_boundary() {
    let switch = Arc::new(CrashSwitch::default());
    let mut runs = 0u64;
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 0..SEEDS {
        let world = random_world(seed);
        switch.passed.store(0, Ordering::SeqCst);
        let boundaries = run_with_crashes(&world, &[], &switch);
        world.check_final(config().dead_margin_ms);
        for k in 0..boundaries {
            let world = random_world(seed);
            let mut crashes = vec![k];
            if k % 2 == 1 {
                crashes.push(Rng(seed ^ k).below(boundaries));
            }
            run_with_crashes(&world, &crashes, &switch);
            world.check_final(config().dead_margin_ms);
            runs += 1;
            for (kind, count) in world.chain.faults_drawn() {
                *faults.entry(kind).or_default() += count;
            }
        }
    }
    let hits = switch.hits.lock().unwrap().clone();
    for boundary in [
        "claim",
        "build_and_sign",
        "record_signed",
        "begin_broadcast",
        "broadcast",
        "mark_sent",
        "finalize_confirmed",
        "finalize_failed_or_retry",
    ] {
        assert!(hits.contains_key(boundary), "no crash at {boundary}: {hits:?}");
    }
    for fault in
        ["LoseResponse", "Timeout", "Revert", "NeverInclude", "Reject(Bandwidth)", "Reject(Tapos)"]
    {
        assert!(faults.contains_key(fault), "fault {fault} never drawn: {faults:?}");
    }
    assert!(runs >= 3_000, "only {runs} crash runs");
}

/// I14: an answer lost after acceptance is found by polling the same txid, and a timeout leads
/// to re-broadcasts of the same bytes; a second txid appears only once the first is proven dead.
#[test]
fn lost_broadcast_response_never_yields_a_second_txid_early() {
    // Lost response, transaction included: one txid, confirmed.
    let world = World::new(FakeChain::new(1, 0, 2), &[(0, 100)], 3);
    world.chain.script([Fault::LoseResponse]);
    run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()));
    world.check_final(config().dead_margin_ms);
    let txids: std::collections::BTreeSet<Txid> =
        world.chain.broadcasts().iter().map(|(_, txid)| *txid).collect();
    assert_eq!(txids.len(), 1);
    assert_eq!(world.payout(&world.ids[0]).status, PayoutStatus::Confirmed);

    // Timeouts until the transaction expires: same bytes again and again, then proven dead,
    // then a second attempt.
    let world = World::new(FakeChain::new(2, 0, 1), &[(0, 100)], 3);
    world.chain.script(std::iter::repeat_n(Fault::Timeout, 7));
    run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()));
    world.check_final(config().dead_margin_ms);
    let broadcasts = world.chain.broadcasts();
    let first = broadcasts[0].1;
    let first_expiry = T0 + 1_000 + TX_EXPIRATION_MS;
    for (at, txid) in &broadcasts {
        if *txid != first {
            assert!(*at > first_expiry + config().dead_margin_ms, "second txid at {at}");
        }
    }
    assert!(broadcasts.iter().filter(|(_, txid)| *txid == first).count() >= 2);
    let attempts = run(world.store.attempts(&world.ids[0])).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].status, AttemptStatus::Expired);
    assert_eq!(attempts[1].status, AttemptStatus::Confirmed);
}

/// A definitive rejection proves nothing after a broadcast with unknown outcome; on the first
/// broadcast it ends the attempt, and a non-retryable code fails the payout at once.
#[test]
fn rejections_prove_death_only_on_the_first_broadcast() {
    let world = World::new(FakeChain::new(3, 0, 1), &[(0, 100)], 3);
    world.chain.script([Fault::Timeout, Fault::Reject(RejectCode::Bandwidth)]);
    run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()));
    world.check_final(config().dead_margin_ms);
    let attempts = run(world.store.attempts(&world.ids[0])).unwrap();
    assert_eq!(attempts.len(), 1, "the rejection after a timeout must not end the attempt");
    assert_eq!(attempts[0].status, AttemptStatus::Confirmed);

    let world = World::new(FakeChain::new(4, 0, 1), &[(0, 100), (1, 50)], 3);
    world.chain.script([Fault::Reject(RejectCode::Tapos), Fault::Reject(RejectCode::SigError)]);
    run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()));
    world.check_final(config().dead_margin_ms);
    let first = run(world.store.attempts(&world.ids[0])).unwrap();
    assert_eq!(
        first.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AttemptStatus::Rejected, AttemptStatus::Confirmed]
    );
    let second = world.payout(&world.ids[1]);
    assert_eq!(
        (second.status, second.error_code.as_deref()),
        (PayoutStatus::Failed, Some("SIGERROR"))
    );
}

/// A failure receipt (OUT_OF_ENERGY) reverts the attempt and retries; attempts are bounded by
/// `1 + max_retries`, after which the payout fails and its reservation is released.
#[test]
fn reverts_retry_until_attempts_run_out() {
    let world = World::new(FakeChain::new(5, 0, 1), &[(0, 100), (1, 100)], 1);
    // First payout: revert, revert (out of attempts). Second: confirmed at once.
    world.chain.script([Fault::Revert, Fault::None, Fault::Revert]);
    run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()));
    world.check_final(config().dead_margin_ms);
    let payouts: Vec<_> = world.ids.iter().map(|id| world.payout(id)).collect();
    assert_eq!((payouts[0].status, payouts[0].attempt_count), (PayoutStatus::Failed, 2));
    assert_eq!((payouts[1].status, payouts[1].attempt_count), (PayoutStatus::Confirmed, 1));
}

/// SUCCESS without the matching Transfer: the payout stays sent with CHAIN_MISMATCH, nothing is
/// settled or released, and polling stops.
#[test]
fn chain_mismatch_stops_polling() {
    let world = World::new(FakeChain::new(6, 0, 1), &[(0, 100)], 3);
    world.chain.script([Fault::Mismatch]);
    let mut processor = world.processor("w", config());
    let mut now = T0 + 1_000;
    for _ in 0..5 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    let payout = world.payout(&world.ids[0]);
    assert_eq!(
        (payout.status, payout.error_code.as_deref()),
        (PayoutStatus::Sent, Some(CHAIN_MISMATCH))
    );
    let report = run(processor.step(UnixMillis(now))).unwrap();
    assert_eq!((report.mismatches, report.confirmed, report.broadcasts), (0, 0, 0));
    world.store.audit().unwrap();
    assert_eq!(run(world.store.balance(&world.nodes[0])).unwrap().reserved, 100_000_000);
}

/// I15: four workers (threads, each its own processor over the shared store and chain, with
/// random faults) never pay a payout twice and settle or release each exactly once.
#[test]
fn four_concurrent_workers_never_send_a_payout_twice() {
    for seed in 0..4u64 {
        let mut rng = Rng(seed);
        let payouts: Vec<(u64, u64)> =
            (0..24).map(|_| (rng.below(4), 10 + rng.below(500))).collect();
        let chain = FakeChain::new(seed, 30, 2);
        chain.set_status_error_percent(5);
        let world = World::new(chain, &payouts, 3);
        let clock = AtomicI64::new(T0 + 1_000);
        std::thread::scope(|scope| {
            for worker in 0..4 {
                let (world, clock) = (&world, &clock);
                scope.spawn(move || {
                    let cfg = ProcessorConfig { batch_size: 3, ..config() };
                    let mut processor = world.processor(&format!("worker-{worker}"), cfg);
                    for _ in 0..MAX_STEPS {
                        let now = clock.fetch_add(STEP_MS / 4, Ordering::SeqCst);
                        world.chain.advance_to(UnixMillis(now));
                        if let Err(error) = run(processor.step(UnixMillis(now))) {
                            assert!(matches!(error, Error::Rail { .. }), "{error}");
                        }
                        world.check_always();
                        if world.all_terminal() {
                            break;
                        }
                    }
                });
            }
        });
        assert!(world.all_terminal(), "{:?}", world.statuses());
        world.check_final(config().dead_margin_ms);
        // Every broadcast belongs to a recorded attempt of its payout.
        for (_, txid) in world.chain.broadcasts() {
            let payout = world.chain.payout_of(&txid).unwrap();
            let attempts = run(world.store.attempts(&payout)).unwrap();
            assert!(attempts.iter().any(|a| a.transfer.txid == txid));
        }
    }
}

/// Ten consecutive attempt failures open the circuit: claiming pauses for the cooldown, then
/// one payout half-opens it; a failure reopens it, a confirmation closes it.
#[test]
fn circuit_breaker_opens_after_ten_consecutive_failures() {
    let world = World::new(FakeChain::new(7, 0, 1), &[(0, 20); 14], 0);
    world.chain.script(std::iter::repeat_n(Fault::Reject(RejectCode::Tapos), 11));
    let caps = crate::payout::DailyCaps { max_count: 0, max_per_node: 0 };
    let cfg = ProcessorConfig { batch_size: 20, caps, ..config() };
    let mut processor = world.processor("w", cfg);
    let t = T0 + 1_000;
    world.chain.advance_to(UnixMillis(t));
    let report = run(processor.step(UnixMillis(t))).unwrap();
    assert_eq!((report.claimed, report.attempts_failed, report.failed), (14, 10, 10));
    let open_until = UnixMillis(t + cfg.circuit_cooldown_ms);
    assert_eq!(processor.circuit(), Circuit::Open { until: open_until });
    let pending = |w: &World| w.statuses().iter().filter(|s| **s == PayoutStatus::Pending).count();
    assert_eq!(pending(&world), 4);
    // Paused during the cooldown.
    let report = run(processor.step(UnixMillis(t + 60_000))).unwrap();
    assert_eq!(report.claimed, 0);
    // Half-open: one payout; it fails (the 11th rejection), so the circuit opens again.
    let t2 = open_until.0;
    world.chain.advance_to(UnixMillis(t2));
    let report = run(processor.step(UnixMillis(t2))).unwrap();
    assert_eq!((report.claimed, report.failed), (1, 1));
    assert_eq!(
        processor.circuit(),
        Circuit::Open { until: UnixMillis(t2 + cfg.circuit_cooldown_ms) }
    );
    // Half-open again: this one confirms, which closes the circuit; the rest then flows.
    let mut now = t2 + cfg.circuit_cooldown_ms;
    for _ in 0..5 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    assert_eq!(processor.circuit(), Circuit::Closed { failures: 0 });
    assert!(world.all_terminal());
    world.check_final(cfg.dead_margin_ms);
}

/// I20 through the processor: over the caps, payouts stay pending until the next UTC day.
#[test]
fn daily_caps_hold_payouts_until_the_next_day() {
    let world = World::new(FakeChain::new(8, 0, 1), &[(0, 20); 5], 3);
    let caps = crate::payout::DailyCaps { max_count: 100, max_per_node: 2 };
    let mut processor = world.processor("w", ProcessorConfig { caps, ..config() });
    let mut now = T0 + 1_000;
    for _ in 0..10 {
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
        now += STEP_MS;
    }
    let confirmed =
        |w: &World| w.statuses().iter().filter(|s| **s == PayoutStatus::Confirmed).count();
    assert_eq!(confirmed(&world), 2);
    let tomorrow = (crate::payout::utc_day(UnixMillis(now)) + 1) * 86_400_000;
    for step in 0..10 {
        let now = tomorrow + step * STEP_MS;
        world.chain.advance_to(UnixMillis(now));
        run(processor.step(UnixMillis(now))).unwrap();
    }
    assert_eq!(confirmed(&world), 4);
    world.store.audit().unwrap();
}

/// The ledger-only rail signs nothing: payouts stay pending, reported as awaiting a chain.
#[test]
fn ledger_only_rail_leaves_payouts_pending() {
    let world = World::new(FakeChain::new(9, 0, 1), &[(0, 20), (1, 30)], 3);
    let mut processor =
        Processor::new(world.store.clone(), Arc::new(LedgerOnlyRail), config(), "w".into());
    let report = run(processor.step(UnixMillis(T0 + 1_000))).unwrap();
    assert_eq!((report.awaiting_chain, report.claimed), (Some(2), 0));
    assert_eq!(world.statuses(), [PayoutStatus::Pending, PayoutStatus::Pending]);
    world.store.audit().unwrap();
}

/// A low hot wallet returns the batch to pending and signs nothing.
#[test]
fn low_hot_wallet_signs_nothing() {
    let world = World::new(FakeChain::new(10, 0, 1), &[(0, 20), (1, 30)], 3);
    world.chain.set_hot_wallet_low(true);
    let mut processor = world.processor("w", config());
    let report = run(processor.step(UnixMillis(T0 + 1_000))).unwrap();
    assert!(report.hot_wallet_low);
    assert_eq!((report.claimed, report.signed), (2, 0));
    assert_eq!(world.statuses(), [PayoutStatus::Pending, PayoutStatus::Pending]);
    assert!(world.chain.broadcasts().is_empty());
    world.chain.set_hot_wallet_low(false);
    world.chain.set_fault_percent(0);
    run_with_crashes(&world, &[], &Arc::new(CrashSwitch::default()));
    world.check_final(config().dead_margin_ms);
}
