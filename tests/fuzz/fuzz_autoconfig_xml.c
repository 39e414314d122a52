/*
 * libFuzzer target for discover/disc_xml.c: autoconfig documents come
 * from any web server a domain names (or a man in the middle of plain
 * HTTP). Whatever the bytes, the parser must return 0 or -1, fill err on
 * -1, and only ever hand out valid host names and ports.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "discover/disc.h"
#include "discover/disc_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_server(const struct disc_server *s)
{
	assert(disc_host_is_valid(s->host));
	assert(s->port >= 1 && s->port <= 65535);
	for (const char *p = s->host; *p != '\0'; p++)
		assert(!(*p >= 'A' && *p <= 'Z'));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct disc_settings	s;
	char			err[160];
	int			rc;

	memset(err, 0, sizeof(err));
	rc = disc_xml_parse((const char *)data, size, "user.name@example.test",
	    &s, err, sizeof(err));
	assert(rc == 0 || rc == -1);
	if (rc == -1) {
		assert(err[0] != '\0');
		assert(!s.has_imap && !s.has_smtp);
		return 0;
	}
	if (s.has_imap)
		check_server(&s.imap);
	if (s.has_smtp)
		check_server(&s.smtp);
	return 0;
}
