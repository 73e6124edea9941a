#!/usr/bin/env bash
# Multi-peer channel, 4 nodes: a partition leaving 2 and 2, then heal.
# Each node logs in to a peer as peer_from_<its number> (test/multinode.sh);
# nodes 1 and 2 refuse peer_from_3 and peer_from_4 (ALTER ROLE ... NOLOGIN,
# their backends terminated) and nodes 3 and 4 refuse peer_from_1 and
# peer_from_2: each side talks within itself, neither has 3 of 4 votes.
#  - an INSERT on node 1 with statement_timeout = 3s does not commit; it
#    must come back with an error (within 5 s, or at the latest when
#    canceled) and leave no row anywhere, also after the heal;
#  - consensus heights do not advance by more than 1 over 3 s;
#  - after ALTER ROLE ... LOGIN everywhere, the 4 nodes converge within
#    30 s, heights advance again, a new INSERT commits and is on every
#    node, ledger.verify is clean and the rows are the same everywhere.
# Starts its own clusters: .tmp/tmnpart<pid>_1..4 on ports 25831-25834 (or
# +100, ... when taken; MN_PARTITION_PORT changes the base), kept when a
# check fails.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
set +e +o pipefail
MN_PREFIX=tmnpart$$_
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"

BASEPORT=$(pick_baseport ${MN_PARTITION_PORT:-25830})
CH=customs
TIERS="ARRAY['public','partner','customs']"
N=4
WORK=$(mktemp -d)
chmod 755 "$WORK"

mn_watch_build
cleanup() {
	mn_finish
	rm -rf "$WORK"
}
trap cleanup EXIT

# refuse NODE FROM...: node NODE no longer lets the given peers log in
refuse() {
	local node=$1 k rc=0
	shift
	for k in "$@"; do
		node_psql "$node" -Atq -c "ALTER ROLE peer_from_$k NOLOGIN" \
			-c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'peer_from_$k'" >/dev/null || rc=1
	done
	return $rc
}
heal() {
	local i k rc=0
	for i in $(seq 1 $N); do
		for k in $(seq 1 $N); do node_psql "$i" -Atqc "ALTER ROLE peer_from_$k LOGIN" >/dev/null || rc=1; done
	done
	return $rc
}

# ------------------------------------------------------------------ setup
tap_setup_parcel
is "$(node_psql 1 -Atqc "INSERT INTO parcel VALUES ('before', 'filed', 'public') RETURNING id" 2>&1)" before "an INSERT on node 1 commits before the partition"
wait_converged $CH 30
ok $? "converged before the partition"

# ------------------------------------------------------------------ cut 2|2
refuse 1 3 4 && refuse 2 3 4 && refuse 3 1 2 && refuse 4 1 2
ok $? "partition {1,2} | {3,4}: each side refuses the other's logins"
sleep 1
for i in $(seq 1 $N); do h0[i]=$(cheight "$i"); done
echo "# consensus heights after the cut: ${h0[*]}"

# the INSERT: statement_timeout 3 s, psql itself stopped after 60 s
t0=$(now_ms)
(
	PGAPPNAME=during PGOPTIONS="-c statement_timeout=3s" timeout 60 psql -h "$TMP/$(node_name 1)" -p "$(cluster_port "$(node_name 1)")" \
		-U postgres -d ledger -X -Atq -v ON_ERROR_STOP=1 -c "\\set VERBOSITY verbose" -c "BEGIN" -c "SELECT txid_current()" \
		-c "INSERT INTO parcel VALUES ('during', 'filed', 'public')" -c "COMMIT" >"$WORK/during.out" 2>"$WORK/during.err"
	echo $? >"$WORK/during.rc"
	echo $(($(now_ms) - t0)) >"$WORK/during.ms"
) &
ins_pid=$!
sleep 3
bad=""
for i in $(seq 1 $N); do
	h1[i]=$(cheight "$i")
	[ -n "${h1[i]}" ] && [ -n "${h0[i]}" ] && [ "${h1[i]}" -le $((h0[i] + 1)) ] || bad="$bad node$i:${h0[i]}->${h1[i]}"
done
is "${bad:-none}" none "no node's consensus height advanced by more than 1 in 3 s without quorum (${h1[*]})"
echo "# ledger.peers states on node 1: $(node_psql 1 -Atc "SELECT string_agg(name || '=' || state || coalesce(' (' || message || ')', ''), ', ' ORDER BY name) FROM ledger.peers")"
is "$(same_on_all "SELECT count(*) FROM ledger.peers WHERE channel = '$CH' AND state = 'up'")" 1 "every node sees only its partner on its side of the partition 'up'"
msgsql="SELECT count(*) FROM ledger.peers WHERE channel = '$CH' AND state NOT IN ('self', 'up') AND (message IS NULL OR message !~ '^[ -~]+\$')"
is "$(same_on_all "$msgsql")" 0 "ledger.peers.message of every unreachable peer is a readable reason (printable text)"
[ "$(same_on_all "$msgsql")" = 0 ] || echo "#   messages on node 1 (hex): $(node_psql 1 -Atc "SELECT string_agg(name || ': ' || coalesce(encode(textsend(message), 'hex'), 'NULL'), ', ' ORDER BY name) FROM ledger.peers WHERE state <> 'self'")"
is "$(same_on_all "SELECT count(*) FROM parcel WHERE id = 'during'")" 0 "the INSERT on node 1 is not visible anywhere yet"

# wait for it: it should end by itself (statement_timeout); 8 s at most
while [ ! -e "$WORK/during.ms" ] && [ $(($(now_ms) - t0)) -lt 8000 ]; do sleep 0.1; done
if [ -e "$WORK/during.ms" ]; then
	ok 0 "the INSERT came back by itself after $(cat "$WORK/during.ms") ms"
else
	ok 1 "statement_timeout = 3s ends the COMMIT's wait for the agreed order (the INSERT came back by itself within 8 s)"
	echo "#   still waiting after 8 s: $(node_psql 1 -Atc "SELECT 'pid ' || pid || ', state ' || state || ', wait ' || coalesce(wait_event_type || '/' || wait_event, '-') FROM pg_stat_activity WHERE application_name = 'during'")"
	node_psql 1 -Atc "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'during'" >/dev/null
	echo "#   sent pg_cancel_backend at $(($(now_ms) - t0)) ms"
	while [ ! -e "$WORK/during.ms" ] && [ $(($(now_ms) - t0)) -lt 15000 ]; do sleep 0.1; done
	ok $([ -e "$WORK/during.ms" ]; echo $?) "after pg_cancel_backend the INSERT came back (after $(cat "$WORK/during.ms" 2>/dev/null || echo '-') ms)"
fi
rc=$(cat "$WORK/during.rc" 2>/dev/null || echo running)
ok $([ "$rc" != 0 ] && [ "$rc" != running ]; echo $?) "the INSERT without quorum did not report success (psql exit status $rc)"
sed 's/^/#   psql: /' "$WORK/during.err"
# the key ledger.txlog uses is in the error's HINT ("... (txid N).")
during_txid=$(sed -n 's/.*ledger\.txlog (txid \([0-9]*\)).*/\1/p' "$WORK/during.err" | head -1)
echo "#   its transaction id: $during_txid"
is "$(node_psql 1 -Atc "SELECT count(*) FROM parcel WHERE id = 'during'")" 0 "node 1 has no row 'during' after the failed INSERT"
is "$(node_psql 1 -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'during'")" 0 \
	"the INSERT's session on node 1 is gone"

# ------------------------------------------------------------------ heal
heal
ok $? "ALTER ROLE peer_from_* LOGIN on every node"
t_heal=$(now_ms)
for i in $(seq 1 $N); do h2[i]=$(cheight "$i"); done
wait_converged $CH 30
ok $? "the 4 nodes converge within 30 s of the heal ($(($(now_ms) - t_heal)) ms)"
adv=1
while [ $(($(now_ms) - t_heal)) -lt 30000 ]; do
	adv=0
	for i in $(seq 1 $N); do h=$(cheight "$i"); [ "${h:-0}" -gt $((h2[i] + 1)) ] || adv=1; done
	[ $adv = 0 ] && break
	sleep 0.2
done
ok $adv "consensus heights advance again on every node ($(for i in $(seq 1 $N); do printf '%s->%s ' "${h2[i]}" "$(cheight "$i")"; done)) within 30 s"
for t in $(seq 1 100); do
	[ "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" = "self,up,up,up" ] && break
	sleep 0.1
done
is "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" "self,up,up,up" "all peers up again"
t1=$(now_ms)
out=$(timeout 30 psql -h "$TMP/$(node_name 1)" -p "$(cluster_port "$(node_name 1)")" -U postgres -d ledger -X -Atq \
	-c "INSERT INTO parcel VALUES ('after', 'filed', 'public') RETURNING id" 2>&1)
is "$out" after "an INSERT on node 1 after the heal commits ($(($(now_ms) - t1)) ms)"
wait_converged $CH 30
ok $? "converged after it"
is "$(same_on_all "SELECT string_agg(id, ',' ORDER BY id) FROM parcel WHERE id IN ('before', 'after')")" "after,before" "'before' and 'after' are on every node"
# The README ("Limits"): a client that cancels while its transaction waits
# for its turn gets an error, but the transaction was already sent to the
# peers and may still be ordered and applied; ledger.txlog tells.  So: the
# same outcome on every node, and txlog agrees with it.
during=$(same_on_all "SELECT count(*) FROM parcel WHERE id = 'during'")
ok $([ "$during" = 0 ] || [ "$during" = 1 ]; echo $?) "the canceled INSERT has the same outcome on every node (rows 'during': $during)"
txl=$(same_on_all "SELECT coalesce(string_agg(status, ','), 'none') FROM ledger.txlog t JOIN ledger.peers p ON p.pubkey = t.origin AND p.channel = '$CH'
                   WHERE p.name = '$(node_name 1)' AND t.txid = ${during_txid:-0}")
if [ "$during" = 1 ]; then want=accepted; else want=none; fi
is "$txl" "$want" "ledger.txlog on every node records the canceled transaction (txid ${during_txid:-?}) as $want, as its row says"
[ "$during" = 0 ] || echo "# NOTE: the client got '$(grep -m1 '^ERROR' "$WORK/during.err")' at COMMIT, yet after the heal the row 'during' is committed on every node: $(per_node "SELECT coalesce(string_agg(id || ' entry ' || ledger_entry, ','), 'none') FROM parcel WHERE id = 'during'")"
is "$(same_on_all "SELECT count(*) FROM ledger.txlog WHERE status = 'accepted'" | wc -l)" 1 "ledger.txlog: same number of accepted transactions on every node ($(per_node "SELECT count(*) FROM ledger.txlog WHERE status = 'accepted'"))"
md5sql="SELECT md5(string_agg(id || status || ledger_entry, ',' ORDER BY ledger_entry)) FROM parcel"
is "$(same_on_all "$md5sql" | wc -l)" 1 "md5 of (id, status, ledger_entry) identical on all nodes"
is "$(same_on_all "SELECT ledger.digest('$CH')->>'block_hash'" | wc -l)" 1 "same head block hash on all nodes"
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" 0 "ledger.verify clean on every node"
is "$(same_on_all "SELECT count(*) FROM ledger.block_entries('$CH') WHERE block_height IS NULL")" 0 "nothing pending on any node"
for i in $(seq 1 $N); do
	c=$(grep -c -E 'PANIC|server process .* was terminated by signal|TRAP:' "$TMP/$(node_name "$i")/server.log")
	is "$c" 0 "$(node_name "$i") server.log: no PANIC, assertion or crashed server process"
done
echo "# took ${SECONDS}s"
echo "1..$n"
[ $failed = 0 ]
