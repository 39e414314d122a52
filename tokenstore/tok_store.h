/*
 * Records in Redis: tokens, accounts, settings, per-account connection
 * slots. The key schema lives in tok_keys.h and docs/REDIS.md and
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

/*
 * Operations of the admin API. Each may take several round trips, so it
 * returns a struct tok_op (never NULL) instead of a tok_req: cancel it
 * with tok_op_cancel (the callback will not run; writes already sent
 * still complete). rc as above, plus what each function says; on -1,
 * tok_store_errstr() tells why. Structs and strings handed to callbacks
 * are valid during the callback only. Callbacks never run from inside the
 * call that started the operation.
 */
struct tok_op;
void		 tok_op_cancel(struct tok_op *);
/* Reason for the last rc -1 ("timeout", "redis unavailable", "connection
 * lost", "corrupt record", or a Redis error); secret-free. */
const char	*tok_store_errstr(void);

typedef void tok_rc_cb(void *arg, int rc);

/* PING: rc 1 or -1 (GET /health). */
struct tok_op	*tok_ping(struct tok *, tok_rc_cb *, void *arg);

/* A token record as the admin API shows it. */
struct tok_token_info {
	char		 id[65];
	const char	*account;
	const char	*scopes;	/* comma list: "imap-proxy,smtp" */
	const char	*description;
	const char	*restrictions;	/* JSON object text, or NULL */
	const char	*metadata;	/* JSON object text, or NULL */
	long long	 created_ms;
	long long	 expires_ms;	/* 0: never */
	long long	 used_ms;	/* 0: never used */
	const char	*used_ip;	/* NULL: never used */
};
typedef void tok_token_list_cb(void *arg, int rc,
		    const struct tok_token_info *, size_t n);
/* Stores a new token (id, account, scopes, description, restrictions,
 * metadata, created_ms, expires_ms of info; the key expires with the
 * token). rc 1 stored, 0 the account does not exist (nothing stored). */
struct tok_op	*tok_token_create(struct tok *, const struct tok_token_info *,
		    tok_rc_cb *, void *arg);
/* One token with its last use: rc 1 (n = 1), 0 unknown or expired. */
struct tok_op	*tok_token_info_get(struct tok *, const char *id,
		    tok_token_list_cb *, void *arg);
/* An account's live tokens sorted by creation time: rc 1, or 0 if the
 * account does not exist. */
struct tok_op	*tok_token_list(struct tok *, const char *account,
		    tok_token_list_cb *, void *arg);

/* id: the token id revoked (rc 1 from tok_token_revoke), else NULL;
 * count: tokens revoked. */
typedef void tok_revoke_cb(void *arg, int rc, const char *id,
		    long long count);
/* Revokes one token given as its id or as the token itself (64 hex; tried
 * as an id first) and publishes its id on TOK_CHANNEL_REVOKE. rc 1 with
 * the id, 0 unknown. */
struct tok_op	*tok_token_revoke(struct tok *, const char *token_or_id,
		    tok_revoke_cb *, void *arg);
/* Revokes every token of an account (published as above). rc 1 with the
 * count, 0 if the account does not exist. */
struct tok_op	*tok_token_revoke_account(struct tok *, const char *account,
		    tok_revoke_cb *, void *arg);

/* Account records with their bookkeeping fields. */
struct tok_account_info {
	const char	*account;
	const char	*json_text;	/* as stored */
	const cJSON	*json;		/* parsed json_text */
	const char	*state;		/* "init" when unset */
	const cJSON	*last_error;	/* NULL when unset */
	long long	 created_ms;
	long long	 updated_ms;
};
typedef void tok_account_list_cb(void *arg, int rc, long long total,
		    const struct tok_account_info *, size_t n);
/* rc 1 (n = 1, total = 1) or 0 unknown. */
struct tok_op	*tok_account_info_get(struct tok *, const char *account,
		    tok_account_list_cb *, void *arg);
/* Accounts in id order, ranks start .. start + count - 1; total is the
 * number of accounts. rc 1 or -1. */
struct tok_op	*tok_account_list(struct tok *, long long start,
		    long long count, tok_account_list_cb *, void *arg);
/* Registers or replaces an account (json: the normalised record, secrets
 * sealed); state becomes "init", lastError is cleared, created is kept on
 * a replace. rc 1 created, 2 replaced an existing account. */
struct tok_op	*tok_account_put(struct tok *, const char *account,
		    const char *json, tok_rc_cb *, void *arg);
/* Compare-and-set of the record: writes new_json only if the stored json
 * is still old_json (state "init", lastError cleared). rc 1 updated, 0
 * the account is gone, 2 it changed meanwhile (read again and retry). */
struct tok_op	*tok_account_update(struct tok *, const char *account,
		    const char *old_json, const char *new_json, tok_rc_cb *,
		    void *arg);
/* Deletes an account and revokes its tokens (published as above). rc 1
 * with count = tokens revoked, 0 unknown. */
struct tok_op	*tok_account_delete(struct tok *, const char *account,
		    tok_revoke_cb *, void *arg);

/* Writes settings: values are JSON texts. n <= TOK_SETTINGS_SET_MAX. */
#define TOK_SETTINGS_SET_MAX	8
struct tok_op	*tok_settings_set(struct tok *, const char *const *keys,
		    const char *const *values, size_t n, tok_rc_cb *, void *arg);

#endif
