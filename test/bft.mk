# test/bft.mk -- BFT consensus core: unit tests, simulator, fuzzing, model
# checking and benchmark.  Included from the top Makefile.  All build
# outputs are test/bft/*.bin (gitignored).
BFT_SRC = src/bft.c src/bft_wire.c src/bft_cert.c src/bft_crypto.c
BFT_DEPS = $(BFT_SRC) src/bft.h test/bft/fakecrypto.h
BFT_STRICT = -std=c99 -Wall -Wextra -Werror -Wdeclaration-after-statement -Wmissing-prototypes -Isrc -Itest/bft
BFT_CC ?= $(CC_PLAIN)
BFT_SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# The core itself must compile under the strict flags PGXS will use later.
test/bft/strict.bin: $(BFT_DEPS)
	@for f in $(BFT_SRC); do $(BFT_CC) $(BFT_STRICT) -O2 -c $$f -o /dev/null || exit 1; done
	@touch $@

test/bft/unit.bin: test/bft/test_bft.c $(BFT_DEPS)
	$(BFT_CC) -std=c11 -O1 -g -Wall -Wextra -Werror -Isrc -Itest/bft $(BFT_SAN) -o $@ test/bft/test_bft.c $(BFT_SRC) -lcmocka -lcrypto

bft-unit: test/bft/strict.bin test/bft/unit.bin
	./test/bft/unit.bin

.PHONY: bft-unit
