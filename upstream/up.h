/*
 * What the proxy needs to reach one upstream server, and the single
 * classification of how reaching it can fail (the class picks the client's
 * reply, the log level and the account's lastError).
 */
#ifndef UPSTREAM_UP_H
#define UPSTREAM_UP_H

#include <stdbool.h>

#include <openssl/ssl.h>

struct evdns_base;

enum up_tls {
	UP_TLS_IMPLICIT,	/* secure: true */
	UP_TLS_STARTTLS,	/* secure: false, starttls: required (default) */
	UP_TLS_NONE,		/* secure: false, starttls: never */
};

enum up_fail {
	UP_OK = 0,
	UP_FAIL_CONNECT,	/* DNS, refused, unreachable, timeout */
	UP_FAIL_TLS,		/* handshake or certificate verification */
	UP_FAIL_PROTOCOL,	/* unexpected or malformed reply */
	UP_FAIL_AUTH,		/* the upstream refused the credentials */
	UP_FAIL_CONFIG,		/* e.g. STARTTLS required but not offered */
	UP_FAIL_INTERNAL,
};

enum up_cred {
	UP_CRED_PASSWORD,	/* user + secret = password */
	UP_CRED_OAUTH2,		/* user + secret = access token */
};

/*
 * OAuth2: how an upstream login gets a fresh access token after the server
 * refused one that looked valid (revoked early, clock skew). Provided by the
 * token manager (auth/auth_oauth.c), so upstream/ stays below auth/. start
 * asks for a token other than stale for key (the account id) and calls cb
 * exactly once, never from inside start, with the token (valid during the
 * call only) or NULL and a secret-free reason; it returns a handle that
 * cancel takes until then (cb is not called after cancel).
 */
typedef void up_renew_cb(void *arg, const char *token, const char *why);
struct up_renew_ops {
	void	*(*start)(const char *key, const char *stale, up_renew_cb *cb,
		    void *arg);
	void	 (*cancel)(void *handle);
};

struct up_target {
	char		*host;
	int		 port;
	enum up_tls	 tls;
	bool		 verify;	/* false: rejectUnauthorized false */
	enum up_cred	 cred;
	char		*user;
	char		*secret;	/* wiped by up_target_free */
	char		*oauth_mech;	/* "XOAUTH2"/"OAUTHBEARER"/NULL = auto */
	const struct up_renew_ops *renew;	/* OAuth2: NULL = no retry */
	char		*renew_key;	/* for renew->start: the account */
	long long	 connect_timeout_ms;
	long long	 login_timeout_ms;	/* whole connect+login budget */
};

const char	*up_fail_name(enum up_fail);	/* "connect", "tls", ... */
struct up_target *up_target_dup(const struct up_target *);
void		 up_target_free(struct up_target **);

/* Shared per-worker resources for upstream connections. */
struct up_env {
	struct event_base	*base;
	struct evdns_base	*dns;
	SSL_CTX			*ctx_verify;	/* verifies peer + host name */
	SSL_CTX			*ctx_noverify;
};

#endif
