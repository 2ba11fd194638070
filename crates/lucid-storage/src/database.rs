//! Opening a database from a URL: SQLite (WAL, `synchronous = FULL`, foreign keys, busy
//! timeout, integrity check, one writer) or a PostgreSQL pool; migrations run at open.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lucid_core::Clock;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Error, redact};
use crate::sql::{Dialect, Query, Reader, Tx};

/// How long a SQLite connection waits for a lock held by another process before it gives up.
/// Inside this process writers queue on the single writer connection and never wait on a lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a connection (for SQLite writes: its turn in the writer queue).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read connections of a SQLite database (WAL lets them read while the writer writes).
const SQLITE_READERS: u32 = 4;
/// Connections of a PostgreSQL pool.
const POSTGRES_CONNECTIONS: u32 = 8;
/// Page cache per SQLite connection (a negative `cache_size` is in KiB): 64 MiB.
const SQLITE_CACHE_KIB: &str = "-65536";
/// Page size of a SQLite file created by this crate: 16 KiB instead of SQLite's 4 KiB. A batch of
/// proofs fills pages in key order, so larger pages mean fewer page splits, fewer b-tree cells to
/// move and fewer WAL frame headers and checksums per proof (issue 3). Only a new file takes it:
/// an existing database keeps the page size it was created with (WAL mode cannot change it).
const SQLITE_PAGE_BYTES: u32 = 16_384;
/// Memory-mapped I/O window of a SQLite file: 1 GiB (address space, not memory).
const SQLITE_MMAP_BYTES: &str = "1073741824";
/// Lines of a failed integrity check kept in the error.
/// Proof rows after which a proof write checkpoints the WAL alongside its insert (about 5 MB of
/// WAL, a third of SQLite's own automatic checkpoint at 1 000 pages of 16 KiB).
const CHECKPOINT_ROWS: usize = 16_384;
const INTEGRITY_REPORT_LINES: usize = 5;

/// The migrations of one backend, embedded in the binary so that a deployed node needs no
/// migration files on disk. Same numbering and semantics on both backends.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "consensus", include_str!("../migrations/sqlite/0001_consensus.sql")),
    (2, "pools", include_str!("../migrations/sqlite/0002_pools.sql")),
    (3, "records", include_str!("../migrations/sqlite/0003_records.sql")),
    (4, "ledger_payouts", include_str!("../migrations/sqlite/0004_ledger_payouts.sql")),
    (5, "seals", include_str!("../migrations/sqlite/0005_seals.sql")),
    (6, "pool_ops", include_str!("../migrations/sqlite/0006_pool_ops.sql")),
    (7, "proof_sums", include_str!("../migrations/sqlite/0007_proof_sums.sql")),
    (8, "proof_write_path", include_str!("../migrations/sqlite/0008_proof_write_path.sql")),
    (9, "spent_txids", include_str!("../migrations/sqlite/0009_spent_txids.sql")),
    (
        10,
        "proof_sums_fillfactor",
        include_str!("../migrations/sqlite/0010_proof_sums_fillfactor.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "consensus", include_str!("../migrations/postgres/0001_consensus.sql")),
    (2, "pools", include_str!("../migrations/postgres/0002_pools.sql")),
    (3, "records", include_str!("../migrations/postgres/0003_records.sql")),
    (4, "ledger_payouts", include_str!("../migrations/postgres/0004_ledger_payouts.sql")),
    (5, "seals", include_str!("../migrations/postgres/0005_seals.sql")),
    (6, "pool_ops", include_str!("../migrations/postgres/0006_pool_ops.sql")),
    (7, "proof_sums", include_str!("../migrations/postgres/0007_proof_sums.sql")),
    (8, "proof_write_path", include_str!("../migrations/postgres/0008_proof_write_path.sql")),
    (9, "spent_txids", include_str!("../migrations/postgres/0009_spent_txids.sql")),
    (
        10,
        "proof_sums_fillfactor",
        include_str!("../migrations/postgres/0010_proof_sums_fillfactor.sql"),
    ),
];

/// The embedded migrations of one backend, as a sqlx migration source.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>>
                + Send,
        >,
    > {
        let migrations = self
            .0
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// Which database engine a [`Database`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

#[derive(Clone, Debug)]
enum Pools {
    Sqlite {
        /// Exactly one connection: the writer queue. Every write transaction takes it and
        /// starts with `BEGIN IMMEDIATE`, so writers of this process never meet a lock.
        writer: sqlx::SqlitePool,
        /// Readers; in WAL mode they see the last commit and never block the writer.
        reader: sqlx::SqlitePool,
    },
    Postgres {
        pool: sqlx::PgPool,
    },
}

/// An open, migrated database: the adapter behind the store ports.
///
/// Cheap to clone (pools are shared). Stamps `received_at` and `detected_at` from its clock.
#[derive(Clone)]
pub struct Database {
    pools: Pools,
    url: String,
    pub(crate) clock: Arc<dyn Clock>,
    /// Proof rows written since the last checkpoint of [`Database::checkpoint_if_due`], shared
    /// by the clones of this database.
    rows_since_checkpoint: Arc<AtomicUsize>,
    /// Tests only: every proof batch skips the fast path and takes the judging path, so that a
    /// test can compare the two on the same batches ([`Database::force_proof_judging`]); shared
    /// by the clones of this database.
    #[cfg(feature = "testing")]
    pub(crate) force_judging: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating a SQLite file if missing) and migrates the database at `url`:
    /// `sqlite://PATH` or `postgres://…`.
    ///
    /// A SQLite file that SQLite refuses or whose `PRAGMA integrity_check` is not `ok` is not
    /// opened ([`Error::Corrupt`]); an unreachable server is an error, never a silent fallback.
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Database, Error> {
        let shown = redact(url);
        // An in-memory SQLite database exists once per connection, so the writer and the
        // readers would each see their own empty database: refuse it rather than lose writes.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pools = if url.starts_with("sqlite:") && !in_memory {
            open_sqlite(url, &shown).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            open_postgres(url, &shown).await?
        } else {
            return Err(Error::UnsupportedUrl { url: shown });
        };
        let database = Database {
            pools,
            url: shown,
            clock,
            rows_since_checkpoint: Arc::new(AtomicUsize::new(0)),
            #[cfg(feature = "testing")]
            force_judging: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        // Derived tables that migration 0008 left to recompute (once; a no-op afterwards).
        database.backfill_proof_sums().await?;
        Ok(database)
    }

    /// On SQLite, once `added` brings the proof rows written since the last call that
    /// checkpointed to [`CHECKPOINT_ROWS`]: copies the committed WAL frames into the database
    /// file (`PRAGMA wal_checkpoint(PASSIVE)`) on a reader connection, so that a proof write
    /// runs it next to its own insert instead of paying SQLite's automatic checkpoint inside a
    /// later commit.
    ///
    /// A passive checkpoint never waits for the writer or readers and never touches
    /// uncommitted frames, so it runs safely alongside the write; the automatic checkpoint stays
    /// on as the backstop (it finds the WAL already copied and restarted). A failure is logged
    /// and changes nothing: the next automatic or due checkpoint copies the frames.
    pub(crate) async fn checkpoint_if_due(&self, added: usize) {
        let Pools::Sqlite { reader, .. } = &self.pools else { return };
        let written = self.rows_since_checkpoint.fetch_add(added, Ordering::Relaxed);
        if written.saturating_add(added) < CHECKPOINT_ROWS {
            return;
        }
        self.rows_since_checkpoint.store(0, Ordering::Relaxed);
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(reader)
            .await
        {
            Ok((busy, frames, copied)) => {
                tracing::trace!(busy, frames, copied, "WAL checkpoint alongside a proof write");
            }
            Err(error) => {
                tracing::warn!(%error, "WAL checkpoint alongside a proof write failed; SQLite's automatic checkpoint remains");
            }
        }
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The URL it was opened with, password removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that the database answers a trivial query (readiness probes).
    pub async fn ping(&self) -> Result<(), Error> {
        let result = match &self.pools {
            Pools::Sqlite { reader, .. } => sqlx::query("SELECT 1").execute(reader).await.map(drop),
            Pools::Postgres { pool } => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        };
        result.map_err(|source| Error::Query {
            action: "pinging the database",
            source: Arc::new(source),
        })
    }

    /// Waits for running queries and closes every connection.
    ///
    /// For SQLite, the write-ahead log is first folded into the main file and truncated, so a
    /// cleanly closed database is one self-contained file (a copy of it is a complete backup).
    /// SQLite would also checkpoint when its last connection closes, but only on a best-effort
    /// basis: an explicit checkpoint does not depend on the order in which connections go.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                if let Err(error) =
                    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(writer).await
                {
                    // Nothing is lost: the log stays beside the file and is replayed at the next open.
                    tracing::warn!(%error, "could not fold the SQLite write-ahead log into the database file");
                }
                writer.close().await;
            }
            Pools::Postgres { pool } => pool.close().await,
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.pools {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// A query for this database's dialect.
    pub(crate) fn query(&self, sql: &str) -> Query {
        Query::new(self.dialect(), sql)
    }

    /// Starts a write transaction: for SQLite, waits for the writer connection and takes the
    /// write lock at once (`BEGIN IMMEDIATE`), so the transaction can never fail half-way on a
    /// lock upgrade; for PostgreSQL, READ COMMITTED.
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => {
                Ok(Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?))
            }
            Pools::Postgres { pool } => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    /// The read side.
    pub(crate) fn reader(&self) -> Reader<'_> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => Reader::Sqlite(reader),
            Pools::Postgres { pool } => Reader::Postgres(pool),
        }
    }

    /// The largest number of bound parameters one statement may carry.
    pub(crate) fn max_binds(&self) -> usize {
        match self.pools {
            // SQLITE_MAX_VARIABLE_NUMBER of the bundled SQLite (≥ 3.32).
            Pools::Sqlite { .. } => 32_766,
            // The wire protocol counts parameters in a u16.
            Pools::Postgres { .. } => 65_535,
        }
    }
}

async fn open_sqlite(url: &str, shown: &str) -> Result<Pools, Error> {
    let open_error = |source| Error::Open { url: shown.to_owned(), source: Arc::new(source) };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(open_error)?
        .create_if_missing(true)
        // Before the journal mode: sqlx sets it first, as SQLite requires for a new file.
        .page_size(SQLITE_PAGE_BYTES)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        // A larger page cache and memory-mapped reads keep the b-trees of a busy window in
        // memory instead of re-reading them through system calls on every batch.
        .pragma("cache_size", SQLITE_CACHE_KIB)
        .pragma("mmap_size", SQLITE_MMAP_BYTES)
        // A multi-row insert keeps a statement journal (to undo the statement alone); in memory
        // it costs no file writes. It never holds committed data, so durability is unchanged.
        .pragma("temp_store", "MEMORY");
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|error| classify_sqlite_open(error, shown))?;

    let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&writer)
        .await
        .map_err(|error| classify_sqlite_open(error, shown))?;
    if report.len() != 1 || report.first().map(String::as_str) != Some("ok") {
        writer.close().await;
        let report = report.into_iter().take(INTEGRITY_REPORT_LINES).collect::<Vec<_>>().join("; ");
        return Err(Error::Corrupt { url: shown.to_owned(), report });
    }

    migrate(&writer, shown, SQLITE_MIGRATIONS).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options);
    Ok(Pools::Sqlite { writer, reader })
}

/// SQLite's "not a database" and "malformed" results mean a damaged file, not an unreachable
/// one: the operator must see that, not a generic open failure.
fn classify_sqlite_open(error: sqlx::Error, shown: &str) -> Error {
    if let sqlx::Error::Database(db) = &error {
        // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), possibly as extended codes.
        let primary = db.code().and_then(|code| code.parse::<i64>().ok()).map(|code| code & 0xff);
        if matches!(primary, Some(11 | 26)) {
            return Error::Corrupt { url: shown.to_owned(), report: db.message().to_owned() };
        }
    }
    Error::Open { url: shown.to_owned(), source: Arc::new(error) }
}

async fn open_postgres(url: &str, shown: &str) -> Result<Pools, Error> {
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(|source| Error::Open { url: shown.to_owned(), source: Arc::new(source) })?;
    migrate(&pool, shown, POSTGRES_MIGRATIONS).await?;
    Ok(Pools::Postgres { pool })
}

async fn migrate<DB>(
    pool: &sqlx::Pool<DB>,
    shown: &str,
    migrations: &'static [(i64, &'static str, &'static str)],
) -> Result<(), Error>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let migrate_error = |source| Error::Migrate { url: shown.to_owned(), source: Arc::new(source) };
    let migrator = Migrator::new(Embedded(migrations)).await.map_err(migrate_error)?;
    migrator.run(pool).await.map_err(migrate_error)
}
