//! The tally from the per-chunk proof sums (`Database::tally_from_sums`) on both backends equals
//! `TallyBuilder` over every stored proof: with pool seats that start and end inside and at the
//! edges of chunks, equivocation evidence, proofs inserted out of order over several batches
//! with duplicates, and on a network whose window does not cover whole chunks.

use lucid_consensus::ConsensusParams;
use lucid_consensus::proof::ProofValue;
use lucid_consensus::store::{
    Evidence, InsertOutcome, ProofStore, StoredProof, TASK_PROOF_TYPE, stored_proof,
};
use lucid_consensus::tally::{CountedProof, MembershipTimeline, Seat, compute_tally};
use lucid_consensus::testing;
use lucid_core::{Epoch, PoolId, Signature, SignedMessage, Slot, SlotRange};

use super::*;

/// A proof with a dummy signature (the store never verifies).
fn proof(params: &ConsensusParams, node: u64, slot: u64, value: ProofValue) -> StoredProof {
    let proof = testing::proof(params, &testing::key(node), Slot(slot), value);
    let message = SignedMessage::new(
        lucid_core::message::Message::to_signed_bytes(&proof, &params.network),
        Signature::from_bytes([0x22; 64]),
    );
    stored_proof(proof, message, false)
}

/// A varied mix over `window` for nodes 1..=6: beacons with gaps, relay, storage and validation.
fn window_proofs(params: &ConsensusParams, window: SlotRange) -> Vec<StoredProof> {
    let mut all = Vec::new();
    for node in 1..=6u64 {
        for slot in window.start.0..window.end.0 {
            if (slot + node) % 5 != 0 {
                all.push(proof(params, node, slot, testing::BEACON));
            }
            if (slot + node) % 3 == 0 {
                let bytes = (slot % 17 + node) * 3_000_000;
                all.push(proof(
                    params,
                    node,
                    slot,
                    ProofValue::Relay { bytes_transferred: bytes, sessions_relayed: 1 },
                ));
            }
            if (slot + node) % 7 == 0 {
                let value = ProofValue::Storage { chunks_stored: node, size_bytes: slot << 20 };
                all.push(proof(params, node, slot, value));
            }
            if (slot * node) % 11 == 0 {
                let value =
                    ProofValue::Validation { validated_sessions: u32::try_from(node).unwrap() };
                all.push(proof(params, node, slot, value));
            }
        }
    }
    all
}

fn timeline(window: SlotRange) -> MembershipTimeline {
    let (a, b) = (PoolId::from_bytes([1; 16]), PoolId::from_bytes([2; 16]));
    let mut timeline = MembershipTimeline::new();
    let start = window.start.0;
    let seats = [
        (1, Seat { pool: a, from: Slot(0), to: None }),
        // Starts and ends inside chunks.
        (2, Seat { pool: a, from: Slot(start + 1_000), to: Some(Slot(start + 3_001)) }),
        // Exactly one chunk when the window is chunk-aligned.
        (3, Seat { pool: b, from: Slot(start + 720), to: Some(Slot(start + 1_440)) }),
        (4, Seat { pool: b, from: Slot(start + 4_000), to: None }),
    ];
    for (node, seat) in seats {
        assert!(timeline.add_seat(testing::node(node), seat));
    }
    timeline
}

async fn check(params: &ConsensusParams, epoch: Epoch) {
    let window = params.time.window(epoch).unwrap();
    let proofs = window_proofs(params, window);
    let membership = timeline(window);
    for (test_db, db) in databases().await {
        // Out of order, in uneven batches, some of them twice.
        let mut shuffled = proofs.clone();
        shuffled.reverse();
        let (late, early) = shuffled.split_at(shuffled.len() / 3);
        for batch in early.chunks(4_999).chain(late.chunks(7_001)) {
            db.insert_proofs(batch).await.unwrap();
        }
        db.insert_proofs(&proofs[..proofs.len().min(1_000)]).await.unwrap();
        // Equivocation evidence on one relay proof of node 5 and one beacon of node 1.
        for (node, slot, value) in [
            (
                5,
                window.start.0 + 1,
                ProofValue::Relay { bytes_transferred: 1, sessions_relayed: 1 },
            ),
            (1, window.start.0 + 2, testing::BEACON),
        ] {
            let stored = proofs
                .iter()
                .find(|p| {
                    p.proof.node == testing::node(node)
                        && p.proof.slot == Slot(slot)
                        && p.proof.kind() == value.kind()
                })
                .unwrap();
            let other = proof(
                params,
                node,
                slot,
                ProofValue::Relay { bytes_transferred: 99, sessions_relayed: 9 },
            );
            let key = stored.key();
            let evidence = Evidence::new(
                key.node,
                TASK_PROOF_TYPE,
                Some(key),
                stored.message.clone(),
                other.message,
            );
            db.insert_evidence(&evidence).await.unwrap();
        }
        let evidence: Vec<_> = db.evidence_keys(window).await.unwrap();
        assert_eq!(evidence.len(), 2);
        let excluded = |key: &lucid_consensus::ProofKey| evidence.contains(key);
        let counted = proofs.iter().map(|p| CountedProof {
            node: p.proof.node,
            slot: p.proof.slot,
            value: p.proof.value,
        });
        let expected = compute_tally(params, epoch, &membership, &excluded, counted).unwrap();
        let got = db.tally_from_sums(params, epoch, &membership, 0).await.unwrap();
        assert_eq!(got, expected, "{:?}", test_db.backend);
        // The port the tally keeper calls answers the same.
        let through_port = db.stored_tally(params, epoch, &membership, 0).await.unwrap();
        assert_eq!(through_port, Some(expected.clone()));
        assert!(expected.entries.iter().any(|e| matches!(e.entity, lucid_core::EntityId::Pool(_))));
        // A restart keeps the sums.
        db.close().await;
        let db = test_db.open().await.unwrap();
        assert_eq!(db.tally_from_sums(params, epoch, &membership, 0).await.unwrap(), expected);
        db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tally_from_sums_equals_tally_builder_on_a_chunk_aligned_window() {
    let params = testing::params();
    let epoch = Epoch(100);
    let window = params.time.window(epoch).unwrap();
    assert_eq!(window.start.0 % lucid_storage::CHUNK_SLOTS, 0);
    check(&params, epoch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tally_from_sums_equals_tally_builder_when_the_window_is_not_chunk_aligned() {
    let params = testing::small_params();
    check(&params, Epoch(400)).await;
}

/// Every `proof_sums` row as text (chunk, node, credits, beacon words, exact), in key order,
/// read behind the adapter's back.
pub(super) async fn sums_rows(test_db: &TestDb) -> Vec<String> {
    let sql = "SELECT chunk, node_id, relay, storage, validation, beacons_0, beacons_1, beacons_2, \
               beacons_3, beacons_4, beacons_5, beacons_6, beacons_7, beacons_8, beacons_9, \
               beacons_10, beacons_11, exact FROM proof_sums ORDER BY chunk, node_id";
    fn text<R: sqlx::Row>(row: &R) -> String
    where
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
    {
        let node: Vec<u8> = row.try_get(1).unwrap();
        let numbers: Vec<i64> =
            (0..18).filter(|i| *i != 1).map(|i| row.try_get::<i64, _>(i).unwrap()).collect();
        format!("{} {numbers:?}", lucid_core::ids::to_hex(&node))
    }
    match test_db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&test_db.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.iter().map(text).collect()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.iter().map(text).collect()
        }
    }
}

/// Migration 0008 backfill: a database whose proofs have no sums (as every database that held
/// proofs before migration 0007) gets them recomputed at open, equal row for row to what the
/// incremental path wrote, and the stored tally is right again; a second open changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_sums_missing_for_stored_proofs_are_recomputed_at_open() {
    let params = testing::params();
    let epoch = Epoch(100);
    let window = params.time.window(epoch).unwrap();
    let proofs = window_proofs(&params, window);
    let membership = timeline(window);
    let nothing_excluded = |_: &lucid_consensus::ProofKey| false;
    let counted = proofs.iter().map(|p| CountedProof {
        node: p.proof.node,
        slot: p.proof.slot,
        value: p.proof.value,
    });
    let expected = compute_tally(&params, epoch, &membership, &nothing_excluded, counted).unwrap();
    for (test_db, db) in databases().await {
        for batch in proofs.chunks(3_001) {
            db.insert_proofs(batch).await.unwrap();
        }
        let incremental = sums_rows(&test_db).await;
        assert!(
            incremental.len() >= 6 * 7,
            "{:?}: {} sums rows",
            test_db.backend,
            incremental.len()
        );
        assert_eq!(db.tally_from_sums(&params, epoch, &membership, 0).await.unwrap(), expected);

        // The state of a database upgraded from before 0007: proofs, no sums, no mark.
        assert!(raw(&test_db, "DELETE FROM proof_sums").await.unwrap() > 0);
        assert_eq!(raw(&test_db, "DELETE FROM derived_state").await.unwrap(), 1);
        let wrong = db.tally_from_sums(&params, epoch, &membership, 0).await.unwrap();
        assert_ne!(wrong, expected, "{:?}: the tally must depend on the sums", test_db.backend);
        db.close().await;

        let db = test_db.open().await.unwrap();
        assert_eq!(sums_rows(&test_db).await, incremental, "{:?}", test_db.backend);
        assert_eq!(db.tally_from_sums(&params, epoch, &membership, 0).await.unwrap(), expected);
        // New proofs after the backfill merge into the recomputed rows.
        let later: Vec<StoredProof> = (window.start.0..window.start.0 + 5)
            .map(|slot| proof(&params, 9, slot, testing::BEACON))
            .collect();
        assert!(
            db.insert_proofs(&later).await.unwrap().iter().all(|o| *o == InsertOutcome::Inserted)
        );
        let with_later = sums_rows(&test_db).await;
        assert_eq!(with_later.len(), incremental.len() + 1);
        db.close().await;

        // The mark is written: the next open recomputes nothing and changes nothing.
        assert_eq!(raw(&test_db, "UPDATE derived_state SET built_at = built_at").await.unwrap(), 1);
        let db = test_db.open().await.unwrap();
        assert_eq!(sums_rows(&test_db).await, with_later);
        db.close().await;
    }
}

/// Migrations 0001 to 0007 of both backends, exactly as the crate embeds them: a database at the
/// schema every node had before migration 0008.
const BEFORE_0008: [(i64, &str, &str, &str); 7] = [
    (
        1,
        "consensus",
        include_str!("../../migrations/sqlite/0001_consensus.sql"),
        include_str!("../../migrations/postgres/0001_consensus.sql"),
    ),
    (
        2,
        "pools",
        include_str!("../../migrations/sqlite/0002_pools.sql"),
        include_str!("../../migrations/postgres/0002_pools.sql"),
    ),
    (
        3,
        "records",
        include_str!("../../migrations/sqlite/0003_records.sql"),
        include_str!("../../migrations/postgres/0003_records.sql"),
    ),
    (
        4,
        "ledger_payouts",
        include_str!("../../migrations/sqlite/0004_ledger_payouts.sql"),
        include_str!("../../migrations/postgres/0004_ledger_payouts.sql"),
    ),
    (
        5,
        "seals",
        include_str!("../../migrations/sqlite/0005_seals.sql"),
        include_str!("../../migrations/postgres/0005_seals.sql"),
    ),
    (
        6,
        "pool_ops",
        include_str!("../../migrations/sqlite/0006_pool_ops.sql"),
        include_str!("../../migrations/postgres/0006_pool_ops.sql"),
    ),
    (
        7,
        "proof_sums",
        include_str!("../../migrations/sqlite/0007_proof_sums.sql"),
        include_str!("../../migrations/postgres/0007_proof_sums.sql"),
    ),
];

#[derive(Debug)]
struct Before0008(Backend);

impl sqlx::migrate::MigrationSource<'static> for Before0008 {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send,
        >,
    > {
        let migrations = BEFORE_0008
            .iter()
            .map(|(version, description, sqlite, postgres)| {
                let sql = if self.0 == Backend::Sqlite { sqlite } else { postgres };
                sqlx::migrate::Migration::new(
                    *version,
                    std::borrow::Cow::Borrowed(*description),
                    sqlx::migrate::MigrationType::Simple,
                    std::borrow::Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// A `proofs` row of the 0007 schema as an SQL tuple of literals.
fn row_before_0008(backend: Backend, stored: &StoredProof) -> String {
    let number = |value: Option<u64>| value.map_or("NULL".to_owned(), |v| v.to_string());
    let (mut relay, mut storage, mut validation, mut metrics) =
        ((None, None), (None, None), None, "NULL".to_owned());
    match stored.proof.value {
        ProofValue::Relay { bytes_transferred, sessions_relayed } => {
            relay = (Some(bytes_transferred), Some(u64::from(sessions_relayed)));
        }
        ProofValue::Storage { chunks_stored, size_bytes } => {
            storage = (Some(chunks_stored), Some(size_bytes));
        }
        ProofValue::Validation { validated_sessions } => {
            validation = Some(u64::from(validated_sessions));
        }
        ProofValue::Beacon { metrics_digest } => {
            if let Some(digest) = metrics_digest {
                metrics = lit(backend, digest.as_bytes());
            }
        }
    }
    let late = match (backend, stored.late) {
        (Backend::Sqlite, late) => u8::from(late).to_string(),
        (Backend::Postgres, late) => late.to_string(),
    };
    format!(
        "({}, {}, {}, {}, {}, {}, {}, {}, {}, {metrics}, {}, {}, {}, 7, {late})",
        lit(backend, stored.proof.node.as_bytes()),
        stored.proof.slot.0,
        stored.proof.kind().tag(),
        stored.proof.ts.0,
        number(relay.0),
        number(relay.1),
        number(storage.0),
        number(storage.1),
        number(validation),
        lit(backend, stored.message.bytes()),
        lit(backend, stored.message.signature().as_bytes()),
        lit(backend, stored.digest.as_bytes()),
    )
}

/// A database created and filled under migration 0007 (proofs, and one stale sums row in the
/// old layout) is opened by this version: migration 0008 keeps every proof byte for byte,
/// the sums are recomputed equal to those a fresh database writes incrementally for the same
/// proofs, and the stored tally equals `TallyBuilder` over the proofs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_filled_before_migration_0008_is_upgraded_with_its_proof_sums() {
    let params = testing::params();
    let epoch = Epoch(100);
    let window = params.time.window(epoch).unwrap();
    let proofs: Vec<StoredProof> = window_proofs(&params, window)
        .into_iter()
        .filter(|p| p.proof.node != testing::node(6))
        .enumerate()
        .map(|(i, mut p)| {
            p.late = i % 3 == 0;
            p
        })
        .collect();
    let membership = timeline(window);
    let nothing_excluded = |_: &lucid_consensus::ProofKey| false;
    let counted = proofs.iter().map(|p| CountedProof {
        node: p.proof.node,
        slot: p.proof.slot,
        value: p.proof.value,
    });
    let expected = compute_tally(&params, epoch, &membership, &nothing_excluded, counted).unwrap();
    for test_db in TestDb::all().await.unwrap() {
        let backend = test_db.backend;
        let migrator = sqlx::migrate::Migrator::new(Before0008(backend)).await.unwrap();
        match backend {
            Backend::Sqlite => {
                let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(
                    &test_db.url,
                )
                .unwrap()
                .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
                migrator.run(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
                migrator.run(&pool).await.unwrap();
                pool.close().await;
            }
        }
        for chunk in proofs.chunks(500) {
            let rows: Vec<String> = chunk.iter().map(|p| row_before_0008(backend, p)).collect();
            let sql = format!("INSERT INTO proofs VALUES {}", rows.join(", "));
            assert_eq!(raw(&test_db, &sql).await.unwrap(), u64::try_from(chunk.len()).unwrap());
        }
        let zeros = match backend {
            Backend::Sqlite => "zeroblob(90)".to_owned(),
            Backend::Postgres => "decode(repeat('00', 90), 'hex')".to_owned(),
        };
        let stale = format!(
            "INSERT INTO proof_sums VALUES ({}, {}, 999, 0, 0, {zeros}, 1)",
            window.start.0 / lucid_storage::CHUNK_SLOTS,
            lit(backend, testing::node(1).as_bytes()),
        );
        assert_eq!(raw(&test_db, &stale).await.unwrap(), 1);

        let db = test_db.open().await.unwrap();
        let mut read = Vec::new();
        let mut after = None;
        loop {
            let page = db.proofs_in_range(window, after, 10_000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.key());
            read.extend(page);
        }
        let mut sorted = proofs.clone();
        sorted.sort_by_key(|p| (p.proof.slot, p.proof.node, p.proof.kind()));
        assert_eq!(read.len(), sorted.len(), "{backend:?}");
        for (got, want) in read.iter().zip(&sorted) {
            assert_eq!(got.message, want.message, "{backend:?}");
            assert_eq!((got.digest, got.late), (want.digest, want.late), "{backend:?}");
        }
        assert_eq!(db.tally_from_sums(&params, epoch, &membership, 0).await.unwrap(), expected);
        // A stored proof is still a duplicate.
        let outcomes = db.insert_proofs(&sorted[..2]).await.unwrap();
        assert_eq!(outcomes, vec![InsertOutcome::Duplicate; 2], "{backend:?}");
        db.close().await;

        let fresh = match backend {
            Backend::Sqlite => TestDb::sqlite().unwrap(),
            Backend::Postgres => TestDb::postgres().await.unwrap().unwrap(),
        };
        let fresh_db = fresh.open().await.unwrap();
        for batch in proofs.chunks(4_000) {
            fresh_db.insert_proofs(batch).await.unwrap();
        }
        fresh_db.close().await;
        assert_eq!(sums_rows(&test_db).await, sums_rows(&fresh).await, "{backend:?}");
    }
}
