/*
 * IMAP response reader. Bytes are appended to one buffer per response;
 * a line that ends in "{n}" inside an untagged response announces n literal
 * bytes that are skipped or kept, then the response continues on the line
 * after them (RFC 9051 section 4.3). Tagged and continuation responses
 * carry resp-text only, so a trailing "{n}" there is plain text.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/xmalloc.h"
#include "upstream/up_resp.h"

struct up_resp_reader {
	char		*buf;
	size_t		 len;
	size_t		 cap;
	size_t		 seg_start;	/* first byte of the current line */
	uint64_t	 literal_left;	/* literal bytes still to come */
	bool		 collect;
	bool		 ready;		/* buf holds the last response */
	bool		 failed;
	const char	*err;
};

struct up_resp_reader *
up_resp_reader_new(bool collect)
{
	struct up_resp_reader *rd = xcalloc(1, sizeof(*rd));

	rd->collect = collect;
	rd->cap = 256;
	rd->buf = xmalloc(rd->cap);
	rd->buf[0] = '\0';
	return rd;
}

void
up_resp_reader_free(struct up_resp_reader **rdp)
{
	struct up_resp_reader *rd = *rdp;

	if (rd == NULL)
		return;
	*rdp = NULL;
	free(rd->buf);
	free(rd);
}

void
up_resp_reader_reset(struct up_resp_reader *rd)
{
	rd->len = 0;
	rd->seg_start = 0;
	rd->literal_left = 0;
	rd->ready = false;
	rd->failed = false;
	rd->err = NULL;
	rd->buf[0] = '\0';
}

const char *
up_resp_error(const struct up_resp_reader *rd)
{
	return rd->err != NULL ? rd->err : "no error";
}

static int
reader_fail(struct up_resp_reader *rd, const char *why)
{
	rd->failed = true;
	rd->err = why;
	return -1;
}

/* The caller has checked rd->len + n <= UP_RESP_LINE_MAX. */
static void
reader_append(struct up_resp_reader *rd, const void *p, size_t n)
{
	if (rd->len + n + 1 > rd->cap) {
		while (rd->len + n + 1 > rd->cap)
			rd->cap *= 2;
		rd->buf = xrealloc(rd->buf, rd->cap);
	}
	memcpy(rd->buf + rd->len, p, n);
	rd->len += n;
}

/*
 * Does the current line end in a literal announcement "{n}"? Returns 1 with
 * the size, 0 if not, -1 if the number is out of range. Only untagged
 * responses may carry literals.
 */
static int
literal_at_end(const struct up_resp_reader *rd, uint64_t *size_r)
{
	const char	*s = rd->buf + rd->seg_start;
	size_t		 n = rd->len - rd->seg_start, i, ndig;
	uint64_t	 v = 0;

	if (rd->len < 2 || rd->buf[0] != '*' || rd->buf[1] != ' ')
		return 0;
	if (n < 3 || s[n - 1] != '}')
		return 0;
	for (i = n - 1; i > 0 && isdigit((unsigned char)s[i - 1]); i--)
		;
	ndig = n - 1 - i;
	if (ndig == 0 || i == 0 || s[i - 1] != '{')
		return 0;
	if (ndig > 10)
		return -1;
	for (size_t k = i; k < n - 1; k++)
		v = v * 10 + (uint64_t)(s[k] - '0');
	if (v > UP_RESP_LITERAL_MAX)
		return -1;
	*size_r = v;
	return 1;
}

static enum up_resp_status
parse_status(const char *p, size_t *wlen_r)
{
	static const struct {
		const char		*word;
		enum up_resp_status	 st;
	} words[] = {
		{ "OK", UP_RESP_OK },
		{ "NO", UP_RESP_NO },
		{ "BAD", UP_RESP_BAD },
		{ "PREAUTH", UP_RESP_PREAUTH },
		{ "BYE", UP_RESP_BYE },
	};
	size_t n = strcspn(p, " ");

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strlen(words[i].word) == n &&
		    strncasecmp(p, words[i].word, n) == 0) {
			*wlen_r = n;
			return words[i].st;
		}
	}
	return UP_RESP_NONE;
}

/* IMAP tag characters: ASTRING-CHAR except "+" (RFC 9051 section 9). */
static bool
is_tag_char(int c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\+", c) == NULL;
}

static int
parse_line(char *l, size_t len, struct up_resp *r)
{
	char	*p, *q, *end;
	size_t	 n, wlen;

	memset(r, 0, sizeof(*r));
	r->line = l;
	r->linelen = len;
	if (l[0] == '+' && (l[1] == ' ' || l[1] == '\0')) {
		r->kind = UP_RESP_CONT;
		r->rest = r->resp_text = r->text = l[1] == ' ' ? l + 2 : l + 1;
		return 0;
	}
	if (l[0] == '*' && l[1] == ' ') {
		r->kind = UP_RESP_UNTAGGED;
		p = l + 2;
	} else {
		for (n = 0; is_tag_char((unsigned char)l[n]); n++)
			;
		if (n == 0 || n >= UP_RESP_TAG_MAX || l[n] != ' ')
			return -1;
		memcpy(r->tag, l, n);
		r->tag[n] = '\0';
		r->kind = UP_RESP_TAGGED;
		p = l + n + 1;
	}
	r->rest = r->resp_text = r->text = p;
	r->status = parse_status(p, &wlen);
	if (r->kind == UP_RESP_TAGGED && r->status != UP_RESP_OK &&
	    r->status != UP_RESP_NO && r->status != UP_RESP_BAD)
		return -1;
	if (r->status == UP_RESP_NONE)
		return 0;
	q = p + wlen;
	if (*q == ' ')
		q++;
	r->resp_text = r->text = q;
	if (*q == '[' && (end = strchr(q, ']')) != NULL) {
		r->code = q + 1;
		r->codelen = (size_t)(end - q - 1);
		q = end + 1;
		if (*q == ' ')
			q++;
		r->text = q;
	}
	return 0;
}

int
up_resp_feed(struct up_resp_reader *rd, const uint8_t *buf, size_t len,
    size_t *used_r, struct up_resp *r)
{
	size_t	 i = 0, n;
	const uint8_t *nl;
	uint64_t size;
	int	 rc;

	*used_r = 0;
	if (rd->failed)
		return -1;
	if (rd->ready) {
		rd->len = rd->seg_start = 0;
		rd->ready = false;
	}
	while (i < len) {
		if (rd->literal_left > 0) {
			n = len - i;
			if (n > rd->literal_left)
				n = (size_t)rd->literal_left;
			if (rd->collect)
				reader_append(rd, buf + i, n);
			rd->literal_left -= n;
			i += n;
			if (rd->literal_left == 0)
				rd->seg_start = rd->len;
			continue;
		}
		nl = memchr(buf + i, '\n', len - i);
		n = nl != NULL ? (size_t)(nl - (buf + i)) : len - i;
		/* Checked per chunk, so a line with no LF in sight cannot
		 * grow the buffer past the cap either. */
		if (rd->len + n > UP_RESP_LINE_MAX)
			return reader_fail(rd, "response line too long");
		if (memchr(buf + i, '\0', n) != NULL)
			return reader_fail(rd, "NUL in response line");
		reader_append(rd, buf + i, n);
		i += n;
		if (nl == NULL)
			break;
		i++;
		if (rd->len > rd->seg_start && rd->buf[rd->len - 1] == '\r')
			rd->len--;
		if ((rc = literal_at_end(rd, &size)) < 0) {
			*used_r = i;
			return reader_fail(rd, "bad literal size");
		}
		if (rc == 1) {
			if (rd->collect) {
				if (rd->len + 2 + size > UP_RESP_LINE_MAX) {
					*used_r = i;
					return reader_fail(rd,
					    "response line too long");
				}
				reader_append(rd, "\r\n", 2);
			}
			rd->literal_left = size;
			rd->seg_start = rd->len;
			continue;
		}
		rd->buf[rd->len] = '\0';
		*used_r = i;
		if (parse_line(rd->buf, rd->len, r) < 0)
			return reader_fail(rd, "malformed response line");
		rd->ready = true;
		return 1;
	}
	*used_r = i;
	return 0;
}

int
up_resp_read(struct up_resp_reader *rd, struct evbuffer *in,
    struct up_resp *r)
{
	struct evbuffer_iovec	 v;
	size_t			 used;
	int			 rc;

	while (evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = up_resp_feed(rd, v.iov_base, v.iov_len, &used, r);
		if (used > 0)
			evbuffer_drain(in, used);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Calls fn for each space-separated token of caps; stops when fn returns
 * true. */
static bool
cap_each(const char *caps, bool (*fn)(const char *, size_t, void *),
    void *arg)
{
	const char	*p = caps;
	size_t		 n;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if ((n = strcspn(p, " ")) == 0)
			break;
		if (fn(p, n, arg))
			return true;
		p += n;
	}
	return false;
}

static bool
tok_is(const char *tok, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(tok, word, n) == 0;
}

static bool
has_cb(const char *tok, size_t n, void *arg)
{
	return tok_is(tok, n, arg);
}

bool
up_resp_cap_has(const char *caps, const char *cap)
{
	return caps != NULL && cap_each(caps, has_cb, (void *)(uintptr_t)cap);
}

struct cap_out {
	char	*buf;
	size_t	 len;
	bool	 auth_only;
};

static void
out_add(struct cap_out *o, const char *tok, size_t n)
{
	if (o->len > 0)
		o->buf[o->len++] = ' ';
	memcpy(o->buf + o->len, tok, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static bool
filter_cb(const char *tok, size_t n, void *arg)
{
	struct cap_out *o = arg;
	bool auth = n > 5 && strncasecmp(tok, "AUTH=", 5) == 0;

	if (o->auth_only) {
		if (auth)
			out_add(o, tok + 5, n - 5);
	} else if (!auth && !tok_is(tok, n, "STARTTLS") &&
	    !tok_is(tok, n, "LOGINDISABLED") && !tok_is(tok, n, "SASL-IR"))
		out_add(o, tok, n);
	return false;
}

static char *
cap_select(const char *caps, bool auth_only)
{
	struct cap_out o;

	o.buf = xmalloc(strlen(caps) + 1);
	o.buf[0] = '\0';
	o.len = 0;
	o.auth_only = auth_only;
	cap_each(caps, filter_cb, &o);
	return o.buf;
}

char *
up_resp_cap_auth_mechs(const char *caps)
{
	return cap_select(caps, true);
}

char *
up_resp_cap_filter(const char *caps)
{
	return cap_select(caps, false);
}

char *
up_resp_capability(const struct up_resp *r)
{
	const char	*p;
	size_t		 n;

	if (r->kind == UP_RESP_UNTAGGED && r->status == UP_RESP_NONE) {
		p = r->rest;
		n = strlen(p);
	} else if (r->code != NULL) {
		p = r->code;
		n = r->codelen;
	} else
		return NULL;
	if (n < 10 || strncasecmp(p, "CAPABILITY", 10) != 0 ||
	    (n > 10 && p[10] != ' '))
		return NULL;
	if (n == 10)
		return xstrdup("");
	return xstrndup(p + 11, n - 11);
}
