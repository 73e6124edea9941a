#!/usr/bin/env bash
# The loopledger demo, from nothing:
#   bash test/demo.sh
# Installs what is missing, builds, and starts four throwaway PostgreSQL
# servers in .tmp/ - one per organisation of a customs-clearance
# consortium: the customs service, two couriers and a marketplace.  They
# share one ledger channel and agree on every block with BFT consensus.
# The story is plain SQL on each organisation's own database; each
# organisation's server only receives the content of rows at or below its
# clearance (the rest it holds as commitments, and can check a disclosure
# against); mid-way one courier's server is killed, the others carry on,
# and the restarted server catches up.  At the end a row's proof is checked
# offline and a tampered copy is caught.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/test/lib.sh"
source "$ROOT/test/multinode.sh"

PORT=${LOOPLEDGER_DEMO_PORT:-25470}
MN_PREFIX=demo_
ORG=(none customs fastship quickparcel shopmall)
ensure_packages
build_and_install

say "starting four organisations' PostgreSQL 15 servers in $TMP/demo_* (ports $((PORT + 1))-$((PORT + 4)))"
trap 'stop_nodes' EXIT
start_nodes 4 "$PORT" "loopledger.block_interval = 50ms"
at() { local i=$1; shift; node_psql "$i" -v ON_ERROR_STOP=1 "$@"; }
show() {
	local i=$1; shift
	printf '\n\033[36m%s@%s=# %s\033[0m\n' "${ORG[$i]}" "$(node_name "$i")" "$*"
	at "$i" -c "$*"
}

say "1. every organisation creates its node key; all agree on the channel and its members"
for i in 1 2 3 4; do KEY[i]=$(at "$i" -Atc "SELECT ledger.node_key()"); echo "  ${ORG[$i]}: ${KEY[$i]}"; done
CLEAR=(none customs partner partner public)
for i in 1 2 3 4; do
	at "$i" -qAtc "SELECT ledger.create_channel('customs', ARRAY['public','partner','customs'])" >/dev/null
	for j in 1 2 3 4; do
		at "$i" -qAtc "SELECT ledger.add_peer('customs', '${ORG[$j]}', '$(node_conninfo "$j")', '${KEY[$j]}', clearance => '${CLEAR[$j]}')" >/dev/null
	done
	at "$i" -qc "CREATE TABLE declarations (id text PRIMARY KEY, parcel text, hs_code text,
	             value numeric(12,2), importer text, filed_by text, status text,
	             filed_at timestamptz DEFAULT now(), tier text DEFAULT 'public');
	             SELECT ledger.enable_table('declarations', 'customs', tier_column => 'tier')" >/dev/null
	at "$i" -qc "CREATE TABLE notes (parcel text, note text, author text, tier text);
	             SELECT ledger.enable_table('notes', 'customs', tier_column => 'tier')" >/dev/null
done
printf '\n  (the same create_channel, add_peer and enable_table calls ran on all four servers;\n   clearances: customs sees every tier, the couriers public and partner rows, the marketplace public rows)\n'
show 1 "SELECT channel, name, clearance, state FROM ledger.peers ORDER BY name"
# rows are taken once a quorum of members declared each table's definition
for t in $(seq 1 300); do
	[ "$(for i in 1 2 3 4; do at "$i" -Atc "SELECT count(*) FROM ledger.table_definitions WHERE state = 'agreed'"; done | tr '\n' ' ')" = "2 2 2 2 " ] && break
	sleep 0.1
done
show 1 "SELECT channel, table_name, state, declared_by FROM ledger.table_definitions ORDER BY table_name"
show 1 "SELECT channel, height, validators, quorum, proposer FROM ledger.consensus_status"

say "2. each organisation writes with plain INSERT on its own server"
show 2 "INSERT INTO declarations (id, parcel, hs_code, value, importer, filed_by, status, tier) VALUES
  ('D-1001', 'KR-1001', '8471.30', 1299.00, 'ACME Electronics', 'fastship', 'filed', 'public'),
  ('D-1002', 'KR-1002', '6403.99',   89.90, 'Shoe Palace',      'fastship', 'filed', 'public') RETURNING id, ledger_entry"
show 3 "INSERT INTO declarations (id, parcel, hs_code, value, importer, filed_by, status) VALUES
  ('D-2001', 'KR-2001', '3304.99', 45.00, 'Glow Cosmetics', 'quickparcel', 'filed')"
show 4 "INSERT INTO declarations (id, parcel, hs_code, value, importer, filed_by, status) VALUES
  ('M-1002', 'KR-1002', '6403.99', 89.90, 'Shoe Palace', 'shopmall', 'order paid')"
say "   the same rows are on every server, in the same block"
for i in 1 2 3 4; do
	printf '  %-12s %s\n' "${ORG[$i]}" "$(at "$i" -Atc "SELECT count(*) || ' rows, head ' || left(ledger.digest('customs')->>'block_hash', 16) FROM declarations")"
done

say "2b. notes at three tiers: a server only receives what its organisation is cleared for"
show 2 "INSERT INTO notes VALUES ('KR-1001', 'importer tax id 110-81-12345', 'fastship', 'partner'),
                         ('KR-1001', 'out for delivery', 'fastship', 'public')"
show 1 "INSERT INTO notes VALUES ('KR-1001', 'inspection: invoice undervalued, hold for duty', 'customs', 'customs')"
wait_converged customs 30
say "   what each server stores (as superuser, so row-level security hides nothing), and how its history lists the rest"
for i in 1 2 3 4; do
	printf '  %-12s (clearance %-8s) stores: %-38s history: %s\n' "${ORG[$i]}" "${CLEAR[$i]}" \
		"$(at "$i" -Atc "SELECT coalesce(string_agg(tier || ' \"' || left(note, 18) || '\"', ', ' ORDER BY tier), '-') FROM notes")" \
		"$(at "$i" -Atc "SELECT string_agg(status || ' ' || tier, ', ' ORDER BY tier) FROM ledger.history('notes')")"
done
show 4 "SELECT entry, status, tier, left(encode(row_hash, 'hex'), 16) AS commitment, row_data FROM ledger.history('notes') ORDER BY entry"
say "   the chain is the same everywhere: every server verifies every block over the commitments"
for i in 1 2 3 4; do
	printf '  %-12s head %s, verify problems: %s\n' "${ORG[$i]}" \
		"$(at "$i" -Atc "SELECT left(ledger.digest('customs')->>'block_hash', 16)")" \
		"$(at "$i" -Atc "SELECT count(*) FROM ledger.verify('customs')")"
done
say "   a table with a unique key only takes rows every member can judge"
show 1 "INSERT INTO declarations (id, parcel, filed_by, status, tier) VALUES ('C-1', 'KR-1001', 'customs', 'held', 'customs')" || true

say "3. two couriers file the same declaration at the same moment: the agreed order decides"
( at 2 -qc "INSERT INTO declarations (id, parcel, filed_by, status) VALUES ('D-3000', 'KR-3000', 'fastship', 'filed')" 2>&1 | sed 's/^/  fastship:    /' ) &
( at 3 -qc "INSERT INTO declarations (id, parcel, filed_by, status) VALUES ('D-3000', 'KR-3000', 'quickparcel', 'filed')" 2>&1 | sed 's/^/  quickparcel: /' ) &
wait
show 4 "SELECT id, filed_by, status FROM declarations WHERE id = 'D-3000'"

say "4. quickparcel's server crashes (kill -9); the other three carry on"
kill9_node 3
echo "  $(node_name 3) killed"
t0=$(date +%s%3N)
for k in 1 2 3 4 5 6 7 8; do
	at 2 -qc "INSERT INTO declarations (id, parcel, filed_by, status) VALUES ('D-40$k', 'KR-40$k', 'fastship', 'filed')"
done
echo "  8 declarations committed one after another meanwhile, in $(($(date +%s%3N) - t0)) ms"
echo "  (quickparcel is the proposer of every 4th height: once it has been silent for 2 s the others stop waiting for it)"
show 1 "SELECT id, filed_by, status FROM declarations WHERE id LIKE 'D-40%' ORDER BY id"
show 1 "SELECT name, state, last_height, lag FROM ledger.peers ORDER BY name"
say "   quickparcel restarts and catches up, verifying every block's certificate"
restart_node 3
wait_converged customs 60
for i in 1 2 3 4; do
	printf '  %-12s %s\n' "${ORG[$i]}" "$(at "$i" -Atc "SELECT count(*) || ' rows, height ' || (ledger.digest('customs')->>'height') || ', head ' || left(ledger.digest('customs')->>'block_hash', 16) || ', verify problems: ' || (SELECT count(*) FROM ledger.verify('customs')) FROM declarations")"
done

say "4b. customs discloses its inspection note to the marketplace, which checks it against its commitment"
at 1 -Atc "SELECT ledger.proof('customs', (SELECT ledger_entry FROM notes WHERE tier = 'customs'))" > "$TMP/demo_1/disclosure.json"
printf '  disclosure: %s...\n' "$(head -c 150 "$TMP/demo_1/disclosure.json")"
printf '\n\033[36m%s@%s=# %s\033[0m\n' shopmall "$(node_name 4)" "SELECT ledger.verify_disclosure('<the disclosure>') AS marketplace_accepts_disclosure"
at 4 -c "SELECT ledger.verify_disclosure('$(cat "$TMP/demo_1/disclosure.json")'::jsonb) AS marketplace_accepts_disclosure"

say "5. the importer keeps a digest and a proof, and checks them without any database"
at 4 -Atc "SELECT ledger.digest('customs')" > "$TMP/demo_4/digest.json"
at 4 -Atc "SELECT ledger.proof('customs', (SELECT ledger_entry FROM declarations WHERE id = 'M-1002'))" > "$TMP/demo_4/proof.json"
printf '\n\033[36m$ loopledger_verify proof.json digest.json\033[0m\n'
"$ROOT/loopledger_verify" "$TMP/demo_4/proof.json" "$TMP/demo_4/digest.json"
python3 - "$TMP/demo_4/proof.json" "$TMP/demo_4/forged.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for c in p["columns"]:
    if c["name"] == "value":
        c["value"] = "1.00"
json.dump(p, open(sys.argv[2], "w"))
PY
printf '\n\033[36m$ loopledger_verify forged-proof.json digest.json   (value changed to 1.00)\033[0m\n'
"$ROOT/loopledger_verify" "$TMP/demo_4/forged.json" "$TMP/demo_4/digest.json" || true

say "6. a superuser at the marketplace rewrites its own copy; its own verify and the other members see it"
at 4 -qc "SET session_replication_role = replica; UPDATE declarations SET value = 1.00 WHERE id = 'M-1002'"
show 4 "SELECT * FROM ledger.verify('customs')"
show 1 "SELECT ledger.verify_digest('$(cat "$TMP/demo_4/digest.json")'::jsonb) AS customs_accepts_marketplace_digest"

say "demo finished; the four servers are stopped and $TMP/demo_* can be deleted"
