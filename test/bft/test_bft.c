/*
 * test_bft.c
 *		cmocka unit tests for the BFT core, certificates and wire codec.
 *
 * The node under test is driven by hand: the test plays the other
 * validators by crafting signed messages, so each rule of Algorithm 1 is
 * exercised in isolation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bft.h"
#include "fakecrypto.h"

typedef struct ut_ctx
{
	uint8_t		pk[BFT_PUBKEY_LEN];
	int			npersist;
	bool		fail_persist;
	bool		judge_invalid;	/* validate says no, as before a block is applied */
	bft_persist last;
	bool		change_at_1;	/* block 1 decides a validator-set change */
	bft_valset	change_to;
	bool		have_block1;
	uint8_t		block1[64];
	uint32_t	block1_len;
	bft_cert	cert1;
} ut_ctx;

static bft_valset g_vs;
static uint8_t g_chain[BFT_HASH_LEN] = {'t', 'e', 's', 't'};

static void
pk_of(int i, uint8_t pk[BFT_PUBKEY_LEN])
{
	memset(pk, 0, BFT_PUBKEY_LEN);
	pk[0] = (uint8_t) (i + 1);
	pk[31] = 0x5a;
}

static int
cb_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[BFT_SIG_LEN])
{
	fk_sign(((ut_ctx *) ctx)->pk, msg, len, sig);
	return 0;
}

static bool
cb_verify(void *ctx, const uint8_t pk[BFT_PUBKEY_LEN], const uint8_t *msg,
		  size_t len, const uint8_t sig[BFT_SIG_LEN])
{
	(void) ctx;
	return fk_verify(pk, msg, len, sig);
}

static bool
cb_value_of(void *ctx, const uint8_t *payload, size_t len, uint8_t value[BFT_HASH_LEN])
{
	(void) ctx;
	fk_block_hash(payload, len, value);
	return true;
}

/* The core checks the hash (value_of) before it asks: validity alone here. */
static bool
cb_validate(void *ctx, uint64_t h, const uint8_t value[BFT_HASH_LEN],
			const uint8_t *payload, size_t len)
{
	(void) h;
	(void) value;
	return len > 0 && payload[0] == 'V' && !((ut_ctx *) ctx)->judge_invalid;
}

static int
cb_persist(void *ctx, const bft_persist *st)
{
	ut_ctx	   *c = (ut_ctx *) ctx;

	if (c->fail_persist)
		return -1;
	c->last = *st;
	c->npersist++;
	return 0;
}

static bool
cb_load(void *ctx, uint64_t h, const uint8_t **payload, uint32_t *len, bft_cert *cert)
{
	ut_ctx	   *c = (ut_ctx *) ctx;

	if (h != 1 || !c->have_block1)
		return false;
	*payload = c->block1;
	*len = c->block1_len;
	*cert = c->cert1;
	return true;
}

static bool
cb_valset(void *ctx, uint64_t h, const uint8_t *payload, size_t len, bft_valset *next)
{
	ut_ctx	   *c = (ut_ctx *) ctx;

	(void) payload;
	(void) len;
	if (h == 1 && c->change_at_1)
	{
		*next = c->change_to;
		return true;
	}
	return false;
}

static bft_callbacks
callbacks(ut_ctx *c)
{
	bft_callbacks cb;

	cb.ctx = c;
	cb.sign = cb_sign;
	cb.verify = cb_verify;
	cb.value_of = cb_value_of;
	cb.validate = cb_validate;
	cb.persist = cb_persist;
	cb.load_block = cb_load;
	cb.valset_change = cb_valset;
	return cb;
}

typedef struct ut
{
	ut_ctx		ctx;
	bft_node   *node;
	bft_output *out;
	int			me;
	int			n;
} ut;

static void
make_valset(int n)
{
	int			i;

	memset(&g_vs, 0, sizeof(g_vs));
	g_vs.n = (uint32_t) n;
	for (i = 0; i < n; i++)
	{
		pk_of(i, g_vs.v[i].pubkey);
		g_vs.v[i].power = 1;
	}
}

static void
ut_setup(ut *u, int n, int me, const bft_persist *ps)
{
	bft_config	cfg;
	bft_start  *st = calloc(1, sizeof(bft_start));
	bft_event	ev;

	memset(u, 0, sizeof(*u));
	make_valset(n);
	u->n = n;
	u->me = me;
	pk_of(me, u->ctx.pk);
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.chain_id, g_chain, BFT_HASH_LEN);
	memcpy(cfg.self_pubkey, u->ctx.pk, BFT_PUBKEY_LEN);
	cfg.timeout_propose_ms = 100;
	cfg.timeout_prevote_ms = 100;
	cfg.timeout_precommit_ms = 100;
	cfg.timeout_delta_ms = 50;
	cfg.gossip_ms = 200;
	cfg.cb = callbacks(&u->ctx);
	u->node = bft_init(malloc(bft_node_size()), &cfg);
	u->out = malloc(sizeof(bft_output));
	st->height = 1;
	st->valset = g_vs;
	if (ps)
	{
		st->has_persist = true;
		st->persist = *ps;
	}
	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_START;
	ev.u.start = st;
	bft_step(u->node, &ev, u->out);
	free(st);
}

static void
ut_teardown(ut *u)
{
	free(u->node);
	free(u->out);
}

static void
payload_for(uint64_t h, char tag, bool valid, uint8_t *buf, uint32_t *len,
			uint8_t value[BFT_HASH_LEN])
{
	buf[0] = valid ? 'V' : 'X';
	buf[1] = (uint8_t) tag;
	memcpy(buf + 2, &h, 8);
	*len = 10;
	fk_block_hash(buf, *len, value);
}

static void
feed_at(ut *u, uint32_t peer, const bft_msg *m, uint64_t now_ms)
{
	uint8_t    *buf = malloc(BFT_MAX_MSG);
	size_t		len;
	bft_event	ev;

	assert_int_equal(bft_encode(m, buf, BFT_MAX_MSG, &len), BFT_OK);
	memset(&ev, 0, sizeof(ev));
	ev.now_ms = now_ms;
	ev.kind = BFT_EV_MSG;
	ev.u.msg.peer = peer;
	ev.u.msg.data = buf;
	ev.u.msg.len = len;
	bft_step(u->node, &ev, u->out);
	free(buf);
}

static void
feed(ut *u, uint32_t peer, const bft_msg *m)
{
	feed_at(u, peer, m, 0);
}

static void
fire(ut *u, uint8_t kind, uint64_t h, uint32_t r)
{
	bft_event	ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = BFT_EV_TIMEOUT;
	ev.u.timeout.kind = kind;
	ev.u.timeout.height = h;
	ev.u.timeout.round = r;
	bft_step(u->node, &ev, u->out);
}

static void
sign_as(int v, uint8_t type, uint64_t h, uint32_t r, int32_t vr, bool nil,
		const uint8_t value[BFT_HASH_LEN], uint8_t sig[BFT_SIG_LEN])
{
	uint8_t		sb[BFT_SIGN_BYTES_LEN];
	uint8_t		pk[BFT_PUBKEY_LEN];

	pk_of(v, pk);
	bft_sign_bytes(g_chain, type, h, r, vr, nil, value, sb);
	fk_sign(pk, sb, sizeof(sb), sig);
}

static void
vote_as(ut *u, int v, uint8_t type, uint64_t h, uint32_t r, const uint8_t *value)
{
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	static const uint8_t zero[BFT_HASH_LEN];

	m->type = type;
	m->u.vote.type = type;
	m->u.vote.height = h;
	m->u.vote.round = r;
	m->u.vote.validator = (uint16_t) v;
	m->u.vote.is_nil = value == NULL;
	memcpy(m->u.vote.value, value ? value : zero, BFT_HASH_LEN);
	sign_as(v, type, h, r, -1, value == NULL, m->u.vote.value, m->u.vote.sig);
	feed(u, (uint32_t) v, m);
	free(m);
}

/* Proposal signed by validator v; pol_from lists validators whose prevotes form the POL. */
static void
make_proposal(bft_msg *m, int v, uint64_t h, uint32_t r, int32_t vr, const uint8_t *payload,
			  uint32_t len, const uint8_t value[BFT_HASH_LEN], const int *pol_from, int npol)
{
	int			i;

	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_PROPOSAL;
	m->u.proposal.height = h;
	m->u.proposal.round = r;
	m->u.proposal.valid_round = vr;
	m->u.proposal.proposer = (uint16_t) v;
	memcpy(m->u.proposal.value, value, BFT_HASH_LEN);
	m->u.proposal.payload = payload;
	m->u.proposal.payload_len = len;
	m->u.proposal.npol = (uint16_t) npol;
	for (i = 0; i < npol; i++)
	{
		m->u.proposal.pol[i].validator = (uint16_t) pol_from[i];
		sign_as(pol_from[i], BFT_MSG_PREVOTE, h, (uint32_t) vr, -1, false, value,
				m->u.proposal.pol[i].sig);
	}
	sign_as(v, BFT_MSG_PROPOSAL, h, r, vr, false, value, m->u.proposal.sig);
}

static void
propose_as(ut *u, int v, uint64_t h, uint32_t r, int32_t vr, const uint8_t *payload,
		   uint32_t len, const uint8_t value[BFT_HASH_LEN], const int *pol_from, int npol)
{
	bft_msg    *m = malloc(sizeof(bft_msg));

	make_proposal(m, v, h, r, vr, payload, len, value, pol_from, npol);
	feed(u, (uint32_t) v, m);
	free(m);
}

/* Finds our vote of the given type in the last output; returns 1 value, 0 nil, -1 none. */
static int
out_vote(ut *u, uint8_t type, uint32_t round, uint8_t value[BFT_HASH_LEN])
{
	uint32_t	i;
	bft_msg    *m = malloc(sizeof(bft_msg));
	int			res = -1;

	for (i = 0; i < u->out->nmsgs; i++)
	{
		assert_int_equal(bft_decode(u->out->buf + u->out->msgs[i].off,
									u->out->msgs[i].len, m), BFT_OK);
		if (m->type == type && m->u.vote.round == round &&
			m->u.vote.validator == u->me)
		{
			res = m->u.vote.is_nil ? 0 : 1;
			if (value)
				memcpy(value, m->u.vote.value, BFT_HASH_LEN);
		}
	}
	free(m);
	return res;
}

/* ------------------------------------------------------------------ tests */

static void
test_single_node_commits_at_once(void **state)
{
	ut			u;
	bft_event	ev;
	uint8_t		pl[16],
				val[BFT_HASH_LEN];
	uint32_t	len;
	int			h;

	(void) state;
	ut_setup(&u, 1, 0, NULL);
	for (h = 1; h <= 3; h++)
	{
		assert_true(u.out->want_block);
		assert_int_equal(u.out->want_block_height, h);
		payload_for((uint64_t) h, 'a', true, pl, &len, val);
		memset(&ev, 0, sizeof(ev));
		ev.kind = BFT_EV_BLOCK;
		ev.u.block.height = (uint64_t) h;
		memcpy(ev.u.block.value, val, BFT_HASH_LEN);
		ev.u.block.payload = pl;
		ev.u.block.len = len;
		bft_step(u.node, &ev, u.out);
		/* one event: propose, prevote, precommit, commit */
		assert_true(u.out->has_commit);
		assert_int_equal(u.out->commit.height, h);
		assert_memory_equal(u.out->commit.value, val, BFT_HASH_LEN);
		assert_int_equal(u.out->commit.cert.nsigs, 1);
		assert_int_equal(bft_cert_verify(&g_vs, g_chain, &u.out->commit.cert,
										 &(bft_callbacks) {.verify = cb_verify}), BFT_OK);
		assert_int_equal(bft_height(u.node), h + 1);
	}
	ut_teardown(&u);
}

static void
test_quorum_sizes(void **state)
{
	int			n;

	(void) state;
	for (n = 1; n <= 13; n++)
	{
		int			f = (n - 1) / 3;

		make_valset(n);
		if (n == 3 * f + 1)
			assert_int_equal(bft_quorum(&g_vs), (uint64_t) (2 * f + 1));
		assert_true(bft_quorum(&g_vs) * 3 > (uint64_t) n * 2);
		assert_true((bft_quorum(&g_vs) - 1) * 3 <= (uint64_t) n * 2);
	}
	make_valset(4);
	assert_int_equal(bft_quorum(&g_vs), 3);
	assert_int_equal(bft_one_third(&g_vs), 2);
	make_valset(10);
	assert_int_equal(bft_quorum(&g_vs), 7);
}

/* A polka locks the node; a later fresh proposal of another value gets nil. */
static void
test_locking(void **state)
{
	ut			u;
	uint8_t		pv[16],
				pw[16],
				v[BFT_HASH_LEN],
				w[BFT_HASH_LEN],
				got[BFT_HASH_LEN];
	uint32_t	lv,
				lw;
	int			pol[3] = {1, 2, 3};

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(1, 'w', true, pw, &lw, w);
	/* round 0: proposer (1+0)%4 = 1 proposes v */
	propose_as(&u, 1, 1, 0, -1, pv, lv, v, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, got), 1);
	assert_memory_equal(got, v, BFT_HASH_LEN);
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	/* polka (0,1,2): precommit v, locked on v at round 0 */
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 0, got), 1);
	assert_memory_equal(got, v, BFT_HASH_LEN);
	assert_int_equal(u.ctx.last.locked_round, 0);
	assert_memory_equal(u.ctx.last.locked_value, v, BFT_HASH_LEN);
	/* nobody else precommits v: 2f+1 precommits of any kind, timeout */
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	assert_false(u.out->has_commit);
	fire(&u, BFT_TIMER_PRECOMMIT, 1, 0);
	assert_int_equal(bft_round(u.node), 1);
	/* round 1: proposer 2 proposes fresh w: locked on v, so prevote nil */
	propose_as(&u, 2, 1, 1, -1, pw, lw, w, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 1, NULL), 0);
	/* nil polka, then nil precommits: round 2 */
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 1, NULL);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 1, NULL);
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 1, NULL), 0);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	fire(&u, BFT_TIMER_PRECOMMIT, 1, 1);
	assert_int_equal(bft_round(u.node), 2);
	/* round 2: proposer 3 re-proposes w with a POL from round 1 > lockedRound 0 */
	propose_as(&u, 3, 1, 2, 1, pw, lw, w, pol, 3);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 2, got), 1);
	assert_memory_equal(got, w, BFT_HASH_LEN);
	ut_teardown(&u);
}

/* The locked value itself is prevoted even with no POL; a stale POL is not enough. */
static void
test_locked_value_and_stale_pol(void **state)
{
	ut			u;
	uint8_t		pv[16],
				pw[16],
				v[BFT_HASH_LEN],
				w[BFT_HASH_LEN];
	uint32_t	lv,
				lw;
	int			pol[3] = {1, 2, 3};

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(1, 'w', true, pw, &lw, w);
	/* round 0: no proposal reaches us; timeout, prevote nil; round 1 */
	fire(&u, BFT_TIMER_PROPOSE, 1, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), 0);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	assert_int_equal(bft_round(u.node), 1);
	/* round 1: lock on v */
	propose_as(&u, 2, 1, 1, -1, pv, lv, v, NULL, 0);
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 1, v);
	vote_as(&u, 3, BFT_MSG_PREVOTE, 1, 1, v);
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 1, NULL), 1);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	fire(&u, BFT_TIMER_PRECOMMIT, 1, 1);
	/* round 2: w with POL of round 0 < lockedRound 1: must prevote nil */
	propose_as(&u, 3, 1, 2, 0, pw, lw, w, pol, 3);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 2, NULL), 0);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 2, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 2, NULL);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 2, NULL);
	/* 2f+1 nil precommits: round 3 at once, without the precommit timeout */
	assert_int_equal(bft_round(u.node), 3);
	/* round 3: proposer is us (1+3)%4 = 0: we re-propose validValue v, vr 1 */
	{
		bft_msg    *m = malloc(sizeof(bft_msg));
		uint32_t	i;
		bool		seen = false;

		for (i = 0; i < u.out->nmsgs; i++)
		{
			assert_int_equal(bft_decode(u.out->buf + u.out->msgs[i].off, u.out->msgs[i].len, m), BFT_OK);
			if (m->type == BFT_MSG_PROPOSAL)
			{
				seen = true;
				assert_int_equal(m->u.proposal.valid_round, 1);
				assert_memory_equal(m->u.proposal.value, v, BFT_HASH_LEN);
				assert_true(m->u.proposal.npol >= 3);
				assert_int_equal(bft_signers_verify(&g_vs, g_chain, BFT_MSG_PREVOTE, 1, 1, v,
													m->u.proposal.pol, m->u.proposal.npol,
													&(bft_callbacks) {.verify = cb_verify}), BFT_OK);
			}
		}
		assert_true(seen);
		free(m);
	}
	/* and prevote it ourselves: it is our locked value */
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 3, NULL), 1);
	ut_teardown(&u);
}

static void
test_invalid_proposal_gets_nil(void **state)
{
	ut			u;
	uint8_t		px[16],
				x[BFT_HASH_LEN];
	uint32_t	lx;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'x', false, px, &lx, x);
	propose_as(&u, 1, 1, 0, -1, px, lx, x, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), 0);
	/* even with 2f+1 precommits for it, an invalid block is never decided */
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, x);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, x);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, x);
	assert_false(u.out->has_commit);
	ut_teardown(&u);
}

static void
test_wrong_proposer_and_bad_sig_rejected(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	propose_as(&u, 2, 1, 0, -1, pv, lv, v, NULL, 0);	/* not proposer */
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), -1);
	m->type = BFT_MSG_PREVOTE;
	m->u.vote.type = BFT_MSG_PREVOTE;
	m->u.vote.height = 1;
	m->u.vote.validator = 1;
	memcpy(m->u.vote.value, v, BFT_HASH_LEN);
	memset(m->u.vote.sig, 7, BFT_SIG_LEN);
	feed(&u, 1, m);
	assert_true(bft_get_stats(u.node)->rejected >= 2);
	free(m);
	ut_teardown(&u);
}

static void
test_evidence(void **state)
{
	ut			u;
	uint8_t		pv[16],
				pw[16],
				v[BFT_HASH_LEN],
				w[BFT_HASH_LEN];
	uint32_t	lv,
				lw;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(1, 'w', true, pw, &lw, w);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	assert_int_equal(u.out->nevidence, 0);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);	/* duplicate: not evidence */
	assert_int_equal(u.out->nevidence, 0);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, w);
	assert_int_equal(u.out->nevidence, 1);
	assert_int_equal(u.out->evidence[0].a.validator, 2);
	assert_int_equal(bft_evidence_verify(&g_vs, g_chain, &u.out->evidence[0],
										 &(bft_callbacks) {.verify = cb_verify}), BFT_OK);
	/* a nil vote conflicts as well; evidence is reported once per validator */
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, NULL);
	assert_int_equal(u.out->nevidence, 0);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	assert_int_equal(u.out->nevidence, 1);
	assert_int_equal(bft_evidence_verify(&g_vs, g_chain, &u.out->evidence[0],
										 &(bft_callbacks) {.verify = cb_verify}), BFT_OK);
	{
		bft_evidence e = u.out->evidence[0];

		e.b = e.a;				/* same vote twice is no evidence */
		assert_int_equal(bft_evidence_verify(&g_vs, g_chain, &e,
											 &(bft_callbacks) {.verify = cb_verify}), BFT_ERR_FIELD);
		e = u.out->evidence[0];
		e.b.sig[5] ^= 1;
		assert_int_equal(bft_evidence_verify(&g_vs, g_chain, &e,
											 &(bft_callbacks) {.verify = cb_verify}), BFT_ERR_SIG);
	}
	ut_teardown(&u);
}

/* A height-1 round-0 precommit under validator's index with a junk signature. */
static void
forged_precommit(bft_msg *m, int validator, const uint8_t value[BFT_HASH_LEN])
{
	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_PRECOMMIT;
	m->u.vote.type = BFT_MSG_PRECOMMIT;
	m->u.vote.height = 1;
	m->u.vote.validator = (uint16_t) validator;
	memcpy(m->u.vote.value, value, BFT_HASH_LEN);
	memset(m->u.vote.sig, 7, BFT_SIG_LEN);
}

/* The last step reported exactly one piece of evidence, against validator, and it checks. */
static void
assert_evidence_against(ut *u, int validator)
{
	assert_int_equal(u->out->nevidence, 1);
	assert_int_equal(u->out->evidence[0].a.validator, validator);
	assert_int_equal(bft_evidence_verify(&g_vs, g_chain, &u->out->evidence[0],
										 &(bft_callbacks) {.verify = cb_verify}), BFT_OK);
}

/*
 * Once a tally holds a quorum, later votes in it are parked unchecked; a
 * parked validator that sends a different vote is checked after all, so
 * equivocation still yields evidence, and a bad parked signature counts
 * for nothing.
 */
static void
test_parked_votes(void **state)
{
	ut			u;
	uint8_t		pv[16],
				pw[16],
				v[BFT_HASH_LEN],
				w[BFT_HASH_LEN];
	uint32_t	lv,
				lw;
	uint64_t	checked;
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(1, 'w', true, pw, &lw, w);
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	assert_int_equal(bft_get_stats(u.node)->parked, 0);
	vote_as(&u, 3, BFT_MSG_PREVOTE, 1, 0, NULL);	/* no quorum yet: checked */
	assert_int_equal(bft_get_stats(u.node)->parked, 0);
	vote_as(&u, 0, BFT_MSG_PREVOTE, 1, 0, v);	/* the quorum */
	checked = bft_get_stats(u.node)->verifies;
	/* precommits: a quorum, then one more that is parked, then its twin */
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 2, 0, v);	/* next height: checked, buffered */
	assert_int_equal(bft_get_stats(u.node)->verifies, checked + 1);
	checked++;
	forged_precommit(m, 3, w);	/* a forgery nobody checks yet */
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 0, BFT_MSG_PRECOMMIT, 1, 0, v);
	assert_int_equal(bft_get_stats(u.node)->verifies, checked + 3);
	feed(&u, 3, m);
	assert_int_equal(bft_get_stats(u.node)->parked, 1);
	assert_int_equal(bft_get_stats(u.node)->verifies, checked + 3);
	feed(&u, 3, m);				/* the same again: still parked */
	assert_int_equal(bft_get_stats(u.node)->verifies, checked + 3);
	/* a different vote from 3: the forgery is checked and thrown away */
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	assert_int_equal(bft_get_stats(u.node)->verifies, checked + 4);
	assert_int_equal(bft_get_stats(u.node)->parked, 2);
	assert_int_equal(u.out->nevidence, 0);
	/* and a genuine conflict with the parked nil is evidence */
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, w);
	assert_evidence_against(&u, 3);
	assert_true(u.out->evidence[0].a.is_nil);
	free(m);
	ut_teardown(&u);
}

/*
 * A forged copy of a vote (right value, junk signature) parked under an
 * honest validator must not hide its genuine vote: the genuine one is
 * checked against the parked one and takes its place, so a later
 * conflicting vote from that validator is still caught.
 */
static void
test_parked_forged_copy(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;
	uint64_t	checked,
				parked;
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 0, BFT_MSG_PRECOMMIT, 1, 0, v);
	forged_precommit(m, 3, v);
	feed(&u, 1, m);				/* sent by 1, claiming to be 3 */
	checked = bft_get_stats(u.node)->verifies;
	parked = bft_get_stats(u.node)->parked;
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, v);	/* the genuine vote */
	assert_int_equal(bft_get_stats(u.node)->verifies, checked + 1);
	assert_int_equal(bft_get_stats(u.node)->parked, parked + 1);
	/* 3 equivocates: its parked genuine vote is the evidence */
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	assert_evidence_against(&u, 3);
	free(m);
	ut_teardown(&u);
}

/*
 * A vote parked before its validator's slot was filled some other way
 * (here: our own nil prevote on the propose timeout) is still compared
 * with what was counted when it is finally checked: when a different vote
 * of that validator arrives (our nil, echoed back) or, with resend, the
 * parked vote itself is sent again.
 */
static void
parked_then_slot_filled(bool resend)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;

	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 3, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 0, BFT_MSG_PREVOTE, 1, 0, v);	/* our key, settled tally: parked */
	assert_int_equal(bft_get_stats(u.node)->parked, 1);
	fire(&u, BFT_TIMER_PROPOSE, 1, 0);	/* we prevote nil: the slot is filled */
	vote_as(&u, 0, BFT_MSG_PREVOTE, 1, 0, resend ? v : NULL);
	assert_evidence_against(&u, 0);
	ut_teardown(&u);
}

static void
test_parked_then_slot_filled(void **state)
{
	(void) state;
	parked_then_slot_filled(false);
	parked_then_slot_filled(true);
}

/*
 * 2f+1 nil precommits end the round at once (no value can be decided in
 * it); 2f+1 precommits that are not all nil still wait for the timeout,
 * which gives a late precommit for the value its chance.
 */
static void
test_nil_precommit_quorum(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	fire(&u, BFT_TIMER_PROPOSE, 1, 0);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	assert_int_equal(bft_round(u.node), 0);	/* 2 of 4: no quorum yet */
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, v);
	assert_int_equal(bft_round(u.node), 0);	/* a quorum, but not all nil */
	fire(&u, BFT_TIMER_PRECOMMIT, 1, 0);
	assert_int_equal(bft_round(u.node), 1);
	/* round 1: three nil precommits move us on without any timer */
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	assert_int_equal(bft_round(u.node), 1);
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 1, NULL);
	assert_int_equal(bft_round(u.node), 2);
	assert_int_equal(bft_height(u.node), 1);
	ut_teardown(&u);
}

static void
make_cert(bft_cert *c, uint64_t h, uint32_t r, const uint8_t v[BFT_HASH_LEN],
		  const int *who, int k)
{
	int			i;

	memset(c, 0, sizeof(*c));
	c->height = h;
	c->round = r;
	memcpy(c->value, v, BFT_HASH_LEN);
	c->nsigs = (uint16_t) k;
	for (i = 0; i < k; i++)
	{
		c->sigs[i].validator = (uint16_t) who[i];
		sign_as(who[i], BFT_MSG_PRECOMMIT, h, r, -1, false, v, c->sigs[i].sig);
	}
}

static void
test_cert_verify(void **state)
{
	bft_cert   *c = malloc(sizeof(bft_cert));
	bft_callbacks cb = {.verify = cb_verify};
	uint8_t		v[BFT_HASH_LEN] = {1, 2, 3};
	int			good[3] = {0, 2, 3};
	int			two[2] = {0, 2};
	int			dup[3] = {0, 2, 2};
	int			unsorted[3] = {2, 0, 3};
	int			unknown[3] = {0, 2, 9};

	(void) state;
	make_valset(4);
	make_cert(c, 5, 1, v, good, 3);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_OK);
	c->value[0] ^= 1;
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_ERR_SIG);
	make_cert(c, 5, 1, v, good, 3);
	c->round = 2;
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_ERR_SIG);
	make_cert(c, 5, 1, v, two, 2);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_ERR_QUORUM);
	make_cert(c, 5, 1, v, dup, 3);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_ERR_SIGNER);
	make_cert(c, 5, 1, v, unsorted, 3);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_ERR_SIGNER);
	make_cert(c, 5, 1, v, unknown, 3);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_ERR_SIGNER);
	/* weighted: validator 0 alone holds > 2/3 */
	g_vs.v[0].power = 10;
	make_cert(c, 5, 1, v, good, 1);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, c, &cb), BFT_OK);
	/* another chain's signatures do not count */
	{
		uint8_t		other[BFT_HASH_LEN] = {'o'};

		assert_int_equal(bft_cert_verify(&g_vs, other, c, &cb), BFT_ERR_SIG);
	}
	free(c);
}

/* After restart with a persisted prevote the node re-sends it and never signs another. */
static void
test_restart_no_double_sign(void **state)
{
	ut			u;
	uint8_t		pv[16],
				pw[16],
				v[BFT_HASH_LEN],
				w[BFT_HASH_LEN],
				got[BFT_HASH_LEN];
	uint32_t	lv,
				lw;
	bft_persist ps;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(1, 'w', true, pw, &lw, w);
	propose_as(&u, 1, 1, 0, -1, pv, lv, v, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), 1);
	assert_int_equal(u.ctx.npersist, 1);
	assert_int_equal(u.ctx.last.last_type, BFT_MSG_PREVOTE);
	ps = u.ctx.last;
	ut_teardown(&u);

	/* crash: all in-memory state is gone, only ps survives */
	ut_setup(&u, 4, 0, &ps);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, got), 1);
	assert_memory_equal(got, v, BFT_HASH_LEN);
	/* an equivocating proposer now shows w for the same round: no new prevote */
	propose_as(&u, 1, 1, 0, -1, pw, lw, w, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), -1);
	fire(&u, BFT_TIMER_PROPOSE, 1, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), -1);
	ut_teardown(&u);

	/* persist failure: nothing is signed or sent */
	ut_setup(&u, 4, 0, NULL);
	u.ctx.fail_persist = true;
	propose_as(&u, 1, 1, 0, -1, pv, lv, v, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), -1);
	assert_true(bft_get_stats(u.node)->sign_refused >= 1);
	ut_teardown(&u);
}

/* Block requests the node made to peer in its last step. */
static int
requests_to(const ut *u, uint32_t peer)
{
	uint32_t	i;
	int			k = 0;

	for (i = 0; i < u->out->nmsgs; i++)
		if (u->out->buf[u->out->msgs[i].off + 1] == BFT_MSG_BLOCK_REQ && u->out->msgs[i].to == peer)
			k++;
	return k;
}

/*
 * A liar claiming a far height every millisecond must not use up the
 * requests meant for honest peers ahead (one limit for all peers let it
 * take every one of them).
 */
static void
test_catchup_flood_keeps_honest_requests(void **state)
{
	ut			u;
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	int			honest = 0,
				liar = 0;
	uint64_t	t;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	for (t = 1; t <= 20000; t++)
	{
		memset(m, 0, sizeof(*m));
		m->type = BFT_MSG_STATUS;
		m->u.status.height = UINT64_MAX;
		m->u.status.validator = 3;
		feed_at(&u, 3, m, t);
		liar += requests_to(&u, 3);
		honest += requests_to(&u, 1) + requests_to(&u, 2);
		if (t % 1000 == 500)
		{
			int			p;

			for (p = 1; p <= 2; p++)
			{
				m->u.status.height = 5;
				m->u.status.validator = (uint16_t) p;
				feed_at(&u, (uint32_t) p, m, t);
				liar += requests_to(&u, 3);
				honest += requests_to(&u, 1) + requests_to(&u, 2);
			}
		}
	}
	assert_true(liar > 0);
	assert_int_equal(honest, 40);	/* every honest claim asked about */
	free(m);
	ut_teardown(&u);
}

static void
test_catchup_verifies_cert(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	int			good[3] = {1, 2, 3};
	int			two[2] = {1, 2};

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	/* a peer two heights ahead: we ask for our height */
	m->type = BFT_MSG_STATUS;
	m->u.status.height = 3;
	feed(&u, 7, m);
	assert_int_equal(u.out->nmsgs, 1);
	assert_int_equal(u.out->msgs[0].to, 7);
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	make_cert(&m->u.resp.cert, 1, 0, v, two, 2);	/* no quorum */
	feed(&u, 7, m);
	assert_false(u.out->has_commit);
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	m->u.resp.payload = (const uint8_t *) "Vbogus";
	m->u.resp.payload_len = 6;		/* payload does not hash to value */
	feed(&u, 7, m);
	assert_false(u.out->has_commit);
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	/* peer 7 sent a bad answer for height 1: its next waits half a gossip period */
	feed(&u, 7, m);
	assert_false(u.out->has_commit);
	feed_at(&u, 7, m, 1000);
	assert_true(u.out->has_commit);
	assert_int_equal(u.out->commit.height, 1);
	assert_int_equal(bft_height(u.node), 2);
	assert_int_equal(bft_get_stats(u.node)->catchup_commits, 1);

	/* serving: a lagging peer gets block 1 with its certificate */
	u.ctx.have_block1 = true;
	memcpy(u.ctx.block1, pv, lv);
	u.ctx.block1_len = lv;
	make_cert(&u.ctx.cert1, 1, 0, v, good, 3);
	m->type = BFT_MSG_BLOCK_REQ;
	m->u.req.height = 1;
	feed(&u, 9, m);
	assert_int_equal(u.out->nmsgs, 1);
	assert_int_equal(bft_decode(u.out->buf, u.out->msgs[0].len, m), BFT_OK);
	assert_int_equal(m->type, BFT_MSG_BLOCK_RESP);
	assert_int_equal(bft_cert_verify(&g_vs, g_chain, &m->u.resp.cert,
									 &(bft_callbacks) {.verify = cb_verify}), BFT_OK);
	free(m);
	ut_teardown(&u);
}

/*
 * Block answers nobody can tell from honest ones until their quorum of
 * signatures is checked: after a peer's certificate failed, its answers
 * for that height wait half a gossip period, whatever it sends, and other
 * peers are not held up by it.
 */
static void
test_block_answers_checked_once_per_period(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	int			good[3] = {1, 2, 3};
	uint64_t	before;
	int			i;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	m->u.resp.cert.sigs[2].sig[0] ^= 1;	/* the last signature forged */
	before = bft_get_stats(u.node)->verifies;
	for (i = 0; i < 50; i++)
		feed_at(&u, 7, m, 10 + i);
	assert_false(u.out->has_commit);
	/* one answer's quorum counted, not fifty */
	assert_int_equal(bft_get_stats(u.node)->verifies - before, 3);
	feed_at(&u, 7, m, 10 + 100);	/* half a gossip period later: checked again */
	assert_int_equal(bft_get_stats(u.node)->verifies - before, 6);
	/* another peer's genuine answer is checked at once */
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	feed_at(&u, 8, m, 10 + 101);
	assert_true(u.out->has_commit);
	assert_int_equal(bft_height(u.node), 2);
	free(m);
	ut_teardown(&u);
}

/* A change decided in block 1 becomes active at height 1 + BFT_VALSET_DELAY. */
static void
test_valset_change(void **state)
{
	ut			u;
	bft_event	ev;
	uint8_t		pl[16],
				val[BFT_HASH_LEN];
	uint32_t	len;
	int			h;

	(void) state;
	ut_setup(&u, 1, 0, NULL);
	u.ctx.change_at_1 = true;
	make_valset(2);
	u.ctx.change_to = g_vs;
	for (h = 1; h <= 3; h++)
	{
		payload_for((uint64_t) h, 'a', true, pl, &len, val);
		memset(&ev, 0, sizeof(ev));
		ev.kind = BFT_EV_BLOCK;
		ev.u.block.height = (uint64_t) h;
		memcpy(ev.u.block.value, val, BFT_HASH_LEN);
		ev.u.block.payload = pl;
		ev.u.block.len = len;
		bft_step(u.node, &ev, u.out);
		if (h < 3)
		{
			assert_true(u.out->has_commit);
			assert_int_equal(bft_current_valset(u.node)->n, h + 1 < 3 ? 1 : 2);
		}
		else
		{
			/* height 3 needs both validators: no commit alone */
			assert_false(u.out->has_commit);
			assert_int_equal(bft_current_valset(u.node)->n, 2);
		}
	}
	ut_teardown(&u);
}

/* Messages of height + 1 are kept and count once we get there. */
static void
test_future_height_buffered(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN],
				p2[16],
				v2[BFT_HASH_LEN];
	uint32_t	lv,
				l2;
	int			good[3] = {1, 2, 3};
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(2, 'v', true, p2, &l2, v2);
	/* proposer of (2,0) is 2 */
	propose_as(&u, 2, 2, 0, -1, p2, l2, v2, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), -1);
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	feed(&u, 7, m);
	assert_true(u.out->has_commit);
	/* entering height 2 replays the buffered proposal: we prevote it */
	{
		uint32_t	i;
		bool		seen = false;

		for (i = 0; i < u.out->nmsgs; i++)
		{
			assert_int_equal(bft_decode(u.out->buf + u.out->msgs[i].off, u.out->msgs[i].len, m), BFT_OK);
			if (m->type == BFT_MSG_PREVOTE && m->u.vote.height == 2 && !m->u.vote.is_nil)
				seen = true;
		}
		assert_true(seen);
	}
	free(m);
	ut_teardown(&u);
}

/* True if the last output holds a BLOCK_REQ. */
static bool
out_has_block_req(ut *u)
{
	uint32_t	i;
	bft_msg    *m = malloc(sizeof(bft_msg));
	bool		seen = false;

	for (i = 0; i < u->out->nmsgs; i++)
	{
		assert_int_equal(bft_decode(u->out->buf + u->out->msgs[i].off,
									u->out->msgs[i].len, m), BFT_OK);
		if (m->type == BFT_MSG_BLOCK_REQ)
			seen = true;
	}
	free(m);
	return seen;
}

/*
 * The proposer signs the value, not the payload.  A relay's copy of an
 * honest proposal with another payload is not the proposer's proposal: it
 * must not take the round's place, or the genuine copy would be ignored,
 * the node would prevote nil, miss the lock and find no payload to decide
 * when 2f+1 precommit the genuine value.
 */
static void
test_tampered_payload_copy(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN],
				got[BFT_HASH_LEN];
	uint8_t		junk[10] = {'V', 'j', 'u', 'n', 'k'};
	uint32_t	lv;
	uint64_t	rejected;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	rejected = bft_get_stats(u.node)->rejected;
	propose_as(&u, 1, 1, 0, -1, junk, sizeof(junk), v, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), -1);
	assert_int_equal(bft_get_stats(u.node)->rejected, rejected + 1);
	/* the genuine copy, a moment later */
	propose_as(&u, 1, 1, 0, -1, pv, lv, v, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, got), 1);
	assert_memory_equal(got, v, BFT_HASH_LEN);
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 0, NULL), 1);
	assert_int_equal(u.ctx.last.locked_round, 0);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, v);
	assert_true(u.out->has_commit);
	assert_memory_equal(u.out->commit.value, v, BFT_HASH_LEN);
	assert_int_equal(u.out->commit.payload_len, lv);
	assert_memory_equal(u.out->commit.payload, pv, lv);
	ut_teardown(&u);
}

/*
 * The POL is not signed either.  A copy of a re-proposal with its POL
 * stripped may be the one kept; the genuine copy that follows must still
 * prove the POL round and unlock the node, and one with a POL short of a
 * quorum must not.
 */
static void
test_stripped_pol_copy(void **state)
{
	ut			u;
	uint8_t		pv[16],
				pw[16],
				v[BFT_HASH_LEN],
				w[BFT_HASH_LEN],
				got[BFT_HASH_LEN];
	uint32_t	lv,
				lw;
	int			pol[3] = {1, 2, 3};
	int			r;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(1, 'w', true, pw, &lw, w);
	/* round 0: lock on v */
	propose_as(&u, 1, 1, 0, -1, pv, lv, v, NULL, 0);
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 0, NULL), 1);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, NULL);
	fire(&u, BFT_TIMER_PRECOMMIT, 1, 0);
	/* rounds 1..3 fail for us (we missed round 1's polka for w) */
	for (r = 1; r <= 3; r++)
	{
		fire(&u, BFT_TIMER_PROPOSE, 1, (uint32_t) r);
		vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, (uint32_t) r, NULL);
		vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, (uint32_t) r, NULL);
		vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, (uint32_t) r, NULL);
	}
	assert_int_equal(bft_round(u.node), 4);
	/* round 4 (proposer 1) re-proposes w with the POL of round 1: stripped */
	propose_as(&u, 1, 1, 4, 1, pw, lw, w, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 4, NULL), -1);
	/* a POL short of a quorum proves nothing */
	propose_as(&u, 1, 1, 4, 1, pw, lw, w, pol, 2);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 4, NULL), -1);
	/* the genuine copy brings the POL: locked round 0 < 1, prevote w */
	propose_as(&u, 1, 1, 4, 1, pw, lw, w, pol, 3);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 4, got), 1);
	assert_memory_equal(got, w, BFT_HASH_LEN);
	ut_teardown(&u);
}

/*
 * Whether a payload is valid may depend on the caller's state when it
 * came (consensus.c: a batch not received yet).  2f+1 precommits for a
 * value whose only copy here was judged invalid make the node fetch the
 * block, which catch-up judges again, instead of waiting for nothing.
 */
static void
test_precommit_quorum_fetches_block_judged_invalid(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;
	int			good[3] = {1, 2, 3};
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	u.ctx.judge_invalid = true;
	propose_as(&u, 1, 1, 0, -1, pv, lv, v, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), 0);
	u.ctx.judge_invalid = false;
	vote_as(&u, 1, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 3, BFT_MSG_PREVOTE, 1, 0, v);
	vote_as(&u, 1, BFT_MSG_PRECOMMIT, 1, 0, v);
	vote_as(&u, 2, BFT_MSG_PRECOMMIT, 1, 0, v);
	assert_false(out_has_block_req(&u));
	vote_as(&u, 3, BFT_MSG_PRECOMMIT, 1, 0, v);
	assert_false(u.out->has_commit);
	assert_true(out_has_block_req(&u));
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	feed(&u, 7, m);
	assert_true(u.out->has_commit);
	assert_memory_equal(u.out->commit.value, v, BFT_HASH_LEN);
	free(m);
	ut_teardown(&u);
}

/*
 * A durable persist callback can keep the record of height 2 while the
 * commit of height 1 is lost in a crash.  The node restarts at height 1;
 * when it decides height 1 again it must resume height 2 from that record,
 * lock included, and prevote nil on a fresh proposal of another value.
 */
static void
test_lock_kept_after_restart_behind(void **state)
{
	ut			u;
	uint8_t		pv[16],
				v[BFT_HASH_LEN],
				p2[16],
				v2[BFT_HASH_LEN],
				q2[16],
				w2[BFT_HASH_LEN];
	uint32_t	lv,
				l2,
				lq;
	int			good[3] = {1, 2, 3};
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	bft_persist ps;

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(1, 'v', true, pv, &lv, v);
	payload_for(2, 'v', true, p2, &l2, v2);
	payload_for(2, 'w', true, q2, &lq, w2);
	/* height 2 arrives early and is buffered: proposal and two prevotes */
	propose_as(&u, 2, 2, 0, -1, p2, l2, v2, NULL, 0);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 2, 0, v2);
	vote_as(&u, 3, BFT_MSG_PREVOTE, 2, 0, v2);
	/* deciding height 1 we prevote, lock on and precommit v2 in one step */
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	feed(&u, 7, m);
	assert_true(u.out->has_commit);
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 0, NULL), 1);
	assert_int_equal(u.ctx.last.height, 2);
	assert_int_equal(u.ctx.last.locked_round, 0);
	ps = u.ctx.last;			/* durable at once; the commit is lost */
	ut_teardown(&u);

	ut_setup(&u, 4, 0, &ps);
	assert_int_equal(bft_height(u.node), 1);
	feed(&u, 7, m);				/* height 1 decided again, in the core */
	assert_true(u.out->has_commit);
	assert_int_equal(bft_height(u.node), 2);
	/* the record's votes are sent again, as after any restart */
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 0, NULL), 1);
	/* round 0 ends; round 1 (proposer 3) offers w2 fresh: locked, so nil */
	fire(&u, BFT_TIMER_PRECOMMIT, 2, 0);
	assert_int_equal(bft_round(u.node), 1);
	propose_as(&u, 3, 2, 1, -1, q2, lq, w2, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 1, NULL), 0);
	assert_int_equal(u.ctx.last.locked_round, 0);
	assert_memory_equal(u.ctx.last.locked_value, v2, BFT_HASH_LEN);
	free(m);
	ut_teardown(&u);
}

/* Enters height 2 by a certificate for block 1. */
static void
decide_height_1(ut *u)
{
	uint8_t		pv[16],
				v[BFT_HASH_LEN];
	uint32_t	lv;
	int			good[3] = {1, 2, 3};
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	payload_for(1, 'v', true, pv, &lv, v);
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.payload = pv;
	m->u.resp.payload_len = lv;
	make_cert(&m->u.resp.cert, 1, 0, v, good, 3);
	feed(u, 7, m);
	assert_true(u->out->has_commit);
	free(m);
}

/*
 * Next-height votes are buffered one per validator and type.  Forgeries
 * under every index (junk signatures, round UINT32_MAX) must not keep the
 * genuine votes out: with them, the buffered polka makes us precommit as
 * soon as the proposal comes.
 */
static void
test_future_votes_not_crowded_out(void **state)
{
	ut			u;
	uint8_t		p2[16],
				v2[BFT_HASH_LEN];
	uint32_t	l2;
	int			i;
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(2, 'v', true, p2, &l2, v2);
	for (i = 1; i <= 3; i++)
	{
		memset(m, 0, sizeof(*m));
		m->type = BFT_MSG_PREVOTE;
		m->u.vote.type = BFT_MSG_PREVOTE;
		m->u.vote.height = 2;
		m->u.vote.round = UINT32_MAX;
		m->u.vote.validator = (uint16_t) i;
		m->u.vote.is_nil = true;	/* and a junk signature */
		feed(&u, 9, m);
	}
	vote_as(&u, 1, BFT_MSG_PREVOTE, 2, 0, v2);
	vote_as(&u, 2, BFT_MSG_PREVOTE, 2, 0, v2);
	vote_as(&u, 3, BFT_MSG_PREVOTE, 2, 0, v2);
	decide_height_1(&u);
	propose_as(&u, 2, 2, 0, -1, p2, l2, v2, NULL, 0);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, NULL), 1);
	assert_int_equal(out_vote(&u, BFT_MSG_PRECOMMIT, 0, NULL), 1);
	free(m);
	ut_teardown(&u);
}

/*
 * Likewise the one buffered next-height proposal: neither a forgery for
 * its round nor a genuine one with its payload swapped may keep the
 * genuine proposal out, which we prevote on entering height 2.
 */
static void
test_future_proposal_not_crowded_out(void **state)
{
	ut			u;
	uint8_t		p2[16],
				v2[BFT_HASH_LEN],
				got[BFT_HASH_LEN];
	uint8_t		junk[10] = {'V', 'j', 'u', 'n', 'k'};
	uint32_t	l2;
	bft_msg    *m = calloc(1, sizeof(bft_msg));

	(void) state;
	ut_setup(&u, 4, 0, NULL);
	payload_for(2, 'v', true, p2, &l2, v2);
	make_proposal(m, 2, 2, 0, -1, p2, l2, v2, NULL, 0);
	m->u.proposal.sig[0] ^= 1;
	feed(&u, 9, m);
	make_proposal(m, 2, 2, 0, -1, junk, sizeof(junk), v2, NULL, 0);
	feed(&u, 9, m);
	propose_as(&u, 2, 2, 0, -1, p2, l2, v2, NULL, 0);
	decide_height_1(&u);
	assert_int_equal(out_vote(&u, BFT_MSG_PREVOTE, 0, got), 1);
	assert_memory_equal(got, v2, BFT_HASH_LEN);
	free(m);
	ut_teardown(&u);
}

/* ------------------------------------------------------------------ codec */

static size_t
enc(const bft_msg *m, uint8_t *buf)
{
	size_t		len;

	assert_int_equal(bft_encode(m, buf, BFT_MAX_MSG, &len), BFT_OK);
	return len;
}

static void
test_wire_roundtrip(void **state)
{
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	bft_msg    *d = calloc(1, sizeof(bft_msg));
	uint8_t    *buf = malloc(BFT_MAX_MSG);
	uint8_t    *buf2 = malloc(BFT_MAX_MSG);
	uint8_t		payload[BFT_MAX_PAYLOAD];
	size_t		len,
				len2;
	int			t;

	(void) state;
	memset(payload, 0xab, sizeof(payload));
	for (t = BFT_MSG_PROPOSAL; t <= BFT_MSG_BLOCK_RESP; t++)
	{
		memset(m, 0, sizeof(*m));
		m->type = (uint8_t) t;
		switch (t)
		{
			case BFT_MSG_PROPOSAL:
				m->u.proposal.height = UINT64_MAX;
				m->u.proposal.round = 9;
				m->u.proposal.valid_round = 4;
				m->u.proposal.proposer = 63;
				m->u.proposal.payload = payload;
				m->u.proposal.payload_len = BFT_MAX_PAYLOAD;
				m->u.proposal.npol = BFT_MAX_VALIDATORS;
				for (len = 0; len < BFT_MAX_VALIDATORS; len++)
					m->u.proposal.pol[len].validator = (uint16_t) len;
				break;
			case BFT_MSG_PREVOTE:
			case BFT_MSG_PRECOMMIT:
				m->u.vote.type = (uint8_t) t;
				m->u.vote.height = 77;
				m->u.vote.round = 3;
				m->u.vote.validator = 5;
				m->u.vote.value[0] = 1;
				m->u.vote.sig[63] = 9;
				break;
			case BFT_MSG_STATUS:
				m->u.status.height = 12;
				m->u.status.round = 2;
				break;
			case BFT_MSG_BLOCK_REQ:
				m->u.req.height = 4;
				break;
			case BFT_MSG_BLOCK_RESP:
				m->u.resp.payload = payload;
				m->u.resp.payload_len = 100;
				m->u.resp.cert.height = 4;
				m->u.resp.cert.nsigs = 3;
				m->u.resp.cert.sigs[1].validator = 1;
				m->u.resp.cert.sigs[2].validator = 2;
				break;
		}
		len = enc(m, buf);
		assert_true(len <= BFT_MAX_MSG);
		assert_int_equal(bft_decode(buf, len, d), BFT_OK);
		len2 = enc(d, buf2);
		assert_int_equal(len, len2);
		assert_memory_equal(buf, buf2, len);
		/* every strict prefix is rejected */
		for (len2 = 0; len2 < len; len2 += (len2 < 200 ? 1 : 97))
			assert_int_not_equal(bft_decode(buf, len2, d), BFT_OK);
	}
	/* nil vote is shorter: no value on the wire */
	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_PREVOTE;
	m->u.vote.is_nil = true;
	len = enc(m, buf);
	assert_int_equal(len, BFT_WIRE_HDR + 8 + 4 + 2 + 1 + 64);
	free(m);
	free(d);
	free(buf);
	free(buf2);
}

static void
test_wire_rejects(void **state)
{
	bft_msg    *m = calloc(1, sizeof(bft_msg));
	uint8_t    *buf = malloc(BFT_MAX_MSG + 16);
	size_t		len;

	(void) state;
	m->type = BFT_MSG_PREVOTE;
	m->u.vote.value[0] = 1;
	len = enc(m, buf);
	assert_int_equal(bft_decode(buf, len, m), BFT_OK);

	/* trailing byte after the framed message */
	buf[len] = 0;
	assert_int_equal(bft_decode(buf, len + 1, m), BFT_ERR_TRAILING);
	/* trailing byte inside the body (length field says longer) */
	buf[5]++;
	assert_int_equal(bft_decode(buf, len + 1, m), BFT_ERR_TRAILING);
	buf[5]--;
	/* unknown version and type */
	buf[0] = 2;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_VERSION);
	buf[0] = 0;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_VERSION);
	buf[0] = 1;
	buf[1] = 0;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_TYPE);
	buf[1] = 7;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_TYPE);
	buf[1] = BFT_MSG_PREVOTE;
	/* non-canonical boolean */
	buf[BFT_WIRE_HDR + 14] = 2;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_FIELD);
	buf[BFT_WIRE_HDR + 14] = 0;
	/* validator index beyond the maximum */
	buf[BFT_WIRE_HDR + 12] = 0x01;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_SIGNER);
	buf[BFT_WIRE_HDR + 12] = 0;
	/* body length beyond any message */
	buf[2] = 0x7f;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_OVERSIZE);
	buf[2] = 0;
	/* truncated header */
	assert_int_equal(bft_decode(buf, 3, m), BFT_ERR_TRUNCATED);
	assert_int_equal(bft_decode(NULL, 0, m), BFT_ERR_TRUNCATED);

	/* oversize payload length field in a proposal */
	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_PROPOSAL;
	m->u.proposal.valid_round = -1;
	len = enc(m, buf);
	assert_int_equal(bft_decode(buf, len, m), BFT_OK);
	/* payload_len at hdr + 8 + 4 + 4 + 2 + 32 */
	buf[BFT_WIRE_HDR + 50] = 0xff;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_OVERSIZE);
	buf[BFT_WIRE_HDR + 50] = 0;
	/* valid_round must be < round */
	buf[BFT_WIRE_HDR + 12 + 3] = 0;
	buf[BFT_WIRE_HDR + 12] = 0;
	buf[BFT_WIRE_HDR + 13] = 0;
	buf[BFT_WIRE_HDR + 14] = 0;
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_FIELD);
	/* encoder refuses oversize too */
	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_PROPOSAL;
	m->u.proposal.payload_len = BFT_MAX_PAYLOAD + 1;
	assert_int_equal(bft_encode(m, buf, BFT_MAX_MSG, &len), BFT_ERR_OVERSIZE);
	/* unsorted signer list in a block response */
	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_BLOCK_RESP;
	m->u.resp.cert.nsigs = 2;
	m->u.resp.cert.sigs[0].validator = 3;
	m->u.resp.cert.sigs[1].validator = 3;
	len = enc(m, buf);
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_SIGNER);
	/* empty certificate */
	memset(m, 0, sizeof(*m));
	m->type = BFT_MSG_BLOCK_RESP;
	len = enc(m, buf);
	assert_int_equal(bft_decode(buf, len, m), BFT_ERR_FIELD);
	free(m);
	free(buf);
}

static void
test_ed25519(void **state)
{
	uint8_t		seed[32] = {1, 2, 3},
				pub[32],
				sig[64],
				msg[BFT_SIGN_BYTES_LEN] = {0};
	bft_ed25519_key *k = bft_ed25519_new(seed);

	(void) state;
	assert_non_null(k);
	bft_ed25519_pubkey(k, pub);
	assert_int_equal(bft_ed25519_sign(k, msg, sizeof(msg), sig), 0);
	assert_true(bft_ed25519_verify(NULL, pub, msg, sizeof(msg), sig));
	msg[3] = 1;
	assert_false(bft_ed25519_verify(NULL, pub, msg, sizeof(msg), sig));
	msg[3] = 0;
	sig[0] ^= 1;
	assert_false(bft_ed25519_verify(NULL, pub, msg, sizeof(msg), sig));
	memset(pub, 0xff, sizeof(pub));
	assert_false(bft_ed25519_verify(NULL, pub, msg, sizeof(msg), sig));
	bft_ed25519_free(k);
}

/*
 * Key objects are cached, contexts are not: OpenSSL 3.0 keeps the first
 * key of a reused verify context, which once made every check use one
 * member's key.  A signature must verify under its own key only, whatever
 * was checked before, also once the cache has turned over.
 */
static void
test_ed25519_many_keys(void **state)
{
	enum
	{
		NK = 40
	};
	uint8_t		pub[NK][32],
				sig[NK][64],
				msg[BFT_SIGN_BYTES_LEN] = {9};
	int			i,
				round;

	(void) state;
	for (i = 0; i < NK; i++)
	{
		uint8_t		seed[32] = {(uint8_t) i, 7};
		bft_ed25519_key *k = bft_ed25519_new(seed);

		assert_non_null(k);
		bft_ed25519_pubkey(k, pub[i]);
		assert_int_equal(bft_ed25519_sign(k, msg, sizeof(msg), sig[i]), 0);
		bft_ed25519_free(k);
	}
	for (round = 0; round < 2; round++)
		for (i = 0; i < NK; i++)
		{
			assert_true(bft_ed25519_verify(NULL, pub[i], msg, sizeof(msg), sig[i]));
			assert_false(bft_ed25519_verify(NULL, pub[(i + 1) % NK], msg, sizeof(msg), sig[i]));
			assert_false(bft_ed25519_verify(NULL, pub[i], msg, sizeof(msg), sig[(i + 3) % NK]));
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_node_commits_at_once),
		cmocka_unit_test(test_block_answers_checked_once_per_period),
		cmocka_unit_test(test_quorum_sizes),
		cmocka_unit_test(test_locking),
		cmocka_unit_test(test_locked_value_and_stale_pol),
		cmocka_unit_test(test_invalid_proposal_gets_nil),
		cmocka_unit_test(test_wrong_proposer_and_bad_sig_rejected),
		cmocka_unit_test(test_evidence),
		cmocka_unit_test(test_parked_votes),
		cmocka_unit_test(test_parked_forged_copy),
		cmocka_unit_test(test_parked_then_slot_filled),
		cmocka_unit_test(test_nil_precommit_quorum),
		cmocka_unit_test(test_cert_verify),
		cmocka_unit_test(test_restart_no_double_sign),
		cmocka_unit_test(test_catchup_verifies_cert),
		cmocka_unit_test(test_valset_change),
		cmocka_unit_test(test_future_height_buffered),
		cmocka_unit_test(test_tampered_payload_copy),
		cmocka_unit_test(test_stripped_pol_copy),
		cmocka_unit_test(test_precommit_quorum_fetches_block_judged_invalid),
		cmocka_unit_test(test_lock_kept_after_restart_behind),
		cmocka_unit_test(test_future_votes_not_crowded_out),
		cmocka_unit_test(test_future_proposal_not_crowded_out),
		cmocka_unit_test(test_wire_roundtrip),
		cmocka_unit_test(test_catchup_flood_keeps_honest_requests),
		cmocka_unit_test(test_wire_rejects),
		cmocka_unit_test(test_ed25519),
		cmocka_unit_test(test_ed25519_many_keys),
	};

	return cmocka_run_group_tests_name("bft", tests, NULL, NULL);
}
