/*
 * proof.c
 *		Inclusion proofs for single rows, and the chain's entries as rows.
 *
 * A proof holds the row's canonical column texts, its salt, the Merkle
 * audit path in its block and the headers from that block up to the head:
 * everything loopledger_verify needs to check it against a digest without
 * the database.  The row is read as the caller, so row-level security and
 * privileges decide whether a proof can be made at all.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
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
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "loopledger.h"
#include "chain.h"

PG_FUNCTION_INFO_V1(ll_proof);
PG_FUNCTION_INFO_V1(ll_block_entries);

typedef struct ProofTarget
{
	LLBlock		block;
	int			position;
	LLPackedEntry entry;
} ProofTarget;

/* Is the entry committed but still waiting for its block? */
static bool
entry_is_pending(int32 channel_id, uint64 entry)
{
	uint64		i;

	ll_spi_pending_entries(channel_id);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *p = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int			n = VARSIZE_ANY_EXHDR(p) / LL_PACKED_ENTRY_SIZE;
		int			j;

		for (j = 0; j < n; j++)
		{
			LLPackedEntry e;

			ll_unpack_entry((const uint8 *) VARDATA_ANY(p) + (Size) j * LL_PACKED_ENTRY_SIZE, &e);
			if (e.entry_id == entry)
				return true;
		}
	}
	return false;
}

/* Find the sealed block and position of an entry; false when it has none. */
static bool
locate_entry(LLChannel *ch, uint64 entry, ProofTarget *t)
{
	uint64		i;
	LLAsOwner	as;

	ll_as_owner_begin(&as);
	SPI_execute_with_args("SELECT " LL_BLOCK_COLUMNS " FROM ledger.block "
						  "WHERE channel_id = $1 AND min_entry <= $2 AND max_entry >= $2 "
						  "ORDER BY height",
						  2, (Oid[]) {INT4OID, INT8OID},
						  (Datum[]) {Int32GetDatum(ch->id), Int64GetDatum((int64) entry)},
						  NULL, true, 0);
	ll_as_owner_end(&as);
	for (i = 0; i < SPI_processed; i++)
	{
		int			j;

		ll_block_from_spi(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, ch->name, &t->block);
		for (j = 0; j < t->block.nentries; j++)
		{
			ll_unpack_entry(t->block.entries + (Size) j * LL_PACKED_ENTRY_SIZE, &t->entry);
			if (t->entry.entry_id == entry)
			{
				t->position = j;
				return true;
			}
		}
	}
	return false;
}

/*
 * Is the entry sealed in a block of the channel as redacted (held here only
 * as a commitment)?  For ll_proof_visible; the caller is connected to SPI.
 */
bool
ll_entry_is_redacted(LLChannel *ch, uint64 entry)
{
	ProofTarget t;

	return locate_entry(ch, entry, &t) && (t.entry.flags & LL_ENTRY_REDACTED) != 0;
}

/* Find the block and position of an entry; errors when it has none. */
static void
find_entry(LLChannel *ch, uint64 entry, ProofTarget *t)
{
	if (locate_entry(ch, entry, t))
		return;
	if (entry_is_pending(ch->id, entry))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("entry %llu of channel \"%s\" is not sealed in a block yet",
						(unsigned long long) entry, ch->name),
				 errhint("Wait with ledger.wait_sealed() and ask again.")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("channel \"%s\" has no entry %llu", ch->name, (unsigned long long) entry),
			 errhint("Entry numbers are in the ledger_entry column and in ledger.history().")));
}

/*
 * Read the row of an entry as the caller (privileges and row security
 * apply), then fetch the physical tuple so attribute numbers match.
 * Without the row: NULL when missing_ok, else an error.
 */
HeapTuple
ll_fetch_ledger_row(Oid relid, const char *table_name, uint64 entry, bool missing_ok,
					Relation *relp)
{
	char	   *sql;
	bool		isnull;
	ItemPointer tid;
	Relation	rel;
	TupleTableSlot *slot;
	bool		should_free;
	HeapTuple	tup;

	/*
	 * t.*: a proof shows every column, so the caller needs the right to
	 * read every column, not only the two this query would otherwise name.
	 */
	sql = psprintf("SELECT t.ctid, t.* FROM %s t WHERE t.%s = $1",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid)),
				   LL_ENTRY_COLUMN);
	SPI_execute_with_args(sql, 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum((int64) entry)},
						  NULL, true, 2);
	if (SPI_processed != 1 && missing_ok)
		return NULL;
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row with entry %llu of table %s is not visible to you",
						(unsigned long long) entry, table_name),
				 errhint("A proof shows the row's content, so it needs the right to read the row; run ledger.verify() if the row should exist.")));
	tid = (ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	rel = table_open(relid, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	if (!table_tuple_fetch_row_version(rel, tid, GetActiveSnapshot(), slot))
		elog(ERROR, "could not fetch row with entry %llu", (unsigned long long) entry);
	tup = heap_copytuple(ExecFetchSlotHeapTuple(slot, false, &should_free));
	ExecDropSingleTupleTableSlot(slot);
	*relp = rel;
	return tup;
}

static void
append_columns(StringInfo s, LLTableInfo *info)
{
	int			i;

	appendStringInfoString(s, ", \"columns\": [");
	for (i = 0; i < info->ncols; i++)
	{
		char	   *val = ll_deformed_text(info, i);

		if (i > 0)
			appendStringInfoString(s, ", ");
		appendStringInfoString(s, "{\"name\": ");
		escape_json(s, ll_column_name(info, i));
		appendStringInfoString(s, ", \"value\": ");
		if (val == NULL)
			appendStringInfoString(s, "null");
		else
			escape_json(s, val);
		appendStringInfoChar(s, '}');
	}
	appendStringInfoChar(s, ']');
}

static void
append_path(StringInfo s, ProofTarget *t, char **tiers, int ntiers)
{
	int			n = t->block.nentries;
	uint8	   *leaves = palloc_extended((Size) n * LL_HASH_LEN, MCXT_ALLOC_HUGE);
	uint8	   *path = palloc(ll_merkle_path_max(n) * LL_HASH_LEN);
	size_t		plen;
	size_t		i;
	char		hex[LL_HASH_LEN * 2 + 1];

	ll_block_leaves(t->block.entries, n, tiers, ntiers, leaves);
	if (!ll_merkle_path(leaves, n, t->position, path, &plen))
		elog(ERROR, "could not compute Merkle path");
	appendStringInfo(s, ", \"height\": %llu, \"position\": %d, \"tree_size\": %d, \"path\": [",
					 (unsigned long long) t->block.hdr.height, t->position, n);
	for (i = 0; i < plen; i++)
	{
		ll_hex_encode(path + i * LL_HASH_LEN, LL_HASH_LEN, hex);
		appendStringInfo(s, "%s\"%s\"", i > 0 ? ", " : "", hex);
	}
	appendStringInfoChar(s, ']');
}

/* Headers from the row's block up to "upto", checked as they are read. */
static void
append_headers(StringInfo s, LLChannel *ch, int64 from, int64 upto)
{
	uint64		i;

	SPI_execute_with_args("SELECT height, prev_hash, merkle_root, time_us, tx_count, row_count, "
						  "config_hash, block_hash, NULL::bytea FROM ledger.block "
						  "WHERE channel_id = $1 AND height BETWEEN $2 AND $3 ORDER BY height",
						  3, (Oid[]) {INT4OID, INT8OID, INT8OID},
						  (Datum[]) {Int32GetDatum(ch->id), Int64GetDatum(from), Int64GetDatum(upto)},
						  NULL, true, 0);
	appendStringInfoString(s, ", \"blocks\": [");
	for (i = 0; i < SPI_processed; i++)
	{
		LLBlock		b;

		ll_block_from_spi(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, ch->name, &b);
		if (!b.hash_ok)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("block %llu of channel \"%s\" does not match its stored hash",
							(unsigned long long) b.hdr.height, ch->name),
					 errhint("Run ledger.verify() to see what changed.")));
		appendStringInfo(s, "%s{\"height\": %llu, ", i > 0 ? ", " : "",
						 (unsigned long long) b.hdr.height);
		ll_append_hex_field(s, "prev_hash", b.hdr.prev_hash, LL_HASH_LEN);
		appendStringInfoString(s, ", ");
		ll_append_hex_field(s, "merkle_root", b.hdr.merkle_root, LL_HASH_LEN);
		appendStringInfo(s, ", \"time_us\": " INT64_FORMAT ", \"tx_count\": %u, \"row_count\": %u, ",
						 b.hdr.time_us, b.hdr.tx_count, b.hdr.row_count);
		ll_append_hex_field(s, "config_hash", b.hdr.config_hash, LL_HASH_LEN);
		appendStringInfoString(s, ", ");
		ll_append_hex_field(s, "hash", b.stored_hash, LL_HASH_LEN);
		appendStringInfoChar(s, '}');
	}
	appendStringInfoChar(s, ']');
}

/*
 * A redacted entry has no row and no salt here, so no proof can be made:
 * say so, and point to a disclosure from a cleared member.
 */
static void
refuse_redacted(LLChannel *ch, ProofTarget *t)
{
	int			ntiers;
	char	  **tiers;
	const char *tier;

	ll_load_tiers(ch->id, &ntiers, &tiers);
	tier = t->entry.tier < ntiers ? tiers[t->entry.tier] : "(unknown)";
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("entry %llu of channel \"%s\" is held here only as a commitment",
					(unsigned long long) t->entry.entry_id, ch->name),
			 errdetail("This node is not cleared for tier \"%s\", so it stores the commitment of the row in block %llu but not the row.",
					   tier, (unsigned long long) t->block.hdr.height),
			 errhint("Ask a member cleared for tier \"%s\" for a disclosure (ledger.proof() on its node) and check it here with ledger.verify_disclosure().",
					 tier)));
}

/*
 * ledger.proof(channel, entry, upto): inclusion proof of one row in its
 * block and of that block in the chain up to height upto (default: head).
 */
Datum
ll_proof(PG_FUNCTION_ARGS)
{
	char	   *channel;
	int64		entry;
	LLChannel	ch;
	LLBlock		head;
	ProofTarget t;
	int64		upto;
	Oid			relid;
	char	   *table_name;
	char	   *tier_column;
	bool		isnull;
	Relation	rel;
	HeapTuple	tup;
	LLTableInfo *info;
	ll_buf		buf;
	uint8		leaf[LL_HASH_LEN];
	StringInfoData s;
	MemoryContext old;
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel and entry must not be null")));
	channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	entry = PG_GETARG_INT64(1);
	if (entry <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("entry numbers are positive, not %lld", (long long) entry)));
	SPI_connect();
	ll_channel_lookup(channel, &ch);
	ll_head_block(&ch, &head);
	upto = PG_ARGISNULL(2) ? (int64) head.hdr.height : PG_GETARG_INT64(2);
	find_entry(&ch, (uint64) entry, &t);
	if (t.entry.flags & LL_ENTRY_REDACTED)
		refuse_redacted(&ch, &t);
	if (upto < (int64) t.block.hdr.height || upto > (int64) head.hdr.height)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("upto must be between %llu (the row's block) and %llu (the head)",
						(unsigned long long) t.block.hdr.height,
						(unsigned long long) head.hdr.height)));

	SPI_execute_with_args("SELECT relid::oid, table_name, tier_column::text FROM ledger.ledger_table "
						  "WHERE channel_id = $1 AND table_no = $2", 2,
						  (Oid[]) {INT4OID, INT4OID},
						  (Datum[]) {Int32GetDatum(ch.id), Int32GetDatum((int32) t.entry.table_no)},
						  NULL, true, 1);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("entry %lld refers to unknown table number %u", (long long) entry, t.entry.table_no)));
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	table_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	tier_column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

	tup = ll_fetch_ledger_row(relid, table_name, (uint64) entry, false, &rel);
	info = ll_table_info_for(rel, ch.id, (int32) t.entry.table_no, ch.name, table_name, tier_column);
	if (t.entry.tier >= info->ntiers)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("entry %lld names tier %u, which channel \"%s\" does not have",
						(long long) entry, t.entry.tier, ch.name),
				 errhint("Run ledger.verify() to see what changed.")));
	ll_deform(info, tup);
	ll_buf_init(&buf, ll_palloc_realloc);
	ll_encode_deformed(info, (uint64) entry, t.entry.tier, t.entry.salt, &buf);
	if (!ll_leaf_hash(buf.data, buf.len, leaf) ||
		memcmp(leaf, t.entry.commitment, LL_HASH_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("row with entry %lld of table %s no longer matches its hash in block %llu",
						(long long) entry, table_name, (unsigned long long) t.block.hdr.height),
				 errhint("Run ledger.verify() to see what changed.")));

	old = MemoryContextSwitchTo(caller);
	initStringInfo(&s);
	MemoryContextSwitchTo(old);
	appendStringInfoString(&s, "{\"version\": 1, \"channel\": ");
	escape_json(&s, ch.name);
	appendStringInfo(&s, ", \"entry\": %lld, \"table\": ", (long long) entry);
	escape_json(&s, table_name);
	appendStringInfoString(&s, ", \"tier\": ");
	escape_json(&s, info->tiers[t.entry.tier]);
	appendStringInfoString(&s, ", ");
	ll_append_hex_field(&s, "salt", t.entry.salt, LL_SALT_LEN);
	append_columns(&s, info);
	appendStringInfoString(&s, ", ");
	ll_append_hex_field(&s, "leaf_hash", leaf, LL_HASH_LEN);
	append_path(&s, &t, info->tiers, info->ntiers);
	append_headers(&s, &ch, (int64) t.block.hdr.height, upto);
	appendStringInfoChar(&s, '}');
	table_close(rel, AccessShareLock);
	SPI_finish();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

typedef struct EntriesWalk
{
	ReturnSetInfo *rsinfo;
	int			ntiers;
	char	  **tiers;
	int			clearance;
	bool	   *readable;		/* by table number: the caller may SELECT it */
	int			ntables;
} EntriesWalk;

/*
 * One row of block_entries.  The salt of a row above the caller's
 * clearance, or of a table the caller may not read, is withheld: with it,
 * a guessed row could be confirmed.
 */
static void
put_entry_row(const EntriesWalk *w, int64 height, int position, const uint8 *packed,
			  int64 time_us)
{
	ReturnSetInfo *rsinfo = w->rsinfo;
	LLPackedEntry e;
	Datum		values[9];
	bool		nulls[9] = {false};

	ll_unpack_entry(packed, &e);
	values[0] = Int64GetDatum(height);
	nulls[0] = height < 0;
	values[1] = Int32GetDatum(position);
	nulls[1] = height < 0;
	values[2] = Int64GetDatum((int64) e.entry_id);
	values[3] = Int32GetDatum((int32) e.table_no);
	if (e.tier < w->ntiers)
		values[4] = CStringGetTextDatum(w->tiers[e.tier]);
	else
		nulls[4] = true;
	values[5] = PointerGetDatum(ll_bytea(e.commitment, LL_HASH_LEN));
	/* a redacted entry has no salt on this node */
	if ((e.flags & LL_ENTRY_REDACTED) || (int) e.tier > w->clearance ||
		e.table_no >= (uint32) w->ntables || !w->readable[e.table_no])
		nulls[6] = true;
	else
		values[6] = PointerGetDatum(ll_bytea(e.salt, LL_SALT_LEN));
	values[7] = TimestampTzGetDatum(time_us - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
	nulls[7] = height < 0;
	values[8] = BoolGetDatum((e.flags & LL_ENTRY_REDACTED) != 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* Which of the channel's tables the caller may read, by table number. */
static void
load_readable(int32 channel_id, EntriesWalk *w)
{
	LLAsOwner	as;
	uint64		i;

	ll_as_owner_begin(&as);
	SPI_execute_with_args("SELECT table_no, relid FROM ledger.ledger_table WHERE channel_id = $1 "
						  "ORDER BY table_no", 1, (Oid[]) {INT4OID},
						  (Datum[]) {Int32GetDatum(channel_id)}, NULL, true, 0);
	ll_as_owner_end(&as);
	w->ntables = 0;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		no = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		w->ntables = Max(w->ntables, no + 1);
	}
	w->readable = palloc0(sizeof(bool) * Max(w->ntables, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		no = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		bool		missing = false;

		if (no >= 0)
			w->readable[no] = pg_class_aclcheck_ext(relid, GetUserId(), ACL_SELECT, &missing) == ACLCHECK_OK &&
				!missing;
	}
}

static bool
entries_block_cb(LLBlock *b, void *arg)
{
	EntriesWalk *w = arg;
	int			j;

	for (j = 0; j < b->nentries; j++)
		put_entry_row(w, (int64) b->hdr.height, j,
					  b->entries + (Size) j * LL_PACKED_ENTRY_SIZE, b->hdr.time_us);
	return true;
}

/*
 * ledger.block_entries(channel): every sealed row in chain order, then the
 * committed rows still pending (block_height NULL).
 */
Datum
ll_block_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LLChannel	ch;
	EntriesWalk w;
	uint64		i;
	int			j;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	ll_channel_lookup(channel, &ch);
	ll_load_tiers(ch.id, &w.ntiers, &w.tiers);
	w.rsinfo = rsinfo;
	w.clearance = ll_effective_clearance(ch.id);
	load_readable(ch.id, &w);
	ll_foreach_block(&ch, -1, entries_block_cb, &w);
	ll_spi_pending_entries(ch.id);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *p = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int			n = VARSIZE_ANY_EXHDR(p) / LL_PACKED_ENTRY_SIZE;

		for (j = 0; j < n; j++)
			put_entry_row(&w, -1, j, (const uint8 *) VARDATA_ANY(p) + (Size) j * LL_PACKED_ENTRY_SIZE, 0);
	}
	SPI_finish();
	return (Datum) 0;
}
