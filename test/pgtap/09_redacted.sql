-- Entries held only as a commitment (flag LL_ENTRY_REDACTED): the copy of
-- a member not cleared for a row's tier.  One node plays that member: rows
-- are written and sealed while it is "cleared", a disclosure (ledger.proof)
-- is taken, then a superuser rewrites the block's packed entry as the
-- consensus apply path writes it on an uncleared peer (flag set, salt
-- zeroed) and deletes the row bypassing the guards.  Then: verify stays
-- clean, the digest is unchanged, history/block_entries/proof show the
-- redaction, and ledger.verify_disclosure() checks the disclosure against
-- the stored commitment, refusing altered disclosures and garbage.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(140);

-- {sqlstate, message, detail, hint} of a statement's error, NULLs when it
-- worked; the statement is always rolled back.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hin text;
BEGIN
	BEGIN
		EXECUTE stmt;
		RAISE EXCEPTION 'tap09: no error' USING ERRCODE = 'P0099';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
								det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
	END;
	IF st = 'P0099' THEN RETURN ARRAY[NULL, NULL, NULL, NULL]::text[]; END IF;
	RETURN ARRAY[st, msg, nullif(det, ''), nullif(hin, '')];
END $$;
-- what verify_disclosure made of a document: 'true', 'false', 'null' or the SQLSTATE
CREATE FUNCTION pg_temp.outcome(d jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r boolean;
BEGIN
	r := ledger.verify_disclosure(d);
	RETURN coalesce(r::text, 'null');
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
-- problems of a channel as "height: problem" lines
CREATE FUNCTION pg_temp.problems(ch text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(coalesce(block_height::text, 'NULL') || ': ' || problem, E'\n' ORDER BY block_height, problem), '(none)')
	  FROM ledger.verify(ch) $$;
-- packed entry number pos (62 bytes: u64 entry | u32 table_no | u8 tier |
-- u8 flags | commitment[32] | salt[16]) with the redacted flag and no salt
CREATE FUNCTION pg_temp.redact(entries bytea, pos int) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT overlay(set_byte(entries, pos * 62 + 13, get_byte(entries, pos * 62 + 13) | 1)
				   PLACING '\x00000000000000000000000000000000'::bytea FROM pos * 62 + 47 FOR 16) $$;
-- rewrite the packed entries of one block of a channel, bypassing the guard
CREATE FUNCTION pg_temp.rewrite_block(ch text, h bigint, f text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	ALTER TABLE ledger.block DISABLE TRIGGER block_append_only;
	EXECUTE format('UPDATE ledger.block b SET entries = %s FROM ledger.channel c
					 WHERE c.channel_id = b.channel_id AND c.name = $1 AND b.height = $2', f) USING ch, h;
	ALTER TABLE ledger.block ENABLE TRIGGER block_append_only;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tap09_clerk') THEN
		CREATE ROLE tap09_clerk;
	END IF;
END $$;

SELECT ledger.create_channel('tap09', ARRAY['public', 'partner', 'customs']) \g /dev/null
SELECT ledger.create_channel('tap09_other', ARRAY['public', 'partner', 'customs']) \g /dev/null
SELECT ledger.create_channel('tap09_bad', ARRAY['public', 'customs']) \g /dev/null
CREATE TABLE tap09_t (id int, v text, n numeric, tier text DEFAULT 'public');
CREATE TABLE tap09_o (id int, v text, n numeric, tier text DEFAULT 'public');
CREATE TABLE tap09_b (id int, tier text DEFAULT 'public');
SELECT ledger.enable_table('tap09_t', 'tap09', 'tier') \g /dev/null
SELECT ledger.enable_table('tap09_o', 'tap09_other', 'tier') \g /dev/null
SELECT ledger.enable_table('tap09_b', 'tap09_bad', 'tier') \g /dev/null
GRANT SELECT ON tap09_t TO tap09_clerk;
-- block A: ids 1-5 at every tier (id 3, customs, is the one to redact); block B: 6, 7
INSERT INTO tap09_t VALUES (1, 'one', 1.5, 'public'), (2, 'two', NULL, 'partner'), (3, 'three', 3.25, 'customs'),
						   (4, 'four', 4, 'customs'), (5, NULL, 5, 'public');
INSERT INTO tap09_t VALUES (6, 'six', 6, 'partner'), (7, 'seven', 7, 'public');
INSERT INTO tap09_o VALUES (1, 'one', 1.5, 'public'), (2, 'two', NULL, 'partner'), (3, 'three', 3.25, 'customs'),
						   (4, 'four', 4, 'customs'), (5, NULL, 5, 'public');
INSERT INTO tap09_b VALUES (1, 'public'), (2, 'customs'), (3, 'customs');
SELECT ledger.wait_sealed() \g /dev/null

SELECT ledger_entry AS e3 FROM tap09_t WHERE id = 3 \gset
SELECT ledger_entry AS e2 FROM tap09_t WHERE id = 2 \gset
SELECT ledger_entry AS e4 FROM tap09_t WHERE id = 4 \gset
SELECT ledger_entry AS e6 FROM tap09_t WHERE id = 6 \gset
-- the disclosure, taken while this node still holds the row
CREATE TEMP TABLE disc AS
SELECT t.id, ledger.proof('tap09', t.ledger_entry) AS d FROM tap09_t t;
CREATE TEMP TABLE other_disc AS
SELECT t.id, ledger.proof('tap09_other', t.ledger_entry) AS d FROM tap09_o t;
SELECT d AS d3 FROM disc WHERE id = 3 \gset
SELECT (d->>'height')::bigint AS h3, (d->>'position')::int AS p3, d->>'leaf_hash' AS leaf3 FROM disc WHERE id = 3 \gset
SELECT ledger.digest('tap09') AS digest0 \gset
SELECT count(*) AS history_rows0 FROM ledger.history('tap09_t') \gset

SELECT is(pg_temp.problems('tap09'), '(none)', 'the channel verifies clean before the redaction');
SELECT ok(ledger.verify_disclosure(:'d3'), 'verify_disclosure of a fresh proof is true on the node that made it');
SELECT is((SELECT count(*) FROM ledger.block_entries('tap09') WHERE redacted), 0::bigint, 'block_entries: nothing redacted yet');
SELECT is((SELECT count(*) FROM ledger.block_entries('tap09') WHERE redacted IS NULL OR salt IS NULL), 0::bigint,
		  'block_entries: every entry has redacted = false and a salt');
SELECT is((SELECT count(DISTINCT block_height) FROM ledger.block_entries('tap09') WHERE entry BETWEEN :e2 AND :e4), 1::bigint,
		  'ids 2, 3 and 4 share a block');

-- ------------------------------------------------ become the uncleared peer
-- a member cleared for partner (a row in ledger.peer, as add_peer makes
-- it; one member alone starts no consensus worker)
INSERT INTO ledger.peer (channel_id, name, pubkey, conninfo, clearance, since_height, genesis_clearance)
SELECT channel_id, 'self', decode(ledger.node_key(), 'hex'), '', 'partner', 0, 'partner'
  FROM ledger.channel WHERE name = 'tap09';
SELECT pg_temp.rewrite_block('tap09', :h3, format('pg_temp.redact(b.entries, %s)', :p3)) \g /dev/null
SET session_replication_role = replica;
DELETE FROM tap09_t WHERE id = 3;
RESET session_replication_role;

-- verify and digest
SELECT is(pg_temp.problems('tap09'), '(none)', 'verify: clean with the row held only as a commitment');
SELECT is(ledger.digest('tap09'), :'digest0'::jsonb, 'digest unchanged');
SELECT ok(ledger.verify_digest(:'digest0'), 'the digest taken before still verifies');

-- block_entries
SELECT is((SELECT array_agg(entry) FROM ledger.block_entries('tap09') WHERE redacted), ARRAY[:e3]::bigint[],
		  'block_entries: exactly the redacted entry has redacted = true');
SELECT is((SELECT salt FROM ledger.block_entries('tap09') WHERE entry = :e3), NULL::bytea, 'block_entries: its salt is NULL');
SELECT is((SELECT encode(row_hash, 'hex') FROM ledger.block_entries('tap09') WHERE entry = :e3), :'leaf3',
		  'block_entries: its row_hash is still the commitment');
SELECT is((SELECT ROW(block_height, "position", tier) FROM ledger.block_entries('tap09') WHERE entry = :e3)::text,
		  ROW(:h3::bigint, :p3, 'customs')::text, 'block_entries: same block, position and tier');
SELECT is((SELECT count(*) FROM ledger.block_entries('tap09') WHERE NOT redacted AND salt IS NOT NULL), (SELECT count(*) FROM tap09_t),
		  'block_entries: every other entry is unchanged (redacted = false, salt present)');

-- history
SELECT is((SELECT count(*) FROM ledger.history('tap09_t')), :history_rows0::bigint, 'history: as many rows as before');
SELECT is((SELECT status FROM ledger.history('tap09_t') WHERE entry = :e3), 'redacted', 'history: status redacted');
SELECT is((SELECT encode(row_hash, 'hex') FROM ledger.history('tap09_t') WHERE entry = :e3), :'leaf3', 'history: row_hash is the commitment');
SELECT is((SELECT ROW(block_height, "position", tier) FROM ledger.history('tap09_t') WHERE entry = :e3)::text,
		  ROW(:h3::bigint, :p3, 'customs')::text, 'history: block_height, position and tier');
SELECT is((SELECT committed_at FROM ledger.history('tap09_t') WHERE entry = :e3),
		  (SELECT committed_at FROM ledger.history('tap09_t') WHERE entry = :e2), 'history: committed_at is its block''s');
SELECT ok((SELECT committed_at IS NOT NULL FROM ledger.history('tap09_t') WHERE entry = :e3), 'history: committed_at is set');
SELECT is((SELECT row_data FROM ledger.history('tap09_t') WHERE entry = :e3), NULL::jsonb, 'history: row_data is NULL');
SELECT is((SELECT array_agg(entry ORDER BY o) FROM ledger.history('tap09_t') WITH ORDINALITY AS h(entry, bh, pos, rh, ca, st, ti, rd, o)),
		  (SELECT array_agg(entry ORDER BY block_height, "position") FROM ledger.block_entries('tap09')),
		  'history: every entry in chain order, the redacted one in its place');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM ledger.history('tap09_t') WHERE entry <> :e3), 'sealed',
		  'history: the other rows are sealed');

-- proof
SELECT is(pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap09', :e3)),
		  ARRAY['55000', format('entry %s of channel "tap09" is held here only as a commitment', :e3),
				format('This node is not cleared for tier "customs", so it stores the commitment of the row in block %s but not the row.', :h3),
				'Ask a member cleared for tier "customs" for a disclosure (ledger.proof() on its node) and check it here with ledger.verify_disclosure().'],
		  'proof of the redacted entry: SQLSTATE 55000 with message, detail and hint');
SELECT throws_ok(format('SELECT ledger.proof(%L, %s, %s)', 'tap09', :e3, :h3), '55000', NULL,
				 'proof with upto of the redacted entry: the same error');
SELECT is((ledger.proof('tap09', :e2))->>'leaf_hash', (SELECT d->>'leaf_hash' FROM disc WHERE id = 2),
		  'proof of another row of the same block still works');
SELECT ok(ledger.verify_disclosure(ledger.proof('tap09', :e2)), 'and that proof verifies as a disclosure');
-- a role under row-level security (no clearance: public tier only)
SET ROLE tap09_clerk;
SELECT is((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap09', :e3)))[1:2],
		  ARRAY['55000', format('entry %s of channel "tap09" is held here only as a commitment', :e3)],
		  'proof as a role under row-level security: the redacted error, not "has no entry"');
SELECT is((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap09', :e4)))[1:2],
		  ARRAY['42704', format('channel "tap09" has no entry %s', :e4)],
		  'a hidden (not redacted) row is still "has no entry" for that role');
SELECT is((SELECT status FROM ledger.history('tap09_t') WHERE entry = :e3), 'redacted',
		  'history as that role lists the redacted entry (only what ledger.block shows to everyone)');
SELECT is((SELECT count(*) FROM ledger.history('tap09_t') WHERE entry = :e4), 0::bigint, 'history as that role still hides the hidden row');
SELECT ok(ledger.verify_disclosure(:'d3'), 'verify_disclosure works for that role');
RESET ROLE;

-- ------------------------------------------------ verify_disclosure: matches
SELECT ok(ledger.verify_disclosure(:'d3'), 'the disclosure verifies against the stored commitment');
SELECT is((SELECT count(*) FROM disc WHERE id <> 3 AND ledger.verify_disclosure(d)), 6::bigint,
		  'the disclosures of the six held rows verify too');
SELECT ok(ledger.verify_disclosure(ledger.proof('tap09', :e6, (SELECT (d->>'height')::bigint FROM disc WHERE id = 6))),
		  'a disclosure with upto = its own block verifies');
-- the discloser is one block ahead: a next header this node does not have yet, correctly hashed
CREATE TEMP TABLE ahead AS
SELECT jsonb_set(d, '{blocks}', (d->'blocks') || jsonb_build_object(
		'height', (lb->>'height')::bigint + 1, 'prev_hash', lb->>'hash', 'merkle_root', encode(sha256('x'), 'hex'),
		'time_us', (lb->>'time_us')::bigint + 1, 'tx_count', 1, 'row_count', 1, 'config_hash', lb->>'config_hash',
		'hash', encode(ledger.header_hash('tap09', (lb->>'height')::bigint + 1, decode(lb->>'hash', 'hex'), sha256('x'),
										  (lb->>'time_us')::bigint + 1, 1, 1, decode(lb->>'config_hash', 'hex')), 'hex'))) AS d
  FROM disc, LATERAL (SELECT d->'blocks'->-1 AS lb) x WHERE id = 3;
SELECT ok((SELECT ledger.verify_disclosure(d) FROM ahead), 'a disclosure with a block beyond this node''s head verifies');
SELECT ok((SELECT NOT ledger.verify_disclosure(jsonb_set(d, '{blocks,-1,hash}', to_jsonb(repeat('0', 64)))) FROM ahead),
		  'but not when that block''s header does not hash to its recorded hash');

-- ------------------------------------------ verify_disclosure: mismatches
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{columns,1,value}', '"THREE"')), 'changed column value: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{columns,2,value}', 'null')), 'column value changed to null: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{columns,1,name}', '"w"')), 'changed column name: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{columns}', (:'d3'::jsonb->'columns') - 1)), 'a column left out: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{salt}', to_jsonb(repeat('0', 32)))), 'zero salt: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{salt}', to_jsonb(overlay(:'d3'::jsonb->>'salt' PLACING
			CASE WHEN left(:'d3'::jsonb->>'salt', 1) = 'a' THEN 'b' ELSE 'a' END FROM 1 FOR 1)))), 'salt with one digit changed: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{tier}', '"partner"')), 'changed tier: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{table}', '"public.tap09_o"')), 'changed table: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{position}', to_jsonb(:p3 + 1))), 'wrong position (another entry): false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{position}', to_jsonb(1000))), 'position outside the block: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{height}', to_jsonb(:h3 + 1))), 'wrong height: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(jsonb_set(:'d3', '{height}', to_jsonb(:h3 + 1)), '{blocks}', (:'d3'::jsonb->'blocks') - 0)),
		  'wrong height, headers starting there: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(jsonb_set(:'d3', '{height}', to_jsonb(99999)), '{blocks,0,height}', to_jsonb(99999))),
		  'a height this node does not have: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{blocks,0}', (SELECT d->'blocks'->0 FROM other_disc WHERE id = 3))),
		  'header from another chain: false');
-- headers consistent in themselves (re-hashed) but not this node's block
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{blocks}', jsonb_build_array(jsonb_set(b0, '{hash}',
			to_jsonb(encode(ledger.header_hash('tap09', (b0->>'height')::bigint, decode(b0->>'prev_hash', 'hex'),
											   decode(b0->>'merkle_root', 'hex'), (b0->>'time_us')::bigint, (b0->>'tx_count')::int,
											   (b0->>'row_count')::int, decode(b0->>'config_hash', 'hex')), 'hex')))))),
		  'a header re-hashed after a change, not this node''s block: false')
  FROM (SELECT jsonb_set(:'d3'::jsonb->'blocks'->0, '{time_us}', to_jsonb((:'d3'::jsonb->'blocks'->0->>'time_us')::bigint + 1)) AS b0) x;
SELECT ok(NOT ledger.verify_disclosure(jsonb_set((SELECT d FROM other_disc WHERE id = 3), '{channel}', '"tap09"')),
		  'a whole disclosure of another chain, relabelled: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{blocks,0,time_us}', to_jsonb((:'d3'::jsonb->'blocks'->0->>'time_us')::bigint + 1))),
		  'header field changed: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{blocks,1,prev_hash}', to_jsonb(repeat('0', 64)))),
		  'later header not linked: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{leaf_hash}', to_jsonb(repeat('0', 64)))), 'wrong leaf_hash: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{path,0}', to_jsonb(repeat('0', 64)))), 'changed audit path: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{path}', (:'d3'::jsonb->'path') - -1)), 'shortened audit path: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{tree_size}', to_jsonb((:'d3'::jsonb->>'tree_size')::int + 1))), 'wrong tree_size: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set(:'d3', '{entry}', to_jsonb(:e4))), 'another entry number: false');
SELECT ok(NOT ledger.verify_disclosure(jsonb_set((SELECT d FROM disc WHERE id = 4), '{columns}', :'d3'::jsonb->'columns')),
		  'row of one entry with the position of another: false');

-- ------------------------------------------ verify_disclosure: bad input
SELECT is(ledger.verify_disclosure(NULL), NULL, 'NULL in, NULL out');
SELECT is(pg_temp.outcome(x), '22023', 'not an object: ' || x::text)
  FROM unnest(ARRAY['{}', '[]', '1', '"x"', 'null', 'true', '[{"version": 1}]']::jsonb[]) x;
SELECT is(pg_temp.outcome(:'d3'::jsonb - k), '22023', 'field "' || k || '" missing: 22023')
  FROM unnest(ARRAY['version', 'channel', 'entry', 'table', 'tier', 'salt', 'columns', 'leaf_hash', 'height',
					'position', 'tree_size', 'path', 'blocks']) k;
SELECT is(pg_temp.outcome(jsonb_set(:'d3', p::text[], v)), '22023', 'bad ' || p || ' = ' || v::text || ': 22023')
  FROM (VALUES ('{version}', '2'), ('{version}', '"1"'), ('{version}', '1.0'), ('{channel}', '7'),
			   ('{entry}', '0'), ('{entry}', '-1'), ('{entry}', '1.5'), ('{entry}', '1e400'), ('{entry}', '"5"'),
			   ('{entry}', '99999999999999999999'), ('{table}', 'null'), ('{tier}', '[]'),
			   ('{salt}', '"xyz"'), ('{salt}', to_jsonb(repeat('0', 30))), ('{salt}', to_jsonb(repeat('g', 32))),
			   ('{columns}', '{}'), ('{columns}', '"id"'), ('{columns,0}', '"id"'), ('{columns,0,value}', '3'),
			   ('{columns,0,value}', '{"a": 1}'), ('{columns,0,name}', 'null'),
			   ('{leaf_hash}', to_jsonb(repeat('0', 63))), ('{height}', '-1'), ('{height}', '9223372036854775808'),
			   ('{position}', '4294967296'), ('{tree_size}', 'true'), ('{path}', '"abc"'), ('{path,0}', '12'),
			   ('{path}', (SELECT jsonb_agg(repeat('0', 64)) FROM generate_series(1, 33))),
			   ('{blocks}', '[]'), ('{blocks}', '{}'), ('{blocks,0}', '5'), ('{blocks,0,hash}', '"00"'),
			   ('{blocks,0,time_us}', '-5'), ('{blocks,0,tx_count}', '4294967296'), ('{blocks,0,merkle_root}', 'null'))
	   AS x(p, v);
SELECT is((pg_temp.try($$SELECT ledger.verify_disclosure('{"version": 1}')$$))[2:4],
		  ARRAY['invalid disclosure: field "channel" is missing', NULL,
				'Pass the jsonb that ledger.proof() returns on a node cleared for the row.'],
		  'a missing field: message names it, hint says what to pass');
SELECT is(pg_temp.outcome(jsonb_set(:'d3', '{channel}', '"tap09_nosuch"')), '42704', 'unknown channel: 42704 like the other functions');
-- never a crash: every field of the disclosure replaced by every JSON type
SELECT is((SELECT count(*) FROM jsonb_object_keys(:'d3') k,
				  unnest(ARRAY['null', 'true', '0', '-1', '1.5', '""', '"zz"', '[]', '{}', '[[]]', '[{}]', '[null]']::jsonb[]) v
			WHERE pg_temp.outcome(jsonb_set(:'d3', ARRAY[k], v)) NOT IN ('22023', '42704', 'false')), 0::bigint,
		  'every field replaced by every JSON type: false, 22023 or (channel) 42704, never anything else');
SELECT is((SELECT count(*) FROM jsonb_object_keys(:'d3'::jsonb->'blocks'->0) k,
				  unnest(ARRAY['null', 'true', '0', '-1', '1.5', '""', '"zz"', '[]', '{}']::jsonb[]) v
			WHERE pg_temp.outcome(jsonb_set(:'d3', ARRAY['blocks', '0', k], v)) NOT IN ('22023', '42704', 'false')), 0::bigint,
		  'every header field replaced by every JSON type: false or an error, never anything else');
SELECT ok(ledger.verify_disclosure(:'d3'), 'after all that the disclosure still verifies');

-- ------------------------------------------ a row present for a redacted entry
SET session_replication_role = replica;
INSERT INTO tap09_t (id, v, n, tier, ledger_entry) VALUES (3, 'three', 3.25, 'customs', :e3);
RESET session_replication_role;
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09') WHERE block_height = :h3 AND problem ~ 'public\.tap09_t'
				  AND problem ~ format('row with entry %s exists', :e3) AND problem ~ 'only as a commitment'),
		  'a row with a redacted entry''s number: verify reports it in the entry''s block, naming the table');
SELECT is((SELECT count(*) FROM ledger.verify('tap09')), 1::bigint, 'exactly one problem');
SELECT is((SELECT count(*) FROM ledger.history('tap09_t') WHERE entry = :e3 AND status = 'redacted'), 1::bigint,
		  'history still shows the entry as redacted');
SELECT is((SELECT status FROM ledger.history('tap09_t') WHERE entry = :e3 AND row_data IS NOT NULL), 'uncommitted',
		  'and the stray row as not in the chain (uncommitted)');
SELECT throws_ok(format('SELECT ledger.proof(%L, %s)', 'tap09', :e3), '55000', NULL, 'proof is still refused');
SET session_replication_role = replica;
DELETE FROM tap09_t WHERE id = 3;
RESET session_replication_role;
SELECT is(pg_temp.problems('tap09'), '(none)', 'clean again once the stray row is gone');

-- ------------------------------------------ still strict about everything else
SELECT ledger_entry AS b1 FROM tap09_b WHERE id = 1 \gset
SELECT ledger_entry AS b2 FROM tap09_b WHERE id = 2 \gset
SELECT ledger_entry AS b3 FROM tap09_b WHERE id = 3 \gset
SELECT height AS bh FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap09_bad' AND b.min_entry = :b1 \gset
SELECT is((SELECT count(*) FROM ledger.block_entries('tap09_bad') WHERE block_height = :bh), 3::bigint, 'tap09_bad: one block of three rows');
-- position 0 (public): redacted but its salt kept; position 1: redacted properly but its row kept;
-- position 2: an unknown flag
SELECT pg_temp.rewrite_block('tap09_bad', :bh,
	'set_byte(set_byte(pg_temp.redact(b.entries, 1), 13, 1), 2 * 62 + 13, 4)') \g /dev/null
SET session_replication_role = replica;
DELETE FROM tap09_b WHERE id = 1;
RESET session_replication_role;
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09_bad') WHERE block_height = :bh
				  AND problem ~ format('entry %s \(block %s, position 0\) is held only as a commitment but has a salt', :b1, :bh)),
		  'a redacted entry with a salt is reported');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09_bad') WHERE block_height = :bh
				  AND problem ~ format('row with entry %s exists, but', :b2)),
		  'a redacted entry whose row exists is reported');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09_bad') WHERE block_height = :bh
				  AND problem ~ format('entry %s \(block %s, position 2\) has unknown flags 0x04', :b3, :bh)),
		  'an entry with an unknown flag is reported');
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09_bad') WHERE block_height = :bh
				  AND problem ~ format('entry %s \(block %s, position 1\) is held only as a commitment, yet this node is cleared for its tier "customs"', :b2, :bh)),
		  'a redacted entry at a tier this node is cleared for is reported (a deleted row cannot hide as redacted)');
SELECT is((SELECT count(*) FROM ledger.verify('tap09_bad')), 4::bigint, 'exactly those four problems');
SELECT ok(ledger.verify_digest(ledger.digest('tap09_bad')), 'flags and salts are outside the block hash: the digest still verifies');

-- Tier and flags are outside the Merkle root: a row deleted and its entry
-- relabelled as a redacted one at a tier the channel does not have once
-- passed both ledger.verify and the digest.
SELECT ledger.create_channel('tap09_tier', ARRAY['public', 'customs']) \g /dev/null
CREATE TABLE tap09_r (id int, tier text);
SELECT ledger.enable_table('tap09_r', 'tap09_tier', 'tier') \g /dev/null
INSERT INTO tap09_r VALUES (1, 'public');
SELECT ledger.wait_sealed() \g /dev/null
SELECT ledger_entry AS r1 FROM tap09_r \gset
SELECT height AS rh FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap09_tier' AND b.min_entry = :r1 \gset
SELECT pg_temp.rewrite_block('tap09_tier', :rh, 'set_byte(pg_temp.redact(b.entries, 0), 12, 255)') \g /dev/null
SET session_replication_role = replica;
DELETE FROM tap09_r;
RESET session_replication_role;
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09_tier') WHERE block_height = :rh
				  AND problem ~ format('entry %s \(block %s, position 0\) names tier 255, which the channel does not have', :r1, :rh)),
		  'a deleted row whose entry was relabelled redacted at a tier the channel lacks is reported');

-- The same with a tier the channel has, on a node cleared below it: the
-- tier is under the Merkle root (each leaf binds entry number and tier),
-- so the relabelled entry no longer matches its block's root, and the
-- digest taken before fails.
SELECT ledger.create_channel('tap09_rl', ARRAY['public', 'customs']) \g /dev/null
CREATE TABLE tap09_l (id int, tier text);
SELECT ledger.enable_table('tap09_l', 'tap09_rl', 'tier') \g /dev/null
INSERT INTO tap09_l VALUES (1, 'public');
SELECT ledger.wait_sealed() \g /dev/null
INSERT INTO ledger.peer (channel_id, name, pubkey, conninfo, clearance, since_height, genesis_clearance)
SELECT channel_id, 'self', decode(ledger.node_key(), 'hex'), '', 'public', 0, 'public'
  FROM ledger.channel WHERE name = 'tap09_rl';
SELECT ledger_entry AS l1 FROM tap09_l \gset
SELECT height AS lh FROM ledger.block b JOIN ledger.channel c USING (channel_id)
 WHERE c.name = 'tap09_rl' AND b.min_entry = :l1 \gset
SELECT ledger.digest('tap09_rl') AS digest_rl \gset
SELECT is(pg_temp.problems('tap09_rl'), '(none)', 'tap09_rl verifies clean before');
SELECT pg_temp.rewrite_block('tap09_rl', :lh, 'set_byte(pg_temp.redact(b.entries, 0), 12, 1)') \g /dev/null
SET session_replication_role = replica;
DELETE FROM tap09_l;
RESET session_replication_role;
SELECT ok(EXISTS (SELECT FROM ledger.verify('tap09_rl') WHERE block_height = :lh AND problem ~ 'Merkle root does not match'),
		  'a deleted public row relabelled as a customs commitment on a node cleared for public breaks its block''s Merkle root');
SELECT ok(NOT ledger.verify_digest(:'digest_rl'), '... and the digest taken before no longer verifies');

SELECT is(pg_temp.problems('tap09'), '(none)', 'tap09 is clean at the end');

SELECT * FROM finish();
