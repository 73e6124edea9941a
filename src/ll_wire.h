/*
 * ll_wire.h
 *		Messages loopledger peer databases exchange, other than the
 *		consensus-core messages of bft_wire.c.
 *
 * Like ll_core.h this is pure C: no PostgreSQL header, no I/O, and memory
 * only through the caller's ll_buf allocator.  Decoders are strict (one
 * encoding per message: truncation, trailing bytes, unknown magic or kind,
 * over-limit counts and lengths are errors), never allocate, and return
 * pointers into the input.  All integers big-endian; "str" = u32 length +
 * bytes.  None of these formats has a boolean field.
 *
 * Genesis (channel identity; genesis hash = consensus chain_id):
 *   "LLG1" | str channel | u32 ntiers | ntiers x str tier | u32 nmembers |
 *   nmembers x ( pubkey[32] | str name | str clearance_tier )
 *   Members strictly ascending by pubkey (memcmp); tiers, member names
 *   distinct and non-empty; every clearance_tier is one of the tiers.
 *
 * Transaction batch (one node's signed bundle of local transactions):
 *   signed = "LLT1" | chain_id[32] | origin[32] | u64 batch_seq |
 *            i64 time_us | u32 ntx | ntx x tx
 *   tx     = u8 kind | u64 txid | body
 *     kind 1 rows:          u32 nrows (>= 1) | nrows x row
 *       row = u8 tier_index | u64 entry_id | str table | commitment[32]
 *       (entry_id and table as in the row's entry, so that a peer that
 *       gets the row withheld can still list it; table non-empty, at most
 *       LL_WIRE_MAX_TABLE bytes)
 *     kind 2 add member:    pubkey[32] | str name | str clearance_tier
 *     kind 3 remove member: pubkey[32]
 *     kind 4 declare table: str table | fingerprint[32]
 *       (the origin's definition of a ledger table; table as in rows)
 *   batch  = signed | sig[64] | content
 *   batch_hash = SHA-256(signed); sig = origin's Ed25519 signature of the
 *   32-byte batch_hash (consensus signatures cover 88-byte "LLBFT1"
 *   strings, so neither can pass for the other).
 *   content = for every row of every rows tx, in order: u32 len | entry
 *   ("LLE1", ll_core.h), len 0 = withheld.  A row with content must
 *   satisfy ll_leaf_hash(content) == commitment, and the entry's entry_id
 *   and table must be the row's.  The signature covers no content, so
 *   withholding keeps the batch valid.
 *
 * Consensus payload (the value the consensus core agrees on):
 *   "LLP1" | u64 height | prev_ledger_head[32] | i64 time_us |
 *   u16 nbatches | nbatches x batch_hash[32]        (distinct hashes)
 *   value = SHA-256(payload); at most LL_PAYLOAD_MAX_LEN bytes.
 *
 * Frame list (one call between peers): repeated u8 kind | u32 len | body.
 *   1 consensus message (bft_decode), 2 batch, 3 batch request
 *   (u16 n | n x batch_hash[32]), 4 hello (chain_id[32] | u64 height | str name |
 *   u64 epoch | u64 seq | sig[64], signed over ll_hello_sign_bytes)
 *
 * What the codec cannot know is left to the caller: that a batch's origin
 * is a member and its tier indexes exist in the channel (ll_genesis_*
 * lookups help), that chain_id is the caller's channel, and sequencing.
 */
#ifndef LL_WIRE_H
#define LL_WIRE_H

#include "ll_core.h"

#define LL_PUBKEY_LEN 32
#define LL_SIG_LEN 64

/* Limits.  Counts are checked before anything is read or hashed. */
#define LL_WIRE_MAX_NAME 255	/* channel, tier, member and peer names */
#define LL_WIRE_MAX_TABLE 511	/* qualified table name of a batch row */
#define LL_GENESIS_MAX_TIERS 250	/* README: 1-250 tiers; tier_index is u8 */
#define LL_GENESIS_MAX_MEMBERS 1024
#define LL_BATCH_MAX_TXS 65536
#define LL_BATCH_MAX_ROWS 65536 /* over all rows transactions of a batch */
#define LL_ENTRY_MAX_LEN (64u * 1024 * 1024)	/* one row's content */
#define LL_PAYLOAD_MAX_LEN 4096 /* = BFT_MAX_PAYLOAD, checked in ll_wire.c */
#define LL_PAYLOAD_HDR_LEN 54	/* "LLP1" + 8 + 32 + 8 + 2 */
#define LL_PAYLOAD_MAX_BATCHES ((LL_PAYLOAD_MAX_LEN - LL_PAYLOAD_HDR_LEN) / LL_HASH_LEN)	/* 126 */
#define LL_BATCH_REQ_MAX 1024

typedef enum ll_wire_err
{
	LL_WIRE_OK = 0,
	LL_WIRE_ERR_TRUNCATED = -1, /* input ends inside a message */
	LL_WIRE_ERR_TRAILING = -2,	/* bytes after the end of a message */
	LL_WIRE_ERR_VERSION = -3,	/* unknown magic / version */
	LL_WIRE_ERR_KIND = -4,		/* unknown transaction or frame kind */
	LL_WIRE_ERR_LIMIT = -5,		/* count or length over its limit */
	LL_WIRE_ERR_ORDER = -6,		/* members unsorted or repeated pubkey */
	LL_WIRE_ERR_DUPLICATE = -7, /* repeated tier, name or batch hash */
	LL_WIRE_ERR_FIELD = -8,		/* empty name, unknown tier, no rows... */
	LL_WIRE_ERR_SIG = -9,		/* batch signature does not verify */
	LL_WIRE_ERR_COMMITMENT = -10,	/* row content does not match commitment */
	LL_WIRE_ERR_NOMEM = -11,	/* the ll_buf failed to grow */
	LL_WIRE_ERR_CRYPTO = -12,	/* hashing or the sign callback failed */
	LL_WIRE_ERR_STATE = -13		/* bad argument or call order */
} ll_wire_err;

extern const char *ll_wire_strerror(int err);

/* Same shapes as bft_callbacks.sign / .verify (bft_ed25519_* fit). */
typedef int (*ll_sign_fn) (void *ctx, const uint8_t *msg, size_t len,
						   uint8_t sig[LL_SIG_LEN]);
typedef bool (*ll_verify_fn) (void *ctx, const uint8_t pub[LL_PUBKEY_LEN],
							  const uint8_t *msg, size_t len,
							  const uint8_t sig[LL_SIG_LEN]);

typedef struct ll_wire_str
{
	const char *ptr;
	size_t		len;
} ll_wire_str;

/* ---- genesis ---------------------------------------------------------- */

typedef struct ll_member
{
	const uint8_t *pubkey;		/* LL_PUBKEY_LEN bytes */
	ll_wire_str name;
	ll_wire_str tier;			/* clearance tier */
} ll_member;

/* A decoded (hence valid) genesis; sections point into the input. */
typedef struct ll_genesis
{
	ll_wire_str channel;
	uint32_t	ntiers;
	uint32_t	nmembers;
	const uint8_t *tiers;		/* start of the tier list */
	const uint8_t *members;		/* start of the member list */
} ll_genesis;

typedef struct ll_genesis_iter
{
	const uint8_t *p;
	uint32_t	left;
} ll_genesis_iter;

/*
 * Append a genesis.  Members may come in any order: the encoder emits them
 * sorted by pubkey.  Every rule the decoder checks is checked here too
 * (repeated pubkey -> ORDER, repeated name or tier -> DUPLICATE, unknown
 * clearance tier -> FIELD); on error nothing is appended.
 */
extern int	ll_genesis_encode(ll_buf *out, ll_wire_str channel,
							  const ll_wire_str *tiers, uint32_t ntiers,
							  const ll_member *members, uint32_t nmembers);
extern int	ll_genesis_decode(const uint8_t *in, size_t len, ll_genesis *g);
/* chain_id: SHA-256 of the encoding, only if it decodes. */
extern int	ll_genesis_hash(const uint8_t *in, size_t len, uint8_t out[LL_HASH_LEN]);
extern void ll_genesis_tiers(const ll_genesis *g, ll_genesis_iter *it);
extern bool ll_genesis_next_tier(ll_genesis_iter *it, ll_wire_str *tier);
extern void ll_genesis_members(const ll_genesis *g, ll_genesis_iter *it);
extern bool ll_genesis_next_member(ll_genesis_iter *it, ll_member *m);
/* Index of a tier name, or -1. */
extern int	ll_genesis_tier_index(const ll_genesis *g, const char *name, size_t len);
extern bool ll_genesis_find_member(const ll_genesis *g,
								   const uint8_t pubkey[LL_PUBKEY_LEN], ll_member *m);

/* ---- transaction batch ------------------------------------------------ */

typedef enum ll_tx_kind
{
	LL_TX_ROWS = 1,
	LL_TX_ADD_MEMBER = 2,
	LL_TX_REMOVE_MEMBER = 3,
	LL_TX_DECLARE_TABLE = 4
} ll_tx_kind;

/* Builder state; fields are private.  See ll_batch_begin. */
typedef struct ll_batch_builder
{
	ll_buf	   *out;
	ll_buf	   *content;
	size_t		start;			/* batch offset in out */
	size_t		ntx_pos;
	size_t		nrows_pos;		/* nrows of the open rows tx */
	size_t		max_len;
	uint32_t	ntx;
	uint32_t	tx_rows;		/* rows in the open rows tx */
	uint32_t	rows;			/* rows in the batch */
	bool		in_rows;
	int			err;			/* first error; sticky */
} ll_batch_builder;

/*
 * Start a batch appended to out.  content is caller-owned scratch (reset
 * here, freed by the caller like any ll_buf) holding the content section
 * until ll_batch_finish.  The finished batch may not exceed max_len.
 * Every call returns the builder's first error, so checking finish is enough.
 */
extern int	ll_batch_begin(ll_batch_builder *b, ll_buf *out, ll_buf *content,
						   size_t max_len, const uint8_t chain_id[LL_HASH_LEN],
						   const uint8_t origin[LL_PUBKEY_LEN],
						   uint64_t batch_seq, int64_t time_us);
extern int	ll_batch_add_rows_tx(ll_batch_builder *b, uint64_t txid);
/*
 * A row of the open rows tx with its content, a whole entry (required;
 * not an entry -> FIELD): entry_id and table are taken from it.
 * commitment NULL = ll_leaf_hash(content); if given it must match
 * (COMMITMENT).
 */
extern int	ll_batch_add_row(ll_batch_builder *b, uint8_t tier_index,
							 const uint8_t commitment[LL_HASH_LEN],
							 const uint8_t *content, size_t content_len);
/* A row of the open rows tx whose content the builder does not have. */
extern int	ll_batch_add_withheld_row(ll_batch_builder *b, uint8_t tier_index,
									  uint64_t entry_id, ll_wire_str table,
									  const uint8_t commitment[LL_HASH_LEN]);
extern int	ll_batch_add_member_tx(ll_batch_builder *b, uint64_t txid,
								   const uint8_t pubkey[LL_PUBKEY_LEN],
								   ll_wire_str name, ll_wire_str tier);
extern int	ll_batch_remove_member_tx(ll_batch_builder *b, uint64_t txid,
									  const uint8_t pubkey[LL_PUBKEY_LEN]);
extern int	ll_batch_declare_table_tx(ll_batch_builder *b, uint64_t txid, ll_wire_str table,
									  const uint8_t fingerprint[LL_HASH_LEN]);
/* Sign and complete; on error out is back to its length at begin. */
extern int	ll_batch_finish(ll_batch_builder *b, ll_sign_fn sign, void *sign_ctx,
							uint8_t batch_hash[LL_HASH_LEN]);

/*
 * A decoded batch: signature verified, and every present content matches
 * its row's commitment, entry_id and table.
 */
typedef struct ll_batch
{
	const uint8_t *chain_id;
	const uint8_t *origin;
	uint64_t	batch_seq;
	int64_t		time_us;
	uint32_t	ntx;
	uint32_t	nrows;
	uint8_t		batch_hash[LL_HASH_LEN];
	const uint8_t *sig;
	const uint8_t *txs;			/* tx list ... */
	size_t		txs_len;
	const uint8_t *content;		/* content section ... */
	size_t		content_len;
	const uint8_t *bytes;		/* whole batch */
	size_t		len;
} ll_batch;

/*
 * Decode and verify a batch of at most max_len bytes.  verify is called
 * once, with the origin pubkey and the 32-byte batch_hash.
 */
extern int	ll_batch_decode(const uint8_t *in, size_t len, size_t max_len,
							ll_verify_fn verify, void *verify_ctx, ll_batch *b);

typedef struct ll_tx
{
	uint8_t		kind;			/* ll_tx_kind */
	uint64_t	txid;
	uint32_t	nrows;			/* LL_TX_ROWS */
	const uint8_t *pubkey;		/* LL_TX_ADD_MEMBER, LL_TX_REMOVE_MEMBER */
	ll_wire_str name;			/* LL_TX_ADD_MEMBER */
	ll_wire_str tier;			/* LL_TX_ADD_MEMBER */
	ll_wire_str table;			/* LL_TX_DECLARE_TABLE */
	const uint8_t *fingerprint; /* LL_TX_DECLARE_TABLE, LL_HASH_LEN bytes */
} ll_tx;

typedef struct ll_row
{
	uint8_t		tier_index;
	uint64_t	entry_id;		/* signed, so known even when withheld */
	ll_wire_str table;
	const uint8_t *commitment;
	const uint8_t *content;		/* NULL when withheld */
	size_t		content_len;
} ll_row;

typedef struct ll_batch_iter
{
	const uint8_t *tx;			/* next unread byte of the tx list */
	const uint8_t *content;		/* next unread content entry */
	uint32_t	tx_left;
	uint32_t	rows_left;		/* of the current rows tx */
} ll_batch_iter;

/* Iterate a decoded batch: next_tx, then next_row until false (optional). */
extern void ll_batch_iter_init(ll_batch_iter *it, const ll_batch *b);
extern bool ll_batch_next_tx(ll_batch_iter *it, ll_tx *tx);
extern bool ll_batch_next_row(ll_batch_iter *it, ll_row *row);

/*
 * Append b with the content of rows whose tier_index > max_tier withheld
 * (max_tier -1 withholds all).  Signature and batch_hash stay valid.
 * out must not be the buffer b points into (growing it would move b).
 */
extern int	ll_batch_redact(const ll_batch *b, int max_tier, ll_buf *out);

/*
 * True when every row with tier_index <= max_tier has its content: a
 * recipient cleared up to max_tier got all it is entitled to (max_tier -1:
 * always true).
 */
extern bool ll_batch_complete_for(const ll_batch *b, int max_tier);
/*
 * Highest tier_index among rows that have content, -1 if none.  A sender
 * may skip ll_batch_redact when this is <= the recipient's clearance.
 */
extern int	ll_batch_top_tier(const ll_batch *b);

/* ---- consensus payload ------------------------------------------------ */

typedef struct ll_payload
{
	uint64_t	height;
	const uint8_t *prev_head;	/* LL_HASH_LEN bytes */
	int64_t		time_us;
	uint16_t	nbatches;
	const uint8_t *batch_hashes;	/* nbatches * LL_HASH_LEN bytes */
} ll_payload;

extern int	ll_payload_encode(ll_buf *out, const ll_payload *p);
extern int	ll_payload_decode(const uint8_t *in, size_t len, ll_payload *p);
/* The consensus value: SHA-256 of the payload, only if it decodes. */
extern int	ll_payload_value(const uint8_t *in, size_t len, uint8_t out[LL_HASH_LEN]);

/* ---- frames ----------------------------------------------------------- */

typedef enum ll_frame_kind
{
	LL_FRAME_CONSENSUS = 1,
	LL_FRAME_BATCH = 2,
	LL_FRAME_BATCH_REQ = 3,
	LL_FRAME_HELLO = 4,
	LL_FRAME_KEX = 5,			/* a worker's link key announcement */
	LL_FRAME_AUTH = 6			/* MAC over the frames before it; last */
} ll_frame_kind;

typedef struct ll_frame
{
	uint8_t		kind;
	const uint8_t *body;
	size_t		len;
} ll_frame;

typedef struct ll_frame_iter
{
	const uint8_t *p;
	size_t		len;
	size_t		pos;
	int			err;			/* sticky */
} ll_frame_iter;

extern int	ll_frame_append(ll_buf *out, uint8_t kind, const uint8_t *body, size_t len);
/*
 * Build a body in place: mark = ll_frame_begin(out, kind), append the body
 * to out (e.g. with the batch builder), then ll_frame_end(out, mark).
 */
extern size_t ll_frame_begin(ll_buf *out, uint8_t kind);
extern int	ll_frame_end(ll_buf *out, size_t mark);
extern void ll_frame_iter_init(ll_frame_iter *it, const uint8_t *in, size_t len);
/* 1 = *f filled, 0 = clean end, < 0 = error (and every later call). */
extern int	ll_frame_next(ll_frame_iter *it, ll_frame *f);

/*
 * A hello tells who is alive, at which height and on which genesis.  It is
 * signed by the sender's node key: ledger.deliver() takes the sender's key
 * as its caller's word, and an unsigned hello let any peer login mark two
 * members as on another genesis in each other's eyes, cutting them apart.
 * (epoch, seq) grows with every hello of a sender, so old ones cannot be
 * replayed.
 */
typedef struct ll_hello
{
	const uint8_t *chain_id;	/* LL_HASH_LEN bytes */
	uint64_t	height;
	ll_wire_str name;
	uint64_t	epoch;			/* the sender's worker start */
	uint64_t	seq;			/* its hellos since then */
	const uint8_t *sig;			/* LL_SIG_LEN bytes */
} ll_hello;

/* Bodies of frames 3 and 4 (append only the body, see ll_frame_begin). */
extern int	ll_batch_req_encode(ll_buf *out, const uint8_t *hashes, uint16_t n);
extern int	ll_batch_req_decode(const uint8_t *in, size_t len, uint16_t *n,
								const uint8_t **hashes);
extern int	ll_hello_encode(ll_buf *out, const ll_hello *h);
extern int	ll_hello_decode(const uint8_t *in, size_t len, ll_hello *h);
/*
 * "llhello2" | sender[32] | str channel | the body without its signature.
 * The channel's name: one server's key signs the hellos of all its
 * channels, and a hello relayed to another channel must not verify there
 * (it would be taken as that member's genesis mismatch).
 */
extern int	ll_hello_sign_bytes(ll_buf *out, const uint8_t sender[32], ll_wire_str channel,
								const ll_hello *h);

/*
 * Frame 5: a worker's X25519 key for link MACs (see bft_link_key), with the
 * epoch it was made at (a later one replaces it) and the node's Ed25519
 * signature over ll_kex_sign_bytes.  Frame 6: the sender's call number
 * under the link key (8 bytes, big-endian) and LL_HASH_LEN bytes of MAC.
 */
#define LL_KEX_LEN (32 + 8 + LL_SIG_LEN)
#define LL_KEX_SIGN_LEN (8 + LL_HASH_LEN + 32 + 32 + 8)

typedef struct ll_kex
{
	const uint8_t *xpub;		/* 32 bytes */
	uint64_t	epoch;
	const uint8_t *sig;
} ll_kex;

extern int	ll_kex_encode(ll_buf *out, const uint8_t xpub[32], uint64_t epoch,
						  const uint8_t sig[LL_SIG_LEN]);
extern int	ll_kex_decode(const uint8_t *in, size_t len, ll_kex *k);
extern void ll_kex_sign_bytes(const uint8_t chain_id[LL_HASH_LEN], const uint8_t node[32],
							  const uint8_t xpub[32], uint64_t epoch,
							  uint8_t out[LL_KEX_SIGN_LEN]);
#define LL_AUTH_LEN (8 + LL_HASH_LEN)
/* An AUTH frame's body for call number seq and its MAC. */
extern void ll_auth_encode(uint64_t seq, const uint8_t mac[LL_HASH_LEN],
						   uint8_t out[LL_AUTH_LEN]);
/*
 * The MAC of a frame run: the bytes before a final, well-formed AUTH frame
 * are covered (*covered = their length), *seq is its call number and *mac
 * points at its MAC.  False if the run does not end in one.
 */
extern bool ll_frames_auth(const uint8_t *in, size_t len, size_t *covered,
						   uint64_t *seq, const uint8_t **mac);

#endif							/* LL_WIRE_H */
