//! Hosted sessions (feature `session`, `daemon.md` §11): the integration ports the daemon owns,
//! their `Null*` implementations, the [`SessionManager`] that runs the lifecycle of
//! `lucid_payouts::session::SessionBook` against those ports, its [`SessionService`] loop
//! (expiry, completions, revenue retries), and the [`work::WorkProofProducer`] that turns the
//! hosted and validated sessions into relay and validation work proofs.
//!
//! Ports (object-safe, `async-trait`): [`SessionProvider`] (the session service that names
//! sessions and reports their completion), [`TrustOracle`] (the user's trust score, gate
//! 500 000 ppm), [`RdpBackend`] with [`RdpHandle`] (hosting on a port; feature `rdp` selects a
//! hosting backend, without it [`NullRdpBackend`] refuses), and `PaymentVerifier` of
//! `lucid-payouts`. Fakes of all of them live in `lucid-testkit` (feature `session`).
//! Selection is by feature and configuration: the binary wires what its features and
//! configuration name, and a `Null*` port that says [`SessionError::FeatureDisabled`] otherwise,
//! never whatever happens to be available.
//!
//! This module does NOT take a price from a client (the price is the server's
//! `SessionRules::price`), never lets one txid pay twice (the `SpentTxids` registry is claimed
//! before the book accepts a payment), and posts a session's revenue only through
//! `Posting::session_revenue`, idempotent by session id.
//!
//! # Invariants
//! - Every lifecycle change goes through the book under one lock, so two requests never see the
//!   same free port or the same unspent txid.
//! - A session's backend is stopped before its port is freed and before its revenue is posted.
//! - A revenue posting that failed to reach the ledger is retried by the service until it
//!   lands; the ledger makes the retry a no-op if it had landed.

pub mod work;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lucid_core::{Clock, ErrorKind, HasKind, MicroUsdt, NodeId, UnixMillis};
use lucid_payouts::Posting;
use lucid_payouts::session::{
    Admission, EndReason, PaymentCheck, PaymentStatus, PaymentVerifier, Session, SessionBook,
    SessionEffect, SessionId, SessionRefusal, SessionRules, SessionState, SpentTxids, Txid,
    TxidClaim, UserId,
};
use lucid_payouts::store::LedgerStore;

use crate::services::ServiceError;
use crate::services::runner::Service;

/// Longest payer address a client may give (TRON addresses are 34 characters).
pub const MAX_PAYER_ADDRESS: usize = 64;

/// Why a session request failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The port's feature is not built in, or no implementation is configured.
    #[error("{what} needs the `{feature}` feature")]
    FeatureDisabled {
        /// The feature.
        feature: &'static str,
        /// What was attempted.
        what: &'static str,
    },
    /// The lifecycle refused the request.
    #[error(transparent)]
    Refused(#[from] SessionRefusal),
    /// The payment is not confirmed yet; ask again later.
    #[error("payment {txid} is not confirmed yet")]
    PaymentPending {
        /// The transaction.
        txid: Txid,
    },
    /// The payment can never pay for the session.
    #[error("payment {txid} rejected: {reason}")]
    PaymentRejected {
        /// The transaction.
        txid: Txid,
        /// Why, as the verifier said.
        reason: String,
    },
    /// A request field is malformed.
    #[error("{field} is invalid: {rule}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// The rule.
        rule: &'static str,
    },
    /// An integration port failed (may be retried).
    #[error("{port} failed while {action}: {detail}")]
    Port {
        /// The port.
        port: &'static str,
        /// What was being done.
        action: &'static str,
        /// What it reported (no secrets).
        detail: String,
    },
    /// The ledger or the spent-txid registry failed.
    #[error("payouts failed while {action}")]
    Payouts {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: lucid_payouts::Error,
    },
}

impl HasKind for SessionError {
    fn kind(&self) -> ErrorKind {
        match self {
            SessionError::FeatureDisabled { .. } => ErrorKind::FeatureDisabled,
            SessionError::Refused(refusal) => match refusal {
                SessionRefusal::UnknownSession { .. } => ErrorKind::NotFound,
                SessionRefusal::NodeNotReady => ErrorKind::ShuttingDown,
                SessionRefusal::TrustTooLow { .. } => ErrorKind::Forbidden,
                _ => ErrorKind::Conflict,
            },
            SessionError::PaymentPending { .. } => ErrorKind::Conflict,
            SessionError::PaymentRejected { .. } | SessionError::InvalidInput { .. } => {
                ErrorKind::InvalidInput
            }
            SessionError::Port { .. } => ErrorKind::TransientNetwork,
            SessionError::Payouts { source, .. } => source.kind(),
        }
    }
}

fn payouts(action: &'static str) -> impl FnOnce(lucid_payouts::Error) -> SessionError {
    move |source| match source {
        lucid_payouts::Error::FeatureDisabled { feature, what } => {
            SessionError::FeatureDisabled { feature, what }
        }
        source => SessionError::Payouts { action, source },
    }
}

/// What a client may say about a new session: who pays. There is deliberately no price here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// The address the payment will come from.
    pub payer_address: String,
}

impl SessionParams {
    fn validate(&self) -> Result<(), SessionError> {
        let address = &self.payer_address;
        if address.is_empty()
            || address.len() > MAX_PAYER_ADDRESS
            || !address.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(SessionError::InvalidInput {
                field: "payer_address",
                rule: "1..=64 ASCII letters and digits",
            });
        }
        Ok(())
    }
}

/// A session the session service reports as completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCompletion {
    /// The session.
    pub id: SessionId,
    /// The node that hosted it.
    pub node: NodeId,
    /// The revenue the service computed. The node posts its own configured price and logs a
    /// disagreement; a figure from elsewhere never becomes a ledger amount.
    pub revenue: MicroUsdt,
}

/// The session service: names sessions, hears that they closed, reports completions.
#[async_trait::async_trait]
pub trait SessionProvider: Send + Sync {
    /// Registers a new session of `user` on `node`; answers its id.
    async fn create(
        &self,
        user: &UserId,
        node: NodeId,
        params: &SessionParams,
    ) -> Result<SessionId, SessionError>;
    /// Tells the service that a session ended.
    async fn close(&self, id: &SessionId, reason: EndReason) -> Result<(), SessionError>;
    /// The completions reported since the previous call (the stream of `daemon.md` §11, polled).
    async fn completed(&self) -> Result<Vec<SessionCompletion>, SessionError>;
}

/// A user's trust score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustScore {
    /// Parts per million; sessions need at least 500 000.
    pub ppm: u32,
    /// Why the score is what it is (for logs and refusals).
    pub reasons: Vec<String>,
}

/// Scores users.
#[async_trait::async_trait]
pub trait TrustOracle: Send + Sync {
    /// The trust score of `user`.
    async fn score(&self, user: &UserId) -> Result<TrustScore, SessionError>;
}

/// A hosted RDP session.
#[async_trait::async_trait]
pub trait RdpHandle: Send + Sync {
    /// Stops hosting; the port is free once this returns `Ok`.
    async fn stop(&self) -> Result<(), SessionError>;
    /// Bytes relayed so far, both directions (monotone).
    fn bytes_transferred(&self) -> u64;
}

/// Hosts RDP sessions on ports.
#[async_trait::async_trait]
pub trait RdpBackend: Send + Sync {
    /// Starts hosting `session` of `user` on `port`.
    async fn spawn(
        &self,
        port: u16,
        session: &SessionId,
        user: &UserId,
    ) -> Result<Box<dyn RdpHandle>, SessionError>;
}

/// The session service of a node without one: [`SessionError::FeatureDisabled`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSessionProvider;

#[async_trait::async_trait]
impl SessionProvider for NullSessionProvider {
    async fn create(
        &self,
        _user: &UserId,
        _node: NodeId,
        _params: &SessionParams,
    ) -> Result<SessionId, SessionError> {
        Err(SessionError::FeatureDisabled { feature: "session", what: "creating a session" })
    }
    async fn close(&self, _id: &SessionId, _reason: EndReason) -> Result<(), SessionError> {
        Err(SessionError::FeatureDisabled { feature: "session", what: "closing a session" })
    }
    async fn completed(&self) -> Result<Vec<SessionCompletion>, SessionError> {
        // Nothing can complete where nothing can be created.
        Ok(Vec::new())
    }
}

/// The trust oracle of a node without one: [`SessionError::FeatureDisabled`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NullTrustOracle;

#[async_trait::async_trait]
impl TrustOracle for NullTrustOracle {
    async fn score(&self, _user: &UserId) -> Result<TrustScore, SessionError> {
        Err(SessionError::FeatureDisabled { feature: "session", what: "scoring a user" })
    }
}

/// The RDP backend of a node without one: [`SessionError::FeatureDisabled`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NullRdpBackend;

#[async_trait::async_trait]
impl RdpBackend for NullRdpBackend {
    async fn spawn(
        &self,
        _port: u16,
        _session: &SessionId,
        _user: &UserId,
    ) -> Result<Box<dyn RdpHandle>, SessionError> {
        Err(SessionError::FeatureDisabled { feature: "rdp", what: "hosting an RDP session" })
    }
}

/// What the manager works with.
pub struct SessionDeps {
    /// The server's rules and price (`session.*`, `rdp.port_range`).
    pub rules: SessionRules,
    /// This node (hosts the sessions, earns their revenue).
    pub node: NodeId,
    /// The address payments must go to.
    pub pay_to: String,
    /// The session service.
    pub provider: Arc<dyn SessionProvider>,
    /// The trust oracle.
    pub trust: Arc<dyn TrustOracle>,
    /// The hosting backend.
    pub rdp: Arc<dyn RdpBackend>,
    /// The payment verifier.
    pub payments: Arc<dyn PaymentVerifier>,
    /// The spent-txid registry.
    pub spent: Arc<dyn SpentTxids>,
    /// The ledger the revenue is posted to.
    pub ledger: Arc<dyn LedgerStore>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Whether the node may take new sessions now (ready, and resources allow it).
    pub gate: Arc<dyn SessionGate>,
}

/// What the node says about taking new sessions.
pub trait SessionGate: Send + Sync {
    /// The node is ready.
    fn node_ready(&self) -> bool;
    /// The resource monitor allows new sessions (cpu and memory ≤ 90 %, ≥ 50 GB free disk).
    fn resources_ok(&self) -> bool;
}

/// A view of one session for callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub id: SessionId,
    /// Where it is.
    pub state: SessionState,
    /// Its port.
    pub port: u16,
    /// The price to pay (the server's).
    pub price: MicroUsdt,
    /// Where to pay.
    pub pay_to: String,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
}

/// Activity since the previous work snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkSnapshot {
    /// Bytes relayed by hosted sessions.
    pub bytes: u64,
    /// Sessions that were hosted (active) at some point of the period.
    pub sessions_relayed: u32,
    /// Payments validated (sessions activated).
    pub validated_sessions: u32,
}

impl WorkSnapshot {
    /// Nothing happened.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.sessions_relayed == 0 && self.validated_sessions == 0
    }
}

#[derive(Default)]
struct WorkMeter {
    /// Bytes of each running handle already counted.
    counted: BTreeMap<SessionId, u64>,
    /// Bytes of stopped handles not yet in a snapshot.
    bytes: u64,
    /// Sessions hosted during the period.
    relayed: std::collections::BTreeSet<SessionId>,
    validated: u32,
}

struct Inner {
    book: SessionBook,
    handles: BTreeMap<SessionId, Box<dyn RdpHandle>>,
    payers: BTreeMap<SessionId, String>,
    unposted: Vec<Posting>,
    work: WorkMeter,
}

/// Runs the session lifecycle over the ports.
pub struct SessionManager {
    deps: SessionDeps,
    inner: tokio::sync::Mutex<Inner>,
    active: AtomicU64,
}

impl SessionManager {
    /// A manager with no session; the rules must be valid.
    pub fn new(deps: SessionDeps) -> Result<Self, SessionError> {
        let book = SessionBook::new(deps.rules).map_err(payouts("validating the session rules"))?;
        Ok(SessionManager {
            deps,
            inner: tokio::sync::Mutex::new(Inner {
                book,
                handles: BTreeMap::new(),
                payers: BTreeMap::new(),
                unposted: Vec::new(),
                work: WorkMeter::default(),
            }),
            active: AtomicU64::new(0),
        })
    }

    /// Sessions active now (the `sessions_active` of the resource sample).
    pub fn active_sessions(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    fn view(&self, session: &Session) -> SessionView {
        SessionView {
            id: session.id.clone(),
            state: session.state,
            port: session.port,
            price: session.price,
            pay_to: self.deps.pay_to.clone(),
            end_reason: session.end_reason,
        }
    }

    fn publish(&self, inner: &Inner) {
        let active = u64::try_from(inner.book.active()).unwrap_or(u64::MAX);
        self.active.store(active, Ordering::Relaxed);
    }

    /// One session.
    pub async fn session(&self, id: &SessionId) -> Option<SessionView> {
        let inner = self.inner.lock().await;
        inner.book.get(id).map(|s| self.view(s))
    }

    /// Creates a pending session for `user`: the node must be ready with resources to spare, the
    /// user trusted, a slot and a port free. The price is the server's.
    pub async fn create(
        &self,
        user: UserId,
        params: SessionParams,
    ) -> Result<SessionView, SessionError> {
        params.validate()?;
        let gate = &self.deps.gate;
        // The cheap local refusals first, so an unready node asks nobody.
        if !gate.node_ready() {
            return Err(SessionRefusal::NodeNotReady.into());
        }
        let trust = self.deps.trust.score(&user).await?;
        let admission = Admission {
            node_ready: gate.node_ready(),
            resources_ok: gate.resources_ok(),
            trust_ppm: trust.ppm,
        };
        let mut inner = self.inner.lock().await;
        if let Err(refusal) = inner.book.admit(admission) {
            tracing::info!(%user, %refusal, reasons = ?trust.reasons, "session refused");
            return Err(refusal.into());
        }
        let id = self.deps.provider.create(&user, self.deps.node, &params).await?;
        let now = self.deps.clock.wall();
        let session = inner.book.create(now, id.clone(), user, self.deps.node, admission)?;
        let view = self.view(session);
        inner.payers.insert(id, params.payer_address);
        tracing::info!(session = %view.id, port = view.port, "session created, waiting for payment");
        Ok(view)
    }

    /// Checks the payment `txid` of a pending session: confirmed for at least the price and not
    /// spent before ⇒ the session is active and hosted.
    pub async fn confirm_payment(
        &self,
        id: &SessionId,
        txid: Txid,
    ) -> Result<SessionView, SessionError> {
        let mut inner = self.inner.lock().await;
        let session =
            inner.book.get(id).ok_or_else(|| SessionRefusal::UnknownSession { id: id.clone() })?;
        if session.state != SessionState::PendingPayment {
            return Err(SessionRefusal::WrongState { id: id.clone(), state: session.state }.into());
        }
        if let Some(by) = inner.book.spent_by(&txid) {
            return Err(SessionRefusal::TxidAlreadyUsed { txid, by: by.clone() }.into());
        }
        let check = PaymentCheck {
            txid,
            from: inner.payers.get(id).cloned().unwrap_or_default(),
            to: self.deps.pay_to.clone(),
            min: session.price,
        };
        let amount = match self
            .deps
            .payments
            .verify(&check)
            .await
            .map_err(payouts("verifying a payment"))?
        {
            PaymentStatus::Confirmed { amount, .. } => amount,
            PaymentStatus::Pending => return Err(SessionError::PaymentPending { txid }),
            PaymentStatus::Rejected(reason) => {
                return Err(SessionError::PaymentRejected { txid, reason });
            }
        };
        if amount < check.min {
            return Err(SessionRefusal::Underpaid { price: check.min, paid: amount }.into());
        }
        let now = self.deps.clock.wall();
        match self.deps.spent.claim(&txid, id, now).await.map_err(payouts("claiming a txid"))? {
            TxidClaim::Claimed => {}
            TxidClaim::SpentBy(by) => {
                tracing::warn!(session = %id, %txid, spent_by = %by, "payment replay refused");
                return Err(SessionRefusal::TxidAlreadyUsed { txid, by }.into());
            }
        }
        let start = inner.book.payment_confirmed(now, id, txid, amount)?;
        inner.work.validated = inner.work.validated.saturating_add(1);
        self.apply(&mut inner, vec![start]).await;
        self.publish(&inner);
        let view = inner.book.get(id).map(|s| self.view(s));
        view.ok_or_else(|| SessionRefusal::UnknownSession { id: id.clone() }.into())
    }

    /// Ends a session (pending: at once; active: its backend is stopped, then its revenue posted).
    pub async fn close(
        &self,
        id: &SessionId,
        reason: EndReason,
    ) -> Result<SessionView, SessionError> {
        let mut inner = self.inner.lock().await;
        let now = self.deps.clock.wall();
        if let Some(effect) = inner.book.close(now, id, reason)? {
            self.apply(&mut inner, vec![effect]).await;
        }
        self.publish(&inner);
        let view = inner.book.get(id).map(|s| self.view(s));
        view.ok_or_else(|| SessionRefusal::UnknownSession { id: id.clone() }.into())
    }

    /// Ends every open session (shutdown).
    pub async fn close_all(&self, reason: EndReason) {
        let mut inner = self.inner.lock().await;
        let now = self.deps.clock.wall();
        let open: Vec<SessionId> = inner
            .book
            .sessions()
            .filter(|s| matches!(s.state, SessionState::PendingPayment | SessionState::Active))
            .map(|s| s.id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in open {
            if let Ok(Some(effect)) = inner.book.close(now, &id, reason) {
                effects.push(effect);
            }
        }
        self.apply(&mut inner, effects).await;
        self.publish(&inner);
    }

    /// The periodic work: completions reported by the session service, expiries, stops that
    /// failed before, and revenue postings that did not reach the ledger.
    pub async fn tick(&self, now: UnixMillis) -> Result<(), SessionError> {
        let completed = self.deps.provider.completed().await;
        let mut inner = self.inner.lock().await;
        let mut effects = Vec::new();
        match completed {
            Ok(completions) => {
                for completion in completions {
                    if let Some(session) = inner.book.get(&completion.id)
                        && session.price != completion.revenue
                    {
                        tracing::warn!(session = %completion.id, reported = %completion.revenue, price = %session.price, "session service reports another revenue; the configured price is posted");
                    }
                    match inner.book.close(now, &completion.id, EndReason::Closed) {
                        Ok(Some(effect)) => effects.push(effect),
                        Ok(None) => {}
                        Err(refusal) => {
                            tracing::warn!(session = %completion.id, %refusal, "completion of an unknown session ignored");
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "session service completions unavailable"),
        }
        effects.extend(inner.book.expire(now));
        // Terminating sessions whose stop failed earlier are stopped again.
        let stuck: Vec<SessionId> = inner
            .book
            .sessions()
            .filter(|s| s.state == SessionState::Terminating)
            .map(|s| s.id.clone())
            .filter(|id| {
                !effects.iter().any(|e| matches!(e, SessionEffect::Stop { id: i, .. } if i == id))
            })
            .collect();
        for id in stuck {
            effects.push(SessionEffect::Stop { id, reason: EndReason::Closed });
        }
        self.apply(&mut inner, effects).await;
        let unposted = std::mem::take(&mut inner.unposted);
        let mut failed = None;
        for posting in unposted {
            if let Err(error) = self.deps.ledger.apply_posting(&posting, now).await {
                inner.unposted.push(posting);
                failed = Some(error);
            }
        }
        self.publish(&inner);
        match failed {
            Some(source) => {
                Err(SessionError::Payouts { action: "posting session revenue", source })
            }
            None => Ok(()),
        }
    }

    /// The earliest instant at which a session expires.
    pub async fn next_expiry(&self) -> Option<UnixMillis> {
        self.inner.lock().await.book.next_expiry()
    }

    /// Takes the activity since the previous snapshot (and starts a new period).
    pub async fn take_work(&self) -> WorkSnapshot {
        let mut inner = self.inner.lock().await;
        let Inner { handles, work, book, .. } = &mut *inner;
        let mut bytes = std::mem::take(&mut work.bytes);
        for (id, handle) in handles.iter() {
            let now = handle.bytes_transferred();
            let counted = work.counted.entry(id.clone()).or_insert(0);
            bytes = bytes.saturating_add(now.saturating_sub(*counted));
            *counted = now.max(*counted);
        }
        let relayed = u32::try_from(work.relayed.len()).unwrap_or(u32::MAX);
        // The next period starts with the sessions still hosted.
        work.relayed = book
            .sessions()
            .filter(|s| s.state == SessionState::Active)
            .map(|s| s.id.clone())
            .collect();
        let validated = std::mem::take(&mut work.validated);
        WorkSnapshot { bytes, sessions_relayed: relayed, validated_sessions: validated }
    }

    /// Puts back a snapshot that could not be turned into proofs (added to the next one).
    pub async fn give_back(&self, snapshot: WorkSnapshot) {
        let mut inner = self.inner.lock().await;
        let work = &mut inner.work;
        work.bytes = work.bytes.saturating_add(snapshot.bytes);
        work.validated = work.validated.saturating_add(snapshot.validated_sessions);
        // Sessions cannot be put back by id; the count is a lower bound next time.
    }

    async fn apply(&self, inner: &mut Inner, effects: Vec<SessionEffect>) {
        let now = self.deps.clock.wall();
        let mut queue: std::collections::VecDeque<SessionEffect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            match effect {
                SessionEffect::Start { id, port, user } => {
                    match self.deps.rdp.spawn(port, &id, &user).await {
                        Ok(handle) => {
                            inner.work.counted.insert(id.clone(), 0);
                            inner.work.relayed.insert(id.clone());
                            inner.handles.insert(id.clone(), handle);
                            tracing::info!(session = %id, port, "session active");
                        }
                        Err(error) => {
                            tracing::warn!(session = %id, %error, "hosting backend failed; session ends");
                            if let Ok(Some(stop)) =
                                inner.book.close(now, &id, EndReason::BackendFailed)
                            {
                                queue.push_back(stop);
                            }
                        }
                    }
                }
                SessionEffect::Stop { id, reason } => {
                    if let Some(handle) = inner.handles.get(&id) {
                        if let Err(error) = handle.stop().await {
                            tracing::warn!(session = %id, %error, "stopping the backend failed; retried next tick");
                            continue;
                        }
                        let total = handle.bytes_transferred();
                        let counted = inner.work.counted.remove(&id).unwrap_or(0);
                        inner.work.bytes =
                            inner.work.bytes.saturating_add(total.saturating_sub(counted));
                        inner.handles.remove(&id);
                    }
                    self.tell_provider(&id, reason).await;
                    match inner.book.stopped(&id) {
                        Ok(Some(next)) => queue.push_back(next),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::error!(session = %id, %error, "revenue posting could not be built")
                        }
                    }
                }
                SessionEffect::Ended { id, reason } => {
                    inner.payers.remove(&id);
                    self.tell_provider(&id, reason).await;
                    tracing::info!(session = %id, %reason, "session ended before it was active");
                }
                SessionEffect::PostRevenue { id, posting } => {
                    inner.payers.remove(&id);
                    match self.deps.ledger.apply_posting(&posting, now).await {
                        Ok(_) => tracing::info!(session = %id, "session revenue posted"),
                        Err(error) => {
                            tracing::warn!(session = %id, %error, "posting session revenue failed; retried");
                            inner.unposted.push(posting);
                        }
                    }
                }
            }
        }
    }

    async fn tell_provider(&self, id: &SessionId, reason: EndReason) {
        if let Err(error) = self.deps.provider.close(id, reason).await {
            tracing::debug!(session = %id, %error, "session service not told of the end");
        }
    }
}

/// How often the session service looks for completions and expiries at most.
pub const SESSION_POLL_MS: i64 = 1_000;

/// The session loop: completions, expiries, retries; due every second or at the next expiry.
pub struct SessionService {
    manager: Arc<SessionManager>,
}

impl SessionService {
    /// The loop over `manager`.
    pub fn new(manager: Arc<SessionManager>) -> Self {
        SessionService { manager }
    }
}

#[async_trait::async_trait]
impl Service for SessionService {
    fn name(&self) -> &'static str {
        "sessions"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        after.saturating_add_ms(SESSION_POLL_MS)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        self.manager.tick(now).await.map_err(|error| match error {
            SessionError::Payouts { action, source } => {
                ServiceError::Payouts { service: "sessions", action, source }
            }
            other => ServiceError::Blocking { service: "sessions", detail: other.to_string() },
        })
    }
}
