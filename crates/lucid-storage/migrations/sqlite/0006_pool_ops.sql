-- The pool op log (pools-payouts.md §2.2, §6 `pool_ops`, §8 T10): every accepted signed pool op,
-- stored before it is acknowledged, with its signed bytes and signature exactly as received. The
-- log is the source of truth for membership: pending ops are applied at their effect slot from
-- here, and a rebuild replays it in canonical order. Number 0005 belongs to the slot seals.
-- Same numbering and semantics as migrations/postgres/0006_pool_ops.sql.

CREATE TABLE pool_ops (
    digest BLOB NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    slot INTEGER NOT NULL CHECK (slot >= 0),
    tag INTEGER NOT NULL CHECK (tag BETWEEN 1 AND 7),
    -- The pool the op names, or for a Create the pool it makes.
    pool_id BLOB NOT NULL CHECK (length(pool_id) = 16),
    signed_bytes BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'rejected')),
    reason TEXT CHECK (reason IN ('POOL_NOT_FOUND', 'POOL_DISBANDED', 'POOL_FULL',
        'ALREADY_IN_POOL', 'NOT_MEMBER', 'BANNED', 'NOT_LEADER', 'BELOW_SEATS', 'INVALID_NAME',
        'INVALID_MAX_NODES')),
    applied_slot INTEGER CHECK (applied_slot >= 0),
    CHECK ((state = 'rejected') = (reason IS NOT NULL)),
    CHECK ((state = 'pending') = (applied_slot IS NULL)),
    -- One op per signer and slot: a second one is an equivocation and is never stored.
    UNIQUE (node_id, slot)
) STRICT;

-- The ops waiting for their effect slot, in the order they are read.
CREATE INDEX pool_ops_pending ON pool_ops (slot, digest) WHERE state = 'pending';

-- Write-once: what was signed never changes and no op leaves the log. Only the state moves
-- (pending to applied or rejected, and back to pending or to another outcome in a rebuild).
CREATE TRIGGER pool_ops_signed_columns_write_once BEFORE UPDATE OF digest, node_id, slot, tag,
    pool_id, signed_bytes, signature ON pool_ops
BEGIN
    SELECT RAISE(ABORT, 'pool_ops rows are write-once');
END;
CREATE TRIGGER pool_ops_never_deleted BEFORE DELETE ON pool_ops
BEGIN
    SELECT RAISE(ABORT, 'pool_ops rows are write-once');
END;
