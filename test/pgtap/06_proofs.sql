-- ledger.proof(): JSON structure, leaf hash = history's row hash, the leaf
-- re-computed from the proof's own fields, the RFC 6962 audit path walked
-- to the block's Merkle root, the header chain up to `upto`, and errors.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(32);

SELECT ledger.create_channel('tap06', ARRAY['open', 'closed']) \g /dev/null
SELECT ledger.create_channel('tap06_other') \g /dev/null
CREATE TABLE tap06_t (id int, v text, n numeric, tier text DEFAULT 'open');
CREATE TABLE tap06_o (id int);
SELECT ledger.enable_table('tap06_t', 'tap06', 'tier') \g /dev/null
SELECT ledger.enable_table('tap06_o', 'tap06_other') \g /dev/null
-- blocks of 1, 2, 3, 5, 7 and 16 rows (one transaction each)
INSERT INTO tap06_t SELECT g, 'v' || g, g / 3.0, CASE WHEN g % 2 = 0 THEN 'closed' ELSE 'open' END FROM generate_series(1, 1) g;
INSERT INTO tap06_t SELECT g, 'v' || g, g / 3.0, CASE WHEN g % 2 = 0 THEN 'closed' ELSE 'open' END FROM generate_series(2, 3) g;
INSERT INTO tap06_t SELECT g, 'v' || g, g / 3.0, CASE WHEN g % 2 = 0 THEN 'closed' ELSE 'open' END FROM generate_series(4, 6) g;
INSERT INTO tap06_t SELECT g, 'v' || g, g / 3.0, CASE WHEN g % 2 = 0 THEN 'closed' ELSE 'open' END FROM generate_series(7, 11) g;
INSERT INTO tap06_t SELECT g, NULL, g / 3.0, CASE WHEN g % 2 = 0 THEN 'closed' ELSE 'open' END FROM generate_series(12, 18) g;
INSERT INTO tap06_t SELECT g, 'v' || g, NULL, CASE WHEN g % 2 = 0 THEN 'closed' ELSE 'open' END FROM generate_series(19, 34) g;
INSERT INTO tap06_o VALUES (1);
SELECT ledger.wait_sealed() \g /dev/null

CREATE FUNCTION pg_temp.str(s text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
	SELECT int4send(octet_length(convert_to(s, 'UTF8'))) || convert_to(s, 'UTF8') $$;
-- the Merkle leaf of a proof, re-computed from the proof's fields (README: canonical row encoding)
CREATE FUNCTION pg_temp.leaf(p jsonb) RETURNS text LANGUAGE sql AS $$
	SELECT encode(sha256('\x00'::bytea || convert_to('LLE1', 'UTF8') || pg_temp.str(p->>'table') || int8send((p->>'entry')::bigint)
		|| pg_temp.str(p->>'tier') || decode(p->>'salt', 'hex') || int4send(jsonb_array_length(p->'columns'))
		|| coalesce((SELECT string_agg(pg_temp.str(c->>'name') ||
						CASE WHEN c->>'value' IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || pg_temp.str(c->>'value') END,
						''::bytea ORDER BY i)
					   FROM jsonb_array_elements(p->'columns') WITH ORDINALITY AS x(c, i)), ''::bytea)), 'hex') $$;
-- RFC 6962 audit path length for leaf m of n
CREATE FUNCTION pg_temp.path_len(m int, n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE k int := 1;
BEGIN
	IF n <= 1 THEN RETURN 0; END IF;
	WHILE k * 2 < n LOOP k := k * 2; END LOOP;
	IF m < k THEN RETURN 1 + pg_temp.path_len(m, k); END IF;
	RETURN 1 + pg_temp.path_len(m - k, n - k);
END $$;
-- walk the audit path (RFC 9162 2.1.3.2) from the leaf to a root
CREATE FUNCTION pg_temp.root(p jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE fn bigint := (p->>'position')::bigint; sn bigint := (p->>'tree_size')::bigint - 1;
		r bytea := sha256('\x02'::bytea || int8send((p->>'entry')::bigint)
						  || int4send(octet_length(convert_to(p->>'tier', 'UTF8')))
						  || convert_to(p->>'tier', 'UTF8') || decode(p->>'leaf_hash', 'hex'));
		h bytea; e text;
BEGIN
	FOR e IN SELECT x FROM jsonb_array_elements_text(p->'path') x LOOP
		h := decode(e, 'hex');
		IF sn = 0 THEN RETURN 'path too long'; END IF;
		IF fn % 2 = 1 OR fn = sn THEN
			r := sha256('\x01'::bytea || h || r);
			WHILE fn % 2 = 0 AND fn IS DISTINCT FROM 0 LOOP fn := fn / 2; sn := sn / 2; END LOOP;
		ELSE
			r := sha256('\x01'::bytea || r || h);
		END IF;
		fn := fn / 2; sn := sn / 2;
	END LOOP;
	IF sn IS DISTINCT FROM 0 THEN RETURN 'path too short'; END IF;
	RETURN encode(r, 'hex');
END $$;

CREATE TEMP TABLE pr AS
SELECT t.id, h.entry, h.block_height, h.position, h.row_hash, h.tier, ledger.proof('tap06', t.ledger_entry) AS p
  FROM tap06_t t JOIN ledger.history('tap06_t') h ON h.entry = t.ledger_entry;
SELECT (SELECT max(height) FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'tap06') AS head \gset

SELECT is((SELECT count(*) FROM pr), 34::bigint, 'a proof for each of the 34 rows');
SELECT is((SELECT count(*) FROM pr WHERE NOT p ?& ARRAY['version', 'channel', 'table', 'entry', 'tier', 'salt', 'columns', 'leaf_hash',
														 'position', 'tree_size', 'path', 'height', 'blocks']), 0::bigint,
		  'every proof has all the documented keys');
SELECT is((SELECT count(*) FROM pr WHERE (p->>'version')::int IS DISTINCT FROM 1 OR p->>'channel' IS DISTINCT FROM 'tap06' OR p->>'table' IS DISTINCT FROM 'public.tap06_t'), 0::bigint,
		  'version 1, channel and qualified table name');
SELECT is((SELECT count(*) FROM pr WHERE (p->>'entry')::bigint IS DISTINCT FROM entry OR p->>'tier' IS DISTINCT FROM tier), 0::bigint, 'entry and tier match history');
SELECT is((SELECT count(*) FROM pr WHERE p->>'leaf_hash' IS DISTINCT FROM encode(row_hash, 'hex')), 0::bigint, 'leaf_hash equals history''s row_hash');
SELECT is((SELECT count(*) FROM pr WHERE pg_temp.leaf(p) IS DISTINCT FROM p->>'leaf_hash'), 0::bigint,
		  'leaf_hash re-computed from the proof''s table, entry, tier, salt and column texts');
SELECT is((SELECT count(*) FROM pr JOIN ledger.block_entries('tap06') e USING (entry) WHERE p->>'salt' IS DISTINCT FROM encode(e.salt, 'hex')), 0::bigint,
		  'salt matches block_entries');
SELECT is((SELECT count(*) FROM pr WHERE (p->>'height')::bigint IS DISTINCT FROM block_height OR (p->>'position')::int IS DISTINCT FROM position), 0::bigint,
		  'height and position match history');
SELECT is((SELECT count(*) FROM pr JOIN ledger.block b ON b.height = pr.block_height
			 JOIN ledger.channel c ON c.channel_id = b.channel_id AND c.name = 'tap06'
			WHERE (p->>'tree_size')::int IS DISTINCT FROM b.row_count), 0::bigint, 'tree_size is the block''s row count');
SELECT is((SELECT count(*) FROM pr WHERE jsonb_array_length(p->'path') IS DISTINCT FROM pg_temp.path_len(position, (p->>'tree_size')::int)), 0::bigint,
		  'path length is the RFC 6962 audit path length for (position, tree_size)');
SELECT is((SELECT count(*) FROM pr WHERE jsonb_array_length(p->'path') = 0), 1::bigint, 'only the single-row block has an empty path');
SELECT is((SELECT max(jsonb_array_length(p->'path')) FROM pr), 4, 'the 16-row block has 4-step paths');
SELECT is((SELECT count(*) FROM pr JOIN ledger.block b ON b.height = pr.block_height
			 JOIN ledger.channel c ON c.channel_id = b.channel_id AND c.name = 'tap06'
			WHERE pg_temp.root(p) IS DISTINCT FROM encode(b.merkle_root, 'hex')), 0::bigint, 'walking the path gives the block''s Merkle root');
SELECT is((SELECT count(*) FROM pr WHERE (p->'blocks'->0->>'height')::bigint IS DISTINCT FROM block_height), 0::bigint, 'blocks start at the row''s block');
SELECT is((SELECT count(*) FROM pr WHERE jsonb_array_length(p->'blocks') IS DISTINCT FROM :head - block_height + 1), 0::bigint,
		  'blocks run from the row''s block to the head');
SELECT is((SELECT count(*) FROM pr, jsonb_array_elements(p->'blocks') WITH ORDINALITY AS x(blk, i)
			 JOIN ledger.block b ON b.height = (blk->>'height')::bigint
			 JOIN ledger.channel c ON c.channel_id = b.channel_id AND c.name = 'tap06'
			WHERE blk->>'hash' IS DISTINCT FROM encode(b.block_hash, 'hex') OR blk->>'prev_hash' IS DISTINCT FROM encode(b.prev_hash, 'hex')
			   OR blk->>'merkle_root' IS DISTINCT FROM encode(b.merkle_root, 'hex') OR (blk->>'time_us')::bigint IS DISTINCT FROM b.time_us
			   OR (blk->>'tx_count')::int IS DISTINCT FROM b.tx_count OR (blk->>'row_count')::int IS DISTINCT FROM b.row_count
			   OR blk->>'config_hash' IS DISTINCT FROM encode(b.config_hash, 'hex')), 0::bigint,
		  'every header in a proof equals the stored block');
SELECT is((SELECT count(*) FROM pr, jsonb_array_elements(p->'blocks') WITH ORDINALITY AS x(blk, i)
			WHERE encode(ledger.header_hash('tap06', (blk->>'height')::bigint, decode(blk->>'prev_hash', 'hex'), decode(blk->>'merkle_root', 'hex'),
											(blk->>'time_us')::bigint, (blk->>'tx_count')::int, (blk->>'row_count')::int,
											decode(blk->>'config_hash', 'hex')), 'hex') IS DISTINCT FROM blk->>'hash'), 0::bigint,
		  'every header in a proof re-hashes to its hash');
SELECT is((SELECT count(*) FROM pr, jsonb_array_elements(p->'blocks') WITH ORDINALITY AS x(blk, i)
			WHERE i > 1 AND blk->>'prev_hash' IS DISTINCT FROM p->'blocks'->(i::int - 2)->>'hash'), 0::bigint, 'the headers link by prev_hash');
SELECT is((SELECT count(*) FROM pr WHERE p->'blocks'->0->>'merkle_root' IS DISTINCT FROM pg_temp.root(p)), 0::bigint,
		  'the first header''s Merkle root is the path''s root');
SELECT is((SELECT count(*) FROM pr WHERE p->'blocks'->-1->>'hash' IS DISTINCT FROM ledger.digest('tap06')->>'block_hash'), 0::bigint,
		  'the last header is the digest''s block');
SELECT is((SELECT string_agg(c->>'name', ',' ORDER BY i) FROM pr, jsonb_array_elements(p->'columns') WITH ORDINALITY AS x(c, i) WHERE pr.id = 12),
		  'id,v,n,tier', 'columns in table order, without ledger_entry');
SELECT is((SELECT jsonb_agg(c->'value' ORDER BY i) FROM pr, jsonb_array_elements(p->'columns') WITH ORDINALITY AS x(c, i) WHERE pr.id = 12),
		  '["12", null, "4.0000000000000000", "closed"]'::jsonb, 'column texts of one row, NULL as null');

-- upto
SELECT is((SELECT jsonb_array_length(ledger.proof('tap06', entry, block_height)->'blocks') FROM pr WHERE id = 1), 1,
		  'upto = the row''s own height: one header');
SELECT is((SELECT ledger.proof('tap06', entry, block_height + 1)->'blocks'->-1->>'height' FROM pr WHERE id = 1),
		  (SELECT (block_height + 1)::text FROM pr WHERE id = 1), 'upto = height + 1: headers end there');
SELECT is((SELECT ledger.proof('tap06', entry, :head) FROM pr WHERE id = 3), (SELECT p FROM pr WHERE id = 3), 'upto = head gives the default proof');
SELECT throws_ok(format('SELECT ledger.proof(%L, %s, %s)', 'tap06', (SELECT entry FROM pr WHERE id = 34), (SELECT block_height - 1 FROM pr WHERE id = 34)),
				 NULL, 'upto below the row''s block is an error');
SELECT throws_ok(format('SELECT ledger.proof(%L, %s, %s)', 'tap06', (SELECT entry FROM pr WHERE id = 1), :head + 1),
				 NULL, 'upto above the head is an error');
SELECT throws_ok(format('SELECT ledger.proof(%L, %s, %s)', 'tap06', (SELECT entry FROM pr WHERE id = 1), -1),
				 NULL, 'negative upto is an error');

-- unknown entries and channels
SELECT throws_ok(format('SELECT ledger.proof(%L, %s)', 'tap06', (SELECT max(entry) + 1000000 FROM pr)), NULL, 'unknown entry is an error');
SELECT throws_ok(format('SELECT ledger.proof(%L, %s)', 'tap06', (SELECT ledger_entry FROM tap06_o)), NULL,
				 'an entry of another channel''s table is an error');
SELECT throws_ok($$SELECT ledger.proof('tap06_nosuch', 1)$$, NULL, 'unknown channel is an error');
SELECT throws_ok($$SELECT ledger.proof('tap06', NULL)$$, NULL, 'NULL entry is an error');

SELECT * FROM finish();
