/*
 * consensus.c
 *		The consensus worker of one multi-peer channel.
 *
 * It drives the pure-C BFT core (bft.h) with real events: peers' messages
 * from the inbox, timers, local transactions from the queue.  Local
 * transactions are bundled into signed batches and broadcast; the value
 * the peers agree on is a small payload naming batches by hash (plus the
 * previous ledger head and a time), so consensus runs per block, not per
 * row, and the payload stays within the core's size limit.  A decided
 * payload is applied at once (apply.c) before anything else happens, so
 * the next proposal already builds on it.
 *
 * The worker never holds a transaction while it waits: network I/O is
 * non-blocking (transport.c), and transactions are only opened to apply a
 * block, serve a batch or record evidence.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consensus_int.h"
#include "loopledger.h"

ConsWorker ll_cons_worker;

uint64
now_ms(void)
{
	return (uint64) (GetCurrentTimestamp() / 1000);
}

int64
now_unix_us(void)
{
	return GetCurrentTimestamp() +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/* ---------------------------------------------------------------------
 * Mempool
 * --------------------------------------------------------------------- */

static MemBatch *
mempool_find(const uint8 *hash)
{
	return hash_search(W.mempool, hash, HASH_FIND, NULL);
}

static int	clearance_of(int i);

bool
mempool_add(const uint8 *hash, const uint8 *bytes, size_t len)
{
	bool		found;
	MemBatch   *m = hash_search(W.mempool, hash, HASH_ENTER, &found);

	if (found)
		return false;
	m->bytes = MemoryContextAllocHuge(TopMemoryContext, len);
	memcpy(m->bytes, bytes, len);
	m->len = len;
	m->committed = false;
	m->screened = false;
	m->unchecked = false;
	m->answered_at = 0;
	m->answered_to = 0;
	/* what batch_ok checked on receipt (our own batches are whole) */
	m->complete_to = own_clearance();
	m->arrival = ++W.arrivals;
	if (W.npending == W.pending_cap)
	{
		W.pending_cap = Max(64, W.pending_cap * 2);
		W.pending = W.pending ? repalloc(W.pending, (Size) W.pending_cap * 32)
			: MemoryContextAlloc(TopMemoryContext, (Size) W.pending_cap * 32);
	}
	memcpy(W.pending + (Size) W.npending * 32, hash, 32);
	if (W.npending++ == 0)
		W.pending_since = GetCurrentTimestamp();
	return true;
}

/* Take a batch out of the list of those still to be proposed. */
static void
pending_remove(const uint8 *hash)
{
	int			i;

	for (i = 0; i < W.npending; i++)
		if (memcmp(W.pending + (Size) i * 32, hash, 32) == 0)
		{
			memmove(W.pending + (Size) i * 32, W.pending + (Size) (i + 1) * 32,
					(Size) (W.npending - i - 1) * 32);
			W.npending--;
			return;
		}
}

/* A batch was decided: drop its bytes, keep the hash to refuse repeats. */
static void
mempool_commit(const uint8 *hash)
{
	MemBatch   *m = mempool_find(hash);

	if (m == NULL)
	{
		bool		found;

		m = hash_search(W.mempool, hash, HASH_ENTER, &found);
		m->bytes = NULL;
		m->len = 0;
	}
	m->committed = true;
	m->height = W.next_height;
	if (m->bytes)
		pfree(m->bytes);
	m->bytes = NULL;
	pending_remove(hash);
}

/*
 * Drop an undecided batch whose copy lacks content this node is now
 * cleared for (its clearance was raised since it arrived): a fuller copy
 * is fetched instead.
 */
static void
mempool_forget(const uint8 *hash)
{
	MemBatch   *m = mempool_find(hash);

	if (m == NULL || m->committed)
		return;
	if (m->bytes)
		pfree(m->bytes);
	pending_remove(hash);
	(void) hash_search(W.mempool, hash, HASH_REMOVE, NULL);
}

/*
 * Batches decided before this worker's memory of them (it restarted, or
 * forgot them after KEEP_DECIDED_HEIGHTS) are still in ledger.batch.  A
 * member relaying such a signed batch again must not get it ordered
 * twice: its rows would be skipped by ledger.txlog, but its membership
 * votes and table declarations would count again (a clearance lowered
 * since would go back up, a lapsed vote would admit a key).  So each batch
 * is looked up there once, before this node first proposes or prevotes
 * it; one honest node short of a quorum then never orders it.
 */
static void
screen_decided(const uint8 *hashes, int n)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum	   *want = palloc(sizeof(Datum) * Max(n, 1));
	int			nwant = 0;
	bool		own_xact = !IsTransactionState();
	int			i;
	uint64		r;

	for (i = 0; i < n; i++)
	{
		MemBatch   *m = mempool_find(hashes + (Size) i * 32);

		if (m != NULL && !m->committed && !m->screened)
			want[nwant++] = PointerGetDatum(ll_bytea(hashes + (Size) i * 32, 32));
	}
	if (nwant == 0)
	{
		pfree(want);
		return;
	}
	if (own_xact)
	{
		StartTransactionCommand();
		MemoryContextSwitchTo(caller);
	}
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* kept there for a decided height not applied here yet: still needed */
	SPI_execute_with_args("SELECT batch_hash FROM ledger.batch WHERE channel_id = $1 AND batch_hash = ANY($2) "
						  "AND height < $3",
						  3, (Oid[]) {INT4OID, BYTEAARRAYOID, INT8OID},
						  (Datum[]) {Int32GetDatum(W.channel_id),
							  PointerGetDatum(construct_array(want, nwant, BYTEAOID, -1, false, TYPALIGN_INT)),
						  Int64GetDatum((int64) W.next_height)},
						  NULL, true, 0);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		bytea	   *h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

		if (VARSIZE_ANY_EXHDR(h) == 32)
		{
			ereport(LOG,
					(errmsg("channel \"%s\": a batch decided before was sent again; it is not ordered twice",
							W.channel)));
			mempool_commit((const uint8 *) VARDATA_ANY(h));
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	if (own_xact)
	{
		CommitTransactionCommand();
		/* the commit leaves us in TopMemoryContext */
		MemoryContextSwitchTo(caller);
	}
	for (i = 0; i < n; i++)
	{
		MemBatch   *m = mempool_find(hashes + (Size) i * 32);

		if (m != NULL && !m->committed)
			m->screened = true;
	}
	pfree(want);
}

/*
 * Forget decided batches long past: they are only kept so that a proposal
 * repeating a recent one is refused without a lookup (older ones are
 * found in ledger.batch by screen_decided).
 */
#define KEEP_DECIDED_HEIGHTS 1000

static void
mempool_purge(void)
{
	HASH_SEQ_STATUS seq;
	MemBatch   *m;

	if (W.next_height % KEEP_DECIDED_HEIGHTS != 0)
		return;
	hash_seq_init(&seq, W.mempool);
	while ((m = hash_seq_search(&seq)) != NULL)
		if (m->committed && m->height + KEEP_DECIDED_HEIGHTS < W.next_height)
			(void) hash_search(W.mempool, m->hash, HASH_REMOVE, NULL);
}

/* ---------------------------------------------------------------------
 * Sending
 * --------------------------------------------------------------------- */

/*
 * Queue a frame for one peer or all.  Peers with another genesis only get
 * hellos, so that they too can tell their DBA about the mismatch.
 */
void
send_frame(int to, uint8 kind, const uint8 *body, size_t len)
{
	ll_buf		f;
	int			i;

	ll_buf_init(&f, ll_palloc_realloc);
	ll_frame_append(&f, kind, body, len);
	for (i = 0; i < W.nmembers; i++)
	{
		if (W.members[i].link == NULL ||
			(W.members[i].mismatch && kind != LL_FRAME_HELLO))
			continue;
		if (to == BFT_TO_ALL || to == i)
			ll_link_queue(W.members[i].link, f.data, f.len);
	}
	pfree(f.data);
}

static bool verified_before(void *ctx, const uint8_t pub[32], const uint8_t *msg,
							size_t len, const uint8_t sig[64]);

/* Member i's clearance tier as an index, -1 if not one of the tiers. */
static int
tier_of(int i)
{
	int			t;

	for (t = 0; t < W.ntiers; t++)
		if (strcmp(W.tiers[t], W.ms.m[i].tier) == 0)
			return t;
	return -1;
}

/*
 * Clearance of member i as a tier index (-1: none, sees no content).  The
 * members' clearances are what every node agreed on; a sender redacts by
 * them, so content above a peer's tier never leaves for that peer.  A
 * removed member gets none.  One this node asked to add gets content up
 * to the clearance asked for before the others agree: catching up, it
 * must judge transactions as the members did at each height, which it
 * cannot over commitments (see README, Limits).
 */
static int
clearance_of(int i)
{
	if (i < 0 || i >= W.ms.n || W.ms.m[i].until >= 0 || W.withdrawn[i])
		return -1;
	return tier_of(i);
}

/*
 * This node's own clearance for the height it applies next: a removed
 * member keeps its clearance for the block that removed it (decided by
 * the time that block is applied, see cb_valset_change), and the members
 * serve it that content (ledger.reader_last_height).
 */
int
own_clearance(void)
{
	const LLMember *m;

	if (W.self < 0 || W.self >= W.ms.n)
		return -1;
	m = &W.ms.m[W.self];
	if (m->until >= 0 && W.next_height + BFT_VALSET_DELAY > (uint64) m->until)
		return -1;
	return tier_of(W.self);
}

/*
 * Lowest clearance among the members at height h (voting then, or joining
 * and following): a transaction with a row above it cannot be judged by
 * everyone, so its outcome may not depend on its content (apply.c).
 */
static int
min_clearance_at(uint64 h)
{
	int			i,
				min = W.ntiers - 1;

	for (i = 0; i < W.ms.n; i++)
	{
		const LLMember *m = &W.ms.m[i];

		/* not agreed yet (a local request), or gone by h */
		if (m->since < 0 || (m->until >= 0 && (uint64) m->until <= h))
			continue;
		min = Min(min, tier_of(i));
	}
	return min;
}

/*
 * Whom batches go to: every member this node can reach, but not one whose
 * removal is in force (its copy ended; batches, even redacted, would tell
 * it what the channel does).
 */
static bool
batch_reader(int i)
{
	int64		until = W.ms.m[i].until;

	return W.members[i].link != NULL && (until < 0 || W.next_height < (uint64) until);
}

/* Queue a batch for one peer or all, each copy redacted to its reader. */
static void
send_batch(int to, const uint8 *bytes, size_t len)
{
	ll_batch	b;
	int			top = W.ntiers - 1;
	int			i;

	/* decoding hashes every row: only when some reader is not cleared for all */
	for (i = 0; i < W.nmembers; i++)
		if ((to == BFT_TO_ALL || to == i) && batch_reader(i))
			top = Min(top, clearance_of(i));
	if (top < W.ntiers - 1)
	{
		if (ll_batch_decode(bytes, len, MAX_BATCH_BYTES * 2, verified_before, NULL, &b) != 0)
			return;
		top = ll_batch_top_tier(&b);
	}
	for (i = 0; i < W.nmembers; i++)
	{
		int			c = clearance_of(i);
		ll_buf		red;

		if ((to != BFT_TO_ALL && to != i) || !batch_reader(i))
			continue;
		if (top <= c)
		{
			send_frame(i, LL_FRAME_BATCH, bytes, len);
			continue;
		}
		ll_buf_init(&red, ll_palloc_realloc);
		if (ll_batch_redact(&b, c, &red) == 0)
			send_frame(i, LL_FRAME_BATCH, red.data, red.len);
		pfree(red.data);
	}
}

static void
request_batches(const uint8 *hashes, int n)
{
	ll_buf		body;

	ll_buf_init(&body, ll_palloc_realloc);
	if (ll_batch_req_encode(&body, hashes, (uint16) n) == 0)
		send_frame(BFT_TO_ALL, LL_FRAME_BATCH_REQ, body.data, body.len);
	pfree(body.data);
}

static bool
cb_verify(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
		  const uint8_t sig[64])
{
	return bft_ed25519_verify(ctx, pub, msg, len, sig);
}

int
member_of(const uint8 *pub)
{
	return ll_member_index(&W.ms, pub);
}

static bool
verified_before(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
				const uint8_t sig[64])
{
	return true;
}

/* Decode a batch and check it belongs to this channel and a member. */
/*
 * A copy redacted below this node's clearance (by a peer's relay or a
 * stale view of our clearance) is refused: another copy will be complete.
 */
/*
 * A batch's origin is established by its signature, or without checking it
 * when the origin itself sent the batch over a link whose MAC checked out
 * (the signature then stays for the record), or when a certificate already
 * names the batch: 2f+1 validators accepted it, so at least one honest one
 * checked its origin.
 */
static bool
batch_verify(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
			 const uint8_t sig[64])
{
	int			i;

	if (W.link_sender != NULL && memcmp(W.link_sender, pub, 32) == 0)
	{
		W.batches_by_mac++;
		return true;
	}
	if (bft_ed25519_verify(ctx, pub, msg, len, sig))
		return true;
	for (i = 0; len == 32 && i < W.ncertified; i++)
		if (memcmp(W.certified + (Size) i * 32, msg, 32) == 0)
		{
			ereport(LOG,
					(errmsg("channel \"%s\": taking a decided batch whose signature does not verify, on its certificate",
							W.channel)));
			return true;
		}
	return false;
}

/* Whether some height this node may yet vote on can order origin's batches. */
static bool
orderable_origin(const uint8 *origin)
{
	uint64		h;

	for (h = W.next_height; h <= W.next_height + BFT_VALSET_DELAY; h++)
		if (ll_is_validator_at(&W.ms, origin, h))
			return true;
	return false;
}

/*
 * Outside a certified block (W.certified), a batch no height in reach can
 * order is refused before its signature is checked: a removed member, or
 * one added here but not admitted, could otherwise fill the mempool with
 * batches nothing ever orders or frees.
 */
bool
batch_ok(const uint8 *bytes, size_t len, ll_batch *b)
{
	bool		live = W.ncertified == 0;

	if (live && (len < 36 + 32 || !orderable_origin(bytes + 36)))
		return false;
	if (ll_batch_decode(bytes, len, MAX_BATCH_BYTES, batch_verify, NULL, b) != 0)
		return false;
	return memcmp(b->chain_id, W.chain_id, 32) == 0 && member_of(b->origin) >= 0 &&
		(!live || orderable_origin(b->origin)) &&
		ll_batch_complete_for(b, own_clearance());
}

/* ---------------------------------------------------------------------
 * Core callbacks
 * --------------------------------------------------------------------- */

/* Only voting members' batches may be ordered at a height. */
static bool
origin_votes(const MemBatch *m, uint64 height)
{
	return ll_is_validator_at(&W.ms, m->bytes + 36, height);
}

/*
 * The value a payload stands for, from its bytes alone: the core drops a
 * proposal whose payload is not its signed value's, whatever this node's
 * state, so that a relay cannot swap the payload of a genuine proposal.
 */
static bool
cb_value_of(void *ctx, const uint8_t *payload, size_t len, uint8_t value[32])
{
	return ll_payload_value(payload, len, value) == 0;
}

static bool
cb_validate(void *ctx, uint64_t height, const uint8_t value[32],
			const uint8_t *payload, size_t len)
{
	ll_payload p;
	uint8		v[32];
	uint8	   *missing;
	int			nmissing = 0;
	int			i;

	if (ll_payload_decode(payload, len, &p) != 0 || p.height != height ||
		ll_payload_value(payload, len, v) != 0 || memcmp(v, value, 32) != 0)
		return false;
	/* only checkable once the previous height is applied here */
	if (W.next_height == height &&
		memcmp(p.prev_head, W.apply.ledger_head, 32) != 0)
		return false;
	screen_decided(p.batch_hashes, p.nbatches);
	missing = palloc((Size) Max(p.nbatches, 1) * 32);
	for (i = 0; i < p.nbatches; i++)
	{
		MemBatch   *m = mempool_find(p.batch_hashes + (Size) i * 32);

		if (m != NULL && (m->committed || (m->bytes && !origin_votes(m, height))))
		{
			pfree(missing);
			return false;		/* decided before, or not from a voting member */
		}
		if (m == NULL)
			memcpy(missing + (Size) nmissing++ * 32, p.batch_hashes + (Size) i * 32, 32);
	}
	if (nmissing > 0)
		request_batches(missing, nmissing);
	pfree(missing);
	return nmissing == 0;
}

int
cb_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	return bft_ed25519_sign(W.key, msg, len, sig);
}

static void process_inbox(bool batches_only);
static void halt(const char *fmt, uint64 height) pg_attribute_noreturn();
static void idle_for_good(const char *label, char why) pg_attribute_noreturn();
static bool past_removal(uint64 height);
static void retire(void) pg_attribute_noreturn();
static void service_links(void);
static void wait_for_work(long timeout);
static void publish_status(void);

/* ---------------------------------------------------------------------
 * Applying decisions
 * --------------------------------------------------------------------- */


void
make_read_token(ReadToken *t, const uint8 *audience)
{
	uint64		at = (uint64) (now_unix_us() / 1000);
	uint8		msg[LL_READ_TOKEN_LEN];
	uint8		sig[64];

	ll_read_token_msg(msg, W.chain_id, W.self_pub, audience, at);
	if (bft_ed25519_sign(W.key, msg, sizeof(msg), sig) != 0)
		elog(ERROR, "could not sign a read token");
	memcpy(t->req, "\\x", 2);
	ll_hex_encode(W.self_pub, 32, t->req + 2);
	snprintf(t->at, sizeof(t->at), UINT64_FORMAT, at);
	memcpy(t->sig, "\\x", 2);
	ll_hex_encode(sig, 64, t->sig + 2);
}

static bool
have_batches(const uint8 *hashes, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (mempool_find(hashes + (Size) i * 32) == NULL)
			return false;
	return true;
}

/* Fetch decided batches we never received from the first peers that have them. */
static bool
fetch_batches(const uint8 *hashes, int n)
{
	int			i;
	StringInfoData arr;
	ReadToken	tok;

	initStringInfo(&arr);
	appendStringInfoChar(&arr, '{');
	for (i = 0; i < n; i++)
	{
		int			j;

		if (i > 0)
			appendStringInfoChar(&arr, ',');
		appendStringInfoString(&arr, "\"\\\\x");
		for (j = 0; j < 32; j++)
			appendStringInfo(&arr, "%02x", hashes[(Size) i * 32 + j]);
		appendStringInfoChar(&arr, '"');
	}
	appendStringInfoChar(&arr, '}');
	for (i = 0; i < W.nmembers; i++)
	{
		const char *vals[5] = {W.channel, arr.data, tok.req, tok.at, tok.sig};
		PGresult   *res;
		int			r;

		if (W.members[i].link == NULL || W.members[i].mismatch)
			continue;
		make_read_token(&tok, W.members[i].pub);
		res = ll_link_fetch(W.members[i].link,
							"SELECT ledger.batches($1, $2::bytea[], $3::bytea, $4::bigint, $5::bytea)",
							5, NULL, vals, NULL, NULL);
		if (res == NULL)
			continue;
		for (r = 0; PQnfields(res) == 1 && r < PQntuples(res); r++)
		{
			ll_batch	b;
			const uint8 *bytes = (const uint8 *) PQgetvalue(res, r, 0);
			size_t		len = PQgetlength(res, r, 0);

			if (batch_ok(bytes, len, &b))
				mempool_add(b.batch_hash, bytes, len);
		}
		PQclear(res);
		if (have_batches(hashes, n))
			break;
	}
	pfree(arr.data);
	return have_batches(hashes, n);
}

/*
 * Stop taking part in the channel (without restarting the server in a
 * loop: a worker that exits is started again); the rest of the server
 * keeps working.  Calls from peers are taken and dropped, so that their
 * senders are not told "busy" for ever.
 */
static void
idle_for_good(const char *label, char why)
{
	SpinLockAcquire(&W.slot->mutex);
	strlcpy(W.slot->proposer, label, NAMEDATALEN);
	W.slot->is_validator = false;
	W.slot->stopped = why;		/* waiting backends give up (submit.c) */
	SpinLockRelease(&W.slot->mutex);
	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		(void) ll_queue_take(W.slot, true, W.inbox_buf, LL_INBOX_SIZE);
	}
}

/*
 * This node's copy disagrees with what the members decided: stop voting
 * and applying until an operator looks.
 */
static void
halt(const char *fmt, uint64 height)
{
	char		msg[256];

	snprintf(msg, sizeof(msg), fmt, W.channel, height);
	ereport(WARNING,
			(errmsg("%s", msg),
			 errdetail("This node's consensus worker stops voting and applying for the channel."),
			 errhint("Compare ledger.verify() and ledger.digest() with the other members; restore this node's copy from a member's, then restart the server.")));
	idle_for_good("(halted: diverged)", 'd');
}

/*
 * The height whose block removed this node from the channel, 0 if none
 * did.  From the next block on every sender redacts all content for it,
 * so it could only follow over commitments: it could not judge a single
 * transaction, and one the members refuse (two of them inserting one key
 * at once, say) would make its copy differ from theirs.
 */
static uint64
removed_at(void)
{
	int64		until = W.self >= 0 ? W.ms.m[W.self].until : -1;

	return until >= BFT_VALSET_DELAY ? (uint64) until - BFT_VALSET_DELAY : 0;
}

/*
 * A removed member's copy ends with the block that removed it: it verifies
 * clean and matches the members' chain up to there.  It still votes at the
 * one height after it, where it is in the validator set (its vote may be
 * needed for a quorum), but applies nothing after it.  height: the height
 * about to be applied, or the last one applied (a copy an older build
 * took further).
 */
static bool
past_removal(uint64 height)
{
	uint64		h = removed_at();

	if (h == 0 || height <= h)
		return false;
	W.retiring = true;
	return true;
}

static bool
links_drained(void)
{
	int			i;

	for (i = 0; i < W.nmembers; i++)
	{
		LLLink	   *l = W.members[i].link;

		if (l != NULL && l->conn != NULL && (l->out.len > 0 || l->call.len > 0 || l->inflight > 0))
			return false;
	}
	return true;
}

/*
 * Called at the end of a loop, after its messages were queued: they are
 * sent (its last precommit among them) before the worker stops following.
 */
static void
retire(void)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 2000);

	while (!links_drained() && GetCurrentTimestamp() < until)
	{
		service_links();
		wait_for_work(20);
		CHECK_FOR_INTERRUPTS();
	}
	ereport(LOG,
			(errmsg("this node was removed from ledger channel \"%s\" by the block of consensus height " UINT64_FORMAT
					"; its copy of the chain ends at height " UINT64_FORMAT, W.channel, removed_at(),
					W.next_height - 1),
			 errdetail("The members no longer send it content; its consensus worker stops following the channel."),
			 errhint("To take part again, this organisation needs a new node key and name, added by the members with ledger.add_peer().")));
	/* ledger.consensus_status shows the validators that went on */
	ll_valset_at(&W.ms, removed_at() + BFT_VALSET_DELAY, &W.valset);
	publish_status();
	idle_for_good("(removed)", 'r');
}

/*
 * The clearance decided height h is applied at: a change decided in h
 * itself is in force from h + 1, as the members serve h (their
 * ledger.peer_clearance), although decide_members counted it already.
 */
static int
clearance_at(uint64 h)
{
	return h == W.clearance_changed_at ? W.clearance_before : own_clearance();
}

/* Has a stored copy the content clearance c calls for? */
static bool
copy_complete(MemBatch *mb, int c)
{
	ll_batch	b;

	if (ll_batch_decode(mb->bytes, mb->len, MAX_BATCH_BYTES, verified_before, NULL, &b) != 0 ||
		!ll_batch_complete_for(&b, c))
		return false;
	mb->complete_to = c;
	return true;
}

/*
 * The decided batches of a payload, decoded (signatures were checked when
 * they entered the mempool); missing ones are taken from the inbox or
 * fetched from peers first.  NULL if they cannot be had.
 */
static ll_batch *
decided_batches(const ll_payload *p, int clearance)
{
	ll_batch   *batches;
	int			i;

	W.certified = p->batch_hashes;
	W.ncertified = p->nbatches;
	for (i = 0; i < 50; i++)
	{
		int			k,
					nmissing = 0;
		uint8	   *missing = palloc((Size) Max(p->nbatches, 1) * 32);

		for (k = 0; k < p->nbatches; k++)
		{
			MemBatch   *mb = mempool_find(p->batch_hashes + (Size) k * 32);

			if (mb != NULL && mb->bytes != NULL && mb->complete_to < clearance &&
				!copy_complete(mb, clearance))
			{
				mempool_forget(mb->hash);
				mb = NULL;
			}
			if (mb == NULL || mb->bytes == NULL)
				memcpy(missing + (Size) nmissing++ * 32, p->batch_hashes + (Size) k * 32, 32);
		}
		if (nmissing == 0)
			break;
		process_inbox(true);
		if (i > 0 && fetch_batches(missing, nmissing))
			break;
		pg_usleep(100 * 1000L);
		CHECK_FOR_INTERRUPTS();
	}
	W.certified = NULL;
	W.ncertified = 0;
	batches = palloc0(sizeof(ll_batch) * Max(p->nbatches, 1));
	for (i = 0; i < p->nbatches; i++)
	{
		MemBatch   *mb = mempool_find(p->batch_hashes + (Size) i * 32);

		if (mb == NULL || mb->bytes == NULL ||
			ll_batch_decode(mb->bytes, mb->len, MAX_BATCH_BYTES, verified_before, NULL,
							&batches[i]) != 0)
			return NULL;
	}
	return batches;
}

/*
 * Count a decided block's membership votes exactly once per height, from
 * the core's valset_change callback or, on catch-up, before applying.
 */
static bool
decide_members(uint64 height, const uint8 *payload, size_t len)
{
	ll_payload	p;
	ll_batch   *batches;
	bool		changed;
	int			before = own_clearance();

	if (W.members_decided >= height)
		return false;
	if (ll_payload_decode(payload, len, &p) != 0 ||
		(batches = decided_batches(&p, before)) == NULL)
		elog(ERROR, "the batches of decided height " UINT64_FORMAT " are not available", height);
	changed = ll_members_decide(&W.ms, height, batches, p.nbatches);
	W.members_decided = height;
	if (own_clearance() != before)
	{
		W.clearance_changed_at = height;
		W.clearance_before = before;
	}
	pfree(batches);
	return changed;
}

static bool
cb_valset_change(void *ctx, uint64_t height, const uint8_t *payload, size_t len,
				 bft_valset *next)
{
	if (!decide_members(height, payload, len))
		return false;
	ll_valset_at(&W.ms, height + BFT_VALSET_DELAY, next);
	ereport(LOG,
			(errmsg("channel \"%s\": membership change decided at height " UINT64_FORMAT
					", %u validators from height " UINT64_FORMAT,
					W.channel, height, next->n, height + BFT_VALSET_DELAY)));
	return true;
}

/*
 * The first decision seals the genesis.  ledger.add_peer, remove_peer and
 * set_peer_clearance lock the channel's row before they look for a first
 * decision; this update waits for them, and a genesis they changed
 * meanwhile stops the block: the worker starts again on the new genesis
 * (which its peers then refuse, visibly), instead of counting a member
 * the others never had.
 */
static void
seal_genesis(void)
{
	bytea	   *hash;

	SPI_execute_with_args("UPDATE ledger.channel SET name = name WHERE channel_id = $1", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)},
						  NULL, false, 0);
	PushActiveSnapshot(GetLatestSnapshot());
	hash = DatumGetByteaPP(DirectFunctionCall1(ll_genesis_hash_sql,
											   CStringGetTextDatum(W.channel)));
	PopActiveSnapshot();
	if (VARSIZE_ANY_EXHDR(hash) != 32 || memcmp(VARDATA_ANY(hash), W.chain_id, 32) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\": its members changed while its first block was applied", W.channel),
				 errdetail("ledger.add_peer, remove_peer or set_peer_clearance committed as the first decision came; the block is not applied here."),
				 errhint("Every member must list the same members before the first block; compare ledger.peers on each.")));
}

static void
persist_members(void *arg, uint64 height)
{
	if (height == 1)
		seal_genesis();
	ll_members_persist(&W.ms, W.channel_id, height);
}

/* Apply a certified payload; batches come from the mempool (or peers). */
void
apply_payload(uint64 height, const uint8 *payload, size_t plen, const bft_cert *cert)
{
	ll_payload	p;
	ll_batch   *batches;
	bft_msg		m;
	uint8	   *dec = palloc(BFT_MAX_MSG);
	size_t		dlen;
	int			i;

	if (past_removal(height))
		return;
	if (ll_payload_decode(payload, plen, &p) != 0)
		elog(ERROR, "decided payload at height " UINT64_FORMAT " does not decode", height);
	if (memcmp(p.prev_head, W.apply.ledger_head, 32) != 0)
		halt("ledger channel \"%s\" diverged at height " UINT64_FORMAT
			 ": the decided block builds on a ledger head this node does not have", height);
	if (W.members_decided < height)
		(void) decide_members(height, payload, plen);
	batches = decided_batches(&p, clearance_at(height));
	if (batches == NULL)
		elog(ERROR, "the batches of decided height " UINT64_FORMAT " are not available", height);
	memset(&m, 0, sizeof(m));
	m.type = BFT_MSG_BLOCK_RESP;
	m.u.resp.payload = payload;
	m.u.resp.payload_len = (uint32) plen;
	m.u.resp.cert = *cert;
	if (bft_encode(&m, dec, BFT_MAX_MSG, &dlen) != 0)
		elog(ERROR, "could not encode the certificate of height " UINT64_FORMAT, height);
	{
		MemoryContext cxt = CurrentMemoryContext;

		W.apply.on_members = persist_members;
		W.apply.self_clearance = clearance_at(height);
		W.apply.min_clearance = min_clearance_at(height);
		ll_valset_at(&W.ms, height, &W.apply.valset);
		ll_apply_decision(&W.apply, height, p.time_us, dec, dlen, batches, p.nbatches);
		MemoryContextSwitchTo(cxt);
	}
	for (i = 0; i < p.nbatches; i++)
		mempool_commit(p.batch_hashes + (Size) i * 32);
	W.next_height = height + 1;
	mempool_purge();
	ll_valset_at(&W.ms, W.next_height, &W.valset);
	for (i = W.nmembers; i < W.ms.n; i++)
		attach_member(i);
	W.nmembers = W.ms.n;
	W.last_progress = GetCurrentTimestamp();
	pfree(batches);
	pfree(dec);
}

/* ---------------------------------------------------------------------
 * Driving the core
 * --------------------------------------------------------------------- */

static void step(bft_event *ev);
/*
 * A proposal whose batches have not arrived yet is held back (the batches
 * are asked for) instead of being judged invalid at once: batches travel
 * from their origin, the proposal from the proposer, and either may come
 * first.  Held proposals go to the core when complete, or after
 * HOLD_MS, when the core then finds them invalid.  Proposals for the
 * next height wait here too (on_consensus_frame).
 */
#define MAX_HELD 8
#define HOLD_MS 300

typedef struct Held
{
	int			from;
	uint8	   *bytes;
	size_t		len;
	uint64		height;
	uint32		round;
	bool		signed_ok;		/* checked: signed by its turn's proposer */
	TimestampTz arrived;
	TimestampTz since;			/* of its height's turn here: HOLD_MS from it */
} Held;

static Held held[MAX_HELD];

static int	nheld = 0;			/* proposals held back */
static int	missing_batches(const uint8 *data, size_t len, bool request);

static void
record_evidence(const bft_evidence *e)
{
	int			v = e->a.validator < W.valset.n ? member_of(W.valset.v[e->a.validator].pubkey) : -1;

	ereport(WARNING,
			(errmsg("validator \"%s\" of channel \"%s\" signed conflicting votes at height " UINT64_FORMAT " round %u",
					v >= 0 ? W.members[v].name : "?", W.channel,
					e->a.height, e->a.round)));
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute_with_args("INSERT INTO ledger.evidence (channel_id, validator, height, round, vote_type, proof) "
						  "VALUES ($1, $2, $3, $4, $5, $6)", 6,
						  (Oid[]) {INT4OID, TEXTOID, INT8OID, INT4OID, TEXTOID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(W.channel_id),
							  CStringGetTextDatum(v >= 0 ? W.members[v].name : "?"),
							  Int64GetDatum((int64) e->a.height), Int32GetDatum((int32) e->a.round),
							  CStringGetTextDatum(e->a.type == BFT_MSG_PREVOTE ? "prevote" : "precommit"),
						  PointerGetDatum(ll_bytea((const uint8 *) e, sizeof(*e)))},
						  NULL, false, 0);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

#ifdef LL_FAULT_INJECTION
static int
fault_sign(const uint8 *msg, size_t len, uint8 sig[64])
{
	return bft_ed25519_sign(W.key, msg, len, sig);
}

static void
fault_emit(int to, uint8 kind, const uint8 *body, size_t len)
{
	send_frame(to, kind, body, len);
}
#endif

/*
 * A proposer whose server is down cannot propose, and waiting the whole
 * propose timeout for it (a second) would stall every n-th height for as
 * long as a member is crashed.  Timeouts pace liveness only, never safety
 * (Tendermint's proof holds for any timeout a node picks), so a node may
 * cut this one short when it has good reason: its link to the proposer is
 * not up, or up but with a call unanswered for two hello periods (a hung
 * server, or a network that silently drops packets: TCP alone would keep
 * the link up for minutes), and nothing has been heard from it for two
 * hello periods either (the worker's own start counts as news: right
 * after it, links are still connecting and no hello has had time to come
 * in).  A member sending hellos in the proposer's name only brings back
 * the usual timeout.
 */
#define DOWN_PROPOSER_MS 20

static TimestampTz worker_started;	/* the silence counts from here at most */

/* Up, with no call left unanswered for two hello periods. */
bool
link_answering(LLLink *l)
{
	return strcmp(l->state, "up") == 0 && ll_link_unanswered_ms(l) <= 2 * HELLO_MS;
}

static bool
proposer_down(uint64 height, uint32 round)
{
	const bft_valset *vs = bft_current_valset(W.node);
	int			k;
	Member	   *m;

	if (height != bft_height(W.node) || vs->n == 0)
		return false;
	k = member_of(vs->v[bft_proposer(vs, height, round)].pubkey);
	if (k < 0 || k == W.self)
		return false;
	m = &W.members[k];
	return m->link != NULL && !link_answering(m->link) &&
		TimestampDifferenceExceeds(Max(m->last_contact, worker_started),
								   GetCurrentTimestamp(), 2 * HELLO_MS);
}

/*
 * Proposers are paced by their record.  A member that answers but does
 * not propose (a liar, or a server that can no longer build blocks) would
 * cost each of its turns the whole propose timeout; one that proposes
 * every time just before the timeout runs out costs nearly as much, and
 * its blocks are valid and decided.  So each validator judges every turn
 * of every other member by its own view, while it is not behind:
 *	 on time - its proposal reached this node's core within the pace and
 *			   the core prevoted for it;
 *	 late	 - it came later, though a batch had waited here for longer
 *			   than the pace; an empty proposal gets IDLE_PROPOSE_MS more,
 *			   as an honest proposer with nothing to order waits that long
 *			   (a batch may reach us before it);
 *	 invalid - the core prevoted nil on its signed proposal (its payload
 *			   did not check out, or it conflicts with our lock);
 *	 missed  - the propose timeout fired while the core still waited, and a
 *			   batch had waited here for at least the pace.
 * A proposal is judged by when it reached this server (the peer backend
 * stamps it), not by when this worker, perhaps busy applying a block, read
 * it; one held while its batches are fetched likewise, and a held one that is still incomplete when fed is not judged
 * (a liar may have sent its proposer a batch nobody else has).  Only
 * proposals signed by the turn's proposer count: forged or unsigned ones
 * neither delay a strike nor earn an allowance.
 * Late, invalid and missed turns add STRIKE strikes, a turn on time takes
 * one away, and while a member has strikes round 0 of its heights gets
 * the pace as propose timeout instead of the whole second.  A liar that
 * proposes late cannot win its second back by proposing once on time: it
 * must be on time STRIKE times for each late turn, so it costs at most
 * about the pace per turn.  Later rounds keep the whole timeout, so pacing
 * only hands a paced member's height to the next proposer sooner and can
 * never stop the channel.
 * The pace is three times a typical proposal delay: each member's median
 * over its last PACE_SAMPLES judged proposals, and of those medians the
 * (f+1)-th largest, which lies between honest members' medians whatever
 * f liars do.  So it follows the network between the organisations
 * instead of assuming loopback.  Until f+1 members have PACE_TRUST
 * samples nobody is judged late; missed turns are judged from the start
 * (PACE_MIN_MS stands in for the pace then).
 */
#define PACE_MIN_MS 100
#define PACE_TRUST 8
#define STRIKE 8
#define STRIKES_MAX (8 * STRIKE)

/* The round this node's core is in, and whether its proposal was judged. */
static struct
{
	uint64		height;
	uint32		round;
	TimestampTz start;			/* when the core entered it */
	TimestampTz held_since;		/* its proposal, held for batches, came */
	bool		empty;			/* its proposal names no batch */
	bool		judged;
}			turn;

static int	step_kind;			/* of the event being stepped */
static TimestampTz feeding_held;	/* when the held proposal being fed came */
static TimestampTz frame_arrived;	/* when the frames being read came */
static bool feeding_incomplete; /* and it still lacks batches */

static int
cmp_desc(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x > y ? -1 : x < y;
}

static uint32
member_median(const Member *m)
{
	uint32		sorted[PACE_SAMPLES];

	memcpy(sorted, m->delay_ms, sizeof(uint32) * m->ndelays);
	qsort(sorted, m->ndelays, sizeof(uint32), cmp_desc);
	return sorted[m->ndelays / 2];
}

/* The pace, or 0 while too few proposals were judged to know it. */
static uint32
pace_ms(void)
{
	uint32		med[BFT_MAX_VALIDATORS];
	int			f = W.valset.n > 0 ? (int) (W.valset.n - 1) / 3 : 0;
	int			n = 0;
	uint32		v;

	for (v = 0; v < W.valset.n; v++)
	{
		int			k = member_of(W.valset.v[v].pubkey);

		if (k >= 0 && k != W.self && W.members[k].ndelays >= PACE_TRUST)
			med[n++] = member_median(&W.members[k]);
	}
	if (n < f + 1)
		return 0;
	qsort(med, n, sizeof(uint32), cmp_desc);
	return Min(Max(PACE_MIN_MS, 3 * med[f]), W.cfg.timeout_propose_ms);
}

static uint32
pace_or_min_ms(void)
{
	uint32		pace = pace_ms();

	return pace > 0 ? pace : PACE_MIN_MS;
}

static Member *
proposer_member(const bft_valset *vs, uint64 height, uint32 round)
{
	int			k;

	if (vs->n == 0)
		return NULL;
	k = member_of(vs->v[bft_proposer(vs, height, round)].pubkey);
	return k < 0 || k == W.self ? NULL : &W.members[k];
}

static bool
proposer_paced(uint64 height, uint32 round)
{
	Member	   *m;

	if (height != bft_height(W.node) || round != 0)
		return false;
	m = proposer_member(bft_current_valset(W.node), height, round);
	return m != NULL && m->strikes > 0;
}

/*
 * A validator that is not behind sees proposals as they come.  Behind:
 * f+1 validators said they are further on, so one liar cannot say so.
 */
static bool
judging(void)
{
	int			ahead = 0;
	uint32		v;

	if (W.self < 0 || bft_valset_find(&W.valset, W.self_pub) < 0)
		return false;
	for (v = 0; v < W.valset.n; v++)
	{
		int			k = member_of(W.valset.v[v].pubkey);

		if (k >= 0 && k != W.self && !W.members[k].mismatch &&
			W.members[k].height > (int64) W.next_height + 1)
			ahead++;
	}
	return ahead < (int) (W.valset.n - 1) / 3 + 1;
}

/* How long a batch has waited here in this turn, in ms. */
static uint32
waited_ms(TimestampTz until)
{
	long		secs;
	int			us;

	if (W.npending == 0)
		return 0;
	TimestampDifference(Max(turn.start, W.pending_since), until, &secs, &us);
	return (uint32) Min(secs * 1000 + us / 1000, PG_INT32_MAX);
}

static void
strike(Member *m, char why, uint32 delay_ms)
{
	if (m->strikes == 0)
	{
		if (why == 'l')
			ereport(LOG,
					(errmsg("member \"%s\" of channel \"%s\" proposed %u ms late: its turns to propose get %u ms from now on",
							m->name, W.channel, delay_ms, pace_or_min_ms())));
		else
			ereport(LOG,
					(errmsg("member \"%s\" of channel \"%s\" %s: its turns to propose get %u ms from now on",
							m->name, W.channel,
							why == 'i' ? "proposed a block this node could not accept" : "did not propose in time",
							pace_or_min_ms())));
	}
	m->strikes = Min(m->strikes + STRIKE, STRIKES_MAX);
	m->last_strike = why;
}

static void
on_time(Member *m)
{
	if (m->strikes > 0 && --m->strikes == 0)
		ereport(LOG,
				(errmsg("member \"%s\" of channel \"%s\" proposes on time again", m->name, W.channel)));
}

/*
 * Late ones count too, so the pace can grow when every member slows down
 * (their turns in later rounds keep the whole timeout, and are judged).
 */
static void
sample_delay(Member *m, uint32 delay_ms)
{
	if (turn.empty)
		return;					/* an idle wait says nothing of the network */
	m->delay_ms[m->next_delay] = Min(delay_ms, W.cfg.timeout_propose_ms);
	m->next_delay = (m->next_delay + 1) % PACE_SAMPLES;
	m->ndelays = Min(m->ndelays + 1, PACE_SAMPLES);
}

/* Before the core sees a propose timeout: was the proposer's turn missed? */
static void
note_propose_timeout(const bft_timer *t)
{
	Member	   *m;

	if (t->kind != BFT_TIMER_PROPOSE || t->height != bft_height(W.node) ||
		t->round != bft_round(W.node) || bft_step_of(W.node) != BFT_STEP_PROPOSE ||
		turn.judged || turn.held_since != 0 || !judging() ||
		waited_ms(GetCurrentTimestamp()) < pace_or_min_ms() ||
		proposer_down(t->height, t->round))
		return;
	m = proposer_member(bft_current_valset(W.node), t->height, t->round);
	if (m != NULL)
		strike(m, 'm', 0);
	turn.judged = true;
}

/* This node's own prevote of the turn in out, if there is one. */
static bool
own_prevote(const bft_output *out, bft_vote *v)
{
	int			self = bft_valset_find(&W.valset, W.self_pub);
	uint32		i;

	for (i = 0; i < out->nmsgs; i++)
	{
		const uint8 *body = out->buf + out->msgs[i].off;
		bft_msg		msg;

		/* the type byte follows the version byte (bft_wire.c) */
		if (out->msgs[i].len > 1 && body[1] == BFT_MSG_PREVOTE &&
			bft_decode(body, out->msgs[i].len, &msg) == BFT_OK &&
			msg.u.vote.validator == self && msg.u.vote.height == turn.height &&
			msg.u.vote.round == turn.round)
		{
			*v = msg.u.vote;
			return true;
		}
	}
	return false;
}

/*
 * The core answered the proposal of the round it was in with its prevote
 * (in out, before the core's output is sent): judge the proposer's turn.
 * Runs before a commit in out is applied, so W.valset is the turn's set.
 */
static void
judge_turn(const bft_output *out)
{
	bft_vote	v;
	Member	   *m;
	uint32		delay,
				pace;

	if (turn.judged || turn.height != W.next_height || !own_prevote(out, &v))
		return;
	turn.judged = true;
	m = proposer_member(&W.valset, turn.height, turn.round);
	if (m == NULL || feeding_incomplete || !judging())
		return;
	if (v.is_nil)
	{
		/* not a timeout: the core had the proposer's signed proposal */
		if (step_kind != BFT_EV_TIMEOUT && W.npending > 0)
			strike(m, 'i', 0);
		return;
	}
	if (W.npending == 0)
		return;
	delay = waited_ms(feeding_held != 0 ? feeding_held :
					  frame_arrived != 0 ? frame_arrived : GetCurrentTimestamp());
	pace = pace_ms();
	if (pace > 0 && delay > pace + (turn.empty ? IDLE_PROPOSE_MS : 0))
		strike(m, 'l', delay);
	else
		on_time(m);
	sample_delay(m, delay);
}

/*
 * After every step: a new height or round starts a new turn.  A core that
 * prevoted while entering it (a proposal it had buffered) is done with it.
 */
static void
track_turn(void)
{
	if (bft_height(W.node) == turn.height && bft_round(W.node) == turn.round)
		return;
	turn.height = bft_height(W.node);
	turn.round = bft_round(W.node);
	turn.start = GetCurrentTimestamp();
	turn.held_since = 0;
	turn.empty = false;
	turn.judged = bft_step_of(W.node) != BFT_STEP_PROPOSE;
}

/*
 * A proposal signed by the proposer of its height and round (one Ed25519
 * check; the core checks again when it is fed, so this is done only where
 * the worker must trust a proposal before the core has seen it).
 */
static bool
signed_proposal(const bft_msg *m)
{
	const bft_proposal *pr = &m->u.proposal;
	uint8		value[32];
	uint8		sb[BFT_SIGN_BYTES_LEN];
	uint32		who;

	if (W.valset.n == 0)
		return false;
	who = bft_proposer(&W.valset, pr->height, pr->round);
	if (pr->proposer != who ||
		ll_payload_value(pr->payload, pr->payload_len, value) != 0 ||
		memcmp(value, pr->value, 32) != 0)
		return false;
	bft_sign_bytes(W.chain_id, BFT_MSG_PROPOSAL, pr->height, pr->round, pr->valid_round,
				   false, pr->value, sb);
	return bft_ed25519_verify(NULL, W.valset.v[who].pubkey, sb, sizeof(sb), pr->sig);
}

/*
 * A proposal of the current turn signed by its proposer: only those may
 * mark the turn held or empty.  Checked for such proposals alone (held
 * ones, and empty ones, which come when there is little to do).
 */
static bool
signed_turn_proposal(const bft_msg *m)
{
	return m->u.proposal.height == turn.height && m->u.proposal.round == turn.round &&
		turn.height == W.next_height && signed_proposal(m);
}

/*
 * Timers are never cancelled (the core ignores stale ones), so drop those
 * of past heights here; otherwise a busy node runs out of slots and loses
 * the one timeout it needs.
 */
static void
put_timer(uint64 due, const bft_timer *t)
{
	uint64		h = bft_height(W.node);
	int			i = 0;

	while (i < W.ntimers)
	{
		if (W.timers[i].t.height < h)
			W.timers[i] = W.timers[--W.ntimers];
		else
			i++;
	}
	if (W.ntimers == MAX_TIMERS)
	{
		elog(WARNING, "consensus timer table full; dropping the oldest timer");
		W.timers[0] = W.timers[--W.ntimers];
	}
	W.timers[W.ntimers].due_ms = due;
	W.timers[W.ntimers].t = *t;
	W.ntimers++;
}

static void
add_timer(uint64 now, const bft_timer *t)
{
	uint32		delay = t->delay_ms;

	if (t->kind == BFT_TIMER_PROPOSE && delay > DOWN_PROPOSER_MS && proposer_down(t->height, t->round))
		delay = DOWN_PROPOSER_MS;
	else if (t->kind == BFT_TIMER_PROPOSE && proposer_paced(t->height, t->round))
		delay = Min(delay, pace_or_min_ms());
	put_timer(now + delay, t);
}

/*
 * A paced turn's timeout counts from when a batch began to wait here, or,
 * with none waiting, from the empty block an idle proposer sends after
 * IDLE_PROPOSE_MS: fired before that, it is put off until then, never
 * past the whole timeout.
 */
static bool
defer_paced(const bft_timer *t, uint64 now)
{
	uint64		start = (uint64) (turn.start / 1000);
	uint64		due;

	if (t->kind != BFT_TIMER_PROPOSE || !proposer_paced(t->height, t->round) ||
		t->height != turn.height || t->round != turn.round ||
		bft_step_of(W.node) != BFT_STEP_PROPOSE || proposer_down(t->height, t->round))
		return false;
	if (W.npending == 0)
		due = start + IDLE_PROPOSE_MS + pace_or_min_ms();
	else
		due = (uint64) (Max(turn.start, W.pending_since) / 1000) + pace_or_min_ms();
	/* its proposal came, and waits here for batches (HOLD_MS at most) */
	if (turn.held_since != 0)
		due = Max(due, (uint64) (turn.held_since / 1000) + HOLD_MS);
	due = Min(due, start + W.cfg.timeout_propose_ms);
	if (due <= now)
		return false;
	put_timer(due, t);
	return true;
}

static void
handle_output(bft_output *out)
{
	uint64		t = now_ms();
	uint32		i;

	judge_turn(out);
	if (out->has_commit)
	{
		apply_payload(out->commit.height, out->commit.payload, out->commit.payload_len,
					  &out->commit.cert);
		t = now_ms();			/* the next height's timers start after it */
	}
	for (i = 0; i < out->nmsgs; i++)
	{
		int			to = out->msgs[i].to == BFT_TO_ALL ? BFT_TO_ALL : (int) out->msgs[i].to;
		const uint8 *body = out->buf + out->msgs[i].off;

#ifdef LL_FAULT_INJECTION
		if (ll_fault_active() &&
			ll_fault_consensus(to, body, out->msgs[i].len, W.chain_id, fault_sign, fault_emit))
			continue;
#endif
		send_frame(to, LL_FRAME_CONSENSUS, body, out->msgs[i].len);
	}
	for (i = 0; i < out->ntimers; i++)
		add_timer(t, &out->timers[i]);
	if (out->want_block)
	{
		W.want_block = true;
		W.want_height = out->want_block_height;
		W.want_since = GetCurrentTimestamp();
	}
	for (i = 0; i < out->nevidence; i++)
		record_evidence(&out->evidence[i]);
}

static void
step(bft_event *ev)
{
	ev->now_ms = now_ms();
	step_kind = ev->kind;
	bft_step(W.node, ev, W.out);
	handle_output(W.out);
	track_turn();
}

static void
fire_timers(void)
{
	uint64		t = now_ms();
	int			i = 0;

	while (i < W.ntimers)
	{
		if (W.timers[i].due_ms <= t)
		{
			bft_event	ev;
			bft_timer	tm = W.timers[i].t;

			W.timers[i] = W.timers[--W.ntimers];
			i = 0;
			if (defer_paced(&tm, t))
				continue;
			note_propose_timeout(&tm);
			memset(&ev, 0, sizeof(ev));
			ev.kind = BFT_EV_TIMEOUT;
			ev.u.timeout.kind = tm.kind;
			ev.u.timeout.height = tm.height;
			ev.u.timeout.round = tm.round;
			step(&ev);
			continue;
		}
		i++;
	}
}

static long
next_timer_ms(void)
{
	uint64		t = now_ms();
	long		best = HELLO_MS;
	int			i;

	for (i = 0; i < W.ntimers; i++)
		best = Min(best, W.timers[i].due_ms <= t ? 0 : (long) (W.timers[i].due_ms - t));
	for (i = 0; i < nheld; i++)
		best = Min(best, held[i].height == W.next_height &&
				   missing_batches(held[i].bytes, held[i].len, false) == 0 ? 0 : 5);
#ifdef LL_FAULT_INJECTION
	best = Min(best, ll_fault_next_ms());
#endif
	if (W.want_block)
	{
		long		since = (long) ((GetCurrentTimestamp() - W.want_since) / 1000);

		best = Min(best, Max(0, (W.npending > 0 ? ll_propose_delay_ms : IDLE_PROPOSE_MS) - since));
	}
	return best;
}

static bool proposable(MemBatch *m);

/*
 * A round failed: check the signatures of the pending batches taken on a
 * link MAC (once per round after the first).  A member that sends one node
 * alone a badly signed batch makes that node's proposals fail, as the
 * others cannot get a good copy; checking every such batch before
 * proposing it would cost every height a few signature checks on the
 * proposer's critical path, so they are checked only once a round failed.
 * The liar is then named and its batches are checked one by one: it can
 * cost each node only the rounds until it first gets caught there.
 */
static void
check_unchecked(void)
{
	static uint64 checked_height = 0;
	static uint32 checked_round = 0;
	uint32		round;
	int			k;

	if (W.node == NULL || (round = bft_round(W.node)) == 0 ||
		(checked_height == W.next_height && checked_round == round))
		return;
	checked_height = W.next_height;
	checked_round = round;
	for (k = 0; k < W.npending; k++)
	{
		MemBatch   *m = mempool_find(W.pending + (Size) k * 32);

		if (m != NULL && m->bytes != NULL && !proposable(m))
			k--;				/* dropped from W.pending */
	}
}

static void
maybe_propose(void)
{
	ll_payload	p;
	ll_buf		buf;
	uint8		value[32];
	bft_event	ev;
	int			n;
	uint8	   *proposal_hashes;

	if (!W.want_block || W.want_height != W.next_height)
		return;
	if (!TimestampDifferenceExceeds(W.want_since, GetCurrentTimestamp(),
									W.npending == 0 ? IDLE_PROPOSE_MS : ll_propose_delay_ms))
		return;
	if (W.npending > 0)
	{
		/* it removes what it finds decided from W.pending: screen a copy */
		uint8	   *copy = palloc((Size) W.npending * 32);

		memcpy(copy, W.pending, (Size) W.npending * 32);
		screen_decided(copy, W.npending);
		pfree(copy);
	}
	{
		uint8	   *hashes = palloc((Size) Max(W.npending, 1) * 32);
		int			k;

		n = 0;
		for (k = 0; k < W.npending && n < LL_PAYLOAD_MAX_BATCHES; k++)
		{
			MemBatch   *m = mempool_find(W.pending + (Size) k * 32);

			if (m && m->bytes && origin_votes(m, W.want_height))
				memcpy(hashes + (Size) n++ * 32, W.pending + (Size) k * 32, 32);
			else if (m && m->bytes && ll_never_votes_from(&W.ms, m->bytes + 36, W.want_height))
			{
				/*
				 * Sent before its origin was removed: never proposable,
				 * and left pending it would keep every proposer from
				 * idling (empty heights back to back).
				 */
				pending_remove(W.pending + (Size) k-- * 32);
			}
		}
		proposal_hashes = hashes;
	}
	memset(&p, 0, sizeof(p));
	p.height = W.want_height;
	p.prev_head = W.apply.ledger_head;
	p.time_us = now_unix_us();
	p.nbatches = (uint16) n;
	p.batch_hashes = proposal_hashes;
	ll_buf_init(&buf, ll_palloc_realloc);
	if (ll_payload_encode(&buf, &p) != 0 || ll_payload_value(buf.data, buf.len, value) != 0)
		elog(ERROR, "could not encode a block payload");
	W.want_block = false;
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_BLOCK;
	ev.u.block.height = p.height;
	memcpy(ev.u.block.value, value, 32);
	ev.u.block.payload = buf.data;
	ev.u.block.len = (uint32) buf.len;
	step(&ev);
	pfree(buf.data);
}

/* ---------------------------------------------------------------------
 * Inbox: frames from peers
 * --------------------------------------------------------------------- */

/* A batch from member from; authed: its link MAC covers the batch. */
static void
on_batch_frame(int from, const uint8 *body, size_t len, bool authed)
{
	ll_batch	b;
	bool		ok;
	uint64		by_mac = W.batches_by_mac;

	W.link_sender = authed && !W.members[from].mac_distrusted ? W.members[from].pub : NULL;
	ok = batch_ok(body, len, &b);
	W.link_sender = NULL;
	W.members[from].mac_batches += W.batches_by_mac - by_mac;
	if (ok && mempool_add(b.batch_hash, body, len) && W.batches_by_mac != by_mac)
		mempool_find(b.batch_hash)->unchecked = true;
}

/*
 * Whether a pending batch may still be proposed: one taken on a link MAC
 * has its signature checked now (see check_unchecked).  A bad signature
 * under the origin's own MAC proves the origin lies: the batch is dropped
 * and the origin's batches are checked one by one from then on.
 */
static bool
proposable(MemBatch *m)
{
	ll_batch	b;
	int			origin;

	if (!m->unchecked)
		return true;
	if (ll_batch_decode(m->bytes, m->len, MAX_BATCH_BYTES, cb_verify, NULL, &b) == 0)
	{
		m->unchecked = false;
		return true;
	}
	origin = member_of(m->bytes + 36);
	if (origin >= 0 && !W.members[origin].mac_distrusted)
	{
		W.members[origin].mac_distrusted = true;
		ereport(WARNING,
				(errmsg("member \"%s\" of channel \"%s\" sent a batch whose signature does not verify over its authenticated link",
						W.members[origin].name, W.channel),
				 errdetail("The batch is dropped, and the member's batches are checked one by one from now on.")));
	}
	mempool_forget(m->hash);
	return false;
}

/* Serve a peer's request for batches we hold (mempool or decided). */
/*
 * A request may name one batch a thousand times, and each answer costs a
 * decode and a redaction: a member gets each batch at most once per
 * ANSWER_MS (it asks again if the answer was lost), and none while its
 * link still holds a whole call's worth unsent.
 */
#define ANSWER_MS 500

static bool
answer_due(MemBatch *m, int to)
{
	TimestampTz now = GetCurrentTimestamp();
	LLLink	   *l = W.members[to].link;

	if (l == NULL || l->out.len > LL_CALL_MAX_BYTES)
		return false;
	if (TimestampDifferenceExceeds(m->answered_at, now, ANSWER_MS))
	{
		m->answered_at = now;
		m->answered_to = 0;
	}
	if (m->answered_to & ((uint64) 1 << to))
		return false;
	m->answered_to |= (uint64) 1 << to;
	return true;
}

static void
on_batch_req(int from, const uint8 *body, size_t len)
{
	uint16		n;
	const uint8 *hashes;
	int			i;

	if (ll_batch_req_decode(body, len, &n, &hashes) != 0)
		return;
#ifdef LL_FAULT_INJECTION
	if (ll_fault_active() && ll_fault_withhold())
		return;
#endif
	for (i = 0; i < n; i++)
	{
		MemBatch   *m = mempool_find(hashes + (Size) i * 32);

		if (m != NULL && m->bytes != NULL && answer_due(m, from))
			send_batch(from, m->bytes, m->len);
	}
}

#ifdef LL_FAULT_INJECTION
/* Test build, fault "spoof": each member's last genuine hello, to replay. */
static uint8 *heard_hello[LL_MAX_PEERS];
static size_t heard_len[LL_MAX_PEERS];

static void
keep_hello(int from, const uint8 *body, size_t len)
{
	if (heard_hello[from] != NULL)
		pfree(heard_hello[from]);
	heard_hello[from] = MemoryContextAlloc(TopMemoryContext, len);
	memcpy(heard_hello[from], body, len);
	heard_len[from] = len;
}
#endif

static ll_wire_str
channel_str(void)
{
	ll_wire_str s = {W.channel, strlen(W.channel)};

	return s;
}

/* A hello signed by the member it names, later than the last one taken. */
static bool
hello_genuine(Member *m, const ll_hello *h)
{
	ll_buf		sb;
	bool		ok;

	if (h->epoch < m->hello_epoch ||
		(h->epoch == m->hello_epoch && h->seq <= m->hello_seq))
		return false;
	ll_buf_init(&sb, ll_palloc_realloc);
	ok = ll_hello_sign_bytes(&sb, m->pub, channel_str(), h) == LL_WIRE_OK &&
		bft_ed25519_verify(NULL, m->pub, sb.data, sb.len, h->sig);
	pfree(sb.data);
	if (!ok)
	{
		W.hellos_rejected++;
		return false;
	}
	m->hello_epoch = h->epoch;
	m->hello_seq = h->seq;
	return true;
}

static void
on_hello(int from, const uint8 *body, size_t len)
{
	ll_hello	h;
	Member	   *m = &W.members[from];

	if (ll_hello_decode(body, len, &h) != 0 || !hello_genuine(m, &h))
		return;
#ifdef LL_FAULT_INJECTION
	keep_hello(from, body, len);
#endif
	m->last_contact = GetCurrentTimestamp();
	m->height = (int64) h.height;
	if (memcmp(h.chain_id, W.chain_id, 32) != 0)
	{
		if (!m->mismatch)
			ereport(WARNING,
					(errmsg("peer \"%s\" of channel \"%s\" has a different genesis; ignoring it",
							m->name, W.channel),
					 errdetail("Every member must create the channel with the same tiers and add the same members (names, keys, clearances) before the first block."),
					 errhint("Compare SELECT ledger.genesis_hash('%s') on both nodes.", W.channel)));
		m->mismatch = true;
	}
	else
		m->mismatch = false;
}

static void
feed_msg(int from, const uint8 *data, size_t len)
{
	bft_event	ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_MSG;
	ev.u.msg.peer = (uint32) from;
	ev.u.msg.data = data;
	ev.u.msg.len = len;
	step(&ev);
}

static bool
decode_proposal(const uint8 *data, size_t len, bft_msg *m, ll_payload *p)
{
	/* the type byte follows the version byte (bft_wire.c) */
	return len > 1 && data[1] == BFT_MSG_PROPOSAL &&
		bft_decode(data, len, m) == BFT_OK && m->type == BFT_MSG_PROPOSAL &&
		ll_payload_decode(m->u.proposal.payload, m->u.proposal.payload_len, p) == 0;
}

/*
 * Whether a frame of proposal type decodes, with a payload that hashes to
 * the value it names; m is its decoding if decode_proposal succeeded.
 */
static bool
proposal_intact(const uint8 *data, size_t len, const bft_msg *m)
{
	uint8		value[32];

	if (m == NULL)
	{
		bft_msg		d;

		/* the core refuses what does not decode: only a bad payload is ours */
		return bft_decode(data, len, &d) != BFT_OK || d.type != BFT_MSG_PROPOSAL;
	}
	return ll_payload_value(m->u.proposal.payload, m->u.proposal.payload_len, value) == 0 &&
		memcmp(value, m->u.proposal.value, 32) == 0;
}

/* Batches a proposal names that we do not have (requested on the way). */
static int
missing_in(const ll_payload *p, bool request)
{
	uint8	   *missing = palloc((Size) Max(p->nbatches, 1) * 32);
	int			n = 0;
	int			i;

	for (i = 0; i < p->nbatches; i++)
		if (mempool_find(p->batch_hashes + (Size) i * 32) == NULL)
			memcpy(missing + (Size) n++ * 32, p->batch_hashes + (Size) i * 32, 32);
	if (n > 0 && request)
		request_batches(missing, n);
	pfree(missing);
	return n;
}

static int
missing_batches(const uint8 *data, size_t len, bool request)
{
	bft_msg		m;
	ll_payload	p;

	return decode_proposal(data, len, &m, &p) ? missing_in(&p, request) : 0;
}

/* Whether held proposal a is for a later height or round than (height, round). */
static bool
held_after(const Held *a, uint64 height, uint32 round)
{
	return a->height > height || (a->height == height && a->round > round);
}

/*
 * Room in a full list for m, signed by its turn's proposer: entries not
 * checked yet are checked now (once each) and dropped if they are not
 * signed by theirs; failing that, the entry for the furthest height and
 * round after m's gives way.  One signed proposal per turn is enough
 * (a second is its proposer equivocating).  The slot, or -1.
 */
static int
make_room(const bft_msg *m)
{
	const bft_proposal *pr = &m->u.proposal;
	int			victim = -1;
	int			i = 0;

	while (i < nheld)
	{
		Held	   *h = &held[i];
		bft_msg		hm;
		ll_payload	hp;

		if (!h->signed_ok &&
			!(h->signed_ok = decode_proposal(h->bytes, h->len, &hm, &hp) && signed_proposal(&hm)))
		{
			pfree(h->bytes);
			held[i] = held[--nheld];
			continue;
		}
		if (h->height == pr->height && h->round == pr->round)
			return -1;
		i++;
	}
	if (nheld < MAX_HELD)
		return nheld;
	for (i = 0; i < nheld; i++)
		if (held_after(&held[i], pr->height, pr->round) &&
			(victim < 0 || held_after(&held[i], held[victim].height, held[victim].round)))
			victim = i;
	return victim;
}

/*
 * Hold a proposal; false if there is no room for it.  Anyone can send
 * unsigned proposals naming made-up batches or the next height, and
 * without a check a member flooding them kept the list full: honest
 * proposals still waiting for their batches then went to the core at once
 * and got nil prevotes, and honest ones for the next height were dropped.
 * So once the list is full a newcomer is checked, and one signed by its
 * turn's proposer makes room (make_room).  *signed_ok says whether m is
 * known to be signed, on the way in and out.
 */
static bool
hold(int from, const uint8 *data, size_t len, const bft_msg *m, bool *signed_ok)
{
	int			slot;
	Held	   *h;

	for (slot = 0; slot < nheld; slot++)
		if (held[slot].len == len && memcmp(held[slot].bytes, data, len) == 0)
			return true;		/* a resend of one held already */
	if (nheld == MAX_HELD)
	{
		if (!*signed_ok && !(*signed_ok = signed_proposal(m)))
			return false;
		slot = make_room(m);
		if (slot < 0)
			return false;
	}
	if (slot == nheld)
		nheld++;
	else
		pfree(held[slot].bytes);
	h = &held[slot];
	h->from = from;
	h->bytes = MemoryContextAlloc(TopMemoryContext, len);
	memcpy(h->bytes, data, len);
	h->len = len;
	h->height = m->u.proposal.height;
	h->round = m->u.proposal.round;
	h->signed_ok = *signed_ok;
	h->arrived = h->since = frame_arrived != 0 ? frame_arrived : GetCurrentTimestamp();
	return true;
}


/*
 * Proposals wait here for the batches they name, and proposals for the
 * next height wait until the block before it is applied: only then can
 * cb_validate check the head they build on.  Given to the core earlier,
 * one would be validated while the core decides the height before, with
 * that check skipped, and a liar's proposal on a made-up head would be
 * decided and stop every member (a divergence).  Proposals further ahead
 * are dropped, as the core would; their proposer sends them again.
 */
#ifdef LL_FAULT_INJECTION
static void alter_relay(int from, const bft_msg *m, const ll_payload *p);
#endif

static void
on_consensus_frame(int from, const uint8 *data, size_t len)
{
	bft_msg		m;
	ll_payload	p;
	bool		proposal = decode_proposal(data, len, &m, &p);
	bool		mine = proposal && m.u.proposal.height == turn.height &&
		m.u.proposal.round == turn.round;
	bool		ahead = proposal && m.u.proposal.height > W.next_height;
	bool		incomplete;

	/*
	 * The signature covers the value, not the payload travelling with it:
	 * a copy relayed with another payload is not the proposer's proposal.
	 * Taken first, it would fill the proposal's place, earn a nil prevote
	 * and a strike for the proposer, and keep the genuine copy out.
	 */
	if (len > 1 && data[1] == BFT_MSG_PROPOSAL && !proposal_intact(data, len, proposal ? &m : NULL))
	{
		W.proposals_altered++;
		return;
	}
#ifdef LL_FAULT_INJECTION
	if (proposal && ll_fault_alter())
		alter_relay(from, &m, &p);
#endif
	if (proposal && m.u.proposal.height > W.next_height + 1)
		return;
	incomplete = proposal && missing_in(&p, false) > 0;
	/* the turn's own proposal: empty (nothing to order), or held (pace_ms) */
	if (mine && p.nbatches == 0 && !turn.empty && signed_turn_proposal(&m))
		turn.empty = true;
	if (ahead || incomplete)
	{
		bool		turn_held = mine && !ahead && turn.held_since == 0 && !turn.judged &&
			signed_turn_proposal(&m);
		bool		signed_ok = turn_held;
		bool		held_now = hold(from, data, len, &m, &signed_ok);

		/* batches are asked for only for proposals not known to be junk */
		if (incomplete && (held_now || signed_ok))
			missing_in(&p, true);
		if (held_now)
		{
			if (turn_held)
				turn.held_since = frame_arrived != 0 ? frame_arrived : GetCurrentTimestamp();
			return;
		}
	}
	if (ahead)
		return;
	feeding_incomplete = incomplete;
	feed_msg(from, data, len);
	feeding_incomplete = false;
}

/* Feed held proposals that are due and complete now, or held long enough. */
static void
release_held(void)
{
	int			i = 0;

	while (i < nheld)
	{
		Held	   *h = &held[i];
		Held		f;
		int			missing;

		if (h->height > W.next_height)
		{
			i++;
			continue;
		}
		if (h->height == W.next_height && h->since < turn.start)
			h->since = turn.start;	/* its HOLD_MS count from its turn */
		missing = missing_batches(h->bytes, h->len, false);
		if (missing > 0 &&
			!TimestampDifferenceExceeds(h->since, GetCurrentTimestamp(), HOLD_MS))
		{
			i++;
			continue;
		}
		f = *h;
		held[i] = held[--nheld];
		/* judged by when it came, unless still incomplete (judge_turn) */
		feeding_held = f.arrived;
		feeding_incomplete = missing > 0;
		feed_msg(f.from, f.bytes, f.len);
		feeding_held = 0;
		feeding_incomplete = false;
		pfree(f.bytes);
		i = 0;
	}
}

/*
 * A peer's announcement of its link key: checked against its node key, it
 * gives the link key both ends derive.  A restarted peer announces a new
 * key with a later epoch; until both ends hold each other's current key
 * the MACs do not match and signatures are checked as before.
 */
static void
on_kex(int from, const uint8 *body, size_t len)
{
	Member	   *m = &W.members[from];
	ll_kex		k;
	uint8		sb[LL_KEX_SIGN_LEN];
	uint8		key[32];

	if (m->link == NULL || W.xkey == NULL || ll_kex_decode(body, len, &k) != 0 ||
		k.epoch < m->kex_epoch ||
		(k.epoch == m->kex_epoch && memcmp(k.xpub, m->kex_x, 32) == 0))
		return;
	ll_kex_sign_bytes(W.chain_id, m->pub, k.xpub, k.epoch, sb);
	if (!bft_ed25519_verify(NULL, m->pub, sb, sizeof(sb), k.sig) ||
		bft_link_key(W.xkey, W.chain_id, W.self_pub, W.xpub, m->pub, k.xpub, key) != 0)
		return;
	m->kex_epoch = k.epoch;
	memcpy(m->kex_x, k.xpub, 32);
	m->mac_seen = false;
	/* call numbers count anew under a new key, and only then */
	if (!m->link->has_mac_key || memcmp(m->link->mac_key, key, 32) != 0)
	{
		m->mac_seq = 0;
		m->link->mac_seq = 0;
	}
	memcpy(m->link->mac_key, key, 32);
	m->link->has_mac_key = true;
	explicit_bzero(key, sizeof(key));
}

typedef enum
{
	CALL_UNAUTHENTICATED,		/* no MAC, or not under the current key */
	CALL_AUTHENTICATED,
	CALL_REPLAYED				/* a good MAC, on a number taken already */
} CallAuth;

/*
 * Whether the frames of one deliver() call carry a good MAC of member
 * from, on a call number not taken before.  The numbers grow on the one
 * connection a link's calls go over; a call that overtakes another on a
 * new connection makes the other look replayed, which costs what a
 * dropped call costs.  A pass over batches alone (the records are read
 * again after it) takes no number.
 */
static CallAuth
link_authenticated(int from, const uint8 *data, size_t len, bool batches_only)
{
	Member	   *m = &W.members[from];
	LLLink	   *l = m->link;
	size_t		covered;
	uint64		seq;
	const uint8 *mac;

	if (l == NULL || !l->has_mac_key || !ll_frames_auth(data, len, &covered, &seq, &mac) ||
		!bft_link_mac_ok(l->mac_key, m->pub, W.self_pub, seq, data, covered, mac))
		return CALL_UNAUTHENTICATED;
	if (seq <= m->mac_seq)
	{
		if (!batches_only)
			m->calls_replayed++;
		return CALL_REPLAYED;
	}
	if (!batches_only)
		m->mac_seq = seq;
	m->mac_seen = true;
	return CALL_AUTHENTICATED;
}

static void
on_frames(int from, const uint8 *data, size_t len, bool batches_only)
{
	ll_frame_iter it;
	ll_frame	f;
	CallAuth	auth = link_authenticated(from, data, len, batches_only);
	bool		authed = auth == CALL_AUTHENTICATED;

	if (auth == CALL_REPLAYED)
		return;
	ll_frame_iter_init(&it, data, len);
	while (ll_frame_next(&it, &f) == 1)
	{
		if (batches_only)
		{
			/* hellos too: they tell who is alive (see proposer_down) */
			if (f.kind == LL_FRAME_HELLO)
				on_hello(from, f.body, f.len);
			else if (f.kind == LL_FRAME_BATCH && !W.members[from].mismatch)
				on_batch_frame(from, f.body, f.len, authed);
			continue;
		}
		if (f.kind == LL_FRAME_HELLO)
			on_hello(from, f.body, f.len);
		else if (W.members[from].mismatch)
			continue;
		else if (f.kind == LL_FRAME_KEX)
			on_kex(from, f.body, f.len);
		else if (f.kind == LL_FRAME_BATCH)
			on_batch_frame(from, f.body, f.len, authed);
		else if (f.kind == LL_FRAME_BATCH_REQ)
			on_batch_req(from, f.body, f.len);
		else if (f.kind == LL_FRAME_CONSENSUS)
			on_consensus_frame(from, f.body, f.len);
	}
}

/*
 * Records are u32 length | u32 arrival | sender[32] | frames (peer.c,
 * ll_deliver).  With batches_only (while a decided block waits for a
 * batch) only batches are taken and the records are kept for the main
 * loop.
 */
static ll_buf deferred;

/* When a record's frames reached this server: its u32 of ms is recent. */
static TimestampTz
record_arrival(uint32 stamp, TimestampTz now)
{
	uint32		ago = (uint32) (now / 1000) - stamp;

	return ago < 3600 * 1000 ? now - (TimestampTz) ago * 1000 : now;
}

static void
process_inbox(bool batches_only)
{
	Size		n = ll_queue_take(W.slot, true, W.inbox_buf, LL_INBOX_SIZE);
	ll_buf		cur;
	Size		off = 0;

	if (deferred.realloc_fn == NULL)
		ll_buf_init(&deferred, ll_palloc_realloc_top);
	ll_buf_put(&deferred, W.inbox_buf, n);
	if (deferred.len == 0)
		return;
	cur = deferred;
	if (!batches_only)
		memset(&deferred, 0, sizeof(deferred));
	while (off + 40 <= cur.len)
	{
		uint32		len;
		uint32		stamp;
		int			from;

		memcpy(&len, cur.data + off, 4);
		memcpy(&stamp, cur.data + off + 4, 4);
		if (len < 32 || off + 8 + len > cur.len)
			break;
		from = member_of(cur.data + off + 8);
		frame_arrived = record_arrival(stamp, GetCurrentTimestamp());
		if (from >= 0 && from != W.self)
			on_frames(from, cur.data + off + 40, len - 32, batches_only);
		frame_arrived = 0;
		off += 8 + len;
	}
	if (!batches_only)
		pfree(cur.data);
}

/* ---------------------------------------------------------------------
 * Local transactions -> one signed batch per loop
 * --------------------------------------------------------------------- */

static void
add_tx_rows(ll_batch_builder *bb, const LLTxHeader *h, const char *body)
{
	uint32		nrows;
	const char *p = body + 4;
	uint32		i;

	memcpy(&nrows, body, 4);
	ll_batch_add_rows_tx(bb, h->txid);
	for (i = 0; i < nrows; i++)
	{
		uint8		tier = (uint8) p[0];
		uint32		len;

		memcpy(&len, p + 33, 4);
		ll_batch_add_row(bb, tier, (const uint8 *) p + 1, (const uint8 *) p + 37, len);
		p += 37 + len;
	}
}

/*
 * A node that does not vote (joining, removed) must not put transactions
 * in batches: they could be ordered later, after their client was told
 * they failed.  Their backends are told now.
 */
static void
refuse_tx(const LLTxHeader *h)
{
	LLTxWait   *w = &ll_cons->waits[h->procno];
	uint32		word;

	if (!ll_tx_word_of(w, h->txid, &word) || LL_TX_STATE(word) != LL_TX_SUBMITTED)
		return;
	strlcpy(w->message, "This node is not a voting member of the channel (yet or any more).",
			sizeof(w->message));
	pg_write_barrier();
	/* a swap: the backend may be giving up at this very moment (consensus.h) */
	if (ll_tx_swap(w, word, LL_TX_REJECTED))
		SetLatch(&ProcGlobal->allProcs[h->procno].procLatch);
}


#ifdef LL_FAULT_INJECTION
/*
 * Test build: the server crashes once this node's batch has reached every
 * linked peer, before this node's block commit flushed anything: whatever
 * WAL was not flushed before the batch left is lost.  Armed by
 * pg_loopledger/crash_after_batch_sent; fires once.
 */
static void
crash_after_batch_sent(void)
{
	TimestampTz until;

	if (!ll_fault_armed_point("crash_after_batch_sent"))
		return;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 5000);
	while (!links_drained() && GetCurrentTimestamp() < until)
	{
		service_links();
		wait_for_work(20);
	}
	elog(PANIC, "loopledger test build: crashing right after this node's batch reached its peers");
}
#endif

/*
 * Sign and send a built batch.  (Holding transactions back to send fewer,
 * larger batches - one per height - was measured: it saved signature work
 * but cost as much in latency, and throughput did not improve.)
 */
static void
send_own_batch(ll_batch_builder *bb, ll_buf *out)
{
	uint8		hash[32];
	int			rc = ll_batch_finish(bb, cb_sign, NULL, hash);

	if (rc != 0)
	{
		elog(WARNING, "could not build a transaction batch: %s", ll_wire_strerror(rc));
		return;
	}
	mempool_add(hash, out->data, out->len);
	mempool_find(hash)->complete_to = W.ntiers - 1;
#ifdef LL_FAULT_INJECTION
	if (ll_fault_active())
	{
		static int	victim = 0;

		/* sent as damaged, not dropped by send_batch's decoding */
		if (!ll_fault_batch(out->data, out->len))
			send_frame(BFT_TO_ALL, LL_FRAME_BATCH, out->data, out->len);
		else if (W.nmembers > 1)
		{
			do
				victim = (victim + 1) % W.nmembers;
			while (victim == W.self);
			send_frame(victim, LL_FRAME_BATCH, out->data, out->len);
		}
		return;
	}
#endif
	send_batch(BFT_TO_ALL, out->data, out->len);
#ifdef LL_FAULT_INJECTION
	crash_after_batch_sent();
#endif
}

/*
 * A backend that queued on this slot for a channel that went away (an
 * add_peer rolled back) must not have its rows sent on ours.  Asked of the
 * record, not of the backend's wait slot: by now that may hold its next
 * transaction, on another channel, and a commit that did not wait would
 * never have been sent.
 */
static bool
queued_for_us(const LLTxHeader *h)
{
	return h->channel_id == W.channel_id;
}

static void
process_txq(void)
{
	Size		n;
	Size		off = 0;
	ll_batch_builder bb;
	ll_buf		out,
				content;
	int			ntx = 0;
	uint32		rows = 0;
	/* once its removal is decided, nothing new leaves: it could be refused */
	bool		voting = ll_is_validator_at(&W.ms, W.self_pub, W.next_height) && removed_at() == 0;

	n = ll_queue_take(W.slot, false, W.txq_buf, LL_TXQ_SIZE);
	if (n == 0)
		return;
#ifdef LL_FAULT_INJECTION
	ll_fault_txq_point();
#endif
	ll_buf_init(&out, ll_palloc_realloc);
	ll_buf_init(&content, ll_palloc_realloc);
	ll_batch_begin(&bb, &out, &content, MAX_BATCH_BYTES, W.chain_id, W.self_pub,
				   ++W.batch_seq, now_unix_us());
	while (off + sizeof(LLTxHeader) <= n)
	{
		LLTxHeader h;
		uint32		nrows;

		memcpy(&h, W.txq_buf + off, sizeof(h));
		memcpy(&nrows, W.txq_buf + off + sizeof(h), 4);
		if (!queued_for_us(&h))
		{
			/* skipped */
		}
		else if (!voting)
		{
			if (h.procno != LL_TX_RESUBMITTED)
				refuse_tx(&h);
		}
		else
		{
			/* what a peer accepts: start another batch before the limits */
			if (ntx > 0 && (rows + nrows > LL_BATCH_MAX_ROWS ||
							out.len + content.len + 2 * (Size) h.len + 4096 > MAX_BATCH_BYTES))
			{
				send_own_batch(&bb, &out);
				ll_buf_reset(&out);
				ll_batch_begin(&bb, &out, &content, MAX_BATCH_BYTES, W.chain_id, W.self_pub,
							   ++W.batch_seq, now_unix_us());
				ntx = 0;
				rows = 0;
			}
			add_tx_rows(&bb, &h, W.txq_buf + off + sizeof(h));
			ntx++;
			rows += nrows;
		}
		off += sizeof(h) + h.len;
	}
	if (ntx > 0)
		send_own_batch(&bb, &out);
	pfree(out.data);
	if (content.data)
		pfree(content.data);
}

/* ---------------------------------------------------------------------
 * Links, hellos and status
 * --------------------------------------------------------------------- */

/* Announce this run's link key, signed by the node key (with every hello). */
static void
send_kex(void)
{
	uint8		sb[LL_KEX_SIGN_LEN];
	uint8		sig[64];
	ll_buf		body;

	if (W.xkey == NULL)
		return;
	ll_kex_sign_bytes(W.chain_id, W.self_pub, W.xpub, W.kex_epoch, sb);
	if (bft_ed25519_sign(W.key, sb, sizeof(sb), sig) != 0)
		return;
	ll_buf_init(&body, ll_palloc_realloc);
	ll_kex_encode(&body, W.xpub, W.kex_epoch, sig);
	send_frame(BFT_TO_ALL, LL_FRAME_KEX, body.data, body.len);
	pfree(body.data);
}

#ifdef LL_FAULT_INJECTION
/* Call ledger.deliver() on member t's server with frames in s's name. */
static void
deliver_raw(int t, int s, const uint8 *frames, size_t len)
{
	const char *vals[3];
	int			lens[3] = {0, 32, (int) len};
	int			fmts[3] = {0, 1, 1};
	PGresult   *res;

	vals[0] = W.channel;
	vals[1] = (const char *) W.members[s].pub;
	vals[2] = (const char *) frames;
	res = ll_link_fetch(W.members[t].link, "SELECT ledger.deliver($1, $2, $3)", 3,
						(Oid[]) {TEXTOID, BYTEAOID, BYTEAOID}, vals, lens, fmts);
	if (res != NULL)
		PQclear(res);
}

/* ...with one frame */
static void
deliver_as(int t, int s, uint8 kind, const uint8 *body, size_t len)
{
	ll_buf		f;

	ll_buf_init(&f, ll_palloc_realloc);
	ll_frame_append(&f, kind, body, len);
	deliver_raw(t, s, f.data, f.len);
	pfree(f.data);
}

/*
 * Test build, fault "alter": member from's proposal goes on to the others
 * at once, in its name and under its signature, with a payload naming no
 * batches.  Where the genuine copy waits for a batch, this one comes
 * complete and is taken first.
 */
static void
alter_relay(int from, const bft_msg *m, const ll_payload *p)
{
	bft_msg		a = *m;
	ll_payload	q = *p;
	ll_buf		pay;
	uint8	   *buf;
	size_t		n;
	int			t;

	if (p->nbatches == 0)
		return;
	q.nbatches = 0;
	q.batch_hashes = NULL;
	ll_buf_init(&pay, ll_palloc_realloc);
	buf = palloc(BFT_MAX_MSG);
	if (ll_payload_encode(&pay, &q) == LL_WIRE_OK)
	{
		a.u.proposal.payload = pay.data;
		a.u.proposal.payload_len = pay.len;
		if (bft_encode(&a, buf, BFT_MAX_MSG, &n) == BFT_OK)
			for (t = 0; t < W.nmembers; t++)
				if (t != W.self && t != from && W.members[t].link != NULL)
					deliver_as(t, from, LL_FRAME_CONSENSUS, buf, n);
	}
	pfree(buf);
	pfree(pay.data);
}

/*
 * Test build, fault "spoof": over this node's own peer login, tell every
 * other member that each third member is on another genesis and far
 * ahead (this node cannot sign for them: what it signs is its own), and
 * replay that member's last genuine hello, so that one which stopped
 * would still look alive.  Its own last call to each member, MAC and all,
 * is played again too, as someone reading the link could.
 */
/* Old decided batches, sent again as if new. */
static void
rebatch(void)
{
	MemoryContext caller = CurrentMemoryContext;
	bool		own_xact = !IsTransactionState();
	uint64		r;
	int64		from = 0,
				to = INT64_MAX;
	const char *range = strstr(ll_fault, "rebatch:");

	/* "rebatch:FROM-TO" picks the heights */
	if (range != NULL && sscanf(range, "rebatch:" INT64_FORMAT "-" INT64_FORMAT, &from, &to) != 2)
		from = 0, to = INT64_MAX;
	if (own_xact)
		StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute_with_args("SELECT body FROM ledger.batch WHERE channel_id = $1 AND height BETWEEN $2 AND $3 "
						  "ORDER BY height LIMIT 200", 3, (Oid[]) {INT4OID, INT8OID, INT8OID},
						  (Datum[]) {Int32GetDatum(W.channel_id), Int64GetDatum(from), Int64GetDatum(to)},
						  NULL, true, 0);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

		send_frame(BFT_TO_ALL, LL_FRAME_BATCH, (const uint8 *) VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	}
	SPI_finish();
	PopActiveSnapshot();
	if (own_xact)
	{
		CommitTransactionCommand();
		MemoryContextSwitchTo(caller);
	}
}

static void
spoof_hello(void)
{
	static const uint8 other_chain[32] = {0};
	int			t,
				s;

	for (t = 0; t < W.nmembers; t++)
		if (t != W.self && W.members[t].link != NULL && W.members[t].link->call.len > 0)
		{
			LLLink	   *l = W.members[t].link;
			uint8	   *copy = palloc(l->call.len);
			size_t		n = l->call.len;

			/* the fetch below may send, and so rewrite, l->call */
			memcpy(copy, l->call.data, n);
			deliver_raw(t, W.self, copy, n);
			pfree(copy);
		}
	for (t = 0; t < W.nmembers; t++)
		for (s = 0; s < W.nmembers; s++)
		{
			ll_hello	h = {other_chain, W.next_height + 1000, {W.members[s].name, strlen(W.members[s].name)},
			W.kex_epoch, ++W.hello_seq, NULL};
			uint8		sig[64];
			ll_buf		b;

			if (t == W.self || s == W.self || s == t || W.members[t].link == NULL)
				continue;
			ll_buf_init(&b, ll_palloc_realloc);
			h.sig = sig;
			if (ll_hello_sign_bytes(&b, W.members[s].pub, channel_str(), &h) == LL_WIRE_OK &&
				bft_ed25519_sign(W.key, b.data, b.len, sig) == 0)
			{
				ll_buf_reset(&b);
				if (ll_hello_encode(&b, &h) == LL_WIRE_OK)
					deliver_as(t, s, LL_FRAME_HELLO, b.data, b.len);
			}
			pfree(b.data);
			if (heard_hello[s] != NULL)
				deliver_as(t, s, LL_FRAME_HELLO, heard_hello[s], heard_len[s]);
		}
}
#endif

static void
send_hellos(void)
{
	ll_hello	h;
	ll_buf		body;
	uint8		sig[64];
	int			period = HELLO_MS;

#ifdef LL_FAULT_INJECTION
	period = ll_fault_hello_period(period);
#endif
	if (!TimestampDifferenceExceeds(W.last_hello, GetCurrentTimestamp(), period))
		return;
	W.last_hello = GetCurrentTimestamp();
	h.chain_id = W.chain_id;
	h.height = W.next_height;
#ifdef LL_FAULT_INJECTION
	h.height = ll_fault_hello_height(h.height);
#endif
	h.name.ptr = W.self >= 0 ? W.members[W.self].name : "observer";
	h.name.len = strlen(h.name.ptr);
	h.epoch = W.kex_epoch;
	h.seq = ++W.hello_seq;
	h.sig = sig;
	ll_buf_init(&body, ll_palloc_realloc);
	if (ll_hello_sign_bytes(&body, W.self_pub, channel_str(), &h) == LL_WIRE_OK &&
		bft_ed25519_sign(W.key, body.data, body.len, sig) == 0)
	{
		ll_buf_reset(&body);
		if (ll_hello_encode(&body, &h) == LL_WIRE_OK)
			send_frame(BFT_TO_ALL, LL_FRAME_HELLO, body.data, body.len);
	}
	pfree(body.data);
#ifdef LL_FAULT_INJECTION
	ll_fault_spoof_hellos(spoof_hello);
	ll_fault_rebatch(rebatch);
#endif
	send_kex();
}

static void
publish_status(void)
{
	LLConsSlot *s = W.slot;
	const bft_stats *st = bft_get_stats(W.node);
	int			i,
				k = 0;
	uint32		prop;
	uint32		pace = pace_or_min_ms();

	SpinLockAcquire(&s->mutex);
	s->height = (int64) W.next_height;
	s->round = (int32) bft_round(W.node);
	s->step = bft_step_of(W.node);
	prop = bft_proposer(&W.valset, W.next_height, bft_round(W.node));
	{
		int			k = prop < W.valset.n ? member_of(W.valset.v[prop].pubkey) : -1;

		strlcpy(s->proposer, k >= 0 ? W.members[k].name : "?", NAMEDATALEN);
	}
	/* a removed member votes at one more height, but takes no new writes */
	s->is_validator = ll_is_validator_at(&W.ms, W.self_pub, W.next_height) && removed_at() == 0;
	s->validators = (int32) W.valset.n;
	s->quorum = (int32) bft_quorum(&W.valset);
	s->ledger_height = W.apply.ledger_height;
	s->signs = (int64) st->signs;
	s->verifies = (int64) st->verifies;
	s->parked = (int64) st->parked;
	s->rejected = (int64) (st->rejected + W.hellos_rejected + W.proposals_altered);
	for (i = 0; i < W.nmembers && k < LL_MAX_PEERS; i++)
	{
		Member	   *m = &W.members[i];
		LLPeerStatus *p = &s->peers[k++];

		strlcpy(p->name, m->name, NAMEDATALEN);
		p->link_key = false;
		p->mac_batches = 0;
		p->calls_replayed = 0;
		if (m->link == NULL && i != W.self)
		{
			strlcpy(p->state, "no conninfo", sizeof(p->state));
			strlcpy(p->message, "this node was not given a conninfo for the peer (ledger.add_peer)",
					sizeof(p->message));
			p->height = m->height;
			p->last_contact = m->last_contact;
			p->rtt_ms = -1;
			continue;
		}
		if (m->link == NULL)
		{
			strlcpy(p->state, "self", sizeof(p->state));
			p->height = (int64) W.next_height;
			p->last_contact = GetCurrentTimestamp();
			p->rtt_ms = 0;
			p->message[0] = '\0';
			continue;
		}
		strlcpy(p->state, m->mismatch ? "genesis mismatch" : m->link->state, sizeof(p->state));
		strlcpy(p->message, m->mismatch ? "different genesis: messages ignored" : m->link->message,
				sizeof(p->message));
		/* connected but silent (hung, or packets dropped): TCP would say up */
		if (!m->mismatch && strcmp(p->state, "up") == 0 && !link_answering(m->link))
		{
			strlcpy(p->state, "not answering", sizeof(p->state));
			snprintf(p->message, sizeof(p->message), "connected, but a call has waited %ld s for its answer",
					 ll_link_unanswered_ms(m->link) / 1000);
		}
		/* one slip (a checkpoint, say) is not worth a state; two are */
		else if (!m->mismatch && strcmp(p->state, "up") == 0 && m->strikes > STRIKE)
		{
			strlcpy(p->state,
					m->last_strike == 'l' ? "proposing late" :
					m->last_strike == 'i' ? "proposing invalid blocks" : "not proposing",
					sizeof(p->state));
			snprintf(p->message, sizeof(p->message),
					 "its turns to propose get %u ms until it has been on time %u times",
					 pace, m->strikes);
		}
		p->height = m->height;
		p->last_contact = m->last_contact;
		p->rtt_ms = m->link->rtt_ms;
		p->link_key = m->link->has_mac_key && m->mac_seen;
		p->mac_batches = m->mac_batches;
		p->calls_replayed = m->calls_replayed;
	}
	s->npeers = k;
	SpinLockRelease(&s->mutex);
}

static void
service_links(void)
{
	int			i;

	for (i = 0; i < W.nmembers; i++)
		if (W.members[i].link)
			ll_link_service(W.members[i].link, W.channel, W.self_pub);
}

/*
 * The worker's wait set outlives one loop (creating it costs an epoll set
 * and a system call per socket, at every wake-up): it is rebuilt when a
 * link's socket may have changed - another connection, another socket
 * number, or a connection still being set up (libpq may close and open
 * sockets while trying addresses) - and socket events are changed in
 * place otherwise.
 */
static struct
{
	WaitEventSet *set;
	int			nmembers;
	int			pos[LL_MAX_PEERS];	/* position in set, -1 if not in it */
	int			events[LL_MAX_PEERS];
	pgsocket	sock[LL_MAX_PEERS];
	uint64		conn_no[LL_MAX_PEERS];
} WS = {NULL, -1};

static void
wait_set_build(const int *events, const pgsocket *socks)
{
	int			i;

	if (WS.set)
		FreeWaitEventSet(WS.set);
	WS.set = CreateWaitEventSet(TopMemoryContext, W.nmembers + 2);
	AddWaitEventToSet(WS.set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(WS.set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < W.nmembers; i++)
	{
		WS.pos[i] = events[i] != 0 ?
			AddWaitEventToSet(WS.set, events[i], socks[i], NULL, NULL) : -1;
		WS.events[i] = events[i];
		WS.sock[i] = socks[i];
		WS.conn_no[i] = W.members[i].link ? W.members[i].link->conn_no : 0;
	}
	WS.nmembers = W.nmembers;
}

static void
wait_for_work(long timeout)
{
	WaitEvent	ev[LL_MAX_PEERS + 2];
	int			events[LL_MAX_PEERS];
	pgsocket	socks[LL_MAX_PEERS];
	bool		rebuild = WS.set == NULL || WS.nmembers != W.nmembers;
	int			i;

	for (i = 0; i < W.nmembers; i++)
	{
		LLLink	   *l = W.members[i].link;

		socks[i] = PGINVALID_SOCKET;
		events[i] = l ? ll_link_wait_events(l, &socks[i]) : 0;
		if (l && events[i] == 0)
			timeout = Min(timeout, ll_link_timeout(l));
		if (i < WS.nmembers &&
			((events[i] != 0) != (WS.pos[i] >= 0) ||
			 (events[i] != 0 && (l->connecting || l->conn_no != WS.conn_no[i] ||
								 socks[i] != WS.sock[i]))))
			rebuild = true;
	}
	if (rebuild)
		wait_set_build(events, socks);
	else
		for (i = 0; i < W.nmembers; i++)
			if (events[i] != 0 && events[i] != WS.events[i])
			{
				ModifyWaitEvent(WS.set, WS.pos[i], events[i], NULL);
				WS.events[i] = events[i];
			}
	(void) WaitEventSetWait(WS.set, Max(timeout, 0), ev, lengthof(ev), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/* ---------------------------------------------------------------------
 * Startup
 * --------------------------------------------------------------------- */

static void
load_channel(void)
{
	bool		isnull;
	ArrayType  *arr;
	Datum	   *elems;
	int			i;

	SPI_execute_with_args("SELECT name, tiers FROM ledger.channel WHERE channel_id = $1", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)},
						  NULL, true, 1);
	if (SPI_processed != 1)
		proc_exit(0);
	W.channel = MemoryContextStrdup(TopMemoryContext,
									SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	arr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &W.ntiers);
	W.tiers = MemoryContextAlloc(TopMemoryContext, sizeof(char *) * W.ntiers);
	for (i = 0; i < W.ntiers; i++)
		W.tiers[i] = MemoryContextStrdup(TopMemoryContext, TextDatumGetCString(elems[i]));
}

/* Runtime view of member i (links for peers we know how to reach). */
void
attach_member(int i)
{
	Member	   *m = &W.members[i];
	LLMember   *lm = &W.ms.m[i];

	/* a slot attached again (refresh_members) keeps the height it heard */
	if (m->name == NULL)
		m->height = -1;
	m->name = lm->name;
	m->pub = lm->pub;
	if (memcmp(lm->pub, W.self_pub, 32) == 0)
		W.self = i;
	else if (m->link == NULL && lm->conninfo[0] != '\0')
		m->link = ll_link_new(lm->name, lm->conninfo, lm->pub);
}

static void
load_members(void)
{
	int			i;

	ll_members_load(&W.ms, W.channel_id);
	if (W.ms.n == 0)
	{
		ereport(LOG, (errmsg("channel \"%s\" has no peers; consensus worker exits", W.channel)));
		proc_exit(0);
	}
	W.self = -1;
	for (i = 0; i < W.ms.n; i++)
		attach_member(i);
	W.nmembers = W.ms.n;
}


void
compute_chain_id(void)
{
	ll_wire_str ch = {W.channel, strlen(W.channel)};
	ll_wire_str *tiers = palloc(sizeof(ll_wire_str) * W.ntiers);
	ll_member  *mem = palloc(sizeof(ll_member) * LL_MAX_PEERS);
	ll_buf		g;
	int			i,
				n;

	for (i = 0; i < W.ntiers; i++)
	{
		tiers[i].ptr = W.tiers[i];
		tiers[i].len = strlen(W.tiers[i]);
	}
	n = ll_members_genesis(&W.ms, mem, tiers, W.ntiers, W.tiers);
	ll_buf_init(&g, ll_palloc_realloc);
	if (ll_genesis_encode(&g, ch, tiers, W.ntiers, mem, n) != 0 ||
		ll_genesis_hash(g.data, g.len, W.chain_id) != 0)
		elog(ERROR, "could not encode the genesis of channel \"%s\"", W.channel);
}

static void
load_heads(void)
{
	bool		isnull;

	SPI_execute_with_args("SELECT coalesce(max(height), 0) FROM ledger.consensus_log WHERE channel_id = $1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)}, NULL, true, 1);
	W.next_height = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 1, &isnull)) + 1;
	SPI_execute_with_args("SELECT height, block_hash FROM ledger.block WHERE channel_id = $1 "
						  "ORDER BY height DESC LIMIT 1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)}, NULL, true, 1);
	if (SPI_processed != 1)
		elog(ERROR, "channel \"%s\" has no genesis block", W.channel);
	W.apply.ledger_height = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));
	memcpy(W.apply.ledger_head,
		   VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull))), 32);
}

/*
 * Batches of decided heights this node could not apply (apply.c,
 * keep_batches): back into the mempool, where the retried apply, and the
 * proposals that decide such a height again when no member stored its
 * decision, find them.
 */
static void
load_kept_batches(void)
{
	int			n = 0;
	uint64		r;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute_with_args("SELECT body, height FROM ledger.batch WHERE channel_id = $1 AND height >= $2 "
						  "ORDER BY height, batch_hash", 2,
						  (Oid[]) {INT4OID, INT8OID},
						  (Datum[]) {Int32GetDatum(W.channel_id), Int64GetDatum((int64) W.next_height)},
						  NULL, true, 0);
	for (r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		bytea	   *body = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r],
														 SPI_tuptable->tupdesc, 1, &isnull));
		int64		h = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													SPI_tuptable->tupdesc, 2, &isnull));
		ll_batch	b;

		W.apply.kept_until = Max(W.apply.kept_until, (uint64) h);

		if (batch_ok((const uint8 *) VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), &b) &&
			mempool_add(b.batch_hash, (const uint8 *) VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body)))
			n++;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (n > 0)
		ereport(LOG,
				(errmsg("channel \"%s\": took back %d decided batches kept when their block could not be applied",
						W.channel, n)));
}

/*
 * A backend that queued a transaction without waiting for its order
 * (ASYNC) before this worker started, and has not committed yet, commits
 * after the scan below would look: its transaction would stay pending
 * until the next start.  Such backends commit at once; wait for them (a
 * second at most: one that hangs is looked for at the next start).
 */
static void
wait_for_async_commits(void)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
	bool		waited = false;

	while (GetCurrentTimestamp() < until)
	{
		bool		any = false;
		int			i;

		/* queued to an earlier worker: those queued to this one come to it */
		for (i = 0; i < ll_cons->nwaits && !any; i++)
		{
			LLTxWait   *w = &ll_cons->waits[i];

			any = LL_TX_STATE(pg_atomic_read_u32(&w->state)) == LL_TX_ASYNC &&
				w->channel_id == W.channel_id &&
				w->generation != pg_atomic_read_u64(&W.slot->generation);
		}
		if (!any)
		{
			if (waited)
				ereport(LOG,
						(errmsg("channel \"%s\": waited for backends that queued a transaction without waiting for its order to commit",
								W.channel)));
			return;
		}
		waited = true;
		pg_usleep(5000L);		/* the latch is left for the main loop */
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Transactions committed here without waiting for their order and not
 * decided yet may have been only in the last worker's memory: queue them
 * again (resubmit.c).  A failure is logged, not fatal: the worker must
 * run, and the next start tries again.
 */
static void
resubmit_pending(void)
{
	volatile int n = 0;
	MemoryContext mcxt = CurrentMemoryContext;

	if (W.self < 0)
		return;
	wait_for_async_commits();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		n = ll_resubmit_pending(W.slot, W.channel_id, W.channel, W.self_pub);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(mcxt);
		ed = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errmsg("channel \"%s\": could not queue again the transactions committed here without waiting for their order: %s",
						W.channel, ed->message)));
		FreeErrorData(ed);
	}
	PG_END_TRY();
	if (n > 0)
		ereport(LOG,
				(errmsg("channel \"%s\": queued again %d transactions committed here without waiting for their order",
						W.channel, n)));
}

static void
load_state(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	load_channel();
	load_members();
	compute_chain_id();
	load_heads();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* (Re)start the core at W.next_height, e.g. after catching up. */
void
start_core(void)
{
	bft_start  *st = palloc0(sizeof(bft_start));
	bft_event	ev;

	W.node = bft_init(W.node_mem, &W.cfg);
	st->height = W.next_height;
	ll_valset_at(&W.ms, W.next_height, &W.valset);
	st->valset = W.valset;
	{
		uint64		h;
		bft_valset	prev = W.valset;

		for (h = W.next_height + 1; h <= W.next_height + BFT_VALSET_DELAY; h++)
		{
			bft_valset	vs;

			ll_valset_at(&W.ms, h, &vs);
			if (memcmp(&vs, &prev, sizeof(vs)) != 0)
			{
				st->pending[st->npending].height = h;
				st->pending[st->npending].set = vs;
				st->npending++;
			}
			prev = vs;
		}
	}
	st->has_persist = state_load(&st->persist);
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_START;
	ev.u.start = st;
	W.ntimers = 0;
	W.want_block = false;
	step(&ev);
	pfree(st);
	W.last_progress = GetCurrentTimestamp();
}

static void
setup_core(void)
{
	memset(&W.cfg, 0, sizeof(W.cfg));
	memcpy(W.cfg.chain_id, W.chain_id, 32);
	memcpy(W.cfg.self_pubkey, W.self_pub, 32);
	W.cfg.timeout_propose_ms = 1000;
	W.cfg.timeout_prevote_ms = 500;
	W.cfg.timeout_precommit_ms = 500;
	W.cfg.timeout_delta_ms = 500;
	W.cfg.gossip_ms = 1000;
	W.cfg.cb.sign = cb_sign;
	W.cfg.cb.verify = cb_verify;
	W.cfg.cb.value_of = cb_value_of;
	W.cfg.cb.validate = cb_validate;
	W.cfg.cb.persist = cb_persist;
	W.cfg.cb.valset_change = cb_valset_change;
	W.node_mem = MemoryContextAllocZero(TopMemoryContext, bft_node_size());
	W.out = MemoryContextAllocZero(TopMemoryContext, sizeof(bft_output));
}

static void
init_mempool(void)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = 32;
	ctl.entrysize = sizeof(MemBatch);
	W.mempool = hash_create("loopledger mempool", 1024, &ctl, HASH_ELEM | HASH_BLOBS);
}

static void
slot_detach(int code, Datum arg)
{
	SpinLockAcquire(&W.slot->mutex);
	W.slot->pid = 0;
	W.slot->latch = NULL;
	W.slot->proc = NULL;
	if (code == 0)
	{
		/* a clean exit (no peers any more): give the slot back */
		W.slot->channel_id = 0;
		W.slot->registered = false;
	}
	SpinLockRelease(&W.slot->mutex);
}

static void
attach_slot(void)
{
	uint8		seed[32];

	W.slot = &ll_cons->slots[W.slot_no];
	/*
	 * One worker per slot.  After a crash the postmaster restarts the
	 * workers registered before it, while the sealer, finding the slots
	 * wiped, reserves and starts them anew: the later one goes.  Two would
	 * both vote, from one signing record.  (Exit code 0: not restarted.)
	 */
	SpinLockAcquire(&W.slot->mutex);
	W.channel_id = W.slot->channel_id;
	if (W.channel_id == 0 || W.slot->pid != 0)
	{
		pid_t		other = W.slot->pid;

		SpinLockRelease(&W.slot->mutex);
		ereport(LOG,
				(errmsg("loopledger consensus worker for slot %d not needed: %s",
						W.slot_no, other != 0 ? "another worker serves it" : "no channel has it")));
		proc_exit(0);
	}
	W.slot->pid = MyProcPid;	/* claimed; the rest is set below */
	SpinLockRelease(&W.slot->mutex);
	on_shmem_exit(slot_detach, (Datum) 0);
	if (!ll_load_node_key(seed, W.self_pub, false))
	{
		ereport(LOG,
				(errmsg("loopledger node key missing; consensus for channel %d waits", W.channel_id),
				 errhint("Run SELECT ledger.node_key().")));
		pg_usleep(5 * USECS_PER_SEC);
		proc_exit(1);
	}
	W.key = bft_ed25519_new(seed);
	explicit_bzero(seed, sizeof(seed));
	/* without a link key (OpenSSL refused) every signature is checked */
	W.xkey = bft_x25519_generate(W.xpub);
	W.kex_epoch = next_epoch();
	/*
	 * Transactions queued before this start stay queued: they are batched
	 * like any other.  Waiting backends also resubmit when the generation
	 * changes (their first record may have died with an earlier worker);
	 * a transaction submitted twice counts once (ledger.txlog).
	 */
	W.txq_buf = MemoryContextAllocHuge(TopMemoryContext, LL_TXQ_SIZE);
	W.inbox_buf = MemoryContextAllocHuge(TopMemoryContext, LL_INBOX_SIZE);
	pg_atomic_fetch_add_u64(&W.slot->generation, 1);
	SpinLockAcquire(&W.slot->mutex);
	W.slot->pid = MyProcPid;
	W.slot->stopped = 0;
	W.slot->latch = MyLatch;
	W.slot->proc = MyProc;
	SpinLockRelease(&W.slot->mutex);
}

/* ---------------------------------------------------------------------
 * Main
 * --------------------------------------------------------------------- */

void
ll_consensus_main(Datum main_arg)
{
	MemoryContext loop_cxt;

	W.slot_no = DatumGetInt32(main_arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
#ifdef LL_FAULT_INJECTION
	/* the sealer's worker for this slot then attaches first (not connected: not counted) */
	if (ll_fault_armed_point("slow_worker_attach"))
		pg_usleep(3 * USECS_PER_SEC);
#endif
	BackgroundWorkerInitializeConnection(ll_database, NULL, 0);
	ll_pin_search_path();
	attach_slot();
	/* rows come with their entry numbers and are hashed already */
	SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * Every query of this process looks up a few keys in growing catalogs
	 * (ledger.txlog above all): never let stale statistics pick a scan.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_USERSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_hashjoin", "off", PGC_USERSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_mergejoin", "off", PGC_USERSET, PGC_S_OVERRIDE);
	/*
	 * Each query its own snapshot, whatever the server's default: the
	 * checks of a table's definition must see what committed meanwhile.
	 */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_USERSET, PGC_S_OVERRIDE);
	/*
	 * Whether a large value fits an index entry depends on how it
	 * compresses (index entries have no method of their own): every
	 * member's worker uses the default method, whatever its server's.
	 */
	SetConfigOption("default_toast_compression", "pglz", PGC_USERSET, PGC_S_OVERRIDE);
	init_mempool();
	W.disclosed_for = -2;		/* look once for entries to fill in */
	load_state();
	W.apply.channel_id = W.channel_id;
	W.apply.channel = W.channel;
	memcpy(W.apply.self, W.self_pub, 32);
	W.apply.slot = W.slot;
	W.apply.ntiers = W.ntiers;
	W.apply.tiers = W.tiers;
	load_kept_batches();
	resubmit_pending();
	worker_started = GetCurrentTimestamp();
	state_open();
	setup_core();
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "loopledger consensus loop",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(loop_cxt);
	start_core();
	ereport(LOG,
			(errmsg("loopledger consensus for channel \"%s\" started at height " UINT64_FORMAT " as %s",
					W.channel, W.next_height,
					W.self >= 0 ? W.members[W.self].name : "an observer")));
	for (;;)
	{
		MemoryContextSwitchTo(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (past_removal(W.next_height - 1))
			retire();
		process_inbox(false);
		release_held();
		process_txq();
		fire_timers();
#ifdef LL_FAULT_INJECTION
		ll_fault_release(fault_emit);
#endif
		check_unchecked();
		maybe_propose();
		send_hellos();
		membership_round();
		disclosure_round();
		maybe_catch_up();
		service_links();
		if (W.retiring)
			retire();
		publish_status();
		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		wait_for_work(next_timer_ms());
	}
}
