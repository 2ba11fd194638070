//! The `RecordStore` port: tallies (with revisions and settlement), leader schedules and slot
//! results, and an in-memory implementation with the reference semantics.
//!
//! Schedules are insert-if-absent by slot and results compare-and-set from "absent": neither is
//! ever overwritten, and a conflicting write is a typed error (consensus.md §8.4). A tally of an
//! epoch is stored by revision: a higher revision replaces a lower one until the tally is settled,
//! after which it is frozen for ever (§7.4).

use std::collections::BTreeMap;
use std::sync::Mutex;

use lucid_core::{Epoch, Slot, SlotRange, UnixMillis};

use crate::error::Error;
use crate::leader::{Recorded, Schedule, SlotResult};
use crate::tally::Tally;

/// A stored tally with its bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTally {
    /// The tally (current revision).
    pub tally: Tally,
    /// When this revision was computed.
    pub computed_at: UnixMillis,
    /// When the tally was settled; `None` while it may still be revised.
    pub settled_at: Option<UnixMillis>,
}

/// What storing a tally revision did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TallyPut {
    /// The revision is now the current one.
    Stored,
    /// The same revision with the same digest was already stored.
    AlreadyPresent,
    /// A newer revision is already stored; nothing changed.
    Outdated,
    /// The tally is settled; nothing changes any more.
    Settled,
}

/// Persistence of tallies, schedules and slot results.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// Stores `tally` as the current revision of its epoch unless a newer revision is stored or
    /// the epoch is settled. The same revision with a different digest is a conflict (a bug).
    async fn put_tally(&self, tally: &Tally, computed_at: UnixMillis) -> Result<TallyPut, Error>;

    /// Freezes the epoch's tally; `false` if it was settled already or no tally is stored.
    async fn settle_tally(&self, epoch: Epoch, settled_at: UnixMillis) -> Result<bool, Error>;

    /// The current revision of the epoch's tally.
    async fn tally(&self, epoch: Epoch) -> Result<Option<StoredTally>, Error>;

    /// Stores the schedule of its slot if none is stored; the same schedule again is
    /// `AlreadyPresent`; a different one is `Error::ScheduleConflict` and changes nothing.
    async fn insert_schedule(&self, schedule: &Schedule) -> Result<Recorded, Error>;

    /// The schedule of `slot`.
    async fn schedule(&self, slot: Slot) -> Result<Option<Schedule>, Error>;

    /// Records the result of `slot` if none is recorded; the same result again is
    /// `AlreadyPresent`; a different one is `Error::ResultConflict` and changes nothing.
    async fn record_result(&self, slot: Slot, result: &SlotResult) -> Result<Recorded, Error>;

    /// Recorded results with slot in `range`, by slot (the cooldown input of `leader::select`).
    async fn results(&self, range: SlotRange) -> Result<Vec<(Slot, SlotResult)>, Error>;
}

#[derive(Debug, Default)]
struct Records {
    tallies: BTreeMap<Epoch, StoredTally>,
    schedules: BTreeMap<Slot, Schedule>,
    results: BTreeMap<Slot, SlotResult>,
}

/// A `RecordStore` in memory, with the semantics every adapter must match.
#[derive(Debug, Default)]
pub struct MemoryRecordStore {
    records: Mutex<Records>,
}

impl MemoryRecordStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        // Every operation is a single map update, so a poisoned lock still guards consistent data.
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The revision rule shared by every adapter: what storing `incoming` over `stored` does.
pub fn tally_put_rule(stored: Option<&StoredTally>, incoming: &Tally) -> Result<TallyPut, Error> {
    let Some(stored) = stored else { return Ok(TallyPut::Stored) };
    if stored.settled_at.is_some() {
        return Ok(TallyPut::Settled);
    }
    match incoming.revision.cmp(&stored.tally.revision) {
        std::cmp::Ordering::Less => Ok(TallyPut::Outdated),
        std::cmp::Ordering::Greater => Ok(TallyPut::Stored),
        std::cmp::Ordering::Equal if stored.tally.digest == incoming.digest => {
            Ok(TallyPut::AlreadyPresent)
        }
        std::cmp::Ordering::Equal => Err(Error::TallyConflict { epoch: incoming.epoch }),
    }
}

#[async_trait::async_trait]
impl RecordStore for MemoryRecordStore {
    async fn put_tally(&self, tally: &Tally, computed_at: UnixMillis) -> Result<TallyPut, Error> {
        let mut records = self.lock();
        let outcome = tally_put_rule(records.tallies.get(&tally.epoch), tally)?;
        if outcome == TallyPut::Stored {
            records.tallies.insert(
                tally.epoch,
                StoredTally { tally: tally.clone(), computed_at, settled_at: None },
            );
        }
        Ok(outcome)
    }

    async fn settle_tally(&self, epoch: Epoch, settled_at: UnixMillis) -> Result<bool, Error> {
        let mut records = self.lock();
        match records.tallies.get_mut(&epoch) {
            Some(stored) if stored.settled_at.is_none() => {
                stored.settled_at = Some(settled_at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn tally(&self, epoch: Epoch) -> Result<Option<StoredTally>, Error> {
        Ok(self.lock().tallies.get(&epoch).cloned())
    }

    async fn insert_schedule(&self, schedule: &Schedule) -> Result<Recorded, Error> {
        let mut records = self.lock();
        match records.schedules.get(&schedule.slot) {
            None => {
                records.schedules.insert(schedule.slot, schedule.clone());
                Ok(Recorded::Inserted)
            }
            Some(stored) if stored == schedule => Ok(Recorded::AlreadyPresent),
            Some(_) => Err(Error::ScheduleConflict { slot: schedule.slot }),
        }
    }

    async fn schedule(&self, slot: Slot) -> Result<Option<Schedule>, Error> {
        Ok(self.lock().schedules.get(&slot).cloned())
    }

    async fn record_result(&self, slot: Slot, result: &SlotResult) -> Result<Recorded, Error> {
        let mut records = self.lock();
        match records.results.get(&slot) {
            None => {
                records.results.insert(slot, result.clone());
                Ok(Recorded::Inserted)
            }
            Some(stored) if stored == result => Ok(Recorded::AlreadyPresent),
            Some(_) => Err(Error::ResultConflict { slot }),
        }
    }

    async fn results(&self, range: SlotRange) -> Result<Vec<(Slot, SlotResult)>, Error> {
        Ok(self
            .lock()
            .results
            .range(range.start..range.end)
            .map(|(slot, result)| (*slot, result.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests;
