/*
 * A worker process: its own event loop, Redis connection, TLS contexts,
 * listeners and sessions. Workers share nothing but Redis.
 */
#ifndef PROXY_WORKER_H
#define PROXY_WORKER_H

#include <stdbool.h>
#include <sys/queue.h>

#include <openssl/ssl.h>

#include "upstream/up.h"

struct cfg;
struct sess;
struct tok;
struct evconnlistener;

TAILQ_HEAD(sess_list, sess);

struct worker {
	int			 index;
	struct event_base	*base;
	struct cfg		*cfg;
	struct tok		*tok;
	SSL_CTX			*srv_ctx;	/* replaced on SIGHUP */
	struct up_env		 up;
	struct evconnlistener	*ls[2 * 8];
	int			 nls;
	struct sess_list	 sessions;
	int			 nsessions;
	bool			 draining;
	struct event		*sweep;
	struct event		*drain_timer;
	struct event		*sig_term, *sig_hup, *sig_int;
	unsigned long long	 next_sess;
};

/* Runs a worker until drained; returns the process exit status. */
int	worker_main(struct cfg *, int index);
/* A session ended: drain bookkeeping. */
void	worker_sess_gone(struct worker *);

#endif
