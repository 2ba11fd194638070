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
        let mut due = service.next_due(started);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
