/*
 * consensus.h
 *		Shared state of multi-peer channels: one consensus worker per
 *		channel, the messages peers hand it and the transactions local
 *		backends wait on.
 *
 * A committing backend never talks to the network: it puts its rows in the
 * channel's transaction queue and waits on its own latch; the channel's
 * worker batches queued transactions, runs consensus with the peers and
 * tells each backend, in the agreed order, to commit (GO) or to fail
 * (REJECTED).  Peers' messages arrive through ledger.deliver(), which
 * copies them into the channel's inbox and wakes the worker.
 */
#ifndef LL_CONSENSUS_H
#define LL_CONSENSUS_H

#include "postgres.h"

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "membership_core.h"

#define LL_MAX_CONS 4			/* channels with peers per server */
#define LL_INBOX_SIZE (17 * 1024 * 1024)
#define LL_TXQ_SIZE (8 * 1024 * 1024)
/* One transaction's batch must stay under what peers decode (consensus.c). */
#define LL_TX_MAX_BYTES (8 * 1024 * 1024)
/*
 * A ledger.deliver() call carries at most this many bytes of frames (a
 * lone bigger frame goes alone; none is, since batches stay under
 * LL_TX_MAX_BYTES).  A call enters a peer's inbox whole or not at all, so
 * the inbox holds two of the largest at once.  (Shared memory is only
 * backed as far as it is written.)
 */
#define LL_CALL_MAX_BYTES (LL_TX_MAX_BYTES + 16 * 1024)
StaticAssertDecl(2 * (LL_CALL_MAX_BYTES + 64 + 40) <= LL_INBOX_SIZE,
				 "the inbox must take two of the largest calls");
StaticAssertDecl(LL_TX_MAX_BYTES <= LL_TXQ_SIZE,
				 "the transaction queue must take the largest transaction");
#define LL_MSG_LEN 200

/* What ledger.peers shows about one peer, written by the worker. */
typedef struct LLPeerStatus
{
	char		name[NAMEDATALEN];
	char		state[32];
	char		message[LL_MSG_LEN];
	int64		height;			/* next height the peer decides */
	TimestampTz last_contact;
	double		rtt_ms;
	bool		link_key;		/* a link MAC key is agreed with the peer */
	uint64		mac_batches;	/* its batches taken on the link MAC */
	uint64		calls_replayed; /* its calls refused as played again */
} LLPeerStatus;

/* A byte queue: writers append records, the worker takes them all. */
typedef struct LLQueue
{
	uint32		used;
	uint32		dropped;		/* records refused for lack of room */
} LLQueue;

typedef struct LLConsSlot
{
	int32		channel_id;		/* 0: free */
	Oid			dboid;			/* database of the channel: ids repeat across them */
	bool		registered;		/* launcher has started a worker */
	slock_t		mutex;			/* protects pid, latch, status */
	pid_t		pid;
	Latch	   *latch;
	PGPROC	   *proc;
	pg_atomic_uint64 generation;	/* bumped at every worker start */
	/* consensus status for ledger.consensus_status */
	char		channel[NAMEDATALEN];
	int64		height;
	int32		round;
	int32		step;
	char		proposer[NAMEDATALEN];
	int32		validators;
	int32		quorum;
	int64		ledger_height;
	bool		is_validator;	/* this node votes at the current height */
	char		stopped;		/* 0, or the worker stopped for good: 'd' its copy
								 * diverged, 'r' this node was removed */
	/* the core's counters since the worker started (bft_stats) */
	int64		signs;
	int64		verifies;
	int64		parked;
	int64		rejected;
	/* why the last decided block failed to apply here; cleared once one applies */
	char		last_error[256];
	TimestampTz last_error_at;
	/* transaction being applied, for conflict detection (see capture.c) */
	pg_atomic_uint64 applying;	/* 0 or a running counter while inserting */
	int			npeers;
	LLPeerStatus peers[LL_MAX_PEERS];
	LWLock	   *lock;			/* protects the queues and the shares */
	LLQueue		inbox;
	LLQueue		txq;
	/* bytes each sender has in the inbox (ll_inbox_put), reset on take */
	int			inbox_nsenders;
	uint8		inbox_sender[LL_MAX_PEERS][32];
	uint32		inbox_sender_bytes[LL_MAX_PEERS];
} LLConsSlot;

/* What one sender may have in a worker's inbox: one call of the largest size. */
#define LL_SENDER_SHARE (LL_CALL_MAX_BYTES + 64 + 40)

/* Per-backend state of a transaction waiting for the consortium. */
typedef enum LLTxState
{
	LL_TX_IDLE = 0,
	LL_TX_SUBMITTED,			/* queued, waiting for its turn */
	LL_TX_GO,					/* its turn: commit now */
	LL_TX_REJECTED,				/* the agreed order refused it */
	LL_TX_COMMITTED,			/* backend committed after GO */
	LL_TX_ABORTED,				/* backend aborted after GO */
	LL_TX_SEEN,					/* worker saw the commit, goes on */
	LL_TX_ASYNC,				/* queued without waiting (sync commit off) */
	LL_TX_ASYNC_DONE,			/* ... and committed locally */
	LL_TX_FINAL					/* its block is applied locally */
} LLTxState;

/*
 * The handover of a local transaction between its backend (B) and the
 * channel's worker (W) runs on one word per backend, LLTxWait.state: the
 * LLTxState in its low 4 bits and, above them, the number of the
 * submission it belongs to.  Only B advances that number, once per
 * submission, before it writes the new txid (so a word read with a
 * matching txid, the word unchanged around the read, is that txid's), and
 * W changes the state only by compare-and-swap on the whole word it read:
 * a change meant for a transaction B has given up fails instead of landing
 * on B's next one.
 *
 *   B  (n-1, any)   -> (n, IDLE) -> (n, SUBMITTED | ASYNC)   new submission
 *   W  SUBMITTED    -> GO            its turn (give_turn); if the swap
 *                                    fails B gave up, and W inserts the
 *                                    rows from the batch like a peer's
 *   W  SUBMITTED    -> REJECTED      refused by the order (reject_local,
 *                                    refuse_tx); nothing to do if it fails
 *   B  SUBMITTED    -> IDLE          cancelled or failed before its turn
 *                                    (swap; on failure W just moved it)
 *   B  REJECTED     -> IDLE          after the error
 *   B  GO           -> COMMITTED     committed in its turn
 *   B  GO           -> ABORTED       failed in its turn: W inserts the
 *                                    rows from the batch
 *   B  ASYNC        -> ASYNC_DONE    committed without waiting
 *   B  ASYNC        -> ABORTED       its commit failed
 *   W  COMMITTED    -> SEEN          W goes on with the block
 *   W  SEEN         -> FINAL         the block is committed here
 * GO, ASYNC, COMMITTED (until W sees it) are left only by B or by W as
 * listed, so B may write those transitions plainly; W sees IDLE or any
 * other submission number after GO as "B is gone": committed if
 * ledger.txlog says so, else aborted.
 */
#define LL_TX_STATE_MASK 0xFu
#define LL_TX_STATE(word) ((LLTxState) ((word) & LL_TX_STATE_MASK))
#define LL_TX_WORD(word, st) (((word) & ~LL_TX_STATE_MASK) | (uint32) (st))
#define LL_TX_SAME_SUBMISSION(a, b) ((((a) ^ (b)) & ~LL_TX_STATE_MASK) == 0)

typedef struct LLTxWait
{
	pg_atomic_uint32 state;		/* submission number << 4 | LLTxState */
	int32		channel_id;
	int			pid;			/* backend that waits */
	uint64		txid;
	uint64		generation;
	int64		height;
	int32		position;
	bool		wake_seen;		/* returns once committed (synchronous_commit off) */
	char		message[LL_MSG_LEN];
} LLTxWait;

typedef struct LLConsShared
{
	LLConsSlot	slots[LL_MAX_CONS];
	int			nwaits;
	LLTxWait	waits[FLEXIBLE_ARRAY_MEMBER];	/* by pgprocno */
} LLConsShared;

extern LLConsShared *ll_cons;

/*
 * The state word of w if w holds txid, read so that the two belong to the
 * same submission; false otherwise.
 */
static inline bool
ll_tx_word_of(LLTxWait *w, uint64 txid, uint32 *word)
{
	uint32		before = pg_atomic_read_u32(&w->state);
	uint64		t;

	pg_read_barrier();
	t = w->txid;
	pg_read_barrier();
	if (t != txid || pg_atomic_read_u32(&w->state) != before)
		return false;
	*word = before;
	return true;
}

/* Move w from exactly word to state st; false when w changed meanwhile. */
static inline bool
ll_tx_swap(LLTxWait *w, uint32 word, LLTxState st)
{
	uint32		expected = word;

	return pg_atomic_compare_exchange_u32(&w->state, &expected, LL_TX_WORD(word, st));
}

extern Size ll_cons_shmem_size(void);
extern void ll_cons_shmem_init(void);
extern char *ll_cons_inbox(int slot);
extern char *ll_cons_txq(int slot);
extern LLConsSlot *ll_cons_slot_for(int32 channel_id);
extern int	ll_cons_reserve(int32 channel_id, const char *name);
extern bool ll_channel_is_multi_peer(int32 channel_id, const char *name);
extern int	ll_channel_min_clearance(int32 channel_id, char **tiers, int ntiers);
extern int	ll_node_clearance(int32 channel_id, char **tiers, int ntiers);
extern void ll_peers_changed(void);
extern void ll_peers_at_commit(void);
extern bool ll_queue_put(LLConsSlot *slot, bool inbox, const void *hdr, size_t hlen,
						 const void *data, size_t len);
extern Size ll_queue_take(LLConsSlot *slot, bool inbox, char *dst, Size cap);
extern const char *ll_inbox_put(LLConsSlot *slot, const uint8 *sender, const void *hdr,
								size_t hlen, const void *data, size_t len);

/* peer.c */
extern bool ll_load_node_key(uint8 seed[32], uint8 pub[32], bool create);
extern bool ll_channel_has_peers(int32 channel_id);
extern void ll_launch_consensus_workers(void);

/* apply.c: run one decided block on this node */
typedef struct LLApply
{
	int32		channel_id;
	const char *channel;
	uint8		self[32];
	LLConsSlot *slot;
	int			ntiers;
	char	  **tiers;
	int64		ledger_height;	/* in/out: local chain head */
	uint8		ledger_head[32];
	int			local_done;		/* local transactions finished by the block */
	int			self_clearance; /* tier index this node may see, -1 none */
	int			min_clearance;	/* lowest clearance of the members */
	bft_valset	valset;			/* validators of the height applied */
	uint64		kept_until;		/* batches kept for heights up to this one */
	/* called inside the block's transaction, before it commits */
	void		(*on_members) (void *arg, uint64 height);
} LLApply;

struct ll_batch;
extern void ll_apply_reset(void);
extern void ll_apply_decision(LLApply *a, uint64 height, int64 time_us,
							  const uint8 *decision, size_t dlen,
							  struct ll_batch *batches, int nbatches);
extern int	ll_apply_disclosed(LLApply *a, uint64 height,
							   struct ll_batch *batches, const bool *signed_ok,
							   int nbatches);

/* tabledef.c: the agreed definitions of a channel's ledger tables */
struct ll_batch_builder;
struct ll_tx;
struct LLTableInfo;
extern int	ll_tabledef_declare(int32 channel_id, const uint8 *self,
								struct ll_batch_builder *bb, uint8 *set);
extern void ll_tabledef_reset(void);
extern uint64 ll_tabledef_generation(void);
extern void ll_tabledef_vote(const LLApply *a, uint64 height, const uint8 *voter,
							 const struct ll_tx *tx);
extern void ll_tabledef_settle(const LLApply *a, uint64 height);
extern bool ll_tabledef_agreed(const LLApply *a, const char *table, size_t len, uint8 *fp);
extern bool ll_tabledef_matches(const LLApply *a, const char *table, Oid relid);
extern void ll_tabledef_check_insert(struct LLTableInfo *info);

/* submit.c: a committing backend and the consortium */
extern void ll_submit_and_wait(int n, const int32 *channel, const bool *multi,
							   const uint8 *packed, const uint8 *content,
							   const Size *content_off, bool async);
extern void ll_submit_after_commit(void);
extern void ll_submit_wait_final(void);
extern void ll_submit_after_abort(void);

/* fault.c: test build only */
#ifdef LL_FAULT_INJECTION
typedef int (*ll_fault_sign_fn) (const uint8 *msg, size_t len, uint8 sig[64]);
typedef void (*ll_fault_emit_fn) (int to, uint8 kind, const uint8 *body, size_t len);
extern char *ll_fault;
extern void ll_fault_define_guc(void);
extern bool ll_fault_active(void);
extern bool ll_fault_consensus(int to, const uint8 *msg, size_t len, const uint8 *chain_id,
							   ll_fault_sign_fn sign, ll_fault_emit_fn emit);
extern void ll_fault_release(ll_fault_emit_fn emit);
extern long ll_fault_next_ms(void);
extern bool ll_fault_batch(uint8 *batch, size_t len);
extern bool ll_fault_withhold(void);
extern bool ll_fault_alter(void);
extern bool ll_fault_misdeclare(void);
extern uint64 ll_fault_hello_height(uint64 height);
extern int	ll_fault_hello_period(int ms);
extern void ll_fault_spoof_hellos(void (*spoof) (void));
extern void ll_fault_rebatch(void (*rebatch) (void));
extern void ll_fault_stall(void);
extern void ll_fault_crash_point(void);
extern void ll_fault_apply_point(const char *point);
extern bool ll_fault_armed_point(const char *point);
#endif

/*
 * Read token: a peer that fetches decided blocks or batches signs
 * "LLQ2" | chain_id | its pubkey | the serving member's pubkey | u64 unix
 * ms, so the member serving it knows whose clearance to redact the batches
 * to (redact.c).  Naming the server keeps a member that receives a token
 * from using it at another member.  Tokens are accepted for
 * LL_READ_TOKEN_MS either way of the server's clock.
 */
#define LL_READ_TOKEN_LEN (4 + 32 + 32 + 32 + 8)
#define LL_READ_TOKEN_MS (5 * 60 * 1000)

static inline void
ll_read_token_msg(uint8 out[LL_READ_TOKEN_LEN], const uint8 chain_id[32],
				  const uint8 requester[32], const uint8 audience[32], uint64 at_ms)
{
	int			i;

	memcpy(out, "LLQ2", 4);
	memcpy(out + 4, chain_id, 32);
	memcpy(out + 36, requester, 32);
	memcpy(out + 68, audience, 32);
	for (i = 0; i < 8; i++)
		out[100 + i] = (uint8) (at_ms >> (56 - 8 * i));
}

/* peer.c */
extern Datum ll_genesis_hash_sql(PG_FUNCTION_ARGS);

/* consensus.c */
extern PGDLLEXPORT void ll_consensus_main(Datum main_arg);

/* Queued transaction record header (capture.c -> worker). */
typedef struct LLTxHeader
{
	uint32		len;			/* bytes after this header */
	int32		procno;			/* of the waiting backend, or LL_TX_RESUBMITTED */
	int32		channel_id;		/* queued for: the slot may serve another now */
	uint64		txid;
	uint64		generation;
} LLTxHeader;

/* Queued again by a starting worker (resubmit.c): no backend waits. */
#define LL_TX_RESUBMITTED (-1)

extern int	ll_resubmit_pending(LLConsSlot *slot, int32 channel_id, const char *channel,
								const uint8 *self);
extern void ll_fault_txq_point(void);
extern void ll_fault_async_point(void);

#endif							/* LL_CONSENSUS_H */
