//! How loops wait: until a wall-clock instant, re-reading the clock on every wake.
//!
//! # Choice of the test time source
//! Loops wait with `tokio::time::sleep` for the distance, by the [`Clock`] port, to the instant
//! they want, and re-read the clock when they wake: the slot is always derived from the wall
//! clock, never from the sum of sleeps. Tests run the runtime with paused time
//! (`start_paused`) and give the loops a [`TokioClock`], a `Clock` whose wall time follows
//! tokio's clock. Tokio then advances time by itself exactly to the next timer whenever every
//! task is idle, so a test that sleeps for N slots sees every loop wake at its exact due instant,
//! in a deterministic order, in microseconds of real time, with no real sleep anywhere. Clock
//! jumps (suspend, NTP) are simulated with [`TokioClock::jump`].
//!
//! We chose this over a home-made `Sleeper` with manually stepped timers because tokio's paused
//! clock already solves the hard part, "run every task until it is idle, then advance to the
//! next timer", for every timer in the process, including timeouts inside adapters and
//! `spawn_blocking` work (which holds the auto-advance back while it runs); a manual timer
//! would need the test to know which tasks to poll and when.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use lucid_core::{Clock, Slot, TimeParams, UnixMillis};
use tokio_util::sync::CancellationToken;

/// `offset_ms` past the start of `slot`: when a once-per-slot producer is due in that slot.
pub fn slot_offset(time: &TimeParams, slot: Slot, offset_ms: i64) -> Option<UnixMillis> {
    Some(time.slot_start(slot).ok()?.saturating_add_ms(offset_ms))
}

/// The next instant after `after` that is `offset_ms` past a slot start (before genesis: the
/// genesis plus the offset): when a once-per-slot producer (beacons, work proofs) wakes next.
pub fn next_slot_offset(time: &TimeParams, after: UnixMillis, offset_ms: i64) -> UnixMillis {
    let Ok(slot) = time.slot_of(after) else {
        return time.genesis().saturating_add_ms(offset_ms).max(after.saturating_add_ms(1));
    };
    match slot_offset(time, slot, offset_ms) {
        Some(due) if due > after => due,
        _ => slot_offset(time, Slot(slot.0.saturating_add(1)), offset_ms)
            .filter(|due| *due > after)
            .unwrap_or_else(|| after.saturating_add_ms(1)),
    }
}

/// The longest single sleep: a wall clock that jumps forward (suspend, NTP) is noticed within
/// this time even while a loop waits for a far instant.
pub const MAX_NAP: Duration = Duration::from_secs(1);

/// Sleeps until the wall clock shows `at` or later; `false` if cancelled first.
///
/// Sleeps at most [`MAX_NAP`] at a time and re-reads the clock after each sleep, so an early
/// wake (a monotonic clock running ahead of the wall clock) sleeps again and a forward jump is
/// noticed promptly. A backward jump ends the wait early (returns `true`): callers compute
/// their next instant from the clock and must treat an early wake as harmless.
pub async fn sleep_until_wall(
    clock: &dyn Clock,
    at: UnixMillis,
    cancel: &CancellationToken,
) -> bool {
    let mut previous = clock.wall();
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = clock.wall();
        // A wall clock that went back (NTP step) makes `at` stale: wake, so the caller computes
        // its next instant from the new time instead of waiting out the jump.
        if now >= at || now < previous {
            return true;
        }
        previous = now;
        let distance = u64::try_from(at.0.saturating_sub(now.0)).unwrap_or(u64::MAX);
        let nap = Duration::from_millis(distance).min(MAX_NAP);
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(nap) => {}
        }
    }
}

/// A [`Clock`] that follows tokio's clock: wall time is a fixed origin plus the tokio time
/// elapsed since the clock was made, plus any jumps. Under paused time (tests) it advances
/// exactly as tokio auto-advances; see the module documentation for why loops are tested so.
#[derive(Debug)]
pub struct TokioClock {
    origin_wall: UnixMillis,
    origin: tokio::time::Instant,
    jumped_ms: AtomicI64,
}

impl TokioClock {
    /// A clock showing `wall` now.
    #[expect(
        clippy::disallowed_methods,
        reason = "this clock is defined by tokio's time, which paused tests control"
    )]
    pub fn new(wall: UnixMillis) -> Self {
        TokioClock {
            origin_wall: wall,
            origin: tokio::time::Instant::now(),
            jumped_ms: AtomicI64::new(0),
        }
    }

    /// Moves the wall clock by `ms` (negative: backwards) without moving tokio's time: what a
    /// suspended machine or an NTP correction looks like to the process.
    pub fn jump(&self, ms: i64) {
        self.jumped_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TokioClock {
    fn wall(&self) -> UnixMillis {
        let elapsed = i64::try_from(self.monotonic().as_millis()).unwrap_or(i64::MAX);
        self.origin_wall
            .saturating_add_ms(elapsed)
            .saturating_add_ms(self.jumped_ms.load(Ordering::SeqCst))
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "this clock is defined by tokio's time, which paused tests control"
    )]
    fn monotonic(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_wall_clock_and_wakes_early_when_it_steps_back() {
        crate::services::tests::paused_runtime().block_on(async {
            let clock = std::sync::Arc::new(TokioClock::new(UnixMillis(100_000)));
            let cancel = CancellationToken::new();
            // A plain wait ends exactly at the instant.
            assert!(sleep_until_wall(clock.as_ref(), UnixMillis(102_500), &cancel).await);
            assert_eq!(clock.wall(), UnixMillis(102_500));
            let spawn_wait = |at| {
                let clock = clock.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move { sleep_until_wall(clock.as_ref(), at, &cancel).await })
            };
            // A forward jump is noticed within one nap.
            let waiter = spawn_wait(UnixMillis(200_000));
            tokio::time::sleep(Duration::from_millis(10)).await;
            clock.jump(100_000);
            tokio::time::sleep(MAX_NAP).await;
            assert!(waiter.is_finished());
            assert!(waiter.await.unwrap());
            // A backward jump ends the wait early.
            let waiter = spawn_wait(UnixMillis(400_000));
            tokio::time::sleep(Duration::from_millis(10)).await;
            clock.jump(-3_600_000);
            tokio::time::sleep(MAX_NAP).await;
            assert!(waiter.is_finished());
            assert!(waiter.await.unwrap());
            // Cancellation ends it with `false`.
            let waiter = spawn_wait(UnixMillis(i64::MAX));
            tokio::time::sleep(Duration::from_millis(10)).await;
            cancel.cancel();
            assert!(!waiter.await.unwrap());
        });
    }
}
