/*
 * gen_proof.c
 *		Test helper: build a small deterministic chain with ll_core.c and
 *		write a valid proof and digest for one of its rows.
 *
 * Usage: gen_proof PROOF.json DIGEST.json [row_block [position
 *                  [digest_height [head [rows_in_row_block]]]]]
 * Defaults: row 2 of block 3 (5 rows), digest at height 9, head 11.  The
 * proven row is entry 17 of public.declarations, tier "customs".
 */
#include "ll_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define CHANNEL "customs"
#define TABLE "public.declarations"
#define TIER "customs"
/* UTF-8, a JSON-escaped quote and backslash */
#define DESCR "K\xc3\xa4se \"quoted\"\\"
#define MAX_HEIGHT 64
#define MAX_ROWS 4096

typedef struct gen_block
{
	ll_block_header hdr;
	uint8_t		hash[LL_HASH_LEN];
} gen_block;

static void *
std_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

static void
die(const char *msg)
{
	fprintf(stderr, "gen_proof: %s\n", msg);
	exit(2);
}

static json_t *
hexj(const uint8_t *data, size_t len)
{
	char		hex[2 * LL_HASH_LEN + 1];

	ll_hex_encode(data, len, hex);
	return json_string(hex);
}

static unsigned long
arg(int argc, char **argv, int i, unsigned long dflt)
{
	return argc > i ? strtoul(argv[i], NULL, 10) : dflt;
}

/* Deterministic content of row i of block h; the target row is entry 17. */
static void
encode_row(ll_buf *buf, uint64_t id, uint8_t salt[LL_SALT_LEN], json_t *cols)
{
	char		idtext[32];
	int			k;

	for (k = 0; k < LL_SALT_LEN; k++)
		salt[k] = (uint8_t) (id * 31 + k * 7);
	snprintf(idtext, sizeof(idtext), "%llu", (unsigned long long) id);

	ll_buf_reset(buf);
	ll_entry_begin(buf, TABLE, strlen(TABLE), id, TIER, strlen(TIER), salt, 4);
	ll_entry_value(buf, "id", 2, idtext, strlen(idtext));
	ll_entry_null(buf, "note", 4);
	ll_entry_value(buf, "descr", 5, DESCR, strlen(DESCR));
	ll_entry_value(buf, "empty", 5, "", 0);
	if (cols != NULL)
	{
		json_array_append_new(cols, json_pack("{s:s,s:s}", "name", "id", "value", idtext));
		json_array_append_new(cols, json_pack("{s:s,s:n}", "name", "note", "value"));
		json_array_append_new(cols, json_pack("{s:s,s:s}", "name", "descr", "value",
											  DESCR));
		json_array_append_new(cols, json_pack("{s:s,s:s}", "name", "empty", "value", ""));
	}
}

int
main(int argc, char **argv)
{
	unsigned long row_block = arg(argc, argv, 3, 3);
	unsigned long position = arg(argc, argv, 4, 2);
	unsigned long digest_height = arg(argc, argv, 5, 9);
	unsigned long head = arg(argc, argv, 6, 11);
	unsigned long target_rows = arg(argc, argv, 7, 5);
	static gen_block chain[MAX_HEIGHT + 1];
	static uint8_t leaves[MAX_ROWS * LL_HASH_LEN];
	static uint8_t scratch[MAX_ROWS * LL_HASH_LEN];
	uint8_t		path[64 * LL_HASH_LEN];
	uint8_t		config_hash[LL_HASH_LEN];
	uint8_t		target_leaf[LL_HASH_LEN];
	uint8_t		target_salt[LL_SALT_LEN];
	size_t		path_len = 0;
	ll_buf		buf;
	ll_buf		hbuf;
	json_t	   *proof;
	json_t	   *digest;
	json_t	   *cols = json_array();
	json_t	   *jpath = json_array();
	json_t	   *jblocks = json_array();
	unsigned long h;
	size_t		i;

	if (argc < 3 || head > MAX_HEIGHT || row_block > head ||
		digest_height > MAX_HEIGHT || target_rows == 0 ||
		target_rows > MAX_ROWS || position >= target_rows)
		die("bad arguments");

	ll_buf_init(&buf, std_realloc);
	ll_buf_init(&hbuf, std_realloc);
	ll_config_begin(&buf, CHANNEL, strlen(CHANNEL), 2);
	ll_config_tier(&buf, "public", 6);
	ll_config_tier(&buf, TIER, strlen(TIER));
	if (buf.failed || !ll_sha256(buf.data, buf.len, config_hash))
		die("config");

	for (h = 0; h <= (head > digest_height ? head : digest_height); h++)
	{
		gen_block  *b = &chain[h];
		size_t		rows = h == row_block ? target_rows : h % 4;

		for (i = 0; i < rows; i++)
		{
			uint64_t	id = (h == row_block && i == position) ? 17 : 1000 * h + i;
			uint8_t		salt[LL_SALT_LEN];
			bool		target = h == row_block && i == position;

			uint8_t		commitment[LL_HASH_LEN];

			encode_row(&buf, id, salt, target ? cols : NULL);
			if (buf.failed || !ll_leaf_hash(buf.data, buf.len, commitment) ||
				!ll_entry_leaf(id, TIER, strlen(TIER), commitment, leaves + i * LL_HASH_LEN))
				die("leaf");
			if (target)
			{
				memcpy(target_leaf, commitment, LL_HASH_LEN);
				memcpy(target_salt, salt, LL_SALT_LEN);
			}
		}
		b->hdr.channel = CHANNEL;
		b->hdr.channel_len = strlen(CHANNEL);
		b->hdr.height = h;
		if (h == 0)
			memset(b->hdr.prev_hash, 0, LL_HASH_LEN);
		else
			memcpy(b->hdr.prev_hash, chain[h - 1].hash, LL_HASH_LEN);
		if (!ll_merkle_root(leaves, rows, scratch, b->hdr.merkle_root))
			die("root");
		b->hdr.time_us = INT64_C(1732464000000000) + (int64_t) h * 60000000;
		b->hdr.tx_count = (uint32_t) ((rows + 1) / 2);
		b->hdr.row_count = (uint32_t) rows;
		memcpy(b->hdr.config_hash, config_hash, LL_HASH_LEN);
		if (!ll_block_hash(&b->hdr, &hbuf, b->hash))
			die("block hash");
		if (h == row_block &&
			!ll_merkle_path(leaves, rows, position, path, &path_len))
			die("path");
	}

	for (i = 0; i < path_len; i++)
		json_array_append_new(jpath, hexj(path + i * LL_HASH_LEN, LL_HASH_LEN));
	for (h = row_block; h <= head; h++)
	{
		gen_block  *b = &chain[h];

		json_array_append_new(jblocks, json_pack("{s:I,s:o,s:o,s:I,s:I,s:I,s:o,s:o}",
												 "height", (json_int_t) h,
												 "prev_hash", hexj(b->hdr.prev_hash, LL_HASH_LEN),
												 "merkle_root", hexj(b->hdr.merkle_root, LL_HASH_LEN),
												 "time_us", (json_int_t) b->hdr.time_us,
												 "tx_count", (json_int_t) b->hdr.tx_count,
												 "row_count", (json_int_t) b->hdr.row_count,
												 "config_hash", hexj(b->hdr.config_hash, LL_HASH_LEN),
												 "hash", hexj(b->hash, LL_HASH_LEN)));
	}

	proof = json_pack("{s:i,s:s,s:I,s:s,s:s,s:o,s:o,s:o,s:I,s:I,s:I,s:o,s:o}",
					  "version", 1,
					  "channel", CHANNEL,
					  "entry", (json_int_t) 17,
					  "table", TABLE,
					  "tier", TIER,
					  "salt", hexj(target_salt, LL_SALT_LEN),
					  "columns", cols,
					  "leaf_hash", hexj(target_leaf, LL_HASH_LEN),
					  "height", (json_int_t) row_block,
					  "position", (json_int_t) position,
					  "tree_size", (json_int_t) target_rows,
					  "path", jpath,
					  "blocks", jblocks);
	digest = json_pack("{s:i,s:s,s:I,s:o,s:s,s:o}",
					   "version", 1,
					   "channel", CHANNEL,
					   "height", (json_int_t) digest_height,
					   "block_hash", hexj(chain[digest_height].hash, LL_HASH_LEN),
					   "time", "2026-11-24T16:00:00Z",
					   "genesis_hash", hexj(chain[0].hash, LL_HASH_LEN));
	if (proof == NULL || digest == NULL)
		die("json_pack");
	if (json_dump_file(proof, argv[1], JSON_INDENT(1)) != 0 ||
		json_dump_file(digest, argv[2], JSON_INDENT(1)) != 0)
		die("cannot write output");
	json_decref(proof);
	json_decref(digest);
	free(buf.data);
	free(hbuf.data);
	return 0;
}
