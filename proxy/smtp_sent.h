/*
 * Copy to Sent: while DATA streams upstream, the message is also spooled
 * (dot-unstuffed) to an unlinked temp file; once the upstream accepted it,
 * a detached task logs in to the account's IMAP server and APPENDs it with
 * \Seen to the Sent folder. A failed copy is logged and recorded on the
 * account, never reported to the SMTP client as a failed delivery.
 */
#ifndef PROXY_SMTP_SENT_H
#define PROXY_SMTP_SENT_H

#include <stddef.h>

struct evbuffer;
struct smtp_sent;
struct up_target;
struct worker;

/* NULL when no copy is due (no IMAP target, copySent false, a provider
 * that files sent mail itself) or the spool cannot be created (logged).
 * imap is copied. */
struct smtp_sent *smtp_sent_new(struct worker *, const char *account,
		    const struct up_target *imap, const char *sent_path,
		    const char *sess_id);
/* Appends dot-stuffed message bytes (as the client sent them; the
 * terminator excluded); the copy is unstuffed. Does not drain buf. */
void		 smtp_sent_write(struct smtp_sent *, struct evbuffer *buf);
/* The upstream accepted the message: start the copy (the object now
 * belongs to the copy task). */
void		 smtp_sent_commit(struct smtp_sent **);
/* The message was not sent: drop the spool. */
void		 smtp_sent_free(struct smtp_sent **);
/* Worker exit: abandon copies still running. */
void		 smtp_sent_shutdown(void);

#endif
