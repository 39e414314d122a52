/*
 * The relay does no per-byte work: each read callback moves the whole
 * input evbuffer onto the other side's output (evbuffer_add_buffer moves
 * chain pointers, it does not copy), and pauses reading while the other
 * side has more than RELAY_HWM queued, so a client that stops reading
 * during a large FETCH holds at most that much in Postern.
 */
#include <stdlib.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "common/str.h"
#include "common/xmalloc.h"
#include "proxy/relay.h"
#include "proxy/session.h"

#define RELAY_PULL_CHUNK	(64 * 1024)	/* one readv */
#define RELAY_PULL_MAX		(256 * 1024)	/* per read callback */

struct relay {
	struct sess		*s;
	struct bufferevent	*up;
	uint64_t		 in, out;
	bool			 closing;	/* flushing "flush" then close */
	struct bufferevent	*flush;
	const char		*reason;	/* static text */
};

/* Stops relaying: nothing more is read from either side; the session
 * closes once what is queued towards "to" has been written. */
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

/*
 * libevent 2.1 reads a plain socket 4 KiB at a time (EVBUFFER_MAX_READ):
 * a loop turn and five system calls per 4 KiB. When "from" is a plain
 * socket, take what else it has now, in RELAY_PULL_CHUNK reads straight
 * into the other side's output, up to RELAY_PULL_MAX per callback and
 * while that output is under the high-water mark. EOF and errors are left
 * for the bufferevent's own next read to report.
 */
static void
relay_pull(struct relay *r, struct bufferevent *from, struct bufferevent *to,
    uint64_t *count)
{
	struct evbuffer	*dst = bufferevent_get_output(to);
	evutil_socket_t	 fd = bufferevent_getfd(from);
	size_t		 got = 0;

	if (fd < 0 || bufferevent_openssl_get_ssl(from) != NULL)
		return;
	while (got < RELAY_PULL_MAX && evbuffer_get_length(dst) <= RELAY_HWM) {
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
		got += (size_t)n;
		if ((size_t)n < room)
			break;		/* the socket is drained */
	}
	if (got == 0)
		return;
	*count += got;
	r->s->last_active_ms = str_now_ms();
	if (evbuffer_get_length(dst) > RELAY_HWM) {
		bufferevent_disable(from, EV_READ);
		bufferevent_setwatermark(to, EV_WRITE, RELAY_LWM, 0);
	}
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
	struct relay *r = arg;

	relay_move(r, bev, r->s->bev, &r->out);
	relay_pull(r, bev, r->s->bev, &r->out);
}

/* "to" drained below the low-water mark: let its peer read again. */
static void
relay_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;

	(void)bev;
	if (r->closing) {
		if (r->flush == r->s->bev)
			sess_close(r->s, r->reason);
		return;
	}
	bufferevent_setwatermark(r->s->bev, EV_WRITE, 0, 0);
	bufferevent_enable(r->up, EV_READ);
}

static void
relay_up_write_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;

	(void)bev;
	if (r->closing) {
		if (r->flush == r->up)
			sess_close(r->s, r->reason);
		return;
	}
	bufferevent_setwatermark(r->up, EV_WRITE, 0, 0);
	bufferevent_enable(r->s->bev, EV_READ);
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
	struct relay *r = xcalloc(1, sizeof(*r));

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
