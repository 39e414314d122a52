/*
 * GET /v1/autoconfig?email=ADDRESS: IMAP and SMTP settings for an address
 * (discover/disc_autoconfig.c), in EmailEngine's shape. Also owns the
 * admin's discover environment (resolvers, TLS contexts, curl), created
 * on the first request that needs it.
 */
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "admin/admin_http.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "discover/disc.h"
#include "discover/disc_autoconfig.h"
#include "discover/disc_env.h"

struct disc_env *
admin_disc_env(struct admin_req *ar, char *err, size_t errlen)
{
	struct admin *a = ar->admin;

	if (a->disc == NULL &&
	    (a->disc = disc_env_new(a->base, a->cfg, err, errlen)) == NULL)
		log_error("event=discover_setup reason=\"%s\"", err);
	return a->disc;
}

static cJSON *
server_json(bool has, const struct disc_server *s)
{
	cJSON *o;

	if (!has)
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "host", s->host);
	cJSON_AddNumberToObject(o, "port", s->port);
	cJSON_AddBoolToObject(o, "secure", s->secure);
	return o;
}

static void
ac_ctx_free(void *arg)
{
	struct disc_ac *ac = arg;

	disc_ac_free(&ac);
}

static void
ac_done(void *arg, const struct disc_ac_result *r)
{
	struct admin_req	*ar = arg;
	cJSON			*o;

	if (!r->s.has_imap && !r->s.has_smtp) {
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "tried", cJSON_Duplicate(r->tried,
		    true));
		/* Replying frees ar, and with it this job: last call. */
		admin_http_error(ar, 404, NULL, o, "no IMAP or SMTP settings "
		    "found (tried: built-in providers, MX, autoconfig "
		    "documents, SRV records, common host names)");
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "imap", server_json(r->s.has_imap,
	    &r->s.imap));
	cJSON_AddItemToObject(o, "smtp", server_json(r->s.has_smtp,
	    &r->s.smtp));
	cJSON_AddStringToObject(o, "source", r->source);
	admin_http_reply(ar, 200, o);
}

void
admin_autoconfig_get(struct admin_req *ar)
{
	const char	*email = admin_http_query(ar, "email");
	char		 domain[DISC_HOST_MAX + 1], err[256];
	struct disc_env	*env;

	if (email == NULL || *email == '\0') {
		admin_http_error(ar, 400, "email", NULL, "email is required "
		    "(GET /v1/autoconfig?email=ADDRESS)");
		return;
	}
	if (!disc_email_domain(email, domain, sizeof(domain))) {
		admin_http_error(ar, 400, "email", NULL, "email must be an email "
		    "address with a domain name (write + as %%2B)");
		return;
	}
	if ((env = admin_disc_env(ar, err, sizeof(err))) == NULL) {
		admin_http_error(ar, 500, NULL, NULL, "autoconfig unavailable: "
		    "%s", err);
		return;
	}
	ar->hctx_free = ac_ctx_free;
	ar->hctx = disc_ac_new(env, email, domain, ac_done, ar);
}
