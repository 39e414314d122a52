/*
 * Client SASL towards upstream servers, protocol-neutral: challenges and
 * responses travel as base64 text, as IMAP AUTHENTICATE and SMTP AUTH carry
 * them. Password credentials go through libsasl2 (SCRAM-*, PLAIN, CRAM-MD5,
 * LOGIN: no hand-written crypto); OAuth2 access tokens use XOAUTH2 or
 * OAUTHBEARER (RFC 7628), built here.
 */
#ifndef UPSTREAM_UP_SASL_H
#define UPSTREAM_UP_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "upstream/up.h"

struct up_sasl;

/* Loads the libsasl2 client plugins (dlopen: call once before the event
 * loop starts; up_sasl_new does it on first use otherwise). 0 or -1. */
int	 up_sasl_init(char *err, size_t errlen);
/* Releases libsasl2's global state at shutdown. */
void	 up_sasl_done(void);

/*
 * Picks a mechanism for t's credential among server_mechs (the names after
 * AUTH=, space-separated, may be empty) and computes the initial response.
 * Passwords: the first of SCRAM-SHA-512/384/256/224/1, PLAIN, CRAM-MD5,
 * LOGIN that both sides have (CRAM-MD5 before PLAIN when tls is false).
 * OAuth2: t->oauth_mech (default XOAUTH2) if advertised, else the other
 * of XOAUTH2 and OAUTHBEARER if advertised. service is the GSSAPI-style name ("imap", "smtp").
 * Returns 1 with *sp set; 0 if nothing fits (a password may still go by the
 * protocol's own LOGIN); -1 on a local error (err set, never secret).
 */
int	 up_sasl_new(const struct up_target *t, const char *service,
	    const char *server_mechs, bool tls, struct up_sasl **sp,
	    char *err, size_t errlen);
/* "SCRAM-SHA-256", "PLAIN", "XOAUTH2", ... */
const char *up_sasl_mech(const struct up_sasl *);
/* The initial response in base64, "=" if it is empty (RFC 4959, RFC 4954),
 * or NULL if the mechanism waits for a server challenge first. Secret:
 * valid until up_sasl_free, which wipes it. */
const char *up_sasl_initial(const struct up_sasl *);
/*
 * Answers one server challenge (the base64 text after "+ ", may be "").
 * Returns 0 with *resp_r set to the base64 answer (possibly ""; secret,
 * valid until the next step or up_sasl_free), or -1 with err set (bad
 * challenge, server failed mutual authentication). For XOAUTH2/OAUTHBEARER
 * a challenge is the server's error report: the answer is the dummy
 * response that makes the server send its final NO (RFC 7628 3.2.3).
 */
int	 up_sasl_step(struct up_sasl *, const char *challenge,
	    const char **resp_r, char *err, size_t errlen);
/* After an OAuth2 error challenge: its JSON, sanitized; else NULL. */
const char *up_sasl_oauth_error(const struct up_sasl *);
void	 up_sasl_free(struct up_sasl **);

#endif
