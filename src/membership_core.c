/*
 * membership_core.c
 *		Who votes at which height of a multi-peer channel.
 *
 * Genesis members vote from height 0.  After the first block a change
 * (ledger.add_peer / ledger.remove_peer / ledger.set_peer_clearance) is a
 * transaction each member's node proposes on its DBA's request; it takes
 * effect once members holding a quorum of the voting power at the deciding
 * height h asked for exactly the same change, from height
 * h + BFT_VALSET_DELAY on.  One rogue member cannot add or remove anybody.
 *
 * Every node computes the same sets at the same heights, also after a
 * restart, only if every rule here depends on nothing but the decided
 * blocks: decided members, pending votes and the block being counted -
 * never on this node's own undecided requests, and never on the order in
 * which pending votes were reloaded.
 *
 * No PostgreSQL header may be included here (see membership_core.h).
 */
#include "membership_core.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(LL_MAX_MEMBERS * LL_MAX_VOTER_VOTES <= LL_MAX_VOTES,
			   "pending votes of all voters must fit in votes[]");

int
ll_member_index(const LLMembership *ms, const uint8_t *pub)
{
	int			i;

	for (i = 0; i < ms->n; i++)
		if (memcmp(ms->m[i].pub, pub, 32) == 0)
			return i;
	return -1;
}

static bool
is_decided(const LLMember *m)
{
	return m->since >= 0;
}

static bool
is_removed(const LLMember *m)
{
	return m->since >= 0 && m->until >= 0;
}

int
ll_members_decided_count(const LLMembership *ms)
{
	int			i,
				k = 0;

	for (i = 0; i < ms->n; i++)
		k += is_decided(&ms->m[i]);
	return k;
}

int
ll_members_local_count(const LLMembership *ms)
{
	return ms->n - ll_members_decided_count(ms);
}

int
ll_members_pending_of(const LLMembership *ms, const uint8_t *voter)
{
	int			i,
				k = 0;

	for (i = 0; i < ms->nvotes; i++)
		k += memcmp(ms->votes[i].voter, voter, 32) == 0;
	return k;
}

static bool
active_at(const LLMember *m, uint64_t h)
{
	return m->since >= 0 && (uint64_t) m->since <= h && (m->until < 0 || (uint64_t) m->until > h);
}

static int
cmp_validator(const void *a, const void *b)
{
	return memcmp(((const bft_validator *) a)->pubkey, ((const bft_validator *) b)->pubkey, 32);
}

/* Validators of height h, sorted by public key (every node alike). */
void
ll_valset_at(const LLMembership *ms, uint64_t h, bft_valset *vs)
{
	int			i;

	memset(vs, 0, sizeof(*vs));
	for (i = 0; i < ms->n; i++)
		if (active_at(&ms->m[i], h) && vs->n < BFT_MAX_VALIDATORS)
		{
			memcpy(vs->v[vs->n].pubkey, ms->m[i].pub, 32);
			vs->v[vs->n].power = 1;
			vs->n++;
		}
	qsort(vs->v, vs->n, sizeof(bft_validator), cmp_validator);
}

bool
ll_is_validator_at(const LLMembership *ms, const uint8_t *pub, uint64_t h)
{
	int			i = ll_member_index(ms, pub);

	return i >= 0 && active_at(&ms->m[i], h);
}

/* Removed by height h (or never a member): it votes at no height from h. */
bool
ll_never_votes_from(const LLMembership *ms, const uint8_t *pub, uint64_t h)
{
	int			i = ll_member_index(ms, pub);

	return i < 0 || (ms->m[i].until >= 0 && (uint64_t) ms->m[i].until <= h);
}

/*
 * Members whose since is 0 make the channel's genesis.  since is written
 * once, when a member is decided, so this set never changes.
 */
int
ll_members_genesis(const LLMembership *ms, ll_member *out, ll_wire_str *tiers, int ntiers,
				   char **tier_names)
{
	int			i,
				k,
				n = 0;

	for (i = 0; i < ms->n; i++)
	{
		if (ms->m[i].since != 0)
			continue;
		out[n].pubkey = ms->m[i].pub;
		out[n].name.ptr = ms->m[i].name;
		out[n].name.len = strlen(ms->m[i].name);
		out[n].tier.ptr = ms->m[i].genesis_tier;
		out[n].tier.len = strlen(ms->m[i].genesis_tier);
		for (k = 0; k < ntiers; k++)
			if (strcmp(tier_names[k], ms->m[i].genesis_tier) == 0)
				out[n].tier = tiers[k];
		n++;
	}
	return n;
}

/* A wire string need not end in NUL: copy at most what fits, then end it. */
static void
copy_wire_name(char *dst, ll_wire_str s)
{
	size_t		len = s.len < LL_NAME_LEN - 1 ? s.len : LL_NAME_LEN - 1;

	memcpy(dst, s.ptr, len);
	dst[len] = '\0';
}

void
ll_vote_from_tx(LLVote *v, const uint8_t *voter, const ll_tx *tx)
{
	memset(v, 0, sizeof(*v));
	memcpy(v->voter, voter, 32);
	v->op = tx->kind;
	memcpy(v->pub, tx->pubkey, 32);
	if (tx->kind == LL_TX_ADD_MEMBER)
	{
		copy_wire_name(v->name, tx->name);
		copy_wire_name(v->tier, tx->tier);
	}
}

static bool
same_change(const LLVote *a, const LLVote *b)
{
	return a->op == b->op && memcmp(a->pub, b->pub, 32) == 0 &&
		strcmp(a->name, b->name) == 0 && strcmp(a->tier, b->tier) == 0;
}

bool
ll_vote_pending(const LLMembership *ms, const LLVote *v)
{
	int			i;

	for (i = 0; i < ms->nvotes; i++)
		if (memcmp(ms->votes[i].voter, v->voter, 32) == 0 && same_change(&ms->votes[i], v))
			return true;
	return false;
}

static bool
name_taken(const LLMembership *ms, const char *name, const uint8_t *pub)
{
	int			i;

	for (i = 0; i < ms->n; i++)
		if (is_decided(&ms->m[i]) && strcmp(ms->m[i].name, name) == 0 &&
			memcmp(ms->m[i].pub, pub, 32) != 0)
			return true;
	return false;
}

/*
 * An add vote that can never take effect (or already has).  A removed
 * member stays removed: its name and key are kept in the chain's history,
 * and re-admitting it would move its since and with it the genesis.  A
 * decided member keeps its name; a clearance vote must carry it.
 */
static bool
add_moot(const LLMembership *ms, const LLVote *v)
{
	int			i = ll_member_index(ms, v->pub);

	if (i >= 0 && is_decided(&ms->m[i]))
		return is_removed(&ms->m[i]) || strcmp(ms->m[i].name, v->name) != 0 ||
			strcmp(ms->m[i].tier, v->tier) == 0;
	return name_taken(ms, v->name, v->pub) ||
		ll_members_decided_count(ms) >= LL_MAX_MEMBERS;
}

/* Members decided and not removed (also those whose removal is not in force yet). */
static int
active_count(const LLMembership *ms)
{
	int			i,
				n = 0;

	for (i = 0; i < ms->n; i++)
		if (is_decided(&ms->m[i]) && !is_removed(&ms->m[i]))
			n++;
	return n;
}

/*
 * Nothing left to decide for v: in effect, or refused on every node.  The
 * last member is not removed: a chain needs a validator to go on from
 * (the core would keep the old set while this one holds none).
 */
bool
ll_vote_moot(const LLMembership *ms, const LLVote *v)
{
	int			i;

	if (v->op == LL_TX_ADD_MEMBER)
		return add_moot(ms, v);
	if (v->op != LL_TX_REMOVE_MEMBER)
		return true;
	i = ll_member_index(ms, v->pub);
	return i < 0 || !is_decided(&ms->m[i]) || is_removed(&ms->m[i]) ||
		active_count(ms) <= 1;
}

/*
 * A voter over its share is ignored, so a flood of votes for made-up keys
 * cannot fill votes[] and silence everyone else; its own honest requests
 * wait (propose_requests proposes no more than the share allows).
 */
static void
record_vote(LLMembership *ms, const LLVote *v)
{
	if (ll_vote_moot(ms, v) || ll_vote_pending(ms, v) ||
		ll_members_pending_of(ms, v->voter) >= LL_MAX_VOTER_VOTES ||
		ms->nvotes >= LL_MAX_VOTES || ms->nnew >= LL_MAX_VOTES)
		return;
	ms->votes[ms->nvotes++] = *v;
	ms->fresh[ms->nnew++] = *v;
}

static int
new_member_slot(LLMembership *ms, const uint8_t *pub)
{
	LLMember   *m = &ms->m[ms->n];

	memset(m, 0, sizeof(*m));
	memcpy(m->pub, pub, 32);
	m->since = -1;
	m->until = -1;
	return ms->n++;
}

/*
 * Apply the change of vote v (not moot) at height eff.  A clearance change
 * of an active member applies from this block on (every node decides it
 * at the same point of the same block); its vote keeps counting from when
 * it joined.  A slot is always free: decided members stay below
 * LL_MAX_MEMBERS and local requests below LL_MAX_LOCAL_REQUESTS.
 */
static void
enact(LLMembership *ms, const LLVote *v, uint64_t eff)
{
	int			i = ll_member_index(ms, v->pub);
	LLDecided  *d;

	if (v->op == LL_TX_ADD_MEMBER)
	{
		if (i < 0)
			i = new_member_slot(ms, v->pub);
		if (!is_decided(&ms->m[i]))
			ms->m[i].since = (int64_t) eff;
		memcpy(ms->m[i].name, v->name, LL_NAME_LEN);
		memcpy(ms->m[i].tier, v->tier, LL_NAME_LEN);
	}
	else
		ms->m[i].until = (int64_t) eff;
	d = &ms->decided[ms->ndecided++];
	d->vote = *v;
	d->effective = eff;
}

static uint64_t
power_for(const LLMembership *ms, const bft_valset *vs, const LLVote *v)
{
	uint64_t	power = 0;
	int			j;

	for (j = 0; j < ms->nvotes; j++)
		if (same_change(&ms->votes[j], v) && bft_valset_find(vs, ms->votes[j].voter) >= 0)
			power += 1;
	return power;
}

/*
 * Drop the votes of changes now in effect or refused, those of voters that
 * vote at no height from here on (they would never count again), and those
 * pending for LL_VOTE_TTL heights.
 */
static void
drop_settled(LLMembership *ms, uint64_t height)
{
	int			i,
				j;

	for (i = 0, j = 0; i < ms->nvotes; i++)
	{
		const LLVote *v = &ms->votes[i];

		if (ll_vote_moot(ms, v) || ll_never_votes_from(ms, v->voter, height) ||
			v->height + LL_VOTE_TTL <= height)
			ms->dropped[ms->ndropped++] = *v;
		else
			ms->votes[j++] = *v;
	}
	ms->nvotes = j;
}

/*
 * A name an honest member can send (peer and tier names): 1 to
 * LL_NAME_LEN - 1 bytes of well-formed UTF-8 (RFC 3629) without NUL.  A
 * vote naming anything else is ignored alike everywhere: stored, it could
 * not be restored from a dump, and a node restored without it would count
 * unlike the others.
 */
static bool
wire_name_ok(ll_wire_str s)
{
	const uint8_t *p = (const uint8_t *) s.ptr;
	size_t		i = 0;

	if (s.len == 0 || s.len >= LL_NAME_LEN)
		return false;
	while (i < s.len)
	{
		uint32_t	c = p[i];
		size_t		n,
					k;

		if (c == 0)
			return false;
		n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 :
			(c & 0xF8) == 0xF0 ? 4 : 0;
		if (n == 0 || n > s.len - i)
			return false;
		if (n > 1)
			c &= 0x3F >> (n - 1);
		for (k = 1; k < n; k++)
		{
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (p[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, beyond Unicode */
		if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
			(c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
			return false;
		i += n;
	}
	return true;
}

/* A total order of pending votes (by pointer), the same on every node. */
static int
vote_cmp(const void *pa, const void *pb)
{
	const LLVote *a = *(const LLVote *const *) pa,
			   *b = *(const LLVote *const *) pb;
	int			c;

	if (a->height != b->height)
		return a->height < b->height ? -1 : 1;
	if (a->op != b->op)
		return a->op < b->op ? -1 : 1;
	if ((c = memcmp(a->pub, b->pub, 32)) != 0 ||
		(c = strcmp(a->name, b->name)) != 0 ||
		(c = strcmp(a->tier, b->tier)) != 0)
		return c;
	return memcmp(a->voter, b->voter, 32);
}

/*
 * Pending changes that hold a quorum without a new vote: the quorum fell
 * (a removal came into force).  Taken in vote_cmp order, as nodes hold
 * their pending votes in different orders after a restart.
 */
static bool
enact_ripe(LLMembership *ms, const bft_valset *vs, uint64_t height)
{
	const LLVote *order[LL_MAX_VOTES];
	bool		changed = false;
	int			i;

	for (i = 0; i < ms->nvotes; i++)
		order[i] = &ms->votes[i];
	qsort(order, ms->nvotes, sizeof(order[0]), vote_cmp);
	for (i = 0; i < ms->nvotes; i++)
		if (!ll_vote_moot(ms, order[i]) && power_for(ms, vs, order[i]) >= bft_quorum(vs))
		{
			enact(ms, order[i], height + BFT_VALSET_DELAY);
			changed = true;
		}
	return changed;
}

/*
 * Count the membership votes of a decided block (batches in block order).
 * True if a member or a clearance changes.
 */
bool
ll_members_decide(LLMembership *ms, uint64_t height, const ll_batch *batches, int nbatches)
{
	bft_valset	vs;
	bool		changed = false;
	int			b,
				i;

	ms->nnew = 0;
	ms->ndropped = 0;
	ms->ndecided = 0;
	ll_valset_at(ms, height, &vs);
	for (b = 0; b < nbatches; b++)
	{
		ll_batch_iter it;
		ll_tx		tx;
		LLVote		v;

		if (!ll_is_validator_at(ms, batches[b].origin, height))
			continue;
		ll_batch_iter_init(&it, &batches[b]);
		while (ll_batch_next_tx(&it, &tx))
			if (tx.kind == LL_TX_REMOVE_MEMBER ||
				(tx.kind == LL_TX_ADD_MEMBER && wire_name_ok(tx.name) && wire_name_ok(tx.tier)))
			{
				ll_vote_from_tx(&v, batches[b].origin, &tx);
				v.height = height;
				record_vote(ms, &v);
			}
	}
	for (i = 0; i < ms->nnew; i++)
	{
		const LLVote *v = &ms->fresh[i];

		/* an earlier change of this block may have settled it */
		if (!ll_vote_moot(ms, v) && power_for(ms, &vs, v) >= bft_quorum(&vs))
		{
			enact(ms, v, height + BFT_VALSET_DELAY);
			changed = true;
		}
	}
	if (enact_ripe(ms, &vs, height))
		changed = true;
	drop_settled(ms, height);
	return changed;
}
