-- Blocks: a contiguous hash chain per channel, headers that re-hash, row
-- counts that match, synchronous and asynchronous sealing, rolled-back
-- work leaving nothing behind, independent channels.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(53);

SELECT ledger.create_channel('tap04a', ARRAY['low', 'high']) \g /dev/null
SELECT ledger.create_channel('tap04b') \g /dev/null
CREATE TABLE tap04a_t (id int, v text, tier text DEFAULT 'low');
CREATE TABLE tap04a_u (id int);
CREATE TABLE tap04b_t (id int, v text);
SELECT ledger.enable_table('tap04a_t', 'tap04a', 'tier') \g /dev/null
SELECT ledger.enable_table('tap04a_u', 'tap04a') \g /dev/null
SELECT ledger.enable_table('tap04b_t', 'tap04b') \g /dev/null
SELECT channel_id AS cha FROM ledger.channel WHERE name = 'tap04a' \gset
SELECT channel_id AS chb FROM ledger.channel WHERE name = 'tap04b' \gset

-- ------------------------------------------------ synchronous commit (default)
SELECT is(current_setting('loopledger.synchronous_commit'), 'on', 'loopledger.synchronous_commit defaults to on');
INSERT INTO tap04a_t VALUES (1, 'one');
SELECT is((SELECT h.status FROM ledger.history('tap04a_t') h JOIN tap04a_t t ON t.ledger_entry = h.entry WHERE t.id = 1),
		  'sealed', 'synchronous commit: the row is sealed as soon as COMMIT returns');
BEGIN;
INSERT INTO tap04a_t VALUES (2, 'two', 'high'), (3, 'three', 'high');
INSERT INTO tap04a_u SELECT g FROM generate_series(1, 50) g;
INSERT INTO tap04b_t VALUES (1, 'b-one');
SELECT status AS st_uncommitted FROM ledger.history('tap04a_t') h JOIN tap04a_t t ON t.ledger_entry = h.entry WHERE t.id = 2 \gset
COMMIT;
SELECT is(:'st_uncommitted'::text, 'uncommitted', 'inside its transaction a new row is "uncommitted"');
SELECT is((SELECT count(DISTINCT block_height) FROM ledger.block_entries('tap04a') e
			WHERE e.entry IN (SELECT ledger_entry FROM tap04a_t WHERE id IN (2, 3) UNION ALL SELECT ledger_entry FROM tap04a_u)),
		  1::bigint, 'a transaction''s 52 rows of two tables are in one block');
SELECT is((SELECT count(*) FROM ledger.history('tap04b_t') WHERE status = 'sealed'), 1::bigint,
		  'the same transaction''s row in another channel is sealed there');

-- ------------------------------------------------ asynchronous commit
SET loopledger.synchronous_commit = off;
INSERT INTO tap04a_t VALUES (4, 'four');
INSERT INTO tap04a_t VALUES (5, 'five');
SELECT ok((SELECT h.status FROM ledger.history('tap04a_t') h JOIN tap04a_t t ON t.ledger_entry = h.entry WHERE t.id = 5)
		  IN ('pending', 'sealed'), 'asynchronous commit: the row is pending or sealed right after COMMIT');
SELECT ok(ledger.wait_sealed(), 'wait_sealed() returns true');
SELECT is((SELECT string_agg(h.status, ',' ORDER BY t.id) FROM ledger.history('tap04a_t') h JOIN tap04a_t t ON t.ledger_entry = h.entry WHERE t.id IN (4, 5)),
		  'sealed,sealed', 'after wait_sealed() both rows are sealed');
RESET loopledger.synchronous_commit;
SELECT ok(ledger.wait_sealed(0) IS NOT NULL, 'wait_sealed(0) returns');

-- ------------------------------------------------ rolled-back work
SELECT count(*) AS entries_before FROM ledger.block_entries('tap04a') \gset
SELECT coalesce(sum(row_count), 0) AS rows_before FROM ledger.block WHERE channel_id = :cha \gset
SELECT max(height) AS height_before FROM ledger.block WHERE channel_id = :cha \gset
BEGIN;
INSERT INTO tap04a_t VALUES (100, 'rolled back');
SELECT ledger_entry AS rb_entry FROM tap04a_t WHERE id = 100 \gset
ROLLBACK;
BEGIN;
INSERT INTO tap04a_t VALUES (6, 'kept');
SAVEPOINT s1;
INSERT INTO tap04a_t VALUES (101, 'rolled back to savepoint');
INSERT INTO tap04a_u VALUES (101);
SELECT ledger_entry AS sp_entry FROM tap04a_t WHERE id = 101 \gset
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO tap04a_t VALUES (7, 'kept after savepoint');
RELEASE SAVEPOINT s2;
COMMIT;
-- a subtransaction rolled back by an exception block
DO $$ BEGIN
	INSERT INTO tap04a_t VALUES (102, 'rolled back by exception');
	RAISE EXCEPTION 'tap04 rollback';
EXCEPTION WHEN raise_exception THEN
	INSERT INTO tap04a_t VALUES (8, 'kept after exception');
END $$;
-- a failed statement inside a committed transaction: tier not in the channel
BEGIN;
INSERT INTO tap04a_t VALUES (9, 'kept before failure');
DO $$ BEGIN
	INSERT INTO tap04a_t VALUES (103, 'bad tier', 'nope');
EXCEPTION WHEN check_violation THEN NULL;
END $$;
COMMIT;
SELECT ledger.wait_sealed() \g /dev/null

SELECT is((SELECT count(*) FROM ledger.block_entries('tap04a') WHERE entry IN (:rb_entry, :sp_entry)), 0::bigint,
		  'rolled-back rows are in no block and not pending');
SELECT is((SELECT count(*) FROM ledger.block_entries('tap04a')), :entries_before + 4::bigint,
		  'exactly the 4 committed rows were added to the chain');
SELECT is((SELECT coalesce(sum(row_count), 0) FROM ledger.block WHERE channel_id = :cha), :rows_before + 4::bigint,
		  'the blocks'' row counts grew by exactly 4');
SELECT is((SELECT count(*) FROM ledger.pending WHERE channel_id = :cha), 0::bigint, 'nothing pending for the channel');
SELECT is((SELECT string_agg(id::text, ',' ORDER BY id) FROM tap04a_t WHERE id >= 6), '6,7,8,9', 'the table holds only the committed rows');
SELECT is((SELECT count(*) FROM ledger.history('tap04a_t') WHERE status IS DISTINCT FROM 'sealed'), 0::bigint, 'history: every row sealed');
SELECT is((SELECT count(*) FROM tap04a_u), 50::bigint, 'the savepoint''s row in the second table is gone too');
SELECT cmp_ok((SELECT max(height) FROM ledger.block WHERE channel_id = :cha), '>', :height_before::bigint,
			  'committed work made new blocks');

-- ------------------------------------------------ chain structure, per channel
CREATE FUNCTION pg_temp.chain_checks(ch text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE cid int := (SELECT channel_id FROM ledger.channel WHERE name = ch);
BEGIN
	RETURN NEXT is((SELECT array_agg(height ORDER BY height) FROM ledger.block WHERE channel_id = cid),
				   (SELECT array_agg(g) FROM generate_series(0, (SELECT max(height) FROM ledger.block WHERE channel_id = cid)) g),
				   ch || ': heights are contiguous from 0');
	RETURN NEXT is((SELECT prev_hash FROM ledger.block WHERE channel_id = cid AND height = 0), '\x'::bytea || decode(repeat('00', 32), 'hex'),
				   ch || ': genesis prev_hash is all zero');
	RETURN NEXT is((SELECT row_count FROM ledger.block WHERE channel_id = cid AND height = 0), 0, ch || ': genesis has no rows');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b JOIN ledger.block p ON p.channel_id = b.channel_id AND p.height = b.height - 1
					 WHERE b.channel_id = cid AND b.prev_hash IS DISTINCT FROM p.block_hash), 0::bigint,
				   ch || ': every prev_hash is the previous block''s hash');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b JOIN ledger.channel c USING (channel_id)
					 WHERE b.channel_id = cid AND ledger.header_hash(c.name, b.height, b.prev_hash, b.merkle_root, b.time_us,
																	 b.tx_count, b.row_count, b.config_hash) IS DISTINCT FROM b.block_hash), 0::bigint,
				   ch || ': header_hash() recomputes every block hash');
	RETURN NEXT is((SELECT count(*) FROM ledger.block WHERE channel_id = cid AND length(entries) IS DISTINCT FROM 62 * row_count), 0::bigint,
				   ch || ': row_count matches the packed entries');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b WHERE channel_id = cid AND b.row_count IS DISTINCT FROM
					 (SELECT count(*) FROM ledger.block_entries(ch) e WHERE e.block_height = b.height)), 0::bigint,
				   ch || ': row_count matches block_entries');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b WHERE channel_id = cid AND height > 0 AND (tx_count < 1 OR row_count < tx_count)), 0::bigint,
				   ch || ': every non-genesis block has 1..row_count transactions');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b JOIN ledger.channel c USING (channel_id)
					 WHERE b.channel_id = cid AND (b.config_hash IS DISTINCT FROM c.config_hash OR c.config_hash IS DISTINCT FROM ledger.config_hash(c.name, c.tiers))), 0::bigint,
				   ch || ': every block carries the channel''s config_hash');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b WHERE channel_id = cid AND height > 0 AND
					 ROW(b.min_entry, b.max_entry) IS DISTINCT FROM (SELECT ROW(min(entry), max(entry)) FROM ledger.block_entries(ch) e WHERE e.block_height = b.height)),
				   0::bigint, ch || ': min_entry/max_entry match the block''s rows');
	RETURN NEXT is((SELECT count(*) FROM ledger.block b WHERE channel_id = cid AND height > 0 AND
					 b.time_us < (SELECT p.time_us FROM ledger.block p WHERE p.channel_id = cid AND p.height = b.height - 1)), 0::bigint,
				   ch || ': block times never go backwards');
	RETURN NEXT is((SELECT (d->>'height')::bigint FROM ledger.digest(ch) d), (SELECT max(height) FROM ledger.block WHERE channel_id = cid),
				   ch || ': digest height is the head');
	RETURN NEXT is((SELECT d->>'block_hash' FROM ledger.digest(ch) d),
				   (SELECT encode(block_hash, 'hex') FROM ledger.block WHERE channel_id = cid ORDER BY height DESC LIMIT 1),
				   ch || ': digest block_hash is the head''s hash');
	RETURN NEXT is((SELECT d->>'genesis_hash' FROM ledger.digest(ch) d),
				   (SELECT encode(block_hash, 'hex') FROM ledger.block WHERE channel_id = cid AND height = 0),
				   ch || ': digest genesis_hash is block 0''s hash');
	RETURN NEXT is((SELECT count(*) FROM ledger.blocks v JOIN ledger.block b ON b.channel_id = cid AND b.height = v.height
					 WHERE v.channel = ch AND v.block_hash = encode(b.block_hash, 'hex') AND v.prev_hash = encode(b.prev_hash, 'hex')
					   AND v.row_count = b.row_count),
				   (SELECT count(*) FROM ledger.block WHERE channel_id = cid), ch || ': ledger.blocks shows every block');
	RETURN NEXT is_empty(format('SELECT * FROM ledger.verify(%L)', ch), ch || ': verifies clean');
END $$;
SELECT pg_temp.chain_checks('tap04a');
SELECT pg_temp.chain_checks('tap04b');

-- ------------------------------------------------ channels are independent
SELECT is((SELECT max(height) FROM ledger.block WHERE channel_id = :chb), 1::bigint,
		  'tap04b has its own heights: one block after genesis, whatever tap04a did');
SELECT isnt((SELECT block_hash FROM ledger.block WHERE channel_id = :cha AND height = 0),
			(SELECT block_hash FROM ledger.block WHERE channel_id = :chb AND height = 0), 'each channel has its own genesis');
SELECT throws_ok($$SELECT ledger.enable_table('tap04a_t', 'tap04b')$$, '42710', NULL,
				 'a table of one channel cannot join another');
SELECT is((SELECT channel FROM ledger.tables WHERE "table" = 'tap04a_t'::regclass), 'tap04a', 'the table stays in its channel');

SELECT * FROM finish();
