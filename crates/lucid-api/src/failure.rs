//! `Failure`, the one error type of this crate: every refusal an API call can end in, each with a
//! stable wire code, and [`status_of`], the only place where a failure becomes an HTTP status.

use axum::http::StatusCode;
use lucid_core::{ErrorKind, HasKind};

/// What does not exist (`LUCID_ERR_<WHAT>_NOT_FOUND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No route matches the path.
    Route,
    /// No such node is known.
    Node,
    /// No such pool.
    Pool,
    /// No such payout.
    Payout,
    /// No tally of the epoch is stored.
    Tally,
    /// The slot is in the future or has no stored schedule.
    Slot,
}

/// Everything an API call can end in besides success. The `Display` text is what the client
/// reads: it never carries internal detail (SQL, paths, peer addresses); callers log that first.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The request is syntactically or semantically invalid; the text says which field.
    #[error("{0}")]
    InvalidInput(String),
    /// A signed message does not decode strictly.
    #[error("malformed signed message: {0}")]
    MalformedMessage(String),
    /// A signature does not verify against its signer.
    #[error("the signature does not verify")]
    BadSignature,
    /// A pool name breaks the naming rule.
    #[error("pool names are 3..=64 characters of [a-z0-9_-]")]
    InvalidName,
    /// `max_nodes` outside 1..=100.
    #[error("max_nodes must be between 1 and 100")]
    InvalidMaxNodes,
    /// No or malformed `Authorization: Bearer` header.
    #[error("this operation needs the admin bearer token")]
    Unauthenticated,
    /// A token was presented and is wrong.
    #[error("the token does not allow this operation")]
    Forbidden,
    /// Only the pool's leader may do this.
    #[error("only the pool's leader may do this")]
    NotLeader,
    /// The thing asked for does not exist.
    #[error("{} not found", missing_text(*.0))]
    NotFound(Missing),
    /// The pool has no free seat (seats plus pending joins reach `max_nodes`).
    #[error("the pool is full")]
    PoolFull,
    /// The node already holds a seat (or has a join pending).
    #[error("the node already holds a seat or has a join pending")]
    AlreadyInPool,
    /// The pool is disbanded.
    #[error("the pool is disbanded")]
    PoolDisbanded,
    /// The node holds no seat in the pool.
    #[error("the node holds no seat in this pool")]
    NotMember,
    /// The node is banned in the pool.
    #[error("the node is banned in this pool")]
    Banned,
    /// `max_nodes` below the seats held.
    #[error("max_nodes is below the seats held")]
    BelowSeats,
    /// The object is not in a state that allows this.
    #[error("{0}")]
    InvalidState(String),
    /// The idempotency key was used with another request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    /// The gross is below the payout minimum.
    #[error("below the minimum payout of {0}")]
    BelowMinimum(String),
    /// The gross is above the payout maximum.
    #[error("above the maximum payout of {0}")]
    AboveMaximum(String),
    /// The gross exceeds the available balance.
    #[error("insufficient balance: {0} available")]
    InsufficientBalance(String),
    /// The node has no registered payout address.
    #[error("no payout address is registered for the node")]
    NoPayoutAddress,
    /// The body exceeds the limit.
    #[error("the request body is larger than the limit")]
    BodyTooLarge,
    /// The body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The route exists but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The node is not ready.
    #[error("the node is not ready")]
    NotReady,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The database could not be used; retry later.
    #[error("the store is unavailable; retry later")]
    StoreUnavailable,
    /// A feature this needs is off.
    #[error("{0}")]
    FeatureDisabled(String),
    /// This node is not the payer and the payer (`payouts.payer_node_id`) did not answer:
    /// nothing was created or cancelled here; retry later.
    #[error("the payer node is not reachable; retry later")]
    PayerUnreachable,
    /// A bug on our side (logged with detail where it happened).
    #[error("internal error")]
    Internal,
}

fn missing_text(missing: Missing) -> &'static str {
    match missing {
        Missing::Route => "route",
        Missing::Node => "node",
        Missing::Pool => "pool",
        Missing::Payout => "payout",
        Missing::Tally => "tally",
        Missing::Slot => "slot schedule",
    }
}

impl Failure {
    /// The stable code, without the `LUCID_ERR_` prefix.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::InvalidInput(_) => "INVALID_INPUT",
            Failure::MalformedMessage(_) => "MALFORMED_MESSAGE",
            Failure::BadSignature => "BAD_SIGNATURE",
            Failure::InvalidName => "INVALID_NAME",
            Failure::InvalidMaxNodes => "INVALID_MAX_NODES",
            Failure::Unauthenticated => "UNAUTHENTICATED",
            Failure::Forbidden => "FORBIDDEN",
            Failure::NotLeader => "NOT_LEADER",
            Failure::NotFound(Missing::Route) => "NOT_FOUND",
            Failure::NotFound(Missing::Node) => "NODE_NOT_FOUND",
            Failure::NotFound(Missing::Pool) => "POOL_NOT_FOUND",
            Failure::NotFound(Missing::Payout) => "PAYOUT_NOT_FOUND",
            Failure::NotFound(Missing::Tally) => "TALLY_NOT_FOUND",
            Failure::NotFound(Missing::Slot) => "SLOT_NOT_SCHEDULED",
            Failure::PoolFull => "POOL_FULL",
            Failure::AlreadyInPool => "ALREADY_IN_POOL",
            Failure::PoolDisbanded => "POOL_DISBANDED",
            Failure::NotMember => "NOT_MEMBER",
            Failure::Banned => "BANNED",
            Failure::BelowSeats => "BELOW_SEATS",
            Failure::InvalidState(_) => "INVALID_STATE",
            Failure::IdempotencyConflict => "IDEMPOTENCY_CONFLICT",
            Failure::BelowMinimum(_) => "BELOW_MINIMUM",
            Failure::AboveMaximum(_) => "ABOVE_MAXIMUM",
            Failure::InsufficientBalance(_) => "INSUFFICIENT_BALANCE",
            Failure::NoPayoutAddress => "NO_PAYOUT_ADDRESS",
            Failure::BodyTooLarge => "BODY_TOO_LARGE",
            Failure::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Failure::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Failure::NotReady => "NOT_READY",
            Failure::ShuttingDown => "SHUTTING_DOWN",
            Failure::StoreUnavailable => "STORE_UNAVAILABLE",
            Failure::FeatureDisabled(_) => "FEATURE_DISABLED",
            Failure::PayerUnreachable => "PAYER_UNREACHABLE",
            Failure::Internal => "INTERNAL",
        }
    }

    /// The detail a variant carries (an amount, a field message), empty for the others: with
    /// [`Failure::code`] it is what travels when the payer answers another node's request.
    pub fn detail(&self) -> &str {
        match self {
            Failure::InvalidInput(detail)
            | Failure::MalformedMessage(detail)
            | Failure::InvalidState(detail)
            | Failure::BelowMinimum(detail)
            | Failure::AboveMaximum(detail)
            | Failure::InsufficientBalance(detail)
            | Failure::FeatureDisabled(detail) => detail,
            _ => "",
        }
    }

    /// The failure a payer reported by `code` and `detail` (see [`Failure::detail`]), for the
    /// codes a payout request can end in; `None` for any other code, which the caller must treat
    /// as a broken answer. The detail is clipped to [`MAX_WIRE_DETAIL`] bytes.
    pub fn from_payer(code: &str, detail: &str) -> Option<Failure> {
        let detail = clip_detail(detail);
        Some(match code {
            "INVALID_INPUT" => Failure::InvalidInput(detail),
            "MALFORMED_MESSAGE" => Failure::MalformedMessage(detail),
            "BAD_SIGNATURE" => Failure::BadSignature,
            "FORBIDDEN" => Failure::Forbidden,
            "PAYOUT_NOT_FOUND" => Failure::NotFound(Missing::Payout),
            "INVALID_STATE" => Failure::InvalidState(detail),
            "IDEMPOTENCY_CONFLICT" => Failure::IdempotencyConflict,
            "BELOW_MINIMUM" => Failure::BelowMinimum(detail),
            "ABOVE_MAXIMUM" => Failure::AboveMaximum(detail),
            "INSUFFICIENT_BALANCE" => Failure::InsufficientBalance(detail),
            "NO_PAYOUT_ADDRESS" => Failure::NoPayoutAddress,
            "NOT_READY" => Failure::NotReady,
            "SHUTTING_DOWN" => Failure::ShuttingDown,
            "STORE_UNAVAILABLE" => Failure::StoreUnavailable,
            "FEATURE_DISABLED" => Failure::FeatureDisabled(detail),
            "INTERNAL" => Failure::Internal,
            _ => return None,
        })
    }
}

/// Longest failure detail carried between nodes, bytes.
pub const MAX_WIRE_DETAIL: usize = 256;

/// `detail` cut to at most [`MAX_WIRE_DETAIL`] bytes on a character boundary.
pub(crate) fn clip_detail(detail: &str) -> String {
    let mut end = detail.len().min(MAX_WIRE_DETAIL);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    detail[..end].to_owned()
}

impl HasKind for Failure {
    fn kind(&self) -> ErrorKind {
        match self {
            Failure::InvalidInput(_)
            | Failure::MalformedMessage(_)
            | Failure::BadSignature
            | Failure::InvalidName
            | Failure::InvalidMaxNodes
            | Failure::BodyTooLarge
            | Failure::UnsupportedMediaType
            | Failure::MethodNotAllowed
            | Failure::BelowMinimum(_)
            | Failure::AboveMaximum(_)
            | Failure::InsufficientBalance(_)
            | Failure::NoPayoutAddress => ErrorKind::InvalidInput,
            Failure::Unauthenticated => ErrorKind::Unauthenticated,
            Failure::Forbidden | Failure::NotLeader => ErrorKind::Forbidden,
            Failure::NotFound(_) => ErrorKind::NotFound,
            Failure::PoolFull
            | Failure::AlreadyInPool
            | Failure::PoolDisbanded
            | Failure::NotMember
            | Failure::Banned
            | Failure::BelowSeats
            | Failure::InvalidState(_)
            | Failure::IdempotencyConflict => ErrorKind::Conflict,
            Failure::NotReady | Failure::ShuttingDown => ErrorKind::ShuttingDown,
            Failure::StoreUnavailable => ErrorKind::StoreUnavailable,
            Failure::FeatureDisabled(_) => ErrorKind::FeatureDisabled,
            Failure::PayerUnreachable => ErrorKind::TransientNetwork,
            Failure::Internal => ErrorKind::Internal,
        }
    }
}

/// The HTTP status of a failure: the only place this mapping exists. Statuses that HTTP
/// distinguishes more finely than [`ErrorKind`] (413, 415, 405, 422) are decided by the variant;
/// everything else by its kind.
pub fn status_of(failure: &Failure) -> StatusCode {
    match failure {
        Failure::BodyTooLarge => return StatusCode::PAYLOAD_TOO_LARGE,
        Failure::UnsupportedMediaType => return StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Failure::MethodNotAllowed => return StatusCode::METHOD_NOT_ALLOWED,
        Failure::BelowMinimum(_)
        | Failure::AboveMaximum(_)
        | Failure::InsufficientBalance(_)
        | Failure::NoPayoutAddress => return StatusCode::UNPROCESSABLE_ENTITY,
        _ => {}
    }
    match failure.kind() {
        ErrorKind::InvalidInput | ErrorKind::PeerMisbehaved => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::TransientNetwork
        | ErrorKind::StoreUnavailable
        | ErrorKind::FeatureDisabled
        | ErrorKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        // ErrorKind is non-exhaustive; an unknown kind is treated as our own failure.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_refusals_have_their_documented_statuses_and_codes() {
        let cases = [
            (Failure::PoolFull, 409, "POOL_FULL"),
            (Failure::AlreadyInPool, 409, "ALREADY_IN_POOL"),
            (Failure::BelowSeats, 409, "BELOW_SEATS"),
            (Failure::NotLeader, 403, "NOT_LEADER"),
            (Failure::NotFound(Missing::Pool), 404, "POOL_NOT_FOUND"),
            (Failure::NotFound(Missing::Slot), 404, "SLOT_NOT_SCHEDULED"),
            (Failure::Unauthenticated, 401, "UNAUTHENTICATED"),
            (Failure::Forbidden, 403, "FORBIDDEN"),
            (Failure::BodyTooLarge, 413, "BODY_TOO_LARGE"),
            (Failure::UnsupportedMediaType, 415, "UNSUPPORTED_MEDIA_TYPE"),
            (Failure::BelowMinimum("10.000000".into()), 422, "BELOW_MINIMUM"),
            (Failure::NoPayoutAddress, 422, "NO_PAYOUT_ADDRESS"),
            (Failure::IdempotencyConflict, 409, "IDEMPOTENCY_CONFLICT"),
            (Failure::InvalidState("x".into()), 409, "INVALID_STATE"),
            (Failure::StoreUnavailable, 503, "STORE_UNAVAILABLE"),
            (Failure::InvalidInput("x".into()), 400, "INVALID_INPUT"),
            (Failure::Internal, 500, "INTERNAL"),
            (Failure::PayerUnreachable, 503, "PAYER_UNREACHABLE"),
        ];
        for (failure, status, code) in cases {
            assert_eq!(status_of(&failure).as_u16(), status, "{failure:?}");
            assert_eq!(failure.code(), code);
        }
    }

    #[test]
    fn payer_refusals_survive_the_trip_between_nodes() {
        let refusals = [
            Failure::InvalidInput("x".into()),
            Failure::MalformedMessage("m".into()),
            Failure::BadSignature,
            Failure::Forbidden,
            Failure::NotFound(Missing::Payout),
            Failure::InvalidState("not pending".into()),
            Failure::IdempotencyConflict,
            Failure::BelowMinimum("10.000000".into()),
            Failure::AboveMaximum("10000.000000".into()),
            Failure::InsufficientBalance("3.500000".into()),
            Failure::NoPayoutAddress,
            Failure::StoreUnavailable,
            Failure::FeatureDisabled("off".into()),
            Failure::Internal,
        ];
        for failure in refusals {
            assert_eq!(Failure::from_payer(failure.code(), failure.detail()), Some(failure));
        }
        // Codes a payout request cannot end in, and made-up ones, are not trusted.
        for code in ["POOL_FULL", "PAYER_UNREACHABLE", "", "LUCID_ERR_INTERNAL", "nope"] {
            assert_eq!(Failure::from_payer(code, ""), None, "{code}");
        }
        // An oversized detail is clipped, on a character boundary.
        let long = "é".repeat(400);
        let Some(Failure::InvalidInput(clipped)) = Failure::from_payer("INVALID_INPUT", &long)
        else {
            panic!("INVALID_INPUT")
        };
        assert!(clipped.len() <= MAX_WIRE_DETAIL && clipped.chars().all(|c| c == 'é'));
    }

    #[test]
    fn client_messages_carry_no_internal_detail() {
        assert_eq!(Failure::Internal.to_string(), "internal error");
        assert_eq!(Failure::StoreUnavailable.to_string(), "the store is unavailable; retry later");
        assert_eq!(Failure::NotFound(Missing::Payout).to_string(), "payout not found");
    }
}
