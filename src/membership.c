/*
 * membership.c
 *		Loading and persisting the members and membership votes of a
 *		multi-peer channel; the counting is in membership_core.c.
 *
 * ledger.peer and the pending rows of ledger.member_vote (NOT decided)
 * mirror what membership_core.c keeps in memory, so a node that restarts
 * counts exactly like the nodes that did not.
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

StaticAssertDecl(LL_NAME_LEN == NAMEDATALEN, "member names are PostgreSQL names");

static void
load_votes(LLMembership *ms, int32 channel_id)
{
	uint64		i;

	SPI_execute_with_args("SELECT voter, op, pubkey, name, clearance, height FROM ledger.member_vote "
						  "WHERE channel_id = $1 AND NOT decided ORDER BY height", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)}, NULL, true, 0);
	ms->nvotes = 0;
	for (i = 0; i < SPI_processed && ms->nvotes < LL_MAX_VOTES; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		LLVote	   *v = &ms->votes[ms->nvotes++];
		bool		isnull;

		memset(v, 0, sizeof(*v));
		memcpy(v->voter, VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(t, td, 1, &isnull))), 32);
		v->op = SPI_getvalue(t, td, 2)[0] == 'a' ? LL_TX_ADD_MEMBER : LL_TX_REMOVE_MEMBER;
		memcpy(v->pub, VARDATA_ANY(DatumGetByteaPP(SPI_getbinval(t, td, 3, &isnull))), 32);
		strlcpy(v->name, SPI_getvalue(t, td, 4), NAMEDATALEN);
		strlcpy(v->tier, SPI_getvalue(t, td, 5), NAMEDATALEN);
		v->height = (uint64) DatumGetInt64(SPI_getbinval(t, td, 6, &isnull));
	}
}

static void
load_member(LLMember *m, HeapTuple t, TupleDesc td)
{
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

/*
 * SPI must be connected.  Decided members come first and all of them fit
 * (membership_core.c admits no more than LL_MAX_MEMBERS); this node's own
 * requests take what is left, up to LL_MAX_LOCAL_REQUESTS.
 */
void
ll_members_load(LLMembership *ms, int32 channel_id)
{
	uint64		i;
	int			local = 0;

	SPI_execute_with_args("SELECT name, pubkey, conninfo, clearance, since_height, until_height, "
						  "coalesce(genesis_clearance, clearance) FROM ledger.peer WHERE channel_id = $1 "
						  "ORDER BY since_height IS NULL, CASE WHEN since_height IS NULL THEN requested_at END, pubkey", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)}, NULL, true, 0);
	ms->n = 0;
	for (i = 0; i < SPI_processed && ms->n < LL_MAX_PEERS; i++)
	{
		LLMember   *m = &ms->m[ms->n];

		load_member(m, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
		if (m->since < 0 && local++ >= LL_MAX_LOCAL_REQUESTS)
			break;
		ms->n++;
	}
	load_votes(ms, channel_id);
}

static void
insert_vote(const LLVote *v, int32 channel_id, uint64 height)
{
	SPI_execute_with_args("INSERT INTO ledger.member_vote (channel_id, height, voter, op, pubkey, name, clearance) "
						  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7,
						  (Oid[]) {INT4OID, INT8OID, BYTEAOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID},
						  (Datum[]) {Int32GetDatum(channel_id), Int64GetDatum((int64) height),
							  PointerGetDatum(ll_bytea(v->voter, 32)),
							  CStringGetTextDatum(v->op == LL_TX_ADD_MEMBER ? "add" : "remove"),
							  PointerGetDatum(ll_bytea(v->pub, 32)), CStringGetTextDatum(v->name),
						  CStringGetTextDatum(v->tier)}, NULL, false, 0);
}

/*
 * Exactly the row of v stops being pending: one voter has at most one
 * pending vote per change, and a removal's name and clearance are ''.
 */
static void
settle_vote(const LLVote *v, int32 channel_id)
{
	SPI_execute_with_args("UPDATE ledger.member_vote SET decided = true WHERE channel_id = $1 "
						  "AND NOT decided AND voter = $2 AND op = $3 AND pubkey = $4 "
						  "AND name = $5 AND clearance = $6", 6,
						  (Oid[]) {INT4OID, BYTEAOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID},
						  (Datum[]) {Int32GetDatum(channel_id), PointerGetDatum(ll_bytea(v->voter, 32)),
							  CStringGetTextDatum(v->op == LL_TX_ADD_MEMBER ? "add" : "remove"),
							  PointerGetDatum(ll_bytea(v->pub, 32)), CStringGetTextDatum(v->name),
						  CStringGetTextDatum(v->tier)}, NULL, false, 0);
}

/*
 * This node's DBA may have asked to add another key under the name the
 * members just admitted: that request can no longer succeed and would
 * block the admitted member's row, so it gives way.
 */
static void
withdraw_clashing_request(int32 channel_id, const LLVote *v)
{
	uint64		i;

	SPI_execute_with_args("DELETE FROM ledger.peer WHERE channel_id = $1 AND name = $2 "
						  "AND pubkey <> $3 AND since_height IS NULL RETURNING pubkey", 3,
						  (Oid[]) {INT4OID, TEXTOID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(channel_id), CStringGetTextDatum(v->name),
						  PointerGetDatum(ll_bytea(v->pub, 32))}, NULL, false, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *k = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull));
		char		mine[65],
					agreed[65];

		ll_hex_encode((const uint8 *) VARDATA_ANY(k), 32, mine);
		ll_hex_encode(v->pub, 32, agreed);
		ereport(WARNING,
				(errmsg("request to add peer \"%s\" withdrawn: the members admitted another key under that name",
						v->name),
				 errdetail("This node asked for key %s; the members agreed on key %s.", mine, agreed),
				 errhint("Check the key with the peer's organisation; add it again under another name if it is a different node.")));
	}
}

/*
 * A change decided by the block of height h holds for the heights after
 * it: that block's own batches were sent under the clearance before
 * (ledger.reader_tier_at).
 */
static void
record_clearance(int32 channel_id, const LLDecided *d, uint64 height)
{
	SPI_execute_with_args("INSERT INTO ledger.peer_clearance (channel_id, pubkey, from_height, clearance) "
						  "VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id, pubkey, from_height) "
						  "DO UPDATE SET clearance = excluded.clearance", 4,
						  (Oid[]) {INT4OID, BYTEAOID, INT8OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(channel_id), PointerGetDatum(ll_bytea(d->vote.pub, 32)),
							  Int64GetDatum((int64) height + 1), CStringGetTextDatum(d->vote.tier)},
						  NULL, false, 0);
}

static void
persist_decided(int32 channel_id, const LLDecided *d, uint64 height)
{
	Datum		args[5];

	args[0] = Int32GetDatum(channel_id);
	args[1] = PointerGetDatum(ll_bytea(d->vote.pub, 32));
	args[2] = Int64GetDatum((int64) d->effective);
	args[3] = CStringGetTextDatum(d->vote.name);
	args[4] = CStringGetTextDatum(d->vote.tier);
	if (d->vote.op == LL_TX_ADD_MEMBER)
	{
		withdraw_clashing_request(channel_id, &d->vote);
		record_clearance(channel_id, d, height);
		/* since is written once: a clearance change keeps it */
		SPI_execute_with_args("INSERT INTO ledger.peer (channel_id, name, pubkey, conninfo, clearance, since_height) "
							  "VALUES ($1, $4, $2, '', $5, $3) ON CONFLICT (channel_id, pubkey) "
							  "DO UPDATE SET name = $4, clearance = $5, clearance_requested = NULL, "
							  "since_height = coalesce(peer.since_height, $3)", 5,
							  (Oid[]) {INT4OID, BYTEAOID, INT8OID, TEXTOID, TEXTOID}, args, NULL, false, 0);
	}
	else
		SPI_execute_with_args("UPDATE ledger.peer SET until_height = $3 WHERE channel_id = $1 AND pubkey = $2",
							  3, (Oid[]) {INT4OID, BYTEAOID, INT8OID}, args, NULL, false, 0);
}

/*
 * Write this height's votes and decisions (inside the apply transaction):
 * new pending votes first, as a vote may become pending and be settled in
 * the same block.
 */
void
ll_members_persist(const LLMembership *ms, int32 channel_id, uint64 height)
{
	int			i;

	for (i = 0; i < ms->nnew; i++)
		insert_vote(&ms->fresh[i], channel_id, height);
	for (i = 0; i < ms->ndecided; i++)
		persist_decided(channel_id, &ms->decided[i], height);
	for (i = 0; i < ms->ndropped; i++)
		settle_vote(&ms->dropped[i], channel_id);
}
