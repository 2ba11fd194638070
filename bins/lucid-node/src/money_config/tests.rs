//! Tests of the money keys: defaults, every rule of `pools-payouts.md` §9 with the key named in
//! the error, durations, and the `blockchain` feature's part.

use super::*;

fn raw(payouts: RawPayouts) -> RawMoney {
    RawMoney { payouts, ..RawMoney::default() }
}

fn error_of(raw: RawMoney) -> String {
    validate(raw).unwrap_err().0
}

fn text(value: &str) -> Option<String> {
    Some(value.to_owned())
}

#[test]
fn defaults_are_those_of_the_spec() {
    let config = validate(RawMoney::default()).unwrap();
    assert_eq!(config.epoch_reward, MicroUsdt(0));
    assert_eq!(config.limits.minimum(), MicroUsdt(10_000_000));
    assert_eq!(config.limits.maximum(), MicroUsdt(10_000_000_000));
    assert_eq!(config.max_retries, 3);
    assert!(config.payouts.is_none(), "payouts are off by default");
    assert!(config.payer_node_id.is_none());
    let mut enabled = RawMoney::default();
    enabled.payouts.enabled = Some(true);
    if BLOCKCHAIN {
        // A payer of a blockchain build must name its network and hot wallet.
        assert!(error_of(enabled).contains("tron.network"));
    } else {
        let payouts = validate(enabled).unwrap().payouts.unwrap();
        assert_eq!(payouts.interval, Duration::from_secs(3_600));
        assert_eq!(payouts.process_interval, Duration::from_secs(30));
        assert_eq!(payouts.batch_size, 10);
        assert_eq!(payouts.lease, Duration::from_secs(300));
        assert_eq!(payouts.caps, DailyCaps { max_count: 100, max_per_node: 10 });
        assert_eq!(payouts.circuit_failures, 10);
        assert_eq!(payouts.circuit_cooldown, Duration::from_secs(120));
        assert!(payouts.tron.is_none(), "the ledger-only rail without the feature");
    }
}

#[test]
fn every_rule_names_its_key() {
    let cases: Vec<(RawPayouts, &str)> = vec![
        (
            RawPayouts { minimum_usdt: text("9.999999"), ..RawPayouts::default() },
            "payouts.minimum_usdt",
        ),
        (
            RawPayouts { minimum_usdt: text("10.0000001"), ..RawPayouts::default() },
            "payouts.minimum_usdt",
        ),
        (RawPayouts { minimum_usdt: text("1e2"), ..RawPayouts::default() }, "payouts.minimum_usdt"),
        (
            RawPayouts { maximum_usdt: text("10000.000001"), ..RawPayouts::default() },
            "payouts.maximum_usdt",
        ),
        (
            RawPayouts {
                minimum_usdt: text("50"),
                maximum_usdt: text("49"),
                ..RawPayouts::default()
            },
            "payouts.maximum_usdt",
        ),
        (RawPayouts { batch_size: Some(0), ..RawPayouts::default() }, "payouts.batch_size"),
        (RawPayouts { batch_size: Some(101), ..RawPayouts::default() }, "payouts.batch_size"),
        (RawPayouts { max_retries: Some(6), ..RawPayouts::default() }, "payouts.max_retries"),
        (RawPayouts { lease: text("59s"), ..RawPayouts::default() }, "payouts.lease"),
        (RawPayouts { lease: text("5 m"), ..RawPayouts::default() }, "payouts.lease"),
        (RawPayouts { interval: text("0s"), ..RawPayouts::default() }, "payouts.interval"),
        (RawPayouts { interval: text("1d"), ..RawPayouts::default() }, "payouts.interval"),
        (
            RawPayouts { process_interval: text("-1s"), ..RawPayouts::default() },
            "payouts.process_interval",
        ),
        (
            RawPayouts { process_interval: text("99999999999999s"), ..RawPayouts::default() },
            "payouts.process_interval",
        ),
        (
            RawPayouts { circuit_failures: Some(0), ..RawPayouts::default() },
            "payouts.circuit_failures",
        ),
        (
            RawPayouts { circuit_cooldown: text("s"), ..RawPayouts::default() },
            "payouts.circuit_cooldown",
        ),
        (
            RawPayouts { payer_node_id: text("node_zz"), ..RawPayouts::default() },
            "payouts.payer_node_id",
        ),
    ];
    for (payouts, key) in cases {
        let message = error_of(raw(payouts));
        assert!(message.starts_with(key), "{key}: {message}");
    }
    let bad_budget =
        RawMoney { economy: RawEconomy { epoch_reward_usdt: text("-1") }, ..RawMoney::default() };
    assert!(error_of(bad_budget).starts_with("economy.epoch_reward_usdt"));
    // The payer does not name a payer.
    let payer = lucid_consensus::testing::node(1).to_string();
    let both = RawPayouts {
        enabled: Some(true),
        payer_node_id: Some(payer.clone()),
        ..RawPayouts::default()
    };
    assert!(error_of(raw(both)).starts_with("payouts.payer_node_id"));
    let other = validate(raw(RawPayouts { payer_node_id: Some(payer), ..RawPayouts::default() }));
    assert_eq!(other.unwrap().payer_node_id, Some(lucid_consensus::testing::node(1)));
}

#[test]
fn amounts_and_durations_parse_exactly() {
    let config = validate(RawMoney {
        economy: RawEconomy { epoch_reward_usdt: text("1234.5") },
        payouts: RawPayouts {
            minimum_usdt: text("25"),
            maximum_usdt: text("25"),
            daily_max_count: Some(0),
            ..RawPayouts::default()
        },
        tron: RawTron::default(),
    })
    .unwrap();
    assert_eq!(config.epoch_reward, MicroUsdt(1_234_500_000));
    assert_eq!(
        (config.limits.minimum(), config.limits.maximum()),
        (MicroUsdt(25_000_000), MicroUsdt(25_000_000))
    );
    for (text, ms) in
        [("250ms", 250), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("0ms", 0)]
    {
        assert_eq!(parse_duration("k", text).unwrap(), Duration::from_millis(ms), "{text}");
    }
    for text in ["", "s", "10", "1.5s", "10 s", "+1s", "1S", "1sec", "99999999999999h", "１s"] {
        assert!(parse_duration("k", text).is_err(), "{text:?}");
    }
}

#[test]
fn tron_keys_follow_the_blockchain_feature() {
    let tron = RawTron { network: text("shasta"), ..RawTron::default() };
    let with_tron = |enabled| RawMoney {
        payouts: RawPayouts { enabled: Some(enabled), ..RawPayouts::default() },
        tron: RawTron { network: tron.network.clone(), ..RawTron::default() },
        economy: RawEconomy::default(),
    };
    if !BLOCKCHAIN {
        assert!(error_of(with_tron(true)).contains("blockchain"));
        return;
    }
    assert!(error_of(with_tron(true)).starts_with("tron.hot_wallet_key_file"));
    let full = |tron: RawTron| RawMoney {
        payouts: RawPayouts { enabled: Some(true), ..RawPayouts::default() },
        tron: RawTron { hot_wallet_key_file: Some(PathBuf::from("/k")), ..tron },
        economy: RawEconomy::default(),
    };
    let config = validate(full(RawTron { network: text("shasta"), ..RawTron::default() })).unwrap();
    let tron = config.payouts.unwrap().tron.unwrap();
    assert_eq!(tron.network, TronNetwork::Shasta);
    assert_eq!(tron.api_url, "https://api.shasta.trongrid.io");
    assert_eq!(tron.usdt_contract, "TG3XXyExBkPp9nzdajDZsozEu4BkaSJozs");
    assert_eq!(tron.fee_limit_max_sun, 100_000_000);
    assert_eq!(tron.tx_expiration, Duration::from_secs(60));
    for (bad, key) in [
        (RawTron { network: text("nile"), ..RawTron::default() }, "tron.network"),
        (
            RawTron { network: text("mainnet"), api_url: text("ftp://x"), ..RawTron::default() },
            "tron.api_url",
        ),
        (
            RawTron {
                network: text("mainnet"),
                fee_limit_max_sun: Some(15_000_000_001),
                ..RawTron::default()
            },
            "tron.fee_limit_max_sun",
        ),
        (
            RawTron { network: text("mainnet"), tx_expiration: text("24h"), ..RawTron::default() },
            "tron.tx_expiration",
        ),
        (
            RawTron { network: text("mainnet"), dead_margin: text("0s"), ..RawTron::default() },
            "tron.dead_margin",
        ),
        (
            RawTron { network: text("mainnet"), request_timeout: text("1h"), ..RawTron::default() },
            "tron.request_timeout",
        ),
    ] {
        let message = error_of(full(bad));
        assert!(message.starts_with(key), "{key}: {message}");
    }
    // tron.* set while payouts are off: accepted and unused.
    assert!(validate(with_tron(false)).unwrap().payouts.is_none());
}
