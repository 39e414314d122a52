/*
 * The built-in table of major mail providers: their IMAP and SMTP
 * settings, the domains they host and the MX host names that identify a
 * custom domain hosted with them (Google Workspace, Microsoft 365, ...).
 * Pure data and lookups; also the provider-specific hints verify gives.
 */
#ifndef DISCOVER_DISC_PROVIDER_H
#define DISCOVER_DISC_PROVIDER_H

#include <stdbool.h>

struct disc_provider {
	const char		*id;		/* "gmail" */
	const char		*name;		/* "Gmail / Google Workspace" */
	const char *const	*domains;	/* NULL-terminated, lower case */
	const char *const	*mx;		/* MX host suffixes, or NULL */
	const char		*imap_host;
	int			 imap_port;
	bool			 imap_secure;
	const char		*smtp_host;
	int			 smtp_port;
	bool			 smtp_secure;
	/* Hints for a refused login, in plain words; NULL: none. */
	const char		*auth_hint;	/* app password, OAuth2 only */
	const char		*imap_off_hint;	/* how to turn IMAP on */
};

/* Provider hosting addresses @domain (exact, ASCII case-insensitive, a
 * trailing dot ignored), or NULL. */
const struct disc_provider *disc_provider_by_domain(const char *domain);
/* Provider whose MX names end in host's suffix (on a label boundary), or
 * NULL. */
const struct disc_provider *disc_provider_by_mx(const char *host);
/* Provider whose IMAP or SMTP server is host (or whose domains or MX
 * suffixes contain it, for hosts like "imap.mail.yahoo.com"), or NULL:
 * for hints about a server an account names. */
const struct disc_provider *disc_provider_by_server(const char *host);
/* true if host equals suffix or ends in "." suffix, ignoring ASCII case
 * and one trailing dot on host. */
bool	 disc_host_has_suffix(const char *host, const char *suffix);

#endif
