/*
 * fault.c
 *		Byzantine behaviour for tests.  Compiled only into the test build
 *		(make LL_FAULT_INJECTION=1, see test/sh/multinode_byzantine.sh);
 *		the release build has neither this code nor its setting.
 *
 * With loopledger.fault set, a node's consensus worker keeps running the
 * honest core but lies on the way out:
 *	 equivocate - every vote for a value is also sent for another value,
 *				  properly signed, and every proposal is also sent with
 *				  another payload: conflicting signed messages to everyone;
 *	 forge		- signatures of consensus messages and batches are flipped;
 *	 garbage	- random frames are sent along with the real ones;
 *	 replay		- messages of earlier heights are sent again;
 *	 mute		- its own proposals are never sent (it votes and answers,
 *				  but every turn to propose runs out);
 *	 late		- its own proposals are sent LATE_MS late, well within the
 *				  others' propose timeout (1 s), which allows for skew;
 *	 invalid	- its own proposals are sent signed, but naming a wrong
 *				  previous head: every member prevotes nil;
 *	 early		- with each precommit for a value at height h, it first
 *				  sends a signed proposal for h + 1 naming a wrong previous
 *				  head, before the others can have applied h (and so
 *				  before they can check that head);
 *	 flood		- with each precommit, a dozen unsigned proposals naming
 *				  made-up batches, for its height and the next;
 *	 hoard		- its own batches go, properly signed, to one other member
 *				  only (in turn), and it serves no batch requests: the
 *				  others get them from the proposer that names them;
 *	 stall		- its hellos, sent every 50 ms, claim a height 1000 ahead, and its server
 *				  holds every fetch of blocks or batches for 30 s;
 *	 copy		- as stall, but its server answers those fetches with a
 *				  CopyOutResponse (a liar's server or proxy can);
 *	 spoof		- every 50 ms, over its own peer login, it calls ledger.deliver()
 *				  on each member with hellos in the names of the others,
 *				  claiming another genesis and a height 1000 ahead (signed
 *				  with its own key, the only one it has), and replays the
 *				  last genuine hello it heard from each;
 *	 alter		- every proposal of another member is relayed at once to the
 *				  rest, in the proposer's name and with its signature, but
 *				  with a payload naming no batches (the signature covers
 *				  the value, not the payload);
 *	 rebatch	- with each hello, the 200 batches decided first (its own
 *				  ledger.batch, every member's; "rebatch:FROM-TO" takes
 *				  those of heights FROM to TO) are sent again, as if new;
 *	 all		- each of the above, chosen at random per message.
 */
#include "postgres.h"

#ifdef LL_FAULT_INJECTION

#include <unistd.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "common/pg_prng.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "bft.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"

char	   *ll_fault = NULL;

#define REPLAY_KEEP 64
#define STALL_AHEAD 1000
#define STALL_MS 30000

static uint8 *replay_buf[REPLAY_KEEP];
static size_t replay_len[REPLAY_KEEP];
static int	replay_n = 0;

void
ll_fault_define_guc(void)
{
	DefineCustomStringVariable("loopledger.fault",
							   "Test build only: Byzantine behaviour of this node's consensus worker.",
							   "equivocate, forge, garbage, replay, mute, late, invalid, early, flood, hoard, stall, copy, spoof, alter, rebatch, misdeclare or all (several may be listed); empty for honest.",
							   &ll_fault, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
}

static bool
mode(const char *m)
{
	if (ll_fault == NULL || ll_fault[0] == '\0')
		return false;
	if (strcmp(ll_fault, "all") == 0)
		return pg_prng_uint32(&pg_global_prng_state) % 4 == 0;
	return strstr(ll_fault, m) != NULL;
}

bool
ll_fault_active(void)
{
	return ll_fault != NULL && ll_fault[0] != '\0';
}

static void
remember(const uint8 *msg, size_t len)
{
	int			i = replay_n++ % REPLAY_KEEP;

	if (replay_buf[i])
		pfree(replay_buf[i]);
	replay_buf[i] = MemoryContextAlloc(TopMemoryContext, len);
	memcpy(replay_buf[i], msg, len);
	replay_len[i] = len;
}

/* Proposals sent late: each waits here until its time comes. */
#define LATE_MS 600
#define LATE_KEEP 16

typedef struct Delayed
{
	TimestampTz due;
	int			to;
	uint8	   *msg;
	size_t		len;
} Delayed;

static Delayed delayed[LATE_KEEP];
static int	ndelayed = 0;

static bool
delay(int to, const uint8 *msg, size_t len)
{
	Delayed    *d;

	if (ndelayed == LATE_KEEP)
		return false;
	d = &delayed[ndelayed++];
	d->due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), LATE_MS);
	d->to = to;
	d->msg = MemoryContextAlloc(TopMemoryContext, len);
	memcpy(d->msg, msg, len);
	d->len = len;
	return true;
}

/* Sends the delayed proposals that are due; drops all once not late. */
void
ll_fault_release(ll_fault_emit_fn emit)
{
	TimestampTz now = GetCurrentTimestamp();
	/* not mode(): under "all" it is drawn again on every call */
	bool		late = ll_fault_active() &&
		(strstr(ll_fault, "late") != NULL || strcmp(ll_fault, "all") == 0);
	int			i = 0;

	while (i < ndelayed)
	{
		Delayed		d = delayed[i];

		if (late && d.due > now)
		{
			i++;
			continue;
		}
		delayed[i] = delayed[--ndelayed];
		if (late)
			emit(d.to, LL_FRAME_CONSENSUS, d.msg, d.len);
		pfree(d.msg);
	}
}

/* ms until the next delayed proposal is due (1000 with none). */
long
ll_fault_next_ms(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next = 1000;
	int			i;

	for (i = 0; i < ndelayed; i++)
		next = Min(next, delayed[i].due <= now ? 0 : (long) ((delayed[i].due - now) / 1000) + 1);
	return next;
}

/*
 * A vote or proposal for a value the node never decided on, signed; a
 * proposal gets its payload byte at flip changed: the payload is
 * "LLP1" | height | prev_head | time_us | ...
 */
#define FLIP_PREV_HEAD 12
#define FLIP_TIME 44

static bool
conflicting(const uint8 *msg, size_t len, const uint8 *chain_id, ll_fault_sign_fn sign,
			size_t flip, uint8 *out, size_t *outlen)
{
	bft_msg		m;
	uint8		sb[BFT_SIGN_BYTES_LEN];
	uint8		payload[BFT_MAX_PAYLOAD];

	if (bft_decode(msg, len, &m) != BFT_OK)
		return false;
	if (m.type == BFT_MSG_PREVOTE || m.type == BFT_MSG_PRECOMMIT)
	{
		bft_vote   *v = &m.u.vote;

		if (v->is_nil)
			return false;
		v->value[0] ^= 0x5a;
		bft_sign_bytes(chain_id, v->type, v->height, v->round, -1, false, v->value, sb);
		if (sign(sb, sizeof(sb), v->sig) != 0)
			return false;
	}
	else if (m.type == BFT_MSG_PROPOSAL)
	{
		bft_proposal *p = &m.u.proposal;

		/* another payload at the same height, so another value */
		if (p->payload_len < 60 || p->payload_len > sizeof(payload))
			return false;
		memcpy(payload, p->payload, p->payload_len);
		payload[flip] ^= 0x01;
		p->payload = payload;
		if (ll_payload_value(payload, p->payload_len, p->value) != 0)
			return false;
		p->valid_round = -1;
		p->npol = 0;
		bft_sign_bytes(chain_id, BFT_MSG_PROPOSAL, p->height, p->round, -1, false, p->value, sb);
		if (sign(sb, sizeof(sb), p->sig) != 0)
			return false;
	}
	else
		return false;
	return bft_encode(&m, out, BFT_MAX_MSG, outlen) == BFT_OK;
}

/*
 * A round-0 proposal of payload p as proposer, signed with sign, or with
 * random bytes for a signature if sign is NULL.
 */
static bool
made_up_proposal(const ll_payload *p, uint32 proposer, const uint8 *chain_id,
				 ll_fault_sign_fn sign, uint8 *out, size_t *outlen)
{
	bft_msg		prop;
	ll_buf		buf;
	uint8		sb[BFT_SIGN_BYTES_LEN];
	bool		done;
	int			i;

	ll_buf_init(&buf, ll_palloc_realloc);
	memset(&prop, 0, sizeof(prop));
	prop.type = BFT_MSG_PROPOSAL;
	prop.u.proposal.height = p->height;
	prop.u.proposal.round = 0;
	prop.u.proposal.valid_round = -1;
	prop.u.proposal.proposer = proposer;
	done = ll_payload_encode(&buf, p) == 0 &&
		ll_payload_value(buf.data, buf.len, prop.u.proposal.value) == 0;
	prop.u.proposal.payload = buf.data;
	prop.u.proposal.payload_len = (uint32) buf.len;
	bft_sign_bytes(chain_id, BFT_MSG_PROPOSAL, p->height, 0, -1, false,
				   prop.u.proposal.value, sb);
	if (sign != NULL)
		done = done && sign(sb, sizeof(sb), prop.u.proposal.sig) == 0;
	else
		for (i = 0; i < BFT_SIG_LEN; i++)
			prop.u.proposal.sig[i] = (uint8) pg_prng_uint32(&pg_global_prng_state);
	done = done && bft_encode(&prop, out, BFT_MAX_MSG, outlen) == BFT_OK;
	pfree(buf.data);
	return done;
}

/*
 * A proposal for the height after a precommit's, signed as the
 * precommit's validator (honest members accept it only on that
 * validator's turn), on a made-up previous head.
 */
static bool
early_proposal(const uint8 *msg, size_t len, const uint8 *chain_id, ll_fault_sign_fn sign,
			   uint8 *out, size_t *outlen)
{
	bft_msg		m;
	ll_payload	p;
	uint8		head[32];

	if (bft_decode(msg, len, &m) != BFT_OK || m.type != BFT_MSG_PRECOMMIT || m.u.vote.is_nil)
		return false;
	memset(head, 0x5a, sizeof(head));
	memset(&p, 0, sizeof(p));
	p.height = m.u.vote.height + 1;
	p.prev_head = head;
	p.time_us = GetCurrentTimestamp();
	return made_up_proposal(&p, m.u.vote.validator, chain_id, sign, out, outlen);
}

/*
 * With each precommit, FLOOD_N unsigned proposals for its height and the
 * next, each naming a made-up batch: frames an honest member holds back
 * while it waits for the batches (consensus.c, hold).
 */
#define FLOOD_N 12

static void
flood(int to, const uint8 *msg, size_t len, const uint8 *chain_id, uint8 *buf,
	  ll_fault_emit_fn emit)
{
	bft_msg		m;
	ll_payload	p;
	uint8		rnd[64];
	size_t		n;
	int			k;
	int			i;

	if (bft_decode(msg, len, &m) != BFT_OK || m.type != BFT_MSG_PRECOMMIT)
		return;
	for (k = 0; k < FLOOD_N; k++)
	{
		for (i = 0; i < (int) sizeof(rnd); i++)
			rnd[i] = (uint8) pg_prng_uint32(&pg_global_prng_state);
		memset(&p, 0, sizeof(p));
		p.height = m.u.vote.height + (uint64) (k % 2);
		p.prev_head = rnd;
		p.time_us = GetCurrentTimestamp();
		p.nbatches = 1;
		p.batch_hashes = rnd + 32;
		if (made_up_proposal(&p, (uint32) k % 4, chain_id, NULL, buf, &n))
			emit(to, LL_FRAME_CONSENSUS, buf, n);
	}
}

/*
 * Called for every outgoing consensus frame body; emit() sends one body.
 * Returns true if the original was replaced (not to be sent as is).
 */
bool
ll_fault_consensus(int to, const uint8 *msg, size_t len, const uint8 *chain_id,
				   ll_fault_sign_fn sign, ll_fault_emit_fn emit)
{
	uint8	   *buf;
	size_t		n;
	bool		replaced = false;

	/* the type byte follows the version byte (bft_wire.c) */
	if (len > 1 && msg[1] == BFT_MSG_PROPOSAL && mode("mute"))
		return true;
	if (len > 1 && msg[1] == BFT_MSG_PROPOSAL && mode("late") && delay(to, msg, len))
		return true;
	buf = palloc(BFT_MAX_MSG);
	if (len > 1 && msg[1] == BFT_MSG_PROPOSAL && mode("invalid") &&
		conflicting(msg, len, chain_id, sign, FLIP_PREV_HEAD, buf, &n))
	{
		emit(to, LL_FRAME_CONSENSUS, buf, n);
		pfree(buf);
		return true;
	}

	if (mode("replay") && replay_n > 0)
	{
		int			i = (int) (pg_prng_uint32(&pg_global_prng_state) % Min(replay_n, REPLAY_KEEP));

		emit(to, LL_FRAME_CONSENSUS, replay_buf[i], replay_len[i]);
	}
	remember(msg, len);
	if (mode("early") && early_proposal(msg, len, chain_id, sign, buf, &n))
		emit(to, LL_FRAME_CONSENSUS, buf, n);
	if (mode("flood"))
		flood(to, msg, len, chain_id, buf, emit);
	if (mode("equivocate") && conflicting(msg, len, chain_id, sign, FLIP_TIME, buf, &n))
		emit(to, LL_FRAME_CONSENSUS, buf, n);
	if (mode("forge") && len > BFT_SIG_LEN)
	{
		memcpy(buf, msg, len);
		buf[len - 1] ^= 0xff;	/* the signature ends every signed message */
		emit(to, LL_FRAME_CONSENSUS, buf, len);
		replaced = true;
	}
	if (mode("garbage"))
	{
		size_t		glen = 1 + pg_prng_uint32(&pg_global_prng_state) % 512;
		size_t		i;

		for (i = 0; i < glen; i++)
			buf[i] = (uint8) pg_prng_uint32(&pg_global_prng_state);
		emit(to, (uint8) (1 + pg_prng_uint32(&pg_global_prng_state) % 4), buf, glen);
	}
	pfree(buf);
	return replaced;
}

static bool
accept_any(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
		   const uint8_t sig[64])
{
	return true;
}

/*
 * Batches: true if the caller is to send this one to one peer only, over
 * the node's own authenticated link (and the node serves no batch
 * requests).  With "forge", a byte of the signature is flipped first: the
 * attack on link MACs that makes the peer's proposals fail (consensus.c,
 * check_unchecked).  With "hoard", the batch is sound: the others must
 * hold proposals naming it until they fetched it.
 */
bool
ll_fault_batch(uint8 *batch, size_t len)
{
	ll_batch	b;

	if (mode("hoard"))
		return true;
	if (!mode("forge") ||
		ll_batch_decode(batch, len, LL_TX_MAX_BYTES, accept_any, NULL, &b) != 0)
		return false;
	batch[b.sig - batch] ^= 0xff;
	return true;
}

/* With "stall", hellos claim a height far ahead, so honest members try to
 * catch up from this node... */
uint64
ll_fault_hello_height(uint64 height)
{
	return mode("stall") || mode("copy") ? height + STALL_AHEAD : height;
}

/* ...often, so that a restarted member hears its claim first... */
int
ll_fault_hello_period(int ms)
{
	return mode("stall") || mode("copy") || mode("spoof") ? 50 : ms;
}

void
ll_fault_spoof_hellos(void (*spoof) (void))
{
	if (mode("spoof"))
		spoof();
}

void
ll_fault_rebatch(void (*rebatch) (void))
{
	if (mode("rebatch"))
		rebatch();
}

/*
 * ...and its server holds their fetches (ledger.decisions, ledger.batches),
 * or ("copy") answers them as if the query were COPY TO STDOUT: libpq then
 * stays in COPY state, which the asking worker must not wait out.
 */
void
ll_fault_stall(void)
{
	int			i;

	if (mode("copy"))
	{
		StringInfoData buf;

		pq_beginmessage(&buf, 'H');
		pq_sendbyte(&buf, 0);
		pq_sendint16(&buf, 0);
		pq_endmessage(&buf);
		pq_flush();
	}

	for (i = 0; i < STALL_MS / 100 && mode("stall"); i++)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(100 * 1000L);
	}
}

/* "alter": others' proposals are relayed with another payload */
bool
ll_fault_alter(void)
{
	return mode("alter");
}

/* "misdeclare": INSERT skips the agreed-definition check (a liar's rows) */
bool
ll_fault_misdeclare(void)
{
	return mode("misdeclare");
}

bool
ll_fault_withhold(void)
{
	return mode("forge") || mode("hoard");
}

/* A failure point armed by a file in the data directory fires once. */
static bool
armed(const char *path)
{
	if (access(path, F_OK) != 0)
		return false;
	(void) unlink(path);
	return true;
}

/*
 * A crash between a local backend's commit and the worker's commit of the
 * same block, with the backend's commit on disk: the restarted worker must
 * find the backend's outcome in ledger.txlog and chain its rows instead of
 * inserting them again.  Armed by creating
 * pg_loopledger/crash_before_block_commit in the data directory; fires
 * once, taking the whole server down as a crash would.
 */
void
ll_fault_crash_point(void)
{
	if (!armed("pg_loopledger/crash_before_block_commit"))
		return;
	/*
	 * The backends' commits skip their own WAL flush (capture.c), so most
	 * such crashes lose them too; the WAL writer may have flushed them
	 * first, though, and that is the case worth testing.
	 */
	XLogFlush(GetXLogInsertEndRecPtr());
	elog(PANIC, "loopledger test build: crashing between a local commit and the block's commit");
}

/*
 * Whether the point pg_loopledger/<point> in the data directory is armed
 * (and disarm it): for points whose action lives with the caller.
 */
bool
ll_fault_armed_point(const char *point)
{
	char		path[MAXPGPATH];

	snprintf(path, sizeof(path), "pg_loopledger/%s", point);
	return armed(path);
}

/*
 * The worker dies right after taking transactions from its queue, before
 * any batch is built: those committed without waiting for their order
 * then exist nowhere but in ledger.pending and their rows.  Armed by
 * pg_loopledger/die_after_txq_take; fires once.
 */
void
ll_fault_txq_point(void)
{
	if (armed("pg_loopledger/die_after_txq_take"))
		elog(FATAL, "loopledger test build: the worker dies after taking its transaction queue");
}

/*
 * A backend that queued its transaction without waiting for its order
 * takes 1.5 s to commit: a worker that died right after taking it (see
 * above) restarts before the commit is visible.  Armed by
 * pg_loopledger/slow_async_commit; fires once.
 */
void
ll_fault_async_point(void)
{
	if (armed("pg_loopledger/slow_async_commit"))
		pg_usleep(1500 * 1000L);
}

/*
 * A decided block with batches that fails to apply, as when a ledger
 * table is missing here.  Armed by creating pg_loopledger/<point> in the
 * data directory; fires once.  The points: fail_apply_rows, while
 * inserting a peer's rows (inside run_tx's subtransaction), and
 * fail_apply_handed, just after a local backend was given its turn (it
 * commits while the worker restarts).
 * Armed on every member, the same block fails everywhere and each worker
 * restarts: its batches must not be lost with the workers' memory
 * (apply.c, keep_batches), nor a committed backend left waiting.
 */
void
ll_fault_apply_point(const char *point)
{
	char		path[MAXPGPATH];

	snprintf(path, sizeof(path), "pg_loopledger/%s", point);
	if (!armed(path))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot apply a decided block: loopledger test build failed it on purpose")));
}

#endif							/* LL_FAULT_INJECTION */
