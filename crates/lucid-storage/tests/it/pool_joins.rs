//! Group commit of accepted Joins (`PoolStore::log_joins`) on both backends: each Join of a
//! batch is checked against the store as the Joins before it left it (duplicates, a seat already
//! asked for, an unknown pool, the cap), exactly as the in-memory store answers; a failing Join
//! spoils nothing else; concurrent batches fill every pool to exactly `max_nodes`; what a batch
//! answered is what a restart reads back, and a batch dropped before its commit leaves nothing;
//! concurrent batches over overlapping pools never deadlock, and a batch that the database
//! aborts as a deadlock victim is run again rather than refusing its Joins.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use lucid_core::message::Message as _;
use lucid_core::{PoolId, Slot, UnixMillis};
use lucid_pools::log::{SignedOp, apply_logged};
use lucid_pools::store::{JoinAdmission, PoolStore};
use lucid_pools::test_support::{accepted, network, pool_id, signed};
use lucid_pools::{AcceptedOp, MemoryPoolStore, Op, PoolOp, RejectReason};

use super::*;

/// The slot the Joins are signed in (the Creates of slot 10 took effect at 13).
const JOIN_SLOT: u64 = 14;

/// A Join of `pool` by test key `key` (any index: more keys than the 200 of `test_support`).
fn join_by(key: u64, pool: PoolId) -> SignedOp {
    let key = testing::key(key);
    let ts = UnixMillis(1_704_067_200_000 + 14 * 120_000 + 1_000);
    let op = PoolOp { node: key.node_id(), slot: Slot(JOIN_SLOT), ts, op: Op::Join { pool } };
    let message = op.sign(&network(), &key);
    SignedOp { accepted: AcceptedOp::new(op, &network()), message }
}

/// Creates pool `i` (founder test node `i`, slot 10, `max_nodes`) and applies it (slot 13).
async fn created(
    store: &dyn PoolStore,
    founders: std::ops::Range<usize>,
    max_nodes: u8,
) -> Vec<PoolId> {
    let mut pools = Vec::new();
    for i in founders {
        let name = format!("pool-{i}");
        let create = signed(&accepted(i, 10, Op::Create { name: name.clone(), max_nodes }));
        store.log_op(&create).await.unwrap();
        pools.push(pool_id(i, 10, &name));
    }
    apply_logged(store, Slot(13)).await.unwrap();
    pools
}

/// The outcomes of a batch, with errors as their text (errors are not comparable).
fn outcomes(
    answered: Vec<Result<JoinAdmission, lucid_pools::Error>>,
) -> Vec<Result<JoinAdmission, String>> {
    answered.into_iter().map(|o| o.map_err(|e| e.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_join_of_a_batch_is_checked_after_the_ones_before_it_as_in_memory() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let memory = MemoryPoolStore::new();
        let pools = created(&db, 0..1, 5).await;
        assert_eq!(created(&memory, 0..1, 5).await, pools);
        let pool = pools[0];
        let unknown = pool_id(9, 10, "never-created");
        let mut batch: Vec<SignedOp> = (300..304).map(|k| join_by(k, pool)).collect();
        // The first Join again, a fifth and sixth member, the founder, an unknown pool, and an
        // op that is no Join (a caller bug, reported for that op alone).
        batch.push(batch[0].clone());
        batch.push(join_by(304, pool));
        batch.push(join_by(305, pool));
        batch.push(signed(&accepted(0, JOIN_SLOT, Op::Join { pool })));
        batch.push(join_by(306, unknown));
        batch.push(signed(&accepted(1, JOIN_SLOT, Op::Leave { pool })));
        batch.push(join_by(307, pool));
        let answered = outcomes(db.log_joins(&batch).await.unwrap());
        let logged = Ok(JoinAdmission::Logged);
        let full = Ok(JoinAdmission::Refused(RejectReason::PoolFull));
        assert_eq!(answered[..4], [logged.clone(), logged.clone(), logged.clone(), logged]);
        assert_eq!(answered[4], Ok(JoinAdmission::Duplicate), "{backend:?}");
        assert_eq!(answered[5..7], [full.clone(), full.clone()], "1 seat + 4 waiting = 5");
        assert_eq!(answered[7], Ok(JoinAdmission::Refused(RejectReason::AlreadyInPool)));
        assert_eq!(answered[8], Ok(JoinAdmission::Refused(RejectReason::PoolNotFound)));
        assert!(answered[9].is_err(), "{backend:?}: {:?}", answered[9]);
        assert_eq!(answered[10], full, "{backend:?}: the failed op spoiled nothing after it");
        // The in-memory store answers the same, error included.
        let in_memory = outcomes(memory.log_joins(&batch).await.unwrap());
        assert_eq!(
            in_memory.iter().map(Result::is_ok).collect::<Vec<_>>(),
            answered.iter().map(Result::is_ok).collect::<Vec<_>>()
        );
        let ok = |v: &[Result<JoinAdmission, String>]| {
            v.iter().filter_map(|o| o.clone().ok()).collect::<Vec<_>>()
        };
        assert_eq!(ok(&in_memory), ok(&answered), "{backend:?}");
        // The same batch again: every Join that was logged is a duplicate, nothing else changes.
        let again = outcomes(db.log_joins(&batch[..4]).await.unwrap());
        assert!(again.iter().all(|o| *o == Ok(JoinAdmission::Duplicate)), "{again:?}");
        // A restart reads back exactly the four logged Joins, each with its `joining` row.
        db.close().await;
        let db = test_db.open().await.unwrap();
        let mut expected: Vec<SignedOp> = batch[..4].to_vec();
        expected.sort_by_key(SignedOp::digest);
        assert_eq!(db.pending_ops().await.unwrap(), expected, "{backend:?}");
        assert_eq!(db.pending_joins(&pool).await.unwrap(), 4);
        // At their effect slot they take the four free seats.
        apply_logged(&db, Slot(JOIN_SLOT + 3)).await.unwrap();
        assert_eq!(db.get_pool(&pool).await.unwrap().unwrap().pool.seats, 5);
        db.audit().await.unwrap();
        db.close().await;
    }
}

/// 500 Joins of distinct nodes into 3 pools of 100, in 25 concurrent batches of 20 over several
/// connections: every pool ends with exactly 99 waiting Joins (plus its founder's seat), each
/// Join answered `Logged` is in the log after a restart and no refused one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_fill_every_pool_to_exactly_max_nodes() {
    const JOINS: u64 = 500;
    const BATCH: usize = 20;
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let pools = created(&db, 0..3, 100).await;
        let joins: Vec<SignedOp> =
            (0..JOINS).map(|k| join_by(1_000 + k, pools[(k % 3) as usize])).collect();
        let handles = handles_of(&test_db, &db).await;
        let mut tasks = tokio::task::JoinSet::new();
        for (index, chunk) in joins.chunks(BATCH).enumerate() {
            let store = handles[index % handles.len()].clone();
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                let answered = store.log_joins(&chunk).await.unwrap();
                chunk.into_iter().zip(answered).map(|(j, a)| (j, a.unwrap())).collect::<Vec<_>>()
            });
        }
        let mut logged: BTreeMap<PoolId, Vec<SignedOp>> = BTreeMap::new();
        while let Some(answers) = tasks.join_next().await {
            for (join, answer) in answers.unwrap() {
                let Op::Join { pool } = join.accepted.op.op else { unreachable!() };
                match answer {
                    JoinAdmission::Logged => logged.entry(pool).or_default().push(join),
                    JoinAdmission::Refused(RejectReason::PoolFull) => {}
                    other => panic!("{backend:?}: unexpected {other:?}"),
                }
            }
        }
        for pool in &pools {
            assert_eq!(logged[pool].len(), 99, "{backend:?}");
            assert_eq!(db.pending_joins(pool).await.unwrap(), 99, "{backend:?}");
        }
        db.close().await;
        let db = test_db.open().await.unwrap();
        let mut expected: Vec<SignedOp> = logged.into_values().flatten().collect();
        expected.sort_by_key(SignedOp::digest);
        let mut pending = db.pending_ops().await.unwrap();
        pending.sort_by_key(SignedOp::digest);
        assert_eq!(pending, expected, "{backend:?}: the log holds exactly the answered Joins");
        apply_logged(&db, Slot(JOIN_SLOT + 3)).await.unwrap();
        for pool in &pools {
            assert_eq!(db.get_pool(pool).await.unwrap().unwrap().pool.seats, 100);
        }
        db.audit().await.unwrap();
        db.close().await;
    }
}

/// More open handles on the same database (SQLite: more writer connections on one file).
async fn handles_of(test_db: &TestDb, db: &Database) -> Vec<Database> {
    let mut all = vec![db.clone()];
    if test_db.backend == Backend::Sqlite {
        for _ in 0..3 {
            all.push(test_db.open().await.unwrap());
        }
    }
    all
}

/// A batch dropped after `polls` polls (before or after its commit, whichever the I/O reached):
/// a batch that did not answer left all or nothing of itself, and one that answered is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_dropped_before_its_commit_leaves_nothing_and_an_answered_one_is_durable() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let pools = created(&db, 0..1, 100).await;
        let mut db = db;
        let mut answered_rounds = 0;
        for (round, polls) in [1usize, 2, 4, 8, 16, 64, 1_000_000].into_iter().enumerate() {
            let batch: Vec<SignedOp> =
                (0..10).map(|k| join_by(2_000 + 10 * round as u64 + k, pools[0])).collect();
            let answered = {
                let mut future = pin!(db.log_joins(&batch));
                let mut context = Context::from_waker(Waker::noop());
                let mut answer = None;
                for _ in 0..polls {
                    if let Poll::Ready(result) = future.as_mut().poll(&mut context) {
                        answer = Some(result.unwrap());
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                answer
                // Dropped here, mid-transaction when unanswered: the process "stops".
            };
            db.close().await;
            db = test_db.open().await.unwrap();
            let log = db.op_log().await.unwrap();
            let present =
                batch.iter().filter(|j| log.iter().any(|l| l.op.digest() == j.digest())).count();
            match answered {
                Some(outcomes) => {
                    answered_rounds += 1;
                    assert!(outcomes.iter().all(|o| *o.as_ref().unwrap() == JoinAdmission::Logged));
                    assert_eq!(present, batch.len(), "{backend:?}: an answered batch is durable");
                }
                None => assert!(
                    present == 0 || present == batch.len(),
                    "{backend:?}: {present} Joins of an unanswered batch"
                ),
            }
            db.audit().await.unwrap();
        }
        assert!(answered_rounds > 0, "{backend:?}: the last round polls until the answer");
        db.close().await;
    }
}

/// What one Join was answered, by which batch.
type Answered = (SignedOp, JoinAdmission);

/// Many concurrent batches over overlapping pools, each naming its pools in its own order (the
/// order that deadlocked PostgreSQL before the pools of a batch were locked up front in
/// ascending id order), with Joins repeated in several batches and nodes asking for two pools
/// in the same slot: no batch fails, and every answer matches the durable state after a restart
/// (a Join answered `Logged` once and only once is in the log with its `joining` row, a
/// `Duplicate` is in the log, nothing else is, no node has two Joins waiting, no pool more than
/// its free seats, a pool that refused `PoolFull` is full).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_over_overlapping_pools_answer_exactly_what_is_durable() {
    const POOLS: usize = 6;
    const MAX_NODES: u8 = 12;
    const BATCHES: usize = 32;
    const BATCH: usize = 16;
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let pools = created(&db, 0..POOLS, MAX_NODES).await;
        // Batch `b` walks the pools from `b` onwards, forwards or backwards; its Joins come from
        // a small set of nodes, so that the same Join, and the same node into another pool,
        // appear in several concurrent batches.
        let batches: Vec<Vec<SignedOp>> = (0..BATCHES)
            .map(|b| {
                (0..BATCH)
                    .map(|i| {
                        let step = if b % 2 == 0 { i } else { POOLS * BATCH - i };
                        let pool = pools[(b + step) % POOLS];
                        let node = 5_000 + ((b * 7 + i * 13) % 120) as u64;
                        join_by(node, pool)
                    })
                    .collect()
            })
            .collect();
        let handles = handles_of(&test_db, &db).await;
        let mut tasks = tokio::task::JoinSet::new();
        for (index, batch) in batches.into_iter().enumerate() {
            let store = handles[index % handles.len()].clone();
            tasks.spawn(async move {
                let answered = store.log_joins(&batch).await.unwrap();
                assert_eq!(answered.len(), batch.len());
                batch.into_iter().zip(answered).map(|(j, a)| (j, a.unwrap())).collect::<Vec<_>>()
            });
        }
        let mut answers: Vec<Answered> = Vec::new();
        while let Some(batch) = tasks.join_next().await {
            answers.extend(batch.unwrap());
        }
        assert_eq!(answers.len(), BATCHES * BATCH);
        for handle in handles.iter().skip(1) {
            handle.close().await;
        }
        db.close().await;
        let db = test_db.open().await.unwrap();

        let durable: BTreeMap<_, SignedOp> =
            db.pending_ops().await.unwrap().into_iter().map(|op| (op.digest(), op)).collect();
        let mut logged: BTreeMap<_, SignedOp> = BTreeMap::new();
        let mut refused_full: std::collections::BTreeSet<PoolId> = Default::default();
        for (join, answer) in &answers {
            let Op::Join { pool } = join.accepted.op.op else { unreachable!() };
            match answer {
                JoinAdmission::Logged => {
                    let twice = logged.insert(join.digest(), join.clone());
                    assert!(twice.is_none(), "{backend:?}: a Join answered Logged twice");
                }
                JoinAdmission::Duplicate => {
                    assert!(durable.contains_key(&join.digest()), "{backend:?}: lost duplicate");
                }
                JoinAdmission::Conflict { existing } => {
                    assert_ne!(*existing, join.message, "{backend:?}");
                    assert!(durable.contains_key(&existing.digest()), "{backend:?}");
                }
                JoinAdmission::Refused(RejectReason::PoolFull) => {
                    refused_full.insert(pool);
                }
                JoinAdmission::Refused(RejectReason::AlreadyInPool) => {
                    let node = join.accepted.op.node;
                    assert!(
                        durable.values().any(|op| op.accepted.op.node == node),
                        "{backend:?}: refused as already in a pool, but nothing of it is logged"
                    );
                }
                other => panic!("{backend:?}: unexpected {other:?}"),
            }
        }
        assert_eq!(
            logged.keys().collect::<Vec<_>>(),
            durable.keys().collect::<Vec<_>>(),
            "{backend:?}: the log holds exactly the Joins answered Logged"
        );
        let mut nodes = std::collections::BTreeSet::new();
        for op in durable.values() {
            assert!(nodes.insert(op.accepted.op.node), "{backend:?}: a node waits for two pools");
        }
        for pool in &pools {
            let waiting =
                logged.values().filter(|j| j.accepted.op.op == Op::Join { pool: *pool }).count();
            assert_eq!(db.pending_joins(pool).await.unwrap(), waiting, "{backend:?}");
            let free = usize::from(MAX_NODES) - 1;
            assert!(waiting <= free, "{backend:?}: {waiting} Joins wait for {free} seats");
            if refused_full.contains(pool) {
                assert_eq!(waiting, free, "{backend:?}: refused PoolFull with room left");
            }
        }
        assert!(!refused_full.is_empty(), "{backend:?}: the pools never filled up");
        apply_logged(&db, Slot(JOIN_SLOT + 3)).await.unwrap();
        let seats: u32 = db.all_pools().await.unwrap().iter().map(|p| p.seats).sum();
        assert_eq!(
            usize::try_from(seats).unwrap(),
            POOLS + logged.len(),
            "{backend:?}: every logged Join took its seat"
        );
        db.audit().await.unwrap();
        db.close().await;
    }
}

/// A batch that PostgreSQL picks as the victim of a real deadlock (another transaction holds
/// the second pool of the batch and then asks for the first, which the batch holds) is rolled
/// back, which lets the other transaction through, and is then run again: it answers both of
/// its Joins `Logged`, and both are durable. A transient conflict is never the refusal of a Join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_chosen_as_a_deadlock_victim_is_run_again_and_answers_what_is_durable() {
    use sqlx::Connection as _;

    for (test_db, db) in databases().await {
        if test_db.backend != Backend::Postgres {
            // SQLite has one writer: a batch holds the whole database and cannot deadlock.
            continue;
        }
        let mut pools = created(&db, 0..2, 10).await;
        pools.sort_by_key(|p| *p.as_bytes());
        let [first, second] = [pools[0], pools[1]];
        let lock = |pool: PoolId| {
            format!(
                "SELECT 1 FROM pools WHERE pool_id = {} FOR UPDATE",
                lit(Backend::Postgres, pool.as_bytes())
            )
        };
        let mut other = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
        // The other transaction never runs the deadlock check itself, so the batch (whose
        // check runs after the default second of waiting) is the victim; a bound on its own
        // wait keeps a broken test from hanging.
        sqlx::query("SET deadlock_timeout = '10min'").execute(&mut other).await.unwrap();
        sqlx::query("SET lock_timeout = '60s'").execute(&mut other).await.unwrap();
        let mut tx = other.begin().await.unwrap();
        sqlx::query(&lock(second)).execute(&mut *tx).await.unwrap();

        let batch = vec![join_by(7_000, first), join_by(7_001, second)];
        let store = db.clone();
        let running = {
            let batch = batch.clone();
            tokio::spawn(async move { store.log_joins(&batch).await })
        };
        // Wait until the batch holds `first` and waits for `second`.
        let mut waits = 0;
        loop {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE NOT l.granted AND a.datname = current_database()",
            )
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            if blocked > 0 {
                break;
            }
            waits += 1;
            assert!(waits < 6_000, "the batch never waited for the locked pool");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Close the cycle: this waits until the batch, as the victim, rolled back.
        sqlx::query(&lock(first)).execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();

        let answered = outcomes(running.await.unwrap().unwrap());
        assert_eq!(answered, vec![Ok(JoinAdmission::Logged), Ok(JoinAdmission::Logged)]);
        db.close().await;
        let db = test_db.open().await.unwrap();
        let mut expected = batch.clone();
        expected.sort_by_key(SignedOp::digest);
        let mut pending = db.pending_ops().await.unwrap();
        pending.sort_by_key(SignedOp::digest);
        assert_eq!(pending, expected);
        assert_eq!(db.pending_joins(&first).await.unwrap(), 1);
        assert_eq!(db.pending_joins(&second).await.unwrap(), 1);
        db.audit().await.unwrap();
        db.close().await;
    }
}

/// The advisory read of a Join (`join_advice`, one statement on SQL) and the keyed ban lookup
/// (`is_banned`) answer, on both backends, exactly what the in-memory store reads through its
/// other methods: a pending duplicate, an unknown pool, a disbanded one, a seated founder, a
/// signer with a Join waiting elsewhere, a banned node, and a free node counting the waiting
/// Joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advice_of_a_join_and_the_ban_lookup_agree_with_the_in_memory_store() {
    use lucid_pools::checks::JoinFacts;
    use lucid_pools::model::Role;
    use lucid_pools::store::JoinAdvice;

    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let memory = MemoryPoolStore::new();
        let stores: [&dyn PoolStore; 2] = [&db, &memory];
        let mut pools = Vec::new();
        for store in stores {
            pools = created(store, 0..3, 5).await;
        }
        let [open, disbanded, other] = [pools[0], pools[1], pools[2]];
        let waiting = join_by(300, open);
        let banned = join_by(301, open);
        let founder = signed(&accepted(0, JOIN_SLOT, Op::Join { pool: open }));
        for store in stores {
            assert_eq!(store.log_joins(std::slice::from_ref(&waiting)).await.unwrap().len(), 1);
            let node = banned.accepted.op.node;
            let seated =
                store.seat(&open, &node, Role::Member, Slot(13), &banned.digest()).await.unwrap();
            assert_eq!(seated, lucid_pools::SeatOutcome::Seated, "{backend:?}");
            store.close_seat(&open, &node, Slot(14), true).await.unwrap();
            store.disband(&disbanded, Slot(14)).await.unwrap();
        }
        let unknown = pool_id(9, 10, "never-created");
        let cases = [
            (waiting.clone(), open),
            (join_by(302, open), open),
            (join_by(302, unknown), unknown),
            (join_by(302, disbanded), disbanded),
            (founder, open),
            (join_by(300, other), other),
            (banned.clone(), open),
            (join_by(301, other), other),
        ];
        let mut answers = Vec::new();
        for (join, pool) in &cases {
            let node = join.accepted.op.node;
            let sql = db.join_advice(pool, &node, &join.digest()).await.unwrap();
            let in_memory = memory.join_advice(pool, &node, &join.digest()).await.unwrap();
            assert_eq!(sql, in_memory, "{backend:?}: {pool} {node}");
            answers.push(sql);
        }
        let open_pool = db.get_pool(&open).await.unwrap().map(|s| s.pool);
        let facts = |seat_requested, banned, pending_joins| JoinFacts {
            seat_requested,
            banned,
            pending_joins,
        };
        assert!(answers[0].pending_duplicate, "{backend:?}");
        assert_eq!(
            answers[1],
            JoinAdvice {
                pending_duplicate: false,
                pool: open_pool.clone(),
                facts: facts(false, false, 1)
            }
        );
        assert_eq!(answers[2], JoinAdvice::default(), "{backend:?}: unknown pool");
        assert_eq!(answers[3].facts, JoinFacts::default(), "{backend:?}: disbanded");
        assert_eq!(answers[4].facts, facts(true, false, 0), "{backend:?}: the founder");
        assert_eq!(answers[5].facts, facts(true, false, 0), "{backend:?}: a Join waits");
        assert_eq!(answers[6].facts, facts(false, true, 0), "{backend:?}: banned");
        assert_eq!(answers[7].facts, facts(false, false, 0), "{backend:?}: banned elsewhere");
        for store in stores {
            let node = banned.accepted.op.node;
            assert!(store.is_banned(&open, &node).await.unwrap(), "{backend:?}");
            assert!(!store.is_banned(&other, &node).await.unwrap(), "{backend:?}");
            assert!(!store.is_banned(&open, &waiting.accepted.op.node).await.unwrap());
        }
        db.close().await;
    }
}

/// On PostgreSQL a concurrent transaction can take a key that no lock of the batch covers: here
/// the signer's `(node, slot)` in the log, through a Join of another pool. The batch's checks
/// in memory cannot see it (it is not committed yet), so its multi-row insert is refused by the
/// unique index once the other transaction commits; the inserts are rolled back to their
/// savepoint and the batch is checked again one Join per savepoint: the Join that lost the race
/// is answered alone, the other is logged, and the answers are exactly what is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_inserts_the_database_refuses_answers_each_join_alone() {
    use sqlx::Connection as _;

    for (test_db, db) in databases().await {
        if test_db.backend != Backend::Postgres {
            // SQLite has one writer: nothing can change under a batch's transaction.
            continue;
        }
        let pools = created(&db, 0..2, 10).await;
        let [first, second] = [pools[0], pools[1]];
        let racing = join_by(8_000, second);
        let lost = join_by(8_000, first);
        let free = join_by(8_001, first);
        let b = |bytes: &[u8]| lit(Backend::Postgres, bytes);
        let insert = format!(
            "INSERT INTO pool_ops (digest, node_id, slot, tag, pool_id, signed_bytes, signature, \
             state) VALUES ({}, {}, {JOIN_SLOT}, {}, {}, {}, {}, 'pending')",
            b(racing.digest().as_bytes()),
            b(racing.accepted.op.node.as_bytes()),
            lucid_pools::OpTag::Join.wire(),
            b(second.as_bytes()),
            b(racing.message.bytes()),
            b(racing.message.signature().as_bytes()),
        );
        let mut other = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
        sqlx::query("SET lock_timeout = '60s'").execute(&mut other).await.unwrap();
        let mut tx = other.begin().await.unwrap();
        sqlx::query(&insert).execute(&mut *tx).await.unwrap();

        let store = db.clone();
        let batch = vec![lost.clone(), free.clone()];
        let running = tokio::spawn(async move { store.log_joins(&batch).await });
        // Wait until the batch's insert waits for the other transaction's key.
        let mut waits = 0;
        loop {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE NOT l.granted AND a.datname = current_database()",
            )
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            if blocked > 0 {
                break;
            }
            waits += 1;
            assert!(waits < 6_000, "the batch never waited for the other transaction");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tx.commit().await.unwrap();

        let answered = outcomes(running.await.unwrap().unwrap());
        assert_eq!(
            answered,
            vec![
                Ok(JoinAdmission::Refused(RejectReason::AlreadyInPool)),
                Ok(JoinAdmission::Logged)
            ]
        );
        db.close().await;
        let db = test_db.open().await.unwrap();
        let mut expected = vec![racing.clone(), free.clone()];
        expected.sort_by_key(SignedOp::digest);
        let mut pending = db.pending_ops().await.unwrap();
        pending.sort_by_key(SignedOp::digest);
        assert_eq!(pending, expected);
        assert_eq!(db.pending_joins(&first).await.unwrap(), 1, "the lost Join left no row");
        db.close().await;
    }
}
