/*
 * catchup.c
 *		Fetching decided blocks from peers: catch-up of a node that is
 *		behind, and disclosure of rows a raised clearance now lets it see.
 *
 * Both read other members' copies through ledger.decisions() and
 * ledger.batches() with a signed read token, and trust nothing they get:
 * a block is applied only with a commit certificate of the validator set,
 * and disclosed content only when it hashes to the commitment already in
 * this node's chain.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "consensus_int.h"
#include "loopledger.h"

/* ---------------------------------------------------------------------
 * A raised clearance: fetch and fill in the rows this node may now see
 * --------------------------------------------------------------------- */

/* rest between disclosure fetches: doubles while none is complete */
#define DISCLOSE_REST_MS 200
#define DISCLOSE_REST_MAX_MS 30000

/* Heights of decided blocks holding entries redacted at or below tier. */
static void
plan_disclosure(int tier)
{
	ArrayBuildState *heights = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	uint64		i;
	bool		isnull;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute_with_args("SELECT height, entries FROM ledger.block WHERE channel_id = $1 ORDER BY height",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(W.channel_id)}, NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bytea	   *e = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		int			n = VARSIZE_ANY_EXHDR(e) / LL_PACKED_ENTRY_SIZE;
		int			j;

		for (j = 0; j < n; j++)
		{
			LLPackedEntry pe;

			ll_unpack_entry((const uint8 *) VARDATA_ANY(e) + (Size) j * LL_PACKED_ENTRY_SIZE, &pe);
			if ((pe.flags & LL_ENTRY_REDACTED) && (int) pe.tier <= tier)
			{
				heights = accumArrayResult(heights, SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull),
										   false, INT8OID, cxt);
				break;
			}
		}
	}
	W.ndisclose = W.disclose_pos = W.disclose_tries = 0;
	W.disclose_rest_ms = DISCLOSE_REST_MS;
	if (heights != NULL)
	{
		SPI_execute_with_args("SELECT height FROM ledger.consensus_log WHERE channel_id = $1 "
							  "AND ledger_height = ANY ($2) ORDER BY height", 2,
							  (Oid[]) {INT4OID, INT8ARRAYOID},
							  (Datum[]) {Int32GetDatum(W.channel_id), makeArrayResult(heights, cxt)},
							  NULL, true, 0);
		if (W.disclose)
			pfree(W.disclose);
		W.disclose = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * Max(SPI_processed, 1));
		for (i = 0; i < SPI_processed; i++)
			W.disclose[W.ndisclose++] =
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (W.ndisclose > 0)
		ereport(LOG,
				(errmsg("channel \"%s\": this node may now see tier \"%s\"; fetching the rows of %d blocks it holds as commitments",
						W.channel, W.tiers[tier], W.ndisclose)));
}

/*
 * The signature of a disclosed batch need not verify: disclose_block
 * (apply.c) takes only rows matching the commitments this node already
 * holds for the decided block, so a copy can add nothing else, and a
 * badly signed batch a lying member got ordered must not stall the
 * backfill.  Such a copy is not stored in place of the signed one.
 */
static bool disclosed_signed;

static bool
disclosed_verify(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
				 const uint8_t sig[64])
{
	disclosed_signed = bft_ed25519_verify(ctx, pub, msg, len, sig);
	if (!disclosed_signed)
		ereport(LOG,
				(errmsg("channel \"%s\": a disclosed batch's signature does not verify; its rows are checked against the block's commitments",
						W.channel)));
	return true;
}

/*
 * The batches of decided height h, as a member copies them to us; members
 * are asked in turn from the start-th on.
 */
static bool
fetch_disclosed(uint64 h, int start, ll_batch **batches, bool **signed_ok, int *n)
{
	char		from[32];
	ReadToken	tok;
	const char *vals[5] = {W.channel, from, tok.req, tok.at, tok.sig};
	int			k;

	snprintf(from, sizeof(from), UINT64_FORMAT, h);
	for (k = 0; k < W.nmembers; k++)
	{
		int			i = (start + k) % W.nmembers;
		PGresult   *res;
		int			r;

		if (W.members[i].link == NULL || W.members[i].mismatch)
			continue;
		make_read_token(&tok, W.members[i].pub);
		res = ll_link_fetch(W.members[i].link,
							"SELECT b FROM ledger.decisions($1, $2, 1, $3::bytea, $4::bigint, $5::bytea) d, "
							"unnest(d.batches) b WHERE d.height = $2",
							5, NULL, vals, NULL, NULL);
		if (res == NULL)
			continue;
		*batches = palloc0(sizeof(ll_batch) * Max(PQntuples(res), 1));
		*signed_ok = palloc0(sizeof(bool) * Max(PQntuples(res), 1));
		for (r = 0; PQnfields(res) == 1 && r < PQntuples(res); r++)
		{
			size_t		len = PQgetlength(res, r, 0);
			uint8	   *copy = palloc(len);

			memcpy(copy, PQgetvalue(res, r, 0), len);
			disclosed_signed = false;
			if (ll_batch_decode(copy, len, MAX_BATCH_BYTES, disclosed_verify, NULL, &(*batches)[r]) != 0 ||
				memcmp((*batches)[r].chain_id, W.chain_id, 32) != 0 ||
				member_of((*batches)[r].origin) < 0 ||
				!ll_batch_complete_for(&(*batches)[r], own_clearance()))
				break;
			(*signed_ok)[r] = disclosed_signed;
		}
		*n = r;
		if (r == PQntuples(res) && r > 0)
		{
			PQclear(res);
			return true;		/* every batch complete for our clearance */
		}
		PQclear(res);
	}
	return false;
}

/*
 * Only a node whose own clearance changed after the genesis (or that
 * joined by vote) can hold entries it may now see: look for them at start
 * only then, not through the whole chain on every start.
 */
static bool
clearance_ever_changed(void)
{
	bool		changed;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	SPI_execute_with_args("SELECT 1 FROM ledger.member_vote WHERE channel_id = $1 AND pubkey = $2 "
						  "AND op = 'add' AND decided LIMIT 1", 2,
						  (Oid[]) {INT4OID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(W.channel_id), PointerGetDatum(ll_bytea(W.self_pub, 32))},
						  NULL, true, 1);
	changed = SPI_processed > 0;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return changed;
}

void
disclosure_round(void)
{
	bool	   *signed_ok;
	int			tier = own_clearance();
	ll_batch   *batches;
	int			n;

	if (W.self < 0)
		return;
	if (W.disclosed_for == -2 && (tier < 0 || !clearance_ever_changed()))
		W.disclosed_for = tier;
	if (tier > W.disclosed_for)
	{
		plan_disclosure(tier);
		W.disclosed_for = tier;
	}
	else if (tier < W.disclosed_for)
		W.disclosed_for = tier;	/* lowered: nothing to fetch */
	if (W.disclose_pos >= W.ndisclose ||
		!TimestampDifferenceExceeds(W.last_disclose, GetCurrentTimestamp(),
									Max(W.disclose_rest_ms, DISCLOSE_REST_MS)))
		return;
	W.last_disclose = GetCurrentTimestamp();
	if (!fetch_disclosed((uint64) W.disclose[W.disclose_pos], W.disclose_tries, &batches, &signed_ok, &n))
	{
		/*
		 * Retried: a member may not have applied the change yet.  Each try
		 * waits for every member that holds back, so the rest between
		 * tries doubles, up to DISCLOSE_REST_MAX_MS.
		 */
		W.disclose_rest_ms = Min(Max(W.disclose_rest_ms, DISCLOSE_REST_MS) * 2, DISCLOSE_REST_MAX_MS);
		return;
	}
	W.disclose_rest_ms = DISCLOSE_REST_MS;
	W.apply.self_clearance = tier;
	/*
	 * A copy that left entries out (a member answering with less than the
	 * block) does not close the block: the next member is asked, until
	 * each was asked once.
	 */
	if (ll_apply_disclosed(&W.apply, (uint64) W.disclose[W.disclose_pos], batches, signed_ok, n) != 0 &&
		++W.disclose_tries < W.nmembers)
		return;
	if (W.disclose_tries >= W.nmembers)
		ereport(WARNING,
				(errmsg("channel \"%s\": rows of decided height " INT64_FORMAT " this node may see stay commitments: no member's copy filled them in",
						W.channel, W.disclose[W.disclose_pos])));
	W.disclose_pos++;
	W.disclose_tries = 0;
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

/*
 * A member's server answers fetches, and a Byzantine one may run anything
 * that speaks the protocol: check the shape before reading a value.
 */
static bool
decisions_shaped(const PGresult *res)
{
	int			r;

	if (PQnfields(res) != 3)
		return false;
	for (r = 0; r < PQntuples(res); r++)
		if (PQgetisnull(res, r, 0) || PQgetlength(res, r, 0) != 8 || PQgetisnull(res, r, 1))
			return false;
	return true;
}

static int
catch_up_from(Member *m)
{
	char		from[32],
				count[16];
	ReadToken	tok;
	const char *vals[6] = {W.channel, from, count, tok.req, tok.at, tok.sig};
	PGresult   *res;
	int			applied = 0;
	int			r = 0;

	snprintf(from, sizeof(from), UINT64_FORMAT, W.next_height);
	snprintf(count, sizeof(count), "%d", CATCHUP_CHUNK);
	make_read_token(&tok, m->pub);
	res = ll_link_fetch(m->link,
						"SELECT d.height, d.decision, b "
						"FROM ledger.decisions($1, $2, $3, $4::bytea, $5::bigint, $6::bytea) d "
						"LEFT JOIN LATERAL unnest(d.batches) b ON true ORDER BY d.height",
						6, NULL, vals, NULL, NULL);
	if (res == NULL)
		return 0;
	if (!decisions_shaped(res))
	{
		ereport(WARNING,
				(errmsg("peer \"%s\" answered a catch-up request with rows of another shape", m->name),
				 errdetail("Expected (height bigint, decision bytea, batch bytea) in binary.")));
		PQclear(res);
		return 0;
	}
	while (r < PQntuples(res))
	{
		uint64		h = pg_ntoh64(*(uint64 *) PQgetvalue(res, r, 0));
		bft_msg		msg;
		ll_payload	p;

		if (h != W.next_height ||
			!verified_decision((const uint8 *) PQgetvalue(res, r, 1),
							   PQgetlength(res, r, 1), h, &msg) ||
			ll_payload_decode(msg.u.resp.payload, msg.u.resp.payload_len, &p) != 0)
		{
			ereport(WARNING,
					(errmsg("peer \"%s\" sent an unverifiable decision for height " UINT64_FORMAT,
							m->name, h)));
			break;
		}
		/* the certificate vouches for the batches it names */
		W.certified = p.batch_hashes;
		W.ncertified = p.nbatches;
		for (; r < PQntuples(res) && pg_ntoh64(*(uint64 *) PQgetvalue(res, r, 0)) == h; r++)
		{
			ll_batch	b;

			if (!PQgetisnull(res, r, 2) &&
				batch_ok((const uint8 *) PQgetvalue(res, r, 2), PQgetlength(res, r, 2), &b))
				mempool_add(b.batch_hash, (const uint8 *) PQgetvalue(res, r, 2), PQgetlength(res, r, 2));
		}
		W.certified = NULL;
		W.ncertified = 0;
		apply_payload(h, msg.u.resp.payload, msg.u.resp.payload_len, &msg.u.resp.cert);
		if (W.retiring)
			break;
		applied++;
	}
	PQclear(res);
	return applied;
}

/*
 * Catching up is a fetch the worker waits for (ll_link_fetch, bounded by
 * its timeout), and a member's height is only its word.  One liar saying
 * it is far ahead and then answering slowly, or with nothing, would
 * otherwise have this worker ask it again at every turn of the loop.  So
 * a node catches up when f+1 validators say they are ahead (one of them
 * honest), or on anyone's word after UNVOUCHED_MS without progress, asks
 * the highest first, and a member that gave nothing rests before it is
 * asked again (2 s, doubling up to a minute).
 */
#define UNVOUCHED_MS 30000
#define CATCHUP_REST_MS 2000
#define CATCHUP_REST_MAX_MS 60000

static int
validators_ahead(uint64 by)
{
	int			ahead = 0;
	uint32		v;

	for (v = 0; v < W.valset.n; v++)
	{
		int			k = member_of(W.valset.v[v].pubkey);

		if (k >= 0 && k != W.self && !W.members[k].mismatch &&
			W.members[k].height >= (int64) (W.next_height + by))
			ahead++;
	}
	return ahead;
}

/* The member claiming the greatest height above ours that is not resting. */
static int
catch_up_source(TimestampTz now)
{
	int			best = -1;
	int			i;

	for (i = 0; i < W.nmembers; i++)
		if (W.members[i].link && !W.members[i].mismatch &&
			W.members[i].height > (int64) W.next_height &&
			now >= W.members[i].catchup_rest_until &&
			(best < 0 || W.members[i].height > W.members[best].height))
			best = i;
	return best;
}

static int
catch_up_all_from(Member *m)
{
	int			n,
				total = 0;

	while ((n = catch_up_from(m)) > 0)
	{
		total += n;
		CHECK_FOR_INTERRUPTS();
		if (n < CATCHUP_CHUNK)
			break;
	}
	if (total > 0 || W.retiring)	/* reached this node's removal: no fault of m */
		m->catchup_rest_ms = 0;
	else
	{
		m->catchup_rest_ms = Min(Max(m->catchup_rest_ms * 2, CATCHUP_REST_MS), CATCHUP_REST_MAX_MS);
		m->catchup_rest_until = GetCurrentTimestamp() + (TimestampTz) m->catchup_rest_ms * 1000;
		ereport(LOG,
				(errmsg("channel \"%s\": peer \"%s\" said it is at height " INT64_FORMAT " but gave no block to catch up from; not asking it again for %d ms",
						W.channel, m->name, m->height, m->catchup_rest_ms),
				 errdetail("It sent no block with a valid certificate, or did not answer in time; ledger.peers shows its last error.")));
	}
	return total;
}

void
maybe_catch_up(void)
{
	int			need = W.valset.n > 0 ? (int) (W.valset.n - 1) / 3 + 1 : 1;
	TimestampTz now = GetCurrentTimestamp();
	int			best = -1;
	int			total = 0;

	if (W.retiring)
		return;
	if (validators_ahead(1) < need)
	{
		/*
		 * Fewer vouch for it when the validators this node knows at its
		 * height have mostly left since: then any claim is tried, now and
		 * then.
		 */
		if (!TimestampDifferenceExceeds(W.last_progress, now, UNVOUCHED_MS))
			return;
	}
	else if (validators_ahead(2) < need && !TimestampDifferenceExceeds(W.last_progress, now, 2000))
		return;
	while (total == 0 && !W.retiring && (best = catch_up_source(now)) >= 0)
	{
		total = catch_up_all_from(&W.members[best]);
		now = GetCurrentTimestamp();
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

