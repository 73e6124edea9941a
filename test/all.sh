#!/usr/bin/env bash
# Run every loopledger test from a fresh Debian 12 machine:
#   bash test/all.sh
# Installs missing packages, builds with -Werror, runs the C unit tests
# under ASan/UBSan, the consensus simulator, then starts a throwaway
# PostgreSQL cluster (as a non-root user) with loopledger preloaded and runs
# pg_regress, pgTAP and the shell-level tests against it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/test/lib.sh"

PORT=${LOOPLEDGER_TEST_PORT:-25440}
failures=()
step() {
	local name=$1
	shift
	say "$name"
	if "$@"; then echo "PASS: $name"; else echo "FAIL: $name"; failures+=("$name"); fi
}

ensure_packages
build_and_install

step "C unit tests (cmocka, ASan+UBSan)" make -C "$ROOT" -s unit
step "offline verifier tests" bash "$ROOT/test/unit/test_verify_cli.sh"
step "peer message decoders under libFuzzer (20 s)" make -C "$ROOT" -s fuzz-wire-peer
if [ -f "$ROOT/test/bft.mk" ]; then
	step "consensus core: unit, simulator, broken variants, fuzz, model check" make -C "$ROOT" -s bft-test
fi

say "starting a throwaway cluster on port $PORT"
trap 'stop_cluster check' EXIT
start_cluster check "$PORT" "loopledger.block_interval = 20ms"
export PGHOST="$TMP/check" PGPORT="$PORT" PGUSER=postgres PGDATABASE=ledger
psql -X -qc "CREATE EXTENSION loopledger; CREATE EXTENSION pgtap;" >/dev/null

regress() {
	# pg_regress writes results/ next to the sources; keep that writable
	make -C "$ROOT" -s installcheck PG_CONFIG=$PG_BIN/pg_config CONTRIB_TESTDB=ledger || {
		cat "$ROOT/regression.diffs" 2>/dev/null | head -200
		return 1
	}
}
step "pg_regress (sql/, expected/)" regress
step "pgTAP (test/pgtap)" pg_prove -f "$ROOT"/test/pgtap/*.sql
if compgen -G "$ROOT/test/sh/*.sh" >/dev/null; then
	step "shell-level tests (test/sh)" prove -f --exec bash "$ROOT"/test/sh/*.sh
fi

if [ ${#failures[@]} -gt 0 ]; then
	say "FAILED: ${failures[*]}"
	tail -50 "$TMP/check/server.log" || true
	exit 1
fi
say "all tests passed"
