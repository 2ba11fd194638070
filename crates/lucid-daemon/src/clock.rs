//! The clock adapter: the one place in the workspace that reads the system clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lucid_core::{Clock, UnixMillis};

/// The system's wall clock and a monotonic clock started with the process.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic time starts now.
    #[expect(
        clippy::disallowed_methods,
        reason = "the clock adapter is the one place that reads the monotonic clock"
    )]
    pub fn new() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the clock adapter is the one place that reads the wall clock"
    )]
    fn wall(&self) -> UnixMillis {
        // Before 1970 (a broken clock) reads as 0, which is before every genesis: not ready.
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}
