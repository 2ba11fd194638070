//! `FakeChain`: a FAKE payout rail for tests, standing in for TRON. It is not a chain: it
//! records every broadcast, applies at most one transfer per txid, includes a transaction only
//! before its expiration, solidifies it after a configurable number of status polls, and injects
//! faults (lost response after acceptance, timeout, OUT_OF_ENERGY revert, expiry without
//! inclusion, rejection with a code, transport errors on status, a mismatching Transfer log).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use lucid_core::UnixMillis;

use crate::error::Error;
use crate::rail::{
    BroadcastOutcome, ChainAddress, ChainStatus, ExpectedTransfer, PayoutRail, Preflight, RailKind,
    RejectCode, SignedTransfer, TransferIntent, Txid,
};

/// How the fake chain treats one broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Included, answered `result: true`.
    None,
    /// Included, but the answer is lost (`Unknown`).
    LoseResponse,
    /// Not included, no answer (`Unknown`).
    Timeout,
    /// Included, answered, and solidifies with a failure receipt (OUT_OF_ENERGY).
    Revert,
    /// Answered `result: true` but dropped: never included, so it expires.
    NeverInclude,
    /// Refused with this code, not included.
    Reject(RejectCode),
    /// Included and SUCCESS, but the Transfer log does not match.
    Mismatch,
}

/// The random faults, one of which each unscripted broadcast may draw.
const RANDOM_FAULTS: [Fault; 6] = [
    Fault::LoseResponse,
    Fault::Timeout,
    Fault::Revert,
    Fault::NeverInclude,
    Fault::Reject(RejectCode::Bandwidth),
    Fault::Reject(RejectCode::Tapos),
];

/// A transaction the fake chain included.
#[derive(Clone, Debug)]
pub struct ChainTx {
    /// The payout it pays.
    pub payout_id: String,
    /// The destination.
    pub to_address: ChainAddress,
    /// Units transferred.
    pub net: u64,
    /// Whether its receipt is SUCCESS.
    pub success: bool,
    /// Whether its Transfer log matches the transfer.
    pub log_matches: bool,
    polls: u32,
    block: u64,
}

#[derive(Debug)]
struct State {
    now: i64,
    rng: u64,
    /// Percent of unscripted broadcasts that draw a random fault.
    fault_percent: u64,
    /// Percent of status calls that fail in transport.
    status_error_percent: u64,
    /// Percent of signings that fail.
    sign_failure_percent: u64,
    /// Signings that fail before random ones resume.
    failing_signings: u64,
    /// Status calls received.
    status_calls: u64,
    /// Signing failures injected.
    sign_failures: u64,
    scripted: VecDeque<Fault>,
    solidify_polls: u32,
    hot_wallet_low: bool,
    nonce: u64,
    signed: BTreeMap<Txid, (TransferIntent, SignedTransfer)>,
    included: BTreeMap<Txid, ChainTx>,
    broadcasts: Vec<(i64, Txid)>,
    /// Faults drawn, by kind.
    drawn: BTreeMap<String, u64>,
}

/// The fake chain (shared by every worker of a test, like the real chain).
#[derive(Debug)]
pub struct FakeChain {
    state: Mutex<State>,
}

/// Transaction lifetime of the fake signer (`tron.tx_expiration`, 60 s).
pub const TX_EXPIRATION_MS: i64 = 60_000;

impl FakeChain {
    /// A chain drawing faults for `fault_percent` % of unscripted broadcasts, solidifying a
    /// transaction after `solidify_polls` status polls.
    pub fn new(seed: u64, fault_percent: u64, solidify_polls: u32) -> Self {
        FakeChain {
            state: Mutex::new(State {
                now: 0,
                rng: seed ^ 0x9e37_79b9_7f4a_7c15,
                fault_percent,
                status_error_percent: 0,
                sign_failure_percent: 0,
                failing_signings: 0,
                status_calls: 0,
                sign_failures: 0,
                scripted: VecDeque::new(),
                solidify_polls,
                hot_wallet_low: false,
                nonce: 0,
                signed: BTreeMap::new(),
                included: BTreeMap::new(),
                broadcasts: Vec::new(),
                drawn: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves chain time forward (never back: several workers share the chain).
    pub fn advance_to(&self, now: UnixMillis) {
        let mut state = self.lock();
        state.now = state.now.max(now.0);
    }

    /// Percent of status polls that fail in transport.
    pub fn set_status_error_percent(&self, percent: u64) {
        self.lock().status_error_percent = percent;
    }

    /// Percent of signings that fail (the signer is broken or unreachable).
    pub fn set_sign_failure_percent(&self, percent: u64) {
        self.lock().sign_failure_percent = percent;
    }

    /// The next `count` signings fail.
    pub fn fail_next_signings(&self, count: u64) {
        self.lock().failing_signings = count;
    }

    /// Status calls received so far.
    pub fn status_calls(&self) -> u64 {
        self.lock().status_calls
    }

    /// Signing failures injected so far.
    pub fn sign_failures(&self) -> u64 {
        self.lock().sign_failures
    }

    /// Percent of unscripted broadcasts that draw a random fault.
    pub fn set_fault_percent(&self, percent: u64) {
        self.lock().fault_percent = percent;
    }

    /// The next broadcasts meet these faults, in order, before random ones resume.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().scripted.extend(faults);
    }

    /// Whether preflight reports the hot wallet too low.
    pub fn set_hot_wallet_low(&self, low: bool) {
        self.lock().hot_wallet_low = low;
    }

    /// Every broadcast received: (chain time, txid).
    pub fn broadcasts(&self) -> Vec<(i64, Txid)> {
        self.lock().broadcasts.clone()
    }

    /// Faults drawn so far, by kind (`Debug` form).
    pub fn faults_drawn(&self) -> BTreeMap<String, u64> {
        self.lock().drawn.clone()
    }

    /// The payout a txid signed by this chain's fake signer belongs to.
    pub fn payout_of(&self, txid: &Txid) -> Option<String> {
        self.lock().signed.get(txid).map(|(intent, _)| intent.payout_id.clone())
    }

    /// Included transactions that moved money (SUCCESS with a real Transfer), for a payout.
    pub fn successful_transfers(&self, payout_id: &str) -> Vec<(Txid, ChainTx)> {
        self.lock()
            .included
            .iter()
            .filter(|(_, tx)| tx.payout_id == payout_id && tx.success && tx.log_matches)
            .map(|(txid, tx)| (*txid, tx.clone()))
            .collect()
    }

    fn next_random(state: &mut State) -> u64 {
        // splitmix64: deterministic per seed, no dependency.
        state.rng = state.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn draw_fault(state: &mut State) -> Fault {
        if let Some(fault) = state.scripted.pop_front() {
            return fault;
        }
        if Self::next_random(state) % 100 < state.fault_percent {
            let index = Self::next_random(state) % RANDOM_FAULTS.len() as u64;
            RANDOM_FAULTS[usize::try_from(index).unwrap_or(0)].clone()
        } else {
            Fault::None
        }
    }
}

#[async_trait]
impl PayoutRail for FakeChain {
    fn kind(&self) -> RailKind {
        RailKind::Fake
    }

    async fn preflight(&self, _batch: &[TransferIntent]) -> Result<Preflight, Error> {
        let low = self.lock().hot_wallet_low;
        Ok(if low {
            Preflight::HotWalletLow {
                usdt_needed: lucid_core::MicroUsdt(1),
                usdt_available: lucid_core::MicroUsdt(0),
                trx_needed_sun: 1,
                trx_available_sun: 0,
                wallet: None,
            }
        } else {
            Preflight::Ok { wallet: None }
        })
    }

    async fn build_and_sign(&self, intent: &TransferIntent) -> Result<SignedTransfer, Error> {
        let mut state = self.lock();
        let fail = if state.failing_signings > 0 {
            state.failing_signings -= 1;
            true
        } else {
            Self::next_random(&mut state) % 100 < state.sign_failure_percent
        };
        if fail {
            state.sign_failures += 1;
            return Err(Error::Rail {
                rail: "fake",
                action: "signing a transfer",
                message: "the signer is unavailable".to_owned(),
            });
        }
        state.nonce += 1;
        let mut txid = [0u8; 32];
        txid[..8].copy_from_slice(&state.nonce.to_be_bytes());
        let raw =
            format!("{}|{}|{}", intent.payout_id, intent.attempt_no, state.nonce).into_bytes();
        let transfer = SignedTransfer {
            txid,
            raw,
            signature: vec![1; 65],
            expiration: UnixMillis(state.now + TX_EXPIRATION_MS),
            fee_limit_sun: 30_000_000,
        };
        state.signed.insert(txid, (intent.clone(), transfer.clone()));
        Ok(transfer)
    }

    async fn broadcast(&self, transfer: &SignedTransfer) -> BroadcastOutcome {
        let mut state = self.lock();
        let now = state.now;
        state.broadcasts.push((now, transfer.txid));
        let Some((intent, stored)) = state.signed.get(&transfer.txid).cloned() else {
            return BroadcastOutcome::Rejected(RejectCode::SigError);
        };
        if stored != *transfer {
            return BroadcastOutcome::Rejected(RejectCode::SigError);
        }
        if state.included.contains_key(&transfer.txid) {
            // TRON answers a known transaction with DUP_TRANSACTION_ERROR.
            return BroadcastOutcome::Duplicate;
        }
        if now > transfer.expiration.0 {
            return BroadcastOutcome::Rejected(RejectCode::Expired);
        }
        let fault = Self::draw_fault(&mut state);
        let kind = format!("{fault:?}");
        *state.drawn.entry(kind).or_default() += 1;
        let include = |state: &mut State, success: bool, log_matches: bool| {
            let block = u64::try_from(now).unwrap_or(0) / 3_000;
            state.included.insert(
                transfer.txid,
                ChainTx {
                    payout_id: intent.payout_id.clone(),
                    to_address: intent.to_address,
                    net: intent.net.0,
                    success,
                    log_matches,
                    polls: 0,
                    block,
                },
            );
        };
        match fault {
            Fault::None => {
                include(&mut state, true, true);
                BroadcastOutcome::Accepted
            }
            Fault::LoseResponse => {
                include(&mut state, true, true);
                BroadcastOutcome::Unknown
            }
            Fault::Timeout => BroadcastOutcome::Unknown,
            Fault::Revert => {
                include(&mut state, false, false);
                BroadcastOutcome::Accepted
            }
            Fault::NeverInclude => BroadcastOutcome::Accepted,
            Fault::Reject(code) => BroadcastOutcome::Rejected(code),
            Fault::Mismatch => {
                include(&mut state, true, false);
                BroadcastOutcome::Accepted
            }
        }
    }

    async fn status(&self, txid: &Txid, expected: &ExpectedTransfer) -> Result<ChainStatus, Error> {
        let mut state = self.lock();
        state.status_calls += 1;
        if Self::next_random(&mut state) % 100 < state.status_error_percent {
            return Err(Error::Rail {
                rail: "fake",
                action: "reading a receipt",
                message: "timeout".to_owned(),
            });
        }
        let solidify_polls = state.solidify_polls;
        let Some(tx) = state.included.get_mut(txid) else {
            return Ok(ChainStatus::NotFound);
        };
        tx.polls += 1;
        if tx.polls < solidify_polls {
            return Ok(ChainStatus::Pending);
        }
        let matches =
            tx.log_matches && tx.to_address == expected.to_address && tx.net == expected.net.0;
        Ok(ChainStatus::Solidified {
            success: tx.success,
            transfer_matches: tx.success && matches,
            block: tx.block,
            energy_used: if tx.success { 65_000 } else { 100_000 },
            fee_sun: 13_000_000,
        })
    }
}
