/*
 * consensus_int.h
 *		The consensus worker's state and the helpers its files share
 *		(consensus.c drives the core; consensus_state.c keeps its durable
 *		state; member_changes.c proposes membership changes; catchup.c
 *		fetches decided blocks from peers).  Private to the worker:
 *		backends never include it.
 */
#ifndef LL_CONSENSUS_INT_H
#define LL_CONSENSUS_INT_H

#include "postgres.h"

#include "utils/timestamp.h"

#include "bft.h"
#include "chain.h"
#include "consensus.h"
#include "ll_wire.h"
#include "membership.h"
#include "transport.h"

#define IDLE_PROPOSE_MS 250		/* an empty block keeps rounds short */
#define PACE_SAMPLES 15			/* proposal delays kept per member */
#define HELLO_MS 1000
#define MAX_TIMERS 256
#define MAX_BATCH_BYTES LL_TX_MAX_BYTES
#define CATCHUP_CHUNK 64

/* What this node knows at run time of a member (same index as W.ms.m). */
typedef struct Member
{
	char	   *name;			/* points into W.ms */
	uint8	   *pub;
	LLLink	   *link;			/* NULL for this node or without conninfo */
	bool		mismatch;		/* different genesis: ignored */
	int64		height;			/* from its hello */
	TimestampTz last_contact;
	uint64		kex_epoch;		/* of its link key announcement in use */
	uint64		hello_epoch;	/* of its last hello taken: later ones only */
	uint64		hello_seq;
	uint8		kex_x[32];
	uint64		mac_batches;	/* its batches taken on the link MAC */
	uint64		mac_seq;		/* number of its last call taken under the link key */
	uint64		calls_replayed; /* calls refused for a number already taken */
	bool		mac_seen;		/* a call under the current link key checked out */
	bool		mac_distrusted; /* signed a batch badly under its MAC: check all */
	TimestampTz catchup_rest_until; /* gave nothing to catch up from: not asked until */
	int			catchup_rest_ms;
	uint32		strikes;		/* its turns to propose are paced while > 0 */
	char		last_strike;	/* 'l'ate, 'i'nvalid or 'm'issed (see pace_ms) */
	uint32		delay_ms[PACE_SAMPLES]; /* of its last proposals judged */
	int			ndelays;
	int			next_delay;
} Member;

typedef struct MemBatch
{
	uint8		hash[32];		/* key */
	uint8	   *bytes;
	size_t		len;
	bool		committed;
	int			complete_to;	/* has every row's content up to this tier */
	uint64		arrival;
	uint64		height;			/* decided at, when committed */
	bool		unchecked;		/* taken on a link MAC, signature not checked */
	bool		screened;		/* looked up in ledger.batch: not decided before */
	TimestampTz answered_at;	/* answers to requests since then ... */
	uint64		answered_to;	/* ... went to these members (bits) */
} MemBatch;

typedef struct Timer
{
	uint64		due_ms;
	bft_timer	t;
} Timer;

typedef struct ConsWorker
{
	int			slot_no;
	LLConsSlot *slot;
	int32		channel_id;
	char	   *channel;
	int			ntiers;
	char	  **tiers;
	uint8		chain_id[32];
	LLMembership ms;			/* members and votes (membership.c) */
	bool		asked[LL_MAX_PEERS];	/* not admitted, asked for here */
	bool		withdrawn[LL_MAX_PEERS];	/* ...and that request withdrawn */
	int			nmembers;
	Member		members[LL_MAX_PEERS];
	int			self;			/* member index, -1 if not a member */
	uint64		members_decided;	/* last height counted by ll_members_decide */
	uint64		clearance_changed_at;	/* height that changed this node's clearance */
	int			clearance_before;	/* its clearance before that height's change */
	TimestampTz last_refresh;
	uint8		self_pub[32];
	bft_ed25519_key *key;
	bft_x25519_key *xkey;		/* this run's half of every link key */
	uint8		xpub[32];
	uint64		kex_epoch;
	uint64		hello_seq;		/* hellos sent this run */
	uint64		hellos_rejected;	/* forged or replayed, counted as rejected */
	uint64		proposals_altered;	/* payload not the one signed: rejected */
	const uint8 *link_sender;	/* node whose link MAC covers the frames at hand */
	const uint8 *certified;		/* batch hashes of a certified payload at hand */
	int			ncertified;
	uint64		batches_by_mac; /* batches taken on a link MAC, not a signature */
	bft_valset	valset;
	bft_node   *node;
	void	   *node_mem;
	bft_output *out;
	bft_config	cfg;
	uint64		next_height;	/* next consensus height to decide */
	LLApply		apply;
	HTAB	   *mempool;
	uint8	   *pending;		/* uncommitted batch hashes, arrival order */
	int			npending;
	TimestampTz pending_since;	/* since when npending > 0 */
	int			pending_cap;
	uint64		arrivals;
	uint64		batch_seq;
	Timer		timers[MAX_TIMERS];
	int			ntimers;
	bool		want_block;
	bool		retiring;		/* removed: stop once the last messages are out */
	uint64		want_height;
	TimestampTz want_since;
	TimestampTz last_hello;
	TimestampTz last_progress;
	char	   *inbox_buf;
	char	   *txq_buf;
	int			state_fd;
	uint64		state_seq;
	bool		need_restart;
	int			disclosed_for;	/* clearance the redacted entries were checked for */
	int64	   *disclose;		/* consensus heights with entries to fill in */
	int			ndisclose;
	int			disclose_pos;
	int			disclose_tries; /* members asked for the block at disclose_pos */
	TimestampTz last_disclose;
	int			disclose_rest_ms;	/* between fetches: doubles while none is complete */
} ConsWorker;

/*
 * Not exported from loopledger.so: PostgreSQL loads libraries with
 * RTLD_GLOBAL, and names this plain could bind to another library's.
 */
#pragma GCC visibility push(hidden)

/* One worker per process: its state, W for short in the worker's files. */
extern ConsWorker ll_cons_worker;
#define W ll_cons_worker

/* A signed read token as three text parameters: requester, at_ms, sig. */
typedef struct ReadToken
{
	char		req[2 + 64 + 1];
	char		at[24];
	char		sig[2 + 128 + 1];
} ReadToken;

/* consensus.c */
extern uint64 now_ms(void);
extern int64 now_unix_us(void);
extern bool mempool_add(const uint8 *hash, const uint8 *bytes, size_t len);
extern int	own_clearance(void);
extern int	member_of(const uint8 *pub);
extern bool batch_ok(const uint8 *bytes, size_t len, ll_batch *b);
extern void make_read_token(ReadToken *t, const uint8 *audience);
extern void apply_payload(uint64 height, const uint8 *payload, size_t plen, const bft_cert *cert);
extern void start_core(void);
extern void attach_member(int i);
extern int	cb_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64]);
extern void compute_chain_id(void);
extern bool link_answering(LLLink *l);
extern void send_frame(int to, uint8 kind, const uint8 *body, size_t len);

/* consensus_state.c */
extern void state_open(void);
extern uint64 next_epoch(void);
extern bool state_load(bft_persist *st);
extern int	cb_persist(void *ctx, const bft_persist *st);

/* member_changes.c */
extern void membership_round(void);

/* catchup.c */
extern void maybe_catch_up(void);
extern void disclosure_round(void);

#pragma GCC visibility pop

#endif
