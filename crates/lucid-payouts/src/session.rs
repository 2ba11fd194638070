//! Hosted sessions (feature `session`): the lifecycle state machine, the payment and spent-txid
//! ports, and the revenue posting of a completed session (`daemon.md` §11, `pools-payouts.md`
//! §3.2).
//!
//! A session goes `pending_payment → active → terminating → terminated`:
//! - **Creation** needs the node ready, a resource budget that allows new sessions, fewer open
//!   sessions than `session.max_concurrent`, a trust score of at least [`TRUST_GATE_PPM`], and a
//!   free port of `rdp.port_range` (the lowest free one is taken).
//! - **Payment**: one confirmed payment of at least the session's price moves it to `active`.
//!   The price is the server's configured price, copied into the session when it is created;
//!   nothing a client sends can change it. One txid pays for one session only.
//! - **Expiry**: a pending session ends after `session.pending_timeout` (its port is freed);
//!   an active one is stopped after `session.max_duration`.
//! - **Completion**: a session that was active posts its revenue once, `session:{id}`
//!   ([`Posting::session_revenue`]: 95 % to the node, 5 % commission), when its RDP backend has
//!   stopped.
//!
//! [`SessionBook`] is synchronous and does no I/O: time comes in as an argument, and what must
//! happen in the world (start or stop an RDP backend, post revenue) goes out as
//! [`SessionEffect`]s. The daemon runs the book behind its session service.
//!
//! # Invariants
//! - A port is held by at most one session that is not terminated; it is freed only when the
//!   session is terminated (after its backend stopped).
//! - A txid activates at most one session: the book refuses a txid of any session it holds, and
//!   the persistent [`SpentTxids`] registry, which the daemon claims before the book, refuses every
//!   txid ever spent, across restarts (the book forgets the oldest terminated sessions and their
//!   txids after [`KEEP_TERMINATED`], so that it stays bounded).
//! - A session's revenue effect is emitted at most once, only for a session that was active (and
//!   whose backend did not fail), and always equals the configured price at its creation.
//! - No float: prices and amounts are [`MicroUsdt`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use lucid_core::{MicroUsdt, NodeId, UnixMillis};

use crate::error::Error;
use crate::ledger::Posting;

/// A session needs a trust score of at least this many parts per million (0.5).
pub const TRUST_GATE_PPM: u32 = 500_000;
/// Longest session id and user id.
pub const MAX_ID_LEN: usize = 64;
/// Most sessions open at once that a configuration may allow.
pub const MAX_CONCURRENT_LIMIT: u32 = 10_000;

fn valid_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_ID_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A session id: 1..=64 characters of `[A-Za-z0-9_-]` (it becomes part of a posting key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Parses an id; `None` if it breaks the character or length rule.
    pub fn parse(text: &str) -> Option<Self> {
        valid_id(text).then(|| SessionId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user of the session service: 1..=64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl UserId {
    /// Parses a user id; `None` if it breaks the character or length rule.
    pub fn parse(text: &str) -> Option<Self> {
        valid_id(text).then(|| UserId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A TRON transaction id: 32 bytes, written as 64 hex digits (either case on input, lower case
/// on output).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Txid(pub [u8; 32]);

impl Txid {
    /// Parses 64 hex digits; `None` otherwise.
    pub fn parse_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let digit = |b: u8| -> Option<u8> {
            match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                b'A'..=b'F' => Some(b - b'A' + 10),
                _ => None,
            }
        };
        let mut out = [0u8; 32];
        for (index, pair) in bytes.chunks_exact(2).enumerate() {
            out[index] = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Txid(out))
    }
}

impl fmt::Display for Txid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Txid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Txid({self})")
    }
}

/// An inclusive range of ports for RDP sessions (`rdp.port_range`, default `3389-4000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The default range of `daemon.md` §7.
    pub const DEFAULT: PortRange = PortRange { first: 3389, last: 4000 };

    /// A range `first..=last`; `None` if empty or if it starts at port 0.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first > 0 && first <= last).then_some(PortRange { first, last })
    }

    /// Parses `FIRST-LAST` (both decimal ports, `FIRST ≤ LAST`, no port 0).
    pub fn parse(text: &str) -> Option<Self> {
        let (first, last) = text.split_once('-')?;
        let number = |part: &str| -> Option<u16> {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        PortRange::new(number(first)?, number(last)?)
    }

    /// The first port.
    pub fn first(&self) -> u16 {
        self.first
    }

    /// The last port (inclusive).
    pub fn last(&self) -> u16 {
        self.last
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Never true: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The server's session rules, from configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRules {
    /// `session.max_concurrent`: sessions that are not terminated, at most.
    pub max_concurrent: u32,
    /// `session.pending_timeout` in milliseconds (600 s).
    pub pending_timeout_ms: u64,
    /// `session.max_duration` in milliseconds (7 200 s).
    pub max_duration_ms: u64,
    /// `rdp.port_range`.
    pub ports: PortRange,
    /// The price of one session, set by the server (never by a client).
    pub price: MicroUsdt,
}

impl SessionRules {
    /// The defaults of `daemon.md` §7 with the given price.
    pub fn defaults(price: MicroUsdt) -> Self {
        SessionRules {
            max_concurrent: 10,
            pending_timeout_ms: 600_000,
            max_duration_ms: 7_200_000,
            ports: PortRange::DEFAULT,
            price,
        }
    }

    /// Checks every rule; the error names the configuration key.
    pub fn validate(&self) -> Result<(), Error> {
        let bad =
            |key: &'static str, rule: &'static str| Err(Error::InvalidSessionRule { key, rule });
        if self.max_concurrent == 0 || self.max_concurrent > MAX_CONCURRENT_LIMIT {
            return bad("session.max_concurrent", "must lie in 1..=10000");
        }
        if !(1_000..=86_400_000).contains(&self.pending_timeout_ms) {
            return bad("session.pending_timeout", "must lie in 1s..=24h");
        }
        if !(1_000..=604_800_000).contains(&self.max_duration_ms) {
            return bad("session.max_duration", "must lie in 1s..=7d");
        }
        if self.price.0 == 0 || self.price.to_signed().is_err() {
            return bad("session.price_usdt", "must be more than 0 and fit the ledger");
        }
        Ok(())
    }
}

/// Where a session is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionState {
    /// Waiting for its payment; holds its port.
    PendingPayment,
    /// Paid and hosted.
    Active,
    /// Asked to stop; its backend is being stopped and it still holds its port.
    Terminating,
    /// Over; its port is free.
    Terminated,
}

impl SessionState {
    /// The API name (`pending_payment`, `active`, `terminating`, `terminated`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::PendingPayment => "pending_payment",
            SessionState::Active => "active",
            SessionState::Terminating => "terminating",
            SessionState::Terminated => "terminated",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndReason {
    /// No confirmed payment within `session.pending_timeout`.
    PaymentTimeout,
    /// The payment was rejected by the verifier.
    PaymentRejected,
    /// Active for `session.max_duration`.
    MaxDuration,
    /// Closed by the user or the session service.
    Closed,
    /// The RDP backend could not be started or failed.
    BackendFailed,
    /// The node is shutting down.
    Shutdown,
}

impl EndReason {
    /// The API and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::PaymentTimeout => "payment_timeout",
            EndReason::PaymentRejected => "payment_rejected",
            EndReason::MaxDuration => "max_duration",
            EndReason::Closed => "closed",
            EndReason::BackendFailed => "backend_failed",
            EndReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One session as the book holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The id the session service gave it.
    pub id: SessionId,
    /// The user it is hosted for.
    pub user: UserId,
    /// The node that hosts it (and earns its revenue).
    pub node: NodeId,
    /// Its port from `rdp.port_range`.
    pub port: u16,
    /// The server's price when it was created.
    pub price: MicroUsdt,
    /// Where it is.
    pub state: SessionState,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When its payment was confirmed.
    pub activated_at: Option<UnixMillis>,
    /// When it was asked to end.
    pub ended_at: Option<UnixMillis>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// The payment that activated it.
    pub txid: Option<Txid>,
    /// Whether its revenue effect was emitted.
    pub revenue_emitted: bool,
}

/// Why the book refused a request. Each is the caller's or the situation's doing, never a bug.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionRefusal {
    /// The node is not ready (starting, shutting down, or unhealthy).
    #[error("the node is not ready")]
    NodeNotReady,
    /// The resource monitor reports cpu or memory above 90 % or too little free disk.
    #[error("the node's resources are exhausted")]
    ResourcesExhausted,
    /// The user's trust score is below the gate.
    #[error("trust score {ppm} ppm is below the gate of 500000 ppm")]
    TrustTooLow {
        /// The score.
        ppm: u32,
    },
    /// `session.max_concurrent` sessions are open.
    #[error("{max} sessions are open, the maximum")]
    AtCapacity {
        /// The limit.
        max: u32,
    },
    /// Every port of `rdp.port_range` is held.
    #[error("no free port in {range}")]
    NoFreePort {
        /// The range.
        range: PortRange,
    },
    /// A session with this id exists.
    #[error("session {id} exists")]
    DuplicateSession {
        /// The id.
        id: SessionId,
    },
    /// No session has this id.
    #[error("session {id} not found")]
    UnknownSession {
        /// The id.
        id: SessionId,
    },
    /// The session is in a state that does not allow the request.
    #[error("session {id} is {state}")]
    WrongState {
        /// The id.
        id: SessionId,
        /// Its state.
        state: SessionState,
    },
    /// The txid already paid for a session.
    #[error("transaction {txid} already paid for session {by}")]
    TxidAlreadyUsed {
        /// The txid.
        txid: Txid,
        /// The session it paid for.
        by: SessionId,
    },
    /// The confirmed amount is below the session's price.
    #[error("paid {paid} for a price of {price}")]
    Underpaid {
        /// The price.
        price: MicroUsdt,
        /// What was paid.
        paid: MicroUsdt,
    },
}

/// What must happen in the world after a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEffect {
    /// Start hosting the session on its port (it became active).
    Start {
        /// The session.
        id: SessionId,
        /// Its port.
        port: u16,
        /// Its user.
        user: UserId,
    },
    /// Stop the session's backend (it became terminating); report back with
    /// [`SessionBook::stopped`].
    Stop {
        /// The session.
        id: SessionId,
        /// Why.
        reason: EndReason,
    },
    /// The session ended without ever being active (its port is already free).
    Ended {
        /// The session.
        id: SessionId,
        /// Why.
        reason: EndReason,
    },
    /// Post the session's revenue (emitted once per session).
    PostRevenue {
        /// The session.
        id: SessionId,
        /// `session:{id}`.
        posting: Posting,
    },
}

/// What a creation needs besides the ids: the checks the book cannot make itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The node is ready.
    pub node_ready: bool,
    /// The resource monitor allows new sessions.
    pub resources_ok: bool,
    /// The user's trust score.
    pub trust_ppm: u32,
}

/// The node's sessions and the rules they follow.
#[derive(Clone, Debug)]
pub struct SessionBook {
    rules: SessionRules,
    sessions: BTreeMap<SessionId, Session>,
    ports_held: BTreeMap<u16, SessionId>,
    spent: BTreeMap<Txid, SessionId>,
    /// Terminated sessions whose revenue is settled, oldest first, so the map stays bounded.
    finished: std::collections::VecDeque<SessionId>,
}

/// How many terminated sessions the book keeps for queries before it forgets the oldest.
pub const KEEP_TERMINATED: usize = 1_000;

impl SessionBook {
    /// An empty book; the rules must be valid.
    pub fn new(rules: SessionRules) -> Result<Self, Error> {
        rules.validate()?;
        Ok(SessionBook {
            rules,
            sessions: BTreeMap::new(),
            ports_held: BTreeMap::new(),
            spent: BTreeMap::new(),
            finished: std::collections::VecDeque::new(),
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &SessionRules {
        &self.rules
    }

    /// One session.
    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Every session the book still holds, by id.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Sessions that are not terminated (they count against `session.max_concurrent`).
    pub fn open(&self) -> usize {
        self.ports_held.len()
    }

    /// Sessions that are active.
    pub fn active(&self) -> usize {
        self.sessions.values().filter(|s| s.state == SessionState::Active).count()
    }

    /// Ports held by sessions that are not terminated.
    pub fn held_ports(&self) -> BTreeSet<u16> {
        self.ports_held.keys().copied().collect()
    }

    /// The session a txid paid for, if the book saw it.
    pub fn spent_by(&self, txid: &Txid) -> Option<&SessionId> {
        self.spent.get(txid)
    }

    /// The port a new session would get now, or why none can be created (capacity first).
    pub fn check_capacity(&self) -> Result<u16, SessionRefusal> {
        let held = u32::try_from(self.ports_held.len()).unwrap_or(u32::MAX);
        if held >= self.rules.max_concurrent {
            return Err(SessionRefusal::AtCapacity { max: self.rules.max_concurrent });
        }
        let range = self.rules.ports;
        (range.first..=range.last)
            .find(|port| !self.ports_held.contains_key(port))
            .ok_or(SessionRefusal::NoFreePort { range })
    }

    /// Checks what the book alone cannot know, then capacity and ports.
    pub fn admit(&self, admission: Admission) -> Result<u16, SessionRefusal> {
        if !admission.node_ready {
            return Err(SessionRefusal::NodeNotReady);
        }
        if !admission.resources_ok {
            return Err(SessionRefusal::ResourcesExhausted);
        }
        if admission.trust_ppm < TRUST_GATE_PPM {
            return Err(SessionRefusal::TrustTooLow { ppm: admission.trust_ppm });
        }
        self.check_capacity()
    }

    /// Creates a pending session on the lowest free port, priced by the rules.
    pub fn create(
        &mut self,
        now: UnixMillis,
        id: SessionId,
        user: UserId,
        node: NodeId,
        admission: Admission,
    ) -> Result<&Session, SessionRefusal> {
        if self.sessions.contains_key(&id) {
            return Err(SessionRefusal::DuplicateSession { id });
        }
        let port = self.admit(admission)?;
        self.ports_held.insert(port, id.clone());
        let session = Session {
            id: id.clone(),
            user,
            node,
            port,
            price: self.rules.price,
            state: SessionState::PendingPayment,
            created_at: now,
            activated_at: None,
            ended_at: None,
            end_reason: None,
            txid: None,
            revenue_emitted: false,
        };
        Ok(self.sessions.entry(id).or_insert(session))
    }

    fn session_mut(&mut self, id: &SessionId) -> Result<&mut Session, SessionRefusal> {
        self.sessions.get_mut(id).ok_or_else(|| SessionRefusal::UnknownSession { id: id.clone() })
    }

    /// A confirmed payment of `amount` by `txid`: the pending session becomes active.
    ///
    /// A txid that already paid for any session is refused (even for the same session), and so
    /// is an amount below the session's price; a pending session past its timeout is expired
    /// first and then refused.
    pub fn payment_confirmed(
        &mut self,
        now: UnixMillis,
        id: &SessionId,
        txid: Txid,
        amount: MicroUsdt,
    ) -> Result<SessionEffect, SessionRefusal> {
        if let Some(by) = self.spent.get(&txid) {
            return Err(SessionRefusal::TxidAlreadyUsed { txid, by: by.clone() });
        }
        let timeout = self.rules.pending_timeout_ms;
        let session = self.session_mut(id)?;
        if session.state != SessionState::PendingPayment {
            return Err(SessionRefusal::WrongState { id: id.clone(), state: session.state });
        }
        if elapsed_ms(session.created_at, now) >= timeout {
            // Too late: the expiry would have freed it; do that now.
            self.end_pending(now, id, EndReason::PaymentTimeout);
            return Err(SessionRefusal::WrongState {
                id: id.clone(),
                state: SessionState::Terminated,
            });
        }
        if amount < session.price {
            return Err(SessionRefusal::Underpaid { price: session.price, paid: amount });
        }
        session.state = SessionState::Active;
        session.activated_at = Some(now);
        session.txid = Some(txid);
        let effect =
            SessionEffect::Start { id: id.clone(), port: session.port, user: session.user.clone() };
        self.spent.insert(txid, id.clone());
        Ok(effect)
    }

    fn end_pending(&mut self, now: UnixMillis, id: &SessionId, reason: EndReason) -> SessionEffect {
        if let Some(session) = self.sessions.get_mut(id) {
            session.state = SessionState::Terminated;
            session.ended_at = Some(now);
            session.end_reason = Some(reason);
            self.ports_held.remove(&session.port);
            self.finished.push_back(id.clone());
        }
        self.forget_old();
        SessionEffect::Ended { id: id.clone(), reason }
    }

    /// Asks a session to end: a pending one is terminated at once (port freed, no revenue); an
    /// active one becomes terminating (its backend must be stopped); a terminating or
    /// terminated one is left as it is (`None`).
    pub fn close(
        &mut self,
        now: UnixMillis,
        id: &SessionId,
        reason: EndReason,
    ) -> Result<Option<SessionEffect>, SessionRefusal> {
        let session = self.session_mut(id)?;
        match session.state {
            SessionState::PendingPayment => Ok(Some(self.end_pending(now, id, reason))),
            SessionState::Active => {
                session.state = SessionState::Terminating;
                session.ended_at = Some(now);
                session.end_reason = Some(reason);
                Ok(Some(SessionEffect::Stop { id: id.clone(), reason }))
            }
            SessionState::Terminating | SessionState::Terminated => Ok(None),
        }
    }

    /// The backend of a terminating session stopped: it is terminated, its port freed, and its
    /// revenue effect emitted (once). `None` if the session was not terminating.
    pub fn stopped(&mut self, id: &SessionId) -> Result<Option<SessionEffect>, Error> {
        let Some(session) = self.sessions.get_mut(id) else { return Ok(None) };
        if session.state != SessionState::Terminating {
            return Ok(None);
        }
        session.state = SessionState::Terminated;
        self.ports_held.remove(&session.port);
        // Revenue is earned by hosting: a session whose backend never ran earns nothing.
        let earned =
            session.activated_at.is_some() && session.end_reason != Some(EndReason::BackendFailed);
        let effect = if session.revenue_emitted || !earned {
            None
        } else {
            let posting =
                Posting::session_revenue(session.id.as_str(), session.node, session.price)?;
            session.revenue_emitted = true;
            Some(SessionEffect::PostRevenue { id: id.clone(), posting })
        };
        self.finished.push_back(id.clone());
        self.forget_old();
        Ok(effect)
    }

    /// What is due at `now`: pending sessions past `session.pending_timeout` end (ports freed),
    /// active sessions past `session.max_duration` are asked to stop.
    pub fn expire(&mut self, now: UnixMillis) -> Vec<SessionEffect> {
        let pending_timeout = self.rules.pending_timeout_ms;
        let max_duration = self.rules.max_duration_ms;
        let due: Vec<(SessionId, SessionState)> = self
            .sessions
            .values()
            .filter(|s| match s.state {
                SessionState::PendingPayment => elapsed_ms(s.created_at, now) >= pending_timeout,
                SessionState::Active => {
                    s.activated_at.is_some_and(|at| elapsed_ms(at, now) >= max_duration)
                }
                _ => false,
            })
            .map(|s| (s.id.clone(), s.state))
            .collect();
        let mut effects = Vec::with_capacity(due.len());
        for (id, state) in due {
            let reason = match state {
                SessionState::PendingPayment => EndReason::PaymentTimeout,
                _ => EndReason::MaxDuration,
            };
            if let Ok(Some(effect)) = self.close(now, &id, reason) {
                effects.push(effect);
            }
        }
        effects
    }

    /// The earliest instant at which [`SessionBook::expire`] has something to do.
    pub fn next_expiry(&self) -> Option<UnixMillis> {
        let ms = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.sessions
            .values()
            .filter_map(|s| match s.state {
                SessionState::PendingPayment => {
                    Some(s.created_at.saturating_add_ms(ms(self.rules.pending_timeout_ms)))
                }
                SessionState::Active => {
                    s.activated_at.map(|at| at.saturating_add_ms(ms(self.rules.max_duration_ms)))
                }
                _ => None,
            })
            .min()
    }

    fn forget_old(&mut self) {
        while self.finished.len() > KEEP_TERMINATED {
            if let Some(old) = self.finished.pop_front()
                && let Some(session) = self.sessions.remove(&old)
                && let Some(txid) = session.txid
            {
                self.spent.remove(&txid);
            }
        }
    }
}

fn elapsed_ms(from: UnixMillis, to: UnixMillis) -> u64 {
    u64::try_from(to.0.saturating_sub(from.0)).unwrap_or(0)
}

/// What the chain says about a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Confirmed on chain with this amount to the expected address.
    Confirmed {
        /// The amount transferred.
        amount: MicroUsdt,
        /// Confirmations so far.
        confirmations: u32,
    },
    /// Seen or not yet seen, not confirmed; ask again later.
    Pending,
    /// Never acceptable (wrong recipient, wrong token, failed, below the minimum).
    Rejected(String),
}

/// A payment to check: the transaction, who paid, who was paid, and the least amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentCheck {
    /// The transaction.
    pub txid: Txid,
    /// The payer's address, as the user gave it.
    pub from: String,
    /// The address payments must go to.
    pub to: String,
    /// The session's price.
    pub min: MicroUsdt,
}

/// The port that checks a session payment on chain (`session` + `blockchain`).
#[async_trait::async_trait]
pub trait PaymentVerifier: Send + Sync {
    /// What the chain says about `check`. Transport failures are errors (retry later), never
    /// [`PaymentStatus::Rejected`].
    async fn verify(&self, check: &PaymentCheck) -> Result<PaymentStatus, Error>;
}

/// The verifier of a node built without a chain: every check is [`Error::FeatureDisabled`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NullPaymentVerifier;

#[async_trait::async_trait]
impl PaymentVerifier for NullPaymentVerifier {
    async fn verify(&self, _check: &PaymentCheck) -> Result<PaymentStatus, Error> {
        Err(Error::FeatureDisabled { feature: "blockchain", what: "verifying a session payment" })
    }
}

/// What claiming a txid found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxidClaim {
    /// The txid is now (or was already) spent by this session.
    Claimed,
    /// The txid was spent by another session.
    SpentBy(SessionId),
}

/// The persistent registry of spent txids: one row per txid, a `UNIQUE` key in the database, so
/// one payment can pay for one session only, across restarts and processes.
#[async_trait::async_trait]
pub trait SpentTxids: Send + Sync {
    /// Records `txid` as spent by `session`, unless another session spent it. Claiming again
    /// for the same session is [`TxidClaim::Claimed`] (a retry after a crash).
    async fn claim(
        &self,
        txid: &Txid,
        session: &SessionId,
        now: UnixMillis,
    ) -> Result<TxidClaim, Error>;
}

/// The in-memory registry, whose semantics the database adapter must match.
#[derive(Debug, Default)]
pub struct MemorySpentTxids {
    spent: std::sync::Mutex<BTreeMap<Txid, SessionId>>,
}

impl MemorySpentTxids {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl SpentTxids for MemorySpentTxids {
    async fn claim(
        &self,
        txid: &Txid,
        session: &SessionId,
        _now: UnixMillis,
    ) -> Result<TxidClaim, Error> {
        let mut spent = self.spent.lock().map_err(|_| Error::StoreUnavailable {
            action: "claiming a txid",
            message: "lock poisoned".to_owned(),
        })?;
        match spent.get(txid) {
            Some(by) if by == session => Ok(TxidClaim::Claimed),
            Some(by) => Ok(TxidClaim::SpentBy(by.clone())),
            None => {
                spent.insert(*txid, session.clone());
                Ok(TxidClaim::Claimed)
            }
        }
    }
}

#[cfg(test)]
mod tests;
