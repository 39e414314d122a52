/*
 * Daemon configuration: an INI file read with inih, then conf.d/NAME.conf files
 * beside it in lexical order (later files override earlier values). Every
 * key has a default, a type and limits; an unknown section or key or a bad
 * value is an error reported as "file:line: message".
 */
#ifndef COMMON_CFG_H
#define COMMON_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CFG_LISTEN_MAX	8
#define CFG_DEFAULT_PATH "/etc/postern/postern.conf"

enum cfg_tls_mode {
	CFG_TLS_IMPLICIT,	/* "tls": handshake on accept */
	CFG_TLS_STARTTLS,	/* "starttls": plaintext, STARTTLS upgrades */
};

struct cfg_listen {
	char			host[64];	/* "0.0.0.0", "::", "127.0.0.1" */
	char			port[8];
	enum cfg_tls_mode	tls;
	bool			proxy_protocol;	/* "proxy" flag: HAProxy v1/v2 */
};

struct cfg_proto {			/* [imap] and [smtp] share this shape */
	struct cfg_listen	listen[CFG_LISTEN_MAX];
	int			nlisten;
	long long		login_timeout_ms;	/* accept -> login */
	long long		idle_timeout_ms;	/* after login (>= 30 min) */
	long long		command_timeout_ms;	/* smtp: per command */
	size_t			line_max;		/* command line bytes */
	size_t			literal_max;		/* imap: pre-login literal */
	int			auth_failures_max;	/* then BYE / 421 */
	int			bad_commands_max;
	long long		failure_delay_ms;	/* after a failed login */
	bool			allow_plaintext_auth;	/* before STARTTLS */
	int			max_connections;	/* per account, default */
	size_t			message_max;		/* smtp: SIZE */
	bool			sent_copy;		/* smtp: APPEND to Sent */
};

struct cfg {
	char		*path;			/* main file */

	/* [postern] */
	char		*secret_file;		/* NULL: env POSTERN_SECRET */
	char		*old_secret_files;	/* comma list, decrypt only */
	int		 log_level;		/* LOG_LVL_* */
	bool		 log_syslog;		/* log = stderr|syslog */
	int		 workers;		/* 0 = auto (one per core) */
	char		*pid_file;		/* NULL: none */
	long long	 drain_timeout_ms;	/* SIGTERM: sessions may finish */
	bool		 revoke_closes_sessions;

	/* [redis] */
	char		*redis_url;		/* redis://h:p/db or unix:/path */
	char		*redis_prefix;
	long long	 redis_timeout_ms;

	/* [admin] */
	char		*admin_socket;
	char		*admin_listen;		/* "127.0.0.1:3000" or NULL */
	size_t		 admin_body_max;

	/* [tls] */
	char		*tls_cert;
	char		*tls_key;
	char		*tls_ciphers;		/* TLS 1.2 cipher list */
	char		*tls_ciphersuites;	/* TLS 1.3 suites */
	int		 tls_min_version;	/* 12 or 13 */
	char		*tls_ca_file;		/* upstream verification; NULL: system */

	/* [upstream] */
	long long	 up_connect_timeout_ms;
	long long	 up_login_timeout_ms;	/* connect -> authenticated */
	char		*up_dns_server;		/* "127.0.0.1:5353" or NULL: resolv.conf */

	/* [autoconfig] (discover/): URL templates take {domain} and {email};
	 * NULL disables that source. */
	char		*ac_dns_server;		/* NULL: up_dns_server, resolv.conf */
	char		*ac_autoconfig_url;
	char		*ac_wellknown_url;
	char		*ac_ispdb_url;
	long long	 ac_timeout_ms;		/* whole lookup */
	long long	 ac_dns_timeout_ms;	/* one DNS question */
	long long	 ac_http_timeout_ms;	/* one XML fetch */
	long long	 ac_probe_timeout_ms;	/* one TCP+TLS probe */
	size_t		 ac_xml_max;

	/* [verify] */
	long long	 verify_timeout_ms;	/* one protocol check */

	struct cfg_proto imap;
	struct cfg_proto smtp;

	/* [oauth2] (auth/auth_oauth.c): token URLs of the presets may be
	 * redirected (tests aim them at a loopback fixture); "{tenant}" is
	 * replaced by the application's tenant. */
	long long	 oauth_refresh_margin_ms;	/* refresh this early */
	long long	 oauth_token_timeout_ms;	/* one token request */
	long long	 oauth_backoff_min_ms;		/* after a failed refresh */
	long long	 oauth_backoff_max_ms;
	char		*oauth_gmail_token_url;
	char		*oauth_outlook_token_url;
};

/* Fills defaults, then reads path and its conf.d. On error returns NULL and
 * writes "file:line: message" into err. */
struct cfg *cfg_load(const char *path, char *err, size_t errlen);
/* Prints the effective configuration in INI form, secrets masked. */
void	 cfg_dump(const struct cfg *, FILE *);
void	 cfg_free(struct cfg **);

#endif
