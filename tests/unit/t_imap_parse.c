/*
 * proxy/imap_parse: table-driven cases. Every case is fed whole, split at
 * every byte offset, and one byte at a time; all three must give the same
 * transcript of events, so results never depend on how TCP cut the data.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/xmalloc.h"
#include "proxy/imap_parse.h"
#include "tests/unit/out.h"
#include "tests/unit/test.h"

#define LINE_MAX_DEF	8192
#define LIT_MAX_DEF	8192

/*
 * Transcript notation, events separated by "; ":
 *   "+"                    CONTINUE
 *   "tag NAME a \"q\" {l} <NIL> ( )"  COMMAND: atom, quoted, literal, NIL, list
 *   "BAD tag: error"       BAD
 *   "FATAL: error"         FATAL (feeding stops)
 */
static void
out_event(struct out *o, struct imap_parse *p, enum imap_parse_rc rc)
{
	const struct imap_cmd *cmd = imap_parse_cmd(p);

	if (o->len > 0)
		out_str(o, "; ");
	switch (rc) {
	case IMAP_PARSE_AGAIN:
		out_str(o, "AGAIN?");
		break;
	case IMAP_PARSE_CONTINUE:
		out_str(o, "+");
		break;
	case IMAP_PARSE_BAD:
		CHECK(cmd == NULL);
		out_str(o, "BAD ");
		out_str(o, imap_parse_tag(p));
		out_str(o, ": ");
		out_str(o, imap_parse_error(p));
		break;
	case IMAP_PARSE_FATAL:
		CHECK(cmd == NULL);
		out_str(o, "FATAL: ");
		out_str(o, imap_parse_error(p));
		break;
	case IMAP_PARSE_COMMAND:
		CHECK(cmd != NULL);
		if (cmd == NULL)
			break;
		CHECK_STR(cmd->tag, imap_parse_tag(p));
		out_str(o, cmd->tag);
		out_str(o, " ");
		out_str(o, cmd->name);
		for (int i = 0; i < cmd->nargs; i++) {
			const struct imap_arg *a = &cmd->args[i];

			CHECK(a->s[a->len] == '\0');
			out_str(o, " ");
			switch (a->type) {
			case IMAP_ARG_ATOM:
				out_add(o, a->s, a->len);
				break;
			case IMAP_ARG_QUOTED:
				out_str(o, "\"");
				out_add(o, a->s, a->len);
				out_str(o, "\"");
				break;
			case IMAP_ARG_LITERAL:
				out_str(o, "{");
				out_add(o, a->s, a->len);
				out_str(o, "}");
				break;
			case IMAP_ARG_NIL:
				out_str(o, "<NIL>");
				break;
			case IMAP_ARG_LIST_OPEN:
				out_str(o, "(");
				break;
			case IMAP_ARG_LIST_CLOSE:
				out_str(o, ")");
				break;
			}
		}
		break;
	}
}

/* Feeds until AGAIN (or FATAL); returns false after FATAL. */
static bool
drain(struct out *o, struct imap_parse *p, struct evbuffer *in)
{
	enum imap_parse_rc rc;

	while ((rc = imap_parse_feed(p, in)) != IMAP_PARSE_AGAIN) {
		out_event(o, p, rc);
		if (rc == IMAP_PARSE_FATAL) {
			/* Sticky, and nothing more is consumed. */
			size_t left = evbuffer_get_length(in);

			CHECK(imap_parse_feed(p, in) == IMAP_PARSE_FATAL);
			CHECK_INT(evbuffer_get_length(in), ==, left);
			return false;
		}
	}
	/* AGAIN means everything available was consumed. */
	CHECK_INT(evbuffer_get_length(in), ==, 0);
	return true;
}

/* Feeds in chunks of step bytes; split > 0 first feeds in[0..split) whole
 * (step then applies to the rest). */
static void
feed(struct out *o, const char *in, size_t len, size_t line_max,
    size_t lit_max, size_t split, size_t step)
{
	struct imap_parse	*p = imap_parse_new(line_max, lit_max);
	struct evbuffer		*buf = evbuffer_new();
	size_t			 off = 0, n;

	o->len = 0;
	o->s[0] = '\0';
	if (split > 0) {
		evbuffer_add(buf, in, split);
		off = split;
		if (!drain(o, p, buf))
			goto done;
	}
	while (off < len) {
		n = len - off < step ? len - off : step;
		evbuffer_add(buf, in + off, n);
		off += n;
		if (!drain(o, p, buf))
			goto done;
	}
done:
	imap_parse_free(&p);
	CHECK(p == NULL);
	evbuffer_free(buf);
}

struct tcase {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	const char	*want;
	size_t		 line_max;	/* 0: LINE_MAX_DEF */
	size_t		 lit_max;	/* 0: LIT_MAX_DEF */
};

#define T(in, want)		{ in, 0, want, 0, 0 }
#define TB(in, want)		{ in, sizeof(in) - 1, want, 0, 0 }
#define TL(in, want, l, m)	{ in, 0, want, l, m }

static const struct tcase cases[] = {
	/* Valid commands. */
	T("a1 CAPABILITY\r\n", "a1 CAPABILITY"),
	T("a1 capability\r\n", "a1 CAPABILITY"),
	T("a LOGIN user \"pa\\\"ss\"\r\n", "a LOGIN user \"pa\"ss\""),
	T("a LOGIN \"back\\\\slash\" \"\"\r\n",
	    "a LOGIN \"back\\slash\" \"\""),
	T("a LOGIN {4}\r\nuser {4+}\r\npass\r\n", "+; a LOGIN {user} {pass}"),
	T("a LOGIN {4}\nuser {4}\npass\n", "+; +; a LOGIN {user} {pass}"),
	T("a1 NOOP\r\na2 CAPABILITY\r\n", "a1 NOOP; a2 CAPABILITY"),
	T("a AUTHENTICATE PLAIN AGB1AHA=\r\n", "a AUTHENTICATE PLAIN AGB1AHA="),
	T("a ID (\"name\" \"x\" \"version\" \"1\")\r\n",
	    "a ID ( \"name\" \"x\" \"version\" \"1\" )"),
	T("a ID NIL\r\n", "a ID <NIL>"),
	T("a ID nil \"NIL\" NILS\r\n", "a ID <NIL> \"NIL\" NILS"),
	T("a ID ()\r\n", "a ID ( )"),
	T("a ID ((a) NIL ({1+}\r\nx))\r\n", "a ID ( ( a ) <NIL> ( {x} ) )"),
	TB("a LOGIN {6+}\r\nu\r\n\0\n) \"p\"\r\n",
	    "a LOGIN {u\\x0d\\x0a\\x00\\x0a)} \"p\""),
	T("a LOGIN {0}\r\n {0+}\r\n\r\n", "+; a LOGIN {} {}"),
	T("a LOGIN \"\xc3\xa9t\xe9\" x\r\n", "a LOGIN \"\\xc3\\xa9t\\xe9\" x"),
	T("a LOGIN a]b ~x+\r\n", "a LOGIN a]b ~x+"),
	T("a NOOP\n", "a NOOP"),
	T("a  LOGIN  u   p  \r\n", "a LOGIN u p"),
	T("a.b-c_d!#$&',./:;<=>?@[^`|}~ NOOP\r\n",
	    "a.b-c_d!#$&',./:;<=>?@[^`|}~ NOOP"),
	T("T]1 STARTTLS\r\n", "T]1 STARTTLS"),
	T("abcdefghijklmnopqrstuvwxyz012345 NOOP\r\n",
	    "abcdefghijklmnopqrstuvwxyz012345 NOOP"),
	T("a X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 "
	  "24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 "
	  "46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64\r\n",
	    "a X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 "
	    "24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 "
	    "46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64"),
	T("a ID ((((((((x))))))))\r\n",
	    "a ID ( ( ( ( ( ( ( ( x ) ) ) ) ) ) ) )"),
	/* Exactly line_max bytes (CRLF included) is fine. */
	TL("a NOOP\r\n", "a NOOP", 8, 0),
	TL("a X {3+}\r\nabc\r\n", "a X {abc}", 12, 3),

	/* Bad commands, each followed by a good one: resync. */
	T("\r\nb NOOP\r\n", "BAD *: Empty command; b NOOP"),
	T("\nb NOOP\r\n", "BAD *: Empty command; b NOOP"),
	T("a1\r\nb NOOP\r\n", "BAD a1: Missing command; b NOOP"),
	T("a1 \r\nb NOOP\r\n", "BAD a1: Missing command; b NOOP"),
	T(" NOOP\r\nb NOOP\r\n", "BAD *: Missing tag; b NOOP"),
	T("a\"b NOOP\r\nb NOOP\r\n", "BAD *: Invalid tag; b NOOP"),
	T("+ NOOP\r\nb NOOP\r\n", "BAD *: Invalid tag; b NOOP"),
	T("* NOOP\r\nb NOOP\r\n", "BAD *: Invalid tag; b NOOP"),
	T("a{1} NOOP\r\nb NOOP\r\n", "BAD *: Invalid tag; b NOOP"),
	T("\xc3\xa9 NOOP\r\nb NOOP\r\n", "BAD *: Invalid tag; b NOOP"),
	T("abcdefghijklmnopqrstuvwxyz0123456 NOOP\r\nb NOOP\r\n",
	    "BAD *: Tag too long; b NOOP"),
	T("a NO\"OP\r\nb NOOP\r\n", "BAD a: Invalid command name; b NOOP"),
	T("a {4+}\r\nNOOP\r\nb NOOP\r\n",
	    "BAD a: Invalid command name; b NOOP"),
	T("a NO\rOP\r\nb NOOP\r\n", "BAD a: CR without LF; b NOOP"),
	T("a LOGIN \"abc\r\nb NOOP\r\n",
	    "BAD a: Unterminated quoted string; b NOOP"),
	T("a LOGIN \"abc\\\r\nb NOOP\r\n",
	    "BAD a: Unterminated quoted string; b NOOP"),
	T("a LOGIN \"a\\x\" p\r\nb NOOP\r\n",
	    "BAD a: Invalid escape in quoted string; b NOOP"),
	TB("a LOGIN \"a\0b\" p\r\nb NOOP\r\n",
	    "BAD a: NUL in quoted string; b NOOP"),
	T("a LOGIN u\"x\" p\r\nb NOOP\r\n",
	    "BAD a: Invalid characters in atom; b NOOP"),
	T("a LOGIN u%x p\r\nb NOOP\r\n",
	    "BAD a: Invalid characters in atom; b NOOP"),
	T("a LOGIN \xc3\xa9 p\r\nb NOOP\r\n",
	    "BAD a: Invalid characters in atom; b NOOP"),
	T("a LOGIN \"u\"\"p\"\r\nb NOOP\r\n",
	    "BAD a: Missing space after argument; b NOOP"),
	T("a LOGIN {abc}\r\nb NOOP\r\n", "BAD a: Invalid literal size; b NOOP"),
	T("a LOGIN {}\r\nb NOOP\r\n", "BAD a: Invalid literal size; b NOOP"),
	T("a LOGIN {+}\r\nb NOOP\r\n", "BAD a: Invalid literal size; b NOOP"),
	T("a LOGIN {5+x}\r\nb NOOP\r\n", "BAD a: Invalid literal size; b NOOP"),
	T("a LOGIN {99999999999999999999}\r\nb NOOP\r\n",
	    "BAD a: Invalid literal size; b NOOP"),
	T("a LOGIN {3} x\r\nb NOOP\r\n",
	    "BAD a: Missing CRLF after literal size; b NOOP"),
	T("a X ~{3}\r\nb NOOP\r\n", "BAD a: Literal8 not allowed; b NOOP"),
	T("a X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 "
	  "24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 "
	  "46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65\r\n"
	  "b NOOP\r\n",
	    "BAD a: Too many arguments; b NOOP"),
	T("a ID (\"a\" \"b\"\r\nb NOOP\r\n", "BAD a: Missing ')'; b NOOP"),
	T("a ID \"a\")\r\nb NOOP\r\n", "BAD a: Unexpected ')'; b NOOP"),
	T("a ID )\r\nb NOOP\r\n", "BAD a: Unexpected ')'; b NOOP"),
	T("a ID (((((((((x)))))))))\r\nb NOOP\r\n",
	    "BAD a: Lists nested too deeply; b NOOP"),
	/* A synchronizing literal too large: no "+" is sent, so the client
	 * sends no bytes and the next line is a new command. */
	TL("a LOGIN {17}\r\nb NOOP\r\n",
	    "BAD a: Literal too large; b NOOP", 0, 16),
	TL("a LOGIN {16}\r\n0123456789abcdef x\r\n",
	    "+; a LOGIN {0123456789abcdef} x", 0, 16),
	/* LITERAL+ bodies of a bad command are skipped, never parsed. */
	T("a X \"\\q\" {8+}\r\nb NOOP\r\n\r\nc NOOP\r\n",
	    "BAD a: Invalid escape in quoted string; c NOOP"),
	T("a X ~{8+}\r\nb NOOP\r\n x {3+}\nz\r\n\nc NOOP\r\n",
	    "BAD a: Literal8 not allowed; c NOOP"),
	T("a ID ) {0+}\r\n\r\nc NOOP\r\n", "BAD a: Unexpected ')'; c NOOP"),
	T("a X \"\\q\" {8}\r\nb NOOP\r\n", "BAD a: Invalid escape in quoted "
	  "string; b NOOP"),
	TL("a X \"\\q\" {5+}\r\n", "FATAL: Literal too large", 0, 4),

	/* Fatal. */
	TL("a LOGIN {17+}\r\n01234567890123456\r\n",
	    "FATAL: Literal too large", 0, 16),
	T("a LOGIN {99999999999999999999+}\r\nb NOOP\r\n",
	    "FATAL: Invalid literal size"),
	TL("a NOOPX\r\n", "FATAL: Line too long", 8, 0),
	TL("a NOOP\r\nb NOOPX\r\n", "a NOOP; FATAL: Line too long", 8, 0),
	/* Literal bodies do not count, their announcements do. */
	TL("a X {3+}\r\nabc \r\n", "FATAL: Line too long", 12, 3),
	/* A bad line is bounded too. */
	TL("a \"\\q\" xxxxxxxxxx\r\n", "FATAL: Line too long", 12, 0),
};

TEST(imap_parse_table)
{
	static struct out out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		size_t lm = c->line_max ? c->line_max : LINE_MAX_DEF;
		size_t xm = c->lit_max ? c->lit_max : LIT_MAX_DEF;

		feed(&out, c->in, len, lm, xm, 0, len);
		out_same(out.s, c->want, i, 0);
		/* One byte at a time. */
		feed(&out, c->in, len, lm, xm, 0, 1);
		out_same(out.s, c->want, i, 1);
		/* Split at every offset; stop at the first difference. */
		for (size_t k = 1; k < len; k++) {
			feed(&out, c->in, len, lm, xm, k, len);
			if (!out_same(out.s, c->want, i, k))
				break;
		}
	}
}

/* One COMMAND per call; the next command stays in the evbuffer, and the
 * command stays valid until the next feed. */
TEST(imap_parse_pipelining)
{
	static const char in[] = "a1 LOGIN u p\r\na2 NOOP\r\nx";
	struct imap_parse	*p = imap_parse_new(LINE_MAX_DEF, LIT_MAX_DEF);
	struct evbuffer		*buf = evbuffer_new();
	const struct imap_cmd	*cmd;

	evbuffer_add(buf, in, sizeof(in) - 1);
	CHECK(imap_parse_feed(p, buf) == IMAP_PARSE_COMMAND);
	CHECK_INT(evbuffer_get_length(buf), ==, strlen("a2 NOOP\r\nx"));
	cmd = imap_parse_cmd(p);
	CHECK(cmd != NULL);
	CHECK_STR(cmd->tag, "a1");
	CHECK_STR(cmd->name, "LOGIN");
	CHECK_INT(cmd->nargs, ==, 2);
	CHECK_STR(cmd->args[0].s, "u");
	CHECK_INT(cmd->args[0].len, ==, 1);
	CHECK_STR(cmd->args[1].s, "p");
	CHECK_STR(imap_parse_error(p), "");
	CHECK(imap_parse_feed(p, buf) == IMAP_PARSE_COMMAND);
	CHECK_INT(evbuffer_get_length(buf), ==, 1);
	CHECK_STR(imap_parse_cmd(p)->tag, "a2");
	CHECK(imap_parse_feed(p, buf) == IMAP_PARSE_AGAIN);
	CHECK(imap_parse_cmd(p) == NULL);
	CHECK_STR(imap_parse_tag(p), "*");	/* "x" is not complete yet */
	CHECK_INT(evbuffer_get_length(buf), ==, 0);
	imap_parse_free(&p);
	imap_parse_free(&p);
	evbuffer_free(buf);
}

/* A 100 KB line without CRLF is refused once line_max bytes are in,
 * without waiting for the end of line or buffering the rest. */
TEST(imap_parse_long_line)
{
	size_t			 n = 100 * 1024;
	char			*big = xmalloc(n);
	struct imap_parse	*p = imap_parse_new(LINE_MAX_DEF, LIT_MAX_DEF);
	struct evbuffer		*buf = evbuffer_new();

	memcpy(big, "a LOGIN ", 8);
	memset(big + 8, 'x', n - 8);
	evbuffer_add(buf, big, n);
	CHECK(imap_parse_feed(p, buf) == IMAP_PARSE_FATAL);
	CHECK_STR(imap_parse_error(p), "Line too long");
	CHECK_INT(evbuffer_get_length(buf), >=, n - LINE_MAX_DEF - 1);
	imap_parse_free(&p);
	evbuffer_drain(buf, evbuffer_get_length(buf));

	/* The same, a byte at a time: FATAL after line_max + 1 bytes. */
	p = imap_parse_new(LINE_MAX_DEF, LIT_MAX_DEF);
	for (size_t i = 0; i < n; i++) {
		enum imap_parse_rc rc;

		evbuffer_add(buf, big + i, 1);
		rc = imap_parse_feed(p, buf);
		if (rc != IMAP_PARSE_AGAIN) {
			CHECK(rc == IMAP_PARSE_FATAL);
			CHECK_INT(i, ==, LINE_MAX_DEF);
			break;
		}
	}
	imap_parse_free(&p);
	evbuffer_free(buf);
	free(big);
}

/* A literal as large as literal_max, spread over 100 evbuffer chains (more
 * than one evbuffer_peek() call returns). */
TEST(imap_parse_big_literal)
{
	size_t			 n = 100000;
	char			*body = xmalloc(n);
	struct imap_parse	*p = imap_parse_new(64, n);
	struct evbuffer		*buf = evbuffer_new();
	const struct imap_cmd	*cmd;

	for (size_t i = 0; i < n; i++)
		body[i] = (char)('A' + i / 1000 % 26);
	evbuffer_add_printf(buf, "t AUTHENTICATE PLAIN {%zu+}\r\n", n);
	for (size_t i = 0; i < n; i += 1000)
		evbuffer_add_reference(buf, body + i, 1000, NULL, NULL);
	evbuffer_add_printf(buf, "\r\n");
	CHECK(imap_parse_feed(p, buf) == IMAP_PARSE_COMMAND);
	cmd = imap_parse_cmd(p);
	CHECK(cmd != NULL && cmd->nargs == 2);
	if (cmd != NULL && cmd->nargs == 2) {
		CHECK(cmd->args[1].type == IMAP_ARG_LITERAL);
		CHECK_INT(cmd->args[1].len, ==, n);
		CHECK(memcmp(cmd->args[1].s, body, n) == 0);
	}
	CHECK_INT(evbuffer_get_length(buf), ==, 0);
	imap_parse_free(&p);
	evbuffer_free(buf);
	free(body);
}
