//! Configuration: built-in defaults < TOML file < `LUCID_*` environment < flags, resolved once into
//! the daemon's validated `Config`. Unknown keys (in the file or as `LUCID_*` variables) and
//! invalid values are errors that name the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lucid_consensus::ConsensusParams;
use lucid_consensus::registration::Endpoint;
use lucid_core::{TimeParams, UnixMillis};
use lucid_daemon::peers::table::PeerLimits;
use lucid_daemon::peers::{PeerAddress, PeersConfig, validate_host_port};
use lucid_daemon::services::registration::{RegistrationConfig, parse_payout_address};
use serde::Deserialize;

/// Every key the node understands, with its environment variable (`a.b` ↔ `LUCID_A_B`).
pub(crate) const KEYS: &[&str] = &[
    "network.name",
    "network.kind",
    "network.genesis_ms",
    "network.slot_ms",
    "network.slots_per_epoch",
    "http.addr",
    "grpc.addr",
    "database.url",
    "database.connect_timeout_s",
    "log.level",
    "log.format",
    "shutdown.grace_s",
    "consensus.verify_threads",
    "node.payout_address",
    "tor.enabled",
    "peers.direct_addr",
    "peers.bootstrap",
    "peers.max_known",
    "peers.max_connected",
    "peers.max_messages_per_minute",
];

/// The environment variable of a key.
pub(crate) fn env_name(key: &str) -> String {
    format!("LUCID_{}", key.replace('.', "_").to_uppercase())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    grpc: RawGrpc,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    shutdown: RawShutdown,
    #[serde(default)]
    consensus: RawConsensus,
    #[serde(default)]
    economy: crate::money_config::RawEconomy,
    #[serde(default)]
    payouts: crate::money_config::RawPayouts,
    #[serde(default)]
    tron: crate::money_config::RawTron,
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    tor: RawTor,
    #[serde(default)]
    peers: RawPeers,
    #[cfg(feature = "session")]
    #[serde(default)]
    session: crate::session_config::RawSession,
    #[cfg(feature = "rdp")]
    #[serde(default)]
    rdp: crate::session_config::RawRdp,
}

/// Every key, with the money keys of `money_config`.
pub(crate) fn all_keys() -> impl Iterator<Item = &'static &'static str> {
    let keys = KEYS.iter().chain(crate::money_config::MONEY_KEYS);
    #[cfg(feature = "session")]
    let keys = keys.chain(crate::session_config::SESSION_KEYS);
    #[cfg(feature = "rdp")]
    let keys = keys.chain(crate::session_config::RDP_KEYS);
    keys
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    payout_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTor {
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeers {
    direct_addr: Option<String>,
    bootstrap: Option<Vec<String>>,
    max_known: Option<usize>,
    max_connected: Option<usize>,
    max_messages_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    name: Option<String>,
    kind: Option<String>,
    genesis_ms: Option<i64>,
    slot_ms: Option<u64>,
    slots_per_epoch: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    connect_timeout_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShutdown {
    grace_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsensus {
    verify_threads: Option<usize>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The resolved configuration of the binary: the daemon's part plus what only the binary uses.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) daemon: lucid_daemon::Config,
    /// What the node's registration advertises (`node.payout_address`, `peers.direct_addr`).
    pub(crate) registration: RegistrationConfig,
    /// `peers.*`.
    pub(crate) peers: PeersConfig,
    /// `tor.enabled`.
    pub(crate) tor_enabled: bool,
    /// `network.kind = "test"`.
    pub(crate) test_network: bool,
    /// The gRPC listener (`Operator` and `Peer`).
    pub(crate) grpc_addr: SocketAddr,
    /// `sqlite://PATH` or `postgres://…` (no password in the URL).
    pub(crate) database_url: String,
    pub(crate) database_connect_timeout: Duration,
    pub(crate) log_level: String,
    pub(crate) log_format: LogFormat,
    /// `economy.*`, `payouts.*`, `tron.*`.
    pub(crate) money: crate::money_config::MoneyConfig,
    /// `session.*` and `rdp.port_range` (features `session`, `rdp`).
    #[cfg(feature = "session")]
    pub(crate) session: crate::session_config::SessionConfig,
}

/// A usage or configuration error: exit code 64.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Flags that override the file and the environment.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) http_addr: Option<String>,
    pub(crate) grpc_addr: Option<String>,
}

/// Reads the file (if it exists, or if it was named explicitly), applies the environment and
/// the flags, and validates everything.
pub(crate) fn resolve(
    data_dir: &Path,
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    overrides: &Overrides,
) -> Result<Resolved, UsageError> {
    let default_file = data_dir.join("lucid.toml");
    let (path, required) = match file {
        Some(path) => (path.to_path_buf(), true),
        None => (default_file, false),
    };
    let mut raw: RawConfig = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            usage(format!("configuration file {}: {}", path.display(), e.message()))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => RawConfig::default(),
        Err(e) => {
            return Err(usage(format!("cannot read configuration file {}: {e}", path.display())));
        }
    };
    apply_env(&mut raw, env)?;
    if let Some(addr) = &overrides.http_addr {
        raw.http.addr = Some(addr.clone());
    }
    if let Some(addr) = &overrides.grpc_addr {
        raw.grpc.addr = Some(addr.clone());
    }
    validate(raw, data_dir)
}

fn parse_env<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, UsageError> {
    value.parse().map_err(|_| usage(format!("{} ({key}): invalid value {value:?}", env_name(key))))
}

fn apply_env(raw: &mut RawConfig, env: &BTreeMap<String, String>) -> Result<(), UsageError> {
    for (name, value) in env.iter().filter(|(name, _)| name.starts_with("LUCID_")) {
        let Some(key) = all_keys().find(|key| env_name(key) == *name) else {
            return Err(usage(format!("unknown configuration variable {name}")));
        };
        match *key {
            "network.name" => raw.network.name = Some(value.clone()),
            "network.kind" => raw.network.kind = Some(value.clone()),
            "network.genesis_ms" => raw.network.genesis_ms = Some(parse_env(key, value)?),
            "network.slot_ms" => raw.network.slot_ms = Some(parse_env(key, value)?),
            "network.slots_per_epoch" => raw.network.slots_per_epoch = Some(parse_env(key, value)?),
            "http.addr" => raw.http.addr = Some(value.clone()),
            "grpc.addr" => raw.grpc.addr = Some(value.clone()),
            "database.url" => raw.database.url = Some(value.clone()),
            "database.connect_timeout_s" => {
                raw.database.connect_timeout_s = Some(parse_env(key, value)?)
            }
            "log.level" => raw.log.level = Some(value.clone()),
            "log.format" => raw.log.format = Some(value.clone()),
            "shutdown.grace_s" => raw.shutdown.grace_s = Some(parse_env(key, value)?),
            "consensus.verify_threads" => {
                raw.consensus.verify_threads = Some(parse_env(key, value)?)
            }
            "node.payout_address" => raw.node.payout_address = Some(value.clone()),
            "tor.enabled" => raw.tor.enabled = Some(parse_env(key, value)?),
            "peers.direct_addr" => raw.peers.direct_addr = Some(value.clone()),
            // A list in the environment: comma-separated, empty for none.
            "peers.bootstrap" => {
                raw.peers.bootstrap = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|entry| !entry.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "peers.max_known" => raw.peers.max_known = Some(parse_env(key, value)?),
            "peers.max_connected" => raw.peers.max_connected = Some(parse_env(key, value)?),
            "peers.max_messages_per_minute" => {
                raw.peers.max_messages_per_minute = Some(parse_env(key, value)?)
            }
            #[cfg(feature = "session")]
            session if apply_session_env(raw, session, value)? => {}
            money
                if crate::money_config::apply_env(
                    &mut raw.economy,
                    &mut raw.payouts,
                    &mut raw.tron,
                    money,
                    value,
                )? => {}
            _ => return Err(usage(format!("configuration variable {name} is not handled"))),
        }
    }
    Ok(())
}

/// Applies a `session.*` or `rdp.*` variable; `false` if `key` is not one of them.
#[cfg(feature = "session")]
fn apply_session_env(raw: &mut RawConfig, key: &str, value: &str) -> Result<bool, UsageError> {
    #[cfg(feature = "rdp")]
    let rdp = Some(&mut raw.rdp);
    #[cfg(not(feature = "rdp"))]
    let rdp = None;
    crate::session_config::apply_env(&mut raw.session, rdp, key, value)
}

fn validate(raw: RawConfig, data_dir: &Path) -> Result<Resolved, UsageError> {
    let money = crate::money_config::validate(crate::money_config::RawMoney {
        economy: raw.economy,
        payouts: raw.payouts,
        tron: raw.tron,
    })?;
    #[cfg(feature = "rdp")]
    let rdp = raw.rdp;
    #[cfg(all(feature = "session", not(feature = "rdp")))]
    let rdp = crate::session_config::RawRdp::default();
    #[cfg(feature = "session")]
    let session = crate::session_config::validate(raw.session, rdp)?;
    let kind = raw.network.kind.as_deref().unwrap_or("main");
    let (network_name, consensus) = match kind {
        "main" => {
            if raw.network.genesis_ms.is_some()
                || raw.network.slot_ms.is_some()
                || raw.network.slots_per_epoch.is_some()
            {
                return Err(usage(
                    "network.genesis_ms, network.slot_ms and network.slots_per_epoch are only allowed with network.kind = \"test\"",
                ));
            }
            match raw.network.name.as_deref() {
                None | Some("mainnet") => ("mainnet".to_owned(), ConsensusParams::mainnet()),
                Some(other) => {
                    return Err(usage(format!(
                        "network.name: a main network must be called \"mainnet\", not {other:?}"
                    )));
                }
            }
        }
        "test" => {
            let name = raw.network.name.unwrap_or_else(|| "testnet".to_owned());
            if name.is_empty()
                || name.len() > 64
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(usage("network.name: 1..=64 characters of [A-Za-z0-9_-]"));
            }
            let time = TimeParams::test_network(
                UnixMillis(raw.network.genesis_ms.unwrap_or(TimeParams::MAINNET.genesis().0)),
                raw.network.slot_ms.unwrap_or(TimeParams::MAINNET.slot_ms()),
                raw.network.slots_per_epoch.unwrap_or(TimeParams::MAINNET.slots_per_epoch()),
            )
            .map_err(|e| usage(e.to_string()))?;
            let params = ConsensusParams::test_network(&name, time);
            (name, params)
        }
        other => {
            return Err(usage(format!(
                "network.kind: expected \"main\" or \"test\", found {other:?}"
            )));
        }
    };
    let addr = raw.http.addr.as_deref().unwrap_or("0.0.0.0:8080");
    let http_addr: SocketAddr = addr
        .parse()
        .map_err(|_| usage(format!("http.addr: {addr:?} is not a host:port socket address")))?;
    let addr = raw.grpc.addr.as_deref().unwrap_or("0.0.0.0:50051");
    let grpc_addr: SocketAddr = addr
        .parse()
        .map_err(|_| usage(format!("grpc.addr: {addr:?} is not a host:port socket address")))?;
    let log_format = match raw.log.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(usage(format!(
                "log.format: expected \"text\" or \"json\", found {other:?}"
            )));
        }
    };
    let log_level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(usage(format!("log.level: {log_level:?} is not a valid level or filter")));
    }
    let grace = raw.shutdown.grace_s.unwrap_or(30);
    if !(1..=600).contains(&grace) {
        return Err(usage("shutdown.grace_s: must lie in 1..=600"));
    }
    let database_url = raw
        .database
        .url
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("lucid.db").display()));
    if !(database_url.starts_with("sqlite://")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://"))
    {
        return Err(usage("database.url: expected sqlite://PATH or postgres://USER@HOST/DB"));
    }
    if database_url.starts_with("postgres") && url_has_password(&database_url) {
        return Err(usage("database.url: put no password in the URL (use database.password_file)"));
    }
    let connect_timeout = raw.database.connect_timeout_s.unwrap_or(10);
    if !(1..=300).contains(&connect_timeout) {
        return Err(usage("database.connect_timeout_s: must lie in 1..=300"));
    }
    let verify_threads = raw.consensus.verify_threads.unwrap_or(0);
    if verify_threads > 256 {
        return Err(usage("consensus.verify_threads: at most 256 (0 means one per core)"));
    }
    let test_network = kind == "test";
    let (registration, peers, tor_enabled) =
        validate_peers(&raw.node, &raw.tor, &raw.peers, test_network, &consensus)?;
    Ok(Resolved {
        registration,
        peers,
        tor_enabled,
        test_network,
        daemon: lucid_daemon::Config {
            data_dir: data_dir.to_path_buf(),
            network_name,
            consensus,
            http_addr,
            shutdown_grace: Duration::from_secs(grace),
            verify_threads,
        },
        grpc_addr,
        database_url,
        database_connect_timeout: Duration::from_secs(connect_timeout),
        log_level,
        log_format,
        money,
        #[cfg(feature = "session")]
        session,
    })
}

/// `node.payout_address`, `tor.enabled` and `peers.*`.
fn validate_peers(
    node: &RawNode,
    tor: &RawTor,
    peers: &RawPeers,
    test_network: bool,
    consensus: &ConsensusParams,
) -> Result<(RegistrationConfig, PeersConfig, bool), UsageError> {
    let payout_address = node
        .payout_address
        .as_deref()
        .map(|text| {
            parse_payout_address(text).map_err(|e| usage(format!("node.payout_address: {e}")))
        })
        .transpose()?;
    let tor_enabled = tor.enabled.unwrap_or(true);
    let endpoint = match peers.direct_addr.as_deref() {
        None if test_network && !tor_enabled => {
            return Err(usage(
                "peers.direct_addr: required on a test network with tor.enabled = false",
            ));
        }
        None => None,
        Some(_) if !test_network => {
            return Err(usage(
                "peers.direct_addr: direct endpoints are only allowed on test networks (network.kind = \"test\")",
            ));
        }
        Some(_) if tor_enabled => {
            return Err(usage("peers.direct_addr: needs tor.enabled = false"));
        }
        Some(addr) => {
            validate_host_port(addr).map_err(|e| usage(format!("peers.direct_addr: {e}")))?;
            Some(Endpoint::Direct(addr.to_owned()))
        }
    };
    let bootstrap = peers
        .bootstrap
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, entry)| {
            entry
                .parse::<PeerAddress>()
                .map_err(|e| usage(format!("peers.bootstrap[{index}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let defaults = PeerLimits::default();
    let max_known = peers.max_known.unwrap_or(defaults.max_known);
    if !(1..=100_000).contains(&max_known) {
        return Err(usage("peers.max_known: must lie in 1..=100000"));
    }
    let max_connected = peers.max_connected.unwrap_or(defaults.max_connected);
    if !(1..=1024).contains(&max_connected) || max_connected > max_known {
        return Err(usage(
            "peers.max_connected: must lie in 1..=1024 and not exceed peers.max_known",
        ));
    }
    let max_messages_per_minute =
        peers.max_messages_per_minute.unwrap_or(defaults.max_messages_per_minute);
    if !(1..=10_000_000).contains(&max_messages_per_minute) {
        return Err(usage("peers.max_messages_per_minute: must lie in 1..=10000000"));
    }
    // A test network exchanges peers every slot (at most every 60 s), so that it converges in
    // seconds; the main network every 60 s.
    let exchange_every = if test_network {
        Duration::from_millis(consensus.time.slot_ms().min(60_000))
    } else {
        lucid_daemon::peers::EXCHANGE_EVERY
    };
    let config = PeersConfig {
        limits: PeerLimits { max_known, max_connected, max_messages_per_minute },
        bootstrap,
        exchange_every,
        ..PeersConfig::default()
    };
    let registration =
        RegistrationConfig { payout_address, endpoint, capabilities: 0, storage_capacity_bytes: 0 };
    Ok((registration, config, tor_enabled))
}

/// Whether a `scheme://user:password@host/…` URL carries a password.
fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.split_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The commented configuration file written by `init`; a test parses it back to the defaults.
pub(crate) fn example(network: &str) -> String {
    example_for(network, None)
}

/// The configuration file written by `init --payout-address` (validated by the caller).
pub(crate) fn example_for(network: &str, payout_address: Option<&str>) -> String {
    let node = match payout_address {
        Some(address) => format!("payout_address = \"{address}\"\n"),
        None => "# payout_address = \"T…\"\n".to_owned(),
    };
    let kind = if network == "mainnet" { "main" } else { "test" };
    let mut text = example_body(network, kind);
    text.push_str(&format!(
        "\n[node]\n# The TRON address (Base58Check) rewards are paid to; without it the node earns nothing.\n{node}\n\
         [tor]\n# false on a test network: peers use peers.direct_addr instead of onion services.\n# enabled = true\n\n\
         [peers]\n# bootstrap = [\"node_<hex>@host:port\"]\n# direct_addr = \"127.0.0.1:50051\"\n"
    ));
    text
}

fn example_body(network: &str, kind: &str) -> String {
    format!(
        "# Lucid node configuration. Precedence: this file < LUCID_* environment < flags.\n\
         # Every key maps to an environment variable: a.b <-> LUCID_A_B.\n\n\
         [network]\n\
         name = \"{network}\"\n\
         # \"main\" or \"test\"; only test networks may set genesis_ms, slot_ms and slots_per_epoch.\n\
         kind = \"{kind}\"\n\n\
         [http]\n\
         # Health, metrics and /api/v1.\n\
         addr = \"0.0.0.0:8080\"\n\n\
         [grpc]\n\
         # The Operator and Peer services.\n\
         addr = \"0.0.0.0:50051\"\n\n\
         [database]\n\
         # Default: a SQLite file in the data directory. PostgreSQL: \"postgres://USER@HOST/DB\".\n\
         # url = \"sqlite://./lucid-data/lucid.db\"\n\
         connect_timeout_s = 10\n\n\
         [log]\n\
         level = \"info\"\n\
         # \"text\" or \"json\".\n\
         format = \"text\"\n\n\
         [shutdown]\n\
         # Seconds to drain before a forced stop.\n\
         grace_s = 30\n\n\
         [consensus]\n\
         # Signature verification threads; 0 means one per core.\n\
         verify_threads = 0\n\n\
         [economy]\n\
         # Reward budget of every epoch (decimal USDT string); must be identical network-wide.\n\
         epoch_reward_usdt = \"0\"\n\n\
         [payouts]\n\
         # true makes this node the payer (one per network). Without the blockchain feature the\n\
         # payouts are created and reserved and wait, awaiting_chain.\n\
         enabled = false\n\
         interval = \"1h\"\n\
         process_interval = \"30s\"\n\
         minimum_usdt = \"10\"\n\
         maximum_usdt = \"10000\"\n\
         batch_size = 10\n\
         max_retries = 3\n\
         lease = \"5m\"\n\
         daily_max_count = 100\n\
         daily_max_per_node = 10\n\
         circuit_failures = 10\n\
         circuit_cooldown = \"120s\"\n\n\
         # [tron] (blockchain feature, payer only): network = \"mainnet\" | \"shasta\",\n\
         # hot_wallet_key_file = \"/path/hot-wallet.key\" (64 hex, mode 0600), api_url, usdt_contract,\n\
         # api_key_file, fee_limit_max_sun = 100000000, tx_expiration = \"60s\", poll_interval = \"10s\",\n\
         # dead_margin = \"120s\", request_timeout = \"30s\".\n"
    )
}

/// Path of the configuration file for a data directory.
pub(crate) fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("lucid.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn no_two_keys_share_a_variable() {
        let mut names: Vec<_> = all_keys().map(|k| env_name(k)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all_keys().count());
    }

    #[test]
    fn example_parses_back_to_the_defaults() {
        let dir = std::env::temp_dir().join(format!("lucid-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(default_path(&dir), example("mainnet")).unwrap();
        let from_file = resolve(&dir, None, &env(&[]), &Overrides::default()).unwrap();
        let defaults = validate(RawConfig::default(), &dir).unwrap();
        assert_eq!(format!("{:?}", from_file.daemon), format!("{:?}", defaults.daemon));
        assert_eq!(from_file.grpc_addr, defaults.grpc_addr);
        assert_eq!(defaults.grpc_addr.port(), 50051);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn precedence_and_errors() {
        let dir = std::env::temp_dir().join(format!("lucid-config-p-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(default_path(&dir), "[http]\naddr = \"127.0.0.1:1\"\n").unwrap();
        let file_only = resolve(&dir, None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(file_only.daemon.http_addr.port(), 1);
        let env_wins =
            resolve(&dir, None, &env(&[("LUCID_HTTP_ADDR", "127.0.0.1:2")]), &Overrides::default())
                .unwrap();
        assert_eq!(env_wins.daemon.http_addr.port(), 2);
        let flag_wins = resolve(
            &dir,
            None,
            &env(&[("LUCID_HTTP_ADDR", "127.0.0.1:2")]),
            &Overrides { http_addr: Some("127.0.0.1:3".into()), ..Overrides::default() },
        )
        .unwrap();
        assert_eq!(flag_wins.daemon.http_addr.port(), 3);
        let grpc = resolve(
            &dir,
            None,
            &env(&[("LUCID_GRPC_ADDR", "127.0.0.1:4")]),
            &Overrides { grpc_addr: Some("127.0.0.1:5".into()), ..Overrides::default() },
        )
        .unwrap();
        assert_eq!(grpc.grpc_addr.port(), 5);
        let grpc_env =
            resolve(&dir, None, &env(&[("LUCID_GRPC_ADDR", "127.0.0.1:4")]), &Overrides::default())
                .unwrap();
        assert_eq!(grpc_env.grpc_addr.port(), 4);
        let bad_grpc =
            resolve(&dir, None, &env(&[("LUCID_GRPC_ADDR", "nope")]), &Overrides::default())
                .unwrap_err();
        assert!(bad_grpc.0.contains("grpc.addr"), "{}", bad_grpc.0);
        let unknown_var =
            resolve(&dir, None, &env(&[("LUCID_NOPE", "1")]), &Overrides::default()).unwrap_err();
        assert!(unknown_var.0.contains("LUCID_NOPE"));
        let bad_value =
            resolve(&dir, None, &env(&[("LUCID_SHUTDOWN_GRACE_S", "x")]), &Overrides::default())
                .unwrap_err();
        assert!(bad_value.0.contains("shutdown.grace_s"));
        std::fs::write(default_path(&dir), "[http]\nadr = \"127.0.0.1:1\"\n").unwrap();
        let unknown_key = resolve(&dir, None, &env(&[]), &Overrides::default()).unwrap_err();
        assert!(unknown_key.0.contains("adr"), "{}", unknown_key.0);
        std::fs::write(default_path(&dir), "[network]\nslot_ms = 1000\n").unwrap();
        assert!(
            resolve(&dir, None, &env(&[]), &Overrides::default()).unwrap_err().0.contains("test")
        );
        std::fs::write(default_path(&dir), "[network]\nkind = \"test\"\nslot_ms = 10\n").unwrap();
        assert!(
            resolve(&dir, None, &env(&[]), &Overrides::default())
                .unwrap_err()
                .0
                .contains("slot_ms")
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            resolve(
                Path::new("/nonexistent"),
                Some(Path::new("/nonexistent/x.toml")),
                &env(&[]),
                &Overrides::default()
            )
            .is_err()
        );
    }
}
