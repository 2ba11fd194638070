//! The signed `pool-op` message (`consensus.md` §4.5, `pools-payouts.md` §2.2): the only way
//! membership changes.
//!
//! Body v1: `node ‖ u64 slot ‖ i64 ts_ms ‖ op`, where `op` is `u8 tag ‖ fields`:
//! 1 Create `lp(name) ‖ u8 max_nodes`, 2 Join `pool_id`, 3 Leave `pool_id`,
//! 4 Remove `pool_id ‖ member ‖ bool ban`, 5 Unban `pool_id ‖ node`, 6 SetMaxNodes
//! `pool_id ‖ u8 max`, 7 Disband `pool_id`. The uniqueness key is (node, slot).
//! Decoding is strict, and a Create whose name is not 3..=64 characters of `[a-z0-9_-]` does not
//! decode. `max_nodes` is not checked by the decoder: a value outside 1..=100 is a well-formed op
//! that is rejected at its effect slot with `InvalidMaxNodes`, like every other rule of §2.2.

use lucid_core::codec::{DecodeError, Reader, Writer};
use lucid_core::message::{Message, message_digest};
use lucid_core::{Digest, NetworkId, NodeId, PoolId, SignedMessage, Slot, UnixMillis};

use crate::model::{MAX_NAME_LEN, is_valid_name};

/// A pool op signed by `node` in `slot`; it takes effect at `slot + 3`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolOp {
    /// The signer.
    pub node: NodeId,
    /// The slot the op was signed in (`ts` lies inside it).
    pub slot: Slot,
    /// Signing time.
    pub ts: UnixMillis,
    /// What the op does.
    pub op: Op,
}

/// The operation of a pool op, with the tags of `pools-payouts.md` §2.2.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Tag 1: create a pool led by the signer.
    Create {
        /// 3..=64 characters of `[a-z0-9_-]`.
        name: String,
        /// Seat limit, 1..=100.
        max_nodes: u8,
    },
    /// Tag 2: the signer joins `pool`.
    Join {
        /// The pool.
        pool: PoolId,
    },
    /// Tag 3: the signer leaves `pool`.
    Leave {
        /// The pool.
        pool: PoolId,
    },
    /// Tag 4: the leader removes `member`, optionally banning it.
    Remove {
        /// The pool.
        pool: PoolId,
        /// The member removed.
        member: NodeId,
        /// Whether the member is banned from joining again.
        ban: bool,
    },
    /// Tag 5: the leader lifts the ban of `node`.
    Unban {
        /// The pool.
        pool: PoolId,
        /// The banned node.
        node: NodeId,
    },
    /// Tag 6: the leader sets the seat limit.
    SetMaxNodes {
        /// The pool.
        pool: PoolId,
        /// The new limit, 1..=100 and at least the seats held.
        max: u8,
    },
    /// Tag 7: the leader disbands the pool.
    Disband {
        /// The pool.
        pool: PoolId,
    },
}

/// The kind of an op, in canonical application order: Create, Leave, Remove, Unban,
/// SetMaxNodes, Join, Disband. Leaves and removals run before joins so that freed seats can be
/// taken in the same slot; Disband runs last so that it closes every seat of the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpTag {
    /// Wire tag 1.
    Create,
    /// Wire tag 3.
    Leave,
    /// Wire tag 4.
    Remove,
    /// Wire tag 5.
    Unban,
    /// Wire tag 6.
    SetMaxNodes,
    /// Wire tag 2.
    Join,
    /// Wire tag 7.
    Disband,
}

impl OpTag {
    /// The tag byte on the wire.
    pub fn wire(self) -> u8 {
        match self {
            OpTag::Create => 1,
            OpTag::Join => 2,
            OpTag::Leave => 3,
            OpTag::Remove => 4,
            OpTag::Unban => 5,
            OpTag::SetMaxNodes => 6,
            OpTag::Disband => 7,
        }
    }
}

impl Op {
    /// The op's kind.
    pub fn tag(&self) -> OpTag {
        match self {
            Op::Create { .. } => OpTag::Create,
            Op::Join { .. } => OpTag::Join,
            Op::Leave { .. } => OpTag::Leave,
            Op::Remove { .. } => OpTag::Remove,
            Op::Unban { .. } => OpTag::Unban,
            Op::SetMaxNodes { .. } => OpTag::SetMaxNodes,
            Op::Disband { .. } => OpTag::Disband,
        }
    }

    /// The pool the op names (`None` for Create, whose pool id is derived).
    pub fn pool(&self) -> Option<PoolId> {
        match self {
            Op::Create { .. } => None,
            Op::Join { pool }
            | Op::Leave { pool }
            | Op::Remove { pool, .. }
            | Op::Unban { pool, .. }
            | Op::SetMaxNodes { pool, .. }
            | Op::Disband { pool } => Some(*pool),
        }
    }
}

impl PoolOp {
    /// The id of the pool a Create makes: `PoolId::derive(node, slot, name)`.
    pub fn created_pool_id(&self) -> Option<PoolId> {
        match &self.op {
            Op::Create { name, .. } => Some(PoolId::derive(&self.node, self.slot, name)),
            _ => None,
        }
    }

    /// The slot the op takes effect (`slot + POOL_OP_DELAY_SLOTS`), `None` past `u64::MAX`.
    pub fn effect_slot(&self) -> Option<Slot> {
        self.slot.0.checked_add(lucid_consensus::params::POOL_OP_DELAY_SLOTS).map(Slot)
    }
}

impl Message for PoolOp {
    const TYPE_NAME: &'static str = "pool-op";
    const VERSION: u16 = 1;

    fn encode_body(&self, out: &mut Writer<'_>) {
        out.node_id(&self.node).slot(self.slot).time(self.ts).u8(self.op.tag().wire());
        match &self.op {
            Op::Create { name, max_nodes } => {
                out.lp(name.as_bytes()).u8(*max_nodes);
            }
            Op::Join { pool } | Op::Leave { pool } | Op::Disband { pool } => {
                out.pool_id(pool);
            }
            Op::Remove { pool, member, ban } => {
                out.pool_id(pool).node_id(member).bool(*ban);
            }
            Op::Unban { pool, node } => {
                out.pool_id(pool).node_id(node);
            }
            Op::SetMaxNodes { pool, max } => {
                out.pool_id(pool).u8(*max);
            }
        }
    }

    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let node = reader.node_id("node")?;
        let slot = reader.slot("slot")?;
        let ts = reader.time("ts_ms")?;
        let op = match reader.u8("op")? {
            1 => {
                let name = reader.lp_str("name", MAX_NAME_LEN)?;
                if !is_valid_name(name) {
                    return Err(DecodeError::InvalidValue {
                        field: "name",
                        rule: "must be 3..=64 characters of [a-z0-9_-]",
                    });
                }
                Op::Create { name: name.to_owned(), max_nodes: reader.u8("max_nodes")? }
            }
            2 => Op::Join { pool: reader.pool_id("pool")? },
            3 => Op::Leave { pool: reader.pool_id("pool")? },
            4 => Op::Remove {
                pool: reader.pool_id("pool")?,
                member: reader.node_id("member")?,
                ban: reader.bool("ban")?,
            },
            5 => Op::Unban { pool: reader.pool_id("pool")?, node: reader.node_id("node")? },
            6 => Op::SetMaxNodes { pool: reader.pool_id("pool")?, max: reader.u8("max")? },
            7 => Op::Disband { pool: reader.pool_id("pool")? },
            tag => return Err(DecodeError::UnknownTag { field: "op", tag }),
        };
        Ok(PoolOp { node, slot, ts, op })
    }

    fn signer(&self) -> NodeId {
        self.node
    }
}

/// A pool op that ingest accepted (decoded, verified, not an equivocation), with its message
/// digest, ready to be applied at its effect slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AcceptedOp {
    /// The decoded op.
    pub op: PoolOp,
    /// `derive_key(CTX_MESSAGE, signed_bytes)`: the op's identity and its tie-break within a tag.
    pub digest: Digest,
}

impl AcceptedOp {
    /// An accepted op on `network`. The digest is computed from the canonical encoding, which
    /// equals the received signed bytes because decoding is strict (`encode(decode(b)) == b`).
    pub fn new(op: PoolOp, network: &NetworkId) -> Self {
        let digest = message_digest(&op.to_signed_bytes(network));
        AcceptedOp { op, digest }
    }

    /// Decodes a stored signed pool op, returning the network it was made for. The signature is
    /// not checked here: only ops that ingest accepted may be passed.
    pub fn from_message(message: &SignedMessage) -> Result<(NetworkId, Self), DecodeError> {
        let (network, op) = PoolOp::from_signed_bytes(message.bytes())?;
        Ok((network, AcceptedOp { op, digest: message.digest() }))
    }

    /// The canonical application order key: (op tag in application order, digest).
    pub fn canonical_key(&self) -> (OpTag, Digest) {
        (self.op.op.tag(), self.digest)
    }
}

#[cfg(test)]
mod tests;
