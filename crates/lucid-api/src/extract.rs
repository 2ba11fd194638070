//! Extractors whose rejections are [`Failure`]s, so that malformed, oversized, mistyped and
//! unknown-field bodies, bad paths and bad queries all end in the envelope.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::failure::Failure;

/// A JSON body (`Content-Type: application/json`, within the body limit, strictly typed; DTOs
/// deny unknown fields).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_failure(&rejection)),
        }
    }
}

fn json_failure(rejection: &JsonRejection) -> Failure {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Failure::UnsupportedMediaType,
        // The data error's text names the field and the expected type; it holds nothing internal.
        JsonRejection::JsonDataError(error) => Failure::InvalidInput(clip(&error.body_text())),
        JsonRejection::JsonSyntaxError(_) => {
            Failure::InvalidInput("the body is not valid JSON".to_owned())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Failure::BodyTooLarge,
        _ => Failure::InvalidInput("the body could not be read".to_owned()),
    }
}

/// A client message is short: a hostile body cannot make us echo kilobytes.
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Query parameters, strictly typed.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(Failure::InvalidInput(clip(&error.body_text())))
            }
            Err(_) => Err(Failure::InvalidInput("invalid query string".to_owned())),
        }
    }
}

/// Raw path parameters; handlers parse each by its text form (`consensus.md` §3).
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(_) => Err(Failure::InvalidInput("invalid path parameter".to_owned())),
        }
    }
}

/// Parses an id or number from its text form, naming the parameter on failure.
pub(crate) fn parse<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, Failure> {
    text.parse().map_err(|_| Failure::InvalidInput(format!("{name} is not valid")))
}
