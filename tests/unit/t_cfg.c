/*
 * cfg: defaults, every key, bad values with their "file:line:" prefix,
 * comments, conf.d order, listener lists, cross-key rules, cfg_dump()
 * round trips and the shipped etc/postern.conf.example. Files live in a
 * mkdtemp() directory under /tmp that each test removes.
 */
#include <sys/stat.h>

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/log.h"
#include "tests/unit/test.h"
#include "tokenstore/tok.h"

#define ERRLEN	512

/*
 * CHECK_STR formats both strings into 512 bytes, which -Wformat-truncation
 * flags for our larger buffers; noipa hides their sizes from it.
 */
static __attribute__((noipa)) const char *
tstr(const char *s)
{
	return s;
}
#define CHECK_TSTR(a, b)	CHECK_STR(tstr(a), tstr(b))

static char	tdir[64];
static char	tpath[128];	/* tdir/postern.conf */

static void
tdir_new(void)
{
	snprintf(tdir, sizeof(tdir), "/tmp/t_cfg.XXXXXX");
	if (mkdtemp(tdir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(tpath, sizeof(tpath), "%s/postern.conf", tdir);
}

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
tdir_rm(void)
{
	nftw(tdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
twrite(const char *name, const char *text)
{
	char	 path[256];
	FILE	*fp;

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	if ((fp = fopen(path, "w")) == NULL) {
		perror(path);
		exit(2);
	}
	fputs(text, fp);
	fclose(fp);
}

static void
tmkdir(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	mkdir(path, 0700);
}

/* Writes text as tdir/postern.conf and loads it; the directory stays. */
static struct cfg *
tload(const char *text, char *err)
{
	twrite("postern.conf", text);
	return cfg_load(tpath, err, ERRLEN);
}

/* cfg_dump() into a malloc'd string. noinline: once inlined, GCC's
 * -Wdangling-pointer takes the result for the address of the local buf. */
static __attribute__((noinline)) char *
tdump(const struct cfg *cfg)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*fp = open_memstream(&buf, &len);

	cfg_dump(cfg, fp);
	fclose(fp);
	return buf;
}

/* The value of key in [section] of a dump, "" if empty, NULL if absent. */
static const char *
tdump_value(const char *dump, const char *section, const char *key,
    char *out, size_t outlen)
{
	char		 hdr[64], pfx[64];
	const char	*s, *end, *line, *eol;

	snprintf(hdr, sizeof(hdr), "\n[%s]\n", section);
	if ((s = strstr(dump, hdr)) == NULL)
		return NULL;
	s += strlen(hdr);
	end = strstr(s, "\n[");
	snprintf(pfx, sizeof(pfx), "\n%s =", key);
	if ((line = strstr(s - 1, pfx)) == NULL || (end && line > end))
		return NULL;
	line += strlen(pfx);
	if (*line == ' ')
		line++;
	eol = strchr(line, '\n');
	snprintf(out, outlen, "%.*s", (int)(eol - line), line);
	return out;
}

static bool
has_prefix(const char *s, const char *pfx)
{
	return strncmp(s, pfx, strlen(pfx)) == 0;
}

TEST(cfg_defaults)
{
	char		 err[ERRLEN];
	struct cfg	*cfg;

	tdir_new();
	cfg = tload("# nothing but a comment\n", err);
	CHECK(cfg != NULL);
	if (cfg == NULL) {
		fprintf(stderr, "  %s\n", err);
		tdir_rm();
		return;
	}
	CHECK_TSTR(cfg->path, tpath);
	CHECK(cfg->secret_file == NULL);
	CHECK(cfg->old_secret_files == NULL);
	CHECK_INT(cfg->log_level, ==, LOG_LVL_INFO);
	CHECK(!cfg->log_syslog);
	CHECK_INT(cfg->workers, ==, 1);
	CHECK(cfg->pid_file == NULL);
	CHECK_INT(cfg->drain_timeout_ms, ==, 30000);
	CHECK(!cfg->revoke_closes_sessions);
	CHECK_TSTR(cfg->redis_url, "redis://127.0.0.1:6379/0");
	CHECK_TSTR(cfg->redis_prefix, "postern:");
	CHECK_INT(cfg->redis_timeout_ms, ==, 2000);
	CHECK_TSTR(cfg->admin_socket, "/run/postern/admin.sock");
	CHECK(cfg->admin_listen == NULL);
	CHECK_INT(cfg->admin_body_max, ==, 1 << 20);
	CHECK_TSTR(cfg->tls_cert, "/etc/postern/tls/cert.pem");
	CHECK_TSTR(cfg->tls_key, "/etc/postern/tls/key.pem");
	CHECK(strstr(cfg->tls_ciphers, "ECDHE-RSA-AES128-GCM-SHA256") != NULL);
	CHECK(strstr(cfg->tls_ciphersuites, "TLS_AES_128_GCM_SHA256") != NULL);
	CHECK_INT(cfg->tls_min_version, ==, 12);
	CHECK(cfg->tls_ca_file == NULL);
	CHECK_INT(cfg->up_connect_timeout_ms, ==, 10000);
	CHECK_INT(cfg->up_login_timeout_ms, ==, 30000);
	CHECK(cfg->up_dns_server == NULL);

	CHECK_INT(cfg->imap.nlisten, ==, 2);
	CHECK_TSTR(cfg->imap.listen[0].host, "0.0.0.0");
	CHECK_TSTR(cfg->imap.listen[0].port, "2993");
	CHECK_INT(cfg->imap.listen[0].tls, ==, CFG_TLS_IMPLICIT);
	CHECK(!cfg->imap.listen[0].proxy_protocol);
	CHECK_TSTR(cfg->imap.listen[1].port, "2143");
	CHECK_INT(cfg->imap.listen[1].tls, ==, CFG_TLS_STARTTLS);
	CHECK_INT(cfg->imap.login_timeout_ms, ==, 60000);
	CHECK_INT(cfg->imap.idle_timeout_ms, ==, 30 * 60000);
	CHECK_INT(cfg->imap.line_max, ==, 8192);
	CHECK_INT(cfg->imap.literal_max, ==, 8192);
	CHECK_INT(cfg->imap.auth_failures_max, ==, 3);
	CHECK_INT(cfg->imap.bad_commands_max, ==, 10);
	CHECK_INT(cfg->imap.failure_delay_ms, ==, 2000);
	CHECK(!cfg->imap.allow_plaintext_auth);
	CHECK_INT(cfg->imap.max_connections, ==, 10);

	CHECK_INT(cfg->smtp.nlisten, ==, 2);
	CHECK_TSTR(cfg->smtp.listen[0].port, "2587");
	CHECK_INT(cfg->smtp.listen[0].tls, ==, CFG_TLS_STARTTLS);
	CHECK_TSTR(cfg->smtp.listen[1].port, "2465");
	CHECK_INT(cfg->smtp.listen[1].tls, ==, CFG_TLS_IMPLICIT);
	CHECK_INT(cfg->smtp.login_timeout_ms, ==, 60000);
	CHECK_INT(cfg->smtp.command_timeout_ms, ==, 5 * 60000);
	CHECK_INT(cfg->smtp.line_max, ==, 4096);
	CHECK_INT(cfg->smtp.auth_failures_max, ==, 3);
	CHECK_INT(cfg->smtp.bad_commands_max, ==, 10);
	CHECK_INT(cfg->smtp.failure_delay_ms, ==, 2000);
	CHECK(!cfg->smtp.allow_plaintext_auth);
	CHECK_INT(cfg->smtp.message_max, ==, 50 << 20);
	CHECK(cfg->smtp.sent_copy);
	CHECK_INT(cfg->smtp.max_connections, ==, 10);
	cfg_free(&cfg);
	CHECK(cfg == NULL);
	cfg_free(&cfg);
	tdir_rm();
}

/* Each key set once; expected as cfg_dump() prints it back. */
static const struct {
	const char	*section, *key, *in, *out;
} key_cases[] = {
	{ "postern", "secret_file", "/etc/postern/secret", NULL },
	{ "postern", "secret_file", "", "" },
	{ "postern", "old_secret_files", "/a/old1 , /b/old2", "/a/old1,/b/old2" },
	{ "postern", "old_secret_files", "/a/old1", NULL },
	{ "postern", "log_level", "debug", NULL },
	{ "postern", "log_level", "error", NULL },
	{ "postern", "log", "syslog", NULL },
	{ "postern", "workers", "auto", NULL },
	{ "postern", "workers", "64", NULL },
	{ "postern", "pid_file", "/run/postern.pid", NULL },
	{ "postern", "drain_timeout", "0", "0s" },
	{ "postern", "drain_timeout", "90", "90s" },
	{ "postern", "drain_timeout", "1h", "60m" },
	{ "postern", "revoke_closes_sessions", "yes", NULL },
	{ "postern", "revoke_closes_sessions", "TRUE", "yes" },
	{ "postern", "revoke_closes_sessions", "on", "yes" },
	{ "postern", "revoke_closes_sessions", "1", "yes" },
	{ "postern", "revoke_closes_sessions", "off", "no" },
	{ "postern", "revoke_closes_sessions", "false", "no" },
	{ "postern", "revoke_closes_sessions", "0", "no" },
	{ "redis", "url", "redis://redis.example.net:6380", NULL },
	{ "redis", "url", "redis://10.0.0.1:6379/3", NULL },
	{ "redis", "url", "redis://[::1]:6379/0", NULL },
	{ "redis", "url", "unix:/run/redis/redis.sock", NULL },
	{ "redis", "url", "unix:/run/redis/redis.sock?db=2", NULL },
	{ "redis", "url", "redis://:s3cret@127.0.0.1:6379/0",
	    "redis://****@127.0.0.1:6379/0" },
	{ "redis", "prefix", "p:", NULL },
	{ "redis", "timeout", "100ms", NULL },
	{ "redis", "timeout", "1500ms", NULL },
	{ "redis", "timeout", "60s", NULL },
	{ "admin", "socket", "/tmp/a.sock", NULL },
	{ "admin", "listen", "127.0.0.1:3000", NULL },
	{ "admin", "listen", "[::1]:3000", NULL },
	{ "admin", "body_max", "1k", NULL },
	{ "admin", "body_max", "64MiB", "64M" },
	{ "admin", "body_max", "1500", NULL },
	{ "tls", "cert", "/c.pem", NULL },
	{ "tls", "key", "/k.pem", NULL },
	{ "tls", "ciphers", "ECDHE+AESGCM:!aNULL", NULL },
	{ "tls", "ciphersuites", "TLS_AES_128_GCM_SHA256", NULL },
	{ "tls", "min_version", "1.3", NULL },
	{ "tls", "ca_file", "/etc/ssl/certs/ca-certificates.crt", NULL },
	{ "upstream", "connect_timeout", "5s", NULL },
	{ "upstream", "login_timeout", "2m", NULL },
	{ "upstream", "dns_server", "127.0.0.1:5353", NULL },
	{ "upstream", "dns_server", "127.0.0.1", NULL },
	{ "upstream", "dns_server", "[::1]", NULL },
	{ "imap", "listen", "127.0.0.1:993 tls", NULL },
	{ "imap", "listen", "", "" },
	{ "imap", "listen", "*:143 starttls proxy", "0.0.0.0:143 starttls proxy" },
	{ "imap", "login_timeout", "10s", NULL },
	{ "imap", "idle_timeout", "30m", NULL },
	{ "imap", "idle_timeout", "1d", "24h" },
	{ "imap", "line_max", "512", NULL },
	{ "imap", "line_max", "64k", NULL },
	{ "imap", "literal_max", "16k", NULL },
	{ "imap", "auth_failures_max", "5", NULL },
	{ "imap", "bad_commands_max", "1", NULL },
	{ "imap", "failure_delay", "0s", NULL },
	{ "imap", "failure_delay", "30s", NULL },
	{ "imap", "allow_plaintext_auth", "yes", NULL },
	{ "imap", "max_connections", "1000", NULL },
	{ "smtp", "listen", "[::]:587 starttls", NULL },
	{ "smtp", "login_timeout", "2m", NULL },
	{ "smtp", "command_timeout", "10m", NULL },
	{ "smtp", "line_max", "1000", NULL },
	{ "smtp", "auth_failures_max", "100", NULL },
	{ "smtp", "bad_commands_max", "2", NULL },
	{ "smtp", "failure_delay", "500ms", NULL },
	{ "smtp", "allow_plaintext_auth", "yes", NULL },
	{ "smtp", "message_max", "1G", NULL },
	{ "smtp", "message_max", "65536", "64k" },
	{ "smtp", "sent_copy", "no", NULL },
	{ "smtp", "max_connections", "1", NULL },
};

TEST(cfg_keys_parse)
{
	char		 err[ERRLEN], text[512], val[512];
	struct cfg	*cfg;
	char		*dump;

	tdir_new();
	for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
		const char *want = key_cases[i].out != NULL ?
		    key_cases[i].out : key_cases[i].in;

		snprintf(text, sizeof(text), "[%s]\n%s = %s\n",
		    key_cases[i].section, key_cases[i].key, key_cases[i].in);
		if ((cfg = tload(text, err)) == NULL) {
			CHECK_TSTR(err, key_cases[i].key);
			continue;
		}
		dump = tdump(cfg);
		CHECK_TSTR(tdump_value(dump, key_cases[i].section,
		    key_cases[i].key, val, sizeof(val)), want);
		free(dump);
		cfg_free(&cfg);
	}
	tdir_rm();
}

TEST(cfg_fields)
{
	char		 err[ERRLEN];
	struct cfg	*cfg;

	tdir_new();
	cfg = tload("[postern]\nlog_level = warn\nlog = syslog\n"
	    "workers = auto\ndrain_timeout = 2m\n"
	    "[tls]\nmin_version = 1.3\n"
	    "[admin]\nbody_max = 8k\nlisten = [::1]:3000\n"
	    "[imap]\nfailure_delay = 0\nallow_plaintext_auth = on\n"
	    "[smtp]\ncommand_timeout = 90s\nmessage_max = 10M\n"
	    "sent_copy = off\n", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_INT(cfg->log_level, ==, LOG_LVL_WARN);
		CHECK(cfg->log_syslog);
		CHECK_INT(cfg->workers, ==, 0);
		CHECK_INT(cfg->drain_timeout_ms, ==, 120000);
		CHECK_INT(cfg->tls_min_version, ==, 13);
		CHECK_INT(cfg->admin_body_max, ==, 8192);
		CHECK_TSTR(cfg->admin_listen, "[::1]:3000");
		CHECK_INT(cfg->imap.failure_delay_ms, ==, 0);
		CHECK(cfg->imap.allow_plaintext_auth);
		CHECK_INT(cfg->smtp.command_timeout_ms, ==, 90000);
		CHECK_INT(cfg->smtp.message_max, ==, 10 << 20);
		CHECK(!cfg->smtp.sent_copy);
	}
	cfg_free(&cfg);
	tdir_rm();
}

/* Each bad value sits on line 3; the message names section, key, reason. */
static const struct {
	const char	*section, *key, *value, *why;
} bad_cases[] = {
	{ "imap", "login_timeout", "6x",
	    "[imap] login_timeout: bad duration \"6x\" (use e.g. 60s, 5m)" },
	{ "postern", "secret_file", "relative/path", "bad path" },
	{ "postern", "old_secret_files", "/a,,/b", "bad path" },
	{ "postern", "old_secret_files", "/a,b", "bad path \"b\"" },
	{ "postern", "log_level", "verbose", "bad log level \"verbose\"" },
	{ "postern", "log", "file", "bad value \"file\"" },
	{ "postern", "workers", "0", "(1..64 or auto)" },
	{ "postern", "workers", "65", "(1..64 or auto)" },
	{ "postern", "workers", "two", "bad value" },
	{ "postern", "pid_file", "pid", "bad path" },
	{ "postern", "drain_timeout", "2h", "out of range (0s..60m)" },
	{ "postern", "drain_timeout", "-1s", "bad duration" },
	{ "postern", "revoke_closes_sessions", "maybe", "bad boolean" },
	{ "redis", "url", "http://x:1", "bad URL" },
	{ "redis", "url", "redis://host", "bad URL" },
	{ "redis", "url", "redis://host:0/0", "bad URL" },
	{ "redis", "url", "redis://host:6379/", "bad URL" },
	{ "redis", "url", "redis://host:6379/x", "bad URL" },
	{ "redis", "url", "redis://::1:6379/0", "bad URL" },
	{ "redis", "url", "redis://[::1]/0", "bad URL" },
	{ "redis", "url", "redis://user@host:6379", "bad URL" },
	{ "redis", "url", "redis://:@host:6379", "bad URL" },
	{ "redis", "url", "redis://acl:pw@host:6379", "bad URL \"redis://****@" },
	{ "redis", "url", "unix:relative.sock", "bad URL" },
	{ "redis", "url", "unix:/r.sock?db=x", "bad URL" },
	{ "redis", "url", "", "must not be empty" },
	{ "redis", "prefix", "a b", "bad prefix" },
	{ "redis", "prefix",
	    "0123456789012345678901234567890123456789012345678901234567890123x",
	    "bad prefix" },
	{ "redis", "timeout", "50ms", "out of range (100ms..60s)" },
	{ "redis", "timeout", "2m", "out of range" },
	{ "admin", "socket", "",  "must not be empty" },
	{ "admin", "socket", "/run/postern/0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123456789",
	    "too long (max 107 bytes)" },
	{ "admin", "listen", "localhost:3000", "bad address" },
	{ "admin", "listen", "127.0.0.1", "bad address" },
	{ "admin", "listen", "127.0.0.1:70000", "bad address" },
	{ "admin", "body_max", "512", "out of range (1k..64M)" },
	{ "admin", "body_max", "65M", "out of range" },
	{ "admin", "body_max", "1x", "bad size \"1x\" (use e.g. 8k, 1M)" },
	{ "tls", "cert", "cert.pem", "bad path" },
	{ "tls", "key", "", "must not be empty" },
	{ "tls", "ciphers", "", "must not be empty" },
	{ "tls", "ciphersuites", "A B", "bad value" },
	{ "tls", "min_version", "1.1", "bad TLS version \"1.1\"" },
	{ "tls", "ca_file", "ca.pem", "bad path" },
	{ "upstream", "connect_timeout", "10m", "out of range" },
	{ "upstream", "login_timeout", "500ms", "out of range" },
	{ "upstream", "dns_server", "dns.example:53", "bad address" },
	{ "imap", "listen", "0.0.0.0:993", "missing mode" },
	{ "imap", "listen", "0.0.0.0:993 ssl", "bad mode" },
	{ "imap", "listen", "0.0.0.0:993 tls proxy proxy", "unexpected word" },
	{ "imap", "listen", "0.0.0.0:993 tls haproxy", "unexpected word" },
	{ "imap", "listen", ":::993 tls", "bad address" },
	{ "imap", "listen", "[::1:993 tls", "bad address" },
	{ "imap", "listen", "0.0.0.0:0 tls", "bad address" },
	{ "imap", "listen", "0.0.0.0:65536 tls", "bad address" },
	{ "imap", "listen", "0.0.0.0 tls", "bad address" },
	{ "imap", "listen", "mail.example:993 tls", "bad address" },
	{ "imap", "listen", "0.0.0.0:993 tls,", "empty listener" },
	{ "imap", "listen", "0.0.0.0:993 tls, 0.0.0.0:993 starttls",
	    "duplicate listener" },
	{ "imap", "listen", "*:1 tls, *:2 tls, *:3 tls, *:4 tls, *:5 tls, "
	    "*:6 tls, *:7 tls, *:8 tls, *:9 tls", "too many listeners (max 8)" },
	{ "imap", "idle_timeout", "29m", "out of range (30m..24h)" },
	{ "imap", "line_max", "511", "out of range (512..64k)" },
	{ "imap", "literal_max", "1M", "out of range" },
	{ "imap", "auth_failures_max", "0", "bad integer \"0\" (1..100)" },
	{ "imap", "bad_commands_max", "1x", "bad integer" },
	{ "imap", "failure_delay", "31s", "out of range (0s..30s)" },
	{ "imap", "allow_plaintext_auth", "", "bad boolean" },
	{ "imap", "max_connections", "1001", "bad integer" },
	{ "smtp", "listen", "0.0.0.0:25", "missing mode" },
	{ "smtp", "login_timeout", "0", "out of range" },
	{ "smtp", "command_timeout", "5s", "out of range (10s..60m)" },
	{ "smtp", "line_max", "999", "out of range (1000..64k)" },
	{ "smtp", "auth_failures_max", "", "bad integer" },
	{ "smtp", "message_max", "2G", "out of range (64k..1G)" },
	{ "smtp", "sent_copy", "y", "bad boolean" },
	{ "smtp", "max_connections", "0", "bad integer" },
};

TEST(cfg_bad_values)
{
	char		 err[ERRLEN], text[512], pfx[256];
	struct cfg	*cfg;

	tdir_new();
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		snprintf(text, sizeof(text), "# line 1\n[%s]\n%s = %s\n"
		    "# line 4\n", bad_cases[i].section, bad_cases[i].key,
		    bad_cases[i].value);
		cfg = tload(text, err);
		CHECK(cfg == NULL);
		cfg_free(&cfg);
		snprintf(pfx, sizeof(pfx), "%s:3: [%s] %s: ", tpath,
		    bad_cases[i].section, bad_cases[i].key);
		if (!has_prefix(err, pfx))
			CHECK_TSTR(err, pfx);
		if (strstr(err, bad_cases[i].why) == NULL)
			CHECK_TSTR(err, bad_cases[i].why);
	}
	tdir_rm();
}

/* Errors the handler cannot see or that are not about a value. */
static const struct {
	const char	*text;
	int		 line;
	const char	*why;
} syntax_cases[] = {
	{ "[imap]\nfoo = 1\n", 2, "[imap] foo: unknown key" },
	{ "[smtp]\nliteral_max = 8k\n", 2, "[smtp] literal_max: unknown key" },
	{ "[smtp]\nidle_timeout = 30m\n", 2, "[smtp] idle_timeout: unknown key" },
	{ "[imap]\nmessage_max = 1M\n", 2, "[imap] message_max: unknown key" },
	{ "[imap]\nsent_copy = no\n", 2, "[imap] sent_copy: unknown key" },
	{ "[imap]\ncommand_timeout = 5m\n", 2,
	    "[imap] command_timeout: unknown key" },
	{ "[imap]\nLine_max = 8k\n", 2, "[imap] Line_max: unknown key" },
	{ "[pop3]\nlisten = *:110 starttls\n", 1, "unknown section [pop3]" },
	{ "[imap]\n[empty]\n", 2, "unknown section [empty]" },
	{ "[IMAP]\n", 1, "unknown section [IMAP]" },
	{ "workers = 2\n[postern]\n", 1, "key \"workers\" outside a section" },
	{ "[postern\n", 1, "syntax error" },
	{ "[postern] x\n", 1, "syntax error" },
	{ "[postern]\nworkers\n", 2, "syntax error" },
	{ "[postern]\n\n\nworkers 2\nlog = x\n", 4, "syntax error" },
	{ "[imap]\nline_max = 1\nfoo = 2\n", 2, "line_max" },
	{ "[imap]\nlisten = *:993 tls\n  bogus\n", 3, "syntax error" },
};

/* A Redis password is a secret: never echoed by errors or -T. */
TEST(cfg_redis_password_masked)
{
	char		 err[ERRLEN];
	struct cfg	*cfg;
	char		*out = NULL;
	size_t		 outlen = 0;
	FILE		*f;

	tdir_new();
	cfg = tload("[redis]\nurl = redis://x:pw-in-error@h:1/0\n", err);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "pw-in-error") == NULL);
	/* "@" inside the password, and a mistyped scheme. */
	cfg = tload("[redis]\nurl = redis://:pw@in-error@h:99999/0\n", err);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "in-error") == NULL);
	cfg = tload("[redis]\nurl = rediss://:pw-in-error@h:1/0\n", err);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "pw-in-error") == NULL);
	CHECK(strstr(err, "rediss://****@h:1/0") != NULL);
	cfg = tload("[redis]\nurl = redis://:pw-in-dump@127.0.0.1:6379/0\n",
	    err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_TSTR(cfg->redis_url, "redis://:pw-in-dump@127.0.0.1:6379/0");
		f = open_memstream(&out, &outlen);
		cfg_dump(cfg, f);
		fclose(f);
		CHECK(strstr(out, "pw-in-dump") == NULL);
		CHECK(strstr(out, "url = redis://****@127.0.0.1:6379/0") != NULL);
		free(out);
	}
	cfg_free(&cfg);
	tdir_rm();
}

/*
 * The Redis database number: [redis] url and the token store take the same
 * range (TOK_DB_MAX), so a URL that passes posternd -t also starts; past
 * it, the config check names the database number, not just "bad URL".
 */
TEST(cfg_redis_db_limit)
{
	static const char *const pfx[] = {	/* the number follows */
		"[redis]\nurl = redis://127.0.0.1:6379/",
		"[redis]\nurl = redis://:pw@[::1]:6379/",
		"[redis]\nurl = unix:/run/redis.sock?db=",
	};
	static const long long bad[] = {
		TOK_DB_MAX + 1LL, 5000, 2147483648LL, 99999999999999999LL,
	};
	char		 err[ERRLEN], text[128], want[64];
	struct cfg	*cfg;

	tdir_new();
	for (size_t i = 0; i < sizeof(pfx) / sizeof(pfx[0]); i++) {
		snprintf(text, sizeof(text), "%s%d\n", pfx[i], TOK_DB_MAX);
		cfg = tload(text, err);
		if (cfg == NULL)
			fprintf(stderr, "  %s", err);
		CHECK(cfg != NULL);
		cfg_free(&cfg);
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			snprintf(text, sizeof(text), "%s%lld\n", pfx[i],
			    bad[j]);
			cfg = tload(text, err);
			CHECK(cfg == NULL);
			cfg_free(&cfg);
			snprintf(want, sizeof(want), "out of range (0..%d)",
			    TOK_DB_MAX);
			if (strstr(err, want) == NULL ||
			    strstr(err, "database number") == NULL)
				fprintf(stderr, "  %s\n", err);
			CHECK(strstr(err, want) != NULL);
			CHECK(strstr(err, "database number") != NULL);
			CHECK(strstr(err, ":pw@") == NULL);
		}
	}
	/* Not a number at all: still the general message. */
	cfg = tload("[redis]\nurl = redis://127.0.0.1:6379/-1\n", err);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "bad URL") != NULL);
	cfg_free(&cfg);
	tdir_rm();
}

TEST(cfg_syntax_errors)
{
	char		 err[ERRLEN], pfx[256];
	struct cfg	*cfg;

	tdir_new();
	for (size_t i = 0; i < sizeof(syntax_cases) / sizeof(syntax_cases[0]);
	    i++) {
		cfg = tload(syntax_cases[i].text, err);
		CHECK(cfg == NULL);
		cfg_free(&cfg);
		snprintf(pfx, sizeof(pfx), "%s:%d: ", tpath,
		    syntax_cases[i].line);
		if (!has_prefix(err, pfx))
			CHECK_TSTR(err, pfx);
		if (strstr(err, syntax_cases[i].why) == NULL)
			CHECK_TSTR(err, syntax_cases[i].why);
	}
	tdir_rm();
}

TEST(cfg_comments)
{
	char		 err[ERRLEN];
	struct cfg	*cfg;

	tdir_new();
	cfg = tload("\xef\xbb\xbf# full-line comment\r\n"
	    "; another one\n"
	    "   # indented comment\n"
	    "[postern] # section comment\n"
	    "workers = 4 # four workers\n"
	    "  log_level = debug\t# indented key, tab before #\n"
	    "pid_file = /run/p#1.pid ; comment\n"
	    "[redis]\r\n"
	    "prefix = a#b;c:\r\n"
	    "[imap]\n"
	    "listen = [::1]:993 tls # , 127.0.0.1:143 starttls\n", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_INT(cfg->workers, ==, 4);
		CHECK_INT(cfg->log_level, ==, LOG_LVL_DEBUG);
		CHECK_TSTR(cfg->pid_file, "/run/p#1.pid");
		CHECK_TSTR(cfg->redis_prefix, "a#b;c:");
		CHECK_INT(cfg->imap.nlisten, ==, 1);
		CHECK_TSTR(cfg->imap.listen[0].host, "::1");
	}
	cfg_free(&cfg);
	tdir_rm();
}

TEST(cfg_comment_in_value_is_data)
{
	char		 err[ERRLEN];
	struct cfg	*cfg;

	/* "5s;x" is one word: only a blank starts an inline comment. */
	tdir_new();
	cfg = tload("[redis]\ntimeout = 5s;x\n", err);
	CHECK(cfg == NULL);
	CHECK(strstr(err, ":2: [redis] timeout: bad duration \"5s;x\"") != NULL);
	cfg_free(&cfg);
	tdir_rm();
}

/* A repeated section or key is no error: the later value wins. */
TEST(cfg_repeated_keys)
{
	char		 err[ERRLEN];
	struct cfg	*cfg;
	FILE		*fp;

	tdir_new();
	cfg = tload("[imap]\nline_max = 1k\n[smtp]\nline_max = 2k\n"
	    "[imap]\nline_max = 2k\nline_max = 4k\n", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_INT(cfg->imap.line_max, ==, 4096);
		CHECK_INT(cfg->smtp.line_max, ==, 2048);
	}
	cfg_free(&cfg);

	/* A NUL byte is an error, not the silent end of a value. */
	if ((fp = fopen(tpath, "w")) != NULL) {
		static const char nul[] = "[imap]\nline_max = 1k\0 x\n";

		fwrite(nul, 1, sizeof(nul) - 1, fp);
		fclose(fp);
	}
	cfg = cfg_load(tpath, err, sizeof(err));
	CHECK(cfg == NULL);
	CHECK(strstr(err, ":2: NUL byte") != NULL);
	cfg_free(&cfg);
	tdir_rm();
}

TEST(cfg_confd_order)
{
	char		 err[ERRLEN], pfx[256];
	struct cfg	*cfg;

	tdir_new();
	tmkdir("conf.d");
	twrite("conf.d/20-b.conf", "[imap]\nlogin_timeout = 30s\n");
	twrite("conf.d/10-a.conf", "[imap]\nlogin_timeout = 20s\n"
	    "line_max = 16k\n[smtp]\nsent_copy = no\n");
	twrite("conf.d/30-c.conf.bak", "[imap]\nlogin_timeout = 99s\n");
	twrite("conf.d/.99-hidden.conf", "[imap]\nlogin_timeout = 98s\n");
	twrite("conf.d/README", "not ini at all\n");
	cfg = tload("[imap]\nlogin_timeout = 10s\nline_max = 1k\n"
	    "auth_failures_max = 7\n", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_INT(cfg->imap.login_timeout_ms, ==, 30000);
		CHECK_INT(cfg->imap.line_max, ==, 16384);
		CHECK_INT(cfg->imap.auth_failures_max, ==, 7);
		CHECK(!cfg->smtp.sent_copy);
	}
	cfg_free(&cfg);

	/* An error in conf.d names that file and its line. */
	twrite("conf.d/15-bad.conf", "\n[imap]\nline_max = huge\n");
	cfg = tload("[imap]\n", err);
	CHECK(cfg == NULL);
	snprintf(pfx, sizeof(pfx), "%s/conf.d/15-bad.conf:3: [imap] line_max: ",
	    tdir);
	if (!has_prefix(err, pfx))
		CHECK_TSTR(err, pfx);
	cfg_free(&cfg);

	/* An error in the main file wins over conf.d. */
	cfg = tload("[imap]\nbogus = 1\n", err);
	CHECK(cfg == NULL);
	snprintf(pfx, sizeof(pfx), "%s:2: [imap] bogus: unknown key", tpath);
	CHECK_TSTR(err, pfx);
	tdir_rm();
}

TEST(cfg_listen_list)
{
	char			 err[ERRLEN];
	struct cfg		*cfg;
	const struct cfg_listen	*l;

	tdir_new();
	cfg = tload("[imap]\nlisten = [::]:993 tls proxy, *:143 starttls,"
	    "127.0.0.1:1143\tstarttls  proxy ,[::1]:2993 tls\n"
	    "[smtp]\nlisten =\n", err);
	CHECK(cfg != NULL);
	if (cfg == NULL) {
		fprintf(stderr, "  %s\n", err);
		tdir_rm();
		return;
	}
	CHECK_INT(cfg->imap.nlisten, ==, 4);
	l = cfg->imap.listen;
	CHECK_TSTR(l[0].host, "::");
	CHECK_TSTR(l[0].port, "993");
	CHECK_INT(l[0].tls, ==, CFG_TLS_IMPLICIT);
	CHECK(l[0].proxy_protocol);
	CHECK_TSTR(l[1].host, "0.0.0.0");
	CHECK_TSTR(l[1].port, "143");
	CHECK_INT(l[1].tls, ==, CFG_TLS_STARTTLS);
	CHECK(!l[1].proxy_protocol);
	CHECK_TSTR(l[2].host, "127.0.0.1");
	CHECK_TSTR(l[2].port, "1143");
	CHECK(l[2].proxy_protocol);
	CHECK_TSTR(l[3].host, "::1");
	CHECK_TSTR(l[3].port, "2993");
	CHECK_INT(cfg->smtp.nlisten, ==, 0);
	cfg_free(&cfg);

	/* CFG_LISTEN_MAX IPv6 listeners: a line past inih's 200 bytes. */
	cfg = tload("[imap]\nlisten = [2001:db8::1]:1001 tls proxy, "
	    "[2001:db8::1]:1002 tls proxy, [2001:db8::1]:1003 tls proxy, "
	    "[2001:db8::1]:1004 tls proxy, [2001:db8::1]:1005 starttls proxy, "
	    "[2001:db8::1]:1006 starttls proxy, [2001:db8::1]:1007 tls, "
	    "[2001:db8::1]:1008 starttls # eight\n"
	    "line_max = 16k\n", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_INT(cfg->imap.nlisten, ==, CFG_LISTEN_MAX);
		CHECK_TSTR(cfg->imap.listen[7].host, "2001:db8::1");
		CHECK_TSTR(cfg->imap.listen[7].port, "1008");
		CHECK_INT(cfg->imap.line_max, ==, 16384);
	}
	cfg_free(&cfg);
	tdir_rm();
}

TEST(cfg_long_lines)
{
	char		 err[ERRLEN], text[2048], pfx[256];
	char		 big[600];
	struct cfg	*cfg;

	tdir_new();
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(text, sizeof(text), "[tls]\nciphers = %s\n"
	    "[redis]\nprefix = x:\n", big);
	cfg = tload(text, err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_TSTR(cfg->tls_ciphers, big);
		CHECK_TSTR(cfg->redis_prefix, "x:");
	}
	cfg_free(&cfg);

	/* The line count survives a long line and the error quotes its key. */
	snprintf(text, sizeof(text), "[tls]\nciphers = %s\n\n"
	    "min_version = 1.0\n", big);
	cfg = tload(text, err);
	CHECK(cfg == NULL);
	snprintf(pfx, sizeof(pfx), "%s:4: [tls] min_version: ", tpath);
	if (!has_prefix(err, pfx))
		CHECK_TSTR(err, pfx);
	cfg_free(&cfg);

	snprintf(text, sizeof(text), "[tls]\n%s\n", big);
	cfg = tload(text, err);
	CHECK(cfg == NULL);
	snprintf(pfx, sizeof(pfx), "%s:2: syntax error", tpath);
	if (!has_prefix(err, pfx))
		CHECK_TSTR(err, pfx);
	cfg_free(&cfg);

	snprintf(text, sizeof(text), "[redis]\nprefix = %s\n", big);
	cfg = tload(text, err);
	CHECK(cfg == NULL);
	snprintf(pfx, sizeof(pfx), "%s:2: [redis] prefix: bad prefix", tpath);
	if (!has_prefix(err, pfx))
		CHECK_TSTR(err, pfx);
	cfg_free(&cfg);
	tdir_rm();
}

TEST(cfg_cross_checks)
{
	char		 err[ERRLEN], want[512];
	struct cfg	*cfg;

	tdir_new();
	cfg = tload("[imap]\nlisten = 127.0.0.1:1000 tls\n"
	    "[smtp]\nlisten = 127.0.0.1:2000 tls, 127.0.0.1:1000 starttls\n",
	    err);
	CHECK(cfg == NULL);
	snprintf(want, sizeof(want), "%s: 127.0.0.1:1000 is both an [imap] "
	    "and an [smtp] listener", tpath);
	CHECK_TSTR(err, want);

	cfg = tload("[imap]\nlisten = [::1]:3000 tls\n"
	    "[admin]\nlisten = [::1]:3000\n", err);
	CHECK(cfg == NULL);
	snprintf(want, sizeof(want), "%s: [admin] listen [::1]:3000 is also "
	    "an [imap] listener", tpath);
	CHECK_TSTR(err, want);

	cfg = tload("[postern]\nsecret_file = /s/new\n"
	    "old_secret_files = /s/old, /s/new\n", err);
	CHECK(cfg == NULL);
	snprintf(want, sizeof(want), "%s: [postern] old_secret_files lists "
	    "secret_file /s/new", tpath);
	CHECK_TSTR(err, want);

	/* A prefix of a listed path is not the same file. */
	cfg = tload("[postern]\nsecret_file = /s/new\n"
	    "old_secret_files = /s/new.1,/s/ne\n"
	    "[imap]\nlisten =\n[smtp]\nlisten =\n", err);
	CHECK(cfg != NULL);
	cfg_free(&cfg);
	tdir_rm();
}

TEST(cfg_open_errors)
{
	char		 err[ERRLEN], want[256];
	struct cfg	*cfg;

	tdir_new();
	snprintf(want, sizeof(want), "%s: cannot open: No such file or "
	    "directory", tpath);
	cfg = cfg_load(tpath, err, sizeof(err));
	CHECK(cfg == NULL);
	CHECK_TSTR(err, want);

	tmkdir("dir.conf");
	snprintf(want, sizeof(want), "%s/dir.conf", tdir);
	cfg = cfg_load(want, err, sizeof(err));
	CHECK(cfg == NULL);
	CHECK(strstr(err, ": cannot open: Is a directory") != NULL);

	/* A NULL err buffer is allowed. */
	cfg = cfg_load(tpath, NULL, 0);
	CHECK(cfg == NULL);
	tdir_rm();
}

/* dump(load(dump(cfg))) == dump(cfg), and the values compare equal. */
static void
roundtrip(const char *text)
{
	char		 err[ERRLEN];
	struct cfg	*a, *b;
	char		*da, *db;

	if ((a = tload(text, err)) == NULL) {
		CHECK_TSTR(err, "");
		return;
	}
	da = tdump(a);
	twrite("postern.conf", da);
	b = cfg_load(tpath, err, sizeof(err));
	CHECK(b != NULL);
	if (b != NULL) {
		db = tdump(b);
		CHECK_TSTR(da, db);
		free(db);
		CHECK_INT(a->imap.nlisten, ==, b->imap.nlisten);
		CHECK(memcmp(a->imap.listen, b->imap.listen,
		    sizeof(a->imap.listen)) == 0);
		CHECK(memcmp(a->smtp.listen, b->smtp.listen,
		    sizeof(a->smtp.listen)) == 0);
		CHECK_INT(a->drain_timeout_ms, ==, b->drain_timeout_ms);
		CHECK_INT(a->redis_timeout_ms, ==, b->redis_timeout_ms);
		CHECK_INT(a->smtp.message_max, ==, b->smtp.message_max);
		CHECK_INT(a->imap.failure_delay_ms, ==, b->imap.failure_delay_ms);
		CHECK_INT(a->workers, ==, b->workers);
		CHECK_INT(a->tls_min_version, ==, b->tls_min_version);
	} else
		fprintf(stderr, "  %s\n--\n%s\n", err, da);
	free(da);
	cfg_free(&a);
	cfg_free(&b);
}

TEST(cfg_dump_roundtrip)
{
	tdir_new();
	roundtrip("");
	roundtrip("[postern]\nsecret_file = /etc/postern/secret\n"
	    "old_secret_files = /o/1, /o/2\nlog_level = debug\nlog = syslog\n"
	    "workers = auto\npid_file = /run/p.pid\ndrain_timeout = 1500ms\n"
	    "revoke_closes_sessions = yes\n"
	    "[redis]\nurl = unix:/run/r.sock?db=3\nprefix = x:y:\n"
	    "timeout = 250ms\n"
	    "[admin]\nsocket = /run/a.sock\nlisten = 127.0.0.1:3000\n"
	    "body_max = 1025\n"
	    "[tls]\ncert = /c\nkey = /k\nciphers = HIGH:!aNULL\n"
	    "ciphersuites = TLS_AES_256_GCM_SHA384\nmin_version = 1.3\n"
	    "ca_file = /ca\n"
	    "[upstream]\nconnect_timeout = 61s\nlogin_timeout = 2m\n"
	    "dns_server = [::1]:5353\n"
	    "[imap]\nlisten = [::]:993 tls proxy, *:143 starttls\n"
	    "login_timeout = 3599s\nidle_timeout = 90m\nline_max = 1000\n"
	    "literal_max = 12k\nauth_failures_max = 9\nbad_commands_max = 8\n"
	    "failure_delay = 0\nallow_plaintext_auth = yes\n"
	    "max_connections = 77\n"
	    "[smtp]\nlisten = 127.0.0.1:587 starttls proxy\n"
	    "login_timeout = 45m\ncommand_timeout = 10m\nline_max = 2000\n"
	    "auth_failures_max = 1\nbad_commands_max = 1\n"
	    "failure_delay = 100ms\nallow_plaintext_auth = yes\n"
	    "message_max = 100M\nsent_copy = no\nmax_connections = 1\n");
	tdir_rm();
}

TEST(cfg_dump_secret)
{
	char		 err[ERRLEN], val[256];
	struct cfg	*cfg;
	char		*dump, *saved, *env;

	env = getenv("POSTERN_SECRET");
	saved = env != NULL ? strdup(env) : NULL;
	tdir_new();
	twrite("secret", "TOPSECRETVALUE\n");

	setenv("POSTERN_SECRET", "ENVSECRETVALUE", 1);
	cfg = tload("", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		dump = tdump(cfg);
		CHECK(strstr(dump, "\n# secret from environment POSTERN_SECRET "
		    "(hidden)\nsecret_file =\n") != NULL);
		CHECK(strstr(dump, "ENVSECRETVALUE") == NULL);
		free(dump);
	}
	cfg_free(&cfg);

	snprintf(val, sizeof(val), "[postern]\nsecret_file = %s/secret\n",
	    tdir);
	cfg = tload(val, err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		dump = tdump(cfg);
		snprintf(val, sizeof(val), "\nsecret_file = %s/secret\n", tdir);
		CHECK(strstr(dump, val) != NULL);
		CHECK(strstr(dump, "TOPSECRETVALUE") == NULL);
		CHECK(strstr(dump, "ENVSECRETVALUE") == NULL);
		CHECK(strstr(dump, "(hidden)") == NULL);
		free(dump);
	}
	cfg_free(&cfg);

	unsetenv("POSTERN_SECRET");
	cfg = tload("", err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		dump = tdump(cfg);
		CHECK(strstr(dump, "(hidden)") == NULL);
		CHECK(strstr(dump, "# no secret") != NULL);
		free(dump);
	}
	cfg_free(&cfg);

	if (saved != NULL)
		setenv("POSTERN_SECRET", saved, 1);
	free(saved);
	tdir_rm();
}

/*
 * The shipped example loads, and its commented-out "#key = value" lines,
 * once uncommented, give exactly the built-in defaults: the example cannot
 * drift from the code.
 */
TEST(cfg_example_file)
{
	char		 err[ERRLEN];
	struct cfg	*cfg, *def;
	char		*line = NULL, *text, *d1, *d2;
	size_t		 linesz = 0, len = 0;
	FILE		*in, *out;
	int		 nkeys = 0;

	cfg = cfg_load("etc/postern.conf.example", err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg == NULL)
		fprintf(stderr, "  %s\n", err);
	cfg_free(&cfg);

	if ((in = fopen("etc/postern.conf.example", "r")) == NULL) {
		CHECK(!"etc/postern.conf.example missing");
		return;
	}
	text = NULL;
	out = open_memstream(&text, &len);
	while (getline(&line, &linesz, in) != -1) {
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' &&
		    strstr(line, " =") != NULL) {
			fputs(line + 1, out);
			nkeys++;
		} else
			fputs(line, out);
	}
	fclose(out);
	fclose(in);
	free(line);
	CHECK_INT(nkeys, ==, 60);

	tdir_new();
	cfg = tload(text, err);
	CHECK(cfg != NULL);
	def = tload("", err);
	CHECK(def != NULL);
	if (cfg != NULL && def != NULL) {
		d1 = tdump(cfg);
		d2 = tdump(def);
		CHECK_TSTR(d1, d2);
		free(d1);
		free(d2);
	}
	cfg_free(&cfg);
	cfg_free(&def);
	free(text);
	tdir_rm();
}
