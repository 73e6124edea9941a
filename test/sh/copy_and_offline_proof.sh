#!/usr/bin/env bash
# COPY FROM stdin of 10,000 rows into a ledger table, then offline proofs:
# ledger.proof + ledger.digest written to files and checked with
# loopledger_verify (exit 0), and tampered proofs/digests (exit 1, FAIL).
# TAP output.
set -u
VERIFY=/usr/lib/postgresql/15/bin/loopledger_verify
S=$$
C=tapcopy_$S
O=tapcopy_other_$S
T=${C}_t
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"

q -c "SELECT ledger.create_channel('$C', ARRAY['pub','priv']); SELECT ledger.create_channel('$O');
      CREATE TABLE $T (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, tags text[], tier text);
      SELECT ledger.enable_table('$T', '$C', 'tier');
      CREATE TABLE ${O}_t (id int); SELECT ledger.enable_table('${O}_t', '$O'); INSERT INTO ${O}_t VALUES (1);" >/dev/null
ok $? "setup"

# 10,000 rows: non-ASCII text, escaped tab/backslash/newline, NULLs, arrays
python3 - >"$WORK/rows.tsv" <<'PY'
for i in range(1, 10001):
    name = ["Z\u00fcrich", "\u6771\u4eac", "\u041f\u0440\u0438\u0432\u0435\u0442 \U0001F6A2", "tab\\there", "back\\\\slash", "new\\nline", "\\N"][i % 7]
    tier = "priv" if i % 3 == 0 else "pub"
    print(f"{i}\t{name}\t{i * 1.25:.2f}\t2024-01-{1 + i % 28:02d} 12:00:00+0{i % 5}\t{{a,\"b c\",NULL}}\t{tier}")
PY
out=$(psql -X -v ON_ERROR_STOP=1 -c "COPY $T (id, name, amount, at, tags, tier) FROM STDIN" <"$WORK/rows.tsv" 2>&1)
is "$out" "COPY 10000" "COPY FROM stdin reports 10000 rows"
is "$(q -c "SELECT count(*), count(DISTINCT ledger_entry), count(*) FILTER (WHERE name IS NULL) FROM $T")" "10000|10000|1428" \
	"10000 rows with distinct entry numbers, NULLs kept"
is "$(q -c "SELECT count(*) FROM ledger.history('$T') WHERE status = 'sealed'")" 10000 "all rows sealed when COPY returned"
is "$(q -c "SELECT count(DISTINCT block_height) FROM ledger.history('$T')")" 1 "the COPY transaction is one block"
is "$(q -c "SELECT count(*) FILTER (WHERE tier = 'priv') FROM ledger.history('$T')")" 3333 "tiers recorded"
is "$(q -c "SELECT name FROM $T WHERE id IN (1, 3, 4) ORDER BY id")" "$(printf '\u6771\u4eac\ntab\there\nback\\slash')" "COPY escapes decoded"
is "$(q -c "SELECT block_height || ': ' || problem FROM ledger.verify('$C')")" "" "verify clean after COPY"

# a COPY with one bad tier loads nothing
printf '20001\tx\t1\t2024-01-01\t{}\tpub\n20002\ty\t1\t2024-01-01\t{}\tnope\n' >"$WORK/bad.tsv"
psql -X -v ON_ERROR_STOP=1 -q -c "COPY $T (id, name, amount, at, tags, tier) FROM STDIN" <"$WORK/bad.tsv" >"$WORK/bad.out" 2>&1
rc=$?
ok $([ $rc != 0 ] && grep -q 'tier' "$WORK/bad.out"; echo $?) "COPY with a tier not in the channel fails"
is "$(q -c "SELECT count(*) FROM $T WHERE id > 20000")" 0 "the failed COPY left no row"
q -c "SELECT ledger.wait_sealed()" >/dev/null
is "$(q -c "SELECT count(*) FROM ledger.block_entries('$C')")" 10000 "the failed COPY left nothing in the chain"

# a second, small block so proofs of the first one span two headers
q -c "INSERT INTO $T VALUES (10001, 'later', 1, now(), '{}', 'pub')" >/dev/null

proof() { q -c "SELECT ledger.proof('$C', (SELECT ledger_entry FROM $T WHERE id = $1) ${2:+, $2})" >"$WORK/$3"; }
q -c "SELECT ledger.digest('$C')" >"$WORK/digest.json"
for id in 1 2 4 5000 9999 10000 10001; do
	proof $id "" "p$id.json"
	out=$("$VERIFY" "$WORK/p$id.json" "$WORK/digest.json" 2>&1)
	rc=$?
	ok $([ $rc = 0 ] && [[ "$out" == ok:* ]]; echo $?) "loopledger_verify accepts the proof of id $id ($out)"
done

expect_fail() { # desc proof digest
	local out rc
	out=$("$VERIFY" "$2" "$3" 2>&1)
	rc=$?
	ok $([ $rc = 1 ] && grep -q '^FAIL' <<<"$out"; echo $?) "$1 -> exit $rc: $(head -1 <<<"$out")"
}
edit() { # python expression on the proof dict p -> new file
	python3 - "$WORK/p5000.json" "$WORK/$1" "$2" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
def flip(h):
    return ('0' if h[0] != '0' else '1') + h[1:]
exec(sys.argv[3])
json.dump(p, open(sys.argv[2], 'w'))
PY
}
edit t_col.json "p['columns'][1]['value'] = p['columns'][1]['value'] + 'x'"
expect_fail "changed column value" "$WORK/t_col.json" "$WORK/digest.json"
edit t_null.json "p['columns'][2]['value'] = None"
expect_fail "column value replaced by NULL" "$WORK/t_null.json" "$WORK/digest.json"
edit t_colname.json "p['columns'][0]['name'] = 'ident'"
expect_fail "renamed column" "$WORK/t_colname.json" "$WORK/digest.json"
edit t_coldrop.json "p['columns'].pop()"
expect_fail "dropped column" "$WORK/t_coldrop.json" "$WORK/digest.json"
edit t_tier.json "p['tier'] = 'priv' if p['tier'] == 'pub' else 'pub'"
expect_fail "changed tier" "$WORK/t_tier.json" "$WORK/digest.json"
edit t_entry.json "p['entry'] = p['entry'] + 1"
expect_fail "changed entry number" "$WORK/t_entry.json" "$WORK/digest.json"
edit t_table.json "p['table'] = 'public.other'"
expect_fail "changed table name" "$WORK/t_table.json" "$WORK/digest.json"
edit t_salt.json "p['salt'] = flip(p['salt'])"
expect_fail "changed salt" "$WORK/t_salt.json" "$WORK/digest.json"
edit t_path.json "p['path'][0] = flip(p['path'][0])"
expect_fail "changed audit path element" "$WORK/t_path.json" "$WORK/digest.json"
edit t_pathswap.json "p['path'][0], p['path'][1] = p['path'][1], p['path'][0]"
expect_fail "reordered audit path" "$WORK/t_pathswap.json" "$WORK/digest.json"
edit t_pathshort.json "p['path'].pop()"
expect_fail "shortened audit path" "$WORK/t_pathshort.json" "$WORK/digest.json"
edit t_pos.json "p['position'] = p['position'] + 1"
expect_fail "changed position" "$WORK/t_pos.json" "$WORK/digest.json"
edit t_leaf.json "p['leaf_hash'] = flip(p['leaf_hash'])"
expect_fail "changed leaf hash" "$WORK/t_leaf.json" "$WORK/digest.json"
edit t_bhash.json "p['blocks'][0]['hash'] = flip(p['blocks'][0]['hash'])"
expect_fail "changed block hash" "$WORK/t_bhash.json" "$WORK/digest.json"
edit t_broot.json "p['blocks'][0]['merkle_root'] = flip(p['blocks'][0]['merkle_root'])"
expect_fail "changed block Merkle root" "$WORK/t_broot.json" "$WORK/digest.json"
edit t_btime.json "p['blocks'][0]['time_us'] += 1"
expect_fail "changed block time" "$WORK/t_btime.json" "$WORK/digest.json"
edit t_bprev.json "p['blocks'][-1]['prev_hash'] = flip(p['blocks'][-1]['prev_hash'])"
expect_fail "changed last header's prev_hash" "$WORK/t_bprev.json" "$WORK/digest.json"
edit t_bdrop.json "p['blocks'].pop(0)"
expect_fail "dropped the row's block header" "$WORK/t_bdrop.json" "$WORK/digest.json"
edit t_chan.json "p['channel'] = '$O'"
expect_fail "changed channel name" "$WORK/t_chan.json" "$WORK/digest.json"

# digests that do not fit
q -c "SELECT ledger.digest('$O')" >"$WORK/other_digest.json"
expect_fail "digest of another channel" "$WORK/p5000.json" "$WORK/other_digest.json"
python3 -c "
import json,sys; d=json.load(open('$WORK/digest.json')); d['block_hash']=('0' if d['block_hash'][0]!='0' else '1')+d['block_hash'][1:]
json.dump(d, open('$WORK/forged_digest.json','w'))"
expect_fail "digest with a forged block hash" "$WORK/p5000.json" "$WORK/forged_digest.json"
q -c "INSERT INTO $T VALUES (10002, 'newer', 1, now(), '{}', 'pub')" >/dev/null
q -c "SELECT ledger.digest('$C')" >"$WORK/newer_digest.json"
expect_fail "digest newer than the proof" "$WORK/p5000.json" "$WORK/newer_digest.json"
# a fresh proof up to the newer digest, and an old proof bounded by upto, still verify
proof 5000 "" p5000_new.json
out=$("$VERIFY" "$WORK/p5000_new.json" "$WORK/newer_digest.json" 2>&1)
ok $? "a fresh proof verifies against the newer digest ($out)"
old_h=$(python3 -c "import json; print(json.load(open('$WORK/digest.json'))['height'])")
proof 5000 "$old_h" p5000_upto.json
out=$("$VERIFY" "$WORK/p5000_upto.json" "$WORK/digest.json" 2>&1)
ok $? "a proof with upto = the old digest's height verifies against it ($out)"
out=$("$VERIFY" "$WORK/p5000.json" 2>&1)
ok $([ $? != 0 ]; echo $?) "loopledger_verify without a digest argument fails"
echo '{not json' >"$WORK/garbage.json"
out=$("$VERIFY" "$WORK/garbage.json" "$WORK/digest.json" 2>&1)
ok $([ $? != 0 ]; echo $?) "loopledger_verify rejects a malformed proof file"

is "$(q -c "SELECT block_height || ': ' || problem FROM ledger.verify('$C')")" "" "verify clean at the end"
echo "1..$n"
[ $failed = 0 ]
