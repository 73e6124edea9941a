/*
 * peer.c
 *		Node keys, channel members, the message inbox and the launcher of
 *		per-channel consensus workers.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "libpq-fe.h"

#include "bft.h"
#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"

PG_FUNCTION_INFO_V1(ll_node_key);
PG_FUNCTION_INFO_V1(ll_add_peer);
PG_FUNCTION_INFO_V1(ll_remove_peer);
PG_FUNCTION_INFO_V1(ll_genesis_hash_sql);
PG_FUNCTION_INFO_V1(ll_set_peer_clearance);
PG_FUNCTION_INFO_V1(ll_set_peer_login);
PG_FUNCTION_INFO_V1(ll_set_peer_conninfo);
PG_FUNCTION_INFO_V1(ll_deliver);
PG_FUNCTION_INFO_V1(ll_peer_status);
PG_FUNCTION_INFO_V1(ll_consensus_status);

#define NODE_KEY_FILE "loopledger_node.key"

LLConsShared *ll_cons = NULL;

static int	reserve_slot(int32 channel_id, const char *name);
static void require_consensus_db(const char *channel);

int
ll_cons_reserve(int32 channel_id, const char *name)
{
	return reserve_slot(channel_id, name);
}

/* ---------------------------------------------------------------------
 * Shared memory
 * --------------------------------------------------------------------- */

Size
ll_cons_shmem_size(void)
{
	Size		s = offsetof(LLConsShared, waits);

	s = add_size(s, mul_size(MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts + 8,
							 sizeof(LLTxWait)));
	s = MAXALIGN(s);
	s = add_size(s, mul_size(LL_MAX_CONS, LL_INBOX_SIZE + LL_TXQ_SIZE));
	return s;
}

static char *queue_base;

void
ll_cons_shmem_init(void)
{
	bool		found;
	int			nwaits = MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts + 8;
	LWLockPadded *locks;
	int			i;

	ll_cons = ShmemInitStruct("loopledger consensus", ll_cons_shmem_size(), &found);
	queue_base = (char *) ll_cons +
		MAXALIGN(offsetof(LLConsShared, waits) + sizeof(LLTxWait) * nwaits);
	if (found)
		return;
	memset(ll_cons, 0, offsetof(LLConsShared, waits));
	locks = GetNamedLWLockTranche("loopledger consensus");
	for (i = 0; i < LL_MAX_CONS; i++)
	{
		LLConsSlot *s = &ll_cons->slots[i];

		SpinLockInit(&s->mutex);
		pg_atomic_init_u64(&s->generation, 0);
		pg_atomic_init_u64(&s->applying, 0);
		s->lock = &locks[i].lock;
	}
	ll_cons->nwaits = nwaits;
	for (i = 0; i < nwaits; i++)
	{
		memset(&ll_cons->waits[i], 0, sizeof(LLTxWait));
		pg_atomic_init_u32(&ll_cons->waits[i].state, LL_TX_IDLE);
	}
}

char *
ll_cons_inbox(int slot)
{
	return queue_base + (Size) slot * (LL_INBOX_SIZE + LL_TXQ_SIZE);
}

char *
ll_cons_txq(int slot)
{
	return ll_cons_inbox(slot) + LL_INBOX_SIZE;
}

LLConsSlot *
ll_cons_slot_for(int32 channel_id)
{
	int			i;

	if (ll_cons == NULL)
		return NULL;
	for (i = 0; i < LL_MAX_CONS; i++)
		if (ll_cons->slots[i].channel_id == channel_id && ll_cons->slots[i].dboid == MyDatabaseId)
			return &ll_cons->slots[i];
	return NULL;
}

/* Append a record to q, under the slot's lock; false if it does not fit. */
static bool
queue_append(LLQueue *q, char *base, Size cap, const void *hdr, size_t hlen,
			 const void *data, size_t len)
{
	if (q->used + hlen + len > cap)
	{
		q->dropped++;
		return false;
	}
	memcpy(base + q->used, hdr, hlen);
	if (len > 0)
		memcpy(base + q->used + hlen, data, len);
	q->used += hlen + len;
	return true;
}

static void
wake_slot_worker(LLConsSlot *slot)
{
	Latch	   *latch;

	SpinLockAcquire(&slot->mutex);
	latch = slot->latch;
	SpinLockRelease(&slot->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Append one record (hdr then data) to a slot's inbox or transaction
 * queue; false when it does not fit (the sender retries or resends).
 */
bool
ll_queue_put(LLConsSlot *slot, bool inbox, const void *hdr, size_t hlen,
			 const void *data, size_t len)
{
	LLQueue    *q = inbox ? &slot->inbox : &slot->txq;
	Size		cap = inbox ? LL_INBOX_SIZE : LL_TXQ_SIZE;
	char	   *base = inbox ? ll_cons_inbox(slot - ll_cons->slots)
		: ll_cons_txq(slot - ll_cons->slots);
	bool		ok;

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	ok = queue_append(q, base, cap, hdr, hlen, data, len);
	LWLockRelease(slot->lock);
	if (ok)
		wake_slot_worker(slot);
	return ok;
}

/*
 * A peer's call into the inbox, within its sender's share: one sender
 * flooding the inbox used to make every other member's calls come back
 * busy.  NULL when taken, else why not.
 */
const char *
ll_inbox_put(LLConsSlot *slot, const uint8 *sender, const void *hdr, size_t hlen,
			 const void *data, size_t len)
{
	const char *why = NULL;
	int			i;

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	for (i = 0; i < slot->inbox_nsenders; i++)
		if (memcmp(slot->inbox_sender[i], sender, 32) == 0)
			break;
	if (i == slot->inbox_nsenders)
	{
		if (i == LL_MAX_PEERS)
			why = "busy";		/* more senders than members since the last take */
		else
		{
			memcpy(slot->inbox_sender[i], sender, 32);
			slot->inbox_sender_bytes[i] = 0;
			slot->inbox_nsenders++;
		}
	}
	if (why == NULL && slot->inbox_sender_bytes[i] + hlen + len > LL_SENDER_SHARE)
		why = "over its share";
	if (why == NULL && !queue_append(&slot->inbox, ll_cons_inbox(slot - ll_cons->slots),
									 LL_INBOX_SIZE, hdr, hlen, data, len))
		why = "busy";
	if (why == NULL)
		slot->inbox_sender_bytes[i] += hlen + len;
	LWLockRelease(slot->lock);
	if (why == NULL)
		wake_slot_worker(slot);
	return why;
}

/* Move everything queued into dst (worker side). */
Size
ll_queue_take(LLConsSlot *slot, bool inbox, char *dst, Size cap)
{
	LLQueue    *q = inbox ? &slot->inbox : &slot->txq;
	char	   *base = inbox ? ll_cons_inbox(slot - ll_cons->slots)
		: ll_cons_txq(slot - ll_cons->slots);
	Size		n;

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	n = Min(q->used, cap);
	Assert(n == q->used);
	memcpy(dst, base, n);
	q->used = 0;
	if (inbox)
		slot->inbox_nsenders = 0;
	LWLockRelease(slot->lock);
	return n;
}

/* ---------------------------------------------------------------------
 * Node key: a 32-byte Ed25519 seed in a 0600 file of the data directory.
 * --------------------------------------------------------------------- */

static bool
read_key_file(const char *path, uint8 seed[32])
{
	int			fd = open(path, O_RDONLY | PG_BINARY, 0);
	ssize_t		n;

	if (fd < 0)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open loopledger node key \"%s\": %m", path)));
	}
	n = read(fd, seed, 32);
	close(fd);
	if (n != 32)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("loopledger node key \"%s\" is not 32 bytes", path),
				 errhint("Restore the key file from a backup; a new key is a new identity.")));
	return true;
}

static void
write_key_file(const char *path, uint8 seed[32])
{
	char		tmp[MAXPGPATH];
	int			fd;

	if (!pg_strong_random(seed, 32))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random node key")));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
	if (fd < 0 || write(fd, seed, 32) != 32 || pg_fsync(fd) != 0 || close(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write loopledger node key \"%s\": %m", tmp)));
	/* link() fails if another backend created the key meanwhile */
	if (link(tmp, path) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create loopledger node key \"%s\": %m", path)));
	unlink(tmp);
	fsync_fname(".", true);
}

/* Load (optionally creating) this node's key; false if absent. */
bool
ll_load_node_key(uint8 seed[32], uint8 pub[32], bool create)
{
	bft_ed25519_key *key;

	if (!read_key_file(NODE_KEY_FILE, seed))
	{
		if (!create)
			return false;
		write_key_file(NODE_KEY_FILE, seed);
		if (!read_key_file(NODE_KEY_FILE, seed))
			elog(ERROR, "node key vanished after creation");
	}
	key = bft_ed25519_new(seed);
	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not load the Ed25519 node key with OpenSSL")));
	bft_ed25519_pubkey(key, pub);
	bft_ed25519_free(key);
	return true;
}

/*
 * Entry numbers must be unique across the consortium, yet each node draws
 * them from its own sequence: give each node its own range, taken from the
 * top bits of its public key (add_peer refuses members whose ranges clash).
 */
#define ENTRY_RANGE_BITS 43

static int64
entry_range_start(const uint8 pub[32])
{
	uint64		prefix = ((uint64) pub[0] << 12) | ((uint64) pub[1] << 4) | (pub[2] >> 4);

	return (int64) (prefix << ENTRY_RANGE_BITS);
}

static void
move_entry_sequence(const uint8 pub[32])
{
	int64		start = entry_range_start(pub);
	int64		end = start + ((int64) 1 << ENTRY_RANGE_BITS);
	char	   *bounds;

	SPI_connect();
	SPI_execute_with_args("SELECT pg_catalog.setval('ledger.entry_seq'::pg_catalog.regclass, $1, false) "
						  "FROM ledger.entry_seq WHERE last_value < $1 OR last_value >= $2",
						  2, (Oid[]) {INT8OID, INT8OID},
						  (Datum[]) {Int64GetDatum(start + 1), Int64GetDatum(end)},
						  NULL, false, 0);
	/*
	 * Every role may draw numbers (the entry default runs as the inserting
	 * role): one drawing them in bulk runs out of this range, and must
	 * then get an error, not numbers of another member's range.
	 */
	bounds = psprintf("ALTER SEQUENCE ledger.entry_seq MINVALUE " INT64_FORMAT " MAXVALUE " INT64_FORMAT
					  " START WITH " INT64_FORMAT, start + 1, end - 1, start + 1);
	SPI_execute(bounds, false, 0);
	SPI_finish();
}

Datum
ll_node_key(PG_FUNCTION_ARGS)
{
	uint8		seed[32];
	uint8		pub[32];
	char		hex[65];

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may read or create the loopledger node key")));
	ll_load_node_key(seed, pub, true);
	explicit_bzero(seed, sizeof(seed));
	move_entry_sequence(pub);
	hex_encode((const char *) pub, 32, hex);
	hex[64] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}

/* ---------------------------------------------------------------------
 * Members
 * --------------------------------------------------------------------- */

static void
parse_pubkey(const char *hex, uint8 out[32])
{
	size_t		len = strlen(hex);

	if (len == 66 && hex[0] == '\\' && hex[1] == 'x')
	{
		hex += 2;
		len -= 2;
	}
	if (len != 64 || strspn(hex, "0123456789abcdefABCDEF") != 64)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid peer public key \"%s\"", hex),
				 errdetail("A public key is 64 hexadecimal digits (32 bytes)."),
				 errhint("Use the value of ledger.node_key() on the peer.")));
	hex_decode(hex, 64, (char *) out);
}

/* A connection string libpq can read, short enough for the worker's copy. */
static void
check_conninfo(const char *name, const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

	if (opts == NULL)
	{
		char	   *detail = pstrdup(err ? err : "out of memory");

		if (err)
			PQfreemem(err);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid connection string for peer \"%s\"", name),
				 errdetail("%s", detail)));
	}
	PQconninfoFree(opts);
	if (strlen(conninfo) >= LL_CONNINFO_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("connection string for peer \"%s\" is too long", name),
				 errdetail("A connection string has at most %d bytes.", LL_CONNINFO_LEN - 1)));
}

/*
 * Past its genesis once it has a block or a consensus decision (even an
 * empty one): from then on the members are part of every signature.  The
 * channel's row is locked first, and the worker updates it as it applies
 * the first decision (seal_genesis, consensus.c): a genesis change and
 * that decision cannot cross unseen.  The head is read after the lock, in
 * a snapshot of its own.
 */
static int64
channel_head_height(int32 channel_id)
{
	bool		isnull;
	Datum		d;

	SPI_execute_with_args("SELECT 1 FROM ledger.channel WHERE channel_id = $1 FOR NO KEY UPDATE",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)},
						  NULL, false, 0);
	SPI_execute_with_args("SELECT greatest((SELECT max(height) FROM ledger.block WHERE channel_id = $1), "
						  "(SELECT max(height) FROM ledger.consensus_log WHERE channel_id = $1))",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)},
						  NULL, false, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? -1 : DatumGetInt64(d);
}

static bool
tier_exists(int32 channel_id, const char *tier)
{
	SPI_execute_with_args("SELECT 1 FROM ledger.channel WHERE channel_id = $1 AND $2 = ANY (tiers)",
						  2, (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(channel_id), CStringGetTextDatum(tier)},
						  NULL, false, 1);
	return SPI_processed == 1;
}

static char *
lowest_tier(int32 channel_id)
{
	SPI_execute_with_args("SELECT tiers[1] FROM ledger.channel WHERE channel_id = $1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)},
						  NULL, false, 1);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

static void
require_superuser(const char *what)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may %s", what)));
}

/*
 * A removed member keeps its row: its blocks, votes and signatures stay in
 * the chain, and membership_core.c never admits its key or name again.
 */
static void
refuse_removed(const LLChannel *ch, const char *name, const uint8 pub[32], const char *other,
			   const bytea *k)
{
	if (strcmp(other, name) != 0 && memcmp(VARDATA_ANY(k), pub, 32) != 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("peer \"%s\" was removed from channel \"%s\"", other, ch->name),
			 errdetail("A removed member's name and key stay in the channel's history and cannot be added again."),
			 errhint("A removed member comes back under a new name and with a new key (remove its loopledger_node.key before adding it anywhere).")));
}

/*
 * Refuse a name or key in use (also by a removed member) and a key whose
 * entry range clashes with another member's: a removed member's entries
 * stay in the tables.
 */
static void
check_new_member(const LLChannel *ch, const char *name, const uint8 pub[32])
{
	uint64		i;

	SPI_execute_with_args("SELECT name, pubkey, until_height IS NOT NULL FROM ledger.peer "
						  "WHERE channel_id = $1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch->id)},
						  NULL, false, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		bool		isnull;
		char	   *other = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		bytea	   *k = DatumGetByteaPP(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull));

		if (DatumGetBool(SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull)))
			refuse_removed(ch, name, pub, other, k);
		if (strcmp(other, name) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("channel already has a peer named \"%s\"", name)));
		if (memcmp(VARDATA_ANY(k), pub, 32) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("peer \"%s\" already uses this public key", other)));
		if (entry_range_start((const uint8 *) VARDATA_ANY(k)) == entry_range_start(pub))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("the public key of \"%s\" falls in the same entry range as peer \"%s\"",
							name, other),
					 errdetail("Entry numbers are drawn from a range chosen by the first 20 bits of the key."),
					 errhint("Give one of the nodes a new key (remove its loopledger_node.key before adding it anywhere).")));
	}
}

/*
 * The members' slots are shared between decided members (removed ones
 * included) and this node's undecided requests; membership_core.c admits
 * no more, identically on every node, so such a request could never pass.
 */
static void
check_member_room(const LLChannel *ch, int64 head)
{
	bool		isnull;
	int64		decided,
				asked;

	SPI_execute_with_args("SELECT count(*) FILTER (WHERE since_height IS NOT NULL), "
						  "count(*) FILTER (WHERE since_height IS NULL) "
						  "FROM ledger.peer WHERE channel_id = $1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch->id)}, NULL, false, 1);
	decided = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	asked = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	/* no member could vote for the change, nor derive the genesis */
	if (head > 0 && decided == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\" already has blocks of its own and cannot get peers", ch->name),
				 errdetail("The members of a channel with peers form its genesis, before its first block; blocks sealed here alone were never agreed."),
				 errhint("Create a new channel, add its peers before its first block, and enable its tables there.")));
	if (decided >= LL_MAX_MEMBERS)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("channel \"%s\" already has %d members", ch->name, LL_MAX_MEMBERS),
				 errdetail("Removed members keep their place.")));
	if (asked >= LL_MAX_LOCAL_REQUESTS)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("this node already asks to add %d peers to channel \"%s\"",
						LL_MAX_LOCAL_REQUESTS, ch->name),
				 errdetail("A request to add a peer waits until the members have decided it."),
				 errhint("Wait until ledger.peers shows them admitted, or withdraw one with ledger.remove_peer().")));
}

/*
 * Before a channel's first block its members form its genesis; the local
 * genesis block is rewritten with a fixed time so every member derives the
 * same block hash from the same configuration.
 */
static void
make_genesis_deterministic(int32 channel_id)
{
	char	   *name;

	SPI_execute_with_args("SELECT name, config_hash FROM ledger.channel WHERE channel_id = $1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)},
						  NULL, false, 1);
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	{
		bool		isnull;
		Datum		cfg = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		cfg = PointerGetDatum(PG_DETOAST_DATUM_COPY(cfg));
		SPI_execute("SET LOCAL session_replication_role = replica", false, 0);
		SPI_execute_with_args("DELETE FROM ledger.block WHERE channel_id = $1 AND height = 0",
							  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)},
							  NULL, false, 0);
		ll_insert_genesis_at(channel_id, name, cfg, 0);
		SPI_execute("SET LOCAL session_replication_role = origin", false, 0);
	}
}

Datum
ll_add_peer(PG_FUNCTION_ARGS)
{
	LLChannel	ch;
	char	   *name;
	char	   *conninfo;
	char	   *clearance;
	uint8		pub[32];
	int64		head;

	require_superuser("add peers");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel, name, conninfo and pubkey must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	conninfo = text_to_cstring(PG_GETARG_TEXT_PP(2));
	check_conninfo(name, conninfo);
	parse_pubkey(text_to_cstring(PG_GETARG_TEXT_PP(3)), pub);
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid peer name \"%s\"", name),
				 errdetail("A peer name has 1 to %d bytes.", NAMEDATALEN - 1)));
	SPI_connect();
	ll_channel_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &ch);
	require_consensus_db(ch.name);
	clearance = PG_ARGISNULL(4) ? lowest_tier(ch.id) : text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!tier_exists(ch.id, clearance))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a tier of channel \"%s\"", clearance, ch.name)));
	check_new_member(&ch, name, pub);
	/* first: enable_table waits for this lock, and then sees the peer */
	ll_check_peer_tables(ch.id, ch.name, 0);
	head = channel_head_height(ch.id);
	check_member_room(&ch, head);
	if (head <= 0)
		ll_check_tables_for_peers(ch.id, ch.name);
	SPI_execute_with_args("INSERT INTO ledger.peer (channel_id, name, pubkey, conninfo, clearance, since_height, "
						  "genesis_clearance) VALUES ($1, $2, $3, $4, $5, $6, $5)", 6,
						  (Oid[]) {INT4OID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID, INT8OID},
						  (Datum[]) {Int32GetDatum(ch.id), CStringGetTextDatum(name),
							  PointerGetDatum(ll_bytea(pub, 32)), CStringGetTextDatum(conninfo),
						  CStringGetTextDatum(clearance), Int64GetDatum(0)},
						  head > 0 ? "     n" : "      ", false, 0);
	if (head <= 0)
		make_genesis_deterministic(ch.id);
	else
		ereport(NOTICE,
				(errmsg("adding peer \"%s\" to channel \"%s\" is now a membership change", name, ch.name),
				 errdetail("It takes effect two heights after members holding a quorum of the votes have asked for it."),
				 errhint("Run the same ledger.add_peer() call on the other members; see ledger.peers.")));
	if (ll_cons != NULL && reserve_slot(ch.id, ch.name) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("this server already runs consensus for %d channels", LL_MAX_CONS)));
	ll_peers_changed();
	SPI_finish();
	ll_wake_worker();
	PG_RETURN_VOID();
}

/*
 * A peer this node asked to add is not a member yet: removing it withdraws
 * the request (the others never see a removal of a key they do not have).
 * A vote for it already ordered stays counted like any other (there is no
 * retraction on the chain): the notice says so, and until when.
 */
static bool
withdraw_request(const LLChannel *ch, const char *name)
{
	uint8		seed[32],
				self[32];
	bool		isnull;
	Datum		pub;
	int64		height = -1;

	SPI_execute_with_args("DELETE FROM ledger.peer WHERE channel_id = $1 AND name = $2 "
						  "AND since_height IS NULL RETURNING pubkey", 2,
						  (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(ch->id), CStringGetTextDatum(name)},
						  NULL, false, 0);
	if (SPI_processed != 1)
		return false;
	pub = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (ll_load_node_key(seed, self, false))
	{
		SPI_execute_with_args("SELECT max(height) FROM ledger.member_vote WHERE channel_id = $1 "
							  "AND voter = $2 AND op = 'add' AND pubkey = $3 AND NOT decided", 3,
							  (Oid[]) {INT4OID, BYTEAOID, BYTEAOID},
							  (Datum[]) {Int32GetDatum(ch->id), PointerGetDatum(ll_bytea(self, 32)), pub},
							  NULL, true, 1);
		if (SPI_processed == 1)
		{
			Datum		h = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
				height = DatumGetInt64(h);
		}
	}
	SPI_processed = 1;			/* for the caller: one request withdrawn */
	if (height >= 0)
		ereport(NOTICE,
				(errmsg("withdrew this node's request to add peer \"%s\" to channel \"%s\", but its vote still counts", name, ch->name),
				 errdetail("This node's vote for it was ordered at height " INT64_FORMAT " and counts until the change is decided or the vote lapses at height " INT64_FORMAT ": an ordered vote cannot be taken back.",
						   height, height + LL_VOTE_TTL),
				 errhint("Ask the other members not to vote for it.")));
	else
		ereport(NOTICE,
				(errmsg("withdrew this node's request to add peer \"%s\" to channel \"%s\"", name, ch->name),
				 errdetail("The peer was not admitted yet, and no vote of this node for it is ordered; one already sent may still be ordered and would count.")));
	return true;
}

/* After the first block removing a member is this node's vote. */
static void
request_removal(const LLChannel *ch, const char *name)
{
	SPI_execute_with_args("UPDATE ledger.peer SET remove_requested = true WHERE channel_id = $1 "
						  "AND name = $2 AND until_height IS NULL", 2,
						  (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(ch->id), CStringGetTextDatum(name)},
						  NULL, false, 0);
	if (SPI_processed == 1)
		ereport(NOTICE,
				(errmsg("removing peer \"%s\" from channel \"%s\" is now a membership change", name, ch->name),
				 errdetail("It takes effect two heights after members holding a quorum of the votes have asked for it."),
				 errhint("Run the same ledger.remove_peer() call on the other members; see ledger.peers.")));
}

Datum
ll_remove_peer(PG_FUNCTION_ARGS)
{
	LLChannel	ch;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));

	require_superuser("remove peers");
	SPI_connect();
	ll_channel_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &ch);
	if (channel_head_height(ch.id) <= 0)
		SPI_execute_with_args("DELETE FROM ledger.peer WHERE channel_id = $1 AND name = $2", 2,
							  (Oid[]) {INT4OID, TEXTOID},
							  (Datum[]) {Int32GetDatum(ch.id), CStringGetTextDatum(name)},
							  NULL, false, 0);
	else if (!withdraw_request(&ch, name))
		request_removal(&ch, name);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" has no current peer named \"%s\"", ch.name, name)));
	SPI_finish();
	ll_wake_worker();
	PG_RETURN_VOID();
}

/*
 * A peer's connection string is this node's own setting, not part of the
 * chain: it can be given or corrected at any time, for members this node
 * did not add itself too.  The worker reconnects with it within a second.
 */
Datum
ll_set_peer_conninfo(PG_FUNCTION_ARGS)
{
	LLChannel	ch;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(2));

	require_superuser("set the connection strings of peers");
	check_conninfo(name, conninfo);
	SPI_connect();
	ll_channel_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &ch);
	SPI_execute_with_args("UPDATE ledger.peer SET conninfo = $3 WHERE channel_id = $1 AND name = $2 "
						  "AND until_height IS NULL", 3,
						  (Oid[]) {INT4OID, TEXTOID, TEXTOID},
						  (Datum[]) {Int32GetDatum(ch.id), CStringGetTextDatum(name),
						  CStringGetTextDatum(conninfo)}, NULL, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" has no current peer named \"%s\"", ch.name, name)));
	SPI_finish();
	ll_wake_worker();
	PG_RETURN_VOID();
}

Datum
ll_set_peer_login(PG_FUNCTION_ARGS)
{
	LLChannel	ch;
	char	   *name;
	char	   *login = PG_ARGISNULL(2) ? NULL : pstrdup(NameStr(*PG_GETARG_NAME(2)));
	Oid			role;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel and peer name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	require_superuser("set the logins of peers");
	if (login != NULL)
	{
		role = get_role_oid(login, false);
		if (!is_member_of_role_nosuper(role, get_role_oid("loopledger_peer", false)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("role \"%s\" is not a member of loopledger_peer", login),
					 errhint("GRANT loopledger_peer TO %s;", quote_identifier(login))));
	}
	SPI_connect();
	ll_channel_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &ch);
	SPI_execute_with_args("UPDATE ledger.peer SET login = $3::name WHERE channel_id = $1 AND name = $2", 3,
						  (Oid[]) {INT4OID, TEXTOID, TEXTOID},
						  (Datum[]) {Int32GetDatum(ch.id), CStringGetTextDatum(name),
							  login ? CStringGetTextDatum(login) : (Datum) 0},
						  login ? NULL : "  n", false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" has no peer named \"%s\"", ch.name, name)));
	SPI_finish();
	PG_RETURN_VOID();
}

Datum
ll_set_peer_clearance(PG_FUNCTION_ARGS)
{
	LLChannel	ch;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *tier = text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		genesis;

	require_superuser("change clearances of peers");
	SPI_connect();
	ll_channel_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &ch);
	if (!tier_exists(ch.id, tier))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a tier of channel \"%s\"", tier, ch.name)));
	genesis = channel_head_height(ch.id) <= 0;
	SPI_execute_with_args(genesis ?
						  "UPDATE ledger.peer SET clearance = $3, genesis_clearance = $3 "
						  "WHERE channel_id = $1 AND name = $2" :
						  "UPDATE ledger.peer SET clearance_requested = nullif($3, clearance) "
						  "WHERE channel_id = $1 AND name = $2 AND until_height IS NULL "
						  "AND since_height IS NOT NULL", 3,
						  (Oid[]) {INT4OID, TEXTOID, TEXTOID},
						  (Datum[]) {Int32GetDatum(ch.id), CStringGetTextDatum(name),
						  CStringGetTextDatum(tier)}, NULL, false, 0);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" has no current peer named \"%s\"", ch.name, name)));
	if (genesis)
		make_genesis_deterministic(ch.id);
	else
		ereport(NOTICE,
				(errmsg("changing the clearance of peer \"%s\" in channel \"%s\" is now a membership change", name, ch.name),
				 errdetail("It takes effect in the block where members holding a quorum of the votes have asked for it; from then on members send it content up to tier \"%s\".", tier),
				 errhint("Run the same ledger.set_peer_clearance() call on the other members; see ledger.peers.")));
	ll_peers_changed();
	SPI_finish();
	ll_wake_worker();
	PG_RETURN_VOID();
}

/* ledger.peer is not for everybody: asked as the owner (SPI connected). */
bool
ll_channel_has_peers(int32 channel_id)
{
	LLAsOwner	as;

	ll_as_owner_begin(&as);
	SPI_execute_with_args("SELECT 1 FROM ledger.peer WHERE channel_id = $1 LIMIT 1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)},
						  NULL, true, 1);
	ll_as_owner_end(&as);
	return SPI_processed > 0;
}

/* ---------------------------------------------------------------------
 * Inbox: peers call ledger.deliver() over libpq.
 * --------------------------------------------------------------------- */

/*
 * The keys of a channel's peers (members, requests, removed members) and
 * which login each is bound to (ledger.set_peer_login), read again every
 * few seconds by this backend.
 */
typedef struct SenderKey
{
	uint8		key[32];
	char		bound;			/* 'm': to this login, 'o': to another, 0: none */
} SenderKey;

static SenderKey *sender_keys = NULL;
static int	nsender_keys = 0;

static void
load_sender_keys(int32 channel_id)
{
	LLAsOwner	own;
	char	   *login = GetUserNameFromId(GetSessionUserId(), false);
	int			i;

	ll_as_owner_begin(&own);
	SPI_connect();
	SPI_execute_with_args("SELECT pubkey, CASE WHEN login = $1::name THEN 'm' WHEN login IS NOT NULL "
						  "THEN 'o' ELSE '' END FROM ledger.peer WHERE channel_id = $2", 2,
						  (Oid[]) {TEXTOID, INT4OID},
						  (Datum[]) {CStringGetTextDatum(login), Int32GetDatum(channel_id)},
						  NULL, true, 0);
	if (sender_keys)
		pfree(sender_keys);
	sender_keys = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(SenderKey) * Max(SPI_processed, 1));
	nsender_keys = 0;
	for (i = 0; i < (int) SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *k = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull));
		SenderKey  *sk = &sender_keys[nsender_keys];

		if (VARSIZE_ANY_EXHDR(k) != 32)
			continue;
		memcpy(sk->key, VARDATA_ANY(k), 32);
		sk->bound = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)[0];
		nsender_keys++;
	}
	SPI_finish();
	ll_as_owner_end(&own);
}

/*
 * Why this backend's login may not speak for sender on a channel, or
 * NULL.  Only a channel's peers may send (the worker would drop anyone
 * else's frames, but each sender has a share of the inbox).  A login bound
 * to keys speaks for those alone; one bound to none (the shared role, say)
 * for any peer not bound to another login.
 */
static const char *
login_refuses(int32 channel_id, const uint8 *sender)
{
	static Oid	user = InvalidOid;
	static int32 for_channel = 0;
	static TimestampTz read_at = 0;
	TimestampTz now = GetCurrentTimestamp();
	bool		bound_here = false;
	int			found = -1;
	int			i;

	if (user != GetSessionUserId() || channel_id != for_channel ||
		now - read_at > 5 * USECS_PER_SEC)
	{
		load_sender_keys(channel_id);
		user = GetSessionUserId();
		for_channel = channel_id;
		read_at = now;
	}
	for (i = 0; i < nsender_keys; i++)
	{
		if (sender_keys[i].bound == 'm')
			bound_here = true;
		if (memcmp(sender_keys[i].key, sender, 32) == 0)
			found = sender_keys[i].bound;
	}
	/*
	 * A member admitted (or asked for) since the last read sends at once:
	 * read again, at most every 250 ms, rather than refuse it for seconds.
	 */
	if (found < 0 && now - read_at > 250 * 1000)
	{
		read_at = 0;
		return login_refuses(channel_id, sender);
	}
	if (found < 0)
		return "the sender is not a peer of this channel here";
	if (found == 'm' || (!bound_here && found == 0))
		return NULL;
	return "this login speaks for another member";
}

/*
 * ledger.deliver(channel, sender, frames): hand a peer's messages to the
 * local worker.  Nothing here is trusted: the worker checks every
 * signature.  Returns 'ok', or why the frames were not taken.
 */
Datum
ll_deliver(PG_FUNCTION_ARGS)
{
	char	   *channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bytea	   *sender = PG_GETARG_BYTEA_PP(1);
	bytea	   *frames = PG_GETARG_BYTEA_PP(2);
	LLConsSlot *slot = NULL;
	uint32		hdr[2];
	int			i;

	if (VARSIZE_ANY_EXHDR(sender) != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sender must be a 32-byte public key")));
	if (ll_cons != NULL)
		for (i = 0; i < LL_MAX_CONS; i++)
			if (ll_cons->slots[i].channel_id != 0 && ll_cons->slots[i].dboid == MyDatabaseId &&
				strcmp(ll_cons->slots[i].channel, channel) == 0)
				slot = &ll_cons->slots[i];
	if (slot == NULL)
		PG_RETURN_TEXT_P(cstring_to_text("no consensus worker for this channel here"));
	{
		const char *why = login_refuses(slot->channel_id, (const uint8 *) VARDATA_ANY(sender));

		if (why != NULL)
			PG_RETURN_TEXT_P(cstring_to_text(why));
	}
	/*
	 * record: u32 length | u32 arrival (ms, modulo 2^32) | sender[32] |
	 * frames; the worker judges proposers by when their frames came, not
	 * by when it got round to reading them
	 */
	hdr[0] = (uint32) (32 + VARSIZE_ANY_EXHDR(frames));
	hdr[1] = (uint32) (GetCurrentTimestamp() / 1000);
	{
		char		rec[8 + 32];
		const char *why;

		memcpy(rec, hdr, 8);
		memcpy(rec + 8, VARDATA_ANY(sender), 32);
		why = ll_inbox_put(slot, (const uint8 *) VARDATA_ANY(sender), rec, sizeof(rec),
						   VARDATA_ANY(frames), VARSIZE_ANY_EXHDR(frames));
		if (why != NULL)
			PG_RETURN_TEXT_P(cstring_to_text(why));
	}
	PG_RETURN_TEXT_P(cstring_to_text("ok"));
}

/* ---------------------------------------------------------------------
 * Status functions behind ledger.peers and ledger.consensus_status
 * --------------------------------------------------------------------- */

Datum
ll_peer_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i,
				j;

	InitMaterializedSRF(fcinfo, 0);
	if (ll_cons == NULL)
		return (Datum) 0;
	for (i = 0; i < LL_MAX_CONS; i++)
	{
		LLConsSlot *s = &ll_cons->slots[i];
		LLConsSlot	copy;

		SpinLockAcquire(&s->mutex);
		memcpy(&copy, s, sizeof(copy));
		SpinLockRelease(&s->mutex);
		if (copy.channel_id == 0 || copy.pid == 0 || copy.dboid != MyDatabaseId)
			continue;
		for (j = 0; j < copy.npeers; j++)
		{
			LLPeerStatus *p = &copy.peers[j];
			Datum		v[10];
			bool		n[10] = {0};

			v[0] = CStringGetTextDatum(copy.channel);
			v[1] = CStringGetTextDatum(p->name);
			v[2] = CStringGetTextDatum(p->state);
			v[3] = Int64GetDatum(p->height);
			n[3] = p->height < 0;
			v[4] = TimestampTzGetDatum(p->last_contact);
			n[4] = p->last_contact == 0;
			v[5] = Float8GetDatum(p->rtt_ms);
			n[5] = p->rtt_ms < 0;
			v[6] = CStringGetTextDatum(p->message);
			n[6] = p->message[0] == '\0';
			v[7] = BoolGetDatum(p->link_key);
			v[8] = Int64GetDatum((int64) p->mac_batches);
			v[9] = Int64GetDatum((int64) p->calls_replayed);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
		}
	}
	return (Datum) 0;
}

static const char *
step_name(int step)
{
	switch (step)
	{
		case BFT_STEP_PROPOSE:
			return "propose";
		case BFT_STEP_PREVOTE:
			return "prevote";
		case BFT_STEP_PRECOMMIT:
			return "precommit";
		default:
			return "starting";
	}
}

Datum
ll_consensus_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (ll_cons == NULL)
		return (Datum) 0;
	for (i = 0; i < LL_MAX_CONS; i++)
	{
		LLConsSlot *s = &ll_cons->slots[i];
		LLConsSlot	c;
		Datum		v[15];
		bool		n[15] = {0};

		SpinLockAcquire(&s->mutex);
		memcpy(&c, s, offsetof(LLConsSlot, npeers));
		SpinLockRelease(&s->mutex);
		if (c.channel_id == 0 || c.dboid != MyDatabaseId)
			continue;
		v[0] = CStringGetTextDatum(c.channel);
		v[1] = Int64GetDatum(c.height);
		v[2] = Int32GetDatum(c.round);
		v[3] = CStringGetTextDatum(c.pid ? step_name(c.step) : "stopped");
		v[4] = CStringGetTextDatum(c.proposer);
		v[5] = Int32GetDatum(c.validators);
		v[6] = Int32GetDatum(c.quorum);
		v[7] = Int64GetDatum(c.ledger_height);
		v[8] = Int32GetDatum(c.pid);
		n[8] = c.pid == 0;
		v[9] = Int64GetDatum(c.signs);
		v[10] = Int64GetDatum(c.verifies);
		v[11] = Int64GetDatum(c.parked);
		v[12] = Int64GetDatum(c.rejected);
		v[13] = CStringGetTextDatum(c.last_error);
		v[14] = TimestampTzGetDatum(c.last_error_at);
		n[13] = n[14] = c.last_error[0] == '\0';
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * Launcher: the sealer starts one consensus worker per channel with peers.
 * --------------------------------------------------------------------- */

/*
 * Consensus slots and their workers belong to the database that
 * loopledger.database names: a channel elsewhere (the same number can be
 * another channel there, or a restored copy of this one) must not reach
 * them, nor wait for a worker that never comes.
 */
static void
require_consensus_db(const char *channel)
{
	if (MyDatabaseId != get_database_oid(ll_database, true))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger channel \"%s\" cannot have peers in database \"%s\"",
						channel, get_database_name(MyDatabaseId)),
				 errdetail("Consensus runs only in the database that loopledger.database names (\"%s\").",
						   ll_database),
				 errhint("Use that database for channels with peers.")));
}

/*
 * The slot of a channel, taken if needed.  From then on committing
 * backends send the channel's rows to consensus, so add_peer() reserves it
 * at once: no row may slip into a local-only block meanwhile.
 */
static int
reserve_slot(int32 channel_id, const char *name)
{
	int			j,
				free_slot = -1;

	require_consensus_db(name);
	for (j = 0; j < LL_MAX_CONS; j++)
	{
		if (ll_cons->slots[j].channel_id == channel_id && ll_cons->slots[j].dboid == MyDatabaseId)
			return j;
		if (ll_cons->slots[j].channel_id == 0 && free_slot < 0)
			free_slot = j;
	}
	if (free_slot >= 0)
	{
		LLConsSlot *s = &ll_cons->slots[free_slot];

		/*
		 * Records a backend queued for the slot's last channel (one whose
		 * add_peer rolled back, say) must not go out on this one's links.
		 */
		LWLockAcquire(s->lock, LW_EXCLUSIVE);
		s->inbox.used = 0;
		s->txq.used = 0;
		LWLockRelease(s->lock);
		SpinLockAcquire(&s->mutex);
		s->channel_id = channel_id;
		s->dboid = MyDatabaseId;
		s->registered = false;
		strlcpy(s->channel, name, NAMEDATALEN);
		SpinLockRelease(&s->mutex);
	}
	return free_slot;
}

static void
start_worker(int i, int32 channel_id, const char *name)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *h;
	LLConsSlot *s = &ll_cons->slots[i];

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "loopledger");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "ll_consensus_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "loopledger consensus %s", name);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "loopledger consensus");
	bgw.bgw_main_arg = Int32GetDatum(i);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &h))
	{
		ereport(WARNING,
				(errmsg("could not start the loopledger consensus worker for channel \"%s\"", name),
				 errhint("Raise max_worker_processes.")));
		return;
	}
	pfree(h);
	s->registered = true;
}

/*
 * Called by the sealer about once a second inside a transaction: every
 * channel with members gets a worker (which restarts itself after a crash).
 */
void
ll_launch_consensus_workers(void)
{
	uint64		i;
	int			j;
	bool		wanted[LL_MAX_CONS] = {false};

	if (ll_cons == NULL)
		return;
	/* one member alone would decide blocks while the DBA still adds the others */
	SPI_execute("SELECT c.channel_id, c.name FROM ledger.channel c "
				"JOIN ledger.peer p USING (channel_id) GROUP BY 1, 2 HAVING count(*) >= 2 ORDER BY 1",
				true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		int			slot = reserve_slot(id, name);

		if (slot < 0)
		{
			ereport(WARNING,
					(errmsg("channel \"%s\" has peers but every consensus slot is taken", name),
					 errdetail("One server runs consensus for at most %d channels.", LL_MAX_CONS)));
			continue;
		}
		wanted[slot] = true;
		if (!ll_cons->slots[slot].registered)
			start_worker(slot, id, name);
	}
	/* a slot reserved by an add_peer() that rolled back */
	for (j = 0; j < LL_MAX_CONS; j++)
	{
		LLConsSlot *s = &ll_cons->slots[j];

		SpinLockAcquire(&s->mutex);
		if (!wanted[j] && !s->registered && s->pid == 0)
			s->channel_id = 0;
		SpinLockRelease(&s->mutex);
	}
}

/*
 * ledger.genesis_hash(channel): the hash every member must agree on (the
 * consensus chain id): name, tiers and genesis members with clearances.
 */
Datum
ll_genesis_hash_sql(PG_FUNCTION_ARGS)
{
	LLChannel	ch;
	bool		isnull;
	ArrayType  *arr;
	Datum	   *elems;
	int			ntiers;
	ll_wire_str *tiers;
	ll_member  *mem;
	ll_wire_str name;
	ll_buf		g;
	uint8		hash[LL_HASH_LEN];
	uint64		i;
	int			rc;

	SPI_connect();
	ll_channel_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), &ch);
	SPI_execute_with_args("SELECT tiers FROM ledger.channel WHERE channel_id = $1", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch.id)}, NULL, true, 1);
	arr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &ntiers);
	tiers = palloc(sizeof(ll_wire_str) * ntiers);
	for (i = 0; i < (uint64) ntiers; i++)
	{
		tiers[i].ptr = TextDatumGetCString(elems[i]);
		tiers[i].len = strlen(tiers[i].ptr);
	}
	SPI_execute_with_args("SELECT name, pubkey, genesis_clearance FROM ledger.peer "
						  "WHERE channel_id = $1 AND since_height = 0", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch.id)}, NULL, true, 0);
	mem = palloc(sizeof(ll_member) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		bytea	   *k = DatumGetByteaPP(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull));

		mem[i].pubkey = (const uint8 *) VARDATA_ANY(k);
		mem[i].name.ptr = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		mem[i].name.len = strlen(mem[i].name.ptr);
		mem[i].tier.ptr = SPI_getvalue(t, SPI_tuptable->tupdesc, 3);
		mem[i].tier.len = strlen(mem[i].tier.ptr);
	}
	name.ptr = ch.name;
	name.len = strlen(ch.name);
	ll_buf_init(&g, ll_palloc_realloc);
	rc = ll_genesis_encode(&g, name, tiers, ntiers, mem, (uint32) SPI_processed);
	if (rc == 0)
		rc = ll_genesis_hash(g.data, g.len, hash);
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\" has no valid genesis yet: %s", ch.name, ll_wire_strerror(rc)),
				 errhint("Add the channel's members with ledger.add_peer().")));
	SPI_finish();
	PG_RETURN_BYTEA_P(ll_bytea(hash, LL_HASH_LEN));
}

/* ---------------------------------------------------------------------
 * Is a channel multi-peer?  Committing backends must never send a
 * multi-peer channel's rows down the single-node path (the local sealer
 * would make a block no other member has), not even in the moment after a
 * restart before the launcher has filled the slots.  The slot answers
 * fast; otherwise ledger.peer does, read directly (the writer needs no
 * privilege on it), and the answer "no peers" is cached until some
 * add_peer() commits.
 * --------------------------------------------------------------------- */

static bool peers_changed_in_xact = false;
static int32 no_peer_channels[64];
static int	n_no_peer = 0;
static uint32 no_peer_epoch = 0;

void
ll_peers_changed(void)
{
	peers_changed_in_xact = true;
}

/* From the transaction callback, once the change is visible. */
void
ll_peers_at_commit(void)
{
	if (peers_changed_in_xact && ll_shared != NULL)
		pg_atomic_fetch_add_u32(&ll_shared->peers_epoch, 1);
	peers_changed_in_xact = false;
}

static bool
catalog_has_peers(int32 channel_id)
{
	Relation	rel = table_open(ll_catalog_relid("peer"), AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(channel_id));
	scan = systable_beginscan(rel, pk, OidIsValid(pk), NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

bool
ll_channel_is_multi_peer(int32 channel_id, const char *name)
{
	uint32		epoch;
	int			i;

	if (ll_cons == NULL)
		return false;
	if (ll_cons_slot_for(channel_id) != NULL)
		return true;
	epoch = pg_atomic_read_u32(&ll_shared->peers_epoch);
	if (epoch != no_peer_epoch)
	{
		n_no_peer = 0;
		no_peer_epoch = epoch;
	}
	for (i = 0; i < n_no_peer; i++)
		if (no_peer_channels[i] == channel_id)
			return false;
	if (catalog_has_peers(channel_id))
	{
		if (reserve_slot(channel_id, name) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("no consensus slot is free for ledger channel \"%s\"", name),
					 errdetail("One server runs consensus for at most %d channels.", LL_MAX_CONS)));
		return true;
	}
	if (n_no_peer < (int) lengthof(no_peer_channels))
		no_peer_channels[n_no_peer++] = channel_id;
	return false;
}

/*
 * Lowest clearance (tier index) among the channel's current members, read
 * directly from ledger.peer like catalog_has_peers.  It is asked for every
 * row some tables take, so it is cached until ledger.peer changes: a
 * statement trigger on it (ledger.clearance_changed) invalidates its
 * relcache entry in every backend.
 */
#define MIN_CLEARANCE_CACHE 8

static struct
{
	int32		channel_id;
	int			ntiers;
	int			min;
}			min_cache[MIN_CLEARANCE_CACHE];
static int	min_cached;
static Oid	min_cache_rel = InvalidOid;
static bool min_callback_set = false;

static void
min_cache_invalidate(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == min_cache_rel)
		min_cached = 0;
}

static int
read_min_clearance(Relation rel, int32 channel_id, char **tiers, int ntiers)
{
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	int			min = ntiers - 1;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(channel_id));
	scan = systable_beginscan(rel, pk, OidIsValid(pk), NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		char	   *tier;
		int			t;

		(void) heap_getattr(tup, 7, RelationGetDescr(rel), &isnull);	/* until_height */
		if (!isnull)
			continue;
		tier = TextDatumGetCString(heap_getattr(tup, 5, RelationGetDescr(rel), &isnull));
		for (t = 0; t < ntiers && strcmp(tiers[t], tier) != 0; t++)
			;
		min = Min(min, t < ntiers ? t : -1);
	}
	systable_endscan(scan);
	return min;
}

int
ll_channel_min_clearance(int32 channel_id, char **tiers, int ntiers)
{
	Relation	rel;
	int			min;
	int			i;

	for (i = 0; i < min_cached; i++)
		if (min_cache[i].channel_id == channel_id && min_cache[i].ntiers == ntiers)
			return min_cache[i].min;
	if (!min_callback_set)
	{
		CacheRegisterRelcacheCallback(min_cache_invalidate, (Datum) 0);
		min_callback_set = true;
	}
	rel = table_open(ll_catalog_relid("peer"), AccessShareLock);
	min_cache_rel = RelationGetRelid(rel);
	/* the lock taken above has processed pending invalidations */
	min = read_min_clearance(rel, channel_id, tiers, ntiers);
	table_close(rel, AccessShareLock);
	if (min_cached < MIN_CLEARANCE_CACHE)
	{
		min_cache[min_cached].channel_id = channel_id;
		min_cache[min_cached].ntiers = ntiers;
		min_cache[min_cached].min = min;
		min_cached++;
	}
	return min;
}

/*
 * Up to which tier this node holds rows of a channel: every tier without
 * peers, its clearance as a member, none (-1) otherwise.  Read directly
 * like ll_channel_min_clearance: ledger.verify runs as any user.
 */
int
ll_node_clearance(int32 channel_id, char **tiers, int ntiers)
{
	uint8		seed[32],
				pub[32];
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			pk;
	bool		any = false;
	int			found = -1;

	rel = table_open(ll_catalog_relid("peer"), AccessShareLock);
	pk = RelationGetPrimaryKeyIndex(rel);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(channel_id));
	scan = systable_beginscan(rel, pk, OidIsValid(pk), NULL, 1, &key);
	if (!ll_load_node_key(seed, pub, false))
		memset(pub, 0, sizeof(pub));
	explicit_bzero(seed, sizeof(seed));
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		bytea	   *k = DatumGetByteaPP(heap_getattr(tup, 3, RelationGetDescr(rel), &isnull));
		char	   *tier;
		int			t;

		any = true;
		if (VARSIZE_ANY_EXHDR(k) != 32 || memcmp(VARDATA_ANY(k), pub, 32) != 0)
			continue;
		(void) heap_getattr(tup, 7, RelationGetDescr(rel), &isnull);	/* until_height */
		if (!isnull)
			continue;			/* removed: new content no longer comes */
		tier = TextDatumGetCString(heap_getattr(tup, 5, RelationGetDescr(rel), &isnull));
		for (t = 0; t < ntiers && strcmp(tiers[t], tier) != 0; t++)
			;
		found = t < ntiers ? t : -1;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return any ? found : ntiers - 1;
}
