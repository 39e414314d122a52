/*
 * Client sessions: accept-time socket options, the PROXY protocol header on
 * listeners flagged "proxy", the client bufferevent and its TLS (implicit
 * or STARTTLS), the login timer, and closing. A session is freed only from
 * its own zero-timeout event, never inside a callback that may still use it
 * (Redis's freeClientAsync idea).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "common/str.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "proxy/proxy_proto.h"
#include "proxy/relay.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "tokenstore/tok_conn.h"

#define SESS_PRELOGIN_READ_MAX	(64 * 1024)
#define SESS_OUT_HWM		(64 * 1024)	/* replies queued: stop reading */
#define SESS_OUT_LWM		(16 * 1024)	/* drained below: read again */
#define SESS_FLUSH_CLOSE_MS	5000
#define SESS_LINGER_MS		2000		/* lingering close bound */
#define SESS_LINGER_MAX		(1024 * 1024)	/* bytes discarded at most */

static void	sess_read_cb(struct bufferevent *, void *);
static void	sess_write_cb(struct bufferevent *, void *);
static void	sess_event_cb(struct bufferevent *, short, void *);

/* Per-session flags kept out of the public struct. */
enum {
	SESS_F_STARTTLS = 1,	/* waiting for the OK to flush */
	SESS_F_FLUSHCLOSE = 2,
	SESS_F_OUTPAUSE = 4,	/* reading paused: client not reading */
	SESS_F_CLOSEPEND = 8,	/* sess_close_after_flush was called */
	SESS_F_NOREAD = 16,	/* the protocol paused reading */
};
static int	sess_flags_get(struct sess *);

/* Waiting for the PROXY header: only on "proxy" listeners, until it is
 * complete. Bytes that are surely header are read and kept here. */
struct sess_pp {
	struct event	*ev;
	size_t		 len;
	uint8_t		 buf[PROXY_PROTO_MAX];
};

struct sess_priv {
	struct sess	 s;
	int		 flags;
	const char	*close_reason;
	struct event	*linger_ev;
	size_t		 linger_bytes;
	struct sess_pp	*pp;
};

static int
sess_flags_get(struct sess *s)
{
	return ((struct sess_priv *)s)->flags;
}

static void
sess_flags_set(struct sess *s, int f, bool on)
{
	struct sess_priv *p = (struct sess_priv *)s;

	p->flags = on ? p->flags | f : p->flags & ~f;
}

void
sess_log(struct sess *s, int level, const char *fmt, ...)
{
	char	buf[1536];
	va_list	ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(level, "sess=%s proto=%s peer=%s:%d %s", s->idhex, s->ops->name,
	    s->ip, s->port, buf);
}

static void
sess_sockopts(int fd)
{
	int one = 1;

	/* No Nagle: pre-login exchanges are tiny request/response pairs
	 * (nginx leaves it on and every TLS login waits ~40 ms). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static struct bufferevent *
sess_bev_tls(struct sess *s)
{
	SSL			*ssl = SSL_new(s->w->srv_ctx);
	struct bufferevent	*bev;

	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(s->w->base, s->fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* Many clients close without close_notify; that is an EOF. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	s->bev_owns_fd = true;
	s->tls = true;
	return bev;
}

static void
sess_login_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;

	(void)fd;
	(void)what;
	sess_log(s, LOG_LVL_INFO, "event=login_timeout");
	if (s->bev == NULL) {
		sess_close(s, "login timeout waiting for the PROXY header");
		return;
	}
	/* Without a finished handshake there is no channel for a BYE. */
	if (s->tls && !s->tls_ready) {
		sess_close(s, "login timeout during TLS handshake");
		return;
	}
	s->ops->login_timeout(s);
}

static void
sess_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sess_free_now(arg);
}

/* The client bufferevent: TLS accepting, or plain. */
static int
sess_bev_new(struct sess *s)
{
	if (s->lcfg->tls == CFG_TLS_IMPLICIT)
		s->bev = sess_bev_tls(s);
	else
		s->bev = bufferevent_socket_new(s->w->base, s->fd, 0);
	if (s->bev == NULL)
		return -1;
	bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb, sess_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESS_PRELOGIN_READ_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	return 0;
}

static void
sess_pp_free(struct sess_priv *p)
{
	if (p->pp == NULL)
		return;
	event_free(p->pp->ev);
	free(p->pp);
	p->pp = NULL;
}

/*
 * Readable while waiting for the PROXY header. recv(MSG_PEEK) looks at what
 * is there; only bytes known to be header are really read, so whatever
 * follows (a TLS ClientHello, an early command) stays in the socket for
 * the bufferevent. An incomplete header is read whole (the parser says all
 * of it is header), so level-triggered readiness cannot spin on it.
 */
static void
sess_pp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess_priv	*p = arg;
	struct sess		*s = &p->s;
	struct sess_pp		*pp = p->pp;
	struct proxy_proto	 res;
	char			 via[80];
	ssize_t			 n;
	size_t			 want;
	int			 rc;

	(void)what;
	if (s->closing)
		return;
	n = recv(fd, pp->buf + pp->len, sizeof(pp->buf) - pp->len, MSG_PEEK);
	if (n == 0) {
		sess_close(s, "client closed before the PROXY header");
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		sess_close(s, strerror(errno));
		return;
	}
	rc = proxy_proto_parse(pp->buf, pp->len + (size_t)n, &res);
	/* The parser caps the header below the buffer; checked anyway, as
	 * is that the kept bytes were header (its contract for 0). */
	if (rc == -1 || (rc == 0 && pp->len + (size_t)n >= sizeof(pp->buf)) ||
	    (rc == 1 && res.len <= pp->len)) {
		sess_log(s, LOG_LVL_WARN, "event=proxy_header result=bad "
		    "reason=\"%s\"", rc == -1 ? res.why : "too long");
		sess_close(s, "bad PROXY header");
		return;
	}
	want = rc == 1 ? res.len - pp->len : (size_t)n;
	if (recv(fd, pp->buf + pp->len, want, 0) != (ssize_t)want) {
		sess_close(s, "PROXY header read failed");
		return;
	}
	pp->len += want;
	if (rc == 0)
		return;
	snprintf(via, sizeof(via), "%s:%d", s->ip, s->port);
	if (res.has_addr) {
		snprintf(s->ip, sizeof(s->ip), "%s", res.ip);
		s->port = res.port;
	}
	sess_log(s, LOG_LVL_DEBUG, "event=proxy_header result=ok version=%d "
	    "via=%s%s", res.version, via,
	    res.has_addr ? "" : " addr=local");
	sess_pp_free(p);
	if (sess_bev_new(s) == -1) {
		log_error("event=accept_fail reason=\"bufferevent\"");
		sess_close(s, "bufferevent");
		return;
	}
	s->ops->start(s);
}

struct sess *
sess_new(struct worker *w, int fd, const struct sockaddr *sa, int socklen,
    const struct cfg_listen *lcfg, const struct cfg_proto *pcfg,
    const struct sess_ops *ops)
{
	struct sess_priv	*p = xcalloc(1, sizeof(*p));
	struct sess		*s = &p->s;
	struct timeval		 tv;

	(void)socklen;
	s->w = w;
	s->ops = ops;
	s->lcfg = lcfg;
	s->pcfg = pcfg;
	s->fd = fd;
	if (RAND_bytes((unsigned char *)&s->id, sizeof(s->id)) != 1)
		s->id = ++w->next_sess;
	snprintf(s->idhex, sizeof(s->idhex), "%016llx",
	    (unsigned long long)s->id);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, s->ip, sizeof(s->ip));
		s->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, s->ip, sizeof(s->ip));
		s->port = ntohs(in6->sin6_port);
		/* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d;
		 * show and match them as plain IPv4. */
		if (strncmp(s->ip, "::ffff:", 7) == 0 && strchr(s->ip, '.'))
			memmove(s->ip, s->ip + 7, strlen(s->ip + 7) + 1);
	} else
		strcpy(s->ip, "unknown");
	s->started_ms = s->last_active_ms = str_now_ms();
	sess_sockopts(fd);
	evutil_make_socket_nonblocking(fd);
	/* Behind a balancer the bufferevent waits for the PROXY header: the
	 * TLS handshake and the greeting come after it. */
	if (!lcfg->proxy_protocol && sess_bev_new(s) == -1) {
		log_error("event=accept_fail reason=\"bufferevent\"");
		close(fd);
		free(p);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&w->sessions, s, entry);
	w->nsessions++;
	s->free_ev = evtimer_new(w->base, sess_free_cb, s);
	s->login_timer = evtimer_new(w->base, sess_login_timer_cb, s);
	tv.tv_sec = pcfg->login_timeout_ms / 1000;
	tv.tv_usec = (pcfg->login_timeout_ms % 1000) * 1000;
	evtimer_add(s->login_timer, &tv);
	sess_log(s, LOG_LVL_DEBUG, "event=connect tls=%s%s",
	    lcfg->tls == CFG_TLS_IMPLICIT ? "implicit" : "starttls",
	    lcfg->proxy_protocol ? " proxy=yes" : "");
	if (lcfg->proxy_protocol) {
		p->pp = xcalloc(1, sizeof(*p->pp));
		p->pp->ev = event_new(w->base, fd, EV_READ | EV_PERSIST,
		    sess_pp_cb, p);
		event_add(p->pp->ev, NULL);
		return s;
	}
	ops->start(s);
	return s;
}

void
sess_write(struct sess *s, const char *buf, size_t len)
{
	if (s->closing)
		return;
	bufferevent_write(s->bev, buf, len);
}

/* Straight into the output buffer: no fixed-size buffer to cut a long
 * line (an upstream's capability list) and its CRLF off. */
void
sess_printf(struct sess *s, const char *fmt, ...)
{
	va_list	ap;

	if (s->closing)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
}

/*
 * Two reasons to stop reading the client: the protocol's (busy with a
 * login, a delay, an upstream), kept here, and the output pause below.
 * Reading resumes only when neither holds.
 */
void
sess_read_enable(struct sess *s, bool on)
{
	/* Once a close is pending (revoked token, 421, QUIT) nothing more
	 * is read, whatever a late callback of the protocol wants. */
	if (s->closing || (on && sess_close_pending(s)))
		return;
	sess_flags_set(s, SESS_F_NOREAD, !on);
	if (on && (sess_flags_get(s) & SESS_F_OUTPAUSE) == 0)
		bufferevent_enable(s->bev, EV_READ);
	else if (!on)
		bufferevent_disable(s->bev, EV_READ);
}

/* Ends an output pause without resuming reading; the write callback is
 * wanted at an empty buffer again (flush-and-close, STARTTLS). */
static void
sess_unpause(struct sess *s)
{
	if ((sess_flags_get(s) & SESS_F_OUTPAUSE) == 0)
		return;
	sess_flags_set(s, SESS_F_OUTPAUSE, false);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
}

static void
sess_do_starttls(struct sess *s)
{
	struct bufferevent *old = s->bev;

	sess_flags_set(s, SESS_F_STARTTLS, false);
	sess_unpause(s);
	/* Anything pipelined after STARTTLS was sent in clear and must not be
	 * taken as coming from inside TLS (CVE-2011-0411). */
	evbuffer_drain(bufferevent_get_input(old),
	    evbuffer_get_length(bufferevent_get_input(old)));
	s->bev = sess_bev_tls(s);
	bufferevent_free(old);	/* no CLOSE_ON_FREE: the fd lives on */
	if (s->bev == NULL) {
		s->bev = NULL;
		sess_close(s, "tls setup failed");
		return;
	}
	bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb, sess_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESS_PRELOGIN_READ_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

void
sess_starttls(struct sess *s)
{
	sess_flags_set(s, SESS_F_STARTTLS, true);
	sess_unpause(s);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		sess_do_starttls(s);
}

/*
 * A client that pipelines commands and never reads the answers (NOOP, ID,
 * EHLO over and over) would have them queued without bound: past
 * SESS_OUT_HWM bytes of output we stop reading it until it has taken all
 * but SESS_OUT_LWM. Only before the relay, which has its own backpressure
 * and callbacks; not while a close or STARTTLS waits for the last byte.
 */
static void
sess_read_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;

	(void)bev;
	if (s->closing)
		return;
	s->ops->read(s);
	if (s->closing || s->relay != NULL || s->bev == NULL ||
	    (sess_flags_get(s) & (SESS_F_STARTTLS | SESS_F_CLOSEPEND)) ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) <=
	    SESS_OUT_HWM)
		return;
	sess_flags_set(s, SESS_F_OUTPAUSE, true);
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_setwatermark(s->bev, EV_WRITE, SESS_OUT_LWM, 0);
}

static void
sess_flush_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;

	(void)fd;
	(void)what;
	sess_close(s, ((struct sess_priv *)s)->close_reason);
}

/* Reads and drops what the client still sends after our last words. */
static void
sess_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess_priv	*p = arg;
	char			 buf[16384];
	ssize_t			 n;

	(void)what;
	if (p->s.closing)
		return;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n > 0) {
		p->linger_bytes += (size_t)n;
		if (p->linger_bytes > SESS_LINGER_MAX)
			sess_close(&p->s, p->close_reason);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	sess_close(&p->s, p->close_reason);
}

/*
 * Lingering close (Apache, nginx lingering_close): closing a socket with
 * unread input makes the kernel send a RST, and a RST can make the client
 * lose our last reply (a BYE after a too-long line or garbage) before it
 * reads it. So: half-close our side once everything is written, discard
 * the client's input until it closes too or a short bound passes.
 */
static void
sess_linger(struct sess *s)
{
	struct sess_priv	*p = (struct sess_priv *)s;
	struct timeval		 tv = { SESS_LINGER_MS / 1000,
				    (SESS_LINGER_MS % 1000) * 1000 };

	if (s->closing || p->linger_ev != NULL)
		return;
	sess_flags_set(s, SESS_F_FLUSHCLOSE, false);
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	if (shutdown(s->fd, SHUT_WR) == -1) {
		sess_close(s, p->close_reason);
		return;
	}
	p->linger_ev = event_new(s->w->base, s->fd, EV_READ | EV_PERSIST,
	    sess_linger_cb, p);
	event_add(p->linger_ev, NULL);
	evtimer_del(s->login_timer);
	evtimer_assign(s->login_timer, s->w->base, sess_flush_timeout_cb, s);
	evtimer_add(s->login_timer, &tv);
}

static void
sess_write_cb(struct bufferevent *bev, void *arg)
{
	struct sess	*s = arg;
	int		 f = sess_flags_get(s);

	if (s->closing)
		return;
	if (f & SESS_F_OUTPAUSE) {
		sess_unpause(s);
		/* Drained below the low-water mark: read again if the
		 * protocol wants to. Input read before the pause gets no
		 * new read event: hand it over now. */
		if ((f & (SESS_F_FLUSHCLOSE | SESS_F_STARTTLS |
		    SESS_F_NOREAD | SESS_F_CLOSEPEND)) == 0) {
			bufferevent_enable(bev, EV_READ);
			if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
				sess_read_cb(bev, s);
			return;
		}
	}
	/* Closing and STARTTLS want every byte written, not just most. */
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (f & SESS_F_FLUSHCLOSE) {
		sess_linger(s);
		return;
	}
	if (f & SESS_F_STARTTLS)
		sess_do_starttls(s);
}

static void
sess_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sess	*s = arg;
	char		 buf[200];

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done (implicit TLS or after STARTTLS). */
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		s->tls_ready = true;
		if (ssl != NULL)
			sess_log(s, LOG_LVL_DEBUG, "event=tls version=%s "
			    "cipher=%s", SSL_get_version(ssl),
			    SSL_get_cipher_name(ssl));
		if (s->ops->tls_done != NULL)
			s->ops->tls_done(s);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		sess_close(s, "client closed");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0) {
			ERR_error_string_n(e, buf, sizeof(buf));
			(void)ssl;
		} else
			snprintf(buf, sizeof(buf), "%s",
			    errno ? strerror(errno) : "connection error");
		sess_close(s, buf);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		sess_close(s, "timeout");
}

void
sess_close(struct sess *s, const char *reason)
{
	struct timeval tv = { 0, 0 };

	if (s->closing)
		return;
	s->closing = true;
	if (s->bev != NULL)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	sess_pp_free((struct sess_priv *)s);	/* no more readiness */
	sess_log(s, LOG_LVL_INFO, "event=close reason=\"%s\" account=%s "
	    "in=%llu out=%llu ms=%lld", reason != NULL ? reason : "",
	    s->account != NULL ? s->account : "-",
	    s->relay ? (unsigned long long)relay_bytes_in(s->relay) : 0ULL,
	    s->relay ? (unsigned long long)relay_bytes_out(s->relay) : 0ULL,
	    str_now_ms() - s->started_ms);
	evtimer_del(s->free_ev);
	evtimer_add(s->free_ev, &tv);
}

void
sess_flush_limit(struct sess *s, const char *reason)
{
	struct timeval tv = { SESS_FLUSH_CLOSE_MS / 1000,
			    (SESS_FLUSH_CLOSE_MS % 1000) * 1000 };

	if (s->closing)
		return;
	((struct sess_priv *)s)->close_reason = reason;
	evtimer_del(s->login_timer);
	evtimer_assign(s->login_timer, s->w->base, sess_flush_timeout_cb, s);
	evtimer_add(s->login_timer, &tv);
}

bool
sess_close_pending(const struct sess *s)
{
	return s->closing ||
	    (((const struct sess_priv *)s)->flags & SESS_F_CLOSEPEND);
}

void
sess_close_after_flush(struct sess *s, const char *reason)
{
	if (s->closing || ((struct sess_priv *)s)->linger_ev != NULL)
		return;
	sess_flags_set(s, SESS_F_CLOSEPEND, true);
	bufferevent_disable(s->bev, EV_READ);
	((struct sess_priv *)s)->close_reason = reason;
	/* After login the relay owns the callbacks: it stops reading the
	 * upstream and closes once the client's output is written. */
	if (s->relay != NULL)
		relay_finish(s->relay, reason);
	if (s->closing)
		return;
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		sess_linger(s);
		return;
	}
	sess_unpause(s);
	sess_flags_set(s, SESS_F_FLUSHCLOSE, true);
	/* Bound: a client that never reads must not keep us. */
	sess_flush_limit(s, reason);
}

void
sess_shutdown(struct sess *s)
{
	if (s->closing)
		return;
	if (s->bev == NULL)	/* still waiting for the PROXY header */
		sess_close(s, "shutdown");
	else
		s->ops->shutdown(s);
}

void
sess_logged_in(struct sess *s)
{
	evtimer_del(s->login_timer);
}

void
sess_relay(struct sess *s, struct bufferevent *up)
{
	/* The relay's own callbacks and backpressure from here on. */
	sess_flags_set(s, SESS_F_OUTPAUSE | SESS_F_NOREAD, false);
	bufferevent_setwatermark(s->bev, EV_READ, 0, 0);
	s->relay = relay_new(s, up);
}

void
sess_free_now(struct sess *s)
{
	struct worker *w = s->w;

	if (s->ops->free != NULL)
		s->ops->free(s);
	sess_pp_free((struct sess_priv *)s);
	relay_free(&s->relay);
	if (s->slot_held && s->account != NULL)
		tok_conn_release(w->tok, s->slot_name != NULL ? s->slot_name :
		    s->account, s->idhex);
	free(s->slot_name);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (!s->bev_owns_fd)
		close(s->fd);
	if (((struct sess_priv *)s)->linger_ev != NULL)
		event_free(((struct sess_priv *)s)->linger_ev);
	event_free(s->free_ev);
	event_free(s->login_timer);
	free(s->account);
	TAILQ_REMOVE(&w->sessions, s, entry);
	w->nsessions--;
	free(s);
	worker_sess_gone(w);
}
