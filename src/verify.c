/*
 * verify.c
 *		Read the chain back: verify, digests, proofs and block entries.
 *
 * Everything here recomputes from stored rows with the same pure-C code
 * the offline verifier uses; nothing trusts a stored hash without checking
 * it against what it covers.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "loopledger.h"
#include "chain.h"
#include "consensus.h"

PG_FUNCTION_INFO_V1(ll_verify);
PG_FUNCTION_INFO_V1(ll_digest);
PG_FUNCTION_INFO_V1(ll_verify_digest);

/* Where each entry of the chain was sealed. */
typedef struct VEntry
{
	uint64		key;			/* entry number */
	int64		height;			/* -1 while pending */
	int32		position;
	bool		seen;
	const uint8 *packed;
} VEntry;

/* Entry number -> index into the entry array, for sparse entry numbers. */
typedef struct VSlot
{
	uint64		key;
	uint32		idx;
	char		status;
} VSlot;

#define SH_PREFIX vslot
#define SH_ELEMENT_TYPE VSlot
#define SH_KEY_TYPE uint64
#define SH_KEY key
#define SH_HASH_KEY(tb, key) murmurhash32((uint32) ((key) ^ ((key) >> 32)))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct Verifier
{
	LLChannel	ch;
	Tuplestorestate *store;
	TupleDesc	desc;
	VEntry	   *ents;			/* in chain order, then pending */
	int64		nents;
	int64		cap;
	uint64		min_key;
	uint64		max_key;
	int32	   *dense;			/* entry number - min_key -> index, or -1 */
	vslot_hash *sparse;			/* used instead when numbers are sparse */
	int			ntables;
	Oid		   *table_relids;	/* the channel's tables, by table_no order */
	int32	   *table_nos;
	char	  **table_tier_cols;
	char	  **table_names;	/* by table_no */
	int			max_table_no;
	int			clearance;		/* this node's, as a tier index */
	char	  **tiers;
	int			ntiers;
} Verifier;

static void
problem(Verifier *v, int64 height, const char *fmt,...) pg_attribute_printf(3, 4);

/* Add one problem row to the result. */
static void
problem(Verifier *v, int64 height, const char *fmt,...)
{
	Datum		values[2];
	bool		nulls[2] = {height < 0, false};
	char	   *msg;
	va_list		args;

	va_start(args, fmt);
	msg = ll_vformat(fmt, args);
	va_end(args);
	values[0] = Int64GetDatum(height);
	values[1] = CStringGetTextDatum(msg);
	tuplestore_putvalues(v->store, v->desc, values, nulls);
}

static void
add_entry(Verifier *v, uint64 key, int64 height, int32 position, const uint8 *packed)
{
	VEntry	   *ve;

	if (v->nents == v->cap)
	{
		v->cap = Max(1024, v->cap * 2);
		v->ents = v->ents
			? repalloc_huge(v->ents, sizeof(VEntry) * v->cap)
			: MemoryContextAllocHuge(CurrentMemoryContext, sizeof(VEntry) * v->cap);
	}
	if (v->nents == 0 || key < v->min_key)
		v->min_key = key;
	if (v->nents == 0 || key > v->max_key)
		v->max_key = key;
	ve = &v->ents[v->nents++];
	ve->key = key;
	ve->height = height;
	ve->position = position;
	ve->seen = false;
	ve->packed = packed;
}

/*
 * Index the entries by number.  Entry numbers come from one sequence, so
 * they are nearly dense: a plain array indexed by number is then both
 * smaller and far more cache-friendly than a hash table, because rows are
 * scanned in roughly the order they were numbered.
 */
static void
build_index(Verifier *v)
{
	uint64		range;
	int64		i;

	if (v->nents == 0)
		return;
	range = v->max_key - v->min_key;
	/* range + 1 numbers; a range spanning all of them must not wrap to 0 */
	if (range < (uint64) v->nents * 4 + 65536)
	{
		range++;
		v->dense = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * range);
		memset(v->dense, 0xff, sizeof(int32) * range);
	}
	else
		v->sparse = vslot_create(CurrentMemoryContext, v->nents, NULL);
	elog(DEBUG1, "loopledger verify: %lld entries, numbers %llu..%llu, %s index",
		 (long long) v->nents, (unsigned long long) v->min_key,
		 (unsigned long long) v->max_key, v->dense ? "dense" : "hashed");
	for (i = 0; i < v->nents; i++)
	{
		VEntry	   *ve = &v->ents[i];
		int64		prev = -1;

		if (v->dense)
		{
			int32	   *slot = &v->dense[ve->key - v->min_key];

			if (*slot >= 0)
				prev = *slot;
			else
				*slot = (int32) i;
		}
		else
		{
			bool		found;
			VSlot	   *slot = vslot_insert(v->sparse, ve->key, &found);

			if (found)
				prev = slot->idx;
			else
				slot->idx = (uint32) i;
		}
		if (prev >= 0)
		{
			/* reported once here; the later copy is never expected as a row */
			ve->seen = true;
			problem(v, ve->height, "block %lld: entry %llu is also recorded in block %lld",
					(long long) ve->height, (unsigned long long) ve->key,
					(long long) v->ents[prev].height);
		}
	}
}

static VEntry *
find_entry(Verifier *v, uint64 key)
{
	if (v->nents == 0 || key < v->min_key || key > v->max_key)
		return NULL;
	if (v->dense)
	{
		int32		idx = v->dense[key - v->min_key];

		return idx >= 0 ? &v->ents[idx] : NULL;
	}
	else
	{
		VSlot	   *slot = vslot_lookup(v->sparse, key);

		return slot ? &v->ents[slot->idx] : NULL;
	}
}

char *
ll_time_text(int64 time_us)
{
	Timestamp	ts = time_us - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("invalid");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year, tm.tm_mon,
					tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

void
ll_copy_hash(HeapTuple tup, TupleDesc td, int col, uint8 *out, bool *ok)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);
	bytea	   *b;

	memset(out, 0, LL_HASH_LEN);
	if (isnull)
	{
		*ok = false;
		return;
	}
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != LL_HASH_LEN)
	{
		*ok = false;
		return;
	}
	memcpy(out, VARDATA_ANY(b), LL_HASH_LEN);
}

/*
 * Read one ledger.block row (columns LL_BLOCK_COLUMNS) into *b, copying
 * the entries into the current memory context and re-hashing the header.
 */
void
ll_block_from_spi(HeapTuple tup, TupleDesc td, const char *channel, LLBlock *b)
{
	bool		isnull;
	bool		shape_ok = true;
	Datum		d;
	ll_buf		scratch;
	uint8		hash[LL_HASH_LEN];

	memset(b, 0, sizeof(*b));
	b->hdr.channel = channel;
	b->hdr.channel_len = strlen(channel);
	b->hdr.height = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
	ll_copy_hash(tup, td, 2, b->hdr.prev_hash, &shape_ok);
	ll_copy_hash(tup, td, 3, b->hdr.merkle_root, &shape_ok);
	b->hdr.time_us = DatumGetInt64(SPI_getbinval(tup, td, 4, &isnull));
	b->hdr.tx_count = (uint32) DatumGetInt32(SPI_getbinval(tup, td, 5, &isnull));
	b->hdr.row_count = (uint32) DatumGetInt32(SPI_getbinval(tup, td, 6, &isnull));
	ll_copy_hash(tup, td, 7, b->hdr.config_hash, &shape_ok);
	ll_copy_hash(tup, td, 8, b->stored_hash, &shape_ok);
	d = SPI_getbinval(tup, td, 9, &isnull);
	b->entries_ok = true;
	if (!isnull)
	{
		bytea	   *p = DatumGetByteaPCopy(d);
		Size		len = VARSIZE_ANY_EXHDR(p);

		b->entries = (const uint8 *) VARDATA_ANY(p);
		b->nentries = len / LL_PACKED_ENTRY_SIZE;
		b->entries_ok = (len % LL_PACKED_ENTRY_SIZE) == 0 &&
			b->nentries == (int) b->hdr.row_count;
	}
	if (td->natts >= 11)
	{
		bool		maxnull;

		b->range_read = true;
		b->min_entry = DatumGetInt64(SPI_getbinval(tup, td, 10, &isnull));
		b->max_entry = DatumGetInt64(SPI_getbinval(tup, td, 11, &maxnull));
		b->range_null = isnull || maxnull;
		if (isnull != maxnull)
			b->min_entry = b->max_entry = -1;	/* one of two: never right */
	}
	ll_buf_init(&scratch, ll_palloc_realloc);
	b->hash_ok = shape_ok && ll_block_hash(&b->hdr, &scratch, hash) &&
		memcmp(hash, b->stored_hash, LL_HASH_LEN) == 0;
}

/*
 * Does the block's entry range (outside its hash: ledger.proof finds
 * blocks by it) match its entries?  NULL for a block without any.
 */
static bool
entry_range_matches(const LLBlock *b)
{
	uint64		lo = PG_UINT64_MAX,
				hi = 0;
	int			i;

	if (!b->range_read)
		return true;
	if (b->nentries == 0)
		return b->range_null;
	for (i = 0; i < b->nentries; i++)
	{
		LLPackedEntry e;

		ll_unpack_entry(b->entries + (Size) i * LL_PACKED_ENTRY_SIZE, &e);
		lo = Min(lo, e.entry_id);
		hi = Max(hi, e.entry_id);
	}
	return !b->range_null && (uint64) b->min_entry == lo && (uint64) b->max_entry == hi;
}

/*
 * The channel's name and tiers against its configuration hash, which
 * every block header carries: the hash is checked against the headers,
 * but row-level security and the peers' clearances rank tiers by their
 * place in ledger.channel.tiers, and leaves bind tier names only.
 */
static bool
config_intact(const LLChannel *ch, char **tiers, int ntiers)
{
	ll_buf		buf;
	uint8		hash[LL_HASH_LEN];
	int			i;

	ll_buf_init(&buf, ll_palloc_realloc);
	ll_config_begin(&buf, ch->name, strlen(ch->name), ntiers);
	for (i = 0; i < ntiers; i++)
		ll_config_tier(&buf, tiers[i], strlen(tiers[i]));
	return ll_sha256(buf.data, buf.len, hash) && memcmp(hash, ch->config_hash, LL_HASH_LEN) == 0;
}

/*
 * The Merkle leaves of n packed entries (ll_entry_leaf), into leaves.  A
 * tier index the channel lacks binds an empty name: the root then differs,
 * and ledger.verify names the entry as well.
 */
void
ll_block_leaves(const uint8 *entries, int n, char **tiers, int ntiers, uint8 *leaves)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		LLPackedEntry e;
		const char *tier;

		ll_unpack_entry(entries + (Size) i * LL_PACKED_ENTRY_SIZE, &e);
		tier = e.tier < ntiers ? tiers[e.tier] : "";
		if (!ll_entry_leaf(e.entry_id, tier, strlen(tier), e.commitment,
						   leaves + (Size) i * LL_HASH_LEN))
			elog(ERROR, "could not hash a Merkle leaf");
	}
}

/* Merkle root of a block's packed entries equals its header's. */
bool
ll_merkle_matches(const LLBlock *b, char **tiers, int ntiers)
{
	uint8	   *leaves;
	uint8		root[LL_HASH_LEN];
	bool		ok;

	leaves = palloc_extended((Size) Max(b->nentries, 1) * LL_HASH_LEN * 2, MCXT_ALLOC_HUGE);
	ll_block_leaves(b->entries, b->nentries, tiers, ntiers, leaves);
	ok = ll_merkle_root(leaves, b->nentries, leaves + (Size) b->nentries * LL_HASH_LEN, root) &&
		memcmp(root, b->hdr.merkle_root, LL_HASH_LEN) == 0;
	pfree(leaves);
	return ok;
}

/*
 * Call fn for each block of a channel up to max_height (all when negative),
 * in height order, through a cursor so a long chain is never all in memory.
 * fn returns false to stop early; it must not run SPI itself.
 */
void
ll_foreach_block(LLChannel *ch, int64 max_height, ll_block_fn fn, void *arg)
{
	Portal		portal;
	bool		go = true;
	LLAsOwner	as;

	ll_as_owner_begin(&as);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT " LL_BLOCK_COLUMNS " FROM ledger.block "
									   "WHERE channel_id = $1 AND height <= $2 ORDER BY height",
									   2, (Oid[]) {INT4OID, INT8OID},
									   (Datum[]) {Int32GetDatum(ch->id),
										   Int64GetDatum(max_height < 0 ? PG_INT64_MAX : max_height)},
									   NULL, true, 0);
	ll_as_owner_end(&as);
	while (go)
	{
		uint64		i;

		SPI_cursor_fetch(portal, true, 256);
		if (SPI_processed == 0)
			break;
		for (i = 0; i < SPI_processed && go; i++)
		{
			LLBlock		b;

			ll_block_from_spi(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, ch->name, &b);
			go = fn(&b, arg);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

static const char *
table_name_of(Verifier *v, uint32 table_no)
{
	if (table_no <= (uint32) v->max_table_no && v->table_names[table_no])
		return v->table_names[table_no];
	return "(unknown table)";
}

/*
 * Flags and salt are not covered by the Merkle root: only the flags this
 * version knows are accepted, and a redacted entry carries no salt.
 */
static void
check_flags(Verifier *v, const LLPackedEntry *e, int64 height, int position)
{
	static const uint8 zero_salt[LL_SALT_LEN];
	char		where[64];

	if (height >= 0)
		snprintf(where, sizeof(where), "block %lld, position %d", (long long) height, position);
	else
		strlcpy(where, "pending", sizeof(where));
	if ((e->flags & ~LL_ENTRY_REDACTED) != 0)
		problem(v, height, "table %s: entry %llu (%s) has unknown flags 0x%02x",
				table_name_of(v, e->table_no), (unsigned long long) e->entry_id, where,
				e->flags);
	else if ((int) e->tier >= v->ntiers)
		problem(v, height, "table %s: entry %llu (%s) names tier %d, which the channel does not have",
				table_name_of(v, e->table_no), (unsigned long long) e->entry_id, where, (int) e->tier);
	else if ((e->flags & LL_ENTRY_REDACTED) &&
			 memcmp(e->salt, zero_salt, LL_SALT_LEN) != 0)
		problem(v, height, "table %s: entry %llu (%s) is held only as a commitment but has a salt",
				table_name_of(v, e->table_no), (unsigned long long) e->entry_id, where);
	else if ((e->flags & LL_ENTRY_REDACTED) && (int) e->tier <= v->clearance)
		problem(v, height, "table %s: entry %llu (%s) is held only as a commitment, yet this node is cleared for its tier \"%s\" (its row was removed, or its content refused when applied)",
				table_name_of(v, e->table_no), (unsigned long long) e->entry_id, where,
				e->tier < v->ntiers ? v->tiers[e->tier] : "?");
}

/*
 * Check one block against its predecessor and remember its entries.
 */
static void
verify_block(Verifier *v, LLBlock *b, int64 expected, const uint8 *prev_hash)
{
	int64		h = (int64) b->hdr.height;
	int			i;

	if (h != expected)
		problem(v, h, "block %lld follows block %lld: blocks are missing or out of order",
				(long long) h, (long long) expected - 1);
	if (h > 0 && memcmp(b->hdr.prev_hash, prev_hash, LL_HASH_LEN) != 0)
		problem(v, h, "block %lld: previous hash does not match block %lld",
				(long long) h, (long long) h - 1);
	if (memcmp(b->hdr.config_hash, v->ch.config_hash, LL_HASH_LEN) != 0)
		problem(v, h, "block %lld: channel configuration hash differs from the channel's",
				(long long) h);
	if (!b->hash_ok)
		problem(v, h, "block %lld: stored block hash does not match its header (the block was changed)",
				(long long) h);
	if (!b->entries_ok)
	{
		problem(v, h, "block %lld: row payload does not match its row count of %u",
				(long long) h, b->hdr.row_count);
		return;
	}
	if (!ll_merkle_matches(b, v->tiers, v->ntiers))
		problem(v, h, "block %lld: Merkle root does not match the block's rows (rows were changed or reordered)",
				(long long) h);
	if (!entry_range_matches(b))
		problem(v, h, "block %lld: its entry range (min_entry, max_entry) does not match its entries, so ledger.proof would not find them",
				(long long) h);
	for (i = 0; i < b->nentries; i++)
	{
		const uint8 *packed = b->entries + (Size) i * LL_PACKED_ENTRY_SIZE;
		LLPackedEntry e;

		ll_unpack_entry(packed, &e);
		check_flags(v, &e, h, i);
		add_entry(v, e.entry_id, h, i, packed);
	}
}

/* State of the walk over a channel's blocks in ledger.verify. */
typedef struct BlockWalk
{
	Verifier   *v;
	uint8		prev_hash[LL_HASH_LEN];
	int64		expected;
	bool		any;
} BlockWalk;

static bool
verify_block_cb(LLBlock *b, void *arg)
{
	BlockWalk  *w = arg;

	if (!w->any && b->hdr.height != 0)
		problem(w->v, 0, "genesis block (height 0) is missing");
	w->any = true;
	verify_block(w->v, b, w->expected, w->prev_hash);
	memcpy(w->prev_hash, b->stored_hash, LL_HASH_LEN);
	w->expected = (int64) b->hdr.height + 1;
	return true;
}

/* Check every block of the chain and remember its entries. */
static void
verify_blocks(Verifier *v)
{
	BlockWalk	w;

	memset(&w, 0, sizeof(w));
	w.v = v;
	ll_foreach_block(&v->ch, -1, verify_block_cb, &w);
	if (!w.any)
		problem(v, 0, "channel \"%s\" has no blocks at all, not even its genesis block", v->ch.name);
}

/* Committed rows not sealed yet are legitimate: remember them too. */
static void
load_pending(Verifier *v)
{
	uint64		i;

	ll_spi_pending_entries(v->ch.id);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *p = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int			n = VARSIZE_ANY_EXHDR(p) / LL_PACKED_ENTRY_SIZE;
		int			j;

		for (j = 0; j < n; j++)
		{
			const uint8 *packed = (const uint8 *) VARDATA_ANY(p) + (Size) j * LL_PACKED_ENTRY_SIZE;
			LLPackedEntry e;

			ll_unpack_entry(packed, &e);
			check_flags(v, &e, -1, j);
			add_entry(v, e.entry_id, -1, j, packed);
		}
	}
}

/*
 * Re-hash one stored row and compare it with what the chain recorded.
 */
static void
verify_row(Verifier *v, LLTableInfo *info, ll_buf *buf)
{
	uint64		entry;
	VEntry	   *ve;
	LLPackedEntry e;
	uint8		hash[LL_HASH_LEN];
	int			tier;

	if (!ll_deformed_entry(info, &entry))
	{
		problem(v, -1, "table %s: a row has no entry number (it was added while the ledger's triggers were bypassed)",
				info->table_name);
		return;
	}
	ve = find_entry(v, entry);
	if (ve == NULL)
	{
		problem(v, -1, "table %s: row with entry %llu is not in the ledger (it was added while the ledger's triggers were bypassed)",
				info->table_name, (unsigned long long) entry);
		return;
	}
	if (ve->seen)
	{
		problem(v, ve->height, "table %s: row with entry %llu appears more than once",
				info->table_name, (unsigned long long) entry);
		return;
	}
	ve->seen = true;
	ll_unpack_entry(ve->packed, &e);
	if (e.flags & LL_ENTRY_REDACTED)
	{
		/* this node holds only the commitment: no row may claim the entry */
		if (ve->height >= 0)
			problem(v, ve->height, "table %s: row with entry %llu exists, but block %lld (position %d) holds that entry here only as a commitment (redacted)",
					info->table_name, (unsigned long long) entry, (long long) ve->height, ve->position);
		else
			problem(v, -1, "table %s: row with entry %llu exists, but that entry is held here only as a commitment (redacted, pending)",
					info->table_name, (unsigned long long) entry);
		return;
	}
	if (e.table_no != (uint32) info->table_no)
	{
		problem(v, ve->height, "table %s: row with entry %llu is recorded for table %s",
				info->table_name, (unsigned long long) entry, table_name_of(v, e.table_no));
		return;
	}
	tier = ll_deformed_tier(info, true);
	if (tier == (int) e.tier)
	{
		ll_buf_reset(buf);
		ll_encode_deformed(info, entry, tier, e.salt, buf);
		if (!ll_leaf_hash(buf->data, buf->len, hash))
			elog(ERROR, "could not compute SHA-256");
	}
	if (tier != (int) e.tier || memcmp(hash, e.commitment, LL_HASH_LEN) != 0)
	{
		if (ve->height >= 0)
			problem(v, ve->height, "table %s: row with entry %llu (block %lld, position %d) does not match its hash (it was changed or moved)",
					info->table_name, (unsigned long long) entry, (long long) ve->height, ve->position);
		else
			problem(v, -1, "table %s: row with entry %llu (pending) does not match its hash (it was changed)",
					info->table_name, (unsigned long long) entry);
	}
}

/* Scan one ledger table of the channel. */
static void
verify_table(Verifier *v, Oid relid, int32 table_no, const char *table_name,
			 const char *tier_column)
{
	Relation	rel = try_table_open(relid, AccessShareLock);
	TableScanDesc scan;
	HeapTuple	tup;
	LLTableInfo *info;
	MemoryContext rowcxt,
				old;
	ll_buf		buf;

	if (rel == NULL)
	{
		problem(v, -1, "table %s no longer exists", table_name);
		return;
	}
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to verify ledger table \"%s\"", table_name),
				 errhint("Verifying a channel needs SELECT on all of its tables.")));
	info = ll_table_info_for(rel, v->ch.id, table_no, v->ch.name, table_name,
							 tier_column);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "loopledger verify row",
								   ALLOCSET_DEFAULT_SIZES);
	/*
	 * The encoding buffer is reused for every row.  Its first allocation is
	 * made here, outside the per-row context: repalloc keeps a chunk in its
	 * own context, so the buffer survives the per-row resets.
	 */
	ll_buf_init(&buf, ll_palloc_realloc);
	ll_buf_put_u8(&buf, 0);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		ll_deform(info, tup);
		old = MemoryContextSwitchTo(rowcxt);
		verify_row(v, info, &buf);
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	table_endscan(scan);
	MemoryContextDelete(rowcxt);
	table_close(rel, AccessShareLock);
}

/* Entries the chain recorded but whose rows were not found, in chain order. */
static void
report_missing(Verifier *v)
{
	int64		i;

	for (i = 0; i < v->nents; i++)
	{
		VEntry	   *ve = &v->ents[i];
		LLPackedEntry e;

		if (ve->seen)
			continue;
		ll_unpack_entry(ve->packed, &e);
		/* a redacted entry has no row on this node */
		if (e.flags & LL_ENTRY_REDACTED)
			continue;
		if (ve->height >= 0)
			problem(v, ve->height, "table %s: row with entry %llu (block %lld, position %d) is missing",
					table_name_of(v, e.table_no), (unsigned long long) e.entry_id,
					(long long) ve->height, ve->position);
		else
			problem(v, -1, "table %s: row with entry %llu (pending) is missing",
					table_name_of(v, e.table_no), (unsigned long long) e.entry_id);
	}
}

/*
 * Up to which tier this node should hold every row: all of them on a
 * channel without peers, its own clearance as a member, none as an
 * observer.  Redacted entries at or below it are problems: nothing else
 * tells a deleted row from one this node was never sent.
 */
static void
load_clearance(Verifier *v)
{
	ll_load_tiers(v->ch.id, &v->ntiers, &v->tiers);
	v->clearance = ll_node_clearance(v->ch.id, v->tiers, v->ntiers);
}

/*
 * Read the channel's ledger tables.  Done before the blocks are walked so
 * that problems found in the blocks can name their tables.
 */
static void
load_tables(Verifier *v)
{
	SPITupleTable *tt;
	uint64		i;

	SPI_execute_with_args("SELECT relid::oid, table_no, table_name, tier_column::text "
						  "FROM ledger.ledger_table WHERE channel_id = $1 ORDER BY table_no",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(v->ch.id)}, NULL, true, 0);
	tt = SPI_tuptable;
	v->ntables = (int) SPI_processed;
	v->table_relids = palloc0(sizeof(Oid) * Max(1, v->ntables));
	v->table_nos = palloc0(sizeof(int32) * Max(1, v->ntables));
	v->table_tier_cols = palloc0(sizeof(char *) * Max(1, v->ntables));
	v->max_table_no = 0;
	for (i = 0; i < v->ntables; i++)
	{
		bool		isnull;

		v->table_relids[i] = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		v->table_nos[i] = DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		/* numbers are given from 1 up (enable_table); a huge one fails palloc */
		if (v->table_nos[i] < 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("ledger.ledger_table gives table %s of channel \"%s\" the number %d, which enable_table never gives",
							SPI_getvalue(tt->vals[i], tt->tupdesc, 3), v->ch.name, v->table_nos[i])));
		v->table_tier_cols[i] = SPI_getvalue(tt->vals[i], tt->tupdesc, 4);
		v->max_table_no = Max(v->max_table_no, v->table_nos[i]);
	}
	v->table_names = palloc0(sizeof(char *) * (v->max_table_no + 1));
	for (i = 0; i < v->ntables; i++)
		v->table_names[v->table_nos[i]] = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
	SPI_freetuptable(tt);
}

static void
verify_tables(Verifier *v)
{
	int			i;

	for (i = 0; i < v->ntables; i++)
		verify_table(v, v->table_relids[i], v->table_nos[i],
					 v->table_names[v->table_nos[i]], v->table_tier_cols[i]);
}

/*
 * ledger.verify(channel): one row per problem; no rows when intact.
 */
Datum
ll_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Verifier	v;

	InitMaterializedSRF(fcinfo, 0);
	memset(&v, 0, sizeof(v));
	v.store = rsinfo->setResult;
	v.desc = rsinfo->setDesc;
	SPI_connect();
	ll_channel_lookup(channel, &v.ch);
	load_clearance(&v);
	if (!config_intact(&v.ch, v.tiers, v.ntiers))
		problem(&v, 0, "channel \"%s\": its name and tiers do not match its configuration hash (the tiers were changed or reordered)",
				v.ch.name);
	load_tables(&v);
	verify_blocks(&v);
	load_pending(&v);
	build_index(&v);
	verify_tables(&v);
	report_missing(&v);
	SPI_finish();
	return (Datum) 0;
}

/* The head block of a channel (headers only). */
void
ll_head_block(LLChannel *ch, LLBlock *b)
{
	SPI_execute_with_args("SELECT height, prev_hash, merkle_root, time_us, tx_count, row_count, "
						  "config_hash, block_hash, NULL::bytea FROM ledger.block "
						  "WHERE channel_id = $1 ORDER BY height DESC LIMIT 1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch->id)}, NULL, true, 1);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("channel \"%s\" has no blocks", ch->name)));
	ll_block_from_spi(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, ch->name, b);
}

void
ll_append_hex_field(StringInfo s, const char *key, const uint8 *data, size_t len)
{
	char	   *hex = palloc(len * 2 + 1);

	ll_hex_encode(data, len, hex);
	appendStringInfo(s, "\"%s\": \"%s\"", key, hex);
	pfree(hex);
}

/*
 * ledger.digest(channel): the small jsonb to keep outside the database.
 */
Datum
ll_digest(PG_FUNCTION_ARGS)
{
	char	   *channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LLChannel	ch;
	LLBlock		head;
	uint8		genesis[LL_HASH_LEN];
	bool		ok = true;
	StringInfoData s;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;

	SPI_connect();
	ll_channel_lookup(channel, &ch);
	ll_head_block(&ch, &head);
	SPI_execute_with_args("SELECT block_hash FROM ledger.block WHERE channel_id = $1 AND height = 0",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch.id)}, NULL, true, 1);
	if (SPI_processed == 1)
		ll_copy_hash(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, genesis, &ok);
	else
		memset(genesis, 0, LL_HASH_LEN);
	/* the text must outlive SPI_finish */
	old = MemoryContextSwitchTo(caller);
	initStringInfo(&s);
	MemoryContextSwitchTo(old);
	appendStringInfoString(&s, "{\"version\": 1, \"channel\": ");
	escape_json(&s, channel);
	appendStringInfo(&s, ", \"height\": %llu, ", (unsigned long long) head.hdr.height);
	ll_append_hex_field(&s, "block_hash", head.stored_hash, LL_HASH_LEN);
	appendStringInfo(&s, ", \"time\": \"%s\", ", ll_time_text(head.hdr.time_us));
	ll_append_hex_field(&s, "genesis_hash", genesis, LL_HASH_LEN);
	appendStringInfoChar(&s, '}');
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/*
 * Parse a required digest field through SQL so every jsonb shape is
 * handled; it must have the JSON type ledger.digest() gives it.
 */
static char *
digest_field(Datum digest, const char *key, const char *type)
{
	char	   *sql = psprintf("SELECT $1->>%s, jsonb_typeof($1->%s)",
							   quote_literal_cstr(key), quote_literal_cstr(key));
	char	   *val;

	SPI_execute_with_args(sql, 1, (Oid[]) {JSONBOID}, &digest, NULL, true, 1);
	val = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
	if (val == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger digest: field \"%s\" is missing", key),
				 errhint("Pass the jsonb returned by ledger.digest().")));
	if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), type) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger digest: field \"%s\" is not a %s", key, type),
				 errhint("Pass the jsonb returned by ledger.digest().")));
	return val;
}

/* State of the walk up to a digest's block in ledger.verify_digest. */
typedef struct DigestWalk
{
	uint8		want[LL_HASH_LEN];
	uint8		prev[LL_HASH_LEN];
	uint8		config[LL_HASH_LEN];	/* the channel's, in every header */
	int64		height;
	int64		expected;
	bool		ok;
	bool		reached;
	char	  **tiers;
	int			ntiers;
} DigestWalk;

static bool
digest_block_cb(LLBlock *b, void *arg)
{
	DigestWalk *w = arg;

	w->ok = (int64) b->hdr.height == w->expected && b->hash_ok && b->entries_ok &&
		memcmp(b->hdr.config_hash, w->config, LL_HASH_LEN) == 0 &&
		(w->expected == 0 || memcmp(b->hdr.prev_hash, w->prev, LL_HASH_LEN) == 0) &&
		ll_merkle_matches(b, w->tiers, w->ntiers);
	memcpy(w->prev, b->stored_hash, LL_HASH_LEN);
	if (w->ok && w->expected == w->height)
		w->reached = memcmp(b->stored_hash, w->want, LL_HASH_LEN) == 0;
	w->expected++;
	return w->ok;
}

/*
 * ledger.verify_digest(digest): true when the chain still holds the
 * digest's block unchanged and every block up to it is intact.
 */
Datum
ll_verify_digest(PG_FUNCTION_ARGS)
{
	Datum		digest = PG_GETARG_DATUM(0);
	char	   *channel;
	char	   *height_s;
	char	   *hash_s;
	int64		height;
	uint8		want[LL_HASH_LEN];
	LLChannel	ch;
	DigestWalk	w;

	SPI_connect();
	if (strcmp(digest_field(digest, "version", "number"), "1") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger digest: unsupported version")));
	channel = digest_field(digest, "channel", "string");
	height_s = digest_field(digest, "height", "number");
	hash_s = digest_field(digest, "block_hash", "string");
	if (!ll_hex_decode(hash_s, strlen(hash_s), want, LL_HASH_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger digest: \"block_hash\" is not 64 hex digits")));
	if (strspn(height_s, "0123456789") != strlen(height_s) || strlen(height_s) == 0 ||
		strlen(height_s) > 18)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ledger digest: \"height\" is not a block height"),
				 errdetail("It must be a non-negative integer, not \"%s\".", height_s)));
	height = pg_strtoint64(height_s);
	ll_channel_lookup(channel, &ch);

	memset(&w, 0, sizeof(w));
	w.ok = true;
	w.height = height;
	memcpy(w.want, want, LL_HASH_LEN);
	ll_load_tiers(ch.id, &w.ntiers, &w.tiers);
	memcpy(w.config, ch.config_hash, LL_HASH_LEN);
	if (config_intact(&ch, w.tiers, w.ntiers))
		ll_foreach_block(&ch, height, digest_block_cb, &w);
	SPI_finish();
	PG_RETURN_BOOL(w.ok && w.reached);
}
