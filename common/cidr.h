/*
 * IPv4 and IPv6 CIDR ranges for token address restrictions. An IPv4 range
 * also matches the IPv4-mapped IPv6 form of its addresses (::ffff:a.b.c.d),
 * as a dual-stack listener reports them.
 */
#ifndef COMMON_CIDR_H
#define COMMON_CIDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int	family;		/* AF_INET or AF_INET6 */
	uint8_t	addr[16];	/* network address, host bits cleared */
	int	prefix;		/* 0..32 or 0..128 */
};

/* "192.0.2.0/24", "2001:db8::/32", a bare address (= /32 or /128).
 * Returns 0, or -1 for bad syntax, prefix out of range, or host bits set
 * ("10.0.0.1/8" is refused so a typo does not silently widen a range). */
int	 cidr_parse(const char *s, struct cidr *out);
/* Canonical text ("192.0.2.0/24"); out >= 64 bytes. */
void	 cidr_format(const struct cidr *, char *out, size_t outlen);
bool	 cidr_match_sa(const struct cidr *, const struct sockaddr *);
/* ip is a textual IPv4 or IPv6 address; false if it does not parse. */
bool	 cidr_match_str(const struct cidr *, const char *ip);

#endif
