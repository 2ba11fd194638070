//! Ed25519 node keys, signatures and the one signature validity rule of the network.
//!
//! Validity of a signature is a consensus rule, so it must be the same deterministic function of
//! (key, message, signature) on every node and every code path: [`verify_strict`], which is
//! `ed25519_dalek::VerifyingKey::verify_strict`. Batch verification is cofactored and can accept
//! what strict verification rejects, so this crate does not offer it at all; throughput comes
//! from verifying on several cores (see `lucid-consensus::verify`).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;
use zeroize::Zeroizing;

use crate::ids::{IdParseError, NodeId, from_hex, to_hex};

/// An Ed25519 signature (64 bytes); text form 128 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps raw bytes. Any 64 bytes are a syntactically valid signature; validity is decided
    /// only by [`verify_strict`].
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// Lowercase hex, 128 characters.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

impl FromStr for Signature {
    type Err = IdParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        from_hex::<64>("signature", text).map(Signature)
    }
}

/// A node's secret identity key.
///
/// The secret is zeroized on drop; `Debug` shows only the public `NodeId`, and there is no
/// `Display`, `Clone` or accessor that hands out the secret except [`NodeKey::seed_hex`], which
/// exists to write the key file at `init` and returns a zeroizing string.
pub struct NodeKey {
    inner: ed25519_dalek::SigningKey,
    id: NodeId,
}

impl NodeKey {
    /// The key whose 32-byte Ed25519 seed is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = NodeId::from_own_key(inner.verifying_key().to_bytes());
        NodeKey { inner, id }
    }

    /// Parses a seed written as 64 lowercase hex characters (the `node.key` file format).
    /// Surrounding whitespace (a trailing newline) is ignored.
    pub fn from_seed_hex(text: &str) -> Result<Self, IdParseError> {
        let seed = Zeroizing::new(from_hex::<32>("node key", text.trim())?);
        Ok(Self::from_seed(&seed))
    }

    /// The seed as 64 lowercase hex characters, for writing the key file.
    pub fn seed_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(to_hex(self.inner.as_bytes()))
    }

    /// The public identity of this key.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// Signs `message` (deterministic Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.inner.sign(message).to_bytes())
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id)
    }
}

/// A node's public key, decompressed once so that many signatures can be checked against it
/// without repeating the point decompression.
#[derive(Clone)]
pub struct PublicKey {
    /// `None` only if the id's bytes fail to decompress, which the `NodeId` invariant rules out;
    /// then every signature is invalid.
    inner: Option<ed25519_dalek::VerifyingKey>,
    id: NodeId,
}

impl PublicKey {
    /// The public key of `node`.
    pub fn of(node: &NodeId) -> Self {
        let inner = ed25519_dalek::VerifyingKey::from_bytes(node.as_bytes()).ok();
        debug_assert!(inner.is_some(), "a NodeId always decompresses");
        PublicKey { inner, id: *node }
    }

    /// The node this key belongs to.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The validity rule: strict Ed25519 verification of `signature` over `message`.
    pub fn verify_strict(&self, message: &[u8], signature: &Signature) -> bool {
        let Some(key) = &self.inner else { return false };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

/// The one signature validity rule of the network: strict Ed25519 verification of `signature`
/// over `message` under the key that `node` is.
pub fn verify_strict(node: &NodeId, message: &[u8], signature: &Signature) -> bool {
    PublicKey::of(node).verify_strict(message, signature)
}

#[cfg(test)]
mod tests;
