/*
 * pbench: the load generator and the small servers of `make bench`
 * (bench/README.md). One binary, one mode per run, a JSON line on stdout.
 *
 *   pbench fetch HOST PORT tls|plain USER PASS
 *	LOGIN, EXAMINE INBOX, UID FETCH 1:* BODY.PEEK[]: bytes and seconds
 *	of the FETCH alone.
 *   pbench login HOST PORT USER PASS CLIENTS SECONDS
 *	CLIENTS threads, each a loop of connect, TLS, greeting, LOGIN,
 *	LOGOUT: logins/s, the latency from connect to the LOGIN OK and the
 *	median of each phase (TLS handshake, greeting, LOGIN).
 *   pbench idle HOST PORT ACCOUNTS_FILE THREADS
 *	Reads commands on stdin: "open N" opens TLS sessions up to N in
 *	total, each logged in (accounts used round-robin) and in IDLE,
 *	answers one JSON line; "close" closes them all and exits.
 *   pbench smtp HOST PORT USER PASS SESSIONS SECONDS SIZE
 *	SESSIONS threads over implicit TLS: EHLO, AUTH PLAIN, then
 *	MAIL/RCPT/DATA of SIZE-byte messages in a loop: messages/s.
 *   pbench stub PORT
 *	Stub IMAP server (epoll): greeting, CAPABILITY, LOGIN (also with
 *	literals), AUTHENTICATE (any mechanism), IDLE/DONE, LOGOUT;
 *	everything else gets OK.
 *   pbench authd PORT
 *	nginx auth_http responder: "GET /N" answers Auth-Status OK with
 *	Auth-Server 127.0.0.1, Auth-Port N.
 *
 * Client modes report their own CPU time (user+sys, all threads) so the
 * harness can show that the client is not the bottleneck. Every socket
 * has a 30 s send/receive timeout: nothing waits forever.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define IO_TIMEOUT_S	30
#define LINE_MAX_B	8192
#define LAT_MAX		(1u << 22)	/* latency samples kept per run */

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "pbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ------------------------------------------------------------ connections */

struct conn {
	int	 fd;
	SSL	*ssl;
	size_t	 off, len;
	char	 buf[16384];
};

static SSL_CTX *client_ctx;

static void
tls_init(void)
{
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (client_ctx == NULL)
		die("SSL_CTX_new failed");
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(client_ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Every login is a new client: no session resumption. */
	SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(client_ctx, SSL_OP_NO_TICKET);
}

static int
tcp_connect(const char *host, int port)
{
	struct sockaddr_in	sa;
	struct timeval		tv = { IO_TIMEOUT_S, 0 };
	int			fd, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		die("bad IPv4 address %s", host);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* 0 ok, -1 error (connection closed). */
static int
conn_open(struct conn *c, const char *host, int port, bool tls)
{
	c->off = c->len = 0;
	c->ssl = NULL;
	if ((c->fd = tcp_connect(host, port)) == -1)
		return -1;
	if (!tls)
		return 0;
	if ((c->ssl = SSL_new(client_ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
		ERR_clear_error();
		conn_close(c);
		return -1;
	}
	return 0;
}

static ssize_t
conn_read(struct conn *c, void *buf, size_t len)
{
	if (c->ssl != NULL) {
		size_t n = 0;

		if (SSL_read_ex(c->ssl, buf, len, &n) != 1) {
			ERR_clear_error();
			return -1;
		}
		return (ssize_t)n;
	}
	for (int i = 0; i < 100; i++) {
		ssize_t n = read(c->fd, buf, len);

		if (n >= 0 || errno != EINTR)
			return n <= 0 ? -1 : n;
	}
	return -1;
}

static int
conn_write(struct conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n;

		if (c->ssl != NULL) {
			size_t w = 0;

			if (SSL_write_ex(c->ssl, p, len, &w) != 1) {
				ERR_clear_error();
				return -1;
			}
			n = (ssize_t)w;
		} else {
			n = write(c->fd, p, len);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
conn_printf(struct conn *c, const char *fmt, ...)
{
	char	buf[LINE_MAX_B];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	return conn_write(c, buf, (size_t)n);
}

/* One line (CRLF stripped) into out; -1 on EOF/error/overlong. */
static int
conn_line(struct conn *c, char *out, size_t outlen)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);

		if (nl != NULL) {
			size_t n = (size_t)(nl - (c->buf + c->off));

			if (n > 0 && nl[-1] == '\r')
				n--;
			if (n >= outlen)
				return -1;
			memcpy(out, c->buf + c->off, n);
			out[n] = '\0';
			c->off = (size_t)(nl - c->buf) + 1;
			return 0;
		}
		if (c->off > 0) {
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->len == sizeof(c->buf))
			return -1;
		ssize_t r = conn_read(c, c->buf + c->len, sizeof(c->buf) - c->len);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

/* Reads untagged lines until the one tagged `tag`; 1 for OK, 0 for
 * NO/BAD, -1 on error. Only for responses without literals. */
static int
imap_wait(struct conn *c, const char *tag)
{
	char	line[LINE_MAX_B];
	size_t	tl = strlen(tag);

	for (int i = 0; i < 100000; i++) {
		if (conn_line(c, line, sizeof(line)) == -1)
			return -1;
		if (strncmp(line, tag, tl) == 0 && line[tl] == ' ')
			return strncmp(line + tl + 1, "OK", 2) == 0 ? 1 : 0;
	}
	return -1;
}

static int
imap_login(struct conn *c, const char *user, const char *pass)
{
	char line[LINE_MAX_B];

	if (conn_line(c, line, sizeof(line)) == -1 ||
	    strncmp(line, "* OK", 4) != 0)
		return -1;
	if (conn_printf(c, "L LOGIN \"%s\" \"%s\"\r\n", user, pass) == -1)
		return -1;
	return imap_wait(c, "L") == 1 ? 0 : -1;
}

/* ------------------------------------------------------------ fetch */

static int
mode_fetch(int argc, char **argv)
{
	struct conn	*c = calloc(1, sizeof(*c));
	const char	*host, *user, *pass;
	int		 port;
	bool		 tls;
	static char	 buf[1 << 18];
	char		 head[40], tail[40];
	size_t		 hl = 0, tl = 0;
	uint64_t	 bytes = 0, lit = 0, msgs = 0;
	double		 t0, t1, c0, c1;
	int		 done = 0;

	if (argc != 7)
		die("usage: fetch HOST PORT tls|plain USER PASS");
	host = argv[2];
	port = atoi(argv[3]);
	tls = strcmp(argv[4], "tls") == 0;
	user = argv[5];
	pass = argv[6];
	c0 = cpu_s();
	if (conn_open(c, host, port, tls) == -1)
		die("fetch: connect/TLS to %s:%d failed", host, port);
	/* Blocking reads: read-ahead is safe here and saves the client a
	 * read(2) per record header (it must not be the bottleneck). */
	if (c->ssl != NULL) {
		SSL_set_default_read_buffer_len(c->ssl, 64 * 1024);
		SSL_set_read_ahead(c->ssl, 1);
	}
	if (imap_login(c, user, pass) == -1)
		die("fetch: login failed");
	if (conn_printf(c, "E EXAMINE INBOX\r\n") == -1 ||
	    imap_wait(c, "E") != 1)
		die("fetch: EXAMINE failed");
	t0 = now_s();
	if (conn_printf(c, "F UID FETCH 1:* BODY.PEEK[]\r\n") == -1)
		die("fetch: write failed");
	/* What is left in c->buf after EXAMINE belongs to the FETCH. */
	size_t pend = c->len - c->off;
	memcpy(buf, c->buf + c->off, pend);
	while (!done) {
		ssize_t n;
		char *p, *end;

		if (pend > 0) {
			n = (ssize_t)pend;
			pend = 0;
		} else if ((n = conn_read(c, buf, sizeof(buf))) <= 0)
			die("fetch: connection closed after %llu bytes",
			    (unsigned long long)bytes);
		bytes += (uint64_t)n;
		p = buf;
		end = buf + n;
		while (p < end && !done) {
			if (lit > 0) {
				size_t k = (size_t)(end - p) < lit ?
				    (size_t)(end - p) : lit;

				p += k;
				lit -= k;
				continue;
			}
			char *nl = memchr(p, '\n', (size_t)(end - p));
			char *stop = nl != NULL ? nl + 1 : end;
			/* Keep the first and the last bytes of the line. */
			for (char *q = p; q < stop; q++) {
				if (hl < sizeof(head))
					head[hl++] = *q;
				if (tl == sizeof(tail)) {
					memmove(tail, tail + 1, tl - 1);
					tl--;
				}
				tail[tl++] = *q;
			}
			p = stop;
			if (nl == NULL)
				break;
			if (hl >= 4 && memcmp(head, "F OK", 4) == 0) {
				done = 1;
				break;
			}
			if (hl >= 2 && head[0] == 'F' && head[1] == ' ')
				die("fetch: %.*s", (int)hl, head);
			if (tl >= 4 && memcmp(tail + tl - 3, "}\r\n", 3) == 0) {
				int j = (int)tl - 4;

				while (j >= 0 && tail[j] >= '0' && tail[j] <= '9')
					j--;
				if (j >= 0 && tail[j] == '{') {
					lit = strtoull(tail + j + 1, NULL, 10);
					msgs++;
				}
			}
			hl = tl = 0;
		}
	}
	t1 = now_s();
	conn_printf(c, "Z LOGOUT\r\n");
	conn_close(c);
	c1 = cpu_s();
	printf("{\"bytes\": %llu, \"messages\": %llu, \"secs\": %.6f, "
	    "\"client_cpu\": %.4f}\n", (unsigned long long)bytes,
	    (unsigned long long)msgs, t1 - t0, c1 - c0);
	free(c);
	return 0;
}

/* ------------------------------------------------------------ login */

struct login_arg {
	const char	*host, *user, *pass;
	int		 port;
	double		 deadline;
	double		*lat;		/* connect to LOGIN OK */
	double		*ph[3];		/* TLS done, greeting, LOGIN OK */
	size_t		 nlat, maxlat;
	uint64_t	 ok, errors;
};

static void *
login_thread(void *arg)
{
	struct login_arg	*a = arg;
	struct conn		*c = calloc(1, sizeof(*c));

	while (now_s() < a->deadline) {
		char	line[LINE_MAX_B];
		double	t0 = now_s(), th, tg, t1;

		if (conn_open(c, a->host, a->port, true) == -1) {
			a->errors++;
			usleep(10000);
			continue;
		}
		th = now_s();
		if (conn_line(c, line, sizeof(line)) == -1 ||
		    strncmp(line, "* OK", 4) != 0) {
			a->errors++;
			conn_close(c);
			usleep(10000);
			continue;
		}
		tg = now_s();
		if (conn_printf(c, "L LOGIN \"%s\" \"%s\"\r\n", a->user,
		    a->pass) == -1 || imap_wait(c, "L") != 1) {
			a->errors++;
			conn_close(c);
			usleep(10000);
			continue;
		}
		t1 = now_s();
		if (a->nlat < a->maxlat) {
			a->ph[0][a->nlat] = th - t0;
			a->ph[1][a->nlat] = tg - th;
			a->ph[2][a->nlat] = t1 - tg;
			a->lat[a->nlat++] = t1 - t0;
		}
		a->ok++;
		if (conn_printf(c, "Z LOGOUT\r\n") == 0)
			(void)imap_wait(c, "Z");
		conn_close(c);
	}
	free(c);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int
mode_login(int argc, char **argv)
{
	struct login_arg	*a;
	pthread_t		*th;
	int			 n;
	double			 secs, t0, t1, c0, c1, *all, ph50[3];
	size_t			 nall = 0;
	uint64_t		 ok = 0, err = 0;

	if (argc != 8)
		die("usage: login HOST PORT USER PASS CLIENTS SECONDS");
	n = atoi(argv[6]);
	secs = atof(argv[7]);
	if (n < 1 || n > 1024 || secs <= 0)
		die("login: bad CLIENTS or SECONDS");
	a = calloc((size_t)n, sizeof(*a));
	th = calloc((size_t)n, sizeof(*th));
	c0 = cpu_s();
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		a[i].host = argv[2];
		a[i].port = atoi(argv[3]);
		a[i].user = argv[4];
		a[i].pass = argv[5];
		a[i].deadline = t0 + secs;
		a[i].maxlat = LAT_MAX / (size_t)n;
		a[i].lat = malloc(a[i].maxlat * sizeof(double));
		for (int k = 0; k < 3; k++)
			a[i].ph[k] = malloc(a[i].maxlat * sizeof(double));
		if (pthread_create(&th[i], NULL, login_thread, &a[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	t1 = now_s();
	c1 = cpu_s();
	all = malloc(LAT_MAX * sizeof(double));
	for (int i = 0; i < n; i++) {
		ok += a[i].ok;
		err += a[i].errors;
	}
	/* Medians of the phases first, then of the whole login. */
	for (int k = 0; k < 4; k++) {
		nall = 0;
		for (int i = 0; i < n; i++) {
			memcpy(all + nall, k < 3 ? a[i].ph[k] : a[i].lat,
			    a[i].nlat * sizeof(double));
			nall += a[i].nlat;
		}
		qsort(all, nall, sizeof(double), cmp_double);
		if (k < 3)
			ph50[k] = pct(all, nall, 0.50) * 1000;
	}
	for (int i = 0; i < n; i++) {
		free(a[i].lat);
		for (int k = 0; k < 3; k++)
			free(a[i].ph[k]);
	}
	printf("{\"logins\": %llu, \"errors\": %llu, \"secs\": %.4f, "
	    "\"rate\": %.2f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
	    "\"tls_p50_ms\": %.3f, \"greeting_p50_ms\": %.3f, "
	    "\"login_p50_ms\": %.3f, \"client_cpu\": %.4f}\n",
	    (unsigned long long)ok, (unsigned long long)err, t1 - t0,
	    (double)ok / (t1 - t0), pct(all, nall, 0.50) * 1000,
	    pct(all, nall, 0.99) * 1000, ph50[0], ph50[1], ph50[2], c1 - c0);
	free(all);
	free(a);
	free(th);
	return 0;
}

/* ------------------------------------------------------------ idle */

struct idle_sess {
	int	 fd;
	SSL	*ssl;
};

struct idle_run {
	const char		*host;
	int			 port;
	char			**users, **passes;
	int			 nacct;
	struct idle_sess	*s;
	atomic_int		 next;
	int			 target;
	atomic_int		 errors;
};

static int
idle_one(struct idle_run *r, int i)
{
	struct conn	*c = calloc(1, sizeof(*c));
	char		 line[LINE_MAX_B];
	int		 k = i % r->nacct, rc = -1;

	if (conn_open(c, r->host, r->port, true) == -1)
		goto out;
	if (imap_login(c, r->users[k], r->passes[k]) == -1 ||
	    conn_printf(c, "I IDLE\r\n") == -1 ||
	    conn_line(c, line, sizeof(line)) == -1 || line[0] != '+') {
		conn_close(c);
		goto out;
	}
	r->s[i].fd = c->fd;
	r->s[i].ssl = c->ssl;
	rc = 0;
out:
	free(c);
	return rc;
}

static void *
idle_thread(void *arg)
{
	struct idle_run *r = arg;
	int i;

	while ((i = atomic_fetch_add(&r->next, 1)) < r->target)
		if (idle_one(r, i) == -1) {
			r->s[i].fd = -1;
			atomic_fetch_add(&r->errors, 1);
		}
	return NULL;
}

static int
mode_idle(int argc, char **argv)
{
	struct idle_run	 r;
	FILE		*f;
	char		 line[512];
	int		 nthreads, opened = 0;
	double		 c0 = cpu_s();

	if (argc != 6)
		die("usage: idle HOST PORT ACCOUNTS_FILE THREADS");
	memset(&r, 0, sizeof(r));
	r.host = argv[2];
	r.port = atoi(argv[3]);
	nthreads = atoi(argv[5]);
	if (nthreads < 1 || nthreads > 256)
		die("idle: bad THREADS");
	if ((f = fopen(argv[4], "r")) == NULL)
		die("idle: %s: %s", argv[4], strerror(errno));
	r.users = calloc(100000, sizeof(char *));
	r.passes = calloc(100000, sizeof(char *));
	while (r.nacct < 100000 && fgets(line, sizeof(line), f) != NULL) {
		char *sp = strchr(line, ' ');

		if (sp == NULL)
			continue;
		*sp = '\0';
		sp[1 + strcspn(sp + 1, "\r\n")] = '\0';
		r.users[r.nacct] = strdup(line);
		r.passes[r.nacct] = strdup(sp + 1);
		r.nacct++;
	}
	fclose(f);
	if (r.nacct == 0)
		die("idle: no accounts");
	r.s = calloc(200000, sizeof(*r.s));
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strncmp(line, "open ", 5) == 0) {
			int want = atoi(line + 5);
			pthread_t th[256];
			double t0 = now_s();

			if (want < opened || want > 200000)
				die("idle: bad open %d", want);
			atomic_store(&r.next, opened);
			atomic_store(&r.errors, 0);
			r.target = want;
			for (int i = 0; i < nthreads; i++)
				pthread_create(&th[i], NULL, idle_thread, &r);
			for (int i = 0; i < nthreads; i++)
				pthread_join(th[i], NULL);
			opened = want;
			printf("{\"open\": %d, \"errors\": %d, \"secs\": %.3f, "
			    "\"client_cpu\": %.4f}\n", opened,
			    atomic_load(&r.errors), now_s() - t0, cpu_s() - c0);
		} else if (strncmp(line, "close", 5) == 0)
			break;
	}
	for (int i = 0; i < opened; i++) {
		if (r.s[i].fd < 0)
			continue;
		SSL_free(r.s[i].ssl);
		close(r.s[i].fd);
	}
	printf("{\"closed\": %d}\n", opened);
	return 0;
}

/* ------------------------------------------------------------ smtp */

struct smtp_arg {
	const char	*host, *user, *pass;
	int		 port;
	double		 deadline;
	const char	*msg;
	size_t		 msglen;
	uint64_t	 ok, errors;
	char		 err[256];
};

/* Reads a (multi-line) reply; returns its code or -1. */
static int
smtp_reply(struct conn *c, char *last, size_t lastlen)
{
	char line[LINE_MAX_B];

	for (int i = 0; i < 1000; i++) {
		if (conn_line(c, line, sizeof(line)) == -1 || strlen(line) < 3)
			return -1;
		if (line[3] != '-') {
			snprintf(last, lastlen, "%s", line);
			return atoi(line);
		}
	}
	return -1;
}

static void *
smtp_thread(void *arg)
{
	struct smtp_arg	*a = arg;
	struct conn	*c = calloc(1, sizeof(*c));
	char		 last[LINE_MAX_B], plain[600];
	unsigned char	 b64[1000];
	int		 n;

	if (conn_open(c, a->host, a->port, true) == -1) {
		snprintf(a->err, sizeof(a->err), "connect/TLS failed");
		goto fail;
	}
	if (smtp_reply(c, last, sizeof(last)) != 220 ||
	    conn_printf(c, "EHLO bench.example.test\r\n") == -1 ||
	    smtp_reply(c, last, sizeof(last)) != 250) {
		snprintf(a->err, sizeof(a->err), "greeting/EHLO: %.200s", last);
		goto fail;
	}
	n = snprintf(plain, sizeof(plain), "%c%s%c%s", 0, a->user, 0, a->pass);
	EVP_EncodeBlock(b64, (unsigned char *)plain, n);
	if (conn_printf(c, "AUTH PLAIN %s\r\n", b64) == -1 ||
	    smtp_reply(c, last, sizeof(last)) != 235) {
		snprintf(a->err, sizeof(a->err), "AUTH: %.200s", last);
		goto fail;
	}
	while (now_s() < a->deadline) {
		if (conn_printf(c, "MAIL FROM:<bench@example.test>\r\n") == -1 ||
		    smtp_reply(c, last, sizeof(last)) != 250 ||
		    conn_printf(c, "RCPT TO:<sink@example.test>\r\n") == -1 ||
		    smtp_reply(c, last, sizeof(last)) != 250 ||
		    conn_printf(c, "DATA\r\n") == -1 ||
		    smtp_reply(c, last, sizeof(last)) != 354 ||
		    conn_write(c, a->msg, a->msglen) == -1 ||
		    smtp_reply(c, last, sizeof(last)) != 250) {
			snprintf(a->err, sizeof(a->err), "transaction: %.200s",
			    last);
			a->errors++;
			goto fail;
		}
		a->ok++;
	}
	conn_printf(c, "QUIT\r\n");
	(void)smtp_reply(c, last, sizeof(last));
	conn_close(c);
	free(c);
	return NULL;
fail:
	a->errors++;
	conn_close(c);
	free(c);
	return NULL;
}

static char *
make_message(size_t size, size_t *lenp)
{
	char	*m = malloc(size + 256);
	size_t	 len;

	len = (size_t)snprintf(m, 256, "From: <bench@example.test>\r\n"
	    "To: <sink@example.test>\r\nSubject: bench\r\n"
	    "Message-ID: <bench@example.test>\r\n\r\n");
	/* 76-character lines of text, then the end-of-data marker. */
	while (len + 78 + 5 <= size) {
		for (int i = 0; i < 76; i++)
			m[len + (size_t)i] = (char)('a' + (int)((len + (size_t)i) % 26));
		m[len + 76] = '\r';
		m[len + 77] = '\n';
		len += 78;
	}
	memcpy(m + len, ".\r\n", 3);
	len += 3;
	*lenp = len;
	return m;
}

static int
mode_smtp(int argc, char **argv)
{
	struct smtp_arg	*a;
	pthread_t	*th;
	int		 n;
	double		 secs, t0, t1, c0, c1;
	uint64_t	 ok = 0, err = 0;
	size_t		 msglen;
	char		*msg, lasterr[256] = "";

	if (argc != 9)
		die("usage: smtp HOST PORT USER PASS SESSIONS SECONDS SIZE");
	n = atoi(argv[6]);
	secs = atof(argv[7]);
	if (n < 1 || n > 256 || secs <= 0)
		die("smtp: bad SESSIONS or SECONDS");
	msg = make_message((size_t)atol(argv[8]), &msglen);
	a = calloc((size_t)n, sizeof(*a));
	th = calloc((size_t)n, sizeof(*th));
	c0 = cpu_s();
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		a[i].host = argv[2];
		a[i].port = atoi(argv[3]);
		a[i].user = argv[4];
		a[i].pass = argv[5];
		a[i].deadline = t0 + secs;
		a[i].msg = msg;
		a[i].msglen = msglen;
		if (pthread_create(&th[i], NULL, smtp_thread, &a[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	t1 = now_s();
	c1 = cpu_s();
	for (int i = 0; i < n; i++) {
		ok += a[i].ok;
		err += a[i].errors;
		if (a[i].err[0] != '\0')
			snprintf(lasterr, sizeof(lasterr), "%s", a[i].err);
	}
	for (char *p = lasterr; *p != '\0'; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = ' ';
	printf("{\"messages\": %llu, \"errors\": %llu, \"secs\": %.4f, "
	    "\"rate\": %.2f, \"message_bytes\": %zu, \"client_cpu\": %.4f, "
	    "\"last_error\": \"%s\"}\n", (unsigned long long)ok,
	    (unsigned long long)err, t1 - t0, (double)ok / (t1 - t0), msglen,
	    c1 - c0, lasterr);
	free(msg);
	free(a);
	free(th);
	return 0;
}

/* ------------------------------------------------------------ servers */

enum srv_kind { K_LISTEN_STUB, K_LISTEN_AUTHD, K_STUB, K_AUTHD };

struct sconn {
	enum srv_kind	 kind;
	int		 fd;
	bool		 idle;
	bool		 auth_wait;	/* AUTHENTICATE without SASL-IR */
	size_t		 lit;		/* literal bytes still to skip */
	size_t		 len;		/* bytes of the current command */
	char		 tag[64];
	char		 buf[1024];
};

static volatile sig_atomic_t srv_stop;

static void
srv_sig(int sig)
{
	(void)sig;
	srv_stop = 1;
}

static int
srv_listen(int port)
{
	struct sockaddr_in	sa;
	int			fd, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(fd, 4096) == -1)
		die("listen on %d: %s", port, strerror(errno));
	return fd;
}

static void
sc_send(struct sconn *c, const char *s)
{
	/* Replies are a few dozen bytes to a peer that reads them: a short
	 * write would mean a broken peer, which then gets closed on EOF. */
	(void)!write(c->fd, s, strlen(s));
}

/* One complete IMAP command (literals already skipped) in c->buf. */
static int
stub_command(struct sconn *c)
{
	char	 out[512], *sp, *cmd, *args;

	c->buf[c->len] = '\0';
	if (c->auth_wait) {
		c->auth_wait = false;
		snprintf(out, sizeof(out), "%s OK [CAPABILITY IMAP4rev1 "
		    "LITERAL+ IDLE] authenticated\r\n", c->tag);
		sc_send(c, out);
		return 0;
	}
	if (c->idle) {
		c->idle = false;
		snprintf(out, sizeof(out), "%s OK IDLE done\r\n", c->tag);
		sc_send(c, out);
		return 0;
	}
	if ((sp = strchr(c->buf, ' ')) == NULL) {
		sc_send(c, "* BAD no command\r\n");
		return 0;
	}
	*sp = '\0';
	snprintf(c->tag, sizeof(c->tag), "%.60s", c->buf);
	cmd = sp + 1;
	args = strchr(cmd, ' ');	/* AUTHENTICATE: mechanism [IR] */
	cmd[strcspn(cmd, " ")] = '\0';
	if (strcasecmp(cmd, "CAPABILITY") == 0)
		snprintf(out, sizeof(out), "* CAPABILITY IMAP4rev1 LITERAL+ "
		    "SASL-IR IDLE AUTH=PLAIN AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n"
		    "%s OK done\r\n", c->tag);
	else if (strcasecmp(cmd, "LOGIN") == 0)
		snprintf(out, sizeof(out), "%s OK [CAPABILITY IMAP4rev1 "
		    "LITERAL+ IDLE] logged in\r\n", c->tag);
	else if (strcasecmp(cmd, "IDLE") == 0) {
		c->idle = true;
		snprintf(out, sizeof(out), "+ idling\r\n");
	} else if (strcasecmp(cmd, "LOGOUT") == 0) {
		snprintf(out, sizeof(out), "* BYE stub\r\n%s OK done\r\n",
		    c->tag);
		sc_send(c, out);
		return -1;
	} else if (strcasecmp(cmd, "AUTHENTICATE") == 0) {
		/* Any mechanism, any credentials: with an initial response
		 * it is done, else one "+" round first. */
		if (args != NULL && strchr(args + 1, ' ') != NULL)
			snprintf(out, sizeof(out), "%s OK [CAPABILITY IMAP4rev1 "
			    "LITERAL+ IDLE] authenticated\r\n", c->tag);
		else {
			c->auth_wait = true;
			snprintf(out, sizeof(out), "+ \r\n");
		}
	}
	else
		snprintf(out, sizeof(out), "%s OK done\r\n", c->tag);
	sc_send(c, out);
	return 0;
}

/* Consumes input; -1: close the connection. */
static int
stub_input(struct sconn *c, const char *p, size_t n)
{
	while (n > 0) {
		if (c->lit > 0) {
			size_t k = n < c->lit ? n : c->lit;

			c->lit -= k;
			p += k;
			n -= k;
			continue;
		}
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;

		if (c->len + take >= sizeof(c->buf))
			return -1;
		memcpy(c->buf + c->len, p, take);
		c->len += take;
		p += take;
		n -= take;
		if (nl == NULL)
			break;
		/* Strip CRLF; a trailing {N} or {N+} is a literal. */
		c->len -= (c->len >= 2 && c->buf[c->len - 2] == '\r') ? 2 : 1;
		if (c->len > 2 && c->buf[c->len - 1] == '}') {
			size_t e = c->len - 1, b = e;
			bool plus = c->buf[e - 1] == '+';

			b = plus ? e - 1 : e;
			while (b > 0 && c->buf[b - 1] >= '0' &&
			    c->buf[b - 1] <= '9')
				b--;
			if (b > 0 && c->buf[b - 1] == '{') {
				c->lit = strtoul(c->buf + b, NULL, 10);
				c->len = b - 1;	/* drop "{N}" */
				if (!plus)
					sc_send(c, "+ go ahead\r\n");
				continue;
			}
		}
		if (stub_command(c) == -1)
			return -1;
		c->len = 0;
	}
	return 0;
}

static int
authd_input(struct sconn *c, const char *p, size_t n)
{
	char out[256];
	int port;

	if (c->len + n >= sizeof(c->buf))
		return -1;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = '\0';
	if (strstr(c->buf, "\r\n\r\n") == NULL)
		return 0;
	if (sscanf(c->buf, "GET /%d", &port) != 1)
		snprintf(out, sizeof(out), "HTTP/1.0 200 OK\r\n"
		    "Auth-Status: Invalid request\r\n\r\n");
	else
		snprintf(out, sizeof(out), "HTTP/1.0 200 OK\r\n"
		    "Auth-Status: OK\r\nAuth-Server: 127.0.0.1\r\n"
		    "Auth-Port: %d\r\n\r\n", port);
	sc_send(c, out);
	return -1;
}

static int
mode_server(enum srv_kind lk, int argc, char **argv)
{
	struct epoll_event	 ev, evs[256];
	struct sconn		 lc;
	int			 ep;

	if (argc != 3)
		die("usage: %s PORT", argv[1]);
	signal(SIGTERM, srv_sig);
	signal(SIGINT, srv_sig);
	signal(SIGPIPE, SIG_IGN);
	memset(&lc, 0, sizeof(lc));
	lc.kind = lk;
	lc.fd = srv_listen(atoi(argv[2]));
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.ptr = &lc;
	epoll_ctl(ep, EPOLL_CTL_ADD, lc.fd, &ev);
	printf("ready\n");
	fflush(stdout);
	while (!srv_stop) {
		int n = epoll_wait(ep, evs, 256, 500);

		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;

			if (c->kind == K_LISTEN_STUB || c->kind == K_LISTEN_AUTHD) {
				for (int k = 0; k < 256; k++) {
					int fd = accept4(c->fd, NULL, NULL,
					    SOCK_NONBLOCK | SOCK_CLOEXEC);
					struct sconn *nc;
					int one = 1;

					if (fd == -1)
						break;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof(one));
					nc = calloc(1, sizeof(*nc));
					nc->fd = fd;
					nc->kind = c->kind == K_LISTEN_STUB ?
					    K_STUB : K_AUTHD;
					ev.events = EPOLLIN;
					ev.data.ptr = nc;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
					if (nc->kind == K_STUB)
						sc_send(nc, "* OK stub IMAP ready\r\n");
				}
				continue;
			}
			char buf[4096];
			ssize_t r = read(c->fd, buf, sizeof(buf));
			int rc;

			if (r == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0)
				rc = -1;
			else if (c->kind == K_STUB)
				rc = stub_input(c, buf, (size_t)r);
			else
				rc = authd_input(c, buf, (size_t)r);
			if (rc == -1) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c);
			}
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: pbench fetch|login|idle|smtp|stub|authd ...");
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	tls_init();
	if (strcmp(argv[1], "fetch") == 0)
		return mode_fetch(argc, argv);
	if (strcmp(argv[1], "login") == 0)
		return mode_login(argc, argv);
	if (strcmp(argv[1], "idle") == 0)
		return mode_idle(argc, argv);
	if (strcmp(argv[1], "smtp") == 0)
		return mode_smtp(argc, argv);
	if (strcmp(argv[1], "stub") == 0)
		return mode_server(K_LISTEN_STUB, argc, argv);
	if (strcmp(argv[1], "authd") == 0)
		return mode_server(K_LISTEN_AUTHD, argc, argv);
	die("unknown mode %s", argv[1]);
	return 1;
}
