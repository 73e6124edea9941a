#!/usr/bin/env bash
# One of four peers is Byzantine.  The fault injection lives only in a test
# build (make LL_FAULT_INJECTION=1, src/fault.c), built here in a copy of
# the tree and installed for this test only; the release build is put back
# on exit.  Node 4 then sends equivocating proposals and votes (properly
# signed), forged signatures, garbage frames and replays of old messages,
# proposals sent late, never or invalid (signed, wrong previous head, also
# ahead of time, before the others could check that head), floods of
# unsigned proposals naming made-up batches (also while its own batches go
# to one node only), claims to be far ahead with
# fetches held on its server, one kind after another and
# all mixed (BYZ_MODES picks some), while nodes 1-3 take writes.  The
# three honest nodes must keep committing, never diverge, verify clean and
# record the equivocation as evidence.  Then a test-build crash point
# takes node 1 down between a local commit and its worker's commit of the
# block; the row must be there once everywhere afterwards.  TAP output.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/test/lib.sh"
source "$ROOT/test/multinode.sh"
source "$ROOT/test/tap.sh"
set +e
MN_PREFIX=byz
CH=customs
N=4
BASE=${LOOPLEDGER_BYZ_PORT:-25860}
BUILD="$TMP/byzbuild"

restore_release() {
	stop_nodes >/dev/null 2>&1
	as_root make -C "$ROOT" -s install PG_CONFIG=$PG_BIN/pg_config >/dev/null 2>&1
}
trap restore_release EXIT

rm -rf "$BUILD" && mkdir -p "$BUILD"
cp -r "$ROOT/src" "$ROOT/sql" "$ROOT/Makefile" "$ROOT/loopledger.control" "$BUILD/"
mkdir -p "$BUILD/test" && cp "$ROOT/test/bft.mk" "$BUILD/test/" 2>/dev/null
rm -f "$BUILD"/src/*.o "$BUILD"/src/*.bc
make -C "$BUILD" -s LL_FAULT_INJECTION=1 PG_CONFIG=$PG_BIN/pg_config >/dev/null 2>&1 &&
	as_root make -C "$BUILD" -s install LL_FAULT_INJECTION=1 PG_CONFIG=$PG_BIN/pg_config >/dev/null 2>&1
ok $? "test build with fault injection built and installed"
nm -D "$ROOT/loopledger.so" 2>/dev/null | grep -q ll_fault_consensus
ok $(( $? == 0 )) "the release build has no fault injection"

start_nodes 4 "$BASE" "loopledger.propose_delay = 2ms" >/dev/null
ok $? "start 4 nodes"
setup_channel customs "ARRAY['public','partner','customs']" 4
for i in 1 2 3 4; do
	node_psql "$i" -qc "CREATE TABLE parcel(id text PRIMARY KEY, status text, tier text);
	                    SELECT ledger.enable_table('parcel', 'customs', 'tier')" >/dev/null
done
wait_agreed parcel
ok $? "the definition of parcel is agreed on every node"
node_psql 4 -Atc "SHOW loopledger.fault" >/dev/null 2>&1
ok $? "node 4 has the test-only setting loopledger.fault"

honest_head() {
	for i in 1 2 3; do node_psql "$i" -Atc "SELECT ledger.digest('customs')->>'block_hash'"; done | sort -u | wc -l
}

# load on the honest nodes; every INSERT must commit
load() {
	local tag=$1 i pids=() rc=0
	for i in 1 2 3; do
		(
			for k in $(seq 1 40); do
				node_psql "$i" -qc "INSERT INTO parcel VALUES ('$tag-$i-$k', 'ok', 'public')" >/dev/null || exit 1
			done
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || rc=1; done
	return $rc
}

count=0
# sequential commits on node 1: the time they take, in ms
sequential_ms() {
	local t0 k
	t0=$(date +%s%N)
	for k in $(seq 1 "$2"); do
		node_psql 1 -qc "INSERT INTO parcel VALUES ('$1-$k', 'ok', 'public')" >/dev/null || return 1
	done
	echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

# MODE LIMIT_MS STATE WHAT: 40 sequential commits on node 1 under the
# limit while byz4 lies, and node 1's ledger.peers shows it in STATE (a
# regex), described as WHAT
paced_turns() {
	local ms
	ms=$(sequential_ms "$1-seq" 40)
	count=$((count + 40))
	ok $(( ${ms:-999999} < $2 ? 0 : 1 )) "fault '$1': 40 sequential commits on node 1 take under $(($2 / 1000)) s (${ms:-?} ms)"
	like "$(node_psql 1 -Atc "SELECT state FROM ledger.peers WHERE name = 'byz4'")" "$3" \
		"fault '$1': node 1's ledger.peers shows byz4 as $4"
}

# lines in the honest nodes' logs saying byz4 was first found late
late_lines() {
	for i in 1 2 3; do
		grep -Ec 'member "byz4" of channel "customs" proposed [0-9]+ ms late: its turns to propose get [0-9]+ ms from now on' \
			"$TMP/$(node_name "$i")/server.log"
	done | awk '{s += $1} END {print s + 0}'
}

# lines in the honest nodes' logs striking an honest proposer as invalid
honest_refused() {
	for i in 1 2 3; do
		grep -Ec 'member "byz[123]" of channel "customs" proposed a block this node could not accept' \
			"$TMP/$(node_name "$i")/server.log"
	done | awk '{s += $1} END {print s + 0}'
}

# late first: a liar that has been struck before is paced from the start
late0=$(late_lines)
# MODE: commits one after another on byz4, whose batches go to one honest
# node only, judged on the median commit: a proposal kept from its round
# costs a round (the 1 s propose timeout), so nearly every commit pays it
# on a build without the fix, while on a loaded machine a stray slow
# commit must not fail the check
hoard_commits() {
	local rc=0 times="" k t0 med
	for k in $(seq 1 11); do
		t0=$(date +%s%N)
		PGOPTIONS="-c statement_timeout=20s" node_psql 4 -qc "INSERT INTO parcel VALUES ('$1-4-$k', 'ok', 'public')" >/dev/null || rc=1
		times="$times $(( ($(date +%s%N) - t0) / 1000000 ))"
	done
	med=$(echo $times | tr ' ' '\n' | sort -n | sed -n 6p)
	[ $rc = 0 ] && count=$((count + 11))
	ok $(( rc == 0 && med < 500 ? 0 : 1 )) "fault '$1': commits one after another on byz4, each batch sent to one node only, take under 500 ms at the median ($med ms; all:$times)"
}

for mode in ${BYZ_MODES:-late early equivocate forge garbage replay flood flood,hoard alter,hoard stall copy spoof mute invalid all}; do
	node_psql 4 -qc "ALTER SYSTEM SET loopledger.fault = '$mode'" >/dev/null &&
		node_psql 4 -qAtc "SELECT pg_reload_conf()" >/dev/null
	h0=$(node_psql 1 -Atc "SELECT height FROM ledger.consensus_status")
	refused0=$(honest_refused)
	if [ "$mode" = forge ]; then
		# the liar writes too, and sends each batch with a flipped signature
		# to one honest node only, over its own authenticated link, serving
		# no copies: taken on the MAC, it makes that node's proposals fail
		(
			for k in 1 2 3 4 5 6; do
				PGOPTIONS="-c statement_timeout=3s" node_psql 4 -qc "INSERT INTO parcel VALUES ('forge-4-$k', 'ok', 'public')" >/dev/null 2>&1
			done
		) &
		liar=$!
	fi
	PGOPTIONS="-c statement_timeout=60s" load "$mode"
	ok $? "fault '$mode': 120 inserts on the honest nodes all commit"
	count=$((count + 120))
	if [ "$mode" = forge ]; then
		wait $liar
	fi
	case $mode in
		# the liar's turns get the pace (100 ms here) as propose timeout
		# once it was late, refused or silent; each bad turn takes eight
		# turns on time to forgive
		late)
			# proposals 600 ms late, as if just before the 1 s timeout: valid
			# and decided, so only judging lateness takes the turns away
			paced_turns late 5000 "^(proposing late|not proposing)$" "proposing late or not at all"
			late=$(late_lines)
			ok $(( late > late0 ? 0 : 1 )) "fault 'late': the honest nodes logged that byz4 proposed late ($((late - late0)) lines)" ;;
		# signed proposals naming a wrong previous head: every node prevotes
		# nil at once; coming after mute, the liar is struck already
		invalid) paced_turns invalid 5000 "^proposing invalid blocks$" "proposing invalid blocks" ;;
		mute) paced_turns mute 9000 "^not proposing$" "not proposing" ;;
		# unsigned proposals naming made-up batches, a dozen with each
		# precommit: they must not crowd out honest proposals that wait
		# for their batches or for the block before
		flood)
			ms=$(sequential_ms flood-seq 40)
			count=$((count + 40))
			ok $(( ${ms:-999999} < 5000 ? 0 : 1 )) "fault 'flood': 40 sequential commits on node 1 take under 5 s (${ms:-?} ms)" ;;
		# the liar also writes, sending each batch to one honest node
		# only: proposals naming it must wait for it on the others, which
		# the flood must not prevent
		flood,hoard) hoard_commits "$mode" ;;
		# the liar relays every honest proposal at once with a payload
		# naming no batches, under the proposer's signature: where the
		# genuine copy waits for the liar's batch, the altered one came
		# first, was taken as the proposal and got a nil prevote
		alter,hoard)
			hoard_commits "$mode"
			struck=$(( $(honest_refused) - refused0 ))
			is "$struck" 0 "fault 'alter,hoard': no honest node logged an honest proposer's block as one it could not accept" ;;
		# hellos claiming a height 1000 ahead, and fetches from the liar
		# held 30 s (stall) or answered as a COPY (copy, which left libpq
		# returning results for ever, and the asking worker spinning):
		# honest nodes that are not behind never ask it, and one that is
		# behind gives up on it and asks the others
		stall | copy)
			ms=$(sequential_ms $mode-seq 40)
			count=$((count + 40))
			ok $(( ${ms:-999999} < 5000 ? 0 : 1 )) "fault '$mode': 40 sequential commits on node 1 take under 5 s (${ms:-?} ms)"
			# node 3 falls behind; restarted, it first hears only the liar
			# (nodes 1 and 2 may not log in to it), so the liar is the
			# highest claim once the others are heard and is asked first
			node_psql 3 -qc "ALTER ROLE peer_from_1 NOLOGIN" -c "ALTER ROLE peer_from_2 NOLOGIN" >/dev/null
			as_pg pg_ctl -D "$TMP/$(node_name 3)/data" -m fast -w stop >/dev/null
			for k in $(seq 1 20); do
				node_psql 1 -qc "INSERT INTO parcel VALUES ('$mode-behind-$k', 'ok', 'public')" >/dev/null
			done
			count=$((count + 20))
			gave0=$(grep -c 'peer "byz4" said it is at height [0-9]* but gave no block' "$TMP/$(node_name 3)/server.log")
			restart_node 3 >/dev/null
			# until node 3 has heard the liar's claim (its link reconnects
			# after a backoff), the honest nodes stay shut out
			h1now=$(node_psql 1 -Atc "SELECT height FROM ledger.consensus_status")
			for t in $(seq 1 100); do
				claim=$(node_psql 3 -Atc "SELECT coalesce(last_height, 0) FROM ledger.peers WHERE channel = 'customs' AND name = 'byz4'")
				[ "${claim:-0}" -gt $((h1now + 500)) ] && break
				sleep 0.1
			done
			node_psql 3 -qc "ALTER ROLE peer_from_1 LOGIN" -c "ALTER ROLE peer_from_2 LOGIN" >/dev/null
			t0=$(date +%s%N)
			MN_NODES=3 wait_converged customs 60
			t=$(( ($(date +%s%N) - t0) / 1000000 ))
			ok $(( t < 10000 ? 0 : 1 )) "fault '$mode': node 3, restarted behind, catches up past the liar within 10 s ($t ms)"
			gave=$(grep -c 'peer "byz4" said it is at height [0-9]* but gave no block' "$TMP/$(node_name 3)/server.log")
			ok $(( gave > gave0 ? 0 : 1 )) "fault '$mode': node 3 asked the liar first and logged that it gave nothing ($((gave - gave0)) lines)" ;;
		# hellos in honest members' names over the liar's own peer login,
		# claiming another genesis: unsigned, they had each honest node
		# ignore the other two as "genesis mismatch", and nothing committed
		spoof)
			ms=$(PGOPTIONS="-c statement_timeout=10s" sequential_ms spoof-seq 40)
			count=$((count + 40))
			ok $(( ${ms:-999999} < 5000 ? 0 : 1 )) "fault 'spoof': 40 sequential commits on node 1 take under 5 s (${ms:-?} ms)"
			mism=$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM ledger.peers WHERE channel = 'customs' AND name <> 'byz4' AND state = 'genesis mismatch'"; done | awk '{s += $1} END {print s + 0}')
			is "$mism" 0 "fault 'spoof': no honest node takes another honest member for one on another genesis"
			# its own last call to each, played again with its MAC: taken
			# as authenticated before calls were numbered
			replayed=$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT calls_replayed FROM ledger.peers WHERE channel = 'customs' AND name = 'byz4'"; done | awk '{s += $1} END {print s + 0}')
			ok $(( replayed > 0 ? 0 : 1 )) "fault 'spoof': the liar's calls played again, MAC and all, are refused ($replayed calls)"
			# with each member's login bound on node 1, calls in another
			# member's name no longer reach its worker (node 2, unbound,
			# keeps rejecting the forged hellos)
			for j in 1 2 3 4; do
				node_psql 1 -qc "SELECT ledger.set_peer_login('customs', 'byz$j', 'peer_from_$j')" >/dev/null
			done
			sleep 6		# a peer backend reads the bindings again every 5 s
			a1=$(node_psql 1 -Atc "SELECT messages_rejected FROM ledger.consensus_status")
			a2=$(node_psql 2 -Atc "SELECT messages_rejected FROM ledger.consensus_status")
			sleep 3
			b1=$(node_psql 1 -Atc "SELECT messages_rejected FROM ledger.consensus_status")
			b2=$(node_psql 2 -Atc "SELECT messages_rejected FROM ledger.consensus_status")
			ok $(( b1 == a1 && b2 > a2 ? 0 : 1 )) "fault 'spoof': with logins bound (ledger.set_peer_login), node 1 takes no call in another member's name (rejected in 3 s: node 1 $((b1 - a1)), node 2 $((b2 - a2)))"
			for j in 1 2 3 4; do
				node_psql 1 -qc "SELECT ledger.set_peer_login('customs', 'byz$j', NULL)" >/dev/null
			done
			# it also replays each member's last genuine hello: a member
			# that stopped would still look alive to the others (they
			# would not cut its turns short)
			as_pg pg_ctl -D "$TMP/$(node_name 2)/data" -m fast -w stop >/dev/null
			sleep 3
			ago=$(node_psql 1 -Atc "SELECT round(extract(epoch FROM now() - last_contact) * 1000) FROM ledger.peers WHERE channel = 'customs' AND name = 'byz2'")
			ok $(( ${ago:-0} >= 2500 ? 0 : 1 )) "fault 'spoof': node 2 stopped 3 s ago, node 1 last heard from it ${ago:-?} ms ago (its replayed hellos are refused)"
			ms=$(PGOPTIONS="-c statement_timeout=30s" sequential_ms spoof-down 20)
			count=$((count + 20))
			ok $(( ${ms:-999999} < 5000 ? 0 : 1 )) "fault 'spoof': with node 2 stopped, 20 commits one after another take under 5 s (${ms:-?} ms)"
			restart_node 2 >/dev/null ;;
		# a proposal for h + 1 on a made-up head, sent ahead of the liar's
		# precommit for h: the others get it before they applied h
		early)
			halted=$(for i in 1 2 3; do grep -c "diverged" "$TMP/$(node_name "$i")/server.log"; done | awk '{s += $1} END {print s + 0}')
			is "$halted" 0 "fault 'early': no honest node took a proposal for the next height without checking its previous head" ;;
	esac
	h1=$(node_psql 1 -Atc "SELECT height FROM ledger.consensus_status")
	ok $(( h1 > h0 ? 0 : 1 )) "fault '$mode': consensus advanced ($h0 -> $h1)"
	MN_NODES=3 wait_converged customs 30
	ok $? "fault '$mode': the honest nodes agree on the head"
done
MN_NODES=4
rejected=$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT messages_rejected FROM ledger.consensus_status"; done | awk '{s += $1} END {print s + 0}')
ok $(( rejected > 0 ? 0 : 1 )) "ledger.consensus_status on the honest nodes counts the messages they rejected ($rejected)"

for i in 1 2 3; do
	is "$(node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id NOT LIKE 'forge-4-%'")" "$count" "node $i holds every committed row"
	is "$(node_psql "$i" -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "node $i verifies clean"
done
is "$(honest_head)" 1 "one head on the three honest nodes"
# a batch taken on the liar's link MAC is checked before an honest node
# proposes it: the bad signature is found, named, and the liar's batches
# are checked one by one from then on
caught=$(for i in 1 2 3; do grep -c "member \"byz4\" of channel \"customs\" sent a batch whose signature does not verify over its authenticated link" "$TMP/$(node_name "$i")/server.log"; done | awk '{s += $1} END {print s + 0}')
ok $(( caught > 0 ? 0 : 1 )) "a failed round made the honest nodes check the batches they took on byz4's MAC: the bad signature was caught ($caught warnings)"
ev=$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM ledger.evidence WHERE validator = 'byz4'"; done | awk '{s += $1} END {print s + 0}')
ok $(( ev > 0 ? 0 : 1 )) "equivocation of byz4 recorded as evidence ($ev records)"
other=$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM ledger.evidence WHERE validator <> 'byz4'"; done | awk '{s += $1} END {print s + 0}')
is "$other" 0 "no honest node is accused"

# the liar turns honest again and catches up
node_psql 4 -qc "ALTER SYSTEM RESET loopledger.fault" >/dev/null && node_psql 4 -qAtc "SELECT pg_reload_conf()" >/dev/null
node_psql 1 -qc "INSERT INTO parcel VALUES ('after', 'ok', 'public')" >/dev/null
wait_converged customs 30
ok $? "node 4 back to honest converges with the others"
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT md5(string_agg(id, ',' ORDER BY id)) FROM parcel"; done | sort -u | wc -l)" 1 \
	"all four nodes hold the same rows (the liar's own, if ordered once it turned honest, included)"

# A crash between a local backend's commit and the worker's commit of the
# same block (test build: armed by a file, fires once, a PANIC takes the
# server down).  The backend's rows and outcome are in, the block is not:
# the restarted worker must find the outcome and chain the rows, not insert
# them a second time nor refuse them.
# crash_node1 POINT SQL LOGLINE DESCRIPTION: arm test-build point POINT on
# node 1, run SQL there (the crash cuts it), check that its log shows the
# crash, wait for node 1 to be back, and check that one consensus worker
# serves the channel there: after a crash the postmaster restarts the
# workers registered before it while the sealer starts them anew, and both
# ran (voting from one signing record) until one failed.
crash_node1() {
	local _ most=0 now
	as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/$1"
	# the first worker started after the crash (the postmaster's) waits 3 s
	as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/slow_worker_attach"
	node_psql 1 -qc "$2" >/dev/null 2>&1
	for _ in $(seq 1 30); do grep -q "$3" "$TMP/$(node_name 1)/server.log" && break; sleep 0.5; done
	ok $(( $(grep -c "$3" "$TMP/$(node_name 1)/server.log") > 0 ? 0 : 1 )) "$4"
	for _ in $(seq 1 120); do node_psql 1 -Atc "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
	for _ in $(seq 1 30); do
		now=$(node_psql 1 -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'loopledger consensus'" 2>/dev/null)
		[ "${now:-0}" -gt "$most" ] && most=$now
		sleep 0.2
	done
	is "$most" 1 "  one consensus worker serves the channel on node 1 after it restarted"
}
crash_node1 crash_before_block_commit "INSERT INTO parcel VALUES ('crash', 'ok', 'public')" \
	"crashing between a local commit and the block's commit" \
	"node 1 crashed after its backend committed and before its worker committed the block"
node_psql 2 -qc "INSERT INTO parcel VALUES ('after-crash', 'ok', 'public')" >/dev/null
wait_converged customs 60
ok $? "node 1 recovers and converges with the others"
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id = 'crash'"; done | sort -u | tr '\n' ' ')" "1 " \
	"the row committed just before the crash is there once on every node"
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT md5(string_agg(encode(origin, 'hex') || txid || ':' || height || ':' || \"position\" || status, ',' ORDER BY origin, txid)) FROM ledger.txlog"; done | sort -u | wc -l)" 1 \
	"ledger.txlog is the same on every node"
is "$(node_psql 1 -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "node 1 verifies clean"

# A crash right after node 1's batch reached its peers (test build: armed
# by a file, fires once), with the WAL writer held off so that nothing
# flushed the WAL the batch's transaction wrote: the record of the entry
# numbers its backend took from ledger.entry_seq among it.  The peers
# order the batch without node 1.  Unless the worker flushed that record
# before the batch left, recovery gives the same numbers again, and node
# 1's next INSERT collides with its own replayed rows.
node_psql 1 -qc "ALTER SYSTEM SET wal_writer_delay = '10s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
crash_node1 crash_after_batch_sent "INSERT INTO parcel SELECT 'seq-a-' || g, 'ok', 'public' FROM generate_series(1, 100) g" \
	"crashing right after this node's batch reached its peers" \
	"node 1 crashed right after its batch of 100 rows reached its peers"
node_psql 2 -qc "INSERT INTO parcel VALUES ('after-seq-crash', 'ok', 'public')" >/dev/null
wait_converged customs 60
ok $? "node 1 recovers and converges with the others"
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id LIKE 'seq-a-%'"; done | tr '\n' ' ')" "100 100 100 100 " \
	"the peers ordered the batch without node 1, and node 1 applied it"
err=$(node_psql 1 -qc "INSERT INTO parcel SELECT 'seq-b-' || g, 'ok', 'public' FROM generate_series(1, 100) g" 2>&1 >/dev/null)
is "$err" "" "node 1's next 100 rows take entry numbers not given before the crash"
wait_converged customs 30
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id LIKE 'seq-b-%'"; done | tr '\n' ' ')" "100 100 100 100 " \
	"  and they reach every node"
is "$(node_psql 1 -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "  and node 1 verifies clean"
node_psql 1 -qc "ALTER SYSTEM RESET wal_writer_delay" -c "SELECT pg_reload_conf()" >/dev/null

# A transaction committed without waiting for its order (a table no order
# can refuse, loopledger.synchronous_commit off) lives, until its batch
# leaves, only in the worker's queue: the worker dies right after taking
# it (test build: armed by a file, fires once).  Restarted, it must queue
# it again from ledger.pending, or the row stays on node 1 alone.
# note_everywhere TEXT: each node's count of notes with that text, once
# every node holds exactly one (20 s at most)
note_everywhere() {
	local got="" i
	for _ in $(seq 1 100); do
		got=$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM notes WHERE note = '$1'"; done | tr '\n' ' ')
		[ "$got" = "1 1 1 1 " ] && break
		sleep 0.2
	done
	echo "$got"
}
for i in 1 2 3 4; do
	node_psql "$i" -qc "CREATE TABLE notes (note text); SELECT ledger.enable_table('notes', 'customs')" >/dev/null
done
wait_agreed notes
ok $? "the definition of notes is agreed on every node"
as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/die_after_txq_take"
node_psql 1 -qc "SET loopledger.synchronous_commit = off" -c "INSERT INTO notes VALUES ('async-before-death')" >/dev/null
ok $? "node 1: a transaction committed without waiting for its order"
got=$(note_everywhere async-before-death)
ok $(( $(grep -c "the worker dies after taking its transaction queue" "$TMP/$(node_name 1)/server.log") > 0 ? 0 : 1 )) \
	"node 1's worker died right after taking it from its queue"
is "$got" "1 1 1 1 " "its restarted worker queued it again: the row reaches every node once"
wait_converged customs 30
is "$(node_psql 1 -Atc "SELECT count(*) FROM ledger.txlog WHERE status = 'pending'")" 0 "  and it is no longer pending on node 1"
# The same, with the backend slow to commit (test build: 1.5 s after
# queueing): the restarted worker looks for pending transactions before
# that commit is visible.  It must wait for backends that queued without
# waiting and have not committed yet, or the row stays on node 1 alone.
as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/die_after_txq_take"
as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/slow_async_commit"
node_psql 1 -qc "SET loopledger.synchronous_commit = off" -c "INSERT INTO notes VALUES ('async-slow-commit')" >/dev/null
ok $? "node 1: a transaction committed without waiting, 1.5 s after it was queued"
got=$(note_everywhere async-slow-commit)
is "$(grep -c "the worker dies after taking its transaction queue" "$TMP/$(node_name 1)/server.log")" 2 \
	"  node 1's worker died right after taking it, again"
ok $(( $(grep -c "waited for backends that queued a transaction without waiting for its order to commit" \
	"$TMP/$(node_name 1)/server.log") > 0 ? 0 : 1 )) "  the restarted worker waited for that backend's commit"
is "$got" "1 1 1 1 " "  and queued it: the row reaches every node once"
# Two such transactions taken together by the dying worker (it is stopped
# while both queue), and the row of the first in resubmission order
# deleted by a superuser before the worker restarts (held back 3 s): the
# restarted worker skips that one with a warning and still sends the
# other (before, the missing row stopped the resubmission of every one).
wpid=$(node_psql 1 -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'loopledger consensus'")
as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/die_after_txq_take"
kill -STOP "$wpid"
rc=0
for note in async-gone-a async-gone-b; do
	node_psql 1 -qc "SET statement_timeout = '5s'" -c "SET loopledger.synchronous_commit = off" \
		-c "INSERT INTO notes VALUES ('$note')" >/dev/null || rc=1
done
ok $rc "node 1: two transactions committed without waiting while its worker was stopped"
as_pg touch "$TMP/$(node_name 1)/data/pg_loopledger/slow_worker_attach"
kill -CONT "$wpid"
for _ in $(seq 1 40); do
	[ "$(grep -c "the worker dies after taking its transaction queue" "$TMP/$(node_name 1)/server.log")" = 3 ] && break
	sleep 0.1
done
gone=$(node_psql 1 -Atc "SELECT n.note FROM notes n WHERE n.ledger_entry = (
	SELECT ('x' || encode(substring(p.entries FROM 1 FOR 8), 'hex'))::bit(64)::bigint
	FROM ledger.pending p JOIN ledger.txlog t USING (channel_id, txid)
	WHERE t.status = 'pending' ORDER BY p.txid LIMIT 1)")
kept=async-gone-a
[ "$gone" = async-gone-a ] && kept=async-gone-b
is "$(node_psql 1 -Atc "SET session_replication_role = replica" -c "DELETE FROM notes WHERE note = '$gone'" | tail -1)" "DELETE 1" \
	"  the first one's row ($gone) deleted by a superuser while the worker is down"
got=$(note_everywhere "$kept")
is "$got" "1 1 1 1 " "  the restarted worker still sends the other one: it reaches every node once"
ok $(( $(grep -c "committed here without waiting cannot be sent again" "$TMP/$(node_name 1)/server.log") > 0 ? 0 : 1 )) \
	"  and skips the deleted one with a warning"
is "$(for i in 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM notes WHERE note = '$gone'"; done | tr '\n' ' ')" "0 0 0 " \
	"  which reaches no other node"
like "$(node_psql 1 -Atc "SELECT string_agg(problem, '; ') FROM ledger.verify('customs')")" \
	'^table public\.notes: row with entry [0-9]+ \(pending\) is missing$' \
	"  ledger.verify on node 1 reports the deleted row, and nothing else"
# the DBA's repair: the transaction never left, so it is dropped here alone
node_psql 1 -qc "WITH gone AS (DELETE FROM ledger.txlog t USING ledger.pending p
	WHERE p.channel_id = t.channel_id AND p.txid = t.txid AND t.status = 'pending' RETURNING t.channel_id, t.txid)
	DELETE FROM ledger.pending p USING gone g WHERE p.channel_id = g.channel_id AND p.txid = g.txid" >/dev/null
is "$(node_psql 1 -Atc "SELECT count(*) FROM ledger.verify('customs')")" 0 "  after the DBA drops it there, node 1 verifies clean"

# Every member fails to apply the same decided block (test build: armed
# by a file, fires once per node), as when a table is missing everywhere:
# nodes 1, 3 and 4 while inserting node 2's row (inside a subtransaction),
# node 2 just after giving its backend its turn (the backend commits while
# the worker restarts).  Each worker restarts;
# the batches, kept only in memory until applied, must survive in
# ledger.batch, or the block could never be applied again, and node 2's
# committed backend must still be told its block is in.
for i in 1 3 4; do as_pg touch "$TMP/$(node_name "$i")/data/pg_loopledger/fail_apply_rows"; done
as_pg touch "$TMP/$(node_name 2)/data/pg_loopledger/fail_apply_handed"
t0=$(date +%s%N)
# a committed backend left waiting would ignore statement_timeout: give up after 60 s
node_psql 2 -qc "INSERT INTO parcel VALUES ('apply-failed', 'ok', 'public')" >/dev/null 2>&1 &
ins=$!
for _ in $(seq 1 600); do kill -0 $ins 2>/dev/null || break; sleep 0.1; done
if kill -0 $ins 2>/dev/null; then
	pkill -f "INSERT INTO parcel VALUES ('apply-failed'" 2>/dev/null
	node_psql 2 -qAtc "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%apply-failed%' AND pid <> pg_backend_pid()" >/dev/null 2>&1
	wait $ins
	false
else
	wait $ins
fi
ok $? "an INSERT whose block fails to apply on every member returns, committed, after the workers restart ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
wait_converged customs 60
ok $? "all four converge after the failed block"
failed_on=$(for i in 1 2 3 4; do grep -c "failed it on purpose" "$TMP/$(node_name "$i")/server.log"; done | awk '$1 > 0' | wc -l)
is "$failed_on" 4 "the block failed to apply on all four members"
took=$(for i in 1 2 3 4; do grep -c "decided batches kept when their block could not be applied" "$TMP/$(node_name "$i")/server.log"; done | awk '$1 > 0' | wc -l)
is "$took" 4 "every restarted worker took the kept batches back"
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id = 'apply-failed'"; done | sort -u | tr '\n' ' ')" "1 " \
	"the row is there once on every node"
is "$(for i in 1 2 3 4; do node_psql "$i" -Atc "SELECT count(*) FROM ledger.verify('customs')"; done | sort -u | tr '\n' ' ')" "0 " \
	"every node verifies clean"

# Old decided batches sent again (fault rebatch).  byz4's clearance is
# changed twice by the members' votes (customs to partner, then to
# public); the honest workers restart, which empties their memory of
# decided batches; byz4 then sends again the batches of the first change.
# Their rows would be skipped by ledger.txlog, but their membership votes
# counted again: on the build before, byz4 was back at partner.
height1() { node_psql 1 -Atc "SELECT height FROM ledger.consensus_status WHERE channel = 'customs'"; }
clearance_of_byz4() {
	for i in 1 2 3; do node_psql "$i" -Atc "SELECT clearance FROM ledger.peer WHERE name = 'byz4'"; done | sort -u | tr '\n' ' '
}
set_byz4_clearance() {
	local t
	for i in 1 2 3 4; do node_psql "$i" -qAtc "SELECT ledger.set_peer_clearance('customs', 'byz4', '$1')" >/dev/null 2>&1; done
	for t in $(seq 1 100); do
		[ "$(clearance_of_byz4)" = "$1 " ] && return 0
		node_psql 1 -qc "INSERT INTO parcel VALUES ('clear-$1-$t', 'filed', 'public')" >/dev/null 2>&1
		sleep 0.2
	done
	return 1
}
h0=$(height1)
set_byz4_clearance partner
ok $? "the members lower byz4's clearance to partner"
h1=$(height1)
set_byz4_clearance public
ok $? "and then to public"
replays_before=$(for i in 1 2 3; do grep -c 'a batch decided before was sent again' "$TMP/$(node_name "$i")/server.log"; done | awk '{s += $1} END {print s + 0}')
for i in 1 2 3; do
	node_psql "$i" -qAtc "SELECT pg_terminate_backend(worker_pid) FROM ledger.consensus_status WHERE channel = 'customs'" >/dev/null
done
sleep 2
node_psql 4 -qc "ALTER SYSTEM SET loopledger.fault = 'rebatch:$h0-$h1'" >/dev/null && node_psql 4 -qAtc "SELECT pg_reload_conf()" >/dev/null
for t in $(seq 1 10); do
	PGOPTIONS="-c statement_timeout=20s" node_psql 1 -qc "INSERT INTO parcel VALUES ('after-rebatch-$t', 'filed', 'public')" >/dev/null 2>&1
	sleep 0.5
done
node_psql 4 -qc "ALTER SYSTEM RESET loopledger.fault" >/dev/null && node_psql 4 -qAtc "SELECT pg_reload_conf()" >/dev/null
replays=$(for i in 1 2 3; do grep -c 'a batch decided before was sent again' "$TMP/$(node_name "$i")/server.log"; done | awk '{s += $1} END {print s + 0}')
ok $(( !(replays > replays_before) )) "the restarted honest workers found batches byz4 sent again among those decided before ($((replays - replays_before)) log lines)"
PGOPTIONS="-c statement_timeout=20s" node_psql 1 -qc "INSERT INTO parcel VALUES ('after-rebatch', 'filed', 'public')" >/dev/null
ok $? "the honest members keep committing"
is "$(clearance_of_byz4)" "public " "byz4's clearance stays public on every honest member: the old votes were not counted again"
is "$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT ledger.digest('customs')->>'block_hash'"; done | sort -u | wc -l)" 1 \
	"the honest members hold the same ledger head"

# A row whose value does not read back as it was hashed: byz4's table
# takes text where the others' takes jsonb, which would store '{"a":1}' as
# '{"a": 1}'.  The three honest members agree on their definition (3 of 4
# declarations); byz4's shows as differing there, and its INSERT is refused
# up front.  Made to skip that check (fault misdeclare), it sends the row
# anyway: the honest members, whose table is defined as agreed, refuse the
# transaction alike and keep committing (before the agreed definitions,
# they could only stop: the cause might have been their own table).
# Likewise a row whose index entry is over the size limit (54000): the
# honest members index bigix.v, byz4 does not (every index is part of the
# definition); they used to retry such a block for ever.
stops_before=$(for i in 1 2 3; do grep -c 'cannot apply a decided block' "$TMP/$(node_name "$i")/server.log"; done | tr '\n' ' ')
for i in 1 2 3; do node_psql "$i" -qc "CREATE TABLE typedj (k text, v jsonb)" >/dev/null; done
node_psql 4 -qc "CREATE TABLE typedj (k text, v text)" >/dev/null
for i in 1 2 3; do node_psql "$i" -qc "CREATE TABLE bigix (k text, v text); CREATE INDEX ON bigix (v)" >/dev/null; done
node_psql 4 -qc "CREATE TABLE bigix (k text, v text)" >/dev/null
for i in 1 2 3 4; do node_psql "$i" -qc "SELECT ledger.enable_table('typedj', 'customs'), ledger.enable_table('bigix', 'customs')" >/dev/null; done
defs="SELECT string_agg(state, ',' ORDER BY table_name) FROM ledger.table_definitions WHERE table_name IN ('public.typedj', 'public.bigix')"
for t in $(seq 1 300); do
	got=$(for i in 1 2 3 4; do node_psql "$i" -Atc "$defs"; done | tr '\n' ' ')
	[ "$got" = "agreed,agreed agreed,agreed agreed,agreed differs here,differs here " ] && break
	sleep 0.1
done
is "$got" "agreed,agreed agreed,agreed agreed,agreed differs here,differs here " \
	"the honest members' definitions of bigix and typedj are agreed; byz4's differ, and byz4 sees that"
like "$(node_psql 4 -c "INSERT INTO typedj VALUES ('bad', '{\"a\":1}')" 2>&1)" \
	'ledger table "public.typedj" is defined here unlike the definition agreed on channel "customs"' \
	"byz4's INSERT into its differing table is refused up front"
node_psql 4 -qc "ALTER SYSTEM SET loopledger.fault = 'misdeclare'" >/dev/null && node_psql 4 -qAtc "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
# both at once: once the block holding the first is decided, byz4's worker
# stops on it (its own tables differ), and a second sent after that point
# may never leave
PGOPTIONS="-c statement_timeout=10s" node_psql 4 -qc "INSERT INTO typedj VALUES ('bad', '{\"a\":1}')" >/dev/null 2>&1 &
PGOPTIONS="-c statement_timeout=10s" node_psql 4 -qc "INSERT INTO bigix SELECT 'big', string_agg(md5(random()::text), '') FROM generate_series(1, 200)" >/dev/null 2>&1 &
wait
node_psql 4 -qc "ALTER SYSTEM RESET loopledger.fault" >/dev/null && node_psql 4 -qAtc "SELECT pg_reload_conf()" >/dev/null
# refused_on_honest PATTERN: how many transactions each honest member
# rejected with a detail LIKE PATTERN, once all three show one (10 s at most)
refused_on_honest() {
	local t got
	for t in $(seq 1 100); do
		got=$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM ledger.txlog WHERE status = 'rejected' AND detail LIKE '$1'"; done | tr '\n' ' ')
		[ "$got" = "1 1 1 " ] && break
		sleep 0.1
	done
	echo "$got"
}
is "$(refused_on_honest '%column "v" does not read back as it was hashed%')" "1 1 1 " \
	"the three honest members refuse the transaction alike, naming the value that does not read back"
is "$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM typedj"; done | sort -u | tr '\n' ' ')" "0 " "no honest member stores it"
is "$(refused_on_honest '%index row size%exceeds%')" "1 1 1 " "they refuse alike the transaction whose index entry is over the size limit"
is "$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM bigix"; done | sort -u | tr '\n' ' ')" "0 " "  and store nothing of it"
t0=$(now_ms)
PGOPTIONS="-c statement_timeout=20s" node_psql 1 -qc "INSERT INTO parcel VALUES ('after-misfit', 'filed', 'public')" >/dev/null
ok $? "the honest members keep committing after it ($(( $(now_ms) - t0 )) ms)"
for t in $(seq 1 100); do
	[ "$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT count(*) FROM parcel WHERE id = 'after-misfit'"; done | tr '\n' ' ')" = "1 1 1 " ] && break
	sleep 0.1
done
is "$(for i in 1 2 3; do node_psql "$i" -Atc "SELECT ledger.digest('customs')->>'block_hash'"; done | sort -u | wc -l)" 1 \
	"the honest members hold the same ledger head"
is "$(for i in 1 2 3; do grep -c 'cannot apply a decided block' "$TMP/$(node_name "$i")/server.log"; done | tr '\n' ' ')" "$stops_before" \
	"no honest member stopped applying"

# byz4's server answers ledger.deliver() with no row at all (a function of
# its own put in its place): the honest workers read the value that was
# not there and died of SIGSEGV, which takes their whole server through
# crash recovery, again after every restart.
sig_before=$(for i in 1 2 3; do grep -c 'terminated by signal' "$TMP/$(node_name "$i")/server.log"; done | tr '\n' ' ')
node_psql 4 -q >/dev/null 2>&1 <<'SQL'
ALTER EXTENSION loopledger DROP FUNCTION ledger.deliver(text, bytea, bytea);
ALTER FUNCTION ledger.deliver(text, bytea, bytea) RENAME TO deliver_real;
CREATE FUNCTION ledger.deliver(text, bytea, bytea) RETURNS SETOF text LANGUAGE sql AS 'SELECT NULL::text WHERE false';
GRANT EXECUTE ON FUNCTION ledger.deliver(text, bytea, bytea) TO loopledger_peer;
SQL
ok $? "byz4 answers ledger.deliver() with no row"
sleep 2
t0=$(now_ms)
PGOPTIONS="-c statement_timeout=20s" node_psql 1 -qc "INSERT INTO parcel VALUES ('after-empty-answers', 'filed', 'public')" >/dev/null
ok $? "the honest members keep committing meanwhile ($(( $(now_ms) - t0 )) ms)"
is "$(for i in 1 2 3; do grep -c 'terminated by signal' "$TMP/$(node_name "$i")/server.log"; done | tr '\n' ' ')" "$sig_before" \
	"no honest server went through crash recovery"
for t in $(seq 1 50); do
	msg=$(node_psql 1 -Atc "SELECT message FROM ledger.peers WHERE channel = 'customs' AND name = 'byz4'")
	[[ "$msg" == *"something other than one value"* ]] && break
	sleep 0.1
done
like "$msg" "something other than one value" "ledger.peers on node 1 says what byz4 answered"
node_psql 4 -q >/dev/null 2>&1 <<'SQL'
DROP FUNCTION ledger.deliver(text, bytea, bytea);
ALTER FUNCTION ledger.deliver_real(text, bytea, bytea) RENAME TO deliver;
ALTER EXTENSION loopledger ADD FUNCTION ledger.deliver(text, bytea, bytea);
SQL
ok $? "byz4's ledger.deliver() put back"


echo "1..$n"
[ "$failed" = 0 ]
