/*
 * OAuth2 records in Redis: the applications of the admin API (client id,
 * sealed client secret, provider preset) and, per account, the access token
 * cache, the refresh lock and the refresh bookkeeping that every worker and
 * every Postern instance share. Keys: tok_keys.h, docs/REDIS.md. Same rules
 * as tok_store.h: asynchronous, callbacks never from inside the call, rc 1
 * found / 0 not found / -1 temporary failure (reason in tok_oauth_errstr).
 */
#ifndef TOKENSTORE_TOK_OAUTH_H
#define TOKENSTORE_TOK_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "tokenstore/tok.h"

/* Why the last rc -1 happened ("timeout", "redis unavailable", "corrupt
 * record", a Redis error); secret-free. */
const char	*tok_oauth_errstr(void);

/* Fields of the application hash (the json holds the normalised app). */
#define TOK_OAUTH_F_JSON	"json"
#define TOK_OAUTH_F_CREATED	"created"
#define TOK_OAUTH_F_UPDATED	"updated"

/* One application as stored. */
struct tok_oauth_app {
	const char	*id;
	const char	*json_text;
	const cJSON	*json;		/* parsed json_text */
	long long	 created_ms;
	long long	 updated_ms;
};

/* n records (0 when rc != 1); total: all applications (lists only). */
typedef void tok_oauth_app_cb(void *arg, int rc,
		    const struct tok_oauth_app *apps, size_t n,
		    long long total);
typedef void tok_oauth_rc_cb(void *arg, int rc);

/* Creates app id with json (normalised, secret sealed): rc 1 created, 0
 * an application with that id exists (nothing written). */
struct tok_req	*tok_oauth_app_create(struct tok *, const char *id,
		    const char *json, tok_oauth_rc_cb *, void *arg);
/* rc 1 (n = 1) or 0 unknown. */
struct tok_req	*tok_oauth_app_get(struct tok *, const char *id,
		    tok_oauth_app_cb *, void *arg);
/* Applications in id order, ranks start .. start + count - 1. */
struct tok_req	*tok_oauth_app_list(struct tok *, long long start,
		    long long count, tok_oauth_app_cb *, void *arg);
/* Compare-and-set: rc 1 written, 0 gone, 2 changed since old_json. */
struct tok_req	*tok_oauth_app_update(struct tok *, const char *id,
		    const char *old_json, const char *new_json,
		    tok_oauth_rc_cb *, void *arg);
/* rc 1 deleted, 0 unknown. */
struct tok_req	*tok_oauth_app_delete(struct tok *, const char *id,
		    tok_oauth_rc_cb *, void *arg);

/*
 * The token cache of one account, as the token manager sees it. ver names
 * the account's oauth2 settings the entry belongs to: an entry with another
 * ver is stale (the admin gave a new refresh token) and must be ignored.
 * Sealed values open with AAD "<account>\n<TOK_OAUTH_AAD_*>".
 */
#define TOK_OAUTH_AAD_ACCESS	"oauth2.cache.accessToken"
#define TOK_OAUTH_AAD_REFRESH	"oauth2.cache.refreshToken"

struct tok_oauth_cache {
	const char	*ver;		/* NULL: no entry */
	const char	*access;	/* sealed access token, or NULL */
	long long	 expires_ms;	/* of access */
	const char	*refresh;	/* sealed rotated refresh token */
	const char	*failed;	/* invalid_grant: provider's words */
	long long	 failures;	/* temporary failures in a row */
	long long	 retry_ms;	/* no refresh before this (backoff) */
	long long	 refreshed_ms;	/* last successful refresh */
	bool		 locked;	/* someone holds the refresh lock */
};

/* One round trip: the account's cache entry, whether the refresh lock is
 * held, and application app_id (NULL in the callback when it does not
 * exist). rc 1 or -1. Everything is valid during the callback only. */
typedef void tok_oauth_cache_cb(void *arg, int rc,
		    const struct tok_oauth_cache *,
		    const struct tok_oauth_app *);
struct tok_req	*tok_oauth_cache_get(struct tok *, const char *account,
		    const char *app_id, tok_oauth_cache_cb *, void *arg);

/* A refresh succeeded: stores the sealed access token with its expiry and,
 * if not NULL, the rotated refresh token; clears the failure bookkeeping.
 * An entry of another ver is replaced whole. Nothing is written if the
 * account no longer exists. cb (may be NULL) gets rc 1, 0 (no account) or
 * -1. */
struct tok_req	*tok_oauth_cache_put(struct tok *, const char *account,
		    const char *ver, const char *access_sealed,
		    long long expires_ms, const char *refresh_sealed,
		    tok_oauth_rc_cb *, void *arg);
/* A refresh failed: records the failure count and the time before which
 * nobody refreshes again, and for a permanent failure (invalid_grant) its
 * text, which blocks refreshes until the account's oauth2 settings change.
 * Fire and forget. */
void		 tok_oauth_cache_fail(struct tok *, const char *account,
		    const char *ver, long long failures, long long retry_ms,
		    const char *failed);

/* SET lock owner NX PX ttl_ms: rc 1 taken, 0 held by someone else. */
struct tok_req	*tok_oauth_lock(struct tok *, const char *account,
		    const char *owner, long long ttl_ms, tok_oauth_rc_cb *,
		    void *arg);
/* Deletes the lock if owner still holds it (fire and forget). */
void		 tok_oauth_unlock(struct tok *, const char *account,
		    const char *owner);

#endif
