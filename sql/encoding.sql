-- Canonical column texts: what every row hash is computed over.  The same
-- values inserted under very different session settings give the same
-- texts, shown here through ledger.proof().
SELECT ledger.create_channel('rg_enc') > 0 AS created;
CREATE TYPE rg_mood AS ENUM ('sad', 'happy');
CREATE TYPE rg_pair AS (a int, b text);
CREATE DOMAIN rg_amount AS numeric(10,2);
CREATE TABLE rg_types (
	k text, i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8,
	b bool, t text, vc varchar(10), c char(4), d date, tm time, ttz timetz,
	ts timestamp, tstz timestamptz, iv interval, by bytea, u uuid, j json,
	jb jsonb, ip inet, m money, e rg_mood, arr int[], arr2 text[][],
	comp rg_pair, r int4range, tr tstzrange, dom rg_amount);
SELECT ledger.enable_table('rg_types', 'rg_enc');

CREATE FUNCTION rg_texts(key text) RETURNS TABLE (name text, value text) LANGUAGE sql AS $$
	SELECT c->>'name', c->>'value'
	  FROM jsonb_array_elements(ledger.proof('rg_enc',
	       (SELECT ledger_entry FROM rg_types WHERE k = key))->'columns') c $$;

-- one row under default settings
INSERT INTO rg_types VALUES ('default', -2, 2147483647, -9223372036854775808, 'NaN',
	0.1, -0.0, true, 'Zürich 東京 Привет 🚢', 'short', 'ab', '2024-02-29',
	'23:59:59.999999', '12:00+05:30', '2024-01-02 03:04:05.5',
	'2024-01-02 03:04:05.5+02', '1 year 2 mons 3 days 04:05:06.7', '\x0102ff',
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2]}',
	'{"b": 1, "a": [1, 2.50]}', '192.168.0.1/24', 12.34, 'happy',
	'[0:2]={1,NULL,3}', '{{a,b},{"c d",NULL}}', ROW(1, 'x"y'),
	'[1,10)', '[2024-01-01 00:00+00,infinity)', 7.5);

-- the same row under hostile settings
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'America/St_Johns';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = -3;
SET bytea_output = 'escape';
SET lc_monetary = 'C';
SET search_path = ledger, public;
INSERT INTO public.rg_types SELECT 'hostile', i2, i4, i8, num, f4, f8, b, t, vc, c, d, tm, ttz, ts,
	tstz, iv, by, u, j, jb, ip, m, e, arr, arr2, comp, r, tr, dom FROM public.rg_types WHERE k = 'default';
RESET ALL;

SELECT d.name, d.value FROM rg_texts('default') d;
SELECT count(*) AS differing_texts
  FROM rg_texts('default') d FULL JOIN rg_texts('hostile') h USING (name)
 WHERE d.value IS DISTINCT FROM h.value AND d.name <> 'k';

-- special values and NULLs
INSERT INTO rg_types (k, f4, f8, num, d, ts, tstz) VALUES
	('special', 'Infinity', '-Infinity', '-0.000', 'infinity', '-infinity', 'infinity');
SELECT d.name, d.value FROM rg_texts('special') d WHERE d.value IS NOT NULL OR d.name IN ('t', 'arr');
SELECT * FROM ledger.verify('rg_enc');
