-- Tables owned by consensus (consensus.md §10): registrations, accepted task proofs and
-- equivocation evidence. Ids and signed pairs are BLOBs; slots, sequence numbers, values and
-- times (unix ms) are 64-bit integers. STRICT makes SQLite refuse values of the wrong type, as
-- PostgreSQL does; `proofs` is WITHOUT ROWID so that its key is the table (one b-tree less
-- to write per proof). The signed bytes are the source of truth; the decoded columns serve queries.

CREATE TABLE registrations (
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    ts_ms INTEGER NOT NULL,
    payout_address BLOB NOT NULL CHECK (length(payout_address) = 21),
    endpoint TEXT NOT NULL,
    capabilities INTEGER NOT NULL,
    storage_capacity_bytes INTEGER NOT NULL CHECK (storage_capacity_bytes >= 0),
    signed_bytes BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
    received_at INTEGER NOT NULL,
    PRIMARY KEY (node_id, seq)
) STRICT;

CREATE TABLE proofs (
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    slot INTEGER NOT NULL CHECK (slot >= 0),
    kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 4),
    ts_ms INTEGER NOT NULL,
    bytes_transferred INTEGER,
    sessions_relayed INTEGER,
    chunks_stored INTEGER,
    size_bytes INTEGER,
    validated_sessions INTEGER,
    metrics_digest BLOB,
    signed_bytes BLOB NOT NULL,
    signature BLOB NOT NULL CHECK (length(signature) = 64),
    digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
    received_at INTEGER NOT NULL,
    late INTEGER NOT NULL CHECK (late IN (0, 1)),
    -- The key is the set (node_id, slot, kind) of consensus.md §10, stored slot first: slots
    -- arrive in order, so inserts append instead of landing all over the tree, and the key
    -- index is also the paging order of `proofs_in_range` and the retention cut by slot.
    PRIMARY KEY (slot, node_id, kind)
) STRICT, WITHOUT ROWID;

CREATE TABLE evidence (
    digest_a BLOB NOT NULL CHECK (length(digest_a) = 32),
    digest_b BLOB NOT NULL CHECK (length(digest_b) = 32),
    node_id BLOB NOT NULL CHECK (length(node_id) = 32),
    type_name TEXT NOT NULL,
    slot INTEGER CHECK (slot >= 0),
    kind INTEGER CHECK (kind BETWEEN 1 AND 4),
    first_bytes BLOB NOT NULL,
    first_signature BLOB NOT NULL CHECK (length(first_signature) = 64),
    second_bytes BLOB NOT NULL,
    second_signature BLOB NOT NULL CHECK (length(second_signature) = 64),
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (digest_a, digest_b),
    CHECK ((slot IS NULL) = (kind IS NULL))
) STRICT;

CREATE INDEX evidence_by_slot ON evidence (slot) WHERE slot IS NOT NULL;
