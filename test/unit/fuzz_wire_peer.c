/*
 * fuzz_wire_peer.c
 *		libFuzzer target for the peer message codec (src/ll_wire.c).
 *
 * Every input goes to the frame iterator and to every decoder.  Properties:
 * no crash, leak or sanitizer report; whatever a decoder accepts
 * re-encodes to exactly the input (one encoding per message); a redacted
 * batch still decodes with the same batch_hash, and ll_batch_top_tier and
 * ll_batch_complete_for agree with what was redacted; and a batch the
 * builder makes from the input bytes decodes back to the same rows.  Signatures
 * are faked (verify accepts everything) so the fuzzer reaches the
 * structure behind them.
 *
 * With LL_FUZZ_SEED_DIR set, LLVMFuzzerInitialize first writes one valid
 * message of each type there, so the run starts deep instead of from magic
 * bytes (libFuzzer reads the corpus directory after initialising).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_wire.h"

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Origin of the batches this target builds itself. */
static const uint8_t fixed_pk[LL_PUBKEY_LEN] = {
	0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a, 0xa7,
	0x4d, 0x1b, 0x7e, 0xbc, 0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c,
	0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c
};

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); abort(); } } while (0)

static void *
fz_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static bool
fz_verify_any(void *ctx, const uint8_t pub[LL_PUBKEY_LEN], const uint8_t *msg,
			  size_t len, const uint8_t sig[LL_SIG_LEN])
{
	(void) ctx;
	(void) pub;
	(void) msg;
	(void) len;
	(void) sig;
	return true;
}

/* Fake signature: the message (a 32-byte hash) twice. */
static int
fz_sign_fake(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[LL_SIG_LEN])
{
	(void) ctx;
	if (len != LL_HASH_LEN)
		return -1;
	memcpy(sig, msg, LL_HASH_LEN);
	memcpy(sig + LL_HASH_LEN, msg, LL_HASH_LEN);
	return 0;
}

static bool
fz_verify_fake(void *ctx, const uint8_t pub[LL_PUBKEY_LEN], const uint8_t *msg,
			   size_t len, const uint8_t sig[LL_SIG_LEN])
{
	uint8_t		want[LL_SIG_LEN];

	return memcmp(pub, fixed_pk, LL_PUBKEY_LEN) == 0 &&
		fz_sign_fake(ctx, msg, len, want) == 0 &&
		memcmp(want, sig, LL_SIG_LEN) == 0;
}

/* "Signs" by handing back a given signature (ctx), to rebuild a batch. */
static int
fz_sign_copy(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[LL_SIG_LEN])
{
	(void) msg;
	(void) len;
	memcpy(sig, ctx, LL_SIG_LEN);
	return 0;
}

static void
expect_same(const ll_buf *buf, const uint8_t *in, size_t len)
{
	CHECK(!buf->failed);
	CHECK(buf->len == len);
	CHECK(len == 0 || memcmp(buf->data, in, len) == 0);
}

/* ---- genesis ---------------------------------------------------------- */

static void
fz_genesis(const uint8_t *in, size_t len)
{
	static ll_wire_str tiers[LL_GENESIS_MAX_TIERS];
	static ll_member members[LL_GENESIS_MAX_MEMBERS];
	ll_genesis	g;
	ll_genesis_iter it;
	ll_buf		buf;
	uint8_t		h[LL_HASH_LEN];
	uint32_t	n = 0;

	if (ll_genesis_decode(in, len, &g) != LL_WIRE_OK)
	{
		CHECK(ll_genesis_hash(in, len, h) != LL_WIRE_OK);
		return;
	}
	CHECK(ll_genesis_hash(in, len, h) == LL_WIRE_OK);
	ll_genesis_tiers(&g, &it);
	for (; ll_genesis_next_tier(&it, &tiers[n]); n++)
		CHECK(ll_genesis_tier_index(&g, tiers[n].ptr, tiers[n].len) == (int) n);
	CHECK(n == g.ntiers);
	n = 0;
	ll_genesis_members(&g, &it);
	for (; ll_genesis_next_member(&it, &members[n]); n++)
		CHECK(ll_genesis_find_member(&g, members[n].pubkey, &members[n]));
	CHECK(n == g.nmembers);
	/* reversed input order must still give the same (sorted) bytes */
	for (n = 0; n < g.nmembers / 2; n++)
	{
		ll_member	t = members[n];

		members[n] = members[g.nmembers - 1 - n];
		members[g.nmembers - 1 - n] = t;
	}
	ll_buf_init(&buf, fz_realloc);
	CHECK(ll_genesis_encode(&buf, g.channel, tiers, g.ntiers, members, g.nmembers) == LL_WIRE_OK);
	expect_same(&buf, in, len);
	free(buf.data);
}

/* ---- batch ------------------------------------------------------------ */

/* Rebuild a decoded batch with the builder: must give the same bytes. */
static void
fz_batch_rebuild(const ll_batch *b)
{
	ll_buf		out;
	ll_buf		content;
	ll_batch_builder bb;
	ll_batch_iter it;
	ll_tx		tx;
	ll_row		r;
	uint8_t		h[LL_HASH_LEN];

	ll_buf_init(&out, fz_realloc);
	ll_buf_init(&content, fz_realloc);
	ll_batch_begin(&bb, &out, &content, b->len, b->chain_id, b->origin,
				   b->batch_seq, b->time_us);
	ll_batch_iter_init(&it, b);
	while (ll_batch_next_tx(&it, &tx))
	{
		if (tx.kind == LL_TX_ROWS)
			ll_batch_add_rows_tx(&bb, tx.txid);
		else if (tx.kind == LL_TX_ADD_MEMBER)
			ll_batch_add_member_tx(&bb, tx.txid, tx.pubkey, tx.name, tx.tier);
		else if (tx.kind == LL_TX_DECLARE_TABLE)
			ll_batch_declare_table_tx(&bb, tx.txid, tx.table, tx.fingerprint);
		else
			ll_batch_remove_member_tx(&bb, tx.txid, tx.pubkey);
		while (ll_batch_next_row(&it, &r))
		{
			if (r.content != NULL)
				ll_batch_add_row(&bb, r.tier_index, r.commitment, r.content, r.content_len);
			else
				ll_batch_add_withheld_row(&bb, r.tier_index, r.entry_id, r.table,
										  r.commitment);
		}
	}
	CHECK(ll_batch_finish(&bb, fz_sign_copy, (void *) b->sig, h) == LL_WIRE_OK);
	CHECK(memcmp(h, b->batch_hash, LL_HASH_LEN) == 0);
	expect_same(&out, b->bytes, b->len);
	free(out.data);
	free(content.data);
}

/*
 * Withholding content keeps the batch valid and its hash unchanged; the
 * recipient is as complete as the sender was, and redacting is a no-op
 * exactly when the top tier is within the clearance.
 */
static void
fz_batch_redact(const ll_batch *b, int max_tier)
{
	ll_buf		out;
	ll_batch	r;
	int			top = ll_batch_top_tier(b);

	ll_buf_init(&out, fz_realloc);
	CHECK(ll_batch_redact(b, max_tier, &out) == LL_WIRE_OK);
	CHECK(out.len <= b->len);
	CHECK(ll_batch_decode(out.data, out.len, b->len, fz_verify_any, NULL, &r) == LL_WIRE_OK);
	CHECK(memcmp(r.batch_hash, b->batch_hash, LL_HASH_LEN) == 0);
	CHECK(r.nrows == b->nrows && r.ntx == b->ntx);
	CHECK(ll_batch_top_tier(&r) <= max_tier);
	CHECK(ll_batch_complete_for(&r, max_tier) == ll_batch_complete_for(b, max_tier));
	CHECK(ll_batch_complete_for(&r, -1));
	if (top <= max_tier)
		expect_same(&out, b->bytes, b->len);
	else
		CHECK(out.len < b->len);
	free(out.data);
}

static void
fz_batch(const uint8_t *in, size_t len)
{
	ll_batch	b;

	if (ll_batch_decode(in, len, SIZE_MAX, fz_verify_any, NULL, &b) != LL_WIRE_OK)
		return;
	CHECK(ll_batch_decode(in, len, len - 1, fz_verify_any, NULL, &b) == LL_WIRE_ERR_LIMIT);
	CHECK(ll_batch_decode(in, len, len, fz_verify_any, NULL, &b) == LL_WIRE_OK);
	fz_batch_rebuild(&b);
	fz_batch_redact(&b, -1);
	fz_batch_redact(&b, 0);
	fz_batch_redact(&b, 255);
}

/*
 * Build a batch from the input: each row is (flag byte, length byte,
 * table name) with table "t" for length 0; flag & 0x40 withholds the row,
 * flag % 8 is its tier, 0xff starts a new rows tx.  Rows with content get
 * an entry of that table.  Signed with the fake key, origin fixed_pk.
 */
static void
fz_build(const uint8_t *in, size_t len)
{
	const uint8_t salt[LL_SALT_LEN] = {0};
	uint8_t		chain[LL_HASH_LEN] = {0};
	ll_buf		out;
	ll_buf		content;
	ll_buf		e;
	ll_batch_builder bb;
	ll_batch	b;
	size_t		pos = 0;
	int			rc;

	ll_buf_init(&out, fz_realloc);
	ll_buf_init(&content, fz_realloc);
	ll_buf_init(&e, fz_realloc);
	ll_batch_begin(&bb, &out, &content, SIZE_MAX, chain, fixed_pk, len, -1);
	ll_batch_add_rows_tx(&bb, 1);
	ll_batch_add_withheld_row(&bb, 0, 0, (ll_wire_str) {"t", 1}, chain);
	while (len - pos >= 2 && (size_t) in[pos + 1] <= len - pos - 2)
	{
		ll_wire_str table = {(const char *) in + pos + 2, in[pos + 1]};

		if (table.len == 0)
		{
			table.ptr = "t";
			table.len = 1;
		}
		if (in[pos] == 0xff)
			ll_batch_add_rows_tx(&bb, pos);
		if (in[pos] & 0x40)
			ll_batch_add_withheld_row(&bb, in[pos] % 8, pos, table, chain);
		else
		{
			ll_buf_reset(&e);
			ll_entry_begin(&e, table.ptr, table.len, pos, "pub", 3, salt, 1);
			ll_entry_value(&e, "v", 1, table.ptr, table.len);
			CHECK(!e.failed);
			ll_batch_add_row(&bb, in[pos] % 8, NULL, e.data, e.len);
		}
		pos += 2 + in[pos + 1];
	}
	rc = ll_batch_finish(&bb, fz_sign_fake, NULL, NULL);
	CHECK(rc == LL_WIRE_OK);
	CHECK(ll_batch_decode(out.data, out.len, SIZE_MAX, fz_verify_fake, NULL, &b) == LL_WIRE_OK);
	fz_batch_rebuild(&b);
	fz_batch_redact(&b, len > 0 ? in[0] % 8 - 1 : -1);
	free(e.data);
	free(out.data);
	free(content.data);
}

/* ---- payload, request, hello ------------------------------------------ */

static void
fz_payload(const uint8_t *in, size_t len)
{
	ll_payload	p;
	ll_buf		buf;
	uint8_t		v[LL_HASH_LEN];

	if (ll_payload_decode(in, len, &p) != LL_WIRE_OK)
	{
		CHECK(ll_payload_value(in, len, v) != LL_WIRE_OK);
		return;
	}
	CHECK(len <= LL_PAYLOAD_MAX_LEN);
	CHECK(ll_payload_value(in, len, v) == LL_WIRE_OK);
	ll_buf_init(&buf, fz_realloc);
	CHECK(ll_payload_encode(&buf, &p) == LL_WIRE_OK);
	expect_same(&buf, in, len);
	free(buf.data);
}

static void
fz_request(const uint8_t *in, size_t len)
{
	const uint8_t *hashes;
	uint16_t	n;
	ll_buf		buf;

	if (ll_batch_req_decode(in, len, &n, &hashes) != LL_WIRE_OK)
		return;
	ll_buf_init(&buf, fz_realloc);
	CHECK(ll_batch_req_encode(&buf, hashes, n) == LL_WIRE_OK);
	expect_same(&buf, in, len);
	free(buf.data);
}

static void
fz_hello(const uint8_t *in, size_t len)
{
	ll_hello	h;
	ll_buf		buf;

	if (ll_hello_decode(in, len, &h) != LL_WIRE_OK)
		return;
	ll_buf_init(&buf, fz_realloc);
	CHECK(ll_hello_encode(&buf, &h) == LL_WIRE_OK);
	expect_same(&buf, in, len);
	free(buf.data);
}

static void
fz_kex(const uint8_t *in, size_t len)
{
	ll_kex		k;
	ll_buf		buf;

	if (ll_kex_decode(in, len, &k) != LL_WIRE_OK)
		return;
	ll_buf_init(&buf, fz_realloc);
	CHECK(ll_kex_encode(&buf, k.xpub, k.epoch, k.sig) == LL_WIRE_OK);
	expect_same(&buf, in, len);
	free(buf.data);
}

/* A run that ends in a MAC frame: what it covers is a clean frame run. */
static void
fz_auth(const uint8_t *in, size_t len)
{
	size_t		covered;
	uint64_t	seq;
	const uint8_t *mac;
	ll_frame_iter it;
	ll_frame	f;

	if (!ll_frames_auth(in, len, &covered, &seq, &mac))
		return;
	CHECK(covered + 5 + LL_AUTH_LEN == len && mac == in + covered + 5 + 8);
	ll_frame_iter_init(&it, in, covered);
	while (ll_frame_next(&it, &f) == 1)
		;
	CHECK(it.err == LL_WIRE_OK && it.pos == covered);
}

/* ---- frames ----------------------------------------------------------- */

/* Re-append every frame: a list that iterates cleanly re-encodes exactly. */
static void
fz_frames(const uint8_t *in, size_t len)
{
	ll_frame_iter it;
	ll_frame	f;
	ll_buf		buf;
	int			rc;

	ll_buf_init(&buf, fz_realloc);
	ll_frame_iter_init(&it, in, len);
	while ((rc = ll_frame_next(&it, &f)) == 1)
	{
		CHECK(ll_frame_append(&buf, f.kind, f.body, f.len) == LL_WIRE_OK);
		if (f.kind == LL_FRAME_BATCH)
			fz_batch(f.body, f.len);
		else if (f.kind == LL_FRAME_BATCH_REQ)
			fz_request(f.body, f.len);
		else if (f.kind == LL_FRAME_HELLO)
			fz_hello(f.body, f.len);
		else if (f.kind == LL_FRAME_KEX)
			fz_kex(f.body, f.len);
	}
	CHECK(ll_frame_next(&it, &f) == rc);
	if (rc == 0)
		expect_same(&buf, in, len);
	else
		CHECK(rc < 0 && ll_wire_strerror(rc) != NULL);
	free(buf.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_frames(data, size);
	fz_genesis(data, size);
	fz_batch(data, size);
	fz_payload(data, size);
	fz_request(data, size);
	fz_hello(data, size);
	fz_kex(data, size);
	fz_auth(data, size);
	fz_build(data, size);
	return 0;
}

/* ---- seed corpus ------------------------------------------------------ */

static void
seed_write(const char *dir, const char *name, const ll_buf *buf)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		return;
	fwrite(buf->data, 1, buf->len, f);
	fclose(f);
}

static void
seed_batch(ll_buf *out)
{
	const uint8_t salt[LL_SALT_LEN] = {1};
	uint8_t		chain[LL_HASH_LEN] = {7};
	ll_buf		e;
	ll_buf		content;
	ll_batch_builder bb;

	ll_buf_init(&e, fz_realloc);
	ll_buf_init(&content, fz_realloc);
	ll_entry_begin(&e, "public.t", 8, 1, "pub", 3, salt, 2);
	ll_entry_value(&e, "a", 1, "x", 1);
	ll_entry_null(&e, "b", 1);
	ll_batch_begin(&bb, out, &content, SIZE_MAX, chain, fixed_pk, 1, 2);
	ll_batch_add_rows_tx(&bb, 10);
	ll_batch_add_row(&bb, 0, NULL, e.data, e.len);
	ll_batch_add_withheld_row(&bb, 1, 2, (ll_wire_str) {"public.t", 8}, chain);
	ll_batch_add_member_tx(&bb, 11, chain, (ll_wire_str) {"n", 1}, (ll_wire_str) {"pub", 3});
	ll_batch_remove_member_tx(&bb, 12, chain);
	ll_batch_declare_table_tx(&bb, 13, (ll_wire_str) {"public.t", 8}, chain);
	ll_batch_finish(&bb, fz_sign_fake, NULL, NULL);
	free(e.data);
	free(content.data);
}

static void
seed_messages(ll_buf *g, ll_buf *p, ll_buf *r, ll_buf *h)
{
	const ll_wire_str tiers[2] = {{"pub", 3}, {"sec", 3}};
	uint8_t		hashes[2 * LL_HASH_LEN] = {1};
	ll_member	m[2] = {{hashes + 32, {"b", 1}, {"sec", 3}}, {hashes, {"a", 1}, {"pub", 3}}};
	ll_payload	pl = {3, hashes, 4, 2, hashes};
	ll_hello	hl = {hashes, 5, {"peer", 4}, 1, 2, hashes};

	ll_genesis_encode(g, (ll_wire_str) {"c", 1}, tiers, 2, m, 2);
	ll_payload_encode(p, &pl);
	ll_batch_req_encode(r, hashes, 2);
	ll_hello_encode(h, &hl);
}

static void
seed_corpus(const char *dir)
{
	ll_buf		b[5];
	ll_buf		frames;
	const char *names[5] = {"batch", "genesis", "payload", "request", "hello"};
	int			i;

	for (i = 0; i < 5; i++)
		ll_buf_init(&b[i], fz_realloc);
	ll_buf_init(&frames, fz_realloc);
	seed_batch(&b[0]);
	seed_messages(&b[1], &b[2], &b[3], &b[4]);
	ll_frame_append(&frames, LL_FRAME_CONSENSUS, (const uint8_t *) "bft", 3);
	ll_frame_append(&frames, LL_FRAME_BATCH, b[0].data, b[0].len);
	ll_frame_append(&frames, LL_FRAME_BATCH_REQ, b[3].data, b[3].len);
	ll_frame_append(&frames, LL_FRAME_HELLO, b[4].data, b[4].len);
	for (i = 0; i < 5; i++)
	{
		seed_write(dir, names[i], &b[i]);
		free(b[i].data);
	}
	seed_write(dir, "frames", &frames);
	free(frames.data);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("LL_FUZZ_SEED_DIR");

	(void) argc;
	(void) argv;
	if (dir != NULL && dir[0] != '\0')
		seed_corpus(dir);
	return 0;
}
