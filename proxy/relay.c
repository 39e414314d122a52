/*
 * The relay does no per-byte work: each read callback moves the whole
 * input evbuffer onto the other side's output (evbuffer_add_buffer moves
 * chain pointers, it does not copy), then pulls what else that side has
 * straight into the other's output in large reads (relay_pull: libevent's
 * own reads are 4 KiB or one TLS record each), and pauses reading while
 * the other side has more than RELAY_HWM queued, so a client that stops
 * reading during a large FETCH holds at most that much in Postern.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "proxy/relay.h"
#include "proxy/session.h"

#define RELAY_PULL_CHUNK	(64 * 1024)	/* one readv */
#define RELAY_PULL_MAX		(256 * 1024)	/* per read callback */
#define RELAY_SSL_CHUNK		(16 * 1024)	/* one TLS record */
#define RELAY_BULK		(32 * 1024)	/* a read this size: bulk */
#define RELAY_LOWAT		(64 * 1024)	/* wake for this much, */
#define RELAY_LOWAT_MS		2		/* or after this long */

struct relay {
	struct sess		*s;
	struct bufferevent	*up;
	uint64_t		 in, out;
	struct event		*lowat_ev;	/* bounds the wait below */
	bool			 lowat;		/* SO_RCVLOWAT raised upstream */
	bool			 closing;	/* flushing "flush" then close */
	struct bufferevent	*flush;
	const char		*reason;	/* static text */
};

/* Stops relaying: nothing more is read from either side; the session
 * closes once what is queued towards "to" has been written, or at the
 * session's flush bound: a side that has stopped reading (an upstream
 * stuck behind a half-closed client's last bytes, a client that never
 * reads) must not hold the session, its descriptors and its slot. */
static void
relay_stop(struct relay *r, struct bufferevent *to, const char *reason)
{
	struct bufferevent *other = to == r->up ? r->s->bev : r->up;

	r->closing = true;
	r->flush = to;
	r->reason = reason;
	bufferevent_disable(other, EV_READ | EV_WRITE);
	bufferevent_disable(to, EV_READ);
	bufferevent_setwatermark(to, EV_WRITE, 0, 0);
	bufferevent_enable(to, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(to)) == 0)
		sess_close(r->s, reason);
	else
		sess_flush_limit(r->s, reason);
}

static void
relay_move(struct relay *r, struct bufferevent *from, struct bufferevent *to,
    uint64_t *count)
{
	struct evbuffer	*src = bufferevent_get_input(from);
	struct evbuffer	*dst = bufferevent_get_output(to);
	size_t		 n = evbuffer_get_length(src);

	if (n == 0)
		return;
	*count += n;
	evbuffer_add_buffer(dst, src);
	r->s->last_active_ms = str_now_ms();
	if (evbuffer_get_length(dst) > RELAY_HWM) {
		/* Backpressure: stop reading until "to" drains below the
		 * low-water mark; its write callback resumes us. */
		bufferevent_disable(from, EV_READ);
		bufferevent_setwatermark(to, EV_WRITE, RELAY_LWM, 0);
	}
}

static void	relay_side_gone(struct relay *, struct bufferevent *,
		    struct bufferevent *, short, const char *);

/*
 * libevent 2.1 reads a plain socket 4 KiB at a time (EVBUFFER_MAX_READ):
 * a loop turn and five system calls per 4 KiB. Take what else the socket
 * has now, in RELAY_PULL_CHUNK reads straight into the other side's
 * output, up to RELAY_PULL_MAX per callback. EOF and errors are left for
 * the bufferevent's own next read to report.
 */
static void
relay_pull_fd(evutil_socket_t fd, struct evbuffer *dst, size_t *got)
{
	while (*got < RELAY_PULL_MAX && evbuffer_get_length(dst) <= RELAY_HWM) {
		struct evbuffer_iovec	v[2];
		struct iovec		iov[2];
		size_t			room = 0;
		ssize_t			n;
		int			nv;

		if ((nv = evbuffer_reserve_space(dst, RELAY_PULL_CHUNK, v,
		    2)) <= 0)
			break;
		for (int i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
			room += v[i].iov_len;
		}
		if ((n = readv(fd, iov, nv)) <= 0)
			break;		/* uncommitted space is just unused */
		if ((size_t)n <= v[0].iov_len) {
			v[0].iov_len = (size_t)n;
			nv = 1;
		} else
			v[1].iov_len = (size_t)n - v[0].iov_len;
		evbuffer_commit_space(dst, v, nv);
		*got += (size_t)n;
		if ((size_t)n < room)
			break;		/* the socket is drained */
	}
}

/*
 * A TLS side has read-ahead on during the relay (relay_new): one read(2)
 * brings several records, and libevent takes only the first. Everything
 * else OpenSSL holds is taken here, until it needs the socket again: a
 * complete record left inside OpenSSL would get no socket event. Only the
 * high-water mark stops us earlier; the write callbacks pull again when
 * they resume reading. Returns BEV_EVENT_EOF or BEV_EVENT_ERROR when the
 * side is gone, else 0.
 */
static short
relay_pull_ssl(SSL *ssl, struct evbuffer *dst, size_t *got)
{
	while (evbuffer_get_length(dst) <= RELAY_HWM) {
		struct evbuffer_iovec	v[2];
		size_t			n = 0;

		if (evbuffer_reserve_space(dst, RELAY_SSL_CHUNK, v, 2) <= 0)
			break;
		ERR_clear_error();
		if (SSL_read_ex(ssl, v[0].iov_base, v[0].iov_len, &n) == 1) {
			v[0].iov_len = n;
			evbuffer_commit_space(dst, v, 1);
			*got += n;
			continue;
		}
		switch (SSL_get_error(ssl, 0)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return 0;	/* libevent's next turn */
		case SSL_ERROR_ZERO_RETURN:
			return BEV_EVENT_EOF;
		default:
			ERR_clear_error();
			return BEV_EVENT_ERROR;
		}
	}
	return 0;
}

/*
 * During a bulk transfer from the upstream (a FETCH of large messages) the
 * upstream usually writes slower than we relay, so each wake-up would
 * carry a few KiB: a sleep, an epoll_wait, a read and a write to the
 * client per TLS record or socket chunk. SO_RCVLOWAT makes the socket
 * report readable only once RELAY_LOWAT bytes wait; a timer drops it
 * again RELAY_LOWAT_MS after the last bulk read, so the tail of a
 * response (and anything interactive after it) waits at most that long.
 */
static void	relay_lowat_cb(evutil_socket_t, short, void *);
static void	relay_pull(struct relay *, struct bufferevent *,
		    struct bufferevent *, uint64_t *);

static void
relay_lowat(struct relay *r, bool on)
{
	int		 v = on ? RELAY_LOWAT : 1;
	evutil_socket_t	 fd = bufferevent_getfd(r->up);

	if (on) {
		struct timeval tv = { 0, RELAY_LOWAT_MS * 1000 };

		/* Made at the first bulk read: idle sessions never need it. */
		if (r->lowat_ev == NULL && (r->lowat_ev = evtimer_new(
		    bufferevent_get_base(r->up), relay_lowat_cb, r)) == NULL)
			return;
		event_add(r->lowat_ev, &tv);
	}
	if (r->lowat == on || fd < 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0)
		r->lowat = on;
}

static void
relay_lowat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	(void)fd;
	(void)what;
	relay_lowat(r, false);
	/* Linux (4.18 on) reports the socket readable once the mark is
	 * lowered; pull what waits now in case a kernel does not. */
	if (!r->closing && (bufferevent_get_enabled(r->up) & EV_READ) != 0)
		relay_pull(r, r->up, r->s->bev, &r->out);
}

/* Moves what "from" has beyond its input buffer to "to" (see above). */
static void
relay_pull(struct relay *r, struct bufferevent *from, struct bufferevent *to,
    uint64_t *count)
{
	struct evbuffer	*dst = bufferevent_get_output(to);
	SSL		*ssl = bufferevent_openssl_get_ssl(from);
	evutil_socket_t	 fd = bufferevent_getfd(from);
	size_t		 got = 0;
	short		 gone = 0;

	if (ssl != NULL)
		gone = relay_pull_ssl(ssl, dst, &got);
	else if (fd >= 0)
		relay_pull_fd(fd, dst, &got);
	if (got > 0) {
		*count += got;
		r->s->last_active_ms = str_now_ms();
		if (evbuffer_get_length(dst) > RELAY_HWM) {
			bufferevent_disable(from, EV_READ);
			bufferevent_setwatermark(to, EV_WRITE, RELAY_LWM, 0);
		}
	}
	if (gone != 0)
		relay_side_gone(r, from, to, gone | BEV_EVENT_READING,
		    from == r->up ? "upstream" : "client");
}

static void
relay_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;

	relay_move(r, bev, r->up, &r->in);
	relay_pull(r, bev, r->up, &r->in);
}

static void
relay_up_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay	*r = arg;
	uint64_t	 before = r->out;

	relay_move(r, bev, r->s->bev, &r->out);
	relay_pull(r, bev, r->s->bev, &r->out);
	if (r->up != NULL && !r->closing)
		relay_lowat(r, r->out - before >= RELAY_BULK);
}

/* "to" drained below the low-water mark: let its peer read again. */
static void
relay_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay	*r = arg;
	bool		 paused;

	(void)bev;
	if (r->closing) {
		if (r->flush == r->s->bev)
			sess_close(r->s, r->reason);
		return;
	}
	bufferevent_setwatermark(r->s->bev, EV_WRITE, 0, 0);
	paused = (bufferevent_get_enabled(r->up) & EV_READ) == 0;
	bufferevent_enable(r->up, EV_READ);
	if (paused)	/* what OpenSSL holds has no socket event */
		relay_pull(r, r->up, r->s->bev, &r->out);
}

static void
relay_up_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay	*r = arg;
	bool		 paused;

	(void)bev;
	if (r->closing) {
		if (r->flush == r->up)
			sess_close(r->s, r->reason);
		return;
	}
	bufferevent_setwatermark(r->up, EV_WRITE, 0, 0);
	paused = (bufferevent_get_enabled(r->s->bev) & EV_READ) == 0;
	bufferevent_enable(r->s->bev, EV_READ);
	if (paused)
		relay_pull(r, r->s->bev, r->up, &r->in);
}

static const char *
relay_reason(struct bufferevent *bev, short what, const char *side,
    char *buf, size_t len)
{
	unsigned long e;

	if (what & BEV_EVENT_EOF)
		snprintf(buf, len, "%s closed", side);
	else if ((e = bufferevent_get_openssl_error(bev)) != 0) {
		char tmp[160];

		ERR_error_string_n(e, tmp, sizeof(tmp));
		snprintf(buf, len, "%s tls error: %s", side, tmp);
	} else if (what & BEV_EVENT_TIMEOUT)
		snprintf(buf, len, "%s timeout", side);
	else
		snprintf(buf, len, "%s connection error", side);
	return buf;
}

/* One side is gone: deliver what it already sent to the other (an
 * upstream's "* BYE" and tagged LOGOUT reply), then close both. */
static void
relay_side_gone(struct relay *r, struct bufferevent *gone,
    struct bufferevent *other, short what, const char *side)
{
	char	 buf[256];
	size_t	 pending;

	if (r->closing) {
		sess_close(r->s, r->reason);
		return;
	}
	relay_move(r, gone, other, side[0] == 'u' ? &r->out : &r->in);
	relay_reason(gone, what, side, buf, sizeof(buf));
	pending = evbuffer_get_length(bufferevent_get_output(other));
	if (pending == 0 || (what & BEV_EVENT_EOF) == 0) {
		sess_close(r->s, buf);
		return;
	}
	if (other == r->s->bev)
		sess_close_after_flush(r->s, side[0] == 'u' ?
		    "upstream closed" : "client closed");
	else
		relay_stop(r, other, "client closed");
}

static void
relay_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;

	relay_side_gone(r, bev, r->up, what, "client");
}

static void
relay_up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;

	relay_side_gone(r, bev, r->s->bev, what, "upstream");
}

struct relay *
relay_new(struct sess *s, struct bufferevent *up)
{
	struct relay	*r = xcalloc(1, sizeof(*r));
	SSL		*ssl;

	r->s = s;
	r->up = up;
	bufferevent_setcb(s->bev, relay_client_read_cb, relay_client_write_cb,
	    relay_client_event_cb, r);
	bufferevent_setcb(up, relay_up_read_cb, relay_up_write_cb,
	    relay_up_event_cb, r);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_setwatermark(up, EV_WRITE, 0, 0);
	bufferevent_setwatermark(up, EV_READ, 0, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	bufferevent_enable(up, EV_READ | EV_WRITE);
	/* Bytes that arrived before the hand-over: the client's pipelined
	 * commands after LOGIN, the upstream's after its tagged OK. */
	relay_move(r, s->bev, up, &r->in);
	relay_move(r, up, s->bev, &r->out);
	/* Read-ahead on TLS sides from here on (relay_pull_ssl drains
	 * it); before, OpenSSL held at most the record libevent reads. */
	if ((ssl = bufferevent_openssl_get_ssl(s->bev)) != NULL)
		SSL_set_read_ahead(ssl, 1);
	if ((ssl = bufferevent_openssl_get_ssl(up)) != NULL)
		SSL_set_read_ahead(ssl, 1);
	return r;
}

void
relay_finish(struct relay *r, const char *reason)
{
	if (!r->closing)
		relay_stop(r, r->s->bev, reason);
}

void
relay_free(struct relay **rp)
{
	struct relay *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (r->lowat_ev != NULL)
		event_free(r->lowat_ev);
	bufferevent_free(r->up);	/* CLOSE_ON_FREE: fd and SSL go too */
	free(r);
}

uint64_t
relay_bytes_in(const struct relay *r)
{
	return r->in;
}

uint64_t
relay_bytes_out(const struct relay *r)
{
	return r->out;
}
