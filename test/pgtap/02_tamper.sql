-- Tampering by a superuser who bypasses the guards is detected by
-- ledger.verify (right block height and table) and by verify_digest.
-- One channel per case: a tampered channel stays broken.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(49);

-- problems of a channel as "height|problem" lines, for diagnostics
CREATE FUNCTION pg_temp.problems(ch text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(coalesce(block_height::text, 'NULL') || ': ' || problem, E'\n' ORDER BY block_height, problem), '(none)')
	  FROM ledger.verify(ch) $$;

-- Builds channel CH with table public.CH_t (id int, v text) holding three
-- blocks: ids 1,2 (one transaction), then 3, then 4,5.
CREATE FUNCTION pg_temp.setup(ch text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM ledger.create_channel(ch);
	EXECUTE format('CREATE TABLE %I (id int, v text)', ch || '_t');
	PERFORM ledger.enable_table((ch || '_t')::regclass, ch);
END $$;
CREATE FUNCTION pg_temp.fill(ch text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($f$INSERT INTO %I VALUES (1, 'one'), (2, 'two')$f$, ch || '_t');
END $$;

-- tables and rows, each insert in its own (autocommitted, synchronously sealed) transaction
SELECT pg_temp.setup(c) FROM unnest(ARRAY['tap02_clean', 'tap02_chg', 'tap02_del', 'tap02_add', 'tap02_add2',
	'tap02_swap', 'tap02_btime', 'tap02_broot', 'tap02_bent', 'tap02_bdel', 'tap02_range']) c \g /dev/null
SELECT pg_temp.fill(c) FROM unnest(ARRAY['tap02_clean', 'tap02_chg', 'tap02_del', 'tap02_add', 'tap02_add2',
	'tap02_swap', 'tap02_btime', 'tap02_broot', 'tap02_bent', 'tap02_bdel', 'tap02_range']) c \g /dev/null
SELECT ledger.create_channel('tap02_tiers', ARRAY['low', 'high']) \g /dev/null
INSERT INTO tap02_clean_t VALUES (3, 'three');  INSERT INTO tap02_clean_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_chg_t VALUES (3, 'three');    INSERT INTO tap02_chg_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_del_t VALUES (3, 'three');    INSERT INTO tap02_del_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_add_t VALUES (3, 'three');    INSERT INTO tap02_add_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_add2_t VALUES (3, 'three');   INSERT INTO tap02_add2_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_swap_t VALUES (3, 'three');   INSERT INTO tap02_swap_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_btime_t VALUES (3, 'three');  INSERT INTO tap02_btime_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_broot_t VALUES (3, 'three');  INSERT INTO tap02_broot_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_bent_t VALUES (3, 'three');   INSERT INTO tap02_bent_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_bdel_t VALUES (3, 'three');   INSERT INTO tap02_bdel_t VALUES (4, 'four'), (5, 'five');
INSERT INTO tap02_range_t VALUES (3, 'three');  INSERT INTO tap02_range_t VALUES (4, 'four'), (5, 'five');
SELECT ledger.wait_sealed() \g /dev/null

-- every channel is intact before tampering
SELECT is(pg_temp.problems(c), '(none)', c || ' verifies clean before tampering')
  FROM unnest(ARRAY['tap02_clean', 'tap02_chg', 'tap02_del', 'tap02_add', 'tap02_add2',
	'tap02_swap', 'tap02_btime', 'tap02_broot', 'tap02_bent', 'tap02_bdel', 'tap02_range', 'tap02_tiers']) c;
CREATE TEMP TABLE digests AS
SELECT c AS channel, ledger.digest(c) AS d FROM unnest(ARRAY['tap02_clean', 'tap02_btime', 'tap02_broot', 'tap02_bent', 'tap02_bdel', 'tap02_tiers']) c;
SELECT ok(ledger.verify_digest(d), channel || ': digest verifies before tampering') FROM digests ORDER BY channel;

-- ------------------------------------------------------------ row tampering
SET session_replication_role = replica;

-- changed row (id 3, its own block)
SELECT block_height AS chg_h FROM ledger.history('tap02_chg_t') h JOIN tap02_chg_t t ON t.ledger_entry = h.entry WHERE t.id = 3 \gset
UPDATE tap02_chg_t SET v = 'THREE' WHERE id = 3;
-- missing row (id 4)
SELECT block_height AS del_h FROM ledger.history('tap02_del_t') h JOIN tap02_del_t t ON t.ledger_entry = h.entry WHERE t.id = 4 \gset
DELETE FROM tap02_del_t WHERE id = 4;
-- added row with a fresh entry number given explicitly
INSERT INTO tap02_add_t (id, v, ledger_entry) VALUES (6, 'forged', nextval('ledger.entry_seq'));
-- added row taking the column default
INSERT INTO tap02_add2_t (id, v) VALUES (7, 'forged');
-- two rows' entry numbers swapped (rows moved between positions/blocks)
SELECT block_height AS swap_h1 FROM ledger.history('tap02_swap_t') h JOIN tap02_swap_t t ON t.ledger_entry = h.entry WHERE t.id = 1 \gset
SELECT block_height AS swap_h3 FROM ledger.history('tap02_swap_t') h JOIN tap02_swap_t t ON t.ledger_entry = h.entry WHERE t.id = 3 \gset
UPDATE tap02_swap_t SET ledger_entry = -ledger_entry WHERE id IN (1, 3);
UPDATE tap02_swap_t t SET ledger_entry = -(SELECT ledger_entry FROM tap02_swap_t o WHERE o.id = CASE t.id WHEN 1 THEN 3 ELSE 1 END)
 WHERE id IN (1, 3);

RESET session_replication_role;

SELECT is(pg_temp.problems('tap02_clean'), '(none)', 'the untouched channel still verifies clean');

SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_chg') WHERE block_height = :chg_h
				  AND problem ~ 'public\.tap02_chg_t' AND problem ~ 'does not match its hash'),
		  'changed row: "does not match its hash" in its block, naming the table');
SELECT is((SELECT count(*) FROM ledger.verify('tap02_chg')), 1::bigint, 'changed row: exactly one problem');

SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_del') WHERE block_height = :del_h
				  AND problem ~ 'public\.tap02_del_t' AND problem ~ 'is missing'),
		  'deleted row: "is missing" in its block, naming the table');
SELECT is((SELECT count(*) FROM ledger.verify('tap02_del')), 1::bigint, 'deleted row: exactly one problem');

SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_add')
				  WHERE problem ~ 'public\.tap02_add_t' AND problem ~ '(is not in the ledger|has no entry number)'),
		  'added row with explicit entry: reported, naming the table');
SELECT is((SELECT count(*) FROM ledger.verify('tap02_add')), 1::bigint, 'added row with explicit entry: exactly one problem');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_add2')
				  WHERE problem ~ 'public\.tap02_add2_t' AND problem ~ '(is not in the ledger|has no entry number)'),
		  'added row with default entry: reported, naming the table');
SELECT is((SELECT count(*) FROM ledger.verify('tap02_add2')), 1::bigint, 'added row with default entry: exactly one problem');

SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_swap') WHERE block_height = :swap_h1 AND problem ~ 'public\.tap02_swap_t'),
		  'swapped entries: problem in the first row''s block');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_swap') WHERE block_height = :swap_h3 AND problem ~ 'public\.tap02_swap_t'),
		  'swapped entries: problem in the second row''s block');
SELECT is((SELECT count(*) FROM ledger.verify('tap02_swap')), 2::bigint, 'swapped entries: one problem per moved row');

-- ---------------------------------------------------------- block tampering
-- the block holding id 3 of each channel (a middle block: ids 4,5 follow)
SELECT b.height AS bt_h FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap02_btime' AND b.max_entry = (SELECT ledger_entry FROM tap02_btime_t WHERE id = 3) \gset
SELECT b.height AS br_h FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap02_broot' AND b.max_entry = (SELECT ledger_entry FROM tap02_broot_t WHERE id = 3) \gset
SELECT b.height AS be_h FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap02_bent' AND b.row_count = 2 AND b.min_entry = (SELECT ledger_entry FROM tap02_bent_t WHERE id = 1) \gset
SELECT b.height AS bd_h FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap02_bdel' AND b.max_entry = (SELECT ledger_entry FROM tap02_bdel_t WHERE id = 3) \gset
SELECT ok(:bt_h > 0 AND :br_h > 0 AND :be_h > 0 AND :bd_h > 0, 'found the blocks to tamper with');

SELECT b.height AS rg_h FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap02_range' AND b.max_entry = (SELECT ledger_entry FROM tap02_range_t WHERE id = 3) \gset

ALTER TABLE ledger.block DISABLE TRIGGER block_append_only;
-- outside the block's hash, but what ledger.proof finds the block by
UPDATE ledger.block b SET max_entry = min_entry - 1 FROM ledger.channel c
 WHERE c.channel_id = b.channel_id AND c.name = 'tap02_range' AND b.height = :rg_h;
UPDATE ledger.block b SET time_us = time_us + 1 FROM ledger.channel c
 WHERE c.channel_id = b.channel_id AND c.name = 'tap02_btime' AND b.height = :bt_h;
UPDATE ledger.block b SET merkle_root = sha256('forged'::bytea) FROM ledger.channel c
 WHERE c.channel_id = b.channel_id AND c.name = 'tap02_broot' AND b.height = :br_h;
-- swap the two 62-byte row records of the block
UPDATE ledger.block b SET entries = substring(entries FROM 63 FOR 62) || substring(entries FROM 1 FOR 62) FROM ledger.channel c
 WHERE c.channel_id = b.channel_id AND c.name = 'tap02_bent' AND b.height = :be_h;
DELETE FROM ledger.block b USING ledger.channel c
 WHERE c.channel_id = b.channel_id AND c.name = 'tap02_bdel' AND b.height = :bd_h;
ALTER TABLE ledger.block ENABLE TRIGGER block_append_only;

SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_btime') WHERE block_height = :bt_h
				  AND problem ~ 'stored block hash does not match its header'),
		  'changed time_us: "stored block hash does not match its header" at its height');
SELECT ok(NOT EXISTS (SELECT FROM ledger.verify('tap02_btime') WHERE block_height <> :bt_h),
		  'changed time_us: no problem reported at other heights');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_broot') WHERE block_height = :br_h
				  AND problem ~ '(Merkle root does not match|stored block hash does not match its header)'),
		  'changed merkle_root: reported at its height');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_bent') WHERE block_height = :be_h
				  AND problem ~ 'Merkle root does not match'),
		  'reordered entries: "Merkle root does not match" at its height');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_bdel') WHERE block_height IN (:bd_h, :bd_h + 1)
				  AND problem ~ '(previous hash does not match|missing)'),
		  'deleted block: reported at its height or the next');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_bdel') WHERE problem ~ 'public\.tap02_bdel_t' AND problem ~ 'not in the ledger'),
		  'deleted block: its row is reported as not in the ledger');

SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_range') WHERE block_height = :rg_h
				  AND problem ~ 'its entry range \(min_entry, max_entry\) does not match its entries'),
		  'changed max_entry: reported at its height');
SELECT is((SELECT count(*) FROM ledger.verify('tap02_range')), 1::bigint, 'changed max_entry: exactly one problem');

-- the tiers reordered: every leaf binds tier names, so every hash holds,
-- but row-level security and clearances rank tiers by their place
SET session_replication_role = replica;
UPDATE ledger.channel SET tiers = ARRAY['high', 'low'] WHERE name = 'tap02_tiers';
RESET session_replication_role;
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap02_tiers') WHERE block_height = 0
				  AND problem ~ 'its name and tiers do not match its configuration hash'),
		  'reordered tiers: reported');

SELECT ok(NOT ledger.verify_digest(d), channel || ': digest no longer verifies after a block changed')
  FROM digests WHERE channel <> 'tap02_clean' ORDER BY channel;
SELECT ok(ledger.verify_digest(d), channel || ': untouched channel''s digest still verifies')
  FROM digests WHERE channel = 'tap02_clean';
SELECT ok(NOT ledger.verify_digest(jsonb_set(d, '{block_hash}', to_jsonb(repeat('0', 64)))),
		  'forged digest block_hash does not verify') FROM digests WHERE channel = 'tap02_clean';
SELECT ok(NOT ledger.verify_digest(jsonb_set(d, '{height}', to_jsonb((d->>'height')::int - 1))),
		  'digest with wrong height does not verify') FROM digests WHERE channel = 'tap02_clean';
SELECT is(pg_temp.problems('tap02_clean'), '(none)', 'the untouched channel is still clean at the end');

SELECT * FROM finish();
