/*
 * Autoconfig: IMAP and SMTP settings for an email address, from (in this
 * order) the built-in provider table by domain and by MX host, Mozilla
 * autoconfig documents (autoconfig.DOMAIN, /.well-known, the ISPDB), RFC
 * 6186/8314 SRV records, and a last guess (imap./mail./smtp.DOMAIN)
 * confirmed by a TCP+TLS probe. Every step is asynchronous and bounded by
 * its own timeout and the whole by [autoconfig] timeout.
 */
#ifndef DISCOVER_DISC_AUTOCONFIG_H
#define DISCOVER_DISC_AUTOCONFIG_H

#include <stddef.h>

#include <cJSON.h>

#include "discover/disc.h"

struct disc_env;
struct disc_ac;

struct disc_ac_result {
	struct disc_settings	 s;		/* what was found */
	const char		*source;	/* "provider", "mx", "autoconfig",
						   "well-known", "ispdb", "srv",
						   "guess", or "a+b" when the
						   halves came from two */
	const cJSON		*tried;		/* [{"source", "target",
						   "result"}] in order */
};

/* Called once from the loop (never from inside disc_ac_new); r is valid
 * during the call; the callback may free the job. */
typedef void disc_ac_cb(void *arg, const struct disc_ac_result *r);

/* Starts a lookup for email, whose domain (lower case) is domain (see
 * disc_email_domain). Never NULL. */
struct disc_ac	*disc_ac_new(struct disc_env *, const char *email,
		    const char *domain, disc_ac_cb *cb, void *arg);
/* Cancels whatever is in flight; the callback is not called. */
void		 disc_ac_free(struct disc_ac **);

/*
 * Expands an autoconfig URL template: {domain} becomes domain, {email} the
 * percent-encoded address. Returns a malloc'd URL, or NULL unless the
 * result starts with http:// or https://.
 */
char		*disc_ac_url(const char *tmpl, const char *email,
		    const char *domain);

#endif
