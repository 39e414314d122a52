/*
 * Incremental reader for IMAP server responses (RFC 9051 section 7):
 * tagged, untagged and continuation lines, with literals ({n}) inside
 * untagged responses either skipped or collected. Pure: bytes in, one
 * response out at a time, no I/O. Also the capability-list helpers.
 */
#ifndef UPSTREAM_UP_RESP_H
#define UPSTREAM_UP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct up_resp_reader;

#define UP_RESP_LINE_MAX	(64 * 1024)	/* one response incl. a CR and
						   collected literals, no LF */
#define UP_RESP_TAG_MAX		64
#define UP_RESP_LITERAL_MAX	4294967295ULL	/* RFC 9051 number: 32 bit */

enum up_resp_kind {
	UP_RESP_UNTAGGED,	/* "* ..." */
	UP_RESP_TAGGED,		/* "tag ..." */
	UP_RESP_CONT,		/* "+ ..." */
};

enum up_resp_status {
	UP_RESP_NONE,		/* untagged data ("* 3 EXISTS") */
	UP_RESP_OK,
	UP_RESP_NO,
	UP_RESP_BAD,
	UP_RESP_PREAUTH,
	UP_RESP_BYE,
};

/*
 * One response. All pointers point into the reader and stay valid until
 * the next up_resp_feed/up_resp_read or up_resp_reader_free. line and the
 * text pointers are NUL-terminated (a collected literal may contain NULs;
 * linelen is exact).
 */
struct up_resp {
	enum up_resp_kind	 kind;
	char			 tag[UP_RESP_TAG_MAX];	/* "" unless TAGGED */
	enum up_resp_status	 status;
	const char		*line;		/* whole response, no CRLF */
	size_t			 linelen;
	const char		*rest;		/* after "* ", "tag " or "+ " */
	const char		*resp_text;	/* after the status word (the
						   code too), else = rest */
	const char		*code;		/* inside "[...]", or NULL */
	size_t			 codelen;
	const char		*text;		/* after the status and code */
};

/* collect: keep literal bytes in line (as "{n}\r\n" + data, exactly as
 * sent); else they are dropped and line keeps only "{n}". */
struct up_resp_reader *up_resp_reader_new(bool collect);
void	 up_resp_reader_free(struct up_resp_reader **);
/* Forget any partial response (after STARTTLS: nothing sent in the clear
 * before the handshake may be used afterwards). */
void	 up_resp_reader_reset(struct up_resp_reader *);

/*
 * Consumes bytes from buf until one response is complete. Returns 1 (a
 * response in *r, *used_r bytes consumed), 0 (all len bytes consumed, need
 * more) or -1 (line too long, bad literal or malformed line; see
 * up_resp_error). After -1 the reader stays failed.
 */
int	 up_resp_feed(struct up_resp_reader *, const uint8_t *buf, size_t len,
	    size_t *used_r, struct up_resp *r);
/* The same over an evbuffer: drains exactly the bytes consumed, so what
 * follows a complete response stays in the buffer. */
int	 up_resp_read(struct up_resp_reader *, struct evbuffer *in,
	    struct up_resp *r);
/* Reason for the last -1 ("response line too long", ...). */
const char *up_resp_error(const struct up_resp_reader *);

/*
 * Capabilities of a "* CAPABILITY ..." response or of a "[CAPABILITY ...]"
 * response code: a malloc'd copy of the list (the text after
 * "CAPABILITY "), or NULL if r carries none.
 */
char	*up_resp_capability(const struct up_resp *r);
/* true if the space-separated list caps holds cap (ASCII case-insensitive,
 * whole tokens only). */
bool	 up_resp_cap_has(const char *caps, const char *cap);
/* Space-separated list of the names after "AUTH=" in caps (malloc'd,
 * possibly ""). */
char	*up_resp_cap_auth_mechs(const char *caps);
/* malloc'd copy of caps without the capabilities that only matter before
 * login or that the proxy must not announce for the upstream: STARTTLS,
 * LOGINDISABLED, SASL-IR and every AUTH=. */
char	*up_resp_cap_filter(const char *caps);

#endif
