/*
 * capture.c
 *		Hash rows as they are inserted and hand them to the sealing worker.
 *
 * An AFTER INSERT row trigger computes each row's commitment and keeps it
 * in backend memory, so nothing extra is written per row.  Just before the
 * transaction commits, the rows of each channel are written as one
 * ledger.pending record inside the same transaction: rolled-back
 * transactions (and rolled-back subtransactions) leave nothing, committed
 * ones are durable even if the worker is down.  With
 * loopledger.synchronous_commit on, COMMIT then waits until the worker has
 * sealed a block that contains them.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "replication/syncrep.h"
#include "storage/ipc.h"
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "executor/spi.h"
#include "executor/tuptable.h"

#include "chain.h"
#include "consensus.h"
#include "loopledger.h"

PG_FUNCTION_INFO_V1(ll_capture);
PG_FUNCTION_INFO_V1(ll_refuse_change);
PG_FUNCTION_INFO_V1(ll_refuse_catalog_change);
PG_FUNCTION_INFO_V1(ll_wait_sealed);


/* Rows captured by the current transaction, in insertion order. */
typedef struct CapturedRows
{
	int			n;
	int			cap;
	int32	   *channel;		/* channel id of each row */
	uint8	   *packed;			/* LL_PACKED_ENTRY_SIZE bytes per row */
	int		   *sub_marks;		/* row count at each open subtransaction */
	/*
	 * Rows of multi-peer channels also keep their canonical entry.  Whether
	 * the transaction has such rows, or rows the order could refuse, is
	 * read from the rows themselves at commit: a rolled-back savepoint
	 * takes its rows away.
	 */
	bool	   *multi;
	bool	   *rejectable;		/* a multi-peer row the order could refuse */
	ll_buf		content;
	Size	   *content_off;	/* offset of each row's entry in content */
	int			nsub;
	int			subcap;
} CapturedRows;

static CapturedRows rows;
static MemoryContext capture_cxt = NULL;
static MemoryContext row_cxt = NULL;
static uint64 flushed_rows = 0;		/* rows written to ledger.pending */
static bool commit_made_async = false;
/* set at commit, for release_callback: the post-commit waits are due */
static bool waits_after_locks = false;
static bool warned_no_worker = false;

/* Salts are drawn from a pool refilled in bulk: one RNG call per 256 rows. */
#define SALT_POOL_SIZE (LL_SALT_LEN * 256)
static uint8 salt_pool[SALT_POOL_SIZE];
static int	salt_used = SALT_POOL_SIZE;

static void
next_salt(uint8 *salt)
{
	if (salt_used + LL_SALT_LEN > SALT_POOL_SIZE)
	{
		if (!pg_strong_random(salt_pool, SALT_POOL_SIZE))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random salt")));
		salt_used = 0;
	}
	memcpy(salt, salt_pool + salt_used, LL_SALT_LEN);
	/* never hand out the same bytes twice */
	memset(salt_pool + salt_used, 0, LL_SALT_LEN);
	salt_used += LL_SALT_LEN;
}

/*
 * Make sure the capture buffers exist; they live in TopMemoryContext and
 * are emptied, not freed, at the end of each transaction.
 */
static void
capture_init(void)
{
	if (capture_cxt != NULL)
		return;
	capture_cxt = AllocSetContextCreate(TopMemoryContext, "loopledger capture",
										ALLOCSET_DEFAULT_SIZES);
	row_cxt = AllocSetContextCreate(TopMemoryContext, "loopledger row",
									ALLOCSET_DEFAULT_SIZES);
}

static void
rows_reserve(int more)
{
	int			newcap;

	if (rows.n + more <= rows.cap)
		return;
	newcap = Max(64, rows.cap * 2);
	while (newcap < rows.n + more)
		newcap *= 2;
	if (rows.cap == 0)
	{
		rows.multi = MemoryContextAlloc(capture_cxt, sizeof(bool) * newcap);
		rows.rejectable = MemoryContextAlloc(capture_cxt, sizeof(bool) * newcap);
		rows.content_off = MemoryContextAlloc(capture_cxt, sizeof(Size) * newcap);
		rows.channel = MemoryContextAlloc(capture_cxt, sizeof(int32) * newcap);
		rows.packed = MemoryContextAllocHuge(capture_cxt,
											 (Size) LL_PACKED_ENTRY_SIZE * newcap);
	}
	else
	{
		rows.multi = repalloc(rows.multi, sizeof(bool) * newcap);
		rows.rejectable = repalloc(rows.rejectable, sizeof(bool) * newcap);
		rows.content_off = repalloc(rows.content_off, sizeof(Size) * newcap);
		rows.channel = repalloc(rows.channel, sizeof(int32) * newcap);
		rows.packed = repalloc_huge(rows.packed, (Size) LL_PACKED_ENTRY_SIZE * newcap);
	}
	rows.cap = newcap;
}

static void
rows_clear(void)
{
	MemoryContextReset(capture_cxt);
	memset(&rows, 0, sizeof(rows));
}


/*
 * Hash one inserted tuple of a ledger table and remember it for the commit.
 */
void
ll_capture_tuple(LLTableInfo *info, HeapTuple tuple)
{
	ll_deform(info, tuple);
	ll_capture_values(info, info->values, info->isnull);
}

/*
 * A member without clearance for a row cannot check its unique keys, so
 * on such tables a row may only be at a tier every member sees: otherwise
 * members could judge the same transaction differently.
 */
static void
refuse_unjudgeable(LLTableInfo *info, int tier)
{
	int			min = ll_channel_min_clearance(info->channel_id, info->tiers, info->ntiers);

	if (tier <= min)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("ledger table \"%s\" has a unique key, so its rows must be at a tier every member of channel \"%s\" is cleared for",
					info->table_name, info->channel_name),
			 errdetail("The row's tier is \"%s\"; the lowest clearance among the members is %s.",
					   info->tiers[tier], min >= 0 ? psprintf("\"%s\"", info->tiers[min]) : "none"),
			 errhint("Members without clearance hold only a commitment of the row and cannot check its keys: use a lower tier, or keep such rows in a table whose only unique key is ledger_entry.")));
}

/*
 * Same, for a row already split into values (info->values may be the
 * caller's array).
 */
void
ll_capture_values(LLTableInfo *info, Datum *values, bool *isnull)
{
	LLPackedEntry e;
	MemoryContext old;
	static ll_buf buf;
	static bool buf_ready = false;

	capture_init();
	if (!buf_ready)
	{
		/* allocated once in a long-lived context; repalloc keeps it there */
		old = MemoryContextSwitchTo(TopMemoryContext);
		ll_buf_init(&buf, ll_palloc_realloc);
		ll_buf_put_u8(&buf, 0);
		MemoryContextSwitchTo(old);
		buf_ready = true;
	}
	ll_buf_reset(&buf);
	memset(&e, 0, sizeof(e));
	old = MemoryContextSwitchTo(row_cxt);
	if (values != info->values)
	{
		memcpy(info->values, values, sizeof(Datum) * info->tupdesc->natts);
		memcpy(info->isnull, isnull, sizeof(bool) * info->tupdesc->natts);
	}
	if (!ll_deformed_entry(info, &e.entry_id))
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("column \"%s\" of ledger table \"%s\" must not be null",
						LL_ENTRY_COLUMN, info->table_name),
				 errhint("Leave the column out of INSERT so the ledger numbers the row.")));
	/*
	 * The sequence starts at 1: a number below that came from a path the
	 * INSERT check cannot see (a rule's action, a function body), and one
	 * above 2^63 - 1 would turn a block's largest entry negative.
	 */
	if ((int64) e.entry_id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("entry number %lld of ledger table \"%s\" is out of range",
						(long long) (int64) e.entry_id, info->table_name),
				 errdetail("Entry numbers come from the ledger's sequence and are positive."),
				 errhint("Leave the column out of INSERT so the ledger numbers the row.")));
	e.table_no = (uint32) info->table_no;
	e.tier = (uint8) ll_deformed_tier(info, false);
	next_salt(e.salt);
	ll_encode_deformed(info, e.entry_id, e.tier, e.salt, &buf);
	if (!ll_leaf_hash(buf.data, buf.len, e.commitment))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256 with OpenSSL")));
	MemoryContextSwitchTo(old);

	rows_reserve(1);
	rows.multi[rows.n] = ll_channel_is_multi_peer(info->channel_id, info->channel_name);
	rows.rejectable[rows.n] = false;
	if (rows.multi[rows.n] && IsolationIsSerializable())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write rows of multi-peer ledger channel \"%s\" in a serializable transaction",
						info->channel_name),
				 errdetail("The channel's agreed order decides such a transaction; a serialization failure found after its turn would report an error for rows every member has applied."),
				 errhint("Use READ COMMITTED or REPEATABLE READ for transactions that write to multi-peer ledger tables.")));
	if (rows.multi[rows.n])
	{
		if (rows.content.realloc_fn == NULL)
		{
			old = MemoryContextSwitchTo(capture_cxt);
			ll_buf_init(&rows.content, ll_palloc_realloc);
			ll_buf_grow(&rows.content, 4096);
			MemoryContextSwitchTo(old);
		}
		rows.content_off[rows.n] = rows.content.len;
		if (!info->order_free)
		{
			rows.rejectable[rows.n] = true;
			refuse_unjudgeable(info, e.tier);
		}
		ll_tabledef_check_insert(info);
		ll_buf_put_u32(&rows.content, (uint32) buf.len);
		ll_buf_put(&rows.content, buf.data, buf.len);
	}
	MemoryContextReset(row_cxt);
	rows.channel[rows.n] = info->channel_id;
	ll_pack_entry(&e, rows.packed + (Size) rows.n * LL_PACKED_ENTRY_SIZE);
	rows.n++;
}

/*
 * Whether the trigger's arguments are those ledger.enable_table() recorded
 * for this table.  Anyone may create a trigger on a table of their own
 * calling ledger.capture(): unchecked, its arguments put rows of that
 * table into any channel's chain under any ledger table's name.
 */
static void
check_registered(Relation rel, LLTableInfo *info, char **args)
{
	LLAsOwner	own;
	bool		ok;

	ll_as_owner_begin(&own);
	SPI_connect();
	SPI_execute_with_args("SELECT 1 FROM ledger.ledger_table WHERE relid = $1 AND channel_id = $2 "
						  "AND table_no = $3 AND table_name = $4 "
						  "AND coalesce(tier_column::text, '') = $5", 5,
						  (Oid[]) {OIDOID, INT4OID, INT4OID, TEXTOID, TEXTOID},
						  (Datum[]) {ObjectIdGetDatum(RelationGetRelid(rel)),
							  Int32GetDatum(info->channel_id), Int32GetDatum(info->table_no),
							  CStringGetTextDatum(args[3]), CStringGetTextDatum(args[4])},
						  NULL, true, 1);
	ok = SPI_processed == 1;
	SPI_finish();
	ll_as_owner_end(&own);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("table \"%s\" is not ledger table \"%s\" of channel \"%s\"",
						RelationGetRelationName(rel), args[3], args[0]),
				 errdetail("Its trigger calls ledger.capture() with arguments that ledger.enable_table() did not record for it."),
				 errhint("Use ledger.enable_table() to make a table a ledger table.")));
	info->registered = true;
}

/*
 * AFTER INSERT trigger of every ledger table.  Installed FOR EACH STATEMENT
 * with a transition table, so COPY keeps its multi-row inserts and each row
 * costs one tuplestore read instead of a trigger call; the row-level form
 * is accepted too.  Arguments: channel name, channel id, table number,
 * hashed table name, tier column.
 */
Datum
ll_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	char	  **args;
	LLTableInfo *info;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_trigger->tgnargs != 5 ||
		(!TRIGGER_FIRED_FOR_ROW(td->tg_event) && td->tg_newtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.capture() must be installed by ledger.enable_table()")));
	args = td->tg_trigger->tgargs;
	info = ll_table_info_for(td->tg_relation, pg_strtoint32(args[1]),
							 pg_strtoint32(args[2]), args[0], args[3],
							 args[4][0] ? args[4] : NULL);
	if (!info->registered)
		check_registered(td->tg_relation, info, args);
	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
		ll_capture_tuple(info, td->tg_trigtuple);
	else
	{
		TupleTableSlot *slot = MakeSingleTupleTableSlot(info->tupdesc,
														&TTSOpsMinimalTuple);

		while (tuplestore_gettupleslot(td->tg_newtable, true, false, slot))
		{
			slot_getallattrs(slot);
			ll_capture_values(info, slot->tts_values, slot->tts_isnull);
		}
		ExecDropSingleTupleTableSlot(slot);
	}
	return PointerGetDatum(NULL);
}

/*
 * BEFORE UPDATE/DELETE/TRUNCATE statement trigger: ledger tables only grow.
 */
Datum
ll_refuse_change(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *what;
	const char *channel = "?";
	const char *table;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.refuse_change() must be called as a trigger")));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		what = "update";
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		what = "delete from";
	else
		what = "truncate";
	if (td->tg_trigger->tgnargs >= 1)
		channel = td->tg_trigger->tgargs[0];
	table = RelationGetRelationName(td->tg_relation);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s ledger table \"%s\"", what, table),
			 errdetail("Table \"%s\" belongs to ledger channel \"%s\"; its rows are append-only.",
					   table, channel),
			 errhint("Insert a correcting row instead.")));
	return PointerGetDatum(NULL);
}

/*
 * BEFORE UPDATE/DELETE/TRUNCATE trigger of the extension's own catalogs.
 */
Datum
ll_refuse_catalog_change(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.refuse_catalog_change() must be called as a trigger")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot modify ledger catalog \"ledger.%s\"",
					RelationGetRelationName(td->tg_relation)),
			 errdetail("Sealed blocks, channels and ledger tables are append-only.")));
	return PointerGetDatum(NULL);
}

/*
 * Write one ledger.pending record holding rows [from, to) of one channel.
 * Written directly into the heap so the caller needs no privilege on the
 * extension's catalog.
 */
static void
write_pending(Relation rel, int32 channel_id, const int *idx, int n)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, true};
	bytea	   *payload;
	HeapTuple	tup;
	int			i;

	payload = palloc_extended(VARHDRSZ + (Size) n * LL_PACKED_ENTRY_SIZE,
							  MCXT_ALLOC_HUGE);
	SET_VARSIZE(payload, VARHDRSZ + n * LL_PACKED_ENTRY_SIZE);
	for (i = 0; i < n; i++)
		memcpy(VARDATA(payload) + (Size) i * LL_PACKED_ENTRY_SIZE,
			   rows.packed + (Size) idx[i] * LL_PACKED_ENTRY_SIZE,
			   LL_PACKED_ENTRY_SIZE);
	values[0] = Int32GetDatum(channel_id);
	values[1] = PointerGetDatum(payload);
	values[2] = (Datum) 0;
	tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	simple_heap_insert(rel, tup);
	heap_freetuple(tup);
	pfree(payload);
}

/*
 * Flush captured rows to ledger.pending, one record per channel (split in
 * chunks so no single bytea grows huge).
 */
static void
flush_captured(void)
{
	Relation	rel;
	int		   *idx;
	bool	   *done;
	int			i,
				j;

	rel = table_open(ll_catalog_relid("pending"), RowExclusiveLock);
	idx = palloc(sizeof(int) * rows.n);
	done = palloc0(sizeof(bool) * rows.n);
	for (i = 0; i < rows.n; i++)
	{
		int			n = 0;

		if (done[i] || rows.multi[i])
			continue;
		for (j = i; j < rows.n; j++)
		{
			if (done[j] || rows.multi[j] || rows.channel[j] != rows.channel[i])
				continue;
			done[j] = true;
			idx[n++] = j;
			if (n == LL_PENDING_CHUNK)
			{
				write_pending(rel, rows.channel[i], idx, n);
				n = 0;
			}
		}
		if (n > 0)
			write_pending(rel, rows.channel[i], idx, n);
	}
	table_close(rel, RowExclusiveLock);
	pfree(idx);
	pfree(done);
	flushed_rows = 0;
	for (i = 0; i < rows.n; i++)
		flushed_rows += rows.multi[i] ? 0 : 1;
}

/*
 * With loopledger.synchronous_commit, the block's own commit will flush the
 * WAL past this transaction's commit record, so this commit need not wait
 * for its own flush: one WAL flush per block instead of two per commit.
 * Only done when nothing else (synchronous standbys) relies on the wait.
 */
static void
maybe_defer_local_flush(void)
{
	commit_made_async = false;
	if (!ll_synchronous_commit || !ll_worker_serves_my_db())
		return;
	if (synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
		return;
	if (SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0')
		return;
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	commit_made_async = true;
}

/*
 * Wait until a seal numbered above "after" has committed.  Interrupts are
 * held during COMMIT, so cancel and termination are checked by hand, as
 * synchronous replication does: the transaction is already committed, so
 * giving up only means the caller is not told its block is sealed.
 */
static bool
seal_wait_loop(uint64 after, int timeout_ms, bool in_commit)
{
	TimestampTz start = GetCurrentTimestamp();
	bool		sealed = false;

	ConditionVariablePrepareToSleep(&ll_shared->sealed_cv);
	for (;;)
	{
		if (pg_atomic_read_u64(&ll_shared->seal_done) > after)
		{
			sealed = true;
			break;
		}
		if (pg_atomic_read_u64(&ll_shared->seal_failed) > after)
		{
			ereport(WARNING,
					(errmsg("the loopledger worker could not seal the block for this transaction"),
					 errdetail("The transaction has committed; it will be sealed on the next attempt."),
					 errhint("See the server log for the worker's error.")));
			break;
		}
		if (!ll_worker_serves_my_db())
		{
			ereport(WARNING,
					(errmsg("the loopledger worker stopped before sealing this transaction"),
					 errdetail("The transaction has committed; it will be sealed when the worker restarts.")));
			break;
		}
		if (in_commit && ProcDiePending)
		{
			ereport(WARNING,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("canceling the wait for the ledger block and terminating connection due to administrator command"),
					 errdetail("The transaction has already committed but may not be sealed yet.")));
			whereToSendOutput = DestNone;
			break;
		}
		if (in_commit && QueryCancelPending)
		{
			QueryCancelPending = false;
			ereport(WARNING,
					(errmsg("canceling the wait for the ledger block due to user request"),
					 errdetail("The transaction has already committed but may not be sealed yet.")));
			break;
		}
		if (!in_commit)
			CHECK_FOR_INTERRUPTS();
		if (timeout_ms >= 0 &&
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout_ms))
			break;
		ConditionVariableTimedSleep(&ll_shared->sealed_cv, 100,
									PG_WAIT_EXTENSION);
	}
	return sealed;
}

static void
stop_waiting(int code, Datum arg)
{
	ConditionVariableCancelSleep();
	pg_atomic_fetch_sub_u32(&ll_shared->waiters, 1);
}

/*
 * The sealer seals back to back while anyone waits: the count must come
 * down however the wait ends, a cancel or terminate included (it once
 * stayed up after a cancelled ledger.wait_sealed(), and the sealer spun
 * until the server restarted).
 */
static bool
wait_for_seal(uint64 after, int timeout_ms, bool in_commit)
{
	volatile bool sealed = false;

	pg_atomic_fetch_add_u32(&ll_shared->waiters, 1);
	PG_ENSURE_ERROR_CLEANUP(stop_waiting, (Datum) 0);
	{
		ll_wake_worker();
		sealed = seal_wait_loop(after, timeout_ms, in_commit);
	}
	PG_END_ENSURE_ERROR_CLEANUP(stop_waiting, (Datum) 0);
	stop_waiting(0, (Datum) 0);
	return sealed;
}

/*
 * Called once the commit is visible to other sessions: count the rows for
 * the worker's size trigger and, when asked to, wait for the seal.  True
 * when a seal committed after this transaction did.
 */
static bool
count_and_wait(void)
{
	uint64		n = flushed_rows;
	uint64		ticket;

	flushed_rows = 0;
	if (n == 0)
		return false;
	if (!ll_worker_serves_my_db())
	{
		if (!warned_no_worker)
			ereport(WARNING,
					(errmsg("no loopledger worker is sealing blocks for this database"),
					 errdetail("Committed ledger rows stay pending until a worker seals them."),
					 errhint("Add loopledger to shared_preload_libraries and set loopledger.database to \"%s\".",
							 get_database_name(MyDatabaseId))));
		warned_no_worker = true;
		return false;
	}
	pg_atomic_fetch_add_u64(&ll_shared->pending_rows, n);
	if (!ll_synchronous_commit)
	{
		if (pg_atomic_read_u64(&ll_shared->pending_rows) >= (uint64) ll_block_max_rows)
			ll_wake_worker();
		return false;
	}
	pg_memory_barrier();
	ticket = pg_atomic_read_u64(&ll_shared->seal_started);
	return wait_for_seal(ticket, -1, true);
}

/*
 * A commit whose own flush was deferred (maybe_defer_local_flush) is on
 * disk once a later commit - the seal's, or the block's that applied its
 * multi-peer rows - was flushed.  Whatever cut the wait short (a cancel,
 * a stopped worker, only multi-peer rows and a wait for the block given
 * up), flush it here before COMMIT returns; after a block it costs a look.
 */
static void
after_commit(void)
{
	if (!count_and_wait() && commit_made_async)
		XLogFlush(XactLastCommitEnd);
}

/*
 * Hand the multi-peer rows still in the transaction to the channel's
 * worker; false when there are none (all rolled back to a savepoint): the
 * transaction then commits like one without such rows.
 */
static bool
submit_multi_rows(XactEvent event)
{
	bool		rejectable = false;
	bool		any = false;
	int			i;

	for (i = 0; i < rows.n; i++)
		if (rows.multi[i])
		{
			any = true;
			rejectable |= rows.rejectable[i];
		}
	if (!any)
		return false;
	if (event == XACT_EVENT_PRE_PREPARE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot prepare a transaction that wrote rows of a multi-peer ledger channel")));
	ll_submit_and_wait(rows.n, rows.channel, rows.multi, rows.packed,
					   rows.content.data, rows.content_off,
					   !ll_synchronous_commit && !rejectable);
	return true;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (rows.n > 0)
			{
				if (!submit_multi_rows(event) || memchr(rows.multi, false, rows.n))
					flush_captured();
				if (event == XACT_EVENT_PRE_COMMIT)
					maybe_defer_local_flush();
			}
			break;
		case XACT_EVENT_COMMIT:
			ll_peers_at_commit();
			if (capture_cxt != NULL)
				rows_clear();
			ll_submit_after_commit();
			/* the waits come in release_callback, after the locks */
			waits_after_locks = true;
			break;
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			ll_submit_after_abort();
			if (capture_cxt != NULL)
				rows_clear();
			flushed_rows = 0;
			commit_made_async = false;
			break;
		default:
			break;
	}
}

/*
 * Rows inserted in a rolled-back subtransaction must not be chained.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			capture_init();
			if (rows.nsub == rows.subcap)
			{
				int			newcap = Max(8, rows.subcap * 2);

				rows.sub_marks = rows.subcap == 0
					? MemoryContextAlloc(capture_cxt, sizeof(int) * newcap)
					: repalloc(rows.sub_marks, sizeof(int) * newcap);
				rows.subcap = newcap;
			}
			rows.sub_marks[rows.nsub++] = rows.n;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			if (rows.nsub > 0)
				rows.nsub--;
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			if (rows.nsub > 0)
			{
				int			mark = rows.sub_marks[--rows.nsub];
				int			i;

				for (i = mark; i < rows.n; i++)
					if (rows.multi[i])
					{
						rows.content.len = rows.content_off[i];
						break;
					}
				rows.n = mark;
			}
			break;
		default:
			break;
	}
}

/*
 * A committed transaction waits for its block (multi-peer) or its seal
 * (loopledger.synchronous_commit) only once its locks are released: a
 * latch wait under them could stall whatever the block needs (see
 * ll_submit_wait_final).  Called for every resource owner in each phase.
 */
static void
release_callback(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel || !waits_after_locks)
		return;
	waits_after_locks = false;
	if (!isCommit)
		return;
	ll_submit_wait_final();
	after_commit();
	commit_made_async = false;
}

void
ll_register_xact_callbacks(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	RegisterResourceReleaseCallback(release_callback, NULL);
}

/*
 * ledger.wait_sealed(timeout_ms): true once every transaction committed
 * before the call is in a sealed block, false on timeout.
 */
Datum
ll_wait_sealed(PG_FUNCTION_ARGS)
{
	int32		timeout = PG_GETARG_INT32(0);
	uint64		ticket;

	if (!ll_worker_serves_my_db())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no loopledger worker is sealing blocks for this database"),
				 errhint("Add loopledger to shared_preload_libraries and set loopledger.database.")));
	pg_memory_barrier();
	ticket = pg_atomic_read_u64(&ll_shared->seal_started);
	PG_RETURN_BOOL(wait_for_seal(ticket, timeout, false));
}
