/*
 * Pre-login IMAP command parser: a byte-level state machine that consumes
 * the evbuffer as it goes and keeps the decoded command in its own buffer,
 * so memory stays bounded by line_max plus the literals whatever the client
 * sends (nginx ngx_mail_imap_parse_command works the same way). After a
 * syntax error it discards through the line end, following LITERAL+
 * announcements so that literal bytes are never parsed as commands.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/xmalloc.h"
#include "proxy/imap_parse.h"

enum state {
	ST_TAG,
	ST_NAME_START,	/* after "tag SP" */
	ST_NAME,
	ST_ARG_START,	/* after SP or "(": an argument, ")", SP or EOL */
	ST_ARG_SEP,	/* after an argument: SP, ")" or EOL */
	ST_ATOM,
	ST_QUOTED,
	ST_QUOTED_ESC,
	ST_LIT_SIZE,	/* after "{" */
	ST_LIT_PLUS,	/* after "{n+" */
	ST_LIT_EOL,	/* after "}" */
	ST_LIT_LF,	/* after "}" CR */
	ST_LIT_BODY,
	ST_CR,		/* CR that must end the line */
	ST_SKIP,	/* bad command: discard through LF */
	ST_SKIP_BODY,	/* bad command: discard a LITERAL+ body */
	ST_DONE,	/* returned COMMAND or BAD: reset on the next feed */
	ST_FATAL,
};

/* What a bad line being skipped ends with, to spot "{n+}" CRLF. A
 * synchronizing "{n}" needs no tracking: the client waits for our "+",
 * which it never gets (RFC 9051 section 4.3). */
enum skip_lit {
	SK_NONE,
	SK_OPEN,	/* "{" */
	SK_DIGITS,	/* "{1*DIGIT" */
	SK_PLUS,	/* "{1*DIGIT+" */
	SK_NONSYNC,	/* "{1*DIGIT+}" */
	SK_NONSYNC_CR,	/* "{1*DIGIT+}" CR */
};

/* Outcome of one byte; the last four end a feed. */
enum act {
	A_NEXT,		/* byte consumed, go on */
	A_REDO,		/* state changed, run the same byte again */
	A_CONTINUE,
	A_COMMAND,
	A_BAD,
	A_FATAL,
};

struct imap_parse {
	size_t		 line_max;
	size_t		 literal_max;
	enum state	 state;
	size_t		 line_len;	/* literal bodies excluded */

	/* Tag, name and argument texts, each NUL-terminated; the tag starts
	 * at offset 0. Wiped before reuse: it may hold a password. */
	uint8_t		*buf;
	size_t		 len;
	size_t		 cap;

	bool		 have_tag;
	bool		 have_name;
	bool		 have_cmd;
	size_t		 name_off;
	int		 depth;
	int		 nargs;
	size_t		 arg_off[IMAP_PARSE_ARGS_MAX];
	struct imap_arg	 args[IMAP_PARSE_ARGS_MAX];
	struct imap_cmd	 cmd;

	uint64_t	 lit_n;		/* announced, saturates past 2^32 */
	bool		 lit_digits;
	bool		 lit_plus;
	size_t		 lit_left;	/* body bytes still to read or skip */
	enum skip_lit	 sk;

	const char	*error;
};

/* RFC 9051 ATOM-CHAR: CHAR minus atom-specials. */
static bool
is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '%':
	case '*':
	case '"':
	case '\\':
	case ']':
		return false;
	}
	return true;
}

static bool
is_astring_char(uint8_t c)
{
	return c == ']' || is_atom_char(c);
}

/* RFC 9051: tag = 1*<any ASTRING-CHAR except "+">. */
static bool
is_tag_char(uint8_t c)
{
	return c != '+' && is_astring_char(c);
}

/* Grows buf by copying, so a freed block never holds a credential. */
static void
reserve(struct imap_parse *p, size_t more)
{
	uint8_t	*nbuf;
	size_t	 ncap;

	if (more <= p->cap - p->len)
		return;
	ncap = p->cap * 2;
	if (ncap < p->len + more)
		ncap = p->len + more;
	nbuf = xmalloc(ncap);
	memcpy(nbuf, p->buf, p->len);
	explicit_bzero(p->buf, p->len);
	free(p->buf);
	p->buf = nbuf;
	p->cap = ncap;
}

static void
push(struct imap_parse *p, uint8_t c)
{
	reserve(p, 1);
	p->buf[p->len++] = c;
}

static void
reset(struct imap_parse *p)
{
	explicit_bzero(p->buf, p->len);
	p->len = 0;
	p->state = ST_TAG;
	p->line_len = 0;
	p->have_tag = false;
	p->have_name = false;
	p->depth = 0;
	p->nargs = 0;
	p->sk = SK_NONE;
	p->error = NULL;
}

/* Syntax error: remember why and discard the rest of the command. */
static enum act
fail(struct imap_parse *p, const char *why)
{
	p->error = why;
	p->state = ST_SKIP;
	p->sk = SK_NONE;
	return A_REDO;
}

static enum act
fatal(struct imap_parse *p, const char *why)
{
	p->error = why;
	p->state = ST_FATAL;
	return A_FATAL;
}

/* An error found at the LF itself: the line is already skipped. */
static enum act
bad_eol(struct imap_parse *p, const char *why)
{
	p->error = why;
	p->state = ST_DONE;
	return A_BAD;
}

/* NULL if n is an acceptable literal size. */
static const char *
lit_check(const struct imap_parse *p, uint64_t n)
{
	if (n > UINT32_MAX)	/* RFC 9051 number: 32-bit unsigned */
		return "Invalid literal size";
	if (n > p->literal_max)
		return "Literal too large";
	return NULL;
}

static void
lit_digit(uint64_t *n, uint8_t c)
{
	if (*n <= UINT32_MAX)	/* stays far below UINT64_MAX */
		*n = *n * 10 + (uint64_t)(c - '0');
}

static bool
arg_new(struct imap_parse *p, enum imap_arg_type type)
{
	if (p->nargs == IMAP_PARSE_ARGS_MAX)
		return false;
	p->arg_off[p->nargs] = p->len;
	p->args[p->nargs].type = type;
	p->nargs++;
	return true;
}

static void
arg_end(struct imap_parse *p)
{
	p->args[p->nargs - 1].len = p->len - p->arg_off[p->nargs - 1];
	push(p, '\0');
}

static enum act
list_open(struct imap_parse *p)
{
	if (p->depth == IMAP_PARSE_DEPTH_MAX)
		return fail(p, "Lists nested too deeply");
	if (!arg_new(p, IMAP_ARG_LIST_OPEN))
		return fail(p, "Too many arguments");
	push(p, '(');
	arg_end(p);
	p->depth++;
	p->state = ST_ARG_START;
	return A_NEXT;
}

static enum act
list_close(struct imap_parse *p)
{
	if (p->depth == 0)
		return fail(p, "Unexpected ')'");
	if (!arg_new(p, IMAP_ARG_LIST_CLOSE))
		return fail(p, "Too many arguments");
	push(p, ')');
	arg_end(p);
	p->depth--;
	p->state = ST_ARG_SEP;
	return A_NEXT;
}

/* After the LF of a line that parsed. */
static enum act
eol(struct imap_parse *p)
{
	if (!p->have_tag)
		return bad_eol(p, "Empty command");
	if (!p->have_name)
		return bad_eol(p, "Missing command");
	if (p->depth > 0)
		return bad_eol(p, "Missing ')'");
	p->cmd.tag = (const char *)p->buf;
	p->cmd.name = (const char *)p->buf + p->name_off;
	p->cmd.nargs = p->nargs;
	p->cmd.args = p->args;
	for (int i = 0; i < p->nargs; i++)
		p->args[i].s = (char *)p->buf + p->arg_off[i];
	p->have_cmd = true;
	p->state = ST_DONE;
	return A_COMMAND;
}

/* CR or LF where the line may end. A bare LF is accepted (Dovecot). */
static enum act
line_end(struct imap_parse *p, uint8_t c)
{
	if (c == '\r') {
		p->state = ST_CR;
		return A_NEXT;
	}
	return eol(p);
}

static enum act
lit_close(struct imap_parse *p)
{
	const char *why;

	if ((why = lit_check(p, p->lit_n)) != NULL) {
		/* RFC 7888: a LITERAL+ client sends the bytes at once. */
		if (p->lit_plus)
			return fatal(p, why);
		(void)fail(p, why);
		return A_NEXT;
	}
	p->state = ST_LIT_EOL;
	return A_NEXT;
}

static enum act
lit_start(struct imap_parse *p)
{
	p->lit_left = (size_t)p->lit_n;
	reserve(p, p->lit_left + 1);
	if (p->lit_left == 0) {
		arg_end(p);
		p->state = ST_ARG_SEP;
	} else
		p->state = ST_LIT_BODY;
	return p->lit_plus ? A_NEXT : A_CONTINUE;
}

static enum act
atom_end(struct imap_parse *p)
{
	size_t off = p->arg_off[p->nargs - 1];

	if (p->len - off == 3 &&
	    strncasecmp((char *)p->buf + off, "NIL", 3) == 0)
		p->args[p->nargs - 1].type = IMAP_ARG_NIL;
	arg_end(p);
	p->state = ST_ARG_SEP;
	return A_REDO;
}

static enum act
skip_byte(struct imap_parse *p, uint8_t c)
{
	const char *why;

	switch (c) {
	case '\n':
		if (p->sk != SK_NONSYNC && p->sk != SK_NONSYNC_CR) {
			p->state = ST_DONE;
			return A_BAD;
		}
		if ((why = lit_check(p, p->lit_n)) != NULL)
			return fatal(p, why);
		p->sk = SK_NONE;
		p->lit_left = (size_t)p->lit_n;
		if (p->lit_left > 0)
			p->state = ST_SKIP_BODY;
		return A_NEXT;
	case '{':
		p->sk = SK_OPEN;
		p->lit_n = 0;
		break;
	case '+':
		p->sk = p->sk == SK_DIGITS ? SK_PLUS : SK_NONE;
		break;
	case '}':
		p->sk = p->sk == SK_PLUS ? SK_NONSYNC : SK_NONE;
		break;
	case '\r':
		p->sk = p->sk == SK_NONSYNC ? SK_NONSYNC_CR : SK_NONE;
		break;
	default:
		if (c >= '0' && c <= '9' &&
		    (p->sk == SK_OPEN || p->sk == SK_DIGITS)) {
			lit_digit(&p->lit_n, c);
			p->sk = SK_DIGITS;
		} else
			p->sk = SK_NONE;
		break;
	}
	return A_NEXT;
}

static enum act
parse_byte(struct imap_parse *p, uint8_t c)
{
	switch (p->state) {
	case ST_TAG:
		if (is_tag_char(c)) {
			if (p->len == IMAP_PARSE_TAG_MAX)
				return fail(p, "Tag too long");
			push(p, c);
			return A_NEXT;
		}
		if (c != ' ' && c != '\r' && c != '\n')
			return fail(p, "Invalid tag");
		if (p->len == 0 && c == ' ')
			return fail(p, "Missing tag");
		if (p->len > 0) {
			push(p, '\0');
			p->have_tag = true;
		}
		if (c == ' ') {
			p->state = ST_NAME_START;
			return A_NEXT;
		}
		return line_end(p, c);
	case ST_NAME_START:
		if (c == ' ')
			return A_NEXT;
		if (c == '\r' || c == '\n')
			return line_end(p, c);
		p->name_off = p->len;
		p->state = ST_NAME;
		return A_REDO;
	case ST_NAME:
		if (is_atom_char(c)) {
			push(p, c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
			return A_NEXT;
		}
		if (c != ' ' && c != '\r' && c != '\n')
			return fail(p, "Invalid command name");
		push(p, '\0');
		p->have_name = true;
		if (c == ' ') {
			p->state = ST_ARG_START;
			return A_NEXT;
		}
		return line_end(p, c);
	case ST_ARG_START:
		switch (c) {
		case ' ':
			return A_NEXT;
		case '\r':
		case '\n':
			return line_end(p, c);
		case '(':
			return list_open(p);
		case ')':
			return list_close(p);
		case '"':
			if (!arg_new(p, IMAP_ARG_QUOTED))
				return fail(p, "Too many arguments");
			p->state = ST_QUOTED;
			return A_NEXT;
		case '{':
			if (!arg_new(p, IMAP_ARG_LITERAL))
				return fail(p, "Too many arguments");
			p->lit_n = 0;
			p->lit_digits = false;
			p->lit_plus = false;
			p->state = ST_LIT_SIZE;
			return A_NEXT;
		}
		if (!is_astring_char(c))
			return fail(p, "Invalid characters in atom");
		if (!arg_new(p, IMAP_ARG_ATOM))
			return fail(p, "Too many arguments");
		push(p, c);
		p->state = ST_ATOM;
		return A_NEXT;
	case ST_ARG_SEP:
		switch (c) {
		case ' ':
			p->state = ST_ARG_START;
			return A_NEXT;
		case ')':
			return list_close(p);
		case '\r':
		case '\n':
			return line_end(p, c);
		}
		return fail(p, "Missing space after argument");
	case ST_ATOM:
		if (is_astring_char(c)) {
			push(p, c);
			return A_NEXT;
		}
		if (c == ' ' || c == ')' || c == '\r' || c == '\n')
			return atom_end(p);
		/* RFC 3516 literal8 "~{n}" is for APPEND, never pre-login. */
		if (c == '{' && p->len - p->arg_off[p->nargs - 1] == 1 &&
		    p->buf[p->len - 1] == '~')
			return fail(p, "Literal8 not allowed");
		return fail(p, "Invalid characters in atom");
	case ST_QUOTED:
		switch (c) {
		case '"':
			arg_end(p);
			p->state = ST_ARG_SEP;
			return A_NEXT;
		case '\\':
			p->state = ST_QUOTED_ESC;
			return A_NEXT;
		case '\r':
		case '\n':
			return fail(p, "Unterminated quoted string");
		case '\0':
			return fail(p, "NUL in quoted string");
		}
		/* 8-bit passes: RFC 9051 utf8-quoted allows UTF-8. */
		push(p, c);
		return A_NEXT;
	case ST_QUOTED_ESC:
		if (c == '"' || c == '\\') {
			push(p, c);
			p->state = ST_QUOTED;
			return A_NEXT;
		}
		if (c == '\r' || c == '\n')
			return fail(p, "Unterminated quoted string");
		return fail(p, "Invalid escape in quoted string");
	case ST_LIT_SIZE:
		if (c >= '0' && c <= '9') {
			lit_digit(&p->lit_n, c);
			p->lit_digits = true;
			return A_NEXT;
		}
		if (!p->lit_digits || (c != '+' && c != '}'))
			return fail(p, "Invalid literal size");
		if (c == '}')
			return lit_close(p);
		p->lit_plus = true;
		p->state = ST_LIT_PLUS;
		return A_NEXT;
	case ST_LIT_PLUS:
		if (c != '}')
			return fail(p, "Invalid literal size");
		return lit_close(p);
	case ST_LIT_EOL:
		if (c == '\r') {
			p->state = ST_LIT_LF;
			return A_NEXT;
		}
		if (c == '\n')
			return lit_start(p);
		return fail(p, "Missing CRLF after literal size");
	case ST_LIT_LF:
		if (c == '\n')
			return lit_start(p);
		return fail(p, "Missing CRLF after literal size");
	case ST_CR:
		if (c == '\n')
			return eol(p);
		return fail(p, "CR without LF");
	case ST_SKIP:
		return skip_byte(p, c);
	case ST_LIT_BODY:
	case ST_SKIP_BODY:
	case ST_DONE:
	case ST_FATAL:
		break;
	}
	abort();	/* bodies are copied in bulk by run() */
}

/* Runs the parser over n bytes; returns how many it consumed. */
static size_t
run(struct imap_parse *p, const uint8_t *d, size_t n, enum act *a)
{
	size_t i = 0, k;

	while (i < n && *a == A_NEXT) {
		if (p->state == ST_LIT_BODY || p->state == ST_SKIP_BODY) {
			k = n - i < p->lit_left ? n - i : p->lit_left;
			if (p->state == ST_LIT_BODY) {
				memcpy(p->buf + p->len, d + i, k);
				p->len += k;
			}
			i += k;
			p->lit_left -= k;
			if (p->lit_left > 0)
				continue;
			if (p->state == ST_LIT_BODY) {
				arg_end(p);
				p->state = ST_ARG_SEP;
			} else
				p->state = ST_SKIP;
			continue;
		}
		/* Checked per byte, not at LF: a line without end never gets
		 * more than line_max bytes in. */
		if (++p->line_len > p->line_max) {
			*a = fatal(p, "Line too long");
			break;
		}
		do
			*a = parse_byte(p, d[i]);
		while (*a == A_REDO);
		i++;
	}
	return i;
}

struct imap_parse *
imap_parse_new(size_t line_max, size_t literal_max)
{
	struct imap_parse *p = xcalloc(1, sizeof(*p));

	p->line_max = line_max;
	p->literal_max = literal_max;
	p->cap = 256;
	p->buf = xmalloc(p->cap);
	reset(p);
	return p;
}

void
imap_parse_free(struct imap_parse **pp)
{
	struct imap_parse *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	explicit_bzero(p->buf, p->len);
	free(p->buf);
	free(p);
}

enum imap_parse_rc
imap_parse_feed(struct imap_parse *p, struct evbuffer *in)
{
	struct evbuffer_iovec	 v[8];
	enum act		 a = A_NEXT;
	size_t			 used;
	int			 nv;

	if (p->state == ST_FATAL)
		return IMAP_PARSE_FATAL;
	if (p->state == ST_DONE)
		reset(p);
	p->have_cmd = false;
	while (a == A_NEXT && evbuffer_get_length(in) > 0) {
		nv = evbuffer_peek(in, -1, NULL, v, 8);
		if (nv > 8)
			nv = 8;
		used = 0;
		for (int i = 0; i < nv && a == A_NEXT; i++)
			used += run(p, v[i].iov_base, v[i].iov_len, &a);
		evbuffer_drain(in, used);
	}
	switch (a) {
	case A_NEXT:
		return IMAP_PARSE_AGAIN;
	case A_CONTINUE:
		return IMAP_PARSE_CONTINUE;
	case A_COMMAND:
		return IMAP_PARSE_COMMAND;
	case A_BAD:
		return IMAP_PARSE_BAD;
	case A_FATAL:
	case A_REDO:
		break;
	}
	return IMAP_PARSE_FATAL;
}

const struct imap_cmd *
imap_parse_cmd(const struct imap_parse *p)
{
	return p->have_cmd ? &p->cmd : NULL;
}

const char *
imap_parse_error(const struct imap_parse *p)
{
	return p->error != NULL ? p->error : "";
}

const char *
imap_parse_tag(const struct imap_parse *p)
{
	return p->have_tag ? (const char *)p->buf : "*";
}
