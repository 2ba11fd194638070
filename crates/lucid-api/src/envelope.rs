//! The one JSON error envelope, request ids, and the single `ErrorKind` → HTTP status mapping.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lucid_core::ErrorKind;
use serde::Serialize;

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// The request's id: the client's `X-Request-ID` if it is short printable ASCII, else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || format!("req-{:016x}", NEXT_REQUEST.fetch_add(1, Ordering::Relaxed)),
            str::to_owned,
        )
}

/// The HTTP status of a coarse error kind; the only place this mapping exists.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::PeerMisbehaved => StatusCode::BAD_REQUEST,
        ErrorKind::TransientNetwork | ErrorKind::StoreUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorKind::FeatureDisabled | ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        // ErrorKind is non-exhaustive; an unknown kind is treated as our own failure.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An API error: a stable code (`LUCID_ERR_<NAME>` on the wire), a message for humans, a status.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    request_id: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: String,
    message: &'a str,
    request_id: &'a str,
}

impl ApiError {
    /// An error with an explicit status and code name (without the `LUCID_ERR_` prefix).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), request_id: None }
    }

    /// An error of a coarse kind.
    pub fn of_kind(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(status_of(kind), code, message)
    }

    /// 404 for a route or resource that does not exist.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} not found"))
    }

    /// Attaches the request id.
    pub fn with_request_id(mut self, request_id: String) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = self.request_id.unwrap_or_else(|| request_id(&HeaderMap::new()));
        let body = Envelope {
            error: Body {
                code: format!("LUCID_ERR_{}", self.code),
                message: &self.message,
                request_id: &request_id,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
}
