/*
 * tabledef.c
 *		Agreeing on the definitions of a multi-peer channel's ledger tables.
 *
 * A member that cannot insert a peer's row (a value its column's type
 * refuses, a value that does not read back as it was hashed) cannot tell
 * a lying origin from its own table being defined unlike the others'.
 * Refusing the transaction forks it in the second case; stopping lets a
 * liar halt every member cleared for its row.  So each member's worker
 * declares its tables' definitions (ledger.table_fingerprint) through
 * the chain, and once validators holding a quorum (2f+1) declared the
 * same one for a table, that is its agreed definition.  Then:
 *
 *  - rows of a table without an agreed definition are refused on every
 *    member alike (an honest origin refuses them at INSERT already);
 *  - a member whose table matches the agreed definition judges a row's
 *    content alone, refusing what does not fit: every such member refuses
 *    the same rows, whoever sent them;
 *  - a member whose table differs stops at the first row it cannot take,
 *    as it does for a missing table, until its DBA fixes the table.
 *
 * Declarations take effect from the next height, on every member alike.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "common/hashfn.h"
#include "catalog/namespace.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "bft.h"
#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "loopledger.h"

#define TABLE_KEY_LEN (NAMEDATALEN * 2 + 2)

/* ---------------------------------------------------------------------
 * Worker: declaring this node's definitions
 * --------------------------------------------------------------------- */

/* A declaration's transaction key: never a local transaction's. */
static uint64
declaration_txid(const char *table, const uint8 *fp)
{
	ll_buf		b;
	uint8		h[32];
	uint64		id = 0;
	int			i;

	ll_buf_init(&b, ll_palloc_realloc);
	ll_buf_put_str(&b, "declare table", 13);
	ll_buf_put_str(&b, table, strlen(table));
	ll_buf_put(&b, fp, 32);
	ll_sha256(b.data, b.len, h);
	for (i = 0; i < 8; i++)
		id = (id << 8) | h[i];
	return id | UINT64CONST(0x8000000000000000);
}

/*
 * Add a declaration for each ledger table of the channel whose definition
 * here is not this member's decided declaration yet (new tables, and
 * tables changed since: a unique index added, an enum label, a domain
 * constraint).  SPI must be connected.  Returns how many were added;
 * set gets a digest of them.
 */
int
ll_tabledef_declare(int32 channel_id, const uint8 *self, ll_batch_builder *bb, uint8 *set)
{
	int			n = 0;
	uint64		i;
	ll_buf		all;

	ll_buf_init(&all, ll_palloc_realloc);
	SPI_execute_with_args("SELECT t.table_name, f.fp FROM ledger.ledger_table t, "
						  "LATERAL (SELECT ledger.table_fingerprint(t.relid) AS fp) f "
						  "WHERE t.channel_id = $1 AND NOT EXISTS "
						  "(SELECT 1 FROM ledger.table_vote v WHERE v.channel_id = t.channel_id "
						  "AND v.table_name = t.table_name AND v.voter = $2 AND v.fingerprint = f.fp) "
						  "ORDER BY t.table_no", 2,
						  (Oid[]) {INT4OID, BYTEAOID},
						  (Datum[]) {Int32GetDatum(channel_id), PointerGetDatum(ll_bytea(self, 32))},
						  NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		char	   *table = SPI_getvalue(t, td, 1);
		bool		isnull;
		bytea	   *fp = DatumGetByteaPP(SPI_getbinval(t, td, 2, &isnull));

		if (isnull || VARSIZE_ANY_EXHDR(fp) != 32)
			continue;
		if (ll_batch_declare_table_tx(bb, declaration_txid(table, (uint8 *) VARDATA_ANY(fp)),
									  (ll_wire_str) {table, strlen(table)},
									  (const uint8 *) VARDATA_ANY(fp)) != LL_WIRE_OK)
			break;
		ll_buf_put_str(&all, table, strlen(table));
		ll_buf_put(&all, (const uint8 *) VARDATA_ANY(fp), 32);
		n++;
	}
	if (n > 0)
		ll_sha256(all.data, all.len, set);
	return n;
}

/* ---------------------------------------------------------------------
 * Apply: counting declarations, and what is agreed
 * --------------------------------------------------------------------- */

typedef struct Agreed
{
	char		key[TABLE_KEY_LEN];
	bool		agreed;
	uint8		fp[32];
	/* this node's fingerprint of the table, valid while local_gen holds */
	Oid			local_relid;
	uint64		local_gen;
	bool		local_ok;
	uint8		local_fp[32];
} Agreed;

static void watch_definitions(void);
static uint64 any_gen;

static HTAB *agreed_cache = NULL;
static uint8 last_valset[32];	/* validators of the last block settled */
static bool have_valset = false;
static uint64 vote_height = 0;	/* the last height whose block changed a vote */

/*
 * Forget what was read in apply transactions (after an error, or when an
 * agreement changed).  Settling every table again at the next block is
 * harmless: a table's votes form a new quorum only where the validators
 * changed, and every member settles every table then.
 */
void
ll_tabledef_reset(void)
{
	if (agreed_cache)
		hash_destroy(agreed_cache);
	agreed_cache = NULL;
	have_valset = false;
}

static bool
validator_power(const bft_valset *vs, const uint8 *pub, uint64 *power)
{
	uint32		i;

	for (i = 0; i < vs->n; i++)
		if (memcmp(vs->v[i].pubkey, pub, 32) == 0)
		{
			*power = vs->v[i].power;
			return true;
		}
	return false;
}

/*
 * A validator may declare LL_MAX_PEER_TABLES tables per channel; a
 * declaration naming one more is ignored alike on every member (the votes
 * are the same everywhere, applied in block order), so a liar inventing
 * names costs bounded storage.
 */
static bool
too_many_declared(const LLApply *a, const uint8 *voter, const ll_tx *tx)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	int64		n;

	if (plan == NULL)
		plan = ll_keep_plan("SELECT count(*) FROM ledger.table_vote "
							"WHERE channel_id = $1 AND voter = $2 AND table_name <> $3", 3,
							(Oid[]) {INT4OID, BYTEAOID, TEXTOID});
	if (SPI_execute_plan(plan,
						 (Datum[]) {Int32GetDatum(a->channel_id), PointerGetDatum(ll_bytea(voter, 32)),
						 PointerGetDatum(cstring_to_text_with_len(tx->table.ptr, (int) tx->table.len))},
						 NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not count a member's table declarations");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return n >= LL_MAX_PEER_TABLES;
}

/*
 * Record a validator's declaration (a decided block's, in block order).
 * A member has one declaration per table: its latest.
 */
void
ll_tabledef_vote(const LLApply *a, uint64 height, const uint8 *voter, const ll_tx *tx)
{
	static SPIPlanPtr plan = NULL;
	uint64		power;

	if (!validator_power(&a->valset, voter, &power))
		return;
	/*
	 * A name no table can have is ignored alike everywhere: with a NUL byte
	 * it would compare equal to a real name under some collations only.
	 */
	if (tx->table.len >= TABLE_KEY_LEN || memchr(tx->table.ptr, '\0', tx->table.len) != NULL ||
		!pg_verify_mbstr(PG_UTF8, tx->table.ptr, (int) tx->table.len, true))
		return;
	if (too_many_declared(a, voter, tx))
		return;
	if (plan == NULL)
		plan = ll_keep_plan("INSERT INTO ledger.table_vote (channel_id, table_name, voter, fingerprint, height) "
							"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel_id, table_name, voter) "
							"DO UPDATE SET fingerprint = EXCLUDED.fingerprint, height = EXCLUDED.height "
							"WHERE table_vote.fingerprint <> EXCLUDED.fingerprint", 5,
							(Oid[]) {INT4OID, TEXTOID, BYTEAOID, BYTEAOID, INT8OID});
	if (SPI_execute_plan(plan,
						 (Datum[]) {Int32GetDatum(a->channel_id),
							 PointerGetDatum(cstring_to_text_with_len(tx->table.ptr, (int) tx->table.len)),
							 PointerGetDatum(ll_bytea(voter, 32)),
							 PointerGetDatum(ll_bytea(tx->fingerprint, 32)),
						 Int64GetDatum((int64) height)},
						 NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record a table declaration");
	if (SPI_processed > 0)
		vote_height = height;
}

/* Agree on a table's definition if validators with a quorum declared it. */
static void
settle_table(const LLApply *a, uint64 height, const char *table)
{
	uint8		fps[BFT_MAX_VALIDATORS][32];
	uint64		powers[BFT_MAX_VALIDATORS];
	int			nfps = 0;
	uint64		i;
	int			j;

	SPI_execute_with_args("SELECT voter, fingerprint FROM ledger.table_vote "
						  "WHERE channel_id = $1 AND table_name = $2", 2,
						  (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(a->channel_id), CStringGetTextDatum(table)},
						  NULL, false, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *voter = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		bytea	   *fp = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		uint64		power;

		if (VARSIZE_ANY_EXHDR(voter) != 32 || VARSIZE_ANY_EXHDR(fp) != 32 ||
			!validator_power(&a->valset, (uint8 *) VARDATA_ANY(voter), &power))
			continue;
		for (j = 0; j < nfps && memcmp(fps[j], VARDATA_ANY(fp), 32) != 0; j++)
			;
		if (j == nfps)
		{
			if (nfps == BFT_MAX_VALIDATORS)
				continue;
			memcpy(fps[nfps], VARDATA_ANY(fp), 32);
			powers[nfps++] = 0;
		}
		powers[j] += power;
	}
	for (j = 0; j < nfps; j++)
		if (powers[j] >= bft_quorum(&a->valset))
			break;
	if (j == nfps)
		return;
	SPI_execute_with_args("INSERT INTO ledger.agreed_table (channel_id, table_name, fingerprint, since_height) "
						  "VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id, table_name) "
						  "DO UPDATE SET fingerprint = EXCLUDED.fingerprint, since_height = EXCLUDED.since_height "
						  "WHERE agreed_table.fingerprint <> EXCLUDED.fingerprint", 4,
						  (Oid[]) {INT4OID, TEXTOID, BYTEAOID, INT8OID},
						  (Datum[]) {Int32GetDatum(a->channel_id), CStringGetTextDatum(table),
							  PointerGetDatum(ll_bytea(fps[j], 32)), Int64GetDatum((int64) height + 1)},
						  NULL, false, 0);
	if (SPI_processed > 0)
	{
		ll_tabledef_reset();
		ereport(LOG,
				(errmsg("channel \"%s\": the definition of ledger table \"%s\" is agreed from height " UINT64_FORMAT,
						a->channel, table, height + 1)));
	}
}

/*
 * After a decided block's transactions: settle the tables declared in it,
 * and every table when the validators changed (a removed member's
 * declaration no longer counts, and the others' may now be a quorum).
 */
void
ll_tabledef_settle(const LLApply *a, uint64 height)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *tables = NIL;
	ListCell   *lc;
	uint64		i;
	uint8		vs[32];
	bool		all;

	ll_sha256((const uint8 *) &a->valset, sizeof(a->valset), vs);
	all = !have_valset || memcmp(vs, last_valset, 32) != 0;
	if (!all && vote_height != height)
		return;					/* nothing that could settle a table changed */
	SPI_execute_with_args("SELECT DISTINCT table_name FROM ledger.table_vote "
						  "WHERE channel_id = $1 AND (height = $2 OR $3)", 3,
						  (Oid[]) {INT4OID, INT8OID, BOOLOID},
						  (Datum[]) {Int32GetDatum(a->channel_id), Int64GetDatum((int64) height),
						  BoolGetDatum(all)},
						  NULL, false, 0);
	for (i = 0; i < SPI_processed; i++)
		tables = lappend(tables, MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
	foreach(lc, tables)
		settle_table(a, height, lfirst(lc));
	list_free_deep(tables);
	memcpy(last_valset, vs, 32);
	have_valset = true;
}

/*
 * The cache entry of a table, its agreed definition loaded; NULL if too
 * long.  Only agreed tables are cached.
 */
static Agreed *
agreed_entry(const LLApply *a, const char *table, size_t len)
{
	char		key[TABLE_KEY_LEN];
	Agreed	   *e;
	Agreed		fresh;
	bool		isnull;

	if (len >= TABLE_KEY_LEN)
		return NULL;
	memset(key, 0, sizeof(key));
	memcpy(key, table, len);
	if (agreed_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = TABLE_KEY_LEN;
		ctl.entrysize = sizeof(Agreed);
		agreed_cache = hash_create("loopledger agreed tables", 16, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	e = hash_search(agreed_cache, key, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	/* looked up before the entry exists: an error here leaves no half entry */
	memset(&fresh, 0, sizeof(fresh));
	SPI_execute_with_args("SELECT fingerprint FROM ledger.agreed_table "
						  "WHERE channel_id = $1 AND table_name = $2", 2,
						  (Oid[]) {INT4OID, TEXTOID},
						  (Datum[]) {Int32GetDatum(a->channel_id), CStringGetTextDatum(key)},
						  NULL, false, 1);
	if (SPI_processed == 1)
	{
		bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		fresh.agreed = !isnull && VARSIZE_ANY_EXHDR(b) == 32;
		if (fresh.agreed)
			memcpy(fresh.fp, VARDATA_ANY(b), 32);
	}
	memcpy(fresh.key, key, TABLE_KEY_LEN);
	if (!fresh.agreed)
	{
		/*
		 * Not kept: rows naming tables nobody agreed on come only from a
		 * liar (an honest origin refuses them), who could make up names
		 * without end.  Asking again costs a query per such row.
		 */
		static Agreed unagreed;

		unagreed = fresh;
		return &unagreed;
	}
	e = hash_search(agreed_cache, key, HASH_ENTER, NULL);
	*e = fresh;
	return e;
}

/* The table's agreed definition as of the block being applied. */
bool
ll_tabledef_agreed(const LLApply *a, const char *table, size_t len, uint8 *fp)
{
	Agreed	   *e = agreed_entry(a, table, len);

	if (e == NULL || !e->agreed)
		return false;
	if (fp)
		memcpy(fp, e->fp, 32);
	return true;
}

/* This node's definition of a table now; false when it has none. */
static bool
local_fingerprint(Oid relid, uint8 *fp)
{
	bool		isnull;
	bytea	   *b;

	SPI_execute_with_args("SELECT ledger.table_fingerprint($1)", 1,
						  (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)}, NULL, false, 1);
	if (SPI_processed != 1)
		return false;
	b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull || VARSIZE_ANY_EXHDR(b) != 32)
		return false;
	memcpy(fp, VARDATA_ANY(b), 32);
	return true;
}

/*
 * Whether this node's table is defined as agreed: only then may it judge
 * the table's rows alone.  This node's fingerprint is kept until a catalog
 * invalidation says the definition may have changed.
 */
bool
ll_tabledef_matches(const LLApply *a, const char *table, Oid relid)
{
	Agreed	   *e = agreed_entry(a, table, strlen(table));

	if (e == NULL || !e->agreed)
		return false;
	watch_definitions();
	if (e->local_relid != relid || e->local_gen != any_gen)
	{
		uint8		fp[32];
		bool		ok = local_fingerprint(relid, fp);

		e->local_ok = ok;
		if (ok)
			memcpy(e->local_fp, fp, 32);
		e->local_relid = relid;
		e->local_gen = any_gen;
	}
	return e->local_ok && memcmp(e->local_fp, e->fp, 32) == 0;
}

/* ---------------------------------------------------------------------
 * INSERT: an honest origin writes only tables defined as agreed
 * --------------------------------------------------------------------- */

/*
 * Invalidations that can change a table's definition or the agreed one.
 * any_gen counts every relcache invalidation too (an index created, a
 * constraint added, a table enabled): the worker looks at its definitions
 * again then.  A backend's INSERT check must not redo its catalog queries
 * after each one (an ANALYZE of the table sends one to every backend, and
 * sixty-four of them re-checking at once showed as a 300 ms stall), so it
 * keys its cache on the table's structure as the relcache has it, plus
 * defs_gen: pg_type, pg_enum and pg_constraint changes (domains, labels)
 * and ledger.agreed_table's statement trigger.
 */
static uint64 any_gen = 1;	/* declared above */
static uint64 defs_gen = 1;
static bool callbacks_set = false;
static Oid	agreed_rel = InvalidOid;

static void
definitions_changed_rel(Datum arg, Oid relid)
{
	any_gen++;
	if (relid == InvalidOid || relid == agreed_rel)
		defs_gen++;
}

static void
definitions_changed_sys(Datum arg, int cacheid, uint32 hashvalue)
{
	any_gen++;
	defs_gen++;
}

static void
watch_definitions(void)
{
	if (callbacks_set)
		return;
	agreed_rel = get_relname_relid("agreed_table", get_namespace_oid("ledger", false));
	CacheRegisterRelcacheCallback(definitions_changed_rel, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, definitions_changed_sys, (Datum) 0);
	CacheRegisterSyscacheCallback(ENUMOID, definitions_changed_sys, (Datum) 0);
	CacheRegisterSyscacheCallback(CONSTROID, definitions_changed_sys, (Datum) 0);
	callbacks_set = true;
}

/*
 * A number that changes whenever a table definition may have: the worker
 * computes its fingerprints again only then (they cost a few catalog
 * queries per table).
 */
uint64
ll_tabledef_generation(void)
{
	watch_definitions();
	return any_gen;
}

/*
 * What of a table's definition the relcache holds: columns, their types,
 * typmods and flags, CHECKs and generation expressions, its indexes and
 * foreign keys.  Unchanged, the fingerprint checked last is still this
 * table's (the rest is covered by defs_gen).
 */
static uint64
structure_key(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	TupleDesc	td;
	StringInfoData b;
	ListCell   *lc;
	List	   *idx;
	uint64		key;
	int			i;

	if (!RelationIsValid(rel))
		return 0;
	td = RelationGetDescr(rel);
	initStringInfo(&b);
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(td, i);

		appendStringInfo(&b, "%s|%u|%d|%d|%d|%c;", NameStr(a->attname), a->atttypid,
						 a->atttypmod, a->attnotnull, a->attisdropped, a->attgenerated ? a->attgenerated : '-');
	}
	if (td->constr)
	{
		for (i = 0; i < td->constr->num_check; i++)
			appendStringInfo(&b, "c%s|%s;", td->constr->check[i].ccname, td->constr->check[i].ccbin);
		for (i = 0; i < td->constr->num_defval; i++)
			appendStringInfo(&b, "d%d|%s;", td->constr->defval[i].adnum, td->constr->defval[i].adbin);
	}
	idx = RelationGetIndexList(rel);
	foreach(lc, idx)
		appendStringInfo(&b, "i%u;", lfirst_oid(lc));
	list_free(idx);
	foreach(lc, RelationGetFKeyList(rel))
		appendStringInfo(&b, "f%u;", ((ForeignKeyCacheInfo *) lfirst(lc))->conoid);
	RelationClose(rel);
	key = hash_bytes_extended((const unsigned char *) b.data, b.len, 0);
	pfree(b.data);
	return key ? key : 1;
}

typedef struct Checked
{
	Oid			relid;
	uint64		key;
	uint64		gen;
} Checked;

static HTAB *checked = NULL;

/* Whether the table was found defined as agreed, as it is now. */
static bool
still_checked(Oid relid, uint64 key)
{
	Checked    *c;

	if (checked == NULL)
		return false;
	c = hash_search(checked, &relid, HASH_FIND, NULL);
	return c != NULL && c->key == key && c->gen == defs_gen;
}

static void
remember_checked(Oid relid, uint64 key)
{
	Checked    *c;
	bool		found;

	if (checked == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(Checked);
		ctl.hcxt = CacheMemoryContext;
		checked = hash_create("loopledger checked definitions", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	c = hash_search(checked, &relid, HASH_ENTER, &found);
	c->key = key;
	c->gen = defs_gen;
}

/*
 * Refuse rows of a table whose definition here is not the channel's
 * agreed one: sent, they would be judged by the members under another
 * definition than this node's INSERT used.
 */
void
ll_tabledef_check_insert(LLTableInfo *info)
{
	LLAsOwner	own;
	bool		agreed,
				same = false,
				isnull;
	char	   *here = NULL,
			   *there = NULL;
	int64		declared = 0;
	uint64		key;

	watch_definitions();
	if (info->definition_ok == defs_gen)
		return;
	key = structure_key(info->relid);
	if (still_checked(info->relid, key))
	{
		info->definition_ok = defs_gen;
		return;
	}
	/*
	 * A node that is not a member itself (one asking to join) gets the
	 * membership error of submit.c or of its worker instead.
	 */
	if (ll_node_clearance(info->channel_id, info->tiers, info->ntiers) < 0)
		return;
#ifdef LL_FAULT_INJECTION
	if (ll_fault_active() && ll_fault_misdeclare())
		return;
#endif
	ll_as_owner_begin(&own);
	SPI_connect();
	SPI_execute_with_args("SELECT a.fingerprint IS NOT NULL, a.fingerprint = f.fp, "
						  "encode(f.fp, 'hex'), encode(a.fingerprint, 'hex'), "
						  "(SELECT count(*) FROM ledger.table_vote v WHERE v.channel_id = $2 "
						  " AND v.table_name = $3 AND v.fingerprint = f.fp) "
						  "FROM (SELECT ledger.table_fingerprint($1) AS fp) f "
						  "LEFT JOIN ledger.agreed_table a ON a.channel_id = $2 AND a.table_name = $3", 3,
						  (Oid[]) {OIDOID, INT4OID, TEXTOID},
						  (Datum[]) {ObjectIdGetDatum(info->relid), Int32GetDatum(info->channel_id),
							  CStringGetTextDatum(info->table_name)},
						  NULL, true, 1);
	agreed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (agreed)
		same = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	here = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	there = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	declared = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull));
	here = here ? MemoryContextStrdup(TopTransactionContext, here) : NULL;
	there = there ? MemoryContextStrdup(TopTransactionContext, there) : NULL;
	SPI_finish();
	ll_as_owner_end(&own);
	if (!agreed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" of channel \"%s\" has no agreed definition yet",
						info->table_name, info->channel_name),
				 errdetail("Members take a table's rows once validators holding two thirds of the votes have declared the same definition; %lld declared this node's so far.",
						   (long long) declared),
				 errhint("Run ledger.enable_table() for it on the other members; their workers declare it within a second or two. ledger.table_definitions shows the state.")));
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ledger table \"%s\" is defined here unlike the definition agreed on channel \"%s\"",
						info->table_name, info->channel_name),
				 errdetail("Its fingerprint here is %s; the agreed one is %s.", here ? here : "none", there ? there : "none"),
				 errhint("Make its columns, types, constraints and unique indexes match the other members' (ledger.table_definitions compares them); a changed definition is agreed once enough members made the same change.")));
	remember_checked(info->relid, key);
	info->definition_ok = defs_gen;
}
