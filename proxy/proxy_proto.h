/*
 * Parser for the HAProxy PROXY protocol header (versions 1 and 2, "The
 * PROXY protocol", haproxy.org) that a load balancer sends before the
 * client's own bytes. Pure: bytes in, a result out; no sockets, no state
 * between calls, no allocation. The caller keeps the bytes it has seen.
 */
#ifndef PROXY_PROXY_PROTO_H
#define PROXY_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROXY_PROTO_V1_MAX	107	/* spec 2.1: worst case, CRLF included */
#define PROXY_PROTO_V2_HDR	16	/* signature, ver/cmd, fam, len */
#define PROXY_PROTO_V2_ADDR_MAX	216	/* spec 2.2: AF_UNIX block, the largest */
/* Whole v2 header with TLVs: 16 + 216 addresses + 304 bytes of TLVs, which
 * we skip unread. Also the most a caller needs to look at. */
#define PROXY_PROTO_MAX		536
#define PROXY_PROTO_IP_MAX	46	/* INET6_ADDRSTRLEN */

struct proxy_proto {
	size_t		 len;		/* header bytes: consume exactly these */
	int		 version;	/* 1 or 2 */
	/* false: LOCAL (v2), UNKNOWN (v1), AF_UNSPEC or AF_UNIX (v2): keep
	 * the socket's own peer address. */
	bool		 has_addr;
	char		 ip[PROXY_PROTO_IP_MAX];	/* source, numeric text */
	int		 port;				/* source port */
	const char	*why;		/* -1: static text for the log */
};

/*
 * Looks at the first len bytes received on a connection (accumulated from
 * its start). Returns 1: a complete header, *pp filled (pp->len <= len;
 * bytes after it belong to the client's protocol, e.g. a TLS ClientHello).
 * 0: need more; every one of the len bytes belongs to the header, so a
 * caller may consume them. -1: not a valid header or longer than allowed
 * (pp->why says why). An IPv4-mapped IPv6 source is given as plain IPv4,
 * as the session does for its socket address.
 */
int	proxy_proto_parse(const uint8_t *buf, size_t len,
	    struct proxy_proto *pp);

#endif
