/*
 * Client SMTP input: command lines, AUTH response lines, the DATA stream
 * and MAIL/RCPT arguments. Incomplete lines wait in the caller's evbuffer,
 * bounded by the line limit (checked before the LF arrives, as OpenSMTPD
 * and Postfix do); complete lines are copied into one buffer of ours that
 * is wiped before reuse because AUTH lines carry credentials.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/xmalloc.h"
#include "proxy/smtp_parse.h"

#define ERR_TOOLONG	"500 5.5.2 Line too long"
#define ERR_AUTH_TOOLONG "500 5.5.6 Authentication Exchange line is too long"
#define ERR_UNRECOGNIZED "500 5.5.2 Syntax error, command unrecognized"
#define ERR_VERB_CHAR	"500 5.5.2 Syntax error, invalid character in command"
#define ERR_ARG_CHAR	"501 5.5.2 Syntax error, invalid character in argument"
#define ERR_LINE_CHAR	"501 5.5.2 Invalid characters in response"

/* Where the DATA scanner stands relative to the line structure. */
enum data_state {
	DS_BOL,		/* after CRLF, or at the start of the data */
	DS_MID,		/* inside a line */
	DS_CR,		/* after a CR inside a line */
	DS_DOT,		/* after "." at BOL (only within one scan) */
	DS_DOTCR,	/* after ".\r" at BOL (only within one scan) */
};

struct smtp_parse {
	size_t			 line_max;
	size_t			 auth_max;
	bool			 skipping;	/* dropping an over-long line */
	const char		*err;

	char			*buf;		/* last line; may be secret */
	size_t			 len;
	size_t			 cap;
	bool			 have_cmd;
	char			 verb[SMTP_PARSE_VERB_MAX + 1];
	struct smtp_cmd		 cmd;

	enum data_state		 dstate;
	uint64_t		 dsize;
	uint64_t		 dmax;
	bool			 dover;
};

struct smtp_parse *
smtp_parse_new(size_t line_max, size_t auth_line_max)
{
	struct smtp_parse *p = xcalloc(1, sizeof(*p));

	p->line_max = line_max > 0 ? line_max : SMTP_PARSE_LINE_MAX;
	p->auth_max = auth_line_max > 0 ? auth_line_max :
	    SMTP_PARSE_AUTH_LINE_MAX;
	if (p->auth_max < p->line_max)
		p->auth_max = p->line_max;
	p->err = "";
	p->dstate = DS_BOL;
	return p;
}

static void
wipe(struct smtp_parse *p)
{
	if (p->buf != NULL && p->len > 0)
		explicit_bzero(p->buf, p->len);
	p->len = 0;
	p->have_cmd = false;
	p->err = "";
}

void
smtp_parse_free(struct smtp_parse **pp)
{
	struct smtp_parse *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	wipe(p);
	free(p->buf);
	free(p);
}

void
smtp_parse_reset(struct smtp_parse *p)
{
	wipe(p);
	p->skipping = false;
}

const struct smtp_cmd *
smtp_parse_cmd(const struct smtp_parse *p)
{
	return p->have_cmd ? &p->cmd : NULL;
}

const char *
smtp_parse_error(const struct smtp_parse *p)
{
	return p->err;
}

/* Offset of the first LF among the first lim bytes of in, or -1. */
static ssize_t
find_lf(struct evbuffer *in, size_t lim)
{
	struct evbuffer_ptr	end, r;

	if (lim < evbuffer_get_length(in)) {
		evbuffer_ptr_set(in, &end, lim, EVBUFFER_PTR_SET);
		r = evbuffer_search_range(in, "\n", 1, NULL, &end);
	} else
		r = evbuffer_search(in, "\n", 1, NULL);
	return r.pos;
}

/* RFC 4954 section 4: an AUTH command may be as long as an exchange line. */
static bool
is_auth_line(struct evbuffer *in)
{
	char pre[5];

	if (evbuffer_copyout(in, pre, sizeof(pre)) != (ssize_t)sizeof(pre))
		return false;
	return strncasecmp(pre, "AUTH ", sizeof(pre)) == 0;
}

/*
 * The line framing shared by commands and AUTH lines. On COMMAND the line
 * is in p->buf (p->len bytes, LF and one CR before it removed,
 * NUL-terminated).
 */
static enum smtp_parse_rc
read_line(struct smtp_parse *p, struct evbuffer *in, bool auth)
{
	size_t	 avail, lim;
	ssize_t	 lf;

	wipe(p);
	if (p->skipping) {
		if ((lf = find_lf(in, SIZE_MAX)) < 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return SMTP_PARSE_AGAIN;
		}
		evbuffer_drain(in, (size_t)lf + 1);
		p->skipping = false;
	}
	if ((avail = evbuffer_get_length(in)) == 0)
		return SMTP_PARSE_AGAIN;
	if (!auth && is_auth_line(in))
		auth = true;
	lim = auth ? p->auth_max : p->line_max;
	if ((lf = find_lf(in, lim)) < 0) {
		if (avail < lim)
			return SMTP_PARSE_AGAIN;
		/* Longer than lim whatever comes next: drop what we have
		 * and, if its LF is not here yet, the rest as it comes. */
		p->err = auth ? ERR_AUTH_TOOLONG : ERR_TOOLONG;
		if ((lf = find_lf(in, SIZE_MAX)) < 0) {
			evbuffer_drain(in, avail);
			p->skipping = true;
		} else
			evbuffer_drain(in, (size_t)lf + 1);
		return SMTP_PARSE_TOOLONG;
	}
	if ((size_t)lf + 1 > p->cap) {
		p->cap = lim + 1;
		free(p->buf);
		p->buf = xmalloc(p->cap);
	}
	evbuffer_remove(in, p->buf, (size_t)lf + 1);
	p->len = (size_t)lf;	/* the LF goes; wipe() covers p->len bytes */
	if (p->len > 0 && p->buf[p->len - 1] == '\r')
		p->len--;
	p->buf[p->len] = '\0';
	return SMTP_PARSE_COMMAND;
}

static bool
is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static enum smtp_parse_rc
bad(struct smtp_parse *p, const char *err)
{
	p->err = err;
	return SMTP_PARSE_BAD;
}

enum smtp_parse_rc
smtp_parse_feed(struct smtp_parse *p, struct evbuffer *in)
{
	enum smtp_parse_rc	 rc;
	size_t			 i, n, end;
	char			*s;

	if ((rc = read_line(p, in, false)) != SMTP_PARSE_COMMAND)
		return rc;
	s = p->buf;
	end = p->len;
	while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t'))
		end--;
	for (n = 0; n < end && ((s[n] >= 'A' && s[n] <= 'Z') ||
	    (s[n] >= 'a' && s[n] <= 'z')); n++)
		;
	if (n == 0 || n > SMTP_PARSE_VERB_MAX)
		return bad(p, n == 0 && end > 0 && is_ctl((unsigned char)s[0]) ?
		    ERR_VERB_CHAR : ERR_UNRECOGNIZED);
	if (n < end && s[n] != ' ')
		return bad(p, is_ctl((unsigned char)s[n]) ? ERR_VERB_CHAR :
		    ERR_UNRECOGNIZED);
	for (i = 0; i < n; i++)
		p->verb[i] = (char)(s[i] & ~0x20);
	p->verb[n] = '\0';
	for (i = n; i < end && s[i] == ' '; i++)
		;
	p->cmd.args = s + i;
	p->cmd.argslen = end - i;
	for (; i < end; i++)
		if (is_ctl((unsigned char)s[i]))
			return bad(p, ERR_ARG_CHAR);
	s[end] = '\0';
	p->cmd.verb = p->verb;
	p->have_cmd = true;
	return SMTP_PARSE_COMMAND;
}

enum smtp_parse_rc
smtp_parse_line(struct smtp_parse *p, struct evbuffer *in, const char **line_r)
{
	enum smtp_parse_rc rc;

	*line_r = NULL;
	if ((rc = read_line(p, in, true)) != SMTP_PARSE_COMMAND)
		return rc;
	for (size_t i = 0; i < p->len; i++)
		if (p->buf[i] <= ' ' || p->buf[i] >= 0x7f)
			return bad(p, ERR_LINE_CHAR);
	*line_r = p->buf;
	return SMTP_PARSE_COMMAND;
}

/* DATA */

void
smtp_parse_data_begin(struct smtp_parse *p, uint64_t max)
{
	wipe(p);
	p->dstate = DS_BOL;
	p->dsize = 0;
	p->dmax = max;
	p->dover = false;
}

uint64_t
smtp_parse_data_size(const struct smtp_parse *p)
{
	return p->dsize;
}

bool
smtp_parse_data_is_over(const struct smtp_parse *p)
{
	return p->dover;
}

/* Moves (or, once over the limit, drains) n bytes of which dots were
 * stuffing. */
static void
data_take(struct smtp_parse *p, struct evbuffer *in, struct evbuffer *out,
    size_t n, size_t dots)
{
	uint64_t add = (uint64_t)(n - dots);

	if (n == 0)
		return;
	p->dsize = p->dsize > UINT64_MAX - add ? UINT64_MAX : p->dsize + add;
	if (p->dmax > 0 && p->dsize > p->dmax)
		p->dover = true;
	if (p->dover)
		evbuffer_drain(in, n);
	else
		evbuffer_remove_buffer(in, out, n);
}

#define DATA_IOV	16

/*
 * One pass over what evbuffer_peek shows. The scanner's persistent state
 * is DS_BOL/DS_MID/DS_CR; a "." or ".\r" at a line start that cannot be
 * decided yet is left in `in` and rescanned from DS_BOL next time.
 */
enum smtp_parse_data_rc
smtp_parse_data(struct smtp_parse *p, struct evbuffer *in, struct evbuffer *out)
{
	struct evbuffer_iovec	 v[DATA_IOV];
	enum data_state		 st;
	size_t			 off, dots, mark, total;
	int			 nv;

	for (;;) {
		total = evbuffer_get_length(in);
		if (total == 0)
			return SMTP_PARSE_DATA_AGAIN;
		nv = evbuffer_peek(in, -1, NULL, v, DATA_IOV);
		if (nv > DATA_IOV)
			nv = DATA_IOV;
		st = p->dstate;
		off = 0;	/* bytes of `in` scanned */
		dots = 0;	/* stuffing dots among them */
		mark = 0;	/* offset of an undecided BOL "." */
		for (int k = 0; k < nv; k++) {
			const unsigned char	*b = v[k].iov_base;
			size_t			 len = v[k].iov_len, i = 0;

			while (i < len) {
				unsigned char c = b[i];

				switch (st) {
				case DS_MID: {
					const unsigned char *cr =
					    memchr(b + i, '\r', len - i);
					const unsigned char *lf =
					    memchr(b + i, '\n', (cr != NULL ?
					    (size_t)(cr - b) : len) - i);

					if (lf != NULL)
						goto bare;
					if (cr == NULL) {
						i = len;
						continue;
					}
					i = (size_t)(cr - b) + 1;
					st = DS_CR;
					continue;
				}
				case DS_CR:
					if (c != '\n')
						goto bare;
					st = DS_BOL;
					break;
				case DS_BOL:
					if (c == '.') {
						mark = off + i;
						st = DS_DOT;
					} else if (c == '\n')
						goto bare;
					else
						st = c == '\r' ? DS_CR : DS_MID;
					break;
				case DS_DOT:
					if (c == '\r')
						st = DS_DOTCR;
					else if (c == '\n')
						goto bare;
					else {
						/* RFC 5321 4.5.2: a stuffed
						 * dot, not part of the size */
						dots++;
						st = DS_MID;
						continue;	/* rescan c */
					}
					break;
				case DS_DOTCR:
					if (c == '\n') {
						data_take(p, in, out, mark,
						    dots);
						evbuffer_drain(in, 3);
						p->dstate = DS_BOL;
						return p->dover ?
						    SMTP_PARSE_DATA_TOOBIG :
						    SMTP_PARSE_DATA_DONE;
					}
					goto bare;	/* ".\r" + other */
				}
				i++;
			}
			off += len;
		}
		if (st == DS_DOT || st == DS_DOTCR) {
			/* Undecided: keep "." or ".\r" for the next bytes. */
			data_take(p, in, out, mark, dots);
			p->dstate = DS_BOL;
			if (mark > 0)
				continue;
			if (off == total)
				return SMTP_PARSE_DATA_AGAIN;
			/* The peeked window ended inside the undecided
			 * bytes (tiny chains): make them contiguous. */
			evbuffer_pullup(in, total < 3 ? (ev_ssize_t)total : 3);
			continue;
		}
		data_take(p, in, out, off, dots);
		p->dstate = st;
		if (off == total)
			return SMTP_PARSE_DATA_AGAIN;
	}
bare:
	p->dstate = DS_BOL;
	return SMTP_PARSE_DATA_BARE;
}

/* MAIL FROM / RCPT TO */

static bool
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext, plus UTF-8 bytes (RFC 6531 section 3.3). */
static bool
is_atext(unsigned char c)
{
	/* c != 0: strchr finds the terminating NUL too. */
	return is_alpha(c) || is_digit(c) || c >= 0x80 ||
	    (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Well-formed UTF-8 (RFC 3629): no overlongs, surrogates or > U+10FFFF. */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char	c = s[i];
		size_t		k;
		unsigned char	lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return false;
		if (n - i <= k)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t j = 2; j <= k; j++)
			if (s[i + j] < 0x80 || s[i + j] > 0xbf)
				return false;
		i += k + 1;
	}
	return true;
}

/* Domain (RFC 5321 4.1.2) or address literal; labels may hold UTF-8
 * (RFC 6531) and "_" (seen in real host names). Returns the length. */
static size_t
scan_domain(const unsigned char *s)
{
	size_t i = 0, label;

	if (s[0] == '[') {
		for (i = 1; s[i] >= 33 && s[i] <= 126 && s[i] != '[' &&
		    s[i] != ']' && s[i] != '\\'; i++)
			;
		return i > 1 && s[i] == ']' ? i + 1 : 0;
	}
	for (;;) {
		for (label = 0; is_alpha(s[i]) || is_digit(s[i]) ||
		    s[i] == '-' || s[i] == '_' || s[i] >= 0x80; i++, label++)
			;
		if (label == 0 || label > 63 || s[i - label] == '-' ||
		    s[i - 1] == '-')
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

/* Local-part: Dot-string or Quoted-string (RFC 5321 4.1.2). */
static size_t
scan_local(const unsigned char *s)
{
	size_t i = 0;

	if (s[0] == '"') {
		for (i = 1; s[i] != '"'; i++) {
			if (s[i] == '\\') {
				if (s[i + 1] < 32 || s[i + 1] > 126)
					return 0;
				i++;
			} else if (s[i] < 32 || s[i] == 127)
				return 0;	/* NUL included */
		}
		return i + 1;
	}
	for (;;) {
		size_t a = i;

		while (is_atext(s[i]))
			i++;
		if (i == a)
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

enum path_rc {
	PATH_OK,
	PATH_SYNTAX,
	PATH_TOOLONG,
	PATH_8BIT,
};

/*
 * s points at "<". Parses "<" [source-route ":"] mailbox ">" (or "<>" if
 * empty_ok, "<Postmaster>" if postmaster_ok), copies the mailbox to addr
 * and sets *end_r after ">".
 */
static enum path_rc
parse_path(const char *str, bool empty_ok, bool postmaster_ok, bool utf8,
    char *addr, const char **end_r)
{
	const unsigned char	*s = (const unsigned char *)str, *mb;
	size_t			 n, l, d;
	bool			 eight = false;

	if (*s++ != '<')
		return PATH_SYNTAX;
	if (*s == '>' && empty_ok) {
		addr[0] = '\0';
		*end_r = (const char *)s + 1;
		return PATH_OK;
	}
	/* A-d-l: "@" Domain *( "," "@" Domain ) ":", ignored. */
	if (*s == '@') {
		for (;;) {
			if (*s++ != '@' || (d = scan_domain(s)) == 0)
				return PATH_SYNTAX;
			s += d;
			if (*s == ':')
				break;
			if (*s++ != ',')
				return PATH_SYNTAX;
		}
		s++;
	}
	mb = s;
	if (postmaster_ok && strncasecmp((const char *)s, "postmaster>", 11) ==
	    0)
		n = 10;
	else {
		if ((l = scan_local(s)) == 0 || s[l] != '@' ||
		    (d = scan_domain(s + l + 1)) == 0)
			return PATH_SYNTAX;
		n = l + 1 + d;
		if (d > 255)
			return PATH_TOOLONG;
	}
	if (mb[n] != '>')
		return PATH_SYNTAX;
	if (n + 2 > SMTP_PARSE_PATH_MAX)
		return PATH_TOOLONG;
	for (size_t i = 0; i < n; i++)
		if (mb[i] >= 0x80)
			eight = true;
	if (eight && !utf8_valid(mb, n))
		return PATH_SYNTAX;
	if (eight && !utf8)
		return PATH_8BIT;
	memcpy(addr, mb, n);
	addr[n] = '\0';
	*end_r = (const char *)mb + n + 1;
	return PATH_OK;
}

/* One esmtp-param (RFC 5321 4.1.2): keyword ["=" value]. */
struct param {
	const char	*kw;
	size_t		 kwlen;
	const char	*val;		/* NULL: no "=" */
	size_t		 vallen;
};

/* Splits the next parameter off *sp; 1 ok, 0 at the end, -1 bad syntax. */
static int
next_param(const char **sp, struct param *pm)
{
	const unsigned char *s = (const unsigned char *)*sp;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	pm->kw = (const char *)s;
	if (!is_alpha(*s) && !is_digit(*s))
		return -1;
	while (is_alpha(*s) || is_digit(*s) || *s == '-')
		s++;
	pm->kwlen = (size_t)((const char *)s - pm->kw);
	pm->val = NULL;
	pm->vallen = 0;
	if (*s == '=') {
		pm->val = (const char *)++s;
		/* esmtp-value: %d33-60 / %d62-126, UTF-8 (RFC 6531). */
		while (*s > 32 && *s != '=' && *s != 127)
			s++;
		pm->vallen = (size_t)((const char *)s - pm->val);
		if (pm->vallen == 0)
			return -1;
	}
	if (*s != ' ' && *s != '\0')
		return -1;
	*sp = (const char *)s;
	return 1;
}

static bool
kw_is(const struct param *pm, const char *name)
{
	return pm->kwlen == strlen(name) &&
	    strncasecmp(pm->kw, name, pm->kwlen) == 0;
}

static bool
val_is(const struct param *pm, const char *v)
{
	return pm->vallen == strlen(v) && strncasecmp(pm->val, v,
	    pm->vallen) == 0;
}

static int
fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -1;
}

static int
unsupported(char *err, size_t errlen, const struct param *pm)
{
	int n = pm->kwlen > 32 ? 32 : (int)pm->kwlen;

	snprintf(err, errlen, "555 5.5.4 Unsupported parameter %.*s", n,
	    pm->kw);
	return -1;
}

/* "FROM:" / "TO:" then optional spaces (Postfix tolerates them too). */
static const char *
skip_keyword(const char *s, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(s, kw, n) != 0)
		return NULL;
	s += n;
	while (*s == ' ')
		s++;
	return *s == '<' ? s : NULL;
}

/* Any byte >= 0x80. */
static bool
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

int
smtp_parse_mail_from(const char *args, struct smtp_parse_mail *m, char *err,
    size_t errlen)
{
	const char	*s, *rest, *q;
	struct param	 pm;
	bool		 seen_body = false, seen_auth = false;
	int		 rc;

	memset(m, 0, sizeof(*m));
	if ((s = skip_keyword(args, "FROM:")) == NULL)
		return fail(err, errlen,
		    "501 5.5.4 Syntax: MAIL FROM:<address>");
	/* The parameters decide whether UTF-8 is allowed in the path:
	 * find the end of the path first, then scan them. */
	switch (parse_path(s, true, false, true, m->addr, &rest)) {
	case PATH_OK:
		break;
	case PATH_TOOLONG:
		return fail(err, errlen, "501 5.1.7 Sender address too long");
	default:
		return fail(err, errlen, "501 5.1.7 Bad sender address syntax");
	}
	if (*rest != '\0' && *rest != ' ')
		return fail(err, errlen, "501 5.1.7 Bad sender address syntax");
	while ((rc = next_param(&rest, &pm)) == 1) {
		if (kw_is(&pm, "SIZE")) {
			uint64_t v = 0;

			if (m->has_size)
				return fail(err, errlen,
				    "501 5.5.4 Duplicate SIZE parameter");
			if (pm.val == NULL || pm.vallen > 20)
				return fail(err, errlen,
				    "501 5.5.4 Bad SIZE parameter");
			for (q = pm.val; q < pm.val + pm.vallen; q++) {
				if (!is_digit((unsigned char)*q))
					return fail(err, errlen,
					    "501 5.5.4 Bad SIZE parameter");
				v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX :
				    v * 10 + (uint64_t)(*q - '0');
			}
			m->has_size = true;
			m->size = v;
		} else if (kw_is(&pm, "BODY")) {
			if (seen_body)
				return fail(err, errlen,
				    "501 5.5.4 Duplicate BODY parameter");
			seen_body = true;
			if (pm.val == NULL)
				return fail(err, errlen,
				    "501 5.5.4 Bad BODY parameter");
			if (val_is(&pm, "7BIT"))
				m->body = SMTP_PARSE_BODY_7BIT;
			else if (val_is(&pm, "8BITMIME"))
				m->body = SMTP_PARSE_BODY_8BITMIME;
			else
				return fail(err, errlen,
				    "555 5.5.4 Unsupported BODY type");
		} else if (kw_is(&pm, "SMTPUTF8")) {
			if (m->smtputf8)
				return fail(err, errlen,
				    "501 5.5.4 Duplicate SMTPUTF8 parameter");
			if (pm.val != NULL)
				return fail(err, errlen,
				    "501 5.5.4 SMTPUTF8 takes no value");
			m->smtputf8 = true;
		} else if (kw_is(&pm, "AUTH")) {
			/* RFC 4954 section 5: part of AUTH, which we
			 * offer. Checked, then dropped (not relayed): the
			 * upstream session is logged in as the account,
			 * so the submitter is that login, not the
			 * client's claim. */
			if (seen_auth)
				return fail(err, errlen,
				    "501 5.5.4 Duplicate AUTH parameter");
			if (pm.val == NULL)
				return fail(err, errlen,
				    "501 5.5.4 Bad AUTH parameter");
			seen_auth = true;
		} else
			return unsupported(err, errlen, &pm);
	}
	if (rc < 0)
		return fail(err, errlen, "501 5.5.4 Bad parameter syntax");
	if (!m->smtputf8 && has_8bit(m->addr))
		return fail(err, errlen,
		    "553 5.6.7 Non-ASCII sender address requires SMTPUTF8");
	return 0;
}

int
smtp_parse_rcpt_to(const char *args, bool smtputf8, struct smtp_parse_rcpt *r,
    char *err, size_t errlen)
{
	const char	*s, *rest;
	struct param	 pm;
	int		 rc;

	memset(r, 0, sizeof(*r));
	if ((s = skip_keyword(args, "TO:")) == NULL)
		return fail(err, errlen, "501 5.5.4 Syntax: RCPT TO:<address>");
	switch (parse_path(s, false, true, smtputf8, r->addr, &rest)) {
	case PATH_OK:
		break;
	case PATH_TOOLONG:
		return fail(err, errlen,
		    "501 5.1.3 Recipient address too long");
	case PATH_8BIT:
		return fail(err, errlen,
		    "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8");
	default:
		return fail(err, errlen,
		    "501 5.1.3 Bad recipient address syntax");
	}
	if (*rest != '\0' && *rest != ' ')
		return fail(err, errlen,
		    "501 5.1.3 Bad recipient address syntax");
	if ((rc = next_param(&rest, &pm)) < 0)
		return fail(err, errlen, "501 5.5.4 Bad parameter syntax");
	if (rc == 1)
		return unsupported(err, errlen, &pm);
	return 0;
}

/*
 * The longest line smtp_parse_mail_line can build: the longest address
 * (SMTP_PARSE_PATH_MAX with its brackets), the largest SIZE, the longer
 * BODY value and SMTPUTF8, plus CRLF.
 */
#define MAIL_LINE_LONGEST (sizeof("MAIL FROM:") - 1 + SMTP_PARSE_PATH_MAX + \
	    sizeof(" SIZE=18446744073709551615") - 1 + \
	    sizeof(" BODY=8BITMIME") - 1 + sizeof(" SMTPUTF8") - 1 + 2)
_Static_assert(MAIL_LINE_LONGEST <= SMTP_PARSE_RELAY_MAX,
    "a rebuilt MAIL line must fit SMTP_PARSE_RELAY_MAX");
_Static_assert(sizeof("RCPT TO:") - 1 + SMTP_PARSE_PATH_MAX + 2 <=
    SMTP_PARSE_RELAY_MAX, "a rebuilt RCPT line must fit SMTP_PARSE_RELAY_MAX");

/* 0 if a line of n bytes plus CRLF fits buflen (the NUL then fits too). */
static int
fits(int n, size_t buflen)
{
	return n >= 0 && (size_t)n + 2 <= buflen ? 0 : -1;
}

int
smtp_parse_mail_line(const struct smtp_parse_mail *m, char *buf,
    size_t buflen)
{
	char	size[32] = "";

	if (m->has_size)
		snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)m->size);
	/* The source route and AUTH= are gone; the rest is what we checked,
	 * in a canonical spelling (RFC 5321 4.1.1.3: routes are ignored). */
	return fits(snprintf(buf, buflen, "MAIL FROM:<%s>%s%s%s", m->addr,
	    size, m->body == SMTP_PARSE_BODY_7BIT ? " BODY=7BIT" :
	    m->body == SMTP_PARSE_BODY_8BITMIME ? " BODY=8BITMIME" : "",
	    m->smtputf8 ? " SMTPUTF8" : ""), buflen);
}

int
smtp_parse_rcpt_line(const struct smtp_parse_rcpt *r, char *buf,
    size_t buflen)
{
	return fits(snprintf(buf, buflen, "RCPT TO:<%s>", r->addr), buflen);
}
