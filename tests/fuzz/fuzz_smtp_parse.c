/*
 * libFuzzer target for proxy/smtp_parse, driven like a session: commands;
 * after AUTH one exchange line; after DATA the message scanner until its
 * end; MAIL/RCPT arguments through their parsers. The first input byte
 * picks the chunk size, small or default limits and a size limit; the
 * rest is fed in chunks. Checks the contract after every call, including
 * that the DATA scanner copies bytes unchanged.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum mode {
	M_CMD,
	M_LINE,
	M_DATA,
};

static void
check_reply(const char *e)
{
	assert(e != NULL && strlen(e) > 4);
	assert(e[0] >= '4' && e[0] <= '5');
	assert(e[1] >= '0' && e[1] <= '9' && e[2] >= '0' && e[2] <= '9');
	assert(e[3] == ' ');
	for (const char *s = e; *s != '\0'; s++)
		assert(*s >= 0x20 && *s < 0x7f);
}

static void
check_addr(const char *a)
{
	assert(strlen(a) < SMTP_PARSE_PATH_MAX - 1);
	for (const unsigned char *s = (const unsigned char *)a; *s != '\0';
	    s++)
		assert(*s >= 0x20 && *s != 0x7f);
}

static void
check_cmd(const struct smtp_cmd *cmd)
{
	size_t n;

	assert(cmd != NULL && cmd->verb != NULL && cmd->args != NULL);
	n = strlen(cmd->verb);
	assert(n >= 1 && n <= SMTP_PARSE_VERB_MAX);
	for (const char *s = cmd->verb; *s != '\0'; s++)
		assert(*s >= 'A' && *s <= 'Z');
	assert(strlen(cmd->args) == cmd->argslen);
	for (size_t i = 0; i < cmd->argslen; i++) {
		unsigned char c = (unsigned char)cmd->args[i];

		assert(c == '\t' || (c >= 0x20 && c != 0x7f));
	}
	assert(cmd->argslen == 0 || (cmd->args[0] != ' ' &&
	    cmd->args[cmd->argslen - 1] != ' ' &&
	    cmd->args[cmd->argslen - 1] != '\t'));
}

static void
check_mail_rcpt(const struct smtp_cmd *cmd, bool *utf8)
{
	char			err[128];
	struct smtp_parse_mail	m;
	struct smtp_parse_rcpt	r;

	if (strcmp(cmd->verb, "MAIL") == 0) {
		if (smtp_parse_mail_from(cmd->args, &m, err,
		    sizeof(err)) == 0) {
			check_addr(m.addr);
			*utf8 = m.smtputf8;
		} else
			check_reply(err);
	} else if (strcmp(cmd->verb, "RCPT") == 0) {
		if (smtp_parse_rcpt_to(cmd->args, *utf8, &r, err,
		    sizeof(err)) == 0) {
			check_addr(r.addr);
			assert(r.addr[0] != '\0');
		} else
			check_reply(err);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_parse	*p;
	struct evbuffer		*in, *out;
	size_t			 chunk, off = 0, line_max, auth_max;
	enum mode		 mode = M_CMD;
	bool			 utf8 = false;
	uint8_t			*peek = NULL;
	uint64_t		 max;

	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] & 0x1f) + 1;
	line_max = data[0] & 0x20 ? 16 : 0;
	auth_max = data[0] & 0x20 ? 40 : 0;
	max = data[0] & 0x40 ? 64 : 0;
	p = smtp_parse_new(line_max, auth_max);
	line_max = line_max ? line_max : SMTP_PARSE_LINE_MAX;
	auth_max = auth_max ? auth_max : SMTP_PARSE_AUTH_LINE_MAX;
	in = evbuffer_new();
	out = evbuffer_new();
	assert(in != NULL && out != NULL);
	data++;
	size--;
	for (;;) {
		size_t before, after;

		if (off < size) {
			size_t n = size - off < chunk ? size - off : chunk;

			evbuffer_add(in, data + off, n);
			off += n;
		}
		before = evbuffer_get_length(in);
		if (mode == M_DATA) {
			enum smtp_parse_data_rc	 rc;
			size_t			 out0;
			bool			 over0;

			out0 = evbuffer_get_length(out);
			over0 = smtp_parse_data_is_over(p);

			free(peek);
			peek = malloc(before + 1);
			assert(peek != NULL);
			evbuffer_copyout(in, peek, before);
			rc = smtp_parse_data(p, in, out);
			after = evbuffer_get_length(in);
			assert(after <= before);
			{
				size_t got = evbuffer_get_length(out) - out0;
				size_t used = before - after;

				if (rc == SMTP_PARSE_DATA_BARE) {
					/* Stopped: nothing after the last
					 * decided byte moved, and what moved
					 * has no bare LF. */
					uint8_t *o = evbuffer_pullup(out, -1);

					assert(got == used);
					for (size_t k = out0; k < out0 + got;
					    k++)
						assert(o[k] != '\n' || (k > 0 &&
						    o[k - 1] == '\r'));
					goto done;
				}
				if (rc != SMTP_PARSE_DATA_AGAIN) {
					assert(used >= 3);
					assert(memcmp(peek + used - 3, ".\r\n",
					    3) == 0);
					used -= 3;
				}
				/* Moved unchanged; once over the limit,
				 * dropped. */
				if (over0)
					assert(got == 0);
				else if (!smtp_parse_data_is_over(p))
					assert(got == used);
				else
					assert(got <= used);
				if (got > 0) {
					uint8_t *o = evbuffer_pullup(out, -1);

					assert(memcmp(o + out0, peek, got) ==
					    0);
				}
			}
			if (rc == SMTP_PARSE_DATA_AGAIN) {
				assert(after <= 2);
				if (off == size)
					break;
				continue;
			}
			assert(rc == (smtp_parse_data_is_over(p) ?
			    SMTP_PARSE_DATA_TOOBIG : SMTP_PARSE_DATA_DONE));
			if (max > 0 && rc == SMTP_PARSE_DATA_DONE)
				assert(smtp_parse_data_size(p) <= max);
			/* The body ends with CRLF or is empty. */
			if (!smtp_parse_data_is_over(p)) {
				size_t olen = evbuffer_get_length(out);
				uint8_t *o = evbuffer_pullup(out, -1);

				assert(olen == 0 || (olen >= 2 &&
				    memcmp(o + olen - 2, "\r\n", 2) == 0));
			}
			evbuffer_drain(out, evbuffer_get_length(out));
			mode = M_CMD;
			continue;
		}
		if (mode == M_LINE) {
			const char		*line = NULL;
			enum smtp_parse_rc	 rc;

			rc = smtp_parse_line(p, in, &line);

			after = evbuffer_get_length(in);
			assert(after <= before);
			if (rc == SMTP_PARSE_AGAIN) {
				assert(line == NULL);
				assert(after < auth_max);
				if (off == size)
					break;
				continue;
			}
			if (rc == SMTP_PARSE_COMMAND) {
				assert(line != NULL && strlen(line) < auth_max);
				for (const char *s = line; *s != '\0'; s++)
					assert(*s > 0x20 && *s < 0x7f);
			} else
				check_reply(smtp_parse_error(p));
			mode = M_CMD;
			continue;
		}
		switch (smtp_parse_feed(p, in)) {
		case SMTP_PARSE_AGAIN:
			after = evbuffer_get_length(in);
			assert(smtp_parse_cmd(p) == NULL);
			/* Bounded: never a whole over-long line. */
			assert(after < auth_max);
			if (off == size)
				goto done;
			continue;
		case SMTP_PARSE_COMMAND:
			assert(evbuffer_get_length(in) < before);
			check_cmd(smtp_parse_cmd(p));
			check_mail_rcpt(smtp_parse_cmd(p), &utf8);
			if (strcmp(smtp_parse_cmd(p)->verb, "AUTH") == 0)
				mode = M_LINE;
			else if (strcmp(smtp_parse_cmd(p)->verb, "DATA") == 0) {
				smtp_parse_data_begin(p, max);
				mode = M_DATA;
			}
			break;
		case SMTP_PARSE_BAD:
		case SMTP_PARSE_TOOLONG:
			assert(smtp_parse_cmd(p) == NULL);
			check_reply(smtp_parse_error(p));
			break;
		}
	}
done:
	free(peek);
	smtp_parse_free(&p);
	assert(p == NULL);
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
