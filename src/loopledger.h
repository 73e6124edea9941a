/*
 * loopledger.h
 *		Declarations shared by the PostgreSQL side of loopledger.
 */
#ifndef LOOPLEDGER_H
#define LOOPLEDGER_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "nodes/nodes.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "executor/spi.h"
#include "utils/relcache.h"

#include "ll_core.h"

#define LL_ENTRY_COLUMN "ledger_entry"

/* Packed entry as stored in ledger.pending.entries and ledger.block.entries. */
#define LL_PACKED_ENTRY_SIZE (8 + 4 + 1 + 1 + LL_HASH_LEN + LL_SALT_LEN)
#define LL_PACKED_TIER_OFFSET 12	/* after entry id and table number */
#define LL_MAX_TIERS 250
/* ledger tables of a channel with peers: each member declares each one (tabledef.c) */
#define LL_MAX_PEER_TABLES 1000
extern void ll_check_peer_tables(int32 channel_id, const char *channel, int adding);

/* Largest number of entries in one ledger.pending row (keeps bytea small). */
#define LL_PENDING_CHUNK 100000

/*
 * LLPackedEntry.flags.  REDACTED: this node holds only the row's
 * commitment (a peer without clearance for its tier); entry_id, table_no,
 * tier and commitment are valid, the salt is zero and no table row exists.
 */
#define LL_ENTRY_REDACTED 0x01

typedef struct LLPackedEntry
{
	uint64		entry_id;
	uint32		table_no;
	uint8		tier;
	uint8		flags;
	uint8		commitment[LL_HASH_LEN];
	uint8		salt[LL_SALT_LEN];
} LLPackedEntry;

extern void ll_pack_entry(const LLPackedEntry *e, uint8 *out);
extern void ll_unpack_entry(const uint8 *in, LLPackedEntry *e);

/* GUCs */
extern bool ll_synchronous_commit;
extern int	ll_block_max_rows;
extern int	ll_block_interval_ms;
extern int	ll_propose_delay_ms;
extern char *ll_database;

/*
 * Shared state between committing backends and the sealing worker.
 *
 * A committing backend reads seal_started after its commit is visible; any
 * seal whose number is larger took its snapshot later and so contains the
 * backend's rows.  seal_done is the number of the last seal committed.
 */
typedef struct LLShared
{
	pg_atomic_uint64 seal_started;
	pg_atomic_uint64 seal_done;
	pg_atomic_uint64 seal_failed;	/* number of the last seal that failed */
	pg_atomic_uint64 pending_rows;	/* committed rows not yet sealed */
	pg_atomic_uint32 waiters;
	pg_atomic_uint32 peers_epoch;	/* bumped when a channel gets peers */
	ConditionVariable sealed_cv;
	slock_t		mutex;			/* protects the fields below */
	pid_t		worker_pid;
	Oid			worker_db;
	Latch	   *worker_latch;
} LLShared;

extern LLShared *ll_shared;
extern bool ll_worker_loaded;	/* in shared_preload_libraries */

extern void ll_shmem_request(void);
extern void ll_shmem_startup(void);
extern void ll_wake_worker(void);
extern bool ll_worker_serves_my_db(void);

/* Row encoding (rowcodec.c) */
typedef struct LLColEncoder LLColEncoder;

typedef struct LLTableInfo
{
	Oid			relid;			/* hash key */
	bool		valid;
	int32		channel_id;
	int32		table_no;
	char	   *channel_name;
	char	   *table_name;		/* qualified, as hashed */
	int			entry_attno;	/* attnum of ledger_entry */
	int			tier_attno;		/* 0 when the table has no tier column */
	int			tier_col;		/* index of the tier column in cols */
	bool		order_free;		/* no unique key besides ledger_entry: no
								 * agreed order can reject its rows */
	bool		registered;		/* its capture trigger's arguments were
								 * found in ledger.ledger_table */
	uint64		definition_ok;	/* multi-peer: tabledef.c found it defined
								 * as agreed at this invalidation count */
	int			ntiers;
	char	  **tiers;
	int			ncols;			/* encoded columns, ledger_entry excluded */
	LLColEncoder *cols;
	TupleDesc	tupdesc;
	Datum	   *values;			/* last row given to ll_deform */
	bool	   *isnull;
} LLTableInfo;

extern void ll_check_encodable(Oid typid, const char *colname);
extern char *ll_canonical_unreadable(Oid typid);
extern bool ll_relid_order_free(Oid relid);
/* The row of a ledger table with this entry number (proof.c); rel left open. */
extern HeapTuple ll_fetch_ledger_row(Oid relid, const char *table_name, uint64 entry,
									 bool missing_ok, Relation *relp);
extern LLTableInfo *ll_table_info_for(Relation rel, int32 channel_id,
									  int32 table_no, const char *channel_name,
									  const char *table_name,
									  const char *tier_column);
extern void ll_deform(LLTableInfo *info, HeapTuple tuple);
extern bool ll_deformed_entry(LLTableInfo *info, uint64 *entry);
extern int	ll_deformed_tier(LLTableInfo *info, bool noerror);
extern char *ll_deformed_text(LLTableInfo *info, int i);
extern void ll_encode_deformed(LLTableInfo *info, uint64 entry_id, int tier,
							   const uint8 *salt, ll_buf *out);
extern char *ll_column_text(LLColEncoder *col, Datum value);
extern LLColEncoder *ll_column_encoder(Oid typid, const char *name, MemoryContext mcxt);
extern const char *ll_column_name(LLTableInfo *info, int i);
extern void *ll_palloc_realloc(void *ptr, size_t size);
extern void ll_load_tiers(int32 channel_id, int *ntiers, char ***tiers);

/* Capture (capture.c) */
extern void ll_capture_tuple(LLTableInfo *info, HeapTuple tuple);
extern void ll_capture_values(LLTableInfo *info, Datum *values, bool *isnull);
extern void ll_register_xact_callbacks(void);

/* Worker (worker.c) */
extern void ll_register_worker(void);
extern void ll_insert_block(int32 channel_id, char **tiers, int ntiers,
							const uint8 *entries, int n, int tx_count,
							int64 time_us, int64 *out_height, uint8 *out_hash);

/* Guards (guard.c) */
extern void ll_install_guards(void);
extern bool ll_is_ledger_table(Oid relid, char **channel);

/* Clearances and row-level security of ledger tables (clearance.c) */
extern int	ll_effective_clearance(int32 channel_id);
extern void ll_append_policy_sql(StringInfo sql, const char *quoted, int32 channel_id,
								 const char *tier_column, const char *qualname);
extern bool ll_relation_has_policy(Oid relid);
extern Oid	ll_policy_relation(Oid policy_oid);
extern bool ll_policy_create_allowed(Oid relid, const char *policy_name);
extern void ll_require_full_clearance(Oid relid, const char *action, const char *why);
extern void ll_hide_index_stats(Oid relid);
extern void ll_check_explain(Node *query);
extern void ll_note_ledger_write(Oid relid);
extern void ll_install_clearance_hooks(void);

/* Chain helpers (chain.c) */
extern Oid	ll_catalog_relid(const char *name);
extern SPIPlanPtr ll_keep_plan(const char *sql, int nargs, Oid *argtypes);

#endif							/* LOOPLEDGER_H */
