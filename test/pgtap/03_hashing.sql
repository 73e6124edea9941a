-- Canonical row encoding: the column texts a row hash is computed over do
-- not depend on session settings, every supported type has a stable text,
-- and unsupported types are refused.  Rows carry random salts, so texts are
-- compared through ledger.proof(...)->'columns', not through row_hash.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(83);

SELECT ledger.create_channel('tap03') \g /dev/null
CREATE TYPE tap03_mood AS ENUM ('sad', 'happy');
CREATE TYPE tap03_pair AS (a int, b text, c date);
CREATE DOMAIN tap03_amount AS numeric(10, 2);
CREATE TABLE tap03_types (
	k text, nul text, i2 int2, i4 int4, i8 int8, num numeric, num2 numeric, numn numeric,
	f4 float4, f8 float8, f8sum float8, f8z float8, f8inf float8, f8nan float8, f4ninf float4,
	t text, t_ru text, t_ja text, t_emoji text, vc varchar(10), ch char(4), b bool,
	d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval, iv2 interval,
	by bytea, u uuid, j json, jb jsonb, ip inet, m money, e tap03_mood,
	arr int[], arr2 text[][], arrlb int[], comp tap03_pair, r int4range, tr tstzrange,
	dom tap03_amount, null_arr int[]);
SELECT ledger.enable_table('tap03_types', 'tap03') \g /dev/null

-- The non-ASCII strings are built from UTF-8 bytes so this file's SQL is
-- pure ASCII and means the same under any client_encoding.
CREATE FUNCTION pg_temp.u(hex text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT convert_from(decode(hex, 'hex'), 'UTF8') $$;

-- One row, literals parsed under whatever settings are in force.
CREATE FUNCTION pg_temp.ins(key text) RETURNS void LANGUAGE sql AS $$
INSERT INTO public.tap03_types VALUES (key, NULL, -32768, 2147483647, -9223372036854775808,
	'NaN', '-12.3400', '-0.000',
	'0.1', '0.1', '0.1'::float8 + '0.2'::float8, '-0', 'Infinity', 'NaN', '-Infinity',
	pg_temp.u('5ac3bc72696368'), pg_temp.u('d09fd180d0b8d0b2d0b5d182'), pg_temp.u('e69db1e4baac'), pg_temp.u('f09f9aa2'),
	'short', 'ab', true,
	'2024-02-29', '23:59:59.999999', '12:00+05:30', '2024-01-02 03:04:05.5', '2024-01-02 03:04:05.5+02',
	'1 day 2 hours', '1 year 2 mons 3 days 04:05:06.7',
	'\x0102'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2]}', '{"b": 1, "a": [1, 2.50]}',
	'192.168.0.1/24', 12.34::numeric::money, 'happy',
	'{1,NULL,3}', '{{a,b},{"c d",NULL}}', '[0:2]={1,NULL,3}', ROW(1, 'x"y', '2024-03-01')::public.tap03_pair,
	'[1,10)', '[2024-01-01 00:00+00,infinity)', 7.5, NULL)
$$;

-- canonical texts of a row, by column name
CREATE FUNCTION pg_temp.texts(key text) RETURNS TABLE (name text, value text) LANGUAGE sql AS $$
	SELECT c->>'name', c->>'value'
	  FROM jsonb_array_elements(ledger.proof('tap03',
		   (SELECT ledger_entry FROM public.tap03_types WHERE k = key))->'columns') c $$;
-- number of columns (other than k) whose text differs between two rows
CREATE FUNCTION pg_temp.ndiff(k1 text, k2 text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM pg_temp.texts(k1) a FULL JOIN pg_temp.texts(k2) b USING (name)
	 WHERE a.value IS DISTINCT FROM b.value AND name <> 'k' $$;
CREATE FUNCTION pg_temp.difflist(k1 text, k2 text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_temp.texts(k1) a FULL JOIN pg_temp.texts(k2) b USING (name)
	 WHERE a.value IS DISTINCT FROM b.value AND name <> 'k' $$;

-- base row under default settings
SELECT pg_temp.ins('base') \g /dev/null

-- ------------------------------------------- exact canonical texts (base row)
CREATE TEMP TABLE expected (name text PRIMARY KEY, value text);
INSERT INTO expected VALUES
	('nul', NULL), ('i2', '-32768'), ('i4', '2147483647'), ('i8', '-9223372036854775808'),
	('num', 'NaN'), ('num2', '-12.3400'), ('numn', '0.000'),
	('f4', '0.1'), ('f8', '0.1'), ('f8sum', '0.30000000000000004'), ('f8z', '-0'), ('f8inf', 'Infinity'),
	('f8nan', 'NaN'), ('f4ninf', '-Infinity'),
	('t', pg_temp.u('5ac3bc72696368')), ('t_ru', pg_temp.u('d09fd180d0b8d0b2d0b5d182')),
	('t_ja', pg_temp.u('e69db1e4baac')), ('t_emoji', pg_temp.u('f09f9aa2')),
	('vc', 'short'), ('ch', 'ab  '), ('b', 't'),
	('d', '2024-02-29'), ('tm', '23:59:59.999999'), ('ttz', '12:00:00+05:30'),
	('ts', '2024-01-02 03:04:05.5'), ('tstz', '2024-01-02 01:04:05.5+00'),
	('iv', '1 day 02:00:00'), ('iv2', '1 year 2 mons 3 days 04:05:06.7'),
	('by', '\x0102'), ('u', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
	('j', '{"b": 1, "a": [1, 2]}'), ('jb', '{"a": [1, 2.50], "b": 1}'),
	('ip', '192.168.0.1/24'), ('m', '1234'), ('e', 'happy'),
	('arr', '["1",null,"3"]'), ('arr2', '[["a","b"],["c d",null]]'), ('arrlb', '[0:2]=["1",null,"3"]'),
	('comp', '["1","x\"y","2024-03-01"]'), ('r', '["1","10")'), ('tr', '["2024-01-01 00:00:00+00","infinity")'),
	('dom', '7.50'), ('null_arr', NULL);

SELECT is(t.value, e.value, 'canonical text of ' || e.name)
  FROM expected e LEFT JOIN pg_temp.texts('base') t USING (name) ORDER BY e.name;
SELECT is((SELECT count(*) FROM pg_temp.texts('base')), 44::bigint, 'the proof lists every column but ledger_entry');
SELECT is((SELECT string_agg(name, ',') FROM pg_temp.texts('base')),
		  (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
			WHERE attrelid = 'tap03_types'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'ledger_entry'),
		  'columns are in table order');

-- ----------------------------------- the same row under hostile settings
-- (a) literals re-parsed under the settings, (b) the stored values copied
SET DateStyle = 'SQL, DMY';
SELECT pg_temp.ins('datestyle_sql');
SET DateStyle = 'German';
SELECT pg_temp.ins('datestyle_german');
SET DateStyle = 'Postgres, MDY';
SELECT pg_temp.ins('datestyle_postgres');
RESET DateStyle;
SET TimeZone = 'America/St_Johns';
SELECT pg_temp.ins('tz_stjohns');
SET TimeZone = 'Asia/Kathmandu';
SELECT pg_temp.ins('tz_kathmandu');
SET TimeZone = 'UTC';
SELECT pg_temp.ins('tz_utc');
RESET TimeZone;
SET IntervalStyle = 'sql_standard';
SELECT pg_temp.ins('iv_sql');
SET IntervalStyle = 'iso_8601';
SELECT pg_temp.ins('iv_iso');
SET IntervalStyle = 'postgres_verbose';
SELECT pg_temp.ins('iv_verbose');
RESET IntervalStyle;
SET extra_float_digits = -15;
SELECT pg_temp.ins('efd_m15');
SET extra_float_digits = 0;
SELECT pg_temp.ins('efd_0');
SET extra_float_digits = 3;
SELECT pg_temp.ins('efd_3');
RESET extra_float_digits;
SET bytea_output = 'escape';
SELECT pg_temp.ins('bytea_escape');
RESET bytea_output;
SET search_path = ledger, pg_catalog;
SELECT pg_temp.ins('search_path');
RESET search_path;
SET client_encoding = 'LATIN1';
SELECT pg_temp.ins('enc_latin1');
SET client_encoding = 'SQL_ASCII';
SELECT pg_temp.ins('enc_sql_ascii');
RESET client_encoding;
SET lc_monetary = 'C';
SELECT pg_temp.ins('lc_monetary');
RESET lc_monetary;
-- everything at once, values copied from the base row
SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Pacific/Chatham'; SET IntervalStyle = 'sql_standard';
SET extra_float_digits = -15; SET bytea_output = 'escape'; SET search_path = ledger, pg_catalog;
SET client_encoding = 'LATIN1'; SET lc_monetary = 'C';
INSERT INTO public.tap03_types SELECT 'all_copied', nul, i2, i4, i8, num, num2, numn, f4, f8, f8sum, f8z, f8inf, f8nan, f4ninf,
	t, t_ru, t_ja, t_emoji, vc, ch, b, d, tm, ttz, ts, tstz, iv, iv2, by, u, j, jb, ip, m, e, arr, arr2, arrlb, comp, r, tr, dom, null_arr
  FROM public.tap03_types WHERE k = 'base';
SELECT pg_temp.ins('all_literal');
-- texts read back while the hostile settings are still in force (pgTAP lives in public)
SET search_path = ledger, pg_catalog, public;
SELECT public.is(pg_temp.ndiff('base', 'all_copied'), 0::bigint, 'all hostile settings at once (copied values): identical texts, read under those settings');
RESET ALL;
SET client_min_messages = warning;

SELECT is(pg_temp.difflist('base', k), '', 'identical canonical texts: ' || k)
  FROM unnest(ARRAY['datestyle_sql', 'datestyle_german', 'datestyle_postgres', 'tz_stjohns', 'tz_kathmandu', 'tz_utc',
					'iv_sql', 'iv_iso', 'iv_verbose', 'efd_m15', 'efd_0', 'efd_3', 'bytea_escape', 'search_path',
					'enc_latin1', 'enc_sql_ascii', 'lc_monetary', 'all_copied', 'all_literal']) k;

-- the stored values themselves are equal (so equal texts are not a coincidence)
SELECT is((SELECT count(DISTINCT (nul, i2, i4, i8, num, num2, f4, f8, f8z::text, t, t_ru, t_ja, t_emoji, d, tm, ttz, ts, tstz, iv, iv2,
								  by, u, j::text, jb, ip, m, e, arr, arr2, arrlb, comp, r, tr, dom))
			 FROM tap03_types), 1::bigint, 'all rows hold equal values');

-- ------------------------------------------------------- special values
INSERT INTO tap03_types (k, f4, f8, num, d, ts, tstz, iv, arr, t) VALUES
	('special', '-0', '1e100', '1e-20', 'infinity', '-infinity', 'infinity', '-1 day -02:00:00', '{}', '');
SELECT results_eq($$SELECT name, value FROM pg_temp.texts('special') WHERE name IN ('f4','f8','num','d','ts','tstz','iv','arr','t','i4') ORDER BY name$$,
	$$VALUES ('arr', '[]'), ('d', 'infinity'), ('f4', '-0'), ('f8', '1e+100'), ('i4', NULL),
			 ('iv', '-1 days -02:00:00'), ('num', '0.00000000000000000001'), ('t', ''), ('ts', '-infinity'), ('tstz', 'infinity')$$,
	'special values: empty array, infinities, -0, exponent, negative interval, empty string vs NULL');

-- Every row of the channel verifies (the hashes of all those rows are right).
SELECT is((SELECT count(*) FROM ledger.block_entries('tap03') WHERE block_height IS NOT NULL), (SELECT count(*) FROM tap03_types),
		  'every row is sealed');
-- the table has columns named like history()'s internal aliases (r, e)
SELECT lives_ok($$SELECT * FROM ledger.history('tap03_types')$$, 'ledger.history works on a table with columns named r and e');
CREATE FUNCTION pg_temp.history_row(key text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT to_jsonb(h) FROM ledger.history('tap03_types') h JOIN tap03_types t ON t.ledger_entry = h.entry WHERE t.k = key);
EXCEPTION WHEN OTHERS THEN RETURN jsonb_build_object('error', SQLERRM);
END $$;
SELECT is(pg_temp.history_row('base')->>'status', 'sealed', 'history: the base row is sealed');
SELECT is(pg_temp.history_row('base')->'row_data'->>'r', '[1,10)', 'history: row_data holds the row''s columns (r)');
SELECT ok(NOT (pg_temp.history_row('base')->'row_data') ? 'ledger_entry', 'history: row_data leaves out ledger_entry');
SELECT is_empty($$SELECT * FROM ledger.verify('tap03')$$, 'channel tap03 verifies clean');

-- ------------------------------------------------------- unsupported types
CREATE TABLE tap03_point (p point);
SELECT throws_ok($$SELECT ledger.enable_table('tap03_point', 'tap03')$$, NULL, 'point column is refused by enable_table');
SELECT hasnt_column('tap03_point', 'ledger_entry', 'refused enable_table leaves the table unchanged');
CREATE TABLE tap03_box (b box);
SELECT throws_ok($$SELECT ledger.enable_table('tap03_box', 'tap03')$$, NULL, 'box column is refused');
CREATE TABLE tap03_point_arr (p point[]);
SELECT throws_ok($$SELECT ledger.enable_table('tap03_point_arr', 'tap03')$$, NULL, 'point[] column is refused');
CREATE TYPE tap03_withpoint AS (a int, p point);
CREATE TABLE tap03_point_comp (c tap03_withpoint);
SELECT throws_ok($$SELECT ledger.enable_table('tap03_point_comp', 'tap03')$$, NULL, 'composite with a point field is refused');
CREATE DOMAIN tap03_pointdom AS point;
CREATE TABLE tap03_point_dom (c tap03_pointdom);
SELECT throws_ok($$SELECT ledger.enable_table('tap03_point_dom', 'tap03')$$, NULL, 'domain over point is refused');
-- a user-defined base type (borrowing int4's I/O functions)
CREATE TYPE tap03_base;
CREATE FUNCTION tap03_base_in(cstring) RETURNS tap03_base AS 'int4in' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION tap03_base_out(tap03_base) RETURNS cstring AS 'int4out' LANGUAGE internal IMMUTABLE STRICT;
CREATE TYPE tap03_base (INPUT = tap03_base_in, OUTPUT = tap03_base_out, LIKE = int4);
CREATE TABLE tap03_udt (x tap03_base);
SELECT throws_ok($$SELECT ledger.enable_table('tap03_udt', 'tap03')$$, NULL, 'user-defined base type is refused');
SELECT is((SELECT count(*) FROM ledger.tables WHERE channel = 'tap03'), 1::bigint, 'only the supported table joined the channel');

-- xml is stored as the text it was given, but its output drops a default
-- declaration: hashed through that output, differently stored values
-- hashed alike and could be swapped unseen.
SELECT ledger.create_channel('tap03_xml') \g /dev/null
CREATE TABLE tap03_x (id int, x xml);
SELECT ledger.enable_table('tap03_x', 'tap03_xml') \g /dev/null
INSERT INTO tap03_x VALUES (1, '<?xml version="1.0"?><a/>'), (2, '<a/>');
SELECT ledger.wait_sealed() \g /dev/null
SELECT is((SELECT ledger.proof('tap03_xml', ledger_entry)->'columns'->1->>'value' FROM tap03_x WHERE id = 1),
		  '<?xml version="1.0"?><a/>', 'xml is hashed as the text it stores, declaration included');
SELECT is_empty($$SELECT * FROM ledger.verify('tap03_xml')$$, 'channel tap03_xml verifies clean');

SELECT * FROM finish();
