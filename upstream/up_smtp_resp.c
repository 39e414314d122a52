/*
 * SMTP reply reader. Lines are checked one by one as they complete (the
 * line cap applies before the LF arrives), so a hostile upstream can make
 * us hold at most UP_SMTP_RESP_LINES_MAX lines of UP_SMTP_RESP_LINE_MAX.
 * Validation follows OpenSMTPD's mta reply parser: three digits, a
 * consistent code, "-" or " " after it, no control characters.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/xmalloc.h"
#include "upstream/up_smtp_resp.h"

struct grow {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

struct up_smtp_resp_reader {
	bool		 failed;
	bool		 done;		/* last read returned a reply */
	const char	*err;
	int		 code;
	int		 nlines;
	char		 ecode[16];
	char		 line[UP_SMTP_RESP_LINE_MAX + 1];
	struct grow	 text;
	struct grow	 wire;
};

static void
grow_add(struct grow *g, const char *s, size_t n)
{
	if (g->len + n + 1 > g->cap) {
		size_t cap = g->cap > 0 ? g->cap : 256;

		while (g->len + n + 1 > cap)
			cap *= 2;
		g->s = xrealloc(g->s, cap);
		g->cap = cap;
	}
	memcpy(g->s + g->len, s, n);
	g->len += n;
	g->s[g->len] = '\0';
}

struct up_smtp_resp_reader *
up_smtp_resp_reader_new(void)
{
	struct up_smtp_resp_reader *rd = xcalloc(1, sizeof(*rd));

	rd->err = "";
	return rd;
}

void
up_smtp_resp_reader_free(struct up_smtp_resp_reader **rdp)
{
	struct up_smtp_resp_reader *rd = *rdp;

	if (rd == NULL)
		return;
	*rdp = NULL;
	free(rd->text.s);
	free(rd->wire.s);
	free(rd);
}

static void
clear_reply(struct up_smtp_resp_reader *rd)
{
	rd->done = false;
	rd->code = 0;
	rd->nlines = 0;
	rd->ecode[0] = '\0';
	rd->text.len = 0;
	rd->wire.len = 0;
}

void
up_smtp_resp_reader_reset(struct up_smtp_resp_reader *rd)
{
	clear_reply(rd);
	rd->failed = false;
	rd->err = "";
}

const char *
up_smtp_resp_error(const struct up_smtp_resp_reader *rd)
{
	return rd->err;
}

static int
fail(struct up_smtp_resp_reader *rd, const char *err)
{
	rd->failed = true;
	rd->err = err;
	return -1;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1..3 digits at s; returns how many, 0 if none or more than 3. */
static size_t
digits13(const char *s)
{
	size_t n = 0;

	while (is_digit(s[n]))
		n++;
	return n <= 3 ? n : 0;
}

/* RFC 3463 status-code "class.subject.detail" at the start of s, with the
 * class matching the reply code and SP or the end after it. Returns its
 * length, 0 if s does not start with one. */
static size_t
ecode_len(const char *s, int code)
{
	size_t i, n;

	if (code / 100 == 3 || s[0] != (char)('0' + code / 100) ||
	    s[1] != '.')
		return 0;
	i = 2;
	if ((n = digits13(s + i)) == 0 || s[i + n] != '.')
		return 0;
	i += n + 1;
	if ((n = digits13(s + i)) == 0)
		return 0;
	i += n;
	return s[i] == ' ' || s[i] == '\0' ? i : 0;
}

/* Takes one complete line (len bytes in rd->line, no line end). 1 when it
 * was the last line of the reply. */
static int
take_line(struct up_smtp_resp_reader *rd, size_t len)
{
	char	*l = rd->line, *t;
	int	 code;
	bool	 last;
	size_t	 n;

	l[len] = '\0';
	if (len < 3 || l[0] < '2' || l[0] > '5' || !is_digit(l[1]) ||
	    !is_digit(l[2]))
		return fail(rd, "malformed reply code");
	if (len > 3 && l[3] != '-' && l[3] != ' ')
		return fail(rd, "malformed reply separator");
	for (size_t i = 3; i < len; i++) {
		unsigned char c = (unsigned char)l[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(rd, "control character in reply");
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (rd->nlines > 0 && code != rd->code)
		return fail(rd, "reply code changes between lines");
	if (rd->nlines == UP_SMTP_RESP_LINES_MAX)
		return fail(rd, "too many reply lines");
	last = len == 3 || l[3] == ' ';
	rd->code = code;
	t = len > 3 ? l + 4 : l + 3;
	if ((n = ecode_len(t, code)) > 0) {
		if (rd->nlines == 0)
			snprintf(rd->ecode, sizeof(rd->ecode), "%.*s", (int)n,
			    t);
		t += n;
		if (*t == ' ')
			t++;
	}
	if (rd->nlines > 0)
		grow_add(&rd->text, "\n", 1);
	grow_add(&rd->text, t, strlen(t));
	grow_add(&rd->wire, l, len);
	grow_add(&rd->wire, "\r\n", 2);
	rd->nlines++;
	return last ? 1 : 0;
}

int
up_smtp_resp_read(struct up_smtp_resp_reader *rd, struct evbuffer *in,
    struct up_smtp_resp *r)
{
	struct evbuffer_ptr	 end, p;
	size_t			 avail, len;
	int			 rc;

	if (rd->failed)
		return -1;
	if (rd->done)
		clear_reply(rd);
	for (;;) {
		if ((avail = evbuffer_get_length(in)) == 0)
			return 0;
		if (avail > UP_SMTP_RESP_LINE_MAX) {
			evbuffer_ptr_set(in, &end, UP_SMTP_RESP_LINE_MAX,
			    EVBUFFER_PTR_SET);
			p = evbuffer_search_range(in, "\n", 1, NULL, &end);
		} else
			p = evbuffer_search(in, "\n", 1, NULL);
		if (p.pos < 0)
			return avail >= UP_SMTP_RESP_LINE_MAX ?
			    fail(rd, "reply line too long") : 0;
		len = (size_t)p.pos + 1;
		evbuffer_remove(in, rd->line, len);
		len--;
		if (len > 0 && rd->line[len - 1] == '\r')
			len--;
		if ((rc = take_line(rd, len)) < 0)
			return -1;
		if (rc == 1)
			break;
	}
	rd->done = true;
	r->code = rd->code;
	memcpy(r->ecode, rd->ecode, sizeof(r->ecode));
	r->nlines = rd->nlines;
	r->text = rd->text.s;
	r->textlen = rd->text.len;
	r->wire = rd->wire.s;
	r->wirelen = rd->wire.len;
	return 1;
}

/* EHLO */

static void
add_mech(struct up_smtp_resp_ehlo *e, const char *m, size_t n)
{
	char	 name[32];
	size_t	 have = strlen(e->auth);
	char	*p;

	if (n == 0 || n > 20)	/* RFC 4422 3.1: at most 20 characters */
		return;
	for (size_t i = 0; i < n; i++) {
		char c = m[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (!((c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
		    c == '_'))
			return;
		name[i] = c;
	}
	name[n] = '\0';
	for (p = e->auth; (p = strstr(p, name)) != NULL; p += n)
		if ((p == e->auth || p[-1] == ' ') && (p[n] == ' ' ||
		    p[n] == '\0'))
			return;
	if (have + (have > 0) + n + 1 > sizeof(e->auth))
		return;
	snprintf(e->auth + have, sizeof(e->auth) - have, "%s%s",
	    have > 0 ? " " : "", name);
}

static bool
word_is(const char *s, size_t n, const char *w)
{
	return n == strlen(w) && strncasecmp(s, w, n) == 0;
}

/* One ehlo-line: ehlo-keyword *( SP ehlo-param ). */
static void
ehlo_line(struct up_smtp_resp_ehlo *e, const char *s, size_t len)
{
	const char	*end = s + len, *kw = s, *p;
	size_t		 kwlen;

	while (s < end && *s != ' ' && *s != '=')
		s++;
	kwlen = (size_t)(s - kw);
	if (word_is(kw, kwlen, "AUTH")) {
		/* "AUTH=" is the pre-RFC 2554 form some servers still add. */
		e->caps |= UP_SMTP_RESP_CAP_AUTH;
		while (s < end) {
			s++;
			for (p = s; s < end && *s != ' '; s++)
				;
			add_mech(e, p, (size_t)(s - p));
		}
		return;
	}
	if (s < end && *s == '=')
		return;
	if (word_is(kw, kwlen, "SIZE")) {
		uint64_t v = 0;

		e->caps |= UP_SMTP_RESP_CAP_SIZE;
		while (s < end && *s == ' ')
			s++;
		for (; s < end && is_digit(*s); s++)
			v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX :
			    v * 10 + (uint64_t)(*s - '0');
		e->size_max = v;
	} else if (word_is(kw, kwlen, "PIPELINING"))
		e->caps |= UP_SMTP_RESP_CAP_PIPELINING;
	else if (word_is(kw, kwlen, "8BITMIME"))
		e->caps |= UP_SMTP_RESP_CAP_8BITMIME;
	else if (word_is(kw, kwlen, "SMTPUTF8"))
		e->caps |= UP_SMTP_RESP_CAP_SMTPUTF8;
	else if (word_is(kw, kwlen, "STARTTLS"))
		e->caps |= UP_SMTP_RESP_CAP_STARTTLS;
	else if (word_is(kw, kwlen, "ENHANCEDSTATUSCODES"))
		e->caps |= UP_SMTP_RESP_CAP_ENHANCED;
	else if (word_is(kw, kwlen, "CHUNKING"))
		e->caps |= UP_SMTP_RESP_CAP_CHUNKING;
	else if (word_is(kw, kwlen, "DSN"))
		e->caps |= UP_SMTP_RESP_CAP_DSN;
}

void
up_smtp_resp_ehlo(const struct up_smtp_resp *r, struct up_smtp_resp_ehlo *e)
{
	const char *s, *nl;

	memset(e, 0, sizeof(*e));
	if (r->text == NULL || (s = strchr(r->text, '\n')) == NULL)
		return;		/* greeting line only: no extensions */
	for (s++;; s = nl + 1) {
		nl = strchr(s, '\n');
		ehlo_line(e, s, nl != NULL ? (size_t)(nl - s) : strlen(s));
		if (nl == NULL)
			break;
	}
}
