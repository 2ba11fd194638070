//! The fake node's own protobuf structs for TRON transactions, written from `core/Tron.proto` and
//! `core/contract/smart_contract.proto` of `tronprotocol/protocol`, independently of
//! `lucid-payouts`: the signed envelope keeps `raw_data` as opaque bytes, so the txid is the hash
//! of exactly what arrived, not of a re-encoding.

/// `message Transaction`, with `raw_data` kept as the received bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SignedEnvelope {
    /// `raw raw_data = 1;` as bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) raw_data: Vec<u8>,
    /// `repeated bytes signature = 2;`
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(crate) signature: Vec<Vec<u8>>,
}

/// `message Transaction.raw` (the fields a TRC20 transfer uses, plus the ones that must be
/// empty, so that their presence can be seen).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RawTx {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) ref_block_bytes: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub(crate) ref_block_num: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) ref_block_hash: Vec<u8>,
    #[prost(int64, tag = "8")]
    pub(crate) expiration: i64,
    #[prost(bytes = "vec", tag = "10")]
    pub(crate) data: Vec<u8>,
    #[prost(message, repeated, tag = "11")]
    pub(crate) contract: Vec<ContractCall>,
    #[prost(int64, tag = "14")]
    pub(crate) timestamp: i64,
    #[prost(int64, tag = "18")]
    pub(crate) fee_limit: i64,
}

/// `message Transaction.Contract`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ContractCall {
    #[prost(int32, tag = "1")]
    pub(crate) kind: i32,
    #[prost(message, optional, tag = "2")]
    pub(crate) parameter: Option<AnyValue>,
    #[prost(int32, tag = "5")]
    pub(crate) permission_id: i32,
}

/// `message google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AnyValue {
    #[prost(string, tag = "1")]
    pub(crate) type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
}

/// `message TriggerSmartContract`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TriggerCall {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) owner_address: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) contract_address: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub(crate) call_value: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) data: Vec<u8>,
}

/// `ContractType.TriggerSmartContract`.
pub(crate) const TRIGGER_SMART_CONTRACT: i32 = 31;
/// Its `Any` type URL.
pub(crate) const TRIGGER_TYPE_URL: &str = "type.googleapis.com/protocol.TriggerSmartContract";
