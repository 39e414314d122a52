/*
 * POST /v1/verifyAccount and the "verify": true of POST /v1/account: the
 * body is validated exactly as for registration (account_json.c), the
 * upstream targets are built from the normalised record the way the proxy
 * builds them (auth_target_from_account), and discover/disc_verify.c logs
 * in to each server. Passwords exist in plaintext only inside the targets,
 * which are wiped when the checks end.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "auth/auth.h"
#include "common/cfg.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "discover/disc_env.h"
#include "discover/disc_verify.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_store.h"
#include "upstream/up.h"

#define VERIFY_ACCOUNT_ID	"verify"	/* AAD only, never stored */

struct verify_ctx {
	cJSON			*rec;		/* normalised, sealed */
	char			*mailbox;	/* NULL: INBOX */
	admin_verified_fn	*save;		/* NULL: just report */
	struct disc_verify	*job;
};

static void
verify_ctx_free(void *arg)
{
	struct verify_ctx *c = arg;

	disc_verify_free(&c->job);
	cJSON_Delete(c->rec);
	free(c->mailbox);
	free(c);
}

static const char *
jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * The OAuth2 target of section when it has no password: the user of its
 * auth (or of oauth2.auth) and oauth2.accessToken. NULL if the record has
 * no access token. Host, port and TLS come from the normalised section,
 * so they are present and valid.
 */
static struct up_target *
oauth_target(const cJSON *rec, const char *section, bool ignore_cert,
    const struct cfg *cfg)
{
	const cJSON		*s = cJSON_GetObjectItemCaseSensitive(rec,
				    section);
	const cJSON		*o2 = cJSON_GetObjectItemCaseSensitive(rec,
				    "oauth2");
	const char		*sealed = jstr(o2, "accessToken"), *user;
	const char		*starttls;
	struct up_target	*t;
	char			*aad, *token = NULL;
	int			 rc;

	if (s == NULL || sealed == NULL)
		return NULL;
	user = jstr(cJSON_GetObjectItemCaseSensitive(s, "auth"), "user");
	if (user == NULL)
		user = jstr(cJSON_GetObjectItemCaseSensitive(o2, "auth"),
		    "user");
	aad = account_json_aad(jstr(rec, "account"), "oauth2.accessToken");
	rc = crypto_open(sealed, aad, &token, NULL);
	free(aad);
	if (rc == -1 || user == NULL)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->host = xstrdup(jstr(s, "host"));
	t->port = cJSON_GetObjectItemCaseSensitive(s, "port")->valueint;
	starttls = jstr(s, "starttls");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "secure")))
		t->tls = UP_TLS_IMPLICIT;
	else if (starttls != NULL && strcmp(starttls, "never") == 0)
		t->tls = UP_TLS_NONE;
	else
		t->tls = UP_TLS_STARTTLS;
	t->verify = !ignore_cert && !cJSON_IsFalse(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s,
	    "tls"), "rejectUnauthorized"));
	t->connect_timeout_ms = cfg->up_connect_timeout_ms;
	t->login_timeout_ms = cfg->up_login_timeout_ms;
	t->cred = UP_CRED_OAUTH2;
	t->user = xstrdup(user);
	t->secret = token;	/* wiped by up_target_free */
	return t;
}

/* Target of one section, or NULL with a reply sent (the caller returns). */
static bool
section_target(struct admin_req *ar, const cJSON *rec, const char *section,
    bool ignore_cert, struct up_target **t_r)
{
	const char	*why = NULL;
	bool		 temp = false;

	*t_r = NULL;
	if (cJSON_GetObjectItemCaseSensitive(rec, section) == NULL)
		return true;
	*t_r = auth_target_from_account(rec, section, ignore_cert, ar->cfg,
	    &why, &temp);
	if (*t_r == NULL && !temp)
		*t_r = oauth_target(rec, section, ignore_cert, ar->cfg);
	if (*t_r != NULL)
		return true;
	if (temp)
		admin_http_error(ar, 500, NULL, NULL, "%s", why);
	else
		admin_http_error(ar, 400, section, NULL, "%s: %s.auth.user and "
		    "%s.auth.pass (or oauth2.accessToken) are needed to verify",
		    why != NULL ? why : "no credentials", section, section);
	return false;
}

static void
verified_cb(void *arg, cJSON *result, bool ok)
{
	struct admin_req	*ar = arg;
	struct verify_ctx	*c = ar->hctx;
	admin_verified_fn	*save = c->save;
	cJSON			*rec;

	disc_verify_free(&c->job);	/* allowed from its callback */
	if (save == NULL) {
		admin_http_reply(ar, 200, result);
		return;
	}
	if (!ok) {
		/* The error shape plus the result's "imap" and "smtp". */
		admin_http_error(ar, 400, NULL, result, "the account failed "
		    "verification; not saved");
		return;
	}
	cJSON_Delete(result);
	/* Hand the record over; the save path sets its own context. */
	rec = c->rec;
	c->rec = NULL;
	ar->hctx_free(ar->hctx);
	ar->hctx = NULL;
	ar->hctx_free = NULL;
	save(ar, rec);
}

static void
settings_cb(void *arg, int rc, const cJSON *settings)
{
	struct admin_req	*ar = arg;
	struct verify_ctx	*c = ar->hctx;
	struct up_target	*imap = NULL, *smtp = NULL;
	struct disc_env		*env;
	bool			 ignore;
	char			 err[256];

	ar->treq = NULL;
	/* Verification needs no Redis: without the settings, certificates
	 * are checked (the safe side). */
	ignore = rc == 1 && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	    settings, "ignoreMailCertErrors"));
	if (!section_target(ar, c->rec, "imap", ignore, &imap))
		return;
	if (!section_target(ar, c->rec, "smtp", ignore, &smtp)) {
		up_target_free(&imap);
		return;
	}
	if (imap == NULL && smtp == NULL) {
		admin_http_error(ar, 400, NULL, NULL, "nothing to verify: give "
		    "imap and/or smtp settings");
		return;
	}
	if ((env = admin_disc_env(ar, err, sizeof(err))) == NULL) {
		up_target_free(&imap);
		up_target_free(&smtp);
		admin_http_error(ar, 500, NULL, NULL, "verify unavailable: %s",
		    err);
		return;
	}
	c->job = disc_verify_new(env, imap, c->mailbox, smtp,
	    ar->cfg->verify_timeout_ms, verified_cb, ar);
	up_target_free(&imap);
	up_target_free(&smtp);
}

static void
verify_start(struct admin_req *ar, cJSON *rec, const char *mailbox,
    admin_verified_fn *save)
{
	struct verify_ctx *c = xcalloc(1, sizeof(*c));

	c->rec = rec;
	c->mailbox = mailbox != NULL ? xstrdup(mailbox) : NULL;
	c->save = save;
	ar->hctx = c;
	ar->hctx_free = verify_ctx_free;
	ar->treq = tok_settings_get(ar->tok, settings_cb, ar);
}

void
admin_verify_then(struct admin_req *ar, cJSON *rec, admin_verified_fn *save)
{
	verify_start(ar, rec, NULL, save);
}

void
admin_verify_post(struct admin_req *ar)
{
	struct account_json_err	 e;
	cJSON			*body, *rec, *mb;
	char			 arg[DISC_VERIFY_MAILBOX_MAX * 3 + 8];
	char			*mailbox = NULL;

	if ((body = admin_http_body_object(ar)) == NULL)
		return;
	/* Verify-only fields; the rest is a registration body, whose
	 * account id is optional here. */
	if ((mb = cJSON_DetachItemFromObjectCaseSensitive(body,
	    "mailbox")) != NULL) {
		if (!cJSON_IsString(mb) || disc_verify_mailbox_arg(
		    mb->valuestring, arg, sizeof(arg)) == -1) {
			cJSON_Delete(mb);
			cJSON_Delete(body);
			admin_http_error(ar, 400, "mailbox", NULL, "mailbox must "
			    "be a mailbox name of 1-%d bytes of UTF-8 without "
			    "control characters", DISC_VERIFY_MAILBOX_MAX);
			return;
		}
		mailbox = xstrdup(mb->valuestring);
		cJSON_Delete(mb);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(body, "verify");
	if (cJSON_GetObjectItemCaseSensitive(body, "account") == NULL)
		cJSON_AddStringToObject(body, "account", VERIFY_ACCOUNT_ID);
	rec = account_json_create(body, &e);
	cJSON_Delete(body);
	if (rec == NULL) {
		free(mailbox);
		admin_http_invalid(ar, &e);
		return;
	}
	verify_start(ar, rec, mailbox, NULL);
	free(mailbox);
}
