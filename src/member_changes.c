/*
 * member_changes.c
 *		Membership changes of a running channel, proposed through
 *		consensus: a request made here with ledger.add_peer() or
 *		ledger.remove_peer() goes into a batch like a transaction, and the
 *		members count the votes in the agreed order (membership_core.c).
 *		Before the first decision the DBA may still be adding the genesis
 *		members, which changes the genesis instead.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "consensus_int.h"
#include "loopledger.h"

/*
 * Pick up members added here by ledger.add_peer() since we started (their
 * change still to be agreed) and conninfo we did not have.
 */
static void
refresh_members(void)
{
	LLMembership *fresh = palloc(sizeof(LLMembership));
	bool		listed[LL_MAX_PEERS] = {false};
	int			i;

	ll_members_load(fresh, W.channel_id);
	for (i = 0; i < fresh->n; i++)
	{
		int			k = member_of(fresh->m[i].pub);

		/*
		 * A slot is kept for every member the others may still admit; a
		 * member decided here but unknown to this worker is not taken in
		 * (only a hand-edited ledger.peer holds one).
		 */
		if (k < 0 && fresh->m[i].since < 0 && W.ms.n < LL_MAX_PEERS &&
			ll_members_local_count(&W.ms) < LL_MAX_LOCAL_REQUESTS)
		{
			k = W.ms.n++;
			W.ms.m[k] = fresh->m[i];
			W.nmembers = W.ms.n;
		}
		else if (k >= 0 && fresh->m[i].conninfo[0] != '\0' &&
				 strcmp(W.ms.m[k].conninfo, fresh->m[i].conninfo) != 0)
		{
			/* one this node was not told, or ledger.set_peer_conninfo */
			strlcpy(W.ms.m[k].conninfo, fresh->m[i].conninfo, sizeof(W.ms.m[k].conninfo));
			if (W.members[k].link != NULL)
				ll_link_set_conninfo(W.members[k].link, W.ms.m[k].conninfo);
		}
		if (k >= 0)
		{
			attach_member(k);
			listed[k] = true;
		}
	}
	/*
	 * A request withdrawn here (ledger.remove_peer) gets no more content
	 * from this node: its slot stays, as the others may still admit it.
	 */
	for (i = 0; i < W.ms.n; i++)
	{
		if (W.ms.m[i].since >= 0 || listed[i])
			W.withdrawn[i] = false;
		else if (W.asked[i])
			W.withdrawn[i] = true;
		W.asked[i] = W.ms.m[i].since < 0 && listed[i];
	}
	pfree(fresh);
}

/* Same request, same id: a request proposed twice counts once. */
static uint64
request_txid(uint8 op, const uint8 *pub, const char *name, const char *tier)
{
	ll_buf		b;
	uint8		h[32];
	uint64		id = 0;
	int			i;

	ll_buf_init(&b, ll_palloc_realloc);
	ll_buf_put_u8(&b, op);
	ll_buf_put(&b, pub, 32);
	ll_buf_put_str(&b, name, strlen(name));
	ll_buf_put_str(&b, tier, strlen(tier));
	ll_sha256(b.data, b.len, h);
	for (i = 0; i < 8; i++)
		id = (id << 8) | h[i];
	return id | UINT64CONST(0x8000000000000000);	/* never a transaction id */
}

/*
 * Whether to propose this request as our vote now.  The others refuse a
 * moot vote, and one beyond our share of pending votes (membership_core.c):
 * proposed anyway it would only be refused again at every round, each time
 * making a block.  A request waiting for room goes out once one of our
 * votes is settled.
 */
static bool
request_wanted(uint8 op, const uint8 *pub, const char *name, const char *tier, int *room)
{
	LLVote		v;

	memset(&v, 0, sizeof(v));
	memcpy(v.voter, W.self_pub, 32);
	v.op = op;
	memcpy(v.pub, pub, 32);
	if (op == LL_TX_ADD_MEMBER)
	{
		strlcpy(v.name, name, NAMEDATALEN);
		strlcpy(v.tier, tier, NAMEDATALEN);
	}
	/* a changed request (another tier or name) is a new vote */
	if (*room <= 0 || ll_vote_pending(&W.ms, &v) || ll_vote_moot(&W.ms, &v))
		return false;
	(*room)--;
	return true;
}

/*
 * This node's DBA asked for membership changes (ledger.add_peer,
 * ledger.remove_peer or ledger.set_peer_clearance after the first block):
 * propose them as this member's votes until they are decided, oldest first.
 */
static void
propose_requests(void)
{
	ll_batch_builder bb;
	ll_buf		out,
				content;
	uint8		hash[32];
	int			nreq = 0;
	int			room = LL_MAX_VOTER_VOTES - ll_members_pending_of(&W.ms, W.self_pub);
	uint64		i;

	if (!ll_is_validator_at(&W.ms, W.self_pub, W.next_height))
		return;
	SPI_execute_with_args("SELECT name, pubkey, coalesce(clearance_requested, clearance), "
						  "since_height IS NULL OR NOT remove_requested FROM ledger.peer "
						  "WHERE channel_id = $1 AND (since_height IS NULL OR "
						  "(remove_requested AND until_height IS NULL) OR "
						  "(clearance_requested <> clearance AND until_height IS NULL)) "
						  "ORDER BY requested_at, name", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)}, NULL, true, 0);
	if (SPI_processed == 0)
		return;
	ll_buf_init(&out, ll_palloc_realloc);
	ll_buf_init(&content, ll_palloc_realloc);
	ll_batch_begin(&bb, &out, &content, MAX_BATCH_BYTES, W.chain_id, W.self_pub,
				   ++W.batch_seq, now_unix_us());
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *name = SPI_getvalue(t, td, 1);
		const uint8 *pub = (const uint8 *) VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(t, td, 2, &isnull)));
		char	   *tier = SPI_getvalue(t, td, 3);
		bool		add = DatumGetBool(SPI_getbinval(t, td, 4, &isnull));
		uint8		op = add ? LL_TX_ADD_MEMBER : LL_TX_REMOVE_MEMBER;
		ll_wire_str n = {name, strlen(name)};
		ll_wire_str tr = {tier, strlen(tier)};

		if (!request_wanted(op, pub, name, tier, &room))
			continue;
		if (add)
			ll_batch_add_member_tx(&bb, request_txid(op, pub, name, tier), pub, n, tr);
		else
			ll_batch_remove_member_tx(&bb, request_txid(op, pub, "", ""), pub);
		nreq++;
	}
	if (nreq > 0 && ll_batch_finish(&bb, cb_sign, NULL, hash) == 0)
	{
		mempool_add(hash, out.data, out.len);
		send_frame(BFT_TO_ALL, LL_FRAME_BATCH, out.data, out.len);
	}
}

/*
 * Declare this node's ledger table definitions that differ from its
 * decided declarations (tabledef.c), until they are decided.
 */
static void
propose_declarations(void)
{
	ll_batch_builder bb;
	ll_buf		out,
				content;
	uint8		hash[32];
	uint8		set[32];
	int			answering = 1;	/* this node */
	int			i;
	static TimestampTz last_sent = 0;
	static TimestampTz last_looked = 0;
	static uint64 looked_gen = 0;
	static bool undecided = false;
	static uint8 last_set[32];
	TimestampTz now = GetCurrentTimestamp();

	if (!ll_is_validator_at(&W.ms, W.self_pub, W.next_height))
		return;
	/*
	 * Look again when a definition may have changed here, while sent ones
	 * wait to be decided, and once a minute in any case.
	 */
	if (looked_gen == ll_tabledef_generation() && !undecided &&
		!TimestampDifferenceExceeds(last_looked, now, 60000))
		return;
	/*
	 * Not before a quorum's links answer: a batch sent while they still
	 * connect reaches nobody, and a proposal naming it costs rounds.
	 */
	for (i = 0; i < W.nmembers; i++)
		if (W.members[i].link != NULL && link_answering(W.members[i].link))
			answering++;
	if ((uint64) answering < bft_quorum(&W.valset))
		return;
	ll_buf_init(&out, ll_palloc_realloc);
	ll_buf_init(&content, ll_palloc_realloc);
	ll_batch_begin(&bb, &out, &content, MAX_BATCH_BYTES, W.chain_id, W.self_pub,
				   W.batch_seq + 1, now_unix_us());
	looked_gen = ll_tabledef_generation();
	last_looked = now;
	undecided = ll_tabledef_declare(W.channel_id, W.self_pub, &bb, set) > 0;
	if (!undecided)
		return;
	/* the same declarations again only every few seconds: usually decided in one */
	if (memcmp(set, last_set, 32) == 0 && !TimestampDifferenceExceeds(last_sent, now, 3000))
		return;
	if (ll_batch_finish(&bb, cb_sign, NULL, hash) == 0)
	{
		W.batch_seq++;
		last_sent = now;
		memcpy(last_set, set, 32);
		mempool_add(hash, out.data, out.len);
		send_frame(BFT_TO_ALL, LL_FRAME_BATCH, out.data, out.len);
	}
}

/* Before any decision the DBA may still be adding the genesis members. */
static bool
genesis_changed(void)
{
	uint8		before[32];
	bool		changed;

	memcpy(before, W.chain_id, 32);
	ll_members_load(&W.ms, W.channel_id);
	compute_chain_id();
	changed = memcmp(before, W.chain_id, 32) != 0;
	return changed;
}

void
membership_round(void)
{
	if (!TimestampDifferenceExceeds(W.last_refresh, GetCurrentTimestamp(), 1000))
		return;
	W.last_refresh = GetCurrentTimestamp();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (W.next_height == 1 && genesis_changed())
	{
		ereport(LOG,
				(errmsg("channel \"%s\": members changed before the first decision; restarting with the new genesis",
						W.channel)));
		proc_exit(1);
	}
	refresh_members();
	propose_requests();
	propose_declarations();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}
