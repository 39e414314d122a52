/*
 * The login check shared by the IMAP and SMTP front-ends: account ID as
 * user name, access token as password. One verdict enum, one table that
 * maps it to the IMAP text and the SMTP reply, so both protocols answer
 * alike (and EmailEngine's scripts keep matching the IMAP texts).
 */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <stdbool.h>

#include <cJSON.h>

#include "tokenstore/tok.h"
#include "upstream/up.h"

struct cfg;

enum auth_verdict {
	AUTH_OK = 0,
	AUTH_BAD_TOKEN,		/* unknown, malformed or expired token */
	AUTH_BAD_USER,		/* token of another account */
	AUTH_BAD_SCOPE,
	AUTH_BAD_IP,
	AUTH_NO_ACCOUNT,	/* account missing or no settings for proto */
	AUTH_TEMPFAIL,		/* Redis unavailable, corrupt record */
};

enum auth_proto {
	AUTH_PROTO_IMAP,
	AUTH_PROTO_SMTP,
};

struct auth_result {
	enum auth_verdict	 verdict;
	const char		*reason;	/* for logs; secret-free */
	char			 token_id[65];
	const char		*account;
	struct up_target	*target;	/* AUTH_OK only; owned here */
	int			 max_connections;
	char			*sent_path;	/* smtp: sentMailPath or NULL */
	struct up_target	*imap_target;	/* smtp: for the Sent copy */
	/* Set when the reply is more specific than the verdict's (OAuth2
	 * token failures are AUTH_TEMPFAIL with their own text). */
	const char		*imap_text;
	const char		*smtp_text;
};

/* Called once, never from inside auth_check. res is valid during the
 * callback; the callee may take res->target (set it to NULL). */
typedef void auth_cb(void *arg, struct auth_result *res);

struct auth_req;
/* token is wiped by the caller after this returns (it is copied). */
struct auth_req	*auth_check(struct tok *, enum auth_proto, const char *account,
		    const char *token, const char *client_ip,
		    const struct cfg *, auth_cb *, void *arg);
/* The callback will not run. NULL is fine. */
void		 auth_cancel(struct auth_req *);

/* The client-facing text of a verdict: IMAP "NO ..." line tail, SMTP
 * reply ("535 5.7.8 ..."). */
const char	*auth_imap_text(enum auth_verdict);
const char	*auth_smtp_text(enum auth_verdict);
const char	*auth_verdict_name(enum auth_verdict);
/* The reply for a result: res->imap_text/smtp_text, else the verdict's. */
const char	*auth_result_imap_text(const struct auth_result *);
const char	*auth_result_smtp_text(const struct auth_result *);

/* Builds the upstream target of one protocol from a stored account
 * ("imap" or "smtp" object), opening sealed secrets; NULL with a
 * secret-free reason if the account has no such settings or a secret does
 * not open (*tempfail_r true then: our key ring, not the account, is at
 * fault). ignore_cert: the global ignoreMailCertErrors setting. */
struct up_target *auth_target_from_account(const cJSON *account,
		    const char *section, bool ignore_cert, const struct cfg *,
		    const char **why_r, bool *tempfail_r);

#endif
