//! The resource monitor (`daemon.md` §10): cpu, memory, disk of the data directory and network
//! bandwidth, sampled off the async threads every `resources.interval`, with warning/critical
//! alerts that use hysteresis ([`super::hysteresis`]).
//!
//! Readers get a [`ResourceHandle`]: the latest [`ResourceSnapshot`] (a `watch` channel), a
//! ring buffer of the last [`HISTORY_LEN`] samples, the thresholds (updatable at runtime,
//! validated), and a broadcast of alert transitions. Metrics: `lucid_resource_percent`,
//! `lucid_network_mbps`, `lucid_resource_alert`.
//!
//! Values are integers in hundredths (72.5 % is `7_250`). Network Mbps is
//! `Δ(bytes in + out) × 8 / elapsed seconds / 10^6`, with the elapsed time from the monotonic
//! clock between two samples. CPU use needs two refreshes at least 200 ms apart; the sampler keeps
//! its `System` between ticks and reports no CPU value (instead of sleeping) when the previous
//! refresh is too recent, so nothing here ever sleeps.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lucid_core::{Clock, UnixMillis};
use tokio::sync::{broadcast, watch};

use super::ServiceError;
use super::hysteresis::{AlertLevel, Resource, ThresholdError, Thresholds, next_level};
use super::metrics::ServiceMetrics;
use super::runner::Service;

/// Samples kept in the history ring.
pub const HISTORY_LEN: usize = 1_000;

/// One reading of the machine; `None` where a value could not be read this time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSample {
    /// CPU use, hundredths of a percent.
    pub cpu: Option<u64>,
    /// Memory use, hundredths of a percent.
    pub memory: Option<u64>,
    /// Use of the data directory's filesystem, hundredths of a percent.
    pub disk: Option<u64>,
    /// Free bytes on the data directory's filesystem.
    pub disk_free_bytes: Option<u64>,
    /// Bytes received plus transmitted by every non-loopback interface since boot.
    pub network_bytes: Option<u64>,
    /// One-minute load average, hundredths.
    pub load: Option<u64>,
}

/// Reads the machine. Called on a blocking thread; may take time, must not sleep.
pub trait Sampler: Send + 'static {
    /// One reading; `monotonic` is the clock's monotonic time now.
    fn sample(&mut self, monotonic: Duration) -> RawSample;
}

/// The [`Sampler`] over `sysinfo`.
pub struct SysinfoSampler {
    system: Option<sysinfo::System>,
    disks: Option<sysinfo::Disks>,
    networks: Option<sysinfo::Networks>,
    data_dir: PathBuf,
    cpu_refreshed_at: Option<Duration>,
}

fn ratio_hundredths(part: u64, whole: u64) -> Option<u64> {
    if whole == 0 {
        return None;
    }
    u64::try_from(u128::from(part.min(whole)) * 10_000 / u128::from(whole)).ok()
}

impl SysinfoSampler {
    /// A sampler for the filesystem that holds `data_dir`. Parts that cannot be read on this
    /// platform report `None` for ever.
    pub fn new(data_dir: &Path) -> Self {
        let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        SysinfoSampler {
            system: sysinfo::System::new().ok(),
            disks: sysinfo::Disks::new_with_refreshed_list().ok(),
            networks: sysinfo::Networks::new_with_refreshed_list().ok(),
            data_dir,
            cpu_refreshed_at: None,
        }
    }

    fn cpu(&mut self, monotonic: Duration) -> Option<u64> {
        let system = self.system.as_mut()?;
        let previous = self.cpu_refreshed_at;
        if previous
            .is_some_and(|at| monotonic.saturating_sub(at) < sysinfo::MINIMUM_CPU_UPDATE_INTERVAL)
        {
            return None;
        }
        system.refresh_cpu_usage();
        self.cpu_refreshed_at = Some(monotonic);
        // The first refresh only sets the baseline.
        previous?;
        let usage = system.global_cpu_usage();
        // A percentage of a few digits: the conversion to hundredths cannot overflow or lose sign.
        usage.is_finite().then(|| (usage.clamp(0.0, 100.0) * 100.0).round() as u64)
    }

    fn disk(&mut self) -> (Option<u64>, Option<u64>) {
        let Some(disks) = self.disks.as_mut() else { return (None, None) };
        disks.refresh(true);
        let holder = disks
            .iter()
            .filter(|disk| self.data_dir.starts_with(disk.mount_point()))
            .max_by_key(|disk| disk.mount_point().as_os_str().len());
        match holder {
            Some(disk) => {
                let total = disk.total_space();
                let free = disk.available_space();
                (ratio_hundredths(total.saturating_sub(free), total), Some(free))
            }
            None => (None, None),
        }
    }
}

impl Sampler for SysinfoSampler {
    fn sample(&mut self, monotonic: Duration) -> RawSample {
        let cpu = self.cpu(monotonic);
        let memory = self.system.as_mut().and_then(|system| {
            system.refresh_memory();
            ratio_hundredths(
                system.total_memory().saturating_sub(system.available_memory()),
                system.total_memory(),
            )
        });
        let (disk, disk_free_bytes) = self.disk();
        let network_bytes = self.networks.as_mut().map(|networks| {
            networks.refresh(true);
            networks
                .iter()
                .filter(|(name, _)| name.as_os_str() != "lo")
                .map(|(_, data)| data.total_received().saturating_add(data.total_transmitted()))
                .fold(0u64, u64::saturating_add)
        });
        let load = sysinfo::System::load_average()
            .ok()
            .filter(|load| load.one.is_finite() && load.one >= 0.0)
            // A load average is a small positive number; hundredths of it fit a u64.
            .map(|load| (load.one * 100.0).round() as u64);
        RawSample { cpu, memory, disk, disk_free_bytes, network_bytes, load }
    }
}

/// The warning and critical lines of every resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceThresholds {
    /// CPU, percent hundredths.
    pub cpu: Thresholds,
    /// Memory, percent hundredths.
    pub memory: Thresholds,
    /// Disk, percent hundredths.
    pub disk: Thresholds,
    /// Network, Mbps hundredths.
    pub network: Thresholds,
}

impl ResourceThresholds {
    /// The defaults of `daemon.md` §10 (cpu 70/90, memory 70/90, disk 80/95 %, network 80/95
    /// Mbps) with a hysteresis of `points` (`resources.hysteresis_points`, default 5).
    pub fn defaults(points: u64) -> Self {
        let margin = points.saturating_mul(100);
        let lines = |warning: u64, critical: u64| Thresholds {
            warning: warning * 100,
            critical: critical * 100,
            margin,
        };
        ResourceThresholds {
            cpu: lines(70, 90),
            memory: lines(70, 90),
            disk: lines(80, 95),
            network: lines(80, 95),
        }
    }

    /// The lines of `resource`.
    pub fn of(&self, resource: Resource) -> &Thresholds {
        match resource {
            Resource::Cpu => &self.cpu,
            Resource::Memory => &self.memory,
            Resource::Disk => &self.disk,
            Resource::Network => &self.network,
        }
    }

    /// Checks every resource's lines.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        Resource::ALL.iter().try_for_each(|r| self.of(*r).validate(*r))
    }
}

/// What the monitor is told at start.
#[derive(Clone, Debug)]
pub struct ResourceConfig {
    /// Time between samples (`resources.interval`, 30 s).
    pub interval: Duration,
    /// The initial thresholds.
    pub thresholds: ResourceThresholds,
}

/// One published sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSnapshot {
    /// When it was taken.
    pub at: UnixMillis,
    /// CPU, disk, memory percent and network Mbps in hundredths, by [`Resource::index`].
    pub values: [Option<u64>; 4],
    /// Alert level per resource, by [`Resource::index`].
    pub levels: [AlertLevel; 4],
    /// Free bytes of the data directory's filesystem.
    pub disk_free_bytes: Option<u64>,
    /// One-minute load average, hundredths.
    pub load: Option<u64>,
}

/// Free disk below which no new session is admitted (`daemon.md` §10): 50 GB.
pub const SESSION_MIN_FREE_DISK_BYTES: u64 = 50_000_000_000;
/// CPU or memory above which no new session is admitted: 90 %.
pub const SESSION_MAX_PERCENT_HUNDREDTHS: u64 = 9_000;

impl ResourceSnapshot {
    /// The value of `resource`, hundredths.
    pub fn value(&self, resource: Resource) -> Option<u64> {
        self.values[resource.index()]
    }

    /// The alert level of `resource`.
    pub fn level(&self, resource: Resource) -> AlertLevel {
        self.levels[resource.index()]
    }

    /// Whether a new session may start (feature `session`): cpu and memory at most 90 % and at
    /// least 50 GB free on the data disk. Unknown values do not block.
    pub fn admits_new_sessions(&self) -> bool {
        let busy = |r| self.value(r).is_some_and(|v| v > SESSION_MAX_PERCENT_HUNDREDTHS);
        let full = self.disk_free_bytes.is_some_and(|free| free < SESSION_MIN_FREE_DISK_BYTES);
        !busy(Resource::Cpu) && !busy(Resource::Memory) && !full
    }
}

/// An alert state change of one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceTransition {
    /// The resource.
    pub resource: Resource,
    /// The level before.
    pub from: AlertLevel,
    /// The level now.
    pub to: AlertLevel,
    /// The value that caused it, hundredths.
    pub value: u64,
    /// When.
    pub at: UnixMillis,
}

/// What the API and health read from the monitor.
#[derive(Clone)]
pub struct ResourceHandle {
    latest: watch::Receiver<Option<ResourceSnapshot>>,
    history: Arc<Mutex<VecDeque<ResourceSnapshot>>>,
    thresholds: Arc<Mutex<ResourceThresholds>>,
    events: broadcast::Sender<ResourceTransition>,
}

impl ResourceHandle {
    /// The newest sample, if one was taken.
    pub fn latest(&self) -> Option<ResourceSnapshot> {
        self.latest.borrow().clone()
    }

    /// A receiver that sees every new sample.
    pub fn watch(&self) -> watch::Receiver<Option<ResourceSnapshot>> {
        self.latest.clone()
    }

    /// The kept samples, oldest first.
    pub fn history(&self) -> Vec<ResourceSnapshot> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> ResourceThresholds {
        *self.thresholds.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the thresholds after validating them; they apply from the next sample.
    pub fn set_thresholds(&self, thresholds: ResourceThresholds) -> Result<(), ThresholdError> {
        thresholds.validate()?;
        *self.thresholds.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = thresholds;
        Ok(())
    }

    /// Alert transitions from now on (bounded; a slow reader loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<ResourceTransition> {
        self.events.subscribe()
    }
}

/// The sampling loop.
pub struct ResourceMonitor<S: Sampler> {
    sampler: Option<S>,
    interval: Duration,
    clock: Arc<dyn Clock>,
    metrics: Arc<ServiceMetrics>,
    publish: watch::Sender<Option<ResourceSnapshot>>,
    handle: ResourceHandle,
    levels: [AlertLevel; 4],
    /// Monotonic time and network byte counter of the previous sample.
    previous_network: Option<(Duration, u64)>,
}

/// Mbps in hundredths from a byte delta over `elapsed`: Δ × 8 / seconds / 10^6.
pub fn network_mbps_hundredths(bytes: u64, elapsed: Duration) -> Option<u64> {
    let micros = elapsed.as_micros();
    if micros == 0 {
        return None;
    }
    // bits × 100 (hundredths) / (seconds × 10^6) = bytes × 8 × 100 / micros.
    u64::try_from(u128::from(bytes) * 800 / micros).ok()
}

impl<S: Sampler> ResourceMonitor<S> {
    /// A monitor over `sampler`, and the handle readers use. Fails on invalid thresholds.
    pub fn new(
        sampler: S,
        config: ResourceConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<ServiceMetrics>,
    ) -> Result<(Self, ResourceHandle), ThresholdError> {
        config.thresholds.validate()?;
        let (publish, latest) = watch::channel(None);
        let (events, _) = broadcast::channel(64);
        let handle = ResourceHandle {
            latest,
            history: Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY_LEN))),
            thresholds: Arc::new(Mutex::new(config.thresholds)),
            events,
        };
        let monitor = ResourceMonitor {
            sampler: Some(sampler),
            interval: config.interval.max(Duration::from_millis(1)),
            clock,
            metrics,
            publish,
            handle: handle.clone(),
            levels: [AlertLevel::Normal; 4],
            previous_network: None,
        };
        Ok((monitor, handle))
    }

    /// Turns a raw reading into a snapshot, updating alert levels and the network baseline.
    fn absorb(
        &mut self,
        raw: RawSample,
        monotonic: Duration,
        at: UnixMillis,
    ) -> (ResourceSnapshot, Vec<ResourceTransition>) {
        let network = raw.network_bytes.and_then(|bytes| {
            let rate = self.previous_network.and_then(|(then, before)| {
                // A counter that went down (an interface vanished) restarts the baseline.
                (bytes >= before)
                    .then(|| {
                        network_mbps_hundredths(bytes - before, monotonic.saturating_sub(then))
                    })
                    .flatten()
            });
            self.previous_network = Some((monotonic, bytes));
            rate
        });
        let values = [raw.cpu, raw.memory, raw.disk, network];
        let thresholds = self.handle.thresholds();
        let mut transitions = Vec::new();
        for resource in Resource::ALL {
            let i = resource.index();
            let Some(value) = values[i] else { continue };
            let from = self.levels[i];
            let to = next_level(from, value, thresholds.of(resource));
            self.levels[i] = to;
            self.metrics.set_resource(resource, value, to);
            if to != from {
                transitions.push(ResourceTransition { resource, from, to, value, at });
            }
        }
        let snapshot = ResourceSnapshot {
            at,
            values,
            levels: self.levels,
            disk_free_bytes: raw.disk_free_bytes,
            load: raw.load,
        };
        (snapshot, transitions)
    }
}

#[async_trait::async_trait]
impl<S: Sampler> Service for ResourceMonitor<S> {
    fn name(&self) -> &'static str {
        "resources"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        after.saturating_add_ms(i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX))
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        let Some(mut sampler) = self.sampler.take() else {
            return Err(ServiceError::Blocking {
                service: "resources",
                detail: "the sampler was lost in an earlier panic".into(),
            });
        };
        let monotonic = self.clock.monotonic();
        let (sampler, raw) = tokio::task::spawn_blocking(move || {
            let raw = sampler.sample(monotonic);
            (sampler, raw)
        })
        .await
        .map_err(|error| ServiceError::Blocking {
            service: "resources",
            detail: error.to_string(),
        })?;
        self.sampler = Some(sampler);
        let (snapshot, transitions) = self.absorb(raw, monotonic, now);
        for transition in transitions {
            let ResourceTransition { resource, from, to, value, .. } = transition;
            let shown = format!("{}.{:02}", value / 100, value % 100);
            if to > from {
                tracing::warn!(%resource, %from, %to, value = %shown, "resource alert raised");
            } else {
                tracing::info!(%resource, %from, %to, value = %shown, "resource alert lowered");
            }
            // No subscriber is fine: the transition is in the log and the metrics.
            let _ = self.handle.events.send(transition);
        }
        {
            let mut history =
                self.handle.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if history.len() == HISTORY_LEN {
                history.pop_front();
            }
            history.push_back(snapshot.clone());
        }
        self.publish.send_replace(Some(snapshot));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
