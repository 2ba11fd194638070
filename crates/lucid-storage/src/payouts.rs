//! `lucid_payouts::store::{LedgerStore, PayoutStore}` on SQL: the `ledger_*`, `payouts` and
//! `payout_attempts` tables of `pools-payouts.md` §6, with the semantics of `MemoryPayoutStore`.
//!
//! Every port method is one write transaction (§8 T3–T8). On SQLite `BEGIN IMMEDIATE` takes the
//! database write lock first, so the transactions of one database are serialised. On PostgreSQL
//! (READ COMMITTED) the transaction locks what it reads before it decides: the payout row
//! (`SELECT … FOR UPDATE`) for every payout transition, the account rows in one global order
//! (the order of `Account`, which is the order of a posting's entries) before balances change,
//! and the node's account row before a payout is created, so that the available balance read is
//! the one reserved. Every payout write is in addition a compare-and-set on the status read
//! (`UPDATE … WHERE status = …` must change one row), and claims are serialised by a
//! transaction-scoped advisory lock so that concurrent claims cannot overshoot the daily caps.
//!
//! Balances are maintained in `ledger_accounts` in the same transaction as the entries; an
//! overdraft is refused before anything is written, and the schema's `CHECK (balance >= 0)` is the
//! backstop. [`Database::audit_ledger_and_payouts`] checks balances against the sums of entries
//! and every payout's postings against its status, as `MemoryPayoutStore::audit` does.
//!
//! The checks run in exactly the order `MemoryPayoutStore` runs them, so both stores return the
//! same value or the same error for every call (the model test in `tests/it/payouts.rs`).

use std::collections::BTreeMap;

use lucid_core::{HasKind, MicroUsdt, NodeId, UnixMillis};
use lucid_payouts::Error as PayoutError;
use lucid_payouts::ledger::{Account, Applied, Entry, NodeBalance, Posting, PostingKind};
use lucid_payouts::payout::{Amounts, Origin, PayoutStatus, payout_id, utc_day};
use lucid_payouts::rail::{SignedTransfer, Txid};
use lucid_payouts::store::{
    AttemptEnd, AttemptRecord, AttemptStatus, CHAIN_MISMATCH, ClaimRequest, CreateOutcome,
    Creation, LedgerPosition, LedgerStore, NewPayout, NodeCredit, NodeLedgerLine, PayoutRecord,
    PayoutStore, Receipt, Resolution, Unclaim, decide_creation, refuse_payout_posting,
    refuse_unless_mismatch,
};

use crate::database::Database;
use crate::error::Error;
use crate::sql::{Columns, Dialect, Query, Row, Tx, Value};

/// The columns a payout is read from, in the order [`read_payout`] expects.
const PAYOUT_SELECT: &str = "SELECT payout_id, node_id, origin, idempotency_key, gross, fee, net, \
     to_address, status, attempt_count, max_retries, lease_owner, lease_until, error_code, \
     error_message, created_at, updated_at, first_signed_at, completed_at, sign_failures \
     FROM payouts ";
/// The columns an attempt is read from, in the order [`read_attempt`] expects.
const ATTEMPT_SELECT: &str = "SELECT payout_id, attempt_no, txid, raw_data, signature, \
     expiration_ms, fee_limit_sun, status, broadcasts, broadcast_at, block_number, \
     receipt_result, energy_used, fee_sun, created_at FROM payout_attempts ";
/// The key of the advisory lock that serialises claims on PostgreSQL ("lucidclm").
const CLAIM_LOCK: i64 = 0x6c75_6369_6463_6c6d;
const DAY_MS: i64 = 86_400_000;
fn account_kind(account: &Account) -> &'static str {
    match account {
        Account::Node(_) => "node",
        Account::Treasury => "treasury",
        Account::Rewards => "rewards",
        Account::Sessions => "sessions",
        Account::InFlight => "in_flight",
        Account::Chain => "chain",
    }
}

/// Why a transaction ended without committing: a verdict of the payout rules (returned as is)
/// or a failure of the database (wrapped with its kind).
enum Fail {
    Domain(PayoutError),
    Store(Error),
}

impl From<Error> for Fail {
    fn from(error: Error) -> Self {
        Fail::Store(error)
    }
}

impl From<PayoutError> for Fail {
    fn from(error: PayoutError) -> Self {
        Fail::Domain(error)
    }
}

/// The error and its sources on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

fn payouts_error(action: &'static str) -> impl FnOnce(Fail) -> PayoutError {
    move |fail| match fail {
        Fail::Domain(error) => error,
        Fail::Store(error) => {
            PayoutError::Store { action, kind: error.kind(), message: chain(&error) }
        }
    }
}

fn int(field: &'static str, value: u64) -> Result<Value, Error> {
    i64::try_from(value).map(Value::Int).map_err(|_| Error::OutOfRange { field, value })
}

fn opt_int(field: &'static str, value: Option<u64>) -> Result<Value, Error> {
    match value {
        Some(v) => Ok(Value::OptInt(Some(
            i64::try_from(v).map_err(|_| Error::OutOfRange { field, value: v })?,
        ))),
        None => Ok(Value::OptInt(None)),
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn time(value: UnixMillis) -> Value {
    Value::Int(value.0)
}

fn opt_time(value: Option<UnixMillis>) -> Value {
    Value::OptInt(value.map(|t| t.0))
}

/// `column` (a posting key) as SQL that orders keys by their bytes on both backends, whatever the
/// PostgreSQL server's default collation.
fn posting_key_in_byte_order(backend: crate::database::Backend, column: &str) -> String {
    match backend {
        crate::database::Backend::Sqlite => column.to_owned(),
        crate::database::Backend::Postgres => format!("{column} COLLATE \"C\""),
    }
}

/// Column `index` of a ledger row as a posting kind.
fn read_posting_kind(c: &Columns<'_>, index: usize) -> Result<PostingKind, Error> {
    let kind = c.text(index)?;
    PostingKind::parse(&kind).ok_or_else(|| c.invalid(format!("unknown posting kind {kind:?}")))
}

fn read_payout(row: &Row) -> Result<PayoutRecord, Error> {
    let c = Columns::new(row, "payouts", "reading a payout");
    let origin_name = c.text(2)?;
    let origin = Origin::ALL
        .into_iter()
        .find(|o| o.as_str() == origin_name)
        .ok_or_else(|| c.invalid(format!("unknown origin {origin_name:?}")))?;
    let status_name = c.text(8)?;
    let status = PayoutStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == status_name)
        .ok_or_else(|| c.invalid(format!("unknown status {status_name:?}")))?;
    let gross = MicroUsdt(c.unsigned(4, "gross")?);
    let fee = MicroUsdt(c.unsigned(5, "fee")?);
    let net = MicroUsdt(c.unsigned(6, "net")?);
    if fee.0.checked_add(net.0) != Some(gross.0) {
        return Err(c.invalid("fee + net differs from gross".to_owned()));
    }
    Ok(PayoutRecord {
        payout_id: c.text(0)?,
        node: c.node(1, "node_id")?,
        origin,
        idempotency_key: c.text(3)?,
        amounts: Amounts { gross, fee, net },
        to_address: c.bytes(7, "to_address")?,
        status,
        attempt_count: c.u32(9, "attempt_count")?,
        max_retries: c.u32(10, "max_retries")?,
        lease_owner: c.opt_text(11)?,
        lease_until: c.opt_time(12)?,
        error_code: c.opt_text(13)?,
        error_message: c.opt_text(14)?,
        created_at: c.time(15)?,
        updated_at: c.time(16)?,
        first_signed_at: c.opt_time(17)?,
        completed_at: c.opt_time(18)?,
        sign_failures: c.u32(19, "sign_failures")?,
    })
}

fn read_attempt(row: &Row) -> Result<AttemptRecord, Error> {
    let c = Columns::new(row, "payout_attempts", "reading an attempt");
    let status_name = c.text(7)?;
    let status = AttemptStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == status_name)
        .ok_or_else(|| c.invalid(format!("unknown status {status_name:?}")))?;
    Ok(AttemptRecord {
        payout_id: c.text(0)?,
        attempt_no: c.u32(1, "attempt_no")?,
        transfer: SignedTransfer {
            txid: c.bytes(2, "txid")?,
            raw: c.blob(3)?,
            signature: c.blob(4)?,
            expiration: c.time(5)?,
            fee_limit_sun: c.unsigned(6, "fee_limit_sun")?,
        },
        status,
        broadcasts: c.u32(8, "broadcasts")?,
        broadcast_at: c.opt_time(9)?,
        block: c.opt_unsigned(10, "block_number")?,
        result_code: c.opt_text(11)?,
        energy_used: c.opt_unsigned(12, "energy_used")?,
        fee_sun: c.opt_unsigned(13, "fee_sun")?,
        created_at: c.time(14)?,
    })
}

/// Rebuilds a posting from its stored kind and entries; a row set that is not a valid posting
/// (unbalanced, unknown account) is damage, never papered over.
fn rebuild_posting(key: &str, kind: &str, entries: &[(String, i64)]) -> Result<Posting, Error> {
    let invalid = |detail: String| Error::InvalidRow {
        table: "ledger_postings",
        key: key.to_owned(),
        detail,
    };
    let kind = PostingKind::parse(kind).ok_or_else(|| invalid(format!("unknown kind {kind:?}")))?;
    let entries = entries
        .iter()
        .map(|(account, amount)| {
            Account::parse(account)
                .map(|account| Entry { account, amount: *amount })
                .ok_or_else(|| invalid(format!("unknown account {account:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Posting::new(key.to_owned(), kind, entries).map_err(|error| invalid(error.to_string()))
}

/// Postings with their entries, in the columns [`parse_postings`] expects; one round trip.
const POSTINGS_SELECT: &str = "SELECT p.posting_key, p.kind, e.account, e.amount FROM \
     ledger_postings p LEFT JOIN ledger_entries e ON e.posting_key = p.posting_key ";
/// The order [`parse_postings`] groups by.
const POSTINGS_ORDER: &str = " ORDER BY p.posting_key, e.account";

/// `select` ([`POSTINGS_SELECT`]) narrowed to the posting stored under `key`.
fn posting_query(mut select: Query, key: &str) -> Query {
    select.push("WHERE p.posting_key = ").bind(text(key));
    select.push(POSTINGS_ORDER);
    select
}
/// Every account with its balance.
const BALANCES_SELECT: &str = "SELECT account, balance FROM ledger_accounts ORDER BY account";

fn parse_postings(rows: &[Row]) -> Result<Vec<Posting>, Error> {
    let mut grouped: BTreeMap<String, (String, Vec<(String, i64)>)> = BTreeMap::new();
    for row in rows {
        let c = Columns::new(row, "ledger_postings", "reading the ledger");
        let key = c.text(0)?;
        let kind = c.text(1)?;
        let slot = grouped.entry(key).or_insert_with(|| (kind, Vec::new()));
        let account = c.opt_text(2)?;
        let amount = row.opt_int(3).map_err(Error::query("reading the ledger"))?;
        if let (Some(account), Some(amount)) = (account, amount) {
            slot.1.push((account, amount));
        }
    }
    grouped.iter().map(|(key, (kind, entries))| rebuild_posting(key, kind, entries)).collect()
}

fn parse_balances(rows: &[Row]) -> Result<Vec<(Account, i64)>, Error> {
    rows.iter()
        .map(|row| {
            let c = Columns::new(row, "ledger_accounts", "reading balances");
            let name = c.text(0)?;
            let account = Account::parse(&name)
                .ok_or_else(|| c.invalid(format!("unknown account {name:?}")))?;
            Ok((account, c.int(1)?))
        })
        .collect()
}

/// An open write transaction with its dialect.
struct Write {
    tx: Tx,
    dialect: Dialect,
}

impl Write {
    fn query(&self, sql: &str) -> Query {
        Query::new(self.dialect, sql)
    }

    fn for_update(&self, q: &mut Query) {
        if self.dialect == Dialect::Postgres {
            q.push(" FOR UPDATE");
        }
    }

    async fn rows(&mut self, query: &mut Query, action: &'static str) -> Result<Vec<Row>, Error> {
        self.tx.fetch_all(query).await.map_err(Error::query(action))
    }

    async fn exec(&mut self, query: &mut Query, action: &'static str) -> Result<u64, Error> {
        self.tx.execute(query).await.map_err(Error::query(action))
    }

    async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await.map_err(Error::query("committing a ledger or payout change"))
    }

    /// The posting stored under `key`.
    async fn posting(&mut self, key: &str) -> Result<Option<Posting>, Error> {
        let mut q = posting_query(self.query(POSTINGS_SELECT), key);
        Ok(parse_postings(&self.rows(&mut q, "reading a posting").await?)?.pop())
    }

    /// The balance of `account`, its row locked until the end of the transaction (PostgreSQL:
    /// `FOR UPDATE`; SQLite holds the write lock already); `None` if it has no row yet.
    async fn lock_account(&mut self, account: &Account) -> Result<Option<i64>, Error> {
        let mut q = self.query("SELECT balance FROM ledger_accounts WHERE account = ");
        q.bind(text(&account.name()));
        self.for_update(&mut q);
        let rows = self.rows(&mut q, "locking an account").await?;
        rows.first().map(|row| row.int(0).map_err(Error::query("locking an account"))).transpose()
    }

    /// Applies `posting` as `Ledger::apply` does: the same posting again is a no-op, another
    /// posting under its key a conflict, an overdraft refuses it whole (nothing written).
    async fn apply(&mut self, posting: &Posting, now: UnixMillis) -> Result<Applied, Fail> {
        // Insert-if-absent first: a concurrent transaction inserting the same key makes this
        // one wait for its outcome (PostgreSQL), so the comparison below sees the winner.
        let mut q =
            self.query("INSERT INTO ledger_postings (posting_key, kind, created_at, memo) VALUES ");
        q.tuple([
            text(posting.key()),
            text(posting.kind().as_str()),
            time(now),
            Value::OptText(None),
        ]);
        q.push(" ON CONFLICT (posting_key) DO NOTHING");
        if self.exec(&mut q, "inserting a posting").await? == 0 {
            let existing = self.posting(posting.key()).await?;
            return if existing.as_ref() == Some(posting) {
                Ok(Applied::AlreadyPosted)
            } else {
                Err(PayoutError::PostingConflict { key: posting.key().to_owned() }.into())
            };
        }
        // Entries are sorted by account: every transaction locks accounts in the same order.
        let mut next_balances = Vec::with_capacity(posting.entries().len());
        for entry in posting.entries() {
            let name = entry.account.name();
            let current = match self.lock_account(&entry.account).await? {
                Some(balance) => balance,
                None => {
                    let mut q =
                        self.query("INSERT INTO ledger_accounts (account, kind, balance) VALUES ");
                    q.tuple([text(&name), text(account_kind(&entry.account)), Value::Int(0)]);
                    q.push(" ON CONFLICT (account) DO NOTHING");
                    self.exec(&mut q, "opening an account").await?;
                    self.lock_account(&entry.account).await?.ok_or_else(|| {
                        Fail::Store(lucid_core::internal!("account {name} vanished").into())
                    })?
                }
            };
            let next = current.checked_add(entry.amount).ok_or(PayoutError::Amount {
                action: "updating a balance",
                source: lucid_core::AmountError::Overflow,
            })?;
            if next < 0 && !entry.account.may_go_negative() {
                return Err(PayoutError::Overdraft {
                    key: posting.key().to_owned(),
                    account: name,
                }
                .into());
            }
            next_balances.push((name, current, next));
        }
        let mut q = self.query("INSERT INTO ledger_entries (posting_key, account, amount) VALUES ");
        for (index, entry) in posting.entries().iter().enumerate() {
            if index > 0 {
                q.push(", ");
            }
            q.tuple([text(posting.key()), text(&entry.account.name()), Value::Int(entry.amount)]);
        }
        self.exec(&mut q, "inserting entries").await?;
        for (name, current, next) in next_balances {
            let mut q = self.query("UPDATE ledger_accounts SET balance = ");
            q.bind(Value::Int(next)).push(" WHERE account = ").bind(text(&name));
            q.push(" AND balance = ").bind(Value::Int(current));
            if self.exec(&mut q, "updating a balance").await? != 1 {
                return Err(Fail::Store(
                    lucid_core::internal!("balance of {name} changed under its lock").into(),
                ));
            }
        }
        Ok(Applied::Posted)
    }

    /// The payout row, locked until the end of the transaction.
    async fn lock_payout(&mut self, payout_id: &str) -> Result<PayoutRecord, Fail> {
        let mut q = self.query(PAYOUT_SELECT);
        q.push("WHERE payout_id = ").bind(text(payout_id));
        self.for_update(&mut q);
        let rows = self.rows(&mut q, "locking a payout").await?;
        match rows.first() {
            Some(row) => Ok(read_payout(row)?),
            None => Err(PayoutError::PayoutNotFound { payout_id: payout_id.to_owned() }.into()),
        }
    }

    /// The locked payout, if it is in one of the `expected` states.
    async fn require(
        &mut self,
        payout_id: &str,
        expected: &[PayoutStatus],
    ) -> Result<PayoutRecord, Fail> {
        let payout = self.lock_payout(payout_id).await?;
        if expected.contains(&payout.status) {
            Ok(payout)
        } else {
            Err(PayoutError::StateChanged {
                payout_id: payout_id.to_owned(),
                expected: expected.first().copied().unwrap_or(payout.status),
                found: payout.status,
            }
            .into())
        }
    }

    /// Writes every mutable column of `payout`, as a compare-and-set on the status `was`.
    async fn write_payout(&mut self, payout: &PayoutRecord, was: PayoutStatus) -> Result<(), Fail> {
        let mut q = self.query("UPDATE payouts SET status = ");
        q.bind(text(payout.status.as_str()));
        q.push(", attempt_count = ").bind(int("attempt_count", u64::from(payout.attempt_count))?);
        q.push(", lease_owner = ").bind(Value::OptText(payout.lease_owner.clone()));
        q.push(", lease_until = ").bind(opt_time(payout.lease_until));
        q.push(", error_code = ").bind(Value::OptText(payout.error_code.clone()));
        q.push(", error_message = ").bind(Value::OptText(payout.error_message.clone()));
        q.push(", updated_at = ").bind(time(payout.updated_at));
        q.push(", first_signed_at = ").bind(opt_time(payout.first_signed_at));
        q.push(", completed_at = ").bind(opt_time(payout.completed_at));
        q.push(", sign_failures = ").bind(int("sign_failures", u64::from(payout.sign_failures))?);
        q.push(" WHERE payout_id = ").bind(text(&payout.payout_id));
        q.push(" AND status = ").bind(text(was.as_str()));
        if self.exec(&mut q, "updating a payout").await? == 1 {
            Ok(())
        } else {
            // The row is locked: only a bug gets here.
            Err(PayoutError::StateChanged {
                payout_id: payout.payout_id.clone(),
                expected: was,
                found: payout.status,
            }
            .into())
        }
    }

    async fn attempts(&mut self, payout_id: &str) -> Result<Vec<AttemptRecord>, Error> {
        let mut q = self.query(ATTEMPT_SELECT);
        q.push("WHERE payout_id = ").bind(text(payout_id)).push(" ORDER BY attempt_no");
        self.rows(&mut q, "reading attempts").await?.iter().map(read_attempt).collect()
    }

    /// The live attempt with `txid`, refused exactly as `MemoryPayoutStore` refuses it.
    async fn live_attempt(&mut self, payout_id: &str, txid: &Txid) -> Result<AttemptRecord, Fail> {
        let refused = |rule| PayoutError::AttemptRefused { payout_id: payout_id.to_owned(), rule };
        let attempts = self.attempts(payout_id).await?;
        if attempts.is_empty() {
            return Err(refused("the payout has no attempt").into());
        }
        let attempt = attempts
            .into_iter()
            .find(|attempt| attempt.transfer.txid == *txid)
            .ok_or(refused("no attempt has this txid"))?;
        if attempt.status.is_live() {
            Ok(attempt)
        } else {
            Err(refused("the attempt is no longer live").into())
        }
    }

    async fn write_attempt(&mut self, attempt: &AttemptRecord) -> Result<(), Fail> {
        let mut q = self.query("UPDATE payout_attempts SET status = ");
        q.bind(text(attempt.status.as_str()));
        q.push(", broadcasts = ").bind(int("broadcasts", u64::from(attempt.broadcasts))?);
        q.push(", broadcast_at = ").bind(opt_time(attempt.broadcast_at));
        q.push(", block_number = ").bind(opt_int("block_number", attempt.block)?);
        q.push(", receipt_result = ").bind(Value::OptText(attempt.result_code.clone()));
        q.push(", energy_used = ").bind(opt_int("energy_used", attempt.energy_used)?);
        q.push(", fee_sun = ").bind(opt_int("fee_sun", attempt.fee_sun)?);
        q.push(" WHERE txid = ").bind(Value::Blob(attempt.transfer.txid.to_vec()));
        q.push(" AND payout_id = ").bind(text(&attempt.payout_id));
        if self.exec(&mut q, "updating an attempt").await? == 1 {
            Ok(())
        } else {
            Err(Fail::Store(lucid_core::internal!("attempt row vanished").into()))
        }
    }

    /// Posts `payout_release` for the payout.
    async fn release(&mut self, payout: &PayoutRecord, now: UnixMillis) -> Result<(), Fail> {
        let posting =
            Posting::payout_release(&payout.payout_id, payout.node, payout.amounts.gross)?;
        self.apply(&posting, now).await?;
        Ok(())
    }
}

/// `MemoryPayoutStore`'s status change: checked transition, lease cleared outside
/// `processing`, completion time on a terminal state.
fn set_status(payout: &mut PayoutRecord, to: PayoutStatus, now: UnixMillis) -> Result<(), Fail> {
    payout.status = payout.status.transition(to)?;
    payout.updated_at = now;
    if to != PayoutStatus::Processing {
        payout.lease_owner = None;
        payout.lease_until = None;
    }
    if to.is_terminal() {
        payout.completed_at = Some(now);
    }
    Ok(())
}

fn lease_lost(payout: &PayoutRecord) -> Fail {
    PayoutError::StateChanged {
        payout_id: payout.payout_id.clone(),
        expected: PayoutStatus::Processing,
        found: payout.status,
    }
    .into()
}

impl Database {
    async fn ledger_write(&self) -> Result<Write, Error> {
        let tx = self.begin_write().await.map_err(Error::query("starting a write transaction"))?;
        Ok(Write { tx, dialect: self.dialect() })
    }

    async fn ledger_read(
        &self,
        query: &mut Query,
        action: &'static str,
    ) -> Result<Vec<Row>, Error> {
        self.reader().fetch_all(query).await.map_err(Error::query(action))
    }

    /// Every posting, by key (for tests and audits, like `MemoryPayoutStore::ledger`).
    pub async fn ledger_postings(&self) -> Result<Vec<Posting>, Error> {
        let mut q = self.query(POSTINGS_SELECT);
        q.push(POSTINGS_ORDER);
        parse_postings(&self.ledger_read(&mut q, "reading the ledger").await?)
    }

    /// Every account's maintained balance, by account name.
    pub async fn ledger_balances(&self) -> Result<Vec<(Account, i64)>, Error> {
        let mut q = self.query(BALANCES_SELECT);
        parse_balances(&self.ledger_read(&mut q, "reading balances").await?)
    }

    /// Audits the ledger and the payouts as `MemoryPayoutStore::audit` does: every posting
    /// balances, each maintained balance equals the sum of its entries, non-negative accounts are
    /// non-negative, all balances sum to zero; per payout at most one live attempt, attempts
    /// consecutive with only the last one live, `attempt_count` equal to the attempts, and the
    /// reserve, settle and release postings exactly as its status says. `Ok(Err(report))` is a
    /// broken invariant; `Err` a failed read.
    pub async fn audit_ledger_and_payouts(&self) -> Result<Result<(), String>, Error> {
        // One snapshot for every read, so that concurrent writers cannot make a consistent
        // store look inconsistent: SQLite's write lock, PostgreSQL's repeatable read.
        let mut w = self.ledger_write().await?;
        if w.dialect == Dialect::Postgres {
            let mut q = w.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
            w.exec(&mut q, "starting an audit snapshot").await?;
        }
        let mut q = w.query(POSTINGS_SELECT);
        q.push(POSTINGS_ORDER);
        let postings = parse_postings(&w.rows(&mut q, "reading the ledger").await?)?;
        let mut q = w.query(BALANCES_SELECT);
        let balances = parse_balances(&w.rows(&mut q, "reading balances").await?)?;
        let mut q = w.query(PAYOUT_SELECT);
        q.push("ORDER BY created_at, payout_id");
        let payouts = w
            .rows(&mut q, "listing payouts")
            .await?
            .iter()
            .map(read_payout)
            .collect::<Result<Vec<_>, _>>()?;
        let mut q = w.query(ATTEMPT_SELECT);
        q.push("ORDER BY payout_id, attempt_no");
        let mut attempts_of: BTreeMap<String, Vec<AttemptRecord>> = BTreeMap::new();
        for row in w.rows(&mut q, "reading attempts").await? {
            let attempt = read_attempt(&row)?;
            attempts_of.entry(attempt.payout_id.clone()).or_default().push(attempt);
        }
        drop(w);
        let mut sums: BTreeMap<Account, i128> = BTreeMap::new();
        for posting in &postings {
            for entry in posting.entries() {
                *sums.entry(entry.account).or_insert(0) += i128::from(entry.amount);
            }
        }
        let mut total: i128 = 0;
        for (account, balance) in &balances {
            if sums.remove(account).unwrap_or(0) != i128::from(*balance) {
                return Ok(Err(format!("balance of {account} differs from its entries")));
            }
            if *balance < 0 && !account.may_go_negative() {
                return Ok(Err(format!("{account} is negative")));
            }
            total += i128::from(*balance);
        }
        if let Some((account, _)) = sums.iter().find(|(_, sum)| **sum != 0) {
            return Ok(Err(format!("{account} has entries but no balance row")));
        }
        if total != 0 {
            return Ok(Err(format!("balances sum to {total}, not zero")));
        }
        let keys: std::collections::BTreeSet<&str> = postings.iter().map(Posting::key).collect();
        for payout in payouts {
            let id = &payout.payout_id;
            let attempts = attempts_of.remove(id).unwrap_or_default();
            let live = attempts.iter().filter(|a| a.status.is_live()).count();
            if live > 1 {
                return Ok(Err(format!("{id} has {live} live attempts")));
            }
            for (index, attempt) in attempts.iter().enumerate() {
                if usize::try_from(attempt.attempt_no).ok() != Some(index + 1) {
                    return Ok(Err(format!("{id} attempts are not consecutive")));
                }
                if attempt.status.is_live() && index + 1 != attempts.len() {
                    return Ok(Err(format!("{id} has a live attempt that is not the last")));
                }
            }
            if usize::try_from(payout.attempt_count).ok() != Some(attempts.len()) {
                return Ok(Err(format!("{id} attempt_count differs from its attempts")));
            }
            let posted = |kind: &str| keys.contains(format!("{kind}:{id}").as_str());
            let found =
                (posted("payout_reserve"), posted("payout_settle"), posted("payout_release"));
            let expected = match payout.status {
                PayoutStatus::Confirmed => (true, true, false),
                PayoutStatus::Failed | PayoutStatus::Cancelled => (true, false, true),
                _ => (true, false, false),
            };
            if found != expected {
                return Ok(Err(format!("{id} is {} but its postings disagree", payout.status)));
            }
            let should_have_live =
                matches!(payout.status, PayoutStatus::Signed | PayoutStatus::Sent);
            if (live == 1) != should_have_live {
                return Ok(Err(format!("{id} is {} with {live} live attempts", payout.status)));
            }
        }
        Ok(Ok(()))
    }

    async fn read_posting(&self, key: &str) -> Result<Option<Posting>, Error> {
        let mut q = posting_query(self.query(POSTINGS_SELECT), key);
        Ok(parse_postings(&self.ledger_read(&mut q, "reading a posting").await?)?.pop())
    }

    async fn list_payouts(&self, status: Option<PayoutStatus>) -> Result<Vec<PayoutRecord>, Error> {
        let mut q = self.query(PAYOUT_SELECT);
        if let Some(status) = status {
            q.push("WHERE status = ").bind(text(status.as_str()));
        }
        q.push(" ORDER BY created_at, payout_id");
        self.ledger_read(&mut q, "listing payouts").await?.iter().map(read_payout).collect()
    }

    async fn payout_attempts(&self, payout_id: &str) -> Result<Vec<AttemptRecord>, Error> {
        let mut q = self.query(ATTEMPT_SELECT);
        q.push("WHERE payout_id = ").bind(text(payout_id)).push(" ORDER BY attempt_no");
        self.ledger_read(&mut q, "reading attempts").await?.iter().map(read_attempt).collect()
    }

    async fn apply_posting_tx(&self, posting: &Posting, now: UnixMillis) -> Result<Applied, Fail> {
        refuse_payout_posting(posting)?;
        let mut w = self.ledger_write().await?;
        let applied = w.apply(posting, now).await?;
        w.commit().await?;
        Ok(applied)
    }

    async fn create_payout_tx(&self, request: &NewPayout) -> Result<CreateOutcome, Fail> {
        let mut w = self.ledger_write().await?;
        let id = payout_id(&request.node, &request.idempotency_key);
        // The node's account first: creations for one node are serialised from here on, so the
        // replay check and the available balance below are both current (T4).
        let balance = w.lock_account(&Account::Node(request.node)).await?.unwrap_or(0);
        let mut q = w.query(PAYOUT_SELECT);
        q.push("WHERE payout_id = ").bind(text(&id));
        let existing = match w.rows(&mut q, "looking up a payout").await?.first() {
            Some(row) => Some(read_payout(row)?),
            None => None,
        };
        // The payout row before its reservation: the posting's key names it.
        let record = match decide_creation(request, &id, existing.as_ref(), balance)? {
            Creation::Answer(outcome) => return Ok(outcome),
            Creation::Create(record) => record,
        };
        let (amounts, to_address) = (record.amounts, record.to_address);
        let mut q = w.query(
            "INSERT INTO payouts (payout_id, node_id, origin, idempotency_key, gross, fee, net, \
             to_address, status, attempt_count, max_retries, created_at, updated_at) VALUES ",
        );
        q.tuple([
            text(&id),
            Value::Blob(request.node.as_bytes().to_vec()),
            text(request.origin.as_str()),
            text(&request.idempotency_key),
            int("gross", amounts.gross.0)?,
            int("fee", amounts.fee.0)?,
            int("net", amounts.net.0)?,
            Value::Blob(to_address.to_vec()),
            text(PayoutStatus::Pending.as_str()),
            Value::Int(0),
            int("max_retries", u64::from(request.max_retries))?,
            time(request.now),
            time(request.now),
        ]);
        w.exec(&mut q, "inserting a payout").await?;
        let reserve = Posting::payout_reserve(&id, request.node, amounts.gross)?;
        w.apply(&reserve, request.now).await?;
        w.commit().await?;
        Ok(CreateOutcome::Created(record))
    }

    async fn claim_tx(&self, request: &ClaimRequest) -> Result<Vec<PayoutRecord>, Fail> {
        let mut w = self.ledger_write().await?;
        if w.dialect == Dialect::Postgres {
            // Claims count each other's `processing` rows against the daily caps: one at a time.
            let mut q = w.query("SELECT pg_advisory_xact_lock(");
            q.bind(Value::Int(CLAIM_LOCK)).push(")");
            w.rows(&mut q, "serialising claims").await?;
        }
        let mut q = w.query(PAYOUT_SELECT);
        q.push("WHERE status = 'pending' ORDER BY created_at, payout_id");
        let pending = w
            .rows(&mut q, "listing pending payouts")
            .await?
            .iter()
            .map(read_payout)
            .collect::<Result<Vec<_>, _>>()?;
        let day = utc_day(request.now);
        let day_start = day.saturating_mul(DAY_MS);
        let mut q = w.query("SELECT node_id FROM payouts WHERE (first_signed_at >= ");
        q.bind(Value::Int(day_start)).push(" AND first_signed_at < ");
        q.bind(Value::Int(day_start.saturating_add(DAY_MS)));
        q.push(") OR (first_signed_at IS NULL AND status = 'processing')");
        let mut all = 0u32;
        let mut per_node: BTreeMap<NodeId, u32> = BTreeMap::new();
        for row in w.rows(&mut q, "counting today's payouts").await? {
            let node =
                Columns::new(&row, "payouts", "counting today's payouts").node(0, "node_id")?;
            all = all.saturating_add(1);
            let count = per_node.entry(node).or_insert(0);
            *count = count.saturating_add(1);
        }
        let batch = usize::try_from(request.batch_size).unwrap_or(usize::MAX);
        let mut claimed = Vec::new();
        for mut payout in pending {
            if claimed.len() >= batch {
                break;
            }
            let never_signed = payout.first_signed_at.is_none();
            if never_signed {
                let for_node = per_node.get(&payout.node).copied().unwrap_or(0);
                if !request.caps.allows(all, for_node) {
                    continue;
                }
            }
            set_status(&mut payout, PayoutStatus::Processing, request.now)?;
            payout.lease_owner = Some(request.lease_owner.clone());
            payout.lease_until = Some(request.lease_until);
            match w.write_payout(&payout, PayoutStatus::Pending).await {
                Ok(()) => {}
                // Cancelled by a concurrent transaction since it was listed: not ours to claim.
                Err(Fail::Domain(PayoutError::StateChanged { .. })) => continue,
                Err(other) => return Err(other),
            }
            if never_signed {
                all = all.saturating_add(1);
                let count = per_node.entry(payout.node).or_insert(0);
                *count = count.saturating_add(1);
            }
            claimed.push(payout);
        }
        w.commit().await?;
        Ok(claimed)
    }

    async fn unclaim_tx(
        &self,
        payout_id: &str,
        lease_owner: &str,
        what: &Unclaim,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Processing]).await?;
        if payout.lease_owner.as_deref() != Some(lease_owner) {
            return Err(lease_lost(&payout));
        }
        let code = match what {
            Unclaim::Retry { code } => {
                set_status(&mut payout, PayoutStatus::Pending, now)?;
                code
            }
            Unclaim::Fail { code } => {
                w.release(&payout, now).await?;
                set_status(&mut payout, PayoutStatus::Failed, now)?;
                code
            }
            Unclaim::SignFailed { code, max_failures, message } => {
                payout.sign_failures = payout.sign_failures.saturating_add(1);
                payout.error_message = Some(message.clone());
                if payout.sign_failures >= *max_failures {
                    w.release(&payout, now).await?;
                    set_status(&mut payout, PayoutStatus::Failed, now)?;
                } else {
                    set_status(&mut payout, PayoutStatus::Pending, now)?;
                }
                code
            }
        };
        payout.error_code = Some(code.clone());
        w.write_payout(&payout, PayoutStatus::Processing).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn record_signed_tx(
        &self,
        payout_id: &str,
        lease_owner: &str,
        attempt_no: u32,
        transfer: &SignedTransfer,
        now: UnixMillis,
    ) -> Result<AttemptRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Processing]).await?;
        let refused = |rule| PayoutError::AttemptRefused { payout_id: payout_id.to_owned(), rule };
        if payout.lease_owner.as_deref() != Some(lease_owner) {
            return Err(lease_lost(&payout));
        }
        if attempt_no != payout.attempt_count.saturating_add(1) {
            return Err(refused("attempt numbers must be consecutive").into());
        }
        if !payout.has_retries_left() {
            return Err(refused("no retries left").into());
        }
        if w.attempts(payout_id).await?.iter().any(|a| a.status.is_live()) {
            return Err(refused("a live attempt exists").into());
        }
        let mut q = w.query("SELECT 1 FROM payout_attempts WHERE txid = ");
        q.bind(Value::Blob(transfer.txid.to_vec()));
        if !w.rows(&mut q, "looking up a txid").await?.is_empty() {
            return Err(refused("the txid is already recorded").into());
        }
        set_status(&mut payout, PayoutStatus::Signed, now)?;
        payout.attempt_count = attempt_no;
        payout.first_signed_at.get_or_insert(now);
        payout.error_code = None;
        payout.error_message = None;
        let attempt = AttemptRecord {
            payout_id: payout_id.to_owned(),
            attempt_no,
            transfer: transfer.clone(),
            status: AttemptStatus::Signed,
            broadcasts: 0,
            broadcast_at: None,
            block: None,
            result_code: None,
            energy_used: None,
            fee_sun: None,
            created_at: now,
        };
        let mut q = w.query(
            "INSERT INTO payout_attempts (payout_id, attempt_no, txid, raw_data, signature, \
             expiration_ms, fee_limit_sun, status, broadcasts, created_at) VALUES ",
        );
        q.tuple([
            text(payout_id),
            int("attempt_no", u64::from(attempt_no))?,
            Value::Blob(transfer.txid.to_vec()),
            Value::Blob(transfer.raw.clone()),
            Value::Blob(transfer.signature.clone()),
            time(transfer.expiration),
            int("fee_limit_sun", transfer.fee_limit_sun)?,
            text(AttemptStatus::Signed.as_str()),
            Value::Int(0),
            time(now),
        ]);
        // The attempt before the payout's new status: the schema requires a signed payout to
        // have signed, and the partial unique index allows one live attempt.
        w.exec(&mut q, "inserting an attempt").await?;
        w.write_payout(&payout, PayoutStatus::Processing).await?;
        w.commit().await?;
        Ok(attempt)
    }

    async fn begin_broadcast_tx(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<u32, Fail> {
        let mut w = self.ledger_write().await?;
        w.require(payout_id, &[PayoutStatus::Signed, PayoutStatus::Sent]).await?;
        let mut attempt = w.live_attempt(payout_id, txid).await?;
        let before = attempt.broadcasts;
        attempt.broadcasts = before.saturating_add(1);
        attempt.broadcast_at.get_or_insert(now);
        w.write_attempt(&attempt).await?;
        w.commit().await?;
        Ok(before)
    }

    async fn mark_sent_tx(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Signed, PayoutStatus::Sent]).await?;
        let mut attempt = w.live_attempt(payout_id, txid).await?;
        if payout.status == PayoutStatus::Sent {
            return Ok(payout);
        }
        attempt.status = AttemptStatus::Sent;
        w.write_attempt(&attempt).await?;
        set_status(&mut payout, PayoutStatus::Sent, now)?;
        w.write_payout(&payout, PayoutStatus::Signed).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn finalize_confirmed_tx(
        &self,
        payout_id: &str,
        txid: &Txid,
        receipt: &Receipt,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Sent]).await?;
        let mut attempt = w.live_attempt(payout_id, txid).await?;
        let settle = Posting::payout_settle(payout_id, payout.amounts.net, payout.amounts.fee)?;
        w.apply(&settle, now).await?;
        attempt.status = AttemptStatus::Confirmed;
        attempt.block = Some(receipt.block);
        attempt.energy_used = Some(receipt.energy_used);
        attempt.fee_sun = Some(receipt.fee_sun);
        attempt.result_code = Some("SUCCESS".to_owned());
        w.write_attempt(&attempt).await?;
        set_status(&mut payout, PayoutStatus::Confirmed, now)?;
        w.write_payout(&payout, PayoutStatus::Sent).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn finalize_failed_or_retry_tx(
        &self,
        payout_id: &str,
        txid: &Txid,
        end: &AttemptEnd,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Signed, PayoutStatus::Sent]).await?;
        let was = payout.status;
        let retries_left = payout.has_retries_left();
        let mut attempt = w.live_attempt(payout_id, txid).await?;
        let refused = |rule| PayoutError::AttemptRefused { payout_id: payout_id.to_owned(), rule };
        let (status, code, retryable) = match end {
            AttemptEnd::Reverted { code, .. } => {
                if attempt.status != AttemptStatus::Sent {
                    return Err(refused("only a sent attempt can revert").into());
                }
                (AttemptStatus::Reverted, code.clone(), true)
            }
            AttemptEnd::Rejected { code, retryable } => {
                if attempt.status != AttemptStatus::Signed || attempt.broadcasts != 1 {
                    return Err(
                        refused("a rejection proves nothing after another broadcast").into()
                    );
                }
                (AttemptStatus::Rejected, code.clone(), *retryable)
            }
            AttemptEnd::Expired => (AttemptStatus::Expired, "EXPIRED".to_owned(), true),
        };
        let to =
            if retryable && retries_left { PayoutStatus::Pending } else { PayoutStatus::Failed };
        if to == PayoutStatus::Failed {
            w.release(&payout, now).await?;
        }
        attempt.status = status;
        attempt.result_code = Some(code.clone());
        if let AttemptEnd::Reverted { block, energy_used, fee_sun, .. } = end {
            attempt.block = Some(*block);
            attempt.energy_used = Some(*energy_used);
            attempt.fee_sun = Some(*fee_sun);
        }
        w.write_attempt(&attempt).await?;
        set_status(&mut payout, to, now)?;
        payout.error_code = Some(code);
        w.write_payout(&payout, was).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn mark_chain_mismatch_tx(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Sent]).await?;
        w.live_attempt(payout_id, txid).await?;
        payout.error_code = Some(CHAIN_MISMATCH.to_owned());
        payout.error_message =
            Some("solidified SUCCESS without the matching Transfer log".to_owned());
        payout.updated_at = now;
        w.write_payout(&payout, PayoutStatus::Sent).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn resolve_chain_mismatch_tx(
        &self,
        payout_id: &str,
        resolution: Resolution,
        now: UnixMillis,
    ) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.lock_payout(payout_id).await?;
        refuse_unless_mismatch(&payout)?;
        let mut attempt =
            w.attempts(payout_id).await?.into_iter().find(|a| a.status.is_live()).ok_or_else(
                || PayoutError::AttemptRefused {
                    payout_id: payout_id.to_owned(),
                    rule: "the payout has no live attempt",
                },
            )?;
        let to = match resolution {
            Resolution::Settle => {
                let settle =
                    Posting::payout_settle(payout_id, payout.amounts.net, payout.amounts.fee)?;
                w.apply(&settle, now).await?;
                attempt.status = AttemptStatus::Confirmed;
                PayoutStatus::Confirmed
            }
            Resolution::Release => {
                w.release(&payout, now).await?;
                attempt.status = AttemptStatus::Reverted;
                PayoutStatus::Failed
            }
        };
        attempt.result_code = Some(resolution.attempt_code().to_owned());
        w.write_attempt(&attempt).await?;
        set_status(&mut payout, to, now)?;
        payout.error_message =
            Some(format!("resolved by an administrator: {}", resolution.as_str()));
        w.write_payout(&payout, PayoutStatus::Sent).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn cancel_tx(&self, payout_id: &str, now: UnixMillis) -> Result<PayoutRecord, Fail> {
        let mut w = self.ledger_write().await?;
        let mut payout = w.require(payout_id, &[PayoutStatus::Pending]).await?;
        w.release(&payout, now).await?;
        set_status(&mut payout, PayoutStatus::Cancelled, now)?;
        w.write_payout(&payout, PayoutStatus::Pending).await?;
        w.commit().await?;
        Ok(payout)
    }

    async fn release_expired_leases_tx(&self, now: UnixMillis) -> Result<Vec<String>, Fail> {
        let mut w = self.ledger_write().await?;
        let mut q = w.query(
            "UPDATE payouts SET status = 'pending', lease_owner = NULL, lease_until = NULL, \
             updated_at = ",
        );
        q.bind(time(now));
        q.push(" WHERE status = 'processing' AND lease_until <= ").bind(time(now));
        q.push(" RETURNING payout_id");
        let mut released = w
            .rows(&mut q, "releasing expired leases")
            .await?
            .iter()
            .map(|row| row.text(0))
            .collect::<Result<Vec<String>, sqlx::Error>>()
            .map_err(Error::query("releasing expired leases"))?;
        w.commit().await?;
        released.sort();
        Ok(released)
    }

    async fn get_tx(&self, payout_id: &str) -> Result<PayoutRecord, Fail> {
        let mut q = self.query(PAYOUT_SELECT);
        q.push("WHERE payout_id = ").bind(text(payout_id));
        match self.ledger_read(&mut q, "reading a payout").await?.first() {
            Some(row) => Ok(read_payout(row)?),
            None => Err(PayoutError::PayoutNotFound { payout_id: payout_id.to_owned() }.into()),
        }
    }

    async fn balance_tx(&self, node: &NodeId) -> Result<NodeBalance, Fail> {
        // The node view of `Ledger::node_balance`, from the entries: credits earned, the
        // reservations neither released nor settled, and the settled ones.
        let account = Account::Node(*node).name();
        let mut q = self.query(
            "SELECT \
             CAST(COALESCE((SELECT SUM(e.amount) FROM ledger_entries e JOIN ledger_postings p \
               ON p.posting_key = e.posting_key WHERE e.account = ",
        );
        q.bind(text(&account));
        q.push(
            " AND p.kind IN ('epoch_reward', 'session_revenue')), 0) AS BIGINT), \
             CAST(COALESCE((SELECT SUM(-e.amount) FROM ledger_entries e JOIN ledger_postings p \
               ON p.posting_key = e.posting_key WHERE e.account = ",
        );
        q.bind(text(&account));
        q.push(
            " AND p.kind = 'payout_reserve' AND NOT EXISTS (SELECT 1 FROM ledger_postings f \
               WHERE f.posting_key IN ('payout_release:' || substr(p.posting_key, 16), \
               'payout_settle:' || substr(p.posting_key, 16)))), 0) AS BIGINT), \
             CAST(COALESCE((SELECT SUM(-e.amount) FROM ledger_entries e JOIN ledger_postings p \
               ON p.posting_key = e.posting_key WHERE e.account = ",
        );
        q.bind(text(&account));
        q.push(
            " AND p.kind = 'payout_reserve' AND EXISTS (SELECT 1 FROM ledger_postings f \
               WHERE f.posting_key = 'payout_settle:' || substr(p.posting_key, 16))), 0) \
               AS BIGINT), \
             COALESCE((SELECT balance FROM ledger_accounts WHERE account = ",
        );
        q.bind(text(&account));
        q.push("), 0)");
        let rows = self.ledger_read(&mut q, "reading a balance").await?;
        let row = rows.first().ok_or_else(|| {
            Fail::Store(lucid_core::internal!("a balance query returned no row").into())
        })?;
        let c = Columns::new(row, "ledger_accounts", "reading a balance");
        Ok(NodeBalance {
            earned: c.int(0)?,
            reserved: c.int(1)?,
            paid: c.int(2)?,
            available: c.int(3)?,
        })
    }
}

#[async_trait::async_trait]
impl LedgerStore for Database {
    async fn apply_posting(
        &self,
        posting: &Posting,
        now: UnixMillis,
    ) -> Result<Applied, PayoutError> {
        self.apply_posting_tx(posting, now).await.map_err(payouts_error("applying a posting"))
    }

    async fn posting(&self, key: &str) -> Result<Option<Posting>, PayoutError> {
        self.read_posting(key).await.map_err(|e| payouts_error("reading a posting")(e.into()))
    }

    async fn account_balance(&self, account: &Account) -> Result<i64, PayoutError> {
        async {
            let mut q = self.query("SELECT balance FROM ledger_accounts WHERE account = ");
            q.bind(text(&account.name()));
            let rows = self.ledger_read(&mut q, "reading a balance").await?;
            match rows.first() {
                Some(row) => Ok(Columns::new(row, "ledger_accounts", "reading a balance").int(0)?),
                None => Ok::<_, Fail>(0),
            }
        }
        .await
        .map_err(payouts_error("reading a balance"))
    }

    async fn nodes_with_available(
        &self,
        minimum: MicroUsdt,
    ) -> Result<Vec<(NodeId, MicroUsdt)>, PayoutError> {
        async {
            let mut q = self.query(
                "SELECT account, balance FROM ledger_accounts WHERE kind = 'node' AND balance >= ",
            );
            q.bind(int("minimum", minimum.0)?);
            let rows = self.ledger_read(&mut q, "listing balances").await?;
            let mut nodes = Vec::with_capacity(rows.len());
            for row in &rows {
                let c = Columns::new(row, "ledger_accounts", "listing balances");
                let name = c.text(0)?;
                let Some(Account::Node(node)) = Account::parse(&name) else {
                    return Err(c.invalid(format!("{name:?} is not a node account")).into());
                };
                nodes.push((node, MicroUsdt(c.unsigned(1, "balance")?)));
            }
            nodes.sort_by_key(|(node, _)| *node);
            Ok::<_, Fail>(nodes)
        }
        .await
        .map_err(payouts_error("listing balances"))
    }

    async fn node_credits(
        &self,
        node: &NodeId,
        after: Option<UnixMillis>,
        until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<NodeCredit>, PayoutError> {
        let action = "listing a node's credits";
        async {
            // Through `ledger_entries_by_account`: one node's entries, never the whole ledger.
            let mut q = self.query(
                "SELECT p.posting_key, p.kind, e.amount, p.created_at FROM ledger_entries e \
                 JOIN ledger_postings p ON p.posting_key = e.posting_key \
                 WHERE e.amount > 0 AND e.account = ",
            );
            q.bind(text(&Account::Node(*node).name()));
            // The credit kinds are the domain's (`PostingKind::is_credit`), not a copy of them.
            q.push(" AND p.kind IN (");
            let credit_kinds = PostingKind::ALL.into_iter().filter(|kind| kind.is_credit());
            for (position, kind) in credit_kinds.enumerate() {
                if position > 0 {
                    q.push(", ");
                }
                q.bind(text(kind.as_str()));
            }
            q.push(")");
            if let Some(after) = after {
                q.push(" AND p.created_at > ").bind(time(after));
            }
            q.push(" AND p.created_at <= ").bind(time(until));
            let key = posting_key_in_byte_order(self.backend(), "p.posting_key");
            q.push(&format!(" ORDER BY p.created_at, {key} LIMIT "));
            q.bind(int("limit", u64::try_from(limit).unwrap_or(u64::MAX))?);
            let rows = self.ledger_read(&mut q, action).await?;
            let mut credits = Vec::with_capacity(rows.len());
            for row in &rows {
                let c = Columns::new(row, "ledger_entries", action);
                let kind = read_posting_kind(&c, 1)?;
                credits.push(NodeCredit {
                    posting_key: c.text(0)?,
                    kind,
                    amount: MicroUsdt(c.unsigned(2, "amount")?),
                    posted_at: c.time(3)?,
                });
            }
            Ok::<_, Fail>(credits)
        }
        .await
        .map_err(payouts_error(action))
    }

    async fn node_ledger(
        &self,
        node: &NodeId,
        before: Option<&LedgerPosition>,
        limit: usize,
    ) -> Result<Vec<NodeLedgerLine>, PayoutError> {
        let action = "reading a node's ledger";
        async {
            let key = posting_key_in_byte_order(self.backend(), "posting_key");
            // One statement: the running balance and the page come from one snapshot. The
            // window runs over the one account's entries (`ledger_entries_by_account`).
            let mut q = self.query(&format!(
                "SELECT posting_key, kind, amount, created_at, memo, balance_after FROM ( \
                 SELECT p.posting_key, p.kind, e.amount, p.created_at, p.memo, \
                 CAST(SUM(e.amount) OVER (ORDER BY p.created_at, p.{key} \
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS balance_after \
                 FROM ledger_entries e JOIN ledger_postings p ON p.posting_key = e.posting_key \
                 WHERE e.account = "
            ));
            q.bind(text(&Account::Node(*node).name()));
            q.push(") AS t");
            if let Some(before) = before {
                q.push(" WHERE created_at < ").bind(time(before.posted_at));
                q.push(" OR (created_at = ").bind(time(before.posted_at));
                q.push(&format!(" AND {key} < "));
                q.bind(text(&before.posting_key));
                q.push(")");
            }
            q.push(&format!(" ORDER BY created_at DESC, {key} DESC LIMIT "));
            q.bind(int("limit", u64::try_from(limit).unwrap_or(u64::MAX))?);
            let rows = self.ledger_read(&mut q, action).await?;
            let mut lines = Vec::with_capacity(rows.len());
            for row in &rows {
                let c = Columns::new(row, "ledger_entries", action);
                let kind = read_posting_kind(&c, 1)?;
                lines.push(NodeLedgerLine {
                    posting_key: c.text(0)?,
                    kind,
                    amount: c.int(2)?,
                    posted_at: c.time(3)?,
                    memo: c.opt_text(4)?,
                    balance_after: c.int(5)?,
                });
            }
            Ok::<_, Fail>(lines)
        }
        .await
        .map_err(payouts_error(action))
    }
}

#[async_trait::async_trait]
impl PayoutStore for Database {
    async fn create_payout(&self, request: &NewPayout) -> Result<CreateOutcome, PayoutError> {
        self.create_payout_tx(request).await.map_err(payouts_error("creating a payout"))
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<PayoutRecord>, PayoutError> {
        self.claim_tx(request).await.map_err(payouts_error("claiming payouts"))
    }

    async fn unclaim(
        &self,
        payout_id: &str,
        lease_owner: &str,
        what: &Unclaim,
        now: UnixMillis,
    ) -> Result<PayoutRecord, PayoutError> {
        self.unclaim_tx(payout_id, lease_owner, what, now)
            .await
            .map_err(payouts_error("returning a claim"))
    }

    async fn record_signed(
        &self,
        payout_id: &str,
        lease_owner: &str,
        attempt_no: u32,
        transfer: &SignedTransfer,
        now: UnixMillis,
    ) -> Result<AttemptRecord, PayoutError> {
        self.record_signed_tx(payout_id, lease_owner, attempt_no, transfer, now)
            .await
            .map_err(payouts_error("recording a signed attempt"))
    }

    async fn begin_broadcast(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<u32, PayoutError> {
        self.begin_broadcast_tx(payout_id, txid, now)
            .await
            .map_err(payouts_error("recording a broadcast"))
    }

    async fn mark_sent(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, PayoutError> {
        self.mark_sent_tx(payout_id, txid, now)
            .await
            .map_err(payouts_error("marking a payout sent"))
    }

    async fn finalize_confirmed(
        &self,
        payout_id: &str,
        txid: &Txid,
        receipt: &Receipt,
        now: UnixMillis,
    ) -> Result<PayoutRecord, PayoutError> {
        self.finalize_confirmed_tx(payout_id, txid, receipt, now)
            .await
            .map_err(payouts_error("confirming a payout"))
    }

    async fn finalize_failed_or_retry(
        &self,
        payout_id: &str,
        txid: &Txid,
        end: &AttemptEnd,
        now: UnixMillis,
    ) -> Result<PayoutRecord, PayoutError> {
        self.finalize_failed_or_retry_tx(payout_id, txid, end, now)
            .await
            .map_err(payouts_error("ending an attempt"))
    }

    async fn mark_chain_mismatch(
        &self,
        payout_id: &str,
        txid: &Txid,
        now: UnixMillis,
    ) -> Result<PayoutRecord, PayoutError> {
        self.mark_chain_mismatch_tx(payout_id, txid, now)
            .await
            .map_err(payouts_error("flagging a chain mismatch"))
    }

    async fn resolve_chain_mismatch(
        &self,
        payout_id: &str,
        resolution: Resolution,
        now: UnixMillis,
    ) -> Result<PayoutRecord, PayoutError> {
        self.resolve_chain_mismatch_tx(payout_id, resolution, now)
            .await
            .map_err(payouts_error("resolving a chain mismatch"))
    }

    async fn cancel(&self, payout_id: &str, now: UnixMillis) -> Result<PayoutRecord, PayoutError> {
        self.cancel_tx(payout_id, now).await.map_err(payouts_error("cancelling a payout"))
    }

    async fn release_expired_leases(&self, now: UnixMillis) -> Result<Vec<String>, PayoutError> {
        self.release_expired_leases_tx(now).await.map_err(payouts_error("releasing expired leases"))
    }

    async fn get(&self, payout_id: &str) -> Result<PayoutRecord, PayoutError> {
        self.get_tx(payout_id).await.map_err(payouts_error("reading a payout"))
    }

    async fn list(&self, status: Option<PayoutStatus>) -> Result<Vec<PayoutRecord>, PayoutError> {
        self.list_payouts(status).await.map_err(|e| payouts_error("listing payouts")(e.into()))
    }

    async fn attempts(&self, payout_id: &str) -> Result<Vec<AttemptRecord>, PayoutError> {
        async {
            self.get_tx(payout_id).await?;
            Ok::<_, Fail>(self.payout_attempts(payout_id).await?)
        }
        .await
        .map_err(payouts_error("reading attempts"))
    }

    async fn balance(&self, node: &NodeId) -> Result<NodeBalance, PayoutError> {
        self.balance_tx(node).await.map_err(payouts_error("reading a balance"))
    }
}
