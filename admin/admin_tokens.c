/*
 * /v1/tokens: create, list, show and revoke access tokens. A token is
 * shown once, in the reply to its creation; only its id (SHA-256) is
 * stored, and log lines show ids, never tokens.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/crypto.h>

#include "admin/admin_http.h"
#include "auth/token.h"
#include "common/cidr.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_keys.h"
#include "tokenstore/tok_store.h"

#define TOKEN_DESC_MAX		1024	/* characters */
#define TOKEN_META_MAX		4096	/* serialized bytes */
#define TOKEN_TTL_MAX		31536000LL
#define TOKEN_ADDRS_MAX		256

/* ---- POST /v1/tokens ---- */

struct token_new {
	char	 token[TOKEN_HEX_LEN + 1];	/* the secret: wiped */
	char	 id[TOKEN_HEX_LEN + 1];
	char	*account;
	char	*scopes;
	char	*description;
	char	*restrictions;
	char	*metadata;
};

static void
token_new_free(void *arg)
{
	struct token_new *tn = arg;

	OPENSSL_cleanse(tn->token, sizeof(tn->token));
	free(tn->account);
	free(tn->scopes);
	free(tn->description);
	cJSON_free(tn->restrictions);
	cJSON_free(tn->metadata);
	free(tn);
}

struct verr {
	char	field[128];
	char	msg[256];
};

__attribute__((format(printf, 3, 4)))
static bool
verr(struct verr *v, const char *field, const char *fmt, ...)
{
	va_list ap;

	snprintf(v->field, sizeof(v->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* Objects have a handful of known keys: past ADMIN_JSON_MAX_KEYS the body
 * is refused before the quadratic duplicate check below can be made to
 * spin on a large body full of distinct keys. */
#define ADMIN_JSON_MAX_KEYS	64

static bool
dup_key(const cJSON *obj, struct verr *v, const char *prefix)
{
	if (cJSON_GetArraySize(obj) > ADMIN_JSON_MAX_KEYS) {
		verr(v, *prefix ? prefix : "body", "%s has more than %d "
		    "fields", *prefix ? prefix : "the body",
		    ADMIN_JSON_MAX_KEYS);
		return true;
	}
	for (const cJSON *a = obj->child; a != NULL; a = a->next)
		for (const cJSON *b = a->next; b != NULL; b = b->next)
			if (strcmp(a->string, b->string) == 0) {
				verr(v, a->string, "%s%s is given twice",
				    prefix, a->string);
				return true;
			}
	return false;
}

/* restrictions -> normalised JSON text in *out_r (NULL: none). */
static bool
restrictions_norm(const cJSON *r, struct verr *v, char **out_r)
{
	const cJSON	*e, *a;
	cJSON		*o, *list;
	struct cidr	 c;
	char		 buf[64], field[64];
	int		 i = 0;

	*out_r = NULL;
	if (cJSON_IsNull(r))
		return true;
	if (!cJSON_IsObject(r))
		return verr(v, "restrictions", "restrictions must be an object");
	if (dup_key(r, v, "restrictions."))
		return false;
	cJSON_ArrayForEach(e, r)
		if (strcmp(e->string, "addresses") != 0) {
			snprintf(field, sizeof(field), "restrictions.%.40s",
			    e->string);
			return verr(v, field, "%s is not allowed", field);
		}
	a = cJSON_GetObjectItemCaseSensitive(r, "addresses");
	if (a == NULL || cJSON_IsNull(a))
		return true;
	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > TOKEN_ADDRS_MAX)
		return verr(v, "restrictions.addresses", "restrictions.addresses "
		    "must be an array of at most %d CIDR ranges",
		    TOKEN_ADDRS_MAX);
	list = cJSON_CreateArray();
	cJSON_ArrayForEach(e, a) {
		if (!cJSON_IsString(e) || cidr_parse(e->valuestring, &c) == -1) {
			cJSON_Delete(list);
			snprintf(field, sizeof(field), "restrictions.addresses.%d",
			    i);
			return verr(v, field, "%s must be an IPv4 or IPv6 address "
			    "or CIDR range (host bits clear)", field);
		}
		cidr_format(&c, buf, sizeof(buf));
		cJSON_AddItemToArray(list, cJSON_CreateString(buf));
		i++;
	}
	if (i == 0) {
		cJSON_Delete(list);
		return true;
	}
	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "addresses", list);
	*out_r = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return true;
}

static const char *const scope_names[] = { "imap-proxy", "smtp", "api", "*" };
#define NSCOPES	(sizeof(scope_names) / sizeof(scope_names[0]))

/* scopes -> comma list, each scope once, in the order given. */
static bool
scopes_norm(const cJSON *s, struct verr *v, char **out_r)
{
	const cJSON	*e;
	char		 buf[64] = "", field[32];
	unsigned	 seen = 0;
	int		 i = 0;

	if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 1)
		return verr(v, "scopes", "scopes must be a non-empty array of "
		    "\"imap-proxy\", \"smtp\", \"api\", \"*\"");
	cJSON_ArrayForEach(e, s) {
		size_t k;

		for (k = 0; k < NSCOPES; k++)
			if (cJSON_IsString(e) &&
			    strcmp(e->valuestring, scope_names[k]) == 0)
				break;
		if (k == NSCOPES) {
			snprintf(field, sizeof(field), "scopes.%d", i);
			return verr(v, field, "%s must be one of \"imap-proxy\", "
			    "\"smtp\", \"api\", \"*\"", field);
		}
		i++;
		if (seen & (1u << k))
			continue;
		seen |= 1u << k;
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
		    buf[0] != '\0' ? "," : "", scope_names[k]);
	}
	*out_r = xstrdup(buf);
	return true;
}

/* Validates the whole body into tn; false with v filled on error. */
static bool
token_body_check(const cJSON *body, struct token_new *tn, long long now,
    long long *expires_r, struct verr *v)
{
	const cJSON	*e, *account = NULL, *desc = NULL, *scopes = NULL;
	const cJSON	*restr = NULL, *meta = NULL, *expires = NULL, *ttl = NULL;
	long long	 exp;

	*expires_r = 0;
	if (!cJSON_IsObject(body))
		return verr(v, "", "the body must be a JSON object");
	if (dup_key(body, v, ""))
		return false;
	cJSON_ArrayForEach(e, body) {
		const char *k = e->string;

		if (strcmp(k, "account") == 0)
			account = e;
		else if (strcmp(k, "description") == 0)
			desc = e;
		else if (strcmp(k, "scopes") == 0)
			scopes = e;
		else if (strcmp(k, "restrictions") == 0)
			restr = e;
		else if (strcmp(k, "metadata") == 0)
			meta = e;
		else if (strcmp(k, "expires") == 0)
			expires = e;
		else if (strcmp(k, "ttl") == 0)
			ttl = e;
		else
			return verr(v, k, "%s is not allowed", k);
	}
	if (account == NULL)
		return verr(v, "account", "account is required");
	if (!cJSON_IsString(account) ||
	    !tok_key_account_is_valid(account->valuestring))
		return verr(v, "account", "account must be 1-%d characters of "
		    "A-Z a-z 0-9 . _ @ + -", TOK_ACCOUNT_ID_MAX);
	if (desc == NULL)
		return verr(v, "description", "description is required");
	if (!cJSON_IsString(desc) || str_utf8_len(desc->valuestring) < 1 ||
	    str_utf8_len(desc->valuestring) > TOKEN_DESC_MAX)
		return verr(v, "description", "description must be a string of "
		    "1-%d characters", TOKEN_DESC_MAX);
	if (scopes == NULL)
		return verr(v, "scopes", "scopes is required");
	if (!scopes_norm(scopes, v, &tn->scopes))
		return false;
	if (restr != NULL && !restrictions_norm(restr, v, &tn->restrictions))
		return false;
	if (meta != NULL && !cJSON_IsNull(meta)) {
		if (!cJSON_IsObject(meta))
			return verr(v, "metadata", "metadata must be an object");
		tn->metadata = cJSON_PrintUnformatted(meta);
		if (strlen(tn->metadata) > TOKEN_META_MAX)
			return verr(v, "metadata", "metadata must be at most %d "
			    "bytes serialized", TOKEN_META_MAX);
	}
	if (expires != NULL && ttl != NULL)
		return verr(v, "ttl", "give either expires or ttl, not both");
	if (expires != NULL && !cJSON_IsNull(expires)) {
		if (!cJSON_IsString(expires) ||
		    (exp = str_iso8601_parse(expires->valuestring)) < 0)
			return verr(v, "expires", "expires must be an ISO 8601 "
			    "date");
		if (exp <= now)
			return verr(v, "expires", "expires must be in the "
			    "future");
		*expires_r = exp;
	}
	if (ttl != NULL && !cJSON_IsNull(ttl)) {
		double d = cJSON_IsNumber(ttl) ? ttl->valuedouble : -1;

		if (d < 1 || d > (double)TOKEN_TTL_MAX || d != (double)(long long)d)
			return verr(v, "ttl", "ttl must be an integer 1-%lld "
			    "(seconds)", TOKEN_TTL_MAX);
		*expires_r = now + (long long)d * 1000;
	}
	tn->account = xstrdup(account->valuestring);
	tn->description = xstrdup(desc->valuestring);
	return true;
}

static void
token_create_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct token_new	*tn = ar->hctx;
	cJSON			*o;

	ar->op = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	if (rc == 0) {
		admin_http_error(ar, 404, "account", NULL, "account %s not found",
		    tn->account);
		return;
	}
	log_info("event=token_create account=%s id=%s scopes=%s", tn->account,
	    tn->id, tn->scopes);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "token", tn->token);
	cJSON_AddStringToObject(o, "id", tn->id);
	admin_http_reply(ar, 200, o);
}

void
admin_tokens_create(struct admin_req *ar)
{
	struct token_new	*tn;
	struct tok_token_info	 ti;
	struct verr		 v;
	cJSON			*body;
	long long		 now = str_now_ms(), expires;

	if ((body = admin_http_body(ar)) == NULL)
		return;
	tn = xcalloc(1, sizeof(*tn));
	ar->hctx = tn;
	ar->hctx_free = token_new_free;
	if (!token_body_check(body, tn, now, &expires, &v)) {
		cJSON_Delete(body);
		admin_http_error(ar, 400, v.field, NULL, "%s", v.msg);
		return;
	}
	cJSON_Delete(body);
	if (token_generate(tn->token, tn->id) == -1) {
		admin_http_error(ar, 500, NULL, NULL, "cannot generate a token "
		    "(RNG failure)");
		return;
	}
	memset(&ti, 0, sizeof(ti));
	memcpy(ti.id, tn->id, sizeof(ti.id));
	ti.account = tn->account;
	ti.scopes = tn->scopes;
	ti.description = tn->description;
	ti.restrictions = tn->restrictions;
	ti.metadata = tn->metadata;
	ti.created_ms = now;
	ti.expires_ms = expires;
	ar->op = tok_token_create(ar->tok, &ti, token_create_cb, ar);
}

/* ---- token objects ---- */

static void
add_time(cJSON *o, const char *name, long long ms)
{
	char ts[32];

	str_iso8601_format(ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, name, ts);
}

static cJSON *
token_object(const struct tok_token_info *ti)
{
	cJSON		*o = cJSON_CreateObject(), *a, *j;
	const char	*p = ti->scopes;

	cJSON_AddStringToObject(o, "id", ti->id);
	cJSON_AddStringToObject(o, "account", ti->account);
	cJSON_AddStringToObject(o, "description", ti->description);
	a = cJSON_AddArrayToObject(o, "scopes");
	while (*p != '\0') {
		size_t	n = strcspn(p, ",");
		char	*s = xstrndup(p, n);

		cJSON_AddItemToArray(a, cJSON_CreateString(s));
		free(s);
		p += n;
		if (*p == ',')
			p++;
	}
	if (ti->restrictions != NULL &&
	    (j = cJSON_Parse(ti->restrictions)) != NULL)
		cJSON_AddItemToObject(o, "restrictions", j);
	if (ti->metadata == NULL || (j = cJSON_Parse(ti->metadata)) == NULL)
		j = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "metadata", j);
	add_time(o, "created", ti->created_ms);
	if (ti->expires_ms > 0)
		add_time(o, "expires", ti->expires_ms);
	if (ti->used_ms > 0)
		add_time(o, "lastUsed", ti->used_ms);
	if (ti->used_ip != NULL && *ti->used_ip != '\0')
		cJSON_AddStringToObject(o, "ip", ti->used_ip);
	return o;
}

/* ---- GET /v1/tokens, GET /v1/tokens/account/{account} ---- */

struct page {
	long long	page;
	long long	size;
};

static void
page_free(void *arg)
{
	free(arg);
}

static void
token_list_cb(void *arg, int rc, const struct tok_token_info *tis, size_t n)
{
	struct admin_req	*ar = arg;
	struct page		*pg = ar->hctx;
	cJSON			*o, *a;
	long long		 first = pg->page * pg->size;

	ar->op = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	if (rc == 0) {
		admin_http_error(ar, 404, NULL, NULL, "account not found");
		return;
	}
	o = cJSON_CreateObject();
	a = cJSON_AddArrayToObject(o, "tokens");
	for (long long i = first; i < (long long)n && i < first + pg->size; i++)
		cJSON_AddItemToArray(a, token_object(&tis[i]));
	admin_http_add_page(o, (long long)n, pg->page, pg->size);
	admin_http_reply(ar, 200, o);
}

static void
token_list(struct admin_req *ar, const char *account)
{
	struct page *pg = xcalloc(1, sizeof(*pg));

	ar->hctx = pg;
	ar->hctx_free = page_free;
	if (!admin_http_query_page(ar, &pg->page, &pg->size))
		return;
	if (!tok_key_account_is_valid(account)) {
		admin_http_error(ar, 404, NULL, NULL, "account not found");
		return;
	}
	ar->op = tok_token_list(ar->tok, account, token_list_cb, ar);
}

void
admin_tokens_list(struct admin_req *ar)
{
	const char *account = admin_http_query(ar, "account");

	if (account == NULL || *account == '\0') {
		admin_http_error(ar, 400, "account", NULL, "account is required");
		return;
	}
	token_list(ar, account);
}

void
admin_tokens_list_account(struct admin_req *ar)
{
	token_list(ar, ar->params[0]);
}

/* ---- GET /v1/tokens/{id} ---- */

static void
token_get_cb(void *arg, int rc, const struct tok_token_info *tis, size_t n)
{
	struct admin_req *ar = arg;

	ar->op = NULL;
	if (!admin_http_found(ar, rc, n, tok_store_errstr(), "token not found"))
		return;
	admin_http_log_last(ar, tis[0].id);
	admin_http_reply(ar, 200, token_object(&tis[0]));
}

void
admin_tokens_get(struct admin_req *ar)
{
	/* Until it is known to be an id, the segment might be a token. */
	admin_http_log_last(ar, "<redacted>");
	ar->op = tok_token_info_get(ar->tok, ar->params[0], token_get_cb, ar);
}

/* ---- DELETE /v1/tokens/{token-or-id} ---- */

static void
token_delete_cb(void *arg, int rc, const char *id, long long count)
{
	struct admin_req	*ar = arg;
	cJSON			*o = cJSON_CreateObject();

	(void)count;
	ar->op = NULL;
	if (!admin_http_deleted(ar, rc, o, tok_store_errstr(),
	    "token not found"))
		return;
	admin_http_log_last(ar, id);
	log_info("event=token_revoke id=%s", id);
	admin_http_reply(ar, 200, o);
}

void
admin_tokens_delete(struct admin_req *ar)
{
	admin_http_log_last(ar, "<redacted>");
	ar->op = tok_token_revoke(ar->tok, ar->params[0], token_delete_cb, ar);
}

/* ---- DELETE /v1/tokens/account/{account} ---- */

static void
token_delete_account_cb(void *arg, int rc, const char *id, long long count)
{
	struct admin_req	*ar = arg;
	cJSON			*o = cJSON_CreateObject();

	(void)id;
	ar->op = NULL;
	if (!admin_http_deleted(ar, rc, o, tok_store_errstr(),
	    "account not found"))
		return;
	log_info("event=token_revoke account=%s count=%lld", ar->params[0],
	    count);
	cJSON_AddNumberToObject(o, "count", (double)count);
	admin_http_reply(ar, 200, o);
}

void
admin_tokens_delete_account(struct admin_req *ar)
{
	ar->op = tok_token_revoke_account(ar->tok, ar->params[0],
	    token_delete_account_cb, ar);
}
