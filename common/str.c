/*
 * String helpers. Base64 and constant-time compare come from OpenSSL so
 * there is no hand-written codec to get wrong.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/str.h"
#include "common/xmalloc.h"

void
str_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int
str_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
str_hex_decode(const char *in, uint8_t *out, size_t outlen)
{
	if (strlen(in) != 2 * outlen)
		return -1;
	for (size_t i = 0; i < outlen; i++) {
		int hi = str_hex_digit((unsigned char)in[2 * i]);
		int lo = str_hex_digit((unsigned char)in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

bool
str_is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (str_hex_digit((unsigned char)s[i]) < 0)
			return false;
	return i == n;
}

char *
str_b64_encode(const uint8_t *in, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

/* The 6-bit value of a character already checked to be in the alphabet. */
static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : 63;
}

uint8_t *
str_b64_decode(const char *in, size_t inlen, size_t *len_r)
{
	uint8_t	*out;
	int	 n, pad = 0;

	if (inlen % 4 != 0 || inlen > 64 * 1024 * 1024)
		return NULL;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '=') {
			if (i < inlen - 2)
				return NULL;
			pad++;
		} else if (pad > 0 || !(isalnum(c) || c == '+' || c == '/'))
			return NULL;
	}
	/*
	 * Canonical means the bits after the last byte are zero (RFC 4648
	 * 3.5); otherwise "Zh==" and "Zg==" would both decode to "f".
	 */
	if (pad > 0 && (b64val((unsigned char)in[inlen - pad - 1]) &
	    (pad == 1 ? 0x03 : 0x0f)) != 0)
		return NULL;
	out = xmalloc(inlen / 4 * 3 + 1);
	if (inlen == 0) {
		*len_r = 0;
		out[0] = '\0';
		return out;
	}
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen);
	if (n < 0) {
		free(out);
		return NULL;
	}
	n -= pad;	/* EVP_DecodeBlock counts padding as zero bytes */
	out[n] = '\0';
	*len_r = (size_t)n;
	return out;
}

bool
str_eq_ct(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

size_t
str_utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

const char *
str_sanitize(const char *s, size_t max, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (size_t i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o + 5 >= outlen)
			break;
		if (c < 0x20 || c == 0x7f || c >= 0x80)
			o += snprintf(out + o, outlen - o, "\\x%02x", c);
		else if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

bool
str_to_ll(const char *s, long long min, long long max, long long *r)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*r = v;
	return true;
}

static long long
num_with_unit(const char *s, const char *const *units, const long long *mul,
    int nunits)
{
	char		*end;
	long long	 v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	for (int i = 0; i < nunits; i++) {
		if (strcasecmp(end, units[i]) == 0) {
			if (v > (long long)9e15 / mul[i])
				return -1;
			return v * mul[i];
		}
	}
	return -1;
}

long long
str_duration_ms(const char *s)
{
	static const char *const u[] = { "", "ms", "s", "m", "h", "d" };
	static const long long m[] = { 1000, 1, 1000, 60000, 3600000,
		86400000 };

	return num_with_unit(s, u, m, 6);
}

long long
str_size_bytes(const char *s)
{
	static const char *const u[] = { "", "b", "k", "kb", "kib", "m", "mb",
		"mib", "g", "gb", "gib" };
	static const long long m[] = { 1, 1, 1024, 1024, 1024, 1 << 20,
		1 << 20, 1 << 20, 1LL << 30, 1LL << 30, 1LL << 30 };

	return num_with_unit(s, u, m, 11);
}

static int
digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

static int
days_in_month(int y, int mo)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30,
		31, 30, 31 };

	if (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return days[mo - 1];
}

long long
str_iso8601_parse(const char *s)
{
	struct tm	 tm;
	const char	*p = s;
	int		 y, mo, d, h = 0, mi = 0, se = 0, ms = 0, off = 0;
	time_t		 t;

	if ((y = digits(&p, 4)) < 0 || *p++ != '-' ||
	    (mo = digits(&p, 2)) < 1 || mo > 12 || *p++ != '-' ||
	    (d = digits(&p, 2)) < 1 || d > 31)
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':' ||
		    (mi = digits(&p, 2)) < 0 || mi > 59)
			return -1;
		if (*p == ':') {
			p++;
			if ((se = digits(&p, 2)) < 0 || se > 60)
				return -1;
			if (*p == '.') {
				int scale = 100;

				p++;
				if (!isdigit((unsigned char)*p))
					return -1;
				while (isdigit((unsigned char)*p)) {
					ms += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
			}
		}
		if (*p == 'Z' || *p == 'z')
			p++;
		else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om;

			if ((oh = digits(&p, 2)) < 0 || oh > 23)
				return -1;
			if (*p == ':')
				p++;
			if ((om = digits(&p, 2)) < 0 || om > 59)
				return -1;
			off = sign * (oh * 60 + om);
		} else
			return -1;	/* a time without a zone is ambiguous */
	}
	if (*p != '\0')
		return -1;
	/*
	 * Checked here rather than after timegm(), which would turn
	 * 2026-02-31 into March and a leap second at a month's end into
	 * the next day.
	 */
	if (d > days_in_month(y, mo))
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	/*
	 * -1 is also 1969-12-31T23:59:59Z, so only errno tells an overflow
	 * apart (glibc sets EOVERFLOW).
	 */
	errno = 0;
	if ((t = timegm(&tm)) == (time_t)-1 && errno != 0)
		return -1;
	return ((long long)t - off * 60LL) * 1000 + ms;
}

void
str_iso8601_format(long long ms, char *out, size_t outlen)
{
	struct tm	tm;
	long long	frac = ms % 1000;
	time_t		t;

	/* C division truncates; times before 1970 need the floor. */
	if (frac < 0)
		frac += 1000;
	t = (time_t)((ms - frac) / 1000);
	if (gmtime_r(&t, &tm) == NULL) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)frac);
}

long long
str_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

bool
str_is_ip_literal(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}
