/*
 * Copy to Sent. The task: up_imap login (shared upstream code), then
 * [LIST "" "*" to find the \Sent mailbox (RFC 6154) or a usual name],
 * APPEND mailbox (\Seen) {n}, LOGOUT. Each step is one tagged command,
 * read with the shared upstream response reader.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"
#include "proxy/smtp_sent.h"
#include "proxy/worker.h"
#include "tokenstore/tok_store.h"
#include "upstream/up_imap.h"
#include "upstream/up_resp.h"

#define SENT_TIMEOUT_MS		(5 * 60 * 1000)
#define SENT_MAILBOX_MAX	512

enum sent_step {
	SENT_LOGIN,
	SENT_LIST,
	SENT_APPEND_CONT,	/* waiting for "+" */
	SENT_APPEND_DONE,
	SENT_LOGOUT,
};

struct smtp_sent {
	LIST_ENTRY(smtp_sent)	 entry;
	struct worker		*w;
	char			*account;
	char			 sess[17];
	struct up_target	*imap;
	char			*mailbox;	/* chosen Sent folder */
	int			 fd;		/* spool */
	off_t			 size;
	bool			 at_line_start;
	bool			 spool_failed;
	struct up_imap		*up;
	struct bufferevent	*bev;
	struct up_resp_reader	*rd;
	enum sent_step		 step;
	struct event		*timer;
	char			*special;	/* \Sent from LIST */
	char			*usual;		/* a usual name from LIST */
	int			 usual_rank;
};

static LIST_HEAD(, smtp_sent) sent_tasks = LIST_HEAD_INITIALIZER(sent_tasks);

static const char *const sent_usual[] = {
	"Sent", "Sent Items", "Sent Messages", "[Gmail]/Sent Mail", "Sent Mail",
	"INBOX.Sent", "INBOX/Sent",
};

static int
sent_spool_open(void)
{
	const char	*dir = getenv("TMPDIR");
	char		 path[512];
	int		 fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600)) >=
	    0)
		return fd;
	snprintf(path, sizeof(path), "%s/postern-sent-XXXXXX", dir);
	if ((fd = mkostemp(path, O_CLOEXEC)) == -1)
		return -1;
	unlink(path);
	return fd;
}

/* Gmail files what it sends in Sent Mail itself: a copy would double. */
static bool
sent_provider_files_itself(const char *host)
{
	size_t n = strlen(host);

	return strcasecmp(host, "imap.gmail.com") == 0 ||
	    (n > 10 && strcasecmp(host + n - 10, ".gmail.com") == 0) ||
	    (n > 15 && strcasecmp(host + n - 15, "googlemail.com") == 0);
}

struct smtp_sent *
smtp_sent_new(struct worker *w, const char *account,
    const struct up_target *imap, const char *sent_path, const char *sess_id)
{
	struct smtp_sent *t;

	if (imap == NULL || sent_provider_files_itself(imap->host))
		return NULL;
	t = xcalloc(1, sizeof(*t));
	if ((t->fd = sent_spool_open()) == -1) {
		log_warn("sess=%s event=sent_copy result=fail account=%s "
		    "reason=\"spool: %s\"", sess_id, account, strerror(errno));
		free(t);
		return NULL;
	}
	t->w = w;
	t->account = xstrdup(account);
	snprintf(t->sess, sizeof(t->sess), "%s", sess_id);
	t->imap = up_target_dup(imap);
	if (sent_path != NULL && *sent_path != '\0')
		t->mailbox = xstrdup(sent_path);
	t->at_line_start = true;
	return t;
}

static void
sent_spool_put(struct smtp_sent *t, const char *p, size_t n)
{
	while (n > 0 && !t->spool_failed) {
		ssize_t w = write(t->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			t->spool_failed = true;
			return;
		}
		p += w;
		n -= (size_t)w;
		t->size += w;
	}
}

void
smtp_sent_write(struct smtp_sent *t, struct evbuffer *buf)
{
	struct evbuffer_iovec	*v;
	int			 nv;

	if (t == NULL || t->spool_failed)
		return;
	if ((nv = evbuffer_peek(buf, -1, NULL, NULL, 0)) <= 0)
		return;
	v = xcalloc((size_t)nv, sizeof(*v));
	nv = evbuffer_peek(buf, -1, NULL, v, nv);
	for (int i = 0; i < nv; i++) {
		const char	*p = v[i].iov_base;
		size_t		 n = v[i].iov_len, start = 0;

		/* RFC 5321 4.5.2: a line-initial "." was added by the
		 * client's stuffing; the terminator line never reaches us. */
		for (size_t k = 0; k < n; k++) {
			if (t->at_line_start && p[k] == '.') {
				sent_spool_put(t, p + start, k - start);
				start = k + 1;
			}
			t->at_line_start = p[k] == '\n';
		}
		sent_spool_put(t, p + start, n - start);
	}
	free(v);
}

static void
sent_free(struct smtp_sent *t)
{
	if (t->timer != NULL) {
		event_free(t->timer);
		LIST_REMOVE(t, entry);
	}
	up_imap_free(&t->up);
	if (t->bev != NULL)
		bufferevent_free(t->bev);
	up_resp_reader_free(&t->rd);
	up_target_free(&t->imap);
	if (t->fd != -1)
		close(t->fd);
	free(t->mailbox);
	free(t->special);
	free(t->usual);
	free(t->account);
	free(t);
}

void
smtp_sent_free(struct smtp_sent **tp)
{
	if (*tp == NULL)
		return;
	sent_free(*tp);
	*tp = NULL;
}

static void
sent_done(struct smtp_sent *t, const char *err)
{
	if (err == NULL)
		log_info("sess=%s event=sent_copy result=ok account=%s "
		    "mailbox=\"%s\" size=%lld", t->sess, t->account, t->mailbox,
		    (long long)t->size);
	else {
		char msg[300];

		log_warn("sess=%s event=sent_copy result=fail account=%s "
		    "reason=\"%s\"", t->sess, t->account, err);
		snprintf(msg, sizeof(msg), "Copy to Sent failed: %s", err);
		tok_account_set_state(t->w->tok, t->account, "connected", msg);
	}
	sent_free(t);
}

/* Writes an IMAP astring for a mailbox name: quoted when it can be. */
static void
sent_put_mailbox(struct evbuffer *out, const char *name)
{
	evbuffer_add(out, "\"", 1);
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add(out, "\\", 1);
		evbuffer_add(out, p, 1);
	}
	evbuffer_add(out, "\"", 1);
}

static void
sent_append(struct smtp_sent *t)
{
	struct evbuffer *out = bufferevent_get_output(t->bev);

	t->step = SENT_APPEND_CONT;
	evbuffer_add_printf(out, "S2 APPEND ");
	sent_put_mailbox(out, t->mailbox);
	evbuffer_add_printf(out, " (\\Seen) {%lld}\r\n", (long long)t->size);
}

/* Parses the mailbox name at the end of a LIST response into a malloc'd
 * string; flags_r gets the attribute list. NULL if malformed. */
static char *
sent_list_name(const char *rest, char *flags_r, size_t flagslen)
{
	const char	*p = rest, *e;
	char		*name;
	size_t		 o = 0;

	if (strncasecmp(p, "LIST (", 6) != 0)
		return NULL;
	p += 6;
	if ((e = strchr(p, ')')) == NULL)
		return NULL;
	snprintf(flags_r, flagslen, "%.*s", (int)(e - p), p);
	p = e + 1;
	if (*p++ != ' ')
		return NULL;
	if (strncasecmp(p, "NIL", 3) == 0)
		p += 3;
	else if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		if (*p++ != '"')
			return NULL;
	} else
		return NULL;
	if (*p++ != ' ')
		return NULL;
	if (*p == '{') {			/* literal, collected inline */
		if ((e = strstr(p, "}\r\n")) == NULL)
			return NULL;
		return xstrdup(e + 3);
	}
	if (*p != '"')
		return strlen(p) < SENT_MAILBOX_MAX ? xstrdup(p) : NULL;
	name = xmalloc(strlen(p));
	for (p++; *p != '\0' && *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		name[o++] = *p;
	}
	name[o] = '\0';
	return name;
}

static void
sent_list_line(struct smtp_sent *t, const struct up_resp *r)
{
	char	 flags[256], *name;

	if ((name = sent_list_name(r->rest, flags, sizeof(flags))) == NULL)
		return;
	if (t->special == NULL && strcasestr(flags, "\\Sent") != NULL) {
		t->special = name;
		return;
	}
	for (int i = 0; i < (int)(sizeof(sent_usual) / sizeof(sent_usual[0]));
	    i++)
		if (strcasecmp(name, sent_usual[i]) == 0 &&
		    (t->usual == NULL || i < t->usual_rank)) {
			free(t->usual);
			t->usual = name;
			t->usual_rank = i;
			return;
		}
	free(name);
}

static void
sent_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_sent	*t = arg;
	struct up_resp		 r;
	int			 rc;

	while ((rc = up_resp_read(t->rd, bufferevent_get_input(bev), &r)) ==
	    1) {
		if (r.kind == UP_RESP_UNTAGGED) {
			if (r.status == UP_RESP_BYE) {
				/* Expected as the answer to our LOGOUT. */
				sent_done(t, t->step == SENT_LOGOUT ? NULL :
				    "upstream said BYE");
				return;
			}
			if (t->step == SENT_LIST)
				sent_list_line(t, &r);
			continue;
		}
		if (r.kind == UP_RESP_CONT) {
			if (t->step != SENT_APPEND_CONT) {
				sent_done(t, "unexpected continuation");
				return;
			}
			/* The spool goes out as the literal; libevent
			 * owns (and closes) the fd from here. */
			t->step = SENT_APPEND_DONE;
			evbuffer_add_file(bufferevent_get_output(bev), t->fd, 0,
			    t->size);
			t->fd = -1;
			evbuffer_add(bufferevent_get_output(bev), "\r\n", 2);
			continue;
		}
		switch (t->step) {
		case SENT_LIST:
			if (t->special != NULL)
				t->mailbox = xstrdup(t->special);
			else if (t->usual != NULL)
				t->mailbox = xstrdup(t->usual);
			else {
				sent_done(t, "no Sent folder found");
				return;
			}
			sent_append(t);
			break;
		case SENT_APPEND_CONT:
		case SENT_APPEND_DONE:
			if (r.status != UP_RESP_OK) {
				char buf[200], msg[260];

				snprintf(msg, sizeof(msg), "APPEND to %s: %s",
				    t->mailbox, str_sanitize(r.rest, 150, buf,
				    sizeof(buf)));
				sent_done(t, msg);
				return;
			}
			t->step = SENT_LOGOUT;
			evbuffer_add_printf(bufferevent_get_output(bev),
			    "S3 LOGOUT\r\n");
			break;
		case SENT_LOGOUT:
		case SENT_LOGIN:
			sent_done(t, NULL);
			return;
		}
	}
	if (rc == -1)
		sent_done(t, up_resp_error(t->rd));
}

static void
sent_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_sent *t = arg;

	(void)bev;
	(void)what;
	sent_done(t, t->step == SENT_LOGOUT ? NULL :
	    "upstream connection lost");
}

static void
sent_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sent_done(arg, "timeout");
}

static void
sent_login_cb(void *arg, enum up_fail fail, const char *why)
{
	struct smtp_sent	*t = arg;
	char			 msg[300];

	if (fail != UP_OK) {
		snprintf(msg, sizeof(msg), "IMAP login: %s", why);
		sent_done(t, msg);
		return;
	}
	t->bev = up_imap_steal_bev(t->up);
	up_imap_free(&t->up);
	t->rd = up_resp_reader_new(true);
	bufferevent_setcb(t->bev, sent_read_cb, NULL, sent_event_cb, t);
	bufferevent_enable(t->bev, EV_READ | EV_WRITE);
	if (t->mailbox != NULL)
		sent_append(t);
	else {
		t->step = SENT_LIST;
		evbuffer_add_printf(bufferevent_get_output(t->bev),
		    "S1 LIST \"\" \"*\"\r\n");
	}
	sent_read_cb(t->bev, t);	/* bytes after the tagged OK */
}

void
smtp_sent_commit(struct smtp_sent **tp)
{
	struct smtp_sent	*t = *tp;
	struct timeval		 tv = { SENT_TIMEOUT_MS / 1000, 0 };

	if (t == NULL)
		return;
	*tp = NULL;
	if (t->spool_failed) {
		sent_done(t, "spool write failed");
		return;
	}
	t->timer = evtimer_new(t->w->base, sent_timer_cb, t);
	evtimer_add(t->timer, &tv);
	LIST_INSERT_HEAD(&sent_tasks, t, entry);
	t->step = SENT_LOGIN;
	t->up = up_imap_new(&t->w->up, t->imap, sent_login_cb, t);
}

void
smtp_sent_shutdown(void)
{
	struct smtp_sent *t;

	while ((t = LIST_FIRST(&sent_tasks)) != NULL) {
		log_warn("sess=%s event=sent_copy result=fail account=%s "
		    "reason=\"shutdown\"", t->sess, t->account);
		sent_free(t);
	}
}
