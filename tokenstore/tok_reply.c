/*
 * Failure reasons and hash fields of Redis replies (tok_reply.h). Redis's
 * error text and record ids are sanitized before they reach a log line.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "tokenstore/tok_reply.h"

void
tok_reply_err_set(struct tok_reply_err *e, const char *why)
{
	snprintf(e->s, sizeof(e->s), "%s", why != NULL ? why : "unknown error");
}

void
tok_reply_error(struct tok_reply_err *e, const redisReply *r, const char *what)
{
	char buf[128];

	str_sanitize(r->str != NULL ? r->str : "", 100, buf, sizeof(buf));
	log_error("event=redis_error op=%s reply=\"%s\"", what, buf);
	tok_reply_err_set(e, buf);
}

void
tok_reply_corrupt(struct tok_reply_err *e, const char *what,
    const char *which)
{
	char buf[96];

	str_sanitize(which != NULL ? which : "", 80, buf, sizeof(buf));
	log_error("event=redis_corrupt record=%s key=\"%s\"", what, buf);
	tok_reply_err_set(e, "corrupt record");
}

bool
tok_reply_failed(struct tok_reply_err *e, const redisReply *r,
    const char *err, const char *what)
{
	if (r == NULL) {
		tok_reply_err_set(e, err);
		return true;
	}
	if (r->type != REDIS_REPLY_ERROR)
		return false;
	tok_reply_error(e, r, what);
	return true;
}

const char *
tok_reply_hash_field(const redisReply *h, const char *name)
{
	for (size_t i = 0; i + 1 < h->elements; i += 2) {
		const redisReply *k = h->element[i], *v = h->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
			return v->type == REDIS_REPLY_STRING ? v->str : NULL;
	}
	return NULL;
}
