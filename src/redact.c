/*
 * redact.c
 *		What a peer may read of decided batches: only the rows at or below
 *		its clearance come with content, the rest as commitments.
 *
 * Peers fetch decided blocks (catch-up) and missing batches through
 * ledger.decisions() and ledger.batches(), logging in as the
 * loopledger_peer role.  The login says nothing about which member is
 * asking, so each call carries a read token signed with the member's node
 * key (consensus.h); the batches are then redacted to that member's
 * clearance before they leave this server.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "bft.h"
#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"

PG_FUNCTION_INFO_V1(ll_reader_clearance);
PG_FUNCTION_INFO_V1(ll_redact_batch);

static void
refuse_reader(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("read token refused"),
			 errdetail("%s", detail),
			 errhint("Peers sign a fresh token with their node key; check that the caller is a member and its clock is right.")));
}

/*
 * Tier index up to which the member that signed the token may read
 * content (-1: none).  A removed member's stays what it was: it may read
 * the heights it was a member at (ledger.reader_last_height), so that one
 * that was behind when it was removed catches up to the block that
 * removed it, and nothing after.
 */
static int
member_clearance(int32 channel_id, const uint8 *pub)
{
	bool		isnull;
	Datum		d;

	SPI_execute_with_args("SELECT array_position(c.tiers, p.clearance) - 1 "
						  "FROM ledger.peer p JOIN ledger.channel c USING (channel_id) "
						  "WHERE p.channel_id = $1 AND p.pubkey = $2", 2,
						  (Oid[]) {INT4OID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(channel_id), PointerGetDatum(ll_bytea(pub, 32))},
						  NULL, true, 1);
	if (SPI_processed != 1)
		refuse_reader("The token's key is not a member of the channel here.");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt32(d);
}

/* ledger.reader_clearance(channel, requester, at_ms, sig) */
Datum
ll_reader_clearance(PG_FUNCTION_ARGS)
{
	text	   *channel;
	bytea	   *req;
	int64		at_ms;
	bytea	   *sig;
	int64		now_ms;
	LLChannel	ch;
	bytea	   *chain;
	uint8		msg[LL_READ_TOKEN_LEN];
	uint8		seed[32],
				self[32];
	int			t;

#ifdef LL_FAULT_INJECTION
	ll_fault_stall();
#endif

	/* not STRICT: a NULL must refuse, not read as "no clearance" silently */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		refuse_reader("A read token has a channel, a key, a time and a signature; one is NULL.");
	channel = PG_GETARG_TEXT_PP(0);
	req = PG_GETARG_BYTEA_PP(1);
	at_ms = PG_GETARG_INT64(2);
	sig = PG_GETARG_BYTEA_PP(3);
	if (VARSIZE_ANY_EXHDR(req) != 32 || VARSIZE_ANY_EXHDR(sig) != 64)
		refuse_reader("A token has a 32-byte key and a 64-byte signature.");
	now_ms = (GetCurrentTimestamp() / 1000) +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
	if (at_ms < now_ms - LL_READ_TOKEN_MS || at_ms > now_ms + LL_READ_TOKEN_MS)
		refuse_reader("The token is too old or from the future.");
	chain = DatumGetByteaPP(DirectFunctionCall1(ll_genesis_hash_sql, PointerGetDatum(channel)));
	if (!ll_load_node_key(seed, self, false))
		refuse_reader("This server has no node key.");
	explicit_bzero(seed, sizeof(seed));
	ll_read_token_msg(msg, (const uint8 *) VARDATA_ANY(chain),
					  (const uint8 *) VARDATA_ANY(req), self, (uint64) at_ms);
	if (!bft_ed25519_verify(NULL, (const uint8 *) VARDATA_ANY(req), msg, sizeof(msg),
							(const uint8 *) VARDATA_ANY(sig)))
		refuse_reader("The token's signature does not verify (or it was made for another member).");
	SPI_connect();
	ll_channel_lookup(text_to_cstring(channel), &ch);
	t = member_clearance(ch.id, (const uint8 *) VARDATA_ANY(req));
	SPI_finish();
	PG_RETURN_INT32(t);
}

static bool
accept_signed(void *ctx, const uint8_t pub[32], const uint8_t *msg, size_t len,
			  const uint8_t sig[64])
{
	return true;				/* checked when the batch was stored */
}

/* ledger.redact_batch(body, max_tier): the copy a reader may have. */
Datum
ll_redact_batch(PG_FUNCTION_ARGS)
{
	bytea	   *body = PG_GETARG_BYTEA_PP(0);
	int32		max_tier = PG_GETARG_INT32(1);
	ll_batch	b;
	ll_buf		out;

	if (ll_batch_decode((const uint8 *) VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
						VARSIZE_ANY_EXHDR(body), accept_signed, NULL, &b) != 0)
		elog(ERROR, "a stored batch does not decode");
	if (ll_batch_top_tier(&b) <= max_tier)
		PG_RETURN_BYTEA_P(body);
	ll_buf_init(&out, ll_palloc_realloc);
	if (ll_batch_redact(&b, max_tier, &out) != 0)
		elog(ERROR, "could not redact a stored batch");
	PG_RETURN_BYTEA_P(ll_bytea(out.data, out.len));
}
