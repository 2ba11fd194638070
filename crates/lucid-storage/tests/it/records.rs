//! `RecordStore` semantics on both backends, checked against `MemoryRecordStore`: tallies with
//! revisions and settlement, write-once schedules and slot results, range reads, concurrent
//! writers, restart, a model test of random operation sequences and the schema backstop.

use lucid_consensus::leader::{
    FallbackAttempt, LeaderReason, NoLeaderReason, Outcome, Recorded, Schedule, SlotResult,
};
use lucid_consensus::records::{MemoryRecordStore, RecordStore, StoredTally, TallyPut};
use lucid_consensus::tally::{Tally, TallyEntry};
use lucid_core::{Digest, EntityId, Epoch, Slot, SlotRange, UnixMillis};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::*;

const ALL: SlotRange = SlotRange { start: Slot(0), end: Slot(u64::MAX) };

fn node(i: u64) -> EntityId {
    EntityId::Node(testing::node(i))
}

fn pool(i: u8) -> EntityId {
    EntityId::Pool(testing::pool(i))
}

fn entry(entity: EntityId, credits: u64, beacon_slots: u64) -> TallyEntry {
    let contributions = match entity {
        EntityId::Pool(_) => {
            let mut split = vec![(testing::node(40), credits / 3), (testing::node(41), credits)];
            split[1].1 -= split[0].1;
            split.sort();
            split
        }
        EntityId::Node(_) => Vec::new(),
    };
    TallyEntry {
        entity,
        rank: None,
        credits,
        relay: credits / 2,
        storage: credits - credits / 2,
        validation: 0,
        beacon_slots,
        density_ppm: lucid_consensus::tally::density_ppm(beacon_slots, 5_040),
        contributions,
    }
}

/// A ranked tally of `epoch`: `variant` picks one of several entry sets (so digests differ).
fn tally(epoch: u64, revision: u32, variant: u8) -> Tally {
    let params = testing::params();
    let entries = match variant % 4 {
        0 => Vec::new(),
        1 => vec![entry(node(1), 500, 4_000), entry(pool(2), 900, 5_040), entry(node(3), 0, 10)],
        2 => vec![
            entry(node(1), 700, 4_000),
            entry(pool(2), 700, 5_040),
            entry(pool(5), 12, 100),
            entry(node(4), i64::MAX as u64, 1_008),
        ],
        _ => (0..40).map(|i| entry(node(100 + i), 10 * (i % 7) + 1, 1_000 + 100 * i)).collect(),
    };
    let window = SlotRange { start: Slot(720 * epoch), end: Slot(720 * epoch + 5_040) };
    Tally::from_entries(&params, Epoch(epoch), window, revision, entries)
}

fn schedule(slot: u64, variant: u8) -> Schedule {
    let digest = Some(Digest::from_bytes([variant; 32]));
    let (tally_digest, outcome) = match variant % 5 {
        0 => (None, Outcome::NoLeader(NoLeaderReason::TallyPending)),
        1 => (digest, Outcome::NoLeader(NoLeaderReason::NoRankedEntity)),
        2 => (
            digest,
            Outcome::Leader {
                primary: node(1),
                fallbacks: vec![pool(2), node(3)],
                reason: LeaderReason::HighestCredits,
            },
        ),
        3 => (
            digest,
            Outcome::Leader {
                primary: pool(4),
                fallbacks: vec![node(5), node(6), pool(7), node(8), pool(9)],
                reason: LeaderReason::RotatedTie,
            },
        ),
        _ => (
            digest,
            Outcome::Leader {
                primary: node(2),
                fallbacks: vec![],
                reason: LeaderReason::CooldownSkip,
            },
        ),
    };
    Schedule { slot: Slot(slot), epoch: Epoch(slot / 720), tally_digest, outcome }
}

fn result(variant: u8) -> SlotResult {
    match variant % 6 {
        0 => SlotResult::Missed,
        1 => SlotResult::Success { winner: node(1) },
        2 => SlotResult::FallbackSuccess {
            winner: pool(2),
            attempt: FallbackAttempt::new(2).unwrap(),
        },
        3 => SlotResult::NoLeader(NoLeaderReason::AllInCooldown),
        4 => SlotResult::Success { winner: pool(3) },
        _ => SlotResult::FallbackSuccess {
            winner: node(4),
            attempt: FallbackAttempt::new(3).unwrap(),
        },
    }
}

/// Two answers of the store agree: equal values, or the same typed refusal.
fn same<T: PartialEq + std::fmt::Debug>(
    got: &Result<T, lucid_consensus::Error>,
    expected: &Result<T, lucid_consensus::Error>,
) -> bool {
    use lucid_consensus::Error as E;
    match (got, expected) {
        (Ok(a), Ok(b)) => a == b,
        (Err(E::TallyConflict { epoch: a }), Err(E::TallyConflict { epoch: b })) => a == b,
        (Err(E::ScheduleConflict { slot: a }), Err(E::ScheduleConflict { slot: b })) => a == b,
        (Err(E::ResultConflict { slot: a }), Err(E::ResultConflict { slot: b })) => a == b,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_back_identical_to_what_was_stored() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        for (epoch, variant) in [(1, 0), (2, 1), (3, 2), (4, 3)] {
            let tally = tally(epoch, 0, variant);
            assert_eq!(db.put_tally(&tally, UnixMillis(77)).await.unwrap(), TallyPut::Stored);
            let back = db.tally(Epoch(epoch)).await.unwrap().unwrap();
            let expected =
                StoredTally { tally: tally.clone(), computed_at: UnixMillis(77), settled_at: None };
            assert_eq!(back, expected, "{backend:?} epoch {epoch}");
            // The digest read back is the digest of the entries read back.
            assert_eq!(
                lucid_consensus::tally::tally_digest(
                    back.tally.epoch,
                    back.tally.window,
                    &back.tally.entries
                ),
                back.tally.digest
            );
        }
        assert!(db.tally(Epoch(9)).await.unwrap().is_none());
        assert!(db.tally(Epoch(u64::MAX)).await.unwrap().is_none());
        for variant in 0..5 {
            let schedule = schedule(1_000 + u64::from(variant), variant);
            assert_eq!(db.insert_schedule(&schedule).await.unwrap(), Recorded::Inserted);
            assert_eq!(
                db.schedule(schedule.slot).await.unwrap(),
                Some(schedule.clone()),
                "{backend:?}"
            );
        }
        assert!(db.schedule(Slot(999)).await.unwrap().is_none());
        assert!(db.schedule(Slot(u64::MAX)).await.unwrap().is_none());
        let mut expected = Vec::new();
        for variant in (0..6).rev() {
            let slot = Slot(2_000 + 3 * u64::from(variant));
            assert_eq!(db.record_result(slot, &result(variant)).await.unwrap(), Recorded::Inserted);
            expected.push((slot, result(variant)));
        }
        expected.reverse();
        assert_eq!(db.results(ALL).await.unwrap(), expected, "{backend:?}");
        let window = SlotRange { start: Slot(2_003), end: Slot(2_012) };
        assert_eq!(db.results(window).await.unwrap(), expected[1..4].to_vec());
        let empty = SlotRange { start: Slot(2_004), end: Slot(2_004) };
        assert!(db.results(empty).await.unwrap().is_empty());
        let far = SlotRange { start: Slot(u64::MAX - 5), end: Slot(u64::MAX) };
        assert!(db.results(far).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tally_revisions_and_settlement_match_the_memory_store() {
    for (test_db, db) in databases().await {
        let memory = MemoryRecordStore::new();
        let steps: Vec<(u32, u8)> = vec![(0, 1), (0, 1), (0, 2), (2, 3), (1, 2), (2, 3), (3, 0)];
        for (step, (revision, variant)) in steps.into_iter().enumerate() {
            let tally = tally(7, revision, variant);
            let at = UnixMillis(step as i64);
            let got = db.put_tally(&tally, at).await;
            let expected = memory.put_tally(&tally, at).await;
            assert!(
                same(&got, &expected),
                "{:?} step {step}: {got:?} vs {expected:?}",
                test_db.backend
            );
            assert_eq!(db.tally(Epoch(7)).await.unwrap(), memory.tally(Epoch(7)).await.unwrap());
        }
        assert!(db.settle_tally(Epoch(7), UnixMillis(50)).await.unwrap());
        assert!(!db.settle_tally(Epoch(7), UnixMillis(51)).await.unwrap());
        assert!(!db.settle_tally(Epoch(8), UnixMillis(51)).await.unwrap());
        assert!(!db.settle_tally(Epoch(u64::MAX), UnixMillis(51)).await.unwrap());
        memory.settle_tally(Epoch(7), UnixMillis(50)).await.unwrap();
        for (revision, variant) in [(4, 1), (3, 0), (0, 2)] {
            let tally = tally(7, revision, variant);
            assert_eq!(db.put_tally(&tally, UnixMillis(60)).await.unwrap(), TallyPut::Settled);
        }
        let stored = db.tally(Epoch(7)).await.unwrap().unwrap();
        assert_eq!(Some(stored.clone()), memory.tally(Epoch(7)).await.unwrap());
        assert_eq!((stored.tally.revision, stored.settled_at), (3, Some(UnixMillis(50))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_results_are_write_once() {
    use lucid_core::{ErrorKind, HasKind};
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let first = schedule(30, 2);
        assert_eq!(db.insert_schedule(&first).await.unwrap(), Recorded::Inserted);
        assert_eq!(db.insert_schedule(&first).await.unwrap(), Recorded::AlreadyPresent);
        for variant in [0, 1, 3, 4] {
            let error = db.insert_schedule(&schedule(30, variant)).await.unwrap_err();
            assert!(
                matches!(error, lucid_consensus::Error::ScheduleConflict { slot: Slot(30) }),
                "{backend:?}: {error:?}"
            );
            assert_eq!(error.kind(), ErrorKind::Internal);
        }
        // Same primary, one fallback fewer: still a different schedule.
        let mut fewer = first.clone();
        if let Outcome::Leader { fallbacks, .. } = &mut fewer.outcome {
            fallbacks.pop();
        }
        assert!(db.insert_schedule(&fewer).await.is_err());
        assert_eq!(db.schedule(Slot(30)).await.unwrap(), Some(first));

        assert_eq!(db.record_result(Slot(30), &result(2)).await.unwrap(), Recorded::Inserted);
        assert_eq!(db.record_result(Slot(30), &result(2)).await.unwrap(), Recorded::AlreadyPresent);
        for variant in [0, 1, 3, 4, 5] {
            let error = db.record_result(Slot(30), &result(variant)).await.unwrap_err();
            assert!(
                matches!(error, lucid_consensus::Error::ResultConflict { slot: Slot(30) }),
                "{backend:?}: {error:?}"
            );
        }
        assert_eq!(db.results(ALL).await.unwrap(), vec![(Slot(30), result(2))]);

        // Beyond BIGINT: refused as invalid input, nothing written.
        let error = db.record_result(Slot(u64::MAX), &result(0)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{backend:?}: {error:?}");
        let error = db.insert_schedule(&schedule(u64::MAX, 0)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{backend:?}: {error:?}");
        let mut beyond = tally(1, 0, 0);
        beyond.epoch = Epoch(u64::MAX);
        let error = db.put_tally(&beyond, UnixMillis(1)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{backend:?}: {error:?}");
        assert_eq!(db.results(ALL).await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_record_each_slot_exactly_once() {
    const WRITERS: u8 = 24;
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        let mut handles = Vec::new();
        for writer in 0..WRITERS {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for slot in 500..510 {
                    // Writers disagree on the result (four candidates) and race on every slot.
                    let mine = result(writer % 4);
                    let outcome = db.record_result(Slot(slot), &mine).await;
                    let schedule_outcome = db.insert_schedule(&schedule(slot, writer % 3)).await;
                    outcomes.push((slot, mine, outcome, writer % 3, schedule_outcome));
                }
                outcomes
            }));
        }
        let mut all = Vec::new();
        for handle in handles {
            all.extend(handle.await.unwrap());
        }
        let stored: std::collections::BTreeMap<Slot, SlotResult> =
            db.results(ALL).await.unwrap().into_iter().collect();
        assert_eq!(stored.len(), 10, "{backend:?}");
        for slot in 500..510 {
            let winner = &stored[&Slot(slot)];
            let stored_schedule = db.schedule(Slot(slot)).await.unwrap().unwrap();
            let mut inserted = (0, 0);
            for (_, mine, outcome, variant, schedule_outcome) in all.iter().filter(|o| o.0 == slot)
            {
                match outcome {
                    Ok(Recorded::Inserted) => {
                        inserted.0 += 1;
                        assert_eq!(mine, winner);
                    }
                    Ok(Recorded::AlreadyPresent) => assert_eq!(mine, winner),
                    Err(lucid_consensus::Error::ResultConflict { slot: s }) => {
                        assert_eq!(s.0, slot);
                        assert_ne!(mine, winner);
                    }
                    Err(error) => panic!("{backend:?}: {error:?}"),
                }
                let mine = schedule(slot, *variant);
                match schedule_outcome {
                    Ok(Recorded::Inserted) => {
                        inserted.1 += 1;
                        assert_eq!(mine, stored_schedule);
                    }
                    Ok(Recorded::AlreadyPresent) => assert_eq!(mine, stored_schedule),
                    Err(lucid_consensus::Error::ScheduleConflict { .. }) => {
                        assert_ne!(mine, stored_schedule)
                    }
                    Err(error) => panic!("{backend:?}: {error:?}"),
                }
            }
            assert_eq!(inserted, (1, 1), "{backend:?} slot {slot}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tally_revisions_end_at_the_highest() {
    const REVISIONS: u32 = 16;
    for (test_db, db) in databases().await {
        let mut handles = Vec::new();
        for revision in (0..REVISIONS).rev() {
            for _copy in 0..2 {
                let db = db.clone();
                handles.push(tokio::spawn(async move {
                    let tally = tally(11, revision, (revision % 4) as u8);
                    db.put_tally(&tally, UnixMillis(i64::from(revision))).await
                }));
            }
        }
        let mut stored = 0;
        for handle in handles {
            match handle.await.unwrap() {
                Ok(TallyPut::Stored) => stored += 1,
                Ok(TallyPut::AlreadyPresent | TallyPut::Outdated) => {}
                other => panic!("{:?}: {other:?}", test_db.backend),
            }
        }
        assert!(stored >= 1);
        let back = db.tally(Epoch(11)).await.unwrap().unwrap();
        assert_eq!(back.tally, tally(11, REVISIONS - 1, ((REVISIONS - 1) % 4) as u8));
        assert_eq!(back.computed_at, UnixMillis(i64::from(REVISIONS - 1)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_survive_a_restart() {
    for (test_db, db) in databases().await {
        db.put_tally(&tally(1, 0, 1), UnixMillis(5)).await.unwrap();
        db.settle_tally(Epoch(1), UnixMillis(6)).await.unwrap();
        db.put_tally(&tally(2, 3, 3), UnixMillis(7)).await.unwrap();
        for variant in 0..5 {
            db.insert_schedule(&schedule(700 + u64::from(variant), variant)).await.unwrap();
            db.record_result(Slot(700 + u64::from(variant)), &result(variant)).await.unwrap();
        }
        let tallies = (db.tally(Epoch(1)).await.unwrap(), db.tally(Epoch(2)).await.unwrap());
        let results = db.results(ALL).await.unwrap();
        db.close().await;
        drop(db);

        let reopened = test_db.open().await.unwrap();
        assert_eq!(
            (reopened.tally(Epoch(1)).await.unwrap(), reopened.tally(Epoch(2)).await.unwrap()),
            tallies,
            "{:?}",
            test_db.backend
        );
        assert_eq!(tallies.0.as_ref().unwrap().settled_at, Some(UnixMillis(6)));
        for variant in 0..5 {
            let slot = 700 + u64::from(variant);
            assert_eq!(reopened.schedule(Slot(slot)).await.unwrap(), Some(schedule(slot, variant)));
        }
        assert_eq!(reopened.results(ALL).await.unwrap(), results);
        // Still frozen and write-once after the restart.
        assert_eq!(
            reopened.put_tally(&tally(1, 5, 2), UnixMillis(8)).await.unwrap(),
            TallyPut::Settled
        );
        assert!(reopened.record_result(Slot(700), &result(1)).await.is_err());
        assert_eq!(
            reopened.record_result(Slot(700), &result(0)).await.unwrap(),
            Recorded::AlreadyPresent
        );
        reopened.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Model-based: random operation sequences through `MemoryRecordStore` and the SQL store.

#[derive(Clone, Debug)]
enum Op {
    PutTally { epoch: u64, revision: u32, variant: u8, at: i64 },
    Settle { epoch: u64, at: i64 },
    InsertSchedule { slot: u64, variant: u8 },
    RecordResult { slot: u64, variant: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..3, 0u32..4, 0u8..4, 0i64..1_000).prop_map(|(epoch, revision, variant, at)| {
            Op::PutTally { epoch, revision, variant, at }
        }),
        (0u64..3, 0i64..1_000).prop_map(|(epoch, at)| Op::Settle { epoch, at }),
        (0u64..6, 0u8..5).prop_map(|(slot, variant)| Op::InsertSchedule { slot, variant }),
        (0u64..6, 0u8..6).prop_map(|(slot, variant)| Op::RecordResult { slot, variant }),
    ]
}

/// Runs one case in its own key space (`base`): records are never deleted, so cases on the same
/// database must not share epochs or slots.
async fn run_model_case(db: &Database, base: u64, ops: &[Op]) {
    let backend = db.backend();
    let memory = MemoryRecordStore::new();
    let epochs = base..base + 3;
    let slots = SlotRange { start: Slot(base * 10), end: Slot(base * 10 + 6) };
    for (step, op) in ops.iter().enumerate() {
        let agree = match op {
            Op::PutTally { epoch, revision, variant, at } => {
                let t = tally(base + epoch, *revision, *variant);
                let got = db.put_tally(&t, UnixMillis(*at)).await;
                let expected = memory.put_tally(&t, UnixMillis(*at)).await;
                same(&got, &expected).then_some(()).ok_or(format!("{got:?} vs {expected:?}"))
            }
            Op::Settle { epoch, at } => {
                let got = db.settle_tally(Epoch(base + epoch), UnixMillis(*at)).await;
                let expected = memory.settle_tally(Epoch(base + epoch), UnixMillis(*at)).await;
                same(&got, &expected).then_some(()).ok_or(format!("{got:?} vs {expected:?}"))
            }
            Op::InsertSchedule { slot, variant } => {
                let s = schedule(slots.start.0 + slot, *variant);
                let (got, expected) =
                    (db.insert_schedule(&s).await, memory.insert_schedule(&s).await);
                same(&got, &expected).then_some(()).ok_or(format!("{got:?} vs {expected:?}"))
            }
            Op::RecordResult { slot, variant } => {
                let (slot, r) = (Slot(slots.start.0 + slot), result(*variant));
                let (got, expected) =
                    (db.record_result(slot, &r).await, memory.record_result(slot, &r).await);
                same(&got, &expected).then_some(()).ok_or(format!("{got:?} vs {expected:?}"))
            }
        };
        assert_eq!(agree, Ok(()), "{backend:?} step {step} {op:?}");
        for epoch in epochs.clone() {
            assert_eq!(
                db.tally(Epoch(epoch)).await.unwrap(),
                memory.tally(Epoch(epoch)).await.unwrap(),
                "{backend:?} step {step} epoch {epoch}"
            );
        }
        for slot in slots.start.0..slots.end.0 {
            assert_eq!(
                db.schedule(Slot(slot)).await.unwrap(),
                memory.schedule(Slot(slot)).await.unwrap(),
                "{backend:?} step {step} slot {slot}"
            );
        }
        assert_eq!(db.results(slots).await.unwrap(), memory.results(slots).await.unwrap());
    }
}

/// Random operation sequences applied to `MemoryRecordStore` and the SQL store: every answer
/// and the whole stored state agree after every step, on both backends.
#[test]
fn memory_and_sql_record_stores_agree_after_every_step() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dbs = runtime.block_on(databases());
    let config =
        Config { cases: 32, max_shrink_iters: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let case = std::sync::atomic::AtomicU64::new(1);
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            // Shrinking reruns cases, so every run gets a fresh key space.
            let base = 100 * case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (_test_db, db) in &dbs {
                runtime.block_on(run_model_case(db, base, &ops));
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The constraint backstop: raw SQL that bypasses the store and breaks a rule must be refused.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_schema_refuses_what_the_domain_refuses() {
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        // Epoch 1 settled, epoch 2 open at revision 2 (ranked entries), slot 40 scheduled with
        // two fallbacks and a result.
        db.put_tally(&tally(1, 0, 1), UnixMillis(1)).await.unwrap();
        db.settle_tally(Epoch(1), UnixMillis(2)).await.unwrap();
        db.put_tally(&tally(2, 2, 2), UnixMillis(3)).await.unwrap();
        db.insert_schedule(&schedule(40, 2)).await.unwrap();
        db.record_result(Slot(40), &result(2)).await.unwrap();
        let before = (
            db.tally(Epoch(1)).await.unwrap(),
            db.tally(Epoch(2)).await.unwrap(),
            db.schedule(Slot(40)).await.unwrap(),
            db.results(ALL).await.unwrap(),
        );

        let n = lit(backend, &[&[1u8][..], testing::node(9).as_bytes()].concat());
        let bad_entity = lit(backend, &[&[3u8][..], testing::node(9).as_bytes()].concat());
        let short_pool = lit(backend, &[2u8; 9]);
        let digest = lit(backend, &[7u8; 32]);
        let entry = |epoch: u64, position: u64, entity: &str, rank: &str, credits: i64| {
            format!(
                "INSERT INTO tally_entries (epoch, position, entity, rank, credits, relay, \
                 storage, validation, beacon_slots, density_ppm) \
                 VALUES ({epoch}, {position}, {entity}, {rank}, {credits}, 0, 0, 0, 5040, 1000000)"
            )
        };
        let new_result = |slot: u64, outcome: &str, winner: &str, attempt: &str, reason: &str| {
            format!(
                "INSERT INTO slot_results (slot, outcome, winner, attempt, reason) \
                 VALUES ({slot}, '{outcome}', {winner}, {attempt}, {reason})"
            )
        };
        let new_schedule = |slot: u64, outcome: &str, reason: &str, primary: &str, count: i64| {
            format!(
                "INSERT INTO schedules (slot, epoch, tally_digest, outcome, reason, \
                 primary_entity, fallback_count) \
                 VALUES ({slot}, 0, NULL, '{outcome}', '{reason}', {primary}, {count})"
            )
        };
        let violations = [
            ("a settled tally revised", "UPDATE tallies SET revision = 9 WHERE epoch = 1".into()),
            ("a settled tally unsettled", "UPDATE tallies SET settled_at = NULL WHERE epoch = 1".into()),
            ("a settled tally deleted", "DELETE FROM tallies WHERE epoch = 1".into()),
            ("entries of a settled tally changed", "UPDATE tally_entries SET credits = 1 WHERE epoch = 1".into()),
            ("entries of a settled tally deleted", "DELETE FROM tally_entries WHERE epoch = 1".into()),
            ("an entry added to a settled tally", entry(1, 9, &n, "NULL", 0)),
            ("contributions of a settled tally deleted", "DELETE FROM tally_contributions WHERE epoch = 1".into()),
            ("a revision moved back", "UPDATE tallies SET revision = 1 WHERE epoch = 2".into()),
            ("a revision with another digest", format!("UPDATE tallies SET digest = {digest} WHERE epoch = 2")),
            ("a tally moved to another epoch", "UPDATE tallies SET epoch = 3 WHERE epoch = 2".into()),
            ("a revision beyond u32", "UPDATE tallies SET revision = 4294967296 WHERE epoch = 2".into()),
            ("a window ending before it starts", "UPDATE tallies SET window_end = 0 WHERE epoch = 2".into()),
            ("a rank without credits", entry(2, 9, &n, "9", 0)),
            ("a duplicate rank", entry(2, 9, &n, "1", 5)),
            ("a rank of zero", entry(2, 9, &n, "0", 5)),
            ("an entity tag that does not exist", entry(2, 9, &bad_entity, "NULL", 5)),
            ("a pool id of the wrong length", entry(2, 9, &short_pool, "NULL", 5)),
            ("a density above 100 %", "UPDATE tally_entries SET density_ppm = 1000001 WHERE epoch = 2".into()),
            ("negative credits", "UPDATE tally_entries SET credits = -1 WHERE epoch = 2 AND rank IS NULL".into()),
            ("an entity twice in a tally", "UPDATE tally_entries SET entity = (SELECT entity FROM tally_entries WHERE epoch = 2 AND position = 0) WHERE epoch = 2 AND position = 1".into()),
            ("an entry of a tally that does not exist", entry(99, 0, &n, "NULL", 5)),
            ("a schedule changed", "UPDATE schedules SET reason = 'cooldown_skip' WHERE slot = 40".into()),
            ("a schedule deleted", "DELETE FROM schedules WHERE slot = 40".into()),
            ("a fallback changed", format!("UPDATE schedule_fallbacks SET entity = {n} WHERE slot = 40")),
            ("a fallback deleted", "DELETE FROM schedule_fallbacks WHERE slot = 40".into()),
            ("a fallback added later", format!("INSERT INTO schedule_fallbacks (slot, position, entity) VALUES (40, 3, {n})")),
            ("a fallback of no schedule", format!("INSERT INTO schedule_fallbacks (slot, position, entity) VALUES (41, 1, {n})")),
            ("a leader schedule without a primary", new_schedule(41, "leader", "highest_credits", "NULL", 0)),
            ("a no-leader schedule with a primary", new_schedule(41, "no_leader", "tally_pending", &n, 0)),
            ("a no-leader schedule with a leader reason", new_schedule(41, "no_leader", "rotated_tie", "NULL", 0)),
            ("a leader schedule with a no-leader reason", new_schedule(41, "leader", "tally_pending", &n, 0)),
            ("six fallbacks", new_schedule(41, "leader", "rotated_tie", &n, 6)),
            ("a no-leader schedule with fallbacks", new_schedule(41, "no_leader", "tally_pending", "NULL", 1)),
            ("a result overwritten", "UPDATE slot_results SET outcome = 'missed', winner = NULL, attempt = NULL WHERE slot = 40".into()),
            ("a result deleted", "DELETE FROM slot_results WHERE slot = 40".into()),
            ("a success without a winner", new_result(41, "success", "NULL", "NULL", "NULL")),
            ("a fallback success without an attempt", new_result(41, "fallback_success", &n, "NULL", "NULL")),
            ("a fallback attempt 4", new_result(41, "fallback_success", &n, "4", "NULL")),
            ("a missed slot with a winner", new_result(41, "missed", &n, "NULL", "NULL")),
            ("a no-leader result without a reason", new_result(41, "no_leader", "NULL", "NULL", "NULL")),
            ("a no-leader result with a leader reason", new_result(41, "no_leader", "NULL", "NULL", "'rotated_tie'")),
            ("an unknown outcome", new_result(41, "won", &n, "NULL", "NULL")),
            ("a negative slot", new_result(0, "missed", "NULL", "NULL", "NULL").replace("(0,", "(-1,")),
        ];
        for (what, sql) in &violations {
            let error = match raw(&test_db, sql).await {
                Ok(changed) => panic!("{backend:?}: {what}: accepted, {changed} rows changed"),
                Err(error) => error,
            };
            let db_error = error.as_database_error().unwrap_or_else(|| panic!("{what}: {error}"));
            // SQLite reports a trigger's RAISE(ABORT) as a plain constraint failure; the message
            // is the schema's.
            let by_trigger = ["frozen", "write-once", "moves forward", "fallback_count"]
                .iter()
                .any(|phrase| db_error.message().contains(phrase));
            assert!(
                by_trigger
                    || matches!(
                        db_error.kind(),
                        sqlx::error::ErrorKind::CheckViolation
                            | sqlx::error::ErrorKind::UniqueViolation
                            | sqlx::error::ErrorKind::ForeignKeyViolation
                    ),
                "{backend:?}: {what}: {error}"
            );
        }
        let after = (
            db.tally(Epoch(1)).await.unwrap(),
            db.tally(Epoch(2)).await.unwrap(),
            db.schedule(Slot(40)).await.unwrap(),
            db.results(ALL).await.unwrap(),
        );
        assert_eq!(after, before, "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_record_rows_are_errors_not_guesses() {
    use lucid_core::{ErrorKind, HasKind};
    for (test_db, db) in databases().await {
        let backend = test_db.backend;
        db.put_tally(&tally(3, 0, 1), UnixMillis(1)).await.unwrap();
        // Behind the adapter's back: the header promises one entry more than is stored.
        raw(&test_db, "UPDATE tallies SET entry_count = entry_count + 1 WHERE epoch = 3")
            .await
            .unwrap();
        let error = db.tally(Epoch(3)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Internal, "{backend:?}: {error:?}");
        // A node id that is not a curve point (the schema only checks lengths).
        db.put_tally(&tally(4, 0, 1), UnixMillis(1)).await.unwrap();
        let bogus = lit(backend, &[&[1u8][..], &[0xff; 32][..]].concat());
        // Position 1 of variant 1 is node 1 (rank 2), which has no contributions to break.
        let sql =
            format!("UPDATE tally_entries SET entity = {bogus} WHERE epoch = 4 AND position = 1");
        raw(&test_db, &sql).await.unwrap();
        let error = db.tally(Epoch(4)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Internal, "{backend:?}: {error:?}");
    }
}
