/*
 * test_auth.c
 *		cmocka tests for link authenticators: X25519 link keys and
 *		HMAC-SHA256 (src/bft_crypto.c), the key announcement and the MAC
 *		frame (src/ll_wire.c).
 *
 * The HMAC known answer was computed with Python's hmac module over the
 * same bytes, not by this code.
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

static void *
std_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static void
fill(uint8_t *p, uint8_t v, size_t n)
{
	memset(p, v, n);
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	size_t		i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* ------------------------------------------------------------------ */

static void
test_mac_known_answer(void **state)
{
	uint8_t		key[32],
				s[32],
				r[32],
				mac[32];
	char		h[65];

	(void) state;
	fill(key, 9, 32);
	fill(s, 2, 32);
	fill(r, 3, 32);
	/* first under another key: the one context kept must be re-keyed */
	assert_int_equal(bft_link_mac(key, s, r, 7, (const uint8_t *) "abc", 3, mac), 0);
	fill(key, 1, 32);
	assert_int_equal(bft_link_mac(key, s, r, 7, (const uint8_t *) "abc", 3, mac), 0);
	hex(mac, 32, h);
	/* HMAC-SHA256(key, sender | receiver | 7 as 8 bytes big-endian | "abc") */
	assert_string_equal(h, "4968712366c0ffd8367b1f1f85d40133a697be01072bc68d444168d644059999");
	assert_true(bft_link_mac_ok(key, s, r, 7, (const uint8_t *) "abc", 3, mac));
}

static void
test_mac_rejects_changes(void **state)
{
	uint8_t		key[32],
				other[32],
				s[32],
				r[32],
				mac[32];
	uint8_t		data[100];

	(void) state;
	fill(key, 7, 32);
	fill(other, 8, 32);
	fill(s, 2, 32);
	fill(r, 3, 32);
	fill(data, 0x5a, sizeof(data));
	assert_int_equal(bft_link_mac(key, s, r, 1, data, sizeof(data), mac), 0);
	assert_true(bft_link_mac_ok(key, s, r, 1, data, sizeof(data), mac));
	/* reflected back to its sender as the peer's */
	assert_false(bft_link_mac_ok(key, r, s, 1, data, sizeof(data), mac));
	/* another link's key */
	assert_false(bft_link_mac_ok(other, s, r, 1, data, sizeof(data), mac));
	/* the same call under another number: a replay cannot renumber it */
	assert_false(bft_link_mac_ok(key, s, r, 2, data, sizeof(data), mac));
	assert_false(bft_link_mac_ok(key, s, r, 1ULL << 56, data, sizeof(data), mac));
	/* truncated */
	assert_false(bft_link_mac_ok(key, s, r, 1, data, sizeof(data) - 1, mac));
	/* one bit of the data, one bit of the MAC */
	data[50] ^= 1;
	assert_false(bft_link_mac_ok(key, s, r, 1, data, sizeof(data), mac));
	data[50] ^= 1;
	mac[31] ^= 0x80;
	assert_false(bft_link_mac_ok(key, s, r, 1, data, sizeof(data), mac));
	/* empty data still has a MAC */
	assert_int_equal(bft_link_mac(key, s, r, 1, NULL, 0, mac), 0);
	assert_true(bft_link_mac_ok(key, s, r, 1, NULL, 0, mac));
}

static void
test_link_key_agreement(void **state)
{
	uint8_t		chain[32],
				chain2[32],
				na[32],
				nb[32],
				nc[32],
				xa[32],
				xb[32],
				xc[32];
	uint8_t		kab[32],
				kba[32],
				kcb[32],
				k2[32];
	bft_x25519_key *a,
			   *b,
			   *c;

	(void) state;
	fill(chain, 0x11, 32);
	fill(chain2, 0x12, 32);
	fill(na, 0xa0, 32);
	fill(nb, 0xb0, 32);
	fill(nc, 0xc0, 32);
	a = bft_x25519_generate(xa);
	b = bft_x25519_generate(xb);
	c = bft_x25519_generate(xc);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_memory_not_equal(xa, xb, 32);
	/* both ends derive the same key */
	assert_int_equal(bft_link_key(a, chain, na, xa, nb, xb, kab), 0);
	assert_int_equal(bft_link_key(b, chain, nb, xb, na, xa, kba), 0);
	assert_memory_equal(kab, kba, 32);
	/* a third node claiming to be a, with a's public X25519 key, cannot */
	assert_int_equal(bft_link_key(c, chain, na, xa, nb, xb, kcb), 0);
	assert_memory_not_equal(kab, kcb, 32);
	/* another chain, or other node keys, give another key */
	assert_int_equal(bft_link_key(a, chain2, na, xa, nb, xb, k2), 0);
	assert_memory_not_equal(kab, k2, 32);
	assert_int_equal(bft_link_key(a, chain, nc, xa, nb, xb, k2), 0);
	assert_memory_not_equal(kab, k2, 32);
	/* no key of our own: refused, not a crash */
	assert_int_equal(bft_link_key(NULL, chain, na, xa, nb, xb, k2), -1);
	bft_x25519_free(a);
	bft_x25519_free(b);
	bft_x25519_free(c);
	bft_x25519_free(NULL);
}

static void
test_kex_roundtrip_and_signature(void **state)
{
	uint8_t		seed[32],
				node[32],
				chain[32],
				x[32],
				sb[LL_KEX_SIGN_LEN],
				sb2[LL_KEX_SIGN_LEN],
				sig[64];
	bft_ed25519_key *k;
	ll_buf		out;
	ll_kex		d;

	(void) state;
	fill(seed, 0x42, 32);
	fill(chain, 0x11, 32);
	fill(x, 0x77, 32);
	k = bft_ed25519_new(seed);
	assert_non_null(k);
	bft_ed25519_pubkey(k, node);
	ll_kex_sign_bytes(chain, node, x, 12345, sb);
	assert_memory_equal(sb, "llkex1\0\0", 8);
	assert_int_equal(bft_ed25519_sign(k, sb, sizeof(sb), sig), 0);
	ll_buf_init(&out, std_realloc);
	assert_int_equal(ll_kex_encode(&out, x, 12345, sig), LL_WIRE_OK);
	assert_int_equal(out.len, LL_KEX_LEN);
	assert_int_equal(ll_kex_decode(out.data, out.len, &d), LL_WIRE_OK);
	assert_int_equal(d.epoch, 12345);
	assert_memory_equal(d.xpub, x, 32);
	ll_kex_sign_bytes(chain, node, d.xpub, d.epoch, sb2);
	assert_true(bft_ed25519_verify(NULL, node, sb2, sizeof(sb2), d.sig));
	/* a replayed announcement cannot be moved to another epoch or key */
	ll_kex_sign_bytes(chain, node, d.xpub, d.epoch + 1, sb2);
	assert_false(bft_ed25519_verify(NULL, node, sb2, sizeof(sb2), d.sig));
	/* malformed bodies */
	assert_int_equal(ll_kex_decode(out.data, out.len - 1, &d), LL_WIRE_ERR_TRUNCATED);
	ll_buf_put_u8(&out, 0);
	assert_true(ll_kex_decode(out.data, out.len, &d) < 0);
	ll_buf_reset(&out);
	assert_int_equal(ll_kex_encode(&out, x, 0, sig), LL_WIRE_OK);
	assert_int_equal(ll_kex_decode(out.data, out.len, &d), LL_WIRE_ERR_FIELD);
	free(out.data);
	bft_ed25519_free(k);
}

static void
test_frames_auth(void **state)
{
	ll_buf		f;
	uint8_t		mac[32],
				auth[LL_AUTH_LEN];
	size_t		covered = 0,
				before;
	uint64_t	seq = 0;
	const uint8_t *m = NULL;

	(void) state;
	fill(mac, 0x33, 32);
	ll_auth_encode(0x0102030405060708ULL, mac, auth);
	ll_buf_init(&f, std_realloc);
	/* no frames, or none with a MAC */
	assert_false(ll_frames_auth(f.data, 0, &covered, &seq, &m));
	assert_int_equal(ll_frame_append(&f, LL_FRAME_HELLO, (const uint8_t *) "hi", 2), LL_WIRE_OK);
	assert_int_equal(ll_frame_append(&f, LL_FRAME_BATCH, (const uint8_t *) "body", 4), LL_WIRE_OK);
	assert_false(ll_frames_auth(f.data, f.len, &covered, &seq, &m));
	before = f.len;
	assert_int_equal(ll_frame_append(&f, LL_FRAME_AUTH, auth, sizeof(auth)), LL_WIRE_OK);
	assert_true(ll_frames_auth(f.data, f.len, &covered, &seq, &m));
	assert_int_equal(covered, before);
	assert_true(seq == 0x0102030405060708ULL);
	assert_memory_equal(m, mac, 32);
	/* a frame after the MAC is not covered: the whole call is unauthenticated */
	assert_int_equal(ll_frame_append(&f, LL_FRAME_BATCH, (const uint8_t *) "x", 1), LL_WIRE_OK);
	assert_false(ll_frames_auth(f.data, f.len, &covered, &seq, &m));
	/* a MAC of the wrong length; one without its call number */
	ll_buf_reset(&f);
	assert_int_equal(ll_frame_append(&f, LL_FRAME_AUTH, auth, sizeof(auth) - 1), LL_WIRE_OK);
	assert_false(ll_frames_auth(f.data, f.len, &covered, &seq, &m));
	ll_buf_reset(&f);
	assert_int_equal(ll_frame_append(&f, LL_FRAME_AUTH, mac, 32), LL_WIRE_OK);
	assert_false(ll_frames_auth(f.data, f.len, &covered, &seq, &m));
	/* a truncated run */
	ll_buf_reset(&f);
	assert_int_equal(ll_frame_append(&f, LL_FRAME_AUTH, auth, sizeof(auth)), LL_WIRE_OK);
	assert_false(ll_frames_auth(f.data, f.len - 1, &covered, &seq, &m));
	/* an unknown frame kind */
	f.data[0] = 99;
	assert_false(ll_frames_auth(f.data, f.len, &covered, &seq, &m));
	free(f.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac_known_answer),
		cmocka_unit_test(test_mac_rejects_changes),
		cmocka_unit_test(test_link_key_agreement),
		cmocka_unit_test(test_kex_roundtrip_and_signature),
		cmocka_unit_test(test_frames_auth),
	};

	return cmocka_run_group_tests_name("link authenticators", tests, NULL, NULL);
}
