/*
 * worker.c
 *		The sealing background worker.
 *
 * One worker (per server, for the database named by loopledger.database)
 * turns committed ledger.pending records into blocks.  Each round takes a
 * fresh snapshot, deletes the pending records it sees and inserts the
 * blocks built from them in the same short transaction, so a record is
 * sealed exactly once and a crash at any point leaves either the record or
 * the block, never both or neither.  No transaction is held while waiting.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "chain.h"
#include "consensus.h"
#include "loopledger.h"

PGDLLEXPORT void ll_worker_main(Datum main_arg);

/* Plans kept across rounds: a round runs many times a second under load. */
static SPIPlanPtr plan_take = NULL;
static SPIPlanPtr plan_head = NULL;
static SPIPlanPtr plan_insert = NULL;

/* A statement prepared once and kept for the life of the process. */
SPIPlanPtr
ll_keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static void
prepare_plans(void)
{
	Oid			head_args[1] = {INT4OID};
	Oid			insert_args[12] = {INT4OID, INT8OID, BYTEAOID, BYTEAOID, INT8OID,
	INT4OID, INT4OID, BYTEAOID, BYTEAOID, INT8OID, INT8OID, BYTEAOID};

	if (plan_take != NULL)
		return;
	plan_take = ll_keep_plan("DELETE FROM ledger.pending WHERE txid IS NULL RETURNING channel_id, entries", 0, NULL);
	plan_head = ll_keep_plan("SELECT c.name, c.config_hash, b.height, b.block_hash, b.time_us "
						  "FROM ledger.channel c JOIN ledger.block b USING (channel_id) "
						  "WHERE channel_id = $1 ORDER BY b.height DESC LIMIT 1",
						  1, head_args);
	plan_insert = ll_keep_plan("INSERT INTO ledger.block (channel_id, height, prev_hash, merkle_root, "
							"time_us, tx_count, row_count, config_hash, block_hash, min_entry, "
							"max_entry, entries) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
							12, insert_args);
}

/* Forget the plans, e.g. after the extension was dropped and re-created. */
static void
forget_plans(void)
{
	if (plan_take)
		SPI_freeplan(plan_take);
	if (plan_head)
		SPI_freeplan(plan_head);
	if (plan_insert)
		SPI_freeplan(plan_insert);
	plan_take = plan_head = plan_insert = NULL;
}

/* A 32-byte hash read from a catalog a superuser may have edited. */
static void
copy_stored_hash(uint8 *out, Datum d, bool isnull, const char *channel, const char *what)
{
	bytea	   *b = isnull ? NULL : DatumGetByteaPP(d);

	if (b == NULL || VARSIZE_ANY_EXHDR(b) != LL_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("channel \"%s\" has a %s of the wrong size", channel, what),
				 errhint("Run ledger.verify() on this channel.")));
	memcpy(out, VARDATA_ANY(b), LL_HASH_LEN);
}

/* Rows of one channel gathered from pending records during a round. */
typedef struct ChannelBatch
{
	int32		channel_id;
	char	  **tiers;
	int			ntiers;
	ll_buf		entries;
	int			tx_count;
} ChannelBatch;

void
ll_register_worker(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "loopledger");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "ll_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "loopledger sealer");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "loopledger sealer");
	RegisterBackgroundWorker(&bgw);
}

static void
worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&ll_shared->mutex);
	ll_shared->worker_pid = 0;
	ll_shared->worker_latch = NULL;
	ll_shared->worker_db = InvalidOid;
	SpinLockRelease(&ll_shared->mutex);
	ConditionVariableBroadcast(&ll_shared->sealed_cv);
}

static int64
unix_micros(TimestampTz ts)
{
	return ts + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/*
 * Build and insert the next block of a channel (whose tiers name the
 * entries' tier indexes in their Merkle leaves) from packed entries.
 * time_us < 0 means now; either way block times never go backwards.
 * Consensus workers pass the agreed time so every peer builds the same
 * header; out_height and out_hash (if not NULL) receive the new head.
 */
void
ll_insert_block(int32 channel_id, char **tiers, int ntiers,
				const uint8 *entries, int n, int tx_count,
				int64 time_us, int64 *out_height, uint8 *out_hash)
{
	Datum		args[12];
	char		nulls[12];
	Datum		arg = Int32GetDatum(channel_id);
	ll_block_header hdr;
	uint8	   *leaves = palloc_extended((Size) Max(n, 1) * LL_HASH_LEN * 2, MCXT_ALLOC_HUGE);
	uint8		hash[LL_HASH_LEN];
	ll_buf		scratch;
	char	   *channel;
	bool		isnull;
	int64		prev_time = 0;
	uint64		min_e = PG_UINT64_MAX,
				max_e = 0;
	int			i;

	prepare_plans();
	if (SPI_execute_plan(plan_head, &arg, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "channel %d of pending ledger rows has no genesis block", channel_id);
	memset(&hdr, 0, sizeof(hdr));
	channel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	hdr.channel = channel;
	hdr.channel_len = strlen(channel);
	copy_stored_hash(hdr.config_hash, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull),
					 isnull, channel, "configuration hash");
	hdr.height = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)) + 1;
	copy_stored_hash(hdr.prev_hash, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull),
					 isnull, channel, "head block hash");
	prev_time = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));

	for (i = 0; i < n; i++)
	{
		LLPackedEntry e;

		ll_unpack_entry(entries + (Size) i * LL_PACKED_ENTRY_SIZE, &e);
		min_e = Min(min_e, e.entry_id);
		max_e = Max(max_e, e.entry_id);
	}
	ll_block_leaves(entries, n, tiers, ntiers, leaves);
	if (!ll_merkle_root(leaves, n, leaves + (Size) n * LL_HASH_LEN, hdr.merkle_root))
		elog(ERROR, "could not compute Merkle root");
	/* block times never go backwards, even if the clock does */
	hdr.time_us = Max(time_us < 0 ? unix_micros(GetCurrentTimestamp()) : time_us, prev_time);
	hdr.tx_count = tx_count;
	hdr.row_count = n;
	ll_buf_init(&scratch, ll_palloc_realloc);
	if (!ll_block_hash(&hdr, &scratch, hash))
		elog(ERROR, "could not compute block hash");

	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int32GetDatum(channel_id);
	args[1] = Int64GetDatum(hdr.height);
	args[2] = PointerGetDatum(cstring_to_text_with_len((char *) hdr.prev_hash, LL_HASH_LEN));
	args[3] = PointerGetDatum(cstring_to_text_with_len((char *) hdr.merkle_root, LL_HASH_LEN));
	args[4] = Int64GetDatum(hdr.time_us);
	args[5] = Int32GetDatum(hdr.tx_count);
	args[6] = Int32GetDatum(hdr.row_count);
	args[7] = PointerGetDatum(cstring_to_text_with_len((char *) hdr.config_hash, LL_HASH_LEN));
	args[8] = PointerGetDatum(cstring_to_text_with_len((char *) hash, LL_HASH_LEN));
	args[9] = Int64GetDatum((int64) min_e);
	args[10] = Int64GetDatum((int64) max_e);
	{
		bytea	   *payload = palloc_extended(VARHDRSZ + (Size) n * LL_PACKED_ENTRY_SIZE,
											  MCXT_ALLOC_HUGE);

		SET_VARSIZE(payload, VARHDRSZ + (Size) n * LL_PACKED_ENTRY_SIZE);
		memcpy(VARDATA(payload), entries, (Size) n * LL_PACKED_ENTRY_SIZE);
		args[11] = PointerGetDatum(payload);
	}
	if (n == 0)
		nulls[9] = nulls[10] = 'n';
	if (SPI_execute_plan(plan_insert, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert block %lld of channel %d",
			 (long long) hdr.height, channel_id);
	if (out_height)
		*out_height = (int64) hdr.height;
	if (out_hash)
		memcpy(out_hash, hash, LL_HASH_LEN);
}

/*
 * Seal every pending record visible now.  Records of a channel are packed
 * into blocks of at most loopledger.block_max_rows rows, except that one
 * record (a transaction) is never split across blocks.
 */
static int64
seal_pending(void)
{
	int64		total = 0;
	uint64		i;
	SPITupleTable *taken;
	uint64		ntaken;
	List	   *batches = NIL;
	ListCell   *lc;

	prepare_plans();
	if (SPI_execute_plan(plan_take, NULL, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not read pending ledger rows");
	/* ll_insert_block() runs SPI too, which replaces SPI_tuptable */
	taken = SPI_tuptable;
	ntaken = SPI_processed;

	for (i = 0; i < ntaken; i++)
	{
		bool		isnull;
		int32		ch = DatumGetInt32(SPI_getbinval(taken->vals[i], taken->tupdesc, 1, &isnull));
		bytea	   *p = DatumGetByteaPP(SPI_getbinval(taken->vals[i], taken->tupdesc, 2, &isnull));
		int			n = VARSIZE_ANY_EXHDR(p) / LL_PACKED_ENTRY_SIZE;
		ChannelBatch *b = NULL;

		foreach(lc, batches)
		{
			ChannelBatch *c = lfirst(lc);

			if (c->channel_id == ch)
				b = c;
		}
		if (b != NULL && b->tx_count > 0 &&
			(int64) b->entries.len / LL_PACKED_ENTRY_SIZE + n > ll_block_max_rows)
		{
			ll_insert_block(b->channel_id, b->tiers, b->ntiers, b->entries.data,
							b->entries.len / LL_PACKED_ENTRY_SIZE, b->tx_count,
							-1, NULL, NULL);
			ll_buf_reset(&b->entries);
			b->tx_count = 0;
		}
		if (b == NULL)
		{
			b = palloc0(sizeof(ChannelBatch));
			b->channel_id = ch;
			ll_load_tiers(ch, &b->ntiers, &b->tiers);
			ll_buf_init(&b->entries, ll_palloc_realloc);
			batches = lappend(batches, b);
		}
		ll_buf_put(&b->entries, VARDATA_ANY(p), (Size) n * LL_PACKED_ENTRY_SIZE);
		b->tx_count++;
		total += n;
	}
	foreach(lc, batches)
	{
		ChannelBatch *b = lfirst(lc);

		if (b->tx_count > 0)
			ll_insert_block(b->channel_id, b->tiers, b->ntiers, b->entries.data,
							b->entries.len / LL_PACKED_ENTRY_SIZE, b->tx_count,
							-1, NULL, NULL);
	}
	return total;
}

static bool
extension_installed(void)
{
	bool		found;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute("SELECT 1 FROM pg_extension WHERE extname = 'loopledger'", true, 1);
	found = SPI_processed > 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return found;
}

/*
 * The sealer is also the launcher of consensus workers: check about once
 * a second (and when woken) that every channel with peers has one.
 */
static void
launch_round(MemoryContext round_cxt)
{
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		ll_launch_consensus_workers();
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(round_cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
}

/*
 * One sealing round in its own transaction; reports success to waiters
 * through the seal counters, failure through seal_failed.
 */
static void
seal_round(MemoryContext round_cxt)
{
	uint64		seal_no = pg_atomic_add_fetch_u64(&ll_shared->seal_started, 1);

	pg_atomic_write_u64(&ll_shared->pending_rows, 0);
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "sealing ledger blocks");
		seal_pending();
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pg_atomic_write_u64(&ll_shared->seal_done, seal_no);
		/* without this autovacuum never learns of the deleted pending rows */
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(round_cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		forget_plans();
		pg_atomic_write_u64(&ll_shared->seal_failed, seal_no);
		ConditionVariableBroadcast(&ll_shared->sealed_cv);
		pgstat_report_activity(STATE_IDLE, NULL);
		/* back off so a persistent error does not spin */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		return;
	}
	PG_END_TRY();
	ConditionVariableBroadcast(&ll_shared->sealed_cv);
}

void
ll_worker_main(Datum main_arg)
{
	MemoryContext round_cxt;
	TimestampTz first_pending = 0;
	bool		installed = false;
	TimestampTz last_check = 0;
	TimestampTz last_launch = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(ll_database, NULL, 0);
	ll_pin_search_path();

	SpinLockAcquire(&ll_shared->mutex);
	ll_shared->worker_pid = MyProcPid;
	ll_shared->worker_latch = MyLatch;
	ll_shared->worker_db = MyDatabaseId;
	SpinLockRelease(&ll_shared->mutex);
	on_shmem_exit(worker_detach, (Datum) 0);

	round_cxt = AllocSetContextCreate(TopMemoryContext, "loopledger round",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		uint64		pending = pg_atomic_read_u64(&ll_shared->pending_rows);
		bool		due;
		long		timeout = 1000;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!installed && TimestampDifferenceExceeds(last_check, now, 1000))
		{
			installed = extension_installed();
			last_check = now;
			/* seal what an earlier run left behind */
			pending = installed ? 1 : 0;
			first_pending = 0;
		}
		if (installed && TimestampDifferenceExceeds(last_launch, now, 1000))
		{
			MemoryContext old = MemoryContextSwitchTo(round_cxt);

			launch_round(round_cxt);
			MemoryContextSwitchTo(old);
			MemoryContextReset(round_cxt);
			last_launch = now;
		}
		if (installed && pending > 0 && first_pending == 0)
			first_pending = now;
		due = installed &&
			(pg_atomic_read_u32(&ll_shared->waiters) > 0 ||
			 pending >= (uint64) ll_block_max_rows ||
			 (pending > 0 && TimestampDifferenceExceeds(first_pending, now, ll_block_interval_ms)));
		if (due)
		{
			MemoryContext old = MemoryContextSwitchTo(round_cxt);

			seal_round(round_cxt);
			MemoryContextSwitchTo(old);
			MemoryContextReset(round_cxt);
			first_pending = 0;
			/* the extension may have been dropped meanwhile */
			if (pg_atomic_read_u64(&ll_shared->seal_failed) ==
				pg_atomic_read_u64(&ll_shared->seal_started))
				installed = false;
			continue;
		}
		if (pending > 0)
			timeout = Max(1, ll_block_interval_ms -
						  (long) ((now - first_pending) / 1000));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
