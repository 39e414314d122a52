/*
 * Incremental parser for pre-login IMAP commands (RFC 9051 / RFC 3501
 * syntax, RFC 7888 LITERAL+). Pure: bytes come from an evbuffer, state
 * lives in struct imap_parse, an enum comes out; no sockets, no events.
 * It owns the decoded command (tag, name, arguments) until the next feed.
 */
#ifndef PROXY_IMAP_PARSE_H
#define PROXY_IMAP_PARSE_H

#include <stddef.h>

struct evbuffer;
struct imap_parse;

#define IMAP_PARSE_TAG_MAX	32	/* nginx rejects longer tags */
#define IMAP_PARSE_ARGS_MAX	64	/* ID: 30 pairs (RFC 2971) + 2 parens */
#define IMAP_PARSE_DEPTH_MAX	8	/* list nesting; only ID uses lists */

enum imap_parse_rc {
	/* Need more bytes; everything in the evbuffer has been consumed. */
	IMAP_PARSE_AGAIN,
	/* A synchronizing literal {n} was announced: send
	 * "+ Ready for literal data\r\n", then call imap_parse_feed again. */
	IMAP_PARSE_CONTINUE,
	/* A complete command: see imap_parse_cmd(). */
	IMAP_PARSE_COMMAND,
	/* A malformed command was skipped entirely (through its line end, and
	 * through any LITERAL+ bodies it announced): reply
	 * "<imap_parse_tag()> BAD <imap_parse_error()>" and keep feeding. */
	IMAP_PARSE_BAD,
	/* The line reached line_max, or a {n+} literal exceeds literal_max
	 * (its bytes cannot be skipped safely): reply
	 * "* BYE <imap_parse_error()>" and close. Sticky: every later feed
	 * returns FATAL again without consuming anything. */
	IMAP_PARSE_FATAL,
};

enum imap_arg_type {
	IMAP_ARG_ATOM,		/* ASTRING-CHARs, including ']' */
	IMAP_ARG_QUOTED,	/* unescaped contents */
	IMAP_ARG_LITERAL,	/* raw bytes; may hold NUL, CR, LF, 8-bit */
	IMAP_ARG_NIL,		/* unquoted NIL, any case; s is the text */
	IMAP_ARG_LIST_OPEN,	/* "(": lists are flattened into markers */
	IMAP_ARG_LIST_CLOSE,	/* ")" */
};

/* s is always NUL-terminated at s[len]; only a literal may also hold NUL
 * bytes before that, so use len. s may hold a credential: callers copy it
 * out and the parser wipes its copy on the next feed and on free. */
struct imap_arg {
	enum imap_arg_type	 type;
	char			*s;
	size_t			 len;
};

struct imap_cmd {
	const char		*tag;	/* 1..IMAP_PARSE_TAG_MAX chars */
	const char		*name;	/* an atom, upper-cased */
	int			 nargs;	/* list markers included */
	struct imap_arg		*args;
};

/* line_max bounds one command's bytes, line ends and literal announcements
 * included, literal bodies excluded; literal_max bounds each literal. */
struct imap_parse *imap_parse_new(size_t line_max, size_t literal_max);
/* Wipes any buffered command, frees, sets *pp to NULL; NULL is fine. */
void		 imap_parse_free(struct imap_parse **pp);
/* Consumes from in, stopping right after the event it returns: at most one
 * command per call, bytes after it stay in the evbuffer (pipelining, or the
 * AUTHENTICATE response lines the caller reads itself). */
enum imap_parse_rc imap_parse_feed(struct imap_parse *, struct evbuffer *in);
/* After COMMAND: the command, valid until the next imap_parse_feed or
 * imap_parse_free. NULL after any other result. */
const struct imap_cmd *imap_parse_cmd(const struct imap_parse *);
/* After BAD or FATAL: a short static reason ("Invalid tag", ...); "" when
 * there is none. */
const char	*imap_parse_error(const struct imap_parse *);
/* The current (or last BAD) command's tag, or "*" when it had no valid
 * complete tag. Valid until the next imap_parse_feed. */
const char	*imap_parse_tag(const struct imap_parse *);

#endif
