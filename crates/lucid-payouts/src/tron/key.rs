//! The hot-wallet key: the secp256k1 key that signs payout transactions, and the recoverable
//! signatures it makes over a txid.
//!
//! The secret is zeroized on drop and never printed: `Debug` shows only the address. It must
//! differ from the node's Ed25519 identity seed, so that leaking one secret never leaks both
//! roles. Signing is RFC 6979 deterministic over the 32-byte txid with no prefix, normalised to
//! low S, so signing the same txid twice gives the same 65 bytes.

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::Error;
use crate::address::{AddressError, TronAddress};
use sha3::{Digest as _, Keccak256};

/// The key that controls the payout hot wallet.
pub struct HotWalletKey {
    // `SigningKey` zeroizes its scalar on drop.
    signing: SigningKey,
    address: TronAddress,
}

impl HotWalletKey {
    /// Loads the key from its 64-hex-character form (surrounding whitespace and either case are
    /// accepted, as key files often end with a newline). `node_seed` is the node's Ed25519
    /// identity seed: a hot-wallet key equal to it is refused.
    pub fn from_hex(text: &str, node_seed: &[u8; 32]) -> Result<Self, Error> {
        let lower = Zeroizing::new(text.trim().to_ascii_lowercase());
        let secret = Zeroizing::new(
            lucid_core::ids::from_hex::<32>("hot-wallet key", &lower)
                .map_err(|_| Error::HotWalletKey { reason: "expected 64 hex characters" })?,
        );
        Self::from_bytes(&secret, node_seed)
    }

    /// Loads the key from its 32 secret bytes; see [`HotWalletKey::from_hex`].
    pub fn from_bytes(secret: &[u8; 32], node_seed: &[u8; 32]) -> Result<Self, Error> {
        if secret == node_seed {
            return Err(Error::HotWalletKey {
                reason: "the hot-wallet key must differ from the node identity key",
            });
        }
        let signing = SigningKey::from_bytes(secret.into()).map_err(|_| Error::HotWalletKey {
            reason: "not a valid secp256k1 secret (zero or not below the group order)",
        })?;
        let address = TronAddress::from_verifying_key(signing.verifying_key());
        Ok(HotWalletKey { signing, address })
    }

    /// The TRON address this key controls.
    pub fn address(&self) -> TronAddress {
        self.address
    }

    /// Signs a txid: RFC 6979 deterministic ECDSA over the 32 bytes as they are (no prefix, no
    /// further hashing), low S, as 65 bytes r ‖ s ‖ v with v ∈ {0, 1}.
    pub fn sign_txid(&self, txid: &[u8; 32]) -> Result<RecoverableSignature, Error> {
        let (signature, recovery_id) = self
            .signing
            .sign_prehash_recoverable(txid)
            .map_err(|_| lucid_core::internal!("secp256k1 signing failed"))?;
        // k256 already normalises S and flips the recovery id with it; check rather than trust,
        // because a high-S signature is refused by TRON nodes.
        if signature.normalize_s().is_some() {
            return Err(lucid_core::internal!("k256 returned a high-S signature").into());
        }
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&signature.to_bytes());
        bytes[64] = recovery_id.to_byte();
        Ok(RecoverableSignature(bytes))
    }
}

impl fmt::Debug for HotWalletKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotWalletKey").field("address", &self.address).finish_non_exhaustive()
    }
}

/// A secp256k1 signature with its recovery id: r ‖ s ‖ v, 65 bytes, v ∈ {0, 1} as written.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoverableSignature([u8; 65]);

impl RecoverableSignature {
    /// From 65 bytes r ‖ s ‖ v; v may be 0, 1, 27 or 28 (the Ethereum-style offset is removed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut array: [u8; 65] = bytes
            .try_into()
            .map_err(|_| Error::Signature { reason: "a signature has 65 bytes" })?;
        array[64] = match array[64] {
            0 | 27 => 0,
            1 | 28 => 1,
            _ => return Err(Error::Signature { reason: "recovery id must be 0, 1, 27 or 28" }),
        };
        Ok(RecoverableSignature(array))
    }

    /// The 65 bytes r ‖ s ‖ v.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// Lowercase hex of the 65 bytes.
    pub fn to_hex(&self) -> String {
        lucid_core::ids::to_hex(&self.0)
    }
}

impl fmt::Debug for RecoverableSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoverableSignature({})", self.to_hex())
    }
}

/// Recovers the address that signed `txid`. Refuses high-S signatures (k256 verifies the
/// recovered key with the low-S rule), so a malleated copy of a valid signature does not pass.
pub fn recover(txid: &[u8; 32], signature: &RecoverableSignature) -> Result<TronAddress, Error> {
    let bytes = signature.as_bytes();
    let parsed = Signature::from_slice(&bytes[..64])
        .map_err(|_| Error::Signature { reason: "r or s is zero or not below the group order" })?;
    let recovery_id = RecoveryId::from_byte(bytes[64])
        .ok_or(Error::Signature { reason: "recovery id must be 0 or 1" })?;
    let key = VerifyingKey::recover_from_prehash(txid, &parsed, recovery_id)
        .map_err(|_| Error::Signature { reason: "no public key recovers from this signature" })?;
    Ok(TronAddress::from_verifying_key(&key))
}

/// Address derivation lives with the keys: only the TRON rail holds a secp256k1 key.
impl TronAddress {
    /// Derives the address of a secp256k1 public key given in SEC1 form (compressed or not):
    /// 0x41 ‖ the last 20 bytes of Keccak-256 of the 64-byte uncompressed key without its 0x04.
    pub fn from_public_key(sec1: &[u8]) -> Result<Self, AddressError> {
        let key = k256::PublicKey::from_sec1_bytes(sec1).map_err(|_| AddressError::PublicKey)?;
        Ok(Self::from_verifying_key(&key.into()))
    }

    pub(crate) fn from_verifying_key(key: &k256::ecdsa::VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        // An uncompressed SEC1 point is 0x04 ‖ X ‖ Y; the address hashes X ‖ Y only.
        let digest = Keccak256::digest(&point.as_bytes()[1..]);
        let mut account = [0u8; 20];
        account.copy_from_slice(&digest[12..]);
        Self::from_account(account)
    }
}

#[cfg(test)]
mod tests;
