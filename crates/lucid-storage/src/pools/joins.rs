//! The accepted-Join paths of the SQL `PoolStore` that the API's request path takes at load:
//! the advisory read of one Join in one statement ([`Database::join_advice_query`]), and a batch
//! of Joins (the group commit) checked in memory and written with multi-row inserts
//! ([`Write::admit_joins_at_once`]).
//!
//! A batch reads the facts of all its pools and signers once, inside its transaction and after
//! the locks of its pools: the pool rows, their `joining` counts, their bans, the seats and the
//! logged ops of the signers, and the membership rows already noted for the Joins' digests. Each
//! Join is then checked by [`checks::join_refusal`] against those facts as the Joins before it
//! in the batch changed them, exactly as the one-Join-per-savepoint path of `pools.rs` would
//! answer, and the admitted Joins are written with one `INSERT` per table (per chunk of
//! [`ROWS_PER_STATEMENT`]). Those inserts carry no `ON CONFLICT`: if the database refuses them
//! (a unique index, because a concurrent transaction on PostgreSQL took a key that no lock of
//! this batch covers, such as one signer joining two pools in two batches), they are rolled back
//! to their savepoint and the caller runs the batch again one Join per savepoint, where the
//! refused Join is answered alone. The constraints stay the backstop; the in-memory check only
//! saves the round trips.

use std::collections::{BTreeMap, BTreeSet};

use lucid_core::{Digest, NodeId, PoolId, SignedMessage};
use lucid_pools::checks;
use lucid_pools::log::{LoggedOp, OpState, SignedOp};
use lucid_pools::model::{MemberStatus, Pool, PoolStatus, Role};
use lucid_pools::store::{JoinAdmission, JoinAdvice};

use super::{OP_SELECT, POOL_SELECT, SEAT, Write, blob, read_logged, read_pool, slot, text};
use crate::database::Database;
use crate::error::Error;
use crate::sql::{Columns, Dialect, Query, Row, Value, row_chunks};

/// Rows of one multi-row `INSERT` at most (10 columns each: 5 120 parameters, far below the
/// limits of both backends).
const ROWS_PER_STATEMENT: usize = 512;

/// The answer of one Join of a batch, as [`lucid_pools::PoolStore::log_joins`] reports it.
pub(super) type Answer = Result<JoinAdmission, lucid_pools::Error>;

/// Appends `(?, ?, …)` with one placeholder per value of `values`.
fn push_list<'a>(q: &mut Query, values: impl IntoIterator<Item = &'a [u8]>) {
    q.push("(");
    for (index, value) in values.into_iter().enumerate() {
        if index > 0 {
            q.push(", ");
        }
        q.bind(blob(value));
    }
    q.push(")");
}

/// The pool column, then the node column, of a row.
fn pool_and_node(row: &Row, action: &'static str) -> Result<(PoolId, NodeId), Error> {
    let c = Columns::new(row, "pool_members", action);
    Ok((PoolId::from_bytes(c.bytes(0, "pool_id")?), c.node(1, "node_id")?))
}

/// What the store held, inside the batch's transaction, about the pools and signers of a batch.
#[derive(Debug, Default)]
struct BatchFacts {
    pools: BTreeMap<PoolId, Pool>,
    /// `joining` rows per pool.
    pending_joins: BTreeMap<PoolId, u64>,
    bans: BTreeSet<(PoolId, NodeId)>,
    /// Signers that hold a seat.
    seated: BTreeSet<NodeId>,
    /// Every logged op of the signers, by digest.
    logged: BTreeMap<Digest, LoggedOp>,
    /// Membership rows already there for a Join's digest and signer (any status).
    noted: BTreeSet<(Digest, NodeId)>,
}

/// An admitted Join and whether its `joining` row is still to be written.
struct Admitted<'a> {
    join: &'a SignedOp,
    pool: PoolId,
    effect: lucid_core::Slot,
    note: bool,
}

/// The answers of a batch checked in memory, and what to write for it.
struct Plan<'a> {
    answers: Vec<Answer>,
    admitted: Vec<Admitted<'a>>,
}

/// Checks each Join of `joins` in order against `facts` as the Joins before it left them, in
/// the order of `Write::admit_join_in`: not a Join, a pending duplicate, the refusal of
/// [`checks::join_refusal`], a logged duplicate, a second op of the signer in the slot.
fn plan(joins: &[SignedOp], mut facts: BatchFacts) -> Plan<'_> {
    let mut pending: BTreeSet<Digest> = BTreeSet::new();
    let mut seat_requests: BTreeSet<NodeId> = BTreeSet::new();
    let mut by_signer_slot: BTreeMap<(NodeId, lucid_core::Slot), SignedMessage> = BTreeMap::new();
    for logged in facts.logged.values() {
        let op = &logged.op.accepted.op;
        if logged.state == OpState::Pending {
            pending.insert(logged.op.digest());
            if matches!(op.op, lucid_pools::Op::Join { .. } | lucid_pools::Op::Create { .. }) {
                seat_requests.insert(op.node);
            }
        }
        by_signer_slot.insert((op.node, op.slot), logged.op.message.clone());
    }
    let mut plan = Plan { answers: Vec::with_capacity(joins.len()), admitted: Vec::new() };
    for join in joins {
        let node = join.accepted.op.node;
        let digest = join.digest();
        let lucid_pools::Op::Join { pool } = join.accepted.op.op else {
            let error = lucid_core::internal!("op {digest} in a batch of Joins is no Join");
            plan.answers.push(Err(error.into()));
            continue;
        };
        if pending.contains(&digest) {
            plan.answers.push(Ok(JoinAdmission::Duplicate));
            continue;
        }
        let stored = facts.pools.get(&pool);
        let mut join_facts = checks::JoinFacts::default();
        if stored.is_some_and(|p| p.status != PoolStatus::Disbanded) {
            join_facts.seat_requested =
                facts.seated.contains(&node) || seat_requests.contains(&node);
            if !join_facts.seat_requested {
                join_facts.banned = facts.bans.contains(&(pool, node));
                join_facts.pending_joins = facts.pending_joins.get(&pool).copied().unwrap_or(0);
            }
        }
        if let Some(reason) = checks::join_refusal(stored, join_facts) {
            plan.answers.push(Ok(JoinAdmission::Refused(reason)));
            continue;
        }
        if facts.logged.contains_key(&digest) {
            plan.answers.push(Ok(JoinAdmission::Duplicate));
            continue;
        }
        if let Some(existing) = by_signer_slot.get(&(node, join.accepted.op.slot)) {
            plan.answers.push(Ok(JoinAdmission::Conflict { existing: existing.clone() }));
            continue;
        }
        let Some(effect) = join.effect_slot() else {
            let error = lucid_core::internal!("the effect slot of Join {digest} overflows");
            plan.answers.push(Err(error.into()));
            continue;
        };
        pending.insert(digest);
        seat_requests.insert(node);
        by_signer_slot.insert((node, join.accepted.op.slot), join.message.clone());
        facts.logged.insert(digest, LoggedOp { op: join.clone(), state: OpState::Pending });
        let note = facts.noted.insert((digest, node));
        if note {
            *facts.pending_joins.entry(pool).or_insert(0) += 1;
        }
        plan.admitted.push(Admitted { join, pool, effect, note });
        plan.answers.push(Ok(JoinAdmission::Logged));
    }
    plan
}

/// Whether `error` is the database refusing a statement (a constraint, say), as opposed to
/// the connection or the driver failing.
fn refused_by_database(error: &Error) -> bool {
    matches!(error, Error::Query { source, .. } if matches!(&**source, sqlx::Error::Database(_)))
}

impl Write {
    /// The batch in memory and in multi-row inserts (see the module doc). `None` when the
    /// database refused the inserts: they are rolled back and nothing of the batch is written.
    /// The pools of the batch must be locked already.
    pub(super) async fn admit_joins_at_once(
        &mut self,
        joins: &[SignedOp],
        pools: &BTreeSet<PoolId>,
    ) -> Result<Option<Vec<Answer>>, Error> {
        let facts = self.batch_facts(joins, pools).await?;
        let plan = plan(joins, facts);
        if plan.admitted.is_empty() {
            return Ok(Some(plan.answers));
        }
        self.savepoint("SAVEPOINT batched_joins").await?;
        match self.insert_admitted(&plan.admitted).await {
            Ok(()) => {
                self.savepoint("RELEASE SAVEPOINT batched_joins").await?;
                Ok(Some(plan.answers))
            }
            Err(error) if refused_by_database(&error) && !super::is_transient_conflict(&error) => {
                tracing::debug!(%error, joins = joins.len(), "the database refused the inserts of a batch of Joins; checking them one by one");
                self.savepoint("ROLLBACK TO SAVEPOINT batched_joins").await?;
                self.savepoint("RELEASE SAVEPOINT batched_joins").await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// One read per fact of every pool and signer of `joins`, each through an index.
    async fn batch_facts(
        &mut self,
        joins: &[SignedOp],
        pools: &BTreeSet<PoolId>,
    ) -> Result<BatchFacts, Error> {
        let mut facts = BatchFacts::default();
        let nodes: BTreeSet<NodeId> = joins.iter().map(|j| j.accepted.op.node).collect();
        let digests: BTreeSet<Digest> = joins.iter().map(SignedOp::digest).collect();
        if !pools.is_empty() {
            let pool_keys = || pools.iter().map(|p| p.as_bytes().as_slice());
            let mut q = self.query(POOL_SELECT);
            q.push("WHERE pool_id IN ");
            push_list(&mut q, pool_keys());
            for row in self.rows(&mut q, "reading the pools of a batch").await? {
                let pool = read_pool(&row)?.pool;
                facts.pools.insert(pool.pool_id, pool);
            }
            let mut q = self.query("SELECT pool_id, COUNT(*) FROM pool_members WHERE pool_id IN ");
            push_list(&mut q, pool_keys());
            q.push(" AND status = 'joining' GROUP BY pool_id");
            for row in self.rows(&mut q, "counting the pending joins of a batch").await? {
                let c = Columns::new(&row, "pool_members", "counting pending joins");
                let pool = PoolId::from_bytes(c.bytes(0, "pool_id")?);
                facts.pending_joins.insert(pool, c.unsigned(1, "count")?);
            }
            let mut q = self.query("SELECT pool_id, node_id FROM pool_members WHERE pool_id IN ");
            push_list(&mut q, pool_keys());
            q.push(" AND status = 'banned'");
            for row in self.rows(&mut q, "reading the bans of a batch").await? {
                facts.bans.insert(pool_and_node(&row, "reading a ban")?);
            }
        }
        let node_keys = || nodes.iter().map(|n| n.as_bytes().as_slice());
        let mut q = self.query("SELECT pool_id, node_id FROM pool_members WHERE node_id IN ");
        push_list(&mut q, node_keys());
        q.push(" AND ").push(SEAT);
        for row in self.rows(&mut q, "reading the seats of a batch").await? {
            facts.seated.insert(pool_and_node(&row, "reading a seat")?.1);
        }
        let mut q = self.query(OP_SELECT);
        q.push("WHERE node_id IN ");
        push_list(&mut q, node_keys());
        for row in self.rows(&mut q, "reading the logged ops of a batch").await? {
            let logged = read_logged(&row)?;
            facts.logged.insert(logged.op.digest(), logged);
        }
        let mut q = self.query("SELECT op_digest, node_id FROM pool_members WHERE op_digest IN ");
        push_list(&mut q, digests.iter().map(|d| d.as_bytes().as_slice()));
        for row in self.rows(&mut q, "reading the rows of a batch's Joins").await? {
            let c = Columns::new(&row, "pool_members", "reading a Join's row");
            facts
                .noted
                .insert((Digest::from_bytes(c.bytes(0, "op_digest")?), c.node(1, "node_id")?));
        }
        Ok(facts)
    }

    /// The log rows of the admitted Joins, then their `joining` rows, one `INSERT` per table
    /// and chunk.
    async fn insert_admitted(&mut self, admitted: &[Admitted<'_>]) -> Result<(), Error> {
        let mut rows = admitted.iter();
        for count in row_chunks(admitted.len(), ROWS_PER_STATEMENT) {
            let mut q = self.query(
                "INSERT INTO pool_ops (digest, node_id, slot, tag, pool_id, signed_bytes, \
                 signature, state, reason, applied_slot) VALUES ",
            );
            for (position, a) in rows.by_ref().take(count).enumerate() {
                if position > 0 {
                    q.push(", ");
                }
                let op = &a.join.accepted.op;
                q.tuple([
                    blob(a.join.digest().as_bytes()),
                    blob(op.node.as_bytes()),
                    slot("slot", op.slot)?,
                    Value::Int(i64::from(op.op.tag().wire())),
                    blob(a.pool.as_bytes()),
                    blob(a.join.message.bytes()),
                    blob(a.join.message.signature().as_bytes()),
                    text(OpState::Pending.as_str()),
                    Value::OptText(None),
                    Value::OptInt(None),
                ]);
            }
            self.exec(&mut q, "logging a batch of Joins").await?;
        }
        let notes: Vec<&Admitted<'_>> = admitted.iter().filter(|a| a.note).collect();
        let mut rows = notes.iter();
        for count in row_chunks(notes.len(), ROWS_PER_STATEMENT) {
            let mut q = self.query(
                "INSERT INTO pool_members (pool_id, node_id, role, status, from_slot, to_slot, \
                 op_digest, reason) VALUES ",
            );
            for (position, a) in rows.by_ref().take(count).enumerate() {
                if position > 0 {
                    q.push(", ");
                }
                q.tuple([
                    blob(a.pool.as_bytes()),
                    blob(a.join.accepted.op.node.as_bytes()),
                    text(Role::Member.as_str()),
                    text(MemberStatus::Joining.as_str()),
                    slot("from_slot", a.effect)?,
                    Value::OptInt(None),
                    blob(a.join.digest().as_bytes()),
                    Value::OptText(None),
                ]);
            }
            self.exec(&mut q, "noting a batch of Joins").await?;
        }
        Ok(())
    }
}

/// The advisory read of a Join in one statement: a one-row select of the facts as scalar
/// subqueries (each through an index), left-joined to the pool row, which is absent for an
/// unknown pool.
fn join_advice(dialect: Dialect, pool: &PoolId, node: &NodeId, digest: &Digest) -> Query {
    let pool_key = || blob(pool.as_bytes());
    let node_key = || blob(node.as_bytes());
    let mut q = Query::new(
        dialect,
        "SELECT p.pool_id, p.name, p.founder, p.leader, p.status, p.max_nodes, p.seats, \
         p.created_slot, p.disbanded_slot, p.version, \
         EXISTS (SELECT 1 FROM pool_ops WHERE digest = ",
    );
    q.bind(blob(digest.as_bytes())).push(" AND state = 'pending'), EXISTS (");
    q.push("SELECT 1 FROM pool_members WHERE node_id = ").bind(node_key());
    q.push(" AND ").push(SEAT).push("), EXISTS (");
    // The condition of `pending_seat_request`.
    q.push("SELECT 1 FROM pool_ops WHERE node_id = ").bind(node_key());
    q.push(" AND state = 'pending' AND tag IN (");
    q.bind(Value::Int(i64::from(lucid_pools::OpTag::Create.wire())));
    q.push(", ").bind(Value::Int(i64::from(lucid_pools::OpTag::Join.wire())));
    q.push(")), EXISTS (SELECT 1 FROM pool_members WHERE pool_id = ").bind(pool_key());
    q.push(" AND node_id = ").bind(node_key()).push(" AND status = 'banned'), ");
    q.push("(SELECT COUNT(*) FROM pool_members WHERE pool_id = ").bind(pool_key());
    q.push(" AND status = 'joining') FROM (SELECT 1 AS one) AS one LEFT JOIN pools p ON ");
    q.push("p.pool_id = ").bind(pool_key());
    q
}

impl Database {
    /// [`lucid_pools::PoolStore::join_advice`] in one statement ([`join_advice`]).
    pub(super) async fn join_advice_query(
        &self,
        pool: &PoolId,
        node: &NodeId,
        digest: &Digest,
    ) -> Result<JoinAdvice, Error> {
        let action = "reading the facts of a Join";
        let mut q = join_advice(self.dialect(), pool, node, digest);
        let rows = self.read(&mut q, action).await?;
        let row = rows.first().ok_or_else(|| lucid_core::internal!("{action}: no row"))?;
        let flag = |index| row.boolean(index).map_err(Error::query(action));
        if flag(10)? {
            return Ok(JoinAdvice { pending_duplicate: true, ..JoinAdvice::default() });
        }
        let pool = match row.opt_blob(0).map_err(Error::query(action))? {
            None => None,
            Some(_) => Some(read_pool(row)?.pool),
        };
        let mut facts = checks::JoinFacts::default();
        if pool.as_ref().is_some_and(|p| p.status != PoolStatus::Disbanded) {
            facts.seat_requested = flag(11)? || flag(12)?;
            facts.banned = !facts.seat_requested && flag(13)?;
            // Facts after the first refusal that applies stay at their defaults, as
            // `lucid_pools::store::join_facts` leaves them.
            if !facts.seat_requested && !facts.banned {
                let c = Columns::new(row, "pool_members", action);
                facts.pending_joins = c.unsigned(14, "pending joins")?;
            }
        }
        Ok(JoinAdvice { pending_duplicate: false, pool, facts })
    }

    /// [`lucid_pools::PoolStore::is_banned`]: one lookup through the `(pool_id, status)` index.
    pub(super) async fn is_banned_query(
        &self,
        pool: &PoolId,
        node: &NodeId,
    ) -> Result<bool, Error> {
        let mut q = self.query("SELECT 1 FROM pool_members WHERE pool_id = ");
        q.bind(blob(pool.as_bytes())).push(" AND status = 'banned' AND node_id = ");
        q.bind(blob(node.as_bytes())).push(" LIMIT 1");
        Ok(!self.read(&mut q, "looking up a ban").await?.is_empty())
    }
}
