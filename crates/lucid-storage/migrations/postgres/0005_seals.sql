-- Slot seals (consensus.md §6.3, §10): a node's signed commitment to the set of task proofs it
-- accepted live for a slot. Written once per (node_id, slot) and never amended. Same numbering
-- and semantics as migrations/sqlite/0005_seals.sql.

CREATE TABLE seals (
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    slot BIGINT NOT NULL CHECK (slot >= 0),
    count BIGINT NOT NULL CHECK (count >= 0),
    root BYTEA NOT NULL CHECK (length(root) = 32),
    ts_ms BIGINT NOT NULL,
    signed_bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (length(signature) = 64),
    digest BYTEA NOT NULL UNIQUE CHECK (length(digest) = 32),
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, slot)
);

-- Write-once: a seal is never amended or replaced (retention deletes whole rows only).
CREATE FUNCTION lucid_seals_never_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'seals are write-once';
END;
$$;

CREATE TRIGGER seals_never_updated BEFORE UPDATE ON seals
    FOR EACH ROW EXECUTE FUNCTION lucid_seals_never_updated();
