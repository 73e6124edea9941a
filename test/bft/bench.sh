#!/bin/bash
# bench.sh -- BFT core benchmark (a script, not a timed test).
# Prints simulated heights per CPU second for n = 4, 7, 10 with fake and
# real Ed25519 signatures, messages and bytes per committed block, Ed25519
# rates in-process beside `openssl speed`, and whether the goals are met.
set -euo pipefail
cd "$(dirname "$0")"
SIM=./sim.bin
ED=./edbench.bin
H_FAKE=${H_FAKE:-20000}
H_REAL=${H_REAL:-300}

echo "== Ed25519 on this CPU"
read -r _ s v _ < <($ED)
SIGN=${s#sign_per_s=}; VERIFY=${v#verify_per_s=}
OSSL=$(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/^ *253 bits EdDSA/ {print $(NF-1), $NF}')
OSIGN=${OSSL% *}; OVERIFY=${OSSL#* }
printf "%-34s %12s %12s\n" "" "sign/s" "verify/s"
printf "%-34s %12.0f %12.0f\n" "in-process (bft_crypto.c)" "$SIGN" "$VERIFY"
printf "%-34s %12.0f %12.0f\n" "openssl speed -seconds 3 ed25519" "$OSIGN" "$OVERIFY"
echo
echo "== simulated consensus (no faults, delays 1-10 ms, all nodes in one process)"
printf "%-4s %-8s %8s %12s %10s %11s %8s %8s %12s %s\n" n crypto heights heights/s msgs/blk bytes/blk sign/h verify/h sig-bound/s ratio
fail=0
for n in 4 7 10; do
	for mode in fake real; do
		if [ $mode = fake ]; then out=$($SIM --bench $H_FAKE --n $n); else out=$($SIM --bench $H_REAL --n $n --real); fi
		get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$out"; }
		hps=$(get heights_per_s); hs=$(get heights); mpb=$(get msgs_per_block); bpb=$(get bytes_per_block)
		sph=$(get signs_per_height); vph=$(get verifies_per_height)
		# pure signature cost per height on this CPU, all nodes together
		bound=$(awk -v s=$sph -v v=$vph -v S=$SIGN -v V=$VERIFY 'BEGIN{printf "%.1f", 1/(s/S + v/V)}')
		ratio=$(awk -v h=$hps -v b=$bound 'BEGIN{printf "%.2f", h/b}')
		if [ $mode = fake ]; then ratio="-"; fi	# only meaningful with real signatures
		printf "%-4s %-8s %8s %12s %10s %11s %8s %8s %12s %s\n" $n $mode $hs $hps $mpb $bpb $sph $vph $bound "$ratio"
		if [ $n = 4 ] && [ $mode = fake ]; then FAKE4=$hps; fi
		if [ $mode = real ]; then
			ok=$(awk -v r=$ratio 'BEGIN{print (r >= 0.5) ? "yes" : "no"}')
			REAL_OK="${REAL_OK:-}n=$n:$ok "
		fi
	done
done
echo
g1=$(awk -v h=$FAKE4 'BEGIN{print (h >= 20000) ? "MET" : "NOT MET"}')
echo "goal: >= 20000 heights/s for n=4 with fake signatures: $FAKE4 -> $g1"
echo "goal: real Ed25519 within 2x of pure signature cost (ratio >= 0.5): $REAL_OK"
echo "(ratio = heights/s divided by 1/(signs/height / sign_rate + verifies/height / verify_rate);"
echo " signs and verifies are counted over all simulated nodes, since one CPU runs them all)"
