//! Durability and concurrency on both backends: restart, concurrent writers, and a damaged
//! SQLite file refused at open.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};

use lucid_consensus::proof::ProofKey;
use lucid_consensus::store::{Evidence, InsertOutcome, ProofStore, TASK_PROOF_TYPE};
use lucid_core::{Slot, SlotRange};
use lucid_storage::testing::TestDb;
use lucid_storage::{Backend, Error};

use super::*;

const ALL: SlotRange = SlotRange { start: Slot(0), end: Slot(u64::MAX) };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let params = testing::params();
    for (test_db, db) in databases().await {
        let proofs: Vec<StoredProof> =
            (0..30).map(|i| relay(&params, i % 6, 400 + i / 6, i)).collect();
        db.insert_proofs(&proofs).await.unwrap();
        let record = registration(&params, &testing::key(2), 4);
        db.insert_registration(&record).await.unwrap();
        let a = relay(&params, 5, 999, 1);
        let b = relay(&params, 5, 999, 2);
        let evidence =
            Evidence::new(a.proof.node, TASK_PROOF_TYPE, Some(a.key()), a.message, b.message);
        db.insert_evidence(&evidence).await.unwrap();
        db.close().await;
        drop(db);

        let reopened = test_db.open().await.unwrap();
        let mut expected = proofs.clone();
        expected.sort_by_key(|p| (p.proof.slot, p.proof.node, p.proof.kind()));
        assert_eq!(reopened.proofs_in_range(ALL, None, 1_000).await.unwrap(), expected);
        assert_eq!(reopened.current_registrations().await.unwrap(), vec![record]);
        assert_eq!(reopened.evidence_keys(ALL).await.unwrap(), vec![evidence.proof_key.unwrap()]);
        assert!(!reopened.insert_evidence(&evidence).await.unwrap(), "{:?}", test_db.backend);
        // Migrations ran once; opening again is a no-op, not an error.
        reopened.close().await;
        test_db.open().await.unwrap().close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_fail_lose_or_double_a_row() {
    const TASKS: u64 = 8;
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 40;
    let params = testing::params();
    for (test_db, db) in databases().await {
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for batch in 0..BATCHES {
                    // Each task writes its own keys and, in every batch, keys that other tasks
                    // write too (node 99 at slot = batch index), so the writers really overlap.
                    let mut proofs: Vec<StoredProof> = (0..PER_BATCH)
                        .map(|i| beacon(&params, task, 10_000 + batch * PER_BATCH + i))
                        .collect();
                    proofs.push(beacon(&params, 99, batch));
                    let outcomes = db.insert_proofs(&proofs).await.unwrap();
                    mine.extend(proofs.iter().map(|p| p.key()).zip(outcomes));
                }
                mine
            }));
        }
        let mut inserted: HashMap<ProofKey, u32> = HashMap::new();
        for handle in handles {
            for (key, outcome) in handle.await.unwrap() {
                match outcome {
                    InsertOutcome::Inserted => *inserted.entry(key).or_default() += 1,
                    InsertOutcome::Duplicate => {}
                    other => panic!("{:?}: unexpected {other:?}", test_db.backend),
                }
            }
        }
        let expected = TASKS * BATCHES * PER_BATCH + BATCHES;
        assert_eq!(inserted.len() as u64, expected, "{:?}", test_db.backend);
        assert!(inserted.values().all(|count| *count == 1), "a key was inserted twice");
        let stored = db.proofs_in_range(ALL, None, usize::MAX).await.unwrap();
        assert_eq!(stored.len() as u64, expected, "{:?}", test_db.backend);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_refused() {
    let test_db = TestDb::sqlite().unwrap();
    let path = test_db.sqlite_path().unwrap();
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let error = test_db.open().await.unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("corrupt") && text.contains(&path.display().to_string()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_open() {
    let params = testing::params();
    let test_db = TestDb::sqlite().unwrap();
    assert_eq!(test_db.backend, Backend::Sqlite);
    let db = test_db.open().await.unwrap();
    let proofs: Vec<StoredProof> = (0..2_000).map(|i| beacon(&params, i % 50, i / 50)).collect();
    db.insert_proofs(&proofs).await.unwrap();
    db.close().await;
    drop(db);

    // Overwrite pages in the middle of the file (the b-trees of the tables and indexes) with
    // garbage; the header stays valid, so only the integrity check can notice.
    let path = test_db.sqlite_path().unwrap();
    // A clean close folds the write-ahead log into the file: the file alone holds everything.
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let wal_len = std::fs::metadata(&wal).map(|meta| meta.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the write-ahead log was not checkpointed at close");
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 64 * 1024, "database file unexpectedly small: {len}");
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&vec![0xa5; 16 * 1024]).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let error = test_db.open().await.unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    assert!(error.to_string().contains("corrupt"), "{error}");
}

/// Overwrites columns of every proof row behind the adapter's back.
async fn damage_proofs(test_db: &TestDb, changes: &[(&str, Vec<u8>)]) {
    for (column, value) in changes {
        let sql = format!("UPDATE proofs SET {column} = $1");
        match test_db.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&test_db.url).await.unwrap();
                sqlx::query(&sql).bind(value.clone()).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
                sqlx::query(&sql).bind(value.clone()).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_rows_are_reported_not_trusted() {
    use lucid_core::{ErrorKind, HasKind};
    let params = testing::params();
    // Garbage, a valid proof of another key, and a digest that does not match the bytes. (A
    // signature of the wrong length is already refused by a CHECK constraint.)
    let foreign = relay(&params, 2, 78, 5);
    let cases: [Vec<(&str, Vec<u8>)>; 3] = [
        vec![("signed_bytes", b"LUCID\0garbage".to_vec())],
        vec![
            ("signed_bytes", foreign.message.bytes().to_vec()),
            ("digest", foreign.digest.as_bytes().to_vec()),
        ],
        vec![("digest", vec![9; 32])],
    ];
    for changes in cases {
        for (test_db, db) in databases().await {
            let proof = relay(&params, 1, 77, 5);
            db.insert_proofs(std::slice::from_ref(&proof)).await.unwrap();
            damage_proofs(&test_db, &changes).await;
            let column = changes[0].0;
            let backend = test_db.backend;
            let error = db.get_proof(&proof.key()).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Internal, "{backend:?} {column}: {error:?}");
            let error = db.proofs_in_range(ALL, None, 10).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Internal, "{backend:?} {column}: {error:?}");
            // A duplicate insert must read the stored row back and so fails too, rather than
            // guessing an outcome.
            let error = db.insert_proofs(std::slice::from_ref(&proof)).await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Internal, "{backend:?} {column}: {error:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_urls_are_refused_with_a_clear_error() {
    use lucid_core::clock::ManualClock;
    let clock = std::sync::Arc::new(ManualClock::new(lucid_storage::testing::TEST_EPOCH));
    for url in ["sqlite::memory:", "sqlite://file.db?mode=memory", "mysql://u:pw@h/db", "x"] {
        let error = lucid_storage::Database::open(url, clock.clone()).await.unwrap_err();
        assert!(matches!(error, Error::UnsupportedUrl { .. }), "{url}: {error:?}");
        assert!(!error.to_string().contains("pw@"), "password shown: {error}");
    }
}

/// SQLite: once 16 384 proof rows were written since the last checkpoint, the next proof write
/// copies the committed WAL frames into the database file next to its insert. Without it the
/// file would not grow before SQLite's automatic checkpoint at 1 000 pages (16 MB of WAL), which
/// these 24 000 proofs (about 7 MB) do not reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_write_checkpoints_the_wal_once_enough_rows_were_written() {
    let params = testing::params();
    let test_db = TestDb::sqlite().unwrap();
    let path = test_db.sqlite_path().unwrap();
    let db = test_db.open().await.unwrap();
    let file_bytes = || std::fs::metadata(&path).unwrap().len();
    let batch = |first_slot: u64| -> Vec<StoredProof> {
        (0..8_000).map(|i| relay(&params, i % 1_000, first_slot + i / 1_000, i + 1)).collect()
    };
    db.insert_proofs(&batch(100)).await.unwrap();
    db.insert_proofs(&batch(200)).await.unwrap();
    let before = file_bytes();
    db.insert_proofs(&batch(300)).await.unwrap();
    let after = file_bytes();
    // 16 000 rows written: not yet due, the file holds little more than the schema.
    assert!(before < 1 << 20, "the database file grew to {before} bytes before a checkpoint");
    // The third batch made it due: the first two batches' pages are now in the file.
    assert!(after > 3 << 20, "the database file is {after} bytes after the checkpoint");
    assert_eq!(db.proofs_in_range(ALL, None, 30_000).await.unwrap().len(), 24_000);
}
