//! The session keys of the configuration (features `session` and `rdp`, `daemon.md` §7):
//! `session.max_concurrent` (10), `session.pending_timeout` (`600s`), `session.max_duration`
//! (`7200s`), `session.price_usdt` (`"1"`, the server's price of one session; a client never
//! sets it), `session.pay_to_address` (the TRON address session payments go to; none by
//! default) and, with `rdp`, `rdp.port_range` (`3389-4000`). Every error names its key (exit
//! code 64). Without the features these sections are unknown keys.

use lucid_core::MicroUsdt;
use lucid_payouts::session::{PortRange, SessionRules};
use serde::Deserialize;

use crate::config::UsageError;

/// The keys of this area, for `KEYS` (`a.b` ↔ `LUCID_A_B`).
pub(crate) const SESSION_KEYS: &[&str] = &[
    "session.max_concurrent",
    "session.pending_timeout",
    "session.max_duration",
    "session.price_usdt",
    "session.pay_to_address",
];

/// The keys of the `rdp` feature.
#[cfg(feature = "rdp")]
pub(crate) const RDP_KEYS: &[&str] = &["rdp.port_range"];

/// The price of one session when `session.price_usdt` is not set: 1 USDT.
const DEFAULT_PRICE: MicroUsdt = MicroUsdt(1_000_000);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSession {
    max_concurrent: Option<u32>,
    pending_timeout: Option<String>,
    max_duration: Option<String>,
    price_usdt: Option<String>,
    pay_to_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRdp {
    port_range: Option<String>,
}

/// The validated session configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionConfig {
    pub(crate) rules: SessionRules,
    /// Where session payments go (Base58Check text), if configured.
    pub(crate) pay_to_address: Option<String>,
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Applies one `LUCID_*` variable of this area; `false` if `key` is not one of its keys.
pub(crate) fn apply_env(
    session: &mut RawSession,
    rdp: Option<&mut RawRdp>,
    key: &str,
    value: &str,
) -> Result<bool, UsageError> {
    let text = || Some(value.to_owned());
    match key {
        "session.max_concurrent" => {
            session.max_concurrent = Some(value.parse().map_err(|_| {
                usage(format!(
                    "{} (session.max_concurrent): invalid value {value:?}",
                    crate::config::env_name(key)
                ))
            })?);
        }
        "session.pending_timeout" => session.pending_timeout = text(),
        "session.max_duration" => session.max_duration = text(),
        "session.price_usdt" => session.price_usdt = text(),
        "session.pay_to_address" => session.pay_to_address = text(),
        "rdp.port_range" => match rdp {
            Some(rdp) => rdp.port_range = text(),
            None => return Ok(false),
        },
        _ => return Ok(false),
    }
    Ok(true)
}

fn millis(key: &str, value: Option<&String>, default_ms: u64) -> Result<u64, UsageError> {
    match value {
        None => Ok(default_ms),
        Some(text) => {
            let duration = crate::money_config::parse_duration(key, text)?;
            u64::try_from(duration.as_millis()).map_err(|_| usage(format!("{key}: too long")))
        }
    }
}

/// Validates the sections; the error names the key.
pub(crate) fn validate(session: RawSession, rdp: RawRdp) -> Result<SessionConfig, UsageError> {
    let defaults = SessionRules::defaults(DEFAULT_PRICE);
    let ports = match rdp.port_range.as_deref() {
        None => PortRange::DEFAULT,
        Some(text) => PortRange::parse(text).ok_or_else(|| {
            usage(format!(
                "rdp.port_range: {text:?} is not FIRST-LAST with 1 <= FIRST <= LAST <= 65535"
            ))
        })?,
    };
    let price = match session.price_usdt.as_deref() {
        None => DEFAULT_PRICE,
        Some(text) => text.parse::<MicroUsdt>().map_err(|_| {
            usage(format!(
                "session.price_usdt: {text:?} is not an amount (a decimal string with at most 6 fractional digits)"
            ))
        })?,
    };
    let rules = SessionRules {
        max_concurrent: session.max_concurrent.unwrap_or(defaults.max_concurrent),
        pending_timeout_ms: millis(
            "session.pending_timeout",
            session.pending_timeout.as_ref(),
            defaults.pending_timeout_ms,
        )?,
        max_duration_ms: millis(
            "session.max_duration",
            session.max_duration.as_ref(),
            defaults.max_duration_ms,
        )?,
        ports,
        price,
    };
    rules.validate().map_err(|error| match error {
        lucid_payouts::Error::InvalidSessionRule { key, rule } => usage(format!("{key}: {rule}")),
        other => usage(format!("session: {other}")),
    })?;
    if let Some(address) = &session.pay_to_address {
        lucid_daemon::services::registration::parse_payout_address(address)
            .map_err(|e| usage(format!("session.pay_to_address: {e}")))?;
    }
    Ok(SessionConfig { rules, pay_to_address: session.pay_to_address })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> Result<SessionConfig, UsageError> {
        let mut session = RawSession::default();
        let mut rdp = RawRdp::default();
        for (key, value) in pairs {
            assert!(apply_env(&mut session, Some(&mut rdp), key, value)?, "{key} not handled");
        }
        validate(session, rdp)
    }

    #[test]
    fn defaults_are_those_of_the_spec() {
        let config = raw(&[]).unwrap();
        assert_eq!(config.rules, SessionRules::defaults(MicroUsdt(1_000_000)));
        assert_eq!(config.rules.ports.to_string(), "3389-4000");
        assert_eq!(config.pay_to_address, None);
    }

    #[test]
    fn values_parse_and_bad_values_name_their_key() {
        let config = raw(&[
            ("session.max_concurrent", "3"),
            ("session.pending_timeout", "5m"),
            ("session.max_duration", "1h"),
            ("session.price_usdt", "2.5"),
        ])
        .unwrap();
        assert_eq!(config.rules.max_concurrent, 3);
        assert_eq!(config.rules.pending_timeout_ms, 300_000);
        assert_eq!(config.rules.max_duration_ms, 3_600_000);
        assert_eq!(config.rules.price, MicroUsdt(2_500_000));
        for (key, value) in [
            ("session.max_concurrent", "0"),
            ("session.max_concurrent", "x"),
            ("session.pending_timeout", "600"),
            ("session.pending_timeout", "0s"),
            ("session.max_duration", "8d"),
            ("session.price_usdt", "0"),
            ("session.price_usdt", "1.0000001"),
            ("session.price_usdt", "-1"),
            ("session.pay_to_address", "Tnope"),
        ] {
            let error = raw(&[(key, value)]).unwrap_err();
            assert!(error.0.contains(key), "{key}={value}: {}", error.0);
        }
    }

    #[cfg(feature = "rdp")]
    #[test]
    fn port_range_is_validated() {
        let config = raw(&[("rdp.port_range", "5000-5009")]).unwrap();
        assert_eq!((config.rules.ports.first(), config.rules.ports.len()), (5000, 10));
        for bad in ["5009-5000", "0-10", "1-70000", "5000", "a-b"] {
            assert!(raw(&[("rdp.port_range", bad)]).unwrap_err().0.contains("rdp.port_range"));
        }
    }
}
