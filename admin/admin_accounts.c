/*
 * /v1/account and /v1/accounts: register, update, show, list and delete
 * mail accounts. Bodies are validated whole (account_json.c) before
 * anything is written; GET never returns a secret.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <cJSON.h>

#include "admin/account_json.h"
#include "admin/admin_http.h"
#include "admin/admin_rec.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_store.h"

#define ACCOUNT_NOTFOUND	"account not found"

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
	struct admin_rec	*c = ar->hctx;
	cJSON			*o;

	ar->op = NULL;
	if (rc == -1 || rc == 0) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	log_info("event=account_%s account=%s", rc == 1 ? "create" : "replace",
	    c->id);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "account", c->id);
	cJSON_AddStringToObject(o, "state", rc == 1 ? "new" : "existing");
	admin_http_reply(ar, 200, o);
}

/* Stores a validated record (consumed). */
static void
account_save(struct admin_req *ar, cJSON *rec)
{
	struct admin_rec	*c;
	char			*json;

	c = admin_rec_new(ar);
	c->id = xstrdup(cJSON_GetObjectItemCaseSensitive(rec,
	    "account")->valuestring);
	json = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	ar->op = tok_account_put(ar->tok, c->id, json, account_put_cb, ar);
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
		admin_http_invalid(ar, &e);
		return;
	}
	if (verify)
		admin_verify_then(ar, rec, account_save);	/* saves if ok */
	else
		account_save(ar, rec);
}

/* ---- PUT /v1/account/{account} ---- */

static void	account_update_read(struct admin_req *);

static const struct admin_rec_kind account_kind = {
	.notfound = ACCOUNT_NOTFOUND,
	.busy = "the account is being updated concurrently; try again",
	.errstr = tok_store_errstr,
	.read = account_update_read,
};

static void
account_update_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	struct admin_rec	*c = ar->hctx;
	cJSON			*o;

	ar->op = NULL;
	if (!admin_rec_updated(ar, &account_kind, rc))
		return;
	log_info("event=account_update account=%s", c->id);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "account", c->id);
	admin_http_reply(ar, 200, o);
}

static void
account_update_got(void *arg, int rc, long long total,
    const struct tok_account_info *ai, size_t n)
{
	struct admin_req	*ar = arg;
	struct admin_rec	*c = ar->hctx;
	struct account_json_err	 e;
	char			*json;

	(void)total;
	ar->op = NULL;
	if (!admin_http_found(ar, rc, n, tok_store_errstr(), ACCOUNT_NOTFOUND))
		return;
	if ((json = admin_rec_text(ar, account_json_update(ai->json, c->body,
	    c->id, &e), &e)) == NULL)
		return;
	ar->op = tok_account_update(ar->tok, c->id, ai->json_text, json,
	    account_update_cb, ar);
	cJSON_free(json);
}

static void
account_update_read(struct admin_req *ar)
{
	struct admin_rec *c = ar->hctx;

	ar->op = tok_account_info_get(ar->tok, c->id, account_update_got, ar);
}

void
admin_accounts_update(struct admin_req *ar)
{
	admin_rec_update(ar, &account_kind);
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
	if (!admin_http_found(ar, rc, n, tok_store_errstr(), ACCOUNT_NOTFOUND))
		return;
	o = account_json_public(ai->json);
	cJSON_AddStringToObject(o, "state", ai->state);
	cJSON_AddItemToObject(o, "lastError", dup_or_null(ai->last_error));
	admin_rec_add_time(o, "created", ai->created_ms);
	admin_rec_add_time(o, "updated", ai->updated_ms);
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
	struct admin_rec	*c = ar->hctx;
	cJSON			*o, *a, *e;

	ar->op = NULL;
	if (rc != 1) {
		admin_http_unavailable(ar, tok_store_errstr());
		return;
	}
	o = cJSON_CreateObject();
	admin_http_add_page(o, total, c->page, c->size);
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
	struct admin_rec *c = admin_rec_new(ar);

	if (!admin_http_query_page(ar, &c->page, &c->size))
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
	if (!admin_http_deleted(ar, rc, o, tok_store_errstr(),
	    ACCOUNT_NOTFOUND))
		return;
	log_info("event=account_delete account=%s tokens_revoked=%lld",
	    ar->params[0], count);
	admin_http_reply(ar, 200, o);
}

void
admin_accounts_delete(struct admin_req *ar)
{
	ar->op = tok_account_delete(ar->tok, ar->params[0], account_delete_cb,
	    ar);
}
