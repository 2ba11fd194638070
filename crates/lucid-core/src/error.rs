//! The coarse error classification every Lucid error maps to, and the `Bug` type for broken
//! internal invariants.
//!
//! Callers decide what to do (retry, report to the user, ban a peer) from [`ErrorKind`] alone,
//! never from message text. Each library crate keeps its own detailed error enum and implements
//! [`HasKind`] for it; the API layer maps `ErrorKind` to HTTP and gRPC status in one place each.

use std::fmt;

/// What kind of failure an error is, from the point of view of someone who has to react to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller sent something that can never be valid (bad syntax, out of range).
    InvalidInput,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with the current state (already exists, wrong state, full).
    Conflict,
    /// No credentials were presented.
    Unauthenticated,
    /// Credentials were presented but do not allow this.
    Forbidden,
    /// A peer sent something that proves it misbehaved (forged, equivocating, malformed).
    PeerMisbehaved,
    /// A network problem that may go away when retried.
    TransientNetwork,
    /// The database or another store could not be reached or failed.
    StoreUnavailable,
    /// The operation needs a cargo feature or a setting that is off.
    FeatureDisabled,
    /// The node is shutting down and takes no new work.
    ShuttingDown,
    /// A bug in this program: an internal invariant does not hold.
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::TransientNetwork | ErrorKind::StoreUnavailable)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::PeerMisbehaved => "peer misbehaved",
            ErrorKind::TransientNetwork => "transient network failure",
            ErrorKind::StoreUnavailable => "store unavailable",
            ErrorKind::FeatureDisabled => "feature disabled",
            ErrorKind::ShuttingDown => "shutting down",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(text)
    }
}

/// Implemented by every error type in the workspace.
pub trait HasKind {
    /// The coarse classification of this error.
    fn kind(&self) -> ErrorKind;
}

/// A broken internal invariant: a bug in this program, never the fault of input.
///
/// Created with [`internal!`](crate::internal) so that the location is recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("internal error (bug) at {location}: {message}")]
pub struct Bug {
    message: String,
    location: &'static std::panic::Location<'static>,
}

impl Bug {
    /// Records a bug at the caller's location.
    #[track_caller]
    pub fn new(message: impl Into<String>) -> Self {
        Bug { message: message.into(), location: std::panic::Location::caller() }
    }

    /// What was found to be wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl HasKind for Bug {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Builds a [`Bug`] with a formatted message at the current location.
#[macro_export]
macro_rules! internal {
    ($($arg:tt)*) => {
        $crate::error::Bug::new(format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bug_records_location_and_kind() {
        let bug = crate::internal!("count {} != {}", 1, 2);
        assert_eq!(bug.kind(), ErrorKind::Internal);
        assert_eq!(bug.message(), "count 1 != 2");
        assert!(bug.to_string().contains("error.rs"));
    }

    #[test]
    fn transient_kinds() {
        assert!(ErrorKind::StoreUnavailable.is_transient());
        assert!(ErrorKind::TransientNetwork.is_transient());
        assert!(!ErrorKind::InvalidInput.is_transient());
    }
}
