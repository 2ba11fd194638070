//! The peer table: which nodes this node knows, talks to, distrusts or has banned. Pure and
//! synchronous; every method takes the time as an argument.
//!
//! Rules (`daemon.md` §6):
//! - Entries come from verified registration records only, keyed by `NodeId`; the record with
//!   the highest `seq` wins whatever the arrival order (an equal `seq` changes nothing: the first
//!   record stays, as in ingest).
//! - At most `max_known` entries and `max_connected` connected ones. A new node is refused when
//!   the table is full and no entry can make room (only entries neither connected nor banned
//!   are evicted, the least recently seen first).
//! - Liveness: the last time a peer answered or called; an entry unseen for 24 h is evicted
//!   (a banned one stays until its ban ends, so forgetting never lifts a ban).
//! - Misbehaviour: +1 invalid message, +20 bad signature or forged author, +50 replayed peer
//!   call (and +1 per refused flood), decaying by 1 per full minute; at 100 the peer is banned
//!   for exactly one hour, disconnected, and its score starts again from 0 when the ban ends.
//! - Rate limit: at most `max_messages_per_minute` messages are admitted from one peer in any
//!   60-second window (counted in one-second buckets over the last 61 buckets, so the bound holds
//!   for windows that do not start on a bucket boundary too).

use std::collections::{BTreeMap, VecDeque};

use lucid_consensus::registration::{Endpoint, Registration};
use lucid_core::{NodeId, UnixMillis};

use crate::network::PeerFault;

/// Score at which a peer is banned.
pub const BAN_SCORE: u32 = 100;
/// How long a ban lasts, milliseconds.
pub const BAN_MS: i64 = 60 * 60 * 1000;
/// An entry unseen for this long is evicted, milliseconds.
pub const EVICT_UNSEEN_MS: i64 = 24 * 60 * 60 * 1000;
/// The score decays by one point per this many milliseconds.
const DECAY_EVERY_MS: i64 = 60 * 1000;
/// Rate-limit bucket width, milliseconds.
const BUCKET_MS: i64 = 1000;
/// Buckets summed by the rate limiter: a 60 s window touches at most 61 one-second buckets.
const RATE_BUCKETS: i64 = 61;

/// The bounds of the table (`peers.*` configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// `peers.max_known`.
    pub max_known: usize,
    /// `peers.max_connected`.
    pub max_connected: usize,
    /// `peers.max_messages_per_minute`.
    pub max_messages_per_minute: u32,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits { max_known: 1000, max_connected: 16, max_messages_per_minute: 60_000 }
    }
}

/// The points a fault costs.
pub fn fault_points(fault: PeerFault) -> u32 {
    match fault {
        PeerFault::BadSignature => 20,
        PeerFault::ReplayedCall => 50,
        // `PeerFault` is non-exhaustive: anything new costs the least until it is priced.
        _ => 1,
    }
}

/// A peer's state as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerState {
    /// Known from its registration, not connected.
    Known,
    /// Connected (Hello succeeded and not lost since).
    Connected,
    /// Banned until its ban ends.
    Banned,
}

impl PeerState {
    /// The API and metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Known => "known",
            PeerState::Connected => "connected",
            PeerState::Banned => "banned",
        }
    }
}

/// What happened to an offered registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// A new entry.
    Added,
    /// An existing entry took the higher `seq`.
    Updated,
    /// The table already holds this or a higher `seq`.
    Stale,
    /// The record is the node's own.
    Own,
    /// The table is full and nothing could be evicted.
    Full,
}

/// One row of the table, for the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRow {
    /// The peer.
    pub node: NodeId,
    /// Its registered endpoint.
    pub endpoint: Endpoint,
    /// Its registration's `seq`.
    pub seq: u64,
    /// Its state now.
    pub state: PeerState,
    /// Its score now (after decay).
    pub score: u32,
    /// Last time it answered or called.
    pub last_seen: Option<UnixMillis>,
    /// Round trip of the last call to it.
    pub latency_ms: Option<u64>,
}

#[derive(Clone, Debug)]
struct Entry {
    registration: Registration,
    /// When the entry was added; liveness counts from here until the peer is first seen.
    added: UnixMillis,
    last_seen: Option<UnixMillis>,
    latency_ms: Option<u64>,
    connected: bool,
    score: u32,
    /// The time the score was last decayed to.
    score_at: UnixMillis,
    banned_until: Option<UnixMillis>,
    /// (bucket index, messages admitted in it), oldest first, at most `RATE_BUCKETS` long.
    rate: VecDeque<(i64, u64)>,
}

impl Entry {
    fn banned(&self, now: UnixMillis) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    fn alive_at(&self) -> UnixMillis {
        self.last_seen.unwrap_or(self.added).max(self.added)
    }

    /// Applies the decay up to `now` (whole minutes only; the remainder carries over).
    fn decay(&mut self, now: UnixMillis) {
        if let Some(until) = self.banned_until
            && now >= until
        {
            self.banned_until = None;
            self.score = 0;
            self.score_at = until;
        }
        let elapsed = now.0.saturating_sub(self.score_at.0);
        if elapsed <= 0 {
            return;
        }
        let minutes = elapsed / DECAY_EVERY_MS;
        if minutes > 0 {
            let points = u32::try_from(minutes).unwrap_or(u32::MAX);
            self.score = self.score.saturating_sub(points);
            self.score_at =
                UnixMillis(self.score_at.0.saturating_add(minutes.saturating_mul(DECAY_EVERY_MS)));
        }
        if self.score == 0 {
            self.score_at = now.max(self.score_at);
        }
    }

    fn state(&self, now: UnixMillis) -> PeerState {
        if self.banned(now) {
            PeerState::Banned
        } else if self.connected {
            PeerState::Connected
        } else {
            PeerState::Known
        }
    }
}

/// The bounded peer table.
#[derive(Clone, Debug)]
pub struct PeerTable {
    own: NodeId,
    limits: PeerLimits,
    entries: BTreeMap<NodeId, Entry>,
    bans_total: u64,
}

impl PeerTable {
    /// An empty table of `own` node (never entered in its own table).
    pub fn new(own: NodeId, limits: PeerLimits) -> Self {
        PeerTable { own, limits, entries: BTreeMap::new(), bans_total: 0 }
    }

    /// The bounds.
    pub fn limits(&self) -> PeerLimits {
        self.limits
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Peers connected now.
    pub fn connected_count(&self) -> usize {
        self.entries.values().filter(|entry| entry.connected).count()
    }

    /// Bans started since the table was made.
    pub fn bans_total(&self) -> u64 {
        self.bans_total
    }

    /// Whether `node` has an entry.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.entries.contains_key(node)
    }

    /// The registration the table holds for `node`.
    pub fn registration(&self, node: &NodeId) -> Option<&Registration> {
        self.entries.get(node).map(|entry| &entry.registration)
    }

    /// Offers a verified registration record (the caller checked its signature and rules).
    pub fn offer(&mut self, registration: &Registration, now: UnixMillis) -> Offered {
        if registration.node == self.own {
            return Offered::Own;
        }
        if let Some(entry) = self.entries.get_mut(&registration.node) {
            if registration.seq <= entry.registration.seq {
                return Offered::Stale;
            }
            entry.registration = registration.clone();
            return Offered::Updated;
        }
        if self.entries.len() >= self.limits.max_known && !self.evict_one(now) {
            return Offered::Full;
        }
        self.entries.insert(
            registration.node,
            Entry {
                registration: registration.clone(),
                added: now,
                last_seen: None,
                latency_ms: None,
                connected: false,
                score: 0,
                score_at: now,
                banned_until: None,
                rate: VecDeque::new(),
            },
        );
        Offered::Added
    }

    /// Evicts the least recently seen entry that is neither connected nor banned.
    fn evict_one(&mut self, now: UnixMillis) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.connected && !entry.banned(now))
            .min_by_key(|(node, entry)| (entry.alive_at(), **node))
            .map(|(node, _)| *node);
        victim.is_some_and(|node| self.entries.remove(&node).is_some())
    }

    /// Records that `node` answered or called at `now` (with the round trip, if measured).
    pub fn seen(&mut self, node: &NodeId, now: UnixMillis, latency_ms: Option<u64>) {
        if let Some(entry) = self.entries.get_mut(node) {
            entry.last_seen = Some(entry.last_seen.map_or(now, |seen| seen.max(now)));
            if latency_ms.is_some() {
                entry.latency_ms = latency_ms;
            }
        }
    }

    /// Marks `node` connected; false if it is unknown, banned, or `max_connected` is reached.
    pub fn connect(&mut self, node: &NodeId, now: UnixMillis) -> bool {
        let connected = self.connected_count();
        let Some(entry) = self.entries.get_mut(node) else { return false };
        if entry.banned(now) {
            return false;
        }
        if entry.connected {
            return true;
        }
        if connected >= self.limits.max_connected {
            return false;
        }
        entry.connected = true;
        true
    }

    /// Marks `node` disconnected (a call failed, or it was banned).
    pub fn disconnect(&mut self, node: &NodeId) {
        if let Some(entry) = self.entries.get_mut(node) {
            entry.connected = false;
        }
    }

    /// Counts `fault` against `node`; true if this started a ban. Unknown nodes are ignored:
    /// the table holds registered nodes only, and an unregistered caller is refused anyway.
    pub fn report(&mut self, node: &NodeId, fault: PeerFault, now: UnixMillis) -> bool {
        let Some(entry) = self.entries.get_mut(node) else { return false };
        entry.decay(now);
        if entry.banned(now) {
            return false;
        }
        entry.score = entry.score.saturating_add(fault_points(fault));
        if entry.score < BAN_SCORE {
            return false;
        }
        entry.banned_until = Some(UnixMillis(now.0.saturating_add(BAN_MS)));
        entry.connected = false;
        entry.rate.clear();
        self.bans_total = self.bans_total.saturating_add(1);
        true
    }

    /// Whether `node` is banned at `now`.
    pub fn is_banned(&self, node: &NodeId, now: UnixMillis) -> bool {
        self.entries.get(node).is_some_and(|entry| entry.banned(now))
    }

    /// The score of `node` at `now` (after decay), if known.
    pub fn score(&mut self, node: &NodeId, now: UnixMillis) -> Option<u32> {
        let entry = self.entries.get_mut(node)?;
        entry.decay(now);
        Some(entry.score)
    }

    /// Admits `count` messages from `node` at `now` if that keeps every 60-second window within
    /// the budget; a refused request admits nothing. Unknown and banned nodes are refused.
    pub fn admit(&mut self, node: &NodeId, count: u64, now: UnixMillis) -> bool {
        let budget = u64::from(self.limits.max_messages_per_minute);
        let Some(entry) = self.entries.get_mut(node) else { return false };
        if entry.banned(now) {
            return false;
        }
        // A clock that steps back counts into the newest bucket: never into a forgotten one.
        let bucket =
            now.0.div_euclid(BUCKET_MS).max(entry.rate.back().map_or(i64::MIN, |(b, _)| *b));
        while entry.rate.front().is_some_and(|(b, _)| *b <= bucket.saturating_sub(RATE_BUCKETS)) {
            entry.rate.pop_front();
        }
        let used: u64 = entry.rate.iter().map(|(_, n)| *n).sum();
        if used.saturating_add(count) > budget {
            return false;
        }
        match entry.rate.back_mut() {
            Some((last, n)) if *last == bucket => *n = n.saturating_add(count),
            _ => entry.rate.push_back((bucket, count)),
        }
        true
    }

    /// Evicts entries unseen for 24 h (never a banned or connected one); returns them.
    pub fn evict_stale(&mut self, now: UnixMillis) -> Vec<NodeId> {
        let stale: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                !entry.connected
                    && !entry.banned(now)
                    && now.0.saturating_sub(entry.alive_at().0) >= EVICT_UNSEEN_MS
            })
            .map(|(node, _)| *node)
            .collect();
        for node in &stale {
            self.entries.remove(node);
        }
        stale
    }

    /// Connected peers that are not banned, at most `max_connected`, by id.
    pub fn connected_peers(&self, now: UnixMillis) -> Vec<NodeId> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.connected && !entry.banned(now))
            .map(|(node, _)| *node)
            .take(self.limits.max_connected)
            .collect()
    }

    /// Up to `limit` known peers worth dialling: not connected, not banned, least recently
    /// tried (seen) first.
    pub fn dial_candidates(&self, now: UnixMillis, limit: usize) -> Vec<NodeId> {
        let mut candidates: Vec<(UnixMillis, NodeId)> = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.connected && !entry.banned(now))
            .map(|(node, entry)| (entry.last_seen.unwrap_or(UnixMillis(i64::MIN)), *node))
            .collect();
        candidates.sort();
        candidates.into_iter().take(limit).map(|(_, node)| node).collect()
    }

    /// Every entry, by id, as of `now`.
    pub fn rows(&mut self, now: UnixMillis) -> Vec<PeerRow> {
        self.entries
            .iter_mut()
            .map(|(node, entry)| {
                entry.decay(now);
                PeerRow {
                    node: *node,
                    endpoint: entry.registration.endpoint.clone(),
                    seq: entry.registration.seq,
                    state: entry.state(now),
                    score: entry.score,
                    last_seen: entry.last_seen,
                    latency_ms: entry.latency_ms,
                }
            })
            .collect()
    }

    /// How many entries are in each state at `now`.
    pub fn state_counts(&self, now: UnixMillis) -> BTreeMap<PeerState, usize> {
        let mut counts = BTreeMap::from([
            (PeerState::Known, 0),
            (PeerState::Connected, 0),
            (PeerState::Banned, 0),
        ]);
        for entry in self.entries.values() {
            *counts.entry(entry.state(now)).or_insert(0) += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests;
