//! TRON addresses: 21 bytes (version 0x41 and 20 bytes of Keccak-256 of the public key), written as
//! Base58Check text (`T…`, 34 characters) or as `41…` hex.
//!
//! Parsing is strict because a destination typed by a user decides where money goes: the text
//! must match `^T[1-9A-HJ-NP-Za-km-z]{33}$`, its checksum (first 4 bytes of double SHA-256) must
//! hold and its version byte must be 0x41. Length-only validation paid the wrong people before.
//!
//! Every build has this module, because every node validates the payout address it registers;
//! deriving an address from a secp256k1 key is part of the TRON rail (`tron::key`, feature
//! `tron`), since only the payer holds such a key.

use std::fmt;
use std::str::FromStr;

use lucid_core::{ErrorKind, HasKind};

/// The version byte of every TRON mainnet and testnet address.
pub const ADDRESS_VERSION: u8 = 0x41;

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The text is not `T` followed by 33 Base58 characters.
    #[error("a TRON address is `T` followed by 33 Base58 characters")]
    Pattern,
    /// The Base58Check checksum does not match (a typo or a truncated address).
    #[error("the Base58Check checksum does not match")]
    Checksum,
    /// The decoded payload is not 21 bytes.
    #[error("a TRON address has 21 bytes, found {0}")]
    Length(usize),
    /// The version byte is not 0x41.
    #[error("a TRON address starts with version byte 0x41, found {0:#04x}")]
    Version(u8),
    /// The hex form is not 42 lowercase hex characters.
    #[error("the hex form of a TRON address is 42 lowercase hex characters")]
    Hex,
    /// The public key is not a valid secp256k1 point.
    #[error("not a valid secp256k1 public key")]
    PublicKey,
    /// A payout destination equal to the hot wallet would pay ourselves.
    #[error("the destination is the hot wallet itself")]
    HotWallet,
    /// A payout destination equal to the token contract would burn the tokens.
    #[error("the destination is the token contract")]
    Contract,
}

impl HasKind for AddressError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// A valid TRON address: version byte 0x41 followed by 20 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TronAddress([u8; 21]);

impl TronAddress {
    /// From the 21-byte form; refuses any version byte other than 0x41.
    pub fn from_bytes(bytes: [u8; 21]) -> Result<Self, AddressError> {
        if bytes[0] != ADDRESS_VERSION {
            return Err(AddressError::Version(bytes[0]));
        }
        Ok(TronAddress(bytes))
    }

    /// From the 20-byte account part (as it appears in ABI words and EVM logs).
    pub fn from_account(account: [u8; 20]) -> Self {
        let mut bytes = [0u8; 21];
        bytes[0] = ADDRESS_VERSION;
        bytes[1..].copy_from_slice(&account);
        TronAddress(bytes)
    }

    /// From a slice that must be exactly the 21-byte form.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, AddressError> {
        let array: [u8; 21] = bytes.try_into().map_err(|_| AddressError::Length(bytes.len()))?;
        Self::from_bytes(array)
    }

    /// Parses the Base58Check text form, strictly (pattern, checksum, length, version).
    pub fn from_base58(text: &str) -> Result<Self, AddressError> {
        let bytes = text.as_bytes();
        // The Base58 alphabet: digits without 0, letters without I, O and l.
        let alphabet_ok = bytes.iter().all(|&c| {
            matches!(c, b'1'..=b'9' | b'A'..=b'H' | b'J'..=b'N' | b'P'..=b'Z')
                || matches!(c, b'a'..=b'k' | b'm'..=b'z')
        });
        if bytes.len() != 34 || bytes[0] != b'T' || !alphabet_ok {
            return Err(AddressError::Pattern);
        }
        let payload =
            bs58::decode(text).with_check(None).into_vec().map_err(|error| match error {
                bs58::decode::Error::InvalidChecksum { .. } => AddressError::Checksum,
                _ => AddressError::Pattern,
            })?;
        Self::from_slice(&payload)
    }

    /// Parses the `41…` hex form (42 lowercase hex characters).
    pub fn from_hex(text: &str) -> Result<Self, AddressError> {
        let bytes =
            lucid_core::ids::from_hex::<21>("TRON address", text).map_err(|_| AddressError::Hex)?;
        Self::from_bytes(bytes)
    }

    /// Parses a payout destination: a valid Base58Check address that is neither the hot wallet
    /// nor the token contract.
    pub fn parse_destination(
        text: &str,
        hot_wallet: &TronAddress,
        contract: &TronAddress,
    ) -> Result<Self, AddressError> {
        let address = Self::from_base58(text)?;
        if address == *hot_wallet {
            return Err(AddressError::HotWallet);
        }
        if address == *contract {
            return Err(AddressError::Contract);
        }
        Ok(address)
    }

    /// The 21-byte form (0x41 ‖ account).
    pub fn as_bytes(&self) -> &[u8; 21] {
        &self.0
    }

    /// The 20-byte account part, as used in ABI words and EVM logs.
    pub fn account(&self) -> [u8; 20] {
        let mut account = [0u8; 20];
        account.copy_from_slice(&self.0[1..]);
        account
    }

    /// The Base58Check text form (`T…`).
    pub fn to_base58(&self) -> String {
        bs58::encode(self.0).with_check().into_string()
    }

    /// The hex form (`41…`, lowercase).
    pub fn to_hex(&self) -> String {
        lucid_core::ids::to_hex(&self.0)
    }
}

impl fmt::Display for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

impl fmt::Debug for TronAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TronAddress({})", self.to_base58())
    }
}

impl FromStr for TronAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_base58(text)
    }
}

#[cfg(test)]
mod tests;
