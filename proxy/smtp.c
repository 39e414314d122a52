/*
 * SMTP front-end. Commands are handled one at a time: while one waits for
 * Redis or the upstream, input stays buffered (PIPELINING still works, the
 * replies just come in order). Nothing is acknowledged that the upstream
 * did not accept: MAIL, RCPT and the end of DATA get the upstream's own
 * reply, and a message the upstream never confirmed gets 451.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth/auth.h"
#include "auth/auth_sasl.h"
#include "common/crypto.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "proxy/smtp.h"
#include "proxy/smtp_parse.h"
#include "proxy/smtp_sent.h"
#include "proxy/worker.h"
#include "tokenstore/tok_conn.h"
#include "tokenstore/tok_store.h"
#include "upstream/up_smtp.h"

enum smtp_state {
	SMTP_S_CMD,		/* reading commands */
	SMTP_S_AUTH_PLAIN,	/* AUTH PLAIN: waiting for the response */
	SMTP_S_AUTH_USER,	/* AUTH LOGIN: waiting for the user name */
	SMTP_S_AUTH_PASS,	/* AUTH LOGIN: waiting for the password */
	SMTP_S_BUSY,		/* waiting for Redis or the upstream */
	SMTP_S_TLS,		/* STARTTLS: waiting for the handshake */
	SMTP_S_DATA,		/* streaming the message */
	SMTP_S_DATA_END,	/* waiting for the upstream's final reply */
};

/* The reply owed to the client once an upstream RSET is done. */
enum smtp_after {
	SMTP_AFTER_RSET,
	SMTP_AFTER_EHLO,
	SMTP_AFTER_HELO,
};

struct smtp {
	struct smtp_parse	*parse;
	enum smtp_state		 state;
	bool			 ehlo;		/* EHLO/HELO seen (since TLS) */
	bool			 authed;
	bool			 mail;		/* MAIL accepted upstream */
	bool			 smtputf8;	/* MAIL had SMTPUTF8 */
	int			 rcpts;		/* RCPTs accepted upstream */
	bool			 rcpt_tried;	/* any RCPT in this transaction */
	enum smtp_after		 after_rset;
	int			 auth_failures;
	int			 bad_commands;
	char			*login_user;	/* AUTH LOGIN step 1 */
	char			*pending_line;	/* command waiting for up */
	struct auth_req		*auth;
	struct tok_req		*slot_req;	/* connection slot */
	struct up_target	*target;
	struct up_target	*imap_target;	/* Sent copy; NULL: none */
	char			*sent_path;
	struct smtp_sent	*sent;		/* copy of the message */
	struct up_smtp		*up;
	bool			 up_ready;
	bool			 mail_reused;	/* MAIL sent on a kept upstream */
	bool			 revoked;	/* 421 owed after the reply */
	struct event		*delay;
	char			*delayed_reply;
	bool			 delayed_fatal;
	struct event		*cmd_timer;
	struct evbuffer		*chunk;		/* DATA scratch */
	bool			 data_over;
	unsigned long long	 msgs;
};

static char	smtp_hostname[256];

/* The MAIL/RCPT lines we relay are rebuilt (smtp_parse_mail_line) to fit
 * what up_smtp sends, whatever [smtp] line_max lets a client send us. */
_Static_assert(SMTP_PARSE_RELAY_MAX <= UP_SMTP_CMD_LINE_MAX,
    "relayed MAIL/RCPT lines must fit the upstream command line limit");

static void	smtp_process(struct sess *);
static void	smtp_up_rset(struct sess *, struct smtp *, enum smtp_after);
static void	smtp_up_done_cb(void *, enum up_fail, const char *);

static void
smtp_cmd_timer_arm(struct sess *s, struct smtp *sm)
{
	struct timeval tv;

	if (!sm->authed)
		return;		/* the login timer runs until then */
	tv.tv_sec = s->pcfg->command_timeout_ms / 1000;
	tv.tv_usec = (s->pcfg->command_timeout_ms % 1000) * 1000;
	evtimer_add(sm->cmd_timer, &tv);
}

/* Forgets the transaction (RFC 5321 4.1.1.5, 4.1.1.4). */
static void
smtp_tx_reset(struct smtp *sm)
{
	sm->mail = false;
	sm->rcpts = 0;
	sm->rcpt_tried = false;
}

static void
smtp_reply(struct sess *s, const char *line)
{
	sess_printf(s, "%s\r\n", line);
}

static void
smtp_close(struct sess *s, const char *line, const char *reason)
{
	smtp_reply(s, line);
	sess_close_after_flush(s, reason);
}

static void
smtp_bad(struct sess *s, struct smtp *sm, const char *line)
{
	smtp_reply(s, line);
	if (++sm->bad_commands >= s->pcfg->bad_commands_max)
		smtp_close(s, "421 4.7.0 Too many errors, closing connection",
		    "bad commands");
}

static void
smtp_cmd_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess *s = arg;

	(void)fd;
	(void)what;
	smtp_close(s, "421 4.4.2 Timeout waiting for a command, closing "
	    "connection", "command timeout");
}

static void
smtp_start(struct sess *s)
{
	struct smtp *sm = xcalloc(1, sizeof(*sm));

	if (smtp_hostname[0] == '\0' &&
	    gethostname(smtp_hostname, sizeof(smtp_hostname) - 1) == -1)
		strcpy(smtp_hostname, "localhost");
	sm->parse = smtp_parse_new(s->pcfg->line_max, 0);
	sm->cmd_timer = evtimer_new(s->w->base, smtp_cmd_timeout_cb, s);
	sm->chunk = evbuffer_new();
	s->proto = sm;
	sess_printf(s, "220 %s ESMTP Postern SMTP Proxy ready\r\n",
	    smtp_hostname);
}

static bool
smtp_need_tls(const struct sess *s)
{
	return !s->tls && !s->pcfg->allow_plaintext_auth;
}

static void
smtp_ehlo_reply(struct sess *s, struct smtp *sm, bool ehlo)
{
	if (!ehlo) {
		sess_printf(s, "250 %s\r\n", smtp_hostname);
		return;
	}
	sess_printf(s, "250-%s Hello %s\r\n", smtp_hostname, s->ip);
	sess_printf(s, "250-SIZE %zu\r\n", s->pcfg->message_max);
	sess_printf(s, "250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n");
	if (!s->tls && s->lcfg->tls == CFG_TLS_STARTTLS)
		sess_printf(s, "250-STARTTLS\r\n");
	if (!sm->authed && !smtp_need_tls(s))
		sess_printf(s, "250-AUTH PLAIN LOGIN\r\n");
	sess_printf(s, "250 ENHANCEDSTATUSCODES\r\n");
}

static void
cmd_ehlo(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	bool ehlo = strcmp(c->verb, "EHLO") == 0;

	if (c->args[0] == '\0') {
		smtp_bad(s, sm, ehlo ? "501 5.5.4 Syntax: EHLO hostname" :
		    "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	sm->ehlo = true;
	if (sm->mail) {
		/* RFC 5321 4.1.4: EHLO/HELO in a transaction resets it as
		 * RSET does, here and upstream, or the recipients given so
		 * far would get the next message. */
		smtp_tx_reset(sm);
		smtp_up_rset(s, sm, ehlo ? SMTP_AFTER_EHLO : SMTP_AFTER_HELO);
		return;
	}
	smtp_ehlo_reply(s, sm, ehlo);
}

static void
cmd_starttls(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	if (c->args[0] != '\0') {
		smtp_bad(s, sm, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls || s->lcfg->tls != CFG_TLS_STARTTLS) {
		smtp_bad(s, sm, s->tls ? "503 5.5.1 TLS already active" :
		    "502 5.5.1 STARTTLS not available on this port");
		return;
	}
	/* RFC 3207 4.2: the server must discard what it learnt before TLS,
	 * the login and the transaction included (and with them the
	 * account's slot and the upstream). Only reachable with
	 * allow_plaintext_auth; refuse rather than half-forget: TLS comes
	 * before AUTH or not at all. */
	if (sm->mail) {
		smtp_bad(s, sm, "503 5.5.1 Error: STARTTLS not allowed during "
		    "a mail transaction");
		return;
	}
	if (sm->authed) {
		smtp_bad(s, sm, "503 5.5.1 Error: STARTTLS not allowed after "
		    "AUTH");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learnt before TLS. sess_starttls
	 * drops what the client pipelined after STARTTLS (CVE-2011-0411);
	 * until the handshake is done no buffered command may run, or a
	 * pipelined one would be answered in clear before the switch. */
	sm->ehlo = false;
	sm->state = SMTP_S_TLS;
	smtp_parse_reset(sm->parse);
	sess_starttls(s);
}

/* Sends a reply after the failure delay (or at once), then goes on with
 * buffered input; with fatal, closes instead. */
static void
smtp_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;
	char		*line = sm->delayed_reply;

	(void)fd;
	(void)what;
	sm->delayed_reply = NULL;
	smtp_reply(s, line);
	free(line);
	if (sm->delayed_fatal) {
		smtp_close(s, "421 4.7.0 Too many failed authentications, "
		    "closing connection", "auth failures");
		return;
	}
	sm->state = SMTP_S_CMD;
	sess_read_enable(s, true);
	smtp_process(s);
}

static void
smtp_reply_later(struct sess *s, struct smtp *sm, bool failure,
    const char *line)
{
	struct timeval	tv;
	long long	ms = failure ? s->pcfg->failure_delay_ms : 0;

	free(sm->delayed_reply);
	sm->delayed_reply = xstrdup(line);
	sm->delayed_fatal = failure &&
	    ++sm->auth_failures >= s->pcfg->auth_failures_max;
	if (sm->delay == NULL)
		sm->delay = evtimer_new(s->w->base, smtp_delay_cb, s);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(sm->delay, &tv);
}

static void
smtp_slot_cb(void *arg, int rc)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	sm->slot_req = NULL;
	if (rc != 1) {
		sess_log(s, LOG_LVL_INFO, "event=login result=%s account=%s",
		    rc == 0 ? "limit" : "tempfail", s->account);
		up_target_free(&sm->target);
		up_target_free(&sm->imap_target);
		free(sm->sent_path);
		sm->sent_path = NULL;
		free(s->slot_name);
		s->slot_name = NULL;
		free(s->account);
		s->account = NULL;
		smtp_reply_later(s, sm, false, rc == 0 ?
		    "454 4.7.0 Too many connections for this account, try "
		    "again later" : auth_smtp_text(AUTH_TEMPFAIL));
		return;
	}
	s->slot_held = true;
	sm->authed = true;
	sess_logged_in(s);
	smtp_reply_later(s, sm, false, auth_smtp_text(AUTH_OK));
	smtp_cmd_timer_arm(s, sm);
}

static void
smtp_auth_cb(void *arg, struct auth_result *res)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	sm->auth = NULL;
	if (res->verdict != AUTH_OK) {
		char buf[200];

		/* The account name is the client's text here: sanitize it so
		 * a CRLF in it cannot forge log lines. */
		sess_log(s, res->verdict == AUTH_TEMPFAIL ? LOG_LVL_WARN :
		    LOG_LVL_INFO, "event=login result=%s account=\"%s\" "
		    "reason=\"%s\"", auth_verdict_name(res->verdict),
		    str_sanitize(res->account, 100, buf, sizeof(buf)),
		    res->reason);
		smtp_reply_later(s, sm, res->verdict != AUTH_TEMPFAIL,
		    auth_result_smtp_text(res));
		return;
	}
	sess_log(s, LOG_LVL_INFO, "event=login result=ok account=%s",
	    res->account);
	s->account = xstrdup(res->account);
	memcpy(s->token_id, res->token_id, sizeof(s->token_id));
	sm->target = res->target;
	res->target = NULL;
	if (s->pcfg->sent_copy) {
		sm->imap_target = res->imap_target;
		res->imap_target = NULL;
		sm->sent_path = res->sent_path;
		res->sent_path = NULL;
	}
	/* Per-account SMTP connection limit: slots of their own, apart
	 * from the IMAP ones (account ids never hold ':'). */
	s->slot_name = xasprintf("smtp:%s", s->account);
	sm->slot_req = tok_conn_acquire(s->w->tok, s->slot_name, s->idhex,
	    res->max_connections, smtp_slot_cb, s);
}

static void
smtp_login(struct sess *s, struct smtp *sm, const char *user,
    const char *pass)
{
	sm->state = SMTP_S_BUSY;
	sess_read_enable(s, false);
	sm->auth = auth_check(s->w->tok, AUTH_PROTO_SMTP, user, pass, s->ip,
	    s->w->cfg, smtp_auth_cb, s);
}

static void
smtp_auth_plain(struct sess *s, struct smtp *sm, const char *b64)
{
	char *user, *pass;

	if (auth_sasl_plain_decode(b64, strlen(b64), &user, &pass) == -1) {
		sm->state = SMTP_S_CMD;
		smtp_bad(s, sm, "501 5.5.2 Invalid SASL PLAIN response");
		return;
	}
	smtp_login(s, sm, user, pass);
	free(user);
	crypto_free_secret(&pass);
}

static void
cmd_auth(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	char		 mech[16], *ir;
	const char	*sp = strchr(c->args, ' ');
	size_t		 n = sp != NULL ? (size_t)(sp - c->args) : c->argslen;

	if (!sm->ehlo) {
		smtp_bad(s, sm, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (smtp_need_tls(s)) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (sm->authed) {
		smtp_bad(s, sm, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (n == 0 || n >= sizeof(mech)) {
		smtp_bad(s, sm, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, c->args, n);
	mech[n] = '\0';
	ir = sp != NULL ? (char *)sp + 1 : NULL;
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (ir != NULL)
			smtp_auth_plain(s, sm, ir);
		else {
			sm->state = SMTP_S_AUTH_PLAIN;
			smtp_reply(s, "334 ");
		}
		return;
	}
	if (strcasecmp(mech, "LOGIN") == 0) {
		if (ir != NULL) {
			if (auth_sasl_login_decode(ir, strlen(ir),
			    &sm->login_user) == -1) {
				smtp_bad(s, sm, "501 5.5.2 Invalid base64 data");
				return;
			}
			sm->state = SMTP_S_AUTH_PASS;
			smtp_reply(s, "334 UGFzc3dvcmQ6");	/* Password: */
			return;
		}
		sm->state = SMTP_S_AUTH_USER;
		smtp_reply(s, "334 VXNlcm5hbWU6");		/* Username: */
		return;
	}
	smtp_bad(s, sm, "504 5.5.4 Unrecognized authentication type");
}

static void
smtp_auth_line(struct sess *s, struct smtp *sm, const char *line)
{
	enum smtp_state	 st = sm->state;
	char		*v;

	sm->state = SMTP_S_CMD;
	if (strcmp(line, "*") == 0) {
		crypto_free_secret(&sm->login_user);
		smtp_bad(s, sm, "501 5.7.0 Authentication cancelled");
		return;
	}
	if (st == SMTP_S_AUTH_PLAIN) {
		smtp_auth_plain(s, sm, line);
		return;
	}
	if (auth_sasl_login_decode(line, strlen(line), &v) == -1) {
		crypto_free_secret(&sm->login_user);
		smtp_bad(s, sm, "501 5.5.2 Invalid base64 data");
		return;
	}
	if (st == SMTP_S_AUTH_USER) {
		sm->login_user = v;
		sm->state = SMTP_S_AUTH_PASS;
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		return;
	}
	smtp_login(s, sm, sm->login_user, v);
	crypto_free_secret(&v);
	crypto_free_secret(&sm->login_user);
}

/* The upstream's reply goes to the client as it came (code, enhanced
 * code, text); only the transaction bookkeeping looks at the code. */
static void
smtp_relay_reply(struct sess *s, const struct up_smtp_resp *r)
{
	sess_write(s, r->wire, r->wirelen);
}

static void
smtp_up_lost(struct sess *s, struct smtp *sm, const char *line,
    const char *why)
{
	sess_log(s, LOG_LVL_WARN, "event=upstream_fail account=%s "
	    "reason=\"%s\"", s->account, why != NULL ? why : "");
	up_smtp_free(&sm->up);
	sm->up_ready = false;
	smtp_tx_reset(sm);
	smtp_reply(s, line);
}

static void
smtp_revoke_now(struct sess *s)
{
	sess_printf(s, "421 4.7.0 Access token revoked\r\n");
	sess_close_after_flush(s, "token revoked");
}

/*
 * The session's token was revoked (proxy/worker.c). With a reply owed to
 * the client (a command at Redis or the upstream, the final "." in
 * flight) that reply goes first, so that a client never takes our 421 for
 * the answer to its message, which the upstream may have accepted, and
 * sends it again; smtp_resume then says 421 and closes.
 */
static void
smtp_revoked(struct sess *s)
{
	struct smtp *sm = s->proto;

	if (sm->state == SMTP_S_BUSY || sm->state == SMTP_S_DATA_END) {
		sm->revoked = true;
		sess_read_enable(s, false);
		return;
	}
	smtp_revoke_now(s);
}

static void
smtp_resume(struct sess *s, struct smtp *sm)
{
	if (sm->revoked) {	/* the reply owed went first: now the 421 */
		sm->state = SMTP_S_CMD;
		smtp_revoke_now(s);
		return;
	}
	sm->state = SMTP_S_CMD;
	sess_read_enable(s, true);
	smtp_cmd_timer_arm(s, sm);
	smtp_process(s);
}

static void
smtp_mail_reply_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	if (fail != UP_OK && sm->mail_reused) {
		/* The upstream kept from an earlier message went away while
		 * idle (its timeout, a restart): no transaction was open, so
		 * log in again, once, and send this MAIL there. */
		sm->mail_reused = false;
		sess_log(s, LOG_LVL_INFO, "event=upstream_reconnect account=%s "
		    "reason=\"%s\"", s->account, why);
		up_smtp_free(&sm->up);
		sm->up_ready = false;
		sm->up = up_smtp_new(&s->w->up, sm->target, NULL,
		    s->pcfg->command_timeout_ms, smtp_up_done_cb, s);
		return;
	}
	sm->mail_reused = false;
	free(sm->pending_line);
	sm->pending_line = NULL;
	if (fail != UP_OK)
		smtp_up_lost(s, sm, "451 4.4.2 Upstream connection lost, "
		    "try again later", why);
	else {
		sm->mail = r->code / 100 == 2;
		smtp_relay_reply(s, r);
	}
	smtp_resume(s, sm);
}

static void
smtp_up_done_cb(void *arg, enum up_fail fail, const char *why)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;
	char		 line[512];

	if (fail != UP_OK) {
		sess_log(s, fail == UP_FAIL_AUTH ? LOG_LVL_INFO : LOG_LVL_WARN,
		    "event=upstream_login result=fail class=%s account=%s "
		    "upstream=%s:%d reason=\"%s\"", up_fail_name(fail),
		    s->account, sm->target->host, sm->target->port, why);
		tok_account_set_state(s->w->tok, s->account,
		    fail == UP_FAIL_AUTH ? "authenticationError" :
		    "connectError", why);
		/* why lives in sm->up: use it before freeing that. */
		snprintf(line, sizeof(line), "454 4.7.0 %s: %s",
		    fail == UP_FAIL_AUTH ? "Upstream server rejected the login"
		    : "Upstream server unavailable", why);
		up_smtp_free(&sm->up);
		free(sm->pending_line);
		sm->pending_line = NULL;
		smtp_reply(s, line);
		smtp_resume(s, sm);
		return;
	}
	sess_log(s, LOG_LVL_INFO, "event=upstream_login result=ok account=%s "
	    "upstream=%s mech=%s", s->account, up_smtp_peer(sm->up),
	    up_smtp_mech(sm->up));
	sm->up_ready = true;
	if (up_smtp_cmd(sm->up, sm->pending_line, smtp_mail_reply_cb, s) == -1) {
		free(sm->pending_line);
		sm->pending_line = NULL;
		smtp_up_lost(s, sm, "451 4.3.0 Internal error", "cmd refused");
		smtp_resume(s, sm);
	}
}

static void
cmd_mail(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	struct smtp_parse_mail	 m;
	char			 err[256], line[SMTP_PARSE_RELAY_MAX];

	if (!sm->ehlo) {
		smtp_bad(s, sm, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (!sm->authed) {
		smtp_reply(s, smtp_need_tls(s) ?
		    "530 5.7.0 Must issue a STARTTLS command first" :
		    "530 5.7.0 Authentication required");
		return;
	}
	if (sm->mail) {
		smtp_bad(s, sm, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtp_parse_mail_from(c->args, &m, err, sizeof(err)) == -1) {
		smtp_bad(s, sm, err);
		return;
	}
	if (m.has_size && m.size > s->pcfg->message_max) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size");
		return;
	}
	/* Rebuilt, not the client's text: it fits the upstream's line
	 * limit, and AUTH= is left out (smtp_parse.h). */
	if (smtp_parse_mail_line(&m, line, sizeof(line)) == -1) {
		smtp_reply(s, "500 5.5.2 Line too long");
		return;
	}
	sm->smtputf8 = m.smtputf8;
	sm->state = SMTP_S_BUSY;
	sess_read_enable(s, false);
	/* Kept until the MAIL's reply: a reconnect sends it again. */
	sm->pending_line = xstrdup(line);
	if (sm->up == NULL) {
		/* First transaction (or the upstream went away): log in
		 * upstream now, then send this MAIL. */
		sm->up = up_smtp_new(&s->w->up, sm->target, NULL,
		    s->pcfg->command_timeout_ms, smtp_up_done_cb, s);
		return;
	}
	sm->mail_reused = true;
	if (up_smtp_cmd(sm->up, sm->pending_line, smtp_mail_reply_cb, s) == -1) {
		sm->mail_reused = false;
		free(sm->pending_line);
		sm->pending_line = NULL;
		smtp_up_lost(s, sm, "451 4.3.0 Internal error", "cmd refused");
		smtp_resume(s, sm);
	}
}

static void
smtp_rcpt_reply_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	if (fail != UP_OK)
		smtp_up_lost(s, sm, "451 4.4.2 Upstream connection lost, "
		    "try again later", why);
	else {
		if (r->code / 100 == 2)
			sm->rcpts++;
		smtp_relay_reply(s, r);
	}
	smtp_resume(s, sm);
}

static void
cmd_rcpt(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	struct smtp_parse_rcpt	 r;
	char			 err[256], line[SMTP_PARSE_RELAY_MAX];

	if (!sm->mail) {
		smtp_bad(s, sm, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (smtp_parse_rcpt_to(c->args, sm->smtputf8, &r, err, sizeof(err)) == -1) {
		smtp_bad(s, sm, err);
		return;
	}
	/* Rebuilt as MAIL's is (cmd_mail). */
	if (smtp_parse_rcpt_line(&r, line, sizeof(line)) == -1) {
		smtp_reply(s, "500 5.5.2 Line too long");
		return;
	}
	sm->rcpt_tried = true;
	sm->state = SMTP_S_BUSY;
	sess_read_enable(s, false);
	if (up_smtp_cmd(sm->up, line, smtp_rcpt_reply_cb, s) == -1) {
		smtp_up_lost(s, sm, "451 4.3.0 Internal error", "cmd refused");
		smtp_resume(s, sm);
	}
}

static void	smtp_data_feed(struct sess *, struct smtp *);

static void
smtp_drain_cb(void *arg)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	if (sm->state == SMTP_S_DATA) {
		sess_read_enable(s, true);
		smtp_data_feed(s, sm);
	}
}

static void
smtp_end_reply_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	smtp_tx_reset(sm);
	if (fail != UP_OK) {
		/* Never confirmed upstream: the message is not sent. */
		smtp_up_lost(s, sm, "451 4.4.2 Upstream connection lost during "
		    "DATA, message not sent", why);
	} else {
		sess_log(s, LOG_LVL_INFO, "event=message result=%s "
		    "account=%s size=%llu code=%d", r->code / 100 == 2 ?
		    "sent" : "refused", s->account,
		    (unsigned long long)smtp_parse_data_size(sm->parse),
		    r->code);
		if (r->code / 100 == 2) {
			sm->msgs++;
			smtp_sent_commit(&sm->sent);
		}
		smtp_relay_reply(s, r);
	}
	smtp_sent_free(&sm->sent);
	smtp_resume(s, sm);
}

/* Moves message bytes from the client to the upstream as they come. */

/* A message that must never be completed upstream (over the size limit,
 * or with a bare CR or LF): its upstream connection is dropped mid-DATA,
 * so the upstream discards it; the next MAIL opens a new one. */
static void
smtp_data_abandon(struct sess *s, struct smtp *sm, const char *result)
{
	sess_log(s, LOG_LVL_INFO, "event=message result=%s account=%s",
	    result, s->account);
	up_smtp_free(&sm->up);
	smtp_sent_free(&sm->sent);
	sm->up_ready = false;
	smtp_tx_reset(sm);
}
static void
smtp_data_feed(struct sess *s, struct smtp *sm)
{
	struct evbuffer			*in = bufferevent_get_input(s->bev);
	enum smtp_parse_data_rc		 rc;

	rc = smtp_parse_data(sm->parse, in, sm->chunk);
	smtp_cmd_timer_arm(s, sm);	/* data flowing: not idle */
	if (smtp_parse_data_is_over(sm->parse))
		evbuffer_drain(sm->chunk, evbuffer_get_length(sm->chunk));
	else if (evbuffer_get_length(sm->chunk) > 0) {
		smtp_sent_write(sm->sent, sm->chunk);
		up_smtp_data_write(sm->up, sm->chunk);
	}
	if (rc == SMTP_PARSE_DATA_AGAIN) {
		if (up_smtp_data_pending(sm->up) > UP_SMTP_DATA_HIGH)
			sess_read_enable(s, false);	/* drain cb resumes */
		return;
	}
	if (rc == SMTP_PARSE_DATA_BARE) {
		/* RFC 5321 2.3.8; as Postfix's smtpd_forbid_bare_newline:
		 * with line ends in doubt there is no safe place to resume
		 * reading commands: answer and close. */
		smtp_data_abandon(s, sm, "bare_newline");
		sm->state = SMTP_S_CMD;	/* logged: smtp_free must not */
		smtp_reply(s, "521 5.5.2 Bare CR or LF in message data (RFC "
		    "5321 section 2.3.8); closing connection");
		sess_close_after_flush(s, "bare CR or LF in DATA");
		return;
	}
	if (rc == SMTP_PARSE_DATA_TOOBIG) {
		smtp_data_abandon(s, sm, "too_big");
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size");
		smtp_resume(s, sm);
		return;
	}
	sm->state = SMTP_S_DATA_END;
	evtimer_del(sm->cmd_timer);
	sess_read_enable(s, false);
	up_smtp_set_drain_cb(sm->up, NULL, NULL);
	if (up_smtp_data_end(sm->up, smtp_end_reply_cb, s) == -1) {
		smtp_up_lost(s, sm, "451 4.3.0 Internal error", "data_end");
		smtp_resume(s, sm);
	}
}

static void
smtp_data_reply_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;

	if (fail != UP_OK) {
		smtp_up_lost(s, sm, "451 4.4.2 Upstream connection lost, "
		    "try again later", why);
		smtp_resume(s, sm);
		return;
	}
	smtp_relay_reply(s, r);
	if (r->code != 354) {
		smtp_resume(s, sm);
		return;
	}
	sm->state = SMTP_S_DATA;
	smtp_sent_free(&sm->sent);
	sm->sent = smtp_sent_new(s->w, s->account, sm->imap_target,
	    sm->sent_path, s->idhex);
	smtp_parse_data_begin(sm->parse, s->pcfg->message_max);
	up_smtp_set_drain_cb(sm->up, smtp_drain_cb, s);
	sess_read_enable(s, true);
	evtimer_del(sm->cmd_timer);
	smtp_cmd_timer_arm(s, sm);
	smtp_data_feed(s, sm);
}

static void
cmd_data(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	if (c->args[0] != '\0') {
		smtp_bad(s, sm, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!sm->mail) {
		smtp_bad(s, sm, "503 5.5.1 Error: need MAIL command");
		return;
	}
	/* RFC 5321 3.3: no RCPT yet is a bad sequence (503); RCPTs that
	 * were all refused are "no valid recipients" (554), as Postfix. */
	if (!sm->rcpt_tried) {
		smtp_bad(s, sm, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (sm->rcpts == 0) {
		smtp_bad(s, sm, "554 5.5.1 Error: no valid recipients");
		return;
	}
	sm->state = SMTP_S_BUSY;
	sess_read_enable(s, false);
	if (up_smtp_data_begin(sm->up, smtp_data_reply_cb, s) == -1) {
		smtp_up_lost(s, sm, "451 4.3.0 Internal error", "data_begin");
		smtp_resume(s, sm);
	}
}

static void
smtp_after_rset(struct sess *s, struct smtp *sm)
{
	if (sm->after_rset == SMTP_AFTER_RSET)
		smtp_reply(s, "250 2.0.0 Ok");
	else
		smtp_ehlo_reply(s, sm, sm->after_rset == SMTP_AFTER_EHLO);
}

static void
smtp_rset_reply_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct sess	*s = arg;
	struct smtp	*sm = s->proto;
	char		 tmp[256], buf[200];

	if (fail != UP_OK || r->code / 100 != 2) {
		/* The client gets 250: no transaction may be left anywhere.
		 * An upstream that did not confirm its RSET may still hold
		 * one, with its recipients, so drop that connection: closing
		 * aborts an open transaction (RFC 5321 3.8, 4.1.1.10), and
		 * the next MAIL logs in on a new one. */
		if (fail == UP_OK) {
			snprintf(tmp, sizeof(tmp), "RSET refused: %d%s%s %s",
			    r->code, r->ecode[0] != '\0' ? " " : "", r->ecode,
			    r->text);
			why = str_sanitize(tmp, 160, buf, sizeof(buf));
		}
		sess_log(s, fail == UP_OK ? LOG_LVL_WARN : LOG_LVL_DEBUG,
		    "event=upstream_rset_fail account=%s reason=\"%s\"",
		    s->account, why);
		up_smtp_free(&sm->up);
		sm->up_ready = false;
	}
	smtp_after_rset(s, sm);
	smtp_resume(s, sm);
}

/* Resets the upstream transaction too, then replies (after_rset). */
static void
smtp_up_rset(struct sess *s, struct smtp *sm, enum smtp_after after)
{
	sm->after_rset = after;
	if (sm->up != NULL && sm->up_ready) {
		sm->state = SMTP_S_BUSY;
		sess_read_enable(s, false);
		if (up_smtp_cmd(sm->up, "RSET", smtp_rset_reply_cb, s) == 0)
			return;
		up_smtp_free(&sm->up);
		sm->up_ready = false;
		sm->state = SMTP_S_CMD;
		sess_read_enable(s, true);
	}
	smtp_after_rset(s, sm);
}

static void
cmd_rset(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	(void)c;
	smtp_tx_reset(sm);
	smtp_up_rset(s, sm, SMTP_AFTER_RSET);
}

static void
cmd_noop(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	(void)sm;
	(void)c;
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	(void)sm;
	(void)c;
	smtp_close(s, "221 2.0.0 Bye", "quit");
}

static void
cmd_vrfy(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	(void)sm;
	(void)c;
	smtp_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static void
cmd_help(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	(void)sm;
	(void)c;
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT "
	    "DATA RSET NOOP QUIT VRFY HELP");
}

static const struct {
	const char	*verb;
	void		 (*fn)(struct sess *, struct smtp *,
			    const struct smtp_cmd *);
} smtp_cmds[] = {
	{ "EHLO", cmd_ehlo },
	{ "HELO", cmd_ehlo },
	{ "STARTTLS", cmd_starttls },
	{ "AUTH", cmd_auth },
	{ "MAIL", cmd_mail },
	{ "RCPT", cmd_rcpt },
	{ "DATA", cmd_data },
	{ "RSET", cmd_rset },
	{ "NOOP", cmd_noop },
	{ "QUIT", cmd_quit },
	{ "VRFY", cmd_vrfy },
	{ "HELP", cmd_help },
};

static void
smtp_dispatch(struct sess *s, struct smtp *sm, const struct smtp_cmd *c)
{
	evtimer_del(sm->cmd_timer);
	for (size_t i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]); i++)
		if (strcmp(c->verb, smtp_cmds[i].verb) == 0) {
			smtp_cmds[i].fn(s, sm, c);
			if (sm->state == SMTP_S_CMD)
				smtp_cmd_timer_arm(s, sm);
			return;
		}
	smtp_bad(s, sm, "500 5.5.2 Error: command not recognized");
}

static void
smtp_process(struct sess *s)
{
	struct smtp	*sm = s->proto;
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	const char	*line;

	/* Not after a close became pending (a revoked token's 421, QUIT):
	 * commands already buffered behind it are not served. */
	while (!sess_close_pending(s) && sm->delayed_reply == NULL) {
		switch (sm->state) {
		case SMTP_S_DATA:
			smtp_data_feed(s, sm);
			return;
		case SMTP_S_BUSY:
		case SMTP_S_TLS:
		case SMTP_S_DATA_END:
			return;
		case SMTP_S_AUTH_PLAIN:
		case SMTP_S_AUTH_USER:
		case SMTP_S_AUTH_PASS:
			switch (smtp_parse_line(sm->parse, in, &line)) {
			case SMTP_PARSE_AGAIN:
				return;
			case SMTP_PARSE_COMMAND:
				smtp_auth_line(s, sm, line);
				break;
			default:
				sm->state = SMTP_S_CMD;
				crypto_free_secret(&sm->login_user);
				smtp_bad(s, sm, smtp_parse_error(sm->parse));
				break;
			}
			break;
		case SMTP_S_CMD:
			switch (smtp_parse_feed(sm->parse, in)) {
			case SMTP_PARSE_AGAIN:
				return;
			case SMTP_PARSE_COMMAND:
				smtp_dispatch(s, sm, smtp_parse_cmd(sm->parse));
				break;
			case SMTP_PARSE_BAD:
			case SMTP_PARSE_TOOLONG:
				smtp_bad(s, sm, smtp_parse_error(sm->parse));
				break;
			}
			break;
		}
	}
}

static void
smtp_read(struct sess *s)
{
	smtp_process(s);
}

static void
smtp_tls_done(struct sess *s)
{
	struct smtp *sm = s->proto;

	/* Implicit TLS, or the end of the STARTTLS handshake. */
	if (sm->state != SMTP_S_TLS)
		return;
	sm->state = SMTP_S_CMD;
	smtp_process(s);
}

static void
smtp_login_timeout(struct sess *s)
{
	smtp_close(s, "421 4.4.2 Login timeout, closing connection",
	    "login timeout");
}

static void
smtp_shutdown(struct sess *s)
{
	struct smtp *sm = s->proto;

	/* A message in flight finishes; otherwise say goodbye now. */
	if (sm->state == SMTP_S_DATA || sm->state == SMTP_S_DATA_END ||
	    sm->state == SMTP_S_BUSY)
		return;
	smtp_close(s, "421 4.3.2 Server shutting down", "shutdown");
}

static void
smtp_free(struct sess *s)
{
	struct smtp *sm = s->proto;

	if (sm == NULL)
		return;
	if (sm->state == SMTP_S_DATA)
		sess_log(s, LOG_LVL_INFO, "event=message result=aborted "
		    "account=%s reason=\"client gone during DATA\"",
		    s->account);
	else if (sm->state == SMTP_S_DATA_END)
		/* The terminator went out: the QUIT that up_smtp_free sends
		 * after it lets the upstream accept the message, and we
		 * never learn whether it did. */
		sess_log(s, LOG_LVL_INFO, "event=message result=unknown "
		    "account=%s size=%llu reason=\"session closed before "
		    "the upstream's reply to the end of DATA\"", s->account,
		    (unsigned long long)smtp_parse_data_size(sm->parse));
	auth_cancel(sm->auth);
	tok_req_cancel(sm->slot_req);
	/* Freed without the terminator: the upstream drops a half-sent
	 * message (RFC 5321 4.1.1.4). */
	up_smtp_free(&sm->up);
	smtp_sent_free(&sm->sent);
	up_target_free(&sm->target);
	up_target_free(&sm->imap_target);
	free(sm->sent_path);
	if (sm->delay != NULL)
		event_free(sm->delay);
	event_free(sm->cmd_timer);
	evbuffer_free(sm->chunk);
	free(sm->delayed_reply);
	free(sm->pending_line);
	crypto_free_secret(&sm->login_user);
	smtp_parse_free(&sm->parse);
	free(sm);
	s->proto = NULL;
}

const struct sess_ops smtp_ops = {
	.name = "smtp",
	.start = smtp_start,
	.read = smtp_read,
	.tls_done = smtp_tls_done,
	.login_timeout = smtp_login_timeout,
	.shutdown = smtp_shutdown,
	.revoked = smtp_revoked,
	.free = smtp_free,
};
