/*
 * /v1/oauth2: OAuth2 applications (client id and secret at a provider)
 * that accounts name in oauth2.provider. Bodies are validated whole before
 * anything is written; the client secret is sealed with AAD
 * "<app id>\nclientSecret" and never returned. A PUT that changes where
 * the secret goes (provider, tokenUrl, tenant) must give it again.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "admin/admin_rec.h"
#include "auth/auth_oauth.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_keys.h"
#include "tokenstore/tok_oauth.h"

#define APP_NAME_MAX		256
#define APP_CLIENT_ID_MAX	1024
#define APP_SECRET_MAX		4096
#define APP_URL_MAX		1024
#define APP_SCOPES_MAX		50
#define APP_SCOPE_MAX		256
#define APP_TENANT_MAX		128
#define APP_NOTFOUND		"OAuth2 application not found"

/* Stored key order; "id" first. */
static const char *const app_fields[] = {
	"id", "name", "provider", "clientId", "clientSecret", "tokenUrl",
	"scopes", "tenant", "mechanism", NULL,
};

__attribute__((format(printf, 3, 4)))
static void *
fail(struct account_json_err *e, const char *field, const char *fmt, ...)
{
	va_list ap;

	e->status = 400;
	snprintf(e->field, sizeof(e->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return NULL;
}

static bool
printable(const char *s, bool blanks)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f ||
		    (!blanks && *s == ' '))
			return false;
	return true;
}

static bool
is_text(const cJSON *v, size_t min, size_t max, bool blanks)
{
	size_t n;

	if (!cJSON_IsString(v) || v->valuestring == NULL)
		return false;
	n = strlen(v->valuestring);
	return n >= min && n <= max && printable(v->valuestring, blanks);
}

/* https://, or http:// to a loopback host (tests, local gateways): a
 * refresh token must not cross a network in the clear. */
static bool
token_url_ok(const char *s)
{
	static const char *const loop[] = {
		"http://127.0.0.1", "http://localhost", "http://[::1]",
	};

	if (strlen(s) > APP_URL_MAX || !printable(s, false))
		return false;
	if (strncasecmp(s, "https://", 8) == 0)
		return s[8] != '\0' && s[8] != '/';
	for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++) {
		size_t n = strlen(loop[i]);

		if (strncasecmp(s, loop[i], n) == 0 &&
		    (s[n] == ':' || s[n] == '/' || s[n] == '\0'))
			return true;
	}
	return false;
}

static bool
tenant_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
	    "xyz0123456789._-");

	return n > 0 && n <= APP_TENANT_MAX && s[n] == '\0';
}

static bool
known_field(const char *k)
{
	for (size_t i = 0; app_fields[i] != NULL; i++)
		if (strcmp(app_fields[i], k) == 0)
			return true;
	return false;
}

/*
 * Validates the effective application (in: fields as given, for a PUT
 * merged over the stored ones) and returns the record to store in a fixed
 * key order. A plaintext clientSecret in `in` is sealed; kept_secret, if
 * not NULL, is a sealed one carried over from the stored record.
 */
static cJSON *
app_norm(const cJSON *in, const char *id, const char *kept_secret,
    struct account_json_err *e)
{
	const cJSON	*prov, *cid, *sec, *url, *sc, *ten, *mech, *name, *v;
	const char	*p;
	char		 field[64], aad[512], *sealed;
	cJSON		*out, *arr;
	int		 i = 0;

	for (v = in->child; v != NULL; v = v->next) {
		if (!known_field(v->string))
			return fail(e, v->string, "%s is not allowed",
			    v->string);
		for (const cJSON *d = v->next; d != NULL; d = d->next)
			if (strcmp(d->string, v->string) == 0)
				return fail(e, v->string, "%s is given twice",
				    v->string);
	}
	prov = cJSON_GetObjectItemCaseSensitive(in, "provider");
	if (prov == NULL)
		return fail(e, "provider", "provider is required");
	if (!cJSON_IsString(prov) || (strcmp(prov->valuestring, "gmail") != 0 &&
	    strcmp(prov->valuestring, "outlook") != 0 &&
	    strcmp(prov->valuestring, "custom") != 0))
		return fail(e, "provider", "provider must be one of gmail, "
		    "outlook, custom");
	p = prov->valuestring;
	name = cJSON_GetObjectItemCaseSensitive(in, "name");
	if (name != NULL && !is_text(name, 0, APP_NAME_MAX, true))
		return fail(e, "name", "name must be a string of at most %d "
		    "characters", APP_NAME_MAX);
	cid = cJSON_GetObjectItemCaseSensitive(in, "clientId");
	if (cid == NULL)
		return fail(e, "clientId", "clientId is required");
	if (!is_text(cid, 1, APP_CLIENT_ID_MAX, false))
		return fail(e, "clientId", "clientId must be a string of 1-%d "
		    "characters without blanks", APP_CLIENT_ID_MAX);
	sec = cJSON_GetObjectItemCaseSensitive(in, "clientSecret");
	if (sec != NULL && !is_text(sec, 1, APP_SECRET_MAX, true))
		return fail(e, "clientSecret", "clientSecret must be a "
		    "string of 1-%d characters", APP_SECRET_MAX);
	url = cJSON_GetObjectItemCaseSensitive(in, "tokenUrl");
	if (strcmp(p, "custom") == 0) {
		if (url == NULL)
			return fail(e, "tokenUrl", "tokenUrl is required for a "
			    "custom provider");
		if (!cJSON_IsString(url) || !token_url_ok(url->valuestring))
			return fail(e, "tokenUrl", "tokenUrl must be an "
			    "https:// URL (http:// only to a loopback "
			    "address)");
	} else if (url != NULL)
		return fail(e, "tokenUrl", "tokenUrl is only for a custom "
		    "provider (%s has a preset)", p);
	sc = cJSON_GetObjectItemCaseSensitive(in, "scopes");
	if (sc != NULL) {
		if (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) < 1 ||
		    cJSON_GetArraySize(sc) > APP_SCOPES_MAX)
			return fail(e, "scopes", "scopes must be an array of "
			    "1-%d strings", APP_SCOPES_MAX);
		cJSON_ArrayForEach(v, sc) {
			snprintf(field, sizeof(field), "scopes.%d", i++);
			if (!is_text(v, 1, APP_SCOPE_MAX, false))
				return fail(e, field, "%s must be a string of "
				    "1-%d characters without blanks", field,
				    APP_SCOPE_MAX);
		}
	}
	ten = cJSON_GetObjectItemCaseSensitive(in, "tenant");
	if (ten != NULL) {
		if (strcmp(p, "outlook") != 0)
			return fail(e, "tenant", "tenant is only for the "
			    "outlook provider");
		if (!cJSON_IsString(ten) || !tenant_ok(ten->valuestring))
			return fail(e, "tenant", "tenant must be a tenant id "
			    "or domain (letters, digits, '.', '_', '-')");
	}
	mech = cJSON_GetObjectItemCaseSensitive(in, "mechanism");
	if (mech != NULL && (!cJSON_IsString(mech) ||
	    (strcasecmp(mech->valuestring, "XOAUTH2") != 0 &&
	    strcasecmp(mech->valuestring, "OAUTHBEARER") != 0)))
		return fail(e, "mechanism", "mechanism must be XOAUTH2 or "
		    "OAUTHBEARER");

	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "id", id);
	if (name != NULL)
		cJSON_AddStringToObject(out, "name", name->valuestring);
	cJSON_AddStringToObject(out, "provider", p);
	cJSON_AddStringToObject(out, "clientId", cid->valuestring);
	if (sec != NULL) {
		snprintf(aad, sizeof(aad), "%s\nclientSecret", id);
		if ((sealed = crypto_seal_str(sec->valuestring, aad)) == NULL) {
			cJSON_Delete(out);
			fail(e, "clientSecret", "cannot encrypt clientSecret "
			    "(no secret key loaded)");
			e->status = 500;
			return NULL;
		}
		cJSON_AddStringToObject(out, "clientSecret", sealed);
		free(sealed);
	} else if (kept_secret != NULL)
		cJSON_AddStringToObject(out, "clientSecret", kept_secret);
	if (url != NULL)
		cJSON_AddStringToObject(out, "tokenUrl", url->valuestring);
	if (sc != NULL) {
		arr = cJSON_AddArrayToObject(out, "scopes");
		cJSON_ArrayForEach(v, sc)
			cJSON_AddItemToArray(arr,
			    cJSON_CreateString(v->valuestring));
	}
	if (ten != NULL)
		cJSON_AddStringToObject(out, "tenant", ten->valuestring);
	if (mech != NULL)
		cJSON_AddStringToObject(out, "mechanism",
		    strcasecmp(mech->valuestring, "XOAUTH2") == 0 ? "XOAUTH2" :
		    "OAUTHBEARER");
	return out;
}

/*
 * true if the effective application in sends its client secret to another
 * token endpoint than stored did: provider, tokenUrl or tenant (it is part
 * of the outlook URL) differ. A field on one side only is a change.
 */
static bool
app_moved(const cJSON *stored, const cJSON *in)
{
	static const char *const keys[] = { "provider", "tokenUrl", "tenant" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(stored, keys[i]);
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(in, keys[i]);

		if (a == NULL && b == NULL)
			continue;
		if (!cJSON_IsString(a) || !cJSON_IsString(b) ||
		    strcmp(a->valuestring, b->valuestring) != 0)
			return true;
	}
	return false;
}

cJSON *
admin_oauth2_app_json(const cJSON *body, const cJSON *stored, const char *id,
    struct account_json_err *e)
{
	const cJSON	*v, *bid;
	const char	*kept = NULL;
	cJSON		*in, *out;

	memset(e, 0, sizeof(*e));
	if (!cJSON_IsObject(body))
		return fail(e, "", "the body must be a JSON object");
	bid = cJSON_GetObjectItemCaseSensitive(body, "id");
	if (bid != NULL && (!cJSON_IsString(bid) ||
	    !tok_key_account_is_valid(bid->valuestring)))
		return fail(e, "id", "id must be 1-%d characters of "
		    "[A-Za-z0-9._@+-]", TOK_ACCOUNT_ID_MAX);
	if (bid != NULL && id != NULL && strcmp(bid->valuestring, id) != 0)
		return fail(e, "id", "id does not match the path (an "
		    "application id cannot be changed)");
	if (id == NULL && bid == NULL)
		return fail(e, "id", "id is required");
	if (id == NULL)
		id = bid->valuestring;
	/* PUT: start from the stored record, then apply the body (null
	 * removes a field; an omitted clientSecret keeps the stored one). */
	in = stored != NULL ? cJSON_Duplicate(stored, true) :
	    cJSON_CreateObject();
	if (stored != NULL)
		cJSON_DeleteItemFromObjectCaseSensitive(in, "clientSecret");
	for (v = body->child; v != NULL; v = v->next) {
		if (v->string == NULL || strcmp(v->string, "id") == 0)
			continue;
		if (!known_field(v->string)) {
			cJSON_Delete(in);
			return fail(e, v->string, "%s is not allowed",
			    v->string);
		}
		cJSON_DeleteItemFromObjectCaseSensitive(in, v->string);
		if (!cJSON_IsNull(v))
			cJSON_AddItemToObject(in, v->string,
			    cJSON_Duplicate(v, true));
	}
	cJSON_DeleteItemFromObjectCaseSensitive(in, "id");
	if (stored != NULL && cJSON_GetObjectItemCaseSensitive(body,
	    "clientSecret") == NULL) {
		v = cJSON_GetObjectItemCaseSensitive(stored, "clientSecret");
		kept = cJSON_IsString(v) ? v->valuestring : NULL;
	}
	for (v = body->child; v != NULL; v = v->next)
		for (const cJSON *d = v->next; d != NULL; d = d->next)
			if (v->string != NULL && d->string != NULL &&
			    strcmp(d->string, v->string) == 0) {
				cJSON_Delete(in);
				return fail(e, v->string, "%s is given twice",
				    v->string);
			}
	out = app_norm(in, id, kept, e);
	/* Checked on the valid result, so that a bad tokenUrl is reported
	 * as such. A stored secret never follows a new endpoint on the word
	 * of an update that does not know it. */
	if (out != NULL && kept != NULL && app_moved(stored, in)) {
		cJSON_Delete(out);
		out = fail(e, "clientSecret", "clientSecret is required when "
		    "provider, tokenUrl or tenant change");
	}
	cJSON_Delete(in);
	return out;
}

/* What GET shows: no secret, whether one is set. */
static cJSON *
app_public(const struct tok_oauth_app *a)
{
	cJSON *o = cJSON_Duplicate(a->json, true);

	if (o == NULL)
		o = cJSON_CreateObject();
	cJSON_DeleteItemFromObjectCaseSensitive(o, "clientSecret");
	cJSON_AddBoolToObject(o, "clientSecretSet",
	    cJSON_GetObjectItemCaseSensitive(a->json, "clientSecret") != NULL);
	admin_rec_add_time(o, "created", a->created_ms);
	admin_rec_add_time(o, "updated", a->updated_ms);
	return o;
}

static cJSON *
id_obj(const char *id)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", id);
	return o;
}

/* ---- POST /v1/oauth2 ---- */

static void
app_create_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct admin_rec	*c = ar->hctx;
	cJSON			*o;

	ar->treq = NULL;
	if (rc < 0) {
		admin_http_unavailable(ar, tok_oauth_errstr());
		return;
	}
	if (rc == 0) {
		admin_http_error(ar, 409, "id", NULL, "an OAuth2 application "
		    "with this id exists (PUT /v1/oauth2/{app} changes it)");
		return;
	}
	log_info("event=oauth2_app_create app=%s", c->id);
	o = id_obj(c->id);
	cJSON_AddTrueToObject(o, "created");
	admin_http_reply(ar, 200, o);
}

void
admin_oauth2_create(struct admin_req *ar)
{
	struct account_json_err	 e;
	struct admin_rec	*c;
	cJSON			*body, *rec;
	char			*json, gen[17];
	uint8_t			 rnd[8];

	if ((body = admin_http_body(ar)) == NULL)
		return;
	/* No id given: a random one, as EmailEngine does. */
	if (cJSON_IsObject(body) && cJSON_GetObjectItemCaseSensitive(body,
	    "id") == NULL) {
		if (crypto_random(rnd, sizeof(rnd)) == -1) {
			cJSON_Delete(body);
			admin_http_error(ar, 500, NULL, NULL,
			    "no random bytes");
			return;
		}
		str_hex_encode(rnd, sizeof(rnd), gen);
		cJSON_AddStringToObject(body, "id", gen);
	}
	rec = admin_oauth2_app_json(body, NULL, NULL, &e);
	cJSON_Delete(body);
	if (rec == NULL) {
		admin_http_invalid(ar, &e);
		return;
	}
	c = admin_rec_new(ar);
	c->id = xstrdup(cJSON_GetObjectItemCaseSensitive(rec, "id")->
	    valuestring);
	json = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	ar->treq = tok_oauth_app_create(ar->tok, c->id, json, app_create_cb,
	    ar);
	cJSON_free(json);
}

/* ---- GET /v1/oauth2 ---- */

static void
app_list_cb(void *arg, int rc, const struct tok_oauth_app *apps, size_t n,
    long long total)
{
	struct admin_req	*ar = arg;
	struct admin_rec	*c = ar->hctx;
	cJSON			*o, *a;

	ar->treq = NULL;
	if (rc != 1) {
		admin_http_unavailable(ar, tok_oauth_errstr());
		return;
	}
	o = cJSON_CreateObject();
	admin_http_add_page(o, total, c->page, c->size);
	a = cJSON_AddArrayToObject(o, "apps");
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, app_public(&apps[i]));
	admin_http_reply(ar, 200, o);
}

void
admin_oauth2_list(struct admin_req *ar)
{
	struct admin_rec *c = admin_rec_new(ar);

	if (!admin_http_query_page(ar, &c->page, &c->size))
		return;
	ar->treq = tok_oauth_app_list(ar->tok, c->page * c->size, c->size,
	    app_list_cb, ar);
}

/* ---- GET /v1/oauth2/{app} ---- */

static void
app_get_cb(void *arg, int rc, const struct tok_oauth_app *apps, size_t n,
    long long total)
{
	struct admin_req *ar = arg;

	(void)total;
	ar->treq = NULL;
	if (!admin_http_found(ar, rc, n, tok_oauth_errstr(), APP_NOTFOUND))
		return;
	admin_http_reply(ar, 200, app_public(&apps[0]));
}

void
admin_oauth2_get(struct admin_req *ar)
{
	ar->treq = tok_oauth_app_get(ar->tok, ar->params[0], app_get_cb, ar);
}

/* ---- PUT /v1/oauth2/{app} ---- */

static void	app_update_read(struct admin_req *);

static const struct admin_rec_kind app_kind = {
	.notfound = APP_NOTFOUND,
	.busy = "the application is being updated concurrently; try again",
	.errstr = tok_oauth_errstr,
	.read = app_update_read,
};

static void
app_update_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct admin_rec	*c = ar->hctx;
	cJSON			*o;

	ar->treq = NULL;
	if (!admin_rec_updated(ar, &app_kind, rc))
		return;
	log_info("event=oauth2_app_update app=%s", c->id);
	o = id_obj(c->id);
	cJSON_AddTrueToObject(o, "updated");
	admin_http_reply(ar, 200, o);
}

static void
app_update_got(void *arg, int rc, const struct tok_oauth_app *apps,
    size_t n, long long total)
{
	struct admin_req	*ar = arg;
	struct admin_rec	*c = ar->hctx;
	struct account_json_err	 e;
	char			*json;

	(void)total;
	ar->treq = NULL;
	if (!admin_http_found(ar, rc, n, tok_oauth_errstr(), APP_NOTFOUND))
		return;
	if ((json = admin_rec_text(ar, admin_oauth2_app_json(c->body,
	    apps[0].json, c->id, &e), &e)) == NULL)
		return;
	ar->treq = tok_oauth_app_update(ar->tok, c->id, apps[0].json_text,
	    json, app_update_cb, ar);
	cJSON_free(json);
}

static void
app_update_read(struct admin_req *ar)
{
	struct admin_rec *c = ar->hctx;

	ar->treq = tok_oauth_app_get(ar->tok, c->id, app_update_got, ar);
}

void
admin_oauth2_update(struct admin_req *ar)
{
	admin_rec_update(ar, &app_kind);
}

/* ---- DELETE /v1/oauth2/{app} ---- */

static void
app_delete_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	cJSON			*o = id_obj(ar->params[0]);

	ar->treq = NULL;
	if (!admin_http_deleted(ar, rc, o, tok_oauth_errstr(), APP_NOTFOUND))
		return;
	log_info("event=oauth2_app_delete app=%s", ar->params[0]);
	admin_http_reply(ar, 200, o);
}

void
admin_oauth2_delete(struct admin_req *ar)
{
	ar->treq = tok_oauth_app_delete(ar->tok, ar->params[0], app_delete_cb,
	    ar);
}
