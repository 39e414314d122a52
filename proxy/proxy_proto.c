/*
 * HAProxy PROXY protocol header parser, v1 (one text line) and v2 (binary),
 * after "The PROXY protocol" specification (HAProxy's
 * doc/proxy-protocol.txt). Stateless: each call looks at everything
 * received so far, at most PROXY_PROTO_MAX bytes, so rescanning is cheap.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy/proxy_proto.h"

#define V1_SIG		"PROXY "
#define V1_SIG_LEN	6
#define V1_FIELD_MAX	PROXY_PROTO_IP_MAX	/* longest token we keep */

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

/* Spec 2.2: the 14th byte, address family (high) and transport (low). */
enum {
	V2_UNSPEC = 0x00,
	V2_TCP4 = 0x11,
	V2_UDP4 = 0x12,
	V2_TCP6 = 0x21,
	V2_UDP6 = 0x22,
	V2_UNIX_STREAM = 0x31,
	V2_UNIX_DGRAM = 0x32,
};

static int
proxy_proto_bad(struct proxy_proto *pp, const char *why)
{
	pp->why = why;
	return -1;
}

/* Text form of a source address (network-order bytes, unaligned);
 * IPv4-mapped IPv6 becomes plain IPv4 (a dual-stack balancer may send
 * them; CIDR rules are written for IPv4), as the session does. */
static void
proxy_proto_ntop(struct proxy_proto *pp, int af, const uint8_t *addr,
    int port)
{
	struct in6_addr	in6;
	struct in_addr	in;
	const void	*a = &in;

	if (af == AF_INET6) {
		memcpy(&in6, addr, sizeof(in6));
		a = &in6;
		if (IN6_IS_ADDR_V4MAPPED(&in6)) {
			af = AF_INET;
			addr += 12;
			a = &in;
		}
	}
	if (af == AF_INET)
		memcpy(&in, addr, sizeof(in));
	if (inet_ntop(af, a, pp->ip, sizeof(pp->ip)) == NULL)
		pp->ip[0] = '\0';	/* cannot happen: the buffer fits */
	pp->port = port;
	pp->has_addr = pp->ip[0] != '\0';
}

/* One space-terminated (or line-terminated) v1 token into out. Returns the
 * token length, or -1 when empty or longer than V1_FIELD_MAX - 1. */
static int
proxy_proto_v1_token(const char *p, const char *end, char *out)
{
	size_t n = 0;

	while (p + n < end && p[n] != ' ')
		n++;
	if (n == 0 || n >= V1_FIELD_MAX)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return (int)n;
}

/* Spec 2.1: decimal 0..65535; we also refuse leading zeros, which no
 * sender writes, so that a port has one spelling. */
static int
proxy_proto_v1_port(const char *s)
{
	size_t	len = strlen(s);
	long	v = 0;

	if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v > 65535 ? -1 : (int)v;
}

/* "PROXY TCP4|TCP6 src dst sport dport", or "PROXY UNKNOWN[ anything]";
 * line excludes the CRLF. */
static int
proxy_proto_v1_line(const char *line, size_t len, struct proxy_proto *pp)
{
	const char	*p = line + V1_SIG_LEN, *end = line + len;
	char		 f[4][V1_FIELD_MAX];
	uint8_t		 src[16], dst[16];
	int		 af, n, sport;

	if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
	    (p + 7 == end || p[7] == ' '))
		return 1;	/* spec: ignore the rest, keep the socket's */
	if ((size_t)(end - p) < 5 || (memcmp(p, "TCP4 ", 5) != 0 &&
	    memcmp(p, "TCP6 ", 5) != 0))
		return proxy_proto_bad(pp, "v1: unknown protocol");
	af = p[3] == '4' ? AF_INET : AF_INET6;
	p += 5;
	for (int i = 0; i < 4; i++) {
		if ((n = proxy_proto_v1_token(p, end, f[i])) == -1)
			return proxy_proto_bad(pp, "v1: bad field");
		p += n;
		if (i < 3) {
			if (p == end)
				return proxy_proto_bad(pp, "v1: missing field");
			p++;	/* the single space */
		}
	}
	if (p != end)
		return proxy_proto_bad(pp, "v1: trailing data");
	if (inet_pton(af, f[0], src) != 1 || inet_pton(af, f[1], dst) != 1)
		return proxy_proto_bad(pp, "v1: bad address");
	if ((sport = proxy_proto_v1_port(f[2])) == -1 ||
	    proxy_proto_v1_port(f[3]) == -1)
		return proxy_proto_bad(pp, "v1: bad port");
	proxy_proto_ntop(pp, af, src, sport);
	return 1;
}

static int
proxy_proto_v1(const uint8_t *buf, size_t len, struct proxy_proto *pp)
{
	size_t i;

	pp->version = 1;
	for (i = 0; i < len && i < PROXY_PROTO_V1_MAX; i++) {
		uint8_t c = buf[i];

		if (i < V1_SIG_LEN) {
			if (c != (uint8_t)V1_SIG[i])
				return proxy_proto_bad(pp, "not a PROXY header");
			continue;
		}
		if (c == '\n') {
			if (buf[i - 1] != '\r')
				return proxy_proto_bad(pp, "v1: bare LF");
			pp->len = i + 1;
			return proxy_proto_v1_line((const char *)buf, i - 1,
			    pp);
		}
		if (c == '\r') {
			if (i + 1 < len && buf[i + 1] != '\n')
				return proxy_proto_bad(pp, "v1: bare CR");
			continue;
		}
		/* The line is US-ASCII text (spec 2.1). */
		if (c < 0x20 || c > 0x7e)
			return proxy_proto_bad(pp, "v1: control character");
	}
	if (len >= PROXY_PROTO_V1_MAX)
		return proxy_proto_bad(pp, "v1: line too long");
	return 0;
}

static int
proxy_proto_v2(const uint8_t *buf, size_t len, struct proxy_proto *pp)
{
	size_t	n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	size_t	alen, need = 0;
	bool	local = false;
	uint8_t	fam = V2_UNSPEC;

	pp->version = 2;
	if (memcmp(buf, v2_sig, n) != 0)
		return proxy_proto_bad(pp, "not a PROXY header");
	if (len > 12) {
		/* Version 2 in the high nibble; command LOCAL or PROXY. */
		if (buf[12] >> 4 != 2)
			return proxy_proto_bad(pp, "v2: bad version");
		if ((buf[12] & 0x0f) > 1)
			return proxy_proto_bad(pp, "v2: bad command");
		local = (buf[12] & 0x0f) == 0;
	}
	/* LOCAL (health checks): the block is discarded, family and all
	 * (spec 2.2). For PROXY, unlisted values must be rejected; datagram
	 * transports make no sense on a TCP listener. */
	if (len > 13 && !local) {
		fam = buf[13];
		switch (fam) {
		case V2_UNSPEC:
			break;
		case V2_TCP4:
			need = 12;
			break;
		case V2_TCP6:
			need = 36;
			break;
		case V2_UNIX_STREAM:
			need = PROXY_PROTO_V2_ADDR_MAX;
			break;
		case V2_UDP4:
		case V2_UDP6:
		case V2_UNIX_DGRAM:
			return proxy_proto_bad(pp, "v2: datagram transport");
		default:
			return proxy_proto_bad(pp, "v2: bad family");
		}
	}
	if (len < PROXY_PROTO_V2_HDR)
		return 0;
	alen = (size_t)buf[14] << 8 | buf[15];
	if (PROXY_PROTO_V2_HDR + alen > PROXY_PROTO_MAX)
		return proxy_proto_bad(pp, "v2: header too long");
	if (alen < need)
		return proxy_proto_bad(pp, "v2: address block too short");
	if (len < PROXY_PROTO_V2_HDR + alen)
		return 0;
	pp->len = PROXY_PROTO_V2_HDR + alen;
	/* What follows the addresses (TLVs) is skipped unread. */
	if (local)
		return 1;
	if (fam == V2_TCP4)
		proxy_proto_ntop(pp, AF_INET, buf + 16,
		    buf[24] << 8 | buf[25]);
	else if (fam == V2_TCP6)
		proxy_proto_ntop(pp, AF_INET6, buf + 16,
		    buf[48] << 8 | buf[49]);
	return 1;
}

int
proxy_proto_parse(const uint8_t *buf, size_t len, struct proxy_proto *pp)
{
	memset(pp, 0, sizeof(*pp));
	if (len == 0)
		return 0;
	if (buf[0] == 'P')
		return proxy_proto_v1(buf, len, pp);
	if (buf[0] == v2_sig[0])
		return proxy_proto_v2(buf, len, pp);
	return proxy_proto_bad(pp, "not a PROXY header");
}
