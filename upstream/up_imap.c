/*
 * Upstream IMAP login state machine (RFC 9051, RFC 3501): greeting,
 * CAPABILITY, [STARTTLS, CAPABILITY], AUTHENTICATE (SASL-IR if offered) or
 * LOGIN with literals, then the post-login capabilities. One login_timeout
 * timer covers everything from connect to the tagged OK. Owns the up_conn
 * until the caller steals the bufferevent.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "upstream/up_conn.h"
#include "upstream/up_imap.h"
#include "upstream/up_resp.h"
#include "upstream/up_sasl.h"

#define UP_IMAP_LOGIN_TIMEOUT_DEFAULT_MS	30000
#define UP_IMAP_LITERAL_MINUS_MAX		4096	/* RFC 7888 LITERAL- */

enum imap_state {
	IS_CONNECT,
	IS_GREETING,
	IS_CAPA,		/* before TLS, or with implicit/no TLS */
	IS_STARTTLS,
	IS_TLS,			/* handshake in up_conn */
	IS_CAPA_TLS,		/* first CAPABILITY inside TLS */
	IS_AUTH,		/* AUTHENTICATE exchange */
	IS_LOGIN,		/* LOGIN with literals */
	IS_RENEW,		/* OAuth2 token refused: getting another */
	IS_CAPA_POST,
	IS_DONE,
	IS_FAILED,
};

struct up_imap {
	struct up_target	*t;
	up_imap_done_cb		*cb;
	void			*arg;
	struct up_conn		*conn;
	struct bufferevent	*bev;	/* owned by conn */
	struct up_resp_reader	*rd;
	struct event		*timer;
	enum imap_state		 state;
	unsigned		 tagno;
	char			 tag[16];
	char			*caps;	/* latest list seen */
	char			*post_caps;
	struct up_sasl		*sasl;
	bool			 ir_pending;	/* no SASL-IR: wait for "+" */
	int			 login_step;	/* literals sent so far */
	char			*auth_caps;	/* what start_auth chose from */
	void			*renew;		/* renew handle (up.h) */
	bool			 renewed;	/* one retry per login */
	char			 mech[32];
	char			 bye[256];
	char			 why[320];
};

static void	start_auth(struct up_imap *);
static void	conn_cb(void *, enum up_fail, const char *);

/*
 * Reports the result once. The callback may free up: every caller returns
 * straight up the stack afterwards (handlers return 1 for "stop").
 */
static void
finish(struct up_imap *up, enum up_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
finish(struct up_imap *up, enum up_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (up->state == IS_DONE || up->state == IS_FAILED)
		return;
	up->state = fail == UP_OK ? IS_DONE : IS_FAILED;
	evtimer_del(up->timer);
	if (up->renew != NULL) {
		up->t->renew->cancel(up->renew);
		up->renew = NULL;
	}
	if (up->bev != NULL) {
		bufferevent_disable(up->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(up->bev, NULL, NULL, NULL, NULL);
	}
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(up->why, sizeof(up->why), fmt, ap);
		va_end(ap);
	}
	up->cb(up->arg, fail, fail == UP_OK ? NULL : up->why);
}

static void
cmd_vbegin(struct up_imap *up, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void
cmd_begin(struct up_imap *up, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
send_cmd(struct up_imap *up, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* New private tag ("P1", "P2", ...) and the command, without CRLF.
 * Commands formatted here carry no secrets. */
static void
cmd_vbegin(struct up_imap *up, const char *fmt, va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	snprintf(up->tag, sizeof(up->tag), "P%u", ++up->tagno);
	evbuffer_add_printf(out, "%s ", up->tag);
	evbuffer_add_vprintf(out, fmt, ap);
}

static void
cmd_begin(struct up_imap *up, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_vbegin(up, fmt, ap);
	va_end(ap);
}

static void
send_cmd(struct up_imap *up, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_vbegin(up, fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(up->bev), "\r\n", 2);
}

/* A secret line (SASL response, password literal): straight into the
 * output buffer, no copy of ours to wipe. */
static void
send_secret_line(struct up_imap *up, const char *s, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	evbuffer_add(out, s, len);
	evbuffer_add(out, "\r\n", 2);
}

static const char *
peer_text(const char *s, char *buf, size_t buflen)
{
	return str_sanitize(s, 160, buf, buflen);
}

static void
set_caps(struct up_imap *up, char *caps)
{
	free(up->caps);
	up->caps = caps;
}

/* Capabilities known: STARTTLS if we must, else authenticate. */
static int
after_caps(struct up_imap *up)
{
	if (up->t->tls == UP_TLS_STARTTLS && !up_conn_is_tls(up->conn)) {
		if (!up_resp_cap_has(up->caps, "STARTTLS")) {
			finish(up, UP_FAIL_CONFIG,
			    "upstream does not offer STARTTLS");
			return 1;
		}
		send_cmd(up, "STARTTLS");
		up->state = IS_STARTTLS;
		return 0;
	}
	start_auth(up);
	return up->state == IS_FAILED ? 1 : 0;
}


/* LOGIN user password, both as literals: never quoted strings, so any
 * byte of a password is fine and nothing needs escaping. RFC 7888:
 * LITERAL+ allows non-synchronizing literals of any size, LITERAL- up to
 * 4096 bytes; otherwise each literal waits for the server's "+". */
static void
login_literals(struct up_imap *up, bool lit_plus, bool lit_minus)
{
	struct evbuffer	*out = bufferevent_get_output(up->bev);
	size_t		 ulen = strlen(up->t->user);
	size_t		 plen = strlen(up->t->secret);

	if (lit_minus && ulen <= UP_IMAP_LITERAL_MINUS_MAX &&
	    plen <= UP_IMAP_LITERAL_MINUS_MAX)
		lit_plus = true;
	snprintf(up->mech, sizeof(up->mech), "LOGIN");
	up->state = IS_LOGIN;
	if (!lit_plus) {
		send_cmd(up, "LOGIN {%zu}", ulen);
		up->login_step = 0;
		return;
	}
	send_cmd(up, "LOGIN {%zu+}", ulen);	/* no "+" to wait for */
	evbuffer_add(out, up->t->user, ulen);
	evbuffer_add_printf(out, " {%zu+}\r\n", plen);
	send_secret_line(up, up->t->secret, plen);
	up->login_step = 2;
}

/* The next literal after a "+" (synchronizing LOGIN). */
static int
login_continue(struct up_imap *up)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	switch (up->login_step) {
	case 0:
		evbuffer_add(out, up->t->user, strlen(up->t->user));
		evbuffer_add_printf(out, " {%zu}\r\n", strlen(up->t->secret));
		up->login_step = 1;
		return 0;
	case 1:
		send_secret_line(up, up->t->secret, strlen(up->t->secret));
		up->login_step = 2;
		return 0;
	default:
		finish(up, UP_FAIL_PROTOCOL,
		    "unexpected continuation after LOGIN");
		return 1;
	}
}

static void
start_auth(struct up_imap *up)
{
	char		*mechs, err[160];
	const char	*ir;
	bool		 sasl_ir, lit_plus, lit_minus, disabled;
	int		 rc;

	if (up->caps == NULL)
		set_caps(up, xstrdup(""));
	sasl_ir = up_resp_cap_has(up->caps, "SASL-IR");
	lit_plus = up_resp_cap_has(up->caps, "LITERAL+");
	lit_minus = up_resp_cap_has(up->caps, "LITERAL-");
	disabled = up_resp_cap_has(up->caps, "LOGINDISABLED");
	mechs = up_resp_cap_auth_mechs(up->caps);
	rc = up_sasl_new(up->t, "imap", mechs, up_conn_is_tls(up->conn),
	    &up->sasl, err, sizeof(err));
	free(mechs);
	free(up->auth_caps);
	up->auth_caps = xstrdup(up->caps);
	/* Only capabilities sent from here on describe the logged-in
	 * session (RFC 9051 section 6.2.2: they may change at login). */
	set_caps(up, NULL);
	if (rc < 0) {
		finish(up, UP_FAIL_INTERNAL, "%s", err);
		return;
	}
	if (rc == 0 && up->t->cred == UP_CRED_OAUTH2) {
		finish(up, UP_FAIL_CONFIG, "upstream offers no OAuth2 "
		    "mechanism (XOAUTH2, OAUTHBEARER)");
		return;
	}
	if (rc == 0 && disabled) {
		finish(up, UP_FAIL_CONFIG, "upstream offers no usable "
		    "authentication mechanism (LOGINDISABLED)");
		return;
	}
	if (rc == 0) {
		login_literals(up, lit_plus, lit_minus);
		return;
	}
	snprintf(up->mech, sizeof(up->mech), "%s", up_sasl_mech(up->sasl));
	up->state = IS_AUTH;
	ir = up_sasl_initial(up->sasl);
	if (ir != NULL && sasl_ir) {
		/* RFC 4959: the initial response on the command line. */
		cmd_begin(up, "AUTHENTICATE %s ", up->mech);
		send_secret_line(up, ir, strlen(ir));
		return;
	}
	send_cmd(up, "AUTHENTICATE %s", up->mech);
	up->ir_pending = ir != NULL;
}

/* Tagged OK of AUTHENTICATE/LOGIN: logged in. */
static int
auth_ok(struct up_imap *up, const struct up_resp *r)
{
	char *caps;

	up_sasl_free(&up->sasl);
	/* Dovecot and most servers put the new list into the OK; else an
	 * untagged CAPABILITY may have come before it; else ask. */
	if ((caps = up_resp_capability(r)) != NULL)
		set_caps(up, caps);
	if (up->caps == NULL) {
		send_cmd(up, "CAPABILITY");
		up->state = IS_CAPA_POST;
		return 0;
	}
	up->post_caps = up_resp_cap_filter(up->caps);
	finish(up, UP_OK, NULL);
	return 1;
}

static int
auth_failed(struct up_imap *up, const struct up_resp *r)
{
	const char	*oe = up->sasl != NULL ?
			    up_sasl_oauth_error(up->sasl) : NULL;
	char		 buf[200];

	/* The upstream's own words: "[AUTHENTICATIONFAILED] ...". For
	 * OAuth2 its JSON error report says why (expired, scope). */
	peer_text(r->resp_text, buf, sizeof(buf));
	if (oe != NULL)
		finish(up, UP_FAIL_AUTH, "%s (%s: %s)", buf, up->mech, oe);
	else
		finish(up, UP_FAIL_AUTH, "%s", buf);
	return 1;
}

static void
renew_cb(void *arg, const char *token, const char *why)
{
	struct up_imap	*up = arg;
	char		 first[sizeof(up->why)];

	up->renew = NULL;
	if (token == NULL) {
		/* finish() formats into up->why: copy the first refusal. */
		snprintf(first, sizeof(first), "%s", up->why);
		finish(up, UP_FAIL_AUTH, "%s; no new OAuth2 token: %s", first,
		    why);
		return;
	}
	OPENSSL_cleanse(up->t->secret, strlen(up->t->secret));
	free(up->t->secret);
	up->t->secret = xstrdup(token);
	set_caps(up, xstrdup(up->auth_caps));
	start_auth(up);
}

/*
 * OAuth2: the upstream refused an access token that looked valid (revoked,
 * or expired before its stated time): get another once and AUTHENTICATE
 * again on this connection, which a failed AUTHENTICATE leaves in the
 * not-authenticated state (RFC 9051 6.3.3). Returns 1 if a retry started.
 */
static int
renew_start(struct up_imap *up, const struct up_resp *r)
{
	const char	*oe;
	char		 buf[200];

	/* A LOGIN (no SASL: the server offers no AUTH=) has no sasl. */
	if (up->t->cred != UP_CRED_OAUTH2 || up->t->renew == NULL ||
	    up->renewed || up->state != IS_AUTH || up->sasl == NULL)
		return 0;
	oe = up_sasl_oauth_error(up->sasl);
	up->renewed = true;
	peer_text(r->resp_text, buf, sizeof(buf));
	if (oe != NULL)
		snprintf(up->why, sizeof(up->why), "%s (%s: %s)", buf, up->mech,
		    oe);
	else
		snprintf(up->why, sizeof(up->why), "%s", buf);
	up_sasl_free(&up->sasl);
	up->state = IS_RENEW;
	up->renew = up->t->renew->start(up->t->renew_key, up->t->secret,
	    renew_cb, up);
	return 1;
}

static int
on_greeting(struct up_imap *up, const struct up_resp *r)
{
	char buf[200], *caps;

	if (r->kind != UP_RESP_UNTAGGED) {
		finish(up, UP_FAIL_PROTOCOL, "bad greeting from upstream");
		return 1;
	}
	switch (r->status) {
	case UP_RESP_OK:
		break;
	case UP_RESP_BYE:
		finish(up, UP_FAIL_CONNECT, "upstream refused: %s",
		    peer_text(r->resp_text, buf, sizeof(buf)));
		return 1;
	case UP_RESP_PREAUTH:
		/* Already logged in as someone: not the account we were
		 * given, and no STARTTLS possible (RFC 9051 7.1.4). */
		finish(up, UP_FAIL_PROTOCOL, "upstream greeted with PREAUTH");
		return 1;
	default:
		finish(up, UP_FAIL_PROTOCOL, "bad greeting from upstream: %s",
		    peer_text(r->line, buf, sizeof(buf)));
		return 1;
	}
	if ((caps = up_resp_capability(r)) != NULL) {
		set_caps(up, caps);
		return after_caps(up);
	}
	send_cmd(up, "CAPABILITY");
	up->state = IS_CAPA;
	return 0;
}

static int
on_tagged(struct up_imap *up, const struct up_resp *r)
{
	char	buf[200], *caps;

	if (strcmp(r->tag, up->tag) != 0) {
		finish(up, UP_FAIL_PROTOCOL, "unexpected tag from upstream");
		return 1;
	}
	switch (up->state) {
	case IS_CAPA:
	case IS_CAPA_TLS:
	case IS_CAPA_POST:
		if (r->status != UP_RESP_OK) {
			finish(up, UP_FAIL_PROTOCOL, "CAPABILITY failed: %s",
			    peer_text(r->resp_text, buf, sizeof(buf)));
			return 1;
		}
		if ((caps = up_resp_capability(r)) != NULL)
			set_caps(up, caps);
		if (up->caps == NULL) {
			finish(up, UP_FAIL_PROTOCOL,
			    "no CAPABILITY response from upstream");
			return 1;
		}
		if (up->state != IS_CAPA_POST)
			return after_caps(up);
		up->post_caps = up_resp_cap_filter(up->caps);
		finish(up, UP_OK, NULL);
		return 1;
	case IS_STARTTLS:
		if (r->status != UP_RESP_OK) {
			finish(up, UP_FAIL_PROTOCOL, "STARTTLS failed: %s",
			    peer_text(r->resp_text, buf, sizeof(buf)));
			return 1;
		}
		/* Nothing said in the clear counts after the handshake:
		 * no capabilities, no partial line (RFC 9051 6.2.1);
		 * up_conn drops unread input. The old bufferevent is
		 * freed: stop reading it. */
		set_caps(up, NULL);
		up_resp_reader_reset(up->rd);
		up->bev = NULL;
		up->state = IS_TLS;
		if (up_conn_starttls(up->conn, conn_cb, up) < 0) {
			finish(up, UP_FAIL_INTERNAL, "cannot start TLS");
			return 1;
		}
		return 1;
	case IS_AUTH:
	case IS_LOGIN:
		if (r->status == UP_RESP_OK)
			return auth_ok(up, r);
		if (renew_start(up, r))
			return 1;
		return auth_failed(up, r);
	default:
		finish(up, UP_FAIL_PROTOCOL, "unexpected tagged response");
		return 1;
	}
}

static int
on_continue(struct up_imap *up, const struct up_resp *r)
{
	const char	*resp;
	char		 err[160];

	if (up->state == IS_LOGIN)
		return login_continue(up);
	if (up->state != IS_AUTH) {
		finish(up, UP_FAIL_PROTOCOL, "unexpected continuation");
		return 1;
	}
	if (up->ir_pending) {
		/* No SASL-IR: the first "+" (empty) asks for it. */
		const char *ir = up_sasl_initial(up->sasl);

		up->ir_pending = false;
		send_secret_line(up, ir, strcmp(ir, "=") == 0 ? 0 :
		    strlen(ir));
		return 0;
	}
	if (up_sasl_step(up->sasl, r->text, &resp, err, sizeof(err)) < 0) {
		finish(up, UP_FAIL_PROTOCOL, "%s", err);
		return 1;
	}
	send_secret_line(up, resp, strlen(resp));
	return 0;
}

/* 0: read on; 1: stop (finished, or the bufferevent was replaced). */
static int
on_response(struct up_imap *up, const struct up_resp *r)
{
	char buf[200], *caps;

	if (up->state == IS_GREETING)
		return on_greeting(up, r);
	switch (r->kind) {
	case UP_RESP_TAGGED:
		return on_tagged(up, r);
	case UP_RESP_CONT:
		return on_continue(up, r);
	case UP_RESP_UNTAGGED:
		break;
	}
	if (r->status == UP_RESP_BYE) {
		/* The close follows; its reason is this text. */
		peer_text(r->resp_text, buf, sizeof(buf));
		snprintf(up->bye, sizeof(up->bye), "%s", buf);
	} else if ((caps = up_resp_capability(r)) != NULL &&
	    up->state != IS_STARTTLS)
		set_caps(up, caps);
	else
		free(caps);
	return 0;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct up_imap	*up = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct up_resp	 r;
	int		 rc;

	for (;;) {
		rc = up_resp_read(up->rd, in, &r);
		if (rc == 0)
			return;
		if (rc < 0) {
			finish(up, UP_FAIL_PROTOCOL, "bad response from "
			    "upstream: %s", up_resp_error(up->rd));
			return;
		}
		if (on_response(up, &r) != 0)
			return;		/* up may be gone */
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct up_imap *up = arg;

	(void)bev;
	if (up->bye[0] != '\0')
		finish(up, UP_FAIL_CONNECT, "upstream closed the connection: "
		    "%s", up->bye);
	else if (what & BEV_EVENT_EOF)
		finish(up, UP_FAIL_CONNECT,
		    "upstream closed the connection during login");
	else
		finish(up, UP_FAIL_CONNECT, "upstream connection error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* up_conn finished a step: connected (greeting next) or TLS is up after
 * STARTTLS (capabilities again). */
static void
conn_cb(void *arg, enum up_fail fail, const char *why)
{
	struct up_imap *up = arg;

	if (fail != UP_OK) {
		finish(up, fail, "%s", why);
		return;
	}
	up->bev = up_conn_bev(up->conn);
	bufferevent_setcb(up->bev, read_cb, NULL, event_cb, up);
	bufferevent_setwatermark(up->bev, EV_READ, 0, UP_RESP_LINE_MAX + 4096);
	bufferevent_enable(up->bev, EV_READ | EV_WRITE);
	if (up->state == IS_TLS) {
		send_cmd(up, "CAPABILITY");
		up->state = IS_CAPA_TLS;
		return;
	}
	up->state = IS_GREETING;
	/* Bytes may have arrived with the handshake already. */
	if (evbuffer_get_length(bufferevent_get_input(up->bev)) > 0)
		read_cb(up->bev, up);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	static const char *waiting[] = {
		[IS_CONNECT] = "connect",
		[IS_GREETING] = "greeting",
		[IS_CAPA] = "CAPABILITY",
		[IS_STARTTLS] = "STARTTLS",
		[IS_TLS] = "TLS handshake",
		[IS_CAPA_TLS] = "CAPABILITY",
		[IS_AUTH] = "AUTHENTICATE",
		[IS_LOGIN] = "LOGIN",
		[IS_RENEW] = "a new OAuth2 access token",
		[IS_CAPA_POST] = "CAPABILITY",
		[IS_DONE] = "-",
		[IS_FAILED] = "-",
	};
	struct up_imap *up = arg;

	(void)fd;
	(void)what;
	finish(up, UP_FAIL_CONNECT, "upstream login timed out (waiting for "
	    "%s)", waiting[up->state]);
}

struct up_imap *
up_imap_new(const struct up_env *env, const struct up_target *t,
    up_imap_done_cb *cb, void *arg)
{
	struct up_imap	*up = xcalloc(1, sizeof(*up));
	long long	 ms = t->login_timeout_ms;
	struct timeval	 tv;

	up->t = up_target_dup(t);
	up->cb = cb;
	up->arg = arg;
	up->rd = up_resp_reader_new(false);
	up->state = IS_CONNECT;
	if ((up->timer = evtimer_new(env->base, timer_cb, up)) == NULL)
		fatalx("up_imap_new: evtimer_new failed");
	if (ms <= 0)
		ms = UP_IMAP_LOGIN_TIMEOUT_DEFAULT_MS;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	evtimer_add(up->timer, &tv);
	/* Reports through conn_cb, never before this returns. */
	up->conn = up_conn_new(env, up->t, conn_cb, up);
	return up;
}

struct bufferevent *
up_imap_steal_bev(struct up_imap *up)
{
	if (up->state != IS_DONE || up->bev == NULL)
		return NULL;
	/* The relay sets its own limits. */
	bufferevent_setwatermark(up->bev, EV_READ, 0, 0);
	up->bev = NULL;
	return up_conn_steal_bev(up->conn);
}

const char *
up_imap_capabilities(const struct up_imap *up)
{
	return up->post_caps;
}

const char *
up_imap_mech(const struct up_imap *up)
{
	return up->mech;
}

void
up_imap_free(struct up_imap **upp)
{
	struct up_imap *up = *upp;

	if (up == NULL)
		return;
	*upp = NULL;
	up_conn_free(&up->conn);	/* the bufferevent too, unless stolen */
	if (up->renew != NULL)
		up->t->renew->cancel(up->renew);
	free(up->auth_caps);
	up_sasl_free(&up->sasl);
	up_resp_reader_free(&up->rd);
	if (up->timer != NULL)
		event_free(up->timer);
	free(up->caps);
	free(up->post_caps);
	up_target_free(&up->t);		/* wipes the secret */
	free(up);
}
