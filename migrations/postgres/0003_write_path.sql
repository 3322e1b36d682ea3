-- Cheaper tick writes (issue 14; figures in docs/performance.md).
--
-- Roll-up rows are updated in place by every tick of their period (a day's row 144 times at
-- 10-minute ticks). Pages filled only to half leave room for the new version on the same page: a
-- heap-only update, no new index entry. Applies to pages written from now on.
--
-- The roll-up tables lose their foreign key to nodes: every roll-up row is derived from rows
-- inserted into samples in the same statement, which keep theirs; the check cost a lookup and
-- a row lock per new period.
ALTER TABLE rollup_30m SET (fillfactor = 50);
ALTER TABLE rollup_1h SET (fillfactor = 50);
ALTER TABLE rollup_2h SET (fillfactor = 50);
ALTER TABLE rollup_6h SET (fillfactor = 50);
ALTER TABLE rollup_12h SET (fillfactor = 50);
ALTER TABLE rollup_1d SET (fillfactor = 50);
ALTER TABLE rollup_30m DROP CONSTRAINT rollup_30m_node_id_fkey;
ALTER TABLE rollup_1h DROP CONSTRAINT rollup_1h_node_id_fkey;
ALTER TABLE rollup_2h DROP CONSTRAINT rollup_2h_node_id_fkey;
ALTER TABLE rollup_6h DROP CONSTRAINT rollup_6h_node_id_fkey;
ALTER TABLE rollup_12h DROP CONSTRAINT rollup_12h_node_id_fkey;
ALTER TABLE rollup_1d DROP CONSTRAINT rollup_1d_node_id_fkey;
