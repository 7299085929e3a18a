/*
 * wreq.h -- a write request: what the event loop hands to the writer.
 *
 * A wreq owns its journal record, encoded once on the loop thread:
 *
 *	KV_SET	u16 klen | key | u32 vlen | value | i64 expires_at
 *	KV_SET_RAW  the same; the value is bytes (RESP), not JSON text
 *	KV_DEL	u16 klen | key
 *	EXEC	u32 sql_len | sql | u32 params_len | params (compact JSON)
 *	TX	u32 tx_len | tx (compact JSON array of {"sql","params"})
 *
 * and views (key, value, sql...) that point into the record, so replay
 * decodes a record read from disk into the same shape without copying.
 */
#ifndef STASHD_WREQ_H
#define STASHD_WREQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "store.h"

enum wreq_type {
	WREQ_KV_SET = 1,
	WREQ_KV_DEL = 2,
	WREQ_EXEC = 3,
	WREQ_TX = 4,
	WREQ_KV_SET_RAW = 5,
};

/* A key-value write (set of either kind, or del)? */
#define WREQ_IS_KV(t)                                                          \
	((t) == WREQ_KV_SET || (t) == WREQ_KV_SET_RAW || (t) == WREQ_KV_DEL)

struct kstate;

struct wreq {
	TAILQ_ENTRY(wreq) entry;
	uint64_t       seq;
	uint8_t	       type;
	uint8_t	       durability; /* enum proto_durability */
	unsigned char *rec;	   /* header + payload */
	size_t	       rec_len;
	/* Views into the payload. */
	const char *key;
	size_t	    klen;
	const char *value;
	size_t	    vlen;
	int64_t	    expires_at; /* Unix milliseconds, 0: never */
	const char *sql;
	size_t	    sql_len;
	const char *json; /* params of EXEC, array of TX */
	size_t	    json_len;
	/* Results, filled by the applier. */
	enum store_status   status;
	char		   *message; /* malloc'd, on failure */
	struct store_result res;     /* EXEC */
	char		   *results; /* TX: JSON array text */
	/* Loop side. */
	void	      *owner;	 /* the waiting answer, or NULL */
	size_t	       reserved; /* cache bytes held for it */
	struct kstate *ks;	 /* its key's state, if the latest write */
	uint64_t       khash;	 /* cache_key_hash() of key, or 0 */
	int	       acked;
	char	      *id; /* the request's id, JSON */
	size_t	       id_len;
	int	       deleted; /* KV_DEL: the key existed */
	int	       resp;	/* answered in RESP: id holds the answer */
};
TAILQ_HEAD(wreq_list, wreq);

struct wreq *wreq_kv_set(uint64_t seq, const char *key, size_t klen,
    const char *value, size_t vlen, int64_t expires_at);
struct wreq *wreq_kv_del(uint64_t seq, const char *key, size_t klen);
struct wreq *wreq_exec(uint64_t seq, const char *sql, size_t sql_len,
    const char *params, size_t params_len);
struct wreq *wreq_tx(uint64_t seq, const char *tx, size_t tx_len);
/*
 * Fill w's views from a payload read back from the journal (w->rec stays
 * NULL: the views point into payload). -1 when the payload is malformed.
 */
int wreq_decode(struct wreq *w, uint8_t type, uint64_t seq, const void *payload,
    size_t len);
/* Give w a copy of id (NUL-terminated), from the write queue's pool. */
void wreq_set_id(struct wreq *w, const void *id, size_t id_len);
void wreq_free(struct wreq *w);

#endif /* STASHD_WREQ_H */
