/*
 * submit.c
 *		A committing backend's side of a multi-peer channel.
 *
 * Just before commit the backend queues its rows for the channel's worker
 * and waits, still inside its transaction, for the consortium's order:
 *   GO       - every transaction ordered before it is applied here; it
 *              records its outcome in ledger.txlog and commits, and (with
 *              loopledger.synchronous_commit) COMMIT returns once the
 *              worker has committed the block;
 *   REJECTED - the agreed order refuses it: COMMIT fails, nothing stays.
 * While waiting it also watches for the one conflict the order cannot
 * settle by itself: the worker, applying a transaction ordered earlier,
 * waits for a row lock this backend holds.  Then this transaction is the
 * later one and must give way; its batch is out, so the order still
 * decides its outcome, which COMMIT cannot wait for (SQLSTATE 40003).
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/relation.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"

static LLTxWait *my_wait = NULL;
static LLConsSlot *my_slot = NULL;
static uint8 self[32];			/* this node's public key, read once */
static bool have_self = false;

static LLTxWait *
wait_slot(void)
{
	return &ll_cons->waits[MyProc->pgprocno];
}

/* Body of the queue record: u32 nrows | nrows x (tier | commitment | u32 len | entry) */
static StringInfo
build_record(int n, const int32 *channel, const bool *multi, const uint8 *packed,
			 const uint8 *content, const Size *content_off, int32 chan, int *nrows)
{
	StringInfo	s = makeStringInfo();
	uint32		count = 0;
	int			i;

	appendBinaryStringInfo(s, (char *) &count, 4);
	for (i = 0; i < n; i++)
	{
		LLPackedEntry e;
		uint32		len;

		if (!multi[i] || channel[i] != chan)
			continue;
		ll_unpack_entry(packed + (Size) i * LL_PACKED_ENTRY_SIZE, &e);
		memcpy(&len, content + content_off[i], 4);
		len = pg_ntoh32(len);
		appendBinaryStringInfo(s, (char *) &e.tier, 1);
		appendBinaryStringInfo(s, (char *) e.commitment, LL_HASH_LEN);
		appendBinaryStringInfo(s, (char *) &len, 4);
		appendBinaryStringInfo(s, (char *) content + content_off[i] + 4, len);
		count++;
	}
	memcpy(s->data, &count, 4);
	*nrows = (int) count;
	return s;
}

/*
 * A key for this transaction that no other transaction of this node gets;
 * a repeated key would be taken for a duplicate and skipped on every
 * member.  Transaction ids alone are not enough: after a crash PostgreSQL
 * hands out again the ids of transactions whose WAL never reached the
 * disk, and such a transaction may already have been sent to the peers -
 * and restart_after_crash keeps the server's start time (the key used to
 * pair the id with it).  So the key pairs the low 43 bits of the 64-bit
 * transaction id (unique in this process's life; they come round again
 * only after 2^43 transactions) with 20 random bits drawn once per
 * backend process: every backend after a crash draws anew, and a reused
 * id repeats a key only if its new backend drew the bits of the one that
 * used it first (1 in a million).  Bit 63 stays clear: ledger.txlog shows
 * the key as a positive bigint.
 */
#define KEY_XID_BITS 43
#define KEY_RANDOM_BITS 20

static uint64
transaction_key(void)
{
	static uint64 prefix = 0;
	static bool drawn = false;
	uint64		fxid = U64FromFullTransactionId(GetTopFullTransactionId());

	if (!drawn)
	{
		uint32		r;

		if (!pg_strong_random(&r, sizeof(r)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random transaction key")));
		prefix = ((uint64) r & ((UINT64CONST(1) << KEY_RANDOM_BITS) - 1)) << KEY_XID_BITS;
		drawn = true;
	}
	return prefix | (fxid & ((UINT64CONST(1) << KEY_XID_BITS) - 1));
}

static void check_member(LLConsSlot *slot, const LLTxWait *w);
static bool worker_waits_for_me(LLConsSlot *slot);
static void give_way(LLTxWait *w) pg_attribute_noreturn();

/*
 * Still before our commit: a cancel or statement_timeout (which PostgreSQL
 * no longer enforces during COMMIT) may end a wait.  sent: the
 * transaction may be with the other members already.
 */
static void
check_cancel(const LLTxWait *w, bool sent)
{
	if (StatementTimeout > 0 && !QueryCancelPending &&
		TimestampDifferenceExceeds(GetCurrentStatementStartTimestamp(),
								   GetCurrentTimestamp(), StatementTimeout))
		QueryCancelPending = true;
	if (!QueryCancelPending || ProcDiePending)
		return;
	QueryCancelPending = false;
	pgstat_report_wait_end();
	if (!sent)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling the wait for room in the transaction queue of the ledger channel"),
				 errdetail("Nothing of the transaction was sent to the other members.")));
	ereport(ERROR,
			(errcode(ERRCODE_QUERY_CANCELED),
			 errmsg("canceling the wait for the agreed order of the ledger channel"),
			 errdetail("The transaction was already sent to the other members: it may still be ordered and committed everywhere, this node included."),
			 errhint("Look up its outcome in ledger.txlog (txid " UINT64_FORMAT ").", w->txid)));
}


/* sent: the transaction may have been sent before (queued again) */
static void
enqueue(LLConsSlot *slot, LLTxWait *w, StringInfo body, bool sent)
{
	LLTxHeader h;
	int			blocked = 0;

	h.len = (uint32) body->len;
	h.procno = MyProc->pgprocno;
	h.channel_id = w->channel_id;
	h.txid = w->txid;
	h.generation = pg_atomic_read_u64(&slot->generation);
	w->generation = h.generation;
	if (body->len > LL_TXQ_SIZE / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("transaction too large for a multi-peer ledger channel"),
				 errdetail("Its rows take %d bytes; at most %d fit in one transaction.",
						   body->len, LL_TXQ_SIZE / 2),
				 errhint("Split the load into smaller transactions.")));
	while (!ll_queue_put(slot, false, &h, sizeof(h), body->data, body->len))
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 2,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		check_cancel(w, sent);
		CHECK_FOR_INTERRUPTS();
		check_member(slot, sent ? w : NULL);	/* a stopped worker takes nothing */
		/*
		 * The worker empties the queue between blocks: while it waits for
		 * us (our key, our lock, or our commit after it gave us our turn)
		 * the queue stays full.
		 */
		if (sent && LL_TX_STATE(pg_atomic_read_u32(&w->state)) != LL_TX_SUBMITTED)
			return;				/* ordered already: wait_for_turn takes it */
		blocked = worker_waits_for_me(slot) ? blocked + 1 : 0;
		if (blocked >= 2)
		{
			if (sent)
				give_way(w);
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("transaction gave way to one the ledger channel ordered first"),
					 errdetail("The channel's worker waits for a lock this transaction holds while the transaction queue is full; nothing of it was sent to the other members."),
					 errhint("Retry the transaction.")));
		}
	}
}

/*
 * A lock we hold in a mode that does not conflict with the worker's can
 * still hold it up: a third session asking for a mode that conflicts with
 * ours (VACUUM FULL, ALTER TABLE) queues behind us, and the worker behind
 * it.  When such a request is queued (queued_behind) and the worker has
 * waited past deadlock_timeout, take that for a cycle through us.
 */
/* Someone waits on lk for a mode that conflicts with our mode m. */
static bool
queued_behind(volatile LOCK *lk, LOCKMODE m)
{
	LOCKMASK	waiting = lk->waitMask;
	LOCKMODE	w;

	for (w = 1; w <= MaxLockMode; w++)
		if ((waiting & LOCKBIT_ON(w)) && DoLockModesConflict(m, w))
			return true;
	return false;
}

static bool
waited_long(PGPROC *wp)
{
	TimestampTz since = (TimestampTz) pg_atomic_read_u64(&wp->waitStart);

	return since != 0 &&
		TimestampDifferenceExceeds(since, GetCurrentTimestamp(), DeadlockTimeout);
}

/*
 * True when the worker waits for us: for one of our transaction ids (a
 * unique-index check on our row, inserting a transaction ordered before
 * ours), or for a lock we hold in a conflicting mode (LOCK TABLE before an
 * INSERT).  We wait on a latch, not a lock, so PostgreSQL's deadlock
 * detector would never see the cycle.  Wherever the worker is (inserting
 * rows, or checking a table's definition before them, which reads it
 * under AccessShareLock), a wait for a lock we hold is a cycle: we cannot
 * finish before it gives us our turn.  Read without the lock manager's
 * locks, as a hint: the caller asks twice before acting on it.
 */
static bool
worker_waits_for_me(LLConsSlot *slot)
{
	PGPROC	   *wp = slot->proc;
	volatile LOCK *lk;
	LOCKTAG		tag;
	LOCKMODE	want;
	LOCKMODE	m;

	if (wp == NULL)
		return false;
	lk = wp->waitLock;
	want = wp->waitLockMode;
	if (lk == NULL)
		return false;
	memcpy(&tag, (const void *) &lk->tag, sizeof(tag));
	pg_read_barrier();
	if (wp->waitLock != lk)		/* that wait ended meanwhile */
		return false;
	if (tag.locktag_type == LOCKTAG_TRANSACTION)
	{
		TransactionId xid = (TransactionId) tag.locktag_field1;

		return TransactionIdIsValid(xid) && TransactionIdIsCurrentTransactionId(xid);
	}
	if (tag.locktag_lockmethodid != DEFAULT_LOCKMETHOD || want <= NoLock || want > MaxLockMode)
		return false;
	for (m = 1; m <= MaxLockMode; m++)
		if (LockHeldByMe(&tag, m) &&
			(DoLockModesConflict(m, want) || (queued_behind(lk, m) && waited_long(wp))))
			return true;
	return false;
}

/*
 * The transaction's outcome, committed with its rows: 'accepted' at its
 * place in the agreed order, or 'pending' when it did not wait for it.
 */
static void
record_outcome(LLTxWait *w, bool pending, int tier)
{
	Relation	rel = table_open(ll_catalog_relid("txlog"), RowExclusiveLock);
	Datum		v[8];
	bool		n[8] = {false, false, false, pending, pending, false, true, false};
	HeapTuple	tup;

	v[0] = Int32GetDatum(w->channel_id);
	v[1] = PointerGetDatum(ll_bytea(self, 32));
	v[2] = Int64GetDatum((int64) w->txid);
	v[3] = Int64GetDatum(w->height);
	v[4] = Int32GetDatum(w->position);
	v[5] = CStringGetTextDatum(pending ? "pending" : "accepted");
	v[6] = (Datum) 0;
	v[7] = Int16GetDatum((int16) tier);
	tup = heap_form_tuple(RelationGetDescr(rel), v, n);
	/* with its index entries: the worker finds outcomes by primary key */
	CatalogTupleInsert(rel, tup);
	table_close(rel, RowExclusiveLock);
}

/*
 * Only voting members append; a joining node follows.  A worker that
 * stopped for good (this node removed, or its copy diverged) orders
 * nothing more here: a transaction waiting for its order (w) may still
 * be ordered by the members, so its outcome is unknown here.
 */
static void
check_member(LLConsSlot *slot, const LLTxWait *w)
{
	char		stopped = slot->stopped;

	/* stopped first: a worker may stop before it first published a height */
	if (stopped == 0 && (slot->pid == 0 || slot->height <= 0 || slot->is_validator))
		return;
	/* waiting, it was sent: its removal decided, this node may not apply it */
	if (w != NULL)
	{
		pgstat_report_wait_end();
		ereport(ERROR,
				(errcode(ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN),
				 errmsg("this node stopped ordering transactions of ledger channel \"%s\" while this one waited for its order",
						slot->channel),
				 errdetail("%s The members may still order the transaction; this node's copy will not hold it.",
						   stopped == 'd' ? "This node's copy diverged from the members'." :
						   "This node was removed from the channel."),
				 errhint("Look up its outcome in ledger.txlog on a member (txid " UINT64_FORMAT ").", w->txid)));
	}
	if (stopped == 'd')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger channel \"%s\" stopped on this node: its copy diverged from the members'", slot->channel),
				 errhint("See the server log; restore this node's copy from a member's, then restart the server.")));
	if (stopped == 'r')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node was removed from ledger channel \"%s\"", slot->channel),
				 errdetail("Only members append to a multi-peer channel; a removed member's copy ends with the block that removed it.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("this node is not a voting member of ledger channel \"%s\"", slot->channel),
			 errdetail("Only members append to a multi-peer channel; this node follows it."),
			 errhint("See ledger.peers: a joining node votes once the members have agreed to add it.")));
}

/*
 * A slot whose channel went away (an add_peer that rolled back) may be
 * taken by another channel: resubmitting there would send our rows on
 * that channel's links.
 */
static void
check_slot_kept(LLConsSlot *slot, LLTxWait *w)
{
	if (slot->channel_id != w->channel_id)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the multi-peer ledger channel of this transaction no longer runs consensus on this server"),
				 errdetail("Its consensus slot was released while the transaction waited for its turn."),
				 errhint("Check ledger.peers and the server log; then retry the transaction.")));
}

static void
rejected(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("transaction rejected by the agreed order of the ledger channel"),
			 errdetail("%s", why),
			 errhint("The transaction left no trace on any peer; retry it.")));
}

/*
 * The worker, inserting a transaction ordered first, waits for a key we
 * hold: we must abort to let it go on.  Our batch is with the peers
 * already and the order still decides us: usually the earlier transaction
 * takes the key and we are rejected everywhere, but if it is refused
 * itself we are inserted from our batch everywhere, this node included.
 */
static void
give_way(LLTxWait *w)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
			 errmsg("transaction gave way to one the ledger channel ordered first; its outcome is not known yet"),
			 errdetail("It was already sent to the other members, and the agreed order decides it: rejected everywhere if the earlier transaction takes its key, else applied everywhere from its batch."),
			 errhint("Look up its outcome in ledger.txlog (txid " UINT64_FORMAT ") before retrying it.", w->txid)));
}

/* Wait for GO or REJECTED; resubmit if the worker restarted meanwhile. */
static void
wait_for_turn(LLConsSlot *slot, LLTxWait *w, StringInfo body)
{
	int			blocked = 0;

	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	for (;;)
	{
		/* the submission number is ours: any GO or REJECTED is for us */
		LLTxState	s = LL_TX_STATE(pg_atomic_read_u32(&w->state));

		/* the worker wrote height, position or message before the state */
		if (s == LL_TX_GO || s == LL_TX_REJECTED)
			pg_read_barrier();
		if (s == LL_TX_GO)
			break;
		if (s == LL_TX_REJECTED)
		{
			pgstat_report_wait_end();
			rejected(w->message);
		}
		check_member(slot, w);
		check_slot_kept(slot, w);
		if (worker_waits_for_me(slot))
		{
			if (++blocked >= 2)
			{
				pgstat_report_wait_end();
				give_way(w);
			}
		}
		else
			blocked = 0;
		if (pg_atomic_read_u64(&slot->generation) != w->generation)
			enqueue(slot, w, body, true);
		/* the worker wakes us for GO and REJECTED; poll only for conflicts */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pg_atomic_read_u64(&slot->applying) != 0 ? 5 : 50,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		check_cancel(w, true);
		CHECK_FOR_INTERRUPTS();
	}
	pgstat_report_wait_end();
}

/*
 * Rows committed without waiting for the order show as pending (in
 * ledger.history and ledger.block_entries) until their block is applied.
 */
static void
write_pending(int n, const int32 *channel, const bool *multi, const uint8 *packed,
			  int32 chan, uint64 txid)
{
	Relation	rel = table_open(ll_catalog_relid("pending"), RowExclusiveLock);
	StringInfoData buf;
	Datum		v[3];
	bool		nulls[3] = {false, false, false};
	bytea	   *payload;
	HeapTuple	tup;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < n; i++)
		if (multi[i] && channel[i] == chan)
			appendBinaryStringInfo(&buf, (const char *) packed + (Size) i * LL_PACKED_ENTRY_SIZE,
								   LL_PACKED_ENTRY_SIZE);
	payload = ll_bytea((const uint8 *) buf.data, buf.len);
	v[0] = Int32GetDatum(chan);
	v[1] = PointerGetDatum(payload);
	v[2] = Int64GetDatum((int64) txid);
	tup = heap_form_tuple(RelationGetDescr(rel), v, nulls);
	simple_heap_insert(rel, tup);
	table_close(rel, RowExclusiveLock);
}

/*
 * A transaction travels in one signed batch, so it must fit the limits
 * every peer's decoder enforces; refused here, before anything is sent.
 */
static void
check_size(int nrows, Size bytes)
{
	/* a row's table name and entry number also travel in the signed part */
	if (nrows <= LL_BATCH_MAX_ROWS && 2 * bytes + (Size) nrows * 64 + 4096 <= LL_TX_MAX_BYTES)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("transaction too large for a multi-peer ledger channel"),
			 errdetail("It has %d rows and %zu bytes of row data; one transaction may carry at most %d rows and about %d MB of row data.",
					   nrows, (size_t) bytes, LL_BATCH_MAX_ROWS, (int) (LL_TX_MAX_BYTES / 2 / (1024 * 1024))),
			 errhint("Split it into several transactions.")));
}

/*
 * Open the next submission of our wait slot (see consensus.h): whatever
 * the worker still does to the previous one fails from now on, and no
 * word of it can be read together with the txid we write next.
 */
static uint32
new_submission(LLTxWait *w)
{
	uint32		word = pg_atomic_read_u32(&w->state);

	word = (word | LL_TX_STATE_MASK) + 1;	/* next number, state IDLE */
	pg_atomic_write_u32(&w->state, word);
	pg_write_barrier();
	return word;
}

/*
 * The rows' entry numbers came from ledger.entry_seq, whose WAL record
 * (one per 1,000 numbers a backend caches, maybe written by an earlier or
 * aborted transaction) need not be flushed: our own commit's flush waits
 * for the block's (capture.c).  A crash that lost it would give the same
 * numbers again after recovery while the peers order this transaction,
 * and the node would refuse its own rows.  The sequence page's LSN is the
 * end of its last record: flush to it before the rows leave.  Mostly it
 * is on disk already (flushing on every batch instead cost about 15% of
 * the channel's throughput).
 */
static void
flush_entry_numbers(void)
{
	Relation	seq = relation_open(ll_catalog_relid("entry_seq"), AccessShareLock);
	Buffer		buf = ReadBuffer(seq, 0);
	XLogRecPtr	lsn;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	lsn = PageGetLSN(BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
	relation_close(seq, AccessShareLock);
	XLogFlush(lsn);
}

void
ll_submit_and_wait(int n, const int32 *channel, const bool *multi,
				   const uint8 *packed, const uint8 *content, const Size *content_off,
				   bool async)
{
	int32		chan = -1;
	int			tier = 0;
	int			i;
	int			nrows;
	LLConsSlot *slot;
	LLTxWait   *w;
	StringInfo	body;
	uint8		seed[32];
	uint32		word;

	for (i = 0; i < n; i++)
		if (multi[i])
		{
			if (chan >= 0 && channel[i] != chan)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("a transaction cannot write to two multi-peer ledger channels"),
						 errdetail("Each channel orders its transactions on its own.")));
			chan = channel[i];
			tier = Max(tier, packed[(Size) i * LL_PACKED_ENTRY_SIZE + LL_PACKED_TIER_OFFSET]);
		}
	slot = ll_cons_slot_for(chan);
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger channel %d has no consensus worker slot on this server", chan),
				 errdetail("The change that gave the channel its peers was rolled back, or the channel was removed, after this transaction wrote to it."),
				 errhint("Run the transaction again.")));
	check_member(slot, NULL);
	/*
	 * Not waiting is for a voting member: a worker that is not voting (or
	 * not known yet to be) drops what it takes, and the client must hear
	 * of it.
	 */
	if (async && !(slot->pid != 0 && slot->height > 0 && slot->is_validator))
		async = false;
	if (!have_self)
	{
		if (!ll_load_node_key(seed, self, false))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("this node has no loopledger node key"),
					 errhint("Run SELECT ledger.node_key() once.")));
		explicit_bzero(seed, sizeof(seed));
		have_self = true;
	}
	body = build_record(n, channel, multi, packed, content, content_off, chan, &nrows);
	check_size(nrows, body->len);
	flush_entry_numbers();
	w = wait_slot();
	word = new_submission(w);
	w->channel_id = chan;
	w->pid = MyProcPid;
	w->txid = transaction_key();
	w->height = -1;
	w->wake_seen = !ll_synchronous_commit;
	w->message[0] = '\0';
	pg_write_barrier();
	pg_atomic_write_u32(&w->state, LL_TX_WORD(word, async ? LL_TX_ASYNC : LL_TX_SUBMITTED));
	my_wait = w;
	my_slot = slot;
	enqueue(slot, w, body, false);
	if (async)
	{
		/* nothing can refuse these rows: commit now, the order follows */
		record_outcome(w, true, tier);
		write_pending(n, channel, multi, packed, chan, w->txid);
#ifdef LL_FAULT_INJECTION
		ll_fault_async_point();
#endif
		return;
	}
	wait_for_turn(slot, w, body);
	record_outcome(w, false, tier);
}

static void
wake_worker(void)
{
	Latch	   *latch;

	SpinLockAcquire(&my_slot->mutex);
	latch = my_slot->latch;
	SpinLockRelease(&my_slot->mutex);
	if (latch)
		SetLatch(latch);
}

static LLTxWait *final_wait = NULL;

/*
 * At our commit: tell the worker, which waits for it to go on with the
 * block.  The wait for the block itself comes later, in
 * ll_submit_wait_final, once our locks are gone.
 */
void
ll_submit_after_commit(void)
{
	LLTxWait   *w = my_wait;

	uint32		word;

	if (w == NULL)
		return;
	my_wait = NULL;
	/* ASYNC and GO are left only by us: plain writes will do */
	word = pg_atomic_read_u32(&w->state);
	if (LL_TX_STATE(word) == LL_TX_ASYNC)
	{
		pg_atomic_write_u32(&w->state, LL_TX_WORD(word, LL_TX_ASYNC_DONE));
		wake_worker();
		return;
	}
	Assert(LL_TX_STATE(word) == LL_TX_GO);
	pg_atomic_write_u32(&w->state, LL_TX_WORD(word, LL_TX_COMMITTED));
	wake_worker();
	final_wait = w;
}

/*
 * Wait for the block our committed transaction is in to be committed
 * here.  Called after the commit released our locks: held through this
 * wait, they deadlocked with the block (a later local transaction of the
 * same block queued behind our NOTIFY lock, or a peer's row behind a
 * DBA's CREATE INDEX queued behind our table lock), which waits on a
 * latch that the deadlock detector does not see.
 */
void
ll_submit_wait_final(void)
{
	LLTxWait   *w = final_wait;

	if (w == NULL)
		return;
	final_wait = NULL;
	for (;;)
	{
		LLTxState	s = LL_TX_STATE(pg_atomic_read_u32(&w->state));

		if (s == LL_TX_FINAL || (s == LL_TX_SEEN && w->wake_seen))
			break;
		if (ProcDiePending || QueryCancelPending)
		{
			QueryCancelPending = false;
			ereport(WARNING,
					(errmsg("canceling the wait for the ledger block"),
					 errdetail("The transaction has committed in the agreed order; its block is being applied.")));
			if (ProcDiePending)
				whereToSendOutput = DestNone;
			break;
		}
		/* never exit in here: the transaction is committed already */
		if (WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_POSTMASTER_DEATH, 10,
					  PG_WAIT_EXTENSION) & WL_POSTMASTER_DEATH)
			break;
		ResetLatch(MyLatch);
	}
}

void
ll_submit_after_abort(void)
{
	LLTxWait   *w = my_wait;

	LLTxState	to;

	if (w == NULL)
		return;
	my_wait = NULL;

	/*
	 * The worker may be giving us our turn (SUBMITTED -> GO) or refusing
	 * us right now: swap, so that exactly one of us decides.  After GO (or
	 * ASYNC) the worker must insert our rows from the batch: ABORTED;
	 * before, we are out of the handover and it will find the swap fail.
	 */
	for (;;)
	{
		uint32		word = pg_atomic_read_u32(&w->state);
		LLTxState	s = LL_TX_STATE(word);

		to = (s == LL_TX_GO || s == LL_TX_ASYNC) ? LL_TX_ABORTED : LL_TX_IDLE;
		if (ll_tx_swap(w, word, to))
			break;
	}
	if (to == LL_TX_ABORTED)
		wake_worker();
}
