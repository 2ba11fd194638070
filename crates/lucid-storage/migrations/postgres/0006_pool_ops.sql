-- The pool op log (pools-payouts.md §2.2, §6 `pool_ops`, §8 T10): every accepted signed pool op,
-- stored before it is acknowledged, with its signed bytes and signature exactly as received. The
-- log is the source of truth for membership: pending ops are applied at their effect slot from
-- here, and a rebuild replays it in canonical order. Number 0005 belongs to the slot seals.
-- Same numbering and semantics as migrations/sqlite/0006_pool_ops.sql.

CREATE TABLE pool_ops (
    digest BYTEA NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    slot BIGINT NOT NULL CHECK (slot >= 0),
    tag SMALLINT NOT NULL CHECK (tag BETWEEN 1 AND 7),
    -- The pool the op names, or for a Create the pool it makes.
    pool_id BYTEA NOT NULL CHECK (length(pool_id) = 16),
    signed_bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (length(signature) = 64),
    state TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'rejected')),
    reason TEXT CHECK (reason IN ('POOL_NOT_FOUND', 'POOL_DISBANDED', 'POOL_FULL',
        'ALREADY_IN_POOL', 'NOT_MEMBER', 'BANNED', 'NOT_LEADER', 'BELOW_SEATS', 'INVALID_NAME',
        'INVALID_MAX_NODES')),
    applied_slot BIGINT CHECK (applied_slot >= 0),
    CHECK ((state = 'rejected') = (reason IS NOT NULL)),
    CHECK ((state = 'pending') = (applied_slot IS NULL)),
    -- One op per signer and slot: a second one is an equivocation and is never stored.
    UNIQUE (node_id, slot)
);

-- The ops waiting for their effect slot, in the order they are read.
CREATE INDEX pool_ops_pending ON pool_ops (slot, digest) WHERE state = 'pending';

-- Write-once: what was signed never changes and no op leaves the log. Only the state moves
-- (pending to applied or rejected, and back to pending or to another outcome in a rebuild).
CREATE FUNCTION lucid_pool_ops_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
        OR NEW.digest <> OLD.digest OR NEW.node_id <> OLD.node_id OR NEW.slot <> OLD.slot
        OR NEW.tag <> OLD.tag OR NEW.pool_id <> OLD.pool_id
        OR NEW.signed_bytes <> OLD.signed_bytes OR NEW.signature <> OLD.signature THEN
        RAISE EXCEPTION 'pool_ops rows are write-once' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER pool_ops_write_once BEFORE UPDATE OR DELETE ON pool_ops
    FOR EACH ROW EXECUTE FUNCTION lucid_pool_ops_write_once();
