/*
 * Probe state machine. up_conn connects (and does implicit TLS); then we
 * read the greeting (IMAP "* OK", SMTP "220", RFC 3501 7.1, RFC 5321
 * 4.2) and, for STARTTLS, send it (IMAP: "P STARTTLS", SMTP: EHLO then
 * STARTTLS, RFC 3207) and let up_conn upgrade. For implicit TLS the
 * greeting comes after the handshake. Results go out through done_ev.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "discover/disc_probe.h"
#include "upstream/up_conn.h"

#define PROBE_LINE_MAX	1024
#define PROBE_HELO	"postern"

enum probe_state {
	PS_CONNECT,
	PS_GREETING,
	PS_EHLO,	/* SMTP: waiting for the last 250 line */
	PS_STARTTLS,	/* waiting for the go-ahead */
	PS_TLS,		/* handshake in up_conn */
	PS_DONE,
};

struct disc_probe {
	struct up_conn		*conn;
	struct bufferevent	*bev;	/* owned by conn */
	struct event		*timer;
	struct event		*done_ev;
	enum probe_state	 state;
	bool			 imap;
	bool			 implicit;
	bool			 ok;
	char			 why[200];
	disc_probe_cb		*cb;
	void			*arg;
};

static void	conn_cb(void *, enum up_fail, const char *);

static void
probe_done(struct disc_probe *p, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
probe_done(struct disc_probe *p, bool ok, const char *fmt, ...)
{
	va_list ap;

	if (p->state == PS_DONE)
		return;
	p->state = PS_DONE;
	p->ok = ok;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(p->why, sizeof(p->why), fmt, ap);
		va_end(ap);
	}
	evtimer_del(p->timer);
	if (p->bev != NULL) {
		bufferevent_disable(p->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(p->bev, NULL, NULL, NULL, NULL);
	}
	event_active(p->done_ev, EV_TIMEOUT, 1);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_probe *p = arg;

	(void)fd;
	(void)what;
	p->cb(p->arg, p->ok, p->ok ? NULL : p->why);
}

static void
send_line(struct disc_probe *p, const char *s)
{
	evbuffer_add_printf(bufferevent_get_output(p->bev), "%s\r\n", s);
}

/* One line: 1 stop (done or the bufferevent was replaced), 0 read on. */
static int
on_line(struct disc_probe *p, const char *line)
{
	char buf[200];

	switch (p->state) {
	case PS_GREETING:
		if (p->imap ? strncmp(line, "* OK", 4) != 0 :
		    strncmp(line, "220", 3) != 0) {
			probe_done(p, false, "not a%s server: %s", p->imap ?
			    "n IMAP" : "n SMTP", str_sanitize(line, 80, buf,
			    sizeof(buf)));
			return 1;
		}
		if (!p->imap && line[3] == '-')
			return 0;	/* multi-line greeting */
		if (p->implicit || up_conn_is_tls(p->conn)) {
			probe_done(p, true, NULL);
			return 1;
		}
		if (p->imap) {
			send_line(p, "P STARTTLS");
			p->state = PS_STARTTLS;
		} else {
			send_line(p, "EHLO " PROBE_HELO);
			p->state = PS_EHLO;
		}
		return 0;
	case PS_EHLO:
		if (strncmp(line, "250", 3) != 0) {
			probe_done(p, false, "EHLO refused: %s",
			    str_sanitize(line, 80, buf, sizeof(buf)));
			return 1;
		}
		if (line[3] == '-')
			return 0;
		send_line(p, "STARTTLS");
		p->state = PS_STARTTLS;
		return 0;
	case PS_STARTTLS:
		if (p->imap && strncmp(line, "P ", 2) != 0)
			return 0;	/* untagged data */
		if (p->imap ? strncmp(line, "P OK", 4) != 0 :
		    strncmp(line, "220", 3) != 0) {
			probe_done(p, false, "STARTTLS refused: %s",
			    str_sanitize(line, 80, buf, sizeof(buf)));
			return 1;
		}
		p->bev = NULL;	/* up_conn frees it */
		p->state = PS_TLS;
		if (up_conn_starttls(p->conn, conn_cb, p) < 0)
			probe_done(p, false, "cannot start TLS");
		return 1;
	default:
		return 1;
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct disc_probe	*p = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 len;
	int			 stop;

	for (;;) {
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) >= PROBE_LINE_MAX)
				probe_done(p, false, "reply line too long");
			return;
		}
		stop = len >= PROBE_LINE_MAX ? (probe_done(p, false,
		    "reply line too long"), 1) : on_line(p, line);
		free(line);
		if (stop)
			return;
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct disc_probe *p = arg;

	(void)bev;
	probe_done(p, false, "%s", (what & BEV_EVENT_EOF) ?
	    "connection closed by the server" : "connection error");
}

static void
conn_cb(void *arg, enum up_fail fail, const char *why)
{
	struct disc_probe *p = arg;

	if (fail != UP_OK) {
		probe_done(p, false, "%s", why);
		return;
	}
	if (p->state == PS_TLS) {
		/* After STARTTLS: no second greeting; TLS is up. */
		probe_done(p, true, NULL);
		return;
	}
	p->bev = up_conn_bev(p->conn);
	bufferevent_setcb(p->bev, read_cb, NULL, event_cb, p);
	bufferevent_setwatermark(p->bev, EV_READ, 0, PROBE_LINE_MAX * 4);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
	p->state = PS_GREETING;
	if (evbuffer_get_length(bufferevent_get_input(p->bev)) > 0)
		read_cb(p->bev, p);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct disc_probe *p = arg;

	(void)fd;
	(void)what;
	probe_done(p, false, "timed out");
}

struct disc_probe *
disc_probe_new(const struct up_env *env, const char *host, int port,
    bool imap, bool implicit, long long timeout_ms, disc_probe_cb *cb,
    void *arg)
{
	struct disc_probe	*p = xcalloc(1, sizeof(*p));
	struct up_target	 t;
	struct timeval		 tv;

	p->imap = imap;
	p->implicit = implicit;
	p->cb = cb;
	p->arg = arg;
	p->timer = evtimer_new(env->base, timer_cb, p);
	p->done_ev = event_new(env->base, -1, 0, done_cb, p);
	if (p->timer == NULL || p->done_ev == NULL)
		fatalx("disc_probe_new: event_new failed");
	tv.tv_sec = (time_t)(timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000);
	evtimer_add(p->timer, &tv);
	memset(&t, 0, sizeof(t));
	t.host = (char *)(uintptr_t)host;	/* up_conn copies it */
	t.port = port;
	t.tls = implicit ? UP_TLS_IMPLICIT : UP_TLS_STARTTLS;
	t.verify = false;
	t.connect_timeout_ms = timeout_ms;
	p->conn = up_conn_new(env, &t, conn_cb, p);
	return p;
}

void
disc_probe_free(struct disc_probe **pp)
{
	struct disc_probe *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	up_conn_free(&p->conn);
	event_free(p->timer);
	event_free(p->done_ev);
	free(p);
}
