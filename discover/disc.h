/*
 * Shared pieces of discover/ (autoconfig and account verification): the
 * settings of one server as the API shows them, and checks of the names
 * that come from users, DNS and XML before anything uses them.
 */
#ifndef DISCOVER_DISC_H
#define DISCOVER_DISC_H

#include <stdbool.h>
#include <stddef.h>

#define DISC_HOST_MAX		253	/* RFC 1035 name, no trailing dot */
#define DISC_EMAIL_MAX		254	/* RFC 5321 path limit */

/* One server as EmailEngine's autoconfig shows it: {"host", "port",
 * "secure"}; secure false means STARTTLS. */
struct disc_server {
	char	 host[DISC_HOST_MAX + 1];
	int	 port;
	bool	 secure;
};

/* IMAP and SMTP settings, each found (set) or not. */
struct disc_settings {
	bool			 has_imap;
	bool			 has_smtp;
	struct disc_server	 imap;
	struct disc_server	 smtp;
};

/* A DNS host name: 1-253 characters, labels of 1-63 letters, digits,
 * hyphens (not first or last) and underscores, one trailing dot allowed.
 * No IP literals. */
bool	 disc_host_is_valid(const char *host);
/*
 * Splits an email address into a lower-cased domain (a valid host name,
 * at least two labels, trailing dot dropped) written into domain. The
 * local part must be 1-64 printable ASCII characters without spaces, '"'
 * '(' ')' ',' ':' ';' '<' '>' '[' '\\' ']'. Returns false if the address
 * is unusable.
 */
bool	 disc_email_domain(const char *email, char *domain, size_t domainlen);
/* Copies text for an API answer into out (outlen > 0): valid UTF-8 is
 * kept, control characters and invalid bytes become '?', and a text too
 * long is cut on a character boundary. Returns out. */
const char *disc_text_clean(const char *in, char *out, size_t outlen);
/* Sets s from host (copied, lower-cased, trailing dot dropped), port and
 * secure. Returns false if host is not a valid host name or port is out of
 * 1..65535. */
bool	 disc_server_set(struct disc_server *s, const char *host, int port,
	    bool secure);

#endif
