/*
 * Incremental reader for client SMTP commands (RFC 5321, 6409, 4954, 3207)
 * and the streaming DATA scanner, plus the MAIL FROM / RCPT TO argument
 * parsers. Pure: bytes come from an evbuffer, state lives in struct
 * smtp_parse, an enum comes out; no sockets, no events. Every error carries
 * the complete reply line to send ("501 5.5.4 ...", no CRLF).
 */
#ifndef PROXY_SMTP_PARSE_H
#define PROXY_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct smtp_parse;

#define SMTP_PARSE_LINE_MAX	1024	/* RFC 5321 4.5.3.1.4 asks 512 */
#define SMTP_PARSE_AUTH_LINE_MAX 12288	/* RFC 4954 section 4 */
#define SMTP_PARSE_VERB_MAX	16	/* longest real verb: STARTTLS */
#define SMTP_PARSE_PATH_MAX	256	/* RFC 5321 4.5.3.1.3, with "<" ">" */
/* A MAIL or RCPT line as relayed upstream, CRLF included: RFC 5321
 * 4.5.3.1.4, which every server accepts. Also the size of the buffer that
 * smtp_parse_mail_line and smtp_parse_rcpt_line write into. */
#define SMTP_PARSE_RELAY_MAX	512

enum smtp_parse_rc {
	/* No complete line yet. An incomplete line stays in the evbuffer
	 * (at most the line limit); while the rest of an over-long line is
	 * skipped, its bytes are drained as they come. */
	SMTP_PARSE_AGAIN,
	/* A complete command (or, from smtp_parse_line, a line). */
	SMTP_PARSE_COMMAND,
	/* A malformed line was consumed: reply smtp_parse_error(). */
	SMTP_PARSE_BAD,
	/* The line exceeded its limit: reply smtp_parse_error() ("500 5.5.2
	 * Line too long"). What was buffered is drained, and the rest of the
	 * line is dropped by later calls up to its LF, never buffered. */
	SMTP_PARSE_TOOLONG,
};

/* The verb is upper-cased ASCII letters, 1..SMTP_PARSE_VERB_MAX; args is
 * what follows the verb and its spaces, trailing SP/HTAB removed, "" if
 * none. It holds no control characters and no NUL, but may hold 8-bit
 * bytes (RFC 6531). For AUTH it holds a credential: copy it out; the
 * parser wipes its copy on the next call and on free. */
struct smtp_cmd {
	const char	*verb;
	const char	*args;
	size_t		 argslen;
};

/* line_max bounds a command line including its CRLF; lines that start
 * with "AUTH " and the lines read by smtp_parse_line may reach
 * auth_line_max (RFC 4954). 0 picks the defaults above. */
struct smtp_parse *smtp_parse_new(size_t line_max, size_t auth_line_max);
/* Wipes the buffered line, frees, sets *pp to NULL; NULL is fine. */
void		 smtp_parse_free(struct smtp_parse **pp);
/*
 * Reads at most one command from in; what follows it stays in the
 * evbuffer (PIPELINING). A line ends at LF, with or without CR before it
 * (bare LF is tolerated in commands); a CR anywhere else is an error.
 */
enum smtp_parse_rc smtp_parse_feed(struct smtp_parse *, struct evbuffer *in);
/* After COMMAND from smtp_parse_feed: the command, valid until the next
 * call on the parser. NULL otherwise. */
const struct smtp_cmd *smtp_parse_cmd(const struct smtp_parse *);
/*
 * Reads one raw line (an RFC 4954 AUTH response) of at most auth_line_max
 * bytes. COMMAND: *line_r is the line without its line end, printable
 * ASCII only (base64 or "*"), secret, valid until the next call. BAD for
 * any other byte, TOOLONG as above ("500 5.5.6 Authentication Exchange
 * line is too long").
 */
enum smtp_parse_rc smtp_parse_line(struct smtp_parse *, struct evbuffer *in,
		    const char **line_r);
/* After BAD or TOOLONG: the reply line without CRLF (static text). */
const char	*smtp_parse_error(const struct smtp_parse *);
/* Forgets a pending skip of an over-long line; for the caller that
 * discards its input itself (after STARTTLS, RFC 3207 section 4.2). */
void		 smtp_parse_reset(struct smtp_parse *);

/*
 * DATA phase (RFC 5321 4.1.1.4, 4.5.2). The scanner moves the message
 * from in to out unchanged, still dot-stuffed, for the upstream's own
 * DATA; only the terminating ".\r\n" of "\r\n.\r\n" is consumed and never
 * copied, so out always ends with CRLF or is empty. Only CRLF "." CRLF
 * ends the data (also as the very first line). A bare LF or a CR not
 * followed by LF stops the scan (SMTP_PARSE_DATA_BARE): an upstream that
 * took "\n.\r\n" or "\r\n.\n" for the end would see a different message
 * from ours, and the bytes after it as commands (SMTP smuggling).
 */
enum smtp_parse_data_rc {
	/* Everything decidable has been moved; up to two bytes ("." or ".\r"
	 * at a line start) may stay in `in` until the next bytes arrive. */
	SMTP_PARSE_DATA_AGAIN,
	/* The terminator was consumed; what follows stays in `in`. */
	SMTP_PARSE_DATA_DONE,
	/* The terminator was consumed, but the message exceeded max: reply
	 * "552 5.3.4 Message size exceeds fixed maximum message size". */
	SMTP_PARSE_DATA_TOOBIG,
	/* A bare LF or bare CR (RFC 5321 2.3.8): what came before it may
	 * have been moved, the rest stays in `in`; the message must never
	 * be completed upstream. */
	SMTP_PARSE_DATA_BARE,
};

/* Starts a message; max is the size limit in octets (RFC 1870 counting:
 * CRLFs included, stuffing dots and terminator excluded), 0 = none. */
void		 smtp_parse_data_begin(struct smtp_parse *, uint64_t max);
enum smtp_parse_data_rc smtp_parse_data(struct smtp_parse *,
		    struct evbuffer *in, struct evbuffer *out);
/* The message size so far (RFC 1870 counting). */
uint64_t	 smtp_parse_data_size(const struct smtp_parse *);
/* True as soon as the size went over max: from then on bytes are drained
 * instead of moved, so out holds a truncated message that must never be
 * completed upstream (drop that upstream transaction). */
bool		 smtp_parse_data_is_over(const struct smtp_parse *);

enum smtp_parse_body {
	SMTP_PARSE_BODY_NONE,	/* no BODY= */
	SMTP_PARSE_BODY_7BIT,
	SMTP_PARSE_BODY_8BITMIME,	/* RFC 6152 */
};

/* MAIL FROM:<reverse-path> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]
 * [AUTH=xtext] (RFC 5321, 1870, 6152, 6531, 4954 section 5; AUTH= is
 * checked for syntax, then dropped: it is not kept here, so it is never
 * relayed). */
struct smtp_parse_mail {
	char			 addr[SMTP_PARSE_PATH_MAX];	/* "" for <> */
	bool			 has_size;
	uint64_t		 size;	/* saturates at UINT64_MAX */
	enum smtp_parse_body	 body;
	bool			 smtputf8;
};

/* RCPT TO:<forward-path>: no parameters are supported. */
struct smtp_parse_rcpt {
	char			 addr[SMTP_PARSE_PATH_MAX];
};

/*
 * Parse the arguments of MAIL (starting "FROM:") and RCPT (starting
 * "TO:"): 0, or -1 with err set to the reply line ("501 5.1.7 Bad sender
 * address syntax", "555 5.5.4 Unsupported parameter X", ...). Addresses
 * are kept without the angle brackets; a source route (RFC 5321 4.1.1.3,
 * appendix C) is dropped. Non-ASCII addresses need SMTPUTF8 (the MAIL
 * parameter, passed to the RCPT parser as smtputf8): "553 5.6.7".
 */
int	 smtp_parse_mail_from(const char *args, struct smtp_parse_mail *m,
	    char *err, size_t errlen);
int	 smtp_parse_rcpt_to(const char *args, bool smtputf8,
	    struct smtp_parse_rcpt *r, char *err, size_t errlen);
/*
 * The line to relay upstream for a parsed MAIL or RCPT, without CRLF:
 * "MAIL FROM:<addr>" [" SIZE=n"] [" BODY=..."] [" SMTPUTF8"], "RCPT
 * TO:<addr>". Rebuilt from the parsed fields, never copied from the
 * client's line, which may be as long as [smtp] line_max (spaces, a long
 * AUTH= value): the result always fits SMTP_PARSE_RELAY_MAX, CRLF
 * included, and holds nothing that was not checked. Pass buflen
 * SMTP_PARSE_RELAY_MAX. 0, or -1 if the line and a CRLF would not fit
 * buflen (never with SMTP_PARSE_RELAY_MAX; buf is then truncated).
 */
int	 smtp_parse_mail_line(const struct smtp_parse_mail *m, char *buf,
	    size_t buflen);
int	 smtp_parse_rcpt_line(const struct smtp_parse_rcpt *r, char *buf,
	    size_t buflen);

#endif
