/*
 * One upstream TCP connection, shared by up_imap and up_smtp: resolve
 * (evdns), connect with a timeout (TCP_NODELAY, SO_KEEPALIVE), implicit TLS,
 * and the STARTTLS upgrade of the plain connection. Protocol talk belongs
 * to the caller, which owns the bufferevent's callbacks between steps.
 */
#ifndef UPSTREAM_UP_CONN_H
#define UPSTREAM_UP_CONN_H

#include <stdbool.h>

#include "upstream/up.h"

struct bufferevent;
struct up_conn;

#define UP_CONN_TIMEOUT_DEFAULT_MS	10000	/* connect_timeout_ms <= 0 */

/* Reports the end of a step (connect, STARTTLS handshake): fail = UP_OK
 * or the class, with a short secret-free reason. Runs from the event loop,
 * never from inside the call that started the step; may free the up_conn. */
typedef void up_conn_cb(void *arg, enum up_fail fail, const char *why);

/*
 * Starts resolving and connecting to t->host:t->port; for UP_TLS_IMPLICIT
 * also the TLS handshake (env->ctx_verify if t->verify, else
 * env->ctx_noverify). t->connect_timeout_ms bounds DNS plus each address
 * tried plus the handshake. Host names need env->dns; without it only IP
 * literals work. t is copied. Never NULL.
 */
struct up_conn	*up_conn_new(const struct up_env *env,
		    const struct up_target *t, up_conn_cb *cb, void *arg);
/* After a successful step: the bufferevent, reading and writing disabled,
 * no callbacks; the caller sets its own. Still owned by the up_conn.
 * NULL before the connection is up. */
struct bufferevent *up_conn_bev(struct up_conn *);
/*
 * Upgrades a plain connection to TLS on the same socket (after the
 * protocol's "go ahead"). Anything the server sent in the clear and the
 * caller has not read is discarded (RFC 3207 section 4.2, RFC 9051 section
 * 6.2.1). The old bufferevent is freed: callers must fetch up_conn_bev
 * again when cb reports UP_OK. Returns -1 (without calling cb) if the
 * connection is not plain and up.
 */
int		 up_conn_starttls(struct up_conn *, up_conn_cb *cb, void *arg);
bool		 up_conn_is_tls(const struct up_conn *);
/* "192.0.2.7:993" once connected, else "". */
const char	*up_conn_peer(const struct up_conn *);
/* Hands over the bufferevent (BEV_OPT_CLOSE_ON_FREE: the socket and the
 * SSL go with it), callbacks cleared, I/O disabled. */
struct bufferevent *up_conn_steal_bev(struct up_conn *);
/* Cancels whatever is in flight; cb is not called afterwards. */
void		 up_conn_free(struct up_conn **);

#endif
