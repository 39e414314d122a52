/*
 * Upstream SMTP submission client: resolve, connect, [TLS], greeting 220,
 * EHLO, [STARTTLS, EHLO], AUTH (SASL via up_sasl); then it relays the
 * client's transactions one command at a time (pipelined when the
 * upstream offers PIPELINING) and streams DATA with backpressure. Owns its
 * up_conn for its whole life; QUIT is sent on free when that is safe.
 */
#ifndef UPSTREAM_UP_SMTP_H
#define UPSTREAM_UP_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "upstream/up.h"
#include "upstream/up_smtp_resp.h"

struct evbuffer;
struct up_smtp;

#define UP_SMTP_HELO_DEFAULT		"postern"
/* The longest command line we send, CRLF included (RFC 5321 4.5.3.1.4):
 * any server takes it. Callers rebuild relayed lines to fit. */
#define UP_SMTP_CMD_LINE_MAX		512
#define UP_SMTP_LOGIN_TIMEOUT_DEFAULT_MS 30000
/* RFC 5321 4.5.3.2: 5 minutes for MAIL/RCPT, 10 for the final reply; one
 * value covers every reply (and a stalled DATA write). */
#define UP_SMTP_CMD_TIMEOUT_DEFAULT_MS	600000
/* Suggested DATA backpressure: pause the client above HIGH, resume on the
 * drain callback, which fires at LOW or less. */
#define UP_SMTP_DATA_HIGH		(256 * 1024)
#define UP_SMTP_DATA_LOW		(64 * 1024)

/* Login done: called exactly once, never from inside up_smtp_new. why is
 * a short, secret-free reason (NULL on success); for UP_FAIL_AUTH it holds
 * the upstream's reply text (sanitized). The callback may free the
 * up_smtp. */
typedef void up_smtp_done_cb(void *arg, enum up_fail fail, const char *why);
/*
 * The reply to one command: fail == UP_OK with r the upstream's reply
 * (any code; r and its strings are valid only during the call), or a
 * failure (timeout, connection lost, malformed reply) with r NULL and why
 * set; after a failure the connection is closed and every later request
 * fails the same way. Called from the event loop, never from inside the
 * up_smtp_* call that queued it; it may call any up_smtp function,
 * including up_smtp_free.
 */
typedef void up_smtp_reply_cb(void *arg, enum up_fail fail,
		    const struct up_smtp_resp *r, const char *why);
/* Output went down to UP_SMTP_DATA_LOW or less (also after small command
 * writes: treat it as "writing may resume", idempotently), or the
 * connection failed during DATA (writes are then discarded and
 * up_smtp_data_end reports the failure). Called from the loop; may free. */
typedef void up_smtp_drain_cb(void *arg);

/*
 * Starts connecting. helo: the EHLO name (NULL: "postern"). login timeout:
 * t->login_timeout_ms (<= 0: 30 s) from connect to the AUTH reply;
 * cmd_timeout_ms (<= 0: 600 s) for each later reply. t is copied; t->user
 * and t->secret are required (password or OAuth2 access token,
 * t->cred). Never NULL.
 */
struct up_smtp	*up_smtp_new(const struct up_env *, const struct up_target *t,
		    const char *helo, long long cmd_timeout_ms,
		    up_smtp_done_cb *cb, void *arg);
/*
 * Queues one command line (no CRLF): MAIL, RCPT, RSET, NOOP or VRFY only.
 * Returns 0 (cb will be called once), or -1 without calling cb: before
 * login success, between up_smtp_data_begin and the end of that DATA, a
 * line with CR or LF, a line that with CRLF exceeds UP_SMTP_CMD_LINE_MAX,
 * or another command.
 */
int		 up_smtp_cmd(struct up_smtp *, const char *line,
		    up_smtp_reply_cb *cb, void *arg);
/*
 * Queues DATA: cb gets its reply. On 354 the message may be written with
 * up_smtp_data_write and must be ended with up_smtp_data_end; on any other
 * code the transaction is still open (RSET or a new MAIL). Returns -1 as
 * up_smtp_cmd does.
 */
int		 up_smtp_data_begin(struct up_smtp *, up_smtp_reply_cb *cb,
		    void *arg);
/*
 * Moves all of chunk (dot-stuffed message bytes, as the client sent them)
 * to the upstream. 0, or -1 if no DATA is open (no 354 yet). Returns 0 and
 * drops the bytes if the connection has failed meanwhile.
 */
int		 up_smtp_data_write(struct up_smtp *, struct evbuffer *chunk);
/* Bytes waiting to be written to the upstream. */
size_t		 up_smtp_data_pending(const struct up_smtp *);
/* Sets (or with NULL clears) the drain callback. */
void		 up_smtp_set_drain_cb(struct up_smtp *, up_smtp_drain_cb *cb,
		    void *arg);
/*
 * Ends the message: sends ".\r\n" if what was written ends with CRLF (or
 * nothing was written), else "\r\n.\r\n"; cb gets the upstream's final
 * reply. 0, or -1 if no DATA is open. To abandon a message instead (client
 * gone, too big), free the up_smtp: the connection closes without the
 * terminator and the upstream discards the message (RFC 5321 4.1.1.4).
 */
int		 up_smtp_data_end(struct up_smtp *, up_smtp_reply_cb *cb,
		    void *arg);
/* After login success: the upstream's extensions (UP_SMTP_RESP_CAP_*)
 * from its last EHLO, its SIZE limit (0 = none), the AUTH mechanism
 * used. */
unsigned	 up_smtp_caps(const struct up_smtp *);
uint64_t	 up_smtp_size_max(const struct up_smtp *);
const char	*up_smtp_mech(const struct up_smtp *);
/* "192.0.2.7:587" once connected, else "". */
const char	*up_smtp_peer(const struct up_smtp *);
/*
 * Sends QUIT if the connection is idle or only waiting for replies (not
 * in the middle of DATA), then lets a detached closer wait briefly for
 * the reply; else closes at once. No callback is called afterwards.
 * NULL is fine; sets *upp to NULL.
 */
void		 up_smtp_free(struct up_smtp **upp);

#endif
