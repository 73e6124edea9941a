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

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
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

#include "bft.h"
#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"
#include "transport.h"

#define IDLE_PROPOSE_MS 250		/* an empty block keeps rounds short */
#define HELLO_MS 1000
#define MAX_TIMERS 256
#define MAX_BATCH_BYTES (8 * 1024 * 1024)
#define CATCHUP_CHUNK 64

typedef struct Member
{
	char		name[NAMEDATALEN];
	uint8		pub[32];
	int			tier;			/* clearance */
	LLLink	   *link;			/* NULL for this node */
	bool		mismatch;		/* different genesis: ignored */
	int64		height;			/* from its hello */
	TimestampTz last_contact;
} Member;

typedef struct MemBatch
{
	uint8		hash[32];		/* key */
	uint8	   *bytes;
	size_t		len;
	bool		committed;
	uint64		arrival;
} MemBatch;

typedef struct Timer
{
	uint64		due_ms;
	bft_timer	t;
} Timer;

static struct
{
	int			slot_no;
	LLConsSlot *slot;
	int32		channel_id;
	char	   *channel;
	int			ntiers;
	char	  **tiers;
	uint8		chain_id[32];
	int			nmembers;
	Member		members[LL_MAX_PEERS];
	int			self;			/* member index, -1 when observing */
	uint8		self_pub[32];
	bft_ed25519_key *key;
	bft_valset	valset;
	bft_node   *node;
	void	   *node_mem;
	bft_output *out;
	bft_config	cfg;
	uint64		next_height;	/* next consensus height to decide */
	LLApply		apply;
	HTAB	   *mempool;
	uint8	   *pending;		/* uncommitted batch hashes, arrival order */
	int			npending;
	int			pending_cap;
	uint64		arrivals;
	uint64		batch_seq;
	Timer		timers[MAX_TIMERS];
	int			ntimers;
	bool		want_block;
	uint64		want_height;
	TimestampTz want_since;
	TimestampTz last_hello;
	TimestampTz last_progress;
	char	   *inbox_buf;
	char	   *txq_buf;
	int			state_fd;
	uint64		state_seq;
	bool		need_restart;
} W;

static uint64
now_ms(void)
{
	return (uint64) (GetCurrentTimestamp() / 1000);
}

static int64
now_unix_us(void)
{
	return GetCurrentTimestamp() +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/* ---------------------------------------------------------------------
 * Durable consensus state: the core's persist record, in two alternating
 * checksummed slots of a file, fdatasync'ed before anything is sent.
 * --------------------------------------------------------------------- */

typedef struct StateRecord
{
	uint64		seq;
	bft_persist st;
	pg_crc32c	crc;
} StateRecord;

static void
state_open(void)
{
	char		path[MAXPGPATH];

	(void) MakePGDirectory("pg_loopledger");
	snprintf(path, sizeof(path), "pg_loopledger/channel_%d.state", W.channel_id);
	W.state_fd = BasicOpenFile(path, O_RDWR | O_CREAT | PG_BINARY);
	if (W.state_fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open consensus state file \"%s\": %m", path)));
}

static pg_crc32c
record_crc(const StateRecord *r)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, r, offsetof(StateRecord, crc));
	FIN_CRC32C(crc);
	return crc;
}

static bool
state_load(bft_persist *st)
{
	StateRecord r[2];
	int			best = -1;
	int			i;

	for (i = 0; i < 2; i++)
	{
		if (pg_pread(W.state_fd, &r[i], sizeof(StateRecord), i * sizeof(StateRecord)) !=
			sizeof(StateRecord) || !EQ_CRC32C(r[i].crc, record_crc(&r[i])))
			continue;
		if (best < 0 || r[i].seq > r[best].seq)
			best = i;
	}
	if (best < 0)
		return false;
	W.state_seq = r[best].seq;
	*st = r[best].st;
	return true;
}

static int
cb_persist(void *ctx, const bft_persist *st)
{
	StateRecord r;

	memset(&r, 0, sizeof(r));
	r.seq = ++W.state_seq;
	r.st = *st;
	r.crc = record_crc(&r);
	if (pg_pwrite(W.state_fd, &r, sizeof(r), (r.seq % 2) * sizeof(r)) != sizeof(r) ||
		pg_fdatasync(W.state_fd) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not persist consensus state: %m"),
				 errdetail("The node does not vote until it can.")));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Mempool
 * --------------------------------------------------------------------- */

static MemBatch *
mempool_find(const uint8 *hash)
{
	return hash_search(W.mempool, hash, HASH_FIND, NULL);
}

static bool
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
	m->arrival = ++W.arrivals;
	if (W.npending == W.pending_cap)
	{
		W.pending_cap = Max(64, W.pending_cap * 2);
		W.pending = W.pending ? repalloc(W.pending, (Size) W.pending_cap * 32)
			: MemoryContextAlloc(TopMemoryContext, (Size) W.pending_cap * 32);
	}
	memcpy(W.pending + (Size) W.npending * 32, hash, 32);
	W.npending++;
	return true;
}

/* A batch was decided: drop its bytes, keep the hash to refuse repeats. */
static void
mempool_commit(const uint8 *hash)
{
	MemBatch   *m = mempool_find(hash);
	int			i;

	if (m == NULL)
	{
		bool		found;

		m = hash_search(W.mempool, hash, HASH_ENTER, &found);
		m->bytes = NULL;
		m->len = 0;
	}
	m->committed = true;
	if (m->bytes)
		pfree(m->bytes);
	m->bytes = NULL;
	for (i = 0; i < W.npending; i++)
		if (memcmp(W.pending + (Size) i * 32, hash, 32) == 0)
		{
			memmove(W.pending + (Size) i * 32, W.pending + (Size) (i + 1) * 32,
					(Size) (W.npending - i - 1) * 32);
			W.npending--;
			break;
		}
}

/* ---------------------------------------------------------------------
 * Sending
 * --------------------------------------------------------------------- */

static void
send_frame(int to, uint8 kind, const uint8 *body, size_t len)
{
	ll_buf		f;
	int			i;

	ll_buf_init(&f, ll_palloc_realloc);
	ll_frame_append(&f, kind, body, len);
	for (i = 0; i < W.nmembers; i++)
	{
		if (W.members[i].link == NULL || W.members[i].mismatch)
			continue;
		if (to == BFT_TO_ALL || to == i)
			ll_link_queue(W.members[i].link, f.data, f.len);
	}
	pfree(f.data);
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

static int
member_of(const uint8 *pub)
{
	int			i;

	for (i = 0; i < W.nmembers; i++)
		if (memcmp(W.members[i].pub, pub, 32) == 0)
			return i;
	return -1;
}

static bool
verified_before(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
				const uint8_t sig[64])
{
	return true;
}

/* Decode a batch and check it belongs to this channel and a member. */
static bool
batch_ok(const uint8 *bytes, size_t len, ll_batch *b)
{
	if (ll_batch_decode(bytes, len, MAX_BATCH_BYTES, cb_verify, NULL, b) != 0)
		return false;
	return memcmp(b->chain_id, W.chain_id, 32) == 0 && member_of(b->origin) >= 0;
}

/* ---------------------------------------------------------------------
 * Core callbacks
 * --------------------------------------------------------------------- */

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
	missing = palloc((Size) Max(p.nbatches, 1) * 32);
	for (i = 0; i < p.nbatches; i++)
	{
		MemBatch   *m = mempool_find(p.batch_hashes + (Size) i * 32);

		if (m != NULL && m->committed)
		{
			pfree(missing);
			return false;		/* decided before: an honest proposer never repeats */
		}
		if (m == NULL)
			memcpy(missing + (Size) nmissing++ * 32, p.batch_hashes + (Size) i * 32, 32);
	}
	if (nmissing > 0)
		request_batches(missing, nmissing);
	pfree(missing);
	return nmissing == 0;
}

static int
cb_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
	return bft_ed25519_sign(W.key, msg, len, sig);
}

static void process_inbox(bool batches_only);

/* ---------------------------------------------------------------------
 * Applying decisions
 * --------------------------------------------------------------------- */

/* Fetch decided batches we never received from any peer that has them. */
static bool
fetch_batches(const uint8 *hashes, int n)
{
	int			i;
	StringInfoData arr;

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
		const char *vals[2] = {W.channel, arr.data};
		PGresult   *res;
		int			r;

		if (W.members[i].link == NULL || W.members[i].mismatch)
			continue;
		res = ll_link_fetch(W.members[i].link, "SELECT ledger.batches($1, $2::bytea[])",
							2, NULL, vals, NULL, NULL);
		if (res == NULL)
			continue;
		for (r = 0; r < PQntuples(res); r++)
		{
			ll_batch	b;
			const uint8 *bytes = (const uint8 *) PQgetvalue(res, r, 0);
			size_t		len = PQgetlength(res, r, 0);

			if (batch_ok(bytes, len, &b))
				mempool_add(b.batch_hash, bytes, len);
		}
		PQclear(res);
	}
	pfree(arr.data);
	for (i = 0; i < n; i++)
		if (mempool_find(hashes + (Size) i * 32) == NULL)
			return false;
	return true;
}

/* Apply a certified payload; batches come from the mempool (or peers). */
static void
apply_payload(uint64 height, const uint8 *payload, size_t plen, const bft_cert *cert)
{
	ll_payload	p;
	ll_batch   *batches;
	bft_msg		m;
	uint8	   *dec = palloc(BFT_MAX_MSG);
	size_t		dlen;
	int			i;

	if (ll_payload_decode(payload, plen, &p) != 0)
		elog(ERROR, "decided payload at height " UINT64_FORMAT " does not decode", height);
	if (memcmp(p.prev_head, W.apply.ledger_head, 32) != 0)
		ereport(PANIC,
				(errmsg("ledger channel \"%s\" diverged at height " UINT64_FORMAT, W.channel, height),
				 errdetail("The decided block builds on a ledger head this node does not have.")));
	for (i = 0; i < 50; i++)
	{
		int			k,
					nmissing = 0;
		uint8	   *missing = palloc((Size) Max(p.nbatches, 1) * 32);

		for (k = 0; k < p.nbatches; k++)
		{
			MemBatch   *mb = mempool_find(p.batch_hashes + (Size) k * 32);

			if (mb == NULL || mb->bytes == NULL)
				memcpy(missing + (Size) nmissing++ * 32, p.batch_hashes + (Size) k * 32, 32);
		}
		if (nmissing == 0)
			break;
		process_inbox(true);
		if (i > 0 && fetch_batches(missing, nmissing))
			break;
		pg_usleep(100 * 1000L);
		CHECK_FOR_INTERRUPTS();
	}
	batches = palloc0(sizeof(ll_batch) * Max(p.nbatches, 1));
	for (i = 0; i < p.nbatches; i++)
	{
		MemBatch   *mb = mempool_find(p.batch_hashes + (Size) i * 32);

		/* signatures were checked when the batch entered the mempool */
		if (mb == NULL || mb->bytes == NULL ||
			ll_batch_decode(mb->bytes, mb->len, MAX_BATCH_BYTES, verified_before, NULL,
							&batches[i]) != 0)
			elog(ERROR, "batch %d of decided height " UINT64_FORMAT " is not available", i, height);
	}
	memset(&m, 0, sizeof(m));
	m.type = BFT_MSG_BLOCK_RESP;
	m.u.resp.payload = payload;
	m.u.resp.payload_len = (uint32) plen;
	m.u.resp.cert = *cert;
	if (bft_encode(&m, dec, BFT_MAX_MSG, &dlen) != 0)
		elog(ERROR, "could not encode the certificate of height " UINT64_FORMAT, height);
	{
		MemoryContext cxt = CurrentMemoryContext;
		TimestampTz t0 = GetCurrentTimestamp();

		if ((access("/tmp/ll_trace", F_OK) == 0)) elog(LOG, "TRACE commit h=%lu round=%u nb=%d", height, cert->round, p.nbatches);
		ll_apply_decision(&W.apply, height, p.time_us, dec, dlen, batches, p.nbatches);
		if ((access("/tmp/ll_trace", F_OK) == 0)) elog(LOG, "TRACE applied h=%lu in %ld us", height, (long)(GetCurrentTimestamp() - t0));
		MemoryContextSwitchTo(cxt);
	}
	for (i = 0; i < p.nbatches; i++)
		mempool_commit(p.batch_hashes + (Size) i * 32);
	W.next_height = height + 1;
	W.last_progress = GetCurrentTimestamp();
	pfree(batches);
	pfree(dec);
}

/* ---------------------------------------------------------------------
 * Driving the core
 * --------------------------------------------------------------------- */

static void step(bft_event *ev);
static int	nheld = 0;			/* proposals waiting for batches */

static void
record_evidence(const bft_evidence *e)
{
	int			v = e->a.validator;

	ereport(WARNING,
			(errmsg("validator \"%s\" of channel \"%s\" signed conflicting votes at height " UINT64_FORMAT " round %u",
					v < W.valset.n ? W.members[v].name : "?", W.channel,
					e->a.height, e->a.round)));
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute_with_args("INSERT INTO ledger.evidence (channel_id, validator, height, round, vote_type, proof) "
						  "VALUES ($1, $2, $3, $4, $5, $6)", 6,
						  (Oid[]) {INT4OID, TEXTOID, INT8OID, INT4OID, TEXTOID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(W.channel_id),
							  CStringGetTextDatum(v < W.valset.n ? W.members[v].name : "?"),
							  Int64GetDatum((int64) e->a.height), Int32GetDatum((int32) e->a.round),
							  CStringGetTextDatum(e->a.type == BFT_MSG_PREVOTE ? "prevote" : "precommit"),
						  PointerGetDatum(ll_bytea((const uint8 *) e, sizeof(*e)))},
						  NULL, false, 0);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

#ifdef LL_FAULT_INJECTION
static int	fault_to;

static int
fault_sign(const uint8 *msg, size_t len, uint8 sig[64])
{
	return bft_ed25519_sign(W.key, msg, len, sig);
}

static void
fault_emit(uint8 kind, const uint8 *body, size_t len)
{
	send_frame(fault_to, kind, body, len);
}
#endif

/*
 * Timers are never cancelled (the core ignores stale ones), so drop those
 * of past heights here; otherwise a busy node runs out of slots and loses
 * the one timeout it needs.
 */
static void
add_timer(uint64 now, const bft_timer *t)
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
	W.timers[W.ntimers].due_ms = now + t->delay_ms;
	W.timers[W.ntimers].t = *t;
	W.ntimers++;
}

static void
handle_output(bft_output *out)
{
	uint64		t = now_ms();
	uint32		i;

	if (out->has_commit)
		apply_payload(out->commit.height, out->commit.payload, out->commit.payload_len,
					  &out->commit.cert);
	for (i = 0; i < out->nmsgs; i++)
	{
		int			to = out->msgs[i].to == BFT_TO_ALL ? BFT_TO_ALL : (int) out->msgs[i].to;
		const uint8 *body = out->buf + out->msgs[i].off;

#ifdef LL_FAULT_INJECTION
		fault_to = to;
		if (ll_fault_active() &&
			ll_fault_consensus(body, out->msgs[i].len, W.chain_id, fault_sign, fault_emit))
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
	bft_step(W.node, ev, W.out);
	handle_output(W.out);
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
			memset(&ev, 0, sizeof(ev));
			ev.kind = BFT_EV_TIMEOUT;
			ev.u.timeout.kind = tm.kind;
			ev.u.timeout.height = tm.height;
			ev.u.timeout.round = tm.round;
			step(&ev);
			i = 0;
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
	if (nheld > 0)
		best = Min(best, 5);
	if (W.want_block)
	{
		long		since = (long) ((GetCurrentTimestamp() - W.want_since) / 1000);

		best = Min(best, Max(0, (W.npending > 0 ? ll_propose_delay_ms : IDLE_PROPOSE_MS) - since));
	}
	return best;
}

static void
maybe_propose(void)
{
	ll_payload	p;
	ll_buf		buf;
	uint8		value[32];
	bft_event	ev;
	int			n;

	if (!W.want_block || W.want_height != W.next_height)
		return;
	if (!TimestampDifferenceExceeds(W.want_since, GetCurrentTimestamp(),
									W.npending == 0 ? IDLE_PROPOSE_MS : ll_propose_delay_ms))
		return;
	n = Min(W.npending, LL_PAYLOAD_MAX_BATCHES);
	memset(&p, 0, sizeof(p));
	p.height = W.want_height;
	p.prev_head = W.apply.ledger_head;
	p.time_us = now_unix_us();
	p.nbatches = (uint16) n;
	p.batch_hashes = W.pending;
	ll_buf_init(&buf, ll_palloc_realloc);
	if (ll_payload_encode(&buf, &p) != 0 || ll_payload_value(buf.data, buf.len, value) != 0)
		elog(ERROR, "could not encode a block payload");
	W.want_block = false;
	if ((access("/tmp/ll_trace", F_OK) == 0)) elog(LOG, "TRACE propose h=%lu nb=%d waited %ld us", p.height, n, (long)(GetCurrentTimestamp() - W.want_since));
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

static void
on_batch_frame(const uint8 *body, size_t len)
{
	ll_batch	b;

	if (batch_ok(body, len, &b) && mempool_find(b.batch_hash) == NULL)
		mempool_add(b.batch_hash, body, len);
}

/* Serve a peer's request for batches we hold (mempool or decided). */
static void
on_batch_req(int from, const uint8 *body, size_t len)
{
	uint16		n;
	const uint8 *hashes;
	int			i;

	if (ll_batch_req_decode(body, len, &n, &hashes) != 0)
		return;
	for (i = 0; i < n; i++)
	{
		MemBatch   *m = mempool_find(hashes + (Size) i * 32);

		if (m != NULL && m->bytes != NULL)
			send_frame(from, LL_FRAME_BATCH, m->bytes, m->len);
	}
}

static void
on_hello(int from, const uint8 *body, size_t len)
{
	ll_hello	h;
	Member	   *m = &W.members[from];

	if (ll_hello_decode(body, len, &h) != 0)
		return;
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

/*
 * A proposal whose batches have not arrived yet is held back (the batches
 * are asked for) instead of being judged invalid at once: batches travel
 * from their origin, the proposal from the proposer, and either may come
 * first.  Held proposals go to the core when complete, or after
 * HOLD_MS, when the core then finds them invalid.
 */
#define MAX_HELD 8
#define HOLD_MS 300

typedef struct Held
{
	int			from;
	uint8	   *bytes;
	size_t		len;
	TimestampTz since;
} Held;

static Held held[MAX_HELD];

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

/* Batches a proposal names that we do not have (requested on the way). */
static int
missing_batches(const uint8 *data, size_t len, bool request)
{
	bft_msg		m;
	ll_payload	p;
	uint8	   *missing;
	int			n = 0;
	int			i;

	if (bft_decode(data, len, &m) != BFT_OK || m.type != BFT_MSG_PROPOSAL ||
		ll_payload_decode(m.u.proposal.payload, m.u.proposal.payload_len, &p) != 0)
		return 0;
	missing = palloc((Size) Max(p.nbatches, 1) * 32);
	for (i = 0; i < p.nbatches; i++)
		if (mempool_find(p.batch_hashes + (Size) i * 32) == NULL)
			memcpy(missing + (Size) n++ * 32, p.batch_hashes + (Size) i * 32, 32);
	if (n > 0 && request)
		request_batches(missing, n);
	pfree(missing);
	return n;
}

static void
on_consensus_frame(int from, const uint8 *data, size_t len)
{
	if (nheld < MAX_HELD && missing_batches(data, len, true) > 0)
	{
		Held	   *h = &held[nheld++];

		h->from = from;
		h->bytes = MemoryContextAlloc(TopMemoryContext, len);
		memcpy(h->bytes, data, len);
		h->len = len;
		h->since = GetCurrentTimestamp();
		return;
	}
	feed_msg(from, data, len);
}

/* Feed held proposals that are complete now, or held long enough. */
static void
release_held(void)
{
	int			i = 0;

	while (i < nheld)
	{
		Held		h = held[i];

		if (missing_batches(h.bytes, h.len, false) == 0 ||
			TimestampDifferenceExceeds(h.since, GetCurrentTimestamp(), HOLD_MS))
		{
			held[i] = held[--nheld];
			feed_msg(h.from, h.bytes, h.len);
			pfree(h.bytes);
			i = 0;
			continue;
		}
		i++;
	}
}

static void
on_frames(int from, const uint8 *data, size_t len, bool batches_only)
{
	ll_frame_iter it;
	ll_frame	f;

	ll_frame_iter_init(&it, data, len);
	while (ll_frame_next(&it, &f) == 1)
	{
		if (batches_only)
		{
			if (f.kind == LL_FRAME_BATCH && !W.members[from].mismatch)
				on_batch_frame(f.body, f.len);
			continue;
		}
		if (f.kind == LL_FRAME_HELLO)
			on_hello(from, f.body, f.len);
		else if (W.members[from].mismatch)
			continue;
		else if (f.kind == LL_FRAME_BATCH)
			on_batch_frame(f.body, f.len);
		else if (f.kind == LL_FRAME_BATCH_REQ)
			on_batch_req(from, f.body, f.len);
		else if (f.kind == LL_FRAME_CONSENSUS)
			on_consensus_frame(from, f.body, f.len);
	}
}

/*
 * Records are u32 length | u32 0 | sender[32] | frames.  With batches_only
 * (while a decided block waits for a batch) only batches are taken and the
 * records are kept for the main loop.
 */
static ll_buf deferred;

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
		int			from;

		memcpy(&len, cur.data + off, 4);
		if (len < 32 || off + 8 + len > cur.len)
			break;
		from = member_of(cur.data + off + 8);
		if (from >= 0 && from != W.self)
			on_frames(from, cur.data + off + 40, len - 32, batches_only);
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

static void
process_txq(void)
{
	Size		n = ll_queue_take(W.slot, false, W.txq_buf, LL_TXQ_SIZE);
	Size		off = 0;
	ll_batch_builder bb;
	ll_buf		out,
				content;
	uint8		hash[32];
	int			ntx = 0;
	uint64		gen = pg_atomic_read_u64(&W.slot->generation);

	if (n == 0)
		return;
	ll_buf_init(&out, ll_palloc_realloc);
	ll_buf_init(&content, ll_palloc_realloc);
	ll_batch_begin(&bb, &out, &content, MAX_BATCH_BYTES * 2, W.chain_id, W.self_pub,
				   ++W.batch_seq, now_unix_us());
	while (off + sizeof(LLTxHeader) <= n)
	{
		LLTxHeader h;

		memcpy(&h, W.txq_buf + off, sizeof(h));
		if (h.generation == gen)
		{
			add_tx_rows(&bb, &h, W.txq_buf + off + sizeof(h));
			ntx++;
		}
		off += sizeof(h) + h.len;
	}
	if (ntx > 0)
	{
		int			rc = ll_batch_finish(&bb, cb_sign, NULL, hash);

		if (rc != 0)
			elog(WARNING, "could not build a transaction batch: %s", ll_wire_strerror(rc));
		else
		{
			mempool_add(hash, out.data, out.len);
#ifdef LL_FAULT_INJECTION
			if (ll_fault_active())
				ll_fault_batch(out.data, out.len);
#endif
			send_frame(BFT_TO_ALL, LL_FRAME_BATCH, out.data, out.len);
		}
	}
	pfree(out.data);
	if (content.data)
		pfree(content.data);
}

/* ---------------------------------------------------------------------
 * Links, hellos and status
 * --------------------------------------------------------------------- */

static void
send_hellos(void)
{
	ll_hello	h;
	ll_buf		body;

	if (!TimestampDifferenceExceeds(W.last_hello, GetCurrentTimestamp(), HELLO_MS))
		return;
	W.last_hello = GetCurrentTimestamp();
	h.chain_id = W.chain_id;
	h.height = W.next_height;
	h.name.ptr = W.self >= 0 ? W.members[W.self].name : "observer";
	h.name.len = strlen(h.name.ptr);
	ll_buf_init(&body, ll_palloc_realloc);
	ll_hello_encode(&body, &h);
	send_frame(BFT_TO_ALL, LL_FRAME_HELLO, body.data, body.len);
	pfree(body.data);
}

static void
publish_status(void)
{
	LLConsSlot *s = W.slot;
	int			i,
				k = 0;
	uint32		prop;

	SpinLockAcquire(&s->mutex);
	s->height = (int64) W.next_height;
	s->round = (int32) bft_round(W.node);
	s->step = 0;
	prop = bft_proposer(&W.valset, W.next_height, bft_round(W.node));
	strlcpy(s->proposer, prop < (uint32) W.nmembers ? W.members[prop].name : "?", NAMEDATALEN);
	s->validators = (int32) W.valset.n;
	s->quorum = (int32) bft_quorum(&W.valset);
	s->ledger_height = W.apply.ledger_height;
	for (i = 0; i < W.nmembers && k < LL_MAX_PEERS; i++)
	{
		Member	   *m = &W.members[i];
		LLPeerStatus *p = &s->peers[k++];

		strlcpy(p->name, m->name, NAMEDATALEN);
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
		p->height = m->height;
		p->last_contact = m->last_contact;
		p->rtt_ms = m->link->rtt_ms;
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

static void
wait_for_work(long timeout)
{
	WaitEventSet *set = CreateWaitEventSet(CurrentMemoryContext, W.nmembers + 2);
	WaitEvent	ev[LL_MAX_PEERS + 2];
	int			i;

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (i = 0; i < W.nmembers; i++)
	{
		pgsocket	sock;
		int			events;

		if (W.members[i].link == NULL)
			continue;
		events = ll_link_wait_events(W.members[i].link, &sock);
		if (events != 0)
			AddWaitEventToSet(set, events, sock, NULL, NULL);
		else
			timeout = Min(timeout, ll_link_timeout(W.members[i].link));
	}
	(void) WaitEventSetWait(set, Max(timeout, 0), ev, lengthof(ev), PG_WAIT_EXTENSION);
	FreeWaitEventSet(set);
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

static int
tier_index(const char *name)
{
	int			i;

	for (i = 0; i < W.ntiers; i++)
		if (strcmp(W.tiers[i], name) == 0)
			return i;
	return 0;
}

/* Members in pubkey order (the genesis order and validator indexes). */
static void
load_members(void)
{
	uint64		i;

	SPI_execute_with_args("SELECT name, pubkey, conninfo, clearance FROM ledger.peer "
						  "WHERE channel_id = $1 AND since_height = 0 ORDER BY pubkey", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)},
						  NULL, true, 0);
	if (SPI_processed == 0 || SPI_processed > LL_MAX_PEERS)
	{
		ereport(LOG, (errmsg("channel \"%s\" has no peers (or too many); consensus worker exits",
							 W.channel)));
		proc_exit(0);
	}
	W.nmembers = (int) SPI_processed;
	W.self = -1;
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		Member	   *m = &W.members[i];
		bool		isnull;
		bytea	   *k = DatumGetByteaPP(SPI_getbinval(t, td, 2, &isnull));

		strlcpy(m->name, SPI_getvalue(t, td, 1), NAMEDATALEN);
		memcpy(m->pub, VARDATA_ANY(k), 32);
		m->tier = tier_index(SPI_getvalue(t, td, 4));
		m->height = -1;
		if (memcmp(m->pub, W.self_pub, 32) == 0)
			W.self = (int) i;
		else
			m->link = ll_link_new(m->name, SPI_getvalue(t, td, 3), m->pub);
		W.valset.v[i].power = 1;
		memcpy(W.valset.v[i].pubkey, m->pub, 32);
	}
	W.valset.n = (uint32) W.nmembers;
}

static void
compute_chain_id(void)
{
	ll_wire_str ch = {W.channel, strlen(W.channel)};
	ll_wire_str *tiers = palloc(sizeof(ll_wire_str) * W.ntiers);
	ll_member  *mem = palloc(sizeof(ll_member) * W.nmembers);
	ll_buf		g;
	int			i;

	for (i = 0; i < W.ntiers; i++)
	{
		tiers[i].ptr = W.tiers[i];
		tiers[i].len = strlen(W.tiers[i]);
	}
	for (i = 0; i < W.nmembers; i++)
	{
		mem[i].pubkey = W.members[i].pub;
		mem[i].name.ptr = W.members[i].name;
		mem[i].name.len = strlen(W.members[i].name);
		mem[i].tier = tiers[W.members[i].tier];
	}
	ll_buf_init(&g, ll_palloc_realloc);
	if (ll_genesis_encode(&g, ch, tiers, W.ntiers, mem, W.nmembers) != 0 ||
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
static void
start_core(void)
{
	bft_start  *st = palloc0(sizeof(bft_start));
	bft_event	ev;

	W.node = bft_init(W.node_mem, &W.cfg);
	st->height = W.next_height;
	st->valset = W.valset;
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
	W.cfg.cb.validate = cb_validate;
	W.cfg.cb.persist = cb_persist;
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
	W.channel_id = W.slot->channel_id;
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
	/* transactions queued for an earlier worker are resubmitted by their backends */
	W.txq_buf = MemoryContextAllocHuge(TopMemoryContext, LL_TXQ_SIZE);
	W.inbox_buf = MemoryContextAllocHuge(TopMemoryContext, LL_INBOX_SIZE);
	(void) ll_queue_take(W.slot, false, W.txq_buf, LL_TXQ_SIZE);
	pg_atomic_fetch_add_u64(&W.slot->generation, 1);
	SpinLockAcquire(&W.slot->mutex);
	W.slot->pid = MyProcPid;
	W.slot->latch = MyLatch;
	W.slot->proc = MyProc;
	SpinLockRelease(&W.slot->mutex);
	on_shmem_exit(slot_detach, (Datum) 0);
}

/* ---------------------------------------------------------------------
 * Catch-up: fetch decided blocks with their certificates from a peer
 * that is ahead, verify each against the validator set, apply it.
 * --------------------------------------------------------------------- */

static bool
verified_decision(const uint8 *dec, size_t dlen, uint64 height, bft_msg *m)
{
	uint8		value[32];

	if (bft_decode(dec, dlen, m) != BFT_OK || m->type != BFT_MSG_BLOCK_RESP ||
		m->u.resp.cert.height != height)
		return false;
	if (bft_cert_verify(&W.valset, W.chain_id, &m->u.resp.cert, &W.cfg.cb) != BFT_OK)
		return false;
	return ll_payload_value(m->u.resp.payload, m->u.resp.payload_len, value) == 0 &&
		memcmp(value, m->u.resp.cert.value, 32) == 0;
}

static int
catch_up_from(Member *m)
{
	char		from[32],
				count[16];
	const char *vals[3] = {W.channel, from, count};
	PGresult   *res;
	int			applied = 0;
	int			r = 0;

	snprintf(from, sizeof(from), UINT64_FORMAT, W.next_height);
	snprintf(count, sizeof(count), "%d", CATCHUP_CHUNK);
	res = ll_link_fetch(m->link,
						"SELECT d.height, d.decision, b FROM ledger.decisions($1, $2, $3) d "
						"LEFT JOIN LATERAL unnest(d.batches) b ON true ORDER BY d.height",
						3, NULL, vals, NULL, NULL);
	if (res == NULL)
		return 0;
	while (r < PQntuples(res))
	{
		uint64		h = pg_ntoh64(*(uint64 *) PQgetvalue(res, r, 0));
		bft_msg		msg;
		int			first = r;

		for (; r < PQntuples(res) && pg_ntoh64(*(uint64 *) PQgetvalue(res, r, 0)) == h; r++)
		{
			ll_batch	b;

			if (!PQgetisnull(res, r, 2) &&
				batch_ok((const uint8 *) PQgetvalue(res, r, 2), PQgetlength(res, r, 2), &b))
				mempool_add(b.batch_hash, (const uint8 *) PQgetvalue(res, r, 2), PQgetlength(res, r, 2));
		}
		if (h != W.next_height ||
			!verified_decision((const uint8 *) PQgetvalue(res, first, 1),
							   PQgetlength(res, first, 1), h, &msg))
		{
			ereport(WARNING,
					(errmsg("peer \"%s\" sent an unverifiable decision for height " UINT64_FORMAT,
							m->name, h)));
			break;
		}
		apply_payload(h, msg.u.resp.payload, msg.u.resp.payload_len, &msg.u.resp.cert);
		applied++;
	}
	PQclear(res);
	return applied;
}

static void
maybe_catch_up(void)
{
	int			best = -1;
	int			i,
				n,
				total = 0;

	for (i = 0; i < W.nmembers; i++)
		if (W.members[i].link && !W.members[i].mismatch &&
			W.members[i].height > (int64) W.next_height &&
			(best < 0 || W.members[i].height > W.members[best].height))
			best = i;
	if (best < 0)
		return;
	if (W.members[best].height <= (int64) W.next_height + 1 &&
		!TimestampDifferenceExceeds(W.last_progress, GetCurrentTimestamp(), 2000))
		return;
	while ((n = catch_up_from(&W.members[best])) > 0)
	{
		total += n;
		CHECK_FOR_INTERRUPTS();
		if (n < CATCHUP_CHUNK)
			break;
	}
	W.last_progress = GetCurrentTimestamp();
	if (total > 0)
	{
		ereport(LOG,
				(errmsg("channel \"%s\" caught up %d heights from peer \"%s\"",
						W.channel, total, W.members[best].name)));
		start_core();
	}
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
	BackgroundWorkerInitializeConnection(ll_database, NULL, 0);
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
	init_mempool();
	load_state();
	W.apply.channel_id = W.channel_id;
	W.apply.channel = W.channel;
	memcpy(W.apply.self, W.self_pub, 32);
	W.apply.slot = W.slot;
	W.apply.ntiers = W.ntiers;
	W.apply.tiers = W.tiers;
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
		process_inbox(false);
		release_held();
		process_txq();
		fire_timers();
		maybe_propose();
		send_hellos();
		maybe_catch_up();
		service_links();
		publish_status();
		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		wait_for_work(next_timer_ms());
	}
}
