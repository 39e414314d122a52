/*
 * The state and PUT flow shared by the record handlers (admin_rec.h):
 * admin_accounts.c and admin_oauth2.c supply the reads, validation and
 * writes of their store; the order of checks and the replies are here.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <cJSON.h>

#include "admin/admin_http.h"
#include "admin/admin_rec.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "tokenstore/tok_keys.h"

static void
admin_rec_free(void *arg)
{
	struct admin_rec *c = arg;

	free(c->id);
	cJSON_Delete(c->body);
	free(c);
}

struct admin_rec *
admin_rec_new(struct admin_req *ar)
{
	struct admin_rec *c = xcalloc(1, sizeof(*c));

	ar->hctx = c;
	ar->hctx_free = admin_rec_free;
	return c;
}

void
admin_rec_update(struct admin_req *ar, const struct admin_rec_kind *k)
{
	struct admin_rec	*c;
	cJSON			*body;

	if ((body = admin_http_body_object(ar)) == NULL)
		return;
	if (!tok_key_account_is_valid(ar->params[0])) {
		cJSON_Delete(body);
		admin_http_error(ar, 404, NULL, NULL, "%s", k->notfound);
		return;
	}
	c = admin_rec_new(ar);
	c->id = xstrdup(ar->params[0]);
	c->body = body;
	k->read(ar);
}

bool
admin_rec_updated(struct admin_req *ar, const struct admin_rec_kind *k,
    int rc)
{
	switch (rc) {
	case 1:
		return true;
	case 0:
		admin_http_error(ar, 404, NULL, NULL, "%s", k->notfound);
		return false;
	case 2:
		/* Changed by someone else since we read it. */
		if (++ar->retries < ADMIN_REC_RETRIES) {
			k->read(ar);
			return false;
		}
		admin_http_error(ar, 409, NULL, NULL, "%s", k->busy);
		return false;
	default:
		admin_http_unavailable(ar, k->errstr());
		return false;
	}
}

char *
admin_rec_text(struct admin_req *ar, cJSON *rec,
    const struct account_json_err *e)
{
	char *json;

	if (rec == NULL) {
		admin_http_invalid(ar, e);
		return NULL;
	}
	json = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	return json;
}

void
admin_rec_add_time(cJSON *o, const char *name, long long ms)
{
	char ts[32];

	if (ms <= 0) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	str_iso8601_format(ms, ts, sizeof(ts));
	cJSON_AddStringToObject(o, name, ts);
}
