/*
 * GET/POST /v1/settings: global settings kept in Redis as a hash of JSON
 * values. Only known keys are accepted; GET fills in defaults and masks
 * the password of proxyUrl, which a write of the masked form keeps.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "common/cfg.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_store.h"

#define SETTINGS_LOGS_MAX	4096	/* serialized "logs" object */

enum setting_type {
	SET_BOOL,
	SET_URL_OR_NULL,
	SET_OBJECT,
};

static const struct setting {
	const char		*name;
	enum setting_type	 type;
} settings[] = {
	{ "ignoreMailCertErrors",	SET_BOOL },
	{ "proxyUrl",			SET_URL_OR_NULL },
	{ "logs",			SET_OBJECT },
	{ "revokeClosesSessions",	SET_BOOL },
};
#define NSETTINGS	(sizeof(settings) / sizeof(settings[0]))

static const struct setting *
setting_find(const char *name)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

static cJSON *
setting_default(const struct admin_req *ar, const struct setting *s)
{
	if (strcmp(s->name, "revokeClosesSessions") == 0)
		return cJSON_CreateBool(ar->cfg->revoke_closes_sessions);
	switch (s->type) {
	case SET_BOOL:
		return cJSON_CreateFalse();
	case SET_OBJECT:
		return cJSON_CreateObject();
	case SET_URL_OR_NULL:
		break;
	}
	return cJSON_CreateNull();
}

static bool
url_ok(const char *s)
{
	if (strlen(s) > 1024 || strpbrk(s, " \t\r\n") != NULL)
		return false;
	return account_json_proxy_scheme_ok(s);
}

/* NULL if v is a valid value for s, else the error message. */
static const char *
setting_check(const struct setting *s, const cJSON *v)
{
	char	*txt;
	size_t	 len;

	switch (s->type) {
	case SET_BOOL:
		return cJSON_IsBool(v) ? NULL : "must be a boolean";
	case SET_URL_OR_NULL:
		if (cJSON_IsNull(v) || (cJSON_IsString(v) &&
		    url_ok(v->valuestring)))
			return NULL;
		return "must be a socks://, socks4://, socks5://, http:// or "
		    "https:// URL, or null";
	case SET_OBJECT:
		if (!cJSON_IsObject(v))
			return "must be an object";
		txt = cJSON_PrintUnformatted(v);
		len = txt != NULL ? strlen(txt) : 0;
		cJSON_free(txt);
		return len <= SETTINGS_LOGS_MAX ? NULL :
		    "must be at most 4096 bytes serialized";
	}
	return "is not valid";
}

/* GET: all settings, or only those named in the query. */
static void
settings_get_cb(void *arg, int rc, const cJSON *stored)
{
	struct admin_req	*ar = arg;
	struct evkeyval		*kv;
	cJSON			*o, *v;
	bool			 some = false;

	ar->treq = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	o = cJSON_CreateObject();
	if (ar->query_parsed)
		TAILQ_FOREACH(kv, &ar->query, next)
			some = true;
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (some && admin_http_query(ar, s->name) == NULL)
			continue;
		v = cJSON_GetObjectItemCaseSensitive(stored, s->name);
		if (v != NULL && setting_check(s, v) == NULL &&
		    s->type == SET_URL_OR_NULL && cJSON_IsString(v)) {
			char *m = account_json_proxy_mask(v->valuestring);

			v = cJSON_CreateString(m);
			free(m);
		} else if (v != NULL && setting_check(s, v) == NULL)
			v = cJSON_Duplicate(v, true);
		else
			v = setting_default(ar, s);
		cJSON_AddItemToObject(o, s->name, v);
	}
	admin_http_reply(ar, 200, o);
}

void
admin_settings_get(struct admin_req *ar)
{
	struct evkeyval *kv;

	if (ar->query_parsed)
		TAILQ_FOREACH(kv, &ar->query, next)
			if (setting_find(kv->key) == NULL) {
				admin_http_error(ar, 400, kv->key, NULL,
				    "unknown setting %s", kv->key);
				return;
			}
	ar->treq = tok_settings_get(ar->tok, settings_get_cb, ar);
}

struct settings_set_ctx {
	cJSON	*body;
	cJSON	*updated;
	char	*values[TOK_SETTINGS_SET_MAX];
	size_t	 n;
};

static void
settings_ctx_free(void *arg)
{
	struct settings_set_ctx *c = arg;

	for (size_t i = 0; i < c->n; i++)
		cJSON_free(c->values[i]);
	cJSON_Delete(c->body);
	cJSON_Delete(c->updated);
	free(c);
}

static void
settings_set_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct settings_set_ctx	*c = ar->hctx;
	cJSON			*o;

	ar->op = NULL;
	if (rc != 1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "updated", c->updated);
	c->updated = NULL;
	admin_http_reply(ar, 200, o);
}

/* Writes c->body, validated already. */
static void
settings_write(struct admin_req *ar)
{
	struct settings_set_ctx	*c = ar->hctx;
	const char		*keys[TOK_SETTINGS_SET_MAX];
	const cJSON		*e;

	c->updated = cJSON_CreateArray();
	cJSON_ArrayForEach(e, c->body) {
		keys[c->n] = e->string;
		c->values[c->n++] = cJSON_PrintUnformatted(e);
		cJSON_AddItemToArray(c->updated, cJSON_CreateString(e->string));
	}
	ar->op = tok_settings_set(ar->tok, keys, (const char *const *)c->values,
	    c->n, settings_set_cb, ar);
}

/* The stored settings, read before a write that gives proxyUrl: the
 * masked URL from GET keeps the stored one (GET-modify-POST scripts). */
static void
settings_stored_cb(void *arg, int rc, const cJSON *stored)
{
	struct admin_req	*ar = arg;
	struct settings_set_ctx	*c = ar->hctx;
	cJSON			*v, *old;

	ar->treq = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	v = cJSON_GetObjectItemCaseSensitive(c->body, "proxyUrl");
	old = cJSON_GetObjectItemCaseSensitive(stored, "proxyUrl");
	if (v != NULL && cJSON_IsString(v) && old != NULL &&
	    cJSON_IsString(old) && url_ok(old->valuestring) &&
	    account_json_proxy_is_masked(v->valuestring, old->valuestring))
		cJSON_ReplaceItemInObjectCaseSensitive(c->body, "proxyUrl",
		    cJSON_CreateString(old->valuestring));
	settings_write(ar);
}

void
admin_settings_set(struct admin_req *ar)
{
	struct settings_set_ctx	*c;
	const struct setting	*s;
	const cJSON		*e, *proxy;
	const char		*why;
	cJSON			*body;

	if ((body = admin_http_body(ar)) == NULL)
		return;
	if (!cJSON_IsObject(body) || body->child == NULL) {
		cJSON_Delete(body);
		admin_http_error(ar, 400, NULL, NULL, "the body must be a "
		    "non-empty JSON object");
		return;
	}
	/* Validate everything before writing anything. */
	cJSON_ArrayForEach(e, body) {
		if ((s = setting_find(e->string)) == NULL) {
			admin_http_error(ar, 400, e->string, NULL,
			    "unknown setting %s", e->string);
			cJSON_Delete(body);
			return;
		}
		for (const cJSON *d = e->next; d != NULL; d = d->next)
			if (strcmp(d->string, e->string) == 0) {
				admin_http_error(ar, 400, e->string, NULL,
				    "%s is given twice", e->string);
				cJSON_Delete(body);
				return;
			}
		if ((why = setting_check(s, e)) != NULL) {
			admin_http_error(ar, 400, e->string, NULL, "%s %s",
			    e->string, why);
			cJSON_Delete(body);
			return;
		}
	}
	c = xcalloc(1, sizeof(*c));
	ar->hctx = c;
	ar->hctx_free = settings_ctx_free;
	c->body = body;
	proxy = cJSON_GetObjectItemCaseSensitive(body, "proxyUrl");
	if (proxy != NULL && cJSON_IsString(proxy))
		ar->treq = tok_settings_get(ar->tok, settings_stored_cb, ar);
	else
		settings_write(ar);
}
