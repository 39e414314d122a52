/*
 * Upstream SMTP client. Login: greeting, EHLO, [STARTTLS, EHLO], AUTH,
 * under one login timer. Then a FIFO of requests matched to replies in
 * order (RFC 2920 when PIPELINING is offered, else one at a time), and the
 * DATA stream. Every callback runs from kick_ev, never from a bufferevent
 * callback or an up_smtp_* call: bufferevent_openssl may run our read or
 * event callback synchronously inside a write, and the owner's callbacks
 * may free us (kick_cb then frees the struct last, see up->freed).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "upstream/up_conn.h"
#include "upstream/up_sasl.h"
#include "upstream/up_smtp.h"
#include "upstream/up_smtp_resp.h"

#define CLOSER_TIMEOUT_S	2	/* wait for QUIT's 221 at most */

enum smtp_state {
	SS_CONNECT,
	SS_GREETING,
	SS_EHLO,
	SS_STARTTLS,
	SS_TLS,		/* handshake in up_conn */
	SS_EHLO_TLS,
	SS_AUTH,
	SS_RENEW,	/* OAuth2 token refused: getting another */
	SS_LOGIN_FAILED,
	SS_READY,	/* requests may be in flight */
	SS_DATA,	/* after 354, before up_smtp_data_end */
};

enum req_kind {
	REQ_CMD,
	REQ_DATA,
	REQ_DOT,
};

struct req {
	TAILQ_ENTRY(req)	 entry;
	enum req_kind		 kind;
	char			*line;	/* until sent */
	bool			 sent;
	up_smtp_reply_cb	*cb;
	void			*arg;
};

struct up_smtp {
	struct up_target	*t;
	char			*helo;
	struct timeval		 login_tv;
	struct timeval		 cmd_tv;
	up_smtp_done_cb		*done_cb;
	void			*done_arg;

	struct up_conn		*conn;
	struct bufferevent	*bev;	/* owned by conn */
	struct up_smtp_resp_reader *rd;
	struct event		*timer;
	struct event		*kick_ev;
	enum smtp_state		 state;
	bool			 busy;	/* inside kick_cb */
	bool			 quit_on_fail;	/* login failed on a reply */
	bool			 freed;	/* up_smtp_free ran while busy */
	short			 bev_what;	/* EOF/ERROR not handled yet */
	int			 bev_errno;
	bool			 wrote;		/* output fell to low mark */

	struct up_smtp_resp_ehlo ehlo;
	struct up_sasl		*sasl;
	bool			 ir_pending;	/* initial response after 334 */
	char			 mech[32];
	void			*renew;		/* renew handle (up.h) */
	bool			 renewed;	/* one retry per login */

	TAILQ_HEAD(, req)	 reqs;
	int			 inflight;	/* sent, not answered */
	bool			 data_queued;	/* DATA sent, no reply yet */
	uint64_t		 data_bytes;
	char			 tail[2];	/* last two DATA bytes */
	up_smtp_drain_cb	*drain_cb;
	void			*drain_arg;
	bool			 drain_due;

	bool			 failed;	/* after login */
	enum up_fail		 fail;
	char			 why[320];
};

static void	kick_cb(evutil_socket_t, short, void *);
static void	closer_start(struct bufferevent *);

static const char *
peer_text(const char *s, char *buf, size_t buflen)
{
	return str_sanitize(s, 160, buf, buflen);
}

/* "535 5.7.8 text" of a reply, sanitized, for why strings. */
static const char *
reply_text(const struct up_smtp_resp *r, char *buf, size_t buflen)
{
	char	 tmp[512];

	snprintf(tmp, sizeof(tmp), "%d%s%s %s", r->code,
	    r->ecode[0] != '\0' ? " " : "", r->ecode, r->text);
	return peer_text(tmp, buf, buflen);
}

static void
close_conn(struct up_smtp *up)
{
	up->bev = NULL;
	up_conn_free(&up->conn);
}

/*
 * Login result, once. The callback may free up: every caller returns
 * straight up the stack afterwards.
 */
static void
finish(struct up_smtp *up, enum up_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
finish(struct up_smtp *up, enum up_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (up->state >= SS_LOGIN_FAILED)
		return;
	evtimer_del(up->timer);
	if (up->renew != NULL) {
		up->t->renew->cancel(up->renew);
		up->renew = NULL;
	}
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(up->why, sizeof(up->why), fmt, ap);
		va_end(ap);
	}
	up_sasl_free(&up->sasl);	/* after fmt: args may point into it */
	if (fail == UP_OK)
		up->state = SS_READY;
	else {
		struct bufferevent *bev;

		up->state = SS_LOGIN_FAILED;
		/* Refused by a well-formed reply: the connection is sane,
		 * so say goodbye (RFC 5321 3.1, 4.1.1.10). */
		if (up->quit_on_fail && up->bev != NULL &&
		    (bev = up_conn_steal_bev(up->conn)) != NULL)
			closer_start(bev);
		close_conn(up);
	}
	up->done_cb(up->done_arg, fail, fail == UP_OK ? NULL : up->why);
}

/* After login: the connection is gone; every request left or coming
 * fails with this reason (delivered from kick_ev). */
static void
conn_fail(struct up_smtp *up, enum up_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conn_fail(struct up_smtp *up, enum up_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (up->failed)
		return;
	up->failed = true;
	up->fail = fail;
	va_start(ap, fmt);
	vsnprintf(up->why, sizeof(up->why), fmt, ap);
	va_end(ap);
	log_debug("event=up_smtp_fail class=%s upstream=%s:%d reason=\"%s\"",
	    up_fail_name(fail), up->t->host, up->t->port, up->why);
	evtimer_del(up->timer);
	close_conn(up);
	if (up->state == SS_DATA)
		up->drain_due = true;	/* a paused writer must move on */
	event_active(up->kick_ev, EV_TIMEOUT, 1);
}

static void
send_line(struct up_smtp *up, const char *s)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\r\n", 2);
}

/* A secret (SASL response): straight into the output buffer, no copy of
 * ours to wipe; never logged. */
static void
send_secret_line(struct up_smtp *up, const char *prefix, const char *s)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	if (prefix != NULL)
		evbuffer_add(out, prefix, strlen(prefix));
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\r\n", 2);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct up_smtp *up = arg;

	(void)bev;
	event_active(up->kick_ev, EV_READ, 1);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct up_smtp *up = arg;

	(void)bev;
	up->wrote = true;
	event_active(up->kick_ev, EV_WRITE, 1);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct up_smtp *up = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		up->bev_what = what;
		up->bev_errno = EVUTIL_SOCKET_ERROR();
		event_active(up->kick_ev, EV_READ, 1);
	}
}

static void
attach(struct up_smtp *up)
{
	up->bev = up_conn_bev(up->conn);
	bufferevent_setcb(up->bev, read_cb, write_cb, event_cb, up);
	bufferevent_setwatermark(up->bev, EV_WRITE, UP_SMTP_DATA_LOW, 0);
	bufferevent_enable(up->bev, EV_READ | EV_WRITE);
}

static const char *
lost_reason(struct up_smtp *up, char *buf, size_t buflen)
{
	if (up->bev_what & BEV_EVENT_EOF)
		snprintf(buf, buflen, "connection closed by %s",
		    up_conn_peer(up->conn));
	else if (up->bev_errno != 0)
		snprintf(buf, buflen, "connection to %s lost: %s",
		    up_conn_peer(up->conn),
		    evutil_socket_error_to_string(up->bev_errno));
	else
		snprintf(buf, buflen, "connection to %s lost (TLS error)",
		    up_conn_peer(up->conn));
	return buf;
}

static void
send_ehlo(struct up_smtp *up, enum smtp_state next)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	evbuffer_add_printf(out, "EHLO %s\r\n", up->helo);
	up->state = next;
}

static void
start_auth(struct up_smtp *up)
{
	const char	*ir;
	char		 err[192];
	int		 rc;

	if (!(up->ehlo.caps & UP_SMTP_RESP_CAP_AUTH) || up->ehlo.auth[0] ==
	    '\0') {
		finish(up, UP_FAIL_CONFIG, "upstream %s offers no AUTH",
		    up_conn_peer(up->conn));
		return;
	}
	rc = up_sasl_new(up->t, "smtp", up->ehlo.auth, up_conn_is_tls(up->conn),
	    &up->sasl, err, sizeof(err));
	if (rc < 0) {
		finish(up, UP_FAIL_INTERNAL, "%s", err);
		return;
	}
	if (rc == 0) {
		finish(up, UP_FAIL_CONFIG,
		    "no usable AUTH mechanism (upstream offers %s)",
		    up->ehlo.auth);
		return;
	}
	snprintf(up->mech, sizeof(up->mech), "%s", up_sasl_mech(up->sasl));
	ir = up_sasl_initial(up->sasl);
	up->state = SS_AUTH;
	/* RFC 4954 section 4: an initial response that would make the
	 * command longer than 512 octets goes after an empty 334. */
	if (ir != NULL && 5 + strlen(up->mech) + 1 + strlen(ir) + 2 <=
	    UP_SMTP_CMD_LINE_MAX) {
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "AUTH %s ", up->mech);
		send_secret_line(up, prefix, ir);
		return;
	}
	up->ir_pending = ir != NULL;
	evbuffer_add_printf(bufferevent_get_output(up->bev), "AUTH %s\r\n",
	    up->mech);
}

static void
renew_cb(void *arg, const char *token, const char *why)
{
	struct up_smtp	*up = arg;
	char		 first[sizeof(up->why)];

	up->renew = NULL;
	if (token == NULL) {
		/* finish() formats into up->why: copy the first refusal. */
		snprintf(first, sizeof(first), "%s", up->why);
		up->quit_on_fail = true;
		finish(up, UP_FAIL_AUTH, "%s; no new OAuth2 token: %s", first,
		    why);
		return;		/* up may be gone */
	}
	OPENSSL_cleanse(up->t->secret, strlen(up->t->secret));
	free(up->t->secret);
	up->t->secret = xstrdup(token);
	start_auth(up);
}

/*
 * OAuth2: the upstream refused (5xx) an access token that looked valid:
 * get another once and AUTH again on this connection, which RFC 4954
 * section 4 leaves unauthenticated after a failed AUTH. Returns true if a
 * retry started; text is the refusal, kept for the final reason.
 */
static bool
renew_start(struct up_smtp *up, const char *text)
{
	size_t n;

	if (up->t->cred != UP_CRED_OAUTH2 || up->t->renew == NULL ||
	    up->renewed)
		return false;
	up->renewed = true;
	n = strlen(text);
	if (n >= sizeof(up->why))
		n = sizeof(up->why) - 1;
	memcpy(up->why, text, n);
	up->why[n] = '\0';
	up_sasl_free(&up->sasl);
	up->state = SS_RENEW;
	up->renew = up->t->renew->start(up->t->renew_key, up->t->secret,
	    renew_cb, up);
	return true;
}

static void
auth_reply(struct up_smtp *up, const struct up_smtp_resp *r)
{
	const char	*resp, *oe;
	char		 err[192], buf[512];

	if (r->code == 235) {
		finish(up, UP_OK, NULL);
		return;
	}
	if (r->code == 334) {
		if (up->ir_pending) {
			const char *ir = up_sasl_initial(up->sasl);

			up->ir_pending = false;
			/* "=" means empty only on the AUTH line itself. */
			send_secret_line(up, NULL, strcmp(ir, "=") == 0 ? "" :
			    ir);
			return;
		}
		if (up_sasl_step(up->sasl, r->text, &resp, err,
		    sizeof(err)) < 0) {
			send_line(up, "*");	/* cancel, RFC 4954 */
			finish(up, UP_FAIL_PROTOCOL, "AUTH %s: %s", up->mech,
			    err);
			return;
		}
		/* XOAUTH2's error challenge gets "" back, so that the
		 * server sends its final 535 (up_sasl_step). */
		send_secret_line(up, NULL, resp);
		return;
	}
	oe = up->sasl != NULL ? up_sasl_oauth_error(up->sasl) : NULL;
	reply_text(r, buf, sizeof(buf));
	if (r->code >= 500) {
		char refusal[1024];

		snprintf(refusal, sizeof(refusal), "AUTH %s refused: %s%s%s%s",
		    up->mech, buf, oe != NULL ? " (" : "", oe != NULL ? oe : "",
		    oe != NULL ? ")" : "");
		if (renew_start(up, refusal))
			return;
	}
	/* 4xx (454 4.7.0 temporary failure) is no verdict on the
	 * credentials: the client must not get a permanent 535. */
	finish(up, r->code >= 500 ? UP_FAIL_AUTH : UP_FAIL_CONNECT,
	    "AUTH %s refused: %s%s%s%s", up->mech, buf, oe != NULL ? " (" : "",
	    oe != NULL ? oe : "", oe != NULL ? ")" : "");
}

static void
tls_cb(void *arg, enum up_fail fail, const char *why)
{
	struct up_smtp *up = arg;

	if (fail != UP_OK) {
		finish(up, fail, "%s", why);
		return;
	}
	attach(up);
	/* RFC 3207 section 4.2: forget everything learnt in the clear. */
	memset(&up->ehlo, 0, sizeof(up->ehlo));
	send_ehlo(up, SS_EHLO_TLS);
}

/* One reply during login. Returns 1 when reading must stop: the login
 * ended (up may be gone) or the connection is switching to TLS. */
static int
login_reply(struct up_smtp *up, const struct up_smtp_resp *r)
{
	char buf[512];

	switch (up->state) {
	case SS_GREETING:
		if (r->code != 220) {
			finish(up, UP_FAIL_CONNECT, "upstream greeting: %s",
			    reply_text(r, buf, sizeof(buf)));
			return 1;
		}
		send_ehlo(up, SS_EHLO);
		return 0;
	case SS_EHLO:
	case SS_EHLO_TLS:
		if (r->code != 250) {
			finish(up, UP_FAIL_PROTOCOL, "EHLO refused: %s",
			    reply_text(r, buf, sizeof(buf)));
			return 1;
		}
		up_smtp_resp_ehlo(r, &up->ehlo);
		if (up->t->tls == UP_TLS_STARTTLS &&
		    !up_conn_is_tls(up->conn)) {
			if (!(up->ehlo.caps & UP_SMTP_RESP_CAP_STARTTLS)) {
				finish(up, UP_FAIL_CONFIG,
				    "upstream does not offer STARTTLS");
				return 1;
			}
			send_line(up, "STARTTLS");
			up->state = SS_STARTTLS;
			return 0;
		}
		start_auth(up);
		return up->state == SS_LOGIN_FAILED ? 1 : 0;
	case SS_STARTTLS:
		if (r->code != 220) {
			finish(up, UP_FAIL_TLS, "STARTTLS refused: %s",
			    reply_text(r, buf, sizeof(buf)));
			return 1;
		}
		up->state = SS_TLS;
		up->bev = NULL;		/* up_conn frees the plain one */
		up_smtp_resp_reader_reset(up->rd);
		if (up_conn_starttls(up->conn, tls_cb, up) < 0)
			finish(up, UP_FAIL_INTERNAL, "cannot start TLS");
		return 1;
	case SS_AUTH:
		auth_reply(up, r);
		return up->state == SS_AUTH ? 0 : 1;
	default:
		finish(up, UP_FAIL_PROTOCOL, "unexpected reply during login");
		return 1;
	}
}

static void
run_login(struct up_smtp *up)
{
	struct up_smtp_resp	 r;
	char			 buf[192];
	int			 rc;

	if (up->bev == NULL)
		return;
	while ((rc = up_smtp_resp_read(up->rd, bufferevent_get_input(up->bev),
	    &r)) == 1) {
		int stop;

		/* Only called from kick_cb: up stays allocated until it
		 * returns, even if the owner frees it in done_cb. */
		up->quit_on_fail = true;
		stop = login_reply(up, &r);
		up->quit_on_fail = false;
		if (stop)
			return;
	}
	if (rc < 0) {
		finish(up, UP_FAIL_PROTOCOL, "bad reply from %s: %s",
		    up_conn_peer(up->conn), up_smtp_resp_error(up->rd));
		return;
	}
	if (up->bev_what != 0)
		finish(up, UP_FAIL_CONNECT, "%s", lost_reason(up, buf,
		    sizeof(buf)));
}

static bool
has_pipelining(const struct up_smtp *up)
{
	return (up->ehlo.caps & UP_SMTP_RESP_CAP_PIPELINING) != 0;
}

static void
arm_timer(struct up_smtp *up)
{
	evtimer_add(up->timer, &up->cmd_tv);
}

/* Sends what may go now: everything with PIPELINING, else the next one
 * once nothing is in flight. */
static void
pump(struct up_smtp *up)
{
	struct req *req;

	if (up->failed || up->bev == NULL)
		return;
	TAILQ_FOREACH(req, &up->reqs, entry) {
		if (req->sent)
			continue;
		if (!has_pipelining(up) && up->inflight > 0)
			break;
		send_line(up, req->line);
		free(req->line);
		req->line = NULL;
		req->sent = true;
		if (up->inflight++ == 0)
			arm_timer(up);
	}
}

static void
free_req(struct req *req)
{
	free(req->line);
	free(req);
}

static void
run_ready(struct up_smtp *up)
{
	struct up_smtp_resp	 r;
	struct req		*req;
	char			 buf[512];
	int			 rc = 0;

	while (!up->failed && up->bev != NULL && (rc = up_smtp_resp_read(up->rd,
	    bufferevent_get_input(up->bev), &r)) == 1) {
		req = TAILQ_FIRST(&up->reqs);
		if (req == NULL || !req->sent) {
			conn_fail(up, r.code == 421 ? UP_FAIL_CONNECT :
			    UP_FAIL_PROTOCOL, "unexpected reply from %s: %s",
			    up_conn_peer(up->conn), reply_text(&r, buf,
			    sizeof(buf)));
			break;
		}
		TAILQ_REMOVE(&up->reqs, req, entry);
		up->inflight--;
		if (req->kind == REQ_DATA) {
			up->data_queued = false;
			if (r.code == 354) {
				up->state = SS_DATA;
				up->data_bytes = 0;
				memset(up->tail, 0, sizeof(up->tail));
			}
		}
		if (up->inflight > 0)
			arm_timer(up);
		else
			evtimer_del(up->timer);
		pump(up);
		req->cb(req->arg, UP_OK, &r, NULL);
		free_req(req);
		if (up->freed)
			return;
	}
	if (!up->failed && rc < 0)
		conn_fail(up, UP_FAIL_PROTOCOL, "bad reply from %s: %s",
		    up_conn_peer(up->conn), up_smtp_resp_error(up->rd));
	else if (!up->failed && up->bev_what != 0)
		conn_fail(up, UP_FAIL_CONNECT, "%s", lost_reason(up, buf,
		    sizeof(buf)));
	if (up->wrote && !up->failed) {
		up->wrote = false;
		if (evbuffer_get_length(bufferevent_get_output(up->bev)) > 0)
			arm_timer(up);	/* progress */
		else if (up->inflight == 0)
			evtimer_del(up->timer);
		if (up->drain_cb != NULL) {
			up->drain_cb(up->drain_arg);
			if (up->freed)
				return;
		}
	}
	if (!up->failed)
		return;
	if (up->drain_due) {
		up->drain_due = false;
		if (up->drain_cb != NULL) {
			up->drain_cb(up->drain_arg);
			if (up->freed)
				return;
		}
	}
	while ((req = TAILQ_FIRST(&up->reqs)) != NULL) {
		TAILQ_REMOVE(&up->reqs, req, entry);
		if (req->kind == REQ_DATA)
			up->data_queued = false;
		req->cb(req->arg, up->fail, NULL, up->why);
		free_req(req);
		if (up->freed)
			return;
	}
	up->inflight = 0;
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_smtp *up = arg;

	(void)fd;
	(void)what;
	up->busy = true;
	if (up->state == SS_CONNECT && up->conn == NULL)
		finish(up, UP_FAIL_CONFIG, "no upstream credentials");
	else if (up->state < SS_LOGIN_FAILED)
		run_login(up);
	if (!up->freed && up->state >= SS_READY)
		run_ready(up);
	up->busy = false;
	if (up->freed) {
		free(up);	/* the rest went in up_smtp_free */
		return;
	}
	up->bev_what = 0;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_smtp	*up = arg;
	long long	 ms;

	(void)fd;
	(void)what;
	if (up->state < SS_LOGIN_FAILED) {
		finish(up, UP_FAIL_CONNECT, "login to %s:%d timed out",
		    up->t->host, up->t->port);
		return;
	}
	ms = (long long)up->cmd_tv.tv_sec * 1000 + up->cmd_tv.tv_usec / 1000;
	if (up->inflight > 0)
		conn_fail(up, UP_FAIL_CONNECT, "no reply from %s in %lld ms",
		    up_conn_peer(up->conn), ms);
	else
		conn_fail(up, UP_FAIL_CONNECT,
		    "%s stopped reading DATA for %lld ms",
		    up_conn_peer(up->conn), ms);
}

static void
conn_cb(void *arg, enum up_fail fail, const char *why)
{
	struct up_smtp *up = arg;

	if (fail != UP_OK) {
		finish(up, fail, "%s", why);
		return;
	}
	attach(up);
	up->state = SS_GREETING;
}

/* An EHLO argument we can send as is: a domain or an address literal. */
static bool
helo_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr(".-:[]", *s) != NULL))
			return false;
	return true;
}

static void
set_tv(struct timeval *tv, long long ms, long long def)
{
	if (ms <= 0)
		ms = def;
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000 * 1000);
}

struct up_smtp *
up_smtp_new(const struct up_env *env, const struct up_target *t,
    const char *helo, long long cmd_timeout_ms, up_smtp_done_cb *cb,
    void *arg)
{
	struct up_smtp *up = xcalloc(1, sizeof(*up));

	up->t = up_target_dup(t);
	up->helo = xstrdup(helo != NULL && helo_ok(helo) ? helo :
	    UP_SMTP_HELO_DEFAULT);
	set_tv(&up->login_tv, t->login_timeout_ms,
	    UP_SMTP_LOGIN_TIMEOUT_DEFAULT_MS);
	set_tv(&up->cmd_tv, cmd_timeout_ms, UP_SMTP_CMD_TIMEOUT_DEFAULT_MS);
	up->done_cb = cb;
	up->done_arg = arg;
	up->rd = up_smtp_resp_reader_new();
	TAILQ_INIT(&up->reqs);
	up->timer = evtimer_new(env->base, timer_cb, up);
	up->kick_ev = event_new(env->base, -1, 0, kick_cb, up);
	if (up->timer == NULL || up->kick_ev == NULL)
		fatalx("up_smtp_new: event_new failed");
	up->state = SS_CONNECT;
	evtimer_add(up->timer, &up->login_tv);
	if (t->user == NULL || t->secret == NULL) {
		/* kick_cb reports it from the loop (conn stays NULL). */
		event_active(up->kick_ev, EV_TIMEOUT, 1);
		return up;
	}
	up->conn = up_conn_new(env, up->t, conn_cb, up);
	return up;
}

/* Checks a relayed command line: one of ours, no line breaks. */
static bool
cmd_allowed(const char *line)
{
	static const char *verbs[] = { "MAIL ", "RCPT ", "RSET", "NOOP",
		"VRFY ", NULL };
	size_t n = strlen(line);

	if (n + 2 > UP_SMTP_CMD_LINE_MAX || strpbrk(line, "\r\n") != NULL)
		return false;
	for (const char **v = verbs; *v != NULL; v++) {
		size_t k = strlen(*v);

		if (strncasecmp(line, *v, k) == 0 && (k == 5 || line[k] ==
		    '\0' || line[k] == ' '))
			return true;
	}
	return false;
}

static bool
can_queue(const struct up_smtp *up)
{
	return up->state == SS_READY && !up->data_queued;
}

static void
enqueue(struct up_smtp *up, enum req_kind kind, const char *line,
    up_smtp_reply_cb *cb, void *arg)
{
	struct req *req = xcalloc(1, sizeof(*req));

	req->kind = kind;
	req->line = line != NULL ? xstrdup(line) : NULL;
	req->cb = cb;
	req->arg = arg;
	TAILQ_INSERT_TAIL(&up->reqs, req, entry);
	if (up->failed)
		event_active(up->kick_ev, EV_TIMEOUT, 1);
	else
		pump(up);
}

int
up_smtp_cmd(struct up_smtp *up, const char *line, up_smtp_reply_cb *cb,
    void *arg)
{
	if (!can_queue(up) || !cmd_allowed(line))
		return -1;
	enqueue(up, REQ_CMD, line, cb, arg);
	return 0;
}

int
up_smtp_data_begin(struct up_smtp *up, up_smtp_reply_cb *cb, void *arg)
{
	if (!can_queue(up))
		return -1;
	/* RFC 2920 section 3.1: DATA may end a pipelined group; nothing
	 * may follow it before its reply. */
	up->data_queued = true;
	enqueue(up, REQ_DATA, "DATA", cb, arg);
	return 0;
}

int
up_smtp_data_write(struct up_smtp *up, struct evbuffer *chunk)
{
	struct evbuffer_ptr	 p;
	size_t			 n = evbuffer_get_length(chunk), k;
	char			 last[2];

	if (up->state != SS_DATA)
		return -1;
	if (n == 0)
		return 0;
	if (up->failed || up->bev == NULL) {
		evbuffer_drain(chunk, n);
		return 0;
	}
	k = n < 2 ? n : 2;
	evbuffer_ptr_set(chunk, &p, n - k, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(chunk, &p, last, k);
	if (k == 2)
		memcpy(up->tail, last, 2);
	else {
		up->tail[0] = up->tail[1];
		up->tail[1] = last[0];
	}
	up->data_bytes += n;
	evbuffer_add_buffer(bufferevent_get_output(up->bev), chunk);
	if (!evtimer_pending(up->timer, NULL))
		arm_timer(up);
	return 0;
}

size_t
up_smtp_data_pending(const struct up_smtp *up)
{
	if (up->bev == NULL)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(up->bev));
}

void
up_smtp_set_drain_cb(struct up_smtp *up, up_smtp_drain_cb *cb, void *arg)
{
	up->drain_cb = cb;
	up->drain_arg = arg;
}

int
up_smtp_data_end(struct up_smtp *up, up_smtp_reply_cb *cb, void *arg)
{
	struct req	*req;
	const char	*term;

	if (up->state != SS_DATA)
		return -1;
	up->state = SS_READY;
	req = xcalloc(1, sizeof(*req));
	req->kind = REQ_DOT;
	req->cb = cb;
	req->arg = arg;
	TAILQ_INSERT_TAIL(&up->reqs, req, entry);
	if (up->failed || up->bev == NULL) {
		event_active(up->kick_ev, EV_TIMEOUT, 1);
		return 0;
	}
	/* RFC 5321 4.1.1.4: the CRLF before "." must not be doubled. */
	term = up->data_bytes == 0 || memcmp(up->tail, "\r\n", 2) == 0 ?
	    ".\r\n" : "\r\n.\r\n";
	evbuffer_add(bufferevent_get_output(up->bev), term, strlen(term));
	req->sent = true;
	up->inflight++;
	arm_timer(up);
	return 0;
}

unsigned
up_smtp_caps(const struct up_smtp *up)
{
	return up->ehlo.caps;
}

uint64_t
up_smtp_size_max(const struct up_smtp *up)
{
	return up->ehlo.size_max;
}

const char *
up_smtp_mech(const struct up_smtp *up)
{
	return up->mech;
}

const char *
up_smtp_peer(const struct up_smtp *up)
{
	return up->conn != NULL ? up_conn_peer(up->conn) : "";
}

/*
 * QUIT without holding the owner: the bufferevent lives on until the
 * 221, EOF, an error or CLOSER_TIMEOUT_S. The list keeps closers
 * reachable, so a shutdown in that window is no leak.
 */
struct closer {
	LIST_ENTRY(closer)	 entry;
	struct bufferevent	*bev;
};
static LIST_HEAD(, closer) closers = LIST_HEAD_INITIALIZER(closers);

static void
closer_free(struct closer *c)
{
	LIST_REMOVE(c, entry);
	bufferevent_free(c->bev);
	free(c);
}

static void
closer_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		*line;
	size_t		 len;

	while ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		bool done = len >= 3 && strncmp(line, "221", 3) == 0 &&
		    (len == 3 || line[3] == ' ');

		free(line);
		if (done) {
			closer_free(arg);
			return;
		}
	}
	if (evbuffer_get_length(in) > UP_SMTP_RESP_LINE_MAX)
		closer_free(arg);
}

static void
closer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	closer_free(arg);
}

static void
closer_start(struct bufferevent *bev)
{
	struct closer	*c = xcalloc(1, sizeof(*c));
	struct timeval	 tv = { CLOSER_TIMEOUT_S, 0 };

	c->bev = bev;
	LIST_INSERT_HEAD(&closers, c, entry);
	evbuffer_add(bufferevent_get_output(bev), "QUIT\r\n", 6);
	bufferevent_setcb(bev, closer_read_cb, NULL, closer_event_cb, c);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void
up_smtp_free(struct up_smtp **upp)
{
	struct up_smtp		*up = *upp;
	struct req		*req;
	struct bufferevent	*bev;

	if (up == NULL)
		return;
	*upp = NULL;
	up->freed = true;
	/* Not mid-DATA (nor waiting for 354): "QUIT" would become message
	 * text there. */
	if (up->state == SS_READY && !up->data_queued && !up->failed &&
	    up->bev != NULL &&
	    (bev = up_conn_steal_bev(up->conn)) != NULL)
		closer_start(bev);
	up->bev = NULL;
	up_conn_free(&up->conn);
	while ((req = TAILQ_FIRST(&up->reqs)) != NULL) {
		TAILQ_REMOVE(&up->reqs, req, entry);
		free_req(req);
	}
	if (up->renew != NULL)
		up->t->renew->cancel(up->renew);
	up->renew = NULL;
	up_sasl_free(&up->sasl);
	up_smtp_resp_reader_free(&up->rd);
	event_free(up->timer);
	event_free(up->kick_ev);
	up_target_free(&up->t);
	free(up->helo);
	/* Inside our own callback chain: kick_cb frees the struct when the
	 * chain unwinds (every step checks up->freed first). */
	if (!up->busy)
		free(up);
}
