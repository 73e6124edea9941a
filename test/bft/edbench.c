/*
 * edbench.c
 *		Ed25519 sign and verify rates of the production callbacks
 *		(bft_crypto.c), on the 88-byte messages the core signs.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bft.h"

static double
now_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(void)
{
	uint8_t		seed[32] = {9},
				pub[32],
				sig[64],
				msg[BFT_SIGN_BYTES_LEN] = {1};
	bft_ed25519_key *k = bft_ed25519_new(seed);
	double		t0,
				ts,
				tv;
	long		i,
				n = 0,
				ok = 0;

	if (k == NULL)
		return 1;
	bft_ed25519_pubkey(k, pub);
	t0 = now_cpu();
	do
	{
		for (i = 0; i < 1000; i++)
		{
			msg[0] = (uint8_t) i;
			bft_ed25519_sign(k, msg, sizeof(msg), sig);
		}
		n += 1000;
	} while (now_cpu() - t0 < 2.0);
	ts = n / (now_cpu() - t0);
	n = 0;
	t0 = now_cpu();
	do
	{
		for (i = 0; i < 1000; i++)
			ok += bft_ed25519_verify(NULL, pub, msg, sizeof(msg), sig);
		n += 1000;
	} while (now_cpu() - t0 < 2.0);
	tv = n / (now_cpu() - t0);
	printf("ed25519 sign_per_s=%.0f verify_per_s=%.0f ok=%ld\n", ts, tv, ok);
	bft_ed25519_free(k);
	return 0;
}
