/*
 * Redis connection with per-request timeouts and reconnection.
 *
 * hiredis 0.14 has no command timeout, so every request carries its own
 * timer. A request that times out means Redis is hung or the link is bad:
 * we drop the connection (all pending callbacks fail at once) and reconnect
 * with backoff, so a stuck Redis costs each caller at most one timeout and
 * a Redis that comes back is used again without a restart.
 *
 * Ownership: a tok_req lives until hiredis has called back for it (hiredis
 * always does, with a NULL reply on disconnect), even when its timer or a
 * cancel already answered the caller; req->cb == NULL marks it answered.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <hiredis.h>
#include <async.h>
#include <adapters/libevent.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_keys.h"

#define TOK_BACKOFF_MIN_MS	50
#define TOK_BACKOFF_MAX_MS	1000

struct tok_link {
	struct tok		*tok;
	redisAsyncContext	*ac;
	bool			 ready;		/* first reply seen */
	bool			 sub;		/* the pub/sub link */
	struct event		*retry;		/* reconnect timer */
	struct event		*ctimer;	/* connect + handshake bound */
	int			 backoff_ms;
	bool			 was_up;	/* for one log line per change */
	bool			 resolving;	/* evdns lookup under way */
	struct evdns_getaddrinfo_request *dreq;
};

struct tok_req {
	TAILQ_ENTRY(tok_req)	 entry;
	struct tok		*tok;
	tok_reply_cb		*cb;
	void			*arg;
	struct event		*timer;
	bool			 inflight;	/* hiredis holds it */
	const char		*fail;		/* set before a deferred failure */
	void			(*cancel_fn)(void *);
};
TAILQ_HEAD(tok_reqs, tok_req);

struct tok_sub {
	char			*channel;	/* with prefix */
	tok_message_cb		*cb;
	void			*arg;
};

struct tok {
	struct event_base	*base;
	struct evdns_base	*dns;		/* host is a name: looked up
						 * before each connect */
	char			*host;		/* NULL for a unix socket */
	int			 port;
	char			*path;
	char			*password;
	int			 db;
	char			*prefix;
	long long		 timeout_ms;
	struct tok_link		 cmd;
	struct tok_link		 subl;
	struct tok_reqs		 reqs;
	struct tok_sub		*subs;
	int			 nsubs;
};

static void	tok_link_connect(struct tok_link *);
static void	tok_link_drop(struct tok_link *, const char *why);

static int
tok_parse_url(struct tok *t, const char *url, char *err, size_t errlen)
{
	const char	*p, *q;
	long long	 v;

	if (strncmp(url, "unix:", 5) == 0) {
		p = url + 5;
		if ((q = strchr(p, '?')) != NULL) {
			if (strncmp(q, "?db=", 4) != 0 ||
			    !str_to_ll(q + 4, 0, TOK_DB_MAX, &v))
				goto bad;
			t->db = (int)v;
			t->path = xstrndup(p, q - p);
		} else
			t->path = xstrdup(p);
		if (t->path[0] != '/')
			goto bad;
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		goto bad;
	p = url + 8;
	if ((q = strrchr(p, '@')) != NULL) {
		const char *c = memchr(p, ':', q - p);

		if (c == NULL)
			goto bad;
		t->password = xstrndup(c + 1, q - c - 1);
		p = q + 1;
	}
	if (*p == '[') {
		if ((q = strchr(p, ']')) == NULL)
			goto bad;
		t->host = xstrndup(p + 1, q - p - 1);
		p = q + 1;
	} else {
		q = p + strcspn(p, ":/");
		t->host = xstrndup(p, q - p);
		p = q;
	}
	if (t->host[0] == '\0')
		goto bad;
	t->port = 6379;
	if (*p == ':') {
		char port[8];
		size_t n = strcspn(p + 1, "/");

		if (n == 0 || n >= sizeof(port))
			goto bad;
		memcpy(port, p + 1, n);
		port[n] = '\0';
		if (!str_to_ll(port, 1, 65535, &v))
			goto bad;
		t->port = (int)v;
		p += 1 + n;
	}
	if (*p == '/' && p[1] != '\0') {
		if (!str_to_ll(p + 1, 0, TOK_DB_MAX, &v))
			goto bad;
		t->db = (int)v;
	} else if (*p != '\0' && strcmp(p, "/") != 0)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "bad redis url (use redis://HOST:PORT/DB or "
	    "unix:/PATH)");
	return -1;
}

static void
tok_req_free(struct tok_req *r)
{
	TAILQ_REMOVE(&r->tok->reqs, r, entry);
	if (r->timer != NULL)
		event_free(r->timer);
	free(r);
}

/* Answers the caller once; the request itself may live on in hiredis. */
static void
tok_req_answer(struct tok_req *r, redisReply *reply, const char *err)
{
	tok_reply_cb	*cb = r->cb;
	void		*arg = r->arg;

	r->cb = NULL;
	if (r->timer != NULL)
		event_del(r->timer);
	if (cb != NULL)
		cb(arg, reply, err);
}

static void
tok_reply_cb_hiredis(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct tok_req *r = privdata;

	(void)ac;
	r->inflight = false;
	tok_req_answer(r, reply, reply == NULL ? "connection lost" : NULL);
	tok_req_free(r);
}

static void
tok_req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tok_req	*r = arg;
	struct tok	*t = r->tok;

	(void)fd;
	(void)what;
	if (r->fail != NULL) {		/* deferred "not connected" */
		tok_req_answer(r, NULL, r->fail);
		tok_req_free(r);
		return;
	}
	tok_req_answer(r, NULL, "timeout");
	/* Redis is hung or the link is broken: start over. Dropping the link
	 * makes hiredis call back (and free) every pending request. */
	tok_link_drop(&t->cmd, "request timeout");
}

static struct tok_req *
tok_req_new(struct tok *t, tok_reply_cb *cb, void *arg)
{
	struct tok_req *r = xcalloc(1, sizeof(*r));

	r->tok = t;
	r->cb = cb;
	r->arg = arg;
	r->timer = evtimer_new(t->base, tok_req_timer_cb, r);
	TAILQ_INSERT_TAIL(&t->reqs, r, entry);
	return r;
}

static struct tok_req *
tok_req_fail_later(struct tok_req *r, const char *why)
{
	struct timeval tv = { 0, 0 };

	r->fail = why;
	evtimer_add(r->timer, &tv);
	return r;
}

struct tok_req *
tok_cmdv(struct tok *t, tok_reply_cb *cb, void *arg, int argc,
    const char **argv, const size_t *argvlen)
{
	struct tok_req	*r = tok_req_new(t, cb, arg);
	struct timeval	 tv;

	/* While the link is connecting, hiredis queues the command behind
	 * our SELECT and the request's own timer bounds the wait: a request
	 * made just as the process starts (or reconnects) is not refused.
	 * Only a link waiting out its backoff fails at once. */
	if (t->cmd.ac == NULL)
		return tok_req_fail_later(r, "redis unavailable");
	if (redisAsyncCommandArgv(t->cmd.ac, tok_reply_cb_hiredis, r, argc,
	    argv, argvlen) != REDIS_OK)
		return tok_req_fail_later(r, "redis unavailable");
	r->inflight = true;
	tv.tv_sec = t->timeout_ms / 1000;
	tv.tv_usec = (t->timeout_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
	return r;
}

struct tok_req *
tok_cmd(struct tok *t, tok_reply_cb *cb, void *arg, const char *fmt, ...)
{
	struct tok_req	*r = tok_req_new(t, cb, arg);
	struct timeval	 tv;
	va_list		 ap;
	int		 rc;

	/* While the link is connecting, hiredis queues the command behind
	 * our SELECT and the request's own timer bounds the wait: a request
	 * made just as the process starts (or reconnects) is not refused.
	 * Only a link waiting out its backoff fails at once. */
	if (t->cmd.ac == NULL)
		return tok_req_fail_later(r, "redis unavailable");
	va_start(ap, fmt);
	rc = redisvAsyncCommand(t->cmd.ac, tok_reply_cb_hiredis, r, fmt, ap);
	va_end(ap);
	if (rc != REDIS_OK)
		return tok_req_fail_later(r, "redis unavailable");
	r->inflight = true;
	tv.tv_sec = t->timeout_ms / 1000;
	tv.tv_usec = (t->timeout_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
	return r;
}

void
tok_req_cancel(struct tok_req *r)
{
	if (r == NULL)
		return;
	if (r->cb != NULL && r->cancel_fn != NULL)
		r->cancel_fn(r->arg);
	r->cb = NULL;
	if (!r->inflight)
		tok_req_free(r);
	else if (r->timer != NULL)
		event_del(r->timer);
}

void
tok_req_set_cancel_fn(struct tok_req *r, void (*fn)(void *))
{
	r->cancel_fn = fn;
}

static const char *
tok_link_name(const struct tok_link *l)
{
	return l->sub ? "redis-sub" : "redis";
}

static void
tok_link_schedule(struct tok_link *l)
{
	struct timeval tv;

	tv.tv_sec = l->backoff_ms / 1000;
	tv.tv_usec = (l->backoff_ms % 1000) * 1000;
	evtimer_add(l->retry, &tv);
	l->backoff_ms *= 2;
	if (l->backoff_ms > TOK_BACKOFF_MAX_MS)
		l->backoff_ms = TOK_BACKOFF_MAX_MS;
}

/* Frees the hiredis context (failing its pending requests) and schedules
 * a reconnect. Must not be called from inside a hiredis callback of the
 * same context: callers there use tok_link_drop_later. */
static void
tok_link_drop(struct tok_link *l, const char *why)
{
	redisAsyncContext *ac = l->ac;

	if (ac == NULL)
		return;
	l->ac = NULL;
	l->ready = false;
	ac->data = NULL;
	event_del(l->ctimer);
	if (l->was_up) {
		log_warn("event=redis_down link=%s reason=\"%s\"",
		    tok_link_name(l), why);
		l->was_up = false;
	} else
		log_debug("event=redis_retry link=%s reason=\"%s\"",
		    tok_link_name(l), why);
	redisAsyncFree(ac);
	tok_link_schedule(l);
}

static void
tok_link_ready(struct tok_link *l)
{
	l->ready = true;
	l->backoff_ms = TOK_BACKOFF_MIN_MS;
	event_del(l->ctimer);
	if (!l->was_up) {
		log_info("event=redis_up link=%s", tok_link_name(l));
		l->was_up = true;
	}
}

static void
tok_hello_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct tok_link	*l = privdata;
	redisReply	*rep = reply;

	if (ac->data == NULL || rep == NULL)	/* link dropped meanwhile */
		return;
	if (rep->type == REDIS_REPLY_ERROR) {
		char buf[200];

		/* Dropping here would free the context inside its own
		 * callback; the connect timer finishes the job instead. */
		log_error("event=redis_error link=%s reply=\"%s\"",
		    tok_link_name(l), str_sanitize(rep->str, 160, buf,
		    sizeof(buf)));
		return;
	}
	tok_link_ready(l);
}

static void
tok_sub_msg_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct tok_sub	*s = privdata;
	redisReply	*rep = reply;

	if (ac->data == NULL || rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
	    rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(rep->element[0]->str, "subscribe") == 0) {
		struct tok_link *l = ac->data;

		if (!l->ready)
			tok_link_ready(l);
		return;
	}
	if (strcmp(rep->element[0]->str, "message") == 0 &&
	    rep->element[2]->type == REDIS_REPLY_STRING)
		s->cb(s->arg, rep->element[2]->str, rep->element[2]->len);
}

static void
tok_connect_cb(const redisAsyncContext *ac, int status)
{
	struct tok_link *l = ac->data;

	if (l == NULL)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context itself after a failed connect. */
		l->ac = NULL;
		l->ready = false;
		event_del(l->ctimer);
		if (l->was_up) {
			log_warn("event=redis_down link=%s reason=\"%s\"",
			    tok_link_name(l), ac->errstr);
			l->was_up = false;
		} else
			log_debug("event=redis_retry link=%s reason=\"%s\"",
			    tok_link_name(l), ac->errstr);
		tok_link_schedule(l);
	}
}

static void
tok_disconnect_cb(const redisAsyncContext *ac, int status)
{
	struct tok_link	*l = ac->data;

	(void)status;
	if (l == NULL)		/* we freed it on purpose */
		return;
	/* hiredis frees the context after this callback. */
	l->ac = NULL;
	l->ready = false;
	event_del(l->ctimer);
	if (l->was_up) {
		log_warn("event=redis_down link=%s reason=\"%s\"",
		    tok_link_name(l), ac->err ? ac->errstr : "closed");
		l->was_up = false;
	}
	tok_link_schedule(l);
}

static void
tok_ctimer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tok_link_drop(arg, "connect timeout");
}

static void
tok_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tok_link_connect(arg);
}

static void
tok_link_connect_to(struct tok_link *l, const char *addr)
{
	struct tok		*t = l->tok;
	redisAsyncContext	*ac;
	struct timeval		 tv;

	if (t->path != NULL)
		ac = redisAsyncConnectUnix(t->path);
	else	/* an address: hiredis does no DNS lookup of its own */
		ac = redisAsyncConnect(addr, t->port);
	if (ac == NULL || ac->err) {
		log_debug("event=redis_retry link=%s reason=\"%s\"",
		    tok_link_name(l), ac ? ac->errstr : "no memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		tok_link_schedule(l);
		return;
	}
	ac->data = l;	/* NULL once we free it on purpose */
	l->ac = ac;
	l->ready = false;
	redisLibeventAttach(ac, t->base);
	redisAsyncSetConnectCallback(ac, tok_connect_cb);
	redisAsyncSetDisconnectCallback(ac, tok_disconnect_cb);
	/* Commands queue until the socket connects; the first reply proves
	 * the server answers (a SIGSTOPped Redis accepts TCP but never does). */
	if (t->password != NULL)
		redisAsyncCommand(ac, NULL, NULL, "AUTH %s", t->password);
	if (l->sub) {
		for (int i = 0; i < t->nsubs; i++)
			redisAsyncCommand(ac, tok_sub_msg_cb, &t->subs[i],
			    "SUBSCRIBE %s", t->subs[i].channel);
	} else
		redisAsyncCommand(ac, tok_hello_cb, l, "SELECT %d", t->db);
	tv.tv_sec = t->timeout_ms / 1000;
	tv.tv_usec = (t->timeout_ms % 1000) * 1000;
	evtimer_add(l->ctimer, &tv);
}

static void
tok_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct tok_link		*l = arg;
	struct evutil_addrinfo	*ai;
	char			 addr[NI_MAXHOST];
	int			 rc;

	if (result == EVUTIL_EAI_CANCEL) {	/* tok_link_fini */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	l->resolving = false;
	l->dreq = NULL;
	if (result != 0 || res == NULL) {
		log_debug("event=redis_retry link=%s reason=\"%s: %s\"",
		    tok_link_name(l), l->tok->host,
		    evutil_gai_strerror(result));
		if (res != NULL)
			evutil_freeaddrinfo(res);
		tok_link_schedule(l);
		return;
	}
	/* IPv4 first, as hiredis' own lookup does. */
	for (ai = res; ai != NULL && ai->ai_family != AF_INET; ai = ai->ai_next)
		;
	if (ai == NULL)
		ai = res;
	rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL,
	    0, NI_NUMERICHOST);
	evutil_freeaddrinfo(res);
	if (rc != 0) {
		tok_link_schedule(l);
		return;
	}
	tok_link_connect_to(l, addr);
}

/*
 * hiredis resolves a host name with the blocking getaddrinfo() on every
 * connect, inside the event loop: a slow DNS server would stall every
 * session of the process at each reconnect. A name is looked up here with
 * evdns instead, before each connect, so a changed record (a failover) is
 * followed and a name that does not resolve yet (DNS not up at boot) is
 * retried with the usual backoff.
 */
static void
tok_link_connect(struct tok_link *l)
{
	struct tok			*t = l->tok;
	struct evutil_addrinfo		 hints;
	struct evdns_getaddrinfo_request *req;

	if (t->path != NULL || t->dns == NULL) {
		tok_link_connect_to(l, t->host);
		return;
	}
	if (l->resolving)
		return;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	l->resolving = true;
	req = evdns_getaddrinfo(t->dns, t->host, NULL, &hints, tok_dns_cb, l);
	if (l->resolving)	/* else answered at once (hosts file) */
		l->dreq = req;
}

static void
tok_link_init(struct tok *t, struct tok_link *l, bool sub)
{
	l->tok = t;
	l->sub = sub;
	l->backoff_ms = TOK_BACKOFF_MIN_MS;
	l->retry = evtimer_new(t->base, tok_retry_cb, l);
	l->ctimer = evtimer_new(t->base, tok_ctimer_cb, l);
}

struct tok *
tok_new(struct event_base *base, const char *url, const char *prefix,
    long long timeout_ms, char *err, size_t errlen)
{
	struct tok *t = xcalloc(1, sizeof(*t));

	t->base = base;
	if (tok_parse_url(t, url, err, errlen) == -1) {
		free(t->host);
		free(t->path);
		free(t->password);
		free(t);
		return NULL;
	}
	t->prefix = xstrdup(prefix);
	t->timeout_ms = timeout_ms;
	TAILQ_INIT(&t->reqs);
	/* resolv.conf and the hosts file are read here, before the loop. */
	if (t->host != NULL && !str_is_ip_literal(t->host) &&
	    (t->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL)
		log_warn("event=redis_dns host=%s reason=\"evdns_base_new "
		    "failed\" hint=\"hiredis will look the name up itself, "
		    "blocking\"", t->host);
	tok_link_init(t, &t->cmd, false);
	tok_link_init(t, &t->subl, true);
	tok_link_connect(&t->cmd);
	return t;
}

int
tok_subscribe(struct tok *t, const char *channel, tok_message_cb *cb,
    void *arg)
{
	if (t->nsubs == 8)
		return -1;
	/* Before the sub link exists only; keeps resubscription trivial. */
	if (t->subl.ac != NULL)
		return -1;
	t->subs = xrealloc(t->subs, (t->nsubs + 1) * sizeof(*t->subs));
	t->subs[t->nsubs].channel = tok_key_channel(t->prefix, channel);
	t->subs[t->nsubs].cb = cb;
	t->subs[t->nsubs].arg = arg;
	t->nsubs++;
	return 0;
}

void
tok_subscribe_start(struct tok *t)
{
	if (t->nsubs > 0 && t->subl.ac == NULL &&
	    !evtimer_pending(t->subl.retry, NULL))
		tok_link_connect(&t->subl);
}

static void
tok_link_fini(struct tok_link *l)
{
	if (l->dreq != NULL) {
		evdns_getaddrinfo_cancel(l->dreq);
		l->dreq = NULL;
		l->resolving = false;
	}
	if (l->ac != NULL) {
		l->ac->data = NULL;
		redisAsyncFree(l->ac);
		l->ac = NULL;
	}
	event_free(l->retry);
	event_free(l->ctimer);
}

void
tok_free(struct tok **tp)
{
	struct tok	*t = *tp;
	struct tok_req	*r;

	if (t == NULL)
		return;
	*tp = NULL;
	TAILQ_FOREACH(r, &t->reqs, entry) {
		if (r->cb != NULL && r->cancel_fn != NULL)
			r->cancel_fn(r->arg);
		r->cb = NULL;		/* no caller callbacks at shutdown */
	}
	tok_link_fini(&t->cmd);
	tok_link_fini(&t->subl);
	if (t->dns != NULL)
		evdns_base_free(t->dns, 0);
	while ((r = TAILQ_FIRST(&t->reqs)) != NULL)
		tok_req_free(r);
	for (int i = 0; i < t->nsubs; i++)
		free(t->subs[i].channel);
	free(t->subs);
	free(t->host);
	free(t->path);
	if (t->password != NULL)
		OPENSSL_cleanse(t->password, strlen(t->password));
	free(t->password);
	free(t->prefix);
	free(t);
}

bool
tok_is_up(const struct tok *t)
{
	return t->cmd.ac != NULL && t->cmd.ready;
}

const char *
tok_prefix(const struct tok *t)
{
	return t->prefix;
}

long long
tok_timeout_ms(const struct tok *t)
{
	return t->timeout_ms;
}

struct event_base *
tok_base(const struct tok *t)
{
	return t->base;
}
