/*
 * c-ares on libevent. c-ares tells us which sockets to watch through the
 * socket-state callback and how long to wait through ares_timeout(); we
 * keep one persistent event per socket and one timer, and feed readiness
 * back with ares_process_fd(). Answers are copied into the ticket and
 * delivered from the ticket's own zero-delay event, so no caller code ever
 * runs inside c-ares (where destroying the channel would be fatal).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <ares.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "discover/disc_dns.h"

#define DNS_TRIES	2
#define DNS_RR_MAX	32	/* records kept per answer */

struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	ares_socket_t		 fd;
	struct event		*ev;
};

struct disc_dns_q {
	TAILQ_ENTRY(disc_dns_q)	 entry;
	struct disc_dns		*dns;
	enum disc_dns_type	 type;
	disc_dns_cb		*cb;
	void			*arg;
	bool			 cancelled;	/* c-ares still holds it */
	bool			 answered;	/* delivery pending */
	struct event		*deliver;
	enum disc_dns_status	 status;
	char			 why[64];
	struct disc_dns_rr	*rr;
	size_t			 n;
};

struct disc_dns {
	struct event_base	*base;
	ares_channel		 ch;
	struct event		*timer;
	bool			 lib;		/* ares_library_init done */
	TAILQ_HEAD(, dns_sock)	 socks;
	TAILQ_HEAD(, disc_dns_q) qs;
};

static void
reschedule(struct disc_dns *dns)
{
	struct timeval	 tv, *tvp;

	tvp = ares_timeout(dns->ch, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(dns->timer);
	else
		evtimer_add(dns->timer, tvp);
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_dns *dns = arg;

	ares_process_fd(dns->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	reschedule(dns);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_dns *dns = arg;

	(void)fd;
	(void)what;
	ares_process_fd(dns->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	reschedule(dns);
}

/* c-ares opened, changed or closed a socket. */
static void
sock_state_cb(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct disc_dns	*dns = arg;
	struct dns_sock	*s;
	short		 what = EV_PERSIST;

	TAILQ_FOREACH(s, &dns->socks, entry)
		if (s->fd == fd)
			break;
	if (s != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			TAILQ_REMOVE(&dns->socks, s, entry);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		TAILQ_INSERT_TAIL(&dns->socks, s, entry);
	}
	if (readable)
		what |= EV_READ;
	if (writable)
		what |= EV_WRITE;
	if ((s->ev = event_new(dns->base, fd, what, sock_cb, dns)) == NULL)
		fatalx("disc_dns: event_new failed");
	event_add(s->ev, NULL);
}

static void
q_free(struct disc_dns_q *q)
{
	TAILQ_REMOVE(&q->dns->qs, q, entry);
	event_free(q->deliver);
	free(q->rr);
	free(q);
}

static void
deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_dns_q	*q = arg;
	struct disc_dns_result	 r;
	struct disc_dns_rr	*rr = q->rr;
	disc_dns_cb		*cb = q->cb;
	void			*cbarg = q->arg;
	char			 why[sizeof(q->why)];

	(void)fd;
	(void)what;
	memcpy(why, q->why, sizeof(why));
	r.status = q->status;
	r.why = why;
	r.rr = rr;
	r.n = q->n;
	/* The ticket dies first: the callback may do anything. Its
	 * records live until it returns. */
	q->rr = NULL;
	q_free(q);
	cb(cbarg, &r);
	free(rr);
}

static int
rr_cmp(const struct disc_dns_rr *a, const struct disc_dns_rr *b,
    enum disc_dns_type type)
{
	if (a->prio != b->prio)
		return a->prio < b->prio ? -1 : 1;
	if (type == DISC_DNS_SRV && a->weight != b->weight)
		return a->weight > b->weight ? -1 : 1;
	return strcmp(a->name, b->name);
}

void
disc_dns_rr_sort(enum disc_dns_type type, struct disc_dns_rr *rr, size_t n)
{
	/* Insertion sort: a handful of records, and stable. */
	if (type == DISC_DNS_ADDR)
		return;
	for (size_t i = 1; i < n; i++) {
		struct disc_dns_rr	t = rr[i];
		size_t			j = i;

		while (j > 0 && rr_cmp(&rr[j - 1], &t, type) > 0) {
			rr[j] = rr[j - 1];
			j--;
		}
		rr[j] = t;
	}
}

/* Marks the answer; returns false if the ticket was cancelled (then it is
 * freed here). */
static bool
q_answer(struct disc_dns_q *q, int status)
{
	if (q->cancelled) {
		q_free(q);
		return false;
	}
	q->answered = true;
	switch (status) {
	case ARES_SUCCESS:
		q->status = DISC_DNS_OK;
		break;
	case ARES_ENOTFOUND:
		q->status = DISC_DNS_NONE;
		snprintf(q->why, sizeof(q->why), "NXDOMAIN");
		break;
	case ARES_ENODATA:
		q->status = DISC_DNS_NONE;
		snprintf(q->why, sizeof(q->why), "no records");
		break;
	case ARES_ETIMEOUT:
		q->status = DISC_DNS_FAIL;
		snprintf(q->why, sizeof(q->why), "timeout");
		break;
	default:
		q->status = DISC_DNS_FAIL;
		snprintf(q->why, sizeof(q->why), "%s", ares_strerror(status));
		break;
	}
	event_active(q->deliver, EV_TIMEOUT, 1);
	return true;
}

static void
q_add_rr(struct disc_dns_q *q, const char *name, int prio, int weight,
    int port)
{
	struct disc_dns_rr *r;

	if (q->n == DNS_RR_MAX || strlen(name) >= sizeof(r->name))
		return;
	if (q->rr == NULL)
		q->rr = xcalloc(DNS_RR_MAX, sizeof(*q->rr));
	r = &q->rr[q->n++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->prio = prio;
	r->weight = weight;
	r->port = port;
}

static void
q_done(struct disc_dns_q *q)
{
	if (q->status == DISC_DNS_OK && q->n == 0) {
		q->status = DISC_DNS_NONE;
		snprintf(q->why, sizeof(q->why), "no records");
	}
	disc_dns_rr_sort(q->type, q->rr, q->n);
}

static void
query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct disc_dns_q	*q = arg;
	struct ares_mx_reply	*mx = NULL;
	struct ares_srv_reply	*srv = NULL;

	(void)timeouts;
	if (status == ARES_SUCCESS && q->type == DISC_DNS_MX)
		status = ares_parse_mx_reply(abuf, alen, &mx);
	else if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(abuf, alen, &srv);
	if (!q_answer(q, status))
		goto out;
	for (struct ares_mx_reply *m = mx; m != NULL; m = m->next)
		q_add_rr(q, m->host, m->priority, 0, 0);
	for (struct ares_srv_reply *s = srv; s != NULL; s = s->next)
		q_add_rr(q, s->host[0] == '\0' ? "." : s->host, s->priority,
		    s->weight, s->port);
	q_done(q);
out:
	if (mx != NULL)
		ares_free_data(mx);
	if (srv != NULL)
		ares_free_data(srv);
}

static void
addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct disc_dns_q	*q = arg;
	char			 a[INET6_ADDRSTRLEN];

	(void)timeouts;
	if (!q_answer(q, status))
		goto out;
	for (struct ares_addrinfo_node *n = res != NULL ? res->nodes : NULL;
	    n != NULL; n = n->ai_next) {
		const void *src;

		if (n->ai_family == AF_INET)
			src = &((const struct sockaddr_in *)(const void *)
			    n->ai_addr)->sin_addr;
		else if (n->ai_family == AF_INET6)
			src = &((const struct sockaddr_in6 *)(const void *)
			    n->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(n->ai_family, src, a, sizeof(a)) != NULL)
			q_add_rr(q, a, 0, 0, 0);
	}
	q_done(q);
out:
	if (res != NULL)
		ares_freeaddrinfo(res);
}

struct disc_dns_q *
disc_dns_query(struct disc_dns *dns, enum disc_dns_type type,
    const char *name, disc_dns_cb *cb, void *arg)
{
	struct disc_dns_q	*q = xcalloc(1, sizeof(*q));
	struct ares_addrinfo_hints hints;

	q->dns = dns;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	if ((q->deliver = event_new(dns->base, -1, 0, deliver_cb, q)) == NULL)
		fatalx("disc_dns: event_new failed");
	TAILQ_INSERT_TAIL(&dns->qs, q, entry);
	/* c-ares may answer at once (hosts file, bad name): q_answer only
	 * activates the delivery event then. */
	switch (type) {
	case DISC_DNS_MX:
		ares_query(dns->ch, name, 1 /* C_IN */, 15 /* T_MX */,
		    query_cb, q);
		break;
	case DISC_DNS_SRV:
		ares_query(dns->ch, name, 1, 33 /* T_SRV */, query_cb, q);
		break;
	case DISC_DNS_ADDR:
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		ares_getaddrinfo(dns->ch, name, NULL, &hints, addr_cb, q);
		break;
	}
	reschedule(dns);
	return q;
}

void
disc_dns_cancel(struct disc_dns_q **qp)
{
	struct disc_dns_q *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	if (q->answered)
		q_free(q);		/* only the delivery was pending */
	else
		q->cancelled = true;	/* freed when c-ares lets go */
}

struct disc_dns *
disc_dns_new(struct event_base *base, const char *server, long long timeout_ms,
    char *err, size_t errlen)
{
	struct disc_dns		*dns = xcalloc(1, sizeof(*dns));
	struct ares_options	 o;
	int			 rc, per_try;

	dns->base = base;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(dns);
		return NULL;
	}
	dns->lib = true;
	TAILQ_INIT(&dns->socks);
	TAILQ_INIT(&dns->qs);
	if ((dns->timer = evtimer_new(base, timer_cb, dns)) == NULL)
		fatalx("disc_dns: evtimer_new failed");
	per_try = (int)(timeout_ms / DNS_TRIES);
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = dns;
	o.timeout = per_try > 50 ? per_try : 50;
	o.tries = DNS_TRIES;
	rc = ares_init_options(&dns->ch, &o, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		dns->ch = NULL;
		disc_dns_free(&dns);
		return NULL;
	}
	if (server != NULL &&
	    (rc = ares_set_servers_ports_csv(dns->ch, server)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: DNS server %s: %s", server,
		    ares_strerror(rc));
		disc_dns_free(&dns);
		return NULL;
	}
	return dns;
}

void
disc_dns_free(struct disc_dns **dnsp)
{
	struct disc_dns		*dns = *dnsp;
	struct disc_dns_q	*q;
	struct dns_sock		*s;

	if (dns == NULL)
		return;
	*dnsp = NULL;
	/* Every callback c-ares still owes comes now (EDESTRUCTION) and
	 * frees its cancelled ticket; then the delivery-pending ones. */
	TAILQ_FOREACH(q, &dns->qs, entry)
		q->cancelled = !q->answered;
	if (dns->ch != NULL)
		ares_destroy(dns->ch);
	while ((q = TAILQ_FIRST(&dns->qs)) != NULL)
		q_free(q);
	while ((s = TAILQ_FIRST(&dns->socks)) != NULL) {
		TAILQ_REMOVE(&dns->socks, s, entry);
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	event_free(dns->timer);
	if (dns->lib)
		ares_library_cleanup();
	free(dns);
}
