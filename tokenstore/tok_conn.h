/*
 * Per-account connection slots, shared by every worker and every Postern
 * instance on the same Redis: a sorted set of live session ids scored by
 * an expiry time. Live sessions refresh their score; a session of a process
 * that died simply expires, so a crash never leaks a slot for long.
 */
#ifndef TOKENSTORE_TOK_CONN_H
#define TOKENSTORE_TOK_CONN_H

#include "tokenstore/tok.h"

#define TOK_CONN_TTL_MS		180000	/* a dead process's slot lives this long */
#define TOK_CONN_REFRESH_MS	60000

/* rc: 1 slot taken, 0 account at its limit, -1 temporary failure. */
typedef void tok_conn_cb(void *arg, int rc);
struct tok_req	*tok_conn_acquire(struct tok *, const char *account,
		    const char *sess_id, int max, tok_conn_cb *, void *arg);
/* Fire and forget. */
void		 tok_conn_refresh(struct tok *, const char *account,
		    const char *sess_id);
void		 tok_conn_release(struct tok *, const char *account,
		    const char *sess_id);

#endif
