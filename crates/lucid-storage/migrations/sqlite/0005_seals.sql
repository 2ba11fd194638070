-- Slot seals (consensus.md §6.3, §10): a node's signed commitment to the set of task proofs it
-- accepted live for a slot. Written once per (node_id, slot) and never amended; the signed bytes
-- are the source of truth, count and root are their decoded fields.

CREATE TABLE seals (
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    slot INTEGER NOT NULL CHECK (slot >= 0),
    count INTEGER NOT NULL CHECK (count >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    ts_ms INTEGER NOT NULL,
    signed_bytes BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
    received_at INTEGER NOT NULL,
    PRIMARY KEY (node_id, slot)
) STRICT;

-- Write-once: a seal is never amended or replaced (retention deletes whole rows only).
CREATE TRIGGER seals_never_updated BEFORE UPDATE ON seals
BEGIN
    SELECT RAISE(ABORT, 'seals are write-once');
END;
