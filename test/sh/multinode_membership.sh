#!/usr/bin/env bash
# Membership of a multi-peer channel: genesis mismatch is refused, a fifth
# peer joins after the first blocks (catching up from genesis and voting
# once admitted), one member alone cannot change membership, and a member
# removed by a quorum stops following (its copy ends with the block that
# removed it, also after a restart), can no longer append, nor be added
# back; a request not yet admitted can be withdrawn; after the changes (a
# clearance change too) every member holds the same validators, members
# and pending votes, and a restarted server keeps them and its genesis
# hash; a member removed while down catches up to its removal.  TAP
# output.
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
# validators_on NODE...: the validator counts the nodes show, distinct
validators_on() {
	local i
	for i in "$@"; do
		node_psql "$i" -Atc "SELECT validators FROM ledger.consensus_status WHERE channel = 'customs'"
	done | sort -u | tr '\n' ' '
}

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
CH=customs N=4 wait_agreed parcel
ok $? "the definition of parcel is agreed on the four genesis members"
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
CH=customs N=4 wait_agreed events
ok $? "the definition of events is agreed on the four genesis members"
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

# mem5's DBA trusts the block node 1's digest names (out of band): its copy
# must reach that very block
read -r CP_H CP_HASH <<<"$(node_psql 1 -Atc "SELECT (d->>'height') || ' ' || (d->>'block_hash') FROM ledger.digest('customs') d")"
node_psql 5 -qc "SELECT ledger.trust_checkpoint('customs', $CP_H, '$CP_HASH')" >/dev/null
ok $? "the joining node trusts a checkpoint: block $CP_H of node 1's digest"
node_psql 1 -qAtc "SELECT ledger.add_peer('customs', 'mem5', '$(node_conninfo 5)', '${KEY[5]}', clearance => 'partner')" 2>/dev/null >/dev/null
sleep 4
is "$(node_psql 1 -Atc "SELECT validators FROM ledger.consensus_status WHERE channel = 'customs'")" 4 "one member's request alone changes nothing"
is "$(node_psql 1 -Atc "SELECT state FROM ledger.peers WHERE name = 'mem5'")" joining "  the peer shows as joining"
for i in 2 3; do
	node_psql "$i" -qAtc "SELECT ledger.add_peer('customs', 'mem5', '$(node_conninfo 5)', '${KEY[5]}', clearance => 'partner')" 2>/dev/null >/dev/null
done
is "$(poll 100 "5 " validators_on 1 2 3 4 5)" "5 " "after a quorum (3 of 4) asked, all five nodes count 5 validators"
node_psql 5 -qc "INSERT INTO parcel VALUES ('from5', 'filed', 'public')"
ok $? "the new member appends"
MN_NODES=5
wait_converged customs 30
ok $? "five nodes converge"
is "$(node_psql 5 -Atc "SELECT encode(block_hash, 'hex') FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'customs' AND height = $CP_H")" \
	"$CP_HASH" "  the joining node's copy holds the checkpoint's block"
# rows ordered before it was admitted reach it as commitments (until the
# members agree, nobody sends it content), filled in once it is admitted
for t in $(seq 1 100); do
	[ "$(node_psql 5 -Atc "SELECT count(*) FROM parcel")" = 5 ] && break
	sleep 0.2
done
for i in 1 2 3 4 5; do
	is "$(node_psql "$i" -Atc "SELECT string_agg(id, ',' ORDER BY id) || '/' || (SELECT count(*) FROM ledger.verify('customs')) FROM parcel")" "a1,a2,a3,a4,from5/0" \
		"node $i: all rows, verify clean"
done

# --- remove mem2 (quorum of 5 is 4: mem1, mem3, mem4, mem5)
for i in 1 3 4 5; do node_psql "$i" -qAtc "SELECT ledger.remove_peer('customs', 'mem2')" 2>/dev/null >/dev/null; done
is "$(poll 100 "4 " validators_on 1 2 3 4 5)" "4 " "after four members asked, mem2 is removed everywhere"
PROPOSER="SELECT proposer FROM ledger.consensus_status WHERE channel = 'customs'"
is "$(poll 50 "(removed)" node_psql 2 -Atc "$PROPOSER")" "(removed)" "the removed member's worker stops following the channel"
grep -q 'this node was removed from ledger channel "customs" by the block of consensus height' "$TMP/$(node_name 2)/server.log"
ok $? "  and logs that its copy ends with the block that removed it"
err=$(node_psql 2 -qc "INSERT INTO parcel VALUES ('from2', 'x', 'public')" 2>&1)
ok $(( $? == 0 )) "the removed member can no longer append"
like "$err" 'this node was removed from ledger channel "customs"' "  with a clear error"
node_psql 3 -qc "INSERT INTO parcel VALUES ('from3', 'filed', 'public')"
ok $? "the others go on"
# one key from two members at once: one of the two is refused, which a
# member following over commitments only could not judge (it stopped on
# a divergence before its copy ended at its removal)
node_psql 1 -qc "INSERT INTO parcel VALUES ('twice', 'filed', 'public')" >/dev/null 2>&1 &
node_psql 4 -qc "INSERT INTO parcel VALUES ('twice', 'filed', 'public')" >/dev/null 2>&1
wait
MN_NODES=5
stop_cluster "$(node_name 2)" >/dev/null 2>&1
wait_converged customs 30
ok $? "the four members converge"
is "$(node_psql 1 -Atc "SELECT count(*) FROM parcel WHERE id = 'twice'")" 1 "  one 'twice' among them"
restart_node 2 >/dev/null
ok $? "the removed member restarts"
is "$(poll 50 "(removed)" node_psql 2 -Atc "$PROPOSER")" "(removed)" "  and stays stopped"
LAST="SELECT max(height) FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'customs'"
h2=$(node_psql 2 -Atc "$LAST")
ok $(( !(h2 > 0 && h2 < $(node_psql 1 -Atc "$LAST")) )) "its copy ends below the members' head ($h2)"
HASH_AT="SELECT encode(block_hash, 'hex') FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'customs' AND height = $h2"
is "$(node_psql 2 -Atc "$HASH_AT")" "$(node_psql 1 -Atc "$HASH_AT")" "  its last block is the members' block at that height"
is "$(node_psql 2 -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "  it verifies clean"
is "$(node_psql 2 -Atc "SELECT count(*) FROM parcel WHERE id IN ('from3', 'twice')")" 0 "  and holds no later row"
is "$(grep -c "diverged" "$TMP/$(node_name 2)/server.log")" 0 "  it never logged a divergence"
is "$(node_psql 1 -Atc "SELECT state FROM ledger.peers WHERE name = 'mem2'")" removed "ledger.peers shows it removed"

# --- a removed member does not come back under its name or key
err=$(node_psql 1 -Atc "SELECT ledger.add_peer('customs', 'mem2', '$(node_conninfo 2)', '${KEY[2]}')" 2>&1)
like "$err" 'peer "mem2" was removed from channel "customs"' "add_peer of a removed member gives a clear error"
like "$err" 'new name and with a new key' "  with the hint to come back under a new name and key"
err=$(node_psql 1 -Atc "SELECT ledger.add_peer('customs', 'mem2b', '$(node_conninfo 2)', '${KEY[2]}')" 2>&1)
like "$err" 'peer "mem2" was removed' "  also under another name with the same key"

# --- remove_peer withdraws this node's request to add a peer not yet admitted
GHOST=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
node_psql 3 -qAtc "SELECT ledger.add_peer('customs', 'ghost', 'host=127.0.0.1 port=1', '$GHOST')" 2>/dev/null >/dev/null
st=""
for t in $(seq 1 50); do
	st=$(node_psql 3 -Atc "SELECT state FROM ledger.peers WHERE name = 'ghost'")
	[ "$st" = joining ] && break
	sleep 0.2
done
is "$st" joining "a requested peer shows as joining"
for t in $(seq 1 50); do
	[ "$(node_psql 3 -Atc "SELECT count(*) FROM ledger.member_vote WHERE pubkey = '\\x$GHOST' AND NOT decided")" = 1 ] && break
	sleep 0.2
done
out=$(node_psql 3 -Atc "SELECT ledger.remove_peer('customs', 'ghost')" 2>&1)
like "$out" "withdrew this node's request to add peer \"ghost\"" "remove_peer of a joining peer withdraws the request"
like "$out" "but its vote still counts" "  and says that its vote, ordered already, still counts"
like "$out" "ordered at height [0-9]+ and counts until the change is decided or the vote lapses at height [0-9]+" "  and until when"
is "$(node_psql 3 -Atc "SELECT count(*) FROM ledger.peer WHERE name = 'ghost'")" 0 "  its row is gone"

# the removed member's copy ended: the checks below are for the members
stop_cluster "$(node_name 2)" >/dev/null 2>&1

# --- a clearance change, then every node holds the same membership state
for i in 1 4 5; do node_psql "$i" -qAtc "SELECT ledger.set_peer_clearance('customs', 'mem3', 'public')" 2>/dev/null >/dev/null; done
c=""
for t in $(seq 1 100); do
	c=$(for i in 1 3 4 5; do node_psql "$i" -Atc "SELECT clearance FROM ledger.peer WHERE name = 'mem3'"; done | sort -u | tr '\n' ' ')
	[ "$c" = "public " ] && break
	sleep 0.2
done
is "$c" "public " "a quorum's clearance change reaches every node"
node_psql 1 -qc "INSERT INTO parcel VALUES ('after-clearance', 'filed', 'public')"
wait_converged customs 30
MEMBERS="SELECT string_agg(name || ':' || since_height || ':' || coalesce(until_height::text, '-') || ':' || clearance, ',' ORDER BY name) FROM ledger.peer WHERE channel_id = (SELECT channel_id FROM ledger.channel WHERE name = 'customs') AND since_height IS NOT NULL"
PENDING="SELECT coalesce(md5(string_agg(encode(voter, 'hex') || op || encode(pubkey, 'hex') || name || '/' || clearance, ',' ORDER BY voter, op, pubkey, name, clearance)), 'none') FROM ledger.member_vote WHERE NOT decided"
STATUS="SELECT validators FROM ledger.consensus_status WHERE channel = 'customs'"
GHASH="SELECT encode(ledger.genesis_hash('customs'), 'hex')"
for q in "$STATUS" "$MEMBERS" "$PENDING" "$GHASH"; do
	is "$(for i in 1 3 4 5; do node_psql "$i" -Atc "$q"; done | sort -u | wc -l | tr -d ' ')" 1 \
		"every member alike: ${q:7:40}..."
done

# --- restarting a server changes neither its validator set nor its genesis
state_of_4() { echo "$(node_psql 4 -Atc "$STATUS")|$(node_psql 4 -Atc "$MEMBERS")|$(node_psql 4 -Atc "$PENDING")|$(node_psql 4 -Atc "$GHASH")"; }
before=$(state_of_4)
stop_cluster "$(node_name 4)" >/dev/null 2>&1
restart_node 4 >/dev/null
ok $? "node 4 restarts"
v=""
for t in $(seq 1 100); do
	v=$(node_psql 4 -Atc "$STATUS" 2>/dev/null)
	[ -n "$v" ] && break
	sleep 0.2
done
node_psql 1 -qc "INSERT INTO parcel VALUES ('after-restart', 'filed', 'public')"
wait_converged customs 30
ok $? "the four members converge after the restart"
# its worker publishes its status a moment after the server is up
for t in $(seq 1 100); do
	after=$(state_of_4)
	[ "$after" = "$before" ] && break
	sleep 0.1
done
is "$after" "$before" "after its restart node 4 has the same validators, members, pending votes and genesis hash"
is "$(for i in 1 3 4 5; do node_psql "$i" -Atc "$STATUS"; done | sort -u | tr '\n' ' ')" "4 " \
	"  and every member still counts 4 validators"
mism=$([ -s "$TMP/mem1/server.log" ] && [ -s "$TMP/mem3/server.log" ] &&
	cat "$TMP/mem1/server.log" "$TMP/mem3/server.log" | grep -c "genesis mismatch\|has a different genesis")
is "${mism:-missing log}" 0 "  no member sees a genesis mismatch"

# --- a member removed while it is down catches up to the block that removed
# it (the members serve it the content it could read then: on the build
# that served removed members commitments only, it refused those copies
# and never got there), and stops there.  Node 4 did not vote to add mem5
# and so had no conninfo for it: with mem3 down, mem5 must hear node 4.
# ledger.set_peer_conninfo gives it, or corrects it: first a wrong one.
err=$(node_psql 4 -Atc "SELECT ledger.set_peer_conninfo('customs', 'mem5', 'host')" 2>&1)
like "$err" 'invalid connection string for peer "mem5"' "set_peer_conninfo refuses what libpq cannot read"
err=$(node_psql 4 -Atc "SELECT ledger.set_peer_conninfo('customs', 'nobody', 'host=x')" 2>&1)
like "$err" 'channel "customs" has no current peer named "nobody"' "  and an unknown peer"
node_psql 4 -qc "SELECT ledger.set_peer_conninfo('customs', 'mem5', 'host=127.0.0.1 port=1')"
ok $? "node 4 is given a wrong conninfo for mem5 (which it did not add: it had none)"
is "$(poll 50 down node_psql 4 -Atc "SELECT state FROM ledger.peers WHERE channel = 'customs' AND name = 'mem5'")" down \
	"  its link to mem5 tries it and is down"
node_psql 4 -qc "SELECT ledger.set_peer_conninfo('customs', 'mem5', '$(node_conninfo 5)')"
ok $? "  then the right one"
is "$(poll 100 t node_psql 5 -Atc "SELECT last_height IS NOT NULL FROM ledger.peers WHERE channel = 'customs' AND name = 'mem4'")" t \
	"  node 4's worker reconnects with it: mem5 hears node 4"
stop_cluster "$(node_name 3)" >/dev/null 2>&1
node_psql 1 -qc "INSERT INTO parcel VALUES ('before-removal', 'filed', 'public')"
for i in 1 4 5; do node_psql "$i" -qAtc "SELECT ledger.remove_peer('customs', 'mem3')" 2>/dev/null >/dev/null; done
is "$(poll 100 "3 " validators_on 1 4 5)" "3 " "mem3 is removed while its server is down"
# node 1 sent its row's batch towards mem3 while mem3 was down: a restart
# drops what its link still held, so mem3 must fetch what it missed
stop_cluster "$(node_name 1)" >/dev/null 2>&1
restart_node 1 >/dev/null
node_psql 4 -qc "INSERT INTO parcel VALUES ('after-removal', 'filed', 'public')"
ok $? "  the three members go on"
restart_node 3 >/dev/null
is "$(poll 150 "(removed)" node_psql 3 -Atc "$PROPOSER")" "(removed)" "  restarted, it catches up to its removal and stops following"
h3=$(node_psql 3 -Atc "$LAST")
HASH_AT="SELECT encode(block_hash, 'hex') FROM ledger.block b JOIN ledger.channel c USING (channel_id) WHERE c.name = 'customs' AND height = $h3"
is "$(node_psql 3 -Atc "$HASH_AT")" "$(node_psql 1 -Atc "$HASH_AT")" "  its last block is the members' block at that height"
is "$(node_psql 3 -Atc "SELECT string_agg(id, ',' ORDER BY id) FROM parcel WHERE id LIKE '%-removal'")" "before-removal" \
	"  it holds the row written before its removal, with its content, and not the one after"
is "$(node_psql 3 -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "  it verifies clean"

echo "1..$n"
[ "$failed" = 0 ]
