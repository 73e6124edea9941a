/*
 * transport.h
 *		libpq links from a consensus worker to its peers (transport.c).
 */
#ifndef LL_TRANSPORT_H
#define LL_TRANSPORT_H

#include "postgres.h"

#include "libpq-fe.h"
#include "utils/timestamp.h"

#include "ll_core.h"

#define LL_PIPELINE 4			/* deliver calls in flight per peer */

typedef struct LLLink
{
	char	   *name;
	char	   *conninfo;
	uint8		pubkey[32];
	PGconn	   *conn;			/* async link for ledger.deliver() */
	uint64		conn_no;		/* counts connection attempts (new socket) */
	PGconn	   *sync;			/* blocking link for fetches */
	bool		connecting;
	PostgresPollingStatusType poll;
	bool		prepared;		/* ll_deliver statement prepared */
	int			inflight;		/* deliver calls sent, not answered */
	uint64		oldest;			/* number of the oldest call in flight */
	TimestampTz sent_at[LL_PIPELINE];
	TimestampTz next_attempt;
	TimestampTz connect_started;
	TimestampTz read_at;		/* answers were last read then */
	ll_buf		out;			/* frames not sent yet */
	ll_buf		call;			/* the frames of the call being sent, and its MAC */
	bool		has_mac_key;	/* calls carry a MAC under mac_key */
	uint8		mac_key[32];	/* link key agreed with the peer (bft_link_key) */
	uint64		mac_seq;		/* calls sent under mac_key */
	uint64		bytes_sent;
	uint64		dropped;
	double		rtt_ms;
	char		state[32];
	char		message[200];
} LLLink;

extern void *ll_palloc_realloc_top(void *ptr, size_t size);
extern LLLink *ll_link_new(const char *name, const char *conninfo, const uint8 pub[32]);
extern void ll_link_set_conninfo(LLLink *l, const char *conninfo);
extern void ll_link_queue(LLLink *l, const uint8 *frame, size_t len);
extern void ll_link_service(LLLink *l, const char *channel, const uint8 self[32]);
extern int	ll_link_wait_events(LLLink *l, pgsocket *sock);
extern long ll_link_timeout(LLLink *l);
extern long ll_link_unanswered_ms(LLLink *l);
extern PGresult *ll_link_fetch(LLLink *l, const char *sql, int nparams, const Oid *types,
							   const char *const *values, const int *lengths,
							   const int *formats);
extern void ll_link_free(LLLink *l);

#endif							/* LL_TRANSPORT_H */
