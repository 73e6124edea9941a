/*
 * bft_crypto.c
 *		Production sign/verify callbacks: Ed25519 through OpenSSL 3.
 *
 * Ed25519 is deterministic (RFC 8032), so re-signing the same bytes after a
 * restart yields the same signature; the persistence rule relies on never
 * signing different bytes, not on this, but it keeps re-sent votes
 * byte-identical.
 */
#include <string.h>

#include <openssl/evp.h>

#include "bft.h"

struct bft_ed25519_key
{
	EVP_PKEY   *pkey;
	EVP_MD_CTX *md;
	uint8_t		pub[BFT_PUBKEY_LEN];
};

/* Key from a 32-byte private seed; NULL if OpenSSL refuses. */
bft_ed25519_key *
bft_ed25519_new(const uint8_t seed[32])
{
	bft_ed25519_key *k;
	size_t		publen = BFT_PUBKEY_LEN;

	k = (bft_ed25519_key *) OPENSSL_zalloc(sizeof(*k));
	if (k == NULL)
		return NULL;
	k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	k->md = EVP_MD_CTX_new();
	if (k->pkey == NULL || k->md == NULL ||
		EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &publen) != 1 ||
		publen != BFT_PUBKEY_LEN)
	{
		bft_ed25519_free(k);
		return NULL;
	}
	return k;
}

void
bft_ed25519_free(bft_ed25519_key *k)
{
	if (k == NULL)
		return;
	EVP_MD_CTX_free(k->md);
	EVP_PKEY_free(k->pkey);
	OPENSSL_clear_free(k, sizeof(*k));
}

void
bft_ed25519_pubkey(const bft_ed25519_key *k, uint8_t pub[BFT_PUBKEY_LEN])
{
	memcpy(pub, k->pub, BFT_PUBKEY_LEN);
}

/* One-shot EVP_DigestSign (Ed25519 takes no digest).  0 on success. */
int
bft_ed25519_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[BFT_SIG_LEN])
{
	bft_ed25519_key *k = (bft_ed25519_key *) ctx;
	size_t		siglen = BFT_SIG_LEN;

	if (k == NULL ||
		EVP_DigestSignInit(k->md, NULL, NULL, NULL, k->pkey) != 1 ||
		EVP_DigestSign(k->md, sig, &siglen, msg, len) != 1 ||
		siglen != BFT_SIG_LEN)
		return -1;
	return 0;
}

/*
 * True only for a valid signature; any OpenSSL failure (including a
 * malformed public key) counts as invalid, never as an abort.
 */
bool
bft_ed25519_verify(void *ctx, const uint8_t pubkey[BFT_PUBKEY_LEN],
				   const uint8_t *msg, size_t len, const uint8_t sig[BFT_SIG_LEN])
{
	EVP_PKEY   *pk;
	EVP_MD_CTX *md;
	bool		ok = false;

	(void) ctx;
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pubkey, BFT_PUBKEY_LEN);
	md = EVP_MD_CTX_new();
	if (pk != NULL && md != NULL &&
		EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1)
		ok = EVP_DigestVerify(md, sig, BFT_SIG_LEN, msg, len) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	return ok;
}
