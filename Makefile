# loopledger — PGXS build.  See README.md for the two top-level commands.
EXTENSION = loopledger
MODULE_big = loopledger
EXTVERSION = 1.0

# Pure C (no PostgreSQL headers): shared with the verifier and unit tests.
CORE_OBJS = src/ll_core.o src/ll_wire.o src/membership_core.o
OBJS = $(CORE_OBJS) \
	src/loopledger.o src/rowcodec.o src/capture.o src/worker.o \
	src/guard.o src/chain.o src/verify.o src/proof.o src/disclosure.o \
	src/bft.o src/bft_wire.o src/bft_cert.o src/bft_crypto.o \
	src/peer.o src/transport.o src/consensus.o src/consensus_state.o src/member_changes.o src/catchup.o src/apply.o src/submit.o \
	src/membership.o src/clearance.o src/redact.o src/resubmit.o src/tabledef.o

DATA = sql/loopledger--$(EXTVERSION).sql
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/loopledger--%.sql,$(wildcard sql/*.sql)))
# Tests run in the database the sealing worker serves (see test/all.sh).
REGRESS_OPTS = --inputdir=. --use-existing

PG_CPPFLAGS = -Isrc -I$(shell $(PG_CONFIG) --includedir)
PG_CFLAGS = -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK += -lcrypto -lpq
# The test build (make LL_FAULT_INJECTION=1) adds Byzantine behaviour for
# the multi-node tests; release builds never contain it.
ifdef LL_FAULT_INJECTION
OBJS += src/fault.o
PG_CPPFLAGS += -DLL_FAULT_INJECTION
endif
EXTRA_CLEAN = loopledger_verify test/unit/*.run test/unit/*.o test/unit/*.bin

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track headers; rebuild every object when a shared one changes.
$(OBJS): src/ll_core.h src/ll_wire.h src/bft.h src/loopledger.h src/chain.h src/consensus.h src/transport.h src/membership.h src/consensus_int.h \
	src/membership_core.h

# ---- targets beside PGXS ------------------------------------------------
CC_PLAIN ?= gcc
PLAIN_CFLAGS = -std=c11 -O2 -g -Wall -Wextra -Werror -Isrc
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

all: loopledger_verify

loopledger_verify: src/ll_verify_cli.c src/ll_core.c src/ll_core.h
	$(CC_PLAIN) $(PLAIN_CFLAGS) -o $@ src/ll_verify_cli.c src/ll_core.c -ljansson -lcrypto

install: install-verify
install-verify: loopledger_verify
	$(INSTALL_PROGRAM) loopledger_verify '$(DESTDIR)$(bindir)/loopledger_verify'

# C unit tests (cmocka) for the pure-C core, under ASan and UBSan.
UNIT_TESTS = $(patsubst test/unit/%.c,test/unit/%.run,$(wildcard test/unit/test_*.c))
UNIT_SRC = src/ll_core.c src/ll_wire.c src/bft_crypto.c src/bft_cert.c src/bft_wire.c src/membership_core.c
test/unit/%.run: test/unit/%.c $(UNIT_SRC) src/ll_core.h src/ll_wire.h src/bft.h src/membership_core.h
	$(CC_PLAIN) $(PLAIN_CFLAGS) $(SAN_FLAGS) -o $@ $< $(UNIT_SRC) -lcmocka -lcrypto -ljansson
# The wire codec must also build under the strict flags of the consensus core.
test/unit/ll_wire.strict.bin: src/ll_wire.c src/ll_wire.h src/ll_core.h src/bft.h
	$(CC_PLAIN) -std=c99 -Wall -Wextra -Werror -Wdeclaration-after-statement -Wmissing-prototypes -Isrc -O2 -c src/ll_wire.c -o $@
unit: test/unit/ll_wire.strict.bin $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; ./$$t; done

# libFuzzer over every peer-message decoder (test/unit/fuzz_wire_peer.c).
# The corpus directory is seeded with valid messages by the target itself.
FUZZ_CC ?= clang
FUZZ_WIRE_DIR = test/unit/fuzz_wire_peer.corpus.bin
test/unit/fuzz_wire_peer.bin: test/unit/fuzz_wire_peer.c src/ll_wire.c src/ll_core.c src/ll_wire.h src/ll_core.h src/bft.h
	$(FUZZ_CC) -std=c11 -g -O1 -Wall -Wextra -Werror -Isrc -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -o $@ test/unit/fuzz_wire_peer.c src/ll_wire.c src/ll_core.c -lcrypto
fuzz-wire-peer: test/unit/fuzz_wire_peer.bin
	@mkdir -p $(FUZZ_WIRE_DIR)
	LL_FUZZ_SEED_DIR=$(FUZZ_WIRE_DIR) ./test/unit/fuzz_wire_peer.bin -max_total_time=20 \
		-print_final_stats=1 -artifact_prefix=test/unit/fuzz_wire_peer. $(FUZZ_WIRE_DIR)

-include test/bft.mk

.PHONY: unit install-verify fuzz-wire-peer
