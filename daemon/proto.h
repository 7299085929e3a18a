/*
 * proto.h -- parsing of protocol v1 request lines.
 *
 * proto_parse() takes one request line (without its '\n') in a buffer it
 * may modify, validates it completely (JSON grammar, UTF-8, nesting depth,
 * field types) and fills a struct proto_request whose pointers point into
 * that buffer: keys are unescaped in place, values are compacted in place.
 * Nothing is allocated, so a request costs no malloc and a hostile line
 * cannot make the parser use more than its own stack, bounded by the depth
 * limit.
 */
#ifndef STASHD_PROTO_H
#define STASHD_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum proto_op {
	PROTO_OP_NONE = 0,
	PROTO_OP_PING,
	PROTO_OP_GET,
	PROTO_OP_MGET,
	PROTO_OP_SET,
	PROTO_OP_DEL,
	PROTO_OP_EXEC,
	PROTO_OP_QUERY,
	PROTO_OP_SYNC,
	PROTO_OP_STATS,
	PROTO_OP__COUNT
};

enum proto_durability {
	PROTO_DUR_DEFAULT = 0,
	PROTO_DUR_ASYNC,
	PROTO_DUR_JOURNAL,
	PROTO_DUR_COMMIT,
};

/* The error classes proto_parse() can report. */
enum proto_status {
	PROTO_OK = 0,
	PROTO_BAD_REQUEST, /* answer bad_request, keep the connection */
	PROTO_TOO_LARGE,   /* answer too_large, keep the connection */
};

struct proto_limits {
	size_t depth_max; /* JSON nesting, the request object is 1 */
	size_t mget_max;  /* keys in one mget */
};

struct proto_request {
	enum proto_op op;
	/* Raw JSON text of "id" (a scalar), NULL when absent. */
	const char *id;
	size_t	    id_len;
	/* Unescaped key bytes (get, set, del). */
	const char *key;
	size_t	    key_len;
	/* Compact JSON text of the value (set). */
	const char *value;
	size_t	    value_len;
	/* The keys of an mget: walk them with proto_keys_next(). */
	char  *keys;
	size_t keys_len;
	size_t nkeys;
	/* Unescaped SQL text (exec, query) and compact JSON of params/tx. */
	const char	     *sql;
	size_t		      sql_len;
	const char	     *params;
	size_t		      params_len;
	const char	     *tx;
	size_t		      tx_len;
	uint32_t	      ttl; /* 0 when absent */
	int		      has_if_version;
	uint64_t	      if_version;
	enum proto_durability durability;
	/* Room for an error message that names a field. */
	char errbuf[128];
};

/* Iterator over the keys of an mget. */
struct proto_keys_iter {
	char *p;
	char *end;
};

/*
 * Parse line[0..len). On failure, returns the status and sets *errmsg to
 * a static message; req->id is still filled when the id could be read, so
 * the error answer can echo it.
 */
enum proto_status proto_parse(char *line, size_t len,
    const struct proto_limits *limits, struct proto_request *req,
    const char **errmsg);

/* Start walking the keys of a parsed mget. */
void proto_keys_init(
    struct proto_keys_iter *it, const struct proto_request *req);
/* Next key of an mget (unescaped in place); 0 when there are no more. */
int proto_keys_next(struct proto_keys_iter *it, const char **key, size_t *len);

const char *proto_op_name(enum proto_op op);
const char *proto_durability_name(enum proto_durability d);

/* Is buf[0..len) valid UTF-8 (no overlongs, no surrogates)? */
int proto_utf8_valid(const char *buf, size_t len);

#endif /* STASHD_PROTO_H */
