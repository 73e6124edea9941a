/*
 * clearance.c
 *		Tiered visibility for local roles: clearances and the row-level
 *		security of ledger tables.
 *
 * ledger.enable_table() enables and forces row-level security on the table
 * and creates one policy, ledger_clearance (see ll_append_policy_sql):
 *
 *		USING      (ledger.tier_index(ch, tier::text) <= (SELECT ledger.clearance_of(ch)))
 *		WITH CHECK (ledger.tier_index(ch, tier::text, 'schema.table') <= (SELECT ...))
 *
 * A role's clearance in a channel is the highest tier granted to it, or to
 * a role it is a member of, with ledger.grant_clearance(); without one it is
 * the lowest tier when the channel is public and nothing otherwise.  The
 * policy takes the lower of the clearances of current_user and
 * session_user, so a view or SECURITY DEFINER function owned by a cleared
 * role shows a session no more than the session itself may see.
 *
 * Clearances are cached in each backend.  A statement trigger on the
 * extension's clearance tables sends a relcache invalidation, and role or
 * membership changes send syscache invalidations; both flush the cache.
 * The tables are read with a fresh catalog snapshot, as PostgreSQL reads
 * its own catalogs, so a cache refilled after an invalidation sees the
 * change that caused it, and a lookup during which an invalidation arrives
 * is not cached.  A policy check is then a hash lookup.
 *
 * The rest of the file keeps hidden rows from leaking around the policy:
 * EXPLAIN and statements that evaluate expressions over every row need full
 * clearance, details of errors on ledger tables are withheld from roles
 * below it, and ledger.proof() answers the same for a hidden entry as for a
 * missing one.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_type.h"
#include "commands/prepare.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "loopledger.h"
#include "chain.h"

PG_FUNCTION_INFO_V1(ll_clearance_of);
PG_FUNCTION_INFO_V1(ll_tier_index);
PG_FUNCTION_INFO_V1(ll_grant_clearance);
PG_FUNCTION_INFO_V1(ll_revoke_clearance);
PG_FUNCTION_INFO_V1(ll_set_channel_public);
PG_FUNCTION_INFO_V1(ll_clearance_changed);
PG_FUNCTION_INFO_V1(ll_proof_visible);

/* proof.c */
extern PGDLLEXPORT Datum ll_proof(PG_FUNCTION_ARGS);

#define LL_POLICY_NAME "ledger_clearance"

/* ---------------------------------------------------------------------
 * Backend caches
 * ---------------------------------------------------------------------
 */

/* A channel's tiers and public flag. */
typedef struct ChannelInfo
{
	int32		id;				/* hash key */
	bool		is_public;
	int			ntiers;
	char		name[NAMEDATALEN + 1];
	char	   *tiers;			/* ntiers NUL-terminated names, back to back */
	int		   *tier_len;
} ChannelInfo;

/* Clearance of one role in one channel, -1 for none. */
typedef struct RoleKey
{
	int32		channel_id;
	Oid			roleid;
} RoleKey;

typedef struct RoleClearance
{
	RoleKey		key;
	int			clearance;
} RoleClearance;

/* Is a relation a ledger table with row-level security, and of which channel? */
typedef struct LedgerRel
{
	Oid			relid;			/* hash key */
	bool		is_ledger_rls;
	int32		channel_id;
} LedgerRel;

static MemoryContext cache_cxt = NULL;
static HTAB *channel_cache = NULL;
static HTAB *role_cache = NULL;
static HTAB *rel_cache = NULL;
static bool callbacks_registered = false;

/* The extension's tables whose changes flush the caches (set before they are read). */
static Oid	channel_relid = InvalidOid;
static Oid	clearance_relid = InvalidOid;
static Oid	visibility_relid = InvalidOid;

/*
 * Bumped by every invalidation we hear of.  A lookup that saw it change
 * while reading may have missed the change behind it: its result is used
 * once but not cached.
 */
static uint64 cache_generation = 0;

static void
flush_caches(void)
{
	if (cache_cxt != NULL)
		MemoryContextReset(cache_cxt);
	channel_cache = NULL;
	role_cache = NULL;
	rel_cache = NULL;
}

static void
relcache_callback(Datum arg, Oid relid)
{
	cache_generation++;
	if (!OidIsValid(relid) || relid == channel_relid || relid == clearance_relid ||
		relid == visibility_relid)
		flush_caches();
	else if (rel_cache != NULL)
		hash_search(rel_cache, &relid, HASH_REMOVE, NULL);
}

/* Roles, their attributes or memberships changed. */
static void
role_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	cache_generation++;
	flush_caches();
}

static void
ensure_caches(void)
{
	HASHCTL		ctl;

	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, role_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, role_callback, (Datum) 0);
		callbacks_registered = true;
	}
	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "loopledger clearances",
										  ALLOCSET_SMALL_SIZES);
	if (channel_cache == NULL)
	{
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(ChannelInfo);
		ctl.hcxt = cache_cxt;
		channel_cache = hash_create("loopledger channels", 16, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(RoleKey);
		ctl.entrysize = sizeof(RoleClearance);
		ctl.hcxt = cache_cxt;
		role_cache = hash_create("loopledger role clearances", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(LedgerRel);
		ctl.hcxt = cache_cxt;
		rel_cache = hash_create("loopledger tables", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
}

/* OID of a table of schema "ledger", InvalidOid when the extension is missing. */
static Oid
ledger_table_oid(const char *name)
{
	Oid			nsp = get_namespace_oid("ledger", true);

	return OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
}

/*
 * Scan one of the extension's tables with a fresh catalog snapshot (tables
 * without a syscache get a new one for every scan), optionally keyed on an
 * integer column.
 */
static SysScanDesc
begin_scan(Relation rel, const char *keycol, int32 keyval)
{
	ScanKeyData key;
	AttrNumber	att;

	if (keycol == NULL)
		return systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	att = get_attnum(RelationGetRelid(rel), keycol);
	if (att == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of \"%s\" does not exist", keycol, RelationGetRelationName(rel));
	ScanKeyInit(&key, att, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(keyval));
	return systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
}

static Datum
column(HeapTuple tup, Relation rel, const char *name, bool *isnull)
{
	AttrNumber	att = get_attnum(RelationGetRelid(rel), name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of \"%s\" does not exist", name, RelationGetRelationName(rel));
	return heap_getattr(tup, att, RelationGetDescr(rel), isnull);
}

/*
 * Read a channel's name, tiers and public flag into *ci (current memory
 * context).  False when the channel (or the extension) does not exist.
 */
static bool
load_channel(int32 channel_id, const char *by_name, ChannelInfo *ci)
{
	Oid			chrel = ledger_table_oid("channel");
	Oid			visrel = ledger_table_oid("channel_visibility");
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(chrel) || !OidIsValid(visrel))
		return false;
	channel_relid = chrel;
	visibility_relid = visrel;
	memset(ci, 0, sizeof(*ci));
	rel = table_open(chrel, AccessShareLock);
	scan = begin_scan(rel, by_name ? NULL : "channel_id", channel_id);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		char	   *name = TextDatumGetCString(column(tup, rel, "name", &isnull));
		ArrayType  *arr;
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;
		Size		len = 0;

		if (by_name && strcmp(name, by_name) != 0)
			continue;
		found = true;
		ci->id = DatumGetInt32(column(tup, rel, "channel_id", &isnull));
		strlcpy(ci->name, name, sizeof(ci->name));
		arr = DatumGetArrayTypeP(column(tup, rel, "tiers", &isnull));
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		ci->ntiers = n;
		ci->tier_len = palloc(sizeof(int) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			ci->tier_len[i] = VARSIZE_ANY_EXHDR(DatumGetTextPP(elems[i]));
			len += ci->tier_len[i] + 1;
		}
		ci->tiers = palloc(Max(len, 1));
		len = 0;
		for (i = 0; i < n; i++)
		{
			memcpy(ci->tiers + len, VARDATA_ANY(DatumGetTextPP(elems[i])), ci->tier_len[i]);
			ci->tiers[len + ci->tier_len[i]] = '\0';
			len += ci->tier_len[i] + 1;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!found)
		return false;

	ci->is_public = true;
	rel = table_open(visrel, AccessShareLock);
	scan = begin_scan(rel, "channel_id", ci->id);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;

		ci->is_public = DatumGetBool(column(tup, rel, "public", &isnull));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return true;
}

/* Name of tier i of a loaded channel. */
static const char *
tier_name(const ChannelInfo *ci, int i)
{
	const char *p = ci->tiers;

	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

static int
tier_position(const ChannelInfo *ci, const char *s, int len)
{
	const char *p = ci->tiers;
	int			i;

	for (i = 0; i < ci->ntiers; i++)
	{
		if (ci->tier_len[i] == len && memcmp(p, s, len) == 0)
			return i;
		p += ci->tier_len[i] + 1;
	}
	return -1;
}

/* Deep copy of a channel's description into cxt. */
static void
copy_channel(ChannelInfo *dst, const ChannelInfo *src, MemoryContext cxt)
{
	Size		len = 0;
	int			i;

	for (i = 0; i < src->ntiers; i++)
		len += src->tier_len[i] + 1;
	dst->id = src->id;
	dst->is_public = src->is_public;
	dst->ntiers = src->ntiers;
	strlcpy(dst->name, src->name, sizeof(dst->name));
	dst->tiers = MemoryContextAlloc(cxt, Max(len, 1));
	memcpy(dst->tiers, src->tiers, len);
	dst->tier_len = MemoryContextAlloc(cxt, sizeof(int) * Max(src->ntiers, 1));
	memcpy(dst->tier_len, src->tier_len, sizeof(int) * src->ntiers);
}

/*
 * The cached entry of a channel; errors when it does not exist.  The entry
 * lives until the next catalog access (which may flush the cache).
 */
static ChannelInfo *
channel_get(int32 channel_id)
{
	ChannelInfo *ci;
	uint64		gen = cache_generation;

	if (channel_cache != NULL &&
		(ci = hash_search(channel_cache, &channel_id, HASH_FIND, NULL)) != NULL)
		return ci;
	ci = palloc(sizeof(ChannelInfo));
	if (!load_channel(channel_id, NULL, ci))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel %d of a ledger table does not exist", channel_id)));
	ensure_caches();
	if (gen == cache_generation)
	{
		ChannelInfo *tmp = ci;

		ci = hash_search(channel_cache, &channel_id, HASH_ENTER, NULL);
		copy_channel(ci, tmp, cache_cxt);
	}
	return ci;
}

/* Does role "roleid" still carry the name it had when it was granted? */
static bool
role_is(Oid roleid, const char *name)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roleid));
	bool		same;

	if (!HeapTupleIsValid(tup))
		return false;
	same = strcmp(NameStr(((Form_pg_authid) GETSTRUCT(tup))->rolname), name) == 0;
	ReleaseSysCache(tup);
	return same;
}

/*
 * Clearance of one role: superusers and BYPASSRLS roles see everything;
 * otherwise the highest tier granted to a role it is a member of (a member
 * can always SET ROLE to it), or the lowest tier of a public channel.
 */
static int
role_clearance(int32 channel_id, Oid roleid)
{
	RoleKey		key;
	RoleClearance *rc;
	ChannelInfo ch;
	Oid			clrel;
	int			best = -1;
	uint64		gen = cache_generation;

	memset(&key, 0, sizeof(key));
	key.channel_id = channel_id;
	key.roleid = roleid;
	if (role_cache != NULL &&
		(rc = hash_search(role_cache, &key, HASH_FIND, NULL)) != NULL)
		return rc->clearance;

	/* a copy: catalog access below may flush the cache */
	copy_channel(&ch, channel_get(channel_id), CurrentMemoryContext);

	if (superuser_arg(roleid) || has_bypassrls_privilege(roleid))
		best = ch.ntiers - 1;
	else if (OidIsValid(clrel = ledger_table_oid("clearance")))
	{
		Relation	rel;
		SysScanDesc scan;
		HeapTuple	tup;

		clearance_relid = clrel;
		rel = table_open(clrel, AccessShareLock);
		scan = begin_scan(rel, "channel_id", channel_id);

		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			bool		isnull;
			Oid			grantee = DatumGetObjectId(column(tup, rel, "role", &isnull));
			char	   *name = NameStr(*DatumGetName(column(tup, rel, "role_name", &isnull)));
			text	   *tier = DatumGetTextPP(column(tup, rel, "tier", &isnull));
			int			pos = tier_position(&ch, VARDATA_ANY(tier), VARSIZE_ANY_EXHDR(tier));

			if (pos > best && role_is(grantee, name) &&
				is_member_of_role_nosuper(roleid, grantee))
				best = pos;
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	if (best < 0 && ch.is_public)
		best = 0;

	ensure_caches();
	if (gen == cache_generation)
	{
		rc = hash_search(role_cache, &key, HASH_ENTER, NULL);
		rc->clearance = best;
	}
	return best;
}

/*
 * Effective clearance in a channel: the lower of current_user's and
 * session_user's, -1 for none.
 */
int
ll_effective_clearance(int32 channel_id)
{
	int			cur;
	int			ses;

	cur = role_clearance(channel_id, GetUserId());
	ses = role_clearance(channel_id, GetSessionUserId());
	return Min(cur, ses);
}

/*
 * Cached answer: is relid a ledger table with row-level security enabled,
 * and of which channel (*channel_id)?
 */
static bool
ledger_rel(Oid relid, int32 *channel_id_out)
{
	LedgerRel  *lr;
	HeapTuple	tup;
	bool		is_ledger = false;
	int32		channel_id = 0;
	uint64		gen = cache_generation;

	if (rel_cache != NULL && (lr = hash_search(rel_cache, &relid, HASH_FIND, NULL)) != NULL)
	{
		*channel_id_out = lr->channel_id;
		return lr->is_ledger_rls;
	}
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);
		bool		candidate = form->relkind == RELKIND_RELATION &&
			form->relrowsecurity && form->relhastriggers;
		char	   *channel;
		ChannelInfo ci;

		ReleaseSysCache(tup);
		if (candidate && ll_is_ledger_table(relid, &channel) &&
			load_channel(0, channel, &ci))
		{
			is_ledger = true;
			channel_id = ci.id;
		}
	}
	ensure_caches();
	if (gen == cache_generation)
	{
		lr = hash_search(rel_cache, &relid, HASH_ENTER, NULL);
		lr->is_ledger_rls = is_ledger;
		lr->channel_id = channel_id;
	}
	*channel_id_out = channel_id;
	return is_ledger;
}

/* ---------------------------------------------------------------------
 * The policy
 * ---------------------------------------------------------------------
 */

/*
 * CREATE POLICY statement for a new ledger table (quoted: its quoted
 * qualified name; qualname: the name hashed into its entries).
 */
void
ll_append_policy_sql(StringInfo sql, const char *quoted, int32 channel_id,
					 const char *tier_column, const char *qualname)
{
	appendStringInfo(sql, "CREATE POLICY %s ON %s AS PERMISSIVE FOR ALL TO PUBLIC ",
					 LL_POLICY_NAME, quoted);
	if (tier_column == NULL)
		appendStringInfo(sql, "USING ((SELECT ledger.clearance_of(%d)) >= 0) "
						 "WITH CHECK ((SELECT ledger.clearance_of(%d)) >= 0)",
						 channel_id, channel_id);
	else
	{
		const char *col = quote_identifier(tier_column);

		appendStringInfo(sql, "USING (ledger.tier_index(%d, %s::text) <= (SELECT ledger.clearance_of(%d))) "
						 "WITH CHECK (ledger.tier_index(%d, %s::text, %s) <= (SELECT ledger.clearance_of(%d)))",
						 channel_id, col, channel_id,
						 channel_id, col, quote_literal_cstr(qualname), channel_id);
	}
}

/*
 * ledger.clearance_of(channel_id) -> integer: index of the highest tier the
 * session may read (lowest tier = 0), -1 for none.
 */
Datum
ll_clearance_of(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(ll_effective_clearance(PG_GETARG_INT32(0)));
}

/*
 * ledger.tier_index(channel_id, tier, inserting_into DEFAULT NULL) -> the
 * tier's index, NULL when the value names no tier (the row stays hidden).
 * With inserting_into (the policy's WITH CHECK) a bad tier is the same
 * error the capture trigger raises, instead of a policy violation.
 */
Datum
ll_tier_index(PG_FUNCTION_ARGS)
{
	ChannelInfo *ci;
	text	   *tier;
	int			pos;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ci = channel_get(PG_GETARG_INT32(0));
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(2))
			PG_RETURN_NULL();
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("tier of a row of ledger table \"%s\" must not be null",
						text_to_cstring(PG_GETARG_TEXT_PP(2))),
				 errhint("Use one of the tiers of channel \"%s\" listed in ledger.channels.",
						 ci->name)));
	}
	tier = PG_GETARG_TEXT_PP(1);
	pos = tier_position(ci, VARDATA_ANY(tier), VARSIZE_ANY_EXHDR(tier));
	if (pos >= 0)
		PG_RETURN_INT32(pos);
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("tier \"%s\" is not a tier of channel \"%s\"", text_to_cstring(tier), ci->name),
			 errdetail("The row was inserted into ledger table \"%s\".",
					   text_to_cstring(PG_GETARG_TEXT_PP(2))),
			 errhint("Use one of the tiers listed in ledger.channels.")));
	PG_RETURN_NULL();			/* keep compiler quiet */
}

/* Statement trigger on the clearance tables: other backends flush their caches. */
Datum
ll_clearance_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "ledger.clearance_changed() must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}

/* Does the table have any row-level security policy? */
bool
ll_relation_has_policy(Oid relid)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Table of a policy, InvalidOid when there is no such policy. */
Oid
ll_policy_relation(Oid policy_oid)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_policy_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(policy_oid));
	scan = systable_beginscan(rel, PolicyOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		relid = ((Form_pg_policy) GETSTRUCT(tup))->polrelid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}

/*
 * May this CREATE POLICY on a ledger table go ahead?  Only the ledger's own
 * policy on a table that has none yet: pg_restore creates it after the
 * table's triggers.  Until then the table shows non-superusers nothing.
 */
bool
ll_policy_create_allowed(Oid relid, const char *policy_name)
{
	return policy_name != NULL && strcmp(policy_name, LL_POLICY_NAME) == 0 &&
		!ll_relation_has_policy(relid);
}

/* ---------------------------------------------------------------------
 * Managing clearances
 * ---------------------------------------------------------------------
 */

static void
require_superuser(void)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may grant or revoke clearances or change a channel's visibility"),
				 errdetail("These decide which rows of a channel's ledger tables each role can read.")));
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* Channel by name for the clearance functions; errors when missing. */
static void
channel_for_clearance(const char *name, ChannelInfo *ci)
{
	if (!load_channel(0, name, ci))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist", name),
				 errdetail("Clearances and visibility are set per channel."),
				 errhint("Create it with ledger.create_channel(), or see ledger.channels.")));
}

static Oid
role_for_clearance(const char *name, bool missing_ok)
{
	Oid			roleid = get_role_oid(name, true);

	if (!OidIsValid(roleid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", name),
				 errdetail("Clearances are granted to existing roles; the name is taken as written, without case folding."),
				 strcmp(name, "public") == 0
				 ? errhint("Roles without a clearance see the lowest tier of a public channel; see ledger.set_channel_public().")
				 : errhint("Create the role first, or check its spelling in pg_roles.")));
	return roleid;
}

static char *
tier_list(const ChannelInfo *ci)
{
	StringInfoData s;
	int			i;

	initStringInfo(&s);
	for (i = 0; i < ci->ntiers; i++)
		appendStringInfo(&s, "%s\"%s\"", i > 0 ? ", " : "", tier_name(ci, i));
	return s.data;
}

/*
 * ledger.grant_clearance(channel, role, tier): role (and its members) may
 * read rows of the channel up to tier; replaces an earlier grant.
 */
Datum
ll_grant_clearance(PG_FUNCTION_ARGS)
{
	char	   *channel = text_arg(fcinfo, 0, "channel");
	char	   *role = text_arg(fcinfo, 1, "role");
	char	   *tier = text_arg(fcinfo, 2, "tier");
	ChannelInfo ci;
	Oid			roleid;

	require_superuser();
	channel_for_clearance(channel, &ci);
	roleid = role_for_clearance(role, false);
	if (tier_position(&ci, tier, strlen(tier)) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tier \"%s\" is not a tier of channel \"%s\"", tier, channel),
				 errdetail("The tiers of channel \"%s\", lowest first, are %s.", channel, tier_list(&ci)),
				 errhint("A clearance names the highest tier the role may read.")));
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO ledger.clearance (channel_id, role, role_name, tier) "
							  "VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id, role) DO UPDATE "
							  "SET role_name = EXCLUDED.role_name, tier = EXCLUDED.tier, granted_at = now()",
							  4, (Oid[]) {INT4OID, REGROLEOID, NAMEOID, TEXTOID},
							  (Datum[]) {Int32GetDatum(ci.id), ObjectIdGetDatum(roleid),
								  DirectFunctionCall1(namein, CStringGetDatum(role)),
							  CStringGetTextDatum(tier)},
							  NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record clearance");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * ledger.revoke_clearance(channel, role) -> true when the role had one.
 * A dropped role's stale grant can be removed by its old name.
 */
Datum
ll_revoke_clearance(PG_FUNCTION_ARGS)
{
	char	   *channel = text_arg(fcinfo, 0, "channel");
	char	   *role = text_arg(fcinfo, 1, "role");
	ChannelInfo ci;
	Oid			roleid;
	uint64		n;

	require_superuser();
	channel_for_clearance(channel, &ci);
	roleid = role_for_clearance(role, true);
	SPI_connect();
	if (SPI_execute_with_args("DELETE FROM ledger.clearance WHERE channel_id = $1 "
							  "AND (role = $2 OR role_name = $3)",
							  3, (Oid[]) {INT4OID, OIDOID, NAMEOID},
							  (Datum[]) {Int32GetDatum(ci.id), ObjectIdGetDatum(roleid),
							  DirectFunctionCall1(namein, CStringGetDatum(role))},
							  NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not revoke clearance");
	n = SPI_processed;
	SPI_finish();
	if (n == 0 && !OidIsValid(roleid))
		role_for_clearance(role, false);
	PG_RETURN_BOOL(n > 0);
}

/*
 * ledger.set_channel_public(channel, public): whether roles without a
 * clearance see the channel's lowest tier (the default) or nothing.
 */
Datum
ll_set_channel_public(PG_FUNCTION_ARGS)
{
	char	   *channel = text_arg(fcinfo, 0, "channel");
	ChannelInfo ci;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("public must not be null")));
	require_superuser();
	channel_for_clearance(channel, &ci);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO ledger.channel_visibility (channel_id, public) VALUES ($1, $2) "
							  "ON CONFLICT (channel_id) DO UPDATE SET public = EXCLUDED.public, set_at = now()",
							  2, (Oid[]) {INT4OID, BOOLOID},
							  (Datum[]) {Int32GetDatum(ci.id), PG_GETARG_DATUM(1)},
							  NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record channel visibility");
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * No way around the policy
 * ---------------------------------------------------------------------
 */

/*
 * Refuse an action on a ledger table with row-level security to roles below
 * the channel's highest tier: it would show them something of every row.
 */
void
ll_require_full_clearance(Oid relid, const char *action, const char *why)
{
	int32		channel_id;
	ChannelInfo *ci;
	char	   *name;

	if (!ledger_rel(relid, &channel_id))
		return;
	if (ll_effective_clearance(channel_id) >= channel_get(channel_id)->ntiers - 1)
		return;
	name = get_rel_name(relid);
	ci = channel_get(channel_id);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s ledger table \"%s\"", action, name),
			 errdetail("Table \"%s\" belongs to ledger channel \"%s\"; %s", name, ci->name, why),
			 errhint("Roles cleared for tier \"%s\" of channel \"%s\" and superusers can.",
					 tier_name(ci, ci->ntiers - 1), ci->name)));
}

/* The rewritten queries an EXPLAIN would plan (views expanded). */
static List *
explained_queries(Query *q)
{
	if (q->commandType == CMD_UTILITY && q->utilityStmt != NULL)
	{
		Node	   *u = q->utilityStmt;

		if (IsA(u, CreateTableAsStmt))
			return explained_queries(castNode(Query, ((CreateTableAsStmt *) u)->query));
		if (IsA(u, DeclareCursorStmt))
			return explained_queries(castNode(Query, ((DeclareCursorStmt *) u)->query));
		if (IsA(u, ExecuteStmt))
		{
			PreparedStatement *ps = FetchPreparedStatement(((ExecuteStmt *) u)->name, false);

			if (ps == NULL)
				return NIL;
			/* revalidates the cached query list after DDL */
			(void) FetchPreparedStatementTargetList(ps);
			return ps->plansource->query_list;
		}
		return NIL;
	}
	return QueryRewrite(copyObject(q));
}

/*
 * EXPLAIN of a query reading a ledger table needs full clearance: row
 * counts ("Rows Removed by Filter"), estimates and plan choices all come
 * from every row, hidden ones included.  The queries are planned, as
 * EXPLAIN will plan them, so that tables reached through views, subqueries
 * and inlined SQL functions are all in the plan's range table.
 */
void
ll_check_explain(Node *query)
{
	ListCell   *lc;

	if (query == NULL || !IsA(query, Query))
		return;
	foreach(lc, explained_queries((Query *) query))
	{
		Query	   *q = lfirst_node(Query, lc);
		PlannedStmt *ps;
		ListCell   *rc;

		if (q->commandType == CMD_UTILITY)
			continue;
		ps = pg_plan_query(copyObject(q), NULL, CURSOR_OPT_PARALLEL_OK, NULL);
		foreach(rc, ps->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, rc);

			if (rte->rtekind == RTE_RELATION)
				ll_require_full_clearance(rte->relid, "explain a query on",
										  "plans, estimates and row counts would reveal rows above your clearance.");
		}
	}
}

/*
 * Error details on ledger tables.  PostgreSQL already leaves key values
 * out of constraint errors when row-level security applies to the current
 * user; this also covers a session below full clearance acting through a
 * role that is not subject to it (a SECURITY DEFINER function of a
 * superuser, say).  Tables written by such a session are noted when their
 * statement starts; an error naming one of them in the same transaction
 * gets a neutral client DETAIL (the server log keeps the original one).
 * The hook cannot look anything up itself: it runs inside error recovery.
 */
#define LL_MAX_REDACT 16

typedef struct RedactedTable
{
	char		schema[NAMEDATALEN];
	char		table[NAMEDATALEN];
	char		channel[NAMEDATALEN + 1];
} RedactedTable;

static struct
{
	LocalTransactionId lxid;
	int			n;
	bool		overflow;		/* more tables than fit: withhold every table's details */
	RedactedTable t[LL_MAX_REDACT];
}			redact;

static emit_log_hook_type prev_emit_log_hook = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;

/* A statement writing relid starts: note it when the session is below full clearance. */
void
ll_note_ledger_write(Oid relid)
{
	int32		channel_id;
	ChannelInfo *ci;
	char	   *nsp;
	char	   *rel;
	int			i;

	if (MyProc == NULL || !IsTransactionState() || !ledger_rel(relid, &channel_id))
		return;
	if (ll_effective_clearance(channel_id) >= channel_get(channel_id)->ntiers - 1)
		return;
	nsp = get_namespace_name(get_rel_namespace(relid));
	rel = get_rel_name(relid);
	if (nsp == NULL || rel == NULL)
		return;
	ci = channel_get(channel_id);
	if (redact.lxid != MyProc->lxid)
	{
		redact.lxid = MyProc->lxid;
		redact.n = 0;
		redact.overflow = false;
	}
	for (i = 0; i < redact.n; i++)
		if (strcmp(redact.t[i].schema, nsp) == 0 && strcmp(redact.t[i].table, rel) == 0)
			return;
	if (redact.n == LL_MAX_REDACT)
	{
		redact.overflow = true;
		return;
	}
	strlcpy(redact.t[redact.n].schema, nsp, NAMEDATALEN);
	strlcpy(redact.t[redact.n].table, rel, NAMEDATALEN);
	strlcpy(redact.t[redact.n].channel, ci->name, NAMEDATALEN + 1);
	redact.n++;
}

static void
clearance_emit_log(ErrorData *edata)
{
	const char *channel = NULL;
	int			i;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (edata->elevel < ERROR || edata->table_name == NULL || edata->detail == NULL ||
		MyProc == NULL || redact.lxid != MyProc->lxid || (redact.n == 0 && !redact.overflow))
		return;
	for (i = 0; i < redact.n && channel == NULL; i++)
		if (strcmp(redact.t[i].table, edata->table_name) == 0 &&
			(edata->schema_name == NULL || strcmp(redact.t[i].schema, edata->schema_name) == 0))
			channel = redact.t[i].channel;
	if (channel == NULL && !redact.overflow)
		return;
	if (edata->detail_log == NULL)
		edata->detail_log = edata->detail;
	edata->detail = channel
		? psprintf("The detail is withheld: your clearance in ledger channel \"%s\" is below its highest tier.", channel)
		: pstrdup("The detail is withheld: your clearance in a ledger channel is below its highest tier.");
}

static void
clearance_executor_start(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *ps = queryDesc->plannedstmt;

	if (ps->resultRelations != NIL && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		ListCell   *lc;

		foreach(lc, ps->resultRelations)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), ps->rtable);

			if (rte->rtekind == RTE_RELATION)
				ll_note_ledger_write(rte->relid);
		}
	}
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

void
ll_install_clearance_hooks(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = clearance_emit_log;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = clearance_executor_start;
}

/*
 * ledger.proof(channel, entry, upto): when row-level security hides rows of
 * the channel's tables from the caller, an entry whose row the caller
 * cannot read gets exactly the error of an entry that does not exist.  An
 * entry this node holds only as a commitment gets ll_proof's own error.
 */
Datum
ll_proof_visible(PG_FUNCTION_ARGS)
{
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1))
	{
		char	   *channel = text_to_cstring(PG_GETARG_TEXT_PP(0));
		int64		entry = PG_GETARG_INT64(1);
		LLChannel	ch;
		List	   *relids = NIL;
		bool		rls = false;
		bool		found = false;
		ListCell   *lc;
		uint64		i;

		SPI_connect();
		ll_channel_lookup(channel, &ch);
		SPI_execute_with_args("SELECT relid::oid FROM ledger.ledger_table WHERE channel_id = $1", 1,
							  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch.id)}, NULL, true, 0);
		for (i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc, 1, &isnull));

			relids = lappend_oid(relids, relid);
			if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
				rls = true;
		}
		foreach(lc, relids)
		{
			Oid			relid = lfirst_oid(lc);
			char	   *sql;

			if (!rls || found)
				break;
			if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
				continue;
			sql = psprintf("SELECT 1 FROM %s WHERE %s = $1",
						   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													  get_rel_name(relid)),
						   LL_ENTRY_COLUMN);
			SPI_execute_with_args(sql, 1, (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(entry)},
								  NULL, true, 1);
			found = SPI_processed > 0;
		}

		/*
		 * A redacted entry has no row for anyone on this node: ll_proof
		 * explains that.  Nothing is revealed by it, since
		 * ledger.block_entries() shows everyone the entry, its tier and
		 * whether it is redacted.
		 */
		if (rls && !found && entry > 0)
			found = ll_entry_is_redacted(&ch, (uint64) entry);
		SPI_finish();
		if (rls && !found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("channel \"%s\" has no entry %llu", channel, (unsigned long long) entry),
					 errhint("Entry numbers are in the ledger_entry column and in ledger.history().")));
	}
	return ll_proof(fcinfo);
}
