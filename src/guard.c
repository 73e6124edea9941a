/*
 * guard.c
 *		Refuse schema changes and drops that would rewrite a ledger table.
 *
 * A table is a ledger table exactly when it carries the ledger.capture()
 * trigger; the trigger's first argument names the channel.  Deciding from
 * pg_trigger, not from the extension's own tables, keeps the check cheap,
 * correct during pg_restore and safe while the extension itself is being
 * dropped.  Drops are caught in the object access hook, which sees every
 * dropped object, including those reached through CASCADE.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/heap.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_type.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_trigger.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "parser/parse_type.h"
#include "nodes/makefuncs.h"
#include "utils/typcache.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/rel.h"

#include "loopledger.h"
#include "chain.h"

static ProcessUtility_hook_type prev_utility = NULL;
static post_parse_analyze_hook_type prev_post_parse = NULL;

static void check_relation(RangeVar *rv, const char *action, const char *detail);
static void check_copy(CopyStmt *stmt);
static object_access_hook_type prev_object_access = NULL;

/* Is this function one of the extension's ledger-table trigger functions? */
static bool
is_ledger_trigger_func(Oid funcid, bool capture_only)
{
	char	   *name;
	char	   *nsp;
	bool		result;

	nsp = get_namespace_name(get_func_namespace(funcid));
	if (nsp == NULL || strcmp(nsp, "ledger") != 0)
		return false;
	name = get_func_name(funcid);
	if (name == NULL)
		return false;
	result = strcmp(name, "capture") == 0 ||
		(!capture_only && strcmp(name, "refuse_change") == 0);
	return result;
}

static char *
first_trigger_arg(HeapTuple tup, Relation trigrel)
{
	Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
	bool		isnull;
	Datum		d;
	bytea	   *args;

	if (tg->tgnargs < 1)
		return pstrdup("?");
	d = heap_getattr(tup, Anum_pg_trigger_tgargs, RelationGetDescr(trigrel), &isnull);
	if (isnull)
		return pstrdup("?");
	args = DatumGetByteaPP(d);
	/* arguments are NUL-terminated strings, one after another */
	return pnstrdup(VARDATA_ANY(args), strnlen(VARDATA_ANY(args), VARSIZE_ANY_EXHDR(args)));
}

/*
 * First pg_trigger row matching key (through index) whose function is one of
 * the ledger's triggers (only ledger.capture() when capture_only); its table
 * goes to *relid and its channel (first argument) to *channel when asked.
 */
static bool
find_ledger_trigger(AttrNumber key_att, Oid index, Oid key, bool capture_only,
					Oid *relid, char **channel)
{
	Relation	trigrel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&skey, key_att, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(key));
	scan = systable_beginscan(trigrel, index, true, NULL, 1, &skey);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);

		if (!is_ledger_trigger_func(tg->tgfoid, capture_only))
			continue;
		found = true;
		if (relid)
			*relid = tg->tgrelid;
		if (channel)
			*channel = first_trigger_arg(tup, trigrel);
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
	return found;
}

/*
 * True when relid is a ledger table; *channel then names its channel.
 */
bool
ll_is_ledger_table(Oid relid, char **channel)
{
	return find_ledger_trigger(Anum_pg_trigger_tgrelid, TriggerRelidNameIndexId,
							   relid, true, NULL, channel);
}

static void
refuse(Oid relid, const char *channel, const char *action, const char *detail)
{
	char	   *name = get_rel_name(relid);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s ledger table \"%s\"", action, name ? name : "?"),
			 errdetail("Table \"%s\" belongs to ledger channel \"%s\"; %s",
					   name ? name : "?", channel, detail)));
}

static Oid
relation_of(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

/*
 * ALTER TABLE subcommands that cannot change a ledger table's stored rows,
 * its hashing or its guards.  Everything else is refused.
 */
static bool
alter_allowed(AlterTableType t)
{
	switch (t)
	{
		case AT_AddIndex:
		case AT_ReAddIndex:
		case AT_AddConstraint:
		case AT_ReAddConstraint:
		case AT_AddIndexConstraint:
		case AT_ValidateConstraint:
		case AT_ChangeOwner:
		case AT_SetStatistics:
		case AT_ClusterOn:
		case AT_DropCluster:
		case AT_SetRelOptions:
		case AT_ResetRelOptions:
		case AT_ReplaceRelOptions:
		case AT_SetTableSpace:
		case AT_EnableRowSecurity:
		case AT_ForceRowSecurity:
		case AT_ReplicaIdentity:
		case AT_SetLogged:
		case AT_GenericOptions:
			return true;
		default:
			return false;
	}
}

/* Does a value of type typid contain a value of type target? */
static bool
type_contains(Oid typid, Oid target, int depth)
{
	Oid			base;
	Oid			elem;
	Oid			relid;

	if (typid == target)
		return true;
	if (depth > 16)
		return false;
	base = getBaseType(typid);
	if (base != typid)
		return type_contains(base, target, depth + 1);
	elem = get_element_type(typid);
	if (OidIsValid(elem))
		return type_contains(elem, target, depth + 1);
	if (type_is_range(typid))
		return type_contains(get_range_subtype(typid), target, depth + 1);
	relid = typeOrDomainTypeRelid(typid);
	if (OidIsValid(relid) && get_typtype(typid) == TYPTYPE_COMPOSITE)
	{
		Relation	rel = relation_open(relid, AccessShareLock);
		TupleDesc	td = RelationGetDescr(rel);
		bool		found = false;
		int			i;

		for (i = 0; i < td->natts && !found; i++)
			if (!TupleDescAttr(td, i)->attisdropped)
				found = type_contains(TupleDescAttr(td, i)->atttypid, target, depth + 1);
		relation_close(rel, AccessShareLock);
		return found;
	}
	return false;
}

/*
 * Call fn for every ledger table, found by its capture trigger, with its
 * channel (the trigger's first argument).
 */
static void
for_each_ledger_table(void (*fn) (Oid relid, const char *channel, const void *arg),
					  const void *arg)
{
	Relation	trigrel = table_open(TriggerRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(trigrel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);

		if (is_ledger_trigger_func(tg->tgfoid, true))
			fn(tg->tgrelid, first_trigger_arg(tup, trigrel), arg);
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
}

/*
 * Checking a domain's constraint (added, validated, NOT NULL set) reads
 * every stored value of every column of that domain, past row-level
 * security, as the domain's owner: its error or a function it calls
 * would show hidden values.
 */
static void
require_clearance_if_stores(Oid relid, const char *channel, const void *arg)
{
	Oid			typid = *(const Oid *) arg;
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	td = RelationGetDescr(rel);
	bool		stores = false;
	int			i;

	for (i = 0; i < td->natts && !stores; i++)
		stores = !TupleDescAttr(td, i)->attisdropped &&
			type_contains(TupleDescAttr(td, i)->atttypid, typid, 0);
	relation_close(rel, AccessShareLock);
	if (stores)
		ll_require_full_clearance(relid, "check a domain constraint against",
								  "the check reads every row of the table, hidden ones included.");
}

static void
refuse_if_stores(Oid relid, const char *channel, const void *arg)
{
	Oid			typid = *(const Oid *) arg;
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	td = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && type_contains(att->atttypid, typid, 0))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot alter type %s", format_type_be(typid)),
					 errdetail("Column \"%s\" of ledger table \"%s\" (channel \"%s\") stores it; changing it would rewrite ledger rows.",
							   NameStr(att->attname), RelationGetRelationName(rel), channel)));
	}
	relation_close(rel, AccessShareLock);
}

/*
 * Refuse changing a type whose stored values or canonical text would change
 * under a ledger table's rows (renaming an enum value, altering or dropping
 * a composite attribute).
 */
static void
check_type_change(Oid typid)
{
	if (OidIsValid(typid))
		for_each_ledger_table(refuse_if_stores, &typid);
}

static void
refuse_if_in_schema(Oid relid, const char *channel, const void *arg)
{
	if (get_rel_namespace(relid) == *(const Oid *) arg)
		refuse(relid, channel, "rename the schema of",
			   "its name and its schema's are part of every row's hash.");
}

/*
 * A schema's name is part of its ledger tables' hashed names: renamed, the
 * rows no longer match, and a new schema could take the old name.
 */
static void
check_schema_rename(const char *schema)
{
	Oid			nsp = get_namespace_oid(schema, true);

	if (OidIsValid(nsp))
		for_each_ledger_table(refuse_if_in_schema, &nsp);
}

/*
 * Whether anything but its own array type depends on typid (a column, a
 * domain, a function), or on that array type: only then can a ledger
 * column store it.  An index lookup, so that adding a column to a table
 * whose row type nothing uses does not open every ledger table.
 */
static bool
type_has_users(Oid typid)
{
	Oid			arr = get_array_type(typid);
	Oid			types[2] = {typid, arr};
	Relation	dep = table_open(DependRelationId, AccessShareLock);
	bool		used = false;
	int			t;

	for (t = 0; t < 2 && !used && OidIsValid(types[t]); t++)
	{
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(TypeRelationId));
		ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(types[t]));
		scan = systable_beginscan(dep, DependReferenceIndexId, true, NULL, 2, key);
		while (!used && HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);

			used = !(d->classid == TypeRelationId && d->objid == arr);
		}
		systable_endscan(scan);
	}
	table_close(dep, AccessShareLock);
	return used;
}

/* ALTER TABLE subcommands that change the table's row type */
static bool
changes_row_type(AlterTableType t)
{
	switch (t)
	{
		case AT_AddColumn:
		case AT_AddColumnRecurse:
		case AT_AddColumnToView:
		case AT_DropColumn:
		case AT_DropColumnRecurse:
		case AT_AlterColumnType:
			return true;
		default:
			return false;
	}
}

/*
 * Returns the ledger table whose constraints must be checked again once
 * the statement has added its own (InvalidOid if none): a new constraint
 * can only be judged after PostgreSQL has cooked it.
 */
/*
 * pg_stats shows an index's statistics to whoever may read its columns -
 * the table's owner - without row-level security: for an expression
 * column of a ledger table's index, they would be values of hidden rows.
 * None are collected, and any collected before the table joined the
 * ledger are removed.
 */
void
ll_hide_index_stats(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	table_close(rel, AccessShareLock);
	foreach(lc, indexes)
	{
		Oid			indexid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
		AttrNumber	exprs[INDEX_MAX_KEYS];
		int			n = 0;
		int			i;

		if (!HeapTupleIsValid(tup))
			continue;
		for (i = 0; i < ((Form_pg_index) GETSTRUCT(tup))->indnatts; i++)
			if (((Form_pg_index) GETSTRUCT(tup))->indkey.values[i] == 0)
				exprs[n++] = (AttrNumber) (i + 1);
		ReleaseSysCache(tup);
		for (i = 0; i < n; i++)
		{
			if (get_attstattarget(indexid, exprs[i]) != 0)
			{
				SPI_connect();
				if (SPI_execute(psprintf("ALTER INDEX %s ALTER COLUMN %d SET STATISTICS 0",
										 quote_qualified_identifier(get_namespace_name(get_rel_namespace(indexid)),
																	get_rel_name(indexid)), exprs[i]),
								false, 0) != SPI_OK_UTILITY)
					elog(ERROR, "could not turn off statistics of an index expression");
				SPI_finish();
			}
			RemoveStatistics(indexid, exprs[i]);
		}
	}
}

/* ALTER INDEX ... SET STATISTICS on an expression of a ledger table's index */
static void
check_index_statistics(Oid indexid, AlterTableCmd *cmd)
{
	Oid			relid = IndexGetRelation(indexid, true);
	char	   *channel;

	if (cmd->subtype != AT_SetStatistics || !OidIsValid(relid) ||
		!ll_is_ledger_table(relid, &channel))
		return;
	if (cmd->def && IsA(cmd->def, Integer) && intVal(cmd->def) == 0)
		return;
	refuse(relid, channel, "collect statistics on an index expression of",
		   "pg_stats shows an index's statistics without row-level security.");
}

static Oid
check_alter_table(AlterTableStmt *stmt, char **recheck_channel)
{
	Oid			recheck = InvalidOid;
	Oid			relid = relation_of(stmt->relation);
	char	   *channel;
	ListCell   *lc;

	if (stmt->objtype == OBJECT_TYPE)
	{
		if (OidIsValid(relid))
			check_type_change(get_rel_type_id(relid));
		return InvalidOid;
	}
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_INDEX)
			check_index_statistics(relid, cmd);
		/* a ledger table attached below another table would take its orders */
		if (cmd->subtype == AT_AttachPartition && cmd->def && IsA(cmd->def, PartitionCmd))
			check_relation(((PartitionCmd *) cmd->def)->name, "attach",
						   "statements on a parent table would bypass its guards.");
		/* ...and a child below a ledger table would show as its rows */
		if (cmd->subtype == AT_AddInherit && cmd->def && IsA(cmd->def, RangeVar))
			check_relation((RangeVar *) cmd->def, "inherit from",
						   "rows of a child table would show as ledger rows without being in the ledger.");
		/* any table's row type may be a ledger column's type */
		if (OidIsValid(relid) && changes_row_type(cmd->subtype) &&
			type_has_users(get_rel_type_id(relid)))
			check_type_change(get_rel_type_id(relid));
	}
	if (!OidIsValid(relid) || !ll_is_ledger_table(relid, &channel))
		return InvalidOid;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AddConstraint || cmd->subtype == AT_ReAddConstraint)
		{
			recheck = relid;
			*recheck_channel = channel;
		}
		if (!alter_allowed(cmd->subtype))
			refuse(relid, channel, "alter",
				   "its columns, triggers and row-level security cannot change.");
		/* checking a constraint reads every row, hidden ones included */
		if (cmd->subtype == AT_AddIndex || cmd->subtype == AT_AddConstraint ||
			cmd->subtype == AT_AddIndexConstraint || cmd->subtype == AT_ValidateConstraint)
			ll_require_full_clearance(relid, "add or validate a constraint on",
									  "checking it evaluates expressions over every row, whatever its tier.");
	}
	return recheck;
}

/*
 * Row-level security policies of ledger tables are the ledger's own: only
 * pg_restore may re-create the ledger's policy on a table that lacks it.
 */
static void
check_policy(RangeVar *rv, const char *policy_name, bool creating)
{
	Oid			relid = relation_of(rv);
	char	   *channel;

	if (!OidIsValid(relid) || !ll_is_ledger_table(relid, &channel))
		return;
	if (creating && ll_policy_create_allowed(relid, policy_name))
		return;
	refuse(relid, channel, creating ? "add a row-level security policy to" : "alter the row-level security policy of",
		   "its policy decides which tiers each role can read.");
}

/* Statements that evaluate expressions over every row of a table. */
static void
check_full_read(RangeVar *rv, const char *action, const char *why)
{
	Oid			relid = relation_of(rv);

	if (OidIsValid(relid))
		ll_require_full_clearance(relid, action, why);
}

/* Whether building relid's indexes evaluates expressions or predicates. */
static bool
indexes_evaluate(Oid relid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);
	List	   *indexes;
	ListCell   *lc;
	bool		found = false;

	if (rel == NULL)
		return false;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			continue;
		found |= !heap_attisnull(tup, Anum_pg_index_indexprs, NULL) ||
			!heap_attisnull(tup, Anum_pg_index_indpred, NULL);
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	relation_close(rel, AccessShareLock);
	return found;
}

#define EVALUATES_WHY "it evaluates the expressions and predicates of the table's indexes over every row, whatever its tier."

/*
 * REINDEX, CLUSTER, VACUUM FULL and ANALYZE run a ledger table's index
 * expressions over its rows, with functions its owner may have replaced:
 * like CREATE INDEX, they need full clearance where there are any.
 */
static void
check_evaluating(Oid relid, const char *action)
{
	if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_INDEX)
		relid = IndexGetRelation(relid, true);
	if (OidIsValid(relid) && ll_is_ledger_table(relid, NULL) && indexes_evaluate(relid))
		ll_require_full_clearance(relid, action, EVALUATES_WHY);
}

/*
 * The forms naming no table (REINDEX SCHEMA or DATABASE, CLUSTER, VACUUM
 * FULL and ANALYZE of everything): every ledger table in the schema
 * (nspid) or the database that the role owns, or owns the schema or the
 * database of.
 */
static void
check_evaluating_all(Oid nspid, const char *action)
{
	LLAsOwner	own;
	List	   *relids = NIL;
	ListCell   *lc;
	uint64		i;

	/* the hook runs in every database, with the extension or not */
	if (!OidIsValid(get_extension_oid("loopledger", true)))
		return;
	ll_as_owner_begin(&own);
	SPI_connect();
	SPI_execute("SELECT relid::oid FROM ledger.ledger_table", false, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		relids = lappend_oid(relids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																	 SPI_tuptable->tupdesc, 1, &isnull)));
	}
	SPI_finish();
	ll_as_owner_end(&own);
	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);
		Oid			rel_nsp = get_rel_namespace(relid);

		if (!OidIsValid(rel_nsp) || (OidIsValid(nspid) && rel_nsp != nspid))
			continue;
		if (pg_class_ownercheck(relid, GetUserId()) || pg_namespace_ownercheck(rel_nsp, GetUserId()) ||
			pg_database_ownercheck(MyDatabaseId, GetUserId()))
			check_evaluating(relid, action);
	}
	list_free(relids);
}

static void
check_reindex(ReindexStmt *r)
{
	switch (r->kind)
	{
		case REINDEX_OBJECT_INDEX:
		case REINDEX_OBJECT_TABLE:
			check_evaluating(relation_of(r->relation), "reindex");
			break;
		case REINDEX_OBJECT_SCHEMA:
			{
				Oid			nspid = get_namespace_oid(r->name, true);

				if (OidIsValid(nspid))
					check_evaluating_all(nspid, "reindex");
				break;
			}
		case REINDEX_OBJECT_DATABASE:
			check_evaluating_all(InvalidOid, "reindex");
			break;
		default:
			break;				/* system catalogs only */
	}
}

static void
check_vacuum(VacuumStmt *v)
{
	bool		full = false;
	bool		analyze = !v->is_vacuumcmd;
	ListCell   *lc;

	foreach(lc, v->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "full") == 0)
			full = defGetBoolean(opt);
		else if (strcmp(opt->defname, "analyze") == 0)
			analyze = defGetBoolean(opt);
	}
	if (!full && !analyze)
		return;
	if (v->rels == NIL)
		check_evaluating_all(InvalidOid, full ? "vacuum full" : "analyze");
	foreach(lc, v->rels)
	{
		VacuumRelation *vr = lfirst_node(VacuumRelation, lc);

		check_evaluating(OidIsValid(vr->oid) ? vr->oid : relation_of(vr->relation),
						 full ? "vacuum full" : "analyze");
	}
}

/* Whether a trigger of table relid calls function funcid. */
static bool
has_trigger_calling(Oid relid, Oid funcid)
{
	Relation	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&skey, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true, NULL, 1, &skey);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
		found = ((Form_pg_trigger) GETSTRUCT(tup))->tgfoid == funcid;
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
	return found;
}

/* Whether ledger.enable_table() recorded relid (restores bring the row first). */
static bool
table_recorded(Oid relid)
{
	LLAsOwner	own;
	bool		found;

	ll_as_owner_begin(&own);
	SPI_connect();
	SPI_execute_with_args("SELECT 1 FROM ledger.ledger_table WHERE relid = $1", 1,
						  (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(relid)}, NULL, true, 1);
	found = SPI_processed == 1;
	SPI_finish();
	ll_as_owner_end(&own);
	return found;
}

static void
check_create_trigger(CreateTrigStmt *stmt)
{
	Oid			relid = relation_of(stmt->relation);
	char	   *channel;
	Oid			funcid;

	if (!OidIsValid(relid))
		return;
	if (!ll_is_ledger_table(relid, &channel))
	{
		/*
		 * The ledger's trigger functions make a table count as a ledger
		 * table for the guards: only on tables enable_table recorded.
		 */
		funcid = LookupFuncName(stmt->funcname, 0, NULL, true);
		if (OidIsValid(funcid) && is_ledger_trigger_func(funcid, false) && !table_recorded(relid))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot add a ledger trigger to table \"%s\"", get_rel_name(relid)),
					 errdetail("Only tables made ledger tables by ledger.enable_table() have the ledger's triggers."),
					 errhint("Use ledger.enable_table().")));
		return;
	}
	/*
	 * OR REPLACE rewrites a trigger in place, past the hook that refuses
	 * dropping one: a guard replaced by one firing on other events, or the
	 * capture trigger by anything else, and the table is open.
	 */
	if (stmt->replace)
		refuse(relid, channel, "replace a trigger of",
			   "its triggers keep its rows append-only and hash them.");
	/*
	 * pg_restore re-creates the ledger's own triggers, one of each: let
	 * those through, but not a second one
	 */
	funcid = LookupFuncName(stmt->funcname, 0, NULL, true);
	if (OidIsValid(funcid) && is_ledger_trigger_func(funcid, false) &&
		!has_trigger_calling(relid, funcid))
		return;
	refuse(relid, channel, "add a trigger to",
		   "a trigger could change rows before they are hashed.");
}

static void
check_relation(RangeVar *rv, const char *action, const char *detail)
{
	Oid			relid = relation_of(rv);
	char	   *channel;

	if (OidIsValid(relid) && ll_is_ledger_table(relid, &channel))
		refuse(relid, channel, action, detail);
}

/*
 * Inspect utility statements before they run.
 */
static void
guard_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params,
			  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			recheck = InvalidOid;
	char	   *recheck_channel = NULL;
	Oid			recheck_domain = InvalidOid;
	Oid			indexed = InvalidOid;	/* a ledger table that gets an index */

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			recheck = check_alter_table((AlterTableStmt *) parsetree, &recheck_channel);
			{
				/* a UNIQUE or EXCLUDE constraint builds an index too */
				Oid			relid = relation_of(((AlterTableStmt *) parsetree)->relation);
				char	   *channel;

				if (OidIsValid(relid) && ll_is_ledger_table(relid, &channel))
					indexed = relid;
			}
			break;
		case T_CreateTrigStmt:
			check_create_trigger((CreateTrigStmt *) parsetree);
			break;
		case T_CopyStmt:
			check_copy((CopyStmt *) parsetree);
			break;
		case T_ExplainStmt:
			ll_check_explain(((ExplainStmt *) parsetree)->query);
			break;
		case T_IndexStmt:
			check_full_read(((IndexStmt *) parsetree)->relation, "create an index on",
							"building it evaluates expressions over every row, whatever its tier.");
			{
				Oid			relid = relation_of(((IndexStmt *) parsetree)->relation);
				char	   *channel;

				if (OidIsValid(relid) && ll_is_ledger_table(relid, &channel))
				{
					ll_check_index_stmt((IndexStmt *) parsetree, queryString, channel);
					indexed = relid;
				}
			}
			break;
		case T_ReindexStmt:
			check_reindex((ReindexStmt *) parsetree);
			break;
		case T_ClusterStmt:
			if (((ClusterStmt *) parsetree)->relation != NULL)
				check_evaluating(relation_of(((ClusterStmt *) parsetree)->relation), "cluster");
			else
				check_evaluating_all(InvalidOid, "cluster");
			break;
		case T_VacuumStmt:
			check_vacuum((VacuumStmt *) parsetree);
			break;
		case T_CreateStatsStmt:
			{
				ListCell   *lc;

				foreach(lc, ((CreateStatsStmt *) parsetree)->relations)
					if (IsA(lfirst(lc), RangeVar))
						check_full_read(lfirst(lc), "create statistics on",
										"computing them reads every row, whatever its tier.");
				break;
			}
		case T_CreatePolicyStmt:
			check_policy(((CreatePolicyStmt *) parsetree)->table,
						 ((CreatePolicyStmt *) parsetree)->policy_name, true);
			break;
		case T_AlterPolicyStmt:
			check_policy(((AlterPolicyStmt *) parsetree)->table,
						 ((AlterPolicyStmt *) parsetree)->policy_name, false);
			break;
		case T_RuleStmt:
			check_relation(((RuleStmt *) parsetree)->relation, "add a rule to",
						   "a rule could redirect or rewrite inserted rows.");
			break;
		case T_TruncateStmt:
			{
				ListCell   *lc;

				foreach(lc, ((TruncateStmt *) parsetree)->relations)
					check_relation(lfirst(lc), "truncate",
								   "its rows are append-only.");
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *rs = (RenameStmt *) parsetree;

				if (rs->renameType == OBJECT_POLICY)
					check_policy(rs->relation, rs->subname, false);
				else if (rs->renameType == OBJECT_SCHEMA)
					check_schema_rename(rs->subname);
				/* ALTER INDEX/VIEW/SEQUENCE ... RENAME also reach a table */
				else if (rs->relation && rs->renameType != OBJECT_TABCONSTRAINT &&
					rs->renameType != OBJECT_POLICY && rs->renameType != OBJECT_RULE &&
					rs->renameType != OBJECT_ATTRIBUTE)
					check_relation(rs->relation, "rename",
								   "its name and columns are part of every row's hash.");
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *ds = (DropStmt *) parsetree;
				ListCell   *lc;

				/* name the table itself, before its triggers are reached */
				if (ds->removeType == OBJECT_TABLE)
					foreach(lc, ds->objects)
						check_relation(makeRangeVarFromNameList(lfirst(lc)), "drop",
									   "ledger tables are permanent.");
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *as = (AlterObjectSchemaStmt *) parsetree;

				if (as->relation)
					check_relation(as->relation, "move",
								   "its name is part of every row's hash.");
				break;
			}
		case T_AlterDomainStmt:
			{
				AlterDomainStmt *ds = (AlterDomainStmt *) parsetree;
				bool		scans = ds->subtype == 'V' || ds->subtype == 'O' ||
					(ds->subtype == 'C' && ds->def && IsA(ds->def, Constraint) &&
					 !((Constraint *) ds->def)->skip_validation);

				if (scans)
				{
					Oid			typid = typenameTypeId(NULL, makeTypeNameFromNameList(ds->typeName));

					for_each_ledger_table(require_clearance_if_stores, &typid);
				}
				/* judged once PostgreSQL has added it, as for tables */
				if (ds->subtype == 'C')
					recheck_domain = typenameTypeId(NULL, makeTypeNameFromNameList(ds->typeName));
				break;
			}
		case T_AlterEnumStmt:
			{
				AlterEnumStmt *es = (AlterEnumStmt *) parsetree;

				/* adding a value changes no stored row; renaming one does */
				if (es->oldVal != NULL)
					check_type_change(typenameTypeId(NULL, makeTypeNameFromNameList(es->typeName)));
				break;
			}
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			{
				ListCell   *lc;

				/* a foreign table's statement begins with a CreateStmt */
				foreach(lc, ((CreateStmt *) parsetree)->inhRelations)
					check_relation(lfirst(lc), "inherit from",
								   "rows of a child table would show as ledger rows without being in the ledger.");
				break;
			}
		default:
			break;
	}
	if (prev_utility)
		prev_utility(pstmt, queryString, readOnlyTree, context, params,
					 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
	if (OidIsValid(recheck))
	{
		CommandCounterIncrement();
		ll_recheck_constraints(recheck, recheck_channel);
	}
	if (OidIsValid(recheck_domain))
	{
		CommandCounterIncrement();
		ll_recheck_domain(recheck_domain);
	}
	if (OidIsValid(indexed))
	{
		CommandCounterIncrement();
		ll_hide_index_stats(indexed);
	}
}

static void
refuse_explicit_entry(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_GENERATED_ALWAYS),
			 errmsg("cannot insert an explicit value into column \"%s\" of ledger table \"%s\"",
					LL_ENTRY_COLUMN, get_rel_name(relid)),
			 errdetail("Entry numbers are assigned by the ledger, once each."),
			 errhint("Leave the column out of the INSERT or COPY column list.")));
}

/* Error if an INSERT target list sets ledger_entry to anything but DEFAULT. */
static void
check_insert_targets(Oid relid, List *targetList)
{
	AttrNumber	entry_att = get_attnum(relid, LL_ENTRY_COLUMN);
	ListCell   *lc;

	foreach(lc, targetList)
	{
		TargetEntry *te = lfirst(lc);

		if (te->resno == entry_att && !IsA(te->expr, SetToDefault))
			refuse_explicit_entry(relid);
	}
}

/*
 * Entry numbers come only from the ledger's sequence, so two rows of a
 * channel can never share one.  Checking the analysed INSERT (and MERGE)
 * costs nothing per row and leaves COPY's multi-row inserts intact.
 */
static void
check_query_inserts(Query *query)
{
	RangeTblEntry *rte;
	ListCell   *lc;

	/* an INSERT in a WITH clause is a query of its own */
	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = lfirst(lc);

		if (cte->ctequery && IsA(cte->ctequery, Query))
			check_query_inserts((Query *) cte->ctequery);
	}
	if ((query->commandType != CMD_INSERT && query->commandType != CMD_MERGE) ||
		query->resultRelation <= 0)
		return;
	rte = rt_fetch(query->resultRelation, query->rtable);
	if (rte->relkind != RELKIND_RELATION || !ll_is_ledger_table(rte->relid, NULL))
		return;
	if (query->commandType == CMD_INSERT)
		check_insert_targets(rte->relid, query->targetList);
	else
	{
		ListCell   *lc;

		foreach(lc, query->mergeActionList)
		{
			MergeAction *action = lfirst(lc);

			if (action->commandType == CMD_INSERT)
				check_insert_targets(rte->relid, action->targetList);
		}
	}
}

static void
guard_post_parse(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse)
		prev_post_parse(pstate, query, jstate);
	/*
	 * In replica mode the capture trigger does not fire either: rows written
	 * so are outside the ledger by definition, and ledger.verify reports them.
	 */
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return;
	check_query_inserts(query);
}

/* COPY FROM into a ledger table must name its columns, without ledger_entry. */
static void
check_copy(CopyStmt *stmt)
{
	Oid			relid;
	ListCell   *lc;

	if (!stmt->is_from || stmt->relation == NULL)
		return;
	relid = relation_of(stmt->relation);
	if (!OidIsValid(relid) || !ll_is_ledger_table(relid, NULL))
		return;
	if (stmt->attlist == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("COPY into ledger table \"%s\" needs a column list", get_rel_name(relid)),
				 errdetail("Without one, COPY would read column \"%s\" from the data, and entry numbers are assigned by the ledger.",
						   LL_ENTRY_COLUMN),
				 errhint("List the table's columns except %s.", LL_ENTRY_COLUMN)));
	foreach(lc, stmt->attlist)
		if (strcmp(strVal(lfirst(lc)), LL_ENTRY_COLUMN) == 0)
			refuse_explicit_entry(relid);
	ll_note_ledger_write(relid);
}

/* The ledger.capture()/refuse_change() trigger with this OID, if any. */
static bool
ledger_trigger(Oid trigoid, Oid *relid)
{
	return find_ledger_trigger(Anum_pg_trigger_oid, TriggerOidIndexId, trigoid,
							   false, relid, NULL);
}

/*
 * Refuse dropping a ledger table or one of its guard triggers, however the
 * drop was reached (DROP TABLE, DROP SCHEMA CASCADE, DROP EXTENSION
 * CASCADE, DROP OWNED).
 */
/* The unique index on ledger_entry keeps a duplicate entry number out. */
static void
guard_entry_index(Oid indexid)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexid));
	Form_pg_index ix;
	Oid			relid;
	char	   *channel;
	bool		entry_index;

	if (!HeapTupleIsValid(tup))
		return;
	ix = (Form_pg_index) GETSTRUCT(tup);
	relid = ix->indrelid;
	/* REINDEX CONCURRENTLY drops the old copy once it is dead */
	entry_index = ix->indisvalid && ix->indislive && ix->indisunique && ix->indnatts == 1 &&
		ix->indkey.values[0] == get_attnum(relid, LL_ENTRY_COLUMN);
	ReleaseSysCache(tup);
	if (entry_index && ll_is_ledger_table(relid, &channel))
		refuse(relid, channel, "drop the entry number index of",
			   "its unique index keeps each entry number to one row.");
}

static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (access != OAT_DROP)
		return;
	if (classId == RelationRelationId)
	{
		char	   *channel;

		if (subId == 0 && get_rel_relkind(objectId) == RELKIND_RELATION &&
			ll_is_ledger_table(objectId, &channel))
			refuse(objectId, channel, "drop", "ledger tables are permanent.");
		if (subId != 0 && ll_is_ledger_table(objectId, &channel))
			refuse(objectId, channel, "drop a column of",
				   "its columns are part of every row's hash.");
		if (subId == 0 && get_rel_relkind(objectId) == RELKIND_INDEX)
			guard_entry_index(objectId);
	}
	else if (classId == TriggerRelationId)
	{
		Oid			relid;
		char	   *channel;

		if (ledger_trigger(objectId, &relid) && ll_is_ledger_table(relid, &channel))
			refuse(relid, channel, "drop the triggers of",
				   "ledger tables and their triggers are permanent.");
	}
	else if (classId == PolicyRelationId)
	{
		Oid			relid = ll_policy_relation(objectId);
		char	   *channel;

		if (OidIsValid(relid) && ll_is_ledger_table(relid, &channel))
			refuse(relid, channel, "drop the row-level security policy of",
				   "its policy decides which tiers each role can read.");
	}
}

void
ll_install_guards(void)
{
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = guard_utility;
	prev_object_access = object_access_hook;
	object_access_hook = guard_object_access;
	prev_post_parse = post_parse_analyze_hook;
	post_parse_analyze_hook = guard_post_parse;
}
