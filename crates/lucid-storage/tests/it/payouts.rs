//! `LedgerStore` and `PayoutStore` on both backends (`pools-payouts.md` §4, §5, §8 T3–T8, §11
//! I8, I9, I11–I16, I20): the model-based agreement with `MemoryPayoutStore` after every step,
//! the processor's crash matrix with the database dropped and reopened at every crash, four
//! concurrent workers, `earned == available + reserved + paid` under concurrent creation,
//! cancellation and processing, a restart, and the schema refusing by itself what the rules
//! refuse.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lucid_consensus::testing;
use lucid_core::{Epoch, MicroUsdt, NodeId, UnixMillis};
use lucid_payouts::ledger::{Account, Posting};
use lucid_payouts::payout::{DailyCaps, Origin, PayoutLimits, PayoutStatus, withdrawal_key};
use lucid_payouts::processor::ProcessorConfig;
use lucid_payouts::rail::SignedTransfer;
use lucid_payouts::store::{
    AttemptEnd, ClaimRequest, CreateOutcome, LedgerStore, MemoryPayoutStore, NewPayout,
    PayoutStore, Receipt, Unclaim,
};
use lucid_payouts::testing::{
    CrashableStore, FakeChain, MAX_STEPS, Rng, STEP_MS, T0, World, address, config, crash_matrix,
    usdt,
};
use lucid_storage::testing::TestDb;
use lucid_storage::{Backend, Database};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::*;

fn node(i: u64) -> NodeId {
    testing::node(i)
}

/// Runs `sql` on a separate connection, behind the adapter's back.
async fn raw(test_db: &TestDb, sql: &str) -> Result<u64, sqlx::Error> {
    match test_db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&test_db.url).await.unwrap();
            let result = sqlx::query(sql).execute(&pool).await.map(|r| r.rows_affected());
            pool.close().await;
            result
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
            let result = sqlx::query(sql).execute(&pool).await.map(|r| r.rows_affected());
            pool.close().await;
            result
        }
    }
}

/// An empty database of `backend`: a new SQLite file, or the PostgreSQL database of `shared`
/// emptied (the ledger tables refuse DELETE by trigger; TRUNCATE is the test's own tool).
async fn fresh(backend: Backend, shared: Option<&TestDb>) -> (Option<TestDb>, Database) {
    match (backend, shared) {
        (Backend::Postgres, Some(test_db)) => {
            // Open first: the first open of the database migrates it.
            let db = test_db.open().await.unwrap();
            raw(
                test_db,
                "TRUNCATE ledger_entries, ledger_postings, ledger_accounts, payout_attempts, \
                 payouts, payout_batches, audit_log RESTART IDENTITY CASCADE",
            )
            .await
            .unwrap();
            (None, db)
        }
        _ => {
            let test_db = TestDb::sqlite().unwrap();
            let db = test_db.open().await.unwrap();
            (Some(test_db), db)
        }
    }
}

/// The shared PostgreSQL test database, when a server is available.
async fn postgres() -> Option<TestDb> {
    TestDb::postgres().await.unwrap()
}

/// The backends to run: SQLite always, PostgreSQL when available.
async fn backends() -> Vec<(Backend, Option<Arc<TestDb>>)> {
    let mut all = vec![(Backend::Sqlite, None)];
    if let Some(pg) = postgres().await {
        all.push((Backend::Postgres, Some(Arc::new(pg))));
    }
    all
}

async fn audit(db: &Database) {
    db.audit_ledger_and_payouts().await.unwrap().unwrap();
}

fn request(node: NodeId, key: &str, gross: Option<MicroUsdt>, now: i64) -> NewPayout {
    NewPayout {
        node,
        origin: Origin::Withdrawal,
        idempotency_key: withdrawal_key(key).unwrap(),
        requested: gross,
        to_address: Some(address(1)),
        limits: PayoutLimits::default(),
        max_retries: 3,
        now: UnixMillis(now),
    }
}

fn transfer(tag: u8) -> SignedTransfer {
    SignedTransfer {
        txid: [tag; 32],
        raw: vec![tag; 8],
        signature: vec![tag; 65],
        expiration: UnixMillis(T0 + 60_000),
        fee_limit_sun: 30_000_000,
    }
}

// ---------------------------------------------------------------------------------------------
// Model-based: random operation sequences through `MemoryPayoutStore` and the SQL store.

#[derive(Clone, Debug)]
enum Op {
    Credit { node: u64, amount: u64, epoch: u64 },
    Session { node: u64, revenue: u64, id: u8 },
    PayoutPosting { payout: usize },
    Create { node: u64, key: u8, requested: Option<u64>, address: bool, max_retries: u32 },
    Claim { batch: u32, owner: u8, max_count: u32, max_per_node: u32 },
    Unclaim { payout: usize, owner: u8, how: u8 },
    Sign { payout: usize, owner: u8, skew: u32, tag: u8 },
    Broadcast { payout: usize, tag: Option<u8> },
    Sent { payout: usize, tag: Option<u8> },
    Confirm { payout: usize, tag: Option<u8> },
    End { payout: usize, tag: Option<u8>, how: u8, retryable: bool },
    Mismatch { payout: usize, tag: Option<u8> },
    Resolve { payout: usize, settle: bool },
    Cancel { payout: usize },
    ReleaseLeases,
    Advance { ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let payout = 0..8usize;
    let tag = prop::option::weighted(0.3, 0..6u8);
    prop_oneof![
        (0..3u64, 1..40_000_000u64, 0..4u64).prop_map(|(node, amount, epoch)| Op::Credit {
            node,
            amount,
            epoch
        }),
        (0..3u64, 0..30_000_000u64, 0..3u8).prop_map(|(node, revenue, id)| Op::Session {
            node,
            revenue,
            id
        }),
        payout.clone().prop_map(|payout| Op::PayoutPosting { payout }),
        (0..3u64, 0..4u8, prop::option::of(0..60_000_000u64), prop::bool::weighted(0.9), 0..7u32)
            .prop_map(|(node, key, requested, address, max_retries)| Op::Create {
                node,
                key,
                requested,
                address,
                max_retries,
            }),
        (1..4u32, 0..2u8, 0..4u32, 0..3u32).prop_map(|(batch, owner, max_count, max_per_node)| {
            Op::Claim { batch, owner, max_count, max_per_node }
        }),
        (payout.clone(), 0..2u8, 0..3u8).prop_map(|(payout, owner, how)| Op::Unclaim {
            payout,
            owner,
            how
        }),
        (payout.clone(), 0..2u8, 0..3u32, 0..6u8).prop_map(|(payout, owner, skew, tag)| Op::Sign {
            payout,
            owner,
            skew,
            tag
        }),
        (payout.clone(), tag.clone()).prop_map(|(payout, tag)| Op::Broadcast { payout, tag }),
        (payout.clone(), tag.clone()).prop_map(|(payout, tag)| Op::Sent { payout, tag }),
        (payout.clone(), tag.clone()).prop_map(|(payout, tag)| Op::Confirm { payout, tag }),
        (payout.clone(), tag.clone(), 0..3u8, any::<bool>())
            .prop_map(|(payout, tag, how, retryable)| Op::End { payout, tag, how, retryable }),
        (payout.clone(), tag).prop_map(|(payout, tag)| Op::Mismatch { payout, tag }),
        (payout.clone(), any::<bool>()).prop_map(|(payout, settle)| Op::Resolve { payout, settle }),
        payout.prop_map(|payout| Op::Cancel { payout }),
        Just(Op::ReleaseLeases),
        (0..200_000i64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The payout an op names: one created so far, or an unknown id when there is none.
async fn pick(memory: &MemoryPayoutStore, index: usize) -> String {
    let all = memory.list(None).await.unwrap();
    if all.is_empty() {
        "payout_000000000000000000000000".to_owned()
    } else {
        all[index % all.len()].payout_id.clone()
    }
}

/// The txid an op names: `[tag; 32]`, or the payout's last attempt's.
async fn txid(memory: &MemoryPayoutStore, payout: &str, tag: Option<u8>) -> [u8; 32] {
    match tag {
        Some(tag) => [tag; 32],
        None => match memory.attempts(payout).await.ok().and_then(|a| a.last().cloned()) {
            Some(attempt) => attempt.transfer.txid,
            None => [0; 32],
        },
    }
}

/// Both stores hold the same ledger, payouts, attempts and balances; both pass their audits.
async fn agree(memory: &MemoryPayoutStore, db: &Database, step: &str) {
    let backend = db.backend();
    memory.audit().unwrap();
    db.audit_ledger_and_payouts()
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{backend:?} {step}: {e}"));
    let ledger = memory.ledger().unwrap();
    let postings: Vec<Posting> = ledger.postings().cloned().collect();
    assert_eq!(db.ledger_postings().await.unwrap(), postings, "{backend:?} {step}");
    let balances: BTreeMap<Account, i64> = ledger.balances().collect();
    let stored: BTreeMap<Account, i64> = db.ledger_balances().await.unwrap().into_iter().collect();
    assert_eq!(stored, balances, "{backend:?} {step}");
    let payouts = memory.list(None).await.unwrap();
    assert_eq!(db.list(None).await.unwrap(), payouts, "{backend:?} {step}");
    for status in [PayoutStatus::Pending, PayoutStatus::Processing, PayoutStatus::Sent] {
        assert_eq!(db.list(Some(status)).await, memory.list(Some(status)).await, "{step}");
    }
    for payout in &payouts {
        let id = &payout.payout_id;
        assert_eq!(db.attempts(id).await, memory.attempts(id).await, "{backend:?} {step}");
        assert_eq!(db.get(id).await, memory.get(id).await, "{backend:?} {step}");
    }
    for i in 0..3 {
        let n = node(i);
        assert_eq!(db.balance(&n).await, memory.balance(&n).await, "{backend:?} {step}");
    }
    let minimum = MicroUsdt(10_000_000);
    assert_eq!(
        db.nodes_with_available(minimum).await,
        memory.nodes_with_available(minimum).await,
        "{backend:?} {step}"
    );
    // A node's credits: all of them, those after the seed, and a short page.
    let windows =
        [(None, i64::MAX, 1_000), (Some(UnixMillis(T0)), i64::MAX, 1_000), (None, i64::MAX, 2)];
    for i in 0..3 {
        let n = node(i);
        for (after, until, limit) in windows {
            let until = UnixMillis(until);
            assert_eq!(
                db.node_credits(&n, after, until, limit).await,
                memory.node_credits(&n, after, until, limit).await,
                "{backend:?} {step}: credits of node {i} after {after:?}"
            );
        }
        // A node's ledger, newest first: the whole of it, then page by page of two from each
        // line's position, so that every cursor the pages hand out is checked on both stores.
        let all = memory.node_ledger(&n, None, 1_000).await.unwrap();
        assert_eq!(db.node_ledger(&n, None, 1_000).await.unwrap(), all, "{backend:?} {step}");
        let balance = memory.balance(&n).await.unwrap().available;
        assert_eq!(all.first().map_or(0, |line| line.balance_after), balance, "{step}");
        for line in &all {
            let position = line.position();
            assert_eq!(
                db.node_ledger(&n, Some(&position), 2).await,
                memory.node_ledger(&n, Some(&position), 2).await,
                "{backend:?} {step}: ledger of node {i} before {position:?}"
            );
        }
    }
}

/// Applies `op` to both stores and compares what they answer.
async fn step(memory: &MemoryPayoutStore, db: &Database, op: &Op, now: &mut i64) {
    let at = UnixMillis(*now);
    let backend = db.backend();
    macro_rules! same {
        ($call:ident ( $($arg:expr),* )) => {{
            let expected = memory.$call($($arg),*).await;
            let found = db.$call($($arg),*).await;
            assert_eq!(found, expected, "{backend:?} {op:?}");
        }};
    }
    match op {
        Op::Credit { node: n, amount, epoch } => {
            let posting = Posting::epoch_reward(Epoch(*epoch), &[(node(*n), MicroUsdt(*amount))]);
            match posting {
                Ok(posting) => same!(apply_posting(&posting, at)),
                Err(error) => panic!("{error}"),
            }
        }
        Op::Session { node: n, revenue, id } => {
            // A zero revenue is not a posting.
            if let Ok(posting) =
                Posting::session_revenue(&format!("s{id}"), node(*n), MicroUsdt(*revenue))
            {
                same!(apply_posting(&posting, at));
                same!(posting(posting.key()));
            }
        }
        Op::PayoutPosting { payout } => {
            // Payout postings are refused through the ledger port.
            let id = pick(memory, *payout).await;
            let posting = Posting::payout_release(&id, node(0), MicroUsdt(1)).unwrap();
            same!(apply_posting(&posting, at));
        }
        Op::Create { node: n, key, requested, address: has, max_retries } => {
            let request = NewPayout {
                node: node(*n),
                origin: if *key == 0 { Origin::Auto } else { Origin::Withdrawal },
                idempotency_key: format!("wd:k{key}"),
                requested: requested.map(MicroUsdt),
                to_address: has.then(|| address(2)),
                limits: PayoutLimits::default(),
                max_retries: *max_retries,
                now: at,
            };
            same!(create_payout(&request));
        }
        Op::Claim { batch, owner, max_count, max_per_node } => {
            let request = ClaimRequest {
                batch_size: *batch,
                lease_owner: format!("w{owner}"),
                lease_until: at.saturating_add_ms(60_000),
                caps: DailyCaps { max_count: *max_count, max_per_node: *max_per_node },
                now: at,
            };
            same!(claim(&request));
        }
        Op::Unclaim { payout, owner, how } => {
            let id = pick(memory, *payout).await;
            let what = match how {
                0 => Unclaim::Fail { code: "BAD_ADDRESS".to_owned() },
                1 => Unclaim::Retry { code: "HOT_WALLET_LOW".to_owned() },
                _ => Unclaim::SignFailed {
                    code: "SIGNING_FAILED".to_owned(),
                    max_failures: 2,
                    message: "signer unavailable".to_owned(),
                },
            };
            same!(unclaim(&id, &format!("w{owner}"), &what, at));
        }
        Op::Sign { payout, owner, skew, tag } => {
            let id = pick(memory, *payout).await;
            let next = memory.get(&id).await.map(|p| p.attempt_count).unwrap_or(0) + 1;
            let attempt_no = (next + skew).saturating_sub(1).max(1);
            same!(record_signed(&id, &format!("w{owner}"), attempt_no, &transfer(*tag), at));
        }
        Op::Broadcast { payout, tag } => {
            let id = pick(memory, *payout).await;
            let txid = txid(memory, &id, *tag).await;
            same!(begin_broadcast(&id, &txid, at));
        }
        Op::Sent { payout, tag } => {
            let id = pick(memory, *payout).await;
            let txid = txid(memory, &id, *tag).await;
            same!(mark_sent(&id, &txid, at));
        }
        Op::Confirm { payout, tag } => {
            let id = pick(memory, *payout).await;
            let txid = txid(memory, &id, *tag).await;
            let receipt = Receipt { block: 7, energy_used: 65_000, fee_sun: 13_000_000 };
            same!(finalize_confirmed(&id, &txid, &receipt, at));
        }
        Op::End { payout, tag, how, retryable } => {
            let id = pick(memory, *payout).await;
            let txid = txid(memory, &id, *tag).await;
            let end = match how {
                0 => AttemptEnd::Reverted {
                    code: "OUT_OF_ENERGY".to_owned(),
                    block: 9,
                    energy_used: 100_000,
                    fee_sun: 20_000_000,
                },
                1 => AttemptEnd::Rejected { code: "TAPOS_ERROR".to_owned(), retryable: *retryable },
                _ => AttemptEnd::Expired,
            };
            same!(finalize_failed_or_retry(&id, &txid, &end, at));
        }
        Op::Mismatch { payout, tag } => {
            let id = pick(memory, *payout).await;
            let txid = txid(memory, &id, *tag).await;
            same!(mark_chain_mismatch(&id, &txid, at));
        }
        Op::Resolve { payout, settle } => {
            let id = pick(memory, *payout).await;
            let resolution = if *settle {
                lucid_payouts::store::Resolution::Settle
            } else {
                lucid_payouts::store::Resolution::Release
            };
            same!(resolve_chain_mismatch(&id, resolution, at));
        }
        Op::Cancel { payout } => {
            let id = pick(memory, *payout).await;
            same!(cancel(&id, at));
        }
        Op::ReleaseLeases => same!(release_expired_leases(at)),
        Op::Advance { ms } => *now += ms,
    }
}

/// I8, I9, I11, I12, I16, I20 on SQL: random sequences of postings, creations, claims,
/// signatures, broadcasts, confirmations, failures, cancels and lease releases, with time
/// moving, give the same answer from `MemoryPayoutStore` and from the SQL store at every step,
/// and the same ledger, payouts, attempts and balances after every step, on both backends.
#[test]
fn memory_and_sql_stores_agree_after_every_step() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let backends = runtime.block_on(backends());
    let config =
        Config { cases: 24, max_shrink_iters: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op(), 1..48);
    runner
        .run(&strategy, |ops| {
            for (backend, shared) in &backends {
                runtime.block_on(async {
                    let (_guard, db) = fresh(*backend, shared.as_deref()).await;
                    let memory = MemoryPayoutStore::new();
                    // Some money to pay out from the start.
                    let seed = Posting::epoch_reward(
                        Epoch(100),
                        &[(node(0), usdt(50)), (node(1), usdt(20_000))],
                    )
                    .unwrap();
                    memory.apply_posting(&seed, UnixMillis(T0)).await.unwrap();
                    db.apply_posting(&seed, UnixMillis(T0)).await.unwrap();
                    let mut now = T0;
                    for (index, op) in ops.iter().enumerate() {
                        step(&memory, &db, op, &mut now).await;
                        agree(&memory, &db, &format!("after op {index} {op:?}")).await;
                    }
                    db.close().await;
                });
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The processor over SQL.

/// A SQL store as a crash harness: a crash drops the `Database` (every pool and connection of
/// the dead process) and the restarted process opens it again from the same URL.
struct SqlHarness {
    url: String,
    clock: Arc<lucid_core::clock::ManualClock>,
    db: Mutex<Database>,
    _guard: Option<TestDb>,
}

impl SqlHarness {
    async fn new(backend: Backend, shared: Option<&TestDb>) -> Arc<SqlHarness> {
        let (guard, db) = fresh(backend, shared).await;
        let (url, clock) = match (&guard, shared) {
            (Some(t), _) | (None, Some(t)) => (t.url.clone(), t.clock.clone()),
            (None, None) => unreachable!("fresh always names a database"),
        };
        Arc::new(SqlHarness { url, clock, db: Mutex::new(db), _guard: guard })
    }

    fn db(&self) -> Database {
        self.db.lock().unwrap().clone()
    }

    /// Another handle on the same database (for SQLite: its own writer connection).
    async fn open_handle(&self) -> Database {
        Database::open(&self.url, self.clock.clone()).await.unwrap()
    }
}

#[async_trait]
impl CrashableStore for SqlHarness {
    fn payouts(&self) -> Arc<dyn PayoutStore> {
        Arc::new(self.db())
    }
    fn ledger(&self) -> Arc<dyn LedgerStore> {
        Arc::new(self.db())
    }
    async fn crash_and_reopen(&self) {
        let reopened = Database::open(&self.url, self.clock.clone()).await.unwrap();
        // The dead process's handle goes without a clean close: whatever it held is dropped.
        let dead = std::mem::replace(&mut *self.db.lock().unwrap(), reopened);
        drop(dead);
    }
    async fn audit(&self) -> Result<(), String> {
        self.db().audit_ledger_and_payouts().await.map_err(|e| e.to_string())?
    }
}

/// How many seeds the SQL crash matrix runs (`LUCID_SQL_CRASH_SEEDS`, default 3; each seed is
/// one crash run per step boundary of its world, about 17 runs).
fn sql_crash_seeds() -> u64 {
    std::env::var("LUCID_SQL_CRASH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

/// I13 on SQL: the processor's crash matrix (`lucid_payouts::testing::crash_matrix`, the same
/// runner and checks as the in-memory matrix) with the store a real database that is dropped
/// and reopened from its URL at every crash, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_matrix_over_sql_reopens_the_database_at_every_crash() {
    for (backend, shared) in backends().await {
        let seeds = sql_crash_seeds();
        let report = crash_matrix(0..seeds, || {
            let shared = shared.clone();
            async move {
                let harness: Arc<dyn CrashableStore> =
                    SqlHarness::new(backend, shared.as_deref()).await;
                harness
            }
        })
        .await;
        for boundary in ["claim", "record_signed", "begin_broadcast", "broadcast", "mark_sent"] {
            assert!(report.hits.contains_key(boundary), "{backend:?}: {:?}", report.hits);
        }
        assert!(report.crash_runs >= seeds * 5, "{backend:?}: {report:?}");
        report_runs(backend, report.crash_runs);
    }
}

#[expect(clippy::print_stderr, reason = "the size of the SQL crash matrix is reported")]
fn report_runs(backend: Backend, runs: u64) {
    eprintln!("{backend:?}: {runs} crash runs over SQL");
}

/// I15 on SQL: four workers (separate tasks, separate claims; on SQLite separate handles on the
/// one file) over one database never send a payout twice, and settle or release each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_concurrent_workers_over_one_database_never_send_twice() {
    for (backend, shared) in backends().await {
        for seed in 0..2u64 {
            let harness = SqlHarness::new(backend, shared.as_deref()).await;
            let mut rng = Rng::new(seed);
            let payouts: Vec<(u64, u64)> =
                (0..16).map(|_| (rng.below(4), 10 + rng.below(500))).collect();
            let chain = FakeChain::new(seed, 30, 2);
            chain.set_status_error_percent(5);
            let world = Arc::new(World::new(harness.clone(), chain, &payouts, 3).await);
            let mut handles = Vec::new();
            let clock = Arc::new(AtomicI64::new(T0 + 1_000));
            let mut tasks = Vec::new();
            for worker in 0..4 {
                let (world, clock) = (world.clone(), clock.clone());
                // Each worker its own handle: on SQLite its own writer connection on the file.
                let store: Arc<dyn PayoutStore> = match backend {
                    Backend::Sqlite => {
                        let handle = harness.open_handle().await;
                        handles.push(handle.clone());
                        Arc::new(handle)
                    }
                    Backend::Postgres => world.store(),
                };
                tasks.push(tokio::spawn(async move {
                    let cfg = ProcessorConfig { batch_size: 3, ..config() };
                    let mut processor = lucid_payouts::processor::Processor::new(
                        store,
                        world.chain.clone(),
                        cfg,
                        format!("worker-{worker}"),
                    );
                    for _ in 0..MAX_STEPS {
                        let now = clock.fetch_add(STEP_MS / 4, Ordering::SeqCst);
                        world.chain.advance_to(UnixMillis(now));
                        if let Err(error) = processor.step(UnixMillis(now)).await {
                            assert!(matches!(error, lucid_payouts::Error::Rail { .. }), "{error}");
                        }
                        world.check_always().await;
                        if world.all_terminal().await {
                            break;
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            for handle in handles {
                handle.close().await;
            }
            assert!(world.all_terminal().await, "{backend:?}: {:?}", world.statuses().await);
            world.check_final(config().dead_margin_ms).await;
            for (_, txid) in world.chain.broadcasts() {
                let payout = world.chain.payout_of(&txid).unwrap();
                let attempts = world.store().attempts(&payout).await.unwrap();
                assert!(attempts.iter().any(|a| a.transfer.txid == txid), "{backend:?}");
            }
        }
    }
}

/// I9 on SQL: concurrent withdrawals, cancels and two processing workers over one database;
/// at every sample and at the end `earned == available + reserved + paid` with `available ≥
/// 0` for every node, `paid + reserved ≤ earned`, and no withdrawal reserves more than was
/// available (the database refuses the overdraft, the store answers `InsufficientBalance`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_plus_reserved_never_exceeds_earned_under_concurrency() {
    for (backend, shared) in backends().await {
        let harness = SqlHarness::new(backend, shared.as_deref()).await;
        let chain = FakeChain::new(11, 20, 1);
        // Four nodes with 100 000 USDT each and no payout yet.
        let world = Arc::new(World::new(harness.clone(), chain, &[], 3).await);
        let clock = Arc::new(AtomicI64::new(T0 + 1_000));
        let mut tasks = Vec::new();
        // Withdrawers: each node asks for random amounts under many keys, some replayed.
        for (index, n) in world.nodes.clone().into_iter().enumerate() {
            let (store, clock) = (world.store(), clock.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(index as u64);
                let mut created = Vec::new();
                for k in 0..40u64 {
                    let now = clock.fetch_add(100, Ordering::SeqCst);
                    let key = format!("c{}", rng.below(30));
                    let gross = usdt(10 + rng.below(9_990));
                    let outcome =
                        store.create_payout(&request(n, &key, Some(gross), now)).await.unwrap();
                    if let CreateOutcome::Created(payout) = outcome {
                        created.push(payout.payout_id);
                    }
                    // Cancel a random earlier one now and then (only pending ones succeed).
                    if k % 3 == 0 && !created.is_empty() {
                        let victim = &created[rng.below(created.len() as u64) as usize];
                        match store.cancel(victim, UnixMillis(now)).await {
                            Ok(_) | Err(lucid_payouts::Error::StateChanged { .. }) => {}
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
            }));
        }
        // Two workers processing what is pending.
        for worker in 0..2 {
            let (world, clock) = (world.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                let mut processor = world.processor(&format!("worker-{worker}"), config());
                for _ in 0..60 {
                    let now = clock.fetch_add(STEP_MS / 2, Ordering::SeqCst);
                    world.chain.advance_to(UnixMillis(now));
                    if let Err(error) = processor.step(UnixMillis(now)).await {
                        assert!(matches!(error, lucid_payouts::Error::Rail { .. }), "{error}");
                    }
                }
            }));
        }
        // A sampler checking I9 while everything runs.
        {
            let world = world.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    for n in &world.nodes {
                        let b = world.store().balance(n).await.unwrap();
                        assert_eq!(b.earned, b.available + b.reserved + b.paid, "{b:?}");
                        assert!(b.available >= 0 && b.paid + b.reserved <= b.earned, "{b:?}");
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        world.check_always().await;
        for n in &world.nodes {
            let b = world.store().balance(n).await.unwrap();
            assert_eq!(b.earned, usdt(100_000).0 as i64, "{backend:?}");
            assert_eq!(b.earned, b.available + b.reserved + b.paid, "{backend:?} {b:?}");
            assert!(b.available >= 0, "{backend:?} {b:?}");
        }
    }
}

/// A restart keeps the ledger, the payouts and their attempts exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_ledger_and_payouts() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let (a, b) = (node(1), node(2));
        let credit = Posting::epoch_reward(Epoch(3), &[(a, usdt(500)), (b, usdt(40))]).unwrap();
        db.apply_posting(&credit, UnixMillis(T0)).await.unwrap();
        let session = Posting::session_revenue("s1", b, usdt(10)).unwrap();
        db.apply_posting(&session, UnixMillis(T0)).await.unwrap();
        let first = match db.create_payout(&request(a, "one", Some(usdt(100)), T0)).await.unwrap() {
            CreateOutcome::Created(p) => p,
            other => panic!("{other:?}"),
        };
        db.create_payout(&request(b, "two", None, T0 + 1)).await.unwrap();
        let claim = ClaimRequest {
            batch_size: 1,
            lease_owner: "w".to_owned(),
            lease_until: UnixMillis(T0 + 60_000),
            caps: DailyCaps::default(),
            now: UnixMillis(T0 + 2),
        };
        assert_eq!(db.claim(&claim).await.unwrap().len(), 1);
        db.record_signed(&first.payout_id, "w", 1, &transfer(7), UnixMillis(T0 + 3)).await.unwrap();
        db.begin_broadcast(&first.payout_id, &[7; 32], UnixMillis(T0 + 4)).await.unwrap();
        let before = (
            db.ledger_postings().await.unwrap(),
            db.ledger_balances().await.unwrap(),
            db.list(None).await.unwrap(),
            db.attempts(&first.payout_id).await.unwrap(),
            db.balance(&a).await.unwrap(),
            db.balance(&b).await.unwrap(),
        );
        db.close().await;
        let reopened = test_db.open().await.unwrap();
        let after = (
            reopened.ledger_postings().await.unwrap(),
            reopened.ledger_balances().await.unwrap(),
            reopened.list(None).await.unwrap(),
            reopened.attempts(&first.payout_id).await.unwrap(),
            reopened.balance(&a).await.unwrap(),
            reopened.balance(&b).await.unwrap(),
        );
        assert_eq!(after, before, "{backend:?}");
        assert_eq!(after.2.len(), 2);
        assert_eq!(after.2[0].status, PayoutStatus::Signed);
        assert_eq!(after.3[0].broadcasts, 1);
        audit(&reopened).await;
        // Replays after the restart change nothing.
        assert_eq!(
            reopened.apply_posting(&credit, UnixMillis(T0 + 9)).await.unwrap(),
            lucid_payouts::ledger::Applied::AlreadyPosted
        );
        assert!(matches!(
            reopened.create_payout(&request(a, "one", Some(usdt(100)), T0 + 9)).await.unwrap(),
            CreateOutcome::Replayed(_)
        ));
        reopened.close().await;
    }
}

/// The schema refuses by itself what the ledger and payout rules refuse, whatever writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_refuses_what_the_money_rules_refuse() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let a = node(1);
        let credit = Posting::epoch_reward(Epoch(1), &[(a, usdt(100))]).unwrap();
        db.apply_posting(&credit, UnixMillis(T0)).await.unwrap();
        let payout = match db.create_payout(&request(a, "x", Some(usdt(20)), T0)).await.unwrap() {
            CreateOutcome::Created(p) => p,
            other => panic!("{other:?}"),
        };
        let claim = ClaimRequest {
            batch_size: 1,
            lease_owner: "w".to_owned(),
            lease_until: UnixMillis(T0 + 60_000),
            caps: DailyCaps::default(),
            now: UnixMillis(T0 + 2),
        };
        db.claim(&claim).await.unwrap();
        db.record_signed(&payout.payout_id, "w", 1, &transfer(3), UnixMillis(T0 + 3))
            .await
            .unwrap();
        let id = &payout.payout_id;
        let node_account = format!("node:{a}");
        let blob = |bytes: &[u8]| match backend {
            Backend::Sqlite => format!("X'{}'", lucid_core::ids::to_hex(bytes)),
            Backend::Postgres => format!("'\\x{}'::bytea", lucid_core::ids::to_hex(bytes)),
        };
        let payout_row = |pid: &str, key: &str, gross: i64, fee: i64, net: i64, status: &str| {
            format!(
                "INSERT INTO payouts (payout_id, node_id, origin, idempotency_key, gross, fee, net, \
                 to_address, status, attempt_count, max_retries, created_at, updated_at) VALUES \
                 ('{pid}', {}, 'withdrawal', '{key}', {gross}, {fee}, {net}, {}, '{status}', 0, 3, 1, 1)",
                blob(a.as_bytes()),
                blob(&address(1)),
            )
        };
        let checks: Vec<(&str, String)> = vec![
            (
                "a node balance below zero",
                format!("UPDATE ledger_accounts SET balance = -1 WHERE account = '{node_account}'"),
            ),
            ("in_flight below zero", "UPDATE ledger_accounts SET balance = -5 WHERE account = 'in_flight'".to_owned()),
            (
                "an account of unknown kind",
                "INSERT INTO ledger_accounts (account, kind, balance) VALUES ('bank', 'bank', 0)".to_owned(),
            ),
            (
                "a duplicate posting key",
                "INSERT INTO ledger_postings (posting_key, kind, created_at) VALUES ('epoch_reward:1', 'epoch_reward', 0)".to_owned(),
            ),
            (
                "a posting of unknown kind",
                "INSERT INTO ledger_postings (posting_key, kind, created_at) VALUES ('gift:1', 'gift', 0)".to_owned(),
            ),
            (
                "a zero entry",
                "INSERT INTO ledger_entries (posting_key, account, amount) VALUES ('epoch_reward:1', 'treasury', 0)".to_owned(),
            ),
            (
                "a changed entry",
                format!("UPDATE ledger_entries SET amount = 1 WHERE account = '{node_account}'"),
            ),
            ("a deleted entry", "DELETE FROM ledger_entries".to_owned()),
            ("a deleted posting", "DELETE FROM ledger_postings".to_owned()),
            ("a deleted payout", "DELETE FROM payouts".to_owned()),
            ("a negative gross", payout_row("p1", "wd:n", -10, 0, -10, "pending")),
            ("fee + net different from gross", payout_row("p2", "wd:f", 20_000_000, 200_000, 19_000_000, "pending")),
            ("a zero net", payout_row("p3", "wd:z", 100_000, 100_000, 0, "pending")),
            ("a second payout under one idempotency key", payout_row("p4", "wd:x", 20_000_000, 200_000, 19_800_000, "pending")),
            ("an unknown payout status", payout_row("p5", "wd:s", 20_000_000, 200_000, 19_800_000, "paid")),
            (
                "processing without a lease",
                format!("UPDATE payouts SET status = 'processing' WHERE payout_id = '{id}'"),
            ),
            (
                "more than five retries",
                format!("UPDATE payouts SET max_retries = 6 WHERE payout_id = '{id}'"),
            ),
            (
                "a second live attempt",
                format!(
                    "INSERT INTO payout_attempts (payout_id, attempt_no, txid, raw_data, signature, \
                     expiration_ms, fee_limit_sun, status, broadcasts, created_at) VALUES \
                     ('{id}', 2, {}, {}, {}, 1, 1, 'signed', 0, 1)",
                    blob(&[9; 32]),
                    blob(&[1]),
                    blob(&[1]),
                ),
            ),
            (
                "a reused txid",
                format!(
                    "INSERT INTO payout_attempts (payout_id, attempt_no, txid, raw_data, signature, \
                     expiration_ms, fee_limit_sun, status, broadcasts, created_at) VALUES \
                     ('{id}', 2, {}, {}, {}, 1, 1, 'expired', 0, 1)",
                    blob(&[3; 32]),
                    blob(&[1]),
                    blob(&[1]),
                ),
            ),
            (
                "a negative fee limit",
                format!("UPDATE payout_attempts SET fee_limit_sun = -1 WHERE payout_id = '{id}'"),
            ),
        ];
        let before = (db.ledger_postings().await.unwrap(), db.list(None).await.unwrap());
        for (what, sql) in &checks {
            match raw(&test_db, sql).await {
                Ok(changed) => panic!("{backend:?}: {what}: accepted, {changed} rows changed"),
                Err(error) => assert!(
                    error.as_database_error().is_some(),
                    "{backend:?}: {what}: not refused by the database: {error}"
                ),
            }
        }
        let after = (db.ledger_postings().await.unwrap(), db.list(None).await.unwrap());
        assert_eq!(after, before, "{backend:?}");
        audit(&db).await;
        db.close().await;
    }
}

/// The automatic sweep on SQL: two sweeps of one period running concurrently and a third one
/// replayed later create one payout per node, each for `min(available, maximum)`; the next
/// period pays what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_replays_create_nothing_twice() {
    use lucid_payouts::sweep::{SweepSettings, sweep};
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let (a, b, c) = (node(1), node(2), node(3));
        let credit =
            Posting::epoch_reward(Epoch(1), &[(a, usdt(25_000)), (b, usdt(40)), (c, usdt(5))])
                .unwrap();
        db.apply_posting(&credit, UnixMillis(T0)).await.unwrap();
        let settings = SweepSettings {
            genesis: UnixMillis(T0),
            interval_ms: 3_600_000,
            limits: lucid_payouts::payout::PayoutLimits::default(),
            max_retries: 3,
        };
        let addresses = |_: &NodeId| Some(address(5));
        let now = UnixMillis(T0 + 3 * 3_600_000 + 17);
        let other = test_db.open().await.unwrap();
        let (first, second) = tokio::join!(
            sweep(&db, &db, &addresses, &settings, now),
            sweep(&other, &other, &addresses, &settings, now)
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.created.len() + second.created.len(), 2, "{backend:?}");
        let later =
            sweep(&db, &db, &addresses, &settings, now.saturating_add_ms(3_000_000)).await.unwrap();
        assert!(later.created.is_empty(), "{backend:?}: {later:?}");
        let payouts = db.list(None).await.unwrap();
        let mut grosses: Vec<(NodeId, u64, String)> = payouts
            .iter()
            .map(|p| (p.node, p.amounts.gross.0, p.idempotency_key.clone()))
            .collect();
        grosses.sort();
        let mut expected =
            vec![(a, usdt(10_000).0, "auto:3".to_owned()), (b, usdt(40).0, "auto:3".to_owned())];
        expected.sort();
        assert_eq!(grosses, expected, "{backend:?}");
        let next =
            sweep(&db, &db, &addresses, &settings, UnixMillis(T0 + 4 * 3_600_000)).await.unwrap();
        assert_eq!((next.key.as_str(), next.created.len()), ("auto:4", 1), "{backend:?}");
        audit(&db).await;
        other.close().await;
        db.close().await;
    }
}

/// An administrator's resolve of a `CHAIN_MISMATCH` payout on both backends: refused for a
/// payout that is not flagged, then settle (confirmed, `payout_settle`) or release (failed,
/// `payout_release`) in one commit, once; a second resolve changes nothing, and a restart keeps
/// the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_mismatch_is_resolved_once_by_settle_or_release() {
    use lucid_payouts::store::Resolution;
    for resolution in Resolution::ALL {
        for (test_db, db) in databases().await {
            let backend = test_db.backend;
            let a = node(1);
            let credit = Posting::epoch_reward(Epoch(1), &[(a, usdt(100))]).unwrap();
            db.apply_posting(&credit, UnixMillis(T0)).await.unwrap();
            let payout = match db.create_payout(&request(a, "mm", Some(usdt(50)), T0)).await {
                Ok(CreateOutcome::Created(p)) => p,
                other => panic!("{other:?}"),
            };
            let id = payout.payout_id.clone();
            let refused = db.resolve_chain_mismatch(&id, resolution, UnixMillis(T0 + 1)).await;
            assert!(
                matches!(refused, Err(lucid_payouts::Error::AttemptRefused { .. })),
                "{backend:?} {refused:?}"
            );
            let claim = ClaimRequest {
                batch_size: 1,
                lease_owner: "w".to_owned(),
                lease_until: UnixMillis(T0 + 60_000),
                caps: DailyCaps::default(),
                now: UnixMillis(T0 + 2),
            };
            assert_eq!(db.claim(&claim).await.unwrap().len(), 1);
            db.record_signed(&id, "w", 1, &transfer(4), UnixMillis(T0 + 3)).await.unwrap();
            db.begin_broadcast(&id, &[4; 32], UnixMillis(T0 + 4)).await.unwrap();
            db.mark_sent(&id, &[4; 32], UnixMillis(T0 + 5)).await.unwrap();
            let refused = db.resolve_chain_mismatch(&id, resolution, UnixMillis(T0 + 6)).await;
            assert!(refused.is_err(), "{backend:?}: sent but not flagged");
            db.mark_chain_mismatch(&id, &[4; 32], UnixMillis(T0 + 7)).await.unwrap();
            let resolved =
                db.resolve_chain_mismatch(&id, resolution, UnixMillis(T0 + 8)).await.unwrap();
            let balance = db.balance(&a).await.unwrap();
            let (status, paid, available) = match resolution {
                Resolution::Settle => (PayoutStatus::Confirmed, 50_000_000, 50_000_000),
                Resolution::Release => (PayoutStatus::Failed, 0, 100_000_000),
            };
            assert_eq!(resolved.status, status, "{backend:?}");
            assert_eq!((balance.paid, balance.available, balance.reserved), (paid, available, 0));
            let attempts = db.attempts(&id).await.unwrap();
            assert_eq!(attempts.len(), 1);
            assert!(!attempts[0].status.is_live());
            assert_eq!(attempts[0].result_code.as_deref(), Some(resolution.attempt_code()));
            let again = db.resolve_chain_mismatch(&id, resolution, UnixMillis(T0 + 9)).await;
            assert!(again.is_err(), "{backend:?}: resolved twice");
            assert_eq!(db.balance(&a).await.unwrap(), balance);
            audit(&db).await;
            db.close().await;
            let reopened = test_db.open().await.unwrap();
            assert_eq!(reopened.get(&id).await.unwrap().status, status);
            assert_eq!(reopened.balance(&a).await.unwrap(), balance);
            reopened.close().await;
        }
    }
}
