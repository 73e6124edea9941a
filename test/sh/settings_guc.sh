#!/usr/bin/env bash
# Settings: loopledger.synchronous_commit on/off (per session and per
# transaction), block_interval and block_max_rows (changed with ALTER SYSTEM
# and restored), and client encodings other than UTF8 sending non-ASCII
# text: the canonical texts are the same.  TAP output.
set -u
S=$$
C=tapguc_$S
T=${C}_t
WORK=$(mktemp -d)

source "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"
restore_settings() {
	q -c "ALTER SYSTEM RESET loopledger.block_interval" -c "ALTER SYSTEM RESET loopledger.block_max_rows" -c "SELECT pg_reload_conf()" >/dev/null 2>&1
}
trap 'restore_settings; rm -rf "$WORK"' EXIT
status() { q -c "SELECT h.status FROM ledger.history('$T') h JOIN $T t ON t.ledger_entry = h.entry WHERE t.id = $1"; }
ms() { date +%s%3N; }

orig="$(q -c "SHOW loopledger.block_max_rows")|$(q -c "SHOW loopledger.block_interval")"
q -c "SELECT ledger.create_channel('$C'); CREATE TABLE $T (id int, v text); SELECT ledger.enable_table('$T', '$C');" >/dev/null
ok $? "setup"
is "$(q -c "SHOW loopledger.synchronous_commit")" on "loopledger.synchronous_commit defaults to on"
psql -X -q -c "SET loopledger.synchronous_commit = maybe" >/dev/null 2>&1
ok $([ $? != 0 ]; echo $?) "an invalid value is refused"

# ------------------------------------------------ synchronous commit on
bad=0
for i in $(seq 1 20); do
	q -c "INSERT INTO $T VALUES ($i, 'sync')" >/dev/null || bad=$((bad + 1))
	[ "$(status $i)" = sealed ] || bad=$((bad + 1))
done
is $bad 0 "on: 20 times, a new session sees the row sealed right after COMMIT returned"
q -c "BEGIN" -c "INSERT INTO $T VALUES (21, 'tx')" -c "INSERT INTO $T VALUES (22, 'tx')" -c "COMMIT" >/dev/null
is "$(status 21)$(status 22)" sealedsealed "on: a multi-statement transaction is sealed at COMMIT"

# ------------------------------------------------ slow interval: async stays pending
q -c "ALTER SYSTEM SET loopledger.block_interval = '4s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1   # let the worker finish the round it may be waiting in
q -c "SELECT ledger.wait_sealed()" >/dev/null
t0=$(ms)
q -c "INSERT INTO $T VALUES (30, 'sync, slow interval')" >/dev/null
t1=$(ms)
is "$(status 30)" sealed "on, 4 s block interval: sealed at COMMIT"
ok $([ $((t1 - t0)) -lt 2000 ]; echo $?) "on: a waiting committer does not wait for the block interval ($((t1 - t0)) ms)"

PGOPTIONS="-c loopledger.synchronous_commit=off" q -c "INSERT INTO $T VALUES (31, 'async')" >/dev/null
is "$(status 31)" pending "off: the row is pending right after COMMIT (new session)"
q -c "SET loopledger.synchronous_commit = off" -c "INSERT INTO $T VALUES (32, 'async')" >/dev/null
is "$(status 32)" pending "off via SET: pending right after COMMIT"
q -c "BEGIN" -c "SET LOCAL loopledger.synchronous_commit = off" -c "INSERT INTO $T VALUES (33, 'async local')" -c "COMMIT" >/dev/null
is "$(status 33)" pending "off via SET LOCAL: pending right after COMMIT"
is "$(q -c "SELECT count(*) FROM ledger.pending p JOIN ledger.channel c USING (channel_id) WHERE c.name = '$C'")" 3 \
	"off: three transactions wait in ledger.pending"
is "$(q -c "SELECT ledger.wait_sealed()")" t "wait_sealed() returns true"
is "$(status 31)$(status 32)$(status 33)" sealedsealedsealed "after wait_sealed() the rows are sealed"
is "$(q -c "SELECT count(*) FROM ledger.pending p JOIN ledger.channel c USING (channel_id) WHERE c.name = '$C'")" 0 \
	"ledger.pending is empty again"
q -c "BEGIN" -c "SET LOCAL loopledger.synchronous_commit = off" -c "COMMIT" -c "INSERT INTO $T VALUES (34, 'sync again')" >/dev/null
is "$(status 34)" sealed "SET LOCAL ends with its transaction: the next COMMIT is synchronous"

# ------------------------------------------------ block_max_rows
q -c "ALTER SYSTEM SET loopledger.block_max_rows = 5" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
for i in 40 42 44; do
	PGOPTIONS="-c loopledger.synchronous_commit=off" q -c "INSERT INTO $T VALUES ($i, 'max rows'), ($((i + 1)), 'max rows')" >/dev/null
done
sleep 1.5
is "$(status 40)$(status 44)" sealedsealed "block_max_rows = 5: six waiting rows are sealed before the 4 s interval"
PGOPTIONS="-c loopledger.synchronous_commit=off" q -c "INSERT INTO $T SELECT g, 'big' FROM generate_series(100, 111) g" >/dev/null
q -c "SELECT ledger.wait_sealed()" >/dev/null
is "$(q -c "SELECT count(DISTINCT h.block_height) || ' ' || count(*) FROM ledger.history('$T') h JOIN $T t ON t.ledger_entry = h.entry WHERE t.id BETWEEN 100 AND 111")" "1 12" \
	"a 12-row transaction is not split although block_max_rows = 5"
restore_settings
sleep 0.2
is "$(q -c "SHOW loopledger.block_max_rows")|$(q -c "SHOW loopledger.block_interval")" "$orig" "settings restored"

# ------------------------------------------------ client encodings
q -c "CREATE TABLE ${T}_enc (k text, v text); SELECT ledger.enable_table('${T}_enc', '$C');" >/dev/null
texts() { q -c "SELECT c->>'value' FROM jsonb_array_elements(ledger.proof('$C', (SELECT ledger_entry FROM ${T}_enc WHERE k = '$1'))->'columns') c WHERE c->>'name' = 'v'"; }
ins_enc() { # key encoding text(utf-8) -> insert with the text converted to that client encoding
	{ printf "INSERT INTO %s_enc VALUES ('%s', '" "$T" "$1"; printf '%s' "$3" | iconv -f UTF-8 -t "$4"; printf "');\n"; } |
		PGCLIENTENCODING=$2 psql -X -q -v ON_ERROR_STOP=1 >/dev/null
}
for case in "latin1|LATIN1|ISO-8859-1|Zürich, Ærøskøbing" "win1251|WIN1251|CP1251|Привет, мир" "sjis|SJIS|SHIFT_JIS|東京都" \
	"euc_jp|EUC_JP|EUC-JP|東京" "utf8_emoji|UTF8|UTF-8|🚢 ship"; do
	IFS='|' read -r key pgenc iconvenc text <<<"$case"
	ins_enc "$key" "$pgenc" "$text" "$iconvenc"
	ok $? "$key: INSERT sent in client encoding $pgenc"
	ins_enc "${key}_utf8" UTF8 "$text" UTF-8
	is "$(texts "$key")" "$text" "$key: canonical text is the UTF-8 string"
	is "$(texts "$key")" "$(texts "${key}_utf8")" "$key: same canonical text as when sent as UTF8"
	is "$(PGCLIENTENCODING=$pgenc psql -X -Atq -c "SELECT ledger.proof('$C', (SELECT ledger_entry FROM ${T}_enc WHERE k = '$key'))->'columns'->1->>'value'" | iconv -f "$iconvenc" -t UTF-8)" \
		"$text" "$key: the proof read back in $pgenc converts to the same text"
done

is "$(q -c "SELECT count(*) FROM ledger.verify('$C')")" 0 "$C verifies clean"
echo "1..$n"
[ $failed = 0 ]
