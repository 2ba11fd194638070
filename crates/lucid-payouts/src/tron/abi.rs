//! TRC20 ABI pieces: `transfer(address,uint256)` and `balanceOf(address)` call data, the uint256
//! amount, and the `Transfer(address,address,uint256)` event that proves a payout landed.
//!
//! One micro-USDT is one on-chain unit of USDT-TRC20 (6 decimals), so the uint256 amount is the
//! `MicroUsdt` value itself: no scaling, no rounding (I17).

use lucid_core::MicroUsdt;

use crate::Error;
use crate::address::TronAddress;

/// First 4 bytes of Keccak-256(`transfer(address,uint256)`).
pub const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// First 4 bytes of Keccak-256(`balanceOf(address)`).
pub const BALANCE_OF_SELECTOR: [u8; 4] = [0x70, 0xa0, 0x82, 0x31];
/// Keccak-256(`Transfer(address,address,uint256)`), topic 0 of every TRC20 transfer log.
pub const TRANSFER_TOPIC: [u8; 32] = [
    0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa,
    0x95, 0x2b, 0xa7, 0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
];
/// Length of `transfer` call data: selector and two 32-byte words.
pub const TRANSFER_DATA_LEN: usize = 4 + 32 + 32;

/// A 256-bit unsigned integer as a big-endian ABI word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Uint256(pub [u8; 32]);

impl Uint256 {
    /// The on-chain amount for `amount`: the same number (I17).
    pub fn from_micro(amount: MicroUsdt) -> Self {
        let mut word = [0u8; 32];
        word[24..].copy_from_slice(&amount.0.to_be_bytes());
        Uint256(word)
    }

    /// The micro-USDT amount of an on-chain value; refuses values above `u64::MAX`.
    pub fn to_micro(&self) -> Result<MicroUsdt, Error> {
        if self.0[..24].iter().any(|&byte| byte != 0) {
            return Err(Error::Abi { reason: "uint256 amount does not fit in 64 bits" });
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&self.0[24..]);
        Ok(MicroUsdt(u64::from_be_bytes(low)))
    }
}

fn address_word(address: &TronAddress) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&address.account());
    word
}

fn word_address(word: &[u8]) -> Result<TronAddress, Error> {
    if word.len() != 32 || word[..12].iter().any(|&byte| byte != 0) {
        return Err(Error::Abi {
            reason: "address word is not 12 zero bytes and 20 address bytes",
        });
    }
    let mut account = [0u8; 20];
    account.copy_from_slice(&word[12..]);
    Ok(TronAddress::from_account(account))
}

fn word_uint(word: &[u8]) -> Result<Uint256, Error> {
    let word: [u8; 32] =
        word.try_into().map_err(|_| Error::Abi { reason: "uint256 word is not 32 bytes" })?;
    Ok(Uint256(word))
}

/// Call data of `transfer(to, amount)`: selector ‖ pad32(20-byte `to`) ‖ pad32(amount).
pub fn transfer_call_data(to: &TronAddress, amount: MicroUsdt) -> Vec<u8> {
    let mut data = Vec::with_capacity(TRANSFER_DATA_LEN);
    data.extend_from_slice(&TRANSFER_SELECTOR);
    data.extend_from_slice(&address_word(to));
    data.extend_from_slice(&Uint256::from_micro(amount).0);
    data
}

/// Decodes `transfer` call data back to (to, amount); refuses anything but the exact 68-byte
/// shape with clean padding and an amount that fits `MicroUsdt`.
pub fn decode_transfer_call_data(data: &[u8]) -> Result<(TronAddress, MicroUsdt), Error> {
    if data.len() != TRANSFER_DATA_LEN {
        return Err(Error::Abi { reason: "transfer call data is not 68 bytes" });
    }
    if data[..4] != TRANSFER_SELECTOR {
        return Err(Error::Abi { reason: "selector is not transfer(address,uint256)" });
    }
    let to = word_address(&data[4..36])?;
    let amount = word_uint(&data[36..68])?.to_micro()?;
    Ok((to, amount))
}

/// Call data of `balanceOf(owner)` for `/wallet/triggerconstantcontract`.
pub fn balance_of_call_data(owner: &TronAddress) -> Vec<u8> {
    let mut data = Vec::with_capacity(36);
    data.extend_from_slice(&BALANCE_OF_SELECTOR);
    data.extend_from_slice(&address_word(owner));
    data
}

/// Decodes the `constant_result` of `balanceOf`: exactly one uint256 word.
pub fn decode_balance_result(data: &[u8]) -> Result<Uint256, Error> {
    word_uint(data)
}

/// One event log of a transaction receipt, with hex already decoded by the transport layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventLog {
    /// The emitting contract: 20 bytes (as TRON receipts give it) or the 21-byte `41…` form.
    pub address: Vec<u8>,
    /// Indexed topics, topic 0 first.
    pub topics: Vec<Vec<u8>>,
    /// Non-indexed data.
    pub data: Vec<u8>,
}

/// A decoded TRC20 `Transfer` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferEvent {
    /// The token contract that emitted it.
    pub contract: TronAddress,
    /// Sender.
    pub from: TronAddress,
    /// Recipient.
    pub to: TronAddress,
    /// Amount in on-chain units.
    pub value: Uint256,
}

impl TransferEvent {
    /// Decodes a log as a `Transfer` event, or `None` if it is another event or malformed (a
    /// receipt holds other logs too; they are not errors, they just are not our transfer).
    pub fn from_log(log: &EventLog) -> Option<Self> {
        let contract = match log.address.len() {
            20 => {
                let mut account = [0u8; 20];
                account.copy_from_slice(&log.address);
                TronAddress::from_account(account)
            }
            _ => TronAddress::from_slice(&log.address).ok()?,
        };
        let [topic0, from, to] = log.topics.as_slice() else { return None };
        if topic0.as_slice() != TRANSFER_TOPIC {
            return None;
        }
        Some(TransferEvent {
            contract,
            from: word_address(from).ok()?,
            to: word_address(to).ok()?,
            value: word_uint(&log.data).ok()?,
        })
    }

    /// Whether this event is exactly the payout transfer: same contract, sender, recipient and
    /// amount.
    pub fn matches(
        &self,
        contract: &TronAddress,
        from: &TronAddress,
        to: &TronAddress,
        amount: MicroUsdt,
    ) -> bool {
        self.contract == *contract
            && self.from == *from
            && self.to == *to
            && self.value == Uint256::from_micro(amount)
    }
}

#[cfg(test)]
mod tests;
