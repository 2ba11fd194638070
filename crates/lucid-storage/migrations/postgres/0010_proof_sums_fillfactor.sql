-- `proof_sums` rows are updated in place by every proof write that touches their (chunk, node):
-- thousands of times per row and epoch. With full pages each update is a new tuple on another
-- page and a new index entry, so the key index fills with entries of dead versions that every
-- later upsert walks until vacuum. Half-empty pages let an update stay on its page (a HOT
-- update: no index entry), and page pruning reclaims the dead versions without vacuum.
-- Applies to pages written from now on; the rows of a new chunk start on new pages.
-- Same numbering as the other backend's 0010_proof_sums_fillfactor.sql, where it is a no-op.

ALTER TABLE proof_sums SET (fillfactor = 50);
