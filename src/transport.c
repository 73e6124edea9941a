/*
 * transport.c
 *		Links from a channel's consensus worker to its peers, over libpq.
 *
 * Each peer is reached like a logical-replication publisher: with its
 * conninfo, so pg_hba.conf, SCRAM and TLS protect the link.  Frames for a
 * peer accumulate while a ledger.deliver() call is in flight and leave
 * together in the next one: under load one round trip carries many
 * messages, idle links cost nothing.  Everything is non-blocking; the
 * worker waits on the sockets together with its latch.
 */
#include "postgres.h"

#include <poll.h>

#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "bft.h"
#include "consensus.h"
#include "ll_wire.h"
#include "transport.h"

#define RECONNECT_MS 500
#define CONNECT_MS 5000			/* libpq leaves a non-blocking connect unbounded */
#define FETCH_IDLE_MS 3000		/* a fetch with nothing arriving that long fails */
#define FETCH_MAX_MS 60000		/* a fetch fails after that long in any case */
#define MAX_UNSENT (16 * 1024 * 1024)	/* frames kept for a slow peer */

static void
link_set_state(LLLink *l, const char *state, const char *msg)
{
	strlcpy(l->state, state, sizeof(l->state));
	if (msg)
	{
		size_t		n;

		strlcpy(l->message, msg, sizeof(l->message));
		/* libpq messages end with a newline */
		n = strlen(l->message);
		while (n > 0 && (l->message[n - 1] == '\n' || l->message[n - 1] == ' '))
			l->message[--n] = '\0';
	}
}

LLLink *
ll_link_new(const char *name, const char *conninfo, const uint8 pub[32])
{
	LLLink	   *l = MemoryContextAllocZero(TopMemoryContext, sizeof(LLLink));

	l->name = MemoryContextStrdup(TopMemoryContext, name);
	l->conninfo = MemoryContextStrdup(TopMemoryContext, conninfo);
	memcpy(l->pubkey, pub, 32);
	ll_buf_init(&l->out, ll_palloc_realloc_top);
	ll_buf_init(&l->call, ll_palloc_realloc_top);
	link_set_state(l, "connecting", "");
	l->rtt_ms = -1;
	return l;
}

static void
link_close(LLLink *l, const char *why)
{
	/* why may point into the connection's error buffer: keep it first */
	link_set_state(l, "down", why);
	if (l->conn)
		PQfinish(l->conn);
	l->conn = NULL;
	l->prepared = false;
	l->inflight = 0;
	l->connecting = false;
	l->next_attempt = GetCurrentTimestamp() + RECONNECT_MS * 1000;
}

static void
link_start_connect(LLLink *l)
{
	/* no connect_timeout: libpq applies it only to blocking connects */
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {l->conninfo, "loopledger_peer", NULL};

	l->conn = PQconnectStartParams(keys, vals, 1);
	l->conn_no++;
	l->connect_started = GetCurrentTimestamp();
	if (l->conn == NULL || PQstatus(l->conn) == CONNECTION_BAD)
	{
		link_close(l, l->conn ? PQerrorMessage(l->conn) : "out of memory");
		return;
	}
	l->connecting = true;
	l->poll = PGRES_POLLING_WRITING;
}

/*
 * PQconnectPoll must only be called once the socket is ready for what it
 * last asked: called early, it takes a connect still in progress for done
 * and then blocks the worker writing the startup packet (seen with a peer
 * whose network drops packets: the worker hung until TCP gave up).
 */
static bool
connect_ready(LLLink *l)
{
	struct pollfd p;

	p.fd = PQsocket(l->conn);
	p.events = l->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	p.revents = 0;
	return p.fd != PGINVALID_SOCKET && poll(&p, 1, 0) > 0;
}

static void
link_poll_connect(LLLink *l)
{
	l->poll = PQconnectPoll(l->conn);
	if (l->poll == PGRES_POLLING_FAILED)
		link_close(l, PQerrorMessage(l->conn));
	else if (l->poll == PGRES_POLLING_OK)
	{
		l->connecting = false;
		PQsetnonblocking(l->conn, 1);
		if (!PQenterPipelineMode(l->conn))
		{
			link_close(l, PQerrorMessage(l->conn));
			return;
		}
		link_set_state(l, "up", "");
	}
}

/* What a query of ours may give; anything else is a peer speaking out of turn. */
static bool
result_expected(const PGresult *r)
{
	switch (PQresultStatus(r))
	{
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
		case PGRES_FATAL_ERROR:
		case PGRES_NONFATAL_ERROR:
		case PGRES_BAD_RESPONSE:
			return true;
		default:
			return false;
	}
}

/*
 * libpq keeps every NOTIFY a server sends until it is read or the
 * connection closed: a peer could fill this process's memory with them.
 */
static void
drop_notifies(PGconn *c)
{
	PGnotify   *n;

	while ((n = PQnotifies(c)) != NULL)
		PQfreemem(n);
}

/* Read results of calls in flight; false if the link broke. */
static bool
link_read(LLLink *l)
{
	PGresult   *res;

	if (!PQconsumeInput(l->conn))
	{
		link_close(l, PQerrorMessage(l->conn));
		return false;
	}
	drop_notifies(l->conn);
	while (l->inflight > 0 && !PQisBusy(l->conn))
	{
		res = PQgetResult(l->conn);
		if (res == NULL)
			continue;			/* end of one call's results */
		switch (PQresultStatus(res))
		{
			case PGRES_PIPELINE_SYNC:
				l->rtt_ms = (double) (GetCurrentTimestamp() -
									  l->sent_at[l->oldest % LL_PIPELINE]) / 1000.0;
				l->oldest++;
				l->inflight--;
				break;
			case PGRES_COMMAND_OK:	/* the PREPARE */
				break;
			case PGRES_TUPLES_OK:
				/* a peer's server decides the shape: one text, or a liar */
				if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
				{
					link_close(l, "the peer answered ledger.deliver() with something other than one value");
					PQclear(res);
					return false;
				}
				link_set_state(l, "up", strcmp(PQgetvalue(res, 0, 0), "ok") == 0
							   ? "" : PQgetvalue(res, 0, 0));
				break;
			default:

				/*
				 * A failed PREPARE (the peer's extension missing, or being
				 * restored) would fail every later call on this connection
				 * too: start over, which prepares again.
				 */
				link_close(l, PQresultErrorMessage(res));
				PQclear(res);
				return false;
		}
		PQclear(res);
	}
	return true;
}

/*
 * The whole frames at the start of the unsent ones that make one call: a
 * peer's ledger.deliver() takes a call only whole into the worker's inbox,
 * so a call never exceeds LL_CALL_MAX_BYTES (the largest batch fits).
 */
static size_t
call_cut(const ll_buf *out)
{
	ll_frame_iter it;
	ll_frame	f;
	size_t		cut = 0;

	ll_frame_iter_init(&it, out->data, out->len);
	while (ll_frame_next(&it, &f) == 1)
	{
		size_t		end = (size_t) (f.body - out->data) + f.len;

		if (cut > 0 && end > LL_CALL_MAX_BYTES)
			break;
		cut = end;
	}
	return cut > 0 ? cut : out->len;
}

static void
link_send(LLLink *l, const char *channel, const uint8 self[32])
{
	const char *values[3];
	int			lengths[3];
	int			formats[3] = {0, 1, 1};
	Oid			types[3] = {25, 17, 17};
	size_t		cut = call_cut(&l->out);

	ll_buf_reset(&l->call);
	ll_buf_put(&l->call, l->out.data, cut);
	/*
	 * once the link has a key, every call ends with its number and a MAC of
	 * both and its frames
	 */
	if (l->has_mac_key)
	{
		uint8		mac[32];
		uint8		auth[LL_AUTH_LEN];

		l->mac_seq++;
		if (bft_link_mac(l->mac_key, self, l->pubkey, l->mac_seq, l->call.data, l->call.len, mac) == 0)
		{
			ll_auth_encode(l->mac_seq, mac, auth);
			ll_frame_append(&l->call, LL_FRAME_AUTH, auth, sizeof(auth));
		}
	}
	values[0] = channel;
	lengths[0] = 0;
	values[1] = (const char *) self;
	lengths[1] = 32;
	values[2] = (const char *) l->call.data;
	lengths[2] = (int) l->call.len;
	if (!l->prepared)
	{
		/* parsed and planned once per connection, not per call */
		if (!PQsendPrepare(l->conn, "ll_deliver", "SELECT ledger.deliver($1, $2, $3)", 3, types))
		{
			link_close(l, PQerrorMessage(l->conn));
			return;
		}
		l->prepared = true;
	}
	if (!PQsendQueryPrepared(l->conn, "ll_deliver", 3, values, lengths, formats, 0) ||
		!PQpipelineSync(l->conn))
	{
		/* the frames stay queued for the next connection */
		link_close(l, PQerrorMessage(l->conn));
		return;
	}
	l->sent_at[(l->oldest + l->inflight) % LL_PIPELINE] = GetCurrentTimestamp();
	l->inflight++;
	l->bytes_sent += l->call.len;
	memmove(l->out.data, l->out.data + cut, l->out.len - cut);
	l->out.len -= cut;
}

/* Queue one frame; dropped (and counted) if the peer is far behind. */
void
ll_link_queue(LLLink *l, const uint8 *frame, size_t len)
{
	if (l->out.len + len > MAX_UNSENT)
	{
		l->dropped++;
		return;
	}
	ll_buf_put(&l->out, frame, len);
}

/* Make progress without blocking: connect, flush, read, send. */
void
ll_link_service(LLLink *l, const char *channel, const uint8 self[32])
{
	TimestampTz now = GetCurrentTimestamp();

	if (l->conn == NULL)
	{
		if (now < l->next_attempt)
			return;
		link_start_connect(l);
		if (l->conn == NULL)
			return;
	}
	if (l->connecting)
	{
		/*
		 * A dropped SYN is retried with backoff by the kernel, up to two
		 * minutes: start over instead, so a healed network is found soon.
		 */
		if (now - l->connect_started > (TimestampTz) CONNECT_MS * 1000)
		{
			link_close(l, "could not connect within " CppAsString2(CONNECT_MS) " ms");
			return;
		}
		if (!connect_ready(l))
			return;
		link_poll_connect(l);
		if (l->conn == NULL || l->connecting)
			return;
	}
	if (PQflush(l->conn) < 0)
	{
		link_close(l, PQerrorMessage(l->conn));
		return;
	}
	if (l->inflight > 0 && !link_read(l))
		return;
	l->read_at = now;
	if (l->inflight < LL_PIPELINE && l->out.len > 0)
	{
		link_send(l, channel, self);
		if (l->conn && PQflush(l->conn) < 0)
			link_close(l, PQerrorMessage(l->conn));
	}
	if (l->conn && ll_link_unanswered_ms(l) > 10 * 1000)
		link_close(l, "peer did not answer for 10 seconds");
}

/*
 * How long the oldest call in flight had waited for its answer when this
 * worker last read the link (ms), or 0: time this worker spent busy
 * elsewhere, with answers piling up unread, does not count against the peer.
 */
long
ll_link_unanswered_ms(LLLink *l)
{
	TimestampTz sent;

	if (l->conn == NULL || l->connecting || l->inflight == 0)
		return 0;
	sent = l->sent_at[l->oldest % LL_PIPELINE];
	return l->read_at > sent ? (long) ((l->read_at - sent) / 1000) : 0;
}

/* Socket and events to wait for, or -1. */
int
ll_link_wait_events(LLLink *l, pgsocket *sock)
{
	if (l->conn == NULL)
		return 0;
	*sock = PQsocket(l->conn);
	if (*sock == PGINVALID_SOCKET)
		return 0;
	if (l->connecting)
		return l->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
	if (PQflush(l->conn) == 1)
		return WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE;
	return WL_SOCKET_READABLE;
}

/* Milliseconds until this link wants service without socket activity. */
long
ll_link_timeout(LLLink *l)
{
	if (l->conn == NULL)
		return Max(1, (long) ((l->next_attempt - GetCurrentTimestamp()) / 1000));
	return 1000;
}

/*
 * Fetches (catch-up, missing batches) run on a second connection, outside
 * any transaction, and the worker waits for them.  So they are bounded: a
 * fetch fails once nothing has arrived for FETCH_IDLE_MS (a silent
 * network, a hung server, or a liar holding the call), or after
 * FETCH_MAX_MS in all (a liar dripping bytes); a slow but flowing answer
 * is waited for.  The caller then asks someone else.
 */
typedef struct Fetch
{
	TimestampTz idle;			/* fails if nothing arrives by then */
	TimestampTz hard;			/* fails by then in any case */
	bool		latched;		/* the latch was set meanwhile */
} Fetch;

/* Wait for the fetch socket; the events seen, or 0 once out of time. */
static int
fetch_sock_wait(PGconn *c, Fetch *f, bool write, bool read)
{
	long		left = (long) ((Min(f->idle, f->hard) - GetCurrentTimestamp()) / 1000);
	int			rc;

	if (left <= 0)
		return 0;
	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH |
						   (read ? WL_SOCKET_READABLE : 0) | (write ? WL_SOCKET_WRITEABLE : 0),
						   PQsocket(c), left, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		f->latched = true;
		CHECK_FOR_INTERRUPTS();
	}
	if (rc & WL_SOCKET_READABLE)
		f->idle = GetCurrentTimestamp() + (TimestampTz) FETCH_IDLE_MS * 1000;
	return rc & ~WL_TIMEOUT ? rc : (GetCurrentTimestamp() < Min(f->idle, f->hard) ? WL_TIMEOUT : 0);
}

static void
fetch_fail(LLLink *l, const char *why)
{
	link_set_state(l, l->state, why ? why : PQerrorMessage(l->sync));
	PQfinish(l->sync);
	l->sync = NULL;
}

/* Connect the fetch connection, polling only once the socket is ready. */
static bool
fetch_connect(LLLink *l, Fetch *f)
{
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {l->conninfo, "loopledger_peer_fetch", NULL};
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (l->sync)
		PQfinish(l->sync);
	l->sync = PQconnectStartParams(keys, vals, 1);
	if (l->sync == NULL)
		return false;
	while (st != PGRES_POLLING_OK)
	{
		int			rc;

		if (st == PGRES_POLLING_FAILED || PQstatus(l->sync) == CONNECTION_BAD)
		{
			fetch_fail(l, NULL);
			return false;
		}
		rc = fetch_sock_wait(l->sync, f, st == PGRES_POLLING_WRITING,
							 st == PGRES_POLLING_READING);
		if (rc == 0)
		{
			fetch_fail(l, "could not connect for a fetch within " CppAsString2(FETCH_IDLE_MS) " ms");
			return false;
		}
		if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			st = PQconnectPoll(l->sync);
	}
	PQsetnonblocking(l->sync, 1);
	return true;
}

/*
 * The query's result, read without blocking: libpq's PQgetResult blocks
 * until the server says it is ready for the next query, so it is only
 * called while PQisBusy says it will not.
 */
static PGresult *
fetch_result(LLLink *l, Fetch *f)
{
	PGresult   *first = NULL;

	for (;;)
	{
		int			flush = PQflush(l->sync);
		int			rc;

		if (flush < 0 || !PQconsumeInput(l->sync))
			break;
		while (!PQisBusy(l->sync))
		{
			PGresult   *r = PQgetResult(l->sync);

			if (r == NULL)
			{
				drop_notifies(l->sync);
				return first;
			}
			/*
			 * A server that answers a query with COPY keeps libpq in that
			 * state: results without end, and never a read of the socket.
			 */
			if (!result_expected(r))
			{
				PQclear(r);
				PQclear(first);
				fetch_fail(l, "peer answered a fetch with a COPY");
				return NULL;
			}
			if (first == NULL)
				first = r;
			else
				PQclear(r);
		}
		rc = fetch_sock_wait(l->sync, f, flush == 1, true);
		if (rc == 0)
		{
			PQclear(first);
			fetch_fail(l, "peer did not answer a fetch in time");
			return NULL;
		}
	}
	PQclear(first);
	fetch_fail(l, NULL);
	return NULL;
}

/* Run one query on the fetch connection; NULL on failure. */
PGresult *
ll_link_fetch(LLLink *l, const char *sql, int nparams, const Oid *types,
			  const char *const *values, const int *lengths, const int *formats)
{
	TimestampTz now = GetCurrentTimestamp();
	Fetch		f = {now + (TimestampTz) FETCH_IDLE_MS * 1000,
	now + (TimestampTz) FETCH_MAX_MS * 1000, false};
	PGresult   *res = NULL;

	if ((l->sync != NULL && PQstatus(l->sync) == CONNECTION_OK) || fetch_connect(l, &f))
	{
		if (!PQsendQueryParams(l->sync, sql, nparams, types, values, lengths, formats, 1))
			fetch_fail(l, NULL);
		else
			res = fetch_result(l, &f);
	}
	/* what woke us is for the main loop */
	if (f.latched)
		SetLatch(MyLatch);
	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		link_set_state(l, l->state, PQresultErrorMessage(res));
		PQclear(res);
		res = NULL;
	}
	return res;
}

/* The DBA gave the peer another connection string: reconnect with it. */
void
ll_link_set_conninfo(LLLink *l, const char *conninfo)
{
	char	   *old = l->conninfo;

	l->conninfo = MemoryContextStrdup(TopMemoryContext, conninfo);
	pfree(old);
	link_close(l, "its connection string changed");
	l->next_attempt = GetCurrentTimestamp();
	if (l->sync)
		PQfinish(l->sync);
	l->sync = NULL;
}

void
ll_link_free(LLLink *l)
{
	if (l->conn)
		PQfinish(l->conn);
	if (l->sync)
		PQfinish(l->sync);
	l->conn = l->sync = NULL;
}

/* ll_buf allocator whose memory outlives every transaction. */
void *
ll_palloc_realloc_top(void *ptr, size_t size)
{
	if (ptr == NULL)
		return MemoryContextAllocHuge(TopMemoryContext, size);
	return repalloc_huge(ptr, size);
}
