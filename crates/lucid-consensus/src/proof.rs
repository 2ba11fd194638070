//! Task proofs: the four kinds, their canonical encoding, value caps and work credits.
//!
//! Body v1 of `task-proof`: `u8 kind ‖ node ‖ u64 slot ‖ i64 ts_ms ‖ value`, where the value
//! layout is fixed by the kind. One proof per (node, slot, kind) is the uniqueness key.

use std::fmt;

use lucid_core::codec::{DecodeError, Reader, Writer};
use lucid_core::message::Message;
use lucid_core::{Digest, NodeId, Slot, UnixMillis};

use crate::params::{BYTES_PER_SESSION, CREDITS_MAX};

/// Largest relay volume in one slot: 10 Gbit/s for 120 s.
pub const MAX_RELAY_BYTES: u64 = 150_000_000_000;
/// Most relayed sessions in one slot.
pub const MAX_RELAY_SESSIONS: u32 = 10_000;
/// Most stored chunks in one proof.
pub const MAX_STORAGE_CHUNKS: u64 = 1 << 32;
/// Largest stored size in one proof (1 PiB).
pub const MAX_STORAGE_BYTES: u64 = 1 << 50;
/// Most validated sessions in one slot.
pub const MAX_VALIDATED_SESSIONS: u32 = 100_000;

/// The kind of work a proof claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProofKind {
    /// Bytes and sessions relayed (tag 1).
    RelayBandwidth,
    /// Storage held available (tag 2).
    StorageAvailability,
    /// Sessions validated (tag 3).
    ValidationSignature,
    /// Liveness in the slot; earns no credits, feeds density (tag 4).
    UptimeBeacon,
}

impl ProofKind {
    /// Every kind, in tag order.
    pub const ALL: [ProofKind; 4] = [
        ProofKind::RelayBandwidth,
        ProofKind::StorageAvailability,
        ProofKind::ValidationSignature,
        ProofKind::UptimeBeacon,
    ];

    /// The canonical tag.
    pub fn tag(self) -> u8 {
        match self {
            ProofKind::RelayBandwidth => 1,
            ProofKind::StorageAvailability => 2,
            ProofKind::ValidationSignature => 3,
            ProofKind::UptimeBeacon => 4,
        }
    }

    /// The kind of a canonical tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(ProofKind::RelayBandwidth),
            2 => Some(ProofKind::StorageAvailability),
            3 => Some(ProofKind::ValidationSignature),
            4 => Some(ProofKind::UptimeBeacon),
            _ => None,
        }
    }

    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofKind::RelayBandwidth => "relay_bandwidth",
            ProofKind::StorageAvailability => "storage_availability",
            ProofKind::ValidationSignature => "validation_signature",
            ProofKind::UptimeBeacon => "uptime_beacon",
        }
    }
}

impl fmt::Display for ProofKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a proof claims, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProofValue {
    /// Relay work in the slot.
    Relay {
        /// Bytes transferred.
        bytes_transferred: u64,
        /// Sessions relayed.
        sessions_relayed: u32,
    },
    /// Storage held.
    Storage {
        /// Chunks stored.
        chunks_stored: u64,
        /// Bytes stored.
        size_bytes: u64,
    },
    /// Validation work in the slot.
    Validation {
        /// Sessions validated.
        validated_sessions: u32,
    },
    /// An uptime beacon, optionally binding host metrics that travel beside it.
    Beacon {
        /// BLAKE3 digest of the metrics JSON, if any.
        metrics_digest: Option<Digest>,
    },
}

/// A value above its consensus cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value} exceeds the cap {cap}")]
pub struct CapExceeded {
    /// The field.
    pub field: &'static str,
    /// The value claimed.
    pub value: u64,
    /// The cap.
    pub cap: u64,
}

impl ProofValue {
    /// The kind this value belongs to.
    pub fn kind(&self) -> ProofKind {
        match self {
            ProofValue::Relay { .. } => ProofKind::RelayBandwidth,
            ProofValue::Storage { .. } => ProofKind::StorageAvailability,
            ProofValue::Validation { .. } => ProofKind::ValidationSignature,
            ProofValue::Beacon { .. } => ProofKind::UptimeBeacon,
        }
    }

    /// Checks the consensus value caps (the same on every network).
    pub fn check_caps(&self) -> Result<(), CapExceeded> {
        let over = |field, value: u64, cap: u64| {
            if value > cap { Err(CapExceeded { field, value, cap }) } else { Ok(()) }
        };
        match *self {
            ProofValue::Relay { bytes_transferred, sessions_relayed } => {
                over("bytes_transferred", bytes_transferred, MAX_RELAY_BYTES)?;
                over("sessions_relayed", u64::from(sessions_relayed), u64::from(MAX_RELAY_SESSIONS))
            }
            ProofValue::Storage { chunks_stored, size_bytes } => {
                over("chunks_stored", chunks_stored, MAX_STORAGE_CHUNKS)?;
                over("size_bytes", size_bytes, MAX_STORAGE_BYTES)
            }
            ProofValue::Validation { validated_sessions } => over(
                "validated_sessions",
                u64::from(validated_sessions),
                u64::from(MAX_VALIDATED_SESSIONS),
            ),
            ProofValue::Beacon { .. } => Ok(()),
        }
    }

    /// Work credits of this value: integer, saturating at `CREDITS_MAX`, defined for every input
    /// (capped or not).
    ///
    /// relay = max(sessions, ceil(bytes / 5 MiB)); storage = floor(size · 10 / 2^30) + 2 · chunks;
    /// validation = 5 · sessions; beacons earn nothing.
    pub fn credits(&self) -> u64 {
        let credits: u128 = match *self {
            ProofValue::Relay { bytes_transferred, sessions_relayed } => {
                let units = bytes_transferred.div_ceil(BYTES_PER_SESSION);
                u128::from(units.max(u64::from(sessions_relayed)))
            }
            ProofValue::Storage { chunks_stored, size_bytes } => {
                u128::from(size_bytes) * 10 / (1u128 << 30) + 2 * u128::from(chunks_stored)
            }
            ProofValue::Validation { validated_sessions } => 5 * u128::from(validated_sessions),
            ProofValue::Beacon { .. } => 0,
        };
        u64::try_from(credits).unwrap_or(CREDITS_MAX).min(CREDITS_MAX)
    }

    fn encode(&self, out: &mut Writer<'_>) {
        match *self {
            ProofValue::Relay { bytes_transferred, sessions_relayed } => {
                out.u64(bytes_transferred).u32(sessions_relayed);
            }
            ProofValue::Storage { chunks_stored, size_bytes } => {
                out.u64(chunks_stored).u64(size_bytes);
            }
            ProofValue::Validation { validated_sessions } => {
                out.u32(validated_sessions);
            }
            ProofValue::Beacon { metrics_digest: None } => {
                out.u8(0);
            }
            ProofValue::Beacon { metrics_digest: Some(digest) } => {
                out.u8(1).digest(&digest);
            }
        }
    }

    fn decode(kind: ProofKind, reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match kind {
            ProofKind::RelayBandwidth => ProofValue::Relay {
                bytes_transferred: reader.u64("bytes_transferred")?,
                sessions_relayed: reader.u32("sessions_relayed")?,
            },
            ProofKind::StorageAvailability => ProofValue::Storage {
                chunks_stored: reader.u64("chunks_stored")?,
                size_bytes: reader.u64("size_bytes")?,
            },
            ProofKind::ValidationSignature => {
                ProofValue::Validation { validated_sessions: reader.u32("validated_sessions")? }
            }
            ProofKind::UptimeBeacon => {
                let metrics_digest = if reader.option_tag("metrics_digest")? {
                    Some(reader.digest("metrics_digest")?)
                } else {
                    None
                };
                ProofValue::Beacon { metrics_digest }
            }
        })
    }
}

/// The uniqueness key of a task proof: one proof per (node, slot, kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProofKey {
    /// The signer.
    pub node: NodeId,
    /// The slot the work was done in.
    pub slot: Slot,
    /// The kind of work.
    pub kind: ProofKind,
}

/// A task proof: one node's signed claim of one kind of work in one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskProof {
    /// The signer.
    pub node: NodeId,
    /// The slot the work was done in.
    pub slot: Slot,
    /// Signing time; must lie inside `slot`.
    pub ts: UnixMillis,
    /// The claim.
    pub value: ProofValue,
}

impl TaskProof {
    /// The kind of this proof.
    pub fn kind(&self) -> ProofKind {
        self.value.kind()
    }

    /// The uniqueness key.
    pub fn key(&self) -> ProofKey {
        ProofKey { node: self.node, slot: self.slot, kind: self.kind() }
    }
}

impl Message for TaskProof {
    const TYPE_NAME: &'static str = "task-proof";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.u8(self.kind().tag()).node_id(&self.node).slot(self.slot).time(self.ts);
        self.value.encode(out);
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_body_with(reader, &|_| None)
    }

    fn signer(&self) -> NodeId {
        self.node
    }
}

impl TaskProof {
    /// Decodes signed bytes like `from_signed_bytes`, but takes the signer from `known` when it
    /// recognises the key bytes (a registered node, validated at registration), which skips a
    /// point decompression per proof on the ingest hot path. Unknown bytes are validated as usual.
    pub fn from_signed_bytes_with(
        bytes: &[u8],
        known: &dyn Fn(&[u8; 32]) -> Option<NodeId>,
    ) -> Result<(lucid_core::NetworkId, Self), DecodeError> {
        lucid_core::message::decode_envelope(bytes, Self::TYPE_NAME, Self::VERSION, |reader| {
            Self::decode_body_with(reader, known)
        })
    }

    fn decode_body_with(
        reader: &mut Reader<'_>,
        known: &dyn Fn(&[u8; 32]) -> Option<NodeId>,
    ) -> Result<Self, DecodeError> {
        let tag = reader.u8("kind")?;
        let kind =
            ProofKind::from_tag(tag).ok_or(DecodeError::UnknownTag { field: "kind", tag })?;
        let node = reader.node_id_with("node", known)?;
        let slot = reader.slot("slot")?;
        let ts = reader.time("ts_ms")?;
        let value = ProofValue::decode(kind, reader)?;
        Ok(TaskProof { node, slot, ts, value })
    }
}

#[cfg(test)]
mod tests;
