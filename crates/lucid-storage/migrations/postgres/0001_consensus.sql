-- Tables owned by consensus (consensus.md §10): registrations, accepted task proofs and
-- equivocation evidence. Ids and signed pairs are BYTEA; slots, sequence numbers, values and
-- times (unix ms) are BIGINT. The signed bytes are the source of truth; the decoded columns
-- serve queries. Same numbering and semantics as migrations/sqlite/0001_consensus.sql.

CREATE TABLE registrations (
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    seq BIGINT NOT NULL CHECK (seq >= 0),
    ts_ms BIGINT NOT NULL,
    payout_address BYTEA NOT NULL CHECK (length(payout_address) = 21),
    endpoint TEXT NOT NULL,
    capabilities BIGINT NOT NULL,
    storage_capacity_bytes BIGINT NOT NULL CHECK (storage_capacity_bytes >= 0),
    signed_bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (length(signature) = 64),
    digest BYTEA NOT NULL UNIQUE CHECK (length(digest) = 32),
    received_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, seq)
);

CREATE TABLE proofs (
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    slot BIGINT NOT NULL CHECK (slot >= 0),
    kind SMALLINT NOT NULL CHECK (kind BETWEEN 1 AND 4),
    ts_ms BIGINT NOT NULL,
    bytes_transferred BIGINT,
    sessions_relayed BIGINT,
    chunks_stored BIGINT,
    size_bytes BIGINT,
    validated_sessions BIGINT,
    metrics_digest BYTEA,
    signed_bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL CHECK (length(signature) = 64),
    digest BYTEA NOT NULL UNIQUE CHECK (length(digest) = 32),
    received_at BIGINT NOT NULL,
    late BOOLEAN NOT NULL,
    -- The key is the set (node_id, slot, kind) of consensus.md §10, stored slot first: slots
    -- arrive in order, so inserts append instead of landing all over the tree, and the key
    -- index is also the paging order of `proofs_in_range` and the retention cut by slot.
    PRIMARY KEY (slot, node_id, kind)
);

CREATE TABLE evidence (
    digest_a BYTEA NOT NULL CHECK (length(digest_a) = 32),
    digest_b BYTEA NOT NULL CHECK (length(digest_b) = 32),
    node_id BYTEA NOT NULL CHECK (length(node_id) = 32),
    type_name TEXT NOT NULL,
    slot BIGINT CHECK (slot >= 0),
    kind SMALLINT CHECK (kind BETWEEN 1 AND 4),
    first_bytes BYTEA NOT NULL,
    first_signature BYTEA NOT NULL CHECK (length(first_signature) = 64),
    second_bytes BYTEA NOT NULL,
    second_signature BYTEA NOT NULL CHECK (length(second_signature) = 64),
    detected_at BIGINT NOT NULL,
    PRIMARY KEY (digest_a, digest_b),
    CHECK ((slot IS NULL) = (kind IS NULL))
);

CREATE INDEX evidence_by_slot ON evidence (slot) WHERE slot IS NOT NULL;
