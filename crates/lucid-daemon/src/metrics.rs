//! The node's own metrics, rendered in the Prometheus text format. Labels are bounded: never a
//! node, pool, payout or shard id.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Gauges and counters of the node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Current slot (−1 before genesis).
    pub slot: AtomicI64,
    /// Current epoch (−1 before genesis).
    pub epoch: AtomicI64,
    /// Whether the node is ready (0/1).
    pub ready: AtomicU64,
}

impl Metrics {
    /// Metrics before the first tick.
    pub fn new() -> Self {
        Metrics { slot: AtomicI64::new(-1), epoch: AtomicI64::new(-1), ..Metrics::default() }
    }

    /// The Prometheus text of every metric.
    pub fn render(&self, version: &str) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        let _ = writeln!(
            out,
            "# HELP lucid_build_info Build information.\n# TYPE lucid_build_info gauge\nlucid_build_info{{version=\"{version}\",features=\"\"}} 1"
        );
        gauge(&mut out, "lucid_slot", "Current slot.", self.slot.load(Ordering::Relaxed));
        gauge(&mut out, "lucid_epoch", "Current epoch.", self.epoch.load(Ordering::Relaxed));
        let ready = i64::try_from(self.ready.load(Ordering::Relaxed)).unwrap_or(0);
        gauge(&mut out, "lucid_ready", "Whether the node is ready.", ready);
        out
    }
}
