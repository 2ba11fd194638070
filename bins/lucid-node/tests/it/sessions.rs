//! The real binary built with `session` and `rdp`: the session keys are validated (exit 64
//! naming the key), and a node with them runs its session loop and its work-proof producer and
//! reports `sessions_active`. The lifecycle itself is tested in process with the fakes of
//! `lucid-testkit` (`lucid-daemon/tests/it/sessions.rs`): a binary cannot select fakes by
//! configuration without shipping them.

use std::time::Duration;

use crate::harness::{Running, TempDir, command, get, run_to_end};

fn init(dir: &TempDir) {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn bad_session_settings_exit_64_naming_the_key() {
    let dir = TempDir::new();
    init(&dir);
    for (variable, value, key) in [
        ("LUCID_SESSION_MAX_CONCURRENT", "0", "session.max_concurrent"),
        ("LUCID_SESSION_PENDING_TIMEOUT", "600", "session.pending_timeout"),
        ("LUCID_SESSION_MAX_DURATION", "0s", "session.max_duration"),
        ("LUCID_SESSION_PRICE_USDT", "0", "session.price_usdt"),
        ("LUCID_RDP_PORT_RANGE", "4000-3389", "rdp.port_range"),
    ] {
        let output = run_to_end({
            let mut c = command(dir.path());
            c.args(["config", "check"]).env(variable, value);
            c
        });
        assert_eq!(output.status.code(), Some(64), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{variable}={value}: {stderr}");
    }
    // A price is the server's: there is no other price key, in the file or the environment.
    std::fs::write(dir.path().join("lucid.toml"), "[session]\nprice = \"0.01\"\n").unwrap();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["config", "check"]);
        c
    });
    assert_eq!(output.status.code(), Some(64));
    std::fs::write(
        dir.path().join("lucid.toml"),
        "[session]\nmax_concurrent = 3\npending_timeout = \"5m\"\nprice_usdt = \"2.5\"\n[rdp]\nport_range = \"5000-5009\"\n",
    )
    .unwrap();
    let output = run_to_end({
        let mut c = command(dir.path());
        c.args(["config", "check"]);
        c
    });
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_node_with_sessions_runs_the_session_loops_and_reports_sessions_active() {
    let dir = TempDir::new();
    init(&dir);
    let node = Running::start(dir.path());
    node.wait_for("/health/ready", 200, Duration::from_secs(10));
    let (status, metrics) = get(node.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("loop=\"sessions\""), "{metrics}");
    let (status, resources) = get(node.addr, "/api/v1/resources").unwrap();
    assert_eq!(status, 200);
    let resources: serde_json::Value = serde_json::from_str(&resources).unwrap();
    if let Some(latest) = resources.get("latest").filter(|l| !l.is_null()) {
        assert_eq!(latest["sessions_active"], 0, "{resources}");
    }
}
