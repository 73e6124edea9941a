-- The DBA interface of multi-peer channels on one server: node key, adding
-- and removing members before the first decision, genesis hash, what peers
-- may call, and every bad input.  (Agreement between servers is tested with
-- real servers in test/sh/multinode_*.sh.)
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(142);

-- ------------------------------------------------------------ node key
SELECT matches(ledger.node_key(), '^[0-9a-f]{64}$', 'node_key is 64 hex digits');
SELECT is(ledger.node_key(), ledger.node_key(), 'node_key is created once and stays');
SELECT ok((SELECT last_value FROM ledger.entry_seq) >= ('x' || left(ledger.node_key(), 5))::bit(20)::bigint << 43,
		  'entry numbers are drawn from the range of this node''s key');
SELECT is((SELECT ARRAY[seqmin, seqmax] FROM pg_sequence WHERE seqrelid = 'ledger.entry_seq'::regclass),
		  ARRAY[(('x' || left(ledger.node_key(), 5))::bit(20)::bigint << 43) + 1,
				(('x' || left(ledger.node_key(), 5))::bit(20)::bigint << 43) + (1::bigint << 43) - 1],
		  '  and the sequence stops at its end (no number of another member''s range)');
CREATE ROLE tap08_user;
SET ROLE tap08_user;
SELECT throws_ok($$SELECT ledger.node_key()$$, '42501', NULL, 'node_key is for superusers');
SELECT throws_ok($$SELECT ledger.add_peer('x', 'a', 'host=x', repeat('ab', 32))$$, '42501', NULL, 'add_peer is for superusers');
SELECT throws_ok($$SELECT ledger.deliver('x', '\x00'::bytea, '\x00'::bytea)$$, '42501', NULL,
				 'ledger.deliver is not for everybody');
SELECT throws_ok($$SELECT * FROM ledger.decisions('x', 1, 1, '\x00', 0, '\x00')$$, '42501', NULL, 'ledger.decisions is not for everybody');
SELECT throws_ok($$SELECT ledger.batches('x', '{}', '\x00', 0, '\x00')$$, '42501', NULL, 'ledger.batches is not for everybody');
SELECT throws_ok($$SELECT ledger.reader_clearance('x', '\x00', 0, '\x00')$$, '42501', NULL, 'ledger.reader_clearance is not for everybody');
SELECT throws_ok($$SELECT ledger.set_peer_clearance('x', 'a', 'public')$$, '42501', NULL, 'set_peer_clearance is for superusers');
SELECT throws_ok($$SELECT ledger.set_peer_conninfo('x', 'a', 'host=x')$$, '42501', NULL, 'set_peer_conninfo is for superusers');
SELECT throws_ok($$SELECT * FROM ledger.peer$$, '42501', NULL, 'ledger.peer (conninfo) is not readable by everybody');
RESET ROLE;
SELECT columns_are('ledger', 'consensus_status',
				   ARRAY['channel', 'height', 'round', 'step', 'proposer', 'validators', 'quorum',
						 'ledger_height', 'worker_pid', 'signatures_made', 'signatures_checked',
						 'votes_parked', 'messages_rejected', 'last_error', 'last_error_at'],
				   'ledger.consensus_status has its columns, the core''s counters among them');

-- ------------------------------------------------------------ add_peer
SELECT ledger.create_channel('tap08', ARRAY['public', 'partner', 'customs']);
SELECT throws_ok(format($$SELECT ledger.add_peer('tap08', 'self', 'host=x', %L)$$, 'zz' || repeat('0', 62)),
				 '22023', 'invalid peer public key "' || 'zz' || repeat('0', 62) || '"', 'a key that is not hex is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', 'self', 'host=x', 'abcd')$$, '22023', NULL, 'a short key is refused');
SELECT throws_ok($$SELECT ledger.add_peer('nochannel', 'self', 'host=x', repeat('ab', 32))$$, '42704', NULL,
				 'an unknown channel is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', 'self', 'host=x', repeat('ab', 32), clearance => 'secret')$$, '22023',
				 '"secret" is not a tier of channel "tap08"', 'an unknown clearance tier is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', '', 'host=x', repeat('ab', 32))$$, '22023', NULL, 'an empty name is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', repeat('n', 64), 'host=x', repeat('ab', 32))$$, '22023', NULL,
				 'a name of 64 bytes is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', NULL, 'host=x', repeat('ab', 32))$$, '22004', NULL, 'a NULL name is refused');
SELECT throws_ok($$SELECT ledger.genesis_hash('tap08')$$, '55000', NULL, 'no genesis before the first member');

SELECT lives_ok(format($$SELECT ledger.add_peer('tap08', 'self', 'host=/nonexistent port=1 dbname=ledger', %L, clearance => 'customs')$$,
					   ledger.node_key()), 'add this node itself');
SELECT is((SELECT clearance FROM ledger.peer WHERE name = 'self'), 'customs', 'with its clearance');
SELECT is((SELECT since_height FROM ledger.peer WHERE name = 'self'), 0::bigint, 'a genesis member (since height 0)');
SELECT lives_ok($$SELECT ledger.add_peer('tap08', 'other', 'host=/nonexistent port=1 dbname=ledger', '\x' || repeat('cd', 32))$$,
				'add another member (key with \x prefix, default clearance)');
SELECT is((SELECT clearance FROM ledger.peer WHERE name = 'other'), 'public', 'the default clearance is the lowest tier');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', 'other', 'host=x', repeat('ef', 32))$$, '42710',
				 'channel already has a peer named "other"', 'a second member of the same name is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', 'third', 'host=x', repeat('cd', 32))$$, '42710', NULL,
				 'a second member with the same key is refused');
SELECT throws_ok($$SELECT ledger.add_peer('tap08', 'clash', 'host=x', 'cdcdc' || repeat('0', 59))$$, '42710', NULL,
				 'a key in the same entry range as a member''s is refused');

-- ------------------------------------------------------------ genesis
SELECT is(length(ledger.genesis_hash('tap08')), 32, 'genesis_hash is 32 bytes');
SELECT is((SELECT time_us FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'tap08' AND height = 0),
		  0::bigint, 'the genesis block of a channel with members has a fixed time (same on every member)');
SELECT ledger.genesis_hash('tap08') AS g1 \gset
SELECT ledger.add_peer('tap08', 'late', 'host=/nonexistent', repeat('99', 32));
SELECT isnt(ledger.genesis_hash('tap08'), :'g1'::bytea, 'a member more: another genesis');
SELECT lives_ok($$SELECT ledger.remove_peer('tap08', 'late')$$, 'remove_peer before the first decision drops the member');
SELECT is(ledger.genesis_hash('tap08'), :'g1'::bytea, 'and the genesis is as before');
SELECT throws_ok($$SELECT ledger.remove_peer('tap08', 'nobody')$$, '42704', NULL, 'removing an unknown member is refused');

-- ------------------------------------------------------------ clearances of peers
SELECT throws_ok($$SELECT ledger.set_peer_clearance('tap08', 'other', 'secret')$$, '22023',
				 '"secret" is not a tier of channel "tap08"', 'set_peer_clearance refuses an unknown tier');
SELECT throws_ok($$SELECT ledger.set_peer_clearance('tap08', 'nobody', 'partner')$$, '42704',
				 'channel "tap08" has no current peer named "nobody"', 'and an unknown peer');
SELECT throws_ok($$SELECT ledger.set_peer_clearance('nochannel', 'other', 'partner')$$, '42704', NULL, 'and an unknown channel');
SELECT lives_ok($$SELECT ledger.set_peer_clearance('tap08', 'other', 'partner')$$, 'before the first block a clearance changes at once');
SELECT is((SELECT clearance FROM ledger.peers WHERE name = 'other'), 'partner', 'ledger.peers shows it');
SELECT isnt(ledger.genesis_hash('tap08'), :'g1'::bytea, 'clearances are part of the genesis');
SELECT ledger.set_peer_clearance('tap08', 'other', 'public');
SELECT is(ledger.genesis_hash('tap08'), :'g1'::bytea, 'changed back: the genesis is as before');

-- ------------------------------------------------------------ read tokens
SELECT throws_ok($$SELECT ledger.reader_clearance('tap08', '\x00', 0, '\x00')$$, '42501',
				 'read token refused', 'a malformed read token is refused');
SELECT throws_ok($$SELECT ledger.reader_clearance('tap08', NULL, 0, NULL)$$, '42501',
				 'read token refused', 'a read token with NULLs is refused (not taken as no clearance)');
SELECT throws_ok(format($$SELECT ledger.reader_clearance('tap08', %L, 0, %L)$$, '\x' || ledger.node_key(), '\x' || repeat('00', 64)),
				 '42501', 'read token refused', 'an old read token is refused');
SELECT throws_ok(format($$SELECT ledger.reader_clearance('tap08', %L, (extract(epoch from now()) * 1000)::bigint, %L)$$,
						'\x' || ledger.node_key(), '\x' || repeat('00', 64)),
				 '42501', 'read token refused', 'a read token with a forged signature is refused');

-- ------------------------------------------------------------ enable_table on a channel with peers
CREATE TABLE tap08_full (id int);
INSERT INTO tap08_full VALUES (1);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_full', 'tap08')$$, '55000', 'table "tap08_full" is not empty',
				 'a non-empty table is refused on a channel with peers');
CREATE TABLE tap08_ref (id int PRIMARY KEY);
CREATE TABLE tap08_fk (id int REFERENCES tap08_ref);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_fk', 'tap08')$$, '0A000', NULL, 'a foreign key is refused');
CREATE TABLE tap08_chk (t timestamptz CHECK (t < now()));
SELECT throws_ok($$SELECT ledger.enable_table('tap08_chk', 'tap08')$$, '0A000', NULL, 'a CHECK calling now() is refused');

-- Members insert each other's rows from their canonical text through the
-- column type's input function: types whose text does not read back are
-- refused with the column and type named.
CREATE TABLE tap08_arr (id int, a int[]);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_arr', 'tap08')$$, '0A000',
				 'column "a" of table "tap08_arr" has type integer[], which the members of channel "tap08" cannot rebuild from its canonical text',
				 'an int[] column is refused on a channel with peers');
CREATE TYPE tap08_pair AS (x int, y text);
CREATE TABLE tap08_comp (id int, p tap08_pair);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_comp', 'tap08')$$, '0A000',
				 'column "p" of table "tap08_comp" has type public.tap08_pair, which the members of channel "tap08" cannot rebuild from its canonical text',
				 'a composite column is refused on a channel with peers');
CREATE TABLE tap08_money (id int, m money);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_money', 'tap08')$$, '0A000',
				 'column "m" of table "tap08_money" has type money, which the members of channel "tap08" cannot rebuild from its canonical text',
				 'a money column is refused on a channel with peers');
CREATE DOMAIN tap08_ints AS int[];
CREATE TABLE tap08_dom (id int, d tap08_ints);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_dom', 'tap08')$$, '0A000',
				 'column "d" of table "tap08_dom" has type public.tap08_ints, which the members of channel "tap08" cannot rebuild from its canonical text',
				 'a domain over an array is refused on a channel with peers');
CREATE TYPE tap08_textrange AS RANGE (subtype = text, collation = "C");
CREATE TABLE tap08_trange (id int, r tap08_textrange);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_trange', 'tap08')$$, '0A000',
				 'column "r" of table "tap08_trange" has type public.tap08_textrange, which the members of channel "tap08" cannot rebuild from its canonical text',
				 'a range over text (bounds quoted with JSON escapes) is refused on a channel with peers');
CREATE DOMAIN tap08_past AS timestamptz CHECK (VALUE <= now());
CREATE TABLE tap08_vdom (id int, at tap08_past);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_vdom', 'tap08')$$, '0A000', NULL,
				 'a domain whose CHECK calls now() is refused on a channel with peers');
CREATE TYPE tap08_colour AS ENUM ('red', 'green');
CREATE DOMAIN tap08_small AS int CHECK (VALUE < 1000);
CREATE TABLE tap08_ok (i int, n numeric(10,2), t text, c char(4), d date, ts timestamptz, tw timestamp,
					   tt timetz, iv interval, b bytea, j jsonb, js json, u uuid, e tap08_colour, f float8,
					   r int4range, tr tstzrange, dr daterange, ok bool, s tap08_small, ip inet, bits varbit);
SELECT lives_ok($$SELECT ledger.enable_table('tap08_ok', 'tap08')$$,
				'scalar types, ranges over them, enums and immutable domains are taken on a channel with peers');
-- each member declares each table of a channel with peers, and the
-- members count at most 1,000 declarations from each
CREATE TABLE tap08_many (i int);
BEGIN;
INSERT INTO ledger.ledger_table (relid, channel_id, table_no, table_name)
SELECT (4000000000 - g)::oid::regclass, c.channel_id, 100000 + g, 'public.tap08_fake' || g
FROM ledger.channel c, generate_series(1, 1000 - (SELECT count(*) FROM ledger.ledger_table t, ledger.channel c2
												 WHERE t.channel_id = c2.channel_id AND c2.name = 'tap08')) g
WHERE c.name = 'tap08';
SELECT throws_ok($$SELECT ledger.enable_table('tap08_many', 'tap08')$$, '54000',
				 'channel "tap08" already has 1000 ledger tables', 'a channel with peers takes at most 1,000 ledger tables');
INSERT INTO ledger.ledger_table (relid, channel_id, table_no, table_name)
SELECT 3999000000::oid::regclass, channel_id, 99999, 'public.tap08_fake0' FROM ledger.channel WHERE name = 'tap08';
SELECT throws_ok(format($$SELECT ledger.add_peer('tap08', 'tap08_more', 'host=x', %L)$$, repeat('7a', 32)), '54000',
				 'channel "tap08" has more than 1000 ledger tables', 'nor does a channel with more tables get peers');
ROLLBACK;
-- ALTER TABLE ... ADD CONSTRAINT on a multi-peer ledger table is judged
-- as enable_table judged the table.
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_past CHECK (ts <= now())$$, '0A000',
				 'constraint "tap08_ok_past" of table "tap08_ok" could decide differently on different peers',
				 'ADD CONSTRAINT of a CHECK calling now() is refused on a multi-peer ledger table');
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_fk FOREIGN KEY (i) REFERENCES tap08_ref$$, '0A000', NULL,
				 'ADD CONSTRAINT of a foreign key is refused on a multi-peer ledger table');
SELECT lives_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_pos CHECK (i > 0)$$,
				'ADD CONSTRAINT of an immutable CHECK is taken');
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_d UNIQUE (i) DEFERRABLE$$, '0A000',
				 'constraint "tap08_ok_d" of table "tap08_ok" could decide differently on different peers',
				 'ADD CONSTRAINT of a deferrable unique key is refused (the peers insert in replica mode, where its check never fired)');
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_dx EXCLUDE USING btree (i WITH =) DEFERRABLE$$, '0A000', NULL,
				 'and so is a deferrable exclusion constraint');
CREATE TABLE tap08_defer (i int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_defer', 'tap08')$$, '0A000', NULL,
				 'enable_table refuses a table with a deferrable primary key');
SELECT lives_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_i UNIQUE (i)$$,
				'ADD CONSTRAINT of a unique key is taken');
-- so is ALTER DOMAIN ... ADD CONSTRAINT on a domain such a table uses
SELECT throws_ok($$ALTER DOMAIN tap08_small ADD CONSTRAINT tap08_small_now CHECK (VALUE < extract(epoch FROM now()))$$,
				 '0A000', NULL,
				 'ALTER DOMAIN ADD CONSTRAINT calling now() is refused on a domain of a multi-peer ledger table');
SELECT lives_ok($$ALTER DOMAIN tap08_small ADD CONSTRAINT tap08_small_pos CHECK (VALUE > -1000)$$,
				'ALTER DOMAIN ADD CONSTRAINT of an immutable CHECK is taken');
-- the check reads the constraint from the catalog: it takes no text the
-- node reader would trust (a malformed node string crashed the server)
SELECT hasnt_function('ledger', 'expression_is_immutable', ARRAY['text'],
					  'no function takes an expression''s text to judge it');
CREATE TABLE tap08_mut (ts timestamptz CHECK (ts <= now()));
SELECT is((SELECT ledger.constraint_is_immutable(oid) FROM pg_constraint
			WHERE conrelid = 'tap08_mut'::regclass AND contype = 'c'), false,
		  'a CHECK calling now() is judged mutable');
SELECT is((SELECT ledger.constraint_is_immutable(oid) FROM pg_constraint WHERE conname = 'tap08_ok_pos'), true,
		  'an immutable CHECK is judged immutable');
SELECT is(ledger.constraint_is_immutable(0), NULL, 'a constraint that does not exist gives NULL');
-- a function body finds names through search_path, which the peers'
-- workers pin (pg_catalog, pg_temp) and the origin's session does not
CREATE FUNCTION tap08_valid(i int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT i > 0 $$;
CREATE FUNCTION tap08_valid_pinned(i int) RETURNS boolean LANGUAGE sql IMMUTABLE
	SET search_path = pg_catalog AS $$ SELECT i > 0 $$;
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_f CHECK (tap08_valid(i))$$, '0A000',
				 'constraint "tap08_ok_f" of table "tap08_ok" could decide differently on different peers',
				 'ADD CONSTRAINT of a CHECK calling an SQL function that does not set its search_path is refused');
SELECT lives_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_g CHECK (tap08_valid_pinned(i))$$,
				'one calling a function that sets its search_path is taken');
CREATE FUNCTION tap08_valid_user(i int) RETURNS boolean LANGUAGE sql IMMUTABLE
	SET search_path = "$user", public AS $$ SELECT i > 0 $$;
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_u CHECK (tap08_valid_user(i))$$, '0A000', NULL,
				 'but not one whose search_path names "$user" (the inserting role on the origin, the owner on peers)');
-- peers compute index expressions, index predicates and stored generated
-- columns again as they insert each row: the same rule holds for them
SELECT throws_ok($$CREATE INDEX tap08_ok_fx ON tap08_ok (tap08_valid(i))$$, '0A000',
				 'index "tap08_ok_fx" of table "tap08_ok" could compute differently on different peers',
				 'CREATE INDEX on an expression calling a function without its own search_path is refused');
SELECT throws_ok($$CREATE UNIQUE INDEX ON tap08_ok (i) WHERE tap08_valid(i)$$, '0A000',
				 'an index of table "tap08_ok" could compute differently on different peers',
				 'so is a partial index whose predicate calls one');
SELECT throws_ok($$ALTER TABLE tap08_ok ADD CONSTRAINT tap08_ok_x EXCLUDE USING btree ((tap08_valid(i)) WITH =)$$,
				 '0A000', 'index "tap08_ok_x" of table "tap08_ok" could compute differently on different peers',
				 'and an exclusion constraint over one');
SELECT lives_ok($$CREATE INDEX tap08_ok_fp ON tap08_ok (tap08_valid_pinned(i))$$,
				'an index on a function that sets its search_path is taken');
SELECT lives_ok($$CREATE INDEX tap08_ok_lp ON tap08_ok (lpad(t, 8))$$,
				'and one on a built-in SQL-language function (lpad(text, int), bound when it was created)');
CREATE TABLE tap08_gen (i int, ok boolean GENERATED ALWAYS AS (tap08_valid(i)) STORED);
SELECT throws_ok($$SELECT ledger.enable_table('tap08_gen', 'tap08')$$, '0A000',
				 'generated column "ok" of table "tap08_gen" could compute differently on different peers',
				 'enable_table refuses a generated column calling a function without its own search_path');
CREATE TABLE tap08_idx (i int);
CREATE INDEX ON tap08_idx (tap08_valid(i));
SELECT throws_ok($$SELECT ledger.enable_table('tap08_idx', 'tap08')$$, '0A000', NULL,
				 'and a table with an index over one');

SELECT ledger.create_channel('tap08_solo', ARRAY['public']);
SELECT lives_ok($$SELECT ledger.enable_table('tap08_arr', 'tap08_solo')$$,
				'an int[] column is still taken on a channel without peers');
SELECT lives_ok($$SELECT ledger.enable_table('tap08_gen', 'tap08_solo')$$,
				'a generated column calling such a function is taken on a channel without peers');
-- ...but that channel cannot then get peers before its first block
-- (add_peer judges its tables as enable_table would have), nor after it
SELECT throws_ok(format($$SELECT ledger.add_peer('tap08_solo', 'self', 'host=x', %L)$$, ledger.node_key()), '0A000',
				 'column "a" of table "tap08_arr" has type integer[], which the members of channel "tap08_solo" cannot rebuild from its canonical text',
				 'add_peer judges the tables a channel without peers already has');
SELECT ledger.create_channel('tap08_sealed', ARRAY['public']);
CREATE TABLE tap08_sealed_t (id int);
SELECT ledger.enable_table('tap08_sealed_t', 'tap08_sealed');
INSERT INTO tap08_sealed_t VALUES (1);
SELECT ledger.wait_sealed();
SELECT throws_ok(format($$SELECT ledger.add_peer('tap08_sealed', 'self', 'host=x', %L)$$, ledger.node_key()), '55000',
				 'channel "tap08_sealed" already has blocks of its own and cannot get peers',
				 'a channel with blocks sealed here alone cannot get peers (no member could vote them in; its worker failed on its genesis)');
SELECT is((SELECT count(*) FROM ledger.peer p JOIN ledger.channel c USING (channel_id) WHERE c.name IN ('tap08_solo', 'tap08_sealed')),
		  0::bigint, 'neither refused call added a peer');

-- ------------------------------------------------------------ unique keys and the lowest clearance
-- The lowest clearance among the members is cached per backend until
-- ledger.peer changes; a change in this very transaction, and its
-- rollback, must both be seen.
CREATE TABLE tap08_key (id int PRIMARY KEY, tier text);
SELECT ledger.enable_table('tap08_key', 'tap08', 'tier');
-- as the members' declarations would (there are none on one server)
INSERT INTO ledger.agreed_table
	SELECT channel_id, table_name, ledger.table_fingerprint(relid), 1
	FROM ledger.ledger_table WHERE relid = 'tap08_key'::regclass;
BEGIN;
SELECT throws_ok($$INSERT INTO tap08_key VALUES (1, 'partner')$$, '0A000', NULL,
				 'a unique-key row above the lowest clearance among the members is refused');
SELECT ledger.set_peer_clearance('tap08', 'other', 'partner');
SELECT lives_ok($$INSERT INTO tap08_key VALUES (2, 'partner')$$,
				'once that member is cleared for it, the same backend takes it');
ROLLBACK;
BEGIN;
SELECT throws_ok($$INSERT INTO tap08_key VALUES (3, 'partner')$$, '0A000', NULL,
				 'and refuses it again once the change is rolled back');
ROLLBACK;

-- ------------------------------------------------------------ agreed table definitions
-- What members agree on about a table: columns and types (enum labels and
-- domain constraints included), constraints, indexes, tier column; not
-- index names or storage parameters, not the session's settings.
CREATE TYPE tap08_shade AS ENUM ('red', 'green');
CREATE DOMAIN tap08_pos AS int CHECK (VALUE > 0);
CREATE TABLE tap08_fp (id int NOT NULL, s tap08_shade, n tap08_pos, t text);
SELECT is(length(ledger.table_fingerprint('tap08_fp')), 32, 'table_fingerprint is a SHA-256');
CREATE TEMP TABLE tap08_fps AS SELECT 'base' AS what, ledger.table_fingerprint('tap08_fp') AS fp;
SET search_path = pg_catalog, public;
SELECT is(ledger.table_fingerprint('public.tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'base'),
		  'the same under another search_path');
RESET search_path;
CREATE UNIQUE INDEX tap08_fp_a ON tap08_fp (t);
INSERT INTO tap08_fps SELECT 'index', ledger.table_fingerprint('tap08_fp');
SELECT isnt((SELECT fp FROM tap08_fps WHERE what = 'index'), (SELECT fp FROM tap08_fps WHERE what = 'base'),
			'a unique index changes it');
DROP INDEX tap08_fp_a;
CREATE UNIQUE INDEX tap08_fp_b ON tap08_fp (t);
SELECT is(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'index'),
		  'the index''s name does not');
ALTER TYPE tap08_shade ADD VALUE 'blue';
SELECT isnt(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'index'),
			'an enum label added changes it');
INSERT INTO tap08_fps SELECT 'label', ledger.table_fingerprint('tap08_fp');
ALTER DOMAIN tap08_pos ADD CONSTRAINT tap08_small CHECK (VALUE < 100);
SELECT isnt(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'label'),
			'a domain constraint added changes it');
INSERT INTO tap08_fps SELECT 'domain', ledger.table_fingerprint('tap08_fp');
ALTER TABLE tap08_fp ADD CONSTRAINT tap08_fp_n CHECK (n <> 7);
SELECT isnt(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'domain'),
			'a table constraint added changes it');
INSERT INTO tap08_fps SELECT 'check', ledger.table_fingerprint('tap08_fp');
ALTER TABLE tap08_fp ALTER COLUMN t TYPE text COLLATE "C";
SELECT isnt(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'check'),
			'a column''s collation changes it');
INSERT INTO tap08_fps SELECT 'collation', ledger.table_fingerprint('tap08_fp');
CREATE FUNCTION tap08_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER "a trigger" BEFORE INSERT ON tap08_fp FOR EACH ROW EXECUTE FUNCTION tap08_trg();
SELECT isnt(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'collation'),
			'a trigger changes it');
INSERT INTO tap08_fps SELECT 'trigger', ledger.table_fingerprint('tap08_fp');
CREATE INDEX tap08_fp_c ON tap08_fp (id);
SELECT isnt(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'trigger'),
			'a plain index changes it (an index can refuse a row: an expression, an entry over the size limit)');
INSERT INTO tap08_fps SELECT 'plain', ledger.table_fingerprint('tap08_fp');
ALTER INDEX tap08_fp_c SET (fillfactor = 70, deduplicate_items = off);
ALTER INDEX tap08_fp_b SET (fillfactor = 80);
SELECT is(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'plain'),
		  'storage parameters of indexes do not');
ALTER TABLE tap08_fp ADD CONSTRAINT tap08_fp_since CHECK (id > 0 OR t > '2026-01-01 12:00+09'::timestamptz::text) NOT VALID;
INSERT INTO tap08_fps SELECT 'notvalid', ledger.table_fingerprint('tap08_fp');
SET TimeZone = 'Asia/Seoul';
SET DateStyle = 'German';
SET IntervalStyle = 'sql_standard';
SELECT is(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'notvalid'),
		  'nor the session''s TimeZone, DateStyle and IntervalStyle, which print constants');
RESET TimeZone;
RESET DateStyle;
RESET IntervalStyle;
ALTER TABLE tap08_fp VALIDATE CONSTRAINT tap08_fp_since;
SELECT is(ledger.table_fingerprint('tap08_fp'), (SELECT fp FROM tap08_fps WHERE what = 'notvalid'),
		  'nor whether a CHECK was validated for older rows (new rows are checked all the same)');
CREATE TABLE tap08_coll (t text);
SELECT matches(ledger.table_definition('tap08_coll'),
			   E'\ndefault collation [a-z] \\S+ \\S+', 'a column under the default collation brings in what the database''s collation is');
SELECT is(ledger.definition_clause($$PRIMARY KEY (id) WITH (fillfactor='70', deduplicate_items=off) USING INDEX TABLESPACE "my space"$$),
		  'PRIMARY KEY (id)', 'definition_clause drops storage parameters and the tablespace');
SELECT is(ledger.definition_clause($$CHECK ((note <> ' WITH (a=b)'::text))$$), $$CHECK ((note <> ' WITH (a=b)'::text))$$,
		  'definition_clause leaves what looks like storage parameters inside a literal alone');
INSERT INTO tap08_fps SELECT 'coll', ledger.table_fingerprint('tap08_coll');
ALTER TABLE tap08_coll ALTER COLUMN t SET STORAGE PLAIN;
SELECT isnt(ledger.table_fingerprint('tap08_coll'), (SELECT fp FROM tap08_fps WHERE what = 'coll'),
			'a column''s storage changes it (a row too big for a page is refused)');
CREATE TABLE tap08_bs (t text CHECK (t <> 'a\b'));
INSERT INTO tap08_fps SELECT 'bs', ledger.table_fingerprint('tap08_bs');
SET standard_conforming_strings = off;
SET quote_all_identifiers = on;
SELECT is(ledger.table_fingerprint('tap08_bs'), (SELECT fp FROM tap08_fps WHERE what = 'bs'),
		  'nor standard_conforming_strings off and quote_all_identifiers on in the session');
RESET standard_conforming_strings;
RESET quote_all_identifiers;
CREATE FUNCTION public.convert_to(text, text) RETURNS bytea LANGUAGE sql AS $$SELECT '\x00'::bytea$$;
SELECT is(ledger.table_fingerprint('tap08_bs'), (SELECT fp FROM tap08_fps WHERE what = 'bs'),
		  'a function in public named like one it calls is not called');
DROP FUNCTION public.convert_to(text, text);
SELECT is(ledger.table_fingerprint(2147483000::oid::regclass), NULL, 'a relation that does not exist has none');
SELECT matches(ledger.type_signature('tap08_pos'::regtype, -1),
			   '^public\.tap08_pos domain \(integer CHECK \(\(VALUE < 100\)\) CHECK \(\(VALUE > 0\)\)\)$',
			   'type_signature names a domain''s base type and constraints');

-- Rows of a multi-peer table are taken only under the agreed definition
-- (in transactions rolled back: a commit would wait for the channel).
CREATE TABLE tap08_def (id int, tier text);
SELECT ledger.enable_table('tap08_def', 'tap08', 'tier');
BEGIN;
SELECT throws_ok($$INSERT INTO tap08_def VALUES (1, 'public')$$, '55000',
				 'ledger table "public.tap08_def" of channel "tap08" has no agreed definition yet',
				 'a row of a table with no agreed definition is refused');
SELECT is((SELECT state || ' ' || declared_by FROM ledger.table_definitions WHERE table_name = 'public.tap08_def'),
		  'not agreed 0', 'ledger.table_definitions: not agreed, declared by nobody');
ROLLBACK;
INSERT INTO ledger.agreed_table
	SELECT channel_id, table_name, '\x00'::bytea || substr(ledger.table_fingerprint(relid), 2), 5
	FROM ledger.ledger_table WHERE relid = 'tap08_def'::regclass;
BEGIN;
SELECT throws_ok($$INSERT INTO tap08_def VALUES (2, 'public')$$, '55000', NULL,
				 'a row of a table defined here unlike the agreed definition is refused');
ROLLBACK;
SELECT is((SELECT state FROM ledger.table_definitions WHERE table_name = 'public.tap08_def'),
		  'differs here', 'ledger.table_definitions: differs here');
UPDATE ledger.agreed_table SET fingerprint = ledger.table_fingerprint('tap08_def')
	WHERE table_name = 'public.tap08_def';
SELECT is((SELECT state || ' ' || since_height FROM ledger.table_definitions WHERE table_name = 'public.tap08_def'),
		  'agreed 5', 'ledger.table_definitions: agreed, and from which height');
BEGIN;
SELECT lives_ok($$INSERT INTO tap08_def VALUES (3, 'public')$$,
				'a row of a table defined as agreed passes the check (the same backend: its cache was invalidated)');
ROLLBACK;
-- The INSERT check computes the fingerprint as the owner: a writer's
-- temporary view named like a catalog must not stand in for it there (a
-- session's temporary schema comes first unless the path names it).
CREATE SEQUENCE tap08_escalated;
GRANT USAGE, UPDATE, SELECT ON SEQUENCE tap08_escalated TO tap08_user;
GRANT INSERT, SELECT ON tap08_def TO tap08_user;
SELECT ledger.grant_clearance('tap08', 'tap08_user', 'public');
SET ROLE tap08_user;
CREATE FUNCTION pg_temp.tap08_probe() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		PERFORM nextval('public.tap08_escalated');
	END IF;
	RETURN true;
END $$;
CREATE TEMP VIEW pg_attribute AS
	SELECT attrelid, attname, atttypid, atttypmod, attcollation, attnotnull, attgenerated,
		   attcompression, attstorage, attnum, attisdropped
	FROM pg_catalog.pg_attribute WHERE pg_temp.tap08_probe();
BEGIN;
SELECT lives_ok($$INSERT INTO tap08_def VALUES (4, 'public')$$,
				'a writer with a temporary view named pg_attribute inserts as before');
ROLLBACK;
RESET ROLE;
SELECT is((SELECT is_called FROM tap08_escalated), false,
		  '... and the check, run as the owner, never read that view');
SELECT cmp_ok((SELECT count(*) FROM pg_attribute), '>', 0::bigint, 'a superuser reading pg_attribute here reads the view');
SELECT is((SELECT is_called FROM tap08_escalated), true, '... which the probe notices (so the check above can fail)');
DROP VIEW pg_temp.pg_attribute;
SELECT is((SELECT count(*)::int FROM pg_proc p, unnest(p.proconfig) c
			WHERE p.pronamespace = 'ledger'::regnamespace AND c LIKE 'search\_path=%'
			  AND c NOT LIKE '%pg\_temp'), 0,
		  'every ledger function that sets search_path names pg_temp last');
INSERT INTO ledger.agreed_table VALUES ((SELECT channel_id FROM ledger.channel WHERE name = 'tap08'), 'public.elsewhere', '\x01', 9);
SELECT is((SELECT state FROM ledger.table_definitions WHERE table_name = 'public.elsewhere'),
		  'missing here', 'ledger.table_definitions: an agreed table this node lacks is missing here');
SET ROLE tap08_user;
SELECT throws_ok($$INSERT INTO ledger.agreed_table VALUES (1, 'x', '\x00', 1)$$, '42501', NULL,
				 'ledger.agreed_table is not writable by everybody');
SELECT throws_ok($$DELETE FROM ledger.table_vote$$, '42501', NULL, 'nor is ledger.table_vote');
SELECT lives_ok($$SELECT * FROM ledger.table_definitions$$, 'ledger.table_definitions is readable by everybody');
RESET ROLE;

-- ------------------------------------------------------------ logins bound to members
SELECT throws_ok($$SELECT ledger.set_peer_login('tap08', 'nobody', 'loopledger_peer')$$, '42704',
				 'channel "tap08" has no peer named "nobody"', 'set_peer_login of an unknown peer');
SELECT throws_ok($$SELECT ledger.set_peer_login('tap08', 'other', 'postgres')$$, '22023',
				 'role "postgres" is not a member of loopledger_peer', 'set_peer_login of a role that is not a peer login');
SELECT lives_ok($$SELECT ledger.set_peer_login('tap08', 'other', 'loopledger_peer')$$, 'set_peer_login binds a peer login');
SELECT throws_ok($$SELECT ledger.set_peer_conninfo('tap08', 'other', 'host')$$, '22023',
				 'invalid connection string for peer "other"', 'set_peer_conninfo refuses what libpq cannot read');
SELECT throws_ok($$SELECT ledger.set_peer_conninfo('tap08', 'other', 'host=' || repeat('x', 1024))$$, '22023',
				 'connection string for peer "other" is too long', 'set_peer_conninfo refuses what the worker cannot hold');
SELECT throws_ok($$SELECT ledger.set_peer_conninfo('tap08', 'nobody', 'host=x')$$, '42704',
				 'channel "tap08" has no current peer named "nobody"', 'set_peer_conninfo of an unknown peer');
SELECT lives_ok($$SELECT ledger.set_peer_conninfo('tap08', 'other', 'host=127.0.0.1 port=5999')$$, 'set_peer_conninfo sets it');
SELECT is((SELECT login::text FROM ledger.peer WHERE name = 'other' AND channel_id =
			(SELECT channel_id FROM ledger.channel WHERE name = 'tap08')), 'loopledger_peer', '... recorded in ledger.peer');
SELECT ledger.set_peer_login('tap08', 'other', NULL);

-- ------------------------------------------------------------ clearance by height
-- What catch-up serves a member of each height (ledger.reader_tier_at): the
-- higher of its clearance now and its clearance at that height.  Rows are
-- written here as the worker writes them when changes are decided.
SELECT ledger.create_channel('tap08h', ARRAY['public', 'partner', 'customs']);
INSERT INTO ledger.peer (channel_id, name, pubkey, conninfo, clearance, since_height, genesis_clearance)
SELECT channel_id, n, decode(repeat(k, 32), 'hex'), 'host=x', c, s, g
  FROM ledger.channel, (VALUES ('gen', '11', 'public', 0, 'customs'),
							   ('late', '22', 'public', 30, 'partner')) v(n, k, c, s, g)
 WHERE name = 'tap08h';
INSERT INTO ledger.peer_clearance
SELECT channel_id, decode(repeat(k, 32), 'hex'), h, c
  FROM ledger.channel, (VALUES ('11', 11, 'public'), ('22', 29, 'customs'), ('22', 41, 'public')) v(k, h, c)
 WHERE name = 'tap08h';
CREATE FUNCTION pg_temp.tier_at(k text, h bigint, now_tier int) RETURNS int LANGUAGE sql AS $$
	SELECT ledger.reader_tier_at((SELECT channel_id FROM ledger.channel WHERE name = 'tap08h'),
								 decode(repeat(k, 32), 'hex'), h, now_tier)
$$;
SELECT is(pg_temp.tier_at('11', 10, 0), 2, 'a genesis member lowered at height 11 reads height 10 at its genesis clearance');
SELECT is(pg_temp.tier_at('11', 11, 0), 0, '  and height 11 at the lowered one');
SELECT is(pg_temp.tier_at('11', 11, 1), 1, '  unless its clearance now is higher (raised again: it reaches back)');
SELECT is(pg_temp.tier_at('22', 5, 0), 2,
		  'a member admitted later reads the heights before its admission at its first agreed clearance');
SELECT is(pg_temp.tier_at('22', 40, 0), 2, '  and keeps it until the change');
SELECT is(pg_temp.tier_at('22', 41, 0), 0, '  then the lowered one');
SELECT is(pg_temp.tier_at('33', 41, 1), 1, 'a key with no history reads at its clearance now');

-- ------------------------------------------------------------ what a peer may send
SELECT throws_ok($$SELECT ledger.deliver('tap08', '\x00'::bytea, '\x00'::bytea)$$, '22023',
				 'sender must be a 32-byte public key', 'deliver checks the sender''s length');

SELECT * FROM finish();
