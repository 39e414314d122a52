/*
 * IMAP before login (RFC 9051/3501): a command table over the incremental
 * parser, the shared login check, a connection slot, the upstream login,
 * and the hand-over. Greeting and error texts follow EmailEngine's IMAP
 * proxy word for word so that scripts written for it keep working.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth/auth.h"
#include "auth/auth_sasl.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "proxy/imap.h"
#include "proxy/imap_parse.h"
#include "proxy/worker.h"
#include "tokenstore/tok_conn.h"
#include "tokenstore/tok_store.h"
#include "upstream/up_imap.h"

#define IMAP_VERSION	"0.1.0"

enum imap_state {
	IMAP_S_NOTAUTH,		/* reading commands */
	IMAP_S_SASL,		/* AUTHENTICATE: waiting for the response */
	IMAP_S_BUSY,		/* login in progress: input paused */
	IMAP_S_STARTTLS,	/* OK sent, handshake pending: input dropped */
	IMAP_S_CLOSING,		/* BYE sent: nothing more is read or done */
	IMAP_S_RELAY,
};

struct imap {
	struct imap_parse	*parse;
	enum imap_state		 state;
	char			*tag;		/* command in progress */
	int			 auth_failures;
	int			 bad_commands;
	struct auth_req		*auth;
	struct tok_req		*slot_req;
	struct up_imap		*up;
	struct up_target	*target;
	struct event		*delay;		/* failure delay */
	char			*delayed_reply;
	bool			 delayed_fatal;
};

struct imap_cmd_def {
	const char	*name;
	void		 (*fn)(struct sess *, struct imap *,
			    const struct imap_cmd *);
};

static void	imap_process(struct sess *);

static bool
imap_login_disabled(const struct sess *s)
{
	return !s->tls && !s->pcfg->allow_plaintext_auth;
}

static void
imap_caps(const struct sess *s, char *buf, size_t len)
{
	bool starttls = !s->tls && s->lcfg->tls == CFG_TLS_STARTTLS;

	snprintf(buf, len, "IMAP4rev1 LITERAL+ SASL-IR ID%s%s",
	    starttls ? " STARTTLS" : "",
	    imap_login_disabled(s) ? " LOGINDISABLED" : " AUTH=PLAIN");
}

static void
imap_start(struct sess *s)
{
	struct imap *im = xcalloc(1, sizeof(*im));

	im->parse = imap_parse_new(s->pcfg->line_max, s->pcfg->literal_max);
	s->proto = im;
	sess_printf(s, "* OK Postern IMAP Proxy ready for requests from %s %s"
	    "\r\n", s->ip, s->idhex);
}

/* Drops whatever a login has in flight: the login check, the connection
 * slot (taken or being taken), the upstream login, a delayed reply. */
static void
imap_abort_login(struct sess *s, struct imap *im)
{
	auth_cancel(im->auth);
	im->auth = NULL;
	if (im->slot_req != NULL) {
		tok_req_cancel(im->slot_req);
		im->slot_req = NULL;
		/* The script runs anyway once sent; a ZREM on the same
		 * connection runs after it, so the slot cannot leak. */
		tok_conn_release(s->w->tok, s->account, s->idhex);
	}
	up_imap_free(&im->up);
	up_target_free(&im->target);
	if (s->slot_held) {
		tok_conn_release(s->w->tok, s->account, s->idhex);
		s->slot_held = false;
	}
	if (im->delay != NULL)
		evtimer_del(im->delay);
	free(im->delayed_reply);
	im->delayed_reply = NULL;
}

/* The last words: after a BYE nothing more is parsed, answered or
 * started, even if input is still buffered or a login is in flight. */
static void
imap_bye(struct sess *s, const char *text, const char *reason)
{
	struct imap *im = s->proto;

	imap_abort_login(s, im);
	im->state = IMAP_S_CLOSING;
	sess_printf(s, "* BYE %s\r\n", text);
	sess_close_after_flush(s, reason);
}

/* A close is pending (token revoked, ...) while a login step was under
 * way: what it brings is dropped, and nothing is answered or started. */
static bool
imap_gone(struct sess *s, struct imap *im)
{
	if (!sess_close_pending(s))
		return false;
	imap_abort_login(s, im);
	im->state = IMAP_S_CLOSING;
	return true;
}

static void
imap_bad(struct sess *s, struct imap *im, const char *tag, const char *text)
{
	sess_printf(s, "%s BAD %s\r\n", tag, text);
	if (++im->bad_commands >= s->pcfg->bad_commands_max)
		imap_bye(s, "Too many invalid commands", "bad commands");
}

static void
cmd_capability(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	char caps[256];

	(void)im;
	imap_caps(s, caps, sizeof(caps));
	sess_printf(s, "* CAPABILITY %s\r\n%s OK Capability completed\r\n",
	    caps, c->tag);
}

static void
cmd_noop(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	(void)im;
	sess_printf(s, "%s OK NOOP completed\r\n", c->tag);
}

static void
cmd_logout(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	/* Whatever was pipelined after it is neither parsed nor run. */
	im->state = IMAP_S_CLOSING;
	sess_printf(s, "* BYE Logging out\r\n%s OK Logout completed\r\n",
	    c->tag);
	sess_close_after_flush(s, "logout");
}

static void
cmd_id(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	(void)im;
	sess_printf(s, "* ID (\"name\" \"Postern\" \"version\" \"%s\")\r\n"
	    "%s OK ID completed\r\n", IMAP_VERSION, c->tag);
}

static void
cmd_starttls(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	if (s->lcfg->tls != CFG_TLS_STARTTLS || s->tls) {
		imap_bad(s, im, c->tag, s->tls ? "TLS is already active" :
		    "STARTTLS not available on this port");
		return;
	}
	sess_printf(s, "%s OK Begin TLS negotiation now\r\n", c->tag);
	/* Stop parsing here: whatever follows in this read came in clear
	 * and is dropped, never executed inside TLS (CVE-2011-0411). */
	im->state = IMAP_S_STARTTLS;
	sess_starttls(s);
}

/* Sends a login failure after the failure delay (a timer, so the worker
 * keeps serving others), then BYE once the client used up its tries. */
static void
imap_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess	*s = arg;
	struct imap	*im = s->proto;

	(void)fd;
	(void)what;
	if (imap_gone(s, im))
		return;
	sess_write(s, im->delayed_reply, strlen(im->delayed_reply));
	free(im->delayed_reply);
	im->delayed_reply = NULL;
	if (im->delayed_fatal) {
		imap_bye(s, "Too many failed logins", "auth failures");
		return;
	}
	im->state = IMAP_S_NOTAUTH;
	sess_read_enable(s, true);
	imap_process(s);
}

/* Replies "<tag> <tail>" after the failure delay (or at once); a failure
 * counts towards auth_failures_max. */
static void
imap_reply_later(struct sess *s, struct imap *im, bool failure,
    const char *tail)
{
	struct timeval	tv;
	long long	ms = failure ? s->pcfg->failure_delay_ms : 0;

	free(im->delayed_reply);
	im->delayed_reply = xasprintf("%s %s\r\n", im->tag, tail);
	im->delayed_fatal = failure &&
	    ++im->auth_failures >= s->pcfg->auth_failures_max;
	if (im->delay == NULL)
		im->delay = evtimer_new(s->w->base, imap_delay_cb, s);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(im->delay, &tv);
}

static void
imap_up_done_cb(void *arg, enum up_fail fail, const char *why)
{
	struct sess		*s = arg;
	struct imap		*im = s->proto;
	struct bufferevent	*up;
	const char		*caps;

	if (imap_gone(s, im))
		return;
	if (fail != UP_OK) {
		char text[512];

		sess_log(s, fail == UP_FAIL_AUTH ? LOG_LVL_INFO : LOG_LVL_WARN,
		    "event=login result=upstream_fail class=%s account=%s "
		    "upstream=%s:%d reason=\"%s\"", up_fail_name(fail),
		    s->account, im->target->host, im->target->port, why);
		tok_account_set_state(s->w->tok, s->account,
		    fail == UP_FAIL_AUTH ? "authenticationError" :
		    "connectError", why);
		/* why lives in im->up: format before freeing it. */
		snprintf(text, sizeof(text), "NO [UNAVAILABLE] %s: %s",
		    fail == UP_FAIL_AUTH ? "Upstream server rejected the login"
		    : "Upstream server unavailable", why);
		up_imap_free(&im->up);
		up_target_free(&im->target);
		tok_conn_release(s->w->tok, s->account, s->idhex);
		s->slot_held = false;
		free(s->account);
		s->account = NULL;
		/* The upstream refusing our stored password is a failed
		 * login: delayed and counted, or a client could make us
		 * hammer the real server into locking the mailbox. A
		 * connect error or timeout is not the client's doing. */
		imap_reply_later(s, im, fail == UP_FAIL_AUTH, text);
		return;
	}
	sess_log(s, LOG_LVL_INFO, "event=login result=ok account=%s "
	    "upstream=%s:%d mech=%s ms=%lld", s->account, im->target->host,
	    im->target->port, up_imap_mech(im->up),
	    str_now_ms() - s->started_ms);
	tok_account_set_state(s->w->tok, s->account, "connected", NULL);
	/* In pieces: an upstream may list kilobytes of capabilities. */
	caps = up_imap_capabilities(im->up);
	sess_write(s, "* CAPABILITY ", 13);
	sess_write(s, caps, strlen(caps));
	sess_printf(s, "\r\n%s OK %s authenticated\r\n", im->tag, s->account);
	up = up_imap_steal_bev(im->up);
	up_imap_free(&im->up);
	up_target_free(&im->target);
	im->state = IMAP_S_RELAY;
	imap_parse_free(&im->parse);
	sess_logged_in(s);
	sess_relay(s, up);
}

static void
imap_slot_cb(void *arg, int rc)
{
	struct sess	*s = arg;
	struct imap	*im = s->proto;

	im->slot_req = NULL;
	if (rc == 1)
		s->slot_held = true;	/* given back if we are going */
	if (imap_gone(s, im))
		return;
	if (rc != 1) {
		sess_log(s, LOG_LVL_INFO, "event=login result=%s account=%s",
		    rc == 0 ? "limit" : "tempfail", s->account);
		up_target_free(&im->target);
		free(s->account);
		s->account = NULL;
		imap_reply_later(s, im, false, rc == 0 ?
		    "NO [LIMIT] Too many connections for this account" :
		    "NO [UNAVAILABLE] Temporary failure, try again later");
		return;
	}
	im->up = up_imap_new(&s->w->up, im->target, imap_up_done_cb, s);
}

static void
imap_auth_cb(void *arg, struct auth_result *res)
{
	struct sess	*s = arg;
	struct imap	*im = s->proto;

	im->auth = NULL;
	if (imap_gone(s, im))
		return;
	if (res->verdict != AUTH_OK) {
		char buf[200];

		/* The account name is the client's text: sanitize it. */
		sess_log(s, res->verdict == AUTH_TEMPFAIL ? LOG_LVL_WARN :
		    LOG_LVL_INFO, "event=login result=%s account=%s "
		    "reason=\"%s\"", auth_verdict_name(res->verdict),
		    str_sanitize(res->account, 100, buf, sizeof(buf)),
		    res->reason);
		imap_reply_later(s, im, res->verdict != AUTH_TEMPFAIL,
		    auth_result_imap_text(res));
		return;
	}
	s->account = xstrdup(res->account);
	memcpy(s->token_id, res->token_id, sizeof(s->token_id));
	im->target = res->target;
	res->target = NULL;
	im->slot_req = tok_conn_acquire(s->w->tok, s->account, s->idhex,
	    res->max_connections, imap_slot_cb, s);
}

static void
imap_login(struct sess *s, struct imap *im, const char *user,
    const char *pass)
{
	char buf[200];

	im->state = IMAP_S_BUSY;
	sess_read_enable(s, false);
	sess_log(s, LOG_LVL_DEBUG, "event=login_attempt account=%s",
	    str_sanitize(user, 100, buf, sizeof(buf)));
	im->auth = auth_check(s->w->tok, AUTH_PROTO_IMAP, user, pass, s->ip,
	    s->w->cfg, imap_auth_cb, s);
}

static bool
imap_is_astring(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED ||
	    a->type == IMAP_ARG_LITERAL;
}

static void
cmd_login(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	if (c->nargs != 2 || !imap_is_astring(&c->args[0]) ||
	    !imap_is_astring(&c->args[1]) ||
	    strlen(c->args[0].s) != c->args[0].len ||
	    strlen(c->args[1].s) != c->args[1].len) {
		imap_bad(s, im, c->tag, "Invalid arguments");
		return;
	}
	if (imap_login_disabled(s)) {
		sess_printf(s, "%s NO [PRIVACYREQUIRED] Plaintext "
		    "authentication disallowed on non-secure connections, "
		    "use STARTTLS first\r\n", c->tag);
		return;
	}
	imap_login(s, im, c->args[0].s, c->args[1].s);
}

static void
imap_sasl_response(struct sess *s, struct imap *im, const char *line,
    size_t len)
{
	char *user, *pass;

	if (len == 1 && line[0] == '*') {
		sess_printf(s, "%s BAD Authentication cancelled\r\n", im->tag);
		im->state = IMAP_S_NOTAUTH;
		return;
	}
	if (auth_sasl_plain_decode(line, len, &user, &pass) == -1) {
		im->state = IMAP_S_NOTAUTH;
		imap_bad(s, im, im->tag, "Invalid SASL PLAIN response");
		return;
	}
	imap_login(s, im, user, pass);
	free(user);
	crypto_free_secret(&pass);
}

static void
cmd_authenticate(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	if (c->nargs < 1 || c->nargs > 2 || c->args[0].type != IMAP_ARG_ATOM ||
	    (c->nargs == 2 && c->args[1].type != IMAP_ARG_ATOM)) {
		imap_bad(s, im, c->tag, "Invalid arguments");
		return;
	}
	if (strcasecmp(c->args[0].s, "PLAIN") != 0) {
		sess_printf(s, "%s NO [CANNOT] Unsupported authentication "
		    "mechanism\r\n", c->tag);
		return;
	}
	if (imap_login_disabled(s)) {
		sess_printf(s, "%s NO [PRIVACYREQUIRED] Plaintext "
		    "authentication disallowed on non-secure connections, "
		    "use STARTTLS first\r\n", c->tag);
		return;
	}
	if (c->nargs == 2) {
		imap_sasl_response(s, im, c->args[1].s, c->args[1].len);
		return;
	}
	im->state = IMAP_S_SASL;
	sess_printf(s, "+ \r\n");
}

static const struct imap_cmd_def imap_cmds[] = {
	{ "CAPABILITY", cmd_capability },
	{ "NOOP", cmd_noop },
	{ "LOGOUT", cmd_logout },
	{ "ID", cmd_id },
	{ "STARTTLS", cmd_starttls },
	{ "LOGIN", cmd_login },
	{ "AUTHENTICATE", cmd_authenticate },
};

static void
imap_dispatch(struct sess *s, struct imap *im, const struct imap_cmd *c)
{
	free(im->tag);
	im->tag = xstrdup(c->tag);
	for (size_t i = 0; i < sizeof(imap_cmds) / sizeof(imap_cmds[0]); i++)
		if (strcmp(c->name, imap_cmds[i].name) == 0) {
			imap_cmds[i].fn(s, im, c);
			return;
		}
	imap_bad(s, im, c->tag, "Command not available before authentication");
}

static void
imap_process(struct sess *s)
{
	struct imap	*im = s->proto;
	struct evbuffer	*in = bufferevent_get_input(s->bev);

	while (!s->closing && im->delayed_reply == NULL) {
		if (im->state == IMAP_S_SASL) {
			size_t	 len;
			char	*line = evbuffer_readln(in, &len,
			    EVBUFFER_EOL_CRLF);

			if (line == NULL) {
				if (evbuffer_get_length(in) >= s->pcfg->line_max)
					imap_bye(s, "Line too long",
					    "line too long");
				return;
			}
			im->state = IMAP_S_NOTAUTH;
			if (len >= s->pcfg->line_max)
				imap_bye(s, "Line too long", "line too long");
			else
				imap_sasl_response(s, im, line, len);
			OPENSSL_cleanse(line, len);
			free(line);
			continue;
		}
		if (im->state != IMAP_S_NOTAUTH)
			return;
		switch (imap_parse_feed(im->parse, in)) {
		case IMAP_PARSE_AGAIN:
			return;
		case IMAP_PARSE_CONTINUE:
			sess_printf(s, "+ Ready for literal data\r\n");
			break;
		case IMAP_PARSE_BAD:
			imap_bad(s, im, imap_parse_tag(im->parse),
			    imap_parse_error(im->parse));
			break;
		case IMAP_PARSE_FATAL:
			imap_bye(s, imap_parse_error(im->parse),
			    imap_parse_error(im->parse));
			return;
		case IMAP_PARSE_COMMAND:
			imap_dispatch(s, im, imap_parse_cmd(im->parse));
			break;
		}
	}
}

static void
imap_read(struct sess *s)
{
	imap_process(s);
}

static void
imap_tls_done(struct sess *s)
{
	struct imap *im = s->proto;

	if (im->state != IMAP_S_STARTTLS)
		return;
	im->state = IMAP_S_NOTAUTH;
	imap_process(s);
}

static void
imap_login_timeout(struct sess *s)
{
	imap_bye(s, "Login timeout, closing connection", "login timeout");
}

static void
imap_shutdown(struct sess *s)
{
	imap_bye(s, "Server shutting down", "shutdown");
}

static void
imap_revoked(struct sess *s)
{
	imap_bye(s, "Access token revoked", "token revoked");
}

static void
imap_free(struct sess *s)
{
	struct imap *im = s->proto;

	if (im == NULL)
		return;
	imap_abort_login(s, im);
	if (im->delay != NULL)
		event_free(im->delay);
	imap_parse_free(&im->parse);
	free(im->tag);
	free(im);
	s->proto = NULL;
}

const struct sess_ops imap_ops = {
	.name = "imap",
	.start = imap_start,
	.read = imap_read,
	.tls_done = imap_tls_done,
	.login_timeout = imap_login_timeout,
	.shutdown = imap_shutdown,
	.revoked = imap_revoked,
	.free = imap_free,
};
