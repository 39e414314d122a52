/*
 * GET /health: one PING through the daemon's Redis connection. 200 when
 * Redis answers, 503 (with the error fields) when it does not.
 */
#include <cJSON.h>

#include "admin/admin_http.h"
#include "tokenstore/tok.h"
#include "tokenstore/tok_store.h"

static void
health_cb(void *arg, int rc)
{
	struct admin_req	*ar = arg;
	cJSON			*o = cJSON_CreateObject();

	ar->op = NULL;
	if (rc != 1) {
		cJSON_AddFalseToObject(o, "success");
		cJSON_AddStringToObject(o, "redis", "unavailable");
		admin_http_unavailable_extra(ar, tok_store_errstr(), o);
		return;
	}
	cJSON_AddTrueToObject(o, "success");
	cJSON_AddStringToObject(o, "redis", "ok");
	admin_http_reply(ar, 200, o);
}

void
admin_health_get(struct admin_req *ar)
{
	ar->op = tok_ping(ar->tok, health_cb, ar);
}
