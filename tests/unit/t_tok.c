/*
 * tokenstore/tok.c without a Redis: the URL's database range, and that a
 * host name never reaches the blocking getaddrinfo() (hiredis would call it
 * on every connect, inside the event loop): tok.c looks names up with
 * evdns and hands hiredis an address. getaddrinfo is wrapped here to count
 * the lookups of names; every call still reaches the C library's.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "tests/unit/test.h"
#include "tokenstore/tok.h"


static int	t_names;	/* lookups of a name, not an address */
static int	t_lookups;	/* all lookups */

static bool
t_is_addr(const char *node)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, node, buf) == 1 ||
	    inet_pton(AF_INET6, node, buf) == 1;
}

/* Interposes on the C library's getaddrinfo for the whole unit binary,
 * hiredis included; it only counts. */
int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static int (*real)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	if (node != NULL) {
		t_lookups++;
		if (!t_is_addr(node))
			t_names++;
	}
	return real(node, service, hints, res);
}

/* Runs base for ms milliseconds. */
static void
t_run(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

TEST(tok_no_blocking_lookup)
{
	struct event_base	*base = event_base_new();
	struct tok		*t;
	char			 err[256];
	int			 level = LOG_LVL_DEBUG;

	/* Quiet: tok_new logs the address it resolved. */
	while (level > LOG_LVL_ERROR && !log_enabled(level))
		level--;
	log_set_level(LOG_LVL_WARN);
	/* Port 1 refuses: the link retries every 50, 100, 200 ms, each time
	 * looking "localhost" up with evdns (its hosts file: no network). */
	t_names = t_lookups = 0;
	t = tok_new(base, "redis://localhost:1/0", "t:", 500, err,
	    sizeof(err));
	CHECK(t != NULL);
	t_run(base, 500);
	CHECK(t != NULL && !tok_is_up(t));
	CHECK_INT(t_lookups, >=, 3);	/* hiredis, by address: reconnects */
	CHECK_INT(t_names, ==, 0);	/* no blocking lookup of the name */
	tok_free(&t);

	/* An address is used as it is. */
	t_names = 0;
	t = tok_new(base, "redis://127.0.0.1:1/0", "t:", 500, err,
	    sizeof(err));
	CHECK(t != NULL);
	t_run(base, 100);
	CHECK_INT(t_names, ==, 0);
	tok_free(&t);
	event_base_free(base);
	log_set_level(level);
}

/* The same range as the config check (t_cfg.c cfg_redis_db_limit). */
TEST(tok_db_limit)
{
	struct event_base	*base = event_base_new();
	struct tok		*t;
	char			 err[256], url[128];

	snprintf(url, sizeof(url), "redis://127.0.0.1:1/%d", TOK_DB_MAX);
	t = tok_new(base, url, "t:", 500, err, sizeof(err));
	CHECK(t != NULL);
	tok_free(&t);
	snprintf(url, sizeof(url), "unix:/nonexistent.sock?db=%d", TOK_DB_MAX);
	t = tok_new(base, url, "t:", 500, err, sizeof(err));
	CHECK(t != NULL);
	tok_free(&t);
	snprintf(url, sizeof(url), "redis://127.0.0.1:1/%d", TOK_DB_MAX + 1);
	t = tok_new(base, url, "t:", 500, err, sizeof(err));
	CHECK(t == NULL);
	snprintf(url, sizeof(url), "unix:/x.sock?db=%d", TOK_DB_MAX + 1);
	t = tok_new(base, url, "t:", 500, err, sizeof(err));
	CHECK(t == NULL);
	event_base_free(base);
}
