/*
 * The Redis connection of one process: hiredis async API on the process's
 * libevent loop, a timer on every request (hiredis 0.14 has none), and
 * automatic reconnection. Fail closed: while Redis is down or hung, every
 * request fails within the configured timeout with a temporary error.
 */
#ifndef TOKENSTORE_TOK_H
#define TOKENSTORE_TOK_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis.h>

struct event_base;
struct tok;
struct tok_req;

/* reply is NULL on failure, with err set ("timeout", "redis unavailable",
 * "connection lost"); a Redis error reply (REDIS_REPLY_ERROR) is passed as
 * a reply. hiredis frees the reply after the callback returns: copy out
 * what is needed. Never called from inside tok_cmd*(). */
typedef void tok_reply_cb(void *arg, redisReply *reply, const char *err);

/* Highest database number in a URL: the limit of the config check too
 * (CFG_REDIS_DB_MAX in common/cfg.c). */
#define TOK_DB_MAX	1000

/* url: "redis://[:password@]host:port[/db]" or "unix:/path[?db=N]". A host
 * name is resolved here, once, with a blocking lookup (so call this before
 * the loop runs); every connect and reconnect then uses that address, and
 * the loop never waits on DNS. Returns NULL with a message in err for a
 * bad URL or a name that does not resolve. Connects at once. */
struct tok	*tok_new(struct event_base *, const char *url, const char *prefix,
		    long long timeout_ms, char *err, size_t errlen);
void		 tok_free(struct tok **);

/* Sends one command. Never fails synchronously: if Redis is not connected
 * the callback runs on the next loop turn with "redis unavailable". The
 * returned handle is valid until the callback has run or tok_req_cancel. */
struct tok_req	*tok_cmd(struct tok *, tok_reply_cb *, void *arg,
		    const char *fmt, ...);
struct tok_req	*tok_cmdv(struct tok *, tok_reply_cb *, void *arg, int argc,
		    const char **argv, const size_t *argvlen);
/* The callback will not run. Safe to call with NULL. */
void		 tok_req_cancel(struct tok_req *);
/* Wrappers that allocate a context per request (arg) register its
 * destructor here: it runs if the request is cancelled before its
 * callback, so the context never leaks. */
void		 tok_req_set_cancel_fn(struct tok_req *, void (*)(void *));

bool		 tok_is_up(const struct tok *);
struct event_base *tok_base(const struct tok *);
const char	*tok_prefix(const struct tok *);
long long	 tok_timeout_ms(const struct tok *);

/* Subscribes (on a second connection, resubscribed after reconnects) to a
 * pub/sub channel (the prefix is added). cb gets each message payload. */
typedef void tok_message_cb(void *arg, const char *payload, size_t len);
int		 tok_subscribe(struct tok *, const char *channel,
		    tok_message_cb *, void *arg);
/* Connects the pub/sub link once every subscription is registered. */
void		 tok_subscribe_start(struct tok *);

#endif
