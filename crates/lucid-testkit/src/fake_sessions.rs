//! Fakes of the session integrations (feature `session`): [`FakeSessionProvider`],
//! [`FakeTrustOracle`], [`FakeRdpBackend`] (hosts nothing, counts the bytes a test says were
//! relayed, and refuses a port that is already hosted) and [`FakePaymentVerifier`] (answers
//! scripted confirmations per txid). Each records what it was asked, for assertions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lucid_core::{MicroUsdt, NodeId};
use lucid_daemon::sessions::{
    RdpBackend, RdpHandle, SessionCompletion, SessionError, SessionParams, SessionProvider,
    TrustOracle, TrustScore,
};
use lucid_payouts::session::{
    EndReason, PaymentCheck, PaymentStatus, PaymentVerifier, SessionId, Txid, UserId,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A FAKE session service: ids `fake-1`, `fake-2`, …; completions are scripted with
/// [`FakeSessionProvider::complete`].
#[derive(Debug, Default)]
pub struct FakeSessionProvider {
    next: AtomicU64,
    created: Mutex<Vec<(SessionId, UserId, SessionParams)>>,
    closed: Mutex<Vec<(SessionId, EndReason)>>,
    completions: Mutex<Vec<SessionCompletion>>,
}

impl FakeSessionProvider {
    /// A provider that created nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts a completion of `id` on `node` with the revenue the service claims.
    pub fn complete(&self, id: &SessionId, node: NodeId, revenue: MicroUsdt) {
        lock(&self.completions).push(SessionCompletion { id: id.clone(), node, revenue });
    }

    /// Every session created, in order.
    pub fn created(&self) -> Vec<(SessionId, UserId, SessionParams)> {
        lock(&self.created).clone()
    }

    /// Every close it was told of, in order.
    pub fn closed(&self) -> Vec<(SessionId, EndReason)> {
        lock(&self.closed).clone()
    }
}

#[async_trait::async_trait]
impl SessionProvider for FakeSessionProvider {
    async fn create(
        &self,
        user: &UserId,
        _node: NodeId,
        params: &SessionParams,
    ) -> Result<SessionId, SessionError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let id = SessionId::parse(&format!("fake-{n}")).ok_or(SessionError::Port {
            port: "fake session provider",
            action: "naming a session",
            detail: "invalid id".to_owned(),
        })?;
        lock(&self.created).push((id.clone(), user.clone(), params.clone()));
        Ok(id)
    }

    async fn close(&self, id: &SessionId, reason: EndReason) -> Result<(), SessionError> {
        lock(&self.closed).push((id.clone(), reason));
        Ok(())
    }

    async fn completed(&self) -> Result<Vec<SessionCompletion>, SessionError> {
        Ok(std::mem::take(&mut *lock(&self.completions)))
    }
}

/// A FAKE trust oracle: a fixed score per user, a default for everyone else.
#[derive(Debug)]
pub struct FakeTrustOracle {
    default_ppm: u32,
    scores: Mutex<BTreeMap<UserId, u32>>,
}

impl FakeTrustOracle {
    /// Everyone scores `default_ppm`.
    pub fn new(default_ppm: u32) -> Self {
        FakeTrustOracle { default_ppm, scores: Mutex::new(BTreeMap::new()) }
    }

    /// `user` scores `ppm`.
    pub fn set(&self, user: &UserId, ppm: u32) {
        lock(&self.scores).insert(user.clone(), ppm);
    }
}

#[async_trait::async_trait]
impl TrustOracle for FakeTrustOracle {
    async fn score(&self, user: &UserId) -> Result<TrustScore, SessionError> {
        let ppm = lock(&self.scores).get(user).copied().unwrap_or(self.default_ppm);
        Ok(TrustScore { ppm, reasons: vec![format!("fake score {ppm}")] })
    }
}

#[derive(Debug)]
struct FakeHosted {
    port: u16,
    bytes: AtomicU64,
    running: AtomicBool,
}

/// A FAKE RDP backend: hosts nothing, counts bytes a test adds with
/// [`FakeRdpBackend::relay`], and refuses to host two sessions on one port at once.
#[derive(Debug, Default)]
pub struct FakeRdpBackend {
    hosted: Mutex<BTreeMap<SessionId, Arc<FakeHosted>>>,
    fail_spawns: AtomicBool,
    fail_stops: Arc<AtomicBool>,
}

struct FakeRdpHandle(Arc<FakeHosted>, Arc<AtomicBool>);

#[async_trait::async_trait]
impl RdpHandle for FakeRdpHandle {
    async fn stop(&self) -> Result<(), SessionError> {
        if self.1.load(Ordering::SeqCst) {
            return Err(SessionError::Port {
                port: "fake rdp",
                action: "stopping",
                detail: "scripted failure".to_owned(),
            });
        }
        self.0.running.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn bytes_transferred(&self) -> u64 {
        self.0.bytes.load(Ordering::SeqCst)
    }
}

impl FakeRdpBackend {
    /// A backend that hosts whatever it is asked to.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every following spawn fail (or succeed again).
    pub fn fail_spawns(&self, fail: bool) {
        self.fail_spawns.store(fail, Ordering::SeqCst);
    }

    /// Makes the stops of every handle fail (or succeed again).
    pub fn fail_stops(&self, fail: bool) {
        self.fail_stops.store(fail, Ordering::SeqCst);
    }

    /// Adds `bytes` relayed by the session's host.
    pub fn relay(&self, session: &SessionId, bytes: u64) {
        if let Some(hosted) = lock(&self.hosted).get(session) {
            hosted.bytes.fetch_add(bytes, Ordering::SeqCst);
        }
    }

    /// Whether the session is hosted now.
    pub fn is_running(&self, session: &SessionId) -> bool {
        lock(&self.hosted).get(session).is_some_and(|h| h.running.load(Ordering::SeqCst))
    }

    /// The ports hosted now.
    pub fn ports_in_use(&self) -> BTreeSet<u16> {
        lock(&self.hosted)
            .values()
            .filter(|h| h.running.load(Ordering::SeqCst))
            .map(|h| h.port)
            .collect()
    }

    /// How many sessions were ever hosted.
    pub fn spawned(&self) -> usize {
        lock(&self.hosted).len()
    }
}

#[async_trait::async_trait]
impl RdpBackend for FakeRdpBackend {
    async fn spawn(
        &self,
        port: u16,
        session: &SessionId,
        _user: &UserId,
    ) -> Result<Box<dyn RdpHandle>, SessionError> {
        let fail = |detail: &str| SessionError::Port {
            port: "fake rdp",
            action: "spawning",
            detail: detail.to_owned(),
        };
        if self.fail_spawns.load(Ordering::SeqCst) {
            return Err(fail("scripted failure"));
        }
        let mut hosted = lock(&self.hosted);
        if hosted.values().any(|h| h.port == port && h.running.load(Ordering::SeqCst)) {
            return Err(fail("port already hosted"));
        }
        let entry =
            Arc::new(FakeHosted { port, bytes: AtomicU64::new(0), running: AtomicBool::new(true) });
        hosted.insert(session.clone(), Arc::clone(&entry));
        Ok(Box::new(FakeRdpHandle(entry, Arc::clone(&self.fail_stops))))
    }
}

/// A FAKE payment verifier: each txid answers its script in order, the last answer repeating;
/// an unscripted txid is rejected as unknown.
#[derive(Debug, Default)]
pub struct FakePaymentVerifier {
    scripts: Mutex<BTreeMap<Txid, VecDeque<PaymentStatus>>>,
    calls: Mutex<Vec<PaymentCheck>>,
}

impl FakePaymentVerifier {
    /// A verifier that knows no transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts the answers for `txid`.
    pub fn script(&self, txid: Txid, answers: impl IntoIterator<Item = PaymentStatus>) {
        lock(&self.scripts).insert(txid, answers.into_iter().collect());
    }

    /// Scripts `txid` as confirmed with `amount`.
    pub fn confirm(&self, txid: Txid, amount: MicroUsdt) {
        self.script(txid, [PaymentStatus::Confirmed { amount, confirmations: 20 }]);
    }

    /// Every check it was asked, in order.
    pub fn calls(&self) -> Vec<PaymentCheck> {
        lock(&self.calls).clone()
    }
}

#[async_trait::async_trait]
impl PaymentVerifier for FakePaymentVerifier {
    async fn verify(&self, check: &PaymentCheck) -> Result<PaymentStatus, lucid_payouts::Error> {
        lock(&self.calls).push(check.clone());
        let mut scripts = lock(&self.scripts);
        let Some(script) = scripts.get_mut(&check.txid) else {
            return Ok(PaymentStatus::Rejected("unknown transaction".to_owned()));
        };
        let answer = if script.len() > 1 { script.pop_front() } else { script.front().cloned() };
        Ok(answer.unwrap_or(PaymentStatus::Rejected("unknown transaction".to_owned())))
    }
}
