//! Tests of the resource monitor: a scripted sampler under paused tokio time, and one smoke
//! test of the real `sysinfo` sampler.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lucid_core::{Clock, UnixMillis};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::services::runner::run_service;
use crate::services::tests::paused_runtime;
use crate::services::time::TokioClock;

/// Returns the scripted samples in order (then empty ones) and notes the thread it ran on.
#[derive(Clone, Default)]
struct ScriptedSampler {
    script: Arc<Mutex<VecDeque<RawSample>>>,
    threads: Arc<Mutex<Vec<std::thread::ThreadId>>>,
}

impl Sampler for ScriptedSampler {
    fn sample(&mut self, _monotonic: Duration) -> RawSample {
        self.threads.lock().unwrap().push(std::thread::current().id());
        self.script.lock().unwrap().pop_front().unwrap_or_default()
    }
}

fn cpu(value: u64) -> RawSample {
    RawSample { cpu: Some(value), ..RawSample::default() }
}

struct Fixture {
    clock: Arc<TokioClock>,
    metrics: Arc<ServiceMetrics>,
    sampler: ScriptedSampler,
}

impl Fixture {
    fn new(script: Vec<RawSample>) -> Self {
        let sampler = ScriptedSampler::default();
        sampler.script.lock().unwrap().extend(script);
        Fixture {
            clock: Arc::new(TokioClock::new(UnixMillis(1_750_000_000_000))),
            metrics: Arc::new(ServiceMetrics::new()),
            sampler,
        }
    }

    fn start(
        &self,
        interval: Duration,
        cancel: &CancellationToken,
    ) -> (ResourceHandle, tokio::task::JoinHandle<()>) {
        let config = ResourceConfig { interval, thresholds: ResourceThresholds::defaults(5) };
        let (monitor, handle) = ResourceMonitor::new(
            self.sampler.clone(),
            config,
            self.clock.clone(),
            self.metrics.clone(),
        )
        .unwrap();
        let task = tokio::spawn(run_service(
            monitor,
            self.clock.clone(),
            self.metrics.clone(),
            cancel.child_token(),
        ));
        (handle, task)
    }
}

#[test]
fn bandwidth_is_the_byte_delta_over_the_elapsed_time() {
    assert_eq!(network_mbps_hundredths(37_500_000, Duration::from_secs(30)), Some(1_000));
    assert_eq!(network_mbps_hundredths(125_000, Duration::from_secs(1)), Some(100));
    assert_eq!(network_mbps_hundredths(1, Duration::ZERO), None);
    // No overflow at the extreme.
    assert!(network_mbps_hundredths(u64::MAX, Duration::from_millis(1)).is_some());
    paused_runtime().block_on(async {
        let bytes = |n| RawSample { network_bytes: Some(n), ..RawSample::default() };
        // 10 Mbps for 30 s, then 0, then the counter goes back (an interface vanished).
        let f = Fixture::new(vec![
            bytes(1_000),
            bytes(37_501_000),
            bytes(37_501_000),
            bytes(5),
            bytes(125_005),
        ]);
        let cancel = CancellationToken::new();
        let (handle, task) = f.start(Duration::from_secs(30), &cancel);
        tokio::time::sleep(Duration::from_secs(30 * 4 + 1)).await;
        cancel.cancel();
        task.await.unwrap();
        let rates: Vec<Option<u64>> =
            handle.history().iter().map(|s| s.value(Resource::Network)).collect();
        // First sample: no baseline. Reset: no rate. Then 125 000 bytes in 30 s.
        assert_eq!(rates, [None, Some(1_000), Some(0), None, Some(3)]);
        assert!(f.metrics.render().contains("lucid_network_mbps 0.03\n"));
    });
}

#[test]
fn alerts_follow_the_hysteresis_and_are_published() {
    paused_runtime().block_on(async {
        let f = Fixture::new(vec![
            cpu(5_000),
            cpu(7_000),
            cpu(6_600),
            cpu(6_400),
            cpu(9_500),
            cpu(8_600),
            cpu(8_400),
        ]);
        let cancel = CancellationToken::new();
        let (handle, task) = f.start(Duration::from_secs(30), &cancel);
        let mut events = handle.subscribe();
        let mut watch = handle.watch();
        tokio::time::sleep(Duration::from_secs(30 * 6 + 1)).await;
        cancel.cancel();
        task.await.unwrap();
        let levels: Vec<AlertLevel> =
            handle.history().iter().map(|s| s.level(Resource::Cpu)).collect();
        use AlertLevel::{Critical, Normal, Warning};
        assert_eq!(levels, [Normal, Warning, Warning, Normal, Critical, Critical, Warning]);
        let mut transitions = Vec::new();
        while let Ok(event) = events.try_recv() {
            transitions.push((event.from, event.to, event.value));
        }
        assert_eq!(
            transitions,
            [
                (Normal, Warning, 7_000),
                (Warning, Normal, 6_400),
                (Normal, Critical, 9_500),
                (Critical, Warning, 8_400)
            ]
        );
        let latest = watch.borrow_and_update().clone().unwrap();
        assert_eq!(Some(latest.clone()), handle.latest());
        assert_eq!(latest.value(Resource::Cpu), Some(8_400));
        assert_eq!(latest.at, f.clock.wall().saturating_add_ms(-1_000));
        let text = f.metrics.render();
        assert!(text.contains("lucid_resource_percent{resource=\"cpu\"} 84.00\n"), "{text}");
        assert!(text.contains("lucid_resource_alert{resource=\"cpu\",level=\"warning\"} 1\n"));
        assert!(text.contains("lucid_resource_alert{resource=\"cpu\",level=\"critical\"} 0\n"));
        // Sampling ran off the runtime's thread.
        let runtime_thread = std::thread::current().id();
        assert!(f.sampler.threads.lock().unwrap().iter().all(|t| *t != runtime_thread));
    });
}

#[test]
fn thresholds_are_validated_and_apply_from_the_next_sample() {
    paused_runtime().block_on(async {
        let f = Fixture::new(vec![cpu(6_000), cpu(6_000)]);
        let cancel = CancellationToken::new();
        let (handle, task) = f.start(Duration::from_secs(30), &cancel);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut lines = handle.thresholds();
        lines.cpu.warning = 9_500; // not below critical
        assert!(handle.set_thresholds(lines).is_err());
        assert_eq!(handle.thresholds(), ResourceThresholds::defaults(5));
        lines.cpu.warning = 5_000;
        handle.set_thresholds(lines).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        cancel.cancel();
        task.await.unwrap();
        let levels: Vec<AlertLevel> =
            handle.history().iter().map(|s| s.level(Resource::Cpu)).collect();
        assert_eq!(levels, [AlertLevel::Normal, AlertLevel::Warning]);
        let bad = ResourceThresholds {
            disk: Thresholds { warning: 8_000, critical: 9_500, margin: 0 },
            ..lines
        };
        let refused = ResourceMonitor::new(
            ScriptedSampler::default(),
            ResourceConfig { interval: Duration::from_secs(1), thresholds: bad },
            f.clock.clone(),
            f.metrics.clone(),
        );
        assert!(refused.is_err());
    });
}

#[test]
fn the_history_keeps_the_last_thousand_samples() {
    paused_runtime().block_on(async {
        let f = Fixture::new((0..1_005).map(cpu).collect());
        let cancel = CancellationToken::new();
        let (handle, task) = f.start(Duration::from_secs(1), &cancel);
        tokio::time::sleep(Duration::from_millis(1_004_500)).await;
        cancel.cancel();
        task.await.unwrap();
        let history = handle.history();
        assert_eq!(history.len(), HISTORY_LEN);
        assert_eq!(history.first().unwrap().value(Resource::Cpu), Some(5));
        assert_eq!(history.last().unwrap().value(Resource::Cpu), Some(1_004));
        assert_eq!(
            f.metrics.loop_metrics("resources").skipped.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
    });
}

#[test]
fn sessions_are_refused_on_busy_or_full_machines() {
    let snapshot = |cpu, memory, free| ResourceSnapshot {
        at: UnixMillis(0),
        values: [cpu, memory, None, None],
        levels: [AlertLevel::Normal; 4],
        disk_free_bytes: free,
        load: None,
    };
    assert!(
        snapshot(Some(9_000), Some(9_000), Some(SESSION_MIN_FREE_DISK_BYTES)).admits_new_sessions()
    );
    assert!(snapshot(None, None, None).admits_new_sessions());
    assert!(!snapshot(Some(9_001), None, None).admits_new_sessions());
    assert!(!snapshot(None, Some(9_001), None).admits_new_sessions());
    assert!(!snapshot(None, None, Some(SESSION_MIN_FREE_DISK_BYTES - 1)).admits_new_sessions());
}

#[test]
fn the_sysinfo_sampler_reads_this_machine() {
    let dir = std::env::temp_dir();
    let mut sampler = SysinfoSampler::new(&dir);
    let first = sampler.sample(Duration::from_secs(10));
    // One refresh only sets the CPU baseline.
    assert_eq!(first.cpu, None);
    let memory = first.memory.expect("memory is readable on linux");
    assert!(memory <= 10_000);
    let disk = first.disk.expect("the temp dir lies on a mounted filesystem");
    assert!(disk <= 10_000);
    assert!(first.disk_free_bytes.is_some());
    assert!(first.network_bytes.is_some());
    // Too soon for a CPU reading: none, rather than a sleep.
    assert_eq!(sampler.sample(Duration::from_secs(10)).cpu, None);
    let later = sampler.sample(Duration::from_secs(11));
    assert!(later.cpu.is_some_and(|cpu| cpu <= 10_000), "{later:?}");
    assert!(later.network_bytes >= first.network_bytes);
}
