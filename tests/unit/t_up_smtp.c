/*
 * upstream/up_smtp_resp: the SMTP reply reader fed whole, one byte at a
 * time and split at every offset; EHLO keywords. upstream/up_smtp: the
 * client against a scripted fake server on 127.0.0.1 in the same event
 * loop (no TLS here; STARTTLS and real servers are covered by hand against
 * Postfix + Dovecot, see the up_smtp notes in the report).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/xmalloc.h"
#include "upstream/up_smtp.h"
#include "upstream/up_smtp_resp.h"
#include "tests/unit/out.h"
#include "tests/unit/test.h"

/*
 * Reply transcript: "code ecode|text|nlines" per reply ("\n" in text shown
 * as "/"), "; " between, "ERR:reason" at a failure, " rest=N" at the end.
 */
static void
resp_feed(struct out *o, const char *in, size_t len, size_t split,
    size_t step)
{
	struct up_smtp_resp_reader	*rd = up_smtp_resp_reader_new();
	struct evbuffer			*buf = evbuffer_new();
	struct up_smtp_resp		 r;
	size_t				 off = 0, n;
	char				 tmp[64];
	int				 rc = 0;

	o->len = 0;
	o->s[0] = '\0';
	while (off < len && rc >= 0) {
		n = split > 0 && off == 0 ? split : step;
		if (n > len - off)
			n = len - off;
		evbuffer_add(buf, in + off, n);
		off += n;
		while ((rc = up_smtp_resp_read(rd, buf, &r)) == 1) {
			if (o->len > 0)
				out_str_lines(o, "; ");
			snprintf(tmp, sizeof(tmp), "%d %s|", r.code, r.ecode);
			out_str_lines(o, tmp);
			out_add_lines(o, r.text, r.textlen);
			CHECK_INT(strlen(r.text), ==, r.textlen);
			CHECK_INT(strlen(r.wire), ==, r.wirelen);
			CHECK(r.wirelen >= 5 && memcmp(r.wire + r.wirelen - 2,
			    "\r\n", 2) == 0);
			snprintf(tmp, sizeof(tmp), "|%d", r.nlines);
			out_str_lines(o, tmp);
		}
		if (rc < 0) {
			if (o->len > 0)
				out_str_lines(o, "; ");
			out_str_lines(o, "ERR:");
			out_str_lines(o, up_smtp_resp_error(rd));
			/* Sticky. */
			CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, -1);
		}
	}
	snprintf(tmp, sizeof(tmp), " rest=%zu", rc < 0 ? 0 :
	    evbuffer_get_length(buf));
	out_str_lines(o, tmp);
	up_smtp_resp_reader_free(&rd);
	CHECK(rd == NULL);
	evbuffer_free(buf);
}

struct rcase {
	const char	*in;
	const char	*want;
};

static const struct rcase rcases[] = {
	{ "220 mx.example ESMTP\r\n", "220 |mx.example ESMTP|1 rest=0" },
	{ "250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n",
	    "250 |mx/PIPELINING/SIZE 1000/8BITMIME|4 rest=0" },
	{ "250 2.1.0 Ok\r\n", "250 2.1.0|Ok|1 rest=0" },
	{ "550-5.1.1 No such user\r\n550 5.1.1 here\r\n",
	    "550 5.1.1|No such user/here|2 rest=0" },
	{ "550-5.1.1 a\r\n550 b\r\n", "550 5.1.1|a/b|2 rest=0" },
	{ "354 End data with <CR><LF>.<CR><LF>\r\n",
	    "354 |End data with <CR><LF>.<CR><LF>|1 rest=0" },
	{ "334 VXNlcm5hbWU6\r\n", "334 |VXNlcm5hbWU6|1 rest=0" },
	{ "334 \r\n", "334 ||1 rest=0" },
	{ "250\r\n", "250 ||1 rest=0" },
	{ "250-\r\n250 x\r\n", "250 |/x|2 rest=0" },
	{ "250 ok\n", "250 |ok|1 rest=0" },
	{ "250 2.0.0\r\n", "250 2.0.0||1 rest=0" },
	{ "250 4.0.0 x\r\n", "250 |4.0.0 x|1 rest=0" },
	{ "250 2.0.0x\r\n", "250 |2.0.0x|1 rest=0" },
	{ "250 2.1234.0 x\r\n", "250 |2.1234.0 x|1 rest=0" },
	{ "452 4.5.3 Too many\r\n", "452 4.5.3|Too many|1 rest=0" },
	{ "250 a\tb \xc3\xa9\r\n", "250 |a\\x09b \\xc3\\xa9|1 rest=0" },
	{ "250 a\r\n221 b\r\n25", "250 |a|1; 221 |b|1 rest=2" },
	{ "250-a\r\n250-b", " rest=5" },
	/* Errors. */
	{ "25 x\r\n", "ERR:malformed reply code rest=0" },
	{ "600 x\r\n", "ERR:malformed reply code rest=0" },
	{ "199 x\r\n", "ERR:malformed reply code rest=0" },
	{ "2a0 x\r\n", "ERR:malformed reply code rest=0" },
	{ "\r\n", "ERR:malformed reply code rest=0" },
	{ "250x\r\n", "ERR:malformed reply separator rest=0" },
	{ "250-a\r\n251 b\r\n", "ERR:reply code changes between lines rest=0" },
	{ "250 a\x01\r\n", "ERR:control character in reply rest=0" },
	{ "250 a\rb\r\n", "ERR:control character in reply rest=0" },
	{ "250 a\x7f\r\n", "ERR:control character in reply rest=0" },
	{ "250 ok\r\n25x ok\r\n",
	    "250 |ok|1; ERR:malformed reply code rest=0" },
};

TEST(up_smtp_resp_table)
{
	static struct out out;

	for (size_t i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		const struct rcase *c = &rcases[i];
		size_t len = strlen(c->in);

		resp_feed(&out, c->in, len, 0, len);
		out_same(out.s, c->want, i, 0);
		resp_feed(&out, c->in, len, 0, 1);
		out_same(out.s, c->want, i, 1);
		for (size_t k = 1; k < len; k++) {
			resp_feed(&out, c->in, len, k, len);
			if (!out_same(out.s, c->want, i, k))
				break;
		}
	}
}

TEST(up_smtp_resp_wire_and_nul)
{
	struct up_smtp_resp_reader	*rd = up_smtp_resp_reader_new();
	struct evbuffer			*buf = evbuffer_new();
	struct up_smtp_resp		 r;

	evbuffer_add(buf, "250-a\n250 2.0.0 b\r\n", 19);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, 1);
	CHECK_STR(r.wire, "250-a\r\n250 2.0.0 b\r\n");
	CHECK_STR(r.ecode, "");		/* from the first line only */
	CHECK_STR(r.text, "a\nb");
	evbuffer_add(buf, "250 a\0b\r\n", 9);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, -1);
	CHECK_STR(up_smtp_resp_error(rd), "control character in reply");
	up_smtp_resp_reader_reset(rd);
	evbuffer_drain(buf, evbuffer_get_length(buf));
	evbuffer_add(buf, "221 bye\r\n", 9);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, 1);
	CHECK_INT(r.code, ==, 221);
	up_smtp_resp_reader_free(&rd);
	evbuffer_free(buf);
}

/* 4 KiB per line including CRLF, checked before the LF; 100 lines. */
TEST(up_smtp_resp_limits)
{
	struct up_smtp_resp_reader	*rd = up_smtp_resp_reader_new();
	struct evbuffer			*buf = evbuffer_new();
	struct up_smtp_resp		 r;
	char				*line;

	line = xmalloc(UP_SMTP_RESP_LINE_MAX + 8);

	memset(line, 'x', UP_SMTP_RESP_LINE_MAX + 8);
	memcpy(line, "250 ", 4);
	memcpy(line + UP_SMTP_RESP_LINE_MAX - 2, "\r\n", 2);
	evbuffer_add(buf, line, UP_SMTP_RESP_LINE_MAX);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, 1);
	CHECK_INT(r.textlen, ==, UP_SMTP_RESP_LINE_MAX - 6);
	/* One more byte and no LF yet: refused without waiting. */
	memcpy(line + UP_SMTP_RESP_LINE_MAX - 2, "xx", 2);
	evbuffer_add(buf, line, UP_SMTP_RESP_LINE_MAX - 1);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, 0);
	evbuffer_add(buf, "x", 1);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, -1);
	CHECK_STR(up_smtp_resp_error(rd), "reply line too long");
	up_smtp_resp_reader_reset(rd);
	evbuffer_drain(buf, evbuffer_get_length(buf));

	for (int i = 0; i < UP_SMTP_RESP_LINES_MAX - 1; i++)
		evbuffer_add(buf, "250-x\r\n", 7);
	evbuffer_add(buf, "250 x\r\n", 7);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, 1);
	CHECK_INT(r.nlines, ==, UP_SMTP_RESP_LINES_MAX);
	for (int i = 0; i < UP_SMTP_RESP_LINES_MAX; i++)
		evbuffer_add(buf, "250-x\r\n", 7);
	evbuffer_add(buf, "250 x\r\n", 7);
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, -1);
	CHECK_STR(up_smtp_resp_error(rd), "too many reply lines");
	free(line);
	up_smtp_resp_reader_free(&rd);
	evbuffer_free(buf);
}

static void
ehlo_of(const char *wire, struct up_smtp_resp_ehlo *e)
{
	struct up_smtp_resp_reader	*rd = up_smtp_resp_reader_new();
	struct evbuffer			*buf = evbuffer_new();
	struct up_smtp_resp		 r;

	evbuffer_add(buf, wire, strlen(wire));
	CHECK_INT(up_smtp_resp_read(rd, buf, &r), ==, 1);
	up_smtp_resp_ehlo(&r, e);
	up_smtp_resp_reader_free(&rd);
	evbuffer_free(buf);
}

TEST(up_smtp_resp_ehlo_keywords)
{
	struct up_smtp_resp_ehlo	e;
	unsigned			want;

	ehlo_of("250-mx.example Hello\r\n250-PIPELINING\r\n"
	    "250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
	    "250-AUTH PLAIN login XOAUTH2\r\n250-AUTH=PLAIN LOGIN CRAM-MD5\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
	    "250-SMTPUTF8\r\n250 CHUNKING\r\n", &e);
	want = UP_SMTP_RESP_CAP_PIPELINING | UP_SMTP_RESP_CAP_SIZE |
	    UP_SMTP_RESP_CAP_STARTTLS | UP_SMTP_RESP_CAP_AUTH |
	    UP_SMTP_RESP_CAP_ENHANCED | UP_SMTP_RESP_CAP_8BITMIME |
	    UP_SMTP_RESP_CAP_DSN | UP_SMTP_RESP_CAP_SMTPUTF8 |
	    UP_SMTP_RESP_CAP_CHUNKING;
	CHECK_INT(e.caps, ==, want);
	CHECK_INT(e.size_max, ==, 10240000);
	CHECK_STR(e.auth, "PLAIN LOGIN XOAUTH2 CRAM-MD5");

	ehlo_of("250-mx\r\n250-size\r\n250-pipelining\r\n250 AUTH\r\n", &e);
	want = UP_SMTP_RESP_CAP_SIZE | UP_SMTP_RESP_CAP_PIPELINING |
	    UP_SMTP_RESP_CAP_AUTH;
	CHECK_INT(e.caps, ==, want);
	CHECK_INT(e.size_max, ==, 0);
	CHECK_STR(e.auth, "");

	/* The greeting line is not a keyword; unknown ones are ignored. */
	ehlo_of("250 PIPELINING\r\n", &e);
	CHECK_INT(e.caps, ==, 0);
	ehlo_of("250-mx\r\n250-PIPELININGX\r\n250-X-SIZE 5\r\n250-AUTH "
	    "BAD/MECH ABCDEFGHIJKLMNOPQRSTU OK\r\n250 SIZE=5\r\n", &e);
	CHECK_INT(e.caps, ==, UP_SMTP_RESP_CAP_AUTH);
	CHECK_STR(e.auth, "OK");
}

/* The client against a scripted fake server. */

struct step {
	const char	*expect;	/* exact line; "*": any */
	const char	*reply;		/* NULL: none; "CLOSE": hang up */
};

struct fake {
	struct event_base	*base;
	struct evconnlistener	*lis;
	int			 port;
	struct bufferevent	*bev;
	const struct step	*steps;
	int			 nsteps;
	int			 i;
	bool			 in_data;
	bool			 data_after;	/* next reply opens DATA */
	struct out		 body;
	struct out		 log;
	int			 mismatches;
	int			 max_batch;
	bool			 closed;
	bool			 closing;	/* hang up once flushed */
	bool			 quit;
};

static void
fake_close(struct fake *f)
{
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	f->bev = NULL;
	f->closed = true;
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake	*f = arg;
	char		*line;
	size_t		 len;
	int		 batch = 0;

	while (f->bev != NULL && (line = evbuffer_readln(
	    bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF)) != NULL) {
		const struct step *s;

		if (f->in_data && strcmp(line, ".") != 0) {
			out_add_lines(&f->body, line, len);
			out_str_lines(&f->body, "|");
			free(line);
			continue;
		}
		f->in_data = false;
		batch++;
		out_add_lines(&f->log, line, len);
		out_str_lines(&f->log, "\n");
		if (strcmp(line, "QUIT") == 0) {
			f->quit = true;
			/* Answered even when the script does not say. */
			if (f->i >= f->nsteps || strcmp(f->steps[f->i].expect,
			    "QUIT") != 0) {
				evbuffer_add(bufferevent_get_output(bev),
				    "221 bye\r\n", 9);
				free(line);
				continue;
			}
		}
		if (f->i >= f->nsteps) {
			f->mismatches++;
			free(line);
			continue;
		}
		s = &f->steps[f->i++];
		if (strcmp(s->expect, "*") != 0 && strcmp(s->expect, line) !=
		    0) {
			fprintf(stderr, "  fake: step %d: got \"%s\" want "
			    "\"%s\"\n", f->i - 1, line, s->expect);
			f->mismatches++;
		}
		if (strcmp(line, "DATA") == 0 && s->reply != NULL &&
		    strncmp(s->reply, "354", 3) == 0)
			f->in_data = true;
		free(line);
		if (s->reply == NULL)
			continue;
		if (strcmp(s->reply, "CLOSE") == 0) {
			/* After the replies already queued have gone. */
			f->closing = true;
			bufferevent_disable(bev, EV_READ);
			if (evbuffer_get_length(bufferevent_get_output(bev)) ==
			    0)
				fake_close(f);
			break;
		}
		evbuffer_add(bufferevent_get_output(bev), s->reply,
		    strlen(s->reply));
	}
	if (batch > f->max_batch)
		f->max_batch = batch;
}

static void
fake_write_cb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;

	(void)bev;
	if (f->closing)
		fake_close(f);
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fake_close(arg);
}

static void
fake_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct fake *f = arg;

	(void)lis;
	(void)sa;
	(void)salen;
	f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(f->bev, fake_read_cb, fake_write_cb, fake_event_cb,
	    f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	/* Step 0 is the greeting. */
	f->i = 1;
	evbuffer_add(bufferevent_get_output(f->bev), f->steps[0].reply,
	    strlen(f->steps[0].reply));
}

static void
fake_start(struct fake *f, struct event_base *base, const struct step *steps,
    int nsteps)
{
	struct sockaddr_in	sin;
	socklen_t		slen = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->base = base;
	f->steps = steps;
	f->nsteps = nsteps;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lis = evconnlistener_new_bind(base, fake_accept_cb, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 8,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (f->lis == NULL)
		abort();
	getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&sin,
	    &slen);
	f->port = ntohs(sin.sin_port);
}

static void
fake_stop(struct fake *f)
{
	fake_close(f);
	evconnlistener_free(f->lis);
}

struct ctx {
	struct event_base	*base;
	struct fake		 fake;
	struct up_smtp		*up;
	bool			 login_done;
	enum up_fail		 login;
	char			 why[400];
	struct out		 replies;
	int			 nreplies;
	bool			 done;
	const char		*body;		/* written after 354 */
	bool			 free_in_cb;
	bool			 drained;
};

static void
drain_cb(void *arg)
{
	struct ctx *c = arg;

	c->drained = true;
}

static bool	guard_fired;

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	guard_fired = true;
}

static bool
run_until(struct event_base *base, const bool *flag, int ms)
{
	struct event	*g = evtimer_new(base, guard_cb, NULL);
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	guard_fired = false;
	evtimer_add(g, &tv);
	while (!*flag && !guard_fired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(g);
	return *flag;
}

static void
login_cb(void *arg, enum up_fail fail, const char *why)
{
	struct ctx *c = arg;

	c->login_done = true;
	c->login = fail;
	snprintf(c->why, sizeof(c->why), "%s", why != NULL ? why : "");
}

static void
reply_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct ctx	*c = arg;
	char		 tmp[64];

	if (c->replies.len > 0)
		out_str_lines(&c->replies, "; ");
	if (fail != UP_OK) {
		CHECK(r == NULL);
		out_str_lines(&c->replies, "FAIL ");
		out_str_lines(&c->replies, up_fail_name(fail));
		out_str_lines(&c->replies, ": ");
		out_str_lines(&c->replies, why);
	} else {
		snprintf(tmp, sizeof(tmp), "%d %s|", r->code, r->ecode);
		out_str_lines(&c->replies, tmp);
		out_str_lines(&c->replies, r->text);
	}
	c->nreplies++;
	if (c->free_in_cb)
		up_smtp_free(&c->up);
}

static void
final_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct ctx *c = arg;

	reply_cb(arg, fail, r, why);
	c->done = true;
}

/* On 354: write the body, end the message. */
static void
data_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct ctx	*c = arg;
	struct evbuffer	*chunk;

	reply_cb(arg, fail, r, why);
	if (fail != UP_OK || r->code != 354) {
		c->done = true;
		return;
	}
	chunk = evbuffer_new();
	/* In pieces, as a client's reads would come. */
	for (size_t o = 0, n = strlen(c->body); o < n; o += 3) {
		evbuffer_add(chunk, c->body + o, n - o < 3 ? n - o : 3);
		CHECK_INT(up_smtp_data_write(c->up, chunk), ==, 0);
		CHECK_INT(evbuffer_get_length(chunk), ==, 0);
	}
	CHECK(up_smtp_cmd(c->up, "NOOP", reply_cb, c) == -1);
	CHECK_INT(up_smtp_data_end(c->up, final_cb, c), ==, 0);
	CHECK_INT(up_smtp_data_end(c->up, final_cb, c), ==, -1);
	evbuffer_free(chunk);
}

static void
ctx_start_cb(struct ctx *c, const struct step *steps, int nsteps,
    enum up_tls tls, enum up_cred cred, const char *secret,
    long long cmd_ms, up_smtp_done_cb *done)
{
	struct up_env		env;
	struct up_target	t;

	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	fake_start(&c->fake, c->base, steps, nsteps);
	memset(&env, 0, sizeof(env));
	env.base = c->base;
	memset(&t, 0, sizeof(t));
	t.host = (char *)"127.0.0.1";
	t.port = c->fake.port;
	t.tls = tls;
	t.cred = cred;
	t.user = (char *)"alice";
	t.secret = (char *)secret;
	t.login_timeout_ms = 1000;
	c->up = up_smtp_new(&env, &t, NULL, cmd_ms, done, c);
	CHECK(c->up != NULL);
	/* Nothing before login. */
	CHECK(up_smtp_cmd(c->up, "NOOP", reply_cb, c) == -1);
	CHECK(up_smtp_data_begin(c->up, reply_cb, c) == -1);
}

static void
ctx_start(struct ctx *c, const struct step *steps, int nsteps,
    enum up_tls tls, enum up_cred cred, const char *secret,
    long long cmd_ms)
{
	ctx_start_cb(c, steps, nsteps, tls, cred, secret, cmd_ms, login_cb);
}

/* want with "PEER" standing for the fake's "127.0.0.1:port". */
static bool
same_peer(const char *got, const char *want, int port)
{
	char		 buf[OUT_MAX], peer[32];
	const char	*p;
	size_t		 o = 0;

	snprintf(peer, sizeof(peer), "127.0.0.1:%d", port);
	while ((p = strstr(want, "PEER")) != NULL) {
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%.*s%s",
		    (int)(p - want), want, peer);
		want = p + 4;
	}
	snprintf(buf + o, sizeof(buf) - o, "%s", want);
	return out_same(got, buf, 0, 0);
}

static void
ctx_end(struct ctx *c)
{
	up_smtp_free(&c->up);
	/* Let a closer finish (QUIT, 221, close). */
	run_until(c->base, &c->fake.closed, 3000);
	fake_stop(&c->fake);
	event_base_free(c->base);
}

#define NSTEPS(a)	((int)(sizeof(a) / sizeof(a[0])))
#define EHLO_FULL	"250-fake.example\r\n250-PIPELINING\r\n" \
			"250-SIZE 1000000\r\n250-8BITMIME\r\n" \
			"250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"
/* base64("\0alice\0secret") */
#define PLAIN_IR	"AGFsaWNlAHNlY3JldA=="

static const struct step tx_steps[] = {
	{ NULL, "220 fake.example ESMTP\r\n" },
	{ "EHLO postern", EHLO_FULL },
	{ "AUTH PLAIN " PLAIN_IR, "235 2.7.0 Authentication successful\r\n" },
	{ "MAIL FROM:<a@b.example> BODY=8BITMIME", "250 2.1.0 Ok\r\n" },
	{ "RCPT TO:<c@d.example>", "250 2.1.5 Ok\r\n" },
	{ "RCPT TO:<bad@d.example>",
	    "550-5.1.1 <bad@d.example>: Recipient address rejected:\r\n"
	    "550 5.1.1 User unknown\r\n" },
	{ "RCPT TO:<e@d.example>", "250 2.1.5 Ok\r\n" },
	{ "DATA", "354 End data with <CR><LF>.<CR><LF>\r\n" },
	{ ".", "250 2.0.0 Ok: queued as ABC123\r\n" },
	{ "RSET", "250 2.0.0 Ok\r\n" },
	{ "QUIT", "221 2.0.0 Bye\r\n" },
};

static void
tx_login_cb(void *arg, enum up_fail fail, const char *why)
{
	struct ctx *c = arg;

	login_cb(arg, fail, why);
	if (fail != UP_OK)
		return;
	/* A whole pipelined group, queued from the callback. */
	CHECK_INT(up_smtp_cmd(c->up, "MAIL FROM:<a@b.example> BODY=8BITMIME",
	    reply_cb, c), ==, 0);
	CHECK_INT(up_smtp_cmd(c->up, "RCPT TO:<c@d.example>", reply_cb, c), ==,
	    0);
	CHECK_INT(up_smtp_cmd(c->up, "RCPT TO:<bad@d.example>", reply_cb, c),
	    ==, 0);
	CHECK_INT(up_smtp_cmd(c->up, "RCPT TO:<e@d.example>", reply_cb, c), ==,
	    0);
	CHECK_INT(up_smtp_data_begin(c->up, data_cb, c), ==, 0);
	/* Nothing may follow DATA before its reply (RFC 2920). */
	CHECK_INT(up_smtp_cmd(c->up, "RSET", reply_cb, c), ==, -1);
	CHECK_INT(up_smtp_data_begin(c->up, data_cb, c), ==, -1);
}

static void
run_tx(const struct step *steps, int nsteps, int want_batch_min,
    int want_batch_max)
{
	struct ctx	c;
	unsigned	caps;

	ctx_start_cb(&c, steps, nsteps, UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", 0, tx_login_cb);
	c.body = "Subject: t\r\n\r\nline 1\r\n..leading dot\r\n"
	    "8bit \xc3\xa9\r\n";
	CHECK(run_until(c.base, &c.done, 3000));
	CHECK_INT(c.login, ==, UP_OK);
	CHECK_STR(up_smtp_mech(c.up), "PLAIN");
	caps = UP_SMTP_RESP_CAP_PIPELINING | UP_SMTP_RESP_CAP_SIZE |
	    UP_SMTP_RESP_CAP_8BITMIME | UP_SMTP_RESP_CAP_ENHANCED |
	    UP_SMTP_RESP_CAP_AUTH;
	CHECK_INT(up_smtp_caps(c.up), ==, caps);
	CHECK_INT(up_smtp_size_max(c.up), ==, 1000000);
	out_same(c.replies.s, "250 2.1.0|Ok; 250 2.1.5|Ok; 550 5.1.1|"
	    "<bad@d.example>: Recipient address rejected:/User unknown; "
	    "250 2.1.5|Ok; 354 |End data with <CR><LF>.<CR><LF>; "
	    "250 2.0.0|Ok: queued as ABC123", 0, 0);
	/* Dot-stuffing passes through unchanged. */
	out_same(c.fake.body.s, "Subject: t||line 1|..leading dot|8bit "
	    "\\xc3\\xa9|", 0, 0);
	CHECK_INT(c.fake.max_batch, >=, want_batch_min);
	CHECK_INT(c.fake.max_batch, <=, want_batch_max);
	/* The session goes on: RSET, then QUIT from up_smtp_free. */
	c.done = false;
	CHECK_INT(up_smtp_cmd(c.up, "RSET", final_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.done, 3000));
	up_smtp_free(&c.up);
	CHECK(run_until(c.base, &c.fake.closed, 3000));
	CHECK(c.fake.quit);
	CHECK_INT(c.fake.mismatches, ==, 0);
	fake_stop(&c.fake);
	event_base_free(c.base);
}

TEST(up_smtp_transaction_pipelined)
{
	run_tx(tx_steps, NSTEPS(tx_steps), 2, 100);
}

TEST(up_smtp_transaction_lockstep)
{
	struct step steps[NSTEPS(tx_steps)];

	memcpy(steps, tx_steps, sizeof(steps));
	steps[9] = (struct step){ "QUIT", "221 2.0.0 Bye\r\n" };
	steps[1].reply = "250-fake.example\r\n250-SIZE 1000000\r\n"
	    "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH=PLAIN\r\n";
	/* Without PIPELINING one command at a time. The run_tx caps check
	 * would fail on the missing bit: check the batch only. */
	{
		struct ctx c;

		ctx_start(&c, steps, NSTEPS(steps) - 1, UP_TLS_NONE,
		    UP_CRED_PASSWORD, "secret", 0);
		CHECK(run_until(c.base, &c.login_done, 3000));
		CHECK_INT(c.login, ==, UP_OK);
		CHECK_INT(up_smtp_caps(c.up) & UP_SMTP_RESP_CAP_PIPELINING, ==,
		    0);
		CHECK_INT(up_smtp_cmd(c.up, "MAIL FROM:<a@b.example> "
		    "BODY=8BITMIME", reply_cb, &c), ==, 0);
		CHECK_INT(up_smtp_cmd(c.up, "RCPT TO:<c@d.example>", reply_cb,
		    &c), ==, 0);
		CHECK_INT(up_smtp_cmd(c.up, "RCPT TO:<bad@d.example>",
		    reply_cb, &c), ==, 0);
		CHECK_INT(up_smtp_cmd(c.up, "RCPT TO:<e@d.example>", reply_cb,
		    &c), ==, 0);
		c.body = "x";	/* no final CRLF: the client adds one */
		CHECK_INT(up_smtp_data_begin(c.up, data_cb, &c), ==, 0);
		CHECK(run_until(c.base, &c.done, 3000));
		out_same(c.fake.body.s, "x|", 0, 0);
		CHECK_INT(c.fake.max_batch, ==, 1);
		CHECK_INT(c.nreplies, ==, 6);
		ctx_end(&c);
		CHECK(c.fake.quit);
		CHECK_INT(c.fake.mismatches, ==, 0);
	}
}

/* want_quit: a refusal by a well-formed reply ends with QUIT, a broken
 * connection without. */
static void
login_only(const struct step *steps, int nsteps, enum up_tls tls,
    enum up_cred cred, const char *secret, enum up_fail want,
    const char *want_why, bool want_quit)
{
	struct ctx c;

	ctx_start(&c, steps, nsteps, tls, cred, secret, 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	CHECK_INT(c.login, ==, want);
	same_peer(c.why, want_why, c.fake.port);
	/* Never a credential in the reason. */
	CHECK(strstr(c.why, "secret") == NULL);
	CHECK(strstr(c.why, "c2VjcmV0") == NULL);
	CHECK(strstr(c.why, PLAIN_IR) == NULL);
	if (want != UP_OK)
		CHECK(up_smtp_cmd(c.up, "NOOP", reply_cb, &c) == -1);
	ctx_end(&c);
	CHECK_INT(c.fake.mismatches, ==, 0);
	CHECK(c.fake.quit == want_quit);
}

TEST(up_smtp_login_variants)
{
	static const struct step auth_fail[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", EHLO_FULL },
		{ "AUTH PLAIN " PLAIN_IR, "535 5.7.8 Error: authentication "
		    "failed: authentication failure\r\n" },
	};
	static const struct step auth_tmp[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", EHLO_FULL },
		{ "AUTH PLAIN " PLAIN_IR, "454 4.7.0 Temporary authentication "
		    "failure\r\n" },
	};
	/* libsasl2's LOGIN client waits for the server's prompts. */
	static const struct step auth_login[] = {
		{ NULL, "220-fake ESMTP\r\n220 second line\r\n" },
		{ "EHLO postern", "250-fake\r\n250 AUTH LOGIN\r\n" },
		{ "AUTH LOGIN", "334 VXNlcm5hbWU6\r\n" },
		{ "YWxpY2U=", "334 UGFzc3dvcmQ6\r\n" },
		{ "c2VjcmV0", "235 2.7.0 ok\r\n" },
		{ "QUIT", "221 bye\r\n" },
	};
	static const struct step no_starttls[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", EHLO_FULL },
	};
	static const struct step starttls_refused[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "250-fake\r\n250 STARTTLS\r\n" },
		{ "STARTTLS", "454 4.7.0 TLS not available\r\n" },
	};
	static const struct step no_auth[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "250-fake\r\n250 8BITMIME\r\n" },
	};
	static const struct step no_mech[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "250-fake\r\n250 AUTH GSSAPI\r\n" },
	};
	static const struct step greet_554[] = {
		{ NULL, "554 5.3.2 no service\r\n" },
	};
	static const struct step ehlo_bad[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "502 5.5.1 no EHLO\r\n" },
	};
	static const struct step garbage[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "HTTP/1.1 400 Bad Request\r\n" },
	};
	static const struct step hangup[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "CLOSE" },
	};
	static const struct step silent[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", NULL },
	};
	/* XOAUTH2 refused: the JSON error challenge is answered with an
	 * empty line, then the final 535 (TEST-HARNESS-NOTES). */
	static const struct step xoauth2[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "250-fake\r\n250 AUTH PLAIN XOAUTH2\r\n" },
		{ "*", "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n" },
		{ "", "535 5.7.8 Username and Password not accepted\r\n" },
	};
	static const struct step xoauth2_ok[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "250-fake\r\n250 AUTH PLAIN XOAUTH2\r\n" },
		/* base64("user=alice\1auth=Bearer tok\1\1") */
		{ "AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ==",
		    "235 2.7.0 Accepted\r\n" },
		{ "QUIT", "221 bye\r\n" },
	};

	login_only(auth_fail, NSTEPS(auth_fail), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_AUTH, "AUTH PLAIN refused: 535 5.7.8 Error: "
	    "authentication failed: authentication failure", true);
	login_only(auth_tmp, NSTEPS(auth_tmp), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_CONNECT, "AUTH PLAIN refused: 454 4.7.0 "
	    "Temporary authentication failure", true);
	login_only(auth_login, NSTEPS(auth_login), UP_TLS_NONE,
	    UP_CRED_PASSWORD, "secret", UP_OK, "", true);
	login_only(no_starttls, NSTEPS(no_starttls), UP_TLS_STARTTLS,
	    UP_CRED_PASSWORD, "secret", UP_FAIL_CONFIG,
	    "upstream does not offer STARTTLS", true);
	login_only(starttls_refused, NSTEPS(starttls_refused), UP_TLS_STARTTLS,
	    UP_CRED_PASSWORD, "secret", UP_FAIL_TLS,
	    "STARTTLS refused: 454 4.7.0 TLS not available", true);
	login_only(no_auth, NSTEPS(no_auth), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_CONFIG, "upstream PEER offers no AUTH", true);
	login_only(no_mech, NSTEPS(no_mech), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_CONFIG,
	    "no usable AUTH mechanism (upstream offers GSSAPI)", true);
	login_only(greet_554, NSTEPS(greet_554), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_CONNECT, "upstream greeting: 554 5.3.2 no "
	    "service", true);
	login_only(ehlo_bad, NSTEPS(ehlo_bad), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_PROTOCOL, "EHLO refused: 502 5.5.1 no EHLO",
	    true);
	login_only(garbage, NSTEPS(garbage), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_PROTOCOL,
	    "bad reply from PEER: malformed reply code", false);
	login_only(hangup, NSTEPS(hangup), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_CONNECT, "connection closed by PEER", false);
	login_only(silent, NSTEPS(silent), UP_TLS_NONE, UP_CRED_PASSWORD,
	    "secret", UP_FAIL_CONNECT, "login to PEER timed out", false);
	login_only(xoauth2, NSTEPS(xoauth2), UP_TLS_NONE, UP_CRED_OAUTH2,
	    "tok", UP_FAIL_AUTH, "AUTH XOAUTH2 refused: 535 5.7.8 Username "
	    "and Password not accepted ({\\\"status\\\":\\\"401\\\"})", true);
	login_only(xoauth2_ok, NSTEPS(xoauth2_ok), UP_TLS_NONE, UP_CRED_OAUTH2,
	    "tok", UP_OK, "", true);
}

/* RFC 4954 section 4: an initial response that would push the AUTH line
 * over 512 octets goes on its own line after an empty 334. */
TEST(up_smtp_long_initial_response)
{
	static struct step steps[] = {
		{ NULL, "220 fake ESMTP\r\n" },
		{ "EHLO postern", "250-fake\r\n250 AUTH PLAIN\r\n" },
		{ "AUTH PLAIN", "334 \r\n" },
		{ "*", "235 2.7.0 ok\r\n" },
		{ "QUIT", "221 bye\r\n" },
	};
	char		 secret[400];
	struct ctx	 c;

	memset(secret, 'p', sizeof(secret) - 1);
	secret[sizeof(secret) - 1] = '\0';
	ctx_start(&c, steps, NSTEPS(steps), UP_TLS_NONE, UP_CRED_PASSWORD,
	    secret, 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	CHECK_INT(c.login, ==, UP_OK);
	ctx_end(&c);
	CHECK_INT(c.fake.mismatches, ==, 0);
	CHECK(c.fake.quit);
}

static const struct step ready_steps[] = {
	{ NULL, "220 fake ESMTP\r\n" },
	{ "EHLO postern", EHLO_FULL },
	{ "AUTH PLAIN " PLAIN_IR, "235 2.7.0 ok\r\n" },
};

/* After login: a command without reply times out; every later request
 * fails the same way, from the loop. */
TEST(up_smtp_cmd_timeout)
{
	struct step	 steps[4];
	struct ctx	 c;

	memcpy(steps, ready_steps, sizeof(ready_steps));
	steps[3] = (struct step){ "MAIL FROM:<a@b>", NULL };
	ctx_start(&c, steps, 4, UP_TLS_NONE, UP_CRED_PASSWORD, "secret", 200);
	CHECK(run_until(c.base, &c.login_done, 3000));
	CHECK_INT(up_smtp_cmd(c.up, "MAIL FROM:<a@b>", reply_cb, &c), ==, 0);
	CHECK_INT(up_smtp_cmd(c.up, "RCPT TO:<c@d>", final_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.done, 3000));
	same_peer(c.replies.s, "FAIL connect: no reply from PEER in 200 ms; "
	    "FAIL connect: no reply from PEER in 200 ms", c.fake.port);
	/* Later requests are accepted and fail from the loop. */
	c.done = false;
	CHECK_INT(up_smtp_cmd(c.up, "RSET", final_cb, &c), ==, 0);
	CHECK_INT(c.nreplies, ==, 2);
	CHECK(run_until(c.base, &c.done, 3000));
	CHECK_INT(c.nreplies, ==, 3);
	/* The connection is gone: no QUIT. */
	ctx_end(&c);
	CHECK(!c.fake.quit);
}

/* The upstream hangs up with commands in flight; and a 421 when idle. */
TEST(up_smtp_conn_lost)
{
	struct step	 steps[5];
	struct ctx	 c;

	memcpy(steps, ready_steps, sizeof(ready_steps));
	steps[3] = (struct step){ "MAIL FROM:<a@b>", "250 2.1.0 Ok\r\n" };
	steps[4] = (struct step){ "RCPT TO:<c@d>", "CLOSE" };
	ctx_start(&c, steps, 5, UP_TLS_NONE, UP_CRED_PASSWORD, "secret", 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	CHECK_INT(up_smtp_cmd(c.up, "MAIL FROM:<a@b>", reply_cb, &c), ==, 0);
	CHECK_INT(up_smtp_cmd(c.up, "RCPT TO:<c@d>", reply_cb, &c), ==, 0);
	CHECK_INT(up_smtp_data_begin(c.up, final_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.done, 3000));
	same_peer(c.replies.s, "250 2.1.0|Ok; FAIL connect: connection closed "
	    "by PEER; FAIL connect: connection closed by PEER", c.fake.port);
	ctx_end(&c);

	memcpy(steps, ready_steps, sizeof(ready_steps));
	steps[2].reply = "235 2.7.0 ok\r\n421 4.4.2 idle timeout\r\n";
	ctx_start(&c, steps, 3, UP_TLS_NONE, UP_CRED_PASSWORD, "secret", 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	CHECK_INT(c.login, ==, UP_OK);
	/* Let the 421 arrive. */
	run_until(c.base, &c.fake.closed, 300);
	CHECK_INT(up_smtp_cmd(c.up, "NOOP", final_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.done, 3000));
	same_peer(c.replies.s, "FAIL connect: unexpected reply from PEER: "
	    "421 4.4.2 idle timeout", c.fake.port);
	ctx_end(&c);
}

/* Abandoning a message: free mid-DATA closes without terminator or QUIT;
 * free from inside a reply callback is safe. */
TEST(up_smtp_abandon_data)
{
	struct step	 steps[6];
	struct ctx	 c;
	struct evbuffer	*chunk = evbuffer_new();

	memcpy(steps, ready_steps, sizeof(ready_steps));
	steps[3] = (struct step){ "MAIL FROM:<a@b>", "250 2.1.0 Ok\r\n" };
	steps[4] = (struct step){ "DATA", "354 go\r\n" };
	ctx_start(&c, steps, 5, UP_TLS_NONE, UP_CRED_PASSWORD, "secret", 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	CHECK_INT(up_smtp_cmd(c.up, "MAIL FROM:<a@b>", reply_cb, &c), ==, 0);
	CHECK_INT(up_smtp_data_begin(c.up, final_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.done, 3000));
	evbuffer_add(chunk, "partial\r\n", 9);
	c.drained = false;
	up_smtp_set_drain_cb(c.up, drain_cb, &c);
	CHECK_INT(up_smtp_data_write(c.up, chunk), ==, 0);
	CHECK_INT(up_smtp_data_pending(c.up), ==, 9);
	CHECK(run_until(c.base, &c.drained, 3000));
	CHECK_INT(up_smtp_data_pending(c.up), ==, 0);
	/* Let the fake read it. */
	for (int i = 0; i < 20 && c.fake.body.len == 0; i++)
		event_base_loop(c.base, EVLOOP_NONBLOCK);
	up_smtp_free(&c.up);
	CHECK(run_until(c.base, &c.fake.closed, 3000));
	CHECK(!c.fake.quit);
	CHECK(c.fake.in_data);		/* no "." ever came */
	out_same(c.fake.body.s, "partial|", 0, 0);
	ctx_end(&c);
	evbuffer_free(chunk);

	/* Freed from the first of several pending callbacks: QUIT still
	 * follows the RCPT in flight. */
	memcpy(steps, ready_steps, sizeof(ready_steps));
	steps[3] = (struct step){ "MAIL FROM:<a@b>", "250 2.1.0 Ok\r\n" };
	steps[4] = (struct step){ "RCPT TO:<c@d>", "250 2.1.5 Ok\r\n" };
	steps[5] = (struct step){ "QUIT", "221 bye\r\n" };
	ctx_start(&c, steps, 6, UP_TLS_NONE, UP_CRED_PASSWORD, "secret", 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	c.free_in_cb = true;
	CHECK_INT(up_smtp_cmd(c.up, "MAIL FROM:<a@b>", reply_cb, &c), ==, 0);
	CHECK_INT(up_smtp_cmd(c.up, "RCPT TO:<c@d>", reply_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.fake.closed, 3000));
	CHECK_INT(c.nreplies, ==, 1);
	CHECK(c.up == NULL);
	CHECK(c.fake.quit);
	CHECK_INT(c.fake.mismatches, ==, 0);
	ctx_end(&c);
}

static void
data_refused_cb(void *arg, enum up_fail fail, const struct up_smtp_resp *r,
    const char *why)
{
	struct ctx *c = arg;

	struct evbuffer *chunk = evbuffer_new();

	reply_cb(arg, fail, r, why);
	/* Not 354: no DATA is open, the transaction can be reset. */
	evbuffer_add(chunk, "x", 1);
	CHECK_INT(up_smtp_data_write(c->up, chunk), ==, -1);
	CHECK_INT(evbuffer_get_length(chunk), ==, 1);
	evbuffer_free(chunk);
	CHECK_INT(up_smtp_data_end(c->up, final_cb, c), ==, -1);
	CHECK_INT(up_smtp_cmd(c->up, "RSET", final_cb, c), ==, 0);
}

TEST(up_smtp_misc)
{
	struct step	 steps[7];
	struct ctx	 c;

	memcpy(steps, ready_steps, sizeof(ready_steps));
	steps[3] = (struct step){ "MAIL FROM:<a@b>", "250 2.1.0 Ok\r\n" };
	steps[4] = (struct step){ "DATA", "554 5.5.1 Error: no valid "
	    "recipients\r\n" };
	steps[5] = (struct step){ "RSET", "250 2.0.0 Ok\r\n" };
	steps[6] = (struct step){ "QUIT", "221 bye\r\n" };
	ctx_start(&c, steps, 7, UP_TLS_NONE, UP_CRED_PASSWORD, "secret", 0);
	CHECK(run_until(c.base, &c.login_done, 3000));
	/* Only relayable commands, one line each. */
	CHECK(up_smtp_cmd(c.up, "DATA", reply_cb, &c) == -1);
	CHECK(up_smtp_cmd(c.up, "QUIT", reply_cb, &c) == -1);
	CHECK(up_smtp_cmd(c.up, "AUTH PLAIN x", reply_cb, &c) == -1);
	CHECK(up_smtp_cmd(c.up, "STARTTLS", reply_cb, &c) == -1);
	CHECK(up_smtp_cmd(c.up, "RSETX", reply_cb, &c) == -1);
	CHECK(up_smtp_cmd(c.up, "MAIL FROM:<a@b>\r\nRCPT TO:<x@y>", reply_cb,
	    &c) == -1);
	CHECK(up_smtp_cmd(c.up, "RCPT TO:<x@y>\n", reply_cb, &c) == -1);
	CHECK_INT(up_smtp_cmd(c.up, "MAIL FROM:<a@b>", reply_cb, &c), ==, 0);
	CHECK_INT(up_smtp_data_begin(c.up, data_refused_cb, &c), ==, 0);
	CHECK(run_until(c.base, &c.done, 3000));
	out_same(c.replies.s, "250 2.1.0|Ok; 554 5.5.1|Error: no valid recipients;"
	    " 250 2.0.0|Ok", 0, 0);
	ctx_end(&c);
	CHECK(c.fake.quit);
	CHECK_INT(c.fake.mismatches, ==, 0);
	CHECK_INT(c.nreplies, ==, 3);

	/* No credentials: a config failure, from the loop. */
	{
		struct up_env		e;
		struct up_target	t;
		struct ctx		c2;

		memset(&c2, 0, sizeof(c2));
		c2.base = event_base_new();
		memset(&e, 0, sizeof(e));
		e.base = c2.base;
		memset(&t, 0, sizeof(t));
		t.host = (char *)"127.0.0.1";
		t.port = 1;
		c2.up = up_smtp_new(&e, &t, "bad name", 0, login_cb, &c2);
		CHECK(!c2.login_done);
		CHECK(run_until(c2.base, &c2.login_done, 3000));
		CHECK_INT(c2.login, ==, UP_FAIL_CONFIG);
		CHECK_STR(c2.why, "no upstream credentials");
		up_smtp_free(&c2.up);
		event_base_free(c2.base);
	}
}
