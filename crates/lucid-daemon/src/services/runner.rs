//! The one loop every service runs in: tick, then wait until the next due time by the wall
//! clock; never two ticks at once; a failing tick is logged, counted and retried with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lucid_core::{Clock, UnixMillis};
use tokio_util::sync::CancellationToken;

use super::ServiceError;
use super::metrics::ServiceMetrics;
use super::time::sleep_until_wall;

/// A periodic service: what it does at a tick, and when it is next due.
#[async_trait::async_trait]
pub trait Service: Send {
    /// The loop's name (a metric label).
    fn name(&self) -> &'static str;

    /// The first instant strictly after `after` at which work may be due. Must be greater than
    /// `after`, so the loop cannot spin.
    fn next_due(&self, after: UnixMillis) -> UnixMillis;

    /// Does whatever is due at `now`. Must be idempotent: a tick may run again after a failure,
    /// after a restart, or early (when retried), and must then do only what is still missing.
    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError>;
}

/// Retry delay after `failures` consecutive failed ticks: 1 s × 2^(n − 1), at most 60 s
/// (`daemon.md` §3).
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exponent).min(Duration::from_secs(60))
}

/// At most this many missed due times are counted after one long tick (a suspended machine
/// could otherwise make the count loop for a long time).
const MAX_SKIPPED_COUNTED: u64 = 10_000;

fn add_ms(at: UnixMillis, duration: Duration) -> UnixMillis {
    at.saturating_add_ms(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `service` until `cancel` fires: a first tick at once (to catch up after a start), then
/// one tick per due time.
///
/// A tick runs to its end before the next wait starts, so ticks never overlap; due times that
/// passed while it ran are counted as skipped (`lucid_loop_skipped_total`) and are not queued:
/// the next tick looks at the clock and does what is due then. A failing tick logs a warning,
/// counts, and is retried after [`retry_delay`], or at the next due time if that comes first.
pub async fn run_service<S: Service>(
    mut service: S,
    clock: Arc<dyn Clock>,
    metrics: Arc<ServiceMetrics>,
    cancel: CancellationToken,
) {
    let name = service.name();
    let counters = metrics.loop_metrics(name);
    let mut failures: u32 = 0;
    tracing::debug!(service = name, "service started");
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let started = clock.wall();
        let outcome = tokio::select! {
            // Cancellation stops a tick at its next await; every tick is idempotent, so work
            // cut short is redone (or found done) by the next run.
            () = cancel.cancelled() => break,
            outcome = service.tick(started) => outcome,
        };
        let finished = clock.wall();
        // From the start of the tick, so due times that passed during it count as skipped; from
        // the end if the clock went back meanwhile, so a step back never stalls the loop.
        let mut due = service.next_due(started.min(finished));
        let mut skipped = 0;
        while due <= finished && skipped < MAX_SKIPPED_COUNTED {
            skipped += 1;
            due = service.next_due(due);
        }
        if skipped > 0 {
            counters.skipped.fetch_add(skipped, Ordering::Relaxed);
            tracing::debug!(service = name, skipped, "tick outlasted its next due time");
            if due <= finished {
                due = service.next_due(finished);
            }
        }
        let wake = match outcome {
            Ok(()) => {
                failures = 0;
                counters.ok.fetch_add(1, Ordering::Relaxed);
                counters.last_success_ms.store(finished.0, Ordering::Relaxed);
                due
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                counters.error.fetch_add(1, Ordering::Relaxed);
                let retry_in = retry_delay(failures);
                tracing::warn!(service = name, %error, failures, ?retry_in, "tick failed; retrying");
                due.min(add_ms(finished, retry_in))
            }
        };
        if !sleep_until_wall(clock.as_ref(), wake, &cancel).await {
            break;
        }
    }
    tracing::debug!(service = name, "service stopped");
}

/// The state of a supervised service, for health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceState {
    /// The loop is running.
    Running,
    /// The loop ended after cancellation.
    Stopped,
    /// The loop panicked; it is not restarted (a panic is a bug) and health is unhealthy.
    Failed {
        /// The panic message, for logs and health detail (no secrets are ever formatted into
        /// panic messages of this crate).
        detail: String,
    },
}

/// The states of every supervised service, by loop name.
#[derive(Debug, Default)]
pub struct ServiceStates {
    states: std::sync::Mutex<std::collections::BTreeMap<&'static str, ServiceState>>,
}

impl ServiceStates {
    /// No service yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn set(&self, name: &'static str, state: ServiceState) {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, state);
    }

    /// Every service's state.
    pub fn snapshot(&self) -> std::collections::BTreeMap<&'static str, ServiceState> {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The services that failed.
    pub fn failed(&self) -> Vec<&'static str> {
        let states = self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        states
            .iter()
            .filter(|(_, s)| matches!(s, ServiceState::Failed { .. }))
            .map(|(n, _)| *n)
            .collect()
    }
}

fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_owned())
}

/// Spawns `service` on `tracker` under supervision: its state goes to `states`, and a panic is
/// caught at the task boundary (the loop's own task), logged, and recorded as
/// [`ServiceState::Failed`] instead of taking the node down.
pub fn spawn_supervised<S: Service + 'static>(
    tracker: &tokio_util::task::TaskTracker,
    states: Arc<ServiceStates>,
    service: S,
    clock: Arc<dyn Clock>,
    metrics: Arc<ServiceMetrics>,
    cancel: CancellationToken,
) {
    let name = service.name();
    states.set(name, ServiceState::Running);
    let inner = tracker.spawn(run_service(service, clock, metrics, cancel));
    tracker.spawn(async move {
        match inner.await {
            Ok(()) => states.set(name, ServiceState::Stopped),
            Err(error) => {
                let detail = if error.is_panic() {
                    panic_detail(error.into_panic().as_ref())
                } else {
                    "task cancelled by the runtime".to_owned()
                };
                tracing::error!(service = name, %detail, "service failed");
                states.set(name, ServiceState::Failed { detail });
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicky {
        ticks: u32,
    }

    #[async_trait::async_trait]
    impl Service for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        fn next_due(&self, after: UnixMillis) -> UnixMillis {
            after.saturating_add_ms(1_000)
        }
        async fn tick(&mut self, _now: UnixMillis) -> Result<(), ServiceError> {
            self.ticks += 1;
            assert!(self.ticks < 3, "tick {} broke an invariant", self.ticks);
            Ok(())
        }
    }

    struct Steady;

    #[async_trait::async_trait]
    impl Service for Steady {
        fn name(&self) -> &'static str {
            "steady"
        }
        fn next_due(&self, after: UnixMillis) -> UnixMillis {
            after.saturating_add_ms(1_000)
        }
        async fn tick(&mut self, _now: UnixMillis) -> Result<(), ServiceError> {
            Ok(())
        }
    }

    #[test]
    fn a_panicking_service_is_caught_and_marked_failed_while_the_others_run_on() {
        crate::services::tests::paused_runtime().block_on(async {
            let clock: Arc<dyn Clock> =
                Arc::new(crate::services::time::TokioClock::new(UnixMillis(0)));
            let metrics = Arc::new(ServiceMetrics::new());
            let states = Arc::new(ServiceStates::new());
            let tracker = tokio_util::task::TaskTracker::new();
            let cancel = CancellationToken::new();
            let panicky = Panicky { ticks: 0 };
            spawn_supervised(
                &tracker,
                states.clone(),
                panicky,
                clock.clone(),
                metrics.clone(),
                cancel.child_token(),
            );
            spawn_supervised(
                &tracker,
                states.clone(),
                Steady,
                clock.clone(),
                metrics.clone(),
                cancel.child_token(),
            );
            tokio::time::sleep(Duration::from_secs(10)).await;
            assert_eq!(states.failed(), ["panicky"]);
            let ServiceState::Failed { detail } = &states.snapshot()["panicky"] else { panic!() };
            assert!(detail.contains("tick 3 broke an invariant"), "{detail}");
            assert_eq!(states.snapshot()["steady"], ServiceState::Running);
            assert!(metrics.loop_metrics("steady").ok.load(Ordering::SeqCst) >= 10);
            cancel.cancel();
            tracker.close();
            tracker.wait().await;
            assert_eq!(states.snapshot()["steady"], ServiceState::Stopped);
        });
    }

    #[test]
    fn retry_delay_doubles_up_to_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
