/*
 * sim.c
 *		Deterministic fault simulator for the BFT core.
 *
 * Runs n validators (plus an optional spare that joins and leaves through
 * validator-set changes) of the real core over a seeded virtual network and
 * clock.  Everything random comes from one splitmix64 stream seeded by the
 * seed, and events are ordered by (time, sequence number), so a seed
 * replays exactly; --trace prints every event and a hash of the trace.
 *
 * Faults before the global stabilisation time (GST): message delay, loss,
 * duplication and reordering, partitions that heal, crashes with loss of
 * unflushed state (a crash can hit between any two output stages), clock
 * drift.  In a third of the seeds persist records are durable at once, as
 * with consensus.c's fsync in the callback, and crashes strike in the
 * window that opens: after a commit, before it is stored.  Byzantine nodes
 * (up to f) equivocate, propose and vote for invalid blocks, send garbage
 * bytes, replay old messages, stay silent, or tamper: relay honest
 * proposals with the unsigned parts altered and forge next-height votes
 * and proposals; before and after GST.
 *
 * Checked after every step: agreement, validity, certificate validity, no
 * honest double signing (on the wire, across crashes), no honest lock lost
 * within a height (across crashes), no evidence against an honest node; at
 * the end, liveness: after GST + settle every honest node commits new
 * heights, each decided within a bounded number of rounds.
 *
 * Usage:
 *	 sim [--n N | --nlist 1,4,7,10] [--seeds FIRST:COUNT] [--seed S]
 *		 [--trace] [--expect-violation] [--real] [--bench HEIGHTS] [--quiet]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bft.h"
#include "fakecrypto.h"

#define MAXN 12					/* universe: 10 validators + spare + slack */
#define LIVE_HEIGHTS 3			/* new heights required after GST+settle */
#define SETTLE_MS 3000			/* liveness is judged from GST + SETTLE_MS */
#define LIVE_WINDOW_MS 15000

enum
{
	BYZ_NONE = 0, BYZ_SILENT, BYZ_EQUIVOCATE, BYZ_INVALID, BYZ_GARBAGE,
	BYZ_REPLAY, BYZ_MIXED, BYZ_TAMPER, BYZ_NMODES
};
static const char *byz_names[] = {"honest", "silent", "equivocate", "invalid",
"garbage", "replay", "mixed", "tamper"};

enum
{
	EV_DELIVER = 1, EV_TIMER, EV_BLOCK, EV_CRASH, EV_RESTART, EV_PART, EV_HEAL,
	EV_HARDCRASH
};

typedef struct blob
{
	int			ref;
	uint32_t	len;
	uint8_t		data[];
} blob;

typedef struct sev
{
	uint64_t	t;
	uint64_t	seq;
	uint8_t		kind;
	uint8_t		node;
	uint8_t		from;
	uint32_t	inc;			/* incarnation of node when scheduled */
	blob	   *msg;
	bft_timer	timer;
} sev;

typedef struct sblock
{
	uint8_t		value[BFT_HASH_LEN];
	uint32_t	len;
	uint8_t		payload[64];
	bft_cert   *cert;
	uint64_t	members;		/* valset of this height (membership) */
	uint64_t	pow2;
} sblock;

typedef struct snode
{
	int			id;
	int			byz;
	bool		up;
	uint32_t	inc;
	bft_node   *core;
	uint8_t		pk[BFT_PUBKEY_LEN];
	bft_ed25519_key *key;
	double		drift;
	/* durable */
	bool		has_ps;
	bft_persist ps;
	uint64_t	nblocks;		/* committed heights 1..nblocks */
	uint64_t	cap;
	sblock	   *blocks;
	/* volatile */
	bool		pend_has;
	bft_persist pend_ps;
	bool		crash_armed;
	int			crash_stage;
	/* replay ring for Byzantine nodes */
	blob	   *ring[16];
	uint32_t	nring;
	/* liveness */
	uint64_t	h_at_t1;
	uint32_t	max_round_after;
	uint64_t	commits;
} snode;

typedef struct dsent
{
	uint32_t	gen;
	uint8_t		node;
	uint8_t		type;
	uint32_t	round;
	uint64_t	height;
	uint64_t	vh;				/* hash of (nil, value, valid_round) */
} dsent;

static uint32_t g_ds_cap = 1 << 16;	/* grows; power of two */
static uint32_t g_ds_used;

typedef struct sim
{
	uint64_t	seed;
	uint64_t	rng;
	int			n;				/* initial validators */
	int			N;				/* universe */
	int			f;
	bool		churn;
	bool		durable_ps;		/* persist records durable in the callback */
	bool		real;
	bool		trace;
	bool		bench;
	uint64_t	now;
	uint64_t	gst;
	uint64_t	t_end;
	uint64_t	seq;
	/* network */
	uint32_t	dmax,
				dmax_post;
	double		loss,
				dup;
	int			part[MAXN];		/* partition group, -1 none */
	bool		parted;
	snode		nodes[MAXN];
	/* event heap */
	sev		   *heap;
	size_t		nheap,
				capheap;
	/* agreed chain: value per height */
	uint64_t	nagreed;
	uint64_t	capagreed;
	uint8_t    (*agreed)[BFT_HASH_LEN];
	/* checks */
	bool		violated;
	char		why[512];
	uint64_t	thash;
	uint64_t	t1;
	uint64_t	h1;
	bool		t1_done;
	/* counters */
	uint64_t	msgs,
				bytes,
				deliveries,
				evidence,
				crashes;
	uint64_t	steps;
	bft_output *out;
	bft_valset	vs_tmp;
	uint8_t		chain[BFT_HASH_LEN];
} sim;

static sim S;
static dsent *g_ds;
static uint32_t g_gen;
static bool g_quiet;

/* ------------------------------------------------------------------ rng */

static uint64_t
rnd(void)
{
	uint64_t	z = (S.rng += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint32_t
rndn(uint32_t n)
{
	return n ? (uint32_t) (rnd() % n) : 0;
}

static double
rndf(void)
{
	return (double) (rnd() >> 11) / 9007199254740992.0;
}

/* ---------------------------------------------------------------- trace */

static void
th(uint64_t v)
{
	S.thash = fk_mix(S.thash ^ v);
}

static void
tr(const char *fmt,...)
{
	va_list		ap;

	if (!S.trace)
		return;
	printf("%8" PRIu64 " ", S.now);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
violation(const char *fmt,...)
{
	va_list		ap;

	if (S.violated)
		return;
	S.violated = true;
	va_start(ap, fmt);
	vsnprintf(S.why, sizeof(S.why), fmt, ap);
	va_end(ap);
	tr("VIOLATION %s", S.why);
}

/* ----------------------------------------------------------------- heap */

static bool
ev_less(const sev *a, const sev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void
push(sev e)
{
	size_t		i;

	e.seq = S.seq++;
	if (S.nheap == S.capheap)
	{
		S.capheap = S.capheap ? S.capheap * 2 : 1024;
		S.heap = realloc(S.heap, S.capheap * sizeof(sev));
	}
	i = S.nheap++;
	while (i > 0 && ev_less(&e, &S.heap[(i - 1) / 2]))
	{
		S.heap[i] = S.heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	S.heap[i] = e;
}

static sev
pop(void)
{
	sev			top = S.heap[0];
	sev			last = S.heap[--S.nheap];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= S.nheap)
			break;
		if (c + 1 < S.nheap && ev_less(&S.heap[c + 1], &S.heap[c]))
			c++;
		if (!ev_less(&S.heap[c], &last))
			break;
		S.heap[i] = S.heap[c];
		i = c;
	}
	if (S.nheap)
		S.heap[i] = last;
	return top;
}

static blob *
blob_new(const uint8_t *d, uint32_t len)
{
	blob	   *b = malloc(sizeof(blob) + len);

	b->ref = 1;
	b->len = len;
	memcpy(b->data, d, len);
	return b;
}

static void
blob_unref(blob *b)
{
	if (b && --b->ref == 0)
		free(b);
}

/* ------------------------------------------------------- blocks, valsets */

/*
 * Payload: 'V'|'X' valid flag, tag, u64 height, u8 proposer, u8 change,
 * u64 members, u64 pow2.  A change carries the whole next membership so the
 * valset callback is stateless.
 */
static uint32_t
make_payload(uint8_t *p, bool valid, uint8_t tag, uint64_t h, int proposer,
			 bool change, uint64_t members, uint64_t pow2)
{
	p[0] = valid ? 'V' : 'X';
	p[1] = tag;
	memcpy(p + 2, &h, 8);
	p[10] = (uint8_t) proposer;
	p[11] = change ? 1 : 0;
	memcpy(p + 12, &members, 8);
	memcpy(p + 20, &pow2, 8);
	return 28;
}

static void
build_valset(uint64_t members, uint64_t pow2, bft_valset *vs)
{
	int			i;

	vs->n = 0;
	for (i = 0; i < S.N; i++)
		if ((members >> i) & 1)
		{
			memcpy(vs->v[vs->n].pubkey, S.nodes[i].pk, BFT_PUBKEY_LEN);
			vs->v[vs->n].power = ((pow2 >> i) & 1) ? 2 : 1;
			vs->n++;
		}
}

static bool
honest_validate(const uint8_t value[BFT_HASH_LEN], const uint8_t *payload, size_t len)
{
	uint8_t		h[BFT_HASH_LEN];

	if (len != 28 || payload[0] != 'V')
		return false;
	fk_block_hash(payload, len, h);
	return memcmp(h, value, BFT_HASH_LEN) == 0;
}

/* Membership in force at height h for node s (from its own chain). */
static void
membership_at(const snode *s, uint64_t h, uint64_t *members, uint64_t *pow2)
{
	/* blocks[] index k holds height k+1 and the membership of that height */
	if (h <= s->nblocks)
	{
		*members = s->blocks[h - 1].members;
		*pow2 = s->blocks[h - 1].pow2;
		return;
	}
	if (s->nblocks == 0)
	{
		*members = (UINT64_C(1) << S.n) - 1;
		*pow2 = 0;
	}
	else
	{
		*members = s->blocks[s->nblocks - 1].members;
		*pow2 = s->blocks[s->nblocks - 1].pow2;
	}
	/* a change in block b is active from b + DELAY */
	if (h > BFT_VALSET_DELAY && h - BFT_VALSET_DELAY <= s->nblocks)
	{
		const sblock *b = &s->blocks[h - BFT_VALSET_DELAY - 1];

		if (b->payload[11])
		{
			memcpy(members, b->payload + 12, 8);
			memcpy(pow2, b->payload + 20, 8);
		}
	}
}

/* ------------------------------------------------------------ callbacks */

static int
cb_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[BFT_SIG_LEN])
{
	snode	   *s = ctx;

	if (S.real)
		return bft_ed25519_sign(s->key, msg, len, sig);
	fk_sign(s->pk, msg, len, sig);
	return 0;
}

static bool
cb_verify(void *ctx, const uint8_t pk[BFT_PUBKEY_LEN], const uint8_t *msg,
		  size_t len, const uint8_t sig[BFT_SIG_LEN])
{
	(void) ctx;
	if (S.real)
		return bft_ed25519_verify(NULL, pk, msg, len, sig);
	return fk_verify(pk, msg, len, sig);
}

static bool
cb_value_of(void *ctx, const uint8_t *payload, size_t len, uint8_t value[BFT_HASH_LEN])
{
	(void) ctx;
	fk_block_hash(payload, len, value);
	return true;
}

/*
 * No hash check: the core must not ask about a payload that is not the
 * value's (value_of), and check_commit would catch one decided anyway.
 */
static bool
cb_validate(void *ctx, uint64_t h, const uint8_t value[BFT_HASH_LEN],
			const uint8_t *payload, size_t len)
{
	uint64_t	ph;

	(void) ctx;
	(void) value;
	if (len != 28 || payload[0] != 'V')
		return false;
	memcpy(&ph, payload + 2, 8);
	return ph == h;
}

static int
cb_persist(void *ctx, const bft_persist *st)
{
	snode	   *s = ctx;

	/*
	 * lockedRound only grows within a height (line 36), also across a
	 * crash: the core resumes from the durable record, whatever height it
	 * restarted at.
	 */
	if (!s->byz && s->has_ps && s->ps.height == st->height &&
		s->ps.locked_round >= 0 &&
		(st->locked_round < s->ps.locked_round ||
		 (st->locked_round == s->ps.locked_round &&
		  memcmp(st->locked_value, s->ps.locked_value, BFT_HASH_LEN) != 0)))
		violation("lock lost: honest node %d at h=%" PRIu64 " signs with lock r=%d after a durable lock r=%d",
				  s->id, st->height, st->locked_round, s->ps.locked_round);
	if (S.durable_ps)
	{
		s->ps = *st;
		s->has_ps = true;
		return 0;
	}
	/* durable only when the driver flushes (output stage 2) */
	s->pend_has = true;
	s->pend_ps = *st;
	return 0;
}

static bool
cb_load(void *ctx, uint64_t h, const uint8_t **payload, uint32_t *len, bft_cert *cert)
{
	snode	   *s = ctx;

	if (h == 0 || h > s->nblocks)
		return false;
	*payload = s->blocks[h - 1].payload;
	*len = s->blocks[h - 1].len;
	*cert = *s->blocks[h - 1].cert;
	return true;
}

static bool
cb_valset(void *ctx, uint64_t h, const uint8_t *payload, size_t len, bft_valset *next)
{
	uint64_t	m,
				p2;

	(void) ctx;
	(void) h;
	if (len != 28 || !payload[11])
		return false;
	memcpy(&m, payload + 12, 8);
	memcpy(&p2, payload + 20, 8);
	build_valset(m, p2, next);
	return true;
}

/* ------------------------------------------------------------- network */

static uint32_t
delay(void)
{
	uint32_t	dm = S.now >= S.gst ? S.dmax_post : S.dmax;

	return 1 + rndn(dm);
}

static void
send_to(int from, int to, blob *b)
{
	sev			e;
	int			copies = 1,
				i;

	if (to == from)
		return;
	S.msgs++;
	S.bytes += b->len;
	if (S.now < S.gst)
	{
		if (S.parted && S.part[from] != S.part[to])
			return;
		if (rndf() < S.loss)
			return;
		if (rndf() < S.dup)
			copies = 2;
	}
	else if (rndf() < S.dup / 4)
		copies = 2;
	for (i = 0; i < copies; i++)
	{
		memset(&e, 0, sizeof(e));
		e.t = S.now + delay();
		e.kind = EV_DELIVER;
		e.node = (uint8_t) to;
		e.from = (uint8_t) from;
		e.msg = b;
		b->ref++;
		push(e);
	}
}

static void
send_all(int from, blob *b)
{
	int			j;

	for (j = 0; j < S.N; j++)
		send_to(from, j, b);
}

/* --------------------------------------------------------------- checks */

static uint64_t
vote_key_hash(bool nil, const uint8_t *value, int32_t vr)
{
	return fk_hash(value, (const uint8_t *) &vr, sizeof(vr)) ^ (nil ? 1 : 0);
}

/* Records a signed message an honest node put on the wire. */
static void
check_double_sign(int node, const bft_msg *m)
{
	uint8_t		type = m->type;
	uint64_t	h;
	uint32_t	r;
	uint64_t	vh;
	uint32_t	idx,
				probe;

	if (type == BFT_MSG_PROPOSAL)
	{
		h = m->u.proposal.height;
		r = m->u.proposal.round;
		vh = vote_key_hash(false, m->u.proposal.value, m->u.proposal.valid_round);
	}
	else if (type == BFT_MSG_PREVOTE || type == BFT_MSG_PRECOMMIT)
	{
		h = m->u.vote.height;
		r = m->u.vote.round;
		vh = vote_key_hash(m->u.vote.is_nil, m->u.vote.value, -1);
	}
	else
		return;
	if (g_ds_used * 2 > g_ds_cap)
	{
		/* grow and rehash the current generation */
		uint32_t	oldcap = g_ds_cap,
					k;
		dsent	   *old = g_ds;

		g_ds_cap *= 2;
		g_ds = calloc(g_ds_cap, sizeof(dsent));
		for (k = 0; k < oldcap; k++)
			if (old[k].gen == g_gen)
			{
				uint32_t	j = (uint32_t) fk_mix(old[k].height * 1000003 + old[k].round * 31 +
												  old[k].type * 7 + old[k].node) & (g_ds_cap - 1);

				while (g_ds[j].gen == g_gen)
					j = (j + 1) & (g_ds_cap - 1);
				g_ds[j] = old[k];
			}
		free(old);
	}
	idx = (uint32_t) fk_mix(h * 1000003 + r * 31 + type * 7 + (uint64_t) node) & (g_ds_cap - 1);
	for (probe = 0; probe < g_ds_cap; probe++)
	{
		dsent	   *d = &g_ds[(idx + probe) & (g_ds_cap - 1)];

		if (d->gen != g_gen)
		{
			g_ds_used++;
			d->gen = g_gen;
			d->node = (uint8_t) node;
			d->type = type;
			d->round = r;
			d->height = h;
			d->vh = vh;
			return;
		}
		if (d->node == node && d->type == type && d->round == r && d->height == h)
		{
			if (d->vh != vh)
				violation("double signing: honest node %d sent two different %s at h=%" PRIu64 " r=%u",
						  node, type == BFT_MSG_PROPOSAL ? "proposals" :
						  type == BFT_MSG_PREVOTE ? "prevotes" : "precommits", h, r);
			return;
		}
	}
}

static void
store_commit(snode *s, const bft_commit *c)
{
	sblock	   *b;
	uint64_t	m,
				p2;

	if (c->height != s->nblocks + 1)
	{
		violation("node %d committed height %" PRIu64 " after %" PRIu64, s->id,
				  c->height, s->nblocks);
		return;
	}
	membership_at(s, c->height, &m, &p2);
	if (s->nblocks == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 64;
		s->blocks = realloc(s->blocks, s->cap * sizeof(sblock));
	}
	b = &s->blocks[s->nblocks++];
	memcpy(b->value, c->value, BFT_HASH_LEN);
	b->len = c->payload_len <= 64 ? c->payload_len : 64;
	memcpy(b->payload, c->payload, b->len);
	b->cert = malloc(sizeof(bft_cert));
	*b->cert = c->cert;
	b->members = m;
	b->pow2 = p2;
}

/* Agreement, validity and certificate checks on an honest commit. */
static void
check_commit(snode *s, const bft_commit *c)
{
	bft_callbacks cb = {0};
	uint64_t	m,
				p2;
	int			err;

	cb.verify = cb_verify;
	if (!honest_validate(c->value, c->payload, c->payload_len))
		violation("validity: node %d committed an invalid block at h=%" PRIu64, s->id, c->height);
	if (c->height <= S.nagreed)
	{
		if (memcmp(S.agreed[c->height - 1], c->value, BFT_HASH_LEN) != 0)
			violation("agreement: node %d committed a different block at h=%" PRIu64,
					  s->id, c->height);
	}
	else if (c->height == S.nagreed + 1)
	{
		if (S.nagreed == S.capagreed)
		{
			S.capagreed = S.capagreed ? S.capagreed * 2 : 64;
			S.agreed = realloc(S.agreed, S.capagreed * BFT_HASH_LEN);
		}
		memcpy(S.agreed[S.nagreed++], c->value, BFT_HASH_LEN);
	}
	membership_at(s, c->height, &m, &p2);
	build_valset(m, p2, &S.vs_tmp);
	/* the benchmark times consensus, not this checker's extra verifies */
	err = S.bench ? BFT_OK : bft_cert_verify(&S.vs_tmp, S.chain, &c->cert, &cb);
	if (err != BFT_OK || memcmp(c->cert.value, c->value, BFT_HASH_LEN) != 0 ||
		c->cert.height != c->height)
		violation("certificate of node %d at h=%" PRIu64 " does not verify: %s",
				  s->id, c->height, bft_strerror(err));
	if (S.now >= S.t1 && S.t1_done && c->cert.round > s->max_round_after &&
		c->height > s->h_at_t1 + 1)
		s->max_round_after = c->cert.round;
}

/* ---------------------------------------------------------- byzantine */

static void
byz_sign(snode *s, uint8_t type, uint64_t h, uint32_t r, int32_t vr, bool nil,
		 const uint8_t *value, uint8_t *sig)
{
	uint8_t		sb[BFT_SIGN_BYTES_LEN];

	bft_sign_bytes(S.chain, type, h, r, vr, nil, value, sb);
	cb_sign(s, sb, sizeof(sb), sig);
}

static blob *
encode_blob(const bft_msg *m)
{
	static uint8_t buf[BFT_MAX_MSG];
	size_t		len;

	if (bft_encode(m, buf, sizeof(buf), &len) != BFT_OK)
		return NULL;
	return blob_new(buf, (uint32_t) len);
}

/* Stable split of peers into two camps for one (height, round). */
static bool
camp(uint64_t h, uint32_t r, int peer)
{
	return (fk_mix(S.seed ^ (h * 131 + r) ^ ((uint64_t) peer << 40)) & 1) != 0;
}

static void
alt_value(uint64_t h, uint32_t r, int proposer, bool valid, uint8_t *payload,
		  uint32_t *len, uint8_t value[BFT_HASH_LEN])
{
	*len = make_payload(payload, valid, (uint8_t) ('a' + (r % 26)), h, proposer, false, 0, 0);
	fk_block_hash(payload, *len, value);
}

/* Sends m (decoded from our core's output) the Byzantine way. */
static void
byz_send(snode *s, uint32_t to, const uint8_t *bytes, uint32_t len)
{
	static bft_msg m;
	int			mode = s->byz;
	blob	   *orig = blob_new(bytes, len);
	int			j;

	if (mode == BYZ_MIXED)
		mode = 1 + (int) rndn(BYZ_MIXED - 1);
	if (mode == BYZ_SILENT)
		goto done;
	if (bft_decode(bytes, len, &m) != BFT_OK)
		goto done;
	if (mode == BYZ_EQUIVOCATE || mode == BYZ_INVALID)
	{
		static bft_msg alt;
		uint8_t		pl[64];
		uint32_t	pl_len;
		blob	   *ab;
		bool		valid = mode == BYZ_EQUIVOCATE;

		if (m.type == BFT_MSG_PROPOSAL)
		{
			alt = m;
			alt_value(m.u.proposal.height, m.u.proposal.round, s->id, valid, pl, &pl_len,
					  alt.u.proposal.value);
			alt.u.proposal.payload = pl;
			alt.u.proposal.payload_len = pl_len;
			alt.u.proposal.valid_round = -1;
			alt.u.proposal.npol = 0;
			byz_sign(s, BFT_MSG_PROPOSAL, m.u.proposal.height, m.u.proposal.round, -1,
					 false, alt.u.proposal.value, alt.u.proposal.sig);
		}
		else if (m.type == BFT_MSG_PREVOTE || m.type == BFT_MSG_PRECOMMIT)
		{
			alt = m;
			if (bft_proposer(bft_current_valset(s->core), m.u.vote.height, m.u.vote.round) ==
				(uint32_t) bft_valset_find(bft_current_valset(s->core), s->pk) || !valid)
			{
				alt_value(m.u.vote.height, m.u.vote.round, s->id, valid, pl, &pl_len,
						  alt.u.vote.value);
				alt.u.vote.is_nil = false;
			}
			else if (m.u.vote.is_nil)
			{
				alt.u.vote.is_nil = false;
				for (j = 0; j < BFT_HASH_LEN; j++)
					alt.u.vote.value[j] = (uint8_t) rnd();
			}
			else
			{
				alt.u.vote.is_nil = true;
				memset(alt.u.vote.value, 0, BFT_HASH_LEN);
			}
			byz_sign(s, m.type, m.u.vote.height, m.u.vote.round, -1, alt.u.vote.is_nil,
					 alt.u.vote.value, alt.u.vote.sig);
		}
		else
		{
			if (to == BFT_TO_ALL)
				send_all(s->id, orig);
			else
				send_to(s->id, (int) to, orig);
			goto done;
		}
		ab = encode_blob(&alt);
		if (ab == NULL)
			goto done;
		for (j = 0; j < S.N; j++)
		{
			if (to != BFT_TO_ALL && (uint32_t) j != to)
				continue;
			if (mode == BYZ_INVALID)
				send_to(s->id, j, ab);
			else
			{
				uint64_t	h = m.type == BFT_MSG_PROPOSAL ? m.u.proposal.height : m.u.vote.height;
				uint32_t	r = m.type == BFT_MSG_PROPOSAL ? m.u.proposal.round : m.u.vote.round;

				send_to(s->id, j, camp(h, r, j) ? ab : orig);
			}
		}
		blob_unref(ab);
		goto done;
	}
	if (mode == BYZ_GARBAGE)
	{
		uint8_t		g[256];
		uint32_t	gl,
					k;
		blob	   *gb;

		/* a corrupted copy and random bytes, plus the real message */
		gl = len < sizeof(g) ? len : (uint32_t) sizeof(g);
		memcpy(g, bytes, gl);
		for (k = 0; k < 1 + rndn(4); k++)
			g[rndn(gl)] ^= (uint8_t) (1 + rndn(255));
		gb = blob_new(g, gl);
		send_all(s->id, gb);
		blob_unref(gb);
		gl = rndn(sizeof(g));
		for (k = 0; k < gl; k++)
			g[k] = (uint8_t) rnd();
		if (gl > 1)
			g[0] = 1;
		gb = blob_new(g, gl);
		send_all(s->id, gb);
		blob_unref(gb);
	}
	if (mode == BYZ_REPLAY && s->nring)
	{
		uint32_t	k;

		for (k = 0; k < 2; k++)
		{
			blob	   *rb = s->ring[rndn(s->nring < 16 ? s->nring : 16)];

			if (rb)
				send_all(s->id, rb);
		}
	}
	if (to == BFT_TO_ALL)
		send_all(s->id, orig);
	else
		send_to(s->id, (int) to, orig);
done:
	blob_unref(orig);
}

/* A Byzantine relay's copy of m to every node but itself and from, at once. */
static void
tamper_send(snode *s, int from, const bft_msg *m)
{
	blob	   *b = encode_blob(m);
	int			i;

	for (i = 0; b != NULL && i < S.N; i++)
	{
		sev			d;

		if (i == s->id || i == from ||
			(S.now < S.gst && S.parted && S.part[s->id] != S.part[i]))
			continue;
		S.msgs++;
		S.bytes += b->len;
		memset(&d, 0, sizeof(d));
		d.t = S.now + 1;
		d.kind = EV_DELIVER;
		d.node = (uint8_t) i;
		d.from = (uint8_t) s->id;
		d.msg = b;
		b->ref++;
		push(d);
	}
	blob_unref(b);
}

/*
 * BYZ_TAMPER: a proposal's signature covers neither its payload nor its
 * POL, and next-height messages are buffered before they can be fully
 * judged.  On each honest proposal it receives, this node relays at once
 * a copy with another payload (one validate would accept: only the hash
 * tells it apart) and one without its POL, and forges, under every index,
 * next-height votes of round UINT32_MAX and a next-height proposal, all
 * with junk signatures.
 */
static void
byz_tamper(snode *s, int from, const blob *b)
{
	static bft_msg m,
				t;
	uint8_t		pl[64];
	const bft_valset *vs = bft_current_valset(s->core);
	uint32_t	k;
	int			type;

	if (S.nodes[from].byz || bft_decode(b->data, b->len, &m) != BFT_OK ||
		m.type != BFT_MSG_PROPOSAL)
		return;
	t = m;
	t.u.proposal.payload = pl;
	t.u.proposal.payload_len = make_payload(pl, true, 'J', m.u.proposal.height,
											s->id, false, 0, 0);
	tamper_send(s, from, &t);
	if (m.u.proposal.npol > 0)
	{
		t = m;
		t.u.proposal.npol = 0;
		tamper_send(s, from, &t);
	}
	t = m;
	t.u.proposal.height++;
	t.u.proposal.round = 0;
	t.u.proposal.valid_round = -1;
	t.u.proposal.npol = 0;
	t.u.proposal.proposer = (uint16_t) bft_proposer(vs, t.u.proposal.height, 0);
	memset(t.u.proposal.sig, 0x5a, BFT_SIG_LEN);
	tamper_send(s, from, &t);
	for (type = BFT_MSG_PREVOTE; type <= BFT_MSG_PRECOMMIT; type++)
		for (k = 0; k < vs->n; k++)
		{
			memset(&t, 0, sizeof(t));
			t.type = (uint8_t) type;
			t.u.vote.type = (uint8_t) type;
			t.u.vote.height = m.u.proposal.height + 1;
			t.u.vote.round = UINT32_MAX;
			t.u.vote.validator = (uint16_t) k;
			t.u.vote.is_nil = true;
			memset(t.u.vote.sig, 0x5a, BFT_SIG_LEN);
			tamper_send(s, from, &t);
		}
}

/* --------------------------------------------------------------- driver */

static void crash_node(snode *s);

static void
schedule_timer(snode *s, const bft_timer *t)
{
	sev			e;

	memset(&e, 0, sizeof(e));
	e.t = S.now + (uint64_t) (t->delay_ms * s->drift);
	e.kind = EV_TIMER;
	e.node = (uint8_t) s->id;
	e.inc = s->inc;
	e.timer = *t;
	push(e);
}

/*
 * Acts on a step's outputs in the order bft.h requires.  An armed crash
 * strikes between two stages, losing everything not yet done.
 */
static void
process_outputs(snode *s, bft_output *o)
{
	uint32_t	i;
	int			stage = s->crash_armed ? s->crash_stage : 99;
	static bft_msg m;

	S.steps++;
	/* with durable records, aim at the window after a commit */
	if (stage == 0 && S.durable_ps && !o->has_commit)
		stage = 99;
	if (stage == 0)
		goto crash;
	if (o->has_commit)
	{
		th(o->commit.height);
		th(fk_hash(o->commit.value, NULL, 0));
		tr("node %d COMMIT h=%" PRIu64 " r=%u value=%02x%02x%02x%02x sigs=%u", s->id,
		   o->commit.height, o->commit.cert.round, o->commit.value[0], o->commit.value[1],
		   o->commit.value[2], o->commit.value[3], o->commit.cert.nsigs);
		s->commits++;
		if (!s->byz)
			check_commit(s, &o->commit);
		store_commit(s, &o->commit);
	}
	if (stage == 1)
		goto crash;
	if (s->pend_has)
	{
		s->ps = s->pend_ps;
		s->has_ps = true;
		s->pend_has = false;
	}
	if (stage == 2)
		goto crash;
	for (i = 0; i < o->nmsgs; i++)
	{
		const uint8_t *bytes = o->buf + o->msgs[i].off;
		uint32_t	len = o->msgs[i].len;

		if (stage == 3 && i == o->nmsgs / 2)
			goto crash;
		th(fk_hash(bytes, bytes, len < 32 ? len : 32) ^ len ^ o->msgs[i].to);
		if (S.trace && bft_decode(bytes, len, &m) == BFT_OK)
		{
			if (m.type == BFT_MSG_PREVOTE || m.type == BFT_MSG_PRECOMMIT)
				tr("node %d send %s h=%" PRIu64 " r=%u %s%02x%02x to=%d", s->id,
				   m.type == BFT_MSG_PREVOTE ? "PREVOTE" : "PRECOMMIT", m.u.vote.height,
				   m.u.vote.round, m.u.vote.is_nil ? "nil" : "", m.u.vote.value[0],
				   m.u.vote.value[1], (int) o->msgs[i].to);
			else if (m.type == BFT_MSG_PROPOSAL)
				tr("node %d send PROPOSAL h=%" PRIu64 " r=%u vr=%d value=%02x%02x", s->id,
				   m.u.proposal.height, m.u.proposal.round, m.u.proposal.valid_round,
				   m.u.proposal.value[0], m.u.proposal.value[1]);
			else
				tr("node %d send type=%d len=%u to=%d", s->id, m.type, len, (int) o->msgs[i].to);
		}
		if (!s->byz)
		{
			if (bft_decode(bytes, len, &m) == BFT_OK)
				check_double_sign(s->id, &m);
			else
				violation("honest node %d emitted undecodable bytes", s->id);
			if (o->msgs[i].to == BFT_TO_ALL)
			{
				blob	   *b = blob_new(bytes, len);

				send_all(s->id, b);
				blob_unref(b);
			}
			else
			{
				blob	   *b = blob_new(bytes, len);

				send_to(s->id, (int) o->msgs[i].to, b);
				blob_unref(b);
			}
		}
		else
			byz_send(s, o->msgs[i].to, bytes, len);
	}
	for (i = 0; i < o->ntimers; i++)
		schedule_timer(s, &o->timers[i]);
	if (o->want_block)
	{
		sev			e;

		/* the caller paces block production (n = 1 would spin otherwise) */
		memset(&e, 0, sizeof(e));
		e.t = S.now + (S.bench ? 0 : 10);
		e.kind = EV_BLOCK;
		e.node = (uint8_t) s->id;
		e.inc = s->inc;
		e.timer.height = o->want_block_height;
		push(e);
	}
	for (i = 0; i < o->nevidence; i++)
	{
		bft_callbacks cb = {0};
		int			who;

		cb.verify = cb_verify;
		S.evidence++;
		tr("node %d EVIDENCE against validator %u h=%" PRIu64 " r=%u", s->id,
		   o->evidence[i].a.validator, o->evidence[i].a.height, o->evidence[i].a.round);
		if (bft_evidence_verify(bft_current_valset(s->core), S.chain, &o->evidence[i], &cb) != BFT_OK)
			violation("node %d reported evidence that does not verify", s->id);
		who = -1;
		{
			const bft_valset *vs = bft_current_valset(s->core);
			int			k;

			for (k = 0; k < S.N; k++)
				if (o->evidence[i].a.validator < vs->n &&
					memcmp(vs->v[o->evidence[i].a.validator].pubkey, S.nodes[k].pk, BFT_PUBKEY_LEN) == 0)
					who = k;
		}
		if (who >= 0 && !S.nodes[who].byz)
			violation("evidence against honest node %d", who);
	}
	return;
crash:
	tr("node %d crashes at output stage %d", s->id, stage);
	crash_node(s);
}

static void
step(snode *s, const bft_event *ev)
{
	bft_step(s->core, ev, S.out);
	process_outputs(s, S.out);
}

static void
start_node(snode *s)
{
	bft_config	cfg;
	bft_start  *st = calloc(1, sizeof(bft_start));
	bft_event	ev;
	uint64_t	m,
				p2,
				b;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.chain_id, S.chain, BFT_HASH_LEN);
	memcpy(cfg.self_pubkey, s->pk, BFT_PUBKEY_LEN);
	cfg.timeout_propose_ms = 200;
	cfg.timeout_prevote_ms = 100;
	cfg.timeout_precommit_ms = 100;
	cfg.timeout_delta_ms = 60;
	cfg.gossip_ms = 400;
	cfg.cb.ctx = s;
	cfg.cb.sign = cb_sign;
	cfg.cb.verify = cb_verify;
	cfg.cb.value_of = cb_value_of;
	cfg.cb.validate = cb_validate;
	cfg.cb.persist = cb_persist;
	cfg.cb.load_block = cb_load;
	cfg.cb.valset_change = cb_valset;
	if (s->core == NULL)
		s->core = malloc(bft_node_size());
	bft_init(s->core, &cfg);
	s->up = true;
	s->inc++;
	s->pend_has = false;
	s->crash_armed = false;
	st->height = s->nblocks + 1;
	membership_at(s, st->height, &m, &p2);
	build_valset(m, p2, &st->valset);
	/* changes decided in the last blocks that are not active yet */
	for (b = st->height > BFT_VALSET_DELAY ? st->height - BFT_VALSET_DELAY + 1 : 1;
		 b < st->height; b++)
	{
		const sblock *bl = &s->blocks[b - 1];

		if (bl->payload[11])
		{
			memcpy(&m, bl->payload + 12, 8);
			memcpy(&p2, bl->payload + 20, 8);
			st->pending[st->npending].height = b + BFT_VALSET_DELAY;
			build_valset(m, p2, &st->pending[st->npending].set);
			st->npending++;
		}
	}
	st->has_persist = s->has_ps;
	st->persist = s->ps;
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_START;
	ev.now_ms = S.now;
	ev.u.start = st;
	tr("node %d start h=%" PRIu64 " persisted=%d (h=%" PRIu64 " r=%u locked r=%d %02x%02x valid r=%d %02x%02x)",
	   s->id, st->height, s->has_ps, s->ps.height, s->ps.round, s->ps.locked_round,
	   s->ps.locked_value[0], s->ps.locked_value[1], s->ps.valid_round,
	   s->ps.valid_value[0], s->ps.valid_value[1]);
	step(s, &ev);
	free(st);
}

static void
crash_node(snode *s)
{
	if (!s->up)
		return;
	s->up = false;
	s->inc++;
	s->pend_has = false;		/* never flushed: lost */
	s->crash_armed = false;
	S.crashes++;
	tr("node %d CRASH (durable: h=%" PRIu64 ", persisted=%d)", s->id, s->nblocks, s->has_ps);
}

/* Block the caller builds for a height: valid, sometimes a membership change. */
static void
give_block(snode *s, uint64_t h)
{
	uint8_t		p[64];
	uint32_t	len;
	bft_event	ev;
	bool		change = false;
	uint64_t	m = 0,
				p2 = 0;

	if (S.churn && (fk_mix(S.seed ^ h ^ ((uint64_t) s->id << 50)) % 5) == 0)
	{
		int			i;

		change = true;
		m = (UINT64_C(1) << S.n) - 1;
		if (fk_mix(S.seed + h * 3) & 1)
			m |= UINT64_C(1) << S.n;	/* the honest spare joins */
		for (i = 0; i < S.N; i++)
			if (((m >> i) & 1) && !S.nodes[i].byz && (fk_mix(S.seed + h * 7 + (uint64_t) i) & 3) == 0)
				p2 |= UINT64_C(1) << i;
	}
	len = make_payload(p, true, 'P', h, s->id, change, m, p2);
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_BLOCK;
	ev.now_ms = S.now;
	ev.u.block.height = h;
	fk_block_hash(p, len, ev.u.block.value);
	ev.u.block.payload = p;
	ev.u.block.len = len;
	step(s, &ev);
}

/* --------------------------------------------------------------- scenario */

static void
setup(uint64_t seed, int n)
{
	int			i;
	uint32_t	k;

	bool		real = S.real,
				trace = S.trace,
				bench = S.bench;

	memset(&S.seed, 0, offsetof(sim, nodes));
	S.real = real;
	S.trace = trace;
	S.bench = bench;
	S.nheap = 0;
	S.t1_done = false;
	S.h1 = 0;
	S.seed = seed;
	S.rng = seed * UINT64_C(0x2545F4914F6CDD1D) + 1;
	S.n = n;
	S.f = (n - 1) / 3;
	S.churn = !S.bench && rndn(4) == 0;
	/* from the seed alone, so the other draws stay as they were */
	S.durable_ps = !S.bench && fk_mix(seed ^ UINT64_C(0xd0ab1e)) % 3 == 0;
	S.N = n + (S.churn ? 1 : 0);
	S.nagreed = 0;
	S.violated = false;
	S.thash = seed;
	S.why[0] = 0;
	g_gen++;
	g_ds_used = 0;
	memcpy(S.chain, "loopledger-sim", 14);
	if (S.bench)
	{
		S.dmax = S.dmax_post = 10;
		S.loss = S.dup = 0;
		S.gst = 0;
	}
	else
	{
		static const uint32_t dm[] = {5, 30, 100, 300};

		S.dmax = dm[rndn(4)];
		S.dmax_post = S.dmax < 50 ? S.dmax : 50;
		S.loss = rndn(3) == 0 ? 0 : rndf() * 0.3;
		S.dup = rndf() * 0.1;
		S.gst = 2000 + rndn(6000);
	}
	S.t1 = S.gst + SETTLE_MS;
	S.t_end = S.t1 + LIVE_WINDOW_MS;
	for (i = 0; i < MAXN; i++)
	{
		snode	   *s = &S.nodes[i];
		bft_node   *keep = s->core;
		bft_ed25519_key *kk = s->key;
		uint64_t	b;

		for (b = 0; b < s->nblocks; b++)
			free(s->blocks[b].cert);
		free(s->blocks);
		for (k = 0; k < 16; k++)
			blob_unref(s->ring[k]);
		memset(s, 0, sizeof(*s));
		s->core = keep;
		s->id = i;
		s->drift = S.bench ? 1.0 : 0.9 + rndf() * 0.2;
		if (S.real)
		{
			uint8_t		seedk[32] = {0};

			seedk[0] = (uint8_t) i;
			seedk[1] = 0x42;
			if (kk == NULL)
				kk = bft_ed25519_new(seedk);
			s->key = kk;
			bft_ed25519_pubkey(kk, s->pk);
		}
		else
		{
			s->key = kk;
			s->pk[0] = (uint8_t) (i + 1);
			s->pk[1] = 0xbf;
		}
	}
	/* Byzantine validators: at most f of the initial set */
	if (!S.bench && S.f > 0)
	{
		int			nb = (int) rndn((uint32_t) S.f + 1);

		if (rndn(3) == 0)
			nb = S.f;
		for (i = 0; i < nb; i++)
		{
			int			who;

			do
				who = (int) rndn((uint32_t) n);
			while (S.nodes[who].byz);
			S.nodes[who].byz = 1 + (int) rndn(BYZ_NMODES - 1);
		}
	}
	for (i = 0; i < S.N; i++)
		S.part[i] = 0;
	S.parted = false;
}

static void
schedule_faults(void)
{
	sev			e;
	int			i,
				k;

	if (S.bench)
		return;
	/* partitions that heal before GST */
	for (k = 0; k < (int) rndn(3); k++)
	{
		memset(&e, 0, sizeof(e));
		e.t = rndn((uint32_t) S.gst);
		e.kind = EV_PART;
		push(e);
		e.t += 200 + rndn(2000);
		if (e.t > S.gst)
			e.t = S.gst;
		e.kind = EV_HEAL;
		push(e);
	}
	memset(&e, 0, sizeof(e));
	e.t = S.gst;
	e.kind = EV_HEAL;
	push(e);
	/* crash / restart of honest nodes before GST */
	for (i = 0; i < S.N; i++)
	{
		if (S.nodes[i].byz || rndn(3) != 0)
			continue;
		for (k = 0; k < 1 + (int) rndn(3); k++)
		{
			uint64_t	t = rndn((uint32_t) S.gst - 100);

			memset(&e, 0, sizeof(e));
			e.t = t;
			e.kind = EV_CRASH;
			e.node = (uint8_t) i;
			push(e);
			e.t = t + 50 + rndn(1500);
			if (e.t >= S.gst)
				e.t = S.gst - 1;
			e.kind = EV_RESTART;
			push(e);
		}
	}
}

static void
apply_event(const sev *e)
{
	snode	   *s = &S.nodes[e->node];
	bft_event	ev;
	int			i;

	S.now = e->t;
	memset(&ev, 0, sizeof(ev));
	ev.now_ms = S.now;
	switch (e->kind)
	{
		case EV_DELIVER:
			th(S.now ^ ((uint64_t) e->node << 32) ^ e->msg->len);
			if (!s->up)
				break;
			S.deliveries++;
			if (s->byz && s->nring < 1000)
			{
				blob_unref(s->ring[s->nring % 16]);
				s->ring[s->nring % 16] = e->msg;
				e->msg->ref++;
				s->nring++;
			}
			if (s->byz == BYZ_TAMPER || s->byz == BYZ_MIXED)
				byz_tamper(s, e->from, e->msg);
			ev.kind = BFT_EV_MSG;
			ev.u.msg.peer = e->from;
			ev.u.msg.data = e->msg->data;
			ev.u.msg.len = e->msg->len;
			step(s, &ev);
			break;
		case EV_TIMER:
			if (!s->up || e->inc != s->inc)
				break;
			th(S.now ^ e->timer.kind ^ ((uint64_t) e->node << 32));
			tr("node %d timeout kind=%d h=%" PRIu64 " r=%u (at h=%" PRIu64 " r=%u, valset n=%u rej=%" PRIu64 ")",
			   s->id, e->timer.kind, e->timer.height, e->timer.round, bft_height(s->core),
			   bft_round(s->core), bft_current_valset(s->core)->n,
			   bft_get_stats(s->core)->rejected);
			ev.kind = BFT_EV_TIMEOUT;
			ev.u.timeout.kind = e->timer.kind;
			ev.u.timeout.height = e->timer.height;
			ev.u.timeout.round = e->timer.round;
			step(s, &ev);
			break;
		case EV_BLOCK:
			if (!s->up || e->inc != s->inc)
				break;
			give_block(s, e->timer.height);
			break;
		case EV_CRASH:
			if (!s->up)
				break;
			/*
			 * strike during the next step's output processing, or soon
			 * anyway; one waiting for a commit (durable records) is
			 * forced by the restart at the latest
			 */
			s->crash_armed = true;
			s->crash_stage = (int) rndn(4);
			if (!S.durable_ps || s->crash_stage != 0)
			{
				sev			h;

				memset(&h, 0, sizeof(h));
				h.t = S.now + 30;
				h.kind = EV_HARDCRASH;
				h.node = e->node;
				h.inc = s->inc;
				push(h);
			}
			break;
		case EV_HARDCRASH:
			if (s->up && e->inc == s->inc)
				crash_node(s);
			break;
		case EV_RESTART:
			if (s->up && s->crash_armed)
				crash_node(s);	/* the armed crash had no step to hit yet */
			if (!s->up)
				start_node(s);
			break;
		case EV_PART:
			S.parted = true;
			for (i = 0; i < S.N; i++)
				S.part[i] = (int) rndn(2);
			tr("PARTITION");
			break;
		case EV_HEAL:
			S.parted = false;
			tr("HEAL");
			break;
	}
}

/* Runs one seed; returns true if a violation was found. */
static bool
run_seed(uint64_t seed, int n, uint64_t bench_heights)
{
	int			i;

	setup(seed, n);
	schedule_faults();
	if (S.trace)
	{
		printf("seed %" PRIu64 " n=%d N=%d f=%d gst=%" PRIu64 " dmax=%u loss=%.2f dup=%.2f churn=%d durable=%d\n",
			   seed, n, S.N, S.f, S.gst, S.dmax, S.loss, S.dup, S.churn, S.durable_ps);
		for (i = 0; i < S.N; i++)
			printf("  node %d: %s drift=%.3f\n", i, byz_names[S.nodes[i].byz], S.nodes[i].drift);
	}
	for (i = 0; i < S.N; i++)
		start_node(&S.nodes[i]);
	while (S.nheap > 0 && !S.violated)
	{
		sev			e = pop();

		if (bench_heights)
		{
			if (S.nodes[0].nblocks >= bench_heights)
			{
				blob_unref(e.msg);
				break;
			}
		}
		else if (e.t > S.t_end)
		{
			blob_unref(e.msg);
			break;
		}
		if (!bench_heights && !S.t1_done && e.t >= S.t1)
		{
			S.t1_done = true;
			S.h1 = 0;
			for (i = 0; i < S.N; i++)
				if (!S.nodes[i].byz && S.nodes[i].nblocks > S.h1)
					S.h1 = S.nodes[i].nblocks;
			for (i = 0; i < S.N; i++)
				S.nodes[i].h_at_t1 = S.nodes[i].nblocks;
		}
		apply_event(&e);
		blob_unref(e.msg);
		if (S.nheap > 2000000)
			violation("message storm: %zu events pending at t=%" PRIu64, S.nheap, S.now);
		/* stop early once liveness is shown */
		if (!bench_heights && S.t1_done)
		{
			bool		all = true;

			for (i = 0; i < S.N && all; i++)
				if (!S.nodes[i].byz && S.nodes[i].nblocks < S.h1 + LIVE_HEIGHTS + 1)
					all = false;
			if (all)
				break;
		}
	}
	while (S.nheap > 0)
	{
		sev			e = pop();

		blob_unref(e.msg);
	}
	if (!bench_heights && !S.violated)
	{
		uint32_t	bound = (uint32_t) S.f + 5;

		for (i = 0; i < S.N; i++)
		{
			snode	   *s = &S.nodes[i];

			if (s->byz)
				continue;
			if (!S.t1_done || s->nblocks < S.h1 + LIVE_HEIGHTS)
			{
				violation("liveness: honest node %d at height %" PRIu64 " (needed %" PRIu64
						  ") %d ms after GST", i, s->nblocks + 1, S.h1 + LIVE_HEIGHTS + 1,
						  (int) (S.now - S.gst));
				break;
			}
			if (s->max_round_after > bound)
			{
				violation("liveness: node %d needed round %u > bound %u after GST",
						  i, s->max_round_after, bound);
				break;
			}
		}
	}
	if (S.trace)
		printf("trace-hash %016" PRIx64 " result %s%s\n", S.thash,
			   S.violated ? "VIOLATION: " : "ok", S.why);
	return S.violated;
}

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	int			nlist[8] = {4};
	int			nn = 1;
	uint64_t	first = 1,
				count = 100;
	bool		expect_violation = false;
	uint64_t	bench = 0;
	uint64_t	fails = 0,
				done = 0,
				total_heights = 0,
				found_seed = 0;
	int			found_n = 0;
	int			i;
	double		t0;

	for (i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
		{
			nlist[0] = atoi(argv[++i]);
			nn = 1;
		}
		else if (strcmp(argv[i], "--nlist") == 0 && i + 1 < argc)
		{
			char	   *p = argv[++i];

			nn = 0;
			while (*p && nn < 8)
			{
				nlist[nn++] = (int) strtol(p, &p, 10);
				if (*p == ',')
					p++;
			}
		}
		else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
		{
			char	   *p = argv[++i];

			first = strtoull(p, &p, 10);
			count = (*p == ':') ? strtoull(p + 1, NULL, 10) : 1;
		}
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
		{
			first = strtoull(argv[++i], NULL, 10);
			count = 1;
		}
		else if (strcmp(argv[i], "--trace") == 0)
			S.trace = true;
		else if (strcmp(argv[i], "--expect-violation") == 0)
			expect_violation = true;
		else if (strcmp(argv[i], "--real") == 0)
			S.real = true;
		else if (strcmp(argv[i], "--quiet") == 0)
			g_quiet = true;
		else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc)
			bench = strtoull(argv[++i], NULL, 10);
		else
		{
			fprintf(stderr, "usage: %s [--n N | --nlist 1,4,7,10] [--seeds FIRST:COUNT | --seed S] "
					"[--trace] [--expect-violation] [--real] [--bench HEIGHTS] [--quiet]\n", argv[0]);
			return 2;
		}
	}
	g_ds = calloc(g_ds_cap, sizeof(dsent));
	S.out = malloc(sizeof(bft_output));

	if (bench)
	{
		uint64_t	signs = 0,
					verifies = 0;
		double		cpu;

		S.bench = true;
		t0 = cpu_now();
		run_seed(first, nlist[0], bench);
		cpu = cpu_now() - t0;
		for (i = 0; i < S.N; i++)
		{
			signs += bft_get_stats(S.nodes[i].core)->signs;
			verifies += bft_get_stats(S.nodes[i].core)->verifies;
		}
		printf("bench n=%d crypto=%s heights=%" PRIu64 " cpu_s=%.4f heights_per_s=%.1f "
			   "msgs_per_block=%.1f bytes_per_block=%.1f signs_per_height=%.2f "
			   "verifies_per_height=%.2f violated=%d\n",
			   nlist[0], S.real ? "ed25519" : "fake", S.nodes[0].nblocks, cpu,
			   S.nodes[0].nblocks / cpu, (double) S.msgs / S.nodes[0].nblocks,
			   (double) S.bytes / S.nodes[0].nblocks,
			   (double) signs / S.nodes[0].nblocks, (double) verifies / S.nodes[0].nblocks,
			   S.violated);
		return S.violated ? 1 : 0;
	}

	t0 = cpu_now();
	for (done = 0; done < count; done++)
	{
		uint64_t	seed = first + done;
		int			n = nlist[seed % (uint64_t) nn];

		if (run_seed(seed, n, 0))
		{
			fails++;
			if (!found_seed)
			{
				found_seed = seed;
				found_n = n;
			}
			if (!expect_violation || !g_quiet)
				printf("FAIL seed %" PRIu64 " n=%d: %s\n  rerun: %s --seed %" PRIu64 " --n %d --trace\n",
					   seed, n, S.why, argv[0], seed, n);
			if (expect_violation)
				break;
		}
		total_heights += S.nagreed;
	}
	if (expect_violation)
	{
		printf("broken-variant: %s after %" PRIu64 " seeds (first violating seed %" PRIu64
			   " n=%d: %s)\n", fails ? "CAUGHT" : "NOT CAUGHT", done + (fails ? 1 : 0),
			   found_seed, found_n, fails ? S.why : "-");
		return fails ? 0 : 1;
	}
	printf("sim: %" PRIu64 " seeds, %" PRIu64 " failed, %" PRIu64 " heights agreed, %" PRIu64
		   " msgs, %" PRIu64 " crashes, %" PRIu64 " evidence, cpu %.2fs\n",
		   done, fails, total_heights, S.msgs, S.crashes, S.evidence, cpu_now() - t0);
	return fails ? 1 : 0;
}
