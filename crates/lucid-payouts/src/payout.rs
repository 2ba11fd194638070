//! Payout rules (pools-payouts.md §5): amounts, fee, limits, idempotency keys, payout ids,
//! daily caps, and the state machine whose every transition is a compare-and-set.

use std::fmt;

use lucid_core::codec::Writer;
use lucid_core::hash::{CTX_PAYOUT_ID, derive_key};
use lucid_core::ids::to_hex;
use lucid_core::{MicroUsdt, NodeId, UnixMillis};

use crate::error::Error;

/// The network's minimum gross payout: 10 USDT. Configuration may raise it, never lower it.
pub const MINIMUM_GROSS: MicroUsdt = MicroUsdt(10_000_000);
/// The largest gross payout: 10 000 USDT. Configuration may lower it, never below the minimum.
pub const MAXIMUM_GROSS: MicroUsdt = MicroUsdt(10_000_000_000);
/// The payout fee rate: 1 %.
pub const FEE_BPS: u32 = 100;
/// The smallest fee: 0.1 USDT.
pub const FEE_MIN: MicroUsdt = MicroUsdt(100_000);
/// The largest fee: 10 USDT.
pub const FEE_MAX: MicroUsdt = MicroUsdt(10_000_000);
/// Longest client idempotency key.
pub const MAX_CLIENT_KEY: usize = 64;

/// The validated amount limits of this network's payouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayoutLimits {
    minimum: MicroUsdt,
    maximum: MicroUsdt,
}

impl Default for PayoutLimits {
    fn default() -> Self {
        PayoutLimits { minimum: MINIMUM_GROSS, maximum: MAXIMUM_GROSS }
    }
}

impl PayoutLimits {
    /// Limits from configuration: `minimum ≥ 10 USDT`, `minimum ≤ maximum ≤ 10 000 USDT`.
    pub fn new(minimum: MicroUsdt, maximum: MicroUsdt) -> Result<Self, Error> {
        if minimum < MINIMUM_GROSS {
            return Err(Error::InvalidConfig {
                key: "payouts.minimum_usdt",
                value: minimum,
                rule: "must be at least 10 USDT",
            });
        }
        if maximum > MAXIMUM_GROSS {
            return Err(Error::InvalidConfig {
                key: "payouts.maximum_usdt",
                value: maximum,
                rule: "must be at most 10000 USDT",
            });
        }
        if maximum < minimum {
            return Err(Error::InvalidConfig {
                key: "payouts.maximum_usdt",
                value: maximum,
                rule: "must not be below payouts.minimum_usdt",
            });
        }
        Ok(PayoutLimits { minimum, maximum })
    }

    /// The minimum gross.
    pub fn minimum(&self) -> MicroUsdt {
        self.minimum
    }

    /// The maximum gross.
    pub fn maximum(&self) -> MicroUsdt {
        self.maximum
    }
}

/// `clamp(bps_round_half_up(gross, 100), 0.1 USDT, 10 USDT)`.
pub fn fee_for(gross: MicroUsdt) -> MicroUsdt {
    // 1 % of a u64 always fits; on the impossible overflow the fee is the cap.
    gross.bps_round_half_up(FEE_BPS).unwrap_or(FEE_MAX).clamp(FEE_MIN, FEE_MAX)
}

/// The three amounts of a payout; `fee + net == gross` always.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amounts {
    /// Taken from the node's balance.
    pub gross: MicroUsdt,
    /// Kept by the treasury (pays the chain cost).
    pub fee: MicroUsdt,
    /// Sent on chain.
    pub net: MicroUsdt,
}

/// Why a payout request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Gross below the minimum.
    #[error("below the minimum payout of {minimum}")]
    BelowMinimum {
        /// The minimum.
        minimum: MicroUsdt,
    },
    /// Gross above the maximum.
    #[error("above the maximum payout of {maximum}")]
    AboveMaximum {
        /// The maximum.
        maximum: MicroUsdt,
    },
    /// Gross above the available balance.
    #[error("insufficient balance: {available} available")]
    InsufficientBalance {
        /// What is available.
        available: MicroUsdt,
    },
    /// The node has no registered payout address.
    #[error("no payout address is registered")]
    NoPayoutAddress,
}

impl Amounts {
    /// The amounts for `gross` under `limits`: refused below the minimum or above the maximum.
    /// Net is always positive: the minimum (≥ 10 USDT) exceeds the largest fee (10 USDT)
    /// whenever the fee is the cap, and 1 % otherwise.
    pub fn for_gross(gross: MicroUsdt, limits: &PayoutLimits) -> Result<Self, Refusal> {
        if gross < limits.minimum {
            return Err(Refusal::BelowMinimum { minimum: limits.minimum });
        }
        if gross > limits.maximum {
            return Err(Refusal::AboveMaximum { maximum: limits.maximum });
        }
        let fee = fee_for(gross);
        let net = MicroUsdt(gross.0 - fee.0);
        debug_assert!(net.0 > 0 && fee.0 + net.0 == gross.0);
        Ok(Amounts { gross, fee, net })
    }

    /// A withdrawal request: `requested` (default: everything available, capped at the maximum)
    /// checked against the limits and the available balance.
    pub fn for_request(
        requested: Option<MicroUsdt>,
        available: MicroUsdt,
        limits: &PayoutLimits,
    ) -> Result<Self, Refusal> {
        let gross = requested.unwrap_or(available.min(limits.maximum));
        let amounts = Amounts::for_gross(gross, limits)?;
        if gross > available {
            return Err(Refusal::InsufficientBalance { available });
        }
        Ok(amounts)
    }
}

/// Where a payout came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The periodic sweep.
    Auto,
    /// A signed or admin withdrawal request.
    Withdrawal,
}

impl Origin {
    /// Every origin.
    pub const ALL: [Origin; 2] = [Origin::Auto, Origin::Withdrawal];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Auto => "auto",
            Origin::Withdrawal => "withdrawal",
        }
    }
}

/// Why an idempotency key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("idempotency keys are 1..=64 characters of [A-Za-z0-9_-]")]
pub struct BadClientKey;

/// `wd:{client key}` for a withdrawal; the client key is 1..=64 of `[A-Za-z0-9_-]`.
pub fn withdrawal_key(client_key: &str) -> Result<String, BadClientKey> {
    if is_client_key(client_key) { Ok(format!("wd:{client_key}")) } else { Err(BadClientKey) }
}

/// Whether `text` is a client's idempotency key: 1..=[`MAX_CLIENT_KEY`] characters of
/// `[A-Za-z0-9_-]` (the admin's header and the signed `withdrawal` alike).
pub fn is_client_key(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_CLIENT_KEY
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `auto:{period}` with `period = (now − genesis) div interval`: one sweep payout per node and
/// period whatever the number of sweeps that run in it.
pub fn auto_key(now: UnixMillis, genesis: UnixMillis, interval_ms: u64) -> String {
    let since = u64::try_from(now.0.saturating_sub(genesis.0)).unwrap_or(0);
    format!("auto:{}", since / interval_ms.max(1))
}

/// `payout_` + hex of the first 12 bytes of `derive_key(CTX_PAYOUT_ID, node ‖ lp(key))`, so a
/// replayed request maps to the same id.
pub fn payout_id(node: &NodeId, idempotency_key: &str) -> String {
    let mut input = Vec::with_capacity(32 + 4 + idempotency_key.len());
    Writer::new(&mut input).node_id(node).lp(idempotency_key.as_bytes());
    let digest = derive_key(CTX_PAYOUT_ID, &[&input]);
    format!("payout_{}", to_hex(&digest.as_bytes()[..12]))
}

/// What a second request with a used idempotency key means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Same request: answer with the original payout.
    Same,
    /// Different amount: 409 `IDEMPOTENCY_CONFLICT`; never a second payout.
    Conflict,
}

/// Compares a replayed request's gross with the stored payout's.
pub fn replay(stored_gross: MicroUsdt, requested_gross: MicroUsdt) -> Replay {
    if stored_gross == requested_gross { Replay::Same } else { Replay::Conflict }
}

/// Daily caps (0 disables a cap), over the UTC day of the first signed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCaps {
    /// Most payouts signed per day, network-wide.
    pub max_count: u32,
    /// Most payouts signed per day for one node.
    pub max_per_node: u32,
}

impl Default for DailyCaps {
    fn default() -> Self {
        DailyCaps { max_count: 100, max_per_node: 10 }
    }
}

impl DailyCaps {
    /// Whether one more payout may be signed today, given what was signed today already.
    pub fn allows(&self, signed_today: u32, signed_today_for_node: u32) -> bool {
        (self.max_count == 0 || signed_today < self.max_count)
            && (self.max_per_node == 0 || signed_today_for_node < self.max_per_node)
    }
}

/// The UTC day number of `time` (for daily caps).
pub fn utc_day(time: UnixMillis) -> i64 {
    time.0.div_euclid(86_400_000)
}

/// The state of a payout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayoutStatus {
    /// Created, gross reserved, waiting for a worker.
    Pending,
    /// Claimed under a lease; nothing signed.
    Processing,
    /// An attempt (txid, raw bytes, signature) is committed; not yet broadcast successfully.
    Signed,
    /// A broadcast of the attempt was accepted.
    Sent,
    /// Solidified receipt SUCCESS with the matching Transfer log; settled.
    Confirmed,
    /// Terminal failure; reservation released.
    Failed,
    /// Cancelled from pending; reservation released.
    Cancelled,
}

impl PayoutStatus {
    /// Every status.
    pub const ALL: [PayoutStatus; 7] = [
        PayoutStatus::Pending,
        PayoutStatus::Processing,
        PayoutStatus::Signed,
        PayoutStatus::Sent,
        PayoutStatus::Confirmed,
        PayoutStatus::Failed,
        PayoutStatus::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Pending => "pending",
            PayoutStatus::Processing => "processing",
            PayoutStatus::Signed => "signed",
            PayoutStatus::Sent => "sent",
            PayoutStatus::Confirmed => "confirmed",
            PayoutStatus::Failed => "failed",
            PayoutStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no transition leaves this state.
    pub fn is_terminal(self) -> bool {
        matches!(self, PayoutStatus::Confirmed | PayoutStatus::Failed | PayoutStatus::Cancelled)
    }

    /// Whether the gross is still reserved in `in_flight`.
    pub fn holds_reservation(self) -> bool {
        !self.is_terminal()
    }

    /// The transitions of §5.4; everything else is illegal.
    pub fn can_become(self, to: PayoutStatus) -> bool {
        use PayoutStatus::*;
        matches!(
            (self, to),
            (Pending, Processing)
                | (Pending, Cancelled)
                | (Processing, Signed)
                | (Processing, Pending)
                | (Processing, Failed)
                | (Signed, Sent)
                | (Signed, Pending)
                | (Signed, Failed)
                | (Sent, Confirmed)
                | (Sent, Pending)
                | (Sent, Failed)
        )
    }

    /// Checks a transition.
    pub fn transition(self, to: PayoutStatus) -> Result<PayoutStatus, Error> {
        if self.can_become(to) { Ok(to) } else { Err(Error::IllegalTransition { from: self, to }) }
    }
}

impl fmt::Display for PayoutStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
