//! Wires the money services from the configuration: the ledger port, the epoch budget, the
//! amount limits, and on the payer the rail: `TronRail` over the reqwest transport when this
//! binary has the `blockchain` feature (which turns on `lucid-daemon/tron`) and `tron.*` is
//! configured, else the ledger-only rail, which signs nothing and leaves payouts
//! `awaiting_chain`. The hot-wallet key is read here, from its secret file, and never logged.

use std::sync::Arc;
use std::time::Duration;

use lucid_core::NodeKey;
use lucid_daemon::{MoneyWiring, PayoutLoops};
use lucid_payouts::processor::ProcessorConfig;
use lucid_payouts::rail::{LedgerOnlyRail, PayoutRail};
use lucid_payouts::sweep::SweepSettings;

use crate::money_config::MoneyConfig;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The money wiring of the node over `database`.
pub(crate) fn wiring(
    money: &MoneyConfig,
    database: &Arc<lucid_storage::Database>,
    key: &NodeKey,
    genesis: lucid_core::UnixMillis,
) -> anyhow::Result<MoneyWiring> {
    let payouts = match &money.payouts {
        None => None,
        Some(config) => {
            let (rail, dead_margin, poll) = rail(config, key)?;
            // Confirmations are polled every `tron.poll_interval`; the processor step that polls
            // also claims, so the loop runs at the shorter of the two periods.
            let process_interval =
                poll.map_or(config.process_interval, |poll| poll.min(config.process_interval));
            tracing::info!(
                rail = rail.kind().as_str(),
                ?process_interval,
                "this node is the payer"
            );
            Some(PayoutLoops {
                rail,
                sweep: SweepSettings {
                    genesis,
                    interval_ms: u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
                    limits: money.limits,
                    max_retries: money.max_retries,
                },
                processor: ProcessorConfig {
                    batch_size: config.batch_size,
                    lease_ms: millis(config.lease),
                    dead_margin_ms: millis(dead_margin),
                    caps: config.caps,
                    circuit_failures: config.circuit_failures,
                    circuit_cooldown_ms: millis(config.circuit_cooldown),
                    ..ProcessorConfig::default()
                },
                process_interval,
            })
        }
    };
    Ok(MoneyWiring {
        ledger: Arc::clone(database) as _,
        epoch_reward: money.epoch_reward,
        limits: money.limits,
        max_retries: money.max_retries,
        payer_node_id: money.payer_node_id,
        payouts,
    })
}

type Rail = (Arc<dyn PayoutRail>, Duration, Option<Duration>);

#[cfg(not(feature = "blockchain"))]
fn rail(config: &crate::money_config::PayoutConfig, _key: &NodeKey) -> anyhow::Result<Rail> {
    debug_assert!(config.tron.is_none());
    tracing::warn!(
        "payouts.enabled without the blockchain feature: payouts are created and reserved and wait, awaiting_chain"
    );
    Ok((Arc::new(LedgerOnlyRail), Duration::from_secs(120), None))
}

#[cfg(feature = "blockchain")]
fn rail(config: &crate::money_config::PayoutConfig, key: &NodeKey) -> anyhow::Result<Rail> {
    use anyhow::Context as _;
    use lucid_daemon::tron_transport::{ReqwestTronTransport, TronTransportConfig};
    use lucid_payouts::tron::{
        BuildMode, HotWalletKey, TronAddress, TronClient, TronRail, TronRailConfig,
    };
    use zeroize::Zeroizing;

    let Some(tron) = &config.tron else {
        tracing::warn!("payouts.enabled without tron.*: payouts wait, awaiting_chain");
        return Ok((Arc::new(LedgerOnlyRail), Duration::from_secs(120), None));
    };
    let secret = Zeroizing::new(
        crate::datadir::read_secret(&tron.hot_wallet_key_file)
            .context("reading tron.hot_wallet_key_file")?,
    );
    let seed = Zeroizing::new(
        lucid_core::ids::from_hex::<32>("node key", key.seed_hex().trim())
            .map_err(|_| anyhow::anyhow!("the node key is not 64 hex characters"))?,
    );
    let hot_wallet = HotWalletKey::from_hex(&secret, &seed)
        .map_err(|error| crate::config::UsageError(format!("tron.hot_wallet_key_file: {error}")))?;
    let api_key = match &tron.api_key_file {
        None => None,
        Some(path) => Some(
            crate::datadir::read_secret(path)
                .context("reading tron.api_key_file")?
                .trim()
                .to_owned(),
        ),
    };
    let contract = TronAddress::from_base58(&tron.usdt_contract)
        .map_err(|error| crate::config::UsageError(format!("tron.usdt_contract: {error}")))?;
    let transport = ReqwestTronTransport::new(&TronTransportConfig {
        api_key,
        request_timeout: tron.request_timeout,
        ..TronTransportConfig::new(&tron.api_url)
    })
    .map_err(|error| anyhow::anyhow!("setting up the TRON transport: {error}"))?;
    // Transport errors are retried by the processor's backoff; one immediate retry here.
    let client = TronClient::new(Arc::new(transport), 1);
    let rail_config = TronRailConfig {
        fee_limit_max_sun: tron.fee_limit_max_sun,
        tx_expiration_ms: millis(tron.tx_expiration),
        build: BuildMode::Local,
        ..TronRailConfig::new(contract)
    };
    let rail = TronRail::new(client, hot_wallet, rail_config)
        .map_err(|error| crate::config::UsageError(format!("tron: {error}")))?;
    tracing::info!(
        network = ?tron.network,
        api_url = %tron.api_url,
        hot_wallet = %rail.hot_wallet().to_base58(),
        "TRON rail ready"
    );
    Ok((Arc::new(rail), tron.dead_margin, Some(tron.poll_interval)))
}
