//! `lucid_consensus::records::RecordStore` on SQL: the `tallies`, `tally_entries`,
//! `tally_contributions`, `schedules`, `schedule_fallbacks` and `slot_results` tables of
//! `consensus.md` §10, with the semantics of `MemoryRecordStore`.
//!
//! Every write is one transaction. A tally revision locks its epoch's row (SQLite: the database,
//! by `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR UPDATE`), applies the shared
//! `tally_put_rule` to what is stored, and only then replaces the entries. Schedules and results
//! are `INSERT … ON CONFLICT DO NOTHING`; when the slot was taken, the stored record is read back
//! in the same transaction and compared, so the answer is `AlreadyPresent` or a typed conflict and
//! nothing is ever overwritten. Triggers in the schema refuse any later UPDATE or DELETE of a
//! schedule or result and any change of a settled tally, whatever a bug above might send.
//!
//! Reads are single statements (joins), so each sees one committed state on both backends. What
//! is read back is exactly what was stored: entries in their stored order, the digest as given
//! (not recomputed), and a row that does not decode (unknown keyword, bad entity bytes, missing
//! entries) is an `InvalidRow` error, never a guess.

use lucid_consensus::leader::{
    FallbackAttempt, LeaderReason, NoLeaderReason, Outcome, Recorded, Schedule, SlotResult,
};
use lucid_consensus::records::{RecordStore, StoredTally, TallyPut, tally_put_rule};
use lucid_consensus::tally::{Tally, TallyEntry};
use lucid_core::{Digest, EntityId, Epoch, NodeId, PoolId, Slot, SlotRange, UnixMillis};

use crate::consensus::to_sql;
use crate::database::Database;
use crate::error::Error;
use crate::pools::{Write, blob, text};
use crate::sql::{Columns, Dialect, Row, Value};

/// Columns of one `tally_entries` row (the bind count of one row).
const ENTRY_COLUMNS: usize = 10;
/// Columns of one `tally_contributions` row.
const CONTRIBUTION_COLUMNS: usize = 5;

/// One statement reads a tally: the header joined with its entries and their contributions, in
/// stored order. Column indices are those of [`read_tally`].
const TALLY_SELECT: &str = "SELECT t.window_start, t.window_end, t.revision, t.digest, \
     t.entry_count, t.computed_at, t.settled_at, e.position, e.entity, e.rank, e.credits, \
     e.relay, e.storage, e.validation, e.beacon_slots, e.density_ppm, c.node_id, c.credits \
     FROM tallies t LEFT JOIN tally_entries e ON e.epoch = t.epoch \
     LEFT JOIN tally_contributions c ON c.epoch = e.epoch AND c.entity = e.entity \
     WHERE t.epoch = ";
const TALLY_ORDER: &str = " ORDER BY e.position, c.position";

/// One statement reads a schedule with its fallbacks, in order ([`read_schedule`]).
const SCHEDULE_SELECT: &str = "SELECT s.epoch, s.tally_digest, s.outcome, s.reason, \
     s.primary_entity, s.fallback_count, f.position, f.entity FROM schedules s \
     LEFT JOIN schedule_fallbacks f ON f.slot = s.slot WHERE s.slot = ";
const SCHEDULE_ORDER: &str = " ORDER BY f.position";

/// The columns a slot result is read from ([`read_result`]).
const RESULT_SELECT: &str = "SELECT slot, outcome, winner, attempt, reason FROM slot_results ";

const LEADER_REASONS: [LeaderReason; 3] =
    [LeaderReason::HighestCredits, LeaderReason::CooldownSkip, LeaderReason::RotatedTie];
const NO_LEADER_REASONS: [NoLeaderReason; 3] =
    [NoLeaderReason::TallyPending, NoLeaderReason::NoRankedEntity, NoLeaderReason::AllInCooldown];

fn leader_reason_code(reason: LeaderReason) -> &'static str {
    match reason {
        LeaderReason::HighestCredits => "highest_credits",
        LeaderReason::CooldownSkip => "cooldown_skip",
        LeaderReason::RotatedTie => "rotated_tie",
    }
}

fn no_leader_reason_code(reason: NoLeaderReason) -> &'static str {
    match reason {
        NoLeaderReason::TallyPending => "tally_pending",
        NoLeaderReason::NoRankedEntity => "no_ranked_entity",
        NoLeaderReason::AllInCooldown => "all_in_cooldown",
    }
}

fn entity_value(entity: &EntityId) -> Value {
    let (bytes, len) = entity.to_bytes();
    blob(&bytes[..len])
}

/// Column readers of the records' canonical byte forms.
impl Columns<'_> {
    fn digest_of(&self, bytes: &[u8], column: &str) -> Result<Digest, Error> {
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| self.invalid(format!("{column} is not 32 bytes")))?;
        Ok(Digest::from_bytes(bytes))
    }

    fn node_of(&self, bytes: &[u8], column: &str) -> Result<NodeId, Error> {
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| self.invalid(format!("{column} is not 32 bytes")))?;
        NodeId::from_bytes(bytes).map_err(|_| self.invalid(format!("{column} is not a node id")))
    }

    /// An entity from its canonical bytes (tag, then the id).
    fn entity_of(&self, bytes: &[u8], column: &str) -> Result<EntityId, Error> {
        match bytes.split_first() {
            Some((&EntityId::TAG_NODE, id)) => Ok(EntityId::Node(self.node_of(id, column)?)),
            Some((&EntityId::TAG_POOL, id)) => {
                let id: [u8; 16] = id
                    .try_into()
                    .map_err(|_| self.invalid(format!("{column} is not a 16-byte pool id")))?;
                Ok(EntityId::Pool(PoolId::from_bytes(id)))
            }
            _ => Err(self.invalid(format!("{column} is not an entity"))),
        }
    }
}

/// The rows of one tally, converted before any transaction starts (a value that does not fit a
/// column refuses the whole tally).
struct TallyRows {
    epoch: i64,
    header: [Value; 7],
    entries: Vec<[Value; ENTRY_COLUMNS]>,
    contributions: Vec<[Value; CONTRIBUTION_COLUMNS]>,
}

fn tally_rows(tally: &Tally, computed_at: UnixMillis) -> Result<TallyRows, Error> {
    let epoch = to_sql("epoch", tally.epoch.0)?;
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let header = [
        Value::Int(to_sql("window_start", tally.window.start.0)?),
        Value::Int(to_sql("window_end", tally.window.end.0)?),
        Value::Int(i64::from(tally.revision)),
        blob(tally.digest.as_bytes()),
        Value::Int(count(tally.entries.len())),
        Value::Int(computed_at.0),
        Value::OptInt(None),
    ];
    let mut entries = Vec::with_capacity(tally.entries.len());
    let mut contributions = Vec::new();
    for (position, entry) in tally.entries.iter().enumerate() {
        entries.push([
            Value::Int(epoch),
            Value::Int(count(position)),
            entity_value(&entry.entity),
            Value::OptInt(entry.rank.map(i64::from)),
            Value::Int(to_sql("credits", entry.credits)?),
            Value::Int(to_sql("relay", entry.relay)?),
            Value::Int(to_sql("storage", entry.storage)?),
            Value::Int(to_sql("validation", entry.validation)?),
            Value::Int(to_sql("beacon_slots", entry.beacon_slots)?),
            Value::Int(i64::from(entry.density_ppm)),
        ]);
        for (index, (node, credits)) in entry.contributions.iter().enumerate() {
            contributions.push([
                Value::Int(epoch),
                entity_value(&entry.entity),
                blob(node.as_bytes()),
                Value::Int(count(index)),
                Value::Int(to_sql("contribution credits", *credits)?),
            ]);
        }
    }
    Ok(TallyRows { epoch, header, entries, contributions })
}

/// Reads the tally of `epoch` from the rows of [`TALLY_SELECT`]; `None` when there are none.
fn read_tally(epoch: Epoch, rows: &[Row]) -> Result<Option<StoredTally>, Error> {
    let Some(first) = rows.first() else { return Ok(None) };
    let key = format!("epoch {}", epoch.0);
    let action = "reading a tally";
    let c = Columns::keyed(first, "tallies", action, &key);
    let window = SlotRange {
        start: Slot(c.unsigned(0, "window_start")?),
        end: Slot(c.unsigned(1, "window_end")?),
    };
    let revision = c.u32(2, "revision")?;
    let digest_bytes = first.blob(3).map_err(Error::query(action))?;
    let digest = c.digest_of(&digest_bytes, "digest")?;
    let entry_count = c.unsigned(4, "entry_count")?;
    let computed_at = UnixMillis(c.int(5)?);
    let settled_at = c.opt_int(6)?.map(UnixMillis);

    let mut entries: Vec<TallyEntry> = Vec::new();
    for row in rows {
        let c = Columns::keyed(row, "tally_entries", action, &key);
        let Some(position) = c.opt_int(7)? else { continue };
        let fresh = match entries.len().checked_sub(1) {
            None => true,
            Some(last) => i64::try_from(last).ok() != Some(position),
        };
        if fresh {
            if i64::try_from(entries.len()).ok() != Some(position) {
                return Err(c.invalid(format!("entry position {position} out of sequence")));
            }
            let entity_bytes = row.blob(8).map_err(Error::query(action))?;
            entries.push(TallyEntry {
                entity: c.entity_of(&entity_bytes, "entity")?,
                rank: c
                    .opt_int(9)?
                    .map(u32::try_from)
                    .transpose()
                    .map_err(|_| c.invalid("rank is out of range"))?,
                credits: c.unsigned(10, "credits")?,
                relay: c.unsigned(11, "relay")?,
                storage: c.unsigned(12, "storage")?,
                validation: c.unsigned(13, "validation")?,
                beacon_slots: c.unsigned(14, "beacon_slots")?,
                density_ppm: c.u32(15, "density_ppm")?,
                contributions: Vec::new(),
            });
        }
        if let Some(node) = c.opt_blob(16)? {
            let c = Columns::keyed(row, "tally_contributions", action, &key);
            let credits = c.unsigned(17, "credits")?;
            let node = c.node_of(&node, "node_id")?;
            if let Some(entry) = entries.last_mut() {
                entry.contributions.push((node, credits));
            }
        }
    }
    if u64::try_from(entries.len()).ok() != Some(entry_count) {
        return Err(Error::InvalidRow {
            table: "tallies",
            key,
            detail: format!("{} entries stored, {entry_count} expected", entries.len()),
        });
    }
    let tally = Tally { epoch, window, revision, entries, digest };
    Ok(Some(StoredTally { tally, computed_at, settled_at }))
}

/// The stored schedule of `slot` from the rows of [`SCHEDULE_SELECT`].
fn read_schedule(slot: Slot, rows: &[Row]) -> Result<Option<Schedule>, Error> {
    let Some(first) = rows.first() else { return Ok(None) };
    let key = format!("slot {}", slot.0);
    let c = Columns::keyed(first, "schedules", "reading a schedule", &key);
    let epoch = Epoch(c.unsigned(0, "epoch")?);
    let tally_digest = match c.opt_blob(1)? {
        Some(bytes) => Some(c.digest_of(&bytes, "tally_digest")?),
        None => None,
    };
    let outcome = c.text(2)?;
    let primary = c.opt_blob(4)?;
    let fallback_count = c.unsigned(5, "fallback_count")?;
    let outcome = match (outcome.as_str(), primary) {
        ("leader", Some(primary)) => {
            let reason = c.keyword(3, "reason", &LEADER_REASONS, leader_reason_code)?;
            let mut fallbacks = Vec::new();
            for row in rows {
                let f = Columns { row, table: "schedule_fallbacks", ..c };
                let Some(position) = f.opt_int(6)? else { continue };
                if i64::try_from(fallbacks.len() + 1).ok() != Some(position) {
                    return Err(f.invalid(format!("fallback position {position} out of sequence")));
                }
                let entity = f.opt_blob(7)?.ok_or_else(|| f.invalid("fallback without entity"))?;
                fallbacks.push(f.entity_of(&entity, "entity")?);
            }
            if u64::try_from(fallbacks.len()).ok() != Some(fallback_count) {
                return Err(c.invalid(format!(
                    "{} fallbacks stored, {fallback_count} expected",
                    fallbacks.len()
                )));
            }
            Outcome::Leader { primary: c.entity_of(&primary, "primary_entity")?, fallbacks, reason }
        }
        ("no_leader", None) if fallback_count == 0 => {
            Outcome::NoLeader(c.keyword(3, "reason", &NO_LEADER_REASONS, no_leader_reason_code)?)
        }
        (other, _) => return Err(c.invalid(format!("inconsistent outcome {other:?}"))),
    };
    Ok(Some(Schedule { slot, epoch, tally_digest, outcome }))
}

/// A slot result from a [`RESULT_SELECT`] row.
fn read_result(row: &Row) -> Result<(Slot, SlotResult), Error> {
    let action = "reading a slot result";
    let slot = row.int(0).map_err(Error::query(action))?;
    let key = format!("slot {slot}");
    let c = Columns::keyed(row, "slot_results", action, &key);
    let slot = Slot(c.unsigned(0, "slot")?);
    let winner = match c.opt_blob(2)? {
        Some(bytes) => Some(c.entity_of(&bytes, "winner")?),
        None => None,
    };
    let attempt = c.opt_int(3)?;
    let reason = c.opt_text(4)?;
    let result = match (c.text(1)?.as_str(), winner, attempt, reason) {
        ("success", Some(winner), None, None) => SlotResult::Success { winner },
        ("fallback_success", Some(winner), Some(attempt), None) => {
            let attempt = u8::try_from(attempt)
                .ok()
                .and_then(FallbackAttempt::new)
                .ok_or_else(|| c.invalid(format!("attempt {attempt} out of range")))?;
            SlotResult::FallbackSuccess { winner, attempt }
        }
        ("missed", None, None, None) => SlotResult::Missed,
        ("no_leader", None, None, Some(_)) => SlotResult::NoLeader(c.keyword(
            4,
            "reason",
            &NO_LEADER_REASONS,
            no_leader_reason_code,
        )?),
        (other, ..) => return Err(c.invalid(format!("inconsistent outcome {other:?}"))),
    };
    Ok((slot, result))
}

/// The `slot_results` row of a result, after the slot: outcome, winner, attempt, reason.
fn result_values(result: &SlotResult) -> [Value; 4] {
    match result {
        SlotResult::Success { winner } => {
            [text("success"), entity_value(winner), Value::OptInt(None), Value::OptText(None)]
        }
        SlotResult::FallbackSuccess { winner, attempt } => [
            text("fallback_success"),
            entity_value(winner),
            Value::OptInt(Some(i64::from(attempt.get()))),
            Value::OptText(None),
        ],
        SlotResult::Missed => {
            [text("missed"), Value::OptBlob(None), Value::OptInt(None), Value::OptText(None)]
        }
        SlotResult::NoLeader(reason) => [
            text("no_leader"),
            Value::OptBlob(None),
            Value::OptInt(None),
            Value::OptText(Some(no_leader_reason_code(*reason).to_owned())),
        ],
    }
}

/// Appends multi-row `INSERT`s of `rows` under `head`, chunked below the bind limit.
async fn insert_rows<const N: usize>(
    w: &mut Write,
    max_binds: usize,
    head: &str,
    rows: &[[Value; N]],
    action: &'static str,
) -> Result<(), Error> {
    for chunk in rows.chunks((max_binds / N).max(1)) {
        let mut query = w.query(head);
        for (position, row) in chunk.iter().enumerate() {
            if position > 0 {
                query.push(", ");
            }
            query.tuple(row.iter().cloned());
        }
        w.exec(&mut query, action).await?;
    }
    Ok(())
}

impl Write {
    /// The stored header of `epoch`'s tally (entries left out), locked until the end of the
    /// transaction: what [`tally_put_rule`] needs.
    async fn lock_tally(
        &mut self,
        epoch: Epoch,
        dialect: Dialect,
    ) -> Result<Option<StoredTally>, Error> {
        let mut q = self.query(
            "SELECT window_start, window_end, revision, digest, entry_count, computed_at, \
             settled_at FROM tallies WHERE epoch = ",
        );
        q.bind(Value::Int(to_sql("epoch", epoch.0)?));
        if dialect == Dialect::Postgres {
            q.push(" FOR UPDATE");
        }
        let rows = self.rows(&mut q, "locking a tally").await?;
        // The header alone: no entry columns, so the entry count check is skipped below.
        let Some(row) = rows.first() else { return Ok(None) };
        let key = format!("epoch {}", epoch.0);
        let c = Columns::keyed(row, "tallies", "locking a tally", &key);
        let digest_bytes = row.blob(3).map_err(Error::query(c.action))?;
        let tally = Tally {
            epoch,
            window: SlotRange {
                start: Slot(c.unsigned(0, "window_start")?),
                end: Slot(c.unsigned(1, "window_end")?),
            },
            revision: c.u32(2, "revision")?,
            entries: Vec::new(),
            digest: c.digest_of(&digest_bytes, "digest")?,
        };
        Ok(Some(StoredTally {
            tally,
            computed_at: UnixMillis(c.int(5)?),
            settled_at: c.opt_int(6)?.map(UnixMillis),
        }))
    }
}

/// What a write of a record did, or the typed refusal of the record store.
type Verdict<T> = Result<T, lucid_consensus::Error>;

impl Database {
    async fn put_tally_sql(
        &self,
        tally: &Tally,
        computed_at: UnixMillis,
    ) -> Result<Verdict<TallyPut>, Error> {
        let rows = tally_rows(tally, computed_at)?;
        let mut w = self.write().await?;
        let mut stored = w.lock_tally(tally.epoch, self.dialect()).await?;
        if stored.is_none() {
            // Claim the epoch. On PostgreSQL a concurrent writer may have inserted it since the
            // lock query (which locked nothing); then this inserts nothing and the row it waited
            // for is locked and judged instead.
            let mut q = w.query(
                "INSERT INTO tallies (epoch, window_start, window_end, revision, digest, \
                 entry_count, computed_at, settled_at) VALUES ",
            );
            q.tuple(std::iter::once(Value::Int(rows.epoch)).chain(rows.header.iter().cloned()));
            q.push(" ON CONFLICT (epoch) DO NOTHING");
            if w.exec(&mut q, "inserting a tally").await? == 0 {
                stored = w.lock_tally(tally.epoch, self.dialect()).await?;
                if stored.is_none() {
                    return Err(
                        lucid_core::internal!("tally row neither inserted nor found").into()
                    );
                }
            }
        }
        let outcome = match tally_put_rule(stored.as_ref(), tally) {
            Ok(outcome) => outcome,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if outcome != TallyPut::Stored {
            return Ok(Ok(outcome));
        }
        let epoch = Value::Int(rows.epoch);
        if stored.is_some() {
            // A newer revision: replace the entries and the header.
            let mut q = w.query("DELETE FROM tally_contributions WHERE epoch = ");
            q.bind(epoch.clone());
            w.exec(&mut q, "deleting replaced contributions").await?;
            let mut q = w.query("DELETE FROM tally_entries WHERE epoch = ");
            q.bind(epoch.clone());
            w.exec(&mut q, "deleting replaced tally entries").await?;
            let mut q = w.query("UPDATE tallies SET ");
            let [start, end, revision, digest, count, computed, settled] = rows.header.clone();
            q.push("window_start = ").bind(start);
            q.push(", window_end = ").bind(end);
            q.push(", revision = ").bind(revision);
            q.push(", digest = ").bind(digest);
            q.push(", entry_count = ").bind(count);
            q.push(", computed_at = ").bind(computed);
            q.push(", settled_at = ").bind(settled);
            q.push(" WHERE epoch = ").bind(epoch);
            if w.exec(&mut q, "updating a tally").await? != 1 {
                return Err(lucid_core::internal!("a locked tally row vanished").into());
            }
        }
        insert_rows(
            &mut w,
            self.max_binds(),
            "INSERT INTO tally_entries (epoch, position, entity, rank, credits, relay, storage, \
             validation, beacon_slots, density_ppm) VALUES ",
            &rows.entries,
            "inserting tally entries",
        )
        .await?;
        insert_rows(
            &mut w,
            self.max_binds(),
            "INSERT INTO tally_contributions (epoch, entity, node_id, position, credits) VALUES ",
            &rows.contributions,
            "inserting tally contributions",
        )
        .await?;
        w.commit().await?;
        Ok(Ok(TallyPut::Stored))
    }

    async fn settle_tally_sql(&self, epoch: Epoch, settled_at: UnixMillis) -> Result<bool, Error> {
        let Ok(epoch) = i64::try_from(epoch.0) else { return Ok(false) };
        let mut w = self.write().await?;
        let mut q = w.query("UPDATE tallies SET settled_at = ");
        q.bind(Value::Int(settled_at.0));
        q.push(" WHERE epoch = ").bind(Value::Int(epoch)).push(" AND settled_at IS NULL");
        let changed = w.exec(&mut q, "settling a tally").await?;
        w.commit().await?;
        Ok(changed == 1)
    }

    async fn tally_sql(&self, epoch: Epoch) -> Result<Option<StoredTally>, Error> {
        let Ok(key) = i64::try_from(epoch.0) else { return Ok(None) };
        let mut q = self.query(TALLY_SELECT);
        q.bind(Value::Int(key)).push(TALLY_ORDER);
        let rows = self.read(&mut q, "reading a tally").await?;
        read_tally(epoch, &rows)
    }

    async fn insert_schedule_sql(&self, schedule: &Schedule) -> Result<Verdict<Recorded>, Error> {
        let slot = Value::Int(to_sql("slot", schedule.slot.0)?);
        let (outcome, reason, primary, fallbacks) = match &schedule.outcome {
            Outcome::Leader { primary, fallbacks, reason } => {
                ("leader", leader_reason_code(*reason), Some(primary), fallbacks.as_slice())
            }
            Outcome::NoLeader(reason) => {
                ("no_leader", no_leader_reason_code(*reason), None, &[][..])
            }
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut q = self.query(
            "INSERT INTO schedules (slot, epoch, tally_digest, outcome, reason, primary_entity, \
             fallback_count) VALUES ",
        );
        q.tuple([
            slot.clone(),
            Value::Int(to_sql("epoch", schedule.epoch.0)?),
            Value::OptBlob(schedule.tally_digest.map(|d| d.as_bytes().to_vec())),
            text(outcome),
            text(reason),
            primary.map_or(Value::OptBlob(None), entity_value),
            Value::Int(count(fallbacks.len())),
        ]);
        q.push(" ON CONFLICT (slot) DO NOTHING");
        let fallback_rows: Vec<[Value; 3]> = fallbacks
            .iter()
            .enumerate()
            .map(|(index, entity)| {
                [slot.clone(), Value::Int(count(index + 1)), entity_value(entity)]
            })
            .collect();

        let mut w = self.write().await?;
        if w.exec(&mut q, "inserting a schedule").await? == 1 {
            insert_rows(
                &mut w,
                self.max_binds(),
                "INSERT INTO schedule_fallbacks (slot, position, entity) VALUES ",
                &fallback_rows,
                "inserting schedule fallbacks",
            )
            .await?;
            w.commit().await?;
            return Ok(Ok(Recorded::Inserted));
        }
        let mut q = w.query(SCHEDULE_SELECT);
        q.bind(slot).push(SCHEDULE_ORDER);
        let rows = w.rows(&mut q, "reading back a taken schedule").await?;
        let stored = read_schedule(schedule.slot, &rows)?
            .ok_or_else(|| lucid_core::internal!("schedule neither inserted nor found"))?;
        w.commit().await?;
        Ok(if stored == *schedule {
            Ok(Recorded::AlreadyPresent)
        } else {
            Err(lucid_consensus::Error::ScheduleConflict { slot: schedule.slot })
        })
    }

    async fn schedule_sql(&self, slot: Slot) -> Result<Option<Schedule>, Error> {
        let Ok(key) = i64::try_from(slot.0) else { return Ok(None) };
        let mut q = self.query(SCHEDULE_SELECT);
        q.bind(Value::Int(key)).push(SCHEDULE_ORDER);
        let rows = self.read(&mut q, "reading a schedule").await?;
        read_schedule(slot, &rows)
    }

    async fn record_result_sql(
        &self,
        slot: Slot,
        result: &SlotResult,
    ) -> Result<Verdict<Recorded>, Error> {
        let key = Value::Int(to_sql("slot", slot.0)?);
        let mut q =
            self.query("INSERT INTO slot_results (slot, outcome, winner, attempt, reason) VALUES ");
        q.tuple(std::iter::once(key.clone()).chain(result_values(result)));
        q.push(" ON CONFLICT (slot) DO NOTHING");
        // One transaction: the insert, and when the slot was taken, the read-back it is judged by.
        let mut w = self.write().await?;
        if w.exec(&mut q, "recording a slot result").await? == 1 {
            w.commit().await?;
            return Ok(Ok(Recorded::Inserted));
        }
        let mut q = w.query(RESULT_SELECT);
        q.push("WHERE slot = ").bind(key);
        let rows = w.rows(&mut q, "reading back a recorded slot result").await?;
        let (_, stored) = rows
            .first()
            .map(read_result)
            .transpose()?
            .ok_or_else(|| lucid_core::internal!("slot result neither inserted nor found"))?;
        w.commit().await?;
        Ok(if stored == *result {
            Ok(Recorded::AlreadyPresent)
        } else {
            Err(lucid_consensus::Error::ResultConflict { slot })
        })
    }

    async fn results_sql(&self, range: SlotRange) -> Result<Vec<(Slot, SlotResult)>, Error> {
        // Slots beyond BIGINT are never stored, so a range starting there is empty.
        let Ok(start) = i64::try_from(range.start.0) else { return Ok(Vec::new()) };
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = self.query(RESULT_SELECT);
        q.push("WHERE slot >= ").bind(Value::Int(start));
        // An end beyond the BIGINT range is no bound at all: every stored slot lies below it.
        if let Ok(end) = i64::try_from(range.end.0) {
            q.push(" AND slot < ").bind(Value::Int(end));
        }
        q.push(" ORDER BY slot");
        let rows = self.read(&mut q, "reading slot results").await?;
        rows.iter().map(read_result).collect()
    }
}

/// A storage failure as the record store's error; a typed refusal passes through unchanged.
fn flatten<T>(result: Result<Verdict<T>, Error>, action: &'static str) -> Verdict<T> {
    result.map_err(|error| error.into_store(action))?
}

#[async_trait::async_trait]
impl RecordStore for Database {
    async fn put_tally(
        &self,
        tally: &Tally,
        computed_at: UnixMillis,
    ) -> Result<TallyPut, lucid_consensus::Error> {
        flatten(self.put_tally_sql(tally, computed_at).await, "storing a tally")
    }

    async fn settle_tally(
        &self,
        epoch: Epoch,
        settled_at: UnixMillis,
    ) -> Result<bool, lucid_consensus::Error> {
        self.settle_tally_sql(epoch, settled_at).await.map_err(|e| e.into_store("settling a tally"))
    }

    async fn tally(&self, epoch: Epoch) -> Result<Option<StoredTally>, lucid_consensus::Error> {
        self.tally_sql(epoch).await.map_err(|e| e.into_store("reading a tally"))
    }

    async fn insert_schedule(
        &self,
        schedule: &Schedule,
    ) -> Result<Recorded, lucid_consensus::Error> {
        flatten(self.insert_schedule_sql(schedule).await, "storing a schedule")
    }

    async fn schedule(&self, slot: Slot) -> Result<Option<Schedule>, lucid_consensus::Error> {
        self.schedule_sql(slot).await.map_err(|e| e.into_store("reading a schedule"))
    }

    async fn record_result(
        &self,
        slot: Slot,
        result: &SlotResult,
    ) -> Result<Recorded, lucid_consensus::Error> {
        flatten(self.record_result_sql(slot, result).await, "recording a slot result")
    }

    async fn results(
        &self,
        range: SlotRange,
    ) -> Result<Vec<(Slot, SlotResult)>, lucid_consensus::Error> {
        self.results_sql(range).await.map_err(|e| e.into_store("reading slot results"))
    }
}
