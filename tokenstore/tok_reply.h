/*
 * Reading replies, shared by tok_store.c and tok_oauth.c: each keeps the
 * reason of its last failure (tok_store_errstr, tok_oauth_errstr) in a
 * struct tok_reply_err; Redis error replies and corrupt records are
 * logged here, once, secret-free.
 */
#ifndef TOKENSTORE_TOK_REPLY_H
#define TOKENSTORE_TOK_REPLY_H

#include <stdbool.h>

#include "tokenstore/tok.h"

#define TOK_REPLY_ERR_MAX	160

struct tok_reply_err {
	char	s[TOK_REPLY_ERR_MAX];	/* initialise to "unknown error" */
};

/* Keeps why; NULL is "unknown error". */
void	 tok_reply_err_set(struct tok_reply_err *, const char *why);
/* A Redis error reply to operation what: logs Redis's text (never a value
 * of ours) and keeps it. */
void	 tok_reply_error(struct tok_reply_err *, const redisReply *,
	    const char *what);
/* A record that does not parse: logs what ("token") and which (its id,
 * sanitized) and keeps "corrupt record". */
void	 tok_reply_corrupt(struct tok_reply_err *, const char *what,
	    const char *which);
/* true if r is no reply (err says why, from tok.c) or an error reply, with
 * the reason kept; false for a reply to read. */
bool	 tok_reply_failed(struct tok_reply_err *, const redisReply *r,
	    const char *err, const char *what);

/* The string value of field name in an HGETALL reply, or NULL. */
const char *tok_reply_hash_field(const redisReply *h, const char *name);

#endif
