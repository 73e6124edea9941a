/*
 * disclosure.c
 *		ledger.verify_disclosure(): check a row disclosed by another member
 *		against this node's own copy of the chain.
 *
 * A disclosure is exactly what ledger.proof() returns on a node that holds
 * the row: its canonical column texts, salt, Merkle audit path and the
 * block headers from its block on.  A member not cleared for the row's
 * tier holds only the row's commitment (a redacted entry); with a
 * disclosure it can still check, with its own blocks and nothing else,
 * that this row is the one its chain committed to.
 *
 * Nothing in the disclosure is trusted: the row is re-encoded with the
 * same pure-C encoder the proof, the capture trigger and loopledger_verify
 * use, and compared with the commitment stored here; the audit path must
 * lead to this node's Merkle root of that block; the disclosure's headers
 * must hash to what they claim and, where this node has the block, to this
 * node's block hash.  Malformed input is an error; a disclosure that does
 * not match is false, with a NOTICE naming the first check that failed.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "loopledger.h"
#include "chain.h"

PG_FUNCTION_INFO_V1(ll_verify_disclosure);

/* A Merkle path has at most one hash per level of a u32-sized tree. */
#define LL_DISCLOSURE_MAX_PATH 32

typedef struct DisclosedColumn
{
	const char *name;
	int			name_len;
	bool		isnull;
	const char *value;
	int			value_len;
} DisclosedColumn;

typedef struct DisclosedBlock
{
	ll_block_header hdr;
	uint8		hash[LL_HASH_LEN];
} DisclosedBlock;

typedef struct Disclosure
{
	char	   *channel;
	const char *table;
	int			table_len;
	uint64		entry;
	const char *tier;
	int			tier_len;
	uint8		salt[LL_SALT_LEN];
	int			ncols;
	DisclosedColumn *cols;
	uint8		leaf_hash[LL_HASH_LEN];
	uint64		height;
	uint64		position;
	uint64		tree_size;
	uint8		path[LL_DISCLOSURE_MAX_PATH * LL_HASH_LEN];
	int			path_len;
	int			nblocks;
	DisclosedBlock *blocks;
} Disclosure;

static void malformed(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();
static bool mismatch(const Disclosure *d, const char *fmt,...) pg_attribute_printf(2, 3);

/*
 * Refuse input that is not a well-formed disclosure: always an ERROR with
 * SQLSTATE 22023, never a quiet false.
 */
static void
malformed(const char *fmt,...)
{
	char	   *msg;
	va_list		args;

	va_start(args, fmt);
	msg = ll_vformat(fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid disclosure: %s", msg),
			 errhint("Pass the jsonb that ledger.proof() returns on a node cleared for the row.")));
	pg_unreachable();
}

/*
 * A well-formed disclosure that does not match this node's chain: NOTICE
 * naming the failed check, and false for the caller to return.
 */
static bool
mismatch(const Disclosure *d, const char *fmt,...)
{
	char	   *msg;
	va_list		args;

	va_start(args, fmt);
	msg = ll_vformat(fmt, args);
	va_end(args);
	ereport(NOTICE,
			(errmsg("disclosure of entry %llu does not match channel \"%s\" on this node",
					(unsigned long long) d->entry, d->channel),
			 errdetail("%s", msg)));
	return false;
}

/* ---------------------------------------------------------------------
 * Parsing.  Every field is type-checked; ctx names a nested object for
 * errors (NULL at the top level).
 * ---------------------------------------------------------------------
 */

/* "field \"key\"", or "field \"key\" of blocks[2]" inside a nested object */
static char *
field_name(const char *ctx, const char *key)
{
	return ctx ? psprintf("field \"%s\" of %s", key, ctx) : psprintf("field \"%s\"", key);
}

static JsonbValue *
get_field(JsonbContainer *obj, const char *ctx, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v == NULL)
		malformed("%s is missing", field_name(ctx, key));
	return v;
}

/* A non-negative JSON integer no larger than max (3.0 and 1e3 are refused). */
static uint64
get_uint(JsonbContainer *obj, const char *ctx, const char *key, uint64 max)
{
	JsonbValue *v = get_field(obj, ctx, key);
	char	   *text;
	size_t		len;
	unsigned long long n;
	char	   *end;

	if (v->type != jbvNumeric)
		malformed("%s must be a non-negative integer", field_name(ctx, key));
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	len = strlen(text);
	if (len == 0 || len > 20 || strspn(text, "0123456789") != len)
		malformed("%s must be a non-negative integer, not %.40s", field_name(ctx, key), text);
	errno = 0;
	n = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0' || n > max)
		malformed("%s is out of range: %s (at most " UINT64_FORMAT ")",
				  field_name(ctx, key), text, max);
	return (uint64) n;
}

static const char *
get_string(JsonbContainer *obj, const char *ctx, const char *key, int *len)
{
	JsonbValue *v = get_field(obj, ctx, key);

	if (v->type != jbvString)
		malformed("%s must be a string", field_name(ctx, key));
	*len = v->val.string.len;
	return v->val.string.val;
}

static void
get_hex(JsonbContainer *obj, const char *ctx, const char *key, uint8 *out, size_t nbytes)
{
	int			len;
	const char *s = get_string(obj, ctx, key, &len);

	if (!ll_hex_decode(s, (size_t) len, out, nbytes))
		malformed("%s must be %d hex digits", field_name(ctx, key), (int) (2 * nbytes));
}

/* A nested array or object, as a container. */
static JsonbContainer *
get_container(JsonbContainer *obj, const char *ctx, const char *key, bool array)
{
	JsonbValue *v = get_field(obj, ctx, key);

	if (v->type != jbvBinary ||
		(array ? !JsonContainerIsArray(v->val.binary.data) || JsonContainerIsScalar(v->val.binary.data)
		 : !JsonContainerIsObject(v->val.binary.data)))
		malformed("%s must be an %s", field_name(ctx, key), array ? "array" : "object");
	return v->val.binary.data;
}

/* Element i of an array, which must be an object. */
static JsonbContainer *
get_object_at(JsonbContainer *arr, uint32 i, const char *what)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		malformed("%s[%u] must be an object", what, i);
	return v->val.binary.data;
}

static void
parse_columns(JsonbContainer *root, Disclosure *d)
{
	JsonbContainer *arr = get_container(root, NULL, "columns", true);
	uint32		n = JsonContainerSize(arr);
	uint32		i;

	d->ncols = (int) n;
	d->cols = palloc0(sizeof(DisclosedColumn) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		JsonbContainer *c = get_object_at(arr, i, "columns");
		char		ctx[64];
		JsonbValue *v;

		snprintf(ctx, sizeof(ctx), "columns[%u]", i);
		d->cols[i].name = get_string(c, ctx, "name", &d->cols[i].name_len);
		v = get_field(c, ctx, "value");
		if (v->type == jbvNull)
			d->cols[i].isnull = true;
		else if (v->type == jbvString)
		{
			d->cols[i].value = v->val.string.val;
			d->cols[i].value_len = v->val.string.len;
		}
		else
			malformed("%s must be a string or null", field_name(ctx, "value"));
	}
}

static void
parse_path(JsonbContainer *root, Disclosure *d)
{
	JsonbContainer *arr = get_container(root, NULL, "path", true);
	uint32		n = JsonContainerSize(arr);
	uint32		i;

	if (n > LL_DISCLOSURE_MAX_PATH)
		malformed("the Merkle path has %u hashes, more than any block's tree can need", n);
	d->path_len = (int) n;
	for (i = 0; i < n; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

		if (v == NULL || v->type != jbvString ||
			!ll_hex_decode(v->val.string.val, (size_t) v->val.string.len,
						   d->path + (Size) i * LL_HASH_LEN, LL_HASH_LEN))
			malformed("path[%u] must be a string of %d hex digits", i, 2 * LL_HASH_LEN);
	}
}

static void
parse_blocks(JsonbContainer *root, Disclosure *d)
{
	JsonbContainer *arr = get_container(root, NULL, "blocks", true);
	uint32		n = JsonContainerSize(arr);
	uint32		i;

	if (n == 0)
		malformed("field \"blocks\" is empty; it must start with the row's block");
	d->nblocks = (int) n;
	d->blocks = palloc0(sizeof(DisclosedBlock) * n);
	for (i = 0; i < n; i++)
	{
		JsonbContainer *b = get_object_at(arr, i, "blocks");
		DisclosedBlock *out = &d->blocks[i];
		char		ctx[64];

		snprintf(ctx, sizeof(ctx), "blocks[%u]", i);
		/* a block hash commits to its channel: the disclosure's */
		out->hdr.channel = d->channel;
		out->hdr.channel_len = strlen(d->channel);
		out->hdr.height = get_uint(b, ctx, "height", PG_INT64_MAX);
		get_hex(b, ctx, "prev_hash", out->hdr.prev_hash, LL_HASH_LEN);
		get_hex(b, ctx, "merkle_root", out->hdr.merkle_root, LL_HASH_LEN);
		out->hdr.time_us = (int64) get_uint(b, ctx, "time_us", PG_INT64_MAX);
		out->hdr.tx_count = (uint32) get_uint(b, ctx, "tx_count", PG_UINT32_MAX);
		out->hdr.row_count = (uint32) get_uint(b, ctx, "row_count", PG_UINT32_MAX);
		get_hex(b, ctx, "config_hash", out->hdr.config_hash, LL_HASH_LEN);
		get_hex(b, ctx, "hash", out->hash, LL_HASH_LEN);
	}
}

/* Type-check and decode the whole disclosure; no comparison yet. */
static void
parse_disclosure(Jsonb *jb, Disclosure *d)
{
	JsonbContainer *root = &jb->root;
	const char *s;
	int			len;
	uint64		version;

	memset(d, 0, sizeof(*d));
	if (!JsonContainerIsObject(root))
		malformed("it must be a JSON object");
	version = get_uint(root, NULL, "version", PG_UINT32_MAX);
	if (version != 1)
		malformed("version " UINT64_FORMAT " is not supported (expected 1)", version);
	s = get_string(root, NULL, "channel", &len);
	d->channel = pnstrdup(s, len);
	d->entry = get_uint(root, NULL, "entry", PG_INT64_MAX);
	if (d->entry == 0)
		malformed("field \"entry\" must be a positive entry number");
	d->table = get_string(root, NULL, "table", &d->table_len);
	d->tier = get_string(root, NULL, "tier", &d->tier_len);
	get_hex(root, NULL, "salt", d->salt, LL_SALT_LEN);
	parse_columns(root, d);
	get_hex(root, NULL, "leaf_hash", d->leaf_hash, LL_HASH_LEN);
	d->height = get_uint(root, NULL, "height", PG_INT64_MAX);
	d->position = get_uint(root, NULL, "position", PG_UINT32_MAX);
	d->tree_size = get_uint(root, NULL, "tree_size", PG_UINT32_MAX);
	parse_path(root, d);
	parse_blocks(root, d);
}

/* ---------------------------------------------------------------------
 * Checks against this node's chain
 * ---------------------------------------------------------------------
 */

/* Leaf hash of the disclosed row, encoded exactly as ledger.proof() did. */
static void
disclosed_leaf(const Disclosure *d, uint8 *leaf)
{
	ll_buf		buf;
	int			i;

	ll_buf_init(&buf, ll_palloc_realloc);
	ll_entry_begin(&buf, d->table, (size_t) d->table_len, d->entry, d->tier,
				   (size_t) d->tier_len, d->salt, (uint32) d->ncols);
	for (i = 0; i < d->ncols; i++)
	{
		const DisclosedColumn *c = &d->cols[i];

		if (c->isnull)
			ll_entry_null(&buf, c->name, (size_t) c->name_len);
		else
			ll_entry_value(&buf, c->name, (size_t) c->name_len, c->value, (size_t) c->value_len);
	}
	if (buf.failed || !ll_leaf_hash(buf.data, buf.len, leaf))
		elog(ERROR, "could not hash the disclosed row");
	pfree(buf.data);
}

/*
 * The disclosure's own headers: each hashes to its recorded hash, heights
 * are consecutive and each links to the one before.
 */
static bool
check_disclosed_headers(const Disclosure *d)
{
	ll_buf		scratch;
	int			i;

	if (d->blocks[0].hdr.height != d->height)
		return mismatch(d, "Its first block has height " UINT64_FORMAT ", but its row is said to be in block " UINT64_FORMAT ".",
						d->blocks[0].hdr.height, d->height);
	ll_buf_init(&scratch, ll_palloc_realloc);
	for (i = 0; i < d->nblocks; i++)
	{
		const DisclosedBlock *b = &d->blocks[i];
		uint8		h[LL_HASH_LEN];

		if (!ll_block_hash(&b->hdr, &scratch, h))
			elog(ERROR, "could not hash a disclosed block header");
		if (memcmp(h, b->hash, LL_HASH_LEN) != 0)
			return mismatch(d, "The header it gives for block " UINT64_FORMAT " does not hash to the hash it records for that block.",
							b->hdr.height);
		if (i > 0)
		{
			const DisclosedBlock *prev = &d->blocks[i - 1];

			if (b->hdr.height != prev->hdr.height + 1)
				return mismatch(d, "Its blocks are not consecutive: height " UINT64_FORMAT " follows height " UINT64_FORMAT ".",
								b->hdr.height, prev->hdr.height);
			if (memcmp(b->hdr.prev_hash, prev->hash, LL_HASH_LEN) != 0)
				return mismatch(d, "Its block " UINT64_FORMAT " does not link to its block " UINT64_FORMAT ".",
								b->hdr.height, prev->hdr.height);
		}
	}
	return true;
}

/*
 * Every disclosed block this node also has must be this node's block.
 * Blocks beyond this node's head are not judged: the discloser may be
 * ahead.
 */
static bool
check_local_hashes(const Disclosure *d, LLChannel *ch)
{
	uint64		i;
	uint64		last = d->blocks[d->nblocks - 1].hdr.height;

	SPI_execute_with_args("SELECT height, block_hash FROM ledger.block "
						  "WHERE channel_id = $1 AND height BETWEEN $2 AND $3 ORDER BY height",
						  3, (Oid[]) {INT4OID, INT8OID, INT8OID},
						  (Datum[]) {Int32GetDatum(ch->id), Int64GetDatum((int64) d->height),
							  Int64GetDatum((int64) last)},
						  NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bool		shape_ok = true;
		int64		h = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		uint8		local[LL_HASH_LEN];
		const DisclosedBlock *b = &d->blocks[h - (int64) d->height];
		char		got[LL_HASH_LEN * 2 + 1];
		char		want[LL_HASH_LEN * 2 + 1];

		ll_copy_hash(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, local, &shape_ok);
		if (shape_ok && memcmp(local, b->hash, LL_HASH_LEN) == 0)
			continue;
		ll_hex_encode(local, LL_HASH_LEN, want);
		ll_hex_encode(b->hash, LL_HASH_LEN, got);
		return mismatch(d, "Block %lld here has hash %.16s, the disclosure's block %lld has hash %.16s: the disclosure is from another chain.",
						(long long) h, want, (long long) h, got);
	}
	return true;
}

/*
 * ledger.verify_disclosure(disclosure jsonb): true when the disclosed row is
 * the row this node's chain committed to at the disclosure's block and
 * position; false, with a NOTICE, when it is not.
 */
Datum
ll_verify_disclosure(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	Disclosure	d;
	LLChannel	ch;
	LLBlock		blk;
	LLPackedEntry e;
	uint8		leaf[LL_HASH_LEN];
	uint8		bound[LL_HASH_LEN];
	char	  **tiers;
	int			ntiers;
	bool		ok;

	memset(&blk, 0, sizeof(blk));
	memset(&e, 0, sizeof(e));
	parse_disclosure(jb, &d);

	SPI_connect();
	ll_channel_lookup(d.channel, &ch);
	ok = check_disclosed_headers(&d);

	/* this node's block at the disclosure's height, intact */
	if (ok)
	{
		LLAsOwner	as;

		ll_as_owner_begin(&as);
		SPI_execute_with_args("SELECT " LL_BLOCK_COLUMNS " FROM ledger.block "
							  "WHERE channel_id = $1 AND height = $2",
							  2, (Oid[]) {INT4OID, INT8OID},
							  (Datum[]) {Int32GetDatum(ch.id), Int64GetDatum((int64) d.height)},
							  NULL, true, 1);
		ll_as_owner_end(&as);
		if (SPI_processed == 0)
			ok = mismatch(&d, "This node has no block " UINT64_FORMAT " in the channel.", d.height);
		else
		{
			ll_block_from_spi(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, ch.name, &blk);
			ll_load_tiers(ch.id, &ntiers, &tiers);
			if (!blk.hash_ok || !blk.entries_ok || !ll_merkle_matches(&blk, tiers, ntiers))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("block " UINT64_FORMAT " of channel \"%s\" does not match its stored hash or Merkle root",
								d.height, ch.name),
						 errdetail("A disclosure cannot be checked against a damaged block."),
						 errhint("Run ledger.verify() to see what changed.")));
		}
	}
	if (ok)
		ok = check_local_hashes(&d, &ch);

	/* the entry at that position, its commitment and the path to the root */
	if (ok && d.tree_size != (uint64) blk.nentries)
		ok = mismatch(&d, "Its tree_size is " UINT64_FORMAT ", but block " UINT64_FORMAT " has %d rows here.",
					  d.tree_size, d.height, blk.nentries);
	if (ok && d.position >= (uint64) blk.nentries)
		ok = mismatch(&d, "Its position " UINT64_FORMAT " is outside block " UINT64_FORMAT "'s %d rows.",
					  d.position, d.height, blk.nentries);
	if (ok)
	{
		ll_unpack_entry(blk.entries + (Size) d.position * LL_PACKED_ENTRY_SIZE, &e);
		if (e.entry_id != d.entry)
			ok = mismatch(&d, "Position " UINT64_FORMAT " of block " UINT64_FORMAT " holds entry %llu here.",
						  d.position, d.height, (unsigned long long) e.entry_id);
	}
	if (ok)
	{
		disclosed_leaf(&d, leaf);
		if (memcmp(leaf, e.commitment, LL_HASH_LEN) != 0)
			ok = mismatch(&d, "The disclosed row (table, entry, tier, salt and column texts) does not hash to the commitment this node holds for entry %llu in block " UINT64_FORMAT ".",
						  (unsigned long long) d.entry, d.height);
	}
	if (ok && memcmp(leaf, d.leaf_hash, LL_HASH_LEN) != 0)
		ok = mismatch(&d, "Its leaf_hash is not the hash of the row it discloses.");
	if (ok && !ll_entry_leaf(d.entry, d.tier, d.tier_len, leaf, bound))
		elog(ERROR, "could not hash a Merkle leaf");
	if (ok && !ll_merkle_verify(bound, (size_t) d.position, (size_t) blk.nentries,
								d.path, (size_t) d.path_len, blk.hdr.merkle_root))
		ok = mismatch(&d, "Its Merkle path does not lead from the row at position " UINT64_FORMAT " to the Merkle root of block " UINT64_FORMAT " here.",
					  d.position, d.height);
	SPI_finish();
	PG_RETURN_BOOL(ok);
}
