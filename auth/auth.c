/*
 * Login check: token -> account -> settings -> upstream target, each step a
 * Redis round trip through tokenstore. The order of the checks follows
 * EmailEngine's so that clients get the same answer for the same mistake.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth/auth.h"
#include "auth/auth_oauth.h"
#include "auth/token.h"
#include "common/cfg.h"
#include "common/cidr.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok_store.h"

struct auth_req {
	struct tok		*tok;
	enum auth_proto		 proto;
	char			*account;
	char			*client_ip;
	const struct cfg	*cfg;
	auth_cb			*cb;
	void			*arg;
	struct tok_req		*pending;
	struct auth_result	 res;
	bool			 ignore_cert;
	struct event		*ev;		/* deferred early verdict */
	struct auth_oauth_req	*oauth;		/* OAuth2 account: its token */
	cJSON			*acct;		/* ... and its record */
};

static const struct {
	const char *name, *imap, *smtp;
} auth_texts[] = {
	[AUTH_OK] = { "ok", "OK", "235 2.7.0 Authentication successful" },
	[AUTH_BAD_TOKEN] = { "bad_token",
	    "NO [AUTHENTICATIONFAILED] Access denied, failed to authenticate user",
	    "535 5.7.8 Authentication credentials invalid" },
	[AUTH_BAD_USER] = { "bad_user",
	    "NO [AUTHENTICATIONFAILED] Access denied, invalid username",
	    "535 5.7.8 Authentication credentials invalid" },
	[AUTH_BAD_SCOPE] = { "bad_scope",
	    "NO [AUTHENTICATIONFAILED] Access denied, invalid scope",
	    "535 5.7.8 Authentication credentials invalid" },
	[AUTH_BAD_IP] = { "bad_ip",
	    "NO [AUTHENTICATIONFAILED] Access denied, traffic not accepted from this IP",
	    "550 5.7.1 Access denied, traffic not accepted from this IP" },
	[AUTH_NO_ACCOUNT] = { "no_account",
	    "NO [AUTHENTICATIONFAILED] Failed to authenticate user",
	    "535 5.7.8 Authentication credentials invalid" },
	[AUTH_TEMPFAIL] = { "tempfail",
	    "NO [UNAVAILABLE] Temporary authentication failure, try again later",
	    "454 4.7.0 Temporary authentication failure" },
};

const char *
auth_result_imap_text(const struct auth_result *res)
{
	return res->imap_text != NULL ? res->imap_text :
	    auth_texts[res->verdict].imap;
}

const char *
auth_result_smtp_text(const struct auth_result *res)
{
	return res->smtp_text != NULL ? res->smtp_text :
	    auth_texts[res->verdict].smtp;
}

const char *
auth_imap_text(enum auth_verdict v)
{
	return auth_texts[v].imap;
}

const char *
auth_smtp_text(enum auth_verdict v)
{
	return auth_texts[v].smtp;
}

const char *
auth_verdict_name(enum auth_verdict v)
{
	return auth_texts[v].name;
}

static void
auth_req_free(struct auth_req *ar)
{
	tok_req_cancel(ar->pending);
	auth_oauth_cancel(ar->oauth);
	cJSON_Delete(ar->acct);
	if (ar->ev != NULL)
		event_free(ar->ev);
	up_target_free(&ar->res.target);
	up_target_free(&ar->res.imap_target);
	free(ar->res.sent_path);
	free(ar->account);
	free(ar->client_ip);
	free(ar);
}

static void
auth_finish(struct auth_req *ar, enum auth_verdict v, const char *reason)
{
	ar->pending = NULL;
	ar->res.verdict = v;
	ar->res.reason = reason;
	ar->res.account = ar->account;
	ar->cb(ar->arg, &ar->res);
	auth_req_free(ar);
}

static void
auth_early_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_req *ar = arg;

	(void)fd;
	(void)what;
	auth_finish(ar, ar->res.verdict, ar->res.reason);
}

static bool
json_bool(const cJSON *o, const char *name, bool dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	return dflt;
}

static const char *
json_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

struct up_target *
auth_target_from_account(const cJSON *acct, const char *section,
    bool ignore_cert, const struct cfg *cfg, const char **why_r,
    bool *tempfail_r)
{
	const cJSON		*s, *auth, *tls, *port;
	const char		*host, *user, *pass, *id, *starttls;
	struct up_target	*t;
	char			 aad[512];

	*tempfail_r = false;
	id = json_str(acct, "account");
	s = cJSON_GetObjectItemCaseSensitive(acct, section);
	if (id == NULL || !cJSON_IsObject(s)) {
		*why_r = "account has no settings for this protocol";
		return NULL;
	}
	host = json_str(s, "host");
	port = cJSON_GetObjectItemCaseSensitive(s, "port");
	if (host == NULL || !cJSON_IsNumber(port)) {
		*why_r = "account settings lack host or port";
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->host = xstrdup(host);
	t->port = port->valueint;
	starttls = json_str(s, "starttls");
	if (json_bool(s, "secure", false))
		t->tls = UP_TLS_IMPLICIT;
	else if (starttls != NULL && strcmp(starttls, "never") == 0)
		t->tls = UP_TLS_NONE;
	else
		t->tls = UP_TLS_STARTTLS;
	tls = cJSON_GetObjectItemCaseSensitive(s, "tls");
	t->verify = !ignore_cert && json_bool(tls, "rejectUnauthorized", true);
	t->connect_timeout_ms = cfg->up_connect_timeout_ms;
	t->login_timeout_ms = cfg->up_login_timeout_ms;
	t->cred = UP_CRED_PASSWORD;
	auth = cJSON_GetObjectItemCaseSensitive(s, "auth");
	user = json_str(auth, "user");
	pass = json_str(auth, "pass");
	if (user == NULL || pass == NULL) {
		*why_r = "account has no credentials for this protocol";
		up_target_free(&t);
		return NULL;
	}
	t->user = xstrdup(user);
	snprintf(aad, sizeof(aad), "%s\n%s.auth.pass", id, section);
	if (crypto_open(pass, aad, &t->secret, NULL) == -1) {
		/* Our configuration, not the client's mistake: a
		 * temporary failure, never "no such account". */
		*why_r = "stored password does not decrypt (wrong secret?)";
		*tempfail_r = true;
		up_target_free(&t);
		return NULL;
	}
	return t;
}

static void	auth_account_cb(void *, int, const cJSON *);

static void
auth_settings_cb(void *arg, int rc, const cJSON *settings)
{
	struct auth_req *ar = arg;

	ar->pending = NULL;
	/* Settings unreadable: fail closed rather than guess cert policy. */
	if (rc < 0) {
		auth_finish(ar, AUTH_TEMPFAIL, "redis: settings");
		return;
	}
	ar->ignore_cert = rc > 0 &&
	    json_bool(settings, "ignoreMailCertErrors", false);
	ar->pending = tok_account_get(ar->tok, ar->account, auth_account_cb,
	    ar);
}

/* OAuth2 account: the token manager answered; the targets come from the
 * account's imap/smtp objects or the provider's preset. */
static void
auth_oauth_done_cb(void *arg, enum auth_oauth_fail fail,
    const struct auth_oauth_token *tk, const char *why)
{
	struct auth_req	*ar = arg;
	const char	*section = ar->proto == AUTH_PROTO_IMAP ? "imap" : "smtp";
	const cJSON	*s, *mc, *sp, *cs;

	ar->oauth = NULL;
	if (fail != AUTH_OAUTH_OK) {
		/* Not the client's mistake: a temporary failure with its own
		 * text (docs/API.md). */
		ar->res.imap_text = auth_oauth_imap_text(fail);
		ar->res.smtp_text = auth_oauth_smtp_text(fail);
		auth_finish(ar, AUTH_TEMPFAIL, why);
		return;
	}
	ar->res.target = auth_oauth_target(ar->acct, section, tk,
	    ar->ignore_cert, ar->cfg, &why);
	if (ar->res.target == NULL) {
		auth_finish(ar, AUTH_NO_ACCOUNT, why);
		return;
	}
	ar->res.max_connections = ar->proto == AUTH_PROTO_IMAP ?
	    ar->cfg->imap.max_connections : ar->cfg->smtp.max_connections;
	s = cJSON_GetObjectItemCaseSensitive(ar->acct, section);
	mc = cJSON_GetObjectItemCaseSensitive(s, "maxConnections");
	if (cJSON_IsNumber(mc) && mc->valueint > 0)
		ar->res.max_connections = mc->valueint;
	if (ar->proto == AUTH_PROTO_SMTP) {
		s = cJSON_GetObjectItemCaseSensitive(ar->acct, "imap");
		sp = cJSON_GetObjectItemCaseSensitive(s, "sentMailPath");
		cs = cJSON_GetObjectItemCaseSensitive(ar->acct, "copySent");
		if (cJSON_IsString(sp))
			ar->res.sent_path = xstrdup(sp->valuestring);
		if (!cJSON_IsFalse(cs))
			ar->res.imap_target = auth_oauth_target(ar->acct, "imap",
			    tk, ar->ignore_cert, ar->cfg, &why);
	}
	auth_finish(ar, AUTH_OK, "ok");
}

static void
auth_account_cb(void *arg, int rc, const cJSON *acct)
{
	struct auth_req	*ar = arg;
	const char	*why = NULL;
	const char	*section = ar->proto == AUTH_PROTO_IMAP ? "imap" : "smtp";
	const cJSON	*s, *mc;
	bool		 temp;

	ar->pending = NULL;
	if (rc < 0) {
		auth_finish(ar, AUTH_TEMPFAIL, "redis: account");
		return;
	}
	if (rc == 0) {
		auth_finish(ar, AUTH_NO_ACCOUNT, "account not found");
		return;
	}
	if (auth_oauth_is_account(acct)) {
		if (!auth_oauth_is_running()) {
			auth_finish(ar, AUTH_TEMPFAIL, "no OAuth2 token manager "
			    "in this process");
			return;
		}
		ar->acct = cJSON_Duplicate(acct, true);
		ar->oauth = auth_oauth_get(ar->account, acct, NULL,
		    auth_oauth_done_cb, ar);
		return;
	}
	ar->res.target = auth_target_from_account(acct, section,
	    ar->ignore_cert, ar->cfg, &why, &temp);
	if (ar->res.target == NULL) {
		auth_finish(ar, temp ? AUTH_TEMPFAIL : AUTH_NO_ACCOUNT, why);
		return;
	}
	ar->res.max_connections = ar->proto == AUTH_PROTO_IMAP ?
	    ar->cfg->imap.max_connections : ar->cfg->smtp.max_connections;
	s = cJSON_GetObjectItemCaseSensitive(acct, section);
	mc = cJSON_GetObjectItemCaseSensitive(s, "maxConnections");
	if (cJSON_IsNumber(mc) && mc->valueint > 0)
		ar->res.max_connections = mc->valueint;
	if (ar->proto == AUTH_PROTO_SMTP) {
		const cJSON *imap = cJSON_GetObjectItemCaseSensitive(acct,
		    "imap");
		const cJSON *sp = cJSON_GetObjectItemCaseSensitive(imap,
		    "sentMailPath");

		const cJSON *cs = cJSON_GetObjectItemCaseSensitive(acct,
		    "copySent");

		if (cJSON_IsString(sp))
			ar->res.sent_path = xstrdup(sp->valuestring);
		if (!cJSON_IsFalse(cs))
			ar->res.imap_target = auth_target_from_account(acct,
			    "imap", ar->ignore_cert, ar->cfg, &why, &temp);
	}
	auth_finish(ar, AUTH_OK, "ok");
}

static void
auth_token_cb(void *arg, int rc, const struct tok_token *t)
{
	struct auth_req	*ar = arg;
	unsigned	 need;
	bool		 ok;

	ar->pending = NULL;
	if (rc < 0) {
		auth_finish(ar, AUTH_TEMPFAIL, "redis: token");
		return;
	}
	if (rc == 0) {
		auth_finish(ar, AUTH_BAD_TOKEN, "unknown token");
		return;
	}
	if (t->expires_ms != 0 && t->expires_ms <= str_now_ms()) {
		auth_finish(ar, AUTH_BAD_TOKEN, "expired token");
		return;
	}
	if (strcmp(t->account, ar->account) != 0) {
		auth_finish(ar, AUTH_BAD_USER, "token of another account");
		return;
	}
	need = ar->proto == AUTH_PROTO_IMAP ? TOK_SCOPE_IMAP : TOK_SCOPE_SMTP;
	if ((t->scopes & (need | TOK_SCOPE_ALL)) == 0) {
		auth_finish(ar, AUTH_BAD_SCOPE, "scope missing");
		return;
	}
	if (t->naddrs > 0) {
		ok = false;
		for (int i = 0; i < t->naddrs && !ok; i++)
			ok = cidr_match_str(&t->addrs[i], ar->client_ip);
		if (!ok) {
			auth_finish(ar, AUTH_BAD_IP, "address not allowed");
			return;
		}
	}
	tok_token_touch(ar->tok, ar->res.token_id, ar->client_ip);
	ar->pending = tok_settings_get(ar->tok, auth_settings_cb, ar);
}

struct auth_req *
auth_check(struct tok *tok, enum auth_proto proto, const char *account,
    const char *token, const char *client_ip, const struct cfg *cfg,
    auth_cb *cb, void *arg)
{
	struct auth_req *ar = xcalloc(1, sizeof(*ar));

	ar->tok = tok;
	ar->proto = proto;
	ar->account = xstrdup(account);
	ar->client_ip = xstrdup(client_ip);
	ar->cfg = cfg;
	ar->cb = cb;
	ar->arg = arg;
	if (token_id(token, ar->res.token_id) == -1) {
		struct timeval tv = { 0, 0 };

		/* Malformed: no Redis trip, but still answer asynchronously
		 * so callers have a single code path. */
		ar->res.verdict = AUTH_BAD_TOKEN;
		ar->res.reason = "malformed token";
		ar->ev = evtimer_new(tok_base(tok), auth_early_cb, ar);
		evtimer_add(ar->ev, &tv);
		return ar;
	}
	ar->pending = tok_token_get(tok, ar->res.token_id, auth_token_cb, ar);
	return ar;
}

void
auth_cancel(struct auth_req *ar)
{
	if (ar == NULL)
		return;
	auth_req_free(ar);
}
