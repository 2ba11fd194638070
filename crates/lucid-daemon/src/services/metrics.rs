//! Metrics of the services, with the names of `daemon.md` §4, rendered in the Prometheus text
//! format. The node appends [`ServiceMetrics::render`] to its own metrics. Labels are bounded:
//! loop names, outcomes, resources and levels, never an id.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lucid_consensus::leader::SlotResult;

use super::hysteresis::{AlertLevel, Resource};

/// Counters of one loop.
#[derive(Debug, Default)]
pub struct LoopMetrics {
    /// Ticks that succeeded.
    pub ok: AtomicU64,
    /// Ticks that failed (and were retried).
    pub error: AtomicU64,
    /// Due times that passed while a tick was still running (skipped, never queued).
    pub skipped: AtomicU64,
    /// Wall-clock unix milliseconds of the last successful tick; 0 = never.
    pub last_success_ms: AtomicI64,
}

/// Upper bounds of the `lucid_tally_seconds` buckets.
const TALLY_BUCKETS: [Duration; 8] = [
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
];

/// The services' gauges and counters.
#[derive(Debug)]
pub struct ServiceMetrics {
    loops: Mutex<BTreeMap<&'static str, Arc<LoopMetrics>>>,
    /// Newest epoch with a stored tally (−1: none yet).
    pub tally_epoch: AtomicI64,
    /// Ranked entities of the newest tally.
    pub tally_ranked: AtomicU64,
    /// Unranked entities of the newest tally.
    pub tally_unranked: AtomicU64,
    tally_buckets: [AtomicU64; TALLY_BUCKETS.len()],
    tally_count: AtomicU64,
    tally_sum_micros: AtomicU64,
    /// Valid slot claims made from another tally digest than ours.
    pub tally_divergence: AtomicU64,
    /// Recorded slot results: success, fallback_success, missed, no_leader.
    slot_results: [AtomicU64; 4],
    /// Last sample per resource, hundredths (percent, or Mbps for the network); −1: none yet.
    resource_value: [AtomicI64; 4],
    /// Alert level per resource (0 normal, 1 warning, 2 critical).
    resource_level: [AtomicU64; 4],
    /// Pools by status (forming, active, degraded, disbanded), from the pool health loop.
    pools_by_status: [AtomicU64; 4],
    /// Seats held in all pools.
    pool_seats: AtomicU64,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        Self::new()
    }
}

const RESULT_OUTCOMES: [&str; 4] = ["success", "fallback_success", "missed", "no_leader"];

fn hundredths(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

impl ServiceMetrics {
    /// Metrics before any tick.
    pub fn new() -> Self {
        ServiceMetrics {
            loops: Mutex::new(BTreeMap::new()),
            tally_epoch: AtomicI64::new(-1),
            tally_ranked: AtomicU64::new(0),
            tally_unranked: AtomicU64::new(0),
            tally_buckets: Default::default(),
            tally_count: AtomicU64::new(0),
            tally_sum_micros: AtomicU64::new(0),
            tally_divergence: AtomicU64::new(0),
            slot_results: Default::default(),
            resource_value: std::array::from_fn(|_| AtomicI64::new(-1)),
            resource_level: Default::default(),
            pools_by_status: Default::default(),
            pool_seats: AtomicU64::new(0),
        }
    }

    /// The counters of loop `name`, created on first use.
    pub fn loop_metrics(&self, name: &'static str) -> Arc<LoopMetrics> {
        let mut loops = self.loops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(loops.entry(name).or_default())
    }

    /// Counts one tally computation that took `elapsed`.
    pub fn observe_tally(&self, elapsed: Duration) {
        for (bucket, bound) in self.tally_buckets.iter().zip(TALLY_BUCKETS) {
            if elapsed <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.tally_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.tally_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one newly recorded slot result.
    pub fn count_result(&self, result: &SlotResult) {
        let index = match result {
            SlotResult::Success { .. } => 0,
            SlotResult::FallbackSuccess { .. } => 1,
            SlotResult::Missed => 2,
            SlotResult::NoLeader(_) => 3,
        };
        self.slot_results[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Recorded results with `outcome` (`success`, `fallback_success`, `missed`, `no_leader`).
    pub fn results_with(&self, outcome: &str) -> u64 {
        RESULT_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.slot_results[i].load(Ordering::Relaxed))
    }

    /// Publishes the last sample of `resource` (hundredths) and its alert level.
    pub fn set_resource(&self, resource: Resource, value: u64, level: AlertLevel) {
        let i = resource.index();
        self.resource_value[i].store(i64::try_from(value).unwrap_or(i64::MAX), Ordering::Relaxed);
        let level = match level {
            AlertLevel::Normal => 0,
            AlertLevel::Warning => 1,
            AlertLevel::Critical => 2,
        };
        self.resource_level[i].store(level, Ordering::Relaxed);
    }

    /// Publishes the pool gauges: pools by status (forming, active, degraded, disbanded) and
    /// the seats held.
    pub fn set_pools(&self, by_status: [u64; 4], seats: u64) {
        for (gauge, value) in self.pools_by_status.iter().zip(by_status) {
            gauge.store(value, Ordering::Relaxed);
        }
        self.pool_seats.store(seats, Ordering::Relaxed);
    }

    /// The Prometheus text of every service metric (to append to the node's metrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP lucid_pools Pools by status.\n# TYPE lucid_pools gauge");
        for (status, gauge) in
            ["forming", "active", "degraded", "disbanded"].iter().zip(&self.pools_by_status)
        {
            let value = gauge.load(Ordering::Relaxed);
            let _ = writeln!(out, "lucid_pools{{status=\"{status}\"}} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP lucid_pool_seats Seats held in all pools.\n# TYPE lucid_pool_seats gauge"
        );
        let _ = writeln!(out, "lucid_pool_seats {}", self.pool_seats.load(Ordering::Relaxed));
        let loops: Vec<(&'static str, Arc<LoopMetrics>)> = {
            let loops = self.loops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            loops.iter().map(|(name, m)| (*name, Arc::clone(m))).collect()
        };
        if !loops.is_empty() {
            let _ = writeln!(
                out,
                "# HELP lucid_loop_ticks_total Service loop ticks by loop and outcome."
            );
            let _ = writeln!(out, "# TYPE lucid_loop_ticks_total counter");
            for (name, m) in &loops {
                let ok = m.ok.load(Ordering::Relaxed);
                let error = m.error.load(Ordering::Relaxed);
                let _ =
                    writeln!(out, "lucid_loop_ticks_total{{loop=\"{name}\",outcome=\"ok\"}} {ok}");
                let _ = writeln!(
                    out,
                    "lucid_loop_ticks_total{{loop=\"{name}\",outcome=\"error\"}} {error}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP lucid_loop_skipped_total Due times skipped because a tick was still running."
            );
            let _ = writeln!(out, "# TYPE lucid_loop_skipped_total counter");
            for (name, m) in &loops {
                let skipped = m.skipped.load(Ordering::Relaxed);
                let _ = writeln!(out, "lucid_loop_skipped_total{{loop=\"{name}\"}} {skipped}");
            }
            let _ = writeln!(
                out,
                "# HELP lucid_loop_last_success_seconds Unix time of the loop's last successful tick."
            );
            let _ = writeln!(out, "# TYPE lucid_loop_last_success_seconds gauge");
            for (name, m) in &loops {
                let at = m.last_success_ms.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "lucid_loop_last_success_seconds{{loop=\"{name}\"}} {}",
                    at / 1_000
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lucid_tally_epoch Newest epoch with a stored tally.\n# TYPE lucid_tally_epoch gauge"
        );
        let _ = writeln!(out, "lucid_tally_epoch {}", self.tally_epoch.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP lucid_tally_entities Entities of the newest tally.\n# TYPE lucid_tally_entities gauge"
        );
        let _ = writeln!(
            out,
            "lucid_tally_entities{{ranked=\"true\"}} {}",
            self.tally_ranked.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "lucid_tally_entities{{ranked=\"false\"}} {}",
            self.tally_unranked.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lucid_tally_seconds Time to compute a tally.\n# TYPE lucid_tally_seconds histogram"
        );
        for (bucket, bound) in self.tally_buckets.iter().zip(TALLY_BUCKETS) {
            let _ = writeln!(
                out,
                "lucid_tally_seconds_bucket{{le=\"{}\"}} {}",
                bound.as_secs_f64(),
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.tally_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "lucid_tally_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.tally_sum_micros.load(Ordering::Relaxed);
        let _ = writeln!(out, "lucid_tally_seconds_sum {}.{:06}", sum / 1_000_000, sum % 1_000_000);
        let _ = writeln!(out, "lucid_tally_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP lucid_tally_divergence_total Valid claims made from another tally digest.\n# TYPE lucid_tally_divergence_total counter"
        );
        let _ = writeln!(
            out,
            "lucid_tally_divergence_total {}",
            self.tally_divergence.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lucid_slot_results_total Recorded slot results by outcome.\n# TYPE lucid_slot_results_total counter"
        );
        for (outcome, counter) in RESULT_OUTCOMES.iter().zip(&self.slot_results) {
            let _ = writeln!(
                out,
                "lucid_slot_results_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let sampled: Vec<(Resource, i64, u64)> = Resource::ALL
            .iter()
            .map(|r| {
                let i = r.index();
                (
                    *r,
                    self.resource_value[i].load(Ordering::Relaxed),
                    self.resource_level[i].load(Ordering::Relaxed),
                )
            })
            .filter(|(_, value, _)| *value >= 0)
            .collect();
        if !sampled.is_empty() {
            let _ = writeln!(
                out,
                "# HELP lucid_resource_percent Resource use, percent.\n# TYPE lucid_resource_percent gauge"
            );
            for (resource, value, _) in sampled.iter().filter(|(r, ..)| *r != Resource::Network) {
                let _ = writeln!(
                    out,
                    "lucid_resource_percent{{resource=\"{resource}\"}} {}",
                    hundredths(*value)
                );
            }
            if let Some((_, value, _)) = sampled.iter().find(|(r, ..)| *r == Resource::Network) {
                let _ = writeln!(
                    out,
                    "# HELP lucid_network_mbps Network bandwidth in and out, Mbps.\n# TYPE lucid_network_mbps gauge"
                );
                let _ = writeln!(out, "lucid_network_mbps {}", hundredths(*value));
            }
            let _ = writeln!(
                out,
                "# HELP lucid_resource_alert Open resource alerts (1) by resource and level.\n# TYPE lucid_resource_alert gauge"
            );
            for (resource, _, level) in &sampled {
                let warning = u8::from(*level == 1);
                let critical = u8::from(*level == 2);
                let _ = writeln!(
                    out,
                    "lucid_resource_alert{{resource=\"{resource}\",level=\"warning\"}} {warning}"
                );
                let _ = writeln!(
                    out,
                    "lucid_resource_alert{{resource=\"{resource}\",level=\"critical\"}} {critical}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_spec_names_with_bounded_labels() {
        let metrics = ServiceMetrics::new();
        let beacon = metrics.loop_metrics("beacon");
        beacon.ok.fetch_add(3, Ordering::Relaxed);
        beacon.skipped.fetch_add(1, Ordering::Relaxed);
        beacon.last_success_ms.store(1_704_067_260_500, Ordering::Relaxed);
        metrics.observe_tally(Duration::from_millis(50));
        metrics.count_result(&SlotResult::Missed);
        metrics.set_resource(Resource::Cpu, 7_250, AlertLevel::Warning);
        metrics.set_resource(Resource::Network, 1_234, AlertLevel::Normal);
        let text = metrics.render();
        for line in [
            "lucid_loop_ticks_total{loop=\"beacon\",outcome=\"ok\"} 3",
            "lucid_loop_ticks_total{loop=\"beacon\",outcome=\"error\"} 0",
            "lucid_loop_skipped_total{loop=\"beacon\"} 1",
            "lucid_loop_last_success_seconds{loop=\"beacon\"} 1704067260",
            "lucid_tally_epoch -1",
            "lucid_tally_seconds_bucket{le=\"0.01\"} 0",
            "lucid_tally_seconds_bucket{le=\"0.1\"} 1",
            "lucid_tally_seconds_count 1",
            "lucid_tally_seconds_sum 0.050000",
            "lucid_slot_results_total{outcome=\"missed\"} 1",
            "lucid_resource_percent{resource=\"cpu\"} 72.50",
            "lucid_network_mbps 12.34",
            "lucid_resource_alert{resource=\"cpu\",level=\"warning\"} 1",
            "lucid_resource_alert{resource=\"cpu\",level=\"critical\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Memory was never sampled: no made-up zero.
        assert!(!text.contains("resource=\"memory\""));
    }
}
