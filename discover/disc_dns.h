/*
 * Asynchronous MX, SRV and address lookups with c-ares, driven by the
 * libevent loop (ARES_OPT_SOCK_STATE_CB and ares_process_fd): evdns does
 * only A/AAAA/PTR. One channel per disc_dns; each question is a ticket the
 * caller may cancel at any time.
 */
#ifndef DISCOVER_DISC_DNS_H
#define DISCOVER_DISC_DNS_H

#include <stddef.h>

#include "discover/disc.h"

struct event_base;
struct disc_dns;
struct disc_dns_q;

enum disc_dns_type {
	DISC_DNS_MX,
	DISC_DNS_SRV,
	DISC_DNS_ADDR,		/* A and AAAA (and the hosts file) */
};

enum disc_dns_status {
	DISC_DNS_OK,		/* at least one record */
	DISC_DNS_NONE,		/* NXDOMAIN or no record of that type */
	DISC_DNS_FAIL,		/* timeout, SERVFAIL, REFUSED, bad reply */
};

/* MX: name = exchange, prio = preference. SRV: name = target ("." means
 * the service is decidedly not available, RFC 2782), prio, weight,
 * port. ADDR: name = the address as text. */
struct disc_dns_rr {
	char	 name[DISC_HOST_MAX + 2];
	int	 prio;
	int	 weight;
	int	 port;
};

struct disc_dns_result {
	enum disc_dns_status	 status;
	const char		*why;	/* "NXDOMAIN", "timeout", ... */
	const struct disc_dns_rr *rr;	/* sorted: see disc_dns_rr_sort */
	size_t			 n;
};

/* Called once per ticket, from the event loop (never from inside
 * disc_dns_query), unless cancelled first. r is valid during the call.
 * The ticket is gone when this runs; the callback may cancel others or
 * start new questions. */
typedef void disc_dns_cb(void *arg, const struct disc_dns_result *r);

/*
 * New resolver on base. server: "ip", "ip:port" or "[ip6]:port", or NULL
 * for /etc/resolv.conf. timeout_ms bounds one question (split over two
 * tries). NULL with a reason in err if c-ares cannot be set up.
 */
struct disc_dns	*disc_dns_new(struct event_base *, const char *server,
		    long long timeout_ms, char *err, size_t errlen);
/* Cancels every question (no callbacks) and frees. Safe from inside a
 * disc_dns_cb: callbacks run from their own event, outside c-ares. NULL
 * is fine; sets *dnsp to NULL. */
void		 disc_dns_free(struct disc_dns **);

/* Starts a question about name. Never NULL. */
struct disc_dns_q *disc_dns_query(struct disc_dns *, enum disc_dns_type,
		    const char *name, disc_dns_cb *cb, void *arg);
/* The callback will not be called. NULL is fine; sets *qp to NULL. */
void		 disc_dns_cancel(struct disc_dns_q **qp);

/* Sorts for use: MX by preference; SRV by priority, then larger weight
 * first (deterministic, instead of RFC 2782's weighted random pick), then
 * name; ADDR keeps its order. Stable for equal keys. */
void		 disc_dns_rr_sort(enum disc_dns_type, struct disc_dns_rr *,
		    size_t n);

#endif
