/*
 * loopledger.c
 *		Module entry point: settings, shared memory, hooks and hash helpers.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "consensus.h"
#include "loopledger.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(ll_config_hash_sql);
PG_FUNCTION_INFO_V1(ll_header_hash_sql);

bool		ll_synchronous_commit = true;
int			ll_block_max_rows = 10000;
int			ll_block_interval_ms = 100;
int			ll_propose_delay_ms = 2;
char	   *ll_database = NULL;

LLShared   *ll_shared = NULL;
bool		ll_worker_loaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

static void
define_gucs(void)
{
	DefineCustomBoolVariable("loopledger.synchronous_commit",
							 "COMMIT of a transaction that wrote ledger rows waits until its block is sealed.",
							 NULL, &ll_synchronous_commit, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("loopledger.block_max_rows",
							"Seal a block as soon as this many committed rows are waiting.",
							"A single transaction is never split, so a block may hold more.",
							&ll_block_max_rows, 10000, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("loopledger.block_interval",
							"Longest time committed rows wait before their block is sealed.",
							NULL, &ll_block_interval_ms, 100, 1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("loopledger.propose_delay",
							"How long a proposer of a multi-peer channel gathers transactions before proposing a block.",
							"Longer gathers more transactions per block (fewer consensus rounds) at the cost of latency.",
							&ll_propose_delay_ms, 2, 0, 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("loopledger.database",
							   "Database whose ledger the sealing worker serves.",
							   NULL, &ll_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
#ifdef LL_FAULT_INJECTION
	ll_fault_define_guc();
#endif
	MarkGUCPrefixReserved("loopledger");
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LLShared)));
	RequestAddinShmemSpace(ll_cons_shmem_size());
	RequestNamedLWLockTranche("loopledger consensus", LL_MAX_CONS);
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ll_shared = ShmemInitStruct("loopledger", sizeof(LLShared), &found);
	if (!found)
	{
		pg_atomic_init_u64(&ll_shared->seal_started, 0);
		pg_atomic_init_u64(&ll_shared->seal_done, 0);
		pg_atomic_init_u64(&ll_shared->seal_failed, 0);
		pg_atomic_init_u64(&ll_shared->pending_rows, 0);
		pg_atomic_init_u32(&ll_shared->waiters, 0);
		pg_atomic_init_u32(&ll_shared->peers_epoch, 0);
		ConditionVariableInit(&ll_shared->sealed_cv);
		SpinLockInit(&ll_shared->mutex);
		ll_shared->worker_pid = 0;
		ll_shared->worker_db = InvalidOid;
		ll_shared->worker_latch = NULL;
	}
	ll_cons_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Without shared_preload_libraries there is no worker and no shared state:
 * rows are still captured and kept pending, and the guards still work in
 * sessions that loaded the module, but nothing is sealed.
 */
void
_PG_init(void)
{
	define_gucs();
	ll_register_xact_callbacks();
	ll_install_guards();
	ll_install_clearance_hooks();
	if (!process_shared_preload_libraries_in_progress)
		return;
	ll_worker_loaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
	ll_register_worker();
}

/* True when a running worker seals blocks for this backend's database. */
bool
ll_worker_serves_my_db(void)
{
	bool		ok;

	if (ll_shared == NULL)
		return false;
	SpinLockAcquire(&ll_shared->mutex);
	ok = ll_shared->worker_pid != 0 && ll_shared->worker_db == MyDatabaseId;
	SpinLockRelease(&ll_shared->mutex);
	return ok;
}

void
ll_wake_worker(void)
{
	Latch	   *latch;

	if (ll_shared == NULL)
		return;
	SpinLockAcquire(&ll_shared->mutex);
	latch = ll_shared->worker_latch;
	SpinLockRelease(&ll_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * Catalog OIDs looked up by name, kept until a relcache invalidation names
 * one of them (or all): a committing backend needs ledger.txlog and
 * ledger.peer in every transaction, and two name lookups each cost more
 * than the probe that follows.
 */
#define CATALOG_CACHE 16

static struct
{
	char		name[NAMEDATALEN];
	Oid			relid;
}			catalog_cache[CATALOG_CACHE];
static int	catalog_cached = 0;
static bool catalog_callback_set = false;

static void
catalog_cache_invalidate(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < catalog_cached; i++)
		if (!OidIsValid(relid) || catalog_cache[i].relid == relid)
		{
			catalog_cached = 0;
			return;
		}
}

/* OID of one of the extension's catalogs in schema "ledger". */
Oid
ll_catalog_relid(const char *name)
{
	Oid			nsp;
	Oid			relid;
	int			i;

	for (i = 0; i < catalog_cached; i++)
		if (strcmp(catalog_cache[i].name, name) == 0)
			return catalog_cache[i].relid;
	nsp = get_namespace_oid("ledger", true);
	relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"ledger.%s\" does not exist", name),
				 errhint("Is the loopledger extension installed in this database?")));
	if (!catalog_callback_set)
	{
		CacheRegisterRelcacheCallback(catalog_cache_invalidate, (Datum) 0);
		catalog_callback_set = true;
	}
	if (catalog_cached < CATALOG_CACHE)
	{
		strlcpy(catalog_cache[catalog_cached].name, name, NAMEDATALEN);
		catalog_cache[catalog_cached].relid = relid;
		catalog_cached++;
	}
	return relid;
}

static void
bytea_hash_arg(bytea *b, const char *what, uint8 *out)
{
	if (VARSIZE_ANY_EXHDR(b) != LL_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %d bytes long", what, LL_HASH_LEN)));
	memcpy(out, VARDATA_ANY(b), LL_HASH_LEN);
}

static bytea *
hash_to_bytea(const uint8 *hash)
{
	bytea	   *b = palloc(VARHDRSZ + LL_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + LL_HASH_LEN);
	memcpy(VARDATA(b), hash, LL_HASH_LEN);
	return b;
}

/*
 * ledger.config_hash(channel, tiers): hash of a channel's configuration.
 */
Datum
ll_config_hash_sql(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	ll_buf		buf;
	uint8		hash[LL_HASH_LEN];

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	ll_buf_init(&buf, ll_palloc_realloc);
	ll_config_begin(&buf, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), n);
	for (i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tier names must not be null")));
		t = DatumGetTextPP(elems[i]);
		ll_config_tier(&buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	}
	if (!ll_sha256(buf.data, buf.len, hash))
		elog(ERROR, "could not compute SHA-256");
	PG_RETURN_BYTEA_P(hash_to_bytea(hash));
}

/*
 * ledger.header_hash(...): hash of a block header, for checking by hand.
 */
Datum
ll_header_hash_sql(PG_FUNCTION_ARGS)
{
	text	   *channel = PG_GETARG_TEXT_PP(0);
	ll_block_header hdr;
	ll_buf		scratch;
	uint8		hash[LL_HASH_LEN];

	memset(&hdr, 0, sizeof(hdr));
	hdr.channel = VARDATA_ANY(channel);
	hdr.channel_len = VARSIZE_ANY_EXHDR(channel);
	hdr.height = (uint64) PG_GETARG_INT64(1);
	bytea_hash_arg(PG_GETARG_BYTEA_PP(2), "prev_hash", hdr.prev_hash);
	bytea_hash_arg(PG_GETARG_BYTEA_PP(3), "merkle_root", hdr.merkle_root);
	hdr.time_us = PG_GETARG_INT64(4);
	hdr.tx_count = (uint32) PG_GETARG_INT32(5);
	hdr.row_count = (uint32) PG_GETARG_INT32(6);
	bytea_hash_arg(PG_GETARG_BYTEA_PP(7), "config_hash", hdr.config_hash);
	ll_buf_init(&scratch, ll_palloc_realloc);
	if (!ll_block_hash(&hdr, &scratch, hash))
		elog(ERROR, "could not compute SHA-256");
	PG_RETURN_BYTEA_P(hash_to_bytea(hash));
}
