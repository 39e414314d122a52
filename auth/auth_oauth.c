/*
 * The OAuth2 token manager (auth_oauth.h). A "flight" is the work for one
 * account in this process: read the cache, maybe take the Redis lock and
 * refresh over HTTP, then answer every request that joined it. Requests for
 * the same account (and the same stale token) join the flight in progress,
 * so 50 logins at once make one refresh; other processes and hosts see the
 * lock and poll the cache until the holder has stored the new token.
 *
 * libcurl is driven by this process's libevent loop (CURLMOPT_SOCKETFUNCTION
 * and TIMERFUNCTION + curl_multi_socket_action, as in curl's hiperfifo
 * example); no call here blocks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth_oauth.h"
#include "common/cfg.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_keys.h"
#include "tokenstore/tok_oauth.h"
#include "tokenstore/tok_store.h"

#define OAUTH_RESP_MAX		(64 * 1024)	/* token endpoint answer */
#define OAUTH_POLL_MS		100		/* waiting for another holder */
#define OAUTH_LOCK_SLACK_MS	5000		/* lock TTL past the timeout */
#define OAUTH_EXPIRES_DEFAULT_S	3600		/* no expires_in given */
#define OAUTH_EXPIRES_MAX_S	(366LL * 86400)
#define OAUTH_USER_AGENT	"postern/" "0.1"

static const struct auth_oauth_preset presets[] = {
	/* Google: https://developers.google.com/gmail/imap/xoauth2-protocol */
	{ "gmail", "imap.gmail.com", 993, UP_TLS_IMPLICIT,
	  "smtp.gmail.com", 465, UP_TLS_IMPLICIT, "XOAUTH2",
	  "https://mail.google.com/" },
	/* Microsoft identity platform v2.0, Exchange Online IMAP/SMTP. */
	{ "outlook", "outlook.office365.com", 993, UP_TLS_IMPLICIT,
	  "smtp.office365.com", 587, UP_TLS_STARTTLS, "XOAUTH2",
	  "https://outlook.office.com/IMAP.AccessAsUser.All "
	  "https://outlook.office.com/SMTP.Send offline_access" },
	{ "custom", NULL, 0, UP_TLS_IMPLICIT, NULL, 0, UP_TLS_IMPLICIT, NULL,
	  NULL },
};

struct flight;

struct auth_oauth_req {
	TAILQ_ENTRY(auth_oauth_req) entry;
	struct flight		*f;
	auth_oauth_cb		*cb;
	void			*arg;
};

TAILQ_HEAD(oauth_reqs, auth_oauth_req);

struct flight {
	TAILQ_ENTRY(flight)	 entry;
	struct oauth_reqs	 waiters;
	bool			 joinable;	/* waiters not answered yet */
	char			*account;
	char			 ver[17];
	char			*app_id;
	char			*user;
	char			*force;		/* stale token: secret */
	/* From the account's oauth2 object (sealed). */
	char			*acct_access;
	long long		 acct_expires;
	char			*acct_refresh;
	/* From the application. */
	char			 provider[16];
	char			*mech;
	/* The best token known (secret) and the refresh bookkeeping. */
	char			*cur;
	long long		 cur_expires;
	long long		 failures;
	bool			 locked;
	long long		 deadline;	/* give up waiting (wall ms) */
	long long		 started;	/* refresh start (wall ms) */
	struct tok_req		*treq;
	struct event		*timer;
	/* The refresh request. */
	CURL			*easy;
	struct curl_slist	*hdrs;
	char			*post;		/* secret */
	char			*resp;		/* may hold tokens */
	size_t			 resplen;
	char			*refresh;	/* the one sent: secret */
	char			*client_secret;	/* secret */
	char			 curl_err[CURL_ERROR_SIZE];
};

TAILQ_HEAD(flights, flight);

struct sockctx {
	LIST_ENTRY(sockctx)	 entry;
	struct event		*ev;
	curl_socket_t		 fd;
};

struct oauth_mgr {
	struct event_base	*base;
	struct tok		*tok;
	const struct cfg	*cfg;
	CURLM			*multi;
	struct event		*timer;
	struct flights		 flights;
	LIST_HEAD(, sockctx)	 socks;
	char			 owner[33];	/* lock value: this process */
};

static struct oauth_mgr	*mgr;

static void	flight_read(struct flight *);
static void	flight_done(struct flight *);
static void	check_done(void);

const struct auth_oauth_preset *
auth_oauth_preset(const char *provider)
{
	if (provider == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (strcmp(presets[i].name, provider) == 0)
			return &presets[i];
	return NULL;
}

static void
wipe(char **p)
{
	crypto_free_secret(p);
}

/* ---- pure helpers ---- */

long long
auth_oauth_backoff_ms(long long failures, long long min, long long max)
{
	long long d = min;

	for (long long i = 0; i < failures && d < max; i++)
		d *= 2;
	return d < max ? d : max;
}

void
auth_oauth_ver(const cJSON *oauth2, char *out)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;
	char		*txt = cJSON_PrintUnformatted(oauth2);

	/* The sealed strings change whenever a token is given again
	 * (fresh nonce), so any new oauth2 object gets a new version. */
	EVP_Digest(txt != NULL ? txt : "", txt != NULL ? strlen(txt) : 0, md,
	    &mdlen, EVP_sha256(), NULL);
	cJSON_free(txt);
	str_hex_encode(md, 8, out);
}

static void
form_add(char **buf, size_t *len, size_t *cap, const char *name,
    const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = strlen(name) + 3 * strlen(val) + 3;
	char *p;

	if (*len + need >= *cap) {
		size_t ncap = (*len + need) * 2;
		char *n = xmalloc(ncap);

		if (*buf != NULL) {
			memcpy(n, *buf, *len);
			OPENSSL_cleanse(*buf, *cap);
			free(*buf);
		}
		*buf = n;
		*cap = ncap;
	}
	p = *buf + *len;
	if (*len > 0)
		*p++ = '&';
	p += snprintf(p, *cap - (size_t)(p - *buf), "%s=", name);
	/* RFC 3986 unreserved characters stay, the rest is %XX. */
	for (const unsigned char *s = (const unsigned char *)val; *s != '\0';
	    s++) {
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
		    *s == '_' || *s == '~')
			*p++ = (char)*s;
		else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	}
	*p = '\0';
	*len = (size_t)(p - *buf);
}

char *
auth_oauth_form(const char *refresh, const char *client_id,
    const char *client_secret, const char *scope)
{
	char	*buf = NULL;
	size_t	 len = 0, cap = 0;

	/* RFC 6749 6: refreshing an access token; client_secret_post
	 * (2.3.1), which Google and Microsoft both take. */
	form_add(&buf, &len, &cap, "grant_type", "refresh_token");
	form_add(&buf, &len, &cap, "refresh_token", refresh);
	form_add(&buf, &len, &cap, "client_id", client_id);
	if (client_secret != NULL && *client_secret != '\0')
		form_add(&buf, &len, &cap, "client_secret", client_secret);
	if (scope != NULL && *scope != '\0')
		form_add(&buf, &len, &cap, "scope", scope);
	return buf;
}

static const char *
jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool
is_token_text(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* An error code of RFC 6749 5.2 is %x20-21 / %x23-5B / %x5D-7E. */
static void
error_text(const cJSON *j, long status, struct auth_oauth_resp *r)
{
	const char	*e = jstr(j, "error");
	const char	*d = jstr(j, "error_description");
	char		 eb[64], db[128];

	str_sanitize(e != NULL ? e : "", 48, eb, sizeof(eb));
	str_sanitize(d != NULL ? d : "", 100, db, sizeof(db));
	snprintf(r->error, sizeof(r->error), "HTTP %ld%s%s%s%s", status,
	    *eb != '\0' ? " " : "", eb, *db != '\0' ? ": " : "", db);
}

void
auth_oauth_parse_response(bool curl_ok, long status, const char *body,
    size_t len, struct auth_oauth_resp *r)
{
	cJSON		*j = NULL;
	const cJSON	*ei;
	const char	*at, *rt, *e;
	long long	 exp = OAUTH_EXPIRES_DEFAULT_S;

	memset(r, 0, sizeof(*r));
	r->fail = AUTH_OAUTH_TEMP;
	if (!curl_ok) {
		snprintf(r->error, sizeof(r->error), "no answer");
		return;
	}
	if (body != NULL && len > 0)
		j = cJSON_ParseWithLength(body, len);
	if (status != 200) {
		error_text(j, status, r);
		e = jstr(j, "error");
		/* RFC 6749 5.2: the refresh token is invalid, expired or
		 * revoked; only a new authorization helps. */
		if (status >= 400 && status < 500 && e != NULL &&
		    strcmp(e, "invalid_grant") == 0)
			r->fail = AUTH_OAUTH_REVOKED;
		cJSON_Delete(j);
		return;
	}
	at = jstr(j, "access_token");
	rt = jstr(j, "refresh_token");
	if (!cJSON_IsObject(j) || !is_token_text(at) ||
	    (rt != NULL && !is_token_text(rt))) {
		snprintf(r->error, sizeof(r->error), "HTTP 200 without a "
		    "usable access_token");
		cJSON_Delete(j);
		return;
	}
	/* A number (RFC 6749), or a numeric string as some servers send. */
	ei = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	if (cJSON_IsNumber(ei))
		exp = (long long)ei->valuedouble;
	else if (cJSON_IsString(ei) && !str_to_ll(ei->valuestring, 0,
	    OAUTH_EXPIRES_MAX_S, &exp))
		exp = OAUTH_EXPIRES_DEFAULT_S;
	if (exp < 1)
		exp = 1;
	if (exp > OAUTH_EXPIRES_MAX_S)
		exp = OAUTH_EXPIRES_MAX_S;
	r->fail = AUTH_OAUTH_OK;
	r->access = xstrdup(at);
	r->refresh = rt != NULL ? xstrdup(rt) : NULL;
	r->expires_in_ms = exp * 1000;
	/* The parsed tree holds the tokens too. */
	OPENSSL_cleanse((void *)at, strlen(at));
	if (rt != NULL)
		OPENSSL_cleanse((void *)rt, strlen(rt));
	cJSON_Delete(j);
}

void
auth_oauth_resp_clear(struct auth_oauth_resp *r)
{
	wipe(&r->access);
	wipe(&r->refresh);
}

char *
auth_oauth_token_url(const cJSON *app, const struct cfg *cfg)
{
	const char	*prov = jstr(app, "provider"), *tpl, *tenant, *p;

	if (prov == NULL)
		return NULL;
	if (strcmp(prov, "custom") == 0) {
		tpl = jstr(app, "tokenUrl");
		return tpl != NULL ? xstrdup(tpl) : NULL;
	}
	if (strcmp(prov, "gmail") == 0)
		tpl = cfg->oauth_gmail_token_url;
	else if (strcmp(prov, "outlook") == 0)
		tpl = cfg->oauth_outlook_token_url;
	else
		return NULL;
	if ((tenant = jstr(app, "tenant")) == NULL)
		tenant = "common";
	if ((p = strstr(tpl, "{tenant}")) == NULL)
		return xstrdup(tpl);
	return xasprintf("%.*s%s%s", (int)(p - tpl), tpl, tenant,
	    p + strlen("{tenant}"));
}

bool
auth_oauth_is_running(void)
{
	return mgr != NULL;
}

bool
auth_oauth_is_account(const cJSON *acct)
{
	return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(acct, "oauth2"));
}

static const struct {
	const char *imap, *smtp;
} fail_texts[] = {
	[AUTH_OAUTH_OK] = { "OK", "235 2.7.0 Authentication successful" },
	[AUTH_OAUTH_TEMP] = {
	    "NO [UNAVAILABLE] Temporary failure getting an OAuth2 access token "
	    "for this account, try again later",
	    "454 4.7.0 Temporary failure getting an OAuth2 access token for "
	    "this account, try again later" },
	[AUTH_OAUTH_REVOKED] = {
	    "NO [UNAVAILABLE] The OAuth2 authorization of this account was "
	    "revoked or has expired (invalid_grant); it must be renewed",
	    "454 4.7.0 The OAuth2 authorization of this account was revoked or "
	    "has expired (invalid_grant); it must be renewed" },
	[AUTH_OAUTH_CONFIG] = {
	    "NO [UNAVAILABLE] OAuth2 is not set up correctly for this account",
	    "454 4.7.0 OAuth2 is not set up correctly for this account" },
};

const char *
auth_oauth_imap_text(enum auth_oauth_fail f)
{
	return fail_texts[f].imap;
}

const char *
auth_oauth_smtp_text(enum auth_oauth_fail f)
{
	return fail_texts[f].smtp;
}

/* ---- upstream targets ---- */

static void	*renew_start(const char *, const char *, up_renew_cb *, void *);
static void	 renew_cancel(void *);

static const struct up_renew_ops renew_ops = { renew_start, renew_cancel };

static bool
jbool(const cJSON *o, const char *name, bool dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

struct up_target *
auth_oauth_target(const cJSON *acct, const char *section,
    const struct auth_oauth_token *tk, bool ignore_cert,
    const struct cfg *cfg, const char **why_r)
{
	const struct auth_oauth_preset	*pre = auth_oauth_preset(tk->provider);
	const cJSON			*s, *port, *tls;
	const char			*host, *starttls, *id;
	struct up_target		*t;
	bool				 imap = strcmp(section, "imap") == 0;

	id = jstr(acct, "account");
	s = cJSON_GetObjectItemCaseSensitive(acct, section);
	t = xcalloc(1, sizeof(*t));
	if (cJSON_IsObject(s)) {
		host = jstr(s, "host");
		port = cJSON_GetObjectItemCaseSensitive(s, "port");
		if (host == NULL || !cJSON_IsNumber(port)) {
			free(t);
			*why_r = "account settings lack host or port";
			return NULL;
		}
		t->host = xstrdup(host);
		t->port = port->valueint;
		starttls = jstr(s, "starttls");
		if (jbool(s, "secure", false))
			t->tls = UP_TLS_IMPLICIT;
		else if (starttls != NULL && strcmp(starttls, "never") == 0)
			t->tls = UP_TLS_NONE;
		else
			t->tls = UP_TLS_STARTTLS;
		tls = cJSON_GetObjectItemCaseSensitive(s, "tls");
		t->verify = !ignore_cert && jbool(tls, "rejectUnauthorized",
		    true);
	} else if (pre != NULL && pre->imap_host != NULL) {
		t->host = xstrdup(imap ? pre->imap_host : pre->smtp_host);
		t->port = imap ? pre->imap_port : pre->smtp_port;
		t->tls = imap ? pre->imap_tls : pre->smtp_tls;
		t->verify = !ignore_cert;
	} else {
		free(t);
		*why_r = "account has no settings for this protocol";
		return NULL;
	}
	t->connect_timeout_ms = cfg->up_connect_timeout_ms;
	t->login_timeout_ms = cfg->up_login_timeout_ms;
	t->cred = UP_CRED_OAUTH2;
	t->user = xstrdup(tk->user);
	t->secret = xstrdup(tk->access);
	t->oauth_mech = tk->mech != NULL ? xstrdup(tk->mech) : NULL;
	if (mgr != NULL && id != NULL) {
		t->renew = &renew_ops;
		t->renew_key = xstrdup(id);
	}
	return t;
}

/* ---- requests and flights ---- */

static void
req_free(struct auth_oauth_req *r)
{
	free(r);
}

void
auth_oauth_cancel(struct auth_oauth_req *r)
{
	struct flight *f;

	if (r == NULL)
		return;
	/* The flight goes on without this waiter: a lock request or a
	 * refresh already sent must complete (and unlock), and every later
	 * step copes with nobody waiting. */
	if ((f = r->f) != NULL) {
		TAILQ_REMOVE(&f->waiters, r, entry);
		r->f = NULL;
	}
	req_free(r);
}

static void
flight_free(struct flight *f)
{
	struct auth_oauth_req *r;

	while ((r = TAILQ_FIRST(&f->waiters)) != NULL) {
		TAILQ_REMOVE(&f->waiters, r, entry);
		req_free(r);
	}
	tok_req_cancel(f->treq);
	if (f->timer != NULL)
		event_free(f->timer);
	if (f->easy != NULL) {
		curl_multi_remove_handle(mgr->multi, f->easy);
		curl_easy_cleanup(f->easy);
	}
	curl_slist_free_all(f->hdrs);
	wipe(&f->post);
	if (f->resp != NULL)
		OPENSSL_cleanse(f->resp, f->resplen);
	free(f->resp);
	wipe(&f->refresh);
	wipe(&f->client_secret);
	wipe(&f->cur);
	wipe(&f->force);
	free(f->account);
	free(f->app_id);
	free(f->user);
	free(f->acct_access);
	free(f->acct_refresh);
	free(f->mech);
	free(f);
}

static void
flight_done(struct flight *f)
{
	TAILQ_REMOVE(&mgr->flights, f, entry);
	if (f->locked)
		tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
	flight_free(f);
}

/* Answers every waiter. The flight stops being joinable first: a
 * callback may start a new request for the same account. */
static void
answer(struct flight *f, enum auth_oauth_fail fail, const char *why)
{
	struct auth_oauth_req	*r;
	struct auth_oauth_token	 tk;

	f->joinable = false;
	memset(&tk, 0, sizeof(tk));
	tk.access = f->cur;
	tk.user = f->user;
	tk.provider = f->provider;
	tk.mech = f->mech;
	tk.expires_ms = f->cur_expires;
	while ((r = TAILQ_FIRST(&f->waiters)) != NULL) {
		TAILQ_REMOVE(&f->waiters, r, entry);
		r->f = NULL;
		r->cb(r->arg, fail, fail == AUTH_OAUTH_OK ? &tk : NULL, why);
		req_free(r);
	}
}

/* Ends a flight that has not started an HTTP request. */
static void
finish(struct flight *f, enum auth_oauth_fail fail, const char *why)
{
	answer(f, fail, why);
	flight_done(f);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flight *f = arg;

	(void)fd;
	(void)what;
	flight_read(f);
}

/* Another process holds the lock: look again shortly. */
static void
poll_later(struct flight *f)
{
	struct timeval tv = { 0, OAUTH_POLL_MS * 1000 };

	if (TAILQ_EMPTY(&f->waiters)) {
		flight_done(f);		/* background work: theirs now */
		return;
	}
	if (str_now_ms() > f->deadline) {
		log_warn("event=oauth2_wait result=timeout account=%s",
		    f->account);
		finish(f, AUTH_OAUTH_TEMP, "timed out waiting for another "
		    "process to refresh the access token");
		return;
	}
	if (f->timer == NULL)
		f->timer = evtimer_new(mgr->base, timer_cb, f);
	evtimer_add(f->timer, &tv);
}

/* Opens a sealed value of the account into *out; false if it does not
 * open (wrong secret, tampered): logged, never fatal. */
static bool
open_sealed(const struct flight *f, const char *sealed, const char *path,
    char **out)
{
	char aad[512];

	*out = NULL;
	if (sealed == NULL)
		return false;
	snprintf(aad, sizeof(aad), "%s\n%s", f->account, path);
	if (crypto_open(sealed, aad, out, NULL) == 0)
		return true;
	log_error("event=oauth2_decrypt result=fail account=%s field=%s",
	    f->account, path);
	return false;
}

/* Keeps the later-expiring of the current token and this one, unless it
 * is the token being replaced. */
static void
consider(struct flight *f, char *tok, long long expires)
{
	if (tok == NULL)
		return;
	if ((f->force != NULL && strcmp(tok, f->force) == 0) ||
	    (f->cur != NULL && f->cur_expires >= expires)) {
		wipe(&tok);
		return;
	}
	wipe(&f->cur);
	f->cur = tok;
	f->cur_expires = expires;
}

static void	lock_cb(void *, int);
static void	refresh_start(struct flight *, const char *refresh,
		    const cJSON *app);

static void
read_cb(void *arg, int rc, const struct tok_oauth_cache *c,
    const struct tok_oauth_app *app)
{
	struct flight	*f = arg;
	const char	*prov, *m;
	char		*tok, *refresh = NULL, why[256];
	bool		 mine;
	long long	 now = str_now_ms();

	f->treq = NULL;
	if (rc < 0) {
		snprintf(why, sizeof(why), "redis: %s", tok_oauth_errstr());
		finish(f, AUTH_OAUTH_TEMP, why);
		return;
	}
	if (app == NULL) {
		log_warn("event=oauth2_token result=fail account=%s "
		    "reason=\"application not found\"", f->account);
		finish(f, AUTH_OAUTH_CONFIG, "OAuth2 application not found");
		return;
	}
	prov = jstr(app->json, "provider");
	snprintf(f->provider, sizeof(f->provider), "%s", prov != NULL ? prov :
	    "custom");
	m = jstr(app->json, "mechanism");
	if (m == NULL && auth_oauth_preset(prov) != NULL)
		m = auth_oauth_preset(prov)->mech;
	free(f->mech);
	f->mech = m != NULL ? xstrdup(m) : NULL;

	mine = c->ver != NULL && strcmp(c->ver, f->ver) == 0;
	if (mine && c->failed != NULL) {
		finish(f, AUTH_OAUTH_REVOKED, "the provider rejected the "
		    "refresh token (invalid_grant); renew the account's "
		    "authorization");
		return;
	}
	if (mine && open_sealed(f, c->access, TOK_OAUTH_AAD_ACCESS, &tok))
		consider(f, tok, c->expires_ms);
	if (f->acct_access != NULL && open_sealed(f, f->acct_access,
	    "oauth2.accessToken", &tok))
		consider(f, tok, f->acct_expires > 0 ? f->acct_expires :
		    now + mgr->cfg->oauth_refresh_margin_ms + 60000);
	if (f->cur != NULL && f->cur_expires - now >
	    mgr->cfg->oauth_refresh_margin_ms) {
		if (f->locked) {
			log_info("event=oauth2_refresh result=skip account=%s "
			    "reason=\"refreshed meanwhile\"", f->account);
			tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
			f->locked = false;
		}
		finish(f, AUTH_OAUTH_OK, NULL);
		return;
	}
	f->failures = mine ? c->failures : 0;
	if (mine && c->refresh != NULL)
		(void)open_sealed(f, c->refresh, TOK_OAUTH_AAD_REFRESH,
		    &refresh);
	if (refresh == NULL && f->acct_refresh != NULL)
		(void)open_sealed(f, f->acct_refresh, "oauth2.refreshToken",
		    &refresh);
	if (refresh == NULL || (mine && c->retry_ms > now)) {
		bool backoff = refresh != NULL;
		bool sealed = (mine && c->refresh != NULL) ||
		    f->acct_refresh != NULL;

		wipe(&refresh);
		if (f->locked) {
			tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
			f->locked = false;
		}
		if (f->cur != NULL && f->cur_expires > now) {
			finish(f, AUTH_OAUTH_OK, NULL);
			return;
		}
		if (backoff) {
			snprintf(why, sizeof(why), "token endpoint failed "
			    "recently; next refresh in %lld s",
			    (c->retry_ms - now + 999) / 1000);
			finish(f, AUTH_OAUTH_TEMP, why);
		} else if (sealed)
			finish(f, AUTH_OAUTH_CONFIG, "the stored refresh token "
			    "does not decrypt (wrong secret?)");
		else
			finish(f, AUTH_OAUTH_CONFIG, f->force != NULL ?
			    "the upstream refused the access token and no "
			    "refresh token is stored" : "the access token has "
			    "expired and no refresh token is stored");
		return;
	}
	/* Still valid, only inside the margin: logins go on with it while
	 * the refresh runs in the background. */
	if (f->cur != NULL && f->cur_expires > now && f->force == NULL &&
	    !TAILQ_EMPTY(&f->waiters))
		answer(f, AUTH_OAUTH_OK, NULL);
	if (f->locked) {
		refresh_start(f, refresh, app->json);
		wipe(&refresh);
		return;
	}
	wipe(&refresh);
	if (c->locked) {
		poll_later(f);
		return;
	}
	f->treq = tok_oauth_lock(mgr->tok, f->account, mgr->owner,
	    mgr->cfg->oauth_token_timeout_ms + OAUTH_LOCK_SLACK_MS, lock_cb, f);
}

static void
lock_cb(void *arg, int rc)
{
	struct flight *f = arg;

	f->treq = NULL;
	if (rc < 0) {
		char why[256];

		snprintf(why, sizeof(why), "redis: %s", tok_oauth_errstr());
		finish(f, AUTH_OAUTH_TEMP, why);
		return;
	}
	if (rc == 0) {
		poll_later(f);
		return;
	}
	/* Ours. Read once more: another holder may have stored a fresh
	 * token just before we took the lock. */
	f->locked = true;
	flight_read(f);
}

static void
flight_read(struct flight *f)
{
	f->treq = tok_oauth_cache_get(mgr->tok, f->account, f->app_id, read_cb,
	    f);
}

/* ---- the refresh request ---- */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct flight	*f = arg;
	size_t		 n = size * nmemb;
	char		*p;

	if (n == 0)
		return 0;
	if (f->resplen + n > OAUTH_RESP_MAX)
		return 0;		/* CURLE_WRITE_ERROR */
	p = xmalloc(f->resplen + n + 1);
	if (f->resp != NULL) {
		memcpy(p, f->resp, f->resplen);
		OPENSSL_cleanse(f->resp, f->resplen);
		free(f->resp);
	}
	memcpy(p + f->resplen, ptr, n);
	f->resp = p;
	f->resplen += n;
	f->resp[f->resplen] = '\0';
	return n;
}

static void
refresh_fail(struct flight *f, const char *why)
{
	char buf[300];

	snprintf(buf, sizeof(buf), "%s", why);
	if (f->locked) {
		tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
		f->locked = false;
	}
	finish(f, AUTH_OAUTH_CONFIG, buf);
}

static void
refresh_start(struct flight *f, const char *refresh, const cJSON *app)
{
	const char	*cid = jstr(app, "clientId");
	const char	*sec = jstr(app, "clientSecret");
	const char	*scope = NULL;
	const cJSON	*sc;
	char		*url, aad[512], *scopes = NULL;
	CURL		*e;

	url = cid != NULL ? auth_oauth_token_url(app, mgr->cfg) : NULL;
	if (url == NULL) {
		refresh_fail(f, "the OAuth2 application has no client id or "
		    "token URL");
		return;
	}
	if (sec != NULL) {
		snprintf(aad, sizeof(aad), "%s\nclientSecret", f->app_id);
		if (crypto_open(sec, aad, &f->client_secret, NULL) == -1) {
			free(url);
			log_error("event=oauth2_decrypt result=fail app=%s "
			    "field=clientSecret", f->app_id);
			refresh_fail(f, "the client secret does not decrypt "
			    "(wrong secret?)");
			return;
		}
	}
	/* Microsoft's v2.0 endpoint wants the scopes again; Google does not
	 * (and takes them). Custom servers get them when configured. */
	sc = cJSON_GetObjectItemCaseSensitive(app, "scopes");
	if (cJSON_IsArray(sc) && cJSON_GetArraySize(sc) > 0) {
		const cJSON	*e2;
		size_t		 len = 1;

		cJSON_ArrayForEach(e2, sc)
			if (cJSON_IsString(e2))
				len += strlen(e2->valuestring) + 1;
		scopes = xcalloc(1, len);
		cJSON_ArrayForEach(e2, sc)
			if (cJSON_IsString(e2)) {
				if (*scopes != '\0')
					strcat(scopes, " ");
				strcat(scopes, e2->valuestring);
			}
		scope = scopes;
	} else if (strcmp(f->provider, "outlook") == 0)
		scope = auth_oauth_preset("outlook")->scopes;
	f->refresh = xstrdup(refresh);
	f->post = auth_oauth_form(refresh, cid, f->client_secret, scope);
	free(scopes);

	if ((e = curl_easy_init()) == NULL) {
		free(url);
		refresh_fail(f, "curl_easy_init failed");
		return;
	}
	f->easy = e;
	f->hdrs = curl_slist_append(NULL, "Accept: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->post);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(f->post));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hdrs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, OAUTH_USER_AGENT);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    (long)mgr->cfg->oauth_token_timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->curl_err);
	if (mgr->cfg->tls_ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, mgr->cfg->tls_ca_file);
	free(url);
	f->started = str_now_ms();
	log_info("event=oauth2_refresh result=start account=%s app=%s%s",
	    f->account, f->app_id, f->force != NULL ?
	    " reason=\"upstream refused the access token\"" : "");
	if (curl_multi_add_handle(mgr->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		f->easy = NULL;
		refresh_fail(f, "curl_multi_add_handle failed");
	}
}

/* An error text must not quote what we sent. */
static void
scrub(struct flight *f, char *text)
{
	if ((f->refresh != NULL && *f->refresh != '\0' &&
	    strstr(text, f->refresh) != NULL) ||
	    (f->client_secret != NULL && *f->client_secret != '\0' &&
	    strstr(text, f->client_secret) != NULL))
		snprintf(text, 16, "(withheld)");
}

static void
store_cb(void *arg, int rc)
{
	(void)arg;
	if (rc != 1)
		log_error("event=oauth2_store result=fail reason=\"%s\"",
		    rc == 0 ? "account deleted" : tok_oauth_errstr());
}

static void
refresh_done(struct flight *f, CURLcode cc)
{
	struct auth_oauth_resp	 r;
	long			 status = 0;
	long long		 now = str_now_ms(), ms = now - f->started;
	char			 aad[512], *sa, *sr = NULL, why[300];

	curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(mgr->multi, f->easy);
	curl_easy_cleanup(f->easy);
	f->easy = NULL;
	auth_oauth_parse_response(cc == CURLE_OK, status, f->resp, f->resplen,
	    &r);
	if (cc != CURLE_OK) {
		str_sanitize(f->curl_err[0] != '\0' ? f->curl_err :
		    curl_easy_strerror(cc), 120, r.error, sizeof(r.error));
	}
	scrub(f, r.error);
	switch (r.fail) {
	case AUTH_OAUTH_OK:
		snprintf(aad, sizeof(aad), "%s\n%s", f->account,
		    TOK_OAUTH_AAD_ACCESS);
		sa = crypto_seal_str(r.access, aad);
		if (r.refresh != NULL) {
			snprintf(aad, sizeof(aad), "%s\n%s", f->account,
			    TOK_OAUTH_AAD_REFRESH);
			sr = crypto_seal_str(r.refresh, aad);
		}
		if (sa == NULL || (r.refresh != NULL && sr == NULL))
			log_error("event=oauth2_store result=fail account=%s "
			    "reason=\"cannot encrypt (no secret key)\"",
			    f->account);
		else
			(void)tok_oauth_cache_put(mgr->tok, f->account, f->ver,
			    sa, now + r.expires_in_ms, sr, store_cb, NULL);
		free(sa);
		free(sr);
		log_info("event=oauth2_refresh result=ok account=%s app=%s "
		    "expires_in=%lld rotated=%s ms=%lld", f->account, f->app_id,
		    r.expires_in_ms / 1000, r.refresh != NULL ? "yes" : "no",
		    ms);
		wipe(&f->cur);
		f->cur = r.access;
		r.access = NULL;
		f->cur_expires = now + r.expires_in_ms;
		/* The store went first on the same connection: the unlock
		 * cannot overtake it. */
		tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
		f->locked = false;
		finish(f, AUTH_OAUTH_OK, NULL);
		break;
	case AUTH_OAUTH_REVOKED:
		log_warn("event=oauth2_refresh result=revoked account=%s "
		    "app=%s reason=\"%s\" ms=%lld", f->account, f->app_id,
		    r.error, ms);
		tok_oauth_cache_fail(mgr->tok, f->account, f->ver,
		    f->failures + 1, 0, r.error);
		snprintf(why, sizeof(why), "OAuth2 refresh token rejected by "
		    "the provider (%s)", r.error);
		tok_account_set_state(mgr->tok, f->account,
		    "authenticationError", why);
		tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
		f->locked = false;
		finish(f, AUTH_OAUTH_REVOKED, why);
		break;
	default: {
		long long delay = auth_oauth_backoff_ms(f->failures,
		    mgr->cfg->oauth_backoff_min_ms,
		    mgr->cfg->oauth_backoff_max_ms);

		log_warn("event=oauth2_refresh result=tempfail account=%s "
		    "app=%s reason=\"%s\" failures=%lld retry_in_ms=%lld "
		    "ms=%lld", f->account, f->app_id, r.error, f->failures + 1,
		    delay, ms);
		tok_oauth_cache_fail(mgr->tok, f->account, f->ver,
		    f->failures + 1, now + delay, NULL);
		tok_oauth_unlock(mgr->tok, f->account, mgr->owner);
		f->locked = false;
		snprintf(why, sizeof(why), "token endpoint: %s", r.error);
		/* A token still valid (refresh inside the margin) serves. */
		if (f->cur != NULL && f->cur_expires > now)
			finish(f, AUTH_OAUTH_OK, NULL);
		else
			finish(f, AUTH_OAUTH_TEMP, why);
		break;
	}
	}
	auth_oauth_resp_clear(&r);
}

/* ---- curl multi on libevent ---- */

static void
check_done(void)
{
	CURLMsg		*msg;
	int		 left;
	struct flight	*f;
	char		*priv;

	while ((msg = curl_multi_info_read(mgr->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		f = (struct flight *)(void *)priv;
		if (f != NULL)
			refresh_done(f, msg->data.result);
	}
}

static void
curl_event_cb(evutil_socket_t fd, short what, void *arg)
{
	int running = 0, flags = 0;

	(void)arg;
	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(mgr->multi, fd, flags, &running);
	check_done();
	if (running <= 0)
		evtimer_del(mgr->timer);
}

static void
curl_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	int running = 0;

	(void)fd;
	(void)what;
	(void)arg;
	curl_multi_socket_action(mgr->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct sockctx	*sc = socketp;
	short		 kind;

	(void)e;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (sc != NULL) {
			event_free(sc->ev);
			LIST_REMOVE(sc, entry);
			free(sc);
		}
		curl_multi_assign(mgr->multi, s, NULL);
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (sc == NULL) {
		sc = xcalloc(1, sizeof(*sc));
		sc->fd = s;
		LIST_INSERT_HEAD(&mgr->socks, sc, entry);
		curl_multi_assign(mgr->multi, s, sc);
	} else
		event_free(sc->ev);
	sc->ev = event_new(mgr->base, s, kind, curl_event_cb, NULL);
	event_add(sc->ev, NULL);
	return 0;
}

static int
curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct timeval tv;

	(void)m;
	(void)userp;
	if (timeout_ms < 0) {
		evtimer_del(mgr->timer);
		return 0;
	}
	/* Never call curl_multi_socket_action from here: a zero timeout
	 * runs on the next loop turn. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(mgr->timer, &tv);
	return 0;
}

int
auth_oauth_init(struct event_base *base, struct tok *tok,
    const struct cfg *cfg, char *err, size_t errlen)
{
	uint8_t rnd[16];

	if (mgr != NULL)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init failed");
		return -1;
	}
	if (crypto_random(rnd, sizeof(rnd)) == -1) {
		curl_global_cleanup();
		snprintf(err, errlen, "no random bytes for the lock owner id");
		return -1;
	}
	mgr = xcalloc(1, sizeof(*mgr));
	mgr->base = base;
	mgr->tok = tok;
	mgr->cfg = cfg;
	str_hex_encode(rnd, sizeof(rnd), mgr->owner);
	TAILQ_INIT(&mgr->flights);
	LIST_INIT(&mgr->socks);
	if ((mgr->multi = curl_multi_init()) == NULL ||
	    (mgr->timer = evtimer_new(base, curl_timeout_cb, NULL)) == NULL) {
		snprintf(err, errlen, "curl_multi_init failed");
		auth_oauth_shutdown();
		return -1;
	}
	curl_multi_setopt(mgr->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
	curl_multi_setopt(mgr->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	return 0;
}

void
auth_oauth_shutdown(void)
{
	struct flight	*f;
	struct sockctx	*sc;

	if (mgr == NULL)
		return;
	while ((f = TAILQ_FIRST(&mgr->flights)) != NULL) {
		TAILQ_REMOVE(&mgr->flights, f, entry);
		flight_free(f);
	}
	if (mgr->multi != NULL)
		curl_multi_cleanup(mgr->multi);
	while ((sc = LIST_FIRST(&mgr->socks)) != NULL) {
		LIST_REMOVE(sc, entry);
		event_free(sc->ev);
		free(sc);
	}
	if (mgr->timer != NULL)
		event_free(mgr->timer);
	free(mgr);
	mgr = NULL;
	curl_global_cleanup();
}

/* ---- the entry point ---- */

static struct flight *
flight_find(const char *account, const char *ver, const char *stale)
{
	struct flight *f;

	TAILQ_FOREACH(f, &mgr->flights, entry) {
		if (!f->joinable || strcmp(f->account, account) != 0 ||
		    strcmp(f->ver, ver) != 0)
			continue;
		if ((stale == NULL) != (f->force == NULL))
			continue;
		if (stale != NULL && strcmp(stale, f->force) != 0)
			continue;
		return f;
	}
	return NULL;
}

static void
early_cb(evutil_socket_t fd, short what, void *arg)
{
	struct flight *f = arg;

	(void)fd;
	(void)what;
	finish(f, AUTH_OAUTH_CONFIG, "the account names no OAuth2 application");
}

struct auth_oauth_req *
auth_oauth_get(const char *account, const cJSON *acct, const char *stale,
    auth_oauth_cb *cb, void *arg)
{
	struct auth_oauth_req	*r = xcalloc(1, sizeof(*r));
	struct flight		*f;
	const cJSON		*o = cJSON_GetObjectItemCaseSensitive(acct,
				    "oauth2");
	const char		*s;
	char			 ver[17];

	/* A broken invariant: workers start the manager before the loop. */
	if (mgr == NULL)
		fatalx("auth_oauth_get: the token manager is not running");
	r->cb = cb;
	r->arg = arg;
	auth_oauth_ver(o, ver);
	if ((f = flight_find(account, ver, stale)) != NULL) {
		r->f = f;
		TAILQ_INSERT_TAIL(&f->waiters, r, entry);
		return r;
	}
	f = xcalloc(1, sizeof(*f));
	TAILQ_INIT(&f->waiters);
	r->f = f;
	TAILQ_INSERT_TAIL(&f->waiters, r, entry);
	f->account = xstrdup(account);
	memcpy(f->ver, ver, sizeof(f->ver));
	f->joinable = true;
	s = jstr(o, "provider");
	f->app_id = xstrdup(s != NULL ? s : "");
	s = jstr(cJSON_GetObjectItemCaseSensitive(o, "auth"), "user");
	f->user = xstrdup(s != NULL ? s : account);
	if ((s = jstr(o, "accessToken")) != NULL)
		f->acct_access = xstrdup(s);
	if ((s = jstr(o, "expires")) != NULL)
		f->acct_expires = str_iso8601_parse(s);
	if ((s = jstr(o, "refreshToken")) != NULL)
		f->acct_refresh = xstrdup(s);
	if (stale != NULL)
		f->force = xstrdup(stale);
	TAILQ_INSERT_TAIL(&mgr->flights, f, entry);
	f->deadline = str_now_ms() + 2 * mgr->cfg->oauth_token_timeout_ms +
	    OAUTH_LOCK_SLACK_MS;
	if (o == NULL || *f->app_id == '\0') {
		f->timer = evtimer_new(mgr->base, early_cb, f);
		event_active(f->timer, EV_TIMEOUT, 1);
		return r;
	}
	flight_read(f);
	return r;
}

/* ---- renewal for upstream/ (up_renew_ops) ---- */

struct renew {
	char			*account;
	char			*stale;		/* secret */
	up_renew_cb		*cb;
	void			*arg;
	struct tok_req		*treq;
	struct auth_oauth_req	*req;
};

static void
renew_free(struct renew *rn)
{
	free(rn->account);
	wipe(&rn->stale);
	free(rn);
}

static void
renew_token_cb(void *arg, enum auth_oauth_fail fail,
    const struct auth_oauth_token *tk, const char *why)
{
	struct renew *rn = arg;

	(void)fail;
	rn->req = NULL;
	rn->cb(rn->arg, tk != NULL ? tk->access : NULL, why);
	renew_free(rn);
}

static void
renew_account_cb(void *arg, int rc, const cJSON *acct)
{
	struct renew *rn = arg;

	rn->treq = NULL;
	if (rc != 1 || !auth_oauth_is_account(acct)) {
		rn->cb(rn->arg, NULL, rc < 0 ? "redis: account" :
		    "the account or its oauth2 settings are gone");
		renew_free(rn);
		return;
	}
	log_info("event=oauth2_renew account=%s reason=\"upstream refused the "
	    "access token\"", rn->account);
	rn->req = auth_oauth_get(rn->account, acct, rn->stale, renew_token_cb,
	    rn);
}

static void *
renew_start(const char *key, const char *stale, up_renew_cb *cb, void *arg)
{
	struct renew *rn = xcalloc(1, sizeof(*rn));

	rn->account = xstrdup(key);
	rn->stale = xstrdup(stale);
	rn->cb = cb;
	rn->arg = arg;
	/* The account again: its oauth2 settings may have changed. */
	rn->treq = tok_account_get(mgr->tok, key, renew_account_cb, rn);
	return rn;
}

static void
renew_cancel(void *h)
{
	struct renew *rn = h;

	if (rn == NULL)
		return;
	tok_req_cancel(rn->treq);
	auth_oauth_cancel(rn->req);
	renew_free(rn);
}
