/*
 * proxy/smtp_parse: table-driven cases for the command reader, the AUTH
 * line reader, MAIL/RCPT arguments and the DATA scanner. Stream cases are
 * fed whole, one byte at a time, split at every offset and (DATA) at every
 * pair of offsets; all must give the same transcript.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/xmalloc.h"
#include "proxy/smtp_parse.h"
#include "tests/unit/out.h"
#include "tests/unit/test.h"

/*
 * Command transcript: "VERB|args" per command, "BAD:reply",
 * "TOOLONG:reply", separated by "; ", then " rest=N" (bytes left in the
 * evbuffer at the end). lines: read with smtp_parse_line ("L:line").
 */
static void
cmd_drain(struct out *o, struct smtp_parse *p, struct evbuffer *in,
    bool lines)
{
	enum smtp_parse_rc	 rc;
	const char		*line = NULL;

	for (;;) {
		rc = lines ? smtp_parse_line(p, in, &line) :
		    smtp_parse_feed(p, in);
		if (rc == SMTP_PARSE_AGAIN)
			break;
		if (o->len > 0)
			out_str(o, "; ");
		switch (rc) {
		case SMTP_PARSE_COMMAND:
			if (lines) {
				CHECK(line != NULL);
				out_str(o, "L:");
				out_str(o, line);
				break;
			}
			CHECK(smtp_parse_cmd(p) != NULL);
			out_str(o, smtp_parse_cmd(p)->verb);
			out_str(o, "|");
			out_add(o, smtp_parse_cmd(p)->args,
			    smtp_parse_cmd(p)->argslen);
			CHECK_INT(strlen(smtp_parse_cmd(p)->args), ==,
			    smtp_parse_cmd(p)->argslen);
			break;
		case SMTP_PARSE_BAD:
			CHECK(smtp_parse_cmd(p) == NULL);
			out_str(o, "BAD:");
			out_str(o, smtp_parse_error(p));
			break;
		case SMTP_PARSE_TOOLONG:
			CHECK(smtp_parse_cmd(p) == NULL);
			out_str(o, "TOOLONG:");
			out_str(o, smtp_parse_error(p));
			break;
		case SMTP_PARSE_AGAIN:
			break;
		}
	}
	CHECK(smtp_parse_cmd(p) == NULL);
}

static void
cmd_feed(struct out *o, const char *in, size_t len, size_t lm, size_t am,
    bool lines, size_t split, size_t step)
{
	struct smtp_parse	*p = smtp_parse_new(lm, am);
	struct evbuffer		*buf = evbuffer_new();
	size_t			 off = 0, n;
	char			 rest[32];

	out_reset(o);
	if (split > 0) {
		evbuffer_add(buf, in, split);
		off = split;
		cmd_drain(o, p, buf, lines);
	}
	while (off < len) {
		n = len - off < step ? len - off : step;
		evbuffer_add(buf, in + off, n);
		off += n;
		cmd_drain(o, p, buf, lines);
		/* Memory stays bounded by the limit. */
		CHECK_INT(evbuffer_get_length(buf), <,
		    (am ? am : SMTP_PARSE_AUTH_LINE_MAX) + step);
	}
	snprintf(rest, sizeof(rest), " rest=%zu", evbuffer_get_length(buf));
	out_str(o, rest);
	smtp_parse_free(&p);
	CHECK(p == NULL);
	evbuffer_free(buf);
}

struct ccase {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	const char	*want;
	size_t		 line_max;
	size_t		 auth_max;
	bool		 lines;
};

#define C(in, want)		{ in, 0, want, 0, 0, false }
#define CB(in, want)		{ in, sizeof(in) - 1, want, 0, 0, false }
#define CL(in, want, l, a)	{ in, 0, want, l, a, false }
#define LN(in, want)		{ in, 0, want, 0, 0, true }

#define UNREC	"BAD:500 5.5.2 Syntax error, command unrecognized"
#define VCHAR	"BAD:500 5.5.2 Syntax error, invalid character in command"
#define ACHAR	"BAD:501 5.5.2 Syntax error, invalid character in argument"
#define LONG	"TOOLONG:500 5.5.2 Line too long"
#define ALONG	"TOOLONG:500 5.5.6 Authentication Exchange line is too long"

static const struct ccase ccases[] = {
	C("NOOP\r\n", "NOOP| rest=0"),
	C("noop\r\n", "NOOP| rest=0"),
	C("mail FROM:<a@b> SIZE=10\r\n", "MAIL|FROM:<a@b> SIZE=10 rest=0"),
	C("EHLO  client.example \t \r\n", "EHLO|client.example rest=0"),
	C("QUIT\n", "QUIT| rest=0"),
	C("RSET \r\n", "RSET| rest=0"),
	C("HELO a\tb\r\n", "HELO|a\\x09b rest=0"),
	C("RCPT TO:<j\xc3\xb6rg@b>\r\n", "RCPT|TO:<j\\xc3\\xb6rg@b> rest=0"),
	C("EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\nDATA\r\n",
	    "EHLO|x; MAIL|FROM:<>; RCPT|TO:<a@b>; DATA| rest=0"),
	C("NOOP\r\nRS", "NOOP| rest=2"),
	C("STARTTLS\r\n", "STARTTLS| rest=0"),
	/* Bad lines, each followed by a good one. */
	C("\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("   \r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C(" NOOP\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("MAIL:FROM\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("HELO\tx\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("N00P\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("ABCDEFGHIJKLMNOPQ\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("ABCDEFGHIJKLMNOP\r\n", "ABCDEFGHIJKLMNOP| rest=0"),
	C("\xc3\xa9HLO\r\nNOOP\r\n", UNREC "; NOOP| rest=0"),
	C("NO\rOP\r\nNOOP\r\n", VCHAR "; NOOP| rest=0"),
	C("NOOP\r\r\nNOOP\r\n", VCHAR "; NOOP| rest=0"),
	C("\x01NOOP\r\nNOOP\r\n", VCHAR "; NOOP| rest=0"),
	CB("NO\0OP\r\nNOOP\r\n", VCHAR "; NOOP| rest=0"),
	C("MAIL FROM:<a\x01" "b>\r\nNOOP\r\n", ACHAR "; NOOP| rest=0"),
	C("MAIL FROM:<a\rb>\r\nNOOP\r\n", ACHAR "; NOOP| rest=0"),
	CB("MAIL FROM:<a\0b>\r\nNOOP\r\n", ACHAR "; NOOP| rest=0"),
	C("MAIL FROM:<a\x7f" "b>\r\nNOOP\r\n", ACHAR "; NOOP| rest=0"),
	/* Limits: line_max counts the CRLF. */
	CL("NOOP 123456789\r\nRSET\r\n", "NOOP|123456789; RSET| rest=0", 16, 0),
	CL("NOOP 1234567890\r\nRSET\r\n", LONG "; RSET| rest=0", 16, 0),
	CL("NOOP 123456789\nRSET\r\n", "NOOP|123456789; RSET| rest=0", 15, 0),
	CL("NOOP 12345678901234567890", LONG " rest=0", 16, 0),
	CL("NOOP 12345678901234567890\r\nRSET\r\nNO", LONG "; RSET| rest=2",
	    16, 0),
	CL("NOOP\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nyyyyyyyyyyyy"
	   "yyyyyyyyyyyyyyyyyy\nRSET\r\n",
	    "NOOP|; " LONG "; " LONG "; RSET| rest=0", 16, 0),
	/* AUTH lines may be longer (RFC 4954), up to auth_line_max. */
	CL("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nNOOP\r\n",
	    "AUTH|PLAIN AGFsaWNlAHNlY3JldA==; NOOP| rest=0", 16, 64),
	CL("auth plain AGFsaWNlAHNlY3JldA==\r\n",
	    "AUTH|plain AGFsaWNlAHNlY3JldA== rest=0", 16, 64),
	CL("AUTH PLAIN AGFsaWNlAHNlY3JldAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	   "AA"
	   "AAAAAAAAAAAAAAAAAAA==\r\nNOOP\r\n", ALONG "; NOOP| rest=0", 16, 64),
	CL("AUTHX PLAIN AGFsaWNlAHNlY3JldA==\r\nNOOP\r\n",
	    LONG "; NOOP| rest=0", 16, 64),
	/* AUTH exchange lines. */
	LN("AGFsaWNlAHNlY3JldA==\r\n*\r\n\r\n",
	    "L:AGFsaWNlAHNlY3JldA==; L:*; L: rest=0"),
	LN("ab cd\r\nYQ==\n", "BAD:501 5.5.2 Invalid characters in response; "
	    "L:YQ== rest=0"),
	LN("ab\x80\r\nYQ", "BAD:501 5.5.2 Invalid characters in response "
	    "rest=2"),
};

TEST(smtp_parse_commands)
{
	static struct out out;

	for (size_t i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++) {
		const struct ccase *c = &ccases[i];
		size_t len = c->len ? c->len : strlen(c->in);

		cmd_feed(&out, c->in, len, c->line_max, c->auth_max, c->lines,
		    0, len);
		out_same(out.s, c->want, i, 0);
		cmd_feed(&out, c->in, len, c->line_max, c->auth_max, c->lines,
		    0, 1);
		out_same(out.s, c->want, i, 1);
		for (size_t k = 1; k < len; k++) {
			cmd_feed(&out, c->in, len, c->line_max, c->auth_max,
			    c->lines, k, len);
			if (!out_same(out.s, c->want, i, k))
				break;
		}
	}
}

/* One command per call; pipelined bytes stay in the evbuffer. */
TEST(smtp_parse_pipelining)
{
	static const char in[] = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA";
	struct smtp_parse	*p = smtp_parse_new(0, 0);
	struct evbuffer		*buf = evbuffer_new();
	const struct smtp_cmd	*cmd;

	evbuffer_add(buf, in, sizeof(in) - 1);
	CHECK(smtp_parse_feed(p, buf) == SMTP_PARSE_COMMAND);
	CHECK_INT(evbuffer_get_length(buf), ==, strlen("RCPT TO:<c@d>\r\nDA"));
	cmd = smtp_parse_cmd(p);
	CHECK_STR(cmd->verb, "MAIL");
	CHECK_STR(cmd->args, "FROM:<a@b>");
	CHECK_STR(smtp_parse_error(p), "");
	CHECK(smtp_parse_feed(p, buf) == SMTP_PARSE_COMMAND);
	CHECK_STR(smtp_parse_cmd(p)->verb, "RCPT");
	CHECK(smtp_parse_feed(p, buf) == SMTP_PARSE_AGAIN);
	CHECK(smtp_parse_cmd(p) == NULL);
	CHECK_INT(evbuffer_get_length(buf), ==, 2);
	smtp_parse_free(&p);
	smtp_parse_free(&p);
	evbuffer_free(buf);
}

/* A 1 MB line without LF is refused once line_max bytes are in, and its
 * rest is dropped as it arrives, never buffered; reset ends the skip. */
TEST(smtp_parse_long_line)
{
	struct smtp_parse	*p = smtp_parse_new(0, 0);
	struct evbuffer		*buf = evbuffer_new();
	char			 chunk[1000];
	int			 toolong = 0;

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 1000; i++) {
		evbuffer_add(buf, chunk, sizeof(chunk));
		switch (smtp_parse_feed(p, buf)) {
		case SMTP_PARSE_TOOLONG:
			toolong++;
			CHECK_INT(i, ==, 1);	/* 2000 >= 1024 bytes */
			break;
		case SMTP_PARSE_AGAIN:
			break;
		default:
			CHECK(0);
		}
		CHECK_INT(evbuffer_get_length(buf), <, SMTP_PARSE_LINE_MAX);
	}
	CHECK_INT(toolong, ==, 1);
	evbuffer_add(buf, "xx\r\nNOOP\r\n", 10);
	CHECK(smtp_parse_feed(p, buf) == SMTP_PARSE_COMMAND);
	CHECK_STR(smtp_parse_cmd(p)->verb, "NOOP");
	/* Skipping, then STARTTLS: the caller drains and resets. */
	evbuffer_add(buf, chunk, sizeof(chunk));
	evbuffer_add(buf, chunk, sizeof(chunk));
	CHECK(smtp_parse_feed(p, buf) == SMTP_PARSE_TOOLONG);
	smtp_parse_reset(p);
	evbuffer_add(buf, "NOOP\r\n", 6);
	CHECK(smtp_parse_feed(p, buf) == SMTP_PARSE_COMMAND);
	smtp_parse_free(&p);
	evbuffer_free(buf);
}

/* MAIL FROM / RCPT TO arguments. */

struct acase {
	bool		 rcpt;
	bool		 utf8;		/* RCPT: MAIL had SMTPUTF8 */
	const char	*args;
	const char	*want;		/* "<addr> size body utf8" or error */
};

static const struct acase acases[] = {
	{ false, false, "FROM:<a@b.example>", "<a@b.example> - - -" },
	{ false, false, "from:<>", "<> - - -" },
	{ false, false, "FROM: <a@b>", "<a@b> - - -" },
	{ false, false, "FROM:<a@b> SIZE=12345 BODY=8BITMIME",
	    "<a@b> 12345 8BITMIME -" },
	{ false, false, "FROM:<a@b> body=7bit size=0", "<a@b> 0 7BIT -" },
	{ false, false, "FROM:<a@b>   SIZE=1  ", "<a@b> 1 - -" },
	{ false, false, "FROM:<a@b> SIZE=99999999999999999999",
	    "<a@b> 18446744073709551615 - -" },
	{ false, false, "FROM:<j\xc3\xb6rg@b\xc3\xa9.example> SMTPUTF8",
	    "<j\\xc3\\xb6rg@b\\xc3\\xa9.example> - - SMTPUTF8" },
	{ false, false, "FROM:<\"a b\\\"c\"@[192.0.2.1]>",
	    "<\"a b\\\"c\"@[192.0.2.1]> - - -" },
	{ false, false, "FROM:<@r1.example,@r2.example:a@b>", "<a@b> - - -" },
	{ false, false, "FROM:<a.b+tag@sub-1.x_y.example> AUTH=<>",
	    "<a.b+tag@sub-1.x_y.example> - - -" },
	{ false, false, "FROM:<a@[IPv6:2001:db8::1]>",
	    "<a@[IPv6:2001:db8::1]> - - -" },
	{ false, false, "FROM:a@b", "501 5.5.4 Syntax: MAIL FROM:<address>" },
	{ false, false, "TO:<a@b>", "501 5.5.4 Syntax: MAIL FROM:<address>" },
	{ false, false, "FROM", "501 5.5.4 Syntax: MAIL FROM:<address>" },
	{ false, false, "", "501 5.5.4 Syntax: MAIL FROM:<address>" },
	{ false, false, "FROM:<a@b", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<evil", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a.", "501 5.1.7 Bad sender address syntax" },
	{ true, false, "TO:<x", "501 5.1.3 Bad recipient address syntax" },
	{ false, false, "FROM:<a>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<@b>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a..b@c>",
	    "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<.a@c>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@b.>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@-b>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@b->", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a b@c>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@b>x", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@b><c@d>",
	    "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<\"a@b>", "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a@[1.2.3.4>",
	    "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<postmaster>",
	    "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a\xff@b> SMTPUTF8",
	    "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<a\xc3@b> SMTPUTF8",
	    "501 5.1.7 Bad sender address syntax" },
	{ false, false, "FROM:<j\xc3\xb6rg@b>",
	    "553 5.6.7 Non-ASCII sender address requires SMTPUTF8" },
	{ false, false, "FROM:<a@b> SIZE=", "501 5.5.4 Bad parameter syntax" },
	{ false, false, "FROM:<a@b> SIZE", "501 5.5.4 Bad SIZE parameter" },
	{ false, false, "FROM:<a@b> SIZE=1x", "501 5.5.4 Bad SIZE parameter" },
	{ false, false, "FROM:<a@b> SIZE=-1", "501 5.5.4 Bad SIZE parameter" },
	{ false, false, "FROM:<a@b> SIZE=123456789012345678901",
	    "501 5.5.4 Bad SIZE parameter" },
	{ false, false, "FROM:<a@b> SIZE=1 SIZE=2",
	    "501 5.5.4 Duplicate SIZE parameter" },
	{ false, false, "FROM:<a@b> BODY=BINARYMIME",
	    "555 5.5.4 Unsupported BODY type" },
	{ false, false, "FROM:<a@b> BODY", "501 5.5.4 Bad BODY parameter" },
	{ false, false, "FROM:<a@b> BODY=7BIT BODY=7BIT",
	    "501 5.5.4 Duplicate BODY parameter" },
	{ false, false, "FROM:<a@b> SMTPUTF8=yes",
	    "501 5.5.4 SMTPUTF8 takes no value" },
	{ false, false, "FROM:<a@b> SMTPUTF8 SMTPUTF8",
	    "501 5.5.4 Duplicate SMTPUTF8 parameter" },
	{ false, false, "FROM:<a@b> RET=HDRS",
	    "555 5.5.4 Unsupported parameter RET" },
	{ false, false, "FROM:<a@b> X-FOO",
	    "555 5.5.4 Unsupported parameter X-FOO" },
	{ false, false, "FROM:<a@b> =x", "501 5.5.4 Bad parameter syntax" },
	{ false, false, "FROM:<a@b> A=b=c", "501 5.5.4 Bad parameter syntax" },
	{ false, false, "FROM:<a@b> -A", "501 5.5.4 Bad parameter syntax" },
	{ true, false, "TO:<a@b.example>", "<a@b.example>" },
	{ true, false, "to: <a@b>", "<a@b>" },
	{ true, false, "TO:<Postmaster>", "<Postmaster>" },
	{ true, false, "TO:<@x.example:a@b>", "<a@b>" },
	{ true, true, "TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90"
	    ".example>", "<\\xe7\\x94\\xa8\\xe6\\x88\\xb7@\\xe4\\xbe\\x8b\\xe5"
	    "\\xad\\x90.example>" },
	{ true, false, "TO:<j\xc3\xb6rg@b>",
	    "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8" },
	{ true, false, "TO:<>", "501 5.1.3 Bad recipient address syntax" },
	{ true, false, "TO:<a>", "501 5.1.3 Bad recipient address syntax" },
	{ true, false, "TO:<a@b", "501 5.1.3 Bad recipient address syntax" },
	{ true, false, "TO:<a@b>c", "501 5.1.3 Bad recipient address syntax" },
	{ true, false, "TO:a@b", "501 5.5.4 Syntax: RCPT TO:<address>" },
	{ true, false, "FROM:<a@b>", "501 5.5.4 Syntax: RCPT TO:<address>" },
	{ true, false, "TO:<a@b> NOTIFY=NEVER",
	    "555 5.5.4 Unsupported parameter NOTIFY" },
	{ true, false, "TO:<a@b> =", "501 5.5.4 Bad parameter syntax" },
	{ true, false, "TO:<a@b>  ", "<a@b>" },
};

static void
long_addr(char *buf, size_t local, size_t domain)
{
	size_t o = 0;

	buf[o++] = '<';
	memset(buf + o, 'l', local);
	o += local;
	buf[o++] = '@';
	/* labels of at most 63 */
	for (size_t i = 0; i < domain; i++)
		buf[o++] = i % 60 == 59 && i + 1 < domain ? '.' : 'd';
	buf[o++] = '>';
	buf[o] = '\0';
}

TEST(smtp_parse_mail_rcpt)
{
	struct smtp_parse_mail	 m;
	struct smtp_parse_rcpt	 r;
	char			 err[128], args[600];
	static struct out	 out;

	for (size_t i = 0; i < sizeof(acases) / sizeof(acases[0]); i++) {
		const struct acase *c = &acases[i];
		int rc;

		out_reset(&out);
		err[0] = '\0';
		if (c->rcpt) {
			rc = smtp_parse_rcpt_to(c->args, c->utf8, &r, err,
			    sizeof(err));
			if (rc == 0) {
				out_str(&out, "<");
				out_str(&out, r.addr);
				out_str(&out, ">");
			}
		} else {
			rc = smtp_parse_mail_from(c->args, &m, err,
			    sizeof(err));
			if (rc == 0) {
				char n[32];

				out_str(&out, "<");
				out_str(&out, m.addr);
				out_str(&out, "> ");
				snprintf(n, sizeof(n), "%llu",
				    (unsigned long long)m.size);
				out_str(&out, m.has_size ? n : "-");
				out_str(&out, m.body == SMTP_PARSE_BODY_7BIT ?
				    " 7BIT" : m.body ==
				    SMTP_PARSE_BODY_8BITMIME ? " 8BITMIME" :
				    " -");
				out_str(&out, m.smtputf8 ? " SMTPUTF8" : " -");
			}
		}
		if (rc != 0) {
			CHECK_INT(rc, ==, -1);
			out_str(&out, err);
		}
		out_same(out.s, c->want, i, 0);
	}
	/* RFC 5321 4.5.3.1.3: 256 octets with the brackets. */
	strcpy(args, "TO:");
	long_addr(args + 3, 64, 189);
	CHECK_INT(strlen(args + 3), ==, 256);
	CHECK_INT(smtp_parse_rcpt_to(args, false, &r, err, sizeof(err)), ==, 0);
	CHECK_INT(strlen(r.addr), ==, 254);
	long_addr(args + 3, 64, 190);
	CHECK_INT(smtp_parse_rcpt_to(args, false, &r, err, sizeof(err)), ==,
	    -1);
	CHECK_STR(err, "501 5.1.3 Recipient address too long");
	strcpy(args, "FROM:");
	long_addr(args + 5, 300, 10);
	CHECK_INT(smtp_parse_mail_from(args, &m, err, sizeof(err)), ==, -1);
	CHECK_STR(err, "501 5.1.7 Sender address too long");
	/* A label over 63 octets. */
	strcpy(args, "TO:<a@");
	memset(args + 6, 'x', 64);
	strcpy(args + 70, ">");
	CHECK_INT(smtp_parse_rcpt_to(args, false, &r, err, sizeof(err)), ==,
	    -1);
	CHECK_STR(err, "501 5.1.3 Bad recipient address syntax");
	/* A tiny err buffer truncates, never overflows. */
	CHECK_INT(smtp_parse_rcpt_to("TO:<>", false, &r, err, 8), ==, -1);
	CHECK_STR(err, "501 5.1");
}

/* The relayed MAIL/RCPT lines: rebuilt from the parse, so a client line
 * up to line_max (long AUTH=, runs of spaces) never makes an upstream line
 * over RFC 5321's 512 octets. */
struct rcase {
	bool		 rcpt;
	bool		 utf8;
	const char	*pre;		/* args: pre, n spaces or xtext, post */
	size_t		 n;
	const char	*post;
	const char	*want;
};

static const struct rcase rcases[] = {
	{ false, false, "FROM:<a@b>", 0, "", "MAIL FROM:<a@b>" },
	{ false, false, "from:<>", 0, "", "MAIL FROM:<>" },
	{ false, false, "FROM:<a@b> AUTH=", 1100, "",
	    "MAIL FROM:<a@b>" },
	{ false, false, "FROM:<a@b> AUTH=<>", 0, "", "MAIL FROM:<a@b>" },
	{ false, false, "FROM:", 1100, "<a@b>", "MAIL FROM:<a@b>" },
	{ false, false, "FROM:<a@b>", 1100, "SIZE=10",
	    "MAIL FROM:<a@b> SIZE=10" },
	{ false, false, "FROM:<a@b> body=8bitmime size=007 AUTH=x SMTPUTF8",
	    0, "", "MAIL FROM:<a@b> SIZE=7 BODY=8BITMIME SMTPUTF8" },
	{ false, false, "FROM:<a@b> BODY=7bit", 0, "",
	    "MAIL FROM:<a@b> BODY=7BIT" },
	{ false, false, "FROM:<@r1.example,@r2.example:a@b>", 0, "",
	    "MAIL FROM:<a@b>" },
	{ false, false, "FROM:<\"a b\"@[192.0.2.1]>", 0, "",
	    "MAIL FROM:<\"a b\"@[192.0.2.1]>" },
	{ true, false, "TO:<x@y>", 0, "", "RCPT TO:<x@y>" },
	{ true, false, "TO:", 1100, "<x@y>", "RCPT TO:<x@y>" },
	{ true, false, "TO:<x@y>", 1100, "", "RCPT TO:<x@y>" },
	{ true, false, "to:<postmaster>", 0, "", "RCPT TO:<postmaster>" },
	{ true, false, "TO:<@x.example:x@y>", 0, "", "RCPT TO:<x@y>" },
	{ true, true, "TO:<j\xc3\xb6rg@b>", 0, "", "RCPT TO:<j\xc3\xb6rg@b>" },
};

TEST(smtp_parse_relay_lines)
{
	struct smtp_parse_mail	 m;
	struct smtp_parse_rcpt	 r;
	char			 err[128], line[SMTP_PARSE_RELAY_MAX];
	char			 args[2048];

	for (size_t i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		const struct rcase	*c = &rcases[i];
		size_t			 o = strlen(c->pre);
		int			 rc;

		memcpy(args, c->pre, o);
		/* After "AUTH=": xtext; elsewhere: spaces. */
		memset(args + o, o > 0 && args[o - 1] == '=' ? 'x' : ' ', c->n);
		strcpy(args + o + c->n, c->post);
		if (c->rcpt) {
			CHECK_INT(smtp_parse_rcpt_to(args, c->utf8, &r, err,
			    sizeof(err)), ==, 0);
			rc = smtp_parse_rcpt_line(&r, line, sizeof(line));
		} else {
			CHECK_INT(smtp_parse_mail_from(args, &m, err,
			    sizeof(err)), ==, 0);
			rc = smtp_parse_mail_line(&m, line, sizeof(line));
		}
		CHECK_INT(rc, ==, 0);
		out_same(line, c->want, i, 0);
	}
	/* The longest possible lines still fit, CRLF included. */
	strcpy(args, "FROM:");
	long_addr(args + 5, 64, 189);
	strcat(args, " SIZE=99999999999999999999 BODY=8BITMIME SMTPUTF8 AUTH=");
	memset(args + strlen(args), 'x', 900);
	args[5 + 256 + 55 + 900] = '\0';
	CHECK_INT(strlen(args), ==, 5 + 256 + 55 + 900);
	CHECK_INT(smtp_parse_mail_from(args, &m, err, sizeof(err)), ==, 0);
	CHECK_INT(smtp_parse_mail_line(&m, line, sizeof(line)), ==, 0);
	CHECK_INT(strlen(line), ==, 10 + 256 + 26 + 14 + 9);
	CHECK_INT(strlen(line) + 2, <=, SMTP_PARSE_RELAY_MAX);
	CHECK(strstr(line, "AUTH") == NULL);
	strcpy(args, "TO:");
	long_addr(args + 3, 64, 189);
	CHECK_INT(smtp_parse_rcpt_to(args, false, &r, err, sizeof(err)), ==, 0);
	CHECK_INT(smtp_parse_rcpt_line(&r, line, sizeof(line)), ==, 0);
	CHECK_INT(strlen(line), ==, 8 + 256);
	/* A short buffer is refused (truncated), never overrun. */
	CHECK_INT(smtp_parse_rcpt_line(&r, line, 20), ==, -1);
	CHECK_INT(strlen(line), ==, 19);
	CHECK_INT(smtp_parse_rcpt_to("TO:<x@y>", false, &r, err, sizeof(err)),
	    ==, 0);
	CHECK_INT(smtp_parse_rcpt_line(&r, line, 14), ==, -1);	/* 13 + CRLF */
	CHECK_INT(smtp_parse_rcpt_line(&r, line, 15), ==, 0);
}

/* DATA */

struct dcase {
	const char	*in;
	const char	*out;		/* NULL: not checked (TOOBIG) */
	const char	*rc;		/* "DONE", "TOOBIG", "AGAIN" */
	uint64_t	 size;
	size_t		 rest;		/* bytes left in `in` */
	uint64_t	 max;
};

static const struct dcase dcases[] = {
	{ ".\r\n", "", "DONE", 0, 0, 0 },
	{ ".\r\nQUIT\r\n", "", "DONE", 0, 6, 0 },
	{ "a\r\n.\r\n", "a\r\n", "DONE", 3, 0, 0 },
	{ "\r\n.\r\n", "\r\n", "DONE", 2, 0, 0 },
	{ "..\r\n.\r\n", "..\r\n", "DONE", 3, 0, 0 },
	{ "a\r\n..b\r\n.\r\nQUIT\r\n", "a\r\n..b\r\n", "DONE", 7, 6, 0 },
	{ "a\r\n...\r\n.\r\n", "a\r\n...\r\n", "DONE", 7, 0, 0 },
	/* A bare LF or CR stops the scan (RFC 5321 2.3.8: SMTP smuggling
	 * hides commands behind "\n.\r\n" or "\r\n.\n"); out is checked to
	 * hold none of it. */
	{ "a\n.\nb\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\n.\nb\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\n.\r\nb\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\n.\rb\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\n.\r\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\n\n.\r\nMAIL FROM:<x>\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\n.\rX\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "ab\ncd\r\n.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "a\r\n\r\n.\r\n", "a\r\n\r\n", "DONE", 5, 0, 0 },
	{ "x.\r\n.\r\n", "x.\r\n", "DONE", 4, 0, 0 },
	{ ".\r.\r\n", NULL, "BARE", 0, 0, 0 },
	{ "abc", "abc", "AGAIN", 3, 0, 0 },
	{ "abc\r\n", "abc\r\n", "AGAIN", 5, 0, 0 },
	{ "abc\r\n.", "abc\r\n", "AGAIN", 5, 1, 0 },
	{ "abc\r\n.\r", "abc\r\n", "AGAIN", 5, 2, 0 },
	{ "\xff\x00\x80\r\n.\r\n", "\xff\x00\x80\r\n", "DONE", 5, 0, 0 },
	/* Size limit: RFC 1870 counting. */
	{ "ab\r\n.\r\n", "ab\r\n", "DONE", 4, 0, 4 },
	{ "..b\r\n.\r\n", "..b\r\n", "DONE", 4, 0, 4 },
	{ "ab\r\n.\r\nNOOP\r\n", NULL, "TOOBIG", 4, 6, 3 },
	{ "0123456789\r\n0123456789\r\n.\r\nNOOP\r\n", NULL, "TOOBIG", 24, 6,
	    5 },
	{ "0123456789\r\n0123", NULL, "AGAIN", 16, 0, 5 },
};

/* One case holds a NUL: lengths are given here. */
static size_t
dlen(const struct dcase *c)
{
	return c->in[0] == '\xff' ? 8 : strlen(c->in);
}

static size_t
dout_len(const struct dcase *c)
{
	return c->in[0] == '\xff' ? 5 : strlen(c->out);
}

/* Feeds c->in in up to three pieces; checks out, rc, size and rest. */
static bool
data_run(const struct dcase *c, size_t s1, size_t s2, size_t ci)
{
	struct smtp_parse		*p = smtp_parse_new(0, 0);
	struct evbuffer			*in = evbuffer_new();
	struct evbuffer			*out = evbuffer_new();
	size_t				 len = dlen(c);
	size_t				 cuts[3] = { s1, s2, len };
	size_t				 off = 0, fed = 0;
	enum smtp_parse_data_rc		 rc = SMTP_PARSE_DATA_AGAIN;
	const char			*name;
	bool				 ok = true;

	smtp_parse_data_begin(p, c->max);
	for (int k = 0; k < 3; k++) {
		if (cuts[k] < off)
			continue;
		evbuffer_add(in, c->in + off, cuts[k] - off);
		fed = cuts[k];
		off = cuts[k];
		rc = smtp_parse_data(p, in, out);
		if (rc != SMTP_PARSE_DATA_AGAIN)
			break;
		/* At most "." or ".\r" waits. */
		CHECK_INT(evbuffer_get_length(in), <=, 2);
	}
	name = rc == SMTP_PARSE_DATA_DONE ? "DONE" :
	    rc == SMTP_PARSE_DATA_TOOBIG ? "TOOBIG" :
	    rc == SMTP_PARSE_DATA_BARE ? "BARE" : "AGAIN";
	test_checks++;
	if (strcmp(c->rc, "BARE") == 0) {
		/* What was moved before the stop has only CRLF line ends (a
		 * last CR may wait for its LF, as in any piece). */
		size_t		 n = evbuffer_get_length(out);
		const char	*o = n > 0 ? (const char *)evbuffer_pullup(out,
				    -1) : "";

		ok = strcmp(name, "BARE") == 0;
		for (size_t i = 0; i < n && ok; i++)
			if ((o[i] == '\n' && (i == 0 || o[i - 1] != '\r')) ||
			    (o[i] == '\r' && i + 1 < n && o[i + 1] != '\n'))
				ok = false;
		goto report;
	}
	if (strcmp(name, c->rc) != 0 || smtp_parse_data_size(p) != c->size ||
	    evbuffer_get_length(in) + (len - fed) != c->rest)
		ok = false;
	if (c->out != NULL && (evbuffer_get_length(out) != dout_len(c) ||
	    (dout_len(c) > 0 && memcmp(evbuffer_pullup(out, -1), c->out,
	    dout_len(c)) != 0)))
		ok = false;
	if (c->out == NULL && !smtp_parse_data_is_over(p))
		ok = false;
	if (c->out != NULL && smtp_parse_data_is_over(p))
		ok = false;
report:
	if (!ok) {
		fprintf(stderr, "  FAIL data case %zu cuts %zu,%zu: rc %s size "
		    "%llu rest %zu out %zu\n", ci, s1, s2, name,
		    (unsigned long long)smtp_parse_data_size(p),
		    evbuffer_get_length(in) + (len - fed),
		    evbuffer_get_length(out));
		test_fail(__FILE__, __LINE__, "data transcript");
	}
	smtp_parse_free(&p);
	evbuffer_free(in);
	evbuffer_free(out);
	return ok;
}

TEST(smtp_parse_data_table)
{
	for (size_t i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		const struct dcase *c = &dcases[i];
		size_t len = dlen(c);

		data_run(c, len, len, i);
		for (size_t a = 0; a <= len; a++)
			for (size_t b = a; b <= len; b++)
				if (!data_run(c, a, b, i))
					goto next;
next:
		;
	}
}

/* One byte per chain, more chains than the scanner peeks at once. */
TEST(smtp_parse_data_tiny_chains)
{
	static const char msg[] = "abcdefghijklmn\r\n..x\r\n.\r\nQUIT\r\n";
	struct smtp_parse	*p = smtp_parse_new(0, 0);
	struct evbuffer		*in = evbuffer_new(), *out = evbuffer_new();

	for (size_t pad = 0; pad < 20; pad++) {
		struct evbuffer *one = evbuffer_new();

		smtp_parse_data_begin(p, 0);
		evbuffer_drain(out, evbuffer_get_length(out));
		for (size_t i = 0; i < pad; i++) {
			evbuffer_add_reference(one, "y", 1, NULL, NULL);
			evbuffer_add_buffer(in, one);
		}
		for (size_t i = 0; i < sizeof(msg) - 1; i++) {
			evbuffer_add_reference(one, msg + i, 1, NULL, NULL);
			evbuffer_add_buffer(in, one);
		}
		CHECK(smtp_parse_data(p, in, out) == SMTP_PARSE_DATA_DONE);
		CHECK_INT(evbuffer_get_length(in), ==, 6);
		CHECK_INT(evbuffer_get_length(out), ==, pad + 21);
		CHECK_INT(smtp_parse_data_size(p), ==, pad + 20);
		evbuffer_drain(in, 6);
		evbuffer_free(one);
	}
	smtp_parse_free(&p);
	evbuffer_free(in);
	evbuffer_free(out);
}

/* A 5 MB message with dots and bare LFs in random chunks: out equals the
 * input up to the terminator, and the size is the unstuffed length. */
TEST(smtp_parse_data_large)
{
	size_t			 n = 5 * 1024 * 1024, o = 0, off = 0;
	char			*msg = xmalloc(n + 16);
	struct smtp_parse	*p = smtp_parse_new(0, 0);
	struct evbuffer		*in = evbuffer_new(), *out = evbuffer_new();
	uint64_t		 dots = 0;
	unsigned		 seed = 7;
	enum smtp_parse_data_rc	 rc = SMTP_PARSE_DATA_AGAIN;

	while (o < n) {
		seed = seed * 1103515245 + 12345;
		switch ((seed >> 16) % 8) {
		case 0:
			if (o >= 2 && msg[o - 2] == '\r' &&
			    msg[o - 1] == '\n') {
				memcpy(msg + o, "..", 2);	/* stuffed */
				o += 2;
				dots++;
				break;
			}
			msg[o++] = '.';
			break;
		case 1:
			memcpy(msg + o, "\r\n", 2);
			o += 2;
			break;
		case 2:
			msg[o++] = ' ';
			break;
		default:
			msg[o++] = (char)('a' + (seed >> 20) % 26);
		}
	}
	if (msg[o - 1] != '\n' || msg[o - 2] != '\r') {
		memcpy(msg + o, "\r\n", 2);
		o += 2;
	}
	memcpy(msg + o, ".\r\n", 3);
	smtp_parse_data_begin(p, 0);
	while (off < o + 3) {
		size_t k;

		seed = seed * 1103515245 + 12345;
		k = (seed >> 16) % 70000 + 1;
		if (k > o + 3 - off)
			k = o + 3 - off;
		evbuffer_add(in, msg + off, k);
		off += k;
		rc = smtp_parse_data(p, in, out);
		if (rc != SMTP_PARSE_DATA_AGAIN)
			break;
	}
	CHECK(rc == SMTP_PARSE_DATA_DONE);
	CHECK_INT(off, ==, o + 3);
	CHECK_INT(evbuffer_get_length(in), ==, 0);
	CHECK_INT(evbuffer_get_length(out), ==, o);
	CHECK(memcmp(evbuffer_pullup(out, -1), msg, o) == 0);
	CHECK_INT(smtp_parse_data_size(p), ==, o - dots);
	/* The same with a limit: TOOBIG at the terminator, out bounded. */
	evbuffer_drain(out, evbuffer_get_length(out));
	smtp_parse_data_begin(p, 1000);
	evbuffer_add(in, msg, o + 3);
	CHECK(smtp_parse_data(p, in, out) == SMTP_PARSE_DATA_TOOBIG);
	CHECK(smtp_parse_data_is_over(p));
	CHECK_INT(evbuffer_get_length(out), <=, 1000);
	free(msg);
	smtp_parse_free(&p);
	evbuffer_free(in);
	evbuffer_free(out);
}
