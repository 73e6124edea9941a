#!/bin/sh
# test_verify_cli.sh -- TAP tests for the offline verifier loopledger_verify.
#
# Valid proofs come from test/unit/gen_proof.c (built on src/ll_core.c).
# Tampered copies are made with python3's json module; where a tamper must
# stay self-consistent (re-hashed blocks, re-linked chain, forged Merkle
# root) the hashes are recomputed by an independent Python implementation
# of the formats, so those cases also cross-check the C encoders.
#
# Usage: sh test/unit/test_verify_cli.sh   (from anywhere; VERIFY=path to
# use an already built verifier instead of "make -s loopledger_verify")

set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
W=$(mktemp -d /tmp/ll_verify_test.XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT INT TERM

bail() { echo "Bail out! $*"; exit 1; }

if [ -z "${VERIFY:-}" ]; then
	make -s loopledger_verify >"$W/make.log" 2>&1 || { cat "$W/make.log"; bail "cannot build loopledger_verify"; }
	VERIFY=$ROOT/loopledger_verify
fi
[ -x "$VERIFY" ] || bail "$VERIFY is not executable"
command -v python3 >/dev/null 2>&1 || bail "python3 is required"
gcc -std=c11 -O2 -Wall -Wextra -Werror -Isrc -o "$W/gen_proof" \
	test/unit/gen_proof.c src/ll_core.c -ljansson -lcrypto || bail "cannot build gen_proof"
GEN=$W/gen_proof

cat >"$W/tamper.py" <<'EOF'
# tamper.py SRC_PROOF SRC_DIGEST OUT_PROOF OUT_DIGEST CODE
# Runs CODE with p (proof) and d (digest) loaded, then writes them back.
import hashlib, json, struct, sys

src_p, src_d, out_p, out_d, code = sys.argv[1:6]
p = json.load(open(src_p, encoding="utf-8"))
d = json.load(open(src_d, encoding="utf-8"))

def sha(b): return hashlib.sha256(b).digest()
def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack(">I", len(b)) + b
def entry():
    out = b"LLE1" + s(p["table"]) + struct.pack(">Q", p["entry"]) + s(p["tier"])
    out += bytes.fromhex(p["salt"]) + struct.pack(">I", len(p["columns"]))
    for c in p["columns"]:
        out += s(c["name"])
        out += b"\x00" if c["value"] is None else b"\x01" + s(c["value"])
    return out
def leaf(): return sha(b"\x00" + entry()).hex()
def block_hash(b):
    enc = (b"LLB1" + s(p["channel"]) + struct.pack(">Q", b["height"]) +
           bytes.fromhex(b["prev_hash"]) + bytes.fromhex(b["merkle_root"]) +
           struct.pack(">qII", b["time_us"], b["tx_count"], b["row_count"]) +
           bytes.fromhex(b["config_hash"]))
    return sha(enc).hex()
def rehash(i): p["blocks"][i]["hash"] = block_hash(p["blocks"][i])
def relink(i=0):
    # re-hash block i and re-link/re-hash every later block
    for j in range(i, len(p["blocks"])):
        if j > i:
            p["blocks"][j]["prev_hash"] = p["blocks"][j - 1]["hash"]
        rehash(j)
def root_from_path():
    # RFC 9162 section 2.1.3.2, independently of the C code
    fn, sn = p["position"], p["tree_size"] - 1
    t = p["tier"].encode()
    r = sha(b"\x02" + struct.pack(">QI", p["entry"], len(t)) + t + bytes.fromhex(p["leaf_hash"]))
    for h in p["path"]:
        h = bytes.fromhex(h)
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + h + r)
            while not fn & 1 and fn != 0:
                fn >>= 1; sn >>= 1
        else:
            r = sha(b"\x01" + r + h)
        fn >>= 1; sn >>= 1
    assert sn == 0
    return r.hex()
def flip(h, k=0):
    return h[:k] + "0123456789abcdef"[int(h[k], 16) ^ 1] + h[k + 1:]
def block_at(height):
    return p["blocks"][height - p["blocks"][0]["height"]]

exec(code)
with open(out_p, "w", encoding="utf-8") as f:
    json.dump(p, f, ensure_ascii=False)
with open(out_d, "w", encoding="utf-8") as f:
    json.dump(d, f, ensure_ascii=False)
EOF

n=0
nfailed=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1)); nfailed=$((nfailed + 1)); echo "not ok $n - $1"; shift
	for l in "$@"; do echo "#   $l"; done
}

# run_verify ARGS...: sets out, rc, lines, err
run_verify() {
	"$VERIFY" "$@" >"$W/out" 2>"$W/err"
	rc=$?
	out=$(cat "$W/out")
	lines=$(wc -l <"$W/out")
	err=$(cat "$W/err")
}

# expect_ok NAME PROOF DIGEST [EXACT_LINE]
expect_ok() {
	name=$1; shift
	exact=${3:-}
	run_verify "$1" "$2"
	if [ "$rc" -eq 0 ] && [ "$lines" -eq 1 ] && [ -z "$err" ] &&
		case $out in "ok: "*) true ;; *) false ;; esac &&
		{ [ -z "$exact" ] || [ "$out" = "$exact" ]; }; then
		pass "$name"
	else
		fail "$name" "exit $rc, $lines line(s): $out" "stderr: $err" ${exact:+"expected: $exact"}
	fi
}

# expect_fail NAME REASON_SUBSTRING ARGS...
expect_fail() {
	name=$1; want=$2; shift 2
	run_verify "$@"
	if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && [ -z "$err" ] &&
		case $out in "FAIL: "*"$want"*) true ;; *) false ;; esac; then
		pass "$name"
	else
		fail "$name" "exit $rc, $lines line(s): $out" "stderr: $err" "wanted FAIL containing: $want"
	fi
}

# Base proof: entry 17, block 3 (5 rows, position 2), digest 9, head 11.
"$GEN" "$W/p.json" "$W/d.json" || bail "gen_proof failed"
P=$W/p.json
D=$W/d.json

# tamper TAG CODE: writes $W/TAG.p.json and $W/TAG.d.json from the base
tamper() {
	python3 "$W/tamper.py" "$P" "$D" "$W/$1.p.json" "$W/$1.d.json" "$2" ||
		bail "tamper $1 failed"
}
# tfail NAME REASON CODE: tamper, then expect failure with REASON
tcount=0
tfail() {
	tcount=$((tcount + 1))
	tamper "t$tcount" "$3"
	expect_fail "$1" "$2" "$W/t$tcount.p.json" "$W/t$tcount.d.json"
}
tok() {
	tcount=$((tcount + 1))
	tamper "t$tcount" "$2"
	expect_ok "$1" "$W/t$tcount.p.json" "$W/t$tcount.d.json" "${3:-}"
}

DH=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["block_hash"][:16])' "$D")

# ---- valid proofs -------------------------------------------------------
expect_ok "valid proof verifies with the exact success line" "$P" "$D" \
	"ok: entry 17 of table \"public.declarations\" is in block 3 of channel \"customs\", an ancestor of digest height 9 ($DH)"

# row_block position digest_height head rows
for cfg in "0 0 0 0 1" "3 4 3 3 5" "3 0 11 11 5" "2 6 5 7 7" "5 0 9 9 1" \
	"4 12 6 8 13" "1 1 1 1 2" "6 31 6 6 32" "7 32 12 12 33" "0 999 20 20 1000"; do
	set -- $cfg
	"$GEN" "$W/c.p.json" "$W/c.d.json" "$@" || bail "gen_proof $cfg"
	expect_ok "valid proof: block $1 position $2 of $5 rows, digest $3, head $4" \
		"$W/c.p.json" "$W/c.d.json"
done

for size in 9 16 17; do
	bad=""
	pos=0
	while [ $pos -lt $size ]; do
		"$GEN" "$W/c.p.json" "$W/c.d.json" 2 $pos 4 6 $size || bail "gen_proof"
		"$VERIFY" "$W/c.p.json" "$W/c.d.json" >/dev/null 2>&1 || bad="$bad $pos"
		pos=$((pos + 1))
	done
	if [ -z "$bad" ]; then pass "every position of a $size-row block verifies"
	else fail "every position of a $size-row block verifies" "failed:$bad"; fi
done

tamper x 'assert leaf() == p["leaf_hash"]
assert root_from_path() == p["blocks"][0]["merkle_root"]
for b in p["blocks"]: assert block_hash(b) == b["hash"], b["height"]
assert block_at(d["height"])["hash"] == d["block_hash"]'
pass "independent Python encoders agree with the generator's hashes"

tok "digest at the row's own block verifies" 'd["height"] = 3; d["block_hash"] = block_at(3)["hash"]'
tok "digest at the proof's last block verifies" 'd["height"] = 11; d["block_hash"] = block_at(11)["hash"]'
tok "proof cut right after the digest height verifies" 'p["blocks"] = p["blocks"][:7]'
tok "upper-case hex is accepted" 'p["leaf_hash"] = p["leaf_hash"].upper(); p["path"] = [h.upper() for h in p["path"]]; d["block_hash"] = d["block_hash"].upper()'
tok "digest without the informative time and genesis_hash verifies" 'del d["time"]; del d["genesis_hash"]'
tok "unknown extra fields are ignored" 'p["comment"] = "x"; d["note"] = 1'
tok "control characters in names are escaped to keep one line" \
	'p["channel"] = "cu\"s\nt"; relink(); d["channel"] = p["channel"]; d["block_hash"] = block_at(9)["hash"]'
# the digest hash changed with the channel, so compare only the prefix
if [ "${out#ok: entry 17 of table \"public.declarations\" is in block 3 of channel \"cu\\\"s\\x0at\"}" != "$out" ]; then
	pass "escaped channel name is printed between quotes"
else
	fail "escaped channel name is printed between quotes" "$out"
fi

# ---- usage and input errors ---------------------------------------------
expect_fail "no arguments is a usage error" "usage: loopledger_verify PROOF.json DIGEST.json"
expect_fail "one argument is a usage error" "usage:" "$P"
expect_fail "three arguments is a usage error" "usage:" "$P" "$D" "$D"
expect_fail "missing proof file" "cannot read proof file \"$W/nope.json\": No such file" "$W/nope.json" "$D"
expect_fail "missing digest file" "cannot read digest file" "$P" "$W/nope.json"
expect_fail "proof path is a directory" "cannot read proof file" "$W" "$D"
printf '{"version": 1, "channel": ' >"$W/trunc.json"
expect_fail "truncated proof JSON" "proof file \"$W/trunc.json\" is not valid JSON" "$W/trunc.json" "$D"
expect_fail "truncated digest JSON" "digest file \"$W/trunc.json\" is not valid JSON" "$P" "$W/trunc.json"
: >"$W/empty.json"
expect_fail "empty proof file" "is not valid JSON" "$W/empty.json" "$D"
printf '{"version": 1, "version": 1}' >"$W/dup.json"
expect_fail "duplicate keys are rejected" "duplicate object key" "$P" "$W/dup.json"
printf '[1, 2]' >"$W/arr.json"
expect_fail "proof that is not an object" "proof file \"$W/arr.json\" is not a JSON object" "$W/arr.json" "$D"
sed 's/"entry": 17/"entry": 18446744073709551616/' "$P" >"$W/big.json"
expect_fail "integer beyond 64 bits is rejected" "too big integer" "$W/big.json" "$D"

# ---- version ------------------------------------------------------------
tfail "proof version 2" "proof version 2 is not supported (expected 1)" 'p["version"] = 2'
tfail "digest version 0" "digest version 0 is not supported (expected 1)" 'd["version"] = 0'
tfail "version as a string" 'proof: field "version" must be an integer' 'p["version"] = "1"'

# ---- missing fields -----------------------------------------------------
for k in version channel entry table tier salt columns leaf_hash height position tree_size path blocks; do
	tfail "proof without $k" "proof: missing field \"$k\"" "del p[\"$k\"]"
done
for k in height prev_hash merkle_root time_us tx_count row_count config_hash hash; do
	tfail "block without $k" "proof blocks[1]: missing field \"$k\"" "del p[\"blocks\"][1][\"$k\"]"
done
tfail "column without name" 'proof columns[0]: missing field "name"' 'del p["columns"][0]["name"]'
tfail "column without value (null must be explicit)" 'proof columns[1]: missing field "value"' 'del p["columns"][1]["value"]'
for k in version channel height block_hash; do
	tfail "digest without $k" "digest: missing field \"$k\"" "del d[\"$k\"]"
done

# ---- wrong types and ranges ---------------------------------------------
tfail "entry as a string" 'field "entry" must be a non-negative integer' 'p["entry"] = "17"'
tfail "entry negative" 'field "entry" must be a non-negative integer, not -1' 'p["entry"] = -1'
tfail "entry as a real" 'field "entry" must be a non-negative integer' 'p["entry"] = 17.0'
tfail "entry as a boolean" 'field "entry" must be a non-negative integer' 'p["entry"] = True'
tfail "height null" 'field "height" must be a non-negative integer' 'p["height"] = None'
tfail "tree_size beyond u32" 'field "tree_size" value 4294967296 is out of range' 'p["tree_size"] = 2**32'
tfail "position beyond u32" 'field "position" value 4294967296 is out of range' 'p["position"] = 2**32'
tfail "row_count beyond u32" 'proof blocks[0]: field "row_count" value 4294967296 is out of range' 'p["blocks"][0]["row_count"] = 2**32'
tfail "tx_count negative" 'proof blocks[2]: field "tx_count" must be a non-negative integer' 'p["blocks"][2]["tx_count"] = -1'
tfail "time_us negative" 'field "time_us" must be a non-negative integer' 'p["blocks"][0]["time_us"] = -5'
tfail "channel not a string" 'proof: field "channel" must be a string' 'p["channel"] = 5'
tfail "table null" 'proof: field "table" must be a string' 'p["table"] = None'
tfail "tier an array" 'proof: field "tier" must be a string' 'p["tier"] = []'
tfail "salt too short" 'proof: field "salt" must be 32 hex digits' 'p["salt"] = p["salt"][:30]'
tfail "salt not hex" 'proof: field "salt" must be 32 hex digits' 'p["salt"] = "zz" + p["salt"][2:]'
tfail "leaf_hash 63 digits" 'proof: field "leaf_hash" must be 64 hex digits' 'p["leaf_hash"] = p["leaf_hash"][:63]'
tfail "columns an object" 'proof: field "columns" must be an array' 'p["columns"] = {}'
tfail "column not an object" 'proof columns[2] must be an object' 'p["columns"][2] = "descr"'
tfail "column value a number" 'proof columns[0]: field "value" must be a string or null' 'p["columns"][0]["value"] = 17'
tfail "column name null" 'proof columns[0]: field "name" must be a string' 'p["columns"][0]["name"] = None'
tfail "path a string" 'proof: field "path" must be an array' 'p["path"] = p["path"][0]'
tfail "path element not hex" 'proof: path[1] must be a string of 64 hex digits' 'p["path"][1] = "g" + p["path"][1][1:]'
tfail "path element a number" 'proof: path[0] must be a string of 64 hex digits' 'p["path"][0] = 1'
tfail "path longer than any block tree" 'more than any tree of a block can need' 'p["path"] = p["path"] * 11'
tfail "blocks empty" 'proof: field "blocks" is empty' 'p["blocks"] = []'
tfail "blocks an object" 'proof: field "blocks" must be an array' 'p["blocks"] = p["blocks"][0]'
tfail "block not an object" 'proof blocks[1] must be an object' 'p["blocks"][1] = 4'
tfail "block hash not hex" 'proof blocks[3]: field "hash" must be 64 hex digits' 'p["blocks"][3]["hash"] = "00"'
tfail "digest height a string" 'digest: field "height" must be a non-negative integer' 'd["height"] = "9"'
tfail "digest block_hash short" 'digest: field "block_hash" must be 64 hex digits' 'd["block_hash"] = d["block_hash"][:62]'
tfail "digest channel null" 'digest: field "channel" must be a string' 'd["channel"] = None'
tfail "digest time a number" 'digest: field "time" must be a string' 'd["time"] = 1764000000'
tfail "digest genesis_hash not hex" 'digest: field "genesis_hash" must be 64 hex digits' 'd["genesis_hash"] = "xyz"'

# ---- row content vs commitment ------------------------------------------
R="row content does not match its commitment"
tfail "column value changed" "$R" 'p["columns"][0]["value"] = "18"'
tfail "NULL turned into empty string" "$R" 'p["columns"][1]["value"] = ""'
tfail "empty string turned into NULL" "$R" 'p["columns"][3]["value"] = None'
tfail "column renamed" "$R" 'p["columns"][2]["name"] = "description"'
tfail "columns reordered" "$R" 'p["columns"].reverse()'
tfail "column dropped" "$R" 'del p["columns"][3]'
tfail "column added" "$R" 'p["columns"].append({"name": "extra", "value": None})'
tfail "unicode normalisation changed" "$R" 'p["columns"][2]["value"] = p["columns"][2]["value"].replace("\u00e4", "a\u0308")'
tfail "entry id changed" "$R" 'p["entry"] = 18'
tfail "table changed" "$R" 'p["table"] = "public.other"'
tfail "tier changed" "$R" 'p["tier"] = "public"'
tfail "salt changed" "$R" 'p["salt"] = flip(p["salt"], 31)'
tfail "leaf_hash changed" "$R" 'p["leaf_hash"] = flip(p["leaf_hash"])'

# ---- Merkle inclusion ---------------------------------------------------
tfail "proof height differs from its first block" \
	"proof height 4 does not match its first block (height 3)" 'p["height"] = 4'
tfail "tree_size differs from the block's row_count" \
	"tree_size 6 does not match row_count 5 of block 3" 'p["tree_size"] = 6'
tfail "position equal to tree_size" "position 5 is outside block 3's 5 rows" 'p["position"] = 5'
M="Merkle path does not prove leaf_hash at position"
tfail "another position" "$M 1 of 5 under the merkle_root of block 3" 'p["position"] = 1'
tfail "last position" "$M 4 of 5" 'p["position"] = 4'
tfail "path element flipped" "$M" 'p["path"][2] = flip(p["path"][2], 63)'
tfail "path truncated" "$M" 'p["path"].pop()'
tfail "path extended" "$M" 'p["path"].append(p["path"][0])'
tfail "path reversed" "$M" 'p["path"].reverse()'
tfail "path empty" "$M" 'p["path"] = []'
tfail "merkle_root replaced in a re-hashed, re-linked chain" "$M" \
	'p["blocks"][0]["merkle_root"] = flip(p["blocks"][0]["merkle_root"]); relink()'
tfail "tree size and row_count shrunk together, chain re-hashed" "$M 2 of 3" \
	'p["tree_size"] = 3; p["blocks"][0]["row_count"] = 3; relink()'

# ---- block headers and links --------------------------------------------
B="header does not hash to its recorded hash"
tfail "time_us of a later block changed" "block 4 $B" 'p["blocks"][1]["time_us"] += 1'
tfail "recorded hash of the row's block changed" "block 3 $B" 'p["blocks"][0]["hash"] = flip(p["blocks"][0]["hash"])'
tfail "tx_count changed" "block 5 $B" 'p["blocks"][2]["tx_count"] += 1'
tfail "config_hash changed" "block 6 $B" 'p["blocks"][3]["config_hash"] = flip(p["blocks"][3]["config_hash"], 5)'
tfail "row_count of the last block changed" "block 11 $B" 'p["blocks"][-1]["row_count"] += 1'
tfail "prev_hash of the first block changed" "block 3 $B" 'p["blocks"][0]["prev_hash"] = flip(p["blocks"][0]["prev_hash"])'
tfail "proof channel changed" "block 3 $B" 'p["channel"] = "other"; d["channel"] = "other"'
tfail "block removed from the middle" "blocks are not consecutive: height 6 follows height 4" 'del p["blocks"][2]'
tfail "height changed and block re-hashed" "blocks are not consecutive: height 6 follows height 4" \
	'p["blocks"][2]["height"] = 6; rehash(2)'
tfail "block duplicated" "blocks are not consecutive: height 4 follows height 4" \
	'p["blocks"].insert(2, dict(p["blocks"][1]))'
tfail "blocks swapped" "blocks are not consecutive: height 5 follows height 3" \
	'p["blocks"][1], p["blocks"][2] = p["blocks"][2], p["blocks"][1]'
tfail "prev_hash changed and block re-hashed" "block 5 prev_hash does not link to the hash of block 4" \
	'p["blocks"][2]["prev_hash"] = flip(p["blocks"][2]["prev_hash"]); rehash(2)'

# ---- digest -------------------------------------------------------------
tfail "digest for another channel" 'digest is for channel "other" but the proof is for channel "customs"' \
	'd["channel"] = "other"'
tfail "digest older than the row's block" "digest height 2 is older than the row's block 3" 'd["height"] = 2'
tfail "digest newer than the proof" \
	"digest height 12 is newer than this proof (up to 11): request a proof up to height 12" 'd["height"] = 12'
tfail "proof cut before the digest height" \
	"digest height 9 is newer than this proof (up to 8): request a proof up to height 9" 'p["blocks"] = p["blocks"][:6]'
tfail "digest block_hash flipped" "block 9 hash" 'd["block_hash"] = flip(d["block_hash"], 40)'
tfail "digest height moved within the proof" "differs from the digest's block_hash" 'd["height"] = 10'
FORGE='p["columns"][0]["value"] = "99"; p["leaf_hash"] = leaf()
p["blocks"][0]["merkle_root"] = root_from_path(); relink()'
tfail "self-consistent forged chain is caught by the digest" \
	"block 9 hash" "$FORGE"
tok "the same forgery passes only against a digest of the forged chain" \
	"$FORGE
d['block_hash'] = block_at(9)['hash']"

echo "1..$n"
if [ "$nfailed" -ne 0 ]; then
	echo "# $nfailed of $n tests failed"
	exit 1
fi
exit 0
