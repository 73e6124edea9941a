# test/bft.mk -- BFT consensus core: unit tests, simulator, broken-variant
# checks, fuzzing, model checking and benchmark.  Included from the top
# Makefile.  All build outputs are test/bft/*.bin (gitignored).
#   make bft-test       everything below, fails if any piece fails
#   make bft-sim-long   100,000 simulator seeds
#   make bft-bench      benchmark table (test/bft/bench.sh)
BFT_SRC = src/bft.c src/bft_wire.c src/bft_cert.c src/bft_crypto.c
BFT_DEPS = $(BFT_SRC) src/bft.h test/bft/fakecrypto.h
BFT_STRICT = -std=c99 -Wall -Wextra -Werror -Wdeclaration-after-statement -Wmissing-prototypes -Isrc
BFT_CC ?= $(CC_PLAIN)
BFT_FUZZ_CC ?= clang
BFT_SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
BFT_TESTFLAGS = -std=c11 -g -Wall -Wextra -Werror -Isrc -Itest/bft
BFT_SIM_SRC = test/bft/sim.c $(BFT_SRC)

# The core must compile cleanly under the flags PGXS will use later.
test/bft/strict.bin: $(BFT_DEPS)
	@for f in $(BFT_SRC); do $(BFT_CC) $(BFT_STRICT) -O2 -c $$f -o /dev/null || exit 1; done
	@echo "strict C99 build of $(BFT_SRC): ok"; touch $@

test/bft/unit.bin: test/bft/test_bft.c $(BFT_DEPS)
	$(BFT_CC) $(BFT_TESTFLAGS) -O1 $(BFT_SAN) -o $@ test/bft/test_bft.c $(BFT_SRC) -lcmocka -lcrypto

test/bft/sim.bin: test/bft/sim.c $(BFT_DEPS)
	$(BFT_CC) $(BFT_TESTFLAGS) -O2 -o $@ $(BFT_SIM_SRC) -lcrypto

test/bft/sim-san.bin: test/bft/sim.c $(BFT_DEPS)
	$(BFT_CC) $(BFT_TESTFLAGS) -O1 $(BFT_SAN) -o $@ $(BFT_SIM_SRC) -lcrypto

# Deliberately broken cores, only ever built here.
test/bft/broken-QUORUM.bin: test/bft/sim.c $(BFT_DEPS)
	$(BFT_CC) $(BFT_TESTFLAGS) -O2 -DBFT_BROKEN_QUORUM -o $@ $(BFT_SIM_SRC) -lcrypto

test/bft/broken-NO_LOCK.bin: test/bft/sim.c $(BFT_DEPS)
	$(BFT_CC) $(BFT_TESTFLAGS) -O2 -DBFT_BROKEN_NO_LOCK -o $@ $(BFT_SIM_SRC) -lcrypto

test/bft/fuzz.bin: test/bft/fuzz_wire.c $(BFT_DEPS)
	$(BFT_FUZZ_CC) $(BFT_TESTFLAGS) -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ test/bft/fuzz_wire.c src/bft.c src/bft_wire.c src/bft_cert.c

test/bft/edbench.bin: test/bft/edbench.c src/bft_crypto.c src/bft.h
	$(BFT_CC) $(BFT_TESTFLAGS) -O2 -o $@ test/bft/edbench.c src/bft_crypto.c -lcrypto

BFT_TEST_BINS = test/bft/strict.bin test/bft/unit.bin test/bft/sim.bin test/bft/sim-san.bin \
	test/bft/broken-QUORUM.bin test/bft/broken-NO_LOCK.bin test/bft/fuzz.bin

bft-test: $(BFT_TEST_BINS)
	./test/bft/run-tests.sh

bft-unit: test/bft/strict.bin test/bft/unit.bin
	./test/bft/unit.bin

bft-sim-long: test/bft/sim.bin
	@echo "simulator long mode: 100000 seeds over n = 1,4,7,10 (2 processes)"
	@./test/bft/sim.bin --seeds 1:50000 --nlist 1,4,7,10 > test/bft/long1.log.bin 2>&1 & p1=$$!; \
	./test/bft/sim.bin --seeds 50001:50000 --nlist 1,4,7,10 > test/bft/long2.log.bin 2>&1 & p2=$$!; \
	wait $$p1; r1=$$?; wait $$p2; r2=$$?; \
	grep -h -A1 FAIL test/bft/long1.log.bin test/bft/long2.log.bin | head -40; \
	tail -n1 test/bft/long1.log.bin test/bft/long2.log.bin; \
	if [ $$r1 = 0 ] && [ $$r2 = 0 ]; then echo "bft-sim-long: PASS (100000 seeds)"; \
	else echo "bft-sim-long: FAIL"; exit 1; fi

bft-bench: test/bft/sim.bin test/bft/edbench.bin
	./test/bft/bench.sh

.PHONY: bft-test bft-unit bft-sim-long bft-bench
