//! The node: shared state, the services it runs, the `NodeApi` it serves, and shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lucid_api::dto::{
    BalanceView, CapacityView, CreatePoolRequest, EpochStubView, MemberView, NodeSummary,
    OpAccepted, Page, PageQuery, PayoutQuery, PayoutStats, PayoutStubView, PayoutView, PoolView,
    ResourceAlert, ResourceSample, ResourcesView, ScheduleView, TallyView, UpdatePoolRequest,
    Withdrawal,
};
use lucid_api::{
    AdminToken, ClockInfo, ComponentHealth, Failure, HealthReport, HealthStatus, NodeApi, NodeInfo,
};
use lucid_core::{Clock, Epoch, MicroUsdt, NodeId, NodeKey, PoolId, Signature, Slot};
use lucid_pools::Op;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ports::Ports;
use crate::services::SharedIngest;
use crate::services::beacon::{BeaconDeps, BeaconProducer};
use crate::services::consensus::ConsensusRecordsService;
use crate::services::hysteresis::{AlertLevel, Resource};
use crate::services::metrics::ServiceMetrics;
use crate::services::registration::RegistrationConfig;
use crate::services::resources::{
    ResourceConfig, ResourceHandle, ResourceMonitor, ResourceThresholds, SysinfoSampler,
};
use crate::services::runner::{Service, ServiceStates, spawn_supervised};
use crate::services::schedule::{MemoryClaims, ScheduleDeps, ScheduleKeeper};
use crate::services::tally::{
    MembershipSource, PoolTimeline, Reconciliation, Standalone, TallyDeps, TallyKeeper,
};
use crate::{money_forward, operator, pool_ops};

/// The daemon's version, from the package.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A failure to start or stop the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The HTTP listener failed.
    #[error("HTTP server on {addr} failed")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A service could not be set up.
    #[error("setting up the services failed: {detail}")]
    Services {
        /// Why.
        detail: String,
    },
    /// Services did not stop within the grace period.
    #[error("services did not stop within {grace:?}")]
    ForcedShutdown {
        /// The grace period.
        grace: Duration,
    },
}

impl lucid_core::HasKind for NodeError {
    fn kind(&self) -> lucid_core::ErrorKind {
        match self {
            NodeError::Http { .. } => lucid_core::ErrorKind::TransientNetwork,
            NodeError::ForcedShutdown { .. } => lucid_core::ErrorKind::ShuttingDown,
            NodeError::Services { .. } => lucid_core::ErrorKind::InvalidInput,
        }
    }
}

/// How the node checks that its database answers; the binary implements it over the adapter.
#[async_trait::async_trait]
pub trait DatabaseProbe: Send + Sync {
    /// The backend's name for health output (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// `Ok` if the database answered a trivial query; the error text is for logs only.
    async fn ping(&self) -> Result<(), String>;
}

/// How often the resource monitor samples (`resources.interval` of `daemon.md`).
const RESOURCE_SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// How far (percentage points) a resource must fall back below a threshold to leave its level.
const RESOURCE_HYSTERESIS_POINTS: u64 = 5;

/// What the service loops need beyond the node's ports.
pub struct ServiceWiring {
    /// The ingest state shared with the peer service.
    pub ingest: SharedIngest,
    /// The signature verifier of that ingest.
    pub verifier: Arc<lucid_consensus::verify::Verifier>,
    /// What the node's registration record advertises.
    pub registration: RegistrationConfig,
    /// Gossip, seals and anti-entropy; `None` runs the node without peers.
    pub gossip: Option<crate::gossip::GossipWiring>,
}

/// The node's own registration as the API changes it: the ingest and what the configuration
/// advertises (set by [`Node::spawn_services`]).
pub(crate) struct OwnRegistration {
    pub(crate) ingest: SharedIngest,
    pub(crate) config: RegistrationConfig,
}

/// The running peer service (set by [`Node::start_peers`]).
pub struct PeersHandle {
    /// The peer table (the `PeerDirectory` port).
    pub table: Arc<crate::peers::SharedPeers>,
    /// The signed client (the `PeerTransport` port).
    pub client: Arc<crate::peers::client::PeerClient>,
}

/// How long open gRPC connections may drain after shutdown begins (well inside the default
/// shutdown grace of 30 s).
const GRPC_DRAIN_BOUND: Duration = Duration::from_secs(5);

/// How often the database is pinged.
const DB_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Readiness needs a successful database check at most this old.
const DB_CHECK_FRESH: Duration = Duration::from_secs(10);

pub(crate) struct State {
    pub(crate) config: Config,
    database: Arc<dyn DatabaseProbe>,
    /// The node's identity key: signs the node's own pool ops, beacons and registration.
    pub(crate) key: Arc<NodeKey>,
    /// The stores.
    pub(crate) ports: Ports,
    /// Pool ops accepted and not yet applied.
    pub(crate) pool_ops: pool_ops::PoolOps,
    /// What the pool health loop last saw.
    pub(crate) pool_health: Arc<crate::services::pools::PoolHealthReport>,
    /// What the resource monitor last published.
    resources: std::sync::OnceLock<ResourceHandle>,
    /// The money wiring (limits, and the payer's loops), once `spawn_money` ran.
    money: std::sync::OnceLock<crate::money::MoneyRuntime>,
    /// The own registration's ingest and configuration, once the services run.
    pub(crate) own_registration: std::sync::OnceLock<OwnRegistration>,
    /// The peer table and client, once the peer service runs.
    pub(crate) peers: std::sync::OnceLock<PeersHandle>,
    /// Monotonic milliseconds (since the clock's origin, plus one) of the last successful
    /// database check; 0 = never.
    db_ok_at: AtomicU64,
    pub(crate) node_id: NodeId,
    pub(crate) clock: Arc<dyn Clock>,
    started: Duration,
    metrics: Metrics,
    /// The counters of the service loops, rendered after the node's own metrics.
    service_metrics: Arc<ServiceMetrics>,
    /// Which service loops run, failed or stopped.
    service_states: Arc<ServiceStates>,
    /// Postings and payout transitions, counted by the wrapped money ports.
    money_metrics: Arc<crate::money_metrics::MoneyMetrics>,
    /// The gossip counters, once gossip runs.
    gossip_metrics: std::sync::OnceLock<Arc<crate::gossip::GossipMetrics>>,
    /// The session manager, once `spawn_sessions` ran.
    #[cfg(feature = "session")]
    sessions: std::sync::OnceLock<Arc<crate::sessions::SessionManager>>,
    /// Where the node's own accepted pool ops are pushed from, once gossip runs.
    pub(crate) gossip_hook: std::sync::OnceLock<crate::gossip::GossipHook>,
    ready: AtomicBool,
    shutting_down: AtomicBool,
    /// Cancelled when the operator asks the node to stop (`Operator.Shutdown`); the binary
    /// waits for it next to SIGTERM/SIGINT.
    shutdown_requested: CancellationToken,
    components: Mutex<BTreeMap<&'static str, ComponentHealth>>,
}

/// A running node.
pub struct Node {
    state: Arc<State>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Node {
    /// A node with its identity key, clock, database probe and stores; nothing runs until
    /// [`Node::spawn`].
    pub fn build(
        config: Config,
        key: NodeKey,
        clock: Arc<dyn Clock>,
        database: Arc<dyn DatabaseProbe>,
        ports: Ports,
    ) -> Self {
        let started = clock.monotonic();
        let node_id = key.node_id();
        // Every payout transition passes the counting wrapper, whoever makes it.
        let money_metrics = Arc::new(crate::money_metrics::MoneyMetrics::new());
        let mut ports = ports;
        ports.payouts = Arc::new(crate::money_metrics::CountingPayoutStore::new(
            ports.payouts,
            Arc::clone(&money_metrics),
        ));
        let state = State {
            config,
            database,
            key: Arc::new(key),
            ports,
            pool_ops: pool_ops::PoolOps::default(),
            pool_health: Arc::default(),
            resources: std::sync::OnceLock::new(),
            money: std::sync::OnceLock::new(),
            own_registration: std::sync::OnceLock::new(),
            peers: std::sync::OnceLock::new(),
            db_ok_at: AtomicU64::new(0),
            node_id,
            clock,
            started,
            metrics: Metrics::new(),
            service_metrics: Arc::new(ServiceMetrics::new()),
            money_metrics,
            service_states: Arc::new(ServiceStates::default()),
            gossip_metrics: std::sync::OnceLock::new(),
            #[cfg(feature = "session")]
            sessions: std::sync::OnceLock::new(),
            gossip_hook: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            shutdown_requested: CancellationToken::new(),
            components: Mutex::new(BTreeMap::new()),
        };
        let node = Node {
            state: Arc::new(state),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };
        node.set_component("identity", HealthStatus::Healthy, "node key loaded");
        node
    }

    /// The API the HTTP layer serves.
    pub fn api(&self) -> Arc<dyn NodeApi> {
        Arc::new(Api { state: Arc::clone(&self.state) })
    }

    /// Records a component's health.
    pub fn set_component(
        &self,
        name: &'static str,
        status: HealthStatus,
        detail: impl Into<String>,
    ) {
        let mut components =
            self.state.components.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        components.insert(name, ComponentHealth { status, detail: detail.into() });
    }

    /// Serves HTTP on `listener` until shutdown, with `token` guarding mutations; in-flight
    /// requests finish during the drain.
    pub fn serve_http(&self, listener: TcpListener, token: AdminToken) {
        let api = self.api();
        let cancel = self.cancel.child_token();
        self.tracker.spawn(async move {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let served =
                lucid_api::serve(listener, api, token, async move { cancel.cancelled().await })
                    .await;
            if let Err(error) = served {
                tracing::error!(%addr, %error, "HTTP server stopped with an error");
            }
        });
    }

    /// Serves gRPC (`Operator` and `Peer`) on `listener` until shutdown, in the same cancellation
    /// tree as HTTP; calls in flight finish during the drain.
    /// Every `Peer` call passes `gate` first (see [`Node::start_peers`]).
    pub fn serve_grpc(
        &self,
        listener: TcpListener,
        peer: Arc<dyn lucid_api::grpc::PeerApi>,
        gate: Arc<dyn lucid_api::grpc::PeerGate>,
        token: lucid_api::grpc::AdminToken,
    ) {
        let api = self.api();
        let cancel = self.cancel.child_token();
        let drain_started = cancel.clone();
        self.tracker.spawn(async move {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let serve = lucid_api::grpc::serve(listener, api, peer, gate, token, async move {
                cancel.cancelled().await;
            });
            // A graceful drain waits for every open connection, and a peer may keep its
            // connection open however long it likes: the drain is bounded, then the server
            // (with its connections) is dropped, so a peer cannot hold up our shutdown.
            let drain_bound = async {
                drain_started.cancelled().await;
                tokio::time::sleep(GRPC_DRAIN_BOUND).await;
            };
            tokio::select! {
                served = serve => {
                    if let Err(error) = served {
                        tracing::error!(%addr, %error, "gRPC server stopped with an error");
                    }
                }
                () = drain_bound => {
                    tracing::info!(%addr, bound = ?GRPC_DRAIN_BOUND, "gRPC connections still open after the drain bound: closed");
                }
            }
        });
    }

    /// Starts the services.
    pub fn spawn(&self) {
        self.tracker.spawn(slot_clock(Arc::clone(&self.state), self.cancel.child_token()));
        self.tracker.spawn(database_monitor(Arc::clone(&self.state), self.cancel.child_token()));
        let state = &self.state;
        self.supervise(crate::services::pools::PoolHealthService::new(
            crate::services::pools::PoolHealthDeps {
                params: state.config.consensus,
                pools: Arc::clone(&state.ports.pools),
                proofs: Arc::clone(&state.ports.proofs),
                metrics: Arc::clone(&state.service_metrics),
                report: Arc::clone(&state.pool_health),
                apply: Arc::clone(&state.pool_ops.apply),
            },
        ));
    }

    /// Starts the consensus service loops (the beacon producer with the node's registration,
    /// tallies with leader schedules and slot results) and the resource monitor, each
    /// supervised on the node's tracker under a child of its cancellation token.
    ///
    /// `ingest` must be the one the peer service uses, so the node judges its own beacons
    /// exactly like a peer's and one registry serves both.
    pub fn spawn_services(&self, wiring: ServiceWiring) -> Result<(), NodeError> {
        let state = &self.state;
        let params = state.config.consensus;
        let clock = Arc::clone(&state.clock);
        let metrics = Arc::clone(&state.service_metrics);
        let gossip = wiring.gossip;
        let gossip_ingest = Arc::clone(&wiring.ingest);
        let gossip_verifier = Arc::clone(&wiring.verifier);
        let _ = state.own_registration.set(OwnRegistration {
            ingest: Arc::clone(&wiring.ingest),
            config: wiring.registration.clone(),
        });
        let beacons = BeaconProducer::new(BeaconDeps {
            params,
            clock: Arc::clone(&clock),
            key: Arc::clone(&state.key),
            registration: wiring.registration,
            store: Arc::clone(&state.ports.proofs),
            ingest: wiring.ingest,
            verifier: wiring.verifier,
            outbox: gossip.as_ref().map(|gossip| gossip.queue.own_outbox()),
        });
        self.supervise(beacons);
        // Epochs that ended while the node was down are settled once anti-entropy reconciled
        // the store; a node without gossip has only its own store.
        let reconciliation: Arc<dyn Reconciliation> = match &gossip {
            Some(gossip) => gossip.queue.reconciliation(),
            None => Arc::new(Standalone),
        };
        if let Some(gossip) = gossip {
            let _ = state.gossip_metrics.set(gossip.queue.metrics());
            let _ = state.gossip_hook.set(gossip.queue.hook());
            crate::gossip::spawn(
                crate::gossip::GossipDeps {
                    params,
                    clock: Arc::clone(&clock),
                    key: Arc::clone(&state.key),
                    store: Arc::clone(&state.ports.proofs),
                    ingest: gossip_ingest,
                    verifier: gossip_verifier,
                    transport: gossip.transport,
                    config: gossip.config,
                },
                gossip.queue,
                crate::gossip::Supervision {
                    tracker: &self.tracker,
                    states: Arc::clone(&state.service_states),
                    loops: Arc::clone(&metrics),
                    cancel: &self.cancel,
                },
            );
        }
        // Proofs and claims are attributed by the pool store's membership timeline, read for
        // every computation (`consensus.md` §7.1).
        let membership: Arc<dyn MembershipSource> =
            Arc::new(PoolTimeline(Arc::clone(&state.ports.pools)));
        let tally = TallyKeeper::new(TallyDeps {
            params,
            proofs: Arc::clone(&state.ports.proofs),
            records: Arc::clone(&state.ports.records),
            membership: Arc::clone(&membership),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
        })
        .with_reconciliation(reconciliation);
        let schedule = ScheduleKeeper::new(ScheduleDeps {
            params,
            records: Arc::clone(&state.ports.records),
            claims: Arc::new(MemoryClaims::default()),
            membership,
            metrics: Arc::clone(&metrics),
        });
        self.supervise(ConsensusRecordsService::new(tally, schedule));
        let (monitor, handle) = ResourceMonitor::new(
            SysinfoSampler::new(&state.config.data_dir),
            ResourceConfig {
                interval: RESOURCE_SAMPLE_EVERY,
                thresholds: ResourceThresholds::defaults(RESOURCE_HYSTERESIS_POINTS),
            },
            Arc::clone(&clock),
            Arc::clone(&metrics),
        )
        .map_err(|error| NodeError::Services { detail: error.to_string() })?;
        self.supervise(monitor);
        // `GET /api/v1/resources` reads the monitor itself; a second call keeps the first.
        let _ = state.resources.set(handle);
        Ok(())
    }

    /// Starts the money services: the epoch reward distribution (every node: each settled
    /// tally's `epoch_reward:{e}` posting, exactly once), and when `wiring.payouts` is set (this
    /// node is the payer) the payout sweep and processor, which the admin sweep trigger and
    /// resolve then act on. A second call changes nothing.
    pub fn spawn_money(&self, wiring: crate::money::MoneyWiring) {
        let state = &self.state;
        if state.money.get().is_some() {
            return;
        }
        // Every credit posting (rewards, and the sweep's reads) passes the counting wrapper.
        let mut wiring = wiring;
        wiring.ledger = Arc::new(crate::money_metrics::CountingLedger::new(
            wiring.ledger,
            Arc::clone(&state.money_metrics),
        ));
        let rewards = crate::services::rewards::EpochRewardService::new(
            crate::services::rewards::RewardDeps {
                params: state.config.consensus,
                records: Arc::clone(&state.ports.records),
                ledger: Arc::clone(&wiring.ledger),
                budget: wiring.epoch_reward,
            },
        );
        let (runtime, loops) = crate::money::MoneyRuntime::build(state, wiring, &self.tracker);
        if state.money.set(runtime).is_err() {
            return;
        }
        self.supervise(rewards);
        if let Some((sweep, processor)) = loops {
            self.supervise(sweep);
            self.supervise(processor);
        }
    }

    /// Starts the peer service (service 10): the peer table, the signed client, and the
    /// maintenance loop (bootstrap dials, `Hello`, peer exchange, liveness), supervised like the
    /// other services. Answers the gate that must guard the `Peer` service
    /// ([`Node::serve_grpc`]). `ingest` must be the node's one ingest.
    ///
    /// Gossip reaches peers through [`Node::peers_handle`]: the table is the `PeerDirectory`
    /// and the client the `PeerTransport`.
    pub fn start_peers(
        &self,
        config: crate::peers::PeersConfig,
        ingest: SharedIngest,
    ) -> Arc<dyn lucid_api::grpc::PeerGate> {
        use crate::peers::{SharedPeers, client::PeerClient, gate::NodeGate, maintenance};
        let state = &self.state;
        let params = state.config.consensus;
        let table =
            Arc::new(SharedPeers::new(state.node_id, config.limits, Arc::clone(&state.clock)));
        for address in &config.bootstrap {
            table.queue_dial(address.clone());
        }
        let client = Arc::new(PeerClient::new(
            Arc::clone(&state.key),
            params.network,
            Arc::clone(&table),
            Arc::clone(&state.clock),
            config.connect_timeout,
            config.call_timeout,
        ));
        let gate = Arc::new(NodeGate::new(
            params,
            state.node_id,
            Arc::clone(&table),
            Arc::clone(&ingest),
            Arc::clone(&state.ports.proofs),
            Arc::clone(&state.clock),
        ));
        self.supervise(maintenance::PeerMaintenance::new(maintenance::MaintenanceDeps {
            params,
            own: state.node_id,
            peers: Arc::clone(&table),
            client: Arc::clone(&client),
            ingest,
            store: Arc::clone(&state.ports.proofs),
            every: config.exchange_every,
            version: VERSION,
        }));
        let _ = state.peers.set(PeersHandle { table, client });
        gate
    }

    /// What the session manager asks before it takes a new session: readiness, and the resource
    /// budget of `daemon.md` §10 (cpu and memory at most 90 %, at least 50 GB free disk).
    #[cfg(feature = "session")]
    pub fn session_gate(&self) -> Arc<dyn crate::sessions::SessionGate> {
        Arc::new(NodeSessionGate(Arc::clone(&self.state)))
    }

    /// Starts the session loop (completions, expiries, revenue retries) and the work-proof
    /// producer over `manager`; `ingest` must be the node's one ingest. Open sessions are
    /// closed when the node drains. A second call changes nothing.
    #[cfg(feature = "session")]
    pub fn spawn_sessions(
        &self,
        manager: Arc<crate::sessions::SessionManager>,
        ingest: SharedIngest,
        verifier: Arc<lucid_consensus::verify::Verifier>,
        outbox: Option<tokio::sync::mpsc::Sender<lucid_core::SignedMessage>>,
    ) {
        use crate::sessions::work::{WorkProofDeps, WorkProofProducer};
        let state = &self.state;
        if state.sessions.set(Arc::clone(&manager)).is_err() {
            return;
        }
        self.supervise(crate::sessions::SessionService::new(Arc::clone(&manager)));
        self.supervise(WorkProofProducer::new(WorkProofDeps {
            params: state.config.consensus,
            clock: Arc::clone(&state.clock),
            key: Arc::clone(&state.key),
            store: Arc::clone(&state.ports.proofs),
            ingest,
            verifier,
            outbox,
            sessions: manager,
        }));
    }

    /// The ingest of pool ops from peers over this node's pool op log, judging signers with
    /// `ingest` (the node's one ingest) and serialised with the node's slot applier: give it to
    /// the gossip queue (`GossipQueue::with_pool_ops`) so that pool ops travel between nodes.
    pub fn pool_op_ingest(&self, ingest: SharedIngest) -> crate::gossip::ops::PoolOpIngest {
        let state = &self.state;
        crate::gossip::ops::PoolOpIngest::new(
            state.config.consensus,
            Arc::clone(&state.ports.pools),
            ingest,
            Arc::clone(&state.clock),
            Arc::clone(&state.pool_ops.apply),
        )
    }

    /// The peer table and client, once [`Node::start_peers`] ran.
    pub fn peers_handle(&self) -> Option<&PeersHandle> {
        self.state.peers.get()
    }

    /// Runs `service` on the node's tracker under a child of its cancellation token, its ticks
    /// counted in the service metrics and its state in the service states.
    fn supervise<S: Service + 'static>(&self, service: S) {
        spawn_supervised(
            &self.tracker,
            Arc::clone(&self.state.service_states),
            service,
            Arc::clone(&self.state.clock),
            Arc::clone(&self.state.service_metrics),
            self.cancel.child_token(),
        );
    }

    /// Checks the database once now (start-up marks the node ready only after a good check).
    pub async fn check_database(&self) -> bool {
        check_database(&self.state).await
    }

    /// Marks start-up as complete: readiness becomes true.
    pub fn mark_ready(&self) {
        if !self.state.shutting_down.load(Ordering::SeqCst) {
            self.state.ready.store(true, Ordering::SeqCst);
            self.state.metrics.ready.store(1, Ordering::Relaxed);
            tracing::info!(node_id = %self.state.node_id, "node ready");
        }
    }

    /// Completes when the operator asked the node to stop over the API (`Operator.Shutdown`);
    /// readiness is already false then, and the caller drains as for SIGTERM.
    pub fn shutdown_requested(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.state.shutdown_requested.clone().cancelled_owned()
    }

    /// Stops the node: readiness false at once, services cancelled, then waits for them within
    /// the configured grace period.
    pub async fn drain(self) -> Result<(), NodeError> {
        self.state.shutting_down.store(true, Ordering::SeqCst);
        self.state.ready.store(false, Ordering::SeqCst);
        self.state.metrics.ready.store(0, Ordering::Relaxed);
        tracing::info!("shutting down");
        // Open sessions are closed (backends stopped, revenue of the active ones posted)
        // before the loops stop, within the grace period.
        #[cfg(feature = "session")]
        if let Some(sessions) = self.state.sessions.get() {
            let grace = self.state.config.shutdown_grace;
            let closed = sessions.close_all(lucid_payouts::session::EndReason::Shutdown);
            if tokio::time::timeout(grace, closed).await.is_err() {
                tracing::warn!("open sessions did not close within the grace period");
            }
        }
        self.cancel.cancel();
        self.tracker.close();
        let grace = self.state.config.shutdown_grace;
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .map_err(|_| NodeError::ForcedShutdown { grace })
    }
}

async fn check_database(state: &State) -> bool {
    match state.database.ping().await {
        Ok(()) => {
            let now = state.clock.monotonic().as_millis();
            state
                .db_ok_at
                .store(u64::try_from(now).unwrap_or(u64::MAX).saturating_add(1), Ordering::SeqCst);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "database check failed");
            false
        }
    }
}

/// Pings the database every few seconds; readiness and health follow the last good answer.
async fn database_monitor(state: Arc<State>, cancel: CancellationToken) {
    loop {
        check_database(&state).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(DB_CHECK_EVERY) => {}
        }
    }
}

/// Follows slot boundaries: sleeps until the next slot starts by the wall clock, re-reads the
/// clock on waking, and publishes the slot and epoch. Never counts slots by adding up sleeps.
async fn slot_clock(state: Arc<State>, cancel: CancellationToken) {
    let time = state.config.consensus.time;
    loop {
        let now = state.clock.wall();
        let wake_at = match time.slot_of(now) {
            Ok(slot) => {
                state
                    .metrics
                    .slot
                    .store(i64::try_from(slot.0).unwrap_or(i64::MAX), Ordering::Relaxed);
                let epoch = time.epoch_of(slot);
                state
                    .metrics
                    .epoch
                    .store(i64::try_from(epoch.0).unwrap_or(i64::MAX), Ordering::Relaxed);
                // One loop-metrics family for every loop: the slot clock counts with the services.
                let ticks = state.service_metrics.loop_metrics("slot_clock");
                ticks.ok.fetch_add(1, Ordering::Relaxed);
                ticks.last_success_ms.store(now.0, Ordering::Relaxed);
                time.slot_start(Slot(slot.0.saturating_add(1))).unwrap_or(now)
            }
            // Before genesis nothing is live; wake at genesis.
            Err(_) => time.genesis(),
        };
        // At least 1 ms, so a clock that does not move cannot spin the loop.
        let wait = u64::try_from(wake_at.0.saturating_sub(now.0)).unwrap_or(0).max(1);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

/// The node's answer to the session manager's gate.
#[cfg(feature = "session")]
struct NodeSessionGate(Arc<State>);

#[cfg(feature = "session")]
impl crate::sessions::SessionGate for NodeSessionGate {
    fn node_ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst) && !self.0.shutting_down.load(Ordering::SeqCst)
    }

    fn resources_ok(&self) -> bool {
        // Before the first sample nothing is known to be exhausted.
        self.0
            .resources
            .get()
            .and_then(ResourceHandle::latest)
            .is_none_or(|latest| latest.admits_new_sessions())
    }
}

impl State {
    /// Sessions hosted now (0 without the `session` feature or before `spawn_sessions`).
    fn sessions_active(&self) -> u64 {
        #[cfg(feature = "session")]
        if let Some(sessions) = self.sessions.get() {
            return sessions.active_sessions();
        }
        0
    }

    /// The money wiring, once started.
    pub(crate) fn money(&self) -> Option<&crate::money::MoneyRuntime> {
        self.money.get()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

struct Api {
    state: Arc<State>,
}

#[async_trait::async_trait]
impl NodeApi for Api {
    fn health(&self) -> HealthReport {
        let state = &self.state;
        let time = state.config.consensus.time;
        let slot = time.slot_of(state.clock.wall()).ok();
        let mut components =
            state.components.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let consensus = match slot {
            Some(_) => ComponentHealth {
                status: HealthStatus::Healthy,
                detail: "slot clock running".into(),
            },
            None => ComponentHealth {
                status: HealthStatus::Unhealthy,
                detail: "clock is before genesis".into(),
            },
        };
        components.insert("consensus", consensus);
        if let Some(peers) = state.peers.get() {
            let connected = peers.table.with(|table, now| table.connected_peers(now).len());
            let peers_health = if connected == 0 {
                ComponentHealth {
                    status: HealthStatus::Degraded,
                    detail: "no peer connected".into(),
                }
            } else {
                ComponentHealth {
                    status: HealthStatus::Healthy,
                    detail: format!("{connected} peers connected"),
                }
            };
            components.insert("peers", peers_health);
        }
        components.insert(
            "payouts",
            state.money.get().map_or_else(
                || ComponentHealth {
                    status: HealthStatus::Healthy,
                    detail: "money services not started".into(),
                },
                crate::money::MoneyRuntime::health,
            ),
        );
        let pools = state.pool_health.summary();
        let pools_failed = state.service_states.failed().contains(&"pool_health");
        components.insert(
            "pools",
            ComponentHealth {
                status: if pools_failed { HealthStatus::Unhealthy } else { HealthStatus::Healthy },
                detail: match pools.slot {
                    _ if pools_failed => "pool health loop failed".to_owned(),
                    None => "pool health not checked yet".to_owned(),
                    Some(slot) => format!(
                        "at slot {}: {} forming, {} active, {} degraded, {} disbanded pools; \
                         {} seats, {} degraded members; {} ops waiting for their slot",
                        slot.0,
                        pools.by_status[0],
                        pools.by_status[1],
                        pools.by_status[2],
                        pools.by_status[3],
                        pools.seats,
                        pools.degraded_members,
                        pools.pending_ops
                    ),
                },
            },
        );
        let ok_at = state.db_ok_at.load(Ordering::SeqCst);
        let now = u64::try_from(state.clock.monotonic().as_millis()).unwrap_or(u64::MAX);
        let fresh =
            ok_at != 0 && now.saturating_add(1).saturating_sub(ok_at) <= millis(DB_CHECK_FRESH);
        let backend = state.database.backend();
        let database = if fresh {
            ComponentHealth {
                status: HealthStatus::Healthy,
                detail: format!("{backend} reachable"),
            }
        } else {
            ComponentHealth {
                status: HealthStatus::Unhealthy,
                detail: format!("{backend} not reachable"),
            }
        };
        components.insert("database", database);
        let worst =
            components.values().map(|c| c.status).fold(HealthStatus::Healthy, |worst, s| {
                match (worst, s) {
                    (HealthStatus::Unhealthy, _) | (_, HealthStatus::Unhealthy) => {
                        HealthStatus::Unhealthy
                    }
                    (HealthStatus::Degraded, _) | (_, HealthStatus::Degraded) => {
                        HealthStatus::Degraded
                    }
                    _ => HealthStatus::Healthy,
                }
            });
        let ready = state.ready.load(Ordering::SeqCst)
            && slot.is_some()
            && worst != HealthStatus::Unhealthy;
        HealthReport {
            status: worst,
            ready,
            version: VERSION,
            node_id: state.node_id.to_string(),
            network: state.config.network_name.clone(),
            slot: slot.map(|s| s.0),
            epoch: slot.map(|s| time.epoch_of(s).0),
            uptime_s: state.clock.monotonic().saturating_sub(state.started).as_secs(),
            components,
        }
    }

    fn node_info(&self) -> NodeInfo {
        let state = &self.state;
        let id = state.node_id.to_string();
        NodeInfo {
            public_key: id.trim_start_matches(NodeId::PREFIX).to_owned(),
            node_id: id,
            network: state.config.network_name.clone(),
            version: VERSION,
            features: Vec::new(),
            ready: state.ready.load(Ordering::SeqCst),
            payout_address: None,
            endpoint: None,
            registration_seq: None,
        }
    }

    fn clock(&self) -> ClockInfo {
        let time = self.state.config.consensus.time;
        let slot = time.slot_of(self.state.clock.wall()).ok();
        ClockInfo {
            network: self.state.config.network_name.clone(),
            network_id: self.state.config.consensus.network.to_string(),
            genesis_ms: time.genesis().0,
            slot_ms: time.slot_ms(),
            slots_per_epoch: time.slots_per_epoch(),
            slot: slot.map(|s| s.0),
            epoch: slot.map(|s| time.epoch_of(s).0),
            slot_start_ms: slot.and_then(|s| time.slot_start(s).ok()).map(|t| t.0),
            next_slot_start_ms: slot
                .and_then(|s| time.slot_start(Slot(s.0.saturating_add(1))).ok())
                .map(|t| t.0),
        }
    }

    fn metrics(&self) -> String {
        let mut text = self.state.metrics.render(VERSION);
        text.push_str(&self.state.service_metrics.render());
        let money = &self.state.money_metrics;
        money.set_circuit_open(self.state.money().is_some_and(|m| m.circuit_open()));
        money.set_hot_wallet(self.state.money().and_then(crate::money::MoneyRuntime::hot_wallet));
        text.push_str(&money.render());
        if let Some(gossip) = self.state.gossip_metrics.get() {
            text.push_str(&gossip.render());
        }
        if let Some(peers) = self.state.peers.get() {
            text.push_str(&peers.table.render_metrics());
        }
        text
    }

    fn own_node(&self) -> Result<NodeId, Failure> {
        Ok(self.state.node_id)
    }

    fn request_shutdown(&self) -> Result<(), Failure> {
        let state = &self.state;
        // Readiness goes false at once, exactly as on SIGTERM; the binary then drains.
        state.shutting_down.store(true, Ordering::SeqCst);
        state.ready.store(false, Ordering::SeqCst);
        state.metrics.ready.store(0, Ordering::Relaxed);
        tracing::info!("shutdown requested by the operator");
        state.shutdown_requested.cancel();
        Ok(())
    }

    fn resources(&self) -> ResourcesView {
        let sessions_active = self.state.sessions_active();
        self.state
            .resources
            .get()
            .map_or_else(ResourcesView::default, |handle| resources_view(handle, sessions_active))
    }

    async fn nodes(&self, page: PageQuery) -> Result<Page<NodeSummary>, Failure> {
        operator::nodes(&self.state, page).await
    }

    async fn node(&self, node: NodeId) -> Result<NodeSummary, Failure> {
        operator::node(&self.state, node).await
    }

    async fn pools(&self, page: PageQuery) -> Result<Page<PoolView>, Failure> {
        operator::pools(&self.state, page).await
    }

    async fn pool(&self, pool: PoolId) -> Result<PoolView, Failure> {
        operator::pool(&self.state, pool).await
    }

    async fn pool_members(&self, pool: PoolId) -> Result<Vec<MemberView>, Failure> {
        operator::pool_members(&self.state, pool).await
    }

    async fn pool_capacity(&self, pool: PoolId) -> Result<CapacityView, Failure> {
        operator::pool_capacity(&self.state, pool).await
    }

    async fn create_pool(&self, request: CreatePoolRequest) -> Result<OpAccepted, Failure> {
        let max_nodes = request.max_nodes.unwrap_or(lucid_pools::MAX_NODES_PER_POOL);
        pool_ops::submit_own(&self.state, Op::Create { name: request.name, max_nodes }).await
    }

    async fn join_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure> {
        pool_ops::submit_own(&self.state, Op::Join { pool }).await
    }

    async fn leave_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure> {
        pool_ops::submit_own(&self.state, Op::Leave { pool }).await
    }

    async fn update_pool(
        &self,
        pool: PoolId,
        request: UpdatePoolRequest,
    ) -> Result<OpAccepted, Failure> {
        pool_ops::submit_own(&self.state, Op::SetMaxNodes { pool, max: request.max_nodes }).await
    }

    async fn remove_member(
        &self,
        pool: PoolId,
        member: NodeId,
        request: lucid_api::dto::RemoveMemberRequest,
    ) -> Result<OpAccepted, Failure> {
        pool_ops::submit_own(&self.state, Op::Remove { pool, member, ban: request.ban }).await
    }

    async fn disband_pool(&self, pool: PoolId) -> Result<OpAccepted, Failure> {
        pool_ops::submit_own(&self.state, Op::Disband { pool }).await
    }

    async fn submit_pool_op(
        &self,
        message: Vec<u8>,
        signature: Signature,
    ) -> Result<OpAccepted, Failure> {
        pool_ops::submit(&self.state, message, signature).await
    }

    async fn tally(&self, epoch: Epoch) -> Result<TallyView, Failure> {
        operator::tally(&self.state, epoch).await
    }

    async fn leader(&self, slot: Slot) -> Result<ScheduleView, Failure> {
        operator::leader(&self.state, slot).await
    }

    async fn balance(&self, node: NodeId) -> Result<BalanceView, Failure> {
        operator::balance(&self.state, node).await
    }

    async fn epoch_stub(&self, node: NodeId, epoch: Epoch) -> Result<EpochStubView, Failure> {
        crate::stubs::epoch_stub(&self.state, node, epoch).await
    }

    async fn payouts(
        &self,
        node: Option<NodeId>,
        query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure> {
        money_forward::payouts(&self.state, node, query).await
    }

    async fn payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        money_forward::payout(&self.state, payout_id).await
    }

    async fn payout_stats(&self) -> Result<PayoutStats, Failure> {
        money_forward::payout_stats(&self.state).await
    }

    async fn ledger(
        &self,
        node: NodeId,
        page: lucid_api::dto::PageQuery,
    ) -> Result<lucid_api::dto::LedgerPageView, Failure> {
        money_forward::ledger(&self.state, node, page).await
    }

    async fn payout_config(&self) -> Result<lucid_api::dto::PayoutConfigView, Failure> {
        Ok(money_forward::payout_config(&self.state))
    }

    async fn payer_ledger(
        &self,
        node: NodeId,
        page: lucid_api::dto::PageQuery,
    ) -> Result<lucid_api::dto::LedgerPageView, Failure> {
        money_forward::payer_ledger(&self.state, node, page).await
    }

    async fn payer_payout_stats(&self) -> Result<PayoutStats, Failure> {
        money_forward::payer_payout_stats(&self.state).await
    }

    async fn payout_stub(&self, payout_id: &str) -> Result<PayoutStubView, Failure> {
        crate::stubs::payout_stub(&self.state, payout_id).await
    }

    async fn request_withdrawal(
        &self,
        node: NodeId,
        idempotency_key: &str,
        amount: Option<MicroUsdt>,
    ) -> Result<Withdrawal, Failure> {
        money_forward::admin_withdrawal(&self.state, node, idempotency_key, amount).await
    }

    async fn cancel_payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        money_forward::admin_cancel(&self.state, payout_id).await
    }

    async fn submit_withdrawal(
        &self,
        withdrawal: lucid_core::SignedMessage,
    ) -> Result<Withdrawal, Failure> {
        money_forward::submit_withdrawal(&self.state, withdrawal).await
    }

    async fn submit_payout_cancel(
        &self,
        payout_id: &str,
        cancel: lucid_core::SignedMessage,
    ) -> Result<PayoutView, Failure> {
        money_forward::submit_cancel(&self.state, payout_id, cancel).await
    }

    async fn payer_withdrawal(
        &self,
        withdrawal: lucid_core::SignedMessage,
    ) -> Result<Withdrawal, Failure> {
        money_forward::payer_withdrawal(&self.state, withdrawal).await
    }

    async fn payer_cancel(&self, cancel: lucid_core::SignedMessage) -> Result<PayoutView, Failure> {
        money_forward::payer_cancel(&self.state, cancel).await
    }

    async fn payer_payouts(
        &self,
        node: Option<NodeId>,
        query: PayoutQuery,
    ) -> Result<Page<PayoutView>, Failure> {
        money_forward::payer_payouts(&self.state, node, query).await
    }

    async fn payer_payout(&self, payout_id: &str) -> Result<PayoutView, Failure> {
        money_forward::payer_payout(&self.state, payout_id).await
    }

    async fn trigger_sweep(&self) -> Result<lucid_api::dto::SweepStarted, Failure> {
        crate::money::trigger_sweep(&self.state)
    }

    async fn resolve_payout(
        &self,
        payout_id: &str,
        outcome: lucid_api::dto::ResolveOutcome,
    ) -> Result<PayoutView, Failure> {
        crate::money::resolve_payout(&self.state, payout_id, outcome).await
    }

    async fn identity(&self) -> Result<NodeInfo, Failure> {
        crate::peers::api::identity(&self.state, self.node_info()).await
    }

    async fn set_payout_address(&self, payout_address: &str) -> Result<NodeInfo, Failure> {
        crate::peers::api::set_payout_address(&self.state, payout_address).await?;
        self.identity().await
    }

    async fn peers(&self) -> Result<Vec<lucid_api::dto::PeerView>, Failure> {
        crate::peers::api::peers(&self.state)
    }

    async fn add_peer(&self, endpoint: &str) -> Result<NodeId, Failure> {
        crate::peers::api::add_peer(&self.state, endpoint)
    }
}

#[cfg(test)]
mod tests;

/// What `GET /api/v1/resources` shows of the resource monitor: its latest sample, and each open
/// alert since the first sample of the unbroken run at its current level.
fn resources_view(handle: &ResourceHandle, sessions_active: u64) -> ResourcesView {
    let Some(latest) = handle.latest() else {
        return ResourcesView { monitor_running: true, latest: None, alerts: Vec::new() };
    };
    let history = handle.history();
    let alerts = Resource::ALL
        .into_iter()
        .filter(|resource| latest.level(*resource) != AlertLevel::Normal)
        .map(|resource| {
            let level = latest.level(resource);
            let since = history
                .iter()
                .rev()
                .take_while(|sample| sample.level(resource) == level)
                .last()
                .map_or(latest.at, |sample| sample.at);
            ResourceAlert {
                resource: resource.as_str().to_owned(),
                level: level.as_str().to_owned(),
                since: since.0,
            }
        })
        .collect();
    let basis_points =
        |resource| u32::try_from(latest.value(resource).unwrap_or(0)).unwrap_or(u32::MAX);
    let sample = ResourceSample {
        ts: latest.at.0,
        // Percent in hundredths is basis points.
        cpu_bps: basis_points(Resource::Cpu),
        memory_bps: basis_points(Resource::Memory),
        disk_bps: basis_points(Resource::Disk),
        disk_free_bytes: latest.disk_free_bytes.unwrap_or(0).to_string(),
        // Mbps in hundredths × 10 is kbit/s.
        network_kbps: latest.value(Resource::Network).unwrap_or(0).saturating_mul(10),
        sessions_active,
    };
    ResourcesView { monitor_running: true, latest: Some(sample), alerts }
}
