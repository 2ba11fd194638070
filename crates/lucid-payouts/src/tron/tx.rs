//! The TRON transaction of a USDT payout: the `Transaction.raw` protobuf holding one
//! `TriggerSmartContract`, TAPOS reference, expiration and fee limit; its txid; its signature; and
//! the check that refuses to sign what a remote node handed back unless it is exactly our transfer.
//!
//! The wire structs in [`proto`] are written with `prost` derives (no build script, no `protoc`)
//! and carry only the fields a payout needs. Decoding a remote transaction re-encodes it and
//! demands identical bytes, so fields we do not model (unknown to prost and silently dropped on
//! decode) can never hide in what we sign.

use lucid_core::{MicroUsdt, UnixMillis};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::address::TronAddress;
use crate::tron::abi::transfer_call_data;
use crate::tron::key::{HotWalletKey, RecoverableSignature};

/// The protobuf messages of TRON's `protocol` package that a payout uses, with the field numbers
/// of `tronprotocol/protocol` (`core/Tron.proto`, `core/contract/smart_contract.proto`) and of
/// `google/protobuf/any.proto`.
pub mod proto {
    /// `Transaction.Contract.ContractType.TriggerSmartContract` (`core/Tron.proto`).
    pub const TRIGGER_SMART_CONTRACT: i32 = 31;
    /// The `google.protobuf.Any` type URL of a `TriggerSmartContract` parameter.
    pub const TRIGGER_SMART_CONTRACT_TYPE_URL: &str =
        "type.googleapis.com/protocol.TriggerSmartContract";

    /// `message Transaction` (`core/Tron.proto`): the signed envelope broadcast with
    /// `/wallet/broadcasthex`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Transaction {
        /// `raw raw_data = 1;`
        #[prost(message, optional, tag = "1")]
        pub raw_data: Option<Raw>,
        /// `repeated bytes signature = 2;` (one signature: 65 bytes r ‖ s ‖ v).
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub signature: Vec<Vec<u8>>,
    }

    /// `message Transaction.raw` (`core/Tron.proto`): the bytes the txid hashes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Raw {
        /// `bytes ref_block_bytes = 1;` TAPOS: bytes 6..8 of the reference block number (BE).
        #[prost(bytes = "vec", tag = "1")]
        pub ref_block_bytes: Vec<u8>,
        /// `int64 ref_block_num = 3;` unused by TAPOS, left at 0.
        #[prost(int64, tag = "3")]
        pub ref_block_num: i64,
        /// `bytes ref_block_hash = 4;` TAPOS: bytes 8..16 of the reference block id.
        #[prost(bytes = "vec", tag = "4")]
        pub ref_block_hash: Vec<u8>,
        /// `int64 expiration = 8;` unix milliseconds.
        #[prost(int64, tag = "8")]
        pub expiration: i64,
        /// `bytes data = 10;` a memo; a payout carries none.
        #[prost(bytes = "vec", tag = "10")]
        pub data: Vec<u8>,
        /// `repeated Contract contract = 11;` exactly one.
        #[prost(message, repeated, tag = "11")]
        pub contract: Vec<Contract>,
        /// `bytes scripts = 12;` unused.
        #[prost(bytes = "vec", tag = "12")]
        pub scripts: Vec<u8>,
        /// `int64 timestamp = 14;` unix milliseconds when built.
        #[prost(int64, tag = "14")]
        pub timestamp: i64,
        /// `int64 fee_limit = 18;` in sun.
        #[prost(int64, tag = "18")]
        pub fee_limit: i64,
    }

    /// `message Transaction.Contract` (`core/Tron.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Contract {
        /// `ContractType type = 1;` (an enum, varint on the wire).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// `google.protobuf.Any parameter = 2;`
        #[prost(message, optional, tag = "2")]
        pub parameter: Option<Any>,
        /// `bytes provider = 3;`
        #[prost(bytes = "vec", tag = "3")]
        pub provider: Vec<u8>,
        /// `bytes ContractName = 4;`
        #[prost(bytes = "vec", tag = "4")]
        pub contract_name: Vec<u8>,
        /// `int32 Permission_id = 5;` 0 = owner permission.
        #[prost(int32, tag = "5")]
        pub permission_id: i32,
    }

    /// `message Any` (`google/protobuf/any.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        /// `string type_url = 1;`
        #[prost(string, tag = "1")]
        pub type_url: String,
        /// `bytes value = 2;` the encoded `TriggerSmartContract`.
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    /// `message TriggerSmartContract` (`core/contract/smart_contract.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TriggerSmartContract {
        /// `bytes owner_address = 1;` 21 bytes, the hot wallet.
        #[prost(bytes = "vec", tag = "1")]
        pub owner_address: Vec<u8>,
        /// `bytes contract_address = 2;` 21 bytes, the token contract.
        #[prost(bytes = "vec", tag = "2")]
        pub contract_address: Vec<u8>,
        /// `int64 call_value = 3;` TRX sent with the call, always 0.
        #[prost(int64, tag = "3")]
        pub call_value: i64,
        /// `bytes data = 4;` ABI call data.
        #[prost(bytes = "vec", tag = "4")]
        pub data: Vec<u8>,
        /// `int64 call_token_value = 5;` always 0.
        #[prost(int64, tag = "5")]
        pub call_token_value: i64,
        /// `int64 token_id = 6;` always 0.
        #[prost(int64, tag = "6")]
        pub token_id: i64,
    }
}

/// The longest expiration TRON accepts after the transaction's time: 24 hours.
pub const MAX_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;
/// The default expiration: 60 seconds after the transaction's time.
pub const DEFAULT_EXPIRATION_MS: i64 = 60 * 1000;

/// A transaction id: SHA-256 of the raw transaction bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Txid(pub [u8; 32]);

impl Txid {
    /// The txid of raw transaction bytes.
    pub fn of(raw: &[u8]) -> Self {
        Txid(Sha256::digest(raw).into())
    }

    /// Lowercase hex, as TRON APIs write txids.
    pub fn to_hex(&self) -> String {
        lucid_core::ids::to_hex(&self.0)
    }
}

impl std::fmt::Debug for Txid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Txid({})", self.to_hex())
    }
}

impl std::fmt::Display for Txid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The TAPOS reference block: a recent block the transaction commits to, so that it is only
/// valid on the chain that contains that block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Block height.
    pub number: u64,
    /// Block id (32 bytes; TRON puts the height in its first 8 bytes).
    pub id: [u8; 32],
}

impl BlockRef {
    /// `ref_block_bytes`: bytes 6..8 of the big-endian height.
    pub fn ref_block_bytes(&self) -> [u8; 2] {
        let be = self.number.to_be_bytes();
        [be[6], be[7]]
    }

    /// `ref_block_hash`: bytes 8..16 of the block id.
    pub fn ref_block_hash(&self) -> [u8; 8] {
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&self.id[8..16]);
        hash
    }
}

/// Everything that defines one USDT transfer transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferParams {
    /// The hot wallet that pays (and signs).
    pub owner: TronAddress,
    /// The USDT-TRC20 contract.
    pub contract: TronAddress,
    /// The recipient.
    pub to: TronAddress,
    /// Net amount; micro-USDT equals on-chain units.
    pub amount: MicroUsdt,
    /// TAPOS reference block.
    pub reference: BlockRef,
    /// When the transaction is built (from the clock port).
    pub timestamp: UnixMillis,
    /// When it stops being valid; after `timestamp`, at most 24 h later.
    pub expiration: UnixMillis,
    /// Most sun the transfer may burn for energy (see `fee::fee_limit_sun`).
    pub fee_limit_sun: u64,
}

/// A built, not yet signed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedTransfer {
    /// SHA-256 of `raw`.
    pub txid: Txid,
    /// The `Transaction.raw` bytes.
    pub raw: Vec<u8>,
}

/// A signed transaction, ready to be committed and then broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransfer {
    /// SHA-256 of `raw`.
    pub txid: Txid,
    /// The `Transaction.raw` bytes.
    pub raw: Vec<u8>,
    /// Signature of the hot wallet over `txid`.
    pub signature: RecoverableSignature,
    /// Expiration written in `raw`.
    pub expiration: UnixMillis,
    /// Fee limit written in `raw`, in sun.
    pub fee_limit_sun: u64,
}

impl SignedTransfer {
    /// The encoded signed `Transaction` (raw_data and the one signature), for
    /// `/wallet/broadcasthex`.
    pub fn transaction_bytes(&self) -> Result<Vec<u8>, Error> {
        let raw = proto::Raw::decode(self.raw.as_slice())
            .map_err(|_| lucid_core::internal!("our own raw transaction does not decode"))?;
        let transaction = proto::Transaction {
            raw_data: Some(raw),
            signature: vec![self.signature.as_bytes().to_vec()],
        };
        let bytes = transaction.encode_to_vec();
        Ok(bytes)
    }
}

fn check_params(params: &TransferParams) -> Result<(), Error> {
    let refuse = |reason| Err(Error::Transaction { reason });
    if params.amount.0 == 0 {
        return refuse("the amount must be positive");
    }
    if params.to == params.owner {
        return refuse("the recipient is the hot wallet itself");
    }
    if params.to == params.contract {
        return refuse("the recipient is the token contract");
    }
    if params.expiration.0 <= params.timestamp.0 {
        return refuse("the expiration must be after the timestamp");
    }
    if params.expiration.0 - params.timestamp.0 > MAX_EXPIRATION_MS {
        return refuse("the expiration must be at most 24 h after the timestamp");
    }
    if params.fee_limit_sun == 0 || i64::try_from(params.fee_limit_sun).is_err() {
        return refuse("the fee limit must be positive and fit in int64");
    }
    Ok(())
}

fn raw_message(params: &TransferParams) -> Result<proto::Raw, Error> {
    check_params(params)?;
    let trigger = proto::TriggerSmartContract {
        owner_address: params.owner.as_bytes().to_vec(),
        contract_address: params.contract.as_bytes().to_vec(),
        call_value: 0,
        data: transfer_call_data(&params.to, params.amount),
        call_token_value: 0,
        token_id: 0,
    };
    let fee_limit = i64::try_from(params.fee_limit_sun)
        .map_err(|_| lucid_core::internal!("fee limit checked above"))?;
    Ok(proto::Raw {
        ref_block_bytes: params.reference.ref_block_bytes().to_vec(),
        ref_block_num: 0,
        ref_block_hash: params.reference.ref_block_hash().to_vec(),
        expiration: params.expiration.0,
        data: Vec::new(),
        contract: vec![proto::Contract {
            r#type: proto::TRIGGER_SMART_CONTRACT,
            parameter: Some(proto::Any {
                type_url: proto::TRIGGER_SMART_CONTRACT_TYPE_URL.to_owned(),
                value: trigger.encode_to_vec(),
            }),
            provider: Vec::new(),
            contract_name: Vec::new(),
            permission_id: 0,
        }],
        scripts: Vec::new(),
        timestamp: params.timestamp.0,
        fee_limit,
    })
}

/// Builds the raw transaction of a transfer locally and computes its txid.
pub fn build_transfer(params: &TransferParams) -> Result<UnsignedTransfer, Error> {
    let raw = raw_message(params)?.encode_to_vec();
    Ok(UnsignedTransfer { txid: Txid::of(&raw), raw })
}

/// Builds and signs a transfer with the hot-wallet key, which must own `params.owner`.
pub fn sign_transfer(key: &HotWalletKey, params: &TransferParams) -> Result<SignedTransfer, Error> {
    if key.address() != params.owner {
        return Err(Error::Transaction { reason: "the owner is not the hot wallet's address" });
    }
    let unsigned = build_transfer(params)?;
    let signature = key.sign_txid(&unsigned.txid.0)?;
    Ok(SignedTransfer {
        txid: unsigned.txid,
        raw: unsigned.raw,
        signature,
        expiration: params.expiration,
        fee_limit_sun: params.fee_limit_sun,
    })
}

/// The expiration written in raw transaction bytes from elsewhere, read before the full check
/// of [`verify_remote_tx`] (which then demands the same value). Undecodable bytes are refused.
pub fn raw_expiration(raw: &[u8]) -> Result<UnixMillis, Error> {
    proto::Raw::decode(raw)
        .map(|message| UnixMillis(message.expiration))
        .map_err(|_| Error::RemoteTransaction { field: "encoding" })
}

/// What a transaction from elsewhere must be: the transfer we meant to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedTransfer {
    /// The hot wallet.
    pub owner: TronAddress,
    /// The USDT-TRC20 contract.
    pub contract: TronAddress,
    /// The recipient.
    pub to: TronAddress,
    /// Net amount.
    pub amount: MicroUsdt,
    /// Fee limit in sun.
    pub fee_limit_sun: u64,
    /// Expiration.
    pub expiration: UnixMillis,
}

impl From<&TransferParams> for ExpectedTransfer {
    fn from(params: &TransferParams) -> Self {
        ExpectedTransfer {
            owner: params.owner,
            contract: params.contract,
            to: params.to,
            amount: params.amount,
            fee_limit_sun: params.fee_limit_sun,
            expiration: params.expiration,
        }
    }
}

/// Checks raw transaction bytes that a remote node returned (for example the `raw_data_hex` of
/// `/wallet/triggersmartcontract`) against the transfer we meant to send, and returns them with
/// their recomputed txid only if they are exactly that transfer: one `TriggerSmartContract` from
/// the hot wallet to the USDT contract with our call data, no TRX or token value, our fee limit
/// and expiration, and nothing else (no memo, no scripts, no other permission, no unknown field).
/// The remote's own txid is never trusted.
pub fn verify_remote_tx(
    raw: &[u8],
    expected: &ExpectedTransfer,
) -> Result<UnsignedTransfer, Error> {
    let refuse = |field| Err(Error::RemoteTransaction { field });
    let Ok(message) = proto::Raw::decode(raw) else { return refuse("encoding") };
    // Unknown fields vanish on decode, and protobuf admits several encodings of one message:
    // only the canonical encoding of what we decoded is the transaction we have checked.
    if message.encode_to_vec() != raw {
        return refuse("encoding");
    }
    let [contract] = message.contract.as_slice() else { return refuse("contract count") };
    if contract.r#type != proto::TRIGGER_SMART_CONTRACT {
        return refuse("contract type");
    }
    if !contract.provider.is_empty() || !contract.contract_name.is_empty() {
        return refuse("contract provider");
    }
    if contract.permission_id != 0 {
        return refuse("permission id");
    }
    let Some(parameter) = &contract.parameter else { return refuse("contract parameter") };
    if parameter.type_url != proto::TRIGGER_SMART_CONTRACT_TYPE_URL {
        return refuse("contract type url");
    }
    let Ok(trigger) = proto::TriggerSmartContract::decode(parameter.value.as_slice()) else {
        return refuse("encoding");
    };
    if trigger.encode_to_vec() != parameter.value {
        return refuse("encoding");
    }
    if trigger.owner_address != expected.owner.as_bytes() {
        return refuse("owner");
    }
    if trigger.contract_address != expected.contract.as_bytes() {
        return refuse("contract");
    }
    if trigger.data != transfer_call_data(&expected.to, expected.amount) {
        return refuse("data");
    }
    if trigger.call_value != 0 {
        return refuse("call value");
    }
    if trigger.call_token_value != 0 || trigger.token_id != 0 {
        return refuse("call token value");
    }
    if u64::try_from(message.fee_limit).ok() != Some(expected.fee_limit_sun) {
        return refuse("fee limit");
    }
    if message.expiration != expected.expiration.0 {
        return refuse("expiration");
    }
    if !message.data.is_empty() {
        return refuse("memo");
    }
    if !message.scripts.is_empty() {
        return refuse("scripts");
    }
    if message.ref_block_bytes.len() != 2 || message.ref_block_hash.len() != 8 {
        return refuse("reference block");
    }
    if message.expiration <= message.timestamp
        || message.expiration - message.timestamp > MAX_EXPIRATION_MS
    {
        return refuse("timestamp");
    }
    Ok(UnsignedTransfer { txid: Txid::of(raw), raw: raw.to_vec() })
}

#[cfg(test)]
mod tests;
