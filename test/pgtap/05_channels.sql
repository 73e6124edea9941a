-- create_channel / enable_table input checking, tiers at INSERT, existing
-- rows chained by enable_table, and the views.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(71);

CREATE FUNCTION pg_temp.nchannels() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM ledger.channel $$;
SELECT pg_temp.nchannels() AS n0 \gset

-- ------------------------------------------------------------ create_channel
SELECT ok(ledger.create_channel('tap05') > 0, 'create_channel returns a positive id');
SELECT ok(ledger.create_channel('tap05.b-c_D9', ARRAY['low', 'mid', 'high']) > 0, 'letters, digits, _ . - are allowed');
SELECT ok(ledger.create_channel('tap05_' || repeat('x', 57)) > 0, 'a 63-character name is allowed');
SELECT isnt((SELECT channel_id FROM ledger.channel WHERE name = 'tap05'), (SELECT channel_id FROM ledger.channel WHERE name = 'tap05.b-c_D9'),
			'channel ids are distinct');
SELECT is((SELECT tiers FROM ledger.channel WHERE name = 'tap05'), ARRAY['public'], 'default tiers are {public}');
SELECT is((SELECT tiers FROM ledger.channel WHERE name = 'tap05.b-c_D9'), ARRAY['low', 'mid', 'high'], 'tiers are kept in order');
SELECT is((SELECT config_hash FROM ledger.channel WHERE name = 'tap05.b-c_D9'), ledger.config_hash('tap05.b-c_D9', ARRAY['low', 'mid', 'high']),
		  'config_hash matches ledger.config_hash()');
SELECT isnt(ledger.config_hash('tap05', ARRAY['a', 'b']), ledger.config_hash('tap05', ARRAY['b', 'a']), 'config_hash depends on tier order');
SELECT is((SELECT count(*) FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'tap05'), 1::bigint,
		  'a new channel has exactly its genesis block');

SELECT throws_ok($$SELECT ledger.create_channel('tap05')$$, '42710', NULL, 'duplicate channel name is refused');
SELECT throws_ok($$SELECT ledger.create_channel('')$$, '42602', NULL, 'empty name is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_' || repeat('x', 58))$$, '42602', NULL, '64-character name is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05 space')$$, '42602', NULL, 'name with a space is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05;drop')$$, '42602', NULL, 'name with ; is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05/x')$$, '42602', NULL, 'name with / is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05' || convert_from('\xc3bc'::bytea, 'UTF8'))$$, '42602', NULL, 'non-ASCII name is refused');
SELECT throws_ok($$SELECT ledger.create_channel(NULL)$$, NULL, 'NULL name is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_nt', NULL)$$, NULL, 'NULL tiers are refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_et', '{}')$$, NULL, 'empty tiers are refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_dt', ARRAY['a', 'b', 'a'])$$, NULL, 'duplicate tiers are refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_nlt', ARRAY['a', NULL])$$, NULL, 'a NULL tier is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_ent', ARRAY['a', ''])$$, NULL, 'an empty tier name is refused');
SELECT throws_ok($$SELECT ledger.create_channel('tap05_2d', '{{a,b},{c,d}}')$$, NULL, 'a two-dimensional tier array is refused');
SELECT is(pg_temp.nchannels(), :n0 + 3::bigint, 'refused create_channel calls created nothing');
SELECT is((SELECT count(*) FROM ledger.channel WHERE name LIKE 'tap05\_%t' OR name = 'tap05_2d'), 0::bigint, 'no half-made channel');

-- ------------------------------------------------------------ enable_table
CREATE TABLE tap05_t (id int, v text, tier text);
SELECT throws_ok($$SELECT ledger.enable_table('tap05_t', 'tap05_nosuch')$$, '42704', NULL, 'unknown channel is refused');
SELECT throws_ok($$SELECT ledger.enable_table('tap05_t', NULL)$$, NULL, 'NULL channel is refused');
SELECT throws_ok($$SELECT ledger.enable_table('tap05_t', 'tap05', 'nosuch')$$, '42703', NULL, 'missing tier column is refused');
SELECT throws_ok($$SELECT ledger.enable_table('tap05_t', 'tap05', 'id')$$, '42804', NULL, 'integer tier column is refused');
SELECT hasnt_column('tap05_t', 'ledger_entry', 'refused enable_table leaves the table unchanged');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tap05_t'::regclass), 0::bigint, 'and without triggers');

CREATE VIEW tap05_v AS SELECT 1 AS x;
SELECT throws_ok($$SELECT ledger.enable_table('tap05_v', 'tap05')$$, '42809', NULL, 'a view is refused');
CREATE SEQUENCE tap05_seq;
SELECT throws_ok($$SELECT ledger.enable_table('tap05_seq', 'tap05')$$, '42809', NULL, 'a sequence is refused');
CREATE TABLE tap05_part (id int) PARTITION BY RANGE (id);
SELECT throws_ok($$SELECT ledger.enable_table('tap05_part', 'tap05')$$, '42809', NULL, 'a partitioned table is refused');
CREATE TABLE tap05_part1 PARTITION OF tap05_part FOR VALUES FROM (0) TO (10);
SELECT throws_ok($$SELECT ledger.enable_table('tap05_part1', 'tap05')$$, NULL, 'a partition is refused');
CREATE UNLOGGED TABLE tap05_unlogged (id int);
SELECT throws_ok($$SELECT ledger.enable_table('tap05_unlogged', 'tap05')$$, NULL, 'an unlogged table is refused');
CREATE TEMP TABLE tap05_temp (id int);
SELECT throws_ok($$SELECT ledger.enable_table('tap05_temp', 'tap05')$$, NULL, 'a temporary table is refused');
-- a trigger made before enable_table would stay, and its function can be
-- replaced at any time to change rows before they are hashed
CREATE TABLE tap05_trg (id int, note text);
CREATE FUNCTION tap05_trg_f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER tap05_trg_t BEFORE INSERT ON tap05_trg FOR EACH ROW EXECUTE FUNCTION tap05_trg_f();
SELECT throws_ok($$SELECT ledger.enable_table('tap05_trg', 'tap05')$$, '0A000', 'table "tap05_trg" has triggers',
				 'a table with a trigger is refused, also on a channel without peers');
CREATE TABLE tap05_hasentry (id int, ledger_entry bigint);
SELECT throws_ok($$SELECT ledger.enable_table('tap05_hasentry', 'tap05')$$, NULL, 'a table with its own ledger_entry column is refused');

SELECT lives_ok($$SELECT ledger.enable_table('tap05_t', 'tap05.b-c_D9', 'tier')$$, 'enable_table with a text tier column');
SELECT throws_ok($$SELECT ledger.enable_table('tap05_t', 'tap05.b-c_D9', 'tier')$$, '42710', NULL, 'a table already in the ledger is refused');
SELECT throws_ok($$SELECT ledger.enable_table('tap05_t', 'tap05')$$, '42710', NULL, 'a ledger table cannot join a second channel');

-- ------------------------------------------------------------ tiers at INSERT
INSERT INTO tap05_t VALUES (1, 'a', 'low'), (2, 'b', 'high');
SELECT (SELECT count(*) FROM ledger.block_entries('tap05.b-c_D9')) AS be0 \gset
SELECT throws_ok($$INSERT INTO tap05_t VALUES (3, 'c', 'top')$$, '23514', NULL, 'a tier not in the channel is refused at INSERT');
SELECT throws_ok($$INSERT INTO tap05_t VALUES (4, 'd', 'low'), (5, 'e', 'LOW')$$, '23514', NULL, 'tiers are case-sensitive; the whole statement fails');
SELECT throws_ok($$INSERT INTO tap05_t VALUES (6, 'f', NULL)$$, '23502', NULL, 'a NULL tier is refused');
SELECT is((SELECT count(*) FROM tap05_t), 2::bigint, 'refused inserts left no row');
SELECT ledger.wait_sealed() \g /dev/null
SELECT is((SELECT count(*) FROM ledger.block_entries('tap05.b-c_D9')), :be0::bigint, 'refused inserts left nothing in blocks or pending');
SELECT is((SELECT count(*) FROM ledger.pending p JOIN ledger.channel c USING (channel_id) WHERE c.name = 'tap05.b-c_D9'), 0::bigint,
		  'nothing pending in ledger.pending');

CREATE TYPE tap05_level AS ENUM ('low', 'mid', 'high');
CREATE TABLE tap05_enum (id int, lvl tap05_level);
CREATE TABLE tap05_vc (id int, lvl varchar(10));
SELECT lives_ok($$SELECT ledger.enable_table('tap05_enum', 'tap05.b-c_D9', 'lvl')$$, 'an enum tier column is accepted');
SELECT lives_ok($$SELECT ledger.enable_table('tap05_vc', 'tap05.b-c_D9', 'lvl')$$, 'a varchar tier column is accepted');
SELECT lives_ok($$INSERT INTO tap05_enum VALUES (1, 'mid'); INSERT INTO tap05_vc VALUES (1, 'high')$$, 'inserting valid tiers works');
SELECT is((SELECT tier FROM ledger.history('tap05_enum')), 'mid', 'enum tier recorded');
SELECT throws_ok($$INSERT INTO tap05_vc VALUES (2, 'nope')$$, '23514', NULL, 'varchar tier not in the channel is refused');

-- ------------------------------------------------------ existing rows chained
CREATE TABLE tap05_old (id int, v text);
INSERT INTO tap05_old VALUES (1, 'old one'), (2, 'old two'), (3, NULL);
SELECT ledger.enable_table('tap05_old', 'tap05') \g /dev/null
SELECT is((SELECT count(DISTINCT ledger_entry) FROM tap05_old), 3::bigint, 'existing rows got entry numbers');
SELECT is((SELECT count(*) FROM ledger.history('tap05_old') WHERE status = 'sealed'), 3::bigint,
		  'existing rows are sealed when enable_table commits (synchronous commit)');
SELECT ledger.wait_sealed() \g /dev/null
SELECT is((SELECT count(DISTINCT block_height) FROM ledger.history('tap05_old')), 1::bigint, 'existing rows share one block');
INSERT INTO tap05_old VALUES (4, 'new');
SELECT is((SELECT string_agg(status, ',') FROM ledger.history('tap05_old')), 'sealed,sealed,sealed,sealed', 'new row sealed too');
SELECT is_empty($$SELECT * FROM ledger.verify('tap05')$$, 'channel tap05 verifies clean');
SELECT is_empty($$SELECT * FROM ledger.verify('tap05.b-c_D9')$$, 'channel tap05.b-c_D9 verifies clean');

-- ------------------------------------- entry numbers are unique in a channel
-- Two tables of one channel given the same explicit ledger_entry: either the
-- second INSERT is refused, or the chain still verifies and proofs are unambiguous.
SELECT ledger.create_channel('tap05_dup') \g /dev/null
CREATE TABLE tap05_dup_a (v text);
CREATE TABLE tap05_dup_b (v text);
SELECT ledger.enable_table('tap05_dup_a', 'tap05_dup') \g /dev/null
SELECT ledger.enable_table('tap05_dup_b', 'tap05_dup') \g /dev/null
INSERT INTO tap05_dup_a (v) VALUES ('a');
SELECT throws_ok(format('INSERT INTO tap05_dup_b (v, ledger_entry) VALUES (%L, %s)', 'b', (SELECT ledger_entry FROM tap05_dup_a)),
				 '428C9', NULL, 'an explicit entry number (another table''s) is refused');
SELECT throws_ok($$INSERT INTO tap05_dup_b (v, ledger_entry) VALUES ('c', -5)$$,
				 '428C9', NULL, 'a negative explicit entry number is refused');
SELECT throws_ok($$INSERT INTO tap05_dup_b (v, ledger_entry) VALUES ('d', 99999999)$$,
				 '428C9', NULL, 'an unused explicit entry number is refused too');
-- an INSERT in a WITH clause is checked like any other
SELECT throws_ok($$WITH x AS (INSERT INTO tap05_dup_b (v, ledger_entry) VALUES ('e', 0), ('f', -1) RETURNING 1) SELECT 1$$,
				 '428C9', NULL, 'explicit entry numbers in a writable CTE are refused');
-- a rule's action is not analysed as an INSERT of its own: the capture
-- trigger refuses numbers the sequence cannot give (0 and -1 once made
-- ledger.verify index memory outside its array)
CREATE TABLE tap05_via (v text, e bigint);
CREATE RULE tap05_via_r AS ON INSERT TO tap05_via DO INSTEAD
	INSERT INTO tap05_dup_b (v, ledger_entry) VALUES (NEW.v, NEW.e);
SELECT throws_ok($$INSERT INTO tap05_via VALUES ('g', 0)$$, '23514',
				 'entry number 0 of ledger table "public.tap05_dup_b" is out of range',
				 'entry number 0 through a rule is refused by the capture trigger');
SELECT throws_ok($$INSERT INTO tap05_via VALUES ('h', -1)$$, '23514', NULL,
				 'entry number -1 (2^64 - 1 as an entry) through a rule is refused');
SELECT ledger.wait_sealed() \g /dev/null
SELECT is_empty($$SELECT * FROM ledger.verify('tap05_dup')$$,
				'the channel still verifies clean');

-- ------------------------------------------------------------ views
SELECT results_eq($$SELECT channel, tiers, height, tables, sealed_rows FROM ledger.channels WHERE channel IN ('tap05', 'tap05.b-c_D9') ORDER BY channel$$,
	$$SELECT c.name, c.tiers, (SELECT max(height) FROM ledger.block b WHERE b.channel_id = c.channel_id),
			 (SELECT count(*) FROM ledger.ledger_table t WHERE t.channel_id = c.channel_id),
			 (SELECT sum(row_count) FROM ledger.block b WHERE b.channel_id = c.channel_id)
		FROM ledger.channel c WHERE c.name IN ('tap05', 'tap05.b-c_D9') ORDER BY c.name$$,
	'ledger.channels agrees with the catalogs');
SELECT results_eq($$SELECT tables, sealed_rows FROM ledger.channels WHERE channel IN ('tap05', 'tap05.b-c_D9') ORDER BY channel$$,
	$$VALUES (1::bigint, 4::bigint), (3, 4)$$, 'ledger.channels: tables and sealed rows');
SELECT is((SELECT string_agg("table"::text || ':' || tier_column, ',' ORDER BY table_no) FROM ledger.tables WHERE channel = 'tap05.b-c_D9'),
	'tap05_t:tier,tap05_enum:lvl,tap05_vc:lvl', 'ledger.tables lists the channel''s tables in order');
SELECT is((SELECT count(DISTINCT table_no) FROM ledger.tables WHERE channel = 'tap05.b-c_D9'), 3::bigint, 'table numbers are distinct within a channel');
SELECT is((SELECT count(*) FROM ledger.blocks WHERE channel = 'tap05'), (SELECT height + 1 FROM ledger.channels WHERE channel = 'tap05'),
		  'ledger.blocks has height+1 blocks');

SELECT * FROM finish();
