/*
 * test_core.c
 *		cmocka known-answer tests for the pure-C core (src/ll_core.c).
 *
 * Every hard-coded digest below was computed independently with Python's
 * hashlib (and a recursive RFC 6962 reference in Python), not by this code.
 * The Merkle vectors are the Certificate Transparency reference leaves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ll_core.h"

/* ------------------------------------------------------------------ */
/* helpers independent of the code under test                          */

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

/* Decode a lower-case hex literal; returns byte count. */
static size_t
unhex(const char *hex, uint8_t *out)
{
	size_t		n = strlen(hex) / 2;
	size_t		i;

	assert_int_equal(strlen(hex) % 2, 0);
	for (i = 0; i < n; i++)
		out[i] = (uint8_t) (nib(hex[2 * i]) << 4 | nib(hex[2 * i + 1]));
	return n;
}

static void
assert_hash_hex(const uint8_t *got, const char *expect_hex)
{
	char		hex[2 * LL_HASH_LEN + 1];
	static const char d[] = "0123456789abcdef";
	int			i;

	for (i = 0; i < LL_HASH_LEN; i++)
	{
		hex[2 * i] = d[got[i] >> 4];
		hex[2 * i + 1] = d[got[i] & 15];
	}
	hex[2 * LL_HASH_LEN] = '\0';
	assert_string_equal(hex, expect_hex);
}

static void
assert_buf_equals(const ll_buf *buf, const uint8_t *expect, size_t len)
{
	assert_false(buf->failed);
	assert_int_equal(buf->len, len);
	assert_memory_equal(buf->data, expect, len);
}

static void *
std_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

/* An allocator that refuses everything beyond a budget. */
static size_t alloc_budget;

static void *
budget_realloc(void *p, size_t n)
{
	if (n > alloc_budget)
		return NULL;
	return realloc(p, n);
}

/* ------------------------------------------------------------------ */
/* SHA-256                                                             */

static void
test_sha256_nist(void **state)
{
	uint8_t		h[LL_HASH_LEN];
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char	   *million;

	(void) state;
	assert_true(ll_sha256("", 0, h));
	assert_hash_hex(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_true(ll_sha256(NULL, 0, h));
	assert_hash_hex(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_true(ll_sha256("abc", 3, h));
	assert_hash_hex(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(ll_sha256(m448, strlen(m448), h));
	assert_hash_hex(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	million = malloc(1000000);
	assert_non_null(million);
	memset(million, 'a', 1000000);
	assert_true(ll_sha256(million, 1000000, h));
	assert_hash_hex(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}

static void
test_sha256_prefixed(void **state)
{
	uint8_t		a[LL_HASH_LEN];
	uint8_t		b[LL_HASH_LEN];
	const uint8_t cat[4] = {0x07, 'a', 'b', 'c'};

	(void) state;
	assert_true(ll_sha256_prefixed(0x07, "abc", 3, a));
	assert_true(ll_sha256(cat, sizeof(cat), b));
	assert_memory_equal(a, b, LL_HASH_LEN);

	/* RFC 6962 leaf of the empty entry */
	assert_true(ll_sha256_prefixed(0x00, "", 0, a));
	assert_hash_hex(a, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

/*
 * An entry's Merkle leaf binds entry number and tier to the commitment
 * (vectors from Python's hashlib over the documented layout).
 */
static void
test_entry_leaf(void **state)
{
	uint8_t		c[LL_HASH_LEN];
	uint8_t		a[LL_HASH_LEN];
	uint8_t		b[LL_HASH_LEN];
	int			i;

	(void) state;
	for (i = 0; i < LL_HASH_LEN; i++)
		c[i] = (uint8_t) i;
	assert_true(ll_entry_leaf(17, "customs", 7, c, a));
	assert_hash_hex(a, "b4bb189f516df559523c4a5b4410255eb979f01dc5f7f2419b67014582094f75");
	assert_true(ll_entry_leaf(17, "public", 6, c, b));
	assert_hash_hex(b, "21e11dbf8b32fe3569aea0ea7f4d198a316b93e954a5ec0eb0aeb07909aaedf1");
	assert_true(ll_entry_leaf(18, "customs", 7, c, b));
	assert_memory_not_equal(a, b, LL_HASH_LEN);
	/* never the commitment itself, nor an interior node over it */
	assert_memory_not_equal(a, c, LL_HASH_LEN);
}

/* ------------------------------------------------------------------ */
/* RFC 6962 / Certificate Transparency vectors                         */

static const char *const ct_inputs[8] = {
	"", "00", "10", "2021", "3031", "40414243",
	"5051525354555657", "606162636465666768696a6b6c6d6e6f"
};

static const char *const ct_leaf_hashes[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
	"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
};

/* ct_roots[n - 1] is the root of the first n leaves */
static const char *const ct_roots[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void
ct_leaves(uint8_t leaves[8][LL_HASH_LEN])
{
	uint8_t		in[32];
	int			i;

	for (i = 0; i < 8; i++)
	{
		size_t		n = unhex(ct_inputs[i], in);

		assert_true(ll_leaf_hash(in, n, leaves[i]));
		assert_hash_hex(leaves[i], ct_leaf_hashes[i]);
	}
}

static void
test_merkle_ct_roots(void **state)
{
	uint8_t		leaves[8][LL_HASH_LEN];
	uint8_t		scratch[8 * LL_HASH_LEN];
	uint8_t		root[LL_HASH_LEN];
	size_t		n;

	(void) state;
	ct_leaves(leaves);
	for (n = 1; n <= 8; n++)
	{
		memset(scratch, 0xee, sizeof(scratch));
		assert_true(ll_merkle_root(&leaves[0][0], n, scratch, root));
		assert_hash_hex(root, ct_roots[n - 1]);
	}
	/* the empty tree is SHA-256 of the empty string */
	assert_true(ll_merkle_root(NULL, 0, NULL, root));
	assert_hash_hex(root, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

typedef struct ct_path_vec
{
	size_t		index;
	size_t		size;
	int			len;
	const char *path[3];
} ct_path_vec;

static const ct_path_vec ct_paths[] = {
	{0, 1, 0, {NULL}},
	{0, 8, 3, {
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
	{5, 8, 3, {
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{2, 3, 1, {
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
	{1, 5, 3, {
			"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
	{4, 5, 1, {
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{6, 7, 2, {
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	{3, 4, 2, {
			"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
};

static void
test_merkle_ct_paths(void **state)
{
	uint8_t		leaves[8][LL_HASH_LEN];
	uint8_t		path[8 * LL_HASH_LEN];
	uint8_t		root[LL_HASH_LEN];
	size_t		path_len;
	size_t		v;
	int			j;

	(void) state;
	ct_leaves(leaves);
	for (v = 0; v < sizeof(ct_paths) / sizeof(ct_paths[0]); v++)
	{
		const ct_path_vec *pv = &ct_paths[v];

		assert_true(ll_merkle_path(&leaves[0][0], pv->size, pv->index,
								   path, &path_len));
		assert_int_equal(path_len, pv->len);
		assert_true((size_t) pv->len <= ll_merkle_path_max(pv->size));
		for (j = 0; j < pv->len; j++)
			assert_hash_hex(path + j * LL_HASH_LEN, pv->path[j]);
		unhex(ct_roots[pv->size - 1], root);
		assert_true(ll_merkle_verify(leaves[pv->index], pv->index, pv->size,
									 path, path_len, root));
	}
}

static void
test_merkle_path_max(void **state)
{
	(void) state;
	assert_int_equal(ll_merkle_path_max(0), 0);
	assert_int_equal(ll_merkle_path_max(1), 0);
	assert_int_equal(ll_merkle_path_max(2), 1);
	assert_int_equal(ll_merkle_path_max(3), 2);
	assert_int_equal(ll_merkle_path_max(4), 2);
	assert_int_equal(ll_merkle_path_max(5), 3);
	assert_int_equal(ll_merkle_path_max(8), 3);
	assert_int_equal(ll_merkle_path_max(9), 4);
	assert_int_equal(ll_merkle_path_max((size_t) 1 << 20), 20);
	assert_int_equal(ll_merkle_path_max(((size_t) 1 << 20) + 1), 21);
	assert_int_equal(ll_merkle_path_max(SIZE_MAX), sizeof(size_t) * 8);
}

/* ------------------------------------------------------------------ */
/* Exhaustive small trees against an independent recursive reference    */

#define MAXN 70

static size_t
ref_split(size_t n)
{
	size_t		k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

/* Recursive MTH straight from RFC 6962 section 2.1. */
static void
ref_mth(const uint8_t *leaves, size_t n, uint8_t out[LL_HASH_LEN])
{
	uint8_t		l[LL_HASH_LEN];
	uint8_t		r[LL_HASH_LEN];
	size_t		k;

	if (n == 1)
	{
		memcpy(out, leaves, LL_HASH_LEN);
		return;
	}
	k = ref_split(n);
	ref_mth(leaves, k, l);
	ref_mth(leaves + k * LL_HASH_LEN, n - k, r);
	assert_true(ll_node_hash(l, r, out));
}

/*
 * Shape of PATH(m, n): one char per path element, bottom-up, 'R' when the
 * sibling is to the right.  Two (index, size) pairs verify with the same
 * path exactly when their shapes agree.
 */
static void
ref_shape(size_t m, size_t n, char *shape)
{
	char		tmp[80];
	size_t		len = 0;
	size_t		i;

	while (n > 1)
	{
		size_t		k = ref_split(n);

		if (m < k)
		{
			tmp[len++] = 'R';
			n = k;
		}
		else
		{
			tmp[len++] = 'L';
			m -= k;
			n -= k;
		}
	}
	for (i = 0; i < len; i++)
		shape[i] = tmp[len - 1 - i];
	shape[len] = '\0';
}

static void
make_leaves(uint8_t *leaves, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		uint8_t		e[4] = {'L', (uint8_t) (i >> 8), (uint8_t) i, 0x5a};

		assert_true(ll_leaf_hash(e, sizeof(e), leaves + i * LL_HASH_LEN));
	}
}

static void
test_merkle_exhaustive(void **state)
{
	uint8_t    *leaves = malloc(MAXN * LL_HASH_LEN);
	uint8_t    *scratch = malloc(MAXN * LL_HASH_LEN);
	uint8_t		roots[MAXN + 1][LL_HASH_LEN];
	uint8_t		path[16 * LL_HASH_LEN];
	uint8_t		ref[LL_HASH_LEN];
	size_t		n;

	(void) state;
	assert_non_null(leaves);
	assert_non_null(scratch);
	make_leaves(leaves, MAXN);

	for (n = 1; n <= MAXN; n++)
	{
		assert_true(ll_merkle_root(leaves, n, scratch, roots[n]));
		ref_mth(leaves, n, ref);
		assert_memory_equal(roots[n], ref, LL_HASH_LEN);
	}

	for (n = 1; n <= MAXN; n++)
	{
		size_t		i;

		for (i = 0; i < n; i++)
		{
			const uint8_t *leaf = leaves + i * LL_HASH_LEN;
			size_t		path_len;
			size_t		j;
			size_t		n2;
			char		shape[80];

			assert_true(ll_merkle_path(leaves, n, i, path, &path_len));
			ref_shape(i, n, shape);
			assert_int_equal(path_len, strlen(shape));
			assert_true(path_len <= ll_merkle_path_max(n));
			assert_true(ll_merkle_verify(leaf, i, n, path, path_len, roots[n]));

			/* wrong index: never accepted within the same tree */
			for (j = 0; j < n; j++)
				if (j != i)
					assert_false(ll_merkle_verify(leaf, j, n, path, path_len,
												  roots[n]));
			assert_false(ll_merkle_verify(leaf, n, n, path, path_len, roots[n]));
			assert_false(ll_merkle_verify(leaf, i + 1000, n, path, path_len,
										  roots[n]));

			/*
			 * Wrong size: accepted exactly when the claimed size gives the
			 * same hashing shape (e.g. PATH(0, 3) also fits a size of 4).
			 * That is why a verifier must take the size from a commitment.
			 */
			assert_false(ll_merkle_verify(leaf, i, 0, path, path_len, roots[n]));
			for (n2 = (n > 10 ? n - 10 : 1); n2 <= n + 10; n2++)
			{
				char		shape2[80];

				if (n2 == n || i >= n2)
					continue;
				ref_shape(i, n2, shape2);
				assert_int_equal(ll_merkle_verify(leaf, i, n2, path, path_len,
												  roots[n]),
								 strcmp(shape, shape2) == 0);
			}

			/* a root of a different size never matches */
			if (n > 1)
				assert_false(ll_merkle_verify(leaf, i, n, path, path_len,
											  roots[n - 1]));

			/* truncated and extended paths */
			if (path_len > 0)
				assert_false(ll_merkle_verify(leaf, i, n, path, path_len - 1,
											  roots[n]));
			memcpy(path + path_len * LL_HASH_LEN, leaf, LL_HASH_LEN);
			assert_false(ll_merkle_verify(leaf, i, n, path, path_len + 1,
										  roots[n]));

			/* one flipped bit anywhere: leaf, each path element, root */
			{
				uint8_t		bad[LL_HASH_LEN];
				size_t		k;

				memcpy(bad, leaf, LL_HASH_LEN);
				bad[i % LL_HASH_LEN] ^= 0x01;
				assert_false(ll_merkle_verify(bad, i, n, path, path_len,
											  roots[n]));
				for (k = 0; k < path_len; k++)
				{
					path[k * LL_HASH_LEN + 31] ^= 0x80;
					assert_false(ll_merkle_verify(leaf, i, n, path, path_len,
												  roots[n]));
					path[k * LL_HASH_LEN + 31] ^= 0x80;
				}
				memcpy(bad, roots[n], LL_HASH_LEN);
				bad[0] ^= 0x40;
				assert_false(ll_merkle_verify(leaf, i, n, path, path_len, bad));
			}
		}
		/* out-of-range index has no path */
		{
			size_t		path_len = 99;

			assert_false(ll_merkle_path(leaves, n, n, path, &path_len));
			assert_int_equal(path_len, 0);
		}
	}
	free(leaves);
	free(scratch);
}

static void
test_merkle_wrong_size_ct(void **state)
{
	uint8_t		leaves[8][LL_HASH_LEN];
	uint8_t		path[4 * LL_HASH_LEN];
	uint8_t		root3[LL_HASH_LEN];
	uint8_t		root4[LL_HASH_LEN];
	size_t		path_len;

	(void) state;
	ct_leaves(leaves);
	unhex(ct_roots[2], root3);
	unhex(ct_roots[3], root4);
	/* PATH(2, 3) has one element; size 4 needs two */
	assert_true(ll_merkle_path(&leaves[0][0], 3, 2, path, &path_len));
	assert_true(ll_merkle_verify(leaves[2], 2, 3, path, path_len, root3));
	assert_false(ll_merkle_verify(leaves[2], 2, 4, path, path_len, root3));
	assert_false(ll_merkle_verify(leaves[2], 2, 4, path, path_len, root4));
	assert_false(ll_merkle_verify(leaves[2], 2, 2, path, path_len, root3));
	assert_false(ll_merkle_verify(leaves[2], 2, 5, path, path_len, root3));
	/* PATH(4, 5) = [root4] also looks like PATH(2, 3)'s shape but index 4 */
	assert_true(ll_merkle_path(&leaves[0][0], 5, 4, path, &path_len));
	assert_false(ll_merkle_verify(leaves[4], 4, 4, path, path_len, root4));
	assert_false(ll_merkle_verify(leaves[4], 4, 6, path, path_len, root4));
}

static void
test_merkle_large(void **state)
{
	size_t		n = 5000;
	uint8_t    *leaves = malloc(n * LL_HASH_LEN);
	uint8_t    *scratch = malloc(n * LL_HASH_LEN);
	uint8_t		root[LL_HASH_LEN];
	uint8_t		ref[LL_HASH_LEN];
	uint8_t		path[64 * LL_HASH_LEN];
	size_t		path_len;
	size_t		i;

	(void) state;
	assert_non_null(leaves);
	assert_non_null(scratch);
	make_leaves(leaves, n);
	assert_true(ll_merkle_root(leaves, n, scratch, root));
	ref_mth(leaves, n, ref);
	assert_memory_equal(root, ref, LL_HASH_LEN);
	for (i = 0; i < n; i += 97)
	{
		assert_true(ll_merkle_path(leaves, n, i, path, &path_len));
		assert_true(path_len <= ll_merkle_path_max(n));
		assert_true(ll_merkle_verify(leaves + i * LL_HASH_LEN, i, n, path,
									 path_len, root));
	}
	assert_true(ll_merkle_path(leaves, n, n - 1, path, &path_len));
	assert_true(ll_merkle_verify(leaves + (n - 1) * LL_HASH_LEN, n - 1, n,
								 path, path_len, root));
	free(leaves);
	free(scratch);
}

/* ------------------------------------------------------------------ */
/* Encodings, byte-exact                                               */

static const uint8_t entry1_bytes[] = {
	'L', 'L', 'E', '1',
	0, 0, 0, 19,
	'p', 'u', 'b', 'l', 'i', 'c', '.', 'd', 'e', 'c', 'l', 'a', 'r', 'a',
	't', 'i', 'o', 'n', 's',
	0, 0, 0, 0, 0, 0, 0, 17,	/* entry id */
	0, 0, 0, 7, 'c', 'u', 's', 't', 'o', 'm', 's',
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,	/* salt */
	0, 0, 0, 2,					/* ncols */
	0, 0, 0, 2, 'i', 'd', 1, 0, 0, 0, 1, '1',
	0, 0, 0, 4, 'n', 'o', 't', 'e', 0
};

static void
test_entry_encoding(void **state)
{
	ll_buf		buf;
	uint8_t		salt[LL_SALT_LEN];
	uint8_t		h[LL_HASH_LEN];
	int			i;

	(void) state;
	for (i = 0; i < LL_SALT_LEN; i++)
		salt[i] = (uint8_t) i;
	ll_buf_init(&buf, std_realloc);
	ll_entry_begin(&buf, "public.declarations", 19, 17, "customs", 7, salt, 2);
	ll_entry_value(&buf, "id", 2, "1", 1);
	ll_entry_null(&buf, "note", 4);
	assert_buf_equals(&buf, entry1_bytes, sizeof(entry1_bytes));
	assert_true(ll_leaf_hash(buf.data, buf.len, h));
	assert_hash_hex(h, "be66c749e8072fd521de0e1f36013f11515440e0147b1f2113cc64efce1486e7");
	free(buf.data);
}

static void
test_entry_encoding_edges(void **state)
{
	/* max id, empty tier, 0xff salt, '' vs NULL vs UTF-8 */
	static const uint8_t expect[] = {
		'L', 'L', 'E', '1',
		0, 0, 0, 1, 't',
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 0,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 3,
		0, 0, 0, 1, 'a', 1, 0, 0, 0, 0,
		0, 0, 0, 1, 'b', 0,
		0, 0, 0, 2, 0xc3, 0xa9, 1, 0, 0, 0, 2, 0xc3, 0xbc
	};
	ll_buf		buf;
	uint8_t		salt[LL_SALT_LEN];
	uint8_t		h[LL_HASH_LEN];

	(void) state;
	memset(salt, 0xff, sizeof(salt));
	ll_buf_init(&buf, std_realloc);
	/* stale content must vanish on reset */
	ll_buf_put(&buf, "junk", 4);
	ll_buf_reset(&buf);
	ll_entry_begin(&buf, "t", 1, UINT64_MAX, "", 0, salt, 3);
	ll_entry_value(&buf, "a", 1, "", 0);
	ll_entry_null(&buf, "b", 1);
	ll_entry_value(&buf, "\xc3\xa9", 2, "\xc3\xbc", 2);
	assert_buf_equals(&buf, expect, sizeof(expect));
	assert_true(ll_leaf_hash(buf.data, buf.len, h));
	assert_hash_hex(h, "235b88a329c613cac34c063cbbd1df1a374d95e7ba073ceb5cffbafaf1453647");
	free(buf.data);
}

static void
test_block_encoding(void **state)
{
	static const uint8_t expect[] = {
		'L', 'L', 'B', '1',
		0, 0, 0, 7, 'c', 'u', 's', 't', 'o', 'm', 's',
		0, 0, 0, 0, 0, 0, 0, 3,
		0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
		0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
		0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
		0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
		0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
		0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
		0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
		0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
		/* 1732464000000000 us = 0x000627AAB54E6000 */
		0x00, 0x06, 0x27, 0xaa, 0xb5, 0x4e, 0x60, 0x00,
		0, 0, 0, 2,
		0, 0, 0, 5,
		0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
		0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
		0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33,
		0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33
	};
	ll_block_header hdr;
	ll_buf		buf;
	ll_buf		scratch;
	uint8_t		h[LL_HASH_LEN];

	(void) state;
	memset(&hdr, 0, sizeof(hdr));
	hdr.channel = "customs";
	hdr.channel_len = 7;
	hdr.height = 3;
	memset(hdr.prev_hash, 0x11, LL_HASH_LEN);
	memset(hdr.merkle_root, 0x22, LL_HASH_LEN);
	hdr.time_us = INT64_C(1732464000000000);
	hdr.tx_count = 2;
	hdr.row_count = 5;
	memset(hdr.config_hash, 0x33, LL_HASH_LEN);

	ll_buf_init(&buf, std_realloc);
	ll_block_encode(&buf, &hdr);
	assert_buf_equals(&buf, expect, sizeof(expect));

	ll_buf_init(&scratch, std_realloc);
	ll_buf_put(&scratch, "leftover", 8);
	assert_true(ll_block_hash(&hdr, &scratch, h));
	assert_hash_hex(h, "99e15dc2ea4361a519dc325f10b61a2bd91157ae7f566ad5444a7ade9fa98875");
	/* a second hash with the same scratch gives the same answer */
	assert_true(ll_block_hash(&hdr, &scratch, h));
	assert_hash_hex(h, "99e15dc2ea4361a519dc325f10b61a2bd91157ae7f566ad5444a7ade9fa98875");

	free(buf.data);
	free(scratch.data);
}

static void
test_block_negative_time(void **state)
{
	ll_block_header hdr;
	ll_buf		buf;
	uint8_t		h[LL_HASH_LEN];
	uint8_t		expect[200];
	size_t		n;

	(void) state;
	n = unhex("4c4c4231000000016300000000000000000000000000000000000000000000000000000000000000000000000000000000e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855ffffffffffffffff00000000000000000000000000000000000000000000000000000000000000000000000000000000",
			  expect);
	memset(&hdr, 0, sizeof(hdr));
	hdr.channel = "c";
	hdr.channel_len = 1;
	assert_true(ll_sha256("", 0, hdr.merkle_root));
	hdr.time_us = -1;
	ll_buf_init(&buf, std_realloc);
	ll_block_encode(&buf, &hdr);
	assert_buf_equals(&buf, expect, n);
	assert_true(ll_block_hash(&hdr, &buf, h));
	assert_hash_hex(h, "a4009b2b87bc80c58461390dd953974f58e3b21ede78ae108da05cd2d1bb98e3");
	free(buf.data);
}

static void
test_config_encoding(void **state)
{
	static const uint8_t expect[] = {
		'L', 'L', 'C', '1',
		0, 0, 0, 7, 'c', 'u', 's', 't', 'o', 'm', 's',
		0, 0, 0, 2,
		0, 0, 0, 6, 'p', 'u', 'b', 'l', 'i', 'c',
		0, 0, 0, 7, 'c', 'u', 's', 't', 'o', 'm', 's'
	};
	static const uint8_t expect0[] = {'L', 'L', 'C', '1', 0, 0, 0, 1, 'x', 0, 0, 0, 0};
	ll_buf		buf;
	uint8_t		h[LL_HASH_LEN];

	(void) state;
	ll_buf_init(&buf, std_realloc);
	ll_config_begin(&buf, "customs", 7, 2);
	ll_config_tier(&buf, "public", 6);
	ll_config_tier(&buf, "customs", 7);
	assert_buf_equals(&buf, expect, sizeof(expect));
	assert_true(ll_sha256(buf.data, buf.len, h));
	assert_hash_hex(h, "64d50f4a18ad26c09ff780b8f4c8b68c87ca5a92cd2ab6b04e17721d0f8b7710");

	ll_buf_reset(&buf);
	ll_config_begin(&buf, "x", 1, 0);
	assert_buf_equals(&buf, expect0, sizeof(expect0));
	assert_true(ll_sha256(buf.data, buf.len, h));
	assert_hash_hex(h, "85460a44bdfd44c25d3aff66a09538bac0e44bc703f22413be242aeecdb22352");
	free(buf.data);
}

/* ------------------------------------------------------------------ */
/* Buffer                                                              */

static void
test_buf_integers_and_growth(void **state)
{
	static const uint8_t expect[] = {
		0xab,
		0x01, 0x02, 0x03, 0x04,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0xff, 0xff, 0xff, 0xff,
		0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0
	};
	ll_buf		buf;
	size_t		i;

	(void) state;
	ll_buf_init(&buf, std_realloc);
	assert_null(buf.data);
	assert_int_equal(buf.len, 0);
	assert_false(buf.failed);
	ll_buf_put_u8(&buf, 0xab);
	ll_buf_put_u32(&buf, 0x01020304u);
	ll_buf_put_u64(&buf, UINT64_C(0x0102030405060708));
	ll_buf_put_u32(&buf, UINT32_MAX);
	ll_buf_put_u64(&buf, 0);
	ll_buf_put_str(&buf, "", 0);
	ll_buf_put(&buf, NULL, 0);
	assert_buf_equals(&buf, expect, sizeof(expect));

	ll_buf_reset(&buf);
	for (i = 0; i < 100000; i++)
		ll_buf_put_u8(&buf, (uint8_t) i);
	assert_false(buf.failed);
	assert_int_equal(buf.len, 100000);
	assert_true(buf.cap >= buf.len);
	for (i = 0; i < 100000; i += 4999)
		assert_int_equal(buf.data[i], (uint8_t) i);
	free(buf.data);
}

static void
test_buf_failure(void **state)
{
	ll_buf		buf;
	char		big[1000];

	(void) state;
	memset(big, 'x', sizeof(big));
	alloc_budget = 256;
	ll_buf_init(&buf, budget_realloc);
	ll_buf_put(&buf, big, 100);
	assert_false(buf.failed);
	ll_buf_put(&buf, big, 500);
	assert_true(buf.failed);
	/* appends after a failure are ignored, even ones that would fit */
	ll_buf_put_u8(&buf, 1);
	assert_int_equal(buf.len, 100);
	/* reset forgets the failure and keeps the memory */
	ll_buf_reset(&buf);
	assert_false(buf.failed);
	assert_int_equal(buf.len, 0);
	ll_buf_put(&buf, big, 10);
	assert_false(buf.failed);
	assert_int_equal(buf.len, 10);

	/* a string too long for the u32 prefix is refused, not truncated */
	ll_buf_put_str(&buf, big, (size_t) UINT32_MAX + 1);
	assert_true(buf.failed);
	assert_int_equal(buf.len, 10);
	free(buf.data);

	/* block hash reports an encoding failure */
	{
		ll_block_header hdr;
		uint8_t		h[LL_HASH_LEN];

		memset(&hdr, 0, sizeof(hdr));
		hdr.channel = big;
		hdr.channel_len = 500;
		alloc_budget = 64;
		ll_buf_init(&buf, budget_realloc);
		assert_false(ll_block_hash(&hdr, &buf, h));
		free(buf.data);
	}
}

/* ------------------------------------------------------------------ */
/* Hex                                                                 */

static void
test_hex(void **state)
{
	uint8_t		all[256];
	uint8_t		back[256];
	char		hex[513];
	uint8_t		out[4];
	int			i;

	(void) state;
	for (i = 0; i < 256; i++)
		all[i] = (uint8_t) i;
	ll_hex_encode(all, 256, hex);
	assert_int_equal(strlen(hex), 512);
	assert_memory_equal(hex, "000102030405060708090a0b0c0d0e0f10", 34);
	assert_string_equal(hex + 500, "fafbfcfdfeff");
	assert_true(ll_hex_decode(hex, 512, back, 256));
	assert_memory_equal(all, back, 256);

	/* empty */
	hex[0] = 'z';
	ll_hex_encode(all, 0, hex);
	assert_string_equal(hex, "");
	assert_true(ll_hex_decode("", 0, out, 0));

	/* either case, and mixed */
	assert_true(ll_hex_decode("DEADbeef", 8, out, 4));
	assert_int_equal(out[0], 0xde);
	assert_int_equal(out[1], 0xad);
	assert_int_equal(out[2], 0xbe);
	assert_int_equal(out[3], 0xef);
	assert_true(ll_hex_decode("aBcD", 4, out, 2));
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[1], 0xcd);

	/* wrong lengths: odd, short, long */
	assert_false(ll_hex_decode("abc", 3, out, 2));
	assert_false(ll_hex_decode("ab", 2, out, 2));
	assert_false(ll_hex_decode("abcdef", 6, out, 2));
	assert_false(ll_hex_decode("ab", 2, out, 0));

	/* bad characters, including ones adjacent to the valid ranges */
	assert_false(ll_hex_decode("0g", 2, out, 1));
	assert_false(ll_hex_decode("G0", 2, out, 1));
	assert_false(ll_hex_decode("/0", 2, out, 1));
	assert_false(ll_hex_decode(":0", 2, out, 1));
	assert_false(ll_hex_decode("@0", 2, out, 1));
	assert_false(ll_hex_decode("`0", 2, out, 1));
	assert_false(ll_hex_decode(" 0", 2, out, 1));
	assert_false(ll_hex_decode("0\0", 2, out, 1));
	assert_false(ll_hex_decode("0x", 2, out, 1));
	assert_false(ll_hex_decode("\xff" "0", 2, out, 1));

	/* the length argument rules, not a NUL terminator */
	assert_true(ll_hex_decode("0102zz", 4, out, 2));
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_nist),
		cmocka_unit_test(test_sha256_prefixed),
		cmocka_unit_test(test_entry_leaf),
		cmocka_unit_test(test_merkle_ct_roots),
		cmocka_unit_test(test_merkle_ct_paths),
		cmocka_unit_test(test_merkle_path_max),
		cmocka_unit_test(test_merkle_exhaustive),
		cmocka_unit_test(test_merkle_wrong_size_ct),
		cmocka_unit_test(test_merkle_large),
		cmocka_unit_test(test_entry_encoding),
		cmocka_unit_test(test_entry_encoding_edges),
		cmocka_unit_test(test_block_encoding),
		cmocka_unit_test(test_block_negative_time),
		cmocka_unit_test(test_config_encoding),
		cmocka_unit_test(test_buf_integers_and_growth),
		cmocka_unit_test(test_buf_failure),
		cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
