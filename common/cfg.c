/*
 * Configuration loader. One key table gives every key its section, type,
 * limits and default: cfg_load() applies the defaults, then feeds the main
 * file and each conf.d/NAME.conf through inih; cfg_dump() prints the table
 * back. inih splits lines and sections; our reader does the lexing it lacks.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/str.h"
#include "common/xmalloc.h"

#define CFG_MSG_MAX	512
#define CFG_QUOTE_MAX	100		/* value bytes quoted in a message */
#define CFG_SUN_PATH	107		/* sizeof(sun_path) - 1 on Linux */
#define CFG_SECRET_ENV	"POSTERN_SECRET"
/* Highest Redis database number in [redis] url; TOK_DB_MAX in
 * tokenstore/tok.h is the same limit (t_cfg.c checks that they agree). */
#define CFG_REDIS_DB_MAX	1000

#define CFG_MS_S	1000LL
#define CFG_MS_M	(60 * CFG_MS_S)
#define CFG_MS_H	(60 * CFG_MS_M)
#define CFG_K		1024LL
#define CFG_M		(1024 * CFG_K)
#define CFG_G		(1024 * CFG_M)

enum cfg_type {
	CFG_T_STR,		/* char *: printable, no whitespace */
	CFG_T_PATH,		/* char *: absolute path, max = length cap */
	CFG_T_PATHS,		/* char *: "a,b" absolute paths */
	CFG_T_BOOL,		/* bool */
	CFG_T_INT,		/* int in [min, max] */
	CFG_T_WORKERS,		/* int: 1..max or "auto" = 0 */
	CFG_T_DUR,		/* long long ms in [min, max] */
	CFG_T_SIZE,		/* size_t bytes in [min, max] */
	CFG_T_LOGLEVEL,		/* int: LOG_LVL_* */
	CFG_T_LOGDEST,		/* bool: true for syslog */
	CFG_T_TLSVER,		/* int: 12 or 13 */
	CFG_T_REDIS_URL,	/* char * */
	CFG_T_PREFIX,		/* char *: min..max printable bytes */
	CFG_T_HOSTPORT,		/* char *: normalized "ip:port", "[ip6]:port" */
	CFG_T_LISTEN,		/* struct cfg_proto: listen[], nlisten */
};

#define CFG_F_NULL	0x01	/* empty value means "not set" (NULL) */
#define CFG_F_PORTOPT	0x02	/* HOSTPORT: the port may be left out */

struct cfg_key {
	const char	*section;
	const char	*name;
	enum cfg_type	 type;
	int		 flags;
	size_t		 off;
	long long	 min, max;
	const char	*def;		/* parsed like a file value */
};

#define OFF(m)	offsetof(struct cfg, m)

/* OpenSSL's default TLS 1.3 suites; the TLS 1.2 list is ECDHE + AEAD only. */
#define CFG_CIPHERS							\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define CFG_CIPHERSUITES						\
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"		\
	"TLS_AES_128_GCM_SHA256"

/* Order here is the order of cfg_dump(), the man page and the example. */
static const struct cfg_key cfg_keys[] = {
	{ "postern", "secret_file", CFG_T_PATH, CFG_F_NULL,
	    OFF(secret_file), 0, 0, "" },
	{ "postern", "old_secret_files", CFG_T_PATHS, CFG_F_NULL,
	    OFF(old_secret_files), 0, 0, "" },
	{ "postern", "log_level", CFG_T_LOGLEVEL, 0,
	    OFF(log_level), 0, 0, "info" },
	{ "postern", "log", CFG_T_LOGDEST, 0, OFF(log_syslog), 0, 0, "stderr" },
	{ "postern", "workers", CFG_T_WORKERS, 0, OFF(workers), 1, 64, "1" },
	{ "postern", "pid_file", CFG_T_PATH, CFG_F_NULL,
	    OFF(pid_file), 0, 0, "" },
	{ "postern", "drain_timeout", CFG_T_DUR, 0,
	    OFF(drain_timeout_ms), 0, CFG_MS_H, "30s" },
	{ "postern", "revoke_closes_sessions", CFG_T_BOOL, 0,
	    OFF(revoke_closes_sessions), 0, 0, "no" },

	{ "redis", "url", CFG_T_REDIS_URL, 0,
	    OFF(redis_url), 0, 0, "redis://127.0.0.1:6379/0" },
	{ "redis", "prefix", CFG_T_PREFIX, 0,
	    OFF(redis_prefix), 1, 64, "postern:" },
	{ "redis", "timeout", CFG_T_DUR, 0,
	    OFF(redis_timeout_ms), 100, 60 * CFG_MS_S, "2s" },

	{ "admin", "socket", CFG_T_PATH, 0,
	    OFF(admin_socket), 0, CFG_SUN_PATH, "/run/postern/admin.sock" },
	{ "admin", "listen", CFG_T_HOSTPORT, CFG_F_NULL,
	    OFF(admin_listen), 0, 0, "" },
	{ "admin", "body_max", CFG_T_SIZE, 0,
	    OFF(admin_body_max), CFG_K, 64 * CFG_M, "1M" },

	{ "tls", "cert", CFG_T_PATH, 0,
	    OFF(tls_cert), 0, 0, "/etc/postern/tls/cert.pem" },
	{ "tls", "key", CFG_T_PATH, 0,
	    OFF(tls_key), 0, 0, "/etc/postern/tls/key.pem" },
	{ "tls", "ciphers", CFG_T_STR, 0,
	    OFF(tls_ciphers), 0, 0, CFG_CIPHERS },
	{ "tls", "ciphersuites", CFG_T_STR, 0,
	    OFF(tls_ciphersuites), 0, 0, CFG_CIPHERSUITES },
	{ "tls", "min_version", CFG_T_TLSVER, 0,
	    OFF(tls_min_version), 0, 0, "1.2" },
	{ "tls", "ca_file", CFG_T_PATH, CFG_F_NULL,
	    OFF(tls_ca_file), 0, 0, "" },

	{ "upstream", "connect_timeout", CFG_T_DUR, 0,
	    OFF(up_connect_timeout_ms), 100, 5 * CFG_MS_M, "10s" },
	{ "upstream", "login_timeout", CFG_T_DUR, 0,
	    OFF(up_login_timeout_ms), CFG_MS_S, 10 * CFG_MS_M, "30s" },
	{ "upstream", "dns_server", CFG_T_HOSTPORT, CFG_F_NULL | CFG_F_PORTOPT,
	    OFF(up_dns_server), 0, 0, "" },

	{ "autoconfig", "dns_server", CFG_T_HOSTPORT,
	    CFG_F_NULL | CFG_F_PORTOPT, OFF(ac_dns_server), 0, 0, "" },
	{ "autoconfig", "autoconfig_url", CFG_T_STR, CFG_F_NULL,
	    OFF(ac_autoconfig_url), 0, 0,
	    "https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={email}" },
	{ "autoconfig", "wellknown_url", CFG_T_STR, CFG_F_NULL,
	    OFF(ac_wellknown_url), 0, 0,
	    "https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml" },
	{ "autoconfig", "ispdb_url", CFG_T_STR, CFG_F_NULL,
	    OFF(ac_ispdb_url), 0, 0, "https://autoconfig.thunderbird.net/v1.1/{domain}" },
	{ "autoconfig", "timeout", CFG_T_DUR, 0,
	    OFF(ac_timeout_ms), CFG_MS_S, 5 * CFG_MS_M, "25s" },
	{ "autoconfig", "dns_timeout", CFG_T_DUR, 0,
	    OFF(ac_dns_timeout_ms), 100, CFG_MS_M, "3s" },
	{ "autoconfig", "http_timeout", CFG_T_DUR, 0,
	    OFF(ac_http_timeout_ms), 100, CFG_MS_M, "5s" },
	{ "autoconfig", "probe_timeout", CFG_T_DUR, 0,
	    OFF(ac_probe_timeout_ms), 100, CFG_MS_M, "5s" },
	{ "autoconfig", "xml_max", CFG_T_SIZE, 0,
	    OFF(ac_xml_max), CFG_K, CFG_M, "64k" },

	{ "verify", "timeout", CFG_T_DUR, 0,
	    OFF(verify_timeout_ms), CFG_MS_S, 5 * CFG_MS_M, "10s" },

	{ "imap", "listen", CFG_T_LISTEN, 0, OFF(imap), 0, 0,
	    "0.0.0.0:2993 tls, 0.0.0.0:2143 starttls" },
	{ "imap", "login_timeout", CFG_T_DUR, 0,
	    OFF(imap.login_timeout_ms), CFG_MS_S, CFG_MS_H, "60s" },
	/* RFC 3501 5.4: the autologout timer is at least 30 minutes. */
	{ "imap", "idle_timeout", CFG_T_DUR, 0,
	    OFF(imap.idle_timeout_ms), 30 * CFG_MS_M, 24 * CFG_MS_H, "30m" },
	{ "imap", "line_max", CFG_T_SIZE, 0,
	    OFF(imap.line_max), 512, 64 * CFG_K, "8k" },
	{ "imap", "literal_max", CFG_T_SIZE, 0,
	    OFF(imap.literal_max), 512, 64 * CFG_K, "8k" },
	{ "imap", "auth_failures_max", CFG_T_INT, 0,
	    OFF(imap.auth_failures_max), 1, 100, "3" },
	{ "imap", "bad_commands_max", CFG_T_INT, 0,
	    OFF(imap.bad_commands_max), 1, 100, "10" },
	{ "imap", "failure_delay", CFG_T_DUR, 0,
	    OFF(imap.failure_delay_ms), 0, 30 * CFG_MS_S, "2s" },
	{ "imap", "allow_plaintext_auth", CFG_T_BOOL, 0,
	    OFF(imap.allow_plaintext_auth), 0, 0, "no" },
	{ "imap", "max_connections", CFG_T_INT, 0,
	    OFF(imap.max_connections), 1, 1000, "10" },

	{ "smtp", "listen", CFG_T_LISTEN, 0, OFF(smtp), 0, 0,
	    "0.0.0.0:2587 starttls, 0.0.0.0:2465 tls" },
	{ "smtp", "login_timeout", CFG_T_DUR, 0,
	    OFF(smtp.login_timeout_ms), CFG_MS_S, CFG_MS_H, "60s" },
	/* RFC 5321 4.5.3.2 suggests 5 minutes for most commands. */
	{ "smtp", "command_timeout", CFG_T_DUR, 0,
	    OFF(smtp.command_timeout_ms), 10 * CFG_MS_S, CFG_MS_H, "5m" },
	/* RFC 5321 4.5.3.1.4: a command line is up to 512 octets. */
	{ "smtp", "line_max", CFG_T_SIZE, 0,
	    OFF(smtp.line_max), 1000, 64 * CFG_K, "4k" },
	{ "smtp", "auth_failures_max", CFG_T_INT, 0,
	    OFF(smtp.auth_failures_max), 1, 100, "3" },
	{ "smtp", "bad_commands_max", CFG_T_INT, 0,
	    OFF(smtp.bad_commands_max), 1, 100, "10" },
	{ "smtp", "failure_delay", CFG_T_DUR, 0,
	    OFF(smtp.failure_delay_ms), 0, 30 * CFG_MS_S, "2s" },
	{ "smtp", "allow_plaintext_auth", CFG_T_BOOL, 0,
	    OFF(smtp.allow_plaintext_auth), 0, 0, "no" },
	{ "smtp", "message_max", CFG_T_SIZE, 0,
	    OFF(smtp.message_max), 64 * CFG_K, CFG_G, "50M" },
	{ "smtp", "sent_copy", CFG_T_BOOL, 0,
	    OFF(smtp.sent_copy), 0, 0, "yes" },
	{ "smtp", "max_connections", CFG_T_INT, 0,
	    OFF(smtp.max_connections), 1, 1000, "10" },

	{ "oauth2", "refresh_margin", CFG_T_DUR, 0,
	    OFF(oauth_refresh_margin_ms), 0, CFG_MS_H, "5m" },
	{ "oauth2", "token_timeout", CFG_T_DUR, 0,
	    OFF(oauth_token_timeout_ms), 100, 5 * CFG_MS_M, "15s" },
	{ "oauth2", "backoff_min", CFG_T_DUR, 0,
	    OFF(oauth_backoff_min_ms), 100, CFG_MS_H, "5s" },
	{ "oauth2", "backoff_max", CFG_T_DUR, 0,
	    OFF(oauth_backoff_max_ms), 100, 24 * CFG_MS_H, "5m" },
	{ "oauth2", "gmail_token_url", CFG_T_STR, 0,
	    OFF(oauth_gmail_token_url), 0, 0,
	    "https://oauth2.googleapis.com/token" },
	{ "oauth2", "outlook_token_url", CFG_T_STR, 0,
	    OFF(oauth_outlook_token_url), 0, 0,
	    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token" },
};

#define CFG_NKEYS	(sizeof(cfg_keys) / sizeof(cfg_keys[0]))

/* State of one file being parsed; the inih reader and handler share it. */
struct cfg_parse {
	struct cfg	*cfg;
	const char	*file;
	FILE		*fp;
	char		*buf;		/* getline() */
	size_t		 bufsz;
	int		 lineno;	/* counted as inih counts */
	char		*longval;	/* value of the current over-long line */
	int		 err_line;	/* first error, 0 = none */
	char		 err[CFG_MSG_MAX];
};

static void	 cfg_perr(struct cfg_parse *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 cfg_bad(char *, size_t, const struct cfg_key *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));

static void *
cfg_ptr(struct cfg *cfg, const struct cfg_key *k)
{
	return (char *)cfg + k->off;
}

static const void *
cfg_cptr(const struct cfg *cfg, const struct cfg_key *k)
{
	return (const char *)cfg + k->off;
}

static bool
cfg_is_string(const struct cfg_key *k)
{
	switch (k->type) {
	case CFG_T_STR:
	case CFG_T_PATH:
	case CFG_T_PATHS:
	case CFG_T_REDIS_URL:
	case CFG_T_PREFIX:
	case CFG_T_HOSTPORT:
		return true;
	default:
		return false;
	}
}

static bool
cfg_section_is_known(const char *name, size_t len)
{
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (strlen(cfg_keys[i].section) == len &&
		    memcmp(cfg_keys[i].section, name, len) == 0)
			return true;
	return false;
}

static const struct cfg_key *
cfg_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].section, section) == 0 &&
		    strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

/* Records the first error of a file, at the line being parsed. */
static void
cfg_perr(struct cfg_parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line != 0)
		return;
	p->err_line = p->lineno;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
}

/* Writes "[section] key: message" into why; always returns -1. */
static int
cfg_bad(char *why, size_t whylen, const struct cfg_key *k, const char *fmt,
    ...)
{
	va_list	ap;
	int	n;

	n = snprintf(why, whylen, "[%s] %s: ", k->section, k->name);
	if (n < 0 || (size_t)n >= whylen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *
cfg_quote(const char *s, char *out, size_t outlen)
{
	return str_sanitize(s, CFG_QUOTE_MAX, out, outlen);
}

/* An exact unit, so the result parses back unchanged; "60s" rather than
 * "1m": a larger unit only from two of it up. */
static void
cfg_fmt_dur(long long ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % CFG_MS_H == 0 && ms >= 2 * CFG_MS_H)
		snprintf(buf, len, "%lldh", ms / CFG_MS_H);
	else if (ms % CFG_MS_M == 0 && ms >= 2 * CFG_MS_M)
		snprintf(buf, len, "%lldm", ms / CFG_MS_M);
	else if (ms % CFG_MS_S == 0)
		snprintf(buf, len, "%llds", ms / CFG_MS_S);
	else
		snprintf(buf, len, "%lldms", ms);
}

static void
cfg_fmt_size(long long n, char *buf, size_t len)
{
	if (n != 0 && n % CFG_G == 0)
		snprintf(buf, len, "%lldG", n / CFG_G);
	else if (n != 0 && n % CFG_M == 0)
		snprintf(buf, len, "%lldM", n / CFG_M);
	else if (n != 0 && n % CFG_K == 0)
		snprintf(buf, len, "%lldk", n / CFG_K);
	else
		snprintf(buf, len, "%lld", n);
}

static bool
cfg_is_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

static int
cfg_bool_parse(const char *s)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/*
 * "1.2.3.4:port" or "[ip6]:port"; the port may be missing if port_opt
 * (*port_r is then 0). host gets the address without brackets. Names are
 * refused: listeners and the resolver need addresses.
 */
static bool
cfg_hostport_parse(const char *s, bool port_opt, char *host, size_t hostlen,
    long long *port_r)
{
	const char	*h, *e, *p;
	struct in6_addr	 a6;
	struct in_addr	 a4;
	size_t		 hlen;
	bool		 v6;

	if ((v6 = (*s == '['))) {
		h = s + 1;
		if ((e = strchr(h, ']')) == NULL)
			return false;
		p = e + 1;
	} else {
		h = s;
		e = h + strcspn(h, ":");
		p = e;
	}
	hlen = (size_t)(e - h);
	if (hlen == 0 || hlen >= hostlen)
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (v6 ? inet_pton(AF_INET6, host, &a6) != 1 :
	    inet_pton(AF_INET, host, &a4) != 1)
		return false;
	if (*p == '\0' && port_opt) {
		*port_r = 0;
		return true;
	}
	if (*p != ':' || !isdigit((unsigned char)p[1]))
		return false;
	return str_to_ll(p + 1, 1, 65535, port_r);
}

static void
cfg_fmt_hostport(const char *host, const char *port, char *buf, size_t len)
{
	bool v6 = strchr(host, ':') != NULL;

	snprintf(buf, len, "%s%s%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "",
	    *port != '\0' ? ":" : "", port);
}

/* The URL with its password (redis://:PASSWORD@...) replaced by "****",
 * for error messages and -T: a password is a secret. */
static const char *
cfg_redis_url_masked(const char *s, char *buf, size_t len)
{
	const char *sep = strstr(s, "://"), *at = strrchr(s, '@');

	/* Any scheme (a mistyped one is reported too), and up to the last
	 * "@": the password may contain "@" itself. */
	if (sep == NULL || at == NULL || at < sep)
		snprintf(buf, len, "%s", s);
	else
		snprintf(buf, len, "%.*s****%s", (int)(sep + 3 - s), s, at);
	return buf;
}

/* The database number of a redis URL: digits, 0..CFG_REDIS_DB_MAX.
 * *range_r is set if it is a number, but too big. */
static bool
cfg_redis_db_ok(const char *s, bool *range_r)
{
	long long n;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return false;
	if (!str_to_ll(s, 0, CFG_REDIS_DB_MAX, &n)) {
		*range_r = true;
		return false;
	}
	return true;
}

/* redis://[:password@]host:port[/db], redis://[ip6]:port[/db] or
 * unix:/path[?db=N]. The password is sent with AUTH (no ACL user name).
 * *db_range_r is set if all is well but a db number too big. */
static bool
cfg_redis_url_ok(const char *s, bool *db_range_r)
{
	char		 auth[300], host[256];
	const char	*p, *q;
	long long	 n;
	size_t		 len;

	*db_range_r = false;
	if (strncmp(s, "unix:", 5) == 0) {
		p = s + 5;
		len = strcspn(p, "?");
		q = p + len;
		if (*p != '/' || len > CFG_SUN_PATH)
			return false;
		for (size_t i = 0; i < len; i++)
			if (!isgraph((unsigned char)p[i]))
				return false;
		if (*q == '\0')
			return true;
		return strncmp(q, "?db=", 4) == 0 &&
		    cfg_redis_db_ok(q + 4, db_range_r);
	}
	if (strncmp(s, "redis://", 8) != 0)
		return false;
	p = s + 8;
	if ((q = strrchr(p, '@')) != NULL) {
		/* ":password@": non-empty, no blanks, no '/' */
		if (*p != ':' || q == p + 1)
			return false;
		for (const char *c = p + 1; c < q; c++)
			if (!isgraph((unsigned char)*c) || *c == '/')
				return false;
		p = q + 1;
	}
	len = strcspn(p, "/");
	if (len == 0 || len >= sizeof(auth))
		return false;
	memcpy(auth, p, len);
	auth[len] = '\0';
	q = p + len;
	/* The address first: a range error is only worth naming in an
	 * otherwise good URL. */
	if (auth[0] == '[') {
		if (!cfg_hostport_parse(auth, false, host, sizeof(host), &n))
			return false;
	} else {
		if ((p = strrchr(auth, ':')) == NULL || p == auth ||
		    !isdigit((unsigned char)p[1]) ||
		    !str_to_ll(p + 1, 1, 65535, &n))
			return false;
		for (const char *c = auth; c < p; c++)
			if (!isalnum((unsigned char)*c) && *c != '.' &&
			    *c != '-')
				return false;
	}
	return *q == '\0' || cfg_redis_db_ok(q + 1, db_range_r);
}

/* One "ADDR:PORT MODE [proxy]" item; why gets the reason on failure. */
static int
cfg_listen_item(char *item, struct cfg_listen *l, char *why, size_t whylen)
{
	char		*save, *addr, *mode, *tok, norm[80];
	long long	 port;

	memset(l, 0, sizeof(*l));
	if ((addr = strtok_r(item, " \t", &save)) == NULL) {
		snprintf(why, whylen, "empty listener in the list");
		return -1;
	}
	if (addr[0] == '*' && addr[1] == ':') {
		snprintf(norm, sizeof(norm), "0.0.0.0%s", addr + 1);
		addr = norm;
	}
	if (!cfg_hostport_parse(addr, false, l->host, sizeof(l->host),
	    &port)) {
		snprintf(why, whylen, "bad address (use e.g. 0.0.0.0:993, "
		    "[::]:993 or *:993)");
		return -1;
	}
	snprintf(l->port, sizeof(l->port), "%lld", port);
	if ((mode = strtok_r(NULL, " \t", &save)) == NULL) {
		snprintf(why, whylen, "missing mode (tls or starttls)");
		return -1;
	}
	if (strcmp(mode, "tls") == 0)
		l->tls = CFG_TLS_IMPLICIT;
	else if (strcmp(mode, "starttls") == 0)
		l->tls = CFG_TLS_STARTTLS;
	else {
		snprintf(why, whylen, "bad mode (use tls or starttls)");
		return -1;
	}
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strcmp(tok, "proxy") != 0 || l->proxy_protocol) {
			snprintf(why, whylen, "unexpected word (only "
			    "\"proxy\" may follow the mode)");
			return -1;
		}
		l->proxy_protocol = true;
	}
	return 0;
}

static int
cfg_listen_parse(const struct cfg_key *k, const char *v,
    struct cfg_proto *proto, char *why, size_t whylen)
{
	struct cfg_listen	 l[CFG_LISTEN_MAX];
	char			*copy, *item, *next, q[CFG_MSG_MAX / 2];
	char			 reason[128];
	int			 n = 0, rc = -1;

	copy = xstrdup(v);
	if (*copy == '\0')
		goto done;
	for (item = copy; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		if (n == CFG_LISTEN_MAX) {
			cfg_bad(why, whylen, k, "too many listeners (max %d)",
			    CFG_LISTEN_MAX);
			goto fail;
		}
		cfg_quote(item + strspn(item, " \t"), q, sizeof(q));
		if (cfg_listen_item(item, &l[n], reason, sizeof(reason)) == -1) {
			cfg_bad(why, whylen, k, "bad listener \"%s\": %s", q,
			    reason);
			goto fail;
		}
		for (int i = 0; i < n; i++) {
			if (strcmp(l[i].host, l[n].host) == 0 &&
			    strcmp(l[i].port, l[n].port) == 0) {
				cfg_bad(why, whylen, k,
				    "duplicate listener \"%s\"", q);
				goto fail;
			}
		}
		n++;
	}
done:
	memcpy(proto->listen, l, sizeof(l[0]) * (size_t)n);
	proto->nlisten = n;
	rc = 0;
fail:
	free(copy);
	return rc;
}

/* "a, b" -> "a,b": absolute paths, stored without the blanks. */
static int
cfg_paths_parse(const struct cfg_key *k, const char *v, char **out_r,
    char *why, size_t whylen)
{
	char	*copy, *item, *next, *e, *out, q[CFG_MSG_MAX / 2];
	size_t	 o = 0;

	copy = xstrdup(v);
	out = xmalloc(strlen(v) + 1);
	for (item = copy; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		item += strspn(item, " \t");
		e = item + strlen(item);
		while (e > item && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (item[0] != '/' || !cfg_is_printable(item)) {
			cfg_bad(why, whylen, k, "bad path \"%s\" (use absolute "
			    "paths separated by commas)",
			    cfg_quote(item, q, sizeof(q)));
			free(copy);
			free(out);
			return -1;
		}
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, item, strlen(item));
		o += strlen(item);
	}
	out[o] = '\0';
	free(copy);
	*out_r = out;
	return 0;
}

/*
 * Converts and checks one value and stores it. Returns -1 with
 * "[section] key: message" in why; the old value is then unchanged.
 */
static int
cfg_set(struct cfg *cfg, const struct cfg_key *k, const char *v, char *why,
    size_t whylen)
{
	void		*ptr = cfg_ptr(cfg, k);
	char		 q[CFG_MSG_MAX / 2], lo[32], hi[32], hostbuf[64];
	char		 addr[96], *s = NULL;
	const char	*eg;
	long long	 n;
	int		 b;

	cfg_quote(v, q, sizeof(q));
	if (cfg_is_string(k) && *v == '\0') {
		if ((k->flags & CFG_F_NULL) == 0)
			return cfg_bad(why, whylen, k, "must not be empty");
		free(*(char **)ptr);
		*(char **)ptr = NULL;
		return 0;
	}

	switch (k->type) {
	case CFG_T_STR:
		if (!cfg_is_printable(v))
			return cfg_bad(why, whylen, k, "bad value \"%s\" (no "
			    "blanks or control characters)", q);
		s = xstrdup(v);
		break;
	case CFG_T_PATH:
		if (v[0] != '/' || !cfg_is_printable(v))
			return cfg_bad(why, whylen, k, "bad path \"%s\" (use an "
			    "absolute path without blanks)", q);
		if (k->max > 0 && strlen(v) > (size_t)k->max)
			return cfg_bad(why, whylen, k, "path \"%s\" too long "
			    "(max %lld bytes)", q, k->max);
		s = xstrdup(v);
		break;
	case CFG_T_PATHS:
		if (cfg_paths_parse(k, v, &s, why, whylen) == -1)
			return -1;
		break;
	case CFG_T_REDIS_URL: {
		bool range;

		if (!cfg_redis_url_ok(v, &range)) {
			char masked[300];

			cfg_redis_url_masked(v, masked, sizeof(masked));
			if (range)
				return cfg_bad(why, whylen, k, "database "
				    "number in URL \"%s\" out of range "
				    "(0..%d)", masked, CFG_REDIS_DB_MAX);
			return cfg_bad(why, whylen, k, "bad URL \"%s\" (use "
			    "redis://[:password@]host:port/db, "
			    "redis://[::1]:port/db or unix:/path?db=N)",
			    masked);
		}
		s = xstrdup(v);
		break;
	}
	case CFG_T_PREFIX:
		if (strlen(v) < (size_t)k->min || strlen(v) > (size_t)k->max ||
		    !cfg_is_printable(v))
			return cfg_bad(why, whylen, k, "bad prefix \"%s\" "
			    "(%lld..%lld printable characters, no blanks)", q,
			    k->min, k->max);
		s = xstrdup(v);
		break;
	case CFG_T_HOSTPORT:
		eg = (k->flags & CFG_F_PORTOPT) ? "53" : "3000";
		if (!cfg_hostport_parse(v, (k->flags & CFG_F_PORTOPT) != 0,
		    hostbuf, sizeof(hostbuf), &n))
			return cfg_bad(why, whylen, k, "bad address \"%s\" "
			    "(use e.g. 127.0.0.1:%s or [::1]:%s)", q, eg, eg);
		lo[0] = '\0';
		if (n != 0)
			snprintf(lo, sizeof(lo), "%lld", n);
		cfg_fmt_hostport(hostbuf, lo, addr, sizeof(addr));
		s = xstrdup(addr);
		break;
	case CFG_T_BOOL:
		if ((b = cfg_bool_parse(v)) == -1)
			return cfg_bad(why, whylen, k, "bad boolean \"%s\" (use "
			    "yes or no)", q);
		*(bool *)ptr = b == 1;
		return 0;
	case CFG_T_INT:
		if (!str_to_ll(v, k->min, k->max, &n))
			return cfg_bad(why, whylen, k, "bad integer \"%s\" "
			    "(%lld..%lld)", q, k->min, k->max);
		*(int *)ptr = (int)n;
		return 0;
	case CFG_T_WORKERS:
		if (strcmp(v, "auto") == 0)
			n = 0;
		else if (!str_to_ll(v, k->min, k->max, &n))
			return cfg_bad(why, whylen, k, "bad value \"%s\" "
			    "(%lld..%lld or auto)", q, k->min, k->max);
		*(int *)ptr = (int)n;
		return 0;
	case CFG_T_DUR:
		if ((n = str_duration_ms(v)) < 0)
			return cfg_bad(why, whylen, k, "bad duration \"%s\" "
			    "(use e.g. 60s, 5m)", q);
		if (n < k->min || n > k->max) {
			cfg_fmt_dur(k->min, lo, sizeof(lo));
			cfg_fmt_dur(k->max, hi, sizeof(hi));
			return cfg_bad(why, whylen, k, "duration \"%s\" out of "
			    "range (%s..%s)", q, lo, hi);
		}
		*(long long *)ptr = n;
		return 0;
	case CFG_T_SIZE:
		if ((n = str_size_bytes(v)) < 0)
			return cfg_bad(why, whylen, k, "bad size \"%s\" (use "
			    "e.g. 8k, 1M)", q);
		if (n < k->min || n > k->max) {
			cfg_fmt_size(k->min, lo, sizeof(lo));
			cfg_fmt_size(k->max, hi, sizeof(hi));
			return cfg_bad(why, whylen, k, "size \"%s\" out of "
			    "range (%s..%s)", q, lo, hi);
		}
		*(size_t *)ptr = (size_t)n;
		return 0;
	case CFG_T_LOGLEVEL:
		if ((b = log_level_parse(v)) == -1)
			return cfg_bad(why, whylen, k, "bad log level \"%s\" "
			    "(use error, warn, info or debug)", q);
		*(int *)ptr = b;
		return 0;
	case CFG_T_LOGDEST:
		if (strcmp(v, "stderr") != 0 && strcmp(v, "syslog") != 0)
			return cfg_bad(why, whylen, k, "bad value \"%s\" (use "
			    "stderr or syslog)", q);
		*(bool *)ptr = strcmp(v, "syslog") == 0;
		return 0;
	case CFG_T_TLSVER:
		if (strcmp(v, "1.2") != 0 && strcmp(v, "1.3") != 0)
			return cfg_bad(why, whylen, k, "bad TLS version \"%s\" "
			    "(use 1.2 or 1.3)", q);
		*(int *)ptr = strcmp(v, "1.2") == 0 ? 12 : 13;
		return 0;
	case CFG_T_LISTEN:
		return cfg_listen_parse(k, v, ptr, why, whylen);
	}
	free(*(char **)ptr);
	*(char **)ptr = s;
	return 0;
}

/* Checks a "[name]" line, so that an unknown section without keys, which
 * inih never reports to the handler, is still an error. */
static void
cfg_section_line(struct cfg_parse *p, const char *s)
{
	const char	*e;
	char		 name[64], q[CFG_MSG_MAX / 2];
	size_t		 len;

	if ((e = strchr(s, ']')) == NULL) {
		cfg_perr(p, "syntax error: missing \"]\"");
		return;
	}
	if (e[1] != '\0') {
		cfg_perr(p, "syntax error: text after \"]\"");
		return;
	}
	len = (size_t)(e - s - 1);
	if (cfg_section_is_known(s + 1, len))
		return;
	snprintf(name, sizeof(name), "%.*s", (int)len, s + 1);
	cfg_perr(p, "unknown section [%s]", cfg_quote(name, q, sizeof(q)));
}

/*
 * inih reader: returns one logical line per call, so inih's line numbers
 * stay ours. It strips "#" and ";" comments that follow a blank (Debian's
 * inih only knows inline ";"), and leading blanks, so that inih never takes
 * an indented line as a multi-line continuation of the previous key. inih
 * cuts lines at its fixed 200-byte buffer and reads the rest as a new line;
 * a longer "key = value" reaches inih as "key=" and the handler takes the
 * value from p->longval instead.
 */
static char *
cfg_read_cb(char *str, int num, void *arg)
{
	struct cfg_parse	*p = arg;
	ssize_t			 n;
	size_t			 len, klen;
	char			*s, *e;

	free(p->longval);
	p->longval = NULL;
	errno = 0;
	if ((n = getline(&p->buf, &p->bufsz, p->fp)) == -1) {
		if (ferror(p->fp)) {
			p->lineno++;
			cfg_perr(p, "read error: %s", strerror(errno));
		}
		return NULL;
	}
	p->lineno++;
	s = p->buf;
	if (memchr(s, '\0', (size_t)n) != NULL) {
		cfg_perr(p, "NUL byte in line");
		return NULL;
	}
	if (p->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '#' || *s == ';')
		*s = '\0';
	for (e = s; *e != '\0'; e++) {
		if ((*e == '#' || *e == ';') && e > s &&
		    isspace((unsigned char)e[-1])) {
			*e = '\0';
			break;
		}
	}
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	if (*s == '[')
		cfg_section_line(p, s);

	if (num < 4)
		return NULL;
	if (len + 2 <= (size_t)num) {
		memcpy(str, s, len);
		memcpy(str + len, "\n", 2);
		return str;
	}
	klen = strcspn(s, "=:");
	if (*s == '[' || s[klen] == '\0' || klen + 3 > (size_t)num) {
		cfg_perr(p, "syntax error (expected [section] or key = value)");
		memcpy(str, "\n", 2);
		return str;
	}
	e = s + klen + 1;
	while (isspace((unsigned char)*e))
		e++;
	p->longval = xstrdup(e);
	memcpy(str, s, klen);
	memcpy(str + klen, "=\n", 3);
	return str;
}

static int
cfg_ini_cb(void *arg, const char *section, const char *name,
    const char *value)
{
	struct cfg_parse	*p = arg;
	const struct cfg_key	*k;
	char			 why[CFG_MSG_MAX], qs[128], qn[128];

	if (p->longval != NULL)
		value = p->longval;
	cfg_quote(section, qs, sizeof(qs));
	cfg_quote(name, qn, sizeof(qn));
	if (*section == '\0') {
		cfg_perr(p, "key \"%s\" outside a section (add e.g. "
		    "[postern] above it)", qn);
		return 0;
	}
	if (!cfg_section_is_known(section, strlen(section))) {
		cfg_perr(p, "unknown section [%s]", qs);
		return 0;
	}
	if ((k = cfg_key_find(section, name)) == NULL) {
		cfg_perr(p, "[%s] %s: unknown key", qs, qn);
		return 0;
	}
	if (cfg_set(p->cfg, k, value, why, sizeof(why)) == -1) {
		cfg_perr(p, "%s", why);
		return 0;
	}
	return 1;
}

static int
cfg_parse_file(struct cfg *cfg, const char *file, char *err, size_t errlen)
{
	struct cfg_parse	p;
	struct stat		st;
	int			rc, ret = -1;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = file;
	if ((p.fp = fopen(file, "re")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", file,
		    strerror(errno));
		return -1;
	}
	/* fopen() takes a directory; reading it would fail with EISDIR. */
	if (fstat(fileno(p.fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: cannot open: %s", file,
		    strerror(EISDIR));
		fclose(p.fp);
		return -1;
	}
	rc = ini_parse_stream(cfg_read_cb, &p, cfg_ini_cb, &p);
	if (rc > 0 && (p.err_line == 0 || rc < p.err_line))
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] "
		    "or key = value)", file, rc);
	else if (p.err_line != 0)
		snprintf(err, errlen, "%s:%d: %s", file, p.err_line, p.err);
	else if (rc < 0)
		snprintf(err, errlen, "%s: cannot parse (inih error %d)", file,
		    rc);
	else
		ret = 0;
	fclose(p.fp);
	free(p.buf);
	free(p.longval);
	return ret;
}

static int
cfg_confd_filter(const struct dirent *d)
{
	size_t len = strlen(d->d_name);

	return d->d_name[0] != '.' && len > 5 &&
	    strcmp(d->d_name + len - 5, ".conf") == 0;
}

/* strcmp, not alphasort's strcoll: the order must not depend on locale. */
static int
cfg_confd_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
cfg_parse_confd(struct cfg *cfg, const char *path, char *err, size_t errlen)
{
	struct dirent	**ents;
	char		 *tmp, *dir, *file;
	int		  n, ret = 0;

	tmp = xstrdup(path);
	dir = xasprintf("%s/conf.d", dirname(tmp));
	free(tmp);
	if ((n = scandir(dir, &ents, cfg_confd_filter, cfg_confd_cmp)) == -1) {
		if (errno != ENOENT && errno != ENOTDIR) {
			snprintf(err, errlen, "%s: cannot open: %s", dir,
			    strerror(errno));
			ret = -1;
		}
		free(dir);
		return ret;
	}
	for (int i = 0; i < n; i++) {
		if (ret == 0) {
			file = xasprintf("%s/%s", dir, ents[i]->d_name);
			ret = cfg_parse_file(cfg, file, err, errlen);
			free(file);
		}
		free(ents[i]);
	}
	free(ents);
	free(dir);
	return ret;
}

static bool
cfg_listen_clash(const struct cfg_proto *a, const struct cfg_proto *b,
    char *addr, size_t addrlen)
{
	for (int i = 0; i < a->nlisten; i++)
		for (int j = 0; j < b->nlisten; j++)
			if (strcmp(a->listen[i].host, b->listen[j].host) == 0 &&
			    strcmp(a->listen[i].port, b->listen[j].port) == 0) {
				cfg_fmt_hostport(a->listen[i].host,
				    a->listen[i].port, addr, addrlen);
				return true;
			}
	return false;
}

/* Rules that involve more than one key, once every file is read. */
static int
cfg_check(const struct cfg *cfg, char *err, size_t errlen)
{
	char		 addr[96];
	const char	*p;
	size_t		 len;

	if (cfg_listen_clash(&cfg->imap, &cfg->smtp, addr, sizeof(addr))) {
		snprintf(err, errlen, "%s: %s is both an [imap] and an [smtp] "
		    "listener", cfg->path, addr);
		return -1;
	}
	for (int i = 0; cfg->admin_listen != NULL && i < 2; i++) {
		const struct cfg_proto *pr = i == 0 ? &cfg->imap : &cfg->smtp;

		for (int j = 0; j < pr->nlisten; j++) {
			cfg_fmt_hostport(pr->listen[j].host,
			    pr->listen[j].port, addr, sizeof(addr));
			if (strcmp(addr, cfg->admin_listen) == 0) {
				snprintf(err, errlen, "%s: [admin] listen %s is "
				    "also an [%s] listener", cfg->path, addr,
				    i == 0 ? "imap" : "smtp");
				return -1;
			}
		}
	}
	if (cfg->oauth_backoff_min_ms > cfg->oauth_backoff_max_ms) {
		snprintf(err, errlen, "%s: [oauth2] backoff_min is larger than "
		    "backoff_max", cfg->path);
		return -1;
	}
	if (cfg->secret_file == NULL || cfg->old_secret_files == NULL)
		return 0;
	len = strlen(cfg->secret_file);
	for (p = cfg->old_secret_files; p != NULL; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (strncmp(p, cfg->secret_file, len) == 0 &&
		    (p[len] == ',' || p[len] == '\0')) {
			snprintf(err, errlen, "%s: [postern] old_secret_files "
			    "lists secret_file %s", cfg->path,
			    cfg->secret_file);
			return -1;
		}
	}
	return 0;
}

struct cfg *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg	*cfg;
	char		 why[CFG_MSG_MAX], dummy[CFG_MSG_MAX];

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	*err = '\0';
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (cfg_set(cfg, &cfg_keys[i], cfg_keys[i].def, why,
		    sizeof(why)) == -1)
			fatalx("cfg: bad built-in default: %s", why);
	if (cfg_parse_file(cfg, path, err, errlen) == -1 ||
	    cfg_parse_confd(cfg, path, err, errlen) == -1 ||
	    cfg_check(cfg, err, errlen) == -1) {
		cfg_free(&cfg);
		return NULL;
	}
	return cfg;
}

static void
cfg_dump_listen(const struct cfg_proto *pr, FILE *fp)
{
	char addr[96];

	for (int i = 0; i < pr->nlisten; i++) {
		cfg_fmt_hostport(pr->listen[i].host, pr->listen[i].port, addr,
		    sizeof(addr));
		fprintf(fp, "%s %s %s%s", i == 0 ? "" : ",", addr,
		    pr->listen[i].tls == CFG_TLS_IMPLICIT ? "tls" : "starttls",
		    pr->listen[i].proxy_protocol ? " proxy" : "");
	}
}

void
cfg_dump(const struct cfg *cfg, FILE *fp)
{
	const struct cfg_key	*k;
	const char		*sec = NULL, *s;
	const void		*ptr;
	char			 buf[64];

	fprintf(fp, "# postern effective configuration (%s and its conf.d)\n",
	    cfg->path);
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		k = &cfg_keys[i];
		ptr = cfg_cptr(cfg, k);
		if (sec == NULL || strcmp(sec, k->section) != 0) {
			fprintf(fp, "\n[%s]\n", k->section);
			sec = k->section;
		}
		/* Only the secret's path is configuration; never its value. */
		if (k->off == OFF(secret_file) && cfg->secret_file == NULL)
			fprintf(fp, getenv(CFG_SECRET_ENV) != NULL ?
			    "# secret from environment " CFG_SECRET_ENV
			    " (hidden)\n" :
			    "# no secret: set secret_file or " CFG_SECRET_ENV
			    "\n");
		fprintf(fp, "%s =", k->name);
		buf[0] = '\0';
		switch (k->type) {
		case CFG_T_REDIS_URL: {
			char url[512];

			if ((s = *(char *const *)ptr) != NULL)
				fprintf(fp, " %s", cfg_redis_url_masked(s, url,
				    sizeof(url)));
			break;
		}
		case CFG_T_STR:
		case CFG_T_PATH:
		case CFG_T_PATHS:
		case CFG_T_PREFIX:
		case CFG_T_HOSTPORT:
			if ((s = *(char *const *)ptr) != NULL)
				fprintf(fp, " %s", s);
			break;
		case CFG_T_BOOL:
			snprintf(buf, sizeof(buf), "%s",
			    *(const bool *)ptr ? "yes" : "no");
			break;
		case CFG_T_INT:
			snprintf(buf, sizeof(buf), "%d", *(const int *)ptr);
			break;
		case CFG_T_WORKERS:
			if (*(const int *)ptr == 0)
				snprintf(buf, sizeof(buf), "auto");
			else
				snprintf(buf, sizeof(buf), "%d",
				    *(const int *)ptr);
			break;
		case CFG_T_DUR:
			cfg_fmt_dur(*(const long long *)ptr, buf, sizeof(buf));
			break;
		case CFG_T_SIZE:
			cfg_fmt_size((long long)*(const size_t *)ptr, buf,
			    sizeof(buf));
			break;
		case CFG_T_LOGLEVEL:
			snprintf(buf, sizeof(buf), "%s",
			    log_level_name(*(const int *)ptr));
			break;
		case CFG_T_LOGDEST:
			snprintf(buf, sizeof(buf), "%s",
			    *(const bool *)ptr ? "syslog" : "stderr");
			break;
		case CFG_T_TLSVER:
			snprintf(buf, sizeof(buf), "1.%d",
			    *(const int *)ptr - 10);
			break;
		case CFG_T_LISTEN:
			cfg_dump_listen(ptr, fp);
			break;
		}
		fprintf(fp, "%s%s\n", buf[0] != '\0' ? " " : "", buf);
	}
}

void
cfg_free(struct cfg **cfgp)
{
	struct cfg *cfg = *cfgp;

	if (cfg == NULL)
		return;
	*cfgp = NULL;
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (cfg_is_string(&cfg_keys[i]))
			free(*(char **)cfg_ptr(cfg, &cfg_keys[i]));
	free(cfg->path);
	free(cfg);
}
