/*
 * membership_core.h
 *		Members, membership votes and validator sets of a multi-peer
 *		channel: the counting every node must do identically
 *		(membership_core.c).
 *
 * Pure C like ll_core.h (no PostgreSQL header), so the unit tests run the
 * very code the nodes use.  membership.c loads and persists this state.
 *
 * Two kinds of member entries live side by side:
 *   decided (since >= 0): agreed through consensus, identical on every
 *     node, removed ones included (until >= 0); since is written once.
 *   local (since < 0): this node's DBA asked to add the key and the change
 *     is not decided yet; other nodes do not have it, so nothing counted
 *     here may depend on it.
 * The pending votes (votes[]) are consensus state too: after every block
 * membership.c persists exactly the votes that became pending (fresh[])
 * and exactly those that stopped being pending (dropped[]), so a node that
 * restarts reloads the same set its peers keep in memory.
 */
#ifndef LL_MEMBERSHIP_CORE_H
#define LL_MEMBERSHIP_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "bft.h"
#include "ll_wire.h"

#define LL_NAME_LEN 64			/* NAMEDATALEN */
#define LL_CONNINFO_LEN 1024
#define LL_MAX_PEERS 32			/* member slots of a node */
/* this node's undecided add requests that may hold a slot */
#define LL_MAX_LOCAL_REQUESTS 4
/* decided members, removed ones included: the rest is kept for requests */
#define LL_MAX_MEMBERS (LL_MAX_PEERS - LL_MAX_LOCAL_REQUESTS)
#define LL_MAX_VOTES 256
/* pending votes of one voter: all voters together never fill votes[] */
#define LL_MAX_VOTER_VOTES 8
/*
 * Heights a vote stays pending.  A stale vote (a request withdrawn, or one
 * nobody else matched) would otherwise hold its voter's share for good; a
 * request still wanted is proposed again by its node once its vote lapsed.
 */
#define LL_VOTE_TTL 10000

typedef struct LLMember
{
	char		name[LL_NAME_LEN];
	uint8_t		pub[32];
	char		tier[LL_NAME_LEN];	/* clearance */
	char		genesis_tier[LL_NAME_LEN];	/* clearance in the genesis */
	char		conninfo[LL_CONNINFO_LEN];	/* '' when this node was not told */
	int64_t		since;			/* first height it votes, -1 not (yet) */
	int64_t		until;			/* first height it no longer votes, -1 */
} LLMember;

typedef struct LLVote
{
	uint8_t		voter[32];
	uint8_t		op;				/* LL_TX_ADD_MEMBER or LL_TX_REMOVE_MEMBER */
	uint8_t		pub[32];
	char		name[LL_NAME_LEN];	/* '' for a removal */
	char		tier[LL_NAME_LEN];	/* '' for a removal */
	uint64_t	height;			/* of the block that recorded it */
} LLVote;

typedef struct LLDecided
{
	LLVote		vote;
	uint64_t	effective;
} LLDecided;

typedef struct LLMembership
{
	int			n;
	LLMember	m[LL_MAX_PEERS];	/* indexes never change: peer ids */
	int			nvotes;			/* votes of undecided changes */
	LLVote		votes[LL_MAX_VOTES];
	/* what the last block changed, for membership.c to persist */
	int			nnew;			/* votes that became pending */
	LLVote		fresh[LL_MAX_VOTES];
	int			ndropped;		/* votes that are no longer pending */
	LLVote		dropped[LL_MAX_VOTES];
	int			ndecided;		/* changes enacted */
	LLDecided	decided[LL_MAX_VOTES];
} LLMembership;

extern int	ll_member_index(const LLMembership *ms, const uint8_t *pub);
extern int	ll_members_decided_count(const LLMembership *ms);
extern int	ll_members_local_count(const LLMembership *ms);
extern int	ll_members_pending_of(const LLMembership *ms, const uint8_t *voter);
extern void ll_valset_at(const LLMembership *ms, uint64_t h, bft_valset *vs);
extern bool ll_is_validator_at(const LLMembership *ms, const uint8_t *pub, uint64_t h);
extern bool ll_never_votes_from(const LLMembership *ms, const uint8_t *pub, uint64_t h);
extern int	ll_members_genesis(const LLMembership *ms, ll_member *out, ll_wire_str *tiers,
							   int ntiers, char **tier_names);
extern void ll_vote_from_tx(LLVote *v, const uint8_t *voter, const ll_tx *tx);
extern bool ll_vote_moot(const LLMembership *ms, const LLVote *v);
/* Whether v's voter has a vote for exactly v's change pending. */
extern bool ll_vote_pending(const LLMembership *ms, const LLVote *v);
extern bool ll_members_decide(LLMembership *ms, uint64_t height, const ll_batch *batches,
							  int nbatches);

#endif							/* LL_MEMBERSHIP_CORE_H */
