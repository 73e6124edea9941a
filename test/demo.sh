#!/usr/bin/env bash
# The loopledger demo, from nothing:
#   bash test/demo.sh
# Installs what is missing, builds, starts a throwaway PostgreSQL cluster in
# .tmp/demo, plays a short customs-clearance story through plain SQL, checks
# a row's proof offline with loopledger_verify, then tampers with the table
# the way only a superuser could and shows ledger.verify catching it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/test/lib.sh"

PORT=${LOOPLEDGER_DEMO_PORT:-55470}
ensure_packages
build_and_install

say "starting a throwaway PostgreSQL 15 cluster in $TMP/demo (port $PORT)"
trap 'stop_cluster demo' EXIT
start_cluster demo "$PORT" "loopledger.block_interval = 50ms"
export PGHOST="$TMP/demo" PGPORT="$PORT" PGUSER=postgres PGDATABASE=ledger
q() { psql -X -v ON_ERROR_STOP=1 "$@"; }
show() { printf '\n\033[36m%s\033[0m\n' "$*"; q -c "$*"; }

say "1. the customs service sets up a ledger"
show "CREATE EXTENSION loopledger"
show "SELECT ledger.create_channel('customs', ARRAY['public','partner','customs'])"
q -qc "CREATE TABLE declarations (id bigint PRIMARY KEY, parcel text, hs_code text,
       value numeric(12,2), importer text, courier text, status text,
       filed_at timestamptz DEFAULT now(), tier text DEFAULT 'public')"
show "SELECT ledger.enable_table('declarations', 'customs', tier_column => 'tier')"

say "2. couriers, shops and the customs service write with plain INSERT"
show "INSERT INTO declarations (id, parcel, hs_code, value, importer, courier, status, tier) VALUES
  (1, 'KR-1001', '8471.30', 1299.00, 'ACME Electronics', 'FastShip', 'filed',    'partner'),
  (2, 'KR-1002', '6403.99',   89.90, 'Shoe Palace',      'FastShip', 'filed',    'public'),
  (3, 'KR-1003', '3304.99',   45.00, 'Glow Cosmetics',   'QuickParcel', 'filed', 'public')"
show "INSERT INTO declarations (id, parcel, hs_code, value, importer, courier, status, tier) VALUES
  (4, 'KR-1001', '8471.30', 1299.00, 'ACME Electronics', 'FastShip', 'inspected: value confirmed', 'customs'),
  (5, 'KR-1003', '3304.99',   45.00, 'Glow Cosmetics',   'QuickParcel', 'cleared', 'public')"
say "   a correction is a new row: UPDATE and DELETE are refused, even for the owner"
q -c "UPDATE declarations SET value = 1.00 WHERE id = 1" || true
show "INSERT INTO declarations (id, parcel, hs_code, value, importer, courier, status, tier) VALUES
  (6, 'KR-1002', '6403.99', 89.90, 'Shoe Palace', 'FastShip', 'duty paid: 12.40', 'partner')"

say "3. every row is hashed, sealed in a block, and chained"
show "SELECT d.id, d.parcel, d.status, h.block_height, h.position, left(encode(h.row_hash, 'hex'), 16) AS row_hash, h.status AS ledger
      FROM ledger.history('declarations') h JOIN declarations d ON d.ledger_entry = h.entry ORDER BY h.entry"
show "SELECT height, left(block_hash, 16) AS block_hash, left(prev_hash, 16) AS prev_hash, tx_count, row_count FROM ledger.blocks WHERE channel = 'customs'"
show "SELECT * FROM ledger.verify('customs')"

say "4. the importer keeps a digest and a proof, and checks them without the database"
q -Atc "SELECT ledger.digest('customs')" > "$TMP/demo/digest.json"
q -Atc "SELECT ledger.proof('customs', (SELECT ledger_entry FROM declarations WHERE id = 4))" > "$TMP/demo/proof.json"
echo "digest: $(cat "$TMP/demo/digest.json")"
python3 -m json.tool "$TMP/demo/proof.json" | head -30
echo "  ..."
printf '\n\033[36m$ loopledger_verify proof.json digest.json\033[0m\n'
"$ROOT/loopledger_verify" "$TMP/demo/proof.json" "$TMP/demo/digest.json"
printf '\n\033[36m$ loopledger_verify forged-proof.json digest.json   (value changed to 1.00)\033[0m\n'
python3 - "$TMP/demo/proof.json" "$TMP/demo/forged.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
for c in p["columns"]:
    if c["name"] == "value":
        c["value"] = "1.00"
json.dump(p, open(sys.argv[2], "w"))
PY
"$ROOT/loopledger_verify" "$TMP/demo/forged.json" "$TMP/demo/digest.json" || true

say "5. a superuser bypasses the guards and rewrites history"
show "SET session_replication_role = replica;
      UPDATE declarations SET value = 1.00 WHERE id = 1;
      DELETE FROM declarations WHERE id = 6;
      INSERT INTO declarations (id, parcel, hs_code, value, importer, courier, status) VALUES (7, 'KR-9999', '9999.99', 0, 'Nobody', 'Ghost', 'cleared');"
say "   ledger.verify catches every change"
show "SELECT * FROM ledger.verify('customs')"
show "SELECT ledger.verify_digest('$(cat "$TMP/demo/digest.json")'::jsonb) AS digest_still_holds"
say "   and the block headers themselves are protected too"
q -qc "ALTER TABLE ledger.block DISABLE TRIGGER block_append_only;
       UPDATE ledger.block SET time_us = time_us + 1 WHERE height = 1 AND channel_id = (SELECT channel_id FROM ledger.channel WHERE name = 'customs')"
show "SELECT ledger.verify_digest('$(cat "$TMP/demo/digest.json")'::jsonb) AS digest_still_holds"
show "SELECT * FROM ledger.verify('customs') WHERE problem LIKE 'block%'"

say "demo finished; the cluster in $TMP/demo is stopped and can be deleted"
