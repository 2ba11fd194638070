//! The consensus records loop: at every due time, first the tally work ([`TallyKeeper`]), then
//! the schedules and results ([`ScheduleKeeper`]).
//!
//! One loop drives both because they depend on each other at the same instant: the schedule of
//! slot `720e + 2` needs the tally of epoch e that is computed at that slot's start. Two loops
//! waking at the same time could store that schedule as `NoLeader(TallyPending)` for ever
//! (schedules are write-once); one loop orders the steps. A failing tally step stops the tick
//! before any schedule is written, so a transient store error can never freeze a schedule made
//! without its tally.

use lucid_core::UnixMillis;

use super::ServiceError;
use super::runner::Service;
use super::schedule::ScheduleKeeper;
use super::tally::TallyKeeper;

/// Tallies, schedules and results, in that order, every slot.
pub struct ConsensusRecordsService {
    tally: TallyKeeper,
    schedule: ScheduleKeeper,
}

impl ConsensusRecordsService {
    /// The loop over both keepers.
    pub fn new(tally: TallyKeeper, schedule: ScheduleKeeper) -> Self {
        ConsensusRecordsService { tally, schedule }
    }

    /// The tally keeper (for the late-acceptance path).
    pub fn tally(&self) -> &TallyKeeper {
        &self.tally
    }

    /// The schedule keeper.
    pub fn schedule(&self) -> &ScheduleKeeper {
        &self.schedule
    }
}

#[async_trait::async_trait]
impl Service for ConsensusRecordsService {
    fn name(&self) -> &'static str {
        "consensus_records"
    }

    fn next_due(&self, after: UnixMillis) -> UnixMillis {
        // Tally work is due at slot starts (`720e + 2` and `720(e + 1)`), and the schedule keeper
        // wakes at every slot start and every result time.
        self.schedule.next_due(after)
    }

    async fn tick(&mut self, now: UnixMillis) -> Result<(), ServiceError> {
        self.tally.catch_up(now).await?;
        self.schedule.catch_up(now).await
    }
}
