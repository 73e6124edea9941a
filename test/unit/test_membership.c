/*
 * test_membership.c
 *		cmocka tests for the membership vote counting (src/membership_core.c).
 *
 * Every honest node must derive the same validator sets from the same
 * decided blocks, also after a restart.  A restart is modelled by "db": it
 * applies what membership.c writes after each block (new pending votes,
 * decided changes, votes no longer pending) with the semantics of its SQL,
 * and a restarted node is rebuilt from it the way ll_members_load reads it
 * (decided members first, then local requests, pending votes in another
 * order than they were recorded).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bft.h"
#include "ll_wire.h"
#include "membership_core.h"

/* ------------------------------------------------------------------ */
/* keys, members, blocks                                               */

static void
key(uint8_t *pub, int id)
{
	memset(pub, 0, 32);
	pub[0] = (uint8_t) (id >> 8);
	pub[1] = (uint8_t) id;
	pub[31] = 0xAA;
}

static LLMembership *
new_ms(void)
{
	LLMembership *ms = calloc(1, sizeof(LLMembership));

	assert_non_null(ms);
	return ms;
}

static void
put_member(LLMembership *ms, int id, const char *name, const char *tier, int64_t since,
		   int64_t until)
{
	LLMember   *m = &ms->m[ms->n++];

	memset(m, 0, sizeof(*m));
	key(m->pub, id);
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->tier, sizeof(m->tier), "%s", tier);
	snprintf(m->genesis_tier, sizeof(m->genesis_tier), "%s", tier);
	m->since = since;
	m->until = until;
}

/* Genesis members 0 .. n-1, named v0.., clearance "low". */
static LLMembership *
genesis(int n)
{
	LLMembership *ms = new_ms();
	char		name[16];
	int			i;

	for (i = 0; i < n; i++)
	{
		snprintf(name, sizeof(name), "v%d", i);
		put_member(ms, i, name, "low", 0, -1);
	}
	return ms;
}

typedef struct Tx
{
	int			voter;
	uint8_t		op;
	int			target;
	const char *name;
	const char *tier;
} Tx;

static void *
std_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static int
sign_zero(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[LL_SIG_LEN])
{
	(void) ctx;
	(void) msg;
	(void) len;
	memset(sig, 0, LL_SIG_LEN);
	return 0;
}

static bool
verify_always(void *ctx, const uint8_t pub[LL_PUBKEY_LEN], const uint8_t *msg,
			  size_t len, const uint8_t sig[LL_SIG_LEN])
{
	(void) ctx;
	(void) pub;
	(void) msg;
	(void) len;
	(void) sig;
	return true;
}

#define MAX_BATCHES 16

/* A decided block: one batch per voter, in the order voters first appear. */
typedef struct Block
{
	int			n;
	ll_buf		out[MAX_BATCHES];
	ll_batch	b[MAX_BATCHES];
} Block;

static void
block_build(Block *blk, const Tx *txs, int ntx)
{
	static const uint8_t chain[32];
	int			voters[MAX_BATCHES];
	int			i,
				k;

	memset(blk, 0, sizeof(*blk));
	for (i = 0; i < ntx; i++)
	{
		for (k = 0; k < blk->n && voters[k] != txs[i].voter; k++)
			;
		if (k == blk->n)
		{
			assert_true(blk->n < MAX_BATCHES);
			voters[blk->n++] = txs[i].voter;
		}
	}
	for (k = 0; k < blk->n; k++)
	{
		ll_batch_builder bb;
		ll_buf		content;
		uint8_t		origin[32],
					pub[32],
					hash[32];

		key(origin, voters[k]);
		ll_buf_init(&blk->out[k], std_realloc);
		ll_buf_init(&content, std_realloc);
		ll_batch_begin(&bb, &blk->out[k], &content, SIZE_MAX, chain, origin, 1, 0);
		for (i = 0; i < ntx; i++)
		{
			if (txs[i].voter != voters[k])
				continue;
			key(pub, txs[i].target);
			if (txs[i].op == LL_TX_ADD_MEMBER)
				ll_batch_add_member_tx(&bb, (uint64_t) i + 1, pub,
									   (ll_wire_str) {txs[i].name, strlen(txs[i].name)},
									   (ll_wire_str) {txs[i].tier, strlen(txs[i].tier)});
			else
				ll_batch_remove_member_tx(&bb, (uint64_t) i + 1, pub);
		}
		assert_int_equal(ll_batch_finish(&bb, sign_zero, NULL, hash), LL_WIRE_OK);
		free(content.data);
		assert_int_equal(ll_batch_decode(blk->out[k].data, blk->out[k].len, SIZE_MAX,
										 verify_always, NULL, &blk->b[k]), LL_WIRE_OK);
	}
}

static void
block_free(Block *blk)
{
	int			k;

	for (k = 0; k < blk->n; k++)
		free(blk->out[k].data);
}

static bool
decide(LLMembership *ms, uint64_t h, const Tx *txs, int ntx)
{
	Block		blk;
	bool		changed;

	block_build(&blk, txs, ntx);
	changed = ll_members_decide(ms, h, blk.b, blk.n);
	block_free(&blk);
	return changed;
}

/* ------------------------------------------------------------------ */
/* what membership.c persists, and a restart from it                   */

#define DB_VOTES 8192

typedef struct Db
{
	int			n;				/* ledger.peer */
	LLMember	m[2 * LL_MAX_PEERS];
	int			nv;				/* ledger.member_vote */
	LLVote		v[DB_VOTES];
	bool		settled[DB_VOTES];
} Db;

static Db *
db_from(const LLMembership *ms)
{
	Db		   *db = calloc(1, sizeof(Db));

	assert_non_null(db);
	db->n = ms->n;
	memcpy(db->m, ms->m, sizeof(LLMember) * ms->n);
	db->nv = ms->nvotes;
	memcpy(db->v, ms->votes, sizeof(LLVote) * ms->nvotes);
	return db;
}

static int
db_find(const Db *db, const uint8_t *pub)
{
	int			i;

	for (i = 0; i < db->n; i++)
		if (memcmp(db->m[i].pub, pub, 32) == 0)
			return i;
	return -1;
}

static void
db_delete(Db *db, int i)
{
	memmove(&db->m[i], &db->m[i + 1], sizeof(LLMember) * (db->n - i - 1));
	db->n--;
}

/* withdraw_clashing_request, then INSERT .. ON CONFLICT (pubkey) DO UPDATE */
static void
db_add(Db *db, const LLDecided *d)
{
	int			i;

	for (i = db->n - 1; i >= 0; i--)
		if (db->m[i].since < 0 && strcmp(db->m[i].name, d->vote.name) == 0 &&
			memcmp(db->m[i].pub, d->vote.pub, 32) != 0)
			db_delete(db, i);
	for (i = 0; i < db->n; i++)
		assert_false(strcmp(db->m[i].name, d->vote.name) == 0 &&
					 memcmp(db->m[i].pub, d->vote.pub, 32) != 0);	/* unique name */
	i = db_find(db, d->vote.pub);
	if (i < 0)
	{
		i = db->n++;
		memset(&db->m[i], 0, sizeof(LLMember));
		memcpy(db->m[i].pub, d->vote.pub, 32);
		db->m[i].since = -1;
		db->m[i].until = -1;
	}
	memcpy(db->m[i].name, d->vote.name, LL_NAME_LEN);
	memcpy(db->m[i].tier, d->vote.tier, LL_NAME_LEN);
	if (db->m[i].since < 0)
		db->m[i].since = (int64_t) d->effective;
}

static bool
vote_eq(const LLVote *a, const LLVote *b)
{
	return memcmp(a->voter, b->voter, 32) == 0 && a->op == b->op &&
		memcmp(a->pub, b->pub, 32) == 0 && strcmp(a->name, b->name) == 0 &&
		strcmp(a->tier, b->tier) == 0;
}

static void
db_persist(Db *db, const LLMembership *ms)
{
	int			i,
				j,
				hits;

	for (i = 0; i < ms->nnew; i++)
	{
		assert_true(db->nv < DB_VOTES);
		db->settled[db->nv] = false;
		db->v[db->nv++] = ms->fresh[i];
	}
	for (i = 0; i < ms->ndecided; i++)
		if (ms->decided[i].vote.op == LL_TX_ADD_MEMBER)
			db_add(db, &ms->decided[i]);
		else
			db->m[db_find(db, ms->decided[i].vote.pub)].until = (int64_t) ms->decided[i].effective;
	for (i = 0; i < ms->ndropped; i++)
	{
		for (j = 0, hits = 0; j < db->nv; j++)
			if (!db->settled[j] && vote_eq(&db->v[j], &ms->dropped[i]))
			{
				db->settled[j] = true;
				hits++;
			}
		assert_int_equal(hits, 1);	/* exactly the dropped vote's row */
	}
}

/* ll_members_load: decided first, local requests up to their share. */
static LLMembership *
db_load(const Db *db)
{
	LLMembership *ms = new_ms();
	int			i,
				local = 0;

	for (i = db->n - 1; i >= 0; i--)
		if (db->m[i].since >= 0)
			ms->m[ms->n++] = db->m[i];
	for (i = 0; i < db->n && ms->n < LL_MAX_PEERS; i++)
		if (db->m[i].since < 0 && local++ < LL_MAX_LOCAL_REQUESTS)
			ms->m[ms->n++] = db->m[i];
	for (i = db->nv - 1; i >= 0; i--)
		if (!db->settled[i])
			ms->votes[ms->nvotes++] = db->v[i];
	return ms;
}

/* ------------------------------------------------------------------ */
/* comparing two nodes                                                 */

static void
assert_same_valset(const LLMembership *a, const LLMembership *b, uint64_t h)
{
	bft_valset	va,
				vb;

	ll_valset_at(a, h, &va);
	ll_valset_at(b, h, &vb);
	assert_int_equal(va.n, vb.n);
	assert_memory_equal(va.v, vb.v, sizeof(bft_validator) * va.n);
}

static void
assert_same_state(const LLMembership *a, const LLMembership *b, uint64_t h)
{
	int			i,
				j,
				k;

	assert_int_equal(ll_members_decided_count(a), ll_members_decided_count(b));
	for (i = 0; i < a->n; i++)
	{
		if (a->m[i].since < 0)
			continue;
		k = ll_member_index(b, a->m[i].pub);
		assert_true(k >= 0);
		assert_string_equal(a->m[i].name, b->m[k].name);
		assert_string_equal(a->m[i].tier, b->m[k].tier);
		assert_int_equal(a->m[i].since, b->m[k].since);
		assert_int_equal(a->m[i].until, b->m[k].until);
	}
	assert_int_equal(a->nvotes, b->nvotes);
	for (i = 0; i < a->nvotes; i++)
	{
		for (j = 0; j < b->nvotes && !vote_eq(&a->votes[i], &b->votes[j]); j++)
			;
		assert_true(j < b->nvotes);
	}
	for (i = 0; i < 4; i++)
		assert_same_valset(a, b, h + i);
}

/*
 * Two nodes: "steady" never restarts, "restarted" is rebuilt from its db
 * after every block.  Both see the same blocks.
 */
typedef struct Pair
{
	LLMembership *steady;
	LLMembership *restarted;
	Db		   *db;
} Pair;

static Pair
pair_new(const LLMembership *start)
{
	Pair		p;

	p.steady = new_ms();
	*p.steady = *start;
	p.db = db_from(start);
	p.restarted = db_load(p.db);
	return p;
}

static bool
pair_decide(Pair *p, uint64_t h, const Tx *txs, int ntx)
{
	bool		a = decide(p->steady, h, txs, ntx);
	bool		b = decide(p->restarted, h, txs, ntx);

	assert_int_equal(a, b);
	db_persist(p->db, p->restarted);
	free(p->restarted);
	p->restarted = db_load(p->db);
	assert_same_state(p->steady, p->restarted, h + 1);
	return a;
}

static void
pair_free(Pair *p)
{
	free(p->steady);
	free(p->restarted);
	free(p->db);
}

static const LLMember *
member(const LLMembership *ms, int id)
{
	uint8_t		pub[32];
	int			i;

	key(pub, id);
	i = ll_member_index(ms, pub);
	assert_true(i >= 0);
	return &ms->m[i];
}

static int
genesis_count(const LLMembership *ms)
{
	ll_member	out[LL_MAX_PEERS];
	char	   *names[] = {"low", "high"};
	ll_wire_str tiers[] = {{"low", 3}, {"high", 4}};

	return ll_members_genesis(ms, out, tiers, 2, names);
}

#define ADD(v, t, n, tr) {v, LL_TX_ADD_MEMBER, t, n, tr}
#define DEL(v, t) {v, LL_TX_REMOVE_MEMBER, t, "", ""}
#define NTX(a) ((int) (sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------ */
/* fix 1: a decision settles only the votes of that change             */

static void
test_restart_keeps_other_votes(void **state)
{
	LLMembership *g = genesis(4);
	Pair		p = pair_new(g);
	Tx			b1[] = {DEL(0, 3), ADD(0, 3, "v3", "high"), ADD(1, 3, "v3", "high"),
	ADD(2, 3, "v3", "high")};
	Tx			b2[] = {DEL(1, 3), DEL(2, 3)};

	(void) state;
	assert_true(pair_decide(&p, 1, b1, NTX(b1)));
	assert_string_equal(member(p.restarted, 3)->tier, "high");
	/* v0's removal vote is still pending on both */
	assert_int_equal(p.restarted->nvotes, 1);
	assert_true(pair_decide(&p, 2, b2, NTX(b2)));
	assert_int_equal(member(p.restarted, 3)->until, 4);
	assert_true(ll_is_validator_at(p.restarted, member(g, 3)->pub, 3));
	assert_false(ll_is_validator_at(p.restarted, member(g, 3)->pub, 4));
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* fix 2: a removed member is never re-added                          */

static void
test_remove_and_clearance_in_one_block(void **state)
{
	LLMembership *g = genesis(4);
	Pair		p = pair_new(g);
	Tx			b1[] = {DEL(0, 3), ADD(0, 3, "v3", "high"), DEL(1, 3), ADD(1, 3, "v3", "high"),
	DEL(2, 3), ADD(2, 3, "v3", "high")};

	(void) state;
	assert_true(pair_decide(&p, 1, b1, NTX(b1)));
	assert_int_equal(member(p.steady, 3)->since, 0);
	assert_int_equal(member(p.steady, 3)->until, 3);
	assert_string_equal(member(p.steady, 3)->tier, "low");
	assert_int_equal(p.steady->ndecided, 1);
	assert_int_equal(p.steady->nvotes, 0);
	assert_int_equal(genesis_count(p.steady), 4);
	pair_free(&p);
	free(g);
}

static void
test_clearance_after_removal_is_moot(void **state)
{
	LLMembership *g = genesis(4);
	Pair		p = pair_new(g);
	Tx			b1[] = {DEL(0, 3), DEL(1, 3), DEL(2, 3)};
	/* v3 still votes at 2: for its own clearance; an in-flight vote too */
	Tx			b2[] = {ADD(3, 3, "v3", "high"), ADD(0, 3, "v3", "high")};
	Tx			b3[] = {ADD(1, 3, "v3", "high"), ADD(2, 3, "v3", "high")};
	Tx			b4[] = {ADD(0, 3, "v3", "low"), ADD(1, 3, "v3", "low"), ADD(2, 3, "v3", "low")};
	bft_valset	vs;

	(void) state;
	assert_true(pair_decide(&p, 1, b1, NTX(b1)));
	assert_false(pair_decide(&p, 2, b2, NTX(b2)));
	assert_int_equal(p.steady->nvotes, 0);
	assert_false(pair_decide(&p, 3, b3, NTX(b3)));
	assert_false(pair_decide(&p, 4, b4, NTX(b4)));
	assert_int_equal(member(p.steady, 3)->since, 0);
	assert_int_equal(member(p.steady, 3)->until, 3);
	ll_valset_at(p.steady, 5, &vs);
	assert_int_equal(vs.n, 3);
	assert_int_equal(genesis_count(p.restarted), 4);
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* fix 3: one voter cannot fill the pending votes                      */

static void
test_flood_cannot_block_removal(void **state)
{
	LLMembership *g = genesis(4);
	Pair		p = pair_new(g);
	Tx			flood[300];
	char		names[300][16];
	Tx			b2[] = {DEL(0, 3), DEL(1, 3), DEL(2, 3)};
	int			i;

	(void) state;
	for (i = 0; i < 300; i++)
	{
		snprintf(names[i], sizeof(names[i]), "x%d", i);
		flood[i] = (Tx) ADD(3, 1000 + i, names[i], "low");
	}
	assert_false(pair_decide(&p, 1, flood, NTX(flood)));
	assert_int_equal(ll_members_pending_of(p.steady, member(g, 3)->pub), LL_MAX_VOTER_VOTES);
	assert_true(pair_decide(&p, 2, b2, NTX(b2)));
	assert_int_equal(member(p.steady, 3)->until, 4);
	/* its votes go once it votes no more */
	assert_false(pair_decide(&p, 3, NULL, 0));
	assert_int_equal(p.steady->nvotes, LL_MAX_VOTER_VOTES);
	assert_false(pair_decide(&p, 4, NULL, 0));
	assert_int_equal(p.steady->nvotes, 0);
	pair_free(&p);
	free(g);
}

static void
test_voter_share_frees_up(void **state)
{
	LLMembership *g = genesis(4);
	Pair		p = pair_new(g);
	Tx			asks[LL_MAX_VOTER_VOTES + 1];
	char		names[LL_MAX_VOTER_VOTES + 1][16];
	Tx			agree[] = {ADD(1, 100, "n0", "low"), ADD(2, 100, "n0", "low")};
	Tx			again[] = {ADD(0, 100 + LL_MAX_VOTER_VOTES, "n8", "low")};
	int			i;

	(void) state;
	for (i = 0; i <= LL_MAX_VOTER_VOTES; i++)
	{
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		asks[i] = (Tx) ADD(0, 100 + i, names[i], "low");
	}
	pair_decide(&p, 1, asks, NTX(asks));
	assert_int_equal(p.steady->nvotes, LL_MAX_VOTER_VOTES);
	/* the one over the share is refused until another is settled */
	pair_decide(&p, 2, again, NTX(again));
	assert_int_equal(p.steady->nnew, 0);
	assert_true(pair_decide(&p, 3, agree, NTX(agree)));
	assert_int_equal(member(p.steady, 100)->since, 5);
	pair_decide(&p, 4, again, NTX(again));
	assert_int_equal(p.steady->nnew, 1);
	assert_int_equal(ll_members_pending_of(p.steady, member(g, 0)->pub), LL_MAX_VOTER_VOTES);
	/* votes nobody matched lapse, the last one recorded a little later */
	pair_decide(&p, LL_VOTE_TTL, NULL, 0);
	assert_int_equal(p.steady->nvotes, LL_MAX_VOTER_VOTES);
	pair_decide(&p, 1 + LL_VOTE_TTL, NULL, 0);
	assert_int_equal(p.steady->nvotes, 1);
	assert_string_equal(p.steady->votes[0].name, "n8");
	pair_decide(&p, 4 + LL_VOTE_TTL, NULL, 0);
	assert_int_equal(p.steady->nvotes, 0);
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* fix 4: the member limit counts decided members only                 */

static void
test_member_limit_ignores_local_requests(void **state)
{
	LLMembership *g = genesis(4);
	LLMembership *local;
	Tx			b1[] = {ADD(0, 200, "a", "low"), ADD(0, 201, "b", "low"), ADD(1, 200, "a", "low"),
		ADD(1, 201, "b", "low"), ADD(2, 200, "a", "low"), ADD(2, 201, "b", "low")};
	char		name[16];
	int			i;

	(void) state;
	for (i = 4; i < LL_MAX_MEMBERS - 1; i++)
	{
		snprintf(name, sizeof(name), "gone%d", i);
		put_member(g, 50 + i, name, "low", 0, 1);
	}
	local = new_ms();
	*local = *g;
	for (i = 0; i < LL_MAX_LOCAL_REQUESTS; i++)
	{
		snprintf(name, sizeof(name), "asked%d", i);
		put_member(local, 300 + i, name, "low", -1, -1);
	}
	/* one place is left: "a" takes it on both, "b" is refused on both */
	assert_true(decide(g, 5, b1, NTX(b1)));
	assert_true(decide(local, 5, b1, NTX(b1)));
	assert_same_state(g, local, 6);
	assert_int_equal(ll_members_decided_count(local), LL_MAX_MEMBERS);
	assert_true(local->n <= LL_MAX_PEERS);
	assert_int_equal(member(local, 200)->since, 7);
	assert_int_equal(ll_member_index(g, member(local, 300)->pub), -1);
	assert_int_equal(g->nvotes, 0);
	free(g);
	free(local);
}

/* a local request for the admitted key takes its decided place */
static void
test_local_request_decided(void **state)
{
	LLMembership *g = genesis(4);
	LLMembership *local;
	Pair		p;
	Tx			b1[] = {ADD(0, 200, "newco", "low"), ADD(1, 200, "newco", "low"),
	ADD(2, 200, "newco", "low")};

	(void) state;
	local = new_ms();
	*local = *g;
	put_member(local, 200, "newco_local", "low", -1, -1);
	/* another key under the admitted name: gives way in db */
	put_member(local, 201, "newco", "low", -1, -1);
	p = pair_new(local);
	assert_true(pair_decide(&p, 1, b1, NTX(b1)));
	assert_true(decide(g, 1, b1, NTX(b1)));
	assert_same_state(g, p.restarted, 2);
	assert_string_equal(member(p.restarted, 200)->name, "newco");
	assert_int_equal(ll_member_index(p.restarted, member(p.steady, 201)->pub), -1);
	pair_free(&p);
	free(local);
	free(g);
}

/* ------------------------------------------------------------------ */
/* fix 5: names stay unique among decided members                      */

static void
test_name_taken_is_refused(void **state)
{
	LLMembership *g = genesis(4);
	Pair		p = pair_new(g);
	Tx			b1[] = {ADD(0, 200, "v1", "low"), ADD(1, 200, "v1", "low"), ADD(2, 200, "v1", "low"),
		/* a clearance change must keep the name */
	ADD(0, 3, "other", "high"), ADD(1, 3, "other", "high"), ADD(2, 3, "other", "high")};

	(void) state;
	assert_false(pair_decide(&p, 1, b1, NTX(b1)));
	assert_int_equal(p.steady->n, 4);
	assert_int_equal(p.steady->nvotes, 0);
	assert_string_equal(member(p.steady, 3)->name, "v3");
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* many random blocks: a node restarted after each counts the same     */

static uint32_t rng = 12345;

static uint32_t
rnd(uint32_t n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 16) % n;
}

static void
test_random_restarts(void **state)
{
	static const char *tiers[] = {"low", "high"};
	static const char *names[] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"};
	LLMembership *g = genesis(5);
	Pair		p = pair_new(g);
	uint64_t	h;
	int			changes = 0;

	(void) state;
	for (h = 1; h <= 400; h++)
	{
		Tx			txs[12];
		int			n = (int) rnd(13),
					i;

		for (i = 0; i < n; i++)
		{
			int			target = (int) rnd(7);

			txs[i].voter = (int) rnd(6);
			txs[i].target = target;
			txs[i].op = rnd(8) == 0 ? LL_TX_REMOVE_MEMBER : LL_TX_ADD_MEMBER;
			txs[i].name = txs[i].op == LL_TX_ADD_MEMBER ?
				(target < 5 && rnd(4) != 0 ? member(g, target)->name : names[rnd(2)]) : "";
			txs[i].tier = txs[i].op == LL_TX_ADD_MEMBER ? tiers[rnd(2)] : "";
		}
		changes += pair_decide(&p, h, txs, n);
	}
	assert_true(changes >= 5);
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* names no honest member sends are ignored alike everywhere          */

static void
test_unsendable_names_ignored(void **state)
{
	const char *bad[] = {"\xff\xfe", "caf\xc3", "\xc0\xafx", "\xed\xa0\x80",
		"0123456789012345678901234567890123456789012345678901234567890123"};
	int			i;

	(void) state;
	for (i = 0; i < NTX(bad); i++)
	{
		LLMembership *g = genesis(4);
		Pair		p = pair_new(g);
		Tx			name[] = {ADD(0, 9, bad[i], "low"), ADD(1, 9, bad[i], "low"), ADD(2, 9, bad[i], "low")};
		Tx			tier[] = {ADD(0, 9, "ok", bad[i]), ADD(1, 9, "ok", bad[i]), ADD(2, 9, "ok", bad[i])};

		assert_false(pair_decide(&p, 1, name, NTX(name)));
		assert_false(pair_decide(&p, 2, tier, NTX(tier)));
		assert_int_equal(p.steady->nvotes, 0);
		assert_int_equal(ll_members_decided_count(p.steady), 4);
		pair_free(&p);
		free(g);
	}
	{
		/* 63 bytes and multi-byte UTF-8 are names */
		LLMembership *g = genesis(4);
		Pair		p = pair_new(g);
		const char *n63 = "012345678901234567890123456789012345678901234567890123456789\xc3\xa9";
		Tx			ok[] = {ADD(0, 9, n63, "low"), ADD(1, 9, n63, "low"), ADD(2, 9, n63, "low")};

		assert_true(pair_decide(&p, 1, ok, NTX(ok)));
		assert_string_equal(member(p.steady, 9)->name, n63);
		pair_free(&p);
		free(g);
	}
}

/* ------------------------------------------------------------------ */
/* a change pending when the quorum falls is enacted then              */

static void
test_quorum_drop_enacts_pending(void **state)
{
	LLMembership *g = genesis(5);	/* quorum 4 */
	Pair		p = pair_new(g);
	Tx			add[] = {ADD(0, 9, "x", "low"), ADD(1, 9, "x", "low"), ADD(2, 9, "x", "low")};
	Tx			del[] = {DEL(0, 4), DEL(1, 4), DEL(2, 4), DEL(3, 4)};

	(void) state;
	assert_false(pair_decide(&p, 1, add, NTX(add)));
	assert_true(pair_decide(&p, 2, del, NTX(del)));
	assert_int_equal(member(p.steady, 4)->until, 4);
	assert_false(pair_decide(&p, 3, NULL, 0));	/* v4 still counts at 3 */
	assert_int_equal(p.steady->nvotes, 3);
	assert_true(pair_decide(&p, 4, NULL, 0));	/* 4 validators: quorum 3 */
	assert_int_equal(member(p.steady, 9)->since, 6);
	assert_int_equal(p.steady->nvotes, 0);
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* the last member stays                                              */

static void
test_last_member_not_removed(void **state)
{
	LLMembership *g = genesis(2);	/* quorum 2 */
	Pair		p = pair_new(g);
	Tx			del[] = {DEL(0, 0), DEL(1, 0), DEL(0, 1), DEL(1, 1)};

	(void) state;
	assert_true(pair_decide(&p, 1, del, NTX(del)));
	assert_int_equal(member(p.steady, 0)->until, 3);
	assert_int_equal(member(p.steady, 1)->until, -1);
	assert_int_equal(p.steady->nvotes, 0);
	pair_free(&p);
	free(g);
}

/* ------------------------------------------------------------------ */
/* fix 7: a wire string is not NUL-terminated                         */

static void
test_vote_from_unterminated_wire(void **state)
{
	uint8_t		voter[32],
				pub[32];
	char	   *longname = malloc(100);
	char	   *shortname = malloc(5);
	char	   *tier = malloc(3);
	ll_tx		tx;
	LLVote		v;

	(void) state;
	key(voter, 1);
	key(pub, 2);
	memset(longname, 'x', 100);
	memcpy(shortname, "alpha", 5);
	memcpy(tier, "low", 3);
	memset(&tx, 0, sizeof(tx));
	tx.kind = LL_TX_ADD_MEMBER;
	tx.pubkey = pub;
	tx.name = (ll_wire_str) {longname, 100};
	tx.tier = (ll_wire_str) {tier, 3};
	ll_vote_from_tx(&v, voter, &tx);
	assert_int_equal(strlen(v.name), LL_NAME_LEN - 1);
	assert_string_equal(v.tier, "low");
	tx.name = (ll_wire_str) {shortname, 5};
	ll_vote_from_tx(&v, voter, &tx);
	assert_string_equal(v.name, "alpha");
	tx.kind = LL_TX_REMOVE_MEMBER;
	ll_vote_from_tx(&v, voter, &tx);
	assert_string_equal(v.name, "");
	assert_memory_equal(v.pub, pub, 32);
	free(longname);
	free(shortname);
	free(tier);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restart_keeps_other_votes),
		cmocka_unit_test(test_remove_and_clearance_in_one_block),
		cmocka_unit_test(test_clearance_after_removal_is_moot),
		cmocka_unit_test(test_flood_cannot_block_removal),
		cmocka_unit_test(test_voter_share_frees_up),
		cmocka_unit_test(test_member_limit_ignores_local_requests),
		cmocka_unit_test(test_local_request_decided),
		cmocka_unit_test(test_name_taken_is_refused),
		cmocka_unit_test(test_random_restarts),
		cmocka_unit_test(test_vote_from_unterminated_wire),
		cmocka_unit_test(test_unsendable_names_ignored),
		cmocka_unit_test(test_quorum_drop_enacts_pending),
		cmocka_unit_test(test_last_member_not_removed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
