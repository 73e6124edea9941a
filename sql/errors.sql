-- Bad input gets a clear error and changes nothing.
SELECT ledger.create_channel('rg_err', ARRAY['low','high']) > 0 AS created;
CREATE TABLE rg_err_t (id int, note text, tier text DEFAULT 'low');
SELECT ledger.enable_table('rg_err_t', 'rg_err', tier_column => 'tier');
INSERT INTO rg_err_t VALUES (1, 'first');

-- channels
SELECT ledger.create_channel('rg_err');
SELECT ledger.create_channel('bad name');
SELECT ledger.create_channel('');
SELECT ledger.create_channel(NULL);
SELECT ledger.create_channel('rg_err2', ARRAY[]::text[]);
SELECT ledger.create_channel('rg_err2', ARRAY['a', NULL]);
SELECT ledger.create_channel('rg_err2', ARRAY['a', 'a']);
SELECT ledger.create_channel('rg_err2', ARRAY['']);
SELECT count(*) AS channels_named_rg_err2 FROM ledger.channels WHERE channel = 'rg_err2';

-- enabling tables
SELECT ledger.enable_table('rg_err_t', 'rg_err');
SELECT ledger.enable_table('rg_err_t', 'no_such_channel');
CREATE TABLE rg_err_pt (p point);
SELECT ledger.enable_table('rg_err_pt', 'rg_err');
CREATE TABLE rg_err_tiers (id int, tier int);
SELECT ledger.enable_table('rg_err_tiers', 'rg_err', tier_column => 'tier');
SELECT ledger.enable_table('rg_err_tiers', 'rg_err', tier_column => 'nope');
CREATE TEMP TABLE rg_err_temp (id int);
SELECT ledger.enable_table('rg_err_temp', 'rg_err');
CREATE VIEW rg_err_v AS SELECT 1 AS x;
SELECT ledger.enable_table('rg_err_v', 'rg_err');
CREATE TABLE rg_err_bad_rows (id int, tier text);
INSERT INTO rg_err_bad_rows VALUES (1, 'nonsense');
SELECT ledger.enable_table('rg_err_bad_rows', 'rg_err', tier_column => 'tier');
SELECT count(*) AS ledger_columns_added FROM pg_attribute
 WHERE attrelid = 'rg_err_bad_rows'::regclass AND attname = 'ledger_entry';
SELECT "table" FROM ledger.tables WHERE channel = 'rg_err' ORDER BY 1;

-- tiers at INSERT
INSERT INTO rg_err_t VALUES (2, 'x', 'secret');
INSERT INTO rg_err_t VALUES (3, 'x', NULL);
INSERT INTO rg_err_t (id, note, ledger_entry) VALUES (4, 'x', NULL);
INSERT INTO rg_err_t (id, note, ledger_entry) VALUES (5, 'x', 424242);
INSERT INTO rg_err_t SELECT * FROM rg_err_t;
INSERT INTO rg_err_t (id, note, ledger_entry) VALUES (6, 'x', DEFAULT);
COPY rg_err_t FROM '/dev/null';
COPY rg_err_t (id, ledger_entry) FROM '/dev/null';
MERGE INTO rg_err_t t USING (VALUES (7)) v(id) ON t.id = v.id
  WHEN NOT MATCHED THEN INSERT (id, note, ledger_entry) VALUES (v.id, 'm', 5);

-- append-only, for every path
UPDATE rg_err_t SET note = 'changed';
DELETE FROM rg_err_t;
TRUNCATE rg_err_t;
INSERT INTO rg_err_t (id, note) VALUES (1, 'dup') ON CONFLICT (ledger_entry) DO UPDATE SET note = 'x';
ALTER TABLE rg_err_t ADD COLUMN extra int;
ALTER TABLE rg_err_t DROP COLUMN note;
ALTER TABLE rg_err_t ALTER COLUMN note TYPE varchar(3);
ALTER TABLE rg_err_t RENAME COLUMN note TO remark;
ALTER TABLE rg_err_t RENAME TO rg_err_t2;
ALTER TABLE rg_err_t SET SCHEMA ledger;
ALTER INDEX rg_err_t RENAME TO rg_err_t3;
CREATE TABLE rg_err_child () INHERITS (rg_err_t);
CREATE TABLE rg_err_parent (id int, note text, tier text, ledger_entry bigint NOT NULL) PARTITION BY RANGE (id);
ALTER TABLE rg_err_parent ATTACH PARTITION rg_err_t FOR VALUES FROM (0) TO (100);
CREATE TABLE rg_err_base (id int);
CREATE TABLE rg_err_inh () INHERITS (rg_err_base);
SELECT ledger.enable_table('rg_err_inh', 'rg_err');
CREATE TYPE rg_err_mood AS ENUM ('happy', 'sad');
CREATE TYPE rg_err_pair AS (a int, b text);
CREATE TABLE rg_err_typed (m rg_err_mood[], p rg_err_pair);
SELECT ledger.enable_table('rg_err_typed', 'rg_err');
ALTER TYPE rg_err_mood RENAME VALUE 'happy' TO 'glad';
ALTER TYPE rg_err_pair DROP ATTRIBUTE b;
ALTER TYPE rg_err_pair ALTER ATTRIBUTE a TYPE bigint;
ALTER TYPE rg_err_mood ADD VALUE 'calm';
ALTER TABLE rg_err_t DISABLE TRIGGER ALL;
ALTER TABLE rg_err_t DISABLE TRIGGER ledger_capture;
ALTER TABLE rg_err_t ENABLE ROW LEVEL SECURITY;
ALTER TABLE rg_err_t DISABLE ROW LEVEL SECURITY;
ALTER TABLE rg_err_t NO FORCE ROW LEVEL SECURITY;
ALTER TABLE rg_err_t SET UNLOGGED;
CREATE TRIGGER sneaky BEFORE INSERT ON rg_err_t FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE RULE sneaky AS ON INSERT TO rg_err_t DO INSTEAD NOTHING;
DROP TRIGGER ledger_capture ON rg_err_t;
DROP TABLE rg_err_t;
CREATE SCHEMA rg_err_s;
CREATE TABLE rg_err_s.t (id int);
SELECT ledger.enable_table('rg_err_s.t', 'rg_err');
DROP SCHEMA rg_err_s CASCADE;
\set VERBOSITY terse
DROP EXTENSION loopledger;
\set VERBOSITY default
CREATE INDEX rg_err_t_note ON rg_err_t (note);
ALTER TABLE rg_err_t ADD CONSTRAINT rg_err_t_id_positive CHECK (id > 0);

-- the extension's catalogs are append-only too
UPDATE ledger.block SET tx_count = 0;
DELETE FROM ledger.channel;

-- digests and proofs
SELECT ledger.verify_digest('{}');
SELECT ledger.verify_digest('{"version": 2}');
SELECT ledger.verify_digest('{"version": 1, "channel": "rg_err", "height": 0, "block_hash": "xyz"}');
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', 'nope', 'height', 0, 'block_hash', repeat('0', 64)));
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', 'rg_err', 'height', 'x', 'block_hash', repeat('0', 64)));
-- each field must have the JSON type ledger.digest() gives it
SELECT ledger.verify_digest(jsonb_build_object('version', '1', 'channel', 'rg_err', 'height', 0, 'block_hash', repeat('0', 64)));
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', 'rg_err', 'height', '0', 'block_hash', repeat('0', 64)));
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', '{"a": 1}'::jsonb, 'height', 0, 'block_hash', repeat('0', 64)));
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', 'rg_err', 'height', 0, 'block_hash', to_jsonb(ARRAY[repeat('0', 64)])));
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', 'rg_err', 'height', 1.5, 'block_hash', repeat('0', 64)));
SELECT ledger.verify_digest(jsonb_build_object('version', 1, 'channel', 'rg_err', 'height', 999, 'block_hash', repeat('0', 64))) AS future_digest_ok;
SELECT ledger.digest('nope');
SELECT ledger.proof('rg_err', -1);
SELECT ledger.proof('nope', 1);
SELECT ledger.proof('rg_err', (SELECT ledger_entry FROM rg_err_t WHERE id = 1), 0);
SELECT ledger.proof('rg_err', (SELECT ledger_entry FROM rg_err_t WHERE id = 1), 999);
SELECT ledger.history('rg_err_pt');
SELECT * FROM ledger.verify('nope');

-- nothing above changed the ledger
SELECT id, note FROM rg_err_t ORDER BY id, note;
SELECT sealed_rows FROM ledger.channels WHERE channel = 'rg_err';
SELECT * FROM ledger.verify('rg_err');
