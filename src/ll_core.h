/*
 * ll_core.h
 *		Canonical encodings, SHA-256 and Merkle trees for loopledger.
 *
 * This file and its .c files deliberately include no PostgreSQL header:
 * the extension, the offline verifier (loopledger_verify) and the unit
 * tests all share them, so a proof is checked by exactly the code that made
 * it.  All multi-byte integers are big-endian; "str" is a u32 length
 * followed by that many bytes (UTF-8 for text).
 *
 * Entry (one ledger row), version 1:
 *   "LLE1" | str table | u64 entry_id | str tier | salt[16] | u32 ncols |
 *   ncols x ( str column_name | u8 0 (NULL) | u8 1 str canonical_text )
 * Row commitment (RFC 6962 leaf hash):            SHA-256(0x00 | entry)
 * Merkle leaf of an entry in a block:             SHA-256(0x02 | u64 entry_id |
 *                                                   str tier | commitment)
 *   (binds entry number and tier: a node holding only the commitment still
 *   knows, under the root, which entry and tier it stands for)
 * Merkle node:                                    SHA-256(0x01 | left | right)
 * Merkle root of no leaves:                       SHA-256("")
 * Tree shape as RFC 6962 section 2.1: split at the largest power of two
 * strictly smaller than n.
 *
 * Channel configuration, version 1:
 *   "LLC1" | str channel | u32 ntiers | ntiers x str tier
 * config_hash = SHA-256(configuration)
 *
 * Block header, version 1:
 *   "LLB1" | str channel | u64 height | prev_hash[32] | merkle_root[32] |
 *   i64 time_us (microseconds since 1970-01-01 UTC) | u32 tx_count |
 *   u32 row_count | config_hash[32]
 * block_hash = SHA-256(header)
 */
#ifndef LL_CORE_H
#define LL_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LL_HASH_LEN 32
#define LL_SALT_LEN 16

/*
 * Growable byte buffer.  The caller supplies the allocator so the extension
 * can use palloc-backed memory and plain C code can use realloc.  On
 * allocation failure "failed" is set and further appends are ignored; the
 * realloc callback may also never return (PostgreSQL's repalloc ereports).
 */
typedef void *(*ll_realloc_fn) (void *ptr, size_t size);

typedef struct ll_buf
{
	uint8_t    *data;
	size_t		len;
	size_t		cap;
	bool		failed;
	ll_realloc_fn realloc_fn;
} ll_buf;

extern void ll_buf_init(ll_buf *buf, ll_realloc_fn realloc_fn);
extern void ll_buf_reset(ll_buf *buf);	/* len = 0, keeps memory */
/* Make room for extra more bytes; false (and buf->failed) on failure. */
extern bool ll_buf_grow(ll_buf *buf, size_t extra);

/*
 * Appending is inline: rows are encoded field by field millions of times
 * per verify, and a call per field cost more than the copying.  Appends
 * are no-ops once the buffer has failed.
 */
static inline void
ll_buf_put(ll_buf *buf, const void *data, size_t len)
{
	if (len == 0 || buf->failed)
		return;
	if (len > buf->cap - buf->len && !ll_buf_grow(buf, len))
		return;
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
}

static inline void
ll_buf_put_u8(ll_buf *buf, uint8_t v)
{
	ll_buf_put(buf, &v, 1);
}

/* Big-endian, independent of host byte order. */
static inline void
ll_buf_put_u32(ll_buf *buf, uint32_t v)
{
	uint8_t		b[4];

	b[0] = (uint8_t) (v >> 24);
	b[1] = (uint8_t) (v >> 16);
	b[2] = (uint8_t) (v >> 8);
	b[3] = (uint8_t) v;
	ll_buf_put(buf, b, sizeof(b));
}

static inline void
ll_buf_put_u64(ll_buf *buf, uint64_t v)
{
	uint8_t		b[8];
	int			i;

	for (i = 7; i >= 0; i--)
	{
		b[i] = (uint8_t) v;
		v >>= 8;
	}
	ll_buf_put(buf, b, sizeof(b));
}

/* u32 length + bytes; a length that does not fit 32 bits fails the buffer. */
static inline void
ll_buf_put_str(ll_buf *buf, const char *s, size_t len)
{
	if (len > UINT32_MAX)
	{
		buf->failed = true;
		return;
	}
	ll_buf_put_u32(buf, (uint32_t) len);
	ll_buf_put(buf, s, len);
}

/* SHA-256 through OpenSSL 3 EVP.  Return false only if OpenSSL fails. */
extern bool ll_sha256(const void *data, size_t len, uint8_t out[LL_HASH_LEN]);
/* SHA-256(prefix | data), for domain-separated hashes without copying. */
extern bool ll_sha256_prefixed(uint8_t prefix, const void *data, size_t len,
							   uint8_t out[LL_HASH_LEN]);

/* Entry encoding: begin, then exactly ncols column calls. */
extern void ll_entry_begin(ll_buf *buf, const char *table, size_t table_len,
						   uint64_t entry_id, const char *tier, size_t tier_len,
						   const uint8_t salt[LL_SALT_LEN], uint32_t ncols);
extern void ll_entry_null(ll_buf *buf, const char *col, size_t col_len);
extern void ll_entry_value(ll_buf *buf, const char *col, size_t col_len,
						   const char *val, size_t val_len);
/*
 * Reading an entry back (peers apply rows received from the network, so
 * this is strict: truncation, trailing bytes and bad flags fail).
 */
typedef struct ll_entry_view
{
	const char *table;
	size_t		table_len;
	uint64_t	entry_id;
	const char *tier;
	size_t		tier_len;
	const uint8_t *salt;
	uint32_t	ncols;
	const uint8_t *cols;		/* column list */
	const uint8_t *end;
} ll_entry_view;

typedef struct ll_entry_col
{
	const char *name;
	size_t		name_len;
	bool		isnull;
	const char *value;
	size_t		value_len;
} ll_entry_col;

/* false if the bytes are not exactly one well-formed entry */
extern bool ll_entry_decode(const uint8_t *in, size_t len, ll_entry_view *e);
/* Column i in order; call with *pos = 0 first. */
extern bool ll_entry_next_col(const ll_entry_view *e, const uint8_t **pos, ll_entry_col *col);

/* Leaf hash (row commitment) of an encoded entry. */
extern bool ll_leaf_hash(const uint8_t *entry, size_t len, uint8_t out[LL_HASH_LEN]);
/* Merkle leaf of an entry in a block (see above). */
extern bool ll_entry_leaf(uint64_t entry_id, const char *tier, size_t tier_len,
						  const uint8_t commitment[LL_HASH_LEN], uint8_t out[LL_HASH_LEN]);
extern bool ll_node_hash(const uint8_t left[LL_HASH_LEN],
						 const uint8_t right[LL_HASH_LEN],
						 uint8_t out[LL_HASH_LEN]);

/*
 * Merkle root over n leaf hashes (contiguous, n * 32 bytes).  Uses scratch
 * space of n * 32 bytes supplied by the caller so no allocation happens.
 */
extern bool ll_merkle_root(const uint8_t *leaves, size_t n, uint8_t *scratch,
						   uint8_t root[LL_HASH_LEN]);
/*
 * Audit path for leaf "index" of n leaves (RFC 6962 PATH).  path must hold
 * ll_merkle_path_max(n) hashes; *path_len receives the number written.
 */
extern size_t ll_merkle_path_max(size_t n);
extern bool ll_merkle_path(const uint8_t *leaves, size_t n, size_t index,
						   uint8_t *path, size_t *path_len);
/* True when leaf at index of a tree of n leaves with this path has root. */
extern bool ll_merkle_verify(const uint8_t leaf[LL_HASH_LEN], size_t index,
							 size_t n, const uint8_t *path, size_t path_len,
							 const uint8_t root[LL_HASH_LEN]);

typedef struct ll_block_header
{
	const char *channel;
	size_t		channel_len;
	uint64_t	height;
	uint8_t		prev_hash[LL_HASH_LEN];
	uint8_t		merkle_root[LL_HASH_LEN];
	int64_t		time_us;
	uint32_t	tx_count;
	uint32_t	row_count;
	uint8_t		config_hash[LL_HASH_LEN];
} ll_block_header;

extern void ll_block_encode(ll_buf *buf, const ll_block_header *hdr);
extern bool ll_block_hash(const ll_block_header *hdr, ll_buf *scratch,
						  uint8_t out[LL_HASH_LEN]);

/* Configuration encoding: begin with the tier count, then each tier. */
extern void ll_config_begin(ll_buf *buf, const char *channel, size_t channel_len,
							uint32_t ntiers);
extern void ll_config_tier(ll_buf *buf, const char *tier, size_t tier_len);

/* Lower-case hex.  out must hold 2 * len + 1 bytes; it is NUL-terminated. */
extern void ll_hex_encode(const uint8_t *data, size_t len, char *out);
/* Exactly 2 * len hex digits (either case) into len bytes; false otherwise. */
extern bool ll_hex_decode(const char *hex, size_t hex_len, uint8_t *out, size_t len);

#endif							/* LL_CORE_H */
