//! The `TronTransport` adapter over reqwest (feature `tron`): POSTs JSON to the configured full
//! node and solidity node with a whole-request timeout, a connect timeout and a response size cap.
//!
//! Bodies are never logged: a broadcast body is a signed transaction, and replies may echo it.
//! The API key travels as the `TRON-PRO-API-KEY` header, marked sensitive, and never appears in
//! `Debug` or errors.

use std::time::Duration;

use async_trait::async_trait;
use lucid_payouts::tron::transport::{
    Endpoint, MAX_RESPONSE_BYTES, TransportError, TransportResponse, TronTransport,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

/// Settings of the transport (`tron.api_url`, `tron.api_key_file`, `tron.request_timeout`).
#[derive(Clone)]
pub struct TronTransportConfig {
    /// Base URL of the full node (`/wallet/*`), e.g. `https://api.trongrid.io`.
    pub full_node_url: String,
    /// Base URL of the solidity node (`/walletsolidity/*`); TronGrid serves both on one host.
    pub solidity_node_url: String,
    /// The TronGrid API key, if any.
    pub api_key: Option<String>,
    /// Whole-request timeout (`tron.request_timeout`, 30 s).
    pub request_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Largest reply body read, in bytes.
    pub max_response_bytes: usize,
}

impl TronTransportConfig {
    /// The defaults for one base URL serving both nodes.
    pub fn new(base_url: &str) -> Self {
        let base = base_url.trim_end_matches('/').to_owned();
        TronTransportConfig {
            full_node_url: base.clone(),
            solidity_node_url: base,
            api_key: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}

impl std::fmt::Debug for TronTransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TronTransportConfig")
            .field("full_node_url", &self.full_node_url)
            .field("solidity_node_url", &self.solidity_node_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// The reqwest transport.
#[derive(Clone)]
pub struct ReqwestTronTransport {
    client: reqwest::Client,
    full_node_url: String,
    solidity_node_url: String,
    max_response_bytes: usize,
}

impl std::fmt::Debug for ReqwestTronTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestTronTransport")
            .field("full_node_url", &self.full_node_url)
            .field("solidity_node_url", &self.solidity_node_url)
            .finish_non_exhaustive()
    }
}

fn connection(endpoint: Endpoint, message: String) -> TransportError {
    TransportError::Connection { endpoint: endpoint.as_str(), message }
}

impl ReqwestTronTransport {
    /// Builds the HTTP client; fails if the API key is not a valid header value or TLS cannot
    /// be set up.
    pub fn new(config: &TronTransportConfig) -> Result<Self, TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(key.trim()).map_err(|_| {
                connection(Endpoint::FullNode, "the API key is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert("TRON-PRO-API-KEY", value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| connection(Endpoint::FullNode, error.without_url().to_string()))?;
        Ok(ReqwestTronTransport {
            client,
            full_node_url: config.full_node_url.trim_end_matches('/').to_owned(),
            solidity_node_url: config.solidity_node_url.trim_end_matches('/').to_owned(),
            max_response_bytes: config.max_response_bytes,
        })
    }

    fn map_error(endpoint: Endpoint, error: reqwest::Error) -> TransportError {
        if error.is_timeout() {
            TransportError::Timeout { endpoint: endpoint.as_str() }
        } else {
            connection(endpoint, error.without_url().to_string())
        }
    }
}

#[async_trait]
impl TronTransport for ReqwestTronTransport {
    async fn post(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<TransportResponse, TransportError> {
        let base = match endpoint {
            Endpoint::FullNode => &self.full_node_url,
            Endpoint::SolidityNode => &self.solidity_node_url,
        };
        let bytes = serde_json::to_vec(body)
            .map_err(|_| connection(endpoint, "the request body does not serialize".into()))?;
        tracing::debug!(endpoint = endpoint.as_str(), path, "TRON call");
        let mut response = self
            .client
            .post(format!("{base}{path}"))
            .body(bytes)
            .send()
            .await
            .map_err(|error| Self::map_error(endpoint, error))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TransportError::Status {
                endpoint: endpoint.as_str(),
                status: status.as_u16(),
            });
        }
        let limit = self.max_response_bytes;
        let too_large = TransportError::BodyTooLarge { endpoint: endpoint.as_str(), limit };
        if response.content_length().is_some_and(|length| length > limit as u64) {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Self::map_error(endpoint, e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&body)
            .map_err(|_| TransportError::NotJson { endpoint: endpoint.as_str() })?;
        Ok(TransportResponse { status: status.as_u16(), body })
    }
}
