/*
 * membership.h
 *		Members and validator sets of a multi-peer channel (membership.c).
 */
#ifndef LL_MEMBERSHIP_H
#define LL_MEMBERSHIP_H

#include "postgres.h"

#include "bft.h"
#include "consensus.h"
#include "ll_wire.h"

#define LL_MAX_VOTES 256

typedef struct LLMember
{
	char		name[NAMEDATALEN];
	uint8		pub[32];
	char		tier[NAMEDATALEN];	/* clearance */
	char		genesis_tier[NAMEDATALEN];	/* clearance in the genesis */
	char		conninfo[1024];	/* '' when this node was not told */
	int64		since;			/* first height it votes, -1 not (yet) */
	int64		until;			/* first height it no longer votes, -1 */
} LLMember;

typedef struct LLVote
{
	uint8		voter[32];
	uint8		op;				/* LL_TX_ADD_MEMBER or LL_TX_REMOVE_MEMBER */
	uint8		pub[32];
	char		name[NAMEDATALEN];
	char		tier[NAMEDATALEN];
} LLVote;

typedef struct LLDecided
{
	LLVote		vote;
	uint64		effective;
} LLDecided;

typedef struct LLMembership
{
	int			n;
	LLMember	m[LL_MAX_PEERS];	/* indexes never change: peer ids */
	int			nvotes;			/* votes of undecided changes */
	LLVote		votes[LL_MAX_VOTES];
	int			nnew;			/* votes and decisions of the last block */
	LLVote		fresh[LL_MAX_VOTES];
	int			ndecided;
	LLDecided	decided[LL_MAX_VOTES];
} LLMembership;

extern void ll_members_load(LLMembership *ms, int32 channel_id);
extern int	ll_member_index(const LLMembership *ms, const uint8 *pub);
extern void ll_valset_at(const LLMembership *ms, uint64 h, bft_valset *vs);
extern bool ll_is_validator_at(const LLMembership *ms, const uint8 *pub, uint64 h);
extern bool ll_never_votes_from(const LLMembership *ms, const uint8 *pub, uint64 h);
extern int	ll_members_genesis(const LLMembership *ms, ll_member *out, ll_wire_str *tiers,
							   int ntiers, char **tier_names);
extern bool ll_members_decide(LLMembership *ms, uint64 height, const ll_batch *batches,
							  int nbatches);
extern void ll_members_persist(const LLMembership *ms, int32 channel_id, uint64 height);

#endif							/* LL_MEMBERSHIP_H */
