/*
 * ll_core.c
 *		Canonical encodings, SHA-256 and RFC 6962 Merkle trees for loopledger.
 *
 * No PostgreSQL header may be included here: the extension, the offline
 * verifier and the unit tests link this same file, so that a proof is
 * checked by exactly the code that produced it.  See ll_core.h for the byte
 * formats.
 *
 * The only global state is the cached SHA-256 EVP_MD and one reusable
 * EVP_MD_CTX.  Hashing is on the capture hot path (about a million short
 * hashes per second), and fetching the algorithm or allocating a context
 * per call would dominate the cost.  The cache makes these functions
 * non-reentrant across threads, which suits PostgreSQL backends and the
 * single-threaded verifier.
 */
#include "ll_core.h"

#include <string.h>

#include <openssl/evp.h>

/* Deepest possible Merkle tree: a size_t leaf count has at most 64 levels. */
#define LL_MAX_DEPTH 64

static EVP_MD *ll_sha256_md = NULL;
static EVP_MD_CTX *ll_sha256_ctx = NULL;

static bool ll_digest_begin(void);
static bool ll_digest_update(const void *data, size_t len);
static bool ll_digest_end(uint8_t out[LL_HASH_LEN]);
static size_t ll_split_point(size_t n);
static bool ll_subtree_root(const uint8_t *leaves, size_t n,
							uint8_t root[LL_HASH_LEN]);

/* ---------------------------------------------------------------------
 * Byte buffer
 * ---------------------------------------------------------------------
 */

/*
 * ll_buf_init
 *		Make an empty buffer that will grow through realloc_fn; it owns no
 *		memory until the first append.
 */
void
ll_buf_init(ll_buf *buf, ll_realloc_fn realloc_fn)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	buf->failed = false;
	buf->realloc_fn = realloc_fn;
}

/*
 * ll_buf_reset
 *		Empty the buffer but keep its memory, so a buffer reused per row does
 *		not reallocate.  A previous failure is forgotten too: the memory that
 *		is kept is still valid, only the content was lost.
 */
void
ll_buf_reset(ll_buf *buf)
{
	buf->len = 0;
	buf->failed = false;
}

/*
 * ll_buf_grow
 *		Ensure room for extra more bytes; false (and buf->failed) if the size
 *		overflows or the allocator returns NULL.  Capacity doubles so that
 *		appending is amortised O(1).
 */
bool
ll_buf_grow(ll_buf *buf, size_t extra)
{
	size_t		need;
	size_t		newcap;
	void	   *p;

	if (buf->failed)
		return false;
	if (extra > SIZE_MAX - buf->len)
	{
		buf->failed = true;
		return false;
	}
	need = buf->len + extra;
	if (need <= buf->cap)
		return true;

	newcap = buf->cap < 64 ? 64 : buf->cap;
	while (newcap < need)
	{
		if (newcap > SIZE_MAX / 2)
		{
			newcap = need;
			break;
		}
		newcap *= 2;
	}

	p = buf->realloc_fn(buf->data, newcap);
	if (p == NULL)
	{
		/* realloc semantics: the old block is still ours and still valid */
		buf->failed = true;
		return false;
	}
	buf->data = p;
	buf->cap = newcap;
	return true;
}

/* ---------------------------------------------------------------------
 * SHA-256
 * ---------------------------------------------------------------------
 */

/*
 * ll_digest_begin
 *		Start a SHA-256 computation on the cached context, fetching the
 *		algorithm and allocating the context only on first use.
 */
static bool
ll_digest_begin(void)
{
	if (ll_sha256_md == NULL)
	{
		ll_sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (ll_sha256_md == NULL)
			return false;
	}
	if (ll_sha256_ctx == NULL)
	{
		ll_sha256_ctx = EVP_MD_CTX_new();
		if (ll_sha256_ctx == NULL)
			return false;
	}
	/* with an unchanged md, Init_ex2 reuses the provider state: no malloc */
	return EVP_DigestInit_ex2(ll_sha256_ctx, ll_sha256_md, NULL) == 1;
}

/*
 * ll_digest_update
 *		Feed bytes to the computation started by ll_digest_begin.
 */
static bool
ll_digest_update(const void *data, size_t len)
{
	if (len == 0)
		return true;
	return EVP_DigestUpdate(ll_sha256_ctx, data, len) == 1;
}

/*
 * ll_digest_end
 *		Finish the computation.  out may alias an input of the computation,
 *		since all input has been consumed by now.
 */
static bool
ll_digest_end(uint8_t out[LL_HASH_LEN])
{
	unsigned int outlen = 0;

	if (EVP_DigestFinal_ex(ll_sha256_ctx, out, &outlen) != 1)
		return false;
	return outlen == LL_HASH_LEN;
}

/*
 * ll_sha256
 *		SHA-256 of data; false only if OpenSSL fails.
 */
bool
ll_sha256(const void *data, size_t len, uint8_t out[LL_HASH_LEN])
{
	return ll_digest_begin() &&
		ll_digest_update(data, len) &&
		ll_digest_end(out);
}

/*
 * ll_sha256_prefixed
 *		SHA-256(prefix | data) without building the concatenation, so the
 *		domain-separation byte costs no copy.
 */
bool
ll_sha256_prefixed(uint8_t prefix, const void *data, size_t len,
				   uint8_t out[LL_HASH_LEN])
{
	return ll_digest_begin() &&
		ll_digest_update(&prefix, 1) &&
		ll_digest_update(data, len) &&
		ll_digest_end(out);
}

/* ---------------------------------------------------------------------
 * Entries, leaves and nodes
 * ---------------------------------------------------------------------
 */

/*
 * ll_entry_begin
 *		Write the entry prefix; the caller must follow with exactly ncols
 *		column calls, in the order that is to be committed.
 */
void
ll_entry_begin(ll_buf *buf, const char *table, size_t table_len,
			   uint64_t entry_id, const char *tier, size_t tier_len,
			   const uint8_t salt[LL_SALT_LEN], uint32_t ncols)
{
	ll_buf_put(buf, "LLE1", 4);
	ll_buf_put_str(buf, table, table_len);
	ll_buf_put_u64(buf, entry_id);
	ll_buf_put_str(buf, tier, tier_len);
	ll_buf_put(buf, salt, LL_SALT_LEN);
	ll_buf_put_u32(buf, ncols);
}

/*
 * ll_entry_null
 *		Append a NULL column; the 0 tag keeps it distinct from ''.
 */
void
ll_entry_null(ll_buf *buf, const char *col, size_t col_len)
{
	ll_buf_put_str(buf, col, col_len);
	ll_buf_put_u8(buf, 0);
}

/*
 * ll_entry_value
 *		Append a non-NULL column with its canonical text.
 */
void
ll_entry_value(ll_buf *buf, const char *col, size_t col_len,
			   const char *val, size_t val_len)
{
	ll_buf_put_str(buf, col, col_len);
	ll_buf_put_u8(buf, 1);
	ll_buf_put_str(buf, val, val_len);
}

/*
 * ll_leaf_hash
 *		RFC 6962 leaf hash SHA-256(0x00 | entry): the row commitment.
 */
bool
ll_leaf_hash(const uint8_t *entry, size_t len, uint8_t out[LL_HASH_LEN])
{
	return ll_sha256_prefixed(0x00, entry, len, out);
}

/*
 * ll_entry_leaf
 *		SHA-256(0x02 | u64 entry_id | str tier | commitment): the leaf an
 *		entry takes in its block's Merkle tree.  The commitment alone would
 *		leave entry number and tier unauthenticated for a node that holds
 *		no row to check them against.
 */
bool
ll_entry_leaf(uint64_t entry_id, const char *tier, size_t tier_len,
			  const uint8_t commitment[LL_HASH_LEN], uint8_t out[LL_HASH_LEN])
{
	static const uint8_t prefix = 0x02;
	uint8_t		num[8];
	uint8_t		len[4];
	int			i;

	if (tier_len > UINT32_MAX)
		return false;
	for (i = 0; i < 8; i++)
		num[i] = (uint8_t) (entry_id >> (56 - 8 * i));
	for (i = 0; i < 4; i++)
		len[i] = (uint8_t) ((uint32_t) tier_len >> (24 - 8 * i));
	return ll_digest_begin() &&
		ll_digest_update(&prefix, 1) &&
		ll_digest_update(num, sizeof(num)) &&
		ll_digest_update(len, sizeof(len)) &&
		ll_digest_update(tier, tier_len) &&
		ll_digest_update(commitment, LL_HASH_LEN) &&
		ll_digest_end(out);
}

/*
 * ll_node_hash
 *		RFC 6962 interior node SHA-256(0x01 | left | right).  out may alias
 *		left or right, which lets tree building work in place.
 */
bool
ll_node_hash(const uint8_t left[LL_HASH_LEN],
			 const uint8_t right[LL_HASH_LEN],
			 uint8_t out[LL_HASH_LEN])
{
	static const uint8_t node_prefix = 0x01;

	return ll_digest_begin() &&
		ll_digest_update(&node_prefix, 1) &&
		ll_digest_update(left, LL_HASH_LEN) &&
		ll_digest_update(right, LL_HASH_LEN) &&
		ll_digest_end(out);
}

/* ---------------------------------------------------------------------
 * Merkle trees (RFC 6962 section 2.1)
 * ---------------------------------------------------------------------
 */

/*
 * ll_split_point
 *		Largest power of two strictly smaller than n (n >= 2).
 */
static size_t
ll_split_point(size_t n)
{
	size_t		k = 1;

	while (k < n - k)
		k <<= 1;
	return k;
}

/*
 * ll_merkle_root
 *		RFC 6962 MTH over n leaf hashes, in O(n) hashes and no allocation.
 *
 * Pairing adjacent nodes level by level and carrying an odd last node up
 * unchanged yields exactly the RFC's "split at the largest power of two"
 * shape: every left subtree produced is complete, so the lone right-edge
 * node is always the one the recursive definition would leave unpaired.
 * Each level is written over the previous one in scratch, which is safe
 * because node i of a level only reads nodes 2i and 2i+1 of the level below.
 */
bool
ll_merkle_root(const uint8_t *leaves, size_t n, uint8_t *scratch,
			   uint8_t root[LL_HASH_LEN])
{
	const uint8_t *src = leaves;
	size_t		width = n;

	if (n == 0)
		return ll_sha256("", 0, root);
	if (n == 1)
	{
		memmove(root, leaves, LL_HASH_LEN);
		return true;
	}

	while (width > 1)
	{
		size_t		pairs = width / 2;
		size_t		i;

		for (i = 0; i < pairs; i++)
		{
			if (!ll_node_hash(src + 2 * i * LL_HASH_LEN,
							  src + (2 * i + 1) * LL_HASH_LEN,
							  scratch + i * LL_HASH_LEN))
				return false;
		}
		if (width % 2 == 1)
			memmove(scratch + pairs * LL_HASH_LEN,
					src + (width - 1) * LL_HASH_LEN, LL_HASH_LEN);
		width = pairs + width % 2;
		src = scratch;
	}
	memcpy(root, scratch, LL_HASH_LEN);
	return true;
}

/*
 * ll_subtree_root
 *		MTH of n >= 1 leaves without scratch memory, in O(n) hashes.
 *
 * Leaves are merged like a binary counter: the stack holds complete
 * subtrees of strictly decreasing size, at most one per bit of n.  Folding
 * what remains from the right reproduces the RFC shape, in which a tree is
 * its largest complete left subtree joined to the tree of the rest.
 */
static bool
ll_subtree_root(const uint8_t *leaves, size_t n, uint8_t root[LL_HASH_LEN])
{
	uint8_t		stack[LL_MAX_DEPTH + 1][LL_HASH_LEN];
	size_t		sizes[LL_MAX_DEPTH + 1];
	int			top = 0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		memcpy(stack[top], leaves + i * LL_HASH_LEN, LL_HASH_LEN);
		sizes[top] = 1;
		top++;
		while (top >= 2 && sizes[top - 2] == sizes[top - 1])
		{
			if (!ll_node_hash(stack[top - 2], stack[top - 1], stack[top - 2]))
				return false;
			sizes[top - 2] *= 2;
			top--;
		}
	}
	while (top >= 2)
	{
		if (!ll_node_hash(stack[top - 2], stack[top - 1], stack[top - 2]))
			return false;
		top--;
	}
	memcpy(root, stack[0], LL_HASH_LEN);
	return true;
}

/*
 * ll_merkle_path_max
 *		Upper bound of the audit path length for a tree of n leaves: its
 *		depth, ceil(log2(n)), and 0 for n <= 1.
 */
size_t
ll_merkle_path_max(size_t n)
{
	size_t		depth = 0;

	if (n <= 1)
		return 0;
	n -= 1;
	while (n > 0)
	{
		depth++;
		n >>= 1;
	}
	return depth;
}

/*
 * ll_merkle_path
 *		RFC 6962 PATH(index, D[n]), siblings ordered from the leaf upwards.
 *
 * Descends from the root, hashing each sibling subtree once, so the total
 * work is O(n) hashes; nothing is allocated.  False if index >= n.
 */
bool
ll_merkle_path(const uint8_t *leaves, size_t n, size_t index,
			   uint8_t *path, size_t *path_len)
{
	size_t		lo = 0;
	size_t		size = n;
	size_t		m = index;
	size_t		count = 0;
	size_t		i;

	*path_len = 0;
	if (index >= n)
		return false;

	/* record siblings top-down, then reverse into the RFC's bottom-up order */
	while (size > 1)
	{
		size_t		k = ll_split_point(size);

		if (m < k)
		{
			if (!ll_subtree_root(leaves + (lo + k) * LL_HASH_LEN, size - k,
								 path + count * LL_HASH_LEN))
				return false;
			size = k;
		}
		else
		{
			if (!ll_subtree_root(leaves + lo * LL_HASH_LEN, k,
								 path + count * LL_HASH_LEN))
				return false;
			lo += k;
			m -= k;
			size -= k;
		}
		count++;
	}

	for (i = 0; i < count / 2; i++)
	{
		uint8_t		tmp[LL_HASH_LEN];
		uint8_t    *a = path + i * LL_HASH_LEN;
		uint8_t    *b = path + (count - 1 - i) * LL_HASH_LEN;

		memcpy(tmp, a, LL_HASH_LEN);
		memcpy(a, b, LL_HASH_LEN);
		memcpy(b, tmp, LL_HASH_LEN);
	}
	*path_len = count;
	return true;
}

/*
 * ll_merkle_verify
 *		True iff path proves that leaf is at index in a tree of n leaves with
 *		this root (RFC 9162 section 2.1.3.2).  A path that is too short or
 *		too long for (index, n) is rejected, so one path cannot be replayed
 *		for a different position or tree size.
 */
bool
ll_merkle_verify(const uint8_t leaf[LL_HASH_LEN], size_t index,
				 size_t n, const uint8_t *path, size_t path_len,
				 const uint8_t root[LL_HASH_LEN])
{
	size_t		fn = index;
	size_t		sn;
	size_t		i;
	uint8_t		r[LL_HASH_LEN];

	if (index >= n)
		return false;
	sn = n - 1;
	memcpy(r, leaf, LL_HASH_LEN);

	for (i = 0; i < path_len; i++)
	{
		const uint8_t *p = path + i * LL_HASH_LEN;

		if (sn == 0)
			return false;
		if ((fn & 1) == 1 || fn == sn)
		{
			if (!ll_node_hash(p, r, r))
				return false;
			/* skip the levels where this node is carried up unpaired */
			if ((fn & 1) == 0)
			{
				while ((fn & 1) == 0 && fn != 0)
				{
					fn >>= 1;
					sn >>= 1;
				}
			}
		}
		else
		{
			if (!ll_node_hash(r, p, r))
				return false;
		}
		fn >>= 1;
		sn >>= 1;
	}

	return sn == 0 && memcmp(r, root, LL_HASH_LEN) == 0;
}

/* ---------------------------------------------------------------------
 * Blocks and configuration
 * ---------------------------------------------------------------------
 */

/*
 * ll_block_encode
 *		Append the version 1 block header encoding.
 */
void
ll_block_encode(ll_buf *buf, const ll_block_header *hdr)
{
	ll_buf_put(buf, "LLB1", 4);
	ll_buf_put_str(buf, hdr->channel, hdr->channel_len);
	ll_buf_put_u64(buf, hdr->height);
	ll_buf_put(buf, hdr->prev_hash, LL_HASH_LEN);
	ll_buf_put(buf, hdr->merkle_root, LL_HASH_LEN);
	/* two's complement, so negative times stay distinct and ordered bits */
	ll_buf_put_u64(buf, (uint64_t) hdr->time_us);
	ll_buf_put_u32(buf, hdr->tx_count);
	ll_buf_put_u32(buf, hdr->row_count);
	ll_buf_put(buf, hdr->config_hash, LL_HASH_LEN);
}

/*
 * ll_block_hash
 *		SHA-256 of the header encoding, built in scratch (whose previous
 *		content is discarded).  False if encoding or hashing failed.
 */
bool
ll_block_hash(const ll_block_header *hdr, ll_buf *scratch,
			  uint8_t out[LL_HASH_LEN])
{
	ll_buf_reset(scratch);
	ll_block_encode(scratch, hdr);
	if (scratch->failed)
		return false;
	return ll_sha256(scratch->data, scratch->len, out);
}

/*
 * ll_config_begin
 *		Write the configuration prefix; exactly ntiers ll_config_tier calls
 *		must follow.
 */
void
ll_config_begin(ll_buf *buf, const char *channel, size_t channel_len,
				uint32_t ntiers)
{
	ll_buf_put(buf, "LLC1", 4);
	ll_buf_put_str(buf, channel, channel_len);
	ll_buf_put_u32(buf, ntiers);
}

/*
 * ll_config_tier
 *		Append one tier name.
 */
void
ll_config_tier(ll_buf *buf, const char *tier, size_t tier_len)
{
	ll_buf_put_str(buf, tier, tier_len);
}

/* ---------------------------------------------------------------------
 * Hex
 * ---------------------------------------------------------------------
 */

/*
 * ll_hex_encode
 *		Lower-case hex of data into out (2 * len + 1 bytes, NUL-terminated).
 */
void
ll_hex_encode(const uint8_t *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t		i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/*
 * ll_hex_nibble
 *		Value of one hex digit, or -1.
 */
static int
ll_hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * ll_hex_decode
 *		Decode exactly 2 * len hex digits of either case into len bytes.
 *		Any other length or character yields false; out is then left
 *		unspecified, so callers must not use it.
 */
bool
ll_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t len)
{
	size_t		i;

	if (len > SIZE_MAX / 2 || hex_len != 2 * len)
		return false;
	for (i = 0; i < len; i++)
	{
		int			hi = ll_hex_nibble(hex[2 * i]);
		int			lo = ll_hex_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t) ((hi << 4) | lo);
	}
	return true;
}

/* ---- entry decoding ---- */

static bool
rd_u32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
	if (end - *p < 4)
		return false;
	*v = ((uint32_t) (*p)[0] << 24) | ((uint32_t) (*p)[1] << 16) |
		((uint32_t) (*p)[2] << 8) | (uint32_t) (*p)[3];
	*p += 4;
	return true;
}

static bool
rd_str(const uint8_t **p, const uint8_t *end, const char **s, size_t *len)
{
	uint32_t	n;

	if (!rd_u32(p, end, &n) || (size_t) (end - *p) < n)
		return false;
	*s = (const char *) *p;
	*len = n;
	*p += n;
	return true;
}

bool
ll_entry_next_col(const ll_entry_view *e, const uint8_t **pos, ll_entry_col *col)
{
	const uint8_t *p = *pos ? *pos : e->cols;

	if (!rd_str(&p, e->end, &col->name, &col->name_len) || p == e->end)
		return false;
	col->isnull = (*p == 0);
	if (*p > 1)
		return false;
	p++;
	col->value = NULL;
	col->value_len = 0;
	if (!col->isnull && !rd_str(&p, e->end, &col->value, &col->value_len))
		return false;
	*pos = p;
	return true;
}

bool
ll_entry_decode(const uint8_t *in, size_t len, ll_entry_view *e)
{
	const uint8_t *p = in;
	const uint8_t *end = in + len;
	const uint8_t *pos = NULL;
	ll_entry_col col;
	uint32_t	i;
	int			k;

	if (len < 4 || memcmp(in, "LLE1", 4) != 0)
		return false;
	p += 4;
	if (!rd_str(&p, end, &e->table, &e->table_len) || end - p < 8)
		return false;
	e->entry_id = 0;
	for (k = 0; k < 8; k++)
		e->entry_id = (e->entry_id << 8) | *p++;
	if (!rd_str(&p, end, &e->tier, &e->tier_len) || end - p < LL_SALT_LEN)
		return false;
	e->salt = p;
	p += LL_SALT_LEN;
	if (!rd_u32(&p, end, &e->ncols))
		return false;
	e->cols = p;
	e->end = end;
	/* walk once so callers can trust the column list */
	for (i = 0; i < e->ncols; i++)
		if (!ll_entry_next_col(e, &pos, &col))
			return false;
	return (e->ncols == 0 ? p : pos) == end;
}
