/*
 * OAuth2 access tokens for upstream logins (DESIGN.md section 6): provider
 * presets, the sealed token cache in Redis, refreshes through libcurl's
 * multi interface on the process's event loop, one refresh in flight per
 * account across workers and hosts (a Redis lock, waiters poll the cache),
 * backoff after failures, and invalid_grant marking the account. One token
 * manager per process: auth_oauth_init before the loop, auth_oauth_shutdown
 * after it. Never blocks; no token or client secret reaches a log line.
 */
#ifndef AUTH_AUTH_OAUTH_H
#define AUTH_AUTH_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "upstream/up.h"

struct cfg;
struct event_base;
struct tok;

/* Provider presets: what an account of a gmail or outlook application
 * gets when it has no imap/smtp object of its own. */
struct auth_oauth_preset {
	const char	*name;		/* "gmail", "outlook", "custom" */
	const char	*imap_host;	/* NULL: custom, no defaults */
	int		 imap_port;
	enum up_tls	 imap_tls;
	const char	*smtp_host;
	int		 smtp_port;
	enum up_tls	 smtp_tls;
	const char	*mech;		/* preferred SASL mechanism */
	const char	*scopes;	/* default scopes, space-separated */
};

/* The preset of a provider name, or NULL if unknown. */
const struct auth_oauth_preset *auth_oauth_preset(const char *provider);

/* Starts the process's token manager (curl multi on base). 0 or -1. */
int	 auth_oauth_init(struct event_base *, struct tok *, const struct cfg *,
	    char *err, size_t errlen);
/* Drops every request in flight (callbacks are not called) and frees
 * the manager and libcurl's global state. */
void	 auth_oauth_shutdown(void);

enum auth_oauth_fail {
	AUTH_OAUTH_OK = 0,
	AUTH_OAUTH_TEMP,	/* token endpoint down or backing off, Redis */
	AUTH_OAUTH_REVOKED,	/* invalid_grant: the account must be renewed */
	AUTH_OAUTH_CONFIG,	/* no application, no usable refresh token */
};

/* What an upstream login needs. Strings valid during the callback only;
 * access is secret. */
struct auth_oauth_token {
	const char	*access;
	const char	*user;		/* oauth2.auth.user */
	const char	*provider;	/* the application's preset name */
	const char	*mech;		/* preferred mechanism, or NULL */
	long long	 expires_ms;
};

/* Called exactly once, never from inside auth_oauth_get. tk is NULL on
 * failure, with why (secret-free) saying what went wrong. */
typedef void auth_oauth_cb(void *arg, enum auth_oauth_fail,
		    const struct auth_oauth_token *tk, const char *why);

struct auth_oauth_req;
/*
 * An access token for account (acct: its stored record, read here and not
 * kept). Valid for more than [oauth2] refresh_margin: at once from the
 * cache; else refreshed, with concurrent callers for the same account
 * sharing one refresh. stale, if not NULL, is a token the upstream refused:
 * the answer is a different one (a forced refresh unless somebody already
 * replaced it). Never NULL.
 */
struct auth_oauth_req *auth_oauth_get(const char *account, const cJSON *acct,
		    const char *stale, auth_oauth_cb *, void *arg);
/* The callback will not run. NULL is fine. */
void		 auth_oauth_cancel(struct auth_oauth_req *);

/* true once auth_oauth_init has run in this process (auth_oauth_get may
 * only be called then). */
bool		 auth_oauth_is_running(void);

/* true if the stored account logs in with OAuth2 (has an oauth2 object). */
bool		 auth_oauth_is_account(const cJSON *acct);

/* Client-facing replies for a failure: IMAP "NO [UNAVAILABLE] ..." tail,
 * SMTP "454 4.7.0 ...". */
const char	*auth_oauth_imap_text(enum auth_oauth_fail);
const char	*auth_oauth_smtp_text(enum auth_oauth_fail);

/*
 * The upstream target of an OAuth2 account for section ("imap"/"smtp"):
 * host, port and TLS from the account's own object, else from the preset;
 * the access token as secret; renewal through the token manager. NULL with
 * a secret-free reason if neither gives a server.
 */
struct up_target *auth_oauth_target(const cJSON *acct, const char *section,
		    const struct auth_oauth_token *, bool ignore_cert,
		    const struct cfg *, const char **why_r);

/* Pure helpers, exposed for tests/unit/t_oauth.c. */

/* A token endpoint's answer (RFC 6749 5.1, 5.2). */
struct auth_oauth_resp {
	enum auth_oauth_fail	 fail;
	char			*access;	/* secret, malloc'd */
	char			*refresh;	/* rotated one, or NULL */
	long long		 expires_in_ms;
	char			 error[200];	/* secret-free, for logs */
};
/* Classifies status + body (curl_ok false: no HTTP answer at all). */
void	 auth_oauth_parse_response(bool curl_ok, long status, const char *body,
	    size_t len, struct auth_oauth_resp *);
/* Wipes and frees the secrets of a parsed answer. */
void	 auth_oauth_resp_clear(struct auth_oauth_resp *);
/* Delay before the next refresh after failures earlier ones in a row:
 * min * 2^failures, at most max. */
long long auth_oauth_backoff_ms(long long failures, long long min,
	    long long max);
/* The token endpoint of an application (normalised JSON), with the
 * preset's URL from cfg and "{tenant}" filled in; malloc'd or NULL. */
char	*auth_oauth_token_url(const cJSON *app, const struct cfg *);
/* The cache version of an account's oauth2 object: 16 hex characters
 * into out (17 bytes). */
void	 auth_oauth_ver(const cJSON *oauth2, char *out);
/* application/x-www-form-urlencoded of the refresh request; malloc'd,
 * secret (wipe it). client_secret and scope may be NULL. */
char	*auth_oauth_form(const char *refresh, const char *client_id,
	    const char *client_secret, const char *scope);

#endif
