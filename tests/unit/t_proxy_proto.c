/*
 * proxy/proxy_proto.c: PROXY protocol v1 and v2 headers, good, malformed
 * and over-long. Every case is also given as each of its prefixes, as a
 * session sees it arrive: a prefix shorter than the header must say "need
 * more", never more, and bytes after the header (a TLS ClientHello) must
 * never be counted in.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy/proxy_proto.h"
#include "tests/unit/test.h"

#define B(s)	(const uint8_t *)(s), sizeof(s) - 1
#define V2SIG	"\r\n\r\n\0\r\nQUIT\n"
#define HELLO	"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"	/* TLS */

/* A complete header of hlen bytes at the start of buf[0..n). ip NULL: the
 * socket's address is kept. */
static void
check_ok(const uint8_t *buf, size_t n, size_t hlen, int version,
    const char *ip, int port)
{
	struct proxy_proto pp;

	for (size_t k = 0; k <= n; k++) {
		int rc = proxy_proto_parse(buf, k, &pp);

		if (k < hlen) {
			CHECK_INT(rc, ==, 0);
			continue;
		}
		CHECK_INT(rc, ==, 1);
		if (rc != 1)
			continue;
		CHECK_INT(pp.len, ==, hlen);
		CHECK_INT(pp.version, ==, version);
		CHECK(pp.has_addr == (ip != NULL));
		if (ip != NULL) {
			CHECK_STR(pp.ip, ip);
			CHECK_INT(pp.port, ==, port);
		}
	}
}

/* Malformed: once a prefix is refused, every longer one is too, and the
 * whole input is. */
static void
check_bad(const uint8_t *buf, size_t n)
{
	struct proxy_proto	pp;
	bool			refused = false;

	for (size_t k = 0; k <= n; k++) {
		int rc = proxy_proto_parse(buf, k, &pp);

		if (refused)
			CHECK_INT(rc, ==, -1);
		else
			CHECK(rc == 0 || rc == -1);
		if (rc == -1) {
			refused = true;
			CHECK(pp.why != NULL && pp.why[0] != '\0');
		}
		if (k == n && !refused) {
			char m[160];

			snprintf(m, sizeof(m), "not refused: %.*s", (int)n,
			    (const char *)buf);
			test_fail(__FILE__, __LINE__, m);
		}
	}
}

TEST(proxy_proto_empty)
{
	struct proxy_proto pp;

	CHECK_INT(proxy_proto_parse((const uint8_t *)"", 0, &pp), ==, 0);
}

TEST(proxy_proto_v1_ok)
{
	static const struct {
		const char	*in;
		size_t		 hlen;	/* 0: all of in */
		const char	*ip;
		int		 port;
	} t[] = {
		{ "PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\r\n", 0,
		    "203.0.113.7", 51234 },
		{ "PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\r\n" HELLO, 44,
		    "203.0.113.7", 51234 },
		{ "PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\r\na1 LOGIN "
		    "x y\r\n", 44, "203.0.113.7", 51234 },
		{ "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 0,
		    "0.0.0.0", 0 },
		{ "PROXY TCP6 2001:db8::1 2001:db8::2 4000 143\r\n", 0,
		    "2001:db8::1", 4000 },
		{ "PROXY TCP6 2001:DB8:0:0::7 ::1 4000 143\r\n", 0,
		    "2001:db8::7", 4000 },
		{ "PROXY TCP6 ::ffff:203.0.113.9 ::1 1 2\r\n", 0,
		    "203.0.113.9", 1 },
		/* The worst case of spec 2.1: 104 bytes. */
		{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		    0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535 },
		{ "PROXY UNKNOWN\r\n", 0, NULL, 0 },
		{ "PROXY UNKNOWN\r\n" HELLO, 15, NULL, 0 },
		{ "PROXY UNKNOWN 203.0.113.7 192.0.2.1 1 2\r\n", 0, NULL, 0 },
		{ "PROXY UNKNOWN  whatever  \r\n", 0, NULL, 0 },
		/* Exactly 107 bytes, the v1 limit. */
		{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		    0, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = strlen(t[i].in);

		check_ok((const uint8_t *)t[i].in, n,
		    t[i].hlen ? t[i].hlen : n, 1, t[i].ip, t[i].port);
	}
	CHECK_INT(strlen(t[12].in), ==, PROXY_PROTO_V1_MAX);
}

TEST(proxy_proto_v1_bad)
{
	static const char *const t[] = {
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\r\r\n",
		"PROXY TCP4 203.0.113.7\r192.0.2.1 51234 993\r\n",
		"PROXY TCP4  203.0.113.7 192.0.2.1 51234 993\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234  993\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234 \r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234 993 \r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 51234 993 x\r\n",
		"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",
		"PROXY TCP4 203.0.113.7 2001:db8::1 1 2\r\n",
		"PROXY TCP6 203.0.113.7 ::1 1 2\r\n",
		"PROXY TCP4 256.0.0.1 192.0.2.1 1 2\r\n",
		"PROXY TCP4 203.0.113 192.0.2.1 1 2\r\n",
		"PROXY TCP4 example.net 192.0.2.1 1 2\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 65536 993\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 1 99999\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 -1 993\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 +1 993\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 0993 993\r\n",
		"PROXY TCP4 203.0.113.7 192.0.2.1 123456 993\r\n",
		"PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n",
		"PROXY tcp4 203.0.113.7 192.0.2.1 1 2\r\n",
		"PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY TCP4\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"PROXYTCP4 203.0.113.7 192.0.2.1 1 2\r\n",
		"proxy TCP4 203.0.113.7 192.0.2.1 1 2\r\n",
		" PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n",
		"PROXY TCP4 203.0.113.7\t192.0.2.1 1 2\r\n",
		"PROXY UNKNOWN \x7f\r\n",
		"PROXY UNKNOWN \xc3\xa9\r\n",
		HELLO,
		"a1 LOGIN user pass\r\n",
		"GET / HTTP/1.0\r\n",
		"EHLO example.net\r\n",
		/* 108 bytes with the CRLF: one too many. */
		"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n",
		/* No line end within 107 bytes. */
		"PROXY UNKNOWN aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		check_bad((const uint8_t *)t[i], strlen(t[i]));
	/* A NUL is not text either. */
	check_bad(B("PROXY UNKNOWN \0\r\n"));
}

/* A v2 header: version/command, family, length field alen, then the
 * address bytes given (the rest of alen is zero), then tail. */
static size_t
v2(uint8_t *out, uint8_t vc, uint8_t fam, size_t alen, const void *addr,
    size_t addrlen, const void *tail, size_t taillen)
{
	memcpy(out, V2SIG, 12);
	out[12] = vc;
	out[13] = fam;
	out[14] = (uint8_t)(alen >> 8);
	out[15] = (uint8_t)alen;
	memset(out + 16, 0, alen);
	memcpy(out + 16, addr, addrlen);
	memcpy(out + 16 + alen, tail, taillen);
	return 16 + alen + taillen;
}

#define A4	"\xcb\x00\x71\x07" "\xc0\x00\x02\x01" "\xc8\x22" "\x03\xe1"
#define A6	"\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"		\
		"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x12\x34" "\x03\xe1"
#define A6M	"\0\0\0\0\0\0\0\0\0\0\xff\xff\xcb\x00\x71\x09"		\
		"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x01" "\x00\x02"
#define TLV	"\x01\x00\x04imap" "\x04\x00\x00"	/* ALPN, NOOP */

TEST(proxy_proto_v2_ok)
{
	uint8_t	b[1024];
	size_t	n;

	n = v2(b, 0x21, 0x11, 12, A4, 12, "", 0);
	check_ok(b, n, 28, 2, "203.0.113.7", 51234);
	n = v2(b, 0x21, 0x11, 12, A4, 12, B(HELLO));
	check_ok(b, n, 28, 2, "203.0.113.7", 51234);
	/* TLVs after the addresses are skipped. */
	n = v2(b, 0x21, 0x11, 12 + 10, A4 TLV, 22, B(HELLO));
	check_ok(b, n, 38, 2, "203.0.113.7", 51234);
	n = v2(b, 0x21, 0x21, 36, A6, 36, B(HELLO));
	check_ok(b, n, 52, 2, "2001:db8::7", 0x1234);
	n = v2(b, 0x21, 0x21, 36, A6M, 36, "", 0);
	check_ok(b, n, 52, 2, "203.0.113.9", 1);
	/* The largest header we take: 536 bytes. */
	n = v2(b, 0x21, 0x11, PROXY_PROTO_MAX - 16, A4, 12, B(HELLO));
	check_ok(b, n, PROXY_PROTO_MAX, 2, "203.0.113.7", 51234);

	/* LOCAL (health check): the block is ignored, family and all. */
	n = v2(b, 0x20, 0x00, 0, "", 0, B(HELLO));
	check_ok(b, n, 16, 2, NULL, 0);
	n = v2(b, 0x20, 0x11, 12, A4, 12, B(HELLO));
	check_ok(b, n, 28, 2, NULL, 0);
	n = v2(b, 0x20, 0xff, 3, "abc", 3, "", 0);
	check_ok(b, n, 19, 2, NULL, 0);
	/* PROXY with AF_UNSPEC or AF_UNIX: keep the socket's address. */
	n = v2(b, 0x21, 0x00, 0, "", 0, B(HELLO));
	check_ok(b, n, 16, 2, NULL, 0);
	n = v2(b, 0x21, 0x00, 5, "xxxxx", 5, "", 0);
	check_ok(b, n, 21, 2, NULL, 0);
	n = v2(b, 0x21, 0x31, 216, "/run/lb.sock", 12, B(HELLO));
	check_ok(b, n, 232, 2, NULL, 0);
}

TEST(proxy_proto_v2_bad)
{
	uint8_t	b[1024];
	size_t	n;

	/* Version other than 2, command other than LOCAL/PROXY. */
	n = v2(b, 0x11, 0x11, 12, A4, 12, "", 0);
	check_bad(b, n);
	n = v2(b, 0x31, 0x11, 12, A4, 12, "", 0);
	check_bad(b, n);
	n = v2(b, 0x22, 0x11, 12, A4, 12, "", 0);
	check_bad(b, n);
	n = v2(b, 0x2f, 0x11, 12, A4, 12, "", 0);
	check_bad(b, n);
	/* Datagram transports, unlisted families. */
	n = v2(b, 0x21, 0x12, 12, A4, 12, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x22, 36, A6, 36, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x32, 216, "", 0, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x10, 12, A4, 12, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x13, 12, A4, 12, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x41, 12, A4, 12, "", 0);
	check_bad(b, n);
	/* Address blocks too short for their family. */
	n = v2(b, 0x21, 0x11, 11, A4, 11, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x21, 35, A6, 35, "", 0);
	check_bad(b, n);
	n = v2(b, 0x21, 0x31, 215, "", 0, "", 0);
	check_bad(b, n);
	/* One byte over the cap, and the largest length field. */
	n = v2(b, 0x21, 0x11, PROXY_PROTO_MAX - 15, A4, 12, "", 0);
	check_bad(b, n);
	memcpy(b, V2SIG "\x21\x11\xff\xff", 16);
	check_bad(b, 16);
	/* Broken signatures. */
	check_bad(B("\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c" A4));
	check_bad(B("\r\n\r\n\r\n\r\n"));
	check_bad(B("\r\nPROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n"));
}

/* A header that is complete in the first call leaves the rest alone, and
 * so does one that is not: what a session consumes is always header. */
TEST(proxy_proto_consume)
{
	static const char	in[] =
	    "PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\r\n" "PROXY UNKNOWN\r\n";
	struct proxy_proto	pp;

	CHECK_INT(proxy_proto_parse((const uint8_t *)in, sizeof(in) - 1, &pp),
	    ==, 1);
	CHECK_INT(pp.len, ==, 44);
	CHECK_INT(proxy_proto_parse((const uint8_t *)in + 44,
	    sizeof(in) - 1 - 44, &pp), ==, 1);
	CHECK_INT(pp.len, ==, 15);
	CHECK(!pp.has_addr);
}
