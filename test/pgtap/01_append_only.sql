-- Append-only guards of ledger tables: every refused operation fails with
-- SQLSTATE 42501, a message naming the table and a detail naming the
-- channel, for the superuser and for a table owner who is not superuser;
-- INSERT, multi-row INSERT, RETURNING and the allowed ALTERs keep working.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(176);

-- Run a statement in a subtransaction that is always rolled back; return
-- {sqlstate, message, detail} of its error, or NULL fields when it worked.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
	BEGIN
		EXECUTE stmt;
		RAISE EXCEPTION 'tap01: no error' USING ERRCODE = 'P0099';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	END;
	IF st = 'P0099' THEN RETURN ARRAY[NULL, NULL, NULL]::text[]; END IF;
	RETURN ARRAY[st, msg, det];
END $$;

-- Three tests per refused statement: SQLSTATE, message names table, detail names channel.
CREATE FUNCTION pg_temp.refused(stmt text, tbl text, channel text, what text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE e text[] := pg_temp.try(stmt);
BEGIN
	RETURN NEXT is(e[1], '42501', what || ': SQLSTATE 42501 (got ' || coalesce(e[2], 'no error') || ')');
	RETURN NEXT ok(coalesce(e[2] ~ ('^cannot .*ledger table "' || tbl || '"'), false),
				   what || ': message names table ' || tbl);
	RETURN NEXT ok(coalesce(e[3] ~ ('channel "' || channel || '"'), false),
				   what || ': detail names channel ' || channel);
END $$;

CREATE FUNCTION pg_temp.rowcount(stmt text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE stmt;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

SELECT ledger.create_channel('tap01', ARRAY['public', 'secret']) \g /dev/null
CREATE TABLE tap01_t (id int PRIMARY KEY, v text, tier text NOT NULL DEFAULT 'public');
SELECT ledger.enable_table('tap01_t', 'tap01', 'tier') \g /dev/null

-- ---------------------------------------------------------------- inserts
SELECT is(pg_temp.rowcount($$INSERT INTO tap01_t VALUES (1, 'one')$$), 1::bigint, 'single-row INSERT reports 1 row');
SELECT is(pg_temp.rowcount($$INSERT INTO tap01_t VALUES (2, 'two', 'secret'), (3, 'three', 'public'), (4, NULL, 'public')$$),
		  3::bigint, 'multi-row INSERT reports 3 rows');
SELECT is(pg_temp.rowcount($$INSERT INTO tap01_t (id, v) SELECT g, 'g' || g FROM generate_series(5, 9) g$$),
		  5::bigint, 'INSERT ... SELECT reports 5 rows');
CREATE FUNCTION pg_temp.ins_ret() RETURNS TABLE (id int, v text, tier text) LANGUAGE sql AS $$
	WITH ins AS (INSERT INTO tap01_t (id, v, tier) VALUES (10, 'ten', 'secret'), (11, 'eleven', DEFAULT)
				 RETURNING id, v, tier)
	SELECT * FROM ins ORDER BY id $$;
SELECT results_eq('SELECT * FROM pg_temp.ins_ret()',
				  $$VALUES (10, 'ten'::text, 'secret'::text), (11, 'eleven', 'public')$$,
				  'INSERT ... RETURNING returns the inserted values and defaults');
CREATE FUNCTION pg_temp.ins_ret_entry() RETURNS TABLE (id int, has_entry boolean) LANGUAGE sql AS $$
	WITH ins AS (INSERT INTO tap01_t (id, v) VALUES (12, 'twelve') RETURNING id, ledger_entry)
	SELECT id, ledger_entry IS NOT NULL FROM ins $$;
SELECT results_eq('SELECT * FROM pg_temp.ins_ret_entry()', $$VALUES (12, true)$$,
				  'INSERT ... RETURNING ledger_entry returns the entry number');
SELECT results_eq('SELECT id, v, tier FROM tap01_t ORDER BY id',
	$$VALUES (1, 'one'::text, 'public'::text), (2, 'two', 'secret'), (3, 'three', 'public'), (4, NULL, 'public'),
			 (5, 'g5', 'public'), (6, 'g6', 'public'), (7, 'g7', 'public'), (8, 'g8', 'public'),
			 (9, 'g9', 'public'), (10, 'ten', 'secret'), (11, 'eleven', 'public'), (12, 'twelve', 'public')$$,
	'the table holds exactly the inserted rows');
SELECT is((SELECT count(DISTINCT ledger_entry) FROM tap01_t), 12::bigint, 'every row has its own ledger_entry');
SELECT is((SELECT count(*) FROM ledger.history('tap01_t') WHERE status = 'sealed'), 12::bigint,
		  'every inserted row is sealed (synchronous commit)');
SELECT is((SELECT string_agg(h.tier, ',' ORDER BY h.entry) FROM ledger.history('tap01_t') h
			 JOIN tap01_t t ON t.ledger_entry = h.entry WHERE t.id IN (1, 2, 10)), 'public,secret,secret',
		  'history records each row''s tier');
SELECT throws_ok($$INSERT INTO tap01_t VALUES (1, 'dup')$$, '23505', NULL, 'constraints still apply (primary key)');

-- ------------------------------------------------ refused: row changes
SELECT throws_ok($$UPDATE tap01_t SET v = 'x' WHERE id = 1$$, '42501', 'cannot update ledger table "tap01_t"', 'UPDATE is refused');
SELECT pg_temp.refused($$UPDATE tap01_t SET v = 'x' WHERE id = 1$$, 'tap01_t', 'tap01', 'UPDATE');
SELECT pg_temp.refused($$UPDATE tap01_t SET v = 'x' WHERE false$$, 'tap01_t', 'tap01', 'UPDATE of no rows');
SELECT pg_temp.refused($$DELETE FROM tap01_t WHERE id = 2$$, 'tap01_t', 'tap01', 'DELETE');
SELECT pg_temp.refused($$TRUNCATE tap01_t$$, 'tap01_t', 'tap01', 'TRUNCATE');
SELECT pg_temp.refused($$INSERT INTO tap01_t VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET v = 'b'$$, 'tap01_t', 'tap01', 'INSERT ON CONFLICT DO UPDATE');
SELECT pg_temp.refused($$MERGE INTO tap01_t t USING (SELECT 1 AS id) s ON s.id = t.id WHEN MATCHED THEN UPDATE SET v = 'm'$$, 'tap01_t', 'tap01', 'MERGE ... UPDATE');
SELECT pg_temp.refused($$MERGE INTO tap01_t t USING (SELECT 1 AS id) s ON s.id = t.id WHEN MATCHED THEN DELETE$$, 'tap01_t', 'tap01', 'MERGE ... DELETE');

-- ------------------------------------------------ refused: ALTER TABLE
SELECT throws_ok($$ALTER TABLE tap01_t ADD COLUMN extra int$$, '42501', 'cannot alter ledger table "tap01_t"', 'ALTER TABLE ADD COLUMN is refused');
SELECT pg_temp.refused($$ALTER TABLE tap01_t ADD COLUMN extra int DEFAULT 1$$, 'tap01_t', 'tap01', 'ADD COLUMN');
SELECT pg_temp.refused($$ALTER TABLE tap01_t DROP COLUMN v$$, 'tap01_t', 'tap01', 'DROP COLUMN');
SELECT pg_temp.refused($$ALTER TABLE tap01_t ALTER COLUMN v TYPE varchar(100)$$, 'tap01_t', 'tap01', 'ALTER COLUMN TYPE');
SELECT pg_temp.refused($$ALTER TABLE tap01_t ALTER COLUMN ledger_entry DROP DEFAULT$$, 'tap01_t', 'tap01', 'ALTER COLUMN ledger_entry DROP DEFAULT');
SELECT pg_temp.refused($$ALTER TABLE tap01_t DISABLE TRIGGER ledger_capture$$, 'tap01_t', 'tap01', 'DISABLE TRIGGER ledger_capture');
SELECT pg_temp.refused($$ALTER TABLE tap01_t DISABLE TRIGGER ledger_append_only$$, 'tap01_t', 'tap01', 'DISABLE TRIGGER ledger_append_only');
SELECT pg_temp.refused($$ALTER TABLE tap01_t DISABLE TRIGGER ALL$$, 'tap01_t', 'tap01', 'DISABLE TRIGGER ALL');
SELECT pg_temp.refused($$ALTER TABLE tap01_t ENABLE REPLICA TRIGGER ledger_capture$$, 'tap01_t', 'tap01', 'ENABLE REPLICA TRIGGER');
SELECT pg_temp.refused($$ALTER TABLE tap01_t RENAME TO tap01_renamed$$, 'tap01_t', 'tap01', 'RENAME TO');
SELECT pg_temp.refused($$ALTER TABLE tap01_t RENAME COLUMN v TO w$$, 'tap01_t', 'tap01', 'RENAME COLUMN');
SELECT pg_temp.refused($$ALTER TABLE tap01_t SET SCHEMA ledger$$, 'tap01_t', 'tap01', 'SET SCHEMA');
SELECT pg_temp.refused($$ALTER TRIGGER ledger_capture ON tap01_t RENAME TO other$$, 'tap01_t', 'tap01', 'ALTER TRIGGER RENAME');
SELECT pg_temp.refused($$ALTER TABLE tap01_t SET UNLOGGED$$, 'tap01_t', 'tap01', 'SET UNLOGGED');
-- ALTER INDEX / ALTER TABLE share RenameStmt: ALTER INDEX accepts a table name
SELECT pg_temp.refused($$ALTER INDEX tap01_t RENAME TO tap01_renamed$$, 'tap01_t', 'tap01', 'ALTER INDEX <ledger table> RENAME');

-- ---------------------------------------------- refused: triggers, rules
CREATE FUNCTION tap01_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
SELECT pg_temp.refused($$CREATE TRIGGER tap01_trg BEFORE INSERT ON tap01_t FOR EACH ROW EXECUTE FUNCTION tap01_noop()$$, 'tap01_t', 'tap01', 'CREATE TRIGGER');
SELECT pg_temp.refused($$CREATE RULE tap01_rule AS ON INSERT TO tap01_t DO INSTEAD NOTHING$$, 'tap01_t', 'tap01', 'CREATE RULE');
SELECT pg_temp.refused($$DROP TRIGGER ledger_capture ON tap01_t$$, 'tap01_t', 'tap01', 'DROP TRIGGER ledger_capture');
SELECT pg_temp.refused($$DROP TRIGGER ledger_append_only ON tap01_t$$, 'tap01_t', 'tap01', 'DROP TRIGGER ledger_append_only');

-- ------------------------------------------------------ refused: drops
SELECT throws_ok($$DROP TABLE tap01_t$$, '42501', 'cannot drop ledger table "tap01_t"', 'DROP TABLE is refused');
SELECT pg_temp.refused(format('DROP INDEX %s', (SELECT indexrelid::regclass FROM pg_index
					   WHERE indrelid = 'tap01_t'::regclass AND indisunique AND indnatts = 1
					     AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = 'tap01_t'::regclass
										   AND attname = 'ledger_entry'))), 'tap01_t', 'tap01',
					   'DROP INDEX of the ledger_entry unique index');
-- REINDEX CONCURRENTLY drops the old copy of that index once it is dead
REINDEX TABLE CONCURRENTLY tap01_t;
SELECT is((SELECT count(*) FROM pg_index WHERE indrelid = 'tap01_t'::regclass AND indisunique AND indisvalid
			AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = 'tap01_t'::regclass AND attname = 'ledger_entry')),
		  1::bigint, 'REINDEX TABLE CONCURRENTLY rebuilds the ledger_entry index of a ledger table');
SELECT is((SELECT count(*) FROM pg_index WHERE indrelid = 'tap01_t'::regclass AND NOT indisvalid), 0::bigint,
		  '... and leaves no invalid copy behind');
SELECT pg_temp.refused($$DROP TABLE tap01_t$$, 'tap01_t', 'tap01', 'DROP TABLE');
CREATE TABLE tap01_plain (x int);
SELECT pg_temp.refused($$DROP TABLE tap01_plain, tap01_t CASCADE$$, 'tap01_t', 'tap01', 'DROP TABLE plain, ledger CASCADE');
CREATE SCHEMA tap01_s;
CREATE TABLE tap01_s.inner_t (x int);
SELECT ledger.enable_table('tap01_s.inner_t', 'tap01') \g /dev/null
SELECT pg_temp.refused($$DROP SCHEMA tap01_s CASCADE$$, 'inner_t', 'tap01', 'DROP SCHEMA CASCADE');
SELECT pg_temp.refused($$DROP EXTENSION loopledger CASCADE$$, '[A-Za-z0-9_.]+', '[A-Za-z0-9_.-]+', 'DROP EXTENSION loopledger CASCADE');
SELECT has_table('tap01_s', 'inner_t', 'schema and ledger table survive');
SELECT has_extension('loopledger', 'extension survives');

-- ------------------------------------------------------ allowed ALTERs
SELECT lives_ok($$CREATE INDEX tap01_t_v ON tap01_t (v)$$, 'CREATE INDEX works');
SELECT lives_ok($$ALTER TABLE tap01_t ADD CONSTRAINT tap01_t_id_pos CHECK (id > 0)$$, 'ADD CONSTRAINT CHECK works');
SELECT lives_ok($$ALTER TABLE tap01_t ADD CONSTRAINT tap01_t_v_uq UNIQUE (id, v)$$, 'ADD CONSTRAINT UNIQUE works');
SELECT throws_ok($$INSERT INTO tap01_t VALUES (-1, 'neg')$$, '23514', NULL, 'the added CHECK constraint applies');
SELECT lives_ok($$ALTER TABLE tap01_t ENABLE ROW LEVEL SECURITY$$, 'ENABLE ROW LEVEL SECURITY works');
SELECT lives_ok($$ALTER TABLE tap01_t FORCE ROW LEVEL SECURITY$$, 'FORCE ROW LEVEL SECURITY works');
SELECT pg_temp.refused($$ALTER TABLE tap01_t DISABLE ROW LEVEL SECURITY$$, 'tap01_t', 'tap01', 'DISABLE ROW LEVEL SECURITY');
SELECT pg_temp.refused($$ALTER TABLE tap01_t NO FORCE ROW LEVEL SECURITY$$, 'tap01_t', 'tap01', 'NO FORCE ROW LEVEL SECURITY');
SELECT is((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'tap01_t'::regclass), true, 'RLS stays enabled and forced');

-- -------------------------------------- as a table owner who is not superuser
DO $$ BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tap01_owner') THEN
		CREATE ROLE tap01_owner NOSUPERUSER;
	END IF;
END $$;
CREATE TABLE tap01_o (id int, v text);
SELECT ledger.enable_table('tap01_o', 'tap01') \g /dev/null
SELECT lives_ok($$ALTER TABLE tap01_o OWNER TO tap01_owner$$, 'OWNER TO works');
SELECT is((SELECT tableowner::text FROM pg_tables WHERE tablename = 'tap01_o'), 'tap01_owner', 'owner changed');
SET ROLE tap01_owner;
SELECT is(pg_temp.rowcount($$INSERT INTO tap01_o VALUES (1, 'a'), (2, 'b')$$), 2::bigint, 'owner: INSERT works');
SELECT pg_temp.refused($$UPDATE tap01_o SET v = 'x'$$, 'tap01_o', 'tap01', 'owner: UPDATE');
SELECT pg_temp.refused($$DELETE FROM tap01_o$$, 'tap01_o', 'tap01', 'owner: DELETE');
SELECT pg_temp.refused($$TRUNCATE tap01_o$$, 'tap01_o', 'tap01', 'owner: TRUNCATE');
SELECT pg_temp.refused($$ALTER TABLE tap01_o ADD COLUMN extra int$$, 'tap01_o', 'tap01', 'owner: ADD COLUMN');
SELECT pg_temp.refused($$ALTER TABLE tap01_o DROP COLUMN v$$, 'tap01_o', 'tap01', 'owner: DROP COLUMN');
SELECT pg_temp.refused($$ALTER TABLE tap01_o DISABLE TRIGGER ALL$$, 'tap01_o', 'tap01', 'owner: DISABLE TRIGGER ALL');
SELECT pg_temp.refused($$ALTER TABLE tap01_o RENAME TO tap01_o2$$, 'tap01_o', 'tap01', 'owner: RENAME');
SELECT pg_temp.refused($$DROP TABLE tap01_o$$, 'tap01_o', 'tap01', 'owner: DROP TABLE');
SELECT pg_temp.refused($$DROP OWNED BY tap01_owner$$, 'tap01_o', 'tap01', 'owner: DROP OWNED');
SELECT pg_temp.refused($$DROP TRIGGER ledger_capture ON tap01_o$$, 'tap01_o', 'tap01', 'owner: DROP TRIGGER');
RESET ROLE;
SELECT is((SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM tap01_o), '1:a,2:b', 'owner''s table unchanged');

-- ------------------- no way around the guards through related objects
-- An inheritance parent reaches its children: UPDATE/ALTER of the parent
-- must not change the rows or columns of a ledger child table.
SELECT ledger.create_channel('tap01_bypass') \g /dev/null
CREATE TABLE tap01_parent (id int, v text);
CREATE TABLE tap01_child () INHERITS (tap01_parent);
DO $$ BEGIN
	PERFORM ledger.enable_table('tap01_child', 'tap01_bypass');
	INSERT INTO tap01_child VALUES (1, 'orig');
EXCEPTION WHEN OTHERS THEN NULL;   -- refusing an inheritance child is fine too
END $$;
DO $$ BEGIN UPDATE tap01_parent SET v = 'hacked'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN DELETE FROM tap01_parent; EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN ALTER TABLE tap01_parent ADD COLUMN extra int DEFAULT 7; EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT ok(NOT EXISTS (SELECT FROM ledger.tables WHERE "table" = 'tap01_child'::regclass)
		  OR (SELECT string_agg(v, ',') FROM tap01_child) IS NOT DISTINCT FROM 'orig',
		  'UPDATE/DELETE of an inheritance parent does not change a ledger child''s rows');
SELECT ok(NOT EXISTS (SELECT FROM ledger.tables WHERE "table" = 'tap01_child'::regclass)
		  OR NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'tap01_child'::regclass AND attname = 'extra'),
		  'ALTER TABLE parent ADD COLUMN does not add a column to a ledger child');

-- A ledger table attached as a partition: the partitioned parent reaches it.
CREATE TABLE tap01_q (id int, v text);
SELECT ledger.enable_table('tap01_q', 'tap01_bypass') \g /dev/null
INSERT INTO tap01_q VALUES (1, 'orig');
CREATE TABLE tap01_pp (id int, v text, ledger_entry bigint NOT NULL) PARTITION BY RANGE (id);
DO $$ BEGIN ALTER TABLE tap01_pp ATTACH PARTITION tap01_q FOR VALUES FROM (0) TO (100); EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN UPDATE tap01_pp SET v = 'hacked'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN DELETE FROM tap01_pp WHERE id = 1 AND v = 'orig'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT is((SELECT string_agg(v, ',') FROM tap01_q), 'orig', 'UPDATE/DELETE through a partitioned parent does not change a ledger table');

-- Changing a type used by a ledger column must not rewrite stored rows.
CREATE TYPE tap01_mood AS ENUM ('happy', 'sad');
CREATE TYPE tap01_pair AS (a int, b text);
CREATE TABLE tap01_ty (m tap01_mood, p tap01_pair);
SELECT ledger.enable_table('tap01_ty', 'tap01_bypass') \g /dev/null
INSERT INTO tap01_ty VALUES ('happy', ROW(1, 'x'));
DO $$ BEGIN ALTER TYPE tap01_mood RENAME VALUE 'happy' TO 'glad'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
DO $$ BEGIN ALTER TYPE tap01_pair DROP ATTRIBUTE b; EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT is((SELECT m::text || ' ' || p::text FROM tap01_ty), 'happy (1,x)', 'ALTER TYPE of a ledger column''s type does not change stored rows');
-- a table's row type as a ledger column's type: its columns are the type's
CREATE TABLE tap01_kid_src (x int);
CREATE TABLE tap01_addr (street text, city text);
CREATE TABLE tap01_lives (id int, a tap01_addr);
SELECT ledger.enable_table('tap01_lives', 'tap01_bypass') \g /dev/null
INSERT INTO tap01_lives (id, a) VALUES (1, ROW('Main St', 'Seoul'));
SELECT throws_ok($$ALTER TABLE tap01_addr DROP COLUMN city$$, '42501', 'cannot alter type tap01_addr',
				 'dropping a column of a table whose row type a ledger column stores is refused');
SELECT throws_ok($$ALTER TABLE tap01_addr ADD COLUMN zip text$$, '42501', 'cannot alter type tap01_addr',
				 '... and so is adding one');
SELECT lives_ok($$ALTER TABLE tap01_kid_src ADD COLUMN w int$$, 'other tables still take new columns');
-- the schema's name is hashed with the table's
CREATE SCHEMA tap01_sch;
CREATE TABLE tap01_sch.t (v text);
SELECT ledger.enable_table('tap01_sch.t', 'tap01_bypass') \g /dev/null
SELECT pg_temp.refused($$ALTER SCHEMA tap01_sch RENAME TO tap01_sch2$$, 't', 'tap01_bypass',
	'ALTER SCHEMA RENAME of a ledger table''s schema');
CREATE TABLE "tap01.dot" (v text);
SELECT throws_ok($$SELECT ledger.enable_table('"tap01.dot"', 'tap01_bypass')$$, '42602', NULL,
				 'a table with a dot in its name is refused (its hashed name would be ambiguous)');
-- a child added below a ledger table after the fact
CREATE TABLE tap01_kid (id int, v text, tier text, ledger_entry bigint);
SELECT throws_ok($$ALTER TABLE tap01_kid INHERIT tap01_t$$, '42501', NULL,
				 'ALTER TABLE ... INHERIT a ledger table is refused');

-- ------------------------------------------------- the chain is intact
-- OR REPLACE rewrites a trigger in place, past the check on dropping one
SELECT pg_temp.refused($$CREATE OR REPLACE TRIGGER ledger_append_only BEFORE TRUNCATE ON tap01_t
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_change('tap01')$$, 'tap01_t', 'tap01',
	'CREATE OR REPLACE TRIGGER of the append-only guard');
SELECT pg_temp.refused($$CREATE TRIGGER ledger_capture2 AFTER INSERT ON tap01_t
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_change('x')$$, 'tap01_t', 'tap01',
	'a second trigger calling a ledger trigger function');
-- a table of anyone's calling ledger.capture() with a ledger table's arguments
CREATE TABLE tap01_fake (id int, v text, tier text,
	ledger_entry bigint NOT NULL DEFAULT nextval('ledger.entry_seq'));
SELECT format($$CREATE TRIGGER fake AFTER INSERT ON tap01_fake FOR EACH ROW
	EXECUTE FUNCTION ledger.capture('tap01', '%s', '%s', '%s', 'tier')$$,
	t.channel_id, t.table_no, t.table_name) AS fake_trigger
  FROM ledger.ledger_table t WHERE t.relid = 'tap01_t'::regclass \gset
SELECT throws_ok(:'fake_trigger', '42501', 'cannot add a ledger trigger to table "tap01_fake"',
				 'a table not made a ledger table cannot get ledger.capture() as a trigger');
INSERT INTO tap01_fake (id, v, tier) VALUES (1, 'forged', 'public');
SELECT is((SELECT count(*) FROM ledger.pending p JOIN ledger.channel c USING (channel_id) WHERE c.name = 'tap01'),
		  0::bigint, '... and nothing of it is pending');
SELECT is_empty($$SELECT * FROM ledger.verify('tap01')$$, 'channel tap01 verifies clean after all refused operations');
SELECT is_empty($$SELECT * FROM ledger.verify('tap01_bypass')$$, 'channel tap01_bypass verifies clean after the attempts through parents and types');

SELECT * FROM finish();
