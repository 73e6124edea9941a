#!/usr/bin/env bash
# Multi-peer channel, 4 nodes, BFT order (test/multinode.sh harness):
#  - 4 pgbench runs insert unique rows on all 4 nodes at once for 5 s;
#    afterwards every node has the same head block, the same rows with the
#    same entry numbers, the same ledger.txlog, and ledger.verify is clean;
#  - INSERT ... RETURNING and row counts; ledger.peers and
#    ledger.consensus_status; equal genesis hashes;
#  - 20 keys inserted on node 1 and node 3 in transactions that COMMIT at
#    the same instant: exactly one of each pair commits, the other fails
#    with SQLSTATE 40001 (or 40003 when it gave way to the worker: its
#    outcome was left to the order), each key exists once on every node;
#  - enable_table on the multi-peer channel refuses a table with a foreign
#    key, with a trigger, with a volatile CHECK, and a non-empty table, and
#    changes nothing; it refuses int[], composite and money columns (peers
#    could not read their canonical text back), and two rows of every type
#    it takes, inserted under hostile session settings, arrive identical;
#  - multi-peer rows rolled back to a savepoint: a transaction left with
#    none (next to a local channel's row, or alone) commits like a plain
#    one, one left with some submits only those.
# Starts its own clusters: .tmp/tmnbasic<pid>_1..4 on ports 25811-25814
# (or +100, +200 ... when those are taken; MN_BASIC_PORT changes the base),
# kept for inspection when a check fails, removed otherwise.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
set +e +o pipefail
# a prefix of our own: another run of this test (other checkout, other
# shell) must not remove our clusters, nor we theirs
MN_PREFIX=tmnbasic$$_
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"

BASEPORT=$(pick_baseport ${MN_BASIC_PORT:-25810})
CH=customs
TIERS="ARRAY['public','partner','customs']"
N=4
WORK=$(mktemp -d)
chmod 755 "$WORK"

# a new build installed while we run makes restarted nodes differ: say so
mn_watch_build
cleanup() {
	mn_finish
	rm -rf "$WORK"
}
trap cleanup EXIT

# on node I: the "SQLSTATE: message" of the first error of SQL, "no error",
# or "psql failed: ..." (no connection)
error_of() {
	local out err rc
	out=$(node_psql "$1" -Atq -c "\\set VERBOSITY verbose" -c "$2" 2>&1 >/dev/null)
	rc=$?
	err=$(echo "$out" | sed -n 's/^ERROR:  //p' | head -1)
	if [ -n "$err" ]; then echo "$err"
	elif [ $rc = 0 ]; then echo "no error"
	else echo "psql failed: $(echo "$out" | head -1)"; fi
}
# the same value of SQL on every node, or one line per node

# ------------------------------------------------------------------ setup
(set -e; start_nodes $N "$BASEPORT")
rc=$?
MN_NODES=$N
ok $rc "start $N nodes on ports $((BASEPORT + 1))-$((BASEPORT + N))"
[ $rc = 0 ] || { echo "Bail out! nodes did not start"; exit 1; }
echo "# nodes up after ${SECONDS}s"
(set -e; setup_channel $CH "$TIERS" $N)
ok $? "setup_channel: every node creates channel $CH and adds all $N peers"
rc=0
for i in $(seq 1 $N); do
	node_psql "$i" -q -c "CREATE TABLE parcel (id text PRIMARY KEY, status text, tier text);
	                      SELECT ledger.enable_table('parcel', '$CH', 'tier');
	                      CREATE SEQUENCE idseq;" >/dev/null || rc=1
done
ok $rc "CREATE TABLE parcel and enable_table on every node"
[ $rc = 0 ] || { echo "Bail out! setup failed"; exit 1; }

is "$(same_on_all "SELECT encode(ledger.genesis_hash('$CH'), 'hex')" | wc -l)" 1 "ledger.genesis_hash('$CH') is the same on all $N nodes"

# ledger.peers: 4 rows, this node 'self', the others 'up' (peers connect
# in the background: give them 15 s)
want="self,up,up,up"
for t in $(seq 1 150); do
	[ "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" = "$want" ] && break
	sleep 0.1
done
is "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" "$want" \
	"ledger.peers on every node: 4 rows, states self/up/up/up"
bad=0
for i in $(seq 1 $N); do
	key=$(node_psql "$i" -Atc "SELECT ledger.node_key()")
	for j in $(seq 1 $N); do
		row=$(node_psql "$j" -Atc "SELECT state FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name "$i")' AND encode(pubkey, 'hex') = '$key'")
		if [ "$i" = "$j" ]; then [ "$row" = self ] || bad=$((bad + 1)); else [ "$row" = up ] || bad=$((bad + 1)); fi
	done
done
is $bad 0 "every node lists every peer under its name and node_key(), itself as 'self'"
is "$(same_on_all "SELECT validators || ' ' || quorum FROM ledger.consensus_status WHERE channel = '$CH'")" "4 3" \
	"ledger.consensus_status on every node: validators 4, quorum 3"
wait_agreed parcel
ok $? "the definition of parcel is agreed on every node (ledger.table_definitions)"
is "$(same_on_all "SELECT signatures_made > 0 AND signatures_checked > 0 AND votes_parked >= 0 AND messages_rejected = 0 FROM ledger.consensus_status WHERE channel = '$CH'")" "t" \
	"ledger.consensus_status counts signatures made and checked on every node, and no rejected message among honest peers"

# ------------------------------------------------------------------ INSERT ... RETURNING
out=$(node_psql 2 -At -c "INSERT INTO parcel VALUES ('r1', 'filed', 'public'), ('r2', 'filed', 'partner'), ('r3', 'filed', 'customs')
                           RETURNING id, status, tier, ledger_entry IS NOT NULL" 2>&1)
is "$out" "r1|filed|public|t
r2|filed|partner|t
r3|filed|customs|t
INSERT 0 3" "INSERT of 3 rows on node 2: RETURNING gives the rows with their ledger_entry, command tag INSERT 0 3"
r1_entry=$(node_psql 2 -Atc "SELECT ledger_entry FROM parcel WHERE id = 'r1'")
wait_converged $CH 30
ok $? "converged after the 3-row insert"
is "$(same_on_all "SELECT string_agg(id || ':' || ledger_entry, ',' ORDER BY id) FROM parcel")" \
	"$(node_psql 2 -Atc "SELECT string_agg(id || ':' || ledger_entry, ',' ORDER BY id) FROM parcel")" \
	"the 3 rows have the same ledger_entry on every node (r1 = $r1_entry)"

# ------------------------------------------------------------------ concurrent load on all nodes
for i in $(seq 1 $N); do
	cat >"$WORK/load$i.sql" <<-SQL
		INSERT INTO parcel (id, status, tier)
		VALUES ('n$i-' || nextval('idseq'), 'filed', (ARRAY['public','partner','customs'])[1 + :client_id % 3]);
	SQL
done
pids=()
for i in $(seq 1 $N); do
	name=$(node_name "$i")
	pgbench -h "$TMP/$name" -p "$(cluster_port "$name")" -U postgres -n -c 4 -j 2 -T 5 \
		-f "$WORK/load$i.sql" ledger >"$WORK/pgbench$i.log" 2>&1 &
	pids+=($!)
done
rc=0
for i in $(seq 1 $N); do wait "${pids[i - 1]}" || { rc=1; sed 's/^/#   /' "$WORK/pgbench$i.log" | tail -5; }; done
ok $rc "pgbench on all $N nodes at once, 4 clients each, 5 s, no client failed"
total=0
for i in $(seq 1 $N); do
	t=$(awk '/number of transactions actually processed:/ { print $NF; exit }' "$WORK/pgbench$i.log")
	t=${t%%/*}
	echo "# node $i: ${t:-?} transactions, $(awk '/^tps = / { print $3; exit }' "$WORK/pgbench$i.log") tx/s"
	total=$((total + ${t:-0}))
done
ok $([ $total -gt 0 ]; echo $?) "the load committed transactions ($total)"

echo "# load done after ${SECONDS}s"
wait_converged $CH 60
ok $? "wait_converged: the same head block hash on all nodes within 60 s"
is "$(same_on_all "SELECT ledger.digest('$CH')->>'block_hash'" | wc -l)" 1 "ledger.digest block_hash identical on all nodes"
is "$(same_on_all "SELECT ledger.digest('$CH')->>'height'" | wc -l)" 1 "ledger.digest height identical on all nodes"
is "$(same_on_all "SELECT count(*) FROM parcel")" "$((total + 3))" \
	"every node has the 3 + $total committed rows"
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id LIKE 'n%-%'" )" "$total" "every node has exactly the $total pgbench rows"
for i in $(seq 1 $N); do
	is "$(node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id LIKE 'n$i-%'")" \
		"$(awk '/number of transactions actually processed:/ { print $NF; exit }' "$WORK/pgbench$i.log" | cut -d/ -f1)" \
		"node $i has as many of its own rows as its pgbench committed"
done
md5sql="SELECT md5(string_agg(id || status || ledger_entry, ',' ORDER BY ledger_entry)) FROM parcel"
is "$(same_on_all "$md5sql" | wc -l)" 1 "md5 of (id, status, ledger_entry) in entry order identical on all nodes"
[ "$(same_on_all "$md5sql" | wc -l)" = 1 ] || echo "#   $(per_node "$md5sql")"
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" 0 "ledger.verify('$CH') finds nothing on any node"
# batches from their own origin are taken on the link MAC (the signature
# stays in the batch for the record); the key exchange reached every link
is "$(same_on_all "SELECT count(*) FILTER (WHERE link_key) FROM ledger.peers WHERE channel = '$CH' AND state <> 'self'")" "$((N - 1))" \
	"every node agreed a link MAC key with each of its $((N - 1)) peers"
is "$(same_on_all "SELECT count(*) FILTER (WHERE mac_batches > 0) FROM ledger.peers WHERE channel = '$CH' AND state <> 'self'")" "$((N - 1))" \
	"every node took batches of each peer on the link MAC"
is "$(same_on_all "SELECT count(*) FROM ledger.block_entries('$CH') WHERE block_height IS NULL")" 0 "nothing pending on any node"
is "$(same_on_all "SELECT count(*) FROM ledger.txlog WHERE status = 'accepted'")" "$(node_psql 1 -Atc "SELECT count(*) FROM ledger.txlog WHERE status = 'accepted'")" \
	"ledger.txlog has the same number of accepted transactions on every node"
txsql="SELECT md5(string_agg(concat_ws('|', encode(origin, 'hex'), txid, height, position, status, coalesce(tier, -1)), ',' ORDER BY height, position)) FROM ledger.txlog"
# Rows of ledger.txlog not on every node, with the nodes that have them.
txlog_diff() {
	local i
	for i in $(seq 1 "$N"); do
		node_psql "$i" -Atc "SELECT concat_ws('|', encode(origin, 'hex'), txid, height, position, status, coalesce(tier, -1), detail) FROM ledger.txlog" |
			sed "s/^/node$i /"
	done | awk -v n="$N" '{ r = substr($0, index($0, " ") + 1); c[r]++; w[r] = w[r] " " $1 }
	                      END { for (r in c) if (c[r] < n) print r " -" w[r] }' | head -20
}
# ledger.txlog must match on every node once the heads do.  A difference
# is shown (it was seen once in CI, right after the key conflicts), and
# polled for up to 10 s to tell a lasting one from one that settles.
txlog_check() {
	local polls=0
	if [ "$(same_on_all "$txsql" | wc -l)" != 1 ]; then
		echo "#   ledger.txlog differs between nodes although their heads agree; rows not on every node:"
		txlog_diff | sed 's/^/#     /'
		for polls in $(seq 1 50); do
			[ "$(same_on_all "$txsql" | wc -l)" = 1 ] && break
			sleep 0.2
		done
		echo "#   compared again $polls times, 0.2 s apart"
	fi
	is "$(same_on_all "$txsql" | wc -l)" 1 "$1"
}
txlog_check "ledger.txlog (origin, txid, height, position, status, tier) identical on all nodes"
# ------------------------------------------------------------------ conflicting inserts
# 20 keys; each inserted on node 1 and on node 3 in a transaction that
# waits for the same instant T before COMMIT.
K=20
T=$(date -d '+4 sec' '+%Y-%m-%d %H:%M:%S.%N%:z')
for k in $(seq 1 $K); do
	for i in 1 3; do
		(
			node_psql "$i" -q -c "\\set VERBOSITY verbose" -c "BEGIN" \
				-c "INSERT INTO parcel VALUES ('dup$k', 'from$i', 'public')" \
				-c "SELECT pg_sleep_until('$T')" -c "COMMIT" >"$WORK/dup.$k.$i.out" 2>&1
			echo $? >"$WORK/dup.$k.$i.rc"
		) &
	done
done
wait
one_won=0 loser_40001=0 gave_way=0 other=()
for k in $(seq 1 $K); do
	r1=$(cat "$WORK/dup.$k.1.rc") r3=$(cat "$WORK/dup.$k.3.rc")
	if [ "$r1" = 0 ] && [ "$r3" != 0 ]; then
		one_won=$((one_won + 1)); winner[k]=1; loser=3
	elif [ "$r3" = 0 ] && [ "$r1" != 0 ]; then
		one_won=$((one_won + 1)); winner[k]=3; loser=1
	else
		winner[k]=none; other+=("dup$k: node1 rc=$r1 node3 rc=$r3"); continue
	fi
	if grep -q '^ERROR:  40001: transaction rejected by the agreed order' "$WORK/dup.$k.$loser.out"; then
		loser_40001=$((loser_40001 + 1))
	elif grep -q '^ERROR:  40003: transaction gave way to one the ledger channel ordered first; its outcome is not known yet' "$WORK/dup.$k.$loser.out"; then
		# it gave way to the worker: the order decided it later (below)
		loser_40001=$((loser_40001 + 1)) gave_way=$((gave_way + 1))
		grep -q "^HINT:  Look up its outcome in ledger.txlog (txid [0-9]*) before retrying it." "$WORK/dup.$k.$loser.out" ||
			other+=("dup$k loser node$loser: 40003 without its key in the hint")
	else
		other+=("dup$k loser node$loser: $(grep -m1 ERROR "$WORK/dup.$k.$loser.out")")
	fi
done
is $one_won $K "same key on node 1 and node 3 committing at once: exactly one of each of the $K pairs commits"
is $loser_40001 $K "the other fails at COMMIT with SQLSTATE 40001 'transaction rejected by the agreed order ...', or 40003 'transaction gave way ...; its outcome is not known yet' with its key"
echo "#   $gave_way of them gave way to the worker (40003)"
for o in "${other[@]}"; do echo "#   $o"; done
wait_converged $CH 30
ok $? "converged after the conflicts"
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id LIKE 'dup%'")" $K "every node has each of the $K keys ..."
is "$(same_on_all "SELECT count(*) FROM (SELECT id FROM parcel WHERE id LIKE 'dup%' GROUP BY id HAVING count(*) <> 1) x")" 0 "... exactly once"
want=$(for k in $(seq 1 $K); do echo "dup$k:from${winner[k]}"; done | LC_ALL=C sort | paste -sd,)
is "$(same_on_all "SELECT string_agg(id || ':' || status, ',' ORDER BY id || ':' || status COLLATE \"C\") FROM parcel WHERE id LIKE 'dup%'")" "$want" \
	"on every node each key holds the row of the transaction whose COMMIT succeeded"
is "$(same_on_all "$md5sql" | wc -l)" 1 "md5 of the table identical on all nodes"
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" 0 "ledger.verify clean on every node"
txlog_check "ledger.txlog (origin, txid, height, position, status) still identical on all nodes"

# ------------------------------------------------------------------ enable_table refusals
head_before=$(node_psql 1 -Atc "SELECT ledger.digest('$CH')->>'block_hash'")
node_psql 1 -q -c "
	CREATE TABLE fk_ref (id text PRIMARY KEY);
	CREATE TABLE fk_t (id text PRIMARY KEY, ref text REFERENCES fk_ref, tier text);
	CREATE TABLE trg_t (id text PRIMARY KEY, tier text);
	CREATE FUNCTION trg_f() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RETURN NEW; END\$\$;
	CREATE TRIGGER trg BEFORE INSERT ON trg_t FOR EACH ROW EXECUTE FUNCTION trg_f();
	CREATE TABLE full_t (id text PRIMARY KEY, tier text);
	INSERT INTO full_t VALUES ('x', 'public');
	CREATE TABLE chk_t (id text PRIMARY KEY, at timestamptz CHECK (at <= now()), tier text);" >/dev/null
ok $? "created the candidate tables on node 1"
e=$(error_of 1 "SELECT ledger.enable_table('fk_t', '$CH', 'tier')")
is "${e%%:*}" 0A000 "enable_table: a table with a foreign key is refused with SQLSTATE 0A000"
echo "#   $e"
ok $(echo "$e" | grep -qi 'foreign key\|fk_t_ref_fkey'; echo $?) "... and the message names the foreign key (not just 'has triggers')"
e=$(error_of 1 "SELECT ledger.enable_table('trg_t', '$CH', 'tier')")
is "$e" "0A000: table \"trg_t\" has triggers" "enable_table: a table with a trigger is refused: 0A000, 'table \"trg_t\" has triggers'"
e=$(error_of 1 "SELECT ledger.enable_table('full_t', '$CH', 'tier')")
is "$e" "55000: table \"full_t\" is not empty" "enable_table: a non-empty table is refused: 55000, 'table \"full_t\" is not empty'"
e=$(error_of 1 "SELECT ledger.enable_table('chk_t', '$CH', 'tier')")
is "$e" "0A000: constraint \"chk_t_at_check\" of table \"chk_t\" could decide differently on different peers" \
	"enable_table: a table with a CHECK calling now() is refused: 0A000"
is "$(node_psql 1 -Atc "SELECT string_agg(\"table\"::text, ',' ORDER BY \"table\"::text) FROM ledger.tables")" "parcel" \
	"the refused tables did not become ledger tables"
is "$(node_psql 1 -Atc "SELECT count(*) FROM pg_attribute WHERE attname = 'ledger_entry' AND attrelid IN ('fk_t'::regclass, 'trg_t'::regclass, 'full_t'::regclass, 'chk_t'::regclass)")" 0 \
	"the refused tables got no ledger_entry column"
is "$(node_psql 1 -Atc "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('fk_t'::regclass, 'trg_t'::regclass, 'full_t'::regclass, 'chk_t'::regclass) AND NOT tgisinternal AND tgname <> 'trg'")" 0 \
	"the refused tables got no ledger triggers"
node_psql 1 -q -c "INSERT INTO trg_t VALUES ('plain', 'public'); INSERT INTO full_t VALUES ('y', 'public')" >/dev/null
ok $? "the refused tables still take plain INSERTs"
sleep 0.5
is "$(node_psql 1 -Atc "SELECT ledger.digest('$CH')->>'block_hash'")" "$head_before" "the refusals and the plain INSERTs made no block"
wait_converged $CH 10
ok $? "still converged after the refusals"

# an immutable CHECK is fine: enable such a table on every node, insert on node 4
rc=0
for i in $(seq 1 $N); do
	[ "$(error_of "$i" "CREATE TABLE imm_t (id text PRIMARY KEY CHECK (length(id) < 10), tier text);
	                    SELECT ledger.enable_table('imm_t', '$CH', 'tier')")" = "no error" ] || rc=1
done
ok $rc "enable_table accepts a table whose CHECK is immutable (on every node)"
wait_agreed imm_t
ok $? "the definition of imm_t is agreed on every node"
is "$(error_of 4 "INSERT INTO imm_t VALUES ('ok', 'public')")" "no error" "an INSERT into it on node 4 commits"
is "$(error_of 2 "INSERT INTO imm_t VALUES ('much-too-long', 'public')" | cut -d: -f1)" 23514 "its CHECK still refuses a bad row (23514)"
wait_converged $CH 30
ok $? "converged after the insert into imm_t"
is "$(same_on_all "SELECT string_agg(id || ':' || ledger_entry, ',') FROM imm_t" | wc -l)" 1 "the imm_t row is on every node with the same ledger_entry"
is "$(same_on_all "SELECT count(*) FROM imm_t")" 1 "... once"

# a stored generated column: peers recompute it as they insert the row
rc=0
for i in $(seq 1 $N); do
	[ "$(error_of "$i" "CREATE TABLE gen_t (id text PRIMARY KEY, qty int, price int,
	                      total int GENERATED ALWAYS AS (qty * price) STORED, tier text);
	                    SELECT ledger.enable_table('gen_t', '$CH', 'tier')")" = "no error" ] || rc=1
done
ok $rc "enable_table accepts a table with a stored generated column (on every node)"
wait_agreed gen_t
ok $? "the definition of gen_t is agreed on every node"
is "$(error_of 3 "INSERT INTO gen_t (id, qty, price, tier) VALUES ('g1', 6, 7, 'public')")" "no error" \
	"an INSERT into it on node 3 commits"
wait_converged $CH 30
ok $? "converged after the insert into gen_t"
is "$(same_on_all "SELECT string_agg(id || ':' || total || ':' || ledger_entry, ',') FROM gen_t")" "g1:42:$(node_psql 3 -Atc "SELECT ledger_entry FROM gen_t")" \
	"the gen_t row, its generated total included, is the same on every node"
# a deferrable unique key is refused: its check is a row trigger, which
# does not fire in the peers' workers (replica mode), so two transactions
# taking one key were both accepted everywhere
like "$(error_of 1 "ALTER TABLE gen_t ADD CONSTRAINT gen_t_qty UNIQUE (qty) DEFERRABLE")" \
	'constraint "gen_t_qty" of table "gen_t" could decide differently on different peers' \
	"a deferrable unique constraint is refused on gen_t"
# an index whose expression calls a function without its own search_path,
# checked before CREATE INDEX CONCURRENTLY runs (it commits as it goes)
node_psql 1 -qc "CREATE FUNCTION qty_key(q int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT q * 2'" >/dev/null
like "$(node_psql 1 -c "CREATE INDEX CONCURRENTLY gen_t_qk ON gen_t (qty_key(qty))" 2>&1)" \
	'index "gen_t_qk" of table "gen_t" could compute differently on different peers' \
	"CREATE INDEX CONCURRENTLY over such a function is refused before it runs"
is "$(node_psql 1 -Atc "SELECT count(*) FROM pg_class WHERE relname = 'gen_t_qk'")" 0 "and leaves no index behind"
rc=0
for i in $(seq 1 $N); do
	[ "$(error_of "$i" "ALTER TABLE gen_t ADD CONSTRAINT gen_t_qty UNIQUE (qty)")" = "no error" ] || rc=1
done
ok $rc "a unique constraint added to gen_t on every node"
wait_agreed gen_t
ok $? "the changed definition of gen_t is agreed on every node"
is "$(error_of 2 "INSERT INTO gen_t (id, qty, price, tier) VALUES ('g2', 3, 5, 'public')")" "no error" \
	"an INSERT into it on node 2 commits"
wait_converged $CH 30
ok $? "converged after the second insert into gen_t"
is "$(same_on_all "SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM gen_t")" "g1:42,g2:15" \
	"both gen_t rows, generated totals included, are the same on every node"
# A peer's row goes in as its table's owner, in a restricted operation:
# the worker is a superuser, and the owner of a function a CHECK calls can
# replace its body at any time.  The probe counts calls made as a
# superuser; own_d has a primary key, own_s a unique key and a CHECK
# that reads its column through a domain-free expression.
rc=0
for i in $(seq 1 $N); do
	[ "$(error_of "$i" "CREATE ROLE ll_owner; CREATE SEQUENCE escalated;
	                    GRANT USAGE, UPDATE ON SEQUENCE escalated TO ll_owner;
	                    CREATE FUNCTION owner_probe(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
	                        SET search_path = pg_catalog AS \$f\$
	                    BEGIN
	                        IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
	                            PERFORM nextval('public.escalated');
	                        END IF;
	                        RETURN t <> '';
	                    END \$f\$;
	                    ALTER FUNCTION owner_probe(text) OWNER TO ll_owner;
	                    CREATE TABLE own_d (id text PRIMARY KEY CHECK (public.owner_probe(id)), tier text);
	                    CREATE TABLE own_s (id text CHECK (public.owner_probe(id)), tier text,
	                                        UNIQUE (id));
	                    ALTER TABLE own_d OWNER TO ll_owner; ALTER TABLE own_s OWNER TO ll_owner;
	                    SELECT ledger.enable_table('own_d', '$CH', 'tier');
	                    SELECT ledger.enable_table('own_s', '$CH', 'tier')")" = "no error" ] || rc=1
done
ok $rc "tables owned by a role without clearance, with a CHECK calling its function, enabled on every node"
wait_agreed own_d own_s
ok $? "their definitions are agreed on every node"
is "$(error_of 1 "INSERT INTO own_d VALUES ('d1', 'public'); INSERT INTO own_s VALUES ('s1', 'public')")" "no error" \
	"rows inserted into both on node 1"
wait_converged $CH 30
ok $? "converged after the inserts into own_d and own_s"
is "$(same_on_all "SELECT (SELECT string_agg(id, ',') FROM own_d) || ' ' || (SELECT string_agg(id, ',') FROM own_s)")" "d1 s1" \
	"both rows are on every node"
is "$(for i in 2 3 4; do node_psql $i -Atc "SELECT is_called FROM escalated"; done | sort -u)" f \
	"the peers' workers ran the CHECK's function as its owner, never as a superuser"
is "$(node_psql 1 -Atc "SELECT is_called FROM escalated")" t \
	"(node 1's superuser session ran it as a superuser: the probe sees the difference)"
# LOCK TABLE before an INSERT: a peer's row ordered first needs the lock
# this session holds while it waits for its own turn.  Its wait is on a
# latch, which PostgreSQL's deadlock detector does not see: the session
# must give way.  Before, both waited (here until the statement_timeout).
t0=$(now_ms)
node_psql 1 -Atq -v VERBOSITY=verbose -c "SET statement_timeout = '20s'" -c "BEGIN" \
	-c "LOCK TABLE parcel IN SHARE ROW EXCLUSIVE MODE" -c "SELECT pg_sleep(2)" \
	-c "INSERT INTO parcel VALUES ('lk1', 'filed', 'public')" -c "COMMIT" >"$WORK/lock.out" 2>&1 &
locker=$!
sleep 0.5
is "$(error_of 2 "INSERT INTO parcel VALUES ('lk2', 'filed', 'public')")" "no error" \
	"a row inserted on node 2 while a session on node 1 holds parcel locked commits"
wait $locker
like "$(grep ERROR "$WORK/lock.out")" "40003" "the locking session gives way at COMMIT (40003) instead of waiting"
ok $(( !($(now_ms) - t0 < 12000) )) "... within seconds ($(( $(now_ms) - t0 )) ms, its 2 s sleep included)"
wait_converged $CH 30
ok $? "converged after the locking session gave way"
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id = 'lk2'")" 1 "node 2's row is on every node"
# the one that gave way is decided by the order, alike everywhere: applied
# from its batch if the batch had left, else never sent (no txlog row)
lk_txid=$(sed -n 's/.*ledger.txlog (txid \([0-9]*\)).*/\1/p' "$WORK/lock.out" | head -1)
lk_out=$(same_on_all "SELECT (SELECT count(*) FROM parcel WHERE id = 'lk1') || ':' ||
                             coalesce((SELECT status FROM ledger.txlog WHERE txid = ${lk_txid:-0}), 'none')")
like "$lk_out" '^(1:accepted|0:none|0:rejected)$' "the row that gave way is the same on every node, as ledger.txlog says ($lk_out)"
# ------------------------------------------------------------------ agreed table definitions
# A table's rows are taken once validators with a quorum (3 of 4) have
# declared one definition through the chain.  A member whose table differs
# refuses its own INSERTs, and stops (instead of forking) at a peer's row
# its table cannot take, until its DBA makes the table match.
dfn_sql() { echo "CREATE TYPE shade AS ENUM ($1); CREATE TABLE dfn_t (id text PRIMARY KEY, s shade, tier text);
                  SELECT ledger.enable_table('dfn_t', '$CH', 'tier')"; }
dfn_state() { node_psql "$1" -Atc "SELECT state || ' ' || declared_by FROM ledger.table_definitions WHERE table_name = 'public.dfn_t'"; }
is "$(error_of 1 "$(dfn_sql "'red', 'green', 'blue'")")" "no error" "node 1 enables dfn_t"
is "$(error_of 1 "INSERT INTO dfn_t VALUES ('d0', 'red', 'public')")" \
	"55000: ledger table \"public.dfn_t\" of channel \"$CH\" has no agreed definition yet" \
	"an INSERT into a table no quorum declared yet is refused: 55000, no agreed definition yet"
is "$(error_of 2 "$(dfn_sql "'red', 'green', 'blue'")")" "no error" "node 2 enables dfn_t alike"
for t in $(seq 1 150); do [ "$(dfn_state 1)" = "not agreed 2" ] && break; sleep 0.1; done
is "$(dfn_state 1)" "not agreed 2" "declared by nodes 1 and 2 (2 of the 3 needed): still not agreed"
is "$(error_of 3 "$(dfn_sql "'red', 'green', 'blue'")")" "no error" "node 3 enables dfn_t alike"
is "$(error_of 4 "$(dfn_sql "'red', 'green'")")" "no error" "node 4 enables a dfn_t whose enum lacks 'blue'"
for t in $(seq 1 300); do
	got=$(for i in 1 2 3 4; do dfn_state "$i"; done | tr '\n' ',')
	[ "$got" = "agreed 3,agreed 3,agreed 3,differs here 1," ] && break
	sleep 0.1
done
is "$got" "agreed 3,agreed 3,agreed 3,differs here 1," "nodes 1-3's definition is agreed; node 4 sees its own differ"
like "$(error_of 4 "INSERT INTO dfn_t VALUES ('d4', 'red', 'public')")" \
	"^55000: ledger table \"public.dfn_t\" is defined here unlike the definition agreed on channel \"$CH\"" \
	"node 4's INSERT into its differing table is refused up front (55000)"
is "$(error_of 1 "INSERT INTO dfn_t VALUES ('d1', 'red', 'public')")" "no error" \
	"node 1 commits a row with 'red', which node 4's enum could take too"
for t in $(seq 1 100); do
	grep -q 'ledger table "public.dfn_t" is defined here unlike the channel.s agreed definition' "$TMP/$(node_name 4)/server.log" && break
	sleep 0.1
done
grep -A1 'ledger table "public.dfn_t" is defined here unlike the channel.s agreed definition' "$TMP/$(node_name 4)/server.log" | grep -q 'could judge them otherwise'
ok $? "node 4 stops applying at that row all the same, naming its table: its table differs, whatever the row's outcome"
is "$(error_of 1 "INSERT INTO dfn_t VALUES ('d2', 'blue', 'public')")" "no error" \
	"node 1 commits a row with 'blue'"
is "$(error_of 2 "INSERT INTO parcel VALUES ('dfn-after', 'filed', 'public')")" "no error" \
	"nodes 1-3 keep committing meanwhile"
is "$(error_of 4 "ALTER TYPE shade ADD VALUE 'blue'")" "no error" "node 4's DBA adds the missing label"
wait_converged $CH 30
ok $? "node 4 applies the rows and converges with the others"
is "$(same_on_all "SELECT string_agg(id || ':' || s, ',' ORDER BY id) FROM dfn_t")" "d1:red,d2:blue" "dfn_t holds both rows on every node"
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" 0 "ledger.verify clean on every node"
wait_agreed dfn_t
ok $? "dfn_t is agreed on every node now"

# ------------------------------------------------------------------ column types peers rebuild
# Peers insert a row from its canonical text through the column type's
# input function: types whose text does not read back are refused, the
# others must arrive identical, whatever the origin session's settings.
e=$(error_of 1 "CREATE TABLE arr_t (id text, a int[], tier text); SELECT ledger.enable_table('arr_t', '$CH', 'tier')")
is "$e" "0A000: column \"a\" of table \"arr_t\" has type integer[], which the members of channel \"$CH\" cannot rebuild from its canonical text" \
	"enable_table: an int[] column is refused with the column, table and type named"
e=$(error_of 1 "CREATE TYPE pair_t AS (x int, y text); CREATE TABLE comp_t (id text, p pair_t, tier text); SELECT ledger.enable_table('comp_t', '$CH', 'tier')")
is "${e%%:*}" 0A000 "enable_table: a composite column is refused (0A000)"
e=$(error_of 1 "CREATE TABLE money_t (id text, m money, tier text); SELECT ledger.enable_table('money_t', '$CH', 'tier')")
is "${e%%:*}" 0A000 "enable_table: a money column is refused (0A000)"
rc=0
for i in $(seq 1 $N); do
	[ "$(error_of "$i" "CREATE TYPE colour AS ENUM ('red', 'grün');
	                    CREATE DOMAIN small_int AS int CHECK (VALUE < 1000);
	                    CREATE TABLE types_t (id text PRIMARY KEY, t text, c char(6), n numeric(12,3), f8 float8, f4 real,
	                      d date, ts timestamp, tz timestamptz, tt timetz, iv interval, b bytea, j jsonb, js json,
	                      u uuid, e colour, ok bool, r int4range, tr tstzrange, dr daterange, s small_int, ip inet,
	                      bits varbit, tier text);
	                    SELECT ledger.enable_table('types_t', '$CH', 'tier')")" = "no error" ] || rc=1
done
ok $rc "enable_table accepts a table of every type that reads back (on every node)"
wait_agreed types_t
ok $? "the definition of types_t is agreed on every node"
ins="SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Kolkata'; SET IntervalStyle = 'sql_standard';
     SET extra_float_digits = -3; SET bytea_output = 'escape';
     INSERT INTO types_t VALUES
     ('v1', E'zeile\\n\\t\"q\" \\\\ ü€', 'ab', 12.5, 0.1, 1.1, '2024-02-29', '1999-12-31 23:59:59.999999',
      '2024-01-02 03:04:05.5+05:30', '04:05:06-07:30', '-1 day +02:03:04.5', '\\x00ff10', '{\"a\": [1, 2.50]}',
      '{ \"k\" :  1 }', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'grün', true, '[1,5)',
      '[2024-01-01 00:00+02, 2024-06-01 00:00+02)', '[2024-01-01,)', 999, '10.1.2.3/16', B'10110', 'public'),
     ('v2', NULL, NULL, 'NaN', '-Infinity', '-0', '0044-03-15 BC', 'infinity', '-infinity', NULL, '0',
      '\\x', '[]', 'null', NULL, 'red', false, 'empty', '(,)', NULL, NULL, '::1', B'', 'public')"
is "$(error_of 2 "$ins")" "no error" "on node 2, under hostile DateStyle, TimeZone, IntervalStyle, extra_float_digits and bytea_output, two rows of every such type commit"
wait_converged $CH 30
ok $? "converged after the insert into types_t"
rowsql="SELECT string_agg(t::text, ' | ' ORDER BY id) FROM types_t t"
is "$(same_on_all "$rowsql" | wc -l)" 1 "every column of both rows is identical on all nodes (SELECT t::text)"
[ "$(same_on_all "$rowsql" | wc -l)" = 1 ] || per_node "$rowsql" | sed 's/^/#   /'
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" 0 "ledger.verify clean on every node after the typed rows"

# ------------------------------------------------------------------ savepoints
# Multi-peer rows rolled back to a savepoint are gone: a transaction left
# with none commits like a plain one, also next to rows of a local channel.
node_psql 1 -q -c "SELECT ledger.create_channel('local1', ARRAY['public']);
                   CREATE TABLE local_t (id text); SELECT ledger.enable_table('local_t', 'local1')" >/dev/null
ok $? "node 1: a ledger table local_t on a channel without peers"
is "$(error_of 1 "BEGIN; INSERT INTO local_t VALUES ('l1'); SAVEPOINT s;
                   INSERT INTO parcel VALUES ('sp-gone1', 'filed', 'public'); ROLLBACK TO s; COMMIT")" "no error" \
	"BEGIN; INSERT INTO local_t; SAVEPOINT s; INSERT INTO parcel; ROLLBACK TO s; COMMIT commits"
is "$(node_psql 1 -Atc "SELECT count(*) FROM local_t WHERE id = 'l1'")" 1 "... with the local_t row"
is "$(error_of 1 "BEGIN; SAVEPOINT s; INSERT INTO parcel VALUES ('sp-gone2', 'filed', 'public'); ROLLBACK TO s;
                   INSERT INTO local_t VALUES ('l2'); COMMIT")" "no error" \
	"a transaction whose only multi-peer row was rolled back to a savepoint commits like a plain one"
is "$(error_of 3 "BEGIN; INSERT INTO parcel VALUES ('sp-kept', 'filed', 'public'); SAVEPOINT s;
                   INSERT INTO parcel VALUES ('sp-gone3', 'filed', 'public'); ROLLBACK TO s; COMMIT")" "no error" \
	"on node 3, a transaction keeping one multi-peer row and rolling back another commits"
wait_converged $CH 30
ok $? "converged after the savepoint transactions"
is "$(same_on_all "SELECT string_agg(id, ',' ORDER BY id) FROM parcel WHERE id LIKE 'sp-%'")" "sp-kept" \
	"every node has the kept row and none of the rolled-back ones"
txlog_check "ledger.txlog still identical on all nodes"

# ------------------------------------------------------------------ serializable
# A serialization failure found at COMMIT, after the transaction's turn,
# would report an error for rows every member applied: refused up front.
like "$(error_of 2 "BEGIN ISOLATION LEVEL SERIALIZABLE; INSERT INTO parcel VALUES ('ser-1', 'filed', 'public'); COMMIT")" \
	"cannot write rows of multi-peer ledger channel .* in a serializable transaction" \
	"a serializable transaction writing a multi-peer ledger table is refused clearly"
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id = 'ser-1'")" 0 "... and its row is nowhere"

# ------------------------------------------------------------------ large transactions
# A call between peers enters the receiver's inbox whole or not at all.
# Calls are cut at the largest batch, and the inbox takes two of them.
for i in 1 2 3 4; do
	node_psql "$i" -qc "CREATE TABLE big_t (id text PRIMARY KEY, body text);
	                    SELECT ledger.enable_table('big_t', '$CH')" >/dev/null || failed_big=1
done
ok ${failed_big:-0} "big_t enabled on every node"
wait_agreed big_t
ok $? "the definition of big_t is agreed on every node"
t0=$(date +%s%N)
pids=()
for k in 1 2; do
	PGOPTIONS="-c statement_timeout=60s" node_psql 1 -qc "INSERT INTO big_t VALUES ('n1-$k', repeat('$k', 2040000))" >/dev/null &
	pids+=($!)
done
PGOPTIONS="-c statement_timeout=60s" node_psql 2 -qc "INSERT INTO big_t VALUES ('n2-1', repeat('z', 2040000))" >/dev/null &
pids+=($!)
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok $rc "three 2.04 MB transactions committed at once on nodes 1 and 2 all commit ($ms ms)"
wait_converged $CH 30
ok $? "converged after the large transactions"
is "$(same_on_all "SELECT count(*) || ' ' || sum(length(body)) FROM big_t")" "3 6120000" "every node has the three large rows"
# the largest transactions taken must reach everyone: one of 4.15 MB never
# did (its call was larger than the inbox; it waited until its timeout)
is "$(error_of 3 "SET statement_timeout = '60s'; INSERT INTO big_t VALUES ('max', repeat('m', 4150000))")" "no error" \
	"a transaction of 4.15 MB, just under the limit, commits"
wait_converged $CH 30
is "$(same_on_all "SELECT length(body) FROM big_t WHERE id = 'max'")" 4150000 "... and reaches every node"
like "$(error_of 1 "INSERT INTO big_t VALUES ('too-big', repeat('x', 4300000))")" "transaction too large for a multi-peer ledger channel" \
	"a 4.3 MB transaction is refused with a clear error"

# A DBA's lock request (LOCK TABLE; VACUUM FULL and CREATE INDEX queue
# alike) queued behind a backend that waits for its transaction's turn: the
# worker, checking the table's definition again before that transaction
# (after a catalog change anywhere), reads it under AccessShareLock and
# queues behind the DBA.  Nobody's lock wait shows the cycle to PostgreSQL;
# the backend must see it and give way, or the channel stalls on this node
# until the DBA's lock_timeout.
for i in 1 2 3 4; do
	node_psql "$i" -qc "CREATE TABLE lock_t (id text PRIMARY KEY CHECK (length(id) < 20), tier text);
	                    SELECT ledger.enable_table('lock_t', '$CH', 'tier')" >/dev/null
done
wait_agreed lock_t
ok $? "the definition of lock_t is agreed on every node"
node_psql 1 -qc "INSERT INTO lock_t VALUES ('warm', 'public')" >/dev/null
t0=$(now_ms)
node_psql 1 -q -c "BEGIN" -c "INSERT INTO lock_t VALUES ('held', 'public')" -c "SELECT pg_sleep(1.5)" \
	-c "COMMIT" >"$WORK/held.out" 2>&1 &
held=$!
sleep 0.4
node_psql 1 -qc "CREATE TEMP TABLE catalog_change ()"
node_psql 1 -q -c "SET lock_timeout = '10s'" -c "BEGIN" -c "LOCK TABLE lock_t IN ACCESS EXCLUSIVE MODE" \
	-c "COMMIT" >"$WORK/lock.out" 2>&1 &
locker=$!
wait $held
wait $locker
ms=$(( $(now_ms) - t0 ))
is "$(cat "$WORK/lock.out")" "" "the DBA's LOCK TABLE, queued behind a waiting backend, gets its lock ($ms ms)"
ok $(( !(ms < 8000) )) "  long before its lock_timeout"
like "$(cat "$WORK/held.out")" "gave way to one the ledger channel ordered first" \
	"  as the waiting backend gave way (its outcome not known yet)"
wait_converged $CH 30
is "$(same_on_all "SELECT count(*) FROM lock_t WHERE id = 'held'")" 1 \
	"  and its transaction, already sent, is applied everywhere from its batch"

# Committed transactions that also NOTIFY, several at once on one node: a
# committed backend waits for its block, and did so holding its locks, the
# NOTIFY lock among them; the next local transaction of the same block,
# given its turn, queued behind that lock, and the block waited for it.
# Nothing showed the cycle, and nothing ended it.
t0=$(now_ms)
pids=()
for c in 1 2 3 4 5 6; do
	{
		echo "SET statement_timeout = '8s';"
		for k in 1 2 3 4 5; do
			echo "BEGIN; INSERT INTO lock_t VALUES ('n$c-$k', 'public'); NOTIFY ll_test; COMMIT;"
		done
	} | PGAPPNAME=ll_notify node_psql 1 -q >"$WORK/notify_$c.out" 2>&1 &
	pids+=($!)
done
# a deadlock does not end by itself (the first waits with interrupts held)
any_alive() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
for _ in $(seq 1 300); do any_alive "${pids[@]}" || break; sleep 0.1; done
if any_alive "${pids[@]}"; then
	echo "still committing after 30 s" >"$WORK/notify_hung.out"
	node_psql 1 -qc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	                 WHERE application_name = 'll_notify'" >/dev/null
fi
wait "${pids[@]}"
ms=$(( $(now_ms) - t0 ))
is "$(cat "$WORK"/notify_*.out)" "" "30 transactions that NOTIFY, 6 at a time on one node, commit without a warning ($ms ms)"
ok $(( !(ms < 8000) )) "  within seconds (on the build before, they deadlocked until terminated)"
wait_converged $CH 30
is "$(same_on_all "SELECT count(*) FROM lock_t WHERE id LIKE 'n%-%'")" 30 "  and all 30 rows are on every node"

# A block learned out of band (ledger.trust_checkpoint, from ledger.digest
# on a member one trusts): a copy that reaches that height with another
# block stops there, whoever certified it, and goes on once its DBA drops
# the checkpoint.
DIGEST="SELECT (d->>'height') || ' ' || (d->>'block_hash') FROM ledger.digest('$CH') d"
read -r H HASH <<<"$(node_psql 1 -Atc "$DIGEST")"
OTHER=$(echo "$HASH" | tr '0-9a-f' '1-9a-f0')
like "$(error_of 3 "SELECT ledger.trust_checkpoint('$CH', $H, '$OTHER')")" "ledger block $H of channel \"$CH\" differs from the checkpoint" \
	"a checkpoint naming another block than the one held is refused"
node_psql 3 -qc "SELECT ledger.trust_checkpoint('$CH', $H, '$HASH')" >/dev/null
ok $? "  the block held there is taken"
node_psql 3 -qc "SELECT ledger.trust_checkpoint('$CH', $((H + 2)), repeat('ab', 32))" >/dev/null
ok $? "a checkpoint for a height not reached yet is taken"
for k in 1 2 3; do node_psql 1 -qc "INSERT INTO parcel VALUES ('cp-$k', 'ok', 'public')" >/dev/null; done
LEDGER_H="SELECT (ledger.digest('$CH')->>'height')::bigint"
is "$(poll 100 "$((H + 3))" node_psql 2 -Atc "$LEDGER_H")" "$((H + 3))" "  the others go past it"
is "$(node_psql 3 -Atc "$LEDGER_H")" "$((H + 1))" "  node 3 stops just before it"
grep -q "ledger block $((H + 2)) of channel \"$CH\" differs from the trusted checkpoint" "$TMP/$(node_name 3)/server.log"
ok $? "  and logs that the block certified there differs from its checkpoint"
STATUS_ERR="SELECT last_error FROM ledger.consensus_status WHERE channel = '$CH'"
like "$(node_psql 3 -Atc "$STATUS_ERR")" "ledger block $((H + 2)) of channel \"$CH\" differs from the trusted checkpoint" \
	"  ledger.consensus_status on node 3 says why it stopped"
node_psql 3 -qc "DELETE FROM ledger.checkpoint" >/dev/null
wait_converged $CH 60
ok $? "  once its DBA drops the checkpoint, node 3 catches up"
is "$(poll 50 "" node_psql 3 -Atc "$STATUS_ERR")" "" "  and ledger.consensus_status shows no error any more"

is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')" )" 0 "ledger.verify clean on every node at the end"
# Each sender has a share of a worker's inbox (one call of the largest
# size), so one member cannot fill it: 9 MB in one call is over it.  And a
# login bound to a member (ledger.set_peer_login) speaks for it alone.
as_peer() {	# NODE LOGIN SQL
	psql -h "$TMP/$(node_name "$1")" -p "$(cluster_port "$(node_name "$1")")" -U "$2" -d ledger -X -Atqc "$3" 2>&1
}
key4=$(node_psql 4 -Atc "SELECT ledger.node_key()")
key2=$(node_psql 2 -Atc "SELECT ledger.node_key()")
is "$(as_peer 1 peer_from_4 "SELECT ledger.deliver('$CH', '\\x$key4', decode(repeat('ff', 9000000), 'hex'))")" "over its share" \
	"a 9 MB call is over one sender's share of the inbox"
is "$(as_peer 1 peer_from_4 "SELECT ledger.deliver('$CH', '\\x$key2', '\\xff')")" ok \
	"an unbound login may still speak for any member"
is "$(as_peer 1 peer_from_4 "SELECT ledger.deliver('$CH', '\\x$(printf '%064d' 7)', '\\xff')")" \
	"the sender is not a peer of this channel here" "but not for a key that is no peer (each sender has a share of the inbox)"
node_psql 1 -qc "SELECT ledger.set_peer_login('$CH', '$(node_name 4)', 'peer_from_4')" >/dev/null
is "$(as_peer 1 peer_from_4 "SELECT ledger.deliver('$CH', '\\x$key2', '\\xff')")" "this login speaks for another member" \
	"once bound to member 4, its login cannot speak for member 2"
is "$(as_peer 1 peer_from_4 "SELECT ledger.deliver('$CH', '\\x$key4', '\\xff')")" ok "... and still speaks for member 4"
is "$(as_peer 1 peer_from_2 "SELECT ledger.deliver('$CH', '\\x$key4', '\\xff')")" "this login speaks for another member" \
	"... and another, unbound login can no longer speak for member 4"
like "$(error_of 1 "SELECT ledger.set_peer_login('$CH', '$(node_name 4)', 'postgres')")" 'role "postgres" is not a member of loopledger_peer' \
	"a login that is not a member of loopledger_peer is refused"
node_psql 1 -qc "SELECT ledger.set_peer_login('$CH', '$(node_name 4)', NULL)" >/dev/null

# link calls are numbered against replays; honest calls arrive in order
is "$(same_on_all "SELECT sum(calls_replayed) FROM ledger.peers WHERE channel = '$CH'")" 0 \
	"no call between honest nodes was taken for one played again"

echo "# took ${SECONDS}s"
echo "1..$n"
[ $failed = 0 ]
