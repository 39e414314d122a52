/*
 * libFuzzer target for proxy/imap_parse. The first input byte picks the
 * chunk size and small or default limits; the rest is fed in chunks like a
 * client would send it, checking the parser's contract after every call.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_cmd(const struct imap_cmd *cmd, const char *tag)
{
	size_t	n;
	int	depth = 0;

	assert(cmd != NULL);
	assert(cmd->tag != NULL && cmd->name != NULL);
	n = strlen(cmd->tag);
	assert(n >= 1 && n <= IMAP_PARSE_TAG_MAX);
	assert(strcmp(cmd->tag, tag) == 0);
	assert(strchr(cmd->tag, '+') == NULL);
	assert(cmd->name[0] != '\0');
	for (const char *s = cmd->name; *s != '\0'; s++)
		assert(*s > ' ' && *s < 0x7f && !(*s >= 'a' && *s <= 'z'));
	assert(cmd->nargs >= 0 && cmd->nargs <= IMAP_PARSE_ARGS_MAX);
	for (int i = 0; i < cmd->nargs; i++) {
		const struct imap_arg *a = &cmd->args[i];

		assert(a->s != NULL && a->s[a->len] == '\0');
		switch (a->type) {
		case IMAP_ARG_ATOM:
			assert(a->len > 0 && strlen(a->s) == a->len);
			break;
		case IMAP_ARG_NIL:
			assert(a->len == 3);
			break;
		case IMAP_ARG_QUOTED:
			assert(strlen(a->s) == a->len);
			break;
		case IMAP_ARG_LITERAL:
			break;
		case IMAP_ARG_LIST_OPEN:
			assert(++depth <= IMAP_PARSE_DEPTH_MAX);
			break;
		case IMAP_ARG_LIST_CLOSE:
			assert(--depth >= 0);
			break;
		}
	}
	assert(depth == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parse	*p;
	struct evbuffer		*in;
	enum imap_parse_rc	 rc;
	size_t			 chunk, off = 0, before, after;

	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] & 0x1f) + 1;
	p = imap_parse_new(data[0] & 0x20 ? 64 : 8192,
	    data[0] & 0x40 ? 16 : 8192);
	in = evbuffer_new();
	assert(in != NULL);
	data++;
	size--;
	for (;;) {
		if (off < size) {
			size_t n = size - off < chunk ? size - off : chunk;

			evbuffer_add(in, data + off, n);
			off += n;
		}
		before = evbuffer_get_length(in);
		rc = imap_parse_feed(p, in);
		after = evbuffer_get_length(in);
		assert(after <= before);
		if (rc == IMAP_PARSE_FATAL) {
			assert(imap_parse_error(p)[0] != '\0');
			assert(imap_parse_cmd(p) == NULL);
			assert(imap_parse_feed(p, in) == IMAP_PARSE_FATAL);
			assert(evbuffer_get_length(in) == after);
			break;
		}
		if (rc == IMAP_PARSE_AGAIN) {
			/* Everything available was consumed. */
			assert(after == 0);
			assert(imap_parse_cmd(p) == NULL);
			if (off == size)
				break;
			continue;
		}
		/* Every other result consumed at least its last byte. */
		assert(after < before);
		switch (rc) {
		case IMAP_PARSE_COMMAND:
			check_cmd(imap_parse_cmd(p), imap_parse_tag(p));
			break;
		case IMAP_PARSE_BAD:
			assert(imap_parse_cmd(p) == NULL);
			assert(imap_parse_error(p)[0] != '\0');
			assert(imap_parse_tag(p)[0] != '\0');
			break;
		case IMAP_PARSE_CONTINUE:
			assert(imap_parse_cmd(p) == NULL);
			break;
		default:
			assert(0);
		}
	}
	imap_parse_free(&p);
	assert(p == NULL);
	evbuffer_free(in);
	return 0;
}
