/*
 * Records in Redis: tokens, accounts, settings, per-account connection
 * slots. The key schema lives in tok_keys.h and docs/ARCHITECTURE.md and
 * nowhere else. All calls are asynchronous (tok.h rules: callback never
 * from inside the call; cancel with tok_req_cancel on the returned handle).
 */
#ifndef TOKENSTORE_TOK_STORE_H
#define TOKENSTORE_TOK_STORE_H

#include <stdbool.h>

#include <cJSON.h>

#include "common/cidr.h"
#include "tokenstore/tok.h"

#define TOK_SCOPE_IMAP	0x1u	/* "imap-proxy" */
#define TOK_SCOPE_SMTP	0x2u	/* "smtp" */
#define TOK_SCOPE_API	0x4u	/* "api" */
#define TOK_SCOPE_ALL	0x8u	/* "*" */

/* rc for lookups: 1 found, 0 not found, -1 temporary failure (Redis down,
 * timeout, corrupt record). */

struct tok_token {
	char		 id[65];
	char		*account;
	unsigned	 scopes;		/* TOK_SCOPE_* bits */
	struct cidr	*addrs;			/* restrictions.addresses */
	int		 naddrs;
	long long	 created_ms;
	long long	 expires_ms;		/* 0: never */
};

typedef void tok_token_cb(void *arg, int rc, const struct tok_token *);
/* One round trip (HGETALL of the token key). The struct is valid during
 * the callback only. An expired token is reported as found: callers
 * decide (and say "expired" in their logs). */
struct tok_req	*tok_token_get(struct tok *, const char *id, tok_token_cb *,
		    void *arg);
/* Records last use (time, client IP); fire and forget, never delays a
 * login. */
void		 tok_token_touch(struct tok *, const char *id, const char *ip);

/* The account record as stored: the JSON given at registration, validated
 * and normalised, secrets sealed with crypto_seal (AAD "<account>\n<path>",
 * path e.g. "imap.auth.pass", "smtp.auth.pass", "oauth2.refreshToken",
 * "oauth2.accessToken"). The cJSON is valid during the callback only. */
typedef void tok_account_cb(void *arg, int rc, const cJSON *account);
struct tok_req	*tok_account_get(struct tok *, const char *account,
		    tok_account_cb *, void *arg);
/* Records the account's state and last error (fire and forget). state is
 * "connected", "authenticationError", "connectError"; err NULL clears
 * lastError. err must be secret-free. */
void		 tok_account_set_state(struct tok *, const char *account,
		    const char *state, const char *err);

/* Global settings (GET/POST /v1/settings) as a JSON object. */
typedef void tok_settings_cb(void *arg, int rc, const cJSON *settings);
struct tok_req	*tok_settings_get(struct tok *, tok_settings_cb *, void *arg);

#endif
