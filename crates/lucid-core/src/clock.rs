//! The clock port: the only way code below the daemon learns what time it is.
//!
//! Domain code takes `now` as an argument; services that must read time hold an
//! `Arc<dyn Clock>`. The daemon implements this port over its runtime, and tests use a manual
//! clock, so every timed behaviour can be driven deterministically.

use std::time::Duration;

use crate::time::UnixMillis;

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync {
    /// Current UTC wall-clock time. May jump (NTP, operator); slot logic re-reads it at every
    /// boundary and treats a backward jump of more than one slot as a fault.
    fn wall(&self) -> UnixMillis;

    /// Time elapsed since an arbitrary fixed origin; never goes backwards. For timeouts and
    /// durations, never for slots.
    fn monotonic(&self) -> Duration;
}

#[cfg(any(test, feature = "testing"))]
pub use manual::ManualClock;

#[cfg(any(test, feature = "testing"))]
mod manual {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::Clock;
    use crate::time::UnixMillis;

    /// A clock that moves only when told to, for tests and simulations.
    #[derive(Debug)]
    pub struct ManualClock {
        state: Mutex<(UnixMillis, Duration)>,
    }

    impl ManualClock {
        /// A clock showing `wall`, with monotonic time zero.
        pub fn new(wall: UnixMillis) -> Self {
            ManualClock { state: Mutex::new((wall, Duration::ZERO)) }
        }

        /// Moves both clocks forward by `by`.
        pub fn advance(&self, by: Duration) {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            state.0 = state.0.saturating_add_ms(ms);
            state.1 = state.1.saturating_add(by);
        }

        /// Sets the wall clock (it may jump backwards); monotonic time is unchanged.
        pub fn set_wall(&self, wall: UnixMillis) {
            let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            state.0 = wall;
        }
    }

    impl Clock for ManualClock {
        fn wall(&self) -> UnixMillis {
            self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0
        }

        fn monotonic(&self) -> Duration {
            self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(UnixMillis(1_000));
        assert_eq!(clock.wall(), UnixMillis(1_000));
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.wall(), UnixMillis(1_250));
        assert_eq!(clock.monotonic(), Duration::from_millis(250));
        clock.set_wall(UnixMillis(0));
        assert_eq!(clock.wall(), UnixMillis(0));
        assert_eq!(clock.monotonic(), Duration::from_millis(250));
    }
}
