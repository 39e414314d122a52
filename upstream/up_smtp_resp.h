/*
 * Incremental reader for SMTP server replies (RFC 5321 section 4.2):
 * "250-..." lines then "250 ...", with enhanced status codes (RFC 2034,
 * RFC 3463) split off; and the EHLO keyword parser. Pure: bytes from an
 * evbuffer in, one reply out at a time, no I/O.
 */
#ifndef UPSTREAM_UP_SMTP_RESP_H
#define UPSTREAM_UP_SMTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct up_smtp_resp_reader;

#define UP_SMTP_RESP_LINE_MAX	4096	/* one line including CRLF */
#define UP_SMTP_RESP_LINES_MAX	100	/* lines in one reply */

/*
 * One reply; the pointers point into the reader and stay valid until the
 * next up_smtp_resp_read, up_smtp_resp_reader_reset or _free.
 */
struct up_smtp_resp {
	int		 code;		/* 200..599, the same on every line */
	char		 ecode[16];	/* "2.1.0" from the first line, or "" */
	int		 nlines;	/* 1..UP_SMTP_RESP_LINES_MAX */
	/* Each line's text after "NNN-"/"NNN " and after its enhanced code
	 * (if it has one), lines joined by "\n"; NUL-terminated. */
	const char	*text;
	size_t		 textlen;
	/* The reply as received, every line ending in CRLF (a bare LF is
	 * turned into CRLF): what a proxy relays verbatim. */
	const char	*wire;
	size_t		 wirelen;
};

struct up_smtp_resp_reader *up_smtp_resp_reader_new(void);
void	 up_smtp_resp_reader_free(struct up_smtp_resp_reader **);
/* Forget a partial reply and clear a failure (after STARTTLS). */
void	 up_smtp_resp_reader_reset(struct up_smtp_resp_reader *);

/*
 * Consumes complete lines from in until a reply is complete: returns 1 (a
 * reply in *r; the bytes after it stay in in), 0 (need more; an incomplete
 * line stays in in) or -1 (see up_smtp_resp_error). Rejected: a line over
 * UP_SMTP_RESP_LINE_MAX (also before its LF arrives), more than
 * UP_SMTP_RESP_LINES_MAX lines, a code that is not three digits starting
 * 2-5, codes that differ between lines, a separator other than "-"/" ",
 * control characters (HTAB allowed; UTF-8 text is, RFC 6531). After -1
 * the reader stays failed.
 */
int	 up_smtp_resp_read(struct up_smtp_resp_reader *, struct evbuffer *in,
	    struct up_smtp_resp *r);
/* Reason for the last -1 ("reply line too long", ...); "" if none. */
const char *up_smtp_resp_error(const struct up_smtp_resp_reader *);

/* EHLO extensions (RFC 5321 4.1.1.1): the keywords we act on. */
#define UP_SMTP_RESP_CAP_PIPELINING	0x0001	/* RFC 2920 */
#define UP_SMTP_RESP_CAP_SIZE		0x0002	/* RFC 1870 */
#define UP_SMTP_RESP_CAP_8BITMIME	0x0004	/* RFC 6152 */
#define UP_SMTP_RESP_CAP_SMTPUTF8	0x0008	/* RFC 6531 */
#define UP_SMTP_RESP_CAP_STARTTLS	0x0010	/* RFC 3207 */
#define UP_SMTP_RESP_CAP_ENHANCED	0x0020	/* RFC 2034 */
#define UP_SMTP_RESP_CAP_AUTH		0x0040	/* RFC 4954 */
#define UP_SMTP_RESP_CAP_CHUNKING	0x0080	/* RFC 3030 */
#define UP_SMTP_RESP_CAP_DSN		0x0100	/* RFC 3461 */

struct up_smtp_resp_ehlo {
	unsigned	 caps;		/* UP_SMTP_RESP_CAP_* */
	uint64_t	 size_max;	/* SIZE n; 0 if absent or no limit */
	char		 auth[256];	/* AUTH (and AUTH=) mechanisms, upper
					   case, space-separated, no dups */
};

/* Reads the keywords of a 250 EHLO reply (lines after the first). */
void	 up_smtp_resp_ehlo(const struct up_smtp_resp *r,
	    struct up_smtp_resp_ehlo *e);

#endif
