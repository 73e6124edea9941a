/*
 * apply.c
 *		Run a decided block on this node.
 *
 * Every honest peer applies the same batches in the same order, so the
 * outcome of each transaction must depend only on that order and on rows
 * that came the same way.  Rows are inserted as they were encoded at the
 * origin (same entry numbers, same salts), in a subtransaction per
 * transaction: an integrity violation (a unique key taken by a transaction
 * ordered earlier) rejects the transaction on every peer alike; any other
 * error (a table missing here) stops this node instead of letting it
 * diverge.  A transaction from a local backend that still waits is handed
 * back to it: it commits its own rows, so INSERT ... RETURNING, row counts
 * and triggers behaved as on a plain table.
 *
 * The whole block, its ledger.block row and its certificate commit in one
 * worker transaction, so a crash replays the block from the start;
 * ledger.txlog makes every transaction count exactly once.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"

/*
 * How this node inserts rows of one table received from peers.  Rows go
 * straight to the heap and indexes (as logical replication applies them)
 * when the entry names every column and no row trigger or rule could act
 * on the insert; otherwise through a prepared INSERT.  The direct path
 * keeps the executor state open for the rest of the block: starting an
 * executor per row was a large part of applying a block.
 */
typedef struct TableWriter
{
	char		key[NAMEDATALEN * 2 + 2];	/* qualified name as hashed */
	int32		table_no;
	Oid			relid;
	int			ncols;
	char	  **colnames;
	Oid		   *types;
	Oid		   *inputs;
	Oid		   *ioparams;
	int32	   *typmods;
	AttrNumber *attnums;		/* [0] ledger_entry, [i + 1] entry column i */
	LLColEncoder **encoders;	/* entry column i's canonical text, NULL
								 * where the input keeps the text as it is */
	int			tier_col;		/* entry column holding the tier, or -1 */
	/* valid while open_gen == block_gen (one apply transaction) */
	uint64		open_gen;
	Oid			owner;			/* the table's: user code runs as this role */
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
} TableWriter;

/* Bumped per apply transaction: writers opened in an older one are stale. */
static uint64 block_gen = 1;

static HTAB *writers = NULL;

/* Table numbers by qualified name, for rows held only as commitments. */
typedef struct TableNo
{
	char		key[NAMEDATALEN * 2 + 2];
	int32		table_no;
	Oid			relid;
	bool		order_free;		/* no unique key besides ledger_entry */
	uint64		judged_gen;		/* block_gen order_free was read in */
} TableNo;

static HTAB *table_nos = NULL;

/* Rows of the block being built. */
typedef struct BlockRows
{
	ll_buf		packed;
	int			nrows;
	int			ntx;
} BlockRows;

static void
writers_init(void)
{
	HASHCTL		ctl;

	if (writers)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN * 2 + 2;
	ctl.entrysize = sizeof(TableWriter);
	writers = hash_create("loopledger table writers", 16, &ctl, HASH_ELEM | HASH_STRINGS);
}

/* Forget prepared inserts (after an error, or when tables changed). */
void
ll_apply_reset(void)
{
	if (writers)
		hash_destroy(writers);
	writers = NULL;
	if (table_nos)
		hash_destroy(table_nos);
	table_nos = NULL;
	block_gen++;
	ll_tabledef_reset();
}

static void
stall(const char *table, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot apply a decided block: %s", why),
			 errdetail("Ledger table \"%s\" must exist with the same columns on every peer of the channel.", table),
			 errhint("Create the table and run ledger.enable_table() on this node; the worker retries.")));
}

/*
 * A row this node's table cannot take as it came.  Whether that refuses
 * the transaction or stops the worker depends on whether the table here
 * is defined as agreed (run_tx).
 */
static void
misfit(const char *table, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("a row of ledger table \"%s\" does not fit: %s", table, why)));
}

/*
 * A table name no member can have (too long for schema.table, or with a NUL
 * byte): only a lying origin sends one, and every member can tell alike,
 * so the transaction is refused everywhere instead of stopping the
 * channel as a table still to be created would.
 */
static bool
table_name_possible(const char *name, size_t len)
{
	return len < NAMEDATALEN * 2 + 2 && memchr(name, '\0', len) == NULL;
}

static void
check_table_name(const char *name, size_t len)
{
	if (!table_name_possible(name, len))
		ereport(ERROR,
				(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
				 errmsg("a row names a table no member can have")));
}

/*
 * Every live column is ledger_entry or named by the entry, once.  Stored
 * generated columns are named too (the origin computed them); the direct
 * insert computes them again, as INSERT would refuse the value.
 */
static bool
covers_table(Relation rel, const TableWriter *w)
{
	TupleDesc	td = RelationGetDescr(rel);
	bool	   *named = palloc0(sizeof(bool) * td->natts);
	int			live = 0;
	int			i;

	for (i = 0; i <= w->ncols; i++)
	{
		if (w->attnums[i] < 1 || w->attnums[i] > td->natts || named[w->attnums[i] - 1])
			return false;
		named[w->attnums[i] - 1] = true;
	}
	for (i = 0; i < td->natts; i++)
		if (!TupleDescAttr(td, i)->attisdropped)
			live++;
	return live == w->ncols + 1;
}

static void
writer_prepare(TableWriter *w, const LLApply *a, const ll_entry_view *e)
{
	MemoryContext old;
	const uint8 *pos = NULL;
	ll_entry_col col;
	Oid			relid;
	bool		isnull;
	char	   *tier_column;
	int			i;

	SPI_execute_with_args("SELECT relid, table_no, tier_column::text FROM ledger.ledger_table "
						  "WHERE channel_id = $1 AND table_name = $2", 2,
						  (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(a->channel_id), CStringGetTextDatum(w->key)},
						  NULL, false, 1);
	if (SPI_processed != 1)
		stall(w->key, "the table is not a ledger table of this channel here");
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	w->table_no = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	tier_column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	w->relid = relid;
	w->tier_col = -1;
	w->open_gen = 0;
	/* after SPI calls, which leave us in SPI's own short-lived context */
	old = MemoryContextSwitchTo(TopMemoryContext);
	w->ncols = e->ncols;
	w->colnames = palloc(sizeof(char *) * (e->ncols + 1));
	w->types = palloc(sizeof(Oid) * (e->ncols + 1));
	w->inputs = palloc(sizeof(Oid) * (e->ncols + 1));
	w->ioparams = palloc(sizeof(Oid) * (e->ncols + 1));
	w->typmods = palloc(sizeof(int32) * (e->ncols + 1));
	w->attnums = palloc(sizeof(AttrNumber) * (e->ncols + 1));
	w->encoders = palloc(sizeof(LLColEncoder *) * (e->ncols + 1));
	w->attnums[0] = get_attnum(relid, LL_ENTRY_COLUMN);
	if (w->attnums[0] == InvalidAttrNumber)
		misfit(w->key, "column \"" LL_ENTRY_COLUMN "\" is missing");
	w->types[0] = INT8OID;
	for (i = 0; i < (int) e->ncols; i++)
	{
		AttrNumber	att;
		Oid			coll;

		ll_entry_next_col(e, &pos, &col);
		w->colnames[i] = pnstrdup(col.name, col.name_len);
		att = get_attnum(relid, w->colnames[i]);
		if (att == InvalidAttrNumber)
			misfit(w->key, psprintf("column \"%s\" is missing", w->colnames[i]));
		w->attnums[i + 1] = att;
		get_atttypetypmodcoll(relid, att, &w->types[i + 1], &w->typmods[i], &coll);
		getTypeInputInfo(w->types[i + 1], &w->inputs[i], &w->ioparams[i]);
		/* text and unbounded varchar store the text they read, as it is */
		w->encoders[i] = getBaseType(w->types[i + 1]) == TEXTOID ||
			(w->types[i + 1] == VARCHAROID && w->typmods[i] < 0) ? NULL :
			ll_column_encoder(w->types[i + 1], w->colnames[i], TopMemoryContext);
		if (tier_column != NULL && strcmp(tier_column, w->colnames[i]) == 0)
			w->tier_col = i;
	}
	MemoryContextSwitchTo(old);
	/*
	 * An honest origin names every column, in the table's order; a writer
	 * shaped by a row that did not would turn away the rows after it, and
	 * only on members whose writer that row happened to shape.
	 */
	{
		Relation	rel = table_open(relid, AccessShareLock);
		bool		covers = covers_table(rel, w);

		table_close(rel, AccessShareLock);
		for (i = 1; covers && i < w->ncols; i++)
			covers = w->attnums[i] < w->attnums[i + 1];
		if (!covers)
			misfit(w->key, "it does not name every column of the table once, in order");
	}
}

/*
 * Executor state for direct inserts into w's table until the end of this
 * transaction.  Opened under the transaction's own resource owner and
 * memory, so that a transaction's subtransaction rolling back (a refused
 * row) leaves it usable for the next one.
 */
static void
writer_open(TableWriter *w)
{
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	RangeTblEntry *rte;

	CurrentResourceOwner = TopTransactionResourceOwner;
	w->rel = table_open(w->relid, RowExclusiveLock);
	w->open_gen = block_gen;
	w->owner = w->rel->rd_rel->relowner;
	w->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = w->relid;
	rte->relkind = w->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->slot = table_slot_create(w->rel, &w->estate->es_tupleTable);
	CurrentResourceOwner = owner;
	MemoryContextSwitchTo(old);
}

/* Before the apply transaction commits: release what writer_open took. */
static void
writers_close(void)
{
	HASH_SEQ_STATUS seq;
	TableWriter *w;

	if (writers == NULL)
		return;
	hash_seq_init(&seq, writers);
	while ((w = hash_seq_search(&seq)) != NULL)
	{
		if (w->open_gen != block_gen || w->estate == NULL)
			continue;
		ExecCloseIndices(w->rri);
		ExecResetTupleTable(w->estate->es_tupleTable, false);
		FreeExecutorState(w->estate);
		table_close(w->rel, NoLock);
		w->estate = NULL;
		w->rel = NULL;
	}
	block_gen++;
}

static TableWriter *
writer_for(const LLApply *a, const ll_entry_view *e)
{
	char		key[NAMEDATALEN * 2 + 2];
	TableWriter *w;
	bool		found;

	check_table_name(e->table, e->table_len);
	memcpy(key, e->table, e->table_len);
	key[e->table_len] = '\0';
	writers_init();
	w = hash_search(writers, key, HASH_ENTER, &found);
	if (!found)
	{
		PG_TRY();
		{
			writer_prepare(w, a, e);
		}
		PG_CATCH();
		{
			hash_search(writers, key, HASH_REMOVE, NULL);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return w;
}

/*
 * The local number of a ledger table named in a redacted row.  The table
 * must exist here like any other: the node lists its redacted rows.
 */
static TableNo *
table_for(const LLApply *a, ll_wire_str table)
{
	char		key[NAMEDATALEN * 2 + 2];
	TableNo    *t;
	bool		found;

	check_table_name(table.ptr, table.len);
	memcpy(key, table.ptr, table.len);
	key[table.len] = '\0';
	if (table_nos == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(TableNo);
		table_nos = hash_create("loopledger table numbers", 16, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	t = hash_search(table_nos, key, HASH_FIND, &found);
	if (found)
	{
		/*
		 * Read again in every apply transaction: a unique index created
		 * since must count here as on the members whose worker started
		 * after it.
		 */
		if (t->judged_gen != block_gen)
		{
			t->order_free = ll_relid_order_free(t->relid);
			t->judged_gen = block_gen;
		}
		return t;
	}
	SPI_execute_with_args("SELECT table_no, relid FROM ledger.ledger_table "
						  "WHERE channel_id = $1 AND table_name = $2", 2,
						  (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(a->channel_id), CStringGetTextDatum(key)},
						  NULL, false, 1);
	if (SPI_processed != 1)
		stall(key, "the table is not a ledger table of this channel here");
	{
		int32		no = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &found));
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &found));
		bool		free_ = ll_relid_order_free(relid);

		t = hash_search(table_nos, key, HASH_ENTER, &found);
		t->table_no = no;
		t->relid = relid;
		t->order_free = free_;
		t->judged_gen = block_gen;
	}
	return t;
}

/*
 * The value read in must give back the text that was hashed, and the tier
 * column must say the entry's tier.  An honest origin with the same table
 * sends nothing else; from a liar, text the input function reads in
 * another form (spacing in jsonb, say) would be stored unlike its hash,
 * and a tier column unlike the committed tier would show the row to roles
 * below its tier.  Either, or a table defined differently here, stops
 * applying (as a value the type refuses does, see decided_outcome).
 */
static void
check_canonical(const TableWriter *w, int i, const ll_entry_col *col, Datum value,
				const ll_entry_view *e)
{
	char	   *text;

	if (col->isnull)
	{
		if (i == w->tier_col)
			misfit(w->key, "its tier column is empty");
		return;
	}
	text = w->encoders[i] == NULL ? NULL : ll_column_text(w->encoders[i], value);
	if (text != NULL && (strlen(text) != col->value_len || memcmp(text, col->value, col->value_len) != 0))
		misfit(w->key, psprintf("a value of column \"%s\" does not read back as it was hashed", w->colnames[i]));
	if (i == w->tier_col && (col->value_len != e->tier_len ||
							 memcmp(col->value, e->tier, e->tier_len) != 0))
		misfit(w->key, "its tier column does not say its tier");
}

/* An entry's values, read in through the column types' input functions. */
static void
read_values(const ll_entry_view *e, TableWriter *w, Datum *values, bool *isnull)
{
	const uint8 *pos = NULL;
	int			i;

	if ((int) e->ncols != w->ncols)
		misfit(w->key, "the rows have a different number of columns");
	values[0] = Int64GetDatum((int64) e->entry_id);
	isnull[0] = false;
	for (i = 0; i < w->ncols; i++)
	{
		ll_entry_col col;

		ll_entry_next_col(e, &pos, &col);
		if (col.name_len != strlen(w->colnames[i]) ||
			memcmp(col.name, w->colnames[i], col.name_len) != 0)
			misfit(w->key, "the rows have different columns");
		isnull[i + 1] = col.isnull;
		/* hashed with it, a NUL would be cut off on the way in */
		if (!col.isnull && memchr(col.value, '\0', col.value_len) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
					 errmsg("a value of column \"%s\" has a NUL byte", w->colnames[i])));
		/* text input takes its bytes unchecked: only a lying origin sends these */
		if (!col.isnull)
			(void) pg_verifymbstr((const char *) col.value, (int) col.value_len, false);
		values[i + 1] = col.isnull ? (Datum) 0 :
			OidInputFunctionCall(w->inputs[i], pnstrdup(col.value, col.value_len),
								 w->ioparams[i], w->typmods[i]);
		check_canonical(w, i, &col, values[i + 1], e);
	}
}

static void
insert_direct(TableWriter *w, const Datum *values, const bool *isnull)
{
	TupleTableSlot *slot = w->slot;
	int			i;

	ExecClearTuple(slot);
	for (i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	for (i = 0; i <= w->ncols; i++)
	{
		slot->tts_values[w->attnums[i] - 1] = values[i];
		slot->tts_isnull[w->attnums[i] - 1] = isnull[i];
	}
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationInsert(w->rri, w->estate, slot);
	ResetPerTupleExprContext(w->estate);
}

/*
 * Insert one row from its canonical entry; errors propagate.  Input
 * functions, domain and table CHECKs, index expressions and generated
 * columns run as the table's owner in a restricted operation, as in
 * PostgreSQL's own replication: this worker is a superuser, and the owner
 * of a function a CHECK calls may replace its body at any time.  Aborting
 * the (sub)transaction of an error restores this worker's user.
 */
static void
insert_row(const ll_entry_view *e, TableWriter *w)
{
	static MemoryContext row_cxt = NULL;
	MemoryContext old;
	Datum	   *values;
	bool	   *isnull;
	Oid			save_user;
	int			save_sec;

	/*
	 * The row's converted values live only until it is inserted: a block
	 * of large transactions would otherwise keep them all until it ends.
	 */
	if (row_cxt == NULL)
		row_cxt = AllocSetContextCreate(TopMemoryContext, "loopledger row to apply",
										ALLOCSET_DEFAULT_SIZES);
	if (w->open_gen != block_gen)
		writer_open(w);
	MemoryContextReset(row_cxt);
	old = MemoryContextSwitchTo(row_cxt);
	values = palloc(sizeof(Datum) * (w->ncols + 1));
	isnull = palloc(sizeof(bool) * (w->ncols + 1));
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(w->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	read_values(e, w, values, isnull);
	insert_direct(w, values, isnull);
	SetUserIdAndSecContext(save_user, save_sec);
	MemoryContextSwitchTo(old);
}

static void
add_block_row(BlockRows *br, const ll_entry_view *e, int32 table_no, const ll_row *r)
{
	LLPackedEntry pe;
	uint8		buf[LL_PACKED_ENTRY_SIZE];

	memset(&pe, 0, sizeof(pe));
	pe.entry_id = e->entry_id;
	pe.table_no = (uint32) table_no;
	pe.tier = r->tier_index;
	memcpy(pe.commitment, r->commitment, LL_HASH_LEN);
	memcpy(pe.salt, e->salt, LL_SALT_LEN);
	ll_pack_entry(&pe, buf);
	ll_buf_put(&br->packed, buf, sizeof(buf));
	br->nrows++;
}

/* A row this node holds only as its commitment. */
static void
add_redacted_row(const LLApply *a, BlockRows *br, const ll_row *r)
{
	LLPackedEntry pe;
	uint8		buf[LL_PACKED_ENTRY_SIZE];

	memset(&pe, 0, sizeof(pe));
	pe.entry_id = r->entry_id;
	pe.table_no = (uint32) table_for(a, r->table)->table_no;
	pe.tier = r->tier_index;
	pe.flags = LL_ENTRY_REDACTED;
	memcpy(pe.commitment, r->commitment, LL_HASH_LEN);
	ll_pack_entry(&pe, buf);
	ll_buf_put(&br->packed, buf, sizeof(buf));
	br->nrows++;
}

/*
 * Check and insert every row of a transaction; adds them to the block.
 * Rows above this node's clearance arrive without content (the senders
 * redact them) and are recorded as commitments, and so are rows above
 * redact_above (content refused here in a transaction not every member
 * can judge, see run_tx).
 */
static void
insert_tx_rows(const LLApply *a, ll_batch_iter *it, BlockRows *br, bool insert,
			   int redact_above)
{
	ll_row		r;

	while (ll_batch_next_row(it, &r))
	{
		ll_entry_view e;
		TableWriter *w;

		if (r.tier_index >= a->ntiers)
			ereport(ERROR,
					(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
					 errmsg("a row names a tier the channel does not have")));
		if ((int) r.tier_index > redact_above ||
			(r.content == NULL && (int) r.tier_index > a->self_clearance))
		{
			add_redacted_row(a, br, &r);
			continue;
		}
		if (r.content == NULL || !ll_entry_decode(r.content, r.content_len, &e))
			ereport(ERROR,
					(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
					 errmsg("a row of the transaction is not a valid ledger entry")));
		if (strlen(a->tiers[r.tier_index]) != e.tier_len ||
			memcmp(a->tiers[r.tier_index], e.tier, e.tier_len) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION),
					 errmsg("a row's tier does not match the tier it was announced with")));
		w = writer_for(a, &e);
#ifdef LL_FAULT_INJECTION
		if (insert)
			ll_fault_apply_point("fail_apply_rows");
#endif
		if (insert)
			insert_row(&e, w);
		add_block_row(br, &e, w->table_no, &r);
	}
}

/* Outcomes the worker records itself, inserted together at block end. */
typedef struct TxLog
{
	ArrayBuildState *origin;
	ArrayBuildState *txid;
	ArrayBuildState *pos;
	ArrayBuildState *status;
	ArrayBuildState *detail;
	ArrayBuildState *tier;
} TxLog;

/*
 * The highest tier of a transaction's rows (it: at its first row), or -1.
 * Not inlined: run_tx calls it before a setjmp.
 */
static pg_noinline int
tx_tier(ll_batch_iter it)
{
	ll_row		row;
	int			tier = -1;

	while (ll_batch_next_row(&it, &row))
		tier = Max(tier, (int) row.tier_index);
	return tier;
}

/*
 * tier: the highest tier of the transaction's rows, -1 when it has none.
 * A role below it does not see the outcome (its detail may name values).
 */
static void
log_tx(TxLog *log, const uint8 *origin, uint64 txid, int pos, int tier,
	   const char *status, const char *detail)
{
	MemoryContext cxt = CurrentMemoryContext;

	log->tier = accumArrayResult(log->tier, Int32GetDatum(tier), tier < 0, INT4OID, cxt);

	log->origin = accumArrayResult(log->origin, PointerGetDatum(ll_bytea(origin, 32)),
								   false, BYTEAOID, cxt);
	log->txid = accumArrayResult(log->txid, Int64GetDatum((int64) txid), false, INT8OID, cxt);
	log->pos = accumArrayResult(log->pos, Int32GetDatum(pos), false, INT4OID, cxt);
	log->status = accumArrayResult(log->status, CStringGetTextDatum(status), false, TEXTOID, cxt);
	log->detail = accumArrayResult(log->detail, detail ? CStringGetTextDatum(detail) : (Datum) 0,
								   detail == NULL, TEXTOID, cxt);
}

static void
flush_txlog(const LLApply *a, TxLog *log, uint64 height)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	if (log->origin == NULL)
		return;
	if (plan == NULL)
		plan = ll_keep_plan("INSERT INTO ledger.txlog (channel_id, origin, txid, height, \"position\", status, detail, tier) "
							"SELECT $1, o, t, $2, p, s, d, tr FROM unnest($3, $4, $5, $6, $7, $8) AS u(o, t, p, s, d, tr)", 8,
							(Oid[]) {INT4OID, INT8OID, BYTEAARRAYOID, INT8ARRAYOID, INT4ARRAYOID,
							TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID});
	if (SPI_execute_plan(plan,
						 (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum((int64) height),
							 makeArrayResult(log->origin, cxt), makeArrayResult(log->txid, cxt),
							 makeArrayResult(log->pos, cxt), makeArrayResult(log->status, cxt),
							 makeArrayResult(log->detail, cxt), makeArrayResult(log->tier, cxt)},
						 NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the outcomes of decided height " UINT64_FORMAT, height);
}

/*
 * Outcome already recorded for a transaction: 'a' = accepted at this very
 * height (a replay after a crash), 'd' = ordered before (a duplicate,
 * skipped everywhere alike), 'p' = committed without waiting, 0 = new.
 * One primary-key probe each, straight through the index: a query per
 * transaction cost more than inserting its rows.  The latest snapshot
 * sees local backends that committed since the block began.
 */
static char
tx_seen(const LLApply *a, const uint8 *origin, uint64 txid, uint64 height)
{
	static Oid	txlog_relid = InvalidOid;
	static uint64 relid_gen = 0;
	Relation	rel;
	ScanKeyData key[3];
	SysScanDesc scan;
	Snapshot	snap;
	HeapTuple	tup;
	char		seen = 0;

	if (relid_gen != block_gen)	/* looked up once per apply transaction */
	{
		txlog_relid = ll_catalog_relid("txlog");
		relid_gen = block_gen;
	}
	rel = table_open(txlog_relid, AccessShareLock);
	ScanKeyInit(&key[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(a->channel_id));
	ScanKeyInit(&key[1], 2, BTEqualStrategyNumber, F_BYTEAEQ,
				PointerGetDatum(ll_bytea(origin, 32)));
	ScanKeyInit(&key[2], 3, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum((int64) txid));
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, RelationGetPrimaryKeyIndex(rel), true, snap, 3, key);
	if ((tup = systable_getnext(scan)) != NULL)
	{
		TupleDesc	td = RelationGetDescr(rel);
		bool		hnull,
					snull;
		Datum		h = heap_getattr(tup, 4, td, &hnull);
		char	   *status = TextDatumGetCString(heap_getattr(tup, 6, td, &snull));

		if (strcmp(status, "pending") == 0)
			seen = 'p';
		else if (!hnull && DatumGetInt64(h) == (int64) height && strcmp(status, "accepted") == 0)
			seen = 'a';
		else
			seen = 'd';
	}
	systable_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return seen;
}

/*
 * A local transaction that committed without waiting for the order (its
 * rows cannot be refused): it takes its place now.
 */
static void
settle_pending(const LLApply *a, uint64 height, const uint8 *origin, uint64 txid, int pos)
{
	SPI_execute_with_args("UPDATE ledger.txlog SET status = 'accepted', height = $4, \"position\" = $5 "
						  "WHERE channel_id = $1 AND origin = $2 AND txid = $3", 5,
						  (Oid[]) {INT4OID, BYTEAOID, INT8OID, INT8OID, INT4OID},
						  (Datum[]) {Int32GetDatum(a->channel_id), PointerGetDatum(ll_bytea(origin, 32)),
							  Int64GetDatum((int64) txid), Int64GetDatum((int64) height),
						  Int32GetDatum(pos)}, NULL, false, 0);
	SPI_execute_with_args("DELETE FROM ledger.pending WHERE channel_id = $1 AND txid = $2", 2,
						  (Oid[]) {INT4OID, INT8OID},
						  (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum((int64) txid)},
						  NULL, false, 0);
}

/* Recorded by a backend that ended before telling us how: ask ledger.txlog. */
static bool
tx_committed(const LLApply *a, uint64 txid, uint64 height)
{
	SPI_execute_with_args("SELECT 1 FROM ledger.txlog WHERE channel_id = $1 AND origin = $2 "
						  "AND txid = $3 AND height = $4 AND status = 'accepted'", 4,
						  (Oid[]) {INT4OID, BYTEAOID, INT8OID, INT8OID},
						  (Datum[]) {Int32GetDatum(a->channel_id), PointerGetDatum(ll_bytea(a->self, 32)),
						  Int64GetDatum((int64) txid), Int64GetDatum((int64) height)}, NULL, false, 1);
	return SPI_processed == 1;
}

/*
 * The wait slot of a local backend still waiting for (SUBMITTED) or
 * committing without (ASYNC) transaction txid, with the state word it was
 * found in: every change the worker makes is a swap from that word.
 */
static LLTxWait *
local_waiter(const LLApply *a, uint64 txid, int *procno, uint32 *word)
{
	int			i;

	for (i = 0; i < ll_cons->nwaits; i++)
	{
		LLTxWait   *w = &ll_cons->waits[i];
		LLTxState	st;

		if (w->txid != txid || w->channel_id != a->channel_id ||
			!ll_tx_word_of(w, txid, word))
			continue;
		st = LL_TX_STATE(*word);
		if (st == LL_TX_SUBMITTED || st == LL_TX_ASYNC)
		{
			*procno = i;
			return w;
		}
	}
	return NULL;
}

/*
 * Local transactions given their turn and not finished yet.  Several may
 * commit at once: they held their rows together, so they cannot conflict
 * with one another.  A peer's transaction is only applied once all local
 * ones ordered before it have finished (see drain_handed).
 */
typedef struct Handed
{
	LLTxWait   *w;
	uint32		word;			/* the GO it was given */
	int			procno;
	int			pid;
	uint64		txid;
	const ll_batch *b;
	ll_batch_iter it;			/* at the transaction's rows */
	ll_tx		tx;
	int			pos;
} Handed;

typedef struct ApplyRun
{
	LLApply    *a;
	uint64		height;
	BlockRows  *br;
	TxLog		log;
	Handed	   *handed;
	int			nhanded;
	int			cap;
	HTAB	   *in_block;		/* (origin, txid) already met in this block */
} ApplyRun;

/*
 * Give a waiting local transaction its turn: false when its backend gave
 * up meanwhile (the swap from the word local_waiter found failed), and
 * the caller inserts its rows from the batch like a peer's.  The swap also
 * proves the GO is for txid: the word carries the submission number.
 */
static bool
give_turn(ApplyRun *r, LLTxWait *w, uint32 word, int procno, const ll_batch *b,
		  ll_batch_iter *it, const ll_tx *tx, int pos)
{
	Handed	   *h;
	ll_batch_iter rows = *it;
	size_t		mark = r->br->packed.len;
	int			nrows = r->br->nrows;
	int			pid = w->pid;

	/*
	 * A local transaction given its turn is accepted: its rows are in the
	 * block.  Chained before the turn is given, so that a table this node
	 * lacks stops the block before the backend can commit.
	 */
	insert_tx_rows(r->a, it, r->br, false, INT_MAX);
	/* read only after GO: a failed swap leaves them to the next GO to set */
	w->height = (int64) r->height;
	w->position = pos;
	pg_write_barrier();
	if (!ll_tx_swap(w, word, LL_TX_GO))
	{
		r->br->packed.len = mark;
		r->br->nrows = nrows;
		*it = rows;
		return false;
	}
	SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	r->br->ntx++;
	r->a->local_done++;
	if (r->nhanded == r->cap)
	{
		r->cap = Max(16, r->cap * 2);
		r->handed = r->handed ? repalloc(r->handed, sizeof(Handed) * r->cap)
			: palloc(sizeof(Handed) * r->cap);
	}
	h = &r->handed[r->nhanded++];
	h->w = w;
	h->word = LL_TX_WORD(word, LL_TX_GO);
	h->procno = procno;
	h->pid = pid;
	h->txid = tx->txid;
	h->b = b;
	h->it = rows;
	h->tx = *tx;
	h->pos = pos;
#ifdef LL_FAULT_INJECTION
	ll_fault_apply_point("fail_apply_handed");
#endif
	return true;
}

/*
 * A local backend that committed in its turn, in an apply of this block
 * that then failed, still waits for the block: after the worker's restart
 * it is told like the backends handed their turn now (finish_local).
 */
static void
adopt_committed(ApplyRun *r, uint64 txid)
{
	int			i;

	for (i = 0; i < ll_cons->nwaits; i++)
	{
		LLTxWait   *w = &ll_cons->waits[i];
		uint32		word;

		if (w->txid == txid && w->channel_id == r->a->channel_id &&
			ll_tx_word_of(w, txid, &word) && LL_TX_STATE(word) == LL_TX_COMMITTED)
		{
			w->height = (int64) r->height;
			pg_write_barrier();
			if (ll_tx_swap(w, word, LL_TX_SEEN) && w->wake_seen)
				SetLatch(&ProcGlobal->allProcs[i].procLatch);
		}
	}
}

/* 1 committed, 0 aborted, -1 still running */
static int
handed_outcome(ApplyRun *r, Handed *h)
{
	PGPROC	   *proc = &ProcGlobal->allProcs[h->procno];
	uint32		word = pg_atomic_read_u32(&h->w->state);

	/* its backend went on to another transaction, or is gone */
	if (!LL_TX_SAME_SUBMISSION(word, h->word) || proc->pid != h->pid)
		return tx_committed(r->a, h->txid, r->height) ? 1 : 0;
	switch (LL_TX_STATE(word))
	{
		case LL_TX_GO:
			return -1;
		case LL_TX_COMMITTED:
			if (!ll_tx_swap(h->w, word, LL_TX_SEEN))
				return -1;		/* changed meanwhile: look again */
			/* a backend waiting for its block is woken once, by finish_local */
			if (h->w->wake_seen)
				SetLatch(&proc->procLatch);
			return 1;
		case LL_TX_SEEN:
		case LL_TX_FINAL:
			return 1;
		default:
			/* ABORTED; anything else after GO means the backend gave up */
			return 0;
	}
}

/*
 * Errors that can refuse the transaction: a constraint the rows break, a
 * value the column's type does not take, a row that does not fit, a row
 * or index entry over PostgreSQL's size limits (54000, those messages
 * only; not the rest of class 54: "stack depth limit exceeded" depends on
 * local settings).  They
 * refuse it only where the table is defined as agreed (tables_as_agreed):
 * every such member meets them alike on the same rows.  Anything else
 * stops the worker until fixed.
 */
static bool
decided_outcome(const ErrorData *ed)
{
	if (ERRCODE_TO_CATEGORY(ed->sqlerrcode) == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		ERRCODE_TO_CATEGORY(ed->sqlerrcode) == ERRCODE_DATA_EXCEPTION)
		return true;
	/*
	 * Of 54000 only the size limits of rows and index entries (by their
	 * untranslated message): the same code also says this node is near
	 * transaction id wraparound, a state of its own.
	 */
	return ed->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED && ed->message_id != NULL &&
		(strncmp(ed->message_id, "index row size ", 15) == 0 ||
		 strncmp(ed->message_id, "index row requires ", 19) == 0 ||
		 strncmp(ed->message_id, "row is too big", 14) == 0);
}

/*
 * Every table whose rows this node inserts from a transaction must be
 * defined here as agreed: a member whose table differs (an enum label, a
 * unique index, a CHECK not added here yet, or one too many) could judge
 * the rows otherwise than the members that match, and fork.  It stops
 * instead, naming the table, until its DBA makes the table match.  Checked
 * before the rows, whatever their outcome, and again after them.
 */
static void
tables_as_agreed(const LLApply *a, ll_batch_iter rows, int redact_above, const char *error)
{
	ll_row		row;

	while (ll_batch_next_row(&rows, &row))
	{
		TableNo    *t;
		char		key[NAMEDATALEN * 2 + 2];

		if (row.content == NULL || (int) row.tier_index > redact_above)
			continue;
		t = table_for(a, row.table);
		memcpy(key, row.table.ptr, row.table.len);
		key[row.table.len] = '\0';
		if (!ll_tabledef_matches(a, key, t->relid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot apply a decided block: ledger table \"%s\" is defined here unlike the channel's agreed definition", key),
					 error ? errdetail("A transaction's rows failed here: %s. Members whose table is defined as agreed judge them alone; this node cannot tell whether its own table is the cause.", error) :
					 errdetail("Members whose table is defined as agreed judge its rows; this node could judge them otherwise."),
					 errhint("Make the table match the agreed definition (ledger.table_definitions compares them); the worker retries.")));
	}
}

static void run_tx(ApplyRun *r, const ll_batch *b, ll_batch_iter *it, const ll_tx *tx,
				   int pos, bool counted, bool blind,
				   int redact_above, const char *why);

/* Wait for every local transaction given its turn; redo aborted ones. */
static void
drain_handed(ApplyRun *r)
{
	int			i;

	for (;;)
	{
		bool		running = false;

		for (i = 0; i < r->nhanded; i++)
		{
			Handed	   *h = &r->handed[i];
			int			o;

			if (h->w == NULL)
				continue;
			o = handed_outcome(r, h);
			if (o < 0)
			{
				running = true;
				continue;
			}
			if (o == 0)			/* its backend gave up: the rows are still due */
				run_tx(r, h->b, &h->it, &h->tx, h->pos, true, false, INT_MAX, NULL);
			h->w = NULL;
		}
		if (!running)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	r->nhanded = 0;
}

/* Tell a waiting local backend its transaction is refused, if it still waits. */
static void
reject_local(LLTxWait *w, uint32 word, const char *why)
{
	if (w == NULL || LL_TX_STATE(word) != LL_TX_SUBMITTED)
		return;
	strlcpy(w->message, why, sizeof(w->message));
	pg_write_barrier();
	if (ll_tx_swap(w, word, LL_TX_REJECTED))
		SetLatch(&ProcGlobal->allProcs[w - ll_cons->waits].procLatch);
}

/*
 * Insert a transaction's rows here (a peer's, or a local one whose backend
 * is gone).  counted: its rows are in the block already (see give_turn).
 */
static void
run_tx(ApplyRun *r, const ll_batch *b, ll_batch_iter *it, const ll_tx *tx,
	   int pos, bool counted, bool blind, int redact_above,
	   const char *why)
{
	ll_batch_iter rows = *it;
	int			tier = tx_tier(rows);
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	BlockRows	scratch;
	BlockRows  *volatile br = counted ? &scratch : r->br;
	volatile size_t mark = br->packed.len;
	volatile int nrows = br->nrows;
	LLApply    *volatile a = r->a;

	if (counted)
	{
		memset(&scratch, 0, sizeof(scratch));
		ll_buf_init(&scratch.packed, ll_palloc_realloc);
	}
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		pg_atomic_fetch_add_u64(&a->slot->applying, 1);
		insert_tx_rows(a, it, br, true, redact_above);
		/*
		 * A change committed since the check before the rows (ALTER TYPE
		 * ... ADD VALUE and ALTER DOMAIN take no lock on the table) may
		 * have judged them: look again, with every invalidation taken in.
		 */
		AcceptInvalidationMessages();
		tables_as_agreed(a, rows, redact_above, NULL);
		pg_atomic_write_u64(&a->slot->applying, 0);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
		log_tx(&r->log, b->origin, tx->txid, pos, tier, "accepted",
			   why ? psprintf("content above tier %d refused here and kept as commitments: %s",
							  redact_above, why) : NULL);
		if (!counted)
			br->ntx++;
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		pg_atomic_write_u64(&a->slot->applying, 0);
		MemoryContextSwitchTo(old);
		ed = CopyErrorData();
		if (counted || !decided_outcome(ed))
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
		tables_as_agreed(a, rows, redact_above, ed->message);
		br->packed.len = mark;
		br->nrows = nrows;
		if (blind)
		{
			/*
			 * Members without clearance judged only the rows they see: do
			 * the same - those rows decide, the others stay commitments.
			 */
			run_tx(r, b, &rows, tx, pos, false, false, a->min_clearance, ed->message);
		}
		else
			log_tx(&r->log, b->origin, tx->txid, pos, tier, "rejected", ed->message);
	}
	PG_END_TRY();
}

static void
wait_async(LLTxWait *w, int procno, uint32 word)
{
	PGPROC	   *proc = &ProcGlobal->allProcs[procno];
	int			pid = w->pid;

	while (proc->pid == pid && pg_atomic_read_u32(&w->state) == word)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * True the first time a transaction is met in this block.  A transaction
 * may sit in two batches (its backend resubmits after a worker restart);
 * only its first place in the order counts, as for repeats across blocks.
 */
static bool
first_in_block(ApplyRun *r, const uint8 *origin, uint64 txid)
{
	uint8		key[40];
	bool		found;

	if (r->in_block == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(key);
		ctl.hcxt = CurrentMemoryContext;
		r->in_block = hash_create("loopledger block txs", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memcpy(key, origin, 32);
	memcpy(key + 32, &txid, 8);
	(void) hash_search(r->in_block, key, HASH_ENTER, &found);
	return !found;
}

/*
 * A transaction with a row some member may not see is judged without its
 * content: those members cannot tell whether the row would fail a check,
 * so it is accepted everywhere (ledger.enable_table and the INSERT path
 * keep honest members from writing such rows that a check could refuse).
 */
static bool
tx_is_blind(const LLApply *a, const ll_batch_iter *it)
{
	ll_batch_iter probe = *it;
	ll_row		row;

	while (ll_batch_next_row(&probe, &row))
		if ((int) row.tier_index > a->min_clearance)
			return true;
	return false;
}

/*
 * The INSERT path keeps rows some member cannot see out of tables with a
 * unique key (capture.c); a transaction ordered anyway (a lying origin, or
 * inserted before a member with lower clearance was admitted) is refused
 * here, on every node alike: nobody could judge it the same way.
 */
static const char *
unjudgeable(const LLApply *a, const ll_batch_iter *it)
{
	ll_batch_iter probe = *it;
	ll_row		row;

	while (ll_batch_next_row(&probe, &row))
	{
		/* looked at outside the transaction's subtransaction: not an error */
		if (!table_name_possible(row.table.ptr, row.table.len))
			return "It has a row naming a table no member can have.";
		if (!ll_tabledef_agreed(a, row.table.ptr, row.table.len, NULL))
			return psprintf("Its ledger table \"%.*s\" has no definition agreed on the channel.",
							(int) row.table.len, row.table.ptr);
		if ((int) row.tier_index > a->min_clearance && !table_for(a, row.table)->order_free)
			return "It has a row above the lowest clearance among the members in a table with a unique key.";
	}
	return NULL;
}

static void
apply_rows_tx(ApplyRun *r, const ll_batch *b, ll_batch_iter *it, const ll_tx *tx, int pos)
{
	char		seen;
	LLTxWait   *w = NULL;
	int			procno = -1;
	uint32		word = 0;
	int			cap;

	if (!first_in_block(r, b->origin, tx->txid))
		return;

	/*
	 * The waiter before ledger.txlog: a backend committing without waiting
	 * that finishes between the two looks is then found committed ('p'),
	 * where the other order missed it both times and inserted its rows
	 * again from the batch.
	 */
	if (memcmp(b->origin, r->a->self, 32) == 0)
		w = local_waiter(r->a, tx->txid, &procno, &word);
	if (w != NULL && LL_TX_STATE(word) == LL_TX_ASYNC)
	{
		wait_async(w, procno, word);
		w = NULL;
	}
	seen = tx_seen(r->a, b->origin, tx->txid, r->height);
	/*
	 * A peer's rows above this node's clearance stay commitments even when
	 * their content came along: sent before the senders applied a lowering,
	 * or by a member that has not applied it yet.  Its own rows it keeps,
	 * whatever their tier: its roles wrote them.  Rows every member sees it
	 * keeps too, to judge them as the members do (a node following before
	 * it is admitted has no clearance yet).
	 */
	cap = memcmp(b->origin, r->a->self, 32) == 0 ? INT_MAX :
		Max(r->a->self_clearance, r->a->min_clearance);

	if (seen == 'a')
	{
		/* replay after a crash: the rows are there, chain them again */
		insert_tx_rows(r->a, it, r->br, false, cap);
		r->br->ntx++;
		if (memcmp(b->origin, r->a->self, 32) == 0)
			adopt_committed(r, tx->txid);
		return;
	}
	if (seen == 'd')
	{
		/*
		 * Skipped everywhere alike.  A backend that still waits with this
		 * key is not the transaction ordered before (that one was told, or
		 * its backend is gone): it would wait for ever.
		 */
		reject_local(w, word, psprintf("Its transaction key " UINT64_FORMAT " was ordered before, for another transaction of this node, and is skipped on every member.",
									   tx->txid));
		return;
	}
	if (seen == 'p')
	{
		settle_pending(r->a, r->height, b->origin, tx->txid, pos);
		insert_tx_rows(r->a, it, r->br, false, INT_MAX);
		r->br->ntx++;
		return;
	}
	{
		const char *why = unjudgeable(r->a, it);

		if (why != NULL)
		{
			log_tx(&r->log, b->origin, tx->txid, pos, tx_tier(*it), "rejected", why);
			reject_local(w, word, why);
			return;
		}
	}
	tables_as_agreed(r->a, *it, cap, NULL);
	if (w != NULL && give_turn(r, w, word, procno, b, it, tx, pos))
		return;
	/* a peer's, or a local one whose backend gave up: from the batch */
	drain_handed(r);
	run_tx(r, b, it, tx, pos, false, tx_is_blind(r->a, it), cap, NULL);
}

/* Tell committed local backends their block is in (after our commit). */
static void
finish_local(LLApply *a, uint64 height)
{
	int			i;

	for (i = 0; i < ll_cons->nwaits; i++)
	{
		LLTxWait   *w = &ll_cons->waits[i];
		uint32		word = pg_atomic_read_u32(&w->state);

		if (LL_TX_STATE(word) == LL_TX_SEEN && w->channel_id == a->channel_id &&
			w->height == (int64) height && ll_tx_swap(w, word, LL_TX_FINAL))
			SetLatch(&ProcGlobal->allProcs[i].procLatch);
	}
}

/*
 * Batches kept for a height no member could apply (keep_batches) whose
 * block was then decided again without them: they were never decided, and
 * left under that height they would look decided to screen_decided
 * (consensus.c), which would refuse them here alone.
 */
static void
drop_kept_leftovers(const LLApply *a, uint64 height, const ll_batch *batches, int nbatches)
{
	Datum	   *hashes = palloc(sizeof(Datum) * Max(nbatches, 1));
	int			i;

	for (i = 0; i < nbatches; i++)
		hashes[i] = PointerGetDatum(ll_bytea(batches[i].batch_hash, 32));
	SPI_execute_with_args("DELETE FROM ledger.batch WHERE channel_id = $1 AND height = $2 "
						  "AND batch_hash <> ALL ($3)", 3,
						  (Oid[]) {INT4OID, INT8OID, BYTEAARRAYOID},
						  (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum((int64) height),
							  PointerGetDatum(construct_array(hashes, nbatches, BYTEAOID, -1, false, TYPALIGN_INT))},
						  NULL, false, 0);
}

static void
store_batches(const LLApply *a, uint64 height, const ll_batch *batches, int nbatches)
{
	static SPIPlanPtr batch_plan = NULL;
	Datum	   *hashes;
	Datum	   *bodies;
	ArrayType  *harr;
	ArrayType  *barr;
	int			i;

	if (batch_plan == NULL)
		batch_plan = ll_keep_plan("INSERT INTO ledger.batch (channel_id, batch_hash, height, body) "
								  "SELECT $1, h, $3, b FROM unnest($2::bytea[], $4::bytea[]) AS u(h, b) "
								  "ON CONFLICT DO NOTHING", 4,
								  (Oid[]) {INT4OID, BYTEAARRAYOID, INT8OID, BYTEAARRAYOID});
	/*
	 * One statement for a block's batches (executor start-up is most of
	 * what a row costs here), in chunks of at most 64 MB: a block of large
	 * batches must not need a gigabyte array.
	 */
	hashes = palloc(sizeof(Datum) * Max(nbatches, 1));
	bodies = palloc(sizeof(Datum) * Max(nbatches, 1));
	for (i = 0; i < nbatches;)
	{
		int			n = 0;
		Size		bytes = 0;

		while (i < nbatches && (n == 0 || bytes + batches[i].len <= 64 * 1024 * 1024))
		{
			hashes[n] = PointerGetDatum(ll_bytea(batches[i].batch_hash, 32));
			bodies[n] = PointerGetDatum(ll_bytea(batches[i].bytes, batches[i].len));
			bytes += batches[i].len;
			n++;
			i++;
		}
		harr = construct_array(hashes, n, BYTEAOID, -1, false, TYPALIGN_INT);
		barr = construct_array(bodies, n, BYTEAOID, -1, false, TYPALIGN_INT);
		if (SPI_execute_plan(batch_plan,
							 (Datum[]) {Int32GetDatum(a->channel_id), PointerGetDatum(harr),
							 Int64GetDatum((int64) height), PointerGetDatum(barr)},
							 NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store the batches of decided height " UINT64_FORMAT, height);
		pfree(harr);
		pfree(barr);
		while (n > 0)
		{
			n--;
			pfree(DatumGetPointer(hashes[n]));
			pfree(DatumGetPointer(bodies[n]));
		}
	}
	if (height <= a->kept_until)
		drop_kept_leftovers(a, height, batches, nbatches);
}

static void
store_decision(LLApply *a, uint64 height, const uint8 *decision, size_t dlen,
			   ll_batch *batches, int nbatches, bool made_block)
{
	static SPIPlanPtr log_plan = NULL;

	if (log_plan == NULL)
		log_plan = ll_keep_plan("INSERT INTO ledger.consensus_log (channel_id, height, decision, ledger_height) "
								"VALUES ($1, $2, $3, $4)", 4,
								(Oid[]) {INT4OID, INT8OID, BYTEAOID, INT8OID});
	store_batches(a, height, batches, nbatches);
	if (SPI_execute_plan(log_plan,
						 (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum((int64) height),
							 PointerGetDatum(ll_bytea(decision, dlen)),
						 Int64GetDatum(a->ledger_height)},
						 made_block ? "    " : "   n", false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store decided height " UINT64_FORMAT, height);
}

static void check_checkpoint(const LLApply *a);

static void
apply_block(LLApply *a, uint64 height, int64 time_us,
			const uint8 *decision, size_t dlen,
			ll_batch *batches, int nbatches)
{
	BlockRows	br;
	ApplyRun	r;
	int			pos = 0;
	int			i;
	bool		made_block = false;

	memset(&br, 0, sizeof(br));
	ll_buf_init(&br.packed, ll_palloc_realloc);
	ll_buf_grow(&br.packed, 256 * LL_PACKED_ENTRY_SIZE);
	memset(&r, 0, sizeof(r));
	r.a = a;
	r.height = height;
	r.br = &br;
	a->local_done = 0;
	for (i = 0; i < nbatches; i++)
	{
		ll_batch_iter it;
		ll_tx		tx;

		ll_batch_iter_init(&it, &batches[i]);
		while (ll_batch_next_tx(&it, &tx))
		{
			pos++;
			if (tx.kind == LL_TX_ROWS)
				apply_rows_tx(&r, &batches[i], &it, &tx, pos);
			else if (tx.kind == LL_TX_DECLARE_TABLE)
				ll_tabledef_vote(a, height, batches[i].origin, &tx);
			else if (first_in_block(&r, batches[i].origin, tx.txid) &&
					 tx_seen(a, batches[i].origin, tx.txid, height) == 0)
				log_tx(&r.log, batches[i].origin, tx.txid, pos, -1, "accepted", NULL);
		}
	}
	drain_handed(&r);
	ll_tabledef_settle(a, height);
#ifdef LL_FAULT_INJECTION
	if (a->local_done > 0)
		ll_fault_crash_point();
#endif
	flush_txlog(a, &r.log, height);
	if (br.nrows > 0)
	{
		ll_insert_block(a->channel_id, a->tiers, a->ntiers, br.packed.data, br.nrows, br.ntx,
						time_us, &a->ledger_height, a->ledger_head);
		check_checkpoint(a);
		made_block = true;
	}
	writers_close();
	store_decision(a, height, decision, dlen, batches, nbatches, made_block);
	if (a->on_members)
		a->on_members(NULL, height);
}

/*
 * A block this node's DBA learned out of band (ledger.trust_checkpoint)
 * must be the one just built at its height.  Certificates are checked
 * against the validators of their height, so 2f+1 keys of an old set,
 * retired and leaked, could certify another history for a node catching
 * up: it stops here instead (the whole block rolls back; the worker
 * retries until the checkpoint is dropped or the copy rebuilt).
 */
static void
check_checkpoint(const LLApply *a)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	bytea	   *want;
	char		have_hex[65],
				want_hex[65];

	if (plan == NULL)
		plan = ll_keep_plan("SELECT block_hash FROM ledger.checkpoint WHERE channel_id = $1 AND block_height = $2",
							2, (Oid[]) {INT4OID, INT8OID});
	if (SPI_execute_plan(plan, (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum(a->ledger_height)},
						 NULL, true, 1) != SPI_OK_SELECT || SPI_processed == 0)
		return;
	want = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!isnull && VARSIZE_ANY_EXHDR(want) == 32 && memcmp(VARDATA_ANY(want), a->ledger_head, 32) == 0)
		return;
	ll_hex_encode(a->ledger_head, 32, have_hex);
	if (!isnull && VARSIZE_ANY_EXHDR(want) == 32)
		ll_hex_encode((const uint8 *) VARDATA_ANY(want), 32, want_hex);
	else
		strlcpy(want_hex, "(not a block hash)", sizeof(want_hex));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("ledger block " INT64_FORMAT " of channel \"%s\" differs from the trusted checkpoint",
					a->ledger_height, a->channel),
			 errdetail("The block certified here has hash %s; the checkpoint says %s.", have_hex, want_hex),
			 errhint("The members that certified this history may hold keys of an old validator set. Check the checkpoint with a member's DBA; this node applies nothing past it until the row is removed from ledger.checkpoint or its copy is rebuilt from a member you trust.")));
}

/*
 * Settings the input functions of peers' values read: xml_in parses by
 * xmloption, and a document is also valid content, so content reads back
 * every value whatever postgresql.conf says.
 */
static void
fix_input_settings(void)
{
	static bool done = false;

	if (done)
		return;
	SetConfigOption("xmloption", "content", PGC_SUSET, PGC_S_OVERRIDE);
	done = true;
}

/* The apply worker's own transactions, with SPI and a snapshot. */
static void
xact_begin(void)
{
	fix_input_settings();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

static void
xact_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* In PG_CATCH: the error, copied to cxt, and the transaction rolled back. */
static ErrorData *
xact_abort(MemoryContext cxt)
{
	ErrorData  *ed;

	MemoryContextSwitchTo(cxt);
	ed = CopyErrorData();
	FlushErrorState();
	/* the error may come from inside run_tx's subtransaction */
	AbortOutOfAnyTransaction();
	ll_apply_reset();
	return ed;
}

/*
 * A block that could not be applied here (a table missing or different:
 * see stall) is retried by the restarted worker, which needs its batches
 * again.  Other members may have failed on the same block too, and peers
 * keep batches only in memory until they apply them: keep them in
 * ledger.batch now, in a transaction of their own, where the restarted
 * worker (load_kept_batches) and any peer (ledger.batches) find them.
 */
static void
keep_batches(LLApply *a, uint64 height, ll_batch *batches, int nbatches)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		xact_begin();
		store_batches(a, height, batches, nbatches);
		xact_commit();
	}
	PG_CATCH();
	{
		ErrorData  *ed = xact_abort(cxt);

		ereport(WARNING,
				(errmsg("could not keep the batches of decided height " UINT64_FORMAT " of channel \"%s\": %s",
						height, a->channel, ed->message)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * What stopped this node's copy, for ledger.consensus_status: the worker
 * restarts and fails again on the same block until its cause is fixed,
 * and the server log is not where every DBA looks first.
 */
static void
note_apply_error(LLApply *a, const char *message)
{
	LLConsSlot *s = a->slot;

	if (message == NULL && s->last_error[0] == '\0')
		return;
	SpinLockAcquire(&s->mutex);
	if (message == NULL)
		s->last_error[0] = '\0';
	else
	{
		strlcpy(s->last_error, message, sizeof(s->last_error));
		s->last_error_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&s->mutex);
}

void
ll_apply_decision(LLApply *a, uint64 height, int64 time_us,
				  const uint8 *decision, size_t dlen,
				  ll_batch *batches, int nbatches)
{
	MemoryContext cxt = CurrentMemoryContext;

	xact_begin();
	pgstat_report_activity(STATE_RUNNING, "applying a decided block");
	PG_TRY();
	{
		apply_block(a, height, time_us, decision, dlen, batches, nbatches);
	}
	PG_CATCH();
	{
		ErrorData  *ed = xact_abort(cxt);

		keep_batches(a, height, batches, nbatches);
		note_apply_error(a, ed->message);
		ReThrowError(ed);
	}
	PG_END_TRY();
	xact_commit();
	pgstat_report_activity(STATE_IDLE, NULL);
	note_apply_error(a, NULL);
	finish_local(a, height);
}

/* Index of the redacted entry a disclosed row fills in, or -1. */
static int
redacted_slot(const uint8 *entries, int n, const ll_row *r)
{
	int			j;

	for (j = 0; j < n; j++)
	{
		LLPackedEntry pe;

		ll_unpack_entry(entries + (Size) j * LL_PACKED_ENTRY_SIZE, &pe);
		if (pe.entry_id == r->entry_id && (pe.flags & LL_ENTRY_REDACTED) &&
			memcmp(pe.commitment, r->commitment, LL_HASH_LEN) == 0)
			return j;
	}
	return -1;
}

/*
 * Insert one disclosed row in a subtransaction of its own: a row the
 * table refuses (the members without content judged its transaction
 * blind) stays a commitment without costing the block's other rows.
 */
static bool
disclose_row(LLApply *a, const ll_entry_view *e)
{
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		insert_row(e, writer_for(a, e));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(old);
		ed = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errmsg("entry " UINT64_FORMAT " of channel \"%s\" stays a commitment here: %s",
						e->entry_id, a->channel, ed->message)));
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	CurrentResourceOwner = owner;
	/* writers opened inside the subtransaction went with it */
	if (!ok)
		writers_close();
	return ok;
}

/* Entries of the block still redacted at or below this node's clearance. */
static int
still_hidden(const LLApply *a, const uint8 *entries, int n)
{
	int			j,
				left = 0;

	for (j = 0; j < n; j++)
	{
		LLPackedEntry pe;

		ll_unpack_entry(entries + (Size) j * LL_PACKED_ENTRY_SIZE, &pe);
		if ((pe.flags & LL_ENTRY_REDACTED) && (int) pe.tier <= a->self_clearance)
			left++;
	}
	return left;
}

/*
 * Returns the entries that stay hidden although this node may see them
 * (the copies lacked them, or their table refused them).
 */
static int
disclose_block(LLApply *a, uint64 height, ll_batch *batches, const bool *signed_ok,
			   int nbatches)
{
	bool		isnull;
	bytea	   *stored;
	uint8	   *entries;
	int64		ledger_height;
	int			n,
				i,
				filled = 0;

	SPI_execute_with_args("SELECT b.entries, b.height FROM ledger.consensus_log l "
						  "JOIN ledger.block b ON b.channel_id = l.channel_id AND b.height = l.ledger_height "
						  "WHERE l.channel_id = $1 AND l.height = $2", 2,
						  (Oid[]) {INT4OID, INT8OID},
						  (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum((int64) height)},
						  NULL, false, 1);
	if (SPI_processed != 1)
		return 0;
	stored = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ledger_height = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	n = VARSIZE_ANY_EXHDR(stored) / LL_PACKED_ENTRY_SIZE;
	entries = palloc((Size) n * LL_PACKED_ENTRY_SIZE);
	memcpy(entries, VARDATA_ANY(stored), (Size) n * LL_PACKED_ENTRY_SIZE);
	for (i = 0; i < nbatches; i++)
	{
		ll_batch_iter it;
		ll_tx		tx;
		ll_row		r;

		int			filled_here = 0;

		ll_batch_iter_init(&it, &batches[i]);
		while (ll_batch_next_tx(&it, &tx))
			while (tx.kind == LL_TX_ROWS && ll_batch_next_row(&it, &r))
			{
				ll_entry_view e;
				LLPackedEntry pe;
				int			j;

				/*
				 * The tier is the one this node recorded with the
				 * commitment, not the copy's word (the content is bound to
				 * the commitment, the copy's tier index is not).
				 */
				if (r.content == NULL || (j = redacted_slot(entries, n, &r)) < 0)
					continue;
				ll_unpack_entry(entries + (Size) j * LL_PACKED_ENTRY_SIZE, &pe);
				if ((int) pe.tier > a->self_clearance || pe.tier >= a->ntiers ||
					!ll_entry_decode(r.content, r.content_len, &e) ||
					strlen(a->tiers[pe.tier]) != e.tier_len ||
					memcmp(a->tiers[pe.tier], e.tier, e.tier_len) != 0 ||
					!disclose_row(a, &e))
					continue;
				pe.flags &= ~LL_ENTRY_REDACTED;
				memcpy(pe.salt, e.salt, LL_SALT_LEN);
				ll_pack_entry(&pe, entries + (Size) j * LL_PACKED_ENTRY_SIZE);
				filled_here++;
			}
		filled += filled_here;

		/*
		 * The fuller copy replaces the stored one (which this node serves)
		 * only if it gave rows, is signed by its origin, and belongs to
		 * this height: a member's answer may name any batch it knows.
		 */
		if (filled_here > 0 && signed_ok[i])
			SPI_execute_with_args("UPDATE ledger.batch SET body = $3 "
								  "WHERE channel_id = $1 AND batch_hash = $2 AND height = $4",
								  4, (Oid[]) {INT4OID, BYTEAOID, BYTEAOID, INT8OID},
								  (Datum[]) {Int32GetDatum(a->channel_id),
									  PointerGetDatum(ll_bytea(batches[i].batch_hash, 32)),
									  PointerGetDatum(ll_bytea(batches[i].bytes, batches[i].len)),
								  Int64GetDatum((int64) height)},
								  NULL, false, 0);
	}
	if (filled > 0)
		SPI_execute_with_args("UPDATE ledger.block SET entries = $3 WHERE channel_id = $1 AND height = $2",
							  3, (Oid[]) {INT4OID, INT8OID, BYTEAOID},
							  (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum(ledger_height),
							  PointerGetDatum(ll_bytea(entries, (Size) n * LL_PACKED_ENTRY_SIZE))},
							  NULL, false, 0);
	return still_hidden(a, entries, n);
}

/*
 * Fill in entries this node held only as commitments from fuller copies
 * of the batches of one decided block, after its clearance was raised.
 * Only entries of this block whose commitment the content matches are
 * filled (the copies were checked against their signatures and hashes);
 * the block's header and Merkle root do not change.  Returns the number
 * of entries that stay hidden although this node may see them, -1 if the
 * block could not be read or written (with a warning).
 */
int
ll_apply_disclosed(LLApply *a, uint64 height, ll_batch *batches, const bool *signed_ok,
				   int nbatches)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile int left = 0;

	xact_begin();
	PG_TRY();
	{
		left = disclose_block(a, height, batches, signed_ok, nbatches);
		writers_close();
	}
	PG_CATCH();
	{
		ErrorData  *ed = xact_abort(cxt);

		ereport(WARNING,
				(errmsg("could not fill in the rows of decided height " UINT64_FORMAT " of channel \"%s\" this node may now see: %s",
						height, a->channel, ed->message)));
		return -1;
	}
	PG_END_TRY();
	xact_commit();
	MemoryContextSwitchTo(cxt);
	return left;
}
