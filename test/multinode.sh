# Multi-node harness: N throwaway loopledger clusters on loopback.
# Source it after test/lib.sh (it uses start_cluster, psql_at, as_pg, $TMP).
#
#   start_nodes 4 25600 "loopledger.synchronous_commit = on"
#   setup_channel customs "ARRAY['public','partner','customs']" 4
#   node_psql 1 -c "INSERT ..."; wait_converged customs 60
#   kill9_node 2; restart_node 2; stop_nodes
#
# Clusters are $TMP/${MN_PREFIX}1..N (MN_PREFIX defaults to "node"; set it to
# keep two harnesses apart), node I listens on BASEPORT+I on 127.0.0.1 and on
# a Unix socket in its folder.  Peers reach each other over TCP as role
# loopledger_peer, which pg_hba trusts from 127.0.0.1.

MN_PREFIX=${MN_PREFIX:-node}
MN_NODES=0

node_name() { echo "$MN_PREFIX$1"; }

# A zombie counts as gone: here PID 1 reaps orphans only now and then.
pid_alive() {
	local s
	s=$(ps -o stat= -p "$1") && [ "${s#Z}" = "$s" ]
}

# node_psql I [psql args...]: psql as postgres to database ledger on node I
node_psql() {
	local i=$1
	shift
	psql_at "$(node_name "$i")" ledger "$@"
}

# node_conninfo J [FROM]: how node FROM reaches node J.  With FROM, it logs
# in as peer_from_FROM (a member of loopledger_peer), so a node can refuse
# some peers and not others (test/sh/multinode_partition.sh cuts 2|2).
node_conninfo() {
	local user=loopledger_peer
	[ -n "${2:-}" ] && user="peer_from_$2"
	echo "host=127.0.0.1 port=$(cluster_port "$(node_name "$1")") dbname=ledger user=$user application_name=loopledger_peer"
}

# by the pid in postmaster.pid, as pg_ctl status would, but not fooled by a
# zombie postmaster (see kill9_node)
node_running() {
	local pidfile="$TMP/$(node_name "$1")/data/postmaster.pid"
	[ -f "$pidfile" ] && pid_alive "$(head -1 "$pidfile")"
}

# start_nodes N BASEPORT [extra postgresql.conf lines...]
start_nodes() {
	local n=$1 base=$2 i pids=() rc=0
	shift 2
	MN_NODES=$n
	prepare_tmp
	# initdb dominates (about 3 s each): run the N setups side by side
	for i in $(seq 1 "$n"); do
		(
			name=$(node_name "$i")
			start_cluster "$name" $((base + i)) "$@"   # listens on 127.0.0.1
			# lib.sh's initdb --auth=trust already trusts loopback; say so
			# explicitly so the harness does not depend on that default
			echo "host all loopledger_peer 127.0.0.1/32 trust" |
				as_pg tee -a "$TMP/$name/data/pg_hba.conf" >/dev/null
			# CREATE EXTENSION first: the extension may create the role
			# itself, and would fail if we had created it already
			node_psql "$i" -q >/dev/null <<-'SQL'
				SELECT pg_reload_conf();
				CREATE EXTENSION loopledger;
				DO $$ BEGIN
					IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'loopledger_peer') THEN
						CREATE ROLE loopledger_peer LOGIN;
					END IF;
				END $$;
				ALTER ROLE loopledger_peer LOGIN;
			SQL
			for j in $(seq 1 $((n + 1))); do
				echo "CREATE ROLE peer_from_$j LOGIN IN ROLE loopledger_peer;"
			done | node_psql "$i" -q >/dev/null
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || rc=1; done
	[ $rc = 0 ] || { echo "start_nodes: a node failed to start (see $TMP/${MN_PREFIX}*/server.log)" >&2; return 1; }
}

# setup_channel CHANNEL TIERS_SQL_ARRAY N: every node joins CHANNEL with
# all N nodes (itself included) as peers, each cleared for the highest tier.
# setup_channel CHANNEL TIERS N [CLEARANCES]: CLEARANCES is a list of one
# tier per node ("customs partner public ..."); default the highest tier.
setup_channel() {
	local ch=$1 tiers=$2 n=$3 i j keys=() clear=(${4:-}) c
	for i in $(seq 1 "$n"); do
		keys[i]=$(node_psql "$i" -Atc "SELECT ledger.node_key()")
	done
	# every node knows the channel before anyone is told about peers
	for i in $(seq 1 "$n"); do
		node_psql "$i" -qAtc "SELECT ledger.create_channel('$ch', $tiers)" >/dev/null
	done
	for i in $(seq 1 "$n"); do
		for j in $(seq 1 "$n"); do
			c="($tiers)[cardinality($tiers)]"
			[ -n "${clear[j-1]:-}" ] && c="'${clear[j-1]}'"
			echo "SELECT ledger.add_peer('$ch', '$(node_name "$j")', '$(node_conninfo "$j" "$i")', '${keys[j]}',
			      clearance => $c);"
		done | node_psql "$i" -qAt >/dev/null
	done
}

# wait_converged CHANNEL TIMEOUT_S: until the head block hash of CHANNEL is
# the same on every running node (at least one); 1 on timeout.
wait_converged() {
	local ch=$1 deadline=$(($(date +%s) + $2)) i heads
	while :; do
		heads=$(for i in $(seq 1 "$MN_NODES"); do
			node_running "$i" || continue
			node_psql "$i" -Atc "SELECT ledger.digest('$ch')->>'block_hash'" 2>/dev/null || echo "error"
		done | sort -u)
		[ -n "$heads" ] && [ "$(echo "$heads" | wc -l)" = 1 ] && [ "$heads" != error ] && return 0
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "wait_converged: channel $ch did not converge in $2 s:" >&2
			for i in $(seq 1 "$MN_NODES"); do
				if node_running "$i"; then
					printf '  %s: %s\n' "$(node_name "$i")" "$(node_psql "$i" -Atc \
						"SELECT 'height ' || (d->>'height') || ', head ' || left(d->>'block_hash', 16)
						 FROM ledger.digest('$ch') d" 2>&1 | head -1)" >&2
				else
					printf '  %s: down\n' "$(node_name "$i")" >&2
				fi
			done
			return 1
		fi
		sleep 0.1
	done
}

stop_nodes() {
	local i
	for i in $(seq 1 "$MN_NODES"); do stop_cluster "$(node_name "$i")" & done
	wait
}

# kill9_node I: crash node I's postmaster; return once it and its children
# are gone (a surviving backend would keep the old shared memory attached
# and make the next start refuse to run).
kill9_node() {
	local pidfile="$TMP/$(node_name "$1")/data/postmaster.pid" pid kids k t alive
	pid=$(head -1 "$pidfile")
	kids=$(pgrep -P "$pid" || true)
	kill -9 "$pid"
	while pid_alive "$pid"; do sleep 0.05; done
	# children notice the postmaster's death within moments; force stragglers
	for t in $(seq 1 100); do
		alive=""
		for k in $kids; do pid_alive "$k" && alive=1; done
		[ -z "$alive" ] && break
		[ "$t" = 100 ] && { kill -9 $kids 2>/dev/null || true; }
		sleep 0.1
	done
	# Until the dead postmaster is reaped, kill(pid, 0) still succeeds and
	# a new postmaster refuses to start on its lock files (data directory
	# and socket).  Here PID 1 reaps orphans only every 2 s or so: wait
	# for it, and if it never comes, the process and all its children are
	# gone, so the lock files are stale: drop them.
	for t in $(seq 1 100); do
		[ -d "/proc/$pid" ] || return 0
		sleep 0.1
	done
	rm -f "$pidfile" "$TMP/$(node_name "$1")"/.s.PGSQL.*.lock
}

# restart_node I: start a stopped or crashed node (crash recovery runs inside
# pg_ctl -w's wait) and wait for its sealer, as start_cluster does.
restart_node() {
	local name out
	name=$(node_name "$1")
	# pg_ctl warns about the lock file a crash leaves behind: only show failures
	out=$(as_pg pg_ctl -D "$TMP/$name/data" -l "$TMP/$name/server.log" -w -t 300 start 2>&1) ||
		{ echo "$out" >&2; return 1; }
	wait_for_sealer "$name"
}

# ---- helpers shared by the multi-node TAP tests (test/sh/multinode_*.sh) ----

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_baseport DEFAULT: the first of DEFAULT, DEFAULT+100, ... whose four
# node ports nobody listens on (another checkout may be testing too)
pick_baseport() {
	local base=$1 t
	for t in $(seq 1 20); do
		port_free $((base + 1)) && port_free $((base + 2)) && port_free $((base + 3)) && port_free $((base + 4)) && break
		base=$((base + 100))
	done
	echo "$base"
}

# same_on_all SQL: the distinct answers of all N nodes (one line each)
# poll TRIES WANT CMD...: run CMD every 0.2 s until it prints WANT, at most
# TRIES times; print what it printed last (errors count as no output)
poll() {
	local tries=$1 want=$2 out="" t
	shift 2
	for t in $(seq 1 "$tries"); do
		out=$("$@" 2>/dev/null)
		[ "$out" = "$want" ] && break
		sleep 0.2
	done
	printf '%s' "$out"
}

same_on_all() {
	local i
	for i in $(seq 1 "$N"); do node_psql "$i" -Atc "$1" 2>&1 | paste -sd' '; done | LC_ALL=C sort -u
}
per_node() {
	local i
	for i in $(seq 1 "$N"); do printf 'node%s: %s; ' "$i" "$(node_psql "$i" -Atc "$1" 2>&1 | paste -sd' ')"; done
}
cheight() { node_psql "$1" -Atc "SELECT height FROM ledger.consensus_status WHERE channel = '$CH'" 2>/dev/null; }
now_ms() { date +%s%3N; }

# wait_agreed TABLE...: until all N nodes see each ledger table of channel
# CH agreed (workers declare their definitions through the chain about once
# a second; rows are refused until 2f+1 validators declared the same one).
wait_agreed() {
	local tbl t
	for tbl in "$@"; do
		case $tbl in *.*) ;; *) tbl="public.$tbl" ;; esac
		for t in $(seq 1 300); do
			[ "$(same_on_all "SELECT state FROM ledger.table_definitions WHERE channel = '$CH' AND table_name = '$tbl'")" = agreed ] && break
			sleep 0.1
		done
		[ "$(same_on_all "SELECT state FROM ledger.table_definitions WHERE channel = '$CH' AND table_name = '$tbl'")" = agreed ] || return 1
	done
}

# tap_setup_parcel: N nodes on BASEPORT, channel CH with tiers TIERS, an
# enabled table parcel(id, status, tier) everywhere, all peers up; TAP
# checks through test/tap.sh, bails out when the setup fails.
tap_setup_parcel() {
	local rc i t
	(set -e; start_nodes "$N" "$BASEPORT")
	rc=$?
	MN_NODES=$N
	ok $rc "start $N nodes on ports $((BASEPORT + 1))-$((BASEPORT + N))"
	[ $rc = 0 ] || { echo "Bail out! nodes did not start"; exit 1; }
	(set -e; setup_channel "$CH" "$TIERS" "$N")
	ok $? "setup_channel"
	rc=0
	for i in $(seq 1 "$N"); do
		node_psql "$i" -q -c "CREATE TABLE parcel (id text PRIMARY KEY, status text, tier text);
		                      SELECT ledger.enable_table('parcel', '$CH', 'tier');" >/dev/null || rc=1
	done
	ok $rc "CREATE TABLE parcel and enable_table on every node"
	[ $rc = 0 ] || { echo "Bail out! setup failed"; exit 1; }
	for t in $(seq 1 150); do
		[ "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" = "self,up,up,up" ] && break
		sleep 0.1
	done
	is "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" "self,up,up,up" "all peers up"
	wait_agreed parcel
	ok $? "the definition of parcel is agreed on every node"
}

# The end of every multi-node TAP test: note a build reinstalled while it
# ran, stop the nodes, remove them when all passed, keep them otherwise.
# Call mn_watch_build first; then mn_finish from the test's EXIT trap.
mn_watch_build() {
	MN_SO="$(pg_config --pkglibdir)/loopledger.so"
	MN_SO_SUM=$(md5sum <"$MN_SO")
}
mn_finish() {
	local i
	[ "$(md5sum <"$MN_SO")" = "$MN_SO_SUM" ] || echo "# NOTE: $MN_SO was reinstalled during this run (restarted nodes run the new build)"
	wait 2>/dev/null
	stop_nodes >/dev/null 2>&1
	# MN_KEEP=1 keeps them after a clean run too
	if [ "$failed" = 0 ] && [ -z "${MN_KEEP:-}" ]; then
		for i in $(seq 1 "$N"); do as_pg rm -rf "$TMP/$(node_name "$i")" "$TMP/$(node_name "$i").initdb.log"; done
	else
		echo "# clusters and logs kept in $TMP/${MN_PREFIX}1..$N (server.log)"
	fi
}
