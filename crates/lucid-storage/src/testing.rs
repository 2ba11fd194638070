//! Test tooling (feature `testing`): throwaway databases of both backends for this crate's
//! tests and for benches.
//!
//! PostgreSQL comes from `LUCID_TEST_POSTGRES_URL` when set (an existing server; a fresh
//! database is created on it per [`TestDb`]), else from a private server started on a free
//! loopback port with the installed server binaries (Debian keeps them in
//! `/usr/lib/postgresql/<version>/bin/`, off `PATH`). The server runs as the `postgres` user
//! when we are root (PostgreSQL refuses to run as root) and is stopped when its [`TestDb`] is
//! dropped. Without binaries the PostgreSQL half is skipped with a loud warning, except under
//! CI (`CI` set), where that is an error: CI must test both backends.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lucid_core::UnixMillis;
use lucid_core::clock::ManualClock;
use sqlx::Connection;

use crate::database::{Backend, Database};

/// Environment variable naming an existing PostgreSQL server to test against.
pub const POSTGRES_URL_VAR: &str = "LUCID_TEST_POSTGRES_URL";

/// The wall time every test database's clock starts at (2024-01-01T00:00:00Z).
pub const TEST_EPOCH: UnixMillis = UnixMillis(1_704_067_200_000);

/// A failure of the test tooling itself (not of the code under test).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A command of the PostgreSQL tooling failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and output.
        detail: String,
    },
    /// A file-system step failed.
    #[error("test database setup failed while {action}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// CI must run the PostgreSQL half, and no server is available.
    #[error(
        "PostgreSQL is required under CI: install the `postgresql` package or set {POSTGRES_URL_VAR}"
    )]
    PostgresMissing,
    /// Opening or preparing the database failed.
    #[error("test database setup failed while {action}")]
    Database {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> SetupError {
    move |source| SetupError::Io { action, source }
}

/// A private PostgreSQL server in a temporary directory; stopped (immediate mode) on drop.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<String>,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, if installed.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    // Other distributions put the server binaries on PATH.
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

fn run(command: &mut Command) -> Result<(), SetupError> {
    let shown = format!("{command:?}");
    let output = command.output().map_err(|error| SetupError::Command {
        command: shown.clone(),
        detail: error.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SetupError::Command {
            command: shown,
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

/// The uid and gid of `user` from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&user) {
            Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
        } else {
            None
        }
    })
}

fn free_port() -> Result<u16, SetupError> {
    // The port is free now; the small window until the server binds it is acceptable for tests.
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    Ok(listener.local_addr().map_err(io("finding a free port"))?.port())
}

impl PostgresServer {
    /// Starts a server with the binaries in `bin`.
    pub fn start(bin: &Path) -> Result<PostgresServer, SetupError> {
        let dir = tempfile::Builder::new()
            .prefix("lucid-pg-")
            .tempdir()
            .map_err(io("creating the server directory"))?;
        let is_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let run_as = if is_root {
            let (uid, gid) = user_ids("postgres").ok_or(SetupError::Command {
                command: "look up the postgres user".to_owned(),
                detail: "running as root and there is no `postgres` user".to_owned(),
            })?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(io("handing the server directory to postgres"))?;
            Some("postgres".to_owned())
        } else {
            None
        };
        let data = dir.path().join("data");
        let mut server = PostgresServer { bin: bin.to_owned(), dir, port: 0, run_as };
        run(server.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]))?;
        let mut last = None;
        for _attempt in 0..3 {
            server.port = free_port()?;
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
                server.port,
                server.dir.path().display()
            );
            let started = run(server
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(server.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]));
            match started {
                Ok(()) => return Ok(server),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(SetupError::PostgresMissing))
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Immediate mode: nothing of a throwaway server needs to reach the disk. Failure leaves
        // a stray server behind, which is all a destructor can report.
        let data = self.dir.path().join("data");
        let _stopped = run(self.command("pg_ctl").arg("-D").arg(&data).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }
}

/// What deletes a test database on drop: its directory or its private server.
#[derive(Debug)]
struct Guard {
    _dir: Option<tempfile::TempDir>,
    _server: Option<PostgresServer>,
}

/// A throwaway database: its URL, a manual clock, and what deletes it on drop.
#[derive(Debug)]
pub struct TestDb {
    /// The backend.
    pub backend: Backend,
    /// The URL to open it with.
    pub url: String,
    /// The clock every [`TestDb::open`] gives the database.
    pub clock: Arc<ManualClock>,
    sqlite_path: Option<PathBuf>,
    _guard: Guard,
}

static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> Result<TestDb, SetupError> {
        let dir = tempfile::Builder::new()
            .prefix("lucid-sqlite-")
            .tempdir()
            .map_err(io("creating the SQLite directory"))?;
        let path = dir.path().join("lucid.db");
        Ok(TestDb {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            clock: Arc::new(ManualClock::new(TEST_EPOCH)),
            sqlite_path: Some(path),
            _guard: Guard { _dir: Some(dir), _server: None },
        })
    }

    /// A fresh PostgreSQL database, `None` (after a loud warning) if no server is available
    /// outside CI.
    pub async fn postgres() -> Result<Option<TestDb>, SetupError> {
        let name = format!(
            "lucid_test_{}_{}",
            std::process::id(),
            DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let (admin_url, url, server) = match std::env::var(POSTGRES_URL_VAR) {
            Ok(admin_url) => {
                let url = match admin_url.rsplit_once('/') {
                    Some((base, _db))
                        if base.contains("://") && base.len() > "postgres://".len() =>
                    {
                        format!("{base}/{name}")
                    }
                    _ => format!("{}/{name}", admin_url.trim_end_matches('/')),
                };
                (admin_url, url, None)
            }
            Err(_) => {
                let Some(bin) = postgres_bin_dir() else {
                    if std::env::var_os("CI").is_some() {
                        return Err(SetupError::PostgresMissing);
                    }
                    warn_missing();
                    return Ok(None);
                };
                let server = PostgresServer::start(&bin)?;
                (server.url("postgres"), server.url(&name), Some(server))
            }
        };
        let setup = |source: sqlx::Error| SetupError::Database {
            action: "creating the test database",
            source: Box::new(source),
        };
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.map_err(setup)?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.map_err(setup)?;
        admin.close().await.map_err(setup)?;
        Ok(Some(TestDb {
            backend: Backend::Postgres,
            url,
            clock: Arc::new(ManualClock::new(TEST_EPOCH)),
            sqlite_path: None,
            _guard: Guard { _dir: None, _server: server },
        }))
    }

    /// Every backend available here: SQLite always, PostgreSQL when available (see the module
    /// doc for when its absence is an error).
    pub async fn all() -> Result<Vec<TestDb>, SetupError> {
        let mut all = vec![TestDb::sqlite()?];
        all.extend(TestDb::postgres().await?);
        Ok(all)
    }

    /// Opens (and migrates) the database; may be called again after closing to simulate a
    /// restart.
    pub async fn open(&self) -> Result<Database, crate::Error> {
        Database::open(&self.url, self.clock.clone()).await
    }

    /// The path of the SQLite file, for tests that damage it.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.sqlite_path.clone()
    }
}

#[expect(clippy::print_stderr, reason = "a skipped half of the suite must be impossible to miss")]
fn warn_missing() {
    eprintln!(
        "\n################################################################################\n\
         WARNING: PostgreSQL server binaries not found and {POSTGRES_URL_VAR} is not set.\n\
         The PostgreSQL half of the storage tests is SKIPPED. Install the `postgresql`\n\
         package (apt-get install -y postgresql). Under CI this is an error.\n\
         ################################################################################\n"
    );
}
