//! Leader selection (consensus.md §8): who may claim each slot, in which order, and what the node
//! records as the slot's result.
//!
//! [`select`] is a pure function of the epoch's tally, the results recorded for the 16 previous
//! slots, the network seed and the slot: it picks the best-ranked entity that is not cooling down,
//! rotates equal top credits per slot by a keyed BLAKE3 hash, and lists up to five fallbacks.
//! [`candidate_window`] and [`result_time`] give the deadlines of §8.3, [`claim_verdict`] judges a
//! received claim and [`decide_result`] turns the valid claims a node holds into a [`SlotResult`].
//! [`SlotLog`] keeps schedules and results insert-if-absent, so neither is ever overwritten.
//!
//! This module does NOT sign, encode, persist or gossip claims, read a clock or keep metrics: time
//! comes in as arguments and the caller acts on verdicts (for example by counting tally
//! divergence).

use std::collections::BTreeMap;

use lucid_core::hash::KeyedHasher;
use lucid_core::{Digest, EntityId, Epoch, NodeId, Slot, TimeError, UnixMillis};

use crate::error::Error;
use crate::params::{
    CANDIDATE_WINDOW_MS, COOLDOWN_SLOTS, ConsensusParams, MAX_FALLBACK_ATTEMPTS, MAX_FALLBACKS,
    RESULT_DELAY_MS,
};
use crate::tally::{MembershipView, Tally, TallyEntry, entity_of};

/// Why the primary of a slot is who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaderReason {
    /// The rank-1 entity is not cooling down and nobody eligible has equal credits.
    HighestCredits,
    /// Better-ranked entities are cooling down; the primary is the best-ranked eligible one.
    CooldownSkip,
    /// Several eligible entities share the top credits; the rotation hash chose among them.
    RotatedTie,
}

/// Why a slot has no leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoLeaderReason {
    /// No tally of the slot's epoch is available (its first two slots, or the node is catching up).
    TallyPending,
    /// The tally ranks no entity.
    NoRankedEntity,
    /// Every ranked entity won one of the previous 16 slots.
    AllInCooldown,
}

/// The outcome of selection for one slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A primary and its ordered fallbacks.
    Leader {
        /// Candidate 0.
        primary: EntityId,
        /// Up to [`MAX_FALLBACKS`] eligible entities in rank order; the first
        /// [`MAX_FALLBACK_ATTEMPTS`] are candidates 1..=3, the rest are listed only.
        fallbacks: Vec<EntityId>,
        /// Why the primary was chosen.
        reason: LeaderReason,
    },
    /// Nobody leads the slot.
    NoLeader(NoLeaderReason),
}

/// The leader schedule of one slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Schedule {
    /// The slot.
    pub slot: Slot,
    /// The slot's epoch.
    pub epoch: Epoch,
    /// Digest of the tally the schedule was computed from; `None` when no tally of the epoch was
    /// available.
    pub tally_digest: Option<Digest>,
    /// Who leads.
    pub outcome: Outcome,
}

/// Index of a candidate that is actually tried: 0 is the primary, 1..=3 the first fallbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CandidateIndex(u8);

impl CandidateIndex {
    /// The primary.
    pub const PRIMARY: CandidateIndex = CandidateIndex(0);
    /// The highest index that is tried ([`MAX_FALLBACK_ATTEMPTS`]).
    pub const LAST: CandidateIndex = CandidateIndex(MAX_FALLBACK_ATTEMPTS as u8);

    /// The index `k`, if a candidate with that index is ever tried (`k` ≤ 3).
    pub fn new(k: u8) -> Option<Self> {
        (k <= Self::LAST.0).then_some(CandidateIndex(k))
    }

    /// All tried indices in order: 0, 1, 2, 3.
    pub fn all() -> impl Iterator<Item = CandidateIndex> {
        (0..=Self::LAST.0).map(CandidateIndex)
    }

    /// The index as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Which fallback won a slot: 1..=3 ([`MAX_FALLBACK_ATTEMPTS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FallbackAttempt(u8);

impl FallbackAttempt {
    /// Attempt `k`, if `k` is in 1..=3.
    pub fn new(k: u8) -> Option<Self> {
        (1..=CandidateIndex::LAST.0).contains(&k).then_some(FallbackAttempt(k))
    }

    /// The attempt as a number in 1..=3.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// What a node recorded for a slot at `slot_start + 30 s`. Fixed once recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SlotResult {
    /// The primary claimed the slot in its window.
    Success {
        /// The primary.
        winner: EntityId,
    },
    /// No earlier candidate claimed; fallback `attempt` did.
    FallbackSuccess {
        /// The fallback that claimed.
        winner: EntityId,
        /// Its candidate index, 1..=3.
        attempt: FallbackAttempt,
    },
    /// The schedule had candidates but none of them claimed in time.
    Missed,
    /// The schedule had no leader.
    NoLeader(NoLeaderReason),
}

impl SlotResult {
    /// The entity that led the slot, if any; only these enter the cooldown set.
    pub fn winner(&self) -> Option<&EntityId> {
        match self {
            SlotResult::Success { winner } | SlotResult::FallbackSuccess { winner, .. } => {
                Some(winner)
            }
            SlotResult::Missed | SlotResult::NoLeader(_) => None,
        }
    }
}

impl Schedule {
    /// The entity that candidate `index` stands for, if the schedule has one there.
    pub fn candidate(&self, index: CandidateIndex) -> Option<&EntityId> {
        match &self.outcome {
            Outcome::Leader { primary, fallbacks, .. } => match index.0.checked_sub(1) {
                None => Some(primary),
                Some(fallback) => fallbacks.get(usize::from(fallback)),
            },
            Outcome::NoLeader(_) => None,
        }
    }
}

/// Computes the leader schedule of `slot` (consensus.md §8.1).
///
/// `tally` is the current revision of the tally of `epoch_of(slot)`, if the node has one; a tally
/// of another epoch counts as none. `recent` holds recorded results; only those for slots in
/// `[slot − 16, slot)` are used, so callers may pass more, in any order. Unknown results (slots
/// absent from `recent`) contribute nothing to the cooldown set.
///
/// The tally's ranked entries must be distinct entities in rank order with non-increasing
/// credits, as [`Tally::ranked`] promises; the tie set T is then the run of eligible entries with
/// E\[0\]'s credits. The walk stops as soon as that run and five fallbacks are known, so the cost
/// is proportional to the cooling and tied entries near the top, not to the size of the tally.
/// Only tie members are hashed, so a tie of t entities costs t keyed hashes (the degenerate case
/// of a whole tally tied hashes every candidate).
pub fn select(
    params: &ConsensusParams,
    slot: Slot,
    tally: Option<&Tally>,
    recent: &[(Slot, SlotResult)],
) -> Schedule {
    let epoch = params.time.epoch_of(slot);
    let Some(tally) = tally.filter(|tally| tally.epoch == epoch) else {
        return Schedule {
            slot,
            epoch,
            tally_digest: None,
            outcome: Outcome::NoLeader(NoLeaderReason::TallyPending),
        };
    };
    let outcome = select_outcome(params, slot, epoch, tally.ranked(), recent);
    Schedule { slot, epoch, tally_digest: Some(tally.digest), outcome }
}

/// Steps 2–6 of §8.1 over the ranked entries.
fn select_outcome(
    params: &ConsensusParams,
    slot: Slot,
    epoch: Epoch,
    ranked: &[TallyEntry],
    recent: &[(Slot, SlotResult)],
) -> Outcome {
    if ranked.is_empty() {
        return Outcome::NoLeader(NoLeaderReason::NoRankedEntity);
    }
    let mut cooling = Cooldown::new(slot, recent);
    // The first MAX_FALLBACKS + 1 eligible entries: the primary is among them unless the tie run
    // is longer, and the fallbacks are these minus the primary.
    let mut head: [Option<&TallyEntry>; MAX_FALLBACKS + 1] = [None; MAX_FALLBACKS + 1];
    let mut head_len = 0;
    let mut tie = TieRun::default();
    let mut tie_open = true;
    let mut index = 0;
    while index < ranked.len() {
        if !tie_open && head_len == head.len() {
            break;
        }
        let entry = &ranked[index];
        index += 1;
        if cooling.take(&entry.entity) {
            if tie_open && head_len > 0 {
                tie.skip(index - 1);
            }
            continue;
        }
        if head_len < head.len() {
            head[head_len] = Some(entry);
            head_len += 1;
        }
        if !tie_open {
            continue;
        }
        let Some(first) = head[0] else { continue };
        debug_assert!(entry.credits <= first.credits, "ranked entries must not gain credits");
        if entry.credits != first.credits {
            tie_open = false;
            tie.end = index - 1;
            continue;
        }
        if tie.members == 0 {
            tie.start = index - 1;
        }
        tie.members += 1;
        if cooling.is_empty() && head_len == head.len() {
            // Nothing is cooling any more and the head is complete, so the rest of the run is
            // every following entry with the same credits: credits never increase down the
            // ranking, so a binary search finds its end without touching the entries between.
            let rest = ranked[index..].partition_point(|next| next.credits == first.credits);
            tie.members += rest;
            index += rest;
            tie.end = index;
            tie_open = false;
        }
    }
    if tie_open {
        tie.end = index;
    }
    let Some(first) = head[0] else {
        return Outcome::NoLeader(NoLeaderReason::AllInCooldown);
    };
    // Only a tie needs rotation hashes, so most slots derive no key and hash nothing.
    let best =
        (tie.members >= 2).then(|| rotation_winner(params, slot, epoch, ranked, &tie)).flatten();
    let (primary, reason) = match best {
        Some(winner) => (winner, LeaderReason::RotatedTie),
        _ if first.rank == Some(1) => (first, LeaderReason::HighestCredits),
        _ => (first, LeaderReason::CooldownSkip),
    };
    let fallbacks = head[..head_len]
        .iter()
        .flatten()
        .filter(|entry| entry.entity != primary.entity)
        .take(MAX_FALLBACKS)
        .map(|entry| entry.entity)
        .collect();
    Outcome::Leader { primary: primary.entity, fallbacks, reason }
}

/// The tie set T of §8.1 step 5 as positions in the ranking: `ranked[start..end]` without the
/// cooling entries at `skipped`. Cooling entities are at most 16, so T needs no allocation
/// whatever its size.
#[derive(Debug, Default)]
struct TieRun {
    start: usize,
    end: usize,
    /// Ascending positions inside `start..end` of entries that are cooling down.
    skipped: [usize; COOLDOWN_SLOTS as usize],
    skipped_len: usize,
    /// Number of eligible entries in the run, |T|.
    members: usize,
}

impl TieRun {
    fn skip(&mut self, position: usize) {
        // Each cooling entity is taken at most once, so at most 16 positions arrive.
        if let Some(free) = self.skipped.get_mut(self.skipped_len) {
            *free = position;
            self.skipped_len += 1;
        }
    }

    fn skipped(&self) -> &[usize] {
        &self.skipped[..self.skipped_len]
    }
}

/// Tie runs at least this long are hashed on all cores.
const PARALLEL_TIE: usize = 4_096;

/// The member of `tie` with the smallest `keyed_hash(K_rot(e), u64 s ‖ entity)`; on an
/// (astronomically unlikely) equal hash the better-ranked member wins.
///
/// One pass per share of the run keeps only the running minimum: no per-member allocation, no
/// sort. Long runs are cut into one contiguous share per thread, so the hand-off happens once
/// per thread rather than per member.
fn rotation_winner<'a>(
    params: &ConsensusParams,
    slot: Slot,
    epoch: Epoch,
    ranked: &'a [TallyEntry],
    tie: &TieRun,
) -> Option<&'a TallyEntry> {
    let hasher = RotationHasher::new(&params.rotation_key(epoch), slot);
    let run = ranked.get(tie.start..tie.end)?;
    let best_of = |from: usize, to: usize| -> Option<(HashOrder, usize)> {
        let mut best: Option<(HashOrder, usize)> = None;
        let mut skipped =
            tie.skipped().iter().filter_map(|p| p.checked_sub(tie.start)).filter(|p| *p >= from);
        let mut next_skip = skipped.next();
        for (offset, entry) in run[from..to].iter().enumerate() {
            let position = from + offset;
            if next_skip == Some(position) {
                next_skip = skipped.next();
                continue;
            }
            let hash = HashOrder::of(&hasher.hash(&entry.entity));
            // Strictly smaller only: on equal hashes the earlier (better-ranked) member stays.
            if best.as_ref().is_none_or(|(least, _)| hash < *least) {
                best = Some((hash, position));
            }
        }
        best
    };
    // The minimum of (hash, position) is the same whichever way the run is split, so the
    // parallel path gives exactly the sequential answer.
    let best = if run.len() >= PARALLEL_TIE {
        use rayon::prelude::*;
        // A few shares per thread, so that a thread slowed down by other work is helped out.
        let shares = (4 * rayon::current_num_threads()).min(run.len() / (PARALLEL_TIE / 4)).max(1);
        let share = run.len().div_ceil(shares);
        (0..shares)
            .into_par_iter()
            .filter_map(|k| best_of(k * share, run.len().min((k + 1) * share)))
            .min()
    } else {
        best_of(0, run.len())
    };
    best.and_then(|(_, position)| run.get(position))
}

/// A digest as two big-endian 128-bit halves: the same order as its bytes, compared in two
/// integer comparisons instead of a byte-wise `memcmp` call per tie member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct HashOrder(u128, u128);

impl HashOrder {
    fn of(digest: &Digest) -> Self {
        let (high, low) = digest.as_bytes().split_at(16);
        let half = |bytes: &[u8]| {
            let mut array = [0u8; 16];
            array.copy_from_slice(bytes);
            u128::from_be_bytes(array)
        };
        HashOrder(half(high), half(low))
    }
}

/// The rotation hash `keyed_hash(K_rot(e), u64 s ‖ entity_bytes)` for one slot, hashed from a
/// stack buffer that already holds the slot, so each member costs one entity copy and one
/// BLAKE3 compression.
struct RotationHasher {
    hasher: KeyedHasher,
    /// `u64 s ‖` the longest entity encoding (33 bytes).
    input: [u8; 8 + 33],
}

impl RotationHasher {
    fn new(key: &Digest, slot: Slot) -> Self {
        let mut input = [0u8; 8 + 33];
        input[..8].copy_from_slice(&slot.0.to_be_bytes());
        RotationHasher { hasher: KeyedHasher::new(key), input }
    }

    fn hash(&self, entity: &EntityId) -> Digest {
        let mut input = self.input;
        let (bytes, len) = entity.to_bytes();
        input[8..8 + len].copy_from_slice(&bytes[..len]);
        self.hasher.hash_one(&input[..8 + len])
    }
}

/// The cooldown set C of §8.1 step 3: at most 16 distinct winners.
///
/// Each ranked entity appears once in a tally, so a winner that was skipped cannot match again and
/// is dropped from the set; once the set is empty the walk stops comparing.
struct Cooldown {
    winners: [Option<EntityId>; COOLDOWN_SLOTS as usize],
    len: usize,
}

impl Cooldown {
    fn new(slot: Slot, recent: &[(Slot, SlotResult)]) -> Self {
        let mut cooldown = Cooldown { winners: [None; COOLDOWN_SLOTS as usize], len: 0 };
        let from = slot.0.saturating_sub(COOLDOWN_SLOTS);
        for (at, result) in recent {
            if !(from..slot.0).contains(&at.0) {
                continue;
            }
            let Some(winner) = result.winner() else { continue };
            // An entity that won two of the slots is kept once. A caller that passes one slot
            // twice with different winners breaks the one-result-per-slot rule; the bound keeps
            // that from overflowing the set, and the extra winner is ignored.
            if cooldown.winners[..cooldown.len].iter().flatten().any(|w| w == winner) {
                continue;
            }
            if cooldown.len < cooldown.winners.len() {
                cooldown.winners[cooldown.len] = Some(*winner);
                cooldown.len += 1;
            }
        }
        cooldown
    }

    /// Whether no entity is left to match.
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `entity` is cooling down; a match is removed because it cannot occur again.
    fn take(&mut self, entity: &EntityId) -> bool {
        if self.len == 0 {
            return false;
        }
        let found = self.winners[..self.len].iter().position(|w| w.as_ref() == Some(entity));
        match found {
            Some(at) => {
                self.len -= 1;
                self.winners.swap(at, self.len);
                self.winners[self.len] = None;
                true
            }
            None => false,
        }
    }
}

/// A half-open span of time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// First millisecond inside.
    pub start: UnixMillis,
    /// First millisecond after.
    pub end: UnixMillis,
}

impl TimeWindow {
    /// Whether `ts` lies inside.
    pub fn contains(&self, ts: UnixMillis) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// `slot_start(slot) + offset_ms`, or the time error naming the slot.
fn slot_offset(params: &ConsensusParams, slot: Slot, offset_ms: u64) -> Result<UnixMillis, Error> {
    let out_of_range = || Error::Time(TimeError::OutOfRange { what: "slot", value: slot.0 });
    let start = params.time.slot_start(slot).map_err(Error::Time)?;
    let offset = i64::try_from(offset_ms).map_err(|_| out_of_range())?;
    start.0.checked_add(offset).map(UnixMillis).ok_or_else(out_of_range)
}

/// The window of candidate `index` in `slot`: `[slot_start + k·W, slot_start + (k + 1)·W)` with W
/// the candidate window (5 s on mainnet, scaled on test networks).
pub fn candidate_window(
    params: &ConsensusParams,
    slot: Slot,
    index: CandidateIndex,
) -> Result<TimeWindow, Error> {
    let width = params.time.scale_ms(CANDIDATE_WINDOW_MS);
    let k = u64::from(index.0);
    // k ≤ 3 and width ≤ one slot, so neither product can overflow.
    let start = slot_offset(params, slot, k * width)?;
    let end = slot_offset(params, slot, (k + 1) * width)?;
    Ok(TimeWindow { start, end })
}

/// When the result of `slot` is recorded: slot start + 30 s (scaled on test networks).
pub fn result_time(params: &ConsensusParams, slot: Slot) -> Result<UnixMillis, Error> {
    slot_offset(params, slot, params.time.scale_ms(RESULT_DELAY_MS))
}

/// A `slot-claim` as decoded from a signed message whose signature was already verified.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The signing node.
    pub node: NodeId,
    /// The slot claimed.
    pub slot: Slot,
    /// The candidate index the claimer says it holds (peer input, so any byte).
    pub candidate_index: u8,
    /// The entity the claimer claims for.
    pub entity: EntityId,
    /// The digest of the tally the claimer scheduled from.
    pub tally_digest: Digest,
    /// The claimer's timestamp.
    pub ts: UnixMillis,
}

/// Why a claim does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimReject {
    /// The claim is for another slot than the schedule.
    WrongSlot,
    /// The schedule has no leader.
    NoLeader,
    /// The index is above 3 or the schedule has no candidate there.
    NoSuchCandidate,
    /// The claimed entity is not the schedule's candidate at that index.
    WrongEntity,
    /// The signer did not belong to the candidate entity at the slot.
    NotMember,
    /// The timestamp lies outside the candidate's window.
    OutsideWindow,
}

/// The verdict on one claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimVerdict {
    /// The claim counts for candidate `index`.
    Valid {
        /// The candidate it counts for.
        index: CandidateIndex,
        /// The claimer's tally digest differs from ours: it still counts, but the caller should
        /// count `lucid_tally_divergence_total` and warn.
        divergent_tally: bool,
    },
    /// The claim does not count.
    Invalid(ClaimReject),
}

/// Judges `claim` against the local `schedule` (§8.3). `members` attributes the signer to its
/// entity at the slot (the membership timeline); a pool member claims for its pool.
pub fn claim_verdict(
    params: &ConsensusParams,
    schedule: &Schedule,
    members: &dyn MembershipView,
    claim: &Claim,
) -> ClaimVerdict {
    let reject = ClaimVerdict::Invalid;
    if claim.slot != schedule.slot {
        return reject(ClaimReject::WrongSlot);
    }
    if matches!(schedule.outcome, Outcome::NoLeader(_)) {
        return reject(ClaimReject::NoLeader);
    }
    let Some(index) = CandidateIndex::new(claim.candidate_index) else {
        return reject(ClaimReject::NoSuchCandidate);
    };
    let Some(candidate) = schedule.candidate(index) else {
        return reject(ClaimReject::NoSuchCandidate);
    };
    if claim.entity != *candidate {
        return reject(ClaimReject::WrongEntity);
    }
    if entity_of(members, &claim.node, claim.slot) != *candidate {
        return reject(ClaimReject::NotMember);
    }
    // A slot whose time cannot be represented has no window, so nothing can be inside it.
    let inside = candidate_window(params, schedule.slot, index).is_ok_and(|w| w.contains(claim.ts));
    if !inside {
        return reject(ClaimReject::OutsideWindow);
    }
    let divergent_tally = schedule.tally_digest != Some(claim.tally_digest);
    ClaimVerdict::Valid { index, divergent_tally }
}

/// The result a node records for `schedule` from the claims it holds (§8.3): the lowest valid
/// index wins (0 → `Success`, 1..=3 → `FallbackSuccess`); no valid claim → `Missed`; a schedule
/// without a leader → `NoLeader` with its reason. Invalid claims are ignored.
pub fn decide_result(
    params: &ConsensusParams,
    schedule: &Schedule,
    members: &dyn MembershipView,
    claims: &[Claim],
) -> SlotResult {
    if let Outcome::NoLeader(reason) = schedule.outcome {
        return SlotResult::NoLeader(reason);
    }
    let lowest = claims
        .iter()
        .filter_map(|claim| match claim_verdict(params, schedule, members, claim) {
            ClaimVerdict::Valid { index, .. } => Some(index),
            ClaimVerdict::Invalid(_) => None,
        })
        .min();
    let Some(index) = lowest else { return SlotResult::Missed };
    let Some(winner) = schedule.candidate(index).copied() else {
        // claim_verdict only accepts indices the schedule has a candidate for.
        return SlotResult::Missed;
    };
    match FallbackAttempt::new(index.0) {
        Some(attempt) => SlotResult::FallbackSuccess { winner, attempt },
        None => SlotResult::Success { winner },
    }
}

/// Whether a write changed the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Recorded {
    /// The value was stored.
    Inserted,
    /// The same value was already stored; nothing changed.
    AlreadyPresent,
}

/// In-memory schedules and results of the most recent slots, insert-if-absent (§8.4).
///
/// A value once stored for a slot is never replaced: the same value again is a no-op, a different
/// one is a typed error and leaves the stored one unchanged.
///
/// Memory is bounded: the log keeps the `retain` newest slots (at least the 16 that cooldown
/// needs) behind the newest slot written, and forgets older ones. Because a forgotten slot could
/// no longer be protected from a second write, writes below the horizon are refused with
/// [`Error::SlotPruned`]; the durable, never-overwritten record of every slot is the job of the
/// `schedules` and `slot_results` tables.
#[derive(Clone, Debug)]
pub struct SlotLog {
    retain: u64,
    schedules: BTreeMap<Slot, Schedule>,
    results: BTreeMap<Slot, SlotResult>,
}

impl Default for SlotLog {
    fn default() -> Self {
        SlotLog::new(Self::DEFAULT_RETAIN)
    }
}

impl SlotLog {
    /// Slots kept by [`SlotLog::default`]: four cooldown spans, so a node can still answer about
    /// a few slots before the cooldown window.
    pub const DEFAULT_RETAIN: u64 = 4 * COOLDOWN_SLOTS;

    /// A log keeping the newest `retain` slots; `retain` is raised to 16 if smaller.
    pub fn new(retain: u64) -> Self {
        SlotLog {
            retain: retain.max(COOLDOWN_SLOTS),
            schedules: BTreeMap::new(),
            results: BTreeMap::new(),
        }
    }

    /// The oldest slot the log still accepts and answers for.
    pub fn horizon(&self) -> Slot {
        let newest_schedule = self.schedules.last_key_value().map(|(slot, _)| *slot);
        let newest_result = self.results.last_key_value().map(|(slot, _)| *slot);
        let newest = newest_schedule.max(newest_result);
        // The horizon follows the newest slot written; `retain` ≥ 16 so cooldown stays complete.
        Slot(newest.map_or(0, |s| (s.0 + 1).saturating_sub(self.retain)))
    }

    /// Stores the schedule of its slot unless one is stored: the same schedule again is a no-op,
    /// a different one is [`Error::ScheduleConflict`].
    pub fn insert_schedule(&mut self, schedule: Schedule) -> Result<Recorded, Error> {
        let slot = schedule.slot;
        self.check_horizon(slot)?;
        let recorded = match self.schedules.get(&slot) {
            Some(stored) if *stored == schedule => Recorded::AlreadyPresent,
            Some(_) => return Err(Error::ScheduleConflict { slot }),
            None => {
                self.schedules.insert(slot, schedule);
                Recorded::Inserted
            }
        };
        self.prune();
        Ok(recorded)
    }

    /// Records the result of `slot` unless one is recorded: the same result again is a no-op, a
    /// different one is [`Error::ResultConflict`].
    pub fn record_result(&mut self, slot: Slot, result: SlotResult) -> Result<Recorded, Error> {
        self.check_horizon(slot)?;
        let recorded = match self.results.get(&slot) {
            Some(stored) if *stored == result => Recorded::AlreadyPresent,
            Some(_) => return Err(Error::ResultConflict { slot }),
            None => {
                self.results.insert(slot, result);
                Recorded::Inserted
            }
        };
        self.prune();
        Ok(recorded)
    }

    /// The stored schedule of `slot`.
    pub fn schedule(&self, slot: Slot) -> Option<&Schedule> {
        self.schedules.get(&slot)
    }

    /// The recorded result of `slot`.
    pub fn result(&self, slot: Slot) -> Option<&SlotResult> {
        self.results.get(&slot)
    }

    /// The recorded results for `[slot − 16, slot)`, oldest first: the `recent` input of
    /// [`select`].
    pub fn recent(&self, slot: Slot) -> Vec<(Slot, SlotResult)> {
        let from = Slot(slot.0.saturating_sub(COOLDOWN_SLOTS));
        self.results.range(from..slot).map(|(at, result)| (*at, result.clone())).collect()
    }

    /// Selects the schedule of `slot` from `tally` and this log's recent results, and stores it
    /// insert-if-absent. Returns the stored schedule (the earlier one if it was already stored).
    pub fn schedule_slot(
        &mut self,
        params: &ConsensusParams,
        slot: Slot,
        tally: Option<&Tally>,
    ) -> Result<&Schedule, Error> {
        let schedule = select(params, slot, tally, &self.recent(slot));
        self.insert_schedule(schedule)?;
        // The insert succeeded or found the identical schedule, so the slot has one now.
        self.schedules
            .get(&slot)
            .ok_or_else(|| Error::Bug(lucid_core::internal!("schedule of {slot} lost")))
    }

    fn check_horizon(&self, slot: Slot) -> Result<(), Error> {
        let horizon = self.horizon();
        if slot < horizon {
            return Err(Error::SlotPruned { slot, horizon });
        }
        Ok(())
    }

    fn prune(&mut self) {
        let horizon = self.horizon();
        while self.schedules.first_key_value().is_some_and(|(slot, _)| *slot < horizon) {
            self.schedules.pop_first();
        }
        while self.results.first_key_value().is_some_and(|(slot, _)| *slot < horizon) {
            self.results.pop_first();
        }
    }
}

#[cfg(test)]
mod tests;
