#!/usr/bin/env bash
# Tiered visibility across peer organisations (4 nodes, BFT order):
#  - clearances customs / partner / partner / public; rows at every tier
#    from two members; the chain (head hash) is the same everywhere and
#    ledger.verify is clean everywhere;
#  - each node stores exactly the rows it is cleared for; the others are
#    'redacted' in ledger.history with the same commitment the cleared
#    members compute; a redacted entry has no proof here;
#  - the hidden content is nowhere on an uncleared node: not in its tables,
#    WAL or server log (byte search of the whole data directory for unique
#    markers, after CHECKPOINT), while the cleared node has it (the search
#    works); the same after the uncleared node is killed, misses rows and
#    catches up through ledger.decisions();
#  - selective disclosure: a cleared member's ledger.proof() of a customs
#    row checks on the uncleared node (ledger.verify_disclosure) and offline
#    (loopledger_verify against the uncleared node's digest); an altered one
#    does not;
#  - a table with a unique key refuses rows above the lowest clearance;
#  - peers' read functions refuse a caller without a valid read token;
#  - on the wire: every frame delivered to nodes 2 and 4 is logged with its
#    parameters for a while; hidden content never shows up in it (hex),
#    visible content does.
# Clusters .tmp/tmntier<pid>_1..4 (ports from 25910, see pick_baseport),
# kept for inspection when a check fails.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
set +e +o pipefail
MN_PREFIX=tmntier$$_
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"

BASEPORT=$(pick_baseport ${MN_TIER_PORT:-25910})
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

(set -e; start_nodes "$N" "$BASEPORT")
ok $? "start 4 nodes"
MN_NODES=$N
(set -e; setup_channel "$CH" "$TIERS" "$N" "customs partner partner public")
ok $? "channel with clearances customs, partner, partner, public"
rc=0
for i in 1 2 3 4; do
	node_psql "$i" -q -c "CREATE TABLE declaration (parcel text, note text, tier text)" \
		-c "SELECT ledger.enable_table('declaration', '$CH', 'tier')" \
		-c "CREATE TABLE parcel (id text PRIMARY KEY, status text, tier text)" \
		-c "SELECT ledger.enable_table('parcel', '$CH', 'tier')" >/dev/null || rc=1
done
ok $rc "tables declaration (no unique key) and parcel (primary key) on every node"
for t in $(seq 1 150); do
	[ "$(same_on_all "SELECT string_agg(state, ',' ORDER BY state) FROM ledger.peers WHERE channel = '$CH'")" = "self,up,up,up" ] && break
	sleep 0.1
done
wait_agreed declaration parcel
ok $? "the definitions of declaration and parcel are agreed on every node"

# what arrives on the wire: nodes 2 and 4 log every statement with its
# parameters (the frames peers deliver) while the first rows travel
wire_log() {    # wire_log NODE on|off
	if [ "$2" = on ]; then
		node_psql "$1" -qc "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_parameter_max_length = -1" \
			-c "SELECT pg_reload_conf()" >/dev/null
	else
		node_psql "$1" -qc "ALTER SYSTEM RESET log_statement" -c "ALTER SYSTEM RESET log_parameter_max_length" \
			-c "SELECT pg_reload_conf()" >/dev/null
	fi
}
wire_log 2 on; wire_log 4 on
sleep 0.5

# unique markers: found only where the content may be
M=$$$(date +%s%N)
SECRET="CUSTOMSSECRET$M"
PARTNER="PARTNERNOTE$M"
insert_rows() {    # insert_rows NODE ROUND
	node_psql "$1" -qc "INSERT INTO declaration VALUES
		('p$2-1', '$SECRET-$2', 'customs'),
		('p$2-2', '$PARTNER-$2', 'partner'),
		('p$2-3', 'public note $2', 'public')"
}
insert_rows 1 a
ok $? "customs inserts rows at all three tiers"
node_psql 2 -qc "INSERT INTO declaration VALUES ('p-b', '$PARTNER-b', 'partner'), ('p-b2', 'public b', 'public')"
ok $? "a courier inserts partner and public rows"
wait_converged "$CH" 30
ok $? "all four nodes have the same head block (the chain over commitments)"
wire_log 2 off; wire_log 4 off
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
n2=$(grep -c "$(hex "$PARTNER-a")" "$TMP/$(node_name 2)/server.log")
isnt "$n2" 0 "the partner node's log of delivered frames shows partner content arriving (the wire log works)"
is "$(grep -c "$(hex "$SECRET-a")" "$TMP/$(node_name 2)/server.log")" 0 "no delivered frame carried customs content to the partner node"
is "$(grep -c -e "$(hex "$SECRET-a")" -e "$(hex "$PARTNER-a")" "$TMP/$(node_name 4)/server.log")" 0 \
	"no delivered frame carried customs or partner content to the public node"
is "$(same_on_all "SELECT count(*) FROM ledger.verify('$CH')")" "0" "ledger.verify is clean on every node"
# superuser bypasses row-level security: these are the rows each node stores
is "$(per_node "SELECT string_agg(tier, ',' ORDER BY tier) FROM declaration")" \
	"node1: customs,partner,partner,public,public; node2: partner,partner,public,public; node3: partner,partner,public,public; node4: public,public; " \
	"each node stores exactly the rows of its clearance"
is "$(per_node "SELECT count(*) FROM ledger.history('declaration') WHERE status = 'redacted'")" \
	"node1: 0; node2: 1; node3: 1; node4: 3; " "the others are listed as redacted in ledger.history"
h1=$(node_psql 1 -Atc "SELECT string_agg(entry || ':' || encode(row_hash, 'hex'), ',' ORDER BY entry) FROM ledger.history('declaration')")
h4=$(node_psql 4 -Atc "SELECT string_agg(entry || ':' || encode(row_hash, 'hex'), ',' ORDER BY entry) FROM ledger.history('declaration')")
is "$h4" "$h1" "the public-only node lists every entry with the commitment the customs node computes"
# an outcome's detail can name its rows' values: a role sees the outcomes
# of the transactions all of whose rows it may see
txtiers="SELECT string_agg(tier::text, ',' ORDER BY height, position) FROM ledger.txlog WHERE tier IS NOT NULL"
is "$(same_on_all "$txtiers")" "2,1" "every node records each transaction's highest tier in ledger.txlog alike (origin and peers)"
node_psql 1 -qc "CREATE ROLE tl_partner; CREATE ROLE tl_customs" \
	-c "SELECT ledger.grant_clearance('$CH', 'tl_partner', 'partner'), ledger.grant_clearance('$CH', 'tl_customs', 'customs')" >/dev/null
is "$(node_psql 1 -qAt -c "SET ROLE tl_partner" -c "$txtiers")" "1" "a partner-cleared role does not see the outcome of the transaction with a customs row"
is "$(node_psql 1 -qAt -c "SET ROLE tl_customs" -c "$txtiers")" "2,1" "a customs-cleared role sees both"
is "$(node_psql 4 -Atc "SELECT count(*) FROM ledger.history('declaration') WHERE status = 'redacted' AND row_data IS NULL AND tier IN ('partner', 'customs')")" \
	"3" "redacted rows show their tier and no content"
secret_entry=$(node_psql 1 -Atc "SELECT ledger_entry FROM declaration WHERE tier = 'customs'")
out=$(node_psql 4 -Atc "SELECT ledger.proof('$CH', $secret_entry)" 2>&1)
like "$out" "held here only as a commitment" "no proof of a redacted entry on the uncleared node (it has no content)"

# --- the content is nowhere on the uncleared nodes
leak_check() {   # leak_check NODE MARKER -> number of files containing it
	node_psql "$1" -qc "CHECKPOINT" >/dev/null
	grep -rla --binary-files=text "$2" "$TMP/$(node_name "$1")" 2>/dev/null | wc -l
}
isnt "$(leak_check 1 "$SECRET")" 0 "the customs node stores the customs marker (the search works)"
is "$(leak_check 2 "$SECRET")" 0 "a partner node has the customs marker nowhere (tables, WAL, log)"
is "$(leak_check 4 "$SECRET")" 0 "the public node has the customs marker nowhere"
isnt "$(leak_check 2 "$PARTNER")" 0 "a partner node stores partner content"
is "$(leak_check 4 "$PARTNER")" 0 "the public node has the partner marker nowhere"

# --- catch-up after a crash fetches redacted batches too
kill9_node 4
insert_rows 1 c
insert_rows 3 d
for i in 1 2 3; do wire_log "$i" on; done
sleep 0.5
restart_node 4
wait_converged "$CH" 60
ok $? "the public node, killed and restarted, caught up"
# its catch-up may finish just after the heads first agree: let it be logged
for t in $(seq 1 150); do
	grep -aqs "ledger.decisions" "$TMP/$(node_name 1)/server.log" "$TMP/$(node_name 2)/server.log" \
		"$TMP/$(node_name 3)/server.log" && break
	sleep 0.1
done
for i in 1 2 3; do wire_log "$i" off; done

# its catch-up read tokens, as logged by the member that served them: one
# works there again (within minutes) and nowhere else
tok_server="" tok=""
for i in 1 2 3; do
	line=$(grep -a "ledger.decisions" -A1 "$TMP/$(node_name "$i")/server.log" | grep -a "parameters: .*\$4 = '\\\\x" | tail -1)
	[ -n "$line" ] && { tok_server=$i; tok=$line; break; }
done
isnt "$tok_server" "" "the catch-up's ledger.decisions calls carry a read token (seen in a member's log)"
tok_req=$(printf '%s' "$tok" | sed -E "s/.*\\\$4 = '([^']*)'.*/\1/")
tok_at=$(printf '%s' "$tok" | sed -E "s/.*\\\$5 = '([^']*)'.*/\1/")
tok_sig=$(printf '%s' "$tok" | sed -E "s/.*\\\$6 = '([^']*)'.*/\1/")
replay() {   # replay NODE -> rows of decisions, or the error
	node_psql "$1" -qAtc "SET ROLE loopledger_peer; SELECT count(*) FROM ledger.decisions('$CH', 1, 5, '$tok_req', $tok_at, '$tok_sig')" 2>&1
}
is "$(replay "$tok_server")" "5" "the token is real: the member it was made for serves it again"
other=$(( tok_server % 3 + 1 ))
like "$(replay "$other")" "read token refused" "the same token is refused by another member (tokens name the member they are for)"
is "$(node_psql 4 -Atc "SELECT count(*) FROM ledger.verify('$CH')")" "0" "and verifies clean"
is "$(node_psql 4 -Atc "SELECT count(*) FROM ledger.history('declaration') WHERE status = 'redacted'")" \
	"7" "rows it missed while down arrived redacted"
is "$(leak_check 4 "$SECRET")" 0 "the customs marker is still nowhere on it"
is "$(leak_check 4 "$PARTNER")" 0 "nor the partner marker"

# --- unique keys and tiers
out=$(node_psql 1 -Atc "INSERT INTO parcel VALUES ('k1', 'held', 'customs')" 2>&1)
like "$out" "has a unique key, so its rows must be at a tier every member" \
	"a table with a unique key refuses a row some member could not judge"
node_psql 1 -qc "INSERT INTO parcel VALUES ('k2', 'filed', 'public')"
ok $? "its public rows work"
wait_converged "$CH" 30
is "$(same_on_all "SELECT count(*) FROM parcel")" "1" "and reach every node"

# --- a transaction travels in one signed batch: too large is refused cleanly
out=$(node_psql 2 -Atc "INSERT INTO declaration SELECT 'big' || g, 'x', 'public' FROM generate_series(1, 70000) g" 2>&1)
like "$out" "transaction too large for a multi-peer ledger channel" "a 70,000-row transaction is refused with a clear error"
node_psql 2 -qc "INSERT INTO declaration SELECT 'ok' || g, 'x', 'public' FROM generate_series(1, 20000) g"
ok $? "a 20,000-row transaction goes through"
wait_converged "$CH" 60
is "$(same_on_all "SELECT count(*) FROM declaration WHERE parcel LIKE 'big%' OR parcel LIKE 'ok%'")" "20000" \
	"every node has exactly the 20,000 rows"

# --- the peers' read functions want a read token
out=$(node_psql 1 -Atc "SET ROLE loopledger_peer; SELECT count(*) FROM ledger.decisions('$CH', 1, 10, '\\x$(printf '%064d' 0)', 0, '\\x$(printf '%0128d' 0)')" 2>&1)
like "$out" "read token refused" "ledger.decisions refuses a caller without a valid read token"
key4=$(node_psql 4 -Atc "SELECT ledger.node_key()")
out=$(node_psql 1 -Atc "SET ROLE loopledger_peer; SELECT count(*) FROM ledger.batches('$CH', '{}', '\\x$key4', (extract(epoch from now()) * 1000)::bigint, '\\x$(printf '%0128d' 0)')" 2>&1)
like "$out" "signature does not verify" "and a member's key with a forged signature gets nothing"

# A session kept open across the raise below: the lowest clearance it
# cached must follow the change the worker writes (with replication role
# replica, where ordinary triggers do not fire).
coproc LONG { node_psql 1 -qAt -v ON_ERROR_STOP=0 2>&1; }
long_sql() { # SQL -> its output in the long session, up to a marker
	local line out="" done=""
	[ -n "${LONG[1]:-}" ] || { echo "the long session is gone"; return; }
	printf '%s\nSELECT %s;\n' "$1" "'--done--'" >&"${LONG[1]}"
	while read -r -t 30 -u "${LONG[0]}" line; do
		[ "$line" = "--done--" ] && { done=1; break; }
		out+="$line"
	done
	[ -n "$done" ] || out+=" (no answer from the long session)"
	echo "$out"
}
like "$(long_sql "INSERT INTO parcel VALUES ('k3', 'held', 'partner');")" "has a unique key" \
	"a long session refuses a partner row in a unique-key table while a member is public"

# --- clearance changes are membership changes: raise the public node to
# partner; it fetches and verifies the partner rows it may now see
# partner rows keep coming from two members while the change is agreed
( for k in $(seq 1 40); do node_psql 1 -qc "INSERT INTO declaration VALUES ('r1-$k', 'during raise', 'partner')"; done ) &
load1=$!
( for k in $(seq 1 40); do node_psql 3 -qc "INSERT INTO declaration VALUES ('r3-$k', 'during raise', 'partner')"; done ) &
load3=$!
# three of four members ask (a quorum): node 1's ledger.peer changes only
# when its worker applies the agreed change, which the long session sees
for i in 2 3 4; do
	node_psql "$i" -qc "SELECT ledger.set_peer_clearance('$CH', '$(node_name 4)', 'partner')" >/dev/null 2>&1
done
wait $load1 $load3
for t in $(seq 1 200); do
	[ "$(same_on_all "SELECT clearance FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 4)'")" = partner ] && break
	sleep 0.1
done
is "$(same_on_all "SELECT clearance FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 4)'")" "partner" \
	"raising the public node to partner is agreed by every member"
want=$(node_psql 1 -Atc "SELECT count(*) FROM declaration WHERE tier IN ('public', 'partner')")
for t in $(seq 1 200); do
	[ "$(node_psql 4 -Atc "SELECT count(*) FROM declaration")" = "$want" ] && break
	sleep 0.1
done
is "$(node_psql 4 -Atc "SELECT count(*) FROM declaration")" "$want" "it fetched the partner rows it may now see"
is "$(node_psql 4 -Atc "SELECT string_agg(DISTINCT tier, ',') FROM ledger.history('declaration') WHERE status = 'redacted'")" \
	"customs" "only the customs rows stay redacted there"
is "$(node_psql 4 -Atc "SELECT count(*) FROM ledger.verify('$CH')")" "0" "and it verifies clean with the rows filled in"
isnt "$(leak_check 4 "$PARTNER")" 0 "the partner content is there now"
is "$(leak_check 4 "$SECRET")" 0 "the customs content still is not"
wait_converged "$CH" 30
ok $? "the chain did not change: same head everywhere"
is "$(per_node "SELECT count(*) FROM declaration WHERE note = 'during raise'")" \
	"node1: 80; node2: 80; node3: 80; node4: 80; " "partner rows written while the raise was agreed reached every partner-cleared node"
is "$(long_sql "INSERT INTO parcel VALUES ('k3', 'held', 'partner');")" "" \
	"after the raise the same session takes it: every member is cleared for partner now"
[ -n "${LONG[1]:-}" ] && echo '\q' >&"${LONG[1]}"

# --- lowering a clearance stops new content from reaching the peer; one
# lowered while it is down catches up with what it was cleared for at each
# height: content up to partner before the change, commitments after
stop_cluster "$(node_name 2)" >/dev/null
DOWN="PARTNERDOWN$M"
node_psql 1 -qc "INSERT INTO declaration VALUES ('p-down', '$DOWN', 'partner')"
ok $? "a partner row inserted while the courier is down"
for i in 1 3 4; do
	node_psql "$i" -qc "SELECT ledger.set_peer_clearance('$CH', '$(node_name 2)', 'public')" >/dev/null 2>&1
done
lowered() {
	for i in 1 3 4; do
		node_psql "$i" -Atc "SELECT clearance FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 2)'"
	done | sort -u
}
for t in $(seq 1 200); do
	[ "$(lowered)" = public ] && break
	sleep 0.1
done
is "$(lowered)" "public" "lowering the courier to public while it is down is agreed by the other members"
LATER="PARTNERLATER$M"
node_psql 1 -qc "INSERT INTO declaration VALUES ('p-later', '$LATER', 'partner')"
ok $? "a partner row inserted after the change"
# node 1 (the origin) keeps the frames it could not send node 2 queued for
# it; restarted, it has none, and node 2 must fetch the blocks it missed
wait_converged "$CH" 30 >/dev/null
stop_cluster "$(node_name 1)"
restart_node 1 >/dev/null
restart_node 2 >/dev/null
wait_converged "$CH" 60
ok $? "all nodes agree: the lowered courier, restarted, caught up"
is "$(node_psql 2 -Atc "SELECT clearance FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 2)'")" "public" \
	"  and knows its clearance is public now"
isnt "$(leak_check 2 "$DOWN")" 0 "it received the partner row ordered while it was still cleared for partner"
is "$(leak_check 2 "$LATER")" 0 "the lowered courier did not receive the content of the row ordered after the change"
is "$(node_psql 2 -Atc "SELECT count(*) FROM ledger.history('declaration') WHERE status = 'redacted' AND tier = 'partner'")" "1" \
	"it lists the new partner row as redacted"
isnt "$(leak_check 4 "$LATER")" 0 "the raised node received it"
is "$(node_psql 2 -Atc "SELECT count(*) FROM ledger.verify('$CH')")" 0 "the lowered courier verifies clean"

# --- raised and lowered again while it is down: the block that decided
# the raise, with partner rows in it, is served to it at its clearance
# before that block (members record a change from the next height on),
# and it must apply it so, not ask for the partner content for ever
stop_cluster "$(node_name 2)" >/dev/null
rm -f "$WORK/raised"
for i in 1 3; do
	( k=0; until [ -e "$WORK/raised" ]; do k=$((k + 1))
		node_psql "$i" -qc "INSERT INTO declaration VALUES ('rl$i-$k', 'raise and lower', 'partner')"; done ) &
	eval "rl$i=\$!"
done
clearance2() {
	for i in 1 3 4; do
		node_psql "$i" -Atc "SELECT clearance FROM ledger.peers WHERE channel = '$CH' AND name = '$(node_name 2)'"
	done | sort -u
}
for want in partner public; do
	for i in 1 3 4; do
		node_psql "$i" -qc "SELECT ledger.set_peer_clearance('$CH', '$(node_name 2)', '$want')" >/dev/null 2>&1
	done
	for t in $(seq 1 200); do
		[ "$(clearance2)" = "$want" ] && break
		sleep 0.1
	done
done
touch "$WORK/raised"
wait $rl1 $rl3
is "$(clearance2)" public "the courier, down, is raised to partner and lowered again by the others"
raised_at=$(node_psql 1 -Atc "SELECT k.from_height - 1 FROM ledger.peer_clearance k JOIN ledger.peers p
	ON p.pubkey = k.pubkey WHERE p.channel = '$CH' AND p.name = '$(node_name 2)' AND k.clearance = 'partner'
	ORDER BY k.from_height DESC LIMIT 1")
ok $(( $(node_psql 1 -Atc "SELECT count(*) FROM ledger.txlog WHERE height = ${raised_at:-0} AND tier = 1") > 0 ? 0 : 1 )) \
	"  the block that raised it (height ${raised_at:-?}) holds partner rows"
restart_node 2 >/dev/null
wait_converged "$CH" 60
ok $? "  restarted, it catches up past that block: all nodes agree"
is "$(node_psql 2 -Atc "SELECT count(*) FROM ledger.verify('$CH')")" 0 "  and it verifies clean"

# --- selective disclosure (last: it shows node 4 customs content on purpose)
node_psql 1 -Atc "SELECT ledger.proof('$CH', $secret_entry)" >"$WORK/disclosure.json"
node_psql 4 -Atc "SELECT ledger.digest('$CH')" >"$WORK/digest4.json"
is "$(node_psql 4 -Atc "SELECT ledger.verify_disclosure('$(cat "$WORK/disclosure.json")')")" "t" \
	"the public node checks the customs row's disclosure against its commitment"
sed "s/$SECRET-a/$SECRET-X/" "$WORK/disclosure.json" >"$WORK/altered.json"
is "$(node_psql 4 -Atc "SELECT ledger.verify_disclosure('$(cat "$WORK/altered.json")')" 2>/dev/null)" "f" \
	"an altered disclosure does not check"
out=$("$(pg_config --bindir)/loopledger_verify" "$WORK/disclosure.json" "$WORK/digest4.json")
like "$out" "^ok" "the offline verifier accepts the disclosure against the public node's digest"
"$(pg_config --bindir)/loopledger_verify" "$WORK/altered.json" "$WORK/digest4.json" >/dev/null
isnt $? 0 "and refuses the altered one"

echo "# took ${SECONDS}s"
echo "1..$n"
[ $failed = 0 ]
