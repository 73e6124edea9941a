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

#include <openssl/core_names.h>
#include <openssl/crypto.h>
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
 * Public keys turned into OpenSSL objects, kept: a node checks the same few
 * members' signatures thousands of times a second, and building the key
 * object is about a twentieth of a check.  Processes using this are single
 * threaded (a PostgreSQL backend or worker, the tests).
 */
#define PUB_CACHE 16

static struct
{
	uint8_t		pub[BFT_PUBKEY_LEN];
	EVP_PKEY   *pkey;
}			pub_cache[PUB_CACHE];
static unsigned pub_next;

static EVP_PKEY *
cached_pubkey(const uint8_t pubkey[BFT_PUBKEY_LEN])
{
	unsigned	i;
	EVP_PKEY   *pk;

	for (i = 0; i < PUB_CACHE; i++)
		if (pub_cache[i].pkey != NULL &&
			memcmp(pub_cache[i].pub, pubkey, BFT_PUBKEY_LEN) == 0)
			return pub_cache[i].pkey;
	pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pubkey, BFT_PUBKEY_LEN);
	if (pk == NULL)
		return NULL;
	i = pub_next++ % PUB_CACHE;
	EVP_PKEY_free(pub_cache[i].pkey);
	memcpy(pub_cache[i].pub, pubkey, BFT_PUBKEY_LEN);
	pub_cache[i].pkey = pk;
	return pk;
}

/*
 * True only for a valid signature; any OpenSSL failure (including a
 * malformed public key) counts as invalid, never as an abort.
 */
bool
bft_ed25519_verify(void *ctx, const uint8_t pubkey[BFT_PUBKEY_LEN],
				   const uint8_t *msg, size_t len, const uint8_t sig[BFT_SIG_LEN])
{
	EVP_PKEY   *pk = cached_pubkey(pubkey);
	EVP_MD_CTX *md;
	bool		ok = false;

	(void) ctx;
	/*
	 * A fresh context every time: OpenSSL 3.0 keeps the first key of a
	 * reused Ed25519 verify context, so a context reused across keys took
	 * signatures under the wrong key (test_ed25519_many_keys).
	 */
	md = EVP_MD_CTX_new();
	if (pk != NULL && md != NULL &&
		EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1)
		ok = EVP_DigestVerify(md, sig, BFT_SIG_LEN, msg, len) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/*
 * Link authenticators.
 *
 * Checking an Ed25519 signature costs about 100 us here; a batch is signed
 * once by its origin and was checked by every peer, a tenth of the CPU of a
 * busy consortium.  As PBFT does, messages that come straight from their
 * author over a link are instead authenticated with a MAC under a key only
 * the two ends of the link hold: each worker makes a fresh X25519 key when
 * it starts, announces it signed with its node key, and both ends derive
 * the link key from the Diffie-Hellman secret.  The author's signature
 * still travels with the message, for the record and for relays.
 */
struct bft_x25519_key
{
	EVP_PKEY   *pkey;
};

bft_x25519_key *
bft_x25519_generate(uint8_t pub[BFT_PUBKEY_LEN])
{
	bft_x25519_key *k = (bft_x25519_key *) OPENSSL_zalloc(sizeof(*k));
	size_t		publen = BFT_PUBKEY_LEN;

	if (k == NULL)
		return NULL;
	k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	if (k->pkey == NULL ||
		EVP_PKEY_get_raw_public_key(k->pkey, pub, &publen) != 1 ||
		publen != BFT_PUBKEY_LEN)
	{
		bft_x25519_free(k);
		return NULL;
	}
	return k;
}

void
bft_x25519_free(bft_x25519_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	OPENSSL_free(k);
}

/* One end's half of a link: node key and announced X25519 key. */
static void
link_half(EVP_MD_CTX *md, const uint8_t node[BFT_PUBKEY_LEN], const uint8_t x[BFT_PUBKEY_LEN])
{
	EVP_DigestUpdate(md, node, BFT_PUBKEY_LEN);
	EVP_DigestUpdate(md, x, BFT_PUBKEY_LEN);
}

/*
 * The key of the link between us and a peer: SHA-256 over a label, the
 * chain id, the X25519 secret and both ends' keys in a fixed order, so that
 * both ends derive the same key and no other link or chain shares it.
 * 0 on success; -1 if OpenSSL refuses (e.g. a low-order peer key).
 */
int
bft_link_key(const bft_x25519_key *mine, const uint8_t chain_id[BFT_HASH_LEN],
			 const uint8_t my_node[BFT_PUBKEY_LEN], const uint8_t my_x[BFT_PUBKEY_LEN],
			 const uint8_t peer_node[BFT_PUBKEY_LEN], const uint8_t peer_x[BFT_PUBKEY_LEN],
			 uint8_t key[BFT_HASH_LEN])
{
	static const char label[] = "loopledger link key v1";
	EVP_PKEY   *peer = NULL;
	EVP_PKEY_CTX *dh = NULL;
	EVP_MD_CTX *md = NULL;
	uint8_t		secret[32];
	size_t		slen = sizeof(secret);
	unsigned int klen = 0;
	int			rc = -1;

	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_x, BFT_PUBKEY_LEN);
	dh = mine ? EVP_PKEY_CTX_new(mine->pkey, NULL) : NULL;
	md = EVP_MD_CTX_new();
	if (peer == NULL || dh == NULL || md == NULL ||
		EVP_PKEY_derive_init(dh) != 1 || EVP_PKEY_derive_set_peer(dh, peer) != 1 ||
		EVP_PKEY_derive(dh, secret, &slen) != 1 || slen != sizeof(secret) ||
		EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto done;
	EVP_DigestUpdate(md, label, sizeof(label));
	EVP_DigestUpdate(md, chain_id, BFT_HASH_LEN);
	EVP_DigestUpdate(md, secret, sizeof(secret));
	if (memcmp(my_node, peer_node, BFT_PUBKEY_LEN) < 0)
	{
		link_half(md, my_node, my_x);
		link_half(md, peer_node, peer_x);
	}
	else
	{
		link_half(md, peer_node, peer_x);
		link_half(md, my_node, my_x);
	}
	if (EVP_DigestFinal_ex(md, key, &klen) == 1 && klen == BFT_HASH_LEN)
		rc = 0;
done:
	OPENSSL_cleanse(secret, sizeof(secret));
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(dh);
	EVP_PKEY_free(peer);
	return rc;
}

/*
 * HMAC-SHA256 under a link key over sender | receiver | seq | data: naming
 * both ends means a message cannot be reflected back to its sender as the
 * peer's, and the sender's call number (which must grow under one key)
 * means a recorded call cannot be played again.  0 on success.
 */
int
bft_link_mac(const uint8_t key[BFT_HASH_LEN], const uint8_t sender[BFT_PUBKEY_LEN],
			 const uint8_t receiver[BFT_PUBKEY_LEN], uint64_t seq, const uint8_t *data,
			 size_t len, uint8_t mac[BFT_HASH_LEN])
{
	uint8_t		seq_be[8];
	int			i;

	/*
	 * One context, its digest set once: looking SHA-256 up by name and
	 * building a context was half of what a MAC cost (about 2.9 us of
	 * 750 bytes, 1.4 us without).  EVP_MAC_init with a key re-keys it
	 * every time (test_auth checks MACs under several keys in turn).
	 */
	static EVP_MAC_CTX *ctx = NULL;
	size_t		outlen = 0;

	if (ctx == NULL)
	{
		EVP_MAC   *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		OSSL_PARAM	params[2];

		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
		params[1] = OSSL_PARAM_construct_end();
		ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
		EVP_MAC_free(hmac);		/* the context keeps its own reference */
		if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1)
		{
			EVP_MAC_CTX_free(ctx);
			ctx = NULL;
			return -1;
		}
	}
	for (i = 0; i < 8; i++)
		seq_be[i] = (uint8_t) (seq >> (56 - 8 * i));
	if (EVP_MAC_init(ctx, key, BFT_HASH_LEN, NULL) == 1 &&
		EVP_MAC_update(ctx, sender, BFT_PUBKEY_LEN) == 1 &&
		EVP_MAC_update(ctx, receiver, BFT_PUBKEY_LEN) == 1 &&
		EVP_MAC_update(ctx, seq_be, sizeof(seq_be)) == 1 &&
		(len == 0 || EVP_MAC_update(ctx, data, len) == 1) &&
		EVP_MAC_final(ctx, mac, &outlen, BFT_HASH_LEN) == 1 && outlen == BFT_HASH_LEN)
		return 0;
	return -1;
}

/* True iff mac is the link MAC of data; compared in constant time. */
bool
bft_link_mac_ok(const uint8_t key[BFT_HASH_LEN], const uint8_t sender[BFT_PUBKEY_LEN],
				const uint8_t receiver[BFT_PUBKEY_LEN], uint64_t seq, const uint8_t *data,
				size_t len, const uint8_t mac[BFT_HASH_LEN])
{
	uint8_t		want[BFT_HASH_LEN];

	return bft_link_mac(key, sender, receiver, seq, data, len, want) == 0 &&
		CRYPTO_memcmp(want, mac, BFT_HASH_LEN) == 0;
}
