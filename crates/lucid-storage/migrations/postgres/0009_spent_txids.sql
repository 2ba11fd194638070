-- The spent-txid registry of hosted sessions (feature `session`, daemon.md §11): one row per TRON
-- transaction that paid for a session. The primary key refuses a second session for the same
-- payment, across restarts and processes. Same numbering and semantics as the other backend's
-- 0009_spent_txids.sql.

CREATE TABLE session_spent_txids (
    txid BYTEA PRIMARY KEY CHECK (octet_length(txid) = 32),
    session_id TEXT NOT NULL CHECK (length(session_id) BETWEEN 1 AND 64),
    claimed_at BIGINT NOT NULL
);
