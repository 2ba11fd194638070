//! Conversions between the protobuf wire types and domain types: [`FromProto`] with typed
//! [`GrpcError`]s for what comes in, [`ToProto`] for what goes out. Signed messages are carried
//! as their exact bytes and never rebuilt from fields.
//!
//! These are local traits rather than `TryFrom`/`From` because both sides are foreign to this
//! crate (the wire types live in `lucid-proto`, the domain types in `lucid-core` and
//! `lucid-consensus`), and the orphan rule forbids implementing a foreign trait between them.

use lucid_consensus::ingest::{Outcome, RejectReason, Verdict};
use lucid_consensus::{ProofKey, ProofKind};
use lucid_core::message::MAX_MESSAGE_BYTES as MAX_SIGNED_BYTES;
use lucid_core::{NodeId, Signature, SignedMessage, Slot, SlotRange};

use super::{GrpcError, PoolOpCursor, SlotDigest, pb};

/// A domain value decoded from its wire form; the error names the offending field.
pub trait FromProto<P>: Sized {
    /// Checks and converts `proto`.
    fn from_proto(proto: P) -> Result<Self, GrpcError>;
}

/// The wire form of a domain value.
pub trait ToProto<P> {
    /// Converts to the wire type.
    fn to_proto(&self) -> P;
}

fn invalid(field: &'static str, reason: impl Into<String>) -> GrpcError {
    GrpcError::InvalidField { field, reason: reason.into() }
}

impl FromProto<pb::SignedMessage> for SignedMessage {
    /// Checks only the shape (non-empty bytes within the canonical maximum, a 64-byte
    /// signature); decoding and verification are the ingest's job.
    fn from_proto(message: pb::SignedMessage) -> Result<Self, GrpcError> {
        if message.message.is_empty() {
            return Err(invalid("message", "empty"));
        }
        if message.message.len() > MAX_SIGNED_BYTES {
            return Err(invalid(
                "message",
                format!("{} bytes, at most {MAX_SIGNED_BYTES}", message.message.len()),
            ));
        }
        let signature: [u8; 64] = message.signature.as_slice().try_into().map_err(|_| {
            invalid("signature", format!("{} bytes, expected 64", message.signature.len()))
        })?;
        Ok(SignedMessage::new(message.message, Signature::from_bytes(signature)))
    }
}

impl ToProto<pb::SignedMessage> for SignedMessage {
    fn to_proto(&self) -> pb::SignedMessage {
        let message = self;
        pb::SignedMessage {
            message: message.bytes().to_vec(),
            signature: message.signature().as_bytes().to_vec(),
        }
    }
}

impl FromProto<pb::ProofCursor> for ProofKey {
    fn from_proto(cursor: pb::ProofCursor) -> Result<Self, GrpcError> {
        let node = node_from_bytes("after.node", &cursor.node)?;
        let kind = u8::try_from(cursor.kind)
            .ok()
            .and_then(ProofKind::from_tag)
            .ok_or_else(|| invalid("after.kind", format!("unknown proof kind {}", cursor.kind)))?;
        Ok(ProofKey { node, slot: Slot(cursor.slot), kind })
    }
}

impl ToProto<pb::ProofCursor> for ProofKey {
    fn to_proto(&self) -> pb::ProofCursor {
        let key = self;
        pb::ProofCursor {
            slot: key.slot.0,
            node: key.node.as_bytes().to_vec(),
            kind: u32::from(key.kind.tag()),
        }
    }
}

/// A node id from its 32 raw bytes; small-order and non-canonical keys are refused.
pub fn node_from_bytes(field: &'static str, bytes: &[u8]) -> Result<NodeId, GrpcError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| invalid(field, format!("{} bytes, expected 32", bytes.len())))?;
    NodeId::from_bytes(bytes).map_err(|e| invalid(field, e.to_string()))
}

/// A node id from its text form (`node_` + 64 lowercase hex); weak keys are refused.
pub fn node_from_text(field: &'static str, text: &str) -> Result<NodeId, GrpcError> {
    text.parse().map_err(|e: lucid_core::ids::IdParseError| invalid(field, e.to_string()))
}

/// The range `[from, to)`, non-empty and at most `max` slots long.
pub fn slot_range(from: u64, to: u64, max: u64) -> Result<SlotRange, GrpcError> {
    if to <= from {
        return Err(invalid("to_slot", "must be greater than from_slot"));
    }
    if to - from > max {
        return Err(invalid("to_slot", format!("at most {max} slots per request")));
    }
    Ok(SlotRange { start: Slot(from), end: Slot(to) })
}

/// A page size: 0 means `max`; above `max` is refused.
pub fn page_limit(field: &'static str, limit: u32, max: usize) -> Result<usize, GrpcError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match limit {
        0 => Ok(max),
        n if n <= max => Ok(n),
        n => Err(GrpcError::TooMany { field, len: n, max }),
    }
}

impl ToProto<pb::RejectReason> for RejectReason {
    fn to_proto(&self) -> pb::RejectReason {
        match self {
            RejectReason::Malformed => pb::RejectReason::Malformed,
            RejectReason::UnsupportedVersion => pb::RejectReason::UnsupportedVersion,
            RejectReason::WrongNetwork => pb::RejectReason::WrongNetwork,
            RejectReason::WeakKey => pb::RejectReason::WeakKey,
            RejectReason::SlotTimestampMismatch => pb::RejectReason::SlotTimestampMismatch,
            RejectReason::Stale => pb::RejectReason::Stale,
            RejectReason::FromFuture => pb::RejectReason::FromFuture,
            RejectReason::UnknownNode => pb::RejectReason::UnknownNode,
            RejectReason::ValueOutOfRange => pb::RejectReason::ValueOutOfRange,
            RejectReason::BadSignature => pb::RejectReason::BadSignature,
            RejectReason::Equivocation => pb::RejectReason::Equivocation,
            RejectReason::Superseded => pb::RejectReason::Superseded,
            RejectReason::SealMismatch => pb::RejectReason::SealMismatch,
        }
    }
}

impl ToProto<pb::MessageVerdict> for Outcome {
    fn to_proto(&self) -> pb::MessageVerdict {
        let outcome = self;
        let (verdict, reason) = match outcome.verdict {
            Verdict::Accept => (pb::Verdict::Accept, pb::RejectReason::Unspecified),
            Verdict::Duplicate => (pb::Verdict::Duplicate, pb::RejectReason::Unspecified),
            Verdict::Reject(reason) => (pb::Verdict::Reject, reason.to_proto()),
        };
        pb::MessageVerdict {
            digest: outcome.digest.as_bytes().to_vec(),
            verdict: verdict.into(),
            reason: reason.into(),
        }
    }
}

impl ToProto<pb::SlotDigest> for SlotDigest {
    fn to_proto(&self) -> pb::SlotDigest {
        let digest = self;
        pb::SlotDigest {
            slot: digest.slot.0,
            count: digest.count,
            root: digest.root.as_bytes().to_vec(),
        }
    }
}

impl FromProto<pb::MessageVerdict> for Outcome {
    /// A peer's verdict as the caller reads it: a 32-byte digest and a known verdict with, for a
    /// rejection, a known reason.
    fn from_proto(proto: pb::MessageVerdict) -> Result<Self, GrpcError> {
        let digest: [u8; 32] =
            proto.digest.as_slice().try_into().map_err(|_| {
                invalid("digest", format!("{} bytes, expected 32", proto.digest.len()))
            })?;
        let reason = || -> Result<RejectReason, GrpcError> {
            use pb::RejectReason as R;
            Ok(match pb::RejectReason::try_from(proto.reason) {
                Ok(R::Malformed) => RejectReason::Malformed,
                Ok(R::UnsupportedVersion) => RejectReason::UnsupportedVersion,
                Ok(R::WrongNetwork) => RejectReason::WrongNetwork,
                Ok(R::WeakKey) => RejectReason::WeakKey,
                Ok(R::SlotTimestampMismatch) => RejectReason::SlotTimestampMismatch,
                Ok(R::Stale) => RejectReason::Stale,
                Ok(R::FromFuture) => RejectReason::FromFuture,
                Ok(R::UnknownNode) => RejectReason::UnknownNode,
                Ok(R::ValueOutOfRange) => RejectReason::ValueOutOfRange,
                Ok(R::BadSignature) => RejectReason::BadSignature,
                Ok(R::Equivocation) => RejectReason::Equivocation,
                Ok(R::Superseded) => RejectReason::Superseded,
                Ok(R::SealMismatch) => RejectReason::SealMismatch,
                _ => return Err(invalid("reason", "unknown reject reason")),
            })
        };
        let verdict = match pb::Verdict::try_from(proto.verdict) {
            Ok(pb::Verdict::Accept) => Verdict::Accept,
            Ok(pb::Verdict::Duplicate) => Verdict::Duplicate,
            Ok(pb::Verdict::Reject) => Verdict::Reject(reason()?),
            _ => return Err(invalid("verdict", "unknown verdict")),
        };
        Ok(Outcome { digest: lucid_core::Digest::from_bytes(digest), verdict })
    }
}

impl FromProto<pb::SlotDigest> for SlotDigest {
    fn from_proto(proto: pb::SlotDigest) -> Result<Self, GrpcError> {
        let root: [u8; 32] = proto
            .root
            .as_slice()
            .try_into()
            .map_err(|_| invalid("root", format!("{} bytes, expected 32", proto.root.len())))?;
        Ok(SlotDigest {
            slot: Slot(proto.slot),
            count: proto.count,
            root: lucid_core::Digest::from_bytes(root),
        })
    }
}

#[cfg(test)]
mod tests;

impl FromProto<pb::PoolOpCursor> for PoolOpCursor {
    fn from_proto(cursor: pb::PoolOpCursor) -> Result<Self, GrpcError> {
        Ok(PoolOpCursor {
            slot: Slot(cursor.slot),
            digest: digest_from_bytes("after.digest", &cursor.digest)?,
        })
    }
}

impl ToProto<pb::PoolOpCursor> for PoolOpCursor {
    fn to_proto(&self) -> pb::PoolOpCursor {
        pb::PoolOpCursor { slot: self.slot.0, digest: self.digest.as_bytes().to_vec() }
    }
}

/// A digest from its 32 raw bytes.
pub fn digest_from_bytes(
    field: &'static str,
    bytes: &[u8],
) -> Result<lucid_core::Digest, GrpcError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| invalid(field, format!("{} bytes, expected 32", bytes.len())))?;
    Ok(lucid_core::Digest::from_bytes(bytes))
}

/// Most attempts a payout record may carry (1 + the largest `payouts.max_retries`, with room).
pub const MAX_ATTEMPTS: usize = 16;
/// Longest text field of a payout record (ids, statuses, amounts, keys, addresses).
const MAX_PAYOUT_TEXT: usize = 128;

fn payout_text(field: &'static str, text: String) -> Result<String, GrpcError> {
    if text.len() > MAX_PAYOUT_TEXT || text.chars().any(char::is_control) {
        return Err(invalid(field, "longer than 128 bytes or with control characters"));
    }
    Ok(text)
}

fn amount_text(field: &'static str, text: String) -> Result<String, GrpcError> {
    let text = payout_text(field, text)?;
    text.parse::<lucid_core::MicroUsdt>()
        .map_err(|_| invalid(field, "not a decimal amount with at most 6 fractional digits"))?;
    Ok(text)
}

impl ToProto<pb::PayoutRecord> for crate::dto::PayoutView {
    fn to_proto(&self) -> pb::PayoutRecord {
        let view = self;
        pb::PayoutRecord {
            payout_id: view.payout_id.clone(),
            node_id: view.node_id.clone(),
            origin: view.origin.clone(),
            status: view.status.clone(),
            gross: view.gross.clone(),
            fee: view.fee.clone(),
            net: view.net.clone(),
            to_address: view.to_address.clone(),
            idempotency_key: view.idempotency_key.clone(),
            attempts: view
                .attempts
                .iter()
                .map(|a| pb::PayoutAttemptRecord {
                    attempt_no: a.attempt_no,
                    txid: a.txid.clone(),
                    status: a.status.clone(),
                    fee_limit_sun: a.fee_limit_sun,
                    expiration: a.expiration,
                    broadcast_at: a.broadcast_at,
                    block_number: a.block_number,
                    energy_used: a.energy_used,
                    fee_sun: a.fee_sun,
                })
                .collect(),
            error_code: view.error_code.clone(),
            created_at: view.created_at,
            updated_at: view.updated_at,
            completed_at: view.completed_at,
        }
    }
}

impl FromProto<pb::PayoutRecord> for crate::dto::PayoutView {
    /// Checks what another node (the payer) sent before this node shows it: a valid payout id
    /// and node id, decimal amounts, bounded texts and at most [`MAX_ATTEMPTS`] attempts.
    fn from_proto(record: pb::PayoutRecord) -> Result<Self, GrpcError> {
        crate::routes::payout_id(&record.payout_id)
            .map_err(|_| invalid("payout_id", "not a payout id"))?;
        node_from_text("node_id", &record.node_id)?;
        if record.attempts.len() > MAX_ATTEMPTS {
            return Err(GrpcError::TooMany {
                field: "attempts",
                len: record.attempts.len(),
                max: MAX_ATTEMPTS,
            });
        }
        let attempts = record
            .attempts
            .into_iter()
            .map(|a| {
                Ok(crate::dto::AttemptView {
                    attempt_no: a.attempt_no,
                    txid: payout_text("attempts.txid", a.txid)?,
                    status: payout_text("attempts.status", a.status)?,
                    fee_limit_sun: a.fee_limit_sun,
                    expiration: a.expiration,
                    broadcast_at: a.broadcast_at,
                    block_number: a.block_number,
                    energy_used: a.energy_used,
                    fee_sun: a.fee_sun,
                })
            })
            .collect::<Result<Vec<_>, GrpcError>>()?;
        Ok(crate::dto::PayoutView {
            payout_id: record.payout_id,
            node_id: record.node_id,
            origin: payout_text("origin", record.origin)?,
            status: payout_text("status", record.status)?,
            gross: amount_text("gross", record.gross)?,
            fee: amount_text("fee", record.fee)?,
            net: amount_text("net", record.net)?,
            to_address: payout_text("to_address", record.to_address)?,
            idempotency_key: payout_text("idempotency_key", record.idempotency_key)?,
            attempts,
            error_code: record.error_code.map(|c| payout_text("error_code", c)).transpose()?,
            created_at: record.created_at,
            updated_at: record.updated_at,
            completed_at: record.completed_at,
        })
    }
}

/// The wire form of one ledger line; an amount that is no [`crate::dto::signed_amount`] text
/// is refused (it never is: the views are made from integers).
pub fn ledger_line_to_proto(
    line: &crate::dto::LedgerLineView,
) -> Result<pb::LedgerLine, GrpcError> {
    let micro = |field, text: &str| {
        crate::dto::parse_signed_amount(text).ok_or_else(|| invalid(field, "not a signed amount"))
    };
    Ok(pb::LedgerLine {
        posting_key: line.posting_key.clone(),
        kind: line.kind.clone(),
        amount_micro: micro("amount", &line.amount)?,
        created_at: line.created_at,
        memo: line.memo.clone(),
        balance_after_micro: micro("balance_after", &line.balance_after)?,
    })
}

impl FromProto<pb::LedgerLine> for crate::dto::LedgerLineView {
    /// Checks what the payer sent before this node shows it: bounded texts without control
    /// characters, a non-zero amount, a non-negative balance and time.
    fn from_proto(line: pb::LedgerLine) -> Result<Self, GrpcError> {
        if line.posting_key.is_empty() {
            return Err(invalid("posting_key", "empty"));
        }
        if line.amount_micro == 0 {
            return Err(invalid("amount_micro", "an entry is never zero"));
        }
        if line.balance_after_micro < 0 {
            return Err(invalid("balance_after_micro", "a node's balance is never negative"));
        }
        if line.created_at < 0 {
            return Err(invalid("created_at", "before 1970"));
        }
        Ok(crate::dto::LedgerLineView {
            posting_key: payout_text("posting_key", line.posting_key)?,
            kind: payout_text("kind", line.kind)?,
            amount: crate::dto::signed_amount(line.amount_micro),
            created_at: line.created_at,
            memo: line.memo.map(|memo| payout_text("memo", memo)).transpose()?,
            balance_after: crate::dto::signed_amount(line.balance_after_micro),
        })
    }
}

/// The refusal a payer sends for `failure`: its stable code and detail.
pub fn payout_refusal(failure: &crate::Failure) -> pb::PayoutRefusal {
    pb::PayoutRefusal {
        code: failure.code().to_owned(),
        detail: crate::failure::clip_detail(failure.detail()),
    }
}

/// What a payer answered to a forwarded request: the payout (with whether the request created
/// it), or the payer's refusal as the same [`crate::Failure`]. A refusal with a code a payout
/// request cannot end in, or an answer without an outcome, is a broken answer.
pub fn payout_answer(
    answer: pb::PayoutAnswer,
) -> Result<Result<(bool, crate::dto::PayoutView), crate::Failure>, GrpcError> {
    match answer.outcome {
        Some(pb::payout_answer::Outcome::Payout(record)) => {
            Ok(Ok((answer.created, crate::dto::PayoutView::from_proto(record)?)))
        }
        Some(pb::payout_answer::Outcome::Refusal(refusal)) => {
            crate::Failure::from_payer(&refusal.code, &refusal.detail)
                .map(Err)
                .ok_or_else(|| invalid("refusal.code", "not a payout refusal code"))
        }
        None => Err(invalid("outcome", "missing")),
    }
}
