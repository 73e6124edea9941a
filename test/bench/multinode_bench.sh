#!/usr/bin/env bash
# Multi-node benchmark: loopledger's 4-node channel against what people run
# today for "a commit survives a lost server", PostgreSQL synchronous
# streaming replication (1 primary, 3 standbys, ANY 2, remote_apply).
#   bash test/bench/multinode_bench.sh
# Options (environment): PART=baseline|ledger|all (default all),
# DURATION seconds per pgbench run (default 15), BASEPORT for the ledger
# nodes (default 25600, nodes at +1..+4), REPL_PORT for the replication
# clusters (default 25650, standbys at +1..+3), CATCHUP_ROWS (default
# 100000), NO_BUILD=1 skips installing packages and building,
# BENCH_KEEP=1 leaves the clusters and logs in .tmp, LL_EXTRA_CONF adds one
# postgresql.conf line to the loopledger nodes (e.g. "loopledger.propose_delay = 0").
# Also measured: the same load with one of the four servers stopped (a
# loopledger member, a standby), since a crashed member is the proposer of
# every fourth height.
#
# Both sides: 64 clients of single-row INSERT transactions (pgbench -n
# -M prepared) on loopback, fsync and synchronous_commit on; latency
# percentiles come from pgbench's per-transaction logs.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
source "$ROOT/test/multinode.sh"

PART=${PART:-all}
DURATION=${DURATION:-15}
BASEPORT=${BASEPORT:-25600}
REPL_PORT=${REPL_PORT:-25650}
CATCHUP_ROWS=${CATCHUP_ROWS:-100000}
CLIENTS=64
WORK="$TMP/mnbench"
COMMON=("max_wal_size = 4GB" "checkpoint_timeout = 30min")
TABLE_SQL="CREATE TABLE parcel (id bigserial PRIMARY KEY, tracking text, status text, at timestamptz DEFAULT now());"
case $PART in baseline | ledger | all) ;; *) echo "PART must be baseline, ledger or all" >&2; exit 2 ;; esac

if [ "${NO_BUILD:-0}" != 1 ]; then
	ensure_packages
	build_and_install
fi

cleanup() {
	set +e
	stop_nodes
	for c in mnb_s1 mnb_s2 mnb_s3 mnb_primary; do stop_cluster $c; done
	[ "${BENCH_KEEP:-0}" = 1 ] || as_pg rm -rf "$WORK" "$TMP"/mnb_* "$TMP/$(node_name '')"[0-9]*
}
trap cleanup EXIT

prepare_tmp
as_pg rm -rf "$WORK"
as_pg mkdir -p "$WORK"
cat >"$WORK/insert.sql" <<'SQL'
\set r random(1, 1000000000)
INSERT INTO parcel (tracking, status) VALUES ('KR-' || :r::bigint, 'filed');
SQL

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\", $1 }"; }

# pgbench_run LABEL SOCKETDIR PORT CLIENTS THREADS: prints tx/s; the
# per-transaction logs land in $WORK/LABEL.*
pgbench_run() {
	local out
	out=$(pgbench -h "$2" -p "$3" -U postgres -n -M prepared -c "$4" -j "$5" -T "$DURATION" \
		--log --log-prefix="$WORK/$1" -f "$WORK/insert.sql" ledger 2>&1) || { echo "$out" >&2; return 1; }
	echo "$out" | awk '/^tps = / { print $3; exit }'
}

# latency FILES...: "p50 p99 count" in ms, nearest rank over every logged
# transaction (field 3 is its latency in microseconds)
latency() {
	awk '$3 ~ /^[0-9]+$/ { print $3 }' "$@" | sort -n | awk '
		function rank(p,  i) { i = int(p * NR); if (i < p * NR) i++; return a[i < 1 ? 1 : i] }
		{ a[NR] = $1 }
		END { printf "%.2f %.2f %d\n", rank(0.50) / 1000, rank(0.99) / 1000, NR }'
}

# mem PID: "rss pss pss_anon" in MB (Pss splits shared pages among sharers)
mem() {
	awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } /^Pss_Anon:/ { a = $2 }
	     END { printf "%.1f %.1f %.1f\n", r / 1024, p / 1024, a / 1024 }' "/proc/$1/smaps_rollup"
}

# 100 transactions of 1,000 rows (CATCHUP_ROWS in all) through psql
bulk_insert() {
	for _ in $(seq 1 $((CATCHUP_ROWS / 1000))); do
		echo "INSERT INTO parcel (tracking, status) SELECT 'CU-' || g, 'filed' FROM generate_series(1, 1000) g;"
	done | "$@" -q
}

B_TPS=n/a B_P50=n/a B_P99=n/a B_CATCHUP=n/a B_MEM=n/a B_DOWN=n/a B_DP50=n/a B_DP99=n/a
L_TPS=n/a L_P50=n/a L_P99=n/a L_CATCHUP=n/a L_MEM=n/a L_AGREE=n/a L_DOWN=n/a L_DP50=n/a L_DP99=n/a

# ---------------------------------------------------------------------------
run_baseline() {
	local s dir lsn t n
	say "baseline: primary + 3 synchronous standbys (ports $REPL_PORT..$((REPL_PORT + 3)))"
	start_cluster mnb_primary "$REPL_PORT" "${COMMON[@]}"
	psql_at mnb_primary ledger -qc "$TABLE_SQL"
	for s in 1 2 3; do
		dir="$TMP/mnb_s$s"
		as_pg rm -rf "$dir"
		as_pg mkdir -p "$dir"
		as_pg pg_basebackup -h 127.0.0.1 -p "$REPL_PORT" -U postgres -D "$dir/data" -R -X stream -c fast
		# port and socket override the primary's copied settings; -R wrote
		# primary_conninfo to postgresql.auto.conf, so name the standby there
		printf "port = %s\nunix_socket_directories = '%s'\n" $((REPL_PORT + s)) "$dir" |
			as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
		echo "primary_conninfo = 'host=127.0.0.1 port=$REPL_PORT user=postgres application_name=s$s'" |
			as_pg tee -a "$dir/data/postgresql.auto.conf" >/dev/null
		as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
	done
	# only now: with no standby connected every commit would wait forever
	psql_at mnb_primary ledger -qAt >/dev/null <<-'SQL'
		ALTER SYSTEM SET synchronous_standby_names = 'ANY 2 (s1,s2,s3)';
		ALTER SYSTEM SET synchronous_commit = remote_apply;
		SELECT pg_reload_conf();
	SQL
	for _ in $(seq 1 100); do
		[ "$(psql_at mnb_primary ledger -Atc "SELECT count(*) FROM pg_stat_replication
		      WHERE sync_state = 'quorum' AND state = 'streaming'")" = 3 ] && break
		sleep 0.1
	done
	psql_at mnb_primary ledger -Atc "SELECT string_agg(application_name || ' ' || sync_state, ', ' ORDER BY 1)
	                                 FROM pg_stat_replication" | sed 's/^/   standbys: /'

	say "baseline: $CLIENTS clients, ${DURATION}s"
	psql_at mnb_primary ledger -qc CHECKPOINT
	B_TPS=$(pgbench_run base "$TMP/mnb_primary" "$REPL_PORT" $CLIENTS 2)
	read -r B_P50 B_P99 n < <(latency "$WORK"/base.*)
	printf '   %.0f tx/s, %s transactions logged, p50 %s ms, p99 %s ms\n' "$B_TPS" "$n" "$B_P50" "$B_P99"

	# a walsender is what the primary spends per standby
	for s in $(psql_at mnb_primary ledger -Atc "SELECT pid FROM pg_stat_replication"); do
		echo "   walsender pid $s: rss/pss/anon MB $(mem "$s" | tee "$WORK/ws$s")"
	done
	B_MEM=$(cat "$WORK"/ws* | awk '{ s += $2 } END { printf "%.1f", s / NR }')

	say "baseline: s3 stopped, $CLIENTS clients, ${DURATION}s"
	stop_cluster mnb_s3
	B_DOWN=$(pgbench_run bdown "$TMP/mnb_primary" "$REPL_PORT" $CLIENTS 2)
	read -r B_DP50 B_DP99 n < <(latency "$WORK"/bdown.*)
	printf '   %.0f tx/s, p50 %s ms, p99 %s ms\n' "$B_DOWN" "$B_DP50" "$B_DP99"
	lsn=$(psql_at mnb_primary ledger -Atc "SELECT pg_current_wal_lsn()")
	as_pg pg_ctl -D "$TMP/mnb_s3/data" -l "$TMP/mnb_s3/server.log" -w start >/dev/null
	until [ "$(psql_at mnb_s3 ledger -Atc "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ]; do sleep 0.05; done

	say "baseline catch-up: s3 stopped, $CATCHUP_ROWS rows on the primary, s3 restarted"
	stop_cluster mnb_s3
	t=$(now)
	bulk_insert psql_at mnb_primary ledger
	printf '   insert on the primary: %.2f s\n' "$(calc "$(now) - $t" 2)"
	lsn=$(psql_at mnb_primary ledger -Atc "SELECT pg_current_wal_lsn()")
	t=$(now)
	as_pg pg_ctl -D "$TMP/mnb_s3/data" -l "$TMP/mnb_s3/server.log" -w start >/dev/null
	until [ "$(psql_at mnb_s3 ledger -Atc "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ]; do sleep 0.05; done
	t=$(calc "$(now) - $t" 3)
	B_CATCHUP=$(calc "$CATCHUP_ROWS / $t")
	printf '   s3 replayed up to the primary in %s s (start included): %s rows/s\n' "$t" "$B_CATCHUP"
	for s in mnb_s1 mnb_s2 mnb_s3 mnb_primary; do stop_cluster $s; done
}

# ---------------------------------------------------------------------------
run_ledger() {
	local i t n pids=()
	say "loopledger: 4 nodes (ports $((BASEPORT + 1))..$((BASEPORT + 4))), channel bench"
	start_nodes 4 "$BASEPORT" "${COMMON[@]}" "loopledger.synchronous_commit = on" ${LL_EXTRA_CONF:+"$LL_EXTRA_CONF"}
	setup_channel bench "ARRAY['public','partner','customs']" 4
	for i in 1 2 3 4; do
		# node i draws ids i, i+4, ...: rows from all nodes meet in one table
		node_psql "$i" -qAt >/dev/null <<-SQL
			$TABLE_SQL
			ALTER SEQUENCE parcel_id_seq INCREMENT BY 4 RESTART WITH $i;
			SELECT ledger.enable_table('parcel', 'bench');
		SQL
	done
	wait_converged bench 60
	CH=bench N=4 wait_agreed parcel || echo "the definition of parcel was not agreed in 30 s" >&2

	say "loopledger: $CLIENTS clients (16 on each node), ${DURATION}s"
	for i in 1 2 3 4; do node_psql "$i" -qc CHECKPOINT; done
	local h0 h1 t0 c0 c1 v0 s0 p0 v1 s1 p1
	h0=$(node_psql 1 -Atc "SELECT height FROM ledger.consensus_status WHERE channel = 'bench'")
	c0=$(node_psql 1 -Atc "SELECT signatures_checked || ' ' || signatures_made || ' ' || votes_parked FROM ledger.consensus_status WHERE channel = 'bench'")
	t0=$(now)
	for i in 1 2 3 4; do
		# one thread each: four pgbench processes already use both cores
		pgbench_run "node$i" "$TMP/$(node_name "$i")" $((BASEPORT + i)) 16 1 >"$WORK/tps$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done # a failed run fails the benchmark
	h1=$(node_psql 1 -Atc "SELECT height FROM ledger.consensus_status WHERE channel = 'bench'")
	c1=$(node_psql 1 -Atc "SELECT signatures_checked || ' ' || signatures_made || ' ' || votes_parked FROM ledger.consensus_status WHERE channel = 'bench'")
	t0=$(calc "$(now) - $t0" 3)
	L_TPS=$(cat "$WORK"/tps? | awk '{ s += $1 } END { print s }')
	read -r L_P50 L_P99 n < <(latency "$WORK"/node?.*)
	printf '   %.0f tx/s (%s), %s transactions logged, p50 %s ms, p99 %s ms\n' "$L_TPS" \
		"$(cat "$WORK"/tps? | xargs printf '%.0f ' | sed 's/ $//; s/ / + /g')" "$n" "$L_P50" "$L_P99"
	# consensus heights decided meanwhile: each is one block of the agreed order
	printf '   %s heights in %s s: %.0f heights/s, %.0f transactions per height\n' "$((h1 - h0))" "$t0" \
		"$(calc "($h1 - $h0) / $t0" 1)" "$(calc "$n / ($h1 - $h0)" 1)"
	# the consensus core's signature work on node 1 (votes and proposals; batches are signed apart)
	read -r v0 s0 p0 <<<"$c0"
	read -r v1 s1 p1 <<<"$c1"
	printf '   node1 per height: %s signatures checked, %s made, %s votes parked unchecked\n' \
		"$(calc "($v1 - $v0) / ($h1 - $h0)" 1)" "$(calc "($s1 - $s0) / ($h1 - $h0)" 1)" "$(calc "($p1 - $p0) / ($h1 - $h0)" 1)"
	L_AGREE=no
	wait_converged bench 120 && L_AGREE=yes
	for i in 1 2 3 4; do
		node_psql "$i" -Atc "SELECT 'node$i: ' || (SELECT count(*) FROM parcel) || ' rows, height '
		       || (d->>'height') || ', head ' || left(d->>'block_hash', 16) FROM ledger.digest('bench') d" | sed 's/^/   /'
	done
	echo "   digests agree: $L_AGREE"

	# a crashed member is the proposer of every 4th height
	say "loopledger: node4 stopped, $CLIENTS clients on nodes 1-3, ${DURATION}s"
	as_pg pg_ctl -D "$TMP/$(node_name 4)/data" -m fast -w stop >/dev/null
	sleep 3 # two hello periods: the others take it for down
	pids=()
	for i in 1 2 3; do
		pgbench_run "down$i" "$TMP/$(node_name "$i")" $((BASEPORT + i)) $((i == 3 ? 22 : 21)) 1 >"$WORK/dtps$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	L_DOWN=$(cat "$WORK"/dtps? | awk '{ s += $1 } END { print s }')
	read -r L_DP50 L_DP99 n < <(latency "$WORK"/down?.*)
	printf '   %.0f tx/s, p50 %s ms, p99 %s ms\n' "$L_DOWN" "$L_DP50" "$L_DP99"
	restart_node 4
	wait_converged bench 300 || echo "   node4 did not catch up within 300 s"

	say "loopledger catch-up: node4 stopped, $CATCHUP_ROWS rows on node1, node4 restarted"
	as_pg pg_ctl -D "$TMP/$(node_name 4)/data" -m fast -w stop >/dev/null
	t=$(now)
	bulk_insert node_psql 1
	printf '   insert on node1: %.2f s\n' "$(calc "$(now) - $t" 2)"
	L_CATCHUP=failed
	if wait_converged bench 300; then
		t=$(now)
		restart_node 4
		if wait_converged bench 600; then
			t=$(calc "$(now) - $t" 3)
			L_CATCHUP=$(calc "$CATCHUP_ROWS / $t")
			printf '   node4 reached node1'"'"'s digest in %s s (start included): %s rows/s\n' "$t" "$L_CATCHUP"
		fi
	fi

	say "loopledger memory on node1 (one channel)"
	local sum=0 found=0 pid type m
	while IFS='|' read -r pid type; do
		m=$(mem "$pid")
		printf '   %-32s pid %-7s rss/pss/anon MB %s\n' "$type" "$pid" "$m"
		# the sealer is per database; whatever else is ours serves channels
		[ "$type" = "loopledger sealer" ] && continue
		sum=$(calc "$sum + $(echo "$m" | awk '{ print $2 }')" 1)
		found=1
	done < <(node_psql 1 -Atc "SELECT pid, CASE WHEN backend_type LIKE 'loopledger%' THEN backend_type
	                                         ELSE 'peer backend (' || usename || ')' END
	                           FROM pg_stat_activity
	                           WHERE backend_type LIKE 'loopledger%' OR application_name = 'loopledger_peer' ORDER BY 2")
	[ $found = 1 ] && L_MEM=$sum || L_MEM=none
	echo "   Pss of loopledger channel workers and peer backends: $L_MEM MB"
}

[ "$PART" = ledger ] || run_baseline
[ "$PART" = baseline ] || run_ledger

# ---------------------------------------------------------------------------
num() { [[ $1 =~ ^[0-9.]+$ ]]; }
ratio() { if num "$1" && num "$2"; then echo "$(calc "$1 / $2" 2)x"; else echo n/a; fi; }
goal() { # VALUE OP LIMIT TEXT
	if num "$1"; then awk "BEGIN { exit !($1 $2 $3) }" && echo "$4: met" || echo "$4: missed"; else echo "$4"; fi
}
# whole numbers with thousands separators
fmt() { if num "$1"; then printf '%.0f' "$1" | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'; else echo "$1"; fi; }
TPS_GOAL="$(goal "$L_TPS" '>=' 5000 '>= 5,000'); >= 0.5x baseline"
if num "$L_TPS" && num "$B_TPS"; then TPS_GOAL=$(goal "$L_TPS" '>=' 5000 '>= 5,000')"; $(goal "$(calc "$L_TPS / $B_TPS" 3)" '>=' 0.5 '>= 0.5x baseline')"; fi

echo
echo "=========================== multi-node benchmark ==========================="
printf '%s cores, %s, PostgreSQL %s, DURATION=%s s, load avg %s\n' "$(nproc)" \
	"$(lscpu | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }')" \
	"$(postgres --version | awk '{ print $3 }')" "$DURATION" "$(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| measure | loopledger | streaming replication | ratio | goal |"
echo "|---|---:|---:|---:|---|"
echo "| 1-row INSERT, $CLIENTS clients (tx/s) | $(fmt "$L_TPS") | $(fmt "$B_TPS") | $(ratio "$L_TPS" "$B_TPS") | $TPS_GOAL |"
echo "| latency p50 (ms) | $L_P50 | $B_P50 | $(ratio "$L_P50" "$B_P50") | $(goal "$L_P50" '<=' 20 '<= 20 ms') |"
echo "| latency p99 (ms) | $L_P99 | $B_P99 | $(ratio "$L_P99" "$B_P99") | |"
echo "| 1-row INSERT, $CLIENTS clients, one of 4 servers down (tx/s) | $(fmt "$L_DOWN") | $(fmt "$B_DOWN") | $(ratio "$L_DOWN" "$B_DOWN") | |"
echo "| latency p50 / p99 with one server down (ms) | $L_DP50 / $L_DP99 | $B_DP50 / $B_DP99 | | |"
echo "| catch-up after restart, $(fmt "$CATCHUP_ROWS") rows (rows/s) | $(fmt "$L_CATCHUP") | $(fmt "$B_CATCHUP") | $(ratio "$L_CATCHUP" "$B_CATCHUP") | $(goal "$L_CATCHUP" '>=' 20000 '>= 20,000') |"
echo "| memory per channel / per walsender (Pss MB) | $L_MEM | $B_MEM | $(ratio "$L_MEM" "$B_MEM") | |"
echo "| digests agree after the run | $L_AGREE | | | |"
