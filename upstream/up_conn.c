/*
 * Upstream connection setup. The TCP connect is a raw non-blocking
 * connect(2) watched by one event, so refused/unreachable/timeout stay
 * UP_FAIL_CONNECT; only then is the socket wrapped in a bufferevent
 * (plain, or OpenSSL in the connecting state), so that handshake and
 * certificate errors are UP_FAIL_TLS. Results reach the owner through a
 * zero-delay event, never from inside the owner's own call.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "upstream/up_conn.h"

enum conn_state {
	ST_RESOLVING,
	ST_CONNECTING,
	ST_HANDSHAKE,
	ST_UP,
	ST_FAILED,
};

struct up_conn {
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ctx;
	char			*host;
	int			 port;
	enum up_tls		 tls;
	struct timeval		 timeout;

	up_conn_cb		*cb;
	void			*arg;
	enum conn_state		 state;
	bool			 tls_active;

	struct evdns_getaddrinfo_request *dns_req;
	struct evutil_addrinfo	*ai_list;
	struct evutil_addrinfo	*ai_next;
	evutil_socket_t		 fd;		/* while connecting */
	struct event		*conn_ev;
	struct event		*timer;
	struct event		*done_ev;
	struct bufferevent	*bev;

	enum up_fail		 fail;
	char			 why[192];
	char			 peer[INET6_ADDRSTRLEN + 16];
};

static void	connect_next(struct up_conn *);

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;

	(void)fd;
	(void)what;
	/* Last statement: the owner may free c. */
	c->cb(c->arg, c->fail, c->fail == UP_OK ? NULL : c->why);
}

static void
free_attempt(struct up_conn *c)
{
	if (c->conn_ev != NULL) {
		event_free(c->conn_ev);
		c->conn_ev = NULL;
	}
	if (c->fd >= 0) {
		evutil_closesocket(c->fd);
		c->fd = -1;
	}
}

static void
free_addrs(struct up_conn *c)
{
	if (c->ai_list != NULL)
		evutil_freeaddrinfo(c->ai_list);
	c->ai_list = c->ai_next = NULL;
}

static void
conn_fail(struct up_conn *c, enum up_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conn_fail(struct up_conn *c, enum up_fail fail, const char *fmt, ...)
{
	struct evdns_getaddrinfo_request *req = c->dns_req;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->fail = fail;
	c->state = ST_FAILED;
	c->dns_req = NULL;
	if (req != NULL)
		evdns_getaddrinfo_cancel(req);	/* dns_cb sees CANCEL */
	free_attempt(c);
	free_addrs(c);
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->timer);
	event_active(c->done_ev, EV_TIMEOUT, 1);
}

static void
step_ok(struct up_conn *c)
{
	evtimer_del(c->timer);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	c->state = ST_UP;
	c->fail = UP_OK;
	event_active(c->done_ev, EV_TIMEOUT, 1);
}

static void
arm_timer(struct up_conn *c)
{
	evtimer_add(c->timer, &c->timeout);
}

static void
format_peer(struct up_conn *c, const struct sockaddr *sa)
{
	char	 a[INET6_ADDRSTRLEN];
	int	 port;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		evutil_inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
		snprintf(c->peer, sizeof(c->peer), "[%s]:%d", a, port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;

		evutil_inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
		snprintf(c->peer, sizeof(c->peer), "%s:%d", a, port);
	}
}

/* Why the handshake failed, most specific first: the verify result, then
 * OpenSSL's error (libevent moved it from the thread's queue to the
 * bufferevent), then the socket. */
static void
handshake_reason(struct up_conn *c, struct bufferevent *bev, short what)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long	 e, first = 0;
	const char	*r = NULL;
	int		 serr = EVUTIL_SOCKET_ERROR();
	char		 buf[160];

	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0)
			first = e;
	if (ssl != NULL && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) &&
	    SSL_get_verify_result(ssl) != X509_V_OK) {
		conn_fail(c, UP_FAIL_TLS, "%s", tls_error_string(ssl, buf,
		    sizeof(buf)));
		return;
	}
	if (first != 0)
		r = ERR_reason_error_string(first);
	if (r == NULL && (what & BEV_EVENT_EOF))
		r = "connection closed by peer";
	if (r == NULL && serr != 0)
		r = evutil_socket_error_to_string(serr);
	conn_fail(c, UP_FAIL_TLS, "TLS handshake with %s: %s", c->peer,
	    r != NULL ? r : "failed");
}

static void
handshake_cb(struct bufferevent *bev, short what, void *arg)
{
	struct up_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_active = true;
		step_ok(c);
		return;
	}
	handshake_reason(c, bev, what);
}

/* Takes fd: on failure it is closed. */
static void
start_tls(struct up_conn *c, evutil_socket_t fd)
{
	SSL *ssl;

	if (c->ctx == NULL) {
		evutil_closesocket(fd);
		conn_fail(c, UP_FAIL_INTERNAL, "no TLS client context");
		return;
	}
	ERR_clear_error();
	if ((ssl = tls_client_ssl_new(c->ctx, c->host)) == NULL) {
		evutil_closesocket(fd);
		conn_fail(c, UP_FAIL_INTERNAL, "cannot set up TLS for %s",
		    c->host);
		return;
	}
	tls_client_session_use(ssl, c->host, c->port);
	/* The handshake starts at once; libevent calls handshake_cb with
	 * CONNECTED or ERROR. CLOSE_ON_FREE frees the SSL and the fd. */
	c->bev = bufferevent_openssl_socket_new(c->base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		conn_fail(c, UP_FAIL_INTERNAL, "cannot create TLS bufferevent");
		return;
	}
	/* Many servers close without close_notify; after login that is
	 * an ordinary EOF for the relay, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, NULL, NULL, handshake_cb, c);
	c->state = ST_HANDSHAKE;
	arm_timer(c);
}

static void
connected(struct up_conn *c)
{
	evutil_socket_t fd = c->fd;

	c->fd = -1;
	if (c->conn_ev != NULL) {
		event_free(c->conn_ev);
		c->conn_ev = NULL;
	}
	free_addrs(c);
	if (c->tls == UP_TLS_IMPLICIT) {
		start_tls(c, fd);
		return;
	}
	c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		conn_fail(c, UP_FAIL_INTERNAL, "cannot create bufferevent");
		return;
	}
	step_ok(c);
}

static void
conn_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn	*c = arg;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS) {
		event_add(c->conn_ev, NULL);	/* spurious wake-up */
		return;
	}
	if (err != 0) {
		snprintf(c->why, sizeof(c->why), "connect to %s: %s", c->peer,
		    strerror(err));
		free_attempt(c);
		connect_next(c);
		return;
	}
	connected(c);
}

/* Tries the remaining addresses in order; fails with the last error. */
static void
connect_next(struct up_conn *c)
{
	struct evutil_addrinfo	*ai;
	evutil_socket_t		 fd;
	int			 one = 1;
	char			 last[sizeof(c->why)];

	while ((ai = c->ai_next) != NULL) {
		c->ai_next = ai->ai_next;
		format_peer(c, ai->ai_addr);
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, IPPROTO_TCP);
		if (fd < 0) {
			snprintf(c->why, sizeof(c->why), "socket: %s",
			    strerror(errno));
			continue;
		}
		/* Small command/response round trips: no Nagle delay (see
		 * TEST-HARNESS-NOTES on nginx). Keepalive finds dead
		 * upstreams under idle IMAP sessions. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		c->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			connected(c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->conn_ev = event_new(c->base, fd, EV_WRITE,
			    conn_ev_cb, c);
			event_add(c->conn_ev, NULL);
			c->state = ST_CONNECTING;
			arm_timer(c);
			return;
		}
		snprintf(c->why, sizeof(c->why), "connect to %s: %s", c->peer,
		    strerror(errno));
		free_attempt(c);
	}
	if (c->why[0] == '\0')
		snprintf(c->why, sizeof(c->why), "no address for %s", c->host);
	/* conn_fail formats into c->why: pass a copy. */
	snprintf(last, sizeof(last), "%s", c->why);
	conn_fail(c, UP_FAIL_CONNECT, "%s", last);
}

static void
dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct up_conn *c = arg;

	/* After evdns_getaddrinfo_cancel c may be gone: touch nothing. */
	if (result == EVUTIL_EAI_CANCEL)
		return;
	c->dns_req = NULL;
	if (result != 0) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		conn_fail(c, UP_FAIL_CONNECT, "resolve %s: %s", c->host,
		    evutil_gai_strerror(result));
		return;
	}
	c->ai_list = c->ai_next = res;
	connect_next(c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case ST_RESOLVING:
		conn_fail(c, UP_FAIL_CONNECT, "resolve %s: timed out",
		    c->host);
		break;
	case ST_CONNECTING:
		snprintf(c->why, sizeof(c->why), "connect to %s: timed out",
		    c->peer);
		free_attempt(c);
		connect_next(c);
		break;
	case ST_HANDSHAKE:
		conn_fail(c, UP_FAIL_CONNECT,
		    "TLS handshake with %s: timed out", c->peer);
		break;
	case ST_UP:
	case ST_FAILED:
		break;
	}
}

struct up_conn *
up_conn_new(const struct up_env *env, const struct up_target *t,
    up_conn_cb *cb, void *arg)
{
	struct up_conn			*c = xcalloc(1, sizeof(*c));
	struct evutil_addrinfo		 hints;
	struct evdns_getaddrinfo_request *req;
	char				 port[16];
	long long			 ms = t->connect_timeout_ms;

	c->base = env->base;
	c->dns = env->dns;
	c->ctx = t->verify ? env->ctx_verify : env->ctx_noverify;
	c->host = xstrdup(t->host != NULL ? t->host : "");
	c->port = t->port;
	c->tls = t->tls;
	if (ms <= 0)
		ms = UP_CONN_TIMEOUT_DEFAULT_MS;
	c->timeout.tv_sec = (time_t)(ms / 1000);
	c->timeout.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	c->cb = cb;
	c->arg = arg;
	c->fd = -1;
	c->state = ST_RESOLVING;
	c->timer = evtimer_new(c->base, timer_cb, c);
	c->done_ev = event_new(c->base, -1, 0, done_cb, c);
	if (c->timer == NULL || c->done_ev == NULL)
		fatalx("up_conn_new: event_new failed");

	if (c->port <= 0 || c->port > 65535 || c->host[0] == '\0') {
		conn_fail(c, UP_FAIL_CONFIG, "bad upstream address");
		return c;
	}
	snprintf(port, sizeof(port), "%d", c->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
	/* An IP literal needs no resolver (and never blocks). */
	if (evutil_getaddrinfo(c->host, port, &hints, &c->ai_list) == 0) {
		c->ai_next = c->ai_list;
		connect_next(c);
		return c;
	}
	if (c->dns == NULL) {
		conn_fail(c, UP_FAIL_INTERNAL,
		    "cannot resolve %s: no DNS resolver", c->host);
		return c;
	}
	hints.ai_flags = EVUTIL_AI_NUMERICSERV | EVUTIL_AI_ADDRCONFIG;
	arm_timer(c);
	/* May call dns_cb before returning (hosts file, bad name); then it
	 * returns NULL and c has moved on already. */
	req = evdns_getaddrinfo(c->dns, c->host, port, &hints, dns_cb, c);
	if (req != NULL && c->state == ST_RESOLVING)
		c->dns_req = req;
	return c;
}

struct bufferevent *
up_conn_bev(struct up_conn *c)
{
	return c->state == ST_UP ? c->bev : NULL;
}

int
up_conn_starttls(struct up_conn *c, up_conn_cb *cb, void *arg)
{
	struct evbuffer	*in;
	evutil_socket_t	 fd;

	if (c->state != ST_UP || c->tls_active || c->bev == NULL)
		return -1;
	fd = bufferevent_getfd(c->bev);
	/* Bytes after the server's go-ahead came in the clear and may be
	 * injected (CVE-2011-0411 class): they are never used. */
	in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	/* Detach the socket so that freeing the plain bufferevent does not
	 * close it; the TLS bufferevent owns it from here. */
	bufferevent_setfd(c->bev, -1);
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->cb = cb;
	c->arg = arg;
	start_tls(c, fd);
	return 0;
}

bool
up_conn_is_tls(const struct up_conn *c)
{
	return c->tls_active;
}

const char *
up_conn_peer(const struct up_conn *c)
{
	return c->peer;
}

struct bufferevent *
up_conn_steal_bev(struct up_conn *c)
{
	struct bufferevent *bev = c->bev;

	if (bev == NULL || c->state != ST_UP)
		return NULL;
	c->bev = NULL;
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	return bev;
}

void
up_conn_free(struct up_conn **cp)
{
	struct up_conn *c = *cp;
	struct evdns_getaddrinfo_request *req;

	if (c == NULL)
		return;
	*cp = NULL;
	if ((req = c->dns_req) != NULL) {
		c->dns_req = NULL;
		evdns_getaddrinfo_cancel(req);	/* dns_cb ignores CANCEL */
	}
	free_attempt(c);
	free_addrs(c);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->done_ev);
	free(c->host);
	free(c);
}
