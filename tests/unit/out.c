/*
 * Transcript helpers shared by the parser tests (see out.h).
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/out.h"
#include "tests/unit/test.h"

static void
out_addx(struct out *o, const char *s, size_t n, bool lf_slash)
{
	for (size_t i = 0; i < n && o->len + 5 < OUT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n' && lf_slash)
			o->s[o->len++] = '/';
		else if (c >= 0x20 && c < 0x7f)
			o->s[o->len++] = (char)c;
		else
			o->len += (size_t)snprintf(o->s + o->len, 5, "\\x%02x",
			    c);
	}
	o->s[o->len] = '\0';
}

void
out_add(struct out *o, const char *s, size_t n)
{
	out_addx(o, s, n, false);
}

void
out_str(struct out *o, const char *s)
{
	out_addx(o, s, strlen(s), false);
}

void
out_add_lines(struct out *o, const char *s, size_t n)
{
	out_addx(o, s, n, true);
}

void
out_str_lines(struct out *o, const char *s)
{
	out_addx(o, s, strlen(s), true);
}

void
out_reset(struct out *o)
{
	o->len = 0;
	o->s[0] = '\0';
}

bool
out_same(const char *got, const char *want, size_t i, size_t split)
{
	test_checks++;
	if (strcmp(got, want) == 0)
		return true;
	fprintf(stderr, "  FAIL case %zu split %zu:\n    got  %s\n"
	    "    want %s\n", i, split, got, want);
	test_fail(__FILE__, __LINE__, "transcript");
	return false;
}
