/*
 * One client connection, protocol-agnostic: the PROXY protocol header on
 * "proxy" listeners, the client bufferevent (plain, then TLS; implicit or
 * after STARTTLS; NULL until the PROXY header is read), the login timer,
 * the relay after login, and a safe two-step close (mark now, free on the
 * next loop turn) so that no callback ever runs on a freed session.
 */
#ifndef PROXY_SESSION_H
#define PROXY_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>

#include "common/cfg.h"
#include "common/log.h"

struct worker;
struct sess;
struct relay;

struct sess_ops {
	const char	*name;				/* "imap", "smtp" */
	void		 (*start)(struct sess *);	/* send greeting */
	void		 (*read)(struct sess *);	/* client input */
	void		 (*tls_done)(struct sess *);	/* after STARTTLS */
	void		 (*login_timeout)(struct sess *);
	void		 (*shutdown)(struct sess *);	/* drain */
	/* Token revoked before the relay (optional): say goodbye and close,
	 * dropping a login in flight. */
	void		 (*revoked)(struct sess *);
	void		 (*free)(struct sess *);	/* protocol state */
};

struct sess {
	TAILQ_ENTRY(sess)	 entry;
	struct worker		*w;
	const struct sess_ops	*ops;
	void			*proto;		/* protocol state */
	const struct cfg_listen	*lcfg;
	const struct cfg_proto	*pcfg;
	uint64_t		 id;
	char			 idhex[17];
	int			 fd;
	struct bufferevent	*bev;		/* client side; NULL before the
						 * PROXY header */
	bool			 tls;		/* TLS active on client side */
	bool			 tls_ready;	/* its handshake is done */
	bool			 bev_owns_fd;
	char			 ip[64];	/* textual client address (from
						 * the PROXY header if any) */
	int			 port;
	struct event		*login_timer;
	struct event		*free_ev;
	bool			 closing;
	char			*account;	/* after login */
	char			 token_id[65];
	struct relay		*relay;		/* after login */
	long long		 last_active_ms;
	long long		 started_ms;
	bool			 slot_held;
	char			*slot_name;	/* slot key if not account */
};

struct sess	*sess_new(struct worker *, int fd, const struct sockaddr *,
		    int socklen, const struct cfg_listen *,
		    const struct cfg_proto *, const struct sess_ops *);
/* Queues bytes to the client. */
void		 sess_write(struct sess *, const char *, size_t);
void		 sess_printf(struct sess *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/* Starts TLS on the plaintext connection after the caller's reply has been
 * flushed; input buffered so far is discarded first (STARTTLS command
 * injection, CVE-2011-0411). Calls ops->tls_done when the handshake is
 * done. */
void		 sess_starttls(struct sess *);
/* Closes now (output still queued is lost). Safe inside any callback. */
void		 sess_close(struct sess *, const char *reason);
/* Closes once queued output has been written (bounded by a short timer). */
void		 sess_close_after_flush(struct sess *, const char *reason);
/* Arms that bound alone: closes with reason (static text) unless closed
 * within it; for the relay flushing towards the upstream. */
void		 sess_flush_limit(struct sess *, const char *reason);
/* Closed, or closing once flushed: start and answer nothing more. */
bool		 sess_close_pending(const struct sess *);
/* Pause / resume reading client input: the protocol's wish; reading also
 * waits while a client that does not read has too much output queued. */
void		 sess_read_enable(struct sess *, bool);
/* Session-prefixed log line. */
void		 sess_log(struct sess *, int level, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));
/* Server going away, session not logged in: its protocol says goodbye
 * (ops->shutdown); one still waiting for its PROXY header just closes. */
void		 sess_shutdown(struct sess *);
/* Login done: cancel the login timer. */
void		 sess_logged_in(struct sess *);
/* Hand the client over to the byte relay with an upstream bufferevent. */
void		 sess_relay(struct sess *, struct bufferevent *up);
/* Releases every session (worker shutdown). */
void		 sess_free_now(struct sess *);

#endif
