/*
 * libFuzzer target for upstream/up_smtp_resp: the SMTP reply reader and
 * the EHLO keyword parser. The first input byte picks the chunk size; the
 * rest is fed in chunks as an upstream would send it, checking the
 * reader's contract after every call.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "upstream/up_smtp_resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const struct up_smtp_resp *r)
{
	struct up_smtp_resp_ehlo	e;
	size_t				n;

	assert(r->code >= 200 && r->code <= 599);
	assert(r->nlines >= 1 && r->nlines <= UP_SMTP_RESP_LINES_MAX);
	assert(r->text != NULL && strlen(r->text) == r->textlen);
	assert(r->wire != NULL && strlen(r->wire) == r->wirelen);
	assert(r->wirelen <= (size_t)r->nlines * (UP_SMTP_RESP_LINE_MAX + 1));
	assert(r->wirelen >= 5 && memcmp(r->wire + r->wirelen - 2, "\r\n",
	    2) == 0);
	for (size_t i = 0; i < r->textlen; i++) {
		unsigned char c = (unsigned char)r->text[i];

		assert(c == '\t' || c == '\n' || (c >= 0x20 && c != 0x7f));
	}
	/* Every wire line starts with the code; the last has no "-". */
	for (const char *l = r->wire; *l != '\0'; l = strstr(l, "\r\n") + 2) {
		assert((l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0') ==
		    r->code);
		n = (size_t)(strstr(l, "\r\n") - l);
		if (l + n + 2 == r->wire + r->wirelen)
			assert(n == 3 || l[3] == ' ');
		else
			assert(n > 3 && l[3] == '-');
	}
	n = strlen(r->ecode);
	if (n > 0) {
		assert(n >= 5 && r->ecode[0] == '0' + r->code / 100);
		assert(r->ecode[1] == '.');
	}
	up_smtp_resp_ehlo(r, &e);
	assert(strlen(e.auth) < sizeof(e.auth));
	if (!(e.caps & UP_SMTP_RESP_CAP_SIZE))
		assert(e.size_max == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct up_smtp_resp_reader	*rd;
	struct evbuffer			*in;
	struct up_smtp_resp		 r;
	size_t				 chunk, off = 0, before;
	int				 rc;

	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] & 0x3f) + 1;
	rd = up_smtp_resp_reader_new();
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
		rc = up_smtp_resp_read(rd, in, &r);
		assert(evbuffer_get_length(in) <= before);
		if (rc < 0) {
			assert(up_smtp_resp_error(rd)[0] != '\0');
			assert(up_smtp_resp_read(rd, in, &r) == -1);
			/* A reset reader starts over. */
			up_smtp_resp_reader_reset(rd);
			evbuffer_drain(in, evbuffer_get_length(in));
			if (off == size)
				break;
			continue;
		}
		if (rc == 0) {
			/* Only an incomplete line waits. */
			assert(evbuffer_get_length(in) < UP_SMTP_RESP_LINE_MAX);
			if (off == size)
				break;
			continue;
		}
		assert(rc == 1);
		assert(evbuffer_get_length(in) < before);
		check_reply(&r);
	}
	up_smtp_resp_reader_free(&rd);
	assert(rd == NULL);
	evbuffer_free(in);
	return 0;
}
