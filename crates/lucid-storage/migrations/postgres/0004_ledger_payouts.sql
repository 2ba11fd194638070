-- Tables owned by the ledger and payouts (pools-payouts.md §4, §5 and §6): accounts with their
-- maintained balances, postings and their immutable entries, payouts and their attempts, batches
-- and the append-only audit log. Money is integer micro-USDT, time unix milliseconds, ids text
-- or BYTEAs. The constraints are the backstop of the domain rules: whatever a bug above the store
-- writes, no non-negative account goes below zero, a posting key is used once, an idempotency
-- key maps to one payout, fee + net = gross, and a payout has at most one live attempt.
-- Same numbering and semantics as migrations/sqlite/0004_ledger_payouts.sql.

-- Refuses the statement: used by the triggers that keep rows immutable or append-only.
CREATE FUNCTION lucid_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of % is refused: %', TG_OP, TG_TABLE_NAME, TG_ARGV[0];
END;
$$;

CREATE TABLE ledger_accounts (
    account TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('node', 'treasury', 'rewards', 'sessions', 'in_flight', 'chain')),
    balance BIGINT NOT NULL,
    CHECK (kind IN ('rewards', 'sessions') OR balance >= 0),
    CHECK ((kind = 'node') = (account LIKE 'node:%')),
    CHECK (kind = 'node' OR account = kind)
);

CREATE TABLE ledger_postings (
    posting_key TEXT NOT NULL PRIMARY KEY CHECK (length(posting_key) BETWEEN 1 AND 128),
    kind TEXT NOT NULL CHECK (
        kind IN ('epoch_reward', 'session_revenue', 'payout_reserve', 'payout_release', 'payout_settle')
    ),
    created_at BIGINT NOT NULL,
    memo TEXT
);

CREATE TABLE ledger_entries (
    posting_key TEXT NOT NULL REFERENCES ledger_postings (posting_key),
    account TEXT NOT NULL REFERENCES ledger_accounts (account),
    amount BIGINT NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (posting_key, account)
);
CREATE INDEX ledger_entries_by_account ON ledger_entries (account);

-- Entries and postings are immutable: no UPDATE, no DELETE.
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('ledger entries are immutable');
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('ledger entries are immutable');
CREATE TRIGGER ledger_postings_no_update BEFORE UPDATE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('ledger postings are immutable');
CREATE TRIGGER ledger_postings_no_delete BEFORE DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('ledger postings are immutable');

-- Grouping and statistics of the transfers sent together; no rule depends on it.
CREATE TABLE payout_batches (
    batch_id TEXT NOT NULL PRIMARY KEY,
    item_count BIGINT NOT NULL CHECK (item_count >= 0),
    total_gross BIGINT NOT NULL CHECK (total_gross >= 0),
    created_at BIGINT NOT NULL,
    completed_at BIGINT
);

CREATE TABLE payouts (
    payout_id TEXT NOT NULL PRIMARY KEY,
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    origin TEXT NOT NULL CHECK (origin IN ('auto', 'withdrawal')),
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    gross BIGINT NOT NULL CHECK (gross > 0),
    fee BIGINT NOT NULL CHECK (fee >= 0),
    net BIGINT NOT NULL CHECK (net > 0),
    to_address BYTEA NOT NULL CHECK (length(to_address) = 21),
    status TEXT NOT NULL CHECK (
        status IN ('pending', 'processing', 'signed', 'sent', 'confirmed', 'failed', 'cancelled')
    ),
    attempt_count BIGINT NOT NULL CHECK (attempt_count >= 0),
    max_retries BIGINT NOT NULL CHECK (max_retries BETWEEN 0 AND 5),
    lease_owner TEXT,
    lease_until BIGINT,
    batch_id TEXT REFERENCES payout_batches (batch_id),
    error_code TEXT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    first_signed_at BIGINT,
    completed_at BIGINT,
    -- Signing failures counted by the processor; at its bound the payout fails.
    sign_failures BIGINT NOT NULL DEFAULT 0 CHECK (sign_failures >= 0),
    CHECK (fee + net = gross),
    CHECK (attempt_count <= 1 + max_retries),
    -- A lease exists exactly while the payout is claimed.
    CHECK ((status = 'processing') = (lease_owner IS NOT NULL)),
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL)),
    CHECK ((status IN ('confirmed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)),
    -- Signed, sent and confirmed payouts have signed at least once.
    CHECK (status NOT IN ('signed', 'sent', 'confirmed') OR (attempt_count >= 1 AND first_signed_at IS NOT NULL)),
    UNIQUE (node_id, idempotency_key)
);
CREATE INDEX payouts_by_status ON payouts (status, created_at);
CREATE INDEX payouts_by_node ON payouts (node_id, created_at);

CREATE TABLE payout_attempts (
    attempt_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payout_id TEXT NOT NULL REFERENCES payouts (payout_id),
    attempt_no BIGINT NOT NULL CHECK (attempt_no >= 1),
    txid BYTEA NOT NULL UNIQUE CHECK (length(txid) = 32),
    raw_data BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    fee_limit_sun BIGINT NOT NULL CHECK (fee_limit_sun >= 0),
    expiration_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('signed', 'sent', 'confirmed', 'reverted', 'rejected', 'expired')),
    -- Broadcasts begun, counted before each broadcast (a rejection proves death only on the first).
    broadcasts BIGINT NOT NULL CHECK (broadcasts >= 0),
    broadcast_at BIGINT,
    block_number BIGINT CHECK (block_number >= 0),
    receipt_result TEXT,
    energy_used BIGINT CHECK (energy_used >= 0),
    fee_sun BIGINT CHECK (fee_sun >= 0),
    created_at BIGINT NOT NULL,
    UNIQUE (payout_id, attempt_no)
);
-- At most one live attempt per payout (§5.6).
CREATE UNIQUE INDEX payout_attempts_one_live ON payout_attempts (payout_id)
    WHERE status IN ('signed', 'sent');

-- Append-only record of operator actions (resolve, cancel, admin withdrawals).
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    operation TEXT NOT NULL,
    resource TEXT NOT NULL,
    amount BIGINT CHECK (amount >= 0),
    details TEXT NOT NULL,
    request_id TEXT
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('the audit log is append-only');
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('the audit log is append-only');
-- Payout and attempt rows are never deleted either.
CREATE TRIGGER payouts_no_delete BEFORE DELETE ON payouts
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('payouts are never deleted');
CREATE TRIGGER payout_attempts_no_delete BEFORE DELETE ON payout_attempts
    FOR EACH ROW EXECUTE FUNCTION lucid_refuse_change('payout attempts are never deleted');
