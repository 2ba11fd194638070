//! The TRON HTTP client: the calls of pools-payouts.md §7 over the [`TronTransport`] port, with
//! strict parsing of every reply.
//!
//! Every reply is checked field by field: a missing or mistyped field, an oversized hex string or
//! an answer about another txid is a typed [`Error::TronResponse`], never a panic and never a
//! default that could pass for a real value. Reads are retried with the same request when the
//! transport fails. A broadcast takes only a [`BroadcastBytes`], which exists only for bytes
//! whose txid and signature check out, so a retry can only ever re-send the same signed bytes:
//! this client has no way to build a transaction while it broadcasts one.

use std::sync::Arc;

use lucid_core::{MicroUsdt, UnixMillis};
use serde_json::{Value, json};

use crate::Error;
use crate::address::TronAddress;
use crate::rail::{BroadcastOutcome, RejectCode};
use crate::tron::abi::{self, EventLog, TransferEvent};
use crate::tron::key::{RecoverableSignature, recover};
use crate::tron::transport::{Endpoint, TransportError, TronTransport};
use crate::tron::tx::{BlockRef, SignedTransfer, Txid};

/// The longest hex string accepted in a reply (raw transactions, call results, log data), in
/// characters. A USDT transfer's raw transaction is about 200 bytes.
pub const MAX_HEX_CHARS: usize = 8 * 1024;
/// The most logs a receipt may list before the reply counts as malformed.
pub const MAX_LOGS: usize = 64;

/// The `function_selector` of a TRC20 transfer.
const TRANSFER_SIGNATURE: &str = "transfer(address,uint256)";
/// The `function_selector` of a TRC20 balance query.
const BALANCE_OF_SIGNATURE: &str = "balanceOf(address)";
/// The chain parameter holding the price of one unit of energy, in sun.
const ENERGY_FEE_PARAMETER: &str = "getEnergyFee";

/// The head block: the TAPOS reference and the chain time a new transaction starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadBlock {
    /// Height and id.
    pub reference: BlockRef,
    /// The block's timestamp.
    pub timestamp: UnixMillis,
}

/// The energy the hot wallet holds from staking (`getaccountresource`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountResource {
    /// `EnergyLimit` (absent means 0).
    pub energy_limit: u64,
    /// `EnergyUsed` (absent means 0).
    pub energy_used: u64,
}

impl AccountResource {
    /// Energy still free to use today.
    pub fn free_energy(&self) -> u64 {
        self.energy_limit.saturating_sub(self.energy_used)
    }
}

/// A receipt from `gettransactioninfobyid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionInfo {
    /// The block that included the transaction.
    pub block: u64,
    /// `receipt.result == "SUCCESS"`.
    pub success: bool,
    /// `receipt.result` as written (`SUCCESS`, `OUT_OF_ENERGY`, `REVERT`, …).
    pub result: String,
    /// `receipt.energy_usage_total`.
    pub energy_used: u64,
    /// `fee`: TRX burned, in sun.
    pub fee_sun: u64,
    /// The contract the transaction called.
    pub contract: Option<TronAddress>,
    /// Event logs, hex decoded.
    pub logs: Vec<EventLog>,
}

impl TransactionInfo {
    /// Whether a Transfer log shows exactly `amount` units of `contract` from `from` to `to`.
    pub fn has_transfer(
        &self,
        contract: &TronAddress,
        from: &TronAddress,
        to: &TronAddress,
        amount: MicroUsdt,
    ) -> bool {
        self.logs
            .iter()
            .filter_map(TransferEvent::from_log)
            .any(|event| event.matches(contract, from, to, amount))
    }
}

/// What the full and solidity nodes know about a txid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxLookup {
    /// Neither node knows it.
    NotFound,
    /// Known (pending or included) but not solidified.
    Pending,
    /// Solidified with this receipt.
    Solidified(TransactionInfo),
}

/// Signed transaction bytes that may be broadcast: their txid is SHA-256 of the raw bytes and
/// their signature recovers the owner given at construction. The only way to get one is from a
/// signed transfer (fresh or stored), so a broadcast can never re-build anything.
#[derive(Clone, PartialEq, Eq)]
pub struct BroadcastBytes {
    txid: Txid,
    hex: String,
}

impl BroadcastBytes {
    /// Checks stored attempt bytes: txid = SHA-256(raw) and the signature over it recovers
    /// `owner`. Anything else is refused (a corrupted row must never be sent).
    pub fn from_stored(
        txid: &[u8; 32],
        raw: &[u8],
        signature: &[u8],
        owner: &TronAddress,
    ) -> Result<Self, Error> {
        let computed = Txid::of(raw);
        if computed.0 != *txid {
            return Err(Error::Transaction {
                reason: "stored txid is not SHA-256 of the raw bytes",
            });
        }
        let signature = RecoverableSignature::from_bytes(signature)?;
        if recover(txid, &signature)? != *owner {
            return Err(Error::Signature { reason: "stored signature is not the hot wallet's" });
        }
        let transfer = SignedTransfer {
            txid: computed,
            raw: raw.to_vec(),
            signature,
            expiration: UnixMillis(0),
            fee_limit_sun: 0,
        };
        Self::from_signed(&transfer)
    }

    /// The bytes of a transfer signed here.
    pub fn from_signed(transfer: &SignedTransfer) -> Result<Self, Error> {
        let bytes = transfer.transaction_bytes()?;
        Ok(BroadcastBytes { txid: transfer.txid, hex: hex::encode(bytes) })
    }

    /// The txid these bytes carry.
    pub fn txid(&self) -> Txid {
        self.txid
    }
}

impl std::fmt::Debug for BroadcastBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signed bytes are not secret but are long; the txid identifies them.
        f.debug_struct("BroadcastBytes").field("txid", &self.txid).finish_non_exhaustive()
    }
}

/// The client over one transport.
#[derive(Clone)]
pub struct TronClient {
    transport: Arc<dyn TronTransport>,
    retries: u32,
}

impl std::fmt::Debug for TronClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TronClient").field("retries", &self.retries).finish_non_exhaustive()
    }
}

fn malformed(call: &'static str, reason: &'static str) -> Error {
    Error::TronResponse { call, reason }
}

fn field<'a>(value: &'a Value, name: &str, call: &'static str) -> Result<&'a Value, Error> {
    value.get(name).ok_or(malformed(call, "a required field is missing"))
}

fn u64_field(value: &Value, name: &str, call: &'static str) -> Result<u64, Error> {
    field(value, name, call)?.as_u64().ok_or(malformed(call, "a number field is not a u64"))
}

/// A number that TRON omits when it is zero.
fn optional_u64(value: &Value, name: &str, call: &'static str) -> Result<u64, Error> {
    match value.get(name) {
        None => Ok(0),
        Some(number) => number.as_u64().ok_or(malformed(call, "a number field is not a u64")),
    }
}

fn str_field<'a>(value: &'a Value, name: &str, call: &'static str) -> Result<&'a str, Error> {
    field(value, name, call)?.as_str().ok_or(malformed(call, "a text field is not a string"))
}

/// Decodes a bounded hex string (either case, no prefix).
pub fn decode_hex(text: &str, call: &'static str) -> Result<Vec<u8>, Error> {
    if text.len() > MAX_HEX_CHARS {
        return Err(malformed(call, "a hex field is too long"));
    }
    hex::decode(text).map_err(|_| malformed(call, "a hex field is not hex"))
}

/// An object reply; TRON answers `{}` for "unknown".
fn object<'a>(
    body: &'a Value,
    call: &'static str,
) -> Result<&'a serde_json::Map<String, Value>, Error> {
    body.as_object().ok_or(malformed(call, "the reply is not a JSON object"))
}

/// Parses `/wallet/getnowblock`.
pub fn parse_now_block(body: &Value) -> Result<HeadBlock, Error> {
    const CALL: &str = "getnowblock";
    let id = str_field(body, "blockID", CALL)?;
    let id = lucid_core::ids::from_hex::<32>("block id", &id.to_ascii_lowercase())
        .map_err(|_| malformed(CALL, "blockID is not 32 bytes of hex"))?;
    let raw = field(field(body, "block_header", CALL)?, "raw_data", CALL)?;
    let number = u64_field(raw, "number", CALL)?;
    let timestamp = field(raw, "timestamp", CALL)?
        .as_i64()
        .filter(|ms| *ms > 0)
        .ok_or(malformed(CALL, "timestamp is not a positive i64"))?;
    // TRON block ids start with the height: a reply whose id and number disagree is forged.
    let mut height = [0u8; 8];
    height.copy_from_slice(&id[..8]);
    if u64::from_be_bytes(height) != number {
        return Err(malformed(CALL, "blockID does not start with the block number"));
    }
    Ok(HeadBlock { reference: BlockRef { number, id }, timestamp: UnixMillis(timestamp) })
}

/// Parses the energy price out of `/wallet/getchainparameters`.
pub fn parse_energy_fee(body: &Value) -> Result<u64, Error> {
    const CALL: &str = "getchainparameters";
    let parameters = field(body, "chainParameter", CALL)?
        .as_array()
        .ok_or(malformed(CALL, "chainParameter is not an array"))?;
    let mut found = None;
    for parameter in parameters {
        if parameter.get("key").and_then(Value::as_str) == Some(ENERGY_FEE_PARAMETER) {
            if found.is_some() {
                return Err(malformed(CALL, "getEnergyFee appears twice"));
            }
            found = Some(u64_field(parameter, "value", CALL)?);
        }
    }
    match found {
        Some(0) => Err(malformed(CALL, "getEnergyFee is 0")),
        Some(price) => Ok(price),
        None => Err(malformed(CALL, "getEnergyFee is missing")),
    }
}

/// Checks `result.result == true` of a trigger reply.
fn trigger_succeeded(body: &Value, call: &'static str) -> Result<(), Error> {
    let result = field(body, "result", call)?;
    match result.get("result").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        _ => Err(malformed(call, "the node reported the call as failed")),
    }
}

/// Parses the dry run of a transfer (`/wallet/triggerconstantcontract`): the energy it used.
pub fn parse_energy_estimate(body: &Value) -> Result<u64, Error> {
    const CALL: &str = "triggerconstantcontract";
    trigger_succeeded(body, CALL)?;
    match u64_field(body, "energy_used", CALL)? {
        0 => Err(malformed(CALL, "a transfer dry run used no energy")),
        energy => Ok(energy),
    }
}

/// Parses a `balanceOf` dry run: the one uint256 of `constant_result`.
pub fn parse_balance_of(body: &Value) -> Result<MicroUsdt, Error> {
    const CALL: &str = "triggerconstantcontract";
    trigger_succeeded(body, CALL)?;
    let results = field(body, "constant_result", CALL)?
        .as_array()
        .ok_or(malformed(CALL, "constant_result is not an array"))?;
    let [result] = results.as_slice() else {
        return Err(malformed(CALL, "constant_result does not hold exactly one value"));
    };
    let bytes =
        decode_hex(result.as_str().ok_or(malformed(CALL, "constant_result is not text"))?, CALL)?;
    abi::decode_balance_result(&bytes)?.to_micro()
}

/// Parses `/wallet/triggersmartcontract`: the `raw_data_hex` of the transaction the node built,
/// still unverified (see `tx::verify_remote_tx`).
pub fn parse_trigger(body: &Value) -> Result<Vec<u8>, Error> {
    const CALL: &str = "triggersmartcontract";
    trigger_succeeded(body, CALL)?;
    let transaction = field(body, "transaction", CALL)?;
    decode_hex(str_field(transaction, "raw_data_hex", CALL)?, CALL)
}

/// Parses `/wallet/getaccount`: the TRX balance in sun (an unknown account answers `{}`, 0).
pub fn parse_trx_balance(body: &Value) -> Result<u64, Error> {
    const CALL: &str = "getaccount";
    object(body, CALL)?;
    optional_u64(body, "balance", CALL)
}

/// Parses `/wallet/getaccountresource`.
pub fn parse_account_resource(body: &Value) -> Result<AccountResource, Error> {
    const CALL: &str = "getaccountresource";
    object(body, CALL)?;
    Ok(AccountResource {
        energy_limit: optional_u64(body, "EnergyLimit", CALL)?,
        energy_used: optional_u64(body, "EnergyUsed", CALL)?,
    })
}

/// Parses a broadcast reply. `earlier_unknown` says whether an earlier try of the same bytes got
/// no answer: then a refusal proves nothing (the first try may have landed) and reads as unknown.
pub fn parse_broadcast(body: &Value, earlier_unknown: bool) -> Result<BroadcastOutcome, Error> {
    const CALL: &str = "broadcasthex";
    object(body, CALL)?;
    if body.get("result").and_then(Value::as_bool) == Some(true) {
        return Ok(BroadcastOutcome::Accepted);
    }
    let code = str_field(body, "code", CALL)?;
    if code.is_empty()
        || code.len() > 64
        || !code.bytes().all(|c| c.is_ascii_uppercase() || c == b'_')
    {
        return Err(malformed(CALL, "the refusal code is not a TRON code"));
    }
    let outcome = match code {
        "DUP_TRANSACTION_ERROR" => return Ok(BroadcastOutcome::Duplicate),
        _ if earlier_unknown => BroadcastOutcome::Unknown,
        "SIGERROR" => BroadcastOutcome::Rejected(RejectCode::SigError),
        "CONTRACT_VALIDATE_ERROR" => BroadcastOutcome::Rejected(RejectCode::ContractValidate),
        "TAPOS_ERROR" => BroadcastOutcome::Rejected(RejectCode::Tapos),
        "TRANSACTION_EXPIRATION_ERROR" => BroadcastOutcome::Rejected(RejectCode::Expired),
        "BANDWITH_ERROR" => BroadcastOutcome::Rejected(RejectCode::Bandwidth),
        other => BroadcastOutcome::Rejected(RejectCode::Other(other.to_owned())),
    };
    Ok(outcome)
}

/// Parses `gettransactionbyid`: whether the node knows `txid` (`{}` means no). A reply about
/// another transaction is forged or confused and refused.
pub fn parse_transaction_known(body: &Value, txid: &Txid) -> Result<bool, Error> {
    const CALL: &str = "gettransactionbyid";
    if object(body, CALL)?.is_empty() {
        return Ok(false);
    }
    let id = str_field(body, "txID", CALL)?;
    if !id.eq_ignore_ascii_case(&txid.to_hex()) {
        return Err(malformed(CALL, "the reply is about another txid"));
    }
    Ok(true)
}

fn parse_log(log: &Value, call: &'static str) -> Result<EventLog, Error> {
    let address = decode_hex(str_field(log, "address", call)?, call)?;
    let topics = match log.get("topics") {
        None => Vec::new(),
        Some(topics) => topics
            .as_array()
            .ok_or(malformed(call, "log topics are not an array"))?
            .iter()
            .map(|topic| decode_hex(topic.as_str().ok_or(malformed(call, "topic not text"))?, call))
            .collect::<Result<_, _>>()?,
    };
    let data = match log.get("data") {
        None => Vec::new(),
        Some(data) => decode_hex(data.as_str().ok_or(malformed(call, "log data not text"))?, call)?,
    };
    Ok(EventLog { address, topics, data })
}

/// Parses `gettransactioninfobyid`: `None` for `{}` (not included yet, or not solidified on the
/// solidity node), else the receipt, refused if it is about another txid.
pub fn parse_transaction_info(body: &Value, txid: &Txid) -> Result<Option<TransactionInfo>, Error> {
    const CALL: &str = "gettransactioninfobyid";
    if object(body, CALL)?.is_empty() {
        return Ok(None);
    }
    let id = str_field(body, "id", CALL)?;
    if !id.eq_ignore_ascii_case(&txid.to_hex()) {
        return Err(malformed(CALL, "the reply is about another txid"));
    }
    let block = u64_field(body, "blockNumber", CALL)?;
    let receipt = field(body, "receipt", CALL)?;
    object(receipt, CALL)?;
    // A receipt without `result` is a plain TRX transfer's; ours always calls a contract.
    let result = str_field(receipt, "result", CALL)?;
    if result.is_empty() || result.len() > 64 {
        return Err(malformed(CALL, "receipt result is not a TRON code"));
    }
    let contract = match body.get("contract_address") {
        None => None,
        Some(address) => {
            let text = address.as_str().ok_or(malformed(CALL, "contract_address not text"))?;
            Some(
                TronAddress::from_hex(&text.to_ascii_lowercase())
                    .or_else(|_| TronAddress::from_base58(text))
                    .map_err(|_| malformed(CALL, "contract_address is not an address"))?,
            )
        }
    };
    let logs = match body.get("log") {
        None => Vec::new(),
        Some(logs) => {
            let logs = logs.as_array().ok_or(malformed(CALL, "log is not an array"))?;
            if logs.len() > MAX_LOGS {
                return Err(malformed(CALL, "too many logs"));
            }
            logs.iter().map(|log| parse_log(log, CALL)).collect::<Result<_, _>>()?
        }
    };
    // The top-level `result` appears only as FAILED; a SUCCESS receipt beside it is incoherent.
    let failed = match body.get("result") {
        None => false,
        Some(Value::String(text)) if text == "FAILED" => true,
        Some(_) => return Err(malformed(CALL, "top-level result is not FAILED")),
    };
    if failed && result == "SUCCESS" {
        return Err(malformed(CALL, "a FAILED transaction with a SUCCESS receipt"));
    }
    Ok(Some(TransactionInfo {
        block,
        success: result == "SUCCESS",
        result: result.to_owned(),
        energy_used: optional_u64(receipt, "energy_usage_total", CALL)?,
        fee_sun: optional_u64(body, "fee", CALL)?,
        contract,
        logs,
    }))
}

impl TronClient {
    /// A client that tries each read `1 + retries` times on transport errors. Backoff between
    /// steps is the processor's (its poll interval); retries here are immediate and bounded.
    pub fn new(transport: Arc<dyn TronTransport>, retries: u32) -> Self {
        TronClient { transport, retries }
    }

    async fn call(
        &self,
        call: &'static str,
        endpoint: Endpoint,
        path: &str,
        body: &Value,
    ) -> Result<Value, Error> {
        let mut tries = 0u32;
        loop {
            match self.transport.post(endpoint, path, body).await {
                Ok(response) => return Ok(response.body),
                Err(source) => {
                    tries = tries.saturating_add(1);
                    if tries > self.retries || !retry_makes_sense(&source) {
                        return Err(Error::TronTransport { call, source });
                    }
                    tracing::debug!(call, error = %source, "TRON call failed; same call again");
                }
            }
        }
    }

    /// The head block (`/wallet/getnowblock`).
    pub async fn now_block(&self) -> Result<HeadBlock, Error> {
        let path = "/wallet/getnowblock";
        parse_now_block(&self.call("getnowblock", Endpoint::FullNode, path, &json!({})).await?)
    }

    /// The chain's energy price in sun (`/wallet/getchainparameters`).
    pub async fn energy_fee(&self) -> Result<u64, Error> {
        let path = "/wallet/getchainparameters";
        parse_energy_fee(
            &self.call("getchainparameters", Endpoint::FullNode, path, &json!({})).await?,
        )
    }

    /// Energy a transfer would use, from a dry run on the full node.
    pub async fn estimate_transfer_energy(
        &self,
        owner: &TronAddress,
        contract: &TronAddress,
        to: &TronAddress,
        amount: MicroUsdt,
    ) -> Result<u64, Error> {
        let data = abi::transfer_call_data(to, amount);
        let body = json!({
            "owner_address": owner.to_base58(),
            "contract_address": contract.to_base58(),
            "function_selector": TRANSFER_SIGNATURE,
            "parameter": hex::encode(&data[4..]),
            "visible": true,
        });
        let path = "/wallet/triggerconstantcontract";
        parse_energy_estimate(&self.call("estimate", Endpoint::FullNode, path, &body).await?)
    }

    /// Asks the full node to build a transfer (`/wallet/triggersmartcontract`) and returns its
    /// raw bytes, unverified: callers must pass them through `tx::verify_remote_tx`.
    pub async fn trigger_transfer(
        &self,
        owner: &TronAddress,
        contract: &TronAddress,
        to: &TronAddress,
        amount: MicroUsdt,
        fee_limit_sun: u64,
    ) -> Result<Vec<u8>, Error> {
        let data = abi::transfer_call_data(to, amount);
        let body = json!({
            "owner_address": owner.to_base58(),
            "contract_address": contract.to_base58(),
            "function_selector": TRANSFER_SIGNATURE,
            "parameter": hex::encode(&data[4..]),
            "fee_limit": fee_limit_sun,
            "call_value": 0,
            "visible": true,
        });
        let path = "/wallet/triggersmartcontract";
        parse_trigger(&self.call("triggersmartcontract", Endpoint::FullNode, path, &body).await?)
    }

    /// The USDT balance of `owner` (`balanceOf` dry run).
    pub async fn usdt_balance(
        &self,
        contract: &TronAddress,
        owner: &TronAddress,
    ) -> Result<MicroUsdt, Error> {
        let data = abi::balance_of_call_data(owner);
        let body = json!({
            "owner_address": owner.to_base58(),
            "contract_address": contract.to_base58(),
            "function_selector": BALANCE_OF_SIGNATURE,
            "parameter": hex::encode(&data[4..]),
            "visible": true,
        });
        let path = "/wallet/triggerconstantcontract";
        parse_balance_of(&self.call("balanceOf", Endpoint::FullNode, path, &body).await?)
    }

    /// The TRX balance of `owner` in sun (`/wallet/getaccount`).
    pub async fn trx_balance(&self, owner: &TronAddress) -> Result<u64, Error> {
        let body = json!({ "address": owner.to_base58(), "visible": true });
        parse_trx_balance(
            &self.call("getaccount", Endpoint::FullNode, "/wallet/getaccount", &body).await?,
        )
    }

    /// The staked energy of `owner` (`/wallet/getaccountresource`).
    pub async fn account_resource(&self, owner: &TronAddress) -> Result<AccountResource, Error> {
        let body = json!({ "address": owner.to_base58(), "visible": true });
        let path = "/wallet/getaccountresource";
        parse_account_resource(
            &self.call("getaccountresource", Endpoint::FullNode, path, &body).await?,
        )
    }

    /// Broadcasts signed bytes (`/wallet/broadcasthex`), re-sending exactly the same bytes when
    /// the transport fails. Never fails: no answer at all is [`BroadcastOutcome::Unknown`].
    pub async fn broadcast(&self, bytes: &BroadcastBytes) -> BroadcastOutcome {
        let body = json!({ "transaction": bytes.hex });
        let mut earlier_unknown = false;
        for _ in 0..=self.retries {
            match self.transport.post(Endpoint::FullNode, "/wallet/broadcasthex", &body).await {
                Ok(response) => match parse_broadcast(&response.body, earlier_unknown) {
                    Ok(outcome) => return outcome,
                    Err(error) => {
                        tracing::warn!(txid = %bytes.txid, %error, "unreadable broadcast reply");
                        earlier_unknown = true;
                    }
                },
                Err(error) => {
                    tracing::debug!(txid = %bytes.txid, %error, "broadcast unanswered; same bytes again");
                    earlier_unknown = true;
                    if !retry_makes_sense(&error) {
                        break;
                    }
                }
            }
        }
        BroadcastOutcome::Unknown
    }

    async fn known(&self, endpoint: Endpoint, path: &str, txid: &Txid) -> Result<bool, Error> {
        let body = json!({ "value": txid.to_hex(), "visible": true });
        parse_transaction_known(
            &self.call("gettransactionbyid", endpoint, path, &body).await?,
            txid,
        )
    }

    async fn info(
        &self,
        endpoint: Endpoint,
        path: &str,
        txid: &Txid,
    ) -> Result<Option<TransactionInfo>, Error> {
        let body = json!({ "value": txid.to_hex() });
        let reply = self.call("gettransactioninfobyid", endpoint, path, &body).await?;
        parse_transaction_info(&reply, txid)
    }

    /// What the chain knows about `txid`: the solidity node's receipt first (final), then the
    /// full node's receipt, then whether either node has the transaction at all.
    pub async fn lookup(&self, txid: &Txid) -> Result<TxLookup, Error> {
        let solid = "/walletsolidity/gettransactioninfobyid";
        if let Some(info) = self.info(Endpoint::SolidityNode, solid, txid).await? {
            return Ok(TxLookup::Solidified(info));
        }
        if self.info(Endpoint::FullNode, "/wallet/gettransactioninfobyid", txid).await?.is_some() {
            return Ok(TxLookup::Pending);
        }
        if self.known(Endpoint::FullNode, "/wallet/gettransactionbyid", txid).await?
            || self
                .known(Endpoint::SolidityNode, "/walletsolidity/gettransactionbyid", txid)
                .await?
        {
            return Ok(TxLookup::Pending);
        }
        Ok(TxLookup::NotFound)
    }
}

/// A 4xx says the request itself is wrong: sending it again cannot help.
fn retry_makes_sense(error: &TransportError) -> bool {
    !matches!(error, TransportError::Status { status, .. } if (400..500).contains(status))
}

#[cfg(test)]
mod tests;
