//! `lucid-node status` against a running node over gRPC, and against a closed port.

use std::time::Duration;

use crate::harness::{Running, TempDir, command, free_addr, run_to_end};

fn init(dir: &TempDir) -> String {
    let output = run_to_end({
        let mut c = command(dir.path());
        c.arg("init");
        c
    });
    assert!(output.status.success(), "init failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn status(dir: &TempDir, grpc_addr: &str, json: bool) -> std::process::Output {
    let mut c = command(dir.path());
    c.args(["status", "--grpc-addr", grpc_addr]);
    if json {
        c.arg("--json");
    }
    run_to_end(c)
}

#[test]
fn status_asks_the_running_node_over_grpc() {
    let dir = TempDir::new();
    let node_id = init(&dir);
    let node = Running::start(dir.path());
    node.wait_for("/health/ready", 200, Duration::from_secs(5));
    let grpc = node.grpc_addr.to_string();

    let text = status(&dir, &grpc, false);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "status failed: {}", String::from_utf8_lossy(&text.stderr));
    assert!(stdout.contains(&format!("node_id: {node_id}")), "{stdout}");
    assert!(stdout.contains("ready: yes"), "{stdout}");
    assert!(stdout.contains("database: healthy"), "{stdout}");

    let json = status(&dir, &grpc, true);
    assert!(
        json.status.success(),
        "status --json failed: {}",
        String::from_utf8_lossy(&json.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(answer["node_id"], node_id.as_str());
    assert_eq!(answer["ready"], true);
    assert_eq!(answer["network"], "mainnet");
    assert!(answer["slot"].as_u64().is_some(), "{answer}");
    assert_eq!(answer["components"]["database"]["status"], "healthy");

    // The token is the data directory's: another directory's token is refused.
    let other = TempDir::new();
    init(&other);
    let refused = status(&other, &grpc, false);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("wrong admin token"), "{stderr}");
}

#[test]
fn status_fails_clearly_when_no_node_listens() {
    let dir = TempDir::new();
    init(&dir);
    let closed = free_addr().to_string();
    let output = status(&dir, &closed, false);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the node"), "{stderr}");
    assert!(stderr.contains(&closed), "{stderr}");
    assert!(output.stdout.is_empty());
}
