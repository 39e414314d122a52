/*
 * Account verification: log in to the account's IMAP server (and open
 * its mailbox) and SMTP server, in parallel, without sending anything,
 * and say in plain words what is wrong and what to try. Reuses the
 * proxy's own upstream code (up_imap, up_smtp), so a verified account
 * works the same way through the proxy.
 */
#ifndef DISCOVER_DISC_VERIFY_H
#define DISCOVER_DISC_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "upstream/up.h"

struct disc_env;
struct disc_verify;

#define DISC_VERIFY_MAILBOX_MAX	1024	/* bytes, UTF-8 */

/* Codes of a failed check (EmailEngine and Nodemailer use the same). */
#define DISC_E_AUTH		"EAUTH"		/* credentials refused */
#define DISC_E_CONNREFUSED	"ECONNREFUSED"
#define DISC_E_DNS		"EDNS"		/* host does not resolve */
#define DISC_E_TIMEDOUT		"ETIMEDOUT"
#define DISC_E_TLS		"ETLS"		/* wrong TLS mode, no STARTTLS */
#define DISC_E_CERT		"ECERT"		/* untrusted certificate */
#define DISC_E_MAILBOX		"EMAILBOX"	/* login ok, folder not */
#define DISC_E_PROTOCOL		"EPROTOCOL"	/* not IMAP/SMTP there */
#define DISC_E_CONNECTION	"ECONNECTION"	/* closed, unreachable */
#define DISC_E_CONFIG		"ECONFIG"	/* no usable AUTH method */
#define DISC_E_INTERNAL		"EINTERNAL"

/* A failed check, classified. */
struct disc_verdict {
	const char	*code;		/* DISC_E_* */
	bool		 try_other;	/* the other TLS mode may work */
	char		 error[400];	/* what happened (no secrets) */
	char		 hint[768];	/* what to do, in plain words */
};

/*
 * Classifies a failed login of t (imap: IMAP, else SMTP) from up_imap's
 * or up_smtp's class and reason. connected: the TCP connection was up
 * (SMTP only; IMAP reasons say it). server_text: the server's refusal for
 * EAUTH hints, or NULL. timeout_ms: for the ETIMEDOUT wording.
 */
void	 disc_verify_classify(bool imap, enum up_fail fail, const char *why,
	    bool connected, const struct up_target *t, long long timeout_ms,
	    struct disc_verdict *v);
/*
 * The verdict when the other TLS mode was tried after first failed:
 * other is the mode that was tried (t with tls flipped), other_fail/why
 * its result. If the other mode got past TLS (logged in, or refused the
 * credentials), v becomes ETLS naming the setting that works; else v
 * stays first's verdict.
 */
void	 disc_verify_other_mode(bool imap, const struct disc_verdict *first,
	    const struct up_target *other, enum up_fail other_fail,
	    const char *other_why, struct disc_verdict *v);
/* IMAP mailbox name as a quoted string in modified UTF-7 (RFC 3501
 * 5.1.3), e.g. "\"Entw&APw-rfe\"". Returns -1 if name is not valid UTF-8,
 * is empty or holds control characters. */
int	 disc_verify_mailbox_arg(const char *name, char *out, size_t outlen);

/* Results: {"imap": {"success": true}, "smtp": {"success": false,
 * "error", "code", "hint"}}, a key only for a checked protocol. ok is
 * true if every check succeeded. result belongs to the callback. Called
 * once, from the loop; the callback may free the job. */
typedef void disc_verify_cb(void *arg, cJSON *result, bool ok);

/*
 * Starts checking imap (login, then EXAMINE of mailbox, NULL: INBOX)
 * and smtp (EHLO, STARTTLS, AUTH); either may be NULL, not both. Each
 * check (and a second try in the other TLS mode) is bounded by
 * timeout_ms. Targets are copied (secrets wiped when done). Never NULL.
 */
struct disc_verify *disc_verify_new(struct disc_env *,
		    const struct up_target *imap, const char *mailbox,
		    const struct up_target *smtp, long long timeout_ms,
		    disc_verify_cb *cb, void *arg);
void		 disc_verify_free(struct disc_verify **);

#endif
