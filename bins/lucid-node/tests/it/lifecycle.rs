//! init, run, health, readiness, signals, restart, configuration errors.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use crate::harness::{Running, TempDir, command, get, run_to_end};

fn init(dir: &TempDir) -> String {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(output.status.success(), "init failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_private_identity_and_refuses_to_replace_it() {
    let dir = TempDir::new();
    let node_id = init(&dir);
    assert!(node_id.starts_with("node_") && node_id.len() == 69, "{node_id}");
    assert_eq!(mode(&dir.path().join("node.key")), 0o600);
    assert_eq!(mode(&dir.path().join("admin.token")), 0o600);
    assert_eq!(mode(dir.path()), 0o700);
    assert!(dir.path().join("lucid.toml").exists());
    let key_before = std::fs::read(dir.path().join("node.key")).unwrap();
    let again = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to replace"));
    assert_eq!(std::fs::read(dir.path().join("node.key")).unwrap(), key_before);
    let shown = run_to_end({
        let mut c = command(dir.path());
        c.args(["keys", "show"]);
        c
    });
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains(&node_id));
    let seed = std::fs::read_to_string(dir.path().join("node.key")).unwrap();
    assert!(!shown.contains(seed.trim()), "keys show printed the secret");
}

#[test]
fn run_is_ready_fast_serves_health_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new();
    let node_id = init(&dir);
    let mut node = Running::start(dir.path());
    let live_after = node.wait_for("/health/live", 200, Duration::from_secs(2));
    let ready_after = node.wait_for("/health/ready", 200, Duration::from_secs(2));
    eprintln!("live after {live_after:?}, ready after {ready_after:?}");
    let (status, body) = get(node.addr, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["node_id"], node_id.as_str());
    // Without Tor (not built yet) and without peers, a main-network node is isolated: degraded,
    // and it says why.
    assert_eq!(health["status"], "degraded", "{body}");
    assert_eq!(health["components"]["database"]["status"], "healthy", "{body}");
    let tor = health["components"]["tor"]["detail"].as_str().unwrap_or_default();
    assert!(tor.contains("isolated"), "{body}");
    assert_eq!(health["components"]["peers"]["status"], "degraded", "{body}");
    assert!(health["slot"].as_u64().is_some());
    let (_, node_json) = get(node.addr, "/api/v1/node").unwrap();
    let info: serde_json::Value = serde_json::from_str(&node_json).unwrap();
    assert_eq!(info["node_id"], node_id.as_str());
    let (status, metrics) = get(node.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("lucid_slot "), "{metrics}");
    // The service loops run and report under one family; no family is declared twice (a
    // Prometheus scraper rejects the whole page otherwise).
    for service in ["slot_clock", "beacon", "consensus_records", "resources"] {
        assert!(
            metrics
                .contains(&format!("lucid_loop_ticks_total{{loop=\"{service}\",outcome=\"ok\"}}")),
            "{service}: {metrics}"
        );
    }
    // The resource monitor runs and the API reads it (not a published copy that nothing feeds).
    let (status, resources) = get(node.addr, "/api/v1/resources").unwrap();
    assert_eq!(status, 200, "{resources}");
    let resources: serde_json::Value = serde_json::from_str(&resources).unwrap();
    assert_eq!(resources["monitor_running"], true, "{resources}");
    let mut families = std::collections::BTreeSet::new();
    for line in metrics.lines().filter(|line| line.starts_with("# TYPE ")) {
        assert!(families.insert(line.to_owned()), "declared twice: {line}");
    }
    assert!(
        metrics.contains(
            r#"lucid_http_requests_total{route="/api/v1/node",method="GET",status="200"} 1"#
        ),
        "{metrics}"
    );
    let (status, body) = get(node.addr, "/api/v1/does-not-exist").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("LUCID_ERR_NOT_FOUND"));
    // The health subcommand agrees.
    let health_cmd = run_to_end({
        let mut c = command(dir.path());
        c.env("LUCID_HTTP_ADDR", node.addr.to_string()).arg("health");
        c
    });
    assert!(health_cmd.status.success());
    // A second instance on the same data directory is refused.
    let mut second = Running::start(dir.path());
    let status = second.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert!(second.stderr().contains("another lucid-node is running"));
    // SIGTERM: exit 0 within the grace period; nothing leaks the key.
    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let seed = std::fs::read_to_string(dir.path().join("node.key")).unwrap();
    assert!(!node.stderr().contains(seed.trim()));
    assert!(get(node.addr, "/health/live").is_none());
    // Restart keeps the identity.
    let restarted = Running::start(dir.path());
    restarted.wait_for("/health/ready", 200, Duration::from_secs(2));
    let (_, node_json) = get(restarted.addr, "/api/v1/node").unwrap();
    assert!(node_json.contains(&node_id));
}

#[test]
fn configuration_errors_exit_64_and_name_the_key() {
    let dir = TempDir::new();
    init(&dir);
    std::fs::write(dir.path().join("lucid.toml"), "[http]\nadress = \"127.0.0.1:1\"\n").unwrap();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("run");
        c
    });
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("adress"));
    std::fs::write(dir.path().join("lucid.toml"), "").unwrap();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("run").env("LUCID_HTTP_ADRESS", "x");
        c
    });
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LUCID_HTTP_ADRESS"));
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["run", "--http-addr", "not-an-address"]);
        c
    });
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("http.addr"));
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("frobnicate");
        c
    });
    assert_eq!(output.status.code(), Some(64));
}

#[test]
fn loose_key_permissions_and_missing_identity_refuse_to_start() {
    let dir = TempDir::new();
    init(&dir);
    std::fs::set_permissions(dir.path().join("node.key"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["run", "--http-addr", "127.0.0.1:0"]);
        c
    });
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("chmod 600"));
    let empty = TempDir::new();
    std::fs::create_dir_all(empty.path()).unwrap();
    let output = run_to_end({
        let mut c = command(empty.path());
        c.args(["run", "--http-addr", "127.0.0.1:0"]);
        c
    });
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lucid-node init"));
}

#[test]
fn run_init_creates_the_identity_once_and_keeps_it() {
    let dir = TempDir::new();
    let addr = crate::harness::free_addr();
    let grpc_addr = crate::harness::free_addr();
    let child = command(dir.path())
        .args([
            "run",
            "--init",
            "--http-addr",
            &addr.to_string(),
            "--grpc-addr",
            &grpc_addr.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut node = Running { child, addr, grpc_addr };
    node.wait_for("/health/ready", 200, Duration::from_secs(5));
    let key = std::fs::read(dir.path().join("node.key")).unwrap();
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let again = Running::start(dir.path());
    again.wait_for("/health/ready", 200, Duration::from_secs(5));
    assert_eq!(std::fs::read(dir.path().join("node.key")).unwrap(), key);
}

#[test]
fn the_database_is_checked_at_start_and_refused_when_unusable() {
    let dir = TempDir::new();
    init(&dir);
    // The default database is a SQLite file in the data directory, healthy once running.
    let node = Running::start(dir.path());
    node.wait_for("/health/ready", 200, Duration::from_secs(5));
    let (_, body) = get(node.addr, "/health").unwrap();
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["components"]["database"]["status"], "healthy", "{body}");
    assert_eq!(health["components"]["database"]["detail"], "sqlite reachable");
    assert!(dir.path().join("lucid.db").exists());
    drop(node);
    // An unreachable PostgreSQL server: exit 1 with a message naming the setting.
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["run", "--http-addr", "127.0.0.1:0"])
            .env("LUCID_DATABASE_URL", "postgres://lucid@127.0.0.1:1/lucid")
            .env("LUCID_DATABASE_CONNECT_TIMEOUT_S", "5");
        c
    });
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("database.url"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A file that is not a database: refused, and left untouched for the operator.
    let bogus = dir.path().join("bogus.db");
    std::fs::write(&bogus, vec![0x42u8; 8192]).unwrap();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["run", "--http-addr", "127.0.0.1:0"])
            .env("LUCID_DATABASE_URL", format!("sqlite://{}", bogus.display()));
        c
    });
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read(&bogus).unwrap(), vec![0x42u8; 8192]);
    // A password in the URL is a configuration error.
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("run").env("LUCID_DATABASE_URL", "postgres://lucid:secret@127.0.0.1/lucid");
        c
    });
    assert_eq!(output.status.code(), Some(64));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("secret"));
}
