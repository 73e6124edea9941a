/*
 * membership.h
 *		Members and validator sets of a multi-peer channel: loading and
 *		persisting (membership.c) the state membership_core.c counts.
 */
#ifndef LL_MEMBERSHIP_H
#define LL_MEMBERSHIP_H

#include "postgres.h"

#include "bft.h"
#include "consensus.h"
#include "ll_wire.h"
#include "membership_core.h"

extern void ll_members_load(LLMembership *ms, int32 channel_id);
extern void ll_members_persist(const LLMembership *ms, int32 channel_id, uint64 height);

#endif							/* LL_MEMBERSHIP_H */
