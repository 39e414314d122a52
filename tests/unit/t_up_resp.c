/*
 * upstream/up_resp.c: IMAP response reader (tagged, untagged with literals,
 * continuation, limits) fed whole, one byte at a time and split at every
 * offset; capability extraction and filtering.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "upstream/up_resp.h"
#include "tests/unit/test.h"

#define OUT_MAX	4096

/* Heap, not an array: test.h's CHECK_STR message buffer is smaller than
 * OUT_MAX and -Wformat-truncation would object to a known array size. */
static char *
out_new(void)
{
	char *out = malloc(OUT_MAX);

	out[0] = '\0';
	return out;
}

static const char *
status_name(enum up_resp_status st)
{
	static const char *n[] = { "-", "OK", "NO", "BAD", "PREAUTH", "BYE" };

	return n[st];
}

static size_t
put_esc(char *out, size_t o, size_t outlen, const char *s, size_t n)
{
	for (size_t i = 0; i < n && o + 4 < outlen; i++) {
		if (s[i] == '\r')
			o += (size_t)snprintf(out + o, outlen - o, "\\r");
		else if (s[i] == '\n')
			o += (size_t)snprintf(out + o, outlen - o, "\\n");
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return o;
}

/* One line per response: kind|tag|status|code|text|line, with CR and LF
 * shown as \r \n. */
static void
render(const struct up_resp *r, char *out, size_t outlen)
{
	static const char kinds[] = { 'U', 'T', 'C' };
	size_t	o = strlen(out);

	o += (size_t)snprintf(out + o, outlen - o, "%c|%s|%s|", kinds[r->kind],
	    r->tag, status_name(r->status));
	if (r->code != NULL)
		o = put_esc(out, o, outlen, r->code, r->codelen);
	else
		o = put_esc(out, o, outlen, "-", 1);
	o = put_esc(out, o, outlen, "|", 1);
	o = put_esc(out, o, outlen, r->text, strlen(r->text));
	o = put_esc(out, o, outlen, "|", 1);
	o = put_esc(out, o, outlen, r->line, r->linelen);
	snprintf(out + o, outlen - o, "\n");
}

/* Feeds in in chunks of at most chunk bytes (0: whole), except that with
 * split > 0 the input goes as two pieces cut at split. Returns the
 * rendering; "ERR:<reason>" is appended on -1. */
static void
run(const char *in, size_t len, bool collect, size_t chunk, size_t split,
    char *out, size_t outlen)
{
	struct up_resp_reader	*rd = up_resp_reader_new(collect);
	struct up_resp		 r;
	size_t			 off = 0, used, n;
	int			 rc;

	out[0] = '\0';
	while (off < len) {
		if (split > 0)
			n = off < split ? split - off : len - off;
		else
			n = chunk == 0 || chunk > len - off ? len - off : chunk;
		rc = up_resp_feed(rd, (const uint8_t *)in + off, n, &used, &r);
		if (rc < 0) {
			size_t o = strlen(out);

			snprintf(out + o, outlen - o, "ERR:%s\n",
			    up_resp_error(rd));
			break;
		}
		if (rc == 1)
			render(&r, out, outlen);
		else if (used != n) {
			snprintf(out, outlen, "BUG: used %zu of %zu", used, n);
			break;
		}
		off += used;
	}
	up_resp_reader_free(&rd);
}

/* Checks that every way of cutting the input gives want. */
static void
check_all_splits(const char *in, size_t len, bool collect, const char *want)
{
	char *out = out_new();

	run(in, len, collect, 0, 0, out, OUT_MAX);
	CHECK_STR(out, want);
	run(in, len, collect, 1, 0, out, OUT_MAX);
	CHECK_STR(out, want);
	for (size_t s = 1; s < len; s++) {
		run(in, len, collect, 0, s, out, OUT_MAX);
		if (strcmp(out, want) != 0) {
			fprintf(stderr, "  split at %zu:\n", s);
			CHECK_STR(out, want);
			break;
		}
	}
	free(out);
}

TEST(up_resp_cases)
{
	static const struct {
		const char	*in;
		bool		 collect;
		const char	*want;
	} t[] = {
		/* Dovecot's greeting with capabilities in the code. */
		{ "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID "
		  "ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready."
		  "\r\n",
		  false,
		  "U||OK|CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID "
		  "ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN|Dovecot ready.|"
		  "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID "
		  "ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready."
		  "\n" },
		/* Tagged OK after login, capabilities in the code. */
		{ "P3 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n", false,
		  "T|P3|OK|CAPABILITY IMAP4rev1 IDLE MOVE|Logged in|"
		  "P3 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\n" },
		/* Several responses in one read, bare LF, lower case. */
		{ "* CAPABILITY IMAP4rev1 STARTTLS\r\nP1 ok done\n"
		  "P2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
		  false,
		  "U||-|-|CAPABILITY IMAP4rev1 STARTTLS|"
		  "* CAPABILITY IMAP4rev1 STARTTLS\n"
		  "T|P1|OK|-|done|P1 ok done\n"
		  "T|P2|NO|AUTHENTICATIONFAILED|Authentication failed.|"
		  "P2 NO [AUTHENTICATIONFAILED] Authentication failed.\n" },
		/* Continuations: empty, bare "+", with base64. */
		{ "+ \r\n+\r\n+ eyJzdGF0dXMiOiI0MDAifQ==\r\n", false,
		  "C||-|-||+ \nC||-|-||+\n"
		  "C||-|-|eyJzdGF0dXMiOiI0MDAifQ==|"
		  "+ eyJzdGF0dXMiOiI0MDAifQ==\n" },
		/* Untagged with literals, skipped: the line keeps "{n}" and
		 * what follows the literal; a "{n}" inside a literal is data,
		 * and a tagged line ending in "{5}" is just text. */
		{ "* ID (\"name\" {5}\r\nab}\r\n \"x\" {3}\r\n{1}) \r\n"
		  "P1 OK see {5}\r\n", false,
		  "U||-|-|ID (\"name\" {5} \"x\" {3}) |"
		  "* ID (\"name\" {5} \"x\" {3}) \n"
		  "T|P1|OK|-|see {5}|P1 OK see {5}\n" },
		/* The same, collected: the literal stays as sent. */
		{ "* ID (\"name\" {5}\r\nab}\r\n \"x\" {3}\r\n{1}) \r\n", true,
		  "U||-|-|ID (\"name\" {5}\\r\\nab}\\r\\n \"x\" {3}\\r\\n{1}) |"
		  "* ID (\"name\" {5}\\r\\nab}\\r\\n \"x\" {3}\\r\\n{1}) \n" },
		/* A zero-length literal and a literal at the very end. */
		{ "* X {0}\r\n Y {2}\r\nzz\r\n", false,
		  "U||-|-|X {0} Y {2}|* X {0} Y {2}\n" },
		/* BYE, PREAUTH, and a code without text. */
		{ "* BYE [UNAVAILABLE] Too many connections\r\n"
		  "* PREAUTH [ALERT]\r\n", false,
		  "U||BYE|UNAVAILABLE|Too many connections|"
		  "* BYE [UNAVAILABLE] Too many connections\n"
		  "U||PREAUTH|ALERT||* PREAUTH [ALERT]\n" },
		/* Malformed: tagged without status, empty tag, NUL. */
		{ "P1 FOO bar\r\n", false, "ERR:malformed response line\n" },
		{ " OK x\r\n", false, "ERR:malformed response line\n" },
		{ "P1OK\r\n", false, "ERR:malformed response line\n" },
		{ "\r\n", false, "ERR:malformed response line\n" },
		{ "* 1 EXISTS {99999999999}\r\n", false,
		  "ERR:bad literal size\n" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		check_all_splits(t[i].in, strlen(t[i].in), t[i].collect,
		    t[i].want);
}

TEST(up_resp_nul)
{
	static const char in[] = "* OK a\0b\r\n";

	check_all_splits(in, sizeof(in) - 1, false,
	    "ERR:NUL in response line\n");
	/* NUL inside a collected literal is data; linelen is exact. */
	static const char lit[] = "* X {3}\r\na\0b\r\n";
	struct up_resp_reader	*rd = up_resp_reader_new(true);
	struct up_resp		 r;
	size_t			 used;

	CHECK_INT(up_resp_feed(rd, (const uint8_t *)lit, sizeof(lit) - 1,
	    &used, &r), ==, 1);
	CHECK_INT(used, ==, sizeof(lit) - 1);
	CHECK_INT(r.linelen, ==, 12);
	CHECK(memcmp(r.line, "* X {3}\r\na\0b", 12) == 0);
	up_resp_reader_free(&rd);
}

TEST(up_resp_too_long)
{
	size_t	 len = UP_RESP_LINE_MAX + 100;
	char	*in = malloc(len + 1);
	char	*out = out_new();

	/* No LF anywhere: must fail once the cap is reached, fed whole or
	 * in pieces, without waiting for the end of the line. */
	memset(in, 'a', len);
	memcpy(in, "* OK ", 5);
	run(in, len, false, 0, 0, out, OUT_MAX);
	CHECK_STR(out, "ERR:response line too long\n");
	run(in, len, false, 1000, 0, out, OUT_MAX);
	CHECK_STR(out, "ERR:response line too long\n");
	run(in, len, false, 1, 0, out, OUT_MAX);
	CHECK_STR(out, "ERR:response line too long\n");

	/* Exactly at the limit: line of LINE_MAX - 1 bytes is fine. */
	memcpy(in + UP_RESP_LINE_MAX - 1, "\r\n", 2);
	run(in, UP_RESP_LINE_MAX + 1, false, 4096, 0, out, OUT_MAX);
	CHECK(out[0] == 'U');
	memcpy(in + UP_RESP_LINE_MAX, "\r\n", 2);
	in[UP_RESP_LINE_MAX - 1] = 'a';
	run(in, UP_RESP_LINE_MAX + 2, false, 4096, 0, out, OUT_MAX);
	CHECK_STR(out, "ERR:response line too long\n");

	/* Collected literals count towards the cap; skipped ones do not. */
	snprintf(in, len, "* X {%d}\r\n", UP_RESP_LINE_MAX);
	run(in, strlen(in), true, 0, 0, out, OUT_MAX);
	CHECK_STR(out, "ERR:response line too long\n");
	run(in, strlen(in), false, 0, 0, out, OUT_MAX);
	CHECK_STR(out, "");
	free(in);
	free(out);
}

TEST(up_resp_evbuffer)
{
	struct up_resp_reader	*rd = up_resp_reader_new(false);
	struct evbuffer		*b = evbuffer_new();
	struct up_resp		 r;

	/* What follows the tagged OK stays in the buffer for the relay. */
	evbuffer_add_printf(b, "* CAPABILITY IMAP4rev1\r\nP2 OK done\r\n"
	    "* 1 EXISTS\r\npartial");
	CHECK_INT(up_resp_read(rd, b, &r), ==, 1);
	CHECK_INT(r.kind, ==, UP_RESP_UNTAGGED);
	CHECK_INT(up_resp_read(rd, b, &r), ==, 1);
	CHECK_STR(r.tag, "P2");
	CHECK_INT(evbuffer_get_length(b), ==, strlen("* 1 EXISTS\r\npartial"));
	CHECK_INT(up_resp_read(rd, b, &r), ==, 1);
	CHECK_STR(r.rest, "1 EXISTS");
	CHECK_INT(up_resp_read(rd, b, &r), ==, 0);
	CHECK_INT(evbuffer_get_length(b), ==, 0);
	/* Reset drops the partial line (STARTTLS). */
	up_resp_reader_reset(rd);
	evbuffer_add_printf(b, "P3 OK x\r\n");
	CHECK_INT(up_resp_read(rd, b, &r), ==, 1);
	CHECK_STR(r.line, "P3 OK x");
	evbuffer_free(b);
	up_resp_reader_free(&rd);
}

TEST(up_resp_capability)
{
	static const struct {
		const char	*line;
		const char	*caps;	/* NULL: none */
	} t[] = {
		{ "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN",
		  "IMAP4rev1 STARTTLS AUTH=PLAIN" },
		{ "* capability IMAP4rev1", "IMAP4rev1" },
		{ "* CAPABILITY", "" },
		{ "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready",
		  "IMAP4rev1 LITERAL+" },
		{ "P1 OK [CAPABILITY IMAP4rev2 IDLE] Logged in",
		  "IMAP4rev2 IDLE" },
		{ "* CAPABILITYX foo", NULL },
		{ "* OK [CAPABILITYX foo] x", NULL },
		{ "* OK [ALERT] x", NULL },
		{ "* OK ready", NULL },
		{ "P1 OK CAPABILITY completed", NULL },
		{ "* 3 EXISTS", NULL },
	};
	struct up_resp_reader	*rd;
	struct up_resp		 r;
	char			 buf[256], *caps;
	size_t			 used;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		rd = up_resp_reader_new(false);
		snprintf(buf, sizeof(buf), "%s\r\n", t[i].line);
		CHECK_INT(up_resp_feed(rd, (const uint8_t *)buf, strlen(buf),
		    &used, &r), ==, 1);
		caps = up_resp_capability(&r);
		if (t[i].caps == NULL)
			CHECK(caps == NULL);
		else
			CHECK_STR(caps, t[i].caps);
		free(caps);
		up_resp_reader_free(&rd);
	}
}

TEST(up_resp_cap_filter)
{
	static const struct {
		const char	*in;
		const char	*filtered;
		const char	*mechs;
	} t[] = {
		{ "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
		  "STARTTLS AUTH=PLAIN AUTH=SCRAM-SHA-256",
		  "IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE LITERAL+",
		  "PLAIN SCRAM-SHA-256" },
		{ "IMAP4rev1 LOGINDISABLED starttls auth=plain",
		  "IMAP4rev1", "plain" },
		{ "", "", "" },
		{ "  IMAP4rev1   IDLE  ", "IMAP4rev1 IDLE", "" },
		{ "AUTH= AUTH=X STARTTLSX", "AUTH= STARTTLSX", "X" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *f = up_resp_cap_filter(t[i].in);
		char *m = up_resp_cap_auth_mechs(t[i].in);

		CHECK_STR(f, t[i].filtered);
		CHECK_STR(m, t[i].mechs);
		free(f);
		free(m);
	}
	CHECK(up_resp_cap_has("IMAP4rev1 SASL-IR IDLE", "sasl-ir"));
	CHECK(up_resp_cap_has("IMAP4rev1 SASL-IR IDLE", "IDLE"));
	CHECK(!up_resp_cap_has("IMAP4rev1 SASL-IRX IDLE", "SASL-IR"));
	CHECK(!up_resp_cap_has("IMAP4rev1 LITERAL+", "LITERAL"));
	CHECK(!up_resp_cap_has("", "IDLE"));
	CHECK(!up_resp_cap_has(NULL, "IDLE"));
}
