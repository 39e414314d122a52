/*
 * libFuzzer target for proxy/proxy_proto: the first bytes of a connection
 * on a "proxy" listener, from whoever reaches it. Every prefix is parsed,
 * as a session sees the header arrive, and the answers must agree: "need
 * more" only before the header ends, then one fixed result, never a
 * header longer than the limits or than the bytes given.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proxy/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_result(const struct proxy_proto *pp, size_t k)
{
	uint8_t addr[16];

	assert(pp->len > 0 && pp->len <= k && pp->len <= PROXY_PROTO_MAX);
	assert(pp->version == 1 || pp->version == 2);
	if (pp->version == 1)
		assert(pp->len <= PROXY_PROTO_V1_MAX);
	else
		assert(pp->len >= PROXY_PROTO_V2_HDR);
	if (!pp->has_addr)
		return;
	assert(memchr(pp->ip, '\0', sizeof(pp->ip)) != NULL);
	assert(inet_pton(AF_INET, pp->ip, addr) == 1 ||
	    inet_pton(AF_INET6, pp->ip, addr) == 1);
	assert(pp->port >= 0 && pp->port <= 65535);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_proto	pp, first;
	int			rc, prev = 0;
	size_t			max = size < PROXY_PROTO_MAX + 8 ? size :
				    PROXY_PROTO_MAX + 8;

	for (size_t k = 0; k <= max; k++) {
		rc = proxy_proto_parse(data, k, &pp);
		assert(rc >= -1 && rc <= 1);
		if (rc == 0)
			assert(k < PROXY_PROTO_MAX);
		if (rc == -1)
			assert(pp.why != NULL && pp.why[0] != '\0');
		if (rc == 1)
			check_result(&pp, k);
		/* Once decided, more bytes change nothing. */
		if (prev != 0) {
			assert(rc == prev);
			if (rc == 1)
				assert(pp.len == first.len &&
				    pp.has_addr == first.has_addr &&
				    strcmp(pp.ip, first.ip) == 0 &&
				    pp.port == first.port);
		} else if (rc == 1) {
			/* Ends exactly at the last byte added: before it,
			 * every byte was header ("need more"). */
			assert(pp.len == k);
			first = pp;
		}
		prev = rc;
	}
	if (size > max) {
		rc = proxy_proto_parse(data, size, &pp);
		assert(rc == prev && rc != 0);
		if (rc == 1)
			assert(pp.len == first.len);
	}
	return 0;
}
