//! Integration tests of the storage adapter. Every test runs on both backends: SQLite in a
//! temporary file, PostgreSQL on a private loopback server (or `LUCID_TEST_POSTGRES_URL`); see
//! `lucid_storage::testing` for when PostgreSQL may be skipped.

// Helpers outside `#[test]` functions unwrap too: a panic there is a failed test as well.
#![allow(clippy::unwrap_used, reason = "test helpers; a panic is a failed test")]

mod consensus;
mod durability;
mod ingest;
mod payouts;
mod pool_joins;
mod pool_ops;
mod pools;
mod records;
#[cfg(feature = "session")]
mod sessions;
mod sums;

use lucid_consensus::ConsensusParams;
use lucid_consensus::proof::TaskProof;
use lucid_consensus::registration::Registration;
use lucid_consensus::store::{StoredProof, StoredRegistration, stored_proof};
use lucid_consensus::testing;
use lucid_core::message::Message;
use lucid_core::{NodeKey, SignedMessage, Slot};
use lucid_storage::testing::TestDb;
use lucid_storage::{Backend, Database};

/// Every available backend, opened: (its test database, the open database).
async fn databases() -> Vec<(TestDb, Database)> {
    let mut opened = Vec::new();
    for test_db in TestDb::all().await.unwrap() {
        let db = test_db.open().await.unwrap();
        opened.push((test_db, db));
    }
    opened
}

/// `bytes` as a blob literal of the backend's SQL, for raw statements behind the adapter's back.
fn lit(backend: Backend, bytes: &[u8]) -> String {
    let hex = lucid_core::ids::to_hex(bytes);
    match backend {
        Backend::Sqlite => format!("X'{hex}'"),
        Backend::Postgres => format!("'\\x{hex}'::bytea"),
    }
}

/// Runs `sql` on a connection of its own, behind the adapter's back; the rows it changed.
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

/// A stored proof from its signed pair.
fn stored(message: SignedMessage) -> StoredProof {
    stored_late(message, false)
}

fn stored_late(message: SignedMessage, late: bool) -> StoredProof {
    let (_network, proof) = TaskProof::from_signed_bytes(message.bytes()).unwrap();
    stored_proof(proof, message, late)
}

fn registration(params: &ConsensusParams, key: &NodeKey, seq: u64) -> StoredRegistration {
    let message = testing::signed_registration(params, key, seq);
    let (_network, registration) = Registration::from_signed_bytes(message.bytes()).unwrap();
    let digest = message.digest();
    StoredRegistration { registration, message, digest }
}

fn beacon(params: &ConsensusParams, node: u64, slot: u64) -> StoredProof {
    stored(testing::signed_beacon(params, &testing::key(node), Slot(slot)))
}

fn relay(params: &ConsensusParams, node: u64, slot: u64, bytes: u64) -> StoredProof {
    stored(testing::signed_relay(params, &testing::key(node), Slot(slot), bytes))
}

/// Guards the guard: where the server binaries are installed, the suite really runs on both
/// backends (a silently skipped PostgreSQL half would make every test above half a test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_run_where_postgres_is_installed() {
    let backends: Vec<_> = databases().await.into_iter().map(|(t, _)| t.backend).collect();
    let available = lucid_storage::testing::postgres_bin_dir().is_some()
        || std::env::var_os(lucid_storage::testing::POSTGRES_URL_VAR).is_some();
    let expected = if available {
        vec![lucid_storage::Backend::Sqlite, lucid_storage::Backend::Postgres]
    } else {
        vec![lucid_storage::Backend::Sqlite]
    };
    assert_eq!(backends, expected);
}
