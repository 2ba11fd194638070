//! The error type of this crate: the database could not be opened, migrated or queried, or what
//! it holds is not what this crate wrote. Every variant says what was being done.

use std::sync::Arc;

use lucid_core::{Bug, ErrorKind, HasKind};

/// A failure of the storage adapter.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no supported backend.
    #[error("unsupported database URL {url}: expected sqlite://PATH (a file) or postgres://…")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The database could not be reached or opened.
    #[error("failed to open the database at {url}")]
    Open {
        /// The URL, with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// The SQLite file is damaged: SQLite refused it or `PRAGMA integrity_check` found problems.
    /// The node must not start on it; restore it from a backup or move it away.
    #[error("the SQLite database at {url} is corrupt and was not opened: {report}")]
    Corrupt {
        /// The URL of the file.
        url: String,
        /// What SQLite reported (the first lines of the integrity check, or its error).
        report: String,
    },
    /// The schema migrations could not be applied.
    #[error("failed to migrate the database at {url}")]
    Migrate {
        /// The URL, with any password removed.
        url: String,
        /// The migrator's error.
        #[source]
        source: Arc<sqlx::migrate::MigrateError>,
    },
    /// A query failed.
    #[error("database query failed while {action}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: Arc<sqlx::Error>,
    },
    /// A stored row does not decode to what this crate wrote: damage on disk or a foreign
    /// writer. Never papered over.
    #[error("stored {table} row {key} is invalid: {detail}")]
    InvalidRow {
        /// The table.
        table: &'static str,
        /// The row key, for the operator.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A value does not fit its column (64-bit signed integers hold slots, sequence numbers
    /// and amounts).
    #[error("{field} = {value} does not fit a BIGINT column")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// An internal invariant broke.
    #[error(transparent)]
    Bug(#[from] Bug),
}

/// Whether a driver error means our SQL broke a constraint (a bug of this crate) rather than
/// the database being unavailable.
fn is_constraint(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => !matches!(db.kind(), sqlx::error::ErrorKind::Other),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

impl HasKind for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::UnsupportedUrl { .. } => ErrorKind::InvalidInput,
            Error::Open { .. } | Error::Corrupt { .. } => ErrorKind::StoreUnavailable,
            Error::Migrate { .. } => ErrorKind::StoreUnavailable,
            Error::Query { source, .. } if is_constraint(source) => ErrorKind::Internal,
            Error::Query { .. } => ErrorKind::StoreUnavailable,
            Error::InvalidRow { .. } => ErrorKind::Internal,
            Error::OutOfRange { .. } => ErrorKind::InvalidInput,
            Error::Bug(_) => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// A query error with its context.
    pub(crate) fn query(action: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Query { action, source: Arc::new(source) }
    }

    /// This error as the pools crate's store error, keeping it as the source.
    pub(crate) fn into_pools(self, action: &'static str) -> lucid_pools::Error {
        lucid_pools::Error::Store { action, kind: self.kind(), source: Arc::new(self) }
    }

    /// This error as the consensus crate's store error, keeping it as the source.
    pub(crate) fn into_store(self, action: &'static str) -> lucid_consensus::Error {
        lucid_consensus::Error::Store { action, kind: self.kind(), source: Arc::new(self) }
    }
}

/// `url` with the password (if any) replaced, for error messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
