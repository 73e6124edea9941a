/*
 * resubmit.c
 *		Transactions this node committed without waiting for their place in
 *		the agreed order (loopledger.synchronous_commit = off) exist, until
 *		their batch leaves, only in shared memory and the worker's memory.
 *		A worker that starts (after its own crash or the server's) puts
 *		every one still pending back into its queue, rebuilt from their
 *		ledger.pending record and the rows themselves.  One already sent
 *		before the crash is ordered once: the second copy is a duplicate
 *		(ledger.txlog key) and skipped everywhere.
 */
#include "postgres.h"

#include "access/table.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "chain.h"
#include "consensus.h"
#include "loopledger.h"

/* Append one row's record (tier, commitment, content) to body; false if it is gone or changed. */
static bool
append_row(int32 channel_id, const char *channel, const LLPackedEntry *e, StringInfo body)
{
	bool		isnull;
	Oid			relid;
	char	   *table_name;
	char	   *tier_column;
	Relation	rel;
	HeapTuple	tup;
	LLTableInfo *info;
	ll_buf		buf;
	uint8		leaf[LL_HASH_LEN];
	uint32		len;
	bool		ok;

	SPI_execute_with_args("SELECT relid::oid, table_name, tier_column::text FROM ledger.ledger_table "
						  "WHERE channel_id = $1 AND table_no = $2", 2,
						  (Oid[]) {INT4OID, INT4OID},
						  (Datum[]) {Int32GetDatum(channel_id), Int32GetDatum((int32) e->table_no)},
						  NULL, true, 1);
	if (SPI_processed != 1)
		return false;
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	table_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	tier_column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	/* deleted by a superuser: skipped with a warning, the others still go */
	tup = ll_fetch_ledger_row(relid, table_name, e->entry_id, true, &rel);
	if (tup == NULL)
		return false;
	info = ll_table_info_for(rel, channel_id, (int32) e->table_no, channel, table_name, tier_column);
	ll_deform(info, tup);
	ll_buf_init(&buf, ll_palloc_realloc);
	ll_encode_deformed(info, e->entry_id, e->tier, e->salt, &buf);
	ok = ll_leaf_hash(buf.data, buf.len, leaf) && memcmp(leaf, e->commitment, LL_HASH_LEN) == 0;
	if (ok)
	{
		len = (uint32) buf.len;
		appendBinaryStringInfo(body, (char *) &e->tier, 1);
		appendBinaryStringInfo(body, (char *) e->commitment, LL_HASH_LEN);
		appendBinaryStringInfo(body, (char *) &len, 4);
		appendBinaryStringInfo(body, (char *) buf.data, buf.len);
	}
	pfree(buf.data);
	table_close(rel, AccessShareLock);
	return ok;
}

/* The queue record of one pending transaction (submit.c build_record's format). */
static StringInfo
rebuild(int32 channel_id, const char *channel, const bytea *entries)
{
	StringInfo	body = makeStringInfo();
	uint32		n = (uint32) (VARSIZE_ANY_EXHDR(entries) / LL_PACKED_ENTRY_SIZE);
	uint32		i;

	appendBinaryStringInfo(body, (char *) &n, 4);
	for (i = 0; i < n; i++)
	{
		LLPackedEntry e;

		ll_unpack_entry((const uint8 *) VARDATA_ANY(entries) + (Size) i * LL_PACKED_ENTRY_SIZE, &e);
		if (!append_row(channel_id, channel, &e, body))
			return NULL;
	}
	return body;
}

/*
 * SPI connected, with a snapshot.  Returns how many transactions went
 * back into the slot's queue.
 */
int
ll_resubmit_pending(LLConsSlot *slot, int32 channel_id, const char *channel, const uint8 *self)
{
	int			n,
				i,
				sent = 0;
	uint64	   *txids;
	bytea	  **entries;

	SPI_execute_with_args("SELECT p.txid, p.entries FROM ledger.pending p "
						  "JOIN ledger.txlog t ON t.channel_id = p.channel_id AND t.txid = p.txid "
						  "WHERE p.channel_id = $1 AND t.origin = $2 AND t.status = 'pending' "
						  "ORDER BY p.txid", 2,
						  (Oid[]) {INT4OID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(channel_id), PointerGetDatum(ll_bytea(self, 32))},
						  NULL, true, 0);
	n = (int) SPI_processed;
	txids = palloc(sizeof(uint64) * Max(n, 1));
	entries = palloc(sizeof(bytea *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		txids[i] = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		entries[i] = DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	for (i = 0; i < n; i++)
	{
		StringInfo	body = rebuild(channel_id, channel, entries[i]);
		LLTxHeader	h;

		if (body == NULL)
		{
			ereport(WARNING,
					(errmsg("channel \"%s\": transaction " UINT64_FORMAT " committed here without waiting cannot be sent again",
							channel, txids[i]),
					 errdetail("One of its rows is gone or no longer matches its hash."),
					 errhint("Run ledger.verify() on this node.")));
			continue;
		}
		h.len = (uint32) body->len;
		h.procno = LL_TX_RESUBMITTED;
		h.channel_id = channel_id;
		h.txid = txids[i];
		h.generation = pg_atomic_read_u64(&slot->generation);
		if (!ll_queue_put(slot, false, &h, sizeof(h), body->data, body->len))
			break;				/* the queue is full: the next start sends the rest */
		sent++;
	}
	return sent;
}
