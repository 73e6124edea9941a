/*
 * fakecrypto.h
 *		Fast deterministic stand-in for Ed25519 in tests and the simulator.
 *
 * sig = keyed 64-bit mix of (pubkey, msg) spread over 64 bytes.  It is not
 * secure against an adversary that runs this code, but the simulator's
 * Byzantine nodes only ever sign with their own key, and any corrupted or
 * forged signature fails verification, which is what the core needs.
 */
#ifndef BFT_FAKECRYPTO_H
#define BFT_FAKECRYPTO_H

#include <stdint.h>
#include <string.h>

#include "bft.h"

static inline uint64_t
fk_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static inline uint64_t
fk_hash(const uint8_t *pk, const uint8_t *msg, size_t len)
{
	uint64_t	h = UINT64_C(0x9e3779b97f4a7c15);
	size_t		i;
	uint64_t	w;

	for (i = 0; i < BFT_PUBKEY_LEN; i += 8)
	{
		memcpy(&w, pk + i, 8);
		h = fk_mix(h ^ w);
	}
	for (i = 0; i + 8 <= len; i += 8)
	{
		memcpy(&w, msg + i, 8);
		h = fk_mix(h ^ w);
	}
	for (; i < len; i++)
		h = fk_mix(h ^ msg[i]);
	return fk_mix(h ^ len);
}

static inline void
fk_sign(const uint8_t *pk, const uint8_t *msg, size_t len, uint8_t sig[BFT_SIG_LEN])
{
	uint64_t	h = fk_hash(pk, msg, len);
	int			i;

	for (i = 0; i < BFT_SIG_LEN; i += 8)
	{
		memcpy(sig + i, &h, 8);
		h = fk_mix(h + 1);
	}
}

static inline int
fk_verify(const uint8_t *pk, const uint8_t *msg, size_t len, const uint8_t sig[BFT_SIG_LEN])
{
	uint8_t		want[BFT_SIG_LEN];

	fk_sign(pk, msg, len, want);
	return memcmp(want, sig, BFT_SIG_LEN) == 0;
}

/* 32-byte "block hash" of a payload for tests. */
static inline void
fk_block_hash(const uint8_t *payload, size_t len, uint8_t out[BFT_HASH_LEN])
{
	static const uint8_t key[BFT_PUBKEY_LEN] = {'b', 'l', 'o', 'c', 'k'};
	uint64_t	h = fk_hash(key, payload, len);
	int			i;

	for (i = 0; i < BFT_HASH_LEN; i += 8)
	{
		memcpy(out + i, &h, 8);
		h = fk_mix(h + 7);
	}
}

#endif
