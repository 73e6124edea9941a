#!/usr/bin/env bash
# Concurrent writers: 16 pgbench clients insert into a ledger table of one
# channel and a ledger table of another, in separate and shared
# transactions, with synchronous and asynchronous commit.  Afterwards each
# channel's chain is contiguous, every row is in exactly one block, nothing
# is pending and ledger.verify finds nothing.  TAP output.
set -u
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
S=$$
A=tapconc_a_$S
B=tapconc_b_$S
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

source "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"

q -c "SELECT ledger.create_channel('$A'); SELECT ledger.create_channel('$B', ARRAY['x','y']);
      CREATE TABLE ${A}_t (client int, v int, note text DEFAULT 'n');
      CREATE TABLE ${B}_t (client int, v int, tier text);
      SELECT ledger.enable_table('${A}_t', '$A'); SELECT ledger.enable_table('${B}_t', '$B', 'tier');" >/dev/null
ok $? "setup: two channels, one ledger table each"

cat >"$WORK/bench.sql" <<SQL
\set id random(1, 1000000)
INSERT INTO ${A}_t (client, v) VALUES (:client_id, :id);
INSERT INTO ${B}_t (client, v, tier) VALUES (:client_id, :id, 'x');
BEGIN;
INSERT INTO ${A}_t (client, v) VALUES (:client_id, :id), (:client_id, :id + 1);
INSERT INTO ${B}_t (client, v, tier) VALUES (:client_id, :id, 'y');
COMMIT;
SQL

"$PGBENCH" -n -c 16 -j 4 -t 200 -f "$WORK/bench.sql" >"$WORK/bench1.log" 2>&1
rc=$?
ok $rc "pgbench, 16 clients x 200 transactions, synchronous commit"
[ $rc = 0 ] || sed 's/^/#   /' "$WORK/bench1.log" | tail -20
PGOPTIONS="-c loopledger.synchronous_commit=off" "$PGBENCH" -n -c 16 -j 4 -t 100 -f "$WORK/bench.sql" >"$WORK/bench2.log" 2>&1
rc=$?
ok $rc "pgbench, 16 clients x 100 transactions, asynchronous commit"
[ $rc = 0 ] || sed 's/^/#   /' "$WORK/bench2.log" | tail -20
is "$(q -c "SELECT ledger.wait_sealed(60000)")" t "wait_sealed() after the runs"

is "$(q -c "SELECT count(*) FROM ${A}_t")" $((16 * 300 * 3)) "$A: every inserted row is in the table"
is "$(q -c "SELECT count(*) FROM ${B}_t")" $((16 * 300 * 2)) "$B: every inserted row is in the table"

for ch in $A $B; do
	cid=$(q -c "SELECT channel_id FROM ledger.channel WHERE name = '$ch'")
	is "$(q -c "SELECT count(*) = max(height) + 1 AND min(height) = 0 FROM ledger.block WHERE channel_id = $cid")" t \
		"$ch: heights are contiguous from 0"
	is "$(q -c "SELECT count(*) FROM ledger.block b JOIN ledger.block p ON p.channel_id = b.channel_id AND p.height = b.height - 1
	            WHERE b.channel_id = $cid AND b.prev_hash IS DISTINCT FROM p.block_hash")" 0 "$ch: every block links to the previous one"
	is "$(q -c "SELECT coalesce(sum(row_count), 0) FROM ledger.block WHERE channel_id = $cid AND height > 0")" \
		"$(q -c "SELECT count(*) FROM ${ch}_t")" "$ch: rows in the table = sum(row_count) of non-genesis blocks"
	is "$(q -c "SELECT count(*) FROM ledger.block_entries('$ch') WHERE block_height IS NULL")" 0 "$ch: nothing pending"
	is "$(q -c "SELECT count(*) FROM ledger.pending WHERE channel_id = $cid")" 0 "$ch: ledger.pending empty for the channel"
	is "$(q -c "SELECT count(*) - count(DISTINCT entry) FROM ledger.block_entries('$ch')")" 0 "$ch: no entry is in two blocks"
	is "$(q -c "SELECT count(*) FROM ${ch}_t t LEFT JOIN (SELECT entry, count(*) AS c FROM ledger.block_entries('$ch') GROUP BY entry) e
	            ON e.entry = t.ledger_entry WHERE coalesce(e.c, 0) <> 1")" 0 \
		"$ch: every row appears exactly once in the blocks"
	is "$(q -c "SELECT count(*) FROM ledger.history('${ch}_t') WHERE status IS DISTINCT FROM 'sealed'")" 0 "$ch: history shows every row sealed"
	is "$(q -c "SELECT count(*) FROM ledger.block b WHERE channel_id = $cid AND length(entries) <> 62 * row_count")" 0 \
		"$ch: packed entries match row counts"
	is "$(q -c "SELECT count(*) FROM ledger.block b WHERE channel_id = $cid AND
	            ledger.header_hash('$ch', height, prev_hash, merkle_root, time_us, tx_count, row_count, config_hash) <> block_hash")" 0 \
		"$ch: every header re-hashes to its block hash"
	out=$(q -c "SELECT block_height || ': ' || problem FROM ledger.verify('$ch')" 2>&1)
	is "$out" "" "$ch: ledger.verify finds no problem"
done

# A wait for a seal that ends early (here on statement_timeout, while the
# seal cannot take ledger.pending) must not leave the sealer sealing back
# to back: it did, a transaction per round, until the server restarted.
commits() { q -c "SELECT pg_stat_force_next_flush()" >/dev/null; q -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
(q -c "BEGIN; LOCK TABLE ledger.pending IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT;" >/dev/null 2>&1) &
locker=$!
sleep 0.3
like "$(q -v VERBOSITY=verbose -c "SET statement_timeout = 300" -c "SELECT ledger.wait_sealed(-1)" 2>&1)" "57014" \
	"a wait_sealed() held up by a lock on ledger.pending ends on statement_timeout (57014)"
wait $locker
sleep 1.5 # the sealer reports its statistics at most once a second
c0=$(commits)
sleep 2.5
c1=$(commits)
ok $(( !(c1 - c0 < 200) )) "the sealer does not spin afterwards: $((c1 - c0)) commits in the database in 2.5 s"
echo "1..$n"
[ $failed = 0 ]
