//! The node-signed payout requests of `consensus.md` §4.5: `withdrawal` (a node asks for its
//! money) and `payout-cancel` (a node cancels one of its pending payouts), and
//! [`check_request`], the pure check the payer runs on them before it touches its ledger.
//!
//! Body v1 of `withdrawal`: `node ‖ Option<u64> amount_micros ‖ lp(idempotency_key ≤ 64) ‖
//! i64 ts_ms`. Body v1 of `payout-cancel`: `node ‖ lp(payout_id ≤ 64) ‖ i64 ts_ms`. Both are
//! signed by `node`, the node whose money moves, in the versioned, length-prefixed envelope of
//! every signed message (`lucid_core::message`); JSON is never signed.
//!
//! A request is accepted iff it decodes strictly, its signature is valid for the node it names
//! (`verify_strict`), it was made for this network, and its time lies within
//! ±[`REQUEST_WINDOW_MS`] of the payer's clock.
//!
//! Replays: the catalogue gives these bodies no nonce. A replayed `withdrawal` within the window
//! names the same `(node, idempotency key)` and therefore maps to the same payout id: the payer
//! answers with the original payout and never creates a second one. A replayed `payout-cancel`
//! meets a payout that is no longer `pending` and is refused as an invalid state. Outside the
//! window both are refused here. Between nodes, the forwarding hop is a `peer-call` whose nonce
//! the payer's replay cache refuses a second time.
//!
//! # Invariants
//! - `encode(decode(b)) == b` for every accepted `b` (the golden vectors pin the bytes).
//! - The idempotency key and the payout id are checked for their character sets at decode time,
//!   so no accepted message carries text that the ledger or the API would refuse later.

use lucid_core::codec::{DecodeError, Reader, Writer};
use lucid_core::message::Message;
use lucid_core::{MicroUsdt, NetworkId, NodeId, SignedMessage, UnixMillis};

use crate::payout::{MAX_CLIENT_KEY, is_client_key};

/// Largest difference between a request's time and the payer's clock, milliseconds
/// (`consensus.md` §4.5: 300 s).
pub const REQUEST_WINDOW_MS: i64 = 300_000;

/// Longest payout id in a `payout-cancel` (a genuine one is `payout_` + 24 hex).
pub const MAX_PAYOUT_ID: usize = 64;

/// A node asks the payer for (part of) its available balance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WithdrawalRequest {
    /// The node whose money is withdrawn; also the signer.
    pub node: NodeId,
    /// The gross asked for; `None` means everything available, capped at the maximum.
    pub amount: Option<MicroUsdt>,
    /// The client's idempotency key (1..=64 of `[A-Za-z0-9_-]`); the payout's key is `wd:{key}`.
    pub idempotency_key: String,
    /// Signing time.
    pub ts: UnixMillis,
}

impl Message for WithdrawalRequest {
    const TYPE_NAME: &'static str = "withdrawal";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.node);
        match self.amount {
            None => out.u8(0),
            Some(amount) => out.u8(1).u64(amount.0),
        };
        out.lp(self.idempotency_key.as_bytes()).time(self.ts);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let node = reader.node_id("node")?;
        let amount = if reader.option_tag("amount_micros")? {
            Some(MicroUsdt(reader.u64("amount_micros")?))
        } else {
            None
        };
        let key = reader.lp_str("idempotency_key", MAX_CLIENT_KEY)?;
        if !is_client_key(key) {
            return Err(DecodeError::InvalidValue {
                field: "idempotency_key",
                rule: "must be 1..=64 characters of [A-Za-z0-9_-]",
            });
        }
        let idempotency_key = key.to_owned();
        let ts = reader.time("ts_ms")?;
        Ok(WithdrawalRequest { node, amount, idempotency_key, ts })
    }

    fn signer(&self) -> NodeId {
        self.node
    }
}

/// A node cancels one of its own payouts (allowed only while it is `pending`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CancelRequest {
    /// The node that owns the payout; also the signer.
    pub node: NodeId,
    /// The payout to cancel.
    pub payout_id: String,
    /// Signing time.
    pub ts: UnixMillis,
}

impl Message for CancelRequest {
    const TYPE_NAME: &'static str = "payout-cancel";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.node).lp(self.payout_id.as_bytes()).time(self.ts);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let node = reader.node_id("node")?;
        let payout_id = reader.lp_str("payout_id", MAX_PAYOUT_ID)?;
        if payout_id.is_empty()
            || !payout_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(DecodeError::InvalidValue {
                field: "payout_id",
                rule: "must be 1..=64 characters of [A-Za-z0-9_]",
            });
        }
        let payout_id = payout_id.to_owned();
        let ts = reader.time("ts_ms")?;
        Ok(CancelRequest { node, payout_id, ts })
    }

    fn signer(&self) -> NodeId {
        self.node
    }
}

/// Why a signed payout request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// The bytes do not decode strictly as the expected type (the text says where).
    Malformed(String),
    /// The signature is not valid for the node the request names (a forgery, or signed by a
    /// node other than the one whose money it moves).
    BadSignature,
    /// Made for another network.
    WrongNetwork,
    /// Signed more than [`REQUEST_WINDOW_MS`] before the payer's clock (a stale replay).
    Expired,
    /// Signed more than [`REQUEST_WINDOW_MS`] after the payer's clock.
    FromFuture,
}

impl std::fmt::Display for RequestRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestRefusal::Malformed(detail) => write!(f, "malformed signed request: {detail}"),
            RequestRefusal::BadSignature => f.write_str("the signature does not verify"),
            RequestRefusal::WrongNetwork => {
                f.write_str("the request was signed for another network")
            }
            RequestRefusal::Expired => {
                f.write_str("the request was signed more than 300 s ago; sign it again")
            }
            RequestRefusal::FromFuture => {
                f.write_str("the request is dated more than 300 s in the future")
            }
        }
    }
}

/// Checks a signed payout request of type `M` for `network` at `now`: strict decoding, the
/// signature of the node it names, the network, and the ±300 s window, in this order (a
/// forgery is reported as such before anything it claims is looked at).
pub fn check_request<M: Message + HasTimestamp>(
    signed: &SignedMessage,
    network: &NetworkId,
    now: UnixMillis,
) -> Result<M, RequestRefusal> {
    let (made_for, request) = M::from_signed_bytes(signed.bytes())
        .map_err(|error| RequestRefusal::Malformed(error.to_string()))?;
    if !signed.verify(&request.signer()) {
        return Err(RequestRefusal::BadSignature);
    }
    if made_for != *network {
        return Err(RequestRefusal::WrongNetwork);
    }
    let skew = request.timestamp().0.saturating_sub(now.0);
    if skew < -REQUEST_WINDOW_MS {
        return Err(RequestRefusal::Expired);
    }
    if skew > REQUEST_WINDOW_MS {
        return Err(RequestRefusal::FromFuture);
    }
    Ok(request)
}

/// A signed request with a signing time.
pub trait HasTimestamp {
    /// When the request was signed.
    fn timestamp(&self) -> UnixMillis;
}

impl HasTimestamp for WithdrawalRequest {
    fn timestamp(&self) -> UnixMillis {
        self.ts
    }
}

impl HasTimestamp for CancelRequest {
    fn timestamp(&self) -> UnixMillis {
        self.ts
    }
}

#[cfg(test)]
mod tests;
