/*
 * membership.c
 *		Who votes at which height of a multi-peer channel.
 *
 * Genesis members vote from height 0.  After the first block a change
 * (ledger.add_peer / ledger.remove_peer) is a transaction each member's
 * node proposes on its DBA's request; it takes effect once members holding
 * a quorum of the voting power at the deciding height h asked for exactly
 * the same change, from height h + BFT_VALSET_DELAY on.  One rogue member
 * cannot add or remove anybody, and every node computes the same sets at
 * the same heights because it only counts votes in decided blocks.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "bft.h"
#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "membership.h"

static int
find_member(const LLMembership *ms, const uint8 *pub)
{
	int			i;

	for (i = 0; i < ms->n; i++)
		if (memcmp(ms->m[i].pub, pub, 32) == 0)
			return i;
	return -1;
}

int
ll_member_index(const LLMembership *ms, const uint8 *pub)
{
	return find_member(ms, pub);
}

static bool
active_at(const LLMember *m, uint64 h)
{
	return m->since >= 0 && (uint64) m->since <= h && (m->until < 0 || (uint64) m->until > h);
}

static int
cmp_validator(const void *a, const void *b)
{
	return memcmp(((const bft_validator *) a)->pubkey, ((const bft_validator *) b)->pubkey, 32);
}

/* Validators of height h, sorted by public key (every node alike). */
void
ll_valset_at(const LLMembership *ms, uint64 h, bft_valset *vs)
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
ll_is_validator_at(const LLMembership *ms, const uint8 *pub, uint64 h)
{
	int			i = find_member(ms, pub);

	return i >= 0 && active_at(&ms->m[i], h);
}

/* Removed by height h (or never a member): it votes at no height from h. */
bool
ll_never_votes_from(const LLMembership *ms, const uint8 *pub, uint64 h)
{
	int			i = find_member(ms, pub);

	return i < 0 || (ms->m[i].until >= 0 && (uint64) ms->m[i].until <= h);
}

static void
load_votes(LLMembership *ms, int32 channel_id)
{
	uint64		i;

	SPI_execute_with_args("SELECT voter, op, pubkey, name, clearance FROM ledger.member_vote "
						  "WHERE channel_id = $1 AND NOT decided ORDER BY height", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)}, NULL, true, 0);
	ms->nvotes = 0;
	for (i = 0; i < SPI_processed && ms->nvotes < LL_MAX_VOTES; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		LLVote	   *v = &ms->votes[ms->nvotes++];
		bool		isnull;

		memcpy(v->voter, VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(t, td, 1, &isnull))), 32);
		v->op = SPI_getvalue(t, td, 2)[0] == 'a' ? LL_TX_ADD_MEMBER : LL_TX_REMOVE_MEMBER;
		memcpy(v->pub, VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(t, td, 3, &isnull))), 32);
		strlcpy(v->name, SPI_getvalue(t, td, 4), NAMEDATALEN);
		strlcpy(v->tier, SPI_getvalue(t, td, 5), NAMEDATALEN);
	}
}

/* SPI must be connected. */
void
ll_members_load(LLMembership *ms, int32 channel_id)
{
	uint64		i;

	SPI_execute_with_args("SELECT name, pubkey, conninfo, clearance, since_height, until_height, "
						  "coalesce(genesis_clearance, clearance) FROM ledger.peer WHERE channel_id = $1 ORDER BY pubkey", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)}, NULL, true, 0);
	ms->n = 0;
	for (i = 0; i < SPI_processed && ms->n < LL_MAX_PEERS; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		LLMember   *m = &ms->m[ms->n++];
		bool		isnull;
		Datum		d;

		memset(m, 0, sizeof(*m));
		strlcpy(m->name, SPI_getvalue(t, td, 1), NAMEDATALEN);
		memcpy(m->pub, VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(t, td, 2, &isnull))), 32);
		strlcpy(m->conninfo, SPI_getvalue(t, td, 3), sizeof(m->conninfo));
		strlcpy(m->tier, SPI_getvalue(t, td, 4), NAMEDATALEN);
		d = SPI_getbinval(t, td, 5, &isnull);
		m->since = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(t, td, 6, &isnull);
		m->until = isnull ? -1 : DatumGetInt64(d);
		strlcpy(m->genesis_tier, SPI_getvalue(t, td, 7), NAMEDATALEN);
	}
	load_votes(ms, channel_id);
}

/* Members whose since_height is 0: they make the channel's genesis. */
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

static bool
same_change(const LLVote *a, const LLVote *b)
{
	return a->op == b->op && memcmp(a->pub, b->pub, 32) == 0 &&
		(a->op == LL_TX_REMOVE_MEMBER ||
		 (strcmp(a->name, b->name) == 0 && strcmp(a->tier, b->tier) == 0));
}

static bool
already_in_effect(const LLMembership *ms, const LLVote *v)
{
	int			i = find_member(ms, v->pub);

	/* adding an active member again with another clearance changes it */
	if (v->op == LL_TX_ADD_MEMBER)
		return i >= 0 && ms->m[i].since >= 0 && ms->m[i].until < 0 &&
			strcmp(ms->m[i].tier, v->tier) == 0;
	return i < 0 || ms->m[i].until >= 0 || ms->m[i].since < 0;
}

static void
record_vote(LLMembership *ms, const uint8 *voter, const ll_tx *tx)
{
	LLVote		v;
	int			i;

	memset(&v, 0, sizeof(v));
	memcpy(v.voter, voter, 32);
	v.op = tx->kind;
	memcpy(v.pub, tx->pubkey, 32);
	if (tx->kind == LL_TX_ADD_MEMBER)
	{
		strlcpy(v.name, tx->name.ptr, Min(tx->name.len + 1, NAMEDATALEN));
		strlcpy(v.tier, tx->tier.ptr, Min(tx->tier.len + 1, NAMEDATALEN));
	}
	if (already_in_effect(ms, &v))
		return;
	for (i = 0; i < ms->nvotes; i++)
		if (memcmp(ms->votes[i].voter, voter, 32) == 0 && same_change(&ms->votes[i], &v))
			return;				/* one vote per member and change */
	if (ms->nvotes < LL_MAX_VOTES && ms->nnew < LL_MAX_VOTES)
	{
		ms->votes[ms->nvotes++] = v;
		ms->fresh[ms->nnew++] = v;
	}
}

/* Apply the change of vote v at height eff; returns true if it changed anything. */
static bool
enact(LLMembership *ms, const LLVote *v, uint64 eff)
{
	int			i = find_member(ms, v->pub);
	LLDecided  *d;

	if (v->op == LL_TX_ADD_MEMBER)
	{
		if (i < 0)
		{
			if (ms->n == LL_MAX_PEERS)
				return false;
			i = ms->n++;
			memset(&ms->m[i], 0, sizeof(LLMember));
			memcpy(ms->m[i].pub, v->pub, 32);
			ms->m[i].since = -1;
			ms->m[i].until = -1;
		}
		/*
		 * A clearance change of an active member applies from this block on
		 * (every node decides it at the same point of the same block); its
		 * vote keeps counting from when it joined.
		 */
		if (!(ms->m[i].since >= 0 && ms->m[i].until < 0))
		{
			/* new, or removed before: votes again from eff, as persisted */
			ms->m[i].since = (int64) eff;
			ms->m[i].until = -1;
		}
		strlcpy(ms->m[i].name, v->name, NAMEDATALEN);
		strlcpy(ms->m[i].tier, v->tier, NAMEDATALEN);
	}
	else
		ms->m[i].until = (int64) eff;
	d = &ms->decided[ms->ndecided++];
	d->vote = *v;
	d->effective = eff;
	return true;
}

/*
 * Count the membership votes of a decided block (batches in block order).
 * True if the validator set changes at height + BFT_VALSET_DELAY.
 */
bool
ll_members_decide(LLMembership *ms, uint64 height, const ll_batch *batches, int nbatches)
{
	bft_valset	vs;
	bool		changed = false;
	int			b,
				i,
				j;

	ms->nnew = 0;
	ms->ndecided = 0;
	ll_valset_at(ms, height, &vs);
	for (b = 0; b < nbatches; b++)
	{
		ll_batch_iter it;
		ll_tx		tx;

		if (!ll_is_validator_at(ms, batches[b].origin, height))
			continue;
		ll_batch_iter_init(&it, &batches[b]);
		while (ll_batch_next_tx(&it, &tx))
			if (tx.kind == LL_TX_ADD_MEMBER || tx.kind == LL_TX_REMOVE_MEMBER)
				record_vote(ms, batches[b].origin, &tx);
	}
	for (i = 0; i < ms->nnew; i++)
	{
		LLVote	   *v = &ms->fresh[i];
		uint64		power = 0;

		if (already_in_effect(ms, v))
			continue;
		for (j = 0; j < ms->nvotes; j++)
			if (same_change(&ms->votes[j], v) &&
				bft_valset_find(&vs, ms->votes[j].voter) >= 0)
				power += 1;
		if (power >= bft_quorum(&vs) && enact(ms, v, height + BFT_VALSET_DELAY))
			changed = true;
	}
	/* drop the votes of changes now decided */
	for (i = 0, j = 0; i < ms->nvotes; i++)
		if (!already_in_effect(ms, &ms->votes[i]))
			ms->votes[j++] = ms->votes[i];
	ms->nvotes = j;
	return changed;
}

/* Write this height's votes and decisions (inside the apply transaction). */
void
ll_members_persist(const LLMembership *ms, int32 channel_id, uint64 height)
{
	int			i;

	for (i = 0; i < ms->nnew; i++)
	{
		const LLVote *v = &ms->fresh[i];

		SPI_execute_with_args("INSERT INTO ledger.member_vote (channel_id, height, voter, op, pubkey, name, clearance) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7,
							  (Oid[]) {INT4OID, INT8OID, BYTEAOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID},
							  (Datum[]) {Int32GetDatum(channel_id), Int64GetDatum((int64) height),
								  PointerGetDatum(ll_bytea(v->voter, 32)),
								  CStringGetTextDatum(v->op == LL_TX_ADD_MEMBER ? "add" : "remove"),
								  PointerGetDatum(ll_bytea(v->pub, 32)), CStringGetTextDatum(v->name),
							  CStringGetTextDatum(v->tier)}, NULL, false, 0);
	}
	for (i = 0; i < ms->ndecided; i++)
	{
		const LLDecided *d = &ms->decided[i];
		Datum		args[5];

		args[0] = Int32GetDatum(channel_id);
		args[1] = PointerGetDatum(ll_bytea(d->vote.pub, 32));
		args[2] = Int64GetDatum((int64) d->effective);
		args[3] = CStringGetTextDatum(d->vote.name);
		args[4] = CStringGetTextDatum(d->vote.tier);
		if (d->vote.op == LL_TX_ADD_MEMBER)
			SPI_execute_with_args("INSERT INTO ledger.peer (channel_id, name, pubkey, conninfo, clearance, since_height) "
								  "VALUES ($1, $4, $2, '', $5, $3) ON CONFLICT (channel_id, pubkey) "
								  "DO UPDATE SET clearance = $5, clearance_requested = NULL, "
								  "since_height = CASE WHEN peer.since_height IS NULL OR peer.until_height IS NOT NULL "
								  "THEN $3 ELSE peer.since_height END, until_height = NULL", 5,
								  (Oid[]) {INT4OID, BYTEAOID, INT8OID, TEXTOID, TEXTOID}, args, NULL, false, 0);
		else
			SPI_execute_with_args("UPDATE ledger.peer SET until_height = $3 WHERE channel_id = $1 AND pubkey = $2",
								  3, (Oid[]) {INT4OID, BYTEAOID, INT8OID}, args, NULL, false, 0);
		SPI_execute_with_args("UPDATE ledger.member_vote SET decided = true WHERE channel_id = $1 AND pubkey = $2",
							  2, (Oid[]) {INT4OID, BYTEAOID}, args, NULL, false, 0);
	}
}
