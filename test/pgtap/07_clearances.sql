-- Tiered visibility for local roles: every ledger table gets row-level
-- security (enabled and forced) with one policy; a role reads and inserts
-- the rows whose tier is at or below its clearance.  Clearances, public
-- channels, membership, the current_user/session_user rule, and every way
-- around the policy: COPY TO, views, SECURITY DEFINER functions, history,
-- proofs, error details (seen by a client, through dblink), EXPLAIN,
-- pg_stats, DDL that reads every row, and the policy's own guards.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(153);

-- {sqlstate, message, detail, hint} of a statement's error, NULLs when it
-- worked; the statement is always rolled back.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hin text;
BEGIN
	BEGIN
		EXECUTE stmt;
		RAISE EXCEPTION 'tap07: no error' USING ERRCODE = 'P0099';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
								det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
	END;
	IF st = 'P0099' THEN RETURN ARRAY[NULL, NULL, NULL, NULL]::text[]; END IF;
	RETURN ARRAY[st, msg, nullif(det, ''), nullif(hin, '')];
END $$;
-- ids of a table as the current role, comma-separated
CREATE FUNCTION pg_temp.ids(tbl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE format('SELECT string_agg(id::text, '','' ORDER BY id) FROM %s', tbl) INTO r;
	RETURN coalesce(r, '');
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pg_temp TO PUBLIC;

DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['customs_officer', 'courier_app', 'outsider', 'tap07_desk', 'tap07_clerk', 'tap07_temp'] LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I LOGIN', r);
		END IF;
		EXECUTE format('ALTER ROLE %I LOGIN', r);	-- dblink connects as them
	END LOOP;
END $$;
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
			  current_setting('port'), current_database()) AS conn \gset

SELECT ledger.create_channel('tap07', ARRAY['public', 'partner', 'customs']) AS ch \gset
CREATE TABLE tap07_decl (id bigint PRIMARY KEY, hs_code text, value numeric(12,2), importer text,
						 tier text DEFAULT 'public');
SELECT ledger.enable_table('tap07_decl', 'tap07', tier_column => 'tier') \g /dev/null
CREATE TABLE tap07_notier (id int);
SELECT ledger.enable_table('tap07_notier', 'tap07') \g /dev/null
CREATE TYPE tap07_level AS ENUM ('public', 'partner', 'customs');
CREATE TABLE tap07_enum (id int, lvl tap07_level);
SELECT ledger.enable_table('tap07_enum', 'tap07', 'lvl') \g /dev/null
GRANT SELECT, INSERT ON tap07_decl, tap07_notier, tap07_enum TO PUBLIC;
CREATE FUNCTION pg_temp.insert_returning() RETURNS text LANGUAGE sql AS $$
	WITH ins AS (INSERT INTO tap07_decl VALUES (21, '1', 1, 'Gale', 'public') RETURNING id, tier)
	SELECT string_agg(id || ':' || tier, ',') FROM ins $$;
INSERT INTO tap07_decl VALUES (1, '8471.30', 1299.00, 'ACME', 'customs'), (2, '8517.12', 310.00, 'Birch', 'partner'),
	(3, '6203.42', 25.50, 'Cole', 'public'), (4, '9102.11', 8800.00, 'Dune', 'customs'), (5, '4202.21', 99.90, 'Elm', 'public');
INSERT INTO tap07_notier VALUES (1), (2);
INSERT INTO tap07_enum VALUES (1, 'public'), (2, 'partner'), (3, 'customs');

-- ---------------------------------------------------------------- setup
SELECT is((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'tap07_decl'::regclass), true,
		  'enable_table enables and forces row-level security');
SELECT is((SELECT string_agg(policyname || ':' || cmd || ':' || permissive, ',') FROM pg_policies WHERE tablename = 'tap07_decl'),
		  'ledger_clearance:ALL:PERMISSIVE', 'one permissive policy for all commands');
SELECT is((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'tap07_notier'::regclass), true,
		  'a table without a tier column gets row-level security too');

-- ------------------------------------------------- granting clearances
SELECT lives_ok($$SELECT ledger.grant_clearance('tap07', 'customs_officer', 'customs')$$, 'grant_clearance customs_officer customs');
SELECT lives_ok($$SELECT ledger.grant_clearance('tap07', 'courier_app', 'customs')$$, 'grant_clearance courier_app customs');
SELECT lives_ok($$SELECT ledger.grant_clearance('tap07', 'courier_app', 'partner')$$, 'granting again replaces the clearance');
SELECT is((SELECT string_agg(channel || ':' || role || ':' || tier, ',' ORDER BY role) FROM ledger.clearances WHERE channel = 'tap07'),
		  'tap07:courier_app:partner,tap07:customs_officer:customs', 'ledger.clearances lists channel, role and tier');
SELECT is((SELECT count(*) FROM ledger.clearances WHERE channel = 'tap07' AND granted_at IS NOT NULL), 2::bigint, 'ledger.clearances has granted_at');
SELECT is(pg_temp.try($$SELECT ledger.grant_clearance('tap07_nosuch', 'courier_app', 'partner')$$),
		  ARRAY['42704', 'channel "tap07_nosuch" does not exist', 'Clearances and visibility are set per channel.',
				'Create it with ledger.create_channel(), or see ledger.channels.'], 'unknown channel: 42704 with detail and hint');
SELECT is((pg_temp.try($$SELECT ledger.grant_clearance('tap07', 'tap07_nobody', 'partner')$$))[1:2],
		  ARRAY['42704', 'role "tap07_nobody" does not exist'], 'unknown role: 42704');
SELECT ok((SELECT e[3] IS NOT NULL AND e[4] IS NOT NULL FROM pg_temp.try($$SELECT ledger.grant_clearance('tap07', 'tap07_nobody', 'partner')$$) e),
		  'unknown role: detail and hint');
SELECT is(pg_temp.try($$SELECT ledger.grant_clearance('tap07', 'courier_app', 'secret')$$),
		  ARRAY['22023', 'tier "secret" is not a tier of channel "tap07"',
				'The tiers of channel "tap07", lowest first, are "public", "partner", "customs".',
				'A clearance names the highest tier the role may read.'], 'unknown tier: 22023 listing the tiers');
SELECT is((pg_temp.try($$SELECT ledger.grant_clearance('tap07', NULL, 'partner')$$))[1], '22004', 'NULL role is refused');
SELECT is((pg_temp.try($$SELECT ledger.revoke_clearance('tap07', 'tap07_nobody')$$))[1:2],
		  ARRAY['42704', 'role "tap07_nobody" does not exist'], 'revoke_clearance: unknown role');
SELECT is((pg_temp.try($$SELECT ledger.set_channel_public('tap07_nosuch', false)$$))[1], '42704', 'set_channel_public: unknown channel');
SET ROLE customs_officer;
SELECT is((pg_temp.try($$SELECT ledger.grant_clearance('tap07', 'courier_app', 'customs')$$))[1:2],
		  ARRAY['42501', 'only a superuser may grant or revoke clearances or change a channel''s visibility'],
		  'a cleared role that is not superuser cannot grant');
SELECT is((pg_temp.try($$SELECT ledger.revoke_clearance('tap07', 'courier_app')$$))[1], '42501', 'nor revoke');
SELECT is((pg_temp.try($$SELECT ledger.set_channel_public('tap07', false)$$))[1], '42501', 'nor change visibility');
RESET ROLE;

-- --------------------------------------------------------------- SELECT
SELECT is(pg_temp.ids('tap07_decl'), '1,2,3,4,5', 'superuser: every row (superusers bypass row-level security)');
SET ROLE customs_officer;
SELECT is(pg_temp.ids('tap07_decl'), '1,2,3,4,5', 'customs_officer (customs): every tier');
SELECT is(ledger.clearance_of(:ch), 2, 'clearance_of is 2 for customs_officer');
RESET ROLE;
SET ROLE courier_app;
SELECT is(pg_temp.ids('tap07_decl'), '2,3,5', 'courier_app (partner): public and partner rows');
SELECT is(ledger.clearance_of(:ch), 1, 'clearance_of is 1 for courier_app');
SELECT is(pg_temp.ids('tap07_enum'), '1,2', 'courier_app on an enum tier column: public and partner');
SELECT is((SELECT count(*) FROM tap07_decl WHERE tier = 'customs'), 0::bigint, 'a WHERE on the tier finds no customs rows');
SELECT is((SELECT count(*) FROM tap07_decl WHERE id = 1), 0::bigint, 'a hidden row is not found by its key');
RESET ROLE;
SET ROLE outsider;
SELECT is(pg_temp.ids('tap07_decl'), '3,5', 'outsider (no clearance, public channel): the lowest tier');
SELECT is(pg_temp.ids('tap07_notier'), '1,2', 'outsider: every row of a table without tier column (all lowest tier)');
SELECT is(ledger.clearance_of(:ch), 0, 'clearance_of is 0 for outsider');
RESET ROLE;
SELECT lives_ok($$SELECT ledger.set_channel_public('tap07', false)$$, 'set_channel_public false');
SET ROLE outsider;
SELECT is(pg_temp.ids('tap07_decl'), '', 'outsider, channel not public: nothing');
SELECT is(pg_temp.ids('tap07_notier'), '', 'outsider, channel not public: nothing of a table without tier column');
SELECT is(ledger.clearance_of(:ch), -1, 'clearance_of is -1 for none');
RESET ROLE;
SET ROLE courier_app;
SELECT is(pg_temp.ids('tap07_decl'), '2,3,5', 'courier_app keeps its clearance on a channel that is not public');
RESET ROLE;
SELECT lives_ok($$SELECT ledger.set_channel_public('tap07', true)$$, 'set_channel_public true');
SET ROLE outsider;
SELECT is(pg_temp.ids('tap07_decl'), '3,5', 'outsider sees the lowest tier again');
RESET ROLE;

-- clearance through role membership (with or without INHERIT: a member can SET ROLE)
SELECT ledger.grant_clearance('tap07', 'tap07_desk', 'customs') \g /dev/null
GRANT tap07_desk TO tap07_clerk;
SET ROLE tap07_clerk;
SELECT is(pg_temp.ids('tap07_decl'), '1,2,3,4,5', 'a member of a cleared role has its clearance');
RESET ROLE;
REVOKE tap07_desk FROM tap07_clerk;
SET ROLE tap07_clerk;
SELECT is(pg_temp.ids('tap07_decl'), '3,5', 'after REVOKE of the membership: the lowest tier');
RESET ROLE;
SELECT ledger.grant_clearance('tap07', 'tap07_temp', 'customs') \g /dev/null
ALTER ROLE tap07_temp RENAME TO tap07_temp2;
SET ROLE tap07_temp2;
SELECT is(pg_temp.ids('tap07_decl'), '3,5', 'a renamed role loses its clearance (fail closed)');
RESET ROLE;
ALTER ROLE tap07_temp2 RENAME TO tap07_temp;
SELECT ledger.revoke_clearance('tap07', 'tap07_temp') \g /dev/null
SELECT is((SELECT count(*) FROM ledger.clearances WHERE role = 'tap07_desk'), 1::bigint, 'tap07_desk is listed');
SELECT is(ledger.revoke_clearance('tap07', 'tap07_desk'), true, 'revoke_clearance returns true when there was a clearance');
SELECT is(ledger.revoke_clearance('tap07', 'tap07_desk'), false, 'and false when there was none');
SELECT is((SELECT count(*) FROM ledger.clearances WHERE role = 'tap07_desk'), 0::bigint, 'tap07_desk is no longer listed');

-- another backend sees grants, revokes and membership changes at once (cache invalidation)
SELECT dblink_connect('tap07_courier', :'conn' || ' user=courier_app') \g /dev/null
CREATE FUNCTION pg_temp.remote_ids() RETURNS text LANGUAGE sql AS $$
	SELECT ids FROM dblink('tap07_courier', 'SELECT string_agg(id::text, '','' ORDER BY id) FROM tap07_decl') AS t(ids text) $$;
SELECT is(pg_temp.remote_ids(), '2,3,5', 'another session of courier_app: partner');
SELECT ledger.grant_clearance('tap07', 'courier_app', 'customs') \g /dev/null
SELECT is(pg_temp.remote_ids(), '1,2,3,4,5', 'the same session sees a new grant at once');
SELECT ledger.grant_clearance('tap07', 'courier_app', 'partner') \g /dev/null
SELECT is(pg_temp.remote_ids(), '2,3,5', 'and a lowered one');
GRANT customs_officer TO courier_app;
SELECT is(pg_temp.remote_ids(), '1,2,3,4,5', 'and a new membership of a cleared role');
REVOKE customs_officer FROM courier_app;
SELECT is(pg_temp.remote_ids(), '2,3,5', 'and its revocation');

-- ------------------------------------------------- owner and FORCE
-- Without FORCE the owner would read every row: this fails if row-level
-- security were missing or not forced.
CREATE TABLE tap07_owned (id int, note text, tier text);
SELECT ledger.enable_table('tap07_owned', 'tap07', 'tier') \g /dev/null
INSERT INTO tap07_owned VALUES (1, 'secret', 'customs'), (2, 'shared', 'partner'), (3, 'open', 'public');
-- an index made by a cleared role, over a function its owner could replace
CREATE INDEX tap07_owned_expr ON tap07_owned (lower(note));
ALTER TABLE tap07_owned OWNER TO courier_app;
CREATE TABLE tap07_plainidx (id int PRIMARY KEY, tier text);
SELECT ledger.enable_table('tap07_plainidx', 'tap07', 'tier') \g /dev/null
ALTER TABLE tap07_plainidx OWNER TO courier_app;
SET ROLE courier_app;
SELECT is(pg_temp.ids('tap07_owned'), '2,3', 'the table owner (partner) reads only up to partner: RLS is forced');
SELECT is((pg_temp.try($$ALTER TABLE tap07_owned NO FORCE ROW LEVEL SECURITY$$))[1:2],
		  ARRAY['42501', 'cannot alter ledger table "tap07_owned"'], 'owner: NO FORCE ROW LEVEL SECURITY is refused');
SELECT is((pg_temp.try($$ALTER TABLE tap07_owned DISABLE ROW LEVEL SECURITY$$))[1:2],
		  ARRAY['42501', 'cannot alter ledger table "tap07_owned"'], 'owner: DISABLE ROW LEVEL SECURITY is refused');
SELECT is((pg_temp.try($$CREATE POLICY tap07_all ON tap07_owned USING (true)$$))[1:2],
		  ARRAY['42501', 'cannot add a row-level security policy to ledger table "tap07_owned"'], 'owner: CREATE POLICY is refused');
SELECT is((pg_temp.try($$ALTER POLICY ledger_clearance ON tap07_owned USING (true)$$))[1:2],
		  ARRAY['42501', 'cannot alter the row-level security policy of ledger table "tap07_owned"'], 'owner: ALTER POLICY is refused');
SELECT is((pg_temp.try($$DROP POLICY ledger_clearance ON tap07_owned$$))[1:2],
		  ARRAY['42501', 'cannot drop the row-level security policy of ledger table "tap07_owned"'], 'owner: DROP POLICY is refused');
-- statements that evaluate expressions over every row need full clearance
SELECT is((pg_temp.try($$CREATE INDEX ON tap07_owned ((note::int))$$))[1:2],
		  ARRAY['42501', 'cannot create an index on ledger table "tap07_owned"'], 'owner below full clearance: CREATE INDEX is refused');
SELECT is((pg_temp.try($$ALTER TABLE tap07_owned ADD CONSTRAINT tap07_c CHECK (note::int > 0)$$))[1:2],
		  ARRAY['42501', 'cannot add or validate a constraint on ledger table "tap07_owned"'],
		  'owner below full clearance: ADD CONSTRAINT is refused (its error would show a hidden value)');
SELECT is((pg_temp.try($$CREATE STATISTICS tap07_st ON id, note FROM tap07_owned$$))[1:2],
		  ARRAY['42501', 'cannot create statistics on ledger table "tap07_owned"'], 'owner below full clearance: CREATE STATISTICS is refused');
-- rebuilding or sampling an index expression runs it over the rows too
SELECT is((pg_temp.try($$REINDEX TABLE tap07_owned$$))[1:2],
		  ARRAY['42501', 'cannot reindex ledger table "tap07_owned"'], 'owner below full clearance: REINDEX TABLE is refused');
SELECT is((pg_temp.try($$REINDEX INDEX tap07_owned_expr$$))[1:2],
		  ARRAY['42501', 'cannot reindex ledger table "tap07_owned"'], '  and REINDEX INDEX');
SELECT is((pg_temp.try($$REINDEX SCHEMA public$$))[1:2],
		  ARRAY['42501', 'cannot reindex ledger table "tap07_owned"'], '  and REINDEX SCHEMA');
SELECT is((pg_temp.try($$CLUSTER tap07_owned USING tap07_owned_expr$$))[1:2],
		  ARRAY['42501', 'cannot cluster ledger table "tap07_owned"'], '  and CLUSTER');
SELECT is((pg_temp.try($$VACUUM FULL tap07_owned$$))[1:2],
		  ARRAY['42501', 'cannot vacuum full ledger table "tap07_owned"'], '  and VACUUM FULL');
SELECT is((pg_temp.try($$ANALYZE tap07_owned$$))[1:2],
		  ARRAY['42501', 'cannot analyze ledger table "tap07_owned"'], '  and ANALYZE');
SELECT is((pg_temp.try($$ANALYZE$$))[1:2],
		  ARRAY['42501', 'cannot analyze ledger table "tap07_owned"'], '  and ANALYZE of every table the role owns');
SELECT lives_ok($$REINDEX TABLE tap07_plainidx$$, '  a ledger table whose indexes evaluate nothing is reindexed by its owner');
RESET ROLE;
ALTER TABLE tap07_owned OWNER TO customs_officer;
GRANT CREATE ON SCHEMA public TO customs_officer;
SET ROLE customs_officer;
SELECT is(pg_temp.ids('tap07_owned'), '1,2,3', 'an owner with full clearance reads every row');
SELECT lives_ok($$CREATE INDEX tap07_owned_note ON tap07_owned (note)$$, 'an owner with full clearance can CREATE INDEX');
-- pg_stats shows an index's statistics to the table's owner without
-- row-level security: an expression's values are never collected
SELECT lives_ok($$CREATE INDEX tap07_owned_lower ON tap07_owned (lower(note))$$,
				'an owner with full clearance can create an expression index');
SELECT is((SELECT attstattarget FROM pg_attribute WHERE attrelid = 'tap07_owned_lower'::regclass AND attnum = 1), 0,
		  '... whose expression collects no statistics');
SELECT is((pg_temp.try($$ALTER INDEX tap07_owned_lower ALTER COLUMN 1 SET STATISTICS 1000$$))[1:2],
		  ARRAY['42501', 'cannot collect statistics on an index expression of ledger table "tap07_owned"'],
		  '... and cannot be made to');
ALTER TABLE tap07_owned ADD CONSTRAINT tap07_owned_ex EXCLUDE USING btree ((upper(note)) WITH =);
SELECT is((SELECT attstattarget FROM pg_attribute WHERE attrelid = 'tap07_owned_ex'::regclass AND attnum = 1), 0,
		  'so does the expression of the index an EXCLUDE constraint builds');
ANALYZE tap07_owned;
SELECT is((SELECT count(*) FROM pg_stats WHERE tablename IN ('tap07_owned_lower', 'tap07_owned_ex')), 0::bigint,
		  'after ANALYZE pg_stats holds nothing for them');
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM customs_officer;
-- a domain's owner checking a constraint reads every stored value of the
-- domain, past row-level security: one below full clearance may not
CREATE DOMAIN tap07_note AS text;
ALTER DOMAIN tap07_note OWNER TO courier_app;
CREATE TABLE tap07_dom (id int, note tap07_note, tier text);
SELECT ledger.enable_table('tap07_dom', 'tap07', 'tier') \g /dev/null
INSERT INTO tap07_dom VALUES (1, 'open', 'public'), (2, 'secret', 'customs');
GRANT SELECT ON tap07_dom TO PUBLIC;
SET ROLE courier_app;
SELECT is((pg_temp.try($$ALTER DOMAIN tap07_note ADD CONSTRAINT tap07_n CHECK (VALUE::int > 0)$$))[1:2],
		  ARRAY['42501', 'cannot check a domain constraint against ledger table "tap07_dom"'],
		  'a domain owner below full clearance: ALTER DOMAIN ADD CONSTRAINT on a domain a ledger table stores is refused (its error would show a hidden value)');
SELECT is((pg_temp.try($$ALTER DOMAIN tap07_note SET NOT NULL$$))[1], '42501', '... and so is SET NOT NULL');
SELECT lives_ok($$ALTER DOMAIN tap07_note ADD CONSTRAINT tap07_nv CHECK (length(VALUE) < 100) NOT VALID$$,
				'... while NOT VALID, which reads no stored row, is not');
RESET ROLE;

-- ------------------------------------------------- the policy's guards
SELECT is((pg_temp.try($$CREATE POLICY tap07_all ON tap07_decl USING (true)$$))[1:2],
		  ARRAY['42501', 'cannot add a row-level security policy to ledger table "tap07_decl"'], 'superuser: CREATE POLICY is refused');
SELECT is((pg_temp.try($$CREATE POLICY tap07_narrow ON tap07_decl AS RESTRICTIVE USING (true)$$))[1], '42501',
		  'superuser: a restrictive policy is refused too');
SELECT is((pg_temp.try($$ALTER POLICY ledger_clearance ON tap07_decl USING (true)$$))[1], '42501', 'superuser: ALTER POLICY is refused');
SELECT is((pg_temp.try($$ALTER POLICY ledger_clearance ON tap07_decl RENAME TO other$$))[1:2],
		  ARRAY['42501', 'cannot alter the row-level security policy of ledger table "tap07_decl"'], 'superuser: ALTER POLICY RENAME is refused');
SELECT is((pg_temp.try($$DROP POLICY ledger_clearance ON tap07_decl$$))[1], '42501', 'superuser: DROP POLICY is refused');
SELECT is((pg_temp.try($$ALTER TABLE tap07_decl DISABLE ROW LEVEL SECURITY$$))[1], '42501', 'superuser: DISABLE ROW LEVEL SECURITY is refused');
SELECT is((pg_temp.try($$ALTER TABLE tap07_decl NO FORCE ROW LEVEL SECURITY$$))[1], '42501', 'superuser: NO FORCE ROW LEVEL SECURITY is refused');
SELECT is((SELECT count(*) FROM pg_policies WHERE tablename = 'tap07_decl'), 1::bigint, 'the table still has exactly its policy');
-- enable_table refuses a table that already has policies (they would widen or narrow the ledger's)
CREATE TABLE tap07_pol (id int);
CREATE POLICY tap07_pol_all ON tap07_pol USING (true);
SELECT is(pg_temp.try($$SELECT ledger.enable_table('tap07_pol', 'tap07')$$),
		  ARRAY['55000', 'table "tap07_pol" has row-level security policies',
				'A ledger table gets one policy, which shows each role the tiers it is cleared for; another policy would change that.',
				'Drop the table''s policies, then enable it.'], 'enable_table refuses a table with policies');
-- pg_restore creates the triggers before the policy: only the ledger's own policy may follow
-- (ledger.ledger_table, configuration data, comes back before both)
CREATE TABLE tap07_restored (id int, ledger_entry bigint);
INSERT INTO ledger.ledger_table (relid, channel_id, table_no, table_name)
	SELECT 'tap07_restored'::regclass, channel_id, 999, 'public.tap07_restored' FROM ledger.channel WHERE name = 'tap07';
CREATE TRIGGER ledger_capture AFTER INSERT ON tap07_restored REFERENCING NEW TABLE AS ledger_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION ledger.capture('tap07_restore', '0', '1', 'public.tap07_restored', '');
SELECT is((pg_temp.try($$CREATE POLICY tap07_all ON tap07_restored USING (true)$$))[1], '42501',
		  'restore: another policy on a ledger table without one is refused');
SELECT lives_ok($$CREATE POLICY ledger_clearance ON tap07_restored USING ((SELECT ledger.clearance_of(1)) >= 0)$$,
		  'restore: the ledger''s own policy on a ledger table without one is created');

-- --------------------------------------------------------------- INSERT
SET ROLE courier_app;
SELECT lives_ok($$INSERT INTO tap07_decl VALUES (20, '1', 1, 'Fox', 'partner')$$, 'courier_app inserts a partner row');
SELECT is(pg_temp.insert_returning(), '21:public', 'courier_app: INSERT ... RETURNING works');
SELECT is((pg_temp.try($$INSERT INTO tap07_decl VALUES (22, '1', 1, 'Hart', 'customs')$$))[1:2],
		  ARRAY['42501', 'new row violates row-level security policy for table "tap07_decl"'],
		  'courier_app cannot insert a customs row (WITH CHECK)');
SELECT is(pg_temp.try($$INSERT INTO tap07_decl VALUES (23, '1', 1, 'Ives', 'bogus')$$),
		  ARRAY['23514', 'tier "bogus" is not a tier of channel "tap07"', 'The row was inserted into ledger table "public.tap07_decl".',
				'Use one of the tiers listed in ledger.channels.'], 'a tier that is not the channel''s is still a clear error');
SELECT is((pg_temp.try($$INSERT INTO tap07_decl VALUES (24, '1', 1, 'Jade', NULL)$$))[1:2],
		  ARRAY['23502', 'tier of a row of ledger table "public.tap07_decl" must not be null'], 'a NULL tier is still a clear error');
SELECT is((pg_temp.try($$INSERT INTO tap07_enum VALUES (9, 'customs')$$))[1], '42501', 'courier_app cannot insert a customs row (enum tier)');
RESET ROLE;
SELECT is((pg_temp.try($$INSERT INTO tap07_decl VALUES (25, '1', 1, 'Kite', 'bogus')$$))[1:2],
		  ARRAY['23514', 'tier "bogus" is not a tier of channel "tap07"'], 'superuser: same error for a bad tier (capture trigger)');
SET ROLE outsider;
SELECT lives_ok($$INSERT INTO tap07_decl VALUES (30, '1', 1, 'Lark', 'public')$$, 'outsider inserts a public row');
SELECT is((pg_temp.try($$INSERT INTO tap07_decl VALUES (31, '1', 1, 'Moss', 'partner')$$))[1], '42501', 'outsider cannot insert a partner row');
RESET ROLE;
-- the consensus worker applies peers' rows as superuser in replica role
CREATE FUNCTION pg_temp.replica_insert() RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	BEGIN
		SET LOCAL session_replication_role = replica;
		INSERT INTO tap07_decl VALUES (900, '1', 1, 'Peer', 'customs');
		SELECT count(*) INTO n FROM tap07_decl WHERE id = 900;
		RAISE EXCEPTION 'tap07 rollback %', n USING ERRCODE = 'P0099';
	EXCEPTION WHEN SQLSTATE 'P0099' THEN
		RETURN SQLERRM;
	END;
END $$;
SELECT is(pg_temp.replica_insert(), 'tap07 rollback 1', 'a superuser in replica role (consensus apply) inserts a customs row');
SELECT ledger.wait_sealed() \g /dev/null
SELECT string_agg(id::text, ',' ORDER BY id) AS partner_ids, string_agg(ledger_entry::text, ',' ORDER BY ledger_entry) AS partner_entries
  FROM tap07_decl WHERE tier <> 'customs' \gset
SELECT ledger_entry AS hidden_entry FROM tap07_decl WHERE id = 1 \gset
SELECT ledger_entry AS visible_entry FROM tap07_decl WHERE id = 2 \gset
SELECT is(:'partner_ids'::text, '2,3,5,20,21,30', 'the inserted rows are there');

-- ---------------------------------------------------------------- COPY
SELECT current_setting('data_directory') || '/tap07_copy.txt' AS copyfile \gset
GRANT pg_write_server_files, pg_read_server_files TO courier_app;
SET ROLE courier_app;
COPY tap07_decl (id) TO :'copyfile';
SELECT is((pg_temp.try(format('COPY tap07_decl (id, hs_code, value, importer, tier) FROM %L', :'copyfile')))[1:2],
		  ARRAY['0A000', 'COPY FROM not supported with row-level security'],
		  'COPY FROM as a role under row-level security is refused by PostgreSQL (INSERT instead)');
RESET ROLE;
REVOKE pg_write_server_files, pg_read_server_files FROM courier_app;
SELECT is((SELECT string_agg(x, ',' ORDER BY x::bigint) FROM regexp_split_to_table(rtrim(pg_read_file(:'copyfile'), E'\n'), E'\n') x),
		  :'partner_ids', 'COPY TO as courier_app writes only the rows it may read');

-- --------------------------------------------------- views and functions
CREATE VIEW tap07_officer_view AS SELECT id, tier FROM tap07_decl;
ALTER VIEW tap07_officer_view OWNER TO customs_officer;
GRANT SELECT ON tap07_officer_view TO courier_app;
CREATE FUNCTION tap07_officer_ids() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS $$
	SELECT string_agg(id::text, ',' ORDER BY id) FROM public.tap07_decl $$;
ALTER FUNCTION tap07_officer_ids() OWNER TO customs_officer;
CREATE FUNCTION tap07_superuser_ids() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS $$
	SELECT string_agg(id::text, ',' ORDER BY id) FROM public.tap07_decl $$;
SET ROLE customs_officer;
SELECT is(pg_temp.ids('tap07_officer_view'), '1,2,3,4,5,20,21,30', 'customs_officer reads every row through its view');
RESET ROLE;
SET SESSION AUTHORIZATION courier_app;
SELECT is(pg_temp.ids('tap07_officer_view'), :'partner_ids', 'courier_app through customs_officer''s view: only its own rows');
SELECT is(tap07_officer_ids(), :'partner_ids',
		  'courier_app through customs_officer''s SECURITY DEFINER function: only its own rows (session_user''s clearance)');
SELECT is(tap07_superuser_ids(), '1,2,3,4,5,20,21,30',
		  'a SECURITY DEFINER function owned by a superuser bypasses row-level security (PostgreSQL design, documented)');
SELECT is((SELECT string_agg(entry::text, ',' ORDER BY entry) FROM ledger.history('tap07_decl')), :'partner_entries',
		  'ledger.history as courier_app: only its rows');
SELECT is((SELECT count(*) FROM ledger.history('tap07_decl') WHERE tier = 'customs'), 0::bigint, 'ledger.history shows no customs row');
SELECT is((ledger.proof('tap07', :visible_entry))->>'entry', :'visible_entry', 'ledger.proof of a visible row works');
SELECT is((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', :hidden_entry)))[1:2],
		  ARRAY['42704', format('channel "tap07" has no entry %s', :hidden_entry)], 'ledger.proof of a hidden row: "has no entry"');
SELECT is((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', :hidden_entry)))[3:4],
		  (pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', 999999999)))[3:4],
		  'ledger.proof: a hidden entry and a missing one get the same detail and hint');
SELECT is(regexp_replace((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', :hidden_entry)))[2], '[0-9]+$', 'N'),
		  regexp_replace((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', 999999999)))[2], '[0-9]+$', 'N'),
		  'ledger.proof: a hidden entry and a missing one get the same message');
RESET SESSION AUTHORIZATION;
SELECT is((ledger.proof('tap07', :hidden_entry))->>'entry', :'hidden_entry', 'the superuser gets the proof of that row');
-- a proof shows every column: a role that may read only some gets none
CREATE TABLE tap07_cols (id int, secret text);
SELECT ledger.enable_table('tap07_cols', 'tap07') \g /dev/null
INSERT INTO tap07_cols VALUES (1, 'for full readers only');
SELECT ledger.wait_sealed() \g /dev/null
SELECT ledger_entry AS cols_entry FROM tap07_cols \gset
GRANT SELECT ON tap07_cols TO customs_officer;
GRANT SELECT (ctid, ledger_entry, id) ON tap07_cols TO courier_app;
SET ROLE courier_app;
SELECT is((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', :cols_entry)))[1:2],
		  ARRAY['42704', format('channel "tap07" has no entry %s', :cols_entry)],
		  'ledger.proof of a row whose columns the role may read only in part: "has no entry"');
RESET ROLE;
-- ... also for a role that bypasses row-level security (the proof read the
-- row with the two columns it names, and showed the others)
DROP ROLE IF EXISTS tap07_bypass;
CREATE ROLE tap07_bypass BYPASSRLS;
GRANT SELECT (ctid, ledger_entry, id) ON tap07_cols TO tap07_bypass;
SET ROLE tap07_bypass;
SELECT is((pg_temp.try(format('SELECT ledger.proof(%L, %s)', 'tap07', :cols_entry)))[1:2],
		  ARRAY['42501', 'permission denied for table tap07_cols'],
		  '  and for a role that bypasses row-level security: permission denied');
RESET ROLE;

-- ------------------------------------------------------ error details
SET ROLE courier_app;
SELECT is((pg_temp.try($$INSERT INTO tap07_decl VALUES (1, 'x', 1, 'X', 'public')$$))[1:3],
		  ARRAY['23505', 'duplicate key value violates unique constraint "tap07_decl_pkey"', NULL],
		  'unique violation on a hidden key: no "Key (id)=(...)" detail');
RESET ROLE;
CREATE TABLE tap07_slots (id int, slot int4range, tier text, EXCLUDE USING gist (slot WITH &&));
SELECT ledger.enable_table('tap07_slots', 'tap07', 'tier') \g /dev/null
GRANT SELECT, INSERT ON tap07_slots TO PUBLIC;
INSERT INTO tap07_slots VALUES (1, '[1,8)', 'customs');
CREATE FUNCTION tap07_book(i int, r int4range) RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
	INSERT INTO public.tap07_slots VALUES (i, r, 'public') $$;
-- what a client receives, through a separate connection
CREATE FUNCTION pg_temp.remote_error(who text, stmt text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE c text := 'tap07_' || who;
BEGIN
	IF NOT c = ANY (coalesce(dblink_get_connections(), '{}')) THEN
		PERFORM dblink_connect(c, current_setting('tap07.conn') || ' user=' || who);
	END IF;
	RETURN pg_temp.try(format('SELECT dblink_exec(%L, %L)', c, stmt));
END $$;
SELECT set_config('tap07.conn', :'conn', false) \g /dev/null
SELECT is((pg_temp.remote_error('courier_app', $$INSERT INTO tap07_decl VALUES (1, 'x', 1, 'X', 'public')$$))[3], NULL::text,
		  'client of courier_app: unique violation on a hidden key has no detail');
SELECT is((pg_temp.remote_error('courier_app', $$INSERT INTO tap07_slots VALUES (2, '[5,10)', 'public')$$))[3],
		  'The detail is withheld: your clearance in ledger channel "tap07" is below its highest tier.',
		  'client of courier_app: exclusion violation does not show the hidden key');
SELECT is((pg_temp.remote_error('courier_app', $$SELECT tap07_book(3, '[5,10)')$$))[2:3],
		  ARRAY['conflicting key value violates exclusion constraint "tap07_slots_slot_excl"',
				'The detail is withheld: your clearance in ledger channel "tap07" is below its highest tier.'],
		  'client of courier_app through a superuser''s SECURITY DEFINER function: the detail is withheld');
SELECT is((pg_temp.remote_error('customs_officer', $$SELECT tap07_book(3, '[5,10)')$$))[3],
		  'Key (slot)=([5,10)) conflicts with existing key (slot)=([1,8)).',
		  'client of customs_officer (full clearance): the detail is kept');
SELECT is((pg_temp.remote_error('courier_app', $$SELECT 1/0$$))[2], 'division by zero', 'other errors are unchanged');

-- -------------------------------------------------------------- EXPLAIN
CREATE VIEW tap07_all_view AS SELECT * FROM tap07_decl;
GRANT SELECT ON tap07_all_view TO PUBLIC;
CREATE TABLE tap07_plain (id int);
GRANT SELECT ON tap07_plain TO PUBLIC;
CREATE FUNCTION tap07_rows() RETURNS SETOF tap07_decl LANGUAGE sql STABLE AS $$ SELECT * FROM public.tap07_decl $$;
SET ROLE courier_app;
SELECT is(pg_temp.try($$EXPLAIN SELECT * FROM tap07_decl$$),
		  ARRAY['42501', 'cannot explain a query on ledger table "tap07_decl"',
				'Table "tap07_decl" belongs to ledger channel "tap07"; plans, estimates and row counts would reveal rows above your clearance.',
				'Roles cleared for tier "customs" of channel "tap07" and superusers can.'], 'courier_app: EXPLAIN is refused');
SELECT is((pg_temp.try($$EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM tap07_decl WHERE id > 0$$))[1], '42501',
		  'courier_app: EXPLAIN ANALYZE (Rows Removed by Filter) is refused');
SELECT is((pg_temp.try($$EXPLAIN SELECT * FROM tap07_all_view$$))[1], '42501', 'courier_app: EXPLAIN through a view is refused');
SELECT is((pg_temp.try($$EXPLAIN SELECT * FROM tap07_plain WHERE EXISTS (SELECT FROM tap07_decl d WHERE d.id = tap07_plain.id)$$))[1], '42501',
		  'courier_app: EXPLAIN with a ledger table in a subquery is refused');
SELECT is((pg_temp.try($$EXPLAIN WITH c AS (SELECT * FROM tap07_decl) SELECT * FROM c$$))[1], '42501', 'courier_app: EXPLAIN with a CTE is refused');
SELECT is((pg_temp.try($$EXPLAIN CREATE TABLE tap07_ctas AS SELECT * FROM tap07_decl$$))[1], '42501', 'courier_app: EXPLAIN CREATE TABLE AS is refused');
SELECT is((pg_temp.try($$EXPLAIN SELECT * FROM tap07_rows()$$))[1], '42501',
		  'courier_app: EXPLAIN of an inlined SQL function reading a ledger table is refused');
PREPARE tap07_q AS SELECT count(*) FROM tap07_decl;
SELECT is((pg_temp.try($$EXPLAIN EXECUTE tap07_q$$))[1], '42501', 'courier_app: EXPLAIN EXECUTE is refused');
SELECT is((pg_temp.try($$EXPLAIN INSERT INTO tap07_decl VALUES (40, '1', 1, 'N', 'public')$$))[1], '42501', 'courier_app: EXPLAIN INSERT is refused');
SELECT lives_ok($$EXPLAIN SELECT * FROM tap07_plain$$, 'courier_app: EXPLAIN of other tables works');
DEALLOCATE tap07_q;
RESET ROLE;
SET ROLE customs_officer;
SELECT lives_ok($$EXPLAIN (ANALYZE) SELECT * FROM tap07_decl$$, 'customs_officer (full clearance): EXPLAIN ANALYZE works');
RESET ROLE;
SELECT lives_ok($$EXPLAIN (ANALYZE) SELECT * FROM tap07_all_view$$, 'superuser: EXPLAIN ANALYZE works');

-- ------------------------------------------------------------- pg_stats
CREATE STATISTICS tap07_decl_st ON hs_code, importer FROM tap07_decl;
ANALYZE tap07_decl;
SELECT ok((SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'tap07_decl') > 0, 'superuser: pg_stats has the table''s statistics');
SELECT ok((SELECT count(*) FROM pg_stats_ext WHERE schemaname = 'public' AND tablename = 'tap07_decl') > 0, 'superuser: pg_stats_ext too');
SET ROLE courier_app;
SELECT is((SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'tap07_decl'), 0::bigint,
		  'courier_app: pg_stats hides the table''s statistics (row-level security)');
SELECT is((SELECT count(*) FROM pg_stats_ext WHERE schemaname = 'public' AND tablename = 'tap07_decl'), 0::bigint,
		  'courier_app: pg_stats_ext hides them too');
RESET ROLE;
SET ROLE outsider;
SELECT is((SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'tap07_decl'), 0::bigint, 'outsider: pg_stats hides them');
RESET ROLE;

-- ------------------------------------------------------- the chain
SELECT is_empty($$SELECT * FROM ledger.verify('tap07')$$, 'channel tap07 verifies clean');
SELECT is((SELECT count(*) FROM ledger.history('tap07_decl') WHERE status <> 'sealed'), 0::bigint, 'every row is sealed');


-- ------------------------------------------------------- salts
-- A salt with its commitment would let a reader confirm a guessed row:
-- nobody but the extension reads the packed entries.
SET ROLE courier_app;
SELECT is((pg_temp.try($$SELECT entries FROM ledger.block LIMIT 1$$))[1], '42501',
		  'courier_app: ledger.block.entries (salts) is not readable');
SELECT is((pg_temp.try($$SELECT entries FROM ledger.pending LIMIT 1$$))[1], '42501',
		  'courier_app: ledger.pending is not readable');
SELECT ok((SELECT count(*) > 0 FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'tap07'),
		  'courier_app: the headers of ledger.block are');
SELECT is((SELECT count(*) FROM ledger.block_entries('tap07') WHERE tier = 'customs' AND salt IS NOT NULL), 0::bigint,
		  'courier_app: block_entries withholds the salts of customs rows');
SELECT ok((SELECT count(*) > 0 FROM ledger.block_entries('tap07') WHERE tier = 'customs'),
		  'courier_app: it still lists them (entry, tier, commitment)');
SELECT ok((SELECT bool_and(e.salt IS NOT NULL) FROM ledger.block_entries('tap07') e
			JOIN ledger.ledger_table t ON t.channel_id = :ch AND t.table_no = e.table_no
		   WHERE e.tier IN ('public', 'partner') AND has_table_privilege(t.relid, 'SELECT')),
		  'courier_app: and shows the salts of rows it may read (in the tables it may read)');
SELECT ok((SELECT count(*) > 0 FROM ledger.history('tap07_decl') WHERE status = 'sealed'),
		  'courier_app: ledger.history still runs');
SELECT ok(ledger.verify_digest(ledger.digest('tap07')), 'courier_app: digest and verify_digest still run');
RESET ROLE;
SET ROLE customs_officer;
SELECT ok((SELECT bool_and(salt IS NOT NULL) FROM ledger.block_entries('tap07')),
		  'customs_officer: block_entries shows every salt');
RESET ROLE;
-- a clearance is not enough: the salts of a table the role may not read
-- stay withheld too (its rows are not guessed against from outside)
BEGIN;
REVOKE SELECT ON tap07_decl FROM PUBLIC;
SELECT table_no AS decl_no FROM ledger.ledger_table WHERE relid = 'tap07_decl'::regclass \gset
SET ROLE customs_officer;
SELECT is((SELECT count(*) FROM ledger.block_entries('tap07') WHERE table_no = :decl_no AND salt IS NOT NULL), 0::bigint,
		  'customs_officer without SELECT on tap07_decl: block_entries withholds its salts');
SELECT ok((SELECT count(*) > 0 AND bool_and(salt IS NOT NULL) FROM ledger.block_entries('tap07') WHERE table_no <> :decl_no),
		  '... and still shows those of the tables it may read');
RESET ROLE;
ROLLBACK;


-- ledger.txlog: why a transaction was refused can name its rows' values,
-- so a role sees the outcomes of transactions whose rows it may all see
INSERT INTO ledger.txlog (channel_id, origin, txid, height, "position", status, detail, tier)
VALUES (:ch, '\x00', 1, 1, 1, 'rejected', 'Key (id)=(tap07-secret) already exists.', 2),
	   (:ch, '\x00', 2, 1, 2, 'accepted', NULL, 0),
	   (:ch, '\x00', 3, 1, 3, 'accepted', NULL, NULL);
CREATE FUNCTION pg_temp.outcomes() RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(txid::text, ',' ORDER BY txid), '') FROM ledger.txlog
	WHERE channel_id = (SELECT channel_id FROM ledger.channel WHERE name = 'tap07') $$;
GRANT EXECUTE ON FUNCTION pg_temp.outcomes() TO PUBLIC;
SET ROLE customs_officer;
SELECT is(pg_temp.outcomes(), '1,2,3', 'txlog: customs_officer sees the outcome of a customs transaction');
SET ROLE courier_app;
SELECT is(pg_temp.outcomes(), '2,3', 'txlog: courier_app (partner) does not, nor its detail');
SELECT is((SELECT count(*) FROM ledger.txlog WHERE detail LIKE '%tap07-secret%'), 0::bigint,
		  'txlog: no way to the detail through a filter');
SET ROLE outsider;
SELECT is(pg_temp.outcomes(), '2,3', 'txlog: outsider, in a public channel, sees lowest-tier outcomes');
RESET ROLE;
SELECT ledger.set_channel_public('tap07', false) \g /dev/null
SET ROLE outsider;
SELECT is(pg_temp.outcomes(), '', 'txlog: and none once the channel is not public');
RESET ROLE;
SELECT ledger.set_channel_public('tap07', true) \g /dev/null
DELETE FROM ledger.txlog WHERE channel_id = :ch;

SELECT dblink_disconnect(c) FROM unnest(dblink_get_connections()) c \g /dev/null
SELECT * FROM finish();
