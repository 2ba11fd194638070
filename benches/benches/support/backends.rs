//! The database backends of the storage benches: the bench body runs once on SQLite and once on
//! PostgreSQL (when the test tooling can start or find a server), each on a fresh database.
//! `LUCID_BENCH_BACKENDS=sqlite` (or `postgres`) narrows a run to the named backends.

use lucid_storage::Database;
use lucid_storage::testing::TestDb;
use tokio::runtime::Runtime;

fn wanted(backend: &str) -> bool {
    std::env::var("LUCID_BENCH_BACKENDS")
        .map_or(true, |list| list.split(',').any(|name| name.trim() == backend))
}

/// A multi-threaded runtime for the benches' database calls.
pub(crate) fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot start a tokio runtime: {error}"),
    }
}

/// Runs `body(backend name, database)` on each wanted backend, closing each database after.
pub(crate) fn on_each_backend(runtime: &Runtime, mut body: impl FnMut(&str, &Database)) {
    let mut run = |name: &str, test_db: &TestDb| {
        let db = match runtime.block_on(test_db.open()) {
            Ok(db) => db,
            Err(error) => panic!("cannot open {}: {error}", test_db.url),
        };
        body(name, &db);
        runtime.block_on(db.close());
    };
    if wanted("sqlite") {
        match TestDb::sqlite() {
            Ok(sqlite) => run("sqlite", &sqlite),
            Err(error) => panic!("cannot create a SQLite file: {error}"),
        }
    }
    if wanted("postgres") {
        match runtime.block_on(TestDb::postgres()) {
            Ok(Some(postgres)) => run("postgres", &postgres),
            // The tooling already warned loudly.
            Ok(None) => {}
            Err(error) => panic!("cannot start PostgreSQL: {error}"),
        }
    }
}
