/*
 * common/str.c: hex, base64 (RFC 4648 vectors and strictness), units,
 * integers, ISO 8601 times, UTF-8 lengths and log sanitizing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "tests/unit/test.h"

TEST(str_hex)
{
	static const struct {
		const char	*bytes;
		size_t		 len;
		const char	*hex;
	} t[] = {
		{ "", 0, "" },
		{ "\x00", 1, "00" },
		{ "\x00\xff\x10\xab", 4, "00ff10ab" },
		{ "\x01\x23\x45\x67\x89\xab\xcd\xef", 8, "0123456789abcdef" },
	};
	char	out[64];
	uint8_t	buf[32];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		str_hex_encode((const uint8_t *)t[i].bytes, t[i].len, out);
		CHECK_STR(out, t[i].hex);
		CHECK_INT(str_hex_decode(t[i].hex, buf, t[i].len), ==, 0);
		CHECK(memcmp(buf, t[i].bytes, t[i].len) == 0);
		CHECK(str_is_hex(t[i].hex, 2 * t[i].len));
	}
	CHECK_INT(str_hex_decode("00FF10AB", buf, 4), ==, 0);
	CHECK(memcmp(buf, "\x00\xff\x10\xab", 4) == 0);
}

TEST(str_hex_bad)
{
	static const struct {
		const char	*hex;
		size_t		 len;
	} t[] = {
		{ "0g", 1 }, { "g0", 1 }, { "000", 1 }, { "0", 1 }, { "", 1 },
		{ "0000", 1 }, { " 00", 1 }, { "00 ", 1 }, { "-1", 1 },
		{ "0x", 1 },
	};
	uint8_t buf[8];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_INT(str_hex_decode(t[i].hex, buf, t[i].len), ==, -1);
	CHECK(str_is_hex("ABCdef09", 8));
	CHECK(str_is_hex("", 0));
	CHECK(!str_is_hex("abc", 4));
	CHECK(!str_is_hex("abcd", 3));
	CHECK(!str_is_hex("abg", 3));
	CHECK(!str_is_hex("ab ", 3));
}

TEST(str_b64)
{
	/* RFC 4648 section 10, plus bytes that need '+', '/' and NULs. */
	static const struct {
		const char	*plain;
		size_t		 len;
		const char	*b64;
	} t[] = {
		{ "", 0, "" },
		{ "f", 1, "Zg==" },
		{ "fo", 2, "Zm8=" },
		{ "foo", 3, "Zm9v" },
		{ "foob", 4, "Zm9vYg==" },
		{ "fooba", 5, "Zm9vYmE=" },
		{ "foobar", 6, "Zm9vYmFy" },
		{ "\xfb\xff\xbf", 3, "+/+/" },
		{ "\x00\x00\x00\x00", 4, "AAAAAA==" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char	*enc;
		uint8_t	*dec;
		size_t	 n = 99;

		enc = str_b64_encode((const uint8_t *)t[i].plain, t[i].len);
		CHECK_STR(enc, t[i].b64);
		free(enc);
		dec = str_b64_decode(t[i].b64, strlen(t[i].b64), &n);
		CHECK(dec != NULL);
		if (dec == NULL)
			continue;
		CHECK_INT(n, ==, t[i].len);
		CHECK(memcmp(dec, t[i].plain, t[i].len) == 0);
		CHECK_INT(dec[n], ==, 0);
		free(dec);
	}
}

TEST(str_b64_bad)
{
	static const char *const t[] = {
		"Zg=",		/* not a multiple of 4 */
		"Zg",
		"Z",
		"Zg=a",		/* data after padding */
		"Z===",		/* too much padding */
		"====",
		"=Zg=",
		"Zm9v\n",
		"Zm 9",
		"Zm9-",		/* base64url alphabet */
		"Zm9_",
		"Zm9v Zg==",
		"Zh==",		/* non-canonical: unused bits set */
		"Zm9=",
		"Zm9vYh==",
		"Zm9vYmF=",
	};
	size_t n;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t *dec = str_b64_decode(t[i], strlen(t[i]), &n);

		if (dec != NULL)
			fprintf(stderr, "  accepted \"%s\"\n", t[i]);
		CHECK(dec == NULL);
		free(dec);
	}
	/* An embedded NUL counts as a bad character, not as the end. */
	CHECK(str_b64_decode("Zm\0v", 4, &n) == NULL);
}

TEST(str_eq_ct)
{
	CHECK(str_eq_ct("abc", "abc", 3));
	CHECK(!str_eq_ct("abc", "abd", 3));
	CHECK(str_eq_ct("abc", "abd", 2));
	CHECK(str_eq_ct("", "x", 0));
}

TEST(str_utf8_len)
{
	CHECK_INT(str_utf8_len(""), ==, 0);
	CHECK_INT(str_utf8_len("abc"), ==, 3);
	CHECK_INT(str_utf8_len("caf\xc3\xa9"), ==, 4);		/* é */
	CHECK_INT(str_utf8_len("\xe2\x82\xac" "1"), ==, 2);	/* €1 */
	CHECK_INT(str_utf8_len("\xf0\x9f\x98\x80"), ==, 1);	/* U+1F600 */
}

TEST(str_duration_ms)
{
	static const struct {
		const char	*s;
		long long	 ms;
	} t[] = {
		{ "2s", 2000 },
		{ "500ms", 500 },
		{ "5m", 300000 },
		{ "60", 60000 },	/* a bare number is seconds */
		{ "2h", 7200000 },
		{ "1d", 86400000 },
		{ "0", 0 },
		{ "30S", 30000 },
		{ "10 s", 10000 },
		{ "", -1 },
		{ "s", -1 },
		{ "abc", -1 },
		{ "-5", -1 },
		{ "+5", -1 },
		{ " 5", -1 },
		{ "5s ", -1 },
		{ "5x", -1 },
		{ "1.5s", -1 },
		{ "5sec", -1 },
		{ "99999999999999999999", -1 },
		{ "9000000000000d", -1 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_INT(str_duration_ms(t[i].s), ==, t[i].ms);
	CHECK_INT(str_duration_ms(NULL), ==, -1);
}

TEST(str_size_bytes)
{
	static const struct {
		const char	*s;
		long long	 n;
	} t[] = {
		{ "1024", 1024 },
		{ "0", 0 },
		{ "10b", 10 },
		{ "8k", 8192 },
		{ "8KiB", 8192 },
		{ "8kb", 8192 },
		{ "1M", 1048576 },
		{ "50MB", 52428800 },
		{ "2MiB", 2097152 },
		{ "1g", 1073741824 },
		{ "", -1 },
		{ "k", -1 },
		{ "-1", -1 },
		{ "1T", -1 },
		{ "1.5M", -1 },
		{ "99999999999999G", -1 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_INT(str_size_bytes(t[i].s), ==, t[i].n);
}

TEST(str_to_ll)
{
	static const struct {
		const char	*s;
		long long	 min, max;
		bool		 ok;
		long long	 v;
	} t[] = {
		{ "42", 0, 100, true, 42 },
		{ "0", 0, 100, true, 0 },
		{ "100", 0, 100, true, 100 },
		{ "-5", -10, 10, true, -5 },
		{ "101", 0, 100, false, 0 },
		{ "-1", 0, 100, false, 0 },
		{ "", 0, 100, false, 0 },
		{ " 1", 0, 100, false, 0 },
		{ "1 ", 0, 100, false, 0 },
		{ "0x10", 0, 100, false, 0 },
		{ "1e3", 0, 10000, false, 0 },
		{ "abc", 0, 100, false, 0 },
		{ "99999999999999999999", 0, 100, false, 0 },
		{ "9223372036854775807", 0, 9223372036854775807LL, true,
		    9223372036854775807LL },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		long long v = -12345;

		CHECK_INT(str_to_ll(t[i].s, t[i].min, t[i].max, &v), ==,
		    t[i].ok);
		CHECK_INT(v, ==, t[i].ok ? t[i].v : -12345);
	}
	CHECK(!str_to_ll(NULL, 0, 1, &(long long){ 0 }));
}

TEST(str_iso8601_parse)
{
	static const struct {
		const char	*s;
		long long	 ms;
	} t[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-01-02T03:04:05Z", 1767323045000LL },
		{ "2026-01-02t03:04:05z", 1767323045000LL },
		{ "2026-01-02 03:04:05Z", 1767323045000LL },
		{ "2026-01-02T03:04:05+00:00", 1767323045000LL },
		{ "2026-01-02T03:04:05-00:00", 1767323045000LL },
		{ "2026-01-02T03:04:05.123+02:00", 1767315845123LL },
		{ "2026-01-02T03:04:05.123+0200", 1767315845123LL },
		{ "2026-01-02T03:04:05-05:30", 1767342845000LL },
		{ "2026-01-02T03:04:05.5Z", 1767323045500LL },
		{ "2026-01-02T03:04:05.123456Z", 1767323045123LL },
		{ "2026-01-02T03:04Z", 1767323040000LL },
		{ "2026-01-02", 1767312000000LL },	/* midnight UTC */
		{ "2000-01-01", 946684800000LL },
		{ "2024-02-29", 1709164800000LL },	/* leap year */
		{ "2016-12-31T23:59:60Z", 1483228800000LL },	/* leap sec. */
		{ "1969-12-31T23:59:59Z", -1000 },
		{ "1969-12-31T23:59:58.500Z", -1500 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		long long v = str_iso8601_parse(t[i].s);

		if (v != t[i].ms)
			fprintf(stderr, "  \"%s\"\n", t[i].s);
		CHECK_INT(v, ==, t[i].ms);
	}
}

TEST(str_iso8601_parse_bad)
{
	static const char *const t[] = {
		"",
		"2026",
		"2026-01",
		"26-01-02",
		"2026/01/02",
		"2026-1-02",
		"2026-02-31",		/* would normalise to March */
		"2025-02-29",		/* not a leap year */
		"2100-02-29",
		"2026-04-31",
		"2026-13-01",
		"2026-00-10",
		"2026-01-00",
		"2026-01-32",
		"2026-01-02T03:04:05",	/* no zone: ambiguous */
		"2026-01-02T03:04",
		"2026-01-02T24:00:00Z",
		"2026-01-02T03:60:00Z",
		"2026-01-02T03:04:61Z",
		"2026-01-02T03:04:05.Z",
		"2026-01-02T03:04:05ZZ",
		"2026-01-02T03:04:05Z ",
		" 2026-01-02T03:04:05Z",
		"2026-01-02T03:04:05+2",
		"2026-01-02T03:04:05+02:",
		"2026-01-02T03:04:05+24:00",
		"2026-01-02T03:04:05+02:60",
		"2026-01-02T3:04:05Z",
		"2026-01-02X03:04:05Z",
		"2026-01-02T",
		"2026-01-02Z",
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		long long v = str_iso8601_parse(t[i]);

		if (v != -1)
			fprintf(stderr, "  accepted \"%s\"\n", t[i]);
		CHECK_INT(v, ==, -1);
	}
}

TEST(str_iso8601_format)
{
	static const struct {
		long long	 ms;
		const char	*s;
	} t[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1767323045123LL, "2026-01-02T03:04:05.123Z" },
		{ 1709164800000LL, "2024-02-29T00:00:00.000Z" },
		{ 1709164800007LL, "2024-02-29T00:00:00.007Z" },
		{ -500, "1969-12-31T23:59:59.500Z" },
		{ -1000, "1969-12-31T23:59:59.000Z" },
		{ -1001, "1969-12-31T23:59:58.999Z" },
	};
	char out[32];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		str_iso8601_format(t[i].ms, out, sizeof(out));
		CHECK_STR(out, t[i].s);
		CHECK_INT(str_iso8601_parse(out), ==, t[i].ms);
	}
}

TEST(str_sanitize)
{
	static const struct {
		const char	*in;
		size_t		 max;
		const char	*out;
	} t[] = {
		{ "plain text", 160, "plain text" },
		{ "", 160, "" },
		{ "say \"hi\"", 160, "say \\\"hi\\\"" },
		{ "a\\b", 160, "a\\\\b" },
		{ "CR\r\nLF", 160, "CR\\x0d\\x0aLF" },
		{ "\x01\x1f\x7f", 160, "\\x01\\x1f\\x7f" },
		{ "tab\there", 160, "tab\\x09here" },
		{ "caf\xc3\xa9", 160, "caf\\xc3\\xa9" },
		{ "abcdef", 3, "abc" },
		{ "ab\ncd", 3, "ab\\x0a" },
		{ "abc", 0, "" },
	};
	char out[256];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK_STR(str_sanitize(t[i].in, t[i].max, out, sizeof(out)),
		    t[i].out);
}

TEST(str_sanitize_small_out)
{
	char out[8];

	/* Never writes past outlen and never splits an escape. */
	memset(out, 'X', sizeof(out));
	CHECK_STR(str_sanitize("\x01\x02\x03", 160, out, 6), "\\x01");
	CHECK_INT(out[6], ==, 'X');
	CHECK_STR(str_sanitize("abcdefgh", 160, out, 4), "");
	CHECK_STR(str_sanitize("abcdefgh", 160, out, 8), "abc");
	out[0] = 'Q';
	str_sanitize("abc", 160, out, 0);
	CHECK_INT(out[0], ==, 'Q');
}
