-- Tables owned by the ledger and payouts (pools-payouts.md §4, §5 and §6): accounts with their
-- maintained balances, postings and their immutable entries, payouts and their attempts, batches
-- and the append-only audit log. Money is integer micro-USDT, time unix milliseconds, ids text
-- or BLOBs. The constraints are the backstop of the domain rules: whatever a bug above the store
-- writes, no non-negative account goes below zero, a posting key is used once, an idempotency
-- key maps to one payout, fee + net = gross, and a payout has at most one live attempt.
-- Same numbering and semantics as migrations/postgres/0004_ledger_payouts.sql.

CREATE TABLE ledger_accounts (
    account TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('node', 'treasury', 'rewards', 'sessions', 'in_flight', 'chain')),
    balance INTEGER NOT NULL,
    CHECK (kind IN ('rewards', 'sessions') OR balance >= 0),
    CHECK ((kind = 'node') = (account LIKE 'node:%')),
    CHECK (kind = 'node' OR account = kind)
) STRICT;

CREATE TABLE ledger_postings (
    posting_key TEXT NOT NULL PRIMARY KEY CHECK (length(posting_key) BETWEEN 1 AND 128),
    kind TEXT NOT NULL CHECK (
        kind IN ('epoch_reward', 'session_revenue', 'payout_reserve', 'payout_release', 'payout_settle')
    ),
    created_at INTEGER NOT NULL,
    memo TEXT
) STRICT;

CREATE TABLE ledger_entries (
    posting_key TEXT NOT NULL REFERENCES ledger_postings (posting_key),
    account TEXT NOT NULL REFERENCES ledger_accounts (account),
    amount INTEGER NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (posting_key, account)
) STRICT;
CREATE INDEX ledger_entries_by_account ON ledger_entries (account);

-- Entries and postings are immutable: no UPDATE, no DELETE.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;
CREATE TRIGGER ledger_postings_no_update BEFORE UPDATE ON ledger_postings
BEGIN SELECT RAISE(ABORT, 'ledger postings are immutable'); END;
CREATE TRIGGER ledger_postings_no_delete BEFORE DELETE ON ledger_postings
BEGIN SELECT RAISE(ABORT, 'ledger postings are immutable'); END;

-- Grouping and statistics of the transfers sent together; no rule depends on it.
CREATE TABLE payout_batches (
    batch_id TEXT NOT NULL PRIMARY KEY,
    item_count INTEGER NOT NULL CHECK (item_count >= 0),
    total_gross INTEGER NOT NULL CHECK (total_gross >= 0),
    created_at INTEGER NOT NULL,
    completed_at INTEGER
) STRICT;

CREATE TABLE payouts (
    payout_id TEXT NOT NULL PRIMARY KEY,
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    origin TEXT NOT NULL CHECK (origin IN ('auto', 'withdrawal')),
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    gross INTEGER NOT NULL CHECK (gross > 0),
    fee INTEGER NOT NULL CHECK (fee >= 0),
    net INTEGER NOT NULL CHECK (net > 0),
    to_address BLOB NOT NULL CHECK (length(to_address) = 21),
    status TEXT NOT NULL CHECK (
        status IN ('pending', 'processing', 'signed', 'sent', 'confirmed', 'failed', 'cancelled')
    ),
    attempt_count INTEGER NOT NULL CHECK (attempt_count >= 0),
    max_retries INTEGER NOT NULL CHECK (max_retries BETWEEN 0 AND 5),
    lease_owner TEXT,
    lease_until INTEGER,
    batch_id TEXT REFERENCES payout_batches (batch_id),
    error_code TEXT,
    error_message TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    first_signed_at INTEGER,
    completed_at INTEGER,
    -- Signing failures counted by the processor; at its bound the payout fails.
    sign_failures INTEGER NOT NULL DEFAULT 0 CHECK (sign_failures >= 0),
    CHECK (fee + net = gross),
    CHECK (attempt_count <= 1 + max_retries),
    -- A lease exists exactly while the payout is claimed.
    CHECK ((status = 'processing') = (lease_owner IS NOT NULL)),
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL)),
    CHECK ((status IN ('confirmed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)),
    -- Signed, sent and confirmed payouts have signed at least once.
    CHECK (status NOT IN ('signed', 'sent', 'confirmed') OR (attempt_count >= 1 AND first_signed_at IS NOT NULL)),
    UNIQUE (node_id, idempotency_key)
) STRICT;
CREATE INDEX payouts_by_status ON payouts (status, created_at);
CREATE INDEX payouts_by_node ON payouts (node_id, created_at);

CREATE TABLE payout_attempts (
    attempt_id INTEGER PRIMARY KEY,
    payout_id TEXT NOT NULL REFERENCES payouts (payout_id),
    attempt_no INTEGER NOT NULL CHECK (attempt_no >= 1),
    txid BLOB NOT NULL UNIQUE CHECK (length(txid) = 32),
    raw_data BLOB NOT NULL,
    signature BLOB NOT NULL,
    fee_limit_sun INTEGER NOT NULL CHECK (fee_limit_sun >= 0),
    expiration_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('signed', 'sent', 'confirmed', 'reverted', 'rejected', 'expired')),
    -- Broadcasts begun, counted before each broadcast (a rejection proves death only on the first).
    broadcasts INTEGER NOT NULL CHECK (broadcasts >= 0),
    broadcast_at INTEGER,
    block_number INTEGER CHECK (block_number >= 0),
    receipt_result TEXT,
    energy_used INTEGER CHECK (energy_used >= 0),
    fee_sun INTEGER CHECK (fee_sun >= 0),
    created_at INTEGER NOT NULL,
    UNIQUE (payout_id, attempt_no)
) STRICT;
-- At most one live attempt per payout (§5.6).
CREATE UNIQUE INDEX payout_attempts_one_live ON payout_attempts (payout_id)
    WHERE status IN ('signed', 'sent');

-- Append-only record of operator actions (resolve, cancel, admin withdrawals).
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    operation TEXT NOT NULL,
    resource TEXT NOT NULL,
    amount INTEGER CHECK (amount >= 0),
    details TEXT NOT NULL,
    request_id TEXT
) STRICT;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Payout and attempt rows are never deleted either.
CREATE TRIGGER payouts_no_delete BEFORE DELETE ON payouts
BEGIN SELECT RAISE(ABORT, 'payouts are never deleted'); END;
CREATE TRIGGER payout_attempts_no_delete BEFORE DELETE ON payout_attempts
BEGIN SELECT RAISE(ABORT, 'payout attempts are never deleted'); END;
