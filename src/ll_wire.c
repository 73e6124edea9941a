/*
 * ll_wire.c
 *		Codec for the messages peers exchange besides consensus messages:
 *		genesis, transaction batches, consensus payloads and frame lists.
 *		Byte formats are in ll_wire.h.
 *
 * Decoders see bytes from untrusted peers first, so every length is checked
 * against the remaining input before it is used, limits are checked before
 * any loop or hash, and errors are return codes.  They validate a message
 * completely once; the iterators then walk the validated bytes without
 * re-checking.  Encoders enforce the same rules, so whatever they produce
 * decodes.  No PostgreSQL header: the extension and plain C tests share it.
 */
#include "ll_wire.h"

#include <string.h>

#include "bft.h"

/* The payload is carried inside consensus proposals. */
#if LL_PAYLOAD_MAX_LEN > BFT_MAX_PAYLOAD
#error "LL_PAYLOAD_MAX_LEN must fit in a consensus proposal"
#endif
#if LL_SIG_LEN != BFT_SIG_LEN || LL_PUBKEY_LEN != BFT_PUBKEY_LEN
#error "signature callbacks must match bft_callbacks"
#endif
#if LL_PAYLOAD_HDR_LEN + LL_PAYLOAD_MAX_BATCHES * LL_HASH_LEN > LL_PAYLOAD_MAX_LEN
#error "LL_PAYLOAD_MAX_BATCHES does not fit"
#endif

#define FRAME_HDR_LEN 5			/* u8 kind | u32 len */

/* ---------------------------------------------------------------------
 * Reading and writing primitives
 * ---------------------------------------------------------------------
 */

typedef struct rd
{
	const uint8_t *p;
	size_t		len;
	size_t		pos;
} rd;

static uint32_t
be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static uint64_t
be64(const uint8_t *p)
{
	return ((uint64_t) be32(p) << 32) | be32(p + 4);
}

/*
 * r_take
 *		Point *out at the next n bytes and consume them; false, consuming
 *		nothing, when fewer remain.
 */
static bool
r_take(rd *r, size_t n, const uint8_t **out)
{
	if (r->len - r->pos < n)
		return false;
	*out = r->p + r->pos;
	r->pos += n;
	return true;
}

static bool
r_u8(rd *r, uint8_t *v)
{
	const uint8_t *p;

	if (!r_take(r, 1, &p))
		return false;
	*v = p[0];
	return true;
}

static bool
r_u16(rd *r, uint16_t *v)
{
	const uint8_t *p;

	if (!r_take(r, 2, &p))
		return false;
	*v = (uint16_t) ((p[0] << 8) | p[1]);
	return true;
}

static bool
r_u32(rd *r, uint32_t *v)
{
	const uint8_t *p;

	if (!r_take(r, 4, &p))
		return false;
	*v = be32(p);
	return true;
}

static bool
r_u64(rd *r, uint64_t *v)
{
	const uint8_t *p;

	if (!r_take(r, 8, &p))
		return false;
	*v = be64(p);
	return true;
}

/* Magic of a message: short input is truncation, other bytes a version. */
static int
r_magic(rd *r, const char magic[4])
{
	const uint8_t *p;

	if (!r_take(r, 4, &p))
		return LL_WIRE_ERR_TRUNCATED;
	return memcmp(p, magic, 4) == 0 ? LL_WIRE_OK : LL_WIRE_ERR_VERSION;
}

/*
 * r_bounded
 *		A non-empty str of at most max bytes.  The limit is checked before
 *		the bytes, so a forged length reports LIMIT.
 */
static int
r_bounded(rd *r, uint32_t max, ll_wire_str *s)
{
	uint32_t	n;
	const uint8_t *p;

	if (!r_u32(r, &n))
		return LL_WIRE_ERR_TRUNCATED;
	if (n > max)
		return LL_WIRE_ERR_LIMIT;
	if (n == 0)
		return LL_WIRE_ERR_FIELD;
	if (!r_take(r, n, &p))
		return LL_WIRE_ERR_TRUNCATED;
	s->ptr = (const char *) p;
	s->len = n;
	return LL_WIRE_OK;
}

static int
r_name(rd *r, ll_wire_str *s)
{
	return r_bounded(r, LL_WIRE_MAX_NAME, s);
}

static int
r_end(const rd *r)
{
	return r->pos == r->len ? LL_WIRE_OK : LL_WIRE_ERR_TRAILING;
}

/* Same rule as r_bounded, for encoder arguments. */
static int
bounded_check(ll_wire_str s, size_t max)
{
	if (s.len > max)
		return LL_WIRE_ERR_LIMIT;
	if (s.len == 0 || s.ptr == NULL)
		return LL_WIRE_ERR_FIELD;
	return LL_WIRE_OK;
}

static int
name_check(ll_wire_str s)
{
	return bounded_check(s, LL_WIRE_MAX_NAME);
}

static bool
str_eq(ll_wire_str a, ll_wire_str b)
{
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* Walk a str of already validated input. */
static const uint8_t *
take_str(const uint8_t *p, ll_wire_str *s)
{
	s->len = be32(p);
	s->ptr = (const char *) p + 4;
	return p + 4 + s->len;
}

static void
put_u16(ll_buf *out, uint16_t v)
{
	ll_buf_put_u8(out, (uint8_t) (v >> 8));
	ll_buf_put_u8(out, (uint8_t) v);
}

static void
put_str(ll_buf *out, ll_wire_str s)
{
	ll_buf_put_str(out, s.ptr, s.len);
}

/* Overwrite a u32 placeholder written earlier (no-op on a failed buffer). */
static void
patch_u32(ll_buf *out, size_t pos, uint32_t v)
{
	if (out->failed || pos + 4 > out->len)
		return;
	out->data[pos] = (uint8_t) (v >> 24);
	out->data[pos + 1] = (uint8_t) (v >> 16);
	out->data[pos + 2] = (uint8_t) (v >> 8);
	out->data[pos + 3] = (uint8_t) v;
}

/*
 * encode_done
 *		Common exit of encoders: a failed buffer becomes NOMEM, and on any
 *		error the buffer is cut back so that nothing partial is left.
 */
static int
encode_done(ll_buf *out, size_t start, int rc)
{
	if (rc == LL_WIRE_OK && out->failed)
		rc = LL_WIRE_ERR_NOMEM;
	if (rc != LL_WIRE_OK && out->len > start)
		out->len = start;
	return rc;
}

/* O(n^2) is fine: n is at most LL_BATCH_REQ_MAX, usually far less. */
static bool
has_duplicate_hash(const uint8_t *h, size_t n)
{
	size_t		i;
	size_t		j;

	for (i = 1; i < n; i++)
		for (j = 0; j < i; j++)
			if (memcmp(h + i * LL_HASH_LEN, h + j * LL_HASH_LEN, LL_HASH_LEN) == 0)
				return true;
	return false;
}

const char *
ll_wire_strerror(int err)
{
	switch (err)
	{
		case LL_WIRE_OK:
			return "ok";
		case LL_WIRE_ERR_TRUNCATED:
			return "message is truncated";
		case LL_WIRE_ERR_TRAILING:
			return "unexpected bytes after the end of the message";
		case LL_WIRE_ERR_VERSION:
			return "unknown message magic or version";
		case LL_WIRE_ERR_KIND:
			return "unknown transaction or frame kind";
		case LL_WIRE_ERR_LIMIT:
			return "count or length exceeds its limit";
		case LL_WIRE_ERR_ORDER:
			return "members not sorted by public key, or a public key repeats";
		case LL_WIRE_ERR_DUPLICATE:
			return "duplicate tier, member name or batch hash";
		case LL_WIRE_ERR_FIELD:
			return "invalid field value";
		case LL_WIRE_ERR_SIG:
			return "batch signature does not verify";
		case LL_WIRE_ERR_COMMITMENT:
			return "row content does not match its commitment";
		case LL_WIRE_ERR_NOMEM:
			return "out of memory";
		case LL_WIRE_ERR_CRYPTO:
			return "hashing or signing failed";
		case LL_WIRE_ERR_STATE:
			return "invalid argument or call order";
	}
	return "unknown error";
}

/* ---------------------------------------------------------------------
 * Genesis
 * ---------------------------------------------------------------------
 */

/* A u32 count that must lie in 1..max. */
static int
r_count(rd *r, uint32_t max, uint32_t *n)
{
	if (!r_u32(r, n))
		return LL_WIRE_ERR_TRUNCATED;
	if (*n > max)
		return LL_WIRE_ERR_LIMIT;
	return *n == 0 ? LL_WIRE_ERR_FIELD : LL_WIRE_OK;
}

/*
 * genesis_members_parse
 *		Structure of the member list; pubkeys strictly ascending, which
 *		also rules out a repeated pubkey.
 */
static int
genesis_members_parse(rd *r, uint32_t n)
{
	const uint8_t *prev = NULL;
	const uint8_t *pk;
	ll_wire_str s;
	uint32_t	i;
	int			rc;

	for (i = 0; i < n; i++)
	{
		if (!r_take(r, LL_PUBKEY_LEN, &pk))
			return LL_WIRE_ERR_TRUNCATED;
		if (prev != NULL && memcmp(prev, pk, LL_PUBKEY_LEN) >= 0)
			return LL_WIRE_ERR_ORDER;
		prev = pk;
		if ((rc = r_name(r, &s)) != LL_WIRE_OK ||
			(rc = r_name(r, &s)) != LL_WIRE_OK)
			return rc;
	}
	return LL_WIRE_OK;
}

/* Structure of a genesis: magic, lengths, counts, member order. */
static int
genesis_parse(rd *r, ll_genesis *g)
{
	ll_wire_str s;
	uint32_t	i;
	int			rc;

	if ((rc = r_magic(r, "LLG1")) != LL_WIRE_OK ||
		(rc = r_name(r, &g->channel)) != LL_WIRE_OK ||
		(rc = r_count(r, LL_GENESIS_MAX_TIERS, &g->ntiers)) != LL_WIRE_OK)
		return rc;
	g->tiers = r->p + r->pos;
	for (i = 0; i < g->ntiers; i++)
		if ((rc = r_name(r, &s)) != LL_WIRE_OK)
			return rc;
	if ((rc = r_count(r, LL_GENESIS_MAX_MEMBERS, &g->nmembers)) != LL_WIRE_OK)
		return rc;
	g->members = r->p + r->pos;
	if ((rc = genesis_members_parse(r, g->nmembers)) != LL_WIRE_OK)
		return rc;
	return r_end(r);
}

/* Index of the first member with this name, or -1. */
static int
genesis_name_index(const ll_genesis *g, ll_wire_str name)
{
	ll_genesis_iter it;
	ll_member	m;
	int			i = 0;

	ll_genesis_members(g, &it);
	for (; ll_genesis_next_member(&it, &m); i++)
		if (str_eq(m.name, name))
			return i;
	return -1;
}

/*
 * genesis_check
 *		Rules across fields, on a structurally valid genesis: tiers and
 *		member names distinct, every clearance tier one of the tiers.
 */
static int
genesis_check(const ll_genesis *g)
{
	ll_genesis_iter it;
	ll_wire_str t;
	ll_member	m;
	int			i = 0;

	ll_genesis_tiers(g, &it);
	for (; ll_genesis_next_tier(&it, &t); i++)
		if (ll_genesis_tier_index(g, t.ptr, t.len) != i)
			return LL_WIRE_ERR_DUPLICATE;
	ll_genesis_members(g, &it);
	for (i = 0; ll_genesis_next_member(&it, &m); i++)
	{
		if (ll_genesis_tier_index(g, m.tier.ptr, m.tier.len) < 0)
			return LL_WIRE_ERR_FIELD;
		if (genesis_name_index(g, m.name) != i)
			return LL_WIRE_ERR_DUPLICATE;
	}
	return LL_WIRE_OK;
}

/*
 * ll_genesis_decode
 *		Validate a genesis completely and describe it in *g (pointers into
 *		in); on error *g is unspecified.
 */
int
ll_genesis_decode(const uint8_t *in, size_t len, ll_genesis *g)
{
	rd			r = {in, len, 0};
	int			rc;

	memset(g, 0, sizeof(*g));
	if ((rc = genesis_parse(&r, g)) != LL_WIRE_OK)
		return rc;
	return genesis_check(g);
}

/* The chain_id, refused for anything that is not a valid genesis. */
int
ll_genesis_hash(const uint8_t *in, size_t len, uint8_t out[LL_HASH_LEN])
{
	ll_genesis	g;
	int			rc;

	if ((rc = ll_genesis_decode(in, len, &g)) != LL_WIRE_OK)
		return rc;
	return ll_sha256(in, len, out) ? LL_WIRE_OK : LL_WIRE_ERR_CRYPTO;
}

void
ll_genesis_tiers(const ll_genesis *g, ll_genesis_iter *it)
{
	it->p = g->tiers;
	it->left = g->ntiers;
}

bool
ll_genesis_next_tier(ll_genesis_iter *it, ll_wire_str *tier)
{
	if (it->left == 0)
		return false;
	it->p = take_str(it->p, tier);
	it->left--;
	return true;
}

void
ll_genesis_members(const ll_genesis *g, ll_genesis_iter *it)
{
	it->p = g->members;
	it->left = g->nmembers;
}

bool
ll_genesis_next_member(ll_genesis_iter *it, ll_member *m)
{
	if (it->left == 0)
		return false;
	m->pubkey = it->p;
	it->p = take_str(it->p + LL_PUBKEY_LEN, &m->name);
	it->p = take_str(it->p, &m->tier);
	it->left--;
	return true;
}

/* Position of a tier in the genesis (= tier_index in batches), or -1. */
int
ll_genesis_tier_index(const ll_genesis *g, const char *name, size_t len)
{
	ll_genesis_iter it;
	ll_wire_str t;
	ll_wire_str want = {name, len};
	int			i = 0;

	ll_genesis_tiers(g, &it);
	for (; ll_genesis_next_tier(&it, &t); i++)
		if (str_eq(t, want))
			return i;
	return -1;
}

/* Member with this pubkey, e.g. a batch's origin; false if none. */
bool
ll_genesis_find_member(const ll_genesis *g, const uint8_t pubkey[LL_PUBKEY_LEN],
					   ll_member *m)
{
	ll_genesis_iter it;

	ll_genesis_members(g, &it);
	while (ll_genesis_next_member(&it, m))
		if (memcmp(m->pubkey, pubkey, LL_PUBKEY_LEN) == 0)
			return true;
	return false;
}

/*
 * genesis_args_check
 *		What must hold before writing: counts and names within limits (so
 *		nothing huge or NULL is copied) and pubkeys present and distinct (so
 *		the sorted emission below finds a successor every time).
 */
static int
genesis_args_check(const ll_wire_str *tiers, uint32_t ntiers,
				   const ll_member *m, uint32_t n)
{
	uint32_t	i;
	uint32_t	j;
	int			rc;

	if (ntiers > LL_GENESIS_MAX_TIERS || n > LL_GENESIS_MAX_MEMBERS)
		return LL_WIRE_ERR_LIMIT;
	if ((ntiers > 0 && tiers == NULL) || (n > 0 && m == NULL))
		return LL_WIRE_ERR_STATE;
	for (i = 0; i < ntiers; i++)
		if ((rc = name_check(tiers[i])) != LL_WIRE_OK)
			return rc;
	for (i = 0; i < n; i++)
	{
		if (m[i].pubkey == NULL)
			return LL_WIRE_ERR_STATE;
		if ((rc = name_check(m[i].name)) != LL_WIRE_OK ||
			(rc = name_check(m[i].tier)) != LL_WIRE_OK)
			return rc;
		for (j = 0; j < i; j++)
			if (memcmp(m[i].pubkey, m[j].pubkey, LL_PUBKEY_LEN) == 0)
				return LL_WIRE_ERR_ORDER;
	}
	return LL_WIRE_OK;
}

/*
 * put_members_sorted
 *		Emit members by ascending pubkey without sorting a copy (which
 *		would need memory): each round picks the smallest pubkey above the
 *		last one emitted.  O(n^2) compares, n <= LL_GENESIS_MAX_MEMBERS.
 */
static void
put_members_sorted(ll_buf *out, const ll_member *m, uint32_t n)
{
	const uint8_t *last = NULL;
	const ll_member *next;
	uint32_t	k;
	uint32_t	i;

	for (k = 0; k < n; k++)
	{
		next = NULL;
		for (i = 0; i < n; i++)
			if ((last == NULL || memcmp(m[i].pubkey, last, LL_PUBKEY_LEN) > 0) &&
				(next == NULL || memcmp(m[i].pubkey, next->pubkey, LL_PUBKEY_LEN) < 0))
				next = &m[i];
		ll_buf_put(out, next->pubkey, LL_PUBKEY_LEN);
		put_str(out, next->name);
		put_str(out, next->tier);
		last = next->pubkey;
	}
}

/*
 * ll_genesis_encode
 *		Append a genesis; the result is run through the decoder so the two
 *		can never disagree on what is valid.  Nothing is appended on error.
 */
int
ll_genesis_encode(ll_buf *out, ll_wire_str channel,
				  const ll_wire_str *tiers, uint32_t ntiers,
				  const ll_member *members, uint32_t nmembers)
{
	size_t		start = out->len;
	ll_genesis	g;
	uint32_t	i;
	int			rc;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	if ((rc = genesis_args_check(tiers, ntiers, members, nmembers)) != LL_WIRE_OK ||
		(rc = name_check(channel)) != LL_WIRE_OK)
		return rc;
	ll_buf_put(out, "LLG1", 4);
	put_str(out, channel);
	ll_buf_put_u32(out, ntiers);
	for (i = 0; i < ntiers; i++)
		put_str(out, tiers[i]);
	ll_buf_put_u32(out, nmembers);
	put_members_sorted(out, members, nmembers);
	if (out->failed)
		return encode_done(out, start, LL_WIRE_ERR_NOMEM);
	rc = ll_genesis_decode(out->data + start, out->len - start, &g);
	return encode_done(out, start, rc);
}

/* ---------------------------------------------------------------------
 * Transaction batch: decoding
 * ---------------------------------------------------------------------
 */

/*
 * batch_rows_parse
 *		Body of a rows tx; *rows counts the batch's rows against the limit.
 *		Rows vary in length (table), so each is walked; the row count
 *		bounds the loop and the input its reads.
 */
static int
batch_rows_parse(rd *r, uint32_t *rows)
{
	const uint8_t *commitment;
	ll_wire_str table;
	uint64_t	entry_id;
	uint32_t	n;
	uint32_t	i;
	uint8_t		tier;
	int			rc;

	if (!r_u32(r, &n))
		return LL_WIRE_ERR_TRUNCATED;
	if (n > LL_BATCH_MAX_ROWS - *rows)
		return LL_WIRE_ERR_LIMIT;
	if (n == 0)
		return LL_WIRE_ERR_FIELD;
	for (i = 0; i < n; i++)
	{
		if (!r_u8(r, &tier) || !r_u64(r, &entry_id))
			return LL_WIRE_ERR_TRUNCATED;
		if ((rc = r_bounded(r, LL_WIRE_MAX_TABLE, &table)) != LL_WIRE_OK)
			return rc;
		if (!r_take(r, LL_HASH_LEN, &commitment))
			return LL_WIRE_ERR_TRUNCATED;
		if (tier >= LL_GENESIS_MAX_TIERS)
			return LL_WIRE_ERR_FIELD;
	}
	*rows += n;
	return LL_WIRE_OK;
}

/* One tx of the signed part. */
static int
batch_tx_parse(rd *r, uint32_t *rows)
{
	const uint8_t *pk;
	ll_wire_str s;
	uint64_t	txid;
	uint8_t		kind;
	int			rc;

	if (!r_u8(r, &kind) || !r_u64(r, &txid))
		return LL_WIRE_ERR_TRUNCATED;
	switch (kind)
	{
		case LL_TX_ROWS:
			return batch_rows_parse(r, rows);
		case LL_TX_ADD_MEMBER:
			if (!r_take(r, LL_PUBKEY_LEN, &pk))
				return LL_WIRE_ERR_TRUNCATED;
			if ((rc = r_name(r, &s)) != LL_WIRE_OK)
				return rc;
			return r_name(r, &s);
		case LL_TX_REMOVE_MEMBER:
			return r_take(r, LL_PUBKEY_LEN, &pk) ? LL_WIRE_OK : LL_WIRE_ERR_TRUNCATED;
		case LL_TX_DECLARE_TABLE:
			if ((rc = r_bounded(r, LL_WIRE_MAX_TABLE, &s)) != LL_WIRE_OK)
				return rc;
			return r_take(r, LL_HASH_LEN, &pk) ? LL_WIRE_OK : LL_WIRE_ERR_TRUNCATED;
	}
	return LL_WIRE_ERR_KIND;
}

/* Signed part and signature; fills the header fields of *b. */
static int
batch_signed_parse(rd *r, ll_batch *b)
{
	uint64_t	t;
	uint32_t	i;
	int			rc;

	if ((rc = r_magic(r, "LLT1")) != LL_WIRE_OK)
		return rc;
	if (!r_take(r, LL_HASH_LEN, &b->chain_id) ||
		!r_take(r, LL_PUBKEY_LEN, &b->origin) ||
		!r_u64(r, &b->batch_seq) || !r_u64(r, &t) || !r_u32(r, &b->ntx))
		return LL_WIRE_ERR_TRUNCATED;
	b->time_us = (int64_t) t;
	if (b->ntx > LL_BATCH_MAX_TXS)
		return LL_WIRE_ERR_LIMIT;
	b->txs = r->p + r->pos;
	for (i = 0; i < b->ntx; i++)
		if ((rc = batch_tx_parse(r, &b->nrows)) != LL_WIRE_OK)
			return rc;
	b->txs_len = (size_t) (r->p + r->pos - b->txs);
	return r_take(r, LL_SIG_LEN, &b->sig) ? LL_WIRE_OK : LL_WIRE_ERR_TRUNCATED;
}

/* Whether an entry is the one a row's signed metadata names. */
static bool
entry_is_row(const ll_entry_view *e, const ll_row *row)
{
	ll_wire_str table = {e->table, e->table_len};

	return e->entry_id == row->entry_id && str_eq(table, row->table);
}

/*
 * batch_content_check
 *		Reads the content of the next row: it must hash to the commitment
 *		and be the entry the row names, or a peer could be handed one
 *		table's row labelled as another's.
 */
static int
batch_content_check(rd *c, const ll_row *row)
{
	const uint8_t *p;
	uint8_t		leaf[LL_HASH_LEN];
	ll_entry_view e;
	uint32_t	n;

	if (!r_u32(c, &n))
		return LL_WIRE_ERR_TRUNCATED;
	if (n > LL_ENTRY_MAX_LEN)
		return LL_WIRE_ERR_LIMIT;
	if (!r_take(c, n, &p))
		return LL_WIRE_ERR_TRUNCATED;
	if (n == 0)
		return LL_WIRE_OK;		/* withheld */
	if (!ll_leaf_hash(p, n, leaf))
		return LL_WIRE_ERR_CRYPTO;
	if (memcmp(leaf, row->commitment, LL_HASH_LEN) != 0)
		return LL_WIRE_ERR_COMMITMENT;
	if (!ll_entry_decode(p, n, &e) || !entry_is_row(&e, row))
		return LL_WIRE_ERR_FIELD;
	return LL_WIRE_OK;
}

static bool batch_next_signed_row(ll_batch_iter *it, ll_row *row);

/*
 * batch_contents_check
 *		One content entry per row, each matching its row, and nothing
 *		after them.  Walks the (validated) tx list alongside.
 */
static int
batch_contents_check(const ll_batch *b)
{
	rd			c = {b->content, b->content_len, 0};
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		row;
	int			rc;

	/*
	 * next_tx only reads content to skip rows left unread, and the inner
	 * loop leaves none, so the unchecked content is never read by it.
	 */
	ll_batch_iter_init(&it, b);
	while (ll_batch_next_tx(&it, &tx))
		while (batch_next_signed_row(&it, &row))
			if ((rc = batch_content_check(&c, &row)) != LL_WIRE_OK)
				return rc;
	return r_end(&c);
}

/*
 * ll_batch_decode
 *		Structure first, then the signature (one callback), then the
 *		contents: the costly hashing only happens for a signed batch.
 */
int
ll_batch_decode(const uint8_t *in, size_t len, size_t max_len,
				ll_verify_fn verify, void *verify_ctx, ll_batch *b)
{
	rd			r = {in, len, 0};
	size_t		signed_len;
	int			rc;

	memset(b, 0, sizeof(*b));
	if (verify == NULL)
		return LL_WIRE_ERR_STATE;
	if (len > max_len)
		return LL_WIRE_ERR_LIMIT;
	if ((rc = batch_signed_parse(&r, b)) != LL_WIRE_OK)
		return rc;
	signed_len = r.pos - LL_SIG_LEN;
	if (!ll_sha256(in, signed_len, b->batch_hash))
		return LL_WIRE_ERR_CRYPTO;
	if (!verify(verify_ctx, b->origin, b->batch_hash, LL_HASH_LEN, b->sig))
		return LL_WIRE_ERR_SIG;
	b->content = in + r.pos;
	b->content_len = len - r.pos;
	b->bytes = in;
	b->len = len;
	return batch_contents_check(b);
}

/* ---------------------------------------------------------------------
 * Transaction batch: iteration over a decoded batch
 * ---------------------------------------------------------------------
 */

void
ll_batch_iter_init(ll_batch_iter *it, const ll_batch *b)
{
	it->tx = b->txs;
	it->content = b->content;
	it->tx_left = b->ntx;
	it->rows_left = 0;
}

/* Next row's signed fields from the tx list, content untouched. */
static bool
batch_next_signed_row(ll_batch_iter *it, ll_row *row)
{
	const uint8_t *p = it->tx;

	if (it->rows_left == 0)
		return false;
	row->tier_index = p[0];
	row->entry_id = be64(p + 1);
	p = take_str(p + 9, &row->table);
	row->commitment = p;
	row->content = NULL;
	row->content_len = 0;
	it->tx = p + LL_HASH_LEN;
	it->rows_left--;
	return true;
}

/* Next row of the current rows tx with its content; false at its end. */
bool
ll_batch_next_row(ll_batch_iter *it, ll_row *row)
{
	uint32_t	n;

	if (!batch_next_signed_row(it, row))
		return false;
	n = be32(it->content);
	if (n > 0)
	{
		row->content = it->content + 4;
		row->content_len = n;
	}
	it->content += 4 + (size_t) n;
	return true;
}

/*
 * ll_batch_next_tx
 *		Next tx; rows of the previous one that were not read are skipped,
 *		so callers only interested in member changes may ignore rows.
 */
bool
ll_batch_next_tx(ll_batch_iter *it, ll_tx *tx)
{
	ll_row		skip;
	const uint8_t *p;

	while (ll_batch_next_row(it, &skip))
		;
	if (it->tx_left == 0)
		return false;
	p = it->tx;
	memset(tx, 0, sizeof(*tx));
	tx->kind = p[0];
	tx->txid = be64(p + 1);
	p += 9;
	if (tx->kind == LL_TX_ROWS)
	{
		tx->nrows = it->rows_left = be32(p);
		p += 4;
	}
	else if (tx->kind == LL_TX_DECLARE_TABLE)
	{
		p = take_str(p, &tx->table);
		tx->fingerprint = p;
		p += LL_HASH_LEN;
	}
	else
	{
		tx->pubkey = p;
		p += LL_PUBKEY_LEN;
		if (tx->kind == LL_TX_ADD_MEMBER)
			p = take_str(take_str(p, &tx->name), &tx->tier);
	}
	it->tx = p;
	it->tx_left--;
	return true;
}

/*
 * ll_batch_redact
 *		Append b with some contents withheld.  Signed part and signature
 *		are copied verbatim, so the result verifies with the same hash.
 */
int
ll_batch_redact(const ll_batch *b, int max_tier, ll_buf *out)
{
	size_t		start = out->len;
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		row;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	ll_buf_put(out, b->bytes, (size_t) (b->content - b->bytes));
	ll_batch_iter_init(&it, b);
	while (ll_batch_next_tx(&it, &tx))
		while (ll_batch_next_row(&it, &row))
		{
			if (row.content == NULL || (int) row.tier_index > max_tier)
				ll_buf_put_u32(out, 0);
			else
				ll_buf_put_str(out, (const char *) row.content, row.content_len);
		}
	return encode_done(out, start, LL_WIRE_OK);
}

/* Every row a recipient cleared up to max_tier may see has its content. */
bool
ll_batch_complete_for(const ll_batch *b, int max_tier)
{
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		row;

	ll_batch_iter_init(&it, b);
	while (ll_batch_next_tx(&it, &tx))
		while (ll_batch_next_row(&it, &row))
			if (row.content == NULL && (int) row.tier_index <= max_tier)
				return false;
	return true;
}

/* Highest tier with content: redacting for any clearance >= it is a no-op. */
int
ll_batch_top_tier(const ll_batch *b)
{
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		row;
	int			top = -1;

	ll_batch_iter_init(&it, b);
	while (ll_batch_next_tx(&it, &tx))
		while (ll_batch_next_row(&it, &row))
			if (row.content != NULL && (int) row.tier_index > top)
				top = row.tier_index;
	return top;
}

/* ---------------------------------------------------------------------
 * Transaction batch: building
 * ---------------------------------------------------------------------
 */

/*
 * builder_fail
 *		Record the first error and cut the output back to where the batch
 *		began, so a failed builder never leaves half a batch behind.
 */
static int
builder_fail(ll_batch_builder *b, int err)
{
	if (b->err == LL_WIRE_OK)
		b->err = err;
	if (b->out != NULL && b->out->len > b->start)
		b->out->len = b->start;
	return b->err;
}

/* Buffer failures and the size cap, checked after every append. */
static int
builder_check(ll_batch_builder *b)
{
	size_t		size;

	if (b->out->failed || b->content->failed)
		return builder_fail(b, LL_WIRE_ERR_NOMEM);
	size = b->out->len - b->start + LL_SIG_LEN + b->content->len;
	if (size > b->max_len)
		return builder_fail(b, LL_WIRE_ERR_LIMIT);
	return LL_WIRE_OK;
}

/* False (with the error to return in *rc) when the builder cannot go on. */
static bool
builder_usable(ll_batch_builder *b, int *rc)
{
	if (b->out == NULL)
		*rc = LL_WIRE_ERR_STATE;	/* finished, or never begun */
	else
		*rc = b->err;
	return *rc == LL_WIRE_OK;
}

int
ll_batch_begin(ll_batch_builder *b, ll_buf *out, ll_buf *content,
			   size_t max_len, const uint8_t chain_id[LL_HASH_LEN],
			   const uint8_t origin[LL_PUBKEY_LEN],
			   uint64_t batch_seq, int64_t time_us)
{
	memset(b, 0, sizeof(*b));
	if (out == NULL || content == NULL || out == content ||
		chain_id == NULL || origin == NULL)
		return b->err = LL_WIRE_ERR_STATE;
	b->out = out;
	b->content = content;
	b->start = out->len;
	b->max_len = max_len;
	if (out->failed)
		return builder_fail(b, LL_WIRE_ERR_NOMEM);
	ll_buf_reset(content);
	ll_buf_put(out, "LLT1", 4);
	ll_buf_put(out, chain_id, LL_HASH_LEN);
	ll_buf_put(out, origin, LL_PUBKEY_LEN);
	ll_buf_put_u64(out, batch_seq);
	ll_buf_put_u64(out, (uint64_t) time_us);
	b->ntx_pos = out->len;
	ll_buf_put_u32(out, 0);		/* ntx, patched by finish */
	return builder_check(b);
}

/* Close the open rows tx: it must have a row, its count is patched in. */
static int
builder_close_rows(ll_batch_builder *b)
{
	if (!b->in_rows)
		return LL_WIRE_OK;
	b->in_rows = false;
	if (b->tx_rows == 0)
		return builder_fail(b, LL_WIRE_ERR_FIELD);
	patch_u32(b->out, b->nrows_pos, b->tx_rows);
	return LL_WIRE_OK;
}

/* Common start of every tx. */
static int
builder_tx(ll_batch_builder *b, uint8_t kind, uint64_t txid)
{
	int			rc;

	if (!builder_usable(b, &rc) || (rc = builder_close_rows(b)) != LL_WIRE_OK)
		return rc;
	if (b->ntx == LL_BATCH_MAX_TXS)
		return builder_fail(b, LL_WIRE_ERR_LIMIT);
	ll_buf_put_u8(b->out, kind);
	ll_buf_put_u64(b->out, txid);
	b->ntx++;
	return LL_WIRE_OK;
}

int
ll_batch_add_rows_tx(ll_batch_builder *b, uint64_t txid)
{
	int			rc;

	if ((rc = builder_tx(b, LL_TX_ROWS, txid)) != LL_WIRE_OK)
		return rc;
	b->nrows_pos = b->out->len;
	ll_buf_put_u32(b->out, 0);	/* nrows, patched on close */
	b->in_rows = true;
	b->tx_rows = 0;
	return builder_check(b);
}

/* Rules of every row that do not depend on its content. */
static int
row_check(const ll_batch_builder *b, uint8_t tier_index)
{
	if (!b->in_rows)
		return LL_WIRE_ERR_STATE;
	if (b->rows == LL_BATCH_MAX_ROWS)
		return LL_WIRE_ERR_LIMIT;
	if (tier_index >= LL_GENESIS_MAX_TIERS)
		return LL_WIRE_ERR_FIELD;
	return LL_WIRE_OK;
}

/*
 * content_check
 *		The decoder's rules for a row's content, in its order: size before
 *		any work, then hash, then the entry that names the row.
 */
static int
content_check(const uint8_t *commitment, const uint8_t *content, size_t len,
			  uint8_t leaf[LL_HASH_LEN], ll_entry_view *e)
{
	if (content == NULL)
		return LL_WIRE_ERR_STATE;
	if (len > LL_ENTRY_MAX_LEN)
		return LL_WIRE_ERR_LIMIT;
	if (len == 0)
		return LL_WIRE_ERR_FIELD;	/* length 0 on the wire means withheld */
	if (!ll_leaf_hash(content, len, leaf))
		return LL_WIRE_ERR_CRYPTO;
	if (commitment != NULL && memcmp(leaf, commitment, LL_HASH_LEN) != 0)
		return LL_WIRE_ERR_COMMITMENT;
	return ll_entry_decode(content, len, e) ? LL_WIRE_OK : LL_WIRE_ERR_FIELD;
}

/* Write a checked row; content NULL = withheld. */
static int
builder_put_row(ll_batch_builder *b, uint8_t tier_index, uint64_t entry_id,
				ll_wire_str table, const uint8_t commitment[LL_HASH_LEN],
				const uint8_t *content, size_t content_len)
{
	int			rc;

	if ((rc = bounded_check(table, LL_WIRE_MAX_TABLE)) != LL_WIRE_OK)
		return builder_fail(b, rc);
	ll_buf_put_u8(b->out, tier_index);
	ll_buf_put_u64(b->out, entry_id);
	put_str(b->out, table);
	ll_buf_put(b->out, commitment, LL_HASH_LEN);
	if (content == NULL)
		ll_buf_put_u32(b->content, 0);
	else
		ll_buf_put_str(b->content, (const char *) content, content_len);
	b->tx_rows++;
	b->rows++;
	return builder_check(b);
}

int
ll_batch_add_row(ll_batch_builder *b, uint8_t tier_index,
				 const uint8_t commitment[LL_HASH_LEN],
				 const uint8_t *content, size_t content_len)
{
	uint8_t		leaf[LL_HASH_LEN];
	ll_entry_view e;
	ll_wire_str table;
	int			rc;

	if (!builder_usable(b, &rc))
		return rc;
	if ((rc = row_check(b, tier_index)) != LL_WIRE_OK ||
		(rc = content_check(commitment, content, content_len, leaf, &e)) != LL_WIRE_OK)
		return builder_fail(b, rc);
	table.ptr = e.table;
	table.len = e.table_len;
	return builder_put_row(b, tier_index, e.entry_id, table, leaf,
						   content, content_len);
}

int
ll_batch_add_withheld_row(ll_batch_builder *b, uint8_t tier_index,
						  uint64_t entry_id, ll_wire_str table,
						  const uint8_t commitment[LL_HASH_LEN])
{
	int			rc;

	if (!builder_usable(b, &rc))
		return rc;
	if (commitment == NULL)
		return builder_fail(b, LL_WIRE_ERR_STATE);
	if ((rc = row_check(b, tier_index)) != LL_WIRE_OK)
		return builder_fail(b, rc);
	return builder_put_row(b, tier_index, entry_id, table, commitment, NULL, 0);
}

int
ll_batch_add_member_tx(ll_batch_builder *b, uint64_t txid,
					   const uint8_t pubkey[LL_PUBKEY_LEN],
					   ll_wire_str name, ll_wire_str tier)
{
	int			rc;

	if (!builder_usable(b, &rc))
		return rc;
	if (pubkey == NULL)
		return builder_fail(b, LL_WIRE_ERR_STATE);
	if ((rc = name_check(name)) != LL_WIRE_OK ||
		(rc = name_check(tier)) != LL_WIRE_OK)
		return builder_fail(b, rc);
	if ((rc = builder_tx(b, LL_TX_ADD_MEMBER, txid)) != LL_WIRE_OK)
		return rc;
	ll_buf_put(b->out, pubkey, LL_PUBKEY_LEN);
	put_str(b->out, name);
	put_str(b->out, tier);
	return builder_check(b);
}

int
ll_batch_remove_member_tx(ll_batch_builder *b, uint64_t txid,
						  const uint8_t pubkey[LL_PUBKEY_LEN])
{
	int			rc;

	if (!builder_usable(b, &rc))
		return rc;
	if (pubkey == NULL)
		return builder_fail(b, LL_WIRE_ERR_STATE);
	if ((rc = builder_tx(b, LL_TX_REMOVE_MEMBER, txid)) != LL_WIRE_OK)
		return rc;
	ll_buf_put(b->out, pubkey, LL_PUBKEY_LEN);
	return builder_check(b);
}

int
ll_batch_declare_table_tx(ll_batch_builder *b, uint64_t txid, ll_wire_str table,
						  const uint8_t fingerprint[LL_HASH_LEN])
{
	int			rc;

	if (!builder_usable(b, &rc))
		return rc;
	if (fingerprint == NULL)
		return builder_fail(b, LL_WIRE_ERR_STATE);
	if ((rc = bounded_check(table, LL_WIRE_MAX_TABLE)) != LL_WIRE_OK)
		return builder_fail(b, rc);
	if ((rc = builder_tx(b, LL_TX_DECLARE_TABLE, txid)) != LL_WIRE_OK)
		return rc;
	put_str(b->out, table);
	ll_buf_put(b->out, fingerprint, LL_HASH_LEN);
	return builder_check(b);
}

/* Hash and sign the signed part, which must be complete in out. */
static int
builder_sign(ll_batch_builder *b, ll_sign_fn sign, void *ctx,
			 uint8_t hash[LL_HASH_LEN], uint8_t sig[LL_SIG_LEN])
{
	if (!ll_sha256(b->out->data + b->start, b->out->len - b->start, hash))
		return builder_fail(b, LL_WIRE_ERR_CRYPTO);
	if (sign(ctx, hash, LL_HASH_LEN, sig) != 0)
		return builder_fail(b, LL_WIRE_ERR_CRYPTO);
	return LL_WIRE_OK;
}

/*
 * ll_batch_finish
 *		Complete, sign and append signature and contents.  The builder is
 *		spent afterwards: any further call returns STATE.
 */
int
ll_batch_finish(ll_batch_builder *b, ll_sign_fn sign, void *sign_ctx,
				uint8_t batch_hash[LL_HASH_LEN])
{
	uint8_t		hash[LL_HASH_LEN];
	uint8_t		sig[LL_SIG_LEN];
	int			rc;

	if (!builder_usable(b, &rc))
		return builder_fail(b, rc);
	if (sign == NULL)
		return builder_fail(b, LL_WIRE_ERR_STATE);
	if ((rc = builder_close_rows(b)) != LL_WIRE_OK)
		return rc;
	patch_u32(b->out, b->ntx_pos, b->ntx);
	if ((rc = builder_check(b)) != LL_WIRE_OK ||
		(rc = builder_sign(b, sign, sign_ctx, hash, sig)) != LL_WIRE_OK)
		return rc;
	/* the size cap was checked above, counting signature and content */
	ll_buf_put(b->out, sig, LL_SIG_LEN);
	ll_buf_put(b->out, b->content->data, b->content->len);
	if (b->out->failed)
		return builder_fail(b, LL_WIRE_ERR_NOMEM);
	if (batch_hash != NULL)
		memcpy(batch_hash, hash, LL_HASH_LEN);
	b->out = NULL;
	return LL_WIRE_OK;
}

/* ---------------------------------------------------------------------
 * Consensus payload
 * ---------------------------------------------------------------------
 */

/*
 * ll_payload_encode
 *		Append a payload; refuses more batches than fit the consensus
 *		proposal and repeated batch hashes (a batch applies once).
 */
int
ll_payload_encode(ll_buf *out, const ll_payload *p)
{
	size_t		start = out->len;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	if (p == NULL || p->prev_head == NULL ||
		(p->nbatches > 0 && p->batch_hashes == NULL))
		return LL_WIRE_ERR_STATE;
	if (p->nbatches > LL_PAYLOAD_MAX_BATCHES)
		return LL_WIRE_ERR_LIMIT;
	if (has_duplicate_hash(p->batch_hashes, p->nbatches))
		return LL_WIRE_ERR_DUPLICATE;
	ll_buf_put(out, "LLP1", 4);
	ll_buf_put_u64(out, p->height);
	ll_buf_put(out, p->prev_head, LL_HASH_LEN);
	ll_buf_put_u64(out, (uint64_t) p->time_us);
	put_u16(out, p->nbatches);
	ll_buf_put(out, p->batch_hashes, (size_t) p->nbatches * LL_HASH_LEN);
	return encode_done(out, start, LL_WIRE_OK);
}

int
ll_payload_decode(const uint8_t *in, size_t len, ll_payload *p)
{
	rd			r = {in, len, 0};
	uint64_t	t;
	int			rc;

	memset(p, 0, sizeof(*p));
	if (len > LL_PAYLOAD_MAX_LEN)
		return LL_WIRE_ERR_LIMIT;
	if ((rc = r_magic(&r, "LLP1")) != LL_WIRE_OK)
		return rc;
	if (!r_u64(&r, &p->height) || !r_take(&r, LL_HASH_LEN, &p->prev_head) ||
		!r_u64(&r, &t) || !r_u16(&r, &p->nbatches))
		return LL_WIRE_ERR_TRUNCATED;
	p->time_us = (int64_t) t;
	if (p->nbatches > LL_PAYLOAD_MAX_BATCHES)
		return LL_WIRE_ERR_LIMIT;
	if (!r_take(&r, (size_t) p->nbatches * LL_HASH_LEN, &p->batch_hashes))
		return LL_WIRE_ERR_TRUNCATED;
	if ((rc = r_end(&r)) != LL_WIRE_OK)
		return rc;
	return has_duplicate_hash(p->batch_hashes, p->nbatches)
		? LL_WIRE_ERR_DUPLICATE : LL_WIRE_OK;
}

/* The consensus value, refused for anything that is not a valid payload. */
int
ll_payload_value(const uint8_t *in, size_t len, uint8_t out[LL_HASH_LEN])
{
	ll_payload	p;
	int			rc;

	if ((rc = ll_payload_decode(in, len, &p)) != LL_WIRE_OK)
		return rc;
	return ll_sha256(in, len, out) ? LL_WIRE_OK : LL_WIRE_ERR_CRYPTO;
}

/* ---------------------------------------------------------------------
 * Frames, batch requests, hello
 * ---------------------------------------------------------------------
 */

static bool
frame_kind_known(uint8_t kind)
{
	return kind >= LL_FRAME_CONSENSUS && kind <= LL_FRAME_AUTH;
}

int
ll_frame_append(ll_buf *out, uint8_t kind, const uint8_t *body, size_t len)
{
	size_t		start = out->len;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	if (!frame_kind_known(kind))
		return LL_WIRE_ERR_KIND;
	if (len > UINT32_MAX)
		return LL_WIRE_ERR_LIMIT;
	if (len > 0 && body == NULL)
		return LL_WIRE_ERR_STATE;
	ll_buf_put_u8(out, kind);
	ll_buf_put_u32(out, (uint32_t) len);
	ll_buf_put(out, body, len);
	return encode_done(out, start, LL_WIRE_OK);
}

/* Writes the frame header with a length placeholder; see ll_frame_end. */
size_t
ll_frame_begin(ll_buf *out, uint8_t kind)
{
	size_t		mark = out->len;

	ll_buf_put_u8(out, kind);
	ll_buf_put_u32(out, 0);
	return mark;
}

/*
 * ll_frame_end
 *		Patch in the length of everything appended since ll_frame_begin;
 *		on error the frame is removed.
 */
int
ll_frame_end(ll_buf *out, size_t mark)
{
	size_t		body;

	if (out->failed)
		return encode_done(out, mark, LL_WIRE_ERR_NOMEM);
	if (mark > out->len || out->len - mark < FRAME_HDR_LEN)
		return LL_WIRE_ERR_STATE;
	if (!frame_kind_known(out->data[mark]))
		return encode_done(out, mark, LL_WIRE_ERR_KIND);
	body = out->len - mark - FRAME_HDR_LEN;
	if (body > UINT32_MAX)
		return encode_done(out, mark, LL_WIRE_ERR_LIMIT);
	patch_u32(out, mark + 1, (uint32_t) body);
	return LL_WIRE_OK;
}

void
ll_frame_iter_init(ll_frame_iter *it, const uint8_t *in, size_t len)
{
	it->p = in;
	it->len = len;
	it->pos = 0;
	it->err = LL_WIRE_OK;
}

/* The next frame; errors are sticky so a loop cannot skip past one. */
int
ll_frame_next(ll_frame_iter *it, ll_frame *f)
{
	rd			r = {it->p, it->len, it->pos};
	uint32_t	n;

	if (it->err != LL_WIRE_OK)
		return it->err;
	if (r.pos == r.len)
		return 0;
	if (!r_u8(&r, &f->kind))
		return it->err = LL_WIRE_ERR_TRUNCATED;
	if (!frame_kind_known(f->kind))
		return it->err = LL_WIRE_ERR_KIND;
	if (!r_u32(&r, &n) || !r_take(&r, n, &f->body))
		return it->err = LL_WIRE_ERR_TRUNCATED;
	f->len = n;
	it->pos = r.pos;
	return 1;
}

int
ll_batch_req_encode(ll_buf *out, const uint8_t *hashes, uint16_t n)
{
	size_t		start = out->len;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	if (n > LL_BATCH_REQ_MAX)
		return LL_WIRE_ERR_LIMIT;
	if (n == 0)
		return LL_WIRE_ERR_FIELD;
	if (hashes == NULL)
		return LL_WIRE_ERR_STATE;
	put_u16(out, n);
	ll_buf_put(out, hashes, (size_t) n * LL_HASH_LEN);
	return encode_done(out, start, LL_WIRE_OK);
}

/* A request for 1..LL_BATCH_REQ_MAX batches (repeats are harmless). */
int
ll_batch_req_decode(const uint8_t *in, size_t len, uint16_t *n,
					const uint8_t **hashes)
{
	rd			r = {in, len, 0};

	*n = 0;
	*hashes = NULL;
	if (!r_u16(&r, n))
		return LL_WIRE_ERR_TRUNCATED;
	if (*n > LL_BATCH_REQ_MAX)
		return LL_WIRE_ERR_LIMIT;
	if (*n == 0)
		return LL_WIRE_ERR_FIELD;
	if (!r_take(&r, (size_t) *n * LL_HASH_LEN, hashes))
		return LL_WIRE_ERR_TRUNCATED;
	return r_end(&r);
}

static int
hello_put(ll_buf *out, const ll_hello *h)
{
	int			rc;

	if (h == NULL || h->chain_id == NULL)
		return LL_WIRE_ERR_STATE;
	if ((rc = name_check(h->name)) != LL_WIRE_OK)
		return rc;
	ll_buf_put(out, h->chain_id, LL_HASH_LEN);
	ll_buf_put_u64(out, h->height);
	put_str(out, h->name);
	ll_buf_put_u64(out, h->epoch);
	ll_buf_put_u64(out, h->seq);
	return LL_WIRE_OK;
}

int
ll_hello_encode(ll_buf *out, const ll_hello *h)
{
	size_t		start = out->len;
	int			rc;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	if (h != NULL && h->sig == NULL)
		return LL_WIRE_ERR_STATE;
	if ((rc = hello_put(out, h)) != LL_WIRE_OK)
		return rc;
	ll_buf_put(out, h->sig, LL_SIG_LEN);
	return encode_done(out, start, LL_WIRE_OK);
}

int
ll_hello_sign_bytes(ll_buf *out, const uint8_t sender[32], ll_wire_str channel,
					const ll_hello *h)
{
	size_t		start = out->len;
	int			rc;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	ll_buf_put(out, (const uint8_t *) "llhello2", 8);
	ll_buf_put(out, sender, 32);
	put_str(out, channel);
	rc = hello_put(out, h);
	return encode_done(out, start, rc);
}

int
ll_hello_decode(const uint8_t *in, size_t len, ll_hello *h)
{
	rd			r = {in, len, 0};
	int			rc;

	memset(h, 0, sizeof(*h));
	if (!r_take(&r, LL_HASH_LEN, &h->chain_id) || !r_u64(&r, &h->height))
		return LL_WIRE_ERR_TRUNCATED;
	if ((rc = r_name(&r, &h->name)) != LL_WIRE_OK)
		return rc;
	if (!r_u64(&r, &h->epoch) || !r_u64(&r, &h->seq) || !r_take(&r, LL_SIG_LEN, &h->sig))
		return LL_WIRE_ERR_TRUNCATED;
	return r_end(&r);
}

int
ll_kex_encode(ll_buf *out, const uint8_t xpub[32], uint64_t epoch, const uint8_t sig[LL_SIG_LEN])
{
	size_t		start = out->len;

	if (out->failed)
		return LL_WIRE_ERR_NOMEM;
	if (xpub == NULL || sig == NULL)
		return LL_WIRE_ERR_STATE;
	ll_buf_put(out, xpub, 32);
	ll_buf_put_u64(out, epoch);
	ll_buf_put(out, sig, LL_SIG_LEN);
	return encode_done(out, start, LL_WIRE_OK);
}

int
ll_kex_decode(const uint8_t *in, size_t len, ll_kex *k)
{
	rd			r = {in, len, 0};

	memset(k, 0, sizeof(*k));
	if (!r_take(&r, 32, &k->xpub) || !r_u64(&r, &k->epoch) ||
		!r_take(&r, LL_SIG_LEN, &k->sig))
		return LL_WIRE_ERR_TRUNCATED;
	if (k->epoch == 0)
		return LL_WIRE_ERR_FIELD;
	return r_end(&r);
}

/* What a KEX signature covers: a label, the chain, the node, key and epoch. */
void
ll_kex_sign_bytes(const uint8_t chain_id[LL_HASH_LEN], const uint8_t node[32],
				  const uint8_t xpub[32], uint64_t epoch, uint8_t out[LL_KEX_SIGN_LEN])
{
	int			i;

	memcpy(out, "llkex1\0\0", 8);
	memcpy(out + 8, chain_id, LL_HASH_LEN);
	memcpy(out + 8 + LL_HASH_LEN, node, 32);
	memcpy(out + 8 + LL_HASH_LEN + 32, xpub, 32);
	for (i = 0; i < 8; i++)
		out[LL_KEX_SIGN_LEN - 1 - i] = (uint8_t) (epoch >> (8 * i));
}

void
ll_auth_encode(uint64_t seq, const uint8_t mac[LL_HASH_LEN], uint8_t out[LL_AUTH_LEN])
{
	int			i;

	for (i = 0; i < 8; i++)
		out[i] = (uint8_t) (seq >> (56 - 8 * i));
	memcpy(out + 8, mac, LL_HASH_LEN);
}

bool
ll_frames_auth(const uint8_t *in, size_t len, size_t *covered, uint64_t *seq,
			   const uint8_t **mac)
{
	ll_frame_iter it;
	ll_frame	f;
	size_t		before = 0;
	int			rc;

	ll_frame_iter_init(&it, in, len);
	for (;;)
	{
		size_t		start = it.pos;

		rc = ll_frame_next(&it, &f);
		if (rc != 1)
			return false;
		if (f.kind == LL_FRAME_AUTH)
		{
			before = start;
			break;
		}
	}
	/* the MAC must close the run: nothing unauthenticated after it */
	if (f.len != LL_AUTH_LEN || it.pos != len)
		return false;
	*covered = before;
	*seq = 0;
	for (rc = 0; rc < 8; rc++)
		*seq = (*seq << 8) | f.body[rc];
	*mac = f.body + 8;
	return true;
}
