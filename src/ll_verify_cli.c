/*
 * ll_verify_cli.c
 *		loopledger_verify: check an inclusion proof against a published
 *		digest, offline, with the same core code the extension uses.
 *
 * Usage: loopledger_verify PROOF.json DIGEST.json
 *
 * Prints exactly one line, "ok: ..." with exit status 0, or "FAIL: reason"
 * with exit status 1.  Everything the proof asserts is recomputed here:
 * the row commitment, its Merkle path, each block header hash and the
 * hash links up to the block the digest names.  Nothing in the proof is
 * trusted except through those hashes, and the digest is the only trusted
 * input, so the verdict is only as good as the digest's provenance.
 */
#include "ll_core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Proofs are small; refuse anything absurd rather than exhaust memory. */
#define MAX_INPUT_BYTES (64 * 1024 * 1024)
/* A Merkle path is at most one hash per tree level of a u32-sized tree. */
#define MAX_PATH_LEN 32

typedef struct proof_block
{
	ll_block_header hdr;
	uint8_t		hash[LL_HASH_LEN];
} proof_block;

typedef struct proof
{
	const char *channel;
	size_t		channel_len;
	uint64_t	entry;
	const char *table;
	size_t		table_len;
	const char *tier;
	size_t		tier_len;
	uint8_t		salt[LL_SALT_LEN];
	json_t	   *columns;		/* validated array, borrowed from the doc */
	uint8_t		leaf_hash[LL_HASH_LEN];
	uint64_t	height;
	uint64_t	position;
	uint32_t	tree_size;
	uint8_t		path[MAX_PATH_LEN * LL_HASH_LEN];
	size_t		path_len;
	proof_block *blocks;
	size_t		nblocks;
} proof;

typedef struct digest
{
	const char *channel;
	size_t		channel_len;
	uint64_t	height;
	uint8_t		block_hash[LL_HASH_LEN];
} digest;

static char reason[1024];

static bool failf(const char *fmt,...) __attribute__((format(printf, 1, 2)));
static void escape_into(char *dst, size_t dstsize, const char *s, size_t len,
						bool quotes);
static void *std_realloc(void *p, size_t n);
static bool read_json(const char *what, const char *path, json_t **doc);
static bool get_field(json_t *obj, const char *ctx, const char *key,
					  json_t **val);
static bool get_uint(json_t *obj, const char *ctx, const char *key,
					 uint64_t max, uint64_t *out);
static bool get_string(json_t *obj, const char *ctx, const char *key,
					   const char **s, size_t *len);
static bool get_hex(json_t *obj, const char *ctx, const char *key,
					uint8_t *out, size_t nbytes);
static bool check_version(json_t *doc, const char *what);
static bool parse_columns(json_t *doc, proof *p);
static bool parse_block(json_t *b, size_t i, const proof *p, proof_block *out);
static bool parse_proof(json_t *doc, proof *p);
static bool parse_digest(json_t *doc, digest *d);
static bool check_row(const proof *p);
static bool check_chain(const proof *p);
static bool check_digest(const proof *p, const digest *d);

/*
 * failf
 *		Record the failure reason; always returns false so callers can
 *		"return failf(...)".
 */
static bool
failf(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return false;
}

/*
 * escape_into
 *		Copy s into dst (NUL-terminated, truncated to fit) so that it cannot
 *		break the one-line output: control bytes become \xNN.  With quotes,
 *		'"' and '\' are escaped too, so an untrusted name printed between
 *		quotes cannot forge the closing quote.
 */
static void
escape_into(char *dst, size_t dstsize, const char *s, size_t len, bool quotes)
{
	size_t		o = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		tmp[5];
		size_t		n;

		if (quotes && (c == '"' || c == '\\'))
		{
			tmp[0] = '\\';
			tmp[1] = (char) c;
			n = 2;
		}
		else if (c < 0x20 || c == 0x7f)
		{
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
			n = 4;
		}
		else
		{
			tmp[0] = (char) c;
			n = 1;
		}
		if (o + n >= dstsize)
			break;
		memcpy(dst + o, tmp, n);
		o += n;
	}
	dst[o] = '\0';
}

/*
 * std_realloc
 *		Plain realloc for ll_buf.
 */
static void *
std_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

/*
 * read_json
 *		Load one file as a JSON document.  The file is read here rather than
 *		by jansson so that an unreadable file and malformed JSON get distinct
 *		reasons.  Duplicate keys are rejected: a proof must not be able to
 *		say two things at once.
 */
static bool
read_json(const char *what, const char *path, json_t **doc)
{
	FILE	   *f;
	char	   *data = NULL;
	size_t		len = 0;
	size_t		cap = 0;
	json_error_t err;

	*doc = NULL;
	f = fopen(path, "rb");
	if (f == NULL)
		return failf("cannot read %s file \"%s\": %s", what, path,
					 strerror(errno));
	for (;;)
	{
		size_t		got;

		if (len == cap)
		{
			char	   *grown;

			if (cap >= MAX_INPUT_BYTES)
			{
				free(data);
				fclose(f);
				return failf("%s file \"%s\" is larger than %d bytes", what,
							 path, MAX_INPUT_BYTES);
			}
			cap = cap == 0 ? 65536 : cap * 2;
			grown = realloc(data, cap);
			if (grown == NULL)
			{
				free(data);
				fclose(f);
				return failf("out of memory reading %s file", what);
			}
			data = grown;
		}
		got = fread(data + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		int			e = errno;

		free(data);
		fclose(f);
		return failf("cannot read %s file \"%s\": %s", what, path,
					 strerror(e));
	}
	fclose(f);

	*doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
	free(data);
	if (*doc == NULL)
		return failf("%s file \"%s\" is not valid JSON: %s (line %d, column %d)",
					 what, path, err.text, err.line, err.column);
	if (!json_is_object(*doc))
		return failf("%s file \"%s\" is not a JSON object", what, path);
	return true;
}

/*
 * get_field
 *		Required member of an object; a missing one is a failure.
 */
static bool
get_field(json_t *obj, const char *ctx, const char *key, json_t **val)
{
	*val = json_object_get(obj, key);
	if (*val == NULL)
		return failf("%s: missing field \"%s\"", ctx, key);
	return true;
}

/*
 * get_uint
 *		Required non-negative JSON integer no larger than max.  Reals such
 *		as 3.0 are refused: the formats have no fractional numbers, so one
 *		can only come from a broken or forged producer.
 */
static bool
get_uint(json_t *obj, const char *ctx, const char *key, uint64_t max,
		 uint64_t *out)
{
	json_t	   *v;
	json_int_t	i;

	if (!get_field(obj, ctx, key, &v))
		return false;
	if (!json_is_integer(v))
		return failf("%s: field \"%s\" must be a non-negative integer", ctx, key);
	i = json_integer_value(v);
	if (i < 0)
		return failf("%s: field \"%s\" must be a non-negative integer, not %" JSON_INTEGER_FORMAT,
					 ctx, key, i);
	if ((uint64_t) i > max)
		return failf("%s: field \"%s\" value %" JSON_INTEGER_FORMAT " is out of range (at most %" PRIu64 ")",
					 ctx, key, i, max);
	*out = (uint64_t) i;
	return true;
}

/*
 * get_string
 *		Required JSON string, returned with its byte length.
 */
static bool
get_string(json_t *obj, const char *ctx, const char *key,
		   const char **s, size_t *len)
{
	json_t	   *v;

	if (!get_field(obj, ctx, key, &v))
		return false;
	if (!json_is_string(v))
		return failf("%s: field \"%s\" must be a string", ctx, key);
	*s = json_string_value(v);
	*len = json_string_length(v);
	return true;
}

/*
 * get_hex
 *		Required string of exactly 2 * nbytes hex digits.
 */
static bool
get_hex(json_t *obj, const char *ctx, const char *key, uint8_t *out,
		size_t nbytes)
{
	const char *s;
	size_t		len;

	if (!get_string(obj, ctx, key, &s, &len))
		return false;
	if (!ll_hex_decode(s, len, out, nbytes))
		return failf("%s: field \"%s\" must be %zu hex digits", ctx, key,
					 2 * nbytes);
	return true;
}

/*
 * check_version
 *		Only version 1 is understood; anything else may mean different
 *		encodings, so it must not be checked as if it were version 1.
 */
static bool
check_version(json_t *doc, const char *what)
{
	json_t	   *v;

	if (!get_field(doc, what, "version", &v))
		return false;
	if (!json_is_integer(v))
		return failf("%s: field \"version\" must be an integer", what);
	if (json_integer_value(v) != 1)
		return failf("%s version %" JSON_INTEGER_FORMAT " is not supported (expected 1)",
					 what, json_integer_value(v));
	return true;
}

/*
 * parse_columns
 *		Validate "columns": an array of {"name": string, "value": string or
 *		null}.  The values are encoded later, straight from the document.
 */
static bool
parse_columns(json_t *doc, proof *p)
{
	json_t	   *cols;
	size_t		i;

	if (!get_field(doc, "proof", "columns", &cols))
		return false;
	if (!json_is_array(cols))
		return failf("proof: field \"columns\" must be an array");
	if (json_array_size(cols) > UINT32_MAX)
		return failf("proof: too many columns");
	for (i = 0; i < json_array_size(cols); i++)
	{
		json_t	   *c = json_array_get(cols, i);
		json_t	   *v;
		const char *s;
		size_t		len;
		char		ctx[64];

		snprintf(ctx, sizeof(ctx), "proof columns[%zu]", i);
		if (!json_is_object(c))
			return failf("%s must be an object", ctx);
		if (!get_string(c, ctx, "name", &s, &len))
			return false;
		if (!get_field(c, ctx, "value", &v))
			return false;
		if (!json_is_string(v) && !json_is_null(v))
			return failf("%s: field \"value\" must be a string or null", ctx);
	}
	p->columns = cols;
	return true;
}

/*
 * parse_block
 *		Read one block header; the channel is the proof's, because a block
 *		hash commits to its channel and the proof is about one channel.
 */
static bool
parse_block(json_t *b, size_t i, const proof *p, proof_block *out)
{
	char		ctx[64];
	uint64_t	v;

	snprintf(ctx, sizeof(ctx), "proof blocks[%zu]", i);
	if (!json_is_object(b))
		return failf("%s must be an object", ctx);
	out->hdr.channel = p->channel;
	out->hdr.channel_len = p->channel_len;
	if (!get_uint(b, ctx, "height", UINT64_MAX, &out->hdr.height) ||
		!get_hex(b, ctx, "prev_hash", out->hdr.prev_hash, LL_HASH_LEN) ||
		!get_hex(b, ctx, "merkle_root", out->hdr.merkle_root, LL_HASH_LEN) ||
		!get_uint(b, ctx, "time_us", INT64_MAX, &v))
		return false;
	out->hdr.time_us = (int64_t) v;
	if (!get_uint(b, ctx, "tx_count", UINT32_MAX, &v))
		return false;
	out->hdr.tx_count = (uint32_t) v;
	if (!get_uint(b, ctx, "row_count", UINT32_MAX, &v))
		return false;
	out->hdr.row_count = (uint32_t) v;
	if (!get_hex(b, ctx, "config_hash", out->hdr.config_hash, LL_HASH_LEN) ||
		!get_hex(b, ctx, "hash", out->hash, LL_HASH_LEN))
		return false;
	return true;
}

/*
 * parse_proof
 *		Type-check every proof field and decode it; no semantic checks yet.
 *		On success p->blocks is malloc'd and owned by the caller.
 */
static bool
parse_proof(json_t *doc, proof *p)
{
	json_t	   *arr;
	uint64_t	v;
	size_t		i;

	memset(p, 0, sizeof(*p));
	if (!check_version(doc, "proof") ||
		!get_string(doc, "proof", "channel", &p->channel, &p->channel_len) ||
		!get_uint(doc, "proof", "entry", UINT64_MAX, &p->entry) ||
		!get_string(doc, "proof", "table", &p->table, &p->table_len) ||
		!get_string(doc, "proof", "tier", &p->tier, &p->tier_len) ||
		!get_hex(doc, "proof", "salt", p->salt, LL_SALT_LEN) ||
		!parse_columns(doc, p) ||
		!get_hex(doc, "proof", "leaf_hash", p->leaf_hash, LL_HASH_LEN) ||
		!get_uint(doc, "proof", "height", UINT64_MAX, &p->height) ||
		!get_uint(doc, "proof", "position", UINT32_MAX, &p->position) ||
		!get_uint(doc, "proof", "tree_size", UINT32_MAX, &v))
		return false;
	p->tree_size = (uint32_t) v;

	if (!get_field(doc, "proof", "path", &arr))
		return false;
	if (!json_is_array(arr))
		return failf("proof: field \"path\" must be an array");
	if (json_array_size(arr) > MAX_PATH_LEN)
		return failf("proof: Merkle path has %zu hashes, more than any tree of a block can need",
					 json_array_size(arr));
	p->path_len = json_array_size(arr);
	for (i = 0; i < p->path_len; i++)
	{
		json_t	   *h = json_array_get(arr, i);

		if (!json_is_string(h) ||
			!ll_hex_decode(json_string_value(h), json_string_length(h),
						   p->path + i * LL_HASH_LEN, LL_HASH_LEN))
			return failf("proof: path[%zu] must be a string of %d hex digits",
						 i, 2 * LL_HASH_LEN);
	}

	if (!get_field(doc, "proof", "blocks", &arr))
		return false;
	if (!json_is_array(arr))
		return failf("proof: field \"blocks\" must be an array");
	if (json_array_size(arr) == 0)
		return failf("proof: field \"blocks\" is empty; it must start with the row's block");
	p->nblocks = json_array_size(arr);
	p->blocks = calloc(p->nblocks, sizeof(proof_block));
	if (p->blocks == NULL)
		return failf("out of memory");
	for (i = 0; i < p->nblocks; i++)
		if (!parse_block(json_array_get(arr, i), i, p, &p->blocks[i]))
			return false;
	return true;
}

/*
 * parse_digest
 *		Type-check the digest.  time and genesis_hash are informative, but
 *		when present they must still be well-formed.
 */
static bool
parse_digest(json_t *doc, digest *d)
{
	json_t	   *v;
	uint8_t		genesis[LL_HASH_LEN];

	memset(d, 0, sizeof(*d));
	if (!check_version(doc, "digest") ||
		!get_string(doc, "digest", "channel", &d->channel, &d->channel_len) ||
		!get_uint(doc, "digest", "height", UINT64_MAX, &d->height) ||
		!get_hex(doc, "digest", "block_hash", d->block_hash, LL_HASH_LEN))
		return false;
	v = json_object_get(doc, "time");
	if (v != NULL && !json_is_string(v))
		return failf("digest: field \"time\" must be a string");
	if (json_object_get(doc, "genesis_hash") != NULL &&
		!get_hex(doc, "digest", "genesis_hash", genesis, LL_HASH_LEN))
		return false;
	return true;
}

/*
 * check_row
 *		The row content hashes to leaf_hash, and leaf_hash sits at position
 *		in the first block's Merkle tree.  The tree size must be the block's
 *		committed row_count: an inclusion path alone does not pin the size.
 */
static bool
check_row(const proof *p)
{
	ll_buf		buf;
	uint8_t		leaf[LL_HASH_LEN];
	size_t		i;
	bool		ok;
	const proof_block *b0 = &p->blocks[0];

	ll_buf_init(&buf, std_realloc);
	ll_entry_begin(&buf, p->table, p->table_len, p->entry, p->tier,
				   p->tier_len, p->salt, (uint32_t) json_array_size(p->columns));
	for (i = 0; i < json_array_size(p->columns); i++)
	{
		json_t	   *c = json_array_get(p->columns, i);
		json_t	   *name = json_object_get(c, "name");
		json_t	   *val = json_object_get(c, "value");

		if (json_is_null(val))
			ll_entry_null(&buf, json_string_value(name),
						  json_string_length(name));
		else
			ll_entry_value(&buf, json_string_value(name),
						   json_string_length(name), json_string_value(val),
						   json_string_length(val));
	}
	ok = !buf.failed && ll_leaf_hash(buf.data, buf.len, leaf);
	free(buf.data);
	if (!ok)
		return failf("cannot encode the row (out of memory or hashing failure)");
	if (memcmp(leaf, p->leaf_hash, LL_HASH_LEN) != 0)
		return failf("row content does not match its commitment (leaf_hash)");

	if (b0->hdr.height != p->height)
		return failf("proof height %" PRIu64 " does not match its first block (height %" PRIu64 ")",
					 p->height, b0->hdr.height);
	if (b0->hdr.row_count != p->tree_size)
		return failf("tree_size %" PRIu32 " does not match row_count %" PRIu32 " of block %" PRIu64,
					 p->tree_size, b0->hdr.row_count, b0->hdr.height);
	if (p->position >= p->tree_size)
		return failf("position %" PRIu64 " is outside block %" PRIu64 "'s %" PRIu32 " rows",
					 p->position, b0->hdr.height, p->tree_size);
	if (!ll_entry_leaf(p->entry, p->tier, p->tier_len, p->leaf_hash, leaf))
		return failf("cannot hash the row's Merkle leaf");
	if (!ll_merkle_verify(leaf, (size_t) p->position, p->tree_size,
						  p->path, p->path_len, b0->hdr.merkle_root))
		return failf("Merkle path does not prove leaf_hash at position %" PRIu64 " of %" PRIu32 " under the merkle_root of block %" PRIu64,
					 p->position, p->tree_size, b0->hdr.height);
	return true;
}

/*
 * check_chain
 *		Every header re-hashes to its recorded hash, heights are consecutive
 *		and each block's prev_hash is its predecessor's hash, so the last
 *		block's hash commits to the row's block.
 */
static bool
check_chain(const proof *p)
{
	ll_buf		scratch;
	size_t		i;
	bool		ok = true;

	ll_buf_init(&scratch, std_realloc);
	for (i = 0; ok && i < p->nblocks; i++)
	{
		const proof_block *b = &p->blocks[i];
		uint8_t		h[LL_HASH_LEN];

		if (!ll_block_hash(&b->hdr, &scratch, h))
			ok = failf("cannot hash block %" PRIu64 " (out of memory or hashing failure)",
					   b->hdr.height);
		else if (memcmp(h, b->hash, LL_HASH_LEN) != 0)
			ok = failf("block %" PRIu64 " header does not hash to its recorded hash",
					   b->hdr.height);
		else if (i > 0)
		{
			const proof_block *prev = &p->blocks[i - 1];

			if (prev->hdr.height == UINT64_MAX ||
				b->hdr.height != prev->hdr.height + 1)
				ok = failf("blocks are not consecutive: height %" PRIu64 " follows height %" PRIu64,
						   b->hdr.height, prev->hdr.height);
			else if (memcmp(b->hdr.prev_hash, prev->hash, LL_HASH_LEN) != 0)
				ok = failf("block %" PRIu64 " prev_hash does not link to the hash of block %" PRIu64,
						   b->hdr.height, prev->hdr.height);
		}
	}
	free(scratch.data);
	return ok;
}

/*
 * check_digest
 *		The digest must name a block of this proof's chain segment, by
 *		channel, height and hash.
 */
static bool
check_digest(const proof *p, const digest *d)
{
	uint64_t	first = p->blocks[0].hdr.height;
	uint64_t	last = p->blocks[p->nblocks - 1].hdr.height;
	const proof_block *b;

	if (d->channel_len != p->channel_len ||
		memcmp(d->channel, p->channel, p->channel_len) != 0)
	{
		char		dc[256];
		char		pc[256];

		escape_into(dc, sizeof(dc), d->channel, d->channel_len, true);
		escape_into(pc, sizeof(pc), p->channel, p->channel_len, true);
		return failf("digest is for channel \"%s\" but the proof is for channel \"%s\"",
					 dc, pc);
	}
	if (d->height < first)
		return failf("digest height %" PRIu64 " is older than the row's block %" PRIu64 ": it cannot attest this row",
					 d->height, first);
	if (d->height > last)
		return failf("digest height %" PRIu64 " is newer than this proof (up to %" PRIu64 "): request a proof up to height %" PRIu64,
					 d->height, last, d->height);

	b = &p->blocks[d->height - first];
	if (memcmp(b->hash, d->block_hash, LL_HASH_LEN) != 0)
	{
		char		got[2 * LL_HASH_LEN + 1];
		char		want[2 * LL_HASH_LEN + 1];

		ll_hex_encode(b->hash, LL_HASH_LEN, got);
		ll_hex_encode(d->block_hash, LL_HASH_LEN, want);
		return failf("block %" PRIu64 " hash %.16s differs from the digest's block_hash %.16s: the proof's chain is not the published one",
					 d->height, got, want);
	}
	return true;
}

int
main(int argc, char **argv)
{
	json_t	   *pdoc = NULL;
	json_t	   *ddoc = NULL;
	proof		p;
	digest		d;
	bool		ok;

	memset(&p, 0, sizeof(p));
	memset(&d, 0, sizeof(d));
	if (argc != 3)
		ok = failf("usage: loopledger_verify PROOF.json DIGEST.json");
	else
		ok = read_json("proof", argv[1], &pdoc) &&
			read_json("digest", argv[2], &ddoc) &&
			parse_proof(pdoc, &p) &&
			parse_digest(ddoc, &d) &&
			check_row(&p) &&
			check_chain(&p) &&
			check_digest(&p, &d);

	if (ok)
	{
		char		hex[2 * LL_HASH_LEN + 1];
		char		table[1024];
		char		channel[1024];

		ll_hex_encode(d.block_hash, LL_HASH_LEN, hex);
		/* quoted like the channel: a table name could mimic the rest of the line */
		escape_into(table, sizeof(table), p.table, p.table_len, true);
		escape_into(channel, sizeof(channel), p.channel, p.channel_len, true);
		printf("ok: entry %" PRIu64 " of table \"%s\" is in block %" PRIu64 " of channel \"%s\", an ancestor of digest height %" PRIu64 " (%.16s)\n",
			   p.entry, table, p.blocks[0].hdr.height, channel, d.height, hex);
	}
	else
	{
		char		line[sizeof(reason)];

		escape_into(line, sizeof(line), reason, strlen(reason), false);
		printf("FAIL: %s\n", line);
	}

	free(p.blocks);
	json_decref(pdoc);
	json_decref(ddoc);
	if (fflush(stdout) != 0)
		return 1;
	return ok ? 0 : 1;
}
