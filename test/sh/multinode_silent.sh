#!/usr/bin/env bash
# Multi-peer channel, 4 nodes: one member cut off silently.  Node 4 runs
# in a network namespace of its own, reached over a veth pair; setting
# the link down drops its packets without a word (no reset, no refused
# login), as a pulled cable or a firewall that drops would.  Its TCP
# connections stay open and every call on them just waits.
#  - nodes 1-3 keep committing: 40 commits one after another on node 1
#    take under 10 s, writes on nodes 1-3 all commit, and node 1's
#    ledger.peers shows node 4 as down or not answering;
#  - a commit on node 4, alone, ends on its statement_timeout;
#  - no worker is stuck on the silent peer: node 1 stops (fast) within
#    10 s, restarts, and 20 commits on it take under 10 s (every height
#    needs nodes 1-3 while node 4 is silent);
#  - after the link comes back (the cut lasts a minute), node 4 catches
#    up within 10 s, commits again, and all four hold the same rows and
#    verify clean.
# Needs root (ip netns, iproute2); skipped otherwise.  Starts its own
# clusters: .tmp/tmnsilent<pid>_1..4 on ports 25931-25934 (or +100, ...;
# MN_SILENT_PORT changes the base), kept when a check fails.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
set +e +o pipefail
MN_PREFIX=tmnsilent$$_
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"

NS=llsilent$$
VH=llsh$$					# host side of the veth pair
VN=llsn$$					# node 4's side
# a /30 of 10.213/16 of this run's own (another checkout may be testing)
NET=10.213.$(( ($$ / 64) % 250 )).$(( ($$ % 64) * 4 ))
HOST_IP=${NET%.*}.$(( ${NET##*.} + 1 ))
NS_IP=${NET%.*}.$(( ${NET##*.} + 2 ))
BASEPORT=$(pick_baseport ${MN_SILENT_PORT:-25930})
CH=customs
N=4

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null ||
	! ip netns add "$NS" 2>/dev/null; then
	echo "1..0 # SKIP needs root and network namespaces (ip netns)"
	exit 0
fi
mn_watch_build
cleanup() {
	mn_finish
	ip link del "$VH" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
}
trap cleanup EXIT
! ip -o addr show | grep -q " $HOST_IP/" &&
	ip link add "$VH" type veth peer name "$VN" &&
	ip link set "$VN" netns "$NS" &&
	ip addr add "$HOST_IP/30" dev "$VH" && ip link set "$VH" up &&
	ip -n "$NS" addr add "$NS_IP/30" dev "$VN" && ip -n "$NS" link set "$VN" up &&
	ip -n "$NS" link set lo up
net_rc=$?
# A permanent neighbour entry: with node 4's end down, the host keeps
# sending to its address and the frames vanish.  Without it, the host's
# address lookup would fail and connects would end with an error.
mac=$(ip -n "$NS" link show "$VN" 2>/dev/null | awk '/link\/ether/ {print $2}')
ip neigh replace "$NS_IP" lladdr "$mac" dev "$VH" nud permanent 2>/dev/null || net_rc=1
ok $net_rc "network namespace $NS with node 4's end of a veth pair"
[ $net_rc = 0 ] || { echo "Bail out! no veth pair"; exit 1; }

# Nodes 1-3 reach node 4 at NS_IP, node 4 reaches them at HOST_IP.
node_conninfo() {
	local user=loopledger_peer host=127.0.0.1
	[ -n "${2:-}" ] && user="peer_from_$2"
	if [ "$1" = 4 ] && [ "${2:-}" != 4 ]; then host=$NS_IP; fi
	if [ "${2:-}" = 4 ] && [ "$1" != 4 ]; then host=$HOST_IP; fi
	echo "host=$host port=$(cluster_port "$(node_name "$1")") dbname=ledger user=$user application_name=loopledger_peer"
}

# --------------------------------------------------------------- setup
(set -e; start_nodes $N "$BASEPORT" "listen_addresses = '*'")
rc=$?
MN_NODES=$N
ok $rc "start $N nodes"
[ $rc = 0 ] || { echo "Bail out! nodes did not start"; exit 1; }
D4="$TMP/$(node_name 4)"
for i in 1 2 3 4; do
	echo "host all all $NET/30 trust" | as_pg tee -a "$TMP/$(node_name "$i")/data/pg_hba.conf" >/dev/null
	node_psql "$i" -qAtc "SELECT pg_reload_conf()" >/dev/null
done
# node 4 moves into the namespace (psql still reaches it on its Unix socket)
as_pg pg_ctl -D "$D4/data" -m fast -w stop >/dev/null &&
	ip netns exec "$NS" runuser -u postgres -- pg_ctl -D "$D4/data" -l "$D4/server.log" -w start >/dev/null &&
	wait_for_sealer "$(node_name 4)"
ok $? "node 4 runs in the namespace"
(set -e; setup_channel $CH "ARRAY['public','partner','customs']" $N)
ok $? "setup_channel: node 4 over the veth pair, the others on loopback"
rc=0
for i in 1 2 3 4; do
	node_psql "$i" -qc "CREATE TABLE parcel (id text PRIMARY KEY, status text, tier text);
	                    SELECT ledger.enable_table('parcel', '$CH', 'tier')" >/dev/null || rc=1
done
ok $rc "CREATE TABLE parcel and enable_table on every node"
wait_agreed parcel
ok $? "the definition of parcel is agreed on every node"
rc=0
for i in 1 2 3 4; do
	node_psql "$i" -qc "INSERT INTO parcel VALUES ('before-$i', 'filed', 'public')" >/dev/null || rc=1
done
ok $rc "a commit on each node before the cut"
wait_converged $CH 30
ok $? "all four converge before the cut"

# ----------------------------------------------------------------- cut
ip -n "$NS" link set "$VN" down
ok $? "node 4's end of the link is down: packets to it are dropped silently"
cut_at=$(now_ms)
count=4
t0=$(now_ms)
rc=0
for k in $(seq 1 40); do
	node_psql 1 -qc "INSERT INTO parcel VALUES ('seq-$k', 'filed', 'public')" >/dev/null || rc=1
done
ms=$(( $(now_ms) - t0 ))
count=$((count + 40))
ok $(( rc == 0 && ms < 10000 ? 0 : 1 )) "40 commits one after another on node 1 take under 10 s with node 4 silent ($ms ms)"
like "$(node_psql 1 -Atc "SELECT state FROM ledger.peers WHERE name = '$(node_name 4)'")" \
	"^(down|not answering)$" "node 1's ledger.peers shows node 4 down or not answering"
# writes on the three connected nodes, side by side
rc=0
pids=()
for i in 1 2 3; do
	(for k in $(seq 1 20); do
		node_psql "$i" -qc "INSERT INTO parcel VALUES ('cut-$i-$k', 'filed', 'public')" >/dev/null || exit 1
	done) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
count=$((count + 60))
ok $rc "60 writes on nodes 1-3 commit while node 4 is silent"
err=$(PGOPTIONS="-c statement_timeout=3s" node_psql 4 -qc "INSERT INTO parcel VALUES ('alone', 'filed', 'public')" 2>&1)
ok $(( $? != 0 ? 0 : 1 )) "a commit on node 4, cut off alone, ends on its statement_timeout"
like "$err" "canceling statement due to statement timeout|ledger.txlog" "... with the timeout's error ($(echo "$err" | head -1))"

# a worker must not hang on a call to the silent peer: stop, restart and
# catch up node 1 while node 4 is still cut off
t0=$(now_ms)
as_pg pg_ctl -D "$TMP/$(node_name 1)/data" -m fast -w -t 30 stop >/dev/null
stop_rc=$?
stop_ms=$(( $(now_ms) - t0 ))
ok $(( stop_rc == 0 && stop_ms < 10000 ? 0 : 1 )) "node 1 stops (fast) within 10 s ($stop_ms ms)"
restart_node 1 >/dev/null
ok $? "node 1 restarts"
# with node 4 silent, every height needs node 1 again
t0=$(now_ms)
rc=0
for k in $(seq 1 20); do
	PGOPTIONS="-c statement_timeout=20s" node_psql 1 -qc "INSERT INTO parcel VALUES ('restarted-$k', 'filed', 'public')" >/dev/null || rc=1
done
ms=$(( $(now_ms) - t0 ))
count=$((count + 20))
ok $(( rc == 0 && ms < 10000 ? 0 : 1 )) "after its restart, 20 commits one after another on node 1 take under 10 s ($ms ms)"
MN_NODES=3 wait_converged $CH 30
ok $? "nodes 1-3 agree"

# ---------------------------------------------------------------- heal
# a cut of a minute: long enough for the kernel's retries of a dropped
# connection attempt to back off to half a minute and more
while [ $(( $(now_ms) - cut_at )) -lt 60000 ]; do sleep 1; done
ip -n "$NS" link set "$VN" up
t0=$(now_ms)
wait_converged $CH 30
rc=$?
ms=$(( $(now_ms) - t0 ))
ok $(( rc == 0 && ms < 10000 ? 0 : 1 )) "after the link comes back, node 4 catches up within 10 s ($ms ms)"
is "$(PGOPTIONS="-c statement_timeout=10s" node_psql 4 -qAtc "INSERT INTO parcel VALUES ('healed', 'filed', 'public') RETURNING id" 2>&1)" \
	healed "node 4 commits again"
count=$((count + 1))
wait_converged $CH 30
# 'alone' may or may not have been ordered after the heal: count the rest
for i in 1 2 3 4; do
	is "$(node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id <> 'alone'")" "$count" "node $i holds every committed row"
	is "$(node_psql "$i" -Atc "SELECT count(*) FROM ledger.verify('$CH')")" 0 "node $i verifies clean"
done
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id = 'alone'" | wc -l)" 1 "the cancelled commit of node 4 is on all four or on none"
echo "1..$n"
exit $(( failed > 0 ? 1 : 0 ))
