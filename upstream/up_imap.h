/*
 * Upstream IMAP login: resolve, connect, [TLS], greeting, CAPABILITY,
 * [STARTTLS, CAPABILITY], authenticate, post-login CAPABILITY. On success
 * the caller steals the connected bufferevent and relays bytes over it.
 */
#ifndef UPSTREAM_UP_IMAP_H
#define UPSTREAM_UP_IMAP_H

#include "upstream/up.h"

struct bufferevent;
struct up_imap;

/* Called exactly once, never from inside up_imap_new. why is a short,
 * secret-free, human-readable reason (NULL on success); for UP_FAIL_AUTH it
 * carries the upstream's NO text (sanitized). The callback may free the
 * up_imap. */
typedef void up_imap_done_cb(void *arg, enum up_fail fail, const char *why);

struct up_imap *up_imap_new(const struct up_env *, const struct up_target *,
		    up_imap_done_cb *, void *arg);
/* After success: the connected bufferevent (socket or OpenSSL), callbacks
 * cleared, reading disabled; bytes the upstream sent after its tagged OK are
 * still in its input buffer. The caller owns it; up_imap_free no longer
 * touches it. */
struct bufferevent *up_imap_steal_bev(struct up_imap *);
/* After success: the upstream's post-login capability list (the text after
 * "CAPABILITY "), without STARTTLS, LOGINDISABLED and AUTH=...; valid until
 * up_imap_free. */
const char	*up_imap_capabilities(const struct up_imap *);
/* The mechanism used ("PLAIN", "SCRAM-SHA-256", "LOGIN", ...). */
const char	*up_imap_mech(const struct up_imap *);
void		 up_imap_free(struct up_imap **);

#endif
