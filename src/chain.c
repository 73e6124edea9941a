/*
 * chain.c
 *		Channels and ledger tables: create, enable, and read the chain.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_language.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_utilcmd.h"
#include "storage/lmgr.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "loopledger.h"
#include "chain.h"
#include "consensus.h"

PG_FUNCTION_INFO_V1(ll_create_channel);
PG_FUNCTION_INFO_V1(ll_enable_table);

/*
 * Channel names end up in file names, log lines and JSON: keep them plain.
 */
static void
check_channel_name(const char *name)
{
	const char *p;
	size_t		len = strlen(name);

	if (len == 0 || len > 63)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid channel name \"%s\"", name),
				 errdetail("A channel name has 1 to 63 characters.")));
	for (p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid channel name \"%s\"", name),
					 errdetail("A channel name may contain only ASCII letters, digits, \"_\", \"-\" and \".\".")));
}

static void
check_tiers(ArrayType *tiers)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i,
				j;

	if (ARR_NDIM(tiers) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tiers must be a one-dimensional array")));
	deconstruct_array(tiers, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n < 1 || n > LL_MAX_TIERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a channel needs between 1 and %d tiers", LL_MAX_TIERS),
				 errhint("List the tiers lowest first, for example ARRAY['public','partner','customs'].")));
	for (i = 0; i < n; i++)
	{
		char	   *t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("tier names must not be null")));
		t = TextDatumGetCString(elems[i]);
		if (t[0] == '\0' || strlen(t) > 63)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid tier name \"%s\"", t),
					 errdetail("A tier name has 1 to 63 characters.")));
		for (j = 0; j < i; j++)
			if (strcmp(t, TextDatumGetCString(elems[j])) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("tier \"%s\" is listed twice", t)));
	}
}

/*
 * Look up a channel by name; errors when it does not exist.
 * Must be called inside SPI.
 */
void
ll_channel_lookup(const char *name, LLChannel *ch)
{
	Datum		arg = CStringGetTextDatum(name);
	Oid			argtype = TEXTOID;
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	td;
	bytea	   *cfg;

	if (SPI_execute_with_args("SELECT channel_id, config_hash FROM ledger.channel WHERE name = $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read ledger.channel");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist", name),
				 errhint("Create it with ledger.create_channel(), or see ledger.channels.")));
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;
	ch->id = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
	ch->name = pstrdup(name);
	cfg = DatumGetByteaPP(SPI_getbinval(tup, td, 2, &isnull));
	if (isnull || VARSIZE_ANY_EXHDR(cfg) != LL_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("channel \"%s\" has a configuration hash of the wrong size", name)));
	memcpy(ch->config_hash, VARDATA_ANY(cfg), LL_HASH_LEN);
}

/*
 * ledger.create_channel(name, tiers): a new chain with its genesis block.
 */
Datum
ll_create_channel(PG_FUNCTION_ARGS)
{
	char	   *name;
	ArrayType  *tiers;
	Datum		hash;
	Datum		args[3];
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, BYTEAOID};
	int32		id;
	bool		isnull;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tiers must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	tiers = PG_GETARG_ARRAYTYPE_P(1);
	check_channel_name(name);
	check_tiers(tiers);
	hash = DirectFunctionCall2(ll_config_hash_sql, PG_GETARG_DATUM(0), PointerGetDatum(tiers));

	SPI_connect();
	args[0] = PG_GETARG_DATUM(0);
	SPI_execute_with_args("SELECT 1 FROM ledger.channel WHERE name = $1", 1, types, args,
						  NULL, false, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("channel \"%s\" already exists", name)));
	args[1] = PointerGetDatum(tiers);
	args[2] = hash;
	if (SPI_execute_with_args("INSERT INTO ledger.channel (channel_id, name, tiers, config_hash) "
							  "VALUES (pg_catalog.nextval('ledger.channel_seq'::pg_catalog.regclass), $1, $2, $3) RETURNING channel_id",
							  3, types, args, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert channel");
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ll_insert_genesis(id, name, hash);
	SPI_finish();
	PG_RETURN_INT32(id);
}

/*
 * Genesis: height 0, no rows, previous hash all zero.  Its hash commits to
 * the channel's configuration, so two channels never share a chain.
 */
void
ll_insert_genesis(int32 id, const char *name, Datum config_hash)
{
	ll_insert_genesis_at(id, name, config_hash, ll_now_unix_micros());
}

/* Same, with a given time (multi-peer channels use 0 so all members agree). */
void
ll_insert_genesis_at(int32 id, const char *name, Datum config_hash, int64 time_us)
{
	ll_block_header hdr;
	uint8		hash[LL_HASH_LEN];
	ll_buf		scratch;
	bytea	   *cfg = DatumGetByteaPP(config_hash);
	Datum		args[6];
	Oid			types[6] = {INT4OID, BYTEAOID, BYTEAOID, INT8OID, BYTEAOID, BYTEAOID};

	memset(&hdr, 0, sizeof(hdr));
	hdr.channel = name;
	hdr.channel_len = strlen(name);
	memcpy(hdr.config_hash, VARDATA_ANY(cfg), LL_HASH_LEN);
	if (!ll_merkle_root(NULL, 0, NULL, hdr.merkle_root))
		elog(ERROR, "could not compute Merkle root");
	hdr.time_us = time_us;
	ll_buf_init(&scratch, ll_palloc_realloc);
	if (!ll_block_hash(&hdr, &scratch, hash))
		elog(ERROR, "could not compute block hash");
	args[0] = Int32GetDatum(id);
	args[1] = PointerGetDatum(ll_bytea(hdr.prev_hash, LL_HASH_LEN));
	args[2] = PointerGetDatum(ll_bytea(hdr.merkle_root, LL_HASH_LEN));
	args[3] = Int64GetDatum(hdr.time_us);
	args[4] = PointerGetDatum(cfg);
	args[5] = PointerGetDatum(ll_bytea(hash, LL_HASH_LEN));
	if (SPI_execute_with_args("INSERT INTO ledger.block (channel_id, height, prev_hash, merkle_root, "
							  "time_us, tx_count, row_count, config_hash, block_hash, entries) "
							  "VALUES ($1, 0, $2, $3, $4, 0, 0, $5, $6, '')",
							  6, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert genesis block");
}

int64
ll_now_unix_micros(void)
{
	return GetCurrentTimestamp() +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

bytea *
ll_bytea(const uint8 *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

/*
 * Checks before a table becomes a ledger table; errors change nothing.
 */
static void
check_enable(Relation rel, const char *channel, const char *tier_column)
{
	TupleDesc	td = RelationGetDescr(rel);
	char	   *other;
	int			i;
	bool		tier_found = false;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errdetail("Only plain (not partitioned or foreign) tables can be ledger tables.")));
	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("table \"%s\" is not a permanent table", RelationGetRelationName(rel)),
				 errdetail("Temporary and unlogged tables cannot be ledger tables.")));
	if (!pg_class_ownercheck(RelationGetRelid(rel), GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_TABLE, RelationGetRelationName(rel));
	if (ll_is_ledger_table(RelationGetRelid(rel), &other))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("table \"%s\" is already a ledger table of channel \"%s\"",
						RelationGetRelationName(rel), other),
				 errdetail("A table belongs to exactly one channel.")));
	/* hashed as schema.table: "a.b".c and a."b.c" would be one name */
	if (strchr(RelationGetRelationName(rel), '.') != NULL ||
		strchr(get_namespace_name(RelationGetNamespace(rel)), '.') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("table \"%s\" or its schema has a dot in its name", RelationGetRelationName(rel)),
				 errdetail("Rows are hashed with the table's name as schema.table, which such a name would make ambiguous."),
				 errhint("Rename the table or the schema.")));
	if (rel->rd_rel->relhasrules || rel->rd_rel->relhassubclass || rel->rd_rel->relispartition ||
		has_superclass(RelationGetRelid(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" has rules or takes part in inheritance or partitioning", RelationGetRelationName(rel)),
				 errdetail("Rows reaching such a table could bypass the ledger.")));
	/* foreign keys' own triggers are internal, and checked apart */
	SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal", 1,
						  (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(RelationGetRelid(rel))},
						  NULL, true, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" has triggers", RelationGetRelationName(rel)),
				 errdetail("A trigger could change rows before they are hashed (its function can be replaced at any time), and on a channel with peers act differently on each peer."),
				 errhint("Drop the table's triggers, then enable it.")));
	if (ll_relation_has_policy(RelationGetRelid(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" has row-level security policies", RelationGetRelationName(rel)),
				 errdetail("A ledger table gets one policy, which shows each role the tiers it is cleared for; another policy would change that."),
				 errhint("Drop the table's policies, then enable it.")));
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), LL_ENTRY_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("table \"%s\" already has a column named \"%s\"",
							RelationGetRelationName(rel), LL_ENTRY_COLUMN),
					 errdetail("loopledger adds that column to number the rows.")));
		ll_check_encodable(att->atttypid, NameStr(att->attname));
		if (tier_column && strcmp(NameStr(att->attname), tier_column) == 0)
		{
			Oid			base = getBaseType(att->atttypid);

			tier_found = true;
			if (base != TEXTOID && base != VARCHAROID && base != NAMEOID &&
				get_typtype(base) != TYPTYPE_ENUM)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("tier column \"%s\" must be of type text, varchar or an enum",
								tier_column)));
		}
	}
	if (tier_column && !tier_found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist",
						tier_column, RelationGetRelationName(rel))));
}

/* Domain checks run when a member reads a peer's value in (domain_in). */
static void
check_domain_checks(Form_pg_attribute att, const char *name, const char *channel)
{
	if (get_typtype(att->atttypid) != TYPTYPE_DOMAIN)
		return;
	SPI_execute_with_args("WITH RECURSIVE d(t) AS (SELECT $1::oid UNION ALL "
						  "SELECT typbasetype FROM pg_type, d WHERE oid = d.t AND typtype = 'd') "
						  "SELECT c.conname, pg_catalog.format_type(c.contypid, NULL), pg_catalog.pg_get_constraintdef(c.oid) "
						  "FROM pg_constraint c JOIN d ON c.contypid = d.t "
						  "WHERE c.contype = 'c' AND NOT ledger.constraint_is_immutable(c.oid) LIMIT 1",
						  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(att->atttypid)}, NULL, true, 1);
	if (SPI_processed == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("column \"%s\" of table \"%s\" has type %s, whose constraint \"%s\" could decide differently on different peers",
					NameStr(att->attname), name, format_type_be(att->atttypid),
					SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
			 errdetail("Channel \"%s\" has peers, which check domain %s again when they insert the row: %s",
					   channel, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
					   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3)),
			 errhint("Only immutable domain check constraints are allowed on multi-peer channels, calling functions that are built in or set their own search_path.")));
}

/*
 * Other members insert each row from its canonical text, through the input
 * function of the column's type (apply.c): a text that does not read back
 * would stop their workers (22P02 is no integrity error: the channel
 * halts) or store another value, and a domain check that is not immutable
 * could refuse the row on some members only.
 */
static void
check_readable_columns(Relation rel, const char *channel)
{
	TupleDesc	td = RelationGetDescr(rel);
	const char *name = RelationGetRelationName(rel);
	int			i;

	if (GetDatabaseEncoding() != PG_UTF8)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" cannot be a ledger table of multi-peer channel \"%s\" in a database with encoding %s",
						name, channel, GetDatabaseEncodingName()),
				 errdetail("Rows travel between members in UTF-8 and are inserted as received, without conversion to this database's encoding."),
				 errhint("Keep the ledger tables of a multi-peer channel in a database created with ENCODING 'UTF8'.")));
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);
		char	   *why;

		if (att->attisdropped)
			continue;
		why = ll_canonical_unreadable(att->atttypid);
		if (why != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of table \"%s\" has type %s, which the members of channel \"%s\" cannot rebuild from its canonical text",
							NameStr(att->attname), name, format_type_be(att->atttypid), channel),
					 errdetail("Members insert each other's rows from their canonical text. %s", why),
					 errhint("Use a type whose canonical text reads back (jsonb for lists and records, numeric for money), or keep the table on a channel without peers.")));
		check_domain_checks(att, name, channel);
	}
}

/*
 * On a channel with peers every member applies every row, so whatever
 * decides whether a row is accepted must give the same answer everywhere.
 * Unique keys do (they only see rows applied in the agreed order); foreign
 * keys, volatile checks and triggers could look at local state, and rows
 * already in the table never went through the agreed order.
 */
static bool
has_peers(int32 channel_id)
{
	return ll_channel_has_peers(channel_id);
}

/* Foreign keys and CHECK constraints that are not immutable. */
static void
check_constraints(Relation rel, const char *channel)
{
	const char *name = RelationGetRelationName(rel);
	uint64		i;

	SPI_execute_with_args("SELECT conname, contype, pg_get_constraintdef(oid), "
						  "contype = 'c' AND NOT ledger.constraint_is_immutable(oid) "
						  "FROM pg_constraint WHERE conrelid = $1 AND (contype IN ('f', 'c', 't') "
						  "OR (contype IN ('u', 'p', 'x') AND condeferrable))", 1,
						  (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(RelationGetRelid(rel))},
						  NULL, true, 0);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *con = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char	   *type = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		char	   *def = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		char	   *mutable = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4);

		if (type[0] == 'c' && strcmp(mutable, "t") != 0)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("constraint \"%s\" of table \"%s\" could decide differently on different peers",
						con, name),
				 errdetail("Channel \"%s\" has peers; %s", channel, def),
				 errhint("%s", type[0] == 'f'
						 ? "Foreign keys look at local tables; drop the constraint or keep the table on a channel without peers."
						 : strchr("upx", type[0]) != NULL
						 ? "Declare it NOT DEFERRABLE: the peers check each row's keys as they insert it, where PostgreSQL would leave a deferrable key unchecked, and rows are only appended, so checking at once refuses what a deferred check would."
						 : "Only immutable check constraints are allowed on multi-peer channels, calling functions that are built in or set their own search_path.")));
	}
}

static bool path_dependent_walker(Node *node, void *context);

static void
refuse_path_dependent(const char *what, const char *name, const char *channel, Oid funcid)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s of table \"%s\" could compute differently on different peers", what, name),
			 errdetail("Channel \"%s\" has peers, which compute it again as they insert each row, "
					   "with search_path set to pg_catalog, pg_temp; function %s does not set its own search_path.",
					   channel, format_procedure(funcid)),
			 errhint("Give the function a fixed search_path (ALTER FUNCTION ... SET search_path = ...), "
					 "without \"$user\".")));
}

/*
 * An index's expressions or predicate as stored: the relcache's copies
 * have SQL functions inlined, which hides the very calls judged here.
 */
static Node *
stored_index_node(Oid indexoid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	Datum		d;
	bool		isnull;
	Node	   *result = NULL;

	if (!HeapTupleIsValid(tup))
		return NULL;
	d = SysCacheGetAttr(INDEXRELID, tup, attnum, &isnull);
	if (!isnull)
		result = stringToNode(TextDatumGetCString(d));
	ReleaseSysCache(tup);
	return result;
}

/*
 * Index expressions and predicates decide what a unique index refuses,
 * and the peers evaluate them again: they are held to the rule for CHECKs.
 * PostgreSQL has already made them immutable.
 */
static void
check_index_exprs(Relation rel, const char *channel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Oid			funcid = InvalidOid;

		if (path_dependent_walker(stored_index_node(lfirst_oid(lc), Anum_pg_index_indexprs), &funcid) ||
			path_dependent_walker(stored_index_node(lfirst_oid(lc), Anum_pg_index_indpred), &funcid))
			refuse_path_dependent(psprintf("index \"%s\"", get_rel_name(lfirst_oid(lc))),
								  RelationGetRelationName(rel), channel, funcid);
	}
	list_free(indexes);
}

/* Peers compute stored generated columns again (apply.c). */
static void
check_generated(Relation rel, const char *channel)
{
	TupleDesc	td = RelationGetDescr(rel);
	int			i;

	if (td->constr == NULL || !td->constr->has_generated_stored)
		return;
	for (i = 0; i < td->constr->num_defval; i++)
	{
		AttrDefault *d = &td->constr->defval[i];
		Form_pg_attribute att = TupleDescAttr(td, d->adnum - 1);
		Oid			funcid = InvalidOid;

		if (att->attgenerated == ATTRIBUTE_GENERATED_STORED &&
			path_dependent_walker(stringToNode(d->adbin), &funcid))
			refuse_path_dependent(psprintf("generated column \"%s\"", NameStr(att->attname)),
								  RelationGetRelationName(rel), channel, funcid);
	}
}

/* What a ledger table of a channel with peers must be. */
static void
check_peer_table(Relation rel, const char *channel)
{
	const char *name = RelationGetRelationName(rel);

	check_readable_columns(rel, channel);
	check_constraints(rel, channel);
	check_index_exprs(rel, channel);
	check_generated(rel, channel);
	{
		char	   *q = psprintf("SELECT 1 FROM %s LIMIT 1",
								 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)), name));

		/* not read-only: a snapshot taken after the caller's locks */
		SPI_execute(q, false, 1);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table \"%s\" is not empty", name),
					 errdetail("Channel \"%s\" has peers: its rows must all come through the agreed order.", channel),
					 errhint("Enable the empty table on every peer, then insert.")));
	}
}

static void
check_multi_peer(Relation rel, const char *channel, int32 channel_id)
{
	/* a channel's first add_peer holds it while it judges the tables */
	LockRelationOid(ll_catalog_relid("ledger_table"), ShareRowExclusiveLock);
	if (!has_peers(channel_id))
		return;
	check_peer_table(rel, channel);
	ll_check_peer_tables(channel_id, channel, 1);
}

/*
 * A channel without peers that is about to get its first ones (add_peer
 * before the first block): its tables were enabled without the checks
 * above.  The lock, held to commit, keeps rows and indexes from arriving
 * between the check and the peers.  Called inside SPI, after
 * ll_check_peer_tables locked ledger.ledger_table.
 */
void
ll_check_tables_for_peers(int32 channel_id, const char *channel)
{
	SPITupleTable *tt;
	uint64		n,
				i;

	SPI_execute_with_args("SELECT relid FROM ledger.ledger_table WHERE channel_id = $1 ORDER BY table_no",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)}, NULL, false, 0);
	tt = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Relation	rel = table_open(relid, ShareRowExclusiveLock);

		check_peer_table(rel, channel);
		table_close(rel, NoLock);
	}
}

/*
 * A channel with peers has at most LL_MAX_PEER_TABLES ledger tables: each
 * member declares each one, and the members count that many declarations
 * from each (tabledef.c).  adding: tables about to be enabled.  Enabling
 * tables is serialised (the lock is held to commit), so two sessions cannot
 * both take the last place.
 */
void
ll_check_peer_tables(int32 channel_id, const char *channel, int adding)
{
	LockRelationOid(ll_catalog_relid("ledger_table"), ShareRowExclusiveLock);
	SPI_execute_with_args("SELECT 1 FROM ledger.ledger_table WHERE channel_id = $1 OFFSET $2", 2,
						  (Oid[]) {INT4OID, INT8OID},
						  (Datum[]) {Int32GetDatum(channel_id), Int64GetDatum(LL_MAX_PEER_TABLES - adding)},
						  NULL, true, 1);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("channel \"%s\" %s %d ledger tables", channel,
						adding > 0 ? "already has" : "has more than", LL_MAX_PEER_TABLES),
				 errdetail("Each member declares the definitions of a channel's tables, and the members take at most %d from each.",
						   LL_MAX_PEER_TABLES),
				 errhint(adding > 0 ? "Put the table in another channel." :
						 "A channel with peers takes at most that many; put the others in another channel.")));
}

/*
 * The statement's snapshot predates the constraint it just added: read the
 * catalog under one that sees it (PopActiveSnapshot when done).
 */
static void
push_current_snapshot(void)
{
	if (ActiveSnapshotSet())
	{
		PushCopiedSnapshot(GetActiveSnapshot());
		UpdateActiveSnapshotCommandId();
	}
	else
		PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * After ALTER TABLE ... ADD CONSTRAINT on a ledger table (guard.c): on a
 * channel with peers the table must still pass what enable_table asked,
 * or the new constraint could refuse a row on some members only.
 */
void
ll_recheck_constraints(Oid relid, const char *channel)
{
	LLChannel	ch;
	Relation	rel;

	push_current_snapshot();
	SPI_connect();
	ll_channel_lookup(channel, &ch);
	if (has_peers(ch.id))
	{
		rel = table_open(relid, AccessShareLock);
		check_constraints(rel, channel);
		check_index_exprs(rel, channel);
		table_close(rel, AccessShareLock);
	}
	SPI_finish();
	PopActiveSnapshot();
}

/*
 * After ALTER DOMAIN ... ADD CONSTRAINT (guard.c): a multi-peer ledger
 * table with a column of that domain, or of one over it, must still pass
 * what enable_table asked, since members check the domain again as they
 * insert each other's rows.
 */
void
ll_recheck_domain(Oid typid)
{
	int			n,
				i;
	Oid		   *rels;
	char	  **channels;
	LLAsOwner	as;

	push_current_snapshot();
	SPI_connect();
	/* ledger.peer is not for everybody: any domain's owner gets here */
	ll_as_owner_begin(&as);
	SPI_execute_with_args("WITH RECURSIVE d(t) AS (SELECT $1::oid UNION "
						  "SELECT oid FROM pg_type, d WHERE typbasetype = d.t AND typtype = 'd') "
						  "SELECT DISTINCT lt.relid::oid, c.name FROM ledger.ledger_table lt "
						  "JOIN ledger.channel c USING (channel_id) "
						  "JOIN pg_attribute a ON a.attrelid = lt.relid AND a.attnum > 0 AND NOT a.attisdropped "
						  "WHERE a.atttypid IN (SELECT t FROM d) "
						  "AND EXISTS (SELECT 1 FROM ledger.peer p WHERE p.channel_id = lt.channel_id)",
						  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(typid)}, NULL, true, 0);
	ll_as_owner_end(&as);
	n = (int) SPI_processed;
	rels = palloc(sizeof(Oid) * Max(n, 1));
	channels = palloc(sizeof(char *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		rels[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		channels[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	for (i = 0; i < n; i++)
	{
		Relation	rel = table_open(rels[i], AccessShareLock);

		check_readable_columns(rel, channels[i]);
		table_close(rel, AccessShareLock);
	}
	SPI_finish();
	PopActiveSnapshot();
}

static void
spi_exec(const char *sql)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

/*
 * Chain the rows a table already has: they go to the next block exactly as
 * if they had just been inserted.
 */
static void
capture_existing_rows(Oid relid, LLTableInfo *info)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TableScanDesc scan;
	HeapTuple	tup;

	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());

	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		ll_capture_tuple(info, tup);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
}

/*
 * ledger.enable_table(tbl, channel, tier_column)
 */
Datum
ll_enable_table(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *channel;
	char	   *tier_column = NULL;
	Relation	rel;
	LLChannel	ch;
	char	   *qualname;
	char	   *quoted;
	int32		table_no;
	bool		isnull;
	StringInfoData sql;
	LLTableInfo *info;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and channel must not be null")));
	relid = PG_GETARG_OID(0);
	channel = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
		tier_column = pstrdup(NameStr(*PG_GETARG_NAME(2)));

	SPI_connect();
	ll_channel_lookup(channel, &ch);
	rel = table_open(relid, AccessExclusiveLock);
	check_enable(rel, channel, tier_column);
	check_multi_peer(rel, channel, ch.id);
	qualname = psprintf("%s.%s", get_namespace_name(RelationGetNamespace(rel)),
						RelationGetRelationName(rel));
	quoted = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										RelationGetRelationName(rel));
	table_close(rel, NoLock);

	SPI_execute_with_args("SELECT coalesce(max(table_no), 0) + 1 FROM ledger.ledger_table WHERE channel_id = $1",
						  1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(ch.id)}, NULL, false, 1);
	table_no = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ADD COLUMN %s bigint NOT NULL DEFAULT pg_catalog.nextval('ledger.entry_seq'::pg_catalog.regclass)",
					 quoted, LL_ENTRY_COLUMN);
	spi_exec(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE UNIQUE INDEX ON %s (%s)", quoted, LL_ENTRY_COLUMN);
	spi_exec(sql.data);
	/*
	 * Row-level security, forced so the owner is subject too, before the
	 * capture trigger makes this a ledger table whose guards refuse policy
	 * changes.
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY", quoted);
	spi_exec(sql.data);
	resetStringInfo(&sql);
	ll_append_policy_sql(&sql, quoted, ch.id, tier_column, qualname);
	spi_exec(sql.data);
	/* recorded first: only a recorded table may get the ledger's triggers */
	SPI_execute_with_args("INSERT INTO ledger.ledger_table (relid, channel_id, table_no, table_name, tier_column) "
						  "VALUES ($1, $2, $3, $4, $5)", 5,
						  (Oid[]) {REGCLASSOID, INT4OID, INT4OID, TEXTOID, NAMEOID},
						  (Datum[]) {ObjectIdGetDatum(relid), Int32GetDatum(ch.id),
							  Int32GetDatum(table_no), CStringGetTextDatum(qualname),
						  tier_column ? PG_GETARG_DATUM(2) : (Datum) 0},
						  tier_column ? "     " : "    n", false, 0);
	CommandCounterIncrement();
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER ledger_capture AFTER INSERT ON %s "
					 "REFERENCING NEW TABLE AS ledger_new_rows FOR EACH STATEMENT "
					 "EXECUTE FUNCTION ledger.capture(%s, '%d', '%d', %s, %s)",
					 quoted, quote_literal_cstr(channel), ch.id, table_no,
					 quote_literal_cstr(qualname),
					 quote_literal_cstr(tier_column ? tier_column : ""));
	spi_exec(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
					 "ON %s FOR EACH STATEMENT EXECUTE FUNCTION ledger.refuse_change(%s)",
					 quoted, quote_literal_cstr(channel));
	spi_exec(sql.data);
	CommandCounterIncrement();

	rel = table_open(relid, AccessShareLock);
	info = ll_table_info_for(rel, ch.id, table_no, channel, qualname, tier_column);
	table_close(rel, AccessShareLock);
	capture_existing_rows(relid, info);
	ll_hide_index_stats(relid);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * A function whose body names objects finds them through search_path,
 * which differs between the origin's session and the peers' workers
 * (pg_catalog, pg_temp): unless built in (internal or C), it must set
 * its own.
 */
static bool
path_dependent(Oid funcid, void *context)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Form_pg_proc proc;
	bool		pinned = false;
	Datum		config;
	bool		isnull;

	if (!HeapTupleIsValid(tup))
		return true;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	/* built in: some (lpad, log) are SQL-language, bound when created */
	if (proc->prolang == INTERNALlanguageId || proc->prolang == ClanguageId ||
		proc->pronamespace == PG_CATALOG_NAMESPACE)
	{
		ReleaseSysCache(tup);
		return false;
	}
	config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
	{
		ArrayType  *a = DatumGetArrayTypeP(config);
		Datum	   *items;
		int			n,
					i;

		deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &items, NULL, &n);
		for (i = 0; i < n && !pinned; i++)
		{
			char	   *item = TextDatumGetCString(items[i]);

			/* "$user" is the inserting role on the origin, the owner on peers */
			pinned = strncmp(item, "search_path=", 12) == 0 && strstr(item, "$user") == NULL;
		}
	}
	ReleaseSysCache(tup);
	if (!pinned && context != NULL)
		*(Oid *) context = funcid;
	return !pinned;
}

static bool
path_dependent_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, path_dependent, context))
		return true;
	return expression_tree_walker(node, path_dependent_walker, context);
}

/*
 * CREATE INDEX on a ledger table of a channel with peers, before it runs
 * (CONCURRENTLY commits as it goes, so an error after it would keep the
 * index): its expressions and predicate, transformed as DefineIndex will
 * see them, are held to check_index_exprs's rule.
 */
void
ll_check_index_stmt(struct IndexStmt *stmt, const char *queryString, const char *channel)
{
	LLChannel	ch;
	Oid			relid;
	Oid			funcid = InvalidOid;
	ListCell   *lc;
	bool		peers;

	/*
	 * The lock CREATE INDEX takes next, checked as it checks it; taken
	 * first, so that a channel's first add_peer (which locks its tables
	 * against it) is either seen or waits.
	 */
	relid = RangeVarGetRelidExtended(stmt->relation,
									 stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock,
									 0, RangeVarCallbackOwnsRelation, NULL);
	SPI_connect();
	ll_channel_lookup(channel, &ch);
	peers = has_peers(ch.id);
	SPI_finish();
	if (!peers)
		return;
	stmt = transformIndexStmt(relid, copyObject(stmt), queryString);
	foreach(lc, stmt->indexParams)
		if (path_dependent_walker(((IndexElem *) lfirst(lc))->expr, &funcid))
			break;
	if (OidIsValid(funcid) || path_dependent_walker(stmt->whereClause, &funcid))
		refuse_path_dependent(stmt->idxname ? psprintf("index \"%s\"", stmt->idxname) : "an index",
							  get_rel_name(relid), channel, funcid);
}

PG_FUNCTION_INFO_V1(ll_constraint_is_immutable);

/*
 * Whether a constraint's stored expression decides alike on every peer:
 * it calls only immutable functions, each built in or setting its own
 * search_path.  It takes the constraint, not the expression's text: the
 * node reader trusts its input, and text from a caller could crash the
 * server.
 */
Datum
ll_constraint_is_immutable(PG_FUNCTION_ARGS)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, PG_GETARG_DATUM(0));
	Datum		bin;
	bool		isnull;
	bool		result = true;

	if (!HeapTupleIsValid(tup))
		PG_RETURN_NULL();
	bin = SysCacheGetAttr(CONSTROID, tup, Anum_pg_constraint_conbin, &isnull);
	if (!isnull)
	{
		Node	   *expr = stringToNode(TextDatumGetCString(bin));

		result = !contain_mutable_functions(expr) && !path_dependent_walker(expr, NULL);
	}
	ReleaseSysCache(tup);
	PG_RETURN_BOOL(result);
}

void
ll_as_owner_begin(LLAsOwner *s)
{
	GetUserIdAndSecContext(&s->userid, &s->sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, s->sec | SECURITY_LOCAL_USERID_CHANGE);
	s->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

void
ll_as_owner_end(const LLAsOwner *s)
{
	AtEOXact_GUC(true, s->guc_level);
	SetUserIdAndSecContext(s->userid, s->sec);
}

/*
 * The workers run as the bootstrap superuser.  A search_path set for the
 * database (ALTER DATABASE ... SET) could put a schema its owner writes
 * ahead of pg_catalog's polymorphic functions: public.unnest(bytea[])
 * matches a bytea[] argument better than pg_catalog.unnest(anyarray), and
 * would run as superuser.  Functions that constraints of ledger tables
 * call therefore see this path in the consensus worker, as they see an
 * empty one in PostgreSQL's logical replication workers: they name their
 * schemas or set their own search_path.
 */
void
ll_pin_search_path(void)
{
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
}

void
ll_spi_pending_entries(int32 channel_id)
{
	LLAsOwner	as;

	ll_as_owner_begin(&as);
	SPI_execute_with_args("SELECT entries FROM ledger.pending WHERE channel_id = $1", 1,
						  (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(channel_id)}, NULL, true, 0);
	ll_as_owner_end(&as);
}

char *
ll_vformat(const char *fmt, va_list args)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		copy;
		int			needed;

		va_copy(copy, args);
		needed = appendStringInfoVA(&buf, fmt, copy);
		va_end(copy);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	return buf.data;
}
