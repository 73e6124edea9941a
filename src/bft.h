/*
 * bft.h
 *		Tendermint-style BFT consensus core for loopledger (pure C).
 *
 * This library includes no PostgreSQL header and does no I/O: no threads,
 * no sockets, no clock, no malloc.  The caller owns one bft_node per local
 * validator (bft_node_size() bytes, any allocator) and one bft_output.
 *
 * PROTOCOL.  "The latest gossip on BFT consensus" (Buchman, Kwon,
 * Milosevic 2018), Algorithm 1: heights and rounds, proposer
 * valset[(height + round) % n], PROPOSE / PREVOTE / PRECOMMIT, lockedValue/
 * lockedRound and validValue/validRound, quorum = more than 2/3 of the
 * voting power (2f+1 of n = 3f+1 equal validators), f+1 power of messages
 * from a higher round makes a node skip to it, timeouts grow linearly with
 * the round.  A proposal that re-proposes a validValue (validRound >= 0)
 * carries the 2f+1 signed prevotes of that round ("POL") so a receiver
 * never depends on old votes it may have missed.  Values are 32-byte block
 * hashes; payloads are opaque, hashed by the value_of callback and judged
 * by the validate callback.  The proposer signs the value, not the payload
 * or the POL, so anyone relaying a proposal can alter those: a copy whose
 * payload does not hash to the signed value is not the proposer's and is
 * dropped, so the genuine copy still counts when it comes, and a kept copy
 * that lacks its POL takes the POL of a later copy.
 *
 * EVENT / OUTPUT CONTRACT.  bft_step(node, ev, out) is the only entry
 * point that changes a node.  It is deterministic: the same sequence of
 * events (including callback results) gives the same outputs.  Time only
 * enters through ev->now_ms.  bft_step resets *out, then fills it; the
 * caller MUST act on it in this order before calling bft_step again:
 *	 1. store out->commit (block, payload and certificate) if has_commit;
 *	 2. make every bft_persist record handed to the persist callback during
 *		this step durable (if the callback is not itself durable);
 *	 3. send out->msgs[i] in order (to == BFT_TO_ALL: every peer);
 *	 4. arm out->timers[i]: after delay_ms, feed a BFT_EV_TIMEOUT event
 *		echoing kind/height/round (stale timers are ignored, so timers need
 *		never be cancelled);
 *	 5. if want_block: build a block for want_block_height and feed it as a
 *		BFT_EV_BLOCK event (the block for one height may be fed once and is
 *		reused for later rounds);
 *	 6. record out->evidence (equivocation proofs) if any.
 * Pointers inside *out stay valid until the next bft_step on that node.
 *
 * PERSISTENCE RULE.  Before the core signs any proposal or vote it calls
 * persist() with what it is about to sign (height, round, step, value, and
 * its lock).  If persist fails nothing is signed.  Because messages only
 * leave through *out, and the caller makes the record durable before
 * sending (step 2), a message that was sent was always persisted first.
 * After a crash, restart the node with BFT_EV_START carrying the last
 * durable record: the core never signs anything at a (height, round, step)
 * lower than that record, nor a different value at the same one, so an
 * honest node never double-signs, whatever was lost.  A durable persist
 * callback may leave a record of height h + 1 with the commit of h lost;
 * the node then restarts at h and, once it decides h again, resumes h + 1
 * from that record, lock included.
 *
 * VALIDATOR SET CHANGES.  When block h commits, the core calls
 * valset_change(height h, payload); if it returns true, the set it filled
 * becomes the validator set from height h + BFT_VALSET_DELAY on.  Every
 * honest node commits the same payload at h, so every node switches at the
 * same height.  On restart the caller passes the set for the start height
 * and the changes still pending (from the last BFT_VALSET_DELAY blocks).
 * A node whose public key is not in the current set follows the chain as an
 * observer and never signs.
 *
 * GOSSIP.  Votes are sent once; to survive loss, a node whose height takes
 * longer than gossip_ms re-sends STATUS and its own votes of the current
 * and previous round, and answers a STATUS of a lower round with its votes
 * of that round.  Messages of height + 1 are buffered (one proposal, one
 * vote per validator and type), each checked against the validator set of
 * height + 1 before it takes a place, so forgeries cannot crowd out the
 * genuine messages.
 *
 * CATCH-UP.  Nodes send STATUS (height, round) when a height takes long;
 * a peer that is ahead answers a BLOCK_REQUEST with the committed block and
 * its commit certificate (from load_block); the node verifies the
 * certificate against its validator set and the payload with value_of and
 * validate before committing it, then asks for the next height.  A node
 * that sees a quorum of precommits for a value it has no valid payload for
 * asks for the block the same way.
 *
 * EVIDENCE.  Two validly signed votes by one validator for the same height,
 * round and vote type with different values are reported in out->evidence;
 * bft_evidence_verify() lets anyone check one.
 *
 * WIRE FORMAT (bft_wire.c), all integers big-endian:
 *	 u8 version (1) | u8 type | u32 body_len | body
 * The decoder is strict: it rejects unknown versions and types, truncation,
 * trailing bytes, oversize payloads and lists, non-canonical booleans and
 * unsorted or duplicate signer lists.
 */
#ifndef BFT_H
#define BFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef BFT_MAX_VALIDATORS
#define BFT_MAX_VALIDATORS 64	/* bitmasks are uint64_t: do not raise */
#endif
#ifndef BFT_MAX_PAYLOAD
#define BFT_MAX_PAYLOAD 4096	/* block header bytes carried in a proposal */
#endif
#define BFT_HASH_LEN 32
#define BFT_PUBKEY_LEN 32
#define BFT_SIG_LEN 64
#define BFT_VALSET_DELAY 2		/* change in block h is active from h + 2 */
#define BFT_WIRE_VERSION 1
#define BFT_WIRE_HDR 6
/* Largest encoded message: a proposal or block response with full lists. */
#define BFT_MAX_MSG (BFT_WIRE_HDR + 64 + BFT_MAX_PAYLOAD + \
					 BFT_MAX_VALIDATORS * (2 + BFT_SIG_LEN) + BFT_SIG_LEN)
#define BFT_SIGN_BYTES_LEN 88	/* see bft_sign_bytes() */

#define BFT_MAX_OUT_MSGS 24
#define BFT_OUT_BUF (4 * BFT_MAX_MSG)
#define BFT_MAX_OUT_TIMERS 8
#define BFT_MAX_OUT_EVIDENCE 4

#define BFT_TO_ALL UINT32_MAX
#define BFT_NO_PEER UINT32_MAX

/* Message types on the wire; also vote types and steps (see below). */
typedef enum bft_msg_type
{
	BFT_MSG_PROPOSAL = 1,
	BFT_MSG_PREVOTE = 2,
	BFT_MSG_PRECOMMIT = 3,
	BFT_MSG_STATUS = 4,
	BFT_MSG_BLOCK_REQ = 5,
	BFT_MSG_BLOCK_RESP = 6
} bft_msg_type;

/* Steps within a round; the numbers order signing (see persistence rule). */
typedef enum bft_step_kind
{
	BFT_STEP_PROPOSE = 1,
	BFT_STEP_PREVOTE = 2,
	BFT_STEP_PRECOMMIT = 3
} bft_step_kind;

/* Error codes (negative) returned by decoders and verifiers. */
typedef enum bft_err
{
	BFT_OK = 0,
	BFT_ERR_TRUNCATED = -1,
	BFT_ERR_TRAILING = -2,
	BFT_ERR_VERSION = -3,
	BFT_ERR_TYPE = -4,
	BFT_ERR_OVERSIZE = -5,
	BFT_ERR_FIELD = -6,			/* non-canonical or out-of-range field */
	BFT_ERR_SIGNER = -7,		/* signer unknown, unsorted or duplicate */
	BFT_ERR_SIG = -8,			/* a signature does not verify */
	BFT_ERR_QUORUM = -9,		/* not enough voting power */
	BFT_ERR_SPACE = -10,		/* output buffer too small */
	BFT_ERR_VALSET = -11		/* malformed validator set */
} bft_err;

typedef struct bft_validator
{
	uint8_t		pubkey[BFT_PUBKEY_LEN];
	uint64_t	power;			/* > 0; total must stay below 2^60 */
} bft_validator;

typedef struct bft_valset
{
	uint32_t	n;				/* 1 .. BFT_MAX_VALIDATORS */
	bft_validator v[BFT_MAX_VALIDATORS];
} bft_valset;

/* One signer in a certificate or POL list: index into the valset. */
typedef struct bft_signer
{
	uint16_t	validator;
	uint8_t		sig[BFT_SIG_LEN];
} bft_signer;

typedef struct bft_vote
{
	uint8_t		type;			/* BFT_MSG_PREVOTE or BFT_MSG_PRECOMMIT */
	bool		is_nil;
	uint16_t	validator;
	uint32_t	round;
	uint64_t	height;
	uint8_t		value[BFT_HASH_LEN];	/* all zero when is_nil */
	uint8_t		sig[BFT_SIG_LEN];
} bft_vote;

/*
 * Commit certificate: precommits for (height, round, value) by signers
 * whose power is a quorum of the validator set of that height.  Signers are
 * sorted by validator index.
 */
typedef struct bft_cert
{
	uint64_t	height;
	uint32_t	round;
	uint8_t		value[BFT_HASH_LEN];
	uint16_t	nsigs;
	bft_signer	sigs[BFT_MAX_VALIDATORS];
} bft_cert;

typedef struct bft_proposal
{
	uint64_t	height;
	uint32_t	round;
	int32_t		valid_round;	/* -1, or the POL round < round */
	uint16_t	proposer;
	uint8_t		value[BFT_HASH_LEN];
	uint32_t	payload_len;
	const uint8_t *payload;		/* decode: points into the input bytes */
	uint16_t	npol;			/* prevotes for (valid_round, value) */
	bft_signer	pol[BFT_MAX_VALIDATORS];
	uint8_t		sig[BFT_SIG_LEN];
} bft_proposal;

typedef struct bft_status
{
	uint64_t	height;
	uint32_t	round;
	uint16_t	validator;		/* advisory; STATUS is not signed */
} bft_status;

typedef struct bft_block_req
{
	uint64_t	height;
} bft_block_req;

typedef struct bft_block_resp
{
	uint32_t	payload_len;
	const uint8_t *payload;
	bft_cert	cert;			/* cert.height is the block's height */
} bft_block_resp;

typedef struct bft_msg
{
	uint8_t		type;			/* bft_msg_type */
	union
	{
		bft_proposal proposal;
		bft_vote	vote;
		bft_status	status;
		bft_block_req req;
		bft_block_resp resp;
	}			u;
} bft_msg;

/*
 * What must be durable before anything signed in the same step is sent.
 * last_* describe the most recent message this node signed.
 */
typedef struct bft_persist
{
	uint64_t	height;
	uint32_t	round;
	uint8_t		step;			/* bft_step_kind of the last signature */
	int32_t		locked_round;
	uint8_t		locked_value[BFT_HASH_LEN];
	uint8_t		last_type;		/* bft_msg_type, 0 if none this height */
	uint32_t	last_round;
	bool		last_nil;
	int32_t		last_valid_round;
	uint8_t		last_value[BFT_HASH_LEN];
	uint8_t		last_sig[BFT_SIG_LEN];
	/*
	 * Latest prevote and precommit of this height ([0] and [1]), so that a
	 * restarted node can re-send them: a peer still waiting in that round
	 * may need exactly that vote.
	 */
	bool		has_vote[2];
	uint32_t	vote_round[2];
	bool		vote_nil[2];
	uint8_t		vote_value[2][BFT_HASH_LEN];
	uint8_t		vote_sig[2][BFT_SIG_LEN];
	/*
	 * validValue with its payload and POL: after a restart this node can
	 * still re-propose it, which is what unlocks peers locked on older
	 * rounds (without it, honest nodes locked on different values after
	 * crashes could wait forever).
	 */
	int32_t		valid_round;
	uint8_t		valid_value[BFT_HASH_LEN];
	uint32_t	valid_len;
	uint8_t		valid_payload[BFT_MAX_PAYLOAD];
	uint16_t	valid_npol;
	bft_signer	valid_pol[BFT_MAX_VALIDATORS];
} bft_persist;

typedef struct bft_pending_valset
{
	uint64_t	height;			/* first height this set is active */
	bft_valset	set;
} bft_pending_valset;

/* Callbacks; ctx is passed back verbatim.  All must be deterministic. */
typedef struct bft_callbacks
{
	void	   *ctx;
	/* Sign msg with this node's key.  Return 0 on success. */
	int			(*sign) (void *ctx, const uint8_t *msg, size_t len,
						 uint8_t sig[BFT_SIG_LEN]);
	/* True iff sig is pubkey's signature of msg. */
	bool		(*verify) (void *ctx, const uint8_t pubkey[BFT_PUBKEY_LEN],
						   const uint8_t *msg, size_t len,
						   const uint8_t sig[BFT_SIG_LEN]);
	/*
	 * Fill value with the block hash of payload; false if it has none (the
	 * core never hashes payloads itself).  Must depend on the bytes alone:
	 * a proposal whose payload's value is not the signed one is dropped as
	 * a relay's forgery, so a verdict that changed with the caller's state
	 * could drop the proposer's own.  Validity that depends on state
	 * belongs in validate.
	 */
	bool		(*value_of) (void *ctx, const uint8_t *payload, size_t len,
							 uint8_t value[BFT_HASH_LEN]);
	/*
	 * True iff payload is a valid block for height.  Only called for a
	 * payload whose value_of is value.  A proposal of the next height that
	 * arrived early is validated while the core decides the height before,
	 * in the same step, before the caller has seen that commit: a caller
	 * whose validity depends on the block before must hold such proposals
	 * back until it has applied it (consensus.c does).
	 */
	bool		(*validate) (void *ctx, uint64_t height,
							 const uint8_t value[BFT_HASH_LEN],
							 const uint8_t *payload, size_t len);
	/* Record st (see persistence rule).  Return 0 on success. */
	int			(*persist) (void *ctx, const bft_persist *st);
	/*
	 * Committed block at height (< current height) for catch-up: set
	 * *payload (valid until the next callback), *len and *cert.  False if
	 * unknown.  May be NULL (the node then never serves catch-up).
	 */
	bool		(*load_block) (void *ctx, uint64_t height,
							   const uint8_t **payload, uint32_t *len,
							   bft_cert *cert);
	/*
	 * Called once per committed block: true (and *next filled) if the block
	 * decides a new validator set.  May be NULL (fixed set).
	 */
	bool		(*valset_change) (void *ctx, uint64_t height,
								  const uint8_t *payload, size_t len,
								  bft_valset *next);
} bft_callbacks;

typedef struct bft_config
{
	uint8_t		chain_id[BFT_HASH_LEN];	/* domain-separates signatures */
	uint8_t		self_pubkey[BFT_PUBKEY_LEN];
	uint32_t	timeout_propose_ms;
	uint32_t	timeout_prevote_ms;
	uint32_t	timeout_precommit_ms;
	uint32_t	timeout_delta_ms;	/* added per round to each timeout */
	uint32_t	gossip_ms;		/* status/rebroadcast period when stuck */
	bft_callbacks cb;
} bft_config;

typedef enum bft_event_kind
{
	BFT_EV_START = 1,			/* first start or restart */
	BFT_EV_MSG = 2,				/* wire bytes from a peer */
	BFT_EV_TIMEOUT = 3,			/* a timer from out->timers fired */
	BFT_EV_BLOCK = 4			/* the block asked for by want_block */
} bft_event_kind;

typedef enum bft_timer_kind
{
	BFT_TIMER_PROPOSE = 1,
	BFT_TIMER_PREVOTE = 2,
	BFT_TIMER_PRECOMMIT = 3,
	BFT_TIMER_GOSSIP = 4
} bft_timer_kind;

typedef struct bft_start
{
	uint64_t	height;			/* next height to decide (last commit + 1) */
	bft_valset	valset;			/* validator set of that height */
	uint32_t	npending;
	bft_pending_valset pending[BFT_VALSET_DELAY];
	bool		has_persist;
	bft_persist persist;		/* last durable record, if any */
} bft_start;

typedef struct bft_event
{
	uint8_t		kind;			/* bft_event_kind */
	uint64_t	now_ms;
	union
	{
		const bft_start *start;
		struct
		{
			uint32_t	peer;	/* opaque caller id, echoed in replies */
			const uint8_t *data;
			size_t		len;
		}			msg;
		struct
		{
			uint8_t		kind;	/* bft_timer_kind */
			uint64_t	height;
			uint32_t	round;
		}			timeout;
		struct
		{
			uint64_t	height;
			uint8_t		value[BFT_HASH_LEN];
			const uint8_t *payload;
			uint32_t	len;
		}			block;
	}			u;
} bft_event;

typedef struct bft_out_msg
{
	uint32_t	to;				/* BFT_TO_ALL or a peer id from an event */
	uint32_t	off;			/* bytes are out->buf[off .. off + len) */
	uint32_t	len;
} bft_out_msg;

typedef struct bft_timer
{
	uint8_t		kind;
	uint64_t	height;
	uint32_t	round;
	uint32_t	delay_ms;
} bft_timer;

typedef struct bft_commit
{
	uint64_t	height;
	uint8_t		value[BFT_HASH_LEN];
	const uint8_t *payload;
	uint32_t	payload_len;
	bft_cert	cert;
} bft_commit;

typedef struct bft_evidence
{
	bft_vote	a;
	bft_vote	b;
} bft_evidence;

typedef struct bft_output
{
	uint32_t	nmsgs;
	bft_out_msg msgs[BFT_MAX_OUT_MSGS];
	uint32_t	ntimers;
	bft_timer	timers[BFT_MAX_OUT_TIMERS];
	bool		has_commit;
	bft_commit	commit;
	bool		want_block;
	uint64_t	want_block_height;
	uint32_t	nevidence;
	bft_evidence evidence[BFT_MAX_OUT_EVIDENCE];
	uint32_t	dropped;		/* outputs that did not fit (resent later) */
	uint32_t	buf_used;
	uint8_t		buf[BFT_OUT_BUF];
} bft_output;

/* Counters for tests and benchmarks; never affect behaviour. */
typedef struct bft_stats
{
	uint64_t	signs;
	uint64_t	verifies;
	uint64_t	parked;			/* votes not checked: their tally had a quorum */
	uint64_t	sign_refused;	/* persistence rule prevented a signature */
	uint64_t	rejected;		/* messages that failed decode or checks */
	uint64_t	commits;
	uint64_t	catchup_commits;
} bft_stats;

typedef struct bft_node bft_node;

/* ---- state machine (bft.c) ---- */
extern size_t bft_node_size(void);
/* Prepare mem (bft_node_size() bytes); the node acts after BFT_EV_START. */
extern bft_node *bft_init(void *mem, const bft_config *cfg);
extern void bft_step(bft_node *node, const bft_event *ev, bft_output *out);
extern uint64_t bft_height(const bft_node *node);
extern uint32_t bft_round(const bft_node *node);
/* BFT_STEP_PROPOSE, _PREVOTE or _PRECOMMIT; 0 before the first start */
extern int	bft_step_of(const bft_node *node);
extern const bft_valset *bft_current_valset(const bft_node *node);
extern const bft_stats *bft_get_stats(const bft_node *node);
/* Validator index of proposer for (height, round). */
extern uint32_t bft_proposer(const bft_valset *vs, uint64_t height, uint32_t round);

/* ---- wire codec (bft_wire.c) ---- */
extern int	bft_encode(const bft_msg *m, uint8_t *buf, size_t cap, size_t *len);
/* Strict decode; pointers in *m reference data. */
extern int	bft_decode(const uint8_t *data, size_t len, bft_msg *m);
/*
 * Canonical bytes signed for a proposal (type BFT_MSG_PROPOSAL, valid_round)
 * or vote (valid_round ignored, encoded as -1):
 *	 "LLBFT1" | chain_id[32] | u8 type | u64 height | u32 round |
 *	 i32 valid_round | u8 is_nil | value[32]		 (88 bytes)
 */
extern void bft_sign_bytes(const uint8_t chain_id[BFT_HASH_LEN], uint8_t type,
						   uint64_t height, uint32_t round, int32_t valid_round,
						   bool is_nil, const uint8_t value[BFT_HASH_LEN],
						   uint8_t out[BFT_SIGN_BYTES_LEN]);
extern const char *bft_strerror(int err);

/* ---- certificates, evidence, validator sets (bft_cert.c) ---- */
extern uint64_t bft_total_power(const bft_valset *vs);
/* Smallest power that is more than 2/3 of the total. */
extern uint64_t bft_quorum(const bft_valset *vs);
/* Smallest power that is more than 1/3 of the total. */
extern uint64_t bft_one_third(const bft_valset *vs);
extern int	bft_valset_check(const bft_valset *vs);
extern int	bft_valset_find(const bft_valset *vs, const uint8_t pubkey[BFT_PUBKEY_LEN]);
/* BFT_OK iff cert is a quorum of valid precommits of vs for its value. */
extern int	bft_cert_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
							const bft_cert *cert, const bft_callbacks *cb);
/*
 * BFT_OK iff signers (sorted, distinct, known) hold a quorum of valid
 * signatures over the given vote; used for certificates and POLs.
 */
extern int	bft_signers_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
							   uint8_t type, uint64_t height, uint32_t round,
							   const uint8_t value[BFT_HASH_LEN],
							   const bft_signer *sigs, uint32_t nsigs,
							   const bft_callbacks *cb);
/* BFT_OK iff ev holds two valid conflicting votes of one validator. */
extern int	bft_evidence_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
								const bft_evidence *ev, const bft_callbacks *cb);
extern int	bft_vote_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
							const bft_vote *v, const bft_callbacks *cb);

/* ---- Ed25519 callbacks through OpenSSL 3 (bft_crypto.c) ---- */
typedef struct bft_ed25519_key bft_ed25519_key;
/* From a 32-byte seed (private key); NULL on failure.  Free with _free. */
extern bft_ed25519_key *bft_ed25519_new(const uint8_t seed[32]);
extern void bft_ed25519_free(bft_ed25519_key *key);
extern void bft_ed25519_pubkey(const bft_ed25519_key *key, uint8_t pub[BFT_PUBKEY_LEN]);
/* sign callback: ctx must be a bft_ed25519_key. */
extern int	bft_ed25519_sign(void *ctx, const uint8_t *msg, size_t len,
							 uint8_t sig[BFT_SIG_LEN]);
/* verify callback: ignores ctx. */
extern bool bft_ed25519_verify(void *ctx, const uint8_t pubkey[BFT_PUBKEY_LEN],
							   const uint8_t *msg, size_t len,
							   const uint8_t sig[BFT_SIG_LEN]);


/* ---- link authenticators: X25519 link keys and HMAC-SHA256 (bft_crypto.c) ---- */
typedef struct bft_x25519_key bft_x25519_key;
/* A fresh random key; its public half in pub.  NULL on failure. */
extern bft_x25519_key *bft_x25519_generate(uint8_t pub[BFT_PUBKEY_LEN]);
extern void bft_x25519_free(bft_x25519_key *key);
extern int	bft_link_key(const bft_x25519_key *mine, const uint8_t chain_id[BFT_HASH_LEN],
						 const uint8_t my_node[BFT_PUBKEY_LEN], const uint8_t my_x[BFT_PUBKEY_LEN],
						 const uint8_t peer_node[BFT_PUBKEY_LEN],
						 const uint8_t peer_x[BFT_PUBKEY_LEN], uint8_t key[BFT_HASH_LEN]);
extern int	bft_link_mac(const uint8_t key[BFT_HASH_LEN], const uint8_t sender[BFT_PUBKEY_LEN],
						 const uint8_t receiver[BFT_PUBKEY_LEN], uint64_t seq,
						 const uint8_t *data, size_t len, uint8_t mac[BFT_HASH_LEN]);
extern bool bft_link_mac_ok(const uint8_t key[BFT_HASH_LEN], const uint8_t sender[BFT_PUBKEY_LEN],
							const uint8_t receiver[BFT_PUBKEY_LEN], uint64_t seq,
							const uint8_t *data, size_t len, const uint8_t mac[BFT_HASH_LEN]);

#endif							/* BFT_H */
