/* wreq.c -- write requests and their journal payloads; see wreq.h. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "log.h"
#include "qpool.h"
#include "wreq.h"
#include "xmalloc.h"

static unsigned char *
put_u16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	return p + 2;
}

static unsigned char *
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
	return p + 4;
}

static unsigned char *
put_bytes(unsigned char *p, const void *b, size_t n)
{
	if (n > 0)
		memcpy(p, b, n);
	return p + n;
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/*
 * A wreq with room for a payload of len bytes; p points at the payload.
 * The record follows the struct in the same allocation, from the write
 * queue's pool (qpool.h).
 */
static struct wreq *
wreq_alloc(uint8_t type, uint64_t seq, size_t len, unsigned char **p)
{
	size_t	     rec_len = journal_record_size(len);
	struct wreq *w = qpool_alloc(sizeof(*w) + rec_len);

	memset(w, 0, sizeof(*w));
	w->type = type;
	w->seq = seq;
	w->rec_len = rec_len;
	w->rec = (unsigned char *)(w + 1);
	*p = w->rec + JOURNAL_RECORD_HEADER;
	return w;
}

/* Seal the record and decode the views from it. */
static struct wreq *
wreq_finish(struct wreq *w)
{
	size_t len = w->rec_len - JOURNAL_RECORD_HEADER;

	/* The CRC is computed by the journal thread (writer.c). */
	if (wreq_decode(
		w, w->type, w->seq, w->rec + JOURNAL_RECORD_HEADER, len) == -1)
		fatalx("wreq: cannot decode what was just encoded");
	return w;
}

struct wreq *
wreq_kv_set(uint64_t seq, const char *key, size_t klen, const char *value,
    size_t vlen, int64_t expires_at)
{
	unsigned char *p;
	struct wreq   *w =
	    wreq_alloc(WREQ_KV_SET, seq, 2 + klen + 4 + vlen + 8, &p);

	p = put_u16(p, (uint16_t)klen);
	p = put_bytes(p, key, klen);
	p = put_u32(p, (uint32_t)vlen);
	p = put_bytes(p, value, vlen);
	p = put_u32(p, (uint32_t)(uint64_t)expires_at);
	put_u32(p, (uint32_t)((uint64_t)expires_at >> 32));
	return wreq_finish(w);
}

struct wreq *
wreq_kv_del(uint64_t seq, const char *key, size_t klen)
{
	unsigned char *p;
	struct wreq   *w = wreq_alloc(WREQ_KV_DEL, seq, 2 + klen, &p);

	p = put_u16(p, (uint16_t)klen);
	put_bytes(p, key, klen);
	return wreq_finish(w);
}

struct wreq *
wreq_exec(uint64_t seq, const char *sql, size_t sql_len, const char *params,
    size_t params_len)
{
	unsigned char *p;
	struct wreq   *w =
	    wreq_alloc(WREQ_EXEC, seq, 4 + sql_len + 4 + params_len, &p);

	p = put_u32(p, (uint32_t)sql_len);
	p = put_bytes(p, sql, sql_len);
	p = put_u32(p, (uint32_t)params_len);
	put_bytes(p, params, params_len);
	return wreq_finish(w);
}

struct wreq *
wreq_tx(uint64_t seq, const char *tx, size_t tx_len)
{
	unsigned char *p;
	struct wreq   *w = wreq_alloc(WREQ_TX, seq, 4 + tx_len, &p);

	p = put_u32(p, (uint32_t)tx_len);
	put_bytes(p, tx, tx_len);
	return wreq_finish(w);
}

int
wreq_decode(
    struct wreq *w, uint8_t type, uint64_t seq, const void *payload, size_t len)
{
	const unsigned char *p = payload, *end = p + len;
	uint32_t	     n;

	w->type = type;
	w->seq = seq;
	switch (type) {
	case WREQ_KV_SET:
	case WREQ_KV_SET_RAW:
	case WREQ_KV_DEL:
		if (end - p < 2)
			return -1;
		w->klen = (size_t)p[0] | (size_t)p[1] << 8;
		p += 2;
		if ((size_t)(end - p) < w->klen || w->klen == 0)
			return -1;
		w->key = (const char *)p;
		p += w->klen;
		if (type == WREQ_KV_DEL)
			return p == end ? 0 : -1;
		if (end - p < 4)
			return -1;
		n = get_u32(p);
		p += 4;
		if ((size_t)(end - p) < (size_t)n + 8)
			return -1;
		w->value = (const char *)p;
		w->vlen = n;
		p += n;
		w->expires_at = (int64_t)((uint64_t)get_u32(p) |
					  (uint64_t)get_u32(p + 4) << 32);
		return p + 8 == end ? 0 : -1;
	case WREQ_EXEC:
		if (end - p < 4)
			return -1;
		n = get_u32(p);
		p += 4;
		if ((size_t)(end - p) < (size_t)n + 4)
			return -1;
		w->sql = (const char *)p;
		w->sql_len = n;
		p += n;
		n = get_u32(p);
		p += 4;
		if ((size_t)(end - p) != n)
			return -1;
		w->json = n > 0 ? (const char *)p : NULL;
		w->json_len = n;
		return 0;
	case WREQ_TX:
		if (end - p < 4)
			return -1;
		n = get_u32(p);
		p += 4;
		if ((size_t)(end - p) != n)
			return -1;
		w->json = (const char *)p;
		w->json_len = n;
		return 0;
	default: return -1;
	}
}

void
wreq_set_id(struct wreq *w, const void *id, size_t id_len)
{
	qpool_free(w->id);
	w->id = qpool_alloc(id_len + 1);
	if (id_len > 0)
		memcpy(w->id, id, id_len);
	w->id[id_len] = '\0';
	w->id_len = id_len;
}

void
wreq_free(struct wreq *w)
{
	if (w == NULL)
		return;
	free(w->message);
	free(w->results);
	qpool_free(w->id);
	qpool_free(w);
}
