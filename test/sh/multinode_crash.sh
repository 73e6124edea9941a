#!/usr/bin/env bash
# Multi-peer channel, 4 nodes: crashes under load.
# CLIENTS shell loops on each of nodes 1-3 insert unique ids, one psql per
# transaction, and write an id to their list only after psql returned 0
# (COMMIT succeeded, synchronous_commit on).  Meanwhile, twice: kill -9 the
# current proposer, restart it 2 s later, then kill -9 a follower and
# restart it 2 s later.  After each kill the surviving nodes keep deciding
# heights and committing new transactions within 10 s, and the restarted
# node catches up.  At the end every node has every id whose COMMIT
# succeeded and none whose INSERT failed with an ERROR, the same head
# block, the same rows, and ledger.verify is clean.
# Starts its own clusters: .tmp/tmncrash<pid>_1..4 on ports 25821-25824
# (or +100, ... when taken; MN_CRASH_PORT changes the base), kept when a
# check fails.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
set +e +o pipefail
MN_PREFIX=tmncrash$$_
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"

BASEPORT=$(pick_baseport ${MN_CRASH_PORT:-25820})
CH=customs
TIERS="ARRAY['public','partner','customs']"
N=4
CLIENTS=${CLIENTS:-6}        # insert loops per loaded node
LOADED="1 2 3"
WORK=$(mktemp -d)
chmod 755 "$WORK"
loop_pids=()

# a new build installed while we run makes restarted nodes differ: say so
mn_watch_build
cleanup() {
	touch "$WORK/stop"
	for p in "${loop_pids[@]}"; do kill "$p" 2>/dev/null; done
	mn_finish
	if [ "$failed" != 0 ]; then
		cp -r "$WORK" "$TMP/${MN_PREFIX}work" 2>/dev/null
		echo "# client lists kept in $TMP/${MN_PREFIX}work"
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# a running node other than $1 (and $2)
survivor() {
	local i
	for i in $(seq 1 $N); do
		[ "$i" != "$1" ] && [ "$i" != "${2:-}" ] && node_running "$i" && { echo "$i"; return; }
	done
}
committed() { cat "$WORK"/ok.* 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ setup
tap_setup_parcel

# ------------------------------------------------------------------ load
# load_loop NODE CLIENT: ok.NODE.CLIENT gets the ids whose psql exited 0,
# err.NODE.CLIENT the ids whose INSERT failed with an ERROR (must leave no
# row), lost.NODE.CLIENT the ones that failed otherwise (connection lost:
# outcome unknown), hang.NODE.CLIENT the ones psql did not finish in 20 s.
load_loop() {
	local node=$1 c=$2 seq=0 id out rc sock port
	sock="$TMP/$(node_name "$node")"
	port=$(cluster_port "$(node_name "$node")")
	while [ ! -e "$WORK/stop" ]; do
		seq=$((seq + 1))
		id="n$node-c$c-$seq"
		out=$(timeout 20 psql -h "$sock" -p "$port" -U postgres -d ledger -X -q -v ON_ERROR_STOP=1 \
			-c "\\set VERBOSITY verbose" -c "INSERT INTO parcel VALUES ('$id', 'filed', 'public')" 2>&1)
		rc=$?
		if [ $rc = 0 ]; then
			echo "$id" >>"$WORK/ok.$node.$c"
		elif [ $rc = 124 ]; then
			echo "$id" >>"$WORK/hang.$node.$c"
		elif echo "$out" | grep -q '^ERROR:'; then
			echo "$id $(echo "$out" | grep -m1 '^ERROR:')" >>"$WORK/err.$node.$c"
		else
			echo "$id $(echo "$out" | head -1)" >>"$WORK/lost.$node.$c"
			sleep 0.2
		fi
	done
}
for i in $LOADED; do
	for c in $(seq 1 "$CLIENTS"); do
		load_loop "$i" "$c" &
		loop_pids+=($!)
	done
done
sleep 2
ok $([ "$(committed)" -gt 0 ]; echo $?) "the load commits ($(committed) transactions in the first 2 s, $CLIENTS clients on each of nodes $LOADED)"

# crash NODE ROLE: kill -9, 2 s down, restart; checks progress
crash() {
	local v=$1 role=$2 s h0 c0 t0 t1 h c hs deadline progressed=1 commits=1 caught=1
	s=$(survivor "$v")
	h0=$(cheight "$s")
	c0=$(committed)
	t0=$(now_ms)
	date +%s >>"$WORK/kills.$v"
	kill9_node "$v"
	echo "# kill took $(($(now_ms) - t0)) ms"
	echo "# ${SECONDS}s $(date +%T.%N | cut -c1-12) killed $role $(node_name "$v") at consensus height $h0 (read on node $s), $c0 commits so far"
	sleep 2
	hs=$(cheight "$s")
	echo "# after 2 s down: height $hs on node $s, $(( $(committed) - c0 )) new commits"
	t1=$(now_ms)
	restart_node "$v"
	ok $? "restart $role $(node_name "$v") after 2 s down"
	echo "# restart took $(($(now_ms) - t1)) ms; killed and restarted in $((($(now_ms) - t0) / 1000)) s"
	# Checked at least once: on a loaded machine the kill (waiting for the
	# children to go) and the crash recovery can use up the whole window,
	# and the progress made meanwhile still counts.
	deadline=$((t0 + 10000))
	while :; do
		h=$(cheight "$s")
		c=$(committed)
		[ "${h:-0}" -gt "$((h0 + 1))" ] && progressed=0
		[ "$c" -gt "$c0" ] && commits=0
		[ $progressed = 0 ] && [ $commits = 0 ] && break
		[ "$(now_ms)" -lt $deadline ] || break
		sleep 0.1
	done
	ok $progressed "kill of $role: consensus height on node $s went on within 10 s ($h0 -> ${h:-?})"
	ok $commits "kill of $role: clients committed new transactions within 10 s ($c0 -> $c)"
	# the restarted node catches up with the others
	hs=$(cheight "$s")
	deadline=$(($(now_ms) + 15000))
	while [ "$(now_ms)" -lt $deadline ]; do
		h=$(cheight "$v")
		[ "${h:-0}" -ge "$hs" ] && { caught=0; break; }
		sleep 0.1
	done
	ok $caught "restarted $(node_name "$v") reached consensus height $hs within 15 s (has ${h:-?}) after $((($(now_ms) - t0) / 1000)) s"
}

for round in 1 2; do
	s=$(survivor 0)
	prop=$(node_psql "$s" -Atc "SELECT proposer FROM ledger.consensus_status WHERE channel = '$CH'")
	p=${prop#"$MN_PREFIX"}
	case $p in [1-4]) ;; *) p=""; ;; esac
	ok $([ -n "$p" ]; echo $?) "round $round: current proposer read on node $s: $prop"
	[ -n "$p" ] || p=1
	crash "$p" "proposer"
	sleep 1
	s=$(survivor 0)
	prop=$(node_psql "$s" -Atc "SELECT proposer FROM ledger.consensus_status WHERE channel = '$CH'")
	prop=${prop#"$MN_PREFIX"}
	# a follower: not the proposer now; round 1 prefers an unloaded node
	if [ $round = 1 ]; then order="4 2 3 1"; else order="2 3 1 4"; fi
	for f in $order; do [ "$f" != "$prop" ] && [ "$f" != "$p" ] && break; done
	crash "$f" "follower"
	sleep 1
done

touch "$WORK/stop"
for pid in "${loop_pids[@]}"; do wait "$pid"; done
loop_pids=()
n_ok=$(committed)
n_err=$(cat "$WORK"/err.* 2>/dev/null | wc -l)
n_lost=$(cat "$WORK"/lost.* 2>/dev/null | wc -l)
n_hang=$(cat "$WORK"/hang.* 2>/dev/null | wc -l)
echo "# load stopped after ${SECONDS}s: $n_ok committed, $n_err failed with an ERROR, $n_lost lost connection, $n_hang waited more than 20 s"
cat "$WORK"/err.* 2>/dev/null | cut -d' ' -f2- | sort | uniq -c | sort -rn | head -5 | sed 's/^/#   error: /'
cat "$WORK"/lost.* 2>/dev/null | cut -d' ' -f2- | sort | uniq -c | sort -rn | head -5 | sed 's/^/#   lost: /'
is "$n_hang" 0 "no INSERT waited more than 20 s for its COMMIT"

wait_converged $CH 60
ok $? "wait_converged: the same head block on all 4 nodes within 60 s"
is "$(same_on_all "SELECT ledger.digest('$CH')->>'block_hash'" | wc -l)" 1 "ledger.digest block_hash identical on all nodes"

# every id whose COMMIT succeeded is on every node; none that failed with ERROR
cat "$WORK"/ok.* >"$WORK/ok.all" 2>/dev/null
cat "$WORK"/err.* 2>/dev/null | cut -d' ' -f1 >"$WORK/err.all"
for i in $(seq 1 $N); do
	missing=$({ echo "CREATE TEMP TABLE ok (id text); COPY ok FROM STDIN;"; cat "$WORK/ok.all"; echo '\.'
	           echo "SELECT count(*) || ' ' || coalesce(string_agg(id, ',' ORDER BY id), '') FROM (SELECT id FROM ok EXCEPT SELECT id FROM parcel) m;"; } |
	         node_psql "$i" -qAt 2>&1)
	is "$missing" "0 " "node $i has all $n_ok ids whose COMMIT succeeded"
	bad=$({ echo "CREATE TEMP TABLE e (id text); COPY e FROM STDIN;"; cat "$WORK/err.all"; echo '\.'
	        echo "SELECT count(*) || ' ' || coalesce(string_agg(id, ',' ORDER BY id), '') FROM e JOIN parcel USING (id);"; } |
	      node_psql "$i" -qAt 2>&1)
	is "$bad" "0 " "node $i has none of the $n_err ids whose INSERT failed with an ERROR"
done
is "$(same_on_all "SELECT count(*) FROM parcel" | wc -l)" 1 "same row count on all nodes ($(per_node "SELECT count(*) FROM parcel"))"
md5sql="SELECT md5(string_agg(id || status || ledger_entry, ',' ORDER BY ledger_entry)) FROM parcel"
is "$(same_on_all "$md5sql" | wc -l)" 1 "md5 of (id, status, ledger_entry) identical on all nodes"
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" 0 "ledger.verify clean on every node"
is "$(same_on_all "SELECT count(*) FROM ledger.block_entries('$CH') WHERE block_height IS NULL")" 0 "nothing pending on any node"
txsql="SELECT md5(string_agg(concat_ws('|', encode(origin, 'hex'), txid, height, position, status), ',' ORDER BY height, position)) FROM ledger.txlog"
is "$(same_on_all "$txsql" | wc -l)" 1 "ledger.txlog identical on all nodes"
is "$(same_on_all "SELECT count(*) FROM ledger.txlog WHERE status = 'accepted'")" "$(same_on_all "SELECT count(DISTINCT ledger_entry) FROM parcel" | head -1)" \
	"one accepted transaction per row (single-row transactions)"

# the channel still works after all this
out=$(timeout 30 psql -h "$TMP/$(node_name 4)" -p "$(cluster_port "$(node_name 4)")" -U postgres -d ledger -X -Atq \
	-c "INSERT INTO parcel VALUES ('final', 'filed', 'customs') RETURNING id" 2>&1)
is "$out" final "a last INSERT on node 4 commits"
wait_converged $CH 30
ok $? "converged again"
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id = 'final'")" 1 "the last row is on every node"

# A member that stays down must not cost every height it would propose a
# whole propose timeout (1 s) plus a precommit timeout: the others cut the
# propose timeout short once they have not heard from it for two hello
# periods, and 2f+1 nil precommits start the next round at once.
# the worker's epoch (hellos, link key) is kept on disk: a later start
# announces a later one even if the clock was set back meanwhile; here the
# file says an hour ahead, as if it had been
epoch_of() { as_pg od -An -t u8 "$TMP/$(node_name 4)/data/pg_loopledger/channel_$1.epoch" 2>/dev/null | tr -d ' '; }
chid=$(node_psql 4 -Atc "SELECT channel_id FROM ledger.channel WHERE name = '$CH'")
gh=$(node_psql 4 -Atc "SELECT encode(ledger.genesis_hash('$CH'), 'hex')")
as_pg pg_ctl -D "$TMP/$(node_name 4)/data" -m fast -w stop >/dev/null
# and its consensus state file under the name earlier builds gave it
state_dir="$TMP/$(node_name 4)/data/pg_loopledger"
as_pg mv "$state_dir/chain_$gh.state" "$state_dir/channel_$chid.state"
ahead=$(( ($(date +%s) - 946684800 + 3600) * 1000000 ))
as_pg python3 -c "import struct,sys; open(sys.argv[1], 'wb').write(struct.pack('<Q', int(sys.argv[2])))" \
	"$TMP/$(node_name 4)/data/pg_loopledger/channel_$chid.epoch" "$ahead"
sleep 3
t0=$(now_ms)
for k in $(seq 1 40); do node_psql 1 -qc "INSERT INTO parcel VALUES ('down-$k', 'filed', 'public')" || break; done
t=$(($(now_ms) - t0))
is "$(node_psql 1 -Atc "SELECT count(*) FROM parcel WHERE id LIKE 'down-%'")" 40 "40 commits one after another on node 1 while node 4 is down"
ok $([ "$t" -lt 8000 ]; echo $?) "and they take ${t} ms (waiting out the timeouts on every 4th height took over 15 s)"
restart_node 4
wait_converged $CH 60
ok $? "node 4, restarted, caught up"
after=$(epoch_of "$chid")
ok $(( ${after:-0} > ahead ? 0 : 1 )) "its epoch on disk is later than the last one, an hour ahead of the clock ($after > $ahead)"
# what it signed is kept under the chain id: a database rebuilt in this
# data directory finds it, another chain with the same number does not
ok $(as_pg test -s "$state_dir/chain_$gh.state" && ! as_pg test -e "$state_dir/channel_$chid.state"; echo $?) \
	"its consensus state file, found under its old name, is now named by the chain id (chain_${gh:0:12}....state)"
grep -q "consensus state file \"pg_loopledger/channel_$chid.state\" renamed to \"pg_loopledger/chain_$gh.state\"" \
	"$TMP/$(node_name 4)/server.log"
ok $? "  and its log says so"
for t in $(seq 1 50); do
	ago=$(node_psql 1 -Atc "SELECT round(extract(epoch FROM now() - last_contact) * 1000) FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 4)'")
	[ "${ago:-99999}" -lt 1000 ] && break
	sleep 0.1
done
ok $(( ${ago:-99999} < 1000 ? 0 : 1 )) "node 1 takes its hellos (last contact ${ago:-?} ms ago)"

# A hung member (every process of its server stopped with SIGSTOP) keeps
# its TCP connections up, so its link looks up; calls to it going
# unanswered for two hello periods count as down too.  Waiting out the
# propose timeout on its heights would make 20 commits take over 5 s.
hung=$(head -1 "$TMP/$(node_name 4)/data/postmaster.pid")
hung="$hung $(pgrep -P "$hung" | paste -sd' ')"
kill -STOP $hung
sleep 3
t0=$(now_ms)
for k in $(seq 1 20); do node_psql 1 -qc "INSERT INTO parcel VALUES ('hung-$k', 'filed', 'public')" || break; done
t=$(($(now_ms) - t0))
peer4=$(node_psql 1 -Atc "SELECT state || ': ' || coalesce(message, '') FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 4)'")
kill -CONT $hung
like "$peer4" "^not answering: connected, but a call has waited [0-9]+ s" "ledger.peers on node 1 shows the hung member as not answering ($peer4)"
is "$(node_psql 1 -Atc "SELECT count(*) FROM parcel WHERE id LIKE 'hung-%'")" 20 "20 commits one after another on node 1 while node 4 is hung (SIGSTOP)"
ok $([ "$t" -lt 4000 ]; echo $?) "and they take ${t} ms (waiting out the propose timeout on every 4th height took 4.7 s)"
wait_converged $CH 60
ok $? "node 4, resumed (SIGCONT), caught up"
# Backends that outlive their killed postmaster for a moment while waiting
# after their COMMIT log "PANIC: cannot abort transaction N, it was already
# committed" (their postmaster is gone by then): within 10 s after one of
# our kills those are counted apart, not failed.
for i in $(seq 1 $N); do
	c=$(TZ=UTC awk -v kills="$(paste -sd' ' "$WORK/kills.$i" 2>/dev/null)" '
		BEGIN { nk = split(kills, k, " ") }
		/PANIC|server process .* was terminated by signal|background worker .* was terminated by signal|TRAP:/ {
			split($1, d, "-"); split($2, t, ":")
			ts = mktime(d[1] " " d[2] " " d[3] " " t[1] " " t[2] " " int(t[3]))
			if (/cannot abort transaction [0-9]+, it was already committed/)
				for (j = 1; j <= nk; j++) if (ts >= k[j] - 1 && ts <= k[j] + 10) { orphan++; next }
			bad++; if (bad <= 3) print "#   " substr($0, 1, 200) > "/dev/stderr"
		}
		END { print bad + 0; if (orphan) print "#   (" orphan " PANIC lines of backends orphaned by our kill -9 not counted)" > "/dev/stderr" }' \
		"$TMP/$(node_name "$i")/server.log" 2>"$WORK/log$i")
	is "$c" 0 "$(node_name "$i") server.log: no PANIC, assertion or crashed server process (apart from our kill -9)"
	cat "$WORK/log$i"
done
echo "# took ${SECONDS}s"
echo "1..$n"
[ $failed = 0 ]
