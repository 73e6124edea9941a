/*
 * bft.c
 *		The consensus state machine: Algorithm 1 of "The latest gossip on
 *		BFT consensus", driven by bft_step().
 *
 * Layout of the state: votes of the current height are kept in a window of
 * BFT_SLOTS consecutive rounds [round - 2, round + 5] indexed by
 * round % BFT_SLOTS, so no round in the window can collide with another and
 * resetting a height costs a few flag writes.  Votes for rounds below the
 * window are no longer needed (re-proposals carry their own POL, late
 * commits are recovered by catch-up); votes above it only count towards the
 * f+1 round skip.  Messages for height + 1 are buffered (one proposal, one
 * vote per sender and type) because peers that decide first start the next
 * height before us; they are checked before they take a place.
 */
#include <string.h>

#include "bft.h"

#define BFT_SLOTS 8
#define BFT_WIN_BELOW 2
#define BFT_WIN_ABOVE (BFT_SLOTS - 1 - BFT_WIN_BELOW)
#define BFT_SERVED 16
#define NO_VAL 0xFF

typedef struct bft_tally
{
	uint64_t	mask;			/* validators whose (first) vote is here */
	uint64_t	power;
	uint64_t	nil_power;
	uint64_t	evidence_mask;	/* conflicts already reported */
	uint32_t	nvals;
	uint8_t		val_of[BFT_MAX_VALIDATORS];	/* index in vals, NO_VAL = nil */
	uint8_t		vals[BFT_MAX_VALIDATORS][BFT_HASH_LEN];
	uint64_t	val_power[BFT_MAX_VALIDATORS];
	uint8_t		sigs[BFT_MAX_VALIDATORS][BFT_SIG_LEN];
	/* votes held back unchecked, see on_vote */
	uint64_t	parked_mask;
	uint64_t	parked_nil;
	uint8_t		park_val[BFT_MAX_VALIDATORS][BFT_HASH_LEN];
	uint8_t		park_sig[BFT_MAX_VALIDATORS][BFT_SIG_LEN];
} bft_tally;

typedef struct bft_slot
{
	bool		used;
	uint32_t	round;
	bft_tally	prevote;
	bft_tally	precommit;
	bool		has_proposal;
	bool		prop_valid;		/* validate callback accepted it */
	bool		pol_ok;			/* a POL proved its valid_round */
	int32_t		prop_vr;
	uint8_t		prop_value[BFT_HASH_LEN];
	uint8_t		prop_sig[BFT_SIG_LEN];
	uint32_t	prop_len;
	uint8_t		prop_payload[BFT_MAX_PAYLOAD];
	bool		rule36_done;
	bool		timeout_prevote_set;
	bool		timeout_precommit_set;
} bft_slot;

typedef struct bft_served
{
	uint32_t	peer;
	uint64_t	height;
	uint64_t	at_ms;
} bft_served;

#define BFT_REQ_SLOTS 8

typedef struct bft_request
{
	bool		used;
	uint32_t	peer;			/* a peer id, or BFT_TO_ALL */
	uint64_t	height;
	uint64_t	at_ms;
} bft_request;

struct bft_node
{
	bft_config	cfg;
	bool		started;
	uint64_t	height;
	uint32_t	round;
	uint8_t		step;
	int			self;			/* index in vs, -1 when not a validator */
	bft_valset	vs;
	uint64_t	quorum;
	uint64_t	third;
	uint32_t	npending;
	bft_pending_valset pending[BFT_VALSET_DELAY];

	int32_t		locked_round;
	uint8_t		locked_value[BFT_HASH_LEN];
	int32_t		valid_round;
	uint8_t		valid_value[BFT_HASH_LEN];
	bool		valid_has_payload;
	uint32_t	valid_len;
	uint8_t		valid_payload[BFT_MAX_PAYLOAD];
	uint16_t	valid_npol;
	bft_signer	valid_pol[BFT_MAX_VALIDATORS];

	/* our own proposal of the current round, for rebroadcast */
	bool		own_prop;
	uint32_t	own_prop_round;
	int32_t		own_prop_vr;
	uint16_t	own_npol;
	bft_signer	own_pol[BFT_MAX_VALIDATORS];

	/* the block the caller built for this height */
	bool		have_block;
	bool		block_requested;
	uint8_t		block_value[BFT_HASH_LEN];
	uint32_t	block_len;
	uint8_t		block_payload[BFT_MAX_PAYLOAD];

	bft_slot	slots[BFT_SLOTS];
	/* highest round of a verified vote per validator: f+1 round skip */
	uint64_t	seen_mask;
	uint32_t	seen_round[BFT_MAX_VALIDATORS];
	bool		seen_dirty;

	/* height + 1 buffer, all checked against that height's validator set */
	uint64_t	fut_mask[2];
	bft_vote	fut_votes[2][BFT_MAX_VALIDATORS];
	bool		fut_has_prop;
	bft_proposal fut_prop;
	uint8_t		fut_payload[BFT_MAX_PAYLOAD];

	bool		has_ps;
	bft_persist ps;				/* last record given to persist() */

	bool		committed_now;	/* one commit per step */
	/*
	 * Last catch-up requests, one per target (a peer, or BFT_TO_ALL): a
	 * liar claiming heights ahead over and over must not use up the
	 * requests meant for the others.
	 */
	bft_request	req[BFT_REQ_SLOTS];
	uint32_t	req_next;
	bft_served	served[BFT_SERVED];
	uint32_t	served_next;
	bft_served	failed[BFT_SERVED]; /* block answers whose certificate failed */
	uint32_t	failed_next;

	uint32_t	commit_len;
	uint8_t		commit_payload[BFT_MAX_PAYLOAD];

	bft_output *out;
	uint64_t	now;
	bft_stats	stats;
	bft_msg		in;				/* decode scratch (large) */
	bft_msg		tmp;			/* encode scratch */
};

static void start_round(bft_node *n, uint32_t round);

size_t
bft_node_size(void)
{
	return sizeof(bft_node);
}

/* Zeroes the node so that all state is defined before BFT_EV_START. */
bft_node *
bft_init(void *mem, const bft_config *cfg)
{
	bft_node   *n = (bft_node *) mem;

	memset(n, 0, sizeof(*n));
	n->cfg = *cfg;
	n->self = -1;
	n->locked_round = -1;
	n->valid_round = -1;
	return n;
}

uint64_t
bft_height(const bft_node *n)
{
	return n->height;
}

uint32_t
bft_round(const bft_node *n)
{
	return n->round;
}

int
bft_step_of(const bft_node *n)
{
	return (int) n->step;
}

const bft_valset *
bft_current_valset(const bft_node *n)
{
	return &n->vs;
}

const bft_stats *
bft_get_stats(const bft_node *n)
{
	return &n->stats;
}

/* Rotation by height and round: every node computes the same proposer. */
uint32_t
bft_proposer(const bft_valset *vs, uint64_t height, uint32_t round)
{
	return (uint32_t) ((height + round) % vs->n);
}

static uint32_t
timeout_ms(const bft_node *n, uint32_t base, uint32_t round)
{
	uint64_t	t = (uint64_t) base + (uint64_t) n->cfg.timeout_delta_ms * round;

	return t > UINT32_MAX ? UINT32_MAX : (uint32_t) t;
}

/* ---------------------------------------------------------------- output */

/* Appends an encoded message; counts a drop instead of failing. */
static void
emit(bft_node *n, uint32_t to, const bft_msg *m)
{
	bft_output *o = n->out;
	size_t		len;

	if (o->nmsgs >= BFT_MAX_OUT_MSGS ||
		bft_encode(m, o->buf + o->buf_used, BFT_OUT_BUF - o->buf_used, &len) != BFT_OK)
	{
		o->dropped++;
		return;
	}
	o->msgs[o->nmsgs].to = to;
	o->msgs[o->nmsgs].off = o->buf_used;
	o->msgs[o->nmsgs].len = (uint32_t) len;
	o->nmsgs++;
	o->buf_used += (uint32_t) len;
}

static void
emit_timer(bft_node *n, uint8_t kind, uint32_t delay)
{
	bft_output *o = n->out;

	if (o->ntimers >= BFT_MAX_OUT_TIMERS)
	{
		o->dropped++;
		return;
	}
	o->timers[o->ntimers].kind = kind;
	o->timers[o->ntimers].height = n->height;
	o->timers[o->ntimers].round = n->round;
	o->timers[o->ntimers].delay_ms = delay;
	o->ntimers++;
}

/* ----------------------------------------------------------------- tallies */

static void
tally_reset(bft_tally *t)
{
	t->mask = 0;
	t->power = 0;
	t->nil_power = 0;
	t->evidence_mask = 0;
	t->nvals = 0;
	t->parked_mask = 0;
	t->parked_nil = 0;
}

static int
tally_find(const bft_tally *t, const uint8_t value[BFT_HASH_LEN])
{
	uint32_t	i;

	for (i = 0; i < t->nvals; i++)
		if (memcmp(t->vals[i], value, BFT_HASH_LEN) == 0)
			return (int) i;
	return -1;
}

static uint64_t
tally_power_for(const bft_tally *t, const uint8_t value[BFT_HASH_LEN])
{
	int			i = tally_find(t, value);

	return i < 0 ? 0 : t->val_power[i];
}

/* Signers for value, sorted by index: a POL or a commit certificate. */
static uint16_t
tally_signers(const bft_tally *t, const uint8_t value[BFT_HASH_LEN], bft_signer *out)
{
	int			vi = tally_find(t, value);
	uint16_t	k = 0;
	uint32_t	i;

	if (vi < 0)
		return 0;
	for (i = 0; i < BFT_MAX_VALIDATORS; i++)
		if ((t->mask >> i) & 1 && t->val_of[i] == (uint8_t) vi)
		{
			out[k].validator = (uint16_t) i;
			memcpy(out[k].sig, t->sigs[i], BFT_SIG_LEN);
			k++;
		}
	return k;
}

static void
slot_reset(bft_slot *s, uint32_t round)
{
	s->used = true;
	s->round = round;
	tally_reset(&s->prevote);
	tally_reset(&s->precommit);
	s->has_proposal = false;
	s->prop_valid = false;
	s->pol_ok = false;
	s->rule36_done = false;
	s->timeout_prevote_set = false;
	s->timeout_precommit_set = false;
}

static bool
in_window(const bft_node *n, uint32_t round)
{
	return (uint64_t) round + BFT_WIN_BELOW >= n->round &&
		(uint64_t) round <= (uint64_t) n->round + BFT_WIN_ABOVE;
}

/* Slot for a round in the window (claimed if stale), else NULL. */
static bft_slot *
slot_for(bft_node *n, uint32_t round)
{
	bft_slot   *s;

	if (!in_window(n, round))
		return NULL;
	s = &n->slots[round % BFT_SLOTS];
	if (!s->used || s->round != round)
		slot_reset(s, round);
	return s;
}

/* Slot only if it already holds that round and is in the window. */
static bft_slot *
slot_get(bft_node *n, uint32_t round)
{
	bft_slot   *s;

	if (!in_window(n, round))
		return NULL;
	s = &n->slots[round % BFT_SLOTS];
	return (s->used && s->round == round) ? s : NULL;
}

/* -------------------------------------------------------------- signing */

static int
cmp_key(uint32_t r1, uint8_t t1, uint32_t r2, uint8_t t2)
{
	if (r1 != r2)
		return r1 < r2 ? -1 : 1;
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	return 0;
}

/*
 * Signs (type, height, round, value) only if that cannot double-sign: never
 * below the last persisted (height, round, step), and at the same key only
 * the identical message (its stored signature is reused).  The record is
 * handed to persist() before the signature can reach any output.
 */
static bool
guarded_sign(bft_node *n, uint8_t type, uint32_t round, int32_t vr,
			 bool is_nil, const uint8_t value[BFT_HASH_LEN], uint8_t sig[BFT_SIG_LEN])
{
	uint8_t		sb[BFT_SIGN_BYTES_LEN];
	bft_persist rec;

	if (n->self < 0)
		return false;
	if (n->has_ps && n->ps.height > n->height)
	{
		n->stats.sign_refused++;
		return false;
	}
	if (n->has_ps && n->ps.height == n->height && n->ps.last_type != 0)
	{
		int			c = cmp_key(round, type, n->ps.last_round, n->ps.last_type);

		if (c < 0)
		{
			n->stats.sign_refused++;
			return false;
		}
		if (c == 0)
		{
			if (n->ps.last_nil == is_nil && n->ps.last_valid_round == vr &&
				(is_nil || memcmp(n->ps.last_value, value, BFT_HASH_LEN) == 0))
			{
				memcpy(sig, n->ps.last_sig, BFT_SIG_LEN);
				return true;
			}
			n->stats.sign_refused++;
			return false;
		}
	}
	bft_sign_bytes(n->cfg.chain_id, type, n->height, round, vr, is_nil, value, sb);
	if (n->cfg.cb.sign(n->cfg.cb.ctx, sb, sizeof(sb), sig) != 0)
		return false;
	n->stats.signs++;
	memset(&rec, 0, sizeof(rec));
	rec.height = n->height;
	rec.round = round;
	rec.step = type;
	rec.locked_round = n->locked_round;
	memcpy(rec.locked_value, n->locked_value, BFT_HASH_LEN);
	rec.last_type = type;
	rec.last_round = round;
	rec.last_nil = is_nil;
	rec.last_valid_round = vr;
	if (!is_nil)
		memcpy(rec.last_value, value, BFT_HASH_LEN);
	memcpy(rec.last_sig, sig, BFT_SIG_LEN);
	rec.valid_round = n->valid_round;
	if (n->valid_round >= 0 && n->valid_has_payload)
	{
		memcpy(rec.valid_value, n->valid_value, BFT_HASH_LEN);
		rec.valid_len = n->valid_len;
		memcpy(rec.valid_payload, n->valid_payload, n->valid_len);
		rec.valid_npol = n->valid_npol;
		memcpy(rec.valid_pol, n->valid_pol, sizeof(bft_signer) * n->valid_npol);
	}
	else
		rec.valid_round = -1;
	if (n->has_ps && n->ps.height == n->height)
	{
		memcpy(rec.has_vote, n->ps.has_vote, sizeof(rec.has_vote));
		memcpy(rec.vote_round, n->ps.vote_round, sizeof(rec.vote_round));
		memcpy(rec.vote_nil, n->ps.vote_nil, sizeof(rec.vote_nil));
		memcpy(rec.vote_value, n->ps.vote_value, sizeof(rec.vote_value));
		memcpy(rec.vote_sig, n->ps.vote_sig, sizeof(rec.vote_sig));
	}
	if (type == BFT_MSG_PREVOTE || type == BFT_MSG_PRECOMMIT)
	{
		int			k = type == BFT_MSG_PREVOTE ? 0 : 1;

		rec.has_vote[k] = true;
		rec.vote_round[k] = round;
		rec.vote_nil[k] = is_nil;
		memcpy(rec.vote_value[k], rec.last_value, BFT_HASH_LEN);
		memcpy(rec.vote_sig[k], sig, BFT_SIG_LEN);
	}
	if (n->cfg.cb.persist(n->cfg.cb.ctx, &rec) != 0)
	{
		n->stats.sign_refused++;
		return false;
	}
	n->ps = rec;
	n->has_ps = true;
	return true;
}

/* Whether validator (an index into vs) signed the message. */
static bool
verify_sig_by(bft_node *n, const bft_valset *vs, uint16_t validator, uint8_t type,
			  uint64_t height, uint32_t round, int32_t vr, bool is_nil,
			  const uint8_t value[BFT_HASH_LEN], const uint8_t sig[BFT_SIG_LEN])
{
	uint8_t		sb[BFT_SIGN_BYTES_LEN];

	bft_sign_bytes(n->cfg.chain_id, type, height, round, vr, is_nil, value, sb);
	n->stats.verifies++;
	return n->cfg.cb.verify(n->cfg.cb.ctx, vs->v[validator].pubkey, sb,
							sizeof(sb), sig);
}

static bool
verify_sig(bft_node *n, uint16_t validator, uint8_t type, uint64_t height,
		   uint32_t round, int32_t vr, bool is_nil,
		   const uint8_t value[BFT_HASH_LEN], const uint8_t sig[BFT_SIG_LEN])
{
	return verify_sig_by(n, &n->vs, validator, type, height, round, vr, is_nil,
						 value, sig);
}

/* Whether payload is the one behind value (see value_of in bft.h). */
static bool
payload_matches(bft_node *n, const uint8_t value[BFT_HASH_LEN],
				const uint8_t *payload, uint32_t len)
{
	uint8_t		v[BFT_HASH_LEN];

	return n->cfg.cb.value_of(n->cfg.cb.ctx, payload, len, v) &&
		memcmp(v, value, BFT_HASH_LEN) == 0;
}

/*
 * The validator set of height + 1.  It is already known: a change takes
 * effect BFT_VALSET_DELAY (2) heights after the block that decides it.
 */
static const bft_valset *
next_valset(const bft_node *n)
{
	uint32_t	i;

	for (i = 0; i < n->npending; i++)
		if (n->pending[i].height == n->height + 1)
			return &n->pending[i].set;
	return &n->vs;
}

/* ------------------------------------------------------------ vote intake */

/*
 * Output a conflict between v and the vote its validator has in t, once:
 * the tally remembers it only if it fit in this step's output, so that
 * one dropped for room is reported when the validator's vote comes again.
 */
static void
report_evidence(bft_node *n, bft_tally *t, const bft_vote *v)
{
	bft_output *o = n->out;
	bft_evidence *e;
	uint8_t		vi = t->val_of[v->validator];

	if (o->nevidence >= BFT_MAX_OUT_EVIDENCE)
	{
		o->dropped++;
		return;
	}
	t->evidence_mask |= UINT64_C(1) << v->validator;
	e = &o->evidence[o->nevidence++];
	e->a = *v;
	e->a.is_nil = (vi == NO_VAL);
	if (vi == NO_VAL)
		memset(e->a.value, 0, BFT_HASH_LEN);
	else
		memcpy(e->a.value, t->vals[vi], BFT_HASH_LEN);
	memcpy(e->a.sig, t->sigs[v->validator], BFT_SIG_LEN);
	e->b = *v;
}

/* Remembers how far ahead each validator has verifiably gone. */
static void
note_round(bft_node *n, uint16_t validator, uint32_t round)
{
	uint64_t	bit = UINT64_C(1) << validator;

	if (!(n->seen_mask & bit) || n->seen_round[validator] < round)
	{
		n->seen_mask |= bit;
		n->seen_round[validator] = round;
		if (round > n->round)
			n->seen_dirty = true;
	}
}

/*
 * Highest round R such that validators seen at rounds >= R hold more than
 * 1/3 of the power.  This generalises line 55 (f+1 messages of one higher
 * round): such a set contains an honest validator that reached R, and
 * moving to a higher round is always safe.
 */
static uint32_t
skip_target(bft_node *n)
{
	uint32_t	best = n->round;
	uint32_t	i,
				j;

	for (i = 0; i < n->vs.n; i++)
	{
		uint64_t	pw = 0;
		uint32_t	r;

		if (!((n->seen_mask >> i) & 1) || n->seen_round[i] <= best)
			continue;
		r = n->seen_round[i];
		for (j = 0; j < n->vs.n; j++)
			if (((n->seen_mask >> j) & 1) && n->seen_round[j] >= r)
				pw += n->vs.v[j].power;
		if (pw >= n->third)
			best = r;
	}
	return best;
}

/*
 * Adds a vote whose signature is known good (or is our own) to its tally;
 * the first vote of a validator counts, a conflicting one is evidence.
 */
static void
tally_add(bft_node *n, bft_slot *s, const bft_vote *v)
{
	bft_tally  *t = v->type == BFT_MSG_PREVOTE ? &s->prevote : &s->precommit;
	uint64_t	bit = UINT64_C(1) << v->validator;
	uint64_t	pw = n->vs.v[v->validator].power;
	int			vi;

	if (t->mask & bit)
		return;
	t->mask |= bit;
	t->power += pw;
	memcpy(t->sigs[v->validator], v->sig, BFT_SIG_LEN);
	if (v->is_nil)
	{
		t->val_of[v->validator] = NO_VAL;
		t->nil_power += pw;
	}
	else
	{
		vi = tally_find(t, v->value);
		if (vi < 0)
		{
			vi = (int) t->nvals++;
			memcpy(t->vals[vi], v->value, BFT_HASH_LEN);
			t->val_power[vi] = 0;
		}
		t->val_of[v->validator] = (uint8_t) vi;
		t->val_power[vi] += pw;
	}
	note_round(n, v->validator, v->round);
}

static bool
same_vote(const bft_tally *t, const bft_vote *v)
{
	uint8_t		vi = t->val_of[v->validator];

	if (v->is_nil)
		return vi == NO_VAL;
	return vi != NO_VAL && memcmp(t->vals[vi], v->value, BFT_HASH_LEN) == 0;
}

/* The request slot of target peer, taken over from the oldest if it has none. */
static bft_request *
request_slot(bft_node *n, uint32_t peer)
{
	uint32_t	i;
	bft_request *r;

	for (i = 0; i < BFT_REQ_SLOTS; i++)
		if (n->req[i].used && n->req[i].peer == peer)
			return &n->req[i];
	r = &n->req[n->req_next];
	n->req_next = (n->req_next + 1) % BFT_REQ_SLOTS;
	memset(r, 0, sizeof(*r));
	r->peer = peer;
	return r;
}

/* Forget the limit for peer: it answered with a block and may hold more. */
static void
request_again(bft_node *n, uint32_t peer)
{
	request_slot(n, peer)->used = false;
}

static void
request_block(bft_node *n, uint32_t peer)
{
	bft_msg    *m = &n->tmp;
	bft_request *r = request_slot(n, peer);

	/* at most one request per target per height per quarter gossip period */
	if (r->used && r->height == n->height &&
		n->now < r->at_ms + n->cfg.gossip_ms / 4 + 1)
		return;
	r->used = true;
	r->height = n->height;
	r->at_ms = n->now;
	m->type = BFT_MSG_BLOCK_REQ;
	m->u.req.height = n->height;
	emit(n, peer, m);
}

/* Power (by the current set) of validators with a buffered next-height precommit. */
static uint64_t
future_precommit_power(const bft_node *n)
{
	uint64_t	pw = 0;
	uint32_t	i;

	for (i = 0; i < n->vs.n; i++)
		if ((n->fut_mask[1] >> i) & 1)
			pw += n->vs.v[i].power;
	return pw;
}

/*
 * Keeps a validator's highest-round vote of each type for height + 1.  Its
 * signature is checked first: anyone can send a vote under any index, and
 * an unchecked forgery with round UINT32_MAX would keep that validator's
 * genuine votes out for good.  Checked here, it is not checked again when
 * replayed.
 */
static void
buffer_future_vote(bft_node *n, const bft_vote *v)
{
	const bft_valset *vs = next_valset(n);
	int			t = v->type == BFT_MSG_PREVOTE ? 0 : 1;
	uint64_t	bit;

	if (v->validator >= vs->n)
	{
		n->stats.rejected++;
		return;
	}
	bit = UINT64_C(1) << v->validator;
	if ((n->fut_mask[t] & bit) && n->fut_votes[t][v->validator].round >= v->round)
		return;
	if (!verify_sig_by(n, vs, v->validator, v->type, v->height, v->round, -1,
					   v->is_nil, v->value, v->sig))
	{
		n->stats.rejected++;
		return;
	}
	n->fut_mask[t] |= bit;
	n->fut_votes[t][v->validator] = *v;
}

/*
 * A tally holding a quorum for one value (or nil) is settled: a further
 * vote in it can change no rule's outcome (line 34 and 47 timers, a polka,
 * a decision and its certificate are all there; a conflicting quorum would
 * need more than f liars), so its signature - checking one is the costliest
 * thing a node does per height, and with n = 4 one prevote and one
 * precommit in three arrive after the quorum - is not checked.  The vote is
 * parked instead, and checked only if its validator later sends a
 * different one, so equivocation is still caught.  Only for rounds we
 * reached: a vote of a higher round may be what makes us join it.
 */
static bool
settled(const bft_node *n, const bft_tally *t)
{
	uint32_t	k;

	if (t->nil_power >= n->quorum)
		return true;
	for (k = 0; k < t->nvals; k++)
		if (t->val_power[k] >= n->quorum)
			return true;
	return false;
}

static void
park(bft_tally *t, const bft_vote *v)
{
	uint64_t	bit = UINT64_C(1) << v->validator;

	t->parked_mask |= bit;
	if (v->is_nil)
		t->parked_nil |= bit;
	else
		t->parked_nil &= ~bit;
	memcpy(t->park_val[v->validator], v->value, BFT_HASH_LEN);
	memcpy(t->park_sig[v->validator], v->sig, BFT_SIG_LEN);
}

static bool
same_parked(const bft_tally *t, const bft_vote *v)
{
	bool		nil = (t->parked_nil >> v->validator) & 1;

	/*
	 * The signature too: anyone may send a vote under any validator's
	 * index, and a forged copy with the right value must not hide the
	 * genuine vote (Ed25519 is deterministic, so honest resends match).
	 */
	if (memcmp(t->park_sig[v->validator], v->sig, BFT_SIG_LEN) != 0)
		return false;
	if (v->is_nil || nil)
		return v->is_nil && nil;
	return memcmp(t->park_val[v->validator], v->value, BFT_HASH_LEN) == 0;
}

/*
 * The parked vote of v's validator, checked now; tallied if good.  If the
 * validator's slot was filled meanwhile (a POL, our own vote), a good
 * parked vote that differs from it is equivocation like any other.
 */
static void
take_parked(bft_node *n, bft_slot *s, bft_tally *t, const bft_vote *v)
{
	bft_vote	p = *v;
	uint64_t	bit = UINT64_C(1) << v->validator;

	t->parked_mask &= ~bit;
	p.is_nil = (t->parked_nil >> v->validator) & 1;
	memcpy(p.value, t->park_val[v->validator], BFT_HASH_LEN);
	memcpy(p.sig, t->park_sig[v->validator], BFT_SIG_LEN);
	if (!verify_sig(n, p.validator, p.type, p.height, p.round, -1,
					p.is_nil, p.value, p.sig))
	{
		n->stats.rejected++;
		return;
	}
	if (!(t->mask & bit))
		tally_add(n, s, &p);
	else if (!same_vote(t, &p) && !(t->evidence_mask & bit))
		report_evidence(n, t, &p);
}

/*
 * Verifies (unless checked: a replayed vote of the height + 1 buffer) and
 * records a vote of the current height.
 */
static void
on_vote(bft_node *n, const bft_vote *v, uint32_t peer, bool checked)
{
	bft_slot   *s;
	bft_tally  *t;
	uint64_t	bit;

	if (v->height != n->height)
	{
		if (v->height == n->height + 1)
		{
			buffer_future_vote(n, v);
			/*
			 * Precommits of the next height from more than 1/3 of the
			 * power: an honest node has decided our height long enough
			 * ago to be voting past its polka, so we missed the
			 * decision.  Ask the sender.
			 */
			if (v->type == BFT_MSG_PRECOMMIT && peer != BFT_NO_PEER &&
				future_precommit_power(n) >= n->third)
				request_block(n, peer);
		}
		else if (v->height > n->height + 1 && peer != BFT_NO_PEER)
			request_block(n, peer);
		return;
	}
	if (v->validator >= n->vs.n)
	{
		n->stats.rejected++;
		return;
	}
	s = slot_for(n, v->round);
	if (s == NULL)
	{
		if (v->round > n->round &&
			(checked || verify_sig(n, v->validator, v->type, v->height, v->round, -1,
								   v->is_nil, v->value, v->sig)))
			note_round(n, v->validator, v->round);
		return;
	}
	t = v->type == BFT_MSG_PREVOTE ? &s->prevote : &s->precommit;
	bit = UINT64_C(1) << v->validator;
	if (t->parked_mask & bit)
	{
		/* a resend is news only if the slot was filled meanwhile */
		if (same_parked(t, v) && !(t->mask & bit))
			return;
		take_parked(n, s, t, v);
	}
	if (t->mask & bit)
	{
		if (same_vote(t, v))
			return;				/* duplicate: no need to verify again */
		if ((t->evidence_mask & bit) == 0 &&
			(checked || verify_sig(n, v->validator, v->type, v->height, v->round, -1,
								   v->is_nil, v->value, v->sig)))
			report_evidence(n, t, v);
		return;
	}
	if (!checked && v->round <= n->round && settled(n, t))
	{
		park(t, v);
		n->stats.parked++;
		return;
	}
	if (!checked && !verify_sig(n, v->validator, v->type, v->height, v->round, -1,
								v->is_nil, v->value, v->sig))
	{
		n->stats.rejected++;
		return;
	}
	tally_add(n, s, v);
}

/* Signs, records and broadcasts our own vote; false if refused. */
static bool
cast_vote(bft_node *n, uint8_t type, bool is_nil, const uint8_t value[BFT_HASH_LEN])
{
	bft_msg    *m = &n->tmp;
	bft_vote   *v = &m->u.vote;
	bft_slot   *s;

	memset(m, 0, sizeof(m->type) + sizeof(bft_vote) + 8);
	m->type = type;
	v->type = type;
	v->height = n->height;
	v->round = n->round;
	v->validator = (uint16_t) (n->self < 0 ? 0 : n->self);
	v->is_nil = is_nil;
	if (!is_nil)
		memcpy(v->value, value, BFT_HASH_LEN);
	else
		memset(v->value, 0, BFT_HASH_LEN);
	if (!guarded_sign(n, type, n->round, -1, is_nil, v->value, v->sig))
		return false;
	emit(n, BFT_TO_ALL, m);
	s = slot_for(n, n->round);
	if (s)
		tally_add(n, s, v);
	return true;
}

/* ---------------------------------------------------------------- proposals */

/* Whether prevotes for (vr, value) reach a quorum, by POL or by tally. */
static bool
pol_holds(bft_node *n, const bft_slot *cur)
{
	bft_slot   *vs;

	if (cur->prop_vr < 0)
		return false;
	if (cur->pol_ok)
		return true;
	vs = slot_get(n, (uint32_t) cur->prop_vr);
	return vs != NULL && tally_power_for(&vs->prevote, cur->prop_value) >= n->quorum;
}

/* Whether p's POL holds a quorum of vs for (valid_round, value). */
static bool
pol_verifies(bft_node *n, const bft_valset *vs, const bft_proposal *p)
{
	n->stats.verifies += p->npol;
	return bft_signers_verify(vs, n->cfg.chain_id, BFT_MSG_PREVOTE, p->height,
							  (uint32_t) p->valid_round, p->value, p->pol,
							  p->npol, &n->cfg.cb) == BFT_OK;
}

/* The prevotes of a verified POL are ordinary verified votes: keeps them. */
static void
tally_pol(bft_node *n, const bft_proposal *p)
{
	bft_slot   *vs = slot_for(n, (uint32_t) p->valid_round);
	uint16_t	i;

	for (i = 0; vs != NULL && i < p->npol; i++)
	{
		bft_vote	v;

		v.type = BFT_MSG_PREVOTE;
		v.is_nil = false;
		v.validator = p->pol[i].validator;
		v.round = (uint32_t) p->valid_round;
		v.height = p->height;
		memcpy(v.value, p->value, BFT_HASH_LEN);
		memcpy(v.sig, p->pol[i].sig, BFT_SIG_LEN);
		tally_add(n, vs, &v);
	}
}

/*
 * Whether p is a proposal its proposer made, judged by the validator set vs
 * of its height: the proposer of its round, a payload that hashes to the
 * signed value, the signature, and the POL if one is attached.  Payload and
 * POL are not signed, so without those checks a copy any relay altered
 * would pass for the proposer's.
 */
static bool
proposal_genuine(bft_node *n, const bft_valset *vs, const bft_proposal *p)
{
	if (p->proposer >= vs->n ||
		p->proposer != bft_proposer(vs, p->height, p->round) ||
		!payload_matches(n, p->value, p->payload, p->payload_len) ||
		!verify_sig_by(n, vs, p->proposer, BFT_MSG_PROPOSAL, p->height, p->round,
					   p->valid_round, false, p->value, p->sig) ||
		(p->valid_round >= 0 && p->npol > 0 && !pol_verifies(n, vs, p)))
	{
		n->stats.rejected++;
		return false;
	}
	return true;
}

static void
store_proposal(bft_node *n, bft_slot *s, const bft_proposal *p, bool pol_ok)
{
	s->has_proposal = true;
	s->prop_vr = p->valid_round;
	memcpy(s->prop_value, p->value, BFT_HASH_LEN);
	memcpy(s->prop_sig, p->sig, BFT_SIG_LEN);
	s->prop_len = p->payload_len;
	if (p->payload_len)
		memcpy(s->prop_payload, p->payload, p->payload_len);
	s->pol_ok = pol_ok;
	s->prop_valid = n->cfg.cb.validate(n->cfg.cb.ctx, n->height, p->value,
									   s->prop_payload, s->prop_len);
}

/* Stores a proposal that passed proposal_genuine for this height. */
static void
accept_proposal(bft_node *n, bft_slot *s, const bft_proposal *p)
{
	bool		pol_ok = p->valid_round >= 0 && p->npol > 0;

	if (pol_ok)
		tally_pol(n, p);
	store_proposal(n, s, p, pol_ok);
}

/*
 * Keeps the lowest-round proposal of height + 1, checked like one of this
 * height against that height's validator set before it takes the place: an
 * unchecked forgery, or a genuine proposal with its payload swapped, would
 * keep the genuine one out.  A copy of the kept proposal is news only if it
 * brings the POL the kept one lacks.
 */
static void
buffer_future_proposal(bft_node *n, const bft_proposal *p)
{
	bft_proposal *b = &n->fut_prop;

	if (n->fut_has_prop && p->round >= b->round &&
		(p->round > b->round || b->npol > 0 || p->npol == 0 ||
		 p->valid_round != b->valid_round ||
		 memcmp(p->value, b->value, BFT_HASH_LEN) != 0))
		return;
	if (!proposal_genuine(n, next_valset(n), p))
		return;
	*b = *p;
	if (p->payload_len)
		memcpy(n->fut_payload, p->payload, p->payload_len);
	b->payload = n->fut_payload;
	n->fut_has_prop = true;
}

static void
on_proposal(bft_node *n, const bft_proposal *p, uint32_t peer)
{
	bft_slot   *s;

	if (p->height != n->height)
	{
		if (p->height == n->height + 1)
			buffer_future_proposal(n, p);
		else if (p->height > n->height + 1 && peer != BFT_NO_PEER)
			request_block(n, peer);
		return;
	}
	if (p->proposer >= n->vs.n ||
		p->proposer != bft_proposer(&n->vs, p->height, p->round))
	{
		n->stats.rejected++;
		return;
	}
	s = slot_for(n, p->round);
	if (s == NULL)
		return;
	if (s->has_proposal)
	{
		/*
		 * The first proposal of a round wins.  A copy of it (the same
		 * signed fields, so the same proposal) may still bring the POL
		 * a relay stripped from the one we kept.
		 */
		if (!s->pol_ok && s->prop_vr >= 0 && p->valid_round == s->prop_vr &&
			p->npol > 0 && memcmp(p->value, s->prop_value, BFT_HASH_LEN) == 0)
		{
			if (!pol_verifies(n, &n->vs, p))
			{
				n->stats.rejected++;
				return;
			}
			tally_pol(n, p);
			s->pol_ok = true;
		}
		return;
	}
	if (proposal_genuine(n, &n->vs, p))
		accept_proposal(n, s, p);
}

/* Encodes our proposal of the current round from slot state. */
static void
send_own_proposal(bft_node *n, uint32_t to)
{
	bft_slot   *s = slot_get(n, n->round);
	bft_proposal *p = &n->tmp.u.proposal;

	if (!n->own_prop || n->own_prop_round != n->round || s == NULL || !s->has_proposal)
		return;
	n->tmp.type = BFT_MSG_PROPOSAL;
	p->height = n->height;
	p->round = n->round;
	p->valid_round = n->own_prop_vr;
	p->proposer = (uint16_t) n->self;
	memcpy(p->value, s->prop_value, BFT_HASH_LEN);
	p->payload_len = s->prop_len;
	p->payload = s->prop_payload;
	p->npol = n->own_npol;
	if (n->own_npol)
		memcpy(p->pol, n->own_pol, sizeof(bft_signer) * n->own_npol);
	memcpy(p->sig, s->prop_sig, BFT_SIG_LEN);
	emit(n, to, &n->tmp);
}

/* Proposes value (with POL when vr >= 0) for the current round. */
static void
propose(bft_node *n, const uint8_t value[BFT_HASH_LEN], int32_t vr,
		const uint8_t *payload, uint32_t len)
{
	bft_slot   *s = slot_for(n, n->round);
	bft_proposal p;

	if (s == NULL || s->has_proposal)
		return;
	memset(&p, 0, offsetof(bft_proposal, pol));
	p.height = n->height;
	p.round = n->round;
	p.valid_round = vr;
	p.proposer = (uint16_t) n->self;
	memcpy(p.value, value, BFT_HASH_LEN);
	p.payload = payload;
	p.payload_len = len;
	if (!guarded_sign(n, BFT_MSG_PROPOSAL, n->round, vr, false, value, p.sig))
		return;
	n->own_prop = true;
	n->own_prop_round = n->round;
	n->own_prop_vr = vr;
	n->own_npol = vr >= 0 ? n->valid_npol : 0;
	if (n->own_npol)
		memcpy(n->own_pol, n->valid_pol, sizeof(bft_signer) * n->own_npol);
	p.npol = 0;
	store_proposal(n, s, &p, vr >= 0);
	send_own_proposal(n, BFT_TO_ALL);
}

/* Proposes if we are this round's proposer and have something to offer. */
static void
try_propose(bft_node *n)
{
	if (n->self < 0 || n->step != BFT_STEP_PROPOSE ||
		(uint32_t) n->self != bft_proposer(&n->vs, n->height, n->round))
		return;
	if (n->valid_round >= 0 && n->valid_has_payload)
		propose(n, n->valid_value, n->valid_round, n->valid_payload, n->valid_len);
	else if (n->have_block)
		propose(n, n->block_value, -1, n->block_payload, n->block_len);
	else if (!n->block_requested)
	{
		n->block_requested = true;
		n->out->want_block = true;
		n->out->want_block_height = n->height;
	}
}

/* ---------------------------------------------------------- height change */

static void
set_valset(bft_node *n, const bft_valset *vs)
{
	n->vs = *vs;
	n->quorum = bft_quorum(vs);
	n->third = bft_one_third(vs);
	n->self = bft_valset_find(vs, n->cfg.self_pubkey);
}

static void
reset_height_state(bft_node *n)
{
	uint32_t	i;

	n->round = 0;
	n->step = BFT_STEP_PROPOSE;
	n->locked_round = -1;
	memset(n->locked_value, 0, BFT_HASH_LEN);
	n->valid_round = -1;
	n->valid_has_payload = false;
	n->valid_npol = 0;
	n->own_prop = false;
	n->have_block = false;
	n->block_requested = false;
	for (i = 0; i < BFT_SLOTS; i++)
		n->slots[i].used = false;
	n->seen_mask = 0;
	n->seen_dirty = false;
}

static void
replay_future(bft_node *n)
{
	uint64_t	masks[2];
	int			t;
	uint32_t	i;

	masks[0] = n->fut_mask[0];
	masks[1] = n->fut_mask[1];
	n->fut_mask[0] = n->fut_mask[1] = 0;
	/* all checked against the set now in force (next_valset) */
	if (n->fut_has_prop)
	{
		n->fut_has_prop = false;
		if (n->fut_prop.height == n->height)
		{
			bft_slot   *s = slot_for(n, n->fut_prop.round);

			if (s != NULL && !s->has_proposal)
				accept_proposal(n, s, &n->fut_prop);
		}
	}
	for (t = 0; t < 2; t++)
		for (i = 0; i < BFT_MAX_VALIDATORS; i++)
			if ((masks[t] >> i) & 1 && n->fut_votes[t][i].height == n->height)
				on_vote(n, &n->fut_votes[t][i], BFT_NO_PEER, true);
}

/* Re-sends (and counts) the votes a restarted node had persisted. */
static void
resend_persisted(bft_node *n, const bft_persist *p)
{
	int			k;

	if (n->self < 0)
		return;
	for (k = 0; k < 2; k++)
	{
		bft_vote   *v = &n->tmp.u.vote;
		bft_slot   *s;

		if (!p->has_vote[k])
			continue;
		n->tmp.type = k == 0 ? BFT_MSG_PREVOTE : BFT_MSG_PRECOMMIT;
		v->type = n->tmp.type;
		v->height = n->height;
		v->round = p->vote_round[k];
		v->validator = (uint16_t) n->self;
		v->is_nil = p->vote_nil[k];
		memcpy(v->value, p->vote_value[k], BFT_HASH_LEN);
		memcpy(v->sig, p->vote_sig[k], BFT_SIG_LEN);
		emit(n, BFT_TO_ALL, &n->tmp);
		s = slot_for(n, v->round);
		if (s)
			tally_add(n, s, v);
	}
}

/*
 * Starts the current height: at round 0, or where the last durable record
 * left it if that record is of this height.  The record restores the
 * round, the lock and validValue, and its votes are re-sent so peers that
 * lost them still count them.  The record can be of this height when the
 * node started below it (a durable persist callback kept the record of
 * h + 1 while the commit of h was lost): dropping the lock then would let
 * the node prevote against it in a later round.
 */
static void
begin_height(bft_node *n)
{
	const bft_persist *p = &n->ps;

	if (!n->has_ps || p->height != n->height || p->last_type == 0)
	{
		start_round(n, 0);
		return;
	}
	n->locked_round = p->locked_round;
	memcpy(n->locked_value, p->locked_value, BFT_HASH_LEN);
	if (p->valid_round >= 0 && p->valid_len <= BFT_MAX_PAYLOAD &&
		p->valid_npol <= BFT_MAX_VALIDATORS)
	{
		n->valid_round = p->valid_round;
		memcpy(n->valid_value, p->valid_value, BFT_HASH_LEN);
		n->valid_len = p->valid_len;
		memcpy(n->valid_payload, p->valid_payload, p->valid_len);
		n->valid_npol = p->valid_npol;
		memcpy(n->valid_pol, p->valid_pol, sizeof(bft_signer) * p->valid_npol);
		n->valid_has_payload = true;
	}
	/*
	 * start_round can only propose again at the recorded key, where
	 * guarded_sign signs nothing new, so p is still the record below.
	 */
	if (p->last_type == BFT_MSG_PROPOSAL)
		start_round(n, p->last_round);
	else
	{
		n->round = p->last_round;
		n->step = p->last_type;	/* PREVOTE or PRECOMMIT: already cast */
	}
	resend_persisted(n, p);
}

/*
 * Decides value at the current height: hands block and certificate to the
 * caller, applies a validator-set change due at the next height, and
 * starts it.  Called at most once per step so out->commit is never
 * overwritten.
 */
static void
decide(bft_node *n, const uint8_t value[BFT_HASH_LEN], const uint8_t *payload,
	   uint32_t len, const bft_cert *cert)
{
	bft_output *o = n->out;
	uint32_t	i,
				k;

	n->committed_now = true;
	o->has_commit = true;
	o->commit.height = n->height;
	memcpy(o->commit.value, value, BFT_HASH_LEN);
	if (len)
		memmove(n->commit_payload, payload, len);
	n->commit_len = len;
	o->commit.payload = n->commit_payload;
	o->commit.payload_len = len;
	if (cert != &o->commit.cert)
		o->commit.cert = *cert;
	n->stats.commits++;

	if (n->cfg.cb.valset_change && n->npending < BFT_VALSET_DELAY)
	{
		bft_valset *vs = &n->pending[n->npending].set;

		if (n->cfg.cb.valset_change(n->cfg.cb.ctx, n->height, n->commit_payload,
									len, vs) &&
			bft_valset_check(vs) == BFT_OK)
		{
			n->pending[n->npending].height = n->height + BFT_VALSET_DELAY;
			n->npending++;
		}
	}
	n->height++;
	/* activate a change that is due; later ones stay queued in order */
	for (i = 0, k = 0; i < n->npending; i++)
	{
		if (n->pending[i].height == n->height)
			set_valset(n, &n->pending[i].set);
		else if (n->pending[i].height > n->height)
		{
			if (k != i)
				n->pending[k] = n->pending[i];
			k++;
		}
	}
	n->npending = k;
	reset_height_state(n);
	emit_timer(n, BFT_TIMER_GOSSIP, n->cfg.gossip_ms);
	begin_height(n);
	replay_future(n);
}

/* Builds the certificate from our precommit tally and decides. */
static void
decide_from_slot(bft_node *n, bft_slot *s, const uint8_t value[BFT_HASH_LEN],
				 const uint8_t *payload, uint32_t len)
{
	bft_cert   *c = &n->out->commit.cert;

	c->height = n->height;
	c->round = s->round;
	memcpy(c->value, value, BFT_HASH_LEN);
	c->nsigs = tally_signers(&s->precommit, value, c->sigs);
	decide(n, value, payload, len, c);
}

/*
 * Finds a payload for value that validate accepted, among everything this
 * height has seen.  Every copy kept hashes to value, but the verdict on it
 * may depend on the caller's state when it came, so one copy judged
 * invalid must not hide another judged valid.
 */
static bool
find_valid_payload(bft_node *n, const uint8_t value[BFT_HASH_LEN],
				   const uint8_t **payload, uint32_t *len)
{
	uint32_t	i;

	for (i = 0; i < BFT_SLOTS; i++)
	{
		bft_slot   *s = &n->slots[i];

		if (s->used && s->has_proposal && s->prop_valid &&
			memcmp(s->prop_value, value, BFT_HASH_LEN) == 0)
		{
			*payload = s->prop_payload;
			*len = s->prop_len;
			return true;
		}
	}
	if (n->valid_has_payload && n->valid_round >= 0 &&
		memcmp(n->valid_value, value, BFT_HASH_LEN) == 0)
	{
		*payload = n->valid_payload;
		*len = n->valid_len;
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------ rounds */

static void
start_round(bft_node *n, uint32_t round)
{
	n->round = round;
	n->step = BFT_STEP_PROPOSE;
	(void) slot_for(n, round);
	emit_timer(n, BFT_TIMER_PROPOSE, timeout_ms(n, n->cfg.timeout_propose_ms, round));
	try_propose(n);
}

/*
 * Evaluates the "upon" rules of Algorithm 1 until none fires.  Each rule
 * either changes step/round/height or sets a once-per-round flag, so the
 * loop terminates; the bound is only a guard.
 */
static void
progress(bft_node *n)
{
	int			iter;

	for (iter = 0; iter < 64; iter++)
	{
		bft_slot   *cur = slot_for(n, n->round);
		bool		fired = false;
		uint32_t	i;

		/* lines 22 and 28: prevote on the proposal of this round */
		if (n->step == BFT_STEP_PROPOSE && cur->has_proposal)
		{
			bool		ok = false,
						act = false;

			if (cur->prop_vr < 0)
			{
				act = true;
#ifdef BFT_BROKEN_NO_LOCK
				ok = cur->prop_valid;
#else
				ok = cur->prop_valid && (n->locked_round == -1 ||
										 memcmp(n->locked_value, cur->prop_value, BFT_HASH_LEN) == 0);
#endif
			}
			else if ((uint32_t) cur->prop_vr < n->round && pol_holds(n, cur))
			{
				act = true;
#ifdef BFT_BROKEN_NO_LOCK
				ok = cur->prop_valid;
#else
				ok = cur->prop_valid && (n->locked_round <= cur->prop_vr ||
										 memcmp(n->locked_value, cur->prop_value, BFT_HASH_LEN) == 0);
#endif
			}
			if (act)
			{
				n->step = BFT_STEP_PREVOTE;
				cast_vote(n, BFT_MSG_PREVOTE, !ok, cur->prop_value);
				fired = true;
			}
		}
		/* line 34: any 2f+1 prevotes start the prevote timeout */
		if (n->step == BFT_STEP_PREVOTE && !cur->timeout_prevote_set &&
			cur->prevote.power >= n->quorum)
		{
			cur->timeout_prevote_set = true;
			emit_timer(n, BFT_TIMER_PREVOTE, timeout_ms(n, n->cfg.timeout_prevote_ms, n->round));
		}
		/* line 36: a polka for the valid proposal locks and sets validValue */
		if (n->step >= BFT_STEP_PREVOTE && !cur->rule36_done && cur->has_proposal &&
			cur->prop_valid &&
			tally_power_for(&cur->prevote, cur->prop_value) >= n->quorum)
		{
			cur->rule36_done = true;
			/* validValue first: the precommit's persist record carries it */
			n->valid_round = (int32_t) n->round;
			memcpy(n->valid_value, cur->prop_value, BFT_HASH_LEN);
			n->valid_len = cur->prop_len;
			if (cur->prop_len)
				memcpy(n->valid_payload, cur->prop_payload, cur->prop_len);
			n->valid_has_payload = true;
			n->valid_npol = tally_signers(&cur->prevote, cur->prop_value, n->valid_pol);
			if (n->step == BFT_STEP_PREVOTE)
			{
				n->locked_round = (int32_t) n->round;
				memcpy(n->locked_value, cur->prop_value, BFT_HASH_LEN);
				n->step = BFT_STEP_PRECOMMIT;
				cast_vote(n, BFT_MSG_PRECOMMIT, false, cur->prop_value);
			}
			fired = true;
		}
		/* line 44: 2f+1 nil prevotes */
		if (n->step == BFT_STEP_PREVOTE && cur->prevote.nil_power >= n->quorum)
		{
			n->step = BFT_STEP_PRECOMMIT;
			cast_vote(n, BFT_MSG_PRECOMMIT, true, NULL);
			fired = true;
		}
		/* line 47: any 2f+1 precommits start the precommit timeout */
		if (!cur->timeout_precommit_set && cur->precommit.power >= n->quorum)
		{
			cur->timeout_precommit_set = true;
			emit_timer(n, BFT_TIMER_PRECOMMIT, timeout_ms(n, n->cfg.timeout_precommit_ms, n->round));
		}
		/* line 49: 2f+1 precommits for a value in any round decide it */
		if (!n->committed_now)
		{
			for (i = 0; i < BFT_SLOTS; i++)
			{
				bft_slot   *s = &n->slots[i];
				uint32_t	k;

				if (!s->used || !in_window(n, s->round) || s->precommit.power < n->quorum)
					continue;
				for (k = 0; k < s->precommit.nvals; k++)
				{
					const uint8_t *payload;
					uint32_t	len;

					if (s->precommit.val_power[k] < n->quorum)
						continue;
					/*
					 * Without a valid payload, fetch the block: honest
					 * nodes found it valid, and catch-up checks it again.
					 */
					if (find_valid_payload(n, s->precommit.vals[k], &payload, &len))
					{
						decide_from_slot(n, s, s->precommit.vals[k], payload, len);
						fired = true;
					}
					else
						request_block(n, BFT_TO_ALL);
					break;
				}
				if (fired)
					break;
			}
			if (fired)
				continue;
		}
		/* line 55: more than 1/3 of the power in higher rounds: join */
		if (n->seen_dirty)
		{
			uint32_t	best = skip_target(n);

			n->seen_dirty = false;
			if (best > n->round)
			{
				start_round(n, best);
				fired = true;
			}
		}
		/*
		 * 2f+1 nil precommits in our round: no value can gather a quorum
		 * of precommits in it without more than f liars, so waiting out
		 * the precommit timeout (line 47) would only delay the next
		 * proposer - with a crashed proposer, every n-th height.  Move on
		 * at once, as its expiry would.
		 */
		if (!fired && cur->precommit.nil_power >= n->quorum)
		{
			start_round(n, n->round + 1);
			fired = true;
		}
		if (!fired)
			break;
	}
}

/* --------------------------------------------------------- gossip, catch-up */

/* Our votes and proposal of the current round, for a peer that missed them. */
static void
resend_round(bft_node *n, uint32_t round, uint32_t to)
{
	bft_slot   *s = slot_get(n, round);
	int			t;

	if (s == NULL || n->self < 0)
		return;
	if (round == n->round)
		send_own_proposal(n, to);
	for (t = 0; t < 2; t++)
	{
		bft_tally  *ta = t == 0 ? &s->prevote : &s->precommit;
		bft_vote   *v = &n->tmp.u.vote;
		uint8_t		vi;

		if (!((ta->mask >> n->self) & 1))
			continue;
		vi = ta->val_of[n->self];
		n->tmp.type = t == 0 ? BFT_MSG_PREVOTE : BFT_MSG_PRECOMMIT;
		v->type = n->tmp.type;
		v->height = n->height;
		v->round = round;
		v->validator = (uint16_t) n->self;
		v->is_nil = vi == NO_VAL;
		if (vi == NO_VAL)
			memset(v->value, 0, BFT_HASH_LEN);
		else
			memcpy(v->value, ta->vals[vi], BFT_HASH_LEN);
		memcpy(v->sig, ta->sigs[n->self], BFT_SIG_LEN);
		emit(n, to, &n->tmp);
	}
}

static void
gossip(bft_node *n)
{
	n->tmp.type = BFT_MSG_STATUS;
	n->tmp.u.status.height = n->height;
	n->tmp.u.status.round = n->round;
	n->tmp.u.status.validator = (uint16_t) (n->self < 0 ? 0xFFFF : n->self);
	emit(n, BFT_TO_ALL, &n->tmp);
	if (n->round > 0)
		resend_round(n, n->round - 1, BFT_TO_ALL);
	resend_round(n, n->round, BFT_TO_ALL);
	emit_timer(n, BFT_TIMER_GOSSIP, n->cfg.gossip_ms);
}

/*
 * Whether we may answer peer about key now: at most once per half gossip
 * period.  Every reply to a peer goes through here, so a peer (or a replay
 * of its old requests) can never make us send more than it sends us.
 */
/* Whether ring holds (peer, key) from less than half a gossip period ago. */
static bool
seen_lately(bft_node *n, const bft_served *ring, uint32_t peer, uint64_t key)
{
	uint32_t	i;

	for (i = 0; i < BFT_SERVED; i++)
		if (ring[i].at_ms && ring[i].peer == peer && ring[i].height == key &&
			n->now < ring[i].at_ms + n->cfg.gossip_ms / 2)
			return true;
	return false;
}

static void
remember(bft_node *n, bft_served *ring, uint32_t *next, uint32_t peer, uint64_t key)
{
	bft_served *sv = &ring[(*next)++ % BFT_SERVED];

	sv->peer = peer;
	sv->height = key;
	sv->at_ms = n->now ? n->now : 1;
}

static bool
reply_allowed(bft_node *n, uint32_t peer, uint64_t key)
{
	if (seen_lately(n, n->served, peer, key))
		return false;
	remember(n, n->served, &n->served_next, peer, key);
	return true;
}

/* Sends a committed block to a peer, at most once per period per height. */
static void
serve_block(bft_node *n, uint64_t height, uint32_t peer)
{
	const uint8_t *payload = NULL;
	uint32_t	len = 0;
	bft_block_resp *r = &n->tmp.u.resp;

	if (n->cfg.cb.load_block == NULL || height >= n->height || peer == BFT_NO_PEER)
		return;
	if (!reply_allowed(n, peer, height))
		return;
	if (!n->cfg.cb.load_block(n->cfg.cb.ctx, height, &payload, &len, &r->cert) ||
		len > BFT_MAX_PAYLOAD)
		return;
	n->tmp.type = BFT_MSG_BLOCK_RESP;
	r->payload = payload;
	r->payload_len = len;
	emit(n, peer, &n->tmp);
}

/* A certified block for our height: verify everything, then decide it. */
static void
on_block_resp(bft_node *n, const bft_block_resp *r, uint32_t peer)
{
	const bft_cert *c = &r->cert;

	if (c->height != n->height || n->committed_now)
		return;
	/* the payload's hash first: a quorum of signature checks costs more */
	if (!payload_matches(n, c->value, r->payload, r->payload_len))
	{
		n->stats.rejected++;
		return;
	}
	/*
	 * An honest peer's certificates verify: after one that did not, a
	 * peer's answers for that height wait half a gossip period, or it
	 * could make us check a quorum of signatures per message it sends.
	 */
	if (peer != BFT_NO_PEER && seen_lately(n, n->failed, peer, c->height))
		return;
	n->stats.verifies += c->nsigs;
	if (bft_cert_verify(&n->vs, n->cfg.chain_id, c, &n->cfg.cb) != BFT_OK)
	{
		if (peer != BFT_NO_PEER)
			remember(n, n->failed, &n->failed_next, peer, c->height);
		n->stats.rejected++;
		return;
	}
	if (!n->cfg.cb.validate(n->cfg.cb.ctx, c->height, c->value, r->payload,
							r->payload_len))
	{
		n->stats.rejected++;
		return;
	}
	n->stats.catchup_commits++;
	decide(n, c->value, r->payload, r->payload_len, c);
	/* the peer may hold more blocks: keep pulling */
	if (peer != BFT_NO_PEER)
	{
		request_again(n, peer);
		request_block(n, peer);
	}
}

static void
on_message(bft_node *n, uint32_t peer, const uint8_t *data, size_t len)
{
	bft_msg    *m = &n->in;

	if (bft_decode(data, len, m) != BFT_OK)
	{
		n->stats.rejected++;
		return;
	}
	switch (m->type)
	{
		case BFT_MSG_PROPOSAL:
			on_proposal(n, &m->u.proposal, peer);
			break;
		case BFT_MSG_PREVOTE:
		case BFT_MSG_PRECOMMIT:
			on_vote(n, &m->u.vote, peer, false);
			break;
		case BFT_MSG_STATUS:
			if (m->u.status.height < n->height)
				serve_block(n, m->u.status.height, peer);
			else if (m->u.status.height > n->height)
				request_block(n, peer);
			else if (m->u.status.round < n->round && peer != BFT_NO_PEER &&
					 reply_allowed(n, peer, UINT64_MAX))
			{
				/* its round's votes let it time out; ours let it skip */
				resend_round(n, m->u.status.round, peer);
				resend_round(n, n->round, peer);
			}
			break;
		case BFT_MSG_BLOCK_REQ:
			serve_block(n, m->u.req.height, peer);
			break;
		case BFT_MSG_BLOCK_RESP:
			on_block_resp(n, &m->u.resp, peer);
			break;
	}
}

/* -------------------------------------------------------------- restart */

/* (Re)starts from the caller's durable state. */
static void
on_start(bft_node *n, const bft_start *st)
{
	uint32_t	i;

	n->started = true;
	n->height = st->height;
	set_valset(n, &st->valset);
	n->npending = 0;
	for (i = 0; i < st->npending && i < BFT_VALSET_DELAY; i++)
		n->pending[n->npending++] = st->pending[i];
	reset_height_state(n);
	n->fut_mask[0] = n->fut_mask[1] = 0;
	n->fut_has_prop = false;
	n->has_ps = st->has_persist;
	if (st->has_persist)
		n->ps = st->persist;
	emit_timer(n, BFT_TIMER_GOSSIP, n->cfg.gossip_ms);
	begin_height(n);
}

/* ------------------------------------------------------------------- step */

static void
on_timeout(bft_node *n, uint8_t kind, uint64_t height, uint32_t round)
{
	if (height != n->height)
		return;
	switch (kind)
	{
		case BFT_TIMER_PROPOSE:
			if (round == n->round && n->step == BFT_STEP_PROPOSE)
			{
				n->step = BFT_STEP_PREVOTE;
				cast_vote(n, BFT_MSG_PREVOTE, true, NULL);
			}
			break;
		case BFT_TIMER_PREVOTE:
			if (round == n->round && n->step == BFT_STEP_PREVOTE)
			{
				n->step = BFT_STEP_PRECOMMIT;
				cast_vote(n, BFT_MSG_PRECOMMIT, true, NULL);
			}
			break;
		case BFT_TIMER_PRECOMMIT:
			if (round == n->round)
				start_round(n, n->round + 1);
			break;
		case BFT_TIMER_GOSSIP:
			gossip(n);
			break;

	}
}

static void
on_block(bft_node *n, const bft_event *ev)
{
	if (ev->u.block.height != n->height || n->have_block ||
		ev->u.block.len > BFT_MAX_PAYLOAD)
		return;
	n->have_block = true;
	memcpy(n->block_value, ev->u.block.value, BFT_HASH_LEN);
	n->block_len = ev->u.block.len;
	if (ev->u.block.len)
		memcpy(n->block_payload, ev->u.block.payload, ev->u.block.len);
	try_propose(n);
}

/*
 * The single entry point.  Resets *out, applies ev, then runs the rules to
 * a fixpoint.  Events before BFT_EV_START are ignored.
 */
void
bft_step(bft_node *n, const bft_event *ev, bft_output *out)
{
	out->nmsgs = 0;
	out->ntimers = 0;
	out->has_commit = false;
	out->want_block = false;
	out->nevidence = 0;
	out->dropped = 0;
	out->buf_used = 0;
	n->out = out;
	n->now = ev->now_ms;
	n->committed_now = false;

	if (ev->kind == BFT_EV_START)
	{
		if (ev->u.start == NULL || bft_valset_check(&ev->u.start->valset) != BFT_OK)
			return;
		on_start(n, ev->u.start);
	}
	else if (!n->started)
		return;
	else if (ev->kind == BFT_EV_MSG)
		on_message(n, ev->u.msg.peer, ev->u.msg.data, ev->u.msg.len);
	else if (ev->kind == BFT_EV_TIMEOUT)
		on_timeout(n, ev->u.timeout.kind, ev->u.timeout.height, ev->u.timeout.round);
	else if (ev->kind == BFT_EV_BLOCK)
		on_block(n, ev);
	progress(n);
	n->out = NULL;
}
