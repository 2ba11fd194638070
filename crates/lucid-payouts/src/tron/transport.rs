//! The `TronTransport` port: how the TRON client reaches a full node or a solidity node.
//!
//! One call POSTs one JSON body to one path of one named endpoint and answers the parsed JSON
//! body of a 2xx reply, or a typed [`TransportError`]. The port knows nothing of TRON semantics
//! (the client in `tron::client` does); its adapters (reqwest in `lucid-daemon`, the fake node of
//! `lucid-testkit` reached through that same adapter) own timeouts, the response size cap and
//! connection reuse. `#[async_trait]` needs no runtime, so this crate still has no tokio.

use async_trait::async_trait;

/// The largest response body the client accepts, in bytes: a TRON reply that a payout needs is
/// a few kilobytes; anything near this is a misbehaving node.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Which node answers a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The full node (`/wallet/*`): head block, triggers, broadcasts, unconfirmed state.
    FullNode,
    /// The solidity node (`/walletsolidity/*`): only solidified (irreversible) state.
    SolidityNode,
}

impl Endpoint {
    /// The name used in errors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::FullNode => "full_node",
            Endpoint::SolidityNode => "solidity_node",
        }
    }
}

/// A 2xx reply: its status and its JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportResponse {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The parsed body.
    pub body: serde_json::Value,
}

/// Why a call got no usable reply. Every variant but [`TransportError::Status`] with a 4xx
/// status leaves the outcome unknown: a broadcast may have reached the node all the same.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No complete reply within the configured timeout.
    #[error("the {endpoint} did not answer in time")]
    Timeout {
        /// The endpoint called.
        endpoint: &'static str,
    },
    /// The connection could not be made or broke.
    #[error("connection to the {endpoint} failed: {message}")]
    Connection {
        /// The endpoint called.
        endpoint: &'static str,
        /// What the adapter reported (never a request body).
        message: String,
    },
    /// The node answered with a non-2xx status.
    #[error("the {endpoint} answered HTTP {status}")]
    Status {
        /// The endpoint called.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The reply body exceeded the size cap; it was not read further.
    #[error("the {endpoint} answered more than {limit} bytes")]
    BodyTooLarge {
        /// The endpoint called.
        endpoint: &'static str,
        /// The cap in force.
        limit: usize,
    },
    /// The reply body is not JSON.
    #[error("the {endpoint} answered a body that is not JSON")]
    NotJson {
        /// The endpoint called.
        endpoint: &'static str,
    },
}

/// The port through which the TRON client talks HTTP (house style H4, H5).
#[async_trait]
pub trait TronTransport: Send + Sync {
    /// POSTs `body` as JSON to `path` (for example `/wallet/getnowblock`) of `endpoint`.
    async fn post(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<TransportResponse, TransportError>;
}
