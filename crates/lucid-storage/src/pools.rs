//! `lucid_pools::PoolStore` on SQL: the `pools` and `pool_members` tables of `pools-payouts.md`
//! §6, with the semantics of `MemoryPoolStore`.
//!
//! Every mutating method is one write transaction (§2.4, §8 T1 and T2). It first locks the pool
//! row (SQLite: the whole database, by `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR UPDATE`),
//! then checks its preconditions in the order `MemoryPoolStore` does, then writes. Every change of
//! a pool row increments its version; seating is the conditional `UPDATE pools SET seats = seats
//! + 1 … WHERE seats < max_nodes AND status <> 'disbanded'`, which must affect exactly one row;
//! `set_max_nodes` is a compare-and-set on the version. The partial unique indexes of the schema
//! are the last word on one seat per node: a node racing into two pools on PostgreSQL (two pool
//! rows, two locks) loses at the index, and that is reported as `AlreadyInPool`, never an error.
//!
//! A batch of Joins (`log_joins`, the group commit of the API) names several pools: it locks all
//! of them first, in ascending `pool_id` order in one statement, so two concurrent batches never
//! wait on each other in a cycle. A deadlock or serialization failure that PostgreSQL still
//! reports (`40P01`, `40001`, say against a transaction of another kind) aborts the whole batch,
//! which is then run again a bounded number of times; it is never the refusal of a Join. Inside
//! its transaction a batch is checked in memory and written with multi-row inserts
//! (`pools/joins.rs`), falling back to one Join per savepoint when the database refuses them.
//!
//! Reads go to the store every time; nothing is cached.

use std::collections::BTreeSet;

use lucid_consensus::tally::MembershipTimeline;
use lucid_core::SignedMessage;
use lucid_core::{Digest, NodeId, PoolId, Slot};
use lucid_pools::checks;
use lucid_pools::log::{LogOutcome, LoggedOp, OpState, SignedOp, settled_states};
use lucid_pools::model::{
    Liveness, MemberStatus, Membership, Pool, PoolStatus, Role, choose_successor,
};
use lucid_pools::state::{OpOutcome, OpResult, PoolState, RejectReason};
use lucid_pools::store::{
    CloseOutcome, CreateOutcome, DisbandOutcome, Effect, EffectOutcome, JoinAdmission, JoinAdvice,
    NewPool, PoolStore, SeatOutcome, SetMaxNodesOutcome, Settled, Settlement, StoredPool,
    UnbanOutcome,
};

use crate::consensus::to_sql;
use crate::database::Database;
use crate::error::Error;
use crate::sql::{Columns, Dialect, Query, Row, Tx, Value};

mod joins;

/// The rows that hold a seat.
const SEAT: &str = "status IN ('active', 'degraded', 'leaving')";
/// The columns a pool is read from, in the order [`read_pool`] expects.
const POOL_SELECT: &str = "SELECT pool_id, name, founder, leader, status, max_nodes, seats, \
     created_slot, disbanded_slot, version FROM pools ";
/// The columns a membership is read from, in the order [`read_member`] expects.
const MEMBER_SELECT: &str = "SELECT pool_id, node_id, role, status, from_slot, to_slot, \
     op_digest, reason FROM pool_members ";
/// The columns a logged op is read from, in the order [`read_logged`] expects.
const OP_SELECT: &str =
    "SELECT digest, signed_bytes, signature, state, reason, applied_slot FROM pool_ops ";
/// Every reject reason, to read a stored code back.
const REASONS: [RejectReason; 10] = [
    RejectReason::PoolNotFound,
    RejectReason::PoolDisbanded,
    RejectReason::PoolFull,
    RejectReason::AlreadyInPool,
    RejectReason::NotMember,
    RejectReason::Banned,
    RejectReason::NotLeader,
    RejectReason::BelowSeats,
    RejectReason::InvalidName,
    RejectReason::InvalidMaxNodes,
];
const POOL_STATUSES: [PoolStatus; 4] =
    [PoolStatus::Forming, PoolStatus::Active, PoolStatus::Degraded, PoolStatus::Disbanded];
const MEMBER_STATUSES: [MemberStatus; 7] = [
    MemberStatus::Joining,
    MemberStatus::Active,
    MemberStatus::Degraded,
    MemberStatus::Leaving,
    MemberStatus::Banned,
    MemberStatus::Closed,
    MemberStatus::Rejected,
];

pub(crate) fn blob(bytes: &[u8]) -> Value {
    Value::Blob(bytes.to_vec())
}

pub(crate) fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn slot(field: &'static str, slot: Slot) -> Result<Value, Error> {
    Ok(Value::Int(to_sql(field, slot.0)?))
}

fn read_pool(row: &Row) -> Result<StoredPool, Error> {
    let c = Columns::new(row, "pools", "reading a pool");
    let max_nodes = c.unsigned(5, "max_nodes")?;
    let seats = c.unsigned(6, "seats")?;
    let pool = Pool {
        pool_id: PoolId::from_bytes(c.bytes(0, "pool_id")?),
        name: row.text(1).map_err(Error::query(c.action))?,
        founder: c.node(2, "founder")?,
        leader: c.node(3, "leader")?,
        status: c.keyword(4, "status", &POOL_STATUSES, PoolStatus::as_str)?,
        max_nodes: u8::try_from(max_nodes)
            .map_err(|_| c.invalid(format!("max_nodes {max_nodes} out of range")))?,
        seats: u32::try_from(seats)
            .map_err(|_| c.invalid(format!("seats {seats} out of range")))?,
        created_slot: Slot(c.unsigned(7, "created_slot")?),
        disbanded_slot: c.opt_unsigned(8, "disbanded_slot")?.map(Slot),
    };
    Ok(StoredPool { pool, version: c.unsigned(9, "version")? })
}

fn read_member(row: &Row) -> Result<Membership, Error> {
    let c = Columns::new(row, "pool_members", "reading a membership");
    let reason = match row.opt_text(7).map_err(Error::query(c.action))? {
        None => None,
        Some(code) => Some(
            REASONS
                .iter()
                .copied()
                .find(|r| r.code() == code)
                .ok_or_else(|| c.invalid(format!("unknown reason {code:?}")))?,
        ),
    };
    Ok(Membership {
        pool_id: PoolId::from_bytes(c.bytes(0, "pool_id")?),
        node_id: c.node(1, "node_id")?,
        role: c.keyword(2, "role", &[Role::Leader, Role::Member], Role::as_str)?,
        status: c.keyword(3, "status", &MEMBER_STATUSES, MemberStatus::as_str)?,
        from_slot: Slot(c.unsigned(4, "from_slot")?),
        to_slot: c.opt_unsigned(5, "to_slot")?.map(Slot),
        op_digest: Digest::from_bytes(c.bytes(6, "op_digest")?),
        reason,
    })
}

fn read_reason(c: &Columns<'_>, row: &Row, index: usize) -> Result<Option<RejectReason>, Error> {
    match row.opt_text(index).map_err(Error::query(c.action))? {
        None => Ok(None),
        Some(code) => REASONS
            .iter()
            .copied()
            .find(|r| r.code() == code)
            .map(Some)
            .ok_or_else(|| c.invalid(format!("unknown reason {code:?}"))),
    }
}

/// A logged op from an [`OP_SELECT`] row: decoded from its signed bytes and checked against the
/// digest column.
fn read_logged(row: &Row) -> Result<LoggedOp, Error> {
    let c = Columns::new(row, "pool_ops", "reading a logged pool op");
    let digest: [u8; 32] = c.bytes(0, "digest")?;
    let bytes = c.blob(1)?;
    let signature: [u8; 64] = c.bytes(2, "signature")?;
    let message = SignedMessage::new(bytes, lucid_core::Signature::from_bytes(signature));
    let (_network, op) = SignedOp::decode(message)
        .map_err(|error| c.invalid(format!("signed bytes do not decode: {error}")))?;
    if op.digest().as_bytes() != &digest {
        return Err(c.invalid("digest does not match the signed bytes"));
    }
    let reason = read_reason(&c, row, 4)?;
    let at = c.opt_unsigned(5, "applied_slot")?.map(Slot);
    let state = match (row.text(3).map_err(Error::query(c.action))?.as_str(), at, reason) {
        ("pending", None, None) => OpState::Pending,
        ("applied", Some(at), None) => OpState::Applied { at },
        ("rejected", Some(at), Some(reason)) => OpState::Rejected { at, reason },
        (state, ..) => return Err(c.invalid(format!("inconsistent state {state:?}"))),
    };
    Ok(LoggedOp { op, state })
}

/// The state columns (state, reason, applied_slot) of `state`.
fn state_values(state: OpState) -> Result<[Value; 3], Error> {
    let (reason, at) = match state {
        OpState::Pending => (None, None),
        OpState::Applied { at } => (None, Some(to_sql("applied_slot", at.0)?)),
        OpState::Rejected { at, reason } => {
            (Some(reason.code().to_owned()), Some(to_sql("applied_slot", at.0)?))
        }
    };
    Ok([text(state.as_str()), Value::OptText(reason), Value::OptInt(at)])
}

/// Whether `error` is a unique-index violation (a concurrent transaction took the key first).
fn unique_violation(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            Some(format!("{} {}", db.constraint().unwrap_or_default(), db.message()))
        }
        _ => None,
    }
}

/// Whether `error` is PostgreSQL aborting a transaction that may well succeed when run again: a
/// serialization failure (`40001`) or the victim of a deadlock (`40P01`). Such an error says
/// nothing about the ops of the transaction, so it is never turned into a refusal of one.
fn is_transient_conflict(error: &Error) -> bool {
    let Error::Query { source, .. } = error else { return false };
    match &**source {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// Runs of one batch of Joins ([`PoolStore::log_joins`]) that the database may abort with a
/// transient conflict ([`is_transient_conflict`]) before the error reaches the callers.
const JOIN_BATCH_ATTEMPTS: u32 = 4;

/// An open write transaction with its dialect.
pub(crate) struct Write {
    pub(crate) tx: Tx,
    dialect: Dialect,
}

/// At most one row when `node` has a logged Create or Join still pending: the one query of
/// this fact, for reads outside a transaction and inside one.
fn pending_seat_request(dialect: Dialect, node: &NodeId) -> Query {
    let mut q = Query::new(dialect, "SELECT 1 FROM pool_ops WHERE node_id = ");
    q.bind(blob(node.as_bytes()));
    q.push(" AND state = 'pending' AND tag IN (");
    q.bind(Value::Int(i64::from(lucid_pools::OpTag::Create.wire())));
    q.push(", ").bind(Value::Int(i64::from(lucid_pools::OpTag::Join.wire())));
    q.push(") LIMIT 1");
    q
}

/// `COUNT(*)` of the `joining` rows of `pool` (the Joins accepted and not yet applied).
fn pending_joins(dialect: Dialect, pool: &PoolId) -> Query {
    let mut q = Query::new(dialect, "SELECT COUNT(*) FROM pool_members WHERE pool_id = ");
    q.bind(blob(pool.as_bytes())).push(" AND status = 'joining'");
    q
}

/// The count a [`pending_joins`] query answered.
fn pending_joins_count(rows: &[Row]) -> Result<u64, Error> {
    let Some(row) = rows.first() else { return Ok(0) };
    Columns::new(row, "pool_members", "counting pending joins").unsigned(0, "count")
}

impl Write {
    pub(crate) fn query(&self, sql: &str) -> Query {
        Query::new(self.dialect, sql)
    }

    pub(crate) async fn rows(
        &mut self,
        query: &mut Query,
        action: &'static str,
    ) -> Result<Vec<Row>, Error> {
        self.tx.fetch_all(query).await.map_err(Error::query(action))
    }

    pub(crate) async fn exec(
        &mut self,
        query: &mut Query,
        action: &'static str,
    ) -> Result<u64, Error> {
        self.tx.execute(query).await.map_err(Error::query(action))
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await.map_err(Error::query("committing a write"))
    }

    /// The pool row, locked until the end of the transaction (PostgreSQL: `FOR UPDATE`; SQLite
    /// holds the database write lock since `BEGIN IMMEDIATE`).
    async fn lock_pool(&mut self, pool: &PoolId) -> Result<Option<StoredPool>, Error> {
        let mut q = self.query(POOL_SELECT);
        q.push("WHERE pool_id = ").bind(blob(pool.as_bytes()));
        if self.dialect == Dialect::Postgres {
            q.push(" FOR UPDATE");
        }
        let rows = self.rows(&mut q, "locking a pool").await?;
        rows.first().map(read_pool).transpose()
    }

    /// Locks the rows of `pools` (those that exist) until the end of the transaction, in
    /// ascending `pool_id` order, in one statement (PostgreSQL: `… ORDER BY pool_id FOR UPDATE`
    /// locks the rows in the order it returns them; SQLite holds the database write lock since
    /// `BEGIN IMMEDIATE`). Two transactions that take all their pool locks this way before any
    /// other wait for each other's pools at most one way round, never in a cycle.
    async fn lock_pools_in_order(&mut self, pools: &BTreeSet<PoolId>) -> Result<(), Error> {
        if self.dialect != Dialect::Postgres || pools.is_empty() {
            return Ok(());
        }
        let mut q = self.query("SELECT pool_id FROM pools WHERE pool_id IN (");
        for (index, pool) in pools.iter().enumerate() {
            if index > 0 {
                q.push(", ");
            }
            q.bind(blob(pool.as_bytes()));
        }
        q.push(") ORDER BY pool_id FOR UPDATE");
        self.rows(&mut q, "locking the pools of a batch").await?;
        Ok(())
    }

    /// Whether a row matches `condition` (a `WHERE` clause built by the caller).
    async fn exists(&mut self, mut q: Query, action: &'static str) -> Result<bool, Error> {
        q.push(" LIMIT 1");
        Ok(!self.rows(&mut q, action).await?.is_empty())
    }

    async fn node_has_seat(&mut self, node: &NodeId) -> Result<bool, Error> {
        let mut q = self.query("SELECT 1 FROM pool_members WHERE node_id = ");
        q.bind(blob(node.as_bytes())).push(" AND ").push(SEAT);
        self.exists(q, "looking up a node's seat").await
    }

    /// The id, role and status of the seat of `node` in `pool`.
    async fn seat_in(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
    ) -> Result<Option<(i64, Role, MemberStatus)>, Error> {
        let mut q = self.query("SELECT id, role, status FROM pool_members WHERE pool_id = ");
        q.bind(blob(pool.as_bytes())).push(" AND node_id = ").bind(blob(node.as_bytes()));
        q.push(" AND ").push(SEAT);
        let rows = self.rows(&mut q, "looking up a seat").await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let c = Columns::new(row, "pool_members", "reading a seat");
        let id = row.int(0).map_err(Error::query(c.action))?;
        let role = c.keyword(1, "role", &[Role::Leader, Role::Member], Role::as_str)?;
        let status = c.keyword(2, "status", &MEMBER_STATUSES, MemberStatus::as_str)?;
        Ok(Some((id, role, status)))
    }

    /// Turns the `joining` row of the same Join into `row`, or inserts `row` when there is none.
    async fn upsert_join_row(&mut self, row: &Membership) -> Result<(), Error> {
        let mut q = self.query("UPDATE pool_members SET pool_id = ");
        q.bind(blob(row.pool_id.as_bytes()));
        q.push(", role = ").bind(text(row.role.as_str()));
        q.push(", status = ").bind(text(row.status.as_str()));
        q.push(", from_slot = ").bind(slot("from_slot", row.from_slot)?);
        q.push(", to_slot = ").bind(Value::OptInt(match row.to_slot {
            Some(s) => Some(to_sql("to_slot", s.0)?),
            None => None,
        }));
        q.push(", reason = ").bind(Value::OptText(row.reason.map(|r| r.code().to_owned())));
        q.push(" WHERE op_digest = ").bind(blob(row.op_digest.as_bytes()));
        q.push(" AND node_id = ").bind(blob(row.node_id.as_bytes()));
        q.push(" AND status = 'joining'");
        if self.exec(&mut q, "updating a joining row").await? == 0 {
            self.insert_member(row).await?;
        }
        Ok(())
    }

    async fn insert_member(&mut self, row: &Membership) -> Result<(), Error> {
        let mut q = self.query(
            "INSERT INTO pool_members (pool_id, node_id, role, status, from_slot, to_slot, \
             op_digest, reason) VALUES ",
        );
        q.tuple([
            blob(row.pool_id.as_bytes()),
            blob(row.node_id.as_bytes()),
            text(row.role.as_str()),
            text(row.status.as_str()),
            slot("from_slot", row.from_slot)?,
            Value::OptInt(match row.to_slot {
                Some(s) => Some(to_sql("to_slot", s.0)?),
                None => None,
            }),
            blob(row.op_digest.as_bytes()),
            Value::OptText(row.reason.map(|r| r.code().to_owned())),
        ]);
        self.exec(&mut q, "inserting a membership").await?;
        Ok(())
    }

    /// Recomputes the status of `pool` from its rows in status `active`, bumping the version
    /// when it changes.
    async fn refresh_status(&mut self, pool: &PoolId) -> Result<(), Error> {
        let mut q = self.query(
            "SELECT status, (SELECT COUNT(*) FROM pool_members WHERE pool_id = p.pool_id AND \
             status = 'active') FROM pools p WHERE pool_id = ",
        );
        q.bind(blob(pool.as_bytes()));
        let rows = self.rows(&mut q, "counting active members").await?;
        let Some(row) = rows.first() else { return Ok(()) };
        let c = Columns::new(row, "pools", "counting active members");
        let status = c.keyword(0, "status", &POOL_STATUSES, PoolStatus::as_str)?;
        let active = usize::try_from(c.unsigned(1, "active count")?).unwrap_or(usize::MAX);
        let next = status.recompute(active);
        if next != status {
            let mut q = self.query("UPDATE pools SET status = ");
            q.bind(text(next.as_str())).push(", version = version + 1 WHERE pool_id = ");
            q.bind(blob(pool.as_bytes()));
            self.exec(&mut q, "updating a pool status").await?;
        }
        Ok(())
    }

    async fn create_pool_in(&mut self, new: &NewPool) -> Result<CreateOutcome, Error> {
        // The bounds first, before any lock is taken (the first check of `create_refusal`).
        if let Some(refusal) = checks::create_refusal(new.max_nodes, false, false) {
            return Ok(refusal);
        }
        let exists = self.lock_pool(&new.pool_id).await?.is_some();
        let founder_has_seat = !exists && self.node_has_seat(&new.founder).await?;
        if let Some(refusal) = checks::create_refusal(new.max_nodes, exists, founder_has_seat) {
            return Ok(refusal);
        }
        let mut q = self.query(
            "INSERT INTO pools (pool_id, name, founder, leader, status, max_nodes, seats, \
             created_slot, disbanded_slot, version) VALUES ",
        );
        q.tuple([
            blob(new.pool_id.as_bytes()),
            text(&new.name),
            blob(new.founder.as_bytes()),
            blob(new.founder.as_bytes()),
            text(PoolStatus::Forming.as_str()),
            Value::Int(i64::from(new.max_nodes)),
            Value::Int(1),
            slot("created_slot", new.created_slot)?,
            Value::OptInt(None),
            Value::Int(1),
        ]);
        match self.tx.execute(&mut q).await {
            Ok(_) => {}
            Err(error) if unique_violation(&error).is_some() => {
                return Ok(CreateOutcome::PoolExists);
            }
            Err(error) => return Err(Error::query("inserting a pool")(error)),
        }
        let founder = Membership {
            pool_id: new.pool_id,
            node_id: new.founder,
            role: Role::Leader,
            status: MemberStatus::Active,
            from_slot: new.created_slot,
            to_slot: None,
            op_digest: new.op_digest,
            reason: None,
        };
        match self.insert_member(&founder).await {
            Ok(()) => {}
            Err(Error::Query { source, .. }) if unique_violation(&source).is_some() => {
                return Ok(CreateOutcome::AlreadyInPool);
            }
            Err(error) => return Err(error),
        }
        self.refresh_status(&new.pool_id).await?;
        Ok(CreateOutcome::Created)
    }

    async fn seat_in_pool(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, Error> {
        let stored = self.lock_pool(pool).await?;
        // Facts the checks would not reach are not looked up (no pool, or a disbanded one).
        let mut facts =
            checks::SeatFacts { node_has_seat: false, banned: false, leader_seated: false };
        if stored.as_ref().is_some_and(|s| s.pool.status != PoolStatus::Disbanded) {
            facts.node_has_seat = self.node_has_seat(node).await?;
            let mut q = self.query("SELECT 1 FROM pool_members WHERE pool_id = ");
            q.bind(blob(pool.as_bytes())).push(" AND node_id = ").bind(blob(node.as_bytes()));
            q.push(" AND status = 'banned'");
            facts.banned = self.exists(q, "looking up a ban").await?;
            if role == Role::Leader {
                let mut q = self.query("SELECT 1 FROM pool_members WHERE pool_id = ");
                q.bind(blob(pool.as_bytes())).push(" AND role = 'leader' AND ").push(SEAT);
                facts.leader_seated = self.exists(q, "looking up a leader seat").await?;
            }
        }
        if let Some(refusal) = checks::seat_refusal(stored.as_ref(), role, facts) {
            return Ok(refusal);
        }
        // §2.4: the conditional increment must affect exactly one row.
        let mut q = self.query("UPDATE pools SET seats = seats + 1, version = version + 1");
        if role == Role::Leader {
            q.push(", leader = ").bind(blob(node.as_bytes()));
        }
        q.push(" WHERE pool_id = ").bind(blob(pool.as_bytes()));
        q.push(" AND seats < max_nodes AND status <> 'disbanded'");
        if self.exec(&mut q, "taking a seat").await? != 1 {
            return Ok(SeatOutcome::PoolFull);
        }
        let row = Membership {
            pool_id: *pool,
            node_id: *node,
            role,
            status: MemberStatus::Active,
            from_slot,
            to_slot: None,
            op_digest: *op_digest,
            reason: None,
        };
        match self.upsert_join_row(&row).await {
            Ok(()) => {}
            // A concurrent transaction (PostgreSQL, another pool row) seated the node or a
            // leader first; dropping the transaction rolls the increment back.
            Err(Error::Query { source, .. }) if unique_violation(&source).is_some() => {
                let detail = unique_violation(&source).unwrap_or_default();
                // PostgreSQL names the index; SQLite names its columns.
                let leader = detail.contains("one_leader") || detail.contains("members.pool_id");
                return Ok(if leader {
                    SeatOutcome::LeaderTaken
                } else {
                    SeatOutcome::AlreadyInPool
                });
            }
            Err(error) => return Err(error),
        }
        self.refresh_status(pool).await?;
        Ok(SeatOutcome::Seated)
    }

    async fn close_seat_in(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, Error> {
        if self.lock_pool(pool).await?.is_none() {
            return Ok(CloseOutcome::PoolNotFound);
        }
        let Some((id, role, _)) = self.seat_in(pool, node).await? else {
            return Ok(CloseOutcome::NotSeated);
        };
        let status = if ban { MemberStatus::Banned } else { MemberStatus::Closed };
        let mut q = self.query("UPDATE pool_members SET status = ");
        q.bind(text(status.as_str())).push(", to_slot = ").bind(slot("to_slot", at_slot)?);
        q.push(" WHERE id = ").bind(Value::Int(id));
        self.exec(&mut q, "closing a seat").await?;
        let mut q = self.query(
            "UPDATE pools SET seats = CASE WHEN seats > 0 THEN seats - 1 ELSE 0 END, \
             version = version + 1 WHERE pool_id = ",
        );
        q.bind(blob(pool.as_bytes()));
        self.exec(&mut q, "releasing a seat").await?;
        let mut successor = None;
        let mut disbanded = false;
        if role == Role::Leader {
            let mut q = self.query("SELECT node_id, from_slot FROM pool_members WHERE pool_id = ");
            q.bind(blob(pool.as_bytes())).push(" AND ").push(SEAT);
            let rows = self.rows(&mut q, "listing the seat holders").await?;
            let mut holders = Vec::with_capacity(rows.len());
            for row in &rows {
                let c = Columns::new(row, "pool_members", "reading a seat holder");
                holders.push((c.node(0, "node_id")?, Slot(c.unsigned(1, "from_slot")?)));
            }
            successor = choose_successor(holders.iter().map(|(n, s)| (n, *s)));
            match successor {
                Some(next) => {
                    let mut q =
                        self.query("UPDATE pool_members SET role = 'leader' WHERE pool_id = ");
                    q.bind(blob(pool.as_bytes())).push(" AND node_id = ");
                    q.bind(blob(next.as_bytes())).push(" AND ").push(SEAT);
                    self.exec(&mut q, "promoting the successor").await?;
                    let mut q = self.query("UPDATE pools SET leader = ");
                    q.bind(blob(next.as_bytes())).push(" WHERE pool_id = ");
                    q.bind(blob(pool.as_bytes()));
                    self.exec(&mut q, "setting the leader").await?;
                }
                None => {
                    self.disband(pool, at_slot).await?;
                    disbanded = true;
                }
            }
        }
        self.refresh_status(pool).await?;
        Ok(CloseOutcome::Closed { successor, disbanded })
    }

    async fn disband_in(&mut self, pool: &PoolId, at_slot: Slot) -> Result<DisbandOutcome, Error> {
        if let Some(refusal) = checks::disband_refusal(self.lock_pool(pool).await?.as_ref()) {
            return Ok(refusal);
        }
        let closed = self.disband(pool, at_slot).await?;
        Ok(DisbandOutcome::Disbanded { closed })
    }

    async fn unban_in(&mut self, pool: &PoolId, node: &NodeId) -> Result<UnbanOutcome, Error> {
        let mut q = self.query("UPDATE pool_members SET status = 'closed' WHERE pool_id = ");
        q.bind(blob(pool.as_bytes())).push(" AND node_id = ").bind(blob(node.as_bytes()));
        q.push(" AND status = 'banned'");
        if self.exec(&mut q, "lifting a ban").await? == 0 {
            return Ok(UnbanOutcome::NotBanned);
        }
        Ok(UnbanOutcome::Unbanned)
    }

    async fn set_max_nodes_in(
        &mut self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, Error> {
        let stored = self.lock_pool(pool).await?;
        if let Some(refusal) = checks::set_max_nodes_refusal(stored.as_ref(), max, expected_version)
        {
            return Ok(refusal);
        }
        let current = stored.map_or(expected_version, |s| s.version);
        let mut q = self.query("UPDATE pools SET max_nodes = ");
        q.bind(Value::Int(i64::from(max))).push(", version = version + 1 WHERE pool_id = ");
        q.bind(blob(pool.as_bytes())).push(" AND version = ");
        q.bind(Value::Int(to_sql("version", expected_version)?));
        if self.exec(&mut q, "setting max_nodes").await? != 1 {
            return Ok(SetMaxNodesOutcome::VersionMismatch { current });
        }
        Ok(SetMaxNodesOutcome::Set { version: expected_version + 1 })
    }

    async fn reject_join_in(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), Error> {
        // Rejecting the same Join again (a re-run after a stop) records nothing new.
        let mut q = self.query("SELECT 1 FROM pool_members WHERE op_digest = ");
        q.bind(blob(op_digest.as_bytes())).push(" AND node_id = ").bind(blob(node.as_bytes()));
        q.push(" AND status = 'rejected'");
        if self.exists(q, "looking up a rejected Join").await? {
            return Ok(());
        }
        self.upsert_join_row(&Membership {
            pool_id: *pool,
            node_id: *node,
            role: Role::Member,
            status: MemberStatus::Rejected,
            from_slot: at_slot,
            to_slot: None,
            op_digest: *op_digest,
            reason: Some(reason),
        })
        .await?;
        Ok(())
    }

    async fn settle_op_in(
        &mut self,
        digest: &Digest,
        result: OpResult,
        at: Slot,
    ) -> Result<bool, Error> {
        let [state, reason, applied] = state_values(OpState::settled(result, at))?;
        let mut q = self.query("UPDATE pool_ops SET state = ");
        q.bind(state).push(", reason = ").bind(reason).push(", applied_slot = ").bind(applied);
        q.push(" WHERE digest = ").bind(blob(digest.as_bytes())).push(" AND state = 'pending'");
        let changed = self.exec(&mut q, "settling a pool op").await?;
        Ok(changed == 1)
    }

    async fn note_join_in(
        &mut self,
        pool: &PoolId,
        node: &NodeId,
        effect_slot: Slot,
        op_digest: &Digest,
    ) -> Result<bool, Error> {
        let mut q = self.query("SELECT 1 FROM pool_members WHERE op_digest = ");
        q.bind(blob(op_digest.as_bytes())).push(" AND node_id = ").bind(blob(node.as_bytes()));
        if self.exists(q, "looking up a Join").await? {
            return Ok(false);
        }
        let row = Membership {
            pool_id: *pool,
            node_id: *node,
            role: Role::Member,
            status: MemberStatus::Joining,
            from_slot: effect_slot,
            to_slot: None,
            op_digest: *op_digest,
            reason: None,
        };
        match self.insert_member(&row).await {
            Ok(()) => {}
            // A concurrent transaction recorded the same Join first.
            Err(Error::Query { source, .. }) if unique_violation(&source).is_some() => {
                return Ok(false);
            }
            Err(error) => return Err(error),
        }
        Ok(true)
    }

    async fn mark_leaving_in(&mut self, pool: &PoolId, node: &NodeId) -> Result<bool, Error> {
        self.lock_pool(pool).await?;
        let Some((id, _, status)) = self.seat_in(pool, node).await? else { return Ok(false) };
        if !checks::may_mark_leaving(status) {
            return Ok(false);
        }
        let mut q = self.query("UPDATE pool_members SET status = 'leaving' WHERE id = ");
        q.bind(Value::Int(id));
        self.exec(&mut q, "marking a seat leaving").await?;
        self.refresh_status(pool).await?;
        Ok(true)
    }

    async fn log_op_in(&mut self, op: &SignedOp) -> Result<LogOutcome, Error> {
        let pool = op.accepted.op.op.pool().or_else(|| op.accepted.op.created_pool_id());
        let pool = pool.ok_or_else(|| lucid_core::internal!("a pool op without a pool"))?;
        let node = blob(op.accepted.op.node.as_bytes());
        let signing_slot = slot("slot", op.accepted.op.slot)?;
        let mut q = self.query(
            "INSERT INTO pool_ops (digest, node_id, slot, tag, pool_id, signed_bytes, signature, \
             state, reason, applied_slot) VALUES ",
        );
        q.tuple([
            blob(op.digest().as_bytes()),
            node.clone(),
            signing_slot.clone(),
            Value::Int(i64::from(op.accepted.op.op.tag().wire())),
            blob(pool.as_bytes()),
            blob(op.message.bytes()),
            blob(op.message.signature().as_bytes()),
            text(OpState::Pending.as_str()),
            Value::OptText(None),
            Value::OptInt(None),
        ]);
        q.push(" ON CONFLICT DO NOTHING");
        if self.exec(&mut q, "logging a pool op").await? == 1 {
            return Ok(LogOutcome::Inserted);
        }
        let mut q = self.query(OP_SELECT);
        q.push("WHERE digest = ").bind(blob(op.digest().as_bytes()));
        if !self.rows(&mut q, "looking up a logged op").await?.is_empty() {
            return Ok(LogOutcome::Duplicate);
        }
        let mut q = self.query(OP_SELECT);
        q.push("WHERE node_id = ").bind(node).push(" AND slot = ").bind(signing_slot);
        let rows = self.rows(&mut q, "looking up the op of a signer and slot").await?;
        let existing = rows.first().map(read_logged).transpose()?.ok_or_else(|| {
            lucid_core::internal!("pool op {} was neither logged nor found", op.digest())
        })?;
        Ok(LogOutcome::Conflict { existing: existing.op.message })
    }

    /// One Join of a batch ([`PoolStore::log_joins`]): the pending duplicate first, then the
    /// facts of [`checks::join_refusal`] read inside this transaction (so the earlier ops of the
    /// batch count), then the log row and the `joining` row.
    async fn admit_join_in(&mut self, join: &SignedOp) -> Result<JoinAdmission, Error> {
        let node = join.accepted.op.node;
        let lucid_pools::Op::Join { pool } = join.accepted.op.op else {
            return Err(lucid_core::internal!(
                "op {} in a batch of Joins is no Join",
                join.digest()
            )
            .into());
        };
        let digest = join.digest();
        let mut q = self.query("SELECT 1 FROM pool_ops WHERE digest = ");
        q.bind(blob(digest.as_bytes())).push(" AND state = 'pending'");
        if self.exists(q, "looking up a pending op").await? {
            return Ok(JoinAdmission::Duplicate);
        }
        let stored = self.lock_pool(&pool).await?;
        // Facts the checks would not reach are not looked up (no pool, a disbanded one, a node
        // that already has or asked for a seat).
        let mut facts = checks::JoinFacts::default();
        if stored.as_ref().is_some_and(|s| s.pool.status != PoolStatus::Disbanded) {
            facts.seat_requested =
                self.node_has_seat(&node).await? || self.pending_seat_request_in(&node).await?;
            if !facts.seat_requested {
                let mut q = self.query("SELECT 1 FROM pool_members WHERE pool_id = ");
                q.bind(blob(pool.as_bytes())).push(" AND node_id = ").bind(blob(node.as_bytes()));
                q.push(" AND status = 'banned'");
                facts.banned = self.exists(q, "looking up a ban").await?;
                facts.pending_joins = self.pending_joins_in(&pool).await?;
            }
        }
        if let Some(reason) = checks::join_refusal(stored.as_ref().map(|s| &s.pool), facts) {
            return Ok(JoinAdmission::Refused(reason));
        }
        match self.log_op_in(join).await? {
            LogOutcome::Inserted => {}
            LogOutcome::Duplicate => return Ok(JoinAdmission::Duplicate),
            LogOutcome::Conflict { existing } => return Ok(JoinAdmission::Conflict { existing }),
        }
        let effect = join
            .effect_slot()
            .ok_or_else(|| lucid_core::internal!("the effect slot of Join {digest} overflows"))?;
        self.note_join_in(&pool, &node, effect, &digest).await?;
        Ok(JoinAdmission::Logged)
    }

    /// Whether `node` has a logged Create or Join still pending.
    async fn pending_seat_request_in(&mut self, node: &NodeId) -> Result<bool, Error> {
        let mut q = pending_seat_request(self.dialect, node);
        let rows = self.rows(&mut q, "looking up a pending seat request").await?;
        Ok(!rows.is_empty())
    }

    /// The `joining` rows of `pool`.
    async fn pending_joins_in(&mut self, pool: &PoolId) -> Result<u64, Error> {
        let mut q = pending_joins(self.dialect, pool);
        pending_joins_count(&self.rows(&mut q, "counting pending joins").await?)
    }

    /// The Joins of one batch inside this transaction ([`Database::log_joins_once`]).
    async fn admit_joins_in(
        &mut self,
        joins: &[SignedOp],
    ) -> Result<Vec<Result<JoinAdmission, lucid_pools::Error>>, Error> {
        let pools: BTreeSet<PoolId> =
            joins.iter().filter_map(|j| j.accepted.op.op.pool()).collect();
        self.lock_pools_in_order(&pools).await?;
        if let Some(outcomes) = self.admit_joins_at_once(joins, &pools).await? {
            return Ok(outcomes);
        }
        // The database refused the multi-row inserts: one Join per savepoint, so that the one
        // it refuses is answered alone.
        let mut outcomes = Vec::with_capacity(joins.len());
        for join in joins {
            self.savepoint("SAVEPOINT batched_join").await?;
            match self.admit_join_in(join).await {
                Ok(admission) => {
                    self.savepoint("RELEASE SAVEPOINT batched_join").await?;
                    outcomes.push(Ok(admission));
                }
                Err(error) if is_transient_conflict(&error) => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, digest = %join.digest(), "a batched Join failed alone");
                    self.savepoint("ROLLBACK TO SAVEPOINT batched_join").await?;
                    self.savepoint("RELEASE SAVEPOINT batched_join").await?;
                    outcomes.push(Err(pools_error("logging a batched Join")(error)));
                }
            }
        }
        Ok(outcomes)
    }

    /// Runs `sql` (a savepoint statement) as it is.
    async fn savepoint(&mut self, sql: &'static str) -> Result<(), Error> {
        self.tx.raw(sql).await.map_err(Error::query("handling a savepoint"))
    }

    /// Whether the op `digest` is in the log and no longer pending.
    async fn is_settled(&mut self, digest: &Digest) -> Result<bool, Error> {
        let mut q = self.query("SELECT 1 FROM pool_ops WHERE digest = ");
        q.bind(blob(digest.as_bytes())).push(" AND state <> 'pending'");
        self.exists(q, "looking up an op's state").await
    }

    /// Closes every seat of `pool` and marks it disbanded; the number of seats closed.
    async fn disband(&mut self, pool: &PoolId, at_slot: Slot) -> Result<u32, Error> {
        let mut q = self.query("UPDATE pool_members SET status = 'closed', to_slot = ");
        q.bind(slot("to_slot", at_slot)?).push(" WHERE pool_id = ").bind(blob(pool.as_bytes()));
        q.push(" AND ").push(SEAT);
        let closed = self.exec(&mut q, "closing the seats of a pool").await?;
        let mut q = self.query(
            "UPDATE pools SET seats = 0, status = 'disbanded', version = version + 1, \
             disbanded_slot = ",
        );
        q.bind(slot("disbanded_slot", at_slot)?);
        q.push(" WHERE pool_id = ").bind(blob(pool.as_bytes()));
        self.exec(&mut q, "disbanding a pool").await?;
        u32::try_from(closed)
            .map_err(|_| lucid_core::internal!("{closed} seats closed in one pool").into())
    }
}

impl Database {
    pub(crate) async fn write(&self) -> Result<Write, Error> {
        let tx = self.begin_write().await.map_err(Error::query("starting a write transaction"))?;
        Ok(Write { tx, dialect: self.dialect() })
    }

    pub(crate) async fn read(
        &self,
        query: &mut Query,
        action: &'static str,
    ) -> Result<Vec<Row>, Error> {
        self.reader().fetch_all(query).await.map_err(Error::query(action))
    }

    /// Every pool, by id (for tests and audits, like `MemoryPoolStore::pools`).
    pub async fn all_pools(&self) -> Result<Vec<Pool>, Error> {
        let mut q = self.query(POOL_SELECT);
        q.push("ORDER BY pool_id");
        let rows = self.read(&mut q, "reading every pool").await?;
        let mut pools =
            rows.iter().map(|r| read_pool(r).map(|s| s.pool)).collect::<Result<Vec<_>, _>>()?;
        pools.sort_by_key(|p| p.pool_id);
        Ok(pools)
    }

    /// Every membership row ever, in insertion order (for tests and audits, like
    /// `MemoryPoolStore::rows`).
    pub async fn pool_member_rows(&self) -> Result<Vec<Membership>, Error> {
        let mut q = self.query(MEMBER_SELECT);
        q.push("ORDER BY id");
        let rows = self.read(&mut q, "reading every membership").await?;
        rows.iter().map(read_member).collect()
    }

    async fn create_pool_tx(&self, new: &NewPool) -> Result<CreateOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.create_pool_in(new).await?;
        // A refusal is dropped, which rolls back whatever it started.
        if matches!(out, CreateOutcome::Created) {
            w.commit().await?;
        }
        Ok(out)
    }

    async fn seat_tx(
        &self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.seat_in_pool(pool, node, role, from_slot, op_digest).await?;
        // A refusal is dropped, which rolls back whatever it started.
        if matches!(out, SeatOutcome::Seated) {
            w.commit().await?;
        }
        Ok(out)
    }

    async fn close_seat_tx(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.close_seat_in(pool, node, at_slot, ban).await?;
        // A refusal is dropped, which rolls back whatever it started.
        if matches!(out, CloseOutcome::Closed { .. }) {
            w.commit().await?;
        }
        Ok(out)
    }

    async fn disband_tx(&self, pool: &PoolId, at_slot: Slot) -> Result<DisbandOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.disband_in(pool, at_slot).await?;
        // A refusal is dropped, which rolls back whatever it started.
        if matches!(out, DisbandOutcome::Disbanded { .. }) {
            w.commit().await?;
        }
        Ok(out)
    }

    async fn unban_tx(&self, pool: &PoolId, node: &NodeId) -> Result<UnbanOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.unban_in(pool, node).await?;
        // A refusal is dropped, which rolls back whatever it started.
        if matches!(out, UnbanOutcome::Unbanned) {
            w.commit().await?;
        }
        Ok(out)
    }

    async fn set_max_nodes_tx(
        &self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.set_max_nodes_in(pool, max, expected_version).await?;
        // A refusal is dropped, which rolls back whatever it started.
        if matches!(out, SetMaxNodesOutcome::Set { .. }) {
            w.commit().await?;
        }
        Ok(out)
    }

    async fn note_join_tx(
        &self,
        pool: &PoolId,
        node: &NodeId,
        effect_slot: Slot,
        op_digest: &Digest,
    ) -> Result<bool, Error> {
        let mut w = self.write().await?;
        let out = w.note_join_in(pool, node, effect_slot, op_digest).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn reject_join_tx(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), Error> {
        let mut w = self.write().await?;
        w.reject_join_in(pool, node, at_slot, op_digest, reason).await?;
        w.commit().await
    }

    async fn pending_joins_query(&self, pool: &PoolId) -> Result<usize, Error> {
        let mut q = pending_joins(self.dialect(), pool);
        let count = pending_joins_count(&self.read(&mut q, "counting pending joins").await?)?;
        usize::try_from(count)
            .map_err(|_| lucid_core::internal!("{count} pending joins overflow usize").into())
    }

    async fn mark_leaving_tx(&self, pool: &PoolId, node: &NodeId) -> Result<bool, Error> {
        let mut w = self.write().await?;
        let out = w.mark_leaving_in(pool, node).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn set_liveness_tx(
        &self,
        node: &NodeId,
        liveness: Liveness,
    ) -> Result<Option<MemberStatus>, Error> {
        let mut w = self.write().await?;
        let mut q = w.query("SELECT pool_id FROM pool_members WHERE node_id = ");
        q.bind(blob(node.as_bytes())).push(" AND ").push(SEAT);
        let rows = w.rows(&mut q, "looking up a node's seat").await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let c = Columns::new(row, "pool_members", "reading a seat");
        let pool = PoolId::from_bytes(c.bytes(0, "pool_id")?);
        // Lock the pool before the seat row, in the order every other method takes them; the
        // seat is read again under the lock.
        w.lock_pool(&pool).await?;
        let Some((id, _, status)) = w.seat_in(&pool, node).await? else { return Ok(None) };
        let next = checks::seat_status_after(status, liveness);
        if next != status {
            let mut q = w.query("UPDATE pool_members SET status = ");
            q.bind(text(next.as_str())).push(" WHERE id = ").bind(Value::Int(id));
            w.exec(&mut q, "changing a seat's liveness").await?;
        }
        w.refresh_status(&pool).await?;
        w.commit().await?;
        Ok(Some(next))
    }

    async fn get_pool_query(&self, pool: &PoolId) -> Result<Option<StoredPool>, Error> {
        let mut q = self.query(POOL_SELECT);
        q.push("WHERE pool_id = ").bind(blob(pool.as_bytes()));
        let rows = self.read(&mut q, "reading a pool").await?;
        rows.first().map(read_pool).transpose()
    }

    async fn members_query(&self, pool: &PoolId) -> Result<Vec<Membership>, Error> {
        let mut q = self.query(MEMBER_SELECT);
        q.push("WHERE pool_id = ").bind(blob(pool.as_bytes()));
        q.push(" AND (").push(SEAT).push(" OR status = 'banned') ORDER BY id");
        let rows = self.read(&mut q, "listing the members of a pool").await?;
        let mut members = rows.iter().map(read_member).collect::<Result<Vec<_>, _>>()?;
        // Stable: rows of one node stay in insertion order, as in `MemoryPoolStore`.
        members.sort_by_key(|m| m.node_id);
        Ok(members)
    }

    async fn pool_of_query(&self, node: &NodeId) -> Result<Option<PoolId>, Error> {
        let mut q = self.query("SELECT pool_id FROM pool_members WHERE node_id = ");
        q.bind(blob(node.as_bytes())).push(" AND ").push(SEAT);
        let rows = self.read(&mut q, "looking up a node's pool").await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let c = Columns::new(row, "pool_members", "reading a node's pool");
        Ok(Some(PoolId::from_bytes(c.bytes(0, "pool_id")?)))
    }

    /// Every pool and every membership row, read in one transaction so that they agree.
    async fn snapshot(&self) -> Result<(Vec<Pool>, Vec<Membership>), Error> {
        let mut w = self.write().await?;
        let mut q = w.query(POOL_SELECT);
        let pools = w
            .rows(&mut q, "reading every pool")
            .await?
            .iter()
            .map(|r| read_pool(r).map(|s| s.pool))
            .collect::<Result<Vec<_>, _>>()?;
        let mut q = w.query(MEMBER_SELECT);
        q.push("ORDER BY id");
        let rows = w
            .rows(&mut q, "reading every membership")
            .await?
            .iter()
            .map(read_member)
            .collect::<Result<Vec<_>, _>>()?;
        w.commit().await?;
        Ok((pools, rows))
    }
}

impl Database {
    /// [`PoolStore::log_accepted`] in one transaction: the log row and the note.
    async fn log_accepted_tx(&self, op: &SignedOp) -> Result<LogOutcome, Error> {
        let mut w = self.write().await?;
        let outcome = w.log_op_in(op).await?;
        if outcome == LogOutcome::Inserted {
            let node = op.accepted.op.node;
            match op.accepted.op.op {
                lucid_pools::Op::Join { pool } => {
                    if let Some(effect) = op.effect_slot() {
                        w.note_join_in(&pool, &node, effect, &op.digest()).await?;
                    }
                }
                lucid_pools::Op::Leave { pool } => {
                    w.mark_leaving_in(&pool, &node).await?;
                }
                _ => {}
            }
        }
        w.commit().await?;
        Ok(outcome)
    }

    /// [`PoolStore::log_joins`]: the batch in one transaction ([`Database::log_joins_once`]),
    /// run again from the start when the database aborted it with a transient conflict
    /// (deadlock victim, serialization failure), at most [`JOIN_BATCH_ATTEMPTS`] times. An
    /// aborted run committed nothing, so running it again can neither log a Join twice nor
    /// answer one differently from what ends up durable.
    async fn log_joins_tx(
        &self,
        joins: &[SignedOp],
    ) -> Result<Vec<Result<JoinAdmission, lucid_pools::Error>>, Error> {
        let mut attempt = 1;
        loop {
            match self.log_joins_once(joins).await {
                Err(error) if is_transient_conflict(&error) && attempt < JOIN_BATCH_ATTEMPTS => {
                    tracing::warn!(
                        %error,
                        attempt,
                        joins = joins.len(),
                        "the database aborted a batch of Joins (deadlock or serialization failure); running it again"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// One run of a batch of Joins in one transaction. The rows of every pool the batch names
    /// are locked first, in ascending id order ([`Write::lock_pools_in_order`]), so concurrent
    /// batches over overlapping pools queue behind each other instead of deadlocking. Then each
    /// Join runs in its own savepoint, so that one that fails is rolled back alone (which also
    /// clears an aborted statement on PostgreSQL); a transient conflict aborts the whole run
    /// instead, since it is no verdict on the Join that met it. One commit for the batch.
    async fn log_joins_once(
        &self,
        joins: &[SignedOp],
    ) -> Result<Vec<Result<JoinAdmission, lucid_pools::Error>>, Error> {
        let mut w = self.write().await?;
        match w.admit_joins_in(joins).await {
            Ok(outcomes) => {
                w.commit().await?;
                Ok(outcomes)
            }
            Err(error) => {
                // Release the locks now rather than when the connection is next used.
                if let Err(rollback) = w.tx.rollback().await {
                    tracing::warn!(error = %rollback, "rolling back a failed batch of Joins failed");
                }
                Err(error)
            }
        }
    }

    async fn logged_op_query(&self, digest: &Digest) -> Result<Option<LoggedOp>, Error> {
        let mut q = self.query(OP_SELECT);
        q.push("WHERE digest = ").bind(blob(digest.as_bytes()));
        let rows = self.read(&mut q, "reading a logged op").await?;
        rows.first().map(read_logged).transpose()
    }

    async fn pending_seat_request_query(&self, node: &NodeId) -> Result<bool, Error> {
        let mut q = pending_seat_request(self.dialect(), node);
        Ok(!self.read(&mut q, "looking up a pending seat request").await?.is_empty())
    }

    /// [`PoolStore::apply_and_settle`]: the effect inside a savepoint (a refused effect is rolled
    /// back to it, which also clears an aborted statement on PostgreSQL), then the rejected Join
    /// row and the op's outcome, then one commit.
    async fn apply_and_settle_tx(
        &self,
        effect: &Effect,
        settle: &Settlement,
    ) -> Result<Settled, Error> {
        let mut w = self.write().await?;
        if w.is_settled(&settle.digest).await? {
            return Ok(Settled::AlreadySettled);
        }
        w.savepoint("SAVEPOINT pool_effect").await?;
        let outcome = match effect {
            Effect::Create(new) => EffectOutcome::Create(w.create_pool_in(new).await?),
            Effect::Seat { pool, node, role, from_slot, op_digest } => {
                EffectOutcome::Seat(w.seat_in_pool(pool, node, *role, *from_slot, op_digest).await?)
            }
            Effect::Close { pool, node, at_slot, ban } => {
                EffectOutcome::Close(w.close_seat_in(pool, node, *at_slot, *ban).await?)
            }
            Effect::Disband { pool, at_slot } => {
                EffectOutcome::Disband(w.disband_in(pool, *at_slot).await?)
            }
            Effect::Unban { pool, node } => EffectOutcome::Unban(w.unban_in(pool, node).await?),
            Effect::SetMaxNodes { pool, max, expected_version } => {
                EffectOutcome::SetMaxNodes(w.set_max_nodes_in(pool, *max, *expected_version).await?)
            }
            Effect::Refuse(reason) => EffectOutcome::Refused(*reason),
        };
        // A lost compare-and-set: dropping the transaction writes nothing.
        let Some(result) = outcome.op_result() else { return Ok(Settled::Retry) };
        if let OpResult::Rejected(reason) = result {
            w.savepoint("ROLLBACK TO SAVEPOINT pool_effect").await?;
            w.savepoint("RELEASE SAVEPOINT pool_effect").await?;
            if let Some((pool, node)) = settle.join {
                w.reject_join_in(&pool, &node, settle.at, &settle.digest, reason).await?;
            }
        } else {
            w.savepoint("RELEASE SAVEPOINT pool_effect").await?;
        }
        if !w.settle_op_in(&settle.digest, result, settle.at).await?
            && w.is_settled(&settle.digest).await?
        {
            // Settled concurrently since the first look: drop the effect with the transaction.
            return Ok(Settled::AlreadySettled);
        }
        w.commit().await?;
        Ok(Settled::Done(result))
    }

    async fn log_op_tx(&self, op: &SignedOp) -> Result<LogOutcome, Error> {
        let mut w = self.write().await?;
        let out = w.log_op_in(op).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn read_log(&self, pending_only: bool) -> Result<Vec<LoggedOp>, Error> {
        let mut q = self.query(OP_SELECT);
        if pending_only {
            q.push("WHERE state = 'pending' ");
        }
        q.push("ORDER BY slot, digest");
        let rows = self.read(&mut q, "reading the pool op log").await?;
        rows.iter().map(read_logged).collect()
    }

    async fn settle_op_tx(
        &self,
        digest: &Digest,
        result: OpResult,
        at: Slot,
    ) -> Result<bool, Error> {
        let mut w = self.write().await?;
        let out = w.settle_op_in(digest, result, at).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn restore_tx(
        &self,
        state: &PoolState,
        outcomes: &[(Slot, OpOutcome)],
    ) -> Result<(), Error> {
        let mut w = self.write().await?;
        // Every pool row is rewritten: lock them all first on PostgreSQL, in one order.
        let mut q = w.query("SELECT COALESCE(MAX(version), 0) FROM pools");
        if w.dialect == Dialect::Postgres {
            let mut lock = w.query("SELECT pool_id FROM pools ORDER BY pool_id FOR UPDATE");
            w.rows(&mut lock, "locking every pool").await?;
        }
        let rows = w.rows(&mut q, "reading the highest pool version").await?;
        let highest = match rows.first() {
            Some(row) => row.int(0).map_err(Error::query("reading the highest pool version"))?,
            None => 0,
        };
        let version = highest.checked_add(1).ok_or(Error::OutOfRange {
            field: "version",
            value: u64::try_from(highest).unwrap_or(u64::MAX),
        })?;
        let mut q = w.query("DELETE FROM pool_members");
        w.exec(&mut q, "clearing memberships for a rebuild").await?;
        let mut q = w.query("DELETE FROM pools");
        w.exec(&mut q, "clearing pools for a rebuild").await?;
        for pool in state.pools() {
            let mut q = w.query(
                "INSERT INTO pools (pool_id, name, founder, leader, status, max_nodes, seats, \
                 created_slot, disbanded_slot, version) VALUES ",
            );
            q.tuple([
                blob(pool.pool_id.as_bytes()),
                text(&pool.name),
                blob(pool.founder.as_bytes()),
                blob(pool.leader.as_bytes()),
                text(pool.status.as_str()),
                Value::Int(i64::from(pool.max_nodes)),
                Value::Int(i64::from(pool.seats)),
                slot("created_slot", pool.created_slot)?,
                Value::OptInt(match pool.disbanded_slot {
                    Some(s) => Some(to_sql("disbanded_slot", s.0)?),
                    None => None,
                }),
                Value::Int(version),
            ]);
            w.exec(&mut q, "inserting a rebuilt pool").await?;
        }
        for row in state.rows() {
            w.insert_member(row).await?;
        }
        let mut q = w.query(
            "UPDATE pool_ops SET state = 'pending', reason = NULL, applied_slot = NULL \
             WHERE state <> 'pending'",
        );
        w.exec(&mut q, "resetting op states for a rebuild").await?;
        for (digest, state) in settled_states(outcomes) {
            let [state, reason, applied] = state_values(state)?;
            let mut q = w.query("UPDATE pool_ops SET state = ");
            q.bind(state).push(", reason = ").bind(reason).push(", applied_slot = ").bind(applied);
            q.push(" WHERE digest = ").bind(blob(digest.as_bytes()));
            w.exec(&mut q, "recording a rebuilt op state").await?;
        }
        w.commit().await
    }
}

/// A storage error as a pools error.
fn pools_error(action: &'static str) -> impl FnOnce(Error) -> lucid_pools::Error {
    move |error| error.into_pools(action)
}

#[async_trait::async_trait]
impl PoolStore for Database {
    async fn create_pool(&self, new: &NewPool) -> Result<CreateOutcome, lucid_pools::Error> {
        self.create_pool_tx(new).await.map_err(pools_error("creating a pool"))
    }

    async fn seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        role: Role,
        from_slot: Slot,
        op_digest: &Digest,
    ) -> Result<SeatOutcome, lucid_pools::Error> {
        self.seat_tx(pool, node, role, from_slot, op_digest)
            .await
            .map_err(pools_error("seating a node"))
    }

    async fn close_seat(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        ban: bool,
    ) -> Result<CloseOutcome, lucid_pools::Error> {
        self.close_seat_tx(pool, node, at_slot, ban).await.map_err(pools_error("closing a seat"))
    }

    async fn disband(
        &self,
        pool: &PoolId,
        at_slot: Slot,
    ) -> Result<DisbandOutcome, lucid_pools::Error> {
        self.disband_tx(pool, at_slot).await.map_err(pools_error("disbanding a pool"))
    }

    async fn unban(
        &self,
        pool: &PoolId,
        node: &NodeId,
    ) -> Result<UnbanOutcome, lucid_pools::Error> {
        self.unban_tx(pool, node).await.map_err(pools_error("lifting a ban"))
    }

    async fn set_max_nodes(
        &self,
        pool: &PoolId,
        max: u8,
        expected_version: u64,
    ) -> Result<SetMaxNodesOutcome, lucid_pools::Error> {
        self.set_max_nodes_tx(pool, max, expected_version)
            .await
            .map_err(pools_error("setting max_nodes"))
    }

    async fn note_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        effect_slot: Slot,
        op_digest: &Digest,
    ) -> Result<bool, lucid_pools::Error> {
        self.note_join_tx(pool, node, effect_slot, op_digest)
            .await
            .map_err(pools_error("recording a Join"))
    }

    async fn reject_join(
        &self,
        pool: &PoolId,
        node: &NodeId,
        at_slot: Slot,
        op_digest: &Digest,
        reason: RejectReason,
    ) -> Result<(), lucid_pools::Error> {
        self.reject_join_tx(pool, node, at_slot, op_digest, reason)
            .await
            .map_err(pools_error("rejecting a Join"))
    }

    async fn pending_joins(&self, pool: &PoolId) -> Result<usize, lucid_pools::Error> {
        self.pending_joins_query(pool).await.map_err(pools_error("counting pending joins"))
    }

    async fn mark_leaving(&self, pool: &PoolId, node: &NodeId) -> Result<bool, lucid_pools::Error> {
        self.mark_leaving_tx(pool, node).await.map_err(pools_error("marking a seat leaving"))
    }

    async fn set_liveness(
        &self,
        node: &NodeId,
        liveness: Liveness,
    ) -> Result<Option<MemberStatus>, lucid_pools::Error> {
        self.set_liveness_tx(node, liveness).await.map_err(pools_error("changing liveness"))
    }

    async fn get_pool(&self, pool: &PoolId) -> Result<Option<StoredPool>, lucid_pools::Error> {
        self.get_pool_query(pool).await.map_err(pools_error("reading a pool"))
    }

    async fn members(&self, pool: &PoolId) -> Result<Vec<Membership>, lucid_pools::Error> {
        self.members_query(pool).await.map_err(pools_error("listing members"))
    }

    async fn is_banned(&self, pool: &PoolId, node: &NodeId) -> Result<bool, lucid_pools::Error> {
        self.is_banned_query(pool, node).await.map_err(pools_error("looking up a ban"))
    }

    async fn join_advice(
        &self,
        pool: &PoolId,
        node: &NodeId,
        digest: &Digest,
    ) -> Result<JoinAdvice, lucid_pools::Error> {
        self.join_advice_query(pool, node, digest)
            .await
            .map_err(pools_error("reading the facts of a Join"))
    }

    async fn pool_of(&self, node: &NodeId) -> Result<Option<PoolId>, lucid_pools::Error> {
        self.pool_of_query(node).await.map_err(pools_error("looking up a node's pool"))
    }

    async fn timeline(&self) -> Result<MembershipTimeline, lucid_pools::Error> {
        let rows = self.pool_member_rows().await.map_err(pools_error("reading the timeline"))?;
        lucid_pools::state::timeline_of(&rows)
    }

    async fn log_op(&self, op: &SignedOp) -> Result<LogOutcome, lucid_pools::Error> {
        self.log_op_tx(op).await.map_err(pools_error("logging a pool op"))
    }

    async fn pending_ops(&self) -> Result<Vec<SignedOp>, lucid_pools::Error> {
        let log = self.read_log(true).await.map_err(pools_error("reading pending pool ops"))?;
        Ok(log.into_iter().map(|logged| logged.op).collect())
    }

    async fn op_log(&self) -> Result<Vec<LoggedOp>, lucid_pools::Error> {
        self.read_log(false).await.map_err(pools_error("reading the pool op log"))
    }

    async fn settle_op(
        &self,
        digest: &Digest,
        result: OpResult,
        at: Slot,
    ) -> Result<bool, lucid_pools::Error> {
        self.settle_op_tx(digest, result, at).await.map_err(pools_error("settling a pool op"))
    }

    async fn log_accepted(&self, op: &SignedOp) -> Result<LogOutcome, lucid_pools::Error> {
        self.log_accepted_tx(op).await.map_err(pools_error("logging an accepted pool op"))
    }

    async fn log_joins(
        &self,
        joins: &[SignedOp],
    ) -> Result<Vec<Result<JoinAdmission, lucid_pools::Error>>, lucid_pools::Error> {
        self.log_joins_tx(joins).await.map_err(pools_error("logging a batch of Joins"))
    }

    async fn logged_op(&self, digest: &Digest) -> Result<Option<LoggedOp>, lucid_pools::Error> {
        self.logged_op_query(digest).await.map_err(pools_error("reading a logged op"))
    }

    async fn has_pending_seat_request(&self, node: &NodeId) -> Result<bool, lucid_pools::Error> {
        self.pending_seat_request_query(node)
            .await
            .map_err(pools_error("looking up a pending seat request"))
    }

    async fn apply_and_settle(
        &self,
        effect: &Effect,
        settle: &Settlement,
    ) -> Result<Settled, lucid_pools::Error> {
        self.apply_and_settle_tx(effect, settle)
            .await
            .map_err(pools_error("applying and settling a pool op"))
    }

    async fn restore(
        &self,
        state: &PoolState,
        outcomes: &[(Slot, OpOutcome)],
    ) -> Result<(), lucid_pools::Error> {
        self.restore_tx(state, outcomes)
            .await
            .map_err(pools_error("rebuilding pools from the op log"))
    }

    async fn snapshot(&self) -> Result<(Vec<Pool>, Vec<Membership>), lucid_pools::Error> {
        Database::snapshot(self).await.map_err(pools_error("reading every pool and membership"))
    }

    async fn audit(&self) -> Result<(), lucid_pools::Error> {
        let (pools, rows) = self.snapshot().await.map_err(pools_error("auditing membership"))?;
        lucid_pools::state::audit(&pools, &rows)
    }
}
