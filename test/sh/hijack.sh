#!/usr/bin/env bash
# Objects planted by a role that is not a superuser are never taken for
# loopledger's own: a schema "ledger" made beforehand (or holding objects)
# stops CREATE EXTENSION, and functions named like built-ins in a schema on
# a DBA's search_path (nextval(text), setval(text, ...)) are not called by
# the extension's functions, nor stored in a ledger table's default.
# Channels of this database cannot have peers (consensus runs in the one
# loopledger.database names).  TAP.
set -u
S=$$
DB=taphijack_$S
R=taphijack_app_$S
cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $R" >/dev/null 2>&1
}
trap cleanup EXIT

source "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"

qd() { q -d "$DB" "$@"; }
q -d postgres -c "CREATE DATABASE $DB" -c "CREATE ROLE $R LOGIN" >/dev/null
ok $? "setup"

# the utility guard runs in every database: statements it looks at work
# where the extension is not installed
out=$(qd -c "ANALYZE" -c "VACUUM FULL" -c "CLUSTER" -c "REINDEX SCHEMA public" 2>&1)
ok $? "ANALYZE, VACUUM FULL, CLUSTER and REINDEX of no named table work in a database without the extension: $out"

# ------------------------------------------------ the schema "ledger"
qd -c "CREATE SCHEMA ledger AUTHORIZATION $R" >/dev/null
err=$(qd -c "CREATE EXTENSION loopledger" 2>&1)
like "$err" 'schema "ledger" is owned by, or open to, a role that is not a superuser' \
	"CREATE EXTENSION refuses a schema \"ledger\" owned by another role"
qd -c "ALTER SCHEMA ledger OWNER TO postgres" -c "GRANT CREATE ON SCHEMA ledger TO $R" >/dev/null
err=$(qd -c "CREATE EXTENSION loopledger" 2>&1)
like "$err" 'is owned by, or open to' "... or open to one (CREATE granted)"
qd -c "REVOKE CREATE ON SCHEMA ledger FROM $R" -c "CREATE TABLE ledger.clearance (x int)" >/dev/null
err=$(qd -c "CREATE EXTENSION loopledger" 2>&1)
like "$err" 'schema "ledger" already holds objects' "... or one that already holds objects"
is "$(qd -c "SELECT count(*) FROM pg_extension WHERE extname = 'loopledger'")" 0 \
	"  and nothing was installed"
qd -c "SET client_min_messages = warning" -c "DROP SCHEMA ledger CASCADE" -c "CREATE EXTENSION loopledger" >/dev/null
ok $? "installed once the schema is gone"

# ------------------------------------------------ look-alike functions
# The attacker's functions would make it a superuser if a superuser ran
# them; here they just fail loudly.
qd >/dev/null <<SQL
CREATE SCHEMA app AUTHORIZATION $R;
SET ROLE $R;
CREATE FUNCTION app.nextval(text) RETURNS bigint LANGUAGE plpgsql
	AS \$\$BEGIN RAISE EXCEPTION 'app.nextval ran as %', current_user; END\$\$;
CREATE FUNCTION app.setval(text, bigint, boolean) RETURNS bigint LANGUAGE plpgsql
	AS \$\$BEGIN RAISE EXCEPTION 'app.setval ran as %', current_user; END\$\$;
CREATE FUNCTION app.format_type(oid, text) RETURNS text LANGUAGE plpgsql
	AS \$\$BEGIN RAISE EXCEPTION 'app.format_type ran as %', current_user; END\$\$;
CREATE TABLE app.decl (id int, v text);
INSERT INTO app.decl VALUES (1, 'x');
RESET ROLE;
SQL
ok $? "a role plants nextval(text), setval(text, ...) and format_type(oid, text) in its schema"

sp="SET search_path = app, public"
out=$(qd -c "$sp" -c "SELECT ledger.create_channel('hj0')" 2>&1)
ok $? "create_channel with that schema first on the search_path: $out"
qd -c "SELECT ledger.create_channel('hj')" >/dev/null
out=$(qd -c "$sp" -c "SELECT ledger.enable_table('decl', 'hj')" 2>&1)
ok $? "enable_table likewise: $out"
is "$(qd -c "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = 'app.decl'::regclass AND a.attname = 'ledger_entry'")" \
	"nextval('ledger.entry_seq'::regclass)" "the entry default is the built-in nextval"
is "$(qd -c "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_proc'::regclass AND refobjid = 'app.nextval(text)'::regprocedure")" \
	0 "  (nothing depends on app's nextval)"
out=$(qd -c "SET ROLE $R" -c "INSERT INTO app.decl VALUES (2, 'y')" 2>&1)
ok $? "the table's owner inserts with the default: $out"
out=$(qd -c "$sp" -c "SELECT ledger.node_key()" 2>&1)
ok $? "node_key (which sets the entry sequence) with that search_path"
# consensus runs in the database loopledger.database names only; channel
# numbers repeat across databases, so a channel here must not reach the
# consensus slots of that database's channel of the same number
err=$(qd -c "SELECT ledger.add_peer('hj', 'other', 'host=x', repeat('1b', 32))" 2>&1)
like "$err" "ledger channel \"hj\" cannot have peers in database \"$DB\"" \
	"add_peer in another database than loopledger.database is refused"
is "$(qd -c "SELECT count(*) FROM ledger.history('app.decl')")" 2 "ledger.history with that search_path"

# every user-callable function of the extension runs with a fixed
# search_path, apart from the hot paths, which qualify what they call
unpinned=$(qd -c "SELECT string_agg(p.proname, ', ' ORDER BY p.proname) FROM pg_proc p
	WHERE p.pronamespace = 'ledger'::regnamespace
	  AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false)
	  AND p.proname NOT IN ('capture', 'refuse_change', 'refuse_catalog_change', 'clearance_of',
							'tier_index', 'config_hash', 'header_hash', 'definition_clause')")
is "$unpinned" "" "every other function of schema ledger sets search_path = pg_catalog, pg_temp"

echo "1..$n"
[ "$failed" = 0 ]
