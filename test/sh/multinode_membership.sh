#!/usr/bin/env bash
# Membership of a multi-peer channel: genesis mismatch is refused, a fifth
# peer joins after the first blocks (catching up from genesis and voting
# once admitted), one member alone cannot change membership, and a member
# removed by a quorum keeps following (over commitments only: it no longer
# receives content) but can no longer append.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"
set +e
MN_PREFIX=mem
BASE=${LOOPLEDGER_MEM_PORT:-25880}
TIERS="ARRAY['public','partner','customs']"
trap 'MN_NODES=5 stop_nodes >/dev/null 2>&1' EXIT

start_nodes 5 "$BASE" >/dev/null
ok $? "start 5 nodes"
for i in 1 2 3 4 5; do KEY[i]=$(node_psql "$i" -Atc "SELECT ledger.node_key()"); done

# --- a peer whose genesis differs is refused, visibly
node_psql 4 -qAtc "SELECT ledger.create_channel('other', ARRAY['a','b'])" >/dev/null
node_psql 5 -qAtc "SELECT ledger.create_channel('other', ARRAY['a','c'])" >/dev/null
for i in 4 5; do
	for j in 4 5; do
		node_psql "$i" -qAtc "SELECT ledger.add_peer('other', 'mem$j', '$(node_conninfo "$j")', '${KEY[j]}')" >/dev/null
	done
done
state=""
for t in $(seq 1 50); do
	state=$(node_psql 4 -Atc "SELECT state FROM ledger.peers WHERE channel = 'other' AND name = 'mem5'")
	[ "$state" = "genesis mismatch" ] && break
	sleep 0.2
done
is "$state" "genesis mismatch" "a peer with other tiers shows as 'genesis mismatch'"
isnt_hash=$(for i in 4 5; do node_psql "$i" -Atc "SELECT ledger.genesis_hash('other')"; done | sort -u | wc -l)
is "$isnt_hash" 2 "and the two genesis hashes differ"
grep -q "has a different genesis; ignoring it" "$TMP/mem4/server.log"
ok $? "the server log says why"

# --- four genesis members, some blocks
MN_NODES=4
setup_channel customs "$TIERS" 4
for i in 1 2 3 4 5; do
	node_psql "$i" -qc "CREATE TABLE parcel(id text PRIMARY KEY, status text, tier text)" >/dev/null
done
# every member enables the table before anybody writes to it
for i in 1 2 3 4; do
	node_psql "$i" -qc "SELECT ledger.enable_table('parcel', 'customs', 'tier')" >/dev/null
done
for i in 1 2 3 4; do
	node_psql "$i" -qc "INSERT INTO parcel VALUES ('a$i', 'filed', 'public')"
done
ok $? "rows committed on the four genesis members"

# --- synchronous_commit off: a table no agreed order can refuse (no unique
# key but ledger_entry) commits at once and shows pending until its block
for i in 1 2 3 4 5; do
	node_psql "$i" -qc "CREATE TABLE events(note text)" >/dev/null
done
for i in 1 2 3 4; do
	node_psql "$i" -qc "SELECT ledger.enable_table('events', 'customs')" >/dev/null
done
st=$(node_psql 2 -At -c "SET loopledger.synchronous_commit = off" -c "INSERT INTO events VALUES ('async')" \
	-c "SELECT status FROM ledger.history('events')" | tail -1)
is "$st" pending "sync off: COMMIT returns at once, ledger.history shows the row pending"
MN_NODES=4 wait_converged customs 30
for i in 1 2 3 4; do
	is "$(node_psql "$i" -Atc "SELECT string_agg(status, ',') FROM ledger.history('events')")" sealed \
		"sync off: node $i has the row in an agreed block"
done
is "$(node_psql 2 -Atc "SELECT status FROM ledger.txlog WHERE height IS NOT NULL ORDER BY height DESC LIMIT 1")" accepted \
	"sync off: its outcome is recorded as accepted"

# --- the fifth node: genesis members only (not itself), then admitted by votes
node_psql 5 -qAtc "SELECT ledger.create_channel('customs', $TIERS)" >/dev/null
for j in 1 2 3 4; do
	node_psql 5 -qAtc "SELECT ledger.add_peer('customs', 'mem$j', '$(node_conninfo "$j")', '${KEY[j]}', clearance => 'customs')" >/dev/null
done
node_psql 5 -qc "SELECT ledger.enable_table('parcel', 'customs', 'tier'); SELECT ledger.enable_table('events', 'customs')" >/dev/null
is "$(node_psql 5 -Atc "SELECT ledger.genesis_hash('customs') = '\\x$(node_psql 1 -Atc "SELECT encode(ledger.genesis_hash('customs'), 'hex')")'")" t \
	"the joining node derives the same genesis"
node_psql 5 -c "INSERT INTO parcel VALUES ('too-early', 'x', 'public')" >/dev/null 2>"$TMP/mem_err.txt"
ok $(( $? == 0 )) "a node not yet admitted cannot append"
grep -q "not a voting member" "$TMP/mem_err.txt"
ok $? "  with a clear error"

node_psql 1 -qAtc "SELECT ledger.add_peer('customs', 'mem5', '$(node_conninfo 5)', '${KEY[5]}', clearance => 'partner')" 2>/dev/null >/dev/null
sleep 4
is "$(node_psql 1 -Atc "SELECT validators FROM ledger.consensus_status WHERE channel = 'customs'")" 4 "one member's request alone changes nothing"
is "$(node_psql 1 -Atc "SELECT state FROM ledger.peers WHERE name = 'mem5'")" joining "  the peer shows as joining"
for i in 2 3; do
	node_psql "$i" -qAtc "SELECT ledger.add_peer('customs', 'mem5', '$(node_conninfo 5)', '${KEY[5]}', clearance => 'partner')" 2>/dev/null >/dev/null
done
v=""
for t in $(seq 1 100); do
	v=$(for i in 1 2 3 4 5; do node_psql "$i" -Atc "SELECT validators FROM ledger.consensus_status WHERE channel = 'customs'"; done | sort -u | tr '\n' ' ')
	[ "$v" = "5 " ] && break
	sleep 0.2
done
is "$v" "5 " "after a quorum (3 of 4) asked, all five nodes count 5 validators"
node_psql 5 -qc "INSERT INTO parcel VALUES ('from5', 'filed', 'public')"
ok $? "the new member appends"
MN_NODES=5
wait_converged customs 30
ok $? "five nodes converge"
for i in 1 2 3 4 5; do
	is "$(node_psql "$i" -Atc "SELECT string_agg(id, ',' ORDER BY id) || '/' || (SELECT count(*) FROM ledger.verify('customs')) FROM parcel")" "a1,a2,a3,a4,from5/0" \
		"node $i: all rows, verify clean"
done

# --- remove mem2 (quorum of 5 is 4: mem1, mem3, mem4, mem5)
for i in 1 3 4 5; do node_psql "$i" -qAtc "SELECT ledger.remove_peer('customs', 'mem2')" 2>/dev/null >/dev/null; done
v=""
for t in $(seq 1 100); do
	v=$(for i in 1 2 3 4 5; do node_psql "$i" -Atc "SELECT validators FROM ledger.consensus_status WHERE channel = 'customs'"; done | sort -u | tr '\n' ' ')
	[ "$v" = "4 " ] && break
	sleep 0.2
done
is "$v" "4 " "after four members asked, mem2 is removed everywhere"
node_psql 2 -qc "INSERT INTO parcel VALUES ('from2', 'x', 'public')" 2>/dev/null
ok $(( $? == 0 )) "the removed member can no longer append"
node_psql 3 -qc "INSERT INTO parcel VALUES ('from3', 'filed', 'public')"
ok $? "the others go on"
wait_converged customs 30
ok $? "all five (the removed one following) converge"
is "$(node_psql 2 -Atc "SELECT count(*) FROM parcel")" 5 "the removed member no longer receives new rows' content"
is "$(node_psql 2 -Atc "SELECT count(*) FROM ledger.history('parcel') WHERE status = 'redacted'")" 1 \
	"  it follows the chain over the new row's commitment (listed as redacted)"
is "$(node_psql 2 -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "  and verifies clean"
is "$(node_psql 1 -Atc "SELECT state FROM ledger.peers WHERE name = 'mem2'")" removed "ledger.peers shows it removed"

echo "1..$n"
[ "$failed" = 0 ]
