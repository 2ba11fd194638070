//! Signed peer calls: the `peer-call` message that authenticates every RPC of the `Peer` service,
//! and [`PeerCallGuard`], the pure check a callee runs on it.
//!
//! Body v1 of `peer-call`: `caller ‖ callee ‖ lp(method) ‖ i64 ts_ms ‖ nonce[16] ‖
//! payload_digest[32]`, signed by the caller (`consensus.md` §4.5). `method` is the full gRPC
//! path (`/lucid.node.v1.Peer/Hello`); `payload_digest` is the plain BLAKE3 hash of the request's
//! protobuf encoding (for streams, of the first message), so a signature covers exactly one
//! request to exactly one callee.
//!
//! The guard accepts a call iff it decodes strictly, was made for this network and this callee
//! and method, its time lies within ±30 s of the callee's clock, its digest matches the request,
//! the caller's signature is valid under `verify_strict`, and its nonce was not seen in the last
//! five minutes. A refusal says whether the caller's signature was valid
//! ([`PeerCallRefusal::attributable`]): only then may it count against the caller, because anyone
//! can forge a call in someone else's name.
//!
//! # Invariants
//! - A nonce is recorded only after every other check passed, so a forged or stale call can never
//!   burn the nonce of a genuine one.
//! - The replay cache holds at most [`REPLAY_CAPACITY`] nonces; when it is full of live entries
//!   the guard refuses ([`RefusalReason::ReplayCacheFull`]) rather than forget a nonce early.

use std::collections::{HashSet, VecDeque};

use lucid_core::codec::{DecodeError, Reader, Writer};
use lucid_core::message::Message;
use lucid_core::{Digest, NetworkId, NodeId, SignedMessage, UnixMillis};

/// Longest method name.
pub const MAX_METHOD: usize = 128;
/// Largest clock difference between caller and callee, milliseconds (`consensus.md` §4.5).
pub const MAX_SKEW_MS: i64 = 30_000;
/// How long a seen nonce is remembered, milliseconds.
pub const REPLAY_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most nonces the replay cache holds.
pub const REPLAY_CAPACITY: usize = 1 << 18;
/// Largest encoded peer call accepted in metadata (the message is about 250 bytes).
pub const MAX_PEER_CALL_BYTES: usize = 1024;

/// One authenticated call of a `Peer` RPC.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerCall {
    /// The calling node; also the signer.
    pub caller: NodeId,
    /// The node called.
    pub callee: NodeId,
    /// The full gRPC method path.
    pub method: String,
    /// Signing time.
    pub ts: UnixMillis,
    /// Random, unique per call.
    pub nonce: [u8; 16],
    /// BLAKE3 of the request's protobuf encoding.
    pub payload_digest: Digest,
}

impl Message for PeerCall {
    const TYPE_NAME: &'static str = "peer-call";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.caller)
            .node_id(&self.callee)
            .lp(self.method.as_bytes())
            .time(self.ts)
            .raw(&self.nonce)
            .digest(&self.payload_digest);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let caller = reader.node_id("caller")?;
        let callee = reader.node_id("callee")?;
        let method = reader.lp_str("method", MAX_METHOD)?;
        if method.is_empty() || !method.is_ascii() {
            return Err(DecodeError::InvalidValue {
                field: "method",
                rule: "must be a non-empty ASCII gRPC path",
            });
        }
        let method = method.to_owned();
        let ts = reader.time("ts_ms")?;
        let nonce = reader.array("nonce")?;
        let payload_digest = reader.digest("payload_digest")?;
        Ok(PeerCall { caller, callee, method, ts, nonce, payload_digest })
    }

    fn signer(&self) -> NodeId {
        self.caller
    }
}

/// The digest a peer call carries for a request whose protobuf encoding is `encoded`.
pub fn payload_digest(encoded: &[u8]) -> Digest {
    lucid_core::hash::content_hash(encoded)
}

/// Why a peer call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The call carried no peer-call metadata.
    #[error("missing peer-call metadata")]
    Missing,
    /// The metadata is larger than any genuine peer call.
    #[error("oversized peer-call metadata")]
    Oversized,
    /// The metadata does not decode strictly.
    #[error("malformed peer call")]
    Malformed,
    /// The signature is not valid for the claimed caller.
    #[error("bad peer-call signature")]
    BadSignature,
    /// Made for another network.
    #[error("peer call for another network")]
    WrongNetwork,
    /// Made for another node.
    #[error("peer call for another callee")]
    WrongCallee,
    /// Made for another method.
    #[error("peer call for another method")]
    WrongMethod,
    /// Signed more than 30 s before the callee's clock.
    #[error("expired peer call")]
    Expired,
    /// Signed more than 30 s after the callee's clock.
    #[error("peer call from the future")]
    FromFuture,
    /// The digest does not match the request (altered, or unknown fields).
    #[error("peer call digest does not match the request")]
    DigestMismatch,
    /// The nonce was seen within the replay window.
    #[error("replayed peer call")]
    Replayed,
    /// The caller has no accepted registration (every RPC but `Hello` needs one).
    #[error("unregistered caller")]
    Unregistered,
    /// The replay cache is full of live nonces; the call may be retried.
    #[error("replay cache full")]
    ReplayCacheFull,
}

/// A refused peer call: the reason, and the caller if its signature was valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCallRefusal {
    /// Why.
    pub reason: RefusalReason,
    /// The caller, when the call carried its valid signature (so the refusal may count against
    /// it); `None` for missing, malformed and forged calls.
    pub attributable: Option<NodeId>,
}

/// The callee's check of peer calls, with its replay cache. Pure: time comes in as an argument.
#[derive(Debug)]
pub struct PeerCallGuard {
    network: NetworkId,
    callee: NodeId,
    capacity: usize,
    /// Nonces in the order they were recorded, with the time they were recorded.
    order: VecDeque<(UnixMillis, [u8; 16])>,
    seen: HashSet<[u8; 16]>,
}

impl PeerCallGuard {
    /// A guard for calls to `callee` on `network`.
    pub fn new(network: NetworkId, callee: NodeId) -> Self {
        Self::with_capacity(network, callee, REPLAY_CAPACITY)
    }

    /// A guard whose replay cache holds at most `capacity` nonces (at least 1).
    pub fn with_capacity(network: NetworkId, callee: NodeId, capacity: usize) -> Self {
        PeerCallGuard {
            network,
            callee,
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// The node calls are checked for.
    pub fn callee(&self) -> NodeId {
        self.callee
    }

    /// Nonces currently remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Checks one call of `method` whose request encodes to a payload with digest `digest`;
    /// `metadata` is the encoded `SignedMessage` of the peer call (`None` if absent). On success
    /// the nonce is recorded and the caller is returned.
    pub fn check(
        &mut self,
        metadata: Option<&[u8]>,
        method: &str,
        digest: &Digest,
        now: UnixMillis,
    ) -> Result<NodeId, PeerCallRefusal> {
        let anonymous = |reason| PeerCallRefusal { reason, attributable: None };
        let Some(signed) = metadata else { return Err(anonymous(RefusalReason::Missing)) };
        if signed.len() > MAX_PEER_CALL_BYTES {
            return Err(anonymous(RefusalReason::Oversized));
        }
        let signed = decode_signed(signed).ok_or(anonymous(RefusalReason::Malformed))?;
        let (network, call) = PeerCall::from_signed_bytes(signed.bytes())
            .map_err(|_| anonymous(RefusalReason::Malformed))?;
        if !signed.verify(&call.caller) {
            return Err(anonymous(RefusalReason::BadSignature));
        }
        let refuse = |reason| PeerCallRefusal { reason, attributable: Some(call.caller) };
        if network != self.network {
            return Err(refuse(RefusalReason::WrongNetwork));
        }
        if call.callee != self.callee {
            return Err(refuse(RefusalReason::WrongCallee));
        }
        if call.method != method {
            return Err(refuse(RefusalReason::WrongMethod));
        }
        let skew = call.ts.0.saturating_sub(now.0);
        if skew < -MAX_SKEW_MS {
            return Err(refuse(RefusalReason::Expired));
        }
        if skew > MAX_SKEW_MS {
            return Err(refuse(RefusalReason::FromFuture));
        }
        if call.payload_digest != *digest {
            return Err(refuse(RefusalReason::DigestMismatch));
        }
        self.forget_before(UnixMillis(now.0.saturating_sub(REPLAY_WINDOW_MS)));
        if self.seen.contains(&call.nonce) {
            return Err(refuse(RefusalReason::Replayed));
        }
        if self.seen.len() >= self.capacity {
            return Err(refuse(RefusalReason::ReplayCacheFull));
        }
        self.seen.insert(call.nonce);
        self.order.push_back((now, call.nonce));
        Ok(call.caller)
    }

    /// Drops the nonces recorded before `cutoff`. A clock that steps back leaves entries in
    /// place longer, never shorter.
    fn forget_before(&mut self, cutoff: UnixMillis) {
        while let Some((at, nonce)) = self.order.front().copied() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }
}

/// The metadata form of a signed peer call: the signed bytes followed by the 64-byte signature.
pub fn encode_signed(signed: &SignedMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(signed.bytes().len() + 64);
    out.extend_from_slice(signed.bytes());
    out.extend_from_slice(signed.signature().as_bytes());
    out
}

/// Splits the metadata form back into bytes and signature (`None` if too short).
pub fn decode_signed(encoded: &[u8]) -> Option<SignedMessage> {
    let split = encoded.len().checked_sub(64)?;
    let (bytes, signature) = encoded.split_at(split);
    let signature: [u8; 64] = signature.try_into().ok()?;
    Some(SignedMessage::new(bytes.to_vec(), lucid_core::Signature::from_bytes(signature)))
}

#[cfg(test)]
mod tests;
