#!/bin/bash
# run-tests.sh -- every check of `make bft-test`; binaries are built by
# test/bft.mk first.  Prints one PASS/FAIL line per piece and fails if any
# piece fails.
cd "$(dirname "$0")"
SEEDS=${BFT_CI_SEEDS:-2000}		# per core; two cores run in parallel
FUZZ_TIME=${BFT_FUZZ_TIME:-30}
declare -a RESULTS
fails=0
t_start=$(date +%s)

result() {
	RESULTS+=("$(printf '%-6s %-22s %s' "$1" "$2" "$3")")
	[ "$1" = PASS ] || fails=$((fails + 1))
}

echo "== unit tests (cmocka, ASan+UBSan)"
if out=$(./unit.bin 2>&1); then
	result PASS unit "$(grep -o '[0-9]* test(s) run' <<<"$out" | head -1)"
else
	echo "$out"; result FAIL unit "see above"
fi

echo "== simulator CI mode: $((2 * SEEDS)) seeds over n = 1,4,7,10 (-O2, 2 processes)"
t0=$(date +%s.%N)
./sim.bin --seeds 1:$SEEDS --nlist 1,4,7,10 > sim1.log.bin 2>&1 & p1=$!
./sim.bin --seeds $((SEEDS + 1)):$SEEDS --nlist 1,4,7,10 > sim2.log.bin 2>&1 & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
t1=$(date +%s.%N)
cat sim1.log.bin sim2.log.bin | grep -v '^  rerun' | tail -6
wall=$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}')
if [ $r1 = 0 ] && [ $r2 = 0 ]; then
	result PASS simulator "$((2 * SEEDS)) seeds, 0 violations, wall ${wall}s"
else
	grep FAIL sim1.log.bin sim2.log.bin | head; result FAIL simulator "violations (seeds printed above), wall ${wall}s"
fi

echo "== simulator under ASan+UBSan: 200 seeds"
if out=$(./sim-san.bin --seeds 1:200 --nlist 1,4,7,10 2>&1); then
	result PASS simulator-sanitized "$(tail -1 <<<"$out")"
else
	echo "$out" | tail -20; result FAIL simulator-sanitized "see above"
fi

echo "== reproducibility: same seed twice, identical trace"
./sim.bin --seed 7 --n 4 --trace > trace1.log.bin 2>&1
./sim.bin --seed 7 --n 4 --trace > trace2.log.bin 2>&1
# the final summary line reports CPU time, which is not part of the trace
h1=$(grep -v '^sim: ' trace1.log.bin | sha256sum | cut -c1-16); h2=$(grep -v '^sim: ' trace2.log.bin | sha256sum | cut -c1-16)
th=$(grep -o 'trace-hash [0-9a-f]*' trace1.log.bin)
if [ "$h1" = "$h2" ] && [ -n "$th" ] && [ "$(wc -l < trace1.log.bin)" -gt 100 ]; then
	result PASS reproducible "seed 7: $(wc -l < trace1.log.bin) trace lines, sha256 $h1 twice, $th"
else
	result FAIL reproducible "traces differ ($h1 vs $h2)"
fi

for v in QUORUM NO_LOCK; do
	echo "== broken variant BFT_BROKEN_$v must be caught within the CI seeds"
	if out=$(./broken-$v.bin --seeds 1:$((2 * SEEDS)) --nlist 1,4,7,10 --expect-violation --quiet); then
		result PASS "broken-$v" "$out"
	else
		result FAIL "broken-$v" "$out"
	fi
done

echo "== libFuzzer on the decoder and message intake (${FUZZ_TIME}s)"
rm -rf fuzzwork.bin && mkdir fuzzwork.bin && cp corpus/* fuzzwork.bin/
if ./fuzz.bin -max_total_time=$FUZZ_TIME -print_final_stats=1 -artifact_prefix=fuzzwork.bin/ fuzzwork.bin > fuzz.log.bin 2>&1; then
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' fuzz.log.bin | grep -o '[0-9]*$')
	result PASS fuzz "$runs executions, no crash/leak/sanitizer report"
else
	tail -30 fuzz.log.bin; result FAIL fuzz "crash (see above; reproducer in test/bft/fuzzwork.bin/)"
fi

echo "== spin: agreement of the voting/locking model (n=4, f=1 Byzantine, 2 rounds, exhaustive)"
rm -rf spinwork.bin && mkdir spinwork.bin && cd spinwork.bin
spin -DMAXR=2 -a ../bft.pml > /dev/null && gcc -O2 -w -DSAFETY -DCOLLAPSE -o pan pan.c &&
	./pan -E -m100000 > pan.log 2>&1
if grep -q 'errors: 0' pan.log && ! grep -q 'assertion violated' pan.log; then
	result PASS spin "$(grep -o '[0-9]* states, stored' pan.log), errors: 0"
else
	cat pan.log | head -20; result FAIL spin "model violates agreement"
fi
spin -DMAXR=2 -DBROKEN_QUORUM -a ../bft.pml > /dev/null && gcc -O2 -w -DSAFETY -o panb pan.c &&
	./panb -E -m100000 > panb.log 2>&1
if grep -q 'assertion violated' panb.log; then
	result PASS spin-broken-quorum "f+1 quorum model: violation found as expected"
else
	result FAIL spin-broken-quorum "spin did not catch the broken model"
fi
cd ..

echo
echo "==== bft-test summary ($(( $(date +%s) - t_start ))s) ===="
printf '%s\n' "${RESULTS[@]}"
if [ $fails -ne 0 ]; then echo "bft-test: $fails FAILED"; exit 1; fi
echo "bft-test: all passed"
