//! Identifiers with strict text forms: `NodeId`, `PoolId`, `EntityId`, `Digest`, `NetworkId`.
//!
//! Text forms are lowercase hex with a type prefix where the spec gives one (`node_…`, `pool_…`).
//! Parsing is strict: wrong prefix, wrong length, uppercase or non-hex characters are errors.
//! A `NodeId` is the node's Ed25519 public key, so any signature can be checked against the id
//! alone; parsing refuses non-canonical and small-order keys.

use std::fmt;
use std::str::FromStr;

use curve25519_dalek::edwards::CompressedEdwardsY;

use crate::hash::{CTX_NETWORK, CTX_POOL_ID, derive_key};
use crate::time::{Slot, UnixMillis};

/// Why an identifier could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The text does not start with the expected prefix.
    #[error("{what} must start with `{prefix}`")]
    Prefix {
        /// The identifier type.
        what: &'static str,
        /// The expected prefix.
        prefix: &'static str,
    },
    /// The hex part has the wrong length.
    #[error("{what} must have {expected} hex characters after the prefix, found {found}")]
    Length {
        /// The identifier type.
        what: &'static str,
        /// Expected number of hex characters.
        expected: usize,
        /// Number found.
        found: usize,
    },
    /// A character is not lowercase hex.
    #[error("{what} must be lowercase hex")]
    NotLowercaseHex {
        /// The identifier type.
        what: &'static str,
    },
    /// The bytes are not a canonical encoding of an Ed25519 point.
    #[error("node id is not a canonical Ed25519 public key")]
    NonCanonicalKey,
    /// The key is of small order: anyone could forge signatures for it.
    #[error("node id is a weak (small-order) Ed25519 key")]
    WeakKey,
    /// An entity tag other than node (0x01) or pool (0x02).
    #[error("unknown entity tag {0:#04x}")]
    EntityTag(u8),
}

impl crate::HasKind for IdParseError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidInput
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes exactly `N` bytes of lowercase hex.
pub fn from_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], IdParseError> {
    if text.len() != N * 2 {
        return Err(IdParseError::Length { what, expected: N * 2, found: text.len() });
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(IdParseError::NotLowercaseHex { what });
        };
        *slot = (high << 4) | low;
    }
    Ok(out)
}

fn strip<'a>(
    text: &'a str,
    what: &'static str,
    prefix: &'static str,
) -> Result<&'a str, IdParseError> {
    text.strip_prefix(prefix).ok_or(IdParseError::Prefix { what, prefix })
}

/// A 32-byte BLAKE3 output.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The all-zero digest (the seal root of an empty set).
    pub const ZERO: Digest = Digest([0; 32]);

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl FromStr for Digest {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_hex::<32>("digest", text).map(Digest)
    }
}

/// The identity of a network: `derive_key(CTX_NETWORK, lp(name) ‖ i64 genesis_ms)`.
///
/// Every signed message carries it, so a message signed for one network is refused by another.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkId([u8; 32]);

impl NetworkId {
    /// Derives the id of the network called `name` with the given genesis.
    pub fn derive(name: &str, genesis: UnixMillis) -> Self {
        let mut input = Vec::with_capacity(4 + name.len() + 8);
        crate::codec::Writer::new(&mut input).lp(name.as_bytes()).i64(genesis.0);
        NetworkId(*derive_key(CTX_NETWORK, &[&input]).as_bytes())
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        NetworkId(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

impl fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkId({})", to_hex(&self.0))
    }
}

impl FromStr for NetworkId {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_hex::<32>("network id", text).map(NetworkId)
    }
}

/// A node: its Ed25519 public key, validated to be canonical and not of small order.
///
/// Text form `node_` + 64 lowercase hex characters. Total order is the byte order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// Text prefix.
    pub const PREFIX: &'static str = "node_";

    /// Validates raw public-key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, IdParseError> {
        let point = CompressedEdwardsY(bytes).decompress().ok_or(IdParseError::NonCanonicalKey)?;
        // Decompression accepts some non-canonical encodings (y >= p, or x = 0 with the sign bit
        // set); re-compressing exposes them.
        if point.compress().to_bytes() != bytes {
            return Err(IdParseError::NonCanonicalKey);
        }
        if point.is_small_order() {
            return Err(IdParseError::WeakKey);
        }
        Ok(NodeId(bytes))
    }

    /// Wraps the public key of a signing key we hold: such a key is canonical and never of
    /// small order (it is a clamped scalar times the base point).
    pub(crate) const fn from_own_key(bytes: [u8; 32]) -> Self {
        NodeId(bytes)
    }

    /// The raw public-key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Lets maps keyed by `NodeId` be searched with raw key bytes, so a decoder can recognise a known
/// (already validated) node without repeating the point decompression. Hash and equality of a
/// `NodeId` are those of its bytes, as `Borrow` requires.
impl std::borrow::Borrow<[u8; 32]> for NodeId {
    fn borrow(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, to_hex(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for NodeId {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = strip(text, "node id", Self::PREFIX)?;
        NodeId::from_bytes(from_hex::<32>("node id", hex)?)
    }
}

/// A pool: the first 16 bytes of `derive_key(CTX_POOL_ID, founder ‖ u64 slot ‖ lp(name))`.
///
/// Text form `pool_` + 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolId([u8; 16]);

impl PoolId {
    /// Text prefix.
    pub const PREFIX: &'static str = "pool_";

    /// Derives the id of a pool created by `founder` in `slot` under `name`.
    pub fn derive(founder: &NodeId, slot: Slot, name: &str) -> Self {
        let mut input = Vec::with_capacity(32 + 8 + 4 + name.len());
        crate::codec::Writer::new(&mut input)
            .raw(founder.as_bytes())
            .u64(slot.0)
            .lp(name.as_bytes());
        let digest = derive_key(CTX_POOL_ID, &[&input]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.as_bytes()[..16]);
        PoolId(id)
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        PoolId(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, to_hex(&self.0))
    }
}

impl fmt::Debug for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for PoolId {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex = strip(text, "pool id", Self::PREFIX)?;
        from_hex::<16>("pool id", hex).map(PoolId)
    }
}

/// What earns credits and can lead a slot: a pool, or a node that is in no pool.
///
/// Canonical bytes are `0x01 ‖ NodeId` or `0x02 ‖ PoolId`; the total order is the order of these
/// bytes (so every node comes before every pool).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityId {
    /// A node that was in no pool at the slot in question.
    Node(NodeId),
    /// A pool.
    Pool(PoolId),
}

impl EntityId {
    /// Tag byte of node entities.
    pub const TAG_NODE: u8 = 0x01;
    /// Tag byte of pool entities.
    pub const TAG_POOL: u8 = 0x02;

    /// Appends the canonical bytes (tag, then the id) to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        match self {
            EntityId::Node(node) => {
                out.push(Self::TAG_NODE);
                out.extend_from_slice(node.as_bytes());
            }
            EntityId::Pool(pool) => {
                out.push(Self::TAG_POOL);
                out.extend_from_slice(pool.as_bytes());
            }
        }
    }

    /// The canonical bytes in a fixed buffer with their length (33 for nodes, 17 for pools).
    pub fn to_bytes(&self) -> ([u8; 33], usize) {
        let mut buf = [0u8; 33];
        match self {
            EntityId::Node(node) => {
                buf[0] = Self::TAG_NODE;
                buf[1..].copy_from_slice(node.as_bytes());
                (buf, 33)
            }
            EntityId::Pool(pool) => {
                buf[0] = Self::TAG_POOL;
                buf[1..17].copy_from_slice(pool.as_bytes());
                (buf, 17)
            }
        }
    }
}

impl Ord for EntityId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, a_len) = self.to_bytes();
        let (b, b_len) = other.to_bytes();
        a[..a_len].cmp(&b[..b_len])
    }
}

impl PartialOrd for EntityId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityId::Node(node) => node.fmt(f),
            EntityId::Pool(pool) => pool.fmt(f),
        }
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for EntityId {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.starts_with(PoolId::PREFIX) {
            text.parse().map(EntityId::Pool)
        } else {
            text.parse().map(EntityId::Node)
        }
    }
}

impl From<NodeId> for EntityId {
    fn from(node: NodeId) -> Self {
        EntityId::Node(node)
    }
}

impl From<PoolId> for EntityId {
    fn from(pool: PoolId) -> Self {
        EntityId::Pool(pool)
    }
}

#[cfg(test)]
mod tests;
