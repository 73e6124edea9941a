#!/usr/bin/env bash
# pg_dump / pg_restore (custom format) and plain-SQL dump through psql of the
# "ledger" database into fresh databases: this script's channels verify
# clean there, their digests equal the originals, the ledger tables keep
# their rows, entry numbers and guards.  TAP output.
set -u
S=$$
C=tapdump_$S
C2=tapdump2_$S
DB_C=tapdump_c_$S
DB_P=tapdump_p_$S
SRC=${PGDATABASE:-ledger}
WORK=$(mktemp -d)
chmod 755 "$WORK"
cleanup() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB_C" >/dev/null 2>&1
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB_P" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

source "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"

q -d "$SRC" >/dev/null <<SQL
SELECT ledger.create_channel('$C', ARRAY['public','partner','customs']);
SELECT ledger.create_channel('$C2');
CREATE TYPE ${C}_lvl AS ENUM ('public','partner','customs');
CREATE TABLE ${C}_decl (id bigint PRIMARY KEY, hs text, value numeric(12,2), at timestamptz, tags text[], lvl ${C}_lvl);
INSERT INTO ${C}_decl VALUES (100, 'old', 1.00, '2024-01-01 00:00+00', '{a}', 'partner');
SELECT ledger.enable_table('${C}_decl', '$C', 'lvl');
INSERT INTO ${C}_decl VALUES (1, '8471.30', 1299.00, '2024-05-06 07:08:09.123+02', '{x,NULL}', 'customs');
INSERT INTO ${C}_decl SELECT g, 'hs' || g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour', ARRAY['t' || g], 'public'
  FROM generate_series(1001, 1198) g;
CREATE SCHEMA ${C}_s;
CREATE TABLE ${C}_s.pickups (parcel text, courier text, b bytea, j jsonb);
SELECT ledger.enable_table('${C}_s.pickups', '$C');
INSERT INTO ${C}_s.pickups VALUES ('P-1', 'Fast', '\x00ff', '{"k": [1, 2]}'), ('P-2', 'Zürich', NULL, NULL);
CREATE TABLE ${C2}_t (x int);
SELECT ledger.enable_table('${C2}_t', '$C2');
INSERT INTO ${C2}_t SELECT generate_series(1, 10);
INSERT INTO ${C2}_t VALUES (11);
SELECT ledger.wait_sealed();
SQL
ok $? "setup: two channels, three ledger tables, rows in several blocks"

snapshot() { # DB -> one line per fact
	q -d "$1" <<SQL
SELECT 'digest ' || c || ' ' || (ledger.digest(c) - 'time')::text || ' ' || (ledger.digest(c)->>'time') FROM unnest(ARRAY['$C', '$C2']) c;
SELECT 'rows ' || count(*) || ' ' || sum(ledger_entry) || ' ' || md5(string_agg(d::text, '|' ORDER BY ledger_entry)) FROM ${C}_decl d;
SELECT 'rows ' || count(*) || ' ' || sum(ledger_entry) || ' ' || md5(string_agg(p::text, '|' ORDER BY ledger_entry)) FROM ${C}_s.pickups p;
SELECT 'rows ' || count(*) || ' ' || sum(ledger_entry) FROM ${C2}_t;
SELECT 'tables ' || string_agg("table"::text || ':' || channel || ':' || coalesce(tier_column::text, '-') || ':' || table_no, ',' ORDER BY "table"::text)
  FROM ledger.tables WHERE channel IN ('$C', '$C2');
SELECT 'blocks ' || c.name || ' ' || count(*) || ' ' || md5(string_agg(b::text, '|' ORDER BY height))
  FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name IN ('$C', '$C2') GROUP BY c.name ORDER BY c.name;
SELECT 'channel ' || name || ' ' || tiers::text || ' ' || encode(config_hash, 'hex') FROM ledger.channel WHERE name IN ('$C', '$C2') ORDER BY name;
SQL
}
snapshot "$SRC" >"$WORK/src.txt"
ok $? "snapshot of the source database"
for ch in $C $C2; do
	is "$(q -d "$SRC" -c "SELECT count(*) FROM ledger.verify('$ch')")" 0 "source: $ch verifies clean"
done

check_restored() { # DB label
	local db=$1 l=$2 ch
	snapshot "$db" >"$WORK/$db.txt" 2>&1
	out=$(diff "$WORK/src.txt" "$WORK/$db.txt")
	is "$out" "" "$l: digests, rows, entry numbers, tables, blocks and channels equal the original's"
	for ch in $C $C2; do
		is "$(q -d "$db" -c "SELECT coalesce(string_agg(block_height || ': ' || problem, E'\n'), '') FROM ledger.verify('$ch')" 2>&1)" "" \
			"$l: $ch verifies clean"
		is "$(q -d "$db" -c "SELECT ledger.verify_digest('$(q -d "$SRC" -c "SELECT ledger.digest('$ch')")')" 2>&1)" t \
			"$l: the original's digest of $ch verifies"
	done
	is "$(q -d "$db" -c "SELECT count(*) FROM ledger.history('${C}_decl') WHERE status = 'sealed'" 2>&1)" 200 "$l: history shows the rows sealed"
	is "$(q -d "$db" -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = '${C}_decl'::regclass AND tgname IN ('ledger_capture', 'ledger_append_only')" 2>&1)" 2 \
		"$l: both ledger triggers are restored"
	local e
	for stmt in "UPDATE ${C}_decl SET hs = 'x' WHERE id = 1" "DELETE FROM ${C}_decl" "TRUNCATE ${C}_decl" \
		"ALTER TABLE ${C}_decl ADD COLUMN z int" "DROP TABLE ${C}_s.pickups" "ALTER TABLE ${C}_decl DISABLE TRIGGER ALL" \
		"DROP SCHEMA ${C}_s CASCADE"; do
		e=$(psql -X -v ON_ERROR_STOP=1 -d "$db" -v VERBOSITY=verbose -c "$stmt" 2>&1)
		ok $([[ "$e" == *"ERROR:  42501: cannot "*"ledger table"* ]]; echo $?) "$l: refused: $stmt"
	done
	# new rows continue the numbering (no worker seals this database: commit asynchronously)
	e=$(PGOPTIONS="-c loopledger.synchronous_commit=off" psql -X -v ON_ERROR_STOP=1 -d "$db" -Atq \
		-c "INSERT INTO ${C}_decl VALUES (999, 'new', 1, now(), '{}', 'public') RETURNING ledger_entry > (SELECT max(ledger_entry) FROM ${C}_decl WHERE id <> 999)" 2>"$WORK/insert.err")
	is "$e" t "$l: INSERT works and takes a new, higher entry number"
	ok $(grep -q 'no loopledger worker' "$WORK/insert.err"; echo $?) "$l: the INSERT warns that no worker seals this database"
	is "$(q -d "$db" -c "SELECT status FROM ledger.history('${C}_decl') h JOIN ${C}_decl d ON d.ledger_entry = h.entry WHERE d.id = 999" 2>&1)" pending \
		"$l: the new row is committed and pending"
	is "$(q -d "$db" -c "SELECT count(*) FROM ledger.verify('$C')" 2>&1)" 0 "$l: a pending row is not a problem"
}

# ---------------------------------------------------------------- custom format
pg_dump -Fc -d "$SRC" -f "$WORK/ledger.dump" 2>"$WORK/dump.err"
ok $? "pg_dump -Fc of the ledger database"
q -d postgres -c "CREATE DATABASE $DB_C"
out=$(pg_restore --exit-on-error -d "$DB_C" "$WORK/ledger.dump" 2>&1)
rc=$?
ok $rc "pg_restore --exit-on-error into a fresh database"
[ $rc = 0 ] || sed 's/^/#   /' <<<"$out" | head -20
check_restored "$DB_C" "custom"

# ---------------------------------------------------------------- plain SQL
q -d postgres -c "CREATE DATABASE $DB_P"
pg_dump -Fp -d "$SRC" 2>"$WORK/dump2.err" | psql -X -q -v ON_ERROR_STOP=1 -d "$DB_P" >"$WORK/plain.out" 2>&1
rc=("${PIPESTATUS[@]}")
ok ${rc[0]} "pg_dump -Fp of the ledger database"
ok ${rc[1]} "the plain dump restores through psql with ON_ERROR_STOP"
[ "${rc[1]}" = 0 ] || grep -m5 ERROR "$WORK/plain.out" | sed 's/^/#   /'
check_restored "$DB_P" "plain"

# the source is untouched
snapshot "$SRC" >"$WORK/src_after.txt"
is "$(diff "$WORK/src.txt" "$WORK/src_after.txt")" "" "the source database is unchanged"
q -d postgres -c "DROP DATABASE $DB_C" && q -d postgres -c "DROP DATABASE $DB_P"
ok $? "restored databases dropped"
echo "1..$n"
[ $failed = 0 ]
