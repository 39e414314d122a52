/*
 * Account records (POST/PUT /v1/account): validation of a request body,
 * normalisation (defaults filled in, fixed key order, secrets sealed with
 * AAD "<account>\n<dotted path>") and the public view with secrets removed.
 * Pure functions: no I/O; sealing needs a key loaded with crypto_add_secret.
 */
#ifndef ADMIN_ACCOUNT_JSON_H
#define ADMIN_ACCOUNT_JSON_H

#include <stdbool.h>

#include <cJSON.h>

struct account_json_err {
	int	status;		/* 400; 500 if a secret could not be sealed */
	char	field[128];	/* dotted path ("imap.port"); "" for none */
	char	message[256];	/* never contains a secret */
};

/* Validates a whole POST body. Returns the normalised record (caller
 * cJSON_Deletes it), or NULL with err filled in. Nothing in body is
 * modified. "verify" is accepted and not stored. */
cJSON	*account_json_create(const cJSON *body, struct account_json_err *);

/* Validates a PUT body for account (its "account", if given, must match)
 * and returns stored with the body applied: each top-level field given
 * replaces the stored one, null removes it; within imap/smtp, an omitted
 * auth keeps the stored auth and an omitted auth.pass the stored
 * password, except when host, port, secure or starttls change: then a
 * stored password must be given again (err names "<imap|smtp>.auth.pass").
 * Returns a new record, or NULL with err filled in. */
cJSON	*account_json_update(const cJSON *stored, const cJSON *body,
	    const char *account, struct account_json_err *);

/* A deep copy for GET: auth objects keep "user" only, oauth2 loses
 * refreshToken and accessToken, proxy has its password masked
 * (account_json_proxy_mask). */
cJSON	*account_json_public(const cJSON *stored);

/* The AAD of a sealed field ("<account>\n<path>"), malloc'd. */
char	*account_json_aad(const char *account, const char *path);

/* true if url has a proxy scheme we support (socks://, socks4://,
 * socks5://, http://, https://, any case) and something after it; for
 * "proxy" here and the proxyUrl setting. */
bool	 account_json_proxy_scheme_ok(const char *url);

/* url with the password of its userinfo replaced by "****"
 * ("socks5://u:****@h:1080"), malloc'd; a copy of url if it has no
 * "user:password@" part. The userinfo runs from "://" to the last '@'
 * in url (our validator lets '@', ':' and '/' into a password unencoded),
 * so a password is never partly shown; the password starts after the
 * first ':' of the userinfo. */
char	*account_json_proxy_mask(const char *url);

/* true if given is the masked form of stored and differs from it: an
 * update that sends back what GET showed keeps the stored URL. */
bool	 account_json_proxy_is_masked(const char *given, const char *stored);

#endif
