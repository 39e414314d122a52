/*
 * The Redis key schema, in one place: every key and channel name the
 * daemon uses is built here from the configured prefix. docs/REDIS.md
 * describes what each key holds. Results are malloc'd; the caller frees.
 */
#ifndef TOKENSTORE_TOK_KEYS_H
#define TOKENSTORE_TOK_KEYS_H

#include <stdbool.h>

#define TOK_ACCOUNT_ID_MAX	256

/* Pub/sub channel (without prefix, as tok_subscribe takes it) on which
 * the id of each revoked token is published. */
#define TOK_CHANNEL_REVOKE	"revoke"

/* Fields of the token hash. */
#define TOK_F_ACCOUNT		"account"
#define TOK_F_SCOPES		"scopes"
#define TOK_F_DESCRIPTION	"description"
#define TOK_F_RESTRICTIONS	"restrictions"
#define TOK_F_METADATA		"metadata"
#define TOK_F_CREATED		"created"
#define TOK_F_EXPIRES		"expires"
/* Fields of the token's :used hash. */
#define TOK_F_USED_TIME		"time"
#define TOK_F_USED_IP		"ip"
/* Fields of the account hash. */
#define TOK_F_JSON		"json"
#define TOK_F_STATE		"state"
#define TOK_F_LAST_ERROR	"lastError"
#define TOK_F_UPDATED		"updated"

/* true if account is 1-TOK_ACCOUNT_ID_MAX characters of [A-Za-z0-9._@+-]:
 * such an id can never reach into another key (no ':', no spaces). */
bool	 tok_key_account_is_valid(const char *account);

char	*tok_key_token(const char *prefix, const char *id);	  /* P tok:<id> */
char	*tok_key_token_used(const char *prefix, const char *id);  /* P tok:<id>:used */
char	*tok_key_account(const char *prefix, const char *account); /* P acct:<a> */
char	*tok_key_account_tokens(const char *prefix, const char *account);
char	*tok_key_accounts(const char *prefix);			  /* P accounts */
char	*tok_key_settings(const char *prefix);			  /* P settings */
char	*tok_key_conn(const char *prefix, const char *account);  /* P conn:<a> */
char	*tok_key_channel(const char *prefix, const char *channel);
/* OAuth2 (tokenstore/tok_oauth.c): applications and per-account token
 * cache and refresh lock. App ids use the account id charset. */
char	*tok_key_oauth_apps(const char *prefix);		  /* P oauth2:apps */
char	*tok_key_oauth_app(const char *prefix, const char *app); /* P oauth2:app:<id> */
char	*tok_key_oauth_token(const char *prefix, const char *account);
char	*tok_key_oauth_lock(const char *prefix, const char *account);

#endif
