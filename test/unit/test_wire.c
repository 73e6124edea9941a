/*
 * test_wire.c
 *		cmocka tests for the peer message codec (src/ll_wire.c), with real
 *		Ed25519 signatures from src/bft_crypto.c.
 *
 * The known-answer encodings are written out byte by byte below from the
 * formats in ll_wire.h, and their SHA-256 digests were computed with
 * Python's hashlib over those same hex strings, not by this code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bft.h"
#include "ll_wire.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static int
nib(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	fail_msg("bad hex literal in test: %c", c);
	return 0;
}

/* Decode a lower-case hex literal into a malloc'd buffer. */
static uint8_t *
unhex(const char *hex, size_t *len)
{
	size_t		n = strlen(hex) / 2;
	uint8_t    *out = malloc(n + 1);
	size_t		i;

	assert_int_equal(strlen(hex) % 2, 0);
	assert_non_null(out);
	for (i = 0; i < n; i++)
		out[i] = (uint8_t) (nib(hex[2 * i]) << 4 | nib(hex[2 * i + 1]));
	*len = n;
	return out;
}

static void
assert_hash_hex(const uint8_t *got, const char *expect_hex)
{
	char		hex[2 * LL_HASH_LEN + 1];

	ll_hex_encode(got, LL_HASH_LEN, hex);
	assert_string_equal(hex, expect_hex);
}

static void *
std_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static size_t alloc_budget;

static void *
budget_realloc(void *p, size_t n)
{
	return n > alloc_budget ? NULL : realloc(p, n);
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t) (v >> 24);
	p[1] = (uint8_t) (v >> 16);
	p[2] = (uint8_t) (v >> 8);
	p[3] = (uint8_t) v;
}

static ll_wire_str
S(const char *s)
{
	ll_wire_str r = {s, strlen(s)};

	return r;
}

static bool
verify_always(void *ctx, const uint8_t pub[LL_PUBKEY_LEN], const uint8_t *msg,
			  size_t len, const uint8_t sig[LL_SIG_LEN])
{
	(void) ctx;
	(void) pub;
	(void) msg;
	(void) len;
	(void) sig;
	return true;
}

static int
sign_fails(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[LL_SIG_LEN])
{
	(void) ctx;
	(void) msg;
	(void) len;
	memset(sig, 0, LL_SIG_LEN);
	return -1;
}

/* ------------------------------------------------------------------ */
/* genesis                                                             */

static const uint8_t pk1[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t pk2[32] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};

/* channel "cust", tiers pub, sec; members al (0x01..., sec), bob (0x02..., pub) */
static const char genesis_hex[] =
	"4c4c4731"					/* "LLG1" */
	"00000004" "63757374"		/* "cust" */
	"00000002"					/* 2 tiers */
	"00000003" "707562"			/* "pub" */
	"00000003" "736563"			/* "sec" */
	"00000002"					/* 2 members, ascending pubkey */
	"0101010101010101010101010101010101010101010101010101010101010101"
	"00000002" "616c"			/* "al" */
	"00000003" "736563"			/* "sec" */
	"0202020202020202020202020202020202020202020202020202020202020202"
	"00000003" "626f62"			/* "bob" */
	"00000003" "707562";		/* "pub" */
static const char genesis_sha[] =
	"a0745894659cdeeceba39059f16e77e13e97feacd6a4d43271b33d98725fd05c";

static const ll_wire_str tiers2[2] = {{"pub", 3}, {"sec", 3}};

/* The two members of the vector, given out of order. */
static void
genesis_members(ll_member m[2])
{
	m[0].pubkey = pk2;
	m[0].name = S("bob");
	m[0].tier = S("pub");
	m[1].pubkey = pk1;
	m[1].name = S("al");
	m[1].tier = S("sec");
}

static void
test_genesis_known_bytes(void **state)
{
	ll_buf		buf;
	ll_member	m[2];
	uint8_t    *expect;
	size_t		len;
	uint8_t		h[LL_HASH_LEN];

	(void) state;
	expect = unhex(genesis_hex, &len);
	assert_int_equal(len, 125);
	genesis_members(m);
	ll_buf_init(&buf, std_realloc);
	assert_int_equal(ll_genesis_encode(&buf, S("cust"), tiers2, 2, m, 2), LL_WIRE_OK);
	assert_int_equal(buf.len, len);
	assert_memory_equal(buf.data, expect, len);
	assert_int_equal(ll_genesis_hash(buf.data, buf.len, h), LL_WIRE_OK);
	assert_hash_hex(h, genesis_sha);
	free(expect);
	free(buf.data);
}

static void
test_genesis_decode_iterate(void **state)
{
	uint8_t    *in;
	size_t		len;
	ll_genesis	g;
	ll_genesis_iter it;
	ll_wire_str t;
	ll_member	m;
	ll_member	again[2];
	ll_wire_str tiers[2];
	ll_buf		buf;
	uint8_t		pk3[32];

	(void) state;
	memset(pk3, 3, 32);
	in = unhex(genesis_hex, &len);
	assert_int_equal(ll_genesis_decode(in, len, &g), LL_WIRE_OK);
	assert_int_equal(g.channel.len, 4);
	assert_memory_equal(g.channel.ptr, "cust", 4);
	assert_int_equal(g.ntiers, 2);
	assert_int_equal(g.nmembers, 2);

	ll_genesis_tiers(&g, &it);
	assert_true(ll_genesis_next_tier(&it, &tiers[0]));
	assert_true(ll_genesis_next_tier(&it, &tiers[1]));
	assert_false(ll_genesis_next_tier(&it, &t));
	assert_memory_equal(tiers[1].ptr, "sec", 3);

	ll_genesis_members(&g, &it);
	assert_true(ll_genesis_next_member(&it, &again[0]));
	assert_true(ll_genesis_next_member(&it, &again[1]));
	assert_false(ll_genesis_next_member(&it, &m));
	assert_memory_equal(again[0].pubkey, pk1, 32);
	assert_int_equal(again[1].name.len, 3);
	assert_memory_equal(again[1].name.ptr, "bob", 3);
	assert_memory_equal(again[1].tier.ptr, "pub", 3);

	assert_int_equal(ll_genesis_tier_index(&g, "pub", 3), 0);
	assert_int_equal(ll_genesis_tier_index(&g, "sec", 3), 1);
	assert_int_equal(ll_genesis_tier_index(&g, "se", 2), -1);
	assert_true(ll_genesis_find_member(&g, pk2, &m));
	assert_memory_equal(m.name.ptr, "bob", 3);
	assert_false(ll_genesis_find_member(&g, pk3, &m));

	/* decoded pieces re-encode to the same bytes */
	ll_buf_init(&buf, std_realloc);
	assert_int_equal(ll_genesis_encode(&buf, g.channel, tiers, 2, again, 2), LL_WIRE_OK);
	assert_int_equal(buf.len, len);
	assert_memory_equal(buf.data, in, len);
	free(buf.data);
	free(in);
}

/* Encoding must fail with want and leave the buffer as it was. */
static void
expect_genesis_encode(int want, ll_wire_str channel, const ll_wire_str *tiers,
					  uint32_t ntiers, const ll_member *m, uint32_t n)
{
	ll_buf		buf;

	ll_buf_init(&buf, std_realloc);
	ll_buf_put(&buf, "xy", 2);
	assert_int_equal(ll_genesis_encode(&buf, channel, tiers, ntiers, m, n), want);
	assert_int_equal(buf.len, 2);
	free(buf.data);
}

static void
test_genesis_encode_rejects(void **state)
{
	ll_member	m[2];
	const ll_wire_str dup_tiers[2] = {{"pub", 3}, {"pub", 3}};
	char		longname[LL_WIRE_MAX_NAME + 1];

	(void) state;
	memset(longname, 'n', sizeof(longname));

	genesis_members(m);
	m[1].pubkey = pk2;
	expect_genesis_encode(LL_WIRE_ERR_ORDER, S("cust"), tiers2, 2, m, 2);

	genesis_members(m);
	m[1].name = S("bob");
	expect_genesis_encode(LL_WIRE_ERR_DUPLICATE, S("cust"), tiers2, 2, m, 2);

	genesis_members(m);
	expect_genesis_encode(LL_WIRE_ERR_DUPLICATE, S("cust"), dup_tiers, 2, m, 2);

	m[1].tier = S("top");
	expect_genesis_encode(LL_WIRE_ERR_FIELD, S("cust"), tiers2, 2, m, 2);

	genesis_members(m);
	m[0].name = S("");
	expect_genesis_encode(LL_WIRE_ERR_FIELD, S("cust"), tiers2, 2, m, 2);

	genesis_members(m);
	m[0].name.ptr = longname;
	m[0].name.len = sizeof(longname);
	expect_genesis_encode(LL_WIRE_ERR_LIMIT, S("cust"), tiers2, 2, m, 2);

	genesis_members(m);
	expect_genesis_encode(LL_WIRE_ERR_FIELD, S(""), tiers2, 2, m, 2);
	expect_genesis_encode(LL_WIRE_ERR_FIELD, S("cust"), tiers2, 0, m, 2);
	expect_genesis_encode(LL_WIRE_ERR_FIELD, S("cust"), tiers2, 2, m, 0);
	expect_genesis_encode(LL_WIRE_ERR_LIMIT, S("cust"), tiers2,
						  LL_GENESIS_MAX_TIERS + 1, m, 2);
	expect_genesis_encode(LL_WIRE_ERR_LIMIT, S("cust"), tiers2, 2, m,
						  LL_GENESIS_MAX_MEMBERS + 1);

	/* the one-byte-shorter name is fine */
	m[0].name.ptr = longname;
	m[0].name.len = LL_WIRE_MAX_NAME;
	expect_genesis_encode(LL_WIRE_ERR_STATE, S("cust"), NULL, 2, m, 2);
	{
		ll_buf		buf;

		ll_buf_init(&buf, std_realloc);
		assert_int_equal(ll_genesis_encode(&buf, S("cust"), tiers2, 2, m, 2), LL_WIRE_OK);
		free(buf.data);
	}
}

static void
expect_genesis_decode(const uint8_t *in, size_t len, int want)
{
	ll_genesis	g;
	uint8_t		h[LL_HASH_LEN];

	assert_int_equal(ll_genesis_decode(in, len, &g), want);
	assert_int_equal(ll_genesis_hash(in, len, h), want);
}

static void
test_genesis_decode_rejects(void **state)
{
	uint8_t    *in;
	uint8_t    *bad;
	size_t		len;
	size_t		i;
	const size_t m1 = 34;		/* offset of the first member */
	const size_t mlen = 32 + 6 + 7; /* its length ("al", "sec") */
	const size_t m2len = 32 + 7 + 7;	/* second ("bob", "pub") */

	(void) state;
	in = unhex(genesis_hex, &len);
	bad = malloc(len + 1);
	assert_non_null(bad);

	for (i = 0; i < len; i++)
		expect_genesis_decode(in, i, LL_WIRE_ERR_TRUNCATED);

	memcpy(bad, in, len);
	bad[len] = 0;
	expect_genesis_decode(bad, len + 1, LL_WIRE_ERR_TRAILING);

	bad[3] = '2';
	expect_genesis_decode(bad, len, LL_WIRE_ERR_VERSION);

	/* members swapped: well-formed but not ascending */
	memcpy(bad, in, len);
	memcpy(bad + m1, in + m1 + mlen, m2len);
	memcpy(bad + m1 + m2len, in + m1, mlen);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_ORDER);

	/* equal pubkeys */
	memcpy(bad, in, len);
	memset(bad + m1 + mlen, 1, 32);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_ORDER);

	/* bob's clearance "pub" -> "pua": not a tier */
	memcpy(bad, in, len);
	bad[len - 1] = 'a';
	expect_genesis_decode(bad, len, LL_WIRE_ERR_FIELD);

	/* second tier "sec" -> "pub": duplicate tier */
	memcpy(bad, in, len);
	memcpy(bad + 27, "pub", 3);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_DUPLICATE);

	/* forged counts and lengths over the limits report LIMIT */
	memcpy(bad, in, len);
	put_be32(bad + 4, LL_WIRE_MAX_NAME + 1);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_LIMIT);
	memcpy(bad, in, len);
	put_be32(bad + 12, LL_GENESIS_MAX_TIERS + 1);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_LIMIT);
	memcpy(bad, in, len);
	put_be32(bad + 30, UINT32_MAX);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_LIMIT);
	memcpy(bad, in, len);
	put_be32(bad + 30, 0);
	expect_genesis_decode(bad, len, LL_WIRE_ERR_FIELD);

	free(bad);
	free(in);
}

/* Members with equal names but distinct pubkeys, built from bytes. */
static void
test_genesis_duplicate_names(void **state)
{
	uint8_t    *in;
	size_t		len;
	const size_t m2 = 34 + 32 + 6 + 7;

	(void) state;
	in = unhex(genesis_hex, &len);
	/* bob/pub -> al/pub, shrinking by one byte */
	memcpy(in + m2 + 32, "\x00\x00\x00\x02" "al" "\x00\x00\x00\x03" "pub", 13);
	expect_genesis_decode(in, len - 1, LL_WIRE_ERR_DUPLICATE);
	free(in);
}

/* The largest genesis: 250 tiers, 1024 members in reverse order. */
static void
test_genesis_limits(void **state)
{
	static char names[LL_GENESIS_MAX_MEMBERS][8];
	static char tnames[LL_GENESIS_MAX_TIERS][8];
	static uint8_t keys[LL_GENESIS_MAX_MEMBERS][32];
	static ll_member m[LL_GENESIS_MAX_MEMBERS];
	static ll_wire_str tiers[LL_GENESIS_MAX_TIERS];
	ll_genesis	g;
	ll_genesis_iter it;
	ll_member	got;
	ll_buf		buf;
	uint32_t	i;

	(void) state;
	for (i = 0; i < LL_GENESIS_MAX_TIERS; i++)
	{
		snprintf(tnames[i], sizeof(tnames[i]), "t%u", i);
		tiers[i] = S(tnames[i]);
	}
	for (i = 0; i < LL_GENESIS_MAX_MEMBERS; i++)
	{
		uint32_t	k = LL_GENESIS_MAX_MEMBERS - 1 - i;

		snprintf(names[i], sizeof(names[i]), "m%u", i);
		memset(keys[i], 0x5a, 32);
		keys[i][0] = (uint8_t) (k >> 8);
		keys[i][1] = (uint8_t) k;
		m[i].pubkey = keys[i];
		m[i].name = S(names[i]);
		m[i].tier = tiers[i % LL_GENESIS_MAX_TIERS];
	}
	ll_buf_init(&buf, std_realloc);
	assert_int_equal(ll_genesis_encode(&buf, S("big"), tiers, LL_GENESIS_MAX_TIERS,
									   m, LL_GENESIS_MAX_MEMBERS), LL_WIRE_OK);
	assert_int_equal(ll_genesis_decode(buf.data, buf.len, &g), LL_WIRE_OK);
	ll_genesis_members(&g, &it);
	assert_true(ll_genesis_next_member(&it, &got));
	assert_memory_equal(got.pubkey, keys[LL_GENESIS_MAX_MEMBERS - 1], 32);
	assert_int_equal(ll_genesis_tier_index(&g, "t249", 4), 249);
	free(buf.data);
}

/* ------------------------------------------------------------------ */
/* consensus payload                                                   */

static const char payload_hex[] =
	"4c4c5031"					/* "LLP1" */
	"0000000000000007"			/* height 7 */
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	"00060a24181e4000"			/* 1700000000000000 us */
	"0002"
	"1111111111111111111111111111111111111111111111111111111111111111"
	"2222222222222222222222222222222222222222222222222222222222222222";
static const char payload_sha[] =
	"142dd6082a5b58383185a3705ab6a10a398595df7239eaa482ae4b1533a64132";

static void
test_payload_known_bytes(void **state)
{
	uint8_t		prev[32];
	uint8_t		hashes[64];
	ll_payload	p = {7, prev, 1700000000000000, 2, hashes};
	ll_payload	d;
	ll_buf		buf;
	uint8_t    *expect;
	size_t		len;
	uint8_t		v[LL_HASH_LEN];

	(void) state;
	memset(prev, 0xaa, 32);
	memset(hashes, 0x11, 32);
	memset(hashes + 32, 0x22, 32);
	expect = unhex(payload_hex, &len);
	ll_buf_init(&buf, std_realloc);
	assert_int_equal(ll_payload_encode(&buf, &p), LL_WIRE_OK);
	assert_int_equal(buf.len, len);
	assert_memory_equal(buf.data, expect, len);
	assert_int_equal(ll_payload_value(buf.data, buf.len, v), LL_WIRE_OK);
	assert_hash_hex(v, payload_sha);

	assert_int_equal(ll_payload_decode(expect, len, &d), LL_WIRE_OK);
	assert_int_equal(d.height, 7);
	assert_memory_equal(d.prev_head, prev, 32);
	assert_int_equal(d.time_us, 1700000000000000);
	assert_int_equal(d.nbatches, 2);
	assert_memory_equal(d.batch_hashes, hashes, 64);
	free(expect);
	free(buf.data);
}

static void
test_payload_rejects(void **state)
{
	static uint8_t hashes[128 * 32];
	uint8_t		prev[32] = {0};
	ll_payload	p = {1, prev, -5, 0, hashes};
	ll_payload	d;
	ll_buf		buf;
	uint8_t    *in;
	size_t		len;
	size_t		i;
	uint8_t		v[LL_HASH_LEN];

	(void) state;
	for (i = 0; i < 128; i++)
	{
		memset(hashes + i * 32, 0, 32);
		hashes[i * 32] = (uint8_t) i;
		hashes[i * 32 + 1] = 1;
	}
	ll_buf_init(&buf, std_realloc);

	/* 126 batches fit in 4096 bytes, 127 do not */
	p.nbatches = LL_PAYLOAD_MAX_BATCHES;
	assert_int_equal(LL_PAYLOAD_MAX_BATCHES, 126);
	assert_int_equal(ll_payload_encode(&buf, &p), LL_WIRE_OK);
	assert_int_equal(buf.len, 54 + 126 * 32);
	assert_true(buf.len <= LL_PAYLOAD_MAX_LEN);
	assert_int_equal(ll_payload_decode(buf.data, buf.len, &d), LL_WIRE_OK);
	assert_int_equal(d.time_us, -5);
	p.nbatches = 127;
	assert_int_equal(ll_payload_encode(&buf, &p), LL_WIRE_ERR_LIMIT);
	assert_int_equal(buf.len, 54 + 126 * 32);

	/* a forged count of 127 with all its bytes present */
	ll_buf_put(&buf, hashes + 126 * 32, 32);
	buf.data[53] = 127;
	assert_int_equal(ll_payload_decode(buf.data, buf.len, &d), LL_WIRE_ERR_LIMIT);
	buf.data[52] = 0xff;
	assert_int_equal(ll_payload_decode(buf.data, 54, &d), LL_WIRE_ERR_LIMIT);

	/* duplicates, both ways */
	memcpy(hashes + 64, hashes, 32);
	p.nbatches = 3;
	buf.len = 0;
	assert_int_equal(ll_payload_encode(&buf, &p), LL_WIRE_ERR_DUPLICATE);
	assert_int_equal(buf.len, 0);
	in = unhex(payload_hex, &len);
	memset(in + len - 32, 0x11, 32);
	assert_int_equal(ll_payload_decode(in, len, &d), LL_WIRE_ERR_DUPLICATE);
	free(in);

	in = unhex(payload_hex, &len);
	for (i = 0; i < len; i++)
		assert_int_equal(ll_payload_decode(in, i, &d), LL_WIRE_ERR_TRUNCATED);
	in[0] = 'X';
	assert_int_equal(ll_payload_value(in, len, v), LL_WIRE_ERR_VERSION);
	in[0] = 'L';
	in = realloc(in, len + 1);
	in[len] = 0;
	assert_int_equal(ll_payload_decode(in, len + 1, &d), LL_WIRE_ERR_TRAILING);
	free(in);

	p.prev_head = NULL;
	assert_int_equal(ll_payload_encode(&buf, &p), LL_WIRE_ERR_STATE);
	free(buf.data);
}

/* ------------------------------------------------------------------ */
/* transaction batch                                                   */

typedef struct sample
{
	bft_ed25519_key *key;
	uint8_t		origin[32];
	uint8_t		chain[32];
	ll_buf		e[3];			/* entries of rows with content */
	uint8_t		c[4][32];		/* commitments: e[0], e[1], withheld, e[2] */
	ll_buf		out;
	ll_buf		scratch;
	uint8_t		hash[32];
} sample;

static const uint8_t member_pk[32] = {0x44, 0x44, 0x44, 0x44};
static const uint8_t removed_pk[32] = {0x55, 0x55, 0x55, 0x55};

/* A real two-column entry of any table (initialises e). */
static void
table_entry(ll_buf *e, const char *table, size_t table_len, uint64_t id,
			const char *tier, const char *val)
{
	const uint8_t salt[LL_SALT_LEN] = {9, 8, 7};

	ll_buf_init(e, std_realloc);
	ll_entry_begin(e, table, table_len, id, tier, strlen(tier), salt, 2);
	ll_entry_value(e, "v", 1, val, strlen(val));
	ll_entry_null(e, "w", 1);
	assert_false(e->failed);
}

static void
sample_entry(ll_buf *e, uint64_t id, const char *tier, const char *val)
{
	table_entry(e, "public.t", 8, id, tier, val);
}

/*
 * A batch with every tx kind: rows (tier 0 and 1 with content, tier 2
 * withheld), add member, remove member, and one more rows tx (tier 0).
 * All rows are of "public.t"; entry_ids 1, 2, 3 (withheld), 4.
 */
static void
sample_build(sample *s)
{
	uint8_t		seed[32];
	ll_batch_builder b;

	memset(s, 0, sizeof(*s));
	memset(seed, 7, 32);
	memset(s->chain, 0x33, 32);
	s->key = bft_ed25519_new(seed);
	assert_non_null(s->key);
	bft_ed25519_pubkey(s->key, s->origin);
	sample_entry(&s->e[0], 1, "pub", "one");
	sample_entry(&s->e[1], 2, "sec", "two");
	sample_entry(&s->e[2], 4, "pub", "four");
	assert_true(ll_leaf_hash(s->e[0].data, s->e[0].len, s->c[0]));
	assert_true(ll_leaf_hash(s->e[1].data, s->e[1].len, s->c[1]));
	memset(s->c[2], 0xcc, 32);
	assert_true(ll_leaf_hash(s->e[2].data, s->e[2].len, s->c[3]));
	ll_buf_init(&s->out, std_realloc);
	ll_buf_init(&s->scratch, std_realloc);

	assert_int_equal(ll_batch_begin(&b, &s->out, &s->scratch, SIZE_MAX, s->chain,
									 s->origin, 5, -1234), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_rows_tx(&b, 100), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_row(&b, 0, NULL, s->e[0].data, s->e[0].len), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_row(&b, 1, s->c[1], s->e[1].data, s->e[1].len), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_withheld_row(&b, 2, 3, S("public.t"), s->c[2]), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_member_tx(&b, 101, member_pk, S("dave"), S("pub")), LL_WIRE_OK);
	assert_int_equal(ll_batch_remove_member_tx(&b, 102, removed_pk), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_rows_tx(&b, 103), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_row(&b, 0, s->c[3], s->e[2].data, s->e[2].len), LL_WIRE_OK);
	assert_int_equal(ll_batch_finish(&b, bft_ed25519_sign, s->key, s->hash), LL_WIRE_OK);
}

static void
sample_free(sample *s)
{
	int			i;

	for (i = 0; i < 3; i++)
		free(s->e[i].data);
	free(s->out.data);
	free(s->scratch.data);
	bft_ed25519_free(s->key);
}

static int
decode_real(const uint8_t *in, size_t len, ll_batch *b)
{
	return ll_batch_decode(in, len, SIZE_MAX, bft_ed25519_verify, NULL, b);
}

/* A signed row of "public.t": tier, entry_id, table, commitment. */
#define ROW_LEN (1 + 8 + 4 + 8 + 32)

/* Offsets in a rows tx's first row, from the start of the tx. */
#define ROW_AT 13				/* kind, txid, nrows */
#define ROW_ID_AT (ROW_AT + 1)
#define ROW_TABLE_AT (ROW_AT + 9)
#define ROW_COMMIT_AT (ROW_AT + 21)

/* Signed part length of the sample: header, 3 + 1 rows, member txs. */
static size_t
sample_signed_len(void)
{
	return 88 + (13 + 3 * ROW_LEN) + (9 + 32 + 8 + 7) + (9 + 32) + (13 + ROW_LEN);
}

/* The next row is (tier, "public.t", id, c) with content e (NULL: withheld). */
static void
expect_row(ll_batch_iter *it, uint8_t tier, uint64_t id, const uint8_t *c,
		   const ll_buf *e)
{
	ll_row		r;

	assert_true(ll_batch_next_row(it, &r));
	assert_int_equal(r.tier_index, tier);
	assert_int_equal(r.entry_id, id);
	assert_int_equal(r.table.len, 8);
	assert_memory_equal(r.table.ptr, "public.t", 8);
	assert_memory_equal(r.commitment, c, 32);
	if (e == NULL)
	{
		assert_null(r.content);
		assert_int_equal(r.content_len, 0);
	}
	else
	{
		assert_int_equal(r.content_len, e->len);
		assert_memory_equal(r.content, e->data, e->len);
	}
}

static void
test_batch_roundtrip(void **state)
{
	sample		s;
	ll_batch	b;
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		r;
	uint8_t		h[32];

	(void) state;
	sample_build(&s);
	assert_int_equal(decode_real(s.out.data, s.out.len, &b), LL_WIRE_OK);
	assert_memory_equal(b.chain_id, s.chain, 32);
	assert_memory_equal(b.origin, s.origin, 32);
	assert_int_equal(b.batch_seq, 5);
	assert_int_equal(b.time_us, -1234);
	assert_int_equal(b.ntx, 4);
	assert_int_equal(b.nrows, 4);
	assert_memory_equal(b.batch_hash, s.hash, 32);
	assert_true(ll_sha256(s.out.data, sample_signed_len(), h));
	assert_memory_equal(h, s.hash, 32);
	assert_ptr_equal(b.sig, s.out.data + sample_signed_len());
	assert_true(bft_ed25519_verify(NULL, s.origin, s.hash, 32, b.sig));
	assert_int_equal(b.len, s.out.len);

	ll_batch_iter_init(&it, &b);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_int_equal(tx.kind, LL_TX_ROWS);
	assert_int_equal(tx.txid, 100);
	assert_int_equal(tx.nrows, 3);
	expect_row(&it, 0, 1, s.c[0], &s.e[0]);
	expect_row(&it, 1, 2, s.c[1], &s.e[1]);
	expect_row(&it, 2, 3, s.c[2], NULL);
	assert_false(ll_batch_next_row(&it, &r));
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_int_equal(tx.kind, LL_TX_ADD_MEMBER);
	assert_int_equal(tx.txid, 101);
	assert_memory_equal(tx.pubkey, member_pk, 32);
	assert_int_equal(tx.name.len, 4);
	assert_memory_equal(tx.name.ptr, "dave", 4);
	assert_memory_equal(tx.tier.ptr, "pub", 3);
	assert_false(ll_batch_next_row(&it, &r));
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_int_equal(tx.kind, LL_TX_REMOVE_MEMBER);
	assert_memory_equal(tx.pubkey, removed_pk, 32);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_int_equal(tx.txid, 103);
	expect_row(&it, 0, 4, s.c[3], &s.e[2]);
	assert_false(ll_batch_next_tx(&it, &tx));

	/* skipping unread rows keeps content aligned */
	ll_batch_iter_init(&it, &b);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_true(ll_batch_next_row(&it, &r));
	while (ll_batch_next_tx(&it, &tx) && tx.txid != 103)
		;
	expect_row(&it, 0, 4, s.c[3], &s.e[2]);
	sample_free(&s);
}

static void
test_batch_truncation(void **state)
{
	sample		s;
	ll_batch	b;
	size_t		i;

	(void) state;
	sample_build(&s);
	for (i = 0; i < s.out.len; i++)
		assert_int_equal(decode_real(s.out.data, i, &b), LL_WIRE_ERR_TRUNCATED);
	ll_buf_put_u8(&s.out, 0);
	assert_int_equal(decode_real(s.out.data, s.out.len, &b), LL_WIRE_ERR_TRAILING);
	sample_free(&s);
}

static void
test_batch_tamper(void **state)
{
	sample		s;
	ll_batch	b;
	uint8_t    *t;
	size_t		len;
	size_t		i;
	size_t		content_at;
	int			bit;

	(void) state;
	sample_build(&s);
	len = s.out.len;
	t = malloc(len);
	assert_non_null(t);
	content_at = sample_signed_len() + 64;

	/* every single bit flip anywhere is rejected */
	for (i = 0; i < len; i++)
		for (bit = 0; bit < 8; bit += 7)
		{
			memcpy(t, s.out.data, len);
			t[i] ^= (uint8_t) (1 << bit);
			assert_int_not_equal(decode_real(t, len, &b), LL_WIRE_OK);
			if (i >= sample_signed_len() && i < content_at)
				assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_SIG);
		}

	/* a commitment changed: signature breaks; if it were skipped, content */
	memcpy(t, s.out.data, len);
	t[88 + ROW_COMMIT_AT] ^= 1; /* first row's commitment */
	assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_SIG);
	assert_int_equal(ll_batch_decode(t, len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_ERR_COMMITMENT);

	/* likewise entry_id and table: content must be the entry they name */
	memcpy(t, s.out.data, len);
	t[88 + ROW_ID_AT + 7] ^= 1; /* first row's entry_id, 1 -> 0 */
	assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_SIG);
	assert_int_equal(ll_batch_decode(t, len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_ERR_FIELD);
	memcpy(t, s.out.data, len);
	t[88 + ROW_TABLE_AT + 4 + 7] = 'u'; /* "public.t" -> "public.u" */
	assert_int_equal(ll_batch_decode(t, len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_ERR_FIELD);
	/* ... which a withheld row's metadata is not checked against */
	memcpy(t, s.out.data, len);
	t[88 + 13 + 2 * ROW_LEN + 1] ^= 1;	/* third (withheld) row's entry_id */
	assert_int_equal(ll_batch_decode(t, len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_OK);

	/* content that does not match its commitment */
	memcpy(t, s.out.data, len);
	t[content_at + 4 + 10] ^= 1;
	assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_COMMITMENT);
	memcpy(t, s.out.data, len);
	t[len - 1] ^= 1;
	assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_COMMITMENT);

	/* a different origin key */
	memcpy(t, s.out.data, len);
	memcpy(t + 36, member_pk, 32);
	assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_SIG);

	/* unknown kind and magic */
	memcpy(t, s.out.data, len);
	t[88 + 13 + 3 * ROW_LEN + 56] = 9;	/* the remove-member tx */
	assert_int_equal(ll_batch_decode(t, len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_ERR_KIND);
	memcpy(t, s.out.data, len);
	t[3] = '2';
	assert_int_equal(decode_real(t, len, &b), LL_WIRE_ERR_VERSION);
	assert_int_equal(ll_batch_decode(t, len, SIZE_MAX, NULL, NULL, &b), LL_WIRE_ERR_STATE);
	free(t);
	sample_free(&s);
}

static void
test_batch_redact(void **state)
{
	sample		s;
	ll_batch	b;
	ll_batch	r;
	ll_batch	r2;
	ll_batch_iter it;
	ll_tx		tx;
	ll_buf		red;
	ll_buf		red2;

	(void) state;
	sample_build(&s);
	assert_int_equal(decode_real(s.out.data, s.out.len, &b), LL_WIRE_OK);
	ll_buf_init(&red, std_realloc);
	ll_buf_init(&red2, std_realloc);

	assert_int_equal(ll_batch_redact(&b, 0, &red), LL_WIRE_OK);
	assert_int_equal(red.len, s.out.len - s.e[1].len);
	assert_int_equal(decode_real(red.data, red.len, &r), LL_WIRE_OK);
	assert_memory_equal(r.batch_hash, s.hash, 32);
	ll_batch_iter_init(&it, &r);
	assert_true(ll_batch_next_tx(&it, &tx));
	expect_row(&it, 0, 1, s.c[0], &s.e[0]);
	expect_row(&it, 1, 2, s.c[1], NULL);
	expect_row(&it, 2, 3, s.c[2], NULL);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_true(ll_batch_next_tx(&it, &tx));
	expect_row(&it, 0, 4, s.c[3], &s.e[2]);

	/* redacting again changes nothing; the highest tier keeps everything */
	assert_int_equal(ll_batch_redact(&r, 0, &red2), LL_WIRE_OK);
	assert_int_equal(red2.len, red.len);
	assert_memory_equal(red2.data, red.data, red.len);
	red2.len = 0;
	assert_int_equal(ll_batch_redact(&b, 249, &red2), LL_WIRE_OK);
	assert_int_equal(red2.len, s.out.len);
	assert_memory_equal(red2.data, s.out.data, s.out.len);

	/* everything withheld: same hash, valid signature, metadata intact */
	red2.len = 0;
	assert_int_equal(ll_batch_redact(&b, -1, &red2), LL_WIRE_OK);
	assert_int_equal(red2.len, sample_signed_len() + 64 + 4 * 4);
	assert_int_equal(decode_real(red2.data, red2.len, &r2), LL_WIRE_OK);
	assert_memory_equal(r2.batch_hash, s.hash, 32);
	assert_memory_equal(red2.data, s.out.data, sample_signed_len() + 64);
	ll_batch_iter_init(&it, &r2);
	assert_true(ll_batch_next_tx(&it, &tx));
	expect_row(&it, 0, 1, s.c[0], NULL);
	expect_row(&it, 1, 2, s.c[1], NULL);
	expect_row(&it, 2, 3, s.c[2], NULL);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_true(ll_batch_next_tx(&it, &tx));
	expect_row(&it, 0, 4, s.c[3], NULL);

	free(red.data);
	free(red2.data);
	sample_free(&s);
}

/* A one-row batch signed for real, for patching fields. */
static void
small_batch(ll_buf *out, bft_ed25519_key **key)
{
	uint8_t		seed[32] = {1};
	uint8_t		pub[32];
	uint8_t		c[32] = {0xc0};
	ll_buf		scratch;
	ll_batch_builder b;

	*key = bft_ed25519_new(seed);
	bft_ed25519_pubkey(*key, pub);
	ll_buf_init(out, std_realloc);
	ll_buf_init(&scratch, std_realloc);
	ll_batch_begin(&b, out, &scratch, SIZE_MAX, pub, pub, 1, 2);
	ll_batch_add_rows_tx(&b, 1);
	ll_batch_add_withheld_row(&b, 0, 1, S("public.t"), c);
	assert_int_equal(ll_batch_finish(&b, bft_ed25519_sign, *key, NULL), LL_WIRE_OK);
	assert_int_equal(out->len, 88 + 13 + ROW_LEN + 64 + 4);
	free(scratch.data);
}

static void
test_batch_limits(void **state)
{
	static uint8_t c[32];
	bft_ed25519_key *key;
	ll_buf		out;
	ll_buf		scratch;
	ll_batch_builder bb;
	ll_batch	b;
	ll_buf		e;
	uint8_t    *big;
	uint32_t	i;
	size_t		len;

	(void) state;
	small_batch(&out, &key);
	len = out.len;
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_OK);
	assert_int_equal(ll_batch_decode(out.data, len, len, bft_ed25519_verify, NULL, &b), LL_WIRE_OK);
	assert_int_equal(ll_batch_decode(out.data, len, len - 1, bft_ed25519_verify, NULL, &b),
					 LL_WIRE_ERR_LIMIT);
	put_be32(out.data + 97, LL_BATCH_MAX_ROWS + 1);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_LIMIT);
	put_be32(out.data + 97, 0);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_FIELD);
	put_be32(out.data + 97, 1);
	put_be32(out.data + 84, LL_BATCH_MAX_TXS + 1);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_LIMIT);
	put_be32(out.data + 84, 1);
	out.data[101] = LL_GENESIS_MAX_TIERS;
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_FIELD);
	out.data[101] = 0;
	put_be32(out.data + len - 4, LL_ENTRY_MAX_LEN + 1);
	assert_int_equal(ll_batch_decode(out.data, len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_ERR_LIMIT);
	put_be32(out.data + len - 4, 0);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_OK);

	/* exactly LL_BATCH_MAX_ROWS rows over two txs, then one too many */
	out.len = 0;
	ll_buf_init(&scratch, std_realloc);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	for (i = 0; i < LL_BATCH_MAX_ROWS; i++)
	{
		if (i == 1000)
			ll_batch_add_rows_tx(&bb, 2);
		assert_int_equal(ll_batch_add_withheld_row(&bb, (uint8_t) (i % 250), i,
												   S("public.t"), c), LL_WIRE_OK);
	}
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, i, S("public.t"), c),
					 LL_WIRE_ERR_LIMIT);
	assert_int_equal(out.len, 0);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_ERR_LIMIT);

	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	for (i = 0; i < LL_BATCH_MAX_ROWS; i++)
		ll_batch_add_withheld_row(&bb, 1, i, S("public.t"), c);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_OK);
	assert_int_equal(ll_batch_decode(out.data, out.len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_OK);
	assert_int_equal(b.nrows, LL_BATCH_MAX_ROWS);

	/* one row's content over 64 MiB: refused before it is hashed */
	big = calloc(1, (size_t) LL_ENTRY_MAX_LEN + 1);
	assert_non_null(big);
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, big, (size_t) LL_ENTRY_MAX_LEN + 1),
					 LL_WIRE_ERR_LIMIT);
	free(big);

	/* the builder's size cap: two withheld rows of "public.t" */
#define TWO_ROWS (88 + 13 + 64 + 2 * (ROW_LEN + 4))
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, TWO_ROWS, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 1, S("public.t"), c), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 2, S("public.t"), c), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 3, S("p"), c), LL_WIRE_ERR_LIMIT);
	assert_int_equal(out.len, 0);
	ll_batch_begin(&bb, &out, &scratch, TWO_ROWS, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	ll_batch_add_withheld_row(&bb, 0, 1, S("public.t"), c);
	ll_batch_add_withheld_row(&bb, 0, 2, S("public.t"), c);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_OK);
	assert_int_equal(out.len, TWO_ROWS);
	/* one table byte more no longer fits */
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, TWO_ROWS, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	ll_batch_add_withheld_row(&bb, 0, 1, S("public.t"), c);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 2, S("public.tt"), c),
					 LL_WIRE_ERR_LIMIT);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_ERR_LIMIT);
	assert_int_equal(out.len, 0);
#undef TWO_ROWS

	/* a row with content: its entry counts too */
	sample_entry(&e, 1, "pub", "one");
#define ONE_ROW (88 + 13 + ROW_LEN + 64 + 4 + e.len)
	ll_batch_begin(&bb, &out, &scratch, ONE_ROW, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, e.data, e.len), LL_WIRE_OK);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_OK);
	assert_int_equal(out.len, ONE_ROW);
	assert_int_equal(ll_batch_decode(out.data, out.len, ONE_ROW, verify_always, NULL, &b),
					 LL_WIRE_OK);
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, ONE_ROW - 1, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, e.data, e.len), LL_WIRE_ERR_LIMIT);
	assert_int_equal(out.len, 0);
#undef ONE_ROW
	free(e.data);

	free(out.data);
	free(scratch.data);
	bft_ed25519_free(key);
}

/*
 * Decode a one-row batch signed as a withheld row (id, table, commitment)
 * whose content was filled in afterwards.  The content section is
 * unsigned, so anyone relaying the batch could do this.
 */
static int
decode_filled(uint64_t id, const char *table, const uint8_t *commitment,
			  const uint8_t *content, size_t content_len)
{
	uint8_t		seed[32] = {5};
	uint8_t		pub[32];
	bft_ed25519_key *key = bft_ed25519_new(seed);
	ll_buf		out;
	ll_buf		scratch;
	ll_batch_builder bb;
	ll_batch	b;
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		r;
	int			rc;

	bft_ed25519_pubkey(key, pub);
	ll_buf_init(&out, std_realloc);
	ll_buf_init(&scratch, std_realloc);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, pub, pub, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	ll_batch_add_withheld_row(&bb, 0, id, S(table), commitment);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_OK);
	assert_int_equal(decode_real(out.data, out.len, &b), LL_WIRE_OK);
	out.len -= 4;
	ll_buf_put_str(&out, (const char *) content, content_len);
	rc = decode_real(out.data, out.len, &b);
	if (rc == LL_WIRE_OK)
	{
		ll_batch_iter_init(&it, &b);
		assert_true(ll_batch_next_tx(&it, &tx));
		assert_true(ll_batch_next_row(&it, &r));
		assert_int_equal(r.entry_id, id);
		assert_int_equal(r.table.len, strlen(table));
		assert_int_equal(r.content_len, content_len);
	}
	free(out.data);
	free(scratch.data);
	bft_ed25519_free(key);
	return rc;
}

/* Content must be the entry its row's signed entry_id and table name. */
static void
test_batch_content_mismatch(void **state)
{
	ll_buf		e;
	uint8_t		leaf[32];
	uint8_t		other[32];
	const uint8_t junk[8] = {'L', 'L', 'E', '1', 'a', 'b', 'c', 'd'};

	(void) state;
	sample_entry(&e, 1, "pub", "one");
	assert_true(ll_leaf_hash(e.data, e.len, leaf));
	assert_int_equal(decode_filled(1, "public.t", leaf, e.data, e.len), LL_WIRE_OK);
	assert_int_equal(decode_filled(2, "public.t", leaf, e.data, e.len), LL_WIRE_ERR_FIELD);
	assert_int_equal(decode_filled(1, "public.u", leaf, e.data, e.len), LL_WIRE_ERR_FIELD);
	assert_int_equal(decode_filled(1, "public.", leaf, e.data, e.len), LL_WIRE_ERR_FIELD);
	assert_int_equal(decode_filled(1, "public.tt", leaf, e.data, e.len), LL_WIRE_ERR_FIELD);

	/* the hash is checked first: a wrong commitment wins */
	memset(other, 0xee, 32);
	assert_int_equal(decode_filled(2, "public.t", other, e.data, e.len),
					 LL_WIRE_ERR_COMMITMENT);

	/* content matching its commitment that is no entry */
	assert_true(ll_leaf_hash(junk, sizeof(junk), leaf));
	assert_int_equal(decode_filled(1, "public.t", leaf, junk, sizeof(junk)),
					 LL_WIRE_ERR_FIELD);
	free(e.data);
}

/* Table names: limits and emptiness in builder and decoder. */
/* A table declaration round trips; its fingerprint and table are checked. */
static void
test_batch_declare_table(void **state)
{
	static uint8_t fp[32];
	uint8_t		c[32];
	static char longest[LL_WIRE_MAX_TABLE + 1];
	bft_ed25519_key *key;
	ll_buf		out;
	ll_buf		scratch;
	ll_batch_builder bb;
	ll_batch	b;
	ll_batch_iter it;
	ll_tx		tx;
	size_t		len;
	int			i;

	(void) state;
	memset(longest, 'x', sizeof(longest));
	for (i = 0; i < 32; i++)
		fp[i] = (uint8_t) i;
	small_batch(&out, &key);
	bft_ed25519_pubkey(key, c);
	ll_buf_init(&scratch, std_realloc);
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_declare_table_tx(&bb, 9, S("public.t"), fp), LL_WIRE_OK);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_OK);
	len = out.len;
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_OK);
	assert_int_equal(b.ntx, 1);
	assert_int_equal(b.nrows, 0);
	ll_batch_iter_init(&it, &b);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_int_equal(tx.kind, LL_TX_DECLARE_TABLE);
	assert_int_equal(tx.txid, 9);
	assert_int_equal(tx.table.len, 8);
	assert_memory_equal(tx.table.ptr, "public.t", 8);
	assert_memory_equal(tx.fingerprint, fp, 32);
	assert_false(ll_batch_next_tx(&it, &tx));

	/* signed part: header 88, kind + txid 9, table 4 + 8, fingerprint 32 */
	assert_int_equal(decode_real(out.data, 88 + 9 + 12 + 31, &b), LL_WIRE_ERR_TRUNCATED);
	put_be32(out.data + 88 + 9, LL_WIRE_MAX_TABLE + 1);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_LIMIT);
	put_be32(out.data + 88 + 9, 0);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_FIELD);

	/* the builder refuses what the decoder would */
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_declare_table_tx(&bb, 9, (ll_wire_str) {longest, LL_WIRE_MAX_TABLE + 1}, fp),
					 LL_WIRE_ERR_LIMIT);
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_declare_table_tx(&bb, 9, S("t"), NULL), LL_WIRE_ERR_STATE);
	free(out.data);
	free(scratch.data);
	bft_ed25519_free(key);
}

static void
test_batch_table_limits(void **state)
{
	static char longest[LL_WIRE_MAX_TABLE + 1];
	static uint8_t c[32];
	bft_ed25519_key *key;
	ll_wire_str tlong = {longest, LL_WIRE_MAX_TABLE};
	ll_wire_str ttoo = {longest, LL_WIRE_MAX_TABLE + 1};
	ll_buf		out;
	ll_buf		scratch;
	ll_buf		e;
	ll_batch_builder bb;
	ll_batch	b;
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		r;
	size_t		len;

	(void) state;
	memset(longest, 'x', sizeof(longest));

	/* decoding the signed table length of small_batch's row */
	small_batch(&out, &key);
	len = out.len;
	put_be32(out.data + 88 + ROW_TABLE_AT, LL_WIRE_MAX_TABLE + 1);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_LIMIT);
	put_be32(out.data + 88 + ROW_TABLE_AT, UINT32_MAX);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_LIMIT);
	put_be32(out.data + 88 + ROW_TABLE_AT, 0);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_ERR_FIELD);
	put_be32(out.data + 88 + ROW_TABLE_AT, 8);
	assert_int_equal(decode_real(out.data, len, &b), LL_WIRE_OK);
	assert_int_equal(decode_real(out.data, 88 + ROW_TABLE_AT + 2, &b),
					 LL_WIRE_ERR_TRUNCATED);
	assert_int_equal(decode_real(out.data, 88 + ROW_TABLE_AT + 4 + 3, &b),
					 LL_WIRE_ERR_TRUNCATED);

	/* the longest table, withheld and with content, round trips */
	table_entry(&e, longest, LL_WIRE_MAX_TABLE, 7, "sec", "seven");
	ll_buf_init(&scratch, std_realloc);
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 3, 6, tlong, c), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_row(&bb, 1, NULL, e.data, e.len), LL_WIRE_OK);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, UINT64_MAX, S("a"), c), LL_WIRE_OK);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, key, NULL), LL_WIRE_OK);
	assert_int_equal(ll_batch_decode(out.data, out.len, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_OK);
	ll_batch_iter_init(&it, &b);
	assert_true(ll_batch_next_tx(&it, &tx));
	assert_true(ll_batch_next_row(&it, &r));
	assert_int_equal(r.entry_id, 6);
	assert_int_equal(r.table.len, LL_WIRE_MAX_TABLE);
	assert_null(r.content);
	assert_true(ll_batch_next_row(&it, &r));
	assert_int_equal(r.entry_id, 7);
	assert_int_equal(r.table.len, LL_WIRE_MAX_TABLE);
	assert_memory_equal(r.table.ptr, longest, LL_WIRE_MAX_TABLE);
	assert_int_equal(r.content_len, e.len);
	assert_true(ll_batch_next_row(&it, &r));
	assert_true(r.entry_id == UINT64_MAX);
	assert_int_equal(r.table.len, 1);
	assert_memory_equal(r.table.ptr, "a", 1);
	assert_false(ll_batch_next_row(&it, &r));
	free(e.data);

	/* one byte longer, or empty, is refused and leaves nothing behind */
	out.len = 0;
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 1, ttoo, c), LL_WIRE_ERR_LIMIT);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 1, S(""), c), LL_WIRE_ERR_FIELD);
	table_entry(&e, longest, LL_WIRE_MAX_TABLE + 1, 7, "sec", "seven");
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, e.data, e.len), LL_WIRE_ERR_LIMIT);
	free(e.data);
	table_entry(&e, "", 0, 7, "sec", "seven");
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, e.data, e.len), LL_WIRE_ERR_FIELD);
	assert_int_equal(out.len, 0);
	free(e.data);

	free(out.data);
	free(scratch.data);
	bft_ed25519_free(key);
}

static void
expect_tiers(const ll_buf *bytes, int top, int complete_up_to)
{
	ll_batch	b;
	int			t;

	assert_int_equal(decode_real(bytes->data, bytes->len, &b), LL_WIRE_OK);
	assert_int_equal(ll_batch_top_tier(&b), top);
	for (t = -1; t < LL_GENESIS_MAX_TIERS; t++)
		assert_int_equal(ll_batch_complete_for(&b, t), t <= complete_up_to);
}

/* What a recipient may have got, and what a sender must redact. */
static void
test_batch_complete_top_tier(void **state)
{
	sample		s;
	ll_batch	b;
	ll_buf		red;
	bft_ed25519_key *key;
	ll_buf		small;
	ll_batch_builder bb;

	(void) state;
	sample_build(&s);
	ll_buf_init(&red, std_realloc);
	assert_int_equal(decode_real(s.out.data, s.out.len, &b), LL_WIRE_OK);

	/* content for tiers 0 and 1; tier 2's row is withheld */
	expect_tiers(&s.out, 1, 1);

	/* redacting for a clearance >= top tier changes nothing */
	assert_int_equal(ll_batch_redact(&b, 1, &red), LL_WIRE_OK);
	assert_int_equal(red.len, s.out.len);
	assert_memory_equal(red.data, s.out.data, s.out.len);

	red.len = 0;
	assert_int_equal(ll_batch_redact(&b, 0, &red), LL_WIRE_OK);
	expect_tiers(&red, 0, 0);
	red.len = 0;
	assert_int_equal(ll_batch_redact(&b, -1, &red), LL_WIRE_OK);
	expect_tiers(&red, -1, -1);

	/* no rows at all, and one withheld row */
	red.len = 0;
	ll_batch_begin(&bb, &red, &s.scratch, SIZE_MAX, s.chain, s.origin, 6, 0);
	ll_batch_remove_member_tx(&bb, 1, removed_pk);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, s.key, NULL), LL_WIRE_OK);
	expect_tiers(&red, -1, LL_GENESIS_MAX_TIERS);
	small_batch(&small, &key);
	expect_tiers(&small, -1, -1);

	free(small.data);
	bft_ed25519_free(key);
	free(red.data);
	sample_free(&s);
}

static void
test_batch_builder_misuse(void **state)
{
	uint8_t		c[32] = {1};
	const uint8_t junk[8] = {'L', 'L', 'E', '1', 'a', 'b', 'c', 'd'};
	ll_buf		entry;
	const uint8_t *e;
	ll_buf		out;
	ll_buf		scratch;
	ll_batch_builder bb;
	ll_batch	b;
	size_t		len;

	(void) state;
	sample_entry(&entry, 1, "pub", "one");
	e = entry.data;
	ll_buf_init(&out, std_realloc);
	ll_buf_init(&scratch, std_realloc);
	ll_buf_put(&out, "keep", 4);

	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 1, S("public.t"), c), LL_WIRE_ERR_STATE);
	assert_int_equal(out.len, 4);
	assert_int_equal(ll_batch_finish(&bb, sign_fails, NULL, NULL), LL_WIRE_ERR_STATE);

	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_remove_member_tx(&bb, 2, c), LL_WIRE_ERR_FIELD);
	assert_int_equal(out.len, 4);

	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, c, e, entry.len), LL_WIRE_ERR_COMMITMENT);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, e, 0), LL_WIRE_ERR_FIELD);
	/* content is required, and must be an entry */
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, NULL, 0), LL_WIRE_ERR_STATE);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, c, NULL, 0), LL_WIRE_ERR_STATE);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, junk, sizeof(junk)), LL_WIRE_ERR_FIELD);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 1, S("public.t"), NULL),
					 LL_WIRE_ERR_STATE);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 250, 1, S("public.t"), c),
					 LL_WIRE_ERR_FIELD);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_add_withheld_row(&bb, 0, 1, (ll_wire_str) {NULL, 3}, c),
					 LL_WIRE_ERR_FIELD);
	assert_int_equal(out.len, 4);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_add_member_tx(&bb, 1, c, S(""), S("pub")), LL_WIRE_ERR_FIELD);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	ll_batch_add_rows_tx(&bb, 1);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, NULL, NULL), LL_WIRE_ERR_FIELD);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_finish(&bb, sign_fails, NULL, NULL), LL_WIRE_ERR_CRYPTO);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_finish(&bb, NULL, NULL, NULL), LL_WIRE_ERR_STATE);
	assert_int_equal(ll_batch_begin(&bb, &out, &out, SIZE_MAX, c, c, 1, 2), LL_WIRE_ERR_STATE);
	assert_int_equal(ll_batch_add_rows_tx(&bb, 1), LL_WIRE_ERR_STATE);
	assert_int_equal(out.len, 4);

	/* an empty batch is valid; a finished builder refuses more */
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	assert_int_equal(ll_batch_add_row(&bb, 0, NULL, e, entry.len), LL_WIRE_ERR_STATE);
	ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
	{
		uint8_t		seed[32] = {3};
		bft_ed25519_key *k = bft_ed25519_new(seed);

		assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, k, NULL), LL_WIRE_OK);
		len = out.len;
		assert_int_equal(ll_batch_add_rows_tx(&bb, 1), LL_WIRE_ERR_STATE);
		assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, k, NULL), LL_WIRE_ERR_STATE);
		assert_int_equal(out.len, len);
		bft_ed25519_free(k);
	}
	assert_int_equal(ll_batch_decode(out.data + 4, len - 4, SIZE_MAX, verify_always, NULL, &b),
					 LL_WIRE_OK);
	assert_int_equal(b.ntx, 0);
	free(entry.data);
	free(out.data);
	free(scratch.data);
}

/* Allocation failure anywhere in building yields NOMEM, never a crash. */
static void
test_batch_nomem(void **state)
{
	uint8_t		c[32] = {1};
	ll_buf		out;
	ll_buf		scratch;
	ll_batch_builder bb;
	uint8_t		seed[32] = {3};
	bft_ed25519_key *k = bft_ed25519_new(seed);
	int			i;
	int			rc;

	(void) state;
	for (alloc_budget = 0; alloc_budget <= 1024; alloc_budget += 32)
	{
		ll_buf_init(&out, budget_realloc);
		ll_buf_init(&scratch, budget_realloc);
		ll_batch_begin(&bb, &out, &scratch, SIZE_MAX, c, c, 1, 2);
		ll_batch_add_rows_tx(&bb, 1);
		for (i = 0; i < 8; i++)
			ll_batch_add_withheld_row(&bb, 0, i, S("public.t"), c);
		rc = ll_batch_finish(&bb, bft_ed25519_sign, k, NULL);
		if (alloc_budget < 128)
			assert_int_equal(rc, LL_WIRE_ERR_NOMEM);
		else if (alloc_budget == 1024)
			assert_int_equal(rc, LL_WIRE_OK);
		assert_true(rc == LL_WIRE_OK || out.len == 0);
		free(out.data);
		free(scratch.data);
	}
	bft_ed25519_free(k);
}

/* ------------------------------------------------------------------ */
/* frames, batch requests, hello                                       */

static const char hello_hex[] =
	"3333333333333333333333333333333333333333333333333333333333333333"
	"0000000000000102"
	"00000005" "6e6f646531"		/* "node1" */
	"0000000000000007" "0000000000000009"
	"55555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555";

static void
test_hello_and_request(void **state)
{
	uint8_t		chain[32];
	uint8_t		sig[64];
	uint8_t		sender[32];
	ll_hello	h = {chain, 258, {"node1", 5}, 7, 9, sig};
	ll_hello	d;
	ll_buf		buf;
	uint8_t    *expect;
	size_t		len;
	size_t		i;
	uint8_t		hashes[3 * 32];
	const uint8_t *got;
	uint16_t	n;

	(void) state;
	memset(chain, 0x33, 32);
	memset(sig, 0x55, 64);
	memset(sender, 0x66, 32);
	expect = unhex(hello_hex, &len);
	ll_buf_init(&buf, std_realloc);
	assert_int_equal(ll_hello_encode(&buf, &h), LL_WIRE_OK);
	assert_int_equal(buf.len, len);
	assert_memory_equal(buf.data, expect, len);
	assert_int_equal(ll_hello_decode(expect, len, &d), LL_WIRE_OK);
	assert_int_equal(d.height, 258);
	assert_int_equal(d.name.len, 5);
	assert_int_equal(d.epoch, 7);
	assert_int_equal(d.seq, 9);
	assert_memory_equal(d.sig, sig, 64);
	/* what is signed: a domain tag, the sender's key, the body but its signature */
	buf.len = 0;
	assert_int_equal(ll_hello_sign_bytes(&buf, sender, (ll_wire_str) {"customs", 7}, &h), LL_WIRE_OK);
	assert_int_equal(buf.len, 8 + 32 + 4 + 7 + len - 64);
	assert_memory_equal(buf.data, "llhello2", 8);
	assert_memory_equal(buf.data + 8, sender, 32);
	assert_memory_equal(buf.data + 44, "customs", 7);
	assert_memory_equal(buf.data + 51, expect, len - 64);
	/* one key signs every channel's hellos: the channel is bound */
	{
		ll_buf		other;

		ll_buf_init(&other, std_realloc);
		assert_int_equal(ll_hello_sign_bytes(&other, sender, (ll_wire_str) {"courier", 7}, &h), LL_WIRE_OK);
		assert_int_equal(other.len, buf.len);
		assert_memory_not_equal(other.data, buf.data, buf.len);
		free(other.data);
	}
	h.sig = NULL;
	assert_int_equal(ll_hello_encode(&buf, &h), LL_WIRE_ERR_STATE);
	h.sig = sig;
	buf.len = 0;
	for (i = 0; i < len; i++)
		assert_int_equal(ll_hello_decode(expect, i, &d), LL_WIRE_ERR_TRUNCATED);
	put_be32(expect + 40, 0);
	assert_int_equal(ll_hello_decode(expect, 44, &d), LL_WIRE_ERR_FIELD);
	put_be32(expect + 40, 256);
	assert_int_equal(ll_hello_decode(expect, len, &d), LL_WIRE_ERR_LIMIT);
	h.name.len = 0;
	assert_int_equal(ll_hello_encode(&buf, &h), LL_WIRE_ERR_FIELD);
	free(expect);

	memset(hashes, 0x77, sizeof(hashes));
	buf.len = 0;
	assert_int_equal(ll_batch_req_encode(&buf, hashes, 3), LL_WIRE_OK);
	assert_int_equal(buf.len, 2 + 96);
	assert_int_equal(buf.data[1], 3);
	assert_int_equal(ll_batch_req_decode(buf.data, buf.len, &n, &got), LL_WIRE_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(got, hashes, 96);
	assert_int_equal(ll_batch_req_decode(buf.data, buf.len - 1, &n, &got), LL_WIRE_ERR_TRUNCATED);
	ll_buf_put_u8(&buf, 0);
	assert_int_equal(ll_batch_req_decode(buf.data, buf.len, &n, &got), LL_WIRE_ERR_TRAILING);
	buf.data[1] = 0;
	assert_int_equal(ll_batch_req_decode(buf.data, buf.len, &n, &got), LL_WIRE_ERR_FIELD);
	buf.data[0] = 0x04;
	buf.data[1] = 0x01;			/* 1025 */
	assert_int_equal(ll_batch_req_decode(buf.data, buf.len, &n, &got), LL_WIRE_ERR_LIMIT);
	assert_int_equal(ll_batch_req_encode(&buf, hashes, 0), LL_WIRE_ERR_FIELD);
	assert_int_equal(ll_batch_req_encode(&buf, hashes, LL_BATCH_REQ_MAX + 1), LL_WIRE_ERR_LIMIT);
	free(buf.data);
}

static void
test_frames(void **state)
{
	sample		s;
	ll_buf		list;
	ll_frame_iter it;
	ll_frame	f;
	ll_batch	b;
	ll_batch_builder bb;
	ll_hello	h;
	uint8_t		hashes[32];
	uint8_t		sig64[64] = {0};
	const uint8_t *got;
	uint16_t	n;
	size_t		mark;
	size_t		bounds[5];
	size_t		i;
	size_t		k;
	int			rc;

	(void) state;
	sample_build(&s);
	memset(hashes, 0x42, 32);
	ll_buf_init(&list, std_realloc);
	bounds[0] = 0;
	assert_int_equal(ll_frame_append(&list, LL_FRAME_CONSENSUS, (const uint8_t *) "bft", 3), LL_WIRE_OK);
	bounds[1] = list.len;
	assert_int_equal(ll_frame_append(&list, LL_FRAME_BATCH, s.out.data, s.out.len), LL_WIRE_OK);
	bounds[2] = list.len;
	mark = ll_frame_begin(&list, LL_FRAME_BATCH_REQ);
	assert_int_equal(ll_batch_req_encode(&list, hashes, 1), LL_WIRE_OK);
	assert_int_equal(ll_frame_end(&list, mark), LL_WIRE_OK);
	bounds[3] = list.len;
	mark = ll_frame_begin(&list, LL_FRAME_HELLO);
	assert_int_equal(ll_hello_encode(&list, &(ll_hello) {hashes, 9, {"n", 1}, 1, 1, sig64}), LL_WIRE_OK);
	assert_int_equal(ll_frame_end(&list, mark), LL_WIRE_OK);
	bounds[4] = list.len;
	/* a batch built straight into a frame */
	mark = ll_frame_begin(&list, LL_FRAME_BATCH);
	ll_batch_begin(&bb, &list, &s.scratch, SIZE_MAX, s.chain, s.origin, 6, 0);
	ll_batch_remove_member_tx(&bb, 1, removed_pk);
	assert_int_equal(ll_batch_finish(&bb, bft_ed25519_sign, s.key, NULL), LL_WIRE_OK);
	assert_int_equal(ll_frame_end(&list, mark), LL_WIRE_OK);

	ll_frame_iter_init(&it, list.data, list.len);
	assert_int_equal(ll_frame_next(&it, &f), 1);
	assert_int_equal(f.kind, LL_FRAME_CONSENSUS);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.body, "bft", 3);
	assert_int_equal(ll_frame_next(&it, &f), 1);
	assert_int_equal(f.kind, LL_FRAME_BATCH);
	assert_int_equal(decode_real(f.body, f.len, &b), LL_WIRE_OK);
	assert_memory_equal(b.batch_hash, s.hash, 32);
	assert_int_equal(ll_frame_next(&it, &f), 1);
	assert_int_equal(f.kind, LL_FRAME_BATCH_REQ);
	assert_int_equal(ll_batch_req_decode(f.body, f.len, &n, &got), LL_WIRE_OK);
	assert_int_equal(ll_frame_next(&it, &f), 1);
	assert_int_equal(ll_hello_decode(f.body, f.len, &h), LL_WIRE_OK);
	assert_int_equal(h.height, 9);
	assert_int_equal(ll_frame_next(&it, &f), 1);
	assert_int_equal(decode_real(f.body, f.len, &b), LL_WIRE_OK);
	assert_int_equal(b.batch_seq, 6);
	assert_int_equal(ll_frame_next(&it, &f), 0);
	assert_int_equal(ll_frame_next(&it, &f), 0);

	/* truncation: prefixes ending between frames are shorter lists */
	for (i = 0; i <= bounds[4]; i++)
	{
		bool		boundary = false;

		for (k = 0; k < 5; k++)
			boundary |= bounds[k] == i;
		ll_frame_iter_init(&it, list.data, i);
		while ((rc = ll_frame_next(&it, &f)) == 1)
			;
		assert_int_equal(rc, boundary ? 0 : LL_WIRE_ERR_TRUNCATED);
		assert_int_equal(ll_frame_next(&it, &f), rc);
	}

	/* unknown kinds, sticky */
	list.data[bounds[1]] = LL_FRAME_AUTH + 1;
	ll_frame_iter_init(&it, list.data, list.len);
	assert_int_equal(ll_frame_next(&it, &f), 1);
	assert_int_equal(ll_frame_next(&it, &f), LL_WIRE_ERR_KIND);
	assert_int_equal(ll_frame_next(&it, &f), LL_WIRE_ERR_KIND);
	list.data[0] = 0;
	ll_frame_iter_init(&it, list.data, list.len);
	assert_int_equal(ll_frame_next(&it, &f), LL_WIRE_ERR_KIND);
	ll_frame_iter_init(&it, NULL, 0);
	assert_int_equal(ll_frame_next(&it, &f), 0);

	list.len = 0;
	assert_int_equal(ll_frame_append(&list, 0, NULL, 0), LL_WIRE_ERR_KIND);
	assert_int_equal(ll_frame_append(&list, LL_FRAME_AUTH + 1, NULL, 0), LL_WIRE_ERR_KIND);
	mark = ll_frame_begin(&list, 7);
	assert_int_equal(ll_frame_end(&list, mark), LL_WIRE_ERR_KIND);
	assert_int_equal(list.len, 0);
	assert_int_equal(ll_frame_end(&list, 3), LL_WIRE_ERR_STATE);
	free(list.data);
	sample_free(&s);
}

static void
test_strerror(void **state)
{
	int			e;
	int			f;

	(void) state;
	for (e = LL_WIRE_ERR_STATE; e <= LL_WIRE_OK; e++)
	{
		assert_string_not_equal(ll_wire_strerror(e), "unknown error");
		for (f = LL_WIRE_ERR_STATE; f < e; f++)
			assert_string_not_equal(ll_wire_strerror(e), ll_wire_strerror(f));
	}
	assert_string_equal(ll_wire_strerror(-99), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_genesis_known_bytes),
		cmocka_unit_test(test_genesis_decode_iterate),
		cmocka_unit_test(test_genesis_encode_rejects),
		cmocka_unit_test(test_genesis_decode_rejects),
		cmocka_unit_test(test_genesis_duplicate_names),
		cmocka_unit_test(test_genesis_limits),
		cmocka_unit_test(test_payload_known_bytes),
		cmocka_unit_test(test_payload_rejects),
		cmocka_unit_test(test_batch_roundtrip),
		cmocka_unit_test(test_batch_truncation),
		cmocka_unit_test(test_batch_tamper),
		cmocka_unit_test(test_batch_redact),
		cmocka_unit_test(test_batch_limits),
		cmocka_unit_test(test_batch_content_mismatch),
		cmocka_unit_test(test_batch_table_limits),
		cmocka_unit_test(test_batch_declare_table),
		cmocka_unit_test(test_batch_complete_top_tier),
		cmocka_unit_test(test_batch_builder_misuse),
		cmocka_unit_test(test_batch_nomem),
		cmocka_unit_test(test_hello_and_request),
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
