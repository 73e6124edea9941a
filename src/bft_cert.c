/*
 * bft_cert.c
 *		Validator sets, quorums, commit certificates and evidence.
 *
 * Everything here is a pure function of its arguments, so an offline
 * verifier can check a certificate or an evidence record with exactly the
 * code the nodes used.
 */
#include <string.h>

#include "bft.h"

/* Sum of voting power; validated sets keep it below 2^60. */
uint64_t
bft_total_power(const bft_valset *vs)
{
	uint64_t	t = 0;
	uint32_t	i;

	for (i = 0; i < vs->n && i < BFT_MAX_VALIDATORS; i++)
		t += vs->v[i].power;
	return t;
}

/*
 * More than 2/3 of the total: any two quorums then share more than 1/3,
 * hence at least one honest validator while faulty power is below 1/3.
 */
uint64_t
bft_quorum(const bft_valset *vs)
{
	uint64_t	t = bft_total_power(vs);

#ifdef BFT_BROKEN_QUORUM
	/* Deliberately wrong (f+1): only for proving the simulator catches it. */
	return t / 3 + 1;
#else
	return t * 2 / 3 + 1;
#endif
}

/* More than 1/3: such a set always contains an honest validator. */
uint64_t
bft_one_third(const bft_valset *vs)
{
	return bft_total_power(vs) / 3 + 1;
}

/* BFT_OK iff vs has 1..max members, positive powers, distinct keys. */
int
bft_valset_check(const bft_valset *vs)
{
	uint32_t	i,
				j;
	uint64_t	t = 0;

	if (vs->n == 0 || vs->n > BFT_MAX_VALIDATORS)
		return BFT_ERR_VALSET;
	for (i = 0; i < vs->n; i++)
	{
		if (vs->v[i].power == 0 || vs->v[i].power > (UINT64_C(1) << 54))
			return BFT_ERR_VALSET;
		t += vs->v[i].power;
		for (j = 0; j < i; j++)
			if (memcmp(vs->v[i].pubkey, vs->v[j].pubkey, BFT_PUBKEY_LEN) == 0)
				return BFT_ERR_VALSET;
	}
	if (t >= (UINT64_C(1) << 60))
		return BFT_ERR_VALSET;
	return BFT_OK;
}

/* Index of pubkey in vs, or -1. */
int
bft_valset_find(const bft_valset *vs, const uint8_t pubkey[BFT_PUBKEY_LEN])
{
	uint32_t	i;

	for (i = 0; i < vs->n; i++)
		if (memcmp(vs->v[i].pubkey, pubkey, BFT_PUBKEY_LEN) == 0)
			return (int) i;
	return -1;
}

/* Checks one signed vote against the signer's key in vs. */
int
bft_vote_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
				const bft_vote *v, const bft_callbacks *cb)
{
	uint8_t		sb[BFT_SIGN_BYTES_LEN];

	if (v->type != BFT_MSG_PREVOTE && v->type != BFT_MSG_PRECOMMIT)
		return BFT_ERR_TYPE;
	if (v->validator >= vs->n)
		return BFT_ERR_SIGNER;
	bft_sign_bytes(chain_id, v->type, v->height, v->round, -1, v->is_nil,
				   v->value, sb);
	if (!cb->verify(cb->ctx, vs->v[v->validator].pubkey, sb, sizeof(sb), v->sig))
		return BFT_ERR_SIG;
	return BFT_OK;
}

/*
 * A signer list proves a quorum only if the signers are distinct members
 * (enforced by strict ordering) and every signature verifies; one bad
 * signature rejects the whole list rather than being skipped, so a
 * certificate has a single meaning.
 */
int
bft_signers_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
				   uint8_t type, uint64_t height, uint32_t round,
				   const uint8_t value[BFT_HASH_LEN],
				   const bft_signer *sigs, uint32_t nsigs,
				   const bft_callbacks *cb)
{
	uint8_t		sb[BFT_SIGN_BYTES_LEN];
	uint64_t	power = 0;
	uint32_t	i;

	if (bft_valset_check(vs) != BFT_OK)
		return BFT_ERR_VALSET;
	if (nsigs > BFT_MAX_VALIDATORS)
		return BFT_ERR_OVERSIZE;
	bft_sign_bytes(chain_id, type, height, round, -1, false, value, sb);
	for (i = 0; i < nsigs; i++)
	{
		uint16_t	idx = sigs[i].validator;

		if (idx >= vs->n || (i > 0 && idx <= sigs[i - 1].validator))
			return BFT_ERR_SIGNER;
		power += vs->v[idx].power;
	}
	if (power < bft_quorum(vs))
		return BFT_ERR_QUORUM;
	for (i = 0; i < nsigs; i++)
		if (!cb->verify(cb->ctx, vs->v[sigs[i].validator].pubkey, sb, sizeof(sb),
						sigs[i].sig))
			return BFT_ERR_SIG;
	return BFT_OK;
}

/* A commit certificate is a quorum of precommits for one non-nil value. */
int
bft_cert_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
				const bft_cert *cert, const bft_callbacks *cb)
{
	return bft_signers_verify(vs, chain_id, BFT_MSG_PRECOMMIT, cert->height,
							  cert->round, cert->value, cert->sigs,
							  cert->nsigs, cb);
}

/*
 * Evidence is valid iff both votes are by the same validator for the same
 * height, round and type, differ in value, and both signatures verify.
 */
int
bft_evidence_verify(const bft_valset *vs, const uint8_t chain_id[BFT_HASH_LEN],
					const bft_evidence *ev, const bft_callbacks *cb)
{
	const bft_vote *a = &ev->a;
	const bft_vote *b = &ev->b;
	int			err;

	if (a->validator != b->validator || a->type != b->type ||
		a->height != b->height || a->round != b->round)
		return BFT_ERR_FIELD;
	if (a->is_nil == b->is_nil &&
		(a->is_nil || memcmp(a->value, b->value, BFT_HASH_LEN) == 0))
		return BFT_ERR_FIELD;
	err = bft_vote_verify(vs, chain_id, a, cb);
	if (err != BFT_OK)
		return err;
	return bft_vote_verify(vs, chain_id, b, cb);
}
