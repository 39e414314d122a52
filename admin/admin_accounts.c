/*
 * /v1/account and /v1/accounts: register, update, show, list and delete
 * mail accounts. Bodies are validated whole (account_json.c) before
 * anything is written; GET never returns a secret.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_keys.h"
#include "tokenstore/tok_store.h"

#define PAGE_SIZE_DEFAULT	20
#define PAGE_SIZE_MAX		1000
#define UPDATE_RETRIES		3	/* compare-and-set attempts */

struct acct_ctx {
	char		*account;
	cJSON		*body;		/* PUT: kept for retries */
	long long	 page, size;	/* list */
};

static void
acct_ctx_free(void *arg)
{
	struct acct_ctx *c = arg;

	free(c->account);
	cJSON_Delete(c->body);
	free(c);
}

static struct acct_ctx *
acct_ctx_new(struct admin_req *ar)
{
	struct acct_ctx *c = xcalloc(1, sizeof(*c));

	ar->hctx = c;
	ar->hctx_free = acct_ctx_free;
	return c;
}

static void
reply_validation(struct admin_req *ar, const struct account_json_err *e)
{
	admin_http_error(ar, e->status, e->field, NULL, "%s", e->message);
}

static void
add_time(cJSON *o, const char *name, long long ms)
{
	char ts[32];

	if (ms <= 0) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	str_iso8601_format(ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, name, ts);
}

static cJSON *
dup_or_null(const cJSON *v)
{
	return v != NULL ? cJSON_Duplicate(v, true) : cJSON_CreateNull();
}

/* ---- POST /v1/account ---- */

static void
account_put_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct acct_ctx		*c = ar->hctx;
	cJSON			*o;

	ar->op = NULL;
	if (rc == -1 || rc == 0) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	log_info("event=account_%s account=%s", rc == 1 ? "create" : "replace",
	    c->account);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "account", c->account);
	cJSON_AddStringToObject(o, "state", rc == 1 ? "new" : "existing");
	admin_http_reply(ar, 200, o);
}

/* Stores a validated record (consumed). */
static void
account_save(struct admin_req *ar, cJSON *rec)
{
	struct acct_ctx	*c;
	char		*json;

	c = acct_ctx_new(ar);
	c->account = xstrdup(cJSON_GetObjectItemCaseSensitive(rec,
	    "account")->valuestring);
	json = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	ar->op = tok_account_put(ar->tok, c->account, json, account_put_cb, ar);
	cJSON_free(json);
}

void
admin_accounts_create(struct admin_req *ar)
{
	struct account_json_err	 e;
	cJSON			*body, *rec;
	bool			 verify;

	if ((body = admin_http_body(ar)) == NULL)
		return;
	rec = account_json_create(body, &e);
	verify = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "verify"));
	cJSON_Delete(body);
	if (rec == NULL) {
		reply_validation(ar, &e);
		return;
	}
	if (verify)
		admin_verify_then(ar, rec, account_save);	/* saves if ok */
	else
		account_save(ar, rec);
}

/* ---- PUT /v1/account/{account} ---- */

static void	account_update_read(struct admin_req *);

static void
account_update_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct acct_ctx		*c = ar->hctx;
	cJSON			*o;

	ar->op = NULL;
	switch (rc) {
	case 1:
		log_info("event=account_update account=%s", c->account);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "account", c->account);
		admin_http_reply(ar, 200, o);
		return;
	case 0:
		admin_http_error(ar, 404, NULL, NULL, "account not found");
		return;
	case 2:
		/* Changed by someone else since we read it. */
		if (++ar->retries < UPDATE_RETRIES) {
			account_update_read(ar);
			return;
		}
		admin_http_error(ar, 409, NULL, NULL, "the account is being "
		    "updated concurrently; try again");
		return;
	default:
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
}

static void
account_update_got(void *arg, int rc, long long total,
    const struct tok_account_info *ai, size_t n)
{
	struct admin_req	*ar = arg;
	struct acct_ctx		*c = ar->hctx;
	struct account_json_err	 e;
	cJSON			*rec;
	char			*json;

	(void)total;
	ar->op = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	if (rc == 0 || n != 1) {
		admin_http_error(ar, 404, NULL, NULL, "account not found");
		return;
	}
	if ((rec = account_json_update(ai->json, c->body, c->account,
	    &e)) == NULL) {
		reply_validation(ar, &e);
		return;
	}
	json = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	ar->op = tok_account_update(ar->tok, c->account, ai->json_text, json,
	    account_update_cb, ar);
	cJSON_free(json);
}

static void
account_update_read(struct admin_req *ar)
{
	struct acct_ctx *c = ar->hctx;

	ar->op = tok_account_info_get(ar->tok, c->account, account_update_got,
	    ar);
}

void
admin_accounts_update(struct admin_req *ar)
{
	struct acct_ctx	*c;
	cJSON		*body;

	if ((body = admin_http_body(ar)) == NULL)
		return;
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		admin_http_error(ar, 400, NULL, NULL, "the body must be a JSON "
		    "object");
		return;
	}
	if (!tok_key_account_is_valid(ar->params[0])) {
		cJSON_Delete(body);
		admin_http_error(ar, 404, NULL, NULL, "account not found");
		return;
	}
	c = acct_ctx_new(ar);
	c->account = xstrdup(ar->params[0]);
	c->body = body;
	account_update_read(ar);
}

/* ---- GET /v1/account/{account} ---- */

static void
account_get_cb(void *arg, int rc, long long total,
    const struct tok_account_info *ai, size_t n)
{
	struct admin_req	*ar = arg;
	cJSON			*o;

	(void)total;
	ar->op = NULL;
	if (rc == -1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	if (rc == 0 || n != 1) {
		admin_http_error(ar, 404, NULL, NULL, "account not found");
		return;
	}
	o = account_json_public(ai->json);
	cJSON_AddStringToObject(o, "state", ai->state);
	cJSON_AddItemToObject(o, "lastError", dup_or_null(ai->last_error));
	add_time(o, "created", ai->created_ms);
	add_time(o, "updated", ai->updated_ms);
	admin_http_reply(ar, 200, o);
}

void
admin_accounts_get(struct admin_req *ar)
{
	ar->op = tok_account_info_get(ar->tok, ar->params[0], account_get_cb,
	    ar);
}

/* ---- GET /v1/accounts ---- */

static void
account_list_cb(void *arg, int rc, long long total,
    const struct tok_account_info *ais, size_t n)
{
	struct admin_req	*ar = arg;
	struct acct_ctx		*c = ar->hctx;
	cJSON			*o, *a, *e;

	ar->op = NULL;
	if (rc != 1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "total", (double)total);
	cJSON_AddNumberToObject(o, "page", (double)c->page);
	cJSON_AddNumberToObject(o, "pages",
	    (double)((total + c->size - 1) / c->size));
	a = cJSON_AddArrayToObject(o, "accounts");
	for (size_t i = 0; i < n; i++) {
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "account", ais[i].account);
		cJSON_AddItemToObject(e, "name", dup_or_null(
		    cJSON_GetObjectItemCaseSensitive(ais[i].json, "name")));
		cJSON_AddItemToObject(e, "email", dup_or_null(
		    cJSON_GetObjectItemCaseSensitive(ais[i].json, "email")));
		cJSON_AddStringToObject(e, "state", ais[i].state);
		cJSON_AddItemToObject(e, "lastError",
		    dup_or_null(ais[i].last_error));
		cJSON_AddItemToArray(a, e);
	}
	admin_http_reply(ar, 200, o);
}

void
admin_accounts_list(struct admin_req *ar)
{
	struct acct_ctx *c = acct_ctx_new(ar);

	if (!admin_http_query_ll(ar, "page", 0, 1000000, 0, &c->page) ||
	    !admin_http_query_ll(ar, "pageSize", 1, PAGE_SIZE_MAX,
	    PAGE_SIZE_DEFAULT, &c->size))
		return;
	ar->op = tok_account_list(ar->tok, c->page * c->size, c->size,
	    account_list_cb, ar);
}

/* ---- DELETE /v1/account/{account} ---- */

static void
account_delete_cb(void *arg, int rc, const char *id, long long count)
{
	struct admin_req	*ar = arg;
	cJSON			*o = cJSON_CreateObject();

	(void)id;
	ar->op = NULL;
	cJSON_AddStringToObject(o, "account", ar->params[0]);
	if (rc == -1) {
		cJSON_AddFalseToObject(o, "deleted");
		admin_http_unavailable_extra(ar, tok_store_errstr(), o);
		return;
	}
	if (rc == 0) {
		cJSON_AddFalseToObject(o, "deleted");
		admin_http_error(ar, 404, NULL, o, "account not found");
		return;
	}
	log_info("event=account_delete account=%s tokens_revoked=%lld",
	    ar->params[0], count);
	cJSON_AddTrueToObject(o, "deleted");
	admin_http_reply(ar, 200, o);
}

void
admin_accounts_delete(struct admin_req *ar)
{
	ar->op = tok_account_delete(ar->tok, ar->params[0], account_delete_cb,
	    ar);
}
