/*
 * bft_wire.c
 *		Versioned, length-prefixed binary encoding of consensus messages.
 *
 * The decoder is the first thing that touches bytes from an untrusted peer,
 * so it checks every length against the remaining input before reading,
 * never allocates, and returns an error code instead of aborting.
 */
#include <string.h>

#include "bft.h"

typedef struct wr
{
	uint8_t    *p;
	size_t		cap;
	size_t		len;
	bool		overflow;
} wr;

typedef struct rd
{
	const uint8_t *p;
	size_t		len;
	size_t		pos;
	bool		bad;
} rd;

/* Appends n bytes, or records overflow and appends nothing. */
static void
w_bytes(wr *w, const void *src, size_t n)
{
	if (w->overflow || w->cap - w->len < n)
	{
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void
w_u8(wr *w, uint8_t v)
{
	w_bytes(w, &v, 1);
}

static void
w_u16(wr *w, uint16_t v)
{
	uint8_t		b[2];

	b[0] = (uint8_t) (v >> 8);
	b[1] = (uint8_t) v;
	w_bytes(w, b, 2);
}

static void
w_u32(wr *w, uint32_t v)
{
	uint8_t		b[4];

	b[0] = (uint8_t) (v >> 24);
	b[1] = (uint8_t) (v >> 16);
	b[2] = (uint8_t) (v >> 8);
	b[3] = (uint8_t) v;
	w_bytes(w, b, 4);
}

static void
w_u64(wr *w, uint64_t v)
{
	w_u32(w, (uint32_t) (v >> 32));
	w_u32(w, (uint32_t) v);
}

/* Reads n bytes or marks the reader bad; a bad reader yields zeros. */
static const uint8_t *
r_bytes(rd *r, size_t n)
{
	static const uint8_t zeros[BFT_SIG_LEN > BFT_HASH_LEN ? BFT_SIG_LEN : BFT_HASH_LEN];
	const uint8_t *p;

	if (r->bad || r->len - r->pos < n)
	{
		r->bad = true;
		return n <= sizeof(zeros) ? zeros : NULL;
	}
	p = r->p + r->pos;
	r->pos += n;
	return p;
}

static uint8_t
r_u8(rd *r)
{
	const uint8_t *p = r_bytes(r, 1);

	return p[0];
}

static uint16_t
r_u16(rd *r)
{
	const uint8_t *p = r_bytes(r, 2);

	return (uint16_t) ((p[0] << 8) | p[1]);
}

static uint32_t
r_u32(rd *r)
{
	const uint8_t *p = r_bytes(r, 4);

	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static uint64_t
r_u64(rd *r)
{
	uint64_t	hi = r_u32(r);

	return (hi << 32) | r_u32(r);
}

/* Canonical booleans only: anything but 0/1 makes the reader bad. */
static bool
r_bool(rd *r, int *err)
{
	uint8_t		v = r_u8(r);

	if (v > 1)
		*err = BFT_ERR_FIELD;
	return v == 1;
}

/*
 * The bytes every signature covers; fixed length so that no two distinct
 * (type, height, round, value) tuples can share an encoding.
 */
void
bft_sign_bytes(const uint8_t chain_id[BFT_HASH_LEN], uint8_t type,
			   uint64_t height, uint32_t round, int32_t valid_round,
			   bool is_nil, const uint8_t value[BFT_HASH_LEN],
			   uint8_t out[BFT_SIGN_BYTES_LEN])
{
	wr			w = {out, BFT_SIGN_BYTES_LEN, 0, false};
	static const uint8_t zero[BFT_HASH_LEN];

	w_bytes(&w, "LLBFT1", 6);
	w_bytes(&w, chain_id, BFT_HASH_LEN);
	w_u8(&w, type);
	w_u64(&w, height);
	w_u32(&w, round);
	w_u32(&w, (uint32_t) (type == BFT_MSG_PROPOSAL ? valid_round : -1));
	w_u8(&w, is_nil ? 1 : 0);
	w_bytes(&w, is_nil ? zero : value, BFT_HASH_LEN);
}

static void
w_signers(wr *w, const bft_signer *s, uint16_t n)
{
	uint16_t	i;

	w_u16(w, n);
	for (i = 0; i < n; i++)
	{
		w_u16(w, s[i].validator);
		w_bytes(w, s[i].sig, BFT_SIG_LEN);
	}
}

/*
 * Reads a signer list; it must be sorted by strictly increasing index so
 * that a list has exactly one encoding and cannot repeat a signer.
 */
static int
r_signers(rd *r, bft_signer *s, uint16_t *n, bool allow_empty)
{
	uint16_t	cnt = r_u16(r);
	uint16_t	i;

	if (r->bad)
		return BFT_ERR_TRUNCATED;
	if (cnt > BFT_MAX_VALIDATORS)
		return BFT_ERR_OVERSIZE;
	if (cnt == 0 && !allow_empty)
		return BFT_ERR_FIELD;
	for (i = 0; i < cnt; i++)
	{
		s[i].validator = r_u16(r);
		memcpy(s[i].sig, r_bytes(r, BFT_SIG_LEN), BFT_SIG_LEN);
		if (r->bad)
			return BFT_ERR_TRUNCATED;
		if (s[i].validator >= BFT_MAX_VALIDATORS)
			return BFT_ERR_SIGNER;
		if (i > 0 && s[i].validator <= s[i - 1].validator)
			return BFT_ERR_SIGNER;
	}
	*n = cnt;
	return BFT_OK;
}

/* Encodes m; BFT_ERR_SPACE if it does not fit, BFT_ERR_FIELD if invalid. */
int
bft_encode(const bft_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	wr			w = {buf, cap, 0, false};
	size_t		body;

	w_u8(&w, BFT_WIRE_VERSION);
	w_u8(&w, m->type);
	w_u32(&w, 0);				/* body length, patched below */
	switch (m->type)
	{
		case BFT_MSG_PROPOSAL:
			{
				const bft_proposal *p = &m->u.proposal;

				if (p->payload_len > BFT_MAX_PAYLOAD || p->npol > BFT_MAX_VALIDATORS)
					return BFT_ERR_OVERSIZE;
				w_u64(&w, p->height);
				w_u32(&w, p->round);
				w_u32(&w, (uint32_t) p->valid_round);
				w_u16(&w, p->proposer);
				w_bytes(&w, p->value, BFT_HASH_LEN);
				w_u32(&w, p->payload_len);
				if (p->payload_len)
					w_bytes(&w, p->payload, p->payload_len);
				w_signers(&w, p->pol, p->npol);
				w_bytes(&w, p->sig, BFT_SIG_LEN);
				break;
			}
		case BFT_MSG_PREVOTE:
		case BFT_MSG_PRECOMMIT:
			{
				const bft_vote *v = &m->u.vote;

				w_u64(&w, v->height);
				w_u32(&w, v->round);
				w_u16(&w, v->validator);
				w_u8(&w, v->is_nil ? 1 : 0);
				if (!v->is_nil)
					w_bytes(&w, v->value, BFT_HASH_LEN);
				w_bytes(&w, v->sig, BFT_SIG_LEN);
				break;
			}
		case BFT_MSG_STATUS:
			w_u64(&w, m->u.status.height);
			w_u32(&w, m->u.status.round);
			w_u16(&w, m->u.status.validator);
			break;
		case BFT_MSG_BLOCK_REQ:
			w_u64(&w, m->u.req.height);
			break;
		case BFT_MSG_BLOCK_RESP:
			{
				const bft_block_resp *b = &m->u.resp;

				if (b->payload_len > BFT_MAX_PAYLOAD || b->cert.nsigs > BFT_MAX_VALIDATORS)
					return BFT_ERR_OVERSIZE;
				w_u64(&w, b->cert.height);
				w_u32(&w, b->cert.round);
				w_bytes(&w, b->cert.value, BFT_HASH_LEN);
				w_u32(&w, b->payload_len);
				if (b->payload_len)
					w_bytes(&w, b->payload, b->payload_len);
				w_signers(&w, b->cert.sigs, b->cert.nsigs);
				break;
			}
		default:
			return BFT_ERR_TYPE;
	}
	if (w.overflow)
		return BFT_ERR_SPACE;
	body = w.len - BFT_WIRE_HDR;
	buf[2] = (uint8_t) (body >> 24);
	buf[3] = (uint8_t) (body >> 16);
	buf[4] = (uint8_t) (body >> 8);
	buf[5] = (uint8_t) body;
	*len = w.len;
	return BFT_OK;
}

/*
 * Strict decode.  On success every field of the message's union member is
 * set and payload pointers reference data; on failure *m is unspecified.
 */
int
bft_decode(const uint8_t *data, size_t len, bft_msg *m)
{
	rd			r;
	uint32_t	body;
	int			err = BFT_OK;

	if (data == NULL || len < BFT_WIRE_HDR)
		return BFT_ERR_TRUNCATED;
	if (data[0] != BFT_WIRE_VERSION)
		return BFT_ERR_VERSION;
	m->type = data[1];
	body = ((uint32_t) data[2] << 24) | ((uint32_t) data[3] << 16) |
		((uint32_t) data[4] << 8) | (uint32_t) data[5];
	if (body > BFT_MAX_MSG - BFT_WIRE_HDR)
		return BFT_ERR_OVERSIZE;
	if (body > len - BFT_WIRE_HDR)
		return BFT_ERR_TRUNCATED;
	if (body < len - BFT_WIRE_HDR)
		return BFT_ERR_TRAILING;
	r.p = data + BFT_WIRE_HDR;
	r.len = body;
	r.pos = 0;
	r.bad = false;

	switch (m->type)
	{
		case BFT_MSG_PROPOSAL:
			{
				bft_proposal *p = &m->u.proposal;

				p->height = r_u64(&r);
				p->round = r_u32(&r);
				p->valid_round = (int32_t) r_u32(&r);
				p->proposer = r_u16(&r);
				memcpy(p->value, r_bytes(&r, BFT_HASH_LEN), BFT_HASH_LEN);
				p->payload_len = r_u32(&r);
				if (r.bad)
					return BFT_ERR_TRUNCATED;
				if (p->payload_len > BFT_MAX_PAYLOAD)
					return BFT_ERR_OVERSIZE;
				if (p->valid_round < -1 || (p->valid_round >= 0 &&
											(uint32_t) p->valid_round >= p->round))
					return BFT_ERR_FIELD;
				if (p->proposer >= BFT_MAX_VALIDATORS)
					return BFT_ERR_SIGNER;
				p->payload = p->payload_len ? r_bytes(&r, p->payload_len) : NULL;
				if (r.bad)
					return BFT_ERR_TRUNCATED;
				err = r_signers(&r, p->pol, &p->npol, true);
				if (err != BFT_OK)
					return err;
				if (p->valid_round == -1 && p->npol != 0)
					return BFT_ERR_FIELD;
				memcpy(p->sig, r_bytes(&r, BFT_SIG_LEN), BFT_SIG_LEN);
				break;
			}
		case BFT_MSG_PREVOTE:
		case BFT_MSG_PRECOMMIT:
			{
				bft_vote   *v = &m->u.vote;

				v->type = m->type;
				v->height = r_u64(&r);
				v->round = r_u32(&r);
				v->validator = r_u16(&r);
				v->is_nil = r_bool(&r, &err);
				if (err != BFT_OK)
					return err;
				if (v->is_nil)
					memset(v->value, 0, BFT_HASH_LEN);
				else
					memcpy(v->value, r_bytes(&r, BFT_HASH_LEN), BFT_HASH_LEN);
				memcpy(v->sig, r_bytes(&r, BFT_SIG_LEN), BFT_SIG_LEN);
				if (!r.bad && v->validator >= BFT_MAX_VALIDATORS)
					return BFT_ERR_SIGNER;
				break;
			}
		case BFT_MSG_STATUS:
			m->u.status.height = r_u64(&r);
			m->u.status.round = r_u32(&r);
			m->u.status.validator = r_u16(&r);
			break;
		case BFT_MSG_BLOCK_REQ:
			m->u.req.height = r_u64(&r);
			break;
		case BFT_MSG_BLOCK_RESP:
			{
				bft_block_resp *b = &m->u.resp;

				b->cert.height = r_u64(&r);
				b->cert.round = r_u32(&r);
				memcpy(b->cert.value, r_bytes(&r, BFT_HASH_LEN), BFT_HASH_LEN);
				b->payload_len = r_u32(&r);
				if (r.bad)
					return BFT_ERR_TRUNCATED;
				if (b->payload_len > BFT_MAX_PAYLOAD)
					return BFT_ERR_OVERSIZE;
				b->payload = b->payload_len ? r_bytes(&r, b->payload_len) : NULL;
				if (r.bad)
					return BFT_ERR_TRUNCATED;
				err = r_signers(&r, b->cert.sigs, &b->cert.nsigs, false);
				if (err != BFT_OK)
					return err;
				break;
			}
		default:
			return BFT_ERR_TYPE;
	}
	if (r.bad)
		return BFT_ERR_TRUNCATED;
	if (r.pos != r.len)
		return BFT_ERR_TRAILING;
	return BFT_OK;
}

/* Static strings only, so callers may log them from any context. */
const char *
bft_strerror(int err)
{
	switch (err)
	{
		case BFT_OK:
			return "ok";
		case BFT_ERR_TRUNCATED:
			return "truncated";
		case BFT_ERR_TRAILING:
			return "trailing bytes";
		case BFT_ERR_VERSION:
			return "unknown version";
		case BFT_ERR_TYPE:
			return "unknown message type";
		case BFT_ERR_OVERSIZE:
			return "oversize field";
		case BFT_ERR_FIELD:
			return "invalid field";
		case BFT_ERR_SIGNER:
			return "invalid signer";
		case BFT_ERR_SIG:
			return "bad signature";
		case BFT_ERR_QUORUM:
			return "no quorum";
		case BFT_ERR_SPACE:
			return "no space";
		case BFT_ERR_VALSET:
			return "invalid validator set";
	}
	return "unknown error";
}
