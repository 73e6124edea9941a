/*
 * chain.h
 *		Helpers shared by the channel, verification and proof code.
 */
#ifndef LL_CHAIN_H
#define LL_CHAIN_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "ll_core.h"

typedef struct LLChannel
{
	int32		id;
	char	   *name;
	uint8		config_hash[LL_HASH_LEN];
} LLChannel;

/* A block row as read back from ledger.block. */
typedef struct LLBlock
{
	ll_block_header hdr;
	uint8		stored_hash[LL_HASH_LEN];
	bool		hash_ok;		/* header re-hashes to stored_hash */
	const uint8 *entries;		/* packed, row_count entries */
	int			nentries;
	bool		entries_ok;		/* payload length is a whole number of entries */
	bool		range_read;		/* min_entry and max_entry were selected */
	bool		range_null;
	int64		min_entry;		/* what ledger.proof finds the block by */
	int64		max_entry;
} LLBlock;

typedef bool (*ll_block_fn) (LLBlock *b, void *arg);

/*
 * Packed entries hold every row's salt, and a salt with a commitment lets
 * a reader confirm a guessed row offline: only the extension reads them.
 * PUBLIC may select every other column of ledger.block; functions that
 * need the entries (verify, proofs, block_entries) read them as the
 * bootstrap superuser between these two calls and then apply the caller's
 * clearance themselves.  search_path is pg_catalog meanwhile, so that no
 * operator or function of the caller's schemas runs as superuser.  An
 * error in between is fine: aborting the (sub)transaction restores both.
 */
typedef struct LLAsOwner
{
	Oid			userid;
	int			sec;
	int			guc_level;
} LLAsOwner;

/* A palloc'd string from a format and its arguments (vsnprintf-like). */
extern char *ll_vformat(const char *fmt, va_list args) pg_attribute_printf(1, 0);

extern void ll_as_owner_begin(LLAsOwner *s);
extern void ll_as_owner_end(const LLAsOwner *s);
/* For a worker's whole life: see ll_pin_search_path in chain.c. */
extern void ll_pin_search_path(void);
/* SPI: the packed entries of a channel's pending rows (as the owner). */
extern void ll_spi_pending_entries(int32 channel_id);

extern void ll_channel_lookup(const char *name, LLChannel *ch);
extern void ll_recheck_constraints(Oid relid, const char *channel);
extern void ll_recheck_domain(Oid typid);
extern void ll_check_tables_for_peers(int32 channel_id, const char *channel);
struct IndexStmt;
extern void ll_check_index_stmt(struct IndexStmt *stmt, const char *queryString, const char *channel);
extern void ll_foreach_block(LLChannel *ch, int64 max_height, ll_block_fn fn, void *arg);
extern void ll_insert_genesis(int32 id, const char *name, Datum config_hash);
extern void ll_insert_genesis_at(int32 id, const char *name, Datum config_hash, int64 time_us);
extern int64 ll_now_unix_micros(void);
extern bytea *ll_bytea(const uint8 *data, size_t len);
extern void ll_block_from_spi(HeapTuple tup, TupleDesc td, const char *channel, LLBlock *b);
extern char *ll_time_text(int64 time_us);
extern void ll_head_block(LLChannel *ch, LLBlock *b);
extern void ll_append_hex_field(StringInfo s, const char *key, const uint8 *data, size_t len);
extern bool ll_merkle_matches(const LLBlock *b, char **tiers, int ntiers);
extern void ll_block_leaves(const uint8 *entries, int n, char **tiers, int ntiers, uint8 *leaves);
extern void ll_copy_hash(HeapTuple tup, TupleDesc td, int col, uint8 *out, bool *ok);
extern bool ll_entry_is_redacted(LLChannel *ch, uint64 entry);

/* SELECT list that ll_block_from_spi expects, in this order. */
#define LL_BLOCK_COLUMNS "height, prev_hash, merkle_root, time_us, tx_count, row_count, config_hash, block_hash, entries, min_entry, max_entry"

extern Datum ll_config_hash_sql(PG_FUNCTION_ARGS);

#endif							/* LL_CHAIN_H */
