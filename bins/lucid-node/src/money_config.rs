//! The money keys of the configuration (`pools-payouts.md` §9): `economy.*`, `payouts.*` and
//! `tron.*`, their environment variables, and their validation into [`MoneyConfig`]. Every
//! error names its key (exit code 64). Secrets are only file paths here; the hot-wallet key is
//! read when the node starts (`payer.rs`), never by `config check`.

use std::path::PathBuf;
use std::time::Duration;

use lucid_core::MicroUsdt;
use lucid_payouts::payout::{DailyCaps, MAXIMUM_GROSS, MINIMUM_GROSS, PayoutLimits};
use serde::Deserialize;

use crate::config::UsageError;

/// The keys of this area, for `KEYS` (`a.b` ↔ `LUCID_A_B`).
pub(crate) const MONEY_KEYS: &[&str] = &[
    "economy.epoch_reward_usdt",
    "payouts.enabled",
    "payouts.payer_node_id",
    "payouts.interval",
    "payouts.process_interval",
    "payouts.minimum_usdt",
    "payouts.maximum_usdt",
    "payouts.batch_size",
    "payouts.max_retries",
    "payouts.lease",
    "payouts.daily_max_count",
    "payouts.daily_max_per_node",
    "payouts.circuit_failures",
    "payouts.circuit_cooldown",
    "tron.network",
    "tron.api_url",
    "tron.usdt_contract",
    "tron.api_key_file",
    "tron.hot_wallet_key_file",
    "tron.fee_limit_max_sun",
    "tron.tx_expiration",
    "tron.poll_interval",
    "tron.dead_margin",
    "tron.request_timeout",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEconomy {
    epoch_reward_usdt: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPayouts {
    enabled: Option<bool>,
    payer_node_id: Option<String>,
    interval: Option<String>,
    process_interval: Option<String>,
    minimum_usdt: Option<String>,
    maximum_usdt: Option<String>,
    batch_size: Option<u32>,
    max_retries: Option<u32>,
    lease: Option<String>,
    daily_max_count: Option<u32>,
    daily_max_per_node: Option<u32>,
    circuit_failures: Option<u32>,
    circuit_cooldown: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTron {
    network: Option<String>,
    api_url: Option<String>,
    usdt_contract: Option<String>,
    api_key_file: Option<PathBuf>,
    hot_wallet_key_file: Option<PathBuf>,
    fee_limit_max_sun: Option<u64>,
    tx_expiration: Option<String>,
    poll_interval: Option<String>,
    dead_margin: Option<String>,
    request_timeout: Option<String>,
}

/// The three sections as read from the file and the environment.
#[derive(Debug, Default)]
pub(crate) struct RawMoney {
    pub(crate) economy: RawEconomy,
    pub(crate) payouts: RawPayouts,
    pub(crate) tron: RawTron,
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

fn parse_env<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, UsageError> {
    value.parse().map_err(|_| {
        usage(format!("{} ({key}): invalid value {value:?}", crate::config::env_name(key)))
    })
}

/// Applies one `LUCID_*` variable of this area; `false` if `key` is not one of its keys.
pub(crate) fn apply_env(
    economy: &mut RawEconomy,
    payouts: &mut RawPayouts,
    tron: &mut RawTron,
    key: &str,
    value: &str,
) -> Result<bool, UsageError> {
    let text = || Some(value.to_owned());
    match key {
        "economy.epoch_reward_usdt" => economy.epoch_reward_usdt = text(),
        "payouts.enabled" => payouts.enabled = Some(parse_env(key, value)?),
        "payouts.payer_node_id" => payouts.payer_node_id = text(),
        "payouts.interval" => payouts.interval = text(),
        "payouts.process_interval" => payouts.process_interval = text(),
        "payouts.minimum_usdt" => payouts.minimum_usdt = text(),
        "payouts.maximum_usdt" => payouts.maximum_usdt = text(),
        "payouts.batch_size" => payouts.batch_size = Some(parse_env(key, value)?),
        "payouts.max_retries" => payouts.max_retries = Some(parse_env(key, value)?),
        "payouts.lease" => payouts.lease = text(),
        "payouts.daily_max_count" => payouts.daily_max_count = Some(parse_env(key, value)?),
        "payouts.daily_max_per_node" => payouts.daily_max_per_node = Some(parse_env(key, value)?),
        "payouts.circuit_failures" => payouts.circuit_failures = Some(parse_env(key, value)?),
        "payouts.circuit_cooldown" => payouts.circuit_cooldown = text(),
        "tron.network" => tron.network = text(),
        "tron.api_url" => tron.api_url = text(),
        "tron.usdt_contract" => tron.usdt_contract = text(),
        "tron.api_key_file" => tron.api_key_file = Some(PathBuf::from(value)),
        "tron.hot_wallet_key_file" => tron.hot_wallet_key_file = Some(PathBuf::from(value)),
        "tron.fee_limit_max_sun" => tron.fee_limit_max_sun = Some(parse_env(key, value)?),
        "tron.tx_expiration" => tron.tx_expiration = text(),
        "tron.poll_interval" => tron.poll_interval = text(),
        "tron.dead_margin" => tron.dead_margin = text(),
        "tron.request_timeout" => tron.request_timeout = text(),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A duration written as an integer and a unit: `250ms`, `30s`, `5m`, `1h`.
pub(crate) fn parse_duration(key: &str, text: &str) -> Result<Duration, UsageError> {
    let bad = || usage(format!("{key}: {text:?} is not a duration like 250ms, 30s, 5m or 1h"));
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.len() > 12 {
        return Err(bad());
    }
    let number: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(millis))
}

fn duration_or(
    key: &str,
    value: Option<&String>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, UsageError> {
    let duration = value.map(|text| parse_duration(key, text)).transpose()?.unwrap_or(default);
    if duration < min || duration > max {
        return Err(usage(format!("{key}: must lie between {min:?} and {max:?}")));
    }
    Ok(duration)
}

fn amount(key: &str, value: Option<&String>, default: MicroUsdt) -> Result<MicroUsdt, UsageError> {
    match value {
        None => Ok(default),
        Some(text) => text.parse::<MicroUsdt>().map_err(|_| {
            usage(format!(
                "{key}: {text:?} is not an amount (a decimal string with at most 6 fractional digits)"
            ))
        }),
    }
}

/// Which TRON network pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "blockchain"),
    allow(dead_code, reason = "read by the TRON wiring of the blockchain feature")
)]
pub(crate) enum TronNetwork {
    Mainnet,
    Shasta,
}

impl TronNetwork {
    fn default_api_url(self) -> &'static str {
        match self {
            TronNetwork::Mainnet => "https://api.trongrid.io",
            TronNetwork::Shasta => "https://api.shasta.trongrid.io",
        }
    }

    fn default_usdt_contract(self) -> &'static str {
        match self {
            TronNetwork::Mainnet => "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
            TronNetwork::Shasta => "TG3XXyExBkPp9nzdajDZsozEu4BkaSJozs",
        }
    }
}

/// `tron.*`, validated (the key files are read at start).
#[derive(Clone, Debug)]
#[cfg_attr(
    not(feature = "blockchain"),
    allow(dead_code, reason = "read by the TRON wiring of the blockchain feature")
)]
pub(crate) struct TronConfig {
    pub(crate) network: TronNetwork,
    pub(crate) api_url: String,
    /// The contract in Base58Check (checked by the rail when the node starts).
    pub(crate) usdt_contract: String,
    pub(crate) api_key_file: Option<PathBuf>,
    pub(crate) hot_wallet_key_file: PathBuf,
    pub(crate) fee_limit_max_sun: u64,
    pub(crate) tx_expiration: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) dead_margin: Duration,
    pub(crate) request_timeout: Duration,
}

/// `payouts.*` of a payer, validated.
#[derive(Clone, Debug)]
pub(crate) struct PayoutConfig {
    pub(crate) interval: Duration,
    pub(crate) process_interval: Duration,
    pub(crate) batch_size: u32,
    pub(crate) lease: Duration,
    pub(crate) caps: DailyCaps,
    pub(crate) circuit_failures: u32,
    pub(crate) circuit_cooldown: Duration,
    /// `tron.*`, when this binary pays on TRON; `None` = the ledger-only rail.
    pub(crate) tron: Option<TronConfig>,
}

/// The money configuration of the node.
#[derive(Clone, Debug)]
pub(crate) struct MoneyConfig {
    pub(crate) epoch_reward: MicroUsdt,
    pub(crate) limits: PayoutLimits,
    pub(crate) max_retries: u32,
    pub(crate) payer_node_id: Option<lucid_core::NodeId>,
    /// `Some` iff `payouts.enabled`.
    pub(crate) payouts: Option<PayoutConfig>,
}

const DAY: Duration = Duration::from_secs(86_400);

/// Whether this binary pays on TRON (`blockchain` feature).
pub(crate) const BLOCKCHAIN: bool = cfg!(feature = "blockchain");

fn tron_config(raw: RawTron, enabled: bool) -> Result<Option<TronConfig>, UsageError> {
    let any_set = raw.network.is_some()
        || raw.api_url.is_some()
        || raw.usdt_contract.is_some()
        || raw.api_key_file.is_some()
        || raw.hot_wallet_key_file.is_some();
    if !BLOCKCHAIN {
        if any_set {
            return Err(usage(
                "tron.network: this binary was built without the `blockchain` feature, so tron.* cannot be used (payouts stay awaiting_chain)",
            ));
        }
        return Ok(None);
    }
    if !enabled {
        return Ok(None);
    }
    let network = match raw.network.as_deref() {
        Some("mainnet") => TronNetwork::Mainnet,
        Some("shasta") => TronNetwork::Shasta,
        Some(other) => {
            return Err(usage(format!(
                "tron.network: expected \"mainnet\" or \"shasta\", found {other:?}"
            )));
        }
        None => {
            return Err(usage(
                "tron.network: required when payouts.enabled = true (\"mainnet\" or \"shasta\"; there is no production default)",
            ));
        }
    };
    let api_url = raw.api_url.unwrap_or_else(|| network.default_api_url().to_owned());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) || api_url.len() > 512 {
        return Err(usage("tron.api_url: expected an http:// or https:// URL"));
    }
    let usdt_contract =
        raw.usdt_contract.unwrap_or_else(|| network.default_usdt_contract().to_owned());
    let hot_wallet_key_file = raw
        .hot_wallet_key_file
        .ok_or_else(|| usage("tron.hot_wallet_key_file: required when payouts.enabled = true"))?;
    let fee_limit_max_sun = raw.fee_limit_max_sun.unwrap_or(100_000_000);
    if fee_limit_max_sun == 0 || fee_limit_max_sun > 15_000_000_000 {
        return Err(usage("tron.fee_limit_max_sun: must lie in 1..=15000000000 (15 000 TRX)"));
    }
    let ms = Duration::from_millis;
    let tx_expiration = duration_or(
        "tron.tx_expiration",
        raw.tx_expiration.as_ref(),
        Duration::from_secs(60),
        Duration::from_secs(1),
        DAY - ms(1),
    )?;
    let poll_interval = duration_or(
        "tron.poll_interval",
        raw.poll_interval.as_ref(),
        Duration::from_secs(10),
        ms(100),
        DAY,
    )?;
    let dead_margin = duration_or(
        "tron.dead_margin",
        raw.dead_margin.as_ref(),
        Duration::from_secs(120),
        Duration::from_secs(1),
        DAY,
    )?;
    let request_timeout = duration_or(
        "tron.request_timeout",
        raw.request_timeout.as_ref(),
        Duration::from_secs(30),
        ms(100),
        Duration::from_secs(600),
    )?;
    Ok(Some(TronConfig {
        network,
        api_url,
        usdt_contract,
        api_key_file: raw.api_key_file,
        hot_wallet_key_file,
        fee_limit_max_sun,
        tx_expiration,
        poll_interval,
        dead_margin,
        request_timeout,
    }))
}

/// Validates the money keys.
pub(crate) fn validate(raw: RawMoney) -> Result<MoneyConfig, UsageError> {
    let epoch_reward =
        amount("economy.epoch_reward_usdt", raw.economy.epoch_reward_usdt.as_ref(), MicroUsdt(0))?;
    let p = raw.payouts;
    let minimum = amount("payouts.minimum_usdt", p.minimum_usdt.as_ref(), MINIMUM_GROSS)?;
    if minimum < MINIMUM_GROSS {
        return Err(usage("payouts.minimum_usdt: may raise the 10 USDT minimum, never lower it"));
    }
    let maximum = amount("payouts.maximum_usdt", p.maximum_usdt.as_ref(), MAXIMUM_GROSS)?;
    if maximum > MAXIMUM_GROSS || maximum < minimum {
        return Err(usage(
            "payouts.maximum_usdt: must lie between payouts.minimum_usdt and 10000 USDT",
        ));
    }
    let limits = PayoutLimits::new(minimum, maximum)
        .map_err(|e| usage(format!("payouts.minimum_usdt / payouts.maximum_usdt: {e}")))?;
    let max_retries = p.max_retries.unwrap_or(3);
    if max_retries > lucid_payouts::store::MAX_RETRIES {
        return Err(usage("payouts.max_retries: must lie in 0..=5"));
    }
    let payer_node_id = p
        .payer_node_id
        .as_deref()
        .map(|text| {
            text.parse::<lucid_core::NodeId>()
                .map_err(|_| usage("payouts.payer_node_id: not a node id (node_ + 64 hex)"))
        })
        .transpose()?;
    let batch_size = p.batch_size.unwrap_or(10);
    if !(1..=100).contains(&batch_size) {
        return Err(usage("payouts.batch_size: must lie in 1..=100"));
    }
    let ms = Duration::from_millis;
    let interval = duration_or(
        "payouts.interval",
        p.interval.as_ref(),
        Duration::from_secs(3_600),
        Duration::from_secs(1),
        DAY * 7,
    )?;
    let process_interval = duration_or(
        "payouts.process_interval",
        p.process_interval.as_ref(),
        Duration::from_secs(30),
        ms(100),
        DAY,
    )?;
    let lease = duration_or(
        "payouts.lease",
        p.lease.as_ref(),
        Duration::from_secs(300),
        Duration::from_secs(60),
        DAY,
    )?;
    let circuit_failures = p.circuit_failures.unwrap_or(10);
    if circuit_failures == 0 || circuit_failures > 1_000 {
        return Err(usage("payouts.circuit_failures: must lie in 1..=1000"));
    }
    let circuit_cooldown = duration_or(
        "payouts.circuit_cooldown",
        p.circuit_cooldown.as_ref(),
        Duration::from_secs(120),
        Duration::from_secs(1),
        DAY,
    )?;
    let caps = DailyCaps {
        max_count: p.daily_max_count.unwrap_or(100),
        max_per_node: p.daily_max_per_node.unwrap_or(10),
    };
    let enabled = p.enabled.unwrap_or(false);
    if enabled && payer_node_id.is_some() {
        return Err(usage(
            "payouts.payer_node_id: leave it unset on the payer (payouts.enabled = true)",
        ));
    }
    let tron = tron_config(raw.tron, enabled)?;
    let payouts = enabled.then_some(PayoutConfig {
        interval,
        process_interval,
        batch_size,
        lease,
        caps,
        circuit_failures,
        circuit_cooldown,
        tron,
    });
    Ok(MoneyConfig { epoch_reward, limits, max_retries, payer_node_id, payouts })
}

#[cfg(test)]
mod tests;
