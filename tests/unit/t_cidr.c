/*
 * common/cidr.c: parsing (strict), canonical formatting, and matching at
 * range boundaries, across IPv4 and IPv4-mapped IPv6.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "common/cidr.h"
#include "tests/unit/test.h"

TEST(cidr_parse_ok)
{
	static const struct {
		const char	*in;
		int		 family;
		int		 prefix;
		const char	*canon;
	} t[] = {
		{ "192.0.2.0/24", AF_INET, 24, "192.0.2.0/24" },
		{ "10.0.0.0/8", AF_INET, 8, "10.0.0.0/8" },
		{ "10.0.0.0/31", AF_INET, 31, "10.0.0.0/31" },
		{ "0.0.0.0/0", AF_INET, 0, "0.0.0.0/0" },
		{ "1.2.3.4", AF_INET, 32, "1.2.3.4/32" },
		{ "1.2.3.4/32", AF_INET, 32, "1.2.3.4/32" },
		{ "255.255.255.255/32", AF_INET, 32, "255.255.255.255/32" },
		{ "2001:db8::/32", AF_INET6, 32, "2001:db8::/32" },
		{ "2001:DB8:0:0::/64", AF_INET6, 64, "2001:db8::/64" },
		{ "2001:0db8:0000:0000:0000:0000:0000:0000/48", AF_INET6, 48,
		    "2001:db8::/48" },
		{ "::/0", AF_INET6, 0, "::/0" },
		{ "::1", AF_INET6, 128, "::1/128" },
		{ "::1/128", AF_INET6, 128, "::1/128" },
		{ "fe80::/10", AF_INET6, 10, "fe80::/10" },
		{ "::ffff:10.0.0.0/104", AF_INET6, 104, "::ffff:10.0.0.0/104" },
	};
	struct cidr	c;
	char		out[64];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK_INT(cidr_parse(t[i].in, &c), ==, 0);
		CHECK_INT(c.family, ==, t[i].family);
		CHECK_INT(c.prefix, ==, t[i].prefix);
		cidr_format(&c, out, sizeof(out));
		CHECK_STR(out, t[i].canon);
		/* The canonical text parses back to the same range. */
		{
			struct cidr c2;

			CHECK_INT(cidr_parse(out, &c2), ==, 0);
			CHECK(c2.family == c.family && c2.prefix == c.prefix &&
			    memcmp(c2.addr, c.addr, sizeof(c.addr)) == 0);
		}
	}
}

TEST(cidr_parse_bad)
{
	static const char *const t[] = {
		"10.0.0.1/8",		/* host bits set */
		"1.2.3.4/0",
		"2001:db8::1/32",
		"1.2.3.4/33",
		"::1/129",
		"::/1000",
		"abc",
		"",
		"/8",
		"1.2.3.4/",
		"1.2.3.4/ 8",
		" 1.2.3.4",
		"1.2.3.4 ",
		"10.0.0.0/8 ",
		"10.0.0.0/8\n",
		"10.0.0.0/8x",
		"10.0.0.0/-8",
		"10.0.0.0/+8",
		"10.0.0.0/08",		/* leading zero */
		"10.0.0.0/0x8",
		"10.0.0.0//8",
		"10.0.0.0/8/8",
		"1.2.3",
		"1.2.3.4.5",
		"256.0.0.0",
		"01.2.3.4",
		"fe80::1%eth0",
		"2001:db8:::/48",
		"2001:db8::/32::",
		"10.0.0.0/4294967304",	/* 2^32 + 8 */
		"0000:0000:0000:0000:0000:0000:0000:0000:0000/0",
	};
	struct cidr c;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = cidr_parse(t[i], &c);

		if (rc != -1)
			fprintf(stderr, "  accepted \"%s\"\n", t[i]);
		CHECK_INT(rc, ==, -1);
	}
	CHECK_INT(cidr_parse(NULL, &c), ==, -1);
}

TEST(cidr_match_str)
{
	static const struct {
		const char	*range;
		const char	*ip;
		bool		 match;
	} t[] = {
		{ "10.0.0.0/8", "10.0.0.0", true },
		{ "10.0.0.0/8", "10.255.255.255", true },
		{ "10.0.0.0/8", "9.255.255.255", false },
		{ "10.0.0.0/8", "11.0.0.0", false },
		{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
		{ "10.0.0.0/8", "::ffff:10.255.255.255", true },
		{ "10.0.0.0/8", "::ffff:11.0.0.0", false },
		{ "10.0.0.0/8", "::10.1.2.3", false },	/* "compatible" form */
		{ "10.0.0.0/8", "::ffff:0:a01:203", false }, /* SIIT form */
		{ "10.0.0.0/8", "0:0:0:0:0:fffe:a01:203", false },
		{ "192.0.2.128/25", "192.0.2.127", false },
		{ "192.0.2.128/25", "192.0.2.128", true },
		{ "192.0.2.128/25", "192.0.2.255", true },
		{ "192.0.2.128/25", "192.0.3.0", false },
		{ "1.2.3.4", "1.2.3.4", true },
		{ "1.2.3.4/32", "1.2.3.5", false },
		{ "1.2.3.4/32", "1.2.3.3", false },
		{ "1.2.3.4/32", "::ffff:1.2.3.4", true },
		{ "0.0.0.0/0", "0.0.0.0", true },
		{ "0.0.0.0/0", "255.255.255.255", true },
		{ "0.0.0.0/0", "::ffff:1.2.3.4", true },
		{ "0.0.0.0/0", "::1", false },
		{ "::/0", "::", true },
		{ "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true },
		{ "::/0", "1.2.3.4", true },	/* as ::ffff:1.2.3.4 */
		{ "2001:db8::/32", "2001:db8::", true },
		{ "2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
		    true },
		{ "2001:db8::/32", "2001:db9::", false },
		{ "2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
		    false },
		{ "2001:db8::/32", "1.2.3.4", false },
		{ "::1/128", "::1", true },
		{ "::1/128", "::2", false },
		{ "::1/128", "::", false },
		{ "::1", "127.0.0.1", false },
		{ "fe80::/10", "fe80::1", true },
		{ "fe80::/10", "febf:ffff::1", true },
		{ "fe80::/10", "fec0::", false },
		{ "fe80::/10", "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		    false },
		{ "::ffff:10.0.0.0/104", "10.1.2.3", true },
		{ "::ffff:10.0.0.0/104", "::ffff:10.9.9.9", true },
		{ "::ffff:10.0.0.0/104", "11.0.0.0", false },
		{ "10.0.0.0/8", "10.0.0.1 ", false },
		{ "10.0.0.0/8", " 10.0.0.1", false },
		{ "10.0.0.0/8", "10.0.0.1/32", false },
		{ "10.0.0.0/8", "", false },
		{ "0.0.0.0/0", "abc", false },
	};
	struct cidr c;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool m;

		CHECK_INT(cidr_parse(t[i].range, &c), ==, 0);
		m = cidr_match_str(&c, t[i].ip);
		if (m != t[i].match)
			fprintf(stderr, "  %s ~ %s\n", t[i].range, t[i].ip);
		CHECK_INT(m, ==, t[i].match);
	}
	CHECK(!cidr_match_str(&c, NULL));
}

TEST(cidr_match_sa)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
	struct sockaddr_un	sun;
	struct cidr		v4, v6;

	CHECK_INT(cidr_parse("192.0.2.0/24", &v4), ==, 0);
	CHECK_INT(cidr_parse("2001:db8::/32", &v6), ==, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(2993);
	CHECK_INT(inet_pton(AF_INET, "192.0.2.77", &sin.sin_addr), ==, 1);
	CHECK(cidr_match_sa(&v4, (struct sockaddr *)&sin));
	CHECK(!cidr_match_sa(&v6, (struct sockaddr *)&sin));
	CHECK_INT(inet_pton(AF_INET, "192.0.3.77", &sin.sin_addr), ==, 1);
	CHECK(!cidr_match_sa(&v4, (struct sockaddr *)&sin));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	CHECK_INT(inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr),
	    ==, 1);
	CHECK(cidr_match_sa(&v4, (struct sockaddr *)&sin6));
	CHECK(!cidr_match_sa(&v6, (struct sockaddr *)&sin6));
	CHECK_INT(inet_pton(AF_INET6, "2001:db8::5", &sin6.sin6_addr), ==, 1);
	CHECK(cidr_match_sa(&v6, (struct sockaddr *)&sin6));
	CHECK(!cidr_match_sa(&v4, (struct sockaddr *)&sin6));

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	CHECK(!cidr_match_sa(&v4, (struct sockaddr *)&sun));
	CHECK(!cidr_match_sa(&v4, NULL));
}

TEST(cidr_format_small)
{
	struct cidr	c;
	char		out[16];

	CHECK_INT(cidr_parse("192.0.2.0/24", &c), ==, 0);
	memset(out, 'X', sizeof(out));
	cidr_format(&c, out, 8);
	CHECK_STR(out, "192.0.2");
	CHECK_INT(out[8], ==, 'X');
	out[0] = 'Q';
	cidr_format(&c, out, 0);
	CHECK_INT(out[0], ==, 'Q');
}
