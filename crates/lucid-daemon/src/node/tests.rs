//! Tests of the node's services under a manual clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lucid_consensus::ConsensusParams;
use lucid_core::clock::ManualClock;
use lucid_core::{NodeKey, TimeParams, UnixMillis};

use super::*;

/// A database whose answers the test controls.
struct FakeDatabase {
    up: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl DatabaseProbe for FakeDatabase {
    fn backend(&self) -> &'static str {
        "fake"
    }
    async fn ping(&self) -> Result<(), String> {
        if self.up.load(Ordering::SeqCst) { Ok(()) } else { Err("down".into()) }
    }
}

fn database(up: bool) -> Arc<FakeDatabase> {
    Arc::new(FakeDatabase { up: std::sync::atomic::AtomicBool::new(up) })
}

fn config() -> Config {
    let time = TimeParams::test_network(UnixMillis(1_000_000), 1_000, 8).unwrap();
    Config {
        data_dir: std::env::temp_dir(),
        network_name: "unit".into(),
        consensus: ConsensusParams::test_network("unit", time),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::from_secs(5),
        verify_threads: 1,
    }
}

#[test]
fn readiness_follows_start_and_drain_and_the_clock() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(999_000)));
        let db = database(true);
        let node = Node::build(
            config(),
            NodeKey::from_seed(&[1; 32]),
            clock.clone(),
            db.clone(),
            Ports::in_memory(),
        );
        let api = node.api();
        node.spawn();
        assert!(node.check_database().await);
        node.mark_ready();
        // Before genesis: not ready, consensus unhealthy.
        let report = api.health();
        assert!(!report.ready);
        assert_eq!(report.components["consensus"].status, HealthStatus::Unhealthy);
        clock.set_wall(UnixMillis(1_005_500));
        let report = api.health();
        assert!(report.ready);
        assert_eq!((report.slot, report.epoch), (Some(5), Some(0)));
        assert_eq!(api.clock().next_slot_start_ms, Some(1_006_000));
        assert!(api.metrics().contains("lucid_ready 1"));
        // The database goes away: after the freshness window readiness and health follow.
        db.up.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_secs(11));
        assert!(!node.check_database().await);
        let report = api.health();
        assert!(!report.ready);
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.components["database"].detail, "fake not reachable");
        db.up.store(true, Ordering::SeqCst);
        assert!(node.check_database().await);
        assert!(api.health().ready);
        node.drain().await.unwrap();
        assert!(!api.health().ready);
        assert!(api.metrics().contains("lucid_ready 0"));
    });
}

#[test]
fn the_slot_clock_publishes_slots_from_the_wall_clock() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(UnixMillis(1_003_200)));
        let node = Node::build(
            config(),
            NodeKey::from_seed(&[1; 32]),
            clock.clone(),
            database(true),
            Ports::in_memory(),
        );
        let api = node.api();
        node.spawn();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(api.metrics().contains("lucid_slot 3\n"), "{}", api.metrics());
        // The wall clock jumps ahead by several slots; the loop wakes and re-reads it instead of
        // counting one slot per sleep.
        clock.set_wall(UnixMillis(1_009_000));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(api.metrics().contains("lucid_slot 9\n"), "{}", api.metrics());
        assert!(api.metrics().contains("lucid_epoch 1\n"));
        node.drain().await.unwrap();
    });
}
