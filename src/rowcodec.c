/*
 * rowcodec.c
 *		Canonical text of column values and the per-table encoder cache.
 *
 * A ledger row is hashed over the canonical text of each column, never over
 * the session's output: DateStyle, TimeZone, IntervalStyle,
 * extra_float_digits, bytea_output, lc_monetary, client_encoding and
 * search_path must not change a hash.  So the types whose output depends on
 * a setting are formatted here with fixed rules (ISO dates in UTC, shortest
 * exact floats, hex bytea, money as its integer count), containers are
 * rendered recursively as JSON-style text, and every other type must be on
 * a list of types whose output functions are known not to depend on any
 * setting.  Text is hashed in UTF-8 whatever the database encoding.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/cash.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rangetypes.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "loopledger.h"

typedef enum LLEncKind
{
	ENC_OUTFUNC,
	ENC_TEXT,
	ENC_INT2,
	ENC_INT4,
	ENC_INT8,
	ENC_FLOAT4,
	ENC_FLOAT8,
	ENC_DATE,
	ENC_TIME,
	ENC_TIMETZ,
	ENC_TIMESTAMP,
	ENC_TIMESTAMPTZ,
	ENC_INTERVAL,
	ENC_BYTEA,
	ENC_MONEY,
	ENC_ARRAY,
	ENC_RECORD,
	ENC_RANGE
} LLEncKind;

struct LLColEncoder
{
	LLEncKind	kind;
	Oid			typid;			/* after stripping domains */
	char	   *name;
	int			attno;
	size_t		name_len;
	FmgrInfo	outfn;			/* ENC_OUTFUNC */
	int16		elmlen;			/* ENC_ARRAY */
	bool		elmbyval;
	char		elmalign;
	LLColEncoder *elem;			/* ENC_ARRAY, ENC_RANGE subtype */
	TupleDesc	rdesc;			/* ENC_RECORD */
	LLColEncoder *fields;
	TypeCacheEntry *rngtyp;		/* ENC_RANGE */
};

/*
 * Types whose output function is a pure function of the stored value.
 * Anything not here, not special-cased below and not a container of such
 * types is refused by ledger.enable_table.
 */
static const Oid setting_free_types[] = {
	BOOLOID, CHAROID, NAMEOID, OIDOID, NUMERICOID, UUIDOID, JSONOID,
	JSONBOID, INETOID, CIDROID, MACADDROID, MACADDR8OID, BITOID,
	VARBITOID, PG_LSNOID, TSVECTOROID, TSQUERYOID, JSONPATHOID
};

static HTAB *table_cache = NULL;

static void encoder_init(LLColEncoder *enc, Oid typid, const char *name,
						 MemoryContext mcxt);
static void append_value(StringInfo out, LLColEncoder *enc, Datum value);

/*
 * realloc for ll_buf on top of palloc: memory lives in the current context.
 */
void *
ll_palloc_realloc(void *ptr, size_t size)
{
	if (ptr == NULL)
		return palloc(size);
	return repalloc(ptr, size);
}

static bool
is_setting_free(Oid typid)
{
	int			i;

	for (i = 0; i < lengthof(setting_free_types); i++)
		if (setting_free_types[i] == typid)
			return true;
	return false;
}

/*
 * Raise the user-facing error for a column type the encoding cannot hash
 * deterministically.
 */
static void
refuse_type(Oid typid, const char *colname)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("column \"%s\" has type %s, which loopledger cannot hash deterministically",
					colname, format_type_be(typid)),
			 errdetail("Its text form may depend on session settings or is not known to loopledger."),
			 errhint("Use a built-in scalar type such as text, numeric, integer, timestamptz, jsonb or an array of them.")));
}

/*
 * Fill *enc for values of type typid.  Errors (before anything is written)
 * when the type cannot be encoded canonically.
 */
static void
encoder_init(LLColEncoder *enc, Oid typid, const char *name, MemoryContext mcxt)
{
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	Oid			base = getBaseType(typid);
	char		typtype = get_typtype(base);
	Oid			elemtype = get_element_type(base);

	memset(enc, 0, sizeof(*enc));
	enc->typid = base;
	enc->name = pstrdup(name);
	enc->name_len = strlen(name);

	if (OidIsValid(elemtype))
	{
		enc->kind = ENC_ARRAY;
		get_typlenbyvalalign(elemtype, &enc->elmlen, &enc->elmbyval, &enc->elmalign);
		enc->elem = palloc(sizeof(LLColEncoder));
		encoder_init(enc->elem, elemtype, name, mcxt);
	}
	else if (typtype == TYPTYPE_COMPOSITE)
	{
		TupleDesc	td = lookup_rowtype_tupdesc_copy(base, -1);
		int			i;

		enc->kind = ENC_RECORD;
		enc->rdesc = td;
		enc->fields = palloc0(sizeof(LLColEncoder) * td->natts);
		for (i = 0; i < td->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(td, i);

			if (!att->attisdropped)
				encoder_init(&enc->fields[i], att->atttypid, name, mcxt);
		}
	}
	else if (typtype == TYPTYPE_RANGE)
	{
		enc->kind = ENC_RANGE;
		enc->rngtyp = lookup_type_cache(base, TYPECACHE_RANGE_INFO);
		enc->elem = palloc(sizeof(LLColEncoder));
		encoder_init(enc->elem, enc->rngtyp->rngelemtype->type_id, name, mcxt);
	}
	else
	{
		switch (base)
		{
			case TEXTOID:
			case VARCHAROID:
			case BPCHAROID:
				/* xml is stored as the text it was given; its output drops a default declaration */
			case XMLOID:
				enc->kind = ENC_TEXT;
				break;
			case INT2OID:
				enc->kind = ENC_INT2;
				break;
			case INT4OID:
				enc->kind = ENC_INT4;
				break;
			case INT8OID:
				enc->kind = ENC_INT8;
				break;
			case FLOAT4OID:
				enc->kind = ENC_FLOAT4;
				break;
			case FLOAT8OID:
				enc->kind = ENC_FLOAT8;
				break;
			case DATEOID:
				enc->kind = ENC_DATE;
				break;
			case TIMEOID:
				enc->kind = ENC_TIME;
				break;
			case TIMETZOID:
				enc->kind = ENC_TIMETZ;
				break;
			case TIMESTAMPOID:
				enc->kind = ENC_TIMESTAMP;
				break;
			case TIMESTAMPTZOID:
				enc->kind = ENC_TIMESTAMPTZ;
				break;
			case INTERVALOID:
				enc->kind = ENC_INTERVAL;
				break;
			case BYTEAOID:
				enc->kind = ENC_BYTEA;
				break;
			case CASHOID:
				enc->kind = ENC_MONEY;
				break;
			default:
				if (typtype == TYPTYPE_ENUM || is_setting_free(base))
				{
					Oid			outfn;
					bool		isvarlena;

					enc->kind = ENC_OUTFUNC;
					getTypeOutputInfo(base, &outfn, &isvarlena);
					fmgr_info_cxt(outfn, &enc->outfn, mcxt);
				}
				else
					refuse_type(typid, name);
		}
	}
	MemoryContextSwitchTo(old);
}

/*
 * Error unless values of typid can be hashed canonically.
 */
void
ll_check_encodable(Oid typid, const char *colname)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "loopledger type check",
											  ALLOCSET_SMALL_SIZES);
	LLColEncoder enc;

	encoder_init(&enc, typid, colname, cxt);
	MemoryContextDelete(cxt);
}

/*
 * Range subtypes whose canonical text range_in reads back from the quoted
 * bound: their texts never hold the control characters that the JSON
 * quoting escapes as \n or \u00XX (range_in would keep just the letter).
 */
static const Oid plain_bound_types[] = {
	INT2OID, INT4OID, INT8OID, FLOAT4OID, FLOAT8OID, NUMERICOID, DATEOID,
	TIMEOID, TIMETZOID, TIMESTAMPOID, TIMESTAMPTZOID, INTERVALOID, OIDOID,
	UUIDOID, INETOID, CIDROID, MACADDROID, MACADDR8OID, BOOLOID, PG_LSNOID,
	BITOID, VARBITOID, BYTEAOID
};

/*
 * Why a peer could not rebuild a value of typid from its canonical text
 * with the type's input function (apply.c inserts peers' rows that way),
 * or NULL when it can.  Asked only of types ll_check_encodable accepts.
 * The texts of every scalar kind are read back unchanged whatever the
 * applying worker's DateStyle, TimeZone or IntervalStyle (ISO dates, an
 * explicit +00, postgres-style intervals with a sign on every field after
 * a negative one); xml depends on xmloption, which the worker fixes.
 */
char *
ll_canonical_unreadable(Oid typid)
{
	Oid			base = getBaseType(typid);
	char		typtype = get_typtype(base);
	int			i;

	if (OidIsValid(get_element_type(base)))
		return pstrdup("Arrays are hashed as JSON-style lists such as [\"1\",\"2\"], which array input does not read.");
	if (typtype == TYPTYPE_COMPOSITE)
		return pstrdup("Composite values are hashed as JSON-style lists such as [\"a\",\"b\"], which record input does not read.");
	if (base == CASHOID)
		return pstrdup("Money is hashed as its number of cents, which money input would read as whole units, in the format lc_monetary sets.");
	if (typtype == TYPTYPE_RANGE)
	{
		TypeCacheEntry *rng = lookup_type_cache(base, TYPECACHE_RANGE_INFO);
		Oid			sub = getBaseType(rng->rngelemtype->type_id);

		for (i = 0; i < lengthof(plain_bound_types); i++)
			if (plain_bound_types[i] == sub)
				return NULL;
		return psprintf("Range bounds are hashed as JSON strings, and range input does not read the JSON escapes a bound of type %s may need.",
						format_type_be(sub));
	}
	return NULL;
}

/* Append a NUL-terminated string converted to UTF-8. */
static void
append_utf8(StringInfo out, const char *s, int len)
{
	if (GetDatabaseEncoding() != PG_UTF8)
	{
		char	   *conv = pg_server_to_any(s, len, PG_UTF8);

		if (conv != s)
		{
			appendStringInfoString(out, conv);
			return;
		}
	}
	appendBinaryStringInfo(out, s, len);
}

static void
append_float8(StringInfo out, double v)
{
	char		buf[64];

	if (isnan(v))
		appendStringInfoString(out, "NaN");
	else if (isinf(v))
		appendStringInfoString(out, v > 0 ? "Infinity" : "-Infinity");
	else
	{
		double_to_shortest_decimal_buf(v, buf);
		appendStringInfoString(out, buf);
	}
}

static void
append_float4(StringInfo out, float v)
{
	char		buf[64];

	if (isnan(v))
		appendStringInfoString(out, "NaN");
	else if (isinf(v))
		appendStringInfoString(out, v > 0 ? "Infinity" : "-Infinity");
	else
	{
		float_to_shortest_decimal_buf(v, buf);
		appendStringInfoString(out, buf);
	}
}

/* Date and time types, formatted as ISO 8601 in UTC whatever the session says. */
static void
append_datetime(StringInfo out, LLEncKind kind, Datum value)
{
	char		buf[MAXDATELEN + 1];
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	switch (kind)
	{
		case ENC_DATE:
			{
				DateADT		d = DatumGetDateADT(value);

				if (DATE_NOT_FINITE(d))
					EncodeSpecialDate(d, buf);
				else
				{
					j2date(d + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
					EncodeDateOnly(&tm, USE_ISO_DATES, buf);
				}
				break;
			}
		case ENC_TIME:
			time2tm(DatumGetTimeADT(value), &tm, &fsec);
			EncodeTimeOnly(&tm, fsec, false, 0, USE_ISO_DATES, buf);
			break;
		case ENC_TIMETZ:
			timetz2tm(DatumGetTimeTzADTP(value), &tm, &fsec, &tz);
			EncodeTimeOnly(&tm, fsec, true, tz, USE_ISO_DATES, buf);
			break;
		case ENC_TIMESTAMP:
		case ENC_TIMESTAMPTZ:
			{
				Timestamp	ts = DatumGetTimestamp(value);

				if (TIMESTAMP_NOT_FINITE(ts))
					EncodeSpecialTimestamp(ts, buf);
				else if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
							 errmsg("timestamp out of range")));
				else
				{
					/* UTC has no DST; a negative flag would hide the "+00" */
					tm.tm_isdst = 0;
					EncodeDateTime(&tm, fsec, kind == ENC_TIMESTAMPTZ, 0, NULL,
								   USE_ISO_DATES, buf);
				}
				break;
			}
		case ENC_INTERVAL:
			{
				struct pg_itm itm;

				interval2itm(*DatumGetIntervalP(value), &itm);
				EncodeInterval(&itm, INTSTYLE_POSTGRES, buf);
				break;
			}
		default:
			elog(ERROR, "unexpected date/time encoder %d", (int) kind);
	}
	appendStringInfoString(out, buf);
}

static void
append_bytea(StringInfo out, Datum value)
{
	bytea	   *b = DatumGetByteaPP(value);
	int			len = VARSIZE_ANY_EXHDR(b);
	int			start;

	appendStringInfoString(out, "\\x");
	start = out->len;
	enlargeStringInfo(out, len * 2 + 1);
	ll_hex_encode((const uint8 *) VARDATA_ANY(b), len, out->data + start);
	out->len += len * 2;
}

/* JSON-style element: null, or the element's canonical text as a JSON string. */
static void
append_element(StringInfo out, LLColEncoder *enc, Datum value, bool isnull)
{
	StringInfoData tmp;

	if (isnull)
	{
		appendStringInfoString(out, "null");
		return;
	}
	initStringInfo(&tmp);
	append_value(&tmp, enc, value);
	escape_json(out, tmp.data);
	pfree(tmp.data);
}

/* One dimension of an array as a JSON array; returns the next element index. */
static int
append_array_dim(StringInfo out, LLColEncoder *enc, const int *dims, int ndim,
				 int d, Datum *elems, bool *nulls, int k)
{
	int			i;

	appendStringInfoChar(out, '[');
	for (i = 0; i < dims[d]; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, ',');
		if (d == ndim - 1)
		{
			append_element(out, enc->elem, elems[k], nulls[k]);
			k++;
		}
		else
			k = append_array_dim(out, enc, dims, ndim, d + 1, elems, nulls, k);
	}
	appendStringInfoChar(out, ']');
	return k;
}

/*
 * Arrays: nested JSON arrays of element texts; non-default lower bounds are
 * written first as "[lb:ub]..." then "=", as array_out does.
 */
static void
append_array(StringInfo out, LLColEncoder *enc, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	int			ndim = ARR_NDIM(arr);
	int		   *dims = ARR_DIMS(arr);
	int		   *lbs = ARR_LBOUND(arr);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			d;
	bool		default_lb = true;

	for (d = 0; d < ndim; d++)
		if (lbs[d] != 1)
			default_lb = false;
	if (!default_lb)
	{
		for (d = 0; d < ndim; d++)
			appendStringInfo(out, "[%d:%d]", lbs[d], lbs[d] + dims[d] - 1);
		appendStringInfoChar(out, '=');
	}
	if (ndim == 0)
	{
		appendStringInfoString(out, "[]");
		return;
	}
	deconstruct_array(arr, enc->elem->typid, enc->elmlen, enc->elmbyval,
					  enc->elmalign, &elems, &nulls, &nelems);
	append_array_dim(out, enc, dims, ndim, 0, elems, nulls, 0);
}

/* Composite values: a JSON array of field texts in column order. */
static void
append_record(StringInfo out, LLColEncoder *enc, Datum value)
{
	HeapTupleHeader th = DatumGetHeapTupleHeader(value);
	HeapTupleData tuple;
	TupleDesc	td = enc->rdesc;
	Datum	   *values = palloc(sizeof(Datum) * td->natts);
	bool	   *nulls = palloc(sizeof(bool) * td->natts);
	bool		first = true;
	int			i;

	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	heap_deform_tuple(&tuple, td, values, nulls);
	appendStringInfoChar(out, '[');
	for (i = 0; i < td->natts; i++)
	{
		if (TupleDescAttr(td, i)->attisdropped)
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		append_element(out, &enc->fields[i], values[i], nulls[i]);
	}
	appendStringInfoChar(out, ']');
}

/* Ranges: "empty" or bracket, JSON-string bounds (empty when unbounded), bracket. */
static void
append_range(StringInfo out, LLColEncoder *enc, Datum value)
{
	RangeType  *r = DatumGetRangeTypeP(value);
	RangeBound	lower,
				upper;
	bool		empty;

	range_deserialize(enc->rngtyp, r, &lower, &upper, &empty);
	if (empty)
	{
		appendStringInfoString(out, "empty");
		return;
	}
	appendStringInfoChar(out, lower.inclusive ? '[' : '(');
	if (!lower.infinite)
		append_element(out, enc->elem, lower.val, false);
	appendStringInfoChar(out, ',');
	if (!upper.infinite)
		append_element(out, enc->elem, upper.val, false);
	appendStringInfoChar(out, upper.inclusive ? ']' : ')');
}

/*
 * Append the canonical text of a non-null value.
 */
static void
append_value(StringInfo out, LLColEncoder *enc, Datum value)
{
	char		buf[32];

	switch (enc->kind)
	{
		case ENC_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				append_utf8(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				break;
			}
		case ENC_INT2:
			pg_itoa(DatumGetInt16(value), buf);
			appendStringInfoString(out, buf);
			break;
		case ENC_INT4:
			pg_ltoa(DatumGetInt32(value), buf);
			appendStringInfoString(out, buf);
			break;
		case ENC_INT8:
		case ENC_MONEY:
			pg_lltoa(DatumGetInt64(value), buf);
			appendStringInfoString(out, buf);
			break;
		case ENC_FLOAT4:
			append_float4(out, DatumGetFloat4(value));
			break;
		case ENC_FLOAT8:
			append_float8(out, DatumGetFloat8(value));
			break;
		case ENC_DATE:
		case ENC_TIME:
		case ENC_TIMETZ:
		case ENC_TIMESTAMP:
		case ENC_TIMESTAMPTZ:
		case ENC_INTERVAL:
			append_datetime(out, enc->kind, value);
			break;
		case ENC_BYTEA:
			append_bytea(out, value);
			break;
		case ENC_ARRAY:
			append_array(out, enc, value);
			break;
		case ENC_RECORD:
			append_record(out, enc, value);
			break;
		case ENC_RANGE:
			append_range(out, enc, value);
			break;
		case ENC_OUTFUNC:
			{
				char	   *s = OutputFunctionCall(&enc->outfn, value);

				append_utf8(out, s, strlen(s));
				break;
			}
	}
}

/* An encoder for values of type typid, allocated in mcxt. */
LLColEncoder *
ll_column_encoder(Oid typid, const char *name, MemoryContext mcxt)
{
	LLColEncoder *enc = MemoryContextAlloc(mcxt, sizeof(LLColEncoder));

	encoder_init(enc, typid, name, mcxt);
	return enc;
}

/*
 * Canonical text of one non-null value, palloc'd in the current context.
 */
char *
ll_column_text(LLColEncoder *col, Datum value)
{
	StringInfoData s;

	initStringInfo(&s);
	append_value(&s, col, value);
	return s.data;
}

/*
 * Drop cached table descriptions when PostgreSQL invalidates the relation.
 */
static void
table_cache_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	LLTableInfo *info;

	if (table_cache == NULL)
		return;
	hash_seq_init(&status, table_cache);
	while ((info = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || info->relid == relid)
			info->valid = false;
}

/*
 * Tiers of a channel, lowest first, palloc'd in the current context.
 */
void
ll_load_tiers(int32 channel_id, int *ntiers, char ***tiers)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		arg = Int32GetDatum(channel_id);
	Oid			argtype = INT4OID;
	int			i;

	SPI_connect();
	if (SPI_execute_with_args("SELECT pg_catalog.unnest(tiers) FROM ledger.channel WHERE channel_id = $1",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read tiers of channel %d", channel_id);
	*ntiers = SPI_processed;
	*tiers = MemoryContextAlloc(caller, sizeof(char *) * Max(1, SPI_processed));
	for (i = 0; i < SPI_processed; i++)
		(*tiers)[i] = MemoryContextStrdup(caller,
										  SPI_getvalue(SPI_tuptable->vals[i],
													   SPI_tuptable->tupdesc, 1));
	SPI_finish();
	if (*ntiers == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel %d of a ledger table does not exist", channel_id)));
}

/*
 * Build the description of a ledger table: which columns are hashed, with
 * which encoders, and where the entry number and tier live.
 */
static void
table_info_build(LLTableInfo *info, Relation rel, int32 channel_id,
				 int32 table_no, const char *channel_name, const char *table_name,
				 const char *tier_column)
{
	MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext,
											  "loopledger table info",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TupleDesc	td = CreateTupleDescCopy(RelationGetDescr(rel));
	int			i;

	info->tupdesc = td;
	info->values = palloc(sizeof(Datum) * td->natts);
	info->isnull = palloc(sizeof(bool) * td->natts);
	info->channel_id = channel_id;
	info->table_no = table_no;
	info->channel_name = pstrdup(channel_name);
	info->table_name = pstrdup(table_name);
	info->entry_attno = 0;
	info->tier_attno = 0;
	info->ncols = 0;
	info->cols = palloc0(sizeof(LLColEncoder) * td->natts);
	ll_load_tiers(channel_id, &info->ntiers, &info->tiers);
	for (i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), LL_ENTRY_COLUMN) == 0)
		{
			info->entry_attno = att->attnum;
			continue;
		}
		if (tier_column && strcmp(NameStr(att->attname), tier_column) == 0)
		{
			info->tier_attno = att->attnum;
			info->tier_col = info->ncols;
		}
		encoder_init(&info->cols[info->ncols], att->atttypid,
					 NameStr(att->attname), cxt);
		info->cols[info->ncols].attno = att->attnum;
		info->ncols++;
	}
	MemoryContextSwitchTo(old);
	if (info->entry_attno == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ledger table \"%s\" has no column \"%s\"",
						table_name, LL_ENTRY_COLUMN)));
	if (tier_column && tier_column[0] && info->tier_attno == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("tier column \"%s\" of ledger table \"%s\" does not exist",
						tier_column, table_name)));
	info->valid = true;
}

/*
 * True when no index other than ledger_entry's can refuse a row: then on
 * a multi-peer channel no transaction ordered earlier can make its rows
 * fail, and COMMIT need not wait for the order (synchronous_commit off).
 */
static bool
order_free(Relation rel, int entry_attno)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		free_ = true;

	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index idx;

		if (!HeapTupleIsValid(tup))
			continue;
		idx = (Form_pg_index) GETSTRUCT(tup);
		if ((idx->indisunique || idx->indisexclusion) &&
			!(idx->indnatts == 1 && idx->indkey.values[0] == entry_attno))
			free_ = false;
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	return free_;
}

/*
 * Cached description of a ledger table, rebuilt after invalidation.
 * key fields come from the trigger arguments or ledger.ledger_table.
 */
LLTableInfo *
ll_table_info_for(Relation rel, int32 channel_id, int32 table_no,
				  const char *channel_name, const char *table_name,
				  const char *tier_column)
{
	Oid			relid = RelationGetRelid(rel);
	LLTableInfo *info;
	bool		found;

	if (table_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(LLTableInfo);
		ctl.hcxt = CacheMemoryContext;
		table_cache = hash_create("loopledger tables", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(table_cache_invalidate, (Datum) 0);
	}
	info = hash_search(table_cache, &relid, HASH_ENTER, &found);
	if (found && info->valid && info->table_no == table_no &&
		info->channel_id == channel_id)
		return info;
	if (found && info->tupdesc != NULL)
		MemoryContextDelete(GetMemoryChunkContext(info->tupdesc));
	info->tupdesc = NULL;
	info->valid = false;
	info->registered = false;
	info->definition_ok = 0;
	table_info_build(info, rel, channel_id, table_no, channel_name, table_name,
					 tier_column);
	info->order_free = order_free(rel, info->entry_attno);
	return info;
}

/*
 * Deform a tuple of the table once into info->values/isnull; the other
 * ll_deformed_* functions read from there.
 */
void
ll_deform(LLTableInfo *info, HeapTuple tuple)
{
	heap_deform_tuple(tuple, info->tupdesc, info->values, info->isnull);
}

/* Entry number of the deformed row; false when it is NULL. */
bool
ll_deformed_entry(LLTableInfo *info, uint64 *entry)
{
	if (info->isnull[info->entry_attno - 1])
		return false;
	*entry = (uint64) DatumGetInt64(info->values[info->entry_attno - 1]);
	return true;
}

/*
 * Tier index of the deformed row.  An unknown or NULL tier is an error, or
 * -1 when noerror (verification reports it instead of failing).
 */
int
ll_deformed_tier(LLTableInfo *info, bool noerror)
{
	char	   *s;
	int			i;

	if (info->tier_attno == 0)
		return 0;
	if (info->isnull[info->tier_attno - 1])
	{
		if (noerror)
			return -1;
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("tier of a row of ledger table \"%s\" must not be null",
						info->table_name),
				 errhint("Use one of the tiers of channel \"%s\" listed in ledger.channels.",
						 info->channel_name)));
	}
	s = ll_column_text(&info->cols[info->tier_col], info->values[info->tier_attno - 1]);
	for (i = 0; i < info->ntiers; i++)
		if (strcmp(s, info->tiers[i]) == 0)
			return i;
	if (noerror)
		return -1;
	ereport(ERROR,
			(errcode(ERRCODE_CHECK_VIOLATION),
			 errmsg("tier \"%s\" is not a tier of channel \"%s\"", s, info->channel_name),
			 errdetail("The row was inserted into ledger table \"%s\".", info->table_name),
			 errhint("Use one of the tiers listed in ledger.channels.")));
	return -1;					/* keep compiler quiet */
}

const char *
ll_column_name(LLTableInfo *info, int i)
{
	return info->cols[i].name;
}

/* Canonical text of encoded column i of the deformed row, NULL if null. */
char *
ll_deformed_text(LLTableInfo *info, int i)
{
	int			att = info->cols[i].attno - 1;

	if (info->isnull[att])
		return NULL;
	return ll_column_text(&info->cols[i], info->values[att]);
}

/*
 * Append the canonical entry encoding (see ll_core.h) of the deformed row.
 */
void
ll_encode_deformed(LLTableInfo *info, uint64 entry_id, int tier,
				   const uint8 *salt, ll_buf *out)
{
	static StringInfoData val;
	const char *tiername = info->tiers[tier];
	int			i;

	/* one scratch string for every value of every row, in a lasting context */
	if (val.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&val);
		MemoryContextSwitchTo(old);
	}
	ll_entry_begin(out, info->table_name, strlen(info->table_name), entry_id,
				   tiername, strlen(tiername), salt, info->ncols);
	for (i = 0; i < info->ncols; i++)
	{
		LLColEncoder *col = &info->cols[i];
		int			att = col->attno - 1;

		if (info->isnull[att])
			ll_entry_null(out, col->name, col->name_len);
		else
		{
			resetStringInfo(&val);
			append_value(&val, col, info->values[att]);
			ll_entry_value(out, col->name, col->name_len, val.data, val.len);
		}
	}
}

/*
 * Pack and unpack one entry of ledger.pending/ledger.block payloads.
 */
void
ll_pack_entry(const LLPackedEntry *e, uint8 *out)
{
	int			i;

	for (i = 0; i < 8; i++)
		out[i] = (uint8) (e->entry_id >> (56 - 8 * i));
	for (i = 0; i < 4; i++)
		out[8 + i] = (uint8) (e->table_no >> (24 - 8 * i));
	out[LL_PACKED_TIER_OFFSET] = e->tier;
	out[13] = e->flags;
	memcpy(out + 14, e->commitment, LL_HASH_LEN);
	memcpy(out + 14 + LL_HASH_LEN, e->salt, LL_SALT_LEN);
}

void
ll_unpack_entry(const uint8 *in, LLPackedEntry *e)
{
	int			i;

	e->entry_id = 0;
	for (i = 0; i < 8; i++)
		e->entry_id = (e->entry_id << 8) | in[i];
	e->table_no = 0;
	for (i = 0; i < 4; i++)
		e->table_no = (e->table_no << 8) | in[8 + i];
	e->tier = in[LL_PACKED_TIER_OFFSET];
	e->flags = in[13];
	memcpy(e->commitment, in + 14, LL_HASH_LEN);
	memcpy(e->salt, in + 14 + LL_HASH_LEN, LL_SALT_LEN);
}

/* For the consensus worker, which meets ledger tables by name. */
bool
ll_relid_order_free(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	bool		f = order_free(rel, get_attnum(relid, LL_ENTRY_COLUMN));

	table_close(rel, AccessShareLock);
	return f;
}
