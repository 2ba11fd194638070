//! `lucid-node`: the Lucid node daemon. Parses the command line and configuration, wires the
//! daemon, and waits for a shutdown signal. No business logic lives here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod config;
mod datadir;
mod money_config;
mod payer;
#[cfg(feature = "session")]
mod session_config;
mod status;

/// Exit code of usage and configuration errors.
const EXIT_USAGE: u8 = 64;

#[derive(Parser, Debug)]
#[command(name = "lucid-node", version, about = "The Lucid node daemon")]
struct Cli {
    /// The data directory (key, token, configuration, database).
    #[arg(long, global = true, default_value = "./lucid-data")]
    data_dir: PathBuf,
    /// Configuration file (default: lucid.toml in the data directory).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the data directory with a new identity key, admin token and configuration.
    Init {
        /// Network name: `mainnet`, or any other name for a test network.
        #[arg(long, default_value = "mainnet")]
        network: String,
        /// The TRON address (Base58Check, `T…`) rewards are paid to (`node.payout_address`).
        #[arg(long)]
        payout_address: Option<String>,
    },
    /// Run the node.
    Run {
        /// HTTP listen address (overrides http.addr).
        #[arg(long)]
        http_addr: Option<String>,
        /// gRPC listen address (overrides grpc.addr).
        #[arg(long)]
        grpc_addr: Option<String>,
        /// Initialise the data directory first if it holds no identity yet (never replaces one).
        #[arg(long)]
        init: bool,
    },
    /// Ask the running node for its status over gRPC (Operator.GetStatus).
    Status {
        /// The node's gRPC address (overrides grpc.addr; an unspecified IP means loopback).
        #[arg(long)]
        grpc_addr: Option<String>,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the node's public identity (never secret material).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Resolve and validate the configuration, and print it.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Exit 0 if the node's /health/live answers 200 (for container health checks).
    Health,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Print the node id and public key.
    Show,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate and print the resolved configuration.
    Check,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let usage_error = error.use_stderr();
            let _ = error.print();
            return if usage_error { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            let code = if error.is::<config::UsageError>() { EXIT_USAGE } else { 1 };
            #[expect(clippy::print_stderr, reason = "the binary reports fatal errors on stderr")]
            {
                eprintln!("lucid-node: error: {error:#}");
            }
            ExitCode::from(code)
        }
    }
}

fn resolve(cli: &Cli, overrides: &config::Overrides) -> anyhow::Result<config::Resolved> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    Ok(config::resolve(&cli.data_dir, cli.config.as_deref(), &env, overrides)?)
}

#[expect(clippy::print_stdout, reason = "subcommands print their results on stdout")]
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Init { network, payout_address } => {
            if let Some(address) = payout_address {
                lucid_daemon::services::registration::parse_payout_address(address).map_err(
                    |e| config::UsageError(format!("--payout-address (node.payout_address): {e}")),
                )?;
            }
            let example = config::example_for(network, payout_address.as_deref());
            let created = datadir::init(&cli.data_dir, &example)?;
            println!("{}", created.node_id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command: KeysCommand::Show } => {
            let key = datadir::load_key(&cli.data_dir)?;
            let id = key.node_id();
            println!("node_id: {id}\npublic_key: {}", id.to_string().trim_start_matches("node_"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command: ConfigCommand::Check } => {
            let resolved = resolve(&cli, &config::Overrides::default())?;
            let daemon = &resolved.daemon;
            let money = &resolved.money;
            println!(
                "economy.epoch_reward_usdt = \"{}\"\npayouts.enabled = {}\npayouts.payer_node_id = {:?}\npayouts.minimum_usdt = \"{}\"\npayouts.maximum_usdt = \"{}\"\npayouts.rail = {:?}",
                money.epoch_reward,
                money.payouts.is_some(),
                money.payer_node_id.map(|id| id.to_string()),
                money.limits.minimum(),
                money.limits.maximum(),
                match &money.payouts {
                    None => "none",
                    Some(payouts) if payouts.tron.is_some() => "tron",
                    Some(_) => "ledger_only",
                }
            );
            println!(
                "data_dir = {:?}\nnetwork.name = {:?}\nnetwork.id = {}\nhttp.addr = \"{}\"\ngrpc.addr = \"{}\"\ndatabase.url = {:?}\nlog.level = {:?}\nlog.format = {:?}\nshutdown.grace_s = {}\nconsensus.verify_threads = {}",
                daemon.data_dir,
                daemon.network_name,
                daemon.consensus.network,
                daemon.http_addr,
                resolved.grpc_addr,
                resolved.database_url,
                resolved.log_level,
                resolved.log_format,
                daemon.shutdown_grace.as_secs(),
                daemon.verify_threads
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Health => {
            let resolved = resolve(&cli, &config::Overrides::default())?;
            let mut addr = resolved.daemon.http_addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Ok(if live(addr) { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Status { grpc_addr, json } => {
            let overrides =
                config::Overrides { grpc_addr: grpc_addr.clone(), ..config::Overrides::default() };
            let resolved = resolve(&cli, &overrides)?;
            let token = datadir::read_token(&cli.data_dir)?;
            status::run(resolved.grpc_addr, &token, *json)
        }
        Command::Run { http_addr, grpc_addr, init } => {
            if *init && !cli.data_dir.join(datadir::KEY_FILE).exists() {
                let created = datadir::init(&cli.data_dir, &config::example("mainnet"))?;
                println!("initialised {} for {}", cli.data_dir.display(), created.node_id);
            }
            let overrides =
                config::Overrides { http_addr: http_addr.clone(), grpc_addr: grpc_addr.clone() };
            let resolved = resolve(&cli, &overrides)?;
            init_tracing(&resolved)?;
            serve(resolved)
        }
    }
}

/// GET /health/live with a plain HTTP/1.1 request (the container image has no curl).
fn live(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read as _, Write as _};
    let timeout = std::time::Duration::from_secs(3);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else { return false };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET /health/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = [0u8; 32];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read(&mut response).is_ok_and(|n| response[..n].starts_with(b"HTTP/1.1 200"))
}

fn init_tracing(resolved: &config::Resolved) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&resolved.log_level)
        .map_err(|e| config::UsageError(format!("log.level: {e}")))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match resolved.log_format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// The daemon's database probe over the SQL adapter.
struct DatabaseProbe(Arc<lucid_storage::Database>);

#[async_trait::async_trait]
impl lucid_daemon::DatabaseProbe for DatabaseProbe {
    fn backend(&self) -> &'static str {
        match self.0.backend() {
            lucid_storage::Backend::Sqlite => "sqlite",
            lucid_storage::Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// Lists pools over the SQL adapter.
struct PoolIndex(Arc<lucid_storage::Database>);

#[async_trait::async_trait]
impl lucid_daemon::PoolIndex for PoolIndex {
    async fn all_pools(&self) -> Result<Vec<lucid_pools::Pool>, lucid_pools::Error> {
        self.0.all_pools().await.map_err(|error| lucid_pools::Error::Store {
            action: "listing pools",
            kind: lucid_core::HasKind::kind(&error),
            source: Arc::new(error),
        })
    }
}

/// The daemon's stores over the SQL adapter.
fn ports(database: &Arc<lucid_storage::Database>) -> lucid_daemon::Ports {
    lucid_daemon::Ports {
        proofs: database.clone(),
        pools: database.clone(),
        pool_index: Arc::new(PoolIndex(Arc::clone(database))),
        records: database.clone(),
        payouts: database.clone(),
    }
}

fn serve(resolved: config::Resolved) -> anyhow::Result<ExitCode> {
    let daemon = resolved.daemon;
    let money = resolved.money;
    #[cfg(feature = "session")]
    let session_config = resolved.session;
    let registration = resolved.registration;
    let peers_config = resolved.peers;
    let tor_enabled = resolved.tor_enabled;
    let test_network = resolved.test_network;
    let database_url = resolved.database_url;
    let grpc_addr = resolved.grpc_addr;
    let connect_timeout = resolved.database_connect_timeout;
    let _lock = datadir::lock(&daemon.data_dir)?;
    let key = datadir::load_key(&daemon.data_dir)?;
    let token = datadir::load_token(&daemon.data_dir)?;
    let verifier = lucid_consensus::verify::Verifier::new(daemon.verify_threads)
        .context("starting the signature verification threads")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lucid-node")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let clock: Arc<dyn lucid_core::Clock> = Arc::new(lucid_daemon::clock::SystemClock::new());
        // No silent fallback: a database that cannot be opened (unreachable, corrupt, refused
        // migrations) stops the start with a clear message.
        let database = tokio::time::timeout(connect_timeout, lucid_storage::Database::open(&database_url, Arc::clone(&clock)))
            .await
            .map_err(|_| anyhow::anyhow!("the database did not answer within {connect_timeout:?} (database.url)"))?
            .context("opening the database (database.url)")?;
        let database = Arc::new(database);
        tracing::info!(database = %database.url(), "database open");
        let listener = tokio::net::TcpListener::bind(daemon.http_addr)
            .await
            .with_context(|| format!("binding the HTTP listener on {}", daemon.http_addr))?;
        let grpc_listener = tokio::net::TcpListener::bind(grpc_addr)
            .await
            .with_context(|| format!("binding the gRPC listener on {grpc_addr}"))?;
        tracing::info!(node_id = %key.node_id(), network = %daemon.network_name, http = %daemon.http_addr, grpc = %grpc_addr, "starting");
        let proofs: Arc<dyn lucid_consensus::store::ProofStore> = Arc::clone(&database) as _;
        let verifier = Arc::new(verifier);
        let peer = lucid_daemon::peer::StorePeer::load(
            daemon.consensus,
            proofs,
            Arc::clone(&verifier),
            Arc::clone(&clock),
        )
        .await
        .context("loading the registrations for the peer service")?;
        let consensus = daemon.consensus;
        let node_id = key.node_id();
        let money = payer::wiring(&money, &database, &key, daemon.consensus.time.genesis())?;
        let probe = Arc::new(DatabaseProbe(Arc::clone(&database)));
        #[cfg(feature = "session")]
        let clock_for_sessions = Arc::clone(&clock);
        let node = lucid_daemon::Node::build(daemon, key, clock, probe, ports(&database));
        let (tor_status, tor_detail) = match (tor_enabled, test_network) {
            (false, true) => (lucid_api::HealthStatus::Healthy, "disabled on a test network: peers use direct endpoints"),
            (false, false) => (lucid_api::HealthStatus::Degraded, "disabled: on the main network the node is isolated"),
            (true, _) => (lucid_api::HealthStatus::Degraded, "the Tor transport is not built yet: the node is isolated"),
        };
        node.set_component("tor", tor_status, tor_detail);
        let gate = node.start_peers(peers_config, peer.ingest());
        // Gossip reaches peers through the peer table (which peers to call, where faults are
        // scored) and the signed client; the peer service feeds it what it accepts.
        let peers = node.peers_handle().context("the peer service did not start")?;
        let directory: Arc<dyn lucid_daemon::network::PeerDirectory> = peers.table.clone();
        let transport: Arc<dyn lucid_daemon::network::PeerTransport> = peers.client.clone();
        let gossip_config = lucid_daemon::gossip::GossipConfig::for_network(&consensus);
        // Pool ops travel like proofs: pushed when logged, reconciled by anti-entropy.
        let queue = lucid_daemon::gossip::GossipQueue::new(node_id, directory, &gossip_config)
            .with_pool_ops(node.pool_op_ingest(peer.ingest()));
        let peer = peer.with_gossip(queue.hook());
        #[cfg(feature = "session")]
        let session_wiring = (peer.ingest(), Arc::clone(&verifier), queue.own_outbox());
        // A value that is not configured keeps the recorded one; without a payout address or
        // an endpoint the node runs unregistered and says so.
        let wiring = lucid_daemon::ServiceWiring {
            ingest: peer.ingest(),
            verifier,
            registration,
            gossip: Some(lucid_daemon::gossip::GossipWiring {
                transport,
                queue,
                config: gossip_config,
            }),
        };
        node.serve_http(listener, token.clone());
        node.serve_grpc(grpc_listener, Arc::new(peer), gate, token);
        node.spawn();
        node.spawn_services(wiring).context("starting the services")?;
        node.spawn_money(money);
        #[cfg(feature = "session")]
        {
            let (ingest, verifier, outbox) = session_wiring;
            let sessions =
                sessions(&session_config, node_id, &node, &database, &clock_for_sessions)?;
            node.spawn_sessions(sessions, ingest, verifier, Some(outbox));
        }
        if node.check_database().await {
            node.mark_ready();
        }
        // SIGTERM, SIGINT or the operator's `Shutdown` call: the same drain.
        tokio::select! {
            signalled = wait_for_signal() => signalled?,
            () = node.shutdown_requested() => {}
        }
        // A second signal during the drain forces the exit.
        tokio::spawn(async {
            if wait_for_signal().await.is_ok() {
                tracing::warn!("second signal: exiting without waiting for the drain");
                std::process::exit(1);
            }
        });
        let drained = node.drain().await;
        database.close().await;
        match drained {
            Ok(()) => {
                tracing::info!("stopped");
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                tracing::error!(%error, "forced stop");
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// The session manager of a node built with `session`. No production session service, trust
/// oracle, RDP host or chain payment verifier exists yet, so the `Null*` ports are selected: the
/// node reports `sessions_active` and refuses every session with `FeatureDisabled`, naming what
/// is missing. The spent-txid registry and the ledger are the node's database.
#[cfg(feature = "session")]
fn sessions(
    config: &session_config::SessionConfig,
    node_id: lucid_core::NodeId,
    node: &lucid_daemon::Node,
    database: &Arc<lucid_storage::Database>,
    clock: &Arc<dyn lucid_core::Clock>,
) -> anyhow::Result<Arc<lucid_daemon::sessions::SessionManager>> {
    use lucid_daemon::sessions::{
        NullRdpBackend, NullSessionProvider, NullTrustOracle, SessionDeps, SessionManager,
    };
    let manager = SessionManager::new(SessionDeps {
        rules: config.rules,
        node: node_id,
        pay_to: config.pay_to_address.clone().unwrap_or_default(),
        provider: Arc::new(NullSessionProvider),
        trust: Arc::new(NullTrustOracle),
        rdp: Arc::new(NullRdpBackend),
        payments: Arc::new(lucid_payouts::session::NullPaymentVerifier),
        spent: Arc::clone(database) as _,
        ledger: Arc::clone(database) as _,
        clock: Arc::clone(clock),
        gate: node.session_gate(),
    })
    .map_err(|e| config::UsageError(format!("session: {e}")))?;
    Ok(Arc::new(manager))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
