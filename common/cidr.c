/*
 * CIDR ranges: strict parsing (inet_pton, no host bits, no stray
 * characters), canonical formatting and address matching. IPv4 and its
 * IPv4-mapped IPv6 form (RFC 4291 2.5.5.2) are treated as one address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/cidr.h"

#define CIDR_PREFIX_DIGITS	3	/* "128" */

static const uint8_t v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Strict decimal prefix: digits only, no sign, no leading zero ("08"). */
static int
parse_prefix(const char *s, int max)
{
	size_t	n = strspn(s, "0123456789");
	int	v = 0;

	if (n == 0 || n > CIDR_PREFIX_DIGITS || s[n] != '\0' ||
	    (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v <= max ? v : -1;
}

/* true if the first prefix bits of a and b agree. */
static bool
prefix_eq(const uint8_t *a, const uint8_t *b, int prefix)
{
	int	full = prefix / 8, rest = prefix % 8;
	uint8_t	mask;

	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

static bool
host_bits_clear(const uint8_t *a, int len, int prefix)
{
	for (int i = prefix; i < len * 8; i++)
		if (a[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

int
cidr_parse(const char *s, struct cidr *out)
{
	char		 addr[INET6_ADDRSTRLEN];
	const char	*slash;
	size_t		 alen;
	int		 max;

	if (s == NULL)
		return -1;
	slash = strchr(s, '/');
	alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return -1;
	if (slash == NULL)
		out->prefix = max;
	else if ((out->prefix = parse_prefix(slash + 1, max)) == -1)
		return -1;
	if (!host_bits_clear(out->addr, max / 8, out->prefix))
		return -1;
	return 0;
}

void
cidr_format(const struct cidr *c, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];

	if (outlen == 0)
		return;
	if (inet_ntop(c->family, c->addr, ip, sizeof(ip)) == NULL) {
		out[0] = '\0';
		return;
	}
	snprintf(out, outlen, "%s/%d", ip, c->prefix);
}

/*
 * Compares an address of the given family (4 or 16 bytes) with a range.
 * Only an IPv4 range against a mapped address, or an IPv6 range (such as
 * ::ffff:0:0/96) against an IPv4 address, crosses families.
 */
static bool
match_addr(const struct cidr *c, int family, const uint8_t *a)
{
	uint8_t mapped[16];

	if (c->family == family)
		return prefix_eq(c->addr, a, c->prefix);
	if (c->family == AF_INET && family == AF_INET6) {
		if (memcmp(a, v4mapped, sizeof(v4mapped)) != 0)
			return false;
		return prefix_eq(c->addr, a + sizeof(v4mapped), c->prefix);
	}
	if (c->family == AF_INET6 && family == AF_INET) {
		memcpy(mapped, v4mapped, sizeof(v4mapped));
		memcpy(mapped + sizeof(v4mapped), a, 4);
		return prefix_eq(c->addr, mapped, c->prefix);
	}
	return false;
}

bool
cidr_match_sa(const struct cidr *c, const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	if (c == NULL || sa == NULL)
		return false;
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		return match_addr(c, AF_INET,
		    (const uint8_t *)&sin->sin_addr);
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		return match_addr(c, AF_INET6,
		    (const uint8_t *)&sin6->sin6_addr);
	default:
		return false;
	}
}

bool
cidr_match_str(const struct cidr *c, const char *ip)
{
	uint8_t a[16];

	if (c == NULL || ip == NULL)
		return false;
	if (inet_pton(AF_INET, ip, a) == 1)
		return match_addr(c, AF_INET, a);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return match_addr(c, AF_INET6, a);
	return false;
}
