/*
 * posternd: command line, configuration, secret, then the master process:
 * it owns the admin API and its Redis connection, forks the workers (which
 * own the listeners and sessions), restarts a worker that dies, reloads on
 * SIGHUP and drains on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "admin/admin.h"
#include "common/cfg.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/str.h"
#include "common/tls.h"
#include "common/xmalloc.h"
#include "proxy/listener.h"
#include "proxy/worker.h"
#include "tokenstore/tok.h"

#define POSTERN_VERSION		"0.1.0"
#define SECRET_FILE_MAX		4096
#define WORKERS_MAX		64
#define RESTART_DELAY_MS	1000

struct master {
	struct event_base	*base;
	struct cfg		*cfg;
	struct tok		*tok;
	struct admin		*admin;
	pid_t			 pids[WORKERS_MAX];
	int			 nworkers;
	bool			 stopping;
	struct event		*restart;
	struct event		*kill_timer;
};

/* libevent's own messages become our log lines (its "signals already
 * added" note after fork is expected: each worker owns its signals). */
static void
libevent_log_cb(int severity, const char *msg)
{
	char buf[300];

	log_msg(severity >= EVENT_LOG_ERR ? LOG_LVL_ERROR : LOG_LVL_DEBUG,
	    "event=libevent msg=\"%s\"", str_sanitize(msg, 250, buf,
	    sizeof(buf)));
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: posternd [-fhtTV] [-c file]\n"
	    "  -c file  configuration file (default %s)\n"
	    "  -f       stay in the foreground\n"
	    "  -t       test the configuration and exit\n"
	    "  -T       test, then print the effective configuration\n"
	    "  -V       print the version and exit\n"
	    "  -h       this help\n", CFG_DEFAULT_PATH);
}

/* Reads the secret: [postern] secret_file, else $POSTERN_SECRET. */
static int
load_secret(const char *path, char *err, size_t errlen)
{
	uint8_t		 buf[SECRET_FILE_MAX];
	const char	*env = getenv("POSTERN_SECRET");
	ssize_t		 n;
	size_t		 len;
	int		 fd, rc;

	if (path == NULL) {
		if (env == NULL || *env == '\0') {
			snprintf(err, errlen, "no secret: set [postern] "
			    "secret_file or the environment variable "
			    "POSTERN_SECRET (at least 16 characters)");
			return -1;
		}
		return crypto_add_secret((const uint8_t *)env, strlen(env),
		    err, errlen);
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "secret_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "secret_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	len = (size_t)n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	rc = crypto_add_secret(buf, len, err, errlen);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (rc == -1) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "secret_file %s: %s", path, tmp);
	}
	return rc;
}

static int
load_old_secrets(const char *list, char *err, size_t errlen)
{
	char *copy, *p, *tok, *save = NULL;
	int rc = 0;

	if (list == NULL)
		return 0;
	copy = xstrdup(list);
	for (p = copy; (tok = strtok_r(p, ", ", &save)) != NULL; p = NULL)
		if ((rc = load_secret(tok, err, errlen)) == -1)
			break;
	free(copy);
	return rc;
}

static int
nworkers(const struct cfg *cfg)
{
	long n = cfg->workers;

	if (n == 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > WORKERS_MAX)
		n = WORKERS_MAX;
	return (int)n;
}

static pid_t
spawn_worker(struct master *m, int index)
{
	pid_t pid = fork();

	if (pid == -1) {
		log_error("event=fork_fail reason=\"%s\"", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int rc;

		/* The child never runs the master's loop: it builds its own
		 * and closes every inherited descriptor. */
		rc = worker_main(m->cfg, index);
		_exit(rc);
	}
	log_info("event=worker_spawn index=%d pid=%d", index, (int)pid);
	return pid;
}

static void
master_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < m->nworkers; i++)
		if (m->pids[i] == 0 && !m->stopping)
			m->pids[i] = spawn_worker(m, i);
}

static void
master_chld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct master	*m = arg;
	pid_t		 pid;
	int		 status, alive = 0;
	bool		 restart = false;

	(void)sig;
	(void)what;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < m->nworkers; i++) {
			if (m->pids[i] != pid)
				continue;
			m->pids[i] = 0;
			if (!m->stopping) {
				log_error("event=worker_died index=%d pid=%d "
				    "status=%d", i, (int)pid,
				    WIFEXITED(status) ? WEXITSTATUS(status) :
				    128 + WTERMSIG(status));
				restart = true;
			}
		}
	}
	if (restart) {
		/* A delay, so a worker that dies at start-up cannot make us
		 * fork in a tight loop. */
		struct timeval tv = { RESTART_DELAY_MS / 1000, 0 };

		evtimer_add(m->restart, &tv);
	}
	for (int i = 0; i < m->nworkers; i++)
		alive += m->pids[i] != 0;
	if (m->stopping && alive == 0)
		event_base_loopexit(m->base, NULL);
}

static void
master_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < m->nworkers; i++)
		if (m->pids[i] != 0) {
			log_warn("event=worker_kill pid=%d", (int)m->pids[i]);
			kill(m->pids[i], SIGKILL);
		}
}

static void
master_term_cb(evutil_socket_t sig, short what, void *arg)
{
	struct master	*m = arg;
	struct timeval	 tv;
	int		 alive = 0;

	(void)what;
	if (m->stopping)
		return;
	m->stopping = true;
	log_info("event=shutdown signal=%d", (int)sig);
	admin_free(&m->admin);
	for (int i = 0; i < m->nworkers; i++)
		if (m->pids[i] != 0) {
			kill(m->pids[i], SIGTERM);
			alive++;
		}
	if (alive == 0) {
		event_base_loopexit(m->base, NULL);
		return;
	}
	/* Workers drain within drain_timeout; past a margin, kill. */
	tv.tv_sec = m->cfg->drain_timeout_ms / 1000 + 5;
	tv.tv_usec = 0;
	evtimer_add(m->kill_timer, &tv);
}

static void
master_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct master	*m = arg;
	struct cfg	*c;
	SSL_CTX		*ctx;
	char		 err[512];

	(void)sig;
	(void)what;
	if ((c = cfg_load(m->cfg->path, err, sizeof(err))) == NULL) {
		log_error("event=reload result=fail reason=\"%s\" "
		    "note=\"keeping the running configuration\"", err);
		return;
	}
	ctx = tls_server_ctx_new(c, err, sizeof(err));
	cfg_free(&c);
	if (ctx == NULL) {
		log_error("event=reload result=fail reason=\"%s\" "
		    "note=\"keeping the running configuration\"", err);
		return;
	}
	SSL_CTX_free(ctx);
	log_info("event=reload result=ok note=\"workers reload TLS\"");
	for (int i = 0; i < m->nworkers; i++)
		if (m->pids[i] != 0)
			kill(m->pids[i], SIGHUP);
}

static void
write_pid_file(const char *path)
{
	FILE *f;

	if (path == NULL)
		return;
	if ((f = fopen(path, "w")) == NULL) {
		log_warn("event=pid_file reason=\"%s: %s\"", path,
		    strerror(errno));
		return;
	}
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
}

/* Checks what can be checked before forking: the listeners bind, the TLS
 * files load, the secret is there. Errors end start-up with a message. */
static int
preflight(const struct cfg *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (load_secret(cfg->secret_file, err, errlen) == -1)
		return -1;
	if (load_old_secrets(cfg->old_secret_files, err, errlen) == -1)
		return -1;
	if (cfg->imap.nlisten + cfg->smtp.nlisten > 0) {
		if ((ctx = tls_server_ctx_new(cfg, err, errlen)) == NULL)
			return -1;
		SSL_CTX_free(ctx);
	}
	for (int i = 0; i < cfg->imap.nlisten + cfg->smtp.nlisten; i++) {
		const struct cfg_listen *l = i < cfg->imap.nlisten ?
		    &cfg->imap.listen[i] : &cfg->smtp.listen[i -
		    cfg->imap.nlisten];
		int fd = listener_bind(l, err, errlen);

		if (fd == -1)
			return -1;
		close(fd);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct master	 m;
	const char	*path = CFG_DEFAULT_PATH;
	bool		 foreground = false, test = false, dump = false;
	char		 err[1024];
	struct event	*ev_chld, *ev_term, *ev_int, *ev_hup;
	int		 ch;

	while ((ch = getopt(argc, argv, "c:fhtTV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			test = true;
			break;
		case 'T':
			test = dump = true;
			break;
		case 'V':
			printf("posternd %s\n", POSTERN_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	memset(&m, 0, sizeof(m));
	if ((m.cfg = cfg_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "posternd: %s\n", err);
		return 1;
	}
	log_init("posternd", m.cfg->log_level, m.cfg->log_syslog);
	event_set_log_callback(libevent_log_cb);
	if (test) {
		if (load_secret(m.cfg->secret_file, err, sizeof(err)) == -1) {
			fprintf(stderr, "posternd: %s\n", err);
			return 1;
		}
		if (dump)
			cfg_dump(m.cfg, stdout);
		fprintf(stderr, "posternd: configuration %s is ok\n", path);
		crypto_reset();
		cfg_free(&m.cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (preflight(m.cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "posternd: %s\n", err);
		log_error("event=fatal reason=\"%s\"", err);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!foreground && daemon(0, 1) == -1) {
		fprintf(stderr, "posternd: daemon: %s\n", strerror(errno));
		return 1;
	}
	write_pid_file(m.cfg->pid_file);
	if ((m.base = event_base_new()) == NULL)
		fatalx("event=fatal reason=\"event_base_new failed\"");
	m.nworkers = nworkers(m.cfg);
	ev_chld = evsignal_new(m.base, SIGCHLD, master_chld_cb, &m);
	evsignal_add(ev_chld, NULL);
	/* Workers first: they must not inherit the master's Redis and admin
	 * sockets more than necessary (they close what they inherit). */
	for (int i = 0; i < m.nworkers; i++)
		m.pids[i] = spawn_worker(&m, i);
	m.tok = tok_new(m.base, m.cfg->redis_url, m.cfg->redis_prefix,
	    m.cfg->redis_timeout_ms, err, sizeof(err));
	if (m.tok == NULL)
		fatalx("event=fatal reason=\"%s\"", err);
	if ((m.admin = admin_new(m.base, m.cfg, m.tok, err, sizeof(err))) ==
	    NULL) {
		log_error("event=fatal reason=\"%s\"", err);
		fprintf(stderr, "posternd: %s\n", err);
		for (int i = 0; i < m.nworkers; i++)
			if (m.pids[i] > 0)
				kill(m.pids[i], SIGKILL);
		return 1;
	}
	m.restart = evtimer_new(m.base, master_restart_cb, &m);
	m.kill_timer = evtimer_new(m.base, master_kill_cb, &m);
	ev_term = evsignal_new(m.base, SIGTERM, master_term_cb, &m);
	ev_int = evsignal_new(m.base, SIGINT, master_term_cb, &m);
	ev_hup = evsignal_new(m.base, SIGHUP, master_hup_cb, &m);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	log_info("event=start version=%s workers=%d admin=%s", POSTERN_VERSION,
	    m.nworkers, m.cfg->admin_socket);

	event_base_dispatch(m.base);

	admin_free(&m.admin);
	tok_free(&m.tok);
	event_free(ev_chld);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(m.restart);
	event_free(m.kill_timer);
	event_base_free(m.base);
	if (m.cfg->pid_file != NULL)
		unlink(m.cfg->pid_file);
	cfg_free(&m.cfg);
	crypto_reset();
	curl_global_cleanup();
	libevent_global_shutdown();
	log_info("event=exit");
	return 0;
}
