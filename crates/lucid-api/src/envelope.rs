//! The one JSON error envelope and request ids.
//!
//! Handlers and extractors return a [`Failure`]; its response carries only the status and the
//! failure itself (as a response extension). The request-tracking middleware, which knows the
//! request id, renders every such response into the envelope, so there is exactly one place
//! where error bodies are written.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::failure::{Failure, status_of};

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// `Retry-After` (seconds) of a 503 `STORE_UNAVAILABLE`.
pub const STORE_RETRY_AFTER_SECONDS: &str = "1";

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

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: String,
    message: String,
    request_id: &'a str,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = status_of(&self).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Renders `failure` as the envelope for request `request_id`.
pub(crate) fn render(failure: &Failure, request_id: &str) -> Response {
    let body = Envelope {
        error: Body {
            code: format!("LUCID_ERR_{}", failure.code()),
            message: failure.to_string(),
            request_id,
        },
    };
    let mut response = (status_of(failure), axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    // A store that is busy or briefly unreachable (such as a full write queue) tells the client
    // when to try again.
    if *failure == Failure::StoreUnavailable {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static(STORE_RETRY_AFTER_SECONDS),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::header::RETRY_AFTER;

    use super::*;

    #[test]
    fn a_busy_store_tells_the_client_when_to_retry_and_nothing_else_does() {
        let busy = render(&Failure::StoreUnavailable, "req-1");
        assert_eq!(busy.status().as_u16(), 503);
        assert_eq!(busy.headers()[RETRY_AFTER], STORE_RETRY_AFTER_SECONDS);
        for other in [Failure::PoolFull, Failure::NotReady, Failure::Internal] {
            assert!(render(&other, "req-2").headers().get(RETRY_AFTER).is_none(), "{other:?}");
        }
    }
}
