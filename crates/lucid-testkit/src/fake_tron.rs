//! `FakeTronNode`: a FAKE TRON full node and solidity node, served over HTTP on loopback, that
//! implements exactly the endpoints the payout client uses (pools-payouts.md §7).
//!
//! It is a small chain, not a mock of replies: a broadcast is decoded with this crate's own
//! protobuf structs, its txid is SHA-256 of the received raw bytes, its signer is recovered with
//! secp256k1 and compared with the owner, its expiration and TAPOS reference are checked against
//! the fake's blocks, and a second broadcast of the same txid is `DUP_TRANSACTION_ERROR`. Blocks
//! are produced only when the test calls [`FakeTronNode::produce_blocks`] (no wall clock, no
//! sleeps): each block includes the waiting transactions that have not expired, runs them (USDT
//! moves, energy is paid from staked energy then burned TRX, receipts `SUCCESS`, `REVERT` or
//! `OUT_OF_ENERGY`), and a block becomes solid `solidify_after_blocks` blocks later.
//!
//! Faults are queued with [`FakeTronNode::inject`] and consumed by the next broadcast (or trigger):
//! drop the response after accepting, time out without accepting, revert with `OUT_OF_ENERGY`,
//! accept but never include (so the transaction expires), return a tampered transaction.

mod proto;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use prost::Message as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sha3::Keccak256;

use proto::{
    AnyValue, ContractCall, RawTx, SignedEnvelope, TRIGGER_SMART_CONTRACT, TRIGGER_TYPE_URL,
    TriggerCall,
};

/// A TRON address: 0x41 ‖ 20 bytes.
pub type Address = [u8; 21];
/// A txid.
pub type Txid = [u8; 32];

const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
const MAX_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// The address a secp256k1 public key controls, computed here (Keccak-256 of the uncompressed
/// point without its 0x04 tag, last 20 bytes, version 0x41).
pub fn address_of_key(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let digest = Keccak256::digest(&point.as_bytes()[1..]);
    let mut address = [0x41u8; 21];
    address[1..].copy_from_slice(&digest[12..]);
    address
}

/// The address of a secp256k1 secret, or `None` for an invalid secret.
pub fn address_of_secret(secret: &[u8; 32]) -> Option<Address> {
    let key = k256::ecdsa::SigningKey::from_bytes(secret.into()).ok()?;
    Some(address_of_key(key.verifying_key()))
}

/// Base58Check text of an address.
pub fn to_base58(address: &Address) -> String {
    bs58::encode(address).with_check().into_string()
}

fn parse_address(text: &str) -> Option<Address> {
    let bytes = if text.len() == 42 {
        hex::decode(text).ok()?
    } else {
        bs58::decode(text).with_check(None).into_vec().ok()?
    };
    let address: Address = bytes.try_into().ok()?;
    (address[0] == 0x41).then_some(address)
}

/// Settings of the fake chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeTronConfig {
    /// The one TRC20 contract the fake runs (USDT).
    pub usdt_contract: Address,
    /// `getEnergyFee`, sun per energy.
    pub energy_fee_sun: u64,
    /// Energy of a transfer to an address that already holds USDT; twice that to a fresh one.
    pub transfer_energy: u64,
    /// A block is solid once this many blocks follow it.
    pub solidify_after_blocks: u64,
    /// Timestamp of the genesis block, unix ms.
    pub genesis_ms: i64,
    /// Time between blocks, ms.
    pub block_interval_ms: i64,
    /// Expiration the node gives transactions it builds (`triggersmartcontract`), after its head.
    pub trigger_expiration_ms: i64,
}

impl FakeTronConfig {
    /// Mainnet-like numbers for `usdt_contract`, solidifying after 2 blocks to keep tests short.
    pub fn new(usdt_contract: Address) -> Self {
        FakeTronConfig {
            usdt_contract,
            energy_fee_sun: 420,
            transfer_energy: 64_285,
            solidify_after_blocks: 2,
            genesis_ms: 1_767_225_600_000,
            block_interval_ms: 3_000,
            trigger_expiration_ms: 60_000,
        }
    }
}

/// A fault the next broadcast (or, for [`Fault::TamperTrigger`], the next trigger) suffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Accept the transaction, then break the connection instead of answering.
    DropResponseAfterAccept,
    /// Do not accept; never answer (the client's timeout ends the call).
    Timeout,
    /// Accept and include, but the execution runs out of energy (`OUT_OF_ENERGY`, fee burned).
    OutOfEnergy,
    /// Answer `result: true` but never include it: the transaction expires.
    Expire,
    /// `triggersmartcontract` answers a transaction paying someone else.
    TamperTrigger,
}

/// How a transaction ended on the fake chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeTxState {
    /// Waiting for the next block.
    Waiting,
    /// Never included (dropped or expired).
    Dropped,
    /// Included with this receipt result (`SUCCESS`, `REVERT`, `OUT_OF_ENERGY`).
    Included {
        /// Block number.
        block: u64,
        /// Receipt result.
        result: &'static str,
    },
}

/// One accepted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeTx {
    /// SHA-256 of the raw bytes received.
    pub txid: Txid,
    /// The signer (= owner).
    pub owner: Address,
    /// The transfer's recipient.
    pub to: Address,
    /// Units transferred.
    pub amount: u64,
    /// Expiration, unix ms.
    pub expiration: i64,
    /// Its fate so far.
    pub state: FakeTxState,
}

#[derive(Clone, Debug)]
struct Receipt {
    block: u64,
    block_time: i64,
    result: &'static str,
    energy_used: u64,
    fee_sun: u64,
}

#[derive(Clone, Debug)]
struct TxRecord {
    tx: FakeTx,
    fee_limit: u64,
    raw_hex: String,
    signature_hex: String,
    out_of_energy: bool,
    never_include: bool,
    receipt: Option<Receipt>,
}

#[derive(Clone, Copy, Debug)]
struct Block {
    number: u64,
    id: [u8; 32],
    timestamp: i64,
}

#[derive(Debug)]
struct Chain {
    config: FakeTronConfig,
    blocks: Vec<Block>,
    usdt: BTreeMap<Address, u64>,
    ever_held: BTreeSet<Address>,
    trx: BTreeMap<Address, u64>,
    energy_limit: BTreeMap<Address, u64>,
    energy_used: BTreeMap<Address, u64>,
    txs: BTreeMap<Txid, TxRecord>,
    order: Vec<Txid>,
    faults: VecDeque<Fault>,
    broadcast_calls: u64,
    trigger_calls: u64,
    account_calls: u64,
}

/// What a handler does after computing under the lock.
enum Reply {
    Json(Value),
    Hang,
    DropConnection,
    BadRequest,
}

fn block_id(number: u64, previous: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(number.to_be_bytes());
    let mut id: [u8; 32] = hasher.finalize().into();
    id[..8].copy_from_slice(&number.to_be_bytes());
    id
}

fn refusal(code: &str, message: &str) -> Value {
    json!({ "result": false, "code": code, "message": hex::encode(message) })
}

impl Chain {
    fn new(config: FakeTronConfig) -> Self {
        let genesis = Block { number: 0, id: block_id(0, &[0; 32]), timestamp: config.genesis_ms };
        Chain {
            config,
            blocks: vec![genesis],
            usdt: BTreeMap::new(),
            ever_held: BTreeSet::new(),
            trx: BTreeMap::new(),
            energy_limit: BTreeMap::new(),
            energy_used: BTreeMap::new(),
            txs: BTreeMap::new(),
            order: Vec::new(),
            faults: VecDeque::new(),
            broadcast_calls: 0,
            trigger_calls: 0,
            account_calls: 0,
        }
    }

    fn head(&self) -> Block {
        self.blocks.last().copied().unwrap_or(Block { number: 0, id: [0; 32], timestamp: 0 })
    }

    fn is_solid(&self, block: u64) -> bool {
        self.head().number >= block.saturating_add(self.config.solidify_after_blocks)
    }

    fn transfer_energy(&self, to: &Address) -> u64 {
        if self.ever_held.contains(to) {
            self.config.transfer_energy
        } else {
            self.config.transfer_energy.saturating_mul(2)
        }
    }

    fn produce_block(&mut self) {
        let head = self.head();
        let number = head.number + 1;
        let block = Block {
            number,
            id: block_id(number, &head.id),
            timestamp: head.timestamp + self.config.block_interval_ms,
        };
        self.blocks.push(block);
        for txid in self.order.clone() {
            let Some(record) = self.txs.get(&txid).cloned() else { continue };
            if record.tx.state != FakeTxState::Waiting {
                continue;
            }
            if record.never_include || record.tx.expiration <= block.timestamp {
                self.set_state(&txid, FakeTxState::Dropped, None);
                continue;
            }
            let receipt = self.execute(&record, block);
            let state = FakeTxState::Included { block: number, result: receipt.result };
            self.set_state(&txid, state, Some(receipt));
        }
    }

    fn set_state(&mut self, txid: &Txid, state: FakeTxState, receipt: Option<Receipt>) {
        if let Some(record) = self.txs.get_mut(txid) {
            record.tx.state = state;
            record.receipt = receipt;
        }
    }

    /// Runs a transfer: energy from the owner's stake first, the rest burned as TRX up to the
    /// fee limit; the USDT moves only on success.
    fn execute(&mut self, record: &TxRecord, block: Block) -> Receipt {
        let owner = record.tx.owner;
        let energy = self.transfer_energy(&record.tx.to);
        let limit = self.energy_limit.get(&owner).copied().unwrap_or(0);
        let used = self.energy_used.get(&owner).copied().unwrap_or(0);
        let staked = limit.saturating_sub(used).min(energy);
        let burn = (energy - staked).saturating_mul(self.config.energy_fee_sun);
        let trx = self.trx.get(&owner).copied().unwrap_or(0);
        let receipt = |result, energy_used, fee_sun| Receipt {
            block: block.number,
            block_time: block.timestamp,
            result,
            energy_used,
            fee_sun,
        };
        if record.out_of_energy || burn > record.fee_limit || burn > trx {
            // The whole fee limit (or what the wallet has) burns, nothing moves.
            let fee = record.fee_limit.min(trx);
            self.trx.insert(owner, trx - fee);
            return receipt("OUT_OF_ENERGY", energy, fee);
        }
        self.trx.insert(owner, trx - burn);
        self.energy_used.insert(owner, used + staked);
        let balance = self.usdt.get(&owner).copied().unwrap_or(0);
        if balance < record.tx.amount {
            return receipt("REVERT", energy, burn);
        }
        self.usdt.insert(owner, balance - record.tx.amount);
        let to_balance = self.usdt.get(&record.tx.to).copied().unwrap_or(0);
        self.usdt.insert(record.tx.to, to_balance.saturating_add(record.tx.amount));
        self.ever_held.insert(record.tx.to);
        receipt("SUCCESS", energy, burn)
    }

    fn now_block(&self) -> Value {
        let head = self.head();
        json!({
            "blockID": hex::encode(head.id),
            "block_header": { "raw_data": {
                "number": head.number,
                "timestamp": head.timestamp,
                "parentHash": hex::encode(self.blocks.iter().rev().nth(1).map_or([0; 32], |b| b.id)),
            }},
        })
    }

    fn chain_parameters(&self) -> Value {
        json!({ "chainParameter": [
            { "key": "getMaintenanceTimeInterval", "value": 21_600_000 },
            { "key": "getTransactionFee", "value": 1000 },
            { "key": "getEnergyFee", "value": self.config.energy_fee_sun },
            { "key": "getAllowTvmConstantinople", "value": 1 },
        ]})
    }

    fn account(&self, body: &Value) -> Option<Value> {
        let address = parse_address(body.get("address")?.as_str()?)?;
        let Some(balance) = self.trx.get(&address) else { return Some(json!({})) };
        Some(json!({ "address": to_base58(&address), "balance": balance }))
    }

    fn account_resource(&self, body: &Value) -> Option<Value> {
        let address = parse_address(body.get("address")?.as_str()?)?;
        let mut reply = serde_json::Map::new();
        if let Some(limit) = self.energy_limit.get(&address).filter(|limit| **limit > 0) {
            reply.insert("EnergyLimit".into(), json!(limit));
        }
        if let Some(used) = self.energy_used.get(&address).filter(|used| **used > 0) {
            reply.insert("EnergyUsed".into(), json!(used));
        }
        reply.insert("freeNetLimit".into(), json!(600));
        Some(Value::Object(reply))
    }

    /// Decodes the common fields of a trigger request.
    fn trigger_request(&self, body: &Value) -> Option<(Address, Address, String, Vec<u8>)> {
        let owner = parse_address(body.get("owner_address")?.as_str()?)?;
        let contract = parse_address(body.get("contract_address")?.as_str()?)?;
        let selector = body.get("function_selector")?.as_str()?.to_owned();
        let parameter = hex::decode(body.get("parameter")?.as_str()?).ok()?;
        Some((owner, contract, selector, parameter))
    }

    fn word_address(word: &[u8]) -> Option<Address> {
        if word.len() != 32 || word[..12].iter().any(|b| *b != 0) {
            return None;
        }
        let mut address = [0x41u8; 21];
        address[1..].copy_from_slice(&word[12..]);
        Some(address)
    }

    fn word_u64(word: &[u8]) -> Option<u64> {
        if word.len() != 32 || word[..24].iter().any(|b| *b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(word[24..].try_into().ok()?))
    }

    fn trigger_constant(&self, body: &Value) -> Option<Value> {
        let (owner, contract, selector, parameter) = self.trigger_request(body)?;
        if contract != self.config.usdt_contract {
            return Some(json!({ "result": { "code": "CONTRACT_VALIDATE_ERROR",
                "message": hex::encode("No contract or not a smart contract") } }));
        }
        match selector.as_str() {
            "balanceOf(address)" => {
                let who = Self::word_address(&parameter)?;
                let balance = self.usdt.get(&who).copied().unwrap_or(0);
                Some(json!({
                    "result": { "result": true },
                    "energy_used": 900,
                    "constant_result": [format!("{balance:064x}")],
                }))
            }
            "transfer(address,uint256)" => {
                let (to, amount) = Self::transfer_args(&parameter)?;
                if self.usdt.get(&owner).copied().unwrap_or(0) < amount {
                    return Some(json!({
                        "result": { "code": "CONTRACT_EXE_ERROR",
                            "message": hex::encode("REVERT opcode executed") },
                        "energy_used": self.transfer_energy(&to),
                    }));
                }
                Some(json!({
                    "result": { "result": true },
                    "energy_used": self.transfer_energy(&to),
                    "constant_result": [format!("{:064x}", 1)],
                }))
            }
            _ => None,
        }
    }

    fn transfer_args(parameter: &[u8]) -> Option<(Address, u64)> {
        if parameter.len() != 64 {
            return None;
        }
        Some((Self::word_address(&parameter[..32])?, Self::word_u64(&parameter[32..])?))
    }

    /// Builds a transaction as a full node does (head block as reference, the node's own
    /// expiration), with this crate's encoder.
    fn trigger_smart_contract(&mut self, body: &Value) -> Option<Value> {
        self.trigger_calls += 1;
        let (owner, contract, selector, parameter) = self.trigger_request(body)?;
        if selector != "transfer(address,uint256)" || contract != self.config.usdt_contract {
            return None;
        }
        let fee_limit = body.get("fee_limit")?.as_i64()?;
        let (mut to, amount) = Self::transfer_args(&parameter)?;
        if self.faults.front() == Some(&Fault::TamperTrigger) {
            self.faults.pop_front();
            to[20] ^= 0x5a;
        }
        let mut data = TRANSFER_SELECTOR.to_vec();
        data.extend_from_slice(&[0; 12]);
        data.extend_from_slice(&to[1..]);
        data.extend_from_slice(&[0; 24]);
        data.extend_from_slice(&amount.to_be_bytes());
        let head = self.head();
        let trigger = TriggerCall {
            owner_address: owner.to_vec(),
            contract_address: contract.to_vec(),
            call_value: 0,
            data,
        };
        let raw = RawTx {
            ref_block_bytes: head.number.to_be_bytes()[6..8].to_vec(),
            ref_block_num: 0,
            ref_block_hash: head.id[8..16].to_vec(),
            expiration: head.timestamp + self.config.trigger_expiration_ms,
            data: Vec::new(),
            contract: vec![ContractCall {
                kind: TRIGGER_SMART_CONTRACT,
                parameter: Some(AnyValue {
                    type_url: TRIGGER_TYPE_URL.to_owned(),
                    value: trigger.encode_to_vec(),
                }),
                permission_id: 0,
            }],
            timestamp: head.timestamp,
            fee_limit,
        }
        .encode_to_vec();
        let txid: Txid = Sha256::digest(&raw).into();
        Some(json!({
            "result": { "result": true },
            "transaction": {
                "visible": true,
                "txID": hex::encode(txid),
                "raw_data_hex": hex::encode(&raw),
            },
        }))
    }

    /// Validates a signed transaction as a node does before accepting it.
    fn validate(&self, bytes: &[u8]) -> Result<(TxRecord, Txid), Value> {
        let other = |message| refusal("OTHER_ERROR", message);
        let contract_error = |message| refusal("CONTRACT_VALIDATE_ERROR", message);
        let envelope = SignedEnvelope::decode(bytes).map_err(|_| other("not a Transaction"))?;
        let txid: Txid = Sha256::digest(&envelope.raw_data).into();
        let raw = RawTx::decode(envelope.raw_data.as_slice()).map_err(|_| other("bad raw_data"))?;
        let [call] = raw.contract.as_slice() else { return Err(contract_error("one contract")) };
        let parameter = call.parameter.as_ref().ok_or_else(|| contract_error("no parameter"))?;
        if call.kind != TRIGGER_SMART_CONTRACT || parameter.type_url != TRIGGER_TYPE_URL {
            return Err(contract_error("not a TriggerSmartContract"));
        }
        let trigger = TriggerCall::decode(parameter.value.as_slice())
            .map_err(|_| contract_error("bad TriggerSmartContract"))?;
        if trigger.contract_address != self.config.usdt_contract {
            return Err(contract_error("No contract or not a smart contract"));
        }
        if trigger.call_value != 0 {
            return Err(contract_error("call value on a TRC20 transfer"));
        }
        let (to, amount) = match trigger.data.split_at_checked(4) {
            Some((selector, args)) if selector == TRANSFER_SELECTOR => {
                Self::transfer_args(args).ok_or_else(|| contract_error("bad transfer arguments"))?
            }
            _ => return Err(contract_error("not a transfer")),
        };
        let owner: Address = trigger
            .owner_address
            .as_slice()
            .try_into()
            .map_err(|_| contract_error("owner is not 21 bytes"))?;
        let head = self.head();
        let expired =
            raw.expiration <= head.timestamp || raw.expiration > head.timestamp + MAX_EXPIRATION_MS;
        match self.txs.get(&txid).map(|record| &record.tx.state) {
            // A transaction dropped from the pool is judged afresh, like one never seen.
            None | Some(FakeTxState::Dropped) => {}
            Some(_) => return Err(refusal("DUP_TRANSACTION_ERROR", "dup transaction")),
        }
        if expired {
            return Err(refusal("TRANSACTION_EXPIRATION_ERROR", "transaction expired"));
        }
        let tapos_ok = self.blocks.iter().any(|block| {
            block.number.to_be_bytes()[6..8] == raw.ref_block_bytes[..]
                && block.id[8..16] == raw.ref_block_hash[..]
        });
        if !tapos_ok {
            return Err(refusal("TAPOS_ERROR", "Tapos check error"));
        }
        let [signature] = envelope.signature.as_slice() else {
            return Err(refusal("SIGERROR", "one signature expected"));
        };
        if recover_signer(&txid, signature) != Some(owner) {
            return Err(refusal("SIGERROR", "signature does not recover the owner"));
        }
        let fee_limit =
            u64::try_from(raw.fee_limit).map_err(|_| contract_error("negative fee limit"))?;
        let record = TxRecord {
            tx: FakeTx {
                txid,
                owner,
                to,
                amount,
                expiration: raw.expiration,
                state: FakeTxState::Waiting,
            },
            fee_limit,
            raw_hex: hex::encode(&envelope.raw_data),
            signature_hex: hex::encode(signature),
            out_of_energy: false,
            never_include: false,
            receipt: None,
        };
        Ok((record, txid))
    }

    fn broadcast_hex(&mut self, body: &Value) -> Reply {
        self.broadcast_calls += 1;
        let Some(bytes) =
            body.get("transaction").and_then(Value::as_str).and_then(|t| hex::decode(t).ok())
        else {
            return Reply::Json(refusal("OTHER_ERROR", "transaction is not hex"));
        };
        let (mut record, txid) = match self.validate(&bytes) {
            Ok(accepted) => accepted,
            Err(refused) => return Reply::Json(refused),
        };
        let fault = self.faults.front().copied().filter(|fault| *fault != Fault::TamperTrigger);
        if fault.is_some() {
            self.faults.pop_front();
        }
        if fault == Some(Fault::Timeout) {
            return Reply::Hang;
        }
        record.out_of_energy = fault == Some(Fault::OutOfEnergy);
        record.never_include = fault == Some(Fault::Expire);
        match self.txs.get_mut(&txid) {
            // Back in the pool; a transaction meant never to be included stays so.
            Some(dropped) => dropped.tx.state = FakeTxState::Waiting,
            None => {
                self.txs.insert(txid, record);
                self.order.push(txid);
            }
        }
        if fault == Some(Fault::DropResponseAfterAccept) {
            return Reply::DropConnection;
        }
        Reply::Json(json!({ "result": true, "txid": hex::encode(txid) }))
    }

    fn txid_of(body: &Value) -> Option<Txid> {
        hex::decode(body.get("value")?.as_str()?).ok()?.try_into().ok()
    }

    fn transaction_by_id(&self, body: &Value, solid_only: bool) -> Option<Value> {
        let txid = Self::txid_of(body)?;
        let Some(record) = self.txs.get(&txid) else { return Some(json!({})) };
        let visible = match &record.receipt {
            Some(receipt) => !solid_only || self.is_solid(receipt.block),
            // Waiting or dropped transactions are known to the full node's pool only.
            None => !solid_only && record.tx.state == FakeTxState::Waiting,
        };
        if !visible {
            return Some(json!({}));
        }
        Some(json!({
            "txID": hex::encode(txid),
            "raw_data_hex": record.raw_hex,
            "signature": [record.signature_hex],
            "ret": [{ "contractRet": record.receipt.as_ref().map_or("", |r| r.result) }],
        }))
    }

    fn transaction_info(&self, body: &Value, solid_only: bool) -> Option<Value> {
        let txid = Self::txid_of(body)?;
        let Some(record) = self.txs.get(&txid) else { return Some(json!({})) };
        let Some(receipt) = &record.receipt else { return Some(json!({})) };
        if solid_only && !self.is_solid(receipt.block) {
            return Some(json!({}));
        }
        let contract = self.config.usdt_contract;
        let mut info = json!({
            "id": hex::encode(txid),
            "fee": receipt.fee_sun,
            "blockNumber": receipt.block,
            "blockTimeStamp": receipt.block_time,
            "contractResult": [""],
            "contract_address": hex::encode(contract),
            "receipt": { "energy_usage_total": receipt.energy_used, "result": receipt.result },
        });
        if receipt.result == "SUCCESS" {
            let word =
                |address: &Address| format!("{}{}", "0".repeat(24), hex::encode(&address[1..]));
            info["log"] = json!([{
                "address": hex::encode(&contract[1..]),
                "topics": [
                    "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
                    word(&record.tx.owner),
                    word(&record.tx.to),
                ],
                "data": format!("{:064x}", record.tx.amount),
            }]);
        } else {
            info["result"] = json!("FAILED");
            info["resMessage"] = json!(hex::encode(receipt.result));
        }
        Some(info)
    }

    fn handle(&mut self, path: &str, body: &Value) -> Reply {
        let answer = match path {
            "/wallet/getnowblock" => Some(self.now_block()),
            "/wallet/getchainparameters" => Some(self.chain_parameters()),
            "/wallet/getaccount" => {
                self.account_calls += 1;
                self.account(body)
            }
            "/wallet/getaccountresource" => self.account_resource(body),
            "/wallet/triggerconstantcontract" => self.trigger_constant(body),
            "/wallet/triggersmartcontract" => self.trigger_smart_contract(body),
            "/wallet/broadcasthex" => return self.broadcast_hex(body),
            "/wallet/gettransactionbyid" => self.transaction_by_id(body, false),
            "/walletsolidity/gettransactionbyid" => self.transaction_by_id(body, true),
            "/wallet/gettransactioninfobyid" => self.transaction_info(body, false),
            "/walletsolidity/gettransactioninfobyid" => self.transaction_info(body, true),
            _ => None,
        };
        answer.map_or(Reply::BadRequest, Reply::Json)
    }
}

/// Recovers the address that signed `txid` (65 bytes r ‖ s ‖ v, v ∈ {0, 1, 27, 28}).
fn recover_signer(txid: &Txid, signature: &[u8]) -> Option<Address> {
    let [rs @ .., v] = signature else { return None };
    if rs.len() != 64 {
        return None;
    }
    let v = match v {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return None,
    };
    let signature = Signature::from_slice(rs).ok()?;
    if signature.normalize_s().is_some() {
        return None; // high S: TRON refuses malleated signatures
    }
    let key =
        VerifyingKey::recover_from_prehash(txid, &signature, RecoveryId::from_byte(v)?).ok()?;
    Some(address_of_key(&key))
}

/// A body that fails at once: the connection breaks after the status line, so the client never
/// reads an answer although the transaction was accepted.
struct BrokenBody;

impl axum::body::HttpBody for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other("FAKE: response dropped after accepting"))))
    }
}

type Shared = Arc<Mutex<Chain>>;

fn lock(chain: &Shared) -> MutexGuard<'_, Chain> {
    // A panicking test thread must not hide the chain from the assertions that follow.
    chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve_call(State(chain): State<Shared>, uri: axum::http::Uri, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "FAKE: body is not JSON").into_response();
    };
    let reply = lock(&chain).handle(uri.path(), &request);
    match reply {
        Reply::Json(value) => axum::Json(value).into_response(),
        Reply::BadRequest => (StatusCode::BAD_REQUEST, "FAKE: malformed request").into_response(),
        Reply::DropConnection => Response::new(Body::new(BrokenBody)),
        Reply::Hang => {
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

/// The fake node: a task serving HTTP on `127.0.0.1` and the chain it serves.
#[derive(Debug)]
pub struct FakeTronNode {
    chain: Shared,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTronNode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const PATHS: [&str; 11] = [
    "/wallet/getnowblock",
    "/wallet/getchainparameters",
    "/wallet/getaccount",
    "/wallet/getaccountresource",
    "/wallet/triggerconstantcontract",
    "/wallet/triggersmartcontract",
    "/wallet/broadcasthex",
    "/wallet/gettransactionbyid",
    "/walletsolidity/gettransactionbyid",
    "/wallet/gettransactioninfobyid",
    "/walletsolidity/gettransactioninfobyid",
];

impl FakeTronNode {
    /// Starts the fake on an ephemeral loopback port (inside a tokio runtime).
    pub async fn start(config: FakeTronConfig) -> std::io::Result<Self> {
        let chain: Shared = Arc::new(Mutex::new(Chain::new(config)));
        let router = PATHS
            .iter()
            .fold(Router::new(), |router, path| router.route(path, post(serve_call)))
            .with_state(Arc::clone(&chain));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            // The fake ends with the test; a serve error there has no one left to tell.
            let _ = axum::serve(listener, router).await;
        });
        Ok(FakeTronNode { chain, address, server })
    }

    /// `http://127.0.0.1:port`, the base URL of both the full and the solidity node.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Produces `count` blocks (each `block_interval_ms` later), including and running the
    /// waiting transactions that have not expired.
    pub fn produce_blocks(&self, count: u64) {
        let mut chain = lock(&self.chain);
        for _ in 0..count {
            chain.produce_block();
        }
    }

    /// (number, timestamp in unix ms) of the head block.
    pub fn head(&self) -> (u64, i64) {
        let head = lock(&self.chain).head();
        (head.number, head.timestamp)
    }

    /// Sets the USDT balance of `address`.
    pub fn set_usdt(&self, address: Address, units: u64) {
        let mut chain = lock(&self.chain);
        chain.usdt.insert(address, units);
        if units > 0 {
            chain.ever_held.insert(address);
        }
    }

    /// Sets the TRX balance of `address`, in sun (creating the account).
    pub fn set_trx(&self, address: Address, sun: u64) {
        lock(&self.chain).trx.insert(address, sun);
    }

    /// Sets the staked energy of `address`.
    pub fn set_energy(&self, address: Address, limit: u64) {
        lock(&self.chain).energy_limit.insert(address, limit);
    }

    /// USDT units held by `address`.
    pub fn usdt(&self, address: &Address) -> u64 {
        lock(&self.chain).usdt.get(address).copied().unwrap_or(0)
    }

    /// TRX (sun) held by `address`.
    pub fn trx(&self, address: &Address) -> u64 {
        lock(&self.chain).trx.get(address).copied().unwrap_or(0)
    }

    /// Queues a fault for the next broadcast (or trigger, for [`Fault::TamperTrigger`]).
    pub fn inject(&self, fault: Fault) {
        lock(&self.chain).faults.push_back(fault);
    }

    /// Faults injected but not consumed yet.
    pub fn pending_faults(&self) -> usize {
        lock(&self.chain).faults.len()
    }

    /// Every transaction the fake accepted, in acceptance order.
    pub fn transactions(&self) -> Vec<FakeTx> {
        let chain = lock(&self.chain);
        chain.order.iter().filter_map(|txid| chain.txs.get(txid)).map(|r| r.tx.clone()).collect()
    }

    /// Transactions whose receipt is `SUCCESS` (USDT moved).
    pub fn successful_transfers(&self) -> Vec<FakeTx> {
        self.transactions()
            .into_iter()
            .filter(|tx| matches!(&tx.state, FakeTxState::Included { result: "SUCCESS", .. }))
            .collect()
    }

    /// Calls to `/wallet/broadcasthex`, accepted or not.
    pub fn broadcast_calls(&self) -> u64 {
        lock(&self.chain).broadcast_calls
    }

    /// Calls to `/wallet/getaccount` (TRX balance reads).
    pub fn account_calls(&self) -> u64 {
        lock(&self.chain).account_calls
    }

    /// Calls to `/wallet/triggersmartcontract`.
    pub fn trigger_calls(&self) -> u64 {
        lock(&self.chain).trigger_calls
    }
}
