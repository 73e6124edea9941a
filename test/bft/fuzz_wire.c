/*
 * fuzz_wire.c
 *		libFuzzer target: the strict decoder, its canonical round trip, and
 *		the state machine fed with the same bytes as a peer message.
 *
 * Properties: no crash, no leak, no sanitizer report; anything the decoder
 * accepts re-encodes to exactly the input (one encoding per message).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bft.h"
#include "fakecrypto.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t fz_pk[BFT_PUBKEY_LEN] = {1};

static int
fz_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[BFT_SIG_LEN])
{
	(void) ctx;
	fk_sign(fz_pk, msg, len, sig);
	return 0;
}

static bool
fz_verify(void *ctx, const uint8_t pk[BFT_PUBKEY_LEN], const uint8_t *msg,
		  size_t len, const uint8_t sig[BFT_SIG_LEN])
{
	(void) ctx;
	return fk_verify(pk, msg, len, sig);
}

/* The payload repeated: a value the fuzzer can match to reach further. */
static bool
fz_value_of(void *ctx, const uint8_t *p, size_t len, uint8_t v[BFT_HASH_LEN])
{
	size_t		i;

	(void) ctx;
	if (len == 0)
		return false;
	for (i = 0; i < BFT_HASH_LEN; i++)
		v[i] = p[i % len];
	return true;
}

static bool
fz_validate(void *ctx, uint64_t h, const uint8_t v[BFT_HASH_LEN], const uint8_t *p, size_t len)
{
	(void) ctx;
	(void) h;
	(void) v;
	return len > 0 && p[0] == 'V';
}

static int
fz_persist(void *ctx, const bft_persist *st)
{
	(void) ctx;
	(void) st;
	return 0;
}

static bft_node *node;
static bft_output *out;
static bft_msg msg;
static uint8_t buf[BFT_MAX_MSG];

static void
fz_init(void)
{
	bft_config	cfg;
	bft_start  *st = calloc(1, sizeof(bft_start));
	bft_event	ev;
	int			i;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.self_pubkey, fz_pk, BFT_PUBKEY_LEN);
	cfg.timeout_propose_ms = cfg.timeout_prevote_ms = cfg.timeout_precommit_ms = 100;
	cfg.gossip_ms = 100;
	cfg.cb.sign = fz_sign;
	cfg.cb.verify = fz_verify;
	cfg.cb.value_of = fz_value_of;
	cfg.cb.validate = fz_validate;
	cfg.cb.persist = fz_persist;
	node = bft_init(malloc(bft_node_size()), &cfg);
	out = malloc(sizeof(bft_output));
	st->height = 1;
	st->valset.n = 4;
	for (i = 0; i < 4; i++)
	{
		st->valset.v[i].pubkey[0] = (uint8_t) (i + 1);
		st->valset.v[i].power = 1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_START;
	ev.u.start = st;
	bft_step(node, &ev, out);
	free(st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bft_event	ev;
	size_t		len;

	if (node == NULL)
		fz_init();
	if (bft_decode(data, size, &msg) == BFT_OK)
	{
		if (bft_encode(&msg, buf, sizeof(buf), &len) != BFT_OK ||
			len != size || memcmp(buf, data, size) != 0)
			abort();			/* accepted bytes must be canonical */
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_MSG;
	ev.u.msg.peer = 1;
	ev.u.msg.data = data;
	ev.u.msg.len = size;
	bft_step(node, &ev, out);
	return 0;
}
