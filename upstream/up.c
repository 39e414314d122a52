/*
 * The upstream target (a deep copy owns its strings; the secret is wiped
 * when freed) and the names of the failure classes used in logs and in
 * the account's lastError.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/xmalloc.h"
#include "upstream/up.h"

const char *
up_fail_name(enum up_fail fail)
{
	switch (fail) {
	case UP_OK:
		return "ok";
	case UP_FAIL_CONNECT:
		return "connect";
	case UP_FAIL_TLS:
		return "tls";
	case UP_FAIL_PROTOCOL:
		return "protocol";
	case UP_FAIL_AUTH:
		return "auth";
	case UP_FAIL_CONFIG:
		return "config";
	case UP_FAIL_INTERNAL:
		return "internal";
	}
	return "unknown";
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct up_target *
up_target_dup(const struct up_target *t)
{
	struct up_target *c = xcalloc(1, sizeof(*c));

	*c = *t;
	c->host = dup_or_null(t->host);
	c->user = dup_or_null(t->user);
	c->secret = dup_or_null(t->secret);
	c->oauth_mech = dup_or_null(t->oauth_mech);
	c->renew_key = dup_or_null(t->renew_key);
	return c;
}

void
up_target_free(struct up_target **tp)
{
	struct up_target *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->secret != NULL) {
		OPENSSL_cleanse(t->secret, strlen(t->secret));
		free(t->secret);
	}
	free(t->host);
	free(t->user);
	free(t->oauth_mech);
	free(t->renew_key);
	free(t);
}
